/* gk-gateway.h: the local gateway (libsoup-3 server + upstream client).
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
} GkGatewayError;

#define GK_TYPE_GATEWAY (gk_gateway_get_type ())
G_DECLARE_FINAL_TYPE (GkGateway, gk_gateway, GK, GATEWAY, GObject)

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
gboolean   gk_gateway_is_running  (GkGateway    *self);
guint      gk_gateway_get_port    (GkGateway    *self);

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
