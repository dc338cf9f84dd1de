/* test-hygiene.c: keys worth deleting (unused for the setting's days, or
 * rejected by Google) and the master key's age, on an injected clock.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gstdio.h>

#include "gk-database-private.h"
#include "gk-test-util.h"

typedef GkTestFixture Fixture;

#define DAY 86400

static GPtrArray *
stale_keys (GkDatabase *db)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *keys = gk_hygiene_stale_keys (db, &error);

  g_assert_no_error (error);
  g_assert_nonnull (keys);
  return keys;
}

static const GkStaleKey *
nth (GPtrArray *keys,
     guint      i)
{
  return g_ptr_array_index (keys, i);
}

static void
test_stale_keys (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = NULL;
  g_autofree char *text = NULL;
  gint64 start = GK_TEST_EPOCH - 60 * DAY;
  gint64 used_40, used_10, never, rejected, gone;

  /* Added 60 days ago; the clock moves as they are used. */
  gk_clock_set (f->clock, start);
  used_40 = gk_test_add_key (f->store, "used 40 days ago", 5);
  used_10 = gk_test_add_key (f->store, "used 10 days ago", 5);
  rejected = gk_test_add_key (f->store, "rejected", 5);
  gone = gk_test_add_key (f->store, "deleted", 5);
  gk_clock_set (f->clock, GK_TEST_EPOCH - 50 * DAY);
  never = gk_test_add_key (f->store, "never used", 5);
  gk_clock_set (f->clock, GK_TEST_EPOCH - 40 * DAY);
  gk_test_track (f->pool, used_40, GK_USAGE_SUCCESS, 10);
  gk_clock_set (f->clock, GK_TEST_EPOCH - 10 * DAY);
  gk_test_track (f->pool, used_10, GK_USAGE_SUCCESS, 10);
  gk_clock_set (f->clock, GK_TEST_EPOCH - DAY);
  gk_test_track (f->pool, rejected, GK_USAGE_INVALID_KEY, 0);
  g_assert_true (gk_key_store_delete (f->store, gone, &error));
  gk_clock_set (f->clock, GK_TEST_EPOCH);

  /* 30 days by default: the rejected key first, then the longest idle. */
  g_assert_cmpuint (gk_hygiene_get_unused_days (f->db), ==, 30);
  keys = stale_keys (f->db);
  g_assert_cmpuint (keys->len, ==, 3);
  g_assert_cmpint (nth (keys, 0)->key_id, ==, rejected);
  g_assert_cmpint (nth (keys, 0)->reason, ==, GK_STALE_REJECTED);
  g_assert_cmpint (nth (keys, 1)->key_id, ==, never);
  g_assert_cmpint (nth (keys, 1)->reason, ==, GK_STALE_UNUSED);
  g_assert_cmpint (nth (keys, 1)->idle_days, ==, 50);
  g_assert_cmpint (nth (keys, 2)->key_id, ==, used_40);
  g_assert_cmpint (nth (keys, 2)->idle_days, ==, 40);

  text = gk_stale_key_describe (nth (keys, 0));
  g_assert_cmpstr (text, ==, "Rejected by Google");
  g_free (text);
  text = gk_stale_key_describe (nth (keys, 1));
  g_assert_cmpstr (text, ==, "Never used, added 50 days ago");
  g_free (text);
  text = gk_stale_key_describe (nth (keys, 2));
  g_assert_cmpstr (text, ==, "Not used for 40 days");

  /* A shorter setting takes in the key used 10 days ago; a bad one is
   * refused and leaves it. */
  g_assert_true (gk_hygiene_set_unused_days (f->db, 7, &error));
  g_assert_false (gk_hygiene_set_unused_days (f->db, 0, &error));
  g_clear_error (&error);
  g_clear_pointer (&keys, g_ptr_array_unref);
  keys = stale_keys (f->db);
  g_assert_cmpuint (keys->len, ==, 4);
  g_assert_cmpint (nth (keys, 3)->key_id, ==, used_10);
  /* Nonsense in the setting is the default. */
  g_assert_true (gk_database_set_setting (f->db, GK_SETTING_UNUSED_KEY_DAYS, "-3", &error));
  g_assert_cmpuint (gk_hygiene_get_unused_days (f->db), ==, 30);
}

/* A database that never recorded it dates the master key by its oldest
 * key (an upper bound); making, rotating or first importing the key
 * records the time; 180 days on, rotating is due. */
static void
test_master_key_age (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkSecretStore) secrets = NULL;
  g_autoptr(GBytes) rotated = NULL;
  g_autofree char *dir = gk_test_db_dir (f->db);
  g_autofree char *key_file = g_build_filename (dir, "master.key", NULL);
  GkMasterKeyAge age;

  g_assert_true (gk_hygiene_master_key_age (f->db, &age, &error));
  g_assert_cmpint (age.created_at, ==, 0);
  g_assert_false (age.rotate_due);

  gk_clock_set (f->clock, GK_TEST_EPOCH - 200 * DAY);
  gk_test_add_key (f->store, "old", 5);
  gk_clock_set (f->clock, GK_TEST_EPOCH);
  g_assert_true (gk_hygiene_master_key_age (f->db, &age, &error));
  g_assert_cmpint (age.created_at, ==, GK_TEST_EPOCH - 200 * DAY);
  g_assert_true (age.estimated);
  g_assert_cmpint (age.age_days, ==, 200);
  g_assert_true (age.rotate_due);

  secrets = gk_secret_store_new_for_file (key_file);
  rotated = gk_secret_store_rotate_master_key (secrets, f->db, f->master, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (gk_hygiene_master_key_age (f->db, &age, &error));
  g_assert_cmpint (age.created_at, ==, GK_TEST_EPOCH);
  g_assert_false (age.estimated);
  g_assert_cmpint (age.age_days, ==, 0);
  g_assert_false (age.rotate_due);

  gk_clock_advance (f->clock, 179 * DAY);
  g_assert_true (gk_hygiene_master_key_age (f->db, &age, &error));
  g_assert_false (age.rotate_due);
  gk_clock_advance (f->clock, DAY);
  g_assert_true (gk_hygiene_master_key_age (f->db, &age, &error));
  g_assert_cmpint (age.age_days, ==, 180);
  g_assert_true (age.rotate_due);
  g_unlink (key_file);
  g_unlink (gk_secret_store_get_file (secrets));
}

/* The key store rotates its own master key and goes on with the new one. */
static void
test_key_store_rotates (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) plain = NULL;
  g_autofree char *dir = gk_test_db_dir (f->db);
  g_autofree char *key_file = g_build_filename (dir, "store.key", NULL);
  g_autoptr(GkSecretStore) secrets = gk_secret_store_new_for_file (key_file);
  g_autofree char *api_key = gk_test_api_key (77);
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  GkKeySpec spec;
  GkMasterKeyAge age;
  gint64 id;

  g_assert_true (gk_secret_store_store (secrets, gk_database_get_uuid (f->db), f->master, NULL,
                                        &error));
  gk_key_store_set_secret_store (f->store, secrets);
  gk_key_spec_init (&spec);
  spec.name = "kept";
  id = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);
  before = gk_database_get_meta (f->db, "key_check_value");

  gk_clock_advance (f->clock, 3 * DAY);
  g_assert_true (gk_key_store_rotate_master_key (f->store, NULL, &error));
  g_assert_no_error (error);
  after = gk_database_get_meta (f->db, "key_check_value");
  g_assert_cmpstr (before, !=, after);
  plain = gk_key_store_reveal (f->store, id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_bytes_get_data (plain, NULL), ==, api_key);
  g_assert_true (gk_hygiene_master_key_age (f->db, &age, &error));
  g_assert_cmpint (age.created_at, ==, GK_TEST_EPOCH + 3 * DAY);
  gk_key_store_set_secret_store (f->store, NULL);
}

/* The first run records the master key's creation. */
static void
test_master_key_created_on_first_run (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkClock) clock = gk_clock_new_fixed (GK_TEST_EPOCH);
  g_autoptr(GkDatabase) db = gk_test_open_db (clock);
  g_autofree char *dir = gk_test_db_dir (db);
  g_autofree char *key_file = g_build_filename (dir, "first.key", NULL);
  g_autoptr(GkSecretStore) secrets = gk_secret_store_new_for_file (key_file);
  g_autoptr(GBytes) key = NULL;
  GkMasterKeyAge age;

  key = gk_secret_store_unlock (secrets, db, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (key);
  g_assert_true (gk_hygiene_master_key_age (db, &age, &error));
  g_assert_cmpint (age.created_at, ==, GK_TEST_EPOCH);
  g_assert_false (age.estimated);
  g_clear_object (&secrets);
  g_assert_finalize_object (g_steal_pointer (&db));
  gk_test_rm_rf (dir);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  GK_TEST_ADD ("/hygiene/stale-keys", test_stale_keys);
  GK_TEST_ADD ("/hygiene/master-key-age", test_master_key_age);
  GK_TEST_ADD ("/hygiene/key-store-rotates", test_key_store_rotates);
  g_test_add_func ("/hygiene/master-key-created-on-first-run",
                   test_master_key_created_on_first_run);
  return g_test_run ();
}
