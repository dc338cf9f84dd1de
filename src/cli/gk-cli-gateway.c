/* gk-cli-gateway.c: `gemini-keysctl serve` and `gemini-keysctl key test`.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>

#include <glib/gi18n.h>
#include <glib-unix.h>

#include "gk-cli.h"
#include "gk-gateway.h"

static void
log_cb (GkGateway  *gateway,
        const char *line,
        gpointer    user_data)
{
  /* Emitted in the gateway's thread only, once per request: the time stamp
   * is formatted once a second, not for every line. */
  static gint64 stamp_second = -1;
  static char *stamp = NULL;
  gint64 second = g_get_real_time () / G_USEC_PER_SEC;

  if (second != stamp_second)
    {
      g_autoptr(GDateTime) now = g_date_time_new_from_unix_local (second);

      g_free (stamp);
      stamp = g_date_time_format (now, "%Y-%m-%d %H:%M:%S");
      stamp_second = second;
    }
  /* stdio locks the stream. A terminal gets each line at once (line
   * buffering); a file or pipe gets them from flush_cb, without a write
   * per request. */
  printf ("%s %s\n", stamp, line);
}

/* How long `serve` keeps answering 503 while the master key is out of
 * reach before it exits non-zero, so that a service manager restarts it
 * (GEMINI_KEYS_MASTER_KEY_GRACE overrides, in seconds). */
#define MASTER_KEY_GRACE_S       30
#define STORED_CHECK_INTERVAL_S  5

typedef struct
{
  GMainLoop  *loop;
  GkKeyStore *key_store;
  GMutex      mutex;
  gint64      down_since;   /* monotonic µs, 0 while the key is readable */
  char       *down_message;
  gint64      grace_us;
  gboolean    failed;       /* the exit status is 1 */
  gboolean    checking;     /* a stored-check runs in a thread */
  gboolean    reported_gone;
  gboolean    check_stored; /* this round asks the keyring too */
  guint       ticks;
} ServeState;

/* Emitted in the gateway's thread. */
static void
master_key_state_cb (GkGateway  *gateway,
                     gboolean    available,
                     const char *message,
                     gpointer    user_data)
{
  ServeState *state = user_data;

  g_mutex_lock (&state->mutex);
  if (available)
    state->down_since = 0;
  else if (state->down_since == 0)
    state->down_since = g_get_monotonic_time ();
  g_free (state->down_message);
  state->down_message = g_strdup (message);
  g_mutex_unlock (&state->mutex);
}

static void
stored_check_thread (GTask        *task,
                     gpointer      source_object,
                     gpointer      task_data,
                     GCancellable *cancellable)
{
  ServeState *state = task_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) refresh_error = NULL;
  gboolean stored = !state->reported_gone;

  /* Picks up a rotation by another process even while no request comes:
   * one read of the check value when nothing changed. An idle gateway whose
   * new key is out of reach runs out its grace period too. */
  if (!gk_key_store_refresh_master_key (state->key_store, &refresh_error))
    master_key_state_cb (NULL, FALSE, refresh_error->message, state);
  else
    master_key_state_cb (NULL, TRUE, NULL, state);
  if (state->check_stored
      && !gk_key_store_check_master_key_stored (state->key_store, &stored, &error))
    stored = TRUE;   /* the keyring cannot be asked: not the same as gone */
  g_task_return_boolean (task, stored);
}

static void
stored_check_done_cb (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  ServeState *state = user_data;
  gboolean stored = g_task_propagate_boolean (G_TASK (result), NULL);

  state->checking = FALSE;
  if (!stored && !state->reported_gone)
    fprintf (stderr, "%s\n",
             _("The master key of this database is no longer stored (its keyring item or file "
               "was removed). The gateway keeps serving with the key it holds, but keys cannot "
               "be added until the master key is stored again (“gemini-keysctl master-key "
               "import FILE” with an exported copy)."));
  else if (stored && state->reported_gone)
    fprintf (stderr, "%s\n", _("The master key is stored again."));
  state->reported_gone = !stored;
}

/* Every few seconds: is the key still stored, and has the grace period of
 * an unreachable master key run out? */
static gboolean
watch_cb (gpointer data)
{
  ServeState *state = data;
  gint64 down_since;
  g_autofree char *message = NULL;

  g_mutex_lock (&state->mutex);
  down_since = state->down_since;
  message = g_strdup (state->down_message);
  g_mutex_unlock (&state->mutex);

  if (down_since != 0 && g_get_monotonic_time () - down_since >= state->grace_us)
    {
      fprintf (stderr, _("%s\nStopping the gateway so that its service manager can restart it.\n"),
               message != NULL ? message : "");
      state->failed = TRUE;
      g_main_loop_quit (state->loop);
      return G_SOURCE_REMOVE;
    }

  if (!state->checking)
    {
      g_autoptr(GTask) task = g_task_new (NULL, NULL, stored_check_done_cb, state);

      state->check_stored = state->ticks++ % STORED_CHECK_INTERVAL_S == 0;
      state->checking = TRUE;
      g_task_set_task_data (task, state, NULL);
      g_task_run_in_thread (task, stored_check_thread);
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
flush_cb (gpointer data)
{
  fflush (stdout);
  return G_SOURCE_CONTINUE;
}

static gboolean
quit_cb (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_CONTINUE;
}

int
gk_cli_cmd_serve (GkCli  *cli,
                  int     argc,
                  char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkGateway) gateway = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  ServeState state = { 0 };
  const char *grace;
  guint watch;
  GkDatabase *db;
  GkKeyStore *key_store;
  GkPool *pool;
  int port = -1;
  int timeout = GK_GATEWAY_DEFAULT_REQUEST_TIMEOUT;
  int outage_rows = GK_GATEWAY_DEFAULT_OUTAGE_ROWS;
  guint flush;
  int status;
  const GOptionEntry entries[] = {
    { "port", 'p', 0, G_OPTION_ARG_INT, &port,
      N_("Port on the loopback address (default: the gateway_port setting, 8765; 0 = any free port)"),
      N_("P") },
    { "timeout", 't', 0, G_OPTION_ARG_INT, &timeout,
      N_("Seconds one request may take, all retries on other keys included (default: 300; 0 = no limit)"),
      N_("SECONDS") },
    { "outage-rows", 0, 0, G_OPTION_ARG_INT, &outage_rows,
      N_("Usage rows kept in memory while the database server is out of reach, requests in "
         "flight included; 503 beyond (default: 100000)"),
      N_("N") },
    G_OPTION_ENTRY_NULL
  };

  status = gk_cli_parse_options (cli, "", _("Run the local gateway until interrupted"), entries,
                                 0, 0, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;
  if (outage_rows < 1 || outage_rows > GK_GATEWAY_MAX_OUTAGE_ROWS)
    return gk_cli_usage_error (cli, _("--outage-rows must be a number of rows from 1 to %d."),
                               GK_GATEWAY_MAX_OUTAGE_ROWS);

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return GK_CLI_ERROR;
  if (port < 0)
    port = gk_database_get_setting_int (db, GK_SETTING_GATEWAY_PORT, GK_DEFAULT_GATEWAY_PORT);
  if (port > G_MAXUINT16)
    return gk_cli_usage_error (cli, _("The port must be between 0 and 65535."));
  if (timeout < 0)
    return gk_cli_usage_error (cli, _("The timeout must be a number of seconds, 0 or more."));

  key_store = gk_cli_get_key_store (cli);
  pool = gk_cli_get_pool (cli);
  if (key_store == NULL || pool == NULL)
    return GK_CLI_ERROR;

  gateway = gk_gateway_new (key_store, pool);
  g_signal_connect (gateway, "log", G_CALLBACK (log_cb), NULL);
  gk_gateway_set_request_timeout (gateway, (guint) timeout);
  gk_gateway_set_outage_rows (gateway, (guint) outage_rows);
  g_mutex_init (&state.mutex);
  state.key_store = key_store;
  grace = g_getenv ("GEMINI_KEYS_MASTER_KEY_GRACE");
  state.grace_us = (grace != NULL ? g_ascii_strtoll (grace, NULL, 10) : MASTER_KEY_GRACE_S)
                   * G_USEC_PER_SEC;
  g_signal_connect (gateway, "master-key-state", G_CALLBACK (master_key_state_cb), &state);
  if (!gk_gateway_start (gateway, NULL, (guint) port, &error))
    return gk_cli_gerror (cli, error);

  /* Scripts (and the benchmark) read the port from this line. */
  printf (_("Gateway listening on http://127.0.0.1:%u (upstream %s)\n"),
          gk_gateway_get_port (gateway), gk_gateway_default_upstream ());
  fflush (stdout);

  loop = g_main_loop_new (NULL, FALSE);
  /* The signal sources stay until the process ends: removing them would
   * give SIGINT and SIGTERM back their default action, and a second signal
   * (a service manager's and a user's) would end the process in the middle
   * of the stop, before the requests in flight are answered and recorded,
   * or with a status that says it was killed. */
  g_unix_signal_add_full (G_PRIORITY_DEFAULT, SIGINT, quit_cb, g_main_loop_ref (loop),
                          (GDestroyNotify) g_main_loop_unref);
  g_unix_signal_add_full (G_PRIORITY_DEFAULT, SIGTERM, quit_cb, g_main_loop_ref (loop),
                          (GDestroyNotify) g_main_loop_unref);
  flush = g_timeout_add (200, flush_cb, NULL);
  state.loop = loop;
  watch = g_timeout_add_seconds (1, watch_cb, &state);
  g_main_loop_run (loop);
  g_source_remove (flush);
  if (!state.failed)
    g_source_remove (watch);

  gk_gateway_stop (gateway);
  g_signal_handlers_disconnect_by_data (gateway, &state);
  /* A stored-check thread still running holds a pointer to the state. */
  while (state.checking)
    g_main_context_iteration (NULL, TRUE);
  g_free (state.down_message);
  g_mutex_clear (&state.mutex);
  printf ("%s\n", _("Gateway stopped."));
  fflush (stdout);
  return state.failed ? GK_CLI_ERROR : GK_CLI_OK;
}

typedef struct
{
  GMainLoop *loop;
  GError    *error;
  gboolean   ok;
} TestKeyWait;

static void
test_key_done_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  TestKeyWait *wait = user_data;

  wait->ok = gk_gateway_test_key_finish (result, &wait->error);
  g_main_loop_quit (wait->loop);
}

int
gk_cli_cmd_key_test (GkCli  *cli,
                     int     argc,
                     char  **argv)
{
  g_autoptr(GMainLoop) loop = NULL;
  g_autoptr(GkKey) key = NULL;
  g_autoptr(GError) error = NULL;
  GkKeyStore *key_store;
  TestKeyWait wait = { 0 };
  gint64 id;
  int status;

  status = gk_cli_parse_options (cli, _("ID"), _("Check a key against the upstream"), NULL,
                                 1, 1, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;
  if (!gk_cli_parse_id (cli, argv[1], &id))
    return GK_CLI_USAGE;

  key_store = gk_cli_get_key_store (cli);
  if (key_store == NULL)
    return GK_CLI_ERROR;

  loop = g_main_loop_new (NULL, FALSE);
  wait.loop = loop;
  gk_gateway_test_key_async (key_store, id, NULL, test_key_done_cb, &wait);
  g_main_loop_run (loop);

  key = gk_key_store_get (key_store, id, &error);
  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      gk_json_add_int (builder, "id", id);
      gk_json_add_boolean (builder, "ok", wait.ok);
      gk_json_add_string (builder, "status",
                              key ? gk_key_status_to_string (key->status) : NULL);
      gk_json_add_string (builder, "error", wait.error ? wait.error->message : NULL);
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else if (wait.ok)
    {
      g_autofree char *id_text = g_strdup_printf ("%" G_GINT64_FORMAT, id);

      printf (_("Key %s works.\n"), id_text);
    }

  if (!wait.ok)
    {
      g_autoptr(GError) failure = g_steal_pointer (&wait.error);

      return gk_cli_gerror (cli, failure);
    }
  return GK_CLI_OK;
}
