/* test-team-database.c: a team database's connection string and its
 * password in a real gnome-keyring-daemon (tests/keyring-session.sh). The
 * connection test against a real server is in tests/pg/test-pg-team.c.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <libpq-fe.h>
#include <libsecret/secret.h>

#include "gk-core.h"
#include "gk-sql-postgresql.h"
#include "gk-test-util.h"

#define TARGET "postgresql://alice@db.example.org:5432/pool"

/* What gk-team-database.c stores items under: read directly to see the
 * attribute the keyring shows. */
static const SecretSchema test_schema = {
  GK_TEAM_DATABASE_SCHEMA_NAME, SECRET_SCHEMA_NONE,
  {
    { "target", SECRET_SCHEMA_ATTRIBUTE_STRING },
    { NULL, 0 },
  }
};

/* The password libpq reads from @uri, or NULL. */
static char *
libpq_password (const char *uri)
{
  PQconninfoOption *options = PQconninfoParse (uri, NULL);
  char *password = NULL;

  g_assert_nonnull (options);
  for (PQconninfoOption *o = options; o->keyword != NULL; o++)
    if (g_str_equal (o->keyword, "password") && o->val != NULL)
      password = g_strdup (o->val);
  PQconninfoFree (options);
  return password;
}

static void
test_merge_password (void)
{
  const char *passwords[] = { "plain", "p@ss:w/rd?&=#%+ é", "'\\\"", "~-._" };

  for (guint i = 0; i < G_N_ELEMENTS (passwords); i++)
    {
      g_autofree char *merged = gk_team_database_merge_password (TARGET, passwords[i]);
      g_autofree char *with_option = NULL;
      g_autofree char *read = libpq_password (merged);
      g_autofree char *redacted = gk_sql_redact_target (merged);

      /* libpq reads back exactly the password; nothing else changed. */
      g_assert_cmpstr (read, ==, passwords[i]);
      g_assert_cmpstr (redacted, ==, TARGET);
      g_assert_true (g_str_has_prefix (merged, TARGET "?password="));

      /* After options of its own, the password is one more. */
      with_option = gk_team_database_merge_password (TARGET "?sslmode=disable", passwords[i]);
      g_clear_pointer (&read, g_free);
      read = libpq_password (with_option);
      g_assert_cmpstr (read, ==, passwords[i]);
      g_assert_nonnull (strstr (with_option, "?sslmode=disable&password="));
    }

  /* Every byte but the unreserved ones is percent-encoded. */
  {
    g_autofree char *merged = gk_team_database_merge_password (TARGET, "a b@é");

    g_assert_cmpstr (merged, ==, TARGET "?password=a%20b%40%C3%A9");
  }
  {
    g_autofree char *none = gk_team_database_merge_password (TARGET, NULL);
    g_autofree char *empty = gk_team_database_merge_password (TARGET, "");

    g_assert_cmpstr (none, ==, TARGET);
    g_assert_cmpstr (empty, ==, TARGET);
  }
}

static void
test_check_target (void)
{
  const char *good[] = {
    TARGET, "postgres://bob@127.0.0.1/keys", "postgresql://db.example.org:5433/pool",
  };
  const char *bad[] = {
    "", "/home/alice/keys.db", "host=db dbname=pool",
    "postgresql://alice:secret@db.example.org/pool",
    "postgresql://alice@db.example.org/pool?sslmode=require",
  };

  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr(GError) error = NULL;

      g_assert_true (gk_team_database_check_target (good[i], &error));
      g_assert_no_error (error);
    }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;

      g_assert_false (gk_team_database_check_target (bad[i], &error));
      g_assert_error (error, GK_TEAM_DATABASE_ERROR, GK_TEAM_DATABASE_ERROR_INVALID);
      /* The message never repeats what was typed (a password, maybe). */
      g_assert_null (strstr (error->message, "secret"));
    }
}

/* How many items of the schema the keyring holds under the attribute
 * target = @target (other tests' items may be there too). */
static guint
count_items (const char *target)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) attributes = secret_attributes_build (&test_schema, "target", target,
                                                              NULL);
  GList *items = secret_service_search_sync (NULL, &test_schema, attributes, SECRET_SEARCH_ALL,
                                             NULL, &error);
  guint n = g_list_length (items);

  g_assert_no_error (error);
  g_list_free_full (items, g_object_unref);
  return n;
}

static void
test_keyring (void)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *found = NULL;

  /* Nothing stored yet: no password and no error. */
  found = gk_team_database_lookup_password (store, TARGET, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (found);

  /* Stored under the redacted target, whatever form it was given in. */
  g_assert_true (gk_team_database_store_password (store,
                                                  "postgresql://alice:old@db.example.org:5432/pool",
                                                  "first secret", NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (count_items (TARGET), ==, 1);
  found = gk_team_database_lookup_password (store, TARGET, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (found, ==, "first secret");
  gk_crypto_wipe_string (g_steal_pointer (&found));

  /* Storing again replaces it. */
  g_assert_true (gk_team_database_store_password (store, TARGET, "second secret", NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (count_items (TARGET), ==, 1);
  found = gk_team_database_lookup_password (store, TARGET, NULL, &error);
  g_assert_cmpstr (found, ==, "second secret");
  gk_crypto_wipe_string (g_steal_pointer (&found));

  /* Another database has its own (none here). */
  found = gk_team_database_lookup_password (store, "postgresql://alice@db.example.org:5432/other",
                                            NULL, &error);
  g_assert_no_error (error);
  g_assert_null (found);

  g_assert_true (gk_team_database_forget_password (store, TARGET, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (count_items (TARGET), ==, 0);
  found = gk_team_database_lookup_password (store, TARGET, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (found);
  /* Forgetting what is not there is no error. */
  g_assert_true (gk_team_database_forget_password (store, TARGET, NULL, &error));
  g_assert_no_error (error);
}

static void
test_no_service (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr(GkSecretStore) store = NULL;
      g_autoptr(GError) error = NULL;
      g_autofree char *found = NULL;

      g_setenv ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/gk-test-bus", TRUE);
      store = gk_secret_store_new_for_file (NULL);
      found = gk_team_database_lookup_password (store, TARGET, NULL, &error);
      g_assert_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_NO_SERVICE);
      g_assert_null (found);
      g_clear_error (&error);
      g_assert_false (gk_team_database_store_password (store, TARGET, "x", NULL, &error));
      g_assert_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_NO_SERVICE);
      return;
    }

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/team-database/merge-password", test_merge_password);
  g_test_add_func ("/team-database/check-target", test_check_target);
  g_test_add_func ("/team-database/keyring", test_keyring);
  g_test_add_func ("/team-database/no-service", test_no_service);

  return g_test_run ();
}
