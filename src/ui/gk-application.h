/* gk-application.h
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <adwaita.h>

#include "gk-backend.h"

G_BEGIN_DECLS

#define GK_TYPE_APPLICATION (gk_application_get_type ())
G_DECLARE_FINAL_TYPE (GkApplication, gk_application, GK, APPLICATION, AdwApplication)

GkApplication *gk_application_new         (void);
GkBackend     *gk_application_get_backend (GkApplication *self);
/* TRUE when a GK_SCREENSHOT run could not write its file. */
gboolean       gk_application_get_failed  (GkApplication *self);

/* Renders @widget as it is drawn now to a PNG file (screenshots). */
gboolean       gk_widget_save_png         (GtkWidget     *widget,
                                           const char    *path,
                                           GError       **error);

G_END_DECLS
