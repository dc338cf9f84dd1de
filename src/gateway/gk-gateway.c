/* gk-gateway.c: the local gateway (libsoup-3 server + upstream client).
 *
 * A client request goes through these steps, all in the gateway's own
 * thread and main context:
 *
 *  1. early_handler_cb (after the headers, before the body): Host
 *     allow-list, client token, Content-Length limit. Refused requests are
 *     answered without reading their body.
 *  2. got_chunk_cb: the body is accumulated by us, not by libsoup, so that a
 *     chunked body larger than the limit is counted and dropped, never held.
 *  3. server_handler_cb: routes to the admin API or the proxy.
 *  4. The proxy (Request): pick a key, send upstream with that key in
 *     x-goog-api-key only, and either relay the answer (streams chunk by
 *     chunk) or, on 429 / invalid key / 5xx / network errors, record the
 *     failed attempt and try the next key.
 *
 * The upstream client is gk-upstream.c (libcurl on this thread's main
 * context). Usage rows are written in this thread too, over the
 * gateway's database connection, in order: the rows of requests that end
 * together share one transaction, and the client is answered once its row
 * is written. A second thread or connection would cost more than it saves:
 * a hop to it and back adds wakeups and latency to every request, and the
 * commits of a second connection move the data_version this one sees, so
 * that the pool reloaded its snapshot for every request. When the disk is
 * full the rows are kept in memory and written once there is room, and no
 * new request is forwarded meanwhile.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#define G_LOG_DOMAIN "gk-gateway"

#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <sys/socket.h>

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "gk-gateway.h"
#include "gk-gateway-private.h"
#include "gk-outcome.h"
#include "gk-redact.h"
#include "gk-request.h"
#include "gk-upstream.h"

#define GOOGLE_UPSTREAM        "https://generativelanguage.googleapis.com"
#define ADMIN_PREFIX           "/admin/gemini-keys"
#define ADMIN_TOKEN_NAME       "admin"
#define ERROR_BODY_LIMIT       (1024 * 1024)
#define RETRY_AFTER_BUSY       "1"
#define RETRY_AFTER_DISK_FULL  "10"
#define STOP_DRAIN_TIMEOUT_US  (2 * G_USEC_PER_SEC)
#define LISTEN_BACKLOG         1024
#define TEST_KEY_TIMEOUT_S     30
/* An answer buffered whole above this size gives its memory back to the
 * system when its request ends. */
#define BIG_ANSWER             (1024 * 1024)
/* A stream's bytes handed to libsoup and not yet written to its client
 * above which the upstream is not read (back-pressure: the upstream
 * transfer pauses rather than the gateway buffering a slow client's
 * answer). */
#define RELAY_BACKLOG          (512 * 1024)
/* 18 digits always fit in a goffset. */
#define MAX_CONTENT_LENGTH_DIGITS 18

struct _GkGateway
{
  GObject       parent_instance;

  GkKeyStore   *key_store;
  GkPool       *pool;
  GkDatabase   *db;

  /* Settings, read at start. */
  char         *upstream;
  gsize         body_limit;
  guint         max_in_flight;
  guint         timeout_s;
  guint         request_timeout_s;
  guint         max_attempts;
  guint         header_timeout_ms;
  guint         idle_timeout_ms;

  /* The master key in use was rotated away and the new one is out of reach
   * (gateway thread only): said once, not per request or per key. */
  gboolean      master_key_down;
  /* Requests answered 503 "No active keys available" since a key last
   * served one (gateway thread only): the first is logged, the rest are
   * only counted. */
  guint64       no_key_answers;

  /* Owned by the gateway thread while it runs. */
  GThread      *thread;
  GMainContext *context;
  GMainLoop    *loop;
  SoupServer   *server;
  GkUpstream   *upstream_client;
  /* Usage rows (TrackJob *) of requests that ended since the last write,
   * in order, and rows the disk had no room for (see write_rows_cb). */
  GPtrArray    *to_write;
  GPtrArray    *held;
  GSource      *write_source;
  gboolean      disk_full;      /* rows are held: no request is forwarded */
  gint          usage_count;    /* atomic, see gk_gateway_get_usage_count() */
  GQueue        requests;     /* Request *, cancelled at stop */
  GHashTable   *connections;  /* GSocket * -> ClientConn *, see below */
  guint         in_flight;
  char        **allowed_hosts;

  /* Start-up handshake between gk_gateway_start() and the thread. */
  GMutex        start_mutex;
  GCond         start_cond;
  gboolean      start_done;
  GError       *start_error;
  char         *start_address;
  guint         start_port;
  guint         port;
};

G_DEFINE_TYPE (GkGateway, gk_gateway, G_TYPE_OBJECT)

G_DEFINE_QUARK (gk-gateway-error-quark, gk_gateway_error)

enum
{
  SIGNAL_LOG,
  SIGNAL_MASTER_KEY_STATE,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

/* Per client message: what the early handler learnt and the body as read. */
typedef struct
{
  char       *user_id;      /* the client token's name */
  GByteArray *body;
  gboolean    too_large;
  gboolean    refused;      /* answered by the early handler */
} ClientState;

static const char *client_state_key = "gk-gateway-client-state";

static void
client_state_free (gpointer data)
{
  ClientState *state = data;

  g_free (state->user_id);
  g_clear_pointer (&state->body, g_byte_array_unref);
  g_free (state);
}

static const char *response_headers_dropped[] = {
  /* The gateway's server sends its own Date: not two of them. */
  "date",
  "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
  "set-cookie", "alt-svc", "server", "trailer", "upgrade", "access-control-allow-origin",
  "access-control-allow-credentials", "access-control-allow-headers",
  "access-control-allow-methods",
};

static gboolean
header_in (const char  *name,
           const char **list,
           gsize        n)
{
  for (gsize i = 0; i < n; i++)
    if (g_ascii_strcasecmp (name, list[i]) == 0)
      return TRUE;
  return FALSE;
}

static void
gateway_log (GkGateway  *self,
             const char *format,
             ...) G_GNUC_PRINTF (2, 3);

/* @text with every pool key replaced, in any case (gk-redact.c). */
static char *
gk_redact_text (const char *text)
{
  gsize len;
  char *redacted = gk_redact_bytes (text, strlen (text), &len);

  return redacted != NULL ? redacted : g_strdup (text);
}

static void
gateway_log (GkGateway  *self,
             const char *format,
             ...)
{
  g_autofree char *line = NULL;
  g_autofree char *escaped = NULL;
  g_autofree char *redacted = NULL;
  va_list args;

  va_start (args, format);
  line = g_strdup_vprintf (format, args);
  va_end (args);
  /* Lines quote the client's path: never a raw control byte in a log. */
  escaped = gk_request_escape_for_log (line);
  redacted = gk_redact_text (escaped);
  g_debug ("%s", redacted);
  g_signal_emit (self, signals[SIGNAL_LOG], 0, redacted);
}

char *
gk_gateway_error_json (guint       code,
                       const char *status,
                       const char *message)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "error");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "code");
  json_builder_add_int_value (builder, code);
  json_builder_set_member_name (builder, "message");
  json_builder_add_string_value (builder, message);
  json_builder_set_member_name (builder, "status");
  json_builder_add_string_value (builder, status);
  json_builder_end_object (builder);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  return json_to_string (root, FALSE);
}

void
gk_gateway_respond_json (SoupServerMessage *msg,
                         guint              status,
                         char              *body)
{
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json; charset=UTF-8", SOUP_MEMORY_TAKE,
                                    body, strlen (body));
}

void
gk_gateway_respond_error (SoupServerMessage *msg,
                          guint              code,
                          const char        *status,
                          const char        *message)
{
  gk_gateway_respond_json (msg, code, gk_gateway_error_json (code, status, message));
}

/* The credential a client sent the way SDKs send a key: x-goog-api-key,
 * Authorization: Bearer or ?key= in @query (the raw query string). */
char *
gk_gateway_credential_from (SoupMessageHeaders *headers,
                            const char         *query)
{
  const char *value;

  value = soup_message_headers_get_one (headers, "x-goog-api-key");
  if (value != NULL && *value != '\0')
    return g_strdup (value);

  value = soup_message_headers_get_one (headers, "Authorization");
  if (value != NULL && g_ascii_strncasecmp (value, "Bearer ", 7) == 0)
    {
      value += 7;
      while (*value == ' ')
        value++;
      if (*value != '\0')
        return g_strdup (value);
    }

  if (query != NULL)
    {
      g_autoptr(GHashTable) params = g_uri_parse_params (query, -1, "&", G_URI_PARAMS_NONE, NULL);
      const char *key = params ? g_hash_table_lookup (params, "key") : NULL;

      if (key != NULL && *key != '\0')
        return g_strdup (key);
    }
  return NULL;
}

gboolean
gk_gateway_host_allowed (const char         *host,
                         const char * const *allowed_hosts)
{
  if (host == NULL)
    return FALSE;
  for (guint i = 0; allowed_hosts[i] != NULL; i++)
    if (g_ascii_strcasecmp (host, allowed_hosts[i]) == 0)
      return TRUE;
  return FALSE;
}

/* TRUE when a body follows the headers and the client did not wait for
 * "100 Continue": libsoup would read all of it before answering. */
static gboolean
body_on_its_way (SoupServerMessage *msg)
{
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);

  if (soup_message_headers_get_expectations (headers) & SOUP_EXPECTATION_CONTINUE)
    return FALSE;
  switch (soup_message_headers_get_encoding (headers))
    {
    case SOUP_ENCODING_CONTENT_LENGTH:
      return soup_message_headers_get_content_length (headers) > 0;
    case SOUP_ENCODING_CHUNKED:
    case SOUP_ENCODING_EOF:
      return TRUE;
    default:
      return FALSE;
    }
}

/* Answers from the headers alone and closes the connection, so a refused
 * body (100 MB, or a lie) is neither read nor buffered. */
static void
refuse_and_close (SoupServerMessage *msg,
                  guint              code,
                  const char        *status,
                  const char        *message)
{
  g_autofree char *body = gk_gateway_error_json (code, status, message);
  g_autofree char *response = NULL;
  g_autoptr(GIOStream) stream = soup_server_message_steal_connection (msg);

  if (stream == NULL)
    return;
  response = g_strdup_printf ("HTTP/1.1 %u %s\r\n"
                              "Content-Type: application/json; charset=UTF-8\r\n"
                              "Content-Length: %zu\r\n"
                              "Connection: close\r\n\r\n%s",
                              code, soup_status_get_phrase (code), strlen (body), body);
  g_output_stream_write_all (g_io_stream_get_output_stream (stream), response, strlen (response),
                             NULL, NULL, NULL);
  g_io_stream_close (stream, NULL, NULL);
}

static void
refuse (SoupServerMessage *msg,
        ClientState       *state,
        guint              code,
        const char        *status,
        const char        *message)
{
  state->refused = TRUE;
  if (body_on_its_way (msg))
    {
      refuse_and_close (msg, code, status, message);
      return;
    }
  /* libsoup still reads the body of a refused request before it answers:
   * not kept, and the connection is not reused after this. */
  soup_message_body_set_accumulate (soup_server_message_get_request_body (msg), FALSE);
  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                "Connection", "close");
  gk_gateway_respond_error (msg, code, status, message);
}

static void
got_chunk_cb (SoupServerMessage *msg,
              GBytes            *chunk,
              GkGateway         *self)
{
  ClientState *state = g_object_get_data (G_OBJECT (msg), client_state_key);
  gsize len = g_bytes_get_size (chunk);

  if (state == NULL || state->too_large)
    return;
  if (state->body->len + len > self->body_limit)
    {
      /* Answered now and the connection closed: the rest of a body with
       * no length to judge by is never read. */
      state->too_large = TRUE;
      state->refused = TRUE;
      g_byte_array_set_size (state->body, 0);
      refuse_and_close (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "INVALID_ARGUMENT",
                        "The request body is larger than the gateway accepts.");
      return;
    }
  g_byte_array_append (state->body, g_bytes_get_data (chunk, NULL), len);
}

/* Strict framing: libsoup reads the first of two Content-Length headers,
 * takes "-1", "+2" or "2, 3" as it can, and knows nothing of a second
 * Host. What a proxy in front of the gateway might read differently is
 * refused: exactly one Host, at most one Content-Length of plain digits,
 * Transfer-Encoding only as a lone "chunked" and never with a length.
 * Returns the reason to refuse, NULL when the framing is sound. */
static const char *
framing_error (SoupMessageHeaders *headers)
{
  SoupMessageHeadersIter iter;
  const char *name, *value;
  guint hosts = 0, lengths = 0, encodings = 0;

  soup_message_headers_iter_init (&iter, headers);
  while (soup_message_headers_iter_next (&iter, &name, &value))
    {
      if (g_ascii_strcasecmp (name, "Host") == 0)
        hosts++;
      else if (g_ascii_strcasecmp (name, "Content-Length") == 0)
        {
          gsize len = strlen (value);

          lengths++;
          if (len == 0 || len > MAX_CONTENT_LENGTH_DIGITS || strspn (value, "0123456789") != len)
            return "The Content-Length header is not a plain number.";
        }
      else if (g_ascii_strcasecmp (name, "Transfer-Encoding") == 0)
        {
          encodings++;
          if (g_ascii_strcasecmp (value, "chunked") != 0)
            return "Only the chunked Transfer-Encoding is accepted.";
        }
    }
  if (hosts != 1)
    return "A request needs exactly one Host header.";
  if (lengths > 1)
    return "A request may carry only one Content-Length header.";
  if (encodings > 1 || (encodings == 1 && lengths == 1))
    return "A request may carry either one Transfer-Encoding: chunked or one Content-Length.";
  return NULL;
}

static void
early_handler_cb (SoupServer        *server,
                  SoupServerMessage *msg,
                  const char        *path,
                  GHashTable        *query,
                  gpointer           user_data)
{
  GkGateway *self = user_data;
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  ClientState *state = g_new0 (ClientState, 1);
  g_autofree char *credential = NULL;
  const char *framing;
  goffset length;

  g_object_set_data_full (G_OBJECT (msg), client_state_key, state, client_state_free);

  framing = framing_error (headers);
  if (framing != NULL)
    {
      /* Answered at once and closed: where such a body ends is unknown. */
      state->refused = TRUE;
      refuse_and_close (msg, SOUP_STATUS_BAD_REQUEST, "INVALID_ARGUMENT", framing);
      return;
    }

  if (!gk_gateway_host_allowed (soup_message_headers_get_one (headers, "Host"),
                                (const char * const *) self->allowed_hosts))
    {
      refuse (msg, state, SOUP_STATUS_FORBIDDEN, "PERMISSION_DENIED",
              "The Host header is not allowed; use 127.0.0.1, localhost or [::1] with the gateway's port.");
      return;
    }

  credential = gk_gateway_credential_from (headers,
                                          g_uri_get_query (soup_server_message_get_uri (msg)));
  if (credential != NULL)
    state->user_id = gk_token_verify (self->db, credential);
  if (credential != NULL)
    memset (credential, 0, strlen (credential));
  if (state->user_id == NULL)
    {
      refuse (msg, state, SOUP_STATUS_UNAUTHORIZED, "UNAUTHENTICATED",
              credential == NULL
                ? "Missing gateway token: send it as the API key (x-goog-api-key, ?key= or Authorization: Bearer)."
                : "The gateway token is not valid or was revoked.");
      return;
    }

  if (soup_message_headers_get_encoding (headers) == SOUP_ENCODING_CONTENT_LENGTH)
    {
      length = soup_message_headers_get_content_length (headers);
      if (length < 0 || (guint64) length > self->body_limit)
        {
          refuse (msg, state, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "INVALID_ARGUMENT",
                  "The request body is larger than the gateway accepts.");
          return;
        }
      state->body = g_byte_array_sized_new ((guint) length);
    }
  else
    state->body = g_byte_array_new ();

  soup_message_body_set_accumulate (soup_server_message_get_request_body (msg), FALSE);
  g_signal_connect (msg, "got-chunk", G_CALLBACK (got_chunk_cb), self);
}

/* libsoup answers a request whose target it cannot decode (a %00 in the
 * path…) with an empty 400 before any handler runs: give it Google's error
 * shape too. */
static void
got_headers_after_cb (SoupServerMessage *msg,
                      GkGateway         *self)
{
  SoupMessageBody *body = soup_server_message_get_response_body (msg);

  if (soup_server_message_get_status (msg) == SOUP_STATUS_BAD_REQUEST && body->length == 0)
    gk_gateway_respond_error (msg, SOUP_STATUS_BAD_REQUEST, "INVALID_ARGUMENT",
                              "The request target is not valid.");
}

/* ---- Client connections ------------------------------------------------ */

/* libsoup 3.2's server neither closes a keep-alive connection that its
 * client closed while idle (it stays in CLOSE-WAIT for good, one
 * descriptor each, until the gateway runs out of them: libsoup commit
 * d20c6601, in 3.3, fixed it; Debian 12 has 3.2.3) nor has any client
 * timeout. Each connection therefore gets a watch of ours, one GSource
 * that lives as long as the connection:
 *
 *  - waiting for a request (from the accept, or once an answer went out on
 *    a keep-alive connection): the socket is watched for input. End of
 *    file closes the connection; the first byte starts the header
 *    deadline. A new connection has the header timeout from its accept, an
 *    idle one the idle timeout.
 *  - reading the head: the header deadline alone.
 *  - reading the body: the idle timeout, restarted by every piece.
 *  - handling the request and answering: no deadline (upstream timeouts
 *    apply); until the answer starts, the socket is watched for the
 *    client leaving, which cancels the upstream call at once.
 *
 * A connection past its deadline is closed through
 * soup_server_message_steal_connection(), the way libsoup lets go of a
 * connection it no longer serves. */

typedef enum
{
  CONN_WAITING,
  CONN_HEAD,
  CONN_BODY,
  CONN_BUSY,
} ConnState;

typedef struct
{
  GSource            source;
  GkGateway         *gateway;
  GSocket           *socket;   /* the key in gateway->connections */
  SoupServerMessage *msg;      /* the request being read or waited for */
  gpointer           fd_tag;
  GIOCondition       events;   /* watched on the socket */
  gint64             deadline; /* monotonic µs, -1 for none */
  ConnState          state;
  gboolean           fresh;    /* no request read on it yet */
} ClientConn;

static void request_client_left (SoupServerMessage *msg);

/* Each g_source_set_ready_time() and g_source_modify_unix_fd() writes to
 * the context's wakeup fd (a system call, and another main loop iteration
 * to read it), and a request moves a connection through four states: the
 * source's ready time is only ever brought forward, so a deadline that
 * moved later or went is found when the source fires (conn_dispatch), and
 * the socket's events are changed only when they differ. */
static void
conn_set_deadline (ClientConn *conn,
                   guint       timeout_ms)
{
  gint64 ready = g_source_get_ready_time ((GSource *) conn);

  conn->deadline = timeout_ms ? g_get_monotonic_time () + (gint64) timeout_ms * 1000 : -1;
  if (conn->deadline >= 0 && (ready < 0 || conn->deadline < ready))
    g_source_set_ready_time ((GSource *) conn, conn->deadline);
}

static void
conn_watch (ClientConn *conn,
            gboolean    readable)
{
  GIOCondition events = readable ? G_IO_IN | G_IO_HUP | G_IO_ERR : 0;

  if (events != conn->events)
    {
      conn->events = events;
      g_source_modify_unix_fd ((GSource *) conn, conn->fd_tag, events);
    }
}

static void
conn_set_state (ClientConn *conn,
                ConnState   state,
                guint       timeout_ms)
{
  conn->state = state;
  conn_watch (conn, state == CONN_WAITING || state == CONN_BUSY);
  conn_set_deadline (conn, timeout_ms);
}

/* Lets libsoup go of the connection and closes it. Frees @conn (through
 * the message's "disconnected"). */
static void
conn_close (ClientConn *conn)
{
  g_autoptr(SoupServerMessage) msg = g_object_ref (conn->msg);
  g_autoptr(GIOStream) stream = NULL;

  stream = soup_server_message_steal_connection (msg);
  if (stream != NULL)
    g_io_stream_close (stream, NULL, NULL);
  /* Stealing normally said "disconnected"; this covers the rest. */
  g_hash_table_remove (conn->gateway->connections, conn->socket);
}

static gboolean
conn_dispatch (GSource     *source,
               GSourceFunc  callback,
               gpointer     user_data)
{
  ClientConn *conn = (ClientConn *) source;
  GIOCondition revents = conn->events != 0 ? g_source_query_unix_fd (source, conn->fd_tag) : 0;
  gint64 deadline = conn->deadline;

  if (revents != 0)
    {
      char byte;
      gssize n = recv (g_socket_get_fd (conn->socket), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      gboolean again = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);

      if (conn->state == CONN_BUSY)
        {
          /* The request waits for its answer: a close (the client left)
           * cancels its upstream call at once, since libsoup reads nothing
           * from a paused message and would not notice. Bytes of a next
           * request are not a close. Either way, nothing more to watch. */
          if (again)
            return G_SOURCE_CONTINUE;
          conn_watch (conn, FALSE);
          if (n <= 0)
            request_client_left (conn->msg);
          return G_SOURCE_CONTINUE;
        }
      if (n == 0 || (n < 0 && !again))
        {
          /* The client closed (or reset) the connection while it was idle. */
          conn_close (conn);
          return G_SOURCE_CONTINUE;
        }
      /* A request is on its way (libsoup may have read its first bytes
       * already): the head must be complete in time. A new connection's
       * deadline runs from its accept. */
      conn_set_state (conn, CONN_HEAD, conn->gateway->header_timeout_ms);
      if (conn->fresh)
        conn->deadline = deadline;
      return G_SOURCE_CONTINUE;
    }
  if (deadline >= 0 && g_get_monotonic_time () >= deadline)
    {
      conn_close (conn);
      return G_SOURCE_CONTINUE;
    }
  /* Woken for a deadline that moved since: wait for the current one. */
  g_source_set_ready_time (source, deadline);
  return G_SOURCE_CONTINUE;
}

static void
conn_finalize (GSource *source)
{
  ClientConn *conn = (ClientConn *) source;

  g_clear_object (&conn->msg);
  g_clear_object (&conn->socket);
}

static GSourceFuncs conn_source_funcs = {
  .dispatch = conn_dispatch,
  .finalize = conn_finalize,
};

static void
conn_destroy (gpointer data)
{
  GSource *source = data;

  g_source_destroy (source);
  g_source_unref (source);
}

static void
conn_msg_disconnected_cb (SoupServerMessage *msg,
                          GkGateway         *self)
{
  GSocket *socket = g_object_get_data (G_OBJECT (msg), "gk-conn-socket");
  ClientConn *conn = socket && self->connections
    ? g_hash_table_lookup (self->connections, socket) : NULL;

  if (conn != NULL && conn->msg == msg)
    g_hash_table_remove (self->connections, socket);
}

static ClientConn *
conn_of (GkGateway         *self,
         SoupServerMessage *msg)
{
  GSocket *socket = g_object_get_data (G_OBJECT (msg), "gk-conn-socket");
  ClientConn *conn = socket ? g_hash_table_lookup (self->connections, socket) : NULL;

  return conn != NULL && conn->msg == msg ? conn : NULL;
}

static void
conn_got_headers_cb (SoupServerMessage *msg,
                     GkGateway         *self)
{
  ClientConn *conn = conn_of (self, msg);

  if (conn != NULL)
    {
      conn->fresh = FALSE;
      conn_set_state (conn, CONN_BODY, self->idle_timeout_ms);
    }
}

static void
conn_got_chunk_cb (SoupServerMessage *msg,
                   GBytes            *chunk,
                   GkGateway         *self)
{
  ClientConn *conn = conn_of (self, msg);

  if (conn != NULL && conn->state == CONN_BODY)
    conn_set_deadline (conn, self->idle_timeout_ms);
}

static void
conn_got_body_cb (SoupServerMessage *msg,
                  GkGateway         *self)
{
  ClientConn *conn = conn_of (self, msg);

  if (conn != NULL)
    conn_set_state (conn, CONN_BUSY, 0);
}

static void
request_started_cb (SoupServer        *server,
                    SoupServerMessage *msg,
                    GkGateway         *self)
{
  GSocket *socket = soup_server_message_get_socket (msg);
  ClientConn *conn;

  /* libsoup's own handler was connected before this signal. */
  g_signal_connect_after (msg, "got-headers", G_CALLBACK (got_headers_after_cb), self);

  if (socket == NULL)
    return;
  conn = g_hash_table_lookup (self->connections, socket);
  if (conn == NULL)
    {
      conn = (ClientConn *) g_source_new (&conn_source_funcs, sizeof (ClientConn));
      conn->gateway = self;
      conn->socket = g_object_ref (socket);
      conn->fd_tag = g_source_add_unix_fd ((GSource *) conn, g_socket_get_fd (socket), 0);
      conn->deadline = -1;
      g_source_set_priority ((GSource *) conn, G_PRIORITY_DEFAULT);
      g_source_attach ((GSource *) conn, self->context);
      g_hash_table_insert (self->connections, socket, conn);
      conn->fresh = TRUE;
      /* Looked up now, while the client is surely there: libsoup looks
       * them up when a connection is stolen, and warns if that fails. */
      soup_server_message_get_local_address (msg);
      soup_server_message_get_remote_address (msg);
    }
  g_set_object (&conn->msg, msg);
  g_object_set_data (G_OBJECT (msg), "gk-conn-socket", socket);
  g_signal_connect (msg, "got-headers", G_CALLBACK (conn_got_headers_cb), self);
  g_signal_connect (msg, "got-chunk", G_CALLBACK (conn_got_chunk_cb), self);
  g_signal_connect (msg, "got-body", G_CALLBACK (conn_got_body_cb), self);
  g_signal_connect (msg, "disconnected", G_CALLBACK (conn_msg_disconnected_cb), self);
  if (conn->fresh)
    {
      /* Accepted just now: the head is due within the header timeout. */
      conn_set_state (conn, CONN_WAITING, self->header_timeout_ms);
      return;
    }
  /* On a keep-alive connection, libsoup starts the next request once its
   * first bytes came: the head is due within the header timeout (from the
   * first byte, when the watch saw it first). */
  if (conn->state != CONN_HEAD)
    conn_set_state (conn, CONN_HEAD, self->header_timeout_ms);
}

/* An answer went out: a connection that stays open waits for the next
 * request, watched for its client closing it. */
static void
request_finished_cb (SoupServer        *server,
                     SoupServerMessage *msg,
                     GkGateway         *self)
{
  ClientConn *conn = conn_of (self, msg);

  if (conn != NULL)
    {
      conn->fresh = FALSE;
      conn_set_state (conn, CONN_WAITING, self->idle_timeout_ms);
    }
}

/* ---- Usage scanning over a relayed stream ------------------------------ */

/* GkUsageScanner (gk-gateway-private.h) finds the usage in a stream as it
 * passes. Only pieces that mention "usage" are parsed; the last usage seen
 * wins, since usageMetadata is complete in the last chunk. */

void
gk_usage_scanner_init (GkUsageScanner *scanner,
                       gboolean        sse)
{
  memset (scanner, 0, sizeof *scanner);
  scanner->sse = sse;
  scanner->pending = g_string_new (NULL);
}

void
gk_usage_scanner_clear (GkUsageScanner *scanner)
{
  if (scanner->pending)
    g_string_free (scanner->pending, TRUE);
  scanner->pending = NULL;
}

static void
scanner_take_json (GkUsageScanner *scanner,
                   const char     *json,
                   gsize           len)
{
  GkTokenUsage usage = { 0 };

  if (g_strstr_len (json, len, "sage") == NULL)
    return;
  if (gk_usage_parse (json, len, &usage) && usage.found)
    scanner->usage = usage;
}

static void
scanner_take_event (GkUsageScanner *scanner,
                    const char     *event,
                    gsize           len)
{
  g_autoptr(GString) data = NULL;
  const char *p = event;
  const char *end = event + len;

  if (g_strstr_len (event, len, "sage") == NULL)
    return;
  data = g_string_new (NULL);
  while (p < end)
    {
      const char *eol = memchr (p, '\n', end - p);
      const char *line_end = eol ? eol : end;
      gsize line_len = line_end - p;

      if (line_len > 0 && p[line_len - 1] == '\r')
        line_len--;
      if (line_len >= 5 && memcmp (p, "data:", 5) == 0)
        {
          const char *value = p + 5;
          gsize value_len = line_len - 5;

          if (value_len > 0 && *value == ' ')
            {
              value++;
              value_len--;
            }
          if (data->len > 0)
            g_string_append_c (data, '\n');
          g_string_append_len (data, value, value_len);
        }
      p = eol ? eol + 1 : end;
    }
  scanner_take_json (scanner, data->str, data->len);
}

/* Where the first blank line (\n\n or \r\n\r\n) in @buf starts, looking
 * from @from on; its length goes to @sep_len. Bytes, not a C string: a NUL
 * in the stream must not hide the events after it. */
static const char *
find_event_end (const char *buf,
                gsize       len,
                gsize       from,
                gsize      *sep_len)
{
  const char *end = buf + len;

  for (const char *p = memchr (buf + from, '\n', len - from); p != NULL;
       p = memchr (p + 1, '\n', end - p - 1))
    {
      if (p + 1 < end && p[1] == '\n')
        {
          *sep_len = 2;
          return p;
        }
      if (p > buf && p[-1] == '\r' && p + 2 < end && p[1] == '\r' && p[2] == '\n')
        {
          *sep_len = 4;
          return p - 1;
        }
    }
  return NULL;
}

static void
scanner_feed_sse (GkUsageScanner *scanner,
                  const char     *data,
                  gsize           len)
{
  gsize start = 0;
  /* What was pending held no blank line: only one that ends in the new
   * data is left to find, so a long event fed in many pieces is not
   * searched again from its start each time. */
  gsize from = scanner->pending->len > 3 ? scanner->pending->len - 3 : 0;

  g_string_append_len (scanner->pending, data, len);
  for (;;)
    {
      const char *buf = scanner->pending->str + start;
      gsize avail = scanner->pending->len - start;
      gsize sep_len = 0;
      const char *sep = find_event_end (buf, avail, from, &sep_len);

      if (sep == NULL)
        break;
      scanner_take_event (scanner, buf, sep - buf);
      start += (sep - buf) + sep_len;
      from = 0;
    }
  g_string_erase (scanner->pending, 0, start);
}

static void
scanner_feed_array (GkUsageScanner *scanner,
                    const char     *data,
                    gsize           len)
{
  for (gsize i = 0; i < len; i++)
    {
      char c = data[i];

      if (scanner->depth >= 2 || (scanner->depth == 1 && c == '{'))
        g_string_append_c (scanner->pending, c);

      if (scanner->in_string)
        {
          if (scanner->escape)
            scanner->escape = FALSE;
          else if (c == '\\')
            scanner->escape = TRUE;
          else if (c == '"')
            scanner->in_string = FALSE;
          continue;
        }
      if (c == '"')
        scanner->in_string = TRUE;
      else if (c == '{' || c == '[')
        scanner->depth++;
      else if (c == '}' || c == ']')
        {
          scanner->depth--;
          if (scanner->depth == 1)
            {
              scanner_take_json (scanner, scanner->pending->str, scanner->pending->len);
              g_string_truncate (scanner->pending, 0);
            }
        }
    }
}

void
gk_usage_scanner_feed (GkUsageScanner *scanner,
                       const char     *data,
                       gsize           len)
{
  if (scanner->sse)
    scanner_feed_sse (scanner, data, len);
  else
    scanner_feed_array (scanner, data, len);
}

void
gk_usage_scanner_finish (GkUsageScanner *scanner)
{
  if (scanner->sse && scanner->pending->len > 0)
    scanner_take_event (scanner, scanner->pending->str, scanner->pending->len);
  g_string_truncate (scanner->pending, 0);
}

/* Where the JSON value starting at @pos ends (one past it), 0 when it is
 * cut short. Strings are skipped whole, so braces inside them do not count. */
static gsize
json_value_end (const char *data,
                gsize       len,
                gsize       pos)
{
  int depth = 0;

  for (gsize i = pos; i < len; i++)
    {
      char c = data[i];

      if (c == '"')
        {
          for (i++; i < len && data[i] != '"'; i++)
            if (data[i] == '\\')
              i++;
          if (i >= len)
            return 0;
          if (depth == 0)
            return i + 1;
        }
      else if (c == '{' || c == '[')
        depth++;
      else if (c == '}' || c == ']')
        {
          if (--depth <= 0)
            return depth == 0 ? i + 1 : 0;
        }
      else if (depth == 0 && (c == ',' || g_ascii_isspace (c)))
        return i;
    }
  return 0;
}

/* The counts of a usageMetadata object (@data from @start to @end) when
 * each one is a plain integer, as Google sends them, added up the way
 * gk_usage_parse() does. FALSE for anything else, which then goes to the
 * JSON parser. That includes integers with a leading zero, which JSON does
 * not allow and json-glib reads in C's radixes (010 is 8, 0x1F is 31):
 * handing them over keeps both readings the same. */
static gboolean
gemini_usage_fast (const char   *data,
                   gsize         start,
                   gsize         end,
                   GkTokenUsage *usage)
{
  static const char *names[] = {
    "promptTokenCount", "toolUsePromptTokenCount", "candidatesTokenCount",
    "thoughtsTokenCount", "totalTokenCount",
  };
  gint64 counts[G_N_ELEMENTS (names)] = { 0 };
  gboolean seen[G_N_ELEMENTS (names)] = { FALSE };
  gsize i = start + 1;

  if (data[start] != '{')
    return FALSE;
  for (;;)
    {
      gsize key, key_len;
      int which = -1;

      while (i < end && (g_ascii_isspace (data[i]) || data[i] == ','))
        i++;
      if (i >= end)
        return FALSE;
      if (data[i] == '}')
        break;
      if (data[i] != '"')
        return FALSE;
      key = ++i;
      while (i < end && data[i] != '"' && data[i] != '\\')
        i++;
      if (i >= end || data[i] != '"')
        return FALSE;
      key_len = i - key;
      for (i++; i < end && g_ascii_isspace (data[i]); i++)
        ;
      if (i >= end || data[i] != ':')
        return FALSE;
      for (i++; i < end && g_ascii_isspace (data[i]); i++)
        ;
      for (guint n = 0; n < G_N_ELEMENTS (names); n++)
        if (strlen (names[n]) == key_len && memcmp (data + key, names[n], key_len) == 0)
          which = (int) n;
      if (which < 0)
        {
          gsize value_end = json_value_end (data, end, i);

          if (value_end == 0)
            return FALSE;
          i = value_end;
          continue;
        }
      {
        gint64 value = 0;
        guint digits = 0;

        if (i + 1 < end && data[i] == '0' && g_ascii_isalnum (data[i + 1]))
          return FALSE;
        for (; i < end && g_ascii_isdigit (data[i]) && digits < 18; i++, digits++)
          value = value * 10 + (data[i] - '0');
        if (digits == 0 || i >= end ||
            !(data[i] == ',' || data[i] == '}' || g_ascii_isspace (data[i])))
          return FALSE;
        counts[which] = value;
        seen[which] = TRUE;
      }
    }

  usage->prompt_tokens = counts[0] + counts[1];
  usage->output_tokens = counts[2] + counts[3];
  usage->total_tokens = seen[4] ? counts[4] : usage->prompt_tokens + usage->output_tokens;
  usage->found = TRUE;
  return TRUE;
}

/* The usage of a whole (non-stream) answer. Parsing all of a long answer
 * costs more than the rest of the request; only the top-level
 * usageMetadata (or OpenAI "usage") member is parsed, found by a scan that
 * skips strings. Anything unusual goes to the full parse. */
gboolean
gk_gateway_usage_parse_answer (const char   *data,
                               gsize         len,
                               GkTokenUsage *usage)
{
  gsize i = 0;
  gsize spans[2][2] = { { 0, 0 }, { 0, 0 } };   /* usageMetadata, usage */
  int depth = 0;
  gboolean whole = FALSE;

  memset (usage, 0, sizeof *usage);
  if (len >= 3 && memcmp (data, "\xEF\xBB\xBF", 3) == 0)
    i = 3;
  while (i < len && g_ascii_isspace (data[i]))
    i++;
  if (i == len || data[i] != '{')
    return gk_usage_parse (data, len, usage);

  for (; i < len; i++)
    {
      char c = data[i];

      if (c == '"')
        {
          gsize start = i + 1;
          gsize j;

          for (i = start; i < len && data[i] != '"'; i++)
            if (data[i] == '\\')
              i++;
          if (i >= len)
            break;
          if (depth != 1)
            continue;
          for (j = i + 1; j < len && g_ascii_isspace (data[j]); j++)
            ;
          if (j < len && data[j] == ':')
            {
              gsize key_len = i - start;
              int which = -1;
              gsize end;

              if (key_len == 13 && memcmp (data + start, "usageMetadata", 13) == 0)
                which = 0;
              else if (key_len == 5 && memcmp (data + start, "usage", 5) == 0)
                which = 1;
              for (j++; j < len && g_ascii_isspace (data[j]); j++)
                ;
              end = j < len ? json_value_end (data, len, j) : 0;
              if (end == 0)
                break;
              if (which >= 0)
                {
                  spans[which][0] = j;
                  spans[which][1] = end;
                }
              i = end - 1;
            }
        }
      else if (c == '{' || c == '[')
        depth++;
      else if (c == '}' || c == ']')
        {
          if (--depth == 0)
            {
              whole = TRUE;
              break;
            }
        }
    }

  if (spans[0][1] > 0 && gemini_usage_fast (data, spans[0][0], spans[0][1], usage))
    return TRUE;
  for (int which = 0; which < 2; which++)
    if (spans[which][1] > 0)
      {
        g_autoptr(GString) piece = g_string_sized_new (spans[which][1] - spans[which][0] + 20);

        g_string_append (piece, which == 0 ? "{\"usageMetadata\":" : "{\"usage\":");
        g_string_append_len (piece, data + spans[which][0], spans[which][1] - spans[which][0]);
        g_string_append_c (piece, '}');
        if (gk_usage_parse (piece->str, piece->len, usage) && usage->found)
          return TRUE;
      }
  /* A complete object without usage has none to find. */
  return whole ? FALSE : gk_usage_parse (data, len, usage);
}

/* ---- The proxy ---------------------------------------------------------- */

typedef struct
{
  GkGateway         *gateway;
  SoupServerMessage *msg;
  char              *user_id;
  char              *http_method;
  char              *path;          /* for logs: never holds the query */
  GkUpstreamRequest  upstream;      /* what is sent, built from checked parts */
  char              *model;
  GBytes            *body;
  gboolean           stream;
  gboolean           sse;
  GArray            *exclude;
  guint              attempts;
  GCancellable      *cancellable;
  GList             *link;          /* in the gateway's requests */
  gint64             deadline;      /* of all attempts; 0 = none */
  gboolean           client_gone;
  gboolean           answered;
  gint64             received;      /* monotonic µs */
  char              *unavailable;   /* the 503's message when no key could serve */
  const char        *retry_after;   /* with it; NULL = no Retry-After */

  /* The attempt in progress. */
  GkUpstreamCall    *call;
  gint64             key_id;
  gint64             attempt_start;
  guint              status;
  GByteArray        *buffer;
  gsize              buffer_limit;
  gboolean           big_answer;    /* a buffer grew past BIG_ANSWER */
  gsize              unsent;        /* relayed to libsoup, not yet written */
  gulong             wrote_id;      /* "wrote-body-data" handler */
  GkUsageScanner     scanner;
  GkRedactor         redactor;      /* over a relayed stream */
  gboolean           relaying;

  /* The last transient failure, relayed when no key is left. */
  guint              last_status;
  GBytes            *last_body;
  char              *last_error;
  GError            *last_failure;  /* GK_UPSTREAM_ERROR's class of @last_error */
} Request;

static void request_attempt        (Request *request);
static void request_unwatch_client (Request *request);

static void
request_free (Request *request)
{
  request->gateway->in_flight--;
  g_queue_delete_link (&request->gateway->requests, request->link);
  g_object_set_data (G_OBJECT (request->msg), "gk-gateway-request", NULL);
  g_clear_signal_handler (&request->wrote_id, request->msg);
  g_object_unref (request->msg);
  g_free (request->user_id);
  g_free (request->http_method);
  g_free (request->path);
  gk_upstream_request_clear (&request->upstream);
  g_free (request->model);
  g_clear_pointer (&request->body, g_bytes_unref);
  g_clear_pointer (&request->exclude, g_array_unref);
  g_clear_object (&request->cancellable);
  g_clear_pointer (&request->call, gk_upstream_call_free);
  g_clear_pointer (&request->buffer, g_byte_array_unref);
  gk_usage_scanner_clear (&request->scanner);
  gk_redactor_clear (&request->redactor);
  g_clear_pointer (&request->last_body, g_bytes_unref);
  g_free (request->last_error);
  g_clear_error (&request->last_failure);
  g_free (request->unavailable);
#ifdef __GLIBC__
  /* glibc keeps freed memory of the gateway thread's arena: a big answer
   * would stay in the process's size for good. */
  if (request->big_answer)
    malloc_trim (0);
#endif
  g_free (request);
}

static gint64
elapsed_ms (Request *request)
{
  return (g_get_monotonic_time () - request->attempt_start) / 1000;
}

typedef void (*RequestNext) (Request *request);

/* One usage row waiting to be written, and what the request does once it
 * is written. */
typedef struct
{
  Request       *request;
  RequestNext    next;
  GkUsageRecord  record;
  char          *model;
  char          *user_id;
  char          *error_message;
  GkTrackResult  result;
  GError        *error;
  gboolean       held;     /* not written yet (disk full): a copy is in held */
} TrackJob;

static void
track_job_free (TrackJob *job)
{
  g_free (job->model);
  g_free (job->user_id);
  g_free (job->error_message);
  g_clear_error (&job->error);
  g_free (job);
}

/* In the gateway's thread, once the row is written. */
static void
track_done (TrackJob *job)
{
  Request *request = job->request;
  GkGateway *self = request->gateway;
  const GkUsageRecord *record = &job->record;
  GkTrackResult *result = &job->result;
  RequestNext next = job->next;

  if (job->error != NULL)
    gateway_log (self, "could not record usage of key %" G_GINT64_FORMAT ": %s",
                 record->key_id, job->error->message);
  else if (job->held)
    gateway_log (self, "the disk is full: usage of key %" G_GINT64_FORMAT
                 " is kept in memory until it can be written", record->key_id);
  if (job->error == NULL)
    g_atomic_int_inc (&self->usage_count);

  /* A request no key could serve has its cause logged once (see
   * request_unavailable()), not a line each. */
  if (record->key_id != 0)
    gateway_log (self, "%s %s -> %u key=%" G_GINT64_FORMAT " user=%s status=%s tokens=%"
                 G_GINT64_FORMAT "+%" G_GINT64_FORMAT " %" G_GINT64_FORMAT " ms%s%s%s",
                 request->http_method, request->path, (guint) record->http_status,
                 record->key_id, record->user_id, gk_usage_status_to_string (record->status),
                 record->prompt_tokens, record->output_tokens, record->latency_ms,
                 result->rotated ? " (rotated: " : "",
                 result->rotated ? gk_rotation_reason_to_string (result->reason) : "",
                 result->rotated ? ")" : "");
  track_job_free (job);
  next (request);
}

/* Rows the disk had no room for, kept in memory and tried again every
 * HELD_RETRY_US. New requests are refused meanwhile, so only those
 * already in flight add to them; past HELD_MAX rows are dropped. */
#define HELD_MAX         100000
#define HELD_RETRY_US    (500 * 1000)

static gboolean
is_disk_full (const GError *error)
{
  return g_error_matches (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_FULL);
}

/* Writes @jobs in one transaction: one commit (the costly part) for all,
 * each row in its own savepoint so one that fails is undone alone.
 * Returns FALSE when the disk is full: then nothing of @jobs was written
 * and no job has an error. */
static gboolean
write_batch (GkGateway *self,
             GPtrArray *jobs)
{
  g_autoptr(GError) error = NULL;
  gboolean in_batch = jobs->len > 1 && gk_pool_batch_begin (self->pool, &error);
  gboolean full = FALSE;

  for (guint i = 0; i < jobs->len && !full; i++)
    {
      TrackJob *job = g_ptr_array_index (jobs, i);

      gk_pool_track (self->pool, &job->record, &job->result, &job->error);
      full = is_disk_full (job->error);
    }
  if (full && in_batch)
    gk_pool_batch_cancel (self->pool);
  else if (in_batch && !gk_pool_batch_end (self->pool, &error))
    {
      full = is_disk_full (error);
      /* Nothing of the batch was written: every row says so. */
      for (guint i = 0; i < jobs->len && !full; i++)
        {
          TrackJob *job = g_ptr_array_index (jobs, i);

          if (job->error == NULL)
            job->error = g_error_copy (error);
        }
    }
  if (full)
    for (guint i = 0; i < jobs->len; i++)
      g_clear_error (&((TrackJob *) g_ptr_array_index (jobs, i))->error);
  return !full;
}

/* A copy of @job's row to keep in held; @job itself goes on. */
static TrackJob *
track_job_hold (TrackJob *job)
{
  TrackJob *copy = g_new0 (TrackJob, 1);

  job->held = TRUE;
  copy->held = TRUE;
  copy->model = g_strdup (job->model);
  copy->user_id = g_strdup (job->user_id);
  copy->error_message = g_strdup (job->error_message);
  copy->record = job->record;
  copy->record.model = copy->model;
  copy->record.user_id = copy->user_id;
  copy->record.error_message = copy->error_message;
  return copy;
}

/* Tries the held rows again, in one transaction; TRUE once written. */
static gboolean
write_held (GkGateway *self,
            GPtrArray *held)
{
  if (!write_batch (self, held))
    return FALSE;
  for (guint i = 0; i < held->len; i++)
    {
      TrackJob *job = g_ptr_array_index (held, i);

      if (job->error != NULL)
        g_warning ("A usage row kept while the disk was full could not be written: %s",
                   job->error->message);
    }
  g_message ("The disk has room again: %u usage rows kept in memory were written",
             held->len);
  g_ptr_array_set_size (held, 0);
  self->disk_full = FALSE;
  return TRUE;
}

/* Keeps copies of @jobs' rows to write once the disk has room; the
 * requests themselves go on. */
static void
hold_rows (GkGateway *self,
           GPtrArray *jobs)
{
  self->disk_full = TRUE;
  for (guint i = 0; i < jobs->len; i++)
    {
      TrackJob *copy = track_job_hold (g_ptr_array_index (jobs, i));

      if (self->held->len < HELD_MAX)
        g_ptr_array_add (self->held, copy);
      else
        {
          g_warning ("The disk is full and %u usage rows are waiting: one more is lost",
                     self->held->len);
          track_job_free (copy);
        }
    }
}

/* Writes the rows of the requests that ended since the last write, in one
 * transaction (held rows first, so that rows stay in order), then lets
 * those requests go on. Dispatched once per main loop iteration at most:
 * requests that end together share one commit. */
static gboolean
write_rows_cb (gpointer data)
{
  GkGateway *self = data;
  g_autoptr(GPtrArray) jobs = g_steal_pointer (&self->to_write);

  self->to_write = g_ptr_array_new ();
  g_source_set_ready_time (self->write_source, -1);
  if (self->held->len > 0)
    write_held (self, self->held);
  if (jobs->len > 0 && (self->held->len > 0 || !write_batch (self, jobs)))
    hold_rows (self, jobs);
  if (self->held->len > 0)
    g_source_set_ready_time (self->write_source, g_get_monotonic_time () + HELD_RETRY_US);
  /* The requests are answered, their rows written or held. */
  for (guint i = 0; i < jobs->len; i++)
    track_done (g_ptr_array_index (jobs, i));
  return G_SOURCE_CONTINUE;
}

static void
queue_row (GkGateway *self,
           TrackJob  *job)
{
  g_ptr_array_add (self->to_write, job);
  if (self->to_write->len == 1)
    g_source_set_ready_time (self->write_source, 0);
}

/* Writes the usage row of the current attempt, then calls @next. The
 * client is answered only after the row is written, so whoever reads the
 * database after an answer finds its row. */
static void
request_track (Request            *request,
               GkUsageStatus       status,
               const GkTokenUsage *usage,
               const GkOutcome    *outcome,
               const char         *error_message,
               RequestNext         next)
{
  GkGateway *self = request->gateway;
  TrackJob *job = g_new0 (TrackJob, 1);
  GkUsageRecord *record = &job->record;

  job->request = request;
  job->next = next;
  job->model = g_strdup (request->model);
  job->user_id = g_strdup (request->user_id);
  job->error_message = error_message ? gk_redact_keys (error_message) : NULL;

  gk_usage_record_init (record);
  record->key_id = request->key_id;
  record->model = job->model;
  record->prompt_tokens = usage && usage->found ? usage->prompt_tokens : 0;
  record->output_tokens = usage && usage->found ? usage->output_tokens : 0;
  record->status = status;
  record->http_status = (int) request->status;
  record->error_message = job->error_message;
  record->user_id = job->user_id;
  record->latency_ms = elapsed_ms (request);
  if (outcome != NULL && status == GK_USAGE_RATE_LIMITED)
    {
      record->retry_delay_s = outcome->retry_delay_s;
      record->per_day = outcome->kind == GK_OUTCOME_RATE_LIMITED_DAY;
      record->per_project = outcome->per_project;
    }

  /* A lone request writes its row at once; the rows of requests that end
   * together wait for one write (and so keep their order). */
  if (self->in_flight > 1 || self->to_write->len > 0 || self->disk_full)
    {
      queue_row (self, job);
      return;
    }
  gk_pool_track (self->pool, record, &job->result, &job->error);
  if (is_disk_full (job->error))
    {
      /* Held until the disk has room. */
      g_clear_error (&job->error);
      queue_row (self, job);
      return;
    }
  track_done (job);
}

static void
request_finish (Request *request)
{
  if (!request->answered)
    {
      request->answered = TRUE;
      if (!request->client_gone)
        soup_server_message_unpause (request->msg);
    }
  request_free (request);
}

static void
request_answer_unavailable (Request *request)
{
  if (!request->client_gone)
    {
      if (request->retry_after != NULL)
        soup_message_headers_replace (soup_server_message_get_response_headers (request->msg),
                                      "Retry-After", request->retry_after);
      gk_gateway_respond_error (request->msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                                request->unavailable);
    }
  request_finish (request);
}

/* No key can serve the request: it is answered 503 with @message once its
 * row (ERROR, HTTP 503, no key, its user and model) is in the usage log,
 * like any failed request. The caller logs the cause once, not per
 * request. */
static void
request_unavailable (Request    *request,
                     const char *message,
                     const char *retry_after)
{
  request->key_id = 0;
  request->status = SOUP_STATUS_SERVICE_UNAVAILABLE;
  request->attempt_start = request->received;
  request->unavailable = g_strdup (message);
  request->retry_after = retry_after;
  request_track (request, GK_USAGE_ERROR, NULL, NULL, message, request_answer_unavailable);
}

static void
copy_response_headers (GkUpstreamCall    *from,
                       SoupServerMessage *to)
{
  SoupMessageHeaders *dest = soup_server_message_get_response_headers (to);
  SoupMessageHeadersIter iter;
  const char *name, *value;

  soup_message_headers_iter_init (&iter, gk_upstream_call_get_response_headers (from));
  while (soup_message_headers_iter_next (&iter, &name, &value))
    if (!header_in (name, response_headers_dropped, G_N_ELEMENTS (response_headers_dropped)))
      {
        g_autofree char *redacted = gk_redact_text (value);

        soup_message_headers_append (dest, name, redacted);
      }
}

/* Answers the client with an upstream body (pool keys redacted) and ends
 * the request. */
static void
request_relay_body (Request    *request,
                    guint       status,
                    const char *data,
                    gsize       len)
{
  SoupServerMessage *msg = request->msg;

  if (!request->client_gone)
    {
      const char *type = request->call != NULL && status < 300
        ? soup_message_headers_get_one (gk_upstream_call_get_response_headers (request->call),
                                        "Content-Type")
        : NULL;
      gsize redacted_len = 0;
      /* A pool key in any answer, 2xx too, is replaced. */
      char *redacted = gk_redact_bytes (data, len, &redacted_len);

      if (type == NULL)
        type = "application/json; charset=UTF-8";
      if (request->call != NULL)
        copy_response_headers (request->call, msg);
      soup_server_message_set_status (msg, status, NULL);
      if (redacted != NULL)
        soup_server_message_set_response (msg, type, SOUP_MEMORY_TAKE, redacted, redacted_len);
      else if (len > 0 && request->buffer != NULL && data == (const char *) request->buffer->data &&
               len == request->buffer->len)
        {
          /* The upstream's body itself when it is the buffer read whole:
           * no copy. */
          g_autoptr(GBytes) bytes = g_byte_array_free_to_bytes (g_steal_pointer (&request->buffer));

          /* What soup_server_message_set_response() does, with bytes. */
          soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                        "Content-Type", type);
          soup_message_body_append_bytes (soup_server_message_get_response_body (msg), bytes);
        }
      else
        soup_server_message_set_response (msg, type, SOUP_MEMORY_COPY, data, len);
    }
  request_finish (request);
}

/* What the client is told of an upstream failure: its class, never
 * libcurl's detail (that goes to the log). */
typedef struct
{
  GkUpstreamError  code;
  guint            status;
  const char      *google_status;
  const char      *message;
} UpstreamFailure;

static const UpstreamFailure upstream_failures[] = {
  { GK_UPSTREAM_ERROR_RESOLVE, SOUP_STATUS_BAD_GATEWAY, "UNAVAILABLE",
    "The upstream could not be reached: its host name does not resolve." },
  { GK_UPSTREAM_ERROR_CONNECT, SOUP_STATUS_BAD_GATEWAY, "UNAVAILABLE",
    "The upstream could not be reached: the connection was refused." },
  { GK_UPSTREAM_ERROR_PROXY, SOUP_STATUS_BAD_GATEWAY, "UNAVAILABLE",
    "The upstream could not be reached: the proxy failed or refused the connection." },
  { GK_UPSTREAM_ERROR_TLS_UNTRUSTED, SOUP_STATUS_BAD_GATEWAY, "UNAVAILABLE",
    "The upstream could not be reached: its TLS certificate is not trusted." },
  { GK_UPSTREAM_ERROR_TLS_EXPIRED, SOUP_STATUS_BAD_GATEWAY, "UNAVAILABLE",
    "The upstream could not be reached: its TLS certificate has expired or is not yet valid." },
  { GK_UPSTREAM_ERROR_TLS_HOST, SOUP_STATUS_BAD_GATEWAY, "UNAVAILABLE",
    "The upstream could not be reached: its TLS certificate is for another host name." },
  { GK_UPSTREAM_ERROR_TLS, SOUP_STATUS_BAD_GATEWAY, "UNAVAILABLE",
    "The upstream could not be reached: the TLS handshake failed." },
  { GK_UPSTREAM_ERROR_TIMEOUT, SOUP_STATUS_GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED",
    "The upstream did not answer in time." },
  { GK_UPSTREAM_ERROR_DEADLINE, SOUP_STATUS_GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED",
    "The request's deadline passed before the upstream answered." },
  { GK_UPSTREAM_ERROR_CLOSED, SOUP_STATUS_BAD_GATEWAY, "UNAVAILABLE",
    "The upstream closed the connection before the end of its answer." },
  { GK_UPSTREAM_ERROR_PROTOCOL, SOUP_STATUS_BAD_GATEWAY, "UNAVAILABLE",
    "The upstream sent an invalid answer." },
  { GK_UPSTREAM_ERROR_TOO_LARGE, SOUP_STATUS_BAD_GATEWAY, "UNAVAILABLE",
    "The upstream's answer is larger than the gateway relays." },
};

static const UpstreamFailure *
upstream_failure_of (const GError *error)
{
  static const UpstreamFailure fallback = {
    GK_UPSTREAM_ERROR_FAILED, SOUP_STATUS_BAD_GATEWAY, "UNAVAILABLE",
    "The upstream could not be reached.",
  };

  if (error != NULL && error->domain == GK_UPSTREAM_ERROR)
    for (guint i = 0; i < G_N_ELEMENTS (upstream_failures); i++)
      if (upstream_failures[i].code == (GkUpstreamError) error->code)
        return &upstream_failures[i];
  return &fallback;
}

/* The sentence a user reads for @error (`key test`). */
static const char *
gk_gateway_upstream_error_text (const GError *error)
{
  return upstream_failure_of (error)->message;
}

/* Whether another key could fare better after @error: not when the
 * upstream itself is unusable (TLS, proxy, name) or its answer is. */
static gboolean
upstream_failure_retryable (const GError *error)
{
  if (error->domain != GK_UPSTREAM_ERROR)
    return TRUE;
  switch ((GkUpstreamError) error->code)
    {
    case GK_UPSTREAM_ERROR_CONNECT:
    case GK_UPSTREAM_ERROR_TIMEOUT:
    case GK_UPSTREAM_ERROR_CLOSED:
    case GK_UPSTREAM_ERROR_FAILED:
      return TRUE;
    default:
      return FALSE;
    }
}

/* Nothing more can be tried: relay the last transient failure, or 503. */
static void
request_give_up (Request *request)
{
  GkGateway *self = request->gateway;

  g_clear_pointer (&request->call, gk_upstream_call_free);
  if (request->last_body != NULL)
    {
      gsize len;
      const char *data = g_bytes_get_data (request->last_body, &len);

      request_relay_body (request, request->last_status, data, len);
      return;
    }
  if (request->last_error != NULL)
    {
      const UpstreamFailure *failure = upstream_failure_of (request->last_failure);

      gateway_log (self, "%s %s -> %u upstream failure: %s", request->http_method,
                   request->path, failure->status, request->last_error);
      if (!request->client_gone)
        gk_gateway_respond_error (request->msg, failure->status, failure->google_status,
                                  failure->message);
      request_finish (request);
      return;
    }
  if (self->no_key_answers++ == 0)
    gateway_log (self, "%s %s -> 503 no active keys (logged once until a key serves again)",
                 request->http_method, request->path);
  request_unavailable (request, "No active keys available", "60");
}

/* Records @error as the failure the client gets if nothing else answers. */
static void
request_set_failure (Request      *request,
                     const GError *error)
{
  g_autofree char *message = g_strdup_printf ("Upstream request failed: %s", error->message);

  g_clear_pointer (&request->last_body, g_bytes_unref);
  g_free (request->last_error);
  request->last_error = gk_redact_keys (message);
  g_clear_error (&request->last_failure);
  request->last_failure = g_error_copy (error);
}

/* The current attempt failed in a way another key may not: try again. */
static void
request_next_attempt (Request *request)
{
  g_array_append_val (request->exclude, request->key_id);
  g_clear_pointer (&request->call, gk_upstream_call_free);
  g_clear_pointer (&request->buffer, g_byte_array_unref);
  request->key_id = 0;
  request->status = 0;
  if (request->client_gone)
    {
      request_finish (request);
      return;
    }
  request_attempt (request);
}

/* A key left service: what is relayed if nothing is left is then "No
 * active keys available", not an older transient failure. */
static void
request_forget_failure (Request *request)
{
  g_clear_pointer (&request->last_body, g_bytes_unref);
  g_clear_pointer (&request->last_error, g_free);
  request->last_status = 0;
}

/* Relays the upstream body read whole into @buffer. */
static void
request_relay_buffer (Request *request)
{
  request_relay_body (request, request->status, (const char *) request->buffer->data,
                      request->buffer->len);
}

/* A whole upstream body (non-stream answers and errors) has been read. */
static void
request_body_complete (Request *request)
{
  const char *data = (const char *) request->buffer->data;
  gsize len = request->buffer->len;
  guint status = request->status;
  GkOutcome outcome = { 0 };

  gk_outcome_classify (status, data, len, &outcome);

  switch (outcome.kind)
    {
    case GK_OUTCOME_SUCCESS:
      {
        GkTokenUsage usage = { 0 };

        gk_gateway_usage_parse_answer (data, len, &usage);
        request_track (request, GK_USAGE_SUCCESS, &usage, NULL, NULL, request_relay_buffer);
      }
      break;

    case GK_OUTCOME_RATE_LIMITED_MINUTE:
    case GK_OUTCOME_RATE_LIMITED_DAY:
      request_forget_failure (request);
      request_track (request, GK_USAGE_RATE_LIMITED, NULL, &outcome, outcome.message,
                     request_next_attempt);
      break;

    case GK_OUTCOME_INVALID_KEY:
      request_forget_failure (request);
      request_track (request, GK_USAGE_INVALID_KEY, NULL, &outcome, outcome.message,
                     request_next_attempt);
      break;

    case GK_OUTCOME_TRANSIENT:
      /* Relayed if no other key answers: the client then sees Google's
       * own "try again later". */
      g_clear_pointer (&request->last_body, g_bytes_unref);
      request->last_status = status;
      request->last_body = g_bytes_new (data, len);
      request_track (request, GK_USAGE_ERROR, NULL, &outcome, outcome.message,
                     request_next_attempt);
      break;

    case GK_OUTCOME_ERROR:
    default:
      /* The client's problem (bad request, unknown model…): no other key
       * would answer differently. */
      request_track (request, GK_USAGE_ERROR, NULL, &outcome, outcome.message,
                     request_relay_buffer);
      break;
    }
  gk_outcome_clear (&outcome);
}

/* The client left or the gateway is stopping: nothing to retry. */
static void
request_stopped (Request *request)
{
  if (!request->client_gone)
    gk_gateway_respond_error (request->msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                              "The gateway is stopping.");
  request_finish (request);
}

/* A network failure on the current attempt: no penalty for the key.
 * Another key is tried unless the failure is the upstream's own. */
static void
request_network_error (Request    *request,
                       GError     *error)
{
  g_autofree char *message = g_strdup_printf ("Upstream request failed: %s", error->message);

  request->status = 0;
  if (g_cancellable_is_cancelled (request->cancellable))
    {
      request_track (request, GK_USAGE_ERROR, NULL, NULL, message, request_stopped);
      return;
    }
  request_set_failure (request, error);
  request_track (request, GK_USAGE_ERROR, NULL, NULL, message,
                 upstream_failure_retryable (error) ? request_next_attempt : request_give_up);
}

/* Calls to gk_upstream_call_read() come last in these callbacks: the next
 * piece may be handed over before it returns. */
static void
read_all_cb (GkUpstreamCall *call,
             GBytes         *bytes,
             GError         *error,
             gpointer        user_data)
{
  Request *request = user_data;
  gsize len;

  if (error != NULL)
    {
      request_network_error (request, error);
      return;
    }
  if (bytes == NULL)
    {
      request_body_complete (request);
      return;
    }
  len = g_bytes_get_size (bytes);
  if (request->buffer->len + len > request->buffer_limit)
    {
      g_autoptr(GError) too_big = g_error_new (GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_TOO_LARGE,
                                               "the upstream's answer is larger than %zu bytes",
                                               request->buffer_limit);
      request_network_error (request, too_big);
      return;
    }
  g_byte_array_append (request->buffer, g_bytes_get_data (bytes, NULL), len);
  if (request->buffer->len > BIG_ANSWER)
    request->big_answer = TRUE;
  gk_upstream_call_read (request->call, read_all_cb, request);
}

/* Passes a piece of a stream on to the client, keys redacted; NULL for
 * the end of the stream (what was held back goes then). */
static void
relay_to_client (Request *request,
                 GBytes  *bytes)
{
  GString *out = g_string_new (NULL);
  gsize len;

  if (bytes != NULL)
    gk_redactor_feed (&request->redactor, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes),
                      out);
  else
    gk_redactor_finish (&request->redactor, out);
  len = out->len;
  request->unsent += len;
  if (len > 0)
    soup_message_body_append (soup_server_message_get_response_body (request->msg),
                              SOUP_MEMORY_TAKE, g_string_free (out, FALSE), len);
  else
    g_string_free (out, TRUE);
}

static void
relay_complete (Request *request)
{
  if (!request->client_gone)
    {
      relay_to_client (request, NULL);
      soup_message_body_complete (soup_server_message_get_response_body (request->msg));
    }
  request_finish (request);
}

/* The answer was already under way: it cannot move to another key. The
 * connection is closed so that the client sees a truncated answer rather
 * than a complete one. */
static void
relay_abort (Request *request)
{
  if (!request->client_gone)
    {
      GSocket *socket = soup_server_message_get_socket (request->msg);
      g_autoptr(GIOStream) stream = NULL;

      request->answered = TRUE;
      /* libsoup looks both addresses up when the connection is stolen,
       * and warns if the client is gone by then: looked up (and kept)
       * while it still waits for the answer. */
      soup_server_message_get_local_address (request->msg);
      soup_server_message_get_remote_address (request->msg);
      if (socket != NULL)
        {
          /* A chunk-size line cut short: even lenient HTTP readers, which
           * take a close between two chunks for the end, see an error.
           * Written on the socket itself, which is then shut for writing:
           * libsoup ends a chunked body it lets go of with a last chunk,
           * and that must not reach the client. */
          g_socket_send (socket, "1", 1, NULL, NULL);
          g_socket_shutdown (socket, FALSE, TRUE, NULL);
        }
      stream = soup_server_message_steal_connection (request->msg);
      if (stream != NULL)
        g_io_stream_close (stream, NULL, NULL);
    }
  request_finish (request);
}

static void
relay_end (Request    *request,
           GError     *error)
{
  g_autofree char *message = NULL;

  gk_usage_scanner_finish (&request->scanner);
  if (error == NULL)
    {
      request_track (request, GK_USAGE_SUCCESS, &request->scanner.usage, NULL, NULL,
                     relay_complete);
      return;
    }
  message = g_strdup_printf ("Upstream stream broke: %s", error->message);
  request_track (request, GK_USAGE_ERROR, &request->scanner.usage, NULL, message, relay_abort);
}

static void
relay_read_cb (GkUpstreamCall *call,
               GBytes         *bytes,
               GError         *error,
               gpointer        user_data)
{
  Request *request = user_data;
  gsize len;

  if (error != NULL)
    {
      relay_end (request, error);
      return;
    }
  if (bytes == NULL)
    {
      /* The end: the last chunk of a chunked body, all of a Content-Length
       * one, or a close for a body that ends at the close. A close anywhere
       * else is an error (relay_end). */
      relay_end (request, NULL);
      return;
    }
  len = g_bytes_get_size (bytes);
  gk_usage_scanner_feed (&request->scanner, g_bytes_get_data (bytes, NULL), len);
  if (!request->client_gone)
    {
      relay_to_client (request, bytes);
      soup_server_message_unpause (request->msg);
      /* relay_wrote_cb lets the upstream go on once the client caught up. */
      if (request->unsent > RELAY_BACKLOG)
        gk_upstream_call_set_held (request->call, TRUE);
    }
  gk_upstream_call_read (request->call, relay_read_cb, request);
}

static void
relay_wrote_cb (SoupServerMessage *msg,
                guint              chunk_size,
                gpointer           user_data)
{
  Request *request = user_data;

  request->unsent -= MIN (request->unsent, chunk_size);
  if (request->call != NULL && request->unsent <= RELAY_BACKLOG / 2)
    gk_upstream_call_set_held (request->call, FALSE);
}

/* Starts relaying a successful streamed answer chunk by chunk. */
static void
request_start_relay (Request *request)
{
  SoupServerMessage *msg = request->msg;
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);
  const char *type = soup_message_headers_get_content_type (
    gk_upstream_call_get_response_headers (request->call), NULL);

  request->relaying = TRUE;
  /* libsoup writes from now on and sees a client leaving itself. */
  request_unwatch_client (request);
  copy_response_headers (request->call, msg);
  soup_server_message_set_status (msg, request->status, NULL);
  soup_message_headers_set_encoding (headers, SOUP_ENCODING_CHUNKED);
  if (type != NULL)
    soup_message_headers_replace (headers, "Content-Type", type);
  gk_usage_scanner_init (&request->scanner,
                         request->sse || (type != NULL && g_str_has_prefix (type, "text/event-stream")));
  gk_redactor_init (&request->redactor);
  request->wrote_id = g_signal_connect (msg, "wrote-body-data", G_CALLBACK (relay_wrote_cb),
                                        request);
  soup_server_message_unpause (msg);
  gk_upstream_call_read (request->call, relay_read_cb, request);
}

static void
send_cb (GkUpstreamCall *call,
         GError         *error,
         gpointer        user_data)
{
  Request *request = user_data;

  if (error != NULL)
    {
      request_network_error (request, error);
      return;
    }
  request->status = gk_upstream_call_get_status (call);

  if (request->stream && SOUP_STATUS_IS_SUCCESSFUL (request->status))
    {
      request_start_relay (request);
      return;
    }

  request->buffer = g_byte_array_new ();
  request->buffer_limit = SOUP_STATUS_IS_SUCCESSFUL (request->status) ? GK_GATEWAY_ANSWER_LIMIT
                                                                      : ERROR_BODY_LIMIT;
  gk_upstream_call_read (request->call, read_all_cb, request);
}

/* The allow-listed headers (gk-request.c), as checked in proxy(). */
static void
copy_request_headers (const GkUpstreamRequest *from,
                      GkUpstreamCall          *to)
{
  for (guint i = 0; i < from->names->len; i++)
    gk_upstream_call_add_header (to, g_ptr_array_index (from->names, i),
                                 g_ptr_array_index (from->values, i));
}

/* The answer is under way: libsoup writes from now on and sees a client
 * leaving itself. */
static void
request_unwatch_client (Request *request)
{
  ClientConn *conn = conn_of (request->gateway, request->msg);

  if (conn != NULL && conn->state == CONN_BUSY)
    conn_watch (conn, FALSE);
}

static void
request_client_left (SoupServerMessage *msg)
{
  Request *request = g_object_get_data (G_OBJECT (msg), "gk-gateway-request");

  if (request != NULL)
    g_cancellable_cancel (request->cancellable);
}

static void
request_attempt (Request *request)
{
  GkGateway *self = request->gateway;
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) key = NULL;
  g_autoptr(GBytes) secret = NULL;

  if (request->deadline == 0 && self->request_timeout_s > 0)
    request->deadline = g_get_monotonic_time () + (gint64) self->request_timeout_s * G_USEC_PER_SEC;
  if (request->attempts >= self->max_attempts)
    {
      request_give_up (request);
      return;
    }
  if (request->deadline > 0 && g_get_monotonic_time () >= request->deadline)
    {
      g_autoptr(GError) late = g_error_new_literal (GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_DEADLINE,
                                                    "the request's deadline passed");

      request_set_failure (request, late);
      request_give_up (request);
      return;
    }

  key = gk_pool_select (self->pool, request->model, request->exclude, &error);
  if (key == NULL && g_error_matches (error, GK_POOL_ERROR, GK_POOL_ERROR_BUDGET_SPENT))
    {
      /* Not a passing state: the client is told why, without a retry hint. */
      gateway_log (self, "%s %s -> 503 pool budget spent", request->http_method, request->path);
      if (!request->client_gone)
        gk_gateway_respond_error (request->msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                                  error->message);
      request_finish (request);
      return;
    }
  if (key == NULL)
    {
      if (!g_error_matches (error, GK_POOL_ERROR, GK_POOL_ERROR_NO_ACTIVE_KEYS))
        gateway_log (self, "key selection failed: %s", error->message);
      request_give_up (request);
      return;
    }

  request->attempts++;
  request->key_id = key->id;
  request->attempt_start = g_get_monotonic_time ();

  secret = gk_key_store_reveal (self->key_store, key->id, &error);
  if (secret == NULL
      && (g_error_matches (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_MASTER_KEY_UNAVAILABLE)
          || g_error_matches (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_MASTER_KEY_CHANGED)))
    {
      /* No key can be decrypted: one line and one signal, not one per key. */
      if (!self->master_key_down)
        {
          self->master_key_down = TRUE;
          gateway_log (self, "%s", error->message);
          g_signal_emit (self, signals[SIGNAL_MASTER_KEY_STATE], 0, FALSE, error->message);
        }
      request_unavailable (request, error->message, NULL);
      return;
    }
  if (secret != NULL && self->no_key_answers > 0)
    {
      gateway_log (self, "a key serves again, after %" G_GUINT64_FORMAT " requests answered"
                   " 503 no active keys", self->no_key_answers);
      self->no_key_answers = 0;
    }
  if (secret != NULL && self->master_key_down)
    {
      self->master_key_down = FALSE;
      gateway_log (self, "The master key can be read again");
      g_signal_emit (self, signals[SIGNAL_MASTER_KEY_STATE], 0, TRUE, NULL);
    }
  if (secret == NULL)
    {
      /* This row does not decrypt: skip it, it cannot serve anyone. */
      gateway_log (self, "key %" G_GINT64_FORMAT " cannot be used: %s", key->id, error->message);
      g_array_append_val (request->exclude, request->key_id);
      request->attempts--;
      request_attempt (request);
      return;
    }

  request->call = gk_upstream_call_new (self->upstream_client, request->upstream.method,
                                        request->upstream.path_and_query);
  copy_request_headers (&request->upstream, request->call);
  /* The secure bytes are NUL-terminated. The request head holding the key
   * is wiped when the call is freed, at the end of this attempt. */
  gk_upstream_call_add_header (request->call, "x-goog-api-key", g_bytes_get_data (secret, NULL));
  if (request->body != NULL && g_bytes_get_size (request->body) > 0)
    gk_upstream_call_set_body (request->call,
                               request->upstream.content_type
                                 ? request->upstream.content_type : "application/json",
                               request->body);

  gk_upstream_call_set_deadline (request->call, request->deadline);
  gk_upstream_call_send (request->call, request->cancellable, send_cb, request);
}

/* The model named by a Gemini path ("…/models/{model}:method") or by an
 * OpenAI body's "model"; whether the client asked for a stream (the
 * streamGenerateContent method, or the body's "stream") goes to @stream. */
char *
gk_gateway_model_from_request (const char *path,
                               GBytes     *body,
                               gboolean    openai,
                               gboolean   *stream)
{
  const char *models = strstr (path, "/models/");

  *stream = FALSE;
  if (openai)
    {
      g_autoptr(JsonParser) parser = json_parser_new ();
      gsize len = 0;
      const char *data = body ? g_bytes_get_data (body, &len) : NULL;
      JsonNode *node;
      JsonObject *root;
      JsonNode *member;

      if (data == NULL || len == 0 || !json_parser_load_from_data (parser, data, len, NULL))
        return NULL;
      /* No root when the body is only white space or a comment. */
      node = json_parser_get_root (parser);
      if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
        return NULL;
      root = json_node_get_object (node);
      /* The client's body: an object or array where a value belongs is
       * ignored here (json-glib's *_with_default getters warn about it). */
      member = json_object_get_member (root, "stream");
      *stream = member != NULL && JSON_NODE_HOLDS_VALUE (member) && json_node_get_boolean (member);
      member = json_object_get_member (root, "model");
      return member != NULL && JSON_NODE_HOLDS_VALUE (member)
        ? g_strdup (json_node_get_string (member)) : NULL;
    }

  if (models != NULL)
    {
      const char *name = models + strlen ("/models/");
      const char *colon = strchr (name, ':');
      const char *method = colon ? colon + 1 : "";

      *stream = g_str_equal (method, "streamGenerateContent");
      return colon ? g_strndup (name, colon - name) : g_strdup (name);
    }
  return NULL;
}

static void
request_aborted_cb (SoupServer        *server,
                    SoupServerMessage *msg,
                    GkGateway         *self)
{
  Request *request = g_object_get_data (G_OBJECT (msg), "gk-gateway-request");

  if (request != NULL)
    {
      request->client_gone = TRUE;
      g_cancellable_cancel (request->cancellable);
    }
}

static void
client_disconnected_cb (SoupServerMessage *msg,
                        GkGateway         *self)
{
  request_aborted_cb (NULL, msg, self);
}

static void
request_detach_cb (gpointer data)
{
  /* The Request frees itself; this only marks the message as unowned. */
}

/* Refuses a request the upstream must not see, in Google's error shape. */
static void
respond_request_error (GkGateway         *self,
                       SoupServerMessage *msg,
                       const char        *path,
                       const GError      *error)
{
  const char *method = soup_server_message_get_method (msg);
  guint code = SOUP_STATUS_BAD_REQUEST;

  if (g_error_matches (error, GK_REQUEST_ERROR, GK_REQUEST_ERROR_METHOD))
    {
      code = SOUP_STATUS_METHOD_NOT_ALLOWED;
      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                    "Allow", GK_REQUEST_ALLOWED_METHODS);
    }
  else if (g_error_matches (error, GK_REQUEST_ERROR, GK_REQUEST_ERROR_ENCODING))
    code = SOUP_STATUS_UNSUPPORTED_MEDIA_TYPE;
  gateway_log (self, "%s %s -> %u refused: %s", method, path, code, error->message);
  gk_gateway_respond_error (msg, code, "INVALID_ARGUMENT", error->message);
}

/* Builds what goes upstream from the client's request (gk-request.c). */
static gboolean
build_upstream_request (SoupServerMessage  *msg,
                        const char         *path,
                        GkUpstreamRequest  *out,
                        GError            **error)
{
  SoupMessageHeadersIter iter;
  const char *name, *value;
  g_autoptr(GPtrArray) names = g_ptr_array_new ();
  g_autoptr(GPtrArray) values = g_ptr_array_new ();

  soup_message_headers_iter_init (&iter, soup_server_message_get_request_headers (msg));
  while (soup_message_headers_iter_next (&iter, &name, &value))
    {
      g_ptr_array_add (names, (gpointer) name);
      g_ptr_array_add (values, (gpointer) value);
    }
  return gk_upstream_request_build (out, soup_server_message_get_method (msg), path,
                                    g_uri_get_query (soup_server_message_get_uri (msg)),
                                    names->len, (const char * const *) names->pdata,
                                    (const char * const *) values->pdata, error);
}

static void
proxy (GkGateway         *self,
       SoupServerMessage *msg,
       const char        *path,
       ClientState       *state)
{
  GUri *client_uri = soup_server_message_get_uri (msg);
  const char *client_query = g_uri_get_query (client_uri);
  g_autoptr(GError) error = NULL;
  GkUpstreamRequest upstream;
  Request *request;

  if (!build_upstream_request (msg, path, &upstream, &error))
    {
      respond_request_error (self, msg, path, error);
      return;
    }

  /* A request whose usage cannot be recorded would not be charged. */
  if (self->disk_full)
    {
      gateway_log (self, "%s %s -> 503 disk full", soup_server_message_get_method (msg), path);
      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                    "Retry-After", RETRY_AFTER_DISK_FULL);
      gk_gateway_respond_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                                "The disk is full: the gateway cannot record usage, so it "
                                "forwards no request until space is freed.");
      gk_upstream_request_clear (&upstream);
      return;
    }

  if (self->in_flight >= self->max_in_flight)
    {
      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                    "Retry-After", RETRY_AFTER_BUSY);
      gk_gateway_respond_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                                "The gateway is busy; try again shortly.");
      gk_upstream_request_clear (&upstream);
      return;
    }

  request = g_new0 (Request, 1);
  self->in_flight++;
  request->gateway = self;
  request->received = g_get_monotonic_time ();
  request->msg = g_object_ref (msg);
  request->user_id = g_strdup (state->user_id);
  request->http_method = g_strdup (soup_server_message_get_method (msg));
  request->path = g_strdup (path);
  request->upstream = upstream;
  if (state->body != NULL && state->body->len > 0)
    request->body = g_byte_array_free_to_bytes (g_steal_pointer (&state->body));
  request->model = gk_gateway_model_from_request (path, request->body,
                                                  strstr (path, "/openai/") != NULL,
                                                  &request->stream);
  if (request->model == NULL)
    request->model = g_strdup ("");
  request->sse = request->stream && (strstr (path, "/openai/") != NULL ||
                                     (client_query != NULL &&
                                      strstr (client_query, "alt=sse") != NULL));
  request->exclude = g_array_new (FALSE, FALSE, sizeof (gint64));
  request->cancellable = g_cancellable_new ();
  g_queue_push_tail (&self->requests, request);
  request->link = self->requests.tail;
  g_object_set_data_full (G_OBJECT (msg), "gk-gateway-request", request, request_detach_cb);
  /* A paused message whose client leaves is not always reported through
   * SoupServer::request-aborted. */
  g_signal_connect (msg, "disconnected", G_CALLBACK (client_disconnected_cb), self);

  soup_server_message_pause (msg);
  request_attempt (request);
}

static void
server_handler_cb (SoupServer        *server,
                   SoupServerMessage *msg,
                   const char        *path,
                   GHashTable        *query,
                   gpointer           user_data)
{
  GkGateway *self = user_data;
  ClientState *state = g_object_get_data (G_OBJECT (msg), client_state_key);
  gboolean is_admin;

  if (state == NULL || state->refused)
    return;
  if (state->too_large)
    {
      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                    "Connection", "close");
      gk_gateway_respond_error (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "INVALID_ARGUMENT",
                                "The request body is larger than the gateway accepts.");
      return;
    }
  /* libsoup reads a chunk size that is not a number ("zz") as 0, the end
   * of the body, and what follows as trailers: a chunked body that ends
   * before its first chunk is such a one (no client sends it otherwise). */
  if (soup_message_headers_get_encoding (soup_server_message_get_request_headers (msg)) ==
        SOUP_ENCODING_CHUNKED && (state->body == NULL || state->body->len == 0))
    {
      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                    "Connection", "close");
      gk_gateway_respond_error (msg, SOUP_STATUS_BAD_REQUEST, "INVALID_ARGUMENT",
                                "The chunked request body is not valid.");
      return;
    }

  is_admin = g_str_equal (path, ADMIN_PREFIX) || g_str_has_prefix (path, ADMIN_PREFIX "/");
  /* The bodies the gateway parses itself: json-glib recurses once per
   * level, so a deep one would overflow the stack. */
  if ((is_admin || strstr (path, "/openai/") != NULL) && state->body != NULL &&
      !gk_json_depth_ok ((const char *) state->body->data, state->body->len,
                         GK_REQUEST_MAX_JSON_DEPTH))
    {
      gk_gateway_respond_error (msg, SOUP_STATUS_BAD_REQUEST, "INVALID_ARGUMENT",
                                "The JSON body nests too deeply.");
      return;
    }

  if (is_admin)
    {
      if (g_strcmp0 (state->user_id, ADMIN_TOKEN_NAME) != 0)
        {
          gk_gateway_respond_error (msg, SOUP_STATUS_FORBIDDEN, "PERMISSION_DENIED",
                                    "The admin API needs the token named \"admin\".");
          return;
        }
      /* The admin API acts for its token, in the audit log. */
      gk_audit_push_actor (state->user_id);
      gk_gateway_admin_handle (self->key_store, self->pool, msg, path + strlen (ADMIN_PREFIX),
                               query, state->body);
      gk_audit_pop_actor ();
      return;
    }

  if (g_str_has_prefix (path, "/v1beta/") || g_str_has_prefix (path, "/v1/") ||
      g_str_has_prefix (path, "/upload/v1beta/"))
    {
      proxy (self, msg, path, state);
      return;
    }

  gk_gateway_respond_error (msg, SOUP_STATUS_NOT_FOUND, "NOT_FOUND",
                            "Not found: the gateway serves /v1beta/, /v1/ and /admin/gemini-keys/.");
}

/* ---- The gateway thread ------------------------------------------------- */

/* Listens on @address:@port with a backlog of LISTEN_BACKLOG: libsoup's
 * own listeners keep GSocket's default of 10, and a burst of clients
 * beyond that waits for SYN retries instead of being served (or refused
 * with 503 past the in-flight cap). */
static gboolean
listen_socket (SoupServer    *server,
               GInetAddress  *address,
               guint          port,
               guint         *bound_port,
               GError       **error)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) socket_address = NULL;
  g_autoptr(GSocketAddress) local = NULL;

  socket = g_socket_new (g_inet_address_get_family (address), G_SOCKET_TYPE_STREAM,
                         G_SOCKET_PROTOCOL_TCP, error);
  if (socket == NULL)
    return FALSE;
  socket_address = g_inet_socket_address_new (address, (guint16) port);
  if (!g_socket_bind (socket, socket_address, TRUE, error))
    return FALSE;
  g_socket_set_listen_backlog (socket, LISTEN_BACKLOG);
  if (!g_socket_listen (socket, error))
    return FALSE;
  local = g_socket_get_local_address (socket, error);
  if (local == NULL)
    return FALSE;
  if (bound_port != NULL)
    *bound_port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
  return soup_server_listen_socket (server, socket, 0, error);
}

static gboolean
listen_loopback (GkGateway  *self,
                 SoupServer *server,
                 GError    **error)
{
  const char *address = self->start_address;
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GInetAddress) inet = NULL;
  guint port = 0;

  if (address == NULL || g_ascii_strcasecmp (address, "localhost") == 0)
    {
      g_autoptr(GInetAddress) ipv4 = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
      g_autoptr(GInetAddress) ipv6 = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV6);

      if (!listen_socket (server, ipv4, self->start_port, &port, &local_error))
        {
          g_set_error (error, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_ADDRESS,
                       "Cannot listen on port %u: %s", self->start_port, local_error->message);
          return FALSE;
        }
      /* ::1 too when the machine has IPv6, on the same port; without it,
       * IPv4 alone. */
      if (!listen_socket (server, ipv6, port, NULL, &local_error))
        g_debug ("Not listening on [::1]:%u: %s", port, local_error->message);
      return TRUE;
    }

  inet = g_inet_address_new_from_string (address);
  if (inet == NULL || !listen_socket (server, inet, self->start_port, NULL, &local_error))
    {
      g_set_error (error, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_ADDRESS,
                   "Cannot listen on %s port %u: %s", address, self->start_port,
                   local_error ? local_error->message : "not an address");
      return FALSE;
    }
  return TRUE;
}

static void
usage_rows_start (GkGateway *self)
{
  self->to_write = g_ptr_array_new ();
  self->held = g_ptr_array_new_with_free_func ((GDestroyNotify) track_job_free);
  self->disk_full = FALSE;
  self->write_source = gk_ready_source_new (write_rows_cb, self);
  g_source_attach (self->write_source, self->context);
}

static void
usage_rows_stop (GkGateway *self)
{
  if (self->write_source == NULL)
    return;
  /* Rows still queued are written (the requests they let go on may queue
   * more); what still finds no room is lost with the process, and said
   * so. */
  while (self->to_write->len > 0)
    write_rows_cb (self);
  if (self->held->len > 0 && !write_held (self, self->held))
    g_warning ("The disk is still full: %u usage rows kept in memory are lost", self->held->len);
  g_source_destroy (self->write_source);
  g_clear_pointer (&self->write_source, g_source_unref);
  g_clear_pointer (&self->to_write, g_ptr_array_unref);
  g_clear_pointer (&self->held, g_ptr_array_unref);
}

static gpointer
gateway_thread (gpointer data)
{
  GkGateway *self = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) upstream_error = NULL;
  GSList *uris;

  g_main_context_push_thread_default (self->context);

  self->connections = g_hash_table_new_full (NULL, NULL, NULL, conn_destroy);
  self->server = soup_server_new ("server-header", "gemini-keys-gateway", NULL);
  soup_server_add_early_handler (self->server, NULL, early_handler_cb, self, NULL);
  soup_server_add_handler (self->server, NULL, server_handler_cb, self, NULL);
  g_signal_connect (self->server, "request-aborted", G_CALLBACK (request_aborted_cb), self);
  g_signal_connect (self->server, "request-started", G_CALLBACK (request_started_cb), self);
  g_signal_connect (self->server, "request-finished", G_CALLBACK (request_finished_cb), self);

  self->upstream_client = gk_upstream_new (self->upstream, self->timeout_s,
                                           "gemini-keys-gateway/" PACKAGE_VERSION, &upstream_error);
  if (self->upstream_client == NULL)
    g_set_error (&error, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_UPSTREAM, "Invalid upstream “%s”: %s",
                 self->upstream, upstream_error->message);
  else if (listen_loopback (self, self->server, &error))
    {
      uris = soup_server_get_uris (self->server);
      self->port = uris ? g_uri_get_port (uris->data) : 0;
      g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);

      self->allowed_hosts = g_new0 (char *, 4);
      self->allowed_hosts[0] = g_strdup_printf ("127.0.0.1:%u", self->port);
      self->allowed_hosts[1] = g_strdup_printf ("localhost:%u", self->port);
      self->allowed_hosts[2] = g_strdup_printf ("[::1]:%u", self->port);

      self->loop = g_main_loop_new (self->context, FALSE);
      usage_rows_start (self);
    }

  g_mutex_lock (&self->start_mutex);
  self->start_error = g_steal_pointer (&error);
  self->start_done = TRUE;
  g_cond_signal (&self->start_cond);
  g_mutex_unlock (&self->start_mutex);

  if (self->loop != NULL)
    {
      gint64 deadline;

      g_main_loop_run (self->loop);

      /* Stop: refuse new clients, cancel what is in flight and let the
       * requests unwind (they write their usage rows) before freeing. */
      soup_server_disconnect (self->server);
      {
        g_autoptr(GPtrArray) cancellables = g_ptr_array_new_with_free_func (g_object_unref);

        for (GList *l = self->requests.head; l != NULL; l = l->next)
          g_ptr_array_add (cancellables, g_object_ref (((Request *) l->data)->cancellable));
        for (guint i = 0; i < cancellables->len; i++)
          g_cancellable_cancel (g_ptr_array_index (cancellables, i));
      }
      deadline = g_get_monotonic_time () + STOP_DRAIN_TIMEOUT_US;
      while (self->in_flight > 0 && g_get_monotonic_time () < deadline)
        g_main_context_iteration (self->context, FALSE);
      /* Rows still queued are written before the database is let go. */
      usage_rows_stop (self);
      while (g_main_context_iteration (self->context, FALSE))
        ;
    }

  g_clear_pointer (&self->upstream_client, gk_upstream_free);
  g_clear_pointer (&self->connections, g_hash_table_unref);
  g_clear_object (&self->server);
  g_clear_pointer (&self->loop, g_main_loop_unref);
  g_clear_pointer (&self->allowed_hosts, g_strfreev);
  while (g_main_context_iteration (self->context, FALSE))
    ;
  g_main_context_pop_thread_default (self->context);
  return NULL;
}

/* ---- GObject ------------------------------------------------------------ */

static void
gk_gateway_dispose (GObject *object)
{
  GkGateway *self = GK_GATEWAY (object);

  gk_gateway_stop (self);
  g_clear_object (&self->key_store);
  g_clear_object (&self->pool);
  g_clear_object (&self->db);

  G_OBJECT_CLASS (gk_gateway_parent_class)->dispose (object);
}

static void
gk_gateway_finalize (GObject *object)
{
  GkGateway *self = GK_GATEWAY (object);

  g_free (self->upstream);
  g_free (self->start_address);
  g_mutex_clear (&self->start_mutex);
  g_cond_clear (&self->start_cond);

  G_OBJECT_CLASS (gk_gateway_parent_class)->finalize (object);
}

static void
gk_gateway_class_init (GkGatewayClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = gk_gateway_dispose;
  object_class->finalize = gk_gateway_finalize;

  /**
   * GkGateway::log:
   * @line: one line about a request, keys redacted
   *
   * Emitted in the gateway's thread.
   */
  signals[SIGNAL_LOG] = g_signal_new ("log", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                      NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);

  /**
   * GkGateway::master-key-state:
   * @available: whether the keys can be decrypted
   * @message: (nullable): why not
   *
   * Emitted in the gateway's thread when the master key becomes out of
   * reach (another process rotated it and the new one cannot be read) and
   * when it is back. Requests meanwhile get 503 with @message.
   */
  signals[SIGNAL_MASTER_KEY_STATE] = g_signal_new ("master-key-state", G_TYPE_FROM_CLASS (klass),
                                                   G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                                                   G_TYPE_NONE, 2, G_TYPE_BOOLEAN, G_TYPE_STRING);
}

static void
gk_gateway_init (GkGateway *self)
{
  g_mutex_init (&self->start_mutex);
  g_cond_init (&self->start_cond);
  self->body_limit = GK_GATEWAY_DEFAULT_BODY_LIMIT;
  self->max_in_flight = GK_GATEWAY_DEFAULT_MAX_IN_FLIGHT;
  self->max_attempts = GK_GATEWAY_DEFAULT_MAX_ATTEMPTS;
  self->timeout_s = GK_GATEWAY_DEFAULT_UPSTREAM_TIMEOUT;
  self->request_timeout_s = GK_GATEWAY_DEFAULT_REQUEST_TIMEOUT;
  self->header_timeout_ms = GK_GATEWAY_DEFAULT_HEADER_TIMEOUT * 1000;
  self->idle_timeout_ms = GK_GATEWAY_DEFAULT_IDLE_TIMEOUT * 1000;
}

/* ---- Public API --------------------------------------------------------- */

const char *
gk_gateway_default_upstream (void)
{
  const char *env = g_getenv ("GEMINI_KEYS_UPSTREAM");

  return env != NULL && *env != '\0' ? env : GOOGLE_UPSTREAM;
}

GkGateway *
gk_gateway_new (GkKeyStore *key_store,
                GkPool     *pool)
{
  GkGateway *self;

  g_return_val_if_fail (GK_IS_KEY_STORE (key_store), NULL);
  g_return_val_if_fail (GK_IS_POOL (pool), NULL);

  self = g_object_new (GK_TYPE_GATEWAY, NULL);
  self->key_store = g_object_ref (key_store);
  self->pool = g_object_ref (pool);
  self->db = g_object_ref (gk_pool_get_database (pool));
  return self;
}

void
gk_gateway_set_upstream (GkGateway  *self,
                         const char *base_url)
{
  g_return_if_fail (GK_IS_GATEWAY (self));

  g_free (self->upstream);
  self->upstream = g_strdup (base_url);
}

void
gk_gateway_set_body_limit (GkGateway *self,
                           gsize      bytes)
{
  g_return_if_fail (GK_IS_GATEWAY (self));
  self->body_limit = bytes;
}

void
gk_gateway_set_max_in_flight (GkGateway *self,
                              guint      requests)
{
  g_return_if_fail (GK_IS_GATEWAY (self));
  self->max_in_flight = MAX (requests, 1);
}

void
gk_gateway_set_upstream_timeout (GkGateway *self,
                                 guint      seconds)
{
  g_return_if_fail (GK_IS_GATEWAY (self));
  self->timeout_s = seconds;
}

void
gk_gateway_set_request_timeout (GkGateway *self,
                                guint      seconds)
{
  g_return_if_fail (GK_IS_GATEWAY (self));
  self->request_timeout_s = seconds;
}

void
gk_gateway_set_client_timeouts (GkGateway *self,
                                guint      header_ms,
                                guint      idle_ms)
{
  g_return_if_fail (GK_IS_GATEWAY (self));
  self->header_timeout_ms = MAX (header_ms, 1);
  self->idle_timeout_ms = MAX (idle_ms, 1);
}

void
gk_gateway_set_max_attempts (GkGateway *self,
                             guint      attempts)
{
  g_return_if_fail (GK_IS_GATEWAY (self));
  self->max_attempts = MAX (attempts, 1);
}

static gboolean
is_loopback (const char *address)
{
  g_autoptr(GInetAddress) inet = NULL;

  if (address == NULL || g_ascii_strcasecmp (address, "localhost") == 0)
    return TRUE;
  inet = g_inet_address_new_from_string (address);
  return inet != NULL && g_inet_address_get_is_loopback (inet);
}

gboolean
gk_gateway_start (GkGateway   *self,
                  const char  *address,
                  guint        port,
                  GError     **error)
{
  g_autofree char *base = NULL;

  g_return_val_if_fail (GK_IS_GATEWAY (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (self->thread != NULL)
    return TRUE;
  if (!is_loopback (address))
    {
      g_set_error (error, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_ADDRESS,
                   "The gateway listens on loopback addresses only, not on “%s”.", address);
      return FALSE;
    }
  if (port > G_MAXUINT16)
    {
      g_set_error (error, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_ADDRESS, "Invalid port %u.", port);
      return FALSE;
    }

  base = g_strdup (self->upstream ? self->upstream : gk_gateway_default_upstream ());
  while (g_str_has_suffix (base, "/"))
    base[strlen (base) - 1] = '\0';
  g_free (self->upstream);
  self->upstream = g_steal_pointer (&base);

  g_free (self->start_address);
  self->start_address = g_strdup (address);
  self->start_port = port;
  self->start_done = FALSE;
  g_clear_error (&self->start_error);
  self->context = g_main_context_new ();
  self->thread = g_thread_new ("gk-gateway", gateway_thread, self);

  g_mutex_lock (&self->start_mutex);
  while (!self->start_done)
    g_cond_wait (&self->start_cond, &self->start_mutex);
  g_mutex_unlock (&self->start_mutex);

  if (self->start_error != NULL)
    {
      g_thread_join (g_steal_pointer (&self->thread));
      g_clear_pointer (&self->context, g_main_context_unref);
      g_propagate_error (error, g_steal_pointer (&self->start_error));
      return FALSE;
    }
  return TRUE;
}

static gboolean
quit_loop_cb (gpointer data)
{
  GkGateway *self = data;

  g_main_loop_quit (self->loop);
  return G_SOURCE_REMOVE;
}

void
gk_gateway_stop (GkGateway *self)
{
  g_return_if_fail (GK_IS_GATEWAY (self));

  if (self->thread == NULL)
    return;
  g_main_context_invoke (self->context, quit_loop_cb, self);
  g_thread_join (g_steal_pointer (&self->thread));
  g_clear_pointer (&self->context, g_main_context_unref);
  self->port = 0;
}

gboolean
gk_gateway_is_running (GkGateway *self)
{
  g_return_val_if_fail (GK_IS_GATEWAY (self), FALSE);
  return self->thread != NULL;
}

guint
gk_gateway_get_port (GkGateway *self)
{
  g_return_val_if_fail (GK_IS_GATEWAY (self), 0);
  return self->port;
}

guint
gk_gateway_get_usage_count (GkGateway *self)
{
  g_return_val_if_fail (GK_IS_GATEWAY (self), 0);
  return (guint) g_atomic_int_get (&self->usage_count);
}

/* ---- Key test ----------------------------------------------------------- */

static void
test_key_thread (GTask        *task,
                 gpointer      source_object,
                 gpointer      task_data,
                 GCancellable *cancellable)
{
  GkKeyStore *key_store = source_object;
  gint64 key_id = *(gint64 *) task_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) key = NULL;
  g_autoptr(GBytes) secret = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autofree char *url = NULL;
  g_autofree char *header = NULL;
  GkOutcome outcome = { 0 };
  const char *data;
  gsize len;
  guint status;

  key = gk_key_store_get (key_store, key_id, &error);
  if (key == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  secret = gk_key_store_reveal (key_store, key_id, &error);
  if (secret == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  url = g_strconcat (gk_gateway_default_upstream (), "/v1beta/models?pageSize=1", NULL);
  /* The secure bytes are NUL-terminated; the line is wiped after use. */
  header = g_strconcat ("x-goog-api-key: ", (const char *) g_bytes_get_data (secret, NULL), NULL);
  g_clear_pointer (&secret, g_bytes_unref);
  if (!gk_upstream_get_sync (url, header, TEST_KEY_TIMEOUT_S, cancellable, &status, &body, &error))
    {
      explicit_bzero (header, strlen (header));
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_task_return_error (task, g_steal_pointer (&error));
      else
        g_task_return_new_error (task, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_UPSTREAM, "%s (%s)",
                                 gk_gateway_upstream_error_text (error), error->message);
      return;
    }
  explicit_bzero (header, strlen (header));

  data = g_bytes_get_data (body, &len);
  gk_outcome_classify (status, data, len, &outcome);

  switch (outcome.kind)
    {
    case GK_OUTCOME_SUCCESS:
      if (key->status == GK_KEY_STATUS_INVALID &&
          !gk_key_store_set_status (key_store, key_id, GK_KEY_STATUS_ACTIVE, NULL, &error))
        g_task_return_error (task, g_steal_pointer (&error));
      else
        g_task_return_boolean (task, TRUE);
      break;

    case GK_OUTCOME_INVALID_KEY:
      if (!gk_key_store_set_status (key_store, key_id, GK_KEY_STATUS_INVALID,
                                    outcome.reason ? outcome.reason : "API_KEY_INVALID", &error))
        g_task_return_error (task, g_steal_pointer (&error));
      else
        g_task_return_new_error (task, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_INVALID_KEY,
                                 "The key was rejected: %s",
                                 outcome.message ? outcome.message : "API key not valid");
      break;

    case GK_OUTCOME_RATE_LIMITED_MINUTE:
    case GK_OUTCOME_RATE_LIMITED_DAY:
      g_task_return_new_error (task, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_FAILED,
                               "The key works but is rate-limited right now (HTTP %u).", status);
      break;

    case GK_OUTCOME_TRANSIENT:
      g_task_return_new_error (task, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_UPSTREAM,
                               "The upstream is unavailable (HTTP %u); try again later.", status);
      break;

    case GK_OUTCOME_ERROR:
    default:
      g_task_return_new_error (task, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_FAILED,
                               "The upstream refused the request (HTTP %u): %s", status,
                               outcome.message ? outcome.message : "no message");
      break;
    }
  gk_outcome_clear (&outcome);
}

void
gk_gateway_test_key_async (GkKeyStore          *key_store,
                           gint64               key_id,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (GK_IS_KEY_STORE (key_store));

  task = g_task_new (key_store, cancellable, callback, user_data);
  g_task_set_source_tag (task, gk_gateway_test_key_async);
  g_task_set_task_data (task, g_memdup2 (&key_id, sizeof key_id), g_free);
  g_task_run_in_thread (task, test_key_thread);
}

gboolean
gk_gateway_test_key_finish (GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (G_IS_TASK (result), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == gk_gateway_test_key_async, FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}
