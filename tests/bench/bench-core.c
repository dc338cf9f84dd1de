/* bench-core: the core's hot path and the dashboard at scale.
 *
 * Run by hand (not a test): prints its figures.
 *   bench-core [--keys N] [--rows N] [--requests N] [--batch N] [--track-only]
 *              [--database URI]
 *
 * With --database (a PostgreSQL connection URI, say that of
 * tests/pg/pg-cluster.sh's throwaway cluster: GK_TEST_PG_URI), the pool on
 * that server, watched for other processes' changes as a gateway watches
 * it, and only select + track_usage.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <stdio.h>

#include "gk-database-private.h"
#include "gk-test-util.h"

static int
compare_gint64 (gconstpointer a,
                gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;
  return (x > y) - (x < y);
}

/* @n_rows rows spread evenly over the last @span seconds. */
static void
fill_usage (GkDatabase *db,
            gint64      first_key,
            int         n_keys,
            int         n_rows,
            gint64      span)
{
  static const char *const models[] = { "gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite",
                                        "gemini-2.0-flash", "gemini-embedding-001" };
  static const char *const statuses[] = { "SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS",
                                          "SUCCESS", "SUCCESS", "SUCCESS", "RATE_LIMITED", "ERROR" };
  g_autoptr(GError) error = NULL;
  gint64 now = gk_database_now (db);
  GkSqlStmt *stmt;

  /* A server fills itself: a million round trips would take minutes. */
  if (gk_sql_get_dialect (gk_database_get_handle (db)) == GK_SQL_DIALECT_POSTGRESQL)
    {
      g_autofree char *fill = g_strdup_printf (
        "INSERT INTO gemini_key_usage_log (key_id, model, tokens_used, prompt_tokens,"
        " output_tokens, cost_usd, status, http_status, user_id, latency_ms, created_at)"
        " SELECT %" G_GINT64_FORMAT " + i %% %d,"
        " (ARRAY['gemini-2.5-flash', 'gemini-2.5-pro', 'gemini-2.5-flash-lite',"
        " 'gemini-2.0-flash', 'gemini-embedding-001'])[1 + i %% 5], 1500, 1000, 500, 0.0015,"
        " CASE i %% 10 WHEN 8 THEN 'RATE_LIMITED' WHEN 9 THEN 'ERROR' ELSE 'SUCCESS' END, 200,"
        " 'user-' || (i %% 37), 50 + i * 7919 %% 4950,"
        " %" G_GINT64_FORMAT " - i * %" G_GINT64_FORMAT " / %d"
        " FROM generate_series (CAST (0 AS BIGINT), %d) AS i",
        first_key, n_keys, now, span, n_rows, n_rows - 1);

      gk_database_exec (db, fill, &error);
      g_assert_no_error (error);
      return;
    }

  gk_database_begin (db, &error);
  g_assert_no_error (error);
  stmt = gk_database_prepare (db,
                              "INSERT INTO gemini_key_usage_log (key_id, model, tokens_used,"
                              " prompt_tokens, output_tokens, cost_usd, status, http_status,"
                              " user_id, latency_ms, created_at)"
                              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 200, ?8, ?10, ?9)",
                              &error);
  g_assert_no_error (error);
  for (int i = 0; i < n_rows; i++)
    {
      char user[16];

      g_snprintf (user, sizeof user, "user-%d", i % 37);
      gk_sql_bind_int64 (stmt, 1, first_key + i % n_keys);
      gk_sql_bind_text (stmt, 2, models[i % G_N_ELEMENTS (models)], -1);
      gk_sql_bind_int64 (stmt, 3, 1500);
      gk_sql_bind_int64 (stmt, 4, 1000);
      gk_sql_bind_int64 (stmt, 5, 500);
      gk_sql_bind_double (stmt, 6, 0.0015);
      gk_sql_bind_text (stmt, 7, statuses[i % G_N_ELEMENTS (statuses)], -1);
      gk_sql_bind_text (stmt, 8, user, -1);
      gk_sql_bind_int64 (stmt, 9, now - (gint64) i * span / n_rows);
      /* Latencies spread over 50 ms – 5 s, for the comparison's histograms. */
      gk_sql_bind_int64 (stmt, 10, 50 + (gint64) i * 7919 % 4950);
      g_assert_cmpint (gk_sql_step (stmt), ==, GK_SQL_DONE);
      gk_sql_reset (stmt);
    }
  gk_database_commit (db, &error);
  g_assert_no_error (error);
}

/* Records a request on @key_id, as the gateway would. */
static void
track (GkPool *pool,
       gint64  key_id)
{
  g_autoptr(GError) error = NULL;
  GkUsageRecord record;

  gk_usage_record_init (&record);
  record.key_id = key_id;
  record.model = "gemini-2.5-flash";
  record.prompt_tokens = 1000;
  record.output_tokens = 200;
  record.user_id = "bench";
  record.latency_ms = 300;
  gk_pool_track (pool, &record, NULL, &error);
  g_assert_no_error (error);
}

/* Times select + track_usage per request, as the gateway does them; with
 * @context, the main context of the database's watch, iterated between
 * requests as the gateway's loop would. */
G_GNUC_NO_INLINE static void
time_select_track (GkPool       *pool,
                   int           n_keys,
                   int           n_rows,
                   int           n_requests,
                   GMainContext *context)
{
  g_autoptr(GArray) samples = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr(GError) error = NULL;

  /* The first select loads the snapshot: not part of the steady state. */
  gk_key_free (gk_pool_select (pool, NULL, NULL, NULL));

  for (int i = 0; i < n_requests; i++)
    {
      g_autoptr(GkKey) key = NULL;
      gint64 start = g_get_monotonic_time (), elapsed;

      if (context != NULL)
        g_main_context_iteration (context, FALSE);
      key = gk_pool_select (pool, "gemini-2.5-flash", NULL, &error);
      g_assert_no_error (error);
      track (pool, key->id);
      elapsed = g_get_monotonic_time () - start;
      g_array_append_val (samples, elapsed);
    }
  g_array_sort (samples, compare_gint64);
  printf ("select + track_usage, %d keys, %d rows: median %" G_GINT64_FORMAT " µs, p99 %"
          G_GINT64_FORMAT " µs (%d requests; target: median ≤ 50 µs)\n",
          n_keys, n_rows, g_array_index (samples, gint64, samples->len / 2),
          g_array_index (samples, gint64, samples->len * 99 / 100), n_requests);
}

/* Times tracks written @batch to a transaction, as the gateway writes the
 * rows of requests that end together: the time per row, each batch's
 * keys chosen before it is written. Not inlined, as time_select_track(),
 * so that callgrind --toggle-collect can count each alone. */
G_GNUC_NO_INLINE static void
time_batched_track (GkPool *pool,
                    int     n_requests,
                    int     batch)
{
  g_autoptr(GArray) samples = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr(GError) error = NULL;

  for (int i = 0; i < n_requests; i += batch)
    {
      g_autofree gint64 *keys = g_new (gint64, batch);
      gint64 start;

      for (int j = 0; j < batch; j++)
        {
          g_autoptr(GkKey) key = gk_pool_select (pool, "gemini-2.5-flash", NULL, &error);

          g_assert_no_error (error);
          keys[j] = key->id;
        }
      start = g_get_monotonic_time ();
      gk_pool_batch_begin (pool, &error);
      g_assert_no_error (error);
      for (int j = 0; j < batch; j++)
        track (pool, keys[j]);
      gk_pool_batch_end (pool, &error);
      g_assert_no_error (error);
      start = (g_get_monotonic_time () - start) / batch;
      g_array_append_val (samples, start);
    }
  g_array_sort (samples, compare_gint64);
  printf ("track_usage in batches of %d: median %" G_GINT64_FORMAT " µs per row (%d requests)\n",
          batch, g_array_index (samples, gint64, samples->len / 2), n_requests);
}

int
main (int argc, char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) context = g_option_context_new ("- Gemini Keys core benchmark");
  int n_keys = 1000, n_rows = 1000000, n_requests = 20000, batch_rows = 4;
  gboolean track_only = FALSE;
  g_autofree char *target = NULL;
  g_autoptr(GMainContext) watch_context = g_main_context_new ();
  g_autoptr(GSource) watch = NULL;
  const GOptionEntry entries[] = {
    { "database", 0, 0, G_OPTION_ARG_STRING, &target, "A PostgreSQL URI (default: an SQLite file)",
      "URI" },
    { "keys", 0, 0, G_OPTION_ARG_INT, &n_keys, "Keys in the pool", "N" },
    { "rows", 0, 0, G_OPTION_ARG_INT, &n_rows, "Usage rows", "N" },
    { "requests", 0, 0, G_OPTION_ARG_INT, &n_requests, "Requests to time", "N" },
    { "batch", 0, 0, G_OPTION_ARG_INT, &batch_rows, "Rows to a transaction in the batched run (4)",
      "N" },
    { "track-only", 0, 0, G_OPTION_ARG_NONE, &track_only, "Stop after the tracks", NULL },
    { NULL }
  };
  g_autoptr(GkClock) clock = gk_clock_new ();
  g_autoptr(GkDatabase) db = NULL;
  g_autoptr(GBytes) master = gk_test_master_key ();
  g_autoptr(GkKeyStore) store = NULL;
  g_autoptr(GkPool) pool = NULL;
  g_autoptr(GArray) samples = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autofree char *dir = NULL;
  gint64 first_key = 0, t0;
  double total_ms;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }

  if (target != NULL)
    {
      db = gk_database_open (target, clock, &error);
      g_assert_no_error (error);
      watch = gk_database_watch_source_new (db);
      g_source_attach (watch, watch_context);
    }
  else
    {
      db = gk_test_open_db (clock);
      dir = g_path_get_dirname (gk_database_get_path (db));
    }
  store = gk_key_store_new (db, master);

  t0 = g_get_monotonic_time ();
  for (int i = 0; i < n_keys; i++)
    {
      g_autofree char *api_key = gk_test_api_key (i);
      g_autofree char *name = g_strdup_printf ("key-%04d", i);
      GkKeySpec spec;
      gint64 id;

      gk_key_spec_init (&spec);
      spec.name = name;
      spec.priority = 1 + i % 10;
      spec.limits[GK_QUOTA_SLOT_MONTHLY_TOKENS] = G_GINT64_CONSTANT (1000000000000);
      spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = G_GINT64_CONSTANT (10000000000);
      spec.limits[GK_QUOTA_SLOT_MINUTE_REQUESTS] = 1000000000;
      id = gk_key_store_add (store, &spec, api_key, &error);
      g_assert_no_error (error);
      if (first_key == 0)
        first_key = id;
    }
  fill_usage (db, first_key, n_keys, n_rows, 90 * 86400);
  printf ("setup: %d keys, %d usage rows in %.1f s\n", n_keys, n_rows,
          (g_get_monotonic_time () - t0) / 1e6);

  if (target != NULL)
    {
      gk_database_exec (db, "ANALYZE", NULL);
      pool = gk_pool_new (db, NULL);
      time_select_track (pool, n_keys, n_rows, n_requests, watch_context);
      g_source_destroy (watch);
      return 0;
    }

  /* The raw fill stands for history that came in through the API, which
   * the rollup would have folded as it arrived: fold it once here. */
  t0 = g_get_monotonic_time ();
  gk_rollup_catch_up (db, &error);
  g_assert_no_error (error);
  printf ("rollup: folded %d rows of history once in %.2f s\n", n_rows,
          (g_get_monotonic_time () - t0) / 1e6);
  gk_database_exec (db, "ANALYZE", NULL);

  pool = gk_pool_new (db, NULL);
  time_select_track (pool, n_keys, n_rows, n_requests, NULL);
  if (batch_rows > 1)
    time_batched_track (pool, n_requests, batch_rows);
  if (track_only)
    {
      g_clear_object (&pool);
      g_clear_object (&store);
      g_clear_object (&db);
      gk_test_rm_rf (dir);
      return 0;
    }

  /* Everything the dashboard and the two log tabs ask for on a refresh. */
  for (int round = 0; round < 3; round++)
    {
      g_autoptr(GkDashboard) week = NULL;
      g_autoptr(GkDashboard) month = NULL;
      g_autoptr(GPtrArray) logs = NULL;
      g_autoptr(GPtrArray) rotations = NULL;
      GkUsageSummary summary;
      gint64 all, manual, automatic;

      t0 = g_get_monotonic_time ();
      week = gk_stats_dashboard (db, 7, &error);
      g_assert_no_error (error);
      month = gk_stats_dashboard (db, 30, &error);
      g_assert_no_error (error);
      logs = gk_stats_usage_logs (db, 0, 500, 0, &error);
      g_assert_no_error (error);
      gk_stats_usage_summary (db, 0, 500, &summary, &error);
      g_assert_no_error (error);
      gk_stats_usage_count (db, 0, &error);
      g_assert_no_error (error);
      rotations = gk_stats_rotation_logs (db, 100, &error);
      g_assert_no_error (error);
      gk_stats_rotation_totals (db, &all, &manual, &automatic, &error);
      g_assert_no_error (error);
      total_ms = (g_get_monotonic_time () - t0) / 1e3;
      printf ("dashboard + logs queries at %d rows (round %d): %.1f ms (target: ≤ 100 ms)\n",
              n_rows + n_requests, round + 1, total_ms);
    }

  /* The insights: the key comparison (the target: ≤ 100 ms at 1M
   * rows) and the depletion forecast of every key. */
  for (int round = 0; round < 3; round++)
    {
      static const guint periods[] = { 7, 30 };

      for (guint p = 0; p < G_N_ELEMENTS (periods); p++)
        {
          g_autoptr(GPtrArray) rows = NULL;

          t0 = g_get_monotonic_time ();
          rows = gk_insights_compare_days (db, periods[p], &error);
          g_assert_no_error (error);
          total_ms = (g_get_monotonic_time () - t0) / 1e3;
          printf ("keys compare, %u days, %u keys, at %d rows (round %d): %.1f ms"
                  " (target: ≤ 100 ms)\n", periods[p], rows->len, n_rows + n_requests,
                  round + 1, total_ms);
        }
      {
        g_autoptr(GkForecast) forecast = NULL;

        t0 = g_get_monotonic_time ();
        forecast = gk_insights_forecast (db, &error);
        g_assert_no_error (error);
        total_ms = (g_get_monotonic_time () - t0) / 1e3;
        printf ("keys forecast, %u quota windows (round %d): %.1f ms\n", forecast->windows->len,
                round + 1, total_ms);
      }
    }

  /* What one fold costs at a few paces the pool could fold at (every N
   * tracks), for rows of the last few minutes. */
  for (int batch = 256; batch <= 4096; batch *= 4)
    {
      g_array_set_size (samples, 0);
      for (int i = 0; i < 10; i++)
        {
          gint64 elapsed;

          fill_usage (db, first_key, n_keys, batch, 256);
          t0 = g_get_monotonic_time ();
          gk_rollup_catch_up (db, &error);
          g_assert_no_error (error);
          elapsed = g_get_monotonic_time () - t0;
          g_array_append_val (samples, elapsed);
        }
      g_array_sort (samples, compare_gint64);
      printf ("rollup: folding %d new rows: median %" G_GINT64_FORMAT " µs, max %"
              G_GINT64_FORMAT " µs\n", batch, g_array_index (samples, gint64, samples->len / 2),
              g_array_index (samples, gint64, samples->len - 1));
    }

  g_clear_object (&pool);
  g_clear_object (&store);
  g_clear_object (&db);
  gk_test_rm_rf (dir);
  return 0;
}
