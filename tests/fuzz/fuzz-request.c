/* fuzz-request.c: what the gateway reads from a client request.
 *
 * The input is written like the request it stands for:
 *
 *   PATH[?QUERY]
 *   Name: value          (any number of header lines)
 *                        (a blank line)
 *   BODY
 *
 * and goes through the proxy's helpers: the Host check, the client's
 * credential (x-goog-api-key, Authorization: Bearer, ?key=), the query sent
 * upstream (by the request builder) and the model and stream flag. Besides
 * not crashing, the query sent upstream must keep every parameter but the
 * credential, in order and the same once decoded, and must never carry a
 * "key" parameter: the gateway token stays with the gateway, however the
 * client spelt it.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <libsoup/soup.h>

#include "fuzz-common.h"
#include "gk-gateway-private.h"
#include "gk-request.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const char * const allowed_hosts[] = {
  "127.0.0.1:8787", "localhost:8787", "[::1]:8787", NULL,
};

/* Whether a query parameter is named "key" once decoded: how Google, and
 * g_uri_parse_params() in the gateway, read it. */
static gboolean
param_is_key (const char *param)
{
  const char *eq = strchr (param, '=');
  g_autofree char *raw = g_strndup (param, eq ? (gsize) (eq - param) : strlen (param));
  g_autofree char *name = g_uri_unescape_string (raw, NULL);

  return g_strcmp0 (name != NULL ? name : raw, "key") == 0;
}

/* The query sent upstream, as the request builder (gk-request.c) writes
 * it: every parameter but the credential, in order, each the same once
 * decoded; or a refusal. */
static void
check_query (const char *query)
{
  g_autoptr(GError) error = NULL;
  GkUpstreamRequest request;
  const char *upstream;
  g_auto(GStrv) in = NULL;
  g_auto(GStrv) out = NULL;
  guint j = 0;

  if (!gk_upstream_request_build (&request, "GET", "/v1beta/models", query, 0, NULL, NULL, &error))
    {
      g_assert_true (g_error_matches (error, GK_REQUEST_ERROR, GK_REQUEST_ERROR_INVALID));
      return;
    }
  upstream = strchr (request.path_and_query, '?');
  if (upstream == NULL)
    {
      gk_upstream_request_clear (&request);
      return;
    }
  upstream++;
  g_assert_nonnull (query);
  g_assert_cmpstr (upstream, !=, "");
  g_assert_false (g_str_has_prefix (upstream, "&"));
  g_assert_false (g_str_has_suffix (upstream, "&"));
  g_assert_null (strstr (upstream, "&&"));

  in = g_strsplit (query, "&", -1);
  out = g_strsplit (upstream, "&", -1);
  for (guint i = 0; in[i] != NULL; i++)
    {
      g_autofree char *decoded_in = NULL;
      g_autofree char *decoded_out = NULL;

      if (*in[i] == '\0' || param_is_key (in[i]))
        continue;
      g_assert_nonnull (out[j]);
      decoded_in = g_uri_unescape_string (in[i], NULL);
      decoded_out = g_uri_unescape_string (out[j], NULL);
      g_assert_cmpstr (decoded_out, ==, decoded_in);
      j++;
    }
  g_assert_null (out[j]);
  gk_upstream_request_clear (&request);
}

static void
check_credential (SoupMessageHeaders *headers,
                  const char         *query)
{
  g_autofree char *credential = gk_gateway_credential_from (headers, query);
  const char *api_key = soup_message_headers_get_one (headers, "x-goog-api-key");
  const char *authorization = soup_message_headers_get_one (headers, "Authorization");

  if (credential == NULL)
    {
      g_assert_true (api_key == NULL || *api_key == '\0');
      return;
    }
  g_assert_cmpstr (credential, !=, "");
  if (api_key != NULL && *api_key != '\0')
    g_assert_cmpstr (credential, ==, api_key);
  else if (authorization != NULL && g_ascii_strncasecmp (authorization, "Bearer ", 7) == 0 &&
           authorization[7 + strspn (authorization + 7, " ")] != '\0')
    g_assert_cmpstr (credential, ==, authorization + 7 + strspn (authorization + 7, " "));
  else
    {
      /* From ?key=: then it is there, and not sent upstream. */
      g_autoptr(GHashTable) params = NULL;

      g_assert_nonnull (query);
      params = g_uri_parse_params (query, -1, "&", G_URI_PARAMS_NONE, NULL);
      g_assert_nonnull (params);
      g_assert_cmpstr (g_hash_table_lookup (params, "key"), ==, credential);
    }
}

static void
check_host (const char *host)
{
  gboolean allowed = gk_gateway_host_allowed (host, allowed_hosts);
  gboolean expected = FALSE;

  for (guint i = 0; host != NULL && allowed_hosts[i] != NULL; i++)
    if (strlen (host) == strlen (allowed_hosts[i]) &&
        g_ascii_strncasecmp (host, allowed_hosts[i], strlen (host)) == 0)
      expected = TRUE;
  g_assert_cmpint (allowed, ==, expected);
}

static void
check_model (const char *path,
             GBytes     *body)
{
  gboolean openai = strstr (path, "/openai/") != NULL;
  gboolean stream = TRUE;
  g_autofree char *model = gk_gateway_model_from_request (path, body, openai, &stream);

  if (openai)
    return;
  if (strstr (path, "/models/") == NULL)
    {
      g_assert_null (model);
      g_assert_false (stream);
      return;
    }
  g_assert_nonnull (model);
  g_assert_null (strchr (model, ':'));
  g_assert_nonnull (strstr (path, model));
  if (stream)
    g_assert_true (g_str_has_suffix (path, ":streamGenerateContent"));
}

/* Adds "Name: value" the way libsoup's parser would have: a name with no
 * white space or colon, the value trimmed. Anything else never reaches the
 * gateway as a header. */
static void
add_header (SoupMessageHeaders *headers,
            char               *line)
{
  char *colon = strchr (line, ':');
  char *value;

  if (colon == NULL || colon == line)
    return;
  *colon = '\0';
  if (strpbrk (line, " \t\r\n") != NULL)
    return;
  value = g_strstrip (colon + 1);
  if (strpbrk (value, "\r\n") != NULL)
    return;
  soup_message_headers_append (headers, line, value);
}

/* A warning or critical from a client's request is a finding too. Aborts
 * rather than trapping (as G_DEBUG=fatal-criticals does) so that libFuzzer
 * keeps the input. */
static GLogWriterOutput
abort_on_warning (GLogLevelFlags   level,
                  const GLogField *fields,
                  gsize            n_fields,
                  gpointer         user_data)
{
  GLogWriterOutput output = g_log_writer_standard_streams (level, fields, n_fields, user_data);

  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    abort ();
  return output;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  static gsize logs_fatal = 0;
  g_autofree char *text = fuzz_strndup (data, size);
  g_autoptr(SoupMessageHeaders) headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  g_autoptr(GBytes) body = NULL;
  char *line;
  char *next;
  char *path;
  char *query;

  if (g_once_init_enter (&logs_fatal))
    {
      g_log_set_writer_func (abort_on_warning, NULL, NULL);
      g_once_init_leave (&logs_fatal, 1);
    }

  /* The body is the raw bytes after the blank line, NULs included. */
  next = strstr (text, "\n\n");
  if (next != NULL)
    {
      gsize head = (gsize) (next - text) + 2;

      body = g_bytes_new (data + head, size - head);
      *next = '\0';
    }

  path = text;
  next = strchr (text, '\n');
  if (next != NULL)
    *next++ = '\0';
  query = strchr (path, '?');
  if (query != NULL)
    *query++ = '\0';

  for (line = next; line != NULL; line = next)
    {
      next = strchr (line, '\n');
      if (next != NULL)
        *next++ = '\0';
      add_header (headers, line);
    }

  check_host (soup_message_headers_get_one (headers, "Host"));
  check_credential (headers, query);
  check_query (query);
  check_model (path, body);
  return 0;
}
