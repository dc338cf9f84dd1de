/* mock-gemini.c: a small stand-in for the Gemini REST API, for tests,
 * benchmarks and demos. It speaks the formats of shared/GEMINI_API.md.
 *
 *   mock-gemini [--port N]     prints "PORT <n>" on stdout once listening
 *                              (0 = pick a free port); loopback only.
 *   --tls-cert FILE --tls-key FILE
 *                              serves https with that certificate (PEM).
 *
 * Behaviour is chosen by the text of the API key a request carries, so one
 * mock serves a whole pool of keys that each misbehave in their own way.
 * The first of these words found in the key wins:
 *
 *   RATEMIN   429 RESOURCE_EXHAUSTED, per-minute quotaId, RetryInfo "26s"
 *   RATEPROJ  429, a per-minute PerProject quotaId, RetryInfo "26s"
 *   RATEDAY   429, GenerateRequestsPerDayPerProjectPerModel-FreeTier
 *   RATEOLD   429 in the older shape, without details
 *   INVALID   400 INVALID_ARGUMENT, ErrorInfo reason API_KEY_INVALID
 *   LEAKED    403 "Your API key was reported as leaked…"
 *   SUSPEND   403 PERMISSION_DENIED, reason CONSUMER_SUSPENDED
 *   DISABLED  403 PERMISSION_DENIED, reason SERVICE_DISABLED
 *   BADREQ    400 INVALID_ARGUMENT whose message quotes the key (a client
 *             error the gateway relays: the key must be redacted)
 *   E500      500 INTERNAL
 *   E503      503 UNAVAILABLE ("The model is overloaded")
 *   SLOW      answers normally after $MOCK_GEMINI_SLOW_MS (default 1500) ms; with
 *             one of the words above too, answers that way after the delay
 *   BROKEN    200 with a body that is not JSON
 *   DROP      200, sends part of the body, then closes the connection
 *   CRLF      answers normally; SSE events are separated by \r\n\r\n
 *   GAPPED    answers normally; stream chunks come 250 ms apart instead of
 *             5 ms (a client can tell them apart even on a loaded machine)
 *   anything else answers normally.
 *
 * A request without any key gets 403 PERMISSION_DENIED, as Google answers.
 *
 * Token counts are fixed so that tests can check what the gateway logged:
 *   generateContent          prompt 12, candidates 8, thoughts 5, total 25
 *   streamGenerateContent    3 chunks; partial usage in the first ones, the
 *                            last holds prompt 20, candidates 15, thoughts 6,
 *                            total 41
 *   openai chat              prompt 11, completion 7 (stream: 13 and 9,
 *                            in a last chunk with empty choices)
 *   embedContent and openai embeddings: prompt 4
 *
 * Test hooks:
 *   GET  /_mock/stats   {"<key as sent>": requests, …}
 *   GET  /_mock/audit   {"requests": n, "header": n, "query": n, "bearer": n,
 *                        "multiple": n, "foreign": ["…", …]} where "foreign"
 *                        lists credentials that do not look like API keys
 *                        (so a forwarded client token shows up there) and
 *                        "multiple" counts requests carrying more than one.
 *   GET  /_mock/last    the headers of the last API request, as JSON
 *   POST /_mock/reset   clears all of the above.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#define DEFAULT_SLOW_MS     1500
#define STREAM_CHUNK_GAP_MS 5
#define GAPPED_CHUNK_GAP_MS 250

typedef struct
{
  GHashTable *stats;       /* key → count */
  GPtrArray  *foreign;     /* credentials that do not look like keys */
  guint       requests;
  guint       header;
  guint       query;
  guint       bearer;
  guint       multiple;
  char       *last_headers;
  guint       slow_ms;
} Mock;

static Mock mock;

typedef struct
{
  SoupServerMessage *msg;
  GPtrArray         *chunks;     /* char *, sent one by one */
  guint              next;
} StreamJob;

static const char *rate_minute_body =
  "{\"error\":{\"code\":429,\"message\":\"You exceeded your current quota, please check your plan "
  "and billing details. For more information on this error, head to: "
  "https://ai.google.dev/gemini-api/docs/rate-limits.\",\"status\":\"RESOURCE_EXHAUSTED\","
  "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\",\"violations\":[{"
  "\"quotaMetric\":\"generativelanguage.googleapis.com/generate_content_free_tier_input_token_count\","
  "\"quotaId\":\"GenerateContentInputTokensPerModelPerMinute-FreeTier\",\"quotaDimensions\":{"
  "\"location\":\"global\",\"model\":\"gemini-2.5-flash\"},\"quotaValue\":\"250000\"}]},"
  "{\"@type\":\"type.googleapis.com/google.rpc.Help\",\"links\":[{\"description\":\"Learn more "
  "about Gemini API quotas\",\"url\":\"https://ai.google.dev/gemini-api/docs/rate-limits\"}]},"
  "{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"26s\"}]}}";

static const char *rate_project_body =
  "{\"error\":{\"code\":429,\"message\":\"You exceeded your current quota, please check your plan "
  "and billing details.\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":"
  "\"type.googleapis.com/google.rpc.QuotaFailure\",\"violations\":[{\"quotaMetric\":"
  "\"generativelanguage.googleapis.com/generate_content_free_tier_requests\",\"quotaId\":"
  "\"GenerateRequestsPerMinutePerProjectPerModel-FreeTier\",\"quotaDimensions\":{\"location\":"
  "\"global\",\"model\":\"gemini-2.5-flash\"},\"quotaValue\":\"10\"}]},{\"@type\":"
  "\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"26s\"}]}}";

static const char *rate_day_body =
  "{\"error\":{\"code\":429,\"message\":\"You exceeded your current quota, please check your plan "
  "and billing details.\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":"
  "\"type.googleapis.com/google.rpc.QuotaFailure\",\"violations\":[{\"quotaMetric\":"
  "\"generativelanguage.googleapis.com/generate_content_free_tier_requests\",\"quotaId\":"
  "\"GenerateRequestsPerDayPerProjectPerModel-FreeTier\",\"quotaDimensions\":{\"location\":"
  "\"global\",\"model\":\"gemini-2.5-flash\"},\"quotaValue\":\"500\"}]},{\"@type\":"
  "\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"41s\"}]}}";

static const char *rate_old_body =
  "{\"error\":{\"code\":429,\"message\":\"Resource has been exhausted (e.g. check quota).\","
  "\"status\":\"RESOURCE_EXHAUSTED\"}}";

static const char *invalid_body =
  "{\"error\":{\"code\":400,\"message\":\"API key not valid. Please pass a valid API key.\","
  "\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\","
  "\"reason\":\"API_KEY_INVALID\",\"domain\":\"googleapis.com\",\"metadata\":{\"service\":"
  "\"generativelanguage.googleapis.com\"}}]}}";

static const char *leaked_body =
  "{\"error\":{\"code\":403,\"message\":\"Your API key was reported as leaked. Please use another "
  "API key.\",\"status\":\"PERMISSION_DENIED\"}}";

#define SUSPENDED_BODY_FORMAT \
  "{\"error\":{\"code\":403,\"message\":\"Permission denied: Consumer 'api_key:%s' has been " \
  "suspended.\",\"status\":\"PERMISSION_DENIED\",\"details\":[{\"@type\":" \
  "\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"CONSUMER_SUSPENDED\",\"domain\":" \
  "\"googleapis.com\",\"metadata\":{\"consumer\":\"projects/123456789\",\"service\":" \
  "\"generativelanguage.googleapis.com\"}}]}}"

#define BADREQ_BODY_FORMAT \
  "{\"error\":{\"code\":400,\"message\":\"Invalid JSON payload received for key %s.\"," \
  "\"status\":\"INVALID_ARGUMENT\"}}"

static const char *disabled_body =
  "{\"error\":{\"code\":403,\"message\":\"Generative Language API has not been used in project "
  "123456789 before or it is disabled.\",\"status\":\"PERMISSION_DENIED\",\"details\":[{\"@type\":"
  "\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"SERVICE_DISABLED\",\"domain\":"
  "\"googleapis.com\",\"metadata\":{\"consumer\":\"projects/123456789\",\"service\":"
  "\"generativelanguage.googleapis.com\"}}]}}";

static const char *e500_body =
  "{\"error\":{\"code\":500,\"message\":\"An internal error has occurred. Please retry or report "
  "in https://developers.generativeai.google/guide/troubleshooting\",\"status\":\"INTERNAL\"}}";

static const char *e503_body =
  "{\"error\":{\"code\":503,\"message\":\"The model is overloaded. Please try again later.\","
  "\"status\":\"UNAVAILABLE\"}}";

static const char *no_key_body =
  "{\"error\":{\"code\":403,\"message\":\"Method doesn't allow unregistered callers (callers "
  "without established identity). Please use API Key or other form of API consumer identity "
  "to call this API.\",\"status\":\"PERMISSION_DENIED\"}}";

static const char *models[] = {
  "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash",
  "gemini-embedding-001",
};

/* Looks like an API key: "AIza" + about 35 of [A-Za-z0-9_-], or an "AQ."
 * key. Lenient on length so that test keys of any plausible size count. */
static gboolean
looks_like_key (const char *text)
{
  gsize len = strlen (text);

  if (g_str_has_prefix (text, "AQ.") && len > 10)
    return TRUE;
  if (!g_str_has_prefix (text, "AIza") || len < 30 || len > 48)
    return FALSE;
  for (const char *p = text + 4; *p; p++)
    if (!g_ascii_isalnum (*p) && *p != '_' && *p != '-')
      return FALSE;
  return TRUE;
}

static void
set_json (SoupServerMessage *msg,
          guint              status,
          const char        *body)
{
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json; charset=UTF-8", SOUP_MEMORY_COPY,
                                    body, strlen (body));
}

static void
set_json_take (SoupServerMessage *msg,
               guint              status,
               char              *body)
{
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json; charset=UTF-8", SOUP_MEMORY_TAKE,
                                    body, strlen (body));
}

/* Records the credentials of one request and returns the key to act on. */
static char *
take_credentials (SoupServerMessage *msg,
                  GHashTable        *query)
{
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  const char *header = soup_message_headers_get_one (headers, "x-goog-api-key");
  const char *auth = soup_message_headers_get_one (headers, "Authorization");
  const char *in_query = query ? g_hash_table_lookup (query, "key") : NULL;
  const char *bearer = NULL;
  const char *creds[3];
  guint n = 0;
  g_autoptr(GString) dump = g_string_new ("{");
  SoupMessageHeadersIter iter;
  const char *name, *value;
  gboolean first = TRUE;

  if (auth && g_ascii_strncasecmp (auth, "Bearer ", 7) == 0)
    bearer = auth + 7;
  else if (auth)
    bearer = auth;

  mock.requests++;
  if (header)
    {
      mock.header++;
      creds[n++] = header;
    }
  if (in_query)
    {
      mock.query++;
      creds[n++] = in_query;
    }
  if (bearer)
    {
      mock.bearer++;
      creds[n++] = bearer;
    }
  if (n > 1)
    mock.multiple++;

  for (guint i = 0; i < n; i++)
    {
      guint count = GPOINTER_TO_UINT (g_hash_table_lookup (mock.stats, creds[i]));

      g_hash_table_insert (mock.stats, g_strdup (creds[i]), GUINT_TO_POINTER (count + 1));
      if (!looks_like_key (creds[i]))
        g_ptr_array_add (mock.foreign, g_strdup (creds[i]));
    }

  soup_message_headers_iter_init (&iter, headers);
  while (soup_message_headers_iter_next (&iter, &name, &value))
    {
      g_autofree char *n_esc = g_strescape (name, NULL);
      g_autofree char *v_esc = g_strescape (value, NULL);
      g_autofree char *lower = g_ascii_strdown (n_esc, -1);

      g_string_append_printf (dump, "%s\"%s\":\"%s\"", first ? "" : ",", lower, v_esc);
      first = FALSE;
    }
  g_string_append_c (dump, '}');
  g_free (mock.last_headers);
  mock.last_headers = g_string_free (g_steal_pointer (&dump), FALSE);

  return n > 0 ? g_strdup (creds[0]) : NULL;
}

static const char *
behaviour_of (const char *key)
{
  static const char *words[] = {
    "RATEMIN", "RATEPROJ", "RATEDAY", "RATEOLD", "INVALID", "LEAKED", "SUSPEND", "DISABLED",
    "BADREQ", "E500", "E503", "SLOW", "BROKEN", "DROP", "CRLF", "GAPPED",
  };

  for (guint i = 0; i < G_N_ELEMENTS (words); i++)
    if (strstr (key, words[i]))
      return words[i];
  return "OK";
}

/* Answers an error behaviour; FALSE when the key should be served normally. */
static gboolean
apply_error_behaviour (SoupServerMessage *msg,
                       const char        *behaviour,
                       const char        *key)
{
  if (g_str_equal (behaviour, "RATEMIN"))
    set_json (msg, 429, rate_minute_body);
  else if (g_str_equal (behaviour, "RATEPROJ"))
    set_json (msg, 429, rate_project_body);
  else if (g_str_equal (behaviour, "RATEDAY"))
    set_json (msg, 429, rate_day_body);
  else if (g_str_equal (behaviour, "RATEOLD"))
    set_json (msg, 429, rate_old_body);
  else if (g_str_equal (behaviour, "INVALID"))
    set_json (msg, 400, invalid_body);
  else if (g_str_equal (behaviour, "LEAKED"))
    set_json (msg, 403, leaked_body);
  else if (g_str_equal (behaviour, "SUSPEND"))
    /* Google quotes the key in this message: the gateway must redact it. */
    set_json_take (msg, 403, g_strdup_printf (SUSPENDED_BODY_FORMAT, key));
  else if (g_str_equal (behaviour, "DISABLED"))
    set_json (msg, 403, disabled_body);
  else if (g_str_equal (behaviour, "BADREQ"))
    set_json_take (msg, 400, g_strdup_printf (BADREQ_BODY_FORMAT, key));
  else if (g_str_equal (behaviour, "E500"))
    set_json (msg, 500, e500_body);
  else if (g_str_equal (behaviour, "E503"))
    set_json (msg, 503, e503_body);
  else if (g_str_equal (behaviour, "BROKEN"))
    set_json (msg, 200, "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"tru");
  else
    return FALSE;
  return TRUE;
}

static char *
model_json (const char *id)
{
  gboolean embed = strstr (id, "embedding") != NULL;

  return g_strdup_printf ("{\"name\":\"models/%s\",\"version\":\"001\",\"displayName\":\"%s\","
                          "\"inputTokenLimit\":%d,\"outputTokenLimit\":%d,"
                          "\"supportedGenerationMethods\":[%s]}",
                          id, id, embed ? 2048 : 1048576, embed ? 1 : 65536,
                          embed ? "\"embedContent\",\"countTokens\""
                                : "\"generateContent\",\"countTokens\",\"createCachedContent\"");
}

static void
serve_models (SoupServerMessage *msg,
              GHashTable        *query)
{
  const char *size_s = query ? g_hash_table_lookup (query, "pageSize") : NULL;
  const char *token_s = query ? g_hash_table_lookup (query, "pageToken") : NULL;
  guint size = size_s ? (guint) g_ascii_strtoull (size_s, NULL, 10) : 50;
  guint start = token_s ? (guint) g_ascii_strtoull (token_s, NULL, 10) : 0;
  g_autoptr(GString) out = g_string_new ("{\"models\":[");
  guint i;

  if (size == 0)
    size = 50;
  for (i = start; i < G_N_ELEMENTS (models) && i < start + size; i++)
    {
      g_autofree char *m = model_json (models[i]);

      g_string_append_printf (out, "%s%s", i > start ? "," : "", m);
    }
  g_string_append_c (out, ']');
  if (i < G_N_ELEMENTS (models))
    g_string_append_printf (out, ",\"nextPageToken\":\"%u\"", i);
  g_string_append_c (out, '}');
  set_json_take (msg, 200, g_string_free (g_steal_pointer (&out), FALSE));
}

static char *
content_chunk (const char *model,
               const char *text,
               gboolean    last,
               int         prompt,
               int         candidates,
               int         thoughts)
{
  g_autofree char *thoughts_json = thoughts ? g_strdup_printf (",\"thoughtsTokenCount\":%d", thoughts)
                                            : g_strdup ("");

  return g_strdup_printf ("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"%s\"}],"
                          "\"role\":\"model\"}%s,\"index\":0}],\"usageMetadata\":{"
                          "\"promptTokenCount\":%d,\"candidatesTokenCount\":%d,"
                          "\"totalTokenCount\":%d%s},\"modelVersion\":\"%s\","
                          "\"responseId\":\"mock-response-1\"}",
                          text, last ? ",\"finishReason\":\"STOP\"" : "",
                          prompt, candidates, prompt + candidates + thoughts,
                          thoughts_json,
                          model);
}

static gboolean
stream_next_cb (gpointer data)
{
  StreamJob *job = data;
  SoupMessageBody *body = soup_server_message_get_response_body (job->msg);

  if (job->next < job->chunks->len)
    {
      const char *chunk = g_ptr_array_index (job->chunks, job->next++);

      soup_message_body_append (body, SOUP_MEMORY_COPY, chunk, strlen (chunk));
      soup_server_message_unpause (job->msg);
      return G_SOURCE_CONTINUE;
    }

  soup_message_body_complete (body);
  soup_server_message_unpause (job->msg);
  g_object_unref (job->msg);
  g_ptr_array_unref (job->chunks);
  g_free (job);
  return G_SOURCE_REMOVE;
}

/* Sends @chunks one by one as a chunked response, a few ms apart (more
 * for the GAPPED @behaviour). */
static void
start_stream (SoupServerMessage *msg,
              const char        *content_type,
              GPtrArray         *chunks,
              const char        *behaviour)
{
  StreamJob *job = g_new0 (StreamJob, 1);
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);

  soup_server_message_set_status (msg, 200, NULL);
  soup_message_headers_set_content_type (headers, content_type, NULL);
  soup_message_headers_set_encoding (headers, SOUP_ENCODING_CHUNKED);
  job->msg = g_object_ref (msg);
  job->chunks = chunks;
  soup_server_message_pause (msg);
  g_timeout_add (g_str_equal (behaviour, "GAPPED") ? GAPPED_CHUNK_GAP_MS : STREAM_CHUNK_GAP_MS,
                 stream_next_cb, job);
}

/* Writes the start of a response by hand and closes the connection, like
 * an upstream that dies in the middle of an answer. */
static void
drop_connection (SoupServerMessage *msg,
                 const char        *content_type,
                 const char        *partial)
{
  g_autoptr(GIOStream) stream = soup_server_message_steal_connection (msg);
  g_autofree char *head = NULL;
  GOutputStream *out;

  if (stream == NULL)
    return;
  out = g_io_stream_get_output_stream (stream);
  /* The chunk announces more bytes than are sent: a cut inside a chunk,
   * which a client can tell from a complete answer. */
  head = g_strdup_printf ("HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n"
                          "\r\n%zx\r\n%s", content_type, strlen (partial) * 2, partial);
  g_output_stream_write_all (out, head, strlen (head), NULL, NULL, NULL);
  g_io_stream_close (stream, NULL, NULL);
}

static void
serve_generate (SoupServerMessage *msg,
                const char        *model,
                const char        *method,
                GHashTable        *query,
                const char        *behaviour)
{
  if (g_str_equal (method, "generateContent"))
    {
      if (g_str_equal (behaviour, "DROP"))
        {
          drop_connection (msg, "application/json; charset=UTF-8", "{\"candidates\":[{\"con");
          return;
        }
      set_json_take (msg, 200, content_chunk (model, "Hello from the mock.", TRUE, 12, 8, 5));
    }
  else if (g_str_equal (method, "streamGenerateContent"))
    {
      const char *alt = query ? g_hash_table_lookup (query, "alt") : NULL;
      gboolean sse = g_strcmp0 (alt, "sse") == 0;
      const char *sep = g_str_equal (behaviour, "CRLF") ? "\r\n\r\n" : "\n\n";
      const char *texts[] = { "Hello", " from the", " mock stream." };
      GPtrArray *chunks = g_ptr_array_new_with_free_func (g_free);

      for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
        {
          gboolean last = i + 1 == G_N_ELEMENTS (texts);
          /* Early chunks carry partial counts, as Google's do. */
          g_autofree char *json = content_chunk (model, texts[i], last, 20, last ? 15 : 3 * (int) (i + 1),
                                                 last ? 6 : 0);

          if (sse)
            g_ptr_array_add (chunks, g_strdup_printf ("data: %s%s", json, sep));
          else
            g_ptr_array_add (chunks, g_strdup_printf ("%s%s%s", i == 0 ? "[" : ",\r\n", json,
                                                      last ? "]" : ""));
        }
      if (g_str_equal (behaviour, "DROP"))
        {
          drop_connection (msg, sse ? "text/event-stream" : "application/json",
                           g_ptr_array_index (chunks, 0));
          g_ptr_array_unref (chunks);
          return;
        }
      start_stream (msg, sse ? "text/event-stream" : "application/json; charset=UTF-8", chunks,
                    behaviour);
    }
  else if (g_str_equal (method, "countTokens"))
    set_json (msg, 200, "{\"totalTokens\":12}");
  else if (g_str_equal (method, "embedContent"))
    set_json (msg, 200, "{\"embedding\":{\"values\":[0.0125,-0.25,0.5,0.75]}}");
  else if (g_str_equal (method, "batchEmbedContents"))
    {
      SoupMessageBody *req = soup_server_message_get_request_body (msg);
      g_autoptr(GBytes) bytes = soup_message_body_flatten (req);
      g_autoptr(JsonParser) parser = json_parser_new ();
      g_autoptr(GString) out = g_string_new ("{\"embeddings\":[");
      guint n = 1;
      gsize len;
      const char *data = g_bytes_get_data (bytes, &len);

      if (json_parser_load_from_data (parser, data, len, NULL) &&
          JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
        {
          JsonObject *root = json_node_get_object (json_parser_get_root (parser));

          if (json_object_has_member (root, "requests") &&
              JSON_NODE_HOLDS_ARRAY (json_object_get_member (root, "requests")))
            n = json_array_get_length (json_object_get_array_member (root, "requests"));
        }
      for (guint i = 0; i < n; i++)
        g_string_append_printf (out, "%s{\"values\":[0.0125,-0.25,0.5,%u]}", i ? "," : "", i);
      g_string_append (out, "]}");
      set_json_take (msg, 200, g_string_free (g_steal_pointer (&out), FALSE));
    }
  else
    set_json (msg, 404, "{\"error\":{\"code\":404,\"message\":\"Method not found.\","
              "\"status\":\"NOT_FOUND\"}}");
}

static JsonObject *
request_object (SoupServerMessage *msg,
                JsonParser        *parser)
{
  g_autoptr(GBytes) bytes = soup_message_body_flatten (soup_server_message_get_request_body (msg));
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);

  if (!json_parser_load_from_data (parser, data, len, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return NULL;
  return json_node_get_object (json_parser_get_root (parser));
}

static void
serve_openai (SoupServerMessage *msg,
              const char        *what,
              const char        *behaviour)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *req = request_object (msg, parser);
  const char *model = req ? json_object_get_string_member_with_default (req, "model", "gemini-2.5-flash")
                          : "gemini-2.5-flash";

  if (g_str_equal (what, "models"))
    {
      g_autoptr(GString) out = g_string_new ("{\"object\":\"list\",\"data\":[");

      for (guint i = 0; i < G_N_ELEMENTS (models); i++)
        g_string_append_printf (out, "%s{\"id\":\"models/%s\",\"object\":\"model\",\"owned_by\":\"google\"}",
                                i ? "," : "", models[i]);
      g_string_append (out, "]}");
      set_json_take (msg, 200, g_string_free (g_steal_pointer (&out), FALSE));
    }
  else if (g_str_equal (what, "chat/completions"))
    {
      gboolean stream = req && json_object_get_boolean_member_with_default (req, "stream", FALSE);

      if (!stream)
        {
          set_json_take (msg, 200, g_strdup_printf (
            "{\"id\":\"mock-chat-1\",\"object\":\"chat.completion\",\"created\":1773576000,"
            "\"model\":\"%s\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
            "\"content\":\"Hello from the mock.\"},\"finish_reason\":\"stop\"}],"
            "\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18}}", model));
          return;
        }
      else
        {
          GPtrArray *chunks = g_ptr_array_new_with_free_func (g_free);
          const char *texts[] = { "Hello", " from the mock." };

          for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
            g_ptr_array_add (chunks, g_strdup_printf (
              "data: {\"id\":\"mock-chat-1\",\"object\":\"chat.completion.chunk\",\"created\":"
              "1773576000,\"model\":\"%s\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
              "\"assistant\",\"content\":\"%s\"}%s}]}\n\n", model, texts[i],
              i + 1 == G_N_ELEMENTS (texts) ? ",\"finish_reason\":\"stop\"" : ""));
          g_ptr_array_add (chunks, g_strdup_printf (
            "data: {\"id\":\"mock-chat-1\",\"object\":\"chat.completion.chunk\",\"created\":"
            "1773576000,\"model\":\"%s\",\"choices\":[],\"usage\":{\"prompt_tokens\":13,"
            "\"completion_tokens\":9,\"total_tokens\":22}}\n\n", model));
          g_ptr_array_add (chunks, g_strdup ("data: [DONE]\n\n"));
          if (g_str_equal (behaviour, "DROP"))
            {
              drop_connection (msg, "text/event-stream", g_ptr_array_index (chunks, 0));
              g_ptr_array_unref (chunks);
              return;
            }
          start_stream (msg, "text/event-stream", chunks, behaviour);
        }
    }
  else if (g_str_equal (what, "embeddings"))
    set_json_take (msg, 200, g_strdup_printf (
      "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"embedding\":[0.0125,-0.25,0.5],"
      "\"index\":0}],\"model\":\"%s\",\"usage\":{\"prompt_tokens\":4,\"total_tokens\":4}}", model));
  else
    set_json (msg, 404, "{\"error\":{\"code\":404,\"message\":\"Not found.\",\"status\":\"NOT_FOUND\"}}");
}

typedef struct
{
  SoupServerMessage *msg;
  char              *path;
  GHashTable        *query;
  char              *behaviour;
  char              *key;
} Pending;

static void
pending_free (Pending *p)
{
  g_object_unref (p->msg);
  g_free (p->path);
  g_clear_pointer (&p->query, g_hash_table_unref);
  g_free (p->behaviour);
  g_free (p->key);
  g_free (p);
}

/* Routes an API request whose key was already accepted. */
static void
serve_api (SoupServerMessage *msg,
           const char        *path,
           GHashTable        *query,
           const char        *behaviour)
{
  const char *rest;

  if (g_str_has_prefix (path, "/v1beta/"))
    rest = path + strlen ("/v1beta/");
  else if (g_str_has_prefix (path, "/v1/"))
    rest = path + strlen ("/v1/");
  else
    {
      set_json (msg, 404, "{\"error\":{\"code\":404,\"message\":\"Not found.\",\"status\":\"NOT_FOUND\"}}");
      return;
    }

  if (g_str_has_prefix (rest, "openai/"))
    serve_openai (msg, rest + strlen ("openai/"), behaviour);
  else if (g_str_equal (rest, "models"))
    serve_models (msg, query);
  else if (g_str_has_prefix (rest, "models/"))
    {
      const char *name = rest + strlen ("models/");
      const char *colon = strchr (name, ':');

      if (colon == NULL)
        {
          for (guint i = 0; i < G_N_ELEMENTS (models); i++)
            if (g_str_equal (models[i], name))
              {
                set_json_take (msg, 200, model_json (name));
                return;
              }
          set_json (msg, 404, "{\"error\":{\"code\":404,\"message\":\"models/unknown is not found "
                    "for API version v1beta.\",\"status\":\"NOT_FOUND\"}}");
        }
      else
        {
          g_autofree char *model = g_strndup (name, colon - name);

          serve_generate (msg, model, colon + 1, query, behaviour);
        }
    }
  else
    set_json (msg, 404, "{\"error\":{\"code\":404,\"message\":\"Not found.\",\"status\":\"NOT_FOUND\"}}");
}

static gboolean
slow_done_cb (gpointer data)
{
  Pending *p = data;

  if (!apply_error_behaviour (p->msg, p->behaviour, p->key))
    serve_api (p->msg, p->path, p->query, "OK");
  soup_server_message_unpause (p->msg);
  pending_free (p);
  return G_SOURCE_REMOVE;
}

static void
mock_hooks (SoupServerMessage *msg,
            const char        *path)
{
  if (g_str_equal (path, "/_mock/stats"))
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      g_autoptr(JsonNode) root = NULL;
      GHashTableIter iter;
      gpointer k, v;

      json_builder_begin_object (b);
      g_hash_table_iter_init (&iter, mock.stats);
      while (g_hash_table_iter_next (&iter, &k, &v))
        {
          json_builder_set_member_name (b, k);
          json_builder_add_int_value (b, GPOINTER_TO_UINT (v));
        }
      json_builder_end_object (b);
      root = json_builder_get_root (b);
      set_json_take (msg, 200, json_to_string (root, FALSE));
    }
  else if (g_str_equal (path, "/_mock/audit"))
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      g_autoptr(JsonNode) root = NULL;

      json_builder_begin_object (b);
      json_builder_set_member_name (b, "requests");
      json_builder_add_int_value (b, mock.requests);
      json_builder_set_member_name (b, "header");
      json_builder_add_int_value (b, mock.header);
      json_builder_set_member_name (b, "query");
      json_builder_add_int_value (b, mock.query);
      json_builder_set_member_name (b, "bearer");
      json_builder_add_int_value (b, mock.bearer);
      json_builder_set_member_name (b, "multiple");
      json_builder_add_int_value (b, mock.multiple);
      json_builder_set_member_name (b, "foreign");
      json_builder_begin_array (b);
      for (guint i = 0; i < mock.foreign->len; i++)
        json_builder_add_string_value (b, g_ptr_array_index (mock.foreign, i));
      json_builder_end_array (b);
      json_builder_end_object (b);
      root = json_builder_get_root (b);
      set_json_take (msg, 200, json_to_string (root, FALSE));
    }
  else if (g_str_equal (path, "/_mock/last"))
    set_json (msg, 200, mock.last_headers ? mock.last_headers : "{}");
  else if (g_str_equal (path, "/_mock/reset") &&
           g_str_equal (soup_server_message_get_method (msg), "POST"))
    {
      g_hash_table_remove_all (mock.stats);
      g_ptr_array_set_size (mock.foreign, 0);
      mock.requests = mock.header = mock.query = mock.bearer = mock.multiple = 0;
      g_clear_pointer (&mock.last_headers, g_free);
      set_json (msg, 200, "{}");
    }
  else
    set_json (msg, 404, "{}");
}

static void
handler_cb (SoupServer        *server,
            SoupServerMessage *msg,
            const char        *path,
            GHashTable        *query,
            gpointer           user_data)
{
  g_autofree char *key = NULL;
  const char *behaviour;

  if (g_str_has_prefix (path, "/_mock/"))
    {
      mock_hooks (msg, path);
      return;
    }

  key = take_credentials (msg, query);
  if (key == NULL)
    {
      set_json (msg, 403, no_key_body);
      return;
    }

  behaviour = behaviour_of (key);
  if (strstr (key, "SLOW") != NULL)
    {
      Pending *p = g_new0 (Pending, 1);

      p->msg = g_object_ref (msg);
      p->path = g_strdup (path);
      p->query = query ? g_hash_table_ref (query) : NULL;
      p->behaviour = g_strdup (behaviour);
      p->key = g_steal_pointer (&key);
      soup_server_message_pause (msg);
      g_timeout_add (mock.slow_ms, slow_done_cb, p);
      return;
    }
  if (apply_error_behaviour (msg, behaviour, key))
    return;

  serve_api (msg, path, query, behaviour);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(SoupServer) server = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_autoslist(GUri) uris = NULL;
  const char *slow = g_getenv ("MOCK_GEMINI_SLOW_MS");
  int port = 0;
  g_autofree char *tls_cert = NULL;
  g_autofree char *tls_key = NULL;
  SoupServerListenOptions listen = SOUP_SERVER_LISTEN_IPV4_ONLY;
  GOptionEntry entries[] = {
    { "port", 'p', 0, G_OPTION_ARG_INT, &port, "Port to listen on (0 = any free port)", "N" },
    { "tls-cert", 0, 0, G_OPTION_ARG_FILENAME, &tls_cert, "Serve https with this certificate",
      "FILE" },
    { "tls-key", 0, 0, G_OPTION_ARG_FILENAME, &tls_key, "The certificate's private key", "FILE" },
    { NULL }
  };

  context = g_option_context_new ("- a mock Gemini API server for tests");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("mock-gemini: %s\n", error->message);
      return 2;
    }

  mock.stats = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  mock.foreign = g_ptr_array_new_with_free_func (g_free);
  mock.slow_ms = slow ? (guint) g_ascii_strtoull (slow, NULL, 10) : DEFAULT_SLOW_MS;

  server = soup_server_new ("server-header", "mock-gemini", NULL);
  if (tls_cert != NULL)
    {
      g_autoptr(GTlsCertificate) certificate =
        g_tls_certificate_new_from_files (tls_cert, tls_key, &error);

      if (certificate == NULL)
        {
          g_printerr ("mock-gemini: %s\n", error->message);
          return 1;
        }
      soup_server_set_tls_certificate (server, certificate);
      listen |= SOUP_SERVER_LISTEN_HTTPS;
    }
  soup_server_add_handler (server, NULL, handler_cb, NULL, NULL);
  if (!soup_server_listen_local (server, port, listen, &error))
    {
      g_printerr ("mock-gemini: %s\n", error->message);
      return 1;
    }
  uris = soup_server_get_uris (server);
  g_assert (uris != NULL);
  printf ("PORT %d\n", g_uri_get_port (uris->data));
  fflush (stdout);

  loop = g_main_loop_new (NULL, FALSE);
  g_main_loop_run (loop);
  return 0;
}
