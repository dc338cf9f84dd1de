/* gk-gateway-private.h: pieces shared by the gateway's proxy and admin API.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <libsoup/soup.h>

#include "gk-core.h"

G_BEGIN_DECLS

/* {"error":{"code","message","status"}}, Google's error shape. */
char *gk_gateway_error_json    (guint              code,
                                const char        *status,
                                const char        *message);
/* Sets the status and a JSON body (taken). */
void  gk_gateway_respond_json  (SoupServerMessage *msg,
                                guint              status,
                                char              *body);
void  gk_gateway_respond_error (SoupServerMessage *msg,
                                guint              code,
                                const char        *status,
                                const char        *message);

/* Serves /admin/gemini-keys@subpath (the caller checked the admin token).
 * @body is the request body, NULL when empty. */
void  gk_gateway_admin_handle  (GkKeyStore        *key_store,
                                GkPool            *pool,
                                SoupServerMessage *msg,
                                const char        *subpath,
                                GHashTable        *query,
                                GByteArray        *body);

G_END_DECLS
