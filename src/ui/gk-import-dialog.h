/* gk-import-dialog.h: "Import Keys…": many keys at once, pasted or from a
 * file, previewed (a dry run) and imported off the main thread.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <adwaita.h>

#include "gk-backend.h"

G_BEGIN_DECLS

#define GK_TYPE_IMPORT_DIALOG (gk_import_dialog_get_type ())
G_DECLARE_FINAL_TYPE (GkImportDialog, gk_import_dialog, GK, IMPORT_DIALOG, AdwWindow)

GkImportDialog *gk_import_dialog_new         (GtkWindow      *parent,
                                              GkBackend      *backend);
/* Uses @text (wiped by the dialog after use) as if it came from a file. */
void            gk_import_dialog_set_file_text (GkImportDialog *self,
                                                const char     *display_name,
                                                char           *text,
                                                gsize           len);
/* TRUE while a preview or an import runs. */
gboolean        gk_import_dialog_get_busy    (GkImportDialog *self);

G_END_DECLS
