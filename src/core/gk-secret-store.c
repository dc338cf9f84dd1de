/* gk-secret-store.c: the master key in the OS keyring or a 0600 file.
 *
 * Keyring items use the schema GK_SECRET_SCHEMA_NAME with two attributes:
 * "database-uuid" (which database the key belongs to) and "role". The role
 * is "current" for the key the database is encrypted with and "next" for the
 * key a master-key rotation is moving to. A rotation stores "next" first,
 * re-encrypts every row and updates the key check value in one transaction,
 * then replaces "current" and drops "next"; so whichever point it stops at,
 * one of the two items matches the check value and unlock recovers. With a
 * master key file, "next" is the same path with ".next" appended.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <libsecret/secret.h>

#include "gk-crypto.h"
#include "gk-database-private.h"
#include "gk-secret-store.h"

#define ROLE_CURRENT       "current"
#define ROLE_NEXT          "next"
#define META_CHECK_VALUE   "key_check_value"
#define NEXT_FILE_SUFFIX   ".next"
#define KEY_FILE_MODE      0600
#define KEY_DIR_MODE       0700
/* Base64 of GK_MASTER_KEY_LEN bytes. */
#define KEY_BASE64_LEN     44
/* A key file is a few dozen bytes; anything larger is not one. */
#define KEY_FILE_MAX_LEN   4096
#define CONTENT_TYPE       "application/octet-stream"
/* First runs of two processes race for creating the key; one retry lets
 * the loser pick up the winner's key. */
#define UNLOCK_ATTEMPTS    2

struct _GkSecretStore
{
  GObject  parent_instance;
  char    *file;   /* NULL: the keyring */
};

G_DEFINE_FINAL_TYPE (GkSecretStore, gk_secret_store, G_TYPE_OBJECT)
G_DEFINE_QUARK (gk-secret-error-quark, gk_secret_error)

static const SecretSchema *
get_schema (void)
{
  static const SecretSchema schema = {
    GK_SECRET_SCHEMA_NAME, SECRET_SCHEMA_NONE,
    {
      { "database-uuid", SECRET_SCHEMA_ATTRIBUTE_STRING },
      { "role", SECRET_SCHEMA_ATTRIBUTE_STRING },
      { NULL, 0 },
    }
  };

  return &schema;
}

/* Helpers: errors */

static gboolean
is_user_cancel (GError       *error,
                GCancellable *cancellable)
{
  return g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED)
         && cancellable != NULL && g_cancellable_is_cancelled (cancellable);
}

static void
set_locked_error (GError **error)
{
  g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_LOCKED,
               _("The keyring is locked. Unlock it (for example in Passwords and Keys, "
                 "or by logging in again) and try again."));
}

/* Turns what libsecret or GDBus said into one of the states the UI and the
 * CLI explain: no service, locked, or a plain failure. */
static void
propagate_keyring_error (GError       **error,
                         GError        *cause,
                         GCancellable  *cancellable)
{
  if (is_user_cancel (cause, cancellable))
    {
      g_propagate_error (error, g_error_copy (cause));
      return;
    }

  if (g_error_matches (cause, SECRET_ERROR, SECRET_ERROR_IS_LOCKED)
      || g_error_matches (cause, G_IO_ERROR, G_IO_ERROR_CANCELLED)
      || g_error_matches (cause, G_DBUS_ERROR, G_DBUS_ERROR_ACCESS_DENIED)
      || g_error_matches (cause, G_DBUS_ERROR, G_DBUS_ERROR_AUTH_FAILED))
    {
      /* A prompt the user dismissed surfaces as a cancellation nobody
       * asked for. */
      set_locked_error (error);
      return;
    }

  if (g_error_matches (cause, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD)
      || g_error_matches (cause, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT))
    {
      /* The service runs but has no default collection, typically because
       * creating one needed a prompt that could not be shown. */
      g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_NO_SERVICE,
                   _("The keyring service has no default keyring to keep the master key in "
                     "(%s). Create one in Passwords and Keys, or set %s to the path of a "
                     "master key file."),
                   cause->message, GK_MASTER_KEY_FILE_ENV);
      return;
    }

  if ((cause->domain == G_DBUS_ERROR
       && cause->code != G_DBUS_ERROR_FAILED
       && cause->code != G_DBUS_ERROR_INVALID_ARGS)
      || (cause->domain == G_IO_ERROR && cause->code != G_IO_ERROR_DBUS_ERROR))
    {
      /* No bus, no Secret Service on it, or the service went away. */
      g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_NO_SERVICE,
                   _("No keyring service is available (%s). Start GNOME Keyring or another "
                     "Secret Service, or set %s to the path of a master key file."),
                   cause->message, GK_MASTER_KEY_FILE_ENV);
      return;
    }

  g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FAILED,
               _("The keyring refused the request: %s"), cause->message);
}

static void
set_wrong_key_error (GkSecretStore  *self,
                     GError        **error)
{
  if (self->file != NULL)
    g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_WRONG_KEY,
                 _("The master key in %s does not belong to this database, so its keys cannot "
                   "be decrypted. Nothing was changed. Point %s at the key exported from this "
                   "database."),
                 self->file, GK_MASTER_KEY_FILE_ENV);
  else
    g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_WRONG_KEY,
                 _("The master key in the keyring does not belong to this database, so its keys "
                   "cannot be decrypted. Nothing was changed. If you exported the master key of "
                   "this database, import it with “gemini-keysctl master-key import FILE”."));
}

static void
set_missing_error (GkSecretStore  *self,
                   GError        **error)
{
  if (self->file != NULL)
    g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_MISSING,
                 _("The database holds encrypted keys but the master key file %s does not "
                   "exist. Nothing was changed, and no new key was made. Restore the file from "
                   "the exported master key (with mode 0600), or unset %s to use the keyring."),
                 self->file, GK_MASTER_KEY_FILE_ENV);
  else
    g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_MISSING,
                 _("The database holds encrypted keys but the keyring has no master key for it "
                   "(the keyring may have been reset, or the database comes from another "
                   "account). Nothing was changed, and no new key was made. Import the exported "
                   "master key with “gemini-keysctl master-key import FILE”."));
}

/* Helpers: master key files */

static GBytes *
parse_key_file (const char *path,
                char       *contents,
                gsize       len,
                GError    **error)
{
  g_autofree char *trimmed = g_strndup (contents, len);
  GBytes *key = NULL;
  gsize trimmed_len;

  g_strstrip (trimmed);
  trimmed_len = strlen (trimmed);

  if (trimmed_len == KEY_BASE64_LEN
      && strspn (trimmed, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
         == trimmed_len)
    {
      gsize decoded_len = 0;
      guchar *decoded = g_base64_decode (trimmed, &decoded_len);

      if (decoded_len == GK_MASTER_KEY_LEN)
        key = gk_secure_bytes_new_take (g_steal_pointer (&decoded), decoded_len);
      else
        {
          gk_crypto_wipe (decoded, decoded_len);
          g_free (decoded);
        }
    }
  else if (len == GK_MASTER_KEY_LEN)
    {
      key = gk_secure_bytes_new (contents, len);
    }

  gk_crypto_wipe (trimmed, trimmed_len);

  if (key == NULL)
    g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FILE,
                 _("%s does not hold a Gemini Keys master key (expected the base64 text of "
                   "32 bytes, as written by “gemini-keysctl master-key export”)."),
                 path);
  return key;
}

GBytes *
gk_secret_store_read_key_file (const char  *path,
                               GError     **error)
{
  char contents[KEY_FILE_MAX_LEN + 1];
  gsize len = 0;
  struct stat st;
  GBytes *key;
  int fd;

  g_return_val_if_fail (path != NULL, NULL);

  fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY, 0);
  if (fd < 0)
    {
      int saved = errno;

      g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FILE,
                   _("Cannot open the master key file %s: %s"), path, g_strerror (saved));
      return NULL;
    }

  /* Checked on the open descriptor, so the file read is the file checked. */
  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode))
    {
      g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FILE,
                   _("The master key file %s is not a regular file."), path);
      close (fd);
      return NULL;
    }
  if ((st.st_mode & 077) != 0)
    {
      g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FILE,
                   _("The master key file %s can be read by other users, so it is not used. "
                     "Run “chmod 600 %s” and try again."),
                   path, path);
      close (fd);
      return NULL;
    }

  while (len < sizeof contents)
    {
      ssize_t n = read (fd, contents + len, sizeof contents - len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int saved = errno;

          gk_crypto_wipe (contents, len);
          close (fd);
          g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FILE,
                       _("Cannot read the master key file %s: %s"), path, g_strerror (saved));
          return NULL;
        }
      if (n == 0)
        break;
      len += (gsize) n;
    }
  close (fd);

  if (len > KEY_FILE_MAX_LEN)
    {
      gk_crypto_wipe (contents, len);
      g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FILE,
                   _("%s is too large to be a Gemini Keys master key file."), path);
      return NULL;
    }

  key = parse_key_file (path, contents, len, error);
  gk_crypto_wipe (contents, len);
  return key;
}

static gboolean
write_key_file (const char  *path,
                GBytes      *master_key,
                GError     **error)
{
  g_autofree char *dir = g_path_get_dirname (path);
  g_autoptr(GError) local = NULL;
  char *encoded;
  char *contents;
  gboolean ok;

  if (g_mkdir_with_parents (dir, KEY_DIR_MODE) != 0)
    {
      int saved = errno;

      g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FILE,
                   _("Cannot create the folder %s for the master key file: %s"),
                   dir, g_strerror (saved));
      return FALSE;
    }

  encoded = g_base64_encode (g_bytes_get_data (master_key, NULL), g_bytes_get_size (master_key));
  contents = g_strconcat (encoded, "\n", NULL);
  gk_crypto_wipe_string (encoded);

  /* Written to a new 0600 file that replaces the old one, so the key is
   * never readable by others, not even for a moment, and a crash leaves
   * either the old or the new file. */
  ok = g_file_set_contents_full (path, contents, -1, G_FILE_SET_CONTENTS_CONSISTENT,
                                 KEY_FILE_MODE, &local);
  gk_crypto_wipe_string (contents);

  if (!ok)
    g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FILE,
                 _("Cannot write the master key file %s: %s"), path, local->message);
  return ok;
}

static char *
file_for_role (GkSecretStore *self,
               const char    *role)
{
  if (g_str_equal (role, ROLE_CURRENT))
    return g_strdup (self->file);
  return g_strconcat (self->file, NEXT_FILE_SUFFIX, NULL);
}

/* Helpers: one stored key, in the keyring or in a file */

/* A lookup in a locked collection that cannot prompt returns nothing and
 * no error, which must not read as "the master key is gone". Keys are
 * stored in the default collection, so that is the one to ask about. */
static gboolean
default_collection_locked (GCancellable *cancellable)
{
  g_autoptr(SecretService) service = secret_service_get_sync (SECRET_SERVICE_NONE, cancellable, NULL);
  g_autoptr(SecretCollection) collection = NULL;

  if (service == NULL)
    return FALSE;
  collection = secret_collection_for_alias_sync (service, SECRET_COLLECTION_DEFAULT,
                                                 SECRET_COLLECTION_NONE, cancellable, NULL);
  return collection != NULL && secret_collection_get_locked (collection);
}

static GBytes *
backend_lookup (GkSecretStore  *self,
                const char     *db_uuid,
                const char     *role,
                GCancellable   *cancellable,
                GError        **error)
{
  g_autoptr(GError) local = NULL;
  SecretValue *value;
  const char *data;
  gsize len = 0;
  GBytes *key = NULL;

  if (self->file != NULL)
    {
      g_autofree char *path = file_for_role (self, role);

      if (!g_file_test (path, G_FILE_TEST_EXISTS))
        return NULL;
      return gk_secret_store_read_key_file (path, error);
    }

  value = secret_password_lookup_binary_sync (get_schema (), cancellable, &local,
                                              "database-uuid", db_uuid,
                                              "role", role,
                                              NULL);
  if (local != NULL)
    {
      propagate_keyring_error (error, local, cancellable);
      return NULL;
    }
  if (value == NULL)
    {
      if (default_collection_locked (cancellable))
        set_locked_error (error);
      return NULL;
    }

  data = secret_value_get (value, &len);
  if (len == GK_MASTER_KEY_LEN)
    key = gk_secure_bytes_new (data, len);
  else
    set_wrong_key_error (self, error);
  /* libsecret keeps values in its own wiped memory. */
  secret_value_unref (value);
  return key;
}

static gboolean
backend_store (GkSecretStore  *self,
               const char     *db_uuid,
               const char     *role,
               GBytes         *master_key,
               GCancellable   *cancellable,
               GError        **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *label = NULL;
  SecretValue *value;
  gboolean ok;

  if (self->file != NULL)
    {
      g_autofree char *path = file_for_role (self, role);

      return write_key_file (path, master_key, error);
    }

  if (g_str_equal (role, ROLE_CURRENT))
    label = g_strdup (_("Gemini Keys master key"));
  else
    label = g_strdup (_("Gemini Keys master key (rotation in progress)"));

  value = secret_value_new (g_bytes_get_data (master_key, NULL), g_bytes_get_size (master_key),
                            CONTENT_TYPE);
  ok = secret_password_store_binary_sync (get_schema (), SECRET_COLLECTION_DEFAULT, label,
                                          value, cancellable, &local,
                                          "database-uuid", db_uuid,
                                          "role", role,
                                          NULL);
  secret_value_unref (value);

  if (!ok)
    propagate_keyring_error (error, local, cancellable);
  return ok;
}

static gboolean
backend_clear (GkSecretStore  *self,
               const char     *db_uuid,
               const char     *role,
               GCancellable   *cancellable,
               GError        **error)
{
  g_autoptr(GError) local = NULL;

  if (self->file != NULL)
    {
      g_autofree char *path = file_for_role (self, role);

      if (g_unlink (path) != 0 && errno != ENOENT)
        {
          int saved = errno;

          g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FILE,
                       _("Cannot remove the master key file %s: %s"), path, g_strerror (saved));
          return FALSE;
        }
      return TRUE;
    }

  secret_password_clear_sync (get_schema (), cancellable, &local,
                              "database-uuid", db_uuid,
                              "role", role,
                              NULL);
  if (local != NULL)
    {
      propagate_keyring_error (error, local, cancellable);
      return FALSE;
    }
  return TRUE;
}

/* Makes the "next" key the current one once the database uses it. */
static gboolean
backend_promote_next (GkSecretStore  *self,
                      const char     *db_uuid,
                      GBytes         *next_key,
                      GCancellable   *cancellable,
                      GError        **error)
{
  if (self->file != NULL)
    {
      g_autofree char *next_path = file_for_role (self, ROLE_NEXT);

      /* rename() is atomic: the current file is the old or the new key. */
      if (g_rename (next_path, self->file) != 0)
        {
          int saved = errno;

          g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FILE,
                       _("Cannot replace the master key file %s: %s"),
                       self->file, g_strerror (saved));
          return FALSE;
        }
      return TRUE;
    }

  if (!backend_store (self, db_uuid, ROLE_CURRENT, next_key, cancellable, error))
    return FALSE;
  /* Only now may "next" go: until the line above it was the sole copy. */
  return backend_clear (self, db_uuid, ROLE_NEXT, cancellable, error);
}

/* Helpers: checking a key against the database */

static gboolean
key_matches_check_value (GBytes     *master_key,
                         const char *check_value)
{
  g_autofree char *computed = gk_crypto_check_value (master_key);

  return gk_crypto_equal_const_time (computed, check_value);
}

/* For databases without a check value yet: a key that fails to decrypt a
 * stored row is the wrong key. */
static gboolean
key_decrypts_a_row (GkDatabase  *db,
                    GBytes      *master_key,
                    gboolean    *matches,
                    GError     **error)
{
  g_autoptr(GBytes) plain = NULL;
  g_autoptr(GError) local = NULL;
  sqlite3_stmt *stmt;
  int rc;

  *matches = TRUE;

  gk_database_lock (db);
  stmt = gk_database_prepare (db,
                              "SELECT uuid, api_key_encrypted FROM gemini_api_keys"
                              " WHERE api_key_encrypted IS NOT NULL ORDER BY id LIMIT 1",
                              error);
  if (stmt == NULL)
    {
      gk_database_unlock (db);
      return FALSE;
    }

  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      plain = gk_crypto_decrypt (master_key,
                                 (const char *) sqlite3_column_text (stmt, 0),
                                 sqlite3_column_blob (stmt, 1),
                                 (gsize) sqlite3_column_bytes (stmt, 1),
                                 &local);
      *matches = !g_error_matches (local, GK_CRYPTO_ERROR, GK_CRYPTO_ERROR_AUTH);
    }
  else if (rc != SQLITE_DONE)
    {
      gk_database_set_error (db, error, _("Cannot read the keys"));
      sqlite3_reset (stmt);
      gk_database_unlock (db);
      return FALSE;
    }

  sqlite3_reset (stmt);
  gk_database_unlock (db);
  return TRUE;
}

/* Checks @master_key against the database: the check value when there is
 * one, else a stored row. Sets WRONG_KEY when it does not match. */
static gboolean
verify_key (GkSecretStore  *self,
            GkDatabase     *db,
            GBytes         *master_key,
            const char     *check_value,
            GError        **error)
{
  gboolean matches;

  if (check_value != NULL)
    matches = key_matches_check_value (master_key, check_value);
  else if (!key_decrypts_a_row (db, master_key, &matches, error))
    return FALSE;

  if (!matches)
    set_wrong_key_error (self, error);
  return matches;
}

/* After an interrupted rotation the database may already be encrypted
 * with the "next" key: adopt it when it matches the check value. */
static GBytes *
recover_next_key (GkSecretStore *self,
                  const char    *db_uuid,
                  const char    *check_value,
                  GCancellable  *cancellable)
{
  g_autoptr(GBytes) next = NULL;
  g_autoptr(GError) local = NULL;

  if (check_value == NULL)
    return NULL;

  next = backend_lookup (self, db_uuid, ROLE_NEXT, cancellable, NULL);
  if (next == NULL || !key_matches_check_value (next, check_value))
    return NULL;

  /* The key is usable even when it cannot be moved into place yet. */
  if (!backend_promote_next (self, db_uuid, next, cancellable, &local))
    g_warning ("Cannot finish the interrupted master key rotation: %s", local->message);
  return g_steal_pointer (&next);
}

/* The first run: a new key, its check value and the stored key appear
 * together. The transaction serialises first runs of several processes;
 * returns NULL with no error when another process got there first. */
static GBytes *
create_master_key (GkSecretStore  *self,
                   GkDatabase     *db,
                   GCancellable   *cancellable,
                   GError        **error)
{
  const char *db_uuid = gk_database_get_uuid (db);
  g_autofree char *check_value = NULL;
  g_autofree char *new_check = NULL;
  g_autoptr(GBytes) key = NULL;
  g_autoptr(GError) local = NULL;
  gboolean has_ciphertext;

  if (!gk_database_begin (db, error))
    return NULL;

  check_value = gk_database_get_meta (db, META_CHECK_VALUE);
  has_ciphertext = gk_database_has_ciphertext (db, &local);
  if (local != NULL)
    {
      gk_database_rollback (db);
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  if (check_value != NULL || has_ciphertext)
    {
      gk_database_rollback (db);
      return NULL;
    }

  key = gk_crypto_new_master_key ();
  new_check = gk_crypto_check_value (key);

  if (!gk_database_set_meta (db, META_CHECK_VALUE, new_check, error))
    {
      gk_database_rollback (db);
      return NULL;
    }
  if (!backend_store (self, db_uuid, ROLE_CURRENT, key, cancellable, error))
    {
      gk_database_rollback (db);
      return NULL;
    }
  if (!gk_database_commit (db, error))
    {
      /* Take the stored key back so that nothing changed. */
      backend_clear (self, db_uuid, ROLE_CURRENT, NULL, NULL);
      return NULL;
    }

  return g_steal_pointer (&key);
}

static GBytes *
unlock_once (GkSecretStore  *self,
             GkDatabase     *db,
             GCancellable   *cancellable,
             gboolean       *retry,
             GError        **error)
{
  const char *db_uuid = gk_database_get_uuid (db);
  g_autofree char *check_value = gk_database_get_meta (db, META_CHECK_VALUE);
  g_autoptr(GBytes) key = NULL;
  g_autoptr(GBytes) recovered = NULL;
  g_autoptr(GError) local = NULL;
  gboolean has_ciphertext;

  *retry = FALSE;

  key = backend_lookup (self, db_uuid, ROLE_CURRENT, cancellable, &local);
  if (local != NULL && !g_error_matches (local, GK_SECRET_ERROR, GK_SECRET_ERROR_WRONG_KEY))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }

  if (key != NULL && check_value == NULL)
    {
      /* A database from before check values, or a first run cut short
       * between storing the key and committing: adopt the key once it
       * proves right. */
      if (!verify_key (self, db, key, NULL, error))
        return NULL;
      {
        g_autofree char *new_check = gk_crypto_check_value (key);

        if (!gk_database_set_meta (db, META_CHECK_VALUE, new_check, error))
          return NULL;
      }
      return g_steal_pointer (&key);
    }

  if (key != NULL && key_matches_check_value (key, check_value))
    return g_steal_pointer (&key);

  recovered = recover_next_key (self, db_uuid, check_value, cancellable);
  if (recovered != NULL)
    return g_steal_pointer (&recovered);

  if (key != NULL || local != NULL)
    {
      set_wrong_key_error (self, error);
      return NULL;
    }

  /* Nothing stored: only a database that never held a secret may get a
   * new key, or every stored key would be lost for good. */
  has_ciphertext = gk_database_has_ciphertext (db, &local);
  if (local != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  if (has_ciphertext || check_value != NULL)
    {
      set_missing_error (self, error);
      return NULL;
    }

  key = create_master_key (self, db, cancellable, error);
  if (key == NULL && (error == NULL || *error == NULL))
    *retry = TRUE;
  return g_steal_pointer (&key);
}

static void
unlock_thread (GTask        *task,
               gpointer      source_object,
               gpointer      task_data,
               GCancellable *cancellable)
{
  GError *error = NULL;
  GBytes *key = gk_secret_store_unlock (source_object, task_data, cancellable, &error);

  if (key != NULL)
    g_task_return_pointer (task, key, (GDestroyNotify) g_bytes_unref);
  else
    g_task_return_error (task, error);
}

/* Re-encrypts every stored key under @new_key and records its check value,
 * all in one transaction. Fingerprints are keyed by the master key, so they
 * are recomputed too. */
static gboolean
reencrypt_rows (GkDatabase  *db,
                GBytes      *old_key,
                GBytes      *new_key,
                GError     **error)
{
  typedef struct
  {
    gint64  id;
    char   *uuid;
    GBytes *blob;
  } Row;
  g_autoptr(GArray) rows = g_array_new (FALSE, TRUE, sizeof (Row));
  g_autofree char *new_check = gk_crypto_check_value (new_key);
  sqlite3_stmt *stmt;
  gboolean ok = FALSE;
  int rc;

  if (!gk_database_begin (db, error))
    return FALSE;

  stmt = gk_database_prepare (db,
                              "SELECT id, uuid, api_key_encrypted FROM gemini_api_keys"
                              " WHERE api_key_encrypted IS NOT NULL",
                              error);
  if (stmt == NULL)
    goto out;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      Row row;

      row.id = sqlite3_column_int64 (stmt, 0);
      row.uuid = g_strdup ((const char *) sqlite3_column_text (stmt, 1));
      row.blob = g_bytes_new (sqlite3_column_blob (stmt, 2),
                              (gsize) sqlite3_column_bytes (stmt, 2));
      g_array_append_val (rows, row);
    }
  sqlite3_reset (stmt);
  if (rc != SQLITE_DONE)
    {
      gk_database_set_error (db, error, _("Cannot read the keys"));
      goto out;
    }

  for (guint i = 0; i < rows->len; i++)
    {
      Row *row = &g_array_index (rows, Row, i);
      g_autoptr(GBytes) plain = NULL;
      g_autoptr(GBytes) blob = NULL;
      g_autofree char *fingerprint = NULL;

      plain = gk_crypto_decrypt (old_key, row->uuid, g_bytes_get_data (row->blob, NULL),
                                 g_bytes_get_size (row->blob), error);
      if (plain == NULL)
        {
          g_autofree char *id = g_strdup_printf ("%" G_GINT64_FORMAT, row->id);

          g_prefix_error (error, _("Key %s cannot be decrypted, so the master key was not "
                                   "rotated and nothing was changed: "),
                          id);
          goto out;
        }
      blob = gk_crypto_encrypt (new_key, row->uuid, g_bytes_get_data (plain, NULL),
                                g_bytes_get_size (plain), error);
      if (blob == NULL)
        goto out;
      fingerprint = gk_crypto_fingerprint (new_key, g_bytes_get_data (plain, NULL));

      stmt = gk_database_prepare (db,
                                  "UPDATE gemini_api_keys SET api_key_encrypted = ?1,"
                                  " key_fingerprint = ?2 WHERE id = ?3",
                                  error);
      if (stmt == NULL)
        goto out;
      sqlite3_bind_blob (stmt, 1, g_bytes_get_data (blob, NULL), (int) g_bytes_get_size (blob),
                         SQLITE_STATIC);
      sqlite3_bind_text (stmt, 2, fingerprint, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, 3, row->id);
      rc = sqlite3_step (stmt);
      if (rc != SQLITE_DONE)
        gk_database_set_error (db, error, _("Cannot save the re-encrypted keys"));
      sqlite3_reset (stmt);
      if (rc != SQLITE_DONE)
        goto out;
    }

  if (!gk_database_set_meta (db, META_CHECK_VALUE, new_check, error))
    goto out;

  ok = TRUE;

out:
  for (guint i = 0; i < rows->len; i++)
    {
      Row *row = &g_array_index (rows, Row, i);

      g_free (row->uuid);
      g_bytes_unref (row->blob);
    }

  if (!ok)
    {
      gk_database_rollback (db);
      return FALSE;
    }
  if (!gk_database_commit (db, error))
    return FALSE;
  gk_database_touch (db);
  return TRUE;
}

/* Overrides */

static void
gk_secret_store_finalize (GObject *object)
{
  GkSecretStore *self = (GkSecretStore *) object;

  g_clear_pointer (&self->file, g_free);

  G_OBJECT_CLASS (gk_secret_store_parent_class)->finalize (object);
}

static void
gk_secret_store_class_init (GkSecretStoreClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gk_secret_store_finalize;
}

static void
gk_secret_store_init (GkSecretStore *self)
{
}

/* Public API */

/**
 * gk_secret_store_new:
 *
 * The keyring, unless $GEMINI_KEYS_MASTER_KEY_FILE names a master key file.
 */
GkSecretStore *
gk_secret_store_new (void)
{
  const char *path = g_getenv (GK_MASTER_KEY_FILE_ENV);

  return gk_secret_store_new_for_file (path != NULL && *path != '\0' ? path : NULL);
}

/**
 * gk_secret_store_new_for_file:
 * @path: (nullable): a master key file, or NULL for the keyring
 */
GkSecretStore *
gk_secret_store_new_for_file (const char *path)
{
  GkSecretStore *self = g_object_new (GK_TYPE_SECRET_STORE, NULL);

  self->file = g_strdup (path);
  return self;
}

const char *
gk_secret_store_get_file (GkSecretStore *self)
{
  g_return_val_if_fail (GK_IS_SECRET_STORE (self), NULL);
  return self->file;
}

/**
 * gk_secret_store_lookup:
 *
 * The stored master key of @db_uuid, NULL with no error when none is stored.
 */
GBytes *
gk_secret_store_lookup (GkSecretStore  *self,
                        const char     *db_uuid,
                        GCancellable   *cancellable,
                        GError        **error)
{
  g_return_val_if_fail (GK_IS_SECRET_STORE (self), NULL);
  g_return_val_if_fail (db_uuid != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return backend_lookup (self, db_uuid, ROLE_CURRENT, cancellable, error);
}

/**
 * gk_secret_store_store:
 *
 * Stores @master_key as the key of @db_uuid, replacing any stored one.
 */
gboolean
gk_secret_store_store (GkSecretStore  *self,
                       const char     *db_uuid,
                       GBytes         *master_key,
                       GCancellable   *cancellable,
                       GError        **error)
{
  g_return_val_if_fail (GK_IS_SECRET_STORE (self), FALSE);
  g_return_val_if_fail (db_uuid != NULL, FALSE);
  g_return_val_if_fail (master_key != NULL, FALSE);
  g_return_val_if_fail (g_bytes_get_size (master_key) == GK_MASTER_KEY_LEN, FALSE);

  return backend_store (self, db_uuid, ROLE_CURRENT, master_key, cancellable, error);
}

/**
 * gk_secret_store_clear:
 *
 * Removes the stored master key of @db_uuid; nothing stored is not an error.
 */
gboolean
gk_secret_store_clear (GkSecretStore  *self,
                       const char     *db_uuid,
                       GCancellable   *cancellable,
                       GError        **error)
{
  g_return_val_if_fail (GK_IS_SECRET_STORE (self), FALSE);
  g_return_val_if_fail (db_uuid != NULL, FALSE);

  return backend_clear (self, db_uuid, ROLE_CURRENT, cancellable, error);
}

/**
 * gk_secret_store_unlock:
 *
 * The master key of @db, checked against its key check value; a new one
 * only for a database that never held a secret. Blocks: call it from a
 * worker thread, or use gk_secret_store_unlock_async().
 */
GBytes *
gk_secret_store_unlock (GkSecretStore  *self,
                        GkDatabase     *db,
                        GCancellable   *cancellable,
                        GError        **error)
{
  g_return_val_if_fail (GK_IS_SECRET_STORE (self), NULL);
  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  for (guint attempt = 0; attempt < UNLOCK_ATTEMPTS; attempt++)
    {
      g_autoptr(GError) local = NULL;
      gboolean retry;
      GBytes *key = unlock_once (self, db, cancellable, &retry, &local);

      if (key != NULL)
        return key;
      if (!retry)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return NULL;
        }
    }

  g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FAILED,
               _("Another program changed the master key while Gemini Keys was starting. "
                 "Try again."));
  return NULL;
}

void
gk_secret_store_unlock_async (GkSecretStore       *self,
                              GkDatabase          *db,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (GK_IS_SECRET_STORE (self));
  g_return_if_fail (GK_IS_DATABASE (db));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, gk_secret_store_unlock_async);
  g_task_set_task_data (task, g_object_ref (db), g_object_unref);
  g_task_run_in_thread (task, unlock_thread);
}

GBytes *
gk_secret_store_unlock_finish (GkSecretStore  *self,
                               GAsyncResult   *result,
                               GError        **error)
{
  g_return_val_if_fail (GK_IS_SECRET_STORE (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == gk_secret_store_unlock_async,
                        NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * gk_secret_store_export_file:
 *
 * Writes @master_key to @path as base64 text, in a file only its owner can
 * read (0600).
 */
gboolean
gk_secret_store_export_file (GkSecretStore  *self,
                             GBytes         *master_key,
                             const char     *path,
                             GError        **error)
{
  g_return_val_if_fail (GK_IS_SECRET_STORE (self), FALSE);
  g_return_val_if_fail (master_key != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  if (g_bytes_get_size (master_key) != GK_MASTER_KEY_LEN)
    {
      g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FAILED,
                   _("The master key has the wrong length and was not exported."));
      return FALSE;
    }
  return write_key_file (path, master_key, error);
}

/**
 * gk_secret_store_import_file:
 *
 * Reads a master key file, checks the key against @db (WRONG_KEY when it
 * belongs to another database) and stores it as @db's master key.
 */
gboolean
gk_secret_store_import_file (GkSecretStore  *self,
                             GkDatabase     *db,
                             const char     *path,
                             GError        **error)
{
  g_autoptr(GBytes) key = NULL;
  g_autofree char *check_value = NULL;
  g_autoptr(GError) local = NULL;

  g_return_val_if_fail (GK_IS_SECRET_STORE (self), FALSE);
  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  key = gk_secret_store_read_key_file (path, error);
  if (key == NULL)
    return FALSE;

  check_value = gk_database_get_meta (db, META_CHECK_VALUE);
  if (!verify_key (self, db, key, check_value, &local))
    {
      if (g_error_matches (local, GK_SECRET_ERROR, GK_SECRET_ERROR_WRONG_KEY))
        g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_WRONG_KEY,
                     _("The master key in %s does not belong to this database. Nothing was "
                       "changed. Import the key exported from this database."),
                     path);
      else
        g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }

  if (!backend_store (self, gk_database_get_uuid (db), ROLE_CURRENT, key, NULL, error))
    return FALSE;

  if (check_value == NULL)
    {
      g_autofree char *new_check = gk_crypto_check_value (key);

      if (!gk_database_set_meta (db, META_CHECK_VALUE, new_check, error))
        return FALSE;
    }
  return TRUE;
}

/**
 * gk_secret_store_rotate_master_key:
 *
 * Moves every stored key to a new master key. Until the re-encrypted rows
 * are committed the old key stays valid; after that the new key is kept
 * as "next" until it replaces the current one, and unlock finds it there.
 */
GBytes *
gk_secret_store_rotate_master_key (GkSecretStore  *self,
                                   GkDatabase     *db,
                                   GBytes         *old_master_key,
                                   GCancellable   *cancellable,
                                   GError        **error)
{
  const char *db_uuid;
  g_autofree char *check_value = NULL;
  g_autoptr(GBytes) new_key = NULL;
  g_autoptr(GError) local = NULL;

  g_return_val_if_fail (GK_IS_SECRET_STORE (self), NULL);
  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);
  g_return_val_if_fail (old_master_key != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  db_uuid = gk_database_get_uuid (db);
  check_value = gk_database_get_meta (db, META_CHECK_VALUE);
  if (g_bytes_get_size (old_master_key) != GK_MASTER_KEY_LEN
      || (check_value != NULL && !key_matches_check_value (old_master_key, check_value)))
    {
      set_wrong_key_error (self, error);
      return NULL;
    }

  new_key = gk_crypto_new_master_key ();

  if (!backend_store (self, db_uuid, ROLE_NEXT, new_key, cancellable, error))
    return NULL;

  if (!reencrypt_rows (db, old_master_key, new_key, error))
    {
      /* The old key still rules; the new one was never used. */
      backend_clear (self, db_uuid, ROLE_NEXT, NULL, NULL);
      return NULL;
    }

  if (!backend_promote_next (self, db_uuid, new_key, cancellable, &local))
    g_warning ("The master key was rotated but could not replace the old one yet (%s); "
               "it will be moved into place at the next start", local->message);

  return g_steal_pointer (&new_key);
}
