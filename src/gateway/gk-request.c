/* gk-request.c: the upstream request, built from validated parts.
 *
 * Nothing the client sent reaches the upstream as it came: the method must
 * be one the Gemini API uses, the path is percent-encoded again from its
 * decoded form with an explicit set of bytes left as they are, the query is
 * re-encoded parameter by parameter (its ?key= left out), and headers are
 * forwarded only from an allow-list:
 *
 *   Content-Type          the body's type (sent with the body)
 *   Accept                what the client reads (JSON, SSE)
 *   x-goog-api-client     the SDK's name and version, as Google's SDKs send it
 *   X-Goog-Upload-*       the Files API's resumable upload protocol
 *
 * Everything else stays with the gateway: the client's credentials
 * (x-goog-api-key, Authorization, the ?key= parameter) and cookies, the
 * hop-by-hop and framing headers (the upstream client writes its own),
 * Accept-Encoding (the gateway reads the answers: they come uncompressed),
 * User-Agent (the gateway sends its own) and anything unknown.
 *
 * A control byte (C0 or DEL, tab included) anywhere in the path, the query
 * (decoded or not) or a forwarded header refuses the request: such bytes
 * have no business in any of them and are how requests get split. So does
 * a byte outside printable ASCII in a forwarded header.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <string.h>

#include "gk-request.h"

G_DEFINE_QUARK (gk-request-error-quark, gk_request_error)

/* Header values longer than this are nobody's legitimate metadata. */
#define MAX_HEADER_VALUE 8192

static const char * const forwarded_methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE" };

static const char * const forwarded_headers[] = { "Accept", "x-goog-api-client" };

#define UPLOAD_HEADER_PREFIX "x-goog-upload-"

static gboolean
is_control (guchar c)
{
  return c < 0x20 || c == 0x7f;
}

/* RFC 3986 unreserved characters. */
static gboolean
is_unreserved (guchar c)
{
  return g_ascii_isalnum (c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Bytes left as they are in a path: unreserved, sub-delims, ':', '@' and
 * the '/' between segments. */
static gboolean
path_keeps (guchar c)
{
  return is_unreserved (c) || c == '/' || strchr ("!$&'()*+,;=:@", c) != NULL;
}

/* Bytes left as they are in a query parameter's name or value: '&', '='
 * and '+' are not, since they would change how it splits or decodes. */
static gboolean
query_keeps (guchar c)
{
  return is_unreserved (c) || strchr ("!$'()*,;:@/?", c) != NULL;
}

/* RFC 9110 token characters, for header names. */
static gboolean
is_tchar (guchar c)
{
  return g_ascii_isalnum (c) || strchr ("!#$%&'*+-.^_`|~", c) != NULL;
}

static void
append_escaped (GString  *out,
                guchar    c,
                gboolean (*keeps) (guchar))
{
  if (keeps (c))
    g_string_append_c (out, (char) c);
  else
    g_string_append_printf (out, "%%%02X", c);
}

static gboolean
fail (GError    **error,
      const char *message)
{
  g_set_error_literal (error, GK_REQUEST_ERROR, GK_REQUEST_ERROR_INVALID, message);
  return FALSE;
}

/* The decoded path, encoded again. "." and ".." segments are refused: the
 * upstream would resolve them to a path the gateway did not route. */
static gboolean
encode_path (GString    *out,
             const char *path,
             GError    **error)
{
  const char *segment = path;

  if (path == NULL || path[0] != '/')
    return fail (error, "The request path must start with “/”.");
  for (const char *p = path;; p++)
    {
      if (*p == '/' || *p == '\0')
        {
          gsize len = p - segment;

          if ((len == 1 && segment[0] == '.') || (len == 2 && memcmp (segment, "..", 2) == 0))
            return fail (error, "The request path may not hold “.” or “..” segments.");
          segment = p + 1;
          if (*p == '\0')
            break;
        }
      if (is_control ((guchar) *p))
        return fail (error, "The request path holds a control character.");
      append_escaped (out, (guchar) *p, path_keeps);
    }
  return TRUE;
}

/* Re-encodes @len bytes of a raw query component into @encoded, its
 * decoded form going to @decoded; FALSE on a bad escape or a control byte,
 * raw or decoded. A raw '+' stays a '+' (a space to form decoding, as the
 * client meant it) and an escaped one stays escaped. */
static gboolean
reencode_component (GString    *encoded,
                    GString    *decoded,
                    const char *raw,
                    gsize       len)
{
  for (gsize i = 0; i < len; i++)
    {
      guchar c = (guchar) raw[i];

      if (c == '+')
        {
          g_string_append_c (encoded, '+');
          g_string_append_c (decoded, '+');
          continue;
        }
      if (c == '%')
        {
          if (i + 2 >= len || !g_ascii_isxdigit (raw[i + 1]) || !g_ascii_isxdigit (raw[i + 2]))
            return FALSE;
          c = (guchar) (g_ascii_xdigit_value (raw[i + 1]) * 16 + g_ascii_xdigit_value (raw[i + 2]));
          i += 2;
        }
      if (is_control (c))
        return FALSE;
      g_string_append_c (decoded, (char) c);
      append_escaped (encoded, c, query_keeps);
    }
  return TRUE;
}

/* The query, parameter by parameter: each name and value checked and
 * encoded again; empty parameters and the credential (a parameter named
 * "key" once decoded, as Google reads it) left out. */
static gboolean
encode_query (GString    *out,
              const char *query,
              GError    **error)
{
  g_autoptr(GString) param = g_string_new (NULL);
  g_autoptr(GString) name = g_string_new (NULL);
  g_autoptr(GString) value = g_string_new (NULL);
  const char *p = query;
  gboolean first = TRUE;

  if (query == NULL || *query == '\0')
    return TRUE;
  while (*p != '\0')
    {
      const char *end = strchr (p, '&');
      gsize len = end ? (gsize) (end - p) : strlen (p);
      const char *eq = memchr (p, '=', len);

      g_string_truncate (param, 0);
      g_string_truncate (name, 0);
      g_string_truncate (value, 0);
      if (!reencode_component (param, name, p, eq ? (gsize) (eq - p) : len))
        return fail (error, "The query string holds a control character or a bad escape.");
      if (eq != NULL)
        {
          g_string_append_c (param, '=');
          if (!reencode_component (param, value, eq + 1, len - (eq + 1 - p)))
            return fail (error, "The query string holds a control character or a bad escape.");
        }
      if (len > 0 && !g_str_equal (name->str, "key"))
        {
          g_string_append_c (out, first ? '?' : '&');
          first = FALSE;
          g_string_append_len (out, param->str, param->len);
        }
      p += len;
      if (*p == '&')
        p++;
    }
  return TRUE;
}

static gboolean
header_forwarded (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (forwarded_headers); i++)
    if (g_ascii_strcasecmp (name, forwarded_headers[i]) == 0)
      return TRUE;
  return g_ascii_strncasecmp (name, UPLOAD_HEADER_PREFIX, strlen (UPLOAD_HEADER_PREFIX)) == 0;
}

static gboolean
header_value_ok (const char *value)
{
  gsize len = 0;

  /* Printable ASCII only: what the forwarded headers hold, and nothing
   * an HTTP parser could read two ways. */
  for (const char *p = value; *p != '\0'; p++, len++)
    if (is_control ((guchar) *p) || (guchar) *p > 0x7e)
      return FALSE;
  return len <= MAX_HEADER_VALUE;
}

static gboolean
header_name_ok (const char *name)
{
  if (*name == '\0')
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if (!is_tchar ((guchar) *p))
      return FALSE;
  return TRUE;
}

gboolean
gk_upstream_request_build (GkUpstreamRequest  *out,
                           const char         *method,
                           const char         *path,
                           const char         *query,
                           guint               n_headers,
                           const char * const *names,
                           const char * const *values,
                           GError            **error)
{
  g_autoptr(GString) target = g_string_new (NULL);
  const char *allowed = NULL;

  g_return_val_if_fail (out != NULL, FALSE);
  memset (out, 0, sizeof *out);

  for (guint i = 0; method != NULL && i < G_N_ELEMENTS (forwarded_methods); i++)
    if (g_str_equal (method, forwarded_methods[i]))
      allowed = forwarded_methods[i];
  if (allowed == NULL)
    {
      g_set_error_literal (error, GK_REQUEST_ERROR, GK_REQUEST_ERROR_METHOD,
                           "Method not allowed; the gateway forwards " GK_REQUEST_ALLOWED_METHODS ".");
      return FALSE;
    }
  if (!encode_path (target, path, error) || !encode_query (target, query, error))
    return FALSE;

  out->names = g_ptr_array_new_with_free_func (g_free);
  out->values = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < n_headers; i++)
    {
      const char *name = names[i];
      const char *value = values[i];
      gboolean is_type = g_ascii_strcasecmp (name, "Content-Type") == 0;

      if (g_ascii_strcasecmp (name, "Content-Encoding") == 0 &&
          g_ascii_strcasecmp (value, "identity") != 0)
        {
          gk_upstream_request_clear (out);
          g_set_error_literal (error, GK_REQUEST_ERROR, GK_REQUEST_ERROR_ENCODING,
                               "The gateway reads request bodies: send them without Content-Encoding.");
          return FALSE;
        }
      if (!is_type && !header_forwarded (name))
        continue;
      if (!header_name_ok (name) || !header_value_ok (value))
        {
          gk_upstream_request_clear (out);
          return fail (error, "A request header holds a control character or is too long.");
        }
      if (is_type)
        {
          g_free (out->content_type);
          out->content_type = g_strdup (value);
          continue;
        }
      g_ptr_array_add (out->names, g_strdup (name));
      g_ptr_array_add (out->values, g_strdup (value));
    }

  out->method = g_strdup (allowed);
  out->path_and_query = g_string_free (g_steal_pointer (&target), FALSE);
  return TRUE;
}

void
gk_upstream_request_clear (GkUpstreamRequest *request)
{
  g_clear_pointer (&request->method, g_free);
  g_clear_pointer (&request->path_and_query, g_free);
  g_clear_pointer (&request->content_type, g_free);
  g_clear_pointer (&request->names, g_ptr_array_unref);
  g_clear_pointer (&request->values, g_ptr_array_unref);
}

char *
gk_request_escape_for_log (const char *text)
{
  GString *out;

  if (text == NULL)
    return NULL;
  out = g_string_sized_new (strlen (text));
  for (const guchar *p = (const guchar *) text; *p != '\0'; p++)
    {
      if (is_control (*p) || *p == '\\')
        g_string_append_printf (out, "\\x%02x", *p);
      else
        g_string_append_c (out, (char) *p);
    }
  return g_string_free (out, FALSE);
}
