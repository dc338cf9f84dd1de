/* test-pg-driver.c: the PostgreSQL driver of the store interface against a
 * real server (tests/pg/pg-cluster.sh starts one and sets GK_TEST_PG_URI).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <math.h>
#include <string.h>

#include "gk-sql-postgresql.h"
#include "pg-test-util.h"

/* g_autoptr over the driver's own finalize. */
typedef GkSqlStmt Stmt;

static void
stmt_finalize (Stmt *stmt)
{
  pg->finalize (stmt);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stmt, stmt_finalize)

typedef struct
{
  GkSql *sql;
  char  *password;
} Fixture;

static const char *
test_uri (void)
{
  return g_getenv ("GK_TEST_PG_URI");
}

static char *
uri_password (const char *uri)
{
  char *password = NULL;

  g_assert_true (g_uri_split_with_user (uri, G_URI_FLAGS_HAS_PASSWORD, NULL, NULL, &password, NULL,
                                        NULL, NULL, NULL, NULL, NULL, NULL));
  g_assert_nonnull (password);
  g_assert_cmpuint (strlen (password), >=, 16);
  return password;
}

static void
assert_no_secret (const char *text,
                  const char *password)
{
  g_assert_nonnull (text);
  if (strstr (text, password) != NULL)
    g_error ("the password shows in “%s”", text);
}

/* Each test works in a schema of its own, so none sees another's tables. */
static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  static guint serial;
  g_autofree char *sql = NULL;

  if (test_uri () == NULL)
    {
      g_test_skip ("GK_TEST_PG_URI is not set: run through tests/pg/pg-cluster.sh");
      return;
    }
  f->password = uri_password (test_uri ());
  f->sql = pg_test_open (test_uri ());
  sql = g_strdup_printf ("DROP SCHEMA IF EXISTS t%u CASCADE; CREATE SCHEMA t%u;"
                         " SET search_path = t%u", serial, serial, serial);
  serial++;
  g_assert_true (pg->exec (f->sql, sql));
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  if (f->sql != NULL)
    {
      assert_no_secret (pg->errmsg (f->sql), f->password);
      pg->close (f->sql);
    }
  g_free (f->password);
}

/* Writes @blob and reads it back. */
static void
assert_blob_round_trip (Fixture *f,
                        GBytes  *blob)
{
  GkSqlStmt *insert = pg_test_prepare (f->sql, "INSERT INTO b (id, data) VALUES (?, ?)");
  GkSqlStmt *select = pg_test_prepare (f->sql, "SELECT data FROM b WHERE id = ?");
  static gint64 id;
  gsize len;
  gconstpointer data = g_bytes_get_data (blob, &len);

  id++;
  pg->bind_int64 (insert, 1, id);
  pg->bind_blob (insert, 2, data, len);
  g_assert_cmpint (pg->step (insert), ==, GK_SQL_DONE);
  g_assert_cmpint (pg->changes (f->sql), ==, 1);

  pg->bind_int64 (select, 1, id);
  g_assert_cmpint (pg->step (select), ==, GK_SQL_ROW);
  g_assert_cmpint (pg->column_type (select, 0), ==, GK_SQL_BLOB);
  g_assert_cmpuint (pg->column_bytes (select, 0), ==, len);
  if (len > 0)
    g_assert_cmpmem (pg->column_blob (select, 0), len, data, len);
  else
    g_assert_null (pg->column_blob (select, 0));
  g_assert_cmpint (pg->step (select), ==, GK_SQL_DONE);

  pg->finalize (insert);
  pg->finalize (select);
}

static void
test_blobs (Fixture       *f,
            gconstpointer  data)
{
  static const guint8 not_utf8[] = { 0x00, 0xff, 0xfe, 0xc3, 0x28, 0x00, 0x80, 0x5c, 0x78 };
  g_autoptr(GBytes) empty = g_bytes_new_static ("", 0);
  g_autoptr(GBytes) odd = g_bytes_new_static (not_utf8, sizeof not_utf8);
  g_autoptr(GBytes) large = NULL;
  guint8 *big = g_malloc (4 * 1024 * 1024 + 3);

  if (f->sql == NULL)
    return;
  for (gsize i = 0; i < 4 * 1024 * 1024 + 3; i++)
    big[i] = (guint8) g_test_rand_int ();
  large = g_bytes_new_take (big, 4 * 1024 * 1024 + 3);

  pg_test_exec (f->sql, "CREATE TABLE b (id BIGINT PRIMARY KEY, data BYTEA)");
  assert_blob_round_trip (f, odd);
  assert_blob_round_trip (f, empty);
  assert_blob_round_trip (f, large);
}

static void
test_values (Fixture       *f,
             gconstpointer  data)
{
  static const gint64 integers[] = { G_MININT64, -1, 0, 1, G_MAXINT32 + G_GINT64_CONSTANT (1),
                                     G_MAXINT64 };
  static const double doubles[] = { 0.0, 0.1, -2.5e-300, 1.0 / 3.0, 1e308, 123456789.125 };
  static const char *const texts[] = { "", "plain", "Quản lý Gemini Keys", "it's \"quoted\" \\x00",
                                       "line\nbreak\ttab" };
  g_autoptr(Stmt) insert = NULL;
  g_autoptr(Stmt) select = NULL;
  guint n = MAX (G_N_ELEMENTS (integers), MAX (G_N_ELEMENTS (doubles), G_N_ELEMENTS (texts)));
  guint row = 0;

  if (f->sql == NULL)
    return;
  pg_test_exec (f->sql, "CREATE TABLE v (id BIGINT, i BIGINT, d DOUBLE PRECISION, t TEXT)");
  insert = pg_test_prepare (f->sql, "INSERT INTO v (id, i, d, t) VALUES (?, ?, ?, ?)");
  g_assert_cmpint (pg->bind_parameter_count (insert), ==, 4);

  for (guint i = 0; i < n; i++)
    {
      pg->reset (insert);
      pg->bind_int64 (insert, 1, i);
      pg->bind_int64 (insert, 2, integers[i % G_N_ELEMENTS (integers)]);
      pg->bind_double (insert, 3, doubles[i % G_N_ELEMENTS (doubles)]);
      pg->bind_text (insert, 4, texts[i % G_N_ELEMENTS (texts)], -1);
      g_assert_cmpint (pg->step (insert), ==, GK_SQL_DONE);
    }
  /* A row of NULLs, and a text bound with a length (not NUL-terminated). */
  pg->reset (insert);
  pg->bind_int64 (insert, 1, n);
  pg->bind_null (insert, 2);
  pg->bind_null (insert, 3);
  pg->bind_text (insert, 4, "cut here", 3);
  g_assert_cmpint (pg->step (insert), ==, GK_SQL_DONE);
  pg->reset (insert);
  pg->bind_int64 (insert, 1, n + 1);
  g_assert_cmpint (pg->step (insert), ==, GK_SQL_DONE);   /* reset cleared every binding */

  select = pg_test_prepare (f->sql, "SELECT id, i, d, t FROM v ORDER BY id");
  g_assert_cmpint (pg->column_count (select), ==, 4);
  for (; pg->step (select) == GK_SQL_ROW; row++)
    {
      if (row < n)
        {
          g_assert_cmpint (pg->column_type (select, 1), ==, GK_SQL_INTEGER);
          g_assert_cmpint (pg->column_int64 (select, 1), ==,
                           integers[row % G_N_ELEMENTS (integers)]);
          g_assert_cmpint (pg->column_type (select, 2), ==, GK_SQL_FLOAT);
          g_assert_cmpfloat (pg->column_double (select, 2), ==,
                             doubles[row % G_N_ELEMENTS (doubles)]);
          g_assert_cmpint (pg->column_type (select, 3), ==, GK_SQL_TEXT);
          g_assert_cmpstr (pg->column_text (select, 3), ==, texts[row % G_N_ELEMENTS (texts)]);
          g_assert_cmpuint (pg->column_bytes (select, 3), ==,
                            strlen (texts[row % G_N_ELEMENTS (texts)]));
        }
      else
        {
          for (int col = 1; col < 3; col++)
            {
              g_assert_cmpint (pg->column_type (select, col), ==, GK_SQL_NULL);
              g_assert_cmpint (pg->column_int64 (select, col), ==, 0);
              g_assert_cmpfloat (pg->column_double (select, col), ==, 0.0);
              g_assert_null (pg->column_text (select, col));
              g_assert_cmpuint (pg->column_bytes (select, col), ==, 0);
            }
          if (row == n)
            g_assert_cmpstr (pg->column_text (select, 3), ==, "cut");
          else
            g_assert_cmpint (pg->column_type (select, 3), ==, GK_SQL_NULL);
        }
    }
  g_assert_cmpuint (row, ==, n + 2);
  /* Stepping past the end stays done, and a reset runs it again. */
  g_assert_cmpint (pg->step (select), ==, GK_SQL_DONE);
  pg->reset (select);
  g_assert_cmpint (pg->step (select), ==, GK_SQL_ROW);
  g_assert_cmpint (pg->column_int64 (select, 0), ==, 0);
}

/* The server's types read as SQLite would have them. */
static void
test_result_types (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(Stmt) stmt = NULL;

  if (f->sql == NULL)
    return;
  stmt = pg_test_prepare (f->sql,
                  "SELECT sum (x), avg (x), count (*), true, false, CAST (2.5 AS NUMERIC),"
                  " CAST (7 AS SMALLINT), CAST (1.5 AS REAL), '42abc', 'NaN'::float8,"
                  " CAST ('-9223372036854775808' AS NUMERIC) * 10"
                  " FROM (VALUES (CAST (1 AS BIGINT)), (2), (4)) AS v (x)");
  g_assert_cmpint (pg->step (stmt), ==, GK_SQL_ROW);
  g_assert_cmpint (pg->column_type (stmt, 0), ==, GK_SQL_INTEGER);   /* numeric 7 */
  g_assert_cmpint (pg->column_int64 (stmt, 0), ==, 7);
  g_assert_cmpint (pg->column_type (stmt, 1), ==, GK_SQL_FLOAT);     /* numeric 2.33… */
  g_assert_cmpfloat_with_epsilon (pg->column_double (stmt, 1), 7.0 / 3.0, 1e-12);
  g_assert_cmpint (pg->column_int64 (stmt, 1), ==, 2);
  g_assert_cmpint (pg->column_type (stmt, 2), ==, GK_SQL_INTEGER);
  g_assert_cmpint (pg->column_int64 (stmt, 2), ==, 3);
  g_assert_cmpint (pg->column_type (stmt, 3), ==, GK_SQL_INTEGER);
  g_assert_cmpint (pg->column_int64 (stmt, 3), ==, 1);
  g_assert_cmpstr (pg->column_text (stmt, 3), ==, "1");
  g_assert_cmpint (pg->column_int64 (stmt, 4), ==, 0);
  g_assert_cmpstr (pg->column_text (stmt, 4), ==, "0");
  g_assert_cmpint (pg->column_type (stmt, 5), ==, GK_SQL_FLOAT);
  g_assert_cmpfloat (pg->column_double (stmt, 5), ==, 2.5);
  g_assert_cmpint (pg->column_type (stmt, 6), ==, GK_SQL_INTEGER);
  g_assert_cmpint (pg->column_int64 (stmt, 6), ==, 7);
  g_assert_cmpint (pg->column_type (stmt, 7), ==, GK_SQL_FLOAT);
  g_assert_cmpfloat (pg->column_double (stmt, 7), ==, 1.5);
  g_assert_cmpint (pg->column_type (stmt, 8), ==, GK_SQL_TEXT);
  g_assert_cmpint (pg->column_int64 (stmt, 8), ==, 42);
  g_assert_cmpint (pg->column_type (stmt, 9), ==, GK_SQL_FLOAT);
  g_assert_true (isnan (pg->column_double (stmt, 9)));
  g_assert_cmpint (pg->column_int64 (stmt, 9), ==, 0);
  /* An integral numeric beyond 64 bits is clamped, as SQLite clamps. */
  g_assert_cmpint (pg->column_int64 (stmt, 10), ==, G_MININT64);
  /* Past the last column: NULL, as SQLite. */
  g_assert_cmpint (pg->column_type (stmt, 11), ==, GK_SQL_NULL);
  g_assert_cmpint (pg->step (stmt), ==, GK_SQL_DONE);
}

static void
test_placeholders (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(Stmt) stmt = NULL;
  g_autoptr(Stmt) numbered = NULL;

  if (f->sql == NULL)
    return;
  pg_test_exec (f->sql, "CREATE TABLE p (\"what?\" TEXT, note TEXT)");
  stmt = pg_test_prepare (f->sql,
                  "SELECT '?' AS a, ? AS b, 'it''s ?' AS c, E'\\'?' AS d, $$ ? $$ AS e,"
                  " $tag$ ?$$? $tag$ AS f, /* ? /* ? */ ? */ ? AS g -- ? \n"
                  " , (SELECT count (*) FROM p WHERE \"what?\" = ?) AS h");
  g_assert_cmpint (pg->bind_parameter_count (stmt), ==, 3);
  pg->bind_text (stmt, 1, "one", -1);
  pg->bind_text (stmt, 2, "two", -1);
  pg->bind_text (stmt, 3, "?", -1);
  g_assert_cmpint (pg->step (stmt), ==, GK_SQL_ROW);
  g_assert_cmpstr (pg->column_text (stmt, 0), ==, "?");
  g_assert_cmpstr (pg->column_text (stmt, 1), ==, "one");
  g_assert_cmpstr (pg->column_text (stmt, 2), ==, "it's ?");
  g_assert_cmpstr (pg->column_text (stmt, 3), ==, "'?");
  g_assert_cmpstr (pg->column_text (stmt, 4), ==, " ? ");
  g_assert_cmpstr (pg->column_text (stmt, 5), ==, " ?$$? ");
  g_assert_cmpstr (pg->column_text (stmt, 6), ==, "two");
  g_assert_cmpint (pg->column_int64 (stmt, 7), ==, 0);

  /* "?N" numbers a parameter; a bare "?" after it takes the next number. */
  numbered = pg_test_prepare (f->sql, "SELECT CAST (?2 AS TEXT) || CAST (?1 AS TEXT) || ? || ?2");
  g_assert_cmpint (pg->bind_parameter_count (numbered), ==, 3);
  pg->bind_text (numbered, 1, "a", -1);
  pg->bind_text (numbered, 2, "b", -1);
  pg->bind_text (numbered, 3, "c", -1);
  g_assert_cmpint (pg->step (numbered), ==, GK_SQL_ROW);
  g_assert_cmpstr (pg->column_text (numbered, 0), ==, "bacb");

  g_assert_null (pg->prepare (f->sql, "SELECT ?0"));
  g_assert_null (pg->prepare (f->sql, "SELECT ?70000"));
}

static void
test_exec_changes_transactions (Fixture       *f,
                                gconstpointer  data)
{
  g_autoptr(Stmt) update = NULL;
  g_autoptr(Stmt) select = NULL;

  if (f->sql == NULL)
    return;
  /* Several statements in one exec. */
  pg_test_exec (f->sql,
           "CREATE TABLE c (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);"
           "INSERT INTO c VALUES (1, 0), (2, 0), (3, 0), (4, 5);");
  g_assert_cmpint (pg->changes (f->sql), ==, 4);

  update = pg_test_prepare (f->sql, "UPDATE c SET n = n + ? WHERE n = 0");
  pg->bind_int64 (update, 1, 2);
  g_assert_false (pg->in_transaction (f->sql));
  pg_test_exec (f->sql, "BEGIN");
  g_assert_true (pg->in_transaction (f->sql));
  g_assert_cmpint (pg->step (update), ==, GK_SQL_DONE);
  g_assert_cmpint (pg->changes (f->sql), ==, 3);
  /* A query leaves the count of the last change alone, as in SQLite. */
  select = pg_test_prepare (f->sql, "SELECT sum (n) FROM c");
  g_assert_cmpint (pg->step (select), ==, GK_SQL_ROW);
  g_assert_cmpint (pg->column_int64 (select, 0), ==, 11);
  g_assert_cmpint (pg->changes (f->sql), ==, 3);
  pg_test_exec (f->sql, "ROLLBACK");
  g_assert_false (pg->in_transaction (f->sql));

  pg->reset (select);
  g_assert_cmpint (pg->step (select), ==, GK_SQL_ROW);
  g_assert_cmpint (pg->column_int64 (select, 0), ==, 5);

  /* The same text prepared twice shares the server's statement. */
  {
    g_autoptr(Stmt) again = pg_test_prepare (f->sql, "SELECT sum (n) FROM c");

    g_assert_cmpint (pg->step (again), ==, GK_SQL_ROW);
    g_assert_cmpint (pg->column_int64 (again, 0), ==, 5);
  }

  /* An INSERT … RETURNING gives its row and counts as a change. */
  {
    g_autoptr(Stmt) returning = pg_test_prepare (f->sql, "INSERT INTO c (id, n) VALUES (?, 0)"
                                                         " RETURNING id");

    pg->bind_int64 (returning, 1, 9);
    g_assert_cmpint (pg->step (returning), ==, GK_SQL_ROW);
    g_assert_cmpint (pg->column_int64 (returning, 0), ==, 9);
    g_assert_cmpint (pg->changes (f->sql), ==, 1);
    g_assert_cmpint (pg->step (returning), ==, GK_SQL_DONE);
  }
}

static void
test_errors (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(Stmt) insert = NULL;

  if (f->sql == NULL)
    return;
  pg_test_exec (f->sql, "CREATE TABLE u (name TEXT UNIQUE, n BIGINT CHECK (n >= 0))");
  insert = pg_test_prepare (f->sql, "INSERT INTO u (name, n) VALUES (?, ?)");
  pg->bind_text (insert, 1, "one", -1);
  pg->bind_int64 (insert, 2, 1);
  g_assert_cmpint (pg->step (insert), ==, GK_SQL_DONE);
  g_assert_cmpint (pg->errcode (f->sql), ==, GK_SQL_OK);

  pg->reset (insert);
  pg->bind_text (insert, 1, "one", -1);
  pg->bind_int64 (insert, 2, 1);
  g_assert_cmpint (pg->step (insert), ==, GK_SQL_ERROR);
  g_assert_cmpint (pg->errcode (f->sql), ==, GK_SQL_ERR_CONSTRAINT);
  g_assert_nonnull (strstr (pg->errmsg (f->sql), "unique"));
  /* The detail, which quotes the row's values, is left out. */
  g_assert_null (strstr (pg->errmsg (f->sql), "(one)"));

  pg->reset (insert);
  pg->bind_text (insert, 1, "two", -1);
  pg->bind_int64 (insert, 2, -1);
  g_assert_cmpint (pg->step (insert), ==, GK_SQL_ERROR);
  g_assert_cmpint (pg->errcode (f->sql), ==, GK_SQL_ERR_CONSTRAINT);

  g_assert_null (pg->prepare (f->sql, "SELEKT 1"));
  g_assert_cmpint (pg->errcode (f->sql), ==, GK_SQL_ERR_OTHER);
  g_assert_false (pg->exec (f->sql, "SELECT * FROM no_such_table"));
  g_assert_cmpint (pg->errcode (f->sql), ==, GK_SQL_ERR_OTHER);
  g_assert_nonnull (strstr (pg->errmsg (f->sql), "no_such_table"));
  pg_test_exec (f->sql, "SELECT 1");
  g_assert_cmpint (pg->errcode (f->sql), ==, GK_SQL_OK);

  /* A row lock held by another connection: NOWAIT gives up at once. */
  {
    GkSql *other = pg_test_open (test_uri ());
    g_autofree char *short_wait = g_strdup_printf ("%s?options=-c%%20lock_timeout%%3D1s",
                                                   test_uri ());
    g_autoptr(Stmt) schema = pg_test_prepare (f->sql, "SELECT current_schema ()");
    g_autofree char *set = NULL;

    g_assert_cmpint (pg->step (schema), ==, GK_SQL_ROW);
    set = g_strdup_printf ("SET search_path = %s", pg->column_text (schema, 0));
    pg_test_exec (other, set);
    pg_test_exec (f->sql, "BEGIN; SELECT * FROM u FOR UPDATE");
    pg_test_exec (other, "BEGIN");
    g_assert_false (pg->exec (other, "SELECT * FROM u FOR UPDATE NOWAIT"));
    g_assert_cmpint (pg->errcode (other), ==, GK_SQL_ERR_BUSY);
    g_assert_true (pg->in_transaction (other));   /* failed, still to roll back */
    pg_test_exec (other, "ROLLBACK");
    pg->close (other);

    /* A write that waits for the lock longer than the lock timeout (here
     * the connection string's, 1 s) fails as busy. */
    other = pg_test_open (short_wait);
    pg_test_exec (other, set);
    g_assert_false (pg->exec (other, "UPDATE u SET n = n + 1"));
    g_assert_cmpint (pg->errcode (other), ==, GK_SQL_ERR_BUSY);
    pg->close (other);
    pg_test_exec (f->sql, "ROLLBACK");
  }
}

static void
test_connect_errors (Fixture       *f,
                     gconstpointer  data)
{
  static const char *const wrong = "Wr0ng-pa55word-that-must-not-show";
  g_autofree char *uri = NULL;
  g_autofree char *message = NULL;
  g_autofree char *bad_syntax = NULL;
  GkSqlErr code = GK_SQL_OK;
  GkSql *sql;
  g_autoptr(GUri) parsed = NULL;

  if (f->sql == NULL)
    return;
  parsed = g_uri_parse (test_uri (), G_URI_FLAGS_NONE, NULL);
  g_assert_nonnull (parsed);

  /* A wrong password. */
  uri = g_strdup_printf ("postgresql://gk_test:%s@127.0.0.1:%d/gk_test", wrong,
                         g_uri_get_port (parsed));
  sql = pg->open (uri, &code, &message);
  g_assert_null (sql);
  g_assert_cmpint (code, ==, GK_SQL_ERR_CONNECTION);
  g_test_message ("wrong password: %s", message);
  assert_no_secret (message, wrong);
  assert_no_secret (message, f->password);
  g_assert_nonnull (strstr (message, "postgresql://gk_test@127.0.0.1:"));
  g_clear_pointer (&message, g_free);

  /* Nothing listens on port 1. */
  g_free (uri);
  uri = g_strdup_printf ("postgresql://gk_test:%s@127.0.0.1:1/gk_test", f->password);
  sql = pg->open (uri, &code, &message);
  g_assert_null (sql);
  g_assert_cmpint (code, ==, GK_SQL_ERR_CONNECTION);
  assert_no_secret (message, f->password);
  g_clear_pointer (&message, g_free);

  /* libpq quotes a bad connection string back; the driver does not. */
  bad_syntax = g_strdup_printf ("host=127.0.0.1 password=%s %s", f->password, wrong);
  sql = pg->open (bad_syntax, &code, &message);
  g_assert_null (sql);
  g_assert_cmpint (code, ==, GK_SQL_ERR_OTHER);
  g_test_message ("bad syntax: %s", message);
  assert_no_secret (message, f->password);
  assert_no_secret (message, wrong);
}

static char *
query_text (GkSql      *sql,
            const char *text)
{
  g_autoptr(Stmt) stmt = pg_test_prepare (sql, text);

  g_assert_cmpint (pg->step (stmt), ==, GK_SQL_ROW);
  return g_strdup (pg->column_text (stmt, 0));
}

/* Both forms of connection string connect; the driver's defaults apply
 * unless the string sets its own. */
static void
test_connect (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GUri) parsed = NULL;
  g_autofree char *keywords = NULL;
  g_autofree char *named = NULL;
  g_autofree char *name = NULL;
  g_autofree char *encoding = NULL;
  g_autofree char *timeout = NULL;
  GkSql *sql;

  if (f->sql == NULL)
    return;
  name = query_text (f->sql, "SELECT current_setting ('application_name')");
  g_assert_cmpstr (name, ==, "gemini-keys");
  encoding = query_text (f->sql, "SELECT current_setting ('client_encoding')");
  g_assert_cmpstr (encoding, ==, "UTF8");
  timeout = query_text (f->sql, "SELECT current_setting ('lock_timeout')");
  g_assert_cmpstr (timeout, ==, "10s");

  parsed = g_uri_parse (test_uri (), G_URI_FLAGS_HAS_PASSWORD, NULL);
  g_assert_nonnull (parsed);
  keywords = g_strdup_printf ("host=%s port=%d dbname=gk_test user=gk_test password='%s'"
                              " application_name=other", g_uri_get_host (parsed),
                              g_uri_get_port (parsed), f->password);
  sql = pg_test_open (keywords);
  g_clear_pointer (&name, g_free);
  name = query_text (sql, "SELECT current_setting ('application_name')");
  g_assert_cmpstr (name, ==, "other");
  pg->close (sql);

  named = g_strdup_printf ("%s?application_name=third", test_uri ());
  sql = pg_test_open (named);
  g_clear_pointer (&name, g_free);
  name = query_text (sql, "SELECT current_setting ('application_name')");
  g_assert_cmpstr (name, ==, "third");
  pg->close (sql);
}

/* Runs @command_line (from pg-cluster.sh), its output kept off the TAP
 * stream. */
static void
run_command (const char *command_line)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int status = 0;

  g_assert_nonnull (command_line);
  g_spawn_command_line_sync (command_line, &out, &err, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("“%s” failed: %s%s", command_line, out, err);
}

/* Stops the server and starts it again. */
static void
restart_server (void)
{
  run_command (g_getenv ("GK_TEST_PG_STOP"));
  run_command (g_getenv ("GK_TEST_PG_START"));
}

/* The server goes away under an open connection: the next call fails as
 * a lost connection, the one after reconnects; inside a transaction, only
 * its ROLLBACK does, so nothing can commit on the new connection what the
 * old one lost. */
static void
test_server_restarted (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(Stmt) select = NULL;
  g_autoptr(Stmt) insert = NULL;
  g_autoptr(Stmt) schema = NULL;
  g_autofree char *create = NULL;
  g_autofree char *insert_sql = NULL;
  g_autofree char *count_sql = NULL;

  if (f->sql == NULL)
    return;
  /* Settings made with SET do not survive a reconnection: name the
   * fixture's schema. */
  schema = pg_test_prepare (f->sql, "SELECT current_schema ()");
  g_assert_cmpint (pg->step (schema), ==, GK_SQL_ROW);
  create = g_strdup_printf ("CREATE TABLE %s.r (n BIGINT)", pg->column_text (schema, 0));
  insert_sql = g_strdup_printf ("INSERT INTO %s.r VALUES (?)", pg->column_text (schema, 0));
  count_sql = g_strdup_printf ("SELECT count (*) FROM %s.r", pg->column_text (schema, 0));
  pg_test_exec (f->sql, create);
  select = pg_test_prepare (f->sql, "SELECT CAST (? AS BIGINT) + 1");
  insert = pg_test_prepare (f->sql, insert_sql);

  /* Outside a transaction. */
  run_command (g_getenv ("GK_TEST_PG_STOP"));
  pg->bind_int64 (select, 1, 1);
  g_assert_cmpint (pg->step (select), ==, GK_SQL_ERROR);
  g_assert_cmpint (pg->errcode (f->sql), ==, GK_SQL_ERR_CONNECTION);
  g_test_message ("server stopped: %s", pg->errmsg (f->sql));
  assert_no_secret (pg->errmsg (f->sql), f->password);
  g_assert_false (pg->exec (f->sql, "SELECT 1"));   /* nothing to reconnect to */
  g_assert_cmpint (pg->errcode (f->sql), ==, GK_SQL_ERR_CONNECTION);
  assert_no_secret (pg->errmsg (f->sql), f->password);
  g_assert_false (pg->in_transaction (f->sql));
  run_command (g_getenv ("GK_TEST_PG_START"));
  /* Reconnected, the statement prepared again on the new connection. */
  g_assert_cmpint (pg->step (select), ==, GK_SQL_ROW);
  g_assert_cmpint (pg->column_int64 (select, 0), ==, 2);
  pg->reset (select);

  /* Inside a transaction. */
  pg_test_exec (f->sql, "BEGIN");
  pg->bind_int64 (insert, 1, 1);
  g_assert_cmpint (pg->step (insert), ==, GK_SQL_DONE);
  pg->reset (insert);
  restart_server ();
  pg->bind_int64 (insert, 1, 2);
  g_assert_cmpint (pg->step (insert), ==, GK_SQL_ERROR);
  g_assert_cmpint (pg->errcode (f->sql), ==, GK_SQL_ERR_CONNECTION);
  pg->reset (insert);
  g_assert_true (pg->in_transaction (f->sql));
  pg->bind_int64 (insert, 1, 3);
  g_assert_cmpint (pg->step (insert), ==, GK_SQL_ERROR);
  g_assert_cmpint (pg->errcode (f->sql), ==, GK_SQL_ERR_CONNECTION);
  pg->reset (insert);
  g_assert_false (pg->exec (f->sql, "COMMIT"));
  g_assert_cmpint (pg->errcode (f->sql), ==, GK_SQL_ERR_CONNECTION);
  g_assert_true (pg->in_transaction (f->sql));
  pg_test_exec (f->sql, "ROLLBACK");
  g_assert_false (pg->in_transaction (f->sql));
  {
    g_autoptr(Stmt) count = pg_test_prepare (f->sql, count_sql);

    g_assert_cmpint (pg->step (count), ==, GK_SQL_ROW);
    g_assert_cmpint (pg->column_int64 (count, 0), ==, 0);
  }
  pg->bind_int64 (insert, 1, 4);
  g_assert_cmpint (pg->step (insert), ==, GK_SQL_DONE);
}

static void
test_redact_target (void)
{
  static const struct { const char *in, *out; } cases[] = {
    { "postgresql://alice:s3cret@db.example.org:5433/pool?sslmode=require&password=x",
      "postgresql://alice@db.example.org:5433/pool" },
    { "postgres://alice@db/pool", "postgres://alice@db/pool" },
    { "postgresql://db.example.org", "postgresql://db.example.org/" },
    { "postgresql://al:p@ss/w?rd@h1:5432,h2:5433/db", "postgresql://al@h1:5432,h2:5433/db" },
    { "postgresql:///pool?host=/run/postgresql&password=s3cret", "postgresql:///pool" },
    { "postgresql://h/db?application_name=a@b&password=s3cret@x", "postgresql://h@x/" },
    { "host=db.example.org port=5433 dbname=pool user=alice password=s3cret sslmode=require",
      "postgresql://alice@db.example.org:5433/pool" },
    { "password = 's3 cret\\' x' host=db dbname=pool", "postgresql://db/pool" },
    { "dbname='host=db password=s3cret' user=bob", "postgresql://bob@/" },
    { "host=db password=s3cret garbage", "postgresql://db/" },
    { "/home/alice/.local/share/gemini-keys/keys.db", "/home/alice/.local/share/gemini-keys/keys.db" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *out = gk_sql_redact_target (cases[i].in);

      g_assert_cmpstr (out, ==, cases[i].out);
      g_assert_null (strstr (out, "s3"));
    }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add_func ("/pg/redact-target", test_redact_target);
#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/pg/values", test_values);
  ADD ("/pg/blobs", test_blobs);
  ADD ("/pg/result-types", test_result_types);
  ADD ("/pg/placeholders", test_placeholders);
  ADD ("/pg/exec-changes-transactions", test_exec_changes_transactions);
  ADD ("/pg/errors", test_errors);
  ADD ("/pg/connect", test_connect);
  ADD ("/pg/connect-errors", test_connect_errors);
  /* Last: it stops the server (and starts it again). */
  ADD ("/pg/server-restarted", test_server_restarted);
#undef ADD
  return g_test_run ();
}
