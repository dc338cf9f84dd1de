/* gk-gateway-private.h: pieces shared by the gateway's proxy and admin API.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <libsoup/soup.h>

#include "gk-core.h"

G_BEGIN_DECLS

/* A client request being served and the answer made to it
 * (libmicrohttpd's request, gk-gateway.c). */
typedef struct _GkExchange GkExchange;

const char         *gk_exchange_get_method           (GkExchange *exchange);
/* Headers added to the answer. */
SoupMessageHeaders *gk_exchange_get_response_headers (GkExchange *exchange);

/* {"error":{"code","message","status"}}, Google's error shape. */
char *gk_gateway_error_json    (guint              code,
                                const char        *status,
                                const char        *message);
/* Sets the status and a JSON body (taken). */
void  gk_gateway_respond_json  (GkExchange        *msg,
                                guint              status,
                                char              *body);
void  gk_gateway_respond_error (GkExchange        *msg,
                                guint              code,
                                const char        *status,
                                const char        *message);

/* Serves /admin/gemini-keys@subpath (the caller checked the admin token).
 * @body is the request body, NULL when empty. */
void  gk_gateway_admin_handle  (GkKeyStore        *key_store,
                                GkPool            *pool,
                                GkExchange        *msg,
                                const char        *subpath,
                                GHashTable        *query,
                                GByteArray        *body);

/* Finds the token usage in a streamed answer as it passes: SSE events
 * (separated by a blank line, \n\n or \r\n\r\n) or the objects of a
 * streamed JSON array. Fed in any pieces; after finish, @usage holds the
 * last usage the stream carried (usage.found is FALSE when none). */
typedef struct
{
  gboolean      sse;
  GString      *pending;
  int           depth;
  gboolean      in_string;
  gboolean      escape;
  GkTokenUsage  usage;
} GkUsageScanner;

void      gk_usage_scanner_init          (GkUsageScanner     *scanner,
                                          gboolean            sse);
void      gk_usage_scanner_feed          (GkUsageScanner     *scanner,
                                          const char         *data,
                                          gsize               len);
void      gk_usage_scanner_finish        (GkUsageScanner     *scanner);
void      gk_usage_scanner_clear         (GkUsageScanner     *scanner);

/* The usage of a whole (non-stream) answer. */
gboolean  gk_gateway_usage_parse_answer  (const char         *data,
                                          gsize               len,
                                          GkTokenUsage       *usage);

/* What the proxy reads from a client request. @query is the raw query
 * string (still percent-encoded), as the client sent it. */
char     *gk_gateway_model_from_request  (const char         *path,
                                          GBytes             *body,
                                          gboolean            openai,
                                          gboolean           *stream);
char     *gk_gateway_credential_from     (SoupMessageHeaders *headers,
                                          const char         *query);
gboolean  gk_gateway_host_allowed        (const char         *host,
                                          const char * const *allowed_hosts);

G_END_DECLS
