/* gk-team-database.c: a team pool's database, its password and a
 * connection test.
 *
 * The connection test speaks to libpq itself rather than through the
 * driver: a failed connection only says why in its message, and the
 * SQLSTATE that tells a refused password from a missing database is in it
 * only when the connection's error verbosity is raised before connecting,
 * which PQconnectdbParams() does not allow. So the test connects with
 * PQconnectStartParams() and polls, under its own time-out.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <libpq-fe.h>
#include <poll.h>
#include <string.h>

#include <glib/gi18n.h>

#include "gk-crypto.h"
#include "gk-database.h"
#include "gk-database-postgresql.h"
#include "gk-secret-store-private.h"
#include "gk-sql.h"
#include "gk-sql-postgresql.h"
#include "gk-team-database.h"

#define ATTR_TARGET       "target"
#define PASSWORD_PARAM    "password="
/* The driver's own connect time-out (gk-sql-postgresql.c). */
#define CONNECT_TIMEOUT_S 10
#define SQLSTATE_LEN      5

G_DEFINE_QUARK (gk-team-database-error-quark, gk_team_database_error)

static const SecretSchema *
get_schema (void)
{
  static const SecretSchema schema = {
    GK_TEAM_DATABASE_SCHEMA_NAME, SECRET_SCHEMA_NONE,
    {
      { ATTR_TARGET, SECRET_SCHEMA_ATTRIBUTE_STRING },
      { NULL, 0 },
    }
  };

  return &schema;
}

static GHashTable *
attributes_for (const char *target)
{
  g_autofree char *redacted = gk_sql_redact_target (target);

  return secret_attributes_build (get_schema (), ATTR_TARGET, redacted, NULL);
}

gboolean
gk_team_database_check_target (const char  *target,
                               GError     **error)
{
  g_autofree char *redacted = NULL;

  g_return_val_if_fail (target != NULL, FALSE);

  if (!g_str_has_prefix (target, "postgresql://") && !g_str_has_prefix (target, "postgres://"))
    {
      g_set_error_literal (error, GK_TEAM_DATABASE_ERROR, GK_TEAM_DATABASE_ERROR_INVALID,
                           _("Type a connection string of the form "
                             "postgresql://user@host:port/database."));
      return FALSE;
    }
  redacted = gk_sql_redact_target (target);
  if (!g_str_equal (redacted, target))
    {
      g_set_error_literal (error, GK_TEAM_DATABASE_ERROR, GK_TEAM_DATABASE_ERROR_INVALID,
                           _("Leave the password and any options out of the connection string: "
                             "type it as postgresql://user@host:port/database, and the password "
                             "in its own field, which keeps it in the keyring."));
      return FALSE;
    }
  return TRUE;
}

/* Unreserved characters (RFC 3986) go as they are, every other byte as
 * %XX. Written once into a buffer of its final size, so that no copy of
 * the password is left behind in memory a string grew out of. */
char *
gk_team_database_merge_password (const char *target,
                                 const char *password)
{
  static const char hex[] = "0123456789ABCDEF";
  gsize target_len, password_len;
  char *merged, *p;

  g_return_val_if_fail (target != NULL, NULL);

  if (password == NULL || *password == '\0')
    return g_strdup (target);

  target_len = strlen (target);
  password_len = strlen (password);
  merged = g_malloc (target_len + 1 + strlen (PASSWORD_PARAM) + 3 * password_len + 1);
  p = merged;
  memcpy (p, target, target_len);
  p += target_len;
  *p++ = strchr (target, '?') != NULL ? '&' : '?';
  memcpy (p, PASSWORD_PARAM, strlen (PASSWORD_PARAM));
  p += strlen (PASSWORD_PARAM);
  for (const guchar *c = (const guchar *) password; *c != '\0'; c++)
    {
      if (g_ascii_isalnum (*c) || *c == '-' || *c == '.' || *c == '_' || *c == '~')
        *p++ = (char) *c;
      else
        {
          *p++ = '%';
          *p++ = hex[*c >> 4];
          *p++ = hex[*c & 0xf];
        }
    }
  *p = '\0';
  return merged;
}

/* The keyring */

char *
gk_team_database_lookup_password (GkSecretStore  *store,
                                  const char     *target,
                                  GCancellable   *cancellable,
                                  GError        **error)
{
  g_autoptr(SecretService) service = NULL;
  g_autoptr(GHashTable) attributes = NULL;
  g_autoptr(GPtrArray) items = NULL;
  char *password = NULL;
  gboolean locked = FALSE;

  g_return_val_if_fail (GK_IS_SECRET_STORE (store), NULL);
  g_return_val_if_fail (target != NULL, NULL);

  service = gk_secret_store_get_service (cancellable, error);
  if (service == NULL)
    return NULL;
  attributes = attributes_for (target);
  items = gk_secret_store_search (store, service, get_schema (), attributes, cancellable, error);
  if (items == NULL)
    return NULL;

  for (guint i = 0; i < items->len && password == NULL; i++)
    {
      GkKeyringItem *item = items->pdata[i];
      const char *text;

      if (item->locked)
        {
          locked = TRUE;
          continue;
        }
      /* libsecret keeps values in its own wiped memory. */
      text = secret_value_get_text (item->value);
      if (text != NULL)
        password = g_strdup (text);
    }

  if (password == NULL && (locked || gk_secret_store_default_collection_locked (service,
                                                                                cancellable)))
    {
      gk_secret_store_set_locked_error (error);
      return NULL;
    }
  return password;
}

gboolean
gk_team_database_store_password (GkSecretStore  *store,
                                 const char     *target,
                                 const char     *password,
                                 GCancellable   *cancellable,
                                 GError        **error)
{
  g_autoptr(SecretService) service = NULL;
  g_autoptr(GHashTable) attributes = NULL;
  g_autoptr(GError) local = NULL;
  g_autofree char *redacted = NULL;
  g_autofree char *label = NULL;
  SecretValue *value;
  gboolean ok;

  g_return_val_if_fail (GK_IS_SECRET_STORE (store), FALSE);
  g_return_val_if_fail (target != NULL, FALSE);
  g_return_val_if_fail (password != NULL, FALSE);

  service = gk_secret_store_get_service (cancellable, error);
  if (service == NULL || !gk_secret_store_prepare_collection (store, service, cancellable, error))
    return FALSE;

  redacted = gk_sql_redact_target (target);
  attributes = attributes_for (target);
  /* Translators: %s is a connection string, postgresql://user@host/database. */
  label = g_strdup_printf (_("Gemini Keys team database password (%s)"), redacted);
  value = secret_value_new (password, -1, "text/plain");
  ok = secret_service_store_sync (service, get_schema (), attributes, SECRET_COLLECTION_DEFAULT,
                                  label, value, cancellable, &local);
  secret_value_unref (value);
  if (!ok)
    gk_secret_store_propagate_error (error, local, cancellable);
  return ok;
}

gboolean
gk_team_database_forget_password (GkSecretStore  *store,
                                  const char     *target,
                                  GCancellable   *cancellable,
                                  GError        **error)
{
  g_autoptr(GHashTable) attributes = NULL;
  g_autoptr(GError) local = NULL;

  g_return_val_if_fail (GK_IS_SECRET_STORE (store), FALSE);
  g_return_val_if_fail (target != NULL, FALSE);

  attributes = attributes_for (target);
  secret_password_clearv_sync (get_schema (), attributes, cancellable, &local);
  if (local != NULL)
    {
      gk_secret_store_propagate_error (error, local, cancellable);
      return FALSE;
    }
  return TRUE;
}

/* The connection test */

/* Waits until @conn's socket is ready for what @status asks, or @deadline
 * (monotonic µs) passes. */
static gboolean
wait_socket (PGconn                   *conn,
             PostgresPollingStatusType status,
             gint64                    deadline)
{
  struct pollfd fd = { .fd = PQsocket (conn) };
  gint64 left;
  int rc;

  fd.events = status == PGRES_POLLING_READING ? POLLIN : POLLOUT;
  do
    {
      left = deadline - g_get_monotonic_time ();
      if (left <= 0)
        return FALSE;
      rc = poll (&fd, 1, (int) MAX (left / 1000, 1));
    }
  while (rc < 0);
  return rc > 0;
}

/* The SQLSTATE in a verbose message ("FATAL:  28P01: password …"), or NULL. */
static const char *
find_sqlstate (const char *message)
{
  for (const char *p = strstr (message, ":  "); p != NULL; p = strstr (p + 1, ":  "))
    {
      const char *code = p + 3;
      gsize i;

      for (i = 0; i < SQLSTATE_LEN; i++)
        if (!g_ascii_isdigit (code[i]) && !g_ascii_isupper (code[i]))
          break;
      if (i == SQLSTATE_LEN && code[SQLSTATE_LEN] == ':')
        return code;
    }
  return NULL;
}

/* libpq's message, made fit to show: the line with the server's words
 * (without its SQLSTATE) when there is one, else libpq's first line. */
static char *
failure_detail (const char *message,
                const char *sqlstate)
{
  const char *start = message;
  const char *end;

  if (sqlstate != NULL)
    {
      start = sqlstate + SQLSTATE_LEN + 1;
      while (*start == ' ')
        start++;
    }
  end = strchr (start, '\n');
  return g_strstrip (end != NULL ? g_strndup (start, end - start) : g_strdup (start));
}

static void
set_connect_error (GError     **error,
                   PGconn      *conn,
                   const char  *redacted,
                   gboolean     timed_out)
{
  const char *message = conn != NULL ? PQerrorMessage (conn) : "out of memory";
  const char *sqlstate = find_sqlstate (message);
  g_autofree char *detail = NULL;

  if (timed_out)
    {
      g_set_error (error, GK_TEAM_DATABASE_ERROR, GK_TEAM_DATABASE_ERROR_UNREACHABLE,
                   _("No PostgreSQL server answered at %s within %d seconds. Check the host "
                     "name, the port and the network."),
                   redacted, CONNECT_TIMEOUT_S);
      return;
    }

  detail = failure_detail (message, sqlstate);
  if (conn != NULL && PQconnectionNeedsPassword (conn))
    g_set_error (error, GK_TEAM_DATABASE_ERROR, GK_TEAM_DATABASE_ERROR_PASSWORD,
                 _("The server at %s asks for a password. Type it in the Password field."),
                 redacted);
  else if (sqlstate == NULL)
    g_set_error (error, GK_TEAM_DATABASE_ERROR, GK_TEAM_DATABASE_ERROR_UNREACHABLE,
                 _("No PostgreSQL server could be reached at %s. Check the host name, the port "
                   "and the network (%s)."),
                 redacted, detail);
  else if (strncmp (sqlstate, "28P01", SQLSTATE_LEN) == 0)
    g_set_error (error, GK_TEAM_DATABASE_ERROR, GK_TEAM_DATABASE_ERROR_PASSWORD,
                 _("The server at %s refused the password. Check the user name and the "
                   "password (%s)."),
                 redacted, detail);
  else if (strncmp (sqlstate, "3D000", SQLSTATE_LEN) == 0)
    g_set_error (error, GK_TEAM_DATABASE_ERROR, GK_TEAM_DATABASE_ERROR_NO_DATABASE,
                 _("The server has no database of the name given in %s. Check the name after "
                   "the last “/”, or ask the server’s administrator to create it (%s)."),
                 redacted, detail);
  else
    g_set_error (error, GK_TEAM_DATABASE_ERROR, GK_TEAM_DATABASE_ERROR_REFUSED,
                 _("The server at %s turned the connection away (%s)."), redacted, detail);
}

/* One number from @sql, or -1. */
static gint64
query_number (PGconn     *conn,
              const char *sql)
{
  PGresult *result = PQexec (conn, sql);
  gint64 value = -1;

  if (PQresultStatus (result) == PGRES_TUPLES_OK && PQntuples (result) == 1)
    value = PQgetisnull (result, 0, 0) ? 0 : g_ascii_strtoll (PQgetvalue (result, 0, 0), NULL, 10);
  PQclear (result);
  return value;
}

gboolean
gk_team_database_probe (const char           *target,
                        const char           *password,
                        GkTeamDatabaseProbe  *probe,
                        GError              **error)
{
  static const char *const keywords[] = { "application_name", "dbname", NULL };
  g_autofree char *redacted = NULL;
  char *merged;
  const char *values[3];
  PostgresPollingStatusType status = PGRES_POLLING_WRITING;
  gint64 deadline = g_get_monotonic_time () + CONNECT_TIMEOUT_S * G_USEC_PER_SEC;
  gboolean timed_out = FALSE;
  gint64 has_meta, version = 0;
  gsize n_migrations = 0;
  PGconn *conn;

  g_return_val_if_fail (target != NULL, FALSE);
  g_return_val_if_fail (probe != NULL, FALSE);

  if (!gk_team_database_check_target (target, error))
    return FALSE;
  redacted = gk_sql_redact_target (target);

  merged = gk_team_database_merge_password (target, password);
  values[0] = "gemini-keys";
  values[1] = merged;
  values[2] = NULL;
  conn = PQconnectStartParams (keywords, values, 1);
  gk_crypto_wipe_string (merged);

  if (conn != NULL && PQstatus (conn) != CONNECTION_BAD)
    {
      PQsetErrorVerbosity (conn, PQERRORS_VERBOSE);
      while (status != PGRES_POLLING_OK && status != PGRES_POLLING_FAILED)
        {
          if (!wait_socket (conn, status, deadline))
            {
              timed_out = TRUE;
              break;
            }
          status = PQconnectPoll (conn);
        }
    }
  if (conn == NULL || status != PGRES_POLLING_OK)
    {
      set_connect_error (error, conn, redacted, timed_out);
      g_clear_pointer (&conn, PQfinish);
      return FALSE;
    }

  /* A query naming meta fails where it does not exist yet. */
  has_meta = query_number (conn, "SELECT CAST (to_regclass ('meta') IS NOT NULL AS INTEGER)");
  if (has_meta > 0)
    version = query_number (conn, "SELECT CAST (value AS INTEGER) FROM meta WHERE key = '"
                                  GK_DATABASE_POSTGRESQL_VERSION_KEY "'");
  if (has_meta < 0 || version < 0)
    {
      g_autofree char *detail = failure_detail (PQerrorMessage (conn),
                                                find_sqlstate (PQerrorMessage (conn)));

      g_set_error (error, GK_TEAM_DATABASE_ERROR, GK_TEAM_DATABASE_ERROR_REFUSED,
                   _("The server at %s let the user in but not read the database (%s)."),
                   redacted, detail);
      PQfinish (conn);
      return FALSE;
    }
  PQfinish (conn);

  gk_database_postgresql_migrations (&n_migrations);
  probe->schema_version = (int) CLAMP (version, 0, G_MAXINT);
  probe->app_version = (int) n_migrations;
  return TRUE;
}

GkDatabase *
gk_team_database_open (const char  *target,
                       const char  *password,
                       GkClock     *clock,
                       GError     **error)
{
  GkTeamDatabaseProbe probe;
  GkDatabase *db;
  char *merged;

  g_return_val_if_fail (target != NULL, NULL);

  if (!gk_team_database_probe (target, password, &probe, error))
    return NULL;
  if (probe.schema_version > probe.app_version)
    {
      g_set_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_TOO_NEW,
                   _("The database was written by a newer version of Gemini Keys (schema %d). "
                     "Update Gemini Keys to open it."),
                   probe.schema_version);
      return NULL;
    }

  merged = gk_team_database_merge_password (target, password);
  db = gk_database_open (merged, clock, error);
  gk_crypto_wipe_string (merged);
  return db;
}
