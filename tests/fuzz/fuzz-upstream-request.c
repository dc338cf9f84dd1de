/* fuzz-upstream-request.c: the request the gateway sends upstream, built
 * from anything a client may send (gk-request.c), and the redaction of
 * what it relays (gk-redact.c).
 *
 * The input is written like a request, with percent-escapes standing for
 * bytes a line cannot hold (so %0d%0a is a CR LF inside the path or a
 * header value, as a hostile client would smuggle it):
 *
 *   METHOD PATH[?QUERY]   (PATH decoded, as SoupServer hands it over;
 *                          QUERY raw, as on the request line)
 *   Name: value           (any number; name and value decoded)
 *                         (a blank line)
 *   BODY
 *
 * Whenever the builder accepts it, the upstream request, formatted as
 * HTTP/1.1 the way an upstream client writes it, must parse back
 * (soup_headers_parse_request) as exactly one request: the same method
 * and target, exactly the headers that were meant (the Host, the allowed
 * client headers, the pool key once) and nothing injected; the target
 * holds no control byte, no space and no ?key= credential.
 *
 * The body, redacted in two pieces cut anywhere, must come out the same
 * as redacted whole, with no key left in it.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <libsoup/soup.h>

#include "fuzz-common.h"
#include "gk-outcome.h"
#include "gk-redact.h"
#include "gk-request.h"

#define POOL_KEY "AIzaSyFuzzPoolKey00000000000000000000000"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* @text decoded (%XX), cut at a decoded NUL: C strings, as the gateway
 * gets them. */
static char *
decode (const char *text)
{
  g_autoptr(GBytes) bytes = g_uri_unescape_bytes (text, -1, NULL, NULL);
  gsize len = 0;
  const char *raw;

  if (bytes == NULL)
    return g_strdup (text);
  raw = g_bytes_get_data (bytes, &len);
  return g_strndup (raw, len);
}

static void
check_target (const char *target)
{
  const char *query = strchr (target, '?');

  g_assert_true (target[0] == '/');
  for (const char *p = target; *p != '\0'; p++)
    {
      g_assert_cmpint ((guchar) *p, >, 0x20);
      g_assert_cmpint ((guchar) *p, <, 0x7f);
      g_assert_true (*p != '#');
    }
  if (query != NULL)
    {
      g_auto(GStrv) params = g_strsplit (query + 1, "&", -1);

      for (guint i = 0; params[i] != NULL; i++)
        {
          const char *eq = strchr (params[i], '=');
          g_autofree char *name = g_uri_unescape_segment (params[i], eq, NULL);

          g_assert_cmpstr (params[i], !=, "");
          g_assert_cmpstr (name, !=, "key");
        }
    }
}

/* The request as an HTTP/1.1 client writes it, parsed back. */
static void
check_round_trip (const GkUpstreamRequest *request,
                  GBytes                  *body)
{
  g_autoptr(GString) head = g_string_new (NULL);
  g_autoptr(SoupMessageHeaders) parsed = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  g_autofree char *method = NULL;
  g_autofree char *path = NULL;
  SoupHTTPVersion version;
  SoupMessageHeadersIter iter;
  const char *name, *value;
  guint expected = 2;
  guint n = 0;
  guint status;
  gsize body_len = body ? g_bytes_get_size (body) : 0;

  g_string_append_printf (head, "%s %s HTTP/1.1\r\nHost: upstream.example\r\n", request->method,
                          request->path_and_query);
  for (guint i = 0; i < request->names->len; i++)
    g_string_append_printf (head, "%s: %s\r\n", (char *) request->names->pdata[i],
                            (char *) request->values->pdata[i]);
  expected += request->names->len;
  g_string_append (head, "x-goog-api-key: " POOL_KEY "\r\n");
  if (body_len > 0)
    {
      g_string_append_printf (head, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                              request->content_type ? request->content_type : "application/json",
                              body_len);
      expected += 2;
    }
  g_string_append (head, "\r\n");

  /* One head: its only blank line is its end. */
  g_assert_true (strstr (head->str, "\r\n\r\n") == head->str + head->len - 4);
  status = soup_headers_parse_request (head->str, (int) head->len, parsed, &method, &path, &version);
  g_assert_cmpuint (status, ==, SOUP_STATUS_OK);
  g_assert_cmpstr (method, ==, request->method);
  g_assert_cmpstr (path, ==, request->path_and_query);

  soup_message_headers_iter_init (&iter, parsed);
  while (soup_message_headers_iter_next (&iter, &name, &value))
    {
      n++;
      if (g_ascii_strcasecmp (name, "x-goog-api-key") == 0)
        g_assert_cmpstr (value, ==, POOL_KEY);
      g_assert_false (g_ascii_strcasecmp (name, "Authorization") == 0);
      g_assert_false (g_ascii_strcasecmp (name, "Cookie") == 0);
      g_assert_false (g_ascii_strcasecmp (name, "Transfer-Encoding") == 0);
    }
  g_assert_cmpuint (n, ==, expected);
  for (guint i = 0; i < request->names->len; i++)
    {
      const char *got = soup_message_headers_get_list (parsed, request->names->pdata[i]);

      g_assert_nonnull (got);
      g_assert_nonnull (strstr (got, request->values->pdata[i]));
    }
}

static void
check_redaction (GBytes *body,
                 gsize   cut)
{
  gsize len = 0;
  const char *raw = body ? g_bytes_get_data (body, &len) : NULL;
  g_autoptr(GString) streamed = g_string_new (NULL);
  g_autofree char *whole = NULL;
  gsize whole_len = 0;
  GkRedactor redactor;

  if (len == 0)
    return;
  cut %= len + 1;
  gk_redactor_init (&redactor);
  gk_redactor_feed (&redactor, raw, cut, streamed);
  gk_redactor_feed (&redactor, raw + cut, len - cut, streamed);
  gk_redactor_finish (&redactor, streamed);
  gk_redactor_clear (&redactor);

  whole = gk_redact_bytes (raw, len, &whole_len);
  if (whole == NULL)
    {
      g_assert_cmpuint (streamed->len, ==, len);
      g_assert_true (memcmp (streamed->str, raw, len) == 0);
      return;
    }
  g_assert_cmpuint (streamed->len, ==, whole_len);
  g_assert_true (memcmp (streamed->str, whole, whole_len) == 0);
  /* Redacting again finds nothing. */
  {
    gsize again_len;
    g_autofree char *again = gk_redact_bytes (whole, whole_len, &again_len);

    g_assert_null (again);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autofree char *text = fuzz_strndup (data, size);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  g_autofree char *escaped = NULL;
  g_auto(GStrv) lines = NULL;
  GkUpstreamRequest request;
  char *blank;
  char *space;
  char *query;
  const char *method;

  blank = strstr (text, "\n\n");
  if (blank != NULL)
    {
      gsize head_len = blank - text;

      body = g_bytes_new (data + head_len + 2, size - head_len - 2);
      *blank = '\0';
    }
  lines = g_strsplit (text, "\n", -1);
  if (lines[0] == NULL)
    return 0;
  space = strchr (lines[0], ' ');
  if (space == NULL)
    return 0;
  *space = '\0';
  method = lines[0];
  query = strchr (space + 1, '?');
  if (query != NULL)
    *query++ = '\0';
  path = decode (space + 1);
  for (guint i = 1; lines[i] != NULL; i++)
    {
      char *colon = strchr (lines[i], ':');

      if (colon == NULL)
        continue;
      *colon = '\0';
      /* libsoup hands values over trimmed. */
      g_ptr_array_add (names, decode (lines[i]));
      g_ptr_array_add (values, g_strstrip (decode (colon + 1)));
    }

  escaped = gk_request_escape_for_log (path);
  for (const char *p = escaped; *p != '\0'; p++)
    g_assert_false ((guchar) *p < 0x20 || *p == 0x7f);

  if (gk_upstream_request_build (&request, method, path, query, names->len,
                                 (const char * const *) names->pdata,
                                 (const char * const *) values->pdata, &error))
    {
      g_assert_no_error (error);
      check_target (request.path_and_query);
      check_round_trip (&request, body);
      gk_upstream_request_clear (&request);
    }
  else
    {
      g_assert_nonnull (error);
      g_assert_true (error->domain == GK_REQUEST_ERROR);
    }

  if (body != NULL)
    {
      gsize len;
      const char *raw = g_bytes_get_data (body, &len);

      gk_json_depth_ok (raw, len, GK_REQUEST_MAX_JSON_DEPTH);
    }
  check_redaction (body, size > 0 ? (gsize) data[0] * 31 + size / 2 : 0);
  return 0;
}
