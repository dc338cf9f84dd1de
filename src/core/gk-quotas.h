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

/* @reset_at in @local_tz as ISO 8601 with its offset
 * ("2026-03-08T14:00:00+07:00"); NULL for 0. */
char    *gk_quota_format_reset_iso (gint64       reset_at,
                                    GTimeZone   *local_tz);
/* @reset_at for people, in @local_tz with its zone, and (when @reset_tz is
 * given and its clock differs) in the reset time zone: "15:00 UTC+07,
 * midnight PST"; "tomorrow, …" or the date ("2026-04-01, …") when it is
 * not on @now's local day. NULL for 0. */
char    *gk_quota_format_reset     (gint64       reset_at,
                                    gint64       now,
                                    GTimeZone   *local_tz,
                                    GTimeZone   *reset_tz);

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
