/* gk-preferences-window.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>
#include <inttypes.h>

#include "gk-notifier.h"
#include "gk-preferences-window.h"
#include "gk-tokens-group.h"

struct _GkPreferencesWindow
{
  AdwPreferencesWindow  parent_instance;

  GkBackend            *backend;
  GCancellable         *cancellable;
  /* Set while the widgets are filled in, so that is not taken as edits. */
  gboolean              updating;
  gboolean              loaded;

  GtkWidget            *threshold_spin;
  GtkWidget            *pool_budget_row;
  GtkWidget            *unused_days_spin;
  GtkWidget            *master_key_age_row;
  GtkWidget            *rotate_master_key_button;
  GtkWidget            *timezone_row;
  GtkWidget            *timezone_dropdown;
  GtkWidget            *notifications_switch;
  GtkWidget            *alert_rows[GK_ALERT_N_KINDS];
  GtkWidget            *alert_switches[GK_ALERT_N_KINDS];
  GtkWidget            *gateway_group;
  GtkWidget            *gateway_row;
  GtkWidget            *gateway_switch;
  GtkWidget            *port_spin;
  GtkWidget            *tokens_group;
  GtkWidget            *retention_row;
  GtkStringList        *retention_model;
  GtkWidget            *compact_row;
  GtkWidget            *compact_button;
  gboolean              compacting;
  /* Retention in days of each entry of retention_model (0 = keep all);
   * a value set elsewhere (the CLI) is appended as an entry of its own. */
  GArray               *retention_days;

  GtkWidget            *team_uri_row;
  GtkWidget            *team_password_row;
  GtkWidget            *team_status_row;
  GtkWidget            *team_spinner;
  GtkWidget            *team_test_button;
  GtkWidget            *team_connect_button;
  GtkWidget            *team_disconnect_button;
  gboolean              team_busy;
};

/* The compiled form of the tz database: every zone and link it knows. */
#define TZDATA_FILE "/usr/share/zoneinfo/tzdata.zi"

G_DEFINE_FINAL_TYPE (GkPreferencesWindow, gk_preferences_window, ADW_TYPE_PREFERENCES_WINDOW)

typedef struct
{
  double    threshold;
  double    pool_budget;  /* < 0: none */
  guint     unused_days;
  GkMasterKeyAge master_key_age;
  char     *timezone;
  GStrv     zones;        /* every time zone identifier, sorted */
  gboolean  notifications;
  gboolean  gateway_enabled;
  int       gateway_port;
  guint     retention_days;
} Settings;

/* The choices of the .ui's retention list, in its order. */
static const guint retention_choices[] = { 0, 365, 180, 90, 30 };

static void
settings_free (Settings *settings)
{
  g_free (settings->timezone);
  g_strfreev (settings->zones);
  g_free (settings);
}

static void
toast (GkPreferencesWindow *self,
       const char          *text)
{
  adw_preferences_window_add_toast (ADW_PREFERENCES_WINDOW (self), adw_toast_new (text));
}

static void
update_gateway_row (GkPreferencesWindow *self)
{
  g_autofree char *subtitle = NULL;
  gboolean running = gk_backend_get_gateway_running (self->backend);

  gk_tokens_group_set_port (GK_TOKENS_GROUP (self->tokens_group),
                            running ? gk_backend_get_gateway_port (self->backend)
                                    : (guint) gtk_spin_button_get_value_as_int (GTK_SPIN_BUTTON (self->port_spin)),
                            running);
  if (running)
    /* Translators: %u is a TCP port. */
    subtitle = g_strdup_printf (_("Listening on http://127.0.0.1:%u"),
                                gk_backend_get_gateway_port (self->backend));
  else
    subtitle = g_strdup (_("Stopped. The command “gemini-keysctl serve” runs it without this window."));

  adw_action_row_set_subtitle (ADW_ACTION_ROW (self->gateway_row), subtitle);
}

/* The switch and its row show whether the gateway runs, whoever started
 * or stopped it: this window, or the backend on a switch to another
 * database and the load of one whose setting enables it. */
static void
sync_gateway (GkPreferencesWindow *self)
{
  gboolean updating = self->updating;

  self->updating = TRUE;
  gtk_switch_set_active (GTK_SWITCH (self->gateway_switch),
                         gk_backend_get_gateway_running (self->backend));
  self->updating = updating;
  update_gateway_row (self);
}

static void
set_setting_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GkPreferencesWindow) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!gk_backend_set_setting_finish (GK_BACKEND (object), result, &error) &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    toast (self, error->message);
}

static void
write_setting (GkPreferencesWindow *self,
               const char          *key,
               const char          *value)
{
  if (self->updating || !self->loaded)
    return;

  gk_backend_set_setting_async (self->backend, key, value, self->cancellable,
                                set_setting_cb, g_object_ref (self));
}

static void
threshold_changed_cb (GkPreferencesWindow *self)
{
  g_autofree char *value = g_strdup_printf ("%d",
                                            gtk_spin_button_get_value_as_int (GTK_SPIN_BUTTON (self->threshold_spin)));

  write_setting (self, GK_SETTING_ROTATION_THRESHOLD, value);
}

/* Empty for none, else dollars (a comma works as the decimal point). */
static void
pool_budget_apply_cb (GkPreferencesWindow *self)
{
  g_autofree char *text = g_strstrip (g_strdup (gtk_editable_get_text (GTK_EDITABLE (self->pool_budget_row))));
  char value[G_ASCII_DTOSTR_BUF_SIZE];
  char *end = NULL;
  double usd = -1;

  g_strdelimit (text, ",", '.');
  if (*text != '\0')
    {
      usd = g_ascii_strtod (text, &end);
      if (end == text || *end != '\0' || !isfinite (usd) || usd < 0)
        {
          toast (self, _("The budget must be a number of US dollars, 0 or more, or empty for "
                         "none."));
          return;
        }
    }
  gk_spend_format_budget (usd, value);
  write_setting (self, GK_SETTING_POOL_BUDGET, value);
}

static void
unused_days_changed_cb (GkPreferencesWindow *self)
{
  g_autofree char *value = g_strdup_printf ("%d",
                                            gtk_spin_button_get_value_as_int (GTK_SPIN_BUTTON (self->unused_days_spin)));

  write_setting (self, GK_SETTING_UNUSED_KEY_DAYS, value);
}

/* How old the master key is, and a reminder once it is due for rotation. */
static void
show_master_key_age (GkPreferencesWindow  *self,
                     const GkMasterKeyAge *age)
{
  g_autofree char *subtitle = NULL;

  if (age->created_at == 0)
    subtitle = g_strdup (_("No key has been stored yet."));
  else if (age->estimated)
    subtitle = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "At most %d day old (dated by the oldest key)",
                                             "At most %d days old (dated by the oldest key)",
                                             (gulong) age->age_days),
                                (int) age->age_days);
  else
    subtitle = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%d day old", "%d days old",
                                             (gulong) age->age_days),
                                (int) age->age_days);
  if (age->rotate_due)
    {
      g_autofree char *reminder =
        g_strdup_printf (_("Older than %d days: time to rotate it"), GK_MASTER_KEY_MAX_AGE_DAYS);
      g_autofree char *both = g_strconcat (subtitle, " — ", reminder, NULL);

      g_free (subtitle);
      subtitle = g_steal_pointer (&both);
      gtk_widget_add_css_class (self->master_key_age_row, "warning");
      gtk_widget_add_css_class (self->rotate_master_key_button, "suggested-action");
    }
  else
    {
      gtk_widget_remove_css_class (self->master_key_age_row, "warning");
      gtk_widget_remove_css_class (self->rotate_master_key_button, "suggested-action");
    }
  adw_action_row_set_subtitle (ADW_ACTION_ROW (self->master_key_age_row), subtitle);
}

static gpointer
master_key_age_job (const GkBackendRefs  *refs,
                    gpointer              data,
                    GError              **error)
{
  GkMasterKeyAge *age = g_new0 (GkMasterKeyAge, 1);

  if (!gk_key_store_rotate_master_key (refs->key_store, NULL, error) ||
      !gk_hygiene_master_key_age (refs->db, age, error))
    {
      g_free (age);
      return NULL;
    }
  return age;
}

static void
rotate_done_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GkPreferencesWindow) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree GkMasterKeyAge *age = gk_backend_run_finish (GK_BACKEND (object), result, &error);

  gtk_widget_set_sensitive (self->rotate_master_key_button, TRUE);
  if (age == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        toast (self, error->message);
      return;
    }
  show_master_key_age (self, age);
  toast (self, _("Master key rotated"));
}

static void
rotate_response_cb (AdwMessageDialog    *dialog,
                    const char          *response,
                    GkPreferencesWindow *self)
{
  if (g_strcmp0 (response, "rotate") != 0)
    return;
  gtk_widget_set_sensitive (self->rotate_master_key_button, FALSE);
  gk_backend_run_async (self->backend, master_key_age_job, NULL, NULL, g_free, self->cancellable,
                        rotate_done_cb, g_object_ref (self));
}

/* Rotating re-encrypts every key under a new master key; the old one stays
 * stored for copies and backups of the database. */
static void
rotate_master_key_clicked_cb (GkPreferencesWindow *self)
{
  GtkWidget *dialog = adw_message_dialog_new (GTK_WINDOW (self), _("Rotate the Master Key?"),
                                              _("Every key is encrypted again under a new "
                                                "master key. Export the new master key "
                                                "afterwards if you keep a copy of it."));

  adw_message_dialog_add_responses (ADW_MESSAGE_DIALOG (dialog),
                                    "cancel", _("_Cancel"),
                                    "rotate", _("_Rotate"),
                                    NULL);
  adw_message_dialog_set_response_appearance (ADW_MESSAGE_DIALOG (dialog), "rotate",
                                              ADW_RESPONSE_SUGGESTED);
  adw_message_dialog_set_default_response (ADW_MESSAGE_DIALOG (dialog), "cancel");
  adw_message_dialog_set_close_response (ADW_MESSAGE_DIALOG (dialog), "cancel");
  g_signal_connect_object (dialog, "response", G_CALLBACK (rotate_response_cb), self, 0);
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
timezone_selected_cb (GkPreferencesWindow *self)
{
  GtkStringObject *item = gtk_drop_down_get_selected_item (GTK_DROP_DOWN (self->timezone_dropdown));

  if (item != NULL)
    write_setting (self, GK_SETTING_RESET_TIMEZONE, gtk_string_object_get_string (item));
}

/* The identifiers GTimeZone knows, from the system's tz database: its
 * zones ("Z name …") and links ("L target name"). */
static int
compare_zones (gconstpointer a,
               gconstpointer b)
{
  return g_strcmp0 (*(const char **) a, *(const char **) b);
}

static GStrv
read_zones (const char *current)
{
  g_autoptr(GPtrArray) zones = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;

  if (g_file_get_contents (TZDATA_FILE, &contents, NULL, NULL))
    {
      lines = g_strsplit (contents, "\n", -1);
      for (guint i = 0; lines[i] != NULL; i++)
        {
          g_auto(GStrv) fields = NULL;
          const char *name = NULL;

          if (g_str_has_prefix (lines[i], "Z "))
            {
              fields = g_strsplit (lines[i], " ", 3);
              name = fields[1];
            }
          else if (g_str_has_prefix (lines[i], "L "))
            {
              fields = g_strsplit (lines[i], " ", 4);
              name = fields[1] != NULL ? fields[2] : NULL;
            }
          if (name != NULL && *name != '\0' && !g_hash_table_contains (seen, name))
            {
              char *copy = g_strdup (name);

              g_ptr_array_add (zones, copy);
              g_hash_table_add (seen, copy);
            }
        }
    }
  /* Without the file, and for a zone set elsewhere, the current one and UTC
   * are still there. */
  if (!g_hash_table_contains (seen, "UTC"))
    {
      g_ptr_array_add (zones, g_strdup ("UTC"));
      g_hash_table_add (seen, zones->pdata[zones->len - 1]);
    }
  if (current != NULL && !g_hash_table_contains (seen, current))
    g_ptr_array_add (zones, g_strdup (current));

  g_ptr_array_sort (zones, compare_zones);
  g_ptr_array_add (zones, NULL);
  return (GStrv) g_ptr_array_free (g_steal_pointer (&zones), FALSE);
}

static void
notifications_changed_cb (GkPreferencesWindow *self)
{
  write_setting (self, GK_SETTING_NOTIFICATIONS,
                 gtk_switch_get_active (GTK_SWITCH (self->notifications_switch)) ? "1" : "0");
}

static void
apply_gateway (GkPreferencesWindow *self)
{
  g_autoptr(GError) error = NULL;
  gboolean enable = gtk_switch_get_active (GTK_SWITCH (self->gateway_switch));
  guint port = (guint) gtk_spin_button_get_value_as_int (GTK_SPIN_BUTTON (self->port_spin));

  if (!enable)
    gk_backend_stop_gateway (self->backend);
  else if (!gk_backend_start_gateway (self->backend, port, &error))
    {
      toast (self, error->message);
      enable = FALSE;
    }

  sync_gateway (self);
  write_setting (self, GK_SETTING_GATEWAY_ENABLED, enable ? "1" : "0");
}

static void
gateway_changed_cb (GkPreferencesWindow *self)
{
  if (self->updating || !self->loaded)
    return;

  apply_gateway (self);
}

static void
port_changed_cb (GkPreferencesWindow *self)
{
  g_autofree char *value = NULL;

  if (self->updating || !self->loaded)
    return;

  value = g_strdup_printf ("%d", gtk_spin_button_get_value_as_int (GTK_SPIN_BUTTON (self->port_spin)));
  write_setting (self, GK_SETTING_GATEWAY_PORT, value);
  if (gk_backend_get_gateway_running (self->backend))
    apply_gateway (self);
  else
    update_gateway_row (self);
}

static void
retention_changed_cb (GkPreferencesWindow *self)
{
  guint selected = adw_combo_row_get_selected (ADW_COMBO_ROW (self->retention_row));
  g_autofree char *value = NULL;

  if (selected >= self->retention_days->len)
    return;
  value = g_strdup_printf ("%u", g_array_index (self->retention_days, guint, selected));
  write_setting (self, GK_SETTING_USAGE_RETENTION_DAYS, value);
}

static void
select_retention (GkPreferencesWindow *self,
                  guint                days)
{
  guint i;

  for (i = 0; i < self->retention_days->len; i++)
    if (g_array_index (self->retention_days, guint, i) == days)
      break;
  if (i == self->retention_days->len)
    {
      g_autofree char *label =
        g_strdup_printf (ngettext ("%u Day", "%u Days", days), days);

      gtk_string_list_append (self->retention_model, label);
      g_array_append_val (self->retention_days, days);
    }
  adw_combo_row_set_selected (ADW_COMBO_ROW (self->retention_row), i);
}

static gpointer
compact_job (const GkBackendRefs  *refs,
             gpointer              data,
             GError              **error)
{
  GkCompactReport *report = g_new0 (GkCompactReport, 1);

  if (!gk_rollup_compact (refs->db, report, error))
    {
      g_free (report);
      return NULL;
    }
  return report;
}

static void
compact_done_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GkPreferencesWindow) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree GkCompactReport *report = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autofree char *rows = NULL;
  g_autofree char *text = NULL;

  report = gk_backend_run_finish (GK_BACKEND (object), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  self->compacting = FALSE;
  gtk_widget_set_sensitive (self->compact_button, TRUE);
  gtk_button_set_label (GTK_BUTTON (self->compact_button), _("Compact"));
  if (report == NULL)
    {
      toast (self, error->message);
      return;
    }

  before = g_format_size ((guint64) report->bytes_before);
  after = g_format_size ((guint64) report->bytes_after);
  rows = g_strdup_printf (ngettext ("Removed %" PRId64 " old usage row.",
                                    "Removed %" PRId64 " old usage rows.",
                                    (gulong) report->rows_deleted),
                          report->rows_deleted);
  /* Translators: the first %s is "Removed N old usage rows.", then two
   * sizes such as "12.3 MB". */
  text = g_strdup_printf (_("%s The database went from %s to %s."), rows, before, after);
  adw_action_row_set_subtitle (ADW_ACTION_ROW (self->compact_row), text);
  toast (self, text);
}

static void
compact_clicked_cb (GkPreferencesWindow *self)
{
  if (self->compacting)
    return;
  self->compacting = TRUE;
  gtk_widget_set_sensitive (self->compact_button, FALSE);
  gtk_button_set_label (GTK_BUTTON (self->compact_button), _("Compacting…"));
  gk_backend_run_async (self->backend, compact_job, NULL, NULL, g_free, self->cancellable,
                        compact_done_cb, g_object_ref (self));
}

/* Team pool */

static void
update_team_buttons (GkPreferencesWindow *self)
{
  const char *uri = gtk_editable_get_text (GTK_EDITABLE (self->team_uri_row));
  gboolean typed = *uri != '\0';

  gtk_spinner_set_spinning (GTK_SPINNER (self->team_spinner), self->team_busy);
  gtk_widget_set_sensitive (self->team_test_button, !self->team_busy && typed);
  gtk_widget_set_sensitive (self->team_connect_button, !self->team_busy && typed);
  gtk_widget_set_sensitive (self->team_disconnect_button, !self->team_busy);
  gtk_widget_set_visible (self->team_disconnect_button, gk_backend_is_team (self->backend));
}

static void
show_team_status (GkPreferencesWindow *self,
                  const char          *text,
                  gboolean             failed)
{
  adw_action_row_set_subtitle (ADW_ACTION_ROW (self->team_status_row), text);
  if (failed)
    gtk_widget_add_css_class (self->team_status_row, "error");
  else
    gtk_widget_remove_css_class (self->team_status_row, "error");
}

/* Which database the app shows now. */
static void
show_team_in_use (GkPreferencesWindow *self)
{
  g_autofree char *saved = gk_backend_dup_team_setting ();
  g_autofree char *text = NULL;

  if (gk_backend_is_team (self->backend))
    {
      g_autofree char *shown = gk_database_redact_target (gk_backend_get_target (self->backend));

      /* Translators: %s is a connection string, postgresql://user@host/database. */
      text = g_strdup_printf (_("The team database %s"), shown);
    }
  else if (*saved != '\0')
    /* Translators: %s is a connection string, postgresql://user@host/database. */
    text = g_strdup_printf (_("This computer’s database file, for now: the team database %s "
                              "could not be used when Gemini Keys started"),
                            saved);
  else
    text = g_strdup (_("This computer’s database file"));
  show_team_status (self, text, FALSE);
  update_team_buttons (self);
}

static void
set_team_busy (GkPreferencesWindow *self,
               gboolean             busy)
{
  self->team_busy = busy;
  update_team_buttons (self);
}

static void
team_entry_changed_cb (GkPreferencesWindow *self)
{
  update_team_buttons (self);
}

/* The connection string typed, or NULL after saying what is wrong with it. */
static char *
team_uri (GkPreferencesWindow *self)
{
  g_autofree char *uri = g_strstrip (g_strdup (gtk_editable_get_text (GTK_EDITABLE (self->team_uri_row))));
  g_autoptr(GError) error = NULL;

  if (!gk_team_database_check_target (uri, &error))
    {
      show_team_status (self, error->message, TRUE);
      return NULL;
    }
  return g_steal_pointer (&uri);
}

typedef struct
{
  char *target;
  char *password;   /* NULL: the keyring's */
} ProbeData;

static void
probe_data_free (ProbeData *data)
{
  g_free (data->target);
  gk_crypto_wipe_string (data->password);
  g_free (data);
}

static gpointer
probe_job (const GkBackendRefs  *refs,
           gpointer              user_data,
           GError              **error)
{
  ProbeData *data = user_data;
  g_autofree GkTeamDatabaseProbe *probe = g_new0 (GkTeamDatabaseProbe, 1);
  char *stored = NULL;
  gboolean ok;

  /* Without a password typed, the one kept for it (a keyring that cannot
   * be read leaves the server to say it needs one). */
  if (data->password == NULL)
    stored = gk_team_database_lookup_password (refs->secret_store, data->target, NULL, NULL);
  ok = gk_team_database_probe (data->target, data->password != NULL ? data->password : stored,
                               probe, error);
  gk_crypto_wipe_string (stored);
  return ok ? g_steal_pointer (&probe) : NULL;
}

static void
probe_done_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(GkPreferencesWindow) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree GkTeamDatabaseProbe *probe = gk_backend_run_finish (GK_BACKEND (object), result,
                                                                  &error);
  g_autofree char *text = NULL;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  set_team_busy (self, FALSE);
  if (probe == NULL)
    {
      show_team_status (self, error->message, TRUE);
      return;
    }

  if (probe->schema_version == 0)
    text = g_strdup (_("Reachable: an empty database. Connecting sets it up for Gemini Keys."));
  else if (probe->schema_version == probe->app_version)
    text = g_strdup_printf (_("Reachable: schema version %d, the one this Gemini Keys writes."),
                            probe->schema_version);
  else if (probe->schema_version < probe->app_version)
    text = g_strdup_printf (_("Reachable: schema version %d. Connecting updates it to version "
                              "%d."),
                            probe->schema_version, probe->app_version);
  else
    text = g_strdup_printf (_("Reachable, but written by a newer Gemini Keys (schema version "
                              "%d). Update Gemini Keys before connecting."),
                            probe->schema_version);
  show_team_status (self, text, probe->schema_version > probe->app_version);
}

/* The password typed, or NULL for the one the keyring keeps. */
static char *
team_password (GkPreferencesWindow *self)
{
  const char *password = gtk_editable_get_text (GTK_EDITABLE (self->team_password_row));

  return *password != '\0' ? g_strdup (password) : NULL;
}

static void
team_test_clicked_cb (GkPreferencesWindow *self)
{
  ProbeData *data;
  char *uri = team_uri (self);

  if (uri == NULL)
    return;
  data = g_new0 (ProbeData, 1);
  data->target = uri;
  data->password = team_password (self);
  set_team_busy (self, TRUE);
  show_team_status (self, _("Testing the connection…"), FALSE);
  gk_backend_run_async (self->backend, probe_job, data, (GDestroyNotify) probe_data_free, g_free,
                        self->cancellable, probe_done_cb, g_object_ref (self));
}

static void
team_switch_done_cb (GObject      *object,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  g_autoptr(GkPreferencesWindow) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!gk_backend_switch_finish (GK_BACKEND (object), result, &error))
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;
      set_team_busy (self, FALSE);
      show_team_status (self, error->message, TRUE);
      return;
    }
  set_team_busy (self, FALSE);
  /* Kept in the keyring now; not left in the field. */
  gtk_editable_set_text (GTK_EDITABLE (self->team_password_row), "");
  show_team_in_use (self);
  toast (self, gk_backend_is_team (self->backend)
               ? _("Connected to the team pool")
               : _("Back to this computer’s database file"));
}

static void
team_connect_clicked_cb (GkPreferencesWindow *self)
{
  g_autofree char *uri = team_uri (self);
  char *password;

  if (uri == NULL)
    return;
  password = team_password (self);
  set_team_busy (self, TRUE);
  show_team_status (self, _("Connecting…"), FALSE);
  gk_backend_switch_async (self->backend, uri, password, TRUE, self->cancellable,
                           team_switch_done_cb, g_object_ref (self));
  gk_crypto_wipe_string (password);
}

static void
team_disconnect_clicked_cb (GkPreferencesWindow *self)
{
  set_team_busy (self, TRUE);
  gk_backend_switch_async (self->backend, NULL, NULL, TRUE, self->cancellable,
                           team_switch_done_cb, g_object_ref (self));
}

static gpointer
load_job (const GkBackendRefs  *refs,
          gpointer              data,
          GError              **error)
{
  GkDatabase *db = refs->db;
  g_autoptr(GTimeZone) tz = gk_database_get_reset_timezone (db);
  Settings *settings = g_new0 (Settings, 1);

  settings->threshold = gk_database_get_rotation_threshold (db);
  settings->pool_budget = gk_spend_get_pool_budget (db);
  settings->unused_days = gk_hygiene_get_unused_days (db);
  if (!gk_hygiene_master_key_age (db, &settings->master_key_age, error))
    {
      settings_free (settings);
      return NULL;
    }
  settings->timezone = g_strdup (tz != NULL ? g_time_zone_get_identifier (tz) : GK_DEFAULT_RESET_TIMEZONE);
  settings->zones = read_zones (settings->timezone);
  settings->notifications = gk_database_get_setting_int (db, GK_SETTING_NOTIFICATIONS, 1) != 0;
  settings->gateway_enabled = gk_database_get_setting_int (db, GK_SETTING_GATEWAY_ENABLED, 0) != 0;
  settings->gateway_port = gk_database_get_setting_int (db, GK_SETTING_GATEWAY_PORT,
                                                        GK_DEFAULT_GATEWAY_PORT);
  settings->retention_days = gk_rollup_get_retention_days (db);

  return settings;
}

static void
load_done_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GkPreferencesWindow) self = user_data;
  g_autoptr(GError) error = NULL;
  Settings *settings;

  settings = gk_backend_run_finish (GK_BACKEND (object), result, &error);
  if (settings == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        toast (self, error->message);
      return;
    }

  self->updating = TRUE;
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (self->threshold_spin), settings->threshold);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (self->unused_days_spin), settings->unused_days);
  show_master_key_age (self, &settings->master_key_age);
  {
    char budget[G_ASCII_DTOSTR_BUF_SIZE];

    gk_spend_format_budget (settings->pool_budget, budget);
    gtk_editable_set_text (GTK_EDITABLE (self->pool_budget_row), budget);
  }
  {
    g_autoptr(GtkStringList) zones = gtk_string_list_new ((const char * const *) settings->zones);

    gtk_drop_down_set_model (GTK_DROP_DOWN (self->timezone_dropdown), G_LIST_MODEL (zones));
    for (guint i = 0; settings->zones[i] != NULL; i++)
      if (g_str_equal (settings->zones[i], settings->timezone))
        gtk_drop_down_set_selected (GTK_DROP_DOWN (self->timezone_dropdown), i);
  }
  gtk_switch_set_active (GTK_SWITCH (self->notifications_switch), settings->notifications);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (self->port_spin), settings->gateway_port);
  select_retention (self, settings->retention_days);
  self->updating = FALSE;

  sync_gateway (self);
  self->loaded = TRUE;
  gtk_widget_set_sensitive (GTK_WIDGET (self), TRUE);
  settings_free (settings);
}

static void
load_settings (GkPreferencesWindow *self)
{
  /* Nothing is editable until the current values are shown. */
  self->loaded = FALSE;
  gtk_widget_set_sensitive (GTK_WIDGET (self), FALSE);
  gk_backend_run_async (self->backend, load_job, NULL, NULL, (GDestroyNotify) settings_free,
                        self->cancellable, load_done_cb, g_object_ref (self));
}

/* A job's callback may keep this window alive after its parent is gone;
 * it must not point at the dead parent then. */
static void
parent_destroyed_cb (GkPreferencesWindow *self)
{
  gtk_window_set_transient_for (GTK_WINDOW (self), NULL);
  gtk_window_destroy (GTK_WINDOW (self));
}

static void
gk_preferences_window_dispose (GObject *object)
{
  GkPreferencesWindow *self = GK_PREFERENCES_WINDOW (object);

  g_cancellable_cancel (self->cancellable);
  /* The list lets go of the backend with the window, whatever still holds
   * the list itself. */
  if (self->tokens_group != NULL)
    gk_tokens_group_set_backend (GK_TOKENS_GROUP (self->tokens_group), NULL);
  gtk_widget_dispose_template (GTK_WIDGET (self), GK_TYPE_PREFERENCES_WINDOW);
  g_clear_object (&self->backend);

  G_OBJECT_CLASS (gk_preferences_window_parent_class)->dispose (object);
}

static void
gk_preferences_window_finalize (GObject *object)
{
  GkPreferencesWindow *self = GK_PREFERENCES_WINDOW (object);

  g_clear_object (&self->cancellable);

  G_OBJECT_CLASS (gk_preferences_window_parent_class)->finalize (object);
}

static void
gk_preferences_window_class_init (GkPreferencesWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_preferences_window_dispose;
  object_class->finalize = gk_preferences_window_finalize;

  g_type_ensure (GK_TYPE_TOKENS_GROUP);
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/geminikeys/GeminiKeys/ui/gk-preferences-window.ui");
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, threshold_spin);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, pool_budget_row);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, unused_days_spin);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, master_key_age_row);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, rotate_master_key_button);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, timezone_row);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, timezone_dropdown);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, notifications_switch);
  gtk_widget_class_bind_template_child_full (widget_class, "quota_low_row", FALSE,
                                             G_STRUCT_OFFSET (GkPreferencesWindow, alert_rows[GK_ALERT_QUOTA_LOW]));
  gtk_widget_class_bind_template_child_full (widget_class, "success_rate_row", FALSE,
                                             G_STRUCT_OFFSET (GkPreferencesWindow, alert_rows[GK_ALERT_SUCCESS_RATE]));
  gtk_widget_class_bind_template_child_full (widget_class, "key_invalid_row", FALSE,
                                             G_STRUCT_OFFSET (GkPreferencesWindow, alert_rows[GK_ALERT_KEY_INVALID]));
  gtk_widget_class_bind_template_child_full (widget_class, "budget_row", FALSE,
                                             G_STRUCT_OFFSET (GkPreferencesWindow, alert_rows[GK_ALERT_BUDGET]));
  gtk_widget_class_bind_template_child_full (widget_class, "quota_low_switch", FALSE,
                                             G_STRUCT_OFFSET (GkPreferencesWindow, alert_switches[GK_ALERT_QUOTA_LOW]));
  gtk_widget_class_bind_template_child_full (widget_class, "success_rate_switch", FALSE,
                                             G_STRUCT_OFFSET (GkPreferencesWindow, alert_switches[GK_ALERT_SUCCESS_RATE]));
  gtk_widget_class_bind_template_child_full (widget_class, "key_invalid_switch", FALSE,
                                             G_STRUCT_OFFSET (GkPreferencesWindow, alert_switches[GK_ALERT_KEY_INVALID]));
  gtk_widget_class_bind_template_child_full (widget_class, "budget_switch", FALSE,
                                             G_STRUCT_OFFSET (GkPreferencesWindow, alert_switches[GK_ALERT_BUDGET]));
  gtk_widget_class_bind_template_child_full (widget_class, "depletion_row", FALSE,
                                             G_STRUCT_OFFSET (GkPreferencesWindow, alert_rows[GK_ALERT_DEPLETION]));
  gtk_widget_class_bind_template_child_full (widget_class, "depletion_switch", FALSE,
                                             G_STRUCT_OFFSET (GkPreferencesWindow, alert_switches[GK_ALERT_DEPLETION]));
  gtk_widget_class_bind_template_child_full (widget_class, "rotation_spike_row", FALSE,
                                             G_STRUCT_OFFSET (GkPreferencesWindow, alert_rows[GK_ALERT_ROTATION_SPIKE]));
  gtk_widget_class_bind_template_child_full (widget_class, "rotation_spike_switch", FALSE,
                                             G_STRUCT_OFFSET (GkPreferencesWindow, alert_switches[GK_ALERT_ROTATION_SPIKE]));
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, gateway_group);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, gateway_row);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, gateway_switch);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, port_spin);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, tokens_group);
  gtk_widget_class_bind_template_callback (widget_class, threshold_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, pool_budget_apply_cb);
  gtk_widget_class_bind_template_callback (widget_class, unused_days_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, rotate_master_key_clicked_cb);
  gtk_widget_class_bind_template_callback (widget_class, timezone_selected_cb);
  gtk_widget_class_bind_template_callback (widget_class, notifications_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, gateway_changed_cb);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, retention_row);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, retention_model);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, compact_row);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, compact_button);
  gtk_widget_class_bind_template_callback (widget_class, port_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, retention_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, compact_clicked_cb);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, team_uri_row);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, team_password_row);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, team_status_row);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, team_spinner);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, team_test_button);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, team_connect_button);
  gtk_widget_class_bind_template_child (widget_class, GkPreferencesWindow, team_disconnect_button);
  gtk_widget_class_bind_template_callback (widget_class, team_entry_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, team_test_clicked_cb);
  gtk_widget_class_bind_template_callback (widget_class, team_connect_clicked_cb);
  gtk_widget_class_bind_template_callback (widget_class, team_disconnect_clicked_cb);
}

static void
gk_preferences_window_init (GkPreferencesWindow *self)
{
  self->cancellable = g_cancellable_new ();
  self->retention_days = g_array_new (FALSE, FALSE, sizeof (guint));
  g_array_append_vals (self->retention_days, retention_choices, G_N_ELEMENTS (retention_choices));
  gtk_widget_init_template (GTK_WIDGET (self));

  gtk_widget_set_visible (self->gateway_group, gk_backend_has_gateway ());
  gtk_widget_set_visible (self->tokens_group, gk_backend_has_gateway ());
}

/* The kinds of alert are UI preferences, kept in GSettings; without the
 * schema (running uninstalled) their switches are hidden. */
static void
bind_alert_switches (GkPreferencesWindow *self)
{
  g_autoptr(GSettings) settings = gk_notifier_settings_new ();

  for (guint kind = 0; kind < G_N_ELEMENTS (self->alert_switches); kind++)
    {
      /* The budget warnings share the budget's switch. */
      if (self->alert_rows[kind] == NULL)
        continue;
      if (settings == NULL)
        gtk_widget_set_visible (self->alert_rows[kind], FALSE);
      else
        g_settings_bind (settings, gk_notifier_settings_key (kind), self->alert_switches[kind],
                         "active", G_SETTINGS_BIND_DEFAULT);
    }
}

GtkWidget *
gk_preferences_window_new (GtkWindow *parent,
                           GkBackend *backend)
{
  GkPreferencesWindow *self;

  g_return_val_if_fail (GK_IS_BACKEND (backend), NULL);

  self = g_object_new (GK_TYPE_PREFERENCES_WINDOW,
                       "transient-for", parent,
                       NULL);
  self->backend = g_object_ref (backend);
  gk_tokens_group_set_backend (GK_TOKENS_GROUP (self->tokens_group), backend);
  bind_alert_switches (self);
  if (parent != NULL)
    g_signal_connect_object (parent, "destroy", G_CALLBACK (parent_destroyed_cb), self,
                             G_CONNECT_SWAPPED);

  /* The settings shown are those of the database in use. */
  g_signal_connect_object (backend, "database-changed", G_CALLBACK (load_settings), self,
                           G_CONNECT_SWAPPED);
  g_signal_connect_object (backend, "gateway-changed", G_CALLBACK (sync_gateway), self,
                           G_CONNECT_SWAPPED);
  {
    g_autofree char *saved = gk_backend_dup_team_setting ();

    g_autofree char *shown = gk_database_redact_target (gk_backend_get_target (backend));

    gtk_editable_set_text (GTK_EDITABLE (self->team_uri_row),
                           gk_backend_is_team (backend) ? shown : saved);
  }
  show_team_in_use (self);
  load_settings (self);

  return GTK_WIDGET (self);
}

gboolean
gk_preferences_window_get_loaded (GkPreferencesWindow *self)
{
  g_return_val_if_fail (GK_IS_PREFERENCES_WINDOW (self), FALSE);

  return self->loaded;
}
