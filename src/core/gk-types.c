/* gk-types.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include "gk-types.h"

static const char *const key_status_names[] = {
  "ACTIVE", "INACTIVE", "QUOTA_EXCEEDED", "RATE_LIMITED", "INVALID",
};
static const char *const key_state_names[] = {
  "AVAILABLE", "NEAR_QUOTA", "COOLING_DOWN", "SKIPPED", "OVER_QUOTA", "OVER_BUDGET",
  "REJECTED", "TURNED_OFF",
};
static const char *const quota_type_names[] = { "MONTHLY", "DAILY", "PER_MINUTE" };
static const char *const quota_unit_names[] = { "TOKENS", "REQUESTS" };
static const char *const usage_status_names[] = {
  "SUCCESS", "RATE_LIMITED", "INVALID_KEY", "ERROR",
};
static const char *const rotation_reason_names[] = {
  "QUOTA_LOW", "RATE_LIMITED", "INVALID_KEY", "BUDGET", "MANUAL",
};

/* Case-insensitive lookup of @str in @names; the index goes to @out. */
static gboolean
lookup_name (const char *const *names,
             guint              n_names,
             const char        *str,
             int               *out)
{
  if (str == NULL)
    return FALSE;

  for (guint i = 0; i < n_names; i++)
    {
      if (g_ascii_strcasecmp (names[i], str) == 0)
        {
          *out = (int) i;
          return TRUE;
        }
    }
  return FALSE;
}

#define DEFINE_ENUM_STRINGS(Type, prefix, names)                          \
  const char *prefix##_to_string (Type value)                             \
  {                                                                       \
    g_return_val_if_fail ((guint) value < G_N_ELEMENTS (names), NULL);    \
    return names[value];                                                  \
  }                                                                       \
  gboolean prefix##_from_string (const char *str, Type *value)            \
  {                                                                       \
    int i;                                                                \
    if (!lookup_name (names, G_N_ELEMENTS (names), str, &i))              \
      return FALSE;                                                       \
    *value = (Type) i;                                                    \
    return TRUE;                                                          \
  }

DEFINE_ENUM_STRINGS (GkKeyStatus, gk_key_status, key_status_names)
DEFINE_ENUM_STRINGS (GkKeyState, gk_key_state, key_state_names)
DEFINE_ENUM_STRINGS (GkQuotaType, gk_quota_type, quota_type_names)
DEFINE_ENUM_STRINGS (GkUsageStatus, gk_usage_status, usage_status_names)
DEFINE_ENUM_STRINGS (GkRotationReason, gk_rotation_reason, rotation_reason_names)

const char *
gk_quota_unit_to_string (GkQuotaUnit unit)
{
  g_return_val_if_fail ((guint) unit < G_N_ELEMENTS (quota_unit_names), NULL);
  return quota_unit_names[unit];
}

GkQuotaType
gk_quota_slot_type (GkQuotaSlot slot)
{
  switch (slot)
    {
    case GK_QUOTA_SLOT_MONTHLY_TOKENS:
      return GK_QUOTA_MONTHLY;
    case GK_QUOTA_SLOT_DAILY_TOKENS:
    case GK_QUOTA_SLOT_DAILY_REQUESTS:
      return GK_QUOTA_DAILY;
    case GK_QUOTA_SLOT_MINUTE_TOKENS:
    case GK_QUOTA_SLOT_MINUTE_REQUESTS:
    case GK_QUOTA_N_SLOTS:
    default:
      return GK_QUOTA_PER_MINUTE;
    }
}

GkQuotaUnit
gk_quota_slot_unit (GkQuotaSlot slot)
{
  return (slot == GK_QUOTA_SLOT_DAILY_REQUESTS || slot == GK_QUOTA_SLOT_MINUTE_REQUESTS)
           ? GK_QUOTA_UNIT_REQUESTS
           : GK_QUOTA_UNIT_TOKENS;
}
