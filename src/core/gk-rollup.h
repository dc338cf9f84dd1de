/* gk-rollup.h: running sums of the usage log for the dashboard.
 *
 * The usage log only grows, so its sums are kept in tables of their own
 * (schema version 2) and brought up to date by folding in the rows added
 * since the last fold. Sums are per 15-minute UTC bucket: every time zone
 * in use today has an offset that is a whole number of quarter hours, so a
 * local day is an exact run of buckets. Models and users are also summed
 * per UTC day, so a month's ranking reads a few rows per name.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-types.h"

G_BEGIN_DECLS

/* The spans of the rollup tables, in seconds (also spelled out in the
 * schema's migration 2). */
#define GK_ROLLUP_BUCKET_SECONDS 900
#define GK_ROLLUP_DAY_SECONDS    86400

/* The meta key holding the highest usage-log id folded in. */
#define GK_ROLLUP_META_MAX_ID    "rollup_max_id"

gboolean gk_rollup_catch_up (GkDatabase  *db,
                             GError     **error);

G_END_DECLS
