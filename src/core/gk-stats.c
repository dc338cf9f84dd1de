/* gk-stats.c: the dashboard's figures and the log listings.
 *
 * The dashboard reads the rollup tables (gk-rollup.c), not the usage log:
 * a month is 2,880 quarter-hour buckets for the cards and the chart, and a
 * few rows per model or user for the rankings, however many requests it
 * held. It first folds the rows written since the last fold, in a short
 * write transaction of its own, then reads everything in one read
 * transaction, so the figures agree with each other while other processes
 * write. Rows that arrive between the two (or that a caller's own open
 * transaction wrote) are past the fold's mark and are summed from the log
 * itself, so every answer is exact for the snapshot it was read in.
 *
 * The listings read the log directly: they are bounded by LIMIT and walk
 * its indexes.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "gk-database-private.h"
#include "gk-insights.h"
#include "gk-key-store.h"
#include "gk-rollup.h"
#include "gk-stats.h"
#include "gk-stats-private.h"

#define TOP_MODELS        5
#define TOP_USERS         10
#define LATEST_ROTATIONS  10
#define MAX_DAYS          366

typedef struct
{
  gint64 requests;
  gint64 tokens;
  double cost_usd;
} RankTotals;

/* --- Row types ---------------------------------------------------------- */

void
gk_rank_row_free (GkRankRow *row)
{
  if (row == NULL)
    return;
  g_free (row->name);
  g_free (row);
}

void
gk_rotation_row_free (GkRotationRow *row)
{
  if (row == NULL)
    return;
  g_free (row->from_key_name);
  g_free (row->to_key_name);
  g_free (row->triggered_by);
  g_free (row);
}

void
gk_usage_row_free (GkUsageRow *row)
{
  if (row == NULL)
    return;
  g_free (row->key_name);
  g_free (row->model);
  g_free (row->error_message);
  g_free (row->user_id);
  g_free (row);
}

void
gk_dashboard_free (GkDashboard *dashboard)
{
  if (dashboard == NULL)
    return;
  g_clear_pointer (&dashboard->daily, g_array_unref);
  g_clear_pointer (&dashboard->top_models, g_ptr_array_unref);
  g_clear_pointer (&dashboard->top_users, g_ptr_array_unref);
  g_clear_pointer (&dashboard->rotations, g_ptr_array_unref);
  g_clear_pointer (&dashboard->spend, gk_spend_free);
  g_free (dashboard);
}

/* --- Helpers ------------------------------------------------------------ */

static char *
column_dup (GkSqlStmt    *stmt,
            int           column)
{
  return g_strdup (gk_sql_column_text (stmt, column));
}

/* A LIMIT's value, "no limit" for 0. SQLite reads a negative LIMIT as no
 * limit, PostgreSQL refuses one: the largest count is the same on both. */
#define LIMIT_ALL_IF_ZERO(limit) ((limit) > 0 ? (gint64) (limit) : G_MAXINT64)

/* Runs @func inside one read transaction while holding the connection, so
 * a multi-query answer is one consistent snapshot. A caller already inside
 * a transaction keeps its own. */
gboolean
gk_stats_with_read_snapshot (GkDatabase      *db,
                             GkStatsReadFunc  func,
                             gpointer         data,
                             GError         **error)
{
  gboolean own_transaction;
  gboolean ok;

  gk_database_lock (db);
  own_transaction = !gk_sql_in_transaction (gk_database_get_handle (db));
  /* On a server, one snapshot for the whole transaction takes REPEATABLE
   * READ (READ COMMITTED, its default, takes one per statement). */
  if (own_transaction
      && !gk_database_exec (db,
                            gk_database_is_remote (db)
                              ? "BEGIN ISOLATION LEVEL REPEATABLE READ"
                              : "BEGIN DEFERRED",
                            error))
    {
      gk_database_unlock (db);
      return FALSE;
    }

  ok = func (db, data, error);

  /* A read transaction has nothing to lose: end it either way. */
  if (own_transaction)
    gk_database_exec (db, ok ? "COMMIT" : "ROLLBACK", NULL);
  gk_database_unlock (db);
  return ok;
}

/* Steps @stmt to its end, failing on anything but rows and done. */
static gboolean
step_failed (GkDatabase  *db,
             int          rc,
             GError     **error)
{
  if (rc == GK_SQL_DONE)
    return FALSE;
  gk_database_set_error (db, error, _("Cannot read the statistics"));
  return TRUE;
}

/* --- Dashboard ---------------------------------------------------------- */

/* Local midnights: @bounds[i] starts day i, @bounds[days] ends the last
 * day (today). Built from calendar dates, so DST days of 23 or 25 hours
 * keep their true length. */
static gint64 *
day_bounds (gint64 now,
            guint  days)
{
  g_autoptr(GTimeZone) tz = g_time_zone_new_local ();
  g_autoptr(GDateTime) local_now = NULL;
  g_autoptr(GDateTime) utc_now = g_date_time_new_from_unix_utc (now);
  gint64 *bounds = g_new (gint64, days + 1);
  GDate date;

  local_now = g_date_time_to_timezone (utc_now, tz);
  g_date_clear (&date, 1);
  g_date_set_dmy (&date, (GDateDay) g_date_time_get_day_of_month (local_now),
                  (GDateMonth) g_date_time_get_month (local_now),
                  (GDateYear) g_date_time_get_year (local_now));
  g_date_subtract_days (&date, days - 1);

  for (guint i = 0; i <= days; i++)
    {
      g_autoptr(GDateTime) midnight = g_date_time_new (tz, g_date_get_year (&date),
                                                       g_date_get_month (&date),
                                                       g_date_get_day (&date), 0, 0, 0);

      bounds[i] = g_date_time_to_unix (midnight);
      g_date_add_days (&date, 1);
    }
  return bounds;
}

/* The day of @bounds that holds @time, or -1 outside them all. */
static int
day_index (const gint64 *bounds,
           guint         n_days,
           gint64        time)
{
  guint lo = 0, hi = n_days;

  if (time < bounds[0] || time >= bounds[n_days])
    return -1;
  while (hi - lo > 1)
    {
      guint mid = (lo + hi) / 2;

      if (time >= bounds[mid])
        lo = mid;
      else
        hi = mid;
    }
  return (int) lo;
}

static GHashTable *
rank_table_new (void)
{
  return g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
}

static void
rank_add (GHashTable *table,
          const char *name,
          gint64      requests,
          gint64      tokens,
          double      cost_usd)
{
  RankTotals *totals;

  /* Looked up with SQLite's own text; copied only for a new name. */
  totals = g_hash_table_lookup (table, name);
  if (totals == NULL)
    {
      totals = g_new0 (RankTotals, 1);
      g_hash_table_insert (table, g_strdup (name), totals);
    }
  totals->requests += requests;
  totals->tokens += tokens;
  totals->cost_usd += cost_usd;
}

static int
compare_rank_rows (gconstpointer a,
                   gconstpointer b)
{
  const GkRankRow *ra = *(GkRankRow *const *) a;
  const GkRankRow *rb = *(GkRankRow *const *) b;

  if (ra->requests != rb->requests)
    return ra->requests > rb->requests ? -1 : 1;
  if (ra->cost_usd != rb->cost_usd)
    return ra->cost_usd > rb->cost_usd ? -1 : 1;
  return g_strcmp0 (ra->name, rb->name);
}

/* The first @limit of @table by requests (then cost, then name). */
static GPtrArray *
rank_top (GHashTable *table,
          guint       limit)
{
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) gk_rank_row_free);
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, table);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      const RankTotals *totals = value;
      GkRankRow *row;

      /* All of a name's rows in the period were deleted by hand. */
      if (totals->requests <= 0)
        continue;

      row = g_new0 (GkRankRow, 1);
      row->name = g_strdup (key);
      row->requests = totals->requests;
      row->tokens = totals->tokens;
      row->cost_usd = totals->cost_usd;
      g_ptr_array_add (rows, row);
    }
  g_ptr_array_sort (rows, compare_rank_rows);
  if (rows->len > limit)
    g_ptr_array_remove_range (rows, limit, rows->len - limit);
  return g_steal_pointer (&rows);
}

static gboolean
read_key_cards (GkDatabase       *db,
                GkDashboardCards *cards,
                GError          **error)
{
  GkSqlStmt *stmt;
  int rc;

  stmt = gk_database_prepare (db,
                              "SELECT count(*),"
                              " coalesce (sum(CASE WHEN status = 'ACTIVE' THEN 1 ELSE 0 END), 0)"
                              " FROM gemini_api_keys WHERE deleted_at IS NULL",
                              error);
  if (stmt == NULL)
    return FALSE;
  rc = gk_sql_step (stmt);
  if (rc == GK_SQL_ROW)
    {
      cards->total_keys = gk_sql_column_int64 (stmt, 0);
      cards->active_keys = (gint64) gk_sql_column_double (stmt, 1);
      cards->inactive_keys = cards->total_keys - cards->active_keys;
    }
  gk_sql_reset (stmt);
  return rc == GK_SQL_ROW || !step_failed (db, rc, error);
}

/* The highest usage id the rollup tables hold, in this snapshot. */
gboolean
gk_stats_read_folded_id (GkDatabase  *db,
                         gint64      *folded,
                         GError     **error)
{
  GkSqlStmt *stmt;
  int rc;

  stmt = gk_database_prepare (db,
                              "SELECT CAST (value AS BIGINT) FROM meta"
                              " WHERE key = '" GK_ROLLUP_META_MAX_ID "'",
                              error);
  if (stmt == NULL)
    return FALSE;
  rc = gk_sql_step (stmt);
  *folded = rc == GK_SQL_ROW ? gk_sql_column_int64 (stmt, 0) : 0;
  gk_sql_reset (stmt);
  return rc == GK_SQL_ROW || !step_failed (db, rc, error);
}

/* Adds the quarter-hour buckets to the days that hold them. Local
 * midnights fall on bucket edges (see gk-rollup.h), so every bucket lies
 * in one day. */
static gboolean
read_buckets (GkDatabase    *db,
              const gint64  *bounds,
              GArray        *daily,
              GError       **error)
{
  GkSqlStmt *stmt;
  guint day = 0;
  int rc;

  stmt = gk_database_prepare (db,
                              "SELECT start, requests, successes, cost_usd FROM usage_rollup_total"
                              " WHERE start >= ?1 AND start < ?2 ORDER BY start",
                              error);
  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, bounds[0]);
  gk_sql_bind_int64 (stmt, 2, bounds[daily->len]);

  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      gint64 start = gk_sql_column_int64 (stmt, 0);
      GkDailyPoint *point;

      /* Buckets come in time order: days only move forward. */
      while (day + 1 < daily->len && start >= bounds[day + 1])
        day++;
      point = &g_array_index (daily, GkDailyPoint, day);
      point->requests += gk_sql_column_int64 (stmt, 1);
      point->successes += gk_sql_column_int64 (stmt, 2);
      point->cost_usd += gk_sql_column_double (stmt, 3);
    }
  gk_sql_reset (stmt);
  return !step_failed (db, rc, error);
}

/* Whole UTC days from the day table, the parts of a day at either end of
 * the period from the bucket table. */
#define RANK_SQL(table, col) \
  "SELECT name, sum(requests), sum(tokens), coalesce (sum(cost_usd), 0.0) FROM" \
  " (SELECT " col " AS name, requests, tokens, cost_usd FROM " table \
  "   WHERE span = ?1 AND start >= ?2 AND start < ?3" \
  "  UNION ALL SELECT " col ", requests, tokens, cost_usd FROM " table \
  "   WHERE span = ?4 AND start >= ?5 AND start < ?6" \
  "  UNION ALL SELECT " col ", requests, tokens, cost_usd FROM " table \
  "   WHERE span = ?4 AND start >= ?7 AND start < ?8) AS ranked" \
  " GROUP BY name"

static const char rank_models_sql[] = RANK_SQL ("usage_rollup_model", "model");
static const char rank_users_sql[] = RANK_SQL ("usage_rollup_user", "user_id");

static gboolean
read_ranks (GkDatabase   *db,
            const char   *sql,
            gint64        start,
            gint64        end,
            GHashTable   *table,
            GError      **error)
{
  const gint64 day = GK_ROLLUP_DAY_SECONDS;
  gint64 first_day = (start + day - 1) / day * day;
  gint64 last_day = end / day * day;
  GkSqlStmt *stmt;
  int rc;

  /* A period inside one UTC day, or across one midnight, has no whole day. */
  if (first_day >= last_day)
    first_day = last_day = end;

  stmt = gk_database_prepare (db, sql, error);
  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, day);
  gk_sql_bind_int64 (stmt, 2, first_day);
  gk_sql_bind_int64 (stmt, 3, last_day);
  gk_sql_bind_int64 (stmt, 4, GK_ROLLUP_BUCKET_SECONDS);
  gk_sql_bind_int64 (stmt, 5, start);
  gk_sql_bind_int64 (stmt, 6, first_day);
  gk_sql_bind_int64 (stmt, 7, last_day);
  gk_sql_bind_int64 (stmt, 8, end);

  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    rank_add (table, gk_sql_column_text (stmt, 0),
              gk_sql_column_int64 (stmt, 1), gk_sql_column_int64 (stmt, 2),
              gk_sql_column_double (stmt, 3));
  gk_sql_reset (stmt);
  return !step_failed (db, rc, error);
}

/* Adds the period's rows past the rollup's mark, read from the log. */
static gboolean
read_unfolded (GkDatabase    *db,
               gint64         folded,
               const gint64  *bounds,
               GArray        *daily,
               GHashTable    *models,
               GHashTable    *users,
               GError       **error)
{
  GkSqlStmt *stmt;
  int rc;

  /* "+created_at": walk the few ids past the mark, not the created_at
   * index over the whole period. */
  stmt = gk_database_prepare (db,
                              "SELECT created_at, status = 'SUCCESS', cost_usd, tokens_used,"
                              " model, user_id FROM gemini_key_usage_log"
                              " WHERE id > ?1 AND +created_at >= ?2 AND +created_at < ?3",
                              error);
  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, folded);
  gk_sql_bind_int64 (stmt, 2, bounds[0]);
  gk_sql_bind_int64 (stmt, 3, bounds[daily->len]);

  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      int day = day_index (bounds, daily->len, gk_sql_column_int64 (stmt, 0));
      double cost_usd = gk_sql_column_double (stmt, 2);
      gint64 tokens = gk_sql_column_int64 (stmt, 3);
      const char *model = gk_sql_column_text (stmt, 4);
      const char *user = gk_sql_column_text (stmt, 5);
      GkDailyPoint *point = &g_array_index (daily, GkDailyPoint, day);

      g_assert (day >= 0);
      point->requests++;
      point->successes += gk_sql_column_int64 (stmt, 1) != 0;
      point->cost_usd += cost_usd;

      /* As in the rollup: counted without a model or a user, not ranked. */
      if (model != NULL && *model != '\0')
        rank_add (models, model, 1, tokens, cost_usd);
      if (user != NULL && *user != '\0')
        rank_add (users, user, 1, tokens, cost_usd);
    }
  gk_sql_reset (stmt);
  return !step_failed (db, rc, error);
}

static gboolean
read_rotations (GkDatabase *db,
                guint       limit,
                GPtrArray  *rows,
                GError    **error)
{
  GkSqlStmt *stmt;
  int rc;

  /* Deleted keys keep their rows (only hidden), so their names still show. */
  stmt = gk_database_prepare (db,
                              "SELECT r.id, r.from_key_id, f.name, r.to_key_id, t.name,"
                              " r.reason, r.triggered_by, r.created_at"
                              " FROM gemini_key_rotation_log AS r"
                              " LEFT JOIN gemini_api_keys AS f ON f.id = r.from_key_id"
                              " LEFT JOIN gemini_api_keys AS t ON t.id = r.to_key_id"
                              " ORDER BY r.created_at DESC, r.id DESC LIMIT ?1",
                              error);
  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, LIMIT_ALL_IF_ZERO (limit));

  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      GkRotationRow *row = g_new0 (GkRotationRow, 1);

      row->id = gk_sql_column_int64 (stmt, 0);
      row->from_key_id = gk_sql_column_int64 (stmt, 1);
      row->from_key_name = column_dup (stmt, 2);
      row->to_key_id = gk_sql_column_int64 (stmt, 3);
      row->to_key_name = column_dup (stmt, 4);
      if (!gk_rotation_reason_from_string (gk_sql_column_text (stmt, 5),
                                           &row->reason))
        row->reason = GK_ROTATION_MANUAL;
      row->triggered_by = column_dup (stmt, 6);
      row->created_at = gk_sql_column_int64 (stmt, 7);
      g_ptr_array_add (rows, row);
    }
  gk_sql_reset (stmt);
  return !step_failed (db, rc, error);
}

static gboolean
read_dashboard (GkDatabase *db,
                gpointer    data,
                GError    **error)
{
  GkDashboard *dashboard = data;
  guint n_days = dashboard->days;
  g_autofree gint64 *bounds = day_bounds (gk_database_now (db), n_days);
  g_autoptr(GHashTable) models = rank_table_new ();
  g_autoptr(GHashTable) users = rank_table_new ();
  GkDashboardCards *cards = &dashboard->cards;
  gint64 folded = 0;

  g_array_set_size (dashboard->daily, n_days);
  for (guint i = 0; i < n_days; i++)
    g_array_index (dashboard->daily, GkDailyPoint, i).day_start = bounds[i];

  if (!read_key_cards (db, cards, error)
      || !gk_stats_read_folded_id (db, &folded, error)
      || !read_buckets (db, bounds, dashboard->daily, error)
      || !read_ranks (db, rank_models_sql, bounds[0], bounds[n_days], models, error)
      || !read_ranks (db, rank_users_sql, bounds[0], bounds[n_days], users, error)
      || !read_unfolded (db, folded, bounds, dashboard->daily, models, users, error)
      || !read_rotations (db, LATEST_ROTATIONS, dashboard->rotations, error)
      || !gk_insights_mark_spikes (db, dashboard->rotations, error))
    return FALSE;

  /* The cards cover the same calendar days as the chart, so they agree. */
  for (guint i = 0; i < n_days; i++)
    {
      const GkDailyPoint *point = &g_array_index (dashboard->daily, GkDailyPoint, i);

      cards->requests += point->requests;
      cards->successes += point->successes;
      cards->cost_usd += point->cost_usd;
    }
  cards->success_rate = cards->requests > 0
                          ? 100.0 * (double) cards->successes / (double) cards->requests
                          : 0.0;

  g_clear_pointer (&dashboard->top_models, g_ptr_array_unref);
  g_clear_pointer (&dashboard->top_users, g_ptr_array_unref);
  dashboard->top_models = rank_top (models, TOP_MODELS);
  dashboard->top_users = rank_top (users, TOP_USERS);
  return TRUE;
}

/**
 * gk_stats_dashboard:
 * @db: the database
 * @days: the period: the last @days local calendar days, today included
 * @error: a #GK_DATABASE_ERROR
 *
 * The cards' requests, successes and cost cover the same days as the daily
 * series. Top lists rank by requests, then cost, then name; requests without
 * a model or a user id are left out of them.
 *
 * Returns: (transfer full): the dashboard, or %NULL on error.
 */
GkDashboard *
gk_stats_dashboard (GkDatabase  *db,
                    guint        days,
                    GError     **error)
{
  g_autoptr(GkDashboard) dashboard = NULL;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);
  g_return_val_if_fail (days >= 1 && days <= MAX_DAYS, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  dashboard = g_new0 (GkDashboard, 1);
  dashboard->days = days;
  dashboard->daily = g_array_sized_new (FALSE, TRUE, sizeof (GkDailyPoint), days);
  dashboard->rotations = g_ptr_array_new_with_free_func ((GDestroyNotify) gk_rotation_row_free);

  /* Inside a caller's transaction nothing is written: its rows may still
   * be rolled back, and the read adds them from the log. A fold that fails
   * (a read-only file, a writer holding the lock past the timeout) only
   * leaves more for the read to add. */
  gk_database_lock (db);
  if (!gk_sql_in_transaction (gk_database_get_handle (db)))
    {
      g_autoptr(GError) fold_error = NULL;

      if (!gk_rollup_catch_up (db, &fold_error))
        g_debug ("Usage totals not brought up to date: %s", fold_error->message);
    }
  gk_database_unlock (db);

  if (!gk_stats_with_read_snapshot (db, read_dashboard, dashboard, error))
    return NULL;

  /* The keys' derived states, outside the snapshot: reading keys resets
   * the quota windows that are due first. */
  {
    g_autoptr(GPtrArray) keys = gk_key_list_from_database (db, error);

    if (keys == NULL)
      return NULL;
    for (guint i = 0; i < keys->len; i++)
      dashboard->cards.keys_by_state[((GkKey *) keys->pdata[i])->state]++;
  }
  dashboard->spend = gk_spend_read (db, error);
  if (dashboard->spend == NULL)
    return NULL;
  return g_steal_pointer (&dashboard);
}

/* --- Usage logs --------------------------------------------------------- */

#define USAGE_COLUMNS \
  "SELECT u.id, u.key_id, k.name, u.model, u.tokens_used, u.prompt_tokens, u.output_tokens," \
  " u.cost_usd, u.priced, u.status, u.http_status, u.error_message, u.user_id, u.latency_ms," \
  " u.created_at FROM gemini_key_usage_log AS u" \
  " LEFT JOIN gemini_api_keys AS k ON k.id = u.key_id"

/* Separate statements with and without the key filter: "?1 = 0 OR key_id
 * = ?1" would keep SQLite from using the (key_id, created_at) index. */
static const char usage_logs_all_sql[] =
  USAGE_COLUMNS " ORDER BY u.id DESC LIMIT ?2 OFFSET ?3";
static const char usage_logs_key_sql[] =
  USAGE_COLUMNS " WHERE u.key_id = ?1 ORDER BY u.id DESC LIMIT ?2 OFFSET ?3";

static GkUsageRow *
usage_row_from_statement (GkSqlStmt *stmt)
{
  GkUsageRow *row = g_new0 (GkUsageRow, 1);

  row->id = gk_sql_column_int64 (stmt, 0);
  row->key_id = gk_sql_column_int64 (stmt, 1);
  row->key_name = column_dup (stmt, 2);
  row->model = column_dup (stmt, 3);
  row->tokens_used = gk_sql_column_int64 (stmt, 4);
  row->prompt_tokens = gk_sql_column_int64 (stmt, 5);
  row->output_tokens = gk_sql_column_int64 (stmt, 6);
  row->cost_usd = gk_sql_column_double (stmt, 7);
  row->priced = gk_sql_column_int64 (stmt, 8) != 0;
  if (!gk_usage_status_from_string (gk_sql_column_text (stmt, 9), &row->status))
    row->status = GK_USAGE_ERROR;
  row->http_status = gk_sql_column_int64 (stmt, 10);
  row->error_message = column_dup (stmt, 11);
  row->user_id = column_dup (stmt, 12);
  row->latency_ms = gk_sql_column_int64 (stmt, 13);
  row->created_at = gk_sql_column_int64 (stmt, 14);
  return row;
}

/**
 * gk_stats_usage_logs:
 * @db: the database
 * @key_id: a key, or 0 for every key
 * @limit: the most rows to return, 0 for all
 * @offset: rows to skip
 * @error: a #GK_DATABASE_ERROR
 *
 * Returns: (transfer container) (element-type GkUsageRow): newest first.
 */
GPtrArray *
gk_stats_usage_logs (GkDatabase  *db,
                     gint64       key_id,
                     guint        limit,
                     guint        offset,
                     GError     **error)
{
  g_autoptr(GPtrArray) rows = NULL;
  GkSqlStmt *stmt;
  int rc;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  rows = g_ptr_array_new_with_free_func ((GDestroyNotify) gk_usage_row_free);

  gk_database_lock (db);
  stmt = gk_database_prepare (db, key_id != 0 ? usage_logs_key_sql : usage_logs_all_sql, error);
  if (stmt == NULL)
    {
      gk_database_unlock (db);
      return NULL;
    }
  if (key_id != 0)
    gk_sql_bind_int64 (stmt, 1, key_id);
  gk_sql_bind_int64 (stmt, 2, LIMIT_ALL_IF_ZERO (limit));
  gk_sql_bind_int64 (stmt, 3, offset);

  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    g_ptr_array_add (rows, usage_row_from_statement (stmt));
  gk_sql_reset (stmt);
  if (step_failed (db, rc, error))
    g_clear_pointer (&rows, g_ptr_array_unref);
  gk_database_unlock (db);

  return g_steal_pointer (&rows);
}

static const char usage_page_sql[] =
  USAGE_COLUMNS " WHERE u.id < ?1 ORDER BY u.id DESC LIMIT ?2";

gint64
gk_stats_usage_page (GkDatabase      *db,
                     gint64           before_id,
                     guint            limit,
                     GkUsageRowFunc   func,
                     gpointer         user_data,
                     gint64          *last_id,
                     GError         **error)
{
  GkSqlStmt *stmt;
  gint64 n = 0;
  int rc;

  g_return_val_if_fail (GK_IS_DATABASE (db), -1);
  g_return_val_if_fail (func != NULL && last_id != NULL, -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  *last_id = before_id;
  gk_database_lock (db);
  stmt = gk_database_prepare (db, usage_page_sql, error);
  if (stmt == NULL)
    {
      gk_database_unlock (db);
      return -1;
    }
  gk_sql_bind_int64 (stmt, 1, before_id);
  gk_sql_bind_int64 (stmt, 2, LIMIT_ALL_IF_ZERO (limit));

  /* Rows point into SQLite's own text: nothing is copied per row. */
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      GkUsageRow row = { 0 };

      row.id = gk_sql_column_int64 (stmt, 0);
      row.key_id = gk_sql_column_int64 (stmt, 1);
      row.key_name = (char *) gk_sql_column_text (stmt, 2);
      row.model = (char *) gk_sql_column_text (stmt, 3);
      row.tokens_used = gk_sql_column_int64 (stmt, 4);
      row.prompt_tokens = gk_sql_column_int64 (stmt, 5);
      row.output_tokens = gk_sql_column_int64 (stmt, 6);
      row.cost_usd = gk_sql_column_double (stmt, 7);
      row.priced = gk_sql_column_int64 (stmt, 8) != 0;
      if (!gk_usage_status_from_string (gk_sql_column_text (stmt, 9),
                                        &row.status))
        row.status = GK_USAGE_ERROR;
      row.http_status = gk_sql_column_int64 (stmt, 10);
      row.error_message = (char *) gk_sql_column_text (stmt, 11);
      row.user_id = (char *) gk_sql_column_text (stmt, 12);
      row.latency_ms = gk_sql_column_int64 (stmt, 13);
      row.created_at = gk_sql_column_int64 (stmt, 14);
      func (&row, user_data);
      *last_id = row.id;
      n++;
    }
  gk_sql_reset (stmt);
  if (step_failed (db, rc, error))
    n = -1;
  gk_database_unlock (db);
  return n;
}

/* Runs a one-row query with an optional key binding; the row is left for
 * the caller to read and reset. */
static GkSqlStmt *
step_one (GkDatabase  *db,
          const char  *sql,
          gint64       key_id,
          gint64       limit,
          GError     **error)
{
  GkSqlStmt *stmt = gk_database_prepare (db, sql, error);
  int rc;

  if (stmt == NULL)
    return NULL;
  if (key_id != 0)
    gk_sql_bind_int64 (stmt, 1, key_id);
  gk_sql_bind_int64 (stmt, 2, limit);

  rc = gk_sql_step (stmt);
  if (rc != GK_SQL_ROW)
    {
      step_failed (db, rc == GK_SQL_DONE ? GK_SQL_ERROR : rc, error);
      gk_sql_reset (stmt);
      return NULL;
    }
  return stmt;
}

/**
 * gk_stats_usage_count:
 * @db: the database
 * @key_id: a key, or 0 for every key
 * @error: a #GK_DATABASE_ERROR
 *
 * Returns: the number of usage rows, or -1 on error.
 */
gint64
gk_stats_usage_count (GkDatabase  *db,
                      gint64       key_id,
                      GError     **error)
{
  GkSqlStmt *stmt;
  gint64 count = -1;

  g_return_val_if_fail (GK_IS_DATABASE (db), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  gk_database_lock (db);
  stmt = step_one (db,
                   key_id != 0
                     ? "SELECT count(*) FROM gemini_key_usage_log WHERE key_id = ?1"
                     : "SELECT count(*) FROM gemini_key_usage_log",
                   key_id, 0, error);
  if (stmt != NULL)
    {
      count = gk_sql_column_int64 (stmt, 0);
      gk_sql_reset (stmt);
    }
  gk_database_unlock (db);
  return count;
}

/**
 * gk_stats_usage_summary:
 * @db: the database
 * @key_id: a key, or 0 for every key
 * @limit: the newest rows to sum, 0 for all
 * @summary: (out caller-allocates): the totals
 * @error: a #GK_DATABASE_ERROR
 *
 * Sums the same rows gk_stats_usage_logs() lists with this @limit and no
 * offset. Failures are the rows that are not SUCCESS.
 */
gboolean
gk_stats_usage_summary (GkDatabase      *db,
                        gint64           key_id,
                        guint            limit,
                        GkUsageSummary  *summary,
                        GError         **error)
{
  GkSqlStmt *stmt;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (summary != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  memset (summary, 0, sizeof *summary);

  gk_database_lock (db);
  stmt = step_one (db,
                   key_id != 0
                     ? "SELECT count(*),"
                       " coalesce (sum(CASE WHEN status = 'SUCCESS' THEN 1 ELSE 0 END), 0),"
                       " coalesce (sum(cost_usd), 0.0) FROM"
                       " (SELECT status, cost_usd FROM gemini_key_usage_log WHERE key_id = ?1"
                       "  ORDER BY id DESC LIMIT ?2) AS recent"
                     : "SELECT count(*),"
                       " coalesce (sum(CASE WHEN status = 'SUCCESS' THEN 1 ELSE 0 END), 0),"
                       " coalesce (sum(cost_usd), 0.0) FROM"
                       " (SELECT status, cost_usd FROM gemini_key_usage_log"
                       "  ORDER BY id DESC LIMIT ?2) AS recent",
                   key_id, LIMIT_ALL_IF_ZERO (limit), error);
  if (stmt != NULL)
    {
      summary->requests = gk_sql_column_int64 (stmt, 0);
      summary->successes = (gint64) gk_sql_column_double (stmt, 1);
      summary->failures = summary->requests - summary->successes;
      summary->cost_usd = gk_sql_column_double (stmt, 2);
      gk_sql_reset (stmt);
    }
  gk_database_unlock (db);
  return stmt != NULL;
}

/* --- Filtered usage (the usage tab) ------------------------------------ */

gboolean
gk_usage_filter_equal (const GkUsageFilter *a,
                       const GkUsageFilter *b)
{
  return a->since == b->since && a->until == b->until && a->key_id == b->key_id
         && a->status == b->status && g_strcmp0 (a->model, b->model) == 0
         && g_strcmp0 (a->user_id, b->user_id) == 0;
}

GkUsageFilter *
gk_usage_filter_copy (const GkUsageFilter *filter)
{
  GkUsageFilter *copy = g_memdup2 (filter, sizeof *filter);

  copy->model = g_strdup (filter->model);
  copy->user_id = g_strdup (filter->user_id);
  return copy;
}

void
gk_usage_filter_free (GkUsageFilter *filter)
{
  if (filter == NULL)
    return;
  g_free ((char *) filter->model);
  g_free ((char *) filter->user_id);
  g_free (filter);
}

gint64
gk_stats_local_midnight (GTimeZone *tz,
                         gint64     now,
                         int        days_back)
{
  g_autoptr(GTimeZone) local = tz != NULL ? g_time_zone_ref (tz) : g_time_zone_new_local ();
  g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc (now);
  g_autoptr(GDateTime) l = g_date_time_to_timezone (t, local);
  g_autoptr(GDateTime) midnight = NULL;
  g_autoptr(GDateTime) day = NULL;

  day = g_date_time_new (local, g_date_time_get_year (l), g_date_time_get_month (l),
                         g_date_time_get_day_of_month (l), 12, 0, 0);
  /* Through noon, so a day without a midnight (a DST change at 00:00)
   * still has a start. */
  {
    g_autoptr(GDateTime) back = g_date_time_add_days (day, -days_back);

    midnight = g_date_time_new (local, g_date_time_get_year (back),
                                g_date_time_get_month (back),
                                g_date_time_get_day_of_month (back), 0, 0, 0);
  }
  return g_date_time_to_unix (midnight);
}

/* The WHERE clause of @filter over the log (aliased "u" when @alias) or
 * the facet rollup. Parameters: ?1 since, ?2 until, ?3 key, ?4 status,
 * ?5 model, ?6 user. */
static void
append_filter_sql (GString             *sql,
                   const GkUsageFilter *filter,
                   gboolean             rollup)
{
  const char *time_col = rollup ? "start" : "u.created_at";
  const char *p = rollup ? "" : "u.";

  g_string_append_printf (sql, " WHERE %s >= ?1 AND %s < ?2", time_col, time_col);
  if (filter->key_id != 0)
    g_string_append_printf (sql, rollup ? " AND key_id = ?3" : " AND %skey_id = ?3", p);
  if (filter->status >= 0)
    g_string_append_printf (sql, " AND %sstatus = ?4", p);
  if (filter->model != NULL)
    g_string_append_printf (sql, rollup ? " AND model = ?5" : " AND coalesce (%smodel, '') = ?5", p);
  if (filter->user_id != NULL)
    g_string_append_printf (sql, rollup ? " AND user_id = ?6"
                                        : " AND coalesce (%suser_id, '') = ?6", p);
}

static void
bind_filter (GkSqlStmt           *stmt,
             const GkUsageFilter *filter)
{
  /* Parameters a clause left out are past the statement's count or unused:
   * binding them is harmless. */
  gk_sql_bind_int64 (stmt, 1, filter->since > 0 ? filter->since : G_MININT64);
  gk_sql_bind_int64 (stmt, 2, filter->until > 0 ? filter->until : G_MAXINT64);
  if (filter->key_id != 0)
    gk_sql_bind_int64 (stmt, 3, filter->key_id);
  if (filter->status >= 0)
    gk_sql_bind_text (stmt, 4, gk_usage_status_to_string ((GkUsageStatus) filter->status), -1);
  if (filter->model != NULL)
    gk_sql_bind_text (stmt, 5, filter->model, -1);
  if (filter->user_id != NULL)
    gk_sql_bind_text (stmt, 6, filter->user_id, -1);
}

/**
 * gk_stats_usage_query:
 * @db: the database
 * @filter: the period and filters
 * @limit: the most rows to return, 0 for all
 * @offset: rows to skip
 * @error: a #GK_DATABASE_ERROR
 *
 * Returns: (transfer container) (element-type GkUsageRow): newest first.
 */
GPtrArray *
gk_stats_usage_query (GkDatabase          *db,
                      const GkUsageFilter *filter,
                      guint                limit,
                      guint                offset,
                      GError             **error)
{
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GString) sql = g_string_new (USAGE_COLUMNS);
  GkSqlStmt *stmt;
  int rc;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);
  g_return_val_if_fail (filter != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  append_filter_sql (sql, filter, FALSE);
  g_string_append (sql, " ORDER BY u.id DESC LIMIT ?7 OFFSET ?8");
  rows = g_ptr_array_new_with_free_func ((GDestroyNotify) gk_usage_row_free);

  gk_database_lock (db);
  stmt = gk_database_prepare (db, sql->str, error);
  if (stmt == NULL)
    {
      gk_database_unlock (db);
      return NULL;
    }
  bind_filter (stmt, filter);
  gk_sql_bind_int64 (stmt, 7, LIMIT_ALL_IF_ZERO (limit));
  gk_sql_bind_int64 (stmt, 8, offset);
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    g_ptr_array_add (rows, usage_row_from_statement (stmt));
  gk_sql_reset (stmt);
  if (step_failed (db, rc, error))
    g_clear_pointer (&rows, g_ptr_array_unref);
  gk_database_unlock (db);
  return g_steal_pointer (&rows);
}

/**
 * gk_stats_usage_query_page:
 *
 * Keyset paging over the rows of @filter (see gk_stats_usage_page()).
 *
 * Returns: the number of rows, or -1 on error.
 */
gint64
gk_stats_usage_query_page (GkDatabase          *db,
                           const GkUsageFilter *filter,
                           gint64               before_id,
                           guint                limit,
                           GkUsageRowFunc       func,
                           gpointer             user_data,
                           gint64              *last_id,
                           GError             **error)
{
  g_autoptr(GString) sql = g_string_new (USAGE_COLUMNS);
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) gk_usage_row_free);
  GkSqlStmt *stmt;
  int rc;

  g_return_val_if_fail (GK_IS_DATABASE (db), -1);
  g_return_val_if_fail (filter != NULL && func != NULL, -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  append_filter_sql (sql, filter, FALSE);
  g_string_append (sql, " AND u.id < ?7 ORDER BY u.id DESC LIMIT ?8");

  /* The page is read under the lock, then handed out without it: @func
   * may be slow (a file write). */
  gk_database_lock (db);
  stmt = gk_database_prepare (db, sql->str, error);
  if (stmt == NULL)
    {
      gk_database_unlock (db);
      return -1;
    }
  bind_filter (stmt, filter);
  gk_sql_bind_int64 (stmt, 7, before_id);
  gk_sql_bind_int64 (stmt, 8, LIMIT_ALL_IF_ZERO (limit));
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    g_ptr_array_add (rows, usage_row_from_statement (stmt));
  gk_sql_reset (stmt);
  if (step_failed (db, rc, error))
    {
      gk_database_unlock (db);
      return -1;
    }
  gk_database_unlock (db);

  for (guint i = 0; i < rows->len; i++)
    {
      const GkUsageRow *row = rows->pdata[i];

      func (row, user_data);
      if (last_id != NULL)
        *last_id = row->id;
    }
  return rows->len;
}

/**
 * gk_stats_usage_query_count:
 *
 * Returns: the number of usage rows of @filter, or -1 on error.
 */
gint64
gk_stats_usage_query_count (GkDatabase          *db,
                            const GkUsageFilter *filter,
                            GError             **error)
{
  g_autoptr(GString) sql = g_string_new ("SELECT count(*) FROM gemini_key_usage_log AS u");
  GkSqlStmt *stmt;
  gint64 count = -1;
  int rc;

  g_return_val_if_fail (GK_IS_DATABASE (db), -1);
  g_return_val_if_fail (filter != NULL, -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  append_filter_sql (sql, filter, FALSE);
  gk_database_lock (db);
  stmt = gk_database_prepare (db, sql->str, error);
  if (stmt != NULL)
    {
      bind_filter (stmt, filter);
      rc = gk_sql_step (stmt);
      if (rc == GK_SQL_ROW)
        count = gk_sql_column_int64 (stmt, 0);
      else
        step_failed (db, rc, error);
      gk_sql_reset (stmt);
    }
  gk_database_unlock (db);
  return count;
}

typedef struct
{
  const GkUsageFilter *filter;
  GkUsageSummary      *summary;
} FilterSummaryData;

/* Adds the sums of @sql over [@since, @until). */
static gboolean
add_filter_sums (GkDatabase     *db,
                 const char     *sql,
                 const FilterSummaryData *data,
                 gint64          since,
                 gint64          until,
                 gint64          folded,
                 GError        **error)
{
  GkSqlStmt *stmt;
  int rc;

  if (since >= until)
    return TRUE;
  stmt = gk_database_prepare (db, sql, error);
  if (stmt == NULL)
    return FALSE;
  bind_filter (stmt, data->filter);
  gk_sql_bind_int64 (stmt, 1, since);
  gk_sql_bind_int64 (stmt, 2, until);
  gk_sql_bind_int64 (stmt, 7, folded);
  rc = gk_sql_step (stmt);
  if (rc == GK_SQL_ROW)
    {
      data->summary->requests += (gint64) gk_sql_column_double (stmt, 0);
      data->summary->successes += (gint64) gk_sql_column_double (stmt, 1);
      data->summary->cost_usd += gk_sql_column_double (stmt, 2);
    }
  gk_sql_reset (stmt);
  return rc == GK_SQL_ROW || !step_failed (db, rc, error);
}

/* The facet sums before the mark GK_ROLLUP_META_FACET_DAYS are per UTC
 * day: the period's whole days there read them, and a part of such a day
 * at either end of the period (a local midnight is rarely a UTC one) is
 * read from the log's rows, as long as retention keeps them. */
static gboolean
read_filter_summary (GkDatabase  *db,
                     gpointer     user_data,
                     GError     **error)
{
  const FilterSummaryData *data = user_data;
  const gint64 day = GK_ROLLUP_DAY_SECONDS;
  g_autoptr(GString) rollup_sql =
    g_string_new ("SELECT coalesce (sum(requests), 0), coalesce (sum(successes), 0),"
                  " coalesce (sum(cost_usd), 0.0)"
                  " FROM usage_rollup_facet");
  g_autoptr(GString) log_sql =
    g_string_new ("SELECT count(*),"
                  " coalesce (sum(CASE WHEN u.status = 'SUCCESS' THEN 1 ELSE 0 END), 0),"
                  " coalesce (sum(u.cost_usd), 0.0)"
                  " FROM gemini_key_usage_log AS u");
  g_autoptr(GString) folded_log_sql = NULL;
  gint64 since = data->filter->since > 0 ? data->filter->since : G_MININT64;
  gint64 until = data->filter->until > 0 ? data->filter->until : G_MAXINT64;
  gint64 folded = 0, days_before = 0, coarse_end, first_day, last_day;
  GkSqlStmt *stmt;

  append_filter_sql (rollup_sql, data->filter, TRUE);
  /* "?7 > 0": keeps the parameter in the statement. */
  g_string_append (rollup_sql, " AND ?7 >= 0");
  append_filter_sql (log_sql, data->filter, FALSE);
  folded_log_sql = g_string_new (log_sql->str);
  g_string_append (folded_log_sql, " AND u.id <= ?7");
  /* "+created_at": walk the few ids past the mark. */
  g_string_replace (log_sql, "u.created_at", "+u.created_at", 0);
  g_string_append (log_sql, " AND u.id > ?7");

  if (!gk_stats_read_folded_id (db, &folded, error))
    return FALSE;
  stmt = step_one (db, "SELECT " GK_ROLLUP_FACET_DAYS_SQL, 0, 0, error);
  if (stmt == NULL)
    return FALSE;
  days_before = gk_sql_column_int64 (stmt, 0);
  gk_sql_reset (stmt);

  /* [since, coarse_end) lies where the sums are per day: whole days in
   * [first_day, last_day), parts of days around them. A period without a
   * start has no part of a day there. */
  coarse_end = MIN (until, days_before);
  if (since >= coarse_end)
    first_day = last_day = coarse_end = since;
  else
    {
      first_day = since > 0 ? MIN ((since + day - 1) / day * day, coarse_end) : since;
      last_day = MAX (coarse_end - coarse_end % day, first_day);
    }

  return add_filter_sums (db, folded_log_sql->str, data, since, first_day, folded, error)
         && add_filter_sums (db, rollup_sql->str, data, first_day, last_day, folded, error)
         && add_filter_sums (db, folded_log_sql->str, data, last_day, coarse_end, folded, error)
         && add_filter_sums (db, rollup_sql->str, data, coarse_end, until, folded, error)
         && add_filter_sums (db, log_sql->str, data, since, until, folded, error);
}

/**
 * gk_stats_usage_filter_summary:
 * @db: the database
 * @filter: the period and filters
 * @summary: (out caller-allocates): the totals
 * @error: a #GK_DATABASE_ERROR
 *
 * Sums every row of @filter from the rollup per key, status, model and
 * user, plus the rows not folded in yet, in one snapshot: the cost does
 * not grow with the log. @filter's bounds must be 15-minute edges. Past
 * %GK_ROLLUP_FINE_DAYS days the rollup may hold whole UTC days only: a
 * bound inside such a day reads that part of the day from the log (a scan
 * of the log), and counts nothing there once retention removed its rows,
 * as the usage list shows none.
 */
gboolean
gk_stats_usage_filter_summary (GkDatabase          *db,
                               const GkUsageFilter *filter,
                               GkUsageSummary      *summary,
                               GError             **error)
{
  FilterSummaryData data = { filter, summary };

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (filter != NULL && summary != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  memset (summary, 0, sizeof *summary);

  gk_database_lock (db);
  if (!gk_sql_in_transaction (gk_database_get_handle (db)))
    {
      g_autoptr(GError) fold_error = NULL;

      if (!gk_rollup_catch_up (db, &fold_error))
        g_debug ("Usage totals not brought up to date: %s", fold_error->message);
    }
  gk_database_unlock (db);

  if (!gk_stats_with_read_snapshot (db, read_filter_summary, &data, error))
    {
      memset (summary, 0, sizeof *summary);
      return FALSE;
    }
  summary->failures = summary->requests - summary->successes;
  return TRUE;
}

/* --- Rotation logs ------------------------------------------------------ */

/**
 * gk_stats_rotation_logs:
 * @db: the database
 * @limit: the most rows to return, 0 for all
 * @error: a #GK_DATABASE_ERROR
 *
 * Returns: (transfer container) (element-type GkRotationRow): newest first.
 */
GPtrArray *
gk_stats_rotation_logs (GkDatabase  *db,
                        guint        limit,
                        GError     **error)
{
  g_autoptr(GPtrArray) rows = NULL;
  gboolean ok;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  rows = g_ptr_array_new_with_free_func ((GDestroyNotify) gk_rotation_row_free);
  gk_database_lock (db);
  ok = read_rotations (db, limit, rows, error) && gk_insights_mark_spikes (db, rows, error);
  gk_database_unlock (db);
  return ok ? g_steal_pointer (&rows) : NULL;
}

/**
 * gk_stats_rotation_totals:
 * @db: the database
 * @all: (out) (optional): every rotation
 * @manual: (out) (optional): rotations a person triggered ("manual:…")
 * @automatic: (out) (optional): the others
 * @error: a #GK_DATABASE_ERROR
 */
gboolean
gk_stats_rotation_totals (GkDatabase  *db,
                          gint64      *all,
                          gint64      *manual,
                          gint64      *automatic,
                          GError     **error)
{
  GkSqlStmt *stmt;
  gint64 n_all = 0, n_manual = 0;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  gk_database_lock (db);
  stmt = step_one (db,
                   "SELECT count(*),"
                   /* lower (): SQLite's LIKE ignores ASCII case, PostgreSQL's not. */
                   " coalesce (sum(CASE WHEN lower (triggered_by) LIKE 'manual%' THEN 1"
                   " ELSE 0 END), 0)"
                   " FROM gemini_key_rotation_log",
                   0, 0, error);
  if (stmt != NULL)
    {
      n_all = gk_sql_column_int64 (stmt, 0);
      n_manual = (gint64) gk_sql_column_double (stmt, 1);
      gk_sql_reset (stmt);
    }
  gk_database_unlock (db);

  if (all != NULL)
    *all = n_all;
  if (manual != NULL)
    *manual = n_manual;
  if (automatic != NULL)
    *automatic = n_all - n_manual;
  return stmt != NULL;
}
