/* gk-insights.h: key comparison, depletion forecast and rotation spikes.
 *
 * Everything here is read from the rollup tables (gk-rollup.h) and the
 * rotation log, never by scanning the usage log: a comparison of a month
 * of a million requests reads a few thousand rows.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-types.h"

G_BEGIN_DECLS

/* --- Key comparison ------------------------------------------------------ */

typedef struct
{
  gint64    key_id;
  char     *name;
  char     *key_hint;
  gboolean  deleted;
  gint64    requests;
  gint64    successes;
  gint64    rate_limited;       /* answered 429 */
  gint64    rejected;           /* the key was refused (INVALID_KEY) */
  gint64    errors;             /* other failures */
  double    success_rate;       /* 0–100 of the key's requests; 0 without requests */
  double    rate_limited_rate;
  double    rejected_rate;
  gint64    latency_samples;    /* successful requests with a latency */
  double    p50_ms;             /* of successful requests; -1 without samples */
  double    p95_ms;
  gint64    tokens;
  double    cost_usd;
  double    cost_per_1k_tokens; /* -1 without tokens */
  double    share;              /* 0–100 of every key's requests in the period */
} GkKeyComparison;

void       gk_key_comparison_free (GkKeyComparison *row);

/* Every key that is not deleted, and every deleted key with requests in
 * [@since, @until) (UTC seconds on 15-minute edges; @until 0 = no end),
 * by id. Element type GkKeyComparison. */
GPtrArray *gk_insights_compare      (GkDatabase  *db,
                                     gint64       since,
                                     gint64       until,
                                     GError     **error);
/* gk_insights_compare() over the last @days local days, today included
 * (1–366), as the dashboard counts them. */
GPtrArray *gk_insights_compare_days (GkDatabase  *db,
                                     guint        days,
                                     GError     **error);
/* The @fraction (0–1) percentile of a latency histogram of
 * GK_ROLLUP_LATENCY_BUCKETS counts, interpolated inside its bucket; -1
 * when it is empty. */
double     gk_insights_latency_percentile (const gint64 *histogram,
                                           double        fraction);

/* --- Depletion forecast --------------------------------------------------- */

/* Hours of the week in the usage profile, and how many past weeks it
 * averages (see gk-insights.c for the model). */
#define GK_FORECAST_WEEK_HOURS      168
#define GK_FORECAST_PROFILE_WEEKS   4
/* 15-minute buckets the level is smoothed over, and the smoothing factor
 * (weight of the newest bucket). */
#define GK_FORECAST_LEVEL_BUCKETS   96
#define GK_FORECAST_LEVEL_ALPHA     0.05
/* A key forecast to run out of its daily window within this many seconds
 * is notified. */
#define GK_FORECAST_ALERT_SECONDS   3600

typedef struct
{
  gint64       key_id;
  char        *name;
  GkQuotaType  quota_type;
  GkQuotaUnit  unit;
  gint64       limit_value;
  gint64       used_value;
  gint64       reset_at;
  double       rate_per_hour;    /* the burn rate now, in the quota's unit */
  gint64       runs_out_at;      /* 0: not before reset_at */
} GkDepletion;

typedef struct
{
  gint64     now;
  GPtrArray *windows;            /* GkDepletion: each usable key's quotas with a limit */
  guint      keys_out_today;     /* keys whose daily window runs out before its reset */
  gint64     pool_runs_out_at;   /* every usable key's daily quota; 0: not before reset */
  gint64     pool_reset_at;      /* the daily reset the pool forecast looks to; 0: none */
} GkForecast;

void        gk_forecast_free          (GkForecast  *forecast);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GkForecast, gk_forecast_free)

/* Burn rates and run-out times of every usable key (not deleted, not
 * turned off or rejected) and quota window with a limit, at the
 * database clock's now. */
GkForecast *gk_insights_forecast      (GkDatabase  *db,
                                       GError     **error);
/* The earliest window of @key_id that runs out before its reset, or NULL. */
const GkDepletion *gk_forecast_key_first (const GkForecast *forecast,
                                          gint64            key_id);

/* The model itself, for tests and benchmarks: @buckets holds the usage of
 * the 15-minute buckets before @now (oldest first, the last one ending at
 * @now's bucket start), @n_buckets of them; @partial the usage so far in
 * @now's bucket. Predicts when @remaining more units will have been used,
 * before @until; 0 when not. @rate_per_hour gets the current rate. */
gint64      gk_forecast_run_out       (const double *buckets,
                                       guint         n_buckets,
                                       double        partial,
                                       gint64        now,
                                       double        remaining,
                                       gint64        until,
                                       double       *rate_per_hour);

/* --- Rotation spikes ------------------------------------------------------ */

/* A clock hour with at least GK_SPIKE_MIN_ROTATIONS rotations and at least
 * GK_SPIKE_FACTOR times the baseline: the mean rotations per hour over the
 * GK_SPIKE_BASELINE_HOURS before it, of the same key (or the pool). */
#define GK_SPIKE_MIN_ROTATIONS   5
#define GK_SPIKE_FACTOR          3.0
#define GK_SPIKE_BASELINE_HOURS  168

typedef struct
{
  gint64            hour_start;
  gint64            key_id;          /* 0: the whole pool */
  char             *key_name;        /* NULL for the pool */
  gint64            rotations;
  double            baseline;        /* rotations per hour */
  GkRotationReason  dominant_reason; /* the most frequent reason in the hour */
  gint64            dominant_count;
} GkRotationSpike;

void       gk_rotation_spike_free  (GkRotationSpike *spike);
gboolean   gk_insights_is_spike    (gint64           rotations,
                                    double           baseline);
/* The spikes of the hours that begin in [@since, @until), oldest first,
 * the pool's before its keys' in one hour. Element type GkRotationSpike. */
GPtrArray *gk_insights_rotation_spikes (GkDatabase  *db,
                                        gint64       since,
                                        gint64       until,
                                        GError     **error);
/* Sets in_spike on each GkRotationRow of @rows that lies in a spike hour
 * of its key or of the pool. */
gboolean   gk_insights_mark_spikes (GkDatabase  *db,
                                    GPtrArray   *rows,
                                    GError     **error);

G_END_DECLS
