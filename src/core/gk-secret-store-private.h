/* gk-secret-store-private.h: the keyring calls of gk-secret-store.c that
 * other core modules keeping secrets of their own (gk-team-database.c)
 * share, with its error handling and its prompts.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

/* The object-path calls (secret-paths.h), stable in practice since 0.18. */
#define SECRET_API_SUBJECT_TO_CHANGE
#include <libsecret/secret.h>

#include "gk-secret-store.h"

G_BEGIN_DECLS

/* The Secret Service, or NULL with NO_SERVICE (or another GK_SECRET_ERROR). */
SecretService *gk_secret_store_get_service     (GCancellable        *cancellable,
                                                GError             **error);
/* Turns what libsecret or GDBus said (@cause, may be NULL) into one of the
 * GK_SECRET_ERROR states the UI and the CLI explain. */
void           gk_secret_store_propagate_error (GError             **error,
                                                GError              *cause,
                                                GCancellable        *cancellable);
void           gk_secret_store_set_locked_error (GError            **error);
/* Makes sure the default keyring exists and is unlocked, prompting through
 * @self (its "prompting" signal) when needed: call before storing. */
gboolean       gk_secret_store_prepare_collection (GkSecretStore    *self,
                                                   SecretService    *service,
                                                   GCancellable     *cancellable,
                                                   GError          **error);
/* One keyring item a search found. */
typedef struct
{
  char        *path;         /* its D-Bus object path */
  GHashTable  *attributes;
  SecretValue *value;        /* NULL when locked */
  gboolean     locked;
} GkKeyringItem;

void           gk_keyring_item_free            (gpointer             item);

/* The items of @schema matching @attributes (a GPtrArray of GkKeyringItem),
 * with their secrets; locked ones are unlocked first (prompting through
 * @self), and those left locked come without secrets. An item another
 * process removes while they are read makes the search run again. */
GPtrArray     *gk_secret_store_search          (GkSecretStore       *self,
                                                SecretService       *service,
                                                const SecretSchema  *schema,
                                                GHashTable          *attributes,
                                                GCancellable        *cancellable,
                                                GError             **error);
/* Whether the default keyring is locked: a search there finds nothing. */
gboolean       gk_secret_store_default_collection_locked (SecretService *service,
                                                          GCancellable  *cancellable);

/* Calls @hook (once) between a keyring search and the reading of the
 * secrets and attributes of what it found, where another process may
 * remove or add items. For tests. */
void           gk_secret_store_set_search_hook (GkSecretStore       *self,
                                                GFunc                hook,
                                                gpointer             data);

G_END_DECLS
