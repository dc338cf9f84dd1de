/* gk-types.h: enums and forward declarations shared by the core modules.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

typedef struct _GkClock       GkClock;
typedef struct _GkDatabase    GkDatabase;
typedef struct _GkSecretStore GkSecretStore;
typedef struct _GkKeyStore    GkKeyStore;
typedef struct _GkPool        GkPool;
typedef struct _GkPricing     GkPricing;

/* Stored as the upper-case names in SQL (ACTIVE, INACTIVE, …). */
typedef enum
{
  GK_KEY_STATUS_ACTIVE,
  GK_KEY_STATUS_INACTIVE,
  GK_KEY_STATUS_QUOTA_EXCEEDED,
  GK_KEY_STATUS_RATE_LIMITED,
  GK_KEY_STATUS_INVALID,
} GkKeyStatus;

typedef enum
{
  GK_QUOTA_MONTHLY,
  GK_QUOTA_DAILY,
  GK_QUOTA_PER_MINUTE,
} GkQuotaType;

#define GK_QUOTA_N_TYPES 3

typedef enum
{
  GK_QUOTA_UNIT_TOKENS,
  GK_QUOTA_UNIT_REQUESTS,
} GkQuotaUnit;

/* Every key has one quota row per slot; a limit of 0 means unlimited. */
typedef enum
{
  GK_QUOTA_SLOT_MONTHLY_TOKENS,
  GK_QUOTA_SLOT_DAILY_TOKENS,
  GK_QUOTA_SLOT_MINUTE_TOKENS,
  GK_QUOTA_SLOT_DAILY_REQUESTS,
  GK_QUOTA_SLOT_MINUTE_REQUESTS,
  GK_QUOTA_N_SLOTS,
} GkQuotaSlot;

typedef enum
{
  GK_USAGE_SUCCESS,
  GK_USAGE_RATE_LIMITED,
  GK_USAGE_INVALID_KEY,
  GK_USAGE_ERROR,
} GkUsageStatus;

typedef enum
{
  GK_ROTATION_QUOTA_LOW,
  GK_ROTATION_RATE_LIMITED,
  GK_ROTATION_INVALID_KEY,
  GK_ROTATION_BUDGET,
  GK_ROTATION_MANUAL,
} GkRotationReason;

/* What a key's stored status, cooldown, quotas and budget mean now, as
 * shown to people (gk-key-state.h). Ordered from usable to off. */
typedef enum
{
  GK_KEY_STATE_AVAILABLE,
  GK_KEY_STATE_NEAR_QUOTA,
  GK_KEY_STATE_COOLING_DOWN,
  GK_KEY_STATE_SKIPPED,
  GK_KEY_STATE_OVER_QUOTA,
  GK_KEY_STATE_OVER_BUDGET,
  GK_KEY_STATE_REJECTED,
  GK_KEY_STATE_TURNED_OFF,
  GK_KEY_N_STATES,
} GkKeyState;

const char *gk_key_state_to_string        (GkKeyState        state);
gboolean    gk_key_state_from_string      (const char       *str,
                                           GkKeyState       *state);
const char *gk_key_status_to_string       (GkKeyStatus       status);
gboolean    gk_key_status_from_string     (const char       *str,
                                           GkKeyStatus      *status);
const char *gk_quota_type_to_string       (GkQuotaType       type);
gboolean    gk_quota_type_from_string     (const char       *str,
                                           GkQuotaType      *type);
const char *gk_quota_unit_to_string       (GkQuotaUnit       unit);
GkQuotaType gk_quota_slot_type            (GkQuotaSlot       slot);
GkQuotaUnit gk_quota_slot_unit            (GkQuotaSlot       slot);
const char *gk_usage_status_to_string     (GkUsageStatus     status);
gboolean    gk_usage_status_from_string   (const char       *str,
                                           GkUsageStatus    *status);
const char *gk_rotation_reason_to_string  (GkRotationReason  reason);
gboolean    gk_rotation_reason_from_string (const char      *str,
                                            GkRotationReason *reason);

G_END_DECLS
