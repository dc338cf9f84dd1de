/* gk-quota-bar.h: one quota window as "Day  1.2K / 50K" over a level bar.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define GK_TYPE_QUOTA_BAR (gk_quota_bar_get_type ())
G_DECLARE_FINAL_TYPE (GkQuotaBar, gk_quota_bar, GK, QUOTA_BAR, GtkWidget)

GtkWidget *gk_quota_bar_new   (void);
/* @limit 0 = unlimited (no bar, "used / ∞"). */
/* @resets: when the window resets, for people ("15:00 UTC+07, midnight
 * PST"), shown in the tooltip; may be NULL. */
void       gk_quota_bar_set   (GkQuotaBar *self,
                               const char *title,
                               gint64      used,
                               gint64      limit,
                               const char *resets);
/* The text shown, e.g. "1.2K / 50K" (for tests and accessibility). */
const char *gk_quota_bar_get_text (GkQuotaBar *self);

G_END_DECLS
