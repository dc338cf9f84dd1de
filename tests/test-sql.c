/* test-sql.c: the store interface (gk-sql.h) over a real SQLite file: which
 * driver a target selects, the calls the core makes, and the error classes.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <string.h>

#include "gk-database-private.h"
#include "gk-test-util.h"

/* Nothing listens on port 1 of the loopback address. */
#define UNREACHABLE_SERVER "postgresql://gk@127.0.0.1:1/none?connect_timeout=5"

static GkSql *
open_file (char **dir_out)
{
  g_autofree char *path = gk_test_db_path ();
  GkSqlErr err = GK_SQL_ERR_OTHER;
  g_autofree char *msg = NULL;
  GkSql *sql = gk_sql_open (path, &err, &msg);

  g_assert_nonnull (sql);
  g_assert_cmpint (err, ==, GK_SQL_OK);
  g_assert_null (msg);
  g_assert_true (gk_sql_get_dialect (sql) == GK_SQL_DIALECT_SQLITE);
  *dir_out = g_path_get_dirname (path);
  return sql;
}

static void
test_targets (void)
{
  static const char *const remote[] = {
    "postgresql://team@db.example/pool", "postgres://db.example/pool",
    "host=db.example dbname=pool", "dbname=pool",
  };
  static const char *const local[] = {
    "/home/me/.local/share/gemini-keys/keys.db", "keys.db", "postgresql.db",
    "./postgres://x", "",
  };

  for (guint i = 0; i < G_N_ELEMENTS (remote); i++)
    {
      g_assert_true (gk_sql_target_is_remote (remote[i]));
      g_assert_true (gk_sql_driver_for (remote[i]) == &gk_sql_postgresql_driver);
    }
  for (guint i = 0; i < G_N_ELEMENTS (local); i++)
    {
      g_assert_false (gk_sql_target_is_remote (local[i]));
      g_assert_true (gk_sql_driver_for (local[i]) == &gk_sql_sqlite_driver);
    }
}

static void
test_round_trip (void)
{
  g_autofree char *dir = NULL;
  GkSql *sql = open_file (&dir);
  static const guint8 blob[] = { 0x00, 0xff, 0x10, 0x00, 0x7f };
  g_autoptr(GkSqlStmt) insert = NULL;
  g_autoptr(GkSqlStmt) select = NULL;

  g_assert_true (gk_sql_exec (sql, "CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER,"
                                   " d REAL, s TEXT, b BLOB, n TEXT)"));
  insert = gk_sql_prepare (sql, "INSERT INTO t (i, d, s, b, n) VALUES (?1, ?2, ?3, ?4, ?5)"
                                " RETURNING id");
  g_assert_nonnull (insert);
  g_assert_cmpint (gk_sql_bind_parameter_count (insert), ==, 5);

  g_assert_false (gk_sql_in_transaction (sql));
  g_assert_true (gk_sql_exec (sql, "BEGIN"));
  g_assert_true (gk_sql_in_transaction (sql));
  for (int row = 1; row <= 2; row++)
    {
      gk_sql_bind_int64 (insert, 1, G_GINT64_CONSTANT (1) << 40);
      gk_sql_bind_double (insert, 2, 0.25);
      /* Only the first three bytes of the text. */
      gk_sql_bind_text (insert, 3, "abcdef", 3);
      gk_sql_bind_blob (insert, 4, blob, sizeof blob);
      gk_sql_bind_null (insert, 5);
      g_assert_cmpint (gk_sql_step (insert), ==, GK_SQL_ROW);
      g_assert_cmpint (gk_sql_column_int64 (insert, 0), ==, row);
      gk_sql_reset (insert);
      g_assert_cmpint (gk_sql_changes (sql), ==, 1);
    }
  /* Reset cleared the bindings: every value is NULL now. */
  g_assert_cmpint (gk_sql_step (insert), ==, GK_SQL_ROW);
  gk_sql_reset (insert);
  g_assert_true (gk_sql_exec (sql, "COMMIT"));
  g_assert_false (gk_sql_in_transaction (sql));

  select = gk_sql_prepare (sql, "SELECT i, d, s, b, n FROM t ORDER BY id");
  g_assert_nonnull (select);
  g_assert_cmpint (gk_sql_column_count (select), ==, 5);
  g_assert_cmpint (gk_sql_step (select), ==, GK_SQL_ROW);
  g_assert_cmpint (gk_sql_column_type (select, 0), ==, GK_SQL_INTEGER);
  g_assert_cmpint (gk_sql_column_int64 (select, 0), ==, G_GINT64_CONSTANT (1) << 40);
  g_assert_cmpint (gk_sql_column_type (select, 1), ==, GK_SQL_FLOAT);
  g_assert_cmpfloat (gk_sql_column_double (select, 1), ==, 0.25);
  g_assert_cmpint (gk_sql_column_type (select, 2), ==, GK_SQL_TEXT);
  g_assert_cmpstr (gk_sql_column_text (select, 2), ==, "abc");
  g_assert_cmpint (gk_sql_column_type (select, 3), ==, GK_SQL_BLOB);
  g_assert_cmpmem (gk_sql_column_blob (select, 3), gk_sql_column_bytes (select, 3), blob,
                   sizeof blob);
  g_assert_cmpint (gk_sql_column_type (select, 4), ==, GK_SQL_NULL);
  g_assert_null (gk_sql_column_text (select, 4));
  g_assert_cmpint (gk_sql_step (select), ==, GK_SQL_ROW);
  g_assert_cmpint (gk_sql_step (select), ==, GK_SQL_ROW);
  for (int col = 0; col < 5; col++)
    g_assert_cmpint (gk_sql_column_type (select, col), ==, GK_SQL_NULL);
  g_assert_cmpint (gk_sql_step (select), ==, GK_SQL_DONE);
  gk_sql_reset (select);

  g_clear_pointer (&insert, gk_sql_finalize);
  g_clear_pointer (&select, gk_sql_finalize);
  gk_sql_close (sql);
  gk_test_rm_rf (dir);
}

static void
test_errors (void)
{
  g_autofree char *dir = NULL;
  GkSql *sql = open_file (&dir);
  g_autoptr(GkSqlStmt) insert = NULL;

  g_assert_null (gk_sql_prepare (sql, "SELEKT 1"));
  g_assert_cmpint (gk_sql_errcode (sql), ==, GK_SQL_ERR_OTHER);
  g_assert_nonnull (strstr (gk_sql_errmsg (sql), "SELEKT"));

  g_assert_true (gk_sql_exec (sql, "CREATE TABLE u (name TEXT UNIQUE)"));
  insert = gk_sql_prepare (sql, "INSERT INTO u (name) VALUES (?1)");
  gk_sql_bind_text (insert, 1, "same", -1);
  g_assert_cmpint (gk_sql_step (insert), ==, GK_SQL_DONE);
  gk_sql_reset (insert);
  gk_sql_bind_text (insert, 1, "same", -1);
  g_assert_cmpint (gk_sql_step (insert), ==, GK_SQL_ERROR);
  g_assert_cmpint (gk_sql_errcode (sql), ==, GK_SQL_ERR_CONSTRAINT);
  /* Reset keeps the error for the caller to report. */
  gk_sql_reset (insert);
  g_assert_cmpint (gk_sql_errcode (sql), ==, GK_SQL_ERR_CONSTRAINT);
  g_assert_nonnull (strstr (gk_sql_errmsg (sql), "UNIQUE"));

  g_assert_false (gk_sql_exec (sql, "INSERT INTO missing VALUES (1)"));
  g_assert_cmpint (gk_sql_errcode (sql), ==, GK_SQL_ERR_OTHER);

  g_clear_pointer (&insert, gk_sql_finalize);
  gk_sql_close (sql);
  gk_test_rm_rf (dir);
}

/* A file that is not a database is CORRUPT at its first read, one that
 * cannot be created a CONNECTION error at once; so is a server that does
 * not answer, and GkDatabase reports both as OPEN. */
static void
test_open_errors (void)
{
  g_autofree char *path = gk_test_db_path ();
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *missing = g_build_filename (dir, "no", "such", "folder", "keys.db", NULL);
  g_autofree char *msg = NULL;
  g_autoptr(GError) error = NULL;
  GkSqlErr err = GK_SQL_OK;
  GkSql *sql;

  g_assert_null (gk_sql_open (missing, &err, &msg));
  g_assert_cmpint (err, ==, GK_SQL_ERR_CONNECTION);
  g_assert_nonnull (msg);
  g_clear_pointer (&msg, g_free);

  g_assert_true (g_file_set_contents (path, "not a database, just some text\n" "0123456789abcdef"
                                      "0123456789abcdef0123456789abcdef0123456789abcdef",
                                      -1, NULL));
  sql = gk_sql_open (path, &err, &msg);
  g_assert_nonnull (sql);
  g_assert_false (gk_sql_exec (sql, "PRAGMA journal_mode = WAL"));
  g_assert_cmpint (gk_sql_errcode (sql), ==, GK_SQL_ERR_CORRUPT);
  gk_sql_close (sql);

  g_assert_null (gk_sql_open (UNREACHABLE_SERVER, &err, &msg));
  g_assert_cmpint (err, ==, GK_SQL_ERR_CONNECTION);
  g_assert_nonnull (msg);
  g_assert_cmpstr (msg, !=, "");

  g_assert_null (gk_database_new (UNREACHABLE_SERVER, NULL, &error));
  g_assert_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_OPEN);
  /* Nothing was created under the URI's name. */
  g_assert_false (g_file_test ("postgresql:", G_FILE_TEST_EXISTS));

  gk_test_rm_rf (dir);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add_func ("/sql/targets", test_targets);
  g_test_add_func ("/sql/round-trip", test_round_trip);
  g_test_add_func ("/sql/errors", test_errors);
  g_test_add_func ("/sql/open-errors", test_open_errors);
  return g_test_run ();
}
