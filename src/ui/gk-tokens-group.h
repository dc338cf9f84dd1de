/* gk-tokens-group.h: Preferences → Gateway Access: the gateway's URL,
 * the client tokens (create, list, revoke) and snippets to use them.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <adwaita.h>

#include "gk-backend.h"

G_BEGIN_DECLS

#define GK_TYPE_TOKENS_GROUP (gk_tokens_group_get_type ())
G_DECLARE_FINAL_TYPE (GkTokensGroup, gk_tokens_group, GK, TOKENS_GROUP, AdwPreferencesGroup)

GtkWidget  *gk_tokens_group_new         (void);
/* Lists the tokens of @backend, and again whenever it changes; NULL lets
 * go of it. */
void        gk_tokens_group_set_backend (GkTokensGroup *self,
                                         GkBackend     *backend);
/* The port the URL and the snippets use: the running gateway's, or the
 * one it will listen on. */
void        gk_tokens_group_set_port    (GkTokensGroup *self,
                                         guint          port,
                                         gboolean       running);
/* The gateway's base URL as shown ("http://127.0.0.1:8765"). */
const char *gk_tokens_group_get_url     (GkTokensGroup *self);
/* TRUE once the token list was read (for tests). */
gboolean    gk_tokens_group_get_loaded  (GkTokensGroup *self);

G_END_DECLS
