/* fuzz-usage-scanner.c: the gateway's usage scanner over relayed answers.
 *
 * The first byte picks what the rest is: 's' an SSE stream, 'a' a streamed
 * JSON array (what the gateway relays for streamGenerateContent without
 * alt=sse), 'w' a whole non-stream answer; any other byte picks one of the
 * three from its value. A stream is fed to GkUsageScanner in one piece, a
 * byte at a time and in pieces cut where the input's own bytes say, and
 * must give the same usage each time: where upstream's chunks end must not
 * matter. Where the input is plain enough for the two to agree by
 * definition, the result is also checked against gk_usage_parse() on the
 * whole text, the core's reading of the same formats.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <json-glib/json-glib.h>

#include "fuzz-common.h"
#include "gk-gateway-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
assert_usage_equal (const GkTokenUsage *a,
                    const GkTokenUsage *b)
{
  g_assert_cmpint (a->found, ==, b->found);
  g_assert_cmpint (a->prompt_tokens, ==, b->prompt_tokens);
  g_assert_cmpint (a->output_tokens, ==, b->output_tokens);
  g_assert_cmpint (a->total_tokens, ==, b->total_tokens);
}

static void
assert_usage_sane (const GkTokenUsage *usage)
{
  g_assert_cmpint (usage->prompt_tokens, >=, 0);
  g_assert_cmpint (usage->output_tokens, >=, 0);
  g_assert_cmpint (usage->total_tokens, >=, 0);
  if (!usage->found)
    {
      g_assert_cmpint (usage->prompt_tokens, ==, 0);
      g_assert_cmpint (usage->output_tokens, ==, 0);
      g_assert_cmpint (usage->total_tokens, ==, 0);
    }
}

/* Feeds @text in pieces: @step 0 cuts where @cuts says (each byte a piece
 * length, 0 included: an empty read), otherwise pieces of @step bytes. */
static GkTokenUsage
scan (gboolean       sse,
      const char    *text,
      gsize          len,
      gsize          step,
      const uint8_t *cuts,
      gsize          n_cuts)
{
  GkUsageScanner scanner;
  GkTokenUsage usage;
  gsize pos = 0;
  gsize c = 0;

  gk_usage_scanner_init (&scanner, sse);
  while (pos < len)
    {
      gsize piece = step;

      if (step == 0)
        piece = n_cuts > 0 ? cuts[c++ % n_cuts] % 97 : len;
      piece = MIN (piece, len - pos);
      gk_usage_scanner_feed (&scanner, text + pos, piece);
      pos += piece;
      if (step == 0 && n_cuts > 0 && c % n_cuts == 0 && piece == 0)
        {
          /* All cuts were empty: take the rest at once. */
          gk_usage_scanner_feed (&scanner, text + pos, len - pos);
          pos = len;
        }
    }
  gk_usage_scanner_finish (&scanner);
  usage = scanner.usage;
  /* finish leaves nothing behind: another finish changes nothing. */
  gk_usage_scanner_finish (&scanner);
  assert_usage_equal (&usage, &scanner.usage);
  gk_usage_scanner_clear (&scanner);
  return usage;
}

/* Whether gk_usage_parse() reads @text as the same SSE stream the scanner
 * sees: LF or CRLF line ends (not both, no lone CR), "data:" only at the
 * start of a line (no event whose payload is itself SSE), and no leading
 * white space or JSON that would make it parse the text another way. */
static gboolean
plain_sse (const char *text,
           gsize       len)
{
  gboolean has_cr = memchr (text, '\r', len) != NULL;

  if (len == 0 || memchr (text, '\0', len) != NULL)
    return FALSE;
  if (text[0] == ' ' || text[0] == '\t' || text[0] == '\v' || text[0] == '\f' ||
      text[0] == '{' || text[0] == '[' || (guchar) text[0] == 0xEF)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    {
      if (has_cr && text[i] == '\r' && (i + 1 >= len || text[i + 1] != '\n'))
        return FALSE;
      if (has_cr && text[i] == '\n' && (i == 0 || text[i - 1] != '\r'))
        return FALSE;
      if (i + 5 <= len && memcmp (text + i, "data:", 5) == 0 && i > 0 && text[i - 1] != '\n')
        return FALSE;
    }
  /* A leading blank line is skipped as white space by one and seen as an
   * empty event by the other: the same. Other leading white space is not. */
  return TRUE;
}

/* Whether @text is a JSON array of objects written in plain JSON: no
 * comments or single quotes (json-glib's extensions) and no \u escapes
 * (the scanner looks for "usage" in the raw text). */
static gboolean
plain_array (const char *text,
             gsize       len)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonNode *root;
  JsonArray *array;

  if (len == 0 || text[0] != '[' || memchr (text, '\0', len) != NULL ||
      memchr (text, '/', len) != NULL || memchr (text, '\'', len) != NULL ||
      g_strstr_len (text, len, "\\u") != NULL || !g_utf8_validate (text, len, NULL))
    return FALSE;
  if (!json_parser_load_from_data (parser, text, len, NULL))
    return FALSE;
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_ARRAY (root))
    return FALSE;
  array = json_node_get_array (root);
  for (guint i = 0; i < json_array_get_length (array); i++)
    if (!JSON_NODE_HOLDS_OBJECT (json_array_get_element (array, i)))
      return FALSE;
  return TRUE;
}

/* Whether @text is one JSON object in plain JSON (as for plain_array). */
static gboolean
plain_object (const char *text,
              gsize       len)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonNode *root;

  if (len == 0 || memchr (text, '\0', len) != NULL ||
      memchr (text, '/', len) != NULL || memchr (text, '\'', len) != NULL ||
      g_strstr_len (text, len, "\\u") != NULL || !g_utf8_validate (text, len, NULL))
    return FALSE;
  if (!json_parser_load_from_data (parser, text, len, NULL))
    return FALSE;
  root = json_parser_get_root (parser);
  return root != NULL && JSON_NODE_HOLDS_OBJECT (root);
}

static void
fuzz_stream (gboolean       sse,
             const char    *text,
             gsize          len,
             const uint8_t *cuts,
             gsize          n_cuts)
{
  GkTokenUsage whole = scan (sse, text, len, len, NULL, 0);
  GkTokenUsage piece;

  assert_usage_sane (&whole);
  piece = scan (sse, text, len, 1, NULL, 0);
  assert_usage_equal (&whole, &piece);
  piece = scan (sse, text, len, 0, cuts, n_cuts);
  assert_usage_equal (&whole, &piece);
  piece = scan (sse, text, len, 2, NULL, 0);
  assert_usage_equal (&whole, &piece);

  if (sse ? plain_sse (text, len) : plain_array (text, len))
    {
      GkTokenUsage core = { 0 };

      gk_usage_parse (text, len, &core);
      assert_usage_equal (&whole, &core);
    }
}

static void
fuzz_answer (const char *text,
             gsize       len)
{
  GkTokenUsage usage = { 0 };
  gboolean found = gk_gateway_usage_parse_answer (text, len, &usage);

  g_assert_cmpint (found, ==, usage.found);
  assert_usage_sane (&usage);
  if (plain_object (text, len))
    {
      GkTokenUsage core = { 0 };

      gk_usage_parse (text, len, &core);
      assert_usage_equal (&usage, &core);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autofree uint8_t *cuts = NULL;
  const char *text;
  gsize len;
  int mode;

  if (size == 0)
    return 0;
  mode = data[0] == 's' ? 0 : data[0] == 'a' ? 1 : data[0] == 'w' ? 2 : data[0] % 3;
  text = (const char *) data + 1;
  len = size - 1;

  if (mode == 2)
    {
      fuzz_answer (text, len);
      return 0;
    }

  /* The cut points come from the input itself, read backwards, so that
   * the fuzzer varies them along with the text. */
  cuts = g_malloc (len + 1);
  for (gsize i = 0; i < len; i++)
    cuts[i] = data[size - 1 - i];
  fuzz_stream (mode == 0, text, len, cuts, len);
  return 0;
}
