/* fuzz-usage-stream.c: token usage from streamed answers.
 *
 * The input is cut the way a streamed answer reaches the gateway: as SSE
 * (events separated by a blank line, "data:" lines joined by newlines) and,
 * for `alt` without sse, as one JSON array. Each event and the whole text
 * go through gk_usage_parse(), which must never crash nor report negative
 * counts; the last event with usage wins, as in the gateway.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
check_usage (const char *json,
             gsize       len)
{
  GkTokenUsage usage = { 0 };

  if (gk_usage_parse (json, len, &usage))
    {
      g_assert_cmpint (usage.prompt_tokens, >=, 0);
      g_assert_cmpint (usage.output_tokens, >=, 0);
      g_assert_cmpint (usage.total_tokens, >=, 0);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autofree char *text = fuzz_strndup (data, size);
  g_autoptr(GString) event = g_string_new (NULL);
  char *line = text;

  /* SSE: one event per blank line; CRLF and LF both end a line. */
  while (line != NULL && *line != '\0')
    {
      char *end = strchr (line, '\n');
      gsize len = end != NULL ? (gsize) (end - line) : strlen (line);

      if (len > 0 && line[len - 1] == '\r')
        len--;
      if (len == 0)
        {
          if (event->len > 0)
            check_usage (event->str, event->len);
          g_string_truncate (event, 0);
        }
      else if (len >= 5 && strncmp (line, "data:", 5) == 0)
        {
          const char *value = line + 5;
          gsize value_len = len - 5;

          if (value_len > 0 && *value == ' ')
            value++, value_len--;
          if (event->len > 0)
            g_string_append_c (event, '\n');
          g_string_append_len (event, value, value_len);
        }
      line = end != NULL ? end + 1 : NULL;
    }
  if (event->len > 0)
    check_usage (event->str, event->len);

  /* The JSON array form, and the raw bytes with embedded NULs. */
  check_usage (text, strlen (text));
  check_usage ((const char *) data, size);
  return 0;
}
