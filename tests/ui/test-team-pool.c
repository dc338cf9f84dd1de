/* test-team-pool.c: Preferences → Team Pool against a real PostgreSQL
 * server (run by tests/pg/pg-cluster.sh, suite postgresql): a wrong
 * password is refused with a clear error and changes nothing; Connect
 * shows the keys another connection added to the team database; the
 * password is in the keyring and in no setting or file; Disconnect brings
 * the local file's keys back; the app starts on the team database next
 * time; an unreachable one shows why, and the local file on request.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include "gk-dashboard-page.h"
#include "gk-database-private.h"
#include "gk-key-row.h"
#include "gk-keys-page.h"
#include "gk-preferences-window.h"
#include "gk-test-util.h"
#include "gk-ui-test-util.h"
#include "gk-unlock-page.h"
#include "pg-test-util.h"

#define TEAM_DATABASE_KEY "team-database"

/* The cluster's URI without its password, the password, and the folders
 * every file of the test goes to (data, settings). */
static char *target;
static char *password;
static char *home;

/* Adds a key named @name to @db (a connection of its own, as another
 * member's app or the CLI would have), creating its master key in the
 * keyring on first use, and records @uses requests of it. */
static void
add_key (GkDatabase *db,
         const char *name,
         guint       uses)
{
  g_autoptr(GkSecretStore) secrets = gk_secret_store_new_for_file (NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) master_key = gk_secret_store_unlock (secrets, db, NULL, &error);
  g_autoptr(GkKeyStore) store = NULL;
  g_autoptr(GkPool) pool = NULL;
  gint64 id;

  g_assert_no_error (error);
  store = gk_key_store_new (db, master_key);
  pool = gk_pool_new (db, NULL);
  id = gk_test_add_key (store, name, 5);
  for (guint i = 0; i < uses; i++)
    gk_test_track (pool, id, GK_USAGE_SUCCESS, 100);
}

static GSettings *
settings_new (void)
{
  return g_settings_new (APP_ID);
}

typedef struct
{
  GkKeysPage *page;
  const char *name;
} KeyCheck;

/* The keys page lists exactly one key, named check->name. */
static gboolean
lists_only (gpointer data)
{
  KeyCheck *check = data;
  GListModel *keys = gk_keys_page_get_keys (check->page);
  g_autoptr(GkKeyRow) row = NULL;

  if (gk_keys_page_get_loading (check->page) || g_list_model_get_n_items (keys) != 1)
    return FALSE;
  row = g_list_model_get_item (keys, 0);
  return g_strcmp0 (gk_key_row_get_name (row), check->name) == 0;
}

static void
wait_lists_only (GkWindow   *window,
                 const char *name)
{
  KeyCheck check = { gk_ui_test_window_child (window, "keys_page"), name };
  g_autofree char *what = g_strdup_printf ("the keys page to list only “%s”", name);

  gk_ui_test_wait (lists_only, &check, what);
}

typedef struct
{
  GkDashboardPage *page;
  const char      *requests;
} RequestsCheck;

/* The dashboard's request count, the value after its card's title. */
static gboolean
dashboard_requests_are (gpointer data)
{
  RequestsCheck *check = data;
  GtkWidget *title;
  GtkWidget *value;

  if (gk_dashboard_page_get_loading (check->page))
    return FALSE;
  title = gk_ui_test_find_label (GTK_WIDGET (check->page), "Requests, Last 7 Days");
  value = title != NULL ? gtk_widget_get_next_sibling (title) : NULL;
  return GTK_IS_LABEL (value) && g_strcmp0 (gtk_label_get_label (GTK_LABEL (value)),
                                            check->requests) == 0;
}

static void
wait_dashboard_requests (GkWindow   *window,
                         const char *requests)
{
  RequestsCheck check = { gk_ui_test_window_child (window, "dashboard_page"), requests };
  g_autofree char *what = g_strdup_printf ("the dashboard to count %s requests", requests);

  gk_ui_test_wait (dashboard_requests_are, &check, what);
}

static gpointer
prefs_child (GtkWidget  *prefs,
             const char *name)
{
  GObject *child = gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW, name);

  g_assert_nonnull (child);
  return child;
}

static gboolean
preferences_loaded (gpointer data)
{
  return gk_preferences_window_get_loaded (data);
}

static gboolean
team_idle (gpointer data)
{
  return !gtk_spinner_get_spinning (prefs_child (data, "team_spinner"))
         && gk_preferences_window_get_loaded (data);
}

static const char *
team_status (GtkWidget *prefs)
{
  return adw_action_row_get_subtitle (prefs_child (prefs, "team_status_row"));
}

/* Clicks @button of the Team Pool group and waits until it is done. */
static void
click_team (GtkWidget  *prefs,
            const char *button)
{
  GtkWidget *widget = prefs_child (prefs, button);

  g_assert_true (gtk_widget_get_sensitive (widget));
  g_signal_emit_by_name (widget, "clicked");
  gk_ui_test_wait (team_idle, prefs, button);
}

static char *
lookup_password (void)
{
  g_autoptr(GkSecretStore) secrets = gk_secret_store_new_for_file (NULL);
  g_autoptr(GError) error = NULL;
  char *found = gk_team_database_lookup_password (secrets, target, NULL, &error);

  g_assert_no_error (error);
  return found;
}

/* No file under @dir holds @needle. */
static void
assert_no_file_holds (const char *dir,
                      const char *needle)
{
  g_autoptr(GDir) listing = g_dir_open (dir, 0, NULL);
  const char *name;

  if (listing == NULL)
    return;
  while ((name = g_dir_read_name (listing)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);

      if (g_file_test (path, G_FILE_TEST_IS_DIR))
        assert_no_file_holds (path, needle);
      else if (gk_ui_test_file_contains (path, needle))
        g_error ("%s holds the password", path);
    }
}

static void
test_connect_disconnect (void)
{
  g_autofree char *local_path = gk_database_default_path ();
  g_autoptr(GkDatabase) local = NULL;
  g_autoptr(GkDatabase) team = NULL;
  g_autoptr(GSettings) settings = settings_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *stored = NULL;
  g_autofree char *saved = NULL;
  GkWindow *window;
  GtkWidget *prefs;

  /* This computer's file, and the team database as another member left it. */
  local = gk_database_open (local_path, NULL, &error);
  g_assert_no_error (error);
  add_key (local, "Local key", 0);
  team = gk_team_database_open (target, password, NULL, &error);
  g_assert_no_error (error);
  add_key (team, "Team key", 3);

  window = gk_ui_test_open_window (NULL);
  wait_lists_only (window, "Local key");
  wait_dashboard_requests (window, "0");
  prefs = gk_preferences_window_new (GTK_WINDOW (window), gk_window_get_backend (window));
  gtk_window_present (GTK_WINDOW (prefs));
  gk_ui_test_wait (preferences_loaded, prefs, "the preferences to load");
  g_assert_cmpstr (team_status (prefs), ==, "This computer’s database file");
  g_assert_false (gtk_widget_get_visible (prefs_child (prefs, "team_disconnect_button")));

  /* A password in the connection string is refused: it belongs in the keyring. */
  gtk_editable_set_text (prefs_child (prefs, "team_uri_row"), g_getenv ("GK_TEST_PG_URI"));
  g_signal_emit_by_name (prefs_child (prefs, "team_connect_button"), "clicked");
  g_assert_nonnull (strstr (team_status (prefs), "Leave the password"));

  /* A wrong password: a clear error, nothing stored, still the local file. */
  gtk_editable_set_text (prefs_child (prefs, "team_uri_row"), target);
  gtk_editable_set_text (prefs_child (prefs, "team_password_row"), "not-the-password");
  click_team (prefs, "team_connect_button");
  g_test_message ("%s", team_status (prefs));
  g_assert_nonnull (strstr (team_status (prefs), "refused the password"));
  g_assert_true (gtk_widget_has_css_class (prefs_child (prefs, "team_status_row"), "error"));
  stored = lookup_password ();
  g_assert_null (stored);
  saved = g_settings_get_string (settings, TEAM_DATABASE_KEY);
  g_assert_cmpstr (saved, ==, "");
  wait_lists_only (window, "Local key");

  /* Test Connection with the right one says what it found. */
  gtk_editable_set_text (prefs_child (prefs, "team_password_row"), password);
  click_team (prefs, "team_test_button");
  g_test_message ("%s", team_status (prefs));
  g_assert_true (g_str_has_prefix (team_status (prefs), "Reachable: schema version"));
  g_assert_true (gk_backend_get_database (gk_window_get_backend (window)) != team);

  /* Connect: the team's keys and dashboard, the password in the keyring
   * only. */
  click_team (prefs, "team_connect_button");
  wait_lists_only (window, "Team key");
  wait_dashboard_requests (window, "3");
  g_assert_true (gk_backend_is_team (gk_window_get_backend (window)));
  g_assert_nonnull (strstr (team_status (prefs), target));
  g_assert_true (gtk_widget_get_visible (prefs_child (prefs, "team_disconnect_button")));
  g_assert_cmpstr (gtk_editable_get_text (prefs_child (prefs, "team_password_row")), ==, "");
  stored = lookup_password ();
  g_assert_cmpstr (stored, ==, password);
  g_clear_pointer (&saved, g_free);
  saved = g_settings_get_string (settings, TEAM_DATABASE_KEY);
  g_assert_cmpstr (saved, ==, target);
  g_settings_sync ();
  {
    g_autofree char *keyfile = g_build_filename (home, "config", "glib-2.0", "settings",
                                                 "keyfile", NULL);

    /* The settings are in a file indeed, and the search below reads it. */
    g_assert_true (gk_ui_test_file_contains (keyfile, target));
  }
  assert_no_file_holds (home, password);

  /* Disconnect: the local file's keys again; the password is forgotten. */
  click_team (prefs, "team_disconnect_button");
  wait_lists_only (window, "Local key");
  wait_dashboard_requests (window, "0");
  g_assert_false (gk_backend_is_team (gk_window_get_backend (window)));
  g_assert_cmpstr (gk_backend_get_target (gk_window_get_backend (window)), ==, local_path);
  g_clear_pointer (&stored, g_free);
  stored = lookup_password ();
  g_assert_null (stored);
  g_clear_pointer (&saved, g_free);
  saved = g_settings_get_string (settings, TEAM_DATABASE_KEY);
  g_assert_cmpstr (saved, ==, "");

  gtk_window_destroy (GTK_WINDOW (prefs));
  gk_ui_test_close_window (window);
}

/* Renames a key of the team database through a connection of its own, as
 * another member's app would. */
static void
rename_team_key (const char *from,
                 const char *to)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) team = gk_team_database_open (target, password, NULL, &error);
  g_autofree char *sql = NULL;

  g_assert_no_error (error);
  sql = g_strdup_printf ("UPDATE gemini_api_keys SET name = '%s' WHERE name = '%s'", to, from);
  g_assert_true (gk_database_exec (team, sql, &error));
  g_assert_no_error (error);
}

/* Kept in the settings and the keyring: the next start is on the team
 * database. */
static void
test_starts_on_team (void)
{
  g_autoptr(GSettings) settings = settings_new ();
  g_autoptr(GkSecretStore) secrets = gk_secret_store_new_for_file (NULL);
  g_autoptr(GError) error = NULL;
  GkWindow *window;

  g_assert_true (gk_team_database_store_password (secrets, target, password, NULL, &error));
  g_assert_no_error (error);
  g_settings_set_string (settings, TEAM_DATABASE_KEY, target);

  window = gk_ui_test_open_window (NULL);
  wait_lists_only (window, "Team key");
  g_assert_cmpstr (gk_backend_get_target (gk_window_get_backend (window)), ==, target);

  /* Another member renames the key: the window follows, as it follows
   * another process's commits to the local file. */
  rename_team_key ("Team key", "Renamed by a colleague");
  wait_lists_only (window, "Renamed by a colleague");
  rename_team_key ("Renamed by a colleague", "Team key");
  wait_lists_only (window, "Team key");
  gk_ui_test_close_window (window);

  g_assert_true (gk_team_database_forget_password (secrets, target, NULL, &error));
  g_settings_set_string (settings, TEAM_DATABASE_KEY, "");
}

/* The team database cannot be reached at the start: the reason and
 * nothing else, until the user takes the local file (for this run: the
 * setting stays). */
static void
test_unreachable (void)
{
  g_autoptr(GSettings) settings = settings_new ();
  g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                            G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autofree char *unreachable = NULL;
  g_autofree char *saved = NULL;
  GkWindow *window;
  GkUnlockPage *page;

  /* A port bound and let go: nothing listens there. */
  g_assert_true (g_socket_bind (socket, any, FALSE, NULL));
  bound = g_socket_get_local_address (socket, NULL);
  unreachable = g_strdup_printf ("postgresql://gk_test@127.0.0.1:%u/gk_test",
                                 g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
  g_socket_close (socket, NULL);
  g_settings_set_string (settings, TEAM_DATABASE_KEY, unreachable);

  window = gk_ui_test_open_window (NULL);
  page = gk_ui_test_window_child (window, "unlock_page");
  g_assert_cmpstr (gtk_stack_get_visible_child_name (gk_ui_test_window_child (window, "main_stack")),
                   ==, "unlock");
  g_assert_cmpstr (gk_unlock_page_get_title (page), ==, "The Team Database Cannot Be Reached");
  g_assert_nonnull (gk_ui_test_find_label (GTK_WIDGET (page), "Use the _Local File"));

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "unlock.use-local", NULL));
  wait_lists_only (window, "Local key");
  saved = g_settings_get_string (settings, TEAM_DATABASE_KEY);
  g_assert_cmpstr (saved, ==, unreachable);
  gk_ui_test_close_window (window);
  g_settings_set_string (settings, TEAM_DATABASE_KEY, "");
}

static gboolean
shows_unlock_page (gpointer data)
{
  GtkStack *stack = gk_ui_test_window_child (data, "main_stack");

  return g_strcmp0 (gtk_stack_get_visible_child_name (stack), "unlock") == 0;
}

/* The team's master key is not in this keyring yet: the team database's
 * keys wait behind the usual import of the master key file. */
static void
test_master_key_missing (void)
{
  g_autoptr(GkSecretStore) secrets = gk_secret_store_new_for_file (NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) team = gk_team_database_open (target, password, NULL, &error);
  g_autoptr(GBytes) master_key = NULL;
  g_autofree char *key_file = g_build_filename (home, "team.key", NULL);
  g_autoptr(GFile) file = g_file_new_for_path (key_file);
  GkWindow *window;
  GtkWidget *prefs;
  GkUnlockPage *page;

  /* As a member who has not imported it yet: the file, and nothing in the
   * keyring. */
  g_assert_no_error (error);
  master_key = gk_secret_store_unlock (secrets, team, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (gk_secret_store_export_file (secrets, master_key, key_file, &error));
  g_assert_true (gk_secret_store_clear (secrets, gk_database_get_uuid (team), NULL, &error));
  g_assert_no_error (error);

  window = gk_ui_test_open_window (NULL);
  wait_lists_only (window, "Local key");
  prefs = gk_preferences_window_new (GTK_WINDOW (window), gk_window_get_backend (window));
  gtk_window_present (GTK_WINDOW (prefs));
  gk_ui_test_wait (preferences_loaded, prefs, "the preferences to load");
  gtk_editable_set_text (prefs_child (prefs, "team_uri_row"), target);
  gtk_editable_set_text (prefs_child (prefs, "team_password_row"), password);
  click_team (prefs, "team_connect_button");

  gk_ui_test_wait (shows_unlock_page, window, "the unlock page");
  page = gk_ui_test_window_child (window, "unlock_page");
  g_assert_cmpstr (gk_unlock_page_get_title (page), ==, "Master Key Missing");
  g_signal_emit_by_name (page, "import-file", file);
  wait_lists_only (window, "Team key");

  /* Back to the file, as the other tests expect. */
  click_team (prefs, "team_disconnect_button");
  wait_lists_only (window, "Local key");
  gtk_window_destroy (GTK_WINDOW (prefs));
  gk_ui_test_close_window (window);
}

int
main (int   argc,
      char *argv[])
{
  g_autofree char *schema_dir = NULL;
  g_autoptr(GError) error = NULL;

  /* Every file of the test in one folder, the settings written to a file
   * there (not kept in memory), to look for the password in. */
  home = g_dir_make_tmp ("gk-test-team-XXXXXX", &error);
  g_assert_no_error (error);
  {
    g_autofree char *config = g_build_filename (home, "config", NULL);
    g_autofree char *data = g_build_filename (home, "data", NULL);

    g_setenv ("XDG_CONFIG_HOME", config, TRUE);
    g_setenv ("GEMINI_KEYS_DATA_DIR", data, TRUE);
  }
  g_setenv ("GSETTINGS_BACKEND", "keyfile", TRUE);
  schema_dir = g_build_filename (g_getenv ("GEMINI_KEYS_BUILD_ROOT"), "data", NULL);
  g_setenv ("GSETTINGS_SCHEMA_DIR", schema_dir, TRUE);
  g_unsetenv ("GEMINI_KEYS_DATABASE");
  g_unsetenv (GK_MASTER_KEY_FILE_ENV);
  pg_test_split_uri (&target, &password);

  gtk_test_init (&argc, &argv, NULL);
  gk_ui_test_fixed_locale ();
  gk_ui_test_adw_init ();

  g_test_add_func ("/team-pool/connect-disconnect", test_connect_disconnect);
  g_test_add_func ("/team-pool/starts-on-team", test_starts_on_team);
  g_test_add_func ("/team-pool/unreachable", test_unreachable);
  g_test_add_func ("/team-pool/master-key-missing", test_master_key_missing);

  {
    int status = g_test_run ();

    gk_test_rm_rf (home);
    return status;
  }
}
