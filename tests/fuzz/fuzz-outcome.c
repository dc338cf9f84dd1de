/* fuzz-outcome.c: the upstream answer classifier and the usage parser,
 * gk_outcome_classify() and gk_usage_parse(), and key redaction.
 *
 * Input: two bytes of HTTP status (big-endian, folded into 100–599), then
 * the body. Checks: no crash or sanitizer report, token counts are not
 * negative, the message has no full key in it, redaction leaves no key.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  GkOutcome outcome = { 0 };
  GkTokenUsage usage = { 0 };
  g_autofree char *text = NULL;
  g_autofree char *redacted = NULL;
  guint status;

  if (size < 2)
    return 0;
  status = 100 + ((data[0] << 8) | data[1]) % 500;
  data += 2, size -= 2;

  /* Not NUL-terminated on purpose: the length is what counts. */
  gk_outcome_classify (status, (const char *) data, size, &outcome);
  g_assert_cmpint (outcome.kind, >=, GK_OUTCOME_SUCCESS);
  g_assert_cmpint (outcome.kind, <=, GK_OUTCOME_ERROR);
  g_assert_cmpint (outcome.retry_delay_s, >=, 0);
  if (outcome.message != NULL)
    {
      g_assert_true (g_utf8_validate (outcome.message, -1, NULL));
      g_assert_false (fuzz_has_classic_key (outcome.message));
    }
  if (status >= 200 && status < 300)
    g_assert_cmpint (outcome.kind, ==, GK_OUTCOME_SUCCESS);
  gk_outcome_clear (&outcome);

  if (gk_usage_parse ((const char *) data, size, &usage))
    {
      g_assert_true (usage.found);
      g_assert_cmpint (usage.prompt_tokens, >=, 0);
      g_assert_cmpint (usage.output_tokens, >=, 0);
      g_assert_cmpint (usage.total_tokens, >=, 0);
    }

  text = fuzz_strndup (data, size);
  redacted = gk_redact_keys (text);
  g_assert_nonnull (redacted);
  g_assert_false (fuzz_has_classic_key (redacted));
  return 0;
}
