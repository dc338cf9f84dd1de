/* test-database.c: opening, migrations, settings, damaged files.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gk-database-private.h"
#include "gk-sql-sqlite.h"
#include "gk-test-util.h"

static const char *const seed_tables[] = {
  "meta", "settings", "gemini_api_keys", "gemini_key_quotas", "gemini_key_usage_log",
  "gemini_key_rotation_log", "gateway_tokens", "quota_reset_log", "usage_rollup_total",
  "usage_rollup_model", "usage_rollup_user", "usage_rollup_facet", "audit_log",
  "usage_rollup_latency", "usage_rollup_key", NULL,
};

static void
test_migrate_from_empty (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = gk_test_db_path ();
  g_auto(GStrv) created = NULL;
  g_auto(GStrv) again = NULL;
  g_autofree char *uuid = NULL;
  GStatBuf st;

  {
    g_autoptr(GkDatabase) db = gk_database_new (path, NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpint (gk_database_get_schema_version (db), ==, 0);
    gk_database_migrate (db, &created, &error);
    g_assert_no_error (error);
    g_assert_cmpstrv (created, seed_tables);
    g_assert_cmpint (gk_database_get_schema_version (db), ==, 12);
    uuid = g_strdup (gk_database_get_uuid (db));
    g_assert_true (g_uuid_string_is_valid (uuid));
    g_assert_true (gk_database_check_integrity (db, &error));
  }

  /* The file is private to the user. */
  if (!gk_test_on_postgresql ())
    {
      g_assert_cmpint (g_stat (path, &st), ==, 0);
      g_assert_cmpint (st.st_mode & 0777, ==, 0600);
    }

  /* Re-opening migrates nothing and keeps the identity. */
  {
    g_autoptr(GkDatabase) db = gk_database_new (path, NULL, &error);

    g_assert_no_error (error);
    gk_database_migrate (db, &again, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (g_strv_length (again), ==, 0);
    g_assert_cmpstr (gk_database_get_uuid (db), ==, uuid);
  }
  gk_test_remove_db (path);
}

static void
test_settings (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = gk_test_open_db (NULL);
  g_autoptr(GTimeZone) tz = NULL;
  g_autofree char *value = NULL;

  g_assert_null (gk_database_get_setting (db, "nothing"));
  g_assert_cmpfloat (gk_database_get_rotation_threshold (db), ==, 5.0);
  tz = gk_database_get_reset_timezone (db);
  g_assert_cmpstr (g_time_zone_get_identifier (tz), ==, "America/Los_Angeles");

  gk_database_set_setting (db, GK_SETTING_ROTATION_THRESHOLD, "12.5", &error);
  g_assert_no_error (error);
  g_assert_cmpfloat (gk_database_get_rotation_threshold (db), ==, 12.5);
  /* Nonsense falls back to the default rather than disabling rotation. */
  gk_database_set_setting (db, GK_SETTING_ROTATION_THRESHOLD, "lots", &error);
  g_assert_cmpfloat (gk_database_get_rotation_threshold (db), ==, 5.0);
  gk_database_set_setting (db, GK_SETTING_ROTATION_THRESHOLD, "250", &error);
  g_assert_cmpfloat (gk_database_get_rotation_threshold (db), ==, 5.0);

  gk_database_set_setting (db, GK_SETTING_GATEWAY_PORT, "9000", &error);
  g_assert_cmpint (gk_database_get_setting_int (db, GK_SETTING_GATEWAY_PORT, 1), ==, 9000);
  value = gk_database_get_setting (db, GK_SETTING_GATEWAY_PORT);
  g_assert_cmpstr (value, ==, "9000");
}

static void
test_not_a_database (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = gk_test_db_path ();
  g_autofree char *dir = g_path_get_dirname (path);
  g_autoptr(GkDatabase) db = NULL;
  g_autofree char *after = NULL;
  const char *garbage = "this is not an SQLite database, but it is someone's file\n";

  if (gk_test_skip_on_postgresql ("a file that is not a database"))
    return;
  g_assert_true (g_file_set_contents (path, garbage, -1, NULL));
  db = gk_database_open (path, NULL, &error);
  g_assert_null (db);
  g_assert_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "backup"));

  /* Nothing was overwritten. */
  g_assert_true (g_file_get_contents (path, &after, NULL, NULL));
  g_assert_cmpstr (after, ==, garbage);
  gk_test_rm_rf (dir);
}

static void
test_too_new (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = gk_test_db_path ();
  g_autofree char *dir = g_path_get_dirname (path);

  /* tests/pg covers the version row of a server. */
  if (gk_test_skip_on_postgresql ("PRAGMA user_version"))
    return;
  {
    g_autoptr(GkDatabase) db = gk_database_open (path, NULL, &error);
    g_assert_no_error (error);
    gk_database_exec (db, "PRAGMA user_version = 99", &error);
    g_assert_no_error (error);
  }
  {
    g_autoptr(GkDatabase) db = gk_database_open (path, NULL, &error);
    g_assert_null (db);
    g_assert_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_TOO_NEW);
  }
  gk_test_rm_rf (dir);
}

static void
test_read_only (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = gk_test_db_path ();
  g_autofree char *dir = g_path_get_dirname (path);

  if (gk_test_skip_on_postgresql ("file modes"))
    return;
  if (geteuid () == 0)
    {
      /* root writes through file modes; the fault tests cover this with a
       * read-only mount instead. */
      g_test_skip ("file modes do not stop root");
      gk_test_rm_rf (dir);
      return;
    }
  {
    g_autoptr(GkDatabase) db = gk_database_open (path, NULL, &error);
    g_assert_no_error (error);
  }
  g_chmod (path, 0400);
  {
    g_autoptr(GkDatabase) db = gk_database_open (path, NULL, &error);
    g_autoptr(GError) write_error = NULL;

    if (db != NULL)
      {
        gk_database_set_setting (db, "k", "v", &write_error);
        g_assert_error (write_error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_READ_ONLY);
      }
    else
      g_assert_nonnull (error);
  }
  gk_test_rm_rf (dir);
}

static void
test_data_version (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = gk_test_open_db (NULL);
  g_autoptr(GkDatabase) other = gk_database_open (gk_database_get_path (db), NULL, &error);
  gint64 before, after;

  /* tests/pg/test-pg-pool.c watches a server's change notices. */
  if (gk_test_skip_on_postgresql ("a server's data_version moves through its watch source"))
    return;
  g_assert_no_error (error);
  before = gk_database_get_data_version (db);
  gk_database_set_setting (other, "k", "v", &error);
  g_assert_no_error (error);
  after = gk_database_get_data_version (db);
  g_assert_cmpint (before, !=, after);
}

/* How many times @db's connection has run PRAGMA data_version. */
static int
data_version_runs (GkDatabase *db)
{
  sqlite3 *handle = gk_sql_sqlite_get_handle (gk_database_get_handle (db));
  int runs = 0;

  for (sqlite3_stmt *stmt = sqlite3_next_stmt (handle, NULL); stmt != NULL;
       stmt = sqlite3_next_stmt (handle, stmt))
    if (g_str_equal (sqlite3_sql (stmt), "PRAGMA data_version"))
      runs += sqlite3_stmt_status (stmt, SQLITE_STMTSTATUS_RUN, 0);
  return runs;
}

/* data_version is read again (a read transaction) only when another
 * connection may have committed: this connection's own commits leave it
 * as it was, and so does nothing at all; any other commit moves it, one
 * made just before an own commit too. */
static void
test_data_version_read_when_needed (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = gk_test_open_db (NULL);
  g_autoptr(GkDatabase) other = gk_database_open (gk_database_get_path (db), NULL, &error);
  gint64 version;
  int runs;

  if (gk_test_skip_on_postgresql ("SQLite's data_version"))
    return;
  g_assert_no_error (error);
  version = gk_database_get_data_version (db);
  runs = data_version_runs (db);

  for (guint i = 0; i < 3; i++)
    {
      g_assert_cmpint (gk_database_get_data_version (db), ==, version);
      gk_database_set_setting (db, "own", i % 2 ? "a" : "b", &error);
      g_assert_no_error (error);
      g_assert_cmpint (gk_database_get_data_version (db), ==, version);
    }
  g_assert_cmpint (data_version_runs (db), ==, runs);

  gk_database_set_setting (other, "other", "1", &error);
  g_assert_no_error (error);
  g_assert_cmpint (gk_database_get_data_version (db), !=, version);
  version = gk_database_get_data_version (db);
  g_assert_cmpint (data_version_runs (db), ==, runs + 1);

  /* Another connection's commit, then one of this connection's own,
   * before the next check. */
  gk_database_set_setting (other, "other", "2", &error);
  g_assert_no_error (error);
  gk_database_set_setting (db, "own", "c", &error);
  g_assert_no_error (error);
  g_assert_cmpint (gk_database_get_data_version (db), !=, version);
  version = gk_database_get_data_version (db);
  gk_database_set_setting (db, "own", "d", &error);
  g_assert_no_error (error);
  g_assert_cmpint (gk_database_get_data_version (db), ==, version);
}

/* Opening a second connection in the process keeps the first one's SQLite
 * locks: opening and closing the file outside SQLite would drop them (a
 * close() drops every POSIX lock of the process on the file), and another
 * process could then rewrite the WAL under the first connection. */
static void
test_second_connection_keeps_locks (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = gk_test_open_db (NULL);
  const char *path = gk_database_get_path (db);
  g_autofree char *shm = g_strconcat (path, "-shm", NULL);
  guint db_locks, shm_locks;

  if (gk_test_skip_on_postgresql ("the file locks of SQLite"))
    return;
  /* A read maps the WAL index and takes the locks a connection keeps. */
  g_assert_cmpint (gk_database_get_data_version (db), >=, 0);
  db_locks = gk_test_count_locks (getpid (), path);
  shm_locks = gk_test_count_locks (getpid (), shm);
  g_assert_cmpuint (db_locks, >, 0);
  g_assert_cmpuint (shm_locks, >, 0);

  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(GkDatabase) other = gk_database_new (path, NULL, &error);

      g_assert_no_error (error);
      g_assert_cmpuint (gk_test_count_locks (getpid (), path), >=, db_locks);
      g_assert_cmpuint (gk_test_count_locks (getpid (), shm), >=, shm_locks);
    }
  /* And once the others are closed, the first still holds its own. */
  g_assert_cmpuint (gk_test_count_locks (getpid (), path), >=, db_locks);
  g_assert_cmpuint (gk_test_count_locks (getpid (), shm), >=, shm_locks);
}

/* Transactions nest as savepoints: an inner failure is undone alone, the
 * outer commit makes the rest durable at once. */
static void
test_nested_transactions (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = gk_test_open_db (NULL);
  g_autoptr(GkDatabase) other = gk_database_open (gk_database_get_path (db), NULL, &error);
  g_autofree char *kept = NULL;
  g_autofree char *undone = NULL;
  g_autofree char *seen_early = NULL;

  g_assert_no_error (error);
  g_assert_true (gk_database_begin (db, &error));
  gk_database_set_setting (db, "kept", "1", &error);

  g_assert_true (gk_database_begin (db, &error));
  gk_database_set_setting (db, "undone", "1", &error);
  gk_database_rollback (db);

  g_assert_true (gk_database_begin (db, &error));
  gk_database_set_setting (db, "inner", "1", &error);
  g_assert_true (gk_database_commit (db, &error));

  /* Nothing is visible elsewhere before the outer commit. */
  seen_early = gk_database_get_setting (other, "kept");
  g_assert_null (seen_early);
  g_assert_true (gk_database_commit (db, &error));
  g_assert_no_error (error);

  kept = gk_database_get_setting (other, "kept");
  undone = gk_database_get_setting (other, "undone");
  g_assert_cmpstr (kept, ==, "1");
  g_assert_null (undone);
  {
    g_autofree char *inner = gk_database_get_setting (other, "inner");
    g_assert_cmpstr (inner, ==, "1");
  }
}

/* How many temporary b-trees inserting a usage row opens, as @db plans
 * it with the schema it last read (EXPLAIN, prepared afresh: a statement
 * kept from before would show the schema it was prepared on). */
static int
usage_insert_ephemerals (GkDatabase *db)
{
  GkSqlStmt *stmt;
  int n = 0;

  gk_database_lock (db);
  stmt = gk_sql_prepare (gk_database_get_handle (db),
                         "EXPLAIN INSERT INTO gemini_key_usage_log (status, created_at)"
                         " VALUES ('SUCCESS', 1)");
  g_assert_nonnull (stmt);
  while (gk_sql_step (stmt) == GK_SQL_ROW)
    n += g_strcmp0 (gk_sql_column_text (stmt, 1), "OpenEphemeral") == 0;
  gk_sql_finalize (stmt);
  gk_database_unlock (db);
  return n;
}

static void
assert_status_refused (GkDatabase *db,
                       const char *status)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *sql = g_strdup_printf ("INSERT INTO gemini_key_usage_log (status, created_at)"
                                          " VALUES ('%s', 1)", status);

  g_assert_false (gk_database_exec (db, sql, &error));
  g_assert_nonnull (error);
}

/* Takes @db back to version 11's text of the usage log (migration 1's). */
static void
back_to_version_11 (GkDatabase *db)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (gk_database_exec (db,
                                   "PRAGMA writable_schema = ON;"
                                   " UPDATE sqlite_schema SET sql = replace (sql,"
                                   " 'status = ''SUCCESS'' OR status = ''RATE_LIMITED'' OR"
                                   " status = ''INVALID_KEY'' OR status = ''ERROR''',"
                                   " 'status IN   (''SUCCESS'',''RATE_LIMITED'',''INVALID_KEY'',"
                                   "''ERROR'')') WHERE name = 'gemini_key_usage_log';"
                                   " PRAGMA writable_schema = RESET;"
                                   " PRAGMA user_version = 11",
                                   &error));
  g_assert_no_error (error);
  g_assert_cmpint (usage_insert_ephemerals (db), ==, 1);
}

/* Version 12 spells the usage log's CHECK on status with ORs: inserting a
 * row builds no temporary b-tree of the allowed values, in a file migrated
 * from version 11 with rows in it as in a new one, and in a connection
 * that was open before the migration; the same statuses are refused. */
static void
test_usage_status_check (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = NULL;
  g_autoptr(GkDatabase) open_before = NULL;
  g_autoptr(GkDatabase) upgraded = NULL;
  g_autoptr(GkPool) pool = NULL;
  g_autofree char *path = NULL;

  if (gk_test_skip_on_postgresql ("an SQLite file's schema"))
    return;
  db = gk_test_open_db (NULL);
  path = g_strdup (gk_database_get_path (db));
  g_assert_cmpint (usage_insert_ephemerals (db), ==, 0);

  back_to_version_11 (db);
  pool = gk_pool_new (db, NULL);
  gk_test_track (pool, 0, GK_USAGE_SUCCESS, 10);
  gk_test_track (pool, 0, GK_USAGE_ERROR, 0);
  g_clear_object (&pool);
  g_clear_object (&db);

  open_before = gk_database_new (path, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (usage_insert_ephemerals (open_before), ==, 1);

  upgraded = gk_database_new (path, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (gk_database_migrate (upgraded, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (gk_database_get_schema_version (upgraded), ==, 12);
  g_assert_true (gk_database_check_integrity (upgraded, &error));
  g_assert_cmpint (usage_insert_ephemerals (upgraded), ==, 0);
  /* Its next statement finds the schema moved and reads it again. */
  g_assert_cmpint (gk_stats_usage_count (open_before, 0, &error), ==, 2);
  g_assert_no_error (error);
  g_assert_cmpint (usage_insert_ephemerals (open_before), ==, 0);

  /* The rows are kept; every status is still taken, and nothing else. */
  pool = gk_pool_new (upgraded, NULL);
  gk_test_track (pool, 0, GK_USAGE_RATE_LIMITED, 0);
  gk_test_track (pool, 0, GK_USAGE_INVALID_KEY, 0);
  g_clear_object (&pool);
  g_assert_cmpint (gk_stats_usage_count (upgraded, 0, &error), ==, 4);
  g_assert_no_error (error);
  assert_status_refused (open_before, "success");
  assert_status_refused (upgraded, "BOGUS");
  g_assert_cmpint (gk_stats_usage_count (upgraded, 0, &error), ==, 4);
  g_assert_no_error (error);

  g_clear_object (&open_before);
  g_clear_object (&upgraded);
  gk_test_remove_db (path);
}

/* SQLite's defensive mode on the connection that migrates (some builds
 * turn it on for every connection, SQLITE_DEFAULT_DEFENSIVE) refuses
 * version 12's edit of sqlite_schema: the migration turns it off while it
 * runs, then back on. */
static void
test_migrate_defensive (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = NULL;
  g_autoptr(GkDatabase) upgraded = NULL;
  g_autofree char *path = NULL;
  sqlite3 *handle;
  int on = 0;

  if (gk_test_skip_on_postgresql ("SQLite's defensive mode"))
    return;
  db = gk_test_open_db (NULL);
  path = g_strdup (gk_database_get_path (db));
  back_to_version_11 (db);
  g_clear_object (&db);

  upgraded = gk_database_new (path, NULL, &error);
  g_assert_no_error (error);
  handle = gk_sql_sqlite_get_handle (gk_database_get_handle (upgraded));
  g_assert_cmpint (sqlite3_db_config (handle, SQLITE_DBCONFIG_DEFENSIVE, 1, &on), ==, SQLITE_OK);
  g_assert_cmpint (on, ==, 1);

  g_assert_true (gk_database_migrate (upgraded, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (gk_database_get_schema_version (upgraded), ==, 12);
  g_assert_cmpint (usage_insert_ephemerals (upgraded), ==, 0);
  g_assert_true (gk_database_check_integrity (upgraded, &error));
  g_assert_no_error (error);
  on = -1;
  g_assert_cmpint (sqlite3_db_config (handle, SQLITE_DBCONFIG_DEFENSIVE, -1, &on), ==, SQLITE_OK);
  g_assert_cmpint (on, ==, 1);

  g_clear_object (&upgraded);
  gk_test_remove_db (path);
}

/* Write system calls this process has made so far, all threads. */
static guint64
process_write_calls (void)
{
  g_autofree char *io = NULL;
  const char *line;

  g_assert_true (g_file_get_contents ("/proc/self/io", &io, NULL, NULL));
  line = strstr (io, "syscw: ");
  g_assert_nonnull (line);
  return g_ascii_strtoull (line + strlen ("syscw: "), NULL, 10);
}

/* A commit goes to the write-ahead log in one write (gk-sql-sqlite-vfs.c),
 * not two for each page it changed (a recorded request changes four), and
 * another connection reads every row at once. */
static void
test_wal_writes_joined (GkTestFixture *f,
                        gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) other = NULL;
  gint64 key;
  guint64 before, writes;

  if (gk_test_skip_on_postgresql ("an SQLite file's write-ahead log"))
    return;
  key = gk_test_add_key (f->store, "one", 5);
  gk_test_track (f->pool, key, GK_USAGE_SUCCESS, 10);

  before = process_write_calls ();
  for (int i = 0; i < 50; i++)
    gk_test_track (f->pool, key, GK_USAGE_SUCCESS, 10);
  writes = process_write_calls () - before;
  g_test_message ("%" G_GUINT64_FORMAT " writes for 50 commits", writes);
  /* One each (ten before: two for each of five pages), with room for
   * writes by another thread of the test program, or by valgrind for its
   * own bookkeeping when it runs the test. */
  g_assert_cmpuint (writes, <=, 3 * 50);

  other = gk_database_open (gk_database_get_path (f->db), NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (gk_stats_usage_count (other, key, &error), ==, 51);
  g_assert_no_error (error);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add_func ("/database/migrate-from-empty", test_migrate_from_empty);
  g_test_add_func ("/database/settings", test_settings);
  g_test_add_func ("/database/not-a-database", test_not_a_database);
  g_test_add_func ("/database/too-new", test_too_new);
  g_test_add_func ("/database/read-only", test_read_only);
  g_test_add_func ("/database/data-version", test_data_version);
  g_test_add_func ("/database/data-version-read-when-needed", test_data_version_read_when_needed);
  g_test_add_func ("/database/nested-transactions", test_nested_transactions);
  g_test_add_func ("/database/second-connection-keeps-locks",
                   test_second_connection_keeps_locks);
  g_test_add_func ("/database/usage-status-check", test_usage_status_check);
  g_test_add_func ("/database/migrate-defensive", test_migrate_defensive);
  GK_TEST_ADD ("/database/wal-writes-joined", test_wal_writes_joined);

  return g_test_run ();
}
