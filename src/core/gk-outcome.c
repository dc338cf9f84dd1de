/* gk-outcome.c: what an upstream answer means for the key that got it.
 *
 * Upstream bodies are untrusted: they may be truncated, not JSON, not UTF-8,
 * enormous or deliberately nested. Everything here degrades to "no detail"
 * rather than failing, and no upstream text leaves this file unredacted.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "gk-outcome.h"

/* Error bodies are a few kilobytes; anything much larger is not one. */
#define MAX_ERROR_BODY      (256 * 1024)
/* A response with a usage block can be large (long generations, streamed
 * JSON arrays), but parsing must stay bounded. */
#define MAX_USAGE_BODY      (64 * 1024 * 1024)
/* Real responses nest about ten levels; json-glib recurses per level. */
#define MAX_JSON_DEPTH      64
/* Messages end up in logs and the UI: keep them readable. */
#define MAX_MESSAGE_CHARS   1024
#define MAX_SNIPPET_CHARS   200
/* A delay longer than a week is nonsense for a per-minute quota; the cap
 * also keeps the arithmetic far from overflow. */
#define MAX_RETRY_DELAY_S   (7 * 24 * 3600)

#define KEY_PATTERN "AIza[A-Za-z0-9_-]{35}|AQ\\.[A-Za-z0-9_.-]{20,}"
#define KEY_MASK    "[REDACTED]"

/* --- Redaction ---------------------------------------------------------- */

static gpointer
compile_key_regex (gpointer data)
{
  g_autoptr(GError) error = NULL;
  /* RAW: the pattern is ASCII and the text may be any bytes; matching
   * bytewise never fails on invalid UTF-8. */
  GRegex *regex = g_regex_new (KEY_PATTERN, G_REGEX_RAW | G_REGEX_OPTIMIZE, 0, &error);

  g_assert_no_error (error);
  return regex;
}

static GRegex *
get_key_regex (void)
{
  static GOnce once = G_ONCE_INIT;

  return g_once (&once, compile_key_regex, NULL);
}

char *
gk_redact_keys (const char *text)
{
  g_autoptr(GError) error = NULL;
  char *result;

  if (text == NULL)
    return NULL;

  /* Most text holds no key; skip the regex engine then. */
  if (strstr (text, "AIza") == NULL && strstr (text, "AQ.") == NULL)
    return g_strdup (text);

  result = g_regex_replace_literal (get_key_regex (), text, -1, 0, KEY_MASK, 0, &error);
  if (result == NULL)
    {
      /* Never hand back the original when redaction failed. */
      return g_strdup (KEY_MASK);
    }
  return result;
}

/* --- JSON helpers ------------------------------------------------------- */

gboolean
gk_json_depth_ok (const char *text,
                  gsize       len,
                  guint       max_depth)
{
  gboolean in_string = FALSE;
  guint depth = 0;

  g_return_val_if_fail (text != NULL || len == 0, FALSE);

  for (gsize i = 0; i < len; i++)
    {
      char c = text[i];

      if (in_string)
        {
          if (c == '\\')
            i++;
          else if (c == '"')
            in_string = FALSE;
          continue;
        }

      switch (c)
        {
        case '"':
          in_string = TRUE;
          break;
        case '{':
        case '[':
          if (++depth > max_depth)
            return FALSE;
          break;
        case '}':
        case ']':
          if (depth > 0)
            depth--;
          break;
        default:
          break;
        }
    }
  return TRUE;
}

/* Parses @text as one JSON document, or returns NULL for anything that is
 * not safely parseable. The root is json_parser_get_root() of the result. */
static JsonParser *
parse_json (const char *text,
            gsize       len,
            gsize       max_len)
{
  g_autoptr(JsonParser) parser = NULL;

  if (text == NULL || len == 0 || len > max_len)
    return NULL;
  /* Also rejects embedded NULs, which json-glib would stop at silently. */
  if (!g_utf8_validate (text, (gssize) len, NULL))
    return NULL;
  if (!gk_json_depth_ok (text, len, MAX_JSON_DEPTH))
    return NULL;

  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, text, (gssize) len, NULL)
      || json_parser_get_root (parser) == NULL)
    return NULL;
  return g_steal_pointer (&parser);
}

static JsonObject *
get_object_member (JsonObject *object,
                   const char *name)
{
  JsonNode *node;

  if (object == NULL)
    return NULL;
  node = json_object_get_member (object, name);
  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return NULL;
  return json_node_get_object (node);
}

static JsonArray *
get_array_member (JsonObject *object,
                  const char *name)
{
  JsonNode *node;

  if (object == NULL)
    return NULL;
  node = json_object_get_member (object, name);
  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node))
    return NULL;
  return json_node_get_array (node);
}

static const char *
get_string_member (JsonObject *object,
                   const char *name)
{
  JsonNode *node;

  if (object == NULL)
    return NULL;
  node = json_object_get_member (object, name);
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

/* Reads a non-negative integer that may be a JSON number or, as protobuf's
 * JSON mapping renders 64-bit integers, a decimal string. */
static gboolean
get_count_member (JsonObject *object,
                  const char *name,
                  gint64     *value)
{
  JsonNode *node;
  GType type;

  *value = 0;
  if (object == NULL)
    return FALSE;
  node = json_object_get_member (object, name);
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node))
    return FALSE;

  type = json_node_get_value_type (node);
  if (type == G_TYPE_INT64)
    *value = json_node_get_int (node);
  else if (type == G_TYPE_DOUBLE)
    {
      double d = json_node_get_double (node);

      if (!isfinite (d))
        return FALSE;
      *value = d >= (double) G_MAXINT64 ? G_MAXINT64 : (gint64) d;
    }
  else if (type == G_TYPE_STRING)
    {
      guint64 parsed;

      if (!g_ascii_string_to_unsigned (json_node_get_string (node), 10, 0, G_MAXINT64,
                                       &parsed, NULL))
        return FALSE;
      *value = (gint64) parsed;
    }
  else
    return FALSE;

  if (*value < 0)
    *value = 0;
  return TRUE;
}

static gboolean
type_is (JsonObject *detail,
         const char *rpc_type)
{
  const char *type = get_string_member (detail, "@type");

  return type != NULL && g_str_has_suffix (type, rpc_type);
}

static gboolean
contains_ci (const char *haystack,
             const char *needle)
{
  g_autofree char *h = NULL;
  g_autofree char *n = NULL;

  if (haystack == NULL)
    return FALSE;
  h = g_ascii_strdown (haystack, -1);
  n = g_ascii_strdown (needle, -1);
  return strstr (h, n) != NULL;
}

/* --- Retry delay -------------------------------------------------------- */

static gint64
clamp_delay (double seconds)
{
  if (!isfinite (seconds) || seconds <= 0)
    return 0;
  if (seconds >= MAX_RETRY_DELAY_S)
    return MAX_RETRY_DELAY_S;
  return (gint64) ceil (seconds);
}

/* google.protobuf.Duration in its JSON form: "26s", "1.5s", "0.000340012s"
 * (decimal seconds with an "s" suffix). Rounded up: retrying early only
 * earns another 429. */
static gint64
parse_duration_string (const char *text)
{
  g_autofree char *copy = NULL;
  char *end = NULL;
  gsize len;
  double seconds;

  if (text == NULL)
    return 0;
  copy = g_strstrip (g_strdup (text));
  len = strlen (copy);
  if (len < 2 || copy[len - 1] != 's')
    return 0;
  copy[len - 1] = '\0';
  if (!g_ascii_isdigit (copy[0]) && copy[0] != '.')
    return 0;

  seconds = g_ascii_strtod (copy, &end);
  if (end == copy || *end != '\0')
    return 0;
  return clamp_delay (seconds);
}

/* RetryInfo.retryDelay: normally a Duration string; some renderers emit the
 * message form {"seconds": …, "nanos": …}. */
static gint64
parse_retry_delay (JsonObject *retry_info)
{
  JsonNode *node = json_object_get_member (retry_info, "retryDelay");
  JsonObject *object;
  gint64 seconds = 0, nanos = 0;

  if (node == NULL)
    return 0;
  if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
    return parse_duration_string (json_node_get_string (node));
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return 0;

  object = json_node_get_object (node);
  get_count_member (object, "seconds", &seconds);
  get_count_member (object, "nanos", &nanos);
  return clamp_delay ((double) seconds + (double) nanos / 1e9);
}

/* --- Classification ----------------------------------------------------- */

typedef struct
{
  const char *status;     /* error.status */
  const char *message;    /* error.message */
  const char *reason;     /* the first ErrorInfo.reason */
  gboolean    per_day;
  gboolean    per_project;
  gint64      retry_delay_s;
} ErrorDetails;

/* Google's error envelope; the OpenAI-compatible endpoints wrap it in a
 * one-element array. */
static JsonObject *
find_error_object (JsonNode *root)
{
  if (root == NULL)
    return NULL;

  if (JSON_NODE_HOLDS_ARRAY (root))
    {
      JsonArray *array = json_node_get_array (root);
      JsonNode *first;

      if (json_array_get_length (array) == 0)
        return NULL;
      first = json_array_get_element (array, 0);
      if (!JSON_NODE_HOLDS_OBJECT (first))
        return NULL;
      return get_object_member (json_node_get_object (first), "error");
    }

  if (JSON_NODE_HOLDS_OBJECT (root))
    return get_object_member (json_node_get_object (root), "error");

  return NULL;
}

static void
read_quota_failure (JsonObject   *detail,
                    ErrorDetails *details)
{
  JsonArray *violations = get_array_member (detail, "violations");
  guint n = violations != NULL ? json_array_get_length (violations) : 0;

  for (guint i = 0; i < n; i++)
    {
      JsonNode *node = json_array_get_element (violations, i);
      const char *quota_id;

      if (!JSON_NODE_HOLDS_OBJECT (node))
        continue;
      quota_id = get_string_member (json_node_get_object (node), "quotaId");
      if (quota_id == NULL)
        continue;
      if (strstr (quota_id, "PerDay") != NULL)
        details->per_day = TRUE;
      if (strstr (quota_id, "PerProject") != NULL)
        details->per_project = TRUE;
    }
}

static void
read_error_details (JsonObject   *error,
                    ErrorDetails *details)
{
  JsonArray *array;
  guint n;

  details->status = get_string_member (error, "status");
  details->message = get_string_member (error, "message");

  array = get_array_member (error, "details");
  n = array != NULL ? json_array_get_length (array) : 0;
  for (guint i = 0; i < n; i++)
    {
      JsonNode *node = json_array_get_element (array, i);
      JsonObject *detail;

      if (!JSON_NODE_HOLDS_OBJECT (node))
        continue;
      detail = json_node_get_object (node);

      if (type_is (detail, "google.rpc.ErrorInfo"))
        {
          if (details->reason == NULL)
            details->reason = get_string_member (detail, "reason");
        }
      else if (type_is (detail, "google.rpc.QuotaFailure"))
        read_quota_failure (detail, details);
      else if (type_is (detail, "google.rpc.RetryInfo"))
        details->retry_delay_s = MAX (details->retry_delay_s, parse_retry_delay (detail));
    }
}

static gboolean
is_dead_key_reason (const char *reason)
{
  return g_strcmp0 (reason, "API_KEY_INVALID") == 0
         || g_strcmp0 (reason, "API_KEY_EXPIRED") == 0
         || g_strcmp0 (reason, "CONSUMER_SUSPENDED") == 0;
}

/* A 400 or 403 means the key itself is dead only for these reasons and
 * messages; other 4xx (service disabled, location, bad request) are the
 * project's or the client's problem and must not take the key away. */
static gboolean
is_invalid_key (guint               http_status,
                const ErrorDetails *details)
{
  if (g_strcmp0 (details->reason, "SERVICE_DISABLED") == 0
      || g_strcmp0 (details->reason, "API_KEY_SERVICE_BLOCKED") == 0
      || g_strcmp0 (details->status, "FAILED_PRECONDITION") == 0)
    return FALSE;

  switch (http_status)
    {
    case 400:
      return is_dead_key_reason (details->reason)
             || contains_ci (details->message, "API key not valid")
             || contains_ci (details->message, "API key not found")
             || contains_ci (details->message, "API key expired");
    case 403:
      return is_dead_key_reason (details->reason)
             || contains_ci (details->message, "leaked");
    default:
      return FALSE;
    }
}

static char *
truncate_utf8 (const char *text,
               glong       max_chars)
{
  if (g_utf8_strlen (text, -1) <= max_chars)
    return g_strdup (text);
  return g_utf8_substring (text, 0, max_chars);
}

static char *
make_message (const char *text)
{
  /* json-glib lets lone surrogate escapes through as invalid UTF-8. */
  g_autofree char *valid = g_utf8_make_valid (text, -1);
  g_autofree char *redacted = gk_redact_keys (valid);

  return truncate_utf8 (redacted, MAX_MESSAGE_CHARS);
}

/* The first line of a body that is not Google's JSON (a proxy's HTML page,
 * a plain-text error), made printable. */
static char *
make_snippet (const char *body,
              gsize       body_len)
{
  gsize len = MIN (body_len, (gsize) MAX_SNIPPET_CHARS * 4);
  g_autofree char *valid = g_utf8_make_valid (body, (gssize) len);
  g_autofree char *line = NULL;
  g_autofree char *redacted = NULL;
  char *nl;

  nl = strpbrk (valid, "\r\n");
  if (nl != NULL)
    *nl = '\0';
  line = g_strstrip (g_strdup (valid));
  for (char *p = line; *p != '\0'; p++)
    {
      if ((guchar) *p < 0x20 || *p == 0x7f)
        *p = ' ';
    }
  if (*line == '\0')
    return NULL;

  redacted = gk_redact_keys (line);
  return truncate_utf8 (redacted, MAX_SNIPPET_CHARS);
}

static GkOutcomeKind
kind_for_status (guint               http_status,
                 const ErrorDetails *details)
{
  if (http_status >= 200 && http_status < 300)
    return GK_OUTCOME_SUCCESS;
  if (http_status == 0 || http_status == 408 || (http_status >= 500 && http_status < 600))
    return GK_OUTCOME_TRANSIENT;
  if (http_status == 429)
    return details->per_day ? GK_OUTCOME_RATE_LIMITED_DAY : GK_OUTCOME_RATE_LIMITED_MINUTE;
  if (is_invalid_key (http_status, details))
    return GK_OUTCOME_INVALID_KEY;
  return GK_OUTCOME_ERROR;
}

/**
 * gk_outcome_classify:
 * @http_status: the upstream status, 0 when no answer came (timeout, reset)
 * @body: (nullable): the response body, any bytes
 * @body_len: the length of @body
 * @outcome: (out caller-allocates): cleared with gk_outcome_clear()
 *
 * Decides what an upstream answer means for the key that got it.
 */
void
gk_outcome_classify (guint       http_status,
                     const char *body,
                     gsize       body_len,
                     GkOutcome  *outcome)
{
  g_autoptr(JsonParser) parser = NULL;
  ErrorDetails details = { 0 };
  JsonObject *error = NULL;

  g_return_if_fail (outcome != NULL);

  memset (outcome, 0, sizeof *outcome);
  if (body == NULL)
    body_len = 0;

  /* A success body is the client's payload: nothing to learn here. */
  if (http_status >= 200 && http_status < 300)
    {
      outcome->kind = GK_OUTCOME_SUCCESS;
      return;
    }

  parser = parse_json (body, body_len, MAX_ERROR_BODY);
  if (parser != NULL)
    error = find_error_object (json_parser_get_root (parser));
  if (error != NULL)
    read_error_details (error, &details);

  outcome->kind = kind_for_status (http_status, &details);
  outcome->per_project = details.per_project;
  if (http_status == 429)
    outcome->retry_delay_s = details.retry_delay_s;

  if (details.reason != NULL)
    outcome->reason = g_strdup (details.reason);
  else if (details.status != NULL)
    outcome->reason = g_strdup (details.status);

  if (details.message != NULL)
    outcome->message = make_message (details.message);
  else if (error == NULL && body_len > 0)
    outcome->message = make_snippet (body, body_len);
}

void
gk_outcome_clear (GkOutcome *outcome)
{
  g_return_if_fail (outcome != NULL);

  g_clear_pointer (&outcome->reason, g_free);
  g_clear_pointer (&outcome->message, g_free);
  outcome->kind = GK_OUTCOME_SUCCESS;
  outcome->retry_delay_s = 0;
  outcome->per_project = FALSE;
}

/* --- Token usage -------------------------------------------------------- */

/* Counts are never negative; a sum of absurd ones stays at the maximum
 * rather than overflowing. */
static gint64
add_counts (gint64 a,
            gint64 b)
{
  return a > G_MAXINT64 - b ? G_MAXINT64 : a + b;
}

static gboolean
read_gemini_usage (JsonObject   *metadata,
                   GkTokenUsage *usage)
{
  gint64 prompt, tool_prompt, candidates, thoughts, total;

  get_count_member (metadata, "promptTokenCount", &prompt);
  get_count_member (metadata, "toolUsePromptTokenCount", &tool_prompt);
  get_count_member (metadata, "candidatesTokenCount", &candidates);
  get_count_member (metadata, "thoughtsTokenCount", &thoughts);

  /* Thoughts are billed as output but are not part of candidatesTokenCount. */
  usage->prompt_tokens = add_counts (prompt, tool_prompt);
  usage->output_tokens = add_counts (candidates, thoughts);
  if (!get_count_member (metadata, "totalTokenCount", &total))
    total = add_counts (usage->prompt_tokens, usage->output_tokens);
  usage->total_tokens = total;
  usage->found = TRUE;
  return TRUE;
}

static gboolean
read_openai_usage (JsonObject   *object,
                   GkTokenUsage *usage)
{
  gint64 prompt, completion, total;

  get_count_member (object, "prompt_tokens", &prompt);
  get_count_member (object, "completion_tokens", &completion);

  usage->prompt_tokens = prompt;
  usage->output_tokens = completion;
  if (get_count_member (object, "total_tokens", &total))
    {
      /* Gemini's compatibility layer has reported completion_tokens
       * without the thinking tokens while total_tokens includes them;
       * those are billed as output, so the remainder is output too. */
      if (total - prompt > completion)
        usage->output_tokens = total - prompt;
    }
  else
    total = add_counts (prompt, completion);
  usage->total_tokens = total;
  usage->found = TRUE;
  return TRUE;
}

static gboolean
usage_from_object (JsonObject   *object,
                   GkTokenUsage *usage)
{
  JsonObject *member;

  if ((member = get_object_member (object, "usageMetadata")) != NULL)
    return read_gemini_usage (member, usage);
  if ((member = get_object_member (object, "usage")) != NULL)
    return read_openai_usage (member, usage);
  return FALSE;
}

static gboolean
usage_from_node (JsonNode     *node,
                 GkTokenUsage *usage)
{
  if (node == NULL)
    return FALSE;

  if (JSON_NODE_HOLDS_OBJECT (node))
    return usage_from_object (json_node_get_object (node), usage);

  /* The non-SSE stream: a JSON array of responses, the complete usage in
   * the last one that has any. */
  if (JSON_NODE_HOLDS_ARRAY (node))
    {
      JsonArray *array = json_node_get_array (node);

      for (guint i = json_array_get_length (array); i > 0; i--)
        {
          JsonNode *element = json_array_get_element (array, i - 1);

          if (JSON_NODE_HOLDS_OBJECT (element)
              && usage_from_object (json_node_get_object (element), usage))
            return TRUE;
        }
    }
  return FALSE;
}

static gboolean
usage_from_json (const char   *text,
                 gsize         len,
                 GkTokenUsage *usage)
{
  g_autoptr(JsonParser) parser = NULL;

  /* Most stream chunks carry no usage; skip parsing them. */
  if (g_strstr_len (text, (gssize) len, "usage") == NULL)
    return FALSE;
  parser = parse_json (text, len, MAX_USAGE_BODY);
  return parser != NULL && usage_from_node (json_parser_get_root (parser), usage);
}

/* Server-sent events: "data:" lines, joined with newlines, make one event's
 * payload; events end at a blank line ("\n\n" or "\r\n\r\n"). The last event
 * with usage wins, so a whole stream may be passed as well as one chunk. */
static gboolean
usage_from_sse (const char   *text,
                gsize         len,
                GkTokenUsage *usage)
{
  g_autoptr(GString) data = g_string_new (NULL);
  gboolean found = FALSE;
  gsize pos = 0;

  while (pos <= len)
    {
      const char *line = text + pos;
      gsize line_len = 0;
      gsize next;

      while (pos + line_len < len && line[line_len] != '\n' && line[line_len] != '\r')
        line_len++;
      next = pos + line_len;
      if (next < len && text[next] == '\r')
        next++;
      if (next < len && text[next] == '\n')
        next++;

      if (line_len == 0)
        {
          GkTokenUsage event_usage = { 0 };

          if (data->len > 0 && usage_from_json (data->str, data->len, &event_usage))
            {
              *usage = event_usage;
              found = TRUE;
            }
          g_string_truncate (data, 0);
        }
      else if (line_len >= 5 && memcmp (line, "data:", 5) == 0)
        {
          const char *value = line + 5;
          gsize value_len = line_len - 5;

          if (value_len > 0 && *value == ' ')
            {
              value++;
              value_len--;
            }
          if (data->len > 0)
            g_string_append_c (data, '\n');
          if (data->len + value_len > MAX_USAGE_BODY)
            return found;
          g_string_append_len (data, value, (gssize) value_len);
        }

      if (next >= len)
        {
          /* The text may end without the blank line. */
          GkTokenUsage event_usage = { 0 };

          if (data->len > 0 && usage_from_json (data->str, data->len, &event_usage))
            {
              *usage = event_usage;
              found = TRUE;
            }
          break;
        }
      pos = next;
    }
  return found;
}

/**
 * gk_usage_parse:
 * @json: a JSON document (generateContent, OpenAI chat completion, a
 *   streamed JSON array) or SSE text (one chunk or several)
 * @len: the length of @json
 * @usage: (out caller-allocates): the token counts
 *
 * Returns: %TRUE when @json holds usageMetadata or an OpenAI usage block.
 */
gboolean
gk_usage_parse (const char   *json,
                gsize         len,
                GkTokenUsage *usage)
{
  gsize start = 0;

  g_return_val_if_fail (usage != NULL, FALSE);

  memset (usage, 0, sizeof *usage);
  if (json == NULL || len == 0)
    return FALSE;

  /* Skip a byte-order mark and leading white space. */
  if (len >= 3 && memcmp (json, "\xEF\xBB\xBF", 3) == 0)
    start = 3;
  while (start < len && g_ascii_isspace (json[start]))
    start++;
  if (start == len)
    return FALSE;

  if (json[start] == '{' || json[start] == '[')
    return usage_from_json (json + start, len - start, usage);
  return usage_from_sse (json + start, len - start, usage);
}
