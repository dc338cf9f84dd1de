/* fuzz-crypto-decrypt.c: the encrypted-blob decoder, gk_crypto_decrypt().
 *
 * Input: one byte choosing the associated data, then the blob. Any input
 * must decrypt to a NUL-terminated value or fail with a GError; and every
 * input, encrypted, must decrypt back to itself.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include "fuzz-common.h"

static const char *aads[] = {
  "3f0e8c52-8a51-4c1b-9a57-2b7c1f6d9e40",
  "",
  NULL,
  "another-row",
};

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  static GBytes *master = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) plain = NULL;
  const char *aad;

  if (master == NULL)
    master = fuzz_master_key ();
  if (size < 1)
    return 0;
  aad = aads[data[0] % G_N_ELEMENTS (aads)];
  data++, size--;

  plain = gk_crypto_decrypt (master, aad, data, size, &error);
  if (plain != NULL)
    {
      gsize len = 0;
      const char *p = g_bytes_get_data (plain, &len);

      g_assert_no_error (error);
      g_assert_true (size >= 1 + GK_CRYPTO_NONCE_LEN + GK_CRYPTO_TAG_LEN);
      g_assert_cmpuint (len, ==, size - 1 - GK_CRYPTO_NONCE_LEN - GK_CRYPTO_TAG_LEN);
      g_assert_cmpint (p[len], ==, '\0');
    }
  else
    {
      g_assert_nonnull (error);
      g_assert_true (error->domain == GK_CRYPTO_ERROR);
    }

  /* Round trip of the same bytes as plaintext. */
  {
    g_autoptr(GError) local = NULL;
    g_autoptr(GBytes) blob = gk_crypto_encrypt (master, aad, data, size, &local);
    g_autoptr(GBytes) back = NULL;
    gsize back_len = 0;

    g_assert_no_error (local);
    back = gk_crypto_decrypt (master, aad, g_bytes_get_data (blob, NULL),
                              g_bytes_get_size (blob), &local);
    g_assert_no_error (local);
    g_assert_true (memcmp (g_bytes_get_data (back, &back_len), data, size) == 0);
    g_assert_cmpuint (back_len, ==, size);
  }
  return 0;
}
