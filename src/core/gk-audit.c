/* gk-audit.c: the audit log.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-audit.h"
#include "gk-database-private.h"

static const struct
{
  const char *name;
  const char *label;
} actions[GK_AUDIT_N_ACTIONS] = {
  [GK_AUDIT_KEY_ADD]           = { "key_add",           N_("Key added") },
  [GK_AUDIT_KEY_EDIT]          = { "key_edit",          N_("Key edited") },
  [GK_AUDIT_KEY_DELETE]        = { "key_delete",        N_("Key deleted") },
  [GK_AUDIT_KEY_ENABLE]        = { "key_enable",        N_("Key turned on") },
  [GK_AUDIT_KEY_DISABLE]       = { "key_disable",       N_("Key turned off") },
  [GK_AUDIT_KEY_SKIP]          = { "key_skip",          N_("Key skipped") },
  [GK_AUDIT_KEY_REVEAL]        = { "key_reveal",        N_("Key revealed") },
  [GK_AUDIT_KEY_COPY]          = { "key_copy",          N_("Key copied") },
  [GK_AUDIT_EXPORT]            = { "export",            N_("Exported") },
  [GK_AUDIT_QUOTA_RESET]       = { "quota_reset",       N_("Quotas reset") },
  [GK_AUDIT_SETTING_CHANGE]    = { "setting_change",    N_("Setting changed") },
  [GK_AUDIT_TOKEN_CREATE]      = { "token_create",      N_("Token created") },
  [GK_AUDIT_TOKEN_REVOKE]      = { "token_revoke",      N_("Token revoked") },
  [GK_AUDIT_MASTER_KEY_EXPORT] = { "master_key_export", N_("Master key exported") },
  [GK_AUDIT_MASTER_KEY_IMPORT] = { "master_key_import", N_("Master key imported") },
  [GK_AUDIT_MASTER_KEY_ROTATE] = { "master_key_rotate", N_("Master key rotated") },
};

/* The calling thread's actor scopes (a GQueue of strings, innermost at the
 * head); freed with the thread. */
static void
actor_stack_free (gpointer data)
{
  g_queue_free_full (data, g_free);
}

static GPrivate actor_stack = G_PRIVATE_INIT (actor_stack_free);

void
gk_audit_row_free (GkAuditRow *row)
{
  if (row == NULL)
    return;
  g_free (row->actor);
  g_free (row->target);
  g_free (row->summary);
  g_free (row);
}

const char *
gk_audit_action_to_string (GkAuditAction action)
{
  g_return_val_if_fail (action < GK_AUDIT_N_ACTIONS, NULL);
  return actions[action].name;
}

int
gk_audit_action_from_string (const char *text)
{
  for (int i = 0; text != NULL && i < GK_AUDIT_N_ACTIONS; i++)
    if (g_str_equal (text, actions[i].name))
      return i;
  return -1;
}

const char *
gk_audit_action_get_label (GkAuditAction action)
{
  g_return_val_if_fail (action < GK_AUDIT_N_ACTIONS, NULL);
  return _(actions[action].label);
}

void
gk_audit_push_actor (const char *actor)
{
  GQueue *stack = g_private_get (&actor_stack);

  g_return_if_fail (actor != NULL);

  if (stack == NULL)
    {
      stack = g_queue_new ();
      g_private_set (&actor_stack, stack);
    }
  g_queue_push_head (stack, g_strdup (actor));
}

void
gk_audit_pop_actor (void)
{
  GQueue *stack = g_private_get (&actor_stack);

  g_return_if_fail (stack != NULL && !g_queue_is_empty (stack));
  g_free (g_queue_pop_head (stack));
}

const char *
gk_audit_get_actor (void)
{
  GQueue *stack = g_private_get (&actor_stack);

  if (stack != NULL && !g_queue_is_empty (stack))
    return g_queue_peek_head (stack);
  return g_get_user_name ();
}

static gboolean
is_key_action (GkAuditAction action)
{
  return action <= GK_AUDIT_KEY_COPY;
}

/**
 * gk_audit_record:
 *
 * Appends one row for gk_audit_get_actor(). Callers that change data call
 * it inside their own transaction, so the action and its row commit
 * together.
 */
gboolean
gk_audit_record (GkDatabase     *db,
                 GkAuditAction   action,
                 gint64          target_id,
                 const char     *target,
                 const char     *summary,
                 GError        **error)
{
  GkSqlStmt *stmt;
  int rc;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (action < GK_AUDIT_N_ACTIONS, FALSE);

  gk_database_lock (db);
  stmt = gk_database_prepare (db,
                              "INSERT INTO audit_log (created_at, actor, action, target_id,"
                              " target, summary) VALUES (?1, ?2, ?3, ?4,"
                              " coalesce (?5, CASE WHEN ?7 THEN"
                              "  (SELECT name FROM gemini_api_keys WHERE id = ?4) END), ?6)",
                              error);
  if (stmt == NULL)
    {
      gk_database_unlock (db);
      return FALSE;
    }
  gk_sql_bind_int64 (stmt, 1, gk_database_now (db));
  gk_sql_bind_text (stmt, 2, gk_audit_get_actor (), -1);
  gk_sql_bind_text (stmt, 3, actions[action].name, -1);
  if (target_id > 0)
    gk_sql_bind_int64 (stmt, 4, target_id);
  else
    gk_sql_bind_null (stmt, 4);
  if (target != NULL)
    gk_sql_bind_text (stmt, 5, target, -1);
  if (summary != NULL && *summary != '\0')
    gk_sql_bind_text (stmt, 6, summary, -1);
  gk_sql_bind_int64 (stmt, 7, is_key_action (action));
  rc = gk_sql_step (stmt);
  if (rc != GK_SQL_DONE)
    gk_database_set_error (db, error, _("Cannot write the audit log"));
  gk_sql_reset (stmt);
  gk_database_unlock (db);
  return rc == GK_SQL_DONE;
}

gboolean
gk_audit_record_export (GkDatabase  *db,
                        const char  *table,
                        const char  *path,
                        guint64      n_rows,
                        GError     **error)
{
  g_autofree char *summary = NULL;

  g_return_val_if_fail (table != NULL && path != NULL, FALSE);

  summary = g_strdup_printf ("%" G_GUINT64_FORMAT " rows to %s", n_rows,
                             g_str_equal (path, "-") ? "standard output" : path);
  return gk_audit_record (db, GK_AUDIT_EXPORT, 0, table, summary, error);
}

static char *
dup_text (GkSqlStmt    *stmt,
          int           column)
{
  return g_strdup (gk_sql_column_text (stmt, column));
}

GPtrArray *
gk_audit_list (GkDatabase  *db,
               guint        limit,
               guint        offset,
               GError     **error)
{
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) gk_audit_row_free);
  GkSqlStmt *stmt;
  int rc;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);

  gk_database_lock (db);
  stmt = gk_database_prepare (db,
                              "SELECT id, created_at, actor, action, coalesce (target_id, 0),"
                              " target, summary FROM audit_log ORDER BY id DESC"
                              " LIMIT ?1 OFFSET ?2",
                              error);
  if (stmt == NULL)
    {
      gk_database_unlock (db);
      return NULL;
    }
  gk_sql_bind_int64 (stmt, 1, limit);
  gk_sql_bind_int64 (stmt, 2, offset);
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      int action = gk_audit_action_from_string (gk_sql_column_text (stmt, 3));
      GkAuditRow *row;

      /* A row written by a newer version: skip what we cannot name. */
      if (action < 0)
        continue;
      row = g_new0 (GkAuditRow, 1);
      row->id = gk_sql_column_int64 (stmt, 0);
      row->created_at = gk_sql_column_int64 (stmt, 1);
      row->actor = dup_text (stmt, 2);
      row->action = action;
      row->target_id = gk_sql_column_int64 (stmt, 4);
      row->target = dup_text (stmt, 5);
      row->summary = dup_text (stmt, 6);
      g_ptr_array_add (rows, row);
    }
  if (rc != GK_SQL_DONE)
    gk_database_set_error (db, error, _("Cannot read the audit log"));
  gk_sql_reset (stmt);
  gk_database_unlock (db);
  if (rc != GK_SQL_DONE)
    return NULL;
  return g_steal_pointer (&rows);
}

gint64
gk_audit_count (GkDatabase  *db,
                GError     **error)
{
  GkSqlStmt *stmt;
  gint64 n = -1;

  g_return_val_if_fail (GK_IS_DATABASE (db), -1);

  gk_database_lock (db);
  stmt = gk_database_prepare (db, "SELECT count(*) FROM audit_log", error);
  if (stmt != NULL)
    {
      if (gk_sql_step (stmt) == GK_SQL_ROW)
        n = gk_sql_column_int64 (stmt, 0);
      else
        gk_database_set_error (db, error, _("Cannot read the audit log"));
      gk_sql_reset (stmt);
    }
  gk_database_unlock (db);
  return n;
}
