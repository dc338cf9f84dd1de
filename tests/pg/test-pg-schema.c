/* test-pg-schema.c: an empty SQLite file and an empty PostgreSQL database,
 * each migrated to the latest version, have the same schema: the same
 * tables, columns (names, order, nullability, types), keys, indexes and
 * triggers; and the triggers do the same. GkDatabase migrates a
 * PostgreSQL database, and the core adds, chooses and charges keys there.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <sqlite3.h>
#include <string.h>

#include "gk-database-postgresql.h"
#include "gk-rollup.h"
#include "gk-test-util.h"
#include "pg-test-util.h"

typedef struct
{
  char  *sqlite_path;
  GkSql *sql;
  int    sqlite_version;
} Fixture;

/* Types as the two engines spell them, reduced to SQLite's storage
 * classes. */
static const char *
normal_type (const char *declared)
{
  g_autofree char *up = g_ascii_strup (declared, -1);

  if (strstr (up, "INT") != NULL)
    return "integer";
  if (strstr (up, "REAL") != NULL || strstr (up, "DOUBLE") != NULL || strstr (up, "FLOA") != NULL)
    return "real";
  if (strstr (up, "TEXT") != NULL || strstr (up, "CHAR") != NULL)
    return "text";
  if (strstr (up, "BLOB") != NULL || strstr (up, "BYTEA") != NULL)
    return "blob";
  return up[0] != '\0' ? "other" : "none";
}

/* "BEFORE DELETE" and the like from a trigger's text. */
static char *
trigger_kind_from_sql (const char *sql)
{
  g_autoptr(GRegex) re = g_regex_new ("CREATE\\s+TRIGGER\\s+\\S+\\s+(BEFORE|AFTER|INSTEAD\\s+OF)?"
                                      "\\s*(DELETE|INSERT|UPDATE)",
                                      G_REGEX_CASELESS, 0, NULL);
  g_autoptr(GMatchInfo) match = NULL;
  g_autofree char *timing = NULL;
  g_autofree char *event = NULL;
  g_autofree char *kind = NULL;

  g_assert_true (g_regex_match (re, sql, 0, &match));
  timing = g_match_info_fetch (match, 1);
  event = g_match_info_fetch (match, 2);
  /* SQLite's default timing is BEFORE. */
  kind = g_strdup_printf ("%s %s", *timing != '\0' ? timing : "BEFORE", event);
  return g_ascii_strup (kind, -1);
}

/* SQLite ------------------------------------------------------------------ */

static void
sqlite_rows (sqlite3     *db,
             const char  *sql,
             void       (*row) (sqlite3_stmt *stmt, gpointer data),
             gpointer     data)
{
  sqlite3_stmt *stmt = NULL;

  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
  while (sqlite3_step (stmt) == SQLITE_ROW)
    row (stmt, data);
  sqlite3_finalize (stmt);
}

static void
add_sqlite_table (sqlite3_stmt *stmt,
                  gpointer      data)
{
  g_ptr_array_add (data, g_strdup ((const char *) sqlite3_column_text (stmt, 0)));
}

static char *
sqlite_index_columns (sqlite3    *db,
                      const char *index)
{
  g_autofree char *sql = g_strdup_printf ("SELECT name FROM pragma_index_info ('%s') ORDER BY seqno",
                                          index);
  g_autoptr(GPtrArray) cols = g_ptr_array_new_with_free_func (g_free);

  sqlite_rows (db, sql, add_sqlite_table, cols);
  g_ptr_array_add (cols, NULL);
  return g_strjoinv (", ", (char **) cols->pdata);
}

static GPtrArray *
describe_sqlite (const char *path)
{
  GPtrArray *lines = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) tables = g_ptr_array_new_with_free_func (g_free);
  sqlite3 *db = NULL;

  g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
  sqlite_rows (db, "SELECT name FROM sqlite_schema WHERE type = 'table'"
               " AND name NOT LIKE 'sqlite_%'", add_sqlite_table, tables);

  for (guint t = 0; t < tables->len; t++)
    {
      const char *table = tables->pdata[t];
      g_autoptr(GString) columns = g_string_new (NULL);
      g_autoptr(GString) pk = g_string_new (NULL);
      g_autofree char *sql = g_strdup_printf ("SELECT name, type, \"notnull\", pk"
                                              " FROM pragma_table_info ('%s') ORDER BY cid",
                                              table);
      sqlite3_stmt *stmt = NULL;

      /* Columns in order; a key column cannot be NULL (PostgreSQL says
       * so, SQLite only behaves so). */
      g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
      while (sqlite3_step (stmt) == SQLITE_ROW)
        g_string_append_printf (columns, "%s%s %s%s", columns->len > 0 ? ", " : "",
                                sqlite3_column_text (stmt, 0),
                                normal_type ((const char *) sqlite3_column_text (stmt, 1)),
                                sqlite3_column_int (stmt, 2) || sqlite3_column_int (stmt, 3)
                                  ? " NOT NULL" : "");
      sqlite3_finalize (stmt);
      g_ptr_array_add (lines, g_strdup_printf ("table %s (%s)", table, columns->str));

      g_free (sql);
      sql = g_strdup_printf ("SELECT name FROM pragma_table_info ('%s') WHERE pk > 0 ORDER BY pk",
                             table);
      g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
      while (sqlite3_step (stmt) == SQLITE_ROW)
        g_string_append_printf (pk, "%s%s", pk->len > 0 ? ", " : "", sqlite3_column_text (stmt, 0));
      sqlite3_finalize (stmt);
      if (pk->len > 0)
        g_ptr_array_add (lines, g_strdup_printf ("primary key %s (%s)", table, pk->str));

      /* Indexes: those made by CREATE INDEX by name; those behind UNIQUE
       * constraints (named by the engine) by their columns. */
      g_free (sql);
      sql = g_strdup_printf ("SELECT name, \"unique\", origin, partial FROM pragma_index_list ('%s')",
                             table);
      g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
      while (sqlite3_step (stmt) == SQLITE_ROW)
        {
          const char *name = (const char *) sqlite3_column_text (stmt, 0);
          const char *origin = (const char *) sqlite3_column_text (stmt, 2);
          g_autofree char *cols = sqlite_index_columns (db, name);

          if (g_str_equal (origin, "u"))
            g_ptr_array_add (lines, g_strdup_printf ("unique %s (%s)", table, cols));
          else if (g_str_equal (origin, "c"))
            g_ptr_array_add (lines, g_strdup_printf ("index %s on %s (%s)%s%s", name, table, cols,
                                                     sqlite3_column_int (stmt, 1) ? " unique" : "",
                                                     sqlite3_column_int (stmt, 3) ? " partial" : ""));
        }
      sqlite3_finalize (stmt);

      g_free (sql);
      sql = g_strdup_printf ("SELECT \"from\", \"table\", \"to\", on_delete"
                             " FROM pragma_foreign_key_list ('%s')", table);
      g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
      while (sqlite3_step (stmt) == SQLITE_ROW)
        g_ptr_array_add (lines, g_strdup_printf ("foreign key %s (%s) references %s (%s) on delete %s",
                                                 table, sqlite3_column_text (stmt, 0),
                                                 sqlite3_column_text (stmt, 1),
                                                 sqlite3_column_text (stmt, 2),
                                                 sqlite3_column_text (stmt, 3)));
      sqlite3_finalize (stmt);
    }

  {
    sqlite3_stmt *stmt = NULL;

    g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT name, tbl_name, sql FROM sqlite_schema"
                                         " WHERE type = 'trigger'", -1, &stmt, NULL),
                     ==, SQLITE_OK);
    while (sqlite3_step (stmt) == SQLITE_ROW)
      {
        g_autofree char *kind = trigger_kind_from_sql ((const char *) sqlite3_column_text (stmt, 2));

        g_ptr_array_add (lines, g_strdup_printf ("trigger %s on %s %s", sqlite3_column_text (stmt, 0),
                                                 sqlite3_column_text (stmt, 1), kind));
      }
    sqlite3_finalize (stmt);
  }

  sqlite3_close (db);
  g_ptr_array_sort (lines, (GCompareFunc) g_strcmp0);
  return lines;
}

/* PostgreSQL -------------------------------------------------------------- */

/* The columns of a key, in order, of one of @table's constraints. */
#define CONSTRAINT_COLUMNS(keys, rel) \
  "array_to_string (ARRAY (SELECT a.attname FROM unnest (" keys ") WITH ORDINALITY AS k (n, o)" \
  " JOIN pg_attribute a ON a.attrelid = " rel " AND a.attnum = k.n ORDER BY k.o), ', ')"

/* Runs @text, with @table (unless NULL) as its one parameter, and adds
 * the first column of each row to @lines, after @prefix. */
static void
add_pg_lines (GkSql      *sql,
              GPtrArray  *lines,
              const char *text,
              const char *table,
              const char *prefix)
{
  GkSqlStmt *stmt = pg_test_prepare (sql, text);

  if (table != NULL)
    pg->bind_text (stmt, 1, table, -1);
  while (pg->step (stmt) == GK_SQL_ROW)
    g_ptr_array_add (lines, g_strconcat (prefix, pg->column_text (stmt, 0), NULL));
  g_assert_cmpint (pg->errcode (sql), ==, GK_SQL_OK);
  pg->finalize (stmt);
}

static GPtrArray *
describe_pg (GkSql *sql)
{
  GPtrArray *lines = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) tables = g_ptr_array_new_with_free_func (g_free);
  GkSqlStmt *stmt;

  add_pg_lines (sql, tables,
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema () AND table_type = 'BASE TABLE'", NULL, "");

  for (guint t = 0; t < tables->len; t++)
    {
      const char *table = tables->pdata[t];
      g_autoptr(GString) columns = g_string_new (NULL);

      stmt = pg_test_prepare (sql, "SELECT column_name, data_type, is_nullable"
                           " FROM information_schema.columns"
                           " WHERE table_schema = current_schema () AND table_name = ?"
                           " ORDER BY ordinal_position");
      pg->bind_text (stmt, 1, table, -1);
      while (pg->step (stmt) == GK_SQL_ROW)
        g_string_append_printf (columns, "%s%s %s%s", columns->len > 0 ? ", " : "",
                                pg->column_text (stmt, 0), normal_type (pg->column_text (stmt, 1)),
                                g_str_equal (pg->column_text (stmt, 2), "NO") ? " NOT NULL" : "");
      pg->finalize (stmt);
      g_ptr_array_add (lines, g_strdup_printf ("table %s (%s)", table, columns->str));

      add_pg_lines (sql, lines,
                    "SELECT CASE contype WHEN 'p' THEN 'primary key ' ELSE 'unique ' END"
                    " || conrelid::regclass::text || ' ('"
                    " || " CONSTRAINT_COLUMNS ("conkey", "conrelid") " || ')'"
                    " FROM pg_constraint WHERE conrelid = to_regclass (?) AND contype IN ('p', 'u')",
                    table, "");
      add_pg_lines (sql, lines,
                    "SELECT 'foreign key ' || conrelid::regclass::text"
                    " || ' (' || " CONSTRAINT_COLUMNS ("conkey", "conrelid") " || ') references '"
                    " || confrelid::regclass::text"
                    " || ' (' || " CONSTRAINT_COLUMNS ("confkey", "confrelid") " || ') on delete '"
                    " || CASE confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'r' THEN 'RESTRICT'"
                    " WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' ELSE 'NO ACTION' END"
                    " FROM pg_constraint WHERE conrelid = to_regclass (?) AND contype = 'f'",
                    table, "");
      /* Indexes of their own, not those behind a key or UNIQUE. */
      add_pg_lines (sql, lines,
                    "SELECT 'index ' || i.relname || ' on ' || ix.indrelid::regclass::text"
                    " || ' (' || " CONSTRAINT_COLUMNS ("CAST (ix.indkey AS int2[])", "ix.indrelid")
                    " || ')' || CASE WHEN ix.indisunique THEN ' unique' ELSE '' END"
                    " || CASE WHEN ix.indpred IS NOT NULL THEN ' partial' ELSE '' END"
                    " FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid"
                    " WHERE ix.indrelid = to_regclass (?) AND NOT EXISTS (SELECT 1 FROM pg_constraint c"
                    " WHERE c.conrelid = ix.indrelid AND c.conindid = ix.indexrelid)",
                    table, "");
    }

  /* tgtype's bits: 2 BEFORE, 64 INSTEAD OF, 4 INSERT, 8 DELETE, 16 UPDATE. */
  add_pg_lines (sql, lines,
                "SELECT 'trigger ' || t.tgname || ' on ' || c.relname || ' '"
                " || CASE WHEN t.tgtype & 2 <> 0 THEN 'BEFORE' WHEN t.tgtype & 64 <> 0"
                " THEN 'INSTEAD OF' ELSE 'AFTER' END || ' '"
                " || CASE WHEN t.tgtype & 4 <> 0 THEN 'INSERT' WHEN t.tgtype & 8 <> 0 THEN 'DELETE'"
                " ELSE 'UPDATE' END"
                " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                " WHERE NOT t.tgisinternal AND c.relnamespace = CAST (current_schema () AS regnamespace)"
                /* The change notices are the server's alone (an SQLite file
                 * has data_version). */
                " AND t.tgname NOT LIKE 'notify\\_%'",
                NULL, "");

  g_ptr_array_sort (lines, (GCompareFunc) g_strcmp0);
  return lines;
}

/* Migrates the database on @sql as GkDatabase does: in one transaction,
 * under the migration lock, from the version it has. */
static int
migrate_pg (GkSql *sql)
{
  gsize n = 0;
  const GkMigration *migrations = gk_database_postgresql_migrations (&n);
  GkSqlStmt *stmt;
  int from;

  pg_test_exec (sql, "BEGIN");
  pg_test_exec (sql, GK_DATABASE_POSTGRESQL_MIGRATION_LOCK);
  from = gk_database_postgresql_read_version (sql);
  g_assert_cmpint (from, >=, 0);
  for (gsize v = from; v < n; v++)
    for (gsize i = 0; i < migrations[v].n_steps; i++)
      pg_test_exec (sql, migrations[v].steps[i].sql);
  stmt = pg_test_prepare (sql, GK_DATABASE_POSTGRESQL_WRITE_VERSION);
  pg->bind_int64 (stmt, 1, n);
  g_assert_cmpint (pg->step (stmt), ==, GK_SQL_DONE);
  pg->finalize (stmt);
  pg_test_exec (sql, "COMMIT");
  return from;
}

/* Every line of @a not in @b, and of @b not in @a, for the message. */
static char *
difference (GPtrArray *a,
            GPtrArray *b)
{
  g_autoptr(GString) diff = g_string_new (NULL);

  for (guint i = 0; i < a->len; i++)
    if (!g_ptr_array_find_with_equal_func (b, a->pdata[i], g_str_equal, NULL))
      g_string_append_printf (diff, "\n  SQLite only:     %s", (char *) a->pdata[i]);
  for (guint i = 0; i < b->len; i++)
    if (!g_ptr_array_find_with_equal_func (a, b->pdata[i], g_str_equal, NULL))
      g_string_append_printf (diff, "\n  PostgreSQL only: %s", (char *) b->pdata[i]);
  return g_string_free (g_steal_pointer (&diff), diff->len == 0);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  const char *uri = g_getenv ("GK_TEST_PG_URI");
  g_autoptr(GkDatabase) db = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *message = NULL;
  GkSqlErr code;

  if (uri == NULL)
    {
      g_test_skip ("GK_TEST_PG_URI is not set: run through tests/pg/pg-cluster.sh");
      return;
    }

  f->sqlite_path = gk_test_db_path ();
  db = gk_database_open (f->sqlite_path, NULL, &error);
  g_assert_no_error (error);
  f->sqlite_version = gk_database_get_schema_version (db);

  f->sql = pg->open (uri, &code, &message);
  if (f->sql == NULL)
    g_error ("cannot connect: %s", message);
  /* A fresh schema, as an empty database would be. */
  pg_test_exec (f->sql, "DROP SCHEMA IF EXISTS gk CASCADE; CREATE SCHEMA gk; SET search_path = gk");
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_clear_pointer (&f->sql, pg->close);
  g_free (f->sqlite_path);
}

static void
test_same_schema (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GPtrArray) lite = NULL;
  g_autoptr(GPtrArray) post = NULL;
  g_autofree char *diff = NULL;
  gsize n = 0;

  if (f->sql == NULL)
    return;
  gk_database_postgresql_migrations (&n);
  g_assert_cmpint (f->sqlite_version, ==, (int) n);

  g_assert_cmpint (gk_database_postgresql_read_version (f->sql), ==, 0);
  g_assert_cmpint (migrate_pg (f->sql), ==, 0);
  g_assert_cmpint (gk_database_postgresql_read_version (f->sql), ==, (int) n);
  /* A second run finds nothing to do. */
  g_assert_cmpint (migrate_pg (f->sql), ==, (int) n);

  lite = describe_sqlite (f->sqlite_path);
  post = describe_pg (f->sql);
  for (guint i = 0; i < post->len; i++)
    g_test_message ("%s", (char *) post->pdata[i]);
  g_assert_cmpuint (lite->len, >, 20);
  diff = difference (lite, post);
  if (diff != NULL)
    g_error ("the schemas differ:%s", diff);
}

static gpointer
migrate_thread (gpointer data)
{
  GkSql *sql = pg_test_open (g_getenv ("GK_TEST_PG_URI"));
  int from;

  pg_test_exec (sql, data);
  from = migrate_pg (sql);
  pg->close (sql);
  return GINT_TO_POINTER (from);
}

/* Two processes starting at once on an empty database: one migrates, the
 * other waits for it and finds nothing left to do. They wait longer than
 * the driver's lock timeout (10 s) for a third that holds the lock. */
static void
test_concurrent_migrations (Fixture       *f,
                            gconstpointer  data)
{
  GThread *threads[2];
  int from[2];
  gsize n = 0;

  if (f->sql == NULL)
    return;
  gk_database_postgresql_migrations (&n);
  pg_test_exec (f->sql, "BEGIN");
  pg_test_exec (f->sql, GK_DATABASE_POSTGRESQL_MIGRATION_LOCK);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("migrate", migrate_thread, (gpointer) "SET search_path = gk");
  g_usleep (11 * G_USEC_PER_SEC);
  pg_test_exec (f->sql, "ROLLBACK");
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    from[i] = GPOINTER_TO_INT (g_thread_join (threads[i]));
  g_assert_cmpint (MIN (from[0], from[1]), ==, 0);
  g_assert_cmpint (MAX (from[0], from[1]), ==, (int) n);
  g_assert_cmpint (gk_database_postgresql_read_version (f->sql), ==, (int) n);
}

/* GkDatabase opens a PostgreSQL target and migrates it with these
 * migrations, once. */
static void
test_database_open (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *uri = NULL;
  g_autofree char *uuid = NULL;
  g_autoptr(GkDatabase) db = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) created = NULL;
  gsize n = 0;

  if (f->sql == NULL)
    return;
  gk_database_postgresql_migrations (&n);
  /* The fixture's fresh schema, for the database's own connection. */
  uri = g_strdup_printf ("%s?options=-c%%20search_path%%3Dgk", g_getenv ("GK_TEST_PG_URI"));
  db = gk_database_new (uri, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (gk_database_migrate (db, &created, &error));
  g_assert_no_error (error);
  g_assert_true (g_strv_contains ((const char *const *) created, "gemini_api_keys"));
  g_assert_true (g_strv_contains ((const char *const *) created, "audit_log"));
  g_assert_cmpint (gk_database_get_schema_version (db), ==, (int) n);
  g_assert_cmpint (gk_database_postgresql_read_version (f->sql), ==, (int) n);
  uuid = g_strdup (gk_database_get_uuid (db));
  g_assert_nonnull (uuid);
  g_clear_object (&db);

  /* Opened again: nothing left to do, the same database. */
  db = gk_database_new (uri, NULL, &error);
  g_assert_no_error (error);
  g_clear_pointer (&created, g_strfreev);
  g_assert_true (gk_database_migrate (db, &created, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_strv_length (created), ==, 0);
  g_assert_cmpstr (gk_database_get_uuid (db), ==, uuid);
}

static char *pg_query (GkSql      *sql,
                       const char *query);

/* The core's own work on a PostgreSQL database: a key added (encrypted),
 * chosen, and its uses recorded and charged. */
static void
test_core_on_postgresql (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *uri = NULL;
  g_autoptr(GkClock) clock = NULL;
  g_autoptr(GkDatabase) db = NULL;
  g_autoptr(GBytes) master = NULL;
  g_autoptr(GkKeyStore) store = NULL;
  g_autoptr(GkPool) pool = NULL;
  g_autoptr(GkKey) key = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *counts = NULL;
  g_autofree char *expected = NULL;
  gint64 low, high;

  if (f->sql == NULL)
    return;
  uri = g_strdup_printf ("%s?options=-c%%20search_path%%3Dgk", g_getenv ("GK_TEST_PG_URI"));
  clock = gk_clock_new_fixed (GK_TEST_EPOCH);
  db = gk_database_open (uri, clock, &error);
  g_assert_no_error (error);
  master = gk_test_master_key ();
  store = gk_key_store_new (db, master);
  pool = gk_pool_new (db, NULL);

  low = gk_test_add_key (store, "low", 3);
  high = gk_test_add_key (store, "high", 8);
  key = gk_pool_select (pool, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (key->id, ==, high);
  for (int i = 0; i < 5; i++)
    gk_test_track (pool, high, GK_USAGE_SUCCESS, 100);
  gk_test_track (pool, low, GK_USAGE_ERROR, 0);

  counts = pg_query (f->sql, "SELECT key_id, count(*), sum(prompt_tokens), max(status)"
                             " FROM gemini_key_usage_log GROUP BY key_id ORDER BY key_id");
  expected = g_strdup_printf ("%" G_GINT64_FORMAT "|1|0|ERROR\n"
                              "%" G_GINT64_FORMAT "|5|500|SUCCESS\n", low, high);
  g_assert_cmpstr (counts, ==, expected);
  g_clear_pointer (&counts, g_free);
  counts = pg_query (f->sql, "SELECT count(*) FROM gemini_api_keys"
                             " WHERE api_key_encrypted IS NOT NULL");
  g_assert_cmpstr (counts, ==, "2\n");
}

/* The comparison sees a column that differs, in name, type or
 * nullability, and an index that is missing. */
static void
test_comparison_sees_differences (Fixture       *f,
                                  gconstpointer  data)
{
  static const char *const changes[] = {
    "ALTER TABLE settings ADD COLUMN extra TEXT",
    "ALTER TABLE gemini_key_quotas ALTER COLUMN reset_at DROP NOT NULL",
    "ALTER TABLE gemini_key_usage_log ALTER COLUMN latency_ms TYPE TEXT",
    "ALTER TABLE audit_log RENAME COLUMN summary TO summary2",
    "DROP INDEX gemini_api_keys_project",
    "DROP TRIGGER audit_log_no_delete ON audit_log",
  };
  g_autoptr(GPtrArray) lite = NULL;

  if (f->sql == NULL)
    return;
  migrate_pg (f->sql);
  lite = describe_sqlite (f->sqlite_path);

  for (guint i = 0; i < G_N_ELEMENTS (changes); i++)
    {
      g_autoptr(GPtrArray) post = NULL;
      g_autofree char *diff = NULL;

      pg_test_exec (f->sql, "BEGIN");
      pg_test_exec (f->sql, changes[i]);
      post = describe_pg (f->sql);
      diff = difference (lite, post);
      g_test_message ("%s:%s", changes[i], diff);
      g_assert_nonnull (diff);
      pg_test_exec (f->sql, "ROLLBACK");
    }
}

/* Runs the same statements on both engines and returns what @query reads
 * back, one line per row. */
static char *
sqlite_query (sqlite3    *db,
              const char *query)
{
  g_autoptr(GString) out = g_string_new (NULL);
  sqlite3_stmt *stmt = NULL;

  g_assert_cmpint (sqlite3_prepare_v2 (db, query, -1, &stmt, NULL), ==, SQLITE_OK);
  while (sqlite3_step (stmt) == SQLITE_ROW)
    {
      for (int c = 0; c < sqlite3_column_count (stmt); c++)
        g_string_append_printf (out, "%s%s", c > 0 ? "|" : "",
                                sqlite3_column_type (stmt, c) == SQLITE_NULL
                                  ? "NULL" : (const char *) sqlite3_column_text (stmt, c));
      g_string_append_c (out, '\n');
    }
  sqlite3_finalize (stmt);
  return g_string_free (g_steal_pointer (&out), FALSE);
}

static char *
pg_query (GkSql      *sql,
          const char *query)
{
  g_autoptr(GString) out = g_string_new (NULL);
  GkSqlStmt *stmt = pg_test_prepare (sql, query);

  while (pg->step (stmt) == GK_SQL_ROW)
    {
      for (int c = 0; c < pg->column_count (stmt); c++)
        {
          /* Floats as SQLite prints them (a whole one with ".0"). */
          if (pg->column_type (stmt, c) == GK_SQL_FLOAT)
            {
              g_autofree char *text = g_strdup_printf ("%.15g", pg->column_double (stmt, c));

              g_string_append_printf (out, "%s%s%s", c > 0 ? "|" : "", text,
                                      strpbrk (text, ".e") == NULL ? ".0" : "");
            }
          else
            g_string_append_printf (out, "%s%s", c > 0 ? "|" : "",
                                    pg->column_type (stmt, c) == GK_SQL_NULL
                                      ? "NULL" : pg->column_text (stmt, c));
        }
      g_string_append_c (out, '\n');
    }
  g_assert_cmpint (pg->errcode (sql), ==, GK_SQL_OK);
  pg->finalize (stmt);
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* The triggers do the same on both: a usage row deleted after it was
 * folded leaves every sum (but not while retention prunes), and the audit
 * log refuses edits and deletions as a constraint error. */
static void
test_same_triggers (Fixture       *f,
                    gconstpointer  data)
{
  static const char *const setup[] = {
    "INSERT INTO gemini_api_keys (id, uuid, name, created_at, updated_at)"
    " VALUES (1, 'u1', 'one', 0, 0)",
    "INSERT INTO gemini_key_usage_log (id, key_id, model, tokens_used, cost_usd, status,"
    " user_id, latency_ms, created_at) VALUES"
    " (1, 1, 'm', 10, 0.5, 'SUCCESS', 'ann', 120, 1773576000),"
    " (2, 1, 'm', 20, 0.25, 'SUCCESS', 'ann', 130, 1773576100),"
    " (3, 1, 'n', 5, 0.125, 'ERROR', 'bob', 0, 1773576200),"
    " (4, 1, 'm', 7, 1.0, 'SUCCESS', 'ann', 90, 1773576300)",
    "INSERT INTO usage_rollup_total VALUES (1773576000, 4, 3, 1.875)",
    "INSERT INTO usage_rollup_model VALUES (900, 1773576000, 'm', 3, 37, 1.75),"
    " (900, 1773576000, 'n', 1, 5, 0.125), (86400, 1773532800, 'm', 3, 37, 1.75),"
    " (86400, 1773532800, 'n', 1, 5, 0.125)",
    "INSERT INTO usage_rollup_user VALUES (900, 1773576000, 'ann', 3, 37, 1.75),"
    " (900, 1773576000, 'bob', 1, 5, 0.125), (86400, 1773532800, 'ann', 3, 37, 1.75),"
    " (86400, 1773532800, 'bob', 1, 5, 0.125)",
    "INSERT INTO usage_rollup_facet VALUES (1773576000, 1, 'SUCCESS', 'm', 'ann', 3, 3, 37, 1.75),"
    " (1773576000, 1, 'ERROR', 'n', 'bob', 1, 0, 5, 0.125)",
    "INSERT INTO usage_rollup_latency VALUES (900, 1773576000, 1, 0, 1),"
    " (900, 1773576000, 1, 1, 2), (86400, 1773532800, 1, 0, 1), (86400, 1773532800, 1, 1, 2)",
    "INSERT INTO usage_rollup_key VALUES (900, 1773576000, 1, 'SUCCESS', 3, 37, 1.75),"
    " (900, 1773576000, 1, 'ERROR', 1, 5, 0.125), (86400, 1773532800, 1, 'SUCCESS', 3, 37, 1.75),"
    " (86400, 1773532800, 1, 'ERROR', 1, 5, 0.125)",
    "UPDATE meta SET value = '3' WHERE key = '" GK_ROLLUP_META_MAX_ID "'",
    /* Row 4 was not folded (id above the mark): deleting it changes nothing. */
    "DELETE FROM gemini_key_usage_log WHERE id IN (2, 3, 4)",
    "INSERT INTO meta (key, value) VALUES ('" GK_ROLLUP_META_PRUNING "', '1')",
    "DELETE FROM gemini_key_usage_log WHERE id = 1",
    "INSERT INTO audit_log (created_at, actor, action) VALUES (1, 'me', 'test')",
  };
  static const char *const refused[] = {
    "UPDATE audit_log SET actor = 'you'",
    "DELETE FROM audit_log",
  };
  static const char *const queries[] = {
    "SELECT start, requests, successes, cost_usd FROM usage_rollup_total ORDER BY 1",
    "SELECT span, start, model, requests, tokens, cost_usd FROM usage_rollup_model ORDER BY 1, 2, 3",
    "SELECT span, start, user_id, requests, tokens, cost_usd FROM usage_rollup_user ORDER BY 1, 2, 3",
    "SELECT start, key_id, status, model, user_id, requests, successes, tokens, cost_usd"
    " FROM usage_rollup_facet ORDER BY 1, 2, 3",
    "SELECT span, start, key_id, bucket, requests FROM usage_rollup_latency ORDER BY 1, 2, 3, 4",
    "SELECT span, start, key_id, status, requests, tokens, cost_usd FROM usage_rollup_key"
    " ORDER BY 1, 2, 3, 4",
    "SELECT count(*) FROM gemini_key_usage_log",
    "SELECT actor, action FROM audit_log",
  };
  sqlite3 *db = NULL;

  if (f->sql == NULL)
    return;
  migrate_pg (f->sql);
  g_assert_cmpint (sqlite3_open_v2 (f->sqlite_path, &db, SQLITE_OPEN_READWRITE, NULL),
                   ==, SQLITE_OK);

  for (guint i = 0; i < G_N_ELEMENTS (setup); i++)
    {
      char *err = NULL;

      if (sqlite3_exec (db, setup[i], NULL, NULL, &err) != SQLITE_OK)
        g_error ("SQLite: “%s” failed: %s", setup[i], err);
      pg_test_exec (f->sql, setup[i]);
    }
  for (guint i = 0; i < G_N_ELEMENTS (refused); i++)
    {
      g_assert_cmpint (sqlite3_exec (db, refused[i], NULL, NULL, NULL) & 0xff, ==,
                       SQLITE_CONSTRAINT);
      g_assert_false (pg->exec (f->sql, refused[i]));
      g_assert_cmpint (pg->errcode (f->sql), ==, GK_SQL_ERR_CONSTRAINT);
      g_assert_nonnull (strstr (pg->errmsg (f->sql), "append-only"));
    }
  for (guint i = 0; i < G_N_ELEMENTS (queries); i++)
    {
      g_autofree char *a = sqlite_query (db, queries[i]);
      g_autofree char *b = pg_query (f->sql, queries[i]);

      g_test_message ("%s\n%s", queries[i], b);
      g_assert_cmpstr (b, ==, a);
    }
  sqlite3_close (db);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/pg-schema/same-schema", test_same_schema);
  ADD ("/pg-schema/concurrent-migrations", test_concurrent_migrations);
  ADD ("/pg-schema/database-open", test_database_open);
  ADD ("/pg-schema/core-on-postgresql", test_core_on_postgresql);
  ADD ("/pg-schema/comparison-sees-differences", test_comparison_sees_differences);
  ADD ("/pg-schema/same-triggers", test_same_triggers);
#undef ADD
  return g_test_run ();
}
