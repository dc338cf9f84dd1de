/* gk-stats.c: the dashboard's figures and the log listings.
 *
 * The dashboard reads the usage log of its period once, in created_at order
 * through the created_at index, and sums days, models and users in C: SQLite
 * would sort the period's rows once per GROUP BY, which costs far more than
 * the scan at a million rows. Every call runs in one read transaction so the
 * figures agree with each other while other processes write.
 *
 * Even one scan of a month is too slow at a million rows, and a refresh
 * asks for the week and the month. So the per-day sums are kept with the
 * database (object data) and reused while they are known to be current:
 * the usage log is append-only and its ids only grow, so rows added since
 * the last read are exactly those above the highest id seen, and only the
 * days from the earliest of them on are read again. A lower highest id (rows
 * removed) or another time zone drops everything.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "gk-database-private.h"
#include "gk-stats.h"

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
  g_free (dashboard);
}

/* --- Helpers ------------------------------------------------------------ */

static char *
column_dup (sqlite3_stmt *stmt,
            int           column)
{
  return g_strdup ((const char *) sqlite3_column_text (stmt, column));
}

/* Runs @func inside one read transaction while holding the connection, so
 * a multi-query answer is one consistent snapshot. A caller already inside
 * a transaction keeps its own. */
typedef gboolean (*ReadFunc) (GkDatabase *db,
                              gboolean    own_snapshot,
                              gpointer    data,
                              GError    **error);

static gboolean
with_read_snapshot (GkDatabase  *db,
                    ReadFunc     func,
                    gpointer     data,
                    GError     **error)
{
  gboolean own_transaction;
  gboolean ok;

  gk_database_lock (db);
  own_transaction = sqlite3_get_autocommit (gk_database_get_handle (db)) != 0;
  if (own_transaction && !gk_database_exec (db, "BEGIN DEFERRED", error))
    {
      gk_database_unlock (db);
      return FALSE;
    }

  ok = func (db, own_transaction, data, error);

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
  if (rc == SQLITE_DONE)
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

static void
rank_add (GHashTable *table,
          const char *name,
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
  totals->requests++;
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
      GkRankRow *row = g_new0 (GkRankRow, 1);

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
  sqlite3_stmt *stmt;
  int rc;

  stmt = gk_database_prepare (db,
                              "SELECT count(*), total(status = 'ACTIVE')"
                              " FROM gemini_api_keys WHERE deleted_at IS NULL",
                              error);
  if (stmt == NULL)
    return FALSE;
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      cards->total_keys = sqlite3_column_int64 (stmt, 0);
      cards->active_keys = (gint64) sqlite3_column_double (stmt, 1);
      cards->inactive_keys = cards->total_keys - cards->active_keys;
    }
  sqlite3_reset (stmt);
  return rc == SQLITE_ROW || !step_failed (db, rc, error);
}

typedef struct
{
  gint64      start;
  gint64      end;
  gint64      requests;
  gint64      successes;
  double      cost_usd;
  GHashTable *models;   /* name → RankTotals */
  GHashTable *users;    /* name → RankTotals */
} DayTotals;

typedef struct
{
  char       *tz_id;
  gint64      data_version;
  gint64      total_changes;
  gint64      max_id;
  gint64      row_count;
  GHashTable *days;     /* &DayTotals.start → DayTotals */
} StatsCache;

static GHashTable *
rank_table_new (void)
{
  return g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
}

static DayTotals *
day_totals_new (gint64 start,
                gint64 end)
{
  DayTotals *day = g_new0 (DayTotals, 1);

  day->start = start;
  day->end = end;
  day->models = rank_table_new ();
  day->users = rank_table_new ();
  return day;
}

static void
day_totals_free (DayTotals *day)
{
  g_clear_pointer (&day->models, g_hash_table_unref);
  g_clear_pointer (&day->users, g_hash_table_unref);
  g_free (day);
}

static void
stats_cache_free (StatsCache *cache)
{
  g_clear_pointer (&cache->days, g_hash_table_unref);
  g_free (cache->tz_id);
  g_free (cache);
}

static StatsCache *
get_cache (GkDatabase *db)
{
  static GQuark quark;
  StatsCache *cache;

  if (G_UNLIKELY (quark == 0))
    quark = g_quark_from_static_string ("gk-stats-cache");

  /* Callers hold the database lock, which also guards the cache. */
  cache = g_object_get_qdata (G_OBJECT (db), quark);
  if (cache == NULL)
    {
      cache = g_new0 (StatsCache, 1);
      cache->days = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL,
                                           (GDestroyNotify) day_totals_free);
      cache->data_version = -1;
      g_object_set_qdata_full (G_OBJECT (db), quark, cache, (GDestroyNotify) stats_cache_free);
    }
  return cache;
}

static gboolean
query_int64 (GkDatabase  *db,
             const char  *sql,
             gint64       arg,
             gint64      *value,
             GError     **error)
{
  sqlite3_stmt *stmt = gk_database_prepare (db, sql, error);
  int rc;

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, arg);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    *value = sqlite3_column_type (stmt, 0) == SQLITE_NULL ? -1 : sqlite3_column_int64 (stmt, 0);
  sqlite3_reset (stmt);
  return rc == SQLITE_ROW || !step_failed (db, rc == SQLITE_DONE ? SQLITE_ERROR : rc, error);
}

/* Drops what the rows written since the last call may have changed. Must
 * run inside the read snapshot the figures come from. */
static gboolean
cache_update (GkDatabase  *db,
              StatsCache  *cache,
              const char  *tz_id,
              GError     **error)
{
  gint64 data_version = gk_database_get_data_version (db);
  gint64 total_changes = sqlite3_total_changes64 (gk_database_get_handle (db));
  gint64 max_id = -1, first_new = -1;

  if (g_strcmp0 (cache->tz_id, tz_id) != 0)
    {
      g_hash_table_remove_all (cache->days);
      g_free (cache->tz_id);
      cache->tz_id = g_strdup (tz_id);
      cache->max_id = 0;
      cache->data_version = -1;
    }

  /* Nothing written by anyone: everything kept is current. */
  if (data_version == cache->data_version && total_changes == cache->total_changes)
    return TRUE;

  if (!query_int64 (db, "SELECT max(id) FROM gemini_key_usage_log", 0, &max_id, error))
    return FALSE;
  max_id = MAX (max_id, 0);

  if (g_hash_table_size (cache->days) > 0)
    {
      gint64 row_count = 0, new_rows = 0;
      GHashTableIter iter;
      DayTotals *day;

      /* Rows removed (a purge) leave the count short of what the appended
       * rows explain; then nothing kept can be trusted. */
      if (!query_int64 (db, "SELECT count(*) FROM gemini_key_usage_log", 0, &row_count, error)
          || !query_int64 (db, "SELECT count(*) FROM gemini_key_usage_log WHERE id > ?1",
                           cache->max_id, &new_rows, error))
        return FALSE;

      if (max_id < cache->max_id || row_count != cache->row_count + new_rows)
        g_hash_table_remove_all (cache->days);
      else if (new_rows > 0)
        {
          /* "+created_at": walk the new ids, not the created_at index from
           * its oldest entry. */
          if (!query_int64 (db,
                            "SELECT min(+created_at) FROM gemini_key_usage_log WHERE id > ?1",
                            cache->max_id, &first_new, error))
            return FALSE;

          g_hash_table_iter_init (&iter, cache->days);
          while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &day))
            {
              if (day->end > first_new)
                g_hash_table_iter_remove (&iter);
            }
        }
      cache->row_count = row_count;
    }
  else if (!query_int64 (db, "SELECT count(*) FROM gemini_key_usage_log", 0,
                         &cache->row_count, error))
    return FALSE;

  cache->max_id = max_id;
  cache->data_version = data_version;
  cache->total_changes = total_changes;
  return TRUE;
}

/* One pass over consecutive days: per-day totals, models and users. */
static gboolean
read_days (GkDatabase  *db,
           DayTotals  **out,
           guint        n_days,
           GError     **error)
{
  sqlite3_stmt *stmt;
  guint day = 0;
  int rc;

  stmt = gk_database_prepare (db,
                              "SELECT created_at, status = 'SUCCESS', cost_usd, tokens_used,"
                              " model, user_id"
                              " FROM gemini_key_usage_log"
                              " WHERE created_at >= ?1 AND created_at < ?2"
                              " ORDER BY created_at",
                              error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, out[0]->start);
  sqlite3_bind_int64 (stmt, 2, out[n_days - 1]->end);

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      gint64 created_at = sqlite3_column_int64 (stmt, 0);
      gboolean success = sqlite3_column_int (stmt, 1) != 0;
      double cost_usd = sqlite3_column_double (stmt, 2);
      gint64 tokens = sqlite3_column_int64 (stmt, 3);
      const char *model = (const char *) sqlite3_column_text (stmt, 4);
      const char *user = (const char *) sqlite3_column_text (stmt, 5);
      DayTotals *totals;

      /* Rows come in time order: days only move forward. */
      while (day + 1 < n_days && created_at >= out[day]->end)
        day++;
      totals = out[day];

      totals->requests++;
      if (success)
        totals->successes++;
      totals->cost_usd += cost_usd;

      /* Requests without a model or a user are counted, not ranked. */
      if (model != NULL && *model != '\0')
        rank_add (totals->models, model, tokens, cost_usd);
      if (user != NULL && *user != '\0')
        rank_add (totals->users, user, tokens, cost_usd);
    }
  sqlite3_reset (stmt);
  return !step_failed (db, rc, error);
}

static void
rank_merge (GHashTable *into,
            GHashTable *from)
{
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, from);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      const RankTotals *add = value;
      RankTotals *totals = g_hash_table_lookup (into, key);

      if (totals == NULL)
        {
          totals = g_new0 (RankTotals, 1);
          g_hash_table_insert (into, g_strdup (key), totals);
        }
      totals->requests += add->requests;
      totals->tokens += add->tokens;
      totals->cost_usd += add->cost_usd;
    }
}

/* Fills @days from the cache where it can and reads the rest, one pass per
 * run of missing days. @days[i] is borrowed from the cache when @cache is
 * set, owned by @owned otherwise. */
static gboolean
collect_days (GkDatabase    *db,
              StatsCache    *cache,
              const gint64  *bounds,
              guint          n_days,
              DayTotals    **days,
              GPtrArray     *owned,
              GError       **error)
{
  guint i = 0;

  while (i < n_days)
    {
      DayTotals *cached = cache != NULL ? g_hash_table_lookup (cache->days, &bounds[i]) : NULL;
      guint run_end;

      if (cached != NULL && cached->end == bounds[i + 1])
        {
          days[i++] = cached;
          continue;
        }

      for (run_end = i; run_end < n_days; run_end++)
        {
          DayTotals *next = cache != NULL ? g_hash_table_lookup (cache->days, &bounds[run_end])
                                          : NULL;

          if (next != NULL && next->end == bounds[run_end + 1])
            break;
          days[run_end] = day_totals_new (bounds[run_end], bounds[run_end + 1]);
          if (cache != NULL)
            g_hash_table_replace (cache->days, &days[run_end]->start, days[run_end]);
          else
            g_ptr_array_add (owned, days[run_end]);
        }

      if (!read_days (db, days + i, run_end - i, error))
        {
          /* Half-read days must not stay cached. */
          for (guint j = i; cache != NULL && j < run_end; j++)
            g_hash_table_remove (cache->days, &bounds[j]);
          return FALSE;
        }
      i = run_end;
    }
  return TRUE;
}

/* Keeps the cache to the days a dashboard can still ask for. */
static void
cache_prune (StatsCache *cache,
             gint64      oldest_wanted)
{
  GHashTableIter iter;
  DayTotals *day;

  g_hash_table_iter_init (&iter, cache->days);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &day))
    {
      if (day->start < oldest_wanted)
        g_hash_table_iter_remove (&iter);
    }
}

static gboolean
read_rotations (GkDatabase *db,
                guint       limit,
                GPtrArray  *rows,
                GError    **error)
{
  sqlite3_stmt *stmt;
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
  sqlite3_bind_int64 (stmt, 1, limit > 0 ? (gint64) limit : -1);

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      GkRotationRow *row = g_new0 (GkRotationRow, 1);

      row->id = sqlite3_column_int64 (stmt, 0);
      row->from_key_id = sqlite3_column_int64 (stmt, 1);
      row->from_key_name = column_dup (stmt, 2);
      row->to_key_id = sqlite3_column_int64 (stmt, 3);
      row->to_key_name = column_dup (stmt, 4);
      if (!gk_rotation_reason_from_string ((const char *) sqlite3_column_text (stmt, 5),
                                           &row->reason))
        row->reason = GK_ROTATION_MANUAL;
      row->triggered_by = column_dup (stmt, 6);
      row->created_at = sqlite3_column_int64 (stmt, 7);
      g_ptr_array_add (rows, row);
    }
  sqlite3_reset (stmt);
  return !step_failed (db, rc, error);
}

static gboolean
read_dashboard (GkDatabase *db,
                gboolean    own_snapshot,
                gpointer    data,
                GError    **error)
{
  GkDashboard *dashboard = data;
  guint n_days = dashboard->days;
  gint64 now = gk_database_now (db);
  g_autofree gint64 *bounds = day_bounds (now, n_days);
  g_autofree DayTotals **days = g_new0 (DayTotals *, n_days);
  g_autoptr(GPtrArray) owned = g_ptr_array_new_with_free_func ((GDestroyNotify) day_totals_free);
  g_autoptr(GHashTable) models = rank_table_new ();
  g_autoptr(GHashTable) users = rank_table_new ();
  g_autoptr(GTimeZone) tz = g_time_zone_new_local ();
  GkDashboardCards *cards = &dashboard->cards;
  StatsCache *cache = NULL;

  /* Inside a caller's write transaction the rows seen may still be rolled
   * back: compute without the cache then. */
  if (own_snapshot)
    {
      cache = get_cache (db);
      if (!cache_update (db, cache, g_time_zone_get_identifier (tz), error))
        return FALSE;
    }

  if (!read_key_cards (db, cards, error)
      || !collect_days (db, cache, bounds, n_days, days, owned, error)
      || !read_rotations (db, LATEST_ROTATIONS, dashboard->rotations, error))
    return FALSE;

  g_array_set_size (dashboard->daily, n_days);
  for (guint i = 0; i < n_days; i++)
    {
      GkDailyPoint *point = &g_array_index (dashboard->daily, GkDailyPoint, i);

      point->day_start = days[i]->start;
      point->requests = days[i]->requests;
      point->successes = days[i]->successes;
      point->cost_usd = days[i]->cost_usd;

      /* The cards cover the same calendar days as the chart, so they agree. */
      cards->requests += point->requests;
      cards->successes += point->successes;
      cards->cost_usd += point->cost_usd;

      rank_merge (models, days[i]->models);
      rank_merge (users, days[i]->users);
    }
  cards->success_rate = cards->requests > 0
                          ? 100.0 * (double) cards->successes / (double) cards->requests
                          : 0.0;

  if (cache != NULL)
    cache_prune (cache, now - (gint64) (MAX_DAYS + 2) * 24 * 3600);

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

  if (!with_read_snapshot (db, read_dashboard, dashboard, error))
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
  USAGE_COLUMNS " ORDER BY u.created_at DESC, u.id DESC LIMIT ?2 OFFSET ?3";
static const char usage_logs_key_sql[] =
  USAGE_COLUMNS " WHERE u.key_id = ?1 ORDER BY u.created_at DESC, u.id DESC LIMIT ?2 OFFSET ?3";

static GkUsageRow *
usage_row_from_statement (sqlite3_stmt *stmt)
{
  GkUsageRow *row = g_new0 (GkUsageRow, 1);

  row->id = sqlite3_column_int64 (stmt, 0);
  row->key_id = sqlite3_column_int64 (stmt, 1);
  row->key_name = column_dup (stmt, 2);
  row->model = column_dup (stmt, 3);
  row->tokens_used = sqlite3_column_int64 (stmt, 4);
  row->prompt_tokens = sqlite3_column_int64 (stmt, 5);
  row->output_tokens = sqlite3_column_int64 (stmt, 6);
  row->cost_usd = sqlite3_column_double (stmt, 7);
  row->priced = sqlite3_column_int (stmt, 8) != 0;
  if (!gk_usage_status_from_string ((const char *) sqlite3_column_text (stmt, 9), &row->status))
    row->status = GK_USAGE_ERROR;
  row->http_status = sqlite3_column_int (stmt, 10);
  row->error_message = column_dup (stmt, 11);
  row->user_id = column_dup (stmt, 12);
  row->latency_ms = sqlite3_column_int64 (stmt, 13);
  row->created_at = sqlite3_column_int64 (stmt, 14);
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
  sqlite3_stmt *stmt;
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
    sqlite3_bind_int64 (stmt, 1, key_id);
  sqlite3_bind_int64 (stmt, 2, limit > 0 ? (gint64) limit : -1);
  sqlite3_bind_int64 (stmt, 3, offset);

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_ptr_array_add (rows, usage_row_from_statement (stmt));
  sqlite3_reset (stmt);
  if (step_failed (db, rc, error))
    g_clear_pointer (&rows, g_ptr_array_unref);
  gk_database_unlock (db);

  return g_steal_pointer (&rows);
}

/* Runs a one-row query with an optional key binding; the row is left for
 * the caller to read and reset. */
static sqlite3_stmt *
step_one (GkDatabase  *db,
          const char  *sql,
          gint64       key_id,
          gint64       limit,
          GError     **error)
{
  sqlite3_stmt *stmt = gk_database_prepare (db, sql, error);
  int rc;

  if (stmt == NULL)
    return NULL;
  if (key_id != 0)
    sqlite3_bind_int64 (stmt, 1, key_id);
  sqlite3_bind_int64 (stmt, 2, limit);

  rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW)
    {
      step_failed (db, rc == SQLITE_DONE ? SQLITE_ERROR : rc, error);
      sqlite3_reset (stmt);
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
  sqlite3_stmt *stmt;
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
      count = sqlite3_column_int64 (stmt, 0);
      sqlite3_reset (stmt);
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
  sqlite3_stmt *stmt;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (summary != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  memset (summary, 0, sizeof *summary);

  gk_database_lock (db);
  stmt = step_one (db,
                   key_id != 0
                     ? "SELECT count(*), total(status = 'SUCCESS'), total(cost_usd) FROM"
                       " (SELECT status, cost_usd FROM gemini_key_usage_log WHERE key_id = ?1"
                       "  ORDER BY created_at DESC, id DESC LIMIT ?2)"
                     : "SELECT count(*), total(status = 'SUCCESS'), total(cost_usd) FROM"
                       " (SELECT status, cost_usd FROM gemini_key_usage_log"
                       "  ORDER BY created_at DESC, id DESC LIMIT ?2)",
                   key_id, limit > 0 ? (gint64) limit : -1, error);
  if (stmt != NULL)
    {
      summary->requests = sqlite3_column_int64 (stmt, 0);
      summary->successes = (gint64) sqlite3_column_double (stmt, 1);
      summary->failures = summary->requests - summary->successes;
      summary->cost_usd = sqlite3_column_double (stmt, 2);
      sqlite3_reset (stmt);
    }
  gk_database_unlock (db);
  return stmt != NULL;
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
  ok = read_rotations (db, limit, rows, error);
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
  sqlite3_stmt *stmt;
  gint64 n_all = 0, n_manual = 0;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  gk_database_lock (db);
  stmt = step_one (db,
                   "SELECT count(*), total(triggered_by LIKE 'manual%')"
                   " FROM gemini_key_rotation_log",
                   0, 0, error);
  if (stmt != NULL)
    {
      n_all = sqlite3_column_int64 (stmt, 0);
      n_manual = (gint64) sqlite3_column_double (stmt, 1);
      sqlite3_reset (stmt);
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
