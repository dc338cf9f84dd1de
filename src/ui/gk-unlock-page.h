/* gk-unlock-page.h: what the window shows when the keys cannot be unlocked
 * (keyring locked or absent, wrong or missing master key, database error),
 * with what to do about it.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <adwaita.h>

G_BEGIN_DECLS

#define GK_TYPE_UNLOCK_PAGE (gk_unlock_page_get_type ())
G_DECLARE_FINAL_TYPE (GkUnlockPage, gk_unlock_page, GK, UNLOCK_PAGE, AdwBin)

GtkWidget  *gk_unlock_page_new       (void);
/* Explains @error (GK_SECRET_ERROR_*, GK_DATABASE_ERROR_*,
 * GK_TEAM_DATABASE_ERROR_*, other). */
void        gk_unlock_page_set_error (GkUnlockPage *self,
                                      const GError *error);
/* Whether the database is a team's, which offers this computer's file
 * instead ("use-local-file"). */
void        gk_unlock_page_set_team  (GkUnlockPage *self,
                                      gboolean      team);
const char *gk_unlock_page_get_title (GkUnlockPage *self);
/* While TRUE the buttons are insensitive (a retry or import is running). */
void        gk_unlock_page_set_busy  (GkUnlockPage *self,
                                      gboolean      busy);

G_END_DECLS
