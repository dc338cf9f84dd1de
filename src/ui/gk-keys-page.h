/* gk-keys-page.h: the Keys tab: the list, the add/edit dialog and the
 * per-key actions (edit, copy, test, rotate, delete).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <adwaita.h>

#include "gk-backend.h"

G_BEGIN_DECLS

#define GK_TYPE_KEYS_PAGE (gk_keys_page_get_type ())
G_DECLARE_FINAL_TYPE (GkKeysPage, gk_keys_page, GK, KEYS_PAGE, AdwBin)

/* Seconds after which a copied key is cleared from the clipboard, if the
 * clipboard still holds it. */
#define GK_CLIPBOARD_CLEAR_SECONDS 30

GtkWidget  *gk_keys_page_new          (void);
void        gk_keys_page_set_backend  (GkKeysPage *self,
                                       GkBackend  *backend);
/* The keys shown (GkKeyRow items, before the search filter). */
GListModel *gk_keys_page_get_keys     (GkKeysPage *self);
/* TRUE while the list is being (re)loaded. */
gboolean    gk_keys_page_get_loading  (GkKeysPage *self);
/* Opens the "Add key" dialog. */
void        gk_keys_page_add_key      (GkKeysPage *self);
/* Shows the search bar and focuses it (Ctrl+F). */
void        gk_keys_page_focus_search (GkKeysPage *self);

/* "3 min ago", "Yesterday 14:05", "12 Mar 2026"; "Never" for 0. */
char       *gk_format_relative_time   (gint64      time,
                                       gint64      now);

G_END_DECLS
