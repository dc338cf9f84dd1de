/* gk-secret-store.c: the master key in the OS keyring or a 0600 file.
 *
 * A database is told apart from its copies by the key check value in its
 * meta table, not only by its uuid (which a copy shares). Keyring items use
 * the schema GK_SECRET_SCHEMA_NAME with the attributes "database-uuid",
 * "check-value" (of the key the item holds), "role" and, for "next" items,
 * "database-file". Unlock looks at every item of the uuid and takes the one
 * whose key has the database's check value, so a copy that rotated its key
 * and the original each find theirs. Storing a key adds an item for its
 * check value and never replaces the key of another check value.
 *
 * The role is "current" for a key a database is encrypted with and "next"
 * for the key a master-key rotation is moving to. A rotation stores "next"
 * while it holds the database's write lock, re-encrypts every row and
 * updates the check value in that transaction, then stores the new key as
 * "current" and drops "next"; the old "current" item stays for copies and
 * backups. Whichever point it stops at, one item matches the check value and
 * unlock finishes the job; a "next" item of this database file that matches
 * nothing is a rotation that never committed, and unlock removes it.
 *
 * With a master key file, "next" is the same path with ".next" appended, and
 * a key the file held before a rotation (or a forced import) is kept beside
 * it as FILE.<first 16 hex digits of its check value>, where unlock finds it
 * when the file itself does not match.
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

#include "gk-audit.h"
#include "gk-crypto.h"
#include "gk-database-private.h"
#include "gk-hygiene.h"
#include "gk-secret-store-private.h"

#define ROLE_CURRENT       "current"
#define ROLE_NEXT          "next"
#define META_CHECK_VALUE   "key_check_value"
#define NEXT_FILE_SUFFIX   ".next"
#define ATTR_UUID          "database-uuid"
#define ATTR_ROLE          "role"
#define ATTR_CHECK         "check-value"
#define ATTR_DB_FILE       "database-file"
/* Hex digits of a check value in the name of a kept key file. */
#define CHECK_FILE_SUFFIX_LEN 16
#define KEY_FILE_MODE      0600
#define KEY_DIR_MODE       0700
/* Base64 of GK_MASTER_KEY_LEN bytes. */
#define KEY_BASE64_LEN     44
/* A key file is a few dozen bytes; anything larger is not one. */
#define KEY_FILE_MAX_LEN   4096
#define CONTENT_TYPE       "application/octet-stream"
/* The Secret Service on the session bus, spoken to directly for prompts. */
#define SECRET_BUS_NAME    "org.freedesktop.secrets"
#define SECRET_PATH        "/org/freedesktop/secrets"
#define SECRET_SERVICE_IFACE "org.freedesktop.Secret.Service"
#define SECRET_PROMPT_IFACE  "org.freedesktop.Secret.Prompt"
#define SECRET_NO_PROMPT   "/"
/* First runs of two processes race for creating the key; one retry lets
 * the loser pick up the winner's key. */
#define UNLOCK_ATTEMPTS    2
/* Searches run again when an item vanished under them. */
#define SEARCH_ATTEMPTS    3

struct _GkSecretStore
{
  GObject   parent_instance;
  char     *file;   /* NULL: the keyring */
  GFunc     search_hook;
  gpointer  search_hook_data;
};

G_DEFINE_FINAL_TYPE (GkSecretStore, gk_secret_store, G_TYPE_OBJECT)
G_DEFINE_QUARK (gk-secret-error-quark, gk_secret_error)

enum {
  PROMPTING,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static const SecretSchema *
get_schema (void)
{
  static const SecretSchema schema = {
    GK_SECRET_SCHEMA_NAME, SECRET_SCHEMA_NONE,
    {
      { ATTR_UUID, SECRET_SCHEMA_ATTRIBUTE_STRING },
      { ATTR_ROLE, SECRET_SCHEMA_ATTRIBUTE_STRING },
      { ATTR_CHECK, SECRET_SCHEMA_ATTRIBUTE_STRING },
      { ATTR_DB_FILE, SECRET_SCHEMA_ATTRIBUTE_STRING },
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

/* Whether @error says an item no longer exists (GDBus answers a call to an
 * object that is gone with UnknownMethod). */
static gboolean
is_item_gone (const GError *error)
{
  return g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD)
         || g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT)
         || g_error_matches (error, SECRET_ERROR, SECRET_ERROR_NO_SUCH_OBJECT);
}

static void
set_dismissed_error (GError **error)
{
  g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_DISMISSED,
               _("The keyring prompt was dismissed, so the master key could not be stored or "
                 "read. Nothing was changed. Try again and answer the keyring's prompt, or set "
                 "%s to the path of a master key file."),
               GK_MASTER_KEY_FILE_ENV);
}

static void
set_service_gone_error (GError **error)
{
  g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_NO_SERVICE,
               _("The keyring service went away while Gemini Keys was waiting for it (it "
                 "stopped, or the session ended). Nothing was changed. Start GNOME Keyring "
                 "again and retry, or set %s to the path of a master key file."),
               GK_MASTER_KEY_FILE_ENV);
}

/* Whether the Secret Service still owns its name on the session bus. */
static gboolean
service_present (void)
{
  g_autoptr(GDBusConnection) bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, NULL);
  g_autoptr(GVariant) reply = NULL;
  gboolean present = FALSE;

  if (bus == NULL || g_dbus_connection_is_closed (bus))
    return FALSE;
  reply = g_dbus_connection_call_sync (bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "NameHasOwner",
                                       g_variant_new ("(s)", SECRET_BUS_NAME),
                                       G_VARIANT_TYPE ("(b)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL,
                                       NULL);
  if (reply != NULL)
    g_variant_get (reply, "(b)", &present);
  return present;
}

/* libsecret reports a dismissed prompt, and some calls to a service that
 * went away, as a failure without an error: the bus tells which it was. */
static void
set_unanswered_error (GError **error)
{
  if (service_present ())
    set_dismissed_error (error);
  else
    set_service_gone_error (error);
}

/* Turns what libsecret or GDBus said into one of the states the UI and the
 * CLI explain: no service, locked, dismissed, or a plain failure. @cause
 * may be NULL: libsecret failed without saying why. */
static void
propagate_keyring_error (GError       **error,
                         GError        *cause,
                         GCancellable  *cancellable)
{
  if (cause == NULL)
    {
      set_unanswered_error (error);
      return;
    }

  if (is_user_cancel (cause, cancellable))
    {
      g_propagate_error (error, g_error_copy (cause));
      return;
    }

  if (g_error_matches (cause, G_IO_ERROR, G_IO_ERROR_CLOSED)
      || g_error_matches (cause, G_DBUS_ERROR, G_DBUS_ERROR_NO_REPLY)
      || g_error_matches (cause, G_DBUS_ERROR, G_DBUS_ERROR_DISCONNECTED))
    {
      set_service_gone_error (error);
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
                   int             n_keys,
                   GError        **error)
{
  if (self->file != NULL)
    g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_MISSING,
                 ngettext ("The database holds %d encrypted key, but the master key file %s "
                           "that unlocks it does not exist. Nothing was changed, and no new key "
                           "was made. Restore the file with “gemini-keysctl master-key import "
                           "FILE” from the exported master key, or unset %s to use the keyring.",
                           "The database holds %d encrypted keys, but the master key file %s "
                           "that unlocks them does not exist. Nothing was changed, and no new "
                           "key was made. Restore the file with “gemini-keysctl master-key "
                           "import FILE” from the exported master key, or unset %s to use the "
                           "keyring.",
                           n_keys),
                 n_keys, self->file, GK_MASTER_KEY_FILE_ENV);
  else
    g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_MISSING,
                 ngettext ("The database holds %d encrypted key, but the keyring has no master "
                           "key that unlocks it (the keyring may have been reset, or the "
                           "database comes from another account). Nothing was changed, and no "
                           "new key was made. Import the exported master key with "
                           "“gemini-keysctl master-key import FILE”.",
                           "The database holds %d encrypted keys, but the keyring has no master "
                           "key that unlocks them (the keyring may have been reset, or the "
                           "database comes from another account). Nothing was changed, and no "
                           "new key was made. Import the exported master key with "
                           "“gemini-keysctl master-key import FILE”.",
                           n_keys),
                 n_keys);
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


/* Helpers: the stored keys of one database, in the keyring or in files */

/* One stored master key. @check is computed from the key itself, so items
 * written before check values were attributes are found by it too. */
typedef struct
{
  char       *item_path;    /* the keyring item's D-Bus object path, NULL for files */
  SecretService *service;   /* the connection that found @item_path */
  char       *path;         /* NULL for keyring items */
  char       *role;
  char       *check_attr;   /* the item's check-value attribute, or NULL */
  char       *db_file;      /* the database-file attribute of "next" items */
  GBytes     *key;          /* NULL when the value is not a master key */
  char       *check;        /* of @key */
} StoredKey;

static void
stored_key_free (gpointer data)
{
  StoredKey *stored = data;

  g_free (stored->item_path);
  g_clear_object (&stored->service);
  g_free (stored->path);
  g_free (stored->role);
  g_free (stored->check_attr);
  g_free (stored->db_file);
  g_clear_pointer (&stored->key, g_bytes_unref);
  g_free (stored->check);
  g_free (stored);
}

static StoredKey *
stored_key_new (const char *role,
                GBytes     *key)
{
  StoredKey *stored = g_new0 (StoredKey, 1);

  stored->role = g_strdup (role);
  if (key != NULL && g_bytes_get_size (key) == GK_MASTER_KEY_LEN)
    {
      stored->key = g_bytes_ref (key);
      stored->check = gk_crypto_check_value (key);
    }
  return stored;
}

static char *
file_for_check (GkSecretStore *self,
                const char    *check)
{
  return g_strdup_printf ("%s.%.*s", self->file, CHECK_FILE_SUFFIX_LEN, check);
}

static char *
next_file (GkSecretStore *self)
{
  return g_strconcat (self->file, NEXT_FILE_SUFFIX, NULL);
}

/* Reads a key file that may not exist: NULL and no error when it does not. */
static gboolean
add_file_candidate (GPtrArray   *found,
                    const char  *path,
                    const char  *role,
                    GError     **error)
{
  g_autoptr(GBytes) key = NULL;
  StoredKey *stored;

  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    return TRUE;
  key = gk_secret_store_read_key_file (path, error);
  if (key == NULL)
    return FALSE;
  stored = stored_key_new (role, key);
  stored->path = g_strdup (path);
  g_ptr_array_add (found, stored);
  return TRUE;
}

/* The file, the earlier key kept beside it for @check_value, and the key of
 * an unfinished rotation. */
static GPtrArray *
file_find (GkSecretStore  *self,
           const char     *check_value,
           GError        **error)
{
  g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func (stored_key_free);
  g_autofree char *next = next_file (self);

  if (!add_file_candidate (found, self->file, ROLE_CURRENT, error))
    return NULL;
  if (check_value != NULL)
    {
      g_autofree char *kept = file_for_check (self, check_value);

      if (!add_file_candidate (found, kept, ROLE_CURRENT, error))
        return NULL;
    }
  /* A damaged leftover of a rotation must not stop the start. */
  add_file_candidate (found, next, ROLE_NEXT, NULL);
  return g_steal_pointer (&found);
}

/* A lookup in a locked collection that cannot prompt returns nothing and
 * no error, which must not read as "the master key is gone". Keys are
 * stored in the default collection, so that is the one to ask about. */
static gboolean
default_collection_locked (SecretService *service,
                           GCancellable  *cancellable)
{
  g_autoptr(SecretCollection) collection = NULL;

  collection = secret_collection_for_alias_sync (service, SECRET_COLLECTION_DEFAULT,
                                                 SECRET_COLLECTION_NONE, cancellable, NULL);
  return collection != NULL && secret_collection_get_locked (collection);
}

/* Helpers: keyring prompts
 *
 * Creating the default keyring and unlocking it open a prompt in the
 * keyring service. libsecret's own prompt handling warns and then waits
 * forever when the service goes away while its prompt is open, so those two
 * prompts are run here over GDBus: the wait ends when the prompt completes,
 * when it is dismissed, when the service leaves the bus, or on @cancellable. */

typedef struct
{
  GMainLoop *loop;
  gboolean   done;
  gboolean   dismissed;
  gboolean   vanished;
  GVariant  *result;
} PromptWait;

static void
prompt_completed_cb (GDBusConnection *connection,
                     const char      *sender,
                     const char      *path,
                     const char      *interface,
                     const char      *signal,
                     GVariant        *parameters,
                     gpointer         user_data)
{
  PromptWait *wait = user_data;

  if (wait->done)
    return;
  if (g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(bv)")))
    g_variant_get (parameters, "(bv)", &wait->dismissed, &wait->result);
  else
    wait->dismissed = TRUE;
  wait->done = TRUE;
  g_main_loop_quit (wait->loop);
}

static void
prompt_vanished_cb (GDBusConnection *connection,
                    const char      *name,
                    gpointer         user_data)
{
  PromptWait *wait = user_data;

  if (wait->done)
    return;
  wait->vanished = TRUE;
  wait->done = TRUE;
  g_main_loop_quit (wait->loop);
}

static void
prompt_cancelled_cb (GCancellable *cancellable,
                     gpointer      user_data)
{
  PromptWait *wait = user_data;

  /* May run in another thread; quitting a loop is thread-safe. */
  g_main_loop_quit (wait->loop);
}

/* Runs the prompt at @prompt_path of the service @owner (a unique name) and
 * returns its result; NULL with DISMISSED, NO_SERVICE (it went away) or a
 * cancellation error otherwise. */
static GVariant *
run_prompt (GkSecretStore    *self,
            GDBusConnection  *connection,
            const char       *owner,
            const char       *prompt_path,
            GCancellable     *cancellable,
            GError          **error)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GError) local = NULL;
  g_autoptr(GVariant) reply = NULL;
  PromptWait wait = { 0 };
  gulong cancelled_id = 0;
  guint signal_id, watch_id;

  g_main_context_push_thread_default (context);
  wait.loop = g_main_loop_new (context, FALSE);
  signal_id = g_dbus_connection_signal_subscribe (connection, owner, SECRET_PROMPT_IFACE,
                                                  "Completed", prompt_path, NULL,
                                                  G_DBUS_SIGNAL_FLAGS_NONE,
                                                  prompt_completed_cb, &wait, NULL);
  /* Also called when the connection to the bus closes. */
  watch_id = g_bus_watch_name_on_connection (connection, owner, G_BUS_NAME_WATCHER_FLAGS_NONE,
                                             NULL, prompt_vanished_cb, &wait, NULL);
  if (cancellable != NULL)
    cancelled_id = g_cancellable_connect (cancellable, G_CALLBACK (prompt_cancelled_cb), &wait,
                                          NULL);

  g_signal_emit (self, signals[PROMPTING], 0, TRUE);
  reply = g_dbus_connection_call_sync (connection, owner, prompt_path, SECRET_PROMPT_IFACE,
                                       "Prompt", g_variant_new ("(s)", ""), NULL,
                                       G_DBUS_CALL_FLAGS_NO_AUTO_START, -1, cancellable, &local);
  if (reply != NULL && !g_cancellable_is_cancelled (cancellable))
    g_main_loop_run (wait.loop);
  g_signal_emit (self, signals[PROMPTING], 0, FALSE);

  if (cancellable != NULL)
    g_cancellable_disconnect (cancellable, cancelled_id);
  g_bus_unwatch_name (watch_id);
  g_dbus_connection_signal_unsubscribe (connection, signal_id);
  /* Let the unsubscriptions' notifications run in this context. */
  while (g_main_context_iteration (context, FALSE))
    ;
  g_main_context_pop_thread_default (context);
  g_main_loop_unref (wait.loop);

  if (!wait.done && g_cancellable_is_cancelled (cancellable))
    {
      /* Take the prompt off the screen; the answer no longer matters. */
      g_dbus_connection_call (connection, owner, prompt_path, SECRET_PROMPT_IFACE, "Dismiss",
                              NULL, NULL, G_DBUS_CALL_FLAGS_NO_AUTO_START, -1, NULL, NULL,
                              NULL);
      g_clear_error (&local);
      g_cancellable_set_error_if_cancelled (cancellable, error);
      g_clear_pointer (&wait.result, g_variant_unref);
      return NULL;
    }
  if (wait.vanished || (local != NULL && !wait.done))
    {
      if (local != NULL && !wait.vanished)
        propagate_keyring_error (error, local, cancellable);
      else
        set_service_gone_error (error);
      g_clear_pointer (&wait.result, g_variant_unref);
      return NULL;
    }
  if (wait.dismissed || wait.result == NULL)
    {
      set_dismissed_error (error);
      g_clear_pointer (&wait.result, g_variant_unref);
      return NULL;
    }
  return wait.result;
}

/* Calls @method of the Secret Service, which answers with a result and a
 * prompt path (at index @prompt_index of the reply), and runs that prompt
 * when there is one. Returns the result of whichever answered. */
static GVariant *
call_with_prompt (GkSecretStore  *self,
                  SecretService  *service,
                  const char     *method,
                  GVariant       *parameters,
                  const char     *reply_type,
                  GCancellable   *cancellable,
                  GError        **error)
{
  GDBusProxy *proxy = G_DBUS_PROXY (service);
  GDBusConnection *connection = g_dbus_proxy_get_connection (proxy);
  g_autofree char *owner = g_dbus_proxy_get_name_owner (proxy);
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) result = NULL;
  g_autoptr(GError) local = NULL;
  const char *prompt_path;

  if (owner == NULL)
    {
      g_variant_unref (g_variant_ref_sink (parameters));
      set_service_gone_error (error);
      return NULL;
    }
  reply = g_dbus_connection_call_sync (connection, owner, SECRET_PATH, SECRET_SERVICE_IFACE,
                                       method, parameters, G_VARIANT_TYPE (reply_type),
                                       G_DBUS_CALL_FLAGS_NO_AUTO_START, -1, cancellable, &local);
  if (reply == NULL)
    {
      propagate_keyring_error (error, local, cancellable);
      return NULL;
    }
  result = g_variant_get_child_value (reply, 0);
  g_variant_get_child (reply, 1, "&o", &prompt_path);
  if (g_str_equal (prompt_path, SECRET_NO_PROMPT))
    return g_steal_pointer (&result);
  return run_prompt (self, connection, owner, prompt_path, cancellable, error);
}

/* Unlocks @paths (collections or items), prompting when the service asks
 * for it. A dismissed prompt leaves them locked: LOCKED. */
static gboolean
unlock_objects (GkSecretStore       *self,
                SecretService       *service,
                const char * const  *paths,
                GCancellable        *cancellable,
                GError             **error)
{
  g_autoptr(GVariant) result = NULL;
  g_autoptr(GError) local = NULL;

  result = call_with_prompt (self, service, "Unlock", g_variant_new ("(^ao)", paths), "(aoo)",
                             cancellable, &local);
  if (result != NULL)
    return TRUE;
  if (g_error_matches (local, GK_SECRET_ERROR, GK_SECRET_ERROR_DISMISSED))
    set_locked_error (error);
  else
    g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

/* Makes sure the default keyring exists and is unlocked, prompting the user
 * to create or unlock it when needed, so that storing an item never opens a
 * prompt of libsecret's. */
static gboolean
ensure_default_collection (GkSecretStore  *self,
                           SecretService  *service,
                           GCancellable   *cancellable,
                           GError        **error)
{
  g_autoptr(SecretCollection) collection = NULL;
  g_autoptr(GVariant) result = NULL;
  g_autoptr(GError) local = NULL;

  collection = secret_collection_for_alias_sync (service, SECRET_COLLECTION_DEFAULT,
                                                 SECRET_COLLECTION_NONE, cancellable, &local);
  if (local != NULL)
    {
      propagate_keyring_error (error, local, cancellable);
      return FALSE;
    }

  if (collection == NULL)
    {
      GVariantBuilder properties;

      g_variant_builder_init (&properties, G_VARIANT_TYPE ("a{sv}"));
      g_variant_builder_add (&properties, "{sv}", "org.freedesktop.Secret.Collection.Label",
                             g_variant_new_string (_("Default keyring")));
      result = call_with_prompt (self, service, "CreateCollection",
                                 g_variant_new ("(a{sv}s)", &properties, SECRET_COLLECTION_DEFAULT),
                                 "(oo)", cancellable, error);
      return result != NULL;
    }

  if (secret_collection_get_locked (collection))
    {
      const char *paths[] = { g_dbus_proxy_get_object_path (G_DBUS_PROXY (collection)), NULL };

      return unlock_objects (self, service, paths, cancellable, error);
    }
  return TRUE;
}

static char *
dup_attribute (GHashTable *attributes,
               const char *name)
{
  return g_strdup (g_hash_table_lookup (attributes, name));
}

void
gk_keyring_item_free (gpointer data)
{
  GkKeyringItem *item = data;

  g_free (item->path);
  g_clear_pointer (&item->attributes, g_hash_table_unref);
  g_clear_pointer (&item->value, secret_value_unref);
  g_free (item);
}

/* The attributes of the item at @path, read with one D-Bus call. */
static GHashTable *
read_item_attributes (SecretService  *service,
                      const char     *path,
                      GCancellable   *cancellable,
                      GError        **error)
{
  GDBusProxy *proxy = G_DBUS_PROXY (service);
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) boxed = NULL;
  g_autoptr(GVariant) dict = NULL;
  GHashTable *attributes;
  GVariantIter iter;
  const char *name;
  const char *value;

  reply = g_dbus_connection_call_sync (g_dbus_proxy_get_connection (proxy),
                                       g_dbus_proxy_get_name (proxy), path,
                                       "org.freedesktop.DBus.Properties", "Get",
                                       g_variant_new ("(ss)", "org.freedesktop.Secret.Item",
                                                      "Attributes"),
                                       G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, -1,
                                       cancellable, error);
  if (reply == NULL)
    return NULL;
  g_variant_get (reply, "(v)", &boxed);
  if (!g_variant_is_of_type (boxed, G_VARIANT_TYPE ("a{ss}")))
    {
      g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS,
                   "The keyring item %s has attributes of type %s", path,
                   g_variant_get_type_string (boxed));
      return NULL;
    }
  attributes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_variant_iter_init (&iter, boxed);
  while (g_variant_iter_next (&iter, "{&s&s}", &name, &value))
    g_hash_table_insert (attributes, g_strdup (name), g_strdup (value));
  return attributes;
}

/* One search: its unlocked items with their secrets, its locked ones
 * without. Fails with an "item gone" error when another process removes a
 * found item before its secret or attributes are read. */
static GPtrArray *
search_items_once (GkSecretStore       *self,
                   SecretService       *service,
                   const SecretSchema  *schema,
                   GHashTable          *attributes,
                   GCancellable        *cancellable,
                   GError             **error)
{
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func (gk_keyring_item_free);
  g_auto(GStrv) unlocked = NULL;
  g_auto(GStrv) locked = NULL;
  g_autoptr(GHashTable) secrets = NULL;

  if (!secret_service_search_for_dbus_paths_sync (service, schema, attributes, cancellable,
                                                  &unlocked, &locked, error))
    return NULL;
  if (self->search_hook != NULL)
    {
      GFunc hook = g_steal_pointer (&self->search_hook);

      hook (self, self->search_hook_data);
    }
  if (unlocked != NULL && unlocked[0] != NULL)
    {
      secrets = secret_service_get_secrets_for_dbus_paths_sync (service,
                                                                (const char **) unlocked,
                                                                cancellable, error);
      if (secrets == NULL)
        return NULL;
    }

  for (guint pass = 0; pass < 2; pass++)
    {
      GStrv paths = pass == 0 ? unlocked : locked;

      for (guint i = 0; paths != NULL && paths[i] != NULL; i++)
        {
          GkKeyringItem *item = g_new0 (GkKeyringItem, 1);

          g_ptr_array_add (items, item);
          item->path = g_strdup (paths[i]);
          item->locked = pass == 1;
          if (!item->locked)
            {
              item->value = g_hash_table_lookup (secrets, paths[i]);
              if (item->value == NULL)
                {
                  g_set_error (error, SECRET_ERROR, SECRET_ERROR_NO_SUCH_OBJECT,
                               "The keyring item %s was removed", paths[i]);
                  return NULL;
                }
              secret_value_ref (item->value);
            }
          item->attributes = read_item_attributes (service, paths[i], cancellable, error);
          if (item->attributes == NULL)
            return NULL;
        }
    }
  return g_steal_pointer (&items);
}

/* The items of @attributes, see search_items_once(). An item another
 * process removes while they are read fails the search, which is run
 * again. Skipping such an item would be wrong: it is usually a key being
 * moved into place (a "next" item becoming "current"), and a search that
 * missed both would conclude the database's key is lost and make a new
 * one. The search goes by object paths rather than through libsecret's
 * item objects: libsecret 0.20 completes the loading of an item that
 * vanishes twice. */
static GPtrArray *
search_items (GkSecretStore       *self,
              SecretService       *service,
              const SecretSchema  *schema,
              GHashTable          *attributes,
              GCancellable        *cancellable,
              GError             **error)
{
  for (guint attempt = 0; ; attempt++)
    {
      g_autoptr(GError) local = NULL;
      GPtrArray *items = search_items_once (self, service, schema, attributes, cancellable, &local);

      if (items != NULL)
        return items;
      if (!is_item_gone (local) || attempt >= SEARCH_ATTEMPTS)
        {
          propagate_keyring_error (error, local, cancellable);
          return NULL;
        }
    }
}

/* The items of @schema with @attributes, see search_items(): locked ones
 * are unlocked first (the user may be prompted). Sets @locked when some
 * stay locked; those come without their secrets. */
static GPtrArray *
search_unlocking (GkSecretStore       *self,
                  SecretService       *service,
                  const SecretSchema  *schema,
                  GHashTable          *attributes,
                  gboolean            *locked,
                  GCancellable        *cancellable,
                  GError             **error)
{
  g_autoptr(GPtrArray) items = NULL;

  *locked = FALSE;
  for (guint attempt = 0; attempt < 2; attempt++)
    {
      g_autoptr(GPtrArray) locked_paths = g_ptr_array_new ();
      g_autoptr(GError) local = NULL;

      g_clear_pointer (&items, g_ptr_array_unref);
      items = search_items (self, service, schema, attributes, cancellable, error);
      if (items == NULL)
        return NULL;
      for (guint i = 0; i < items->len; i++)
        {
          GkKeyringItem *item = items->pdata[i];

          if (item->locked)
            g_ptr_array_add (locked_paths, item->path);
        }
      if (locked_paths->len == 0 || attempt > 0)
        break;

      g_ptr_array_add (locked_paths, NULL);
      if (!unlock_objects (self, service, (const char * const *) locked_paths->pdata, cancellable,
                           &local))
        {
          if (g_error_matches (local, GK_SECRET_ERROR, GK_SECRET_ERROR_LOCKED))
            {
              /* Left locked: report what can be read, and that some cannot. */
              *locked = TRUE;
              break;
            }
          g_propagate_error (error, g_steal_pointer (&local));
          return NULL;
        }
    }
  return g_steal_pointer (&items);
}

/* Every item stored for @db_uuid, whatever its key. Locked items are
 * unlocked (the user may be prompted); sets @locked when some stay locked. */
static GPtrArray *
keyring_find (GkSecretStore  *self,
              const char     *db_uuid,
              gboolean       *locked,
              GCancellable   *cancellable,
              GError        **error)
{
  g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func (stored_key_free);
  g_autoptr(SecretService) service = NULL;
  g_autoptr(GHashTable) attributes = NULL;
  g_autoptr(GError) local = NULL;
  g_autoptr(GPtrArray) items = NULL;

  *locked = FALSE;
  service = gk_secret_store_get_service (cancellable, error);
  if (service == NULL)
    return NULL;

  attributes = secret_attributes_build (get_schema (), ATTR_UUID, db_uuid, NULL);
  items = search_unlocking (self, service, get_schema (), attributes, locked, cancellable, error);
  if (items == NULL)
    return NULL;

  for (guint i = 0; i < items->len; i++)
    {
      GkKeyringItem *item = items->pdata[i];
      g_autoptr(GBytes) key = NULL;
      StoredKey *stored;

      if (item->locked)
        {
          *locked = TRUE;
          continue;
        }
      {
        gsize len = 0;
        const char *data = secret_value_get (item->value, &len);

        /* libsecret keeps values in its own wiped memory. */
        if (len == GK_MASTER_KEY_LEN)
          key = gk_secure_bytes_new (data, len);
      }

      stored = stored_key_new (g_hash_table_lookup (item->attributes, ATTR_ROLE), key);
      if (stored->role == NULL)
        stored->role = g_strdup (ROLE_CURRENT);
      stored->item_path = g_strdup (item->path);
      stored->service = g_object_ref (service);
      stored->check_attr = dup_attribute (item->attributes, ATTR_CHECK);
      stored->db_file = dup_attribute (item->attributes, ATTR_DB_FILE);
      g_ptr_array_add (found, stored);
    }

  if (found->len == 0 && default_collection_locked (service, cancellable))
    *locked = TRUE;
  return g_steal_pointer (&found);
}

static GPtrArray *
backend_find (GkSecretStore  *self,
              const char     *db_uuid,
              const char     *check_value,
              gboolean       *locked,
              GCancellable   *cancellable,
              GError        **error)
{
  *locked = FALSE;
  if (self->file != NULL)
    return file_find (self, check_value, error);
  return keyring_find (self, db_uuid, locked, cancellable, error);
}

/* Stores @master_key as the key with its check value for @db_uuid. Items
 * are told apart by their check value: storing never replaces the key of
 * another check value, which a copy of the database may still use. */
static gboolean
keyring_store (GkSecretStore *self,
               const char    *db_uuid,
               const char    *role,
               const char    *db_file,
               GBytes        *master_key,
               GCancellable  *cancellable,
               GError       **error)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(SecretService) service = NULL;
  g_autoptr(GHashTable) attributes = NULL;
  g_autofree char *check = gk_crypto_check_value (master_key);
  const char *label;
  SecretValue *value;
  gboolean ok;

  attributes = secret_attributes_build (get_schema (),
                                        ATTR_UUID, db_uuid,
                                        ATTR_ROLE, role,
                                        ATTR_CHECK, check,
                                        NULL);
  if (db_file != NULL)
    g_hash_table_insert (attributes, g_strdup (ATTR_DB_FILE), g_strdup (db_file));

  if (g_str_equal (role, ROLE_CURRENT))
    label = _("Gemini Keys master key");
  else
    label = _("Gemini Keys master key (rotation in progress)");

  service = gk_secret_store_get_service (cancellable, error);
  if (service == NULL || !ensure_default_collection (self, service, cancellable, error))
    return FALSE;

  value = secret_value_new (g_bytes_get_data (master_key, NULL), g_bytes_get_size (master_key),
                            CONTENT_TYPE);
  ok = secret_service_store_sync (service, get_schema (), attributes, SECRET_COLLECTION_DEFAULT,
                                  label, value, cancellable, &local);
  secret_value_unref (value);

  if (!ok)
    propagate_keyring_error (error, local, cancellable);
  return ok;
}

static gboolean
keyring_clear (const char    *db_uuid,
               const char    *role,
               const char    *check,
               GCancellable  *cancellable,
               GError       **error)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(GHashTable) attributes = secret_attributes_build (get_schema (),
                                                              ATTR_UUID, db_uuid, NULL);

  if (role != NULL)
    g_hash_table_insert (attributes, g_strdup (ATTR_ROLE), g_strdup (role));
  if (check != NULL)
    g_hash_table_insert (attributes, g_strdup (ATTR_CHECK), g_strdup (check));

  g_autoptr(SecretService) service = gk_secret_store_get_service (cancellable, &local);
  g_auto(GStrv) unlocked = NULL;
  g_auto(GStrv) locked = NULL;

  /* By object paths, as search_items() does: libsecret's own clearing
   * trips over items another process removes at the same time. */
  if (service == NULL
      || !secret_service_search_for_dbus_paths_sync (service, get_schema (), attributes,
                                                     cancellable, &unlocked, &locked, &local))
    {
      propagate_keyring_error (error, local, cancellable);
      return FALSE;
    }
  for (guint pass = 0; pass < 2; pass++)
    {
      GStrv paths = pass == 0 ? unlocked : locked;

      for (guint i = 0; paths != NULL && paths[i] != NULL; i++)
        {
          if (!secret_service_delete_item_dbus_path_sync (service, paths[i], cancellable, &local)
              && !is_item_gone (local))
            {
              propagate_keyring_error (error, local, cancellable);
              return FALSE;
            }
          g_clear_error (&local);
        }
    }
  return TRUE;
}

static gboolean
unlink_key_file (const char  *path,
                 GError     **error)
{
  if (g_unlink (path) != 0 && errno != ENOENT)
    {
      int saved = errno;

      g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FILE,
                   _("Cannot remove the master key file %s: %s"), path, g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}

/* Makes @master_key the key in the file. A different key already there is
 * first kept beside it under its check value, since a copy or a backup of
 * the database may still need it; the file itself is replaced atomically. */
static gboolean
file_install (GkSecretStore  *self,
              GBytes         *master_key,
              GError        **error)
{
  g_autoptr(GBytes) previous = NULL;

  if (g_file_test (self->file, G_FILE_TEST_EXISTS))
    previous = gk_secret_store_read_key_file (self->file, NULL);

  if (previous != NULL && !g_bytes_equal (previous, master_key))
    {
      g_autofree char *check = gk_crypto_check_value (previous);
      g_autofree char *kept = file_for_check (self, check);

      if (!g_file_test (kept, G_FILE_TEST_EXISTS) && !write_key_file (kept, previous, error))
        return FALSE;
    }
  return write_key_file (self->file, master_key, error);
}

static gboolean
backend_store (GkSecretStore  *self,
               const char     *db_uuid,
               GBytes         *master_key,
               GCancellable   *cancellable,
               GError        **error)
{
  if (self->file != NULL)
    return file_install (self, master_key, error);
  return keyring_store (self, db_uuid, ROLE_CURRENT, NULL, master_key, cancellable, error);
}

/* Removes one stored key. */
static gboolean
stored_key_remove (StoredKey     *stored,
                   GCancellable  *cancellable,
                   GError       **error)
{
  g_autoptr(GError) local = NULL;

  if (stored->path != NULL)
    return unlink_key_file (stored->path, error);
  if (!secret_service_delete_item_dbus_path_sync (stored->service, stored->item_path,
                                                  cancellable, &local))
    {
      /* Another process tidying the same items removed it first. */
      if (is_item_gone (local))
        return TRUE;
      propagate_keyring_error (error, local, cancellable);
      return FALSE;
    }
  return TRUE;
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
  GkSqlStmt *stmt;
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

  rc = gk_sql_step (stmt);
  if (rc == GK_SQL_ROW)
    {
      plain = gk_crypto_decrypt (master_key,
                                 gk_sql_column_text (stmt, 0),
                                 gk_sql_column_blob (stmt, 1),
                                 (gsize) gk_sql_column_bytes (stmt, 1),
                                 &local);
      *matches = !g_error_matches (local, GK_CRYPTO_ERROR, GK_CRYPTO_ERROR_AUTH);
    }
  else if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (db, error, _("Cannot read the keys"));
      gk_sql_reset (stmt);
      gk_database_unlock (db);
      return FALSE;
    }

  gk_sql_reset (stmt);
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

/* How many keys are encrypted (-1 when it cannot be read). */
static int
count_ciphertext (GkDatabase *db)
{
  GkSqlStmt *stmt;
  int count = -1;

  gk_database_lock (db);
  stmt = gk_database_prepare (db,
                              "SELECT COUNT(*) FROM gemini_api_keys"
                              " WHERE api_key_encrypted IS NOT NULL",
                              NULL);
  if (stmt != NULL)
    {
      if (gk_sql_step (stmt) == GK_SQL_ROW)
        count = gk_sql_column_int64 (stmt, 0);
      gk_sql_reset (stmt);
    }
  gk_database_unlock (db);
  return count;
}

/* The best stored key for @check_value: a "current" one before a "next". */
static StoredKey *
find_match (GPtrArray  *found,
            const char *check_value)
{
  StoredKey *match = NULL;

  for (guint i = 0; i < found->len; i++)
    {
      StoredKey *stored = found->pdata[i];

      if (stored->check == NULL || !gk_crypto_equal_const_time (stored->check, check_value))
        continue;
      if (match == NULL
          || (g_str_equal (match->role, ROLE_NEXT) && g_str_equal (stored->role, ROLE_CURRENT))
          || (match->check_attr == NULL && stored->check_attr != NULL
              && g_str_equal (stored->role, ROLE_CURRENT)))
        match = stored;
    }
  return match;
}

/* Says what moving a "next" key into place (@match) finished. Such a key is
 * a rotation's or a first start's: another process committed it and died
 * before moving it, or is moving it right now. Only an interrupted
 * rotation is news: it re-encrypted the keys the database holds, and the
 * key it replaced is still stored beside the new one. A first start's key
 * has neither; moving it is routine, whoever does it. */
static void
report_recovered (GkDatabase *db,
                  GPtrArray  *found,
                  StoredKey  *match)
{
  gboolean other_key = FALSE;

  for (guint i = 0; i < found->len && !other_key; i++)
    {
      StoredKey *stored = found->pdata[i];

      other_key = stored->check != NULL && !g_str_equal (stored->check, match->check);
    }
  if (other_key && count_ciphertext (db) > 0)
    g_message ("Finished a master key rotation that was interrupted");
  else
    g_debug ("Moved the database's new master key into place");
}

/* Puts the keyring in order around the key the database uses (@match,
 * which matches @check_value): an unfinished rotation is finished, an item
 * from before check values is stored again with its check value, and items
 * holding the same key twice are removed. Items holding other keys are left
 * alone: a copy or a backup of the database may need them. Best effort: the
 * key is usable anyway. */
static void
tidy_matching (GkSecretStore *self,
               GkDatabase    *db,
               GPtrArray     *found,
               StoredKey     *match,
               GCancellable  *cancellable)
{
  g_autoptr(GError) local = NULL;
  gboolean recovered = g_str_equal (match->role, ROLE_NEXT);

  if (self->file != NULL)
    {
      /* The key in use lives in a kept or a "next" file: move it back into
       * place only when it is the rotation's (the kept ones may serve a copy
       * that shares the file). */
      if (recovered)
        {
          if (!file_install (self, match->key, &local)
              || !unlink_key_file (match->path, &local))
            g_warning ("Cannot move the new master key into place: %s", local->message);
          else
            report_recovered (db, found, match);
        }
      return;
    }

  if (recovered || match->check_attr == NULL)
    {
      if (!keyring_store (self, gk_database_get_uuid (db), ROLE_CURRENT, NULL, match->key,
                          cancellable, &local))
        {
          g_warning ("Cannot update the master key in the keyring: %s", local->message);
          return;
        }
      if (recovered)
        report_recovered (db, found, match);
    }

  /* The item just stored holds the key now; every other item with the same
   * key (the "next" item, an item from before check values, a duplicate) goes. */
  for (guint i = 0; i < found->len; i++)
    {
      StoredKey *stored = found->pdata[i];

      if (stored->check == NULL || !g_str_equal (stored->check, match->check))
        continue;
      if (stored == match && !recovered && match->check_attr != NULL)
        continue;
      if (!stored_key_remove (stored, cancellable, &local))
        {
          g_warning ("Cannot remove a duplicate master key from the keyring: %s",
                     local->message);
          g_clear_error (&local);
        }
    }
}

/* The database file's absolute path, the same from every working folder:
 * "next" items name the file whose rotation stored them. For a PostgreSQL
 * database, its connection string redacted (scheme://user@host:port/db):
 * the keyring never holds a password of the server's. */
static char *
database_file (GkDatabase *db)
{
  if (gk_database_is_remote (db))
    return gk_database_get_display_name (db);
  return g_canonicalize_filename (gk_database_get_path (db), NULL);
}

/* Removes what a rotation of this database left behind when it stopped
 * before its commit: keys nothing was ever encrypted with. The rotation
 * holds the write lock from storing its key to its commit, so with the lock
 * held here, a "next" key that does not match the database is dead. Keys
 * another database file (a copy) is rotating to are not touched. */
static void
tidy_leftovers (GkSecretStore *self,
                GkDatabase    *db,
                GPtrArray     *found,
                GCancellable  *cancellable)
{
  g_autofree char *path = database_file (db);
  g_autofree char *check_value = NULL;
  g_autoptr(GPtrArray) dead = g_ptr_array_new ();

  for (guint i = 0; i < found->len; i++)
    {
      StoredKey *stored = found->pdata[i];

      if (!g_str_equal (stored->role, ROLE_NEXT))
        continue;
      if (stored->item_path != NULL && stored->db_file != NULL && !g_str_equal (stored->db_file, path))
        continue;
      g_ptr_array_add (dead, stored);
    }
  if (dead->len == 0)
    return;

  if (!gk_database_begin (db, NULL))
    return;
  check_value = gk_database_get_meta (db, META_CHECK_VALUE);
  for (guint i = 0; i < dead->len; i++)
    {
      StoredKey *stored = dead->pdata[i];
      g_autoptr(GError) local = NULL;

      if (check_value != NULL && stored->check != NULL
          && g_str_equal (stored->check, check_value))
        continue;
      if (stored_key_remove (stored, cancellable, &local))
        g_message ("Removed the unused key of a master key rotation that was interrupted");
      else
        g_warning ("Cannot remove the key of an interrupted master key rotation: %s",
                   local->message);
    }
  gk_database_rollback (db);
}

/* Stores @key as the "next" key of @db: a key the database is about to be
 * encrypted with, which unlock finishes moving into place if the database
 * committed to it, or removes if it did not. */
static gboolean
next_store (GkSecretStore  *self,
            GkDatabase     *db,
            GBytes         *key,
            GCancellable   *cancellable,
            GError        **error)
{
  g_autofree char *path = NULL;

  if (self->file != NULL)
    {
      path = next_file (self);
      return write_key_file (path, key, error);
    }
  path = database_file (db);
  return keyring_store (self, gk_database_get_uuid (db), ROLE_NEXT, path, key, cancellable,
                        error);
}

static gboolean
next_drop (GkSecretStore  *self,
           GkDatabase     *db,
           GBytes         *key,
           GCancellable   *cancellable,
           GError        **error)
{
  g_autofree char *path = NULL;
  g_autofree char *check = NULL;

  if (self->file != NULL)
    {
      path = next_file (self);
      return unlink_key_file (path, error);
    }
  check = gk_crypto_check_value (key);
  return keyring_clear (gk_database_get_uuid (db), ROLE_NEXT, check, cancellable, error);
}

/* Once the database committed to @key: stores it as a "current" key and
 * drops the "next" one. Best effort: until it succeeds, unlock finds the
 * "next" key and finishes the move. */
static void
next_promote (GkSecretStore *self,
              GkDatabase    *db,
              GBytes        *key,
              GCancellable  *cancellable)
{
  g_autoptr(GError) local = NULL;

  if (!backend_store (self, gk_database_get_uuid (db), key, cancellable, &local)
      || !next_drop (self, db, key, cancellable, &local))
    g_warning ("The new master key is in use but could not be moved into place yet (%s); "
               "it will be at the next start", local->message);
}

/* The first run, or a database whose every key was deleted: a new key, its
 * check value and the stored key appear together. The key is stored as
 * "next" before the database's write lock is taken, since the keyring may
 * prompt (to create or unlock a keyring) for as long as the user takes, and
 * other processes must not wait on the database meanwhile. Then, with the
 * lock held, the check value is committed, and the key becomes "current".
 * Stopped before the commit, the "next" key matches nothing and unlock
 * removes it; after, unlock finds it and moves it into place. The
 * transaction serialises several processes; returns NULL with no error
 * when another process got there first (@expected_check is no longer the
 * check value) or a key was added meanwhile. */
static GBytes *
create_master_key (GkSecretStore  *self,
                   GkDatabase     *db,
                   const char     *expected_check,
                   GCancellable   *cancellable,
                   GError        **error)
{
  g_autofree char *check_value = NULL;
  g_autofree char *new_check = NULL;
  g_autoptr(GBytes) key = gk_crypto_new_master_key ();
  g_autoptr(GError) local = NULL;
  gboolean has_ciphertext;

  if (!next_store (self, db, key, cancellable, error))
    return NULL;

  if (!gk_database_begin (db, error))
    goto drop;

  check_value = gk_database_get_meta (db, META_CHECK_VALUE);
  has_ciphertext = gk_database_has_ciphertext (db, &local);
  if (local != NULL)
    {
      gk_database_rollback (db);
      g_propagate_error (error, g_steal_pointer (&local));
      goto drop;
    }
  if (g_strcmp0 (check_value, expected_check) != 0 || has_ciphertext)
    {
      gk_database_rollback (db);
      goto drop;
    }

  new_check = gk_crypto_check_value (key);
  if (!gk_database_set_meta (db, META_CHECK_VALUE, new_check, error) ||
      !gk_hygiene_mark_master_key_created (db, error))
    {
      gk_database_rollback (db);
      goto drop;
    }
  if (!gk_database_commit (db, error))
    goto drop;

  next_promote (self, db, key, cancellable);
  if (check_value != NULL)
    g_message ("The database holds no encrypted key: made a new master key for it");
  return g_steal_pointer (&key);

drop:
  /* Nothing was encrypted with the key: take it back. */
  next_drop (self, db, key, NULL, NULL);
  return NULL;
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
  g_autoptr(GPtrArray) found = NULL;
  StoredKey *match = NULL;
  gboolean locked = FALSE;
  gboolean any_key = FALSE;
  int n_encrypted;

  *retry = FALSE;

  found = backend_find (self, db_uuid, check_value, &locked, cancellable, error);
  if (found == NULL)
    return NULL;

  for (guint i = 0; i < found->len; i++)
    any_key |= ((StoredKey *) found->pdata[i])->key != NULL;

  if (check_value == NULL)
    {
      /* A database from before check values, or a first run cut short
       * between storing the key and committing: adopt the stored key once
       * it proves right. */
      for (guint i = 0; i < found->len && match == NULL; i++)
        {
          StoredKey *stored = found->pdata[i];
          gboolean matches = FALSE;

          if (stored->key != NULL && g_str_equal (stored->role, ROLE_CURRENT)
              && !key_decrypts_a_row (db, stored->key, &matches, error))
            return NULL;
          if (matches)
            match = stored;
        }
      if (match != NULL)
        {
          if (!gk_database_set_meta (db, META_CHECK_VALUE, match->check, error))
            return NULL;
          tidy_matching (self, db, found, match, cancellable);
          return g_bytes_ref (match->key);
        }
    }
  else
    {
      match = find_match (found, check_value);
      if (match != NULL)
        {
          tidy_matching (self, db, found, match, cancellable);
          tidy_leftovers (self, db, found, cancellable);
          return g_bytes_ref (match->key);
        }
    }

  if (locked)
    {
      set_locked_error (error);
      return NULL;
    }

  /* Nothing stored fits: only a database that holds no secret may get a
   * new key (its history stays), or every stored key would be lost. */
  n_encrypted = count_ciphertext (db);
  if (n_encrypted < 0)
    {
      gk_database_set_error (db, error, _("Cannot read the keys"));
      return NULL;
    }
  if (n_encrypted > 0)
    {
      if (any_key)
        set_wrong_key_error (self, error);
      else
        set_missing_error (self, n_encrypted, error);
      return NULL;
    }

  {
    GBytes *key = create_master_key (self, db, check_value, cancellable, error);

    if (key == NULL && (error == NULL || *error == NULL))
      *retry = TRUE;
    if (key != NULL)
      tidy_leftovers (self, db, found, cancellable);
    return key;
  }
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
  GkSqlStmt *stmt;
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
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      Row row;

      row.id = gk_sql_column_int64 (stmt, 0);
      row.uuid = g_strdup (gk_sql_column_text (stmt, 1));
      row.blob = g_bytes_new (gk_sql_column_blob (stmt, 2),
                              (gsize) gk_sql_column_bytes (stmt, 2));
      g_array_append_val (rows, row);
    }
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
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
      gk_sql_bind_blob (stmt, 1, g_bytes_get_data (blob, NULL), (int) g_bytes_get_size (blob));
      gk_sql_bind_text (stmt, 2, fingerprint, -1);
      gk_sql_bind_int64 (stmt, 3, row->id);
      rc = gk_sql_step (stmt);
      if (rc != GK_SQL_DONE)
        gk_database_set_error (db, error, _("Cannot save the re-encrypted keys"));
      gk_sql_reset (stmt);
      if (rc != GK_SQL_DONE)
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

  /**
   * GkSecretStore::prompting:
   * @open: TRUE when a keyring prompt opens, FALSE when it closes
   *
   * The keyring shows the user a prompt (to create or unlock a keyring)
   * and the call waits for the answer. Emitted in the thread making the
   * call, usually a worker thread.
   */
  signals[PROMPTING] =
    g_signal_new ("prompting",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_BOOLEAN);
}

static void
gk_secret_store_init (GkSecretStore *self)
{
}

/* Public API */

void
gk_secret_store_set_search_hook (GkSecretStore *self,
                                 GFunc          hook,
                                 gpointer       data)
{
  g_return_if_fail (GK_IS_SECRET_STORE (self));

  self->search_hook = hook;
  self->search_hook_data = data;
}

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
 * @check_value: (nullable): the key check value the key must have
 *
 * A stored master key of @db_uuid with @check_value (any stored one when
 * NULL); NULL with no error when none is stored.
 */
GBytes *
gk_secret_store_lookup (GkSecretStore  *self,
                        const char     *db_uuid,
                        const char     *check_value,
                        GCancellable   *cancellable,
                        GError        **error)
{
  g_autoptr(GPtrArray) found = NULL;
  gboolean locked = FALSE;

  g_return_val_if_fail (GK_IS_SECRET_STORE (self), NULL);
  g_return_val_if_fail (db_uuid != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  found = backend_find (self, db_uuid, check_value, &locked, cancellable, error);
  if (found == NULL)
    return NULL;
  for (guint i = 0; i < found->len; i++)
    {
      StoredKey *stored = found->pdata[i];

      if (stored->key == NULL || !g_str_equal (stored->role, ROLE_CURRENT))
        continue;
      if (check_value == NULL || gk_crypto_equal_const_time (stored->check, check_value))
        return g_bytes_ref (stored->key);
    }
  if (locked)
    set_locked_error (error);
  return NULL;
}

/**
 * gk_secret_store_store:
 *
 * Stores @master_key for @db_uuid. In the keyring it is added beside the
 * keys of other check values (copies of the database may use them); a key
 * file is replaced, the key it held kept beside it.
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

  return backend_store (self, db_uuid, master_key, cancellable, error);
}

/**
 * gk_secret_store_clear:
 *
 * Removes every stored master key of @db_uuid (a key file: the file);
 * nothing stored is not an error.
 */
gboolean
gk_secret_store_clear (GkSecretStore  *self,
                       const char     *db_uuid,
                       GCancellable   *cancellable,
                       GError        **error)
{
  g_return_val_if_fail (GK_IS_SECRET_STORE (self), FALSE);
  g_return_val_if_fail (db_uuid != NULL, FALSE);

  if (self->file != NULL)
    return unlink_key_file (self->file, error);
  return keyring_clear (db_uuid, NULL, NULL, cancellable, error);
}

/**
 * gk_secret_store_unlock:
 *
 * The master key of @db, found by its key check value; a new one only for
 * a database that holds no encrypted key. Blocks: call it from a worker
 * thread, or use gk_secret_store_unlock_async().
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
 * gk_secret_store_is_stored:
 *
 * Whether a master key with @check_value is still stored for @db_uuid;
 * FALSE with @error set when the keyring cannot be asked.
 */
gboolean
gk_secret_store_is_stored (GkSecretStore  *self,
                           const char     *db_uuid,
                           const char     *check_value,
                           gboolean       *stored,
                           GCancellable   *cancellable,
                           GError        **error)
{
  g_autoptr(GPtrArray) found = NULL;
  gboolean locked = FALSE;

  g_return_val_if_fail (GK_IS_SECRET_STORE (self), FALSE);
  g_return_val_if_fail (db_uuid != NULL, FALSE);
  g_return_val_if_fail (check_value != NULL, FALSE);
  g_return_val_if_fail (stored != NULL, FALSE);

  *stored = FALSE;
  found = backend_find (self, db_uuid, check_value, &locked, cancellable, error);
  if (found == NULL)
    return FALSE;
  *stored = find_match (found, check_value) != NULL;
  if (!*stored && locked)
    {
      set_locked_error (error);
      return FALSE;
    }
  return TRUE;
}

/**
 * gk_secret_store_export_file:
 *
 * Writes @master_key to @path as base64 text, in a file only its owner can
 * read (0600). An existing file is replaced only with @force.
 */
gboolean
gk_secret_store_export_file_full (GkSecretStore  *self,
                                  GBytes         *master_key,
                                  const char     *path,
                                  gboolean        force,
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
  if (!force && g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_EXISTS,
                   _("%s already exists and was not overwritten. Choose another file name, or "
                     "add --force to replace it."),
                   path);
      return FALSE;
    }
  return write_key_file (path, master_key, error);
}

gboolean
gk_secret_store_export_file (GkSecretStore  *self,
                             GBytes         *master_key,
                             const char     *path,
                             GError        **error)
{
  return gk_secret_store_export_file_full (self, master_key, path, TRUE, error);
}

/**
 * gk_secret_store_import_file_full:
 *
 * Reads a master key file, checks the key against @db (WRONG_KEY when it
 * belongs to another database) and stores it as @db's master key: in the
 * keyring, or in the master key file of a file store. A master key file
 * holding a different key is replaced only with @force (its key is kept
 * beside it).
 */
gboolean
gk_secret_store_import_file_full (GkSecretStore  *self,
                                  GkDatabase     *db,
                                  const char     *path,
                                  gboolean        force,
                                  GError        **error)
{
  g_autoptr(GBytes) key = NULL;
  g_autofree char *check_value = NULL;
  g_autoptr(GError) local = NULL;
  g_autoptr(GString) summary = g_string_new (NULL);

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

  if (self->file != NULL && !force && g_file_test (self->file, G_FILE_TEST_EXISTS))
    {
      g_autoptr(GBytes) present = gk_secret_store_read_key_file (self->file, NULL);

      if (present == NULL || !g_bytes_equal (present, key))
        {
          g_set_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_EXISTS,
                       _("The master key file %s already holds another key, which was not "
                         "overwritten. Add --force to replace it (the key it holds is kept "
                         "beside it)."),
                       self->file);
          return FALSE;
        }
    }

  if (!backend_store (self, gk_database_get_uuid (db), key, NULL, error))
    return FALSE;

  if (check_value == NULL)
    {
      g_autofree char *new_check = gk_crypto_check_value (key);

      if (!gk_database_set_meta (db, META_CHECK_VALUE, new_check, error))
        return FALSE;
    }
  gk_audit_summary_add (summary, self->file != NULL ? GK_AUDIT_PHRASE_INTO_KEY_FILE
                                                    : GK_AUDIT_PHRASE_INTO_KEYRING,
                        NULL, NULL);
  return gk_audit_record (db, GK_AUDIT_MASTER_KEY_IMPORT, 0, NULL, summary->str, error);
}

gboolean
gk_secret_store_import_file (GkSecretStore  *self,
                             GkDatabase     *db,
                             const char     *path,
                             GError        **error)
{
  return gk_secret_store_import_file_full (self, db, path, FALSE, error);
}

/**
 * gk_secret_store_rotate_master_key:
 *
 * Moves every stored key to a new master key. The new key is stored as
 * "next" (for this database file) while the database's write lock is held,
 * the rows are re-encrypted and the new check value committed, then it
 * becomes a "current" key. The old key stays stored: copies and backups of
 * the database still use it. Whatever point it stops at, unlock finds the
 * key that matches the check value.
 */
GBytes *
gk_secret_store_rotate_master_key (GkSecretStore  *self,
                                   GkDatabase     *db,
                                   GBytes         *old_master_key,
                                   GCancellable   *cancellable,
                                   GError        **error)
{
  g_autofree char *check_value = NULL;
  g_autoptr(GBytes) new_key = NULL;
  gboolean committed = FALSE;

  g_return_val_if_fail (GK_IS_SECRET_STORE (self), NULL);
  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);
  g_return_val_if_fail (old_master_key != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  new_key = gk_crypto_new_master_key ();

  if (!gk_database_begin (db, error))
    return NULL;

  check_value = gk_database_get_meta (db, META_CHECK_VALUE);
  if (g_bytes_get_size (old_master_key) != GK_MASTER_KEY_LEN
      || (check_value != NULL && !key_matches_check_value (old_master_key, check_value)))
    {
      gk_database_rollback (db);
      set_wrong_key_error (self, error);
      return NULL;
    }

  if (!next_store (self, db, new_key, cancellable, error))
    {
      gk_database_rollback (db);
      return NULL;
    }

  if (!reencrypt_rows (db, old_master_key, new_key, error) ||
      !gk_hygiene_mark_master_key_created (db, error) ||
      !gk_audit_record (db, GK_AUDIT_MASTER_KEY_ROTATE, 0, NULL, NULL, error))
    gk_database_rollback (db);
  else if (gk_database_commit (db, error))
    committed = TRUE;
  if (!committed)
    {
      /* The old key still rules; the new one was never used. */
      next_drop (self, db, new_key, NULL, NULL);
      return NULL;
    }
  gk_database_touch (db);

  /* The old key stays where it is (a key file keeps it beside itself). */
  next_promote (self, db, new_key, cancellable);
  return g_steal_pointer (&new_key);
}

/* Private API (gk-secret-store-private.h) */

/* A connection to the Secret Service of the caller's own, not the
 * process's shared one (secret_service_get_sync()): that one caches item
 * objects shared by every thread, which libsecret 0.20 does not keep
 * consistent when another process removes items meanwhile. The calls are
 * rare (unlock, store, rotate), so opening a session each time costs
 * little. */
SecretService *
gk_secret_store_get_service (GCancellable  *cancellable,
                             GError       **error)
{
  g_autoptr(GError) local = NULL;
  SecretService *service = secret_service_open_sync (SECRET_TYPE_SERVICE, NULL,
                                                     SECRET_SERVICE_OPEN_SESSION, cancellable,
                                                     &local);

  if (service == NULL)
    propagate_keyring_error (error, local, cancellable);
  return service;
}

void
gk_secret_store_propagate_error (GError       **error,
                                 GError        *cause,
                                 GCancellable  *cancellable)
{
  propagate_keyring_error (error, cause, cancellable);
}

void
gk_secret_store_set_locked_error (GError **error)
{
  set_locked_error (error);
}

gboolean
gk_secret_store_prepare_collection (GkSecretStore  *self,
                                    SecretService  *service,
                                    GCancellable   *cancellable,
                                    GError        **error)
{
  g_return_val_if_fail (GK_IS_SECRET_STORE (self), FALSE);

  return ensure_default_collection (self, service, cancellable, error);
}

GPtrArray *
gk_secret_store_search (GkSecretStore       *self,
                        SecretService       *service,
                        const SecretSchema  *schema,
                        GHashTable          *attributes,
                        GCancellable        *cancellable,
                        GError             **error)
{
  gboolean locked;

  g_return_val_if_fail (GK_IS_SECRET_STORE (self), NULL);

  return search_unlocking (self, service, schema, attributes, &locked, cancellable, error);
}

gboolean
gk_secret_store_default_collection_locked (SecretService *service,
                                           GCancellable  *cancellable)
{
  return default_collection_locked (service, cancellable);
}
