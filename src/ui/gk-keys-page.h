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
/* The keys loaded (GkKeyRow items in the order they will be used, before
 * search, filter and sort). */
GListModel *gk_keys_page_get_keys     (GkKeysPage *self);
/* TRUE while the list is being (re)loaded. */
gboolean    gk_keys_page_get_loading  (GkKeysPage *self);
/* Opens the "Add key" dialog. */
void        gk_keys_page_add_key      (GkKeysPage *self);
/* Opens "Import Keys…" (a GkImportDialog). */
void        gk_keys_page_import_keys  (GkKeysPage *self);
/* Shows the search bar and focuses it (Ctrl+F). */
void        gk_keys_page_focus_search (GkKeysPage *self);

/* The rows as shown: searched, filtered by state and sorted. */
GListModel *gk_keys_page_get_shown    (GkKeysPage *self);
/* The selection over the shown rows (multi-select for bulk actions). */
GtkSelectionModel *gk_keys_page_get_selection (GkKeysPage *self);
/* Shows only the keys in @state; GK_KEY_N_STATES shows every key. */
void        gk_keys_page_set_state_filter (GkKeysPage *self,
                                           GkKeyState  state);
/* Sets the search text (name, project or the masked key's tail). */
void        gk_keys_page_set_search   (GkKeysPage *self,
                                       const char *text);

G_END_DECLS
