/* gk-quotas.h: per-minute, daily and monthly windows in the reset time zone.
 *
 * A quota past its reset_at is reset before it is read or charged
 * (gk_quotas_reset_expired), so correctness never depends on a timer.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-types.h"

G_BEGIN_DECLS

#define GK_QUOTAS_ERROR (gk_quotas_error_quark ())

typedef enum
{
  GK_QUOTAS_ERROR_FAILED,
} GkQuotasError;

GQuark   gk_quotas_error_quark    (void);

/* The end of the window of @type that contains @now (the next boundary,
 * strictly after @now): the next minute, local midnight, or the 1st of the
 * next month at 00:00 in @tz. DST days of 23 and 25 hours are honoured. */
gint64   gk_quota_next_reset      (GkQuotaType   type,
                                   gint64        now,
                                   GTimeZone    *tz);
/* The start of that window. */
gint64   gk_quota_window_start    (GkQuotaType   type,
                                   gint64        now,
                                   GTimeZone    *tz);

/* Resets every quota whose reset_at has passed, returns keys whose window
 * ended to ACTIVE (QUOTA_EXCEEDED, expired cooldowns), and after a backwards
 * clock jump pulls reset_at back to the current window. Cheap when nothing
 * is due. */
gboolean gk_quotas_reset_expired  (GkDatabase   *db,
                                   GError      **error);
/* Resets the quotas of @type (or all when @all is TRUE) now, logged with
 * @triggered_by ("manual:<who>"). */
gboolean gk_quotas_reset          (GkDatabase   *db,
                                   gboolean      all,
                                   GkQuotaType   type,
                                   const char   *triggered_by,
                                   GError      **error);
/* The earliest moment something changes by itself: a quota reset or a
 * cooldown's end (UTC seconds), for the GUI's timer. 0 when nothing is
 * scheduled. */
gint64   gk_quotas_next_boundary  (GkDatabase   *db,
                                   GError      **error);

G_END_DECLS
