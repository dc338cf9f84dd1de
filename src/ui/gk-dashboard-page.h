/* gk-dashboard-page.h: cards, charts and tables over the last 7 or 30 days.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <adwaita.h>

#include "gk-backend.h"

G_BEGIN_DECLS

#define GK_TYPE_DASHBOARD_PAGE (gk_dashboard_page_get_type ())
G_DECLARE_FINAL_TYPE (GkDashboardPage, gk_dashboard_page, GK, DASHBOARD_PAGE, AdwBin)

GtkWidget *gk_dashboard_page_new         (void);
/* Reloads now and whenever @backend emits "changed". */
void       gk_dashboard_page_set_backend (GkDashboardPage *self,
                                          GkBackend       *backend);
/* 7 or 30; reloads. */
void       gk_dashboard_page_set_days    (GkDashboardPage *self,
                                          guint            days);
guint      gk_dashboard_page_get_days    (GkDashboardPage *self);
/* TRUE while a reload runs ("notify::loading" tells when it ends). */
gboolean   gk_dashboard_page_get_loading (GkDashboardPage *self);

G_END_DECLS
