/* gk-alerts.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-alerts.h"
#include "gk-database-private.h"
#include "gk-insights.h"
#include "gk-quotas.h"
#include "gk-rollup.h"
#include "gk-spend.h"

struct _GkAlertTracker
{
  GObject     parent_instance;
  GkDatabase *db;
  GMutex      mutex;
  GHashTable *active;          /* "kind:key_id" of conditions already reported */
  GHashTable *this_month;      /* "kind:key_id:month_start" of budget levels reported */
  gint64      last_rate_alert; /* 0 = never */
  gint64      last_forecast;   /* 0 = never */
  gboolean    primed;
};

G_DEFINE_FINAL_TYPE (GkAlertTracker, gk_alert_tracker, G_TYPE_OBJECT)

void
gk_alert_free (GkAlert *alert)
{
  if (alert == NULL)
    return;
  g_free (alert->key_name);
  g_free (alert);
}

static void
gk_alert_tracker_finalize (GObject *object)
{
  GkAlertTracker *self = (GkAlertTracker *) object;

  g_clear_object (&self->db);
  g_clear_pointer (&self->active, g_hash_table_unref);
  g_clear_pointer (&self->this_month, g_hash_table_unref);
  g_mutex_clear (&self->mutex);

  G_OBJECT_CLASS (gk_alert_tracker_parent_class)->finalize (object);
}

static void
gk_alert_tracker_class_init (GkAlertTrackerClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gk_alert_tracker_finalize;
}

static void
gk_alert_tracker_init (GkAlertTracker *self)
{
  g_mutex_init (&self->mutex);
  self->active = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->this_month = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

GkAlertTracker *
gk_alert_tracker_new (GkDatabase *db)
{
  GkAlertTracker *self;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);

  self = g_object_new (GK_TYPE_ALERT_TRACKER, NULL);
  self->db = g_object_ref (db);
  return self;
}

/* One query per per-key condition, with its parameter as ?1; each row is
 * (id, name, value). Budget levels are reported once a month, the others
 * each time they begin. */
static const struct
{
  GkAlertKind kind;
  double      param;
  gboolean    monthly;
  const char *sql;
} key_conditions[] = {
  { GK_ALERT_QUOTA_LOW, GK_ALERT_QUOTA_LOW_PERCENT, FALSE,
    "SELECT k.id, k.name, MIN((q.limit_value - q.used_value) * 100.0 / q.limit_value)"
    " FROM gemini_api_keys k JOIN gemini_key_quotas q ON q.key_id = k.id"
    " WHERE k.deleted_at IS NULL AND k.status != 'INACTIVE' AND q.limit_value > 0"
    " GROUP BY k.id, k.name"
    " HAVING MIN((q.limit_value - q.used_value) * 100.0 / q.limit_value) < ?1" },
  { GK_ALERT_KEY_INVALID, 0, FALSE,
    "SELECT id, name, 0 FROM gemini_api_keys"
    " WHERE deleted_at IS NULL AND status = 'INVALID' AND ?1 = ?1" },
  { GK_ALERT_BUDGET, 0, TRUE,
    "SELECT id, name, monthly_budget_usd FROM gemini_api_keys"
    " WHERE deleted_at IS NULL AND monthly_budget_usd IS NOT NULL"
    " AND month_cost_usd >= monthly_budget_usd AND ?1 = ?1" },
  { GK_ALERT_BUDGET_WARNING, GK_BUDGET_WARNING_PERCENT, TRUE,
    "SELECT id, name, monthly_budget_usd FROM gemini_api_keys"
    " WHERE deleted_at IS NULL AND monthly_budget_usd IS NOT NULL"
    " AND month_cost_usd * 100.0 >= monthly_budget_usd * ?1"
    " AND month_cost_usd < monthly_budget_usd" },
};

/* Adds an alert for a condition that holds now, unless it was reported:
 * @tag in @now_active (conditions that end and begin again are news
 * again) or, for a monthly one, in this month's set. */
static void
note_condition (GkAlertTracker *self,
                GHashTable     *now_active,
                gboolean        monthly,
                gint64          month_start,
                GkAlertKind     kind,
                gint64          key_id,
                const char     *key_name,
                double          value,
                GPtrArray      *alerts)
{
  char *tag = monthly ? g_strdup_printf ("%d:%" G_GINT64_FORMAT ":%" G_GINT64_FORMAT, kind,
                                         key_id, month_start)
                      : g_strdup_printf ("%d:%" G_GINT64_FORMAT, kind, key_id);
  gboolean reported = g_hash_table_contains (monthly ? self->this_month : self->active, tag);

  if (!reported)
    {
      GkAlert *alert = g_new0 (GkAlert, 1);

      alert->kind = kind;
      alert->key_id = key_id;
      alert->key_name = g_strdup (key_name);
      alert->value = value;
      g_ptr_array_add (alerts, alert);
    }
  if (monthly)
    g_hash_table_add (self->this_month, tag);
  else
    g_hash_table_add (now_active, tag);
}

static gboolean
collect_key_condition (GkAlertTracker *self,
                       guint           index,
                       gint64          month_start,
                       GHashTable     *now_active,
                       GPtrArray      *alerts,
                       GError        **error)
{
  GkSqlStmt *stmt = gk_database_prepare (self->db, key_conditions[index].sql, error);
  int rc;

  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_double (stmt, 1, key_conditions[index].param);
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    note_condition (self, now_active, key_conditions[index].monthly, month_start,
                    key_conditions[index].kind, gk_sql_column_int64 (stmt, 0),
                    gk_sql_column_text (stmt, 1),
                    gk_sql_column_double (stmt, 2), alerts);
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (self->db, error, _("Cannot read the keys"));
      return FALSE;
    }
  return TRUE;
}

/* The pool's budget: 80%, then 100%, once a month each. */
static gboolean
check_pool_budget (GkAlertTracker *self,
                   gint64          month_start,
                   GHashTable     *now_active,
                   GPtrArray      *alerts,
                   GError        **error)
{
  double budget = gk_spend_get_pool_budget (self->db);
  double spent = 0;
  double percent;

  if (budget < 0)
    return TRUE;
  if (!gk_spend_month_total (self->db, &spent, error))
    return FALSE;
  percent = gk_spend_percent (spent, budget);
  if (percent >= 100.0)
    note_condition (self, now_active, TRUE, month_start, GK_ALERT_POOL_BUDGET, 0, NULL, budget,
                    alerts);
  else if (percent >= GK_BUDGET_WARNING_PERCENT)
    note_condition (self, now_active, TRUE, month_start, GK_ALERT_POOL_BUDGET_WARNING, 0, NULL,
                    budget, alerts);
  return TRUE;
}

static gboolean
check_success_rate (GkAlertTracker *self,
                    gint64          now,
                    GPtrArray      *alerts,
                    GError        **error)
{
  g_autofree char *folded = gk_database_get_meta (self->db, GK_ROLLUP_META_MAX_ID);
  gint64 since = now - GK_ALERT_SUCCESS_RATE_INTERVAL;
  GkSqlStmt *stmt;
  gint64 requests = 0, successes = 0;

  /* The dashboard's 15-minute totals, plus the rows not folded into them
   * yet: the log has no index by time (an insert would pay for it). "The
   * last hour" starts with the 15 minutes that contain its first second. */
  since -= since % GK_ROLLUP_BUCKET_SECONDS;
  stmt = gk_database_prepare (self->db,
                              "SELECT"
                              " (SELECT coalesce (sum(requests), 0) FROM usage_rollup_total"
                              "    WHERE start >= ?1)"
                              " + (SELECT count(*) FROM gemini_key_usage_log"
                              "    WHERE id > ?2 AND created_at >= ?1),"
                              " (SELECT coalesce (sum(successes), 0) FROM usage_rollup_total"
                              "    WHERE start >= ?1)"
                              " + (SELECT count(*) FROM gemini_key_usage_log"
                              "    WHERE id > ?2 AND created_at >= ?1 AND status = 'SUCCESS')",
                              error);
  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, since);
  gk_sql_bind_int64 (stmt, 2, folded ? g_ascii_strtoll (folded, NULL, 10) : 0);
  if (gk_sql_step (stmt) == GK_SQL_ROW)
    {
      requests = gk_sql_column_int64 (stmt, 0);
      successes = gk_sql_column_int64 (stmt, 1);
    }
  gk_sql_reset (stmt);

  if (requests >= GK_ALERT_SUCCESS_RATE_MIN_REQUESTS
      && successes * 100.0 < GK_ALERT_SUCCESS_RATE_PERCENT * requests
      && (self->last_rate_alert == 0
          || now - self->last_rate_alert >= GK_ALERT_SUCCESS_RATE_INTERVAL
          || now < self->last_rate_alert))
    {
      GkAlert *alert = g_new0 (GkAlert, 1);

      alert->kind = GK_ALERT_SUCCESS_RATE;
      alert->value = successes * 100.0 / requests;
      self->last_rate_alert = now;
      if (self->primed)
        g_ptr_array_add (alerts, alert);
      else
        gk_alert_free (alert);
    }
  return TRUE;
}

/* Reports @tag once: adds an alert when the condition is new. */
static void
add_once (GkAlertTracker *self,
          GHashTable     *now_active,
          GPtrArray      *alerts,
          char           *tag,
          GkAlert        *alert)
{
  if (g_hash_table_contains (self->active, tag))
    gk_alert_free (alert);
  else
    g_ptr_array_add (alerts, alert);
  g_hash_table_add (now_active, tag);
}

#define FORECAST_INTERVAL 60

static gboolean
check_depletion (GkAlertTracker *self,
                 gint64          now,
                 GHashTable     *now_active,
                 GPtrArray      *alerts,
                 GError        **error)
{
  g_autoptr(GkForecast) forecast = NULL;
  g_autofree char *prefix = g_strdup_printf ("%d:", GK_ALERT_DEPLETION);

  /* Between two forecasts the conditions stay as they were. */
  if (self->last_forecast != 0 && now >= self->last_forecast
      && now - self->last_forecast < FORECAST_INTERVAL)
    {
      GHashTableIter iter;
      gpointer tag;

      g_hash_table_iter_init (&iter, self->active);
      while (g_hash_table_iter_next (&iter, &tag, NULL))
        if (g_str_has_prefix (tag, prefix))
          g_hash_table_add (now_active, g_strdup (tag));
      return TRUE;
    }

  forecast = gk_insights_forecast (self->db, error);
  if (forecast == NULL)
    return FALSE;
  self->last_forecast = now;
  for (guint i = 0; i < forecast->windows->len; i++)
    {
      const GkDepletion *d = forecast->windows->pdata[i];
      GkAlert *alert;

      if (d->quota_type != GK_QUOTA_DAILY || d->runs_out_at == 0
          || d->runs_out_at > now + GK_FORECAST_ALERT_SECONDS)
        continue;
      alert = g_new0 (GkAlert, 1);
      alert->kind = GK_ALERT_DEPLETION;
      alert->key_id = d->key_id;
      alert->key_name = g_strdup (d->name);
      alert->at = d->runs_out_at;
      /* Once per key and daily window, whichever unit runs out. */
      add_once (self, now_active, alerts,
                g_strdup_printf ("%s%" G_GINT64_FORMAT ":%" G_GINT64_FORMAT, prefix, d->key_id,
                                 d->reset_at),
                alert);
    }
  return TRUE;
}

static gboolean
check_spikes (GkAlertTracker *self,
              gint64          now,
              GHashTable     *now_active,
              GPtrArray      *alerts,
              GError        **error)
{
  g_autoptr(GPtrArray) spikes = NULL;

  /* This hour's, and the last one's while it is still the news. */
  spikes = gk_insights_rotation_spikes (self->db, now - now % 3600 - 3600, 0, error);
  if (spikes == NULL)
    return FALSE;
  for (guint i = 0; i < spikes->len; i++)
    {
      const GkRotationSpike *spike = spikes->pdata[i];
      GkAlert *alert = g_new0 (GkAlert, 1);

      alert->kind = GK_ALERT_ROTATION_SPIKE;
      alert->key_id = spike->key_id;
      alert->key_name = g_strdup (spike->key_name);
      alert->value = (double) spike->rotations;
      alert->at = spike->hour_start;
      alert->reason = spike->dominant_reason;
      add_once (self, now_active, alerts,
                g_strdup_printf ("%d:%" G_GINT64_FORMAT ":%" G_GINT64_FORMAT,
                                 GK_ALERT_ROTATION_SPIKE, spike->key_id, spike->hour_start),
                alert);
    }
  return TRUE;
}

GPtrArray *
gk_alert_tracker_check (GkAlertTracker  *self,
                        GError         **error)
{
  g_autoptr(GPtrArray) alerts = g_ptr_array_new_with_free_func ((GDestroyNotify) gk_alert_free);
  g_autoptr(GHashTable) now_active = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GTimeZone) tz = NULL;
  gboolean ok = TRUE;
  gint64 now, month_start;

  g_return_val_if_fail (GK_IS_ALERT_TRACKER (self), NULL);

  if (!gk_quotas_reset_expired (self->db, error))
    return NULL;

  tz = gk_database_get_reset_timezone (self->db);
  now = gk_database_now (self->db);
  month_start = gk_quota_window_start (GK_QUOTA_MONTHLY, now, tz);

  g_mutex_lock (&self->mutex);
  gk_database_lock (self->db);
  for (guint i = 0; ok && i < G_N_ELEMENTS (key_conditions); i++)
    ok = collect_key_condition (self, i, month_start, now_active, alerts, error);
  if (ok)
    ok = check_pool_budget (self, month_start, now_active, alerts, error);
  if (ok)
    ok = check_success_rate (self, now, alerts, error);
  if (ok)
    ok = check_depletion (self, now, now_active, alerts, error)
         && check_spikes (self, now, now_active, alerts, error);
  gk_database_unlock (self->db);

  if (ok)
    {
      /* A condition that ended and begins again is news again. */
      g_hash_table_unref (self->active);
      self->active = g_steal_pointer (&now_active);
      if (!self->primed)
        {
          g_ptr_array_set_size (alerts, 0);
          self->primed = TRUE;
        }
    }
  g_mutex_unlock (&self->mutex);

  return ok ? g_steal_pointer (&alerts) : NULL;
}
