/* test-audit.c: the audit log records every administrative action, with
 * its time, actor, target and what changed, never a key or a secret, and
 * cannot be edited.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <locale.h>

#include "gk-database-private.h"
#include "gk-test-util.h"

typedef GkTestFixture Fixture;

/* A classic key with random characters, so that no fixed text in the code
 * could match it by chance. */
static char *
random_api_key (void)
{
  static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
  GString *key = g_string_new ("AIza");

  for (guint i = 0; i < 35; i++)
    g_string_append_c (key, alphabet[g_random_int_range (0, sizeof alphabet - 1)]);
  return g_string_free (key, FALSE);
}

static GPtrArray *
list_all (GkDatabase *db)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *rows = gk_audit_list (db, 1000, 0, &error);

  g_assert_no_error (error);
  g_assert_nonnull (rows);
  return rows;
}

static const GkAuditRow *
newest (GPtrArray *rows)
{
  g_assert_cmpuint (rows->len, >, 0);
  return g_ptr_array_index (rows, 0);
}

/* Every row's text fields, checked against @secret and each 8-character
 * piece of it (a key cut short is still a leak). */
static void
assert_no_secret (GPtrArray  *rows,
                  const char *secret)
{
  gsize len = strlen (secret);

  for (guint i = 0; i < rows->len; i++)
    {
      const GkAuditRow *row = g_ptr_array_index (rows, i);
      const char *fields[] = { row->actor, row->target, row->summary };

      for (guint f = 0; f < G_N_ELEMENTS (fields); f++)
        for (gsize at = 0; fields[f] != NULL && at + 8 <= len; at++)
          {
            g_autofree char *piece = g_strndup (secret + at, 8);

            if (strstr (fields[f], piece) != NULL)
              g_error ("audit row %" G_GINT64_FORMAT " (%s) holds secret text: %s",
                       row->id, gk_audit_action_to_string (row->action), fields[f]);
          }
    }
}

static gboolean
has_action (GPtrArray     *rows,
            GkAuditAction  action)
{
  for (guint i = 0; i < rows->len; i++)
    if (((GkAuditRow *) g_ptr_array_index (rows, i))->action == action)
      return TRUE;
  return FALSE;
}

/* Every action, each through the core function the app, the CLI and the
 * admin API call, with real keys: a row each, none holding key text. */
static void
test_every_action (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GBytes) copied = NULL;
  g_autoptr(GBytes) rotated = NULL;
  g_autoptr(GkSecretStore) secrets = NULL;
  g_autoptr(GkKey) key = NULL;
  g_autofree char *api_key = random_api_key ();
  g_autofree char *new_api_key = random_api_key ();
  g_autofree char *token = NULL;
  g_autofree char *dir = gk_test_db_dir (f->db);
  g_autofree char *key_file = g_build_filename (dir, "master.key", NULL);
  g_autofree char *xlsx = g_build_filename (dir, "out.xlsx", NULL);
  GkKeySpec spec;
  gint64 id, token_id = 0;

  gk_key_spec_init (&spec);
  spec.name = "Work";
  spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = 5000;
  id = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);
  gk_test_add_key (f->store, "Spare", 3);

  key = gk_key_store_get (f->store, id, &error);
  g_assert_no_error (error);
  gk_key_spec_from_key (&spec, key);
  spec.priority = 8;
  spec.monthly_budget_usd = 12.5;
  g_assert_true (gk_key_store_update (f->store, id, &spec, new_api_key, &error));
  g_assert_no_error (error);
  spec.active = FALSE;
  g_assert_true (gk_key_store_update (f->store, id, &spec, NULL, &error));
  g_assert_true (gk_key_store_set_status (f->store, id, GK_KEY_STATUS_ACTIVE, NULL, &error));
  g_assert_no_error (error);

  gk_pool_rotate (f->pool, id, "manual:tester", &error);
  g_assert_no_error (error);
  copied = gk_key_store_disclose (f->store, id, GK_AUDIT_KEY_COPY, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_bytes_get_data (copied, NULL), ==, new_api_key);
  g_clear_pointer (&copied, g_bytes_unref);
  copied = gk_key_store_disclose (f->store, id, GK_AUDIT_KEY_REVEAL, &error);
  g_assert_no_error (error);

  g_assert_true (gk_quotas_reset (f->db, FALSE, GK_QUOTA_DAILY, "manual:tester", &error));
  g_assert_true (gk_database_set_setting (f->db, GK_SETTING_ROTATION_THRESHOLD, "7", &error));
  g_assert_no_error (error);

  token = gk_token_create (f->db, "ci", &token_id, &error);
  g_assert_no_error (error);
  g_assert_true (gk_token_revoke (f->db, token_id, &error));
  g_assert_no_error (error);

  g_assert_true (gk_export_usage (f->db, NULL, GK_EXPORT_XLSX, xlsx, NULL, NULL, NULL, NULL,
                                  &error));
  g_assert_true (gk_export_rotations (f->db, GK_EXPORT_XLSX, xlsx, NULL, NULL, &error));
  g_assert_true (gk_export_keys (f->store, GK_EXPORT_XLSX, xlsx, NULL, NULL, &error));
  g_assert_true (gk_export_audit (f->db, GK_EXPORT_XLSX, xlsx, NULL, NULL, &error));
  g_assert_no_error (error);

  secrets = gk_secret_store_new_for_file (key_file);
  g_assert_true (gk_secret_store_export_file (secrets, f->master, key_file, &error));
  g_assert_true (gk_secret_store_import_file (secrets, f->db, key_file, &error));
  g_assert_no_error (error);
  rotated = gk_secret_store_rotate_master_key (secrets, f->db, f->master, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (rotated);

  g_assert_true (gk_key_store_delete (f->store, id, &error));
  g_assert_no_error (error);

  rows = list_all (f->db);
  for (GkAuditAction a = 0; a < GK_AUDIT_N_ACTIONS; a++)
    {
      /* The master key's export is recorded by its caller, the CLI (its
       * test covers it). */
      if (a == GK_AUDIT_MASTER_KEY_EXPORT)
        continue;
      if (!has_action (rows, a))
        g_error ("no audit row for %s", gk_audit_action_to_string (a));
    }

  assert_no_secret (rows, api_key);
  assert_no_secret (rows, new_api_key);
  assert_no_secret (rows, token);
  assert_no_secret (rows, g_bytes_get_data (copied, NULL));
  {
    g_autofree char *rotated_b64 = g_base64_encode (g_bytes_get_data (rotated, NULL),
                                                    g_bytes_get_size (rotated));
    g_autofree char *master_b64 = g_base64_encode (g_bytes_get_data (f->master, NULL),
                                                   g_bytes_get_size (f->master));

    assert_no_secret (rows, rotated_b64);
    assert_no_secret (rows, master_b64);
  }

  /* Every row has the injected clock's time and the OS user. */
  for (guint i = 0; i < rows->len; i++)
    {
      const GkAuditRow *row = g_ptr_array_index (rows, i);

      g_assert_cmpint (row->created_at, ==, GK_TEST_EPOCH);
      g_assert_cmpstr (row->actor, ==, g_get_user_name ());
    }
  /* The deletion is the newest row, and names the key. */
  g_assert_cmpint (newest (rows)->action, ==, GK_AUDIT_KEY_DELETE);
  g_assert_cmpstr (newest (rows)->target, ==, "Work");
  g_assert_cmpint (newest (rows)->target_id, ==, id);
  g_unlink (key_file);
  g_unlink (xlsx);
}

static const GkAuditRow *
find (GPtrArray     *rows,
      GkAuditAction  action,
      guint          nth)
{
  for (guint i = rows->len; i > 0; i--)
    {
      const GkAuditRow *row = g_ptr_array_index (rows, i - 1);

      if (row->action == action && nth-- == 0)
        return row;
    }
  g_error ("no row %u for %s", nth, gk_audit_action_to_string (action));
  return NULL;
}

/* What each row says changed. */
static void
test_summaries (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GkKey) key = NULL;
  g_autofree char *api_key = random_api_key ();
  g_autofree char *other_key = random_api_key ();
  GkKeySpec spec;
  gint64 id;

  gk_key_spec_init (&spec);
  spec.name = "Team";
  spec.priority = 7;
  spec.is_default = TRUE;
  spec.limits[GK_QUOTA_SLOT_MONTHLY_TOKENS] = 1000000;
  id = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);

  key = gk_key_store_get (f->store, id, &error);
  gk_key_spec_from_key (&spec, key);
  spec.name = "Team B";
  spec.monthly_budget_usd = 3;
  spec.limits[GK_QUOTA_SLOT_MONTHLY_TOKENS] = 0;
  spec.active = FALSE;
  g_assert_true (gk_key_store_update (f->store, id, &spec, other_key, &error));
  /* Saving without a change writes nothing. */
  g_assert_true (gk_key_store_update (f->store, id, &spec, NULL, &error));
  g_assert_no_error (error);

  g_assert_true (gk_database_set_setting (f->db, "usage_retention_days", "30", &error));
  g_assert_true (gk_database_set_setting (f->db, "usage_retention_days", "30", &error));
  g_assert_true (gk_database_set_setting (f->db, "usage_retention_days", "90", &error));
  g_assert_true (gk_quotas_reset (f->db, TRUE, GK_QUOTA_MONTHLY, "manual:x", &error));
  g_assert_no_error (error);

  rows = list_all (f->db);
  g_assert_cmpuint (rows->len, ==, 6);
  g_assert_cmpstr (find (rows, GK_AUDIT_KEY_ADD, 0)->summary, ==,
                   "priority 7; default yes; monthly tokens 1000000");
  g_assert_cmpstr (find (rows, GK_AUDIT_KEY_ADD, 0)->target, ==, "Team");
  g_assert_cmpstr (find (rows, GK_AUDIT_KEY_EDIT, 0)->summary, ==,
                   "name “Team” → “Team B”; monthly budget none → $3.00; "
                   "monthly tokens 1000000 → unlimited; key replaced");
  g_assert_cmpstr (find (rows, GK_AUDIT_KEY_DISABLE, 0)->target, ==, "Team B");
  g_assert_cmpstr (find (rows, GK_AUDIT_SETTING_CHANGE, 0)->summary, ==, "“30”");
  g_assert_cmpstr (find (rows, GK_AUDIT_SETTING_CHANGE, 1)->summary, ==, "“30” → “90”");
  g_assert_cmpstr (find (rows, GK_AUDIT_SETTING_CHANGE, 1)->target, ==, "usage_retention_days");
  g_assert_cmpstr (find (rows, GK_AUDIT_QUOTA_RESET, 0)->target, ==, "all quotas");
  g_assert_cmpint (gk_audit_count (f->db, NULL), ==, 6);
}

/* Messages in Vietnamese from the build's catalogue (FALSE when the
 * vi_VN.UTF-8 locale is missing), or back to C.UTF-8 without @on. */
static gboolean
set_vietnamese (gboolean on)
{
  g_autofree char *localedir = NULL;

  if (!on)
    {
      g_setenv ("LANGUAGE", "", TRUE);
      setlocale (LC_ALL, "C.UTF-8");
      return TRUE;
    }
  localedir = g_build_filename (g_getenv ("GEMINI_KEYS_BUILD_ROOT"), "po", NULL);
  bindtextdomain (GETTEXT_PACKAGE, localedir);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
  /* LANGUAGE first: setlocale() makes gettext read it again. */
  g_setenv ("LANGUAGE", "vi", TRUE);
  return setlocale (LC_ALL, "vi_VN.UTF-8") != NULL;
}

static void
assert_rendered (const GkAuditRow *row,
                 const char       *target,
                 const char       *summary)
{
  g_autofree char *shown_target = gk_audit_render_target (row->action, row->target);
  g_autofree char *shown_summary = gk_audit_render_summary (row->action, row->summary);

  g_assert_cmpstr (shown_target, ==, target);
  g_assert_cmpstr (shown_summary, ==, summary);
}

/* The stored summaries stay English; for people they read in the current
 * language: phrases translated, values (names, numbers, amounts, paths)
 * as they are. A name may hold anything: a summary it makes readable in
 * two ways, and a row not made of the phrases, show as stored. */
static void
test_render (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GkKey) key = NULL;
  g_autofree char *api_key = random_api_key ();
  g_autofree char *other_key = random_api_key ();
  const char *tricky = "a” → “b; priority 1 → 2";
  const char *ambiguous = "name “a” → “b; priority 1 → 2” → “c”";
  GkKeySpec spec;
  gint64 main_id, tricky_id;

  gk_key_spec_init (&spec);
  spec.name = "Chính";
  spec.priority = 7;
  spec.project = "lab";
  spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = 5000;
  main_id = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);
  key = gk_key_store_get (f->store, main_id, &error);
  g_assert_no_error (error);
  gk_key_spec_from_key (&spec, key);
  spec.priority = 8;
  spec.monthly_budget_usd = 10;
  g_assert_true (gk_key_store_update (f->store, main_id, &spec, other_key, &error));
  g_assert_no_error (error);

  /* Names that hold the separators and the phrases. */
  tricky_id = gk_test_add_key (f->store, tricky, 3);
  g_clear_pointer (&key, gk_key_free);
  key = gk_key_store_get (f->store, tricky_id, &error);
  g_assert_no_error (error);
  gk_key_spec_from_key (&spec, key);
  spec.name = "c";
  g_assert_true (gk_key_store_update (f->store, tricky_id, &spec, NULL, &error));
  g_assert_no_error (error);
  gk_test_add_key (f->store, "Khóa; no key left", 10);
  gk_pool_rotate (f->pool, main_id, "manual:tester", &error);
  g_assert_no_error (error);

  g_assert_true (gk_audit_record_export (f->db, "usage", "standard output", 3, &error));
  g_assert_true (gk_audit_record_export (f->db, "audit", "-", 2, &error));
  g_assert_true (gk_quotas_reset (f->db, TRUE, GK_QUOTA_MONTHLY, "manual:tester", &error));
  g_assert_no_error (error);
  /* A row written some other way. */
  g_assert_true (gk_database_exec (f->db,
                                   "INSERT INTO audit_log (created_at, actor, action, target,"
                                   " summary) VALUES (1, 'x', 'key_edit', 'Old', 'priority 5 to 7')",
                                   &error));
  g_assert_no_error (error);

  rows = list_all (f->db);
  g_assert_cmpstr (find (rows, GK_AUDIT_KEY_EDIT, 1)->summary, ==, ambiguous);
  g_assert_cmpstr (find (rows, GK_AUDIT_EXPORT, 0)->summary, ==, "3 rows to “standard output”");

  /* In English, as stored. */
  for (guint i = 0; i < rows->len; i++)
    {
      const GkAuditRow *row = g_ptr_array_index (rows, i);

      assert_rendered (row, row->target != NULL ? row->target : "",
                       row->summary != NULL ? row->summary : "");
    }

  if (!set_vietnamese (TRUE))
    {
      set_vietnamese (FALSE);
      g_test_skip ("no vi_VN.UTF-8 locale (localedef -i vi_VN -f UTF-8 vi_VN.UTF-8)");
      return;
    }
  assert_rendered (find (rows, GK_AUDIT_KEY_ADD, 0), "Chính",
                   "độ ưu tiên 7; dự án “lab”; token theo ngày 5000");
  assert_rendered (find (rows, GK_AUDIT_KEY_EDIT, 0), "Chính",
                   "độ ưu tiên 7 → 8; ngân sách hằng tháng không có → $10.00; đã thay khóa API");
  assert_rendered (find (rows, GK_AUDIT_KEY_ADD, 1), tricky, "độ ưu tiên 3");
  assert_rendered (find (rows, GK_AUDIT_KEY_EDIT, 1), "c", ambiguous);
  assert_rendered (find (rows, GK_AUDIT_KEY_SKIP, 0), "Chính",
                   "đến lần đặt lại hằng ngày; khóa kế tiếp “Khóa; no key left”");
  assert_rendered (find (rows, GK_AUDIT_EXPORT, 0), "nhật ký sử dụng",
                   "3 dòng vào “standard output”");
  assert_rendered (find (rows, GK_AUDIT_EXPORT, 1), "nhật ký kiểm tra", "2 dòng ra đầu ra chuẩn");
  assert_rendered (find (rows, GK_AUDIT_QUOTA_RESET, 0), "mọi hạn mức", "");
  assert_rendered (find (rows, GK_AUDIT_KEY_EDIT, 2), "Old", "priority 5 to 7");
  set_vietnamese (FALSE);
}

/* The app and the CLI act as the OS user; the admin API pushes its token's
 * name for the length of a request, on its own thread only. */
static gpointer
record_in_thread (gpointer data)
{
  GkDatabase *db = data;

  g_assert_true (gk_database_set_setting (db, "from_thread", "1", NULL));
  return NULL;
}

static void
test_actor (Fixture       *f,
            gconstpointer  data)
{
  g_autoptr(GPtrArray) rows = NULL;
  GThread *thread;

  g_assert_cmpstr (gk_audit_get_actor (), ==, g_get_user_name ());
  gk_audit_push_actor ("admin");
  gk_audit_push_actor ("inner");
  g_assert_cmpstr (gk_audit_get_actor (), ==, "inner");
  gk_audit_pop_actor ();
  g_assert_true (gk_database_set_setting (f->db, "a", "1", NULL));
  thread = g_thread_new ("other", record_in_thread, f->db);
  g_thread_join (thread);
  gk_audit_pop_actor ();
  g_assert_true (gk_database_set_setting (f->db, "b", "1", NULL));

  rows = list_all (f->db);
  g_assert_cmpuint (rows->len, ==, 3);
  g_assert_cmpstr (find (rows, GK_AUDIT_SETTING_CHANGE, 0)->actor, ==, "admin");
  g_assert_cmpstr (find (rows, GK_AUDIT_SETTING_CHANGE, 1)->actor, ==, g_get_user_name ());
  g_assert_cmpstr (find (rows, GK_AUDIT_SETTING_CHANGE, 1)->target, ==, "from_thread");
  g_assert_cmpstr (find (rows, GK_AUDIT_SETTING_CHANGE, 2)->actor, ==, g_get_user_name ());
}

/* No statement can change or remove a row; usage retention and compaction
 * leave the log whole; a failed action leaves no row. */
static void
test_append_only (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  GkCompactReport report = { 0 };
  gint64 id = gk_test_add_key (f->store, "k", 5);

  g_assert_false (gk_database_exec (f->db, "UPDATE audit_log SET actor = 'someone else'", &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_false (gk_database_exec (f->db, "DELETE FROM audit_log", &error));
  g_assert_nonnull (error);
  g_clear_error (&error);

  g_assert_true (gk_rollup_set_retention_days (f->db, 1, &error));
  gk_clock_advance (f->clock, 90 * 86400);
  g_assert_true (gk_rollup_compact (f->db, &report, &error));
  g_assert_no_error (error);
  g_assert_cmpint (gk_audit_count (f->db, NULL), ==, 2);

  /* Deleting a key that is not there records nothing. */
  g_assert_false (gk_key_store_delete (f->store, id + 100, &error));
  g_clear_error (&error);
  g_assert_cmpint (gk_audit_count (f->db, NULL), ==, 2);
}

/* A database of schema 5 gains the table (and the later ones) and keeps
 * its keys. */
static void
test_upgrade (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) upgraded = NULL;
  g_autoptr(GPtrArray) keys = NULL;
  g_auto(GStrv) created = NULL;
  const char *const expected[] = { "audit_log", "usage_rollup_latency", "usage_rollup_key",
                                   NULL };

  if (gk_test_skip_on_postgresql ("an upgrade from an older SQLite schema"))
    return;
  gk_test_add_key (f->store, "kept", 5);
  g_assert_true (gk_database_exec (f->db, "DROP TABLE audit_log; DROP TABLE usage_rollup_latency;"
                                   " DROP TABLE usage_rollup_key;"
                                   " PRAGMA user_version = 5", &error));
  g_assert_no_error (error);

  upgraded = gk_database_new (gk_database_get_path (f->db), f->clock, &error);
  g_assert_no_error (error);
  g_assert_true (gk_database_migrate (upgraded, &created, &error));
  g_assert_no_error (error);
  g_assert_cmpstrv (created, expected);
  g_assert_cmpint (gk_database_get_schema_version (upgraded), ==, 12);
  g_assert_cmpint (gk_audit_count (upgraded, NULL), ==, 0);
  keys = gk_key_list_from_database (upgraded, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (keys->len, ==, 1);

  g_assert_true (gk_database_set_setting (upgraded, "x", "1", &error));
  g_assert_cmpint (gk_audit_count (upgraded, NULL), ==, 1);
  g_assert_finalize_object (g_steal_pointer (&upgraded));
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  GK_TEST_ADD ("/audit/every-action", test_every_action);
  GK_TEST_ADD ("/audit/summaries", test_summaries);
  GK_TEST_ADD ("/audit/render", test_render);
  GK_TEST_ADD ("/audit/actor", test_actor);
  GK_TEST_ADD ("/audit/append-only", test_append_only);
  GK_TEST_ADD ("/audit/upgrade", test_upgrade);
  return g_test_run ();
}
