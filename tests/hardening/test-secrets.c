/* test-secrets.c: no full key in what gemini-keysctl prints, logs or
 * stores in plain text; private files are 0600; a process holding keys
 * cannot dump core.
 *
 * Scenarios run the built gemini-keysctl ($GEMINI_KEYSCTL) with its own data
 * folder and master key file, and with G_MESSAGES_DEBUG=all so debug logs
 * are searched too.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#define _GNU_SOURCE
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <glib/gstdio.h>

#include "gk-hardening.h"
#include "hardening-util.h"

#define N_KEYS 4

typedef struct
{
  char    *dir;
  char    *data_dir;
  char    *key_file;
  char    *keys[N_KEYS];   /* full keys that must never show */
  GString *seen;           /* every byte the CLI printed */
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("gk-secrets-XXXXXX", &error);
  g_assert_no_error (error);
  f->data_dir = g_build_filename (f->dir, "data", NULL);
  f->key_file = g_build_filename (f->dir, "master.key", NULL);
  /* Both formats; one key's tail is also its hint, which may show. */
  for (guint i = 0; i < N_KEYS; i++)
    f->keys[i] = (i % 2 == 0) ? gk_test_api_key (7100 + i)
                              : g_strdup_printf ("AQ.Ab8RN6L%032uXy", 7100 + i);
  f->seen = g_string_new (NULL);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  gk_test_rm_rf (f->dir);
  g_free (f->dir);
  g_free (f->data_dir);
  g_free (f->key_file);
  for (guint i = 0; i < N_KEYS; i++)
    g_free (f->keys[i]);
  g_string_free (f->seen, TRUE);
}

static void
assert_no_key (Fixture    *f,
               const char *text,
               gsize       len,
               const char *where)
{
  for (guint i = 0; i < N_KEYS; i++)
    if (memmem (text, len, f->keys[i], strlen (f->keys[i])) != NULL)
      g_error ("key %u appears in %s", i, where);
  /* Nor its secret middle (the first 20 characters are enough to use the
   * key with a little guessing). */
  for (guint i = 0; i < N_KEYS; i++)
    if (memmem (text, len, f->keys[i], 20) != NULL)
      g_error ("the start of key %u appears in %s", i, where);
}

static GSubprocessLauncher *
make_launcher (Fixture *f,
               gboolean with_stdin)
{
  GSubprocessLauncher *launcher =
    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE
                               | (with_stdin ? G_SUBPROCESS_FLAGS_STDIN_PIPE
                                             : G_SUBPROCESS_FLAGS_STDIN_INHERIT));

  g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_DATA_DIR", f->data_dir, TRUE);
  g_subprocess_launcher_setenv (launcher, GK_MASTER_KEY_FILE_ENV, f->key_file, TRUE);
  g_subprocess_launcher_setenv (launcher, "G_MESSAGES_DEBUG", "all", TRUE);
  g_subprocess_launcher_setenv (launcher, "LC_ALL", "C.UTF-8", TRUE);
  return launcher;
}

/* Runs gemini-keysctl with @args (NULL-terminated) and @input on stdin;
 * returns the exit status. Checks its output for keys. */
static int
run_cli (Fixture    *f,
         const char *input,
         ...)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GSubprocessLauncher) launcher = make_launcher (f, TRUE);
  g_autoptr(GSubprocess) proc = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *cmdline = NULL;
  const char *arg;
  va_list ap;

  g_ptr_array_add (argv, (gpointer) g_getenv ("GEMINI_KEYSCTL"));
  va_start (ap, input);
  while ((arg = va_arg (ap, const char *)) != NULL)
    g_ptr_array_add (argv, (gpointer) arg);
  va_end (ap);
  g_ptr_array_add (argv, NULL);
  cmdline = g_strjoinv (" ", (char **) argv->pdata + 1);
  /* The test's own log shows the command without the keys it passes. */
  for (guint i = 0; i < N_KEYS; i++)
    {
      g_autofree char *label = g_strdup_printf ("<key %u>", i);
      g_auto(GStrv) parts = g_strsplit (cmdline, f->keys[i], -1);

      g_free (cmdline);
      cmdline = g_strjoinv (label, parts);
    }

  proc = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (proc, input ? input : "", NULL, &out, &err, &error);
  g_assert_no_error (error);
  g_subprocess_wait (proc, NULL, &error);
  g_assert_no_error (error);

  g_test_message ("$ %s → %d\n%s%s", cmdline, g_subprocess_get_exit_status (proc),
                  out ? out : "", err ? err : "");
  assert_no_key (f, out, strlen (out), "stdout");
  assert_no_key (f, err, strlen (err), "stderr");
  g_string_append (f->seen, out);
  g_string_append (f->seen, err);
  return g_subprocess_get_exit_status (proc);
}

static void
assert_mode (const char *path,
             guint       mode)
{
  GStatBuf st;

  g_assert_cmpint (g_stat (path, &st), ==, 0);
  if ((st.st_mode & 0777) != mode)
    g_error ("%s has mode %o, not %o", path, st.st_mode & 0777, mode);
}

static void
assert_store_clean (Fixture *f)
{
  const char *suffixes[] = { "", "-wal", "-shm", "-journal" };

  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *path = g_strconcat (f->data_dir, "/keys.db", suffixes[i], NULL);
      g_autofree char *contents = NULL;
      gsize len = 0;

      if (!g_file_get_contents (path, &contents, &len, NULL))
        continue;
      assert_no_key (f, contents, len, path);
    }
  /* And nowhere else under the data folder. */
  for (guint i = 0; i < N_KEYS; i++)
    g_assert_false (hardening_tree_contains (f->data_dir, f->keys[i]));
}

static void
test_cli_scenarios (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *db = NULL;
  g_autofree char *csv = g_build_filename (f->dir, "usage.csv", NULL);
  g_autofree char *exported = g_build_filename (f->dir, "exported.key", NULL);
  g_autofree char *error_text = NULL;
  g_autofree char *line = NULL;

  if (g_getenv ("GEMINI_KEYSCTL") == NULL)
    {
      g_test_skip ("GEMINI_KEYSCTL is not set");
      return;
    }

  g_assert_cmpint (run_cli (f, NULL, "db", "migrate", NULL), ==, 0);
  db = g_build_filename (f->data_dir, "keys.db", NULL);
  assert_mode (db, 0600);
  assert_mode (f->data_dir, 0700);

  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *name = g_strdup_printf ("key-%u", i);
      g_autofree char *input = g_strconcat (f->keys[i], "\n", NULL);

      g_assert_cmpint (run_cli (f, input, "key", "add", "--name", name,
                                "--daily-quota", "100000", NULL), ==, 0);
    }
  if (g_file_test (f->key_file, G_FILE_TEST_EXISTS))
    assert_mode (f->key_file, 0600);

  /* Refusals that must not echo the key they refuse. */
  line = g_strconcat (f->keys[0], "\n", NULL);
  g_assert_cmpint (run_cli (f, line, "key", "add", "--name", "again", NULL), ==, 1);
  g_clear_pointer (&line, g_free);
  line = g_strconcat (f->keys[3], "!\n", NULL);
  g_assert_cmpint (run_cli (f, line, "key", "add", "--name", "broken", NULL), !=, 0);
  g_clear_pointer (&line, g_free);

  /* Every read-only view, human and JSON. */
  g_assert_cmpint (run_cli (f, NULL, "key", "list", NULL), ==, 0);
  g_assert_cmpint (run_cli (f, NULL, "--json", "key", "list", NULL), ==, 0);
  g_assert_cmpint (run_cli (f, NULL, "key", "show", "1", NULL), ==, 0);
  g_assert_cmpint (run_cli (f, NULL, "--json", "key", "show", "2", NULL), ==, 0);
  g_assert_cmpint (run_cli (f, NULL, "select", NULL), ==, 0);
  g_assert_cmpint (run_cli (f, NULL, "--json", "select", NULL), ==, 0);

  /* An upstream error that quotes the key back (as Google's do). */
  error_text = g_strdup_printf ("API key not valid. Please pass a valid API key. key=%s",
                                f->keys[1]);
  g_assert_cmpint (run_cli (f, NULL, "track", "--key", "2", "--model", "gemini-2.5-flash",
                            "--status", "invalid_key", "--http-status", "400",
                            "--error", error_text, NULL), ==, 0);
  g_assert_cmpint (run_cli (f, NULL, "track", "--key", "1", "--model", "gemini-2.5-flash",
                            "--prompt-tokens", "10", "--output-tokens", "5",
                            "--status", "success", "--user", "alice", NULL), ==, 0);
  g_assert_cmpint (run_cli (f, NULL, "usage", NULL), ==, 0);
  g_assert_cmpint (run_cli (f, NULL, "--json", "usage", NULL), ==, 0);
  g_assert_cmpint (run_cli (f, NULL, "usage", "--csv", NULL), ==, 0);
  g_assert_cmpint (run_cli (f, NULL, "rotations", NULL), ==, 0);
  g_assert_cmpint (run_cli (f, NULL, "--json", "dashboard", NULL), ==, 0);
  g_assert_cmpint (run_cli (f, NULL, "export", "--csv", csv, NULL), ==, 0);
  {
    g_autofree char *contents = NULL;
    gsize len = 0;

    g_assert_true (g_file_get_contents (csv, &contents, &len, NULL));
    assert_no_key (f, contents, len, "the CSV export");
  }

  /* Replacing and deleting keys. */
  line = g_strconcat (f->keys[3], "\n", NULL);
  g_assert_cmpint (run_cli (f, line, "key", "update", "3", "--replace-key", NULL), ==, 0);
  g_clear_pointer (&line, g_free);
  g_assert_cmpint (run_cli (f, NULL, "key", "delete", "1", "--yes", NULL), ==, 0);
  g_assert_cmpint (run_cli (f, NULL, "key", "rotate", "2", NULL), !=, 2);

  /* The master key export: private, and holds the master key only. */
  g_assert_cmpint (run_cli (f, NULL, "master-key", "export", exported, NULL), ==, 0);
  assert_mode (exported, 0600);
  {
    g_autofree char *contents = NULL;
    gsize len = 0;

    g_assert_true (g_file_get_contents (exported, &contents, &len, NULL));
    assert_no_key (f, contents, len, "the exported master key");
  }
  g_assert_cmpint (run_cli (f, NULL, "master-key", "rotate", NULL), ==, 0);

  assert_mode (db, 0600);
  assert_store_clean (f);
  assert_no_key (f, f->seen->str, f->seen->len, "the CLI's output");
}

/* The soft core limit of @pid from /proc (-1: unlimited). */
static gint64
core_limit_of (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/limits", pid);
  g_autofree char *contents = NULL;
  char *line;

  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return -2;
  line = strstr (contents, "Max core file size");
  if (line == NULL)
    return -2;
  line += strlen ("Max core file size");
  while (*line == ' ')
    line++;
  return g_str_has_prefix (line, "unlimited") ? -1 : g_ascii_strtoll (line, NULL, 10);
}

static void
test_cli_no_core (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) proc = NULL;
  struct rlimit limit;
  gint64 seen = -2;
  const char *argv[] = { g_getenv ("GEMINI_KEYSCTL"), "key", "add", "--name", "waiting", NULL };

  if (argv[0] == NULL)
    {
      g_test_skip ("GEMINI_KEYSCTL is not set");
      return;
    }
  g_assert_cmpint (run_cli (f, NULL, "db", "migrate", NULL), ==, 0);

  /* Give the child a core limit it would keep unless it lowers it. */
  g_assert_cmpint (getrlimit (RLIMIT_CORE, &limit), ==, 0);
  if (limit.rlim_max == 0)
    {
      g_test_skip ("core files are already off for this session");
      return;
    }
  limit.rlim_cur = limit.rlim_max;
  g_assert_cmpint (setrlimit (RLIMIT_CORE, &limit), ==, 0);

  /* `key add` waits for the key on stdin: look at it while it waits. */
  launcher = make_launcher (f, TRUE);
  proc = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < 200; i++)
    {
      seen = core_limit_of (atoi (g_subprocess_get_identifier (proc)));
      if (seen == 0)
        break;
      g_usleep (10000);
    }
  g_subprocess_force_exit (proc);
  g_subprocess_wait (proc, NULL, NULL);
  g_assert_cmpint (seen, ==, 0);
}

static void
test_hardening_init (void)
{
  if (g_test_subprocess ())
    {
      struct rlimit limit;

      gk_hardening_init ();
      g_assert_cmpint (prctl (PR_GET_DUMPABLE, 0, 0, 0, 0), ==, 0);
      g_assert_cmpint (getrlimit (RLIMIT_CORE, &limit), ==, 0);
      g_assert_cmpuint (limit.rlim_cur, ==, 0);
      g_assert_cmpuint (limit.rlim_max, ==, 0);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add_func ("/hardening/secrets/hardening-init", test_hardening_init);
  g_test_add ("/hardening/secrets/cli", Fixture, NULL,
              fixture_setup, test_cli_scenarios, fixture_teardown);
  g_test_add ("/hardening/secrets/cli-no-core", Fixture, NULL,
              fixture_setup, test_cli_no_core, fixture_teardown);
  return g_test_run ();
}
