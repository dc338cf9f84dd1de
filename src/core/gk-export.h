/* gk-export.h: the usage log, the rotation log, the audit log and the keys
 * (masked) as CSV or as Excel workbooks (.xlsx, through libxlsxwriter).
 *
 * CSV keeps the columns and text `gemini-keysctl export --csv` has always
 * written (scripts read them): times in ISO 8601 UTC, dollars with a dot.
 * In a workbook, typed cells: numbers are numbers, times are dates (UTC,
 * with a date format), money has a currency format; a bold header row
 * stays frozen. The usage log is streamed a keyset page at a time (constant memory), so
 * a million rows never sit in memory.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-key-store.h"
#include "gk-stats.h"

G_BEGIN_DECLS

typedef enum
{
  GK_EXPORT_CSV,
  GK_EXPORT_XLSX,
} GkExportFormat;

/* Called (in the exporting thread) after each page of rows with the rows
 * written so far; cancel @cancellable to stop. */
typedef void (*GkExportProgress) (guint64  rows,
                                  gpointer user_data);

/* Each writes @path whole or not at all (through a temporary file beside
 * it, renamed over it when complete); a CSV goes to standard output when
 * @path is "-". Each export is recorded in the audit log. */

/* The rows of @filter (NULL = the whole log), newest first. */
gboolean gk_export_usage     (GkDatabase          *db,
                              const GkUsageFilter *filter,
                              GkExportFormat       format,
                              const char          *path,
                              GkExportProgress     progress,
                              gpointer             user_data,
                              GCancellable        *cancellable,
                              guint64             *n_rows,
                              GError             **error);
gboolean gk_export_rotations (GkDatabase          *db,
                              GkExportFormat       format,
                              const char          *path,
                              GCancellable        *cancellable,
                              guint64             *n_rows,
                              GError             **error);
/* Keys with their masked hint only, never the secret. */
gboolean gk_export_keys      (GkKeyStore          *store,
                              GkExportFormat       format,
                              const char          *path,
                              GCancellable        *cancellable,
                              guint64             *n_rows,
                              GError             **error);
/* The audit log, newest first. */
gboolean gk_export_audit     (GkDatabase          *db,
                              GkExportFormat       format,
                              const char          *path,
                              GCancellable        *cancellable,
                              guint64             *n_rows,
                              GError             **error);

/* The usage log's CSV header line and one row, as gk_export_usage()
 * writes them, appended to @out (for listings on standard output). */
void     gk_export_csv_usage_header (GString          *out);
void     gk_export_csv_usage_row    (GString          *out,
                                     const GkUsageRow *row);

G_END_DECLS
