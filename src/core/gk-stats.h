/* gk-stats.h: the dashboard's figures and the log listings.
 *
 * Days are local calendar days (the user's time zone).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-types.h"
#include "gk-spend.h"

G_BEGIN_DECLS

typedef struct
{
  gint64 total_keys;
  gint64 active_keys;
  gint64 inactive_keys;     /* total − active */
  gint64 keys_by_state[GK_KEY_N_STATES]; /* by the derived state (gk-key-state.h) */
  gint64 requests;          /* in the period */
  gint64 successes;
  double success_rate;      /* 0–100; 0 when no requests */
  double cost_usd;
} GkDashboardCards;

typedef struct
{
  gint64 day_start;         /* UTC seconds of local midnight */
  gint64 requests;
  gint64 successes;
  double cost_usd;
} GkDailyPoint;

typedef struct
{
  char  *name;              /* model or user id */
  gint64 requests;
  gint64 tokens;
  double cost_usd;
} GkRankRow;

typedef struct
{
  gint64            id;
  gint64            from_key_id;
  char             *from_key_name;
  gint64            to_key_id;       /* 0 = none */
  char             *to_key_name;     /* NULL = none */
  GkRotationReason  reason;
  char             *triggered_by;
  gint64            created_at;
  gboolean          in_spike;        /* in a spike hour of its key or the pool */
} GkRotationRow;

typedef struct
{
  gint64         id;
  gint64         key_id;
  char          *key_name;
  char          *model;
  gint64         tokens_used;
  gint64         prompt_tokens;
  gint64         output_tokens;
  double         cost_usd;
  gboolean       priced;
  GkUsageStatus  status;
  int            http_status;
  char          *error_message;
  char          *user_id;
  gint64         latency_ms;
  gint64         created_at;
} GkUsageRow;

typedef struct
{
  gint64 requests;
  gint64 successes;
  gint64 failures;
  double cost_usd;
} GkUsageSummary;

typedef struct
{
  guint             days;
  GkDashboardCards  cards;
  GArray           *daily;        /* GkDailyPoint, oldest first, one per day */
  GPtrArray        *top_models;   /* GkRankRow, at most 5 */
  GPtrArray        *top_users;    /* GkRankRow, at most 10 */
  GPtrArray        *rotations;    /* GkRotationRow, the 10 latest */
  GkSpend          *spend;        /* today and this month, whatever @days */
} GkDashboard;

void           gk_rank_row_free       (GkRankRow     *row);
void           gk_rotation_row_free   (GkRotationRow *row);
void           gk_usage_row_free      (GkUsageRow    *row);
void           gk_dashboard_free      (GkDashboard   *dashboard);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GkDashboard, gk_dashboard_free)

/* Everything the dashboard shows for the last @days (7 or 30) days. */
GkDashboard   *gk_stats_dashboard     (GkDatabase    *db,
                                       guint          days,
                                       GError       **error);
/* Newest first; @key_id 0 = every key. Element type GkUsageRow. */
GPtrArray     *gk_stats_usage_logs    (GkDatabase    *db,
                                       gint64         key_id,
                                       guint          limit,
                                       guint          offset,
                                       GError       **error);
/* Called for each row of gk_stats_usage_page(); the row's strings are
 * borrowed and valid only during the call. */
typedef void (*GkUsageRowFunc) (const GkUsageRow *row,
                                gpointer          user_data);
/* Keyset paging over the whole log, newest first: calls @func for at most
 * @limit rows with an id below @before_id (G_MAXINT64 for the newest) and
 * stores the last id seen in @last_id, the @before_id of the next page.
 * Each page is one short query, so writers are never held up for long and
 * memory stays constant however long the log is. Returns the number of
 * rows, or -1 on error. */
gint64         gk_stats_usage_page    (GkDatabase    *db,
                                       gint64         before_id,
                                       guint          limit,
                                       GkUsageRowFunc func,
                                       gpointer       user_data,
                                       gint64        *last_id,
                                       GError       **error);
gint64         gk_stats_usage_count   (GkDatabase    *db,
                                       gint64         key_id,
                                       GError       **error);
/* Over the newest @limit rows of @key_id (0 = all keys; limit 0 = all). */
gboolean       gk_stats_usage_summary (GkDatabase    *db,
                                       gint64         key_id,
                                       guint          limit,
                                       GkUsageSummary *summary,
                                       GError       **error);
/* What the usage tab shows: a period and filters. @since and @until are
 * UTC seconds on 15-minute edges (local midnights are; see gk-rollup.h),
 * 0 for no bound; @until is exclusive. */
typedef struct
{
  gint64      since;
  gint64      until;
  gint64      key_id;     /* 0 = every key */
  int         status;     /* a GkUsageStatus, or -1 for any */
  const char *model;      /* NULL = any */
  const char *user_id;    /* NULL = any */
} GkUsageFilter;

#define GK_USAGE_FILTER_INIT { 0, 0, 0, -1, NULL, NULL }

gboolean       gk_usage_filter_equal  (const GkUsageFilter *a,
                                       const GkUsageFilter *b);
/* A copy that owns its strings, freed with gk_usage_filter_free(). */
GkUsageFilter *gk_usage_filter_copy   (const GkUsageFilter *filter);
void           gk_usage_filter_free   (GkUsageFilter       *filter);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GkUsageFilter, gk_usage_filter_free)
/* Local midnight @days_back days before today's (0 = today's), in @tz
 * (NULL = local), as UTC seconds. */
gint64         gk_stats_local_midnight (GTimeZone    *tz,
                                        gint64        now,
                                        int           days_back);
/* The rows of @filter, newest first (by id). Element type GkUsageRow. */
GPtrArray     *gk_stats_usage_query   (GkDatabase          *db,
                                       const GkUsageFilter *filter,
                                       guint                limit,
                                       guint                offset,
                                       GError             **error);
/* Keyset paging over the rows of @filter, as gk_stats_usage_page(). */
gint64         gk_stats_usage_query_page (GkDatabase          *db,
                                          const GkUsageFilter *filter,
                                          gint64               before_id,
                                          guint                limit,
                                          GkUsageRowFunc       func,
                                          gpointer             user_data,
                                          gint64              *last_id,
                                          GError             **error);
gint64         gk_stats_usage_query_count (GkDatabase          *db,
                                           const GkUsageFilter *filter,
                                           GError             **error);
/* Totals over every row of @filter, read from the rollup (plus the few rows
 * not folded in yet), whatever part of them a list shows. */
gboolean       gk_stats_usage_filter_summary (GkDatabase          *db,
                                              const GkUsageFilter *filter,
                                              GkUsageSummary      *summary,
                                              GError             **error);
/* Newest first, spike hours marked (gk_insights_mark_spikes()). Element
 * type GkRotationRow. */
GPtrArray     *gk_stats_rotation_logs (GkDatabase    *db,
                                       guint          limit,
                                       GError       **error);
gboolean       gk_stats_rotation_totals (GkDatabase  *db,
                                         gint64      *all,
                                         gint64      *manual,
                                         gint64      *automatic,
                                         GError     **error);

G_END_DECLS
