/* gk-notifier.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-notifier.h"

struct _GkNotifier
{
  GObject         parent_instance;
  GApplication   *application;   /* weak: the application owns us */
  GkBackend      *backend;
  GSettings      *settings;      /* NULL when the schema is not installed */
  GkAlertTracker *tracker;       /* made once the database is open */
  gint64          last_rotation_id;  /* -1: not read yet */
  gboolean        running;
  gboolean        again;         /* "changed" arrived while a check ran */
  gboolean        stale;         /* the running check reads a database left since */
};

G_DEFINE_FINAL_TYPE (GkNotifier, gk_notifier, G_TYPE_OBJECT)

typedef struct
{
  gboolean       rotations_enabled;
  GkRotationRow *latest_rotation;   /* NULL when there is none */
  GPtrArray     *alerts;            /* GkAlert */
} Check;

static void
check_free (Check *check)
{
  g_clear_pointer (&check->latest_rotation, gk_rotation_row_free);
  g_clear_pointer (&check->alerts, g_ptr_array_unref);
  g_free (check);
}

const char *
gk_notifier_settings_key (GkAlertKind kind)
{
  switch (kind)
    {
    case GK_ALERT_QUOTA_LOW:
      return "notify-quota-low";
    case GK_ALERT_SUCCESS_RATE:
      return "notify-success-rate";
    case GK_ALERT_KEY_INVALID:
      return "notify-key-invalid";
    case GK_ALERT_DEPLETION:
      return "notify-depletion";
    case GK_ALERT_ROTATION_SPIKE:
      return "notify-rotation-spike";
    case GK_ALERT_BUDGET:
    case GK_ALERT_BUDGET_WARNING:
    case GK_ALERT_POOL_BUDGET:
    case GK_ALERT_POOL_BUDGET_WARNING:
    default:
      return "notify-budget";
    }
}

GNotification *
gk_notifier_build_notification (const GkAlert  *alert,
                                char          **id_out)
{
  g_autoptr(GNotification) notification = NULL;
  g_autofree char *body = NULL;
  const char *title, *tab;
  /* Tells the notifications of one settings key apart. */
  const char *tag = "";

  g_return_val_if_fail (alert != NULL, NULL);

  switch (alert->kind)
    {
    case GK_ALERT_QUOTA_LOW:
      title = _("Quota Running Low");
      /* Translators: "<key name> has 8% of a quota left." */
      body = g_strdup_printf (_("“%s” has %.0f%% of a quota left."), alert->key_name,
                              alert->value);
      tab = "keys";
      break;
    case GK_ALERT_SUCCESS_RATE:
      title = _("Many Requests Are Failing");
      body = g_strdup_printf (_("Only %.0f%% of the requests in the last hour succeeded."),
                              alert->value);
      tab = "dashboard";
      break;
    case GK_ALERT_KEY_INVALID:
      title = _("Key Rejected by Google");
      body = g_strdup_printf (_("“%s” is invalid, suspended or reported as leaked. "
                                "Replace it or test it again."),
                              alert->key_name);
      tab = "keys";
      break;
    case GK_ALERT_BUDGET_WARNING:
      title = _("Key Near Its Budget");
      tag = "-80";
      /* Translators: "<key name> has spent 80% of its monthly budget of $10.00." */
      body = g_strdup_printf (_("“%s” has spent %.0f%% of its monthly budget of $%.2f."),
                              alert->key_name, GK_BUDGET_WARNING_PERCENT, alert->value);
      tab = "keys";
      break;
    case GK_ALERT_POOL_BUDGET_WARNING:
      title = _("Pool Near Its Budget");
      tag = "-pool-80";
      body = g_strdup_printf (_("The keys have spent %.0f%% of the pool’s monthly budget of "
                                "$%.2f."),
                              GK_BUDGET_WARNING_PERCENT, alert->value);
      tab = "dashboard";
      break;
    case GK_ALERT_POOL_BUDGET:
      title = _("Pool Budget Spent");
      tag = "-pool";
      body = g_strdup_printf (_("The pool’s monthly budget of $%.2f is spent: no key is used "
                                "until the month resets or the budget is raised."),
                              alert->value);
      tab = "dashboard";
      break;
    case GK_ALERT_DEPLETION:
      {
        g_autoptr(GDateTime) at = g_date_time_new_from_unix_local (alert->at);
        g_autofree char *clock = at != NULL ? g_date_time_format (at, "%H:%M") : g_strdup ("");

        title = _("Key Running Out Today");
        /* Translators: "<key name> will run out of its daily quota around 16:40 at the current
         * rate." */
        body = g_strdup_printf (_("“%s” will run out of its daily quota around %s at the "
                                  "current rate."),
                                alert->key_name, clock);
        tab = "keys";
      }
      break;
    case GK_ALERT_ROTATION_SPIKE:
      title = _("Unusually Many Rotations");
      if (alert->key_id != 0)
        /* Translators: "<key name> was rotated 12 times this hour, mostly: Cooling down." */
        body = g_strdup_printf (_("“%s” was rotated %.0f times this hour, mostly: %s."),
                                alert->key_name, alert->value,
                                gk_key_state_get_label (gk_rotation_reason_get_state (alert->reason)));
      else
        body = g_strdup_printf (_("Keys were rotated %.0f times this hour, mostly: %s."),
                                alert->value,
                                gk_key_state_get_label (gk_rotation_reason_get_state (alert->reason)));
      tab = "rotations";
      break;
    case GK_ALERT_BUDGET:
    default:
      title = _("Key Over Budget");
      body = g_strdup_printf (_("“%s” reached its monthly budget of $%.2f."), alert->key_name,
                              alert->value);
      tab = "keys";
      break;
    }

  notification = g_notification_new (title);
  g_notification_set_body (notification, body);
  g_notification_set_default_action_and_target (notification, "app.show-tab", "s", tab);
  if (id_out != NULL)
    *id_out = g_strdup_printf ("%s%s-%" G_GINT64_FORMAT, gk_notifier_settings_key (alert->kind),
                               tag, alert->key_id);
  return g_steal_pointer (&notification);
}

static gboolean
kind_enabled (GkNotifier  *self,
              GkAlertKind  kind)
{
  return self->settings == NULL
         || g_settings_get_boolean (self->settings, gk_notifier_settings_key (kind));
}

static gpointer
check_job (const GkBackendRefs  *refs,
           gpointer              data,
           GError              **error)
{
  GkAlertTracker *tracker = data;
  GkDatabase *db = refs->db;
  Check *check = g_new0 (Check, 1);
  g_autoptr(GPtrArray) rows = NULL;

  check->rotations_enabled = gk_database_get_setting_int (db, GK_SETTING_NOTIFICATIONS, 1) != 0;
  rows = gk_stats_rotation_logs (db, 1, NULL);
  if (rows != NULL && rows->len > 0)
    check->latest_rotation = g_ptr_array_steal_index (rows, 0);
  check->alerts = gk_alert_tracker_check (tracker, NULL);
  return check;
}

static void send_rotation (GkNotifier *self, const GkRotationRow *row);
static void start_check (GkNotifier *self);

static void
check_done_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(GkNotifier) self = user_data;
  Check *check;
  gint64 newest;

  self->running = FALSE;
  check = gk_backend_run_finish (GK_BACKEND (object), result, NULL);
  if (check == NULL || self->application == NULL)
    {
      g_clear_pointer (&check, check_free);
      return;
    }
  if (self->stale)
    {
      self->stale = FALSE;
      check_free (check);
      if (self->again)
        {
          self->again = FALSE;
          start_check (self);
        }
      return;
    }

  /* The first read only sets the mark: start-up is not news. */
  newest = check->latest_rotation != NULL ? check->latest_rotation->id : 0;
  if (self->last_rotation_id >= 0 && newest > self->last_rotation_id && check->rotations_enabled)
    send_rotation (self, check->latest_rotation);
  self->last_rotation_id = newest;

  for (guint i = 0; check->alerts != NULL && i < check->alerts->len; i++)
    {
      const GkAlert *alert = g_ptr_array_index (check->alerts, i);
      g_autoptr(GNotification) notification = NULL;
      g_autofree char *id = NULL;

      if (!kind_enabled (self, alert->kind))
        continue;
      notification = gk_notifier_build_notification (alert, &id);
      g_application_send_notification (self->application, id, notification);
    }
  check_free (check);

  if (self->again)
    {
      self->again = FALSE;
      start_check (self);
    }
}

static void
send_rotation (GkNotifier          *self,
               const GkRotationRow *row)
{
  g_autoptr(GNotification) notification = g_notification_new (_("Key rotated"));
  g_autofree char *body = NULL;

  const char *state = gk_key_state_get_label (gk_rotation_reason_get_state (row->reason));

  /* The reason in the badge's words ("Cooling down", "Skipped by you", …). */
  if (row->to_key_name != NULL)
    /* Translators: "<key> was taken out of service (<state>); <key> is used now." */
    body = g_strdup_printf (_("“%s” was taken out of service (%s); “%s” is used now."),
                            row->from_key_name, state, row->to_key_name);
  else
    body = g_strdup_printf (_("“%s” was taken out of service (%s) and no other key is available."),
                            row->from_key_name, state);
  g_notification_set_body (notification, body);
  g_notification_set_default_action_and_target (notification, "app.show-tab", "s", "rotations");
  g_application_send_notification (self->application, "rotation", notification);
}

static void
start_check (GkNotifier *self)
{
  GkDatabase *db = gk_backend_get_database (self->backend);

  if (db == NULL)
    return;
  if (self->running)
    {
      self->again = TRUE;
      return;
    }
  if (self->tracker == NULL)
    self->tracker = gk_alert_tracker_new (db);

  self->running = TRUE;
  gk_backend_run_async (self->backend, check_job, g_object_ref (self->tracker), g_object_unref,
                        (GDestroyNotify) check_free, NULL, check_done_cb, g_object_ref (self));
}

/* Another database (Team Pool in Preferences): its own alerts, and what
 * it already holds is no news either. */
static void
database_changed_cb (GkNotifier *self)
{
  g_clear_object (&self->tracker);
  self->last_rotation_id = -1;
  self->stale = self->running;
  self->again = FALSE;
}

static void
gk_notifier_dispose (GObject *object)
{
  GkNotifier *self = (GkNotifier *) object;

  g_clear_weak_pointer (&self->application);
  gk_backend_set_watched (&self->backend, NULL, NULL, self);
  g_clear_object (&self->settings);
  g_clear_object (&self->tracker);

  G_OBJECT_CLASS (gk_notifier_parent_class)->dispose (object);
}

static void
gk_notifier_class_init (GkNotifierClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = gk_notifier_dispose;
}

static void
gk_notifier_init (GkNotifier *self)
{
  self->last_rotation_id = -1;
}

GSettings *
gk_notifier_settings_new (void)
{
  GSettingsSchemaSource *source = g_settings_schema_source_get_default ();
  g_autoptr(GSettingsSchema) schema = NULL;

  if (source == NULL)
    return NULL;
  schema = g_settings_schema_source_lookup (source, APP_ID, TRUE);
  if (schema == NULL || !g_settings_schema_has_key (schema, "notify-quota-low"))
    return NULL;
  return g_settings_new (APP_ID);
}

GkNotifier *
gk_notifier_new (GApplication *application,
                 GkBackend    *backend)
{
  GkNotifier *self;

  g_return_val_if_fail (G_IS_APPLICATION (application), NULL);
  g_return_val_if_fail (GK_IS_BACKEND (backend), NULL);

  self = g_object_new (GK_TYPE_NOTIFIER, NULL);
  g_set_weak_pointer (&self->application, application);
  self->backend = g_object_ref (backend);
  self->settings = gk_notifier_settings_new ();
  g_signal_connect_object (backend, "changed", G_CALLBACK (start_check), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (backend, "database-changed", G_CALLBACK (database_changed_cb), self,
                           G_CONNECT_SWAPPED);
  return self;
}
