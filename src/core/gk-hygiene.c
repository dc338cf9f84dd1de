/* gk-hygiene.c: keys worth deleting, the master key's age.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "gk-database-private.h"
#include "gk-hygiene.h"
#include "gk-quotas.h"

#define DAY_SECONDS       86400
#define MAX_UNUSED_DAYS   3650

void
gk_stale_key_free (GkStaleKey *key)
{
  if (key == NULL)
    return;
  g_free (key->name);
  g_free (key);
}

guint
gk_hygiene_get_unused_days (GkDatabase *db)
{
  int days = gk_database_get_setting_int (db, GK_SETTING_UNUSED_KEY_DAYS,
                                          GK_DEFAULT_UNUSED_KEY_DAYS);

  return days >= 1 && days <= MAX_UNUSED_DAYS ? (guint) days : GK_DEFAULT_UNUSED_KEY_DAYS;
}

gboolean
gk_hygiene_set_unused_days (GkDatabase  *db,
                            guint        days,
                            GError     **error)
{
  g_autofree char *value = NULL;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);

  if (days < 1 || days > MAX_UNUSED_DAYS)
    {
      g_set_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_FAILED,
                   _("The number of days must be from 1 to %d."), MAX_UNUSED_DAYS);
      return FALSE;
    }
  value = g_strdup_printf ("%u", days);
  return gk_database_set_setting (db, GK_SETTING_UNUSED_KEY_DAYS, value, error);
}

GPtrArray *
gk_hygiene_stale_keys (GkDatabase  *db,
                       GError     **error)
{
  g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func ((GDestroyNotify) gk_stale_key_free);
  gint64 now, cutoff;
  GkSqlStmt *stmt;
  int rc;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);

  now = gk_database_now (db);
  cutoff = now - (gint64) gk_hygiene_get_unused_days (db) * DAY_SECONDS;

  gk_database_lock (db);
  stmt = gk_database_prepare (db,
                              "SELECT id, name, status = 'INVALID', coalesce (last_used_at, 0),"
                              " coalesce (nullif (last_used_at, 0), created_at) AS seen"
                              " FROM gemini_api_keys"
                              " WHERE deleted_at IS NULL AND (status = 'INVALID' OR"
                              "  coalesce (nullif (last_used_at, 0), created_at) < ?1)"
                              " ORDER BY status = 'INVALID' DESC, seen, id",
                              error);
  if (stmt == NULL)
    {
      gk_database_unlock (db);
      return NULL;
    }
  gk_sql_bind_int64 (stmt, 1, cutoff);
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      GkStaleKey *key = g_new0 (GkStaleKey, 1);

      key->key_id = gk_sql_column_int64 (stmt, 0);
      key->name = g_strdup (gk_sql_column_text (stmt, 1));
      key->reason = gk_sql_column_int64 (stmt, 2) ? GK_STALE_REJECTED : GK_STALE_UNUSED;
      key->last_used_at = gk_sql_column_int64 (stmt, 3);
      key->idle_days = MAX (0, now - gk_sql_column_int64 (stmt, 4)) / DAY_SECONDS;
      g_ptr_array_add (keys, key);
    }
  if (rc != GK_SQL_DONE)
    gk_database_set_error (db, error, _("Cannot read the keys"));
  gk_sql_reset (stmt);
  gk_database_unlock (db);
  if (rc != GK_SQL_DONE)
    return NULL;
  return g_steal_pointer (&keys);
}

char *
gk_stale_key_describe (const GkStaleKey *key)
{
  g_return_val_if_fail (key != NULL, NULL);

  if (key->reason == GK_STALE_REJECTED)
    return g_strdup (_("Rejected by Google"));
  /* Days fit an int: the clock cannot be 6 million years on. */
  if (key->last_used_at == 0)
    return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "Never used, added %d day ago",
                                         "Never used, added %d days ago",
                                         (gulong) key->idle_days),
                            (int) key->idle_days);
  return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "Not used for %d day",
                                       "Not used for %d days", (gulong) key->idle_days),
                          (int) key->idle_days);
}

gboolean
gk_hygiene_master_key_age (GkDatabase      *db,
                           GkMasterKeyAge  *age,
                           GError         **error)
{
  g_autofree char *recorded = NULL;
  gint64 now;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (age != NULL, FALSE);

  memset (age, 0, sizeof *age);
  now = gk_database_now (db);
  recorded = gk_database_get_meta (db, GK_META_MASTER_KEY_CREATED);
  if (recorded != NULL)
    age->created_at = g_ascii_strtoll (recorded, NULL, 10);
  else
    {
      GkSqlStmt *stmt;
      int rc;

      gk_database_lock (db);
      stmt = gk_database_prepare (db, "SELECT coalesce (min (created_at), 0) FROM gemini_api_keys",
                                  error);
      if (stmt == NULL)
        {
          gk_database_unlock (db);
          return FALSE;
        }
      rc = gk_sql_step (stmt);
      if (rc == GK_SQL_ROW)
        age->created_at = gk_sql_column_int64 (stmt, 0);
      else
        gk_database_set_error (db, error, _("Cannot read the keys"));
      gk_sql_reset (stmt);
      gk_database_unlock (db);
      if (rc != GK_SQL_ROW)
        return FALSE;
      age->estimated = age->created_at > 0;
    }
  if (age->created_at > 0)
    {
      age->age_days = MAX (0, now - age->created_at) / DAY_SECONDS;
      age->rotate_due = age->age_days >= GK_MASTER_KEY_MAX_AGE_DAYS;
    }
  return TRUE;
}

gboolean
gk_hygiene_mark_master_key_created (GkDatabase  *db,
                                    GError     **error)
{
  g_autofree char *now = NULL;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);

  now = g_strdup_printf ("%" G_GINT64_FORMAT, gk_database_now (db));
  return gk_database_set_meta (db, GK_META_MASTER_KEY_CREATED, now, error);
}
