/* gk-gateway.c: the local gateway (libmicrohttpd server + upstream client).
 *
 * A client request goes through these steps, all in the gateway's own
 * thread and main context, which drives libmicrohttpd (no thread of its
 * own: its epoll descriptor and timeout are one GSource):
 *
 *  1. request_line_cb: the request target, read as libsoup's server did.
 *  2. exchange_check_head (the head is complete, before the body): strict
 *     framing, Host allow-list, client token, Content-Length limit.
 *     Refused requests are answered without reading their body.
 *  3. exchange_take_body: the body, counted against the limit as it comes
 *     (a chunked body larger than the limit is dropped, never held).
 *  4. exchange_route: the admin API, the proxy or 404.
 *  5. The proxy (Request): pick a key, send upstream with that key in
 *     x-goog-api-key only, and either relay the answer (streams chunk by
 *     chunk) or, on 429 / invalid key / 5xx / network errors, record the
 *     failed attempt and try the next key. The client's connection is
 *     suspended meanwhile and watched for the client leaving.
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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib-unix.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <microhttpd.h>

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
#define STORE_DOWN_MESSAGE     "The gateway's database cannot be reached, so it cannot record " \
                               "usage; try again shortly."
#define TOKEN_UNCHECKED_MESSAGE "The gateway's database cannot be reached, so it cannot check " \
                                "the client token; try again shortly."
/* How often a request that has no key to choose from (the database was out
 * of reach before any snapshot) asks again, until its deadline. */
#define STORE_WAIT_MS          250
#define STOP_DRAIN_TIMEOUT_US  (2 * G_USEC_PER_SEC)
#define STOPPING_MESSAGE       "The gateway is stopping."
/* How long a stopping gateway tries to write the usage rows it kept. */
#define STOP_WRITE_TIMEOUT_US  (30 * G_USEC_PER_SEC)
#define LISTEN_BACKLOG         1024
#define TEST_KEY_TIMEOUT_S     30
/* An answer buffered whole above this size gives its memory back to the
 * system when its request ends. */
#define BIG_ANSWER             (1024 * 1024)
/* A stream's bytes not yet written to its client above which the
 * upstream is not read (back-pressure: the upstream transfer pauses rather
 * than the gateway buffering a slow client's answer). */
#define RELAY_BACKLOG          (512 * 1024)
/* The most libmicrohttpd asks for at once for a streamed answer. */
#define STREAM_BLOCK_SIZE      (32 * 1024)
#define SERVER_NAME            "gemini-keys-gateway"
/* How often connections are checked for a late head. */
#define HEAD_SWEEP_MS          250
/* Freed memory glibc keeps rather than giving it back to the system at
 * once (its default, 128 KiB, gave back and faulted in again some 8 pages
 * per request, a third of the gateway's CPU time). Big answers still give
 * theirs back (malloc_trim). */
#define MALLOC_TRIM_THRESHOLD  (16 * 1024 * 1024)
/* Client connections open at once; more wait in the listen backlog. */
#define MAX_CONNECTIONS        16384
/* Memory of a client connection (libmicrohttpd's pool, for a request head
 * and then the answer's): room for the largest upstream head relayed, and
 * not much more: libmicrohttpd clears the whole pool after every request
 * and half of it once the request is read (memset of 1.5 times this size,
 * 7% of the gateway's time per request at 96 KiB). */
#define CONNECTION_MEMORY      (GK_UPSTREAM_HEAD_LIMIT + 8 * 1024)
/* libmicrohttpd runs in one dispatch while it has work at once. */
#define DAEMON_RUNS_PER_DISPATCH 4
/* How old a data_version read the pool may rely on while the gateway
 * runs: each request's token check reads it, and the key selection and
 * usage row of that request (and of those in flight beside it) take that
 * read rather than another read transaction of their own. */
#define POOL_CHANGE_CHECK_AGE_US (10 * 1000)
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
  guint         outage_rows;
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
  struct _DaemonSource *daemons[2]; /* IPv4 and IPv6 loopback, or one address */
  int           hangup_epoll;       /* clients watched for leaving */
  GSource      *hangup_source;
  GSource      *sweep_source;       /* late heads */
  GSource      *watch_source;       /* other gateways' changes, on a server */
  GkUpstream   *upstream_client;
  /* Usage rows (TrackJob *) of requests that ended since the last write,
   * in order, and rows the disk had no room for (see write_rows_cb). */
  GPtrArray    *to_write;
  GPtrArray    *held;
  GSource      *write_source;
  gboolean      disk_full;      /* rows are held: no request is forwarded */
  /* The database server is out of reach: rows are held, requests go on
   * (served from the pool's last snapshot) while the held rows and those
   * of the requests in flight stay within outage_rows. */
  gboolean      store_down;
  gint          usage_count;    /* atomic, see gk_gateway_get_usage_count() */
  GQueue        requests;     /* Request *, cancelled at stop */
  gboolean      stopping;     /* new requests are refused */
  GQueue        connections;  /* ClientConn * */
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

typedef struct _Request Request;
typedef struct _DaemonSource DaemonSource;

/* A client connection (libmicrohttpd's socket context): the deadline of
 * the head it is reading, which libmicrohttpd does not have (its timeout
 * restarts with every byte, so a head trickled a byte at a time would
 * never end). */
typedef struct
{
  GList               link;          /* in gateway->connections */
  int                 fd;
  gint64              head_deadline; /* monotonic µs; -1 while a request is served */
  struct _GkExchange *exchange;      /* the request being read or served, or NULL */
  gboolean            peer_closed;   /* the client shut its side down (EPOLLRDHUP) */
} ClientConn;

/* One client request and the answer made to it (libmicrohttpd's request
 * context), from its request line to the end of its answer. */
struct _GkExchange
{
  GkGateway             *gateway;
  DaemonSource          *source;
  struct MHD_Connection *connection;
  ClientConn            *conn;
  int                    fd;
  GUri                  *uri;         /* the request target; NULL when not a path */
  const char            *method;
  char                  *path;        /* decoded; NULL when it does not decode */
  const char            *query;       /* encoded, of @uri; NULL when none */
  SoupMessageHeaders    *request_headers;
  char                  *user_id;     /* the client token's name */
  GByteArray            *body;
  gboolean               head_checked;
  gboolean               suspended;
  gboolean               watched;     /* in gateway->hangup_epoll */
  gboolean               abandoned;   /* no answer: close the connection */
  gboolean               queued;
  Request               *request;     /* the proxy at work for it */

  /* The answer: a status, headers and a whole body, or a stream. */
  guint                  status;
  SoupMessageHeaders    *response_headers;
  GBytes                *response_body;
  gboolean               close;       /* the connection is not reused */
  gboolean               streaming;
  GQueue                 out;         /* GBytes * not yet handed to libmicrohttpd */
  gsize                  out_len;
  gsize                  out_offset;  /* into the head of @out */
  gboolean               out_end;
  gboolean               out_abort;
  gboolean               reader_waiting;
};

/* libmicrohttpd (one daemon per listening address) as one GSource: its
 * epoll descriptor, and its timeout as the source's poll timeout (asked
 * for in each prepare, so moving it costs no wakeup). Without threads of
 * its own, libmicrohttpd serves a resumed connection in its next
 * MHD_run(): a resume (always from this thread) makes the source ready. */
struct _DaemonSource
{
  GSource            source;
  GkGateway         *gateway;
  struct MHD_Daemon *daemon;
  gpointer           tag;
  gboolean           resumed;
};

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

/* Whether @text holds a byte gk_request_escape_for_log() would escape. */
static gboolean
needs_log_escape (const char *text)
{
  for (const guchar *p = (const guchar *) text; *p != '\0'; p++)
    if (*p < 0x20 || *p == 0x7f || *p == '\\')
      return TRUE;
  return FALSE;
}

/* Logs @line: escaped, pool keys redacted. */
static void
gateway_log_line (GkGateway  *self,
                  const char *line)
{
  g_autofree char *escaped = NULL;
  g_autofree char *redacted = NULL;
  const char *text;
  gsize len;

  /* Lines quote the client's path: never a raw control byte in a log. A
   * line (one a request) is copied only when something in it changes. */
  text = line;
  if (needs_log_escape (text))
    text = escaped = gk_request_escape_for_log (text);
  redacted = gk_redact_bytes (text, strlen (text), &len);
  if (redacted != NULL)
    text = redacted;
  if (!g_log_writer_default_would_drop (G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN))
    g_debug ("%s", text);
  g_signal_emit (self, signals[SIGNAL_LOG], 0, text);
}

static void
gateway_log (GkGateway  *self,
             const char *format,
             ...)
{
  g_autofree char *line = NULL;
  va_list args;

  va_start (args, format);
  line = g_strdup_vprintf (format, args);
  va_end (args);
  gateway_log_line (self, line);
}

/* Appends @value in decimal (printf costs more than the rest of a log
 * line, which is written once a request). */
static void
append_int (GString *out,
            gint64   value)
{
  char digits[24];
  guint64 magnitude = value < 0 ? -(guint64) value : (guint64) value;
  int n = 0;

  do
    {
      digits[n++] = (char) ('0' + magnitude % 10);
      magnitude /= 10;
    }
  while (magnitude > 0);
  if (value < 0)
    g_string_append_c (out, '-');
  while (n > 0)
    g_string_append_c (out, digits[--n]);
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

const char *
gk_exchange_get_method (GkExchange *exchange)
{
  return exchange->method;
}

SoupMessageHeaders *
gk_exchange_get_response_headers (GkExchange *exchange)
{
  if (exchange->response_headers == NULL)
    exchange->response_headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_RESPONSE);
  return exchange->response_headers;
}

/* The answer's status and body (taken), of @type. */
static void
exchange_set_answer (GkExchange *exchange,
                     guint       status,
                     const char *type,
                     GBytes     *body)
{
  exchange->status = status;
  soup_message_headers_replace (gk_exchange_get_response_headers (exchange), "Content-Type", type);
  g_clear_pointer (&exchange->response_body, g_bytes_unref);
  exchange->response_body = body;
}

void
gk_gateway_respond_json (GkExchange *exchange,
                         guint       status,
                         char       *body)
{
  exchange_set_answer (exchange, status, "application/json; charset=UTF-8",
                       g_bytes_new_take (body, strlen (body)));
}

void
gk_gateway_respond_error (GkExchange *exchange,
                          guint       code,
                          const char *status,
                          const char *message)
{
  gk_gateway_respond_json (exchange, code, gk_gateway_error_json (code, status, message));
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

/* ---- Client requests ----------------------------------------------------- */

/* The request head as read: every header in order (duplicates too) and
 * what framing takes from them. */
typedef struct
{
  SoupMessageHeaders *headers;
  guint               hosts;
  guint               lengths;
  guint               encodings;
  gboolean            bad_length;
  gboolean            bad_encoding;
} HeadReader;

static enum MHD_Result
read_header_cb (void               *cls,
                enum MHD_ValueKind  kind,
                const char         *name,
                const char         *value)
{
  HeadReader *head = cls;

  value = value != NULL ? value : "";
  soup_message_headers_append (head->headers, name, value);
  if (g_ascii_strcasecmp (name, "Host") == 0)
    head->hosts++;
  else if (g_ascii_strcasecmp (name, "Content-Length") == 0)
    {
      gsize len = strlen (value);

      head->lengths++;
      if (len == 0 || len > MAX_CONTENT_LENGTH_DIGITS || strspn (value, "0123456789") != len)
        head->bad_length = TRUE;
    }
  else if (g_ascii_strcasecmp (name, "Transfer-Encoding") == 0)
    {
      head->encodings++;
      if (g_ascii_strcasecmp (value, "chunked") != 0)
        head->bad_encoding = TRUE;
    }
  return MHD_YES;
}

/* Strict framing: what a proxy in front of the gateway might read
 * differently is refused: exactly one Host, at most one Content-Length of
 * plain digits, Transfer-Encoding only as a lone "chunked" and never with
 * a length. Returns the reason to refuse (and its status), NULL when the
 * framing is sound. */
static const char *
framing_error (const HeadReader *head,
               guint            *code)
{
  *code = MHD_HTTP_BAD_REQUEST;
  if (head->bad_encoding)
    {
      /* An unknown transfer coding: 501, as RFC 9112 asks. */
      *code = MHD_HTTP_NOT_IMPLEMENTED;
      return "Only the chunked Transfer-Encoding is accepted.";
    }
  if (head->bad_length)
    return "The Content-Length header is not a plain number.";
  if (head->hosts != 1)
    return "A request needs exactly one Host header.";
  if (head->lengths > 1)
    return "A request may carry only one Content-Length header.";
  if (head->encodings > 1 || (head->encodings == 1 && head->lengths == 1))
    return "A request may carry either one Transfer-Encoding: chunked or one Content-Length.";
  return NULL;
}

/* Answers from the head alone; when a body follows, the connection is
 * closed after the answer, so the body (100 MB, or a lie) is never read. */
static void
refuse (GkExchange *exchange,
        guint       code,
        const char *status,
        const char *message)
{
  SoupMessageHeaders *headers = exchange->request_headers;
  const char *length = soup_message_headers_get_one (headers, "Content-Length");

  exchange->close = soup_message_headers_get_one (headers, "Transfer-Encoding") != NULL ||
                    (length != NULL && strcmp (length, "0") != 0);
  gk_gateway_respond_error (exchange, code, status, message);
}

static void store_lost (GkGateway    *self,
                        const GError *error);

/* The head is complete: framing, Host, client token and length are
 * checked before any of the body is read. */
static void
exchange_check_head (GkExchange *exchange)
{
  GkGateway *self = exchange->gateway;
  HeadReader head = { 0 };
  g_autoptr(GError) error = NULL;
  g_autofree char *credential = NULL;
  const char *framing, *length;
  guint code;

  exchange->conn->head_deadline = -1;
  head.headers = exchange->request_headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  MHD_get_connection_values (exchange->connection, MHD_HEADER_KIND, read_header_cb, &head);

  framing = framing_error (&head, &code);
  if (framing != NULL)
    {
      /* Where such a body ends is unknown. */
      exchange->close = TRUE;
      gk_gateway_respond_error (exchange, code,
                                code == MHD_HTTP_BAD_REQUEST ? "INVALID_ARGUMENT" : "UNIMPLEMENTED",
                                framing);
      return;
    }
  if (exchange->path == NULL)
    {
      refuse (exchange, MHD_HTTP_BAD_REQUEST, "INVALID_ARGUMENT", "The request target is not valid.");
      return;
    }
  if (!gk_gateway_host_allowed (soup_message_headers_get_one (head.headers, "Host"),
                                (const char * const *) self->allowed_hosts))
    {
      refuse (exchange, MHD_HTTP_FORBIDDEN, "PERMISSION_DENIED",
              "The Host header is not allowed; use 127.0.0.1, localhost or [::1] with the gateway's port.");
      return;
    }

  credential = gk_gateway_credential_from (head.headers, exchange->query);
  if (credential != NULL)
    {
      exchange->user_id = gk_token_verify_full (self->db, credential, &error);
      memset (credential, 0, strlen (credential));
    }
  /* A token not checked since the server's last change (the cache holds
   * those checked since) cannot be checked now: it may well be valid. */
  if (exchange->user_id == NULL
      && g_error_matches (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_UNREACHABLE))
    {
      store_lost (self, error);
      gateway_log (self, "%s %s -> 503 database out of reach (client token not checked)",
                   exchange->method, exchange->path);
      soup_message_headers_replace (gk_exchange_get_response_headers (exchange),
                                    "Retry-After", RETRY_AFTER_BUSY);
      refuse (exchange, MHD_HTTP_SERVICE_UNAVAILABLE, "UNAVAILABLE", TOKEN_UNCHECKED_MESSAGE);
      return;
    }
  if (exchange->user_id == NULL)
    {
      refuse (exchange, MHD_HTTP_UNAUTHORIZED, "UNAUTHENTICATED",
              credential == NULL
                ? "Missing gateway token: send it as the API key (x-goog-api-key, ?key= or Authorization: Bearer)."
                : "The gateway token is not valid or was revoked.");
      return;
    }

  length = soup_message_headers_get_one (head.headers, "Content-Length");
  if (length != NULL)
    {
      guint64 size = g_ascii_strtoull (length, NULL, 10);

      if (size > self->body_limit)
        {
          refuse (exchange, MHD_HTTP_CONTENT_TOO_LARGE, "INVALID_ARGUMENT",
                  "The request body is larger than the gateway accepts.");
          return;
        }
      exchange->body = g_byte_array_sized_new ((guint) size);
    }
  else
    exchange->body = g_byte_array_new ();
}

/* A piece of the body: kept up to the limit; past it, answered at once
 * and the connection closed, so the rest of a body with no length to judge
 * by is never read. libmicrohttpd takes no answer while a body comes in:
 * this one is written on the socket itself, which libmicrohttpd then
 * closes (access_cb). */
static void
exchange_take_body (GkExchange *exchange,
                    const char *data,
                    gsize       len)
{
  g_autofree char *body = NULL;
  g_autofree char *answer = NULL;
  G_GNUC_UNUSED gssize sent;

  if (exchange->body->len + len <= exchange->gateway->body_limit)
    {
      g_byte_array_append (exchange->body, (const guint8 *) data, len);
      return;
    }
  g_byte_array_set_size (exchange->body, 0);
  exchange->abandoned = TRUE;
  body = gk_gateway_error_json (MHD_HTTP_CONTENT_TOO_LARGE, "INVALID_ARGUMENT",
                                "The request body is larger than the gateway accepts.");
  answer = g_strdup_printf ("HTTP/1.1 413 Content Too Large\r\n"
                            "Content-Type: application/json; charset=UTF-8\r\n"
                            "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                            strlen (body), body);
  sent = send (exchange->fd, answer, strlen (answer), MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* ---- Answers ------------------------------------------------------------- */

static void request_sent_some (Request *request);

/* libmicrohttpd asks for the next piece of a streamed answer. With none
 * at hand the connection is suspended until there is one (a reader that
 * answered 0 would be asked again at once, in a loop). */
static ssize_t
stream_reader_cb (void     *cls,
                  uint64_t  pos,
                  char     *buf,
                  size_t    max)
{
  GkExchange *exchange = cls;
  gsize n = 0;

  while (n < max && exchange->out.length > 0)
    {
      GBytes *piece = g_queue_peek_head (&exchange->out);
      gsize len;
      const char *data = g_bytes_get_data (piece, &len);
      gsize take = MIN (len - exchange->out_offset, max - n);

      memcpy (buf + n, data + exchange->out_offset, take);
      n += take;
      exchange->out_offset += take;
      if (exchange->out_offset == len)
        {
          g_bytes_unref (g_queue_pop_head (&exchange->out));
          exchange->out_offset = 0;
        }
    }
  if (n > 0)
    {
      exchange->out_len -= n;
      if (exchange->request != NULL)
        request_sent_some (exchange->request);
      return (ssize_t) n;
    }
  if (exchange->out_abort)
    {
      /* A chunk-size line cut short, then the close: even lenient HTTP
       * readers, which take a close between two chunks for the end, see an
       * error. */
      G_GNUC_UNUSED gssize sent = send (exchange->fd, "1", 1, MSG_NOSIGNAL | MSG_DONTWAIT);

      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
  if (exchange->out_end)
    return MHD_CONTENT_READER_END_OF_STREAM;
  exchange->reader_waiting = TRUE;
  exchange->suspended = TRUE;
  MHD_suspend_connection (exchange->connection);
  return 0;
}

static enum MHD_Result
exchange_queue_answer (GkExchange *exchange)
{
  struct MHD_Response *response;
  SoupMessageHeadersIter iter;
  const char *name, *value;
  enum MHD_Result result;

  if (exchange->queued)
    return MHD_YES;
  exchange->queued = TRUE;
  if (exchange->streaming)
    response = MHD_create_response_from_callback (MHD_SIZE_UNKNOWN, STREAM_BLOCK_SIZE,
                                                  stream_reader_cb, exchange, NULL);
  else
    {
      gsize len = 0;
      const char *data = exchange->response_body != NULL
        ? g_bytes_get_data (exchange->response_body, &len) : NULL;

      response = exchange->response_body != NULL
        ? MHD_create_response_from_buffer_with_free_callback_cls (
            len, (void *) data, (MHD_ContentReaderFreeCallback) g_bytes_unref,
            g_bytes_ref (exchange->response_body))
        : MHD_create_response_from_buffer (0, NULL, MHD_RESPMEM_PERSISTENT);
    }
  if (response == NULL)
    return MHD_NO;
  if (exchange->response_headers != NULL)
    {
      soup_message_headers_iter_init (&iter, exchange->response_headers);
      while (soup_message_headers_iter_next (&iter, &name, &value))
        MHD_add_response_header (response, name, value);
    }
  MHD_add_response_header (response, MHD_HTTP_HEADER_SERVER, SERVER_NAME);
  if (exchange->close)
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONNECTION, "close");
  result = MHD_queue_response (exchange->connection, exchange->status, response);
  MHD_destroy_response (response);
  return result;
}

/* The answer (or the end of a stream, or the want of any answer) is
 * ready: a suspended connection is handed back to libmicrohttpd. */
static void
exchange_wake (GkExchange *exchange)
{
  if (!exchange->suspended)
    return;
  exchange->suspended = FALSE;
  exchange->reader_waiting = FALSE;
  MHD_resume_connection (exchange->connection);
  exchange->source->resumed = TRUE;
}

/* ---- Clients that leave -------------------------------------------------- */

/* While the proxy works for it, a client connection is watched for its
 * client closing it (libmicrohttpd watches no suspended connection). Every
 * client connection is in an epoll set of the gateway's own from its
 * accept to its close, edge-triggered on EPOLLRDHUP (the client's end of
 * stream, not the bytes of a next request): no system call per request,
 * and no wakeup of the main loop until a client shuts its side down. */
static void request_client_left (Request *request);

/* The client of a watched exchange shut its side down: it left, unless
 * bytes it sent before the end wait to be read (a pipelined request, or
 * more than the Content-Length said), which libmicrohttpd reads once the
 * answer is out: that client still waits for it. Either way, nothing more
 * to watch. */
static void
exchange_peer_closed (GkExchange *exchange)
{
  char byte;
  gssize n = recv (exchange->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);

  exchange->watched = FALSE;
  if (n <= 0 && exchange->request != NULL)
    request_client_left (exchange->request);
}

static void
exchange_watch (GkExchange *exchange)
{
  exchange->watched = TRUE;
  /* The end came before the watch began: its edge is gone. */
  if (exchange->conn->peer_closed)
    exchange_peer_closed (exchange);
}

static gboolean
hangup_cb (int          fd,
           GIOCondition condition,
           gpointer     data)
{
  struct epoll_event event;

  while (epoll_wait (fd, &event, 1, 0) == 1)
    {
      ClientConn *conn = event.data.ptr;

      conn->peer_closed = TRUE;
      if (conn->exchange != NULL && conn->exchange->watched)
        exchange_peer_closed (conn->exchange);
    }
  return G_SOURCE_CONTINUE;
}

/* ---- Client connections -------------------------------------------------- */

static void
connection_cb (void                           *cls,
               struct MHD_Connection          *connection,
               void                          **socket_context,
               enum MHD_ConnectionNotificationCode code)
{
  DaemonSource *source = cls;
  GkGateway *self = source->gateway;
  ClientConn *conn = *socket_context;

  if (code == MHD_CONNECTION_NOTIFY_STARTED)
    {
      struct epoll_event event = { .events = EPOLLRDHUP | EPOLLET };

      conn = g_new0 (ClientConn, 1);
      conn->link.data = conn;
      conn->fd = MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CONNECTION_FD)->connect_fd;
      /* The head is due within the header timeout of the accept. */
      conn->head_deadline = g_get_monotonic_time () + (gint64) self->header_timeout_ms * 1000;
      g_queue_push_tail_link (&self->connections, &conn->link);
      event.data.ptr = conn;
      epoll_ctl (self->hangup_epoll, EPOLL_CTL_ADD, conn->fd, &event);
      *socket_context = conn;
      return;
    }
  if (conn != NULL)
    {
      /* Its pending event (if any) goes with it. */
      epoll_ctl (self->hangup_epoll, EPOLL_CTL_DEL, conn->fd, NULL);
      g_queue_unlink (&self->connections, &conn->link);
      g_free (conn);
      *socket_context = NULL;
    }
}

/* Closes the connections whose head is late: shut down, libmicrohttpd
 * sees the end of the stream and closes them itself. */
static gboolean
head_sweep_cb (gpointer data)
{
  GkGateway *self = data;
  gint64 now = g_get_monotonic_time ();

  for (GList *l = self->connections.head; l != NULL; l = l->next)
    {
      ClientConn *conn = l->data;

      if (conn->head_deadline >= 0 && now >= conn->head_deadline)
        {
          conn->head_deadline = -1;
          shutdown (conn->fd, SHUT_RDWR);
        }
    }
  return G_SOURCE_CONTINUE;
}

/* The request line came: the exchange starts (libmicrohttpd's URI log
 * callback sees the target as sent, before any decoding). */
static void *
request_line_cb (void                  *cls,
                 const char            *uri,
                 struct MHD_Connection *connection)
{
  DaemonSource *source = cls;
  GkExchange *exchange = g_new0 (GkExchange, 1);
  const union MHD_ConnectionInfo *info;

  exchange->gateway = source->gateway;
  exchange->source = source;
  exchange->connection = connection;
  info = MHD_get_connection_info (connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  exchange->conn = info->socket_context;
  exchange->conn->exchange = exchange;
  exchange->fd = exchange->conn->fd;
  /* Read as libsoup's server did: percent-encoding normalised and dot
   * segments removed, then the path decoded (NULL for an escaped NUL or a
   * bad escape: answered 400), the query kept encoded. */
  if (uri[0] == '/')
    {
      g_autofree char *absolute = g_strconcat ("http://localhost", uri, NULL);

      exchange->uri = g_uri_parse (absolute, SOUP_HTTP_URI_FLAGS, NULL);
    }
  if (exchange->uri != NULL)
    {
      exchange->path = g_uri_unescape_string (g_uri_get_path (exchange->uri), NULL);
      exchange->query = g_uri_get_query (exchange->uri);
    }
  return exchange;
}

static void
exchange_free (GkExchange *exchange)
{
  g_clear_pointer (&exchange->uri, g_uri_unref);
  g_free (exchange->path);
  g_clear_pointer (&exchange->request_headers, soup_message_headers_unref);
  g_clear_pointer (&exchange->response_headers, soup_message_headers_unref);
  g_clear_pointer (&exchange->response_body, g_bytes_unref);
  g_clear_pointer (&exchange->body, g_byte_array_unref);
  g_queue_clear_full (&exchange->out, (GDestroyNotify) g_bytes_unref);
  g_free (exchange->user_id);
  g_free (exchange);
}

static void request_detach (Request *request);

/* The request ended, answered or not (the client left, a timeout, the
 * gateway stopping). */
static void
request_completed_cb (void                            *cls,
                      struct MHD_Connection           *connection,
                      void                           **con_cls,
                      enum MHD_RequestTerminationCode  code)
{
  DaemonSource *source = cls;
  GkGateway *self = source->gateway;
  GkExchange *exchange = *con_cls;

  if (exchange == NULL)
    return;
  *con_cls = NULL;
  exchange->watched = FALSE;
  exchange->conn->exchange = NULL;
  if (exchange->request != NULL)
    request_detach (exchange->request);
  /* On a keep-alive connection the next head is due within the idle
   * and header timeouts. */
  exchange->conn->head_deadline =
    g_get_monotonic_time () + (gint64) (self->idle_timeout_ms + self->header_timeout_ms) * 1000;
  exchange_free (exchange);
}

static void exchange_route (GkExchange *exchange);

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
  GkExchange *exchange = *con_cls;

  if (exchange == NULL)
    return MHD_NO;
  if (!exchange->head_checked)
    {
      exchange->head_checked = TRUE;
      exchange->method = method;
      exchange_check_head (exchange);
      return exchange->status != 0 ? exchange_queue_answer (exchange) : MHD_YES;
    }
  if (*upload_data_size > 0)
    {
      if (!exchange->abandoned)
        exchange_take_body (exchange, upload_data, *upload_data_size);
      *upload_data_size = 0;
      return exchange->abandoned ? MHD_NO : MHD_YES;
    }
  if (exchange->abandoned)
    return MHD_NO;
  if (exchange->status == 0 && exchange->request == NULL)
    exchange_route (exchange);
  if (exchange->status != 0)
    return exchange_queue_answer (exchange);
  if (exchange->request != NULL && !exchange->suspended)
    {
      /* The upstream answers later. */
      exchange->suspended = TRUE;
      MHD_suspend_connection (connection);
      exchange_watch (exchange);
    }
  return MHD_YES;
}

static gboolean
daemon_source_prepare (GSource *source,
                       gint    *timeout)
{
  DaemonSource *self = (DaemonSource *) source;
  MHD_UNSIGNED_LONG_LONG timeout_ms;

  if (self->resumed)
    {
      *timeout = 0;
      return TRUE;
    }
  if (MHD_get_timeout (self->daemon, &timeout_ms) != MHD_YES)
    {
      *timeout = -1;
      return FALSE;
    }
  *timeout = (gint) MIN (timeout_ms, G_MAXINT);
  return timeout_ms == 0;
}

static gboolean daemon_source_busy (DaemonSource *self);

static gboolean
daemon_source_check (GSource *source)
{
  DaemonSource *self = (DaemonSource *) source;

  return g_source_query_unix_fd (source, self->tag) != 0 || daemon_source_busy (self);
}

/* Whether libmicrohttpd has work at once: a resumed connection, or one
 * whose state moved on without waiting for its socket. */
static gboolean
daemon_source_busy (DaemonSource *self)
{
  MHD_UNSIGNED_LONG_LONG timeout_ms;

  return self->resumed ||
         (MHD_get_timeout (self->daemon, &timeout_ms) == MHD_YES && timeout_ms == 0);
}

/* libmicrohttpd moves a connection one or two states per run (a resumed
 * one: its answer sent, then the connection made ready for the next
 * request, then back in its epoll set): those runs follow at once, in one
 * dispatch, rather than each after another main loop iteration (a poll
 * and every source's prepare and check). Bounded, for the other sources. */
static void
daemon_source_run (DaemonSource *self)
{
  guint runs = 0;

  do
    {
      self->resumed = FALSE;
      MHD_run (self->daemon);
    }
  while (++runs < DAEMON_RUNS_PER_DISPATCH && daemon_source_busy (self));
}

static gboolean
daemon_source_dispatch (GSource     *source,
                        GSourceFunc  callback,
                        gpointer     user_data)
{
  daemon_source_run ((DaemonSource *) source);
  return G_SOURCE_CONTINUE;
}

/* Connections resumed by the source that just ran (an upstream answer, a
 * usage row written) are served now rather than at the next main loop
 * iteration. Only from a dispatch of the gateway's own sources: never
 * from within libmicrohttpd. */
static gboolean
run_resumed_cb (gpointer data)
{
  GkGateway *self = data;

  for (guint i = 0; i < G_N_ELEMENTS (self->daemons); i++)
    if (self->daemons[i] != NULL && self->daemons[i]->resumed)
      daemon_source_run (self->daemons[i]);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs daemon_source_funcs = {
  .prepare = daemon_source_prepare,
  .check = daemon_source_check,
  .dispatch = daemon_source_dispatch,
};

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

struct _Request
{
  GkGateway         *gateway;
  GkExchange        *exchange;      /* NULL once the client is gone */
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
  gboolean           cancelled;     /* the client left or the gateway stops */
  GList             *link;          /* in the gateway's requests */
  gint64             deadline;      /* of all attempts; 0 = none */
  gboolean           client_gone;
  gint64             received;      /* monotonic µs */
  char              *unavailable;   /* the 503's message when no key could serve */
  GSource           *wait_source;   /* asks for a key again (the database is out of reach) */
  const char        *retry_after;   /* with it; NULL = no Retry-After */

  /* The attempt in progress. */
  GkUpstreamCall    *call;
  gint64             key_id;
  gint64             attempt_start;
  guint              status;
  GByteArray        *buffer;
  gsize              buffer_limit;
  gboolean           big_answer;    /* a buffer grew past BIG_ANSWER */
  GkUsageScanner     scanner;
  GkRedactor         redactor;      /* over a relayed stream */

  /* The last transient failure, relayed when no key is left. */
  guint              last_status;
  GBytes            *last_body;
  char              *last_error;
  GError            *last_failure;  /* GK_UPSTREAM_ERROR's class of @last_error */
};

static void request_attempt        (Request *request);
static void request_finish         (Request *request);

static void
request_free (Request *request)
{
  if (request->wait_source != NULL)
    g_source_destroy (request->wait_source);
  g_clear_pointer (&request->wait_source, g_source_unref);
  request->gateway->in_flight--;
  g_queue_delete_link (&request->gateway->requests, request->link);
  if (request->exchange != NULL)
    request->exchange->request = NULL;
  g_free (request->user_id);
  g_free (request->http_method);
  g_free (request->path);
  gk_upstream_request_clear (&request->upstream);
  g_free (request->model);
  g_clear_pointer (&request->body, g_bytes_unref);
  g_clear_pointer (&request->exclude, g_array_unref);
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
  else if (job->held && self->disk_full)
    gateway_log (self, "the disk is full: usage of key %" G_GINT64_FORMAT
                 " is kept in memory until it can be written", record->key_id);
  if (job->error == NULL)
    g_atomic_int_inc (&self->usage_count);

  /* A request no key could serve has its cause logged once (see
   * request_unavailable()), not a line each. */
  if (record->key_id != 0)
    {
      /* "POST /v1beta/… -> 200 key=1 user=u status=SUCCESS tokens=12+13 85 ms" */
      GString *line = g_string_sized_new (160);

      g_string_append (line, request->http_method);
      g_string_append_c (line, ' ');
      g_string_append (line, request->path);
      g_string_append (line, " -> ");
      append_int (line, record->http_status);
      g_string_append (line, " key=");
      append_int (line, record->key_id);
      g_string_append (line, " user=");
      g_string_append (line, record->user_id != NULL ? record->user_id : "");
      g_string_append (line, " status=");
      g_string_append (line, gk_usage_status_to_string (record->status));
      g_string_append (line, " tokens=");
      append_int (line, record->prompt_tokens);
      g_string_append_c (line, '+');
      append_int (line, record->output_tokens);
      g_string_append_c (line, ' ');
      append_int (line, record->latency_ms);
      g_string_append (line, " ms");
      if (result->rotated)
        {
          g_string_append (line, " (rotated: ");
          g_string_append (line, gk_rotation_reason_to_string (result->reason));
          g_string_append_c (line, ')');
        }
      gateway_log_line (self, line->str);
      g_string_free (line, TRUE);
    }
  track_job_free (job);
  next (request);
}

/* Held rows written to a transaction: each holds the database's write
 * lock (on a server, for every gateway) while it lasts. */
#define HELD_BATCH       256
/* Rows the disk had no room for, or the server did not take, are held in
 * memory and tried again this often. While the disk is full new requests
 * are refused, so only those already in flight add to them; while the
 * server is out of reach requests go on until the held rows and those in
 * flight reach outage_rows (see proxy()). */
#define HELD_RETRY_US    (500 * 1000)

static gboolean
is_disk_full (const GError *error)
{
  return g_error_matches (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_FULL);
}

static gboolean
is_unreachable (const GError *error)
{
  return g_error_matches (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_UNREACHABLE);
}

/* Rows that must wait to be written: the disk is full, the server out of
 * reach, or other writers held the database longer than the lock timeout
 * (several gateways writing the rows they kept through an outage at
 * once). */
static gboolean
must_wait (const GError *error)
{
  return is_disk_full (error) || is_unreachable (error)
         || g_error_matches (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_BUSY);
}

/* The server went out of reach: said once, until it is back. */
static void
store_lost (GkGateway    *self,
            const GError *error)
{
  if (self->store_down)
    return;
  self->store_down = TRUE;
  gateway_log (self, "The database cannot be reached (%s): usage rows are kept in memory (at "
               "most %u) and written when it is back; keys are chosen from the last snapshot",
               error->message, self->outage_rows);
}

/* Writes @jobs in one transaction: one commit (the costly part) for all,
 * each row in its own savepoint so one that fails is undone alone.
 * Returns FALSE when the disk is full or the server out of reach (@cause
 * set to that error): then nothing of @jobs was written and no job has an
 * error. */
static gboolean
write_batch (GkGateway *self,
             GPtrArray *jobs,
             GError   **cause)
{
  g_autoptr(GError) error = NULL;
  gboolean in_batch = jobs->len > 1 && gk_pool_batch_begin (self->pool, &error);
  gboolean wait = must_wait (error);

  if (wait)
    g_propagate_error (cause, g_steal_pointer (&error));
  for (guint i = 0; i < jobs->len && !wait; i++)
    {
      TrackJob *job = g_ptr_array_index (jobs, i);

      gk_pool_track (self->pool, &job->record, &job->result, &job->error);
      if ((wait = must_wait (job->error)))
        g_propagate_error (cause, g_error_copy (job->error));
    }
  if (wait && in_batch)
    gk_pool_batch_cancel (self->pool);
  else if (in_batch && !gk_pool_batch_end (self->pool, &error))
    {
      wait = must_wait (error);
      /* Nothing of the batch was written: every row says so. */
      for (guint i = 0; i < jobs->len && !wait; i++)
        {
          TrackJob *job = g_ptr_array_index (jobs, i);

          if (job->error == NULL)
            job->error = g_error_copy (error);
        }
      if (wait)
        g_propagate_error (cause, g_steal_pointer (&error));
    }
  if (wait)
    for (guint i = 0; i < jobs->len; i++)
      g_clear_error (&((TrackJob *) g_ptr_array_index (jobs, i))->error);
  return !wait;
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

/* Rows must wait for @cause (NULL: for the cause the held rows already
 * wait for; a busy database only for the next try). */
static void
rows_wait (GkGateway    *self,
           const GError *cause)
{
  if (is_unreachable (cause))
    store_lost (self, cause);
  else if (is_disk_full (cause))
    self->disk_full = TRUE;
}

/* Rows were written while the disk was full or the server out of reach
 * (@held of them kept in memory until then): said once. */
static void
rows_written_again (GkGateway *self,
                    guint      held)
{
  if (self->store_down)
    gateway_log (self, "The database can be reached again: %u usage rows kept in memory were "
                 "written", held);
  if (self->disk_full)
    g_message ("The disk has room again: %u usage rows kept in memory were written", held);
  self->disk_full = FALSE;
  self->store_down = FALSE;
}

/* Tries the held rows again, HELD_BATCH to a transaction, in order; TRUE
 * once all are written. Rows written stay written when a later batch
 * fails. */
static gboolean
write_held (GkGateway *self,
            GPtrArray *held)
{
  guint written = 0;

  while (written < held->len)
    {
      g_autoptr(GPtrArray) batch = g_ptr_array_new ();
      g_autoptr(GError) cause = NULL;

      for (guint i = written; i < held->len && batch->len < HELD_BATCH; i++)
        g_ptr_array_add (batch, g_ptr_array_index (held, i));
      if (!write_batch (self, batch, &cause))
        {
          g_ptr_array_remove_range (held, 0, written);
          rows_wait (self, cause);
          return FALSE;
        }
      for (guint i = 0; i < batch->len; i++)
        {
          TrackJob *job = g_ptr_array_index (batch, i);

          if (job->error != NULL)
            g_warning ("A usage row kept in memory could not be written: %s",
                       job->error->message);
        }
      written += batch->len;
    }
  rows_written_again (self, held->len);
  g_ptr_array_set_size (held, 0);
  return TRUE;
}

/* Keeps copies of @jobs' rows to write once the disk has room or the
 * server is back; the requests themselves go on. */
static void
hold_rows (GkGateway    *self,
           GPtrArray    *jobs,
           const GError *cause)
{
  rows_wait (self, cause);
  for (guint i = 0; i < jobs->len; i++)
    {
      TrackJob *copy = track_job_hold (g_ptr_array_index (jobs, i));

      /* The rows outage_rows lets in, and those of the requests that
       * were already in flight when the server or the disk went away: past
       * that (it does not happen), rows are dropped. */
      if (self->held->len < self->outage_rows + self->max_in_flight)
        g_ptr_array_add (self->held, copy);
      else
        {
          g_warning ("Usage rows cannot be written and %u are waiting: one more is lost",
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
  g_autoptr(GError) cause = NULL;

  self->to_write = g_ptr_array_new ();
  g_source_set_ready_time (self->write_source, -1);
  if (self->held->len > 0)
    write_held (self, self->held);
  /* The server may have gone away with no row kept (a request found no
   * snapshot): it is back only once these rows are written. */
  if (jobs->len > 0 && (self->held->len > 0 || !write_batch (self, jobs, &cause)))
    hold_rows (self, jobs, cause);
  else if (jobs->len > 0)
    rows_written_again (self, 0);
  if (self->held->len > 0)
    g_source_set_ready_time (self->write_source, g_get_monotonic_time () + HELD_RETRY_US);
  /* The requests are answered, their rows written or held. */
  for (guint i = 0; i < jobs->len; i++)
    track_done (g_ptr_array_index (jobs, i));
  run_resumed_cb (self);
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
   * together wait for one write (and so keep their order). Once a
   * stopping gateway has written its last rows (usage_rows_stop()), a
   * request still unwinding writes its own. */
  if (self->to_write != NULL
      && (self->in_flight > 1 || self->to_write->len > 0 || self->held->len > 0
          || self->disk_full || self->store_down))
    {
      queue_row (self, job);
      return;
    }
  gk_pool_track (self->pool, record, &job->result, &job->error);
  if (must_wait (job->error) && self->to_write != NULL)
    {
      /* Held until the disk has room or the server is back. */
      g_clear_error (&job->error);
      queue_row (self, job);
      return;
    }
  /* No row can wait any more: its request is not answered. */
  if (must_wait (job->error))
    job->next = request_finish;
  track_done (job);
}

/* The answer is ready, or there is none to give (the client left) or a
 * stream was cut short: the connection is then closed. The client's
 * connection goes back to libmicrohttpd. */
static void
request_finish (Request *request)
{
  GkExchange *exchange = request->exchange;

  if (exchange != NULL)
    {
      exchange->watched = FALSE;
      if (exchange->streaming && !exchange->out_end)
        exchange->out_abort = TRUE;
      else if (exchange->status == 0)
        exchange->abandoned = TRUE;
      exchange_wake (exchange);
    }
  request_free (request);
}

static void
request_answer_unavailable (Request *request)
{
  if (!request->client_gone)
    {
      if (request->retry_after != NULL)
        soup_message_headers_replace (gk_exchange_get_response_headers (request->exchange),
                                      "Retry-After", request->retry_after);
      gk_gateway_respond_error (request->exchange, SOUP_STATUS_SERVICE_UNAVAILABLE, "UNAVAILABLE",
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
copy_response_headers (GkUpstreamCall *from,
                       GkExchange     *to)
{
  SoupMessageHeaders *dest = gk_exchange_get_response_headers (to);
  SoupMessageHeadersIter iter;
  const char *name, *value;

  soup_message_headers_iter_init (&iter, gk_upstream_call_get_response_headers (from));
  while (soup_message_headers_iter_next (&iter, &name, &value))
    if (!header_in (name, response_headers_dropped, G_N_ELEMENTS (response_headers_dropped)))
      {
        gsize len;
        g_autofree char *redacted = gk_redact_bytes (value, strlen (value), &len);

        soup_message_headers_append (dest, name, redacted != NULL ? redacted : value);
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
  GkExchange *exchange = request->exchange;

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
        copy_response_headers (request->call, exchange);
      if (redacted != NULL)
        exchange_set_answer (exchange, status, type, g_bytes_new_take (redacted, redacted_len));
      else if (len > 0 && request->buffer != NULL && data == (const char *) request->buffer->data &&
               len == request->buffer->len)
        /* The upstream's body itself when it is the buffer read whole:
         * no copy. */
        exchange_set_answer (exchange, status, type,
                             g_byte_array_free_to_bytes (g_steal_pointer (&request->buffer)));
      else
        exchange_set_answer (exchange, status, type, g_bytes_new (data, len));
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
        gk_gateway_respond_error (request->exchange, failure->status, failure->google_status,
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
    gk_gateway_respond_error (request->exchange, SOUP_STATUS_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                              STOPPING_MESSAGE);
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
  if (request->cancelled)
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
  GkExchange *exchange = request->exchange;
  GString *out = g_string_new (NULL);
  gsize len;

  if (bytes != NULL)
    gk_redactor_feed (&request->redactor, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes),
                      out);
  else
    gk_redactor_finish (&request->redactor, out);
  len = out->len;
  if (len == 0)
    {
      g_string_free (out, TRUE);
      return;
    }
  g_queue_push_tail (&exchange->out, g_string_free_to_bytes (out));
  exchange->out_len += len;
  if (exchange->reader_waiting)
    exchange_wake (exchange);
}

/* libmicrohttpd took some of a stream: the upstream goes on once the
 * client caught up. */
static void
request_sent_some (Request *request)
{
  if (request->call != NULL && request->exchange->out_len <= RELAY_BACKLOG / 2)
    gk_upstream_call_set_held (request->call, FALSE);
}

static void
relay_complete (Request *request)
{
  if (!request->client_gone)
    {
      relay_to_client (request, NULL);
      request->exchange->out_end = TRUE;
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
  /* The answer was already under way: it cannot move to another key. The
   * connection is closed (request_finish) so that the client sees a
   * truncated answer rather than a complete one. */
  message = g_strdup_printf ("Upstream stream broke: %s", error->message);
  request_track (request, GK_USAGE_ERROR, &request->scanner.usage, NULL, message, request_finish);
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
      /* request_sent_some lets the upstream go on once the client caught up. */
      if (request->exchange->out_len > RELAY_BACKLOG)
        gk_upstream_call_set_held (request->call, TRUE);
    }
  gk_upstream_call_read (request->call, relay_read_cb, request);
}

/* Starts relaying a successful streamed answer chunk by chunk. */
static void
request_start_relay (Request *request)
{
  GkExchange *exchange = request->exchange;
  const char *type = soup_message_headers_get_content_type (
    gk_upstream_call_get_response_headers (request->call), NULL);

  copy_response_headers (request->call, exchange);
  exchange->status = request->status;
  exchange->streaming = TRUE;
  if (type != NULL)
    soup_message_headers_replace (gk_exchange_get_response_headers (exchange), "Content-Type", type);
  gk_usage_scanner_init (&request->scanner,
                         request->sse || (type != NULL && g_str_has_prefix (type, "text/event-stream")));
  gk_redactor_init (&request->redactor);
  exchange_wake (exchange);
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

/* Nothing more is tried for @request: its upstream call ends at once, and
 * so does a wait for the database (request_wait_done_cb()). */
static void
request_cancel (Request *request)
{
  request->cancelled = TRUE;
  if (request->call != NULL)
    gk_upstream_call_cancel (request->call);
  if (request->wait_source != NULL)
    g_source_set_ready_time (request->wait_source, 0);
}

/* The client closed its connection: nothing more is sent for it. */
static void
request_client_left (Request *request)
{
  request->client_gone = TRUE;
  request_cancel (request);
}

/* The client's exchange ends before its answer (the connection closed):
 * the request unwinds on its own. */
static void
request_detach (Request *request)
{
  request->exchange->request = NULL;
  request->exchange = NULL;
  request_client_left (request);
}

static gboolean
request_wait_done_cb (gpointer data)
{
  Request *request = data;

  g_clear_pointer (&request->wait_source, g_source_unref);
  /* The gateway stops: the request is answered now, as those that come
   * during the stop are, not left waiting past the end of the drain (its
   * timer and state would be freed by no one). */
  if (request->gateway->stopping)
    {
      gateway_log (request->gateway, "%s %s -> 503 stopping", request->http_method,
                   request->path);
      request_unavailable (request, STOPPING_MESSAGE, NULL);
    }
  else
    request_attempt (request);
  return G_SOURCE_REMOVE;
}

/* No key can be chosen because the database is out of reach (and the pool
 * has no earlier snapshot): the request asks again until its deadline,
 * then is answered 503. */
static void
request_wait_for_store (Request      *request,
                        const GError *error)
{
  GkGateway *self = request->gateway;
  gint64 retry = g_get_monotonic_time () + STORE_WAIT_MS * 1000;

  store_lost (self, error);
  if (request->cancelled || request->client_gone
      || (request->deadline > 0 && retry >= request->deadline))
    {
      request_unavailable (request, STORE_DOWN_MESSAGE, RETRY_AFTER_BUSY);
      return;
    }
  /* A source of ours, so that a stop can make it ready at once
   * (request_cancel()). */
  request->wait_source = gk_ready_source_new (request_wait_done_cb, request);
  g_source_set_ready_time (request->wait_source, retry);
  g_source_attach (request->wait_source, self->context);
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
        gk_gateway_respond_error (request->exchange, SOUP_STATUS_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                                  error->message);
      request_finish (request);
      return;
    }
  if (key == NULL && is_unreachable (error))
    {
      request_wait_for_store (request, error);
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

  secret = gk_key_store_reveal_key (self->key_store, key, &error);
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
  if (request->cancelled)
    gk_upstream_call_cancel (request->call);
  gk_upstream_call_send (request->call, NULL, send_cb, request);
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

/* Refuses a request the upstream must not see, in Google's error shape. */
static void
respond_request_error (GkExchange   *exchange,
                       const GError *error)
{
  guint code = SOUP_STATUS_BAD_REQUEST;

  if (g_error_matches (error, GK_REQUEST_ERROR, GK_REQUEST_ERROR_METHOD))
    {
      code = SOUP_STATUS_METHOD_NOT_ALLOWED;
      soup_message_headers_replace (gk_exchange_get_response_headers (exchange),
                                    "Allow", GK_REQUEST_ALLOWED_METHODS);
    }
  else if (g_error_matches (error, GK_REQUEST_ERROR, GK_REQUEST_ERROR_ENCODING))
    code = SOUP_STATUS_UNSUPPORTED_MEDIA_TYPE;
  gateway_log (exchange->gateway, "%s %s -> %u refused: %s", exchange->method, exchange->path,
               code, error->message);
  gk_gateway_respond_error (exchange, code, "INVALID_ARGUMENT", error->message);
}

/* Builds what goes upstream from the client's request (gk-request.c). */
static gboolean
build_upstream_request (GkExchange         *exchange,
                        GkUpstreamRequest  *out,
                        GError            **error)
{
  SoupMessageHeadersIter iter;
  const char *name, *value;
  g_autoptr(GPtrArray) names = g_ptr_array_new ();
  g_autoptr(GPtrArray) values = g_ptr_array_new ();

  soup_message_headers_iter_init (&iter, exchange->request_headers);
  while (soup_message_headers_iter_next (&iter, &name, &value))
    {
      g_ptr_array_add (names, (gpointer) name);
      g_ptr_array_add (values, (gpointer) value);
    }
  return gk_upstream_request_build (out, exchange->method, exchange->path, exchange->query,
                                    names->len, (const char * const *) names->pdata,
                                    (const char * const *) values->pdata, error);
}

static void
proxy (GkExchange *exchange)
{
  GkGateway *self = exchange->gateway;
  const char *path = exchange->path;
  g_autoptr(GError) error = NULL;
  GkUpstreamRequest upstream;
  Request *request;

  /* The requests in flight are being cancelled: a new one (on a
   * connection kept open) could outlive the gateway's upstream client and
   * its usage rows. */
  if (self->stopping)
    {
      gateway_log (self, "%s %s -> 503 stopping", exchange->method, path);
      gk_gateway_respond_error (exchange, SOUP_STATUS_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                                STOPPING_MESSAGE);
      return;
    }

  if (!build_upstream_request (exchange, &upstream, &error))
    {
      respond_request_error (exchange, error);
      return;
    }

  /* A request whose usage cannot be recorded would not be charged. */
  if (self->disk_full)
    {
      gateway_log (self, "%s %s -> 503 disk full", exchange->method, path);
      soup_message_headers_replace (gk_exchange_get_response_headers (exchange),
                                    "Retry-After", RETRY_AFTER_DISK_FULL);
      gk_gateway_respond_error (exchange, SOUP_STATUS_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                                "The disk is full: the gateway cannot record usage, so it "
                                "forwards no request until space is freed.");
      gk_upstream_request_clear (&upstream);
      return;
    }

  /* Past the bound, the row of one more answer could not be kept. */
  if (self->store_down && self->held->len + self->in_flight >= self->outage_rows)
    {
      gateway_log (self, "%s %s -> 503 database out of reach", exchange->method, path);
      soup_message_headers_replace (gk_exchange_get_response_headers (exchange),
                                    "Retry-After", RETRY_AFTER_DISK_FULL);
      gk_gateway_respond_error (exchange, SOUP_STATUS_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                                STORE_DOWN_MESSAGE);
      gk_upstream_request_clear (&upstream);
      return;
    }

  if (self->in_flight >= self->max_in_flight)
    {
      soup_message_headers_replace (gk_exchange_get_response_headers (exchange),
                                    "Retry-After", RETRY_AFTER_BUSY);
      gk_gateway_respond_error (exchange, SOUP_STATUS_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                                "The gateway is busy; try again shortly.");
      gk_upstream_request_clear (&upstream);
      return;
    }

  request = g_new0 (Request, 1);
  self->in_flight++;
  request->gateway = self;
  request->exchange = exchange;
  exchange->request = request;
  request->received = g_get_monotonic_time ();
  request->user_id = g_strdup (exchange->user_id);
  request->http_method = g_strdup (exchange->method);
  request->path = g_strdup (path);
  request->upstream = upstream;
  if (exchange->body != NULL && exchange->body->len > 0)
    request->body = g_byte_array_free_to_bytes (g_steal_pointer (&exchange->body));
  request->model = gk_gateway_model_from_request (path, request->body,
                                                  strstr (path, "/openai/") != NULL,
                                                  &request->stream);
  if (request->model == NULL)
    request->model = g_strdup ("");
  request->sse = request->stream && (strstr (path, "/openai/") != NULL ||
                                     (exchange->query != NULL &&
                                      strstr (exchange->query, "alt=sse") != NULL));
  request->exclude = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_queue_push_tail (&self->requests, request);
  request->link = self->requests.tail;

  /* Answered now (no key…) or later: access_cb suspends the connection
   * meanwhile. */
  request_attempt (request);
}

/* The whole request is here: the admin API, the proxy or 404. */
static void
exchange_route (GkExchange *exchange)
{
  GkGateway *self = exchange->gateway;
  const char *path = exchange->path;
  GByteArray *body = exchange->body;
  gboolean is_admin;

  is_admin = g_str_equal (path, ADMIN_PREFIX) || g_str_has_prefix (path, ADMIN_PREFIX "/");
  /* The bodies the gateway parses itself: json-glib recurses once per
   * level, so a deep one would overflow the stack. */
  if ((is_admin || strstr (path, "/openai/") != NULL) && body != NULL &&
      !gk_json_depth_ok ((const char *) body->data, body->len, GK_REQUEST_MAX_JSON_DEPTH))
    {
      gk_gateway_respond_error (exchange, SOUP_STATUS_BAD_REQUEST, "INVALID_ARGUMENT",
                                "The JSON body nests too deeply.");
      return;
    }

  if (is_admin)
    {
      g_autoptr(GHashTable) query = NULL;

      if (g_strcmp0 (exchange->user_id, ADMIN_TOKEN_NAME) != 0)
        {
          gk_gateway_respond_error (exchange, SOUP_STATUS_FORBIDDEN, "PERMISSION_DENIED",
                                    "The admin API needs the token named \"admin\".");
          return;
        }
      if (exchange->query != NULL)
        query = g_uri_parse_params (exchange->query, -1, "&", G_URI_PARAMS_WWW_FORM, NULL);
      /* The admin API acts for its token, in the audit log. */
      gk_audit_push_actor (exchange->user_id);
      gk_gateway_admin_handle (self->key_store, self->pool, exchange, path + strlen (ADMIN_PREFIX),
                               query, body != NULL && body->len > 0 ? body : NULL);
      gk_audit_pop_actor ();
      return;
    }

  if (g_str_has_prefix (path, "/v1beta/") || g_str_has_prefix (path, "/v1/") ||
      g_str_has_prefix (path, "/upload/v1beta/"))
    {
      proxy (exchange);
      return;
    }

  gk_gateway_respond_error (exchange, SOUP_STATUS_NOT_FOUND, "NOT_FOUND",
                            "Not found: the gateway serves /v1beta/, /v1/ and /admin/gemini-keys/.");
}

/* ---- The gateway thread ------------------------------------------------- */

static DaemonSource *
daemon_source_new (GkGateway                *self,
                   const struct sockaddr    *address,
                   GError                  **error)
{
  DaemonSource *source = (DaemonSource *) g_source_new (&daemon_source_funcs, sizeof (DaemonSource));
  const union MHD_DaemonInfo *info;

  source->gateway = self;
  /* No thread of its own: the gateway's main loop drives it. Strict with
   * clients; a backlog of LISTEN_BACKLOG, so that a burst of clients is
   * served (or refused with 503 past the in-flight cap) rather than left
   * to SYN retries. */
  source->daemon = MHD_start_daemon (MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
                                     access_cb, source,
                                     MHD_OPTION_SOCK_ADDR, address,
                                     MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int) LISTEN_BACKLOG,
                                     MHD_OPTION_CONNECTION_LIMIT, (unsigned int) MAX_CONNECTIONS,
                                     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) CONNECTION_MEMORY,
                                     MHD_OPTION_CONNECTION_TIMEOUT,
                                     (unsigned int) ((self->idle_timeout_ms + 999) / 1000),
                                     MHD_OPTION_STRICT_FOR_CLIENT, (int) 1,
                                     MHD_OPTION_URI_LOG_CALLBACK, request_line_cb, source,
                                     MHD_OPTION_NOTIFY_COMPLETED, request_completed_cb, source,
                                     MHD_OPTION_NOTIFY_CONNECTION, connection_cb, source,
                                     MHD_OPTION_END);
  if (source->daemon == NULL)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "%s", g_strerror (errno));
      g_source_unref ((GSource *) source);
      return NULL;
    }
  info = MHD_get_daemon_info (source->daemon, MHD_DAEMON_INFO_EPOLL_FD);
  source->tag = g_source_add_unix_fd ((GSource *) source, info->epoll_fd, G_IO_IN);
  /* GLib takes the descriptors of a source that cannot recurse out of the
   * poll for each dispatch and puts them back after, each time with a
   * wakeup write and another main loop iteration; nothing here iterates
   * the context from within a dispatch. */
  g_source_set_can_recurse ((GSource *) source, TRUE);
  g_source_set_name ((GSource *) source, "gk-gateway-http");
  g_source_attach ((GSource *) source, self->context);
  return source;
}

static void
daemon_source_free (DaemonSource *source)
{
  MHD_stop_daemon (source->daemon);
  g_source_destroy ((GSource *) source);
  g_source_unref ((GSource *) source);
}

static guint
daemon_port (DaemonSource *source)
{
  return MHD_get_daemon_info (source->daemon, MHD_DAEMON_INFO_BIND_PORT)->port;
}

static gboolean
listen_loopback (GkGateway  *self,
                 GError    **error)
{
  const char *address = self->start_address;
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GInetAddress) inet = NULL;
  g_autoptr(GSocketAddress) socket_address = NULL;
  struct sockaddr_storage native;

  if (address == NULL || g_ascii_strcasecmp (address, "localhost") == 0)
    {
      struct sockaddr_in ipv4 = { .sin_family = AF_INET, .sin_port = htons (self->start_port) };
      struct sockaddr_in6 ipv6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };

      ipv4.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
      self->daemons[0] = daemon_source_new (self, (struct sockaddr *) &ipv4, &local_error);
      if (self->daemons[0] == NULL)
        {
          g_set_error (error, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_ADDRESS,
                       "Cannot listen on port %u: %s", self->start_port, local_error->message);
          return FALSE;
        }
      /* ::1 too when the machine has IPv6, on the same port; without it,
       * IPv4 alone. */
      ipv6.sin6_port = htons (daemon_port (self->daemons[0]));
      self->daemons[1] = daemon_source_new (self, (struct sockaddr *) &ipv6, &local_error);
      if (self->daemons[1] == NULL)
        g_debug ("Not listening on [::1]:%u: %s", daemon_port (self->daemons[0]),
                 local_error->message);
      return TRUE;
    }

  inet = g_inet_address_new_from_string (address);
  if (inet != NULL)
    {
      socket_address = g_inet_socket_address_new (inet, (guint16) self->start_port);
      if (g_socket_address_to_native (socket_address, &native, sizeof native, &local_error))
        self->daemons[0] = daemon_source_new (self, (struct sockaddr *) &native, &local_error);
    }
  if (self->daemons[0] == NULL)
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
  gint64 give_up;

  if (self->write_source == NULL)
    return;
  /* Rows still queued are written (the requests they let go on may queue
   * more); what still finds no room is lost with the process, and said
   * so. */
  while (self->to_write->len > 0)
    write_rows_cb (self);
  /* Rows kept in memory are tried again for a while (other gateways
   * writing theirs may hold the database, or the server be restarting). */
  give_up = g_get_monotonic_time () + STOP_WRITE_TIMEOUT_US;
  while (self->held->len > 0 && !write_held (self, self->held)
         && g_get_monotonic_time () < give_up)
    g_usleep (HELD_RETRY_US);
  if (self->held->len > 0)
    g_warning ("The disk is still full or the database out of reach: %u usage rows kept in "
               "memory are lost", self->held->len);
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

  g_main_context_push_thread_default (self->context);

  self->hangup_epoll = epoll_create1 (EPOLL_CLOEXEC);
  self->hangup_source = g_unix_fd_source_new (self->hangup_epoll, G_IO_IN);
  g_source_set_callback (self->hangup_source, G_SOURCE_FUNC (hangup_cb), self, NULL);
  g_source_attach (self->hangup_source, self->context);
  self->sweep_source = g_timeout_source_new (HEAD_SWEEP_MS);
  g_source_set_callback (self->sweep_source, head_sweep_cb, self, NULL);
  g_source_attach (self->sweep_source, self->context);
  /* On a shared server, what other gateways change (a key cooling down,
   * rejected, added) reloads the pool's snapshot as soon as it is
   * notified. */
  self->watch_source = gk_database_watch_source_new (self->db);
  if (self->watch_source != NULL)
    g_source_attach (self->watch_source, self->context);

  self->upstream_client = gk_upstream_new (self->upstream, self->timeout_s,
                                           "gemini-keys-gateway/" PACKAGE_VERSION, &upstream_error);
  if (self->upstream_client == NULL)
    g_set_error (&error, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_UPSTREAM, "Invalid upstream “%s”: %s",
                 self->upstream, upstream_error->message);
  else if (listen_loopback (self, &error))
    {
      gk_upstream_set_dispatch_func (self->upstream_client, run_resumed_cb, self);
      self->port = daemon_port (self->daemons[0]);
      self->allowed_hosts = g_new0 (char *, 4);
      self->allowed_hosts[0] = g_strdup_printf ("127.0.0.1:%u", self->port);
      self->allowed_hosts[1] = g_strdup_printf ("localhost:%u", self->port);
      self->allowed_hosts[2] = g_strdup_printf ("[::1]:%u", self->port);

      self->loop = g_main_loop_new (self->context, FALSE);
      usage_rows_start (self);
      gk_pool_set_change_check_age (self->pool, POOL_CHANGE_CHECK_AGE_US);
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

      /* Stop: refuse new clients and requests, cancel what is in flight
       * and let the requests unwind (they write their usage rows) before
       * freeing. */
      self->stopping = TRUE;
      for (guint i = 0; i < G_N_ELEMENTS (self->daemons); i++)
        if (self->daemons[i] != NULL)
          {
            MHD_socket listener = MHD_quiesce_daemon (self->daemons[i]->daemon);

            if (listener != MHD_INVALID_SOCKET)
              close (listener);
          }
      /* Cancelling runs no request's callback: the list stays as it is. */
      for (GList *l = self->requests.head; l != NULL; l = l->next)
        request_cancel (l->data);
      deadline = g_get_monotonic_time () + STOP_DRAIN_TIMEOUT_US;
      while (self->in_flight > 0 && g_get_monotonic_time () < deadline)
        g_main_context_iteration (self->context, FALSE);
      /* Rows still queued are written before the database is let go. */
      usage_rows_stop (self);
      gk_pool_set_change_check_age (self->pool, 0);
      while (g_main_context_iteration (self->context, FALSE))
        ;
    }

  /* Requests still waiting lose their client. */
  for (GList *l = self->requests.head; l != NULL; l = l->next)
    {
      Request *request = l->data;

      if (request->exchange != NULL)
        {
          GkExchange *exchange = request->exchange;

          request_detach (request);
          exchange->abandoned = TRUE;
          exchange_wake (exchange);
        }
    }
  for (guint i = 0; i < G_N_ELEMENTS (self->daemons); i++)
    g_clear_pointer (&self->daemons[i], daemon_source_free);
  g_clear_pointer (&self->upstream_client, gk_upstream_free);
  g_clear_pointer (&self->loop, g_main_loop_unref);
  g_clear_pointer (&self->allowed_hosts, g_strfreev);
  g_source_destroy (self->sweep_source);
  g_clear_pointer (&self->sweep_source, g_source_unref);
  if (self->watch_source != NULL)
    g_source_destroy (self->watch_source);
  g_clear_pointer (&self->watch_source, g_source_unref);
  g_source_destroy (self->hangup_source);
  g_clear_pointer (&self->hangup_source, g_source_unref);
  close (self->hangup_epoll);
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
  self->outage_rows = GK_GATEWAY_DEFAULT_OUTAGE_ROWS;
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
gk_gateway_set_outage_rows (GkGateway *self,
                            guint      rows)
{
  g_return_if_fail (GK_IS_GATEWAY (self));
  self->outage_rows = MAX (rows, 1);
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
  self->stopping = FALSE;
  g_clear_error (&self->start_error);
  self->context = g_main_context_new ();
#ifdef __GLIBC__
  mallopt (M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD);
#endif
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
