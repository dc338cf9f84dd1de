/* gk-redact.h: pool keys taken out of what the gateway relays.
 *
 * The gateway knows the pool's plaintext keys only while it sends one, so
 * what it relays is redacted by pattern, in any case: "AIza" and 35 key
 * characters, and "AQ." and 20 or more, each replaced by "[REDACTED]".
 * A stream is redacted piece by piece: a tail that may be the start of a
 * key is held back until the next piece tells.
 *
 * Pure functions, no I/O.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  GString  *held;      /* the tail that may be the start of a key */
  gboolean  in_key;    /* inside an overlong AQ. key: drop its characters */
} GkRedactor;

void   gk_redactor_init   (GkRedactor *redactor);
void   gk_redactor_clear  (GkRedactor *redactor);
/* Appends to @out what of @data (and what was held) can be passed on,
 * keys replaced. */
void   gk_redactor_feed   (GkRedactor *redactor,
                           const char *data,
                           gsize       len,
                           GString    *out);
/* The end of the stream: appends what was held, keys replaced. */
void   gk_redactor_finish (GkRedactor *redactor,
                           GString    *out);

/* @data with its keys replaced, NUL-terminated, its length in @out_len;
 * NULL when it holds none (the caller keeps @data). */
char  *gk_redact_bytes    (const char *data,
                           gsize       len,
                           gsize      *out_len);

G_END_DECLS
