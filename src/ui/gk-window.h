/* gk-window.h: the main window: four tabs over one backend, or the unlock
 * page while the keys cannot be read.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <adwaita.h>

#include "gk-backend.h"

G_BEGIN_DECLS

#define GK_TYPE_WINDOW (gk_window_get_type ())
G_DECLARE_FINAL_TYPE (GkWindow, gk_window, GK, WINDOW, AdwApplicationWindow)

/* Starts loading @backend (gk_backend_load_async) at once; "loaded" tells
 * how it went. @application may be NULL (tests). */
GkWindow   *gk_window_new             (GtkApplication *application,
                                       GkBackend      *backend);
GkBackend  *gk_window_get_backend     (GkWindow       *self);
/* TRUE once loading finished, successfully or not. */
gboolean    gk_window_get_loaded      (GkWindow       *self);
/* "dashboard", "keys", "usage" or "rotations". */
const char *gk_window_get_visible_tab (GkWindow       *self);
void        gk_window_set_visible_tab (GkWindow       *self,
                                       const char     *name);
void        gk_window_add_toast       (GkWindow       *self,
                                       AdwToast       *toast);

G_END_DECLS
