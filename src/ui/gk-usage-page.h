/* gk-usage-page.h
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <adwaita.h>

#include "gk-backend.h"

G_BEGIN_DECLS

#define GK_TYPE_USAGE_PAGE (gk_usage_page_get_type ())
G_DECLARE_FINAL_TYPE (GkUsagePage, gk_usage_page, GK, USAGE_PAGE, AdwBin)

GtkWidget *gk_usage_page_new         (void);
void       gk_usage_page_set_backend (GkUsagePage *self,
                                     GkBackend  *backend);
/* Moves the keyboard focus to the key filter (Ctrl+F). */
void       gk_usage_page_focus_filter (GkUsagePage *self);

G_END_DECLS
