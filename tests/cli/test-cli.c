/* test-cli.c: gemini-keysctl end to end, run as a subprocess.
 *
 * Each test gets a fresh data directory and a master key file; one test
 * goes through the keyring of the private session (tests/keyring-session.sh).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#define _GNU_SOURCE /* memmem */

#include <gio/gio.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <locale.h>
#include <pty.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli-run.h"

typedef struct
{
  char *dir;
  char *data_dir;
  char *key_file;
} Fixture;

/* Where a run's master key comes from. */
typedef enum
{
  MASTER_FILE,     /* the fixture's key file */
  MASTER_KEYRING,  /* GEMINI_KEYS_MASTER_KEY_FILE unset */
  MASTER_OTHER,    /* the file in @master_path */
  MASTER_OTHER_NO_BUS,   /* the file in @master_path, and no D-Bus session at all */
  MASTER_KEYRING_NO_BUS, /* no key file, and no D-Bus session at all */
} MasterSource;

/* A classic key: "AIza" + 35 characters. */
static char *
make_key (guint n)
{
  return g_strdup_printf ("AIzaSyCliTestKey%023u", n);
}

static void
write_key_file (const char *path)
{
  g_autoptr(GError) error = NULL;
  guint8 raw[32];
  g_autofree char *text = NULL;

  for (guint i = 0; i < sizeof raw; i++)
    raw[i] = (guint8) g_random_int_range (0, 256);
  text = g_base64_encode (raw, sizeof raw);
  g_file_set_contents_full (path, text, -1, G_FILE_SET_CONTENTS_NONE, 0600, &error);
  g_assert_no_error (error);
}

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("gk-cli-XXXXXX", &error);
  g_assert_no_error (error);
  f->data_dir = g_build_filename (f->dir, "data", NULL);
  f->key_file = g_build_filename (f->dir, "master.key", NULL);
  write_key_file (f->key_file);
}

static void
rm_rf (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR))
        rm_rf (child);
      else
        g_unlink (child);
    }
  g_rmdir (path);
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  rm_rf (f->dir);
  g_free (f->dir);
  g_free (f->data_dir);
  g_free (f->key_file);
}

/* The output compared below is English text and C-locale figures, whatever
 * the machine's or the caller's locale. */
static void
launcher_fix_locale (GSubprocessLauncher *launcher)
{
  g_subprocess_launcher_setenv (launcher, "LC_ALL", "C.UTF-8", TRUE);
  g_subprocess_launcher_unsetenv (launcher, "LANGUAGE");
}

static GkTestRun
run_full (Fixture            *f,
          MasterSource        source,
          const char         *master_path,
          const char         *input,
          const char * const *args)
{
  g_autoptr(GSubprocessLauncher) launcher = gk_test_cli_launcher (input != NULL);

  g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_DATA_DIR", f->data_dir, TRUE);
  switch (source)
    {
    case MASTER_FILE:
      g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_MASTER_KEY_FILE", f->key_file, TRUE);
      break;
    case MASTER_OTHER:
      g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_MASTER_KEY_FILE", master_path, TRUE);
      break;
    case MASTER_OTHER_NO_BUS:
      g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_MASTER_KEY_FILE", master_path, TRUE);
      g_subprocess_launcher_unsetenv (launcher, "DBUS_SESSION_BUS_ADDRESS");
      break;
    case MASTER_KEYRING_NO_BUS:
      g_subprocess_launcher_unsetenv (launcher, "GEMINI_KEYS_MASTER_KEY_FILE");
      g_subprocess_launcher_unsetenv (launcher, "DBUS_SESSION_BUS_ADDRESS");
      break;
    case MASTER_KEYRING:
    default:
      g_subprocess_launcher_unsetenv (launcher, "GEMINI_KEYS_MASTER_KEY_FILE");
      break;
    }
  return gk_test_cli_run (launcher, args, input);
}

/* Runs the CLI with a pseudo-terminal on stdin: waits for @prompt on
 * stderr, types @answer, and returns in *@echoed what the terminal showed. */
static GkTestRun
run_on_terminal (Fixture            *f,
                 const char         *prompt,
                 const char         *answer,
                 char              **echoed,
                 const char * const *args)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GString) err = g_string_new (NULL);
  g_autoptr(GString) screen = g_string_new (NULL);
  g_autoptr(GBytes) out = NULL;
  GInputStream *err_stream;
  GkTestRun run = { 0 };
  int master, slave;
  char buffer[256];
  gssize n;

  g_assert_cmpint (openpty (&master, &slave, NULL, NULL, NULL), ==, 0);

  g_ptr_array_add (argv, (gpointer) g_getenv ("GEMINI_KEYSCTL"));
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_PIPE);
  launcher_fix_locale (launcher);
  g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_DATA_DIR", f->data_dir, TRUE);
  g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_MASTER_KEY_FILE", f->key_file, TRUE);
  g_subprocess_launcher_take_stdin_fd (launcher, slave);
  process = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, &error);
  g_assert_no_error (error);

  err_stream = g_subprocess_get_stderr_pipe (process);
  while (strstr (err->str, prompt) == NULL)
    {
      n = g_input_stream_read (err_stream, buffer, sizeof buffer, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpint (n, >, 0);
      g_string_append_len (err, buffer, n);
    }
  g_assert_cmpint (write (master, answer, strlen (answer)), ==, (gssize) strlen (answer));

  g_subprocess_wait (process, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (process));
  run.status = g_subprocess_get_exit_status (process);

  for (;;)
    {
      n = g_input_stream_read (err_stream, buffer, sizeof buffer, NULL, &error);
      g_assert_no_error (error);
      if (n <= 0)
        break;
      g_string_append_len (err, buffer, n);
    }
  out = g_input_stream_read_bytes (g_subprocess_get_stdout_pipe (process), 65536, NULL, &error);
  g_assert_no_error (error);
  run.out = g_strndup (g_bytes_get_data (out, NULL), g_bytes_get_size (out));
  run.err = g_strdup (err->str);

  /* What the terminal echoed back. */
  g_unix_set_fd_nonblocking (master, TRUE, NULL);
  while ((n = read (master, buffer, sizeof buffer)) > 0)
    g_string_append_len (screen, buffer, n);
  close (master);
  *echoed = g_strdup (screen->str);
  return run;
}

#define RUN_TTY(f, prompt, answer, echoed, ...) \
  run_on_terminal ((f), (prompt), (answer), (echoed), (const char *[]) { __VA_ARGS__, NULL })

#define RUN(f, input, ...) \
  run_full ((f), MASTER_FILE, NULL, (input), (const char *[]) { __VA_ARGS__, NULL })
#define RUN_WITH(f, source, path, input, ...) \
  run_full ((f), (source), (path), (input), (const char *[]) { __VA_ARGS__, NULL })

/* Runs a command that must succeed and returns its stdout. */
#define RUN_OK(f, input, ...)                                   \
  G_STMT_START {                                                \
    g_auto(GkTestRun) ok_run_ = RUN ((f), (input), __VA_ARGS__);      \
    if (ok_run_.status != 0)                                    \
      g_error ("exit %d: %s", ok_run_.status, ok_run_.err);     \
  } G_STMT_END

static JsonNode *
parse_json (const char *text)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;

  json_parser_load_from_data (parser, text, -1, &error);
  g_assert_no_error (error);
  return json_node_copy (json_parser_get_root (parser));
}

/* `key add` with @key on stdin; returns the new id. */
static gint64
add_key (Fixture    *f,
         const char *name,
         const char *key,
         const char *priority)
{
  g_autofree char *input = g_strdup_printf ("%s\n", key);
  g_auto(GkTestRun) run = RUN (f, input, "--json", "key", "add", "--name", name,
                         "--priority", priority);
  g_autoptr(JsonNode) root = NULL;

  g_assert_cmpint (run.status, ==, 0);
  g_assert_null (strstr (run.out, key));
  root = parse_json (run.out);
  return json_object_get_int_member (json_node_get_object (root), "id");
}

static JsonArray *
get_array (JsonNode *root)
{
  g_assert_true (JSON_NODE_HOLDS_ARRAY (root));
  return json_node_get_array (root);
}

static JsonObject *
find_quota (JsonObject *key,
            const char *type,
            const char *unit)
{
  JsonArray *quotas = json_object_get_array_member (key, "quotas");

  for (guint i = 0; i < json_array_get_length (quotas); i++)
    {
      JsonObject *q = json_array_get_object_element (quotas, i);

      if (g_str_equal (json_object_get_string_member (q, "quota_type"), type) &&
          g_str_equal (json_object_get_string_member (q, "unit"), unit))
        return q;
    }
  g_assert_not_reached ();
  return NULL;
}

static void
assert_usage_error (GkTestRun *run)
{
  g_assert_cmpint (run->status, ==, 2);
  g_assert_true (g_str_has_prefix (run->err, "gemini-keysctl: "));
  g_assert_cmpstr (run->out, ==, "");
}

static void
assert_error (GkTestRun *run)
{
  g_assert_cmpint (run->status, ==, 1);
  g_assert_true (g_str_has_prefix (run->err, "gemini-keysctl: "));
  g_assert_cmpstr (run->out, ==, "");
}

static void
test_migrate (Fixture       *f,
              gconstpointer  data)
{
  const char *seed_tables[] = {
    "gemini_api_keys", "gemini_key_quotas", "gemini_key_usage_log", "gemini_key_rotation_log",
  };
  g_auto(GkTestRun) first = RUN (f, NULL, "db", "migrate");
  g_auto(GkTestRun) second = RUN (f, NULL, "db", "migrate");
  g_auto(GkTestRun) json = RUN (f, NULL, "db", "migrate", "--json");
  g_auto(GStrv) lines = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *db_path = g_build_filename (f->data_dir, "keys.db", NULL);
  g_autofree char *version_line = NULL;
  g_autofree char *version_line_nl = NULL;

  g_assert_cmpint (json.status, ==, 0);
  root = parse_json (json.out);
  g_assert_cmpint (first.status, ==, 0);
  g_assert_cmpstr (first.err, ==, "");
  lines = g_strsplit (first.out, "\n", -1);
  /* One line per table, the schema version, and a final newline. */
  g_assert_cmpuint (g_strv_length (lines), >=, G_N_ELEMENTS (seed_tables) + 2);
  g_assert_cmpstr (lines[g_strv_length (lines) - 1], ==, "");
  for (guint i = 0; lines[i + 2] != NULL; i++)
    g_assert_true (g_str_has_prefix (lines[i], "Created table "));
  version_line = g_strdup_printf ("Database “%s” at schema version %" G_GINT64_FORMAT, db_path,
                                  json_object_get_int_member (json_node_get_object (root),
                                                              "schema_version"));
  g_assert_cmpstr (lines[g_strv_length (lines) - 2], ==, version_line);
  for (guint i = 0; i < G_N_ELEMENTS (seed_tables); i++)
    {
      g_autofree char *line = g_strdup_printf ("Created table %s", seed_tables[i]);
      g_assert_true (g_strv_contains ((const char * const *) lines, line));
    }
  g_assert_true (g_file_test (db_path, G_FILE_TEST_EXISTS));

  /* Nothing left to create the second time. */
  g_assert_cmpint (second.status, ==, 0);
  version_line_nl = g_strconcat (version_line, "\n", NULL);
  g_assert_cmpstr (second.out, ==, version_line_nl);

  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (
                      json_node_get_object (root), "created_tables")), ==, 0);
}

/* TRUE when @needle occurs in the file at @path (a missing file has none). */
static gboolean
file_contains (const char *path,
               const char *needle)
{
  g_autofree char *contents = NULL;
  gsize len = 0;

  if (!g_file_get_contents (path, &contents, &len, NULL))
    return FALSE;
  return memmem (contents, len, needle, strlen (needle)) != NULL;
}

static void
test_add_list_masked (Fixture       *f,
                      gconstpointer  data)
{
  g_autofree char *key = make_key (1);
  g_autofree char *input = g_strdup_printf ("%s\n", key);
  g_autofree char *db_path = g_build_filename (f->data_dir, "keys.db", NULL);
  g_autofree char *wal_path = g_build_filename (f->data_dir, "keys.db-wal", NULL);
  g_auto(GkTestRun) add = RUN (f, input, "key", "add", "--name", "Main", "--priority", "7",
                         "--daily-quota", "1000", "--rpm", "15", "--project", "proj-a",
                         "--budget", "2.5", "--default");
  g_auto(GkTestRun) list = RUN (f, NULL, "--json", "key", "list");
  g_auto(GkTestRun) list_after = RUN (f, NULL, "key", "list", "--json");
  g_auto(GkTestRun) human = RUN (f, NULL, "key", "list");
  g_auto(GkTestRun) show = RUN (f, NULL, "key", "show", "1");
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(JsonNode) root2 = NULL;
  JsonObject *obj;

  g_assert_cmpint (add.status, ==, 0);
  g_assert_null (strstr (add.out, key));
  g_assert_null (strstr (add.err, key));
  g_assert_nonnull (strstr (add.out, "Main"));

  g_assert_cmpint (list.status, ==, 0);
  g_assert_null (strstr (list.out, key));
  g_assert_null (strstr (list.err, key));
  root = parse_json (list.out);
  g_assert_cmpuint (json_array_get_length (get_array (root)), ==, 1);
  obj = json_array_get_object_element (get_array (root), 0);
  g_assert_cmpint (json_object_get_int_member (obj, "id"), ==, 1);
  g_assert_cmpstr (json_object_get_string_member (obj, "name"), ==, "Main");
  g_assert_cmpstr (json_object_get_string_member (obj, "key_hint"), ==, key + strlen (key) - 4);
  g_assert_cmpstr (json_object_get_string_member (obj, "status"), ==, "ACTIVE");
  g_assert_cmpstr (json_object_get_string_member (obj, "project"), ==, "proj-a");
  g_assert_cmpint (json_object_get_int_member (obj, "priority"), ==, 7);
  g_assert_true (json_object_get_boolean_member (obj, "is_default"));
  g_assert_cmpfloat_with_epsilon (json_object_get_double_member (obj, "monthly_budget_usd"),
                                  2.5, 1e-9);
  g_assert_cmpint (json_object_get_int_member (find_quota (obj, "DAILY", "TOKENS"),
                                               "limit_value"), ==, 1000);
  g_assert_cmpint (json_object_get_int_member (find_quota (obj, "DAILY", "TOKENS"),
                                               "used_value"), ==, 0);
  g_assert_cmpint (json_object_get_int_member (find_quota (obj, "PER_MINUTE", "REQUESTS"),
                                               "limit_value"), ==, 15);
  g_assert_cmpint (json_object_get_int_member (find_quota (obj, "MONTHLY", "TOKENS"),
                                               "limit_value"), ==, 0);
  g_assert_true (json_object_has_member (find_quota (obj, "MONTHLY", "TOKENS"), "reset_at"));

  /* --json after the command means the same. */
  g_assert_cmpint (list_after.status, ==, 0);
  root2 = parse_json (list_after.out);
  g_assert_true (json_node_equal (root, root2));

  /* Human output: a table with the masked key only. */
  g_assert_cmpint (human.status, ==, 0);
  g_assert_nonnull (strstr (human.out, "Main"));
  g_assert_nonnull (strstr (human.out, key + strlen (key) - 4));
  g_assert_null (strstr (human.out, key));
  g_assert_cmpint (show.status, ==, 0);
  g_assert_nonnull (strstr (show.out, "Main"));
  g_assert_null (strstr (show.out, key));

  /* Neither the database nor its write-ahead log holds the plaintext, not
   * even without its well-known prefix. */
  g_assert_true (g_file_test (db_path, G_FILE_TEST_EXISTS));
  g_assert_false (file_contains (db_path, key));
  g_assert_false (file_contains (wal_path, key));
  g_assert_false (file_contains (db_path, key + 4));
  g_assert_false (file_contains (wal_path, key + 4));
}

static void
test_invalid_input (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *key = make_key (2);
  g_autofree char *input = g_strdup_printf ("%s\n", key);
  g_autoptr(JsonNode) root = NULL;

  {
    g_auto(GkTestRun) run = RUN (f, input, "key", "add", "--name", "");
    assert_error (&run);
  }
  {
    g_autofree char *long_name = g_strnfill (101, 'n');
    g_auto(GkTestRun) run = RUN (f, input, "key", "add", "--name", long_name);
    assert_error (&run);
  }
  /* Names that would read as something else: a right-to-left override,
   * a zero-width space, a byte-order mark. */
  {
    g_auto(GkTestRun) run = RUN (f, input, "key", "add", "--name", "key\u202Egnp");
    assert_error (&run);
    g_assert_nonnull (strstr (run.err, "direction"));
  }
  {
    g_auto(GkTestRun) run = RUN (f, input, "key", "add", "--name", "key\u200B1");
    assert_error (&run);
  }
  {
    g_auto(GkTestRun) run = RUN (f, input, "key", "add", "--name", "\uFEFFkey");
    assert_error (&run);
  }
  {
    g_auto(GkTestRun) run = RUN (f, "not-a-key\n", "key", "add", "--name", "Bad");
    assert_error (&run);
    g_assert_null (strstr (run.err, "not-a-key"));
  }
  {
    g_auto(GkTestRun) run = RUN (f, "", "key", "add", "--name", "Empty");
    assert_error (&run);
  }
  {
    g_auto(GkTestRun) run = RUN (f, input, "key", "add", "--name", "P", "--priority", "11");
    assert_error (&run);
  }
  {
    g_auto(GkTestRun) run = RUN (f, input, "key", "add", "--name", "P", "--priority", "0");
    assert_error (&run);
  }
  {
    g_auto(GkTestRun) run = RUN (f, input, "key", "add", "--name", "B", "--budget", "-3");
    assert_error (&run);
  }
  {
    g_auto(GkTestRun) run = RUN (f, NULL, "--json", "key", "list");
    g_assert_cmpint (run.status, ==, 0);
    root = parse_json (run.out);
    g_assert_cmpuint (json_array_get_length (get_array (root)), ==, 0);
  }

  /* A duplicate is refused, by its fingerprint, under any name. */
  add_key (f, "First", key, "5");
  {
    g_auto(GkTestRun) run = RUN (f, input, "key", "add", "--name", "Second");
    g_autoptr(JsonNode) list = NULL;
    g_auto(GkTestRun) listed = RUN (f, NULL, "--json", "key", "list");

    assert_error (&run);
    g_assert_null (strstr (run.err, key));
    list = parse_json (listed.out);
    g_assert_cmpuint (json_array_get_length (get_array (list)), ==, 1);
  }
  {
    g_auto(GkTestRun) run = RUN (f, NULL, "key", "show", "42");
    assert_error (&run);
  }
}

static void
test_usage_errors (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *key = make_key (3);
  g_autofree char *input = g_strdup_printf ("%s\n", key);
  const char *const *cases[] = {
    (const char *[]) { "frobnicate", NULL },
    (const char *[]) { "--bogus", "key", "list", NULL },
    (const char *[]) { "key", NULL },
    (const char *[]) { "key", "explode", NULL },
    (const char *[]) { "key", "list", "--bogus", NULL },
    (const char *[]) { "key", "list", "extra", NULL },
    (const char *[]) { "key", "add", "--priority", "3", NULL },
    (const char *[]) { "key", "add", "--name", "x", "--priority", "high", NULL },
    (const char *[]) { "key", "add", "--name", "x", "--daily-quota", "12abc", NULL },
    (const char *[]) { "key", "show", NULL },
    (const char *[]) { "key", "show", "abc", NULL },
    (const char *[]) { "key", "show", "-4", NULL },
    (const char *[]) { "key", "update", "1", "--active", "--inactive", NULL },
    (const char *[]) { "key", "delete", "0", "--yes", NULL },
    (const char *[]) { "track", "--model", "m", "--status", "success", NULL },
    (const char *[]) { "track", "--key", "1", "--model", "m", "--status", "weird", NULL },
    (const char *[]) { "track", "--key", "1", "--model", "m", "--status", "success",
                       "--prompt-tokens", "ten", NULL },
    (const char *[]) { "usage", "--limit", "0", NULL },
    (const char *[]) { "usage", "--csv", "--json", NULL },
    (const char *[]) { "dashboard", "--days", "9", NULL },
    (const char *[]) { "quotas", "reset", "--type", "hourly", NULL },
    (const char *[]) { "token", "add", NULL },
    (const char *[]) { "token", "revoke", "x", NULL },
    (const char *[]) { "export", NULL },
    (const char *[]) { "master-key", "export", NULL },
    (const char *[]) { "db", NULL },
    (const char *[]) { "serve", "--outage-rows", "0", NULL },
    (const char *[]) { "serve", "--outage-rows", "1000001", NULL },
    (const char *[]) { "serve", "--outage-rows", "-5", NULL },
    (const char *[]) { "serve", "--outage-rows", "many", NULL },
  };

  add_key (f, "One", key, "5");

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_auto(GkTestRun) run = run_full (f, MASTER_FILE, NULL, input, cases[i]);

      g_test_message ("case %u: %s", i, cases[i][0]);
      assert_usage_error (&run);
    }

  {
    /* The error says what is allowed. */
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_FILE, NULL, NULL, "serve", "--outage-rows", "0");
    assert_usage_error (&run);
    g_assert_nonnull (strstr (run.err, "--outage-rows must be a number of rows from 1 to 1000000"));
  }
  {
    /* No command at all: the help on stderr. */
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_FILE, NULL, NULL, "--json");
    g_assert_cmpint (run.status, ==, 2);
    g_assert_nonnull (strstr (run.err, "key"));
  }
  {
    g_auto(GkTestRun) run = RUN (f, NULL, "--help");
    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, "master-key"));
  }
  {
    g_auto(GkTestRun) run = RUN (f, NULL, "key", "add", "--help");
    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, "--monthly-quota"));
  }
}

static JsonNode *
run_json (Fixture            *f,
          const char * const *args)
{
  g_auto(GkTestRun) run = run_full (f, MASTER_FILE, NULL, NULL, args);

  if (run.status != 0)
    g_error ("exit %d: %s", run.status, run.err);
  return parse_json (run.out);
}

#define JSON(f, ...) run_json ((f), (const char *[]) { "--json", __VA_ARGS__, NULL })

static void
test_track_usage (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *key = make_key (4);
  g_autoptr(JsonNode) tracked = NULL;
  g_autoptr(JsonNode) usage = NULL;
  g_autoptr(JsonNode) other = NULL;
  g_autoptr(JsonNode) dashboard = NULL;
  JsonObject *row;
  gint64 id;

  id = add_key (f, "Tracked", key, "5");
  g_assert_cmpint (id, ==, 1);

  tracked = JSON (f, "track", "--key", "1", "--model", "models/gemini-2.5-flash",
                  "--prompt-tokens", "100", "--output-tokens", "50", "--status", "success",
                  "--http-status", "200", "--user", "alice", "--latency-ms", "12");
  g_assert_cmpint (json_object_get_int_member (json_node_get_object (tracked), "usage_id"),
                   >, 0);
  g_assert_false (json_object_get_boolean_member (json_node_get_object (tracked), "rotated"));

  {
    g_auto(GkTestRun) run = RUN (f, NULL, "track", "--key", "1", "--model", "gemini-2.5-flash",
                           "--status", "error", "--http-status", "500",
                           "--error", "upstream broke");
    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, "Recorded usage"));
  }

  usage = JSON (f, "usage");
  g_assert_cmpuint (json_array_get_length (get_array (usage)), ==, 2);
  /* Newest first. */
  row = json_array_get_object_element (get_array (usage), 1);
  g_assert_cmpint (json_object_get_int_member (row, "key_id"), ==, 1);
  g_assert_cmpstr (json_object_get_string_member (row, "key_name"), ==, "Tracked");
  g_assert_cmpint (json_object_get_int_member (row, "prompt_tokens"), ==, 100);
  g_assert_cmpint (json_object_get_int_member (row, "output_tokens"), ==, 50);
  g_assert_cmpint (json_object_get_int_member (row, "tokens_used"), ==, 150);
  g_assert_cmpstr (json_object_get_string_member (row, "status"), ==, "SUCCESS");
  g_assert_cmpstr (json_object_get_string_member (row, "user_id"), ==, "alice");
  g_assert_cmpint (json_object_get_int_member (row, "http_status"), ==, 200);
  g_assert_cmpint (json_object_get_int_member (row, "latency_ms"), ==, 12);
  g_assert_true (json_object_get_int_member (row, "created_at") > 0);
  g_assert_true (json_object_has_member (row, "cost_usd"));
  row = json_array_get_object_element (get_array (usage), 0);
  g_assert_cmpstr (json_object_get_string_member (row, "status"), ==, "ERROR");
  g_assert_cmpstr (json_object_get_string_member (row, "error_message"), ==, "upstream broke");

  other = JSON (f, "usage", "--key", "99", "--limit", "5");
  g_assert_cmpuint (json_array_get_length (get_array (other)), ==, 0);

  {
    g_auto(GkTestRun) run = RUN (f, NULL, "usage", "--limit", "1", "--csv");
    g_auto(GStrv) lines = g_strsplit (run.out, "\r\n", -1);

    g_assert_cmpint (run.status, ==, 0);
    g_assert_cmpuint (g_strv_length (lines), ==, 3);
    g_assert_true (g_str_has_prefix (lines[0], "id,key_id,key_name,model,tokens_used"));
    g_assert_nonnull (strstr (lines[1], "ERROR"));
    g_assert_cmpstr (lines[2], ==, "");
  }
  {
    g_auto(GkTestRun) run = RUN (f, NULL, "usage");
    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, "alice"));
    g_assert_nonnull (strstr (run.out, "Tracked"));
  }

  dashboard = JSON (f, "dashboard", "--days", "30");
  g_assert_cmpint (json_object_get_int_member (json_node_get_object (dashboard), "requests"),
                   ==, 2);
  g_assert_cmpint (json_object_get_int_member (json_node_get_object (dashboard), "total_keys"),
                   ==, 1);
  g_assert_cmpint (json_array_get_length (json_object_get_array_member (
                     json_node_get_object (dashboard), "daily")), ==, 30);
  {
    g_auto(GkTestRun) run = RUN (f, NULL, "dashboard");
    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, "gemini-2.5-flash"));
  }

  {
    /* A key that does not exist cannot be charged. */
    g_auto(GkTestRun) run = RUN (f, NULL, "track", "--key", "77", "--model", "m",
                           "--status", "success");
    assert_error (&run);
  }
}

static void
test_rotate_delete (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *key_a = make_key (5);
  g_autofree char *key_b = make_key (6);
  g_autoptr(JsonNode) selected = NULL;
  g_autoptr(JsonNode) rotated = NULL;
  g_autoptr(JsonNode) rotations = NULL;
  g_autoptr(JsonNode) after = NULL;
  g_autoptr(JsonNode) keys = NULL;
  g_autoptr(JsonNode) usage = NULL;
  JsonObject *row;
  gint64 a, b;

  a = add_key (f, "Alpha", key_a, "9");
  b = add_key (f, "Beta", key_b, "5");

  selected = JSON (f, "select", "--model", "gemini-2.5-flash");
  g_assert_cmpint (json_object_get_int_member (json_node_get_object (selected), "id"), ==, a);
  g_assert_cmpstr (json_object_get_string_member (json_node_get_object (selected), "name"), ==,
                   "Alpha");
  g_assert_cmpstr (json_object_get_string_member (json_node_get_object (selected), "key_hint"),
                   ==, key_a + strlen (key_a) - 4);
  {
    g_auto(GkTestRun) run = RUN (f, NULL, "select");
    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, "Alpha"));
    g_assert_null (strstr (run.out, key_a));
  }

  RUN_OK (f, NULL, "track", "--key", "1", "--model", "gemini-2.5-flash", "--status", "success",
          "--prompt-tokens", "10");

  rotated = JSON (f, "key", "rotate", "1");
  g_assert_cmpint (json_object_get_int_member (json_node_get_object (rotated), "to_key_id"), ==,
                   b);

  rotations = JSON (f, "rotations", "--limit", "10");
  g_assert_cmpuint (json_array_get_length (get_array (rotations)), ==, 1);
  row = json_array_get_object_element (get_array (rotations), 0);
  g_assert_cmpstr (json_object_get_string_member (row, "reason"), ==, "MANUAL");
  g_assert_cmpint (json_object_get_int_member (row, "from_key_id"), ==, a);
  g_assert_cmpint (json_object_get_int_member (row, "to_key_id"), ==, b);
  g_assert_true (g_str_has_prefix (json_object_get_string_member (row, "triggered_by"),
                                   "manual:"));

  after = JSON (f, "select");
  g_assert_cmpint (json_object_get_int_member (json_node_get_object (after), "id"), ==, b);

  {
    /* stdin is a pipe: no confirmation possible, nothing deleted. */
    g_auto(GkTestRun) run = RUN (f, "y\n", "key", "delete", "1");
    g_auto(GkTestRun) show = RUN (f, NULL, "key", "show", "1");

    assert_error (&run);
    g_assert_nonnull (strstr (run.err, "--yes"));
    g_assert_cmpint (show.status, ==, 0);
  }
  RUN_OK (f, NULL, "key", "delete", "1", "--yes");
  {
    g_auto(GkTestRun) show = RUN (f, NULL, "key", "show", "1");
    g_auto(GkTestRun) again = RUN (f, NULL, "key", "delete", "1", "--yes");

    assert_error (&show);
    assert_error (&again);
  }

  keys = JSON (f, "key", "list");
  g_assert_cmpuint (json_array_get_length (get_array (keys)), ==, 1);
  g_assert_cmpint (json_object_get_int_member (json_array_get_object_element (get_array (keys), 0),
                                               "id"), ==, b);

  /* The history stays, still named. */
  usage = JSON (f, "usage");
  g_assert_cmpuint (json_array_get_length (get_array (usage)), ==, 1);
  row = json_array_get_object_element (get_array (usage), 0);
  g_assert_cmpint (json_object_get_int_member (row, "key_id"), ==, a);
  g_assert_cmpstr (json_object_get_string_member (row, "key_name"), ==, "Alpha");
  {
    g_autoptr(JsonNode) still = JSON (f, "rotations");
    row = json_array_get_object_element (get_array (still), 0);
    g_assert_cmpstr (json_object_get_string_member (row, "from_key_name"), ==, "Alpha");
  }
  {
    g_auto(GkTestRun) run = RUN (f, NULL, "rotations");
    g_assert_cmpint (run.status, ==, 0);
    /* The reason in the badge's words. */
    g_assert_nonnull (strstr (run.out, "Skipped by you"));
  }

  /* With the last key rotated away nothing is left. */
  {
    g_auto(GkTestRun) rotate = RUN (f, NULL, "key", "rotate", "2");
    g_auto(GkTestRun) none = RUN (f, NULL, "select");

    g_assert_cmpint (rotate.status, ==, 0);
    assert_error (&none);
    g_assert_nonnull (strstr (none.err, "No active keys available"));
  }
}

static void
test_update (Fixture       *f,
             gconstpointer  data)
{
  g_autofree char *key = make_key (7);
  g_autofree char *new_key = make_key (8);
  g_autofree char *new_input = g_strdup_printf ("%s\n", new_key);
  g_autoptr(JsonNode) updated = NULL;
  g_autoptr(JsonNode) replaced = NULL;
  JsonObject *obj;

  add_key (f, "Old", key, "5");

  updated = JSON (f, "key", "update", "1", "--name", "New", "--priority", "3", "--inactive",
                  "--monthly-quota", "5000");
  obj = json_node_get_object (updated);
  g_assert_cmpstr (json_object_get_string_member (obj, "name"), ==, "New");
  g_assert_cmpint (json_object_get_int_member (obj, "priority"), ==, 3);
  g_assert_cmpstr (json_object_get_string_member (obj, "status"), ==, "INACTIVE");
  g_assert_cmpint (json_object_get_int_member (find_quota (obj, "MONTHLY", "TOKENS"),
                                               "limit_value"), ==, 5000);
  {
    g_auto(GkTestRun) none = RUN (f, NULL, "select");
    assert_error (&none);
  }

  {
    g_auto(GkTestRun) run = RUN (f, NULL, "key", "update", "1", "--priority", "12");
    g_autoptr(JsonNode) same = JSON (f, "key", "show", "1");

    assert_error (&run);
    g_assert_cmpint (json_object_get_int_member (json_node_get_object (same), "priority"), ==,
                     3);
  }

  {
    g_auto(GkTestRun) run = RUN (f, new_input, "--json", "key", "update", "1", "--active",
                           "--replace-key");

    g_assert_cmpint (run.status, ==, 0);
    g_assert_null (strstr (run.out, new_key));
    replaced = parse_json (run.out);
  }
  obj = json_node_get_object (replaced);
  g_assert_cmpstr (json_object_get_string_member (obj, "key_hint"), ==,
                   new_key + strlen (new_key) - 4);
  g_assert_cmpstr (json_object_get_string_member (obj, "status"), ==, "ACTIVE");
  g_assert_cmpstr (json_object_get_string_member (obj, "name"), ==, "New");
  /* Untouched settings stay. */
  g_assert_cmpint (json_object_get_int_member (obj, "priority"), ==, 3);

  /* The old key is free again, so it can be added as a new key. */
  add_key (f, "Old again", key, "5");
}

static void
test_quotas_reset_without_master_key (Fixture       *f,
                                      gconstpointer  data)
{
  g_autofree char *key = make_key (9);
  g_autofree char *missing = g_build_filename (f->dir, "no-such.key", NULL);
  g_autoptr(JsonNode) before = NULL;
  g_autoptr(JsonNode) after = NULL;
  const char *const *keyless[] = {
    (const char *[]) { "select", NULL },
    (const char *[]) { "track", "--key", "1", "--model", "gemini-2.5-flash",
                       "--prompt-tokens", "200", "--output-tokens", "100",
                       "--status", "success", NULL },
    (const char *[]) { "usage", NULL },
    (const char *[]) { "rotations", NULL },
    (const char *[]) { "dashboard", NULL },
    (const char *[]) { "token", "list", NULL },
    (const char *[]) { "quotas", "reset", "--type", "minute", NULL },
    (const char *[]) { "db", "migrate", NULL },
  };

  add_key (f, "Quota", key, "5");
  RUN_OK (f, NULL, "key", "update", "1", "--daily-quota", "100000", "--monthly-quota", "900000");

  /* These commands never decrypt a key, so a broken master key setting
   * must not stop them (nor make them touch the keyring). */
  for (guint i = 0; i < G_N_ELEMENTS (keyless); i++)
    {
      g_auto(GkTestRun) run = run_full (f, MASTER_OTHER, missing, NULL, keyless[i]);

      g_test_message ("keyless: %s", keyless[i][0]);
      g_assert_cmpint (run.status, ==, 0);
    }
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_OTHER, missing, NULL, "key", "list");
    assert_error (&run);
  }

  before = JSON (f, "key", "show", "1");
  g_assert_cmpint (json_object_get_int_member (find_quota (json_node_get_object (before),
                                                           "DAILY", "TOKENS"),
                                               "used_value"), ==, 300);
  RUN_OK (f, NULL, "quotas", "reset", "--type", "daily");
  after = JSON (f, "key", "show", "1");
  g_assert_cmpint (json_object_get_int_member (find_quota (json_node_get_object (after),
                                                           "DAILY", "TOKENS"),
                                               "used_value"), ==, 0);
  g_assert_cmpint (json_object_get_int_member (find_quota (json_node_get_object (after),
                                                           "MONTHLY", "TOKENS"),
                                               "used_value"), ==, 300);
  RUN_OK (f, NULL, "quotas", "reset");
  {
    g_autoptr(JsonNode) all = JSON (f, "key", "show", "1");
    g_assert_cmpint (json_object_get_int_member (find_quota (json_node_get_object (all),
                                                             "MONTHLY", "TOKENS"),
                                                 "used_value"), ==, 0);
  }
}

static void
test_tokens (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(JsonNode) added = JSON (f, "token", "add", "--name", "ci");
  g_autoptr(JsonNode) list = NULL;
  g_autoptr(JsonNode) revoked = NULL;
  JsonObject *obj = json_node_get_object (added);
  const char *token = json_object_get_string_member (obj, "token");
  gint64 id = json_object_get_int_member (obj, "id");
  JsonObject *row;

  g_assert_cmpstr (json_object_get_string_member (obj, "name"), ==, "ci");
  g_assert_cmpuint (strlen (token), >=, 16);

  {
    /* Human output: the token alone on stdout. */
    g_auto(GkTestRun) run = RUN (f, NULL, "token", "add", "--name", "laptop");
    g_assert_cmpint (run.status, ==, 0);
    g_assert_true (g_str_has_suffix (run.out, "\n"));
    g_assert_null (strchr (run.out, ' '));
    g_assert_cmpstr (strchr (run.out, '\n'), ==, "\n");
  }

  {
    g_auto(GkTestRun) run = RUN (f, NULL, "--json", "token", "list");
    g_assert_cmpint (run.status, ==, 0);
    /* Shown once: never listed. */
    g_assert_null (strstr (run.out, token));
    list = parse_json (run.out);
  }
  g_assert_cmpuint (json_array_get_length (get_array (list)), ==, 2);
  row = json_array_get_object_element (get_array (list), 0);
  g_assert_cmpstr (json_object_get_string_member (row, "name"), ==, "ci");
  g_assert_false (json_object_get_boolean_member (row, "revoked"));

  {
    g_autofree char *id_text = g_strdup_printf ("%" G_GINT64_FORMAT, id);
    g_auto(GkTestRun) run = RUN (f, NULL, "token", "revoke", id_text);
    g_assert_cmpint (run.status, ==, 0);
  }
  revoked = JSON (f, "token", "list");
  row = json_array_get_object_element (get_array (revoked), 0);
  g_assert_true (json_object_get_boolean_member (row, "revoked"));
  row = json_array_get_object_element (get_array (revoked), 1);
  g_assert_false (json_object_get_boolean_member (row, "revoked"));

  {
    g_auto(GkTestRun) run = RUN (f, NULL, "token", "revoke", "999");
    assert_error (&run);
  }
  {
    g_auto(GkTestRun) run = RUN (f, NULL, "token", "add", "--name", "");
    assert_error (&run);
  }
}

/* Runs the Python script tests/cli/@name on @path and @args (up to a
 * NULL); returns its output, after failing the test if it failed. */
static char *
run_script (const char *name,
            const char *path,
            ...)
{
  g_autofree char *script = g_test_build_filename (G_TEST_DIST, name, NULL);
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  char *out = NULL;
  int status = 0;
  va_list args;

  g_ptr_array_add (argv, (gpointer) "python3");
  g_ptr_array_add (argv, script);
  va_start (args, path);
  for (const char *arg = path; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, (gpointer) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);

  g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err,
                &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("%s: %s", path, err);
  return out;
}

/* Runs tests/cli/check-xlsx.py on @path: header, frozen row, row count
 * and the cell types of the first data row. */
static void
check_xlsx (const char *path,
            const char *header,
            const char *rows,
            const char *types)
{
  g_autofree char *out = run_script ("check-xlsx.py", path, header, rows, types, NULL);

  g_assert_cmpstr (out, ==, "ok\n");
}

static void
test_export_xlsx (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *key = make_key (11);
  g_autofree char *usage = g_build_filename (f->dir, "usage.xlsx", NULL);
  g_autofree char *rotations = g_build_filename (f->dir, "rotations.xlsx", NULL);
  g_autofree char *keys = g_build_filename (f->dir, "keys.xlsx", NULL);
  g_autofree char *sheet = NULL;
  const char *usage_header = "id,time_utc,key_id,key_name,model,status,http_status,"
                             "tokens_used,prompt_tokens,output_tokens,cost_usd,priced,user_id,"
                             "latency_ms,error_message";

  add_key (f, "Sheet <&> key", key, "5");
  RUN_OK (f, NULL, "track", "--key", "1", "--model", "gemini-2.5-pro", "--status",
          "rate_limited", "--http-status", "429");
  RUN_OK (f, NULL, "track", "--key", "1", "--model", "gemini-2.5-pro", "--status", "success",
          "--prompt-tokens", "1000", "--output-tokens", "10", "--user", "bob");
  RUN_OK (f, NULL, "key", "rotate", "1");

  {
    g_auto(GkTestRun) run = RUN (f, NULL, "export", "--xlsx", usage);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, "Exported 2 rows"));
  }
  /* Newest first: the success with its user, numbers as numbers, the
   * time as a date, the cost as currency, "priced" a boolean. */
  check_xlsx (usage, usage_header, "2", "n,d,n,s,s,s,-,n,n,n,m,b,s,n,-");
  /* Nothing left beside it. */
  {
    g_autofree char *part = g_strconcat (usage, ".part", NULL);

    g_assert_false (g_file_test (part, G_FILE_TEST_EXISTS));
  }

  RUN_OK (f, NULL, "export", "--xlsx", rotations, "--table", "rotations");
  check_xlsx (rotations, "id,time_utc,from_key_id,from_key_name,to_key_id,to_key_name,reason,"
                         "triggered_by", "2", "n,d,n,s,-,-,s,s");

  RUN_OK (f, NULL, "export", "--xlsx", keys, "--table", "keys");
  check_xlsx (keys, "id,name,key_hint,project,status,priority,is_default,monthly_budget_usd,"
                    "month_cost_usd,created_utc,last_used_utc", "1", "n,s,s,-,s,n,b,-,m,d,-");
  /* Masked: the tail only, never the key (the name is escaped XML). */
  {
    const char *argv[] = { "unzip", "-p", keys, "xl/worksheets/sheet1.xml", NULL };
    g_autoptr(GError) error = NULL;
    int status = 0;

    g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL,
                  NULL, NULL, &sheet, NULL, &status, &error);
    g_assert_no_error (error);
    if (g_spawn_check_wait_status (status, NULL))
      {
        g_assert_null (strstr (sheet, key));
        g_assert_nonnull (strstr (sheet, key + strlen (key) - 4));
        g_assert_nonnull (strstr (sheet, "Sheet &lt;&amp;&gt; key"));
      }
  }

  /* One output only. */
  {
    g_auto(GkTestRun) run = RUN (f, NULL, "export", "--xlsx", usage, "--csv", "-");
    g_assert_cmpint (run.status, !=, 0);
  }
}

/* Every action the CLI offers leaves an audit row, as the OS user, and no
 * row holds the key or the token. */
static void
test_audit (Fixture       *f,
            gconstpointer  data)
{
  g_autofree char *key = make_key (31);
  g_autofree char *key_input = g_strdup_printf ("%s\n", key);
  g_autofree char *csv = g_build_filename (f->dir, "audit.csv", NULL);
  g_autofree char *xlsx = g_build_filename (f->dir, "audit.xlsx", NULL);
  g_autofree char *exported = g_build_filename (f->dir, "exported.key", NULL);
  g_autofree char *contents = NULL;
  g_autoptr(JsonNode) token = NULL;
  g_autoptr(JsonNode) rows = NULL;
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  const char *expected[] = {
    "key_add", "key_edit", "key_disable", "key_enable", "key_skip", "quota_reset",
    "token_create", "token_revoke", "export", "master_key_export", "master_key_rotate",
    "key_delete",
  };
  g_autofree char *token_text = NULL;
  JsonArray *array;

  add_key (f, "Audited", key, "5");
  RUN_OK (f, NULL, "key", "update", "1", "--priority", "7");
  RUN_OK (f, NULL, "key", "update", "1", "--inactive");
  RUN_OK (f, NULL, "key", "update", "1", "--active");
  RUN_OK (f, NULL, "key", "rotate", "1");
  RUN_OK (f, NULL, "quotas", "reset", "--type", "daily");
  token = JSON (f, "token", "add", "--name", "ci");
  token_text = g_strdup (json_object_get_string_member (json_node_get_object (token), "token"));
  RUN_OK (f, NULL, "token", "revoke", "1");
  RUN_OK (f, NULL, "export", "--csv", csv, "--table", "audit");
  RUN_OK (f, NULL, "export", "--xlsx", xlsx, "--table", "audit");
  RUN_OK (f, NULL, "master-key", "export", exported);
  RUN_OK (f, NULL, "master-key", "rotate");
  RUN_OK (f, NULL, "key", "delete", "1", "--yes");

  rows = JSON (f, "audit", "--limit", "100");
  array = json_node_get_array (rows);
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonObject *row = json_array_get_object_element (array, i);

      g_hash_table_add (seen, (gpointer) json_object_get_string_member (row, "action"));
      g_assert_cmpstr (json_object_get_string_member (row, "actor"), ==, g_get_user_name ());
    }
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++)
    if (!g_hash_table_contains (seen, expected[i]))
      g_error ("no %s row", expected[i]);
  /* Newest first. */
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (array, 0),
                                                  "action"), ==, "key_delete");
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (array, 0),
                                                  "target"), ==, "Audited");

  {
    g_auto(GkTestRun) human = RUN (f, NULL, "audit");
    g_auto(GkTestRun) json = RUN (f, NULL, "--json", "audit");

    g_assert_cmpint (human.status, ==, 0);
    g_assert_nonnull (strstr (human.out, "Key added"));
    g_assert_nonnull (strstr (human.out, "priority 5 → 7"));
    g_assert_null (strstr (human.out, key));
    g_assert_null (strstr (json.out, key));
    g_assert_null (strstr (json.out, key + 10));
    g_assert_null (strstr (json.out, token_text));
  }

  g_assert_true (g_file_get_contents (csv, &contents, NULL, NULL));
  g_assert_true (g_str_has_prefix (contents, "id,created_at,actor,action,target_id,target,summary\r\n"));
  g_assert_nonnull (strstr (contents, ",key_add,1,Audited,"));
  g_assert_null (strstr (contents, key));
  check_xlsx (xlsx, "id,time_utc,actor,action,target_id,target,summary", "9", "n,d,s,s,-,s,s");
}

/* The spend and the pool's budget. 2.5 Flash input: $0.30 per 1M tokens. */
static void
test_budget (Fixture       *f,
             gconstpointer  data)
{
  g_autofree char *key = make_key (32);
  g_autoptr(JsonNode) set = NULL;
  g_autoptr(JsonNode) dashboard = NULL;
  JsonObject *spend;

  add_key (f, "Spender", key, "5");
  RUN_OK (f, NULL, "track", "--key", "1", "--model", "gemini-2.5-flash", "--status", "success",
          "--prompt-tokens", "2000000");
  set = JSON (f, "budget", "--set", "1.5");
  spend = json_node_get_object (set);
  g_assert_cmpfloat (json_object_get_double_member (spend, "pool_budget_usd"), ==, 1.5);
  g_assert_cmpfloat_with_epsilon (json_object_get_double_member (spend, "month_usd"), 0.6, 1e-9);
  g_assert_cmpfloat_with_epsilon (json_object_get_double_member (spend, "pool_budget_percent"),
                                  40, 1e-9);

  dashboard = JSON (f, "dashboard");
  spend = json_object_get_object_member (json_node_get_object (dashboard), "spend");
  g_assert_cmpfloat_with_epsilon (json_object_get_double_member (spend, "today_usd"), 0.6, 1e-9);
  g_assert_cmpstr (json_object_get_string_member (
                     json_array_get_object_element (json_object_get_array_member (spend, "keys"), 0),
                     "name"), ==, "Spender");

  {
    g_auto(GkTestRun) human = RUN (f, NULL, "budget");
    g_auto(GkTestRun) bad = RUN (f, NULL, "budget", "--set", "lots");
    g_auto(GkTestRun) both = RUN (f, NULL, "budget", "--set", "1", "--clear");

    g_assert_cmpint (human.status, ==, 0);
    g_assert_nonnull (strstr (human.out, "$0.6000 (of $1.50, 40%)"));
    g_assert_cmpint (bad.status, ==, 2);
    g_assert_cmpint (both.status, ==, 2);
  }
  RUN_OK (f, NULL, "budget", "--clear");
  {
    g_auto(GkTestRun) human = RUN (f, NULL, "budget");

    g_assert_nonnull (strstr (human.out, "No budget for the whole pool"));
  }
}

/* Keys worth deleting and the master key's age. */
static void
test_hygiene (Fixture       *f,
              gconstpointer  data)
{
  g_autofree char *key = make_key (33);
  g_autoptr(JsonNode) root = NULL;
  JsonObject *obj, *master;
  JsonArray *stale;

  add_key (f, "Idle", key, "5");
  /* Added just now: not stale at 30 days; at 1 day neither. */
  root = JSON (f, "hygiene");
  obj = json_node_get_object (root);
  g_assert_cmpint (json_object_get_int_member (obj, "unused_days"), ==, 30);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (obj, "consider_deleting")),
                    ==, 0);
  master = json_object_get_object_member (obj, "master_key");
  g_assert_false (json_object_get_boolean_member (master, "rotate_due"));
  g_assert_cmpint (json_object_get_int_member (master, "max_age_days"), ==, 180);

  /* Rejected by Google: listed at once. */
  RUN_OK (f, NULL, "track", "--key", "1", "--model", "gemini-2.5-flash", "--status",
          "invalid_key", "--http-status", "400");
  g_clear_pointer (&root, json_node_unref);
  root = JSON (f, "hygiene", "--unused-days", "7");
  obj = json_node_get_object (root);
  g_assert_cmpint (json_object_get_int_member (obj, "unused_days"), ==, 7);
  stale = json_object_get_array_member (obj, "consider_deleting");
  g_assert_cmpuint (json_array_get_length (stale), ==, 1);
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (stale, 0),
                                                  "reason"), ==, "REJECTED");
  {
    g_auto(GkTestRun) human = RUN (f, NULL, "hygiene");
    g_auto(GkTestRun) bad = RUN (f, NULL, "hygiene", "--unused-days", "-1");

    g_assert_nonnull (strstr (human.out, "Rejected by Google"));
    /* Its key file was written by the test: dated by the oldest key. */
    g_assert_nonnull (strstr (human.out, "Master key: at most 0 days old"));
    g_assert_cmpint (bad.status, ==, 2);
  }
}

static void
test_export_csv (Fixture       *f,
                 gconstpointer  data)
{
  g_autofree char *key = make_key (10);
  g_autofree char *usage_csv = g_build_filename (f->dir, "usage.csv", NULL);
  g_autofree char *rotations_csv = g_build_filename (f->dir, "rotations.csv", NULL);
  g_autofree char *keys_csv = g_build_filename (f->dir, "keys.csv", NULL);
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;

  add_key (f, "Export, \"quoted\"", key, "5");
  RUN_OK (f, NULL, "track", "--key", "1", "--model", "gemini-2.5-pro", "--status", "success",
          "--prompt-tokens", "1000", "--output-tokens", "10", "--user", "bob");
  RUN_OK (f, NULL, "track", "--key", "1", "--model", "gemini-2.5-pro", "--status",
          "rate_limited", "--http-status", "429");
  RUN_OK (f, NULL, "key", "rotate", "1");

  {
    g_auto(GkTestRun) run = RUN (f, NULL, "export", "--csv", usage_csv);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, usage_csv));
  }
  g_assert_true (g_file_get_contents (usage_csv, &contents, NULL, NULL));
  lines = g_strsplit (contents, "\r\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 4);
  g_assert_true (g_str_has_prefix (lines[0], "id,key_id,key_name,model,tokens_used,"
                                             "prompt_tokens,output_tokens,cost_usd"));
  /* The comma and the quotes in the name are escaped. */
  g_assert_nonnull (strstr (contents, "\"Export, \"\"quoted\"\"\""));
  g_assert_nonnull (strstr (contents, "bob"));
  g_assert_nonnull (strstr (contents, "RATE_LIMITED"));
  g_clear_pointer (&contents, g_free);

  /* Written through a temporary file in the same folder, renamed at the
   * end: nothing else is left there. */
  {
    g_autoptr(GDir) listing = g_dir_open (f->dir, 0, NULL);
    const char *name;

    while ((name = g_dir_read_name (listing)) != NULL)
      g_assert_false (g_str_has_prefix (name, "usage.csv."));
  }
  /* To standard output, the same rows. */
  {
    g_auto(GkTestRun) run = RUN (f, NULL, "export", "--csv", "-");
    g_assert_cmpint (run.status, ==, 0);
    g_assert_true (g_str_has_prefix (run.out, "id,key_id,key_name,"));
    g_assert_nonnull (strstr (run.out, "\"Export, \"\"quoted\"\"\""));
    g_assert_nonnull (strstr (run.out, "RATE_LIMITED"));
  }

  RUN_OK (f, NULL, "export", "--csv", rotations_csv, "--table", "rotations");
  g_assert_true (g_file_get_contents (rotations_csv, &contents, NULL, NULL));
  g_assert_true (g_str_has_prefix (contents, "id,from_key_id,from_key_name,to_key_id"));
  g_assert_nonnull (strstr (contents, "MANUAL"));
  g_clear_pointer (&contents, g_free);

  RUN_OK (f, NULL, "export", "--csv", keys_csv, "--table", "keys");
  g_assert_true (g_file_get_contents (keys_csv, &contents, NULL, NULL));
  g_assert_nonnull (strstr (contents, key + strlen (key) - 4));
  g_assert_null (strstr (contents, key));
  g_clear_pointer (&contents, g_free);

  {
    g_autofree char *nowhere = g_build_filename (f->dir, "missing-dir", "x.csv", NULL);
    g_auto(GkTestRun) run = RUN (f, NULL, "export", "--csv", nowhere);
    assert_error (&run);
  }
  /* Never over the database: that would replace it under every
   * connection. The usage rows are still there afterwards. */
  {
    g_autofree char *db_path = g_build_filename (f->data_dir, "keys.db", NULL);
    g_auto(GkTestRun) run = RUN (f, NULL, "export", "--csv", db_path);

    assert_error (&run);
    g_assert_nonnull (strstr (run.err, "database itself"));
  }
  {
    g_auto(GkTestRun) run = RUN (f, NULL, "usage", "--csv");

    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, "bob"));
  }
}

/* Runs SQL on the test's database with the sqlite3 shell (a process of
 * its own, as another program using the file would be). */
static void
run_sqlite (Fixture    *f,
            const char *sql)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *db = g_build_filename (f->data_dir, "keys.db", NULL);
  g_autofree char *err = NULL;
  int status = 0;
  const char *argv[] = { "sqlite3", db, sql, NULL };

  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                NULL, NULL, NULL, &err, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("sqlite3 failed: %s", err);
}

static char *
run_out (Fixture            *f,
         const char * const *args)
{
  g_auto(GkTestRun) run = run_full (f, MASTER_FILE, NULL, NULL, args);

  if (run.status != 0)
    g_error ("exit %d: %s", run.status, run.err);
  return g_steal_pointer (&run.out);
}

#define OUT(f, ...) run_out ((f), (const char *[]) { __VA_ARGS__, NULL })

/* A database with every kind of value an export writes: set times, empty
 * and missing fields, text that CSV quotes and XML escapes, fractions of
 * a cent, a refused request with no key. Written with SQL so that every
 * time is fixed. */
static const char golden_rows[] =
  "INSERT INTO gemini_api_keys (id, uuid, name, key_hint, project, status, priority,"
  "  is_default, monthly_budget_usd, month_cost_usd, created_at, updated_at, last_used_at)"
  " VALUES (1, 'u1', 'Main, \"team\" <&>', 'wxyz', 'proj-a', 'ACTIVE', 7, 1, 25.5, 3.1415926,"
  "   1773576000, 1773576000, 1773662400),"
  "  (2, 'u2', 'Spare key', 'abcd', NULL, 'RATE_LIMITED', 5, 0, NULL, 0, 1773579600,"
  "   1773579600, NULL);"
  "INSERT INTO gemini_key_quotas (key_id, quota_type, unit, limit_value, used_value, reset_at)"
  " VALUES (1, 'MONTHLY', 'TOKENS', 1000000, 12345, 4102444800),"
  "  (1, 'DAILY', 'REQUESTS', 500, 17, 4102444800),"
  "  (1, 'PER_MINUTE', 'TOKENS', 60000, 250, 4102444800);"
  "INSERT INTO gemini_key_usage_log (key_id, model, tokens_used, prompt_tokens, output_tokens,"
  "  cost_usd, priced, status, http_status, error_message, user_id, latency_ms, created_at)"
  " VALUES (1, 'gemini-2.5-pro', 1010, 1000, 10, 0.0001234, 1, 'SUCCESS', 200, NULL, 'bob',"
  "   850, 1773580000),"
  "  (NULL, 'gemini-2.5-flash', 0, 0, 0, 0, 0, 'ERROR', NULL, 'No key, \"none\" left\nat all',"
  "   NULL, 3, 1773580100),"
  "  (2, 'gemini-2.5-pro', 0, 0, 0, 0, 1, 'RATE_LIMITED', 429, 'Quota <exceeded>', 'ann & co',"
  "   120, 1773580200);"
  "INSERT INTO gemini_key_rotation_log (from_key_id, to_key_id, reason, triggered_by,"
  "  created_at)"
  " VALUES (2, 1, 'RATE_LIMITED', 'auto', 1773580201),"
  "  (1, NULL, 'MANUAL', 'cli, \"bob\"', 1773580300);"
  "INSERT INTO audit_log (created_at, actor, action, target_id, target, summary)"
  " VALUES (1773576000, 'alice', 'key_add', 1, 'Main, \"team\" <&>', 'priority 7'),"
  "  (1773576100, 'ci token', 'setting_change', NULL, NULL, NULL),"
  "  (1773576200, 'alice', 'quota_reset', NULL, 'daily', 'Reset \"daily\"\nquotas');";

/* A fresh database holding golden_rows only. */
static void
golden_database (Fixture *f)
{
  rm_rf (f->data_dir);
  RUN_OK (f, NULL, "db", "migrate");
  run_sqlite (f, golden_rows);
}

/* @got is byte for byte tests/cli/export/@name. */
static void
assert_golden (const char *got,
               const char *name)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "export", name, NULL);
  g_autofree char *expected = NULL;
  g_autoptr(GError) error = NULL;

  g_file_get_contents (path, &expected, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (got, ==, expected);
}

/* Each table in each format is what `export` has always written (the
 * files under tests/cli/export): scripts read the CSV columns. */
static void
test_export_golden (Fixture       *f,
                    gconstpointer  data)
{
  const char *tables[] = { "usage", "rotations", "keys", "audit" };

  for (guint i = 0; i < G_N_ELEMENTS (tables); i++)
    {
      g_autofree char *csv = g_strdup_printf ("%s.csv", tables[i]);
      g_autofree char *xlsx = g_strdup_printf ("%s.xlsx", tables[i]);
      g_autofree char *dump = g_strdup_printf ("%s.xlsx.txt", tables[i]);
      g_autofree char *csv_path = g_build_filename (f->dir, csv, NULL);
      g_autofree char *xlsx_path = g_build_filename (f->dir, xlsx, NULL);
      g_autofree char *contents = NULL;
      g_autofree char *sheets = NULL;

      /* Each export adds an audit row: each export starts from the same
       * rows. */
      golden_database (f);
      RUN_OK (f, NULL, "export", "--table", tables[i], "--csv", csv_path);
      g_assert_true (g_file_get_contents (csv_path, &contents, NULL, NULL));
      assert_golden (contents, csv);
      golden_database (f);
      {
        g_auto(GkTestRun) run = RUN (f, NULL, "export", "--table", tables[i], "--csv", "-");

        g_assert_cmpint (run.status, ==, 0);
        assert_golden (run.out, csv);
      }

      golden_database (f);
      RUN_OK (f, NULL, "export", "--table", tables[i], "--xlsx", xlsx_path);
      sheets = run_script ("dump-xlsx.py", xlsx_path, NULL);
      assert_golden (sheets, dump);
    }
}

/* The text a listing prints for the golden rows, its times (local, so
 * each zone's own) as "<time>". */
static char *
golden_listing (Fixture            *f,
                const char * const *args)
{
  g_autofree char *out = run_out (f, args);
  g_autoptr(GRegex) time = g_regex_new ("[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}", 0, 0,
                                        NULL);

  return g_regex_replace_literal (time, out, -1, 0, "<time>", 0, NULL);
}

#define LISTING(f, ...) golden_listing ((f), (const char *[]) { __VA_ARGS__, NULL })

/* The listings' tables, and what they say when there is nothing to list. */
static void
test_listings (Fixture       *f,
               gconstpointer  data)
{
  g_autofree char *rotations = NULL;
  g_autofree char *audit = NULL;
  g_autofree char *tokens = NULL;
  g_autofree char *spikes = NULL;
  g_autofree char *compare = NULL;

  golden_database (f);
  /* Within the last week, whenever the test runs. */
  run_sqlite (f, "UPDATE gemini_key_usage_log SET created_at = unixepoch () - 3600 - id");
  rotations = LISTING (f, "rotations");
  g_assert_cmpstr (rotations, ==,
                   "ID  TIME              FROM                  TO                    REASON          BY"
                   "          SPIKE\n"
                   "2   <time>  Main, \"team\" <&> (1)  none                  Skipped by you"
                   "  cli, \"bob\"\n"
                   "1   <time>  Spare key (2)         Main, \"team\" <&> (1)  Cooling down"
                   "    auto\n"
                   "\n"
                   "Rotations: 2 (0 manual, 2 automatic)\n");
  audit = LISTING (f, "audit");
  g_assert_cmpstr (audit, ==,
                   "ID  TIME              BY        ACTION           TARGET            DETAILS\n"
                   "3   <time>  alice     Quotas reset     daily             Reset \"daily\"\n"
                   "quotas\n"
                   "2   <time>  ci token  Setting changed\n"
                   "1   <time>  alice     Key added        Main, \"team\" <&>  priority 7\n");
  compare = LISTING (f, "keys", "compare", "--sort", "name");
  g_assert_cmpstr (compare, ==,
                   "ID  NAME              REQUESTS  SUCCESS  429     REJECTED  P50     P95     "
                   "TOKENS  COST     PER 1K   SHARE\n"
                   "1   Main, \"team\" <&>  1         100.0%   0.0%    0.0%      875 ms  988 ms  "
                   "1010    $0.0001  $0.0001  50.0%\n"
                   "2   Spare key         1         0.0%     100.0%  0.0%      —       —       "
                   "0       $0.0000  —        50.0%\n");
  tokens = LISTING (f, "token", "list");
  g_assert_cmpstr (tokens, ==,
                   "No tokens yet. Create one with “gemini-keysctl token add --name NAME”.\n");
  spikes = LISTING (f, "keys", "spikes");
  g_assert_cmpstr (spikes, ==, "No rotation spikes.\n");
}

/* `key import`: 1,000 keys from a file in one go, then the same file again
 * (all skipped by fingerprint), a dry run that adds nothing, CSV with
 * every column, bad lines reported by number; no key in any output or in
 * the database files. */
static void
test_key_import (Fixture       *f,
                 gconstpointer  data)
{
  g_autofree char *keys_path = g_build_filename (f->dir, "keys.txt", NULL);
  g_autofree char *csv_path = g_build_filename (f->dir, "keys.csv", NULL);
  g_autofree char *db_path = g_build_filename (f->data_dir, "keys.db", NULL);
  g_autofree char *wal_path = g_build_filename (f->data_dir, "keys.db-wal", NULL);
  g_autoptr(GString) text = g_string_new ("# forty teams' keys\n\n");
  g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) error = NULL;
  JsonObject *o;
  JsonArray *lines;

  for (guint i = 0; i < 1000; i++)
    {
      g_ptr_array_add (keys, make_key (5000 + i));
      g_string_append_printf (text, "%s%s\n", (char *) keys->pdata[i], i % 2 ? "\r" : "");
    }
  g_file_set_contents (keys_path, text->str, (gssize) text->len, &error);
  g_assert_no_error (error);

  /* A dry run first: every line would be added, nothing is. */
  {
    g_autoptr(JsonNode) dry = JSON (f, "key", "import", "--dry-run", keys_path);

    o = json_node_get_object (dry);
    g_assert_true (json_object_get_boolean_member (o, "dry_run"));
    g_assert_cmpint (json_object_get_int_member (o, "would_add"), ==, 1000);
    lines = json_object_get_array_member (o, "lines");
    g_assert_cmpuint (json_array_get_length (lines), ==, 1000);
    g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (lines, 0),
                                                    "result"), ==, "would_add");
    g_assert_cmpint (json_object_get_int_member (json_array_get_object_element (lines, 0),
                                                 "line"), ==, 3);
  }
  {
    g_autoptr(JsonNode) list = JSON (f, "key", "list");
    g_assert_cmpuint (json_array_get_length (get_array (list)), ==, 0);
  }

  {
    g_auto(GkTestRun) run = RUN (f, NULL, "key", "import", keys_path);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, "Added 1000, skipped 0"));
    /* The report names each key by its last four characters only. */
    g_assert_nonnull (strstr (run.out, "…5999"));
    for (guint i = 0; i < keys->len; i++)
      {
        const char *key = keys->pdata[i];

        g_assert_null (strstr (run.out, key));
        g_assert_null (strstr (run.err, key));
        g_assert_null (memmem (run.out, strlen (run.out), key, 20));
      }
  }
  {
    g_autoptr(JsonNode) list = JSON (f, "key", "list");
    g_assert_cmpuint (json_array_get_length (get_array (list)), ==, 1000);
  }
  for (guint i = 0; i < keys->len; i += 97)
    {
      g_assert_false (file_contains (db_path, keys->pdata[i]));
      g_assert_false (file_contains (wal_path, keys->pdata[i]));
    }

  /* Again, from standard input: every key is already in the pool. */
  {
    g_autoptr(JsonNode) again = NULL;
    g_auto(GkTestRun) run = RUN (f, text->str, "--json", "key", "import", "-");

    g_assert_cmpint (run.status, ==, 0);
    again = parse_json (run.out);
    o = json_node_get_object (again);
    g_assert_cmpint (json_object_get_int_member (o, "added"), ==, 0);
    g_assert_cmpint (json_object_get_int_member (o, "duplicates"), ==, 1000);
    g_assert_null (strstr (run.out, keys->pdata[0]));
  }

  /* CSV with a header: every column, in any order; bad lines reported by
   * number, the others added. */
  {
    g_autofree char *key_a = make_key (9001);
    g_autofree char *key_b = make_key (9002);
    g_autofree char *csv = g_strdup_printf (
      "key,name,priority,monthly_quota,daily_quota,minute_quota,daily_requests,minute_requests,"
      "budget,project\n"
      "%s,\"Team, A\",8,5000000,100000,20000,1000,10,12.5,proj-1\n"
      "%s,B,11,,,,,,,\n"
      "not-a-key,C,,,,,,,,\n"
      "%s,D,3,lots,,,,,,\n"
      "%s,Repeat,,,,,,,,\n",
      key_a, key_b, key_b, key_a);
    g_autoptr(JsonNode) report = NULL;
    g_autoptr(JsonNode) shown = NULL;
    g_auto(GkTestRun) run = { 0 };
    JsonObject *first, *q;
    gint64 id;

    g_file_set_contents (csv_path, csv, -1, &error);
    g_assert_no_error (error);
    run = RUN (f, NULL, "--json", "key", "import", csv_path);
    /* Some lines were refused. */
    g_assert_cmpint (run.status, ==, 1);
    report = parse_json (run.out);
    o = json_node_get_object (report);
    g_assert_cmpint (json_object_get_int_member (o, "added"), ==, 1);
    g_assert_cmpint (json_object_get_int_member (o, "invalid"), ==, 3);
    g_assert_cmpint (json_object_get_int_member (o, "duplicates"), ==, 1);
    lines = json_object_get_array_member (o, "lines");
    first = json_array_get_object_element (lines, 0);
    g_assert_cmpint (json_object_get_int_member (first, "line"), ==, 2);
    g_assert_cmpstr (json_object_get_string_member (first, "name"), ==, "Team, A");
    g_assert_cmpstr (json_object_get_string_member (first, "result"), ==, "added");
    for (guint i = 1; i < 4; i++)
      {
        JsonObject *bad = json_array_get_object_element (lines, i);

        g_assert_cmpint (json_object_get_int_member (bad, "line"), ==, i + 2);
        g_assert_cmpstr (json_object_get_string_member (bad, "result"), ==, "invalid");
        g_assert_nonnull (json_object_get_string_member (bad, "message"));
      }
    g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (lines, 4),
                                                    "result"), ==, "duplicate");
    g_assert_null (strstr (run.out, key_a));
    g_assert_null (strstr (run.out, key_b));
    g_assert_null (strstr (run.err, key_b));

    id = json_object_get_int_member (first, "id");
    {
      g_autofree char *id_text = g_strdup_printf ("%" G_GINT64_FORMAT, id);

      shown = JSON (f, "key", "show", id_text);
    }
    o = json_node_get_object (shown);
    g_assert_cmpint (json_object_get_int_member (o, "priority"), ==, 8);
    g_assert_cmpstr (json_object_get_string_member (o, "project"), ==, "proj-1");
    g_assert_cmpfloat (json_object_get_double_member (o, "monthly_budget_usd"), ==, 12.5);
    lines = json_object_get_array_member (o, "quotas");
    for (guint i = 0; i < json_array_get_length (lines); i++)
      {
        q = json_array_get_object_element (lines, i);
        if (g_str_equal (json_object_get_string_member (q, "quota_type"), "DAILY")
            && g_str_equal (json_object_get_string_member (q, "unit"), "TOKENS"))
          g_assert_cmpint (json_object_get_int_member (q, "limit_value"), ==, 100000);
        if (g_str_equal (json_object_get_string_member (q, "quota_type"), "PER_MINUTE")
            && g_str_equal (json_object_get_string_member (q, "unit"), "REQUESTS"))
          g_assert_cmpint (json_object_get_int_member (q, "limit_value"), ==, 10);
      }
  }

  /* A header with an unknown column, and a file with no key at all. */
  {
    g_auto(GkTestRun) run = RUN (f, "name,key,colour\nx,y,z\n", "key", "import", "-");
    assert_error (&run);
    g_assert_nonnull (strstr (run.err, "colour"));
  }
  {
    g_auto(GkTestRun) run = RUN (f, "\n# nothing\n", "key", "import", "-");
    assert_error (&run);
  }
  /* Never from the database's own files: reading them would drop the
   * command's locks on them. */
  {
    g_auto(GkTestRun) run = RUN (f, NULL, "key", "import", db_path);

    assert_error (&run);
    g_assert_nonnull (strstr (run.err, "database itself"));
  }
}

/* `key show` gives each quota's next reset in the local zone (here Ho Chi
 * Minh City, whatever TZ the suite runs with): ISO 8601 with the offset,
 * and for people with the reset zone's midnight. */
static void
test_key_show_reset_local (Fixture       *f,
                           gconstpointer  data)
{
  g_autofree char *key = make_key (22);
  g_autofree char *old_tz = g_strdup (g_getenv ("TZ"));
  g_autoptr(GTimeZone) hanoi = g_time_zone_new_identifier ("Asia/Ho_Chi_Minh");
  g_autoptr(GTimeZone) la = g_time_zone_new_identifier ("America/Los_Angeles");
  g_autoptr(JsonNode) shown = NULL;
  g_autofree char *human = NULL;
  JsonArray *quotas;
  gboolean found_daily = FALSE;

  add_key (f, "Hanoi", key, "5");
  RUN_OK (f, NULL, "key", "update", "1", "--daily-quota", "1000");

  g_autofree char *old_lc_all = g_strdup (g_getenv ("LC_ALL"));
  g_autofree char *old_language = g_strdup (g_getenv ("LANGUAGE"));

  /* English text, whatever locale the suite runs in. */
  g_setenv ("TZ", "Asia/Ho_Chi_Minh", TRUE);
  g_setenv ("LC_ALL", "C.UTF-8", TRUE);
  g_unsetenv ("LANGUAGE");
  shown = JSON (f, "key", "show", "1");
  human = OUT (f, "key", "show", "1");
  if (old_tz != NULL)
    g_setenv ("TZ", old_tz, TRUE);
  else
    g_unsetenv ("TZ");
  if (old_lc_all != NULL)
    g_setenv ("LC_ALL", old_lc_all, TRUE);
  else
    g_unsetenv ("LC_ALL");
  if (old_language != NULL)
    g_setenv ("LANGUAGE", old_language, TRUE);

  quotas = json_object_get_array_member (json_node_get_object (shown), "quotas");
  for (guint i = 0; i < json_array_get_length (quotas); i++)
    {
      JsonObject *q = json_array_get_object_element (quotas, i);
      gint64 reset_at = json_object_get_int_member (q, "reset_at");
      g_autoptr(GDateTime) utc = g_date_time_new_from_unix_utc (reset_at);
      g_autoptr(GDateTime) local = g_date_time_to_timezone (utc, hanoi);
      g_autoptr(GDateTime) there = g_date_time_to_timezone (utc, la);
      g_autofree char *expected = g_date_time_format (local, "%Y-%m-%dT%H:%M:%S%:z");

      g_assert_cmpstr (json_object_get_string_member (q, "reset_at_local"), ==, expected);
      g_assert_true (g_str_has_suffix (expected, "+07:00"));
      g_assert_nonnull (json_object_get_string_member (q, "reset_at_text"));
      if (g_str_equal (json_object_get_string_member (q, "quota_type"), "DAILY"))
        {
          g_autofree char *clock = g_date_time_format (local, "%H:%M UTC+07");

          found_daily = TRUE;
          /* Midnight in Los Angeles: 15:00 in Hanoi, 14:00 in US summer. */
          g_assert_cmpint (g_date_time_get_hour (there), ==, 0);
          g_assert_true (g_date_time_get_hour (local) == 14 || g_date_time_get_hour (local) == 15);
          g_assert_nonnull (strstr (json_object_get_string_member (q, "reset_at_text"), clock));
          g_assert_nonnull (strstr (json_object_get_string_member (q, "reset_at_text"),
                                    ", midnight P"));
          g_assert_nonnull (strstr (human, clock));
        }
    }
  g_assert_true (found_daily);
}

/* `key list --json` without its per-minute quota windows: those move with
 * the clock (a new minute resets them), so two listings a minute apart
 * differ there whatever happened in between. */
static char *
keys_without_minute_windows (const char *json)
{
  g_autoptr(JsonNode) root = parse_json (json);
  JsonArray *keys = json_node_get_array (root);

  for (guint i = 0; i < json_array_get_length (keys); i++)
    {
      JsonArray *quotas = json_object_get_array_member (json_array_get_object_element (keys, i),
                                                        "quotas");

      for (guint q = json_array_get_length (quotas); q-- > 0;)
        if (g_strcmp0 (json_object_get_string_member (json_array_get_object_element (quotas, q),
                                                      "quota_type"), "PER_MINUTE") == 0)
          json_array_remove_element (quotas, q);
    }
  return json_to_string (root, TRUE);
}

/* `db retention` and `db compact`: old rows go, the figures shown stay,
 * the file shrinks; a database kept busy gets a clear message. */
static void
test_db_compact (Fixture       *f,
                 gconstpointer  data)
{
  g_autofree char *key = make_key (21);
  g_autofree char *dash7 = NULL, *dash30 = NULL, *usage = NULL, *keys = NULL;
  g_autoptr(JsonNode) report = NULL;
  g_autoptr(JsonNode) retention = NULL;
  JsonObject *o;

  add_key (f, "Old", key, "5");
  /* 200 days of history, oldest first, then today's requests. A row every
   * 4320 s, half a step off the day: none falls on the 90-day cutoff, which
   * moves with the clock between the two compactions below. */
  run_sqlite (f, "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 3999)"
                 " INSERT INTO gemini_key_usage_log (key_id, model, tokens_used, cost_usd,"
                 " status, user_id, created_at)"
                 " SELECT 1, 'gemini-2.5-flash', 100 + i % 7, (i % 8) / 8.0,"
                 " CASE i % 5 WHEN 0 THEN 'ERROR' ELSE 'SUCCESS' END, 'user-' || (i % 13),"
                 " CAST (strftime ('%s', 'now') AS INTEGER) - 200 * 86400 + i * 4320 + 2160"
                 " FROM n");
  for (int i = 0; i < 3; i++)
    RUN_OK (f, NULL, "track", "--key", "1", "--model", "gemini-2.5-pro", "--status", "success",
            "--prompt-tokens", "1000", "--output-tokens", "10", "--user", "bob");

  retention = JSON (f, "db", "retention");
  g_assert_cmpint (json_object_get_int_member (json_node_get_object (retention),
                                               "retention_days"), ==, 0);
  RUN_OK (f, NULL, "db", "retention", "90");

  dash7 = OUT (f, "--json", "dashboard", "--days", "7");
  dash30 = OUT (f, "--json", "dashboard", "--days", "30");
  usage = OUT (f, "--json", "usage", "--limit", "100");
  keys = OUT (f, "--json", "key", "list");

  report = JSON (f, "db", "compact");
  o = json_node_get_object (report);
  /* 110 of the 200 days are past the 90 kept. */
  g_assert_cmpint (json_object_get_int_member (o, "rows_deleted"), >=, 2190);
  g_assert_cmpint (json_object_get_int_member (o, "rows_deleted"), <=, 2210);
  g_assert_cmpint (json_object_get_int_member (o, "buckets_coarsened"), >, 0);
  g_assert_true (json_object_get_boolean_member (o, "space_reclaimed"));
  g_assert_cmpint (json_object_get_int_member (o, "bytes_after"), <,
                   json_object_get_int_member (o, "bytes_before"));

  {
    g_autofree char *after7 = OUT (f, "--json", "dashboard", "--days", "7");
    g_autofree char *after30 = OUT (f, "--json", "dashboard", "--days", "30");
    g_autofree char *after_usage = OUT (f, "--json", "usage", "--limit", "100");
    g_autofree char *after_keys = OUT (f, "--json", "key", "list");

    g_assert_cmpstr (after7, ==, dash7);
    g_assert_cmpstr (after30, ==, dash30);
    g_assert_cmpstr (after_usage, ==, usage);
    g_autofree char *keys_before = keys_without_minute_windows (keys);
    g_autofree char *keys_after = keys_without_minute_windows (after_keys);

    g_assert_cmpstr (keys_after, ==, keys_before);
  }

  {
    g_auto(GkTestRun) run = RUN (f, NULL, "db", "retention", "soon");
    assert_usage_error (&run);
  }
  {
    g_auto(GkTestRun) run = RUN (f, NULL, "db", "compact");
    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, "Removed 0 old usage rows"));
  }
}

/* Another program holding the write lock past the busy timeout: compact
 * fails with a message that says the database was busy, and changes
 * nothing. */
static void
test_db_compact_busy (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) holder = NULL;
  g_autofree char *db = g_build_filename (f->data_dir, "keys.db", NULL);
  g_autoptr(GDataInputStream) lines = NULL;
  g_autofree char *line = NULL;
  const char *hold = "BEGIN IMMEDIATE;\nINSERT INTO settings VALUES ('held', '1');\n"
                     "SELECT 'held';\n";

  RUN_OK (f, NULL, "db", "migrate");
  holder = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                             &error, "sqlite3", db, NULL);
  g_assert_no_error (error);
  g_output_stream_write_all (g_subprocess_get_stdin_pipe (holder), hold, strlen (hold), NULL,
                             NULL, &error);
  g_assert_no_error (error);
  lines = g_data_input_stream_new (g_subprocess_get_stdout_pipe (holder));
  line = g_data_input_stream_read_line_utf8 (lines, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (line, ==, "held");

  {
    g_auto(GkTestRun) run = RUN (f, NULL, "db", "compact");
    g_assert_cmpint (run.status, ==, 1);
    g_assert_nonnull (strstr (run.err, "locked"));
  }

  g_output_stream_write_all (g_subprocess_get_stdin_pipe (holder), "ROLLBACK;\n", 10, NULL,
                             NULL, &error);
  g_output_stream_close (g_subprocess_get_stdin_pipe (holder), NULL, NULL);
  g_subprocess_wait (holder, NULL, &error);
  g_assert_no_error (error);
  RUN_OK (f, NULL, "db", "compact");
}

static void
test_terminal_prompt (Fixture       *f,
                      gconstpointer  data)
{
  g_autofree char *key = make_key (13);
  g_autofree char *typed = g_strdup_printf ("%s\n", key);
  g_autofree char *echoed = NULL;
  g_autofree char *echoed_no = NULL;
  g_autofree char *echoed_yes = NULL;

  /* The key typed at the prompt is not echoed, and is saved. */
  {
    g_auto(GkTestRun) run = RUN_TTY (f, "API key: ", typed, &echoed, "key", "add", "--name", "Typed");

    g_assert_cmpint (run.status, ==, 0);
    g_assert_null (strstr (echoed, key));
    g_assert_null (strstr (echoed, key + 4));
    g_assert_null (strstr (run.out, key));
    g_assert_nonnull (strstr (run.out, "Typed"));
  }

  /* On a terminal, delete asks; anything but yes keeps the key. */
  {
    g_auto(GkTestRun) run = RUN_TTY (f, "[y/N]", "n\n", &echoed_no, "key", "delete", "1");
    g_auto(GkTestRun) show = RUN (f, NULL, "key", "show", "1");

    g_assert_cmpint (run.status, ==, 1);
    g_assert_cmpint (show.status, ==, 0);
  }
  {
    g_auto(GkTestRun) run = RUN_TTY (f, "[y/N]", "y\n", &echoed_yes, "key", "delete", "1");
    g_auto(GkTestRun) show = RUN (f, NULL, "key", "show", "1");

    g_assert_cmpint (run.status, ==, 0);
    g_assert_cmpint (show.status, ==, 1);
  }
}

static guint
file_mode (const char *path)
{
  GStatBuf st;

  g_assert_cmpint (g_stat (path, &st), ==, 0);
  return st.st_mode & 0777;
}

static void
test_master_key_file_rotate (Fixture       *f,
                             gconstpointer  data)
{
  g_autofree char *key = make_key (11);
  g_autofree char *old_contents = NULL;
  g_autofree char *new_contents = NULL;
  g_autofree char *copy = g_build_filename (f->dir, "old.key", NULL);

  add_key (f, "Rotating", key, "5");
  g_assert_true (g_file_get_contents (f->key_file, &old_contents, NULL, NULL));
  g_assert_true (g_file_set_contents_full (copy, old_contents, -1, G_FILE_SET_CONTENTS_NONE,
                                           0600, NULL));

  RUN_OK (f, NULL, "master-key", "rotate");
  g_assert_true (g_file_get_contents (f->key_file, &new_contents, NULL, NULL));
  g_assert_cmpstr (old_contents, !=, new_contents);
  g_assert_cmpuint (file_mode (f->key_file), ==, 0600);

  /* The new key opens every key; the old one no longer does. */
  {
    g_autoptr(JsonNode) list = JSON (f, "key", "list");
    g_assert_cmpuint (json_array_get_length (get_array (list)), ==, 1);
  }
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_OTHER, copy, NULL, "key", "list");
    assert_error (&run);
  }
}

static void
test_master_key_keyring_round_trip (Fixture       *f,
                                    gconstpointer  data)
{
  g_autofree char *key = make_key (12);
  g_autofree char *exported = g_build_filename (f->dir, "exported.key", NULL);

  if (g_getenv ("GK_IN_KEYRING_SESSION") == NULL)
    {
      g_test_skip ("needs the keyring of tests/keyring-session.sh");
      return;
    }

  /* Keys encrypted under the file's master key… */
  add_key (f, "Portable", key, "5");

  /* …are out of reach through the keyring, which does not have it. */
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_KEYRING, NULL, NULL, "key", "list");
    assert_error (&run);
    g_assert_nonnull (strstr (run.err, "master-key import"));
  }

  /* A wrong key file is refused and changes nothing. */
  {
    g_autofree char *wrong = g_build_filename (f->dir, "wrong.key", NULL);

    write_key_file (wrong);
    {
      g_auto(GkTestRun) run = RUN_WITH (f, MASTER_KEYRING, NULL, NULL, "master-key", "import", wrong);
      assert_error (&run);
    }
  }

  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_KEYRING, NULL, NULL, "master-key", "import",
                                f->key_file);
    g_assert_cmpint (run.status, ==, 0);
  }
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_KEYRING, NULL, NULL, "--json", "key", "list");
    g_autoptr(JsonNode) list = NULL;

    g_assert_cmpint (run.status, ==, 0);
    list = parse_json (run.out);
    g_assert_cmpuint (json_array_get_length (get_array (list)), ==, 1);
  }

  /* And back out of the keyring into a file that works on its own. */
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_KEYRING, NULL, NULL, "master-key", "export",
                                exported);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_cmpuint (file_mode (exported), ==, 0600);
  }
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_OTHER, exported, NULL, "key", "show", "1");
    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, "Portable"));
  }

  /* Rotating in the keyring leaves the exported copy behind. */
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_KEYRING, NULL, NULL, "master-key", "rotate");
    g_assert_cmpint (run.status, ==, 0);
  }
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_KEYRING, NULL, NULL, "key", "show", "1");
    g_assert_cmpint (run.status, ==, 0);
  }
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_OTHER, exported, NULL, "key", "show", "1");
    assert_error (&run);
  }
}

/* gemini-keysctl @args in Vietnamese, with the build tree's catalogue;
 * returns its standard output. */
static char *
run_vietnamese (Fixture           *f,
                const char *const *args)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autofree char *localedir = g_build_filename (g_getenv ("GEMINI_KEYS_BUILD_ROOT"), "po", NULL);
  char *out = NULL;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_subprocess_launcher_set_stdin_file_path (launcher, "/dev/null");
  g_subprocess_launcher_setenv (launcher, "LC_ALL", "vi_VN.UTF-8", TRUE);
  g_subprocess_launcher_unsetenv (launcher, "LANGUAGE");
  g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_LOCALEDIR", localedir, TRUE);
  g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_DATA_DIR", f->data_dir, TRUE);
  g_ptr_array_add (argv, (gpointer) g_getenv ("GEMINI_KEYSCTL"));
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);
  process = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (process, NULL, NULL, &out, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_successful (process));
  return out;
}

#define RUN_VIETNAMESE(f, ...) run_vietnamese ((f), (const char *[]) { __VA_ARGS__, NULL })

/* Uninstalled, GEMINI_KEYS_LOCALEDIR (set by `meson devenv`) points the
 * CLI to the build tree's catalogue, as it does the app. The audit log's
 * table reads in Vietnamese; its --json stays as stored, in English. */
static void
test_translated (Fixture       *f,
                 gconstpointer  data)
{
  g_autofree char *key = make_key (17);
  g_autofree char *help = NULL;
  g_autofree char *audit = NULL;
  g_autofree char *audit_json = NULL;
  locale_t vi = newlocale (LC_ALL_MASK, "vi_VN.UTF-8", (locale_t) 0);

  if (vi == (locale_t) 0)
    {
      g_test_skip ("no vi_VN.UTF-8 locale (./run test generates it with localedef)");
      return;
    }
  freelocale (vi);

  help = RUN_VIETNAMESE (f, "--help");
  /* po/vi.po: "Commands:" and "Global options:". */
  g_assert_nonnull (strstr (help, "Lệnh:"));
  g_assert_nonnull (strstr (help, "Tùy chọn chung:"));

  add_key (f, "Khóa; no key left", key, "7");
  RUN_OK (f, NULL, "quotas", "reset");
  audit = RUN_VIETNAMESE (f, "audit");
  g_assert_nonnull (strstr (audit, "Khóa; no key left"));
  g_assert_nonnull (strstr (audit, "độ ưu tiên 7"));
  g_assert_nonnull (strstr (audit, "mọi hạn mức"));
  g_assert_null (strstr (audit, "priority"));
  g_assert_null (strstr (audit, "all quotas"));
  audit_json = RUN_VIETNAMESE (f, "--json", "audit");
  g_assert_nonnull (strstr (audit_json, "\"priority 7\""));
  g_assert_nonnull (strstr (audit_json, "\"all quotas\""));
}

static guint
count_lines (const char *text)
{
  guint n = 0;

  for (const char *p = text; *p != '\0'; p++)
    n += *p == '\n';
  return n;
}

/* A server: GEMINI_KEYS_MASTER_KEY_FILE set and no D-Bus session. Every
 * hint names a command that works there, and `master-key import` writes
 * the key file. */
static void
test_master_key_headless (Fixture       *f,
                          gconstpointer  data)
{
  g_autofree char *key = make_key (13);
  g_autofree char *input = g_strdup_printf ("%s\n", key);
  g_autofree char *server_key = g_build_filename (f->dir, "server", "master.key", NULL);
  g_autofree char *exported = g_build_filename (f->dir, "exported.key", NULL);
  g_autofree char *stranger = g_build_filename (f->dir, "stranger.key", NULL);
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;

  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_OTHER_NO_BUS, server_key, input,
                                "key", "add", "--name", "Server");
    g_assert_cmpint (run.status, ==, 0);
    g_assert_cmpuint (file_mode (server_key), ==, 0600);
  }
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_OTHER_NO_BUS, server_key, NULL,
                                "master-key", "export", exported);
    g_assert_cmpint (run.status, ==, 0);
  }
  /* export does not overwrite a file unless told to. */
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_OTHER_NO_BUS, server_key, NULL,
                                "master-key", "export", exported);
    assert_error (&run);
    g_assert_nonnull (strstr (run.err, "--force"));
  }
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_OTHER_NO_BUS, server_key, NULL,
                                "master-key", "export", "--force", exported);
    g_assert_cmpint (run.status, ==, 0);
  }

  /* The key file is lost: one message, naming the way out, which works. */
  g_assert_cmpint (g_unlink (server_key), ==, 0);
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_OTHER_NO_BUS, server_key, NULL, "key", "list");
    assert_error (&run);
    g_assert_nonnull (strstr (run.err, "master-key import FILE"));
    g_assert_nonnull (strstr (run.err, "1 encrypted key"));
    g_assert_cmpuint (count_lines (run.err), ==, 1);
  }
  /* A key of another database is refused. */
  write_key_file (stranger);
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_OTHER_NO_BUS, server_key, NULL,
                                "master-key", "import", stranger);
    assert_error (&run);
    g_assert_false (g_file_test (server_key, G_FILE_TEST_EXISTS));
  }
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_OTHER_NO_BUS, server_key, NULL,
                                "master-key", "import", exported);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, server_key));
    g_assert_cmpuint (file_mode (server_key), ==, 0600);
  }
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_OTHER_NO_BUS, server_key, NULL, "key", "show", "1");
    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, "Server"));
  }

  /* A key file holding another key is not overwritten without --force. */
  write_key_file (server_key);
  g_assert_true (g_file_get_contents (server_key, &before, NULL, NULL));
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_OTHER_NO_BUS, server_key, NULL,
                                "master-key", "import", exported);
    assert_error (&run);
    g_assert_nonnull (strstr (run.err, "--force"));
  }
  g_assert_true (g_file_get_contents (server_key, &after, NULL, NULL));
  g_assert_cmpstr (before, ==, after);
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_OTHER_NO_BUS, server_key, NULL,
                                "master-key", "import", "--force", exported);
    g_assert_cmpint (run.status, ==, 0);
  }
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_OTHER_NO_BUS, server_key, NULL, "key", "show", "1");
    g_assert_cmpint (run.status, ==, 0);
  }
}

/* A command that stops for want of a keyring wrote nothing: no database
 * file appears, and the error is one message. */
static void
test_no_keyring_leaves_nothing (Fixture       *f,
                                gconstpointer  data)
{
  g_autofree char *db_path = g_build_filename (f->data_dir, "keys.db", NULL);
  g_autofree char *key = make_key (14);
  g_autofree char *input = g_strdup_printf ("%s\n", key);

  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_KEYRING_NO_BUS, NULL, NULL, "key", "list");
    assert_error (&run);
    g_assert_nonnull (strstr (run.err, "GEMINI_KEYS_MASTER_KEY_FILE"));
    g_assert_cmpuint (count_lines (run.err), ==, 1);
  }
  g_assert_false (g_file_test (db_path, G_FILE_TEST_EXISTS));
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_KEYRING_NO_BUS, NULL, input,
                                "key", "add", "--name", "Nowhere");
    assert_error (&run);
  }
  g_assert_false (g_file_test (db_path, G_FILE_TEST_EXISTS));
  /* serve needs the key store and the pool: the second must not bring the
   * file back. */
  {
    g_auto(GkTestRun) run = RUN_WITH (f, MASTER_KEYRING_NO_BUS, NULL, NULL, "serve", "--port", "0");
    assert_error (&run);
  }
  g_assert_false (g_file_test (db_path, G_FILE_TEST_EXISTS));
}

/* The case: `GEMINI_KEYS_DATA_DIR=~/copy gemini-keysctl master-key
 * rotate` on a copy of keys.db (same identifier) must leave the original
 * readable, in the keyring and with a shared key file. A rotation decrypts
 * every key, so one that succeeds proves the database opens. */
static void
test_master_key_rotate_copy (Fixture       *f,
                             gconstpointer  data)
{
  MasterSource source = GPOINTER_TO_INT (data);
  g_autofree char *key = make_key (15);
  g_autofree char *input = g_strdup_printf ("%s\n", key);
  g_autofree char *original_dir = g_strdup (f->data_dir);
  g_autofree char *copy_dir = g_build_filename (f->dir, "copy", NULL);
  g_autofree char *original_db = g_build_filename (original_dir, "keys.db", NULL);
  g_autofree char *copy_db = g_build_filename (copy_dir, "keys.db", NULL);
  g_autofree char *contents = NULL;
  gsize len = 0;
  char *saved;
  const char *rounds[] = { "copy", "original", "copy", "original" };

  if (source == MASTER_KEYRING && g_getenv ("GK_IN_KEYRING_SESSION") == NULL)
    {
      g_test_skip ("needs the keyring of tests/keyring-session.sh");
      return;
    }

  {
    g_auto(GkTestRun) run = RUN_WITH (f, source, f->key_file, input, "key", "add", "--name", "Shared");
    g_assert_cmpint (run.status, ==, 0);
  }
  /* The last connection closed: keys.db alone is the whole database. */
  g_assert_true (g_file_get_contents (original_db, &contents, &len, NULL));
  g_assert_cmpint (g_mkdir_with_parents (copy_dir, 0700), ==, 0);
  g_assert_true (g_file_set_contents_full (copy_db, contents, (gssize) len,
                                           G_FILE_SET_CONTENTS_NONE, 0600, NULL));
  saved = f->data_dir;
  f->data_dir = copy_dir;
  {
    g_auto(GkTestRun) run = RUN_WITH (f, source, f->key_file, NULL, "--json", "key", "list");
    g_autoptr(JsonNode) list = NULL;

    g_assert_cmpint (run.status, ==, 0);
    list = parse_json (run.out);
    g_assert_cmpuint (json_array_get_length (get_array (list)), ==, 1);
  }
  f->data_dir = saved;

  for (guint i = 0; i < G_N_ELEMENTS (rounds); i++)
    {
      gboolean on_copy = g_str_equal (rounds[i], "copy");

      saved = f->data_dir;
      f->data_dir = on_copy ? copy_dir : original_dir;
      {
        g_auto(GkTestRun) run = RUN_WITH (f, source, f->key_file, NULL, "master-key", "rotate");
        if (run.status != 0)
          g_error ("rotating the %s after %u rotations: %s", rounds[i], i, run.err);
      }
      f->data_dir = saved;
    }
}

#define ADD(path, func) \
  g_test_add ((path), Fixture, NULL, fixture_set_up, (func), fixture_tear_down)

/* `keys compare`, `keys forecast` and `keys spikes`, and the spike mark of
 * the rotation log. */
static void
test_keys_insights (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *key_a = make_key (41);
  g_autofree char *key_b = make_key (42);
  g_autoptr(JsonNode) compare = NULL;
  g_autoptr(JsonNode) sorted = NULL;
  g_autoptr(JsonNode) forecast = NULL;
  g_autoptr(JsonNode) spikes = NULL;
  g_autoptr(JsonNode) rotations = NULL;
  const char *const latencies[] = { "150", "250", "350" };
  JsonArray *keys;
  JsonObject *row;
  gint64 a, b;

  a = add_key (f, "Alpha", key_a, "5");
  b = add_key (f, "Beta", key_b, "5");
  for (guint i = 0; i < G_N_ELEMENTS (latencies); i++)
    {
      g_auto(GkTestRun) run = RUN (f, NULL, "track", "--key", "1", "--model", "gemini-2.5-flash",
                             "--prompt-tokens", "1000", "--status", "success",
                             "--latency-ms", latencies[i]);
      g_assert_cmpint (run.status, ==, 0);
    }
  {
    g_auto(GkTestRun) run = RUN (f, NULL, "track", "--key", "1", "--model", "gemini-2.5-flash",
                           "--status", "rate_limited", "--http-status", "429");
    g_auto(GkTestRun) other = RUN (f, NULL, "track", "--key", "2", "--model", "gemini-2.5-flash",
                             "--prompt-tokens", "10", "--status", "success");
    g_assert_cmpint (run.status, ==, 0);
    g_assert_cmpint (other.status, ==, 0);
  }

  compare = JSON (f, "keys", "compare", "--days", "1");
  g_assert_cmpint (json_object_get_int_member (json_node_get_object (compare), "days"), ==, 1);
  keys = json_object_get_array_member (json_node_get_object (compare), "keys");
  g_assert_cmpuint (json_array_get_length (keys), ==, 2);
  row = json_array_get_object_element (keys, 0);
  g_assert_cmpint (json_object_get_int_member (row, "key_id"), ==, a);
  g_assert_cmpstr (json_object_get_string_member (row, "name"), ==, "Alpha");
  g_assert_cmpint (json_object_get_int_member (row, "requests"), ==, 4);
  g_assert_cmpfloat_with_epsilon (json_object_get_double_member (row, "success_rate"), 75, 1e-9);
  g_assert_cmpfloat_with_epsilon (json_object_get_double_member (row, "rate_limited_rate"), 25,
                                  1e-9);
  g_assert_cmpfloat_with_epsilon (json_object_get_double_member (row, "p50_latency_ms"), 250,
                                  1e-9);
  g_assert_cmpint (json_object_get_int_member (row, "tokens_used"), ==, 3000);
  g_assert_cmpfloat_with_epsilon (json_object_get_double_member (row, "share"), 80, 1e-9);
  row = json_array_get_object_element (keys, 1);
  g_assert_cmpint (json_object_get_int_member (row, "key_id"), ==, b);
  g_assert_true (json_object_get_null_member (row, "p50_latency_ms"));

  sorted = JSON (f, "keys", "compare", "--sort", "p50_latency_ms");
  keys = json_object_get_array_member (json_node_get_object (sorted), "keys");
  g_assert_cmpint (json_object_get_int_member (json_array_get_object_element (keys, 0),
                                               "key_id"), ==, a);
  {
    g_auto(GkTestRun) run = RUN (f, NULL, "keys", "compare", "--days", "7");
    g_auto(GkTestRun) bad = RUN (f, NULL, "keys", "compare", "--days", "0");
    g_auto(GkTestRun) unknown = RUN (f, NULL, "keys", "compare", "--sort", "colour");

    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, "P95"));
    g_assert_nonnull (strstr (run.out, "Alpha"));
    g_assert_cmpint (bad.status, ==, 2);
    g_assert_cmpint (unknown.status, ==, 2);
  }

  {
    g_auto(GkTestRun) run = RUN (f, NULL, "key", "update", "2", "--daily-quota", "1000000");
    g_assert_cmpint (run.status, ==, 0);
  }
  forecast = JSON (f, "keys", "forecast");
  row = json_node_get_object (forecast);
  g_assert_cmpint (json_object_get_int_member (row, "keys_out_today"), ==, 0);
  keys = json_object_get_array_member (row, "windows");
  g_assert_cmpuint (json_array_get_length (keys), >=, 1);
  row = json_array_get_object_element (keys, 0);
  g_assert_cmpint (json_object_get_int_member (row, "key_id"), ==, b);
  g_assert_cmpstr (json_object_get_string_member (row, "quota_type"), ==, "DAILY");
  g_assert_true (json_object_get_null_member (row, "runs_out_at"));

  spikes = JSON (f, "keys", "spikes");
  g_assert_cmpuint (json_array_get_length (get_array (spikes)), ==, 0);
  rotations = JSON (f, "rotations");
  g_assert_cmpuint (json_array_get_length (get_array (rotations)), ==, 1);
  g_assert_false (json_object_get_boolean_member (
                    json_array_get_object_element (get_array (rotations), 0), "in_spike"));
}

int
main (int    argc,
      char **argv)
{
  /* A child that exits before reading its input must not kill the test. */
  signal (SIGPIPE, SIG_IGN);
  g_test_init (&argc, &argv, NULL);

  ADD ("/cli/db-migrate", test_migrate);
  ADD ("/cli/key/add-list-masked", test_add_list_masked);
  ADD ("/cli/key/invalid-input", test_invalid_input);
  ADD ("/cli/usage-errors", test_usage_errors);
  ADD ("/cli/track-usage", test_track_usage);
  ADD ("/cli/key/rotate-delete", test_rotate_delete);
  ADD ("/cli/key/update", test_update);
  ADD ("/cli/quotas-reset-without-master-key", test_quotas_reset_without_master_key);
  ADD ("/cli/tokens", test_tokens);
  ADD ("/cli/audit", test_audit);
  ADD ("/cli/budget", test_budget);
  ADD ("/cli/hygiene", test_hygiene);
  ADD ("/cli/export-csv", test_export_csv);
  ADD ("/cli/export-xlsx", test_export_xlsx);
  ADD ("/cli/export-golden", test_export_golden);
  ADD ("/cli/listings", test_listings);
  ADD ("/cli/db-compact", test_db_compact);
  ADD ("/cli/key-import", test_key_import);
  ADD ("/cli/key-show-reset-local", test_key_show_reset_local);
  ADD ("/cli/db-compact-busy", test_db_compact_busy);
  ADD ("/cli/key/terminal-prompt", test_terminal_prompt);
  ADD ("/cli/master-key/file-rotate", test_master_key_file_rotate);
  ADD ("/cli/master-key/keyring-round-trip", test_master_key_keyring_round_trip);
  ADD ("/cli/translated", test_translated);
  ADD ("/cli/keys/insights", test_keys_insights);
  ADD ("/cli/master-key/headless", test_master_key_headless);
  g_test_add ("/cli/master-key/rotate-copy/keyring", Fixture, GINT_TO_POINTER (MASTER_KEYRING),
              fixture_set_up, test_master_key_rotate_copy, fixture_tear_down);
  g_test_add ("/cli/master-key/rotate-copy/file", Fixture, GINT_TO_POINTER (MASTER_OTHER),
              fixture_set_up, test_master_key_rotate_copy, fixture_tear_down);
  ADD ("/cli/master-key/no-keyring-leaves-nothing", test_no_keyring_leaves_nothing);

  return g_test_run ();
}
