/* gk-export-button.h: "Export" with a menu of formats (CSV, Excel), the
 * file chooser, and a progress bar with Cancel while the file is written.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

#include "gk-core.h"

G_BEGIN_DECLS

#define GK_TYPE_EXPORT_BUTTON (gk_export_button_get_type ())
G_DECLARE_FINAL_TYPE (GkExportButton, gk_export_button, GK, EXPORT_BUTTON, GtkBox)

/* Writes @path in a worker thread from @job (what the page copied for it
 * on the main thread), reporting progress and stopping when @cancellable
 * is cancelled; as gk_export_usage() does. */
typedef gboolean (*GkExportJobFunc) (gpointer           job,
                                     GkExportFormat     format,
                                     const char        *path,
                                     GkExportProgress   progress,
                                     gpointer           progress_data,
                                     GCancellable      *cancellable,
                                     guint64           *n_rows,
                                     GError           **error);

/* The page listens to "export" (format, path: the file chosen) and calls
 * gk_export_button_run() with what to write. */
void        gk_export_button_export       (GkExportButton  *self,
                                           GkExportFormat   format,
                                           const char      *path);
void        gk_export_button_run          (GkExportButton  *self,
                                           GkExportFormat   format,
                                           const char      *path,
                                           GkExportJobFunc  func,
                                           gpointer         job,
                                           GDestroyNotify   job_free);
gboolean    gk_export_button_get_exporting (GkExportButton *self);
/* The last export's outcome ("Exported 12 rows", the error), or NULL. */
const char *gk_export_button_get_message  (GkExportButton  *self);

G_END_DECLS
