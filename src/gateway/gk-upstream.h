/* gk-upstream.h: the gateway's HTTP/1.1 client for its one upstream.
 *
 * A SoupSession costs several times what the gateway's server side costs
 * per request; this client does only what the proxy needs: one request head
 * and body written at once, a keep-alive connection pool for the upstream
 * host, and response bodies (Content-Length, chunked or until close)
 * handed over piece by piece as they arrive. https upstreams go through
 * GTlsClientConnection.
 *
 * Everything runs in the thread-default main context of the thread that
 * created the GkUpstream; nothing here is thread-safe.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

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

/* @base_url: http:// or https:// with a host and an optional port; its path
 * is prefixed to every call's path. @timeout_s: connect and read timeout
 * (0 = none). */
GkUpstream         *gk_upstream_new                 (const char          *base_url,
                                                     guint                timeout_s,
                                                     const char          *user_agent,
                                                     GError             **error);
/* Closes the idle connections; calls in progress must be freed first. */
void                gk_upstream_free                (GkUpstream          *self);
/* Connections waiting in the pool (for tests). */
guint               gk_upstream_get_idle_count      (GkUpstream          *self);
/* Connections opened so far (for tests). */
guint               gk_upstream_get_connect_count   (GkUpstream          *self);

/* @path_and_query is appended to the base URL's path. */
GkUpstreamCall     *gk_upstream_call_new            (GkUpstream          *upstream,
                                                     const char          *method,
                                                     const char          *path_and_query);
/* Header lines holding CR or LF are dropped. The request head is wiped
 * from memory when the call is freed (it may hold a key). */
void                gk_upstream_call_add_header     (GkUpstreamCall      *call,
                                                     const char          *name,
                                                     const char          *value);
/* Sets Content-Type and Content-Length; @body is kept, not copied. */
void                gk_upstream_call_set_body       (GkUpstreamCall      *call,
                                                     const char          *content_type,
                                                     GBytes              *body);
/* Sends the request. @callback always runs later from the main context,
 * never from within this function. */
void                gk_upstream_call_send           (GkUpstreamCall      *call,
                                                     GCancellable        *cancellable,
                                                     GkUpstreamHeadFunc   callback,
                                                     gpointer             user_data);
guint               gk_upstream_call_get_status     (GkUpstreamCall      *call);
SoupMessageHeaders *gk_upstream_call_get_response_headers (GkUpstreamCall *call);
/* Whether the request went over a pooled connection (for tests). */
gboolean            gk_upstream_call_get_reused     (GkUpstreamCall      *call);
/* Reads the next piece of the response body (after the head arrived). */
void                gk_upstream_call_read           (GkUpstreamCall      *call,
                                                     GCancellable        *cancellable,
                                                     GkUpstreamReadFunc   callback,
                                                     gpointer             user_data);
/* Ends the call: a connection whose response was read to its end goes back
 * to the pool, any other is closed. */
void                gk_upstream_call_free           (GkUpstreamCall      *call);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GkUpstreamCall, gk_upstream_call_free)

G_END_DECLS
