/* gk-upstream.h: the gateway's HTTP client for its one upstream (libcurl).
 *
 * libcurl's multi interface runs on the GLib main context of the thread
 * that created the GkUpstream: one GSource watches its sockets (through an
 * epoll set) and its timer. libcurl brings keep-alive pooling,
 * HTTP/2 to https upstreams that offer it (HTTP/1.1 otherwise), strict
 * response framing, TLS through OpenSSL and proxies from the environment
 * (http_proxy, https_proxy/HTTPS_PROXY, all_proxy/ALL_PROXY,
 * no_proxy/NO_PROXY, exactly as curl reads them). Response bodies are handed
 * over piece by piece as they arrive; an answer nobody reads pauses the
 * transfer (back-pressure) instead of piling up in memory.
 *
 * $GEMINI_KEYS_UPSTREAM_CA names a PEM file of CA certificates that then
 * replaces the system's trust store for upstream connections (a private
 * upstream, or the tests' own CA).
 *
 * Nothing here is thread-safe; gk_upstream_get_sync() may run in any thread.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

#define GK_UPSTREAM_ERROR (gk_upstream_error_quark ())

/* What went wrong, by class: the gateway names the class to its client. */
typedef enum
{
  GK_UPSTREAM_ERROR_INVALID,       /* not a usable URL or request */
  GK_UPSTREAM_ERROR_RESOLVE,       /* the host name does not resolve */
  GK_UPSTREAM_ERROR_CONNECT,       /* refused or unreachable */
  GK_UPSTREAM_ERROR_PROXY,         /* the proxy failed or refused */
  GK_UPSTREAM_ERROR_TLS_UNTRUSTED, /* certificate not trusted */
  GK_UPSTREAM_ERROR_TLS_EXPIRED,   /* certificate expired or not yet valid */
  GK_UPSTREAM_ERROR_TLS_HOST,      /* certificate for another host name */
  GK_UPSTREAM_ERROR_TLS,           /* any other TLS failure */
  GK_UPSTREAM_ERROR_TIMEOUT,       /* connect, first byte or idle timeout */
  GK_UPSTREAM_ERROR_DEADLINE,      /* the call's deadline passed */
  GK_UPSTREAM_ERROR_CLOSED,        /* closed before the answer's end */
  GK_UPSTREAM_ERROR_PROTOCOL,      /* an answer that breaks HTTP, or a head too large */
  GK_UPSTREAM_ERROR_TOO_LARGE,     /* an answer larger than allowed */
  GK_UPSTREAM_ERROR_FAILED,
} GkUpstreamError;

/* Bounds on a response head: above them the call fails with PROTOCOL. */
#define GK_UPSTREAM_HEAD_LIMIT          (64 * 1024)
#define GK_UPSTREAM_HEADER_COUNT_LIMIT  100
/* Connect timeout (further bounded by the call's timeouts). */
#define GK_UPSTREAM_CONNECT_TIMEOUT_S   15

typedef struct _GkUpstream     GkUpstream;
typedef struct _GkUpstreamCall GkUpstreamCall;

/* The response head arrived (@error NULL) or the call failed. */
typedef void (*GkUpstreamHeadFunc) (GkUpstreamCall *call,
                                    GError         *error,
                                    gpointer        user_data);
/* The next piece of the body (@chunk), its end (@chunk and @error NULL) or
 * a failure. May be called before gk_upstream_call_read() returns, so a
 * caller's next read must be its last statement. */
typedef void (*GkUpstreamReadFunc) (GkUpstreamCall *call,
                                    GBytes         *chunk,
                                    GError         *error,
                                    gpointer        user_data);

GQuark              gk_upstream_error_quark         (void);

/* A source that runs @func at its ready time, and only then (a timeout
 * source would set its own ready time again after each dispatch). */
GSource            *gk_ready_source_new             (GSourceFunc          func,
                                                     gpointer             data);

/* @base_url: http:// or https:// with a host and an optional port; its path
 * is prefixed to every call's path. @timeout_s: first-byte timeout and idle
 * timeout between two pieces of a body (0 = none); connecting is bounded by
 * GK_UPSTREAM_CONNECT_TIMEOUT_S and this. */
GkUpstream         *gk_upstream_new                 (const char          *base_url,
                                                     guint                timeout_s,
                                                     const char          *user_agent,
                                                     GError             **error);
/* Closes the idle connections; calls in progress must be freed first. */
void                gk_upstream_free                (GkUpstream          *self);
/* @func runs at the end of each dispatch of @self's source, once the calls'
 * callbacks have run (what they made ready elsewhere can be done then,
 * without another main loop iteration). */
void                gk_upstream_set_dispatch_func   (GkUpstream          *self,
                                                     GSourceFunc          func,
                                                     gpointer             data);
/* Connections open and not serving a call (for tests). */
guint               gk_upstream_get_idle_count      (GkUpstream          *self);
/* Connections opened so far (for tests). */
guint               gk_upstream_get_connect_count   (GkUpstream          *self);

/* @path_and_query is appended to the base URL's path; it must be encoded
 * already (no space or control byte: the call then fails with INVALID). */
GkUpstreamCall     *gk_upstream_call_new            (GkUpstream          *upstream,
                                                     const char          *method,
                                                     const char          *path_and_query);
/* Header lines holding CR, LF or NUL are dropped. Header lines are wiped
 * from memory when the call is freed (they may hold a key). */
void                gk_upstream_call_add_header     (GkUpstreamCall      *call,
                                                     const char          *name,
                                                     const char          *value);
/* Sets Content-Type and the body; @body is kept, not copied. */
void                gk_upstream_call_set_body       (GkUpstreamCall      *call,
                                                     const char          *content_type,
                                                     GBytes              *body);
/* The whole call, body included, must end before @deadline (monotonic
 * time, µs; 0 = no deadline), or it fails with DEADLINE. */
void                gk_upstream_call_set_deadline   (GkUpstreamCall      *call,
                                                     gint64               deadline);
/* Sends the request. @callback always runs later from the main context,
 * never from within this function. Cancelling @cancellable ends the
 * transfer at once (its connection is closed) and fails the call with
 * G_IO_ERROR_CANCELLED. */
void                gk_upstream_call_send           (GkUpstreamCall      *call,
                                                     GCancellable        *cancellable,
                                                     GkUpstreamHeadFunc   callback,
                                                     gpointer             user_data);
/* Ends the call as its cancellable would (without one): a call not sent
 * yet is not sent. */
void                gk_upstream_call_cancel         (GkUpstreamCall      *call);
guint               gk_upstream_call_get_status     (GkUpstreamCall      *call);
SoupMessageHeaders *gk_upstream_call_get_response_headers (GkUpstreamCall *call);
/* Whether the request went over a pooled connection (for tests). */
gboolean            gk_upstream_call_get_reused     (GkUpstreamCall      *call);
/* The HTTP version of the answer: 1 (HTTP/1.x) or 2. */
guint               gk_upstream_call_get_http_version (GkUpstreamCall    *call);
/* Reads the next piece of the response body (after the head arrived).
 * Until a read is asked for, at most a little of the body is read ahead:
 * the transfer waits for its reader. */
void                gk_upstream_call_read           (GkUpstreamCall      *call,
                                                     GkUpstreamReadFunc   callback,
                                                     gpointer             user_data);
/* A held call hands its reader no body (at most a little is read ahead,
 * then the transfer pauses) until released; a failure still reaches the
 * reader. For a client slower than the upstream. */
void                gk_upstream_call_set_held       (GkUpstreamCall      *call,
                                                     gboolean             held);
/* Ends the call: a connection whose response was read to its end stays in
 * the pool, any other is closed. */
void                gk_upstream_call_free           (GkUpstreamCall      *call);

/* One blocking GET of @url with one extra header line ("Name: value"),
 * its body read whole (at most 1 MiB). For `key test`, from a worker
 * thread. Errors are GK_UPSTREAM_ERROR's. */
gboolean            gk_upstream_get_sync            (const char          *url,
                                                     const char          *header_line,
                                                     guint                timeout_s,
                                                     GCancellable        *cancellable,
                                                     guint               *status,
                                                     GBytes             **body,
                                                     GError             **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GkUpstreamCall, gk_upstream_call_free)

G_END_DECLS
