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
  GkDatabase *db;
  GkKeyStore *key_store;
  GkPool *pool;
  int port = -1;
  int timeout = GK_GATEWAY_DEFAULT_REQUEST_TIMEOUT;
  guint sigint, sigterm, flush;
  int status;
  const GOptionEntry entries[] = {
    { "port", 'p', 0, G_OPTION_ARG_INT, &port,
      N_("Port on the loopback address (default: the gateway_port setting, 8765; 0 = any free port)"),
      N_("P") },
    { "timeout", 't', 0, G_OPTION_ARG_INT, &timeout,
      N_("Seconds one request may take, all retries on other keys included (default: 300; 0 = no limit)"),
      N_("SECONDS") },
    G_OPTION_ENTRY_NULL
  };

  status = gk_cli_parse_options (cli, "", _("Run the local gateway until interrupted"), entries,
                                 0, 0, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;

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
  if (!gk_gateway_start (gateway, NULL, (guint) port, &error))
    return gk_cli_gerror (cli, error);

  /* Scripts (and the benchmark) read the port from this line. */
  printf (_("Gateway listening on http://127.0.0.1:%u (upstream %s)\n"),
          gk_gateway_get_port (gateway), gk_gateway_default_upstream ());
  fflush (stdout);

  loop = g_main_loop_new (NULL, FALSE);
  sigint = g_unix_signal_add (SIGINT, quit_cb, loop);
  sigterm = g_unix_signal_add (SIGTERM, quit_cb, loop);
  flush = g_timeout_add (200, flush_cb, NULL);
  g_main_loop_run (loop);
  g_source_remove (sigint);
  g_source_remove (sigterm);
  g_source_remove (flush);

  gk_gateway_stop (gateway);
  printf ("%s\n", _("Gateway stopped."));
  fflush (stdout);
  return GK_CLI_OK;
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
