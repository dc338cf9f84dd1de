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

/* --- Columns ------------------------------------------------------------ */

/* How a column's value is written. */
typedef enum
{
  COL_INT,     /* an integer, always written */
  COL_ID,      /* an id (or an HTTP status): empty when 0, for none */
  COL_TEXT,    /* a string: empty when NULL */
  COL_NAME,    /* an enum, written as the name @name gives it */
  COL_BOOL,    /* 1 or 0; a boolean cell */
  COL_MONEY,   /* dollars (a double); a currency cell */
  COL_BUDGET,  /* dollars, empty when negative (no budget) */
  COL_TIME,    /* UTC seconds: ISO 8601, a date cell; empty when 0 (never) */
} ColumnType;

/* One column of a table, in both formats: a field of the row's struct,
 * found by its offset. A table lists its columns in the CSV's order (the
 * order scripts read); @book_col is where the workbook puts the column
 * (its own order, the time second), -1 where the CSV alone has it. */
typedef struct
{
  const char  *csv_title;
  const char  *book_title;
  int          book_col;
  ColumnType   type;
  gsize        offset;
  gsize        size;
  const char *(*name) (gint64 value);
} Column;

/* @book_title NULL: the workbook calls the column as the CSV does. */
#define COLUMN(csv_title, book_title, book_col, type, Type, field)                     \
  { (csv_title), (book_title), (book_col), (type), G_STRUCT_OFFSET (Type, field),      \
    sizeof (((Type *) NULL)->field), NULL }
/* An enum, written as @name names it. */
#define NAME_COLUMN(title, book_col, Type, field, name)                                \
  { (title), NULL, (book_col), COL_NAME, G_STRUCT_OFFSET (Type, field),                \
    sizeof (((Type *) NULL)->field), (name) }

/* What a table is called and has. */
typedef struct
{
  const char   *sheet_name;
  const Column *columns;
  guint         n_columns;
} Table;

/* A numeric field of any width (an int, an enum, a gboolean or a gint64). */
static gint64
column_int (const Column  *col,
            gconstpointer  row)
{
  if (col->size == sizeof (gint64))
    return G_STRUCT_MEMBER (gint64, row, col->offset);
  g_assert (col->size == sizeof (gint32));
  return G_STRUCT_MEMBER (gint32, row, col->offset);
}

static double
column_double (const Column  *col,
               gconstpointer  row)
{
  g_assert (col->size == sizeof (double));
  return G_STRUCT_MEMBER (double, row, col->offset);
}

static const char *
column_text (const Column  *col,
             gconstpointer  row)
{
  if (col->type == COL_NAME)
    return col->name (column_int (col, row));
  g_assert (col->size == sizeof (char *));
  return G_STRUCT_MEMBER (const char *, row, col->offset);
}

/* --- Workbook ----------------------------------------------------------- */

typedef struct
{
  lxw_workbook  *workbook;
  lxw_worksheet *sheet;
  lxw_format    *header;
  lxw_format    *date;
  lxw_format    *money;
  const Table   *table;
  guint          n_sheets;
  lxw_row_t      row;
  char          *path;
  char          *tmp_path;
  lxw_error      failed;
} Book;

static void
book_add_sheet (Book *book)
{
  const Table *table = book->table;
  g_autofree char *name = book->n_sheets == 0
                            ? g_strdup (table->sheet_name)
                            : g_strdup_printf ("%s %u", table->sheet_name, book->n_sheets + 1);

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
  for (guint i = 0; i < table->n_columns; i++)
    {
      const Column *col = &table->columns[i];
      const char *title = col->book_title != NULL ? col->book_title : col->csv_title;
      lxw_col_t c = (lxw_col_t) col->book_col;

      if (col->book_col < 0)
        continue;
      worksheet_write_string (book->sheet, 0, c, title, book->header);
      worksheet_set_column (book->sheet, c, c, MAX (10, strlen (title) + 2), NULL);
    }
  book->row = 1;
}

static gboolean
book_open (Book         *book,
           const char   *path,
           const Table  *table,
           GError      **error)
{
  lxw_workbook_options options = { .constant_memory = LXW_TRUE, .tmpdir = NULL };

  memset (book, 0, sizeof *book);
  book->path = g_strdup (path);
  book->tmp_path = g_strdup_printf ("%s.part", path);
  book->table = table;
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

/* Writes @data's cells on the next row, on a new sheet when this one is
 * full: numbers as numbers, times as dates (a number with a date format),
 * money with a currency format; an empty value leaves its cell empty. */
static void
book_row (Book          *book,
          gconstpointer  data)
{
  lxw_row_t row;

  if (book->row >= MAX_SHEET_ROWS)
    book_add_sheet (book);
  if (book->sheet == NULL)
    return;
  row = book->row++;
  for (guint i = 0; i < book->table->n_columns; i++)
    {
      const Column *col = &book->table->columns[i];
      lxw_col_t c = (lxw_col_t) col->book_col;
      const char *text;
      gint64 value;
      double money;

      if (col->book_col < 0)
        continue;
      switch (col->type)
        {
        case COL_INT:
        case COL_ID:
          value = column_int (col, data);
          if (col->type == COL_INT || value > 0)
            worksheet_write_number (book->sheet, row, c, (double) value, NULL);
          break;
        case COL_TEXT:
        case COL_NAME:
          text = column_text (col, data);
          if (text != NULL && *text != '\0')
            worksheet_write_string (book->sheet, row, c, text, NULL);
          break;
        case COL_BOOL:
          worksheet_write_boolean (book->sheet, row, c, column_int (col, data) != 0, NULL);
          break;
        case COL_MONEY:
        case COL_BUDGET:
          money = column_double (col, data);
          if (col->type == COL_MONEY || money >= 0)
            worksheet_write_number (book->sheet, row, c, money, book->money);
          break;
        case COL_TIME:
          value = column_int (col, data);
          if (value > 0)
            worksheet_write_number (book->sheet, row, c,
                                    EXCEL_UNIX_DAYS + (double) value / 86400.0, book->date);
          break;
        default:
          g_assert_not_reached ();
        }
    }
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
csv_text (GString    *out,
          const char *text)
{
  if (text == NULL)
    return;

  if (strpbrk (text, ",\"\r\n") != NULL)
    {
      g_string_append_c (out, '"');
      for (const char *p = text; *p != '\0'; p++)
        {
          if (*p == '"')
            g_string_append_c (out, '"');
          g_string_append_c (out, *p);
        }
      g_string_append_c (out, '"');
    }
  else
    g_string_append (out, text);
}

/* Locale-independent: a CSV must not get decimal commas. */
static void
csv_double (GString *out,
            double   value)
{
  char buffer[G_ASCII_DTOSTR_BUF_SIZE];

  g_string_append (out, g_ascii_formatd (buffer, sizeof buffer, "%.6f", value));
}

/* A UTC time as ISO 8601 ("2026-03-15T12:00:00Z"), empty for "never";
 * formatted without GDateTime: an export writes a million of them. */
static void
csv_time (GString *out,
          gint64   unix_time)
{
  struct tm tm;
  time_t t = (time_t) unix_time;
  char buffer[32];

  if (unix_time > 0 && gmtime_r (&t, &tm) != NULL)
    g_string_append_len (out, buffer,
                         (gssize) strftime (buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm));
}

static void
csv_header (GString     *out,
            const Table *table)
{
  for (guint i = 0; i < table->n_columns; i++)
    {
      csv_text (out, table->columns[i].csv_title);
      g_string_append (out, i + 1 == table->n_columns ? "\r\n" : ",");
    }
}

/* Appends @data as a line of @table's columns; an empty value is an empty
 * field. */
static void
csv_row (GString       *out,
         const Table   *table,
         gconstpointer  data)
{
  for (guint i = 0; i < table->n_columns; i++)
    {
      const Column *col = &table->columns[i];
      gint64 value;
      double money;

      switch (col->type)
        {
        case COL_INT:
        case COL_ID:
          value = column_int (col, data);
          if (col->type == COL_INT || value > 0)
            g_string_append_printf (out, "%" PRId64, value);
          break;
        case COL_TEXT:
        case COL_NAME:
          csv_text (out, column_text (col, data));
          break;
        case COL_BOOL:
          g_string_append_c (out, column_int (col, data) != 0 ? '1' : '0');
          break;
        case COL_MONEY:
        case COL_BUDGET:
          money = column_double (col, data);
          if (col->type == COL_MONEY || money >= 0)
            csv_double (out, money);
          break;
        case COL_TIME:
          csv_time (out, column_int (col, data));
          break;
        default:
          g_assert_not_reached ();
        }
      g_string_append (out, i + 1 == table->n_columns ? "\r\n" : ",");
    }
}

/* --- Either format ------------------------------------------------------ */

/* Where the rows go, whichever the format. */
typedef struct
{
  GkExportFormat  format;
  const Table    *table;
  Book            book;
  Csv             csv;
} Sink;

static gboolean
sink_open (Sink            *sink,
           GkExportFormat   format,
           const char      *path,
           const Table     *table,
           GError         **error)
{
  sink->format = format;
  sink->table = table;
  if (format == GK_EXPORT_XLSX)
    return book_open (&sink->book, path, table, error);
  if (!csv_open (&sink->csv, path, error))
    return FALSE;
  csv_header (sink->csv.buffer, table);
  return TRUE;
}

static void
sink_row (Sink          *sink,
          gconstpointer  row)
{
  if (sink->format == GK_EXPORT_XLSX)
    book_row (&sink->book, row);
  else
    {
      csv_row (sink->csv.buffer, sink->table, row);
      csv_maybe_flush (&sink->csv);
    }
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

/* Writes @rows whole. */
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
      sink_row (&sink, rows->pdata[i]);
      ok = !g_cancellable_set_error_if_cancelled (cancellable, error);
    }
  return sink_close (&sink, ok, ok ? error : NULL);
}

/* --- Usage -------------------------------------------------------------- */

static const char *
usage_status_name (gint64 value)
{
  return gk_usage_status_to_string ((GkUsageStatus) value);
}

static const Column usage_columns[] = {
  COLUMN ("id", NULL, 0, COL_INT, GkUsageRow, id),
  /* No key: a request refused before one was chosen. */
  COLUMN ("key_id", NULL, 2, COL_ID, GkUsageRow, key_id),
  COLUMN ("key_name", NULL, 3, COL_TEXT, GkUsageRow, key_name),
  COLUMN ("model", NULL, 4, COL_TEXT, GkUsageRow, model),
  COLUMN ("tokens_used", NULL, 7, COL_INT, GkUsageRow, tokens_used),
  COLUMN ("prompt_tokens", NULL, 8, COL_INT, GkUsageRow, prompt_tokens),
  COLUMN ("output_tokens", NULL, 9, COL_INT, GkUsageRow, output_tokens),
  COLUMN ("cost_usd", NULL, 10, COL_MONEY, GkUsageRow, cost_usd),
  COLUMN ("priced", NULL, 11, COL_BOOL, GkUsageRow, priced),
  NAME_COLUMN ("status", 5, GkUsageRow, status, usage_status_name),
  COLUMN ("http_status", NULL, 6, COL_ID, GkUsageRow, http_status),
  COLUMN ("error_message", NULL, 14, COL_TEXT, GkUsageRow, error_message),
  COLUMN ("user_id", NULL, 12, COL_TEXT, GkUsageRow, user_id),
  COLUMN ("latency_ms", NULL, 13, COL_INT, GkUsageRow, latency_ms),
  COLUMN ("created_at", "time_utc", 1, COL_TIME, GkUsageRow, created_at),
};

static const Table usage_table = { "Usage", usage_columns, G_N_ELEMENTS (usage_columns) };

void
gk_export_csv_usage_header (GString *out)
{
  csv_header (out, &usage_table);
}

void
gk_export_csv_usage_row (GString          *out,
                         const GkUsageRow *row)
{
  csv_row (out, &usage_table, row);
}

static void
usage_row (const GkUsageRow *row,
           gpointer          sink)
{
  sink_row (sink, row);
}

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
  gint64 before = G_MAXINT64;
  guint64 total = 0;
  gboolean ok = TRUE;
  Sink sink;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!sink_open (&sink, format, path, &usage_table, error))
    return FALSE;
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
        n = gk_stats_usage_page (db, before, EXPORT_PAGE, usage_row, &sink, &before, error);
      else
        n = gk_stats_usage_query_page (db, filter, before, EXPORT_PAGE, usage_row, &sink,
                                       &before, error);
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

static const char *
rotation_reason_name (gint64 value)
{
  return gk_rotation_reason_to_string ((GkRotationReason) value);
}

static const Column rotation_columns[] = {
  COLUMN ("id", NULL, 0, COL_INT, GkRotationRow, id),
  COLUMN ("from_key_id", NULL, 2, COL_INT, GkRotationRow, from_key_id),
  COLUMN ("from_key_name", NULL, 3, COL_TEXT, GkRotationRow, from_key_name),
  COLUMN ("to_key_id", NULL, 4, COL_ID, GkRotationRow, to_key_id),
  COLUMN ("to_key_name", NULL, 5, COL_TEXT, GkRotationRow, to_key_name),
  NAME_COLUMN ("reason", 6, GkRotationRow, reason, rotation_reason_name),
  COLUMN ("triggered_by", NULL, 7, COL_TEXT, GkRotationRow, triggered_by),
  COLUMN ("created_at", "time_utc", 1, COL_TIME, GkRotationRow, created_at),
};

static const Table rotation_table = {
  "Rotations", rotation_columns, G_N_ELEMENTS (rotation_columns)
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

static const char *
key_status_name (gint64 value)
{
  return gk_key_status_to_string ((GkKeyStatus) value);
}

/* A quota's limit and use: in the CSV only. */
#define QUOTA_COLUMNS(title, slot)                                        \
  COLUMN (title "_limit", NULL, -1, COL_INT, GkKey, quotas[slot].limit_value), \
  COLUMN (title "_used", NULL, -1, COL_INT, GkKey, quotas[slot].used_value)

static const Column key_columns[] = {
  COLUMN ("id", NULL, 0, COL_INT, GkKey, id),
  COLUMN ("name", NULL, 1, COL_TEXT, GkKey, name),
  COLUMN ("key_hint", NULL, 2, COL_TEXT, GkKey, key_hint),
  COLUMN ("project", NULL, 3, COL_TEXT, GkKey, project),
  NAME_COLUMN ("status", 4, GkKey, status, key_status_name),
  COLUMN ("priority", NULL, 5, COL_INT, GkKey, priority),
  COLUMN ("is_default", NULL, 6, COL_BOOL, GkKey, is_default),
  COLUMN ("monthly_budget_usd", NULL, 7, COL_BUDGET, GkKey, monthly_budget_usd),
  COLUMN ("month_cost_usd", NULL, 8, COL_MONEY, GkKey, month_cost_usd),
  COLUMN ("created_at", "created_utc", 9, COL_TIME, GkKey, created_at),
  COLUMN ("last_used_at", "last_used_utc", 10, COL_TIME, GkKey, last_used_at),
  QUOTA_COLUMNS ("monthly_tokens", GK_QUOTA_SLOT_MONTHLY_TOKENS),
  QUOTA_COLUMNS ("daily_tokens", GK_QUOTA_SLOT_DAILY_TOKENS),
  QUOTA_COLUMNS ("minute_tokens", GK_QUOTA_SLOT_MINUTE_TOKENS),
  QUOTA_COLUMNS ("daily_requests", GK_QUOTA_SLOT_DAILY_REQUESTS),
  QUOTA_COLUMNS ("minute_requests", GK_QUOTA_SLOT_MINUTE_REQUESTS),
};

G_STATIC_ASSERT (GK_QUOTA_N_SLOTS == 5);

static const Table key_table = { "Keys", key_columns, G_N_ELEMENTS (key_columns) };

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

static const char *
audit_action_name (gint64 value)
{
  return gk_audit_action_to_string ((GkAuditAction) value);
}

static const Column audit_columns[] = {
  COLUMN ("id", NULL, 0, COL_INT, GkAuditRow, id),
  COLUMN ("created_at", "time_utc", 1, COL_TIME, GkAuditRow, created_at),
  COLUMN ("actor", NULL, 2, COL_TEXT, GkAuditRow, actor),
  NAME_COLUMN ("action", 3, GkAuditRow, action, audit_action_name),
  COLUMN ("target_id", NULL, 4, COL_ID, GkAuditRow, target_id),
  COLUMN ("target", NULL, 5, COL_TEXT, GkAuditRow, target),
  COLUMN ("summary", NULL, 6, COL_TEXT, GkAuditRow, summary),
};

static const Table audit_table = { "Audit", audit_columns, G_N_ELEMENTS (audit_columns) };

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
