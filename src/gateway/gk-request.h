/* gk-request.h: the request the gateway sends upstream, built only from
 * validated parts of the client's request.
 *
 * Pure functions: no I/O, no global state, so the fuzzer can call them.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define GK_REQUEST_ERROR (gk_request_error_quark ())

typedef enum
{
  GK_REQUEST_ERROR_METHOD,        /* not a method the gateway forwards: 405 */
  GK_REQUEST_ERROR_INVALID,       /* control bytes, bad escapes, dot segments: 400 */
  GK_REQUEST_ERROR_ENCODING,      /* a Content-Encoding the gateway cannot read: 415 */
} GkRequestError;

GQuark gk_request_error_quark (void);

/* The methods the Gemini API uses; anything else is answered by the
 * gateway itself. For the Allow header of a 405. */
#define GK_REQUEST_ALLOWED_METHODS "GET, POST, PUT, PATCH, DELETE"

/* Deeper JSON request bodies are refused before any parser sees them. */
#define GK_REQUEST_MAX_JSON_DEPTH 64

typedef struct
{
  char      *method;          /* upstream method */
  char      *path_and_query;  /* re-encoded, without the client's ?key= */
  char      *content_type;    /* of the body, NULL when the client sent none */
  GPtrArray *names;           /* forwarded header names (char *) */
  GPtrArray *values;          /* and their values, in the same order */
} GkUpstreamRequest;

/* Builds the upstream request from the client's @method, @path (decoded,
 * with dot segments removed), @query (encoded, as on the request line,
 * may be NULL) and its @n_headers headers (@names, @values).
 *
 * Only the headers of the allow-list are kept (see gk-request.c); the
 * client's credentials (x-goog-api-key, Authorization, ?key=) never are.
 * Any control byte (C0 or DEL) in the path, the query or a forwarded
 * header fails with GK_REQUEST_ERROR_INVALID. */
gboolean gk_upstream_request_build  (GkUpstreamRequest  *out,
                                     const char         *method,
                                     const char         *path,
                                     const char         *query,
                                     guint               n_headers,
                                     const char * const *names,
                                     const char * const *values,
                                     GError            **error);
void     gk_upstream_request_clear  (GkUpstreamRequest  *request);

/* @text with every control byte and backslash written as \xHH: one line,
 * safe to log. */
char    *gk_request_escape_for_log  (const char         *text);


G_END_DECLS
