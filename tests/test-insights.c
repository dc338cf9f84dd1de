/* test-insights.c: key comparison, depletion forecast, rotation spikes.
 *
 * Rows are written with raw SQL, so the figures are checked against known
 * data; the forecast model is also run on synthetic series whose true
 * run-out time is known, and its errors are printed (README, "Insights").
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <math.h>

#include "gk-database-private.h"
#include "gk-test-util.h"

#define MINUTE G_GINT64_CONSTANT (60)
#define HOUR   G_GINT64_CONSTANT (3600)
#define DAY    G_GINT64_CONSTANT (86400)
/* Monday 2026-02-02 00:00 UTC: the synthetic series start on a Monday. */
#define MONDAY G_GINT64_CONSTANT (1769990400)
#define BUCKETS_PER_DAY 96
#define HISTORY_BUCKETS (GK_FORECAST_PROFILE_WEEKS * 7 * BUCKETS_PER_DAY)

typedef struct
{
  GkDatabase *db;
  char       *dir;
} Fixture;

static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  data)
{
  fixture->db = gk_test_open_db (NULL);
  fixture->dir = gk_test_db_dir (fixture->db);
}

static void
fixture_tear_down (Fixture       *fixture,
                   gconstpointer  data)
{
  g_assert_finalize_object (g_steal_pointer (&fixture->db));
  gk_test_rm_rf (fixture->dir);
  g_free (fixture->dir);
}

static void
run_sql (GkDatabase *db,
         const char *format,
         ...) G_GNUC_PRINTF (2, 3);

static void
run_sql (GkDatabase *db,
         const char *format,
         ...)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *sql = NULL;
  va_list args;

  va_start (args, format);
  sql = g_strdup_vprintf (format, args);
  va_end (args);
  g_assert_true (gk_database_exec (db, sql, &error));
  g_assert_no_error (error);
}

/* Many rows in one transaction, for speed. */
static void
begin_rows (GkDatabase *db)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (gk_database_begin (db, &error));
  g_assert_no_error (error);
}

static void
commit_rows (GkDatabase *db)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (gk_database_commit (db, &error));
  g_assert_no_error (error);
}

static gint64
query_int (GkDatabase *db,
           const char *sql)
{
  g_autoptr(GError) error = NULL;
  GkSqlStmt *stmt;
  gint64 value;

  gk_database_lock (db);
  stmt = gk_database_prepare (db, sql, &error);
  g_assert_no_error (error);
  g_assert_cmpint (gk_sql_step (stmt), ==, GK_SQL_ROW);
  value = gk_sql_column_int64 (stmt, 0);
  gk_sql_reset (stmt);
  gk_database_unlock (db);
  return value;
}

static gint64
add_key (GkDatabase *db,
         const char *name,
         gboolean    deleted)
{
  g_autofree char *uuid = g_uuid_string_random ();
  g_autofree char *sql = g_strdup_printf ("INSERT INTO gemini_api_keys (uuid, name, key_hint,"
                                          " created_at, updated_at, deleted_at)"
                                          " VALUES ('%s', '%s', 'wxyz', 0, 0, %s) RETURNING id",
                                          uuid, name, deleted ? "1" : "NULL");

  return query_int (db, sql);
}

/* One usage row; @latency_ms < 0 for none. */
static void
add_usage (GkDatabase *db,
           gint64      key_id,
           const char *status,
           gint64      tokens,
           double      cost,
           gint64      latency_ms,
           gint64      created_at)
{
  g_autofree char *latency = latency_ms >= 0 ? g_strdup_printf ("%" G_GINT64_FORMAT, latency_ms)
                                             : g_strdup ("NULL");
  char cost_text[G_ASCII_DTOSTR_BUF_SIZE];

  run_sql (db, "INSERT INTO gemini_key_usage_log (key_id, model, tokens_used, cost_usd, status,"
               " latency_ms, created_at) VALUES (%" G_GINT64_FORMAT ", 'm', %" G_GINT64_FORMAT
               ", %s, '%s', %s, %" G_GINT64_FORMAT ")",
           key_id, tokens, g_ascii_dtostr (cost_text, sizeof cost_text, cost), status, latency,
           created_at);
}

static void
add_rotation (GkDatabase *db,
              gint64      from_key,
              const char *reason,
              gint64      created_at)
{
  run_sql (db, "INSERT INTO gemini_key_rotation_log (from_key_id, reason, triggered_by,"
               " created_at) VALUES (%" G_GINT64_FORMAT ", '%s', 'auto', %" G_GINT64_FORMAT ")",
           from_key, reason, created_at);
}

static const GkKeyComparison *
find_row (GPtrArray *rows,
          gint64     key_id)
{
  for (guint i = 0; i < rows->len; i++)
    {
      const GkKeyComparison *row = rows->pdata[i];

      if (row->key_id == key_id)
        return row;
    }
  return NULL;
}

/* --- Comparison ----------------------------------------------------------- */

/* The SQL that buckets latencies and the C table of bounds agree. */
static void
test_latency_buckets (Fixture       *fixture,
                      gconstpointer  data)
{
  for (guint i = 0; i < GK_ROLLUP_LATENCY_BUCKETS - 1; i++)
    {
      gint64 bound = gk_rollup_latency_bounds[i];
      g_autofree char *below = g_strdup_printf ("SELECT " GK_ROLLUP_LATENCY_BUCKET_SQL ("x")
                                                " FROM (SELECT %" G_GINT64_FORMAT " AS x) AS bound",
                                                bound - 1);
      g_autofree char *at = g_strdup_printf ("SELECT " GK_ROLLUP_LATENCY_BUCKET_SQL ("x")
                                             " FROM (SELECT %" G_GINT64_FORMAT " AS x) AS bound",
                                             bound);

      g_assert_cmpint (query_int (fixture->db, below), ==, i);
      g_assert_cmpint (query_int (fixture->db, at), ==, i + 1);
    }
}

static void
test_percentile (void)
{
  gint64 h[GK_ROLLUP_LATENCY_BUCKETS] = { 0 };

  g_assert_cmpfloat (gk_insights_latency_percentile (h, 0.5), ==, -1);
  /* 100 requests in [100, 200), 100 in [200, 300). */
  h[1] = 100;
  h[2] = 100;
  g_assert_cmpfloat_with_epsilon (gk_insights_latency_percentile (h, 0.5), 200, 1e-9);
  g_assert_cmpfloat_with_epsilon (gk_insights_latency_percentile (h, 0.25), 150, 1e-9);
  g_assert_cmpfloat_with_epsilon (gk_insights_latency_percentile (h, 0.95), 290, 1e-9);
  /* The open-ended bucket reports its lower bound. */
  memset (h, 0, sizeof h);
  h[GK_ROLLUP_LATENCY_BUCKETS - 1] = 3;
  g_assert_cmpfloat (gk_insights_latency_percentile (h, 0.95), ==,
                     gk_rollup_latency_bounds[GK_ROLLUP_LATENCY_BUCKETS - 2]);
}

static void
test_compare_figures (Fixture       *fixture,
                      gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 since = GK_TEST_EPOCH - 12 * HOUR;
  gint64 a = add_key (db, "alpha", FALSE);
  gint64 b = add_key (db, "beta", FALSE);
  gint64 idle = add_key (db, "idle", FALSE);
  gint64 gone = add_key (db, "gone", TRUE);
  gint64 gone_idle = add_key (db, "gone idle", TRUE);
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GError) error = NULL;
  const GkKeyComparison *row;

  /* Before the period: left out. */
  add_usage (db, a, "SUCCESS", 1000, 1.0, 5, since - 1);
  add_usage (db, a, "SUCCESS", 1000, 0.5, 150, since);
  add_usage (db, a, "SUCCESS", 2000, 0.5, 250, since + HOUR);
  add_usage (db, a, "SUCCESS", 1000, 0.5, 350, since + 2 * HOUR);
  add_usage (db, a, "RATE_LIMITED", 0, 0, 3, since + 3 * HOUR);
  add_usage (db, b, "SUCCESS", 4000, 2.0, -1, since + HOUR);
  add_usage (db, b, "INVALID_KEY", 0, 0, 10, since + HOUR);
  add_usage (db, b, "ERROR", 0, 0, 10, since + HOUR);
  add_usage (db, gone, "SUCCESS", 0, 0, 100, since + HOUR);
  g_assert_true (gk_rollup_catch_up (db, &error));
  g_assert_no_error (error);

  /* Rows not folded yet (a caller's open transaction) count too. */
  g_assert_true (gk_database_begin (db, &error));
  add_usage (db, b, "SUCCESS", 0, 0, 20000, since + 4 * HOUR);
  rows = gk_insights_compare (db, since, 0, &error);
  g_assert_no_error (error);
  gk_database_rollback (db);

  g_assert_cmpuint (rows->len, ==, 4);
  g_assert_null (find_row (rows, gone_idle));

  row = find_row (rows, a);
  g_assert_cmpstr (row->name, ==, "alpha");
  g_assert_cmpstr (row->key_hint, ==, "wxyz");
  g_assert_false (row->deleted);
  g_assert_cmpint (row->requests, ==, 4);
  g_assert_cmpint (row->successes, ==, 3);
  g_assert_cmpint (row->rate_limited, ==, 1);
  g_assert_cmpfloat_with_epsilon (row->success_rate, 75, 1e-9);
  g_assert_cmpfloat_with_epsilon (row->rate_limited_rate, 25, 1e-9);
  g_assert_cmpfloat_with_epsilon (row->rejected_rate, 0, 1e-9);
  g_assert_cmpint (row->tokens, ==, 4000);
  g_assert_cmpfloat_with_epsilon (row->cost_usd, 1.5, 1e-9);
  g_assert_cmpfloat_with_epsilon (row->cost_per_1k_tokens, 0.375, 1e-9);
  /* Successful requests only: 150, 250, 350 ms, one in each of the
   * buckets [100, 200), [200, 300), [300, 500). */
  g_assert_cmpint (row->latency_samples, ==, 3);
  g_assert_cmpfloat_with_epsilon (row->p50_ms, 250, 1e-9);
  g_assert_cmpfloat_with_epsilon (row->p95_ms, 300 + 0.85 * 200, 1e-9);
  g_assert_cmpfloat_with_epsilon (row->share, 400.0 / 9, 1e-9);

  row = find_row (rows, b);
  g_assert_cmpint (row->requests, ==, 4);
  g_assert_cmpint (row->rejected, ==, 1);
  g_assert_cmpint (row->errors, ==, 1);
  g_assert_cmpfloat_with_epsilon (row->rejected_rate, 25, 1e-9);
  g_assert_cmpfloat_with_epsilon (row->success_rate, 50, 1e-9);
  g_assert_cmpint (row->latency_samples, ==, 1);
  g_assert_cmpfloat_with_epsilon (row->p50_ms, 20000 + 0.5 * 10000, 1e-9);

  row = find_row (rows, idle);
  g_assert_cmpint (row->requests, ==, 0);
  g_assert_cmpfloat (row->p50_ms, ==, -1);
  g_assert_cmpfloat (row->cost_per_1k_tokens, ==, -1);
  g_assert_cmpfloat (row->share, ==, 0);

  row = find_row (rows, gone);
  g_assert_true (row->deleted);
  g_assert_cmpint (row->requests, ==, 1);
  g_assert_cmpfloat_with_epsilon (row->share, 100.0 / 9, 1e-9);
  g_assert_cmpfloat (row->cost_per_1k_tokens, ==, -1);
}

/* The comparison computed apart, from the log itself, as text. */
static char *
compare_from_log (GkDatabase *db,
                  gint64      since)
{
  g_autoptr(GError) error = NULL;
  GString *out = g_string_new (NULL);
  g_autoptr(GPtrArray) keys = g_ptr_array_new ();
  g_autoptr(GPtrArray) deleted = g_ptr_array_new ();
  GkSqlStmt *stmt;

  gk_database_lock (db);
  stmt = gk_database_prepare (db, "SELECT id, deleted_at IS NOT NULL FROM gemini_api_keys"
                                  " ORDER BY id", &error);
  g_assert_no_error (error);
  while (gk_sql_step (stmt) == GK_SQL_ROW)
    {
      g_ptr_array_add (keys, GINT_TO_POINTER (gk_sql_column_int64 (stmt, 0)));
      g_ptr_array_add (deleted, GINT_TO_POINTER (gk_sql_column_int64 (stmt, 1)));
    }
  gk_sql_reset (stmt);
  gk_database_unlock (db);

  for (guint k = 0; k < keys->len; k++)
    {
      gint64 hist[GK_ROLLUP_LATENCY_BUCKETS] = { 0 };
      int key = GPOINTER_TO_INT (keys->pdata[k]);

      gk_database_lock (db);
      stmt = gk_database_prepare (db,
                                  "SELECT count(*), coalesce (sum(CASE WHEN status = 'SUCCESS' THEN 1 ELSE 0 END), 0),"
                                  " coalesce (sum(CASE WHEN status = 'RATE_LIMITED' THEN 1 ELSE 0 END), 0), coalesce (sum(CASE WHEN status = 'INVALID_KEY' THEN 1 ELSE 0 END), 0),"
                                  " coalesce (sum(tokens_used), 0), coalesce (sum(cost_usd), 0.0) FROM gemini_key_usage_log"
                                  " WHERE key_id = ?1 AND created_at >= ?2",
                                  &error);
      g_assert_no_error (error);
      gk_sql_bind_int64 (stmt, 1, key);
      gk_sql_bind_int64 (stmt, 2, since);
      g_assert_cmpint (gk_sql_step (stmt), ==, GK_SQL_ROW);
      /* A deleted key is listed for its requests only. */
      if (GPOINTER_TO_INT (deleted->pdata[k]) && gk_sql_column_int64 (stmt, 0) == 0)
        {
          gk_sql_reset (stmt);
          gk_database_unlock (db);
          continue;
        }
      g_string_append_printf (out, "%d: %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %"
                              G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT
                              " %.6f", key, (gint64) gk_sql_column_int64 (stmt, 0),
                              (gint64) gk_sql_column_int64 (stmt, 1),
                              (gint64) gk_sql_column_int64 (stmt, 2),
                              (gint64) gk_sql_column_int64 (stmt, 3),
                              (gint64) gk_sql_column_int64 (stmt, 4),
                              gk_sql_column_double (stmt, 5));
      gk_sql_reset (stmt);
      stmt = gk_database_prepare (db,
                                  "SELECT " GK_ROLLUP_LATENCY_BUCKET_SQL ("latency_ms")
                                  ", count(*) FROM gemini_key_usage_log WHERE key_id = ?1"
                                  " AND created_at >= ?2 AND status = 'SUCCESS'"
                                  " AND latency_ms > 0 GROUP BY 1",
                                  &error);
      g_assert_no_error (error);
      gk_sql_bind_int64 (stmt, 1, key);
      gk_sql_bind_int64 (stmt, 2, since);
      while (gk_sql_step (stmt) == GK_SQL_ROW)
        hist[gk_sql_column_int64 (stmt, 0)] = gk_sql_column_int64 (stmt, 1);
      gk_sql_reset (stmt);
      gk_database_unlock (db);
      g_string_append_printf (out, " %.3f %.3f\n", gk_insights_latency_percentile (hist, 0.5),
                              gk_insights_latency_percentile (hist, 0.95));
    }
  return g_string_free (out, FALSE);
}

static char *
compare_text (GkDatabase *db,
              gint64      since)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = gk_insights_compare (db, since, 0, &error);
  GString *out = g_string_new (NULL);

  g_assert_no_error (error);
  for (guint i = 0; i < rows->len; i++)
    {
      const GkKeyComparison *r = rows->pdata[i];

      g_string_append_printf (out, "%" G_GINT64_FORMAT ": %" G_GINT64_FORMAT " %"
                              G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %"
                              G_GINT64_FORMAT " %.6f %.3f %.3f\n",
                              r->key_id, r->requests, r->successes, r->rate_limited,
                              r->rejected, r->tokens, r->cost_usd, r->p50_ms, r->p95_ms);
    }
  return g_string_free (out, FALSE);
}

/* Random traffic over six weeks: the comparison over 1, 7, 30, 40 and 60
 * local days equals the one computed from the log, in zones whose
 * midnights are not UTC's; it stays the same after compaction drops the
 * 15-minute sums of old days (a period that starts inside such a day reads
 * that part of it from the log), and without the usage tab's facet sums,
 * which it does not read. */
static void
test_compare_matches_log (Fixture       *fixture,
                          gconstpointer  data)
{
  static const char *const zones[] = { "UTC", "Asia/Kolkata", "America/Los_Angeles" };
  static const char *const statuses[] = { "SUCCESS", "SUCCESS", "SUCCESS", "RATE_LIMITED",
                                          "INVALID_KEY", "ERROR" };
  static const guint periods[] = { 1, 7, 30, 40, 60 };
  GkDatabase *db = fixture->db;
  GkClock *clock = gk_database_get_clock (db);
  gint64 keys[3];
  g_autoptr(GError) error = NULL;
  g_autofree char *tz = g_strdup (g_getenv ("TZ"));
  GkCompactReport report;

  keys[0] = add_key (db, "a", FALSE);
  keys[1] = add_key (db, "b", FALSE);
  keys[2] = add_key (db, "c", TRUE);
  begin_rows (db);
  for (guint i = 0; i < 3000; i++)
    add_usage (db, keys[g_test_rand_int_range (0, 3)],
               statuses[g_test_rand_int_range (0, G_N_ELEMENTS (statuses))],
               g_test_rand_int_range (0, 5000), g_test_rand_int_range (0, 9) / 8.0,
               g_test_rand_int_range (-1, 70000),
               GK_TEST_EPOCH + g_test_rand_int_range (-42 * (int) DAY, (int) HOUR));
  commit_rows (db);

  for (guint pass = 0; pass < 3; pass++)
    {
      for (guint z = 0; z < G_N_ELEMENTS (zones); z++)
        for (guint p = 0; p < G_N_ELEMENTS (periods); p++)
          {
            gint64 since;
            g_autofree char *expected = NULL;
            g_autofree char *got = NULL;
            g_autoptr(GPtrArray) rows = NULL;

            g_setenv ("TZ", zones[z], TRUE);
            since = gk_stats_local_midnight (NULL, gk_clock_now (clock), (int) periods[p] - 1);
            rows = gk_insights_compare_days (db, periods[p], &error);
            g_assert_no_error (error);
            expected = compare_from_log (db, since);
            got = compare_text (db, since);
            g_assert_cmpstr (got, ==, expected);
          }
      if (tz != NULL)
        g_setenv ("TZ", tz, TRUE);
      else
        g_unsetenv ("TZ");

      if (pass == 0)
        {
          g_assert_true (gk_rollup_compact (db, &report, &error));
          g_assert_no_error (error);
          g_assert_cmpint (query_int (db, "SELECT count(*) FROM usage_rollup_latency"
                                          " WHERE span = 900 AND start < 1773576000 - 36 * 86400"),
                           ==, 0);
          g_assert_cmpint (query_int (db, "SELECT count(*) FROM usage_rollup_key"
                                          " WHERE span = 900 AND start < 1773576000 - 36 * 86400"),
                           ==, 0);
        }
      else
        run_sql (db, "DELETE FROM usage_rollup_facet");
    }
}

/* Takes @db back to an older schema with @downgrade_sql, opens it again
 * and migrates it, which creates @tables. */
static GkDatabase *
reopen_upgraded (GkDatabase         *db,
                 const char         *downgrade_sql,
                 const char * const *tables)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) upgraded = NULL;
  g_auto(GStrv) created = NULL;

  run_sql (db, "%s", downgrade_sql);
  upgraded = gk_database_new (gk_database_get_path (db), gk_database_get_clock (db), &error);
  g_assert_no_error (error);
  g_assert_true (gk_database_migrate (upgraded, &created, &error));
  g_assert_no_error (error);
  g_assert_cmpstrv (created, tables);
  g_assert_cmpint (gk_database_get_schema_version (upgraded), ==, 12);
  return g_steal_pointer (&upgraded);
}

/* A database of schema version 7 gets its history's latencies folded. */
static void
test_latency_upgrade (Fixture       *fixture,
                      gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", FALSE);
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) upgraded = NULL;
  const char *const tables[] = { "usage_rollup_latency", "usage_rollup_key", NULL };
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;

  if (gk_test_skip_on_postgresql ("an upgrade from an older SQLite schema"))
    return;
  for (guint i = 0; i < 200; i++)
    add_usage (db, key, i % 5 == 0 ? "ERROR" : "SUCCESS", 10, 0.01, (gint64) i * 397,
               GK_TEST_EPOCH - (gint64) i * 1000);
  before = compare_from_log (db, GK_TEST_EPOCH - 7 * DAY);
  g_assert_true (gk_rollup_catch_up (db, &error));
  upgraded = reopen_upgraded (db, "DROP TRIGGER usage_rollup_forget;"
                                  " DROP TABLE usage_rollup_latency; DROP TABLE usage_rollup_key;"
                                  " PRAGMA user_version = 7", tables);
  g_assert_cmpint (query_int (upgraded, "SELECT coalesce (sum(requests), 0) FROM usage_rollup_latency"
                                        " WHERE span = 86400"), ==, 160);
  after = compare_text (upgraded, GK_TEST_EPOCH - 7 * DAY);
  g_assert_cmpstr (after, ==, before);

  /* The new trigger takes deleted rows out of the histogram too. */
  run_sql (upgraded, "DELETE FROM gemini_key_usage_log WHERE id %% 3 = 0");
  g_clear_pointer (&before, g_free);
  g_clear_pointer (&after, g_free);
  before = compare_from_log (upgraded, GK_TEST_EPOCH - 7 * DAY);
  after = compare_text (upgraded, GK_TEST_EPOCH - 7 * DAY);
  g_assert_cmpstr (after, ==, before);
  g_assert_finalize_object (g_steal_pointer (&upgraded));
}

/* The comparisons of test_key_sums_upgrade(), as text: 60 UTC days, and 1,
 * 7, 30 and 40 local days in zones whose midnights are not all UTC's. */
static char *
comparisons_text (GkDatabase *db)
{
  static const char *const zones[] = { "UTC", "Asia/Kolkata", "America/Los_Angeles" };
  static const int periods[] = { 1, 7, 30, 40 };
  g_autofree char *tz = g_strdup (g_getenv ("TZ"));
  GString *out = g_string_new (NULL);
  gint64 now = gk_database_now (db);

  for (guint z = 0; z < G_N_ELEMENTS (zones); z++)
    for (guint p = 0; p < G_N_ELEMENTS (periods); p++)
      {
        g_autofree char *text = NULL;

        g_setenv ("TZ", zones[z], TRUE);
        text = compare_text (db, gk_stats_local_midnight (NULL, now, periods[p] - 1));
        g_string_append_printf (out, "%s %d:\n%s", zones[z], periods[p], text);
      }
  if (tz != NULL)
    g_setenv ("TZ", tz, TRUE);
  else
    g_unsetenv ("TZ");
  return g_string_free (out, FALSE);
}

/* A database of schema version 8, compacted and past its retention period,
 * gets the sums per key and status from its facet sums: every comparison
 * reads as before the upgrade, including days whose rows are gone. */
static void
test_key_sums_upgrade (Fixture       *fixture,
                       gconstpointer  data)
{
  static const char *const statuses[] = { "SUCCESS", "SUCCESS", "RATE_LIMITED", "INVALID_KEY",
                                          "ERROR" };
  GkDatabase *db = fixture->db;
  gint64 keys[] = { add_key (db, "a", FALSE), add_key (db, "b", FALSE), add_key (db, "c", TRUE) };
  gint64 since = (GK_TEST_EPOCH - 59 * DAY) / DAY * DAY;
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) upgraded = NULL;
  const char *const tables[] = { "usage_rollup_key", NULL };
  g_autofree char *all_rows = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  GkCompactReport report;

  if (gk_test_skip_on_postgresql ("an upgrade from an older SQLite schema"))
    return;
  begin_rows (db);
  for (guint i = 0; i < 2000; i++)
    add_usage (db, keys[i % 3], statuses[i % G_N_ELEMENTS (statuses)], (gint64) i % 700,
               (double) (i % 4) / 4, (gint64) (i * 7919 % 9000) - 1,
               GK_TEST_EPOCH - (gint64) i * 2551);
  commit_rows (db);
  all_rows = compare_from_log (db, since);

  /* As version 8 left it: rows older than 45 days deleted, the facet sums
   * before 35 days ago per UTC day. */
  g_assert_true (gk_rollup_set_retention_days (db, 45, &error));
  g_assert_true (gk_rollup_compact (db, &report, &error));
  g_assert_no_error (error);
  g_assert_cmpint (report.rows_deleted, >, 0);
  before = comparisons_text (db);
  upgraded = reopen_upgraded (db, "DROP TRIGGER usage_rollup_forget;"
                                  " DROP TABLE usage_rollup_key; PRAGMA user_version = 8",
                              tables);
  /* No quarter hours where the facet sums hold days only. */
  g_assert_cmpint (query_int (upgraded, "SELECT count(*) FROM usage_rollup_key WHERE span = 900"
                                        " AND start < " GK_ROLLUP_FACET_DAYS_SQL), ==, 0);
  g_assert_cmpint (query_int (upgraded, "SELECT count(*) FROM usage_rollup_key"
                                        " WHERE span = 900"), >, 0);
  after = comparisons_text (upgraded);
  g_assert_cmpstr (after, ==, before);
  g_clear_pointer (&after, g_free);
  after = compare_text (upgraded, since);
  g_assert_cmpstr (after, ==, all_rows);

  /* The new trigger takes deleted rows out of the sums, and the fold adds
   * new ones. */
  run_sql (upgraded, "DELETE FROM gemini_key_usage_log WHERE id %% 3 = 0");
  add_usage (upgraded, keys[1], "RATE_LIMITED", 5, 0.5, 100, GK_TEST_EPOCH - HOUR);
  g_clear_pointer (&before, g_free);
  g_clear_pointer (&after, g_free);
  before = compare_from_log (upgraded, GK_TEST_EPOCH - 30 * DAY);
  after = compare_text (upgraded, GK_TEST_EPOCH - 30 * DAY);
  g_assert_cmpstr (after, ==, before);
  g_assert_finalize_object (g_steal_pointer (&upgraded));
}

/* --- Forecast on synthetic series ---------------------------------------- */

typedef double (*SeriesFunc) (guint  index,
                              GRand *rand);

/* 1,000 units every 15 minutes. */
static double
steady (guint  index,
        GRand *rand)
{
  return 1000;
}

/* The same mean in bursts: a quarter of the buckets carry 3,250, the
 * rest 250. */
static double
bursty (guint  index,
        GRand *rand)
{
  return g_rand_int_range (rand, 0, 4) == 0 ? 3250 : 250;
}

/* 1,000 on weekdays (the series starts on a Monday), 100 on weekends,
 * with a quiet night on every day. */
static double
weekend_quiet (guint  index,
               GRand *rand)
{
  guint day = index / BUCKETS_PER_DAY % 7, hour = index % BUCKETS_PER_DAY / 4;
  double level = day >= 5 ? 100 : 1000;

  return hour < 6 ? level / 4 : level;
}

/* Runs the model at @n_points moments after four weeks of history, each
 * time for a remaining amount that the series itself uses up in
 * @horizon_buckets, and returns the mean absolute error of the run-out
 * time relative to the true time left. */
static double
forecast_error (SeriesFunc func,
                guint      horizon_buckets,
                guint      n_points,
                double    *mean_minutes)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (20261203);
  guint total = HISTORY_BUCKETS + 8 * BUCKETS_PER_DAY + horizon_buckets * 2;
  g_autofree double *series = g_new (double, total);
  double relative = 0, minutes = 0;

  for (guint i = 0; i < total; i++)
    series[i] = func (i, rand);

  for (guint p = 0; p < n_points; p++)
    {
      /* Spread over a week, at 7 minutes into a bucket. */
      guint now_index = HISTORY_BUCKETS + p * (7 * BUCKETS_PER_DAY / n_points);
      gint64 now = MONDAY + (gint64) now_index * 900 + 7 * MINUTE;
      double partial = series[now_index] * 7.0 / 15.0;
      double remaining = 0, used, truth;
      gint64 predicted;

      /* The true amount used over the horizon from now. */
      remaining = series[now_index] * 8.0 / 15.0;
      for (guint i = 1; i < horizon_buckets; i++)
        remaining += series[now_index + i];
      remaining += series[now_index + horizon_buckets] * 7.0 / 15.0;
      truth = (double) horizon_buckets * 900;

      predicted = gk_forecast_run_out (series + now_index - HISTORY_BUCKETS, HISTORY_BUCKETS,
                                       partial, now, remaining, now + 30 * DAY, NULL);
      g_assert_cmpint (predicted, >, now);
      used = (double) (predicted - now);
      relative += fabs (used - truth) / truth;
      minutes += fabs (used - truth) / 60;
    }
  *mean_minutes = minutes / n_points;
  return relative / n_points;
}

static void
test_forecast_series (void)
{
  static const struct
  {
    const char *name;
    SeriesFunc  func;
    guint       horizon_buckets;
    double      max_error;
  } cases[] = {
    { "steady, 6 h", steady, 24, 0.001 },
    /* What the series itself does in 6 hours varies by 26% (the standard
     * deviation of a sum of 24 of its buckets): no forecast from its past
     * can do much better. */
    { "bursty, 6 h", bursty, 24, 0.32 },
    { "weekend-quiet, 6 h", weekend_quiet, 24, 0.05 },
    { "weekend-quiet, 3 days", weekend_quiet, 3 * BUCKETS_PER_DAY, 0.05 },
  };

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      double minutes = 0;
      double error = forecast_error (cases[c].func, cases[c].horizon_buckets, 56, &minutes);

      g_test_message ("forecast error, %s: %.1f%% of the time left (%.0f minutes)",
                      cases[c].name, error * 100, minutes);
      g_assert_cmpfloat (error, <=, cases[c].max_error);
    }
}

/* No use, or nothing left: no run-out time, and a rate of 0. */
static void
test_forecast_edges (void)
{
  double zeros[HISTORY_BUCKETS] = { 0 };
  double rate = -1;

  g_assert_cmpint (gk_forecast_run_out (zeros, HISTORY_BUCKETS, 0, GK_TEST_EPOCH, 10,
                                        GK_TEST_EPOCH + DAY, &rate), ==, 0);
  g_assert_cmpfloat (rate, ==, 0);
  zeros[HISTORY_BUCKETS - 1] = 900;
  g_assert_cmpint (gk_forecast_run_out (zeros, HISTORY_BUCKETS, 0, GK_TEST_EPOCH, 0,
                                        GK_TEST_EPOCH + DAY, &rate), ==, 0);
  g_assert_cmpfloat (rate, >, 0);
  /* Past the reset: not reported. */
  g_assert_cmpint (gk_forecast_run_out (zeros, HISTORY_BUCKETS, 0, GK_TEST_EPOCH, 1e9,
                                        GK_TEST_EPOCH + DAY, &rate), ==, 0);
}

static void
add_quota (GkDatabase *db,
           gint64      key,
           const char *type,
           const char *unit,
           gint64      limit,
           gint64      used,
           gint64      reset_at)
{
  run_sql (db, "INSERT INTO gemini_key_quotas (key_id, quota_type, unit, limit_value, used_value,"
               " reset_at) VALUES (%" G_GINT64_FORMAT ", '%s', '%s', %" G_GINT64_FORMAT ", %"
               G_GINT64_FORMAT ", %" G_GINT64_FORMAT ")",
           key, type, unit, limit, used, reset_at);
}

/* A key burning 4,000 tokens an hour with 55,000 left before the
 * rotation threshold runs out in 13.75 hours, before its daily reset. */
static void
test_forecast_keys (Fixture       *fixture,
                    gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  g_autoptr(GTimeZone) la = g_time_zone_new_identifier ("America/Los_Angeles");
  gint64 now = GK_TEST_EPOCH + 3 * MINUTE;
  gint64 reset = gk_quota_next_reset (GK_QUOTA_DAILY, now, la);
  gint64 busy = add_key (db, "busy", FALSE);
  gint64 spare = add_key (db, "spare", FALSE);
  gint64 off = add_key (db, "off", FALSE);
  g_autoptr(GkForecast) forecast = NULL;
  g_autoptr(GError) error = NULL;
  const GkDepletion *first;

  gk_clock_set (gk_database_get_clock (db), now);
  g_assert_cmpint (reset - now, >, 18 * HOUR);
  run_sql (db, "UPDATE gemini_api_keys SET status = 'INACTIVE' WHERE id = %" G_GINT64_FORMAT,
           off);
  for (gint64 t = GK_TEST_EPOCH - 3 * DAY; t < GK_TEST_EPOCH; t += 15 * MINUTE)
    add_usage (db, busy, "SUCCESS", 1000, 0, 100, t);
  /* The bucket under way, at the same pace (3 of its 15 minutes). */
  add_usage (db, busy, "SUCCESS", 200, 0, 100, GK_TEST_EPOCH);
  /* The threshold is 5%: 95,000 of 100,000 usable, 40,000 used. */
  add_quota (db, busy, "DAILY", "TOKENS", 100000, 40000, reset);
  add_quota (db, busy, "MONTHLY", "TOKENS", 10000000, 40000,
             gk_quota_next_reset (GK_QUOTA_MONTHLY, now, la));
  add_quota (db, spare, "DAILY", "TOKENS", 20000, 0, reset);
  add_quota (db, off, "DAILY", "TOKENS", 10, 0, reset);

  forecast = gk_insights_forecast (db, &error);
  g_assert_no_error (error);
  g_assert_cmpint (forecast->now, ==, now);
  g_assert_cmpuint (forecast->windows->len, ==, 3);
  g_assert_cmpuint (forecast->keys_out_today, ==, 1);

  first = gk_forecast_key_first (forecast, busy);
  g_assert_nonnull (first);
  g_assert_cmpint (first->quota_type, ==, GK_QUOTA_DAILY);
  g_assert_cmpfloat_with_epsilon (first->rate_per_hour, 4000, 1e-6);
  g_assert_cmpint (llabs (first->runs_out_at - (now + 13 * HOUR + 45 * MINUTE)), <=, 1);
  g_assert_null (gk_forecast_key_first (forecast, spare));
  g_assert_null (gk_forecast_key_first (forecast, off));

  /* The pool: 55,000 + 19,000 at 4,000 an hour. */
  g_assert_cmpint (forecast->pool_reset_at, ==, reset);
  g_assert_cmpint (llabs (forecast->pool_runs_out_at - (now + 18 * HOUR + 30 * MINUTE)), <=, 1);

  /* A key without a daily limit leaves the pool unbounded for the day. */
  g_clear_pointer (&forecast, gk_forecast_free);
  add_key (db, "unlimited", FALSE);
  forecast = gk_insights_forecast (db, &error);
  g_assert_no_error (error);
  g_assert_cmpint (forecast->pool_runs_out_at, ==, 0);
  g_assert_cmpuint (forecast->keys_out_today, ==, 1);
}

/* --- Rotation spikes ------------------------------------------------------ */

static void
test_spike_thresholds (void)
{
  g_assert_false (gk_insights_is_spike (4, 0));
  g_assert_true (gk_insights_is_spike (5, 0));
  g_assert_true (gk_insights_is_spike (6, 0));
  g_assert_false (gk_insights_is_spike (5, 2));
  g_assert_true (gk_insights_is_spike (6, 2));
  g_assert_true (gk_insights_is_spike (7, 2));
  g_assert_false (gk_insights_is_spike (4, 1));
}

/* A key rotating twice an hour for a week, then @n times in one hour:
 * a spike for the key and the pool from 6 on (3 × 2). */
static void
test_spike_baseline (Fixture       *fixture,
                     gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  const gint64 ns[] = { 5, 6, 7 };
  g_autoptr(GError) error = NULL;

  for (guint c = 0; c < G_N_ELEMENTS (ns); c++)
    {
      /* Two weeks apart, so each case's baseline is its own week. */
      gint64 hour = GK_TEST_EPOCH - 12 * HOUR - (gint64) c * 14 * DAY;
      g_autofree char *name = g_strdup_printf ("k%u", c);
      gint64 key = add_key (db, name, FALSE);
      g_autoptr(GPtrArray) spikes = NULL;

      for (gint64 t = hour - 7 * DAY; t < hour; t += 30 * MINUTE)
        add_rotation (db, key, "QUOTA_LOW", t);
      for (gint64 i = 0; i < ns[c]; i++)
        add_rotation (db, key, i < ns[c] - 2 ? "RATE_LIMITED" : "QUOTA_LOW", hour + i * MINUTE);

      spikes = gk_insights_rotation_spikes (db, hour, hour + HOUR, &error);
      g_assert_no_error (error);
      if (ns[c] < 6)
        {
          g_assert_cmpuint (spikes->len, ==, 0);
          continue;
        }
      g_assert_cmpuint (spikes->len, ==, 2);
      for (guint s = 0; s < 2; s++)
        {
          const GkRotationSpike *spike = spikes->pdata[s];

          g_assert_cmpint (spike->hour_start, ==, hour);
          g_assert_cmpint (spike->key_id, ==, s == 0 ? 0 : key);
          g_assert_cmpstr (spike->key_name, ==, s == 0 ? NULL : name);
          g_assert_cmpint (spike->rotations, ==, ns[c]);
          g_assert_cmpfloat_with_epsilon (spike->baseline, 2, 1e-9);
          g_assert_cmpint (spike->dominant_reason, ==, GK_ROTATION_RATE_LIMITED);
          g_assert_cmpint (spike->dominant_count, ==, ns[c] - 2);
        }
    }
}

/* A quiet key's burst is its own spike, not the busy pool's; the rows of
 * that hour are marked in the rotation log. */
static void
test_spike_key_vs_pool (Fixture       *fixture,
                        gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 hour = GK_TEST_EPOCH - 2 * HOUR;
  gint64 busy = add_key (db, "busy", FALSE);
  gint64 quiet = add_key (db, "quiet", FALSE);
  g_autoptr(GPtrArray) spikes = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GError) error = NULL;
  const GkRotationSpike *spike;
  guint marked = 0;

  for (gint64 t = hour - 7 * DAY; t < hour + HOUR; t += 20 * MINUTE)
    add_rotation (db, busy, "QUOTA_LOW", t);
  for (gint64 i = 0; i < 5; i++)
    add_rotation (db, quiet, "INVALID_KEY", hour + i * MINUTE);
  add_rotation (db, quiet, "MANUAL", hour + HOUR + MINUTE);

  spikes = gk_insights_rotation_spikes (db, hour - DAY, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (spikes->len, ==, 1);
  spike = spikes->pdata[0];
  g_assert_cmpint (spike->key_id, ==, quiet);
  g_assert_cmpint (spike->rotations, ==, 5);
  g_assert_cmpfloat (spike->baseline, ==, 0);
  g_assert_cmpint (spike->dominant_reason, ==, GK_ROTATION_INVALID_KEY);

  rows = gk_stats_rotation_logs (db, 50, &error);
  g_assert_no_error (error);
  g_assert_true (gk_insights_mark_spikes (db, rows, &error));
  g_assert_no_error (error);
  for (guint i = 0; i < rows->len; i++)
    {
      const GkRotationRow *row = rows->pdata[i];
      gboolean expected = row->from_key_id == quiet && row->created_at < hour + HOUR;

      g_assert_cmpint (row->in_spike, ==, expected);
      marked += row->in_spike;
    }
  g_assert_cmpuint (marked, ==, 5);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

#define ADD(path, func) \
  g_test_add ("/insights/" path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

  ADD ("compare/latency-buckets", test_latency_buckets);
  g_test_add_func ("/insights/compare/percentile", test_percentile);
  ADD ("compare/figures", test_compare_figures);
  ADD ("compare/matches-log", test_compare_matches_log);
  ADD ("compare/upgrade", test_latency_upgrade);
  ADD ("compare/upgrade-key-sums", test_key_sums_upgrade);
  g_test_add_func ("/insights/forecast/series", test_forecast_series);
  g_test_add_func ("/insights/forecast/edges", test_forecast_edges);
  ADD ("forecast/keys", test_forecast_keys);
  g_test_add_func ("/insights/spikes/thresholds", test_spike_thresholds);
  ADD ("spikes/baseline", test_spike_baseline);
  ADD ("spikes/key-vs-pool", test_spike_key_vs_pool);

#undef ADD

  return g_test_run ();
}
