/* test-master-key-live.c: a headless gateway (`gemini-keysctl serve`, the
 * built binary, against tests/mock-gemini) while `gemini-keysctl
 * master-key rotate` runs in other processes, and while it is stopped.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <sqlite3.h>

#define N_CLIENTS    8
#define N_ROTATIONS  5
#define API_KEY_FMT  "AIzaSyLiveRotation%021u"

typedef struct
{
  char        *dir;
  char        *data_dir;
  char        *key_file;
  char        *log_path;
  GSubprocess *mock;
  guint        mock_port;
  GSubprocess *gateway;
  guint        port;
  char        *token;
} Fixture;

static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static GSubprocessLauncher *
launcher_new (Fixture         *f,
              GSubprocessFlags flags,
              const char      *key_file)
{
  GSubprocessLauncher *launcher = g_subprocess_launcher_new (flags);

  g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_DATA_DIR", f->data_dir, TRUE);
  g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_MASTER_KEY_FILE", key_file, TRUE);
  g_subprocess_launcher_unsetenv (launcher, "DBUS_SESSION_BUS_ADDRESS");
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  return launcher;
}

/* Runs gemini-keysctl to its end; returns stdout. */
static char *
ctl (Fixture    *f,
     const char *key_file,
     const char *input,
     int         expected_status,
     ...)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  char *out = NULL;
  g_autofree char *err = NULL;
  const char *arg;
  va_list args;

  g_ptr_array_add (argv, (gpointer) g_getenv ("GEMINI_KEYSCTL"));
  va_start (args, expected_status);
  while ((arg = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (argv, (gpointer) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);

  launcher = launcher_new (f, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                              | G_SUBPROCESS_FLAGS_STDERR_PIPE, key_file);
  process = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (process, input, NULL, &out, &err, &error);
  g_assert_no_error (error);
  if (g_subprocess_get_exit_status (process) != expected_status)
    g_error ("gemini-keysctl %s: exit %d: %s", (char *) argv->pdata[1],
             g_subprocess_get_exit_status (process), err);
  return out;
}

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autofree char *line = NULL;

  f->dir = g_dir_make_tmp ("gk-mk-live-XXXXXX", &error);
  g_assert_no_error (error);
  f->data_dir = g_build_filename (f->dir, "data", NULL);
  f->key_file = g_build_filename (f->dir, "master.key", NULL);
  f->log_path = g_build_filename (f->dir, "gateway.log", NULL);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  f->mock = g_subprocess_launcher_spawn (launcher, &error, g_getenv ("GK_MOCK_GEMINI"),
                                         "--port", "0", NULL);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (f->mock));
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (line, "PORT "));
  f->mock_port = (guint) g_ascii_strtoull (line + 5, NULL, 10);

  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *key = g_strdup_printf (API_KEY_FMT "\n", i);
      g_autofree char *name = g_strdup_printf ("key-%u", i);
      g_autofree char *o = ctl (f, f->key_file, key, 0, "key", "add", "--name", name, NULL);
    }
  f->token = ctl (f, f->key_file, NULL, 0, "token", "add", "--name", "load", NULL);
  g_strstrip (f->token);
}

static void
start_gateway (Fixture    *f,
               const char *key_file,
               const char *grace)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autofree char *upstream = g_strdup_printf ("http://127.0.0.1:%u", f->mock_port);
  g_autofree char *contents = NULL;
  gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

  launcher = launcher_new (f, G_SUBPROCESS_FLAGS_NONE, key_file);
  g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_UPSTREAM", upstream, TRUE);
  g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_MASTER_KEY_GRACE", grace, TRUE);
  g_subprocess_launcher_set_stdout_file_path (launcher, f->log_path);
  g_subprocess_launcher_set_stderr_file_path (launcher, f->log_path);
  f->gateway = g_subprocess_launcher_spawn (launcher, &error, g_getenv ("GEMINI_KEYSCTL"),
                                            "serve", "--port", "0", NULL);
  g_assert_no_error (error);

  while (f->port == 0)
    {
      const char *at;

      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (50 * 1000);
      g_clear_pointer (&contents, g_free);
      if (!g_file_get_contents (f->log_path, &contents, NULL, NULL))
        continue;
      at = strstr (contents, "http://127.0.0.1:");
      if (at != NULL && strchr (at, '\n') != NULL)
        f->port = (guint) g_ascii_strtoull (at + strlen ("http://127.0.0.1:"), NULL, 10);
    }
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *rm = g_strdup_printf ("rm -rf '%s'", f->dir);

  if (f->gateway != NULL)
    {
      g_subprocess_force_exit (f->gateway);
      g_subprocess_wait (f->gateway, NULL, NULL);
      g_clear_object (&f->gateway);
    }
  g_subprocess_force_exit (f->mock);
  g_subprocess_wait (f->mock, NULL, NULL);
  g_clear_object (&f->mock);
  g_assert_cmpint (system (rm), ==, 0);
  g_free (f->dir);
  g_free (f->data_dir);
  g_free (f->key_file);
  g_free (f->log_path);
  g_free (f->token);
}

/* One request through the gateway: its status, and its body in @body. */
static guint
generate (SoupSession *session,
          Fixture     *f,
          char       **body)
{
  g_autofree char *url = g_strdup_printf (
    "http://127.0.0.1:%u/v1beta/models/gemini-2.5-flash:generateContent", f->port);
  g_autoptr(SoupMessage) msg = soup_message_new ("POST", url);
  g_autoptr(GBytes) request = g_bytes_new_static ("{\"contents\":[{\"parts\":[{\"text\":\"hi\"}]}]}",
                                                  strlen ("{\"contents\":[{\"parts\":[{\"text\":\"hi\"}]}]}"));
  g_autoptr(GBytes) answer = NULL;
  g_autoptr(GError) error = NULL;

  soup_message_headers_replace (soup_message_get_request_headers (msg), "x-goog-api-key",
                                f->token);
  soup_message_set_request_body_from_bytes (msg, "application/json", request);
  answer = soup_session_send_and_read (session, msg, NULL, &error);
  if (answer == NULL)
    {
      g_test_message ("no answer: %s", error->message);
      return 0;
    }
  if (body != NULL)
    *body = g_strndup (g_bytes_get_data (answer, NULL), g_bytes_get_size (answer));
  return soup_message_get_status (msg);
}

typedef struct
{
  Fixture *f;
  gint    *stop;
  guint    ok;
  guint    failed;
  guint    last_status;
  char    *last_body;
} Client;

static gpointer
client_thread (gpointer data)
{
  Client *client = data;
  g_autoptr(SoupSession) session = soup_session_new_with_options ("timeout", 60, NULL);

  while (!g_atomic_int_get (client->stop))
    {
      char *body = NULL;
      guint status = generate (session, client->f, &body);

      if (status == SOUP_STATUS_OK)
        client->ok++;
      else
        {
          client->failed++;
          client->last_status = status;
          g_free (client->last_body);
          client->last_body = g_steal_pointer (&body);
        }
      g_free (body);
    }
  return NULL;
}

static guint
count_lines (const char *path)
{
  g_autofree char *contents = NULL;
  guint n = 0;

  g_assert_true (g_file_get_contents (path, &contents, NULL, NULL));
  for (const char *p = contents; *p; p++)
    n += *p == '\n';
  return n;
}

/* Eight clients keep the gateway busy while the master key is rotated five
 * times by other processes: every request is answered 200, and the log
 * holds about one line per request (no line per key per request). */
static void
test_rotations_under_load (Fixture       *f,
                           gconstpointer  data)
{
  Client clients[N_CLIENTS] = { 0 };
  GThread *threads[N_CLIENTS];
  gint stop = 0;
  guint total = 0, failed = 0;
  g_autofree char *log = NULL;
  g_autoptr(GError) error = NULL;

  start_gateway (f, f->key_file, "30");
  for (guint i = 0; i < N_CLIENTS; i++)
    {
      clients[i].f = f;
      clients[i].stop = &stop;
      threads[i] = g_thread_new ("client", client_thread, &clients[i]);
    }

  for (guint i = 0; i < N_ROTATIONS; i++)
    {
      g_autofree char *o = NULL;

      g_usleep (300 * 1000);
      o = ctl (f, f->key_file, NULL, 0, "master-key", "rotate", NULL);
    }
  g_usleep (300 * 1000);

  g_atomic_int_set (&stop, 1);
  for (guint i = 0; i < N_CLIENTS; i++)
    {
      g_thread_join (threads[i]);
      total += clients[i].ok + clients[i].failed;
      failed += clients[i].failed;
      if (clients[i].failed > 0)
        g_test_message ("client %u: %u failed, last %u %s", i, clients[i].failed,
                        clients[i].last_status, clients[i].last_body);
      g_free (clients[i].last_body);
    }
  g_test_message ("%u requests during %u rotations", total, N_ROTATIONS);
  g_assert_cmpuint (total, >, 0);
  g_assert_cmpuint (failed, ==, 0);

  g_subprocess_send_signal (f->gateway, SIGTERM);
  g_subprocess_wait (f->gateway, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_subprocess_get_exit_status (f->gateway), ==, 0);
  g_clear_object (&f->gateway);

  /* The listening line, one line per request, the stop line. */
  g_assert_cmpuint (count_lines (f->log_path), <=, total + 10);
  g_assert_true (g_file_get_contents (f->log_path, &log, NULL, NULL));
  g_assert_null (strstr (log, "cannot be used"));
}

/* The gateway's master key is rotated to a key it cannot reach (the
 * rotation wrote another key file): it says so once, answers 503 saying
 * why, and exits non-zero after the grace period. */
static void
test_unreachable_key_exits (Fixture       *f,
                            gconstpointer  data)
{
  g_autofree char *elsewhere = g_build_filename (f->dir, "elsewhere.key", NULL);
  g_autofree char *contents = NULL;
  g_autofree char *log = NULL;
  g_autoptr(SoupSession) session = soup_session_new_with_options ("timeout", 60, NULL);
  g_autoptr(GError) error = NULL;
  guint n_503 = 0;

  g_assert_true (g_file_get_contents (f->key_file, &contents, NULL, NULL));
  g_assert_true (g_file_set_contents_full (elsewhere, contents, -1, G_FILE_SET_CONTENTS_NONE,
                                           0600, NULL));
  start_gateway (f, f->key_file, "2");
  g_assert_cmpuint (generate (session, f, NULL), ==, SOUP_STATUS_OK);

  {
    g_autofree char *o = ctl (f, elsewhere, NULL, 0, "master-key", "rotate", NULL);
  }
  for (guint i = 0; i < 20; i++)
    {
      g_autofree char *body = NULL;
      guint status = generate (session, f, &body);

      g_assert_cmpuint (status, ==, SOUP_STATUS_SERVICE_UNAVAILABLE);
      g_assert_nonnull (strstr (body, "master key"));
      n_503++;
    }

  g_subprocess_wait (f->gateway, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (f->gateway));
  g_assert_cmpint (g_subprocess_get_exit_status (f->gateway), ==, 1);
  g_clear_object (&f->gateway);

  g_assert_true (g_file_get_contents (f->log_path, &log, NULL, NULL));
  /* Said once in the log (and once more on leaving), not per request. */
  {
    guint said = 0;

    for (const char *p = log; (p = strstr (p, "cannot be read")) != NULL; p++)
      said++;
    g_assert_cmpuint (said, <=, 2);
    g_assert_cmpuint (said, >=, 1);
  }
  g_assert_cmpuint (count_lines (f->log_path), <=, 10);

  /* Each 503 is in the usage log like any failed request: no key, its
   * status, user and model. */
  {
    g_autofree char *csv = ctl (f, elsewhere, NULL, 0, "usage", "--csv", "--limit", "100", NULL);
    g_auto(GStrv) lines = g_strsplit (csv, "\n", -1);
    guint keyless = 0;

    for (guint i = 0; lines[i] != NULL; i++)
      keyless += strstr (lines[i], ",,,gemini-2.5-flash,") != NULL
                 && strstr (lines[i], ",ERROR,503,") != NULL
                 && strstr (lines[i], "master key") != NULL
                 && strstr (lines[i], ",load,") != NULL;
    g_assert_cmpuint (keyless, ==, n_503);
  }
}

static guint
count_in (const char *text,
          const char *needle)
{
  guint n = 0;

  for (const char *p = text; (p = strstr (p, needle)) != NULL; p++)
    n++;
  return n;
}

static gboolean
log_contains (Fixture    *f,
              const char *needle)
{
  g_autofree char *log = NULL;

  return g_file_get_contents (f->log_path, &log, NULL, NULL) && strstr (log, needle) != NULL;
}

/* The key file is removed while the gateway serves: it says so once, keeps
 * serving, and says once more when the file is back. */
static void
test_vanished_key_noticed (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(SoupSession) session = soup_session_new_with_options ("timeout", 60, NULL);
  g_autofree char *contents = NULL;
  g_autofree char *log = NULL;
  gint64 deadline;

  g_assert_true (g_file_get_contents (f->key_file, &contents, NULL, NULL));
  start_gateway (f, f->key_file, "30");
  g_assert_cmpuint (generate (session, f, NULL), ==, SOUP_STATUS_OK);

  g_assert_cmpint (g_unlink (f->key_file), ==, 0);
  deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  while (!log_contains (f, "no longer stored"))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_assert_cmpuint (generate (session, f, NULL), ==, SOUP_STATUS_OK);
      g_usleep (100 * 1000);
    }

  g_assert_true (g_file_set_contents_full (f->key_file, contents, -1, G_FILE_SET_CONTENTS_NONE,
                                           0600, NULL));
  while (!log_contains (f, "stored again"))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_assert_cmpuint (generate (session, f, NULL), ==, SOUP_STATUS_OK);
      g_usleep (100 * 1000);
    }

  g_assert_true (g_file_get_contents (f->log_path, &log, NULL, NULL));
  g_assert_cmpuint (count_in (log, "no longer stored"), ==, 1);
  g_assert_cmpuint (count_in (log, "stored again"), ==, 1);
}

/* How many requests the mock received with @key. */
static guint
mock_requests_with (SoupSession *session,
                    Fixture     *f,
                    const char  *key)
{
  g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u/_mock/stats", f->mock_port);
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
  g_autofree char *member = g_strdup_printf ("\"%s\":", key);
  g_autoptr(GBytes) answer = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  const char *count;

  answer = soup_session_send_and_read (session, msg, NULL, &error);
  g_assert_no_error (error);
  text = g_strndup (g_bytes_get_data (answer, NULL), g_bytes_get_size (answer));
  count = strstr (text, member);
  return count != NULL ? (guint) g_ascii_strtoull (count + strlen (member), NULL, 10) : 0;
}

static gpointer
slow_request_thread (gpointer data)
{
  Fixture *f = data;
  g_autoptr(SoupSession) session = soup_session_new_with_options ("timeout", 60, NULL);

  return GUINT_TO_POINTER (generate (session, f, NULL));
}

/* Whether the process @proc has ended (without reaping it). */
static gboolean
has_ended (GSubprocess *proc)
{
  const char *id = g_subprocess_get_identifier (proc);
  siginfo_t info = { 0 };

  if (id == NULL)
    return TRUE;
  /* ECHILD: GLib's child watch has reaped it already. */
  if (waitid (P_PID, (id_t) g_ascii_strtoull (id, NULL, 10), &info,
              WEXITED | WNOHANG | WNOWAIT) != 0)
    return TRUE;
  return info.si_pid != 0;
}

/* More SIGTERMs while the gateway stops (its service manager's and a
 * user's, say) do not cut the stop short. The stop cancels the request
 * in flight (on a key the mock answers after 1.5 s); its usage row waits
 * for the database, which this test holds, while a second signal comes;
 * then signals come every few milliseconds until the process has ended.
 * The request is still answered once its row is written, and `serve` ends
 * cleanly with its log complete. */
static void
test_stop_signalled_twice (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(SoupSession) session = soup_session_new_with_options ("timeout", 60, NULL);
  g_autofree char *slow_key = g_strdup_printf ("AIzaSyLiveRotationSLOW%017u", 0);
  g_autofree char *input = g_strdup_printf ("%s\n", slow_key);
  g_autofree char *db_path = g_build_filename (f->data_dir, "keys.db", NULL);
  g_autofree char *out = NULL;
  g_autofree char *log = NULL;
  g_autoptr(GError) error = NULL;
  gint64 deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  sqlite3 *db = NULL;
  sqlite3_stmt *count = NULL;
  GThread *client;

  out = ctl (f, f->key_file, input, 0, "key", "add", "--name", "slow", "--priority", "10", NULL);
  start_gateway (f, f->key_file, "30");
  client = g_thread_new ("client", slow_request_thread, f);
  while (mock_requests_with (session, f, slow_key) == 0)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (20 * 1000);
    }

  g_assert_cmpint (sqlite3_open (db_path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==, SQLITE_OK);
  g_subprocess_send_signal (f->gateway, SIGTERM);
  g_usleep (300 * 1000);
  g_subprocess_send_signal (f->gateway, SIGTERM);
  g_usleep (G_USEC_PER_SEC);
  g_assert_cmpint (sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL), ==, SQLITE_OK);
  while (!has_ended (f->gateway))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_subprocess_send_signal (f->gateway, SIGTERM);
      g_usleep (2 * 1000);
    }

  g_subprocess_wait (f->gateway, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (GPOINTER_TO_UINT (g_thread_join (client)), ==, SOUP_STATUS_SERVICE_UNAVAILABLE);
  g_assert_true (g_subprocess_get_if_exited (f->gateway));
  g_assert_cmpint (g_subprocess_get_exit_status (f->gateway), ==, 0);
  g_clear_object (&f->gateway);
  g_assert_true (g_file_get_contents (f->log_path, &log, NULL, NULL));
  g_assert_nonnull (strstr (log, "Gateway stopped."));

  g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT COUNT (*) FROM gemini_key_usage_log", -1,
                                       &count, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (count), ==, SQLITE_ROW);
  g_assert_cmpint (sqlite3_column_int (count, 0), ==, 1);
  sqlite3_finalize (count);
  sqlite3_close (db);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/master-key-live/rotations-under-load", Fixture, NULL, fixture_set_up,
              test_rotations_under_load, fixture_tear_down);
  g_test_add ("/master-key-live/unreachable-key-exits", Fixture, NULL, fixture_set_up,
              test_unreachable_key_exits, fixture_tear_down);
  g_test_add ("/master-key-live/vanished-key-noticed", Fixture, NULL, fixture_set_up,
              test_vanished_key_noticed, fixture_tear_down);
  g_test_add ("/master-key-live/stop-signalled-twice", Fixture, NULL, fixture_set_up,
              test_stop_signalled_twice, fixture_tear_down);
  return g_test_run ();
}
