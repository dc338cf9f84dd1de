/* test-crash-durability.c: usage rows acknowledged by gk_pool_track() survive
 * a SIGKILL at any moment, and the database stays consistent.
 *
 * A helper process writes rows and reports each id only after
 * gk_pool_track() returned; this test kills it at random moments (some
 * right after start, most in the middle of a stream of writes), then
 * reopens the database and checks it.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hardening-util.h"

#define N_KILLS        200
#define N_MIGRATE_KILLS 40
/* Under valgrind (tests/valgrind/run.sh) this process runs ~20× slower;
 * fewer kills keep it within its time while still checking its memory. */
#define SLOW_ENV       "GK_TEST_SLOW"
#define n_kills()      (g_getenv (SLOW_ENV) ? N_KILLS / 10 : N_KILLS)
/* A stop well inside the test's meson timeout (300 s): under
 * AddressSanitizer on a busy machine the 200 kills take over a minute. */
#define TIME_BUDGET_US (200 * G_USEC_PER_SEC)

typedef struct
{
  GPid     pid;
  int      out_fd;
  GString *pending;   /* bytes after the last complete line */
} Child;

static void
child_spawn (Child       *child,
             const char **argv,
             const char  *dir)
{
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) envp = g_get_environ ();

  /* The writer's own price list lookup stays inside the test's folder. */
  envp = g_environ_setenv (envp, "XDG_CONFIG_HOME", dir, TRUE);
  g_spawn_async_with_pipes (NULL, (char **) argv, envp, G_SPAWN_DO_NOT_REAP_CHILD,
                            NULL, NULL, &child->pid, NULL, &child->out_fd, NULL, &error);
  g_assert_no_error (error);
  child->pending = g_string_new (NULL);
}

/* Reads what the child wrote until @deadline (monotonic µs; -1: until EOF);
 * complete lines go through @on_line. Returns FALSE on EOF. */
static gboolean
child_read (Child    *child,
            gint64    deadline,
            void    (*on_line) (const char *line, gpointer data),
            gpointer  data)
{
  for (;;)
    {
      struct pollfd pfd = { child->out_fd, POLLIN, 0 };
      int timeout_ms = -1;
      char buf[4096];
      gssize n;
      char *nl;

      if (deadline >= 0)
        {
          gint64 left = deadline - g_get_monotonic_time ();

          if (left <= 0)
            return TRUE;
          timeout_ms = (int) MAX (1, left / 1000);
        }
      if (poll (&pfd, 1, timeout_ms) < 0)
        {
          g_assert_cmpint (errno, ==, EINTR);
          continue;
        }
      if (pfd.revents == 0)
        continue;
      n = read (child->out_fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      g_assert_cmpint (n, >=, 0);
      if (n == 0)
        return FALSE;
      g_string_append_len (child->pending, buf, n);
      while ((nl = strchr (child->pending->str, '\n')) != NULL)
        {
          *nl = '\0';
          on_line (child->pending->str, data);
          g_string_erase (child->pending, 0, nl - child->pending->str + 1);
        }
    }
}

/* Kills the child, drains its output and asserts it died of the kill (or,
 * with @may_finish, finished its work successfully first), not of an error
 * of its own. */
static void
child_kill (Child    *child,
            gboolean  may_finish,
            void    (*on_line) (const char *line, gpointer data),
            gpointer  data)
{
  int status = 0;

  g_assert_cmpint (kill (child->pid, SIGKILL), ==, 0);
  while (child_read (child, -1, on_line, data))
    ;
  g_assert_cmpint (waitpid (child->pid, &status, 0), ==, child->pid);
  if (may_finish && WIFEXITED (status) && WEXITSTATUS (status) == 0)
    ;
  else if (!WIFSIGNALED (status))
    g_error ("the writer exited by itself (status %d) instead of being killed", status);
  else
    g_assert_cmpint (WTERMSIG (status), ==, SIGKILL);
  /* A line is written with one write(2): no half line may be left. */
  g_assert_cmpuint (child->pending->len, ==, 0);
  close (child->out_fd);
  g_string_free (child->pending, TRUE);
  g_spawn_close_pid (child->pid);
}

static void
collect_id_cb (const char *line,
               gpointer    data)
{
  GArray *ids = data;
  gint64 id = 0;
  g_autoptr(GError) error = NULL;

  g_ascii_string_to_signed (line, 10, 1, G_MAXINT64, &id, &error);
  g_assert_no_error (error);
  g_array_append_val (ids, id);
}

typedef struct
{
  gboolean started;
  guint    completed;
} MigrateProgress;

static void
migrate_line_cb (const char *line,
                 gpointer    data)
{
  MigrateProgress *progress = data;

  if (g_str_equal (line, "start"))
    progress->started = TRUE;
  else if (g_str_equal (line, "done"))
    progress->completed++;
  else
    g_error ("unexpected line from the writer: %s", line);
}

static void
check_database (const char *path,
                gint64      key_id,
                GArray     *ids,
                guint       first_unchecked)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkClock) clock = gk_clock_new_fixed (GK_TEST_EPOCH);
  g_autoptr(GkDatabase) db = gk_database_open (path, clock, &error);
  g_autofree char *tokens_sql = NULL;
  g_autofree char *requests_sql = NULL;

  g_assert_no_error (error);
  g_assert_true (gk_database_check_integrity (db, &error));
  g_assert_no_error (error);

  for (guint i = first_unchecked; i < ids->len; i++)
    if (!hardening_usage_exists (db, g_array_index (ids, gint64, i)))
      g_error ("usage row %" G_GINT64_FORMAT " was acknowledged but is gone",
               g_array_index (ids, gint64, i));

  /* The row and the quota charge are one transaction: a kill must not
   * leave one without the other. */
  tokens_sql = g_strdup_printf ("SELECT (SELECT used_value FROM gemini_key_quotas"
                                " WHERE key_id = %1$" G_GINT64_FORMAT
                                " AND quota_type = 'MONTHLY' AND unit = 'TOKENS')"
                                " - (SELECT COALESCE (SUM (tokens_used), 0)"
                                " FROM gemini_key_usage_log WHERE key_id = %1$" G_GINT64_FORMAT ")",
                                key_id);
  g_assert_cmpint (hardening_query_int (db, tokens_sql), ==, 0);
  requests_sql = g_strdup_printf ("SELECT (SELECT used_value FROM gemini_key_quotas"
                                  " WHERE key_id = %1$" G_GINT64_FORMAT
                                  " AND quota_type = 'DAILY' AND unit = 'REQUESTS')"
                                  " - (SELECT COUNT (*) FROM gemini_key_usage_log"
                                  " WHERE key_id = %1$" G_GINT64_FORMAT ")",
                                  key_id);
  g_assert_cmpint (hardening_query_int (db, requests_sql), ==, 0);
  g_assert_cmpint (hardening_query_int (db, "SELECT COUNT (*) FROM gemini_key_usage_log"),
                   >=, ids->len);
}

static void
test_kill_while_tracking (void)
{
  g_autofree char *writer = hardening_sibling_path ("gk-crash-writer");
  g_autoptr(GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  gint64 key_id = 0;
  g_autofree char *path = hardening_make_db (1, &key_id);
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *key_arg = g_strdup_printf ("%" G_GINT64_FORMAT, key_id);
  const char *argv[] = { writer, "track", path, key_arg, NULL };
  gint64 start = g_get_monotonic_time ();
  guint kills = 0, mid_stream = 0;

  for (; kills < n_kills (); kills++)
    {
      Child child = { 0 };
      guint before = ids->len;

      child_spawn (&child, argv, dir);
      if (g_test_rand_int_range (0, 5) == 0)
        {
          /* Anywhere from start-up to the first writes. */
          child_read (&child, g_get_monotonic_time () + g_test_rand_int_range (0, 20000),
                      collect_id_cb, ids);
        }
      else
        {
          /* In the middle of a stream of writes. */
          while (ids->len == before)
            g_assert_true (child_read (&child, g_get_monotonic_time () + 1000,
                                       collect_id_cb, ids));
          child_read (&child, g_get_monotonic_time () + g_test_rand_int_range (0, 15000),
                      collect_id_cb, ids);
          mid_stream++;
        }
      child_kill (&child, FALSE, collect_id_cb, ids);
      check_database (path, key_id, ids, before);

      if (g_get_monotonic_time () - start > TIME_BUDGET_US)
        break;
    }

  g_test_message ("%u kills (%u mid-stream), %u acknowledged rows", kills, mid_stream, ids->len);
  g_assert_cmpuint (kills, >=, n_kills ());
  g_assert_cmpuint (ids->len, >, 0);
  /* Every id ever acknowledged, once more at the end. */
  check_database (path, key_id, ids, 0);
  gk_test_rm_rf (dir);
}

static void
test_kill_while_migrating (void)
{
  g_autofree char *writer = hardening_sibling_path ("gk-crash-writer");
  MigrateProgress progress = { 0 };
  int version = 0;
  g_auto(GStrv) tables = hardening_fresh_schema (&version);
  guint n_migrate_kills = g_getenv (SLOW_ENV) ? N_MIGRATE_KILLS / 4 : N_MIGRATE_KILLS;

  for (guint i = 0; i < n_migrate_kills; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *path = gk_test_db_path ();
      g_autofree char *dir = g_path_get_dirname (path);
      const char *argv[] = { writer, "migrate", path, NULL };
      g_auto(GStrv) created = NULL;
      Child child = { 0 };

      child_spawn (&child, argv, dir);
      progress.started = FALSE;
      /* On a busy machine the whole migration may end (and close the
       * pipe) before this reads its "start". */
      while (!progress.started)
        g_assert_true (child_read (&child, g_get_monotonic_time () + 1000,
                                   migrate_line_cb, &progress)
                       || progress.started);
      /* A migration with its fsyncs takes some 10–40 ms here. */
      child_read (&child, g_get_monotonic_time () + g_test_rand_int_range (0, 40000),
                  migrate_line_cb, &progress);
      child_kill (&child, TRUE, migrate_line_cb, &progress);

      /* Whatever the kill left, the next start migrates to the full schema
       * or finds it complete; never a half-made one. */
      {
        g_autoptr(GkDatabase) db = gk_database_new (path, NULL, &error);

        g_assert_no_error (error);
        g_assert_true (gk_database_migrate (db, &created, &error));
        g_assert_no_error (error);
        g_assert_true (gk_database_check_integrity (db, &error));
        g_assert_no_error (error);
        g_assert_cmpint (gk_database_get_schema_version (db), ==, version);
        g_assert_nonnull (gk_database_get_uuid (db));
        g_assert_true (hardening_has_tables (db, tables));
        /* Either all tables were made now or none (the kill came after the
         * commit). */
        g_assert_true (g_strv_length (created) == 0
                       || g_strv_length (created) == g_strv_length (tables));
      }
      gk_test_rm_rf (dir);
    }
  g_test_message ("%u of %u migrations finished before the kill", progress.completed,
                  n_migrate_kills);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  g_test_add_func ("/hardening/crash/kill-while-tracking", test_kill_while_tracking);
  g_test_add_func ("/hardening/crash/kill-while-migrating", test_kill_while_migrating);
  return g_test_run ();
}
