/* gk-cli-insights.c: `keys compare`, `keys forecast` and `keys spikes`.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "gk-cli.h"

#define MAX_DAYS 366

/* The columns `keys compare --sort` knows, each with how to read it. */
typedef enum
{
  SORT_ID,
  SORT_NAME,
  SORT_REQUESTS,
  SORT_SUCCESS,
  SORT_RATE_LIMITED,
  SORT_REJECTED,
  SORT_P50,
  SORT_P95,
  SORT_TOKENS,
  SORT_COST,
  SORT_COST_PER_1K,
  SORT_SHARE,
} SortColumn;

static const char *const sort_names[] = {
  "id", "name", "requests", "success_rate", "rate_limited_rate", "rejected_rate",
  "p50_latency_ms", "p95_latency_ms", "tokens_used", "cost_usd", "cost_per_1k_tokens", "share",
};

static double
sort_value (const GkKeyComparison *row,
            SortColumn             column)
{
  switch (column)
    {
    case SORT_REQUESTS: return (double) row->requests;
    case SORT_SUCCESS: return row->success_rate;
    case SORT_RATE_LIMITED: return row->rate_limited_rate;
    case SORT_REJECTED: return row->rejected_rate;
    case SORT_P50: return row->p50_ms;
    case SORT_P95: return row->p95_ms;
    case SORT_TOKENS: return (double) row->tokens;
    case SORT_COST: return row->cost_usd;
    case SORT_COST_PER_1K: return row->cost_per_1k_tokens;
    case SORT_SHARE: return row->share;
    case SORT_ID:
    case SORT_NAME:
    default: return (double) row->key_id;
    }
}

static int
compare_rows (gconstpointer a,
              gconstpointer b,
              gpointer      user_data)
{
  const GkKeyComparison *ra = *(GkKeyComparison * const *) a;
  const GkKeyComparison *rb = *(GkKeyComparison * const *) b;
  SortColumn column = GPOINTER_TO_INT (user_data);
  double va, vb;

  if (column == SORT_NAME)
    return g_utf8_collate (ra->name, rb->name);
  va = sort_value (ra, column);
  vb = sort_value (rb, column);
  /* Highest first for the figures, by id otherwise. */
  if (column == SORT_ID)
    return (va > vb) - (va < vb);
  if (va != vb)
    return (va < vb) - (va > vb);
  return (ra->key_id > rb->key_id) - (ra->key_id < rb->key_id);
}

static char *
format_rate (double value)
{
  return g_strdup_printf ("%.1f%%", value);
}

static char *
format_ms (double value)
{
  /* TRANSLATORS: a latency in milliseconds. */
  return value < 0 ? g_strdup ("—") : g_strdup_printf (_("%.0f ms"), value);
}

static char *
format_money (double value)
{
  return value < 0 ? g_strdup ("—") : g_strdup_printf ("$%.4f", value);
}

static void
comparison_cells (GkCliTable    *table,
                  gconstpointer  data)
{
  const GkKeyComparison *r = data;

  gk_cli_table_take_row (table,
                         g_strdup_printf ("%" PRId64, r->key_id),
                         r->deleted ? g_strdup_printf (_("%s (deleted)"), r->name)
                                    : g_strdup (r->name),
                         g_strdup_printf ("%" PRId64, r->requests),
                         format_rate (r->success_rate),
                         format_rate (r->rate_limited_rate),
                         format_rate (r->rejected_rate),
                         format_ms (r->p50_ms), format_ms (r->p95_ms),
                         g_strdup_printf ("%" PRId64, r->tokens),
                         format_money (r->cost_usd),
                         format_money (r->cost_per_1k_tokens),
                         format_rate (r->share));
}

/* The options parsed, --days checked (when @days is given) and the
 * database opened: NULL with @status set to what the command returns. */
static GkDatabase *
parse_and_open (GkCli               *cli,
                const char          *summary,
                const GOptionEntry  *entries,
                const int           *days,
                int                 *argc,
                char              ***argv,
                int                 *status)
{
  GkDatabase *db;

  *status = gk_cli_parse_options (cli, "", summary, entries, 0, 0, argc, argv);
  if (*status == GK_CLI_OK && days != NULL && (*days < 1 || *days > MAX_DAYS))
    *status = gk_cli_usage_error (cli, _("--days must be between 1 and %d"), MAX_DAYS);
  if (*status != GK_CLI_OK)
    return NULL;

  db = gk_cli_get_database (cli);
  if (db == NULL)
    *status = GK_CLI_ERROR;
  return db;
}

static int
keys_compare (GkCli  *cli,
              int     argc,
              char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  g_autofree char *sort = NULL;
  int days = 7;
  int column = -1;
  const GOptionEntry entries[] = {
    { "days", 'd', 0, G_OPTION_ARG_INT, &days, N_("The last N days, today included (default 7)"),
      N_("N") },
    { "sort", 's', 0, G_OPTION_ARG_STRING, &sort,
      N_("Sort by a column: requests, success_rate, rate_limited_rate, rejected_rate, "
         "p50_latency_ms, p95_latency_ms, tokens_used, cost_usd, cost_per_1k_tokens, share, "
         "name or id (default)"), N_("COLUMN") },
    G_OPTION_ENTRY_NULL
  };
  GkDatabase *db;
  int status;

  status = gk_cli_parse_options (cli, "",
                                 _("Compares the keys over the last days: requests, success, "
                                   "429 and rejected rates, p50/p95 latency of successful "
                                   "requests, tokens, cost and share of traffic."),
                                 entries, 0, 0, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;
  if (days < 1 || days > MAX_DAYS)
    return gk_cli_usage_error (cli, _("--days must be between 1 and %d"), MAX_DAYS);
  for (guint i = 0; sort != NULL && i < G_N_ELEMENTS (sort_names); i++)
    if (g_strcmp0 (sort, sort_names[i]) == 0)
      column = (int) i;
  if (sort != NULL && column < 0)
    return gk_cli_usage_error (cli, _("Unknown column for --sort: %s"), sort);

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return GK_CLI_ERROR;
  rows = gk_insights_compare_days (db, (guint) days, &error);
  if (rows == NULL)
    return gk_cli_gerror (cli, error);
  g_ptr_array_sort_with_data (rows, compare_rows, GINT_TO_POINTER (MAX (column, SORT_ID)));

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "days");
      json_builder_add_int_value (builder, days);
      gk_json_add_rows (builder, "keys", rows, (GkJsonAddRow) gk_json_add_key_comparison);
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else
    gk_cli_table_print_rows (gk_cli_table_new (_("ID"), _("NAME"), _("REQUESTS"), _("SUCCESS"),
                                               "429", _("REJECTED"), "P50", "P95", _("TOKENS"),
                                               _("COST"), _("PER 1K"), _("SHARE"), NULL),
                             rows, comparison_cells, _("No keys yet."));
  return GK_CLI_OK;
}

static const char *
window_label (const GkDepletion *d)
{
  static const char *const labels[GK_QUOTA_N_TYPES][2] = {
    [GK_QUOTA_MONTHLY] = { N_("monthly tokens"), N_("monthly requests") },
    [GK_QUOTA_DAILY] = { N_("daily tokens"), N_("daily requests") },
    [GK_QUOTA_PER_MINUTE] = { N_("tokens per minute"), N_("requests per minute") },
  };

  return _(labels[d->quota_type][d->unit]);
}

static void
depletion_cells (GkCliTable    *table,
                 gconstpointer  data)
{
  const GkDepletion *d = data;

  gk_cli_table_take_row (table,
                         g_strdup_printf ("%" PRId64, d->key_id),
                         g_strdup (d->name),
                         g_strdup (window_label (d)),
                         g_strdup_printf ("%" PRId64 " / %" PRId64, d->used_value,
                                          d->limit_value),
                         g_strdup_printf ("%.0f", d->rate_per_hour),
                         d->runs_out_at != 0 ? gk_cli_format_time (d->runs_out_at)
                                             : g_strdup (_("not before reset")),
                         gk_cli_format_time (d->reset_at));
}

static int
keys_forecast (GkCli  *cli,
               int     argc,
               char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkForecast) forecast = NULL;
  GkDatabase *db;
  int status;

  db = parse_and_open (cli,
                       _("Forecasts when each key’s quotas run out at the current "
                         "rate: an average of the last day’s use, 15 minutes at a "
                         "time with the latest weighted most, shaped by how busy "
                         "each hour of the week was in the last four weeks."),
                       NULL, NULL, &argc, &argv, &status);
  if (db == NULL)
    return status;
  forecast = gk_insights_forecast (db, &error);
  if (forecast == NULL)
    return gk_cli_gerror (cli, error);

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      gk_json_add_forecast (builder, forecast);
      gk_cli_print_json (cli, builder);
      return GK_CLI_OK;
    }
  if (!gk_cli_table_print_rows (gk_cli_table_new (_("ID"), _("NAME"), _("QUOTA"), _("USED"),
                                                  _("RATE/HOUR"), _("RUNS OUT"), _("RESETS"),
                                                  NULL),
                                forecast->windows, depletion_cells,
                                _("No key in use has a quota limit.")))
    return GK_CLI_OK;
  printf ("\n");
  printf (g_dngettext (GETTEXT_PACKAGE, "%u key will run out today.\n",
                       "%u keys will run out today.\n", forecast->keys_out_today),
          forecast->keys_out_today);
  if (forecast->pool_runs_out_at != 0)
    {
      g_autofree char *at = gk_cli_format_time (forecast->pool_runs_out_at);

      printf (_("At this rate the pool lasts until %s.\n"), at);
    }
  else if (forecast->pool_reset_at != 0)
    printf ("%s\n", _("At this rate the pool lasts until the daily reset."));
  return GK_CLI_OK;
}

static void
spike_cells (GkCliTable    *table,
             gconstpointer  data)
{
  const GkRotationSpike *s = data;

  gk_cli_table_take_row (table, gk_cli_format_time (s->hour_start),
                         s->key_id != 0
                           ? g_strdup_printf ("%s (%" PRId64 ")", s->key_name, s->key_id)
                           : g_strdup (_("all keys")),
                         g_strdup_printf ("%" PRId64, s->rotations),
                         g_strdup_printf ("%.2f", s->baseline),
                         g_strdup_printf ("%s (%" PRId64 ")",
                                          gk_key_state_get_label (
                                            gk_rotation_reason_get_state (s->dominant_reason)),
                                          s->dominant_count));
}

static int
keys_spikes (GkCli  *cli,
             int     argc,
             char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) spikes = NULL;
  int days = 7;
  const GOptionEntry entries[] = {
    { "days", 'd', 0, G_OPTION_ARG_INT, &days, N_("The last N days (default 7)"), N_("N") },
    G_OPTION_ENTRY_NULL
  };
  GkDatabase *db;
  int status;

  db = parse_and_open (cli,
                       _("Lists the hours in which a key, or the whole pool, was "
                         "rotated at least 5 times and at least 3 times as often as "
                         "in an average hour of the week before."),
                       entries, &days, &argc, &argv, &status);
  if (db == NULL)
    return status;
  spikes = gk_insights_rotation_spikes (db, gk_database_now (db) - (gint64) days * 86400, 0,
                                        &error);
  if (spikes == NULL)
    return gk_cli_gerror (cli, error);

  return gk_cli_print_rows (cli, spikes, (GkJsonAddRow) gk_json_add_rotation_spike,
                            gk_cli_table_new (_("HOUR"), _("KEY"), _("ROTATIONS"),
                                              _("BASELINE/HOUR"), _("MOSTLY"), NULL),
                            spike_cells, _("No rotation spikes."));
}

int
gk_cli_cmd_keys (GkCli  *cli,
                 int     argc,
                 char  **argv)
{
  static const GkCliCommand keys_commands[] = {
    { "compare",  keys_compare,  N_("Compare the keys over the last days") },
    { "forecast", keys_forecast, N_("Forecast when each key’s quotas run out") },
    { "spikes",   keys_spikes,   N_("List the hours with unusually many rotations") },
    { NULL, NULL, NULL },
  };

  return gk_cli_dispatch (cli, "keys", keys_commands, argc, argv);
}
