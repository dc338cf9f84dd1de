/* gk-audit.c: the audit log.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <string.h>

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

/* What a placeholder of a phrase holds. */
typedef enum
{
  ARG_NONE,
  ARG_VALUE,   /* a gk_audit_value_*(): “text”, a number or an amount, a keyword */
  ARG_QUOTED,  /* “text” */
  ARG_COUNT,   /* digits */
} ArgKind;

#define ACTION(action) (1u << (action))

/* A field of a key, set when it is added and changed when it is edited. */
#define FIELD(phrase, set, change) \
  [phrase] = { set, ACTION (GK_AUDIT_KEY_ADD), { ARG_VALUE, ARG_NONE } }, \
  [phrase##_CHANGE] = { change, ACTION (GK_AUDIT_KEY_EDIT), { ARG_VALUE, ARG_VALUE } }

static const struct
{
  const char *text;
  guint       actions;   /* the actions whose summaries hold it */
  ArgKind     args[2];
} phrases[GK_AUDIT_N_PHRASES] = {
  /* TRANSLATORS: the audit log tells what changed with the phrases below,
   * joined by "; ". Each %s is a value shown as it is: a name in quotes, a
   * number, an amount, or one of "none", "unlimited", "yes" and "no". */
  FIELD (GK_AUDIT_PHRASE_NAME, N_("name %s"), N_("name %s → %s")),
  FIELD (GK_AUDIT_PHRASE_PRIORITY, N_("priority %s"), N_("priority %s → %s")),
  FIELD (GK_AUDIT_PHRASE_PROJECT, N_("project %s"), N_("project %s → %s")),
  FIELD (GK_AUDIT_PHRASE_MONTHLY_BUDGET, N_("monthly budget %s"), N_("monthly budget %s → %s")),
  FIELD (GK_AUDIT_PHRASE_DEFAULT, N_("default %s"), N_("default %s → %s")),
  FIELD (GK_AUDIT_PHRASE_MONTHLY_TOKENS, N_("monthly tokens %s"), N_("monthly tokens %s → %s")),
  FIELD (GK_AUDIT_PHRASE_DAILY_TOKENS, N_("daily tokens %s"), N_("daily tokens %s → %s")),
  FIELD (GK_AUDIT_PHRASE_MINUTE_TOKENS, N_("tokens per minute %s"),
         N_("tokens per minute %s → %s")),
  FIELD (GK_AUDIT_PHRASE_DAILY_REQUESTS, N_("requests per day %s"),
         N_("requests per day %s → %s")),
  FIELD (GK_AUDIT_PHRASE_MINUTE_REQUESTS, N_("requests per minute %s"),
         N_("requests per minute %s → %s")),
  [GK_AUDIT_PHRASE_TURNED_OFF] = { N_("turned off"), ACTION (GK_AUDIT_KEY_ADD) },
  [GK_AUDIT_PHRASE_KEY_REPLACED] = { N_("key replaced"), ACTION (GK_AUDIT_KEY_EDIT) },
  [GK_AUDIT_PHRASE_UNTIL_DAILY_RESET] = { N_("until the daily reset"), ACTION (GK_AUDIT_KEY_SKIP) },
  /* TRANSLATORS: %s is a key's name, in quotes. */
  [GK_AUDIT_PHRASE_NEXT_KEY] = { N_("next key %s"), ACTION (GK_AUDIT_KEY_SKIP),
                                 { ARG_QUOTED, ARG_NONE } },
  [GK_AUDIT_PHRASE_NO_KEY_LEFT] = { N_("no key left"), ACTION (GK_AUDIT_KEY_SKIP) },
  /* TRANSLATORS: the first %s is a number, the second a file's name in quotes. */
  [GK_AUDIT_PHRASE_ROWS_TO_FILE] = { N_("%s rows to %s"), ACTION (GK_AUDIT_EXPORT),
                                     { ARG_COUNT, ARG_QUOTED } },
  /* TRANSLATORS: %s is a number. */
  [GK_AUDIT_PHRASE_ROWS_TO_STANDARD_OUTPUT] = { N_("%s rows to standard output"),
                                                ACTION (GK_AUDIT_EXPORT),
                                                { ARG_COUNT, ARG_NONE } },
  [GK_AUDIT_PHRASE_INTO_KEYRING] = { N_("into the keyring"), ACTION (GK_AUDIT_MASTER_KEY_IMPORT) },
  [GK_AUDIT_PHRASE_INTO_KEY_FILE] = { N_("into the master key file"),
                                      ACTION (GK_AUDIT_MASTER_KEY_IMPORT) },
};

#define VALUE_NONE      "none"
#define VALUE_UNLIMITED "unlimited"
#define VALUE_YES       "yes"
#define VALUE_NO        "no"

/* The words a value may be, translated in the context "audit value". */
static const char *const keywords[] = {
  NC_("audit value", "none"),
  NC_("audit value", "unlimited"),
  NC_("audit value", "yes"),
  NC_("audit value", "no"),
};

/* Targets that are fixed words, translated in the context "audit target"
 * (a key's or a token's name is shown as it is). */
static const struct
{
  GkAuditAction  action;
  const char    *text;
} targets[] = {
  { GK_AUDIT_QUOTA_RESET, NC_("audit target", "all quotas") },
  { GK_AUDIT_QUOTA_RESET, NC_("audit target", "MONTHLY") },
  { GK_AUDIT_QUOTA_RESET, NC_("audit target", "DAILY") },
  { GK_AUDIT_QUOTA_RESET, NC_("audit target", "PER_MINUTE") },
  { GK_AUDIT_EXPORT, NC_("audit target", "usage") },
  { GK_AUDIT_EXPORT, NC_("audit target", "rotations") },
  { GK_AUDIT_EXPORT, NC_("audit target", "keys") },
  { GK_AUDIT_EXPORT, NC_("audit target", "audit") },
};

#define SEPARATOR    "; "
#define QUOTE_OPEN   "“"
#define QUOTE_CLOSE  "”"
/* Longer summaries are shown as stored: reading them costs more than they
 * are worth. */
#define RENDER_MAX_LEN 4096

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

/* Summaries */

/* Appends @format with its "%s" (or, in a translation, "%1$s" and "%2$s")
 * replaced by @args. Not printf: a translation cannot crash it. */
static void
append_filled (GString          *out,
               const char       *format,
               const char *const args[2])
{
  guint next = 0;

  for (const char *f = format; *f != '\0'; f++)
    {
      const char *arg = NULL;

      if (f[0] != '%')
        {
          g_string_append_c (out, *f);
          continue;
        }
      if (f[1] == 's')
        {
          arg = next < 2 ? args[next++] : NULL;
          f++;
        }
      else if ((f[1] == '1' || f[1] == '2') && f[2] == '$' && f[3] == 's')
        {
          arg = args[f[1] - '1'];
          f += 3;
        }
      else
        {
          g_string_append_c (out, '%');
          if (f[1] == '%')
            f++;
          continue;
        }
      if (arg != NULL)
        g_string_append (out, arg);
    }
}

void
gk_audit_summary_add (GString       *summary,
                      GkAuditPhrase  phrase,
                      const char    *first,
                      const char    *second)
{
  const char *const args[2] = { first, second };

  g_return_if_fail (summary != NULL);
  g_return_if_fail (phrase < GK_AUDIT_N_PHRASES);

  if (summary->len > 0)
    g_string_append (summary, SEPARATOR);
  append_filled (summary, phrases[phrase].text, args);
}

char *
gk_audit_value_text (const char *text)
{
  if (text == NULL || *text == '\0')
    return g_strdup (VALUE_NONE);
  return g_strconcat (QUOTE_OPEN, text, QUOTE_CLOSE, NULL);
}

char *
gk_audit_value_money (double usd)
{
  return usd < 0 ? g_strdup (VALUE_NONE) : g_strdup_printf ("$%.2f", usd);
}

char *
gk_audit_value_limit (gint64 limit)
{
  return limit == 0 ? g_strdup (VALUE_UNLIMITED) : g_strdup_printf ("%" G_GINT64_FORMAT, limit);
}

const char *
gk_audit_value_flag (gboolean flag)
{
  return flag ? VALUE_YES : VALUE_NO;
}

/* Reading a summary back into its phrases. Every way of reading the whole
 * text is counted (up to two): a name may hold a quote, "; " or a phrase,
 * and only a text read in exactly one way is translated. */

typedef struct
{
  GkAuditPhrase phrase;
  gsize         start[2];
  gsize         len[2];
} Part;

typedef struct
{
  const char *text;
  gsize       len;
  guint       action_bit;
  gint8      *memo;     /* readings of the text from each offset: -1 unknown, 0, 1, 2 or more */
  GArray     *stack;    /* Part: the reading being tried */
  GArray     *result;   /* Part: the first complete reading */
} Reader;

static guint read_from (Reader *reader, gsize pos);

static gboolean
has_text_at (Reader     *reader,
             gsize       pos,
             const char *text)
{
  gsize len = strlen (text);

  return pos + len <= reader->len && memcmp (reader->text + pos, text, len) == 0;
}

/* Where a value of @kind starting at @pos may end. */
static void
arg_ends (Reader  *reader,
          ArgKind  kind,
          gsize    pos,
          GArray  *ends)
{
  const char *digits = kind == ARG_COUNT ? "0123456789" : "0123456789$.,-";
  gsize end = pos;

  if (kind == ARG_VALUE || kind == ARG_QUOTED)
    {
      if (has_text_at (reader, pos, QUOTE_OPEN))
        for (gsize at = pos + strlen (QUOTE_OPEN); at < reader->len; at++)
          if (has_text_at (reader, at, QUOTE_CLOSE))
            {
              gsize after = at + strlen (QUOTE_CLOSE);

              g_array_append_val (ends, after);
            }
      if (kind == ARG_QUOTED)
        return;
      for (guint i = 0; i < G_N_ELEMENTS (keywords); i++)
        if (has_text_at (reader, pos, keywords[i]))
          {
            gsize after = pos + strlen (keywords[i]);

            g_array_append_val (ends, after);
          }
    }
  while (end < reader->len && strchr (digits, reader->text[end]) != NULL)
    end++;
  if (end > pos)
    g_array_append_val (ends, end);
}

/* A phrase read up to @end: the rest is nothing, or "; " and more. */
static guint
phrase_read (Reader     *reader,
             const Part *part,
             gsize       end)
{
  guint count = 0;

  g_array_append_val (reader->stack, *part);
  if (end == reader->len)
    {
      count = 1;
      if (reader->result->len == 0)
        g_array_append_vals (reader->result, reader->stack->data, reader->stack->len);
    }
  else if (has_text_at (reader, end, SEPARATOR))
    count = read_from (reader, end + strlen (SEPARATOR));
  g_array_set_size (reader->stack, reader->stack->len - 1);
  return count;
}

/* The readings of the text from @pos that start with the rest of a phrase,
 * @format, whose placeholder @arg comes next. */
static guint
read_phrase (Reader     *reader,
             const char *format,
             gsize       pos,
             Part       *part,
             guint       arg)
{
  g_autoptr(GArray) ends = NULL;
  guint count = 0;

  for (; *format != '\0' && !(format[0] == '%' && format[1] == 's'); format++, pos++)
    if (pos >= reader->len || reader->text[pos] != *format)
      return 0;
  if (*format == '\0')
    return phrase_read (reader, part, pos);

  ends = g_array_new (FALSE, FALSE, sizeof (gsize));
  arg_ends (reader, phrases[part->phrase].args[arg], pos, ends);
  for (guint i = 0; i < ends->len && count < 2; i++)
    {
      part->start[arg] = pos;
      part->len[arg] = g_array_index (ends, gsize, i) - pos;
      count += read_phrase (reader, format + 2, g_array_index (ends, gsize, i), part, arg + 1);
    }
  return count;
}

static guint
read_from (Reader *reader,
           gsize   pos)
{
  guint count = 0;

  if (reader->memo[pos] >= 0)
    return reader->memo[pos];
  for (guint i = 0; i < GK_AUDIT_N_PHRASES && count < 2; i++)
    {
      Part part = { i, { 0, 0 }, { 0, 0 } };

      if (phrases[i].actions & reader->action_bit)
        count += read_phrase (reader, phrases[i].text, pos, &part, 0);
    }
  reader->memo[pos] = (gint8) MIN (count, 2);
  return count;
}

/* A value for people: a keyword translated, anything else as it is. */
static char *
render_value (const char *text,
              gsize       len)
{
  for (guint i = 0; i < G_N_ELEMENTS (keywords); i++)
    if (strlen (keywords[i]) == len && memcmp (text, keywords[i], len) == 0)
      return g_strdup (g_dpgettext2 (NULL, "audit value", keywords[i]));
  return g_strndup (text, len);
}

char *
gk_audit_render_summary (GkAuditAction  action,
                         const char    *summary)
{
  g_autofree gint8 *memo = NULL;
  g_autoptr(GArray) stack = NULL;
  g_autoptr(GArray) result = NULL;
  GString *out;
  Reader reader;

  g_return_val_if_fail (action < GK_AUDIT_N_ACTIONS, NULL);

  if (summary == NULL || *summary == '\0' || strlen (summary) > RENDER_MAX_LEN)
    return g_strdup (summary != NULL ? summary : "");

  reader.text = summary;
  reader.len = strlen (summary);
  reader.action_bit = ACTION (action);
  reader.memo = memo = g_new (gint8, reader.len + 1);
  memset (memo, -1, reader.len + 1);
  reader.stack = stack = g_array_new (FALSE, FALSE, sizeof (Part));
  reader.result = result = g_array_new (FALSE, FALSE, sizeof (Part));
  if (read_from (&reader, 0) != 1)
    return g_strdup (summary);

  out = g_string_new (NULL);
  for (guint i = 0; i < result->len; i++)
    {
      const Part *part = &g_array_index (result, Part, i);
      g_autofree char *first = NULL;
      g_autofree char *second = NULL;
      const char *args[2];

      if (phrases[part->phrase].args[0] != ARG_NONE)
        first = render_value (summary + part->start[0], part->len[0]);
      if (phrases[part->phrase].args[1] != ARG_NONE)
        second = render_value (summary + part->start[1], part->len[1]);
      args[0] = first;
      args[1] = second;
      if (i > 0)
        g_string_append (out, SEPARATOR);
      append_filled (out, _(phrases[part->phrase].text), args);
    }
  return g_string_free (out, FALSE);
}

char *
gk_audit_render_target (GkAuditAction  action,
                        const char    *target)
{
  g_return_val_if_fail (action < GK_AUDIT_N_ACTIONS, NULL);

  for (guint i = 0; target != NULL && i < G_N_ELEMENTS (targets); i++)
    if (targets[i].action == action && g_str_equal (targets[i].text, target))
      return g_strdup (g_dpgettext2 (NULL, "audit target", target));
  return g_strdup (target != NULL ? target : "");
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
  g_autofree char *count = g_strdup_printf ("%" G_GUINT64_FORMAT, n_rows);
  g_autofree char *file = NULL;
  g_autoptr(GString) summary = g_string_new (NULL);

  g_return_val_if_fail (table != NULL && path != NULL, FALSE);

  if (g_str_equal (path, "-"))
    gk_audit_summary_add (summary, GK_AUDIT_PHRASE_ROWS_TO_STANDARD_OUTPUT, count, NULL);
  else
    {
      file = gk_audit_value_text (path);
      gk_audit_summary_add (summary, GK_AUDIT_PHRASE_ROWS_TO_FILE, count, file);
    }
  return gk_audit_record (db, GK_AUDIT_EXPORT, 0, table, summary->str, error);
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
