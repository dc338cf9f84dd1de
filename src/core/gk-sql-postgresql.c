/* gk-sql-postgresql.c: the store interface (gk-sql.h) over libpq, for a team
 * pool shared by several machines.
 *
 * Statements are prepared on the server once per connection (cached by
 * their text) and run with the extended protocol: parameters go as text,
 * typed by the server from their context (blobs as binary), results come
 * back as text and are parsed when read, so a caller written against
 * SQLite's API sees the types it expects. Every statement's rows are
 * fetched at once: callers step through one statement while running
 * others, which a streamed result would forbid.
 *
 * The "?" of a portable statement takes the server's type from its
 * context, as a literal would: "coalesce (?, 0)" is an integer (32 bits),
 * so a caller that needs 64 bits there casts (CAST (? AS BIGINT)).
 *
 * A connection that breaks is made again by the next call, outside a
 * transaction (see ensure_connection()).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "gk-sql.h"
#include "gk-sql-postgresql.h"

/* Type OIDs of the built-in types (pg_type.dat; stable across versions). */
#define BOOLOID    16
#define BYTEAOID   17
#define INT8OID    20
#define INT2OID    21
#define INT4OID    23
#define OIDOID     26
#define FLOAT4OID  700
#define FLOAT8OID  701
#define NUMERICOID 1700
#define TEXTOID    25

/* PostgreSQL accepts at most this many parameters in one statement. */
#define MAX_PARAMS 65535

#define CONNECT_TIMEOUT_S  "10"
#define KEEPALIVES_IDLE_S  "30"
#define KEEPALIVES_INTERVAL_S "10"
#define KEEPALIVES_COUNT   "3"
/* How long a statement waits for a lock before it fails as busy: SQLite's
 * busy timeout in GkDatabase. */
#define LOCK_TIMEOUT       "10s"

typedef struct
{
  struct _GkSqlBase base;
  PGconn     *conn;
  GHashTable *prepared;     /* rewritten SQL → PreparedInfo */
  guint       next_name;
  guint       generation;   /* bumped at each reconnection */
  gboolean    was_in_transaction;    /* when the current call began */
  gboolean    lost_in_transaction;   /* the connection broke inside one */
  char       *password;     /* to scrub from messages; wiped on close */
  GkSqlErr    errcode;
  char       *errmsg;
  gint64      changes;
} PgSql;

typedef struct
{
  char  *name;
  char  *text;         /* rewritten */
  int    n_params;
  Oid   *types;        /* n_params: TEXTOID for a number the text never uses, 0 */
  int    n_columns;    /* of its rows, -1 until known */
  guint  generation;   /* of the connection it was prepared on */
} PreparedInfo;

typedef struct
{
  struct _GkSqlStmtBase base;
  PreparedInfo *info;         /* owned by the connection's cache */
  char      **values;         /* bindings, n_params each */
  int        *lengths;
  int        *formats;
  PGresult   *result;
  int         row;            /* current row of result, -1 before the first */
  /* Per column of the current row: a decoded bytea (or a bool as "0"/"1"),
   * made on first access. */
  GBytes    **decoded;
  int         n_decoded;
} PgStmt;

#define PG_SQL(sql) ((PgSql *) (sql))
#define PG_STMT(stmt) ((PgStmt *) (stmt))

/* Placeholders ----------------------------------------------------------- */

static gboolean
is_ident_char (char c)
{
  return g_ascii_isalnum (c) || c == '_' || c == '$' || (guchar) c >= 0x80;
}

/* The end of a dollar-quote tag ("$$" or "$tag$") starting at @p, or NULL
 * when @p does not start one. */
static const char *
dollar_tag_end (const char *p)
{
  const char *q = p + 1;

  if (*q != '$' && !(g_ascii_isalpha (*q) || *q == '_' || (guchar) *q >= 0x80))
    return NULL;
  while (*q != '$')
    {
      if (!(g_ascii_isalnum (*q) || *q == '_' || (guchar) *q >= 0x80))
        return NULL;
      q++;
    }
  return q + 1;
}

/* Rewrites SQLite's "?" and "?N" placeholders to PostgreSQL's "$N" outside
 * string literals, quoted identifiers, dollar quotes and comments, numbering
 * a bare "?" as SQLite does (one more than the largest number so far).
 * Returns NULL for a placeholder number out of range. *@types receives,
 * for each number up to the largest, TEXTOID when the text never uses it
 * and 0 (the server infers it) otherwise: SQLite lets a statement skip a
 * number ("LIMIT ?2 OFFSET ?3", bound like its sibling with "?1"); the
 * server has to be told that parameter's type. */
static char *
rewrite_placeholders (const char  *sql,
                      int         *n_params,
                      Oid        **types)
{
  g_autoptr(GString) out = g_string_sized_new (strlen (sql) + 16);
  g_autoptr(GArray) used = g_array_new (FALSE, TRUE, sizeof (gboolean));
  const char *p = sql;
  int max = 0;

  while (*p != '\0')
    {
      const char *start = p;

      if (*p == '\'' || *p == '"')
        {
          char quote = *p;
          /* E'…' strings take backslash escapes. */
          gboolean escapes = quote == '\'' && p > sql && (p[-1] == 'E' || p[-1] == 'e')
                             && (p - 1 == sql || !is_ident_char (p[-2]));

          for (p++; *p != '\0'; p++)
            {
              if (escapes && *p == '\\' && p[1] != '\0')
                p++;
              else if (*p == quote && p[1] == quote)
                p++;
              else if (*p == quote)
                {
                  p++;
                  break;
                }
            }
        }
      else if (p[0] == '-' && p[1] == '-')
        {
          p += strcspn (p, "\n");
        }
      else if (p[0] == '/' && p[1] == '*')
        {
          /* PostgreSQL's block comments nest. */
          int depth = 0;

          do
            {
              if (p[0] == '/' && p[1] == '*')
                depth++, p += 2;
              else if (p[0] == '*' && p[1] == '/')
                depth--, p += 2;
              else
                p++;
            }
          while (depth > 0 && *p != '\0');
        }
      else if (*p == '$' && (p == sql || !is_ident_char (p[-1])) && dollar_tag_end (p) != NULL)
        {
          const char *tag_end = dollar_tag_end (p);
          g_autofree char *tag = g_strndup (p, tag_end - p);
          const char *close = strstr (tag_end, tag);

          p = close != NULL ? close + strlen (tag) : tag_end + strlen (tag_end);
        }
      else if (*p == '?')
        {
          int n;

          p++;
          if (g_ascii_isdigit (*p))
            {
              char *end;
              guint64 v = g_ascii_strtoull (p, &end, 10);

              if (v == 0 || v > MAX_PARAMS)
                return NULL;
              n = (int) v;
              p = end;
            }
          else
            {
              n = max + 1;
              if (n > MAX_PARAMS)
                return NULL;
            }
          max = MAX (max, n);
          if ((guint) n > used->len)
            g_array_set_size (used, n);
          g_array_index (used, gboolean, n - 1) = TRUE;
          g_string_append_printf (out, "$%d", n);
          continue;
        }
      else
        {
          p++;
        }
      g_string_append_len (out, start, p - start);
    }

  *n_params = max;
  *types = g_new0 (Oid, MAX (max, 1));
  for (int i = 0; i < max; i++)
    (*types)[i] = g_array_index (used, gboolean, i) ? 0 : TEXTOID;
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* Errors ----------------------------------------------------------------- */

static GkSqlErr
errcode_for_sqlstate (const char *state)
{
  static const struct { const char *prefix; GkSqlErr code; } map[] = {
    { "40001", GK_SQL_ERR_BUSY },        /* serialization_failure */
    { "40P01", GK_SQL_ERR_BUSY },        /* deadlock_detected */
    { "55P03", GK_SQL_ERR_BUSY },        /* lock_not_available */
    { "23",    GK_SQL_ERR_CONSTRAINT },  /* integrity constraint violations */
    { "08",    GK_SQL_ERR_CONNECTION },  /* connection exceptions */
    { "57P0",  GK_SQL_ERR_CONNECTION },  /* the server shuts down or restarts */
    { "28",    GK_SQL_ERR_CONNECTION },  /* authentication refused */
    { "53100", GK_SQL_ERR_FULL },        /* disk_full */
    { "25006", GK_SQL_ERR_READ_ONLY },   /* read_only_sql_transaction */
    { "42501", GK_SQL_ERR_READ_ONLY },   /* insufficient_privilege */
    { "XX001", GK_SQL_ERR_CORRUPT },     /* data_corrupted */
    { "XX002", GK_SQL_ERR_CORRUPT },     /* index_corrupted */
  };

  if (state == NULL)
    return GK_SQL_ERR_OTHER;
  for (guint i = 0; i < G_N_ELEMENTS (map); i++)
    if (g_str_has_prefix (state, map[i].prefix))
      return map[i].code;
  return GK_SQL_ERR_OTHER;
}

/* @message without the connection's password, should libpq or the server
 * ever quote it. */
static char *
scrub (PgSql      *self,
       const char *message)
{
  g_autoptr(GString) text = g_string_new (message);

  g_strchomp (text->str);
  text->len = strlen (text->str);
  if (self->password != NULL && *self->password != '\0')
    g_string_replace (text, self->password, "***", 0);
  return g_string_free (g_steal_pointer (&text), FALSE);
}

static void
set_error (PgSql      *self,
           GkSqlErr    code,
           const char *message)
{
  g_free (self->errmsg);
  self->errmsg = scrub (self, message);
  self->errcode = code;
}

static void
clear_error (PgSql *self)
{
  g_clear_pointer (&self->errmsg, g_free);
  self->errcode = GK_SQL_OK;
}

/* Records the error of @result (NULL: out of memory or a lost connection)
 * and returns FALSE; TRUE when @result succeeded. Only the primary message
 * is kept: the detail quotes row values. */
static gboolean
check_result (PgSql          *self,
              const PGresult *result)
{
  ExecStatusType status = result != NULL ? PQresultStatus (result) : PGRES_FATAL_ERROR;
  const char *state;
  const char *primary;
  GkSqlErr code;

  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY)
    {
      clear_error (self);
      return TRUE;
    }

  state = result != NULL ? PQresultErrorField (result, PG_DIAG_SQLSTATE) : NULL;
  primary = result != NULL ? PQresultErrorField (result, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  code = errcode_for_sqlstate (state);
  if (PQstatus (self->conn) == CONNECTION_BAD)
    {
      code = GK_SQL_ERR_CONNECTION;
      self->lost_in_transaction = self->was_in_transaction;
    }
  if (primary == NULL)
    primary = PQerrorMessage (self->conn);
  if (*primary == '\0')
    primary = "unknown error";
  set_error (self, code, primary);
  return FALSE;
}

static void
update_changes (PgSql          *self,
                const PGresult *result)
{
  const char *status = PQcmdStatus ((PGresult *) result);

  if (g_str_has_prefix (status, "INSERT ") || g_str_has_prefix (status, "UPDATE ")
      || g_str_has_prefix (status, "DELETE ") || g_str_has_prefix (status, "MERGE "))
    self->changes = g_ascii_strtoll (PQcmdTuples ((PGresult *) result), NULL, 10);
}

/* Redaction -------------------------------------------------------------- */

static gboolean
is_uri (const char *target)
{
  return g_str_has_prefix (target, "postgresql://") || g_str_has_prefix (target, "postgres://");
}

static gboolean
is_keyword_form (const char *target)
{
  return strchr (target, '=') != NULL && !is_uri (target);
}

/* The parts of a URI worth showing. Cut so that no part of a password
 * (after the user's ":", before the last "@") or of a query ("?…") is ever
 * shown, even for a malformed URI with unescaped "@", "/" or "?" in it. */
static char *
redact_uri (const char *target)
{
  const char *rest = strstr (target, "://") + 3;
  const char *at = strrchr (rest, '@');
  g_autofree char *scheme = g_strndup (target, rest - target);
  g_autofree char *user = NULL;
  g_autofree char *hosts = NULL;
  g_autofree char *db = NULL;

  if (at != NULL)
    {
      user = g_strndup (rest, strcspn (rest, ":/?@"));
      rest = at + 1;
    }
  hosts = g_strndup (rest, strcspn (rest, "/?"));
  rest += strlen (hosts);
  if (*rest == '/')
    db = g_strndup (rest + 1, strcspn (rest + 1, "?"));

  return g_strdup_printf ("%s%s%s%s/%s", scheme, user != NULL ? user : "",
                          user != NULL && *user != '\0' ? "@" : "", hosts,
                          db != NULL ? db : "");
}

/* The same for the key=value form: only the keywords below are kept. */
static char *
redact_keywords (const char *target)
{
  static const char *const kept[] = { "user", "host", "hostaddr", "port", "dbname" };
  const char *values[G_N_ELEMENTS (kept)] = { NULL };
  g_autoptr(GPtrArray) owned = g_ptr_array_new_with_free_func (g_free);
  const char *p = target;
  const char *host;

  while (*p != '\0')
    {
      g_autofree char *key = NULL;
      GString *value;

      while (g_ascii_isspace (*p))
        p++;
      if (*p == '\0')
        break;
      key = g_strndup (p, strcspn (p, "= \t\n\r"));
      p += strlen (key);
      while (g_ascii_isspace (*p))
        p++;
      if (*p != '=')
        break;   /* not a connection string: keep what was read */
      p++;
      while (g_ascii_isspace (*p))
        p++;
      value = g_string_new (NULL);
      if (*p == '\'')
        {
          for (p++; *p != '\0' && *p != '\''; p++)
            {
              if (*p == '\\' && p[1] != '\0')
                p++;
              g_string_append_c (value, *p);
            }
          if (*p == '\'')
            p++;
        }
      else
        {
          for (; *p != '\0' && !g_ascii_isspace (*p); p++)
            {
              if (*p == '\\' && p[1] != '\0')
                p++;
              g_string_append_c (value, *p);
            }
        }
      g_ptr_array_add (owned, value->str);
      for (guint i = 0; i < G_N_ELEMENTS (kept); i++)
        /* A dbname may itself be a connection string: never show one. */
        if (g_str_equal (key, kept[i])
            && !(i == 4 && (strchr (value->str, '=') != NULL || strstr (value->str, "://"))))
          values[i] = value->str;
      g_string_free (value, FALSE);
    }

  host = values[1] != NULL ? values[1] : values[2];
  return g_strdup_printf ("postgresql://%s%s%s%s%s/%s", values[0] != NULL ? values[0] : "",
                          values[0] != NULL ? "@" : "", host != NULL ? host : "",
                          values[3] != NULL ? ":" : "", values[3] != NULL ? values[3] : "",
                          values[4] != NULL ? values[4] : "");
}

char *
gk_sql_redact_target (const char *target)
{
  g_return_val_if_fail (target != NULL, NULL);

  if (is_uri (target))
    return redact_uri (target);
  if (is_keyword_form (target))
    return redact_keywords (target);
  return g_strdup (target);
}

gboolean
gk_sql_target_has_password (const char *target)
{
  PQconninfoOption *options;
  char *parse_error = NULL;
  gboolean found = FALSE;

  g_return_val_if_fail (target != NULL, FALSE);

  if (!gk_sql_target_is_remote (target))
    return FALSE;
  options = PQconninfoParse (target, &parse_error);
  if (options == NULL)
    {
      /* Unparsable: whatever it holds may be a password. */
      PQfreemem (parse_error);
      return TRUE;
    }
  for (PQconninfoOption *o = options; o->keyword != NULL; o++)
    {
      if (g_str_equal (o->keyword, "password") && o->val != NULL && *o->val != '\0')
        found = TRUE;
      if (o->val != NULL)
        explicit_bzero (o->val, strlen (o->val));
    }
  PQconninfoFree (options);
  return found;
}

/* Connection ------------------------------------------------------------- */

static void
prepared_info_free (gpointer data)
{
  PreparedInfo *info = data;

  g_free (info->name);
  g_free (info->text);
  g_free (info->types);
  g_free (info);
}

static void
wipe_string (char *s)
{
  if (s != NULL)
    {
      explicit_bzero (s, strlen (s));
      g_free (s);
    }
}

/* Server notices (a DROP … IF EXISTS that found nothing, a ROLLBACK outside
 * a transaction) are expected; libpq would print them on stderr. */
static void
notice_processor (void       *data,
                  const char *message)
{
  g_debug ("PostgreSQL: %s", message);
}

/* Session settings, made at each connection: the lock wait ends, as
 * SQLite's busy timeout does, unless the connection string set its own
 * (options=-c lock_timeout=…). */
static gboolean
configure_session (PgSql *self)
{
  PGresult *result = PQexec (self->conn,
                             "SELECT set_config ('lock_timeout', '" LOCK_TIMEOUT "', false)"
                             " WHERE current_setting ('lock_timeout') = '0'");
  gboolean ok = check_result (self, result);

  PQclear (result);
  return ok;
}

static void
pg_close (GkSql *sql)
{
  PgSql *self = PG_SQL (sql);

  if (self == NULL)
    return;
  g_clear_pointer (&self->conn, PQfinish);
  g_clear_pointer (&self->prepared, g_hash_table_unref);
  wipe_string (self->password);
  g_free (self->errmsg);
  g_free (self);
}

static GkSql *
pg_open (const char  *target,
         GkSqlErr    *errcode,
         char       **errmsg)
{
  /* Values given before "dbname" (the target, expanded) are defaults the
   * target may override; client_encoding after it is ours. */
  static const char *const keywords[] = {
    "application_name", "connect_timeout", "keepalives", "keepalives_idle",
    "keepalives_interval", "keepalives_count", "dbname", "client_encoding", NULL
  };
  const char *values[] = {
    "gemini-keys", CONNECT_TIMEOUT_S, "1", KEEPALIVES_IDLE_S,
    KEEPALIVES_INTERVAL_S, KEEPALIVES_COUNT, target, "UTF8", NULL
  };
  g_autofree char *redacted = NULL;
  PQconninfoOption *options;
  char *parse_error = NULL;
  PgSql *self;

  g_return_val_if_fail (target != NULL, NULL);

  self = g_new0 (PgSql, 1);
  self->base.driver = &gk_sql_postgresql_driver;
  redacted = gk_sql_redact_target (target);
  self->prepared = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, prepared_info_free);

  /* libpq's own parse errors may quote the string, password and all: say
   * it in our words. */
  options = PQconninfoParse (target, &parse_error);
  if (options == NULL)
    {
      PQfreemem (parse_error);
      *errcode = GK_SQL_ERR_OTHER;
      *errmsg = g_strdup_printf ("The PostgreSQL connection string “%s” is not valid",
                                 redacted);
      pg_close ((GkSql *) self);
      return NULL;
    }
  for (PQconninfoOption *o = options; o->keyword != NULL; o++)
    if (g_str_equal (o->keyword, "password") && o->val != NULL)
      self->password = g_strdup (o->val);
  for (PQconninfoOption *o = options; o->keyword != NULL; o++)
    if (o->val != NULL)
      explicit_bzero (o->val, strlen (o->val));
  PQconninfoFree (options);

  self->conn = PQconnectdbParams (keywords, values, 1);
  if (self->conn == NULL || PQstatus (self->conn) != CONNECTION_OK)
    {
      g_autofree char *reason = scrub (self, self->conn != NULL ? PQerrorMessage (self->conn)
                                                                : "out of memory");

      *errcode = GK_SQL_ERR_CONNECTION;
      *errmsg = g_strdup_printf ("Cannot connect to %s: %s", redacted, reason);
      pg_close ((GkSql *) self);
      return NULL;
    }
  PQsetNoticeProcessor (self->conn, notice_processor, NULL);
  if (!configure_session (self))
    {
      *errcode = self->errcode;
      *errmsg = g_strdup_printf ("Cannot connect to %s: %s", redacted, self->errmsg);
      pg_close ((GkSql *) self);
      return NULL;
    }
  *errcode = GK_SQL_OK;
  *errmsg = NULL;
  return (GkSql *) self;
}

/* Reconnection ----------------------------------------------------------- */

static gboolean
is_rollback (const char *text)
{
  while (g_ascii_isspace (*text))
    text++;
  if (g_ascii_strncasecmp (text, "ROLLBACK", 8) != 0)
    return FALSE;
  for (text += 8; *text != '\0'; text++)
    if (!g_ascii_isspace (*text) && *text != ';')
      return FALSE;
  return TRUE;
}

/* Called before each round trip for @text. A connection found broken
 * (the server restarted, the network dropped it) is made again, and
 * statements are prepared again on it as they are used; session settings
 * made with SET are gone. Not while the caller is inside a transaction
 * that the break lost, though: every call but its ROLLBACK fails, so a
 * COMMIT can never pass on a new connection for writes the old one
 * dropped. A call that fails on a broken connection is not retried: the
 * server may have run it. */
static gboolean
ensure_connection (PgSql      *self,
                   const char *text)
{
  PGTransactionStatusType status;

  if (PQstatus (self->conn) == CONNECTION_OK)
    {
      status = PQtransactionStatus (self->conn);
      self->was_in_transaction = status == PQTRANS_INTRANS || status == PQTRANS_INERROR;
      return TRUE;
    }
  if (self->lost_in_transaction)
    {
      if (!is_rollback (text))
        {
          set_error (self, GK_SQL_ERR_CONNECTION,
                     "The connection to the server was lost inside a transaction, which must be "
                     "rolled back");
          return FALSE;
        }
      /* The server dropped the transaction with the connection: once its
       * ROLLBACK is asked for, whether or not the server can be reached
       * now, the next calls may connect again. */
      self->lost_in_transaction = FALSE;
    }
  self->was_in_transaction = FALSE;
  PQreset (self->conn);
  if (PQstatus (self->conn) != CONNECTION_OK || !configure_session (self))
    {
      set_error (self, GK_SQL_ERR_CONNECTION, PQerrorMessage (self->conn));
      return FALSE;
    }
  self->generation++;
  self->lost_in_transaction = FALSE;
  return TRUE;
}

/* Prepares @info on the server unless this connection already has it. */
static gboolean
ensure_prepared (PgSql        *self,
                 PreparedInfo *info)
{
  PGresult *result;
  gboolean ok;

  if (!ensure_connection (self, info->text))
    return FALSE;
  if (info->generation == self->generation)
    return TRUE;
  result = PQprepare (self->conn, info->name, info->text, info->n_params, info->types);
  ok = check_result (self, result);
  PQclear (result);
  if (ok)
    info->generation = self->generation;
  return ok;
}

/* Statements ------------------------------------------------------------- */

static void
clear_decoded (PgStmt *self)
{
  for (int i = 0; i < self->n_decoded; i++)
    g_clear_pointer (&self->decoded[i], g_bytes_unref);
}

static void
clear_bindings (PgStmt *self)
{
  for (int i = 0; i < self->info->n_params; i++)
    {
      g_clear_pointer (&self->values[i], g_free);
      self->lengths[i] = 0;
      self->formats[i] = 0;
    }
}

static GkSqlStmt *
pg_prepare (GkSql      *sql,
            const char *text)
{
  PgSql *self = PG_SQL (sql);
  PreparedInfo *info;
  PgStmt *stmt;
  int n_params = 0;
  g_autofree Oid *types = NULL;
  g_autofree char *rewritten = rewrite_placeholders (text, &n_params, &types);

  if (rewritten == NULL)
    {
      set_error (self, GK_SQL_ERR_OTHER, "A placeholder's number is out of range");
      return NULL;
    }

  info = g_hash_table_lookup (self->prepared, rewritten);
  if (info == NULL)
    {
      info = g_new0 (PreparedInfo, 1);
      info->name = g_strdup_printf ("gk_%u", self->next_name++);
      info->text = g_strdup (rewritten);
      info->n_params = n_params;
      info->types = g_steal_pointer (&types);
      info->n_columns = -1;
      /* Not prepared on any connection yet. */
      info->generation = self->generation - 1;
      if (!ensure_prepared (self, info))
        {
          prepared_info_free (info);
          return NULL;
        }
      g_hash_table_insert (self->prepared, g_steal_pointer (&rewritten), info);
    }
  clear_error (self);

  stmt = g_new0 (PgStmt, 1);
  stmt->base.driver = &gk_sql_postgresql_driver;
  stmt->base.sql = sql;
  stmt->info = info;
  stmt->values = g_new0 (char *, MAX (info->n_params, 1));
  stmt->lengths = g_new0 (int, MAX (info->n_params, 1));
  stmt->formats = g_new0 (int, MAX (info->n_params, 1));
  stmt->row = -1;
  return (GkSqlStmt *) stmt;
}

static void
pg_reset (GkSqlStmt *stmt)
{
  PgStmt *self = PG_STMT (stmt);

  clear_decoded (self);
  g_clear_pointer (&self->result, PQclear);
  self->row = -1;
  clear_bindings (self);
}

static void
pg_finalize (GkSqlStmt *stmt)
{
  PgStmt *self = PG_STMT (stmt);

  if (self == NULL)
    return;
  pg_reset (stmt);
  g_free (self->decoded);
  g_free (self->values);
  g_free (self->lengths);
  g_free (self->formats);
  g_free (self);
}

static int
pg_bind_parameter_count (GkSqlStmt *stmt)
{
  return PG_STMT (stmt)->info->n_params;
}

static void
bind (GkSqlStmt *stmt,
      int        i,
      char      *value,
      int        length,
      int        format)
{
  PgStmt *self = PG_STMT (stmt);

  /* A number the statement does not have is ignored, as SQLite does
   * (SQLITE_RANGE, which no caller checks): one bind helper serves
   * statements that use fewer numbers. */
  if (i < 1 || i > self->info->n_params)
    {
      g_free (value);
      return;
    }
  g_free (self->values[i - 1]);
  self->values[i - 1] = value;
  self->lengths[i - 1] = length;
  self->formats[i - 1] = format;
}

static void
pg_bind_null (GkSqlStmt *stmt,
              int        i)
{
  bind (stmt, i, NULL, 0, 0);
}

static void
pg_bind_int64 (GkSqlStmt *stmt,
               int        i,
               gint64     value)
{
  bind (stmt, i, g_strdup_printf ("%" G_GINT64_FORMAT, value), 0, 0);
}

static void
pg_bind_double (GkSqlStmt *stmt,
                int        i,
                double     value)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  bind (stmt, i, g_strdup (g_ascii_dtostr (buf, sizeof buf, value)), 0, 0);
}

static void
pg_bind_text (GkSqlStmt  *stmt,
              int         i,
              const char *text,
              gssize      len)
{
  if (text == NULL)
    pg_bind_null (stmt, i);
  else
    bind (stmt, i, len < 0 ? g_strdup (text) : g_strndup (text, len), 0, 0);
}

static void
pg_bind_blob (GkSqlStmt     *stmt,
              int            i,
              gconstpointer  data,
              gsize          len)
{
  g_return_if_fail (len <= G_MAXINT);

  /* A zero-length blob is not NULL: give libpq a pointer. */
  bind (stmt, i, len > 0 ? g_memdup2 (data, len) : g_malloc (1), (int) len, 1);
}

static GkSqlStep
pg_step (GkSqlStmt *stmt)
{
  PgStmt *self = PG_STMT (stmt);
  PgSql *sql = PG_SQL (self->base.sql);

  if (self->result == NULL)
    {
      PGresult *result;

      if (!ensure_prepared (sql, self->info))
        return GK_SQL_ERROR;
      result = PQexecPrepared (sql->conn, self->info->name, self->info->n_params,
                                         (const char *const *) self->values, self->lengths,
                                         self->formats, 0);

      if (!check_result (sql, result))
        {
          PQclear (result);
          return GK_SQL_ERROR;
        }
      update_changes (sql, result);
      self->result = result;
      g_free (self->decoded);
      self->n_decoded = PQnfields (result);
      self->decoded = g_new0 (GBytes *, MAX (self->n_decoded, 1));
    }

  clear_decoded (self);
  if (self->row + 1 < PQntuples (self->result))
    {
      self->row++;
      return GK_SQL_ROW;
    }
  self->row = PQntuples (self->result);
  return GK_SQL_DONE;
}

static int
pg_column_count (GkSqlStmt *stmt)
{
  PgStmt *self = PG_STMT (stmt);

  if (self->result != NULL)
    return PQnfields (self->result);

  /* SQLite knows the columns before the first step; so does the server,
   * asked once per statement. */
  if (self->info->n_columns < 0)
    {
      PgSql *sql = PG_SQL (self->base.sql);
      PGresult *desc;

      if (!ensure_prepared (sql, self->info))
        return 0;
      desc = PQdescribePrepared (sql->conn, self->info->name);
      if (check_result (sql, desc))
        self->info->n_columns = PQnfields (desc);
      PQclear (desc);
    }
  return MAX (self->info->n_columns, 0);
}

/* Whether the current row has a value at @col (FALSE past the end, as
 * SQLite reads NULL there). */
static gboolean
has_value (PgStmt *self,
           int     col)
{
  g_return_val_if_fail (col >= 0, FALSE);
  return self->result != NULL && self->row >= 0 && self->row < PQntuples (self->result)
         && col < PQnfields (self->result) && !PQgetisnull (self->result, self->row, col);
}

/* An integral numeric (a sum() of integers is numeric here, an integer in
 * SQLite) reads as an integer; other numerics as floats. */
static gboolean
is_integral (const char *text)
{
  const char *p = text + (*text == '-');

  if (*p == '\0')
    return FALSE;
  for (; *p != '\0'; p++)
    if (!g_ascii_isdigit (*p))
      return FALSE;
  return TRUE;
}

static GkSqlType
pg_column_type (GkSqlStmt *stmt,
                int        col)
{
  PgStmt *self = PG_STMT (stmt);

  if (!has_value (self, col))
    return GK_SQL_NULL;

  switch (PQftype (self->result, col))
    {
    case BOOLOID:
    case INT2OID:
    case INT4OID:
    case INT8OID:
    case OIDOID:
      return GK_SQL_INTEGER;
    case FLOAT4OID:
    case FLOAT8OID:
      return GK_SQL_FLOAT;
    case NUMERICOID:
      return is_integral (PQgetvalue (self->result, self->row, col)) ? GK_SQL_INTEGER
                                                                       : GK_SQL_FLOAT;
    case BYTEAOID:
      return GK_SQL_BLOB;
    default:
      return GK_SQL_TEXT;
    }
}

/* Decodes bytea's hex output ("\x…", the server's default since 9.0). */
static GBytes *
decode_bytea (const char *text)
{
  gsize len;
  guchar *bytes;

  if (g_str_has_prefix (text, "\\x"))
    {
      text += 2;
      len = strlen (text) / 2;
      bytes = g_malloc (len + 1);
      for (gsize i = 0; i < len; i++)
        bytes[i] = (g_ascii_xdigit_value (text[2 * i]) << 4)
                   | g_ascii_xdigit_value (text[2 * i + 1]);
    }
  else
    {
      /* The old escape format, should a server be set to it. */
      size_t n = 0;
      unsigned char *raw = PQunescapeBytea ((const unsigned char *) text, &n);

      len = n;
      bytes = g_malloc (len + 1);
      memcpy (bytes, raw, len);
      PQfreemem (raw);
    }
  /* A trailing NUL, not counted, lets column_text() hand the bytes out as
   * a string. */
  bytes[len] = '\0';
  return g_bytes_new_take (bytes, len + 1);
}

/* The value at @col as SQLite would give it as text or a blob: a bytea's
 * bytes, a bool as "1" or "0", anything else as the server wrote it. The
 * returned bytes end with a NUL not counted in *len. */
static const char *
column_bytes_of (PgStmt *self,
                 int     col,
                 gsize  *len)
{
  const char *text;

  *len = 0;
  if (!has_value (self, col))
    return NULL;
  text = PQgetvalue (self->result, self->row, col);
  switch (PQftype (self->result, col))
    {
    case BYTEAOID:
      {
        gsize size;
        const char *data;

        if (self->decoded[col] == NULL)
          self->decoded[col] = decode_bytea (text);
        data = g_bytes_get_data (self->decoded[col], &size);
        *len = size - 1;
        return data;
      }
    case BOOLOID:
      *len = 1;
      return *text == 't' ? "1" : "0";
    default:
      *len = PQgetlength (self->result, self->row, col);
      return text;
    }
}

static gint64
pg_column_int64 (GkSqlStmt *stmt,
                 int        col)
{
  PgStmt *self = PG_STMT (stmt);
  gsize len;
  const char *text = column_bytes_of (self, col, &len);
  double d;

  if (text == NULL)
    return 0;
  if (PQftype (self->result, col) == BYTEAOID)
    return 0;
  if (is_integral (text))
    return g_ascii_strtoll (text, NULL, 10);
  /* A float or a text: its leading number, as SQLite's cast would,
   * clamped to the 64-bit range. */
  d = g_ascii_strtod (text, NULL);
  if (d != d)
    return 0;
  if (d >= 9223372036854775807.0)
    return G_MAXINT64;
  if (d <= -9223372036854775808.0)
    return G_MININT64;
  return (gint64) d;
}

static double
pg_column_double (GkSqlStmt *stmt,
                  int        col)
{
  PgStmt *self = PG_STMT (stmt);
  gsize len;
  const char *text = column_bytes_of (self, col, &len);

  if (text == NULL || PQftype (self->result, col) == BYTEAOID)
    return 0.0;
  return g_ascii_strtod (text, NULL);
}

static const char *
pg_column_text (GkSqlStmt *stmt,
                int        col)
{
  gsize len;

  return column_bytes_of (PG_STMT (stmt), col, &len);
}

static gconstpointer
pg_column_blob (GkSqlStmt *stmt,
                int        col)
{
  gsize len;
  const char *data = column_bytes_of (PG_STMT (stmt), col, &len);

  /* SQLite gives NULL for an empty blob too. */
  return len > 0 ? data : NULL;
}

static gsize
pg_column_bytes (GkSqlStmt *stmt,
                 int        col)
{
  gsize len;

  column_bytes_of (PG_STMT (stmt), col, &len);
  return len;
}

/* The connection ---------------------------------------------------------- */

static gboolean
pg_exec (GkSql      *sql,
         const char *text)
{
  PgSql *self = PG_SQL (sql);
  PGresult *result;
  gboolean ok;

  if (!ensure_connection (self, text))
    return FALSE;
  /* The simple protocol runs several statements in one round trip (and
   * no placeholders: there are no parameters here). */
  result = PQexec (self->conn, text);
  ok = check_result (self, result);
  if (ok)
    update_changes (self, result);
  PQclear (result);
  return ok;
}

static gint64
pg_changes (GkSql *sql)
{
  return PG_SQL (sql)->changes;
}

static gboolean
pg_in_transaction (GkSql *sql)
{
  PgSql *self = PG_SQL (sql);
  PGTransactionStatusType status = PQtransactionStatus (self->conn);

  /* A transaction lost with the connection still waits for its ROLLBACK. */
  if (PQstatus (self->conn) != CONNECTION_OK)
    return self->lost_in_transaction;
  return status == PQTRANS_INTRANS || status == PQTRANS_INERROR || status == PQTRANS_ACTIVE;
}

static GkSqlErr
pg_errcode (GkSql *sql)
{
  return PG_SQL (sql)->errcode;
}

static const char *
pg_errmsg (GkSql *sql)
{
  PgSql *self = PG_SQL (sql);

  return self->errmsg != NULL ? self->errmsg : "not an error";
}

/* Change notices ------------------------------------------------------------ */

struct _GkSqlListener
{
  char  *target;
  char  *channel;
  PgSql *sql;        /* NULL while not connected */
};

GkSqlListener *
gk_sql_listener_new (const char *target,
                     const char *channel)
{
  GkSqlListener *self;

  g_return_val_if_fail (target != NULL, NULL);
  g_return_val_if_fail (channel != NULL, NULL);

  self = g_new0 (GkSqlListener, 1);
  self->target = g_strdup (target);
  self->channel = g_strdup (channel);
  return self;
}

static void
listener_disconnect (GkSqlListener *self)
{
  g_clear_pointer ((GkSql **) &self->sql, pg_close);
}

gboolean
gk_sql_listener_connect (GkSqlListener *self)
{
  g_autofree char *detail = NULL;
  g_autofree char *listen = NULL;
  GkSqlErr code;

  g_return_val_if_fail (self != NULL, FALSE);

  listener_disconnect (self);
  self->sql = PG_SQL (pg_open (self->target, &code, &detail));
  if (self->sql == NULL)
    {
      g_debug ("Change notices: %s", detail);
      return FALSE;
    }
  listen = g_strdup_printf ("LISTEN %s", self->channel);
  if (!pg_exec ((GkSql *) self->sql, listen) || PQsetnonblocking (self->sql->conn, 1) != 0)
    {
      g_debug ("Change notices: %s", self->sql->errmsg);
      listener_disconnect (self);
      return FALSE;
    }
  return TRUE;
}

int
gk_sql_listener_get_fd (GkSqlListener *self)
{
  g_return_val_if_fail (self != NULL, -1);
  return self->sql != NULL ? PQsocket (self->sql->conn) : -1;
}

int
gk_sql_listener_read (GkSqlListener *self)
{
  PGnotify *notify;
  int n = 0;

  g_return_val_if_fail (self != NULL, -1);

  if (self->sql == NULL)
    return -1;
  if (!PQconsumeInput (self->sql->conn) || PQstatus (self->sql->conn) != CONNECTION_OK)
    {
      listener_disconnect (self);
      return -1;
    }
  while ((notify = PQnotifies (self->sql->conn)) != NULL)
    {
      n++;
      PQfreemem (notify);
    }
  return n;
}

void
gk_sql_listener_free (GkSqlListener *self)
{
  if (self == NULL)
    return;
  listener_disconnect (self);
  wipe_string (self->target);
  g_free (self->channel);
  g_free (self);
}

const GkSqlDriver gk_sql_postgresql_driver = {
  .name = "postgresql",
  .dialect = GK_SQL_DIALECT_POSTGRESQL,
  .open = pg_open,
  .close = pg_close,
  .prepare = pg_prepare,
  .finalize = pg_finalize,
  .reset = pg_reset,
  .bind_parameter_count = pg_bind_parameter_count,
  .bind_null = pg_bind_null,
  .bind_int64 = pg_bind_int64,
  .bind_double = pg_bind_double,
  .bind_text = pg_bind_text,
  .bind_blob = pg_bind_blob,
  .step = pg_step,
  .column_count = pg_column_count,
  .column_type = pg_column_type,
  .column_int64 = pg_column_int64,
  .column_double = pg_column_double,
  .column_text = pg_column_text,
  .column_blob = pg_column_blob,
  .column_bytes = pg_column_bytes,
  .exec = pg_exec,
  .changes = pg_changes,
  .in_transaction = pg_in_transaction,
  .errcode = pg_errcode,
  .errmsg = pg_errmsg,
};
