/* test-notifier.c: desktop notifications reach the notification server,
 * each kind can be turned off, and activating one opens its tab.
 *
 * The test owns org.gtk.Notifications on the private session bus, so GIO
 * sends the app's notifications to it.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <adwaita.h>

#include "gk-database-private.h"
#include "gk-notifier.h"
#include "gk-test-util.h"
#include "gk-ui-test-util.h"

#define TEST_APP_ID APP_ID ".NotifierTest"

static const char introspection_xml[] =
  "<node>"
  " <interface name='org.gtk.Notifications'>"
  "  <method name='AddNotification'>"
  "   <arg type='s' direction='in'/><arg type='s' direction='in'/>"
  "   <arg type='a{sv}' direction='in'/>"
  "  </method>"
  "  <method name='RemoveNotification'>"
  "   <arg type='s' direction='in'/><arg type='s' direction='in'/>"
  "  </method>"
  " </interface>"
  "</node>";

typedef struct
{
  char     *id;
  GVariant *notification;
} Received;

static GPtrArray *received;

static void
received_free (Received *r)
{
  g_free (r->id);
  g_variant_unref (r->notification);
  g_free (r);
}

static void
method_call_cb (GDBusConnection       *connection,
                const char            *sender,
                const char            *object_path,
                const char            *interface_name,
                const char            *method_name,
                GVariant              *parameters,
                GDBusMethodInvocation *invocation,
                gpointer               user_data)
{
  if (g_strcmp0 (method_name, "AddNotification") == 0)
    {
      Received *r = g_new0 (Received, 1);
      const char *app_id;

      g_variant_get (parameters, "(&ss@a{sv})", &app_id, &r->id, &r->notification);
      if (g_strcmp0 (app_id, TEST_APP_ID) == 0)
        g_ptr_array_add (received, r);
      else
        received_free (r);
    }
  g_dbus_method_invocation_return_value (invocation, NULL);
}

static GDBusConnection *
own_notification_server (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDBusNodeInfo) info = g_dbus_node_info_new_for_xml (introspection_xml, &error);
  g_autofree char *address = g_dbus_address_get_for_bus_sync (G_BUS_TYPE_SESSION, NULL, &error);
  static const GDBusInterfaceVTable vtable = { method_call_cb };
  GDBusConnection *server;
  g_autoptr(GVariant) reply = NULL;

  g_assert_no_error (error);
  server = g_dbus_connection_new_for_address_sync (address,
                                                   G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                   G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                   NULL, NULL, &error);
  g_assert_no_error (error);
  g_dbus_connection_register_object (server, "/org/gtk/Notifications", info->interfaces[0],
                                     &vtable, NULL, NULL, &error);
  g_assert_no_error (error);
  reply = g_dbus_connection_call_sync (server, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "RequestName",
                                       g_variant_new ("(su)", "org.gtk.Notifications", 0),
                                       G_VARIANT_TYPE ("(u)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL,
                                       &error);
  g_assert_no_error (error);
  return server;
}

static const Received *
find (const char *id_prefix)
{
  for (guint i = 0; i < received->len; i++)
    {
      const Received *r = g_ptr_array_index (received, i);

      if (g_str_has_prefix (r->id, id_prefix))
        return r;
    }
  return NULL;
}

static gboolean
has_notification (gpointer data)
{
  return find (data) != NULL;
}

static gboolean
backend_ready (gpointer data)
{
  return gk_backend_is_ready (data);
}

static void
track (GkPool        *pool,
       gint64         key_id,
       GkUsageStatus  status,
       gint64         tokens)
{
  g_autoptr(GError) error = NULL;
  GkUsageRecord record;

  gk_usage_record_init (&record);
  record.key_id = key_id;
  record.model = "gemini-2.5-flash";
  record.prompt_tokens = tokens;
  record.status = status;
  gk_pool_track (pool, &record, NULL, &error);
  g_assert_no_error (error);
}

static void
test_notifications (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDBusConnection) server = own_notification_server ();
  g_autofree char *db_path = gk_test_db_path ();
  g_autofree char *key_file = g_build_filename (g_get_user_config_dir (), "master.key", NULL);
  g_autoptr(GApplication) app = NULL;
  g_autoptr(GkBackend) backend = NULL;
  g_autoptr(GkNotifier) notifier = NULL;
  g_autoptr(GSettings) settings = NULL;
  g_autoptr(GkDatabase) other = NULL;
  g_autoptr(GkKeyStore) store = NULL;
  g_autoptr(GkPool) pool = NULL;
  g_autoptr(GBytes) master = NULL;
  g_autofree char *api_key = gk_test_api_key (1);
  g_autofree char *api_key_2 = gk_test_api_key (2);
  g_autofree char *api_key_3 = gk_test_api_key (3);
  const Received *r;
  const char *title = NULL, *action = NULL, *tab = NULL;
  g_autoptr(GVariant) target = NULL;
  GkKeySpec spec;
  gint64 small, doomed, budgeted;

  received = g_ptr_array_new_with_free_func ((GDestroyNotify) received_free);

  /* A master key file keeps this test off the shared keyring. */
  g_mkdir_with_parents (g_get_user_config_dir (), 0700);
  g_setenv ("GEMINI_KEYS_MASTER_KEY_FILE", key_file, TRUE);

  app = g_application_new (TEST_APP_ID, G_APPLICATION_DEFAULT_FLAGS);
  g_application_register (app, NULL, &error);
  g_assert_no_error (error);

  backend = gk_backend_new (db_path);
  gk_backend_load_async (backend, NULL, NULL, NULL);
  gk_ui_test_wait (backend_ready, backend, "the backend to unlock");
  notifier = gk_notifier_new (app, backend);
  settings = gk_notifier_settings_new ();
  g_assert_nonnull (settings);

  /* The gateway (another connection) uses the keys. */
  other = gk_database_open (db_path, NULL, &error);
  g_assert_no_error (error);
  master = gk_secret_store_read_key_file (key_file, &error);
  g_assert_no_error (error);
  store = gk_key_store_new (other, master);
  pool = gk_pool_new (other, NULL);

  gk_key_spec_init (&spec);
  spec.name = "Small key";
  spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = 1000;
  small = gk_key_store_add (store, &spec, api_key, &error);
  g_assert_no_error (error);
  spec.name = "Doomed key";
  spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = 0;
  doomed = gk_key_store_add (store, &spec, api_key_2, &error);
  g_assert_no_error (error);
  spec.name = "Budgeted key";
  spec.monthly_budget_usd = 0.5;
  budgeted = gk_key_store_add (store, &spec, api_key_3, &error);
  g_assert_no_error (error);
  gk_backend_notify_changed (backend);
  gk_ui_test_spin (1500);

  /* 95% of the daily quota used → "Quota Running Low", opening the Keys tab. */
  track (pool, small, GK_USAGE_SUCCESS, 950);
  gk_ui_test_wait (has_notification, (gpointer) "notify-quota-low", "the quota notification");
  r = find ("notify-quota-low");
  g_variant_lookup (r->notification, "title", "&s", &title);
  g_assert_cmpstr (title, ==, "Quota Running Low");
  g_variant_lookup (r->notification, "default-action", "&s", &action);
  g_assert_cmpstr (action, ==, "app.show-tab");
  target = g_variant_lookup_value (r->notification, "default-action-target", G_VARIANT_TYPE_STRING);
  g_assert_nonnull (target);
  tab = g_variant_get_string (target, NULL);
  g_assert_cmpstr (tab, ==, "keys");
  {
    const char *body = NULL;
    g_variant_lookup (r->notification, "body", "&s", &body);
    g_assert_nonnull (strstr (body, "Small key"));
    g_assert_null (strstr (body, api_key));
  }

  /* Turned off in Preferences: an invalid key sends nothing... */
  g_settings_set_boolean (settings, "notify-key-invalid", FALSE);
  track (pool, doomed, GK_USAGE_INVALID_KEY, 0);
  /* ...while a budget, still on, does: it also shows the invalid key was
   * checked in the same round and skipped. */
  track (pool, budgeted, GK_USAGE_SUCCESS, 2000000);
  gk_ui_test_wait (has_notification, (gpointer) "notify-budget", "the budget notification");
  gk_ui_test_spin (1500);
  g_assert_null (find ("notify-key-invalid"));

  /* The pool: $0.60 of $0.70 (86%), then $0.90: spent, opening the dashboard. */
  g_assert_true (gk_spend_set_pool_budget (other, 0.7, &error));
  gk_backend_notify_changed (backend);
  gk_ui_test_wait (has_notification, (gpointer) "notify-budget-pool-80", "the pool's 80%");
  r = find ("notify-budget-pool-80");
  g_variant_lookup (r->notification, "title", "&s", &title);
  g_assert_cmpstr (title, ==, "Pool Near Its Budget");
  track (pool, small, GK_USAGE_SUCCESS, 1000000);
  gk_ui_test_wait (has_notification, (gpointer) "notify-budget-pool-0", "the pool's budget spent");
  r = find ("notify-budget-pool-0");
  g_variant_lookup (r->notification, "title", "&s", &title);
  g_assert_cmpstr (title, ==, "Pool Budget Spent");
  g_clear_pointer (&target, g_variant_unref);
  target = g_variant_lookup_value (r->notification, "default-action-target", G_VARIANT_TYPE_STRING);
  g_assert_cmpstr (g_variant_get_string (target, NULL), ==, "dashboard");

  g_object_run_dispose (G_OBJECT (notifier));
  g_object_run_dispose (G_OBJECT (backend));
  g_clear_pointer (&received, g_ptr_array_unref);
}

int
main (int argc, char *argv[])
{
  g_autofree char *schema_dir = NULL;

  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  schema_dir = g_build_filename (g_getenv ("GEMINI_KEYS_BUILD_ROOT"), "data", NULL);
  g_setenv ("GSETTINGS_SCHEMA_DIR", schema_dir, TRUE);
  gtk_init ();
  gk_ui_test_fixed_locale ();
  gk_ui_test_adw_init ();

  g_test_add_func ("/notifier/notifications", test_notifications);

  return g_test_run ();
}
