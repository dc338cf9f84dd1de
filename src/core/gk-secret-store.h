/* gk-secret-store.h: the master key in the OS keyring (libsecret), or in a
 * 0600 file named by GEMINI_KEYS_MASTER_KEY_FILE for headless use.
 *
 * Never creates a new master key when the database already holds ciphertext
 * and the keyring returned nothing.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-types.h"

G_BEGIN_DECLS

#define GK_SECRET_ERROR (gk_secret_error_quark ())

typedef enum
{
  GK_SECRET_ERROR_LOCKED,        /* the keyring is locked and was not unlocked */
  GK_SECRET_ERROR_NO_SERVICE,    /* no Secret Service on the session bus */
  GK_SECRET_ERROR_MISSING,       /* ciphertext exists but the master key is gone */
  GK_SECRET_ERROR_WRONG_KEY,     /* the master key does not match the database */
  GK_SECRET_ERROR_FILE,          /* the master key file is unreadable or malformed */
  GK_SECRET_ERROR_FAILED,
  GK_SECRET_ERROR_EXISTS,        /* a file would be overwritten without --force */
  GK_SECRET_ERROR_DISMISSED,     /* the keyring's prompt was dismissed */
} GkSecretError;

typedef enum
{
  GK_SECRET_STATE_OK,
  GK_SECRET_STATE_LOCKED,
  GK_SECRET_STATE_ABSENT,
} GkSecretState;

#define GK_SECRET_SCHEMA_NAME "io.github.geminikeys.GeminiKeys.MasterKey"
#define GK_MASTER_KEY_FILE_ENV "GEMINI_KEYS_MASTER_KEY_FILE"

#define GK_TYPE_SECRET_STORE (gk_secret_store_get_type ())
G_DECLARE_FINAL_TYPE (GkSecretStore, gk_secret_store, GK, SECRET_STORE, GObject)

GQuark         gk_secret_error_quark        (void);

/* Uses the keyring, or the file in $GEMINI_KEYS_MASTER_KEY_FILE when set. */
GkSecretStore *gk_secret_store_new          (void);
/* Uses the given file instead of the keyring (NULL: keyring only). */
GkSecretStore *gk_secret_store_new_for_file (const char     *path);
/* NULL when the keyring is used. */
const char    *gk_secret_store_get_file     (GkSecretStore  *self);

/* Looks up a master key stored for the database with @check_value (any
 * when NULL; lookup only, never creates). Returns secure bytes, or NULL with
 * @error NULL when nothing is stored, or NULL with @error set (LOCKED,
 * NO_SERVICE, FILE, FAILED). */
GBytes        *gk_secret_store_lookup       (GkSecretStore  *self,
                                             const char     *db_uuid,
                                             const char     *check_value,
                                             GCancellable   *cancellable,
                                             GError        **error);
gboolean       gk_secret_store_store        (GkSecretStore  *self,
                                             const char     *db_uuid,
                                             GBytes         *master_key,
                                             GCancellable   *cancellable,
                                             GError        **error);
gboolean       gk_secret_store_clear        (GkSecretStore  *self,
                                             const char     *db_uuid,
                                             GCancellable   *cancellable,
                                             GError        **error);

/* The start-up path: looks the master key up, checks it against the key
 * check value in meta (WRONG_KEY), and creates + stores a new one only when
 * the database holds no ciphertext and no check value (MISSING otherwise).
 * Changes nothing on any error. */
GBytes        *gk_secret_store_unlock       (GkSecretStore  *self,
                                             GkDatabase     *db,
                                             GCancellable   *cancellable,
                                             GError        **error);
void           gk_secret_store_unlock_async (GkSecretStore  *self,
                                             GkDatabase     *db,
                                             GCancellable   *cancellable,
                                             GAsyncReadyCallback callback,
                                             gpointer        user_data);
GBytes        *gk_secret_store_unlock_finish (GkSecretStore *self,
                                              GAsyncResult  *result,
                                              GError       **error);

/* Whether a key with @check_value is still stored (in the keyring or the
 * file); FALSE with @error when that cannot be known (LOCKED, NO_SERVICE…). */
gboolean       gk_secret_store_is_stored    (GkSecretStore  *self,
                                             const char     *db_uuid,
                                             const char     *check_value,
                                             gboolean       *stored,
                                             GCancellable   *cancellable,
                                             GError        **error);

/* Writes the master key to @path (created 0600, replacing the file) /
 * reads it from @path, checks it against the database and stores it (the
 * keyring, or the master key file of a file store). */
gboolean       gk_secret_store_export_file  (GkSecretStore  *self,
                                             GBytes         *master_key,
                                             const char     *path,
                                             GError        **error);
gboolean       gk_secret_store_import_file  (GkSecretStore  *self,
                                             GkDatabase     *db,
                                             const char     *path,
                                             GError        **error);
/* As above; without @force an existing file (export) or a master key file
 * holding another key (import) is left alone and EXISTS is set. */
gboolean       gk_secret_store_export_file_full (GkSecretStore *self,
                                                 GBytes        *master_key,
                                                 const char    *path,
                                                 gboolean       force,
                                                 GError       **error);
gboolean       gk_secret_store_import_file_full (GkSecretStore *self,
                                                 GkDatabase    *db,
                                                 const char    *path,
                                                 gboolean       force,
                                                 GError       **error);
/* Reads a master key file (base64 of 32 bytes, or 32 raw bytes). */
GBytes        *gk_secret_store_read_key_file (const char    *path,
                                              GError       **error);

/* Re-encrypts every key under a new master key. Crash-safe: until the new
 * key is committed and stored, the old one keeps working. Returns the new
 * master key. */
GBytes        *gk_secret_store_rotate_master_key (GkSecretStore *self,
                                                  GkDatabase    *db,
                                                  GBytes        *old_master_key,
                                                  GCancellable  *cancellable,
                                                  GError       **error);

G_END_DECLS
