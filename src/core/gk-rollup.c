/* gk-rollup.c: folding new usage-log rows into the rollup tables.
 *
 * The log's ids only grow (AUTOINCREMENT) and the app never changes a row
 * once written, so the rows not yet summed are exactly those above meta
 * "rollup_max_id". A fold reads that mark and the log's highest id inside
 * one BEGIN IMMEDIATE transaction, adds the rows between them with one
 * grouped upsert per table and moves the mark, all in that transaction:
 * two processes catching up at once take turns, and the second finds
 * nothing left to add. Rows deleted by hand are subtracted by a trigger
 * (migration 2); rows edited by hand after their fold are not re-read.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-database-private.h"
#include "gk-rollup.h"

#define BUCKET G_STRINGIFY (GK_ROLLUP_BUCKET_SECONDS)

static const char progress_sql[] =
  "SELECT (SELECT CAST (value AS INTEGER) FROM meta WHERE key = '" GK_ROLLUP_META_MAX_ID "'),"
  " (SELECT max (id) FROM gemini_key_usage_log)";

static const char fold_total_sql[] =
  "INSERT INTO usage_rollup_total (start, requests, successes, cost_usd)"
  " SELECT created_at - created_at % " BUCKET ", count(*), sum(status = 'SUCCESS'),"
  " total(cost_usd) FROM gemini_key_usage_log WHERE id > ?1 AND id <= ?2 GROUP BY 1"
  " ON CONFLICT (start) DO UPDATE SET requests = requests + excluded.requests,"
  " successes = successes + excluded.successes, cost_usd = cost_usd + excluded.cost_usd";

/* ?3 is the span. Rows without a model or a user are counted in the
 * totals but not ranked. */
#define FOLD_RANK_SQL(table, col) \
  "INSERT INTO " table " (span, start, " col ", requests, tokens, cost_usd)" \
  " SELECT ?3, created_at - created_at % ?3, " col ", count(*), sum(tokens_used)," \
  " total(cost_usd) FROM gemini_key_usage_log" \
  " WHERE id > ?1 AND id <= ?2 AND " col " <> '' GROUP BY 2, 3" \
  " ON CONFLICT (span, start, " col ") DO UPDATE SET" \
  " requests = requests + excluded.requests, tokens = tokens + excluded.tokens," \
  " cost_usd = cost_usd + excluded.cost_usd"

static const char fold_model_sql[] = FOLD_RANK_SQL ("usage_rollup_model", "model");
static const char fold_user_sql[] = FOLD_RANK_SQL ("usage_rollup_user", "user_id");

static const char set_progress_sql[] =
  "INSERT INTO meta (key, value) VALUES ('" GK_ROLLUP_META_MAX_ID "', ?1)"
  " ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/* The highest id folded in and the log's highest id (0 when empty). */
static gboolean
read_progress (GkDatabase  *db,
               gint64      *folded,
               gint64      *last,
               GError     **error)
{
  sqlite3_stmt *stmt = gk_database_prepare (db, progress_sql, error);

  if (stmt == NULL)
    return FALSE;
  if (sqlite3_step (stmt) != SQLITE_ROW)
    {
      gk_database_set_error (db, error, _("Cannot read the statistics"));
      sqlite3_reset (stmt);
      return FALSE;
    }
  *folded = sqlite3_column_int64 (stmt, 0);
  *last = sqlite3_column_int64 (stmt, 1);
  sqlite3_reset (stmt);
  return TRUE;
}

static gboolean
run (GkDatabase  *db,
     const char  *sql,
     gint64       after,
     gint64       upto,
     gint64       span,
     GError     **error)
{
  sqlite3_stmt *stmt = gk_database_prepare (db, sql, error);
  int rc;

  if (stmt == NULL)
    return FALSE;
  /* Unused parameters are simply not in the statement. */
  sqlite3_bind_int64 (stmt, 1, after);
  sqlite3_bind_int64 (stmt, 2, upto);
  sqlite3_bind_int64 (stmt, 3, span);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_DONE)
    gk_database_set_error (db, error, _("Database update failed"));
  sqlite3_reset (stmt);
  return rc == SQLITE_DONE;
}

static gboolean
fold (GkDatabase  *db,
      gint64       after,
      gint64       upto,
      GError     **error)
{
  static const gint64 spans[] = { GK_ROLLUP_BUCKET_SECONDS, GK_ROLLUP_DAY_SECONDS };

  if (!run (db, fold_total_sql, after, upto, 0, error))
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (spans); i++)
    {
      if (!run (db, fold_model_sql, after, upto, spans[i], error)
          || !run (db, fold_user_sql, after, upto, spans[i], error))
        return FALSE;
    }
  return run (db, set_progress_sql, upto, 0, 0, error);
}

/**
 * gk_rollup_catch_up:
 * @db: the database
 * @error: a #GK_DATABASE_ERROR
 *
 * Folds the usage rows written since the last call (by any process) into
 * the rollup tables. Cheap when nothing is new: it then only reads two
 * values and takes no write lock. Outside a transaction the fold is a write
 * transaction of its own; inside a caller's transaction it becomes part of
 * it (a savepoint), so a rollback also takes the fold back.
 *
 * Returns: %TRUE when the rollup covers every row the connection sees.
 */
gboolean
gk_rollup_catch_up (GkDatabase  *db,
                    GError     **error)
{
  gboolean nested, ok;
  gint64 folded = 0, last = 0;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  gk_database_lock (db);
  nested = sqlite3_get_autocommit (gk_database_get_handle (db)) == 0;

  /* Most calls find nothing new; taking the write lock to learn that
   * would wait behind every other process's write. */
  if (!nested)
    {
      if (!read_progress (db, &folded, &last, error))
        {
          gk_database_unlock (db);
          return FALSE;
        }
      if (last <= folded)
        {
          gk_database_unlock (db);
          return TRUE;
        }
    }

  if (nested ? !gk_database_exec (db, "SAVEPOINT gk_rollup", error)
             : !gk_database_begin (db, error))
    {
      gk_database_unlock (db);
      return FALSE;
    }

  /* Read again under the write lock: another connection may have folded
   * these rows in the meantime. */
  ok = read_progress (db, &folded, &last, error)
       && (last <= folded || fold (db, folded, last, error));

  if (nested)
    {
      if (!ok)
        gk_database_exec (db, "ROLLBACK TO gk_rollup", NULL);
      ok = gk_database_exec (db, "RELEASE gk_rollup", ok ? error : NULL) && ok;
    }
  else if (ok)
    ok = gk_database_commit (db, error);
  else
    gk_database_rollback (db);

  gk_database_unlock (db);
  return ok;
}
