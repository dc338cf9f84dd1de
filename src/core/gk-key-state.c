/* gk-key-state.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>
#include <string.h>

#include "gk-key-state.h"

/* A stored reason is English (written with N_()); show it translated. */
static char *
stored_reason (const GkKey *key,
               const char  *fallback)
{
  const char *reason = key->status_reason;

  if (reason == NULL || *reason == '\0')
    reason = fallback;
  return reason != NULL ? g_strdup (g_dgettext (GETTEXT_PACKAGE, reason)) : NULL;
}

/* Why Google rejected a key, from the reason stored with it (Google's
 * ErrorInfo reason or our own sentence), without repeating the state. */
static const char *
rejection_reason (const char *stored)
{
  if (stored != NULL && strstr (stored, "API_KEY_INVALID") != NULL)
    return _("API key not valid; edit or test it to use it again");
  if (stored != NULL && strstr (stored, "SUSPENDED") != NULL)
    return _("Suspended; edit or test it to use it again");
  if (stored != NULL)
    {
      g_autofree char *lower = g_ascii_strdown (stored, -1);

      if (strstr (lower, "leak") != NULL && strstr (lower, "suspended") == NULL)
        return _("Reported as leaked; replace it");
    }
  return _("Invalid, suspended or leaked; edit or test it to use it again");
}

static void
set_state (GkKey      *key,
           GkKeyState  state,
           char       *reason,
           gint64      until)
{
  key->state = state;
  g_free (key->state_reason);
  key->state_reason = reason;
  key->state_until = until;
}

static gboolean
budget_reached (const GkKey *key)
{
  return key->monthly_budget_usd >= 0 && key->month_cost_usd >= key->monthly_budget_usd;
}

void
gk_key_update_state (GkKey  *key,
                     double  threshold_percent,
                     gint64  now)
{
  int exhausted = -1, low = -1;
  gint64 month_reset;

  g_return_if_fail (key != NULL);

  month_reset = key->quotas[GK_QUOTA_SLOT_MONTHLY_TOKENS].reset_at;

  if (key->status == GK_KEY_STATUS_INACTIVE)
    {
      set_state (key, GK_KEY_STATE_TURNED_OFF, g_strdup (_("Turned off by you; turn it on to use it")),
                 0);
      return;
    }
  if (key->status == GK_KEY_STATUS_INVALID)
    {
      set_state (key, GK_KEY_STATE_REJECTED, g_strdup (rejection_reason (key->status_reason)), 0);
      return;
    }
  if (key->cooldown_until > now && key->last_rotation_reason == GK_ROTATION_MANUAL)
    {
      set_state (key, GK_KEY_STATE_SKIPPED, g_strdup (_("Requests go to the other keys")),
                 key->cooldown_until);
      return;
    }
  if (key->cooldown_until > now)
    {
      set_state (key, GK_KEY_STATE_COOLING_DOWN,
                 stored_reason (key, N_("Rate-limited by Google (429)")), key->cooldown_until);
      return;
    }
  if (budget_reached (key))
    {
      set_state (key, GK_KEY_STATE_OVER_BUDGET,
                 /* Translators: %.2f is the key's monthly budget in US dollars. */
                 g_strdup_printf (_("Monthly budget of $%.2f reached"), key->monthly_budget_usd),
                 month_reset);
      return;
    }

  /* The window that keeps the key out longest decides "back at". */
  for (int i = 0; i < GK_QUOTA_N_SLOTS; i++)
    {
      const GkQuota *q = &key->quotas[i];

      if (q->limit_value <= 0)
        continue;
      if (q->used_value >= q->limit_value)
        {
          if (exhausted < 0 || q->reset_at > key->quotas[exhausted].reset_at)
            exhausted = i;
        }
      else if ((double) (q->limit_value - q->used_value) * 100.0
               < threshold_percent * (double) q->limit_value)
        {
          if (low < 0 || q->reset_at > key->quotas[low].reset_at)
            low = i;
        }
    }

  if (exhausted >= 0)
    {
      set_state (key, GK_KEY_STATE_OVER_QUOTA,
                 /* Translators: %s is a quota, e.g. "Daily tokens". */
                 g_strdup_printf (_("%s used up"), gk_quota_slot_get_label (exhausted)),
                 key->quotas[exhausted].reset_at);
      return;
    }
  if (low >= 0)
    {
      const GkQuota *q = &key->quotas[low];
      double left = 100.0 * (double) (q->limit_value - q->used_value) / (double) q->limit_value;

      set_state (key, GK_KEY_STATE_NEAR_QUOTA,
                 /* Translators: "Daily tokens: 3% left, below the rotation threshold (5%)". */
                 g_strdup_printf (_("%s: %.0f%% left, below the rotation threshold (%g%%)"),
                                  gk_quota_slot_get_label (low), left, threshold_percent),
                 q->reset_at);
      return;
    }
  if (key->status == GK_KEY_STATUS_QUOTA_EXCEEDED)
    {
      /* Taken out for a quota that has room again (a limit or the
       * threshold changed): it returns at its next reset. */
      gint64 until = 0;

      for (int i = 0; i < GK_QUOTA_N_SLOTS; i++)
        {
          if (key->quotas[i].limit_value > 0 && key->quotas[i].reset_at > now
              && (until == 0 || key->quotas[i].reset_at < until))
            until = key->quotas[i].reset_at;
        }
      set_state (key, GK_KEY_STATE_NEAR_QUOTA,
                 stored_reason (key, N_("Quota below the rotation threshold")),
                 until != 0 ? until : month_reset);
      return;
    }

  set_state (key, GK_KEY_STATE_AVAILABLE, NULL, 0);
}

const char *
gk_key_state_get_label (GkKeyState state)
{
  switch (state)
    {
    case GK_KEY_STATE_AVAILABLE:
      return C_("key state", "Available");
    case GK_KEY_STATE_NEAR_QUOTA:
      return C_("key state", "Near quota");
    case GK_KEY_STATE_COOLING_DOWN:
      return C_("key state", "Cooling down");
    case GK_KEY_STATE_SKIPPED:
      return C_("key state", "Skipped by you");
    case GK_KEY_STATE_OVER_QUOTA:
      return C_("key state", "Over quota");
    case GK_KEY_STATE_OVER_BUDGET:
      return C_("key state", "Over budget");
    case GK_KEY_STATE_REJECTED:
      return C_("key state", "Rejected by Google");
    case GK_KEY_STATE_TURNED_OFF:
      return C_("key state", "Turned off");
    case GK_KEY_N_STATES:
    default:
      g_return_val_if_reached ("");
    }
}

GkKeyState
gk_rotation_reason_get_state (GkRotationReason reason)
{
  switch (reason)
    {
    case GK_ROTATION_QUOTA_LOW:
      return GK_KEY_STATE_NEAR_QUOTA;
    case GK_ROTATION_RATE_LIMITED:
      return GK_KEY_STATE_COOLING_DOWN;
    case GK_ROTATION_INVALID_KEY:
      return GK_KEY_STATE_REJECTED;
    case GK_ROTATION_BUDGET:
      return GK_KEY_STATE_OVER_BUDGET;
    case GK_ROTATION_MANUAL:
    default:
      return GK_KEY_STATE_SKIPPED;
    }
}

const char *
gk_quota_slot_get_label (GkQuotaSlot slot)
{
  switch (slot)
    {
    case GK_QUOTA_SLOT_MONTHLY_TOKENS:
      return _("Monthly tokens");
    case GK_QUOTA_SLOT_DAILY_TOKENS:
      return _("Daily tokens");
    case GK_QUOTA_SLOT_MINUTE_TOKENS:
      return _("Tokens per minute");
    case GK_QUOTA_SLOT_DAILY_REQUESTS:
      return _("Requests per day");
    case GK_QUOTA_SLOT_MINUTE_REQUESTS:
      return _("Requests per minute");
    case GK_QUOTA_N_SLOTS:
    default:
      return "";
    }
}

char *
gk_key_state_format_counts (const gint64 counts[GK_KEY_N_STATES])
{
  GString *text = g_string_new (NULL);

  for (guint i = 0; i < GK_KEY_N_STATES; i++)
    {
      g_autofree char *count = NULL;

      if (counts[i] <= 0)
        continue;
      count = g_strdup_printf ("%'" G_GINT64_FORMAT, counts[i]);
      if (text->len > 0)
        g_string_append (text, " · ");
      /* Translators: a number of keys and their state, e.g. "3 Available". */
      g_string_append_printf (text, C_("key state count", "%s %s"), count,
                              gk_key_state_get_label (i));
    }
  return g_string_free (text, FALSE);
}

int
gk_key_compare_use_order (const GkKey *a,
                          const GkKey *b)
{
  gboolean usable_a = a->state == GK_KEY_STATE_AVAILABLE;
  gboolean usable_b = b->state == GK_KEY_STATE_AVAILABLE;
  double share_a, share_b;

  if (usable_a != usable_b)
    return usable_a ? -1 : 1;
  if (!usable_a && a->state != b->state)
    return a->state < b->state ? -1 : 1;
  if (a->is_default != b->is_default)
    return a->is_default ? -1 : 1;
  if (a->priority != b->priority)
    return a->priority > b->priority ? -1 : 1;
  share_a = gk_key_remaining_share (a);
  share_b = gk_key_remaining_share (b);
  if (fabs (share_a - share_b) > 1e-9)
    return share_a > share_b ? -1 : 1;
  if (a->last_used_at != b->last_used_at)
    return a->last_used_at < b->last_used_at ? -1 : 1;
  return a->id < b->id ? -1 : (a->id > b->id ? 1 : 0);
}
