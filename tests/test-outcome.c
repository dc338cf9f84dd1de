/* test-outcome.c: classifying upstream answers, reading usage, redaction.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <string.h>

#include "gk-test-util.h"

/* Obviously fake, but shaped like keys: 35 characters after "AIza", and an
 * "AQ." key of the newer kind. */
#define FAKE_KEY_1 "AIzaFAKE0000000000000000000000000000001"
#define FAKE_KEY_2 "AIzaFAKE_-00000000000000000000000000002"
#define FAKE_AQ    "AQ.FAKEfake0000000000000000.fake-000_x"

/* Bodies as quoted in GEMINI_API.md. */
#define BODY_429_MINUTE \
  "{\"error\":{\"code\":429,\"message\":\"You exceeded your current quota, please check your plan " \
  "and billing details. For more information on this error, head to: " \
  "https://ai.google.dev/gemini-api/docs/rate-limits.\",\"status\":\"RESOURCE_EXHAUSTED\"," \
  "\"details\":[\n" \
  " {\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\",\"violations\":[{\"quotaMetric\":" \
  "\"generativelanguage.googleapis.com/generate_content_free_tier_input_token_count\",\"quotaId\":" \
  "\"GenerateContentInputTokensPerModelPerMinute-FreeTier\",\"quotaDimensions\":{\"location\":" \
  "\"global\",\"model\":\"gemini-2.5-flash\"},\"quotaValue\":\"250000\"}]},\n" \
  " {\"@type\":\"type.googleapis.com/google.rpc.Help\",\"links\":[{\"description\":\"Learn more " \
  "about Gemini API quotas\",\"url\":\"https://ai.google.dev/gemini-api/docs/rate-limits\"}]},\n" \
  " {\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"26s\"}]}}"

#define BODY_429(quota_id, delay) \
  "{\"error\":{\"code\":429,\"message\":\"You exceeded your current quota.\"," \
  "\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[" \
  "{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\",\"violations\":[{\"quotaMetric\":" \
  "\"generativelanguage.googleapis.com/generate_requests\",\"quotaId\":\"" quota_id "\"}]}," \
  "{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":" delay "}]}}"

#define BODY_429_OLD \
  "{\"error\":{\"code\":429,\"message\":\"Resource has been exhausted (e.g. check quota).\"," \
  "\"status\":\"RESOURCE_EXHAUSTED\"}}"

#define BODY_400_INVALID \
  "{\"error\":{\"code\":400,\"message\":\"API key not valid. Please pass a valid API key.\"," \
  "\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\"," \
  "\"reason\":\"API_KEY_INVALID\",\"domain\":\"googleapis.com\",\"metadata\":{\"service\":" \
  "\"generativelanguage.googleapis.com\"}}]}}"

#define BODY_400_NOT_FOUND \
  "{\"error\":{\"code\":400,\"message\":\"API Key not found. Please pass a valid API key.\"," \
  "\"status\":\"INVALID_ARGUMENT\"}}"

#define BODY_403_LEAKED \
  "{\"error\":{\"code\":403,\"message\":\"Your API key was reported as leaked. Please use another " \
  "API key.\",\"status\":\"PERMISSION_DENIED\"}}"

#define BODY_403_SUSPENDED \
  "{\"error\":{\"code\":403,\"message\":\"Permission denied: Consumer 'api_key:" FAKE_KEY_1 "' has " \
  "been suspended.\",\"status\":\"PERMISSION_DENIED\",\"details\":[{\"@type\":" \
  "\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"CONSUMER_SUSPENDED\",\"domain\":" \
  "\"googleapis.com\",\"metadata\":{\"consumer\":\"projects/123456789\"}}]}}"

#define BODY_403_REASON(reason) \
  "{\"error\":{\"code\":403,\"message\":\"Generative Language API has not been used in project " \
  "123456789 before or it is disabled.\",\"status\":\"PERMISSION_DENIED\",\"details\":[{\"@type\":" \
  "\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"" reason "\",\"domain\":" \
  "\"googleapis.com\"}]}}"

#define BODY_400_LOCATION \
  "{\"error\":{\"code\":400,\"message\":\"User location is not supported for the API use.\"," \
  "\"status\":\"FAILED_PRECONDITION\"}}"

#define BODY_503 \
  "{\"error\":{\"code\":503,\"message\":\"The model is overloaded. Please try again later.\"," \
  "\"status\":\"UNAVAILABLE\"}}"

#define BODY_500 \
  "{\"error\":{\"code\":500,\"message\":\"An internal error has occurred. Please retry or report in " \
  "https://developers.generativeai.google/guide/troubleshooting\",\"status\":\"INTERNAL\"}}"

typedef struct
{
  const char    *name;
  guint          http_status;
  const char    *body;
  GkOutcomeKind  kind;
  gint64         retry_delay_s;
  gboolean       per_project;
  const char    *reason;
  const char    *message_prefix;   /* NULL: no message expected */
} ClassifyCase;

static const ClassifyCase classify_cases[] = {
  { "429 per minute, documented body", 429, BODY_429_MINUTE, GK_OUTCOME_RATE_LIMITED_MINUTE, 26,
    FALSE, "RESOURCE_EXHAUSTED", "You exceeded your current quota" },
  { "429 per minute per project", 429,
    BODY_429 ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "\"1.5s\""),
    GK_OUTCOME_RATE_LIMITED_MINUTE, 2, TRUE, "RESOURCE_EXHAUSTED", "You exceeded" },
  { "429 per day per project", 429,
    BODY_429 ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "\"43200s\""),
    GK_OUTCOME_RATE_LIMITED_DAY, 43200, TRUE, "RESOURCE_EXHAUSTED", "You exceeded" },
  { "429 sub-second delay rounds up", 429,
    BODY_429 ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "\"0.000340012s\""),
    GK_OUTCOME_RATE_LIMITED_MINUTE, 1, TRUE, "RESOURCE_EXHAUSTED", "You exceeded" },
  { "429 whole seconds stay", 429,
    BODY_429 ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "\"3.000s\""),
    GK_OUTCOME_RATE_LIMITED_MINUTE, 3, TRUE, "RESOURCE_EXHAUSTED", "You exceeded" },
  { "429 delay as a Duration message", 429,
    BODY_429 ("GenerateRequestsPerMinute-FreeTier", "{\"seconds\":\"3\",\"nanos\":500000000}"),
    GK_OUTCOME_RATE_LIMITED_MINUTE, 4, FALSE, "RESOURCE_EXHAUSTED", "You exceeded" },
  { "429 negative delay ignored", 429,
    BODY_429 ("GenerateRequestsPerMinute-FreeTier", "\"-5s\""),
    GK_OUTCOME_RATE_LIMITED_MINUTE, 0, FALSE, "RESOURCE_EXHAUSTED", "You exceeded" },
  { "429 older body without details", 429, BODY_429_OLD, GK_OUTCOME_RATE_LIMITED_MINUTE, 0, FALSE,
    "RESOURCE_EXHAUSTED", "Resource has been exhausted" },
  { "429 empty body", 429, "", GK_OUTCOME_RATE_LIMITED_MINUTE, 0, FALSE, NULL, NULL },
  { "400 API_KEY_INVALID", 400, BODY_400_INVALID, GK_OUTCOME_INVALID_KEY, 0, FALSE,
    "API_KEY_INVALID", "API key not valid" },
  { "400 API Key not found", 400, BODY_400_NOT_FOUND, GK_OUTCOME_INVALID_KEY, 0, FALSE,
    "INVALID_ARGUMENT", "API Key not found" },
  { "400 OpenAI-compatible array envelope", 400, "[" BODY_400_INVALID "]", GK_OUTCOME_INVALID_KEY,
    0, FALSE, "API_KEY_INVALID", "API key not valid" },
  { "403 leaked", 403, BODY_403_LEAKED, GK_OUTCOME_INVALID_KEY, 0, FALSE, "PERMISSION_DENIED",
    "Your API key was reported as leaked" },
  { "403 consumer suspended, key redacted", 403, BODY_403_SUSPENDED, GK_OUTCOME_INVALID_KEY, 0,
    FALSE, "CONSUMER_SUSPENDED", "Permission denied: Consumer 'api_key:[REDACTED]' has been" },
  { "403 service disabled", 403, BODY_403_REASON ("SERVICE_DISABLED"), GK_OUTCOME_ERROR, 0, FALSE,
    "SERVICE_DISABLED", "Generative Language API" },
  { "403 key service blocked", 403, BODY_403_REASON ("API_KEY_SERVICE_BLOCKED"), GK_OUTCOME_ERROR,
    0, FALSE, "API_KEY_SERVICE_BLOCKED", "Generative Language API" },
  { "403 without detail", 403, "{\"error\":{\"code\":403,\"message\":\"Forbidden\"}}",
    GK_OUTCOME_ERROR, 0, FALSE, NULL, "Forbidden" },
  { "400 location not supported", 400, BODY_400_LOCATION, GK_OUTCOME_ERROR, 0, FALSE,
    "FAILED_PRECONDITION", "User location is not supported" },
  { "400 bad request", 400,
    "{\"error\":{\"code\":400,\"message\":\"Invalid JSON payload received.\",\"status\":"
    "\"INVALID_ARGUMENT\"}}", GK_OUTCOME_ERROR, 0, FALSE, "INVALID_ARGUMENT", "Invalid JSON" },
  { "404 model", 404,
    "{\"error\":{\"code\":404,\"message\":\"models/nope is not found\",\"status\":\"NOT_FOUND\"}}",
    GK_OUTCOME_ERROR, 0, FALSE, "NOT_FOUND", "models/nope is not found" },
  { "401 is not a dead key", 401,
    "{\"error\":{\"code\":401,\"message\":\"Request had invalid authentication credentials.\","
    "\"status\":\"UNAUTHENTICATED\"}}", GK_OUTCOME_ERROR, 0, FALSE, "UNAUTHENTICATED", "Request had" },
  { "503 overloaded", 503, BODY_503, GK_OUTCOME_TRANSIENT, 0, FALSE, "UNAVAILABLE",
    "The model is overloaded" },
  { "500 internal", 500, BODY_500, GK_OUTCOME_TRANSIENT, 0, FALSE, "INTERNAL",
    "An internal error has occurred" },
  { "502 from a proxy", 502, "<html>\r\n<head><title>502 Bad Gateway</title></head></html>",
    GK_OUTCOME_TRANSIENT, 0, FALSE, NULL, "<html>" },
  { "504 plain text", 504, "upstream request timeout", GK_OUTCOME_TRANSIENT, 0, FALSE, NULL,
    "upstream request timeout" },
  { "408 timeout", 408, NULL, GK_OUTCOME_TRANSIENT, 0, FALSE, NULL, NULL },
  { "no answer", 0, NULL, GK_OUTCOME_TRANSIENT, 0, FALSE, NULL, NULL },
  { "200", 200, "{\"candidates\":[]}", GK_OUTCOME_SUCCESS, 0, FALSE, NULL, NULL },
  { "204", 204, NULL, GK_OUTCOME_SUCCESS, 0, FALSE, NULL, NULL },
  { "200 with an error-looking body", 200, BODY_400_INVALID, GK_OUTCOME_SUCCESS, 0, FALSE, NULL,
    NULL },
  { "418 anything else", 418, "{}", GK_OUTCOME_ERROR, 0, FALSE, NULL, "{}" },
};

static void
test_classify_table (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (classify_cases); i++)
    {
      const ClassifyCase *c = &classify_cases[i];
      GkOutcome outcome;

      g_test_message ("case: %s", c->name);
      gk_outcome_classify (c->http_status, c->body, c->body ? strlen (c->body) : 0, &outcome);

      g_assert_cmpint (outcome.kind, ==, c->kind);
      g_assert_cmpint (outcome.retry_delay_s, ==, c->retry_delay_s);
      g_assert_cmpint (outcome.per_project, ==, c->per_project);
      g_assert_cmpstr (outcome.reason, ==, c->reason);
      if (c->message_prefix == NULL)
        g_assert_null (outcome.message);
      else
        {
          g_assert_nonnull (outcome.message);
          g_assert_true (g_str_has_prefix (outcome.message, c->message_prefix));
        }
      gk_outcome_clear (&outcome);
      g_assert_null (outcome.reason);
      g_assert_null (outcome.message);
    }
}

static void
test_classify_redacts_message (void)
{
  const char *body = "{\"error\":{\"code\":400,\"message\":\"Bad key " FAKE_KEY_2 " and " FAKE_AQ
                     "\",\"status\":\"INVALID_ARGUMENT\"}}";
  const char *text_body = "proxy error for key=" FAKE_KEY_1;
  GkOutcome outcome;

  gk_outcome_classify (400, body, strlen (body), &outcome);
  g_assert_cmpstr (outcome.message, ==, "Bad key [REDACTED] and [REDACTED]");
  gk_outcome_clear (&outcome);

  gk_outcome_classify (502, text_body, strlen (text_body), &outcome);
  g_assert_cmpint (outcome.kind, ==, GK_OUTCOME_TRANSIENT);
  g_assert_cmpstr (outcome.message, ==, "proxy error for key=[REDACTED]");
  gk_outcome_clear (&outcome);
}

static void
test_classify_long_message_truncated (void)
{
  g_autoptr(GString) body = g_string_new ("{\"error\":{\"code\":400,\"message\":\"");
  GkOutcome outcome;

  for (guint i = 0; i < 5000; i++)
    g_string_append (body, "\xc3\xa9");   /* é: truncation must keep UTF-8 whole */
  g_string_append (body, "\"}}");

  gk_outcome_classify (400, body->str, body->len, &outcome);
  g_assert_cmpint (outcome.kind, ==, GK_OUTCOME_ERROR);
  g_assert_nonnull (outcome.message);
  g_assert_true (g_utf8_validate (outcome.message, -1, NULL));
  g_assert_cmpint (g_utf8_strlen (outcome.message, -1), ==, 1024);
  gk_outcome_clear (&outcome);
}

static void
check_garbage (guint       http_status,
               const char *body,
               gsize       len)
{
  GkOutcome outcome;

  gk_outcome_classify (http_status, body, len, &outcome);

  if (http_status >= 200 && http_status < 300)
    g_assert_cmpint (outcome.kind, ==, GK_OUTCOME_SUCCESS);
  else if (http_status == 0 || http_status >= 500)
    g_assert_cmpint (outcome.kind, ==, GK_OUTCOME_TRANSIENT);
  else if (http_status == 429)
    g_assert_cmpint (outcome.kind, ==, GK_OUTCOME_RATE_LIMITED_MINUTE);
  else
    g_assert_cmpint (outcome.kind, ==, GK_OUTCOME_ERROR);

  g_assert_cmpint (outcome.retry_delay_s, >=, 0);
  g_assert_cmpint (outcome.retry_delay_s, <=, 7 * 24 * 3600);
  if (outcome.message != NULL)
    {
      g_assert_true (g_utf8_validate (outcome.message, -1, NULL));
      g_assert_cmpuint (strlen (outcome.message), <=, 4 * 1024);
    }
  if (outcome.reason != NULL)
    g_assert_true (g_utf8_validate (outcome.reason, -1, NULL));
  gk_outcome_clear (&outcome);
}

static const char *const garbage_bodies[] = {
  "",
  " ",
  "null",
  "true",
  "42",
  "\"error\"",
  "[]",
  "[null]",
  "[[]]",
  "{}",
  "{\"error\":null}",
  "{\"error\":[]}",
  "{\"error\":\"boom\"}",
  "{\"error\":{}}",
  "{\"error\":{\"message\":42,\"status\":{},\"details\":\"x\"}}",
  "{\"error\":{\"details\":[1,null,\"a\",[],{\"@type\":5},{\"@type\":null}]}}",
  "{\"error\":{\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\"}]}}",
  "{\"error\":{\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\","
  "\"retryDelay\":\"s\"}]}}",
  "{\"error\":{\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\","
  "\"retryDelay\":\"1e400s\"}]}}",
  "{\"error\":{\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\","
  "\"retryDelay\":\"nans\"}]}}",
  "{\"error\":{\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\","
  "\"retryDelay\":\"99999999999999999999999s\"}]}}",
  "{\"error\":{\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\","
  "\"retryDelay\":{\"seconds\":-9223372036854775807,\"nanos\":\"x\"}}]}}",
  "{\"error\":{\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\","
  "\"retryDelay\":[]}]}}",
  "{\"error\":{\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\","
  "\"violations\":{\"quotaId\":\"PerDay\"}}]}}",
  "{\"error\":{\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\","
  "\"violations\":[null,1,{\"quotaId\":7}]}]}}",
  "{\"error\":{\"code\":429,\"message\":\"Res",
  "{\"error\":{\"code\":429,\"message\":\"unterminated \\",
  "{\"error\":{\"message\":\"\\ud800 lone surrogate\"}}",
  "\xff\xfe{\"error\":{}}",
  "{\"error\":{\"message\":\"\xc3\x28 invalid\"}}",
  "<!DOCTYPE html><html><body>\x01\x02\x7f</body></html>",
  "\r\n\r\n",
};

static void
test_classify_garbage (void)
{
  static const guint statuses[] = { 0, 200, 400, 401, 403, 404, 429, 500, 503 };

  for (guint s = 0; s < G_N_ELEMENTS (statuses); s++)
    {
      for (guint i = 0; i < G_N_ELEMENTS (garbage_bodies); i++)
        check_garbage (statuses[s], garbage_bodies[i], strlen (garbage_bodies[i]));

      /* Embedded NUL: the length covers it. */
      check_garbage (statuses[s], "{\"error\":{\"message\":\"a\0b\"}}", 28);
      check_garbage (statuses[s], "garbage", 0);
      check_garbage (statuses[s], NULL, 100);
    }
}

static void
test_classify_huge_and_deep (void)
{
  gsize deep_len = 200000;
  g_autofree char *deep = g_malloc (deep_len);
  g_autoptr(GString) big = g_string_new ("{\"error\":{\"code\":429,\"message\":\"");
  g_autofree char *spaces = NULL;
  GkOutcome outcome;

  /* Nesting that would exhaust the stack of a recursive parser. */
  memset (deep, '[', deep_len);
  check_garbage (429, deep, deep_len);
  memset (deep, '{', deep_len);
  check_garbage (400, deep, deep_len);

  /* A valid but enormous error body is not read. */
  for (guint i = 0; i < 300000; i++)
    g_string_append_c (big, 'x');
  g_string_append (big, "\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\","
                        "\"violations\":[{\"quotaId\":\"RequestsPerDay\"}]}]}}");
  check_garbage (429, big->str, big->len);

  /* Leading white space before a real body still parses. */
  spaces = g_strnfill (1000, ' ');
  {
    g_autofree char *padded = g_strconcat (spaces, BODY_429_MINUTE, NULL);

    gk_outcome_classify (429, padded, strlen (padded), &outcome);
    g_assert_cmpint (outcome.retry_delay_s, ==, 26);
    gk_outcome_clear (&outcome);
  }
}

/* Mutations of the real bodies: random bytes flipped, truncated anywhere. */
static void
test_classify_fuzz (void)
{
  static const char *const seeds[] = {
    BODY_429_MINUTE, BODY_400_INVALID, BODY_403_SUSPENDED, BODY_503,
  };
  static const guint statuses[] = { 429, 400, 403, 503 };
  g_autoptr(GRand) rand = g_rand_new_with_seed (20260315);

  for (guint round = 0; round < 4000; round++)
    {
      guint which = round % G_N_ELEMENTS (seeds);
      g_autofree char *body = g_strdup (seeds[which]);
      gsize len = strlen (body);
      guint flips = g_rand_int_range (rand, 0, 8);
      GkOutcome outcome;

      for (guint f = 0; f < flips; f++)
        body[g_rand_int_range (rand, 0, (gint32) len)] = (char) g_rand_int_range (rand, 0, 256);
      if (g_rand_boolean (rand))
        len = g_rand_int_range (rand, 0, (gint32) len + 1);

      gk_outcome_classify (statuses[which], body, len, &outcome);
      g_assert_cmpint (outcome.retry_delay_s, >=, 0);
      g_assert_cmpint (outcome.retry_delay_s, <=, 7 * 24 * 3600);
      if (outcome.message != NULL)
        {
          g_assert_true (g_utf8_validate (outcome.message, -1, NULL));
          g_assert_null (strstr (outcome.message, FAKE_KEY_1));
        }
      gk_outcome_clear (&outcome);
    }

  /* Pure noise. */
  for (guint round = 0; round < 500; round++)
    {
      gsize len = g_rand_int_range (rand, 0, 2048);
      g_autofree char *body = g_malloc (len + 1);

      for (gsize i = 0; i < len; i++)
        body[i] = (char) g_rand_int_range (rand, 0, 256);
      check_garbage (429, body, len);
    }
}

/* --- Usage ------------------------------------------------------------- */

#define GENERATE_RESPONSE \
  "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hello\"}],\"role\":\"model\"}," \
  "\"finishReason\":\"STOP\",\"index\":0}],\n" \
  " \"usageMetadata\":{\"promptTokenCount\":55021,\"candidatesTokenCount\":923," \
  "\"totalTokenCount\":56729,\n \"thoughtsTokenCount\":785,\"cachedContentTokenCount\":0}," \
  "\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"abc\"}"

/* SSE data lines hold single-line JSON. */
#define GENERATE_CHUNK \
  "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hello\"}],\"role\":\"model\"}}]," \
  "\"usageMetadata\":{\"promptTokenCount\":55021,\"candidatesTokenCount\":923," \
  "\"totalTokenCount\":56729,\"thoughtsTokenCount\":785}}"

typedef struct
{
  const char *name;
  const char *text;
  gboolean    found;
  gint64      prompt;
  gint64      output;
  gint64      total;
} UsageCase;

static const UsageCase usage_cases[] = {
  { "generateContent with thoughts", GENERATE_RESPONSE, TRUE, 55021, 1708, 56729 },
  { "tool-use prompt tokens count as prompt",
    "{\"usageMetadata\":{\"promptTokenCount\":100,\"toolUsePromptTokenCount\":40,"
    "\"candidatesTokenCount\":10,\"thoughtsTokenCount\":5,\"totalTokenCount\":155}}",
    TRUE, 140, 15, 155 },
  { "total computed when missing",
    "{\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":3}}", TRUE, 7, 3, 10 },
  { "embedding: prompt only", "{\"usageMetadata\":{\"promptTokenCount\":12}}", TRUE, 12, 0, 12 },
  { "int64 rendered as strings",
    "{\"usageMetadata\":{\"promptTokenCount\":\"12\",\"candidatesTokenCount\":\"3\","
    "\"totalTokenCount\":\"15\"}}", TRUE, 12, 3, 15 },
  { "negative counts read as 0",
    "{\"usageMetadata\":{\"promptTokenCount\":-5,\"candidatesTokenCount\":2}}", TRUE, 0, 2, 2 },
  { "one SSE chunk",
    "data: " GENERATE_CHUNK "\r\n\r\n", TRUE, 55021, 1708, 56729 },
  { "SSE stream, the last chunk wins",
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"He\"}]}}],\"usageMetadata\":"
    "{\"promptTokenCount\":10,\"totalTokenCount\":10}}\n\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"llo\"}]}}]}\n\n"
    "data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":10,"
    "\"candidatesTokenCount\":4,\"thoughtsTokenCount\":6,\"totalTokenCount\":20}}\n\n",
    TRUE, 10, 10, 20 },
  { "SSE with CRLF and no final blank line",
    "data: {\"x\":1}\r\n\r\ndata: {\"usageMetadata\":{\"promptTokenCount\":1,"
    "\"candidatesTokenCount\":2,\"totalTokenCount\":3}}", TRUE, 1, 2, 3 },
  { "SSE event split over data lines",
    "event: message\ndata: {\"usageMetadata\":\ndata: {\"promptTokenCount\":4,"
    "\"candidatesTokenCount\":5}}\n\n", TRUE, 4, 5, 9 },
  { "SSE chunk without usage", "data: {\"candidates\":[]}\n\n", FALSE, 0, 0, 0 },
  { "streamed JSON array",
    "[{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}],\"usageMetadata\":"
    "{\"promptTokenCount\":3}},\r\n{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}]}}],"
    "\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":8,"
    "\"thoughtsTokenCount\":1,\"totalTokenCount\":12}}\r\n]", TRUE, 3, 9, 12 },
  { "streamed JSON array, usage not in the very last element",
    "[{\"usageMetadata\":{\"promptTokenCount\":2,\"candidatesTokenCount\":2}},{\"x\":1},7]",
    TRUE, 2, 2, 4 },
  { "OpenAI usage",
    "{\"id\":\"c\",\"object\":\"chat.completion\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,"
    "\"completion_tokens\":5,\"total_tokens\":15}}", TRUE, 10, 5, 15 },
  { "OpenAI usage with thinking left out of completion_tokens",
    "{\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":0,\"total_tokens\":81,"
    "\"completion_tokens_details\":{\"reasoning_tokens\":60}}}", TRUE, 21, 60, 81 },
  { "OpenAI stream chunk",
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,"
    "\"total_tokens\":7}}\n\ndata: [DONE]\n\n", TRUE, 3, 4, 7 },
  { "countTokens is not usage", "{\"totalTokens\":31}", FALSE, 0, 0, 0 },
  { "usage of the wrong type", "{\"usageMetadata\":5,\"usage\":[]}", FALSE, 0, 0, 0 },
  { "truncated", "{\"usageMetadata\":{\"promptTokenCount\":5", FALSE, 0, 0, 0 },
  { "not JSON", "usage usage usage", FALSE, 0, 0, 0 },
  { "empty", "", FALSE, 0, 0, 0 },
  { "white space", " \r\n ", FALSE, 0, 0, 0 },
};

static void
test_usage_table (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (usage_cases); i++)
    {
      const UsageCase *c = &usage_cases[i];
      GkTokenUsage usage;
      gboolean found;

      g_test_message ("case: %s", c->name);
      found = gk_usage_parse (c->text, strlen (c->text), &usage);
      g_assert_cmpint (found, ==, c->found);
      g_assert_cmpint (usage.found, ==, c->found);
      g_assert_cmpint (usage.prompt_tokens, ==, c->prompt);
      g_assert_cmpint (usage.output_tokens, ==, c->output);
      g_assert_cmpint (usage.total_tokens, ==, c->total);
    }
}

static void
test_usage_garbage (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (7);
  gsize deep_len = 100000;
  g_autofree char *deep = g_malloc (deep_len);
  GkTokenUsage usage;

  g_assert_false (gk_usage_parse (NULL, 10, &usage));
  g_assert_false (gk_usage_parse ("\xff\xfe{\"usage\":{}}", 14, &usage));
  memset (deep, '[', deep_len);
  memcpy (deep + deep_len - 8, "\"usage\"", 7);
  g_assert_false (gk_usage_parse (deep, deep_len, &usage));

  for (guint round = 0; round < 2000; round++)
    {
      g_autofree char *text = g_strdup (GENERATE_RESPONSE);
      gsize len = strlen (text);

      for (guint f = 0; f < 4; f++)
        text[g_rand_int_range (rand, 0, (gint32) len)] = (char) g_rand_int_range (rand, 0, 256);
      if (gk_usage_parse (text, g_rand_int_range (rand, 0, (gint32) len + 1), &usage))
        {
          g_assert_cmpint (usage.prompt_tokens, >=, 0);
          g_assert_cmpint (usage.output_tokens, >=, 0);
        }
    }
}

/* --- Redaction --------------------------------------------------------- */

static void
test_redact (void)
{
  static const struct
  {
    const char *text;
    const char *expected;
  } cases[] = {
    { "", "" },
    { "no keys here", "no keys here" },
    { "key=" FAKE_KEY_1 "&alt=sse", "key=[REDACTED]&alt=sse" },
    { FAKE_KEY_1 FAKE_KEY_2, "[REDACTED][REDACTED]" },
    { "x-goog-api-key: " FAKE_KEY_2 "\n", "x-goog-api-key: [REDACTED]\n" },
    { "Bearer " FAKE_AQ " end", "Bearer [REDACTED] end" },
    { "too short AIza0123456789012345678901234567890123",
      "too short AIza0123456789012345678901234567890123" },
    { "AQ.short-key", "AQ.short-key" },
    { "AIza and AQ. alone", "AIza and AQ. alone" },
    { "é " FAKE_KEY_1 " é", "é [REDACTED] é" },
  };

  g_assert_null (gk_redact_keys (NULL));

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *redacted = gk_redact_keys (cases[i].text);

      g_assert_cmpstr (redacted, ==, cases[i].expected);
    }
}

static void
test_redact_keeps_no_secret (void)
{
  g_autofree char *key = g_strdup_printf ("AIzaTEST%031u", 42u);
  g_autofree char *text = g_strdup_printf ("\xff\xfe invalid UTF-8 around %s \xc3", key);
  g_autofree char *redacted = gk_redact_keys (text);

  /* Bytes that are not UTF-8 do not stop redaction. */
  g_assert_null (strstr (redacted, key));
  g_assert_null (strstr (redacted, key + strlen (key) - 4));
  g_assert_nonnull (strstr (redacted, "[REDACTED]"));
  g_assert_true (g_str_has_prefix (redacted, "\xff\xfe invalid"));
}

static gpointer
redact_thread (gpointer data)
{
  for (guint i = 0; i < 2000; i++)
    {
      g_autofree char *redacted = gk_redact_keys ("k=" FAKE_KEY_1);

      g_assert_cmpstr (redacted, ==, "k=[REDACTED]");
    }
  return NULL;
}

static void
test_redact_threads (void)
{
  GThread *threads[8];

  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("redact", redact_thread, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    g_thread_join (threads[i]);
}

/* Absurd counts saturate instead of overflowing. */
static void
test_usage_huge_counts (void)
{
  const char *body = "{\"usageMetadata\":{\"promptTokenCount\":9223372036854775807,"
                     "\"toolUsePromptTokenCount\":9223372036854775807,"
                     "\"candidatesTokenCount\":9223372036854775807,"
                     "\"thoughtsTokenCount\":5}}";
  GkTokenUsage usage = { 0 };

  g_assert_true (gk_usage_parse (body, strlen (body), &usage));
  g_assert_cmpint (usage.prompt_tokens, ==, G_MAXINT64);
  g_assert_cmpint (usage.output_tokens, ==, G_MAXINT64);
  g_assert_cmpint (usage.total_tokens, ==, G_MAXINT64);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add_func ("/outcome/classify/table", test_classify_table);
  g_test_add_func ("/outcome/classify/redacts-message", test_classify_redacts_message);
  g_test_add_func ("/outcome/classify/long-message", test_classify_long_message_truncated);
  g_test_add_func ("/outcome/classify/garbage", test_classify_garbage);
  g_test_add_func ("/outcome/classify/huge-and-deep", test_classify_huge_and_deep);
  g_test_add_func ("/outcome/classify/fuzz", test_classify_fuzz);
  g_test_add_func ("/outcome/usage/table", test_usage_table);
  g_test_add_func ("/outcome/usage/garbage", test_usage_garbage);
  g_test_add_func ("/outcome/redact/table", test_redact);
  g_test_add_func ("/outcome/redact/no-secret", test_redact_keeps_no_secret);
  g_test_add_func ("/outcome/redact/threads", test_redact_threads);

  g_test_add_func ("/usage/huge-counts", test_usage_huge_counts);

  return g_test_run ();
}
