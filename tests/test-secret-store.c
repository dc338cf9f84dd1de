/* test-secret-store.c: the master key against a real gnome-keyring-daemon
 * (tests/keyring-session.sh) and in master key files.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>
#include <libsecret/secret.h>

#include "gk-core.h"
#include "gk-database-private.h"
#include "gk-secret-store-private.h"
#include "gk-test-util.h"

#define META_CHECK_VALUE "key_check_value"

/* The attributes gk-secret-store.c stores items under; the tests reach
 * into the keyring directly to simulate interrupted rotations. */
static const SecretSchema test_schema = {
  GK_SECRET_SCHEMA_NAME, SECRET_SCHEMA_NONE,
  {
    { "database-uuid", SECRET_SCHEMA_ATTRIBUTE_STRING },
    { "role", SECRET_SCHEMA_ATTRIBUTE_STRING },
    { "check-value", SECRET_SCHEMA_ATTRIBUTE_STRING },
    { "database-file", SECRET_SCHEMA_ATTRIBUTE_STRING },
    { NULL, 0 },
  }
};

typedef struct
{
  char       *dir;
  GkDatabase *db;
} Fixture;

static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkClock) clock = gk_clock_new_fixed (1773576000);
  g_autofree char *path = NULL;

  fixture->dir = g_dir_make_tmp ("gk-secret-XXXXXX", &error);
  g_assert_no_error (error);
  path = g_build_filename (fixture->dir, "keys.db", NULL);
  fixture->db = gk_database_open (path, clock, &error);
  g_assert_no_error (error);
  g_assert_nonnull (fixture->db);
}

static void
remove_tree (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR))
        remove_tree (child);
      else
        g_unlink (child);
    }
  g_rmdir (path);
}

static void
fixture_tear_down (Fixture       *fixture,
                   gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);

  /* Keep the shared test keyring tidy. */
  gk_secret_store_clear (store, gk_database_get_uuid (fixture->db), NULL, NULL);
  secret_password_clear_sync (&test_schema, NULL, NULL,
                              "database-uuid", gk_database_get_uuid (fixture->db),
                              NULL);
  g_assert_finalize_object (fixture->db);
  remove_tree (fixture->dir);
  g_free (fixture->dir);
}

static GBytes *
make_key (guint8 seed)
{
  guint8 key[GK_MASTER_KEY_LEN];

  for (guint i = 0; i < sizeof key; i++)
    key[i] = (guint8) (seed * 31 + i);
  return gk_secure_bytes_new (key, sizeof key);
}

static char *
test_api_key (guint n)
{
  return g_strdup_printf ("AIzaSyTest%025u", n);
}

/* Inserts a key row the way the key store does, with raw SQL so these
 * tests do not depend on it. Returns the row id. */
static gint64
insert_row (GkDatabase *db,
            GBytes     *master_key,
            guint       n)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *uuid = g_uuid_string_random ();
  g_autofree char *api_key = test_api_key (n);
  g_autofree char *name = g_strdup_printf ("key %u", n);
  g_autofree char *fingerprint = gk_crypto_fingerprint (master_key, api_key);
  g_autoptr(GBytes) blob = gk_crypto_encrypt (master_key, uuid, api_key, strlen (api_key), &error);
  GkSqlStmt *stmt;
  gint64 id;

  g_assert_no_error (error);
  gk_database_lock (db);
  stmt = gk_database_prepare (db,
                              "INSERT INTO gemini_api_keys (uuid, name, api_key_encrypted,"
                              " key_fingerprint, key_hint, created_at, updated_at)"
                              " VALUES (?1, ?2, ?3, ?4, ?5, 0, 0) RETURNING id",
                              &error);
  g_assert_no_error (error);
  gk_sql_bind_text (stmt, 1, uuid, -1);
  gk_sql_bind_text (stmt, 2, name, -1);
  gk_sql_bind_blob (stmt, 3, g_bytes_get_data (blob, NULL), (int) g_bytes_get_size (blob));
  gk_sql_bind_text (stmt, 4, fingerprint, -1);
  gk_sql_bind_text (stmt, 5, api_key + strlen (api_key) - 4, -1);
  id = gk_database_step_insert (db, stmt, "insert", &error);
  g_assert_no_error (error);
  gk_database_unlock (db);
  return id;
}

/* Decrypts row @id with @master_key; NULL when it does not decrypt. */
static char *
decrypt_row (GkDatabase *db,
             gint64      id,
             GBytes     *master_key,
             char      **fingerprint_out)
{
  g_autoptr(GBytes) plain = NULL;
  GkSqlStmt *stmt;
  char *result = NULL;

  gk_database_lock (db);
  stmt = gk_database_prepare (db,
                              "SELECT uuid, api_key_encrypted, key_fingerprint"
                              " FROM gemini_api_keys WHERE id = ?1",
                              NULL);
  g_assert_nonnull (stmt);
  gk_sql_bind_int64 (stmt, 1, id);
  g_assert_cmpint (gk_sql_step (stmt), ==, GK_SQL_ROW);
  plain = gk_crypto_decrypt (master_key, gk_sql_column_text (stmt, 0),
                             gk_sql_column_blob (stmt, 1),
                             (gsize) gk_sql_column_bytes (stmt, 1), NULL);
  if (fingerprint_out != NULL)
    *fingerprint_out = g_strdup (gk_sql_column_text (stmt, 2));
  gk_sql_reset (stmt);
  gk_database_unlock (db);

  if (plain != NULL)
    result = g_strdup (g_bytes_get_data (plain, NULL));
  return result;
}

static GBytes *
row_blob (GkDatabase *db,
          gint64      id)
{
  GkSqlStmt *stmt;
  GBytes *blob;

  gk_database_lock (db);
  stmt = gk_database_prepare (db, "SELECT api_key_encrypted FROM gemini_api_keys WHERE id = ?1",
                              NULL);
  gk_sql_bind_int64 (stmt, 1, id);
  g_assert_cmpint (gk_sql_step (stmt), ==, GK_SQL_ROW);
  blob = g_bytes_new (gk_sql_column_blob (stmt, 0), (gsize) gk_sql_column_bytes (stmt, 0));
  gk_sql_reset (stmt);
  gk_database_unlock (db);
  return blob;
}

static void
assert_check_value (GkDatabase *db,
                    GBytes     *master_key)
{
  g_autofree char *stored = gk_database_get_meta (db, META_CHECK_VALUE);
  g_autofree char *expected = master_key ? gk_crypto_check_value (master_key) : NULL;

  g_assert_cmpstr (stored, ==, expected);
}

/* How many items of @db's uuid with @role hold @key (any key when NULL). */
static guint
keyring_count (GkDatabase *db,
               const char *role,
               GBytes     *key)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SecretService) service = secret_service_get_sync (SECRET_SERVICE_OPEN_SESSION, NULL,
                                                              &error);
  g_autoptr(GHashTable) attributes = NULL;
  GList *items;
  guint count = 0;

  g_assert_no_error (error);
  attributes = secret_attributes_build (&test_schema,
                                        "database-uuid", gk_database_get_uuid (db),
                                        "role", role,
                                        NULL);
  items = secret_service_search_sync (service, &test_schema, attributes,
                                      SECRET_SEARCH_ALL | SECRET_SEARCH_LOAD_SECRETS, NULL,
                                      &error);
  g_assert_no_error (error);
  for (GList *l = items; l != NULL; l = l->next)
    {
      SecretValue *value = secret_item_get_secret (l->data);
      gsize len = 0;
      const char *data = secret_value_get (value, &len);

      if (key == NULL
          || (len == g_bytes_get_size (key) && memcmp (data, g_bytes_get_data (key, NULL), len) == 0))
        count++;
      secret_value_unref (value);
    }
  g_list_free_full (items, g_object_unref);
  return count;
}

/* The key of the one item with @role, NULL when there is none. */
static GBytes *
keyring_item (GkDatabase *db,
              const char *role)
{
  g_autoptr(GError) error = NULL;
  SecretValue *value;
  GBytes *bytes = NULL;

  g_assert_cmpuint (keyring_count (db, role, NULL), <=, 1);
  value = secret_password_lookup_binary_sync (&test_schema, NULL, &error,
                                              "database-uuid", gk_database_get_uuid (db),
                                              "role", role,
                                              NULL);
  g_assert_no_error (error);
  if (value != NULL)
    {
      gsize len;
      const char *data = secret_value_get (value, &len);

      bytes = gk_secure_bytes_new (data, len);
      secret_value_unref (value);
    }
  return bytes;
}

static void
store_keyring_item (GkDatabase *db,
                    const char *role,
                    GBytes     *key)
{
  g_autoptr(GError) error = NULL;
  SecretValue *value = secret_value_new (g_bytes_get_data (key, NULL), g_bytes_get_size (key),
                                         "application/octet-stream");

  secret_password_store_binary_sync (&test_schema, SECRET_COLLECTION_DEFAULT, "test item",
                                     value, NULL, &error,
                                     "database-uuid", gk_database_get_uuid (db),
                                     "role", role,
                                     NULL);
  secret_value_unref (value);
  g_assert_no_error (error);
}

/* A "next" item as a rotation of @db_file stores it. */
static void
store_next_item (GkDatabase *db,
                 GBytes     *key,
                 const char *db_file)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *check = gk_crypto_check_value (key);
  SecretValue *value = secret_value_new (g_bytes_get_data (key, NULL), g_bytes_get_size (key),
                                         "application/octet-stream");

  secret_password_store_binary_sync (&test_schema, SECRET_COLLECTION_DEFAULT, "test next item",
                                     value, NULL, &error,
                                     "database-uuid", gk_database_get_uuid (db),
                                     "role", "next",
                                     "check-value", check,
                                     "database-file", db_file,
                                     NULL);
  secret_value_unref (value);
  g_assert_no_error (error);
}

static GBytes *
unlock (GkSecretStore *store,
        GkDatabase    *db)
{
  g_autoptr(GError) error = NULL;
  GBytes *key = gk_secret_store_unlock (store, db, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (key);
  g_assert_cmpuint (g_bytes_get_size (key), ==, GK_MASTER_KEY_LEN);
  return key;
}

static void
assert_unlock_fails (GkSecretStore *store,
                     GkDatabase    *db,
                     GkSecretError  code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) key = gk_secret_store_unlock (store, db, NULL, &error);

  g_assert_error (error, GK_SECRET_ERROR, (gint) code);
  g_assert_null (key);
  g_test_message ("unlock: %s", error->message);
}

static void
test_keyring_round_trip (Fixture       *fixture,
                         gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GBytes) key1 = make_key (1);
  g_autoptr(GBytes) key2 = make_key (2);
  g_autofree char *check1 = gk_crypto_check_value (key1);
  g_autofree char *check2 = gk_crypto_check_value (key2);
  g_autoptr(GBytes) found = NULL;
  g_autoptr(GError) error = NULL;
  const char *uuid = gk_database_get_uuid (fixture->db);

  g_assert_null (gk_secret_store_get_file (store));

  found = gk_secret_store_lookup (store, uuid, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (found);

  g_assert_true (gk_secret_store_store (store, uuid, key1, NULL, &error));
  g_assert_no_error (error);
  found = gk_secret_store_lookup (store, uuid, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (found, key1));
  g_clear_pointer (&found, g_bytes_unref);

  /* Storing the same key again keeps one item; another key gets its own
   * item and never replaces the first, which a copy of the database may
   * still use. Each is found by its check value. */
  g_assert_true (gk_secret_store_store (store, uuid, key1, NULL, &error));
  g_assert_cmpuint (keyring_count (fixture->db, "current", key1), ==, 1);
  g_assert_true (gk_secret_store_store (store, uuid, key2, NULL, &error));
  found = gk_secret_store_lookup (store, uuid, check2, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (found, key2));
  g_clear_pointer (&found, g_bytes_unref);
  found = gk_secret_store_lookup (store, uuid, check1, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (found, key1));
  g_clear_pointer (&found, g_bytes_unref);

  /* Another database's uuid sees nothing. */
  found = gk_secret_store_lookup (store, "00000000-0000-4000-8000-000000000000", NULL, NULL,
                                  &error);
  g_assert_no_error (error);
  g_assert_null (found);

  g_assert_true (gk_secret_store_clear (store, uuid, NULL, &error));
  g_assert_no_error (error);
  found = gk_secret_store_lookup (store, uuid, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (found);

  /* Clearing nothing is fine. */
  g_assert_true (gk_secret_store_clear (store, uuid, NULL, &error));
  g_assert_no_error (error);
}

static void
test_unlock_creates_once (Fixture       *fixture,
                          gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GBytes) first = NULL;
  g_autoptr(GBytes) second = NULL;
  g_autoptr(GBytes) stored = NULL;

  assert_check_value (fixture->db, NULL);
  first = unlock (store, fixture->db);
  assert_check_value (fixture->db, first);
  stored = keyring_item (fixture->db, "current");
  g_assert_true (g_bytes_equal (stored, first));

  second = unlock (store, fixture->db);
  g_assert_true (g_bytes_equal (first, second));
  assert_check_value (fixture->db, first);
}

static void
unlock_done_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  GBytes **out = user_data;
  g_autoptr(GError) error = NULL;

  *out = gk_secret_store_unlock_finish (GK_SECRET_STORE (source), result, &error);
  g_assert_no_error (error);
}

static void
test_unlock_async (Fixture       *fixture,
                   gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GBytes) async_key = NULL;
  g_autoptr(GBytes) sync_key = NULL;

  gk_secret_store_unlock_async (store, fixture->db, NULL, unlock_done_cb, &async_key);
  while (async_key == NULL)
    g_main_context_iteration (NULL, TRUE);

  sync_key = unlock (store, fixture->db);
  g_assert_true (g_bytes_equal (async_key, sync_key));
}

static void
test_unlock_wrong_key (Fixture       *fixture,
                       gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GBytes) right = unlock (store, fixture->db);
  g_autoptr(GBytes) wrong = make_key (7);
  g_autoptr(GBytes) stored = NULL;
  g_autoptr(GBytes) blob_before = NULL;
  g_autoptr(GBytes) blob_after = NULL;
  g_autoptr(GError) error = NULL;
  gint64 id = insert_row (fixture->db, right, 1);

  blob_before = row_blob (fixture->db, id);
  /* The keyring holds only another database's key (of the same uuid). */
  g_assert_true (gk_secret_store_clear (store, gk_database_get_uuid (fixture->db), NULL, &error));
  g_assert_true (gk_secret_store_store (store, gk_database_get_uuid (fixture->db), wrong, NULL,
                                        &error));
  g_assert_no_error (error);

  assert_unlock_fails (store, fixture->db, GK_SECRET_ERROR_WRONG_KEY);

  /* Neither the keyring nor the database changed. */
  stored = keyring_item (fixture->db, "current");
  g_assert_true (g_bytes_equal (stored, wrong));
  assert_check_value (fixture->db, right);
  blob_after = row_blob (fixture->db, id);
  g_assert_true (g_bytes_equal (blob_before, blob_after));
}

static void
test_unlock_missing (Fixture       *fixture,
                     gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GBytes) key = unlock (store, fixture->db);
  g_autoptr(GBytes) stored = NULL;
  g_autoptr(GError) error = NULL;

  insert_row (fixture->db, key, 1);
  insert_row (fixture->db, key, 2);
  g_assert_true (gk_secret_store_clear (store, gk_database_get_uuid (fixture->db), NULL, &error));
  g_assert_no_error (error);

  assert_unlock_fails (store, fixture->db, GK_SECRET_ERROR_MISSING);
  {
    g_autoptr(GBytes) none = gk_secret_store_unlock (store, fixture->db, NULL, &error);

    /* It says what is at stake. */
    g_assert_null (none);
    g_assert_nonnull (strstr (error->message, "holds 2 encrypted keys"));
    g_clear_error (&error);
  }
  /* Still nothing: no new key was made up. */
  stored = keyring_item (fixture->db, "current");
  g_assert_null (stored);
  assert_check_value (fixture->db, key);
}

static void
test_unlock_missing_without_check_value (Fixture       *fixture,
                                         gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GBytes) lost = make_key (9);
  g_autoptr(GBytes) stored = NULL;

  /* Ciphertext from a key the keyring never held, and no check value. */
  insert_row (fixture->db, lost, 1);
  assert_unlock_fails (store, fixture->db, GK_SECRET_ERROR_MISSING);
  stored = keyring_item (fixture->db, "current");
  g_assert_null (stored);
  assert_check_value (fixture->db, NULL);
}

static void
test_unlock_adopts_key_without_check_value (Fixture       *fixture,
                                            gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GBytes) key = make_key (3);
  g_autoptr(GBytes) other = make_key (4);
  g_autoptr(GBytes) unlocked = NULL;
  g_autoptr(GError) error = NULL;
  const char *uuid = gk_database_get_uuid (fixture->db);

  insert_row (fixture->db, key, 1);

  /* A key that does not decrypt the stored row is refused... */
  g_assert_true (gk_secret_store_store (store, uuid, other, NULL, &error));
  assert_unlock_fails (store, fixture->db, GK_SECRET_ERROR_WRONG_KEY);
  assert_check_value (fixture->db, NULL);

  /* ...the right one is taken and gets its check value. */
  g_assert_true (gk_secret_store_store (store, uuid, key, NULL, &error));
  unlocked = unlock (store, fixture->db);
  g_assert_true (g_bytes_equal (unlocked, key));
  assert_check_value (fixture->db, key);
}

static void
test_unlock_no_service (Fixture       *fixture,
                        gconstpointer  data)
{
  if (g_test_subprocess ())
    {
      g_autoptr(GkSecretStore) store = NULL;
      g_autoptr(GBytes) key = make_key (5);
      g_autoptr(GError) error = NULL;
      g_autoptr(GBytes) found = NULL;

      /* A session bus that is not there. */
      g_setenv ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/gk-test-bus", TRUE);
      store = gk_secret_store_new_for_file (NULL);

      found = gk_secret_store_lookup (store, gk_database_get_uuid (fixture->db), NULL, NULL,
                                      &error);
      g_assert_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_NO_SERVICE);
      g_assert_null (found);
      g_clear_error (&error);

      /* An empty database gets no key it could not store. */
      assert_unlock_fails (store, fixture->db, GK_SECRET_ERROR_NO_SERVICE);
      assert_check_value (fixture->db, NULL);

      /* With ciphertext: the same error, still nothing created. */
      insert_row (fixture->db, key, 1);
      assert_unlock_fails (store, fixture->db, GK_SECRET_ERROR_NO_SERVICE);
      assert_check_value (fixture->db, NULL);
      return;
    }

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

typedef struct
{
  GkSecretStore *store;
  GkDatabase    *db;
} UnlockJob;

static gpointer
unlock_in_thread (gpointer data)
{
  UnlockJob *job = data;
  g_autoptr(GError) error = NULL;
  GBytes *key = gk_secret_store_unlock (job->store, job->db, NULL, &error);

  g_assert_no_error (error);
  return key;
}

/* Rounds of the first-run race: one round loses the race only now and
 * then (another process's key moving into place while this one reads the
 * keyring), so a single round would let a regression pass. */
#define FIRST_RUN_RACE_ROUNDS 10

static void
test_unlock_first_run_race (Fixture       *fixture,
                            gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);

  for (guint round = 0; round < FIRST_RUN_RACE_ROUNDS; round++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *name = g_strdup_printf ("race-%u.db", round);
      g_autofree char *path = g_build_filename (fixture->dir, name, NULL);
      g_autoptr(GkDatabase) db = gk_database_open (path, NULL, &error);
      g_autoptr(GkDatabase) other = gk_database_open (path, NULL, &error);
      UnlockJob jobs[2] = { { store, db }, { store, other } };
      g_autoptr(GBytes) key_a = NULL;
      g_autoptr(GBytes) key_b = NULL;
      g_autoptr(GBytes) stored = NULL;
      GThread *threads[2];

      g_assert_no_error (error);

      /* Two connections (as two processes) starting on an empty database
       * at once must end up with one key, not each its own. */
      for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
        threads[i] = g_thread_new ("unlock", unlock_in_thread, &jobs[i]);
      key_a = g_thread_join (threads[0]);
      key_b = g_thread_join (threads[1]);

      g_assert_nonnull (key_a);
      g_assert_true (g_bytes_equal (key_a, key_b));
      stored = keyring_item (db, "current");
      g_assert_true (g_bytes_equal (stored, key_a));
      assert_check_value (db, key_a);
      assert_check_value (other, key_a);

      gk_secret_store_clear (store, gk_database_get_uuid (db), NULL, &error);
      g_assert_no_error (error);
    }
}

/* Another process moves its new key into place: "current" stored, "next"
 * removed. */
static void
promote_next (gpointer store,
              gpointer data)
{
  GkDatabase *db = data;
  g_autoptr(GBytes) next = keyring_item (db, "next");

  store_keyring_item (db, "current", next);
  g_assert_true (secret_password_clear_sync (&test_schema, NULL, NULL,
                                             "database-uuid", gk_database_get_uuid (db),
                                             "role", "next",
                                             NULL));
}

/* Another process committed its first key and is moving it from "next" to
 * "current" while this one reads the keyring: the "next" item found by the
 * search is gone when its secret is read, and "current" was not there yet.
 * The key must be found on a second look, not taken for lost and replaced. */
static void
test_unlock_key_moving_into_place (Fixture       *fixture,
                                   gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GBytes) theirs = make_key (7);
  g_autofree char *check = gk_crypto_check_value (theirs);
  g_autoptr(GBytes) key = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (gk_database_set_meta (fixture->db, META_CHECK_VALUE, check, &error));
  g_assert_no_error (error);
  store_next_item (fixture->db, theirs, gk_database_get_path (fixture->db));
  gk_secret_store_set_search_hook (store, promote_next, fixture->db);

  key = unlock (store, fixture->db);
  g_assert_true (g_bytes_equal (key, theirs));
  assert_check_value (fixture->db, theirs);
}

static char *
file_in (Fixture    *fixture,
         const char *name)
{
  return g_build_filename (fixture->dir, name, NULL);
}

static guint
file_mode (const char *path)
{
  struct stat st;

  g_assert_cmpint (g_stat (path, &st), ==, 0);
  return st.st_mode & 0777;
}

#define ROTATION_FINISHED "Finished a master key rotation that was interrupted"

static void
capture_message (const char     *domain,
                 GLogLevelFlags  level,
                 const char     *message,
                 gpointer        data)
{
  g_ptr_array_add (data, g_strdup (message));
}

/* unlock(), and whether it said @message (g_message). */
static GBytes *
unlock_saying (GkSecretStore *store,
               GkDatabase    *db,
               const char    *message,
               gboolean      *said)
{
  g_autoptr(GPtrArray) messages = g_ptr_array_new_with_free_func (g_free);
  guint handler = g_log_set_handler (NULL, G_LOG_LEVEL_MESSAGE, capture_message, messages);
  GBytes *key = unlock (store, db);

  g_log_remove_handler (NULL, handler);
  *said = g_ptr_array_find_with_equal_func (messages, message, g_str_equal, NULL);
  return key;
}

/* Another process's first start committed its new key and is moving it
 * from "next" into place (or died doing so) when this one starts: this one
 * finishes the move and uses the key, without a word of a rotation, since
 * none happened. (An interrupted rotation is told: see
 * test_rotate_interrupted_after_commit.) */
static void
test_unlock_finishes_first_start (Fixture       *fixture,
                                  gconstpointer  data)
{
  gboolean with_file = GPOINTER_TO_INT (data);
  g_autofree char *path = file_in (fixture, "master.key");
  g_autofree char *next_path = g_strconcat (path, ".next", NULL);
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (with_file ? path : NULL);
  g_autoptr(GBytes) theirs = make_key (9);
  g_autofree char *check = gk_crypto_check_value (theirs);
  g_autoptr(GBytes) key = NULL;
  g_autoptr(GBytes) in_place = NULL;
  g_autoptr(GError) error = NULL;
  gboolean said;

  g_assert_true (gk_database_set_meta (fixture->db, META_CHECK_VALUE, check, &error));
  g_assert_no_error (error);
  if (with_file)
    g_assert_true (gk_secret_store_export_file (store, theirs, next_path, &error));
  else
    store_next_item (fixture->db, theirs, gk_database_get_path (fixture->db));
  g_assert_no_error (error);

  key = unlock_saying (store, fixture->db, ROTATION_FINISHED, &said);
  g_assert_true (g_bytes_equal (key, theirs));
  g_assert_false (said);
  if (with_file)
    {
      in_place = gk_secret_store_read_key_file (path, &error);
      g_assert_no_error (error);
      g_assert_false (g_file_test (next_path, G_FILE_TEST_EXISTS));
    }
  else
    {
      in_place = keyring_item (fixture->db, "current");
      g_assert_null (keyring_item (fixture->db, "next"));
    }
  g_assert_true (g_bytes_equal (in_place, theirs));
}

static void
test_file_mode (Fixture       *fixture,
                gconstpointer  data)
{
  g_autofree char *path = file_in (fixture, "sub/master.key");
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (path);
  g_autoptr(GBytes) key = NULL;
  g_autoptr(GBytes) again = NULL;
  g_autoptr(GBytes) read = NULL;
  g_autoptr(GBytes) in_keyring = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;

  g_assert_cmpstr (gk_secret_store_get_file (store), ==, path);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));

  key = unlock (store, fixture->db);
  g_assert_cmpuint (file_mode (path), ==, 0600);
  assert_check_value (fixture->db, key);
  /* The file replaces the keyring: nothing went there. */
  in_keyring = keyring_item (fixture->db, "current");
  g_assert_null (in_keyring);

  g_assert_true (g_file_get_contents (path, &contents, NULL, NULL));
  g_assert_cmpuint (strlen (contents), ==, 45);
  g_assert_cmpint (contents[44], ==, '\n');

  read = gk_secret_store_read_key_file (path, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (read, key));

  again = unlock (store, fixture->db);
  g_assert_true (g_bytes_equal (again, key));

  /* A key others can read is not used. */
  g_assert_cmpint (g_chmod (path, 0644), ==, 0);
  assert_unlock_fails (store, fixture->db, GK_SECRET_ERROR_FILE);
  g_clear_pointer (&read, g_bytes_unref);
  read = gk_secret_store_read_key_file (path, &error);
  g_assert_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FILE);
  g_assert_nonnull (strstr (error->message, "chmod 600"));
  g_assert_null (read);
  g_clear_error (&error);

  g_assert_cmpint (g_chmod (path, 0640), ==, 0);
  assert_unlock_fails (store, fixture->db, GK_SECRET_ERROR_FILE);

  g_assert_cmpint (g_chmod (path, 0600), ==, 0);
  g_clear_pointer (&again, g_bytes_unref);
  again = unlock (store, fixture->db);
  g_assert_true (g_bytes_equal (again, key));
}

static void
test_file_missing (Fixture       *fixture,
                   gconstpointer  data)
{
  g_autofree char *path = file_in (fixture, "master.key");
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (path);
  g_autoptr(GBytes) key = unlock (store, fixture->db);

  insert_row (fixture->db, key, 1);
  g_assert_cmpint (g_unlink (path), ==, 0);
  assert_unlock_fails (store, fixture->db, GK_SECRET_ERROR_MISSING);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
}

static void
test_file_formats (Fixture       *fixture,
                   gconstpointer  data)
{
  g_autofree char *raw_path = file_in (fixture, "raw.key");
  g_autofree char *bad_path = file_in (fixture, "bad.key");
  g_autofree char *short_path = file_in (fixture, "short.key");
  g_autofree char *none_path = file_in (fixture, "none.key");
  g_autoptr(GBytes) key = make_key (11);
  g_autoptr(GBytes) read = NULL;
  g_autoptr(GError) error = NULL;

  /* 32 raw bytes are accepted too. */
  g_assert_true (g_file_set_contents_full (raw_path, g_bytes_get_data (key, NULL),
                                           GK_MASTER_KEY_LEN, G_FILE_SET_CONTENTS_NONE, 0600,
                                           &error));
  read = gk_secret_store_read_key_file (raw_path, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (read, key));
  g_clear_pointer (&read, g_bytes_unref);

  g_assert_true (g_file_set_contents_full (bad_path, "not a key\n", -1,
                                           G_FILE_SET_CONTENTS_NONE, 0600, &error));
  read = gk_secret_store_read_key_file (bad_path, &error);
  g_assert_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FILE);
  g_assert_null (read);
  g_clear_error (&error);

  /* Valid base64 of 16 bytes is still not a master key. */
  g_assert_true (g_file_set_contents_full (short_path, "AAAAAAAAAAAAAAAAAAAAAA==\n", -1,
                                           G_FILE_SET_CONTENTS_NONE, 0600, &error));
  read = gk_secret_store_read_key_file (short_path, &error);
  g_assert_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FILE);
  g_clear_error (&error);

  read = gk_secret_store_read_key_file (none_path, &error);
  g_assert_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FILE);
  g_assert_null (read);
}

static void
test_file_env (void)
{
  g_autoptr(GkSecretStore) with_file = NULL;
  g_autoptr(GkSecretStore) without = NULL;
  g_autoptr(GkSecretStore) empty = NULL;

  g_setenv (GK_MASTER_KEY_FILE_ENV, "/some/where/master.key", TRUE);
  with_file = gk_secret_store_new ();
  g_assert_cmpstr (gk_secret_store_get_file (with_file), ==, "/some/where/master.key");

  g_setenv (GK_MASTER_KEY_FILE_ENV, "", TRUE);
  empty = gk_secret_store_new ();
  g_assert_null (gk_secret_store_get_file (empty));

  g_unsetenv (GK_MASTER_KEY_FILE_ENV);
  without = gk_secret_store_new ();
  g_assert_null (gk_secret_store_get_file (without));
}

static void
test_export_import (Fixture       *fixture,
                    gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GBytes) key = unlock (store, fixture->db);
  g_autoptr(GBytes) other = make_key (12);
  g_autoptr(GBytes) unlocked = NULL;
  g_autoptr(GBytes) stored = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = file_in (fixture, "export.key");
  g_autofree char *other_path = file_in (fixture, "other.key");
  g_autofree char *plain = NULL;
  const char *uuid = gk_database_get_uuid (fixture->db);
  gint64 id = insert_row (fixture->db, key, 1);

  g_assert_true (gk_secret_store_export_file (store, key, path, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (file_mode (path), ==, 0600);

  /* The keyring loses the key; the database needs it. */
  g_assert_true (gk_secret_store_clear (store, uuid, NULL, &error));
  assert_unlock_fails (store, fixture->db, GK_SECRET_ERROR_MISSING);

  /* A key from elsewhere is refused and not stored. */
  g_assert_true (gk_secret_store_export_file (store, other, other_path, &error));
  g_assert_false (gk_secret_store_import_file (store, fixture->db, other_path, &error));
  g_assert_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_WRONG_KEY);
  g_clear_error (&error);
  stored = keyring_item (fixture->db, "current");
  g_assert_null (stored);

  /* A key file others can read is refused. */
  g_assert_cmpint (g_chmod (path, 0644), ==, 0);
  g_assert_false (gk_secret_store_import_file (store, fixture->db, path, &error));
  g_assert_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_FILE);
  g_clear_error (&error);
  g_assert_cmpint (g_chmod (path, 0600), ==, 0);

  g_assert_true (gk_secret_store_import_file (store, fixture->db, path, &error));
  g_assert_no_error (error);
  unlocked = unlock (store, fixture->db);
  g_assert_true (g_bytes_equal (unlocked, key));
  plain = decrypt_row (fixture->db, id, unlocked, NULL);
  g_assert_nonnull (plain);
}

static void
test_import_into_file_store (Fixture       *fixture,
                             gconstpointer  data)
{
  g_autoptr(GkSecretStore) keyring = gk_secret_store_new_for_file (NULL);
  g_autoptr(GBytes) key = unlock (keyring, fixture->db);
  g_autofree char *exported = file_in (fixture, "export.key");
  g_autofree char *headless_path = file_in (fixture, "headless.key");
  g_autoptr(GkSecretStore) headless = gk_secret_store_new_for_file (headless_path);
  g_autoptr(GBytes) unlocked = NULL;
  g_autoptr(GError) error = NULL;

  insert_row (fixture->db, key, 1);
  g_assert_true (gk_secret_store_export_file (keyring, key, exported, &error));

  /* Moving to a headless machine: import into the key file. */
  assert_unlock_fails (headless, fixture->db, GK_SECRET_ERROR_MISSING);
  g_assert_true (gk_secret_store_import_file (headless, fixture->db, exported, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (file_mode (headless_path), ==, 0600);
  unlocked = unlock (headless, fixture->db);
  g_assert_true (g_bytes_equal (unlocked, key));
}

static void
check_rotated (GkDatabase *db,
               gint64     *ids,
               guint       n_ids,
               GBytes     *old_key,
               GBytes     *new_key)
{
  for (guint i = 0; i < n_ids; i++)
    {
      g_autofree char *expected = test_api_key (i + 1);
      g_autofree char *with_old = decrypt_row (db, ids[i], old_key, NULL);
      g_autofree char *fingerprint = NULL;
      g_autofree char *with_new = decrypt_row (db, ids[i], new_key, &fingerprint);
      g_autofree char *expected_fp = gk_crypto_fingerprint (new_key, expected);

      g_assert_null (with_old);
      g_assert_cmpstr (with_new, ==, expected);
      g_assert_cmpstr (fingerprint, ==, expected_fp);
    }
  assert_check_value (db, new_key);
}

static void
test_rotate (Fixture       *fixture,
             gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GBytes) old_key = unlock (store, fixture->db);
  g_autoptr(GBytes) new_key = NULL;
  g_autoptr(GBytes) current = NULL;
  g_autoptr(GBytes) next = NULL;
  g_autoptr(GBytes) unlocked = NULL;
  g_autoptr(GError) error = NULL;
  gint64 ids[3];

  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    ids[i] = insert_row (fixture->db, old_key, i + 1);

  new_key = gk_secret_store_rotate_master_key (store, fixture->db, old_key, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (new_key);
  g_assert_false (g_bytes_equal (new_key, old_key));

  check_rotated (fixture->db, ids, G_N_ELEMENTS (ids), old_key, new_key);
  g_assert_cmpuint (keyring_count (fixture->db, "current", new_key), ==, 1);
  /* The old key stays: copies and backups of the database still need it. */
  g_assert_cmpuint (keyring_count (fixture->db, "current", old_key), ==, 1);
  next = keyring_item (fixture->db, "next");
  g_assert_null (next);

  unlocked = unlock (store, fixture->db);
  g_assert_true (g_bytes_equal (unlocked, new_key));

  /* The old key is now the wrong one. */
  g_clear_pointer (&unlocked, g_bytes_unref);
  unlocked = gk_secret_store_rotate_master_key (store, fixture->db, old_key, NULL, &error);
  g_assert_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_WRONG_KEY);
  g_assert_null (unlocked);
  check_rotated (fixture->db, ids, G_N_ELEMENTS (ids), old_key, new_key);
}

static void
test_rotate_interrupted_before_commit (Fixture       *fixture,
                                       gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GBytes) old_key = unlock (store, fixture->db);
  g_autoptr(GBytes) pending = make_key (21);
  g_autoptr(GBytes) unlocked = NULL;
  g_autoptr(GBytes) next = NULL;
  g_autofree char *plain = NULL;
  gint64 id = insert_row (fixture->db, old_key, 1);

  /* The new key reached the keyring, the transaction never committed. */
  store_keyring_item (fixture->db, "next", pending);

  unlocked = unlock (store, fixture->db);
  g_assert_true (g_bytes_equal (unlocked, old_key));
  plain = decrypt_row (fixture->db, id, unlocked, NULL);
  g_assert_nonnull (plain);
  assert_check_value (fixture->db, old_key);
  /* The unused key of a rotation that never committed is removed. */
  next = keyring_item (fixture->db, "next");
  g_assert_null (next);
}

static void
test_rotate_interrupted_after_commit (Fixture       *fixture,
                                      gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GBytes) old_key = unlock (store, fixture->db);
  g_autoptr(GBytes) new_key = NULL;
  g_autoptr(GBytes) unlocked = NULL;
  g_autoptr(GBytes) current = NULL;
  g_autoptr(GBytes) next = NULL;
  g_autoptr(GError) error = NULL;
  gboolean said;
  gint64 ids[2];

  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    ids[i] = insert_row (fixture->db, old_key, i + 1);
  new_key = gk_secret_store_rotate_master_key (store, fixture->db, old_key, NULL, &error);
  g_assert_no_error (error);

  /* As if the process died after the commit, before storing the new key
   * as "current": the old one current, the new one "next". */
  g_assert_true (gk_secret_store_clear (store, gk_database_get_uuid (fixture->db), NULL, &error));
  g_assert_true (gk_secret_store_store (store, gk_database_get_uuid (fixture->db), old_key, NULL,
                                        &error));
  store_next_item (fixture->db, new_key, gk_database_get_path (fixture->db));

  unlocked = unlock_saying (store, fixture->db, ROTATION_FINISHED, &said);
  g_assert_true (g_bytes_equal (unlocked, new_key));
  g_assert_true (said);
  check_rotated (fixture->db, ids, G_N_ELEMENTS (ids), old_key, unlocked);
  /* The rotation was finished on the way. */
  g_assert_cmpuint (keyring_count (fixture->db, "current", new_key), ==, 1);
  g_assert_cmpuint (keyring_count (fixture->db, "current", old_key), ==, 1);
  next = keyring_item (fixture->db, "next");
  g_assert_null (next);

  /* A key stored twice (and once more from before check values) is kept
   * once. */
  store_keyring_item (fixture->db, "current", new_key);
  g_assert_true (gk_secret_store_store (store, gk_database_get_uuid (fixture->db), new_key, NULL,
                                        &error));
  g_clear_pointer (&unlocked, g_bytes_unref);
  unlocked = unlock (store, fixture->db);
  g_assert_true (g_bytes_equal (unlocked, new_key));
  g_assert_cmpuint (keyring_count (fixture->db, "current", new_key), ==, 1);
}

static void
test_rotate_corrupt_row (Fixture       *fixture,
                         gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GBytes) old_key = unlock (store, fixture->db);
  g_autoptr(GBytes) stranger = make_key (30);
  g_autoptr(GBytes) new_key = NULL;
  g_autoptr(GBytes) good_before = NULL;
  g_autoptr(GBytes) good_after = NULL;
  g_autoptr(GBytes) current = NULL;
  g_autoptr(GBytes) next = NULL;
  g_autoptr(GError) error = NULL;
  gint64 good = insert_row (fixture->db, old_key, 1);

  /* A row that does not decrypt stops the rotation before any change. */
  insert_row (fixture->db, stranger, 2);
  good_before = row_blob (fixture->db, good);

  new_key = gk_secret_store_rotate_master_key (store, fixture->db, old_key, NULL, &error);
  g_assert_error (error, GK_CRYPTO_ERROR, GK_CRYPTO_ERROR_AUTH);
  g_assert_null (new_key);

  good_after = row_blob (fixture->db, good);
  g_assert_true (g_bytes_equal (good_before, good_after));
  assert_check_value (fixture->db, old_key);
  current = keyring_item (fixture->db, "current");
  g_assert_true (g_bytes_equal (current, old_key));
  next = keyring_item (fixture->db, "next");
  g_assert_null (next);
}

static void
test_rotate_file (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autofree char *path = file_in (fixture, "master.key");
  g_autofree char *next_path = g_strconcat (path, ".next", NULL);
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (path);
  g_autoptr(GBytes) old_key = unlock (store, fixture->db);
  g_autoptr(GBytes) new_key = NULL;
  g_autoptr(GBytes) on_disk = NULL;
  g_autoptr(GBytes) unlocked = NULL;
  g_autoptr(GError) error = NULL;
  gboolean said;
  gint64 ids[2];

  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    ids[i] = insert_row (fixture->db, old_key, i + 1);

  new_key = gk_secret_store_rotate_master_key (store, fixture->db, old_key, NULL, &error);
  g_assert_no_error (error);
  check_rotated (fixture->db, ids, G_N_ELEMENTS (ids), old_key, new_key);
  on_disk = gk_secret_store_read_key_file (path, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (on_disk, new_key));
  g_assert_cmpuint (file_mode (path), ==, 0600);
  g_assert_false (g_file_test (next_path, G_FILE_TEST_EXISTS));

  /* Interrupted after the commit: the old key in place, the new as next. */
  g_assert_true (gk_secret_store_export_file (store, old_key, path, &error));
  g_assert_true (gk_secret_store_export_file (store, new_key, next_path, &error));
  unlocked = unlock_saying (store, fixture->db, ROTATION_FINISHED, &said);
  g_assert_true (g_bytes_equal (unlocked, new_key));
  g_assert_true (said);
  g_clear_pointer (&on_disk, g_bytes_unref);
  on_disk = gk_secret_store_read_key_file (path, &error);
  g_assert_true (g_bytes_equal (on_disk, new_key));
  g_assert_false (g_file_test (next_path, G_FILE_TEST_EXISTS));
}

/* A consistent copy of the database file, as a backup or a staging copy
 * is made: same uuid, same rows, same check value. */
static GkDatabase *
copy_database (Fixture    *fixture,
               const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = file_in (fixture, name);
  g_autofree char *sql = g_strdup_printf ("VACUUM INTO '%s'", path);
  GkDatabase *copy;

  g_assert_true (gk_database_exec (fixture->db, sql, &error));
  g_assert_no_error (error);
  copy = gk_database_open (path, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (gk_database_get_uuid (copy), ==, gk_database_get_uuid (fixture->db));
  return copy;
}

/* Every row of @db decrypts to its key with the key @store unlocks. */
static void
assert_opens (GkSecretStore *store,
              GkDatabase    *db,
              gint64        *ids,
              guint          n_ids)
{
  g_autoptr(GBytes) key = unlock (store, db);

  for (guint i = 0; i < n_ids; i++)
    {
      g_autofree char *expected = test_api_key (i + 1);
      g_autofree char *plain = decrypt_row (db, ids[i], key, NULL);

      g_assert_cmpstr (plain, ==, expected);
    }
  assert_check_value (db, key);
}

static void
rotate_with (GkSecretStore *store,
             GkDatabase    *db)
{
  g_autoptr(GBytes) key = unlock (store, db);
  g_autoptr(GBytes) new_key = NULL;
  g_autoptr(GError) error = NULL;

  new_key = gk_secret_store_rotate_master_key (store, db, key, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (new_key);
}

/* Rotating the master key of a copy (a restored backup, a staging copy:
 * same uuid) never makes the original unreadable, nor the other way round,
 * in the keyring or with one shared master key file. */
static void
test_rotate_copy (Fixture       *fixture,
                  gconstpointer  data)
{
  gboolean with_file = GPOINTER_TO_INT (data);
  g_autofree char *path = file_in (fixture, "master.key");
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (with_file ? path : NULL);
  g_autoptr(GBytes) key = unlock (store, fixture->db);
  g_autoptr(GkDatabase) copy = NULL;
  g_autoptr(GkDatabase) copy2 = NULL;
  gint64 ids[3];

  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    ids[i] = insert_row (fixture->db, key, i + 1);
  copy = copy_database (fixture, "copy.db");
  copy2 = copy_database (fixture, "copy2.db");

  /* The copy rotates: both open. */
  rotate_with (store, copy);
  assert_opens (store, copy, ids, G_N_ELEMENTS (ids));
  assert_opens (store, fixture->db, ids, G_N_ELEMENTS (ids));

  /* The original rotates: all three open. */
  rotate_with (store, fixture->db);
  assert_opens (store, fixture->db, ids, G_N_ELEMENTS (ids));
  assert_opens (store, copy, ids, G_N_ELEMENTS (ids));
  assert_opens (store, copy2, ids, G_N_ELEMENTS (ids));

  /* And once more each, in turn. */
  rotate_with (store, copy);
  rotate_with (store, copy2);
  assert_opens (store, fixture->db, ids, G_N_ELEMENTS (ids));
  assert_opens (store, copy, ids, G_N_ELEMENTS (ids));
  assert_opens (store, copy2, ids, G_N_ELEMENTS (ids));

  if (with_file)
    {
      /* The file holds the key of the last rotation; the others are kept
       * beside it, named by their check value. */
      g_autoptr(GBytes) in_file = gk_secret_store_read_key_file (path, NULL);
      g_autoptr(GBytes) copy2_key = unlock (store, copy2);

      g_assert_true (g_bytes_equal (in_file, copy2_key));
    }
}

/* A "next" item another database file (a copy) stored is not touched: that
 * rotation may still be running, or its database may already use the key. */
static void
test_rotate_leftover_of_copy_kept (Fixture       *fixture,
                                   gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GBytes) key = unlock (store, fixture->db);
  g_autoptr(GBytes) theirs = make_key (40);
  g_autoptr(GBytes) ours = make_key (41);
  g_autoptr(GBytes) unlocked = NULL;
  g_autofree char *other_path = file_in (fixture, "elsewhere.db");

  insert_row (fixture->db, key, 1);
  store_next_item (fixture->db, theirs, other_path);
  store_next_item (fixture->db, ours, gk_database_get_path (fixture->db));

  unlocked = unlock (store, fixture->db);
  g_assert_true (g_bytes_equal (unlocked, key));
  g_assert_cmpuint (keyring_count (fixture->db, "next", theirs), ==, 1);
  g_assert_cmpuint (keyring_count (fixture->db, "next", ours), ==, 0);
}

/* The leftovers of a rotation killed with a master key file: a ".next"
 * file that was never committed goes, one that was is put in place. */
static void
test_rotate_file_leftovers (Fixture       *fixture,
                            gconstpointer  data)
{
  g_autofree char *path = file_in (fixture, "master.key");
  g_autofree char *next_path = g_strconcat (path, ".next", NULL);
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (path);
  g_autoptr(GBytes) key = unlock (store, fixture->db);
  g_autoptr(GBytes) unused = make_key (42);
  g_autoptr(GBytes) unlocked = NULL;
  g_autoptr(GError) error = NULL;

  insert_row (fixture->db, key, 1);
  g_assert_true (gk_secret_store_export_file (store, unused, next_path, &error));
  unlocked = unlock (store, fixture->db);
  g_assert_true (g_bytes_equal (unlocked, key));
  g_assert_false (g_file_test (next_path, G_FILE_TEST_EXISTS));
}

/* A database whose every key was deleted takes a new master key when its
 * old one is lost; its history stays. */
static void
test_unlock_new_key_without_ciphertext (Fixture       *fixture,
                                        gconstpointer  data)
{
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GBytes) lost = unlock (store, fixture->db);
  g_autoptr(GBytes) fresh = NULL;
  g_autoptr(GBytes) again = NULL;
  g_autoptr(GError) error = NULL;
  gint64 id = insert_row (fixture->db, lost, 1);
  g_autofree char *sql = g_strdup_printf (
    "INSERT INTO gemini_key_usage_log (key_id, model, tokens_used, status, created_at)"
    " VALUES (%" G_GINT64_FORMAT ", 'gemini-2.5-flash', 10, 'SUCCESS', 0);"
    "UPDATE gemini_api_keys SET api_key_encrypted = NULL, key_fingerprint = NULL,"
    " deleted_at = 1 WHERE id = %" G_GINT64_FORMAT,
    id, id);

  g_assert_true (gk_database_exec (fixture->db, sql, &error));
  g_assert_no_error (error);
  g_assert_true (gk_secret_store_clear (store, gk_database_get_uuid (fixture->db), NULL, &error));

  fresh = unlock (store, fixture->db);
  g_assert_false (g_bytes_equal (fresh, lost));
  assert_check_value (fixture->db, fresh);
  again = unlock (store, fixture->db);
  g_assert_true (g_bytes_equal (again, fresh));

  {
    GkSqlStmt *stmt;

    gk_database_lock (fixture->db);
    stmt = gk_database_prepare (fixture->db,
                                "SELECT COUNT(*) FROM gemini_key_usage_log", NULL);
    g_assert_cmpint (gk_sql_step (stmt), ==, GK_SQL_ROW);
    g_assert_cmpint (gk_sql_column_int64 (stmt, 0), ==, 1);
    gk_sql_reset (stmt);
    gk_database_unlock (fixture->db);
  }
}

/* export refuses to replace a file unless forced; importing into a master
 * key file that holds another key likewise, and a forced import keeps the
 * key it replaces. */
static void
test_export_import_force (Fixture       *fixture,
                          gconstpointer  data)
{
  g_autofree char *exported = file_in (fixture, "export.key");
  g_autofree char *headless_path = file_in (fixture, "headless.key");
  g_autoptr(GkSecretStore) keyring = gk_secret_store_new_for_file (NULL);
  g_autoptr(GkSecretStore) headless = gk_secret_store_new_for_file (headless_path);
  g_autoptr(GBytes) key = unlock (keyring, fixture->db);
  g_autoptr(GBytes) other = make_key (43);
  g_autoptr(GBytes) read = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *other_check = gk_crypto_check_value (other);
  g_autofree char *kept = g_strdup_printf ("%s.%.16s", headless_path, other_check);

  insert_row (fixture->db, key, 1);
  g_assert_true (gk_secret_store_export_file_full (keyring, other, exported, FALSE, &error));
  g_assert_false (gk_secret_store_export_file_full (keyring, key, exported, FALSE, &error));
  g_assert_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_EXISTS);
  g_clear_error (&error);
  read = gk_secret_store_read_key_file (exported, &error);
  g_assert_true (g_bytes_equal (read, other));
  g_clear_pointer (&read, g_bytes_unref);

  /* The headless file holds another key. */
  g_assert_true (gk_secret_store_export_file_full (keyring, other, headless_path, FALSE, &error));
  g_assert_true (gk_secret_store_export_file_full (keyring, key, exported, TRUE, &error));
  g_assert_false (gk_secret_store_import_file_full (headless, fixture->db, exported, FALSE,
                                                    &error));
  g_assert_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_EXISTS);
  g_clear_error (&error);
  read = gk_secret_store_read_key_file (headless_path, &error);
  g_assert_true (g_bytes_equal (read, other));
  g_clear_pointer (&read, g_bytes_unref);

  g_assert_true (gk_secret_store_import_file_full (headless, fixture->db, exported, TRUE,
                                                   &error));
  g_assert_no_error (error);
  g_assert_cmpuint (file_mode (headless_path), ==, 0600);
  read = gk_secret_store_read_key_file (headless_path, &error);
  g_assert_true (g_bytes_equal (read, key));
  g_clear_pointer (&read, g_bytes_unref);
  read = gk_secret_store_read_key_file (kept, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (read, other));

  /* Importing the key the file already holds is fine without --force. */
  g_assert_true (gk_secret_store_import_file_full (headless, fixture->db, exported, FALSE,
                                                   &error));
  g_assert_no_error (error);
}

/* Prompts: a keyring service without a default keyring (started without
 * --login), in a private D-Bus session, whose prompts are shown by a fake
 * system prompter that opens them and never answers, as a user looking at
 * the prompt would. The test ends the wait by killing the prompter (the
 * prompt is dismissed) or the keyring service (it went away). */

/* Generous: the machine running the suite may be loaded. */
#define PROMPT_WAIT_S        60

typedef struct
{
  GkSecretStore *store;
  GkDatabase    *db;
  GMutex         mutex;
  GCond          cond;
  gboolean       done;
  GBytes        *key;
  GError        *error;
} PromptJob;

static gpointer
prompt_job_run (gpointer data)
{
  PromptJob *job = data;
  GError *error = NULL;
  GBytes *key = gk_secret_store_unlock (job->store, job->db, NULL, &error);

  g_mutex_lock (&job->mutex);
  job->key = key;
  job->error = error;
  job->done = TRUE;
  g_cond_signal (&job->cond);
  g_mutex_unlock (&job->mutex);
  return NULL;
}

/* Waits until @job is done or @seconds passed; TRUE when done. */
static gboolean
prompt_job_wait (PromptJob *job,
                 int        seconds)
{
  gint64 deadline = g_get_monotonic_time () + seconds * G_TIME_SPAN_SECOND;
  gboolean done;

  g_mutex_lock (&job->mutex);
  while (!job->done && g_cond_wait_until (&job->cond, &job->mutex, deadline))
    ;
  done = job->done;
  g_mutex_unlock (&job->mutex);
  return done;
}

static void
prompt_scenario (gboolean kill_service)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("gk-prompt-XXXXXX", &error);
  g_autofree char *flag = g_build_filename (dir, "prompting", NULL);
  g_autofree char *path = g_build_filename (dir, "keys.db", NULL);
  g_autoptr(GSubprocess) prompter = NULL;
  g_autoptr(GkSecretStore) store = gk_secret_store_new_for_file (NULL);
  g_autoptr(GkDatabase) db = NULL;
  g_autoptr(GkDatabase) other = NULL;
  g_autofree char *check = NULL;
  PromptJob job = { 0 };
  GThread *thread;
  gint64 deadline;

  g_assert_no_error (error);
  prompter = gk_test_start_fake_prompter (flag);
  gk_test_start_bare_keyring ();

  db = gk_database_open (path, NULL, &error);
  g_assert_no_error (error);
  job.store = store;
  job.db = db;
  g_mutex_init (&job.mutex);
  g_cond_init (&job.cond);
  thread = g_thread_new ("unlock", prompt_job_run, &job);

  /* The first run asks the keyring to create its default keyring. */
  deadline = g_get_monotonic_time () + PROMPT_WAIT_S * G_TIME_SPAN_SECOND;
  while (!g_file_test (flag, G_FILE_TEST_EXISTS) && !job.done
         && g_get_monotonic_time () < deadline)
    g_usleep (50 * 1000);
  if (job.done)
    g_error ("unlock ended before any prompt: %s", job.error ? job.error->message : "a key");
  g_assert_true (g_file_test (flag, G_FILE_TEST_EXISTS));

  /* While the prompt is open, another process can write the database. */
  other = gk_database_open (path, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (gk_database_begin (other, &error));
  g_assert_no_error (error);
  gk_database_rollback (other);

  if (kill_service)
    {
      GPid pid = gk_test_bus_name_pid ("org.freedesktop.secrets");

      g_assert_cmpint (pid, >, 0);
      g_assert_cmpint (kill (pid, SIGTERM), ==, 0);
    }
  else
    g_subprocess_force_exit (prompter);

  g_assert_true (prompt_job_wait (&job, PROMPT_WAIT_S));
  g_thread_join (thread);
  g_assert_null (job.key);
  g_assert_nonnull (job.error);
  g_test_message ("unlock: %s", job.error->message);
  if (kill_service)
    {
      g_assert_error (job.error, GK_SECRET_ERROR, GK_SECRET_ERROR_NO_SERVICE);
      g_assert_nonnull (strstr (job.error->message, "went away"));
    }
  else
    {
      g_assert_error (job.error, GK_SECRET_ERROR, GK_SECRET_ERROR_DISMISSED);
      g_assert_nonnull (strstr (job.error->message, "dismissed"));
    }

  /* Nothing changed: no check value, so the next start begins afresh. */
  check = gk_database_get_meta (db, META_CHECK_VALUE);
  g_assert_null (check);

  g_clear_error (&job.error);
  g_mutex_clear (&job.mutex);
  g_cond_clear (&job.cond);
  g_subprocess_force_exit (prompter);
  g_clear_object (&other);
  g_clear_object (&db);
  remove_tree (dir);
}

static void
test_prompt (gconstpointer data)
{
  const char *test_path = data;

  if (gk_test_in_private_session ())
    {
      prompt_scenario (strstr (test_path, "service-gone") != NULL);
      return;
    }
  gk_test_run_in_private_session (test_path);
}

int
main (int   argc,
      char *argv[])
{
  if (argc == 3 && g_str_equal (argv[1], GK_TEST_FAKE_PROMPTER_ARG))
    return gk_test_fake_prompter_main (argv[2]);

  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

  ADD ("/secret-store/keyring/round-trip", test_keyring_round_trip);
  ADD ("/secret-store/unlock/creates-once", test_unlock_creates_once);
  ADD ("/secret-store/unlock/async", test_unlock_async);
  ADD ("/secret-store/unlock/wrong-key", test_unlock_wrong_key);
  ADD ("/secret-store/unlock/missing", test_unlock_missing);
  ADD ("/secret-store/unlock/missing-without-check-value",
       test_unlock_missing_without_check_value);
  ADD ("/secret-store/unlock/adopt-without-check-value",
       test_unlock_adopts_key_without_check_value);
  ADD ("/secret-store/unlock/no-service", test_unlock_no_service);
  ADD ("/secret-store/unlock/first-run-race", test_unlock_first_run_race);
  ADD ("/secret-store/unlock/key-moving-into-place", test_unlock_key_moving_into_place);
  g_test_add ("/secret-store/unlock/finishes-first-start/keyring", Fixture, GINT_TO_POINTER (FALSE),
              fixture_set_up, test_unlock_finishes_first_start, fixture_tear_down);
  g_test_add ("/secret-store/unlock/finishes-first-start/file", Fixture, GINT_TO_POINTER (TRUE),
              fixture_set_up, test_unlock_finishes_first_start, fixture_tear_down);
  ADD ("/secret-store/file/mode", test_file_mode);
  ADD ("/secret-store/file/missing", test_file_missing);
  ADD ("/secret-store/file/formats", test_file_formats);
  g_test_add_func ("/secret-store/file/env", test_file_env);
  ADD ("/secret-store/export-import", test_export_import);
  ADD ("/secret-store/import-into-file", test_import_into_file_store);
  ADD ("/secret-store/rotate/all-rows", test_rotate);
  ADD ("/secret-store/rotate/interrupted-before-commit", test_rotate_interrupted_before_commit);
  ADD ("/secret-store/rotate/interrupted-after-commit", test_rotate_interrupted_after_commit);
  ADD ("/secret-store/rotate/corrupt-row", test_rotate_corrupt_row);
  ADD ("/secret-store/rotate/file", test_rotate_file);
  ADD ("/secret-store/rotate/file-leftovers", test_rotate_file_leftovers);
  ADD ("/secret-store/rotate/leftover-of-copy-kept", test_rotate_leftover_of_copy_kept);
  g_test_add ("/secret-store/rotate/copy/keyring", Fixture, GINT_TO_POINTER (FALSE),
              fixture_set_up, test_rotate_copy, fixture_tear_down);
  g_test_add ("/secret-store/rotate/copy/file", Fixture, GINT_TO_POINTER (TRUE),
              fixture_set_up, test_rotate_copy, fixture_tear_down);
  ADD ("/secret-store/unlock/new-key-without-ciphertext", test_unlock_new_key_without_ciphertext);
  ADD ("/secret-store/export-import-force", test_export_import_force);
  g_test_add_data_func ("/secret-store/prompt/dismissed", "/secret-store/prompt/dismissed",
                        test_prompt);
  g_test_add_data_func ("/secret-store/prompt/service-gone", "/secret-store/prompt/service-gone",
                        test_prompt);

#undef ADD

  return g_test_run ();
}
