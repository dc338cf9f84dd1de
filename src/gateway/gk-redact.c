/* gk-redact.c: pool keys taken out of what the gateway relays.
 *
 * The same shapes as gk_redact_keys() in the core (AIza[A-Za-z0-9_-]{35}
 * and AQ\.[A-Za-z0-9_.-]{20,}), matched without regard to case and over a
 * stream cut anywhere, without a regex engine: every relayed byte passes
 * through here.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <string.h>

#include "gk-redact.h"

#define MASK            "[REDACTED]"
#define AIZA_PREFIX     "aiza"
#define AIZA_BODY       35
#define AQ_PREFIX       "aq."
#define AQ_MIN_BODY     20
/* An AQ. key may be any length; past this much it is redacted without
 * waiting for its end, and the rest of it dropped as it comes. */
#define MAX_HELD        4096

typedef enum
{
  SCAN_NONE,
  SCAN_KEY,
  SCAN_MORE,      /* the text ends before it tells */
} Scan;

static gboolean
aiza_char (guchar c)
{
  return g_ascii_isalnum (c) || c == '_' || c == '-';
}

static gboolean
aq_char (guchar c)
{
  return aiza_char (c) || c == '.';
}

/* Whether @p (with @avail bytes) starts with @prefix, ignoring case;
 * SCAN_MORE when it is cut short while matching. */
static Scan
scan_prefix (const char *p,
             gsize       avail,
             const char *prefix)
{
  gsize n = strlen (prefix);

  for (gsize i = 0; i < n; i++)
    {
      if (i >= avail)
        return SCAN_MORE;
      if (g_ascii_tolower (p[i]) != prefix[i])
        return SCAN_NONE;
    }
  return SCAN_KEY;
}

/* Whether a key starts at @p; its length in @key_len. @final: nothing
 * follows the @avail bytes. */
static Scan
scan_key (const char *p,
          gsize       avail,
          gboolean    final,
          gsize      *key_len)
{
  Scan s = scan_prefix (p, avail, AIZA_PREFIX);

  if (s == SCAN_KEY)
    {
      gsize i = strlen (AIZA_PREFIX);

      for (; i < avail && i < strlen (AIZA_PREFIX) + AIZA_BODY; i++)
        if (!aiza_char (p[i]))
          break;
      if (i == strlen (AIZA_PREFIX) + AIZA_BODY)
        {
          *key_len = i;
          return SCAN_KEY;
        }
      if (i < avail || final)
        s = SCAN_NONE;
      else
        return SCAN_MORE;
    }
  if (s == SCAN_MORE && !final)
    return SCAN_MORE;

  s = scan_prefix (p, avail, AQ_PREFIX);
  if (s == SCAN_KEY)
    {
      gsize i = strlen (AQ_PREFIX);

      while (i < avail && aq_char (p[i]))
        i++;
      if (i == avail && !final)
        return SCAN_MORE;
      if (i - strlen (AQ_PREFIX) >= AQ_MIN_BODY)
        {
          *key_len = i;
          return SCAN_KEY;
        }
      return SCAN_NONE;
    }
  return s == SCAN_MORE && !final ? SCAN_MORE : SCAN_NONE;
}

/* Redacts @len bytes of @data into @out; returns how many were consumed
 * (the rest may be the start of a key). */
static gsize
redact_into (GkRedactor *redactor,
             const char *data,
             gsize       len,
             gboolean    final,
             GString    *out)
{
  gsize i = 0;
  gsize plain = 0;    /* start of the bytes not yet copied */

  if (redactor != NULL && redactor->in_key)
    {
      while (i < len && aq_char (data[i]))
        i++;
      if (i == len)
        return len;
      redactor->in_key = FALSE;
      plain = i;
    }
  while (i < len)
    {
      gsize key_len = 0;
      Scan s;

      if ((data[i] | 0x20) != 'a')
        {
          i++;
          continue;
        }
      s = scan_key (data + i, len - i, final, &key_len);
      if (s == SCAN_NONE)
        {
          i++;
          continue;
        }
      g_string_append_len (out, data + plain, i - plain);
      if (s == SCAN_MORE)
        {
          if (len - i <= MAX_HELD)
            return i;
          /* Only an AQ. run can be this long: a key, whatever follows. */
          g_string_append (out, MASK);
          redactor->in_key = TRUE;
          return len;
        }
      g_string_append (out, MASK);
      i += key_len;
      plain = i;
    }
  g_string_append_len (out, data + plain, len - plain);
  return len;
}

void
gk_redactor_init (GkRedactor *redactor)
{
  redactor->held = g_string_new (NULL);
  redactor->in_key = FALSE;
}

void
gk_redactor_clear (GkRedactor *redactor)
{
  if (redactor->held != NULL)
    g_string_free (redactor->held, TRUE);
  redactor->held = NULL;
}

void
gk_redactor_feed (GkRedactor *redactor,
                  const char *data,
                  gsize       len,
                  GString    *out)
{
  gsize used;

  if (redactor->held->len == 0)
    {
      used = redact_into (redactor, data, len, FALSE, out);
      g_string_append_len (redactor->held, data + used, len - used);
      return;
    }
  g_string_append_len (redactor->held, data, len);
  used = redact_into (redactor, redactor->held->str, redactor->held->len, FALSE, out);
  g_string_erase (redactor->held, 0, used);
}

void
gk_redactor_finish (GkRedactor *redactor,
                    GString    *out)
{
  redact_into (redactor, redactor->held->str, redactor->held->len, TRUE, out);
  g_string_truncate (redactor->held, 0);
  redactor->in_key = FALSE;
}

char *
gk_redact_bytes (const char *data,
                 gsize       len,
                 gsize      *out_len)
{
  GString *out;
  gboolean found = FALSE;

  for (gsize i = 0; i < len && !found; i++)
    {
      gsize key_len;

      found = (data[i] | 0x20) == 'a' && scan_key (data + i, len - i, TRUE, &key_len) == SCAN_KEY;
    }
  if (!found)
    return NULL;
  out = g_string_sized_new (len);
  redact_into (NULL, data, len, TRUE, out);
  *out_len = out->len;
  return g_string_free (out, FALSE);
}
