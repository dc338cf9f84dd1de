/* gk-alerts.h: conditions worth a desktop notification.
 *
 * A tracker remembers what it has reported, so each condition is reported
 * once when it begins (the success rate at most once an hour, each budget
 * level of a key or of the pool once a month). The first check only learns
 * the current state: what was already true when the app started is on
 * screen, not news.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-types.h"

G_BEGIN_DECLS

typedef enum
{
  GK_ALERT_QUOTA_LOW,      /* a key has less than 10% of a quota left */
  GK_ALERT_SUCCESS_RATE,   /* the last hour's success rate is below 90% (the hour
                            * starts at the 15-minute mark before it) */
  GK_ALERT_KEY_INVALID,    /* Google rejected a key */
  GK_ALERT_BUDGET,         /* a key reached its monthly budget */
  GK_ALERT_BUDGET_WARNING, /* a key spent 80% of its monthly budget */
  GK_ALERT_POOL_BUDGET,    /* the pool reached its monthly budget: no key is used */
  GK_ALERT_POOL_BUDGET_WARNING, /* the pool spent 80% of its monthly budget */
  GK_ALERT_DEPLETION,      /* a key's daily quota is forecast to run out within the hour
                            * (GK_FORECAST_ALERT_SECONDS; once per daily window) */
  GK_ALERT_ROTATION_SPIKE, /* a key, or the pool (key_id 0), is rotated unusually often
                            * this hour (gk_insights_is_spike(); once per hour) */
  GK_ALERT_N_KINDS,
} GkAlertKind;

#define GK_ALERT_QUOTA_LOW_PERCENT     10.0
#define GK_ALERT_SUCCESS_RATE_PERCENT  90.0
/* Fewer requests than this in the hour say nothing about the rate. */
#define GK_ALERT_SUCCESS_RATE_MIN_REQUESTS 10
#define GK_ALERT_SUCCESS_RATE_INTERVAL 3600

typedef struct
{
  GkAlertKind kind;
  gint64      key_id;     /* 0 for GK_ALERT_SUCCESS_RATE and the pool's */
  char       *key_name;   /* NULL for GK_ALERT_SUCCESS_RATE and the pool's */
  double      value;      /* remaining %, success %, the budget in USD, or the rotations */
  gint64      at;         /* GK_ALERT_DEPLETION: when it runs out */
  GkRotationReason reason; /* GK_ALERT_ROTATION_SPIKE: the dominant reason */
} GkAlert;

void gk_alert_free (GkAlert *alert);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GkAlert, gk_alert_free)

#define GK_TYPE_ALERT_TRACKER (gk_alert_tracker_get_type ())
G_DECLARE_FINAL_TYPE (GkAlertTracker, gk_alert_tracker, GK, ALERT_TRACKER, GObject)

GkAlertTracker *gk_alert_tracker_new   (GkDatabase     *db);
/* The conditions that began since the last check (element type GkAlert).
 * The depletion forecast is computed at most once a minute.
 * Thread-safe; meant for a worker thread. */
GPtrArray      *gk_alert_tracker_check (GkAlertTracker *self,
                                        GError        **error);

G_END_DECLS
