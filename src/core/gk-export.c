/* gk-export.c: CSV files and .xlsx workbooks (through libxlsxwriter).
 *
 * Both are written to a file next to the target, which replaces the
 * target only when complete: a failed or cancelled export leaves no half
 * file. A workbook is written in libxlsxwriter's constant-memory mode
 * (rows go to disk as they come, in order); a CSV in blocks of text.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xlsxwriter.h>

#include "gk-audit.h"
#include "gk-export.h"
#include "gk-database.h"
#include "gk-key-state.h"

#define EXPORT_PAGE      1000
/* A CSV goes to disk in blocks of this size. */
#define CSV_FLUSH_BYTES  (256 * 1024)
/* A worksheet holds 1,048,576 rows; a longer log goes on to more sheets. */
#define MAX_SHEET_ROWS   1048576
/* Days from Excel's epoch (1899-12-30) to the Unix epoch. */
#define EXCEL_UNIX_DAYS  25569.0

typedef struct
{
  lxw_workbook  *workbook;
  lxw_worksheet *sheet;
  lxw_format    *header;
  lxw_format    *date;
  lxw_format    *money;
  const char    *sheet_name;
  const char *const *columns;
  guint          n_columns;
  guint          n_sheets;
  lxw_row_t      row;
  char          *path;
  char          *tmp_path;
  lxw_error      failed;
} Book;

static void
book_add_sheet (Book *book)
{
  g_autofree char *name = book->n_sheets == 0
                            ? g_strdup (book->sheet_name)
                            : g_strdup_printf ("%s %u", book->sheet_name, book->n_sheets + 1);

  book->sheet = workbook_add_worksheet (book->workbook, name);
  book->n_sheets++;
  book->row = 0;
  if (book->sheet == NULL)
    {
      book->failed = LXW_ERROR_MEMORY_MALLOC_FAILED;
      return;
    }
  /* Frozen panes must be set before rows are written in constant-memory
   * mode. */
  worksheet_freeze_panes (book->sheet, 1, 0);
  for (guint i = 0; i < book->n_columns; i++)
    {
      worksheet_write_string (book->sheet, 0, (lxw_col_t) i, book->columns[i], book->header);
      worksheet_set_column (book->sheet, (lxw_col_t) i, (lxw_col_t) i,
                            MAX (10, strlen (book->columns[i]) + 2), NULL);
    }
  book->row = 1;
}

static gboolean
book_open (Book              *book,
           const char        *path,
           const char        *sheet_name,
           const char *const *columns,
           guint              n_columns,
           GError           **error)
{
  lxw_workbook_options options = { .constant_memory = LXW_TRUE, .tmpdir = NULL };

  memset (book, 0, sizeof *book);
  book->path = g_strdup (path);
  book->tmp_path = g_strdup_printf ("%s.part", path);
  book->sheet_name = sheet_name;
  book->columns = columns;
  book->n_columns = n_columns;
  options.tmpdir = NULL;
  book->workbook = workbook_new_opt (book->tmp_path, &options);
  if (book->workbook == NULL)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, _("Cannot write “%s”"), path);
      g_clear_pointer (&book->path, g_free);
      g_clear_pointer (&book->tmp_path, g_free);
      return FALSE;
    }
  book->header = workbook_add_format (book->workbook);
  format_set_bold (book->header);
  format_set_bottom (book->header, LXW_BORDER_THIN);
  book->date = workbook_add_format (book->workbook);
  format_set_num_format (book->date, "yyyy-mm-dd hh:mm:ss");
  book->money = workbook_add_format (book->workbook);
  /* Dollars with two decimals, up to six for fractions of a cent. */
  format_set_num_format (book->money, "$#,##0.00####");
  book_add_sheet (book);
  return TRUE;
}

/* The next data row, on a new sheet when this one is full. */
static lxw_row_t
book_next_row (Book *book)
{
  if (book->row >= MAX_SHEET_ROWS)
    book_add_sheet (book);
  return book->row++;
}

static void
cell_string (Book       *book,
             lxw_row_t   row,
             lxw_col_t   col,
             const char *value)
{
  if (value != NULL && *value != '\0')
    worksheet_write_string (book->sheet, row, col, value, NULL);
}

static void
cell_int (Book      *book,
          lxw_row_t  row,
          lxw_col_t  col,
          gint64     value)
{
  worksheet_write_number (book->sheet, row, col, (double) value, NULL);
}

static void
cell_money (Book      *book,
            lxw_row_t  row,
            lxw_col_t  col,
            double     value)
{
  worksheet_write_number (book->sheet, row, col, value, book->money);
}

/* A UTC time as an Excel date (a number with a date format); empty when
 * unset. */
static void
cell_time (Book      *book,
           lxw_row_t  row,
           lxw_col_t  col,
           gint64     unix_time)
{
  if (unix_time > 0)
    worksheet_write_number (book->sheet, row, col,
                            EXCEL_UNIX_DAYS + (double) unix_time / 86400.0, book->date);
}

static gboolean
book_close (Book     *book,
            gboolean  ok,
            GError  **error)
{
  lxw_error rc = workbook_close (book->workbook);

  if (ok && (rc != LXW_NO_ERROR || book->failed != LXW_NO_ERROR))
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, _("Cannot write “%s”: %s"),
                   book->path, lxw_strerror (rc != LXW_NO_ERROR ? rc : book->failed));
      ok = FALSE;
    }
  if (ok && g_rename (book->tmp_path, book->path) != 0)
    {
      int saved = errno;

      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
                   _("Cannot write “%s”: %s"), book->path, g_strerror (saved));
      ok = FALSE;
    }
  if (!ok)
    g_unlink (book->tmp_path);
  g_free (book->tmp_path);
  g_free (book->path);
  return ok;
}

/* --- CSV --------------------------------------------------------------- */

/* Where a CSV goes: a temporary file next to the target (0600), renamed
 * over it once complete, or standard output. */
typedef struct
{
  FILE    *file;
  char    *path;        /* the target, or NULL for standard output */
  char    *tmp_path;
  GString *buffer;
  int      write_errno;
} Csv;

static gboolean
csv_open (Csv         *csv,
          const char  *path,
          GError     **error)
{
  int fd;

  memset (csv, 0, sizeof *csv);
  if (g_str_equal (path, "-"))
    {
      csv->file = stdout;
      csv->buffer = g_string_sized_new (CSV_FLUSH_BYTES + 4096);
      return TRUE;
    }

  csv->tmp_path = g_strdup_printf ("%s.XXXXXX", path);
  fd = g_mkstemp_full (csv->tmp_path, O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      int saved = errno;

      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
                   _("Cannot write “%s”: %s"), path, g_strerror (saved));
      g_clear_pointer (&csv->tmp_path, g_free);
      return FALSE;
    }
  csv->file = fdopen (fd, "w");
  g_assert (csv->file != NULL);
  csv->path = g_strdup (path);
  csv->buffer = g_string_sized_new (CSV_FLUSH_BYTES + 4096);
  return TRUE;
}

static void
csv_flush (Csv *csv)
{
  if (csv->buffer->len > 0 && csv->write_errno == 0
      && fwrite (csv->buffer->str, 1, csv->buffer->len, csv->file) != csv->buffer->len)
    csv->write_errno = errno != 0 ? errno : EIO;
  g_string_truncate (csv->buffer, 0);
}

static void
csv_maybe_flush (Csv *csv)
{
  if (csv->buffer->len >= CSV_FLUSH_BYTES)
    csv_flush (csv);
}

/* Finishes the file: on success it takes its final name. */
static gboolean
csv_close (Csv       *csv,
           gboolean   ok,
           GError   **error)
{
  csv_flush (csv);
  g_string_free (csv->buffer, TRUE);
  if (ok && csv->write_errno == 0 && fflush (csv->file) != 0)
    csv->write_errno = errno;
  if (csv->path == NULL)
    return ok;

  if (ok && csv->write_errno == 0 && fsync (fileno (csv->file)) != 0)
    csv->write_errno = errno;
  fclose (csv->file);
  if (ok && csv->write_errno == 0 && g_rename (csv->tmp_path, csv->path) != 0)
    csv->write_errno = errno;
  if (ok && csv->write_errno != 0)
    {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (csv->write_errno),
                   _("Cannot write “%s”: %s"), csv->path, g_strerror (csv->write_errno));
      ok = FALSE;
    }
  if (!ok)
    g_unlink (csv->tmp_path);
  g_free (csv->tmp_path);
  g_free (csv->path);
  return ok;
}

/* RFC 4180 quoting of one field. */
static void
csv_field (GString    *out,
           const char *field,
           gboolean    last)
{
  if (field == NULL)
    field = "";

  if (strpbrk (field, ",\"\r\n") != NULL)
    {
      g_string_append_c (out, '"');
      for (const char *p = field; *p != '\0'; p++)
        {
          if (*p == '"')
            g_string_append_c (out, '"');
          g_string_append_c (out, *p);
        }
      g_string_append_c (out, '"');
    }
  else
    g_string_append (out, field);

  g_string_append (out, last ? "\r\n" : ",");
}

static void
csv_header (GString           *out,
            const char *const *columns,
            gsize              n_columns)
{
  for (gsize i = 0; i < n_columns; i++)
    csv_field (out, columns[i], i + 1 == n_columns);
}

static void
csv_int (GString  *out,
         gint64    value,
         gboolean  last)
{
  g_string_append_printf (out, "%" PRId64 "%s", value, last ? "\r\n" : ",");
}

/* An id, or an empty field for none. */
static void
csv_id (GString *out,
        gint64   value)
{
  if (value > 0)
    g_string_append_printf (out, "%" PRId64, value);
  g_string_append_c (out, ',');
}

/* Locale-independent: a CSV must not get decimal commas. */
static void
csv_double (GString *out,
            double   value)
{
  char buffer[G_ASCII_DTOSTR_BUF_SIZE];

  g_string_append (out, g_ascii_formatd (buffer, sizeof buffer, "%.6f", value));
  g_string_append_c (out, ',');
}

/* A UTC time as ISO 8601 ("2026-03-15T12:00:00Z"), empty for "never";
 * formatted without GDateTime: an export writes a million of them. */
static void
csv_time (GString  *out,
          gint64    unix_time,
          gboolean  last)
{
  struct tm tm;
  time_t t = (time_t) unix_time;
  char buffer[32];

  if (unix_time > 0 && gmtime_r (&t, &tm) != NULL)
    g_string_append_len (out, buffer,
                         (gssize) strftime (buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm));
  g_string_append (out, last ? "\r\n" : ",");
}

/* --- Either format ------------------------------------------------------ */

/* What a table is called and has in each format; the usage log streams
 * its rows itself (no row functions). */
typedef struct
{
  const char        *sheet_name;
  const char *const *columns;
  guint              n_columns;
  const char *const *csv_columns;
  guint              n_csv_columns;
  void             (*book_row) (Book          *book,
                                gconstpointer  row);
  void             (*csv_row)  (GString       *out,
                                gconstpointer  row);
} Table;

/* Where the rows go, whichever the format. */
typedef struct
{
  GkExportFormat format;
  Book           book;
  Csv            csv;
} Sink;

static gboolean
sink_open (Sink            *sink,
           GkExportFormat   format,
           const char      *path,
           const Table     *table,
           GError         **error)
{
  sink->format = format;
  if (format == GK_EXPORT_XLSX)
    return book_open (&sink->book, path, table->sheet_name, table->columns, table->n_columns,
                      error);
  if (!csv_open (&sink->csv, path, error))
    return FALSE;
  csv_header (sink->csv.buffer, table->csv_columns, table->n_csv_columns);
  return TRUE;
}

static gboolean
sink_failed (Sink *sink)
{
  return sink->format == GK_EXPORT_XLSX ? sink->book.failed != LXW_NO_ERROR
                                        : sink->csv.write_errno != 0;
}

static gboolean
sink_close (Sink      *sink,
            gboolean   ok,
            GError   **error)
{
  return sink->format == GK_EXPORT_XLSX ? book_close (&sink->book, ok, error)
                                        : csv_close (&sink->csv, ok, error);
}

/* Writes @rows whole, with @table's row functions. */
static gboolean
export_table (const Table     *table,
              GPtrArray       *rows,
              GkExportFormat   format,
              const char      *path,
              GCancellable    *cancellable,
              GError         **error)
{
  gboolean ok = TRUE;
  Sink sink;

  if (!sink_open (&sink, format, path, table, error))
    return FALSE;
  for (guint i = 0; i < rows->len && ok; i++)
    {
      if (format == GK_EXPORT_XLSX)
        table->book_row (&sink.book, rows->pdata[i]);
      else
        {
          table->csv_row (sink.csv.buffer, rows->pdata[i]);
          csv_maybe_flush (&sink.csv);
        }
      ok = !g_cancellable_set_error_if_cancelled (cancellable, error);
    }
  return sink_close (&sink, ok, ok ? error : NULL);
}

/* --- Usage -------------------------------------------------------------- */

static const char *const usage_columns[] = {
  "id", "time_utc", "key_id", "key_name", "model", "status", "http_status", "tokens_used",
  "prompt_tokens", "output_tokens", "cost_usd", "priced", "user_id", "latency_ms",
  "error_message",
};

static const char *const usage_csv_columns[] = {
  "id", "key_id", "key_name", "model", "tokens_used", "prompt_tokens", "output_tokens",
  "cost_usd", "priced", "status", "http_status", "error_message", "user_id", "latency_ms",
  "created_at",
};

static void
usage_row (const GkUsageRow *r,
           gpointer          user_data)
{
  Book *book = user_data;
  lxw_row_t row = book_next_row (book);

  if (book->sheet == NULL)
    return;
  cell_int (book, row, 0, r->id);
  cell_time (book, row, 1, r->created_at);
  if (r->key_id > 0)
    cell_int (book, row, 2, r->key_id);
  cell_string (book, row, 3, r->key_name);
  cell_string (book, row, 4, r->model);
  cell_string (book, row, 5, gk_usage_status_to_string (r->status));
  if (r->http_status > 0)
    cell_int (book, row, 6, r->http_status);
  cell_int (book, row, 7, r->tokens_used);
  cell_int (book, row, 8, r->prompt_tokens);
  cell_int (book, row, 9, r->output_tokens);
  cell_money (book, row, 10, r->cost_usd);
  worksheet_write_boolean (book->sheet, row, 11, r->priced, NULL);
  cell_string (book, row, 12, r->user_id);
  cell_int (book, row, 13, r->latency_ms);
  cell_string (book, row, 14, r->error_message);
}

void
gk_export_csv_usage_header (GString *out)
{
  csv_header (out, usage_csv_columns, G_N_ELEMENTS (usage_csv_columns));
}

void
gk_export_csv_usage_row (GString          *out,
                         const GkUsageRow *row)
{
  csv_int (out, row->id, FALSE);
  /* No key: a request refused before one was chosen. */
  csv_id (out, row->key_id);
  csv_field (out, row->key_name, FALSE);
  csv_field (out, row->model, FALSE);
  csv_int (out, row->tokens_used, FALSE);
  csv_int (out, row->prompt_tokens, FALSE);
  csv_int (out, row->output_tokens, FALSE);
  csv_double (out, row->cost_usd);
  g_string_append (out, row->priced ? "1," : "0,");
  g_string_append (out, gk_usage_status_to_string (row->status));
  g_string_append_c (out, ',');
  csv_id (out, row->http_status);
  csv_field (out, row->error_message, FALSE);
  csv_field (out, row->user_id, FALSE);
  csv_int (out, row->latency_ms, FALSE);
  csv_time (out, row->created_at, TRUE);
}

static void
usage_row_csv (const GkUsageRow *row,
               gpointer          user_data)
{
  Csv *csv = user_data;

  gk_export_csv_usage_row (csv->buffer, row);
  csv_maybe_flush (csv);
}

static const Table usage_table = {
  "Usage",
  usage_columns, G_N_ELEMENTS (usage_columns),
  usage_csv_columns, G_N_ELEMENTS (usage_csv_columns),
  NULL, NULL,
};

/**
 * gk_export_usage:
 *
 * Writes the rows of @filter, newest first, a keyset page at a time. Rows
 * recorded while it runs (higher ids than its first page) are left out.
 */
gboolean
gk_export_usage (GkDatabase          *db,
                 const GkUsageFilter *filter,
                 GkExportFormat       format,
                 const char          *path,
                 GkExportProgress     progress,
                 gpointer             user_data,
                 GCancellable        *cancellable,
                 guint64             *n_rows,
                 GError             **error)
{
  GkUsageRowFunc func = format == GK_EXPORT_XLSX ? usage_row : usage_row_csv;
  gint64 before = G_MAXINT64;
  guint64 total = 0;
  gboolean ok = TRUE;
  gpointer target;
  Sink sink;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!sink_open (&sink, format, path, &usage_table, error))
    return FALSE;
  target = format == GK_EXPORT_XLSX ? (gpointer) &sink.book : (gpointer) &sink.csv;
  for (;;)
    {
      gint64 n;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        {
          ok = FALSE;
          break;
        }
      /* The whole log streams row by row; a filtered page is read first. */
      if (filter == NULL)
        n = gk_stats_usage_page (db, before, EXPORT_PAGE, func, target, &before, error);
      else
        n = gk_stats_usage_query_page (db, filter, before, EXPORT_PAGE, func, target, &before,
                                       error);
      if (n < 0)
        {
          ok = FALSE;
          break;
        }
      total += (guint64) n;
      if (progress != NULL)
        progress (total, user_data);
      if (n < EXPORT_PAGE || sink_failed (&sink))
        break;
    }
  if (!sink_close (&sink, ok, ok ? error : NULL))
    return FALSE;
  if (n_rows != NULL)
    *n_rows = total;
  return gk_audit_record_export (db, "usage", path, total, error);
}

/* --- Rotations ---------------------------------------------------------- */

static const char *const rotation_columns[] = {
  "id", "time_utc", "from_key_id", "from_key_name", "to_key_id", "to_key_name", "reason",
  "triggered_by",
};

static const char *const rotation_csv_columns[] = {
  "id", "from_key_id", "from_key_name", "to_key_id", "to_key_name", "reason", "triggered_by",
  "created_at",
};

static void
rotation_row (Book          *book,
              gconstpointer  data)
{
  const GkRotationRow *r = data;
  lxw_row_t row = book_next_row (book);

  if (book->sheet == NULL)
    return;
  cell_int (book, row, 0, r->id);
  cell_time (book, row, 1, r->created_at);
  cell_int (book, row, 2, r->from_key_id);
  cell_string (book, row, 3, r->from_key_name);
  if (r->to_key_id > 0)
    cell_int (book, row, 4, r->to_key_id);
  cell_string (book, row, 5, r->to_key_name);
  cell_string (book, row, 6, gk_rotation_reason_to_string (r->reason));
  cell_string (book, row, 7, r->triggered_by);
}

static void
rotation_row_csv (GString       *out,
                  gconstpointer  data)
{
  const GkRotationRow *r = data;

  csv_int (out, r->id, FALSE);
  csv_int (out, r->from_key_id, FALSE);
  csv_field (out, r->from_key_name, FALSE);
  csv_id (out, r->to_key_id);
  csv_field (out, r->to_key_name, FALSE);
  csv_field (out, gk_rotation_reason_to_string (r->reason), FALSE);
  csv_field (out, r->triggered_by, FALSE);
  csv_time (out, r->created_at, TRUE);
}

static const Table rotation_table = {
  "Rotations",
  rotation_columns, G_N_ELEMENTS (rotation_columns),
  rotation_csv_columns, G_N_ELEMENTS (rotation_csv_columns),
  rotation_row, rotation_row_csv,
};

gboolean
gk_export_rotations (GkDatabase      *db,
                     GkExportFormat   format,
                     const char      *path,
                     GCancellable    *cancellable,
                     guint64         *n_rows,
                     GError         **error)
{
  g_autoptr(GPtrArray) rows = NULL;
  gint64 all = 0, manual = 0, automatic = 0;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  if (!gk_stats_rotation_totals (db, &all, &manual, &automatic, error))
    return FALSE;
  rows = gk_stats_rotation_logs (db, (guint) MAX (all, 1), error);
  if (rows == NULL)
    return FALSE;
  if (!export_table (&rotation_table, rows, format, path, cancellable, error))
    return FALSE;
  if (n_rows != NULL)
    *n_rows = rows->len;
  return gk_audit_record_export (db, "rotations", path, rows->len, error);
}

/* --- Keys --------------------------------------------------------------- */

static const char *const key_columns[] = {
  "id", "name", "key_hint", "project", "status", "priority", "is_default",
  "monthly_budget_usd", "month_cost_usd", "created_utc", "last_used_utc",
};

static const char *const key_csv_columns[] = {
  "id", "name", "key_hint", "project", "status", "priority", "is_default",
  "monthly_budget_usd", "month_cost_usd", "created_at", "last_used_at",
  "monthly_tokens_limit", "monthly_tokens_used", "daily_tokens_limit", "daily_tokens_used",
  "minute_tokens_limit", "minute_tokens_used", "daily_requests_limit", "daily_requests_used",
  "minute_requests_limit", "minute_requests_used",
};

static void
key_row (Book          *book,
         gconstpointer  data)
{
  const GkKey *k = data;
  lxw_row_t row = book_next_row (book);

  if (book->sheet == NULL)
    return;
  cell_int (book, row, 0, k->id);
  cell_string (book, row, 1, k->name);
  cell_string (book, row, 2, k->key_hint);
  cell_string (book, row, 3, k->project);
  cell_string (book, row, 4, gk_key_status_to_string (k->status));
  cell_int (book, row, 5, k->priority);
  worksheet_write_boolean (book->sheet, row, 6, k->is_default, NULL);
  if (k->monthly_budget_usd >= 0)
    cell_money (book, row, 7, k->monthly_budget_usd);
  cell_money (book, row, 8, k->month_cost_usd);
  cell_time (book, row, 9, k->created_at);
  cell_time (book, row, 10, k->last_used_at);
}

static void
key_row_csv (GString       *out,
             gconstpointer  data)
{
  const GkKey *k = data;

  csv_int (out, k->id, FALSE);
  csv_field (out, k->name, FALSE);
  csv_field (out, k->key_hint, FALSE);
  csv_field (out, k->project, FALSE);
  csv_field (out, gk_key_status_to_string (k->status), FALSE);
  csv_int (out, k->priority, FALSE);
  g_string_append (out, k->is_default ? "1," : "0,");
  if (k->monthly_budget_usd >= 0)
    csv_double (out, k->monthly_budget_usd);
  else
    g_string_append_c (out, ',');
  csv_double (out, k->month_cost_usd);
  csv_time (out, k->created_at, FALSE);
  csv_time (out, k->last_used_at, FALSE);
  for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
    {
      csv_int (out, k->quotas[i].limit_value, FALSE);
      csv_int (out, k->quotas[i].used_value, i + 1 == GK_QUOTA_N_SLOTS);
    }
}

static const Table key_table = {
  "Keys",
  key_columns, G_N_ELEMENTS (key_columns),
  key_csv_columns, G_N_ELEMENTS (key_csv_columns),
  key_row, key_row_csv,
};

gboolean
gk_export_keys (GkKeyStore      *store,
                GkExportFormat   format,
                const char      *path,
                GCancellable    *cancellable,
                guint64         *n_rows,
                GError         **error)
{
  g_autoptr(GPtrArray) keys = NULL;

  g_return_val_if_fail (GK_IS_KEY_STORE (store), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  keys = gk_key_store_list (store, error);
  if (keys == NULL)
    return FALSE;
  if (!export_table (&key_table, keys, format, path, cancellable, error))
    return FALSE;
  if (n_rows != NULL)
    *n_rows = keys->len;
  return gk_audit_record_export (gk_key_store_get_database (store), "keys", path, keys->len,
                                 error);
}

/* --- Audit log ---------------------------------------------------------- */

static const char *const audit_columns[] = {
  "id", "time_utc", "actor", "action", "target_id", "target", "summary",
};

static const char *const audit_csv_columns[] = {
  "id", "created_at", "actor", "action", "target_id", "target", "summary",
};

static void
audit_row (Book          *book,
           gconstpointer  data)
{
  const GkAuditRow *r = data;
  lxw_row_t row = book_next_row (book);

  if (book->sheet == NULL)
    return;
  cell_int (book, row, 0, r->id);
  cell_time (book, row, 1, r->created_at);
  cell_string (book, row, 2, r->actor);
  cell_string (book, row, 3, gk_audit_action_to_string (r->action));
  if (r->target_id > 0)
    cell_int (book, row, 4, r->target_id);
  cell_string (book, row, 5, r->target);
  cell_string (book, row, 6, r->summary);
}

static void
audit_row_csv (GString       *out,
               gconstpointer  data)
{
  const GkAuditRow *r = data;

  csv_int (out, r->id, FALSE);
  csv_time (out, r->created_at, FALSE);
  csv_field (out, r->actor, FALSE);
  csv_field (out, gk_audit_action_to_string (r->action), FALSE);
  csv_id (out, r->target_id);
  csv_field (out, r->target, FALSE);
  csv_field (out, r->summary, TRUE);
}

static const Table audit_table = {
  "Audit",
  audit_columns, G_N_ELEMENTS (audit_columns),
  audit_csv_columns, G_N_ELEMENTS (audit_csv_columns),
  audit_row, audit_row_csv,
};

/* The audit log, newest first. */
gboolean
gk_export_audit (GkDatabase      *db,
                 GkExportFormat   format,
                 const char      *path,
                 GCancellable    *cancellable,
                 guint64         *n_rows,
                 GError         **error)
{
  g_autoptr(GPtrArray) rows = NULL;
  gint64 count;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  count = gk_audit_count (db, error);
  if (count < 0)
    return FALSE;
  rows = gk_audit_list (db, (guint) MIN (count, G_MAXUINT), 0, error);
  if (rows == NULL)
    return FALSE;
  if (!export_table (&audit_table, rows, format, path, cancellable, error))
    return FALSE;
  if (n_rows != NULL)
    *n_rows = rows->len;
  return gk_audit_record_export (db, "audit", path, rows->len, error);
}
