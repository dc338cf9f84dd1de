/* gk-window.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-adaptive.h"
#include "gk-dashboard-page.h"
#include "gk-keys-page.h"
#include "gk-rotations-page.h"
#include "gk-audit-page.h"
#include "gk-unlock-page.h"
#include "gk-usage-page.h"
#include "gk-window.h"

struct _GkWindow
{
  AdwApplicationWindow  parent_instance;

  GkBackend            *backend;
  GSettings            *settings;   /* NULL when the schema is not installed */
  GCancellable         *cancellable;
  gboolean              loaded;

  AdwViewSwitcherTitle *switcher_title;
  AdwViewSwitcherBar   *switcher_bar;
  GtkWidget            *add_button;
  AdwToastOverlay      *toast_overlay;
  GtkRevealer          *master_key_banner;
  GtkOrientable        *master_key_banner_box;
  GtkWidget            *master_key_banner_button;
  GtkStack             *main_stack;
  GkUnlockPage         *unlock_page;
  AdwStatusPage        *loading_page;
  AdwViewStack         *view_stack;
  GkDashboardPage      *dashboard_page;
  GkKeysPage           *keys_page;
  GkUsagePage          *usage_page;
  GkRotationsPage      *rotations_page;
  GkAuditPage          *audit_page;
};

G_DEFINE_FINAL_TYPE (GkWindow, gk_window, ADW_TYPE_APPLICATION_WINDOW)

enum {
  PROP_0,
  PROP_BACKEND,
  N_PROPS
};

enum {
  LOADED,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

static const char * const tab_names[] = { "dashboard", "keys", "usage", "rotations", "audit" };

static void load (GkWindow *self);

/* Window state: GSettings when the schema is installed. Running from the
 * build directory (or in tests) it may not be; then the state simply lives
 * as long as the window. */
static GSettings *
create_settings (void)
{
  GSettingsSchemaSource *source = g_settings_schema_source_get_default ();
  g_autoptr(GSettingsSchema) schema = NULL;

  if (source == NULL)
    return NULL;

  schema = g_settings_schema_source_lookup (source, APP_ID, TRUE);
  if (schema == NULL ||
      !g_settings_schema_has_key (schema, "window-width") ||
      !g_settings_schema_has_key (schema, "window-height") ||
      !g_settings_schema_has_key (schema, "window-maximized") ||
      !g_settings_schema_has_key (schema, "last-tab"))
    return NULL;

  return g_settings_new_full (schema, NULL, NULL);
}

static void
restore_state (GkWindow *self)
{
  int width, height;

  if (self->settings == NULL)
    return;

  width = g_settings_get_int (self->settings, "window-width");
  height = g_settings_get_int (self->settings, "window-height");
  if (width > 0 && height > 0)
    gtk_window_set_default_size (GTK_WINDOW (self), width, height);
  if (g_settings_get_boolean (self->settings, "window-maximized"))
    gtk_window_maximize (GTK_WINDOW (self));
}

static void
save_state (GkWindow *self)
{
  int width, height;

  if (self->settings == NULL)
    return;

  gtk_window_get_default_size (GTK_WINDOW (self), &width, &height);
  g_settings_delay (self->settings);
  g_settings_set_boolean (self->settings, "window-maximized",
                          gtk_window_is_maximized (GTK_WINDOW (self)));
  if (!gtk_window_is_maximized (GTK_WINDOW (self)))
    {
      g_settings_set_int (self->settings, "window-width", width);
      g_settings_set_int (self->settings, "window-height", height);
    }
  g_settings_apply (self->settings);
}

static gboolean
is_tab_name (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (tab_names); i++)
    if (g_strcmp0 (name, tab_names[i]) == 0)
      return TRUE;
  return FALSE;
}

/* Callbacks */

static void
visible_tab_changed_cb (GkWindow *self)
{
  const char *name = adw_view_stack_get_visible_child_name (self->view_stack);

  if (self->settings != NULL && self->loaded && is_tab_name (name))
    g_settings_set_string (self->settings, "last-tab", name);
}

static void
page_add_toast_cb (GkWindow *self,
                   AdwToast *toast)
{
  adw_toast_overlay_add_toast (self->toast_overlay, g_object_ref (toast));
}

static void
show_main (GkWindow *self)
{
  gtk_stack_set_visible_child_name (self->main_stack, "main");
  adw_view_switcher_title_set_stack (self->switcher_title, self->view_stack);
  adw_view_switcher_bar_set_stack (self->switcher_bar, self->view_stack);
  gtk_widget_set_visible (self->add_button, TRUE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.add-key", TRUE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.import-keys", TRUE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.find", TRUE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.show-tab", TRUE);
}

static void
show_not_main (GkWindow   *self,
               const char *page)
{
  gtk_stack_set_visible_child_name (self->main_stack, page);
  adw_view_switcher_title_set_stack (self->switcher_title, NULL);
  adw_view_switcher_bar_set_stack (self->switcher_bar, NULL);
  gtk_widget_set_visible (self->add_button, FALSE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.add-key", FALSE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.import-keys", FALSE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.find", FALSE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.show-tab", FALSE);
}

/* While the keyring prompts, unlocking waits on the user: say so, on the
 * loading page, instead of a spinner alone. */
static void
keyring_prompting_cb (GkWindow *self,
                      gboolean  open)
{
  adw_status_page_set_title (self->loading_page, open ? _("Waiting for the Keyring…") : "");
  adw_status_page_set_description (self->loading_page,
                                   open ? _("Answer the keyring’s password prompt") : NULL);
  /* Unlocking (at the start, or Retry on the unlock page) switches to the
   * loading page; a prompt while the keys are shown leaves them there. */
  if (open && g_strcmp0 (gtk_stack_get_visible_child_name (self->main_stack), "main") != 0)
    show_not_main (self, "loading");
}

/* The master key in use vanished from the keyring (or its file): a banner
 * says so and offers to store it again; adding keys is refused meanwhile. */
static void
master_key_stored_cb (GkWindow *self,
                      gboolean  stored)
{
  gtk_revealer_set_reveal_child (self->master_key_banner, !stored);
  gtk_widget_set_sensitive (self->master_key_banner_button, TRUE);
}

static void
store_master_key_cb (GObject      *object,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  g_autoptr(GkWindow) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!gk_backend_store_master_key_finish (GK_BACKEND (object), result, &error))
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;
      gtk_widget_set_sensitive (self->master_key_banner_button, TRUE);
      adw_toast_overlay_add_toast (self->toast_overlay, adw_toast_new (error->message));
      return;
    }
  adw_toast_overlay_add_toast (self->toast_overlay,
                               adw_toast_new (_("The master key is stored again")));
}

static void
store_master_key_clicked_cb (GkWindow *self)
{
  gtk_widget_set_sensitive (self->master_key_banner_button, FALSE);
  gk_backend_store_master_key_async (self->backend, self->cancellable, store_master_key_cb,
                                     g_object_ref (self));
}

/* Where the tabs list rows, the banner's button goes under its text: side
 * by side they would keep the window wider than a narrow one. */
static void
default_width_changed_cb (GkWindow *self)
{
  int width = 0, height = 0;

  /* GTK 4.8 takes no NULL for either. */
  gtk_window_get_default_size (GTK_WINDOW (self), &width, &height);
  gtk_orientable_set_orientation (self->master_key_banner_box,
                                  width > 0 && width < GK_ADAPTIVE_DEFAULT_THRESHOLD
                                  ? GTK_ORIENTATION_VERTICAL : GTK_ORIENTATION_HORIZONTAL);
}

static void
load_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(GkWindow) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!gk_backend_load_finish (GK_BACKEND (object), result, &error))
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;

      gk_unlock_page_set_error (self->unlock_page, error);
      gk_unlock_page_set_team (self->unlock_page, gk_backend_is_team (self->backend));
      gk_unlock_page_set_busy (self->unlock_page, FALSE);
      show_not_main (self, "unlock");
      self->loaded = TRUE;
      g_signal_emit (self, signals[LOADED], 0, FALSE);
      return;
    }

  gk_dashboard_page_set_backend (self->dashboard_page, self->backend);
  gk_keys_page_set_backend (self->keys_page, self->backend);
  gk_usage_page_set_backend (self->usage_page, self->backend);
  gk_rotations_page_set_backend (self->rotations_page, self->backend);
  gk_audit_page_set_backend (self->audit_page, self->backend);

  if (self->settings != NULL)
    {
      g_autofree char *tab = g_settings_get_string (self->settings, "last-tab");

      if (is_tab_name (tab))
        adw_view_stack_set_visible_child_name (self->view_stack, tab);
    }

  show_main (self);
  self->loaded = TRUE;
  g_signal_emit (self, signals[LOADED], 0, TRUE);
}

static void
load (GkWindow *self)
{
  gk_unlock_page_set_busy (self->unlock_page, TRUE);
  gk_backend_load_async (self->backend, self->cancellable, load_cb, g_object_ref (self));
}

static void
unlock_retry_cb (GkWindow *self)
{
  load (self);
}

/* Another database took the place of the one shown (Team Pool in
 * Preferences, or the fallback below): unlock it as at the start. */
static void
database_changed_cb (GkWindow *self)
{
  gtk_revealer_set_reveal_child (self->master_key_banner, FALSE);
  show_not_main (self, "loading");
  load (self);
}

static void
use_local_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GkWindow) self = user_data;
  g_autoptr(GError) error = NULL;

  if (gk_backend_switch_finish (GK_BACKEND (object), result, &error))
    return;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  gk_unlock_page_set_busy (self->unlock_page, FALSE);
  adw_toast_overlay_add_toast (self->toast_overlay, adw_toast_new (error->message));
}

/* The team database cannot be reached: this computer's file for this run;
 * the next start tries the team database again. */
static void
unlock_use_local_cb (GkWindow *self)
{
  gk_unlock_page_set_busy (self->unlock_page, TRUE);
  gk_backend_switch_async (self->backend, NULL, NULL, FALSE, self->cancellable, use_local_cb,
                           g_object_ref (self));
}

static void
import_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr(GkWindow) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!gk_backend_import_key_file_finish (GK_BACKEND (object), result, &error))
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;

      gk_unlock_page_set_busy (self->unlock_page, FALSE);
      adw_toast_overlay_add_toast (self->toast_overlay, adw_toast_new (error->message));
      return;
    }

  adw_toast_overlay_add_toast (self->toast_overlay, adw_toast_new (_("Master key imported")));
  load (self);
}

static void
unlock_import_cb (GkWindow *self,
                  GFile    *file)
{
  gk_unlock_page_set_busy (self->unlock_page, TRUE);
  gk_backend_import_key_file_async (self->backend, file, self->cancellable,
                                    import_cb, g_object_ref (self));
}

/* Actions */

static void
import_keys_action_cb (GtkWidget  *widget,
                       const char *action_name,
                       GVariant   *parameter)
{
  GkWindow *self = GK_WINDOW (widget);

  adw_view_stack_set_visible_child_name (self->view_stack, "keys");
  gk_keys_page_import_keys (self->keys_page);
}

static void
add_key_action_cb (GtkWidget  *widget,
                   const char *action_name,
                   GVariant   *parameter)
{
  GkWindow *self = GK_WINDOW (widget);

  adw_view_stack_set_visible_child_name (self->view_stack, "keys");
  gk_keys_page_add_key (self->keys_page);
}

static void
find_action_cb (GtkWidget  *widget,
                const char *action_name,
                GVariant   *parameter)
{
  GkWindow *self = GK_WINDOW (widget);

  if (g_strcmp0 (adw_view_stack_get_visible_child_name (self->view_stack), "usage") == 0)
    {
      gk_usage_page_focus_filter (self->usage_page);
      return;
    }

  adw_view_stack_set_visible_child_name (self->view_stack, "keys");
  gk_keys_page_focus_search (self->keys_page);
}

static void
show_tab_action_cb (GtkWidget  *widget,
                    const char *action_name,
                    GVariant   *parameter)
{
  gk_window_set_visible_tab (GK_WINDOW (widget), g_variant_get_string (parameter, NULL));
}

/* GObject */

static gboolean
gk_window_close_request (GtkWindow *window)
{
  save_state (GK_WINDOW (window));

  return GTK_WINDOW_CLASS (gk_window_parent_class)->close_request (window);
}

static void
gk_window_constructed (GObject *object)
{
  GkWindow *self = GK_WINDOW (object);

  G_OBJECT_CLASS (gk_window_parent_class)->constructed (object);

  g_assert (GK_IS_BACKEND (self->backend));
  g_signal_connect_object (self->backend, "keyring-prompting", G_CALLBACK (keyring_prompting_cb),
                           self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->backend, "database-changed", G_CALLBACK (database_changed_cb),
                           self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->backend, "master-key-stored", G_CALLBACK (master_key_stored_cb),
                           self, G_CONNECT_SWAPPED);
  load (self);
}

static void
gk_window_dispose (GObject *object)
{
  GkWindow *self = GK_WINDOW (object);

  g_cancellable_cancel (self->cancellable);

  /* The pages are AdwBin templates whose top widget is the bin's child.
   * Detaching it here, while every page is intact, spares each page's own
   * template disposal from unparenting a child the bin still points to. */
  if (self->view_stack != NULL)
    {
      GtkWidget *pages[] = {
        GTK_WIDGET (self->dashboard_page), GTK_WIDGET (self->keys_page),
        GTK_WIDGET (self->usage_page), GTK_WIDGET (self->rotations_page),
        GTK_WIDGET (self->audit_page),
        GTK_WIDGET (self->unlock_page),
      };

      for (guint i = 0; i < G_N_ELEMENTS (pages); i++)
        if (ADW_IS_BIN (pages[i]))
          adw_bin_set_child (ADW_BIN (pages[i]), NULL);
    }

  gtk_widget_dispose_template (GTK_WIDGET (self), GK_TYPE_WINDOW);

  G_OBJECT_CLASS (gk_window_parent_class)->dispose (object);
}

static void
gk_window_finalize (GObject *object)
{
  GkWindow *self = GK_WINDOW (object);

  g_clear_object (&self->backend);
  g_clear_object (&self->settings);
  g_clear_object (&self->cancellable);

  G_OBJECT_CLASS (gk_window_parent_class)->finalize (object);
}

static void
gk_window_get_property (GObject    *object,
                        guint       prop_id,
                        GValue     *value,
                        GParamSpec *pspec)
{
  GkWindow *self = GK_WINDOW (object);

  switch (prop_id)
    {
    case PROP_BACKEND:
      g_value_set_object (value, self->backend);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gk_window_set_property (GObject      *object,
                        guint         prop_id,
                        const GValue *value,
                        GParamSpec   *pspec)
{
  GkWindow *self = GK_WINDOW (object);

  switch (prop_id)
    {
    case PROP_BACKEND:
      self->backend = g_value_dup_object (value);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gk_window_class_init (GkWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  GtkWindowClass *window_class = GTK_WINDOW_CLASS (klass);

  object_class->constructed = gk_window_constructed;
  object_class->dispose = gk_window_dispose;
  object_class->finalize = gk_window_finalize;
  object_class->get_property = gk_window_get_property;
  object_class->set_property = gk_window_set_property;
  window_class->close_request = gk_window_close_request;

  properties[PROP_BACKEND] =
    g_param_spec_object ("backend", NULL, NULL,
                         GK_TYPE_BACKEND,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * GkWindow::loaded:
   * @unlocked: TRUE when the tabs show, FALSE when the unlock page does
   */
  signals[LOADED] =
    g_signal_new ("loaded",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_BOOLEAN);

  g_type_ensure (GK_TYPE_DASHBOARD_PAGE);
  g_type_ensure (GK_TYPE_KEYS_PAGE);
  g_type_ensure (GK_TYPE_USAGE_PAGE);
  g_type_ensure (GK_TYPE_ROTATIONS_PAGE);
  g_type_ensure (GK_TYPE_AUDIT_PAGE);
  g_type_ensure (GK_TYPE_UNLOCK_PAGE);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/geminikeys/GeminiKeys/ui/gk-window.ui");
  gtk_widget_class_bind_template_child (widget_class, GkWindow, switcher_title);
  gtk_widget_class_bind_template_child (widget_class, GkWindow, switcher_bar);
  gtk_widget_class_bind_template_child (widget_class, GkWindow, add_button);
  gtk_widget_class_bind_template_child (widget_class, GkWindow, toast_overlay);
  gtk_widget_class_bind_template_child (widget_class, GkWindow, master_key_banner);
  gtk_widget_class_bind_template_child (widget_class, GkWindow, master_key_banner_box);
  gtk_widget_class_bind_template_child (widget_class, GkWindow, master_key_banner_button);
  gtk_widget_class_bind_template_child (widget_class, GkWindow, main_stack);
  gtk_widget_class_bind_template_child (widget_class, GkWindow, unlock_page);
  gtk_widget_class_bind_template_child (widget_class, GkWindow, loading_page);
  gtk_widget_class_bind_template_child (widget_class, GkWindow, view_stack);
  gtk_widget_class_bind_template_child (widget_class, GkWindow, dashboard_page);
  gtk_widget_class_bind_template_child (widget_class, GkWindow, keys_page);
  gtk_widget_class_bind_template_child (widget_class, GkWindow, usage_page);
  gtk_widget_class_bind_template_child (widget_class, GkWindow, rotations_page);
  gtk_widget_class_bind_template_child (widget_class, GkWindow, audit_page);
  gtk_widget_class_bind_template_callback (widget_class, visible_tab_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, page_add_toast_cb);
  gtk_widget_class_bind_template_callback (widget_class, unlock_retry_cb);
  gtk_widget_class_bind_template_callback (widget_class, unlock_import_cb);
  gtk_widget_class_bind_template_callback (widget_class, unlock_use_local_cb);
  gtk_widget_class_bind_template_callback (widget_class, store_master_key_clicked_cb);

  gtk_widget_class_install_action (widget_class, "win.add-key", NULL, add_key_action_cb);
  gtk_widget_class_install_action (widget_class, "win.import-keys", NULL, import_keys_action_cb);
  gtk_widget_class_install_action (widget_class, "win.find", NULL, find_action_cb);
  gtk_widget_class_install_action (widget_class, "win.show-tab", "s", show_tab_action_cb);

  for (guint i = 0; i < G_N_ELEMENTS (tab_names); i++)
    gtk_widget_class_add_binding_action (widget_class, GDK_KEY_1 + i, GDK_ALT_MASK,
                                         "win.show-tab", "s", tab_names[i]);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_n, GDK_CONTROL_MASK, "win.add-key", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_f, GDK_CONTROL_MASK, "win.find", NULL);
}

static void
gk_window_init (GkWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));

  self->cancellable = g_cancellable_new ();
  self->settings = create_settings ();

  /* The bottom switcher shows when the header is too narrow for the tabs. */
  g_object_bind_property (self->switcher_title, "title-visible",
                          self->switcher_bar, "reveal",
                          G_BINDING_SYNC_CREATE);

  g_signal_connect (self, "notify::default-width", G_CALLBACK (default_width_changed_cb), NULL);

  show_not_main (self, "loading");
  restore_state (self);
  default_width_changed_cb (self);
}

/* Public API */

GkWindow *
gk_window_new (GtkApplication *application,
               GkBackend      *backend)
{
  g_return_val_if_fail (!application || GTK_IS_APPLICATION (application), NULL);
  g_return_val_if_fail (GK_IS_BACKEND (backend), NULL);

  return g_object_new (GK_TYPE_WINDOW,
                       "application", application,
                       "backend", backend,
                       NULL);
}

GkBackend *
gk_window_get_backend (GkWindow *self)
{
  g_return_val_if_fail (GK_IS_WINDOW (self), NULL);

  return self->backend;
}

gboolean
gk_window_get_loaded (GkWindow *self)
{
  g_return_val_if_fail (GK_IS_WINDOW (self), FALSE);

  return self->loaded;
}

const char *
gk_window_get_visible_tab (GkWindow *self)
{
  g_return_val_if_fail (GK_IS_WINDOW (self), NULL);

  return adw_view_stack_get_visible_child_name (self->view_stack);
}

void
gk_window_set_visible_tab (GkWindow   *self,
                           const char *name)
{
  g_return_if_fail (GK_IS_WINDOW (self));
  g_return_if_fail (is_tab_name (name));

  adw_view_stack_set_visible_child_name (self->view_stack, name);
}

void
gk_window_add_toast (GkWindow *self,
                     AdwToast *toast)
{
  g_return_if_fail (GK_IS_WINDOW (self));

  adw_toast_overlay_add_toast (self->toast_overlay, toast);
}
