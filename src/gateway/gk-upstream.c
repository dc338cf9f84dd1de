/* gk-upstream.c: the gateway's HTTP/1.1 client for its one upstream.
 *
 * I/O is non-blocking on the connection's pollable streams: a call writes
 * its head and body with one writev, then waits for the socket to become
 * readable. One GSource per wait, no GTask per read: this is what makes the
 * client cheap next to a SoupSession.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#define G_LOG_DOMAIN "gk-gateway"
#define _GNU_SOURCE
#include "config.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "gk-upstream.h"

#define IDLE_MAX           64
/* Below the idle timeouts of common servers (Google's is a few minutes),
 * so that a pooled connection is rarely one the upstream just dropped. */
#define IDLE_TIMEOUT_US    (50 * G_USEC_PER_SEC)
#define READ_SIZE          (64 * 1024)
#define HEAD_LIMIT         (64 * 1024)
#define CHUNK_LINE_LIMIT   4096
#define READ_AHEAD_LIMIT   (1024 * 1024)

typedef struct _GkUpstreamCall GkUpstreamCallPriv;

typedef struct
{
  GIOStream             *stream;
  GSocket               *socket;    /* not owned */
  GPollableInputStream  *in;        /* not owned */
  GPollableOutputStream *out;       /* not owned */
  gint64                 idle_since;
  GkUpstream            *upstream;  /* not owned: a pooled Conn dies with it */
  GkUpstreamCallPriv    *call;      /* the call using it; NULL while pooled */
  /* Plain connections: one readability watch for the connection's life.
   * A GSource per wait would cost four wakeup writes per request (GLib
   * signals its wakeup fd whenever a poll fd is added or removed, and
   * blocks a source's fds while it dispatches). */
  GSource               *watch;
  gpointer               watch_tag;
  GIOCondition           watch_events;
} Conn;

struct _GkUpstream
{
  gint                ref_count;
  GSocketClient      *client;
  GSocketConnectable *connectable;
  char               *host_header;
  char               *base_path;
  char               *user_agent;
  guint               timeout_s;
  gboolean            tls;
  gboolean            closed;
  GQueue              idle;         /* Conn *, most recent last */
  guint               connects;
  GPtrArray          *spare;        /* read buffers of finished calls */
  GQueue              waiting;      /* calls with a plain connection */
  GSource            *sweep;        /* expires their deadlines */
};

typedef enum
{
  BODY_NONE,
  BODY_LENGTH,
  BODY_CHUNKED,
  BODY_EOF,
} BodyMode;

typedef enum
{
  CHUNK_SIZE,
  CHUNK_DATA,
  CHUNK_DATA_END,
  CHUNK_TRAILER,
} ChunkState;

typedef enum
{
  STATE_NEW,
  STATE_CONNECTING,
  STATE_WRITING,
  STATE_HEAD,
  STATE_BODY,
  STATE_DONE,
  STATE_FAILED,
} CallState;

struct _GkUpstreamCall
{
  gint                 ref_count;
  gboolean             dead;        /* freed by its owner */
  GkUpstream          *upstream;
  gboolean             head_only;   /* HEAD: no body whatever the headers say */
  GString             *head;
  GBytes              *body;
  Conn                *conn;
  gboolean             reused;
  gboolean             retried;
  CallState            state;

  GCancellable        *cancellable;
  GkUpstreamHeadFunc   head_cb;
  GkUpstreamReadFunc   read_cb;
  gpointer             user_data;
  GSource             *source;      /* the wait in progress */
  GError              *pending_error;
  gint64               deadline;    /* of the wait in progress; 0 = none */
  GList               *waiting_link;
  GSource             *cancel_source;
  gboolean             body_eof;    /* read ahead of a read request */
  GError              *body_error;

  gsize                written;
  GByteArray          *in;
  gsize                in_pos;      /* consumed bytes of @in */
  gboolean             got_bytes;   /* any byte of the response arrived */

  guint                status;
  SoupMessageHeaders  *response_headers;
  BodyMode             mode;
  guint64              remaining;   /* LENGTH: body left; CHUNKED: chunk left */
  ChunkState           chunk_state;
  gboolean             keep_alive;
};

/* ---- Connections -------------------------------------------------------- */

static void
conn_free (Conn *conn)
{
  if (conn == NULL)
    return;
  if (conn->watch != NULL)
    {
      g_source_destroy (conn->watch);
      g_source_unref (conn->watch);
    }
  g_io_stream_close (conn->stream, NULL, NULL);
  g_object_unref (conn->stream);
  g_free (conn);
}

static void conn_ready (Conn *conn);

static gboolean
watch_dispatch (GSource     *source,
                GSourceFunc  callback,
                gpointer     user_data)
{
  conn_ready (user_data);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs watch_funcs = {
  .dispatch = watch_dispatch,
};

/* Watches for readability (G_IO_IN) or nothing (0). */
static void
conn_watch_set (Conn         *conn,
                GIOCondition  events)
{
  if (conn->watch == NULL || conn->watch_events == events)
    return;
  conn->watch_events = events;
  g_source_modify_unix_fd (conn->watch, conn->watch_tag, events);
}

static Conn *
conn_new (GkUpstream        *upstream,
          GSocketConnection *connection)
{
  Conn *conn = g_new0 (Conn, 1);

  conn->stream = G_IO_STREAM (connection);
  conn->socket = g_socket_connection_get_socket (connection);
  conn->in = G_POLLABLE_INPUT_STREAM (g_io_stream_get_input_stream (conn->stream));
  conn->out = G_POLLABLE_OUTPUT_STREAM (g_io_stream_get_output_stream (conn->stream));
  conn->upstream = upstream;
  if (!upstream->tls)
    {
      /* TLS may hold decrypted bytes the socket no longer shows: those
       * connections wait with the TLS streams' own sources instead. */
      conn->watch = g_source_new (&watch_funcs, sizeof (GSource));
      g_source_set_name (conn->watch, "gk-upstream-connection");
      g_source_set_can_recurse (conn->watch, TRUE);
      g_source_set_callback (conn->watch, NULL, conn, NULL);
      conn->watch_events = G_IO_IN;
      conn->watch_tag = g_source_add_unix_fd (conn->watch, g_socket_get_fd (conn->socket), G_IO_IN);
      g_source_attach (conn->watch, g_main_context_get_thread_default ());
    }
  return conn;
}

/* A pooled connection that is still worth a request. */
static gboolean
conn_usable (GkUpstream *self,
             Conn       *conn,
             gint64      now)
{
  if (now - conn->idle_since > IDLE_TIMEOUT_US)
    return FALSE;
  if (g_socket_is_closed (conn->socket))
    return FALSE;
  /* A plain connection's watch drops it from the pool as soon as the
   * upstream closes it (between two answers there is nothing to read). A
   * TLS 1.3 server may send a session ticket at any time, so over TLS the
   * retry on a stale connection is what catches a close. Both miss a close
   * that is not dispatched yet, and the retry catches that too. */
  return TRUE;
}

/* ---- GkUpstream --------------------------------------------------------- */

GkUpstream *
gk_upstream_new (const char  *base_url,
                 guint        timeout_s,
                 const char  *user_agent,
                 GError     **error)
{
  g_autoptr(GUri) uri = NULL;
  GkUpstream *self;
  const char *scheme;
  const char *host;
  const char *path;
  int port;
  gboolean tls;

  uri = g_uri_parse (base_url, G_URI_FLAGS_NONE, error);
  if (uri == NULL)
    return NULL;
  scheme = g_uri_get_scheme (uri);
  host = g_uri_get_host (uri);
  if (g_ascii_strcasecmp (scheme, "http") == 0)
    tls = FALSE;
  else if (g_ascii_strcasecmp (scheme, "https") == 0)
    tls = TRUE;
  else
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   "The upstream must be an http:// or https:// URL");
      return NULL;
    }
  if (host == NULL || *host == '\0')
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "The upstream URL has no host");
      return NULL;
    }

  self = g_new0 (GkUpstream, 1);
  self->ref_count = 1;
  self->tls = tls;
  self->timeout_s = timeout_s;
  port = g_uri_get_port (uri);
  if (port <= 0)
    port = tls ? 443 : 80;
  /* An address needs no resolver round trip on each connect. */
  if (g_hostname_is_ip_address (host))
    self->connectable = G_SOCKET_CONNECTABLE (g_inet_socket_address_new_from_string (host, port));
  else
    self->connectable = g_network_address_new (host, (guint16) port);
  if (strchr (host, ':') != NULL)
    self->host_header = port == (tls ? 443 : 80) ? g_strdup_printf ("[%s]", host)
                                                 : g_strdup_printf ("[%s]:%d", host, port);
  else
    self->host_header = port == (tls ? 443 : 80) ? g_strdup (host)
                                                 : g_strdup_printf ("%s:%d", host, port);
  path = g_uri_get_path (uri);
  self->base_path = g_strdup (path ? path : "");
  while (g_str_has_suffix (self->base_path, "/"))
    self->base_path[strlen (self->base_path) - 1] = '\0';
  self->user_agent = g_strdup (user_agent);

  self->client = g_socket_client_new ();
  g_socket_client_set_timeout (self->client, timeout_s);
  g_socket_client_set_tls (self->client, tls);
  g_queue_init (&self->idle);
  self->spare = g_ptr_array_new_with_free_func ((GDestroyNotify) g_byte_array_unref);
  return self;
}

static GkUpstream *
upstream_ref (GkUpstream *self)
{
  g_atomic_int_inc (&self->ref_count);
  return self;
}

static void
upstream_close_idle (GkUpstream *self)
{
  Conn *conn;

  while ((conn = g_queue_pop_head (&self->idle)) != NULL)
    conn_free (conn);
}

static void
upstream_unref (GkUpstream *self)
{
  if (!g_atomic_int_dec_and_test (&self->ref_count))
    return;
  upstream_close_idle (self);
  if (self->sweep != NULL)
    {
      g_source_destroy (self->sweep);
      g_clear_pointer (&self->sweep, g_source_unref);
    }
  g_clear_object (&self->client);
  g_clear_object (&self->connectable);
  g_clear_pointer (&self->spare, g_ptr_array_unref);
  g_free (self->host_header);
  g_free (self->base_path);
  g_free (self->user_agent);
  g_free (self);
}

void
gk_upstream_free (GkUpstream *self)
{
  if (self == NULL)
    return;
  self->closed = TRUE;
  upstream_close_idle (self);
  upstream_unref (self);
}

guint
gk_upstream_get_idle_count (GkUpstream *self)
{
  return self->idle.length;
}

guint
gk_upstream_get_connect_count (GkUpstream *self)
{
  return self->connects;
}

static Conn *
upstream_take_idle (GkUpstream *self)
{
  gint64 now = g_get_monotonic_time ();
  Conn *conn;

  /* The most recently used first: the least likely to have timed out. */
  while ((conn = g_queue_pop_tail (&self->idle)) != NULL)
    {
      if (conn_usable (self, conn, now))
        return conn;
      conn_free (conn);
    }
  return NULL;
}

static void
upstream_put_idle (GkUpstream *self,
                   Conn       *conn)
{
  if (self->closed || self->idle.length >= IDLE_MAX)
    {
      conn_free (conn);
      return;
    }
  conn->idle_since = g_get_monotonic_time ();
  conn->call = NULL;
  conn_watch_set (conn, G_IO_IN);
  g_queue_push_tail (&self->idle, conn);
}

/* ---- Calls -------------------------------------------------------------- */

static GkUpstreamCall *
call_ref (GkUpstreamCall *call)
{
  call->ref_count++;
  return call;
}

static void
call_clear_source (GkUpstreamCall *call)
{
  if (call->source != NULL)
    {
      g_source_destroy (call->source);
      g_clear_pointer (&call->source, g_source_unref);
    }
}

static void
call_unref (GkUpstreamCall *call)
{
  if (--call->ref_count > 0)
    return;
  call_clear_source (call);
  if (call->waiting_link != NULL)
    g_queue_delete_link (&call->upstream->waiting, call->waiting_link);
  if (call->cancel_source != NULL)
    {
      g_source_destroy (call->cancel_source);
      g_clear_pointer (&call->cancel_source, g_source_unref);
    }
  if (call->conn != NULL)
    {
      /* Back to the pool only when this response was read to its end and
       * nothing followed it. */
      if (call->state == STATE_DONE && call->keep_alive && call->in_pos == call->in->len)
        upstream_put_idle (call->upstream, g_steal_pointer (&call->conn));
      else
        g_clear_pointer (&call->conn, conn_free);
    }
  /* The head may hold a key. */
  memset (call->head->str, 0, call->head->len);
  g_string_free (call->head, TRUE);
  g_clear_pointer (&call->body, g_bytes_unref);
  /* Read buffers are reused: a 64 KiB allocation per request shows. */
  if (call->in != NULL && call->upstream->spare->len < IDLE_MAX && call->in->len <= 2 * READ_SIZE)
    g_ptr_array_add (call->upstream->spare, g_steal_pointer (&call->in));
  g_clear_pointer (&call->in, g_byte_array_unref);
  g_clear_pointer (&call->response_headers, soup_message_headers_unref);
  g_clear_error (&call->pending_error);
  g_clear_error (&call->body_error);
  g_clear_object (&call->cancellable);
  upstream_unref (call->upstream);
  g_free (call);
}

GkUpstreamCall *
gk_upstream_call_new (GkUpstream *upstream,
                      const char *method,
                      const char *path_and_query)
{
  GkUpstreamCall *call = g_new0 (GkUpstreamCall, 1);

  call->ref_count = 1;
  call->upstream = upstream_ref (upstream);
  call->head_only = g_ascii_strcasecmp (method, "HEAD") == 0;
  call->head = g_string_sized_new (512);
  g_string_append_printf (call->head, "%s %s%s HTTP/1.1\r\nHost: %s\r\n", method,
                          upstream->base_path, path_and_query, upstream->host_header);
  if (upstream->user_agent != NULL)
    g_string_append_printf (call->head, "User-Agent: %s\r\n", upstream->user_agent);
  if (g_ascii_strcasecmp (method, "POST") == 0 || g_ascii_strcasecmp (method, "PUT") == 0 ||
      g_ascii_strcasecmp (method, "PATCH") == 0)
    call->body = g_bytes_new_static ("", 0);
  if (upstream->spare->len > 0)
    {
      call->in = g_ptr_array_steal_index_fast (upstream->spare, upstream->spare->len - 1);
      g_byte_array_set_size (call->in, 0);
    }
  else
    call->in = g_byte_array_sized_new (READ_SIZE);
  return call;
}

static gboolean
header_text_ok (const char *text)
{
  return strpbrk (text, "\r\n") == NULL;
}

void
gk_upstream_call_add_header (GkUpstreamCall *call,
                             const char     *name,
                             const char     *value)
{
  g_return_if_fail (call->state == STATE_NEW);

  if (*name == '\0' || !header_text_ok (name) || strchr (name, ':') != NULL ||
      !header_text_ok (value))
    return;
  g_string_append (call->head, name);
  g_string_append (call->head, ": ");
  g_string_append (call->head, value);
  g_string_append (call->head, "\r\n");
}

void
gk_upstream_call_set_body (GkUpstreamCall *call,
                           const char     *content_type,
                           GBytes         *body)
{
  g_return_if_fail (call->state == STATE_NEW);

  g_clear_pointer (&call->body, g_bytes_unref);
  call->body = body ? g_bytes_ref (body) : g_bytes_new_static ("", 0);
  if (content_type != NULL && g_bytes_get_size (call->body) > 0)
    gk_upstream_call_add_header (call, "Content-Type", content_type);
}

guint
gk_upstream_call_get_status (GkUpstreamCall *call)
{
  return call->status;
}

SoupMessageHeaders *
gk_upstream_call_get_response_headers (GkUpstreamCall *call)
{
  return call->response_headers;
}

gboolean
gk_upstream_call_get_reused (GkUpstreamCall *call)
{
  return call->reused;
}

void
gk_upstream_call_free (GkUpstreamCall *call)
{
  if (call == NULL)
    return;
  call->dead = TRUE;
  call_clear_source (call);
  call_unref (call);
}

/* ---- Sending ------------------------------------------------------------ */

static void call_connect     (GkUpstreamCall *call);
static void call_write       (GkUpstreamCall *call);
static void call_wait_head   (GkUpstreamCall *call);
static gboolean head_ready_cb (GObject  *stream,
                               gpointer  user_data);

static void
call_head_done (GkUpstreamCall *call,
                GError         *error)
{
  GkUpstreamHeadFunc cb = call->head_cb;

  call->head_cb = NULL;
  call->deadline = 0;
  if (error != NULL)
    call->state = STATE_FAILED;
  if (cb != NULL && !call->dead)
    cb (call, error, call->user_data);
}


static gboolean
head_error_later_cb (gpointer data)
{
  GkUpstreamCall *call = data;
  GError *error = g_steal_pointer (&call->pending_error);

  g_clear_pointer (&call->source, g_source_unref);
  call_ref (call);
  call_head_done (call, error);
  g_error_free (error);
  call_unref (call);
  return G_SOURCE_REMOVE;
}

/* Reports a failure from the main loop: gk_upstream_call_send() never calls
 * back from within itself. Takes @error. */
static void
call_head_error_later (GkUpstreamCall *call,
                       GError         *error)
{
  call_clear_source (call);
  g_clear_error (&call->pending_error);
  call->pending_error = error;
  call->state = STATE_FAILED;
  call->source = g_idle_source_new ();
  g_source_set_callback (call->source, head_error_later_cb, call, NULL);
  g_source_attach (call->source, g_main_context_get_thread_default ());
}

/* The request failed before its answer began. Takes @error. */
static void
call_head_failed (GkUpstreamCall *call,
                  GError         *error)
{
  g_clear_pointer (&call->conn, conn_free);
  /* A pooled connection the upstream closed while it was idle fails at the
   * first write or read: once, the request gets a fresh connection. Never
   * after a byte of the answer came: the upstream may have acted on it. */
  if (call->reused && !call->retried && !call->got_bytes && !call->upstream->closed &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    {
      g_error_free (error);
      call_clear_source (call);
      call->retried = TRUE;
      call->reused = FALSE;
      call->written = 0;
      call->deadline = 0;
      g_byte_array_set_size (call->in, 0);
      call->in_pos = 0;
      call_connect (call);
      return;
    }
  call_head_error_later (call, error);
}

static void
connect_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  GkUpstreamCall *call = user_data;
  GError *error = NULL;
  GSocketConnection *connection;

  connection = g_socket_client_connect_finish (G_SOCKET_CLIENT (source), result, &error);
  if (call->dead || call->state != STATE_CONNECTING)
    {
      if (connection != NULL)
        {
          g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
          g_object_unref (connection);
        }
      g_clear_error (&error);
      call_unref (call);
      return;
    }
  if (connection == NULL)
    {
      call_head_failed (call, error);
      call_unref (call);
      return;
    }
  call->upstream->connects++;
  /* The head and body leave in one write; what follows is a wait for the
   * answer, which Nagle's algorithm would only delay. */
  g_socket_set_option (g_socket_connection_get_socket (connection), IPPROTO_TCP, TCP_NODELAY, 1,
                       NULL);
  call->conn = conn_new (call->upstream, connection);
  call->conn->call = call;
  call_write (call);
  call_unref (call);
}

static void
call_connect (GkUpstreamCall *call)
{
  call->state = STATE_CONNECTING;
  g_socket_client_connect_async (call->upstream->client, call->upstream->connectable,
                                 call->cancellable, connect_cb, call_ref (call));
}

static void call_fail_waiting (GkUpstreamCall *call,
                               GError         *error);

static gboolean
sweep_cb (gpointer data)
{
  GkUpstream *self = data;
  gint64 now = g_get_monotonic_time ();
  GList *expired = NULL;
  gboolean keep;

  upstream_ref (self);
  for (GList *l = self->waiting.head; l != NULL; l = l->next)
    {
      GkUpstreamCall *call = l->data;

      if (call->deadline > 0 && now >= call->deadline)
        expired = g_list_prepend (expired, call_ref (call));
    }
  for (GList *l = expired; l != NULL; l = l->next)
    {
      GkUpstreamCall *call = l->data;

      if (!call->dead && call->deadline > 0)
        call_fail_waiting (call, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                                      "Socket I/O timed out"));
      call_unref (call);
    }
  g_list_free (expired);
  keep = self->waiting.length > 0 && self->sweep != NULL;
  if (!keep)
    g_clear_pointer (&self->sweep, g_source_unref);
  upstream_unref (self);
  return keep ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* Plain connections have no source per wait: the deadlines of their calls
 * are checked by one timer, a tenth of the timeout apart. */
static void
call_watch_deadline (GkUpstreamCall *call)
{
  GkUpstream *self = call->upstream;

  if (call->waiting_link == NULL)
    {
      g_queue_push_tail (&self->waiting, call);
      call->waiting_link = self->waiting.tail;
    }
  if (self->sweep == NULL)
    {
      self->sweep = g_timeout_source_new (CLAMP (self->timeout_s * 100, 50, 1000));
      g_source_set_name (self->sweep, "gk-upstream-deadlines");
      g_source_set_callback (self->sweep, sweep_cb, self, NULL);
      g_source_attach (self->sweep, g_main_context_get_thread_default ());
    }
}

/* Waits until the connection can be read (@input) or written. */
static void
call_wait (GkUpstreamCall *call,
           gboolean        input,
           GSourceFunc     callback)
{
  GSource *source;

  call_clear_source (call);
  if (call->deadline == 0 && call->upstream->timeout_s > 0)
    call->deadline = g_get_monotonic_time () + (gint64) call->upstream->timeout_s * G_USEC_PER_SEC;

  if (call->conn->watch != NULL)
    {
      if (call->deadline > 0)
        call_watch_deadline (call);
      if (input)
        {
          /* The connection's watch calls conn_ready(). */
          conn_watch_set (call->conn, G_IO_IN);
          return;
        }
      /* A write that would block is rare (a large body): a source of its
       * own, and no read until it is done. */
      conn_watch_set (call->conn, 0);
    }

  source = input ? g_pollable_input_stream_create_source (call->conn->in, call->cancellable)
                 : g_pollable_output_stream_create_source (call->conn->out, call->cancellable);
  /* A plain socket's source has the socket timeout of the GSocketClient
   * built in; a TLS source gets the deadline here. */
  if (call->upstream->tls && call->deadline > 0)
    g_source_set_ready_time (source, call->deadline);
  g_source_set_can_recurse (source, TRUE);
  g_source_set_callback (source, callback, call, NULL);
  g_source_attach (source, g_main_context_get_thread_default ());
  call->source = source;
}

/* After a would-block: TRUE (and @error set) when the deadline passed. */
static gboolean
call_timed_out (GkUpstreamCall  *call,
                GError         **error)
{
  if (call->deadline > 0 && g_get_monotonic_time () >= call->deadline)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "Socket I/O timed out");
      return TRUE;
    }
  return FALSE;
}

static gboolean
write_ready_cb (GObject  *stream,
                gpointer  user_data)
{
  GkUpstreamCall *call = user_data;

  g_clear_pointer (&call->source, g_source_unref);
  call_write (call);
  return G_SOURCE_REMOVE;
}

static void
call_write (GkUpstreamCall *call)
{
  gsize head_len = call->head->len;
  gsize body_len = call->body ? g_bytes_get_size (call->body) : 0;
  const char *body = call->body ? g_bytes_get_data (call->body, NULL) : NULL;
  gsize total = head_len + body_len;

  call->state = STATE_WRITING;
  while (call->written < total)
    {
      GOutputVector vectors[2];
      gsize n = 0;
      gsize done = 0;
      GError *error = NULL;
      GPollableReturn ret;

      if (call->written < head_len)
        {
          vectors[n].buffer = call->head->str + call->written;
          vectors[n++].size = head_len - call->written;
          if (body_len > 0)
            {
              vectors[n].buffer = body;
              vectors[n++].size = body_len;
            }
        }
      else
        {
          vectors[n].buffer = body + (call->written - head_len);
          vectors[n++].size = total - call->written;
        }

      ret = g_pollable_output_stream_writev_nonblocking (call->conn->out, vectors, n, &done,
                                                         call->cancellable, &error);
      if (ret == G_POLLABLE_RETURN_WOULD_BLOCK)
        {
          if (call_timed_out (call, &error))
            call_head_failed (call, error);
          else
            call_wait (call, FALSE, G_SOURCE_FUNC (write_ready_cb));
          return;
        }
      if (ret != G_POLLABLE_RETURN_OK)
        {
          if (error == NULL)
            error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "Write failed");
          call_head_failed (call, error);
          return;
        }
      if (done > 0)
        call->deadline = 0;
      call->written += done;
    }

  call->state = STATE_HEAD;
  call_wait_head (call);
}

/* Reads what the connection has into @in: the count, 0 at the end, -1 on
 * an error (G_IO_ERROR_WOULD_BLOCK when nothing is there yet). */
static gssize
call_fill (GkUpstreamCall  *call,
           GError         **error)
{
  gsize old;
  gssize n;

  if (call->in_pos > 0)
    {
      g_byte_array_remove_range (call->in, 0, call->in_pos);
      call->in_pos = 0;
    }
  old = call->in->len;
  g_byte_array_set_size (call->in, old + READ_SIZE);
  n = g_pollable_input_stream_read_nonblocking (call->conn->in, call->in->data + old, READ_SIZE,
                                                call->cancellable, error);
  g_byte_array_set_size (call->in, old + MAX (n, 0));
  if (n > 0)
    {
      call->got_bytes = TRUE;
      call->deadline = 0;
    }
  return n;
}

static gboolean
call_parse_head (GkUpstreamCall  *call,
                 const char      *data,
                 gsize            len,
                 GError         **error)
{
  SoupHTTPVersion version;
  guint status;
  SoupMessageHeaders *headers;

  g_clear_pointer (&call->response_headers, soup_message_headers_unref);
  headers = call->response_headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_RESPONSE);
  if (!soup_headers_parse_response (data, (int) len, headers, &version, &status, NULL))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           "The upstream's answer is not HTTP");
      return FALSE;
    }
  call->status = status;
  if (version == SOUP_HTTP_1_1)
    call->keep_alive = !soup_message_headers_header_contains (headers, "Connection", "close");
  else
    call->keep_alive = soup_message_headers_header_contains (headers, "Connection", "keep-alive");

  if (call->head_only || status == 204 || status == 304 || (status >= 100 && status < 200))
    call->mode = BODY_NONE;
  else
    switch (soup_message_headers_get_encoding (headers))
      {
      case SOUP_ENCODING_NONE:
        call->mode = BODY_NONE;
        break;
      case SOUP_ENCODING_CONTENT_LENGTH:
        call->remaining = (guint64) soup_message_headers_get_content_length (headers);
        call->mode = call->remaining > 0 ? BODY_LENGTH : BODY_NONE;
        break;
      case SOUP_ENCODING_CHUNKED:
        call->mode = BODY_CHUNKED;
        call->chunk_state = CHUNK_SIZE;
        break;
      case SOUP_ENCODING_EOF:
        call->mode = BODY_EOF;
        call->keep_alive = FALSE;
        break;
      case SOUP_ENCODING_BYTERANGES:
      case SOUP_ENCODING_UNRECOGNIZED:
      default:
        g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                             "The upstream's answer has an unknown transfer encoding");
        return FALSE;
      }
  return TRUE;
}

static void
call_read_head (GkUpstreamCall *call)
{
  for (;;)
    {
      const char *data = (const char *) call->in->data + call->in_pos;
      gsize avail = call->in->len - call->in_pos;
      const char *end = avail >= 4 ? memmem (data, avail, "\r\n\r\n", 4) : NULL;
      GError *error = NULL;
      gssize n;

      if (end != NULL)
        {
          gsize head_len = end + 4 - data;

          if (!call_parse_head (call, data, head_len, &error))
            {
              call_head_failed (call, error);
              return;
            }
          call->in_pos += head_len;
          /* 100 Continue and other interim answers come before the real
           * one. */
          if (call->status >= 100 && call->status < 200 && call->status != 101)
            continue;
          call->state = call->mode == BODY_NONE ? STATE_DONE : STATE_BODY;
          call_head_done (call, NULL);
          return;
        }
      if (avail > HEAD_LIMIT)
        {
          call_head_failed (call, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                                                       "The upstream's answer head is too large"));
          return;
        }

      n = call_fill (call, &error);
      if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          g_clear_error (&error);
          if (call_timed_out (call, &error))
            call_head_failed (call, error);
          else
            call_wait (call, TRUE, G_SOURCE_FUNC (head_ready_cb));
          return;
        }
      if (n < 0)
        {
          call_head_failed (call, error);
          return;
        }
      if (n == 0)
        {
          call_head_failed (call, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                                                       "The upstream closed the connection before answering"));
          return;
        }
    }
}

static gboolean
head_ready_cb (GObject  *stream,
               gpointer  user_data)
{
  GkUpstreamCall *call = user_data;

  g_clear_pointer (&call->source, g_source_unref);
  call_read_head (call);
  return G_SOURCE_REMOVE;
}

static void
call_wait_head (GkUpstreamCall *call)
{
  /* Never a read right away: the answer cannot be there yet, and the head
   * callback must not run from within gk_upstream_call_send(). */
  call_wait (call, TRUE, G_SOURCE_FUNC (head_ready_cb));
}

static gboolean
call_cancelled_cb (GCancellable *cancellable,
                   gpointer      user_data)
{
  GkUpstreamCall *call = user_data;

  call_ref (call);
  g_clear_pointer (&call->cancel_source, g_source_unref);
  /* A connect in progress reports its own cancellation. */
  if (!call->dead && call->state != STATE_CONNECTING)
    {
      GError *error = NULL;

      g_cancellable_set_error_if_cancelled (cancellable, &error);
      call_fail_waiting (call, error);
    }
  call_unref (call);
  return G_SOURCE_REMOVE;
}

void
gk_upstream_call_send (GkUpstreamCall     *call,
                       GCancellable       *cancellable,
                       GkUpstreamHeadFunc  callback,
                       gpointer            user_data)
{
  g_return_if_fail (call->state == STATE_NEW);

  g_set_object (&call->cancellable, cancellable);
  call->head_cb = callback;
  call->user_data = user_data;
  if (cancellable != NULL)
    {
      /* Waits on a connection's watch do not see the cancellable. */
      call->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (call->cancel_source, G_SOURCE_FUNC (call_cancelled_cb), call, NULL);
      g_source_attach (call->cancel_source, g_main_context_get_thread_default ());
    }
  if (call->body != NULL)
    g_string_append_printf (call->head, "Content-Length: %" G_GSIZE_FORMAT "\r\n",
                            g_bytes_get_size (call->body));
  g_string_append (call->head, "\r\n");

  call->conn = upstream_take_idle (call->upstream);
  if (call->conn != NULL)
    {
      call->conn->call = call;
      call->reused = TRUE;
      call_write (call);
    }
  else
    call_connect (call);
}

/* ---- Reading the body --------------------------------------------------- */

static gboolean
chunk_line (const guint8 *data,
            gsize         avail,
            gsize        *line_len,
            gsize        *consumed)
{
  const guint8 *lf = memchr (data, '\n', avail);

  if (lf == NULL)
    return FALSE;
  *consumed = lf - data + 1;
  *line_len = lf - data;
  if (*line_len > 0 && data[*line_len - 1] == '\r')
    (*line_len)--;
  return TRUE;
}

/* Decodes what @in holds of the body into @out (NULL when nothing is
 * there yet). */
static gboolean
call_decode (GkUpstreamCall  *call,
             GBytes         **out,
             GError         **error)
{
  GByteArray *acc = NULL;

  *out = NULL;
  if (call->mode == BODY_LENGTH || call->mode == BODY_EOF)
    {
      gsize avail = call->in->len - call->in_pos;
      gsize n = call->mode == BODY_LENGTH ? MIN (avail, call->remaining) : avail;

      if (n == 0)
        return TRUE;
      *out = g_bytes_new (call->in->data + call->in_pos, n);
      call->in_pos += n;
      if (call->mode == BODY_LENGTH)
        {
          call->remaining -= n;
          if (call->remaining == 0)
            call->state = STATE_DONE;
        }
      return TRUE;
    }

  while (call->state == STATE_BODY)
    {
      const guint8 *data = call->in->data + call->in_pos;
      gsize avail = call->in->len - call->in_pos;
      gsize line_len, consumed, n;

      if (avail == 0)
        break;
      switch (call->chunk_state)
        {
        case CHUNK_SIZE:
          {
            char *endp = NULL;
            guint64 size;

            if (!chunk_line (data, avail, &line_len, &consumed))
              {
                if (avail > CHUNK_LINE_LIMIT)
                  goto bad_chunk;
                goto need_more;
              }
            size = g_ascii_strtoull ((const char *) data, &endp, 16);
            if (endp == (char *) data || (endp < (char *) data + line_len && *endp != ';' &&
                                          *endp != ' ' && *endp != '\t'))
              goto bad_chunk;
            call->in_pos += consumed;
            if (size == 0)
              call->chunk_state = CHUNK_TRAILER;
            else
              {
                call->remaining = size;
                call->chunk_state = CHUNK_DATA;
              }
          }
          break;

        case CHUNK_DATA:
          n = MIN (avail, call->remaining);
          if (acc == NULL)
            acc = g_byte_array_sized_new ((guint) n);
          g_byte_array_append (acc, data, (guint) n);
          call->in_pos += n;
          call->remaining -= n;
          if (call->remaining == 0)
            call->chunk_state = CHUNK_DATA_END;
          break;

        case CHUNK_DATA_END:
          if (!chunk_line (data, avail, &line_len, &consumed))
            {
              if (avail >= 2)
                goto bad_chunk;
              goto need_more;
            }
          if (line_len != 0)
            goto bad_chunk;
          call->in_pos += consumed;
          call->chunk_state = CHUNK_SIZE;
          break;

        case CHUNK_TRAILER:
        default:
          if (!chunk_line (data, avail, &line_len, &consumed))
            {
              if (avail > CHUNK_LINE_LIMIT)
                goto bad_chunk;
              goto need_more;
            }
          call->in_pos += consumed;
          if (line_len == 0)
            call->state = STATE_DONE;
          break;
        }
    }

need_more:
  if (acc != NULL)
    *out = g_byte_array_free_to_bytes (acc);
  return TRUE;

bad_chunk:
  if (acc != NULL)
    g_byte_array_unref (acc);
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "The upstream's chunked answer is malformed");
  return FALSE;
}

static void
call_read_done (GkUpstreamCall *call,
                GBytes         *chunk,
                GError         *error)
{
  GkUpstreamReadFunc cb = call->read_cb;

  call->read_cb = NULL;
  call->deadline = 0;
  if (error != NULL)
    {
      call->state = STATE_FAILED;
      g_clear_pointer (&call->conn, conn_free);
    }
  if (cb != NULL && !call->dead)
    cb (call, chunk, error, call->user_data);
}

static void call_read_body (GkUpstreamCall *call);

static gboolean
body_ready_cb (GObject  *stream,
               gpointer  user_data)
{
  GkUpstreamCall *call = user_data;

  g_clear_pointer (&call->source, g_source_unref);
  call_read_body (call);
  return G_SOURCE_REMOVE;
}

/* Each branch that calls back returns at once: the callback may free the
 * call or start the next read. */
static void
call_read_body (GkUpstreamCall *call)
{
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GBytes) out = NULL;
      gssize n;

      if (call->state == STATE_DONE)
        {
          call_read_done (call, NULL, NULL);
          return;
        }
      if (call->state != STATE_BODY)
        {
          g_set_error_literal (&error, G_IO_ERROR, G_IO_ERROR_FAILED, "No answer to read");
          call_read_done (call, NULL, error);
          return;
        }
      if (!call_decode (call, &out, &error))
        {
          call_read_done (call, NULL, error);
          return;
        }
      if (out != NULL)
        {
          call_read_done (call, out, NULL);
          return;
        }
      if (call->state == STATE_DONE)
        continue;

      if (call->body_error != NULL)
        {
          g_propagate_error (&error, g_steal_pointer (&call->body_error));
          call_read_done (call, NULL, error);
          return;
        }
      if (call->body_eof)
        n = 0;
      else
        n = call_fill (call, &error);
      if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          g_clear_error (&error);
          if (call_timed_out (call, &error))
            call_read_done (call, NULL, error);
          else
            call_wait (call, TRUE, G_SOURCE_FUNC (body_ready_cb));
          return;
        }
      if (n < 0)
        {
          call_read_done (call, NULL, error);
          return;
        }
      if (n == 0)
        {
          if (call->mode == BODY_EOF)
            {
              call->state = STATE_DONE;
              continue;
            }
          g_set_error_literal (&error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                               "The upstream closed the connection in the middle of the answer");
          call_read_done (call, NULL, error);
          return;
        }
    }
}

/* Ends the wait in progress with @error (taken): a deadline passed or the
 * call was cancelled. The caller holds a reference. */
static void
call_fail_waiting (GkUpstreamCall *call,
                   GError         *error)
{
  call->deadline = 0;
  if (call->head_cb != NULL && (call->state == STATE_WRITING || call->state == STATE_HEAD))
    {
      call_clear_source (call);
      call_head_failed (call, error);
      return;
    }
  if (call->read_cb != NULL && call->state == STATE_BODY)
    {
      call_clear_source (call);
      call_read_done (call, NULL, error);
      g_error_free (error);
      return;
    }
  if (call->state == STATE_BODY && call->body_error == NULL)
    {
      /* For the next read. */
      call->body_error = error;
      return;
    }
  g_error_free (error);
}

/* Bytes came while nobody asked for them: kept for the next read, up to a
 * limit, so that a level-triggered watch does not spin. */
static void
call_read_ahead (GkUpstreamCall *call)
{
  GError *error = NULL;
  gssize n = call_fill (call, &error);

  if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    {
      g_error_free (error);
      return;
    }
  if (n < 0)
    call->body_error = error;
  else if (n == 0)
    call->body_eof = TRUE;
  else if (call->in->len - call->in_pos < READ_AHEAD_LIMIT)
    return;
  conn_watch_set (call->conn, 0);
}

/* A plain connection's watch fired. */
static void
conn_ready (Conn *conn)
{
  GkUpstreamCall *call = conn->call;

  if (call == NULL)
    {
      /* Pooled: nothing should come between two answers, so the upstream
       * closed it (or misbehaves). */
      g_queue_remove (&conn->upstream->idle, conn);
      conn_free (conn);
      return;
    }

  switch (call->state)
    {
    case STATE_HEAD:
      call_read_head (call);
      return;

    case STATE_BODY:
      if (call->read_cb != NULL)
        call_read_body (call);
      else
        call_read_ahead (call);
      return;

    case STATE_WRITING:
      /* An answer (or a close) before the request is written: read once
       * the writing is done. */
      conn_watch_set (conn, 0);
      return;

    case STATE_DONE:
    case STATE_FAILED:
    case STATE_NEW:
    case STATE_CONNECTING:
    default:
      /* Bytes or a close after the answer: the connection cannot carry
       * another request. */
      call->conn = NULL;
      conn_free (conn);
      return;
    }
}

void
gk_upstream_call_read (GkUpstreamCall     *call,
                       GCancellable       *cancellable,
                       GkUpstreamReadFunc  callback,
                       gpointer            user_data)
{
  if (cancellable != NULL)
    g_set_object (&call->cancellable, cancellable);
  call->read_cb = callback;
  call->user_data = user_data;
  call_read_body (call);
}
