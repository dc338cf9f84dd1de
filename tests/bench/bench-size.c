/* bench-size: how many bytes the usage log and its rollup take, before and
 * after compaction.
 *
 * Run by hand (not a test): prints the size of each table and index (from
 * SQLite's dbstat) after recording the history, after folding it into the
 * rollup, after `db compact` with every row kept, and after `db compact`
 * with a 90-day retention.
 *   bench-size [--per-day N] [--days N] [--users N]
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <stdio.h>

#include "gk-database-private.h"
#include "gk-test-util.h"

#define N_KEYS 20

static void
fill_usage (GkDatabase *db,
            gint64      first_key,
            int         per_day,
            int         days,
            int         users)
{
  static const char *const models[] = { "gemini-2.5-flash", "gemini-2.5-pro",
                                        "gemini-2.5-flash-lite", "gemini-2.0-flash",
                                        "gemini-embedding-001" };
  g_autoptr(GError) error = NULL;
  gint64 now = gk_database_now (db);
  gint64 n_rows = (gint64) per_day * days;
  GkSqlStmt *stmt;

  gk_database_begin (db, &error);
  g_assert_no_error (error);
  stmt = gk_database_prepare (db,
                              "INSERT INTO gemini_key_usage_log (key_id, model, tokens_used,"
                              " prompt_tokens, output_tokens, cost_usd, status, http_status,"
                              " error_message, user_id, latency_ms, created_at)"
                              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                              &error);
  g_assert_no_error (error);
  for (gint64 i = 0; i < n_rows; i++)
    {
      char user[16];
      gboolean failed = i % 20 == 19;
      gint64 prompt = 200 + (i * 7919) % 4000, output = failed ? 0 : 50 + (i * 104729) % 900;

      g_snprintf (user, sizeof user, "user-%d", (int) (i % users));
      gk_sql_bind_int64 (stmt, 1, first_key + i % N_KEYS);
      gk_sql_bind_text (stmt, 2, models[i % G_N_ELEMENTS (models)], -1);
      gk_sql_bind_int64 (stmt, 3, prompt + output);
      gk_sql_bind_int64 (stmt, 4, prompt);
      gk_sql_bind_int64 (stmt, 5, output);
      gk_sql_bind_double (stmt, 6, prompt * 0.3e-6 + output * 2.5e-6);
      gk_sql_bind_text (stmt, 7, failed ? "RATE_LIMITED" : "SUCCESS", -1);
      gk_sql_bind_int64 (stmt, 8, failed ? 429 : 200);
      if (failed)
        gk_sql_bind_text (stmt, 9, "Resource has been exhausted (e.g. check quota).", -1);
      else
        gk_sql_bind_null (stmt, 9);
      gk_sql_bind_text (stmt, 10, user, -1);
      gk_sql_bind_int64 (stmt, 11, 300 + i % 1500);
      /* Oldest first, evenly spread, as they would have been recorded. */
      gk_sql_bind_int64 (stmt, 12, now - (n_rows - i) * 86400 / per_day);
      g_assert_cmpint (gk_sql_step (stmt), ==, GK_SQL_DONE);
      gk_sql_reset (stmt);
    }
  gk_database_commit (db, &error);
  g_assert_no_error (error);
}

static gint64
count (GkDatabase *db,
       const char *table)
{
  g_autofree char *sql = g_strdup_printf ("SELECT count(*) FROM %s", table);
  GkSqlStmt *stmt = gk_database_prepare (db, sql, NULL);
  gint64 n = 0;

  if (stmt != NULL && gk_sql_step (stmt) == GK_SQL_ROW)
    n = gk_sql_column_int64 (stmt, 0);
  if (stmt != NULL)
    gk_sql_reset (stmt);
  return n;
}

static void
report (GkDatabase *db,
        const char *stage)
{
  static const char *const tables[] = { "gemini_key_usage_log", "usage_rollup_total",
                                        "usage_rollup_model", "usage_rollup_user",
                                        "usage_rollup_facet", "usage_rollup_key",
                                        "usage_rollup_latency" };
  GkSqlStmt *stmt;
  gint64 total = 0;

  gk_database_exec (db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL);
  gk_database_lock (db);
  stmt = gk_database_prepare (db, "SELECT page_count * page_size FROM pragma_page_count (),"
                                  " pragma_page_size ()", NULL);
  if (gk_sql_step (stmt) == GK_SQL_ROW)
    total = gk_sql_column_int64 (stmt, 0);
  gk_sql_reset (stmt);
  printf ("\n%s: database %.1f MB\n", stage, total / 1e6);

  for (guint i = 0; i < G_N_ELEMENTS (tables); i++)
    {
      gint64 rows = count (db, tables[i]);
      gint64 bytes = 0;

      /* The table and its indexes. */
      stmt = gk_database_prepare (db,
                                  "SELECT total (pgsize) FROM dbstat WHERE name = ?1 OR name IN"
                                  " (SELECT name FROM sqlite_schema WHERE type = 'index'"
                                  "  AND tbl_name = ?1)",
                                  NULL);
      if (stmt == NULL)
        {
          printf ("  (dbstat is not available)\n");
          break;
        }
      gk_sql_bind_text (stmt, 1, tables[i], -1);
      if (gk_sql_step (stmt) == GK_SQL_ROW)
        bytes = (gint64) gk_sql_column_double (stmt, 0);
      gk_sql_reset (stmt);
      printf ("  %-22s %9" G_GINT64_FORMAT " rows %8.1f MB %6.1f bytes/row\n", tables[i], rows,
              bytes / 1e6, rows > 0 ? (double) bytes / rows : 0.0);
    }
  gk_database_unlock (db);
}

/* The usage tab's summary over the last 60 days, starting at a UTC
 * midnight and at a local one 7 hours off (whose first part of a day, once
 * coarsened, is read from the log). */
static void
time_summaries (GkDatabase *db)
{
  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(GError) error = NULL;
      GkUsageFilter filter = GK_USAGE_FILTER_INIT;
      GkUsageSummary summary;
      gint64 now = gk_database_now (db), t0;

      filter.since = now - now % 86400 - 60 * 86400 - (i == 0 ? 0 : 7 * 3600);
      t0 = g_get_monotonic_time ();
      g_assert_true (gk_stats_usage_filter_summary (db, &filter, &summary, &error));
      g_assert_no_error (error);
      printf ("  usage summary, 60 days from a %s midnight: %" G_GINT64_FORMAT " requests,"
              " %.1f ms\n", i == 0 ? "UTC" : "UTC+7", summary.requests,
              (g_get_monotonic_time () - t0) / 1e3);
    }
}

int
main (int argc, char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) context = g_option_context_new ("- database size benchmark");
  int per_day = 10000, days = 100, users = 37;
  const GOptionEntry entries[] = {
    { "per-day", 0, 0, G_OPTION_ARG_INT, &per_day, "Requests per day", "N" },
    { "days", 0, 0, G_OPTION_ARG_INT, &days, "Days of history", "N" },
    { "users", 0, 0, G_OPTION_ARG_INT, &users, "Distinct client tokens", "N" },
    { NULL }
  };
  g_autoptr(GkClock) clock = gk_clock_new ();
  g_autoptr(GkDatabase) db = NULL;
  g_autoptr(GBytes) master = gk_test_master_key ();
  g_autoptr(GkKeyStore) store = NULL;
  g_autofree char *dir = NULL;
  GkCompactReport compacted;
  gint64 first_key = 0, t0;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }

  db = gk_test_open_db (clock);
  dir = g_path_get_dirname (gk_database_get_path (db));
  store = gk_key_store_new (db, master);
  for (int i = 0; i < N_KEYS; i++)
    {
      g_autofree char *name = g_strdup_printf ("key-%02d", i);
      gint64 id = gk_test_add_key (store, name, 1 + i % 10);

      if (first_key == 0)
        first_key = id;
    }

  printf ("%d requests a day for %d days (%d users, 5 models, %d keys)\n", per_day, days, users,
          N_KEYS);
  fill_usage (db, first_key, per_day, days, users);
  report (db, "recorded, not folded");

  gk_rollup_catch_up (db, &error);
  g_assert_no_error (error);
  report (db, "folded into the rollup");
  time_summaries (db);

  t0 = g_get_monotonic_time ();
  g_assert_true (gk_rollup_compact (db, &compacted, &error));
  g_assert_no_error (error);
  report (db, "db compact, every row kept");
  printf ("  (%" G_GINT64_FORMAT " quarter-hour sums merged into days in %.1f s)\n",
          compacted.buckets_coarsened, (g_get_monotonic_time () - t0) / 1e6);
  time_summaries (db);

  g_assert_true (gk_rollup_set_retention_days (db, 90, &error));
  t0 = g_get_monotonic_time ();
  g_assert_true (gk_rollup_compact (db, &compacted, &error));
  g_assert_no_error (error);
  report (db, "db compact, 90 days kept");
  printf ("  (%" G_GINT64_FORMAT " rows removed in %.1f s)\n", compacted.rows_deleted,
          (g_get_monotonic_time () - t0) / 1e6);
  time_summaries (db);

  g_clear_object (&store);
  g_clear_object (&db);
  gk_test_rm_rf (dir);
  return 0;
}
