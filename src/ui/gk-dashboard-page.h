/* gk-dashboard-page.h
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
void       gk_dashboard_page_set_backend (GkDashboardPage *self,
                                     GkBackend  *backend);

G_END_DECLS
