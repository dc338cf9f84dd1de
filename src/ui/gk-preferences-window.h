/* gk-preferences-window.h: the database settings shared with the CLI and
 * the gateway (rotation threshold, reset time zone, notifications, gateway).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <adwaita.h>

#include "gk-backend.h"

G_BEGIN_DECLS

#define GK_TYPE_PREFERENCES_WINDOW (gk_preferences_window_get_type ())
G_DECLARE_FINAL_TYPE (GkPreferencesWindow, gk_preferences_window, GK, PREFERENCES_WINDOW,
                      AdwPreferencesWindow)

GtkWidget *gk_preferences_window_new        (GtkWindow           *parent,
                                             GkBackend           *backend);
/* TRUE once the settings were read and shown (tests). */
gboolean   gk_preferences_window_get_loaded (GkPreferencesWindow *self);

G_END_DECLS
