/* test-window.c: the main window: every tab renders without warnings, the
 * tab and add-key actions, the unlock page (missing master key → import),
 * live refresh from another connection, and Preferences writing settings.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gstdio.h>

#include "gk-application.h"
#include "gk-key-dialog.h"
#include "gk-key-row.h"
#include "gk-keys-page.h"
#include "gk-notifier.h"
#include "gk-preferences-window.h"
#include "gk-test-util.h"
#include "gk-ui-test-util.h"
#include "gk-unlock-page.h"

/* Quitting while the pages load, this many times over. */
#define QUIT_ROUNDS 3

/* Another process's commit must show within this time (spec: 2 s). */
#define LIVE_REFRESH_LIMIT_US (2 * G_USEC_PER_SEC)

typedef struct
{
  char *dir;
  char *db_path;
  char *key_file;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("gk-test-window-XXXXXX", &error);
  g_assert_no_error (error);
  f->db_path = g_build_filename (f->dir, "keys.db", NULL);
  f->key_file = g_build_filename (f->dir, "master.key", NULL);
  g_unsetenv (GK_MASTER_KEY_FILE_ENV);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_unsetenv (GK_MASTER_KEY_FILE_ENV);
  gk_test_rm_rf (f->dir);
  g_free (f->key_file);
  g_free (f->db_path);
  g_free (f->dir);
}

/* A database whose master key lives only in f->key_file, with two keys,
 * some usage and a rotation. Returns the key store (its own connection). */
static GkKeyStore *
create_database_with_key_file (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) master_key = gk_test_master_key ();
  g_autofree char *encoded = g_base64_encode (g_bytes_get_data (master_key, NULL),
                                              g_bytes_get_size (master_key));
  g_autoptr(GkDatabase) db = NULL;
  g_autoptr(GkSecretStore) secrets = NULL;
  g_autoptr(GBytes) unlocked = NULL;
  g_autoptr(GkPool) pool = NULL;
  GkKeyStore *store;
  GkUsageRecord record;
  GkTrackResult result;
  gint64 first;

  g_assert_true (g_file_set_contents_full (f->key_file, encoded, -1,
                                           G_FILE_SET_CONTENTS_CONSISTENT, 0600, &error));
  g_assert_no_error (error);

  db = gk_database_open (f->db_path, NULL, &error);
  g_assert_no_error (error);
  secrets = gk_secret_store_new_for_file (f->key_file);
  unlocked = gk_secret_store_unlock (secrets, db, NULL, &error);
  g_assert_no_error (error);

  store = gk_key_store_new (db, unlocked);
  first = gk_test_add_key (store, "Alpha", 8);
  gk_test_add_key (store, "Beta", 3);

  pool = gk_pool_new (db, NULL);
  gk_usage_record_init (&record);
  record.key_id = first;
  record.model = "gemini-2.5-flash";
  record.prompt_tokens = 1200;
  record.output_tokens = 300;
  record.status = GK_USAGE_SUCCESS;
  record.http_status = 200;
  record.user_id = "tester";
  g_assert_true (gk_pool_track (pool, &record, &result, &error));
  g_assert_no_error (error);
  gk_pool_rotate (pool, first, "manual:tester", &error);
  g_assert_no_error (error);

  return store;
}

static GtkStack *
main_stack (GkWindow *window)
{
  return gk_ui_test_window_child (window, "main_stack");
}

typedef struct
{
  GkKeysPage *page;
  guint       n;
} CountCheck;

static gboolean
listed_count_is (gpointer data)
{
  CountCheck *check = data;

  return !gk_keys_page_get_loading (check->page) &&
         g_list_model_get_n_items (gk_keys_page_get_keys (check->page)) == check->n;
}

/* Tests */

static void
test_tabs_render (Fixture       *f,
                  gconstpointer  data)
{
  const char * const tabs[] = { "dashboard", "keys", "usage", "rotations" };
  g_autoptr(GkKeyStore) store = create_database_with_key_file (f);
  GkWindow *window;
  CountCheck check;

  g_setenv (GK_MASTER_KEY_FILE_ENV, f->key_file, TRUE);
  window = gk_ui_test_open_window (f->db_path);
  g_assert_cmpstr (gtk_stack_get_visible_child_name (main_stack (window)), ==, "main");

  check.page = gk_ui_test_window_child (window, "keys_page");
  check.n = 2;
  gk_ui_test_wait (listed_count_is, &check, "two keys listed");

  for (guint i = 0; i < G_N_ELEMENTS (tabs); i++)
    {
      g_autofree char *png = g_strdup_printf ("%s/%s.png", f->dir, tabs[i]);
      g_autoptr(GError) error = NULL;
      GStatBuf st;

      /* Through the action, as Alt+1…4 do. */
      g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.show-tab", "s", tabs[i]));
      g_assert_cmpstr (gk_window_get_visible_tab (window), ==, tabs[i]);

      /* Let the page load and lay out, then draw it for real. */
      gk_ui_test_spin (500);
      g_assert_true (gk_widget_save_png (GTK_WIDGET (window), png, &error));
      g_assert_no_error (error);
      g_assert_cmpint (g_stat (png, &st), ==, 0);
      g_assert_cmpint (st.st_size, >, 1000);
    }

  gk_ui_test_close_window (window);
}

static gboolean
key_dialog_shown (gpointer data)
{
  return gk_ui_test_find_toplevel (GK_TYPE_KEY_DIALOG) != NULL;
}

static void
test_actions (Fixture       *f,
              gconstpointer  data)
{
  GkWindow *window = gk_ui_test_open_window (f->db_path);
  GtkWidget *dialog;
  GtkSearchBar *search_bar;
  GkKeysPage *page = gk_ui_test_window_child (window, "keys_page");

  /* Ctrl+N: the Keys tab and the add dialog. */
  gk_window_set_visible_tab (window, "dashboard");
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.add-key", NULL));
  gk_ui_test_wait (key_dialog_shown, NULL, "the add dialog");
  g_assert_cmpstr (gk_window_get_visible_tab (window), ==, "keys");
  dialog = gk_ui_test_find_toplevel (GK_TYPE_KEY_DIALOG);
  g_assert_true (gtk_window_get_modal (GTK_WINDOW (dialog)));
  g_assert_true (gtk_window_get_transient_for (GTK_WINDOW (dialog)) == GTK_WINDOW (window));
  gtk_window_destroy (GTK_WINDOW (dialog));

  /* Ctrl+F outside the usage tab: the keys filter. */
  gk_window_set_visible_tab (window, "rotations");
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.find", NULL));
  g_assert_cmpstr (gk_window_get_visible_tab (window), ==, "keys");
  search_bar = GTK_SEARCH_BAR (gtk_widget_get_template_child (GTK_WIDGET (page), GK_TYPE_KEYS_PAGE,
                                                              "search_bar"));
  g_assert_true (gtk_search_bar_get_search_mode (search_bar));

  /* On the usage tab it stays there (the usage page's key filter). */
  gk_window_set_visible_tab (window, "usage");
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.find", NULL));
  g_assert_cmpstr (gk_window_get_visible_tab (window), ==, "usage");

  gk_ui_test_close_window (window);
}

static void
test_unlock_missing_then_import (Fixture       *f,
                                 gconstpointer  data)
{
  g_autoptr(GkKeyStore) store = create_database_with_key_file (f);
  g_autoptr(GFile) file = g_file_new_for_path (f->key_file);
  GkUnlockPage *unlock_page;
  GkWindow *window;
  CountCheck check;

  /* The keyring knows nothing of this database, which holds ciphertext:
   * the window must say so and must not make up a new master key. */
  window = gk_ui_test_open_window (f->db_path);
  g_assert_false (gk_backend_is_ready (gk_window_get_backend (window)));
  g_assert_cmpstr (gtk_stack_get_visible_child_name (main_stack (window)), ==, "unlock");
  unlock_page = gk_ui_test_window_child (window, "unlock_page");
  g_assert_cmpstr (gk_unlock_page_get_title (unlock_page), ==, "Master Key Missing");
  gk_ui_test_spin (200);

  /* Retry changes nothing. */
  g_signal_emit_by_name (unlock_page, "retry");
  gk_ui_test_spin (500);
  g_assert_cmpstr (gtk_stack_get_visible_child_name (main_stack (window)), ==, "unlock");

  /* Importing the right file (what the file chooser would hand over). */
  g_signal_emit_by_name (unlock_page, "import-file", file);
  check.page = gk_ui_test_window_child (window, "keys_page");
  check.n = 2;
  gk_ui_test_wait (listed_count_is, &check, "the keys after the import");
  g_assert_cmpstr (gtk_stack_get_visible_child_name (main_stack (window)), ==, "main");

  gk_ui_test_close_window (window);
}

static gboolean
revealed (gpointer data)
{
  return gtk_revealer_get_reveal_child (data);
}

static gboolean
not_revealed (gpointer data)
{
  return !gtk_revealer_get_reveal_child (data);
}

/* The master key file vanishes while the app runs: a banner says so,
 * adding keys is refused, and its button stores the key again. */
static void
test_master_key_vanished (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(GkKeyStore) store = create_database_with_key_file (f);
  g_autoptr(GError) error = NULL;
  g_autofree char *api_key = gk_test_api_key (77);
  GtkRevealer *banner;
  GtkWidget *button;
  GkKeyStore *app_store;
  GkWindow *window;
  GkKeySpec spec;

  g_setenv (GK_MASTER_KEY_FILE_ENV, f->key_file, TRUE);
  window = gk_ui_test_open_window (f->db_path);
  g_assert_cmpstr (gtk_stack_get_visible_child_name (main_stack (window)), ==, "main");
  banner = gk_ui_test_window_child (window, "master_key_banner");
  button = gk_ui_test_window_child (window, "master_key_banner_button");
  app_store = gk_backend_get_key_store (gk_window_get_backend (window));
  gk_ui_test_spin (200);
  g_assert_false (gtk_revealer_get_reveal_child (banner));

  g_assert_cmpint (g_unlink (f->key_file), ==, 0);
  gk_ui_test_wait (revealed, banner, "the missing master key banner");

  gk_key_spec_init (&spec);
  spec.name = "Added meanwhile";
  g_assert_cmpint (gk_key_store_add (app_store, &spec, api_key, &error), ==, 0);
  g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_MASTER_KEY_NOT_STORED);
  g_clear_error (&error);

  g_signal_emit_by_name (button, "clicked");
  gk_ui_test_wait (not_revealed, banner, "the banner to go");
  g_assert_true (g_file_test (f->key_file, G_FILE_TEST_EXISTS));
  g_assert_cmpint (gk_key_store_add (app_store, &spec, api_key, &error), >, 0);
  g_assert_no_error (error);

  gk_ui_test_close_window (window);
}

static void
test_wrong_key_file (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GkKeyStore) store = create_database_with_key_file (f);
  g_autofree char *wrong_file = g_build_filename (f->dir, "wrong.key", NULL);
  g_autoptr(GError) error = NULL;
  GkUnlockPage *unlock_page;
  GkWindow *window;

  /* 32 bytes, but not this database's key. */
  g_assert_true (g_file_set_contents_full (wrong_file, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", -1,
                                           G_FILE_SET_CONTENTS_CONSISTENT, 0600, &error));
  g_assert_no_error (error);
  g_setenv (GK_MASTER_KEY_FILE_ENV, wrong_file, TRUE);

  window = gk_ui_test_open_window (f->db_path);
  g_assert_cmpstr (gtk_stack_get_visible_child_name (main_stack (window)), ==, "unlock");
  unlock_page = gk_ui_test_window_child (window, "unlock_page");
  g_assert_cmpstr (gk_unlock_page_get_title (unlock_page), ==, "Wrong Master Key");

  gk_ui_test_close_window (window);
}

static void
test_live_refresh (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GkKeyStore) other = create_database_with_key_file (f);
  GkWindow *window;
  CountCheck check;
  gint64 written;

  g_setenv (GK_MASTER_KEY_FILE_ENV, f->key_file, TRUE);
  window = gk_ui_test_open_window (f->db_path);
  check.page = gk_ui_test_window_child (window, "keys_page");
  check.n = 2;
  gk_ui_test_wait (listed_count_is, &check, "two keys listed");

  /* Another connection, as the CLI or the headless gateway would be. */
  gk_test_add_key (other, "Added elsewhere", 5);
  written = g_get_monotonic_time ();
  check.n = 3;
  gk_ui_test_wait (listed_count_is, &check, "the key added by another connection");
  g_assert_cmpint (g_get_monotonic_time () - written, <, LIVE_REFRESH_LIMIT_US);

  gk_ui_test_close_window (window);
}

static gboolean
preferences_loaded (gpointer data)
{
  return gk_preferences_window_get_loaded (data);
}

/* Opens Preferences over @window and waits until it shows the settings. */
static GtkWidget *
show_preferences (GkWindow *window)
{
  GtkWidget *prefs = gk_preferences_window_new (GTK_WINDOW (window), gk_window_get_backend (window));

  gtk_window_present (GTK_WINDOW (prefs));
  gk_ui_test_wait (preferences_loaded, prefs, "the preferences to load");
  return prefs;
}

typedef struct
{
  GkDatabase *db;
  const char *key;
  const char *value;
} SettingCheck;

static gboolean
setting_is (gpointer data)
{
  SettingCheck *check = data;
  g_autofree char *value = gk_database_get_setting (check->db, check->key);

  return g_strcmp0 (value, check->value) == 0;
}

typedef struct
{
  GkDatabase *db;
  const char *before;
} MetaCheck;

static gboolean
check_value_changed (gpointer data)
{
  MetaCheck *check = data;
  g_autofree char *now = gk_database_get_meta (check->db, "key_check_value");

  return g_strcmp0 (now, check->before) != 0;
}

static gboolean
message_dialog_shown (gpointer data)
{
  return gk_ui_test_find_toplevel (ADW_TYPE_MESSAGE_DIALOG) != NULL;
}

static gboolean
rotate_sensitive (gpointer data)
{
  return gtk_widget_get_sensitive (data);
}

static void
test_preferences (Fixture       *f,
                  gconstpointer  data)
{
  GkWindow *window = gk_ui_test_open_window (f->db_path);
  GkBackend *backend = gk_window_get_backend (window);
  GkDatabase *db = gk_backend_get_database (backend);
  GtkWidget *prefs;
  GtkWidget *spin, *zone, *notify;
  SettingCheck check = { db, NULL, NULL };

  prefs = show_preferences (window);

  spin = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW, "threshold_spin"));
  zone = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW, "timezone_dropdown"));
  notify = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW,
                                                      "notifications_switch"));

  /* Shows the defaults. */
  g_assert_cmpint (gtk_spin_button_get_value_as_int (GTK_SPIN_BUTTON (spin)), ==, 5);
  g_assert_cmpstr (gtk_string_object_get_string (gtk_drop_down_get_selected_item (GTK_DROP_DOWN (zone))),
                   ==, GK_DEFAULT_RESET_TIMEZONE);

  gtk_spin_button_set_value (GTK_SPIN_BUTTON (spin), 12);
  check.key = GK_SETTING_ROTATION_THRESHOLD;
  check.value = "12";
  gk_ui_test_wait (setting_is, &check, "the threshold setting");

  gtk_switch_set_active (GTK_SWITCH (notify), FALSE);
  check.key = GK_SETTING_NOTIFICATIONS;
  check.value = "0";
  gk_ui_test_wait (setting_is, &check, "the notifications setting");

  /* The pool's budget: dollars with a comma or a point, empty for none;
   * nonsense changes nothing. */
  {
    GtkWidget *budget = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW,
                                                                   "pool_budget_row"));

    g_assert_cmpstr (gtk_editable_get_text (GTK_EDITABLE (budget)), ==, "");
    gtk_editable_set_text (GTK_EDITABLE (budget), "12,5");
    g_signal_emit_by_name (budget, "apply");
    check.key = GK_SETTING_POOL_BUDGET;
    check.value = "12.50";
    gk_ui_test_wait (setting_is, &check, "the pool budget setting");
    gtk_editable_set_text (GTK_EDITABLE (budget), "lots");
    g_signal_emit_by_name (budget, "apply");
    gk_ui_test_spin (300);
    g_assert_true (setting_is (&check));
    gtk_editable_set_text (GTK_EDITABLE (budget), "");
    g_signal_emit_by_name (budget, "apply");
    check.value = "";
    gk_ui_test_wait (setting_is, &check, "no pool budget");
  }

  /* Housekeeping: the unused-key days, and the master key's age (made by
   * this first run: 0 days, no reminder). */
  {
    GtkWidget *days = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW,
                                                                 "unused_days_spin"));
    GtkWidget *age = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW,
                                                                "master_key_age_row"));

    g_assert_cmpint (gtk_spin_button_get_value_as_int (GTK_SPIN_BUTTON (days)), ==, 30);
    gtk_spin_button_set_value (GTK_SPIN_BUTTON (days), 60);
    check.key = GK_SETTING_UNUSED_KEY_DAYS;
    check.value = "60";
    gk_ui_test_wait (setting_is, &check, "the unused-key days");
    g_assert_cmpstr (adw_action_row_get_subtitle (ADW_ACTION_ROW (age)), ==, "0 days old");
    g_assert_false (gtk_widget_has_css_class (age, "warning"));

    /* One click (and a confirmation) rotates the master key. */
    {
      GtkWidget *rotate = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW,
                                                                      "rotate_master_key_button"));
      g_autofree char *before = gk_database_get_meta (db, "key_check_value");
      GtkWidget *dialog;
      MetaCheck changed = { db, before };

      g_signal_emit_by_name (rotate, "clicked");
      gk_ui_test_wait (message_dialog_shown, NULL, "the confirmation");
      dialog = g_object_ref (gk_ui_test_find_toplevel (ADW_TYPE_MESSAGE_DIALOG));
      adw_message_dialog_response (ADW_MESSAGE_DIALOG (dialog), "rotate");
      gtk_window_destroy (GTK_WINDOW (dialog));
      g_object_unref (dialog);
      gk_ui_test_wait (check_value_changed, &changed, "the master key rotated");
      gk_ui_test_wait (rotate_sensitive, rotate, "the rotation to end");
      g_assert_cmpint (gk_audit_count (db, NULL), >, 0);
      {
        g_autoptr(GPtrArray) rows = gk_audit_list (db, 1, 0, NULL);

        g_assert_cmpint (((GkAuditRow *) g_ptr_array_index (rows, 0))->action, ==,
                         GK_AUDIT_MASTER_KEY_ROTATE);
      }
    }
  }

  /* The zone is chosen from a searchable list of identifiers GTimeZone
   * knows, not typed: no unknown zone can be set. */
  {
    GListModel *zones = gtk_drop_down_get_model (GTK_DROP_DOWN (zone));
    guint n = g_list_model_get_n_items (zones), berlin = GTK_INVALID_LIST_POSITION;

    g_assert_true (gtk_drop_down_get_enable_search (GTK_DROP_DOWN (zone)));
    g_assert_cmpuint (n, >, 300);
    for (guint i = 0; i < n; i++)
      {
        const char *id = gtk_string_list_get_string (GTK_STRING_LIST (zones), i);
        g_autoptr(GTimeZone) tz = g_time_zone_new_identifier (id);

        g_assert_nonnull (tz);
        if (g_str_equal (id, "Europe/Berlin"))
          berlin = i;
      }
    g_assert_cmpuint (berlin, !=, GTK_INVALID_LIST_POSITION);
    gtk_drop_down_set_selected (GTK_DROP_DOWN (zone), berlin);
  }
  check.key = GK_SETTING_RESET_TIMEZONE;
  check.value = "Europe/Berlin";
  gk_ui_test_wait (setting_is, &check, "the time zone setting");

  /* No Markdown in the text people read. */
  {
    GtkWidget *gateway_row = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW,
                                                                         "gateway_row"));
    const char *subtitle = adw_action_row_get_subtitle (ADW_ACTION_ROW (gateway_row));

    g_assert_null (strchr (subtitle != NULL ? subtitle : "", '`'));
  }

  gtk_window_destroy (GTK_WINDOW (prefs));
  gk_ui_test_close_window (window);
}

/* Preferences → Housekeeping once the master key is due for rotation:
 * the reminder points at the Rotate button beside it, which stands out. */
static void
test_preferences_master_key_due (Fixture       *f,
                                 gconstpointer  data)
{
  GkWindow *window = gk_ui_test_open_window (f->db_path);
  GkBackend *backend = gk_window_get_backend (window);
  GkDatabase *db = gk_backend_get_database (backend);
  g_autofree char *created = NULL;
  g_autoptr(GError) error = NULL;
  GtkWidget *prefs, *age, *rotate;

  created = g_strdup_printf ("%" G_GINT64_FORMAT, gk_database_now (db) - 200 * 86400);
  g_assert_true (gk_database_set_meta (db, GK_META_MASTER_KEY_CREATED, created, &error));
  g_assert_no_error (error);

  prefs = show_preferences (window);
  age = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW,
                                                   "master_key_age_row"));
  rotate = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW,
                                                      "rotate_master_key_button"));

  g_assert_cmpstr (adw_action_row_get_subtitle (ADW_ACTION_ROW (age)), ==,
                   "200 days old — Older than 180 days: time to rotate it");
  g_assert_true (gtk_widget_has_css_class (age, "warning"));
  g_assert_true (gtk_widget_has_css_class (rotate, "suggested-action"));

  gtk_window_destroy (GTK_WINDOW (prefs));
  gk_ui_test_close_window (window);
}

static gboolean
compact_done (gpointer data)
{
  GtkWidget *prefs = data;
  GtkWidget *button = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW,
                                                                 "compact_button"));
  GtkWidget *row = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW,
                                                              "compact_row"));

  return gtk_widget_get_sensitive (button)
         && g_str_has_prefix (adw_action_row_get_subtitle (ADW_ACTION_ROW (row)), "Removed");
}

/* Preferences → Storage: the retention choice is saved, and Compact runs
 * off the main thread, removes the old rows and reports what it did. */
static void
test_preferences_compact (Fixture       *f,
                          gconstpointer  data)
{
  GkWindow *window = gk_ui_test_open_window (f->db_path);
  GkBackend *backend = gk_window_get_backend (window);
  GkDatabase *db = gk_backend_get_database (backend);
  GtkWidget *prefs, *retention, *button;
  SettingCheck check = { db, GK_SETTING_USAGE_RETENTION_DAYS, "90" };
  GkUsageSummary summary;
  g_autoptr(GError) error = NULL;
  gint64 now = gk_database_now (db);
  g_autofree char *fill = NULL;

  /* 200 days of rows, one every 72 minutes, oldest first. */
  fill = g_strdup_printf ("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n"
                          " WHERE i < 3999) INSERT INTO gemini_key_usage_log (model, status,"
                          " user_id, cost_usd, created_at) SELECT 'gemini-2.5-flash', 'SUCCESS',"
                          " 'u' || (i %% 9), 0.125, %" G_GINT64_FORMAT " + i * 4320 FROM n",
                          now - 200 * 86400);
  gk_ui_test_exec_sql (db, fill);

  prefs = show_preferences (window);

  retention = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW,
                                                         "retention_row"));
  button = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW,
                                                      "compact_button"));
  /* Keep all by default. */
  g_assert_cmpuint (adw_combo_row_get_selected (ADW_COMBO_ROW (retention)), ==, 0);
  adw_combo_row_set_selected (ADW_COMBO_ROW (retention), 3);
  gk_ui_test_wait (setting_is, &check, "the retention setting");

  g_signal_emit_by_name (button, "clicked");
  g_assert_false (gtk_widget_get_sensitive (button));
  gk_ui_test_wait (compact_done, prefs, "the compaction to finish");

  g_assert_true (gk_stats_usage_summary (db, 0, 0, &summary, &error));
  g_assert_no_error (error);
  /* The 90 newest days of 200 are kept: 4000 × 90 / 200 rows, give or take one. */
  g_assert_cmpint (summary.requests, >=, 1799);
  g_assert_cmpint (summary.requests, <=, 1801);

  gtk_window_destroy (GTK_WINDOW (prefs));
  gk_ui_test_close_window (window);
}

/* A port nobody listens on right now. */
static guint
free_port (void)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GError) error = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (socket, any, TRUE, &error));
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);

  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static void
test_gateway_toggle (Fixture       *f,
                     gconstpointer  data)
{
  GkWindow *window;
  GkBackend *backend;
  GtkWidget *prefs, *gateway_switch, *port_spin;
  SettingCheck check = { NULL, GK_SETTING_GATEWAY_ENABLED, "1" };
  guint port;

  if (!gk_backend_has_gateway ())
    {
      g_test_skip ("built without the gateway");
      return;
    }

  window = gk_ui_test_open_window (f->db_path);
  backend = gk_window_get_backend (window);
  check.db = gk_backend_get_database (backend);
  prefs = show_preferences (window);

  gateway_switch = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW,
                                                              "gateway_switch"));
  port_spin = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW, "port_spin"));
  g_assert_true (gtk_widget_get_visible (gateway_switch));
  g_assert_false (gtk_switch_get_active (GTK_SWITCH (gateway_switch)));

  port = free_port ();
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (port_spin), port);
  gtk_switch_set_active (GTK_SWITCH (gateway_switch), TRUE);
  g_assert_true (gk_backend_get_gateway_running (backend));
  g_assert_cmpuint (gk_backend_get_gateway_port (backend), ==, port);
  gk_ui_test_wait (setting_is, &check, "the gateway setting on");

  gtk_switch_set_active (GTK_SWITCH (gateway_switch), FALSE);
  g_assert_false (gk_backend_get_gateway_running (backend));
  check.value = "0";
  gk_ui_test_wait (setting_is, &check, "the gateway setting off");

  gtk_window_destroy (GTK_WINDOW (prefs));
  gk_ui_test_close_window (window);
}

static gboolean
flag_is_set (gpointer data)
{
  return *(gboolean *) data;
}

static void
switch_done_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (gk_backend_switch_finish (GK_BACKEND (object), result, &error));
  g_assert_no_error (error);
  *(gboolean *) user_data = TRUE;
}

static gboolean
gateway_running (gpointer data)
{
  return gk_backend_get_gateway_running (data);
}

static gboolean
gateway_stopped (gpointer data)
{
  return !gk_backend_get_gateway_running (data);
}

static gboolean
backend_ready (gpointer data)
{
  return gk_backend_is_ready (data);
}

/* Puts the database at @path in the place of the one in use, as Team
 * Pool's Connect and Disconnect do, and waits until Preferences shows its
 * settings and the gateway is as @path's setting says. */
static void
switch_database (GkBackend  *backend,
                 GtkWidget  *prefs,
                 const char *path,
                 gboolean    gateway)
{
  gboolean done = FALSE;

  gk_backend_switch_async (backend, path, NULL, FALSE, NULL, switch_done_cb, &done);
  gk_ui_test_wait (flag_is_set, &done, "the switch to another database");
  gk_ui_test_wait (backend_ready, backend, "the other database to be unlocked");
  gk_ui_test_wait (gateway ? gateway_running : gateway_stopped, backend,
                   gateway ? "the gateway to start" : "the gateway to stop");
  gk_ui_test_wait (preferences_loaded, prefs, "the preferences to load");
}

/* Preferences' gateway switch shows whether the gateway runs, whoever
 * started or stopped it: a switch to a database whose setting enables the
 * gateway starts it (once the database is unlocked, after Preferences read
 * its settings), a switch back stops it, and so may the backend by itself. */
static void
test_gateway_follows_backend (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *other_path = g_build_filename (f->dir, "other.db", NULL);
  g_autofree char *port_text = NULL;
  GkWindow *window;
  GkBackend *backend;
  GtkWidget *prefs, *gateway_switch;
  guint port;

  if (!gk_backend_has_gateway ())
    {
      g_test_skip ("built without the gateway");
      return;
    }

  port = free_port ();
  port_text = g_strdup_printf ("%u", port);
  {
    g_autoptr(GkDatabase) other = gk_database_open (other_path, NULL, &error);

    g_assert_no_error (error);
    g_assert_true (gk_database_set_setting (other, GK_SETTING_GATEWAY_ENABLED, "1", &error));
    g_assert_true (gk_database_set_setting (other, GK_SETTING_GATEWAY_PORT, port_text, &error));
    g_assert_no_error (error);
  }

  window = gk_ui_test_open_window (f->db_path);
  backend = gk_window_get_backend (window);
  prefs = show_preferences (window);
  gateway_switch = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW,
                                                              "gateway_switch"));
  g_assert_false (gtk_switch_get_active (GTK_SWITCH (gateway_switch)));

  switch_database (backend, prefs, other_path, TRUE);
  g_assert_cmpuint (gk_backend_get_gateway_port (backend), ==, port);
  g_assert_true (gtk_switch_get_active (GTK_SWITCH (gateway_switch)));

  switch_database (backend, prefs, f->db_path, FALSE);
  g_assert_false (gtk_switch_get_active (GTK_SWITCH (gateway_switch)));

  g_assert_true (gk_backend_start_gateway (backend, port, &error));
  g_assert_no_error (error);
  g_assert_true (gtk_switch_get_active (GTK_SWITCH (gateway_switch)));
  gk_backend_stop_gateway (backend);
  g_assert_false (gtk_switch_get_active (GTK_SWITCH (gateway_switch)));
  /* Nothing was written: the setting stays as the database had it. */
  g_assert_cmpint (gk_database_get_setting_int (gk_backend_get_database (backend),
                                                GK_SETTING_GATEWAY_ENABLED, 0), ==, 0);

  gtk_window_destroy (GTK_WINDOW (prefs));
  gk_ui_test_close_window (window);
}

static gboolean
window_finalized (gpointer data)
{
  return *(gboolean *) data;
}

static void
window_weak_cb (gpointer  data,
                GObject  *where_the_object_was)
{
  *(gboolean *) data = TRUE;
}

/* Size and last tab survive a close (GSettings, memory backend here). */
static void
test_window_state (Fixture       *f,
                   gconstpointer  data)
{
  GkWindow *window;
  gboolean finalized = FALSE;
  int width, height;

  if (g_getenv ("GSETTINGS_SCHEMA_DIR") == NULL)
    {
      g_test_skip ("the schema is not compiled in the build tree");
      return;
    }

  window = gk_ui_test_open_window (f->db_path);
  gk_window_set_visible_tab (window, "rotations");
  gtk_window_set_default_size (GTK_WINDOW (window), 900, 650);
  gk_ui_test_spin (200);

  /* Closing (not destroying) is what saves the state. */
  g_object_weak_ref (G_OBJECT (window), window_weak_cb, &finalized);
  gtk_window_close (GTK_WINDOW (window));
  gk_ui_test_wait (window_finalized, &finalized, "the window to go");

  window = gk_ui_test_open_window (f->db_path);
  g_assert_cmpstr (gk_window_get_visible_tab (window), ==, "rotations");
  gtk_window_get_default_size (GTK_WINDOW (window), &width, &height);
  g_assert_cmpint (width, ==, 900);
  g_assert_cmpint (height, ==, 650);
  gk_ui_test_close_window (window);
}

static gboolean
loading_title_is_waiting (gpointer data)
{
  return g_strcmp0 (adw_status_page_get_title (data), "Waiting for the Keyring…") == 0;
}

static gboolean
file_exists (gpointer data)
{
  return g_file_test (data, G_FILE_TEST_EXISTS);
}

static gboolean
window_loaded (gpointer data)
{
  return gk_window_get_loaded (data);
}

/* The first start with a keyring that must first create its keyring: the
 * window says it waits for the keyring's prompt, and says what happened
 * when the prompt is dismissed. Runs in a private D-Bus session with a
 * fake prompter (see gk-test-util.h). */
static void
test_keyring_prompt (Fixture       *f,
                     gconstpointer  data)
{
  g_autofree char *flag = NULL;
  g_autoptr(GSubprocess) prompter = NULL;
  g_autoptr(GkBackend) backend = NULL;
  AdwStatusPage *loading_page;
  GkUnlockPage *unlock_page;
  GkWindow *window;

  if (!gk_test_in_private_session ())
    {
      gk_test_run_in_private_session ("/ui/window/keyring-prompt");
      return;
    }

  flag = g_build_filename (f->dir, "prompting", NULL);
  prompter = gk_test_start_fake_prompter (flag);
  gk_test_start_bare_keyring ();

  backend = gk_backend_new (f->db_path);
  window = gk_window_new (NULL, backend);
  /* The window holds it; closing the window must finalize it. */
  g_clear_object (&backend);
  gtk_window_present (GTK_WINDOW (window));
  loading_page = gk_ui_test_window_child (window, "loading_page");
  gk_ui_test_wait (loading_title_is_waiting, loading_page, "the keyring prompt to be shown");
  g_assert_cmpstr (gtk_stack_get_visible_child_name (main_stack (window)), ==, "loading");
  g_assert_cmpstr (adw_status_page_get_description (loading_page), ==,
                   "Answer the keyring’s password prompt");
  g_assert_false (gk_window_get_loaded (window));
  /* The keyring hands the prompt to the prompter a moment later. */
  gk_ui_test_wait (file_exists, flag, "the prompter to show the prompt");

  /* The user closes the prompt. */
  g_subprocess_force_exit (prompter);
  gk_ui_test_wait (window_loaded, window, "the window to give up on the keyring");
  g_assert_cmpstr (gtk_stack_get_visible_child_name (main_stack (window)), ==, "unlock");
  unlock_page = gk_ui_test_window_child (window, "unlock_page");
  g_assert_cmpstr (gk_unlock_page_get_title (unlock_page), ==, "Keyring Prompt Dismissed");
  g_assert_cmpstr (adw_status_page_get_title (loading_page), ==, "");

  gk_ui_test_close_window (window);
}

static void
weak_notify_cb (gpointer  data,
                GObject  *where_the_object_was)
{
  *(gboolean *) data = TRUE;
}

/* Quitting while every page, the notifier and the reset timer read the
 * database: the application disposes the backend (dropping its database,
 * key store and pool) while their jobs still run in worker threads. The
 * jobs must work on their own references, not read the backend's fields
 * (a CRITICAL, fatal here, or a freed key store). Another thread holds the
 * database's lock meanwhile, so every job is still running at the quit. */
static void
test_quit_while_loading (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(GkKeyStore) store = create_database_with_key_file (f);
  g_autoptr(GApplication) app = g_application_new (APP_ID ".QuitTest",
                                                   G_APPLICATION_NON_UNIQUE);

  g_setenv (GK_MASTER_KEY_FILE_ENV, f->key_file, TRUE);
  for (guint round = 0; round < QUIT_ROUNDS; round++)
    {
      GkWindow *window = gk_ui_test_open_window (f->db_path);
      GkBackend *backend = gk_window_get_backend (window);
      g_autoptr(GkNotifier) notifier = gk_notifier_new (app, backend);
      GkUiTestHolder *holder;
      gboolean finalized = FALSE;
      CountCheck check = { gk_ui_test_window_child (window, "keys_page"), 2 };

      gk_ui_test_wait (listed_count_is, &check, "two keys listed");
      g_object_weak_ref (G_OBJECT (backend), weak_notify_cb, &finalized);

      holder = gk_ui_test_hold_database (gk_backend_get_database (backend));
      /* Every page reloads, the notifier checks, the reset timer rearms. */
      gk_backend_notify_changed (backend);
      gk_ui_test_spin (100);

      /* As GkApplication's shutdown and the closing window do. */
      g_object_run_dispose (G_OBJECT (notifier));
      g_object_run_dispose (G_OBJECT (backend));
      gtk_window_destroy (GTK_WINDOW (window));
      gk_ui_test_holder_release (holder);

      /* The jobs hold the backend; they finish, then it goes. */
      gk_ui_test_wait (flag_is_set, &finalized, "the backend to be finalized");
      gk_ui_test_spin (100);
    }
}

int
main (int   argc,
      char *argv[])
{
  g_autofree char *schema_dir = NULL;
  g_autofree char *compiled = NULL;

  /* The build tree's compiled schema, when there is one; without it the
   * window keeps its state in memory only. */
  if (g_getenv ("GEMINI_KEYS_BUILD_ROOT") != NULL)
    {
      schema_dir = g_build_filename (g_getenv ("GEMINI_KEYS_BUILD_ROOT"), "data", NULL);
      compiled = g_build_filename (schema_dir, "gschemas.compiled", NULL);
      if (g_file_test (compiled, G_FILE_TEST_EXISTS))
        g_setenv ("GSETTINGS_SCHEMA_DIR", schema_dir, TRUE);
    }

  if (argc == 3 && g_str_equal (argv[1], GK_TEST_FAKE_PROMPTER_ARG))
    return gk_test_fake_prompter_main (argv[2]);

  gtk_test_init (&argc, &argv, NULL);
  gk_ui_test_fixed_locale ();
  gk_ui_test_adw_init ();

#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/ui/window/tabs-render", test_tabs_render);
  ADD ("/ui/window/actions", test_actions);
  ADD ("/ui/window/unlock-missing-then-import", test_unlock_missing_then_import);
  ADD ("/ui/window/keyring-prompt", test_keyring_prompt);
  ADD ("/ui/window/wrong-key-file", test_wrong_key_file);
  ADD ("/ui/window/master-key-vanished", test_master_key_vanished);
  ADD ("/ui/window/live-refresh", test_live_refresh);
  ADD ("/ui/window/preferences", test_preferences);
  ADD ("/ui/window/preferences-master-key-due", test_preferences_master_key_due);
  ADD ("/ui/window/preferences-compact", test_preferences_compact);
  ADD ("/ui/window/gateway-toggle", test_gateway_toggle);
  ADD ("/ui/window/gateway-follows-backend", test_gateway_follows_backend);
  ADD ("/ui/window/state", test_window_state);
  ADD ("/ui/window/quit-while-loading", test_quit_while_loading);
#undef ADD

  return g_test_run ();
}
