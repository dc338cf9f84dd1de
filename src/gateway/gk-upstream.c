/* gk-upstream.c: the gateway's HTTP client for its one upstream (libcurl).
 *
 * libcurl's multi interface, driven by the GLib main loop the way ostree's
 * fetcher does it (curl_multi_socket_action with a socket and a timer
 * callback), with two differences made for speed: one GSource carries
 * libcurl's timer and one epoll set of its own that holds every socket, so
 * that a request costs no GSource creation, and a pooled connection's
 * socket stays in that set while it waits for its next call (see
 * socket_cb()).
 *
 * libcurl's callbacks only record what happened (head lines, body pieces,
 * the end); the caller's callbacks run afterwards, from the source's
 * dispatch, outside libcurl, where a call may be freed or a new one sent.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#define G_LOG_DOMAIN "gk-gateway"
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <glib-unix.h>
#include <openssl/x509_vfy.h>

#include "gk-upstream.h"

/* Connections kept by libcurl once their call ended. */
#define POOL_MAX           64
/* Body read ahead of the reader before the transfer pauses. */
#define READ_AHEAD_LIMIT   (256 * 1024)
#define SYNC_BODY_LIMIT    (1024 * 1024)
#define ERROR_TEXT_MAX     200
/* Response header lines up to this long are split on the stack. */
#define HEADER_LINE_ON_STACK 512

/* A socket in the epoll set. */
typedef struct
{
  curl_socket_t fd;
  guint32       events;     /* as registered; 0 = not in the set */
  gboolean      ours;       /* opened by open_socket_cb, closed by close_socket_cb */
  gboolean      in_use;     /* libcurl watches it (between its add and its remove) */
} Sock;

typedef struct
{
  GSource     source;
  GkUpstream *upstream;
} MultiSource;

struct _GkUpstream
{
  CURLM        *multi;
  GSource      *source;        /* @epoll_fd and libcurl's timer */
  gint64        timer_due;     /* libcurl's timer (monotonic µs), -1 when unset */
  GSource      *sweep;         /* the calls' own timeouts */
  int           epoll_fd;      /* libcurl's sockets */
  gpointer      epoll_tag;
  GHashTable   *sockets;       /* fd → Sock * */
  char         *base_url;      /* scheme://host[:port][/path], no trailing '/' */
  char         *user_agent;
  char         *ca_file;
  guint         timeout_s;
  gboolean      tls;
  GQueue        ready;         /* GkUpstreamCall *: callbacks to run */
  GSourceFunc   dispatch_func; /* gk_upstream_set_dispatch_func() */
  gpointer      dispatch_data;
  GQueue        active;        /* GkUpstreamCall *: sent, not finished */
  GPtrArray    *spare;         /* CURL * of freed calls */
  guint         connects;
  guint         open_sockets;
};

struct _GkUpstreamCall
{
  GkUpstream          *upstream;
  CURL                *easy;
  char                *method;
  char                *url;
  struct curl_slist   *headers;
  gboolean             has_accept;
  GBytes              *body;
  gboolean             in_multi;
  gboolean             reused;
  char                 errbuf[CURL_ERROR_SIZE];

  GCancellable        *cancellable;
  gulong               cancelled_id;
  GkUpstreamHeadFunc   head_cb;
  GkUpstreamReadFunc   read_cb;
  gpointer             user_data;

  GList                ready_link;
  gboolean             queued;
  GList                active_link;

  gint64               deadline;      /* overall; 0 = none */
  gint64               wait_deadline; /* first byte / idle; 0 = none */

  /* The head. */
  guint                status;
  guint                http_version;
  SoupMessageHeaders  *response_headers;
  gsize                head_bytes;
  guint                header_count;
  gint64               content_length; /* -1: none */
  gboolean             chunked;
  gboolean             head_complete;
  gboolean             head_delivered;

  /* The body. */
  GByteArray          *in;
  gboolean             held;          /* gk_upstream_call_set_held() */
  gboolean             paused;
  gboolean             finished;
  GError              *error;         /* the call's failure, once finished */
  GError              *abort_error;   /* why a callback of ours stopped the transfer */
};

G_DEFINE_QUARK (gk-upstream-error-quark, gk_upstream_error)

static void call_finish    (GkUpstreamCall *call,
                            GError         *error);
static void upstream_flush (GkUpstream     *self);

/* ---- libcurl, once per process ------------------------------------------ */

static void
curl_init_once (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done))
    {
      curl_global_init (CURL_GLOBAL_DEFAULT);
      g_once_init_leave (&done, 1);
    }
}

/* ---- Errors ------------------------------------------------------------- */

/* The certificate verification that failed, by class. */
static GkUpstreamError
tls_verify_class (long verify_result)
{
  switch (verify_result)
    {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
    case X509_V_ERR_CRL_HAS_EXPIRED:
      return GK_UPSTREAM_ERROR_TLS_EXPIRED;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
    case X509_V_OK:
      /* libcurl checks the host name itself, after OpenSSL accepted the
       * chain: a verification that failed with the chain OK is that. */
      return GK_UPSTREAM_ERROR_TLS_HOST;
    default:
      return GK_UPSTREAM_ERROR_TLS_UNTRUSTED;
    }
}

/* A GError of GK_UPSTREAM_ERROR for libcurl's @code, with libcurl's own
 * detail (@errbuf) after a sentence that says what it means. */
static GError *
error_from_curl (CURL       *easy,
                 CURLcode    code,
                 const char *errbuf)
{
  const char *detail = errbuf != NULL && *errbuf != '\0' ? errbuf : curl_easy_strerror (code);
  GkUpstreamError kind = GK_UPSTREAM_ERROR_FAILED;
  const char *what = "upstream request failed";
  long connect_code = 0;

  curl_easy_getinfo (easy, CURLINFO_HTTP_CONNECTCODE, &connect_code);

  switch ((int) code)
    {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      kind = GK_UPSTREAM_ERROR_INVALID;
      what = "invalid upstream URL";
      break;
    case CURLE_COULDNT_RESOLVE_HOST:
      kind = GK_UPSTREAM_ERROR_RESOLVE;
      what = "host name not found";
      break;
    case CURLE_COULDNT_RESOLVE_PROXY:
      kind = GK_UPSTREAM_ERROR_PROXY;
      what = "proxy host name not found";
      break;
    case CURLE_COULDNT_CONNECT:
      kind = GK_UPSTREAM_ERROR_CONNECT;
      what = "connection refused or unreachable";
      break;
    case CURLE_PROXY:
      kind = GK_UPSTREAM_ERROR_PROXY;
      what = "the proxy failed";
      break;
    case CURLE_PEER_FAILED_VERIFICATION:
      {
        long verify = 0;

        curl_easy_getinfo (easy, CURLINFO_SSL_VERIFYRESULT, &verify);
        kind = tls_verify_class (verify);
        /* libcurl's own host name check leaves no verify result of its
         * own; its message is the sign. */
        if (kind == GK_UPSTREAM_ERROR_TLS_UNTRUSTED && errbuf != NULL &&
            (strstr (errbuf, "host name") != NULL || strstr (errbuf, "hostname") != NULL))
          kind = GK_UPSTREAM_ERROR_TLS_HOST;
        what = kind == GK_UPSTREAM_ERROR_TLS_EXPIRED ? "TLS certificate expired or not yet valid"
             : kind == GK_UPSTREAM_ERROR_TLS_HOST ? "TLS certificate for another host name"
             : "TLS certificate not trusted";
      }
      break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
      kind = GK_UPSTREAM_ERROR_TLS;
      what = "TLS handshake failed";
      break;
    case CURLE_OPERATION_TIMEDOUT:
      kind = GK_UPSTREAM_ERROR_TIMEOUT;
      what = "timed out";
      break;
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
      kind = GK_UPSTREAM_ERROR_CLOSED;
      what = "connection closed before the end of the answer";
      break;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP3:
      kind = GK_UPSTREAM_ERROR_PROTOCOL;
      what = "invalid answer";
      break;
    case CURLE_OUT_OF_MEMORY:
      what = "out of memory";
      break;
    default:
      break;
    }

  /* A CONNECT the proxy answered with anything but 2xx. */
  if (connect_code >= 300 && kind != GK_UPSTREAM_ERROR_PROXY)
    {
      return g_error_new (GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_PROXY,
                          "the proxy refused the tunnel (HTTP %ld): %s", connect_code, detail);
    }
  return g_error_new (GK_UPSTREAM_ERROR, kind, "%s: %.*s", what, ERROR_TEXT_MAX, detail);
}

/* ---- The GSource of the multi handle ------------------------------------ */

/* libcurl's timer is a field that prepare() and check() read, not the
 * source's ready time: libcurl moves it several times per request, and
 * each g_source_set_ready_time() writes to the context's wakeup fd, which
 * costs a system call and another main loop iteration. libcurl only sets it
 * from this thread, inside the calls this thread makes. The ready time is
 * left to the wakeups that may come from other threads (a cancellable) and
 * to a dispatch asked for at once. */
static gboolean
multi_source_timer_due (GSource *source)
{
  GkUpstream *self = ((MultiSource *) source)->upstream;

  return self->timer_due >= 0 && self->timer_due <= g_source_get_time (source);
}

static gboolean
multi_source_prepare (GSource *source,
                      gint    *timeout)
{
  GkUpstream *self = ((MultiSource *) source)->upstream;

  *timeout = -1;
  if (self->ready.length > 0)
    {
      *timeout = 0;
      return TRUE;
    }
  if (self->timer_due < 0)
    return FALSE;
  if (multi_source_timer_due (source))
    {
      *timeout = 0;
      return TRUE;
    }
  /* Rounded up: woken before the timer is due, libcurl would be asked
   * again for nothing. */
  *timeout = (gint) MIN ((self->timer_due - g_source_get_time (source) + 999) / 1000, G_MAXINT);
  return FALSE;
}

/* Takes @sock out of the epoll set. */
static void
sock_unregister (GkUpstream *self,
                 Sock       *sock)
{
  if (sock->events != 0)
    epoll_ctl (self->epoll_fd, EPOLL_CTL_DEL, sock->fd, NULL);
  sock->events = 0;
}

static gboolean
multi_source_dispatch (GSource     *source,
                       GSourceFunc  callback,
                       gpointer     user_data)
{
  GkUpstream *self = ((MultiSource *) source)->upstream;
  gint64 ready_time = g_source_get_ready_time (source);
  gboolean timer = multi_source_timer_due (source) ||
                   (ready_time >= 0 && ready_time <= g_source_get_time (source));
  int running;

  if (timer)
    {
      self->timer_due = -1;
      if (ready_time >= 0)
        g_source_set_ready_time (source, -1);
    }

  if (g_source_query_unix_fd (source, self->epoll_tag) & G_IO_IN)
    {
      struct epoll_event events[64];
      int n;

      do
        {
          /* Collected first: an action may add, remove or close sockets,
           * so each is looked up again by its descriptor. */
          n = epoll_wait (self->epoll_fd, events, G_N_ELEMENTS (events), 0);
          for (int i = 0; i < n; i++)
            {
              Sock *sock = g_hash_table_lookup (self->sockets, GINT_TO_POINTER (events[i].data.fd));
              guint32 revents = events[i].events;
              int what = 0;

              if (sock == NULL)
                continue;
              if (!sock->in_use)
                {
                  /* A pooled connection between two calls that the server
                   * closed (or wrote to): libcurl finds out when it takes
                   * the connection again; until then it leaves the set, or
                   * it would wake the loop again and again. */
                  sock_unregister (self, sock);
                  continue;
                }
              if (revents & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
                what |= CURL_CSELECT_IN;
              if (revents & EPOLLOUT)
                what |= CURL_CSELECT_OUT;
              if (revents & EPOLLERR)
                what |= CURL_CSELECT_ERR;
              curl_multi_socket_action (self->multi, sock->fd, what, &running);
            }
        }
      while (n == (int) G_N_ELEMENTS (events));
    }
  if (timer)
    curl_multi_socket_action (self->multi, CURL_SOCKET_TIMEOUT, 0, &running);

  upstream_flush (self);
  if (self->dispatch_func != NULL)
    self->dispatch_func (self->dispatch_data);
  return G_SOURCE_CONTINUE;
}

/* Callbacks are due (gk_upstream_call_send() ran libcurl) or the timer. */
static gboolean
multi_source_check (GSource *source)
{
  GkUpstream *self = ((MultiSource *) source)->upstream;

  return self->ready.length > 0 || multi_source_timer_due (source);
}

static GSourceFuncs multi_source_funcs = {
  .prepare = multi_source_prepare,
  .check = multi_source_check,
  .dispatch = multi_source_dispatch,
};

/* A source that runs its callback at its ready time, and only then (a
 * timeout source would reset the ready time after each dispatch). */
static gboolean
timer_source_dispatch (GSource     *source,
                       GSourceFunc  callback,
                       gpointer     user_data)
{
  return callback (user_data);
}

static GSourceFuncs timer_source_funcs = {
  .dispatch = timer_source_dispatch,
};

GSource *
gk_ready_source_new (GSourceFunc func,
                     gpointer    data)
{
  GSource *source = g_source_new (&timer_source_funcs, sizeof (GSource));

  g_source_set_callback (source, func, data, NULL);
  return source;
}

/* libcurl's sockets are in an epoll set of the upstream's own, which the
 * GSource watches as one descriptor: adding a descriptor to a GSource, or
 * changing or removing it, writes to the main context's wakeup descriptor
 * and costs the loop another iteration, some three times a request. A
 * connection that goes back to the pool (libcurl's "remove") stays in the
 * set as it is, so that the next call on it costs no system call either;
 * libcurl closes its sockets through close_socket_cb(), and a closed
 * descriptor leaves an epoll set by itself. A socket libcurl did not open
 * through open_socket_cb() (its resolver's) leaves the set at its remove,
 * since its close is not seen here. */
static int
socket_cb (CURL          *easy,
           curl_socket_t  fd,
           int            what,
           void          *user_data,
           void          *socket_data)
{
  GkUpstream *self = user_data;
  Sock *sock = g_hash_table_lookup (self->sockets, GINT_TO_POINTER (fd));
  struct epoll_event event = { 0 };
  gboolean ok;
  int op;

  if (what == CURL_POLL_REMOVE)
    {
      if (sock != NULL)
        {
          sock->in_use = FALSE;
          if (!sock->ours)
            {
              sock_unregister (self, sock);
              g_hash_table_remove (self->sockets, GINT_TO_POINTER (fd));
            }
        }
      return 0;
    }

  if (sock == NULL)
    {
      sock = g_new0 (Sock, 1);
      sock->fd = fd;
      g_hash_table_insert (self->sockets, GINT_TO_POINTER (fd), sock);
    }
  sock->in_use = TRUE;
  if (what & CURL_POLL_IN)
    event.events |= EPOLLIN | EPOLLRDHUP;
  if (what & CURL_POLL_OUT)
    event.events |= EPOLLOUT;
  if (event.events == sock->events)
    return 0;
  event.data.fd = fd;
  op = sock->events != 0 ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  ok = epoll_ctl (self->epoll_fd, op, fd, &event) == 0;
  /* The set knew the descriptor otherwise than recorded here (a number
   * used again): the other operation does it. */
  if (!ok && errno == (op == EPOLL_CTL_ADD ? EEXIST : ENOENT))
    ok = epoll_ctl (self->epoll_fd, op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd,
                    &event) == 0;
  if (ok)
    sock->events = event.events;
  else
    g_warning ("Cannot watch an upstream connection: %s", g_strerror (errno));
  return 0;
}

static int
timer_cb (CURLM    *multi,
          long      timeout_ms,
          void     *user_data)
{
  GkUpstream *self = user_data;

  self->timer_due = timeout_ms < 0 ? -1 : g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  return 0;
}

/* Sockets are counted for gk_upstream_get_idle_count(). */
static curl_socket_t
open_socket_cb (void                    *user_data,
                curlsocktype             purpose,
                struct curl_sockaddr    *address)
{
  GkUpstream *self = user_data;
  curl_socket_t fd = socket (address->family, address->socktype | SOCK_CLOEXEC,
                             address->protocol);

  if (fd != CURL_SOCKET_BAD)
    {
      Sock *sock = g_new0 (Sock, 1);

      sock->fd = fd;
      sock->ours = TRUE;
      /* A descriptor number used before is a new socket: not in the set. */
      g_hash_table_replace (self->sockets, GINT_TO_POINTER (fd), sock);
      self->connects++;
      self->open_sockets++;
    }
  return fd;
}

static int
close_socket_cb (void          *user_data,
                 curl_socket_t  fd)
{
  GkUpstream *self = user_data;

  /* Its close takes it out of the epoll set. */
  g_hash_table_remove (self->sockets, GINT_TO_POINTER (fd));
  self->open_sockets--;
  return close (fd);
}

/* ---- The calls' own timeouts -------------------------------------------- */

static void
sweep_arm (GkUpstream *self,
           gint64      deadline)
{
  gint64 current = g_source_get_ready_time (self->sweep);

  if (deadline > 0 && (current < 0 || deadline < current))
    g_source_set_ready_time (self->sweep, deadline);
}

static gboolean
sweep_cb (gpointer user_data)
{
  GkUpstream *self = user_data;
  gint64 now = g_get_monotonic_time ();
  gint64 next = -1;
  GList *l = self->active.head;

  g_source_set_ready_time (self->sweep, -1);
  while (l != NULL)
    {
      GkUpstreamCall *call = l->data;

      l = l->next;
      if (call->deadline > 0 && call->deadline <= now)
        {
          call_finish (call, g_error_new_literal (GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_DEADLINE,
                                                  "the request's deadline passed"));
          continue;
        }
      if (call->wait_deadline > 0 && call->wait_deadline <= now)
        {
          call_finish (call, g_error_new (GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_TIMEOUT,
                                          call->head_complete
                                            ? "timed out: no data for %u s"
                                            : "timed out: no answer within %u s",
                                          self->timeout_s));
          continue;
        }
      if (call->deadline > 0 && (next < 0 || call->deadline < next))
        next = call->deadline;
      if (call->wait_deadline > 0 && (next < 0 || call->wait_deadline < next))
        next = call->wait_deadline;
    }
  if (next >= 0)
    g_source_set_ready_time (self->sweep, next);
  upstream_flush (self);
  return G_SOURCE_CONTINUE;
}

static void
call_touch (GkUpstreamCall *call)
{
  if (call->upstream->timeout_s > 0)
    call->wait_deadline = g_get_monotonic_time () + (gint64) call->upstream->timeout_s * G_USEC_PER_SEC;
}

/* ---- Calls: libcurl's side ---------------------------------------------- */

static void
call_queue (GkUpstreamCall *call)
{
  if (!call->queued)
    {
      call->queued = TRUE;
      g_queue_push_tail_link (&call->upstream->ready, &call->ready_link);
    }
}

static void
call_unqueue (GkUpstreamCall *call)
{
  if (call->queued)
    {
      call->queued = FALSE;
      g_queue_unlink (&call->upstream->ready, &call->ready_link);
    }
}

/* Stops the transfer (if it still runs) and records its end. */
static void
call_finish (GkUpstreamCall *call,
             GError         *error)
{
  GkUpstream *self = call->upstream;

  if (call->in_multi)
    {
      call->in_multi = FALSE;
      g_queue_unlink (&self->active, &call->active_link);
      curl_multi_remove_handle (self->multi, call->easy);
    }
  if (call->finished)
    {
      g_clear_error (&error);
      return;
    }
  call->finished = TRUE;
  call->wait_deadline = 0;
  call->error = error;
  call_queue (call);
}

static gboolean
header_name_valid (const char *name,
                   gsize       len)
{
  static const char extra[] = "!#$%&'*+-.^_`|~";

  if (len == 0)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isalnum (name[i]) && strchr (extra, name[i]) == NULL)
      return FALSE;
  return TRUE;
}

/* Stops the transfer from within one of libcurl's callbacks. */
static size_t
call_abort (GkUpstreamCall *call,
            GError         *error)
{
  if (call->abort_error == NULL)
    call->abort_error = error;
  else
    g_error_free (error);
  return 0;
}

static size_t
header_cb (char   *data,
           size_t  size,
           size_t  count,
           void   *user_data)
{
  GkUpstreamCall *call = user_data;
  gsize len = size * count;
  gsize end = len;
  const char *colon;
  char small[HEADER_LINE_ON_STACK];
  char *line;
  char *name;
  char *value;

  /* Trailers of a chunked body come this way too: not part of the head. */
  if (call->head_complete)
    return len;

  call->head_bytes += len;
  if (call->head_bytes > GK_UPSTREAM_HEAD_LIMIT)
    return call_abort (call, g_error_new (GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_PROTOCOL,
                                          "response head larger than %u bytes",
                                          GK_UPSTREAM_HEAD_LIMIT));

  while (end > 0 && (data[end - 1] == '\n' || data[end - 1] == '\r'))
    end--;

  if (len >= 5 && memcmp (data, "HTTP/", 5) == 0)
    {
      /* "HTTP/1.1 200 OK" or "HTTP/2 200": a new head (after a 1xx). */
      const char *space = memchr (data, ' ', end);

      if (space == NULL || end - (space - data) < 4 || !g_ascii_isdigit (space[1]) ||
          !g_ascii_isdigit (space[2]) || !g_ascii_isdigit (space[3]))
        return call_abort (call, g_error_new_literal (GK_UPSTREAM_ERROR,
                                                      GK_UPSTREAM_ERROR_PROTOCOL,
                                                      "invalid status line"));
      call->status = (space[1] - '0') * 100 + (space[2] - '0') * 10 + (space[3] - '0');
      call->http_version = data[5] == '2' ? 2 : 1;
      soup_message_headers_clear (call->response_headers);
      call->header_count = 0;
      call->content_length = -1;
      call->chunked = FALSE;
      call_touch (call);
      return len;
    }

  if (end == 0)
    {
      /* The blank line: the end of an interim (1xx) or the final head. */
      long connects = 0;

      if (call->status < 200)
        return len;
      if (call->chunked && call->content_length >= 0)
        return call_abort (call, g_error_new_literal (GK_UPSTREAM_ERROR,
                                                      GK_UPSTREAM_ERROR_PROTOCOL,
                                                      "both Content-Length and chunked "
                                                      "Transfer-Encoding"));
      call->head_complete = TRUE;
      curl_easy_getinfo (call->easy, CURLINFO_NUM_CONNECTS, &connects);
      call->reused = connects == 0;
      call_queue (call);
      return len;
    }

  if (data[0] == ' ' || data[0] == '\t')
    return call_abort (call, g_error_new_literal (GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_PROTOCOL,
                                                  "folded header line"));
  if (++call->header_count > GK_UPSTREAM_HEADER_COUNT_LIMIT)
    return call_abort (call, g_error_new (GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_PROTOCOL,
                                          "more than %u response headers",
                                          GK_UPSTREAM_HEADER_COUNT_LIMIT));
  colon = memchr (data, ':', end);
  if (colon == NULL || !header_name_valid (data, colon - data) || memchr (data, '\0', end))
    return call_abort (call, g_error_new_literal (GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_PROTOCOL,
                                                  "invalid header line"));
  /* Name and value as C strings, in place: on the stack for all but the
   * longest lines. */
  line = end < sizeof small ? small : g_malloc (end + 1);
  memcpy (line, data, end);
  line[end] = '\0';
  name = line;
  name[colon - data] = '\0';
  value = g_strstrip (line + (colon - data) + 1);

  if (g_ascii_strcasecmp (name, "Content-Length") == 0)
    {
      guint64 length;
      const char *problem = NULL;

      if (*value == '\0' || strspn (value, "0123456789") != strlen (value) ||
          !g_ascii_string_to_unsigned (value, 10, 0, G_MAXINT64, &length, NULL))
        problem = "invalid Content-Length";
      else if (call->content_length >= 0 && (guint64) call->content_length != length)
        problem = "conflicting Content-Length headers";
      if (problem != NULL)
        {
          if (line != small)
            g_free (line);
          return call_abort (call, g_error_new_literal (GK_UPSTREAM_ERROR,
                                                        GK_UPSTREAM_ERROR_PROTOCOL, problem));
        }
      call->content_length = (gint64) length;
    }
  else if (g_ascii_strcasecmp (name, "Transfer-Encoding") == 0)
    call->chunked = TRUE;

  soup_message_headers_append (call->response_headers, name, value);
  if (line != small)
    g_free (line);
  return len;
}

static size_t
write_cb (char   *data,
          size_t  size,
          size_t  count,
          void   *user_data)
{
  GkUpstreamCall *call = user_data;
  gsize len = size * count;

  /* Nobody reads: wait for a reader rather than pile the body up. */
  if ((call->read_cb == NULL || call->held) && call->in->len >= READ_AHEAD_LIMIT)
    {
      call->paused = TRUE;
      call->wait_deadline = 0;
      return CURL_WRITEFUNC_PAUSE;
    }
  g_byte_array_append (call->in, (const guint8 *) data, len);
  call_touch (call);
  if (call->read_cb != NULL && !call->held)
    call_queue (call);
  return len;
}

/* The transfers libcurl has ended. */
static void
upstream_take_done (GkUpstream *self)
{
  CURLMsg *msg;
  int left;

  while ((msg = curl_multi_info_read (self->multi, &left)) != NULL)
    {
      GkUpstreamCall *call = NULL;
      CURLcode code;
      GError *error = NULL;

      if (msg->msg != CURLMSG_DONE)
        continue;
      code = msg->data.result;
      curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **) &call);
      g_assert (call != NULL);
      if (call->abort_error != NULL)
        error = g_steal_pointer (&call->abort_error);
      else if (code != CURLE_OK)
        error = error_from_curl (call->easy, code, call->errbuf);
      else if (!call->head_complete)
        error = g_error_new_literal (GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_PROTOCOL,
                                     "no response head");
      call_finish (call, error);
    }
}

/* ---- Calls: the caller's side ------------------------------------------- */

static void
call_deliver_read (GkUpstreamCall *call)
{
  GkUpstreamReadFunc callback = call->read_cb;

  call->read_cb = NULL;
  call_unqueue (call);
  /* A held call's failure goes first: its reader is not reading. */
  if (call->in->len > 0 && !(call->held && call->finished && call->error != NULL))
    {
      g_autoptr(GBytes) chunk = g_byte_array_free_to_bytes (call->in);

      call->in = g_byte_array_new ();
      callback (call, chunk, NULL, call->user_data);
      return;
    }
  callback (call, NULL, call->error, call->user_data);
}

/* Whether a reader gets something now: data or the end, unless held;
 * a failure even when held. */
static gboolean
call_can_deliver (GkUpstreamCall *call)
{
  if (call->finished && call->error != NULL)
    return TRUE;
  return !call->held && (call->in->len > 0 || call->finished);
}

/* Runs the one callback @call is ready for, if any. */
static void
call_dispatch (GkUpstreamCall *call)
{
  if (!call->head_delivered)
    {
      GkUpstreamHeadFunc callback = call->head_cb;

      if (callback == NULL || (!call->head_complete && !call->finished))
        return;
      call->head_delivered = TRUE;
      call->head_cb = NULL;
      callback (call, call->head_complete ? NULL : call->error, call->user_data);
      return;
    }
  if (call->read_cb != NULL && call_can_deliver (call))
    call_deliver_read (call);
}

/* The ended transfers, then the callbacks due. */
static void
upstream_flush (GkUpstream *self)
{
  GList *link;

  upstream_take_done (self);
  while ((link = g_queue_pop_head_link (&self->ready)) != NULL)
    {
      GkUpstreamCall *call = link->data;

      call->queued = FALSE;
      call_dispatch (call);
    }
}

static void
cancelled_cb (GCancellable *cancellable,
              gpointer      user_data)
{
  gk_upstream_call_cancel (user_data);
}

/* ---- Easy handles ------------------------------------------------------- */

/* Options every transfer has, ours and gk_upstream_get_sync()'s. */
static void
easy_set_common (CURL       *easy,
                 const char *ca_file,
                 char       *errbuf)
{
  curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (easy, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt (easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (easy, CURLOPT_FOLLOWLOCATION, 0L);
  /* HTTP/2 over TLS where the upstream offers it (ALPN), else HTTP/1.1. */
  curl_easy_setopt (easy, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2TLS);
  /* A proxy's answer to CONNECT is not the upstream's head. Proxies come
   * from the environment: no CURLOPT_PROXY / CURLOPT_NOPROXY here. */
  curl_easy_setopt (easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  curl_easy_setopt (easy, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt (easy, CURLOPT_SSL_VERIFYHOST, 2L);
  if (ca_file != NULL)
    curl_easy_setopt (easy, CURLOPT_CAINFO, ca_file);
  curl_easy_setopt (easy, CURLOPT_TCP_NODELAY, 1L);
}

static const char *
ca_file_from_env (void)
{
  const char *ca = g_getenv ("GEMINI_KEYS_UPSTREAM_CA");

  return ca != NULL && *ca != '\0' ? ca : NULL;
}

/* ---- Public API --------------------------------------------------------- */

GkUpstream *
gk_upstream_new (const char  *base_url,
                 guint        timeout_s,
                 const char  *user_agent,
                 GError     **error)
{
  g_autoptr(GUri) uri = NULL;
  g_autoptr(GError) local_error = NULL;
  GkUpstream *self;
  const char *scheme;
  const char *path;
  gsize path_len;

  g_return_val_if_fail (base_url != NULL, NULL);

  uri = g_uri_parse (base_url, G_URI_FLAGS_ENCODED, &local_error);
  if (uri == NULL)
    {
      g_set_error (error, GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_INVALID, "%s",
                   local_error->message);
      return NULL;
    }
  scheme = g_uri_get_scheme (uri);
  if ((g_strcmp0 (scheme, "http") != 0 && g_strcmp0 (scheme, "https") != 0) ||
      g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0')
    {
      g_set_error (error, GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_INVALID,
                   "only http:// and https:// URLs with a host are supported");
      return NULL;
    }

  curl_init_once ();
  self = g_new0 (GkUpstream, 1);
  path = g_uri_get_path (uri);
  path_len = strlen (path);
  while (path_len > 0 && path[path_len - 1] == '/')
    path_len--;
  {
    g_autofree char *authority = g_uri_join (G_URI_FLAGS_ENCODED, scheme, g_uri_get_userinfo (uri),
                                             g_uri_get_host (uri), g_uri_get_port (uri), "", NULL,
                                             NULL);

    self->base_url = g_strdup_printf ("%s%.*s", authority, (int) path_len, path);
  }
  self->tls = g_str_equal (scheme, "https");
  self->timeout_s = timeout_s;
  self->user_agent = g_strdup (user_agent);
  self->ca_file = g_strdup (ca_file_from_env ());
  self->sockets = g_hash_table_new_full (NULL, NULL, NULL, g_free);
  self->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
  if (self->epoll_fd < 0)
    {
      g_set_error (error, GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_FAILED, "epoll_create1: %s",
                   g_strerror (errno));
      g_hash_table_unref (self->sockets);
      g_free (self->base_url);
      g_free (self->user_agent);
      g_free (self->ca_file);
      g_free (self);
      return NULL;
    }
  self->spare = g_ptr_array_new ();
  self->timer_due = -1;

  self->source = g_source_new (&multi_source_funcs, sizeof (MultiSource));
  ((MultiSource *) self->source)->upstream = self;
  /* A source that cannot recurse has its descriptors taken out of the
   * poll for each dispatch and put back after, each time with a wakeup
   * write and another main loop iteration: this one is never dispatched
   * from within itself (no nested main loop). */
  g_source_set_can_recurse (self->source, TRUE);
  g_source_set_name (self->source, "gk-upstream");
  self->epoll_tag = g_source_add_unix_fd (self->source, self->epoll_fd, G_IO_IN);
  g_source_attach (self->source, g_main_context_get_thread_default ());

  self->sweep = gk_ready_source_new (sweep_cb, self);
  g_source_set_name (self->sweep, "gk-upstream-sweep");
  g_source_attach (self->sweep, g_main_context_get_thread_default ());

  self->multi = curl_multi_init ();
  curl_multi_setopt (self->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt (self->multi, CURLMOPT_SOCKETDATA, self);
  curl_multi_setopt (self->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt (self->multi, CURLMOPT_TIMERDATA, self);
  curl_multi_setopt (self->multi, CURLMOPT_MAXCONNECTS, (long) POOL_MAX);
  curl_multi_setopt (self->multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);
  return self;
}

void
gk_upstream_free (GkUpstream *self)
{
  if (self == NULL)
    return;
  g_return_if_fail (self->active.length == 0);

  for (guint i = 0; i < self->spare->len; i++)
    curl_easy_cleanup (g_ptr_array_index (self->spare, i));
  g_ptr_array_unref (self->spare);
  /* Closes the pooled connections (their sockets leave the source). */
  curl_multi_cleanup (self->multi);
  g_source_destroy (self->source);
  g_source_unref (self->source);
  g_source_destroy (self->sweep);
  g_source_unref (self->sweep);
  g_hash_table_unref (self->sockets);
  close (self->epoll_fd);
  g_free (self->base_url);
  g_free (self->user_agent);
  g_free (self->ca_file);
  g_free (self);
}

void
gk_upstream_set_dispatch_func (GkUpstream  *self,
                               GSourceFunc  func,
                               gpointer     data)
{
  g_return_if_fail (self != NULL);
  self->dispatch_func = func;
  self->dispatch_data = data;
}

guint
gk_upstream_get_idle_count (GkUpstream *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->open_sockets > self->active.length ? self->open_sockets - self->active.length : 0;
}

guint
gk_upstream_get_connect_count (GkUpstream *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->connects;
}

/* An easy handle with the options every call of @self has; the calls set
 * their own (gk_upstream_call_send) and leave the handle to the next call
 * without a curl_easy_reset(), which would cost each request a reset and
 * these options again. */
static CURL *
upstream_easy_new (GkUpstream *self)
{
  CURL *easy = curl_easy_init ();
  long connect_ms = GK_UPSTREAM_CONNECT_TIMEOUT_S * 1000L;

  /* The error buffer is the call's, set by each call. */
  easy_set_common (easy, self->ca_file, NULL);
  curl_easy_setopt (easy, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
  curl_easy_setopt (easy, CURLOPT_OPENSOCKETDATA, self);
  curl_easy_setopt (easy, CURLOPT_CLOSESOCKETFUNCTION, close_socket_cb);
  curl_easy_setopt (easy, CURLOPT_CLOSESOCKETDATA, self);
  curl_easy_setopt (easy, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, write_cb);
  if (self->tls)
    curl_easy_setopt (easy, CURLOPT_PIPEWAIT, 1L);
  if (self->user_agent != NULL)
    curl_easy_setopt (easy, CURLOPT_USERAGENT, self->user_agent);
  if (self->timeout_s > 0 && self->timeout_s < GK_UPSTREAM_CONNECT_TIMEOUT_S)
    connect_ms = self->timeout_s * 1000L;
  curl_easy_setopt (easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  return easy;
}

GkUpstreamCall *
gk_upstream_call_new (GkUpstream *upstream,
                      const char *method,
                      const char *path_and_query)
{
  GkUpstreamCall *call;

  g_return_val_if_fail (upstream != NULL, NULL);
  g_return_val_if_fail (method != NULL && path_and_query != NULL, NULL);

  call = g_new0 (GkUpstreamCall, 1);
  call->upstream = upstream;
  call->method = g_strdup (method);
  call->url = g_strconcat (upstream->base_url, *path_and_query == '/' ? "" : "/", path_and_query,
                           NULL);
  call->ready_link.data = call;
  call->active_link.data = call;
  call->content_length = -1;
  call->response_headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_RESPONSE);
  call->in = g_byte_array_new ();
  return call;
}

void
gk_upstream_call_add_header (GkUpstreamCall *call,
                             const char     *name,
                             const char     *value)
{
  g_autofree char *line = NULL;

  g_return_if_fail (call != NULL && name != NULL && value != NULL);

  if (strpbrk (name, "\r\n:") != NULL || strpbrk (value, "\r\n") != NULL ||
      !header_name_valid (name, strlen (name)))
    return;
  if (g_ascii_strcasecmp (name, "Accept") == 0)
    call->has_accept = TRUE;
  /* "Name;" sends a header with an empty value (libcurl drops "Name:"). */
  line = *value != '\0' ? g_strconcat (name, ": ", value, NULL) : g_strconcat (name, ";", NULL);
  call->headers = curl_slist_append (call->headers, line);
  explicit_bzero (line, strlen (line));
}

void
gk_upstream_call_set_body (GkUpstreamCall *call,
                           const char     *content_type,
                           GBytes         *body)
{
  g_autofree char *line = NULL;

  g_return_if_fail (call != NULL && body != NULL);

  g_clear_pointer (&call->body, g_bytes_unref);
  call->body = g_bytes_ref (body);
  if (content_type != NULL && strpbrk (content_type, "\r\n") == NULL)
    {
      line = g_strconcat ("Content-Type: ", content_type, NULL);
      call->headers = curl_slist_append (call->headers, line);
    }
}

void
gk_upstream_call_set_deadline (GkUpstreamCall *call,
                               gint64          deadline)
{
  g_return_if_fail (call != NULL);
  call->deadline = deadline;
}

/* Whether @path_and_query may go into a URL as it is. */
static gboolean
url_part_valid (const char *url)
{
  for (const guchar *p = (const guchar *) url; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f || *p == '#')
      return FALSE;
  return TRUE;
}

void
gk_upstream_call_send (GkUpstreamCall     *call,
                       GCancellable       *cancellable,
                       GkUpstreamHeadFunc  callback,
                       gpointer            user_data)
{
  GkUpstream *self;
  CURL *easy;
  int running;

  g_return_if_fail (call != NULL && call->easy == NULL);

  self = call->upstream;
  call->head_cb = callback;
  call->user_data = user_data;

  /* Cancelled already (gk_upstream_call_cancel()): not sent. */
  if (call->finished)
    return;
  if (!url_part_valid (call->url + strlen (self->base_url)))
    {
      call->finished = TRUE;
      call->error = g_error_new_literal (GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_INVALID,
                                         "the request path is not encoded");
      call_queue (call);
      g_source_set_ready_time (self->source, 0);
      return;
    }

  easy = self->spare->len > 0 ? g_ptr_array_steal_index_fast (self->spare, self->spare->len - 1)
                              : upstream_easy_new (self);
  call->easy = easy;
  /* What differs from one call to the next; a spare handle keeps the
   * previous call's, all of which are set again here. */
  curl_easy_setopt (easy, CURLOPT_ERRORBUFFER, call->errbuf);
  curl_easy_setopt (easy, CURLOPT_PRIVATE, call);
  curl_easy_setopt (easy, CURLOPT_URL, call->url);
  curl_easy_setopt (easy, CURLOPT_HEADERDATA, call);
  curl_easy_setopt (easy, CURLOPT_WRITEDATA, call);
  /* libcurl's own bound too, so that no state of its escapes it. */
  curl_easy_setopt (easy, CURLOPT_TIMEOUT_MS,
                    call->deadline > 0
                      ? (long) MAX ((call->deadline - g_get_monotonic_time ()) / 1000, 1) : 0L);
  /* A GET without a body, the method's options below change it: resets a
   * previous call's HEAD (NOBODY), POST and custom method. */
  curl_easy_setopt (easy, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt (easy, CURLOPT_CUSTOMREQUEST, NULL);

  /* libcurl's own defaults that the upstream should not see. */
  call->headers = curl_slist_append (call->headers, "Expect:");
  if (!call->has_accept)
    call->headers = curl_slist_append (call->headers, "Accept:");

  if (g_ascii_strcasecmp (call->method, "HEAD") == 0)
    curl_easy_setopt (easy, CURLOPT_NOBODY, 1L);
  else if (call->body != NULL)
    {
      gsize len;
      const char *data = g_bytes_get_data (call->body, &len);

      curl_easy_setopt (easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) len);
      curl_easy_setopt (easy, CURLOPT_POSTFIELDS, data ? data : "");
      if (g_strcmp0 (call->method, "POST") != 0)
        curl_easy_setopt (easy, CURLOPT_CUSTOMREQUEST, call->method);
    }
  else if (g_strcmp0 (call->method, "GET") != 0)
    {
      curl_easy_setopt (easy, CURLOPT_CUSTOMREQUEST, call->method);
      if (g_strcmp0 (call->method, "POST") == 0 || g_strcmp0 (call->method, "PUT") == 0 ||
          g_strcmp0 (call->method, "PATCH") == 0)
        {
          /* An empty body, announced as such. */
          curl_easy_setopt (easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) 0);
          curl_easy_setopt (easy, CURLOPT_POSTFIELDS, "");
          call->headers = curl_slist_append (call->headers, "Content-Type:");
        }
    }
  curl_easy_setopt (easy, CURLOPT_HTTPHEADER, call->headers);

  if (cancellable != NULL)
    {
      call->cancellable = g_object_ref (cancellable);
      call->cancelled_id = g_cancellable_connect (cancellable, G_CALLBACK (cancelled_cb), call,
                                                  NULL);
      /* Already cancelled: cancelled_cb ran and the call is finished. */
      if (call->finished)
        return;
    }

  call_touch (call);
  sweep_arm (self, call->wait_deadline);
  sweep_arm (self, call->deadline);
  call->in_multi = TRUE;
  g_queue_push_tail_link (&self->active, &call->active_link);
  curl_multi_add_handle (self->multi, easy);
  /* The request goes out now rather than at the next main loop iteration
   * (libcurl's timer of 0 would wait for it). What libcurl's callbacks
   * record meanwhile is handed over from the source's dispatch, which the
   * queue of ready calls asks for. */
  curl_multi_socket_action (self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  upstream_take_done (self);
}

void
gk_upstream_call_cancel (GkUpstreamCall *call)
{
  g_return_if_fail (call != NULL);

  call_finish (call, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                          "the request was cancelled"));
  /* Its callback runs from the source, never from within cancel (which
   * may come from another thread, through a cancellable). */
  g_source_set_ready_time (call->upstream->source, 0);
}

guint
gk_upstream_call_get_status (GkUpstreamCall *call)
{
  g_return_val_if_fail (call != NULL, 0);
  return call->status;
}

SoupMessageHeaders *
gk_upstream_call_get_response_headers (GkUpstreamCall *call)
{
  g_return_val_if_fail (call != NULL, NULL);
  return call->response_headers;
}

gboolean
gk_upstream_call_get_reused (GkUpstreamCall *call)
{
  g_return_val_if_fail (call != NULL, FALSE);
  return call->reused;
}

guint
gk_upstream_call_get_http_version (GkUpstreamCall *call)
{
  g_return_val_if_fail (call != NULL, 0);
  return call->http_version;
}

void
gk_upstream_call_read (GkUpstreamCall     *call,
                       GkUpstreamReadFunc  callback,
                       gpointer            user_data)
{
  g_return_if_fail (call != NULL && callback != NULL);
  g_return_if_fail (call->head_delivered && call->read_cb == NULL);

  call->read_cb = callback;
  call->user_data = user_data;
  if (call_can_deliver (call))
    {
      call_deliver_read (call);
      return;
    }
  if (call->paused && call->in_multi && !call->held)
    {
      call->paused = FALSE;
      call_touch (call);
      sweep_arm (call->upstream, call->wait_deadline);
      /* May hand over the held piece at once, through write_cb. */
      curl_easy_pause (call->easy, CURLPAUSE_CONT);
      if (call->in->len > 0)
        call_deliver_read (call);
    }
}

void
gk_upstream_call_set_held (GkUpstreamCall *call,
                           gboolean        held)
{
  g_return_if_fail (call != NULL);

  if (call->held == !!held)
    return;
  call->held = !!held;
  if (held)
    return;
  if (call->paused && call->in_multi)
    {
      call->paused = FALSE;
      call_touch (call);
      sweep_arm (call->upstream, call->wait_deadline);
      curl_easy_pause (call->easy, CURLPAUSE_CONT);
    }
  /* What waited is handed over from the main loop, not from here. */
  if (call->read_cb != NULL && call_can_deliver (call))
    {
      call_queue (call);
      g_source_set_ready_time (call->upstream->source, 0);
    }
}

static void
wipe_slist (struct curl_slist *list)
{
  for (struct curl_slist *l = list; l != NULL; l = l->next)
    explicit_bzero (l->data, strlen (l->data));
  curl_slist_free_all (list);
}

void
gk_upstream_call_free (GkUpstreamCall *call)
{
  GkUpstream *self;

  if (call == NULL)
    return;
  self = call->upstream;

  if (call->cancellable != NULL)
    {
      g_cancellable_disconnect (call->cancellable, call->cancelled_id);
      g_clear_object (&call->cancellable);
    }
  call_unqueue (call);
  if (call->in_multi)
    {
      /* Unfinished: libcurl closes its connection. */
      call->in_multi = FALSE;
      g_queue_unlink (&self->active, &call->active_link);
      curl_multi_remove_handle (self->multi, call->easy);
    }
  if (call->easy != NULL)
    {
      /* The next call sets every option of its own (no reset): none points
       * into this call once it is freed. */
      curl_easy_setopt (call->easy, CURLOPT_ERRORBUFFER, NULL);
      curl_easy_setopt (call->easy, CURLOPT_HTTPHEADER, NULL);
      curl_easy_setopt (call->easy, CURLOPT_POSTFIELDS, NULL);
      if (self->spare->len < POOL_MAX)
        g_ptr_array_add (self->spare, call->easy);
      else
        curl_easy_cleanup (call->easy);
    }
  wipe_slist (call->headers);
  g_clear_pointer (&call->body, g_bytes_unref);
  g_clear_pointer (&call->response_headers, soup_message_headers_unref);
  g_byte_array_unref (call->in);
  g_clear_error (&call->error);
  g_clear_error (&call->abort_error);
  g_free (call->method);
  g_free (call->url);
  g_free (call);
}

/* ---- Blocking GET ------------------------------------------------------- */

typedef struct
{
  GByteArray   *body;
  GCancellable *cancellable;
  gboolean      too_large;
} SyncGet;

static size_t
sync_write_cb (char   *data,
               size_t  size,
               size_t  count,
               void   *user_data)
{
  SyncGet *get = user_data;
  gsize len = size * count;

  if (get->body->len + len > SYNC_BODY_LIMIT)
    {
      get->too_large = TRUE;
      return 0;
    }
  g_byte_array_append (get->body, (const guint8 *) data, len);
  return len;
}

static int
sync_progress_cb (void       *user_data,
                  curl_off_t  dltotal,
                  curl_off_t  dlnow,
                  curl_off_t  ultotal,
                  curl_off_t  ulnow)
{
  SyncGet *get = user_data;

  return g_cancellable_is_cancelled (get->cancellable) ? 1 : 0;
}

gboolean
gk_upstream_get_sync (const char    *url,
                      const char    *header_line,
                      guint          timeout_s,
                      GCancellable  *cancellable,
                      guint         *status,
                      GBytes       **body,
                      GError       **error)
{
  char errbuf[CURL_ERROR_SIZE] = "";
  struct curl_slist *headers = NULL;
  SyncGet get = { NULL, cancellable, FALSE };
  CURL *easy;
  CURLcode code;
  long response = 0;

  g_return_val_if_fail (url != NULL, FALSE);

  curl_init_once ();
  easy = curl_easy_init ();
  easy_set_common (easy, ca_file_from_env (), errbuf);
  curl_easy_setopt (easy, CURLOPT_URL, url);
  curl_easy_setopt (easy, CURLOPT_CONNECTTIMEOUT, (long) MIN (timeout_s, GK_UPSTREAM_CONNECT_TIMEOUT_S));
  curl_easy_setopt (easy, CURLOPT_TIMEOUT, (long) timeout_s);
  curl_easy_setopt (easy, CURLOPT_USERAGENT, "gemini-keys/" PACKAGE_VERSION);
  if (header_line != NULL)
    headers = curl_slist_append (headers, header_line);
  curl_easy_setopt (easy, CURLOPT_HTTPHEADER, headers);
  get.body = g_byte_array_new ();
  curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, sync_write_cb);
  curl_easy_setopt (easy, CURLOPT_WRITEDATA, &get);
  if (cancellable != NULL)
    {
      curl_easy_setopt (easy, CURLOPT_XFERINFOFUNCTION, sync_progress_cb);
      curl_easy_setopt (easy, CURLOPT_XFERINFODATA, &get);
      curl_easy_setopt (easy, CURLOPT_NOPROGRESS, 0L);
    }

  code = curl_easy_perform (easy);
  curl_easy_getinfo (easy, CURLINFO_RESPONSE_CODE, &response);
  wipe_slist (headers);

  if (code != CURLE_OK)
    {
      if (get.too_large)
        g_set_error (error, GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_TOO_LARGE,
                     "the upstream's answer is larger than %u bytes", SYNC_BODY_LIMIT);
      else if (code == CURLE_ABORTED_BY_CALLBACK)
        g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "cancelled");
      else
        g_propagate_error (error, error_from_curl (easy, code, errbuf));
      curl_easy_cleanup (easy);
      g_byte_array_unref (get.body);
      return FALSE;
    }
  curl_easy_cleanup (easy);
  *status = (guint) response;
  *body = g_byte_array_free_to_bytes (get.body);
  return TRUE;
}
