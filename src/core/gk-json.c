/* gk-json.c: the JSON shape of the core records.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include "gk-json.h"
#include "gk-key-state.h"
#include "gk-quotas.h"

void
gk_json_add_int (JsonBuilder *builder,
                 const char  *member,
                 gint64       value)
{
  json_builder_set_member_name (builder, member);
  json_builder_add_int_value (builder, value);
}

void
gk_json_add_double (JsonBuilder *builder,
                    const char  *member,
                    double       value)
{
  json_builder_set_member_name (builder, member);
  json_builder_add_double_value (builder, value);
}

void
gk_json_add_boolean (JsonBuilder *builder,
                     const char  *member,
                     gboolean     value)
{
  json_builder_set_member_name (builder, member);
  json_builder_add_boolean_value (builder, value);
}

void
gk_json_add_string (JsonBuilder *builder,
                    const char  *member,
                    const char  *value)
{
  json_builder_set_member_name (builder, member);
  if (value != NULL)
    json_builder_add_string_value (builder, value);
  else
    json_builder_add_null_value (builder);
}

void
gk_json_add_optional_id (JsonBuilder *builder,
                         const char  *member,
                         gint64       id)
{
  json_builder_set_member_name (builder, member);
  /* Row ids start at 1: anything lower means "none" (an SQL NULL). */
  if (id > 0)
    json_builder_add_int_value (builder, id);
  else
    json_builder_add_null_value (builder);
}

void
gk_json_add_time (JsonBuilder *builder,
                  const char  *member,
                  gint64       unix_time)
{
  /* The records keep 0 for "never"; the epoch itself never occurs. */
  gk_json_add_optional_id (builder, member, unix_time);
}

void
gk_json_add_rows (JsonBuilder  *builder,
                  const char   *member,
                  GPtrArray    *rows,
                  GkJsonAddRow  add_row)
{
  if (member != NULL)
    json_builder_set_member_name (builder, member);
  json_builder_begin_array (builder);
  for (guint i = 0; i < rows->len; i++)
    add_row (builder, rows->pdata[i]);
  json_builder_end_array (builder);
}

void
gk_json_add_key_members (JsonBuilder *builder,
                         const GkKey *key,
                         GTimeZone   *reset_tz)
{
  g_autofree char *masked = gk_key_get_masked (key);
  g_autoptr(GTimeZone) local_tz = g_time_zone_new_local ();
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  gk_json_add_int (builder, "id", key->id);
  gk_json_add_string (builder, "name", key->name);
  gk_json_add_string (builder, "key_hint", key->key_hint);
  gk_json_add_string (builder, "masked_key", masked);
  gk_json_add_string (builder, "project", key->project);
  gk_json_add_string (builder, "status", gk_key_status_to_string (key->status));
  gk_json_add_string (builder, "status_reason", key->status_reason);
  /* The derived state (gk-key-state.h): what the fields above mean now. */
  gk_json_add_string (builder, "state", gk_key_state_to_string (key->state));
  gk_json_add_string (builder, "state_label", gk_key_state_get_label (key->state));
  gk_json_add_string (builder, "state_reason", key->state_reason);
  gk_json_add_time (builder, "back_at", key->state_until);
  gk_json_add_time (builder, "cooldown_until", key->cooldown_until);
  gk_json_add_int (builder, "priority", key->priority);
  gk_json_add_boolean (builder, "is_default", key->is_default);
  /* A negative budget means "no budget". */
  json_builder_set_member_name (builder, "monthly_budget_usd");
  if (key->monthly_budget_usd >= 0)
    json_builder_add_double_value (builder, key->monthly_budget_usd);
  else
    json_builder_add_null_value (builder);
  gk_json_add_double (builder, "month_cost_usd", key->month_cost_usd);
  gk_json_add_double (builder, "remaining_share", gk_key_remaining_share (key));
  gk_json_add_time (builder, "created_at", key->created_at);
  gk_json_add_time (builder, "updated_at", key->updated_at);
  gk_json_add_time (builder, "last_used_at", key->last_used_at);
  gk_json_add_time (builder, "last_rotation_at", key->last_rotation_at);

  json_builder_set_member_name (builder, "quotas");
  json_builder_begin_array (builder);
  for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
    {
      const GkQuota *quota = &key->quotas[i];
      g_autofree char *local = gk_quota_format_reset_iso (quota->reset_at, local_tz);
      g_autofree char *text = gk_quota_format_reset (quota->reset_at, now, local_tz, reset_tz);

      json_builder_begin_object (builder);
      gk_json_add_string (builder, "quota_type", gk_quota_type_to_string (quota->type));
      gk_json_add_string (builder, "unit", gk_quota_unit_to_string (quota->unit));
      gk_json_add_int (builder, "limit_value", quota->limit_value);
      gk_json_add_int (builder, "used_value", quota->used_value);
      gk_json_add_time (builder, "reset_at", quota->reset_at);
      gk_json_add_string (builder, "reset_at_local", local);
      gk_json_add_string (builder, "reset_at_text", text);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
}

void
gk_json_add_key (JsonBuilder *builder,
                 const GkKey *key,
                 GTimeZone   *reset_tz)
{
  json_builder_begin_object (builder);
  gk_json_add_key_members (builder, key, reset_tz);
  json_builder_end_object (builder);
}

void
gk_json_add_usage_row (JsonBuilder      *builder,
                       const GkUsageRow *row)
{
  json_builder_begin_object (builder);
  gk_json_add_int (builder, "id", row->id);
  /* A request no key could serve (answered 503) has none: null. */
  gk_json_add_optional_id (builder, "key_id", row->key_id);
  gk_json_add_string (builder, "key_name", row->key_name);
  gk_json_add_string (builder, "model", row->model);
  gk_json_add_int (builder, "tokens_used", row->tokens_used);
  gk_json_add_int (builder, "prompt_tokens", row->prompt_tokens);
  gk_json_add_int (builder, "output_tokens", row->output_tokens);
  gk_json_add_double (builder, "cost_usd", row->cost_usd);
  gk_json_add_boolean (builder, "priced", row->priced);
  gk_json_add_string (builder, "status", gk_usage_status_to_string (row->status));
  /* No HTTP status (the request never got an answer) is an SQL NULL. */
  gk_json_add_optional_id (builder, "http_status", row->http_status);
  gk_json_add_string (builder, "error_message", row->error_message);
  gk_json_add_string (builder, "user_id", row->user_id);
  gk_json_add_int (builder, "latency_ms", row->latency_ms);
  gk_json_add_time (builder, "created_at", row->created_at);
  json_builder_end_object (builder);
}

void
gk_json_add_audit_row (JsonBuilder      *builder,
                       const GkAuditRow *row)
{
  json_builder_begin_object (builder);
  gk_json_add_int (builder, "id", row->id);
  gk_json_add_time (builder, "created_at", row->created_at);
  gk_json_add_string (builder, "actor", row->actor);
  gk_json_add_string (builder, "action", gk_audit_action_to_string (row->action));
  gk_json_add_optional_id (builder, "target_id", row->target_id);
  gk_json_add_string (builder, "target", row->target);
  gk_json_add_string (builder, "summary", row->summary);
  json_builder_end_object (builder);
}

void
gk_json_add_rotation_row (JsonBuilder         *builder,
                          const GkRotationRow *row)
{
  json_builder_begin_object (builder);
  gk_json_add_int (builder, "id", row->id);
  gk_json_add_int (builder, "from_key_id", row->from_key_id);
  gk_json_add_string (builder, "from_key_name", row->from_key_name);
  gk_json_add_optional_id (builder, "to_key_id", row->to_key_id);
  gk_json_add_string (builder, "to_key_name", row->to_key_name);
  gk_json_add_string (builder, "reason", gk_rotation_reason_to_string (row->reason));
  gk_json_add_string (builder, "triggered_by", row->triggered_by);
  gk_json_add_time (builder, "created_at", row->created_at);
  gk_json_add_boolean (builder, "in_spike", row->in_spike);
  json_builder_end_object (builder);
}

/* -1 ("none") is written as null. */
static void
add_optional_double (JsonBuilder *builder,
                     const char  *member,
                     double       value)
{
  if (value < 0)
    {
      json_builder_set_member_name (builder, member);
      json_builder_add_null_value (builder);
    }
  else
    gk_json_add_double (builder, member, value);
}

void
gk_json_add_key_comparison (JsonBuilder           *builder,
                            const GkKeyComparison *row)
{
  json_builder_begin_object (builder);
  gk_json_add_int (builder, "key_id", row->key_id);
  gk_json_add_string (builder, "name", row->name);
  gk_json_add_string (builder, "key_hint", row->key_hint);
  gk_json_add_boolean (builder, "deleted", row->deleted);
  gk_json_add_int (builder, "requests", row->requests);
  gk_json_add_int (builder, "successes", row->successes);
  gk_json_add_int (builder, "rate_limited", row->rate_limited);
  gk_json_add_int (builder, "rejected", row->rejected);
  gk_json_add_int (builder, "errors", row->errors);
  gk_json_add_double (builder, "success_rate", row->success_rate);
  gk_json_add_double (builder, "rate_limited_rate", row->rate_limited_rate);
  gk_json_add_double (builder, "rejected_rate", row->rejected_rate);
  add_optional_double (builder, "p50_latency_ms", row->p50_ms);
  add_optional_double (builder, "p95_latency_ms", row->p95_ms);
  gk_json_add_int (builder, "tokens_used", row->tokens);
  gk_json_add_double (builder, "cost_usd", row->cost_usd);
  add_optional_double (builder, "cost_per_1k_tokens", row->cost_per_1k_tokens);
  gk_json_add_double (builder, "share", row->share);
  json_builder_end_object (builder);
}

void
gk_json_add_forecast (JsonBuilder      *builder,
                      const GkForecast *forecast)
{
  json_builder_begin_object (builder);
  gk_json_add_time (builder, "now", forecast->now);
  gk_json_add_int (builder, "keys_out_today", forecast->keys_out_today);
  gk_json_add_time (builder, "pool_runs_out_at", forecast->pool_runs_out_at);
  gk_json_add_time (builder, "pool_reset_at", forecast->pool_reset_at);
  json_builder_set_member_name (builder, "windows");
  json_builder_begin_array (builder);
  for (guint i = 0; i < forecast->windows->len; i++)
    {
      const GkDepletion *d = forecast->windows->pdata[i];

      json_builder_begin_object (builder);
      gk_json_add_int (builder, "key_id", d->key_id);
      gk_json_add_string (builder, "name", d->name);
      gk_json_add_string (builder, "quota_type", gk_quota_type_to_string (d->quota_type));
      gk_json_add_string (builder, "unit", gk_quota_unit_to_string (d->unit));
      gk_json_add_int (builder, "limit_value", d->limit_value);
      gk_json_add_int (builder, "used_value", d->used_value);
      gk_json_add_time (builder, "reset_at", d->reset_at);
      gk_json_add_double (builder, "rate_per_hour", d->rate_per_hour);
      gk_json_add_time (builder, "runs_out_at", d->runs_out_at);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  json_builder_end_object (builder);
}

void
gk_json_add_rotation_spike (JsonBuilder           *builder,
                            const GkRotationSpike *spike)
{
  json_builder_begin_object (builder);
  gk_json_add_time (builder, "hour_start", spike->hour_start);
  gk_json_add_optional_id (builder, "key_id", spike->key_id);
  gk_json_add_string (builder, "key_name", spike->key_name);
  gk_json_add_int (builder, "rotations", spike->rotations);
  gk_json_add_double (builder, "baseline_per_hour", spike->baseline);
  gk_json_add_string (builder, "dominant_reason",
                      gk_rotation_reason_to_string (spike->dominant_reason));
  gk_json_add_int (builder, "dominant_count", spike->dominant_count);
  json_builder_end_object (builder);
}

static void
add_rank_rows (JsonBuilder *builder,
               const char  *member,
               const char  *name_member,
               GPtrArray   *rows)
{
  json_builder_set_member_name (builder, member);
  json_builder_begin_array (builder);
  for (guint i = 0; rows != NULL && i < rows->len; i++)
    {
      const GkRankRow *row = g_ptr_array_index (rows, i);

      json_builder_begin_object (builder);
      gk_json_add_string (builder, name_member, row->name);
      gk_json_add_int (builder, "requests", row->requests);
      gk_json_add_int (builder, "tokens_used", row->tokens);
      gk_json_add_double (builder, "cost_usd", row->cost_usd);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
}

gboolean
gk_json_add_hygiene (JsonBuilder  *builder,
                     GkDatabase   *db,
                     GError      **error)
{
  g_autoptr(GPtrArray) stale = gk_hygiene_stale_keys (db, error);
  GkMasterKeyAge age;

  if (stale == NULL || !gk_hygiene_master_key_age (db, &age, error))
    return FALSE;
  json_builder_begin_object (builder);
  gk_json_add_int (builder, "unused_days", gk_hygiene_get_unused_days (db));
  json_builder_set_member_name (builder, "consider_deleting");
  json_builder_begin_array (builder);
  for (guint i = 0; i < stale->len; i++)
    {
      const GkStaleKey *key = g_ptr_array_index (stale, i);

      json_builder_begin_object (builder);
      gk_json_add_int (builder, "id", key->key_id);
      gk_json_add_string (builder, "name", key->name);
      gk_json_add_string (builder, "reason", key->reason == GK_STALE_REJECTED ? "REJECTED"
                                                                              : "UNUSED");
      gk_json_add_time (builder, "last_used_at", key->last_used_at);
      gk_json_add_int (builder, "idle_days", key->idle_days);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  json_builder_set_member_name (builder, "master_key");
  json_builder_begin_object (builder);
  gk_json_add_time (builder, "created_at", age.created_at);
  gk_json_add_boolean (builder, "estimated", age.estimated);
  gk_json_add_int (builder, "age_days", age.age_days);
  gk_json_add_boolean (builder, "rotate_due", age.rotate_due);
  gk_json_add_int (builder, "max_age_days", GK_MASTER_KEY_MAX_AGE_DAYS);
  json_builder_end_object (builder);
  json_builder_end_object (builder);
  return TRUE;
}

/* A budget in USD, or null when none is set. */
static void
add_budget (JsonBuilder *builder,
            const char  *name,
            double       budget)
{
  json_builder_set_member_name (builder, name);
  if (budget >= 0)
    json_builder_add_double_value (builder, budget);
  else
    json_builder_add_null_value (builder);
}

void
gk_json_add_spend (JsonBuilder   *builder,
                   const GkSpend *spend)
{
  json_builder_begin_object (builder);
  gk_json_add_time (builder, "day_start", spend->day_start);
  gk_json_add_time (builder, "month_start", spend->month_start);
  gk_json_add_double (builder, "today_usd", spend->today_usd);
  gk_json_add_double (builder, "month_usd", spend->month_usd);
  add_budget (builder, "pool_budget_usd", spend->pool_budget_usd);
  if (spend->pool_budget_usd >= 0)
    gk_json_add_double (builder, "pool_budget_percent",
                        gk_spend_percent (spend->month_usd, spend->pool_budget_usd));
  json_builder_set_member_name (builder, "keys");
  json_builder_begin_array (builder);
  for (guint i = 0; i < spend->keys->len; i++)
    {
      const GkKeySpend *key = g_ptr_array_index (spend->keys, i);

      json_builder_begin_object (builder);
      gk_json_add_int (builder, "id", key->key_id);
      gk_json_add_string (builder, "name", key->key_name);
      gk_json_add_double (builder, "today_usd", key->today_usd);
      gk_json_add_double (builder, "month_usd", key->month_usd);
      add_budget (builder, "monthly_budget_usd", key->budget_usd);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  json_builder_end_object (builder);
}

void
gk_json_add_dashboard (JsonBuilder       *builder,
                       const GkDashboard *dashboard)
{
  json_builder_begin_object (builder);
  gk_json_add_int (builder, "days", dashboard->days);
  gk_json_add_int (builder, "total_keys", dashboard->cards.total_keys);
  gk_json_add_int (builder, "active_keys", dashboard->cards.active_keys);
  gk_json_add_int (builder, "inactive_keys", dashboard->cards.inactive_keys);
  json_builder_set_member_name (builder, "keys_by_state");
  json_builder_begin_object (builder);
  for (guint i = 0; i < GK_KEY_N_STATES; i++)
    gk_json_add_int (builder, gk_key_state_to_string (i), dashboard->cards.keys_by_state[i]);
  json_builder_end_object (builder);
  gk_json_add_int (builder, "requests", dashboard->cards.requests);
  gk_json_add_int (builder, "successes", dashboard->cards.successes);
  gk_json_add_double (builder, "success_rate", dashboard->cards.success_rate);
  gk_json_add_double (builder, "cost_usd", dashboard->cards.cost_usd);

  json_builder_set_member_name (builder, "daily");
  json_builder_begin_array (builder);
  for (guint i = 0; dashboard->daily != NULL && i < dashboard->daily->len; i++)
    {
      const GkDailyPoint *p = &g_array_index (dashboard->daily, GkDailyPoint, i);

      json_builder_begin_object (builder);
      gk_json_add_int (builder, "day_start", p->day_start);
      gk_json_add_int (builder, "requests", p->requests);
      gk_json_add_int (builder, "successes", p->successes);
      gk_json_add_double (builder, "cost_usd", p->cost_usd);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);

  /* The ranked name is the column it comes from. */
  add_rank_rows (builder, "top_models", "model", dashboard->top_models);
  add_rank_rows (builder, "top_users", "user_id", dashboard->top_users);

  if (dashboard->spend != NULL)
    {
      json_builder_set_member_name (builder, "spend");
      gk_json_add_spend (builder, dashboard->spend);
    }

  json_builder_set_member_name (builder, "rotations");
  json_builder_begin_array (builder);
  for (guint i = 0; dashboard->rotations != NULL && i < dashboard->rotations->len; i++)
    gk_json_add_rotation_row (builder, g_ptr_array_index (dashboard->rotations, i));
  json_builder_end_array (builder);
  json_builder_end_object (builder);
}

void
gk_json_add_token (JsonBuilder   *builder,
                   const GkToken *token)
{
  json_builder_begin_object (builder);
  gk_json_add_int (builder, "id", token->id);
  gk_json_add_string (builder, "name", token->name);
  gk_json_add_time (builder, "created_at", token->created_at);
  gk_json_add_time (builder, "last_used_at", token->last_used_at);
  gk_json_add_time (builder, "revoked_at", token->revoked_at);
  gk_json_add_boolean (builder, "revoked", token->revoked_at > 0);
  json_builder_end_object (builder);
}
