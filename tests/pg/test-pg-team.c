/* test-pg-team.c: the connection test and the opening of a team database
 * (gk-team-database.h) against the throwaway server: what it says for a
 * right and a wrong password, none, a missing database, a port nothing
 * listens on and a newer schema.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <gio/gio.h>
#include <string.h>

#include "gk-sql-postgresql.h"
#include "gk-test-util.h"
#include "pg-test-util.h"

/* The cluster's URI without its password, and the password (for the
 * program's life). */
static char *target;
static char *password;

/* @target with its database (or port) replaced. */
static char *
target_with (const char *from,
             const char *to)
{
  g_autoptr(GString) text = g_string_new (target);

  g_assert_nonnull (strstr (target, from));
  g_string_replace (text, from, to, 1);
  return g_string_free (g_steal_pointer (&text), FALSE);
}

static void
assert_probe_fails (const char          *what,
                    const char          *probe_target,
                    const char          *probe_password,
                    GkTeamDatabaseError  code)
{
  g_autoptr(GError) error = NULL;
  GkTeamDatabaseProbe probe = { -1, -1 };

  g_test_message ("%s", what);
  g_assert_false (gk_team_database_probe (probe_target, probe_password, &probe, &error));
  g_assert_error (error, GK_TEAM_DATABASE_ERROR, (int) code);
  g_test_message ("%s", error->message);
  /* Plain words, the redacted target, never the password. */
  g_assert_null (strstr (error->message, password));
  if (probe_password != NULL)
    g_assert_null (strstr (error->message, probe_password));
}

static void
test_probe_failures (void)
{
  g_autofree char *base = g_strndup (target, strrchr (target, '/') - target + 1);
  g_autofree char *no_db = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) any = NULL;
  g_autoptr(GSocketAddress) bound = NULL;
  g_autofree char *closed_port = NULL;
  g_autofree char *unreachable = NULL;
  g_autoptr(GError) error = NULL;
  const char *colon = strrchr (target, ':');
  /* ":PORT/" of the cluster's target. */
  g_autofree char *port = g_strndup (colon, strchr (colon, '/') - colon + 1);

  no_db = g_strconcat (base, "no_such_db", NULL);
  assert_probe_fails ("wrong password", target, "not-the-password",
                      GK_TEAM_DATABASE_ERROR_PASSWORD);
  assert_probe_fails ("no password", target, NULL, GK_TEAM_DATABASE_ERROR_PASSWORD);
  assert_probe_fails ("no such database", no_db, password, GK_TEAM_DATABASE_ERROR_NO_DATABASE);

  /* A port bound and then let go: nothing listens there. */
  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                         &error);
  g_assert_no_error (error);
  any = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_assert_true (g_socket_bind (socket, any, FALSE, &error));
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  closed_port = g_strdup_printf (":%u/", g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
  g_socket_close (socket, NULL);
  unreachable = target_with (port, closed_port);
  assert_probe_fails ("nothing listening", unreachable, password,
                      GK_TEAM_DATABASE_ERROR_UNREACHABLE);

  /* A connection string the setting would not keep. */
  assert_probe_fails ("password in the string", g_getenv ("GK_TEST_PG_URI"), NULL,
                      GK_TEAM_DATABASE_ERROR_INVALID);
}

static void
test_probe_and_open (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = NULL;
  GkTeamDatabaseProbe probe = { -1, -1 };

  /* Reachable and empty: version 0. */
  g_assert_true (gk_team_database_probe (target, password, &probe, &error));
  g_assert_no_error (error);
  g_assert_cmpint (probe.schema_version, ==, 0);
  g_assert_cmpint (probe.app_version, >, 0);

  /* Opening migrates it. */
  db = gk_team_database_open (target, password, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (db);
  g_assert_cmpint (gk_database_get_schema_version (db), ==, probe.app_version);

  g_assert_true (gk_team_database_probe (target, password, &probe, &error));
  g_assert_cmpint (probe.schema_version, ==, probe.app_version);

  /* Written by a newer Gemini Keys: the open refuses, changing nothing. */
  {
    g_autofree char *newer = g_strdup_printf ("%d", probe.app_version + 1);
    g_autoptr(GkDatabase) again = NULL;

    g_assert_true (gk_database_set_meta (db, "schema_version", newer, &error));
    g_assert_no_error (error);
    again = gk_team_database_open (target, password, NULL, &error);
    g_assert_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_TOO_NEW);
    g_assert_null (again);
    g_clear_error (&error);
    newer = (g_free (newer), g_strdup_printf ("%d", probe.app_version));
    g_assert_true (gk_database_set_meta (db, "schema_version", newer, &error));
  }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  pg_test_split_uri (&target, &password);

  g_test_add_func ("/pg-team/probe-and-open", test_probe_and_open);
  g_test_add_func ("/pg-team/probe-failures", test_probe_failures);

  return g_test_run ();
}
