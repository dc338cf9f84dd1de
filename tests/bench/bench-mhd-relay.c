/* bench-mhd-relay: the gateway's hot path with libmicrohttpd as its server
 * side, for bench-gateway to measure against the gateway itself (run by
 * hand, not a test, not part of the product):
 *
 *   bench-mhd-relay UPSTREAM_URL API_KEY
 *
 * libmicrohttpd runs without threads of its own, on the GLib main loop
 * (its epoll descriptor and timeout are one GSource); each request
 * body is read whole, the connection suspended while GkUpstream (libcurl,
 * as in the gateway) sends it upstream with API_KEY, and resumed with the
 * answer. No key selection, usage rows, token check or redaction: what it
 * costs is the floor of a gateway on this server side, to compare with
 * libsoup's. Listens on 127.0.0.1, a free port, printed as
 * "listening on http://127.0.0.1:PORT".
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>

#include <microhttpd.h>

#include "gk-upstream.h"

#define UPSTREAM_TIMEOUT_S 300
#define CLIENT_TIMEOUT_S   60

typedef struct
{
  struct MHD_Daemon *daemon;
  GkUpstream        *upstream;
  const char        *api_key;
  gboolean           resumed;  /* a connection awaits MHD_run() */
} Relay;

typedef struct
{
  Relay                 *relay;
  struct MHD_Connection *connection;
  GByteArray            *body;
  GByteArray            *answer;
  GkUpstreamCall        *call;
  guint                  status;
  gboolean               sent;
} Exchange;

/* libmicrohttpd as one GSource: its epoll descriptor, and its timeout as
 * the source's poll timeout (asked for in each prepare, so moving it costs
 * no wakeup). Without threads of its own, libmicrohttpd serves a resumed
 * connection only in its next MHD_run(): a resume (always from this
 * thread) makes the source ready. */
typedef struct
{
  GSource  source;
  Relay   *relay;
  gpointer tag;
} DaemonSource;

static gboolean
daemon_source_prepare (GSource *source,
                       gint    *timeout)
{
  Relay *relay = ((DaemonSource *) source)->relay;
  MHD_UNSIGNED_LONG_LONG timeout_ms;

  if (relay->resumed)
    {
      *timeout = 0;
      return TRUE;
    }
  if (MHD_get_timeout (relay->daemon, &timeout_ms) != MHD_YES)
    {
      *timeout = -1;
      return FALSE;
    }
  *timeout = (gint) MIN (timeout_ms, G_MAXINT);
  return timeout_ms == 0;
}

static gboolean
daemon_source_check (GSource *source)
{
  DaemonSource *self = (DaemonSource *) source;
  MHD_UNSIGNED_LONG_LONG timeout_ms;

  return self->relay->resumed || g_source_query_unix_fd (source, self->tag) != 0 ||
         (MHD_get_timeout (self->relay->daemon, &timeout_ms) == MHD_YES && timeout_ms == 0);
}

static gboolean
daemon_source_dispatch (GSource     *source,
                        GSourceFunc  callback,
                        gpointer     user_data)
{
  Relay *relay = ((DaemonSource *) source)->relay;

  relay->resumed = FALSE;
  MHD_run (relay->daemon);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs daemon_source_funcs = {
  .prepare = daemon_source_prepare,
  .check = daemon_source_check,
  .dispatch = daemon_source_dispatch,
};

static void
exchange_answered (Exchange *exchange,
                   guint     status)
{
  exchange->status = status;
  MHD_resume_connection (exchange->connection);
  exchange->relay->resumed = TRUE;
}

static void
read_cb (GkUpstreamCall *call,
         GBytes         *bytes,
         GError         *error,
         gpointer        data)
{
  Exchange *exchange = data;

  if (error != NULL || bytes == NULL)
    {
      exchange_answered (exchange, error != NULL ? MHD_HTTP_BAD_GATEWAY
                                                 : gk_upstream_call_get_status (call));
      return;
    }
  g_byte_array_append (exchange->answer, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
  gk_upstream_call_read (call, read_cb, exchange);
}

static void
send_cb (GkUpstreamCall *call,
         GError         *error,
         gpointer        data)
{
  Exchange *exchange = data;

  if (error != NULL)
    {
      exchange_answered (exchange, MHD_HTTP_BAD_GATEWAY);
      return;
    }
  gk_upstream_call_read (call, read_cb, exchange);
}

static enum MHD_Result
access_cb (void                  *cls,
           struct MHD_Connection *connection,
           const char            *url,
           const char            *method,
           const char            *version,
           const char            *upload_data,
           size_t                *upload_data_size,
           void                 **con_cls)
{
  Relay *relay = cls;
  Exchange *exchange = *con_cls;
  struct MHD_Response *response;
  enum MHD_Result result;

  if (exchange == NULL)
    {
      /* The head alone: the body follows in the next calls. */
      exchange = g_new0 (Exchange, 1);
      exchange->relay = relay;
      exchange->connection = connection;
      exchange->body = g_byte_array_new ();
      exchange->answer = g_byte_array_new ();
      *con_cls = exchange;
      return MHD_YES;
    }
  if (*upload_data_size > 0)
    {
      g_byte_array_append (exchange->body, (const guint8 *) upload_data, *upload_data_size);
      *upload_data_size = 0;
      return MHD_YES;
    }
  if (!exchange->sent)
    {
      g_autoptr(GBytes) body = g_bytes_new (exchange->body->data, exchange->body->len);

      exchange->sent = TRUE;
      exchange->call = gk_upstream_call_new (relay->upstream, method, url);
      gk_upstream_call_add_header (exchange->call, "x-goog-api-key", relay->api_key);
      gk_upstream_call_set_body (exchange->call, "application/json", body);
      gk_upstream_call_send (exchange->call, NULL, send_cb, exchange);
      MHD_suspend_connection (connection);
      return MHD_YES;
    }
  response = MHD_create_response_from_buffer (exchange->answer->len, exchange->answer->data,
                                              MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  result = MHD_queue_response (connection, exchange->status, response);
  MHD_destroy_response (response);
  return result;
}

static void
completed_cb (void                            *cls,
              struct MHD_Connection           *connection,
              void                           **con_cls,
              enum MHD_RequestTerminationCode  code)
{
  Exchange *exchange = *con_cls;

  if (exchange == NULL)
    return;
  g_clear_pointer (&exchange->call, gk_upstream_call_free);
  g_byte_array_unref (exchange->body);
  g_byte_array_unref (exchange->answer);
  g_free (exchange);
  *con_cls = NULL;
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  struct sockaddr_in address = { .sin_family = AF_INET };
  const union MHD_DaemonInfo *info;
  Relay relay = { 0 };
  DaemonSource *source;

  if (argc != 3)
    {
      fprintf (stderr, "usage: %s UPSTREAM_URL API_KEY\n", argv[0]);
      return 2;
    }
  relay.upstream = gk_upstream_new (argv[1], UPSTREAM_TIMEOUT_S, "bench-mhd-relay", &error);
  if (relay.upstream == NULL)
    {
      fprintf (stderr, "bench-mhd-relay: %s\n", error->message);
      return 1;
    }
  relay.api_key = argv[2];
  address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  relay.daemon = MHD_start_daemon (MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
                                   access_cb, &relay,
                                   MHD_OPTION_SOCK_ADDR, &address,
                                   MHD_OPTION_NOTIFY_COMPLETED, completed_cb, NULL,
                                   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) CLIENT_TIMEOUT_S,
                                   MHD_OPTION_STRICT_FOR_CLIENT, 1,
                                   MHD_OPTION_END);
  if (relay.daemon == NULL)
    {
      fprintf (stderr, "bench-mhd-relay: cannot listen on 127.0.0.1\n");
      return 1;
    }
  info = MHD_get_daemon_info (relay.daemon, MHD_DAEMON_INFO_BIND_PORT);
  printf ("listening on http://127.0.0.1:%u\n", info->port);
  fflush (stdout);
  info = MHD_get_daemon_info (relay.daemon, MHD_DAEMON_INFO_EPOLL_FD);
  source = (DaemonSource *) g_source_new (&daemon_source_funcs, sizeof (DaemonSource));
  source->relay = &relay;
  source->tag = g_source_add_unix_fd ((GSource *) source, info->epoll_fd, G_IO_IN);
  g_source_attach ((GSource *) source, NULL);

  loop = g_main_loop_new (NULL, FALSE);
  g_main_loop_run (loop);
  return 0;
}
