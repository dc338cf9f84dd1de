/* gk-export.h: spreadsheets (Excel .xlsx) of the usage log, the rotation
 * log, the audit log and the keys (masked), through libxlsxwriter.
 *
 * Typed cells: numbers are numbers, times are dates (UTC, with a date
 * format), money has a currency format; a bold header row stays frozen.
 * The usage log is streamed a keyset page at a time (constant memory), so
 * a million rows never sit in memory.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-key-store.h"
#include "gk-stats.h"

G_BEGIN_DECLS

/* Called (in the exporting thread) after each page of rows with the rows
 * written so far; cancel @cancellable to stop. */
typedef void (*GkExportProgress) (guint64  rows,
                                  gpointer user_data);

/* The rows of @filter (NULL = the whole log), newest first. */
gboolean gk_export_usage_xlsx     (GkDatabase          *db,
                                   const GkUsageFilter *filter,
                                   const char          *path,
                                   GkExportProgress     progress,
                                   gpointer             user_data,
                                   GCancellable        *cancellable,
                                   guint64             *n_rows,
                                   GError             **error);
gboolean gk_export_rotations_xlsx (GkDatabase          *db,
                                   const char          *path,
                                   guint64             *n_rows,
                                   GError             **error);
/* Keys with their masked hint only, never the secret. */
gboolean gk_export_keys_xlsx      (GkKeyStore          *store,
                                   const char          *path,
                                   guint64             *n_rows,
                                   GError             **error);

/* The audit log, newest first. */
gboolean gk_export_audit_xlsx     (GkDatabase          *db,
                                   const char          *path,
                                   guint64             *n_rows,
                                   GError             **error);

G_END_DECLS
