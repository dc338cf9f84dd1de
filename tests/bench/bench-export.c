/* bench-export: `gemini-keysctl export --csv` against `sqlite3 -csv` on the
 * same rows, on the same machine, in one run.
 *
 * Run by hand (not a test): prints both times and both peak resident
 * sizes (ru_maxrss of each child, from wait4).
 *   bench-export [--rows N] [--ctl PATH-TO-gemini-keysctl] [--sqlite3 PATH]
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gk-database-private.h"
#include "gk-test-util.h"

#define N_KEYS 20

/* The columns and text `export --csv` writes, spelled in SQL. */
static const char sqlite_query[] =
  "SELECT u.id, u.key_id, k.name AS key_name, u.model, u.tokens_used, u.prompt_tokens,"
  " u.output_tokens, printf('%.6f', u.cost_usd) AS cost_usd, u.priced, u.status,"
  " u.http_status, u.error_message, u.user_id, u.latency_ms,"
  " strftime('%Y-%m-%dT%H:%M:%SZ', u.created_at, 'unixepoch') AS created_at"
  " FROM gemini_key_usage_log AS u LEFT JOIN gemini_api_keys AS k ON k.id = u.key_id"
  " ORDER BY u.id DESC";

static void
fill_usage (GkDatabase *db,
            gint64      first_key,
            int         n_rows)
{
  static const char *const models[] = { "gemini-2.5-flash", "gemini-2.5-pro",
                                        "gemini-2.5-flash-lite", "gemini-2.0-flash" };
  g_autoptr(GError) error = NULL;
  gint64 now = gk_database_now (db);
  GkSqlStmt *stmt;

  gk_database_begin (db, &error);
  g_assert_no_error (error);
  stmt = gk_database_prepare (db,
                              "INSERT INTO gemini_key_usage_log (key_id, model, tokens_used,"
                              " prompt_tokens, output_tokens, cost_usd, status, http_status,"
                              " error_message, user_id, latency_ms, created_at)"
                              " VALUES (?1, ?2, 1500, 1000, 500, 0.0015, ?3, ?4, ?5, ?6, 420, ?7)",
                              &error);
  g_assert_no_error (error);
  for (int i = 0; i < n_rows; i++)
    {
      char user[16];
      gboolean failed = i % 10 == 9;

      g_snprintf (user, sizeof user, "user-%d", i % 37);
      gk_sql_bind_int64 (stmt, 1, first_key + i % N_KEYS);
      gk_sql_bind_text (stmt, 2, models[i % G_N_ELEMENTS (models)], -1);
      gk_sql_bind_text (stmt, 3, failed ? "RATE_LIMITED" : "SUCCESS", -1);
      gk_sql_bind_int64 (stmt, 4, failed ? 429 : 200);
      if (failed)
        gk_sql_bind_text (stmt, 5, "Resource exhausted, \"retry\" later", -1);
      else
        gk_sql_bind_null (stmt, 5);
      gk_sql_bind_text (stmt, 6, user, -1);
      gk_sql_bind_int64 (stmt, 7, now - (gint64) (n_rows - i) * 8);
      g_assert_cmpint (gk_sql_step (stmt), ==, GK_SQL_DONE);
      gk_sql_reset (stmt);
    }
  gk_database_commit (db, &error);
  g_assert_no_error (error);
}

/* Runs @argv with stdout to @out_path and @data_dir as the data folder;
 * returns the wall time in seconds and the child's peak RSS in KiB. */
static double
run_child (char *const  *argv,
           const char   *out_path,
           const char   *data_dir,
           long         *max_rss_kib)
{
  struct rusage usage = { 0 };
  gint64 t0 = g_get_monotonic_time ();
  int status = 0;
  pid_t pid = fork ();

  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      int fd = open (out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

      if (fd < 0 || dup2 (fd, STDOUT_FILENO) < 0)
        _exit (127);
      setenv ("GEMINI_KEYS_DATA_DIR", data_dir, 1);
      execvp (argv[0], argv);
      _exit (127);
    }
  g_assert_cmpint (wait4 (pid, &status, 0, &usage), ==, pid);
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    g_error ("%s failed (status %d)", argv[0], status);
  *max_rss_kib = usage.ru_maxrss;
  return (g_get_monotonic_time () - t0) / 1e6;
}

static gint64
file_size (const char *path)
{
  GStatBuf st;

  return g_stat (path, &st) == 0 ? (gint64) st.st_size : -1;
}

int
main (int argc, char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) context = g_option_context_new ("- export benchmark");
  int n_rows = 1000000;
  g_autofree char *ctl = NULL;
  g_autofree char *sqlite3_bin = NULL;
  const GOptionEntry entries[] = {
    { "rows", 0, 0, G_OPTION_ARG_INT, &n_rows, "Usage rows", "N" },
    { "ctl", 0, 0, G_OPTION_ARG_FILENAME, &ctl, "gemini-keysctl to run", "PATH" },
    { "sqlite3", 0, 0, G_OPTION_ARG_FILENAME, &sqlite3_bin, "sqlite3 shell to run", "PATH" },
    { NULL }
  };
  g_autoptr(GkClock) clock = gk_clock_new ();
  g_autoptr(GkDatabase) db = NULL;
  g_autoptr(GBytes) master = gk_test_master_key ();
  g_autoptr(GkKeyStore) store = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *db_path = NULL;
  g_autofree char *ctl_out = NULL;
  g_autofree char *sqlite_out = NULL;
  g_autofree char *ctl_stdout = NULL;
  gint64 first_key = 0;
  long rss_ctl = 0, rss_sqlite = 0;
  double t_ctl, t_sqlite;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  if (ctl == NULL)
    ctl = g_build_filename (BUILD_ROOT, "src", "cli", "gemini-keysctl", NULL);
  if (sqlite3_bin == NULL)
    sqlite3_bin = g_strdup ("sqlite3");

  dir = g_dir_make_tmp ("gk-bench-export-XXXXXX", &error);
  g_assert_no_error (error);
  db_path = g_build_filename (dir, "keys.db", NULL);
  db = gk_database_open (db_path, clock, &error);
  g_assert_no_error (error);
  store = gk_key_store_new (db, master);
  for (int i = 0; i < N_KEYS; i++)
    {
      g_autofree char *name = g_strdup_printf ("key, \"%02d\"", i);
      gint64 id = gk_test_add_key (store, name, 1 + i % 10);

      if (first_key == 0)
        first_key = id;
    }
  fill_usage (db, first_key, n_rows);
  gk_database_exec (db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL);
  g_clear_object (&store);
  g_clear_object (&db);
  printf ("setup: %d usage rows, database %.1f MB\n", n_rows, file_size (db_path) / 1e6);

  ctl_out = g_build_filename (dir, "export.csv", NULL);
  ctl_stdout = g_build_filename (dir, "ctl.stdout", NULL);
  sqlite_out = g_build_filename (dir, "sqlite3.csv", NULL);

  {
    char *sqlite_argv[] = { sqlite3_bin, "-csv", "-header", "-readonly", db_path,
                            (char *) sqlite_query, NULL };
    char *ctl_argv[] = { ctl, "export", "--csv", ctl_out, NULL };

    /* The first run warms the page cache for both. */
    t_sqlite = run_child (sqlite_argv, sqlite_out, dir, &rss_sqlite);
    t_sqlite = run_child (sqlite_argv, sqlite_out, dir, &rss_sqlite);
    t_ctl = run_child (ctl_argv, ctl_stdout, dir, &rss_ctl);
  }

  printf ("sqlite3 -csv:          %6.2f s  max RSS %6.1f MiB  %.1f MB written\n", t_sqlite,
          rss_sqlite / 1024.0, file_size (sqlite_out) / 1e6);
  printf ("gemini-keysctl export: %6.2f s  max RSS %6.1f MiB  %.1f MB written\n", t_ctl,
          rss_ctl / 1024.0, file_size (ctl_out) / 1e6);
  printf ("ratio: %.2f× (target ≤ 2×), RSS target ≤ 64 MiB\n", t_ctl / t_sqlite);

  if (g_getenv ("BENCH_KEEP") == NULL)
    gk_test_rm_rf (dir);
  else
    printf ("kept %s\n", dir);
  return 0;
}
