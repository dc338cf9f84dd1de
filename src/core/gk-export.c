/* gk-export.c: .xlsx spreadsheets through libxlsxwriter.
 *
 * The workbook is written in libxlsxwriter's constant-memory mode (rows
 * go to disk as they come, in order) to a file next to the target, which
 * replaces the target only when complete: a failed or cancelled export
 * leaves no half file.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <xlsxwriter.h>

#include "gk-audit.h"
#include "gk-export.h"
#include "gk-database.h"
#include "gk-key-state.h"

#define EXPORT_PAGE      1000
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

/* --- Usage -------------------------------------------------------------- */

static const char *const usage_columns[] = {
  "id", "time_utc", "key_id", "key_name", "model", "status", "http_status", "tokens_used",
  "prompt_tokens", "output_tokens", "cost_usd", "priced", "user_id", "latency_ms",
  "error_message",
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

/**
 * gk_export_usage_xlsx:
 *
 * Writes the rows of @filter, newest first, a keyset page at a time. Rows
 * recorded while it runs (higher ids than its first page) are left out.
 */
gboolean
gk_export_usage_xlsx (GkDatabase          *db,
                      const GkUsageFilter *filter,
                      const char          *path,
                      GkExportProgress     progress,
                      gpointer             user_data,
                      GCancellable        *cancellable,
                      guint64             *n_rows,
                      GError             **error)
{
  GkUsageFilter all = GK_USAGE_FILTER_INIT;
  gint64 before = G_MAXINT64;
  guint64 total = 0;
  gboolean ok = TRUE;
  Book book;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!book_open (&book, path, "Usage", usage_columns, G_N_ELEMENTS (usage_columns), error))
    return FALSE;
  for (;;)
    {
      gint64 n;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        {
          ok = FALSE;
          break;
        }
      n = gk_stats_usage_query_page (db, filter != NULL ? filter : &all, before, EXPORT_PAGE,
                                     usage_row, &book, &before, error);
      if (n < 0)
        {
          ok = FALSE;
          break;
        }
      total += (guint64) n;
      if (progress != NULL)
        progress (total, user_data);
      if (n < EXPORT_PAGE || book.failed != LXW_NO_ERROR)
        break;
    }
  if (!book_close (&book, ok, ok ? error : NULL))
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

gboolean
gk_export_rotations_xlsx (GkDatabase  *db,
                          const char  *path,
                          guint64     *n_rows,
                          GError     **error)
{
  g_autoptr(GPtrArray) rows = NULL;
  gint64 all = 0, manual = 0, automatic = 0;
  Book book;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);

  if (!gk_stats_rotation_totals (db, &all, &manual, &automatic, error))
    return FALSE;
  rows = gk_stats_rotation_logs (db, (guint) MAX (all, 1), error);
  if (rows == NULL)
    return FALSE;
  if (!book_open (&book, path, "Rotations", rotation_columns, G_N_ELEMENTS (rotation_columns),
                  error))
    return FALSE;
  for (guint i = 0; i < rows->len; i++)
    {
      const GkRotationRow *r = rows->pdata[i];
      lxw_row_t row = book_next_row (&book);

      cell_int (&book, row, 0, r->id);
      cell_time (&book, row, 1, r->created_at);
      cell_int (&book, row, 2, r->from_key_id);
      cell_string (&book, row, 3, r->from_key_name);
      if (r->to_key_id > 0)
        cell_int (&book, row, 4, r->to_key_id);
      cell_string (&book, row, 5, r->to_key_name);
      cell_string (&book, row, 6, gk_rotation_reason_to_string (r->reason));
      cell_string (&book, row, 7, r->triggered_by);
    }
  if (!book_close (&book, TRUE, error))
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

gboolean
gk_export_keys_xlsx (GkKeyStore  *store,
                     const char  *path,
                     guint64     *n_rows,
                     GError     **error)
{
  g_autoptr(GPtrArray) keys = NULL;
  Book book;

  g_return_val_if_fail (GK_IS_KEY_STORE (store), FALSE);

  keys = gk_key_store_list (store, error);
  if (keys == NULL)
    return FALSE;
  if (!book_open (&book, path, "Keys", key_columns, G_N_ELEMENTS (key_columns), error))
    return FALSE;
  for (guint i = 0; i < keys->len; i++)
    {
      const GkKey *k = keys->pdata[i];
      lxw_row_t row = book_next_row (&book);

      cell_int (&book, row, 0, k->id);
      cell_string (&book, row, 1, k->name);
      cell_string (&book, row, 2, k->key_hint);
      cell_string (&book, row, 3, k->project);
      cell_string (&book, row, 4, gk_key_status_to_string (k->status));
      cell_int (&book, row, 5, k->priority);
      worksheet_write_boolean (book.sheet, row, 6, k->is_default, NULL);
      if (k->monthly_budget_usd >= 0)
        cell_money (&book, row, 7, k->monthly_budget_usd);
      cell_money (&book, row, 8, k->month_cost_usd);
      cell_time (&book, row, 9, k->created_at);
      cell_time (&book, row, 10, k->last_used_at);
    }
  if (!book_close (&book, TRUE, error))
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

gboolean
gk_export_audit_xlsx (GkDatabase  *db,
                      const char  *path,
                      guint64     *n_rows,
                      GError     **error)
{
  g_autoptr(GPtrArray) rows = NULL;
  gint64 count;
  Book book;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);

  count = gk_audit_count (db, error);
  if (count < 0)
    return FALSE;
  rows = gk_audit_list (db, (guint) MIN (count, G_MAXUINT), 0, error);
  if (rows == NULL)
    return FALSE;
  if (!book_open (&book, path, "Audit", audit_columns, G_N_ELEMENTS (audit_columns), error))
    return FALSE;
  for (guint i = 0; i < rows->len; i++)
    {
      const GkAuditRow *r = rows->pdata[i];
      lxw_row_t row = book_next_row (&book);

      cell_int (&book, row, 0, r->id);
      cell_time (&book, row, 1, r->created_at);
      cell_string (&book, row, 2, r->actor);
      cell_string (&book, row, 3, gk_audit_action_to_string (r->action));
      if (r->target_id > 0)
        cell_int (&book, row, 4, r->target_id);
      cell_string (&book, row, 5, r->target);
      cell_string (&book, row, 6, r->summary);
    }
  if (!book_close (&book, TRUE, error))
    return FALSE;
  if (n_rows != NULL)
    *n_rows = rows->len;
  return gk_audit_record_export (db, "audit", path, rows->len, error);
}
