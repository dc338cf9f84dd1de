/* hardening-util.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#define _GNU_SOURCE
#include "config.h"

#include <string.h>

#include "gk-database-private.h"
#include "hardening-util.h"

char *
hardening_sibling_path (const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *self = g_file_read_link ("/proc/self/exe", &error);
  g_autofree char *dir = NULL;

  g_assert_no_error (error);
  dir = g_path_get_dirname (self);
  return g_build_filename (dir, name, NULL);
}

char *
hardening_make_db (guint   n_keys,
                   gint64 *ids)
{
  g_autoptr(GkClock) clock = gk_clock_new_fixed (GK_TEST_EPOCH);
  g_autoptr(GkDatabase) db = gk_test_open_db (clock);
  g_autoptr(GBytes) master = gk_test_master_key ();
  g_autoptr(GkKeyStore) store = gk_key_store_new (db, master);

  for (guint i = 0; i < n_keys; i++)
    {
      g_autofree char *name = g_strdup_printf ("key-%u", i);
      gint64 id = gk_test_add_key (store, name, 5);

      if (ids != NULL)
        ids[i] = id;
    }
  return g_strdup (gk_database_get_path (db));
}

gboolean
hardening_usage_exists (GkDatabase *db,
                        gint64      usage_id)
{
  g_autoptr(GError) error = NULL;
  GkSqlStmt *stmt;
  gboolean found;

  gk_database_lock (db);
  stmt = gk_database_prepare (db, "SELECT 1 FROM gemini_key_usage_log WHERE id = ?1", &error);
  g_assert_no_error (error);
  gk_sql_bind_int64 (stmt, 1, usage_id);
  found = gk_sql_step (stmt) == GK_SQL_ROW;
  gk_sql_reset (stmt);
  gk_database_unlock (db);
  return found;
}

gint64
hardening_query_int (GkDatabase *db,
                     const char *sql)
{
  g_autoptr(GError) error = NULL;
  GkSqlStmt *stmt;
  gint64 value = -1;

  gk_database_lock (db);
  stmt = gk_database_prepare (db, sql, &error);
  g_assert_no_error (error);
  if (gk_sql_step (stmt) == GK_SQL_ROW)
    value = gk_sql_column_int64 (stmt, 0);
  gk_sql_reset (stmt);
  gk_database_unlock (db);
  return value;
}

char **
hardening_fresh_schema (int *version)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = gk_test_db_path ();
  g_autofree char *dir = g_path_get_dirname (path);
  char **created = NULL;

  {
    g_autoptr(GkDatabase) db = gk_database_new (path, NULL, &error);

    g_assert_no_error (error);
    g_assert_true (gk_database_migrate (db, &created, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (g_strv_length (created), >, 0);
    *version = gk_database_get_schema_version (db);
  }
  gk_test_rm_rf (dir);
  return created;
}

gboolean
hardening_has_tables (GkDatabase  *db,
                      char       **tables)
{
  for (guint i = 0; tables[i] != NULL; i++)
    {
      g_autofree char *sql = g_strdup_printf ("SELECT COUNT (*) FROM sqlite_master"
                                              " WHERE type = 'table' AND name = '%s'",
                                              tables[i]);

      if (hardening_query_int (db, sql) != 1)
        return FALSE;
    }
  return TRUE;
}

gboolean
hardening_tree_contains (const char *dir,
                         const char *needle)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  if (d == NULL)
    return FALSE;
  while ((name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);
      g_autofree char *contents = NULL;
      gsize len = 0;

      if (g_file_test (path, G_FILE_TEST_IS_DIR))
        {
          if (hardening_tree_contains (path, needle))
            return TRUE;
          continue;
        }
      if (g_file_get_contents (path, &contents, &len, NULL)
          && memmem (contents, len, needle, strlen (needle)) != NULL)
        {
          g_test_message ("found in %s", path);
          return TRUE;
        }
    }
  return FALSE;
}
