/* gk-pool.h: selection, usage tracking and rotation over the key pool (the
 * seed's select_best_key, track_usage and rotate_key).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-key-store.h"
#include "gk-types.h"

G_BEGIN_DECLS

#define GK_POOL_ERROR (gk_pool_error_quark ())

typedef enum
{
  GK_POOL_ERROR_NO_ACTIVE_KEYS,   /* "No active keys available" */
  GK_POOL_ERROR_NOT_FOUND,
  GK_POOL_ERROR_INVALID,
  GK_POOL_ERROR_BUDGET_SPENT,     /* the pool's monthly budget is spent */
} GkPoolError;

/* One use of a key, as reported by the gateway or `gemini-keysctl track`. */
typedef struct
{
  gint64         key_id;           /* 0: answered without a key (NULL in the log) */
  const char    *model;            /* as sent; normalised for pricing */
  gint64         prompt_tokens;
  gint64         output_tokens;    /* candidates + thoughts */
  GkUsageStatus  status;
  int            http_status;      /* 0 when unknown */
  const char    *error_message;    /* redacted before storing */
  const char    *user_id;          /* NULL = none */
  gint64         latency_ms;
  /* For RATE_LIMITED: */
  gint64         retry_delay_s;    /* RetryInfo.retryDelay; 0 = unknown */
  gboolean       per_day;          /* a PerDay quotaId: cool down to the daily reset */
  gboolean       per_project;      /* cool down every key of the same project */
  const char    *triggered_by;     /* NULL = "auto" */
} GkUsageRecord;

typedef struct
{
  gint64   usage_id;
  double   cost_usd;
  gboolean priced;       /* FALSE: unknown model, cost 0 */
  gboolean rotated;      /* the key left service; a rotation row was written */
  GkRotationReason reason;
  gint64   to_key_id;    /* 0 when no key was left */
} GkTrackResult;

#define GK_TYPE_POOL (gk_pool_get_type ())
G_DECLARE_FINAL_TYPE (GkPool, gk_pool, GK, POOL, GObject)

GQuark      gk_pool_error_quark (void);

void        gk_usage_record_init (GkUsageRecord *record);

/* @pricing may be NULL (the default pricing is loaded). */
GkPool     *gk_pool_new         (GkDatabase      *db,
                                 GkPricing       *pricing);
GkDatabase *gk_pool_get_database (GkPool         *self);
GkPricing  *gk_pool_get_pricing (GkPool          *self);
/* How old a check of other connections' changes (SQLite's data_version,
 * read by anyone on the pool's connection) the snapshot may rely on
 * instead of reading it again; 0 (the default) reads it on every use. The
 * gateway, which reads it for each request's client token, sets a few
 * milliseconds: one read serves the token and the key selection. */
void        gk_pool_set_change_check_age (GkPool  *self,
                                          gint64   max_age_us);

/* The key a request for @model would get now; @exclude (nullable, array of
 * gint64 ids) lists keys already tried for this request. */
GkKey      *gk_pool_select      (GkPool          *self,
                                 const char      *model,
                                 GArray          *exclude,
                                 GError         **error);
/* Writes one usage row, charges the quotas in SQL, applies the rotation
 * triggers and writes a rotation row when the key leaves service. */
gboolean    gk_pool_track       (GkPool          *self,
                                 const GkUsageRecord *record,
                                 GkTrackResult   *result,
                                 GError         **error);
/* Between these, gk_pool_track calls share one commit (the costly part of
 * a write) and each still fails alone. Until the end, the rows are not
 * durable; when the end fails, none of them was written. */
gboolean    gk_pool_batch_begin (GkPool          *self,
                                 GError         **error);
gboolean    gk_pool_batch_end   (GkPool          *self,
                                 GError         **error);
/* Undoes the whole batch: none of its rows is written. */
void        gk_pool_batch_cancel (GkPool         *self);
/* Takes a key out of service by hand until the next daily reset (MANUAL)
 * and logs it; returns the id of the key chosen next, 0 when none. */
gint64      gk_pool_rotate      (GkPool          *self,
                                 gint64           key_id,
                                 const char      *triggered_by,
                                 GError         **error);

G_END_DECLS
