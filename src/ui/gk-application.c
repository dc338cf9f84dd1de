/* gk-application.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <stdio.h>

#include "gk-application.h"
#include "gk-notifier.h"
#include "gk-preferences-window.h"
#include "gk-window.h"

struct _GkApplication
{
  AdwApplication  parent_instance;

  GkBackend      *backend;
  GkNotifier     *notifier;
  gint64          started_at;        /* monotonic µs */
  gboolean        failed;            /* a screenshot could not be written */
  gboolean        scrolled;          /* GK_SCREENSHOT_SHOW was scrolled to */
  gboolean        waited;            /* the screenshot waited for a page to load */
};

G_DEFINE_FINAL_TYPE (GkApplication, gk_application, ADW_TYPE_APPLICATION)

/* Screenshot and benchmark modes, for tests/screenshots and tests/bench:
 * GK_SCREENSHOT=file.png renders the window (GK_SCREENSHOT_TAB selects the
 * tab, GK_SCREENSHOT_SHOW=ID scrolls the widget with that id in the UI
 * files to the top of its page) once loaded and quits; GK_BENCH=1 prints
 * start-up figures and quits. */
#define SCREENSHOT_SETTLE_MS 1500
#define SCROLL_SETTLE_MS     500
/* A page that never stops loading is shot as it is after this long. */
#define SCREENSHOT_MAX_WAIT_S 60
/* Space left above the widget scrolled to: the pages' spacing. */
#define SHOW_MARGIN          12
#define BENCH_SETTLE_MS      3000

/* Screenshots and benchmarks */

gboolean
gk_widget_save_png (GtkWidget   *widget,
                    const char  *path,
                    GError     **error)
{
  g_autoptr(GdkPaintable) paintable = NULL;
  g_autoptr(GtkSnapshot) snapshot = NULL;
  g_autoptr(GskRenderNode) node = NULL;
  g_autoptr(GdkTexture) texture = NULL;
  GskRenderer *renderer;
  int width = gtk_widget_get_width (widget);
  int height = gtk_widget_get_height (widget);

  renderer = gtk_native_get_renderer (gtk_widget_get_native (widget));
  if (renderer == NULL || width <= 0 || height <= 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_INITIALIZED,
                           "The widget is not shown");
      return FALSE;
    }

  paintable = gtk_widget_paintable_new (widget);
  snapshot = gtk_snapshot_new ();
  gdk_paintable_snapshot (paintable, GDK_SNAPSHOT (snapshot), width, height);
  node = gtk_snapshot_free_to_node (g_steal_pointer (&snapshot));
  if (node == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Nothing was drawn");
      return FALSE;
    }

  texture = gsk_renderer_render_texture (renderer, node,
                                         &GRAPHENE_RECT_INIT (0, 0, width, height));
  if (!gdk_texture_save_to_png (texture, path))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Could not write %s", path);
      return FALSE;
    }

  return TRUE;
}

/* The window to shoot: a dialog the screenshot opened, else the main one. */
static GtkWidget *
screenshot_target (GkWindow *window)
{
  GListModel *toplevels = gtk_window_get_toplevels ();
  guint n = g_list_model_get_n_items (toplevels);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GtkWindow) toplevel = g_list_model_get_item (toplevels, i);

      if (toplevel != GTK_WINDOW (window) &&
          gtk_window_get_transient_for (toplevel) == GTK_WINDOW (window) &&
          gtk_widget_get_mapped (GTK_WIDGET (toplevel)))
        return GTK_WIDGET (toplevel);
    }

  return GTK_WIDGET (window);
}

/* The widget under @root whose id in a UI file is @id. */
static GtkWidget *
find_by_id (GtkWidget  *root,
            const char *id)
{
  if (g_strcmp0 (gtk_buildable_get_buildable_id (GTK_BUILDABLE (root)), id) == 0)
    return root;

  for (GtkWidget *child = gtk_widget_get_first_child (root);
       child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      GtkWidget *found = find_by_id (child, id);

      if (found != NULL)
        return found;
    }

  return NULL;
}

/* TRUE while a page shown under @root reads its data: a page whose
 * "loading" property says so, a spinner turning, or Preferences before
 * its settings are read. */
static gboolean
is_loading (GtkWidget *root)
{
  gboolean loading = FALSE;

  if (!gtk_widget_get_mapped (root))
    return FALSE;
  if (GK_IS_PREFERENCES_WINDOW (root))
    return !gk_preferences_window_get_loaded (GK_PREFERENCES_WINDOW (root));
  if (GTK_IS_SPINNER (root))
    return gtk_spinner_get_spinning (GTK_SPINNER (root));
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (root), "loading") != NULL)
    g_object_get (root, "loading", &loading, NULL);

  for (GtkWidget *child = gtk_widget_get_first_child (root);
       child != NULL && !loading;
       child = gtk_widget_get_next_sibling (child))
    loading = is_loading (child);

  return loading;
}

/* Scrolls the page that holds @widget so that @widget is at its top. */
static gboolean
scroll_to (GtkWidget *widget)
{
  GtkWidget *scrolled = gtk_widget_get_ancestor (widget, GTK_TYPE_SCROLLED_WINDOW);
  GtkWidget *viewport;
  GtkWidget *content;
  double x, y;

  if (scrolled == NULL)
    return FALSE;
  viewport = gtk_scrolled_window_get_child (GTK_SCROLLED_WINDOW (scrolled));
  content = GTK_IS_VIEWPORT (viewport) ? gtk_viewport_get_child (GTK_VIEWPORT (viewport)) : NULL;
  if (content == NULL || !gtk_widget_translate_coordinates (widget, content, 0, 0, &x, &y))
    return FALSE;
  /* Or the focus, given to the window's first widget, scrolls it back. */
  gtk_viewport_set_scroll_to_focus (GTK_VIEWPORT (viewport), FALSE);
  gtk_adjustment_set_value (gtk_scrolled_window_get_vadjustment (GTK_SCROLLED_WINDOW (scrolled)),
                            y - SHOW_MARGIN);

  return TRUE;
}

static gboolean
screenshot_cb (gpointer user_data)
{
  GkWindow *window = user_data;
  GApplication *app = G_APPLICATION (gtk_window_get_application (GTK_WINDOW (window)));
  GkApplication *self = GK_APPLICATION (app);
  const char *show = g_getenv ("GK_SCREENSHOT_SHOW");
  GtkWidget *target = screenshot_target (window);
  g_autoptr(GError) error = NULL;

  /* The pages load after the window has, and reload when the data
   * changes: wait until none is loading, then for one more pause so that
   * what they read is laid out. */
  {
    gboolean loading = is_loading (target) &&
                       g_get_monotonic_time () - self->started_at < SCREENSHOT_MAX_WAIT_S * G_USEC_PER_SEC;

    if (loading || self->waited)
      {
        self->waited = loading;
        g_timeout_add (SCROLL_SETTLE_MS, screenshot_cb, window);
        return G_SOURCE_REMOVE;
      }
  }

  /* Scrolled once the page has its data, then shot once it is redrawn. */
  if (show != NULL && !self->scrolled)
    {
      GtkWidget *widget = find_by_id (target, show);

      self->scrolled = TRUE;
      if (widget != NULL && scroll_to (widget))
        {
          g_timeout_add (SCROLL_SETTLE_MS, screenshot_cb, window);
          return G_SOURCE_REMOVE;
        }
      g_set_error (&error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "No page scrolls to “%s”", show);
    }
  else
    gk_widget_save_png (target, g_getenv ("GK_SCREENSHOT"), &error);

  if (error != NULL)
    {
      g_printerr ("Screenshot failed: %s\n", error->message);
      self->failed = TRUE;
    }

  gtk_window_destroy (GTK_WINDOW (window));
  g_application_quit (app);

  return G_SOURCE_REMOVE;
}

static long
resident_kib (void)
{
  g_autofree char *status = NULL;
  const char *line;

  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return -1;
  line = strstr (status, "VmRSS:");

  return line != NULL ? strtol (line + strlen ("VmRSS:"), NULL, 10) : -1;
}

static gboolean
bench_done_cb (gpointer user_data)
{
  GkWindow *window = user_data;
  GApplication *app = G_APPLICATION (gtk_window_get_application (GTK_WINDOW (window)));

  g_print ("rss-settled-kib %ld\n", resident_kib ());
  gtk_window_destroy (GTK_WINDOW (window));
  g_application_quit (app);

  return G_SOURCE_REMOVE;
}

static void
bench_after_paint_cb (GdkFrameClock *clock,
                      GkWindow      *window)
{
  GkApplication *self = GK_APPLICATION (gtk_window_get_application (GTK_WINDOW (window)));

  if (!gk_window_get_loaded (window))
    return;

  g_signal_handlers_disconnect_by_func (clock, bench_after_paint_cb, window);
  g_print ("first-frame-ms %.1f\n", (g_get_monotonic_time () - self->started_at) / 1000.0);
  g_print ("rss-first-frame-kib %ld\n", resident_kib ());
  g_timeout_add (BENCH_SETTLE_MS, bench_done_cb, window);
}

static void
bench_realize_cb (GkWindow *window)
{
  GdkFrameClock *clock = gtk_widget_get_frame_clock (GTK_WIDGET (window));

  g_signal_connect (clock, "after-paint", G_CALLBACK (bench_after_paint_cb), window);
}

static void
window_loaded_cb (GkWindow *window,
                  gboolean  unlocked)
{
  const char *tab = g_getenv ("GK_SCREENSHOT_TAB");

  if (g_getenv ("GK_SCREENSHOT") == NULL)
    return;

  /* Besides the tabs: "add-key" and "preferences" shoot those windows. */
  if (unlocked && g_strcmp0 (tab, "add-key") == 0)
    gtk_widget_activate_action (GTK_WIDGET (window), "win.add-key", NULL);
  else if (unlocked && g_strcmp0 (tab, "preferences") == 0)
    g_action_group_activate_action (G_ACTION_GROUP (gtk_window_get_application (GTK_WINDOW (window))),
                                    "preferences", NULL);
  else if (unlocked && tab != NULL)
    gk_window_set_visible_tab (window, tab);
  g_timeout_add (SCREENSHOT_SETTLE_MS, screenshot_cb, window);
}

/* Actions */

static void
preferences_action_cb (GSimpleAction *action,
                       GVariant      *parameter,
                       gpointer       user_data)
{
  GkApplication *self = user_data;
  GtkWindow *parent = gtk_application_get_active_window (GTK_APPLICATION (self));
  GtkWindow *window;

  if (!gk_backend_is_ready (self->backend))
    return;

  window = GTK_WINDOW (gk_preferences_window_new (parent, self->backend));
  gtk_window_present (window);
}

static void
about_action_cb (GSimpleAction *action,
                 GVariant      *parameter,
                 gpointer       user_data)
{
  GkApplication *self = user_data;
  GtkWindow *parent = gtk_application_get_active_window (GTK_APPLICATION (self));
  const char *developers[] = { "Gemini Keys contributors", NULL };
  GtkWidget *about;

  about = g_object_new (ADW_TYPE_ABOUT_WINDOW,
                        "transient-for", parent,
                        "application-name", _("Gemini Keys"),
                        "application-icon", APP_ID,
                        "developer-name", _("Gemini Keys contributors"),
                        "developers", developers,
                        "version", PACKAGE_VERSION,
                        "website", "https://github.com/geminikeys/gemini-keys",
                        "issue-url", "https://github.com/geminikeys/gemini-keys/issues",
                        "license-type", GTK_LICENSE_GPL_3_0,
                        "comments", _("Keep many Gemini API keys encrypted, track their quotas "
                                      "and rotate between them."),
                        /* Translators: your names, one per line. */
                        "translator-credits", _("translator-credits"),
                        NULL);
  gtk_window_present (GTK_WINDOW (about));
}

static void
quit_action_cb (GSimpleAction *action,
                GVariant      *parameter,
                gpointer       user_data)
{
  GApplication *app = user_data;
  GList *windows = gtk_application_get_windows (GTK_APPLICATION (app));

  /* Closing (not destroying) lets each window save its size first. */
  for (GList *l = windows; l != NULL; )
    {
      GtkWindow *window = l->data;

      l = l->next;
      gtk_window_close (window);
    }
  g_application_quit (app);
}

/* Opens a tab from a notification: @parameter is the tab's name. */
static void
show_tab_action_cb (GSimpleAction *action,
                    GVariant      *parameter,
                    gpointer       user_data)
{
  GApplication *app = user_data;
  GtkWindow *window;

  g_application_activate (app);
  window = gtk_application_get_active_window (GTK_APPLICATION (app));
  if (GK_IS_WINDOW (window))
    gk_window_set_visible_tab (GK_WINDOW (window), g_variant_get_string (parameter, NULL));
}

static const GActionEntry app_actions[] = {
  { .name = "preferences", .activate = preferences_action_cb },
  { .name = "show-tab", .activate = show_tab_action_cb, .parameter_type = "s" },
  { .name = "about", .activate = about_action_cb },
  { .name = "quit", .activate = quit_action_cb },
};

/* GApplication */

static void
gk_application_startup (GApplication *app)
{
  GkApplication *self = GK_APPLICATION (app);
  static const struct { const char *action; const char *accels[2]; } accels[] = {
    { "app.preferences", { "<Control>comma", NULL } },
    { "app.quit", { "<Control>q", NULL } },
    { "window.close", { "<Control>w", NULL } },
  };

  G_APPLICATION_CLASS (gk_application_parent_class)->startup (app);

  g_action_map_add_action_entries (G_ACTION_MAP (app), app_actions, G_N_ELEMENTS (app_actions), app);
  for (guint i = 0; i < G_N_ELEMENTS (accels); i++)
    gtk_application_set_accels_for_action (GTK_APPLICATION (app), accels[i].action, accels[i].accels);

  self->backend = gk_backend_new (NULL);
  self->notifier = gk_notifier_new (app, self->backend);
}

static void
gk_application_activate (GApplication *app)
{
  GkApplication *self = GK_APPLICATION (app);
  GtkWindow *window = gtk_application_get_active_window (GTK_APPLICATION (app));

  if (window == NULL)
    {
      window = GTK_WINDOW (gk_window_new (GTK_APPLICATION (app), self->backend));
      g_signal_connect (window, "loaded", G_CALLBACK (window_loaded_cb), NULL);
      /* GK_SCREENSHOT_SIZE=WxH, e.g. to show the narrow layout. */
      if (g_getenv ("GK_SCREENSHOT_SIZE") != NULL)
        {
          int width = 0, height = 0;

          if (sscanf (g_getenv ("GK_SCREENSHOT_SIZE"), "%dx%d", &width, &height) == 2 &&
              width > 0 && height > 0)
            gtk_window_set_default_size (window, width, height);
        }
      if (g_getenv ("GK_BENCH") != NULL)
        g_signal_connect (window, "realize", G_CALLBACK (bench_realize_cb), NULL);
    }

  gtk_window_present (window);
}

static void
gk_application_shutdown (GApplication *app)
{
  GkApplication *self = GK_APPLICATION (app);

  G_APPLICATION_CLASS (gk_application_parent_class)->shutdown (app);

  /* Stops the timers and the gateway before the main loop goes. */
  if (self->backend != NULL)
    g_object_run_dispose (G_OBJECT (self->backend));
}

static void
gk_application_finalize (GObject *object)
{
  GkApplication *self = GK_APPLICATION (object);

  g_clear_object (&self->notifier);
  g_clear_object (&self->backend);

  G_OBJECT_CLASS (gk_application_parent_class)->finalize (object);
}

static void
gk_application_class_init (GkApplicationClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);

  object_class->finalize = gk_application_finalize;
  app_class->startup = gk_application_startup;
  app_class->activate = gk_application_activate;
  app_class->shutdown = gk_application_shutdown;
}

static void
gk_application_init (GkApplication *self)
{
  self->started_at = g_get_monotonic_time ();
}

GkApplication *
gk_application_new (void)
{
  return g_object_new (GK_TYPE_APPLICATION,
                       "application-id", APP_ID,
                       "flags", G_APPLICATION_DEFAULT_FLAGS,
                       "resource-base-path", "/io/github/geminikeys/GeminiKeys",
                       NULL);
}

GkBackend *
gk_application_get_backend (GkApplication *self)
{
  g_return_val_if_fail (GK_IS_APPLICATION (self), NULL);

  return self->backend;
}

gboolean
gk_application_get_failed (GkApplication *self)
{
  g_return_val_if_fail (GK_IS_APPLICATION (self), FALSE);

  return self->failed;
}
