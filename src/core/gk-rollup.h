/* gk-rollup.h: running sums of the usage log for the dashboard.
 *
 * The usage log only grows, so its sums are kept in tables of their own
 * (schema version 2) and brought up to date by folding in the rows added
 * since the last fold. Sums are per 15-minute UTC bucket: every time zone
 * in use today has an offset that is a whole number of quarter hours, so a
 * local day is an exact run of buckets. Models and users are also summed
 * per UTC day, so a month's ranking reads a few rows per name.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-types.h"

G_BEGIN_DECLS

/* The spans of the rollup tables, in seconds (also spelled out in the
 * schema's migration 2). */
#define GK_ROLLUP_BUCKET_SECONDS 900
#define GK_ROLLUP_DAY_SECONDS    86400

/* Latency histogram (usage_rollup_latency, migration 8): the bucket of a
 * successful request's latency_ms (0, "not measured", is left out).
 * Bucket i holds latencies from gk_rollup_latency_bounds[i - 1] (0 for the
 * first) up to, not including, gk_rollup_latency_bounds[i]; the last
 * bucket is open-ended. The SQL
 * below is the one definition the fold, the migration and the trigger
 * share; the C table must list the same bounds (a test checks it). */
#define GK_ROLLUP_LATENCY_BUCKET_SQL(x) \
  "CASE WHEN " x " < 100 THEN 0 WHEN " x " < 200 THEN 1 WHEN " x " < 300 THEN 2" \
  " WHEN " x " < 500 THEN 3 WHEN " x " < 750 THEN 4 WHEN " x " < 1000 THEN 5" \
  " WHEN " x " < 1500 THEN 6 WHEN " x " < 2000 THEN 7 WHEN " x " < 3000 THEN 8" \
  " WHEN " x " < 5000 THEN 9 WHEN " x " < 7500 THEN 10 WHEN " x " < 10000 THEN 11" \
  " WHEN " x " < 15000 THEN 12 WHEN " x " < 20000 THEN 13 WHEN " x " < 30000 THEN 14" \
  " WHEN " x " < 60000 THEN 15 WHEN " x " < 120000 THEN 16 ELSE 17 END"
#define GK_ROLLUP_LATENCY_BUCKETS 18

/* The upper bounds in milliseconds (exclusive) of every bucket but the
 * last. */
extern const gint64 gk_rollup_latency_bounds[GK_ROLLUP_LATENCY_BUCKETS - 1];

/* The sums per key and status (usage_rollup_key, migration 9) are kept
 * per 15-minute bucket and per UTC day, as the latency histogram is: the
 * key comparison reads a period's whole UTC days from the day sums and the
 * parts of days at its ends from the quarter hours, which compaction
 * removes where the facet sums are per day (before the mark
 * GK_ROLLUP_META_FACET_DAYS below); there the parts of days are read from
 * the log's rows. */

/* The meta key holding the highest usage-log id folded in. */
#define GK_ROLLUP_META_MAX_ID    "rollup_max_id"

/* How long the 15-minute sums per model and per user are kept, in days.
 * The dashboard's longest period (30 local days, whose first local
 * midnight can lie up to a day before the UTC day) needs them only for the
 * partial day at its start; older days read the per-day sums, which are
 * kept for ever. */
#define GK_ROLLUP_FINE_DAYS      35

/* The meta key holding a UTC midnight before which the per-facet sums
 * (usage_rollup_facet: key, status, model, user) are per UTC day, each
 * with its day's midnight as start, rather than per 15 minutes. Compaction
 * moves it forward to the %GK_ROLLUP_FINE_DAYS cutoff, never back; a row
 * folded in late for an older time goes to its day's sum. */
#define GK_ROLLUP_META_FACET_DAYS "rollup_facet_days_before"

/* That mark in SQL, 0 while no facet sum was coarsened. */
#define GK_ROLLUP_FACET_DAYS_SQL \
  "coalesce ((SELECT CAST (value AS INTEGER) FROM meta" \
  " WHERE key = '" GK_ROLLUP_META_FACET_DAYS "'), 0)"

/* The meta key that, while set (inside compaction's own transaction only),
 * keeps deleted usage rows in the rollup (migration 4). */
#define GK_ROLLUP_META_PRUNING   "usage_pruning"

typedef struct
{
  gint64   rows_deleted;       /* raw usage rows past the retention period */
  gint64   buckets_coarsened;  /* 15-minute model/user/facet/key/latency sums folded into days */
  gint64   bytes_before;       /* the database's size (pages in use and free) */
  gint64   bytes_after;
  gboolean space_reclaimed;    /* VACUUM ran */
} GkCompactReport;

gboolean gk_rollup_catch_up (GkDatabase  *db,
                             GError     **error);

/* Usage retention in days (setting GK_SETTING_USAGE_RETENTION_DAYS; 0 =
 * keep every row, the default). */
guint    gk_rollup_get_retention_days (GkDatabase  *db);
gboolean gk_rollup_set_retention_days (GkDatabase  *db,
                                       guint        days,
                                       GError     **error);

/* Applies the retention setting and coarsens old sums, in batches of short
 * write transactions, without changing any figure the dashboard shows. */
gboolean gk_rollup_prune      (GkDatabase      *db,
                               GkCompactReport *report,
                               GError         **error);
/* gk_rollup_prune(), then VACUUM and a WAL checkpoint to give the space
 * back to the file system. Slow on a big database: call it from a worker
 * thread. When another process keeps the database busy, the pruning stays
 * done and @error (GK_DATABASE_ERROR_BUSY) says the space was not
 * reclaimed. */
gboolean gk_rollup_compact    (GkDatabase      *db,
                               GkCompactReport *report,
                               GError         **error);

G_END_DECLS
