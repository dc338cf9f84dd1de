/* gk-gateway.h: the local gateway (libmicrohttpd server + upstream client).
 *
 * Runs in the GUI process (toggle in Preferences) or headless
 * (`gemini-keysctl serve`). Listens on loopback only.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-core.h"

G_BEGIN_DECLS

#define GK_GATEWAY_ERROR (gk_gateway_error_quark ())

typedef enum
{
  GK_GATEWAY_ERROR_ADDRESS,     /* not a loopback address, or port in use */
  GK_GATEWAY_ERROR_UPSTREAM,    /* the upstream could not be reached */
  GK_GATEWAY_ERROR_FAILED,
  GK_GATEWAY_ERROR_INVALID_KEY, /* key test: the upstream rejected the key */
} GkGatewayError;

/* Defaults of the limits below. */
#define GK_GATEWAY_DEFAULT_BODY_LIMIT      (20 * 1024 * 1024)
#define GK_GATEWAY_DEFAULT_MAX_IN_FLIGHT   256
/* Usage rows kept in memory while the database server is out of reach
 * (rows kept and requests in flight; 503 beyond), and the most a user may
 * set (`gemini-keysctl serve --outage-rows`). */
#define GK_GATEWAY_DEFAULT_OUTAGE_ROWS     100000
#define GK_GATEWAY_MAX_OUTAGE_ROWS         1000000
#define GK_GATEWAY_DEFAULT_MAX_ATTEMPTS    5
#define GK_GATEWAY_DEFAULT_UPSTREAM_TIMEOUT 120
#define GK_GATEWAY_DEFAULT_REQUEST_TIMEOUT  300
/* Largest non-stream upstream answer relayed (502 beyond). */
#define GK_GATEWAY_ANSWER_LIMIT             (64 * 1024 * 1024)
/* A client has this long to send a request head once it starts one (or
 * once it connects), and may stay idle this long on a keep-alive
 * connection (or between two pieces of its request body). */
#define GK_GATEWAY_DEFAULT_HEADER_TIMEOUT  10
#define GK_GATEWAY_DEFAULT_IDLE_TIMEOUT    30

#define GK_TYPE_GATEWAY (gk_gateway_get_type ())
G_DECLARE_FINAL_TYPE (GkGateway, gk_gateway, GK, GATEWAY, GObject)

/* The server runs in a thread of its own with its own GMainContext, so
 * SQLite and network work never blocks the caller's main loop. The "log"
 * signal (one line per request, keys redacted) is emitted in that thread.
 */

GQuark     gk_gateway_error_quark (void);

/* The upstream base URL: $GEMINI_KEYS_UPSTREAM or Google's. */
const char *gk_gateway_default_upstream (void);

GkGateway *gk_gateway_new         (GkKeyStore   *key_store,
                                   GkPool       *pool);
/* Starts listening on 127.0.0.1 (and ::1) at @port; 0 picks a free port
 * (see gk_gateway_get_port). Refuses a non-loopback address. */
gboolean   gk_gateway_start       (GkGateway    *self,
                                   const char   *address,
                                   guint         port,
                                   GError      **error);
void       gk_gateway_stop        (GkGateway    *self);

/* Settings read by gk_gateway_start(); changing them later has no effect
 * until the next start. */
/* The upstream base URL (default: gk_gateway_default_upstream()). */
void       gk_gateway_set_upstream          (GkGateway  *self,
                                             const char *base_url);
/* Largest request body accepted, in bytes (413 beyond). */
void       gk_gateway_set_body_limit        (GkGateway  *self,
                                             gsize       bytes);
/* Client requests served at once (503 beyond). */
void       gk_gateway_set_max_in_flight     (GkGateway  *self,
                                             guint       requests);
/* While the database server is out of reach, requests are served from the
 * pool's last snapshot and their usage rows kept in memory until it is
 * back, as long as the rows kept and the requests in flight number at most
 * @rows; beyond, clients get 503. */
void       gk_gateway_set_outage_rows       (GkGateway  *self,
                                             guint       rows);
/* Client header and idle timeouts, in milliseconds (see the defaults
 * above, in seconds). */
void       gk_gateway_set_client_timeouts   (GkGateway  *self,
                                             guint       header_ms,
                                             guint       idle_ms);
/* Upstream first-byte timeout and idle timeout between two pieces of an
 * answer, per attempt, in seconds (0 = none). */
void       gk_gateway_set_upstream_timeout  (GkGateway  *self,
                                             guint       seconds);
/* Deadline of one client request, all its attempts on all keys included,
 * in seconds (0 = none): the client then gets 504. */
void       gk_gateway_set_request_timeout   (GkGateway  *self,
                                             guint       seconds);
/* Keys tried for one client request before giving up. */
void       gk_gateway_set_max_attempts      (GkGateway  *self,
                                             guint       attempts);
gboolean   gk_gateway_is_running  (GkGateway    *self);
guint      gk_gateway_get_port    (GkGateway    *self);
/* The usage rows this gateway has recorded (written, or kept while the
 * disk is full), from any thread. They are written over the connection of
 * the pool it was made with, where they do not move data_version: a
 * watcher on that connection compares this count too. */
guint      gk_gateway_get_usage_count (GkGateway *self);

/* Tests one key against the upstream's models endpoint ("Test key" in the
 * GUI, `gemini-keysctl key test`). On success an INVALID key becomes ACTIVE;
 * on API_KEY_INVALID it becomes INVALID. The result tells what happened. */
void       gk_gateway_test_key_async  (GkKeyStore          *key_store,
                                       gint64               key_id,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data);
gboolean   gk_gateway_test_key_finish (GAsyncResult        *result,
                                       GError             **error);

G_END_DECLS
