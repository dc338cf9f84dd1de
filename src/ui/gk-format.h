/* gk-format.h: how every page writes dates, counts and money.
 *
 * Dates follow GNOME: "Today 20:23", "Yesterday 09:10", "Tue 1 Dec 14:05",
 * with the year when it is not this year, in the desktop's clock format
 * (org.gnome.desktop.interface clock-format, 24-hour when that schema is
 * missing) and the locale's names; the absolute time goes in a tooltip.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Whole numbers grouped by the locale ("1,234,567"). */
char     *gk_format_count            (gint64   count);
/* Amounts and totals: two decimals; four below one cent, so a cost never
 * reads as free ("$0.0042"). */
char     *gk_format_money            (double   usd);
/* Costs of single requests: always four decimals, so a column lines up;
 * "< $0.0001" for what four decimals would round to zero. */
char     *gk_format_money_per_request (double  usd);

/* A date for a cell: "Today 20:23", …; "" for 0 (never). */
char     *gk_format_date             (gint64   unix_time);
/* The same relative to @now (UTC seconds), for tests. */
char     *gk_format_date_at          (gint64   unix_time,
                                      gint64   now);
/* A moment in a sentence: "16:40" on @now's local day, else as
 * gk_format_date_at(). */
char     *gk_format_moment_at        (gint64   unix_time,
                                      gint64   now);
/* The absolute time for a tooltip: "Tuesday 1 December 2026, 14:05:09". */
char     *gk_format_date_full        (gint64   unix_time);
/* TRUE when the desktop shows 24-hour times. */
gboolean  gk_format_uses_24h         (void);

G_END_DECLS
