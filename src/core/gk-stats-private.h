/* gk-stats-private.h: what the statistics modules share.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include "gk-database-private.h"

G_BEGIN_DECLS

typedef gboolean (*GkStatsReadFunc) (GkDatabase *db,
                                     gpointer    data,
                                     GError    **error);

/* Runs @func in one read transaction (one snapshot) holding the
 * connection; a caller already inside a transaction keeps its own. */
gboolean gk_stats_with_read_snapshot (GkDatabase      *db,
                                      GkStatsReadFunc  func,
                                      gpointer         data,
                                      GError         **error);
/* The highest usage-log id the rollup tables hold, in this snapshot. */
gboolean gk_stats_read_folded_id     (GkDatabase      *db,
                                      gint64          *folded,
                                      GError         **error);

G_END_DECLS
