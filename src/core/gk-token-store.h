/* gk-token-store.h: the gateway's client tokens, stored hashed and named
 * (the name is the usage log's user_id).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-types.h"

G_BEGIN_DECLS

#define GK_TOKEN_ERROR (gk_token_error_quark ())

typedef enum
{
  GK_TOKEN_ERROR_INVALID_NAME,
  GK_TOKEN_ERROR_DUPLICATE,
  GK_TOKEN_ERROR_NOT_FOUND,
} GkTokenError;

typedef struct
{
  gint64  id;
  char   *name;
  gint64  created_at;
  gint64  last_used_at;   /* 0 = never */
  gint64  revoked_at;     /* 0 = valid */
} GkToken;

void      gk_token_free          (GkToken    *token);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GkToken, gk_token_free)

GQuark    gk_token_error_quark   (void);

/* The rules for a token name (1 to 100 characters of printable text, no
 * leading or trailing space); FALSE with GK_TOKEN_ERROR_INVALID_NAME. */
gboolean  gk_token_validate_name (const char *name,
                                  GError    **error);
/* Creates a named token; returns the token text (shown once) and its id.
 * The admin token is the one named "admin". */
char     *gk_token_create        (GkDatabase *db,
                                  const char *name,
                                  gint64     *id_out,
                                  GError    **error);
/* Element type GkToken, including revoked ones. */
GPtrArray *gk_token_list         (GkDatabase *db,
                                  GError    **error);
gboolean  gk_token_revoke        (GkDatabase *db,
                                  gint64      id,
                                  GError    **error);
/* Checks @token in constant time against the stored hashes; returns the
 * token's name (the user id), or NULL when it is unknown or revoked. */
char     *gk_token_verify        (GkDatabase *db,
                                  const char *token);
/* gk_token_verify(), with @error set when the database could not answer
 * (GK_DATABASE_ERROR_UNREACHABLE: a server out of reach), rather than the
 * token being unknown. */
char     *gk_token_verify_full   (GkDatabase  *db,
                                  const char  *token,
                                  GError     **error);

G_END_DECLS
