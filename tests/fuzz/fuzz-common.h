/* fuzz-common.h: shared by the libFuzzer targets.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "gk-core.h"

/* The master key the seeds in corpus/crypto-decrypt/ were made with: the
 * same bytes as gk_test_master_key() (i * 7 + 3). */
static inline GBytes *
fuzz_master_key (void)
{
  guint8 key[GK_MASTER_KEY_LEN];

  for (guint i = 0; i < sizeof key; i++)
    key[i] = (guint8) (i * 7 + 3);
  return gk_secure_bytes_new (key, sizeof key);
}

/* A NUL-terminated copy of the input, for functions that take C strings. */
static inline char *
fuzz_strndup (const uint8_t *data,
              size_t         size)
{
  char *copy = g_malloc (size + 1);

  memcpy (copy, data, size);
  copy[size] = '\0';
  return copy;
}

static inline gboolean
fuzz_is_key_char (char c)
{
  return g_ascii_isalnum (c) || c == '_' || c == '-';
}

/* Whether @text still holds a whole classic key: "AIza" and 35 key
 * characters. */
static inline gboolean
fuzz_has_classic_key (const char *text)
{
  for (const char *p = strstr (text, "AIza"); p != NULL; p = strstr (p + 1, "AIza"))
    {
      guint n = 0;

      while (n < 35 && fuzz_is_key_char (p[4 + n]))
        n++;
      if (n == 35)
        return TRUE;
    }
  return FALSE;
}
