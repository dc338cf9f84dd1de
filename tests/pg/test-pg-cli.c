/* test-pg-cli.c: gemini-keysctl on a PostgreSQL database, chosen by
 * --database or $GEMINI_KEYS_DATABASE, run as subprocesses beside the
 * throwaway cluster of tests/pg/pg-cluster.sh. Each test has a database of
 * its own on that cluster.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <json-glib/json-glib.h>
#include <libsecret/secret.h>
#include <string.h>

#include "gk-sql.h"
#include "gk-test-util.h"
#include "../cli/cli-run.h"

typedef struct
{
  char *dir;
  char *data_dir;
  char *key_file;
  char *uri;        /* with the password */
  char *bare_uri;   /* the same without it */
  char *password;
  char *shown;      /* the URI as the programs may show it */
} Fixture;

/* How a run is told where the database is. */
typedef enum
{
  VIA_ENV,        /* GEMINI_KEYS_DATABASE: the URI with its password */
  VIA_OPTION,     /* --database: the URI without it, PGPASSWORD */
  VIA_NOTHING,    /* the caller's own arguments and $GEMINI_KEYS_DATABASE */
} Via;

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) master = gk_test_master_key ();
  g_autofree char *text = NULL;
  const char *scheme_end;
  const char *colon;
  const char *at;

  f->dir = g_dir_make_tmp ("gk-pg-cli-XXXXXX", &error);
  g_assert_no_error (error);
  f->data_dir = g_build_filename (f->dir, "data", NULL);
  f->key_file = g_build_filename (f->dir, "master.key", NULL);
  text = g_base64_encode (g_bytes_get_data (master, NULL), g_bytes_get_size (master));
  g_file_set_contents_full (f->key_file, text, -1, G_FILE_SET_CONTENTS_NONE, 0600, &error);
  g_assert_no_error (error);

  /* postgresql://gk_test:PASSWORD@127.0.0.1:PORT/NAME */
  f->uri = gk_test_pg_database_new ();
  scheme_end = strstr (f->uri, "://") + 3;
  colon = strchr (scheme_end, ':');
  at = strchr (scheme_end, '@');
  g_assert_true (colon != NULL && at != NULL && colon < at);
  f->password = g_strndup (colon + 1, at - colon - 1);
  g_assert_cmpuint (strlen (f->password), >=, 16);
  f->bare_uri = g_strdup_printf ("%.*s%s", (int) (colon - f->uri), f->uri, at);
  f->shown = gk_database_redact_target (f->uri);
  g_assert_cmpstr (f->shown, ==, f->bare_uri);
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  gk_test_pg_database_drop (f->uri);
  gk_test_rm_rf (f->dir);
  g_free (f->dir);
  g_free (f->data_dir);
  g_free (f->key_file);
  g_free (f->uri);
  g_free (f->bare_uri);
  g_free (f->password);
  g_free (f->shown);
}

/* Runs gemini-keysctl with @args (after --database when @via says so),
 * the fixture's master key file unless @keyring, and @input on stdin. */
static GkTestRun
run_full (Fixture            *f,
          Via                 via,
          gboolean            keyring,
          const char         *input,
          const char * const *args)
{
  g_autoptr(GSubprocessLauncher) launcher = gk_test_cli_launcher (input != NULL);
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();

  if (via == VIA_OPTION)
    {
      g_ptr_array_add (argv, "--database");
      g_ptr_array_add (argv, f->bare_uri);
    }
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);

  g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_DATA_DIR", f->data_dir, TRUE);
  g_subprocess_launcher_unsetenv (launcher, "PGPASSWORD");
  if (via != VIA_NOTHING)
    g_subprocess_launcher_unsetenv (launcher, "GEMINI_KEYS_DATABASE");
  if (via == VIA_ENV)
    g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_DATABASE", f->uri, TRUE);
  else if (via == VIA_OPTION)
    g_subprocess_launcher_setenv (launcher, "PGPASSWORD", f->password, TRUE);
  if (keyring)
    g_subprocess_launcher_unsetenv (launcher, "GEMINI_KEYS_MASTER_KEY_FILE");
  else
    g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_MASTER_KEY_FILE", f->key_file, TRUE);
  return gk_test_cli_run (launcher, (const char * const *) argv->pdata, input);
}

#define RUN(f, via, input, ...) \
  run_full ((f), (via), FALSE, (input), (const char *[]) { __VA_ARGS__, NULL })

/* The password is in neither output. */
static void
assert_no_password (Fixture   *f,
                    const GkTestRun *run)
{
  g_assert_null (strstr (run->out, f->password));
  g_assert_null (strstr (run->err, f->password));
}

static void
assert_ok (Fixture   *f,
           const GkTestRun *run)
{
  if (run->status != 0)
    g_error ("exit status %d: %s", run->status, run->err);
  assert_no_password (f, run);
}

static JsonNode *
parse_json (const char *text)
{
  g_autoptr(GError) error = NULL;
  JsonNode *root = json_from_string (text, &error);

  g_assert_no_error (error);
  g_assert_nonnull (root);
  return root;
}

/* The first column of the one row @query returns on the fixture's
 * database, as text. */
static char *
query_text (Fixture    *f,
            const char *query)
{
  g_autofree char *message = NULL;
  GkSqlErr code;
  GkSql *sql = gk_sql_open (f->uri, &code, &message);
  GkSqlStmt *stmt;
  char *value;

  g_assert_nonnull (sql);
  stmt = gk_sql_prepare (sql, query);
  g_assert_nonnull (stmt);
  g_assert_cmpint (gk_sql_step (stmt), ==, GK_SQL_ROW);
  value = g_strdup (gk_sql_column_text (stmt, 0));
  gk_sql_finalize (stmt);
  gk_sql_close (sql);
  return value;
}

/* The tables of the fixture's database (0: never migrated). */
static gint64
count_tables (Fixture *f)
{
  g_autofree char *n = query_text (f, "SELECT count(*) FROM information_schema.tables"
                                      " WHERE table_schema = 'public'");

  return g_ascii_strtoll (n, NULL, 10);
}

/* `db migrate --database URI` migrates the server's database, says so with
 * the URI as it may be shown, and leaves no local file. */
static void
test_migrate_option (Fixture       *f,
                     gconstpointer  data)
{
  g_auto(GkTestRun) first = RUN (f, VIA_OPTION, NULL, "db", "migrate");
  g_auto(GkTestRun) again = RUN (f, VIA_ENV, NULL, "db", "migrate", "--json");
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *last_line = NULL;
  JsonObject *object;

  assert_ok (f, &first);
  assert_ok (f, &again);
  g_assert_nonnull (strstr (first.out, "Created table gemini_api_keys\n"));
  root = parse_json (again.out);
  object = json_node_get_object (root);
  g_assert_cmpstr (json_object_get_string_member (object, "path"), ==, f->shown);
  g_assert_cmpint (json_object_get_int_member (object, "schema_version"), >, 0);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (object,
                                                                         "created_tables")),
                    ==, 0);
  last_line = g_strdup_printf ("Database “%s” at schema version %" G_GINT64_FORMAT "\n",
                               f->shown, json_object_get_int_member (object, "schema_version"));
  g_assert_true (g_str_has_suffix (first.out, last_line));
  g_assert_cmpint (count_tables (f), >, 4);
  g_assert_false (g_file_test (f->data_dir, G_FILE_TEST_EXISTS));
}

/* Keys added by one process through $GEMINI_KEYS_DATABASE are listed by
 * another through --database, chosen and tracked there, on the server. */
static void
test_keys_shared (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *key1 = gk_test_api_key (1);
  g_autofree char *key2 = gk_test_api_key (2);
  g_autofree char *input1 = g_strconcat (key1, "\n", NULL);
  g_autofree char *input2 = g_strconcat (key2, "\n", NULL);
  g_auto(GkTestRun) add1 = RUN (f, VIA_ENV, input1, "key", "add", "--name", "First", "--priority", "3");
  g_auto(GkTestRun) add2 = RUN (f, VIA_ENV, input2, "key", "add", "--name", "Second", "--priority",
                          "8", "--daily-quota", "1000");
  g_auto(GkTestRun) list = RUN (f, VIA_OPTION, NULL, "key", "list", "--json");
  g_auto(GkTestRun) select = RUN (f, VIA_OPTION, NULL, "select", "--json");
  g_auto(GkTestRun) track = { 0 };
  g_auto(GkTestRun) show = { 0 };
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(JsonNode) chosen = NULL;
  g_autoptr(JsonNode) shown = NULL;
  JsonArray *keys;
  JsonArray *quotas;
  gboolean charged = FALSE;

  assert_ok (f, &add1);
  assert_ok (f, &add2);
  assert_ok (f, &list);
  assert_ok (f, &select);

  root = parse_json (list.out);
  keys = json_node_get_array (root);
  g_assert_cmpuint (json_array_get_length (keys), ==, 2);
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (keys, 0),
                                                  "name"), ==, "First");
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (keys, 1),
                                                  "name"), ==, "Second");
  /* Masked: only the last four characters. */
  g_assert_null (strstr (list.out, key1));
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (keys, 1),
                                                  "key_hint"), ==, key2 + strlen (key2) - 4);

  chosen = parse_json (select.out);
  g_assert_cmpstr (json_object_get_string_member (json_node_get_object (chosen), "name"), ==,
                   "Second");

  track = RUN (f, VIA_ENV, NULL, "track", "--key", "2", "--model", "gemini-2.5-flash",
               "--prompt-tokens", "120", "--output-tokens", "30", "--status", "success");
  assert_ok (f, &track);
  show = RUN (f, VIA_OPTION, NULL, "key", "show", "2", "--json");
  assert_ok (f, &show);
  shown = parse_json (show.out);
  quotas = json_object_get_array_member (json_node_get_object (shown), "quotas");
  for (guint i = 0; i < json_array_get_length (quotas); i++)
    {
      JsonObject *quota = json_array_get_object_element (quotas, i);

      if (g_str_equal (json_object_get_string_member (quota, "quota_type"), "DAILY")
          && g_str_equal (json_object_get_string_member (quota, "unit"), "TOKENS"))
        {
          g_assert_cmpint (json_object_get_int_member (quota, "used_value"), ==, 150);
          charged = TRUE;
        }
    }
  g_assert_true (charged);

  /* Nothing went to a local file. */
  g_assert_false (g_file_test (f->data_dir, G_FILE_TEST_EXISTS));
}

/* A password on the command line is refused, in every spelling, without
 * being repeated, and nothing is done. */
static void
test_password_refused (Fixture       *f,
                       gconstpointer  data)
{
  g_autofree char *equals = g_strconcat ("--database=", f->uri, NULL);
  g_autofree char *query = g_strdup_printf ("%s?password=%s", f->bare_uri, f->password);
  g_autofree char *keywords = g_strdup_printf ("host=127.0.0.1 dbname=x password=%s",
                                               f->password);
  const char *spellings[][3] = {
    { "--database", f->uri, NULL },
    { equals, NULL, NULL },
    { "--database", query, NULL },
    { "--database", keywords, NULL },
  };

  for (guint i = 0; i < G_N_ELEMENTS (spellings); i++)
    {
      g_autoptr(GPtrArray) args = g_ptr_array_new ();
      g_auto(GkTestRun) run = { 0 };

      for (guint j = 0; spellings[i][j] != NULL; j++)
        g_ptr_array_add (args, (gpointer) spellings[i][j]);
      g_ptr_array_add (args, "db");
      g_ptr_array_add (args, "migrate");
      g_ptr_array_add (args, NULL);
      run = run_full (f, VIA_NOTHING, FALSE, NULL, (const char * const *) args->pdata);
      g_assert_cmpint (run.status, ==, 2);
      g_assert_cmpstr (run.out, ==, "");
      assert_no_password (f, &run);
      g_assert_nonnull (strstr (run.err, "GEMINI_KEYS_DATABASE"));
      g_assert_nonnull (strstr (run.err, "PGPASSWORD"));
      g_assert_nonnull (strstr (run.err, ".pgpass"));
    }
  g_assert_cmpint (count_tables (f), ==, 0);
  g_assert_false (g_file_test (f->data_dir, G_FILE_TEST_EXISTS));
}

/* A server that cannot be reached: the error names it without the
 * password. */
static void
test_unreachable (Fixture       *f,
                  gconstpointer  data)
{
  g_auto(GkTestRun) run = { 0 };
  g_autofree char *closed = NULL;
  g_autofree char *shown = NULL;
  const char *port = strrchr (f->uri, ':');

  /* Port 1 on loopback: nothing listens there. */
  closed = g_strdup_printf ("%.*s:1%s", (int) (port - f->uri), f->uri, strchr (port, '/'));
  shown = gk_database_redact_target (closed);
  g_setenv ("GEMINI_KEYS_DATABASE", closed, TRUE);
  run = run_full (f, VIA_NOTHING, FALSE, NULL, (const char *[]) { "key", "list", NULL });
  g_unsetenv ("GEMINI_KEYS_DATABASE");

  g_assert_cmpint (run.status, ==, 1);
  assert_no_password (f, &run);
  g_assert_nonnull (strstr (run.err, shown));
}

/* The keyring holds the master key of a database on the server (and of a
 * rotation's next key): no attribute of its items holds the password. */
static void
test_keyring (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *key = gk_test_api_key (7);
  g_autofree char *input = g_strconcat (key, "\n", NULL);
  g_auto(GkTestRun) add = { 0 };
  g_auto(GkTestRun) rotate = { 0 };
  g_auto(GkTestRun) list = { 0 };
  GList *items;
  guint n_ours = 0;
  g_autofree char *uuid = NULL;
  static const SecretSchema schema = {
    "io.github.geminikeys.GeminiKeys.MasterKey", SECRET_SCHEMA_NONE,
    { { "database-uuid", SECRET_SCHEMA_ATTRIBUTE_STRING }, { "NULL", 0 } }
  };

  if (g_getenv ("DBUS_SESSION_BUS_ADDRESS") == NULL)
    {
      g_test_skip ("no D-Bus session (run inside tests/keyring-session.sh)");
      return;
    }

  add = run_full (f, VIA_ENV, TRUE, input,
                  (const char *[]) { "key", "add", "--name", "Kept", NULL });
  assert_ok (f, &add);
  rotate = run_full (f, VIA_ENV, TRUE, NULL, (const char *[]) { "master-key", "rotate", NULL });
  assert_ok (f, &rotate);
  list = run_full (f, VIA_OPTION, TRUE, NULL, (const char *[]) { "key", "list", NULL });
  assert_ok (f, &list);
  g_assert_nonnull (strstr (list.out, "Kept"));

  uuid = query_text (f, "SELECT value FROM meta WHERE key = 'uuid'");
  items = secret_password_search_sync (&schema, SECRET_SEARCH_ALL | SECRET_SEARCH_UNLOCK, NULL,
                                       &error, "database-uuid", uuid, NULL);
  g_assert_no_error (error);
  for (GList *l = items; l != NULL; l = l->next)
    {
      g_autoptr(GHashTable) attributes = secret_retrievable_get_attributes (l->data);
      GHashTableIter iter;
      gpointer name, value;

      g_hash_table_iter_init (&iter, attributes);
      while (g_hash_table_iter_next (&iter, &name, &value))
        g_assert_null (strstr (value, f->password));
      n_ours++;
    }
  g_list_free_full (items, g_object_unref);
  g_assert_cmpuint (n_ours, >, 0);
}

/* The same command's standard output on the file and on the server. */
static void
assert_same_output (Fixture            *f,
                    const char * const *args)
{
  g_auto(GkTestRun) local = run_full (f, VIA_NOTHING, FALSE, NULL, args);
  g_auto(GkTestRun) remote = run_full (f, VIA_OPTION, FALSE, NULL, args);

  assert_ok (f, &local);
  assert_ok (f, &remote);
  g_assert_cmpstr (remote.out, ==, local.out);
}

/* `db copy`: a pool with history, from its SQLite file to an empty
 * database; the CLI on the copy shows the same keys and figures, the same
 * master key decrypts its keys, new rows take new ids, and a second copy
 * into the now full database is refused. */
static void
test_copy (Fixture       *f,
           gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *key1 = gk_test_api_key (11);
  g_autofree char *key2 = gk_test_api_key (12);
  g_autofree char *key3 = gk_test_api_key (13);
  g_autofree char *input1 = g_strconcat (key1, "\n", NULL);
  g_autofree char *input2 = g_strconcat (key2, "\n", NULL);
  g_autofree char *input3 = g_strconcat (key3, "\n", NULL);
  g_autofree char *file = g_build_filename (f->data_dir, "keys.db", NULL);
  g_autofree char *to_password = g_strconcat ("--to=", f->uri, NULL);
  g_autoptr(GBytes) master = gk_test_master_key ();
  g_autoptr(JsonNode) report = NULL;
  g_auto(GkTestRun) copy = { 0 };
  g_auto(GkTestRun) again = { 0 };
  g_auto(GkTestRun) refused = { 0 };
  g_auto(GkTestRun) added = { 0 };
  JsonArray *tables;
  gint64 copied_rollups = 0;
  const char *const *compared[] = {
    (const char *[]) { "dashboard", "--json", NULL },
    (const char *[]) { "dashboard", "--days", "30", "--json", NULL },
    (const char *[]) { "usage", "--json", NULL },
    (const char *[]) { "rotations", "--json", NULL },
    (const char *[]) { "audit", "--json", NULL },
    (const char *[]) { "token", "list", "--json", NULL },
    (const char *[]) { "budget", "--json", NULL },
  };

  /* A pool with keys, quotas, uses, a rate limit, a manual rotation, a
   * token, a setting and the audit log of it all, on the file. */
  {
    g_auto(GkTestRun) a = run_full (f, VIA_NOTHING, FALSE, input1, (const char *[]) {
      "key", "add", "--name", "First", "--daily-quota", "100000", "--project", "p1", NULL });
    g_auto(GkTestRun) b = run_full (f, VIA_NOTHING, FALSE, input2, (const char *[]) {
      "key", "add", "--name", "Second", "--priority", "8", "--budget", "5", NULL });
    g_auto(GkTestRun) t1 = run_full (f, VIA_NOTHING, FALSE, NULL, (const char *[]) {
      "track", "--key", "1", "--model", "gemini-2.5-flash", "--prompt-tokens", "1200",
      "--output-tokens", "300", "--status", "success", "--user", "ann", NULL });
    g_auto(GkTestRun) t2 = run_full (f, VIA_NOTHING, FALSE, NULL, (const char *[]) {
      "track", "--key", "2", "--model", "gemini-2.5-pro", "--prompt-tokens", "5000",
      "--output-tokens", "700", "--status", "success", "--user", "bob", NULL });
    g_auto(GkTestRun) t3 = run_full (f, VIA_NOTHING, FALSE, NULL, (const char *[]) {
      "track", "--key", "2", "--model", "gemini-2.5-pro", "--status", "rate_limited",
      "--http-status", "429", NULL });
    g_auto(GkTestRun) r = run_full (f, VIA_NOTHING, FALSE, NULL, (const char *[]) {
      "key", "rotate", "1", NULL });
    g_auto(GkTestRun) tok = run_full (f, VIA_NOTHING, FALSE, NULL, (const char *[]) {
      "token", "add", "--name", "ci", NULL });
    g_auto(GkTestRun) budget = run_full (f, VIA_NOTHING, FALSE, NULL, (const char *[]) {
      "budget", "--set", "50", NULL });
    const GkTestRun *runs[] = { &a, &b, &t1, &t2, &t3, &r, &tok, &budget };

    for (guint i = 0; i < G_N_ELEMENTS (runs); i++)
      assert_ok (f, runs[i]);
  }
  /* The dashboard's rollups too. */
  {
    g_autoptr(GkDatabase) db = gk_database_open (file, NULL, &error);

    g_assert_no_error (error);
    g_assert_true (gk_rollup_catch_up (db, &error));
    g_assert_no_error (error);
  }

  /* The password is refused on this command line too. */
  refused = run_full (f, VIA_NOTHING, FALSE, NULL, (const char *[]) {
    "db", "copy", "--from", file, to_password, NULL });
  g_assert_cmpint (refused.status, ==, 2);
  assert_no_password (f, &refused);
  g_assert_cmpint (count_tables (f), ==, 0);

  copy = RUN (f, VIA_OPTION, NULL, "db", "copy", "--from", file, "--json");
  assert_ok (f, &copy);
  report = parse_json (copy.out);
  g_assert_cmpstr (json_object_get_string_member (json_node_get_object (report), "to"), ==,
                   f->shown);
  tables = json_object_get_array_member (json_node_get_object (report), "tables");
  g_assert_cmpuint (json_array_get_length (tables), >=, 12);
  for (guint i = 0; i < json_array_get_length (tables); i++)
    {
      JsonObject *table = json_array_get_object_element (tables, i);

      if (g_str_has_prefix (json_object_get_string_member (table, "name"), "usage_rollup_"))
        copied_rollups += json_object_get_int_member (table, "rows");
    }
  g_assert_cmpint (copied_rollups, >, 0);

  for (guint i = 0; i < G_N_ELEMENTS (compared); i++)
    assert_same_output (f, compared[i]);
  /* The keys without their windows' reset times (a minute may pass). */
  {
    g_auto(GkTestRun) local = run_full (f, VIA_NOTHING, FALSE, NULL,
                                  (const char *[]) { "key", "list", "--json", NULL });
    g_auto(GkTestRun) remote = RUN (f, VIA_OPTION, NULL, "key", "list", "--json");
    g_autoptr(JsonNode) a = parse_json (local.out);
    g_autoptr(JsonNode) b = parse_json (remote.out);
    JsonArray *ka = json_node_get_array (a);
    JsonArray *kb = json_node_get_array (b);
    static const char *const members[] = { "id", "name", "key_hint", "status", "priority",
                                           "project", "created_at", "last_used_at" };

    g_assert_cmpuint (json_array_get_length (kb), ==, 2);
    g_assert_cmpuint (json_array_get_length (ka), ==, json_array_get_length (kb));
    for (guint i = 0; i < json_array_get_length (ka); i++)
      for (guint m = 0; m < G_N_ELEMENTS (members); m++)
        {
          JsonNode *x = json_object_get_member (json_array_get_object_element (ka, i),
                                                members[m]);
          JsonNode *y = json_object_get_member (json_array_get_object_element (kb, i),
                                                members[m]);

          g_assert_true (json_node_equal (x, y));
        }
  }

  /* The same master key decrypts the copied ciphertexts. */
  {
    g_autoptr(GkDatabase) db = gk_database_open (f->uri, NULL, &error);
    g_autoptr(GkKeyStore) store = NULL;
    g_autoptr(GBytes) plain = NULL;

    g_assert_no_error (error);
    store = gk_key_store_new (db, master);
    plain = gk_key_store_reveal (store, 2, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (g_bytes_get_data (plain, NULL), ==, key2);
  }

  /* New rows get ids past the copied ones. */
  added = RUN (f, VIA_OPTION, input3, "key", "add", "--name", "Third");
  assert_ok (f, &added);
  g_assert_nonnull (strstr (added.out, "(id 3,"));

  again = RUN (f, VIA_OPTION, NULL, "db", "copy", "--from", file);
  g_assert_cmpint (again.status, ==, 1);
  g_assert_nonnull (strstr (again.err, "already holds rows"));
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  if (g_getenv ("GK_TEST_PG_URI") == NULL)
    {
      g_printerr ("Run this test with tests/pg/pg-cluster.sh\n");
      return 1;
    }

#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("/pg/cli/migrate-option", test_migrate_option);
  ADD ("/pg/cli/keys-shared", test_keys_shared);
  ADD ("/pg/cli/password-refused", test_password_refused);
  ADD ("/pg/cli/unreachable", test_unreachable);
  ADD ("/pg/cli/keyring", test_keyring);
  ADD ("/pg/cli/copy", test_copy);
#undef ADD

  return g_test_run ();
}
