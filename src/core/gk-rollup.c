/* gk-rollup.c: folding new usage-log rows into the rollup tables.
 *
 * The log's ids only grow (AUTOINCREMENT) and the app never changes a row
 * once written, so the rows not yet summed are exactly those above meta
 * "rollup_max_id". A fold reads that mark and the log's highest id inside
 * one BEGIN IMMEDIATE transaction, adds the rows between them (summed in
 * memory, one upsert per sum) and moves the mark, all in that transaction:
 * two processes catching up at once take turns, and the second finds
 * nothing left to add. Rows deleted by hand are subtracted by a trigger
 * (migration 2); rows edited by hand after their fold are not re-read.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "gk-database-private.h"
#include "gk-rollup.h"

static const char progress_sql[] =
  "SELECT (SELECT CAST (value AS BIGINT) FROM meta WHERE key = '" GK_ROLLUP_META_MAX_ID "'),"
  " (SELECT max (id) FROM gemini_key_usage_log), " GK_ROLLUP_FACET_DAYS_SQL;

static const char new_rows_sql[] =
  "SELECT created_at, CASE WHEN status = 'SUCCESS' THEN 1 ELSE 0 END, tokens_used, cost_usd,"
  " model, user_id, coalesce (key_id, 0), status,"
  " CASE WHEN status = 'SUCCESS' AND latency_ms > 0 THEN "
  GK_ROLLUP_LATENCY_BUCKET_SQL ("latency_ms") " ELSE -1 END"
  " FROM gemini_key_usage_log WHERE id > ?1 AND id <= ?2";

const gint64 gk_rollup_latency_bounds[GK_ROLLUP_LATENCY_BUCKETS - 1] = {
  100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 15000, 20000, 30000,
  60000, 120000,
};

static const char add_total_sql[] =
  "INSERT INTO usage_rollup_total (start, requests, successes, cost_usd) VALUES (?1, ?2, ?3, ?4)"
  " ON CONFLICT (start) DO UPDATE SET"
  " requests = usage_rollup_total.requests + excluded.requests,"
  " successes = usage_rollup_total.successes + excluded.successes,"
  " cost_usd = usage_rollup_total.cost_usd + excluded.cost_usd";

#define ADD_RANK_SQL(table, col) \
  "INSERT INTO " table " (span, start, " col ", requests, tokens, cost_usd)" \
  " VALUES (?1, ?2, ?3, ?4, ?5, ?6)" \
  " ON CONFLICT (span, start, " col ") DO UPDATE SET" \
  " requests = " table ".requests + excluded.requests," \
  " tokens = " table ".tokens + excluded.tokens," \
  " cost_usd = " table ".cost_usd + excluded.cost_usd"

static const char add_model_sql[] = ADD_RANK_SQL ("usage_rollup_model", "model");
static const char add_user_sql[] = ADD_RANK_SQL ("usage_rollup_user", "user_id");

static const char add_facet_sql[] =
  "INSERT INTO usage_rollup_facet (start, key_id, status, model, user_id, requests,"
  " successes, tokens, cost_usd) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
  " ON CONFLICT (start, key_id, status, model, user_id) DO UPDATE SET"
  " requests = usage_rollup_facet.requests + excluded.requests,"
  " successes = usage_rollup_facet.successes + excluded.successes,"
  " tokens = usage_rollup_facet.tokens + excluded.tokens,"
  " cost_usd = usage_rollup_facet.cost_usd + excluded.cost_usd";

static const char add_key_sql[] =
  "INSERT INTO usage_rollup_key (span, start, key_id, status, requests, tokens, cost_usd)"
  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
  " ON CONFLICT (span, start, key_id, status) DO UPDATE SET"
  " requests = usage_rollup_key.requests + excluded.requests,"
  " tokens = usage_rollup_key.tokens + excluded.tokens,"
  " cost_usd = usage_rollup_key.cost_usd + excluded.cost_usd";

static const char add_latency_sql[] =
  "INSERT INTO usage_rollup_latency (span, start, key_id, bucket, requests)"
  " VALUES (?1, ?2, ?3, ?4, ?5)"
  " ON CONFLICT (span, start, key_id, bucket) DO UPDATE SET"
  " requests = usage_rollup_latency.requests + excluded.requests";

static const char set_progress_sql[] =
  "INSERT INTO meta (key, value) VALUES ('" GK_ROLLUP_META_MAX_ID "', ?1)"
  " ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/* The highest id folded in, the log's highest id (0 when empty) and where
 * the facet sums are per day (GK_ROLLUP_META_FACET_DAYS). */
static gboolean
read_progress (GkDatabase  *db,
               gint64      *folded,
               gint64      *last,
               gint64      *facet_days_before,
               GError     **error)
{
  GkSqlStmt *stmt = gk_database_prepare (db, progress_sql, error);

  if (stmt == NULL)
    return FALSE;
  if (gk_sql_step (stmt) != GK_SQL_ROW)
    {
      gk_database_set_error (db, error, _("Cannot read the statistics"));
      gk_sql_reset (stmt);
      return FALSE;
    }
  *folded = gk_sql_column_int64 (stmt, 0);
  *last = gk_sql_column_int64 (stmt, 1);
  *facet_days_before = gk_sql_column_int64 (stmt, 2);
  gk_sql_reset (stmt);
  return TRUE;
}

/* The new rows are summed in memory and each sum is written with one
 * upsert: one pass over the rows, where a grouped INSERT … SELECT per table
 * would sort them five times (2.5 times the cost at 1,024 rows, measured
 * with bench-core). */
typedef enum
{
  GROUP_TOTAL,
  GROUP_MODEL,
  GROUP_USER,
  GROUP_FACET,
  GROUP_KEY,
  GROUP_LATENCY,
} GroupKind;

typedef struct
{
  GroupKind  kind;
  gint64     span;
  gint64     start;
  char      *name;        /* NULL in the totals; in facets, "status\x1fmodel\x1fuser";
                           * in key sums, the status */
  gint64     key_id;      /* facets, key sums and latencies only */
  gint64     bucket;      /* latencies only */
  gint64     requests;
  gint64     successes;
  gint64     tokens;
  double     cost_usd;
} Group;

static guint
group_hash (gconstpointer data)
{
  const Group *g = data;
  guint hash = g_int64_hash (&g->start) * 31 + (guint) g->span + (guint) g->kind
               + (guint) g->key_id * 17 + (guint) g->bucket * 7;

  return g->name != NULL ? hash * 31 + g_str_hash (g->name) : hash;
}

static gboolean
group_equal (gconstpointer a,
             gconstpointer b)
{
  const Group *ga = a, *gb = b;

  return ga->kind == gb->kind && ga->span == gb->span && ga->start == gb->start
         && ga->key_id == gb->key_id && ga->bucket == gb->bucket
         && g_strcmp0 (ga->name, gb->name) == 0;
}

static void
group_free (Group *g)
{
  g_free (g->name);
  g_free (g);
}

static void
group_add_full (GHashTable *groups,
                GroupKind   kind,
                gint64      span,
                gint64      created_at,
                const char *name,
                gint64      key_id,
                gint64      bucket,
                gboolean    success,
                gint64      tokens,
                double      cost_usd)
{
  /* The same start as "created_at - created_at % span" in SQL (the
   * migration, the trigger): both truncate toward zero. */
  Group key = { kind, span, created_at - created_at % span, (char *) name, key_id, bucket,
                0, 0, 0, 0 };
  Group *g = g_hash_table_lookup (groups, &key);

  if (g == NULL)
    {
      g = g_memdup2 (&key, sizeof key);
      g->name = g_strdup (name);
      g_hash_table_add (groups, g);
    }
  g->requests++;
  g->successes += success ? 1 : 0;
  g->tokens += tokens;
  g->cost_usd += cost_usd;
}

static void
group_add (GHashTable *groups,
           GroupKind   kind,
           gint64      span,
           gint64      created_at,
           const char *name,
           gboolean    success,
           gint64      tokens,
           double      cost_usd)
{
  group_add_full (groups, kind, span, created_at, name, 0, 0, success, tokens, cost_usd);
}

/* Rows older than @facet_days_before (see GK_ROLLUP_META_FACET_DAYS) go
 * to their day's facet sum. */
static gboolean
read_new_rows (GkDatabase  *db,
               gint64       after,
               gint64       upto,
               gint64       facet_days_before,
               GHashTable  *groups,
               GError     **error)
{
  GkSqlStmt *stmt = gk_database_prepare (db, new_rows_sql, error);
  int rc;

  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, after);
  gk_sql_bind_int64 (stmt, 2, upto);
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      gint64 created_at = gk_sql_column_int64 (stmt, 0);
      gboolean success = gk_sql_column_int64 (stmt, 1) != 0;
      gint64 tokens = gk_sql_column_int64 (stmt, 2);
      double cost_usd = gk_sql_column_double (stmt, 3);
      const char *model = gk_sql_column_text (stmt, 4);
      const char *user = gk_sql_column_text (stmt, 5);
      const char *status = gk_sql_column_text (stmt, 7);
      gint64 latency_bucket = gk_sql_column_int64 (stmt, 8);
      g_autofree char *facet = g_strjoin ("\x1f", status != NULL ? status : "",
                                          model != NULL ? model : "",
                                          user != NULL ? user : "", NULL);

      group_add_full (groups, GROUP_FACET,
                      created_at < facet_days_before ? GK_ROLLUP_DAY_SECONDS
                                                     : GK_ROLLUP_BUCKET_SECONDS,
                      created_at, facet, gk_sql_column_int64 (stmt, 6), 0, success, tokens,
                      cost_usd);
      group_add (groups, GROUP_TOTAL, GK_ROLLUP_BUCKET_SECONDS, created_at, NULL, success,
                 tokens, cost_usd);

      /* Rows without a model or a user are counted in the totals, not
       * ranked. */
      for (guint i = 0; i < 2; i++)
        {
          gint64 span = i == 0 ? GK_ROLLUP_BUCKET_SECONDS : GK_ROLLUP_DAY_SECONDS;

          group_add_full (groups, GROUP_KEY, span, created_at, status,
                          gk_sql_column_int64 (stmt, 6), 0, success, tokens, cost_usd);
          if (latency_bucket >= 0)
            group_add_full (groups, GROUP_LATENCY, span, created_at, NULL,
                            gk_sql_column_int64 (stmt, 6), latency_bucket, TRUE, 0, 0);
          if (model != NULL && *model != '\0')
            group_add (groups, GROUP_MODEL, span, created_at, model, success, tokens, cost_usd);
          if (user != NULL && *user != '\0')
            group_add (groups, GROUP_USER, span, created_at, user, success, tokens, cost_usd);
        }
    }
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (db, error, _("Cannot read the statistics"));
      return FALSE;
    }
  return TRUE;
}

static gboolean
write_group (GkDatabase   *db,
             const Group  *g,
             GError      **error)
{
  GkSqlStmt *stmt;
  int rc;

  if (g->kind == GROUP_TOTAL)
    {
      stmt = gk_database_prepare (db, add_total_sql, error);
      if (stmt == NULL)
        return FALSE;
      gk_sql_bind_int64 (stmt, 1, g->start);
      gk_sql_bind_int64 (stmt, 2, g->requests);
      gk_sql_bind_int64 (stmt, 3, g->successes);
      gk_sql_bind_double (stmt, 4, g->cost_usd);
    }
  else if (g->kind == GROUP_FACET)
    {
      g_auto(GStrv) parts = g_strsplit (g->name, "\x1f", 3);

      stmt = gk_database_prepare (db, add_facet_sql, error);
      if (stmt == NULL)
        return FALSE;
      gk_sql_bind_int64 (stmt, 1, g->start);
      gk_sql_bind_int64 (stmt, 2, g->key_id);
      gk_sql_bind_text (stmt, 3, parts[0], -1);
      gk_sql_bind_text (stmt, 4, parts[1] != NULL ? parts[1] : "", -1);
      gk_sql_bind_text (stmt, 5, parts[1] != NULL && parts[2] != NULL ? parts[2] : "", -1);
      gk_sql_bind_int64 (stmt, 6, g->requests);
      gk_sql_bind_int64 (stmt, 7, g->successes);
      gk_sql_bind_int64 (stmt, 8, g->tokens);
      gk_sql_bind_double (stmt, 9, g->cost_usd);
    }
  else if (g->kind == GROUP_KEY)
    {
      stmt = gk_database_prepare (db, add_key_sql, error);
      if (stmt == NULL)
        return FALSE;
      gk_sql_bind_int64 (stmt, 1, g->span);
      gk_sql_bind_int64 (stmt, 2, g->start);
      gk_sql_bind_int64 (stmt, 3, g->key_id);
      gk_sql_bind_text (stmt, 4, g->name, -1);
      gk_sql_bind_int64 (stmt, 5, g->requests);
      gk_sql_bind_int64 (stmt, 6, g->tokens);
      gk_sql_bind_double (stmt, 7, g->cost_usd);
    }
  else if (g->kind == GROUP_LATENCY)
    {
      stmt = gk_database_prepare (db, add_latency_sql, error);
      if (stmt == NULL)
        return FALSE;
      gk_sql_bind_int64 (stmt, 1, g->span);
      gk_sql_bind_int64 (stmt, 2, g->start);
      gk_sql_bind_int64 (stmt, 3, g->key_id);
      gk_sql_bind_int64 (stmt, 4, g->bucket);
      gk_sql_bind_int64 (stmt, 5, g->requests);
    }
  else
    {
      stmt = gk_database_prepare (db, g->kind == GROUP_MODEL ? add_model_sql : add_user_sql,
                                  error);
      if (stmt == NULL)
        return FALSE;
      gk_sql_bind_int64 (stmt, 1, g->span);
      gk_sql_bind_int64 (stmt, 2, g->start);
      gk_sql_bind_text (stmt, 3, g->name, -1);
      gk_sql_bind_int64 (stmt, 4, g->requests);
      gk_sql_bind_int64 (stmt, 5, g->tokens);
      gk_sql_bind_double (stmt, 6, g->cost_usd);
    }
  rc = gk_sql_step (stmt);
  if (rc != GK_SQL_DONE)
    gk_database_set_error (db, error, _("Database update failed"));
  gk_sql_reset (stmt);
  return rc == GK_SQL_DONE;
}

static gboolean
fold (GkDatabase  *db,
      gint64       after,
      gint64       upto,
      gint64       facet_days_before,
      GError     **error)
{
  g_autoptr(GHashTable) groups = g_hash_table_new_full (group_hash, group_equal,
                                                        (GDestroyNotify) group_free, NULL);
  GHashTableIter iter;
  gpointer group;
  GkSqlStmt *stmt;
  int rc;

  if (!read_new_rows (db, after, upto, facet_days_before, groups, error))
    return FALSE;

  g_hash_table_iter_init (&iter, groups);
  while (g_hash_table_iter_next (&iter, &group, NULL))
    {
      if (!write_group (db, group, error))
        return FALSE;
    }

  stmt = gk_database_prepare (db, set_progress_sql, error);
  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, upto);
  rc = gk_sql_step (stmt);
  if (rc != GK_SQL_DONE)
    gk_database_set_error (db, error, _("Database update failed"));
  gk_sql_reset (stmt);
  return rc == GK_SQL_DONE;
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
  gint64 folded = 0, last = 0, facet_days_before = 0;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  gk_database_lock (db);
  nested = gk_sql_in_transaction (gk_database_get_handle (db));

  /* Most calls find nothing new; taking the write lock to learn that
   * would wait behind every other process's write. */
  if (!nested)
    {
      if (!read_progress (db, &folded, &last, &facet_days_before, error))
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
  ok = read_progress (db, &folded, &last, &facet_days_before, error)
       && (last <= folded || fold (db, folded, last, facet_days_before, error));

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

/* --- Retention and compaction ------------------------------------------- */

#define MAX_RETENTION_DAYS 36500

guint
gk_rollup_get_retention_days (GkDatabase *db)
{
  int days;

  g_return_val_if_fail (GK_IS_DATABASE (db), 0);

  days = gk_database_get_setting_int (db, GK_SETTING_USAGE_RETENTION_DAYS, 0);
  return days > 0 && days <= MAX_RETENTION_DAYS ? (guint) days : 0;
}

gboolean
gk_rollup_set_retention_days (GkDatabase  *db,
                              guint        days,
                              GError     **error)
{
  g_autofree char *value = NULL;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (days <= MAX_RETENTION_DAYS, FALSE);

  value = g_strdup_printf ("%u", days);
  return gk_database_set_setting (db, GK_SETTING_USAGE_RETENTION_DAYS, value, error);
}

/* Runs @sql with up to two integer parameters; returns the rows changed,
 * or -1 with @error set. */
static gint64
run_change (GkDatabase  *db,
            const char  *sql,
            gint64       a,
            gint64       b,
            GError     **error)
{
  GkSqlStmt *stmt = gk_database_prepare (db, sql, error);
  int rc;

  if (stmt == NULL)
    return -1;
  if (gk_sql_bind_parameter_count (stmt) >= 1)
    gk_sql_bind_int64 (stmt, 1, a);
  if (gk_sql_bind_parameter_count (stmt) >= 2)
    gk_sql_bind_int64 (stmt, 2, b);
  rc = gk_sql_step (stmt);
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (db, error, _("Cannot compact the database"));
      return -1;
    }
  return gk_sql_changes (gk_database_get_handle (db));
}

/* On a server: the tables gk_rollup_prune() deletes from (a bare VACUUM
 * would go through every table of the database, the server's own too). */
#define VACUUM_SERVER_SQL \
  "VACUUM (ANALYZE) gemini_key_usage_log, usage_rollup_facet, usage_rollup_model," \
  " usage_rollup_user, usage_rollup_key, usage_rollup_latency"

static gint64
database_bytes (GkDatabase *db)
{
  GkSqlStmt *stmt;
  gint64 bytes = 0;

  gk_database_lock (db);
  stmt = gk_database_prepare (db,
                              gk_database_is_remote (db)
                                ? "SELECT pg_database_size (current_database ())"
                                : "SELECT page_count * page_size"
                                  " FROM pragma_page_count (), pragma_page_size ()",
                              NULL);
  if (stmt != NULL && gk_sql_step (stmt) == GK_SQL_ROW)
    bytes = gk_sql_column_int64 (stmt, 0);
  if (stmt != NULL)
    gk_sql_reset (stmt);
  gk_database_unlock (db);
  return bytes;
}

/* Deletes are done in batches, each a short write transaction of its
 * own: a year of rows takes a minute to delete (secure_delete overwrites
 * every freed cell), and a gateway recording requests meanwhile must never
 * wait longer than a batch. */
#define PRUNE_BATCH_IDS   10000

/* Runs @sqls (writes with parameters ?1, ?2; NULL-terminated) in a
 * transaction of their own and adds the rows the last one changed to
 * @count. */
static gboolean
run_batch (GkDatabase         *db,
           const char * const *sqls,
           gboolean            keep_sums,
           gint64              a,
           gint64              b,
           gint64             *count,
           GError            **error)
{
  gint64 n = 0;

  if (!gk_database_begin (db, error))
    return FALSE;
  /* While the mark is set, the trigger leaves the rollup alone. */
  if (keep_sums
      && run_change (db,
                     "INSERT INTO meta (key, value) VALUES ('" GK_ROLLUP_META_PRUNING "', '1')"
                     " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                     0, 0, error) < 0)
    goto failed;
  for (guint i = 0; sqls[i] != NULL && n >= 0; i++)
    n = run_change (db, sqls[i], a, b, error);
  if (n < 0)
    goto failed;
  if (keep_sums
      && run_change (db, "DELETE FROM meta WHERE key = '" GK_ROLLUP_META_PRUNING "'", 0, 0,
                     error) < 0)
    goto failed;
  if (!gk_database_commit (db, error))
    return FALSE;
  *count += n;
  return TRUE;

failed:
  gk_database_rollback (db);
  return FALSE;
}

/* Two integers from a one-row query. */
static gboolean
read_pair (GkDatabase  *db,
           const char  *sql,
           gint64       param,
           gint64      *a,
           gint64      *b,
           GError     **error)
{
  GkSqlStmt *stmt;
  gboolean ok;

  gk_database_lock (db);
  stmt = gk_database_prepare (db, sql, error);
  if (stmt == NULL)
    {
      gk_database_unlock (db);
      return FALSE;
    }
  if (gk_sql_bind_parameter_count (stmt) >= 1)
    gk_sql_bind_int64 (stmt, 1, param);
  ok = gk_sql_step (stmt) == GK_SQL_ROW;
  if (ok)
    {
      *a = gk_sql_column_int64 (stmt, 0);
      *b = gk_sql_column_int64 (stmt, 1);
    }
  else
    gk_database_set_error (db, error, _("Cannot compact the database"));
  gk_sql_reset (stmt);
  gk_database_unlock (db);
  return ok;
}

static gboolean
prune_rows (GkDatabase      *db,
            gint64           retention_cutoff,
            GkCompactReport *report,
            GError         **error)
{
  gint64 first = 0, last = 0;

  /* Only rows already folded in may go (ids up to the mark): their sums
   * stay in the rollup. Ids are walked in windows rather than searched
   * by time: a clock that jumped may have written old times late. */
  if (!read_pair (db,
                  "SELECT coalesce (min (id), 0), (SELECT coalesce (CAST (value AS BIGINT), 0)"
                  " FROM meta WHERE key = '" GK_ROLLUP_META_MAX_ID "')"
                  " FROM gemini_key_usage_log",
                  0, &first, &last, error))
    return FALSE;

  for (gint64 lo = first; lo > 0 && lo <= last; lo += PRUNE_BATCH_IDS)
    {
      static const char *const delete_sql[] = {
        "DELETE FROM gemini_key_usage_log WHERE id >= ?1 AND id < ?1 + "
        G_STRINGIFY (PRUNE_BATCH_IDS) " AND id <= (SELECT CAST (value AS BIGINT)"
        " FROM meta WHERE key = '" GK_ROLLUP_META_MAX_ID "') AND created_at < ?2",
        NULL
      };

      if (!run_batch (db, delete_sql, TRUE, lo, retention_cutoff, &report->rows_deleted, error))
        return FALSE;
    }
  return TRUE;
}

/* Whole UTC days before the cutoff have their per-day sums, which hold the
 * same numbers: the quarter hours of those days add nothing the dashboard
 * reads. One day per batch. */
static gboolean
coarsen (GkDatabase      *db,
         const char      *table,
         gint64           fine_cutoff,
         GkCompactReport *report,
         GError         **error)
{
  g_autofree char *range_sql = g_strdup_printf ("SELECT coalesce (min (start), 0), count(*) FROM %s"
                                                " WHERE span = " G_STRINGIFY (GK_ROLLUP_BUCKET_SECONDS)
                                                " AND start < ?1", table);
  g_autofree char *delete_sql = g_strdup_printf ("DELETE FROM %s WHERE span = "
                                                 G_STRINGIFY (GK_ROLLUP_BUCKET_SECONDS)
                                                 " AND start >= ?1 AND start < ?2", table);
  const char *const sqls[] = { delete_sql, NULL };
  gint64 first = 0, n = 0;

  if (!read_pair (db, range_sql, fine_cutoff, &first, &n, error))
    return FALSE;
  if (n == 0)
    return TRUE;

  for (gint64 lo = first; lo < fine_cutoff; lo += GK_ROLLUP_DAY_SECONDS)
    {
      if (!run_batch (db, sqls, FALSE, lo, MIN (lo + GK_ROLLUP_DAY_SECONDS, fine_cutoff),
                      &report->buckets_coarsened, error))
        return FALSE;
    }
  return TRUE;
}

/* The facet sums (per key, status, model and user) have no per-day twin:
 * a UTC day's quarter hours are added into its midnight's sum, which then
 * stands for the whole day, and the mark GK_ROLLUP_META_FACET_DAYS moves
 * past it, all in one transaction. One day per batch: each batch covers
 * from the mark to the end of the next day that has quarter hours left
 * (days between hold only day sums). */
static const char *const coarsen_facets_sql[] = {
  "INSERT INTO usage_rollup_facet (start, key_id, status, model, user_id, requests, successes,"
  " tokens, cost_usd)"
  " SELECT start - start % " G_STRINGIFY (GK_ROLLUP_DAY_SECONDS) ", key_id, status, model,"
  " user_id, sum(requests), sum(successes), sum(tokens), coalesce (sum(cost_usd), 0.0)"
  " FROM usage_rollup_facet WHERE start >= ?1 AND start < ?2"
  " AND start % " G_STRINGIFY (GK_ROLLUP_DAY_SECONDS) " <> 0 GROUP BY 1, 2, 3, 4, 5"
  " ON CONFLICT (start, key_id, status, model, user_id) DO UPDATE SET"
  " requests = usage_rollup_facet.requests + excluded.requests,"
  " successes = usage_rollup_facet.successes + excluded.successes,"
  " tokens = usage_rollup_facet.tokens + excluded.tokens,"
  " cost_usd = usage_rollup_facet.cost_usd + excluded.cost_usd",
  /* Never back: another compaction may have gone further meanwhile. */
  "INSERT INTO meta (key, value) VALUES ('" GK_ROLLUP_META_FACET_DAYS "', ?2)"
  " ON CONFLICT (key) DO UPDATE SET value = CASE"
  " WHEN CAST (meta.value AS BIGINT) > CAST (excluded.value AS BIGINT) THEN meta.value"
  " ELSE excluded.value END",
  "DELETE FROM usage_rollup_facet WHERE start >= ?1 AND start < ?2"
  " AND start % " G_STRINGIFY (GK_ROLLUP_DAY_SECONDS) " <> 0",
  NULL
};

static gboolean
coarsen_facets (GkDatabase      *db,
                gint64           fine_cutoff,
                GkCompactReport *report,
                GError         **error)
{
  gint64 mark = 0, next = 0;

  for (;;)
    {
      gint64 end;

      if (!read_pair (db,
                      "SELECT " GK_ROLLUP_FACET_DAYS_SQL ", (SELECT coalesce (min (start), ?1)"
                      " FROM usage_rollup_facet WHERE start >= " GK_ROLLUP_FACET_DAYS_SQL
                      " AND start < ?1 AND start % " G_STRINGIFY (GK_ROLLUP_DAY_SECONDS) " <> 0)",
                      fine_cutoff, &mark, &next, error))
        return FALSE;
      if (mark >= fine_cutoff)
        return TRUE;
      end = MIN (next - next % GK_ROLLUP_DAY_SECONDS + GK_ROLLUP_DAY_SECONDS, fine_cutoff);
      if (!run_batch (db, coarsen_facets_sql, FALSE, mark, end, &report->buckets_coarsened,
                      error))
        return FALSE;
    }
}

/**
 * gk_rollup_prune:
 * @db: the database
 * @report: (out caller-allocates): what was removed
 * @error: a #GK_DATABASE_ERROR
 *
 * Folds every usage row into the rollup first, then deletes the raw rows
 * older than the retention period, and coarsens the 15-minute model, user,
 * facet, key and latency sums older than %GK_ROLLUP_FINE_DAYS days to days, in
 * short transactions (other
 * processes keep writing in between): every figure the dashboard reads
 * stays the same at every step.
 *
 * Returns: %TRUE on success.
 */
gboolean
gk_rollup_prune (GkDatabase      *db,
                 GkCompactReport *report,
                 GError         **error)
{
  guint days;
  gint64 now, retention_cutoff, fine_cutoff;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (report != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  memset (report, 0, sizeof *report);
  report->bytes_before = report->bytes_after = database_bytes (db);

  if (!gk_rollup_catch_up (db, error))
    return FALSE;

  days = gk_rollup_get_retention_days (db);
  now = gk_database_now (db);
  retention_cutoff = days > 0 ? now - (gint64) days * GK_ROLLUP_DAY_SECONDS : 0;
  fine_cutoff = (now - GK_ROLLUP_FINE_DAYS * GK_ROLLUP_DAY_SECONDS) / GK_ROLLUP_DAY_SECONDS
                * GK_ROLLUP_DAY_SECONDS;

  if ((retention_cutoff > 0 && !prune_rows (db, retention_cutoff, report, error))
      || !coarsen (db, "usage_rollup_model", fine_cutoff, report, error)
      || !coarsen (db, "usage_rollup_user", fine_cutoff, report, error)
      || !coarsen_facets (db, fine_cutoff, report, error)
      /* After the facets: the key comparison reads the quarter hours of
       * these two only from the facets' mark on, which must have moved
       * past them first. */
      || !coarsen (db, "usage_rollup_key", fine_cutoff, report, error)
      || !coarsen (db, "usage_rollup_latency", fine_cutoff, report, error))
    return FALSE;
  gk_database_touch (db);
  return TRUE;
}

/**
 * gk_rollup_compact:
 * @db: the database
 * @report: (out caller-allocates): what was removed and the sizes
 * @error: a #GK_DATABASE_ERROR
 *
 * gk_rollup_prune(), then VACUUM (which rewrites the file without its free
 * pages) and a checkpoint that truncates the WAL. On a server, VACUUM of
 * the pruned tables only, which makes their dead rows' space reusable
 * without giving it back to the system (VACUUM FULL, which would, locks
 * each table against every gateway while it copies it). VACUUM needs every other
 * connection to be between transactions; it waits for the busy timeout,
 * then gives up with a message saying what was done and what to do.
 *
 * Returns: %TRUE when everything was done.
 */
gboolean
gk_rollup_compact (GkDatabase      *db,
                   GkCompactReport *report,
                   GError         **error)
{
  g_autoptr(GError) local_error = NULL;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (report != NULL, FALSE);

  if (!gk_rollup_prune (db, report, error))
    return FALSE;

  gk_database_lock (db);
  if (!gk_database_exec (db, gk_database_is_remote (db) ? VACUUM_SERVER_SQL : "VACUUM",
                         &local_error))
    {
      gk_database_unlock (db);
      report->bytes_after = database_bytes (db);
      if (g_error_matches (local_error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_BUSY))
        g_set_error_literal (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_BUSY,
                             _("Old usage rows were removed, but the space could not be "
                               "given back: another program (the app or a gateway) kept the "
                               "database busy. Try again when it is idle."));
      else
        g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  /* The rewritten pages went to the WAL: copy them back and truncate it.
   * A reader still holding an old snapshot only delays this. */
  gk_database_checkpoint (db);
  gk_database_unlock (db);

  report->space_reclaimed = TRUE;
  report->bytes_after = database_bytes (db);
  return TRUE;
}
