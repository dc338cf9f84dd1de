/* gk-key-dialog.h: the "Add key" / "Edit key" window with inline validation.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <adwaita.h>

#include "gk-backend.h"
#include "gk-key-row.h"

G_BEGIN_DECLS

#define GK_TYPE_KEY_DIALOG (gk_key_dialog_get_type ())
G_DECLARE_FINAL_TYPE (GkKeyDialog, gk_key_dialog, GK, KEY_DIALOG, AdwWindow)

/* @key: NULL to add a key, else the key to edit (copied). Emits "saved"
 * with the key's id and closes once the store accepted the change. */
GkKeyDialog *gk_key_dialog_new       (GtkWindow   *parent,
                                      GkBackend   *backend,
                                      const GkKey *key);
/* Shows when each of the key's quotas resets, under its limit. */
void         gk_key_dialog_show_resets (GkKeyDialog *self,
                                        GkKeyRow    *row);
/* 0 when adding. */
gint64       gk_key_dialog_get_key_id (GkKeyDialog *self);

G_END_DECLS
