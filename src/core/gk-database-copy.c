/* gk-database-copy.c: a whole SQLite pool copied into an empty PostgreSQL
 * database (gemini-keysctl db copy), history included, then verified.
 *
 * Every table of the file is copied row by row with its ids, in batches of
 * COPY_BATCH rows, each batch a transaction of the target. The file is read
 * in one snapshot. Ciphertexts are copied byte for byte and the meta rows
 * (the database's uuid, the master key's check value, the rollups' marks)
 * replace the target's own, so the same master key opens the copy and the
 * keyring item (named by the uuid) finds it. Each identity sequence then
 * starts past the highest id copied. Last, every table's row count and its
 * sums of tokens, requests and cost are compared on both sides.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>

#include "gk-database-postgresql.h"
#include "gk-database-private.h"
#include "gk-database.h"
#include "gk-stats-private.h"

#define COPY_BATCH 5000

/* Copied first, in this order: the others refer to keys. */
static const char *const first_tables[] = { "meta", "settings", "gemini_api_keys", NULL };
/* Columns whose sums are compared when a table has them. */
static const char *const summed_columns[] = {
  "tokens_used", "prompt_tokens", "output_tokens", "tokens", "requests", "successes",
  "used_value", "cost_usd", NULL
};

typedef struct
{
  GkDatabase *from;
  GkDatabase *to;
  GPtrArray  *tables;   /* GkDatabaseCopyTable, in copy order */
} CopyJob;

void
gk_database_copy_table_free (GkDatabaseCopyTable *table)
{
  g_free (table->name);
  g_free (table);
}

/* The file's tables: those of first_tables[] first, then the others by name. */
static GPtrArray *
list_tables (GkDatabase  *db,
             GError     **error)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) ordered = g_ptr_array_new_with_free_func (g_free);
  GkSqlStmt *stmt;
  int rc;

  stmt = gk_database_prepare (db,
                              "SELECT name FROM sqlite_master WHERE type = 'table'"
                              " AND name NOT LIKE 'sqlite_%' ORDER BY name",
                              error);
  if (stmt == NULL)
    return NULL;
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    g_ptr_array_add (names, g_strdup (gk_sql_column_text (stmt, 0)));
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (db, error, _("Cannot read the database"));
      return NULL;
    }
  for (guint i = 0; first_tables[i] != NULL; i++)
    if (g_ptr_array_find_with_equal_func (names, first_tables[i], g_str_equal, NULL))
      g_ptr_array_add (ordered, g_strdup (first_tables[i]));
  for (guint i = 0; i < names->len; i++)
    if (!g_strv_contains (first_tables, names->pdata[i]))
      g_ptr_array_add (ordered, g_strdup (names->pdata[i]));
  return g_steal_pointer (&ordered);
}

/* The columns of @table in the file, in order. */
static GStrv
list_columns (GkDatabase  *db,
              const char  *table,
              GError     **error)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
  g_autofree char *sql = g_strdup_printf ("SELECT name FROM pragma_table_info ('%s')", table);
  GkSqlStmt *stmt = gk_database_prepare (db, sql, error);
  int rc;

  if (stmt == NULL)
    return NULL;
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    g_strv_builder_add (builder, gk_sql_column_text (stmt, 0));
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (db, error, _("Cannot read the database"));
      return NULL;
    }
  return g_strv_builder_end (builder);
}

/* Runs @sql on @db, expecting one row; its first column as a double. */
static gboolean
query_double (GkDatabase  *db,
              const char  *sql,
              double      *value,
              GError     **error)
{
  GkSqlStmt *stmt;
  GkSqlStep rc;

  gk_database_lock (db);
  stmt = gk_database_prepare (db, sql, error);
  if (stmt == NULL)
    {
      gk_database_unlock (db);
      return FALSE;
    }
  rc = gk_sql_step (stmt);
  if (rc == GK_SQL_ROW)
    *value = gk_sql_column_double (stmt, 0);
  else
    gk_database_set_error (db, error, _("Cannot read the database"));
  gk_sql_reset (stmt);
  gk_database_unlock (db);
  return rc == GK_SQL_ROW;
}

/* A table the target already holds rows of: a copy never mixes pools. The
 * target's own meta rows and default settings do not count. */
static gboolean
target_is_empty (GkDatabase  *to,
                 GPtrArray   *tables,
                 GError     **error)
{
  for (guint i = 0; i < tables->len; i++)
    {
      const char *table = tables->pdata[i];
      g_autofree char *sql = NULL;
      double n = 0;

      if (g_str_equal (table, "meta") || g_str_equal (table, "settings"))
        continue;
      sql = g_strdup_printf ("SELECT count(*) FROM (SELECT 1 FROM %s LIMIT 1) AS any_row", table);
      if (!query_double (to, sql, &n, error))
        return FALSE;
      if (n > 0)
        {
          g_set_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_FAILED,
                       _("The target database already holds rows (in %s). Copy into a new, "
                         "empty database."),
                       table);
          return FALSE;
        }
    }
  return TRUE;
}

/* Binds column @col of the file's row to @i of the target's statement. */
static void
bind_value (GkSqlStmt *src,
            int        col,
            GkSqlStmt *dst,
            int        i)
{
  switch (gk_sql_column_type (src, col))
    {
    case GK_SQL_INTEGER:
      gk_sql_bind_int64 (dst, i, gk_sql_column_int64 (src, col));
      break;
    case GK_SQL_FLOAT:
      gk_sql_bind_double (dst, i, gk_sql_column_double (src, col));
      break;
    case GK_SQL_TEXT:
      gk_sql_bind_text (dst, i, gk_sql_column_text (src, col), -1);
      break;
    case GK_SQL_BLOB:
      gk_sql_bind_blob (dst, i, gk_sql_column_blob (src, col), gk_sql_column_bytes (src, col));
      break;
    case GK_SQL_NULL:
    default:
      gk_sql_bind_null (dst, i);
      break;
    }
}

/* The INSERT for @table's @columns; meta and settings replace the rows
 * the target's migration wrote. */
static char *
insert_sql (const char         *table,
            const char * const *columns)
{
  g_autoptr(GString) sql = g_string_new (NULL);
  g_autofree char *names = g_strjoinv (", ", (char **) columns);

  g_string_append_printf (sql, "INSERT INTO %s (%s) VALUES (", table, names);
  for (guint i = 0; columns[i] != NULL; i++)
    g_string_append_printf (sql, "%s?%u", i > 0 ? ", " : "", i + 1);
  g_string_append_c (sql, ')');
  if (g_str_equal (table, "meta") || g_str_equal (table, "settings"))
    g_string_append (sql, " ON CONFLICT (key) DO UPDATE SET value = excluded.value");
  return g_string_free (g_steal_pointer (&sql), FALSE);
}

/* Copies @table, COPY_BATCH rows per transaction of the target. Called
 * with the file's lock held, inside its read snapshot. */
static gboolean
copy_table (CopyJob     *job,
            const char  *table,
            GError     **error)
{
  g_auto(GStrv) columns = list_columns (job->from, table, error);
  g_autofree char *names = NULL;
  g_autofree char *select = NULL;
  g_autofree char *insert = NULL;
  GkDatabaseCopyTable *report;
  GkSqlStmt *src;
  gboolean in_batch = FALSE;
  gint64 rows = 0;
  int rc;

  if (columns == NULL)
    return FALSE;
  names = g_strjoinv (", ", columns);
  select = g_strdup_printf ("SELECT %s FROM %s", names, table);
  insert = insert_sql (table, (const char * const *) columns);

  src = gk_database_prepare (job->from, select, error);
  if (src == NULL)
    return FALSE;
  while ((rc = gk_sql_step (src)) == GK_SQL_ROW)
    {
      GkSqlStmt *dst;
      GkSqlStep done;

      if (!in_batch && !gk_database_begin (job->to, error))
        goto fail;
      in_batch = TRUE;
      dst = gk_database_prepare (job->to, insert, error);
      if (dst == NULL)
        goto fail;
      for (guint i = 0; columns[i] != NULL; i++)
        bind_value (src, (int) i, dst, (int) i + 1);
      done = gk_sql_step (dst);
      gk_sql_reset (dst);
      if (done != GK_SQL_DONE)
        {
          gk_database_set_error (job->to, error, _("Cannot copy the database"));
          goto fail;
        }
      if (++rows % COPY_BATCH == 0)
        {
          in_batch = FALSE;
          if (!gk_database_commit (job->to, error))
            goto fail_committed;
        }
    }
  gk_sql_reset (src);
  if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (job->from, error, _("Cannot read the database"));
      goto fail;
    }
  if (in_batch && !gk_database_commit (job->to, error))
    return FALSE;

  report = g_new0 (GkDatabaseCopyTable, 1);
  report->name = g_strdup (table);
  report->rows = rows;
  g_ptr_array_add (job->tables, report);
  return TRUE;

fail:
  gk_sql_reset (src);
  if (in_batch)
    gk_database_rollback (job->to);
  return FALSE;
fail_committed:
  gk_sql_reset (src);
  return FALSE;
}

static gboolean
copy_all (GkDatabase  *from,
          gpointer     data,
          GError     **error)
{
  CopyJob *job = data;
  g_autoptr(GPtrArray) tables = list_tables (from, error);

  if (tables == NULL || !target_is_empty (job->to, tables, error))
    return FALSE;
  for (guint i = 0; i < tables->len; i++)
    if (!copy_table (job, tables->pdata[i], error))
      return FALSE;
  return TRUE;
}

/* New rows of the target get ids past the copied ones. */
static gboolean
advance_sequences (CopyJob  *job,
                   GError  **error)
{
  for (guint i = 0; i < job->tables->len; i++)
    {
      GkDatabaseCopyTable *table = job->tables->pdata[i];
      g_autofree char *has_id = g_strdup_printf ("SELECT count(*) FROM information_schema.columns"
                                                 " WHERE table_schema = current_schema ()"
                                                 " AND table_name = '%s' AND column_name = 'id'"
                                                 " AND is_identity = 'YES'",
                                                 table->name);
      g_autofree char *setval = NULL;
      double n = 0, ignored = 0;

      if (!query_double (job->to, has_id, &n, error))
        return FALSE;
      if (n == 0)
        continue;
      setval = g_strdup_printf ("SELECT setval (pg_get_serial_sequence ('%s', 'id'),"
                                " coalesce (max (id), 0) + 1, false) FROM %s",
                                table->name, table->name);
      if (!query_double (job->to, setval, &ignored, error))
        return FALSE;
    }
  return TRUE;
}

/* Row counts and sums equal on both sides. */
static gboolean
verify (CopyJob  *job,
        GError  **error)
{
  for (guint i = 0; i < job->tables->len; i++)
    {
      GkDatabaseCopyTable *table = job->tables->pdata[i];
      g_auto(GStrv) columns = NULL;
      g_autoptr(GPtrArray) checks = g_ptr_array_new_with_free_func (g_free);

      gk_database_lock (job->from);
      columns = list_columns (job->from, table->name, error);
      gk_database_unlock (job->from);
      if (columns == NULL)
        return FALSE;

      /* The server keeps its schema version in meta, the file in its header. */
      g_ptr_array_add (checks, g_strdup_printf ("SELECT count(*) FROM %s%s", table->name,
                                                g_str_equal (table->name, "meta")
                                                  ? " WHERE key <> '"
                                                    GK_DATABASE_POSTGRESQL_VERSION_KEY "'"
                                                  : ""));
      for (guint c = 0; summed_columns[c] != NULL; c++)
        if (g_strv_contains ((const char * const *) columns, summed_columns[c]))
          g_ptr_array_add (checks, g_strdup_printf ("SELECT coalesce (sum(%s), 0) FROM %s",
                                                    summed_columns[c], table->name));
      for (guint c = 0; c < checks->len; c++)
        {
          double a = 0, b = 0;

          if (!query_double (job->from, checks->pdata[c], &a, error)
              || !query_double (job->to, checks->pdata[c], &b, error))
            return FALSE;
          /* Sums of costs may differ in their last bits (the order of
           * additions); counts and token sums are exact. */
          if (fabs (a - b) > 1e-9 * MAX (1.0, fabs (a)))
            {
              g_set_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_FAILED,
                           _("The copy differs from the original in %s (%s: %.17g here, %.17g "
                             "there). Drop the target database and copy again."),
                           table->name, (const char *) checks->pdata[c], b, a);
              return FALSE;
            }
        }
    }
  return TRUE;
}

/**
 * gk_database_copy:
 * @from: an SQLite database (migrated)
 * @to: an empty PostgreSQL database (migrated)
 * @error: a #GK_DATABASE_ERROR
 *
 * Copies every table of @from into @to and verifies the copy (see the top
 * of this file). Refuses a target that already holds rows. A failure part
 * way leaves the batches already committed: drop the target and copy
 * again.
 *
 * Returns: (transfer full): the tables copied (#GkDatabaseCopyTable), or
 * %NULL on error.
 */
GPtrArray *
gk_database_copy (GkDatabase  *from,
                  GkDatabase  *to,
                  GError     **error)
{
  CopyJob job = { from, to, NULL };
  g_autoptr(GPtrArray) tables =
    g_ptr_array_new_with_free_func ((GDestroyNotify) gk_database_copy_table_free);

  g_return_val_if_fail (GK_IS_DATABASE (from) && !gk_database_is_remote (from), NULL);
  g_return_val_if_fail (GK_IS_DATABASE (to) && gk_database_is_remote (to), NULL);

  job.tables = tables;
  if (!gk_stats_with_read_snapshot (from, copy_all, &job, error)
      || !advance_sequences (&job, error)
      || !verify (&job, error))
    return NULL;
  return g_steal_pointer (&tables);
}
