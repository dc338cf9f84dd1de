/* test-key-store.c: validation, create/list/get/update/delete, encryption at rest.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <math.h>

#include "gk-database-private.h"
#include "gk-test-util.h"

typedef GkTestFixture Fixture;

static void
test_validate_key (void)
{
  const struct { const char *key; gboolean valid; } cases[] = {
    { "AIzaSyA1234567890abcdefghijklmnopqrst_-", TRUE },
    { "AIzaSyA1234567890abcdefghijklmnopqrst_", FALSE },      /* 38 characters */
    { "AIzaSyA1234567890abcdefghijklmnopqrst_-x", FALSE },    /* 40 */
    { "AIzaSyA1234567890abc efghijklmnopqrst_-", FALSE },     /* a space */
    { "AIzaSyA1234567890abc+efghijklmnopqrst_-", FALSE },     /* '+' */
    { "AQ.Ab8RN6LxKq2v9Vn3Wm5pT7yZ1cD4fG6hJ8kL0", TRUE },
    { "AQ.short", FALSE },
    { "AQ.Ab8RN6LxKq2v9Vn3Wm5pT7yZ1cD4fG6hJ8k L0", FALSE },
    { "sk-1234567890abcdefghijklmnopqrstuvwxyz", FALSE },
    { "", FALSE },
    { NULL, FALSE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      gboolean ok = gk_key_validate_api_key (cases[i].key, &error);

      g_test_message ("case %u", i);
      g_assert_cmpint (ok, ==, cases[i].valid);
      if (!ok)
        {
          g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_KEY);
          /* The message never repeats what was typed. */
          if (cases[i].key && *cases[i].key)
            g_assert_null (strstr (error->message, cases[i].key));
        }
    }
}

static void
test_validate_name (void)
{
  g_autofree char *max = g_strnfill (GK_KEY_NAME_MAX_CHARS, 'a');
  g_autofree char *too_long = g_strnfill (GK_KEY_NAME_MAX_CHARS + 1, 'a');
  g_autoptr(GString) viet = g_string_new (NULL);
  const char *invalid_utf8 = "bad \xff\xfe name";

  /* 100 two-byte characters are fine: the limit counts characters. */
  for (int i = 0; i < GK_KEY_NAME_MAX_CHARS; i++)
    g_string_append (viet, "ệ");

  g_assert_true (gk_key_validate_name ("Khóa miễn phí 1", NULL));
  g_assert_true (gk_key_validate_name (max, NULL));
  g_assert_true (gk_key_validate_name (viet->str, NULL));
  g_assert_false (gk_key_validate_name (too_long, NULL));
  g_assert_false (gk_key_validate_name ("", NULL));
  g_assert_false (gk_key_validate_name ("   ", NULL));
  g_assert_false (gk_key_validate_name ("two\nlines", NULL));
  g_assert_false (gk_key_validate_name (invalid_utf8, NULL));
  /* Bidi overrides and isolates, zero-width characters. */
  g_assert_false (gk_key_validate_name ("key\u202Egnp.exe", NULL));
  g_assert_false (gk_key_validate_name ("key\u2066x\u2069", NULL));
  g_assert_false (gk_key_validate_name ("key\u200B1", NULL));
  g_assert_false (gk_key_validate_name ("key\u200D1", NULL));
  g_assert_false (gk_key_validate_name ("key\u20601", NULL));
  g_assert_false (gk_key_validate_name ("\uFEFFkey", NULL));
  g_assert_false (gk_key_validate_name ("key\xc2\x85" "1", NULL));
}

static void
test_validate_spec (void)
{
  GkKeySpec spec;
  g_autoptr(GError) error = NULL;

  gk_key_spec_init (&spec);
  spec.name = "ok";
  g_assert_true (gk_key_validate_spec (&spec, NULL));

  spec.priority = 0;
  g_assert_false (gk_key_validate_spec (&spec, &error));
  g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_PRIORITY);
  g_clear_error (&error);
  spec.priority = 11;
  g_assert_false (gk_key_validate_spec (&spec, NULL));
  spec.priority = 10;
  g_assert_true (gk_key_validate_spec (&spec, NULL));

  spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = -1;
  g_assert_false (gk_key_validate_spec (&spec, &error));
  g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_QUOTA);
  g_clear_error (&error);
  spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = 0;

  spec.monthly_budget_usd = NAN;
  g_assert_false (gk_key_validate_spec (&spec, &error));
  g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_BUDGET);
}

static void
test_add_list_get (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = NULL;
  g_autoptr(GkKey) key = NULL;
  g_autoptr(GBytes) plain = NULL;
  g_autofree char *api_key = gk_test_api_key (42);
  g_autofree char *masked = NULL;
  g_autofree char *wal = NULL;
  GkKeySpec spec;
  gint64 id;

  gk_key_spec_init (&spec);
  spec.name = "Khóa chính";
  spec.priority = 7;
  spec.project = "billing-a";
  spec.monthly_budget_usd = 12.5;
  spec.is_default = TRUE;
  spec.limits[GK_QUOTA_SLOT_MONTHLY_TOKENS] = 1000000;
  spec.limits[GK_QUOTA_SLOT_MINUTE_REQUESTS] = 15;
  id = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);
  g_assert_cmpint (id, >, 0);

  keys = gk_key_store_list (f->store, &error);
  g_assert_no_error (error);
  g_assert_cmpint (keys->len, ==, 1);

  key = gk_key_store_get (f->store, id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (key->name, ==, "Khóa chính");
  g_assert_cmpint (key->priority, ==, 7);
  g_assert_cmpstr (key->project, ==, "billing-a");
  g_assert_cmpfloat (key->monthly_budget_usd, ==, 12.5);
  g_assert_true (key->is_default);
  g_assert_cmpint (key->status, ==, GK_KEY_STATUS_ACTIVE);
  g_assert_cmpstr (key->key_hint, ==, api_key + strlen (api_key) - 4);
  g_assert_cmpint (key->quotas[GK_QUOTA_SLOT_MONTHLY_TOKENS].limit_value, ==, 1000000);
  g_assert_cmpint (key->quotas[GK_QUOTA_SLOT_MINUTE_REQUESTS].limit_value, ==, 15);
  g_assert_cmpint (key->quotas[GK_QUOTA_SLOT_DAILY_TOKENS].limit_value, ==, 0);
  g_assert_cmpint (key->created_at, ==, GK_TEST_EPOCH);
  masked = gk_key_get_masked (key);
  g_assert_null (strstr (masked, api_key));
  g_assert_true (g_str_has_suffix (masked, key->key_hint));

  plain = gk_key_store_reveal (f->store, id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_bytes_get_data (plain, NULL), ==, api_key);

  /* Encrypted at rest: neither the database nor its WAL holds the key. */
  wal = g_strconcat (gk_database_get_path (f->db), "-wal", NULL);
  g_assert_false (gk_test_file_contains (gk_database_get_path (f->db), api_key));
  g_assert_false (gk_test_file_contains (wal, api_key));

  gk_key_store_get (f->store, 12345, &error);
  g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_NOT_FOUND);
}

static void
test_invalid_input_saves_nothing (Fixture       *f,
                                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = NULL;
  g_autofree char *api_key = gk_test_api_key (1);
  GkKeySpec spec;

  gk_key_spec_init (&spec);
  spec.name = "";
  g_assert_cmpint (gk_key_store_add (f->store, &spec, api_key, &error), ==, 0);
  g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_NAME);
  g_clear_error (&error);

  spec.name = "fine";
  g_assert_cmpint (gk_key_store_add (f->store, &spec, "AIzaTooShort", &error), ==, 0);
  g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_KEY);
  g_clear_error (&error);

  spec.priority = 99;
  g_assert_cmpint (gk_key_store_add (f->store, &spec, api_key, &error), ==, 0);
  g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_PRIORITY);
  g_clear_error (&error);

  keys = gk_key_store_list (f->store, &error);
  g_assert_no_error (error);
  g_assert_cmpint (keys->len, ==, 0);
}

static void
test_duplicate_and_default (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *api_key = gk_test_api_key (7);
  g_autoptr(GkKey) first = NULL;
  GkKeySpec spec;
  gint64 a, b;

  gk_key_spec_init (&spec);
  spec.name = "first";
  spec.is_default = TRUE;
  a = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);

  spec.name = "again";
  g_assert_cmpint (gk_key_store_add (f->store, &spec, api_key, &error), ==, 0);
  g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_DUPLICATE);
  g_assert_nonnull (strstr (error->message, "first"));
  g_assert_null (strstr (error->message, api_key));
  g_clear_error (&error);

  /* A second default takes the flag from the first: one default at most. */
  spec.name = "second";
  {
    g_autofree char *other = gk_test_api_key (8);
    b = gk_key_store_add (f->store, &spec, other, &error);
    g_assert_no_error (error);
  }
  first = gk_key_store_get (f->store, a, &error);
  g_assert_false (first->is_default);
  {
    g_autoptr(GkKey) second = gk_key_store_get (f->store, b, &error);
    g_assert_true (second->is_default);
  }
}

static void
test_update (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) key = NULL;
  g_autoptr(GBytes) plain = NULL;
  g_autofree char *replacement = gk_test_api_key (99);
  GkKeySpec spec;
  gint64 id = gk_test_add_key (f->store, "before", 5);
  gint64 other = gk_test_add_key (f->store, "other", 5);

  key = gk_key_store_get (f->store, id, &error);
  gk_key_spec_from_key (&spec, key);
  spec.name = "after";
  spec.priority = 2;
  spec.active = FALSE;
  spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = 5000;
  gk_key_store_update (f->store, id, &spec, replacement, &error);
  g_assert_no_error (error);
  g_clear_pointer (&key, gk_key_free);

  key = gk_key_store_get (f->store, id, &error);
  g_assert_cmpstr (key->name, ==, "after");
  g_assert_cmpint (key->priority, ==, 2);
  g_assert_cmpint (key->status, ==, GK_KEY_STATUS_INACTIVE);
  g_assert_cmpint (key->quotas[GK_QUOTA_SLOT_DAILY_TOKENS].limit_value, ==, 5000);
  plain = gk_key_store_reveal (f->store, id, &error);
  g_assert_cmpstr (g_bytes_get_data (plain, NULL), ==, replacement);

  /* Replacing with another stored key is a duplicate; nothing changes. */
  {
    g_autoptr(GBytes) other_plain = gk_key_store_reveal (f->store, other, &error);
    spec.name = "renamed";
    g_assert_false (gk_key_store_update (f->store, id, &spec, g_bytes_get_data (other_plain, NULL),
                                         &error));
    g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_DUPLICATE);
    g_clear_error (&error);
    g_clear_pointer (&key, gk_key_free);
    key = gk_key_store_get (f->store, id, &error);
    g_assert_cmpstr (key->name, ==, "after");
  }

  spec.active = TRUE;
  gk_key_store_update (f->store, id, &spec, NULL, &error);
  g_assert_no_error (error);
  g_clear_pointer (&key, gk_key_free);
  key = gk_key_store_get (f->store, id, &error);
  g_assert_cmpint (key->status, ==, GK_KEY_STATUS_ACTIVE);
}

static void
test_delete_keeps_history (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkPool) pool = gk_pool_new (f->db, NULL);
  g_autoptr(GPtrArray) keys = NULL;
  g_autoptr(GPtrArray) logs = NULL;
  g_autofree char *api_key = gk_test_api_key (5);
  GkUsageRecord record;
  GkKeySpec spec;
  gint64 id;

  gk_key_spec_init (&spec);
  spec.name = "doomed";
  id = gk_key_store_add (f->store, &spec, api_key, &error);
  gk_usage_record_init (&record);
  record.key_id = id;
  record.model = "gemini-2.5-flash";
  record.prompt_tokens = 10;
  gk_pool_track (pool, &record, NULL, &error);
  g_assert_no_error (error);

  gk_key_store_delete (f->store, id, &error);
  g_assert_no_error (error);

  keys = gk_key_store_list (f->store, &error);
  g_assert_cmpint (keys->len, ==, 0);
  gk_key_store_reveal (f->store, id, &error);
  g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_false (gk_database_has_ciphertext (f->db, NULL));

  /* The history stays, still named. */
  logs = gk_stats_usage_logs (f->db, 0, 10, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (logs->len, ==, 1);
  g_assert_cmpstr (((GkUsageRow *) g_ptr_array_index (logs, 0))->key_name, ==, "doomed");

  /* The same key can be added again after deletion. */
  gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);
}

static void
test_corrupt_row (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) good = NULL;
  gint64 a = gk_test_add_key (f->store, "a", 5);
  gint64 b = gk_test_add_key (f->store, "b", 5);
  gint64 c = gk_test_add_key (f->store, "c", 5);
  g_autofree char *sql = NULL;

  /* Flip a byte in a's ciphertext, and move c's ciphertext into b's row. */
  sql = g_strdup_printf ("UPDATE gemini_api_keys SET api_key_encrypted ="
                         " substr(api_key_encrypted, 1, 20) || %s || substr(api_key_encrypted, 22)"
                         " WHERE id = %" G_GINT64_FORMAT ";"
                         "UPDATE gemini_api_keys SET api_key_encrypted ="
                         " (SELECT api_key_encrypted FROM gemini_api_keys WHERE id = %" G_GINT64_FORMAT ")"
                         " WHERE id = %" G_GINT64_FORMAT ";",
                         gk_test_on_postgresql () ? "'\\x00'::bytea" : "x'00'", a, c, b);
  gk_database_exec (f->db, sql, &error);
  g_assert_no_error (error);

  gk_key_store_reveal (f->store, a, &error);
  g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "“a”"));
  g_clear_error (&error);
  gk_key_store_reveal (f->store, b, &error);
  g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_CORRUPT);
  g_clear_error (&error);

  /* The others still work, and the list still shows every key. */
  good = gk_key_store_reveal (f->store, c, &error);
  g_assert_no_error (error);
  {
    g_autoptr(GPtrArray) keys = gk_key_store_list (f->store, &error);
    g_assert_no_error (error);
    g_assert_cmpint (keys->len, ==, 3);
  }
}

/* Another process rotated the master key: this store's old key must not
 * write rows nobody can read, nor call good rows damaged. */
static void
test_master_key_changed_elsewhere (Fixture       *f,
                                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) other_master = gk_crypto_new_master_key ();
  g_autofree char *other_check = gk_crypto_check_value (other_master);
  g_autofree char *api_key = gk_test_api_key (31);
  gint64 id = gk_test_add_key (f->store, "before", 5);
  GkKeySpec spec;

  gk_database_set_meta (f->db, "key_check_value", other_check, &error);
  g_assert_no_error (error);

  gk_key_spec_init (&spec);
  spec.name = "after";
  g_assert_cmpint (gk_key_store_add (f->store, &spec, api_key, &error), ==, 0);
  g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_MASTER_KEY_CHANGED);
  g_clear_error (&error);

  /* Simulate the rotation's re-encryption of the row under the new key. */
  {
    g_autoptr(GBytes) blob = gk_crypto_encrypt (other_master, "not-this-row", "x", 1, NULL);
    GkSqlStmt *stmt;

    gk_database_lock (f->db);
    stmt = gk_database_prepare (f->db, "UPDATE gemini_api_keys SET api_key_encrypted = ?1"
                                       " WHERE id = ?2", &error);
    g_assert_no_error (error);
    gk_sql_bind_blob (stmt, 1, g_bytes_get_data (blob, NULL), g_bytes_get_size (blob));
    gk_sql_bind_int64 (stmt, 2, id);
    g_assert_cmpint (gk_sql_step (stmt), ==, GK_SQL_DONE);
    gk_sql_reset (stmt);
    gk_database_unlock (f->db);
  }
  g_assert_null (gk_key_store_reveal (f->store, id, &error));
  g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_MASTER_KEY_CHANGED);
}

#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, gk_test_fixture_setup, func, gk_test_fixture_teardown)

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add_func ("/key-store/validate/key", test_validate_key);
  g_test_add_func ("/key-store/validate/name", test_validate_name);
  g_test_add_func ("/key-store/validate/spec", test_validate_spec);
  ADD ("/key-store/add-list-get", test_add_list_get);
  ADD ("/key-store/invalid-input", test_invalid_input_saves_nothing);
  ADD ("/key-store/duplicate-and-default", test_duplicate_and_default);
  ADD ("/key-store/update", test_update);
  ADD ("/key-store/delete-keeps-history", test_delete_keeps_history);
  ADD ("/key-store/corrupt-row", test_corrupt_row);
  ADD ("/key-store/master-key-changed-elsewhere", test_master_key_changed_elsewhere);

  return g_test_run ();
}
