/* gk-ui-test-util.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
/* memmem () */
#define _GNU_SOURCE
#include "config.h"

#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "gk-database-private.h"
#include "gk-export-button.h"
#include "gk-ui-test-util.h"

void
gk_ui_test_fixed_locale (void)
{
  /* LANGUAGE would still pick a catalogue under a non-C locale. */
  g_unsetenv ("LANGUAGE");
  if (setlocale (LC_ALL, "C.UTF-8") == NULL)
    setlocale (LC_ALL, "C");
}

#define STYLE_RESOURCE_PATH "/io/github/geminikeys/GeminiKeys/"

static GtkCssProvider *
style_provider_new (const char *name)
{
  g_autofree char *path = g_strconcat (STYLE_RESOURCE_PATH, name, NULL);
  GtkCssProvider *provider = gtk_css_provider_new ();

  gtk_css_provider_load_from_resource (provider, path);
  return provider;
}

static void
dark_changed_cb (AdwStyleManager *manager,
                 GParamSpec      *pspec,
                 GtkCssProvider  *dark)
{
  GdkDisplay *display = gdk_display_get_default ();

  if (adw_style_manager_get_dark (manager))
    gtk_style_context_add_provider_for_display (display, GTK_STYLE_PROVIDER (dark),
                                                GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
  else
    gtk_style_context_remove_provider_for_display (display, GTK_STYLE_PROVIDER (dark));
}

void
gk_ui_test_adw_init (void)
{
  /* The providers stay for the test program's life, as the app's do. */
  GtkCssProvider *style;
  GtkCssProvider *dark;
  AdwStyleManager *manager;

  adw_init ();
  style = style_provider_new ("style.css");
  dark = style_provider_new ("style-dark.css");
  gtk_style_context_add_provider_for_display (gdk_display_get_default (),
                                              GTK_STYLE_PROVIDER (style),
                                              GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
  manager = adw_style_manager_get_default ();
  g_signal_connect (manager, "notify::dark", G_CALLBACK (dark_changed_cb), dark);
  dark_changed_cb (manager, NULL, dark);
}

void
gk_ui_test_wait (GkUiTestCondition  condition,
                 gpointer           data,
                 const char        *what)
{
  gint64 deadline = g_get_monotonic_time () + GK_UI_TEST_TIMEOUT_S * G_USEC_PER_SEC;

  while (!condition (data))
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("Timed out waiting for %s", what);

      /* Worker threads complete into the main context; poll it without
       * blocking forever. */
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (2000);
    }
}

void
gk_ui_test_spin (guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;

  while (g_get_monotonic_time () < end)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (2000);
}

GtkWidget *
gk_ui_test_find_toplevel (GType type)
{
  GListModel *toplevels = gtk_window_get_toplevels ();
  guint n = g_list_model_get_n_items (toplevels);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GtkWidget) window = g_list_model_get_item (toplevels, i);

      if (G_TYPE_CHECK_INSTANCE_TYPE (window, type) && gtk_widget_get_visible (window))
        return window;
    }

  return NULL;
}

static void
loaded_cb (GkWindow *window,
           gboolean  unlocked,
           gboolean *loaded)
{
  *loaded = TRUE;
}

static gboolean
is_true (gpointer data)
{
  return *(gboolean *) data;
}

GkWindow *
gk_ui_test_open_window (const char *db_path)
{
  return gk_ui_test_open_window_sized (db_path, -1, -1);
}

GkWindow *
gk_ui_test_open_window_sized (const char *db_path,
                              int         width,
                              int         height)
{
  g_autoptr(GkBackend) backend = gk_backend_new (db_path);
  GkWindow *window;
  gboolean loaded = FALSE;

  window = gk_window_new (NULL, backend);
  if (width > 0 && height > 0)
    gtk_window_set_default_size (GTK_WINDOW (window), width, height);
  g_signal_connect (window, "loaded", G_CALLBACK (loaded_cb), &loaded);
  gtk_window_present (GTK_WINDOW (window));
  gk_ui_test_wait (is_true, &loaded, "the window to load");
  g_signal_handlers_disconnect_by_func (window, loaded_cb, &loaded);

  return window;
}

gpointer
gk_ui_test_window_child (GkWindow   *window,
                         const char *name)
{
  GObject *child = gtk_widget_get_template_child (GTK_WIDGET (window), GK_TYPE_WINDOW, name);

  g_assert_nonnull (child);
  return child;
}

static void
weak_notify_cb (gpointer  data,
                GObject  *where_the_object_was)
{
  *(gboolean *) data = TRUE;
}

void
gk_ui_test_close_window (GkWindow *window)
{
  GkBackend *backend = gk_window_get_backend (window);
  gboolean finalized = FALSE;

  g_object_weak_ref (G_OBJECT (backend), weak_notify_cb, &finalized);
  gtk_window_destroy (GTK_WINDOW (window));
  /* Jobs still running hold the backend; it must go once they end. */
  gk_ui_test_wait (is_true, &finalized, "the backend to be finalized");
}

static gboolean
file_has (const char *path,
          const char *needle)
{
  g_autofree char *contents = NULL;
  gsize length = 0;

  if (!g_file_get_contents (path, &contents, &length, NULL))
    return FALSE;

  return memmem (contents, length, needle, strlen (needle)) != NULL;
}

gboolean
gk_ui_test_file_contains (const char *path,
                          const char *needle)
{
  g_autofree char *wal = g_strconcat (path, "-wal", NULL);

  return file_has (path, needle) || file_has (wal, needle);
}

void
gk_ui_test_exec_sql (GkDatabase *db,
                     const char *sql)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (gk_database_exec (db, sql, &error));
  g_assert_no_error (error);
}

static void
backend_load_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  gboolean *done = user_data;
  g_autoptr(GError) error = NULL;

  g_assert_true (gk_backend_load_finish (GK_BACKEND (object), result, &error));
  g_assert_no_error (error);
  *done = TRUE;
}

GkBackend *
gk_ui_test_backend_new (const char *db_path)
{
  GkBackend *backend = gk_backend_new (db_path);
  gboolean done = FALSE;

  gk_backend_load_async (backend, NULL, backend_load_cb, &done);
  while (!done)
    g_main_context_iteration (NULL, TRUE);
  return backend;
}

/* A task cancelled when a page's backend was unset still holds the page
 * until it has run, so the page may outlive the unref by a moment, not
 * more. */
void
gk_ui_test_finalize_object (gpointer object)
{
  gpointer weak = object;
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  g_object_add_weak_pointer (object, &weak);
  g_object_unref (object);
  while (weak != NULL && g_get_monotonic_time () < deadline)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (G_USEC_PER_SEC / 1000);
  g_assert_null (weak);
}

gint64
gk_ui_test_spin_since (gint64 start)
{
  for (guint i = 0; i < 50; i++)
    g_main_context_iteration (NULL, FALSE);
  return g_get_monotonic_time () - start;
}

struct _GkUiTestHolder
{
  GkDatabase *db;
  GThread    *thread;
  GMutex      mutex;
  GCond       cond;
  gboolean    locked;
  gboolean    release;
};

static gpointer
hold_thread (gpointer user_data)
{
  GkUiTestHolder *holder = user_data;

  gk_database_lock (holder->db);
  g_mutex_lock (&holder->mutex);
  holder->locked = TRUE;
  g_cond_broadcast (&holder->cond);
  while (!holder->release)
    g_cond_wait (&holder->cond, &holder->mutex);
  g_mutex_unlock (&holder->mutex);
  gk_database_unlock (holder->db);
  return NULL;
}

GkUiTestHolder *
gk_ui_test_hold_database (GkDatabase *db)
{
  GkUiTestHolder *holder = g_new0 (GkUiTestHolder, 1);

  holder->db = db;
  g_mutex_init (&holder->mutex);
  g_cond_init (&holder->cond);
  holder->thread = g_thread_new ("holder", hold_thread, holder);
  g_mutex_lock (&holder->mutex);
  while (!holder->locked)
    g_cond_wait (&holder->cond, &holder->mutex);
  g_mutex_unlock (&holder->mutex);
  return holder;
}

void
gk_ui_test_holder_release (GkUiTestHolder *holder)
{
  g_mutex_lock (&holder->mutex);
  holder->release = TRUE;
  g_cond_broadcast (&holder->cond);
  g_mutex_unlock (&holder->mutex);
  g_thread_join (holder->thread);
  g_mutex_clear (&holder->mutex);
  g_cond_clear (&holder->cond);
  g_free (holder);
}

GtkWidget *
gk_ui_test_find_label (GtkWidget  *root,
                       const char *text)
{
  if (GTK_IS_LABEL (root) && g_strcmp0 (gtk_label_get_label (GTK_LABEL (root)), text) == 0)
    return root;
  for (GtkWidget *child = gtk_widget_get_first_child (root); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      GtkWidget *found = gk_ui_test_find_label (child, text);

      if (found != NULL)
        return found;
    }
  return NULL;
}

GtkWidget *
gk_ui_test_find_type (GtkWidget *root,
                      GType      type)
{
  if (G_TYPE_CHECK_INSTANCE_TYPE (root, type))
    return root;
  for (GtkWidget *child = gtk_widget_get_first_child (root); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      GtkWidget *found = gk_ui_test_find_type (child, type);

      if (found != NULL)
        return found;
    }
  return NULL;
}

typedef struct
{
  guint       port;
  const char *method;
  const char *path;
  const char *token;
  const char *body;
  int         status;   /* 0 until answered */
} GatewayRequest;

static gpointer
gateway_request_thread (gpointer data)
{
  GatewayRequest *request = data;
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *body_headers = NULL;
  g_autofree char *head = NULL;
  char answer[64] = { 0 };
  gsize n = 0;

  connection = g_socket_client_connect_to_host (client, "127.0.0.1", request->port, NULL, &error);
  g_assert_no_error (error);
  body_headers = request->body != NULL
    ? g_strdup_printf ("Content-Type: application/json\r\nContent-Length: %zu\r\n",
                       strlen (request->body))
    : g_strdup ("");
  head = g_strdup_printf ("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nx-goog-api-key: %s\r\n"
                          "Connection: close\r\n%s\r\n%s",
                          request->method, request->path, request->port, request->token,
                          body_headers, request->body != NULL ? request->body : "");
  g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)),
                             head, strlen (head), NULL, NULL, &error);
  g_assert_no_error (error);
  g_input_stream_read_all (g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                           answer, sizeof answer - 1, &n, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (answer, "HTTP/1.1 "));
  g_atomic_int_set (&request->status, atoi (answer + 9));
  return NULL;
}

static gboolean
gateway_request_answered (gpointer data)
{
  return g_atomic_int_get (&((GatewayRequest *) data)->status) != 0;
}

int
gk_ui_test_gateway_request (guint       port,
                            const char *method,
                            const char *path,
                            const char *token,
                            const char *body)
{
  GatewayRequest request = { port, method, path, token, body, 0 };
  GThread *thread = g_thread_new ("gateway-request", gateway_request_thread, &request);

  gk_ui_test_wait (gateway_request_answered, &request, "the gateway's answer");
  g_thread_join (thread);
  return request.status;
}

static gboolean
file_chooser_shown (gpointer data)
{
  return gk_ui_test_find_toplevel (GTK_TYPE_FILE_CHOOSER_DIALOG) != NULL;
}

static gboolean
export_ended (gpointer data)
{
  return !gk_export_button_get_exporting (data)
         && gk_ui_test_find_toplevel (GTK_TYPE_FILE_CHOOSER_DIALOG) == NULL;
}

const char *
gk_ui_test_export (GtkWidget  *root,
                   const char *format,
                   const char *path)
{
  GtkWidget *button = gk_ui_test_find_type (root, GK_TYPE_EXPORT_BUTTON);
  g_autofree char *extension = g_strconcat (".", format, NULL);
  GtkFileChooser *chooser;
  GtkFileFilter *filter;
  g_autofree char *name = NULL;

  g_assert_nonnull (button);
  g_assert_false (gk_export_button_get_exporting (GK_EXPORT_BUTTON (button)));
  /* The menu's item: outside a sandbox GtkFileChooserNative shows a
   * GtkFileChooserDialog, offering a name with the format's extension and
   * only files of that format. */
  g_assert_true (gtk_widget_activate_action (button, "export.as", "s", format));
  gk_ui_test_wait (file_chooser_shown, NULL, "the file chooser");
  chooser = GTK_FILE_CHOOSER (gk_ui_test_find_toplevel (GTK_TYPE_FILE_CHOOSER_DIALOG));
  g_assert_cmpint (gtk_file_chooser_get_action (chooser), ==, GTK_FILE_CHOOSER_ACTION_SAVE);
  name = gtk_file_chooser_get_current_name (chooser);
  g_assert_true (g_str_has_suffix (name, extension));
  filter = gtk_file_chooser_get_filter (chooser);
  g_assert_nonnull (filter);
  g_assert_nonnull (gtk_file_filter_get_name (filter));
  /* Accepting a file goes through the chooser's asynchronous checks of the
   * folder, which Xvfb's bare session does not finish: cancel it, and
   * choose @path as accepting it does. */
  gtk_dialog_response (GTK_DIALOG (chooser), GTK_RESPONSE_CANCEL);
  gk_export_button_export (GK_EXPORT_BUTTON (button),
                           g_str_equal (format, "xlsx") ? GK_EXPORT_XLSX : GK_EXPORT_CSV, path);
  g_assert_true (gk_export_button_get_exporting (GK_EXPORT_BUTTON (button)));
  gk_ui_test_wait (export_ended, button, "the export to end");
  g_assert_nonnull (gk_export_button_get_message (GK_EXPORT_BUTTON (button)));
  return gk_export_button_get_message (GK_EXPORT_BUTTON (button));
}

void
gk_ui_test_check_xlsx (const char *path,
                       const char *header,
                       guint       rows,
                       const char *types)
{
  g_autofree char *script = g_build_filename (g_getenv ("GEMINI_KEYS_SOURCE_ROOT"), "tests",
                                              "cli", "check-xlsx.py", NULL);
  g_autofree char *n_rows = g_strdup_printf ("%u", rows);
  const char *argv[] = { "python3", script, path, header, n_rows, types, NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  int status = 0;

  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err,
                &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("%s: %s", path, err);
  g_assert_cmpstr (out, ==, "ok\n");
}
