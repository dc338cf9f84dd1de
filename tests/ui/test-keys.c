/* test-keys.c: the Keys tab driven through its real widgets: add (valid,
 * each kind of invalid input, duplicate), edit, copy, rotate, delete.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

#include "gk-import-dialog.h"
#include "gk-key-dialog.h"
#include "gk-key-row.h"
#include "gk-keys-page.h"
#include "gk-quota-bar.h"
#include "gk-test-util.h"
#include "gk-ui-test-util.h"

typedef struct
{
  char       *dir;
  char       *db_path;
  GkWindow   *window;
  GkBackend  *backend;
  GkKeysPage *page;
} Fixture;

/* Toasts tell what happened; they end up in the test log. */
static void
toast_cb (GkKeysPage *page,
          AdwToast   *toast)
{
  g_test_message ("toast: %s", adw_toast_get_title (toast));
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("gk-test-keys-XXXXXX", &error);
  g_assert_no_error (error);
  f->db_path = g_build_filename (f->dir, "keys.db", NULL);

  f->window = gk_ui_test_open_window (f->db_path);
  f->backend = gk_window_get_backend (f->window);
  g_assert_true (gk_backend_is_ready (f->backend));
  f->page = gk_ui_test_window_child (f->window, "keys_page");
  g_signal_connect (f->page, "add-toast", G_CALLBACK (toast_cb), NULL);
  gk_window_set_visible_tab (f->window, "keys");
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  if (f->window != NULL)
    gk_ui_test_close_window (f->window);
  gk_test_rm_rf (f->dir);
  g_free (f->db_path);
  g_free (f->dir);
}

/* Conditions */

static gboolean
page_idle (gpointer data)
{
  Fixture *f = data;

  return !gk_keys_page_get_loading (f->page);
}

typedef struct
{
  Fixture *f;
  guint    n;
} CountCheck;

static gboolean
listed_count_is (gpointer data)
{
  CountCheck *check = data;

  return !gk_keys_page_get_loading (check->f->page) &&
         g_list_model_get_n_items (gk_keys_page_get_keys (check->f->page)) == check->n;
}

static void
wait_listed (Fixture *f,
             guint    n)
{
  CountCheck check = { f, n };
  g_autofree char *what = g_strdup_printf ("%u keys listed", n);

  gk_ui_test_wait (listed_count_is, &check, what);
}

static gboolean
no_dialog (gpointer data)
{
  return gk_ui_test_find_toplevel (GK_TYPE_KEY_DIALOG) == NULL;
}

static gboolean
message_dialog_shown (gpointer data)
{
  return gk_ui_test_find_toplevel (ADW_TYPE_MESSAGE_DIALOG) != NULL;
}

static gboolean
no_message_dialog (gpointer data)
{
  return gk_ui_test_find_toplevel (ADW_TYPE_MESSAGE_DIALOG) == NULL;
}

/* Helpers */

static guint
stored_count (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = gk_key_store_list (gk_backend_get_key_store (f->backend), &error);

  g_assert_no_error (error);
  return keys->len;
}

static gint64
add_stored_key (Fixture    *f,
                const char *name,
                guint       n)
{
  gint64 id;

  id = gk_test_add_key (gk_backend_get_key_store (f->backend), name, 5);
  (void) n;
  gk_backend_notify_changed (f->backend);
  return id;
}

/* What a click on one of the dialog's buttons does: respond, then close. */
static void
respond (const char *response)
{
  GtkWidget *dialog = gk_ui_test_find_toplevel (ADW_TYPE_MESSAGE_DIALOG);

  g_assert_nonnull (dialog);
  g_assert_true (adw_message_dialog_has_response (ADW_MESSAGE_DIALOG (dialog), response));
  adw_message_dialog_response (ADW_MESSAGE_DIALOG (dialog), response);
  gtk_window_close (GTK_WINDOW (dialog));
  gk_ui_test_wait (no_message_dialog, NULL, "the confirmation to close");
}

static GkKeyDialog *
open_add_dialog (Fixture *f)
{
  GtkWidget *dialog;

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), "keys.add", NULL));
  dialog = gk_ui_test_find_toplevel (GK_TYPE_KEY_DIALOG);
  g_assert_nonnull (dialog);
  g_assert_cmpint (gk_key_dialog_get_key_id (GK_KEY_DIALOG (dialog)), ==, 0);

  return GK_KEY_DIALOG (dialog);
}

static GtkWidget *
dialog_child (GkKeyDialog *dialog,
              const char  *name)
{
  GObject *child = gtk_widget_get_template_child (GTK_WIDGET (dialog), GK_TYPE_KEY_DIALOG, name);

  g_assert_nonnull (child);
  return GTK_WIDGET (child);
}

static void
set_text (GkKeyDialog *dialog,
          const char  *row,
          const char  *text)
{
  gtk_editable_set_text (GTK_EDITABLE (dialog_child (dialog, row)), text);
}

static gboolean
save_sensitive (GkKeyDialog *dialog)
{
  return gtk_widget_get_sensitive (dialog_child (dialog, "save_button"));
}

static void
click_save (GkKeyDialog *dialog)
{
  g_signal_emit_by_name (dialog_child (dialog, "save_button"), "clicked");
}

/* Asserts the inline error of @row: shown (non-empty, row marked) or not. */
static void
assert_field_error (GkKeyDialog *dialog,
                    const char  *row,
                    const char  *label,
                    gboolean     shown)
{
  GtkWidget *error_label = dialog_child (dialog, label);

  g_assert_cmpint (gtk_widget_get_visible (error_label), ==, shown);
  g_assert_cmpint (gtk_widget_has_css_class (dialog_child (dialog, row), "error"), ==, shown);
  if (shown)
    g_assert_cmpstr (gtk_label_get_text (GTK_LABEL (error_label)), !=, "");
}

static GkKeyRow *
listed_row (Fixture *f,
            guint    position)
{
  GkKeyRow *row = g_list_model_get_item (gk_keys_page_get_keys (f->page), position);

  g_assert_nonnull (row);
  g_object_unref (row);   /* the model keeps it */
  return row;
}

/* Tests */

static void
test_empty_state (Fixture       *f,
                  gconstpointer  data)
{
  GtkStack *stack;

  gk_ui_test_wait (page_idle, f, "the keys page to load");
  stack = GTK_STACK (gtk_widget_get_template_child (GTK_WIDGET (f->page), GK_TYPE_KEYS_PAGE, "stack"));
  g_assert_cmpstr (gtk_stack_get_visible_child_name (stack), ==, "empty");
}

static void
test_add_valid (Fixture       *f,
                gconstpointer  data)
{
  g_autofree char *api_key = gk_test_api_key (101);
  g_autofree char *hint = NULL;
  g_autofree char *masked = NULL;
  GkKeyDialog *dialog;
  const GkKey *key;

  gk_ui_test_wait (page_idle, f, "the keys page to load");
  dialog = open_add_dialog (f);
  g_assert_false (save_sensitive (dialog));

  set_text (dialog, "name_row", "Main key");
  set_text (dialog, "key_row", api_key);
  set_text (dialog, "project_row", "billing-1");
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (dialog_child (dialog, "priority_spin")), 7);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (dialog_child (dialog, "daily_spin")), 500000);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (dialog_child (dialog, "rpm_spin")), 15);
  gtk_switch_set_active (GTK_SWITCH (dialog_child (dialog, "default_switch")), TRUE);
  assert_field_error (dialog, "name_row", "name_error", FALSE);
  assert_field_error (dialog, "key_row", "key_error", FALSE);
  g_assert_true (save_sensitive (dialog));

  click_save (dialog);
  gk_ui_test_wait (no_dialog, NULL, "the dialog to close");
  wait_listed (f, 1);

  key = gk_key_row_get_key (listed_row (f, 0));
  g_assert_cmpstr (key->name, ==, "Main key");
  g_assert_cmpstr (key->project, ==, "billing-1");
  g_assert_cmpint (key->priority, ==, 7);
  g_assert_true (key->is_default);
  g_assert_cmpint (key->quotas[GK_QUOTA_SLOT_DAILY_TOKENS].limit_value, ==, 500000);
  g_assert_cmpint (key->quotas[GK_QUOTA_SLOT_MINUTE_REQUESTS].limit_value, ==, 15);

  /* Shown masked: the hint only, never the key. */
  masked = gk_key_get_masked (key);
  hint = g_strndup (api_key + strlen (api_key) - 4, 4);
  g_assert_true (g_str_has_suffix (masked, hint));
  g_assert_null (strstr (masked, api_key + 4));

  /* Stored encrypted: no copy of the plaintext in the database files. */
  g_assert_false (gk_ui_test_file_contains (f->db_path, api_key));
  g_assert_true (gk_ui_test_file_contains (f->db_path, "Main key"));
}

typedef struct
{
  const char *name;
  const char *api_key;
  const char *row;      /* the row that must show the error */
  const char *label;
} InvalidCase;

static void
test_add_invalid (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *valid_key = gk_test_api_key (102);
  g_autofree char *long_name = g_strnfill (GK_KEY_NAME_MAX_CHARS + 1, 'n');
  const InvalidCase cases[] = {
    { "", valid_key, "name_row", "name_error" },
    { "   ", valid_key, "name_row", "name_error" },
    { long_name, valid_key, "name_row", "name_error" },
    { "key\u202Egnp", valid_key, "name_row", "name_error" },
    { "key\u200B1", valid_key, "name_row", "name_error" },
    { "Good name", "", "key_row", "key_error" },
    { "Good name", "hello", "key_row", "key_error" },
    { "Good name", "AIzaTooShort", "key_row", "key_error" },
    { "Good name", "AIzaSyTest00000000000000000000000000000!", "key_row", "key_error" },
    { "Good name", "sk-0123456789abcdef0123456789abcdef012345", "key_row", "key_error" },
  };

  gk_ui_test_wait (page_idle, f, "the keys page to load");

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      GkKeyDialog *dialog = open_add_dialog (f);
      const char *other_row = g_str_equal (cases[i].row, "name_row") ? "key_row" : "name_row";
      const char *other_label = g_str_equal (cases[i].row, "name_row") ? "key_error" : "name_error";

      g_test_message ("case %u", i);

      set_text (dialog, "name_row", "x");
      set_text (dialog, "key_row", "x");
      set_text (dialog, "name_row", cases[i].name);
      set_text (dialog, "key_row", cases[i].api_key);

      /* Not while typing... */
      assert_field_error (dialog, cases[i].row, cases[i].label, FALSE);
      assert_field_error (dialog, other_row, other_label, FALSE);
      g_assert_false (save_sensitive (dialog));

      /* ...but on submit (Enter in a field): the error shows and nothing
       * is saved. */
      g_signal_emit_by_name (dialog_child (dialog, "name_row"), "entry-activated");
      assert_field_error (dialog, cases[i].row, cases[i].label, TRUE);
      assert_field_error (dialog, other_row, other_label, FALSE);

      /* Even a forced click saves nothing. */
      click_save (dialog);
      gk_ui_test_spin (200);
      g_assert_nonnull (gk_ui_test_find_toplevel (GK_TYPE_KEY_DIALOG));
      g_assert_cmpuint (stored_count (f), ==, 0);

      gtk_window_destroy (GTK_WINDOW (dialog));
      gk_ui_test_wait (no_dialog, NULL, "the dialog to close");
    }

  g_assert_cmpuint (g_list_model_get_n_items (gk_keys_page_get_keys (f->page)), ==, 0);
}

/* The dialog: "Add" (or "Save" when editing), focus in the first field,
 * errors after leaving a field, Enter saves a valid form. */
static void
test_dialog_behaviour (Fixture       *f,
                       gconstpointer  data)
{
  g_autofree char *api_key = gk_test_api_key (103);
  GkKeyDialog *dialog;
  gint64 id;

  gk_ui_test_wait (page_idle, f, "the keys page to load");
  dialog = open_add_dialog (f);
  g_assert_cmpstr (gtk_button_get_label (GTK_BUTTON (dialog_child (dialog, "save_button"))), ==, "_Add");
  {
    GtkWidget *focus = gtk_window_get_focus (GTK_WINDOW (dialog));

    g_assert_nonnull (focus);
    g_assert_true (focus == dialog_child (dialog, "name_row")
                   || gtk_widget_is_ancestor (focus, dialog_child (dialog, "name_row")));
  }

  /* A bad key shows its error once the field is left. */
  set_text (dialog, "name_row", "Staging");
  gtk_widget_grab_focus (dialog_child (dialog, "key_row"));
  set_text (dialog, "key_row", "AIzaTooShort");
  assert_field_error (dialog, "key_row", "key_error", FALSE);
  gtk_widget_grab_focus (dialog_child (dialog, "project_row"));
  assert_field_error (dialog, "key_row", "key_error", TRUE);
  assert_field_error (dialog, "name_row", "name_error", FALSE);
  /* Typing again hides it until the field is left again. */
  set_text (dialog, "key_row", api_key);
  assert_field_error (dialog, "key_row", "key_error", FALSE);
  g_assert_true (save_sensitive (dialog));

  /* Enter in any field saves the valid form. */
  g_signal_emit_by_name (dialog_child (dialog, "project_row"), "entry-activated");
  gk_ui_test_wait (no_dialog, NULL, "the dialog to close");
  wait_listed (f, 1);
  id = gk_key_row_get_id (listed_row (f, 0));

  /* Editing says Save. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), "keys.edit", "x", id));
  dialog = GK_KEY_DIALOG (gk_ui_test_find_toplevel (GK_TYPE_KEY_DIALOG));
  g_assert_nonnull (dialog);
  g_assert_cmpstr (gtk_button_get_label (GTK_BUTTON (dialog_child (dialog, "save_button"))), ==, "_Save");
  gtk_window_destroy (GTK_WINDOW (dialog));
  gk_ui_test_wait (no_dialog, NULL, "the dialog to close");
}

static void
test_add_duplicate (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *api_key = gk_test_api_key (103);
  g_autoptr(GError) error = NULL;
  GkKeyDialog *dialog;
  GkKeySpec spec;

  gk_key_spec_init (&spec);
  spec.name = "First";
  g_assert_cmpint (gk_key_store_add (gk_backend_get_key_store (f->backend), &spec, api_key, &error), >, 0);
  g_assert_no_error (error);
  gk_backend_notify_changed (f->backend);
  wait_listed (f, 1);

  dialog = open_add_dialog (f);
  set_text (dialog, "name_row", "Second");
  set_text (dialog, "key_row", api_key);
  g_assert_true (save_sensitive (dialog));
  click_save (dialog);

  /* The store refuses it; the dialog stays open and says why. */
  gk_ui_test_wait ((GkUiTestCondition) gtk_widget_get_visible, dialog_child (dialog, "key_error"),
                   "the duplicate error");
  assert_field_error (dialog, "key_row", "key_error", TRUE);
  g_assert_false (save_sensitive (dialog));
  g_assert_cmpuint (stored_count (f), ==, 1);

  gtk_window_destroy (GTK_WINDOW (dialog));
  gk_ui_test_wait (no_dialog, NULL, "the dialog to close");
  wait_listed (f, 1);
}

static gboolean
first_row_named_renamed (gpointer data)
{
  Fixture *f = data;
  g_autoptr(GkKeyRow) row = NULL;

  if (gk_keys_page_get_loading (f->page) ||
      g_list_model_get_n_items (gk_keys_page_get_keys (f->page)) != 1)
    return FALSE;

  row = g_list_model_get_item (gk_keys_page_get_keys (f->page), 0);
  return g_strcmp0 (gk_key_row_get_name (row), "Renamed") == 0;
}

static void
test_edit (Fixture       *f,
           gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) key = NULL;
  g_autoptr(GBytes) before = NULL;
  g_autoptr(GBytes) after = NULL;
  GkKeyDialog *dialog;
  gint64 id;

  id = add_stored_key (f, "Original", 1);
  wait_listed (f, 1);
  before = gk_key_store_reveal (gk_backend_get_key_store (f->backend), id, &error);
  g_assert_no_error (error);

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), "keys.edit", "x", id));
  dialog = GK_KEY_DIALOG (gk_ui_test_find_toplevel (GK_TYPE_KEY_DIALOG));
  g_assert_nonnull (dialog);
  g_assert_cmpint (gk_key_dialog_get_key_id (dialog), ==, id);

  /* Filled in from the key; the key field empty keeps the stored key. */
  g_assert_cmpstr (gtk_editable_get_text (GTK_EDITABLE (dialog_child (dialog, "name_row"))), ==, "Original");
  g_assert_cmpstr (gtk_editable_get_text (GTK_EDITABLE (dialog_child (dialog, "key_row"))), ==, "");
  g_assert_true (save_sensitive (dialog));

  /* An invalid replacement key is refused inline once the field is
   * left … */
  gtk_widget_grab_focus (dialog_child (dialog, "key_row"));
  set_text (dialog, "key_row", "not-a-key");
  assert_field_error (dialog, "key_row", "key_error", FALSE);
  gtk_widget_grab_focus (dialog_child (dialog, "project_row"));
  assert_field_error (dialog, "key_row", "key_error", TRUE);
  g_assert_false (save_sensitive (dialog));
  /* … and clearing it again is fine. */
  set_text (dialog, "key_row", "");
  assert_field_error (dialog, "key_row", "key_error", FALSE);

  set_text (dialog, "name_row", "Renamed");
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (dialog_child (dialog, "priority_spin")), 8);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (dialog_child (dialog, "monthly_spin")), 1000000);
  click_save (dialog);
  gk_ui_test_wait (no_dialog, NULL, "the dialog to close");
  gk_ui_test_wait (first_row_named_renamed, f, "the renamed key");

  key = gk_key_store_get (gk_backend_get_key_store (f->backend), id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (key->name, ==, "Renamed");
  g_assert_cmpint (key->priority, ==, 8);
  g_assert_cmpint (key->quotas[GK_QUOTA_SLOT_MONTHLY_TOKENS].limit_value, ==, 1000000);

  after = gk_key_store_reveal (gk_backend_get_key_store (f->backend), id, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (before, after));
}

typedef struct
{
  GdkClipboard *clipboard;
  char         *text;
  gboolean      done;
} ClipboardRead;

static void
read_text_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  ClipboardRead *read = user_data;

  read->text = gdk_clipboard_read_text_finish (GDK_CLIPBOARD (object), result, NULL);
  read->done = TRUE;
}

static gboolean
clipboard_is_local (gpointer data)
{
  return gdk_clipboard_is_local (GDK_CLIPBOARD (data)) &&
         gdk_clipboard_get_content (GDK_CLIPBOARD (data)) != NULL;
}

static gboolean
read_done (gpointer data)
{
  return ((ClipboardRead *) data)->done;
}

static gboolean page_loaded (gpointer data);

static gboolean
stale_shown (gpointer data)
{
  Fixture *f = data;

  return gtk_widget_get_visible (GTK_WIDGET (gtk_widget_get_template_child (GTK_WIDGET (f->page),
                                                                             GK_TYPE_KEYS_PAGE,
                                                                             "stale_box")));
}

/* A key Google rejected is listed as worth deleting, with a Delete button
 * that goes through the row menu's confirmation. */
static void
test_consider_deleting (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  GtkListBox *list;
  GtkWidget *row, *button;
  gint64 id;

  id = add_stored_key (f, "Fresh", 1);
  add_stored_key (f, "Also fresh", 2);
  wait_listed (f, 2);
  g_assert_false (stale_shown (f));

  g_assert_true (gk_key_store_set_status (gk_backend_get_key_store (f->backend), id,
                                          GK_KEY_STATUS_INVALID, "API_KEY_INVALID", &error));
  g_assert_no_error (error);
  gk_backend_notify_changed (f->backend);
  gk_ui_test_wait (stale_shown, f, "the key worth deleting");

  list = GTK_LIST_BOX (gtk_widget_get_template_child (GTK_WIDGET (f->page), GK_TYPE_KEYS_PAGE,
                                                      "stale_list"));
  row = GTK_WIDGET (gtk_list_box_get_row_at_index (list, 0));
  g_assert_nonnull (row);
  g_assert_null (gtk_list_box_get_row_at_index (list, 1));
  g_assert_cmpstr (adw_preferences_row_get_title (ADW_PREFERENCES_ROW (row)), ==, "Fresh");
  g_assert_cmpstr (adw_action_row_get_subtitle (ADW_ACTION_ROW (row)), ==, "Rejected by Google");
  button = gk_ui_test_find_type (row, GTK_TYPE_BUTTON);
  g_assert_cmpstr (gtk_actionable_get_action_name (GTK_ACTIONABLE (button)), ==, "keys.delete");
  g_assert_cmpint (g_variant_get_int64 (gtk_actionable_get_action_target_value (GTK_ACTIONABLE (button))),
                   ==, id);
}


static void
test_copy (Fixture       *f,
           gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) plain = NULL;
  ClipboardRead read = { 0 };
  gint64 id;

  id = add_stored_key (f, "Copied", 1);
  wait_listed (f, 1);
  plain = gk_key_store_reveal (gk_backend_get_key_store (f->backend), id, &error);
  g_assert_no_error (error);

  read.clipboard = gtk_widget_get_clipboard (GTK_WIDGET (f->page));
  gdk_clipboard_set_content (read.clipboard, NULL);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), "keys.copy", "x", id));
  gk_ui_test_wait (clipboard_is_local, read.clipboard, "the key on the clipboard");

  gdk_clipboard_read_text_async (read.clipboard, NULL, read_text_cb, &read);
  gk_ui_test_wait (read_done, &read, "the clipboard read");
  g_assert_cmpstr (read.text, ==, g_bytes_get_data (plain, NULL));
  g_free (read.text);

  /* The audit log says who copied which key, and the Audit tab shows it. */
  {
    GtkWidget *audit = gk_ui_test_window_child (f->window, "audit_page");
    g_autoptr(GPtrArray) rows = gk_audit_list (gk_backend_get_database (f->backend), 1, 0,
                                               &error);
    g_autoptr(GObject) item = NULL;
    g_autofree char *action = NULL, *target = NULL, *actor = NULL;
    const GkAuditRow *row;
    GListModel *items;

    g_assert_no_error (error);
    row = g_ptr_array_index (rows, 0);
    g_assert_cmpint (row->action, ==, GK_AUDIT_KEY_COPY);
    g_assert_cmpint (row->target_id, ==, id);
    g_assert_cmpstr (row->actor, ==, g_get_user_name ());

    gk_window_set_visible_tab (f->window, "audit");
    gk_ui_test_wait (page_loaded, audit, "the audit log to load");
    items = G_LIST_MODEL (gtk_column_view_get_model (
      GTK_COLUMN_VIEW (gk_ui_test_find_type (audit, GTK_TYPE_COLUMN_VIEW))));
    item = g_list_model_get_item (items, 0);
    g_object_get (item, "action", &action, "target", &target, "actor", &actor, NULL);
    g_assert_cmpstr (action, ==, "Key copied");
    g_assert_cmpstr (target, ==, "Copied");
    g_assert_cmpstr (actor, ==, g_get_user_name ());
  }

  /* Closing the window clears it at once rather than after 30 s. */
  gk_ui_test_close_window (g_steal_pointer (&f->window));
  g_assert_null (gdk_clipboard_get_content (read.clipboard));

}

static gboolean
rotation_logged (gpointer data)
{
  Fixture *f = data;
  g_autoptr(GPtrArray) rows = gk_stats_rotation_logs (gk_backend_get_database (f->backend), 10, NULL);

  return rows != NULL && rows->len > 0;
}

static void
test_rotate (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GkKey) key = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *expected_trigger = gk_backend_manual_trigger ();
  GkRotationRow *rotation;
  gint64 first, second;

  first = add_stored_key (f, "Rotated away", 1);
  second = add_stored_key (f, "Takes over", 2);
  wait_listed (f, 2);

  /* Cancel first: nothing happens. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), "keys.rotate", "x", first));
  gk_ui_test_wait (message_dialog_shown, NULL, "the rotate confirmation");
  respond ("cancel");
  gk_ui_test_spin (300);
  g_assert_false (rotation_logged (f));

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), "keys.rotate", "x", first));
  gk_ui_test_wait (message_dialog_shown, NULL, "the rotate confirmation");
  respond ("rotate");
  gk_ui_test_wait (rotation_logged, f, "the rotation row");

  rows = gk_stats_rotation_logs (gk_backend_get_database (f->backend), 10, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rows->len, ==, 1);
  rotation = g_ptr_array_index (rows, 0);
  g_assert_cmpint (rotation->from_key_id, ==, first);
  g_assert_cmpint (rotation->to_key_id, ==, second);
  g_assert_cmpint (rotation->reason, ==, GK_ROTATION_MANUAL);
  g_assert_cmpstr (rotation->triggered_by, ==, expected_trigger);

  /* Out of service until the daily reset. */
  key = gk_key_store_get (gk_backend_get_key_store (f->backend), first, &error);
  g_assert_no_error (error);
  g_assert_cmpint (key->cooldown_until, >, gk_database_now (gk_backend_get_database (f->backend)));
}

static void
test_delete (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(GkPool) pool = NULL;
  g_autoptr(GPtrArray) usage = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) gone = NULL;
  GkUsageRecord record;
  GkTrackResult result;
  GtkWidget *dialog;
  GkUsageRow *row;
  gint64 id;

  id = add_stored_key (f, "Doomed", 1);
  wait_listed (f, 1);

  gk_usage_record_init (&record);
  record.key_id = id;
  record.model = "gemini-2.5-flash";
  record.prompt_tokens = 10;
  record.output_tokens = 5;
  record.status = GK_USAGE_SUCCESS;
  record.http_status = 200;
  g_assert_true (gk_pool_track (gk_backend_get_pool (f->backend), &record, &result, &error));
  g_assert_no_error (error);

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), "keys.delete", "x", id));
  gk_ui_test_wait (message_dialog_shown, NULL, "the delete confirmation");
  dialog = gk_ui_test_find_toplevel (ADW_TYPE_MESSAGE_DIALOG);
  /* The confirmation says the history stays. */
  g_assert_nonnull (strstr (adw_message_dialog_get_body (ADW_MESSAGE_DIALOG (dialog)), "history"));
  respond ("delete");
  wait_listed (f, 0);

  gone = gk_key_store_get (gk_backend_get_key_store (f->backend), id, &error);
  g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_NOT_FOUND);
  g_assert_null (gone);
  g_clear_error (&error);

  usage = gk_stats_usage_logs (gk_backend_get_database (f->backend), 0, 10, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (usage->len, ==, 1);
  row = g_ptr_array_index (usage, 0);
  g_assert_cmpint (row->key_id, ==, id);
  g_assert_cmpstr (row->key_name, ==, "Doomed");
}

typedef struct
{
  Fixture     *f;
  GkKeyStatus  status;
} StatusCheck;

static gboolean
first_row_status_is (gpointer data)
{
  StatusCheck *check = data;
  g_autoptr(GkKeyRow) row = NULL;

  if (gk_keys_page_get_loading (check->f->page) ||
      g_list_model_get_n_items (gk_keys_page_get_keys (check->f->page)) != 1)
    return FALSE;

  row = g_list_model_get_item (gk_keys_page_get_keys (check->f->page), 0);
  return gk_key_row_get_key (row)->status == check->status;
}

/* The reset timer: a cooldown ending is a boundary; the list shows the key
 * active again without any other write or poll to prompt it. */
static void
test_cooldown_ends (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  StatusCheck check = { f, GK_KEY_STATUS_RATE_LIMITED };
  GkUsageRecord record;
  GkTrackResult result;
  gint64 id;

  id = add_stored_key (f, "Cooling", 1);
  wait_listed (f, 1);

  gk_usage_record_init (&record);
  record.key_id = id;
  record.model = "gemini-2.5-flash";
  record.status = GK_USAGE_RATE_LIMITED;
  record.http_status = 429;
  record.retry_delay_s = 2;
  g_assert_true (gk_pool_track (gk_backend_get_pool (f->backend), &record, &result, &error));
  g_assert_no_error (error);
  gk_backend_notify_changed (f->backend);
  gk_ui_test_wait (first_row_status_is, &check, "the key listed as rate-limited");

  check.status = GK_KEY_STATUS_ACTIVE;
  gk_ui_test_wait (first_row_status_is, &check, "the key listed as active after its cooldown");
}

/* Each quota's next reset shows in the admin's zone (Ho Chi Minh City
 * here), in the quota bar's tooltip and under the limit in the key's
 * dialog. */
static void
test_reset_times (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *old_tz = g_strdup (g_getenv ("TZ"));
  g_autofree char *api_key = gk_test_api_key (77);
  g_autofree char *month_text = NULL;
  g_autofree char *day_text = NULL;
  g_autofree char *month_tooltip = NULL;
  g_autofree char *day_subtitle = NULL;
  GkKeySpec spec;
  GkKeyRow *row;
  GtkWidget *bar;
  GkKeyDialog *dialog;
  gint64 id;

  g_setenv ("TZ", "Asia/Ho_Chi_Minh", TRUE);

  gk_key_spec_init (&spec);
  spec.name = "Hanoi";
  spec.limits[GK_QUOTA_SLOT_MONTHLY_TOKENS] = 1000000;
  spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = 10000;
  id = gk_key_store_add (gk_backend_get_key_store (f->backend), &spec, api_key, &error);
  g_assert_no_error (error);
  gk_backend_notify_changed (f->backend);
  wait_listed (f, 1);

  row = listed_row (f, 0);
  month_text = gk_key_row_format_reset (row, GK_QUOTA_SLOT_MONTHLY_TOKENS);
  day_text = gk_key_row_format_reset (row, GK_QUOTA_SLOT_DAILY_TOKENS);
  g_assert_nonnull (strstr (month_text, "UTC+07"));
  g_assert_nonnull (strstr (day_text, "UTC+07"));
  /* The reset zone (Los Angeles) is named too. */
  g_assert_nonnull (strstr (day_text, ", "));

  /* The first bar is the month's. */
  bar = gk_ui_test_find_type (GTK_WIDGET (f->page), GK_TYPE_QUOTA_BAR);
  g_assert_nonnull (bar);
  month_tooltip = g_strdup_printf (g_dgettext (GETTEXT_PACKAGE, "Resets %s"), month_text);
  g_assert_cmpstr (gtk_widget_get_tooltip_text (bar), ==, month_tooltip);

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), "keys.edit", "x", id));
  dialog = GK_KEY_DIALOG (gk_ui_test_find_toplevel (GK_TYPE_KEY_DIALOG));
  g_assert_nonnull (dialog);
  day_subtitle = g_strdup_printf (g_dgettext (GETTEXT_PACKAGE, "Resets %s"), day_text);
  g_assert_cmpstr (adw_action_row_get_subtitle (ADW_ACTION_ROW (dialog_child (dialog, "daily_row"))),
                   ==, day_subtitle);
  /* No limit, no reset shown. */
  g_assert_cmpstr (adw_action_row_get_subtitle (ADW_ACTION_ROW (dialog_child (dialog, "rpm_row"))),
                   ==, "");
  gtk_window_destroy (GTK_WINDOW (dialog));
  gk_ui_test_wait (no_dialog, NULL, "the dialog to close");

  if (old_tz != NULL)
    g_setenv ("TZ", old_tz, TRUE);
  else
    g_unsetenv ("TZ");
}

/* --- One status model, shown the same everywhere --------------------- */

static gint64
add_key_with (Fixture    *f,
              const char *name,
              int         priority,
              gint64      daily_limit,
              double      budget,
              const char *project)
{
  static guint n = 500;
  g_autoptr(GError) error = NULL;
  g_autofree char *api_key = gk_test_api_key (n++);
  GkKeySpec spec;
  gint64 id;

  gk_key_spec_init (&spec);
  spec.name = name;
  spec.priority = priority;
  spec.project = project;
  spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = daily_limit;
  spec.monthly_budget_usd = budget;
  id = gk_key_store_add (gk_backend_get_key_store (f->backend), &spec, api_key, &error);
  g_assert_no_error (error);
  return id;
}

static void
track (Fixture       *f,
       gint64         id,
       GkUsageStatus  status,
       gint64         tokens)
{
  g_autoptr(GError) error = NULL;
  GkUsageRecord record;
  GkTrackResult result;

  gk_usage_record_init (&record);
  record.key_id = id;
  record.model = "gemini-2.5-flash";
  record.prompt_tokens = tokens;
  record.status = status;
  record.http_status = status == GK_USAGE_RATE_LIMITED ? 429 : 200;
  record.retry_delay_s = 3600;
  g_assert_true (gk_pool_track (gk_backend_get_pool (f->backend), &record, &result, &error));
  g_assert_no_error (error);
}

/* Walks @widget's tree in order: each row's name (a "heading" label) comes
 * before its badge, so badges map to names. */
static void
collect_badges (GtkWidget  *widget,
                char      **name,
                GHashTable *badges,
                GHashTable *details)
{
  if (GTK_IS_LABEL (widget) && gtk_widget_has_css_class (widget, "heading"))
    {
      g_free (*name);
      *name = g_strdup (gtk_label_get_text (GTK_LABEL (widget)));
    }
  else if (GTK_IS_LABEL (widget) && gtk_widget_has_css_class (widget, "gk-badge") && *name != NULL)
    {
      GtkWidget *detail = gtk_widget_get_next_sibling (widget);

      g_hash_table_insert (badges, g_strdup (*name), g_strdup (gtk_label_get_text (GTK_LABEL (widget))));
      g_hash_table_insert (details, g_strdup (*name),
                           g_strdup (gtk_widget_get_visible (detail)
                                     ? gtk_label_get_text (GTK_LABEL (detail)) : ""));
    }
  for (GtkWidget *child = gtk_widget_get_first_child (widget); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    collect_badges (child, name, badges, details);
}

static void
collect_label_texts (GtkWidget *widget,
                     GString   *out)
{
  if (GTK_IS_LABEL (widget) && gtk_widget_get_mapped (widget))
    {
      g_string_append (out, gtk_label_get_text (GTK_LABEL (widget)));
      g_string_append_c (out, '\n');
    }
  for (GtkWidget *child = gtk_widget_get_first_child (widget); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    collect_label_texts (child, out);
}

typedef struct
{
  Fixture    *f;
  GHashTable *badges;
  GHashTable *details;
  guint       n;
} BadgeCheck;

static gboolean
badges_shown (gpointer data)
{
  BadgeCheck *check = data;
  g_autofree char *name = NULL;

  if (gk_keys_page_get_loading (check->f->page))
    return FALSE;
  g_hash_table_remove_all (check->badges);
  g_hash_table_remove_all (check->details);
  collect_badges (GTK_WIDGET (check->f->page), &name, check->badges, check->details);
  return g_hash_table_size (check->badges) == check->n;
}

static gboolean
page_loaded (gpointer data)
{
  gboolean loading = TRUE;

  g_object_get (data, "loading", &loading, NULL);
  return !loading;
}

static char *
run_cli (Fixture    *f,
         const char *arg1,
         const char *arg2)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr(GSubprocess) process = NULL;
  g_autofree char *cli = g_build_filename (g_getenv ("GEMINI_KEYS_BUILD_ROOT"), "src", "cli",
                                           "gemini-keysctl", NULL);
  char *out = NULL;

  g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_DATA_DIR", f->dir, TRUE);
  process = g_subprocess_launcher_spawn (launcher, &error, cli, arg1, arg2, NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (process, NULL, NULL, &out, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (process));
  g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 0);
  return out;
}

static void
test_states_everywhere (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(GHashTable) badges = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr(GHashTable) details = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) card = g_string_new (NULL);
  g_autofree char *cli = NULL;
  g_auto(GStrv) cli_lines = NULL;
  BadgeCheck check = { f, badges, details, 8 };
  GtkWidget *dashboard, *rotations;
  GListModel *rotation_rows;
  static const struct { const char *name; GkKeyState state; } expected[] = {
    { "Spare", GK_KEY_STATE_AVAILABLE },
    { "Nearly", GK_KEY_STATE_NEAR_QUOTA },
    { "Throttled", GK_KEY_STATE_COOLING_DOWN },
    { "Benched", GK_KEY_STATE_SKIPPED },
    { "Drained", GK_KEY_STATE_OVER_QUOTA },
    { "Spendy", GK_KEY_STATE_OVER_BUDGET },
    { "Leaked", GK_KEY_STATE_REJECTED },
    { "Parked", GK_KEY_STATE_TURNED_OFF },
  };
  gint64 ids[G_N_ELEMENTS (expected)];

  ids[0] = add_key_with (f, "Spare", 5, 0, -1, NULL);
  ids[1] = add_key_with (f, "Nearly", 5, 1000, -1, NULL);
  ids[2] = add_key_with (f, "Throttled", 5, 0, -1, NULL);
  ids[3] = add_key_with (f, "Benched", 5, 0, -1, NULL);
  ids[4] = add_key_with (f, "Drained", 5, 1000, -1, NULL);
  ids[5] = add_key_with (f, "Spendy", 5, 0, 0.000001, NULL);
  ids[6] = add_key_with (f, "Leaked", 5, 0, -1, NULL);
  ids[7] = add_key_with (f, "Parked", 5, 0, -1, NULL);

  /* 96% used leaves 4%: near quota, never "over" while quota remains. */
  track (f, ids[1], GK_USAGE_SUCCESS, 960);
  track (f, ids[2], GK_USAGE_RATE_LIMITED, 0);
  gk_pool_rotate (gk_backend_get_pool (f->backend), ids[3], "manual:test", &error);
  g_assert_no_error (error);
  track (f, ids[4], GK_USAGE_SUCCESS, 1000);
  track (f, ids[5], GK_USAGE_SUCCESS, 1000);
  track (f, ids[6], GK_USAGE_INVALID_KEY, 0);
  g_assert_true (gk_key_store_set_status (gk_backend_get_key_store (f->backend), ids[7],
                                          GK_KEY_STATUS_INACTIVE, NULL, &error));
  g_assert_no_error (error);
  gk_backend_notify_changed (f->backend);

  /* The badge, with its reason and "until …" visible in the row. */
  gk_ui_test_wait (badges_shown, &check, "a badge on every row");
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++)
    {
      const char *detail = g_hash_table_lookup (details, expected[i].name);

      g_assert_cmpstr (g_hash_table_lookup (badges, expected[i].name), ==,
                       gk_key_state_get_label (expected[i].state));
      if (expected[i].state == GK_KEY_STATE_AVAILABLE)
        g_assert_cmpstr (detail, ==, "");
      else
        g_assert_cmpstr (detail, !=, "");
    }
  g_assert_nonnull (strstr (g_hash_table_lookup (details, "Nearly"), "4% left"));
  g_assert_nonnull (strstr (g_hash_table_lookup (details, "Throttled"), "until "));
  g_assert_nonnull (strstr (g_hash_table_lookup (details, "Benched"), "until "));
  /* The words themselves, not only the same function. */
  g_assert_cmpstr (g_hash_table_lookup (badges, "Drained"), ==, "Over quota");
  g_assert_cmpstr (g_hash_table_lookup (badges, "Nearly"), ==, "Near quota");

  /* The dashboard's Keys card: the breakdown in the same words. */
  gk_window_set_visible_tab (f->window, "dashboard");
  dashboard = gk_ui_test_window_child (f->window, "dashboard_page");
  gk_ui_test_wait (page_loaded, dashboard, "the dashboard to load");
  gk_ui_test_spin (200);
  collect_label_texts (dashboard, card);
  /* The card keeps each count with its state (no-break spaces). */
  g_string_replace (card, "\u00a0", " ", 0);
  g_assert_nonnull (strstr (card->str, "1 Available · 1 Near quota · 1 Cooling down · "
                                       "1 Skipped by you · 1 Over quota · 1 Over budget · "
                                       "1 Rejected by Google · 1 Turned off"));

  /* The rotation log names each reason as the badge of the key it left. */
  rotations = gk_ui_test_window_child (f->window, "rotations_page");
  gk_ui_test_wait (page_loaded, rotations, "the rotations to load");
  rotation_rows = G_LIST_MODEL (gtk_column_view_get_model (GTK_COLUMN_VIEW (gk_ui_test_find_type (rotations, GTK_TYPE_COLUMN_VIEW))));
  g_assert_cmpuint (g_list_model_get_n_items (rotation_rows), ==, 6);
  for (guint i = 0; i < g_list_model_get_n_items (rotation_rows); i++)
    {
      g_autoptr(GObject) item = g_list_model_get_item (rotation_rows, i);
      g_autofree char *from = NULL;
      g_autofree char *reason = NULL;

      g_object_get (item, "from", &from, "reason", &reason, NULL);
      /* A key used up in one request left at the threshold: the log says
       * what happened then, the badge what is true now. Six rotations in
       * one hour, with none before, are a spike of the pool and marked so
       * (unless the test ran across the turn of an hour). */
      {
        const char *want = g_str_equal (from, "Drained") ? "Near quota"
                                                             : g_hash_table_lookup (badges, from);
        g_autofree char *spike = g_strdup_printf ("%s (spike)", want);

        if (!g_str_equal (reason, spike))
          g_assert_cmpstr (reason, ==, want);
      }
    }

  /* The CLI lists every key with the same words. */
  cli = run_cli (f, "key", "list");
  cli_lines = g_strsplit (cli, "\n", -1);
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++)
    {
      gboolean found = FALSE;

      for (guint l = 0; cli_lines[l] != NULL; l++)
        if (strstr (cli_lines[l], expected[i].name) != NULL)
          {
            g_assert_nonnull (strstr (cli_lines[l], gk_key_state_get_label (expected[i].state)));
            found = TRUE;
          }
      g_assert_true (found);
    }
}

/* --- Search, filter, sort, order of use, bulk actions ----------------- */

static void
shown_names (Fixture *f,
             GString *out)
{
  GListModel *shown = gk_keys_page_get_shown (f->page);

  g_string_truncate (out, 0);
  for (guint i = 0; i < g_list_model_get_n_items (shown); i++)
    {
      g_autoptr(GkKeyRow) row = g_list_model_get_item (shown, i);

      if (i > 0)
        g_string_append_c (out, ',');
      g_string_append (out, gk_key_row_get_name (row));
    }
}

static GtkColumnViewColumn *
column_titled (Fixture    *f,
               const char *title)
{
  GtkColumnView *view = GTK_COLUMN_VIEW (gk_ui_test_find_type (GTK_WIDGET (f->page), GTK_TYPE_COLUMN_VIEW));
  GListModel *columns = gtk_column_view_get_columns (view);

  for (guint i = 0; i < g_list_model_get_n_items (columns); i++)
    {
      g_autoptr(GtkColumnViewColumn) column = g_list_model_get_item (columns, i);

      if (g_strcmp0 (gtk_column_view_column_get_title (column), title) == 0)
        return column;   /* the view keeps it */
    }
  g_assert_not_reached ();
}

static gboolean
all_status_is (gpointer data)
{
  Fixture *f = ((gpointer *) data)[0];
  GkKeyStatus status = GPOINTER_TO_INT (((gpointer *) data)[1]);
  GListModel *keys = gk_keys_page_get_keys (f->page);

  if (gk_keys_page_get_loading (f->page))
    return FALSE;
  for (guint i = 0; i < g_list_model_get_n_items (keys); i++)
    {
      g_autoptr(GkKeyRow) row = g_list_model_get_item (keys, i);

      if (gk_key_row_get_key (row)->status != status)
        return FALSE;
    }
  return TRUE;
}

static void
test_find_and_sort (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GString) names = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) bravo_key = NULL;
  g_autofree char *tail = NULL;
  GtkColumnView *view;
  gpointer status_check[2];
  gint64 bravo, zed;

  add_key_with (f, "Charlie", 2, 0, -1, NULL);
  add_key_with (f, "Alpha", 9, 0, -1, "team-a");
  bravo = add_key_with (f, "Bravo", 5, 0, -1, NULL);
  zed = add_key_with (f, "Zed", 10, 0, -1, NULL);
  g_assert_true (gk_key_store_set_status (gk_backend_get_key_store (f->backend), zed,
                                          GK_KEY_STATUS_INACTIVE, NULL, &error));
  gk_backend_notify_changed (f->backend);
  wait_listed (f, 4);

  /* The order of use: available keys by priority, the turned-off one last;
   * the next key is marked. */
  shown_names (f, names);
  g_assert_cmpstr (names->str, ==, "Alpha,Bravo,Charlie,Zed");
  {
    g_autoptr(GkKeyRow) first = g_list_model_get_item (gk_keys_page_get_shown (f->page), 0);
    g_autoptr(GkKeyRow) second = g_list_model_get_item (gk_keys_page_get_shown (f->page), 1);

    g_assert_true (gk_key_row_get_is_next (first));
    g_assert_false (gk_key_row_get_is_next (second));
  }

  /* Search: name, project, masked tail. */
  gk_keys_page_set_search (f->page, "brav");
  shown_names (f, names);
  g_assert_cmpstr (names->str, ==, "Bravo");
  gk_keys_page_set_search (f->page, "team-a");
  shown_names (f, names);
  g_assert_cmpstr (names->str, ==, "Alpha");
  bravo_key = gk_key_store_get (gk_backend_get_key_store (f->backend), bravo, &error);
  g_assert_no_error (error);
  tail = g_strdup (bravo_key->key_hint);
  gk_keys_page_set_search (f->page, tail);
  shown_names (f, names);
  g_assert_nonnull (strstr (names->str, "Bravo"));
  gk_keys_page_set_search (f->page, "");

  /* Filter by state. */
  gk_keys_page_set_state_filter (f->page, GK_KEY_STATE_TURNED_OFF);
  shown_names (f, names);
  g_assert_cmpstr (names->str, ==, "Zed");
  gk_keys_page_set_state_filter (f->page, GK_KEY_N_STATES);

  /* Sort by the column view's headers. */
  view = GTK_COLUMN_VIEW (gk_ui_test_find_type (GTK_WIDGET (f->page), GTK_TYPE_COLUMN_VIEW));
  gtk_column_view_sort_by_column (view, column_titled (f, "Name"), GTK_SORT_DESCENDING);
  shown_names (f, names);
  g_assert_cmpstr (names->str, ==, "Zed,Charlie,Bravo,Alpha");
  gtk_column_view_sort_by_column (view, column_titled (f, "Priority"), GTK_SORT_ASCENDING);
  shown_names (f, names);
  g_assert_cmpstr (names->str, ==, "Charlie,Bravo,Alpha,Zed");
  gtk_column_view_sort_by_column (view, NULL, GTK_SORT_ASCENDING);
  shown_names (f, names);
  g_assert_cmpstr (names->str, ==, "Alpha,Bravo,Charlie,Zed");

  /* Bulk: turn every selected key off, then on again, then delete them. */
  gtk_selection_model_select_all (gk_keys_page_get_selection (f->page));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), "keys.disable-selected", NULL));
  status_check[0] = f;
  status_check[1] = GINT_TO_POINTER (GK_KEY_STATUS_INACTIVE);
  gk_ui_test_wait (all_status_is, status_check, "every key turned off");
  gtk_selection_model_select_all (gk_keys_page_get_selection (f->page));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), "keys.enable-selected", NULL));
  status_check[1] = GINT_TO_POINTER (GK_KEY_STATUS_ACTIVE);
  gk_ui_test_wait (all_status_is, status_check, "every key turned on");

  gtk_selection_model_select_all (gk_keys_page_get_selection (f->page));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), "keys.delete-selected", NULL));
  gk_ui_test_wait (message_dialog_shown, NULL, "the delete confirmation");
  respond ("cancel");
  gk_ui_test_spin (300);
  g_assert_cmpuint (stored_count (f), ==, 4);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), "keys.delete-selected", NULL));
  gk_ui_test_wait (message_dialog_shown, NULL, "the delete confirmation");
  respond ("delete");
  wait_listed (f, 0);
  g_assert_cmpuint (stored_count (f), ==, 0);
}

/* --- Test Key: a short result naming the key, details on demand -------- */

static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGTERM);
}

static GSubprocess *
start_mock (char **base)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename (g_getenv ("GEMINI_KEYS_BUILD_ROOT"), "tests",
                                            "mock-gemini", "mock-gemini", NULL);
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr(GDataInputStream) lines = NULL;
  g_autofree char *line = NULL;
  GSubprocess *mock;

  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  mock = g_subprocess_launcher_spawn (launcher, &error, path, "--port", "0", NULL);
  g_assert_no_error (error);
  lines = g_data_input_stream_new (g_subprocess_get_stdout_pipe (mock));
  line = g_data_input_stream_read_line (lines, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (line, "PORT "));
  *base = g_strdup_printf ("http://127.0.0.1:%s", line + 5);
  return mock;
}

static void
keep_toast_cb (GkKeysPage *page,
               AdwToast   *toast,
               GPtrArray  *toasts)
{
  g_ptr_array_add (toasts, g_object_ref (toast));
}

static gboolean
toast_titled (gpointer data)
{
  GPtrArray *toasts = ((gpointer *) data)[0];
  const char *title = ((gpointer *) data)[1];

  for (guint i = 0; i < toasts->len; i++)
    if (g_strcmp0 (adw_toast_get_title (toasts->pdata[i]), title) == 0)
      return TRUE;
  return FALSE;
}

static AdwToast *
wait_toast (GPtrArray  *toasts,
            const char *title)
{
  gpointer check[2] = { toasts, (gpointer) title };

  gk_ui_test_wait (toast_titled, check, title);
  for (guint i = 0; i < toasts->len; i++)
    if (g_strcmp0 (adw_toast_get_title (toasts->pdata[i]), title) == 0)
      return toasts->pdata[i];
  g_assert_not_reached ();
}

static gint64
add_key_text (Fixture    *f,
              const char *name,
              const char *api_key)
{
  g_autoptr(GError) error = NULL;
  GkKeySpec spec;
  gint64 id;

  gk_key_spec_init (&spec);
  spec.name = name;
  id = gk_key_store_add (gk_backend_get_key_store (f->backend), &spec, api_key, &error);
  g_assert_no_error (error);
  return id;
}

static void
test_key_test_result (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GPtrArray) toasts = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GSubprocess) mock = NULL;
  g_autofree char *base = NULL;
  AdwToast *result;
  GtkWidget *details;
  gint64 good, bad;

  if (!gk_backend_has_gateway ())
    {
      g_test_skip ("built without the gateway");
      return;
    }
  mock = start_mock (&base);
  g_setenv ("GEMINI_KEYS_UPSTREAM", base, TRUE);
  g_signal_connect (f->page, "add-toast", G_CALLBACK (keep_toast_cb), toasts);

  good = add_key_text (f, "Staging", "AIzaSyGOODGOODGOODGOODGOODGOODGOOD00000");
  bad = add_key_text (f, "Old free tier", "AIzaSyINVALIDINVALIDINVALIDINVALID00000");
  gk_backend_notify_changed (f->backend);
  wait_listed (f, 2);

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), "keys.test", "x", good));
  result = wait_toast (toasts, "Key “Staging” works");
  g_assert_null (adw_toast_get_button_label (result));

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), "keys.test", "x", bad));
  result = wait_toast (toasts, "Google rejected “Old free tier”: API key not valid");
  /* The details are one click away. */
  g_assert_cmpstr (adw_toast_get_button_label (result), ==, "_Details");
  g_signal_emit_by_name (result, "button-clicked");
  details = gk_ui_test_find_toplevel (ADW_TYPE_MESSAGE_DIALOG);
  g_assert_nonnull (details);
  g_assert_nonnull (strstr (adw_message_dialog_get_body (ADW_MESSAGE_DIALOG (details)),
                            "API key not valid"));
  gtk_window_destroy (GTK_WINDOW (details));
  gk_ui_test_wait (no_message_dialog, NULL, "the details to close");

  /* Nothing listens there: no resolver or socket text in the toast. */
  g_setenv ("GEMINI_KEYS_UPSTREAM", "http://127.0.0.1:1", TRUE);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), "keys.test", "x", good));
  result = wait_toast (toasts, "Couldn’t reach Google");
  g_assert_cmpstr (adw_toast_get_button_label (result), ==, "_Details");

  g_unsetenv ("GEMINI_KEYS_UPSTREAM");
  g_subprocess_force_exit (mock);
}

static void
count_changed_cb (GkBackend *backend,
                  guint     *count)
{
  (*count)++;
}

static gboolean
count_positive (gpointer data)
{
  return *(guint *) data > 0;
}

/* The app's own gateway writes its usage rows over the app's connection,
 * where they do not move data_version: the backend still says "changed",
 * so that the pages show the keys' use as it grows. */
static void
test_gateway_use_refreshes (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(GSubprocess) mock = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *base = NULL;
  g_autofree char *token = NULL;
  guint changed = 0;
  gulong handler;

  if (!gk_backend_has_gateway ())
    {
      g_test_skip ("built without the gateway");
      return;
    }
  mock = start_mock (&base);
  g_setenv ("GEMINI_KEYS_UPSTREAM", base, TRUE);
  add_key_text (f, "Staging", "AIzaSyGOODGOODGOODGOODGOODGOODGOOD00000");
  gk_backend_notify_changed (f->backend);
  wait_listed (f, 1);
  token = gk_token_create (gk_backend_get_database (f->backend), "ci", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (gk_backend_start_gateway (f->backend, 0, &error));
  g_assert_no_error (error);
  /* Past a poll or two: what the setup changed has been told. */
  gk_ui_test_spin (2500);

  handler = g_signal_connect (f->backend, "changed", G_CALLBACK (count_changed_cb), &changed);
  g_assert_cmpint (gk_ui_test_gateway_request (gk_backend_get_gateway_port (f->backend), "POST",
                                               "/v1beta/models/gemini-2.5-flash:generateContent",
                                               token,
                                               "{\"contents\":[{\"parts\":[{\"text\":\"Hi\"}]}]}"),
                   ==, 200);
  gk_ui_test_wait (count_positive, &changed, "\"changed\" after a request through the app's gateway");
  g_signal_handler_disconnect (f->backend, handler);

  gk_backend_stop_gateway (f->backend);
  g_unsetenv ("GEMINI_KEYS_UPSTREAM");
  g_subprocess_force_exit (mock);
}

static gboolean
import_idle (gpointer data)
{
  return !gk_import_dialog_get_busy (data);
}

static gboolean
no_import_dialog (gpointer data)
{
  return gk_ui_test_find_toplevel (GK_TYPE_IMPORT_DIALOG) == NULL;
}

/* The rows of the dialog's report, each "title|subtitle". */
static GPtrArray *
report_rows (GkImportDialog *dialog)
{
  GtkWidget *list = GTK_WIDGET (gtk_widget_get_template_child (GTK_WIDGET (dialog),
                                                               GK_TYPE_IMPORT_DIALOG,
                                                               "report_list"));
  GPtrArray *rows = g_ptr_array_new_with_free_func (g_free);

  for (GtkWidget *row = gtk_widget_get_first_child (list); row != NULL;
       row = gtk_widget_get_next_sibling (row))
    g_ptr_array_add (rows, g_strdup_printf ("%s|%s",
                                            adw_preferences_row_get_title (ADW_PREFERENCES_ROW (row)),
                                            adw_action_row_get_subtitle (ADW_ACTION_ROW (row))));
  return rows;
}

/* "Import Keys…" from the main menu: pasted keys previewed (nothing
 * added), then imported off the main thread; the key already in the pool
 * skipped, the bad line reported by number; the paste box wiped; no key
 * shown in the report. Then a file's text. */
static void
test_import_dialog (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *existing = gk_test_api_key (300);
  g_autofree char *new1 = gk_test_api_key (301);
  g_autofree char *new2 = gk_test_api_key (302);
  g_autofree char *new3 = gk_test_api_key (303);
  g_autofree char *pasted = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GError) error = NULL;
  GkImportDialog *dialog;
  GtkTextBuffer *buffer;
  GtkWidget *summary;
  GkKeySpec spec;
  gint64 start;

  gk_key_spec_init (&spec);
  spec.name = "Already here";
  gk_key_store_add (gk_backend_get_key_store (f->backend), &spec, existing, &error);
  g_assert_no_error (error);
  gk_backend_notify_changed (f->backend);
  wait_listed (f, 1);

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.import-keys", NULL));
  dialog = GK_IMPORT_DIALOG (gk_ui_test_find_toplevel (GK_TYPE_IMPORT_DIALOG));
  g_assert_nonnull (dialog);
  summary = GTK_WIDGET (gtk_widget_get_template_child (GTK_WIDGET (dialog), GK_TYPE_IMPORT_DIALOG,
                                                       "summary_label"));
  g_assert_false (gtk_widget_get_sensitive (GTK_WIDGET (gtk_widget_get_template_child (
    GTK_WIDGET (dialog), GK_TYPE_IMPORT_DIALOG, "import_button"))));

  buffer = gtk_text_view_get_buffer (GTK_TEXT_VIEW (gtk_widget_get_template_child (
    GTK_WIDGET (dialog), GK_TYPE_IMPORT_DIALOG, "paste_view")));
  pasted = g_strdup_printf ("%s\n%s\nnot a key\n%s\n", new1, existing, new2);
  gtk_text_buffer_set_text (buffer, pasted, -1);

  /* Preview: a dry run, nothing added. */
  start = g_get_monotonic_time ();
  g_signal_emit_by_name (gtk_widget_get_template_child (GTK_WIDGET (dialog), GK_TYPE_IMPORT_DIALOG,
                                                        "preview_button"), "clicked");
  g_assert_true (gk_import_dialog_get_busy (dialog));
  /* The main thread was not held up by the import. */
  g_assert_cmpint (g_get_monotonic_time () - start, <, 5 * G_USEC_PER_SEC);
  gk_ui_test_wait (import_idle, dialog, "the preview");
  rows = report_rows (dialog);
  g_assert_cmpuint (rows->len, ==, 4);
  g_assert_true (g_str_has_prefix (rows->pdata[0], "Imported …"));
  g_assert_nonnull (strstr (rows->pdata[1], "Line 2"));
  g_assert_nonnull (strstr (rows->pdata[1], "Already here"));
  g_assert_nonnull (strstr (rows->pdata[2], "Line 3"));
  g_assert_cmpuint (stored_count (f), ==, 1);
  g_assert_nonnull (strstr (gtk_label_get_text (GTK_LABEL (summary)), "2"));

  g_signal_emit_by_name (gtk_widget_get_template_child (GTK_WIDGET (dialog), GK_TYPE_IMPORT_DIALOG,
                                                        "import_button"), "clicked");
  gk_ui_test_wait (import_idle, dialog, "the import");
  g_assert_cmpuint (stored_count (f), ==, 3);
  wait_listed (f, 3);
  /* The pasted keys are gone from the dialog, and never shown. */
  g_assert_cmpint (gtk_text_buffer_get_char_count (buffer), ==, 0);
  g_clear_pointer (&rows, g_ptr_array_unref);
  rows = report_rows (dialog);
  g_assert_cmpuint (rows->len, ==, 4);
  for (guint i = 0; i < rows->len; i++)
    {
      g_assert_null (strstr (rows->pdata[i], new1));
      g_assert_null (strstr (rows->pdata[i], new2));
      g_assert_null (strstr (rows->pdata[i], existing));
    }
  g_assert_false (gk_ui_test_file_contains (f->db_path, new1));

  /* A file's text (as the file chooser hands it over) is previewed at once,
   * then imported. */
  gk_import_dialog_set_file_text (dialog, "keys.csv",
                                  g_strdup_printf ("name,key,priority\nFrom file,%s,9\n", new3),
                                  strlen ("name,key,priority\nFrom file,,9\n") + strlen (new3));
  gk_ui_test_wait (import_idle, dialog, "the file's preview");
  g_clear_pointer (&rows, g_ptr_array_unref);
  rows = report_rows (dialog);
  g_assert_cmpuint (rows->len, ==, 1);
  g_assert_true (g_str_has_prefix (rows->pdata[0], "From file|"));
  g_signal_emit_by_name (gtk_widget_get_template_child (GTK_WIDGET (dialog), GK_TYPE_IMPORT_DIALOG,
                                                        "import_button"), "clicked");
  gk_ui_test_wait (import_idle, dialog, "the file's import");
  g_assert_cmpuint (stored_count (f), ==, 4);

  gtk_window_close (GTK_WINDOW (dialog));
  gk_ui_test_wait (no_import_dialog, NULL, "the import dialog to close");
}

/* Every entry of the zip at @path, uncompressed and concatenated. */
static char *
unzip_all (const char *path)
{
  const char *argv[] = { "unzip", "-p", path, NULL };
  g_autoptr(GError) error = NULL;
  char *out = NULL;
  int status = 0;

  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL,
                NULL, NULL, &out, NULL, &status, &error);
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  return out;
}

/* Export from the tab, both formats: every key, masked, never a secret. */
static void
test_export (Fixture       *f,
             gconstpointer  data)
{
  g_autofree char *secret = gk_test_api_key (77);
  g_autofree char *xlsx = g_build_filename (f->dir, "keys.xlsx", NULL);
  g_autofree char *csv = g_build_filename (f->dir, "keys.csv", NULL);
  g_autofree char *sheet = NULL;
  g_autofree char *contents = NULL;
  g_autoptr(GError) error = NULL;
  GkKeySpec spec;

  gk_key_spec_init (&spec);
  spec.name = "Export, \"quoted\"";
  spec.priority = 3;
  gk_key_store_add (gk_backend_get_key_store (f->backend), &spec, secret, &error);
  g_assert_no_error (error);
  add_stored_key (f, "second", 0);
  wait_listed (f, 2);

  g_assert_cmpstr (gk_ui_test_export (GTK_WIDGET (f->page), "xlsx", xlsx), ==,
                   "Exported 2 rows");
  gk_ui_test_check_xlsx (xlsx, "id,name,key_hint,project,status,priority,is_default,"
                               "monthly_budget_usd,month_cost_usd,created_utc,last_used_utc",
                         2, "n,s,s,-,s,n,b,-,m,d,-");
  sheet = unzip_all (xlsx);
  g_assert_null (strstr (sheet, secret));
  g_assert_nonnull (strstr (sheet, secret + strlen (secret) - 4));
  g_assert_nonnull (strstr (sheet, "Export, \"quoted\""));

  g_assert_cmpstr (gk_ui_test_export (GTK_WIDGET (f->page), "csv", csv), ==,
                   "Exported 2 rows");
  g_assert_true (g_file_get_contents (csv, &contents, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (contents, "id,name,key_hint,project,status,priority,"
                                             "is_default,monthly_budget_usd,month_cost_usd,"
                                             "created_at,last_used_at,"));
  g_assert_null (strstr (contents, secret));
  g_assert_nonnull (strstr (contents, secret + strlen (secret) - 4));
  g_assert_nonnull (strstr (contents, "\"Export, \"\"quoted\"\"\""));
  g_assert_nonnull (strstr (contents, ",second,"));
}

int
main (int   argc,
      char *argv[])
{
  /* The keyring holds the master key in these tests. */
  g_unsetenv (GK_MASTER_KEY_FILE_ENV);
  gtk_test_init (&argc, &argv, NULL);
  gk_ui_test_fixed_locale ();
  gk_ui_test_adw_init ();

#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/ui/keys/empty-state", test_empty_state);
  ADD ("/ui/keys/add-valid", test_add_valid);
  ADD ("/ui/keys/add-invalid", test_add_invalid);
  ADD ("/ui/keys/add-duplicate", test_add_duplicate);
  ADD ("/ui/keys/dialog-behaviour", test_dialog_behaviour);
  ADD ("/ui/keys/test-result", test_key_test_result);
  ADD ("/ui/keys/gateway-use-refreshes", test_gateway_use_refreshes);
  ADD ("/ui/keys/edit", test_edit);
  ADD ("/ui/keys/copy", test_copy);
  ADD ("/ui/keys/consider-deleting", test_consider_deleting);
  ADD ("/ui/keys/rotate", test_rotate);
  ADD ("/ui/keys/delete", test_delete);
  ADD ("/ui/keys/cooldown-ends", test_cooldown_ends);
  ADD ("/ui/keys/reset-times", test_reset_times);
  ADD ("/ui/keys/import-dialog", test_import_dialog);
  ADD ("/ui/keys/states-everywhere", test_states_everywhere);
  ADD ("/ui/keys/find-and-sort", test_find_and_sort);
  ADD ("/ui/keys/export", test_export);
#undef ADD

  return g_test_run ();
}
