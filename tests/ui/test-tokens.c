/* test-tokens.c: Preferences → Client Tokens, driven through its widgets:
 * a created token is shown once and lets a program through the running
 * gateway, the list shows it with its last use, revoking asks first and
 * then refuses it, and the URL and snippets name the gateway's real port.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gstdio.h>

#include "gk-preferences-window.h"
#include "gk-test-util.h"
#include "gk-tokens-group.h"
#include "gk-ui-test-util.h"

typedef struct
{
  char *dir;
  char *db_path;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("gk-test-tokens-XXXXXX", &error);
  g_assert_no_error (error);
  f->db_path = g_build_filename (f->dir, "keys.db", NULL);
  g_unsetenv (GK_MASTER_KEY_FILE_ENV);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  gk_test_rm_rf (f->dir);
  g_free (f->db_path);
  g_free (f->dir);
}

/* The first widget below @root (or @root) named @name, or NULL. */
static GtkWidget *
find_named (GtkWidget  *root,
            const char *name)
{
  if (g_strcmp0 (gtk_widget_get_name (root), name) == 0)
    return root;
  for (GtkWidget *child = gtk_widget_get_first_child (root); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      GtkWidget *found = find_named (child, name);

      if (found != NULL)
        return found;
    }
  return NULL;
}

/* The token row titled @name, or NULL. */
static GtkWidget *
find_token_row (GtkWidget  *root,
                const char *name)
{
  if (ADW_IS_ACTION_ROW (root) && g_strcmp0 (gtk_widget_get_name (root), "token-row") == 0
      && g_strcmp0 (adw_preferences_row_get_title (ADW_PREFERENCES_ROW (root)), name) == 0)
    return root;
  for (GtkWidget *child = gtk_widget_get_first_child (root); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      GtkWidget *found = find_token_row (child, name);

      if (found != NULL)
        return found;
    }
  return NULL;
}

static gboolean
preferences_loaded (gpointer data)
{
  return gk_preferences_window_get_loaded (data);
}

static gboolean
tokens_loaded (gpointer data)
{
  return gk_tokens_group_get_loaded (data);
}

static gboolean
widget_visible (gpointer data)
{
  return gtk_widget_get_visible (data);
}

typedef struct
{
  GtkWidget  *root;
  const char *name;
  const char *subtitle_part;   /* NULL: the row must be gone */
} RowCheck;

static gboolean
row_matches (gpointer data)
{
  RowCheck *check = data;
  GtkWidget *row = find_token_row (check->root, check->name);

  if (check->subtitle_part == NULL)
    return row == NULL;
  return row != NULL
         && strstr (adw_action_row_get_subtitle (ADW_ACTION_ROW (row)), check->subtitle_part) != NULL;
}

static gboolean
has_error_class (gpointer data)
{
  return gtk_widget_has_css_class (data, "error");
}

static gboolean
sensitive (gpointer data)
{
  return gtk_widget_get_sensitive (data);
}

static gboolean
message_dialog_shown (gpointer data)
{
  return gk_ui_test_find_toplevel (ADW_TYPE_MESSAGE_DIALOG) != NULL;
}

/* Answers the open confirmation with @response. */
static void
answer_confirmation (const char *response)
{
  GtkWidget *dialog;

  gk_ui_test_wait (message_dialog_shown, NULL, "the confirmation");
  dialog = g_object_ref (gk_ui_test_find_toplevel (ADW_TYPE_MESSAGE_DIALOG));
  g_assert_nonnull (strstr (adw_message_dialog_get_heading (ADW_MESSAGE_DIALOG (dialog)), "ci-bot"));
  g_assert_cmpint (adw_message_dialog_get_response_appearance (ADW_MESSAGE_DIALOG (dialog), "revoke"),
                   ==, ADW_RESPONSE_DESTRUCTIVE);
  adw_message_dialog_response (ADW_MESSAGE_DIALOG (dialog), response);
  gtk_window_destroy (GTK_WINDOW (dialog));
  g_object_unref (dialog);
}

typedef struct
{
  GkDatabase *db;
  const char *token;
} VerifyCheck;

static gboolean
token_refused (gpointer data)
{
  VerifyCheck *check = data;
  g_autofree char *name = gk_token_verify (check->db, check->token);

  return name == NULL;
}

/* One request to the gateway on @port with @token; returns the HTTP status. */
static int
gateway_status (guint       port,
                const char *token)
{
  return gk_ui_test_gateway_request (port, "GET", "/v1beta/models", token, NULL);
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
clipboard_read_cb (GObject      *object,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  char **text = user_data;
  g_autoptr(GError) error = NULL;

  *text = gdk_clipboard_read_text_finish (GDK_CLIPBOARD (object), result, &error);
  g_assert_no_error (error);
}

static gboolean
text_read (gpointer data)
{
  return *(char **) data != NULL;
}

static char *
clipboard_text (GtkWidget *widget)
{
  char *text = NULL;

  gdk_clipboard_read_text_async (gtk_widget_get_clipboard (widget), NULL, clipboard_read_cb, &text);
  gk_ui_test_wait (text_read, &text, "the clipboard's text");
  return text;
}

static void
test_tokens (Fixture       *f,
             gconstpointer  data)
{
  GkWindow *window;
  GkBackend *backend;
  GkDatabase *db;
  g_autoptr(GkDatabase) other = NULL;
  g_autoptr(GError) error = NULL;
  GtkWidget *prefs, *group, *name_row, *create, *new_token_row, *token_label, *row;
  GtkWidget *gateway_switch, *port_spin;
  g_autofree char *token = NULL;
  g_autofree char *name = NULL;
  g_autofree char *expected_url = NULL;
  g_autofree char *copied = NULL;
  RowCheck check;
  VerifyCheck verify;
  guint port;

  if (!gk_backend_has_gateway ())
    {
      g_test_skip ("built without the gateway");
      return;
    }

  window = gk_ui_test_open_window (f->db_path);
  backend = gk_window_get_backend (window);
  db = gk_backend_get_database (backend);
  prefs = gk_preferences_window_new (GTK_WINDOW (window), backend);
  gtk_window_present (GTK_WINDOW (prefs));
  gk_ui_test_wait (preferences_loaded, prefs, "the preferences to load");
  group = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW, "tokens_group"));
  gk_ui_test_wait (tokens_loaded, group, "the token list");
  g_assert_true (gtk_widget_get_visible (group));

  /* Start the gateway on a free port: the URL and the snippets follow. */
  port = free_port ();
  gateway_switch = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW,
                                                              "gateway_switch"));
  port_spin = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW, "port_spin"));
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (port_spin), port);
  gtk_switch_set_active (GTK_SWITCH (gateway_switch), TRUE);
  g_assert_true (gk_backend_get_gateway_running (backend));
  g_assert_cmpuint (gk_backend_get_gateway_port (backend), ==, port);
  expected_url = g_strdup_printf ("http://127.0.0.1:%u", port);
  g_assert_cmpstr (gk_tokens_group_get_url (GK_TOKENS_GROUP (group)), ==, expected_url);
  g_assert_cmpstr (adw_action_row_get_subtitle (ADW_ACTION_ROW (find_named (group, "gateway-url"))),
                   ==, expected_url);
  {
    const char *buttons[] = { "copy-curl", "copy-python", "copy-javascript" };

    for (guint i = 0; i < G_N_ELEMENTS (buttons); i++)
      {
        GtkWidget *button = find_named (group, buttons[i]);
        GtkWidget *label = g_object_get_data (G_OBJECT (button), "gk-snippet-label");

        g_assert_nonnull (strstr (gtk_label_get_text (GTK_LABEL (label)), expected_url));
      }
  }

  /* The copy button puts the URL on the clipboard. */
  gdk_clipboard_set_text (gtk_widget_get_clipboard (group), "something else");
  g_signal_emit_by_name (find_named (group, "copy-url"), "clicked");
  copied = clipboard_text (group);
  g_assert_cmpstr (copied, ==, expected_url);

  /* The name is checked with the core's rules before anything is sent. */
  name_row = find_named (group, "token-name");
  create = find_named (group, "create-token");
  new_token_row = find_named (group, "new-token");
  token_label = find_named (group, "new-token-text");
  g_assert_false (gtk_widget_get_visible (new_token_row));
  g_assert_false (gtk_widget_get_sensitive (create));
  gtk_editable_set_text (GTK_EDITABLE (name_row), " ci-bot");
  g_assert_false (gtk_widget_get_sensitive (create));
  g_assert_false (gtk_widget_has_css_class (name_row, "error"));
  g_signal_emit_by_name (name_row, "entry-activated");
  g_assert_true (gtk_widget_has_css_class (name_row, "error"));
  gtk_editable_set_text (GTK_EDITABLE (name_row), "ci-bot");
  g_assert_false (gtk_widget_has_css_class (name_row, "error"));
  g_assert_true (gtk_widget_get_sensitive (create));

  /* Create: shown once with a warning, and it authenticates. */
  g_signal_emit_by_name (create, "clicked");
  gk_ui_test_wait (widget_visible, new_token_row, "the new token");
  token = g_strdup (gtk_label_get_text (GTK_LABEL (token_label)));
  g_assert_true (g_str_has_prefix (token, "gk_"));
  g_assert_true (gtk_widget_get_visible (find_named (group, "new-token-warning")));
  g_assert_nonnull (strstr (gtk_label_get_text (GTK_LABEL (find_named (group, "new-token-warning"))),
                            "not be shown again"));
  g_assert_cmpstr (gtk_editable_get_text (GTK_EDITABLE (name_row)), ==, "");

  g_signal_emit_by_name (find_named (group, "copy-token"), "clicked");
  g_clear_pointer (&copied, g_free);
  copied = clipboard_text (group);
  g_assert_cmpstr (copied, ==, token);

  /* Listed, never used so far. */
  check = (RowCheck) { group, "ci-bot", "never used" };
  gk_ui_test_wait (row_matches, &check, "the new token's row");

  /* A headless gateway (another connection) accepts it and records its
   * use: the row shows it. */
  other = gk_database_open (f->db_path, NULL, &error);
  g_assert_no_error (error);
  name = gk_token_verify (other, token);
  g_assert_cmpstr (name, ==, "ci-bot");
  check.subtitle_part = "last used";
  gk_ui_test_wait (row_matches, &check, "the token's last use");

  /* The app's running gateway lets it through too, and refuses others. */
  g_assert_cmpint (gateway_status (port, "gk_not-a-token"), ==, 401);
  g_assert_cmpint (gateway_status (port, token), !=, 401);

  /* Done: the token is gone from the window. */
  g_signal_emit_by_name (find_named (group, "dismiss-token"), "clicked");
  g_assert_false (gtk_widget_get_visible (new_token_row));
  g_assert_null (gk_ui_test_find_label (prefs, token));

  /* The same name again is refused, with the store's message. */
  gtk_editable_set_text (GTK_EDITABLE (name_row), "ci-bot");
  g_signal_emit_by_name (create, "clicked");
  gk_ui_test_wait (has_error_class, name_row, "the duplicate name refused");
  gk_ui_test_wait (sensitive, create, "the create button back");
  g_assert_false (gtk_widget_get_visible (new_token_row));

  /* Revoke asks first: Cancel keeps the token. */
  row = find_token_row (group, "ci-bot");
  g_signal_emit_by_name (find_named (row, "revoke-token"), "clicked");
  answer_confirmation ("cancel");
  gk_ui_test_spin (300);
  g_clear_pointer (&name, g_free);
  name = gk_token_verify (other, token);
  g_assert_cmpstr (name, ==, "ci-bot");
  g_assert_nonnull (find_token_row (group, "ci-bot"));

  /* Revoke: refused at once, and off the list. */
  g_signal_emit_by_name (find_named (row, "revoke-token"), "clicked");
  answer_confirmation ("revoke");
  verify = (VerifyCheck) { other, token };
  gk_ui_test_wait (token_refused, &verify, "the token revoked");
  check.subtitle_part = NULL;
  gk_ui_test_wait (row_matches, &check, "the revoked token's row gone");
  g_assert_cmpint (gateway_status (port, token), ==, 401);

  gk_crypto_wipe_string (g_steal_pointer (&token));
  gk_backend_stop_gateway (backend);
  gtk_window_destroy (GTK_WINDOW (prefs));
  gk_ui_test_close_window (window);
  (void) db;
}

/* Closing Preferences lets go of the backend, with a token shown and a
 * list read in flight (gk_ui_test_close_window waits for it to go). */
static void
test_tokens_release_backend (Fixture       *f,
                             gconstpointer  data)
{
  GkWindow *window = gk_ui_test_open_window (f->db_path);
  GkBackend *backend = gk_window_get_backend (window);
  GtkWidget *prefs = gk_preferences_window_new (GTK_WINDOW (window), backend);
  GtkWidget *group, *name_row;

  gtk_window_present (GTK_WINDOW (prefs));
  gk_ui_test_wait (preferences_loaded, prefs, "the preferences to load");
  group = GTK_WIDGET (gtk_widget_get_template_child (prefs, GK_TYPE_PREFERENCES_WINDOW, "tokens_group"));
  gk_ui_test_wait (tokens_loaded, group, "the token list");
  name_row = find_named (group, "token-name");
  gtk_editable_set_text (GTK_EDITABLE (name_row), "nightly");
  g_signal_emit_by_name (find_named (group, "create-token"), "clicked");
  gk_ui_test_wait (widget_visible, find_named (group, "new-token"), "the new token");
  gk_backend_notify_changed (backend);

  gtk_window_destroy (GTK_WINDOW (prefs));
  gk_ui_test_close_window (window);
}

int
main (int   argc,
      char *argv[])
{
  gtk_test_init (&argc, &argv, NULL);
  gk_ui_test_fixed_locale ();
  gk_ui_test_adw_init ();

  g_test_add ("/ui/tokens/create-list-revoke", Fixture, NULL, fixture_setup, test_tokens,
              fixture_teardown);

  g_test_add ("/ui/tokens/release-backend", Fixture, NULL, fixture_setup, test_tokens_release_backend,
              fixture_teardown);

  return g_test_run ();
}
