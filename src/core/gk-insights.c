/* gk-insights.c: key comparison, depletion forecast and rotation spikes.
 *
 * The comparison sums the rollup per key and status (requests, tokens,
 * cost; migration 9) and the per-key latency histogram (migration 8), plus
 * the few log rows not folded in yet, in one read snapshot, as the usage
 * tab's totals do; where compaction left only day sums, the parts of days
 * at the period's ends are read from the log, as the usage tab does.
 * Percentiles are read from the histogram: exact to the bucket,
 * interpolated linearly inside it.
 *
 * The forecast is deliberately simple, so it can be explained in one
 * sentence and checked by hand. A key's usage per 15 minutes over the last
 * four weeks gives (1) an hour-of-week profile: how busy each hour of the
 * week is compared with the average hour, from the whole weeks of history
 * there are (at least two; flat otherwise), and (2) a level: an
 * exponentially weighted average (newest bucket weighted
 * GK_FORECAST_LEVEL_ALPHA) of the last day's buckets, each divided by
 * its hour's profile factor. The rate at any future time is the level times
 * that hour's factor; the forecast walks forward from now, 15 minutes at a
 * time, until the quota's remaining amount (down to the rotation
 * threshold, where the key leaves service) is used or the window resets.
 *
 * Spikes compare each clock hour's rotations with the mean per hour of the
 * week before it, per key and for the whole pool.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>
#include <string.h>

#include "gk-insights.h"
#include "gk-quotas.h"
#include "gk-rollup.h"
#include "gk-stats.h"
#include "gk-stats-private.h"

#define BUCKET        GK_ROLLUP_BUCKET_SECONDS
#define DAY           GK_ROLLUP_DAY_SECONDS
#define HOUR          3600
#define WEEK_BUCKETS  (GK_FORECAST_WEEK_HOURS * HOUR / BUCKET)
#define MAX_DAYS      366

/* Profile factors are kept within these bounds: an hour never used in the
 * weeks seen still gets a little, and one busy hour does not dominate. */
#define PROFILE_MIN   0.05
#define PROFILE_MAX   20.0

/* --- Key comparison ------------------------------------------------------ */

void
gk_key_comparison_free (GkKeyComparison *row)
{
  if (row == NULL)
    return;
  g_free (row->name);
  g_free (row->key_hint);
  g_free (row);
}

typedef struct
{
  gint64 counts[GK_ROLLUP_LATENCY_BUCKETS];
} Histogram;

typedef struct
{
  gint64      since;
  gint64      until;
  GHashTable *rows;        /* key id → GkKeyComparison */
  GHashTable *histograms;  /* key id → Histogram */
} CompareData;

static GkKeyComparison *
compare_row (CompareData *data,
             gint64       key_id)
{
  GkKeyComparison *row = g_hash_table_lookup (data->rows, &key_id);

  if (row == NULL)
    {
      row = g_new0 (GkKeyComparison, 1);
      row->key_id = key_id;
      row->p50_ms = row->p95_ms = row->cost_per_1k_tokens = -1;
      g_hash_table_insert (data->rows, g_memdup2 (&key_id, sizeof key_id), row);
    }
  return row;
}

static Histogram *
compare_histogram (CompareData *data,
                   gint64       key_id)
{
  Histogram *h = g_hash_table_lookup (data->histograms, &key_id);

  if (h == NULL)
    {
      h = g_new0 (Histogram, 1);
      g_hash_table_insert (data->histograms, g_memdup2 (&key_id, sizeof key_id), h);
    }
  return h;
}

/* Runs @sql, a statement of rows (key_id, status, requests, tokens, cost)
 * or (key_id, bucket, requests) when @latency, with the integer parameters
 * @params, and adds its rows. The statements sum nothing themselves: a
 * GROUP BY would sort the rows first, which costs more than adding them
 * here. */
static gboolean
add_compare_rows (GkDatabase   *db,
                  CompareData  *data,
                  const char   *sql,
                  gboolean      latency,
                  const gint64 *params,
                  guint         n_params,
                  GError      **error)
{
  GkSqlStmt *stmt = gk_database_prepare (db, sql, error);
  int rc;

  if (stmt == NULL)
    return FALSE;
  for (guint i = 0; i < n_params; i++)
    gk_sql_bind_int64 (stmt, (int) i + 1, params[i]);
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      gint64 key_id = gk_sql_column_int64 (stmt, 0);

      if (latency)
        {
          gint64 bucket = gk_sql_column_int64 (stmt, 1);

          if (bucket >= 0 && bucket < GK_ROLLUP_LATENCY_BUCKETS)
            compare_histogram (data, key_id)->counts[bucket] += gk_sql_column_int64 (stmt, 2);
        }
      else
        {
          gint64 requests = gk_sql_column_int64 (stmt, 2);
          GkUsageStatus status = GK_USAGE_ERROR;
          GkKeyComparison *row;

          /* A sum whose rows were all deleted by hand: nothing done. */
          if (requests == 0)
            continue;
          row = compare_row (data, key_id);
          gk_usage_status_from_string (gk_sql_column_text (stmt, 1), &status);
          row->requests += requests;
          row->tokens += gk_sql_column_int64 (stmt, 3);
          row->cost_usd += gk_sql_column_double (stmt, 4);
          switch (status)
            {
            case GK_USAGE_SUCCESS:
              row->successes += requests;
              break;
            case GK_USAGE_RATE_LIMITED:
              row->rate_limited += requests;
              break;
            case GK_USAGE_INVALID_KEY:
              row->rejected += requests;
              break;
            case GK_USAGE_ERROR:
            default:
              row->errors += requests;
              break;
            }
        }
    }
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (db, error, _("Cannot read the statistics"));
      return FALSE;
    }
  return TRUE;
}

/* The rollup's sums per key and status, and its latency histograms, of
 * span ?3 in [?1, ?2). */
static const char key_sums_sql[] =
  "SELECT key_id, status, requests, tokens, cost_usd FROM usage_rollup_key"
  " WHERE span = ?3 AND start >= ?1 AND start < ?2 AND key_id <> 0";

static const char latency_sums_sql[] =
  "SELECT key_id, bucket, requests FROM usage_rollup_latency"
  " WHERE span = ?3 AND start >= ?1 AND start < ?2 AND key_id <> 0";

/* The same from the log's rows with ids in (?3, ?4] and times in [?1, ?2).
 * "+created_at": walk that range of ids rather than a time index. */
static const char log_sums_sql[] =
  "SELECT key_id, status, count(*), coalesce (sum(tokens_used), 0),"
  " coalesce (sum(cost_usd), 0.0)"
  " FROM gemini_key_usage_log WHERE id > ?3 AND id <= ?4 AND key_id IS NOT NULL"
  " AND +created_at >= ?1 AND +created_at < ?2 GROUP BY key_id, status";

static const char log_latency_sql[] =
  "SELECT key_id, " GK_ROLLUP_LATENCY_BUCKET_SQL ("latency_ms") ", count(*)"
  " FROM gemini_key_usage_log WHERE id > ?3 AND id <= ?4 AND key_id IS NOT NULL"
  " AND status = 'SUCCESS' AND latency_ms > 0 AND +created_at >= ?1 AND +created_at < ?2"
  " GROUP BY 1, 2";

static const char compare_keys_sql[] =
  "SELECT id, name, key_hint, deleted_at IS NOT NULL FROM gemini_api_keys";

/* Adds the part [@since, @until) of a day (or the whole of it) from the
 * rollup's quarter hours (@span BUCKET) or days (DAY), or, with @span 0,
 * from the log's rows up to @folded. */
static gboolean
add_compare_span (GkDatabase   *db,
                  CompareData  *data,
                  gint64        since,
                  gint64        until,
                  gint64        span,
                  gint64        folded,
                  GError      **error)
{
  const gint64 rollup[] = { since, until, span };
  const gint64 log[] = { since, until, 0, folded };

  if (since >= until)
    return TRUE;
  if (span == 0)
    return add_compare_rows (db, data, log_sums_sql, FALSE, log, 4, error)
           && add_compare_rows (db, data, log_latency_sql, TRUE, log, 4, error);
  return add_compare_rows (db, data, key_sums_sql, FALSE, rollup, 3, error)
         && add_compare_rows (db, data, latency_sums_sql, TRUE, rollup, 3, error);
}

/* Adds [@since, @until): its whole UTC days from the per-day sums (a
 * month is then thirty rows per key), the parts of days at its ends from
 * the quarter hours, or from the log's folded rows when @coarse (before
 * the facets' mark, where compaction removed the quarter hours). */
static gboolean
add_compare_range (GkDatabase   *db,
                   CompareData  *data,
                   gint64        since,
                   gint64        until,
                   gboolean      coarse,
                   gint64        folded,
                   GError      **error)
{
  gint64 first_day, last_day, edge = coarse ? 0 : BUCKET;

  if (since >= until)
    return TRUE;
  first_day = MIN ((since + DAY - 1) / DAY * DAY, until);
  last_day = MAX (until / DAY * DAY, first_day);
  return add_compare_span (db, data, since, first_day, edge, folded, error)
         && add_compare_span (db, data, first_day, last_day, DAY, folded, error)
         && add_compare_span (db, data, last_day, until, edge, folded, error);
}

static gboolean
read_compare (GkDatabase  *db,
              gpointer     user_data,
              GError     **error)
{
  CompareData *data = user_data;
  gint64 folded = 0, coarse_end = 0;
  GkSqlStmt *stmt;
  int rc;

  if (!gk_stats_read_folded_id (db, &folded, error))
    return FALSE;
  stmt = gk_database_prepare (db, "SELECT " GK_ROLLUP_FACET_DAYS_SQL, error);
  if (stmt == NULL)
    return FALSE;
  rc = gk_sql_step (stmt);
  if (rc == GK_SQL_ROW)
    coarse_end = CLAMP (gk_sql_column_int64 (stmt, 0), data->since, data->until);
  gk_sql_reset (stmt);
  if (rc != GK_SQL_ROW)
    {
      gk_database_set_error (db, error, _("Cannot read the statistics"));
      return FALSE;
    }

  {
    /* The rows past the fold's mark, over the whole period. */
    const gint64 unfolded[] = { data->since, data->until, folded, G_MAXINT64 };

    if (!add_compare_range (db, data, data->since, coarse_end, TRUE, folded, error)
        || !add_compare_range (db, data, coarse_end, data->until, FALSE, folded, error)
        || !add_compare_rows (db, data, log_sums_sql, FALSE, unfolded, 4, error)
        || !add_compare_rows (db, data, log_latency_sql, TRUE, unfolded, 4, error))
      return FALSE;
  }

  stmt = gk_database_prepare (db, compare_keys_sql, error);
  if (stmt == NULL)
    return FALSE;
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      gint64 id = gk_sql_column_int64 (stmt, 0);
      gboolean deleted = gk_sql_column_int64 (stmt, 3) != 0;
      GkKeyComparison *row;

      /* Deleted keys are listed only for what they did in the period. */
      if (deleted && !g_hash_table_contains (data->rows, &id))
        continue;
      row = compare_row (data, id);
      row->name = g_strdup (gk_sql_column_text (stmt, 1));
      row->key_hint = g_strdup (gk_sql_column_text (stmt, 2));
      row->deleted = deleted;
    }
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (db, error, _("Cannot read the statistics"));
      return FALSE;
    }
  return TRUE;
}

double
gk_insights_latency_percentile (const gint64 *histogram,
                                double        fraction)
{
  gint64 n = 0, seen = 0;
  double target;

  g_return_val_if_fail (histogram != NULL, -1);

  for (guint i = 0; i < GK_ROLLUP_LATENCY_BUCKETS; i++)
    n += histogram[i];
  if (n == 0)
    return -1;

  target = CLAMP (fraction, 0.0, 1.0) * (double) n;
  for (guint i = 0; i < GK_ROLLUP_LATENCY_BUCKETS; i++)
    {
      double lo = i == 0 ? 0 : (double) gk_rollup_latency_bounds[i - 1];
      double hi;

      if (histogram[i] == 0 || (double) (seen + histogram[i]) < target)
        {
          seen += histogram[i];
          continue;
        }
      /* The open-ended last bucket has no width: report its lower bound. */
      hi = i + 1 < GK_ROLLUP_LATENCY_BUCKETS ? (double) gk_rollup_latency_bounds[i] : lo;
      return lo + (target - (double) seen) / (double) histogram[i] * (hi - lo);
    }
  return (double) gk_rollup_latency_bounds[GK_ROLLUP_LATENCY_BUCKETS - 2];
}

static int
compare_by_id (gconstpointer a,
               gconstpointer b)
{
  const GkKeyComparison *ra = *(GkKeyComparison * const *) a;
  const GkKeyComparison *rb = *(GkKeyComparison * const *) b;

  return (ra->key_id > rb->key_id) - (ra->key_id < rb->key_id);
}

/**
 * gk_insights_compare:
 * @db: the database
 * @since: the period's start (UTC seconds, a 15-minute edge)
 * @until: its end, exclusive; 0 for none
 * @error: a #GK_DATABASE_ERROR
 *
 * Per key: requests by outcome and their rates, p50/p95 latency of the
 * successful requests, tokens, cost and the key's share of the period's
 * requests, from the rollup (plus the rows not folded in yet).
 *
 * Returns: (transfer container) (element-type GkKeyComparison): by key id.
 */
GPtrArray *
gk_insights_compare (GkDatabase  *db,
                     gint64       since,
                     gint64       until,
                     GError     **error)
{
  g_autoptr(GHashTable) rows = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  g_autoptr(GHashTable) histograms = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                                            g_free);
  CompareData data = { since, until > 0 ? until : G_MAXINT64, rows, histograms };
  g_autoptr(GPtrArray) result = g_ptr_array_new_with_free_func ((GDestroyNotify) gk_key_comparison_free);
  g_autoptr(GError) fold_error = NULL;
  GHashTableIter iter;
  gpointer value;
  gint64 total = 0;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!gk_rollup_catch_up (db, &fold_error))
    g_debug ("Usage totals not brought up to date: %s", fold_error->message);

  if (!gk_stats_with_read_snapshot (db, read_compare, &data, error))
    {
      /* The rows are still owned by the table's values. */
      g_hash_table_iter_init (&iter, rows);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        gk_key_comparison_free (value);
      return NULL;
    }

  g_hash_table_iter_init (&iter, rows);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      GkKeyComparison *row = value;
      Histogram *h = g_hash_table_lookup (histograms, &row->key_id);

      /* A deleted key's rows whose key is gone from the table altogether
       * are still named by their id. */
      if (row->name == NULL)
        row->name = g_strdup_printf (_("Key %lld"), (long long) row->key_id);
      if (row->key_hint == NULL)
        row->key_hint = g_strdup ("");
      if (row->requests > 0)
        {
          row->success_rate = 100.0 * (double) row->successes / (double) row->requests;
          row->rate_limited_rate = 100.0 * (double) row->rate_limited / (double) row->requests;
          row->rejected_rate = 100.0 * (double) row->rejected / (double) row->requests;
        }
      if (row->tokens > 0)
        row->cost_per_1k_tokens = row->cost_usd * 1000.0 / (double) row->tokens;
      if (h != NULL)
        {
          for (guint i = 0; i < GK_ROLLUP_LATENCY_BUCKETS; i++)
            row->latency_samples += h->counts[i];
          row->p50_ms = gk_insights_latency_percentile (h->counts, 0.50);
          row->p95_ms = gk_insights_latency_percentile (h->counts, 0.95);
        }
      total += row->requests;
      g_ptr_array_add (result, row);
    }
  for (guint i = 0; i < result->len; i++)
    {
      GkKeyComparison *row = result->pdata[i];

      row->share = total > 0 ? 100.0 * (double) row->requests / (double) total : 0;
    }
  g_ptr_array_sort (result, compare_by_id);
  return g_steal_pointer (&result);
}

/**
 * gk_insights_compare_days:
 * @db: the database
 * @days: 1–366
 * @error: a #GK_DATABASE_ERROR
 *
 * gk_insights_compare() from local midnight @days - 1 days ago on.
 *
 * Returns: (transfer container) (element-type GkKeyComparison): by key id.
 */
GPtrArray *
gk_insights_compare_days (GkDatabase  *db,
                          guint        days,
                          GError     **error)
{
  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);
  g_return_val_if_fail (days >= 1 && days <= MAX_DAYS, NULL);

  return gk_insights_compare (db,
                              gk_stats_local_midnight (NULL, gk_database_now (db),
                                                       (int) days - 1),
                              0, error);
}

/* --- Depletion forecast --------------------------------------------------- */

void
gk_forecast_free (GkForecast *forecast)
{
  if (forecast == NULL)
    return;
  g_clear_pointer (&forecast->windows, g_ptr_array_unref);
  g_free (forecast);
}

static void
depletion_free (GkDepletion *d)
{
  g_free (d->name);
  g_free (d);
}

/* The hour of the week (0–167) of @t; any fixed origin does, since only
 * the weekly period matters. */
static guint
hour_of_week (gint64 t)
{
  gint64 h = t / HOUR % GK_FORECAST_WEEK_HOURS;

  return (guint) (h < 0 ? h + GK_FORECAST_WEEK_HOURS : h);
}

/* Fills @factor with the hour-of-week profile of @buckets (see the top of
 * the file); flat without two whole weeks of history. */
static void
usage_profile (const double *buckets,
               guint         n_buckets,
               gint64        first_start,
               double       *factor)
{
  double sums[GK_FORECAST_WEEK_HOURS] = { 0 };
  double total = 0, mean;
  guint first_used = n_buckets, weeks, from;

  for (guint w = 0; w < GK_FORECAST_WEEK_HOURS; w++)
    factor[w] = 1.0;
  for (guint i = 0; i < n_buckets && first_used == n_buckets; i++)
    if (buckets[i] > 0)
      first_used = i;
  weeks = MIN ((n_buckets - first_used) / WEEK_BUCKETS, GK_FORECAST_PROFILE_WEEKS);
  if (weeks < 2)
    return;

  from = n_buckets - weeks * WEEK_BUCKETS;
  for (guint i = from; i < n_buckets; i++)
    {
      sums[hour_of_week (first_start + (gint64) i * BUCKET)] += buckets[i];
      total += buckets[i];
    }
  mean = total / (weeks * GK_FORECAST_WEEK_HOURS);
  if (mean <= 0)
    return;
  for (guint w = 0; w < GK_FORECAST_WEEK_HOURS; w++)
    factor[w] = CLAMP (sums[w] / weeks / mean, PROFILE_MIN, PROFILE_MAX);
}

/**
 * gk_forecast_run_out:
 *
 * The forecast model (see the top of the file) on one series.
 *
 * Returns: the UTC second at which @remaining will have been used, or 0
 * when that is not before @until.
 */
gint64
gk_forecast_run_out (const double *buckets,
                     guint         n_buckets,
                     double        partial,
                     gint64        now,
                     double        remaining,
                     gint64        until,
                     double       *rate_per_hour)
{
  double factor[GK_FORECAST_WEEK_HOURS];
  gint64 current = now - now % BUCKET, first_start = current - (gint64) n_buckets * BUCKET;
  guint from = n_buckets > GK_FORECAST_LEVEL_BUCKETS ? n_buckets - GK_FORECAST_LEVEL_BUCKETS : 0;
  double level = 0, elapsed, used = 0;
  gint64 t;

  usage_profile (buckets, n_buckets, first_start, factor);

  /* The level, in units per bucket of an average hour: start from the
   * mean, then weight recent buckets more. */
  for (guint i = from; i < n_buckets; i++)
    level += buckets[i] / factor[hour_of_week (first_start + (gint64) i * BUCKET)];
  level = n_buckets > from ? level / (n_buckets - from) : 0;
  for (guint i = from; i < n_buckets; i++)
    level += GK_FORECAST_LEVEL_ALPHA
             * (buckets[i] / factor[hour_of_week (first_start + (gint64) i * BUCKET)] - level);
  /* The bucket under way counts for the part of it that has passed. */
  elapsed = (double) (now - current) / BUCKET;
  if (elapsed > 0)
    level += GK_FORECAST_LEVEL_ALPHA * elapsed
             * (partial / elapsed / factor[hour_of_week (current)] - level);
  level = MAX (level, 0);

  if (rate_per_hour != NULL)
    *rate_per_hour = level * factor[hour_of_week (now)] * HOUR / BUCKET;
  if (remaining <= 0 || level <= 0)
    return 0;

  for (t = now; t < until;)
    {
      gint64 end = MIN (t - t % BUCKET + BUCKET, until);
      double rate = level * factor[hour_of_week (t)] / BUCKET;   /* per second */
      double slot = rate * (double) (end - t);

      if (used + slot >= remaining)
        return t + (gint64) ceil ((remaining - used) / rate);
      used += slot;
      t = end;
    }
  return 0;
}

/* The usage of one key, or of the pool, over the last weeks. */
typedef struct
{
  double buckets[2][GK_FORECAST_PROFILE_WEEKS * WEEK_BUCKETS];   /* by unit */
  double partial[2];
} Series;

typedef struct
{
  gint64      now;
  gint64      first_start;
  GHashTable *series;     /* key id → Series */
  GHashTable *usable;     /* ids of the keys forecast */
  GPtrArray  *windows;
} ForecastData;

static Series *
series_for (ForecastData *data,
            gint64        key_id)
{
  Series *s = g_hash_table_lookup (data->series, &key_id);

  if (s == NULL)
    {
      s = g_new0 (Series, 1);
      g_hash_table_insert (data->series, g_memdup2 (&key_id, sizeof key_id), s);
    }
  return s;
}

static void
series_add (ForecastData *data,
            gint64        key_id,
            gint64        start,
            double        tokens,
            double        requests)
{
  Series *s = series_for (data, key_id);
  gint64 current = data->now - data->now % BUCKET;

  if (start >= current)
    {
      s->partial[GK_QUOTA_UNIT_TOKENS] += tokens;
      s->partial[GK_QUOTA_UNIT_REQUESTS] += requests;
    }
  else if (start >= data->first_start)
    {
      gint64 i = (start - data->first_start) / BUCKET;

      s->buckets[GK_QUOTA_UNIT_TOKENS][i] += tokens;
      s->buckets[GK_QUOTA_UNIT_REQUESTS][i] += requests;
    }
}

static const char forecast_facet_sql[] =
  "SELECT key_id, start, coalesce (sum(tokens), 0), coalesce (sum(requests), 0)"
  " FROM usage_rollup_facet"
  " WHERE start >= ?1 AND key_id <> 0 GROUP BY key_id, start";

static const char forecast_log_sql[] =
  "SELECT key_id, created_at - created_at % 900, coalesce (sum(tokens_used), 0), count(*)"
  " FROM gemini_key_usage_log WHERE id > ?2 AND key_id IS NOT NULL AND +created_at >= ?1"
  " GROUP BY 1, 2";

#define USABLE_KEY "k.deleted_at IS NULL AND k.status NOT IN ('INACTIVE', 'INVALID')"

static const char forecast_keys_sql[] =
  "SELECT k.id FROM gemini_api_keys k WHERE " USABLE_KEY;

static const char forecast_quotas_sql[] =
  "SELECT k.id, k.name, q.quota_type, q.unit, q.limit_value, q.used_value, q.reset_at"
  " FROM gemini_api_keys k JOIN gemini_key_quotas q ON q.key_id = k.id"
  " WHERE " USABLE_KEY " AND q.limit_value > 0 ORDER BY k.id, q.quota_type, q.unit";

static gboolean
read_series (GkDatabase   *db,
             ForecastData *data,
             const char   *sql,
             gint64        folded,
             GError      **error)
{
  GkSqlStmt *stmt = gk_database_prepare (db, sql, error);
  int rc;

  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, data->first_start);
  if (gk_sql_bind_parameter_count (stmt) >= 2)
    gk_sql_bind_int64 (stmt, 2, folded);
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    series_add (data, gk_sql_column_int64 (stmt, 0), gk_sql_column_int64 (stmt, 1),
                gk_sql_column_double (stmt, 2), gk_sql_column_double (stmt, 3));
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (db, error, _("Cannot read the statistics"));
      return FALSE;
    }
  return TRUE;
}

static gboolean
read_forecast (GkDatabase  *db,
               gpointer     user_data,
               GError     **error)
{
  ForecastData *data = user_data;
  gint64 folded = 0;
  GkSqlStmt *stmt;
  int rc;

  if (!gk_stats_read_folded_id (db, &folded, error)
      || !read_series (db, data, forecast_facet_sql, folded, error)
      || !read_series (db, data, forecast_log_sql, folded, error))
    return FALSE;

  stmt = gk_database_prepare (db, forecast_keys_sql, error);
  if (stmt == NULL)
    return FALSE;
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      gint64 id = gk_sql_column_int64 (stmt, 0);

      g_hash_table_add (data->usable, g_memdup2 (&id, sizeof id));
    }
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (db, error, _("Cannot read the keys"));
      return FALSE;
    }

  stmt = gk_database_prepare (db, forecast_quotas_sql, error);
  if (stmt == NULL)
    return FALSE;
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      GkDepletion *d = g_new0 (GkDepletion, 1);

      d->key_id = gk_sql_column_int64 (stmt, 0);
      d->name = g_strdup (gk_sql_column_text (stmt, 1));
      gk_quota_type_from_string (gk_sql_column_text (stmt, 2), &d->quota_type);
      d->unit = g_strcmp0 (gk_sql_column_text (stmt, 3), "REQUESTS") == 0
                ? GK_QUOTA_UNIT_REQUESTS : GK_QUOTA_UNIT_TOKENS;
      d->limit_value = gk_sql_column_int64 (stmt, 4);
      d->used_value = gk_sql_column_int64 (stmt, 5);
      d->reset_at = gk_sql_column_int64 (stmt, 6);
      g_ptr_array_add (data->windows, d);
    }
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (db, error, _("Cannot read the keys"));
      return FALSE;
    }
  return TRUE;
}

/* What is left of @d before the key leaves service at the rotation
 * threshold. */
static double
usable_remaining (const GkDepletion *d,
                  double             threshold_percent)
{
  return (double) d->limit_value * (1.0 - threshold_percent / 100.0) - (double) d->used_value;
}

static gint64
forecast_series (const Series *s,
                 GkQuotaUnit   unit,
                 gint64        now,
                 double        remaining,
                 gint64        until,
                 double       *rate_per_hour)
{
  static const Series empty;

  if (s == NULL)
    s = &empty;
  return gk_forecast_run_out (s->buckets[unit], G_N_ELEMENTS (s->buckets[unit]),
                              s->partial[unit], now, remaining, until, rate_per_hour);
}

/* The pool's daily forecast: for each unit in which every usable key has
 * a daily limit, when the pool's combined remaining quota runs out at the
 * pool's combined rate (traffic moves on to the other keys as one runs
 * out); the earlier of the units. A key without a daily limit in a unit
 * leaves that unit unbounded. */
static void
forecast_pool (GkForecast   *forecast,
               ForecastData *data,
               double        threshold)
{
  GHashTable *keys = data->usable;

  for (guint unit = 0; unit < 2; unit++)
    {
      g_autofree Series *pool = g_new0 (Series, 1);
      double remaining = 0;
      guint n_limited = 0;
      gint64 reset_at = 0, at;
      GHashTableIter iter;
      gpointer key;

      for (guint i = 0; i < forecast->windows->len; i++)
        {
          GkDepletion *d = forecast->windows->pdata[i];

          if (d->quota_type != GK_QUOTA_DAILY || d->unit != unit)
            continue;
          n_limited++;
          remaining += MAX (usable_remaining (d, threshold), 0);
          reset_at = reset_at == 0 ? d->reset_at : MIN (reset_at, d->reset_at);
        }
      if (n_limited == 0 || n_limited < g_hash_table_size (keys))
        continue;

      g_hash_table_iter_init (&iter, keys);
      while (g_hash_table_iter_next (&iter, &key, NULL))
        {
          const Series *s = g_hash_table_lookup (data->series, key);

          if (s == NULL)
            continue;
          for (guint b = 0; b < G_N_ELEMENTS (pool->buckets[unit]); b++)
            pool->buckets[unit][b] += s->buckets[unit][b];
          pool->partial[unit] += s->partial[unit];
        }
      at = remaining > 0 ? forecast_series (pool, unit, forecast->now, remaining, reset_at, NULL)
                         : forecast->now;
      forecast->pool_reset_at = forecast->pool_reset_at == 0 ? reset_at
                                : MIN (forecast->pool_reset_at, reset_at);
      if (at != 0 && (forecast->pool_runs_out_at == 0 || at < forecast->pool_runs_out_at))
        forecast->pool_runs_out_at = at;
    }
}

/**
 * gk_insights_forecast:
 * @db: the database
 * @error: a #GK_DATABASE_ERROR
 *
 * Returns: (transfer full): the forecast, or %NULL with @error set.
 */
GkForecast *
gk_insights_forecast (GkDatabase  *db,
                      GError     **error)
{
  g_autoptr(GHashTable) series = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                                        g_free);
  g_autoptr(GkForecast) forecast = g_new0 (GkForecast, 1);
  g_autoptr(GError) fold_error = NULL;
  g_autoptr(GHashTable) out_today = g_hash_table_new (g_int64_hash, g_int64_equal);
  g_autoptr(GHashTable) usable = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  ForecastData data;
  double threshold;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!gk_quotas_reset_expired (db, error))
    return NULL;
  if (!gk_rollup_catch_up (db, &fold_error))
    g_debug ("Usage totals not brought up to date: %s", fold_error->message);

  forecast->now = gk_database_now (db);
  forecast->windows = g_ptr_array_new_with_free_func ((GDestroyNotify) depletion_free);
  data.now = forecast->now;
  data.first_start = forecast->now - forecast->now % BUCKET
                     - (gint64) GK_FORECAST_PROFILE_WEEKS * WEEK_BUCKETS * BUCKET;
  data.series = series;
  data.usable = usable;
  data.windows = forecast->windows;
  if (!gk_stats_with_read_snapshot (db, read_forecast, &data, error))
    return NULL;

  threshold = gk_database_get_rotation_threshold (db);
  for (guint i = 0; i < forecast->windows->len; i++)
    {
      GkDepletion *d = forecast->windows->pdata[i];
      double remaining = usable_remaining (d, threshold);

      d->runs_out_at = forecast_series (g_hash_table_lookup (series, &d->key_id), d->unit,
                                        forecast->now, remaining, d->reset_at,
                                        &d->rate_per_hour);
      if (remaining <= 0)
        d->runs_out_at = 0;
      if (d->quota_type == GK_QUOTA_DAILY && d->runs_out_at != 0)
        g_hash_table_add (out_today, &d->key_id);
    }
  forecast->keys_out_today = g_hash_table_size (out_today);
  forecast_pool (forecast, &data, threshold);
  return g_steal_pointer (&forecast);
}

const GkDepletion *
gk_forecast_key_first (const GkForecast *forecast,
                       gint64            key_id)
{
  const GkDepletion *first = NULL;

  g_return_val_if_fail (forecast != NULL, NULL);

  for (guint i = 0; i < forecast->windows->len; i++)
    {
      const GkDepletion *d = forecast->windows->pdata[i];

      if (d->key_id == key_id && d->runs_out_at != 0
          && (first == NULL || d->runs_out_at < first->runs_out_at))
        first = d;
    }
  return first;
}

/* --- Rotation spikes ------------------------------------------------------ */

void
gk_rotation_spike_free (GkRotationSpike *spike)
{
  if (spike == NULL)
    return;
  g_free (spike->key_name);
  g_free (spike);
}

gboolean
gk_insights_is_spike (gint64 rotations,
                      double baseline)
{
  return rotations >= GK_SPIKE_MIN_ROTATIONS && (double) rotations >= GK_SPIKE_FACTOR * baseline;
}

/* Every (hour, key) with enough rotations to be a spike, and every hour of
 * the pool: "key_id" 0 is the pool (from_key_id is never 0). */
static const char spike_candidates_sql[] =
  "SELECT hour, key_id, n FROM ("
  " SELECT created_at - created_at % 3600 AS hour, 0 AS key_id, count(*) AS n"
  "  FROM gemini_key_rotation_log WHERE created_at >= ?1 AND created_at < ?2 GROUP BY 1"
  " UNION ALL"
  " SELECT created_at - created_at % 3600, coalesce (from_key_id, 0), count(*)"
  "  FROM gemini_key_rotation_log WHERE created_at >= ?1 AND created_at < ?2"
  "  AND from_key_id IS NOT NULL GROUP BY 1, 2) AS spikes"
  " WHERE n >= ?3 ORDER BY hour, key_id";

/* ?1 hour start, ?2 key (0: every key). */
static const char spike_baseline_sql[] =
  "SELECT count(*) FROM gemini_key_rotation_log"
  " WHERE created_at >= ?1 - " G_STRINGIFY (GK_SPIKE_BASELINE_HOURS) " * 3600"
  " AND created_at < ?1 AND (?2 = 0 OR from_key_id = ?2)";

static const char spike_reason_sql[] =
  "SELECT r.reason, count(*), (SELECT name FROM gemini_api_keys WHERE id = ?2)"
  " FROM gemini_key_rotation_log r"
  " WHERE r.created_at >= ?1 AND r.created_at < ?1 + 3600 AND (?2 = 0 OR r.from_key_id = ?2)"
  " GROUP BY r.reason ORDER BY 2 DESC, r.reason LIMIT 1";

typedef struct
{
  gint64     since;
  gint64     until;
  GPtrArray *spikes;
} SpikeData;

static gboolean
query_two (GkDatabase   *db,
           const char   *sql,
           gint64        a,
           gint64        b,
           GkSqlStmt    **out,
           GError      **error)
{
  GkSqlStmt *stmt = gk_database_prepare (db, sql, error);

  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, a);
  gk_sql_bind_int64 (stmt, 2, b);
  *out = stmt;
  return TRUE;
}

static gboolean
read_spikes (GkDatabase  *db,
             gpointer     user_data,
             GError     **error)
{
  SpikeData *data = user_data;
  g_autoptr(GArray) candidates = g_array_new (FALSE, FALSE, sizeof (gint64) * 3);
  GkSqlStmt *stmt;
  int rc;

  if (!query_two (db, spike_candidates_sql, data->since, data->until, &stmt, error))
    return FALSE;
  gk_sql_bind_int64 (stmt, 3, GK_SPIKE_MIN_ROTATIONS);
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      gint64 c[3] = { gk_sql_column_int64 (stmt, 0), gk_sql_column_int64 (stmt, 1),
                      gk_sql_column_int64 (stmt, 2) };

      g_array_append_vals (candidates, c, 1);
    }
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    goto failed;

  for (guint i = 0; i < candidates->len; i++)
    {
      const gint64 *c = &g_array_index (candidates, gint64, i * 3);
      GkRotationSpike *spike;
      double baseline;

      if (!query_two (db, spike_baseline_sql, c[0], c[1], &stmt, error))
        return FALSE;
      rc = gk_sql_step (stmt);
      baseline = rc == GK_SQL_ROW ? gk_sql_column_double (stmt, 0) / GK_SPIKE_BASELINE_HOURS
                                  : 0;
      gk_sql_reset (stmt);
      if (rc != GK_SQL_ROW)
        goto failed;
      if (!gk_insights_is_spike (c[2], baseline))
        continue;

      if (!query_two (db, spike_reason_sql, c[0], c[1], &stmt, error))
        return FALSE;
      rc = gk_sql_step (stmt);
      if (rc != GK_SQL_ROW)
        {
          gk_sql_reset (stmt);
          goto failed;
        }
      spike = g_new0 (GkRotationSpike, 1);
      spike->hour_start = c[0];
      spike->key_id = c[1];
      spike->rotations = c[2];
      spike->baseline = baseline;
      gk_rotation_reason_from_string (gk_sql_column_text (stmt, 0),
                                      &spike->dominant_reason);
      spike->dominant_count = gk_sql_column_int64 (stmt, 1);
      if (c[1] != 0)
        spike->key_name = g_strdup (gk_sql_column_text (stmt, 2));
      gk_sql_reset (stmt);
      g_ptr_array_add (data->spikes, spike);
    }
  return TRUE;

failed:
  gk_database_set_error (db, error, _("Cannot read the rotation log"));
  return FALSE;
}

/**
 * gk_insights_rotation_spikes:
 * @db: the database
 * @since: UTC seconds; hours that begin before it are left out
 * @until: exclusive; 0 for none
 * @error: a #GK_DATABASE_ERROR
 *
 * Returns: (transfer container) (element-type GkRotationSpike): oldest
 * first.
 */
GPtrArray *
gk_insights_rotation_spikes (GkDatabase  *db,
                             gint64       since,
                             gint64       until,
                             GError     **error)
{
  g_autoptr(GPtrArray) spikes = g_ptr_array_new_with_free_func ((GDestroyNotify) gk_rotation_spike_free);
  SpikeData data;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  /* Whole hours only: an hour is a spike or not as a whole. */
  data.since = since - since % HOUR + (since % HOUR != 0 ? HOUR : 0);
  data.until = until > 0 ? until : G_MAXINT64;
  data.spikes = spikes;
  if (!gk_stats_with_read_snapshot (db, read_spikes, &data, error))
    return NULL;
  return g_steal_pointer (&spikes);
}

/**
 * gk_insights_mark_spikes:
 * @db: the database
 * @rows: (element-type GkRotationRow): rotation rows
 * @error: a #GK_DATABASE_ERROR
 *
 * Returns: %TRUE on success.
 */
gboolean
gk_insights_mark_spikes (GkDatabase  *db,
                         GPtrArray   *rows,
                         GError     **error)
{
  g_autoptr(GPtrArray) spikes = NULL;
  gint64 first = G_MAXINT64, last = G_MININT64;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (rows != NULL, FALSE);

  for (guint i = 0; i < rows->len; i++)
    {
      GkRotationRow *row = rows->pdata[i];

      row->in_spike = FALSE;
      first = MIN (first, row->created_at);
      last = MAX (last, row->created_at);
    }
  if (rows->len == 0)
    return TRUE;

  spikes = gk_insights_rotation_spikes (db, first - first % HOUR, last + 1, error);
  if (spikes == NULL)
    return FALSE;
  for (guint i = 0; i < rows->len; i++)
    {
      GkRotationRow *row = rows->pdata[i];
      gint64 hour = row->created_at - row->created_at % HOUR;

      for (guint s = 0; s < spikes->len && !row->in_spike; s++)
        {
          const GkRotationSpike *spike = spikes->pdata[s];

          row->in_spike = spike->hour_start == hour
                          && (spike->key_id == 0 || spike->key_id == row->from_key_id);
        }
    }
  return TRUE;
}
