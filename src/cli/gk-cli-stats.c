/* gk-cli-stats.c: `usage`, `rotations`, `dashboard` and `export`: the logs
 * and figures, read without the master key.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gi18n.h>
#include <math.h>
#include <glib/gstdio.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gk-cli.h"

#define DEFAULT_LIMIT 50
#define MAX_LIMIT     100000
/* Rows read per query when exporting the whole log. */
#define EXPORT_PAGE   5000

/* The usage log's columns, in CSV and JSON alike. */
static const char *const usage_columns[] = {
  "id", "key_id", "key_name", "model", "tokens_used", "prompt_tokens", "output_tokens",
  "cost_usd", "priced", "status", "http_status", "error_message", "user_id", "latency_ms",
  "created_at",
};

static const char *const rotation_columns[] = {
  "id", "from_key_id", "from_key_name", "to_key_id", "to_key_name", "reason", "triggered_by",
  "created_at",
};

static const char *const audit_columns[] = {
  "id", "created_at", "actor", "action", "target_id", "target", "summary",
};

static const char *const key_columns[] = {
  "id", "name", "key_hint", "project", "status", "priority", "is_default",
  "monthly_budget_usd", "month_cost_usd", "created_at", "last_used_at",
  "monthly_tokens_limit", "monthly_tokens_used", "daily_tokens_limit", "daily_tokens_used",
  "minute_tokens_limit", "minute_tokens_used", "daily_requests_limit", "daily_requests_used",
  "minute_requests_limit", "minute_requests_used",
};

static int
check_limit (GkCli *cli,
             int    limit)
{
  if (limit < 1 || limit > MAX_LIMIT)
    return gk_cli_usage_error (cli, _("--limit must be between 1 and %d"), MAX_LIMIT);
  return GK_CLI_OK;
}

/* ISO 8601 in UTC for files other programs read; empty for "never". */
static char *
csv_time (gint64 unix_time)
{
  g_autoptr(GDateTime) utc = NULL;

  if (unix_time <= 0)
    return g_strdup ("");
  utc = g_date_time_new_from_unix_utc (unix_time);
  return utc ? g_date_time_format (utc, "%Y-%m-%dT%H:%M:%SZ") : g_strdup ("");
}

/* Dollars for people: four decimals, more for the fractions of a cent a
 * single request usually costs, so they do not read as free. */
static char *
format_cost (double value)
{
  if (value > 0 && value < 0.01)
    return g_strdup_printf ("$%.6f", value);
  return g_strdup_printf ("$%.4f", value);
}

static char *
format_int (gint64 value)
{
  return g_strdup_printf ("%" PRId64, value);
}

static char *
format_double (double value)
{
  char buffer[G_ASCII_DTOSTR_BUF_SIZE];

  /* Locale-independent: a CSV must not get decimal commas. */
  return g_strdup (g_ascii_formatd (buffer, sizeof buffer, "%.6f", value));
}

static void
csv_header (GString           *out,
            const char *const *columns,
            gsize              n_columns)
{
  for (gsize i = 0; i < n_columns; i++)
    gk_cli_csv_append (out, columns[i], i + 1 == n_columns);
}

static void
usage_row_csv (GString          *out,
               const GkUsageRow *row)
{
  g_autofree char *id = format_int (row->id);
  g_autofree char *key_id = row->key_id > 0 ? format_int (row->key_id) : NULL;
  g_autofree char *tokens = format_int (row->tokens_used);
  g_autofree char *prompt = format_int (row->prompt_tokens);
  g_autofree char *output = format_int (row->output_tokens);
  g_autofree char *cost = format_double (row->cost_usd);
  g_autofree char *http = row->http_status > 0 ? format_int (row->http_status) : NULL;
  g_autofree char *latency = format_int (row->latency_ms);
  g_autofree char *created = csv_time (row->created_at);

  gk_cli_csv_append (out, id, FALSE);
  gk_cli_csv_append (out, key_id, FALSE);
  gk_cli_csv_append (out, row->key_name, FALSE);
  gk_cli_csv_append (out, row->model, FALSE);
  gk_cli_csv_append (out, tokens, FALSE);
  gk_cli_csv_append (out, prompt, FALSE);
  gk_cli_csv_append (out, output, FALSE);
  gk_cli_csv_append (out, cost, FALSE);
  gk_cli_csv_append (out, row->priced ? "1" : "0", FALSE);
  gk_cli_csv_append (out, gk_usage_status_to_string (row->status), FALSE);
  gk_cli_csv_append (out, http, FALSE);
  gk_cli_csv_append (out, row->error_message, FALSE);
  gk_cli_csv_append (out, row->user_id, FALSE);
  gk_cli_csv_append (out, latency, FALSE);
  gk_cli_csv_append (out, created, TRUE);
}

static void
rotation_row_csv (GString             *out,
                  const GkRotationRow *row)
{
  g_autofree char *id = format_int (row->id);
  g_autofree char *from = format_int (row->from_key_id);
  g_autofree char *to = row->to_key_id > 0 ? format_int (row->to_key_id) : NULL;
  g_autofree char *created = csv_time (row->created_at);

  gk_cli_csv_append (out, id, FALSE);
  gk_cli_csv_append (out, from, FALSE);
  gk_cli_csv_append (out, row->from_key_name, FALSE);
  gk_cli_csv_append (out, to, FALSE);
  gk_cli_csv_append (out, row->to_key_name, FALSE);
  gk_cli_csv_append (out, gk_rotation_reason_to_string (row->reason), FALSE);
  gk_cli_csv_append (out, row->triggered_by, FALSE);
  gk_cli_csv_append (out, created, TRUE);
}

static void
audit_row_csv (GString          *out,
               const GkAuditRow *row)
{
  g_autofree char *id = format_int (row->id);
  g_autofree char *created = csv_time (row->created_at);
  g_autofree char *target_id = row->target_id > 0 ? format_int (row->target_id) : NULL;

  gk_cli_csv_append (out, id, FALSE);
  gk_cli_csv_append (out, created, FALSE);
  gk_cli_csv_append (out, row->actor, FALSE);
  gk_cli_csv_append (out, gk_audit_action_to_string (row->action), FALSE);
  gk_cli_csv_append (out, target_id, FALSE);
  gk_cli_csv_append (out, row->target, FALSE);
  gk_cli_csv_append (out, row->summary, TRUE);
}

static void
key_row_csv (GString     *out,
             const GkKey *key)
{
  g_autofree char *id = format_int (key->id);
  g_autofree char *priority = format_int (key->priority);
  g_autofree char *budget = key->monthly_budget_usd >= 0
                              ? format_double (key->monthly_budget_usd)
                              : NULL;
  g_autofree char *cost = format_double (key->month_cost_usd);
  g_autofree char *created = csv_time (key->created_at);
  g_autofree char *last_used = csv_time (key->last_used_at);

  gk_cli_csv_append (out, id, FALSE);
  gk_cli_csv_append (out, key->name, FALSE);
  gk_cli_csv_append (out, key->key_hint, FALSE);
  gk_cli_csv_append (out, key->project, FALSE);
  gk_cli_csv_append (out, gk_key_status_to_string (key->status), FALSE);
  gk_cli_csv_append (out, priority, FALSE);
  gk_cli_csv_append (out, key->is_default ? "1" : "0", FALSE);
  gk_cli_csv_append (out, budget, FALSE);
  gk_cli_csv_append (out, cost, FALSE);
  gk_cli_csv_append (out, created, FALSE);
  gk_cli_csv_append (out, last_used, FALSE);
  for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
    {
      g_autofree char *limit = format_int (key->quotas[i].limit_value);
      g_autofree char *used = format_int (key->quotas[i].used_value);

      gk_cli_csv_append (out, limit, FALSE);
      gk_cli_csv_append (out, used, i + 1 == GK_QUOTA_N_SLOTS);
    }
}

int
gk_cli_cmd_usage (GkCli  *cli,
                  int     argc,
                  char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  gint64 key_id = 0;
  int limit = DEFAULT_LIMIT;
  gboolean csv = FALSE;
  const GOptionEntry entries[] = {
    { "key", 'k', 0, G_OPTION_ARG_INT64, &key_id, N_("Only this key’s rows"), N_("ID") },
    { "limit", 'n', 0, G_OPTION_ARG_INT, &limit, N_("How many rows (default 50)"), N_("N") },
    { "csv", 0, 0, G_OPTION_ARG_NONE, &csv, N_("Print CSV"), NULL },
    G_OPTION_ENTRY_NULL
  };
  GkUsageSummary summary = { 0 };
  GkDatabase *db;
  int status;

  status = gk_cli_parse_options (cli, "", _("Shows the usage log, newest first."), entries,
                                 0, 0, &argc, &argv);
  if (status == GK_CLI_OK)
    status = check_limit (cli, limit);
  if (status == GK_CLI_OK && key_id < 0)
    status = gk_cli_usage_error (cli, _("--key needs a positive id"));
  if (status == GK_CLI_OK && csv && gk_cli_json (cli))
    status = gk_cli_usage_error (cli, _("--csv and --json cannot be used together"));
  if (status != GK_CLI_OK)
    return status;

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return GK_CLI_ERROR;

  rows = gk_stats_usage_logs (db, key_id, (guint) limit, 0, &error);
  if (rows == NULL)
    return gk_cli_gerror (cli, error);

  if (csv)
    {
      g_autoptr(GString) out = g_string_new (NULL);

      csv_header (out, usage_columns, G_N_ELEMENTS (usage_columns));
      for (guint i = 0; i < rows->len; i++)
        usage_row_csv (out, rows->pdata[i]);
      fwrite (out->str, 1, out->len, stdout);
    }
  else if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_array (builder);
      for (guint i = 0; i < rows->len; i++)
        gk_json_add_usage_row (builder, rows->pdata[i]);
      json_builder_end_array (builder);
      gk_cli_print_json (cli, builder);
    }
  else if (rows->len == 0)
    printf ("%s\n", _("No usage recorded yet."));
  else
    {
      g_autoptr(GkCliTable) table = gk_cli_table_new (_("ID"), _("TIME"), _("KEY"), _("MODEL"),
                                                      _("TOKENS"), _("COST"), _("STATUS"),
                                                      _("USER"), NULL);

      for (guint i = 0; i < rows->len; i++)
        {
          const GkUsageRow *row = rows->pdata[i];
          g_autofree char *id = format_int (row->id);
          g_autofree char *time = gk_cli_format_time (row->created_at);
          g_autofree char *tokens = format_int (row->tokens_used);
          g_autofree char *cost = row->priced ? format_cost (row->cost_usd)
                                              : g_strdup (_("unpriced"));

          gk_cli_table_add_row (table, id, time, row->key_name, row->model, tokens, cost,
                                gk_usage_status_to_string (row->status), row->user_id);
        }
      gk_cli_table_print (table);

      if (gk_stats_usage_summary (db, key_id, (guint) limit, &summary, NULL))
        {
          g_autofree char *cost = format_cost (summary.cost_usd);

          printf ("\n");
          printf (_("Requests: %" PRId64 " (%" PRId64 " succeeded, %" PRId64 " failed), "
                    "cost %s\n"),
                  summary.requests, summary.successes, summary.failures, cost);
        }
    }
  return GK_CLI_OK;
}

int
gk_cli_cmd_rotations (GkCli  *cli,
                      int     argc,
                      char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  int limit = DEFAULT_LIMIT;
  const GOptionEntry entries[] = {
    { "limit", 'n', 0, G_OPTION_ARG_INT, &limit, N_("How many rows (default 50)"), N_("N") },
    G_OPTION_ENTRY_NULL
  };
  GkDatabase *db;
  gint64 all = 0, manual = 0, automatic = 0;
  int status;

  status = gk_cli_parse_options (cli, "", _("Shows the rotation log, newest first."), entries,
                                 0, 0, &argc, &argv);
  if (status == GK_CLI_OK)
    status = check_limit (cli, limit);
  if (status != GK_CLI_OK)
    return status;

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return GK_CLI_ERROR;

  rows = gk_stats_rotation_logs (db, (guint) limit, &error);
  if (rows == NULL)
    return gk_cli_gerror (cli, error);

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_array (builder);
      for (guint i = 0; i < rows->len; i++)
        gk_json_add_rotation_row (builder, rows->pdata[i]);
      json_builder_end_array (builder);
      gk_cli_print_json (cli, builder);
    }
  else if (rows->len == 0)
    printf ("%s\n", _("No rotations yet."));
  else
    {
      g_autoptr(GkCliTable) table = gk_cli_table_new (_("ID"), _("TIME"), _("FROM"), _("TO"),
                                                      _("REASON"), _("BY"), _("SPIKE"), NULL);

      for (guint i = 0; i < rows->len; i++)
        {
          const GkRotationRow *row = rows->pdata[i];
          g_autofree char *id = format_int (row->id);
          g_autofree char *time = gk_cli_format_time (row->created_at);
          g_autofree char *from = g_strdup_printf ("%s (%" PRId64 ")",
                                                   row->from_key_name ? row->from_key_name : "",
                                                   row->from_key_id);
          g_autofree char *to = row->to_key_id > 0
                                  ? g_strdup_printf ("%s (%" PRId64 ")",
                                                     row->to_key_name ? row->to_key_name : "",
                                                     row->to_key_id)
                                  : g_strdup (_("none"));

          gk_cli_table_add_row (table, id, time, from, to,
                                gk_key_state_get_label (gk_rotation_reason_get_state (row->reason)),
                                row->triggered_by,
                                /* TRANSLATORS: marks a rotation in an hour with unusually
                                 * many (see `keys spikes`). */
                                row->in_spike ? _("spike") : "");
        }
      gk_cli_table_print (table);

      if (gk_stats_rotation_totals (db, &all, &manual, &automatic, NULL))
        {
          printf ("\n");
          printf (_("Rotations: %" PRId64 " (%" PRId64 " manual, %" PRId64 " automatic)\n"),
                  all, manual, automatic);
        }
    }
  return GK_CLI_OK;
}

int
gk_cli_cmd_audit (GkCli  *cli,
                  int     argc,
                  char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  int limit = DEFAULT_LIMIT;
  const GOptionEntry entries[] = {
    { "limit", 'n', 0, G_OPTION_ARG_INT, &limit, N_("How many rows (default 50)"), N_("N") },
    G_OPTION_ENTRY_NULL
  };
  GkDatabase *db;
  int status;

  status = gk_cli_parse_options (cli, "",
                                 _("Shows the audit log (who changed what), newest first."),
                                 entries, 0, 0, &argc, &argv);
  if (status == GK_CLI_OK)
    status = check_limit (cli, limit);
  if (status != GK_CLI_OK)
    return status;

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return GK_CLI_ERROR;

  rows = gk_audit_list (db, (guint) limit, 0, &error);
  if (rows == NULL)
    return gk_cli_gerror (cli, error);

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_array (builder);
      for (guint i = 0; i < rows->len; i++)
        gk_json_add_audit_row (builder, rows->pdata[i]);
      json_builder_end_array (builder);
      gk_cli_print_json (cli, builder);
    }
  else if (rows->len == 0)
    printf ("%s\n", _("No actions recorded yet."));
  else
    {
      g_autoptr(GkCliTable) table = gk_cli_table_new (_("ID"), _("TIME"), _("BY"), _("ACTION"),
                                                      _("TARGET"), _("DETAILS"), NULL);

      for (guint i = 0; i < rows->len; i++)
        {
          const GkAuditRow *row = rows->pdata[i];
          g_autofree char *id = format_int (row->id);
          g_autofree char *time = gk_cli_format_time (row->created_at);

          gk_cli_table_add_row (table, id, time, row->actor,
                                gk_audit_action_get_label (row->action),
                                row->target ? row->target : "",
                                row->summary ? row->summary : "");
        }
      gk_cli_table_print (table);
    }
  return GK_CLI_OK;
}

static void
print_dashboard_json (GkCli             *cli,
                      const GkDashboard *d)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();

  gk_json_add_dashboard (builder, d);
  gk_cli_print_json (cli, builder);
}

static void
print_rank_table (const char *title,
                  const char *name_header,
                  GPtrArray  *rows)
{
  g_autoptr(GkCliTable) table = NULL;

  printf ("\n%s\n", title);
  if (rows == NULL || rows->len == 0)
    {
      printf ("  %s\n", _("none"));
      return;
    }

  table = gk_cli_table_new (name_header, _("REQUESTS"), _("TOKENS"), _("COST"), NULL);
  for (guint i = 0; i < rows->len; i++)
    {
      const GkRankRow *row = rows->pdata[i];
      g_autofree char *requests = format_int (row->requests);
      g_autofree char *tokens = format_int (row->tokens);
      g_autofree char *cost = format_cost (row->cost_usd);

      gk_cli_table_add_row (table, row->name ? row->name : _("(none)"), requests, tokens, cost);
    }
  gk_cli_table_print (table);
}

/* "$12.0000 (of $100.00, 12%)", or the amount alone without a budget. */
static char *
format_against_budget (double spent,
                       double budget)
{
  g_autofree char *amount = format_cost (spent);

  if (budget < 0)
    return g_steal_pointer (&amount);
  /* Translators: spend against a budget: "$12.0000 (of $100.00, 12%)". */
  return g_strdup_printf (_("%s (of $%.2f, %.0f%%)"), amount, budget,
                          gk_spend_percent (spent, budget));
}

static void
print_spend (const GkSpend *spend)
{
  g_autoptr(GkCliTable) table = NULL;
  g_autofree char *today = format_cost (spend->today_usd);
  g_autofree char *month = format_against_budget (spend->month_usd, spend->pool_budget_usd);

  printf (_("Spent today:   %s\n"), today);
  printf (_("This month:    %s\n"), month);
  if (spend->pool_budget_usd < 0)
    printf ("%s\n", _("No budget for the whole pool (gemini-keysctl budget --set USD)."));
  if (spend->keys->len == 0)
    return;
  table = gk_cli_table_new (_("KEY"), _("TODAY"), _("THIS MONTH"), NULL);
  for (guint i = 0; i < spend->keys->len; i++)
    {
      const GkKeySpend *key = g_ptr_array_index (spend->keys, i);
      g_autofree char *key_today = format_cost (key->today_usd);
      g_autofree char *key_month = format_against_budget (key->month_usd, key->budget_usd);

      gk_cli_table_add_row (table, key->key_name, key_today, key_month);
    }
  printf ("\n");
  gk_cli_table_print (table);
}

int
gk_cli_cmd_budget (GkCli  *cli,
                   int     argc,
                   char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkSpend) spend = NULL;
  g_autofree char *set = NULL;
  gboolean clear = FALSE;
  const GOptionEntry entries[] = {
    { "set", 0, 0, G_OPTION_ARG_STRING, &set,
      N_("Set the pool’s monthly budget to USD dollars"), N_("USD") },
    { "clear", 0, 0, G_OPTION_ARG_NONE, &clear, N_("Remove the pool’s budget"), NULL },
    G_OPTION_ENTRY_NULL
  };
  GkDatabase *db;
  double usd = -1;
  int status;

  status = gk_cli_parse_options (cli, "",
                                 _("Shows today’s and this month’s spend, in total and per "
                                   "key, and sets the monthly budget of the whole pool: when "
                                   "the keys together have spent it, no key is used until the "
                                   "month resets."),
                                 entries, 0, 0, &argc, &argv);
  if (status == GK_CLI_OK && set != NULL && clear)
    status = gk_cli_usage_error (cli, _("Use either --set or --clear"));
  if (status == GK_CLI_OK && set != NULL)
    {
      char *end = NULL;

      usd = g_ascii_strtod (set, &end);
      if (end == set || *end != '\0' || !isfinite (usd) || usd < 0)
        status = gk_cli_usage_error (cli, _("--set needs a number of US dollars, 0 or more"));
    }
  if (status != GK_CLI_OK)
    return status;

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return GK_CLI_ERROR;
  if ((set != NULL || clear) && !gk_spend_set_pool_budget (db, clear ? -1 : usd, &error))
    return gk_cli_gerror (cli, error);

  spend = gk_spend_read (db, &error);
  if (spend == NULL)
    return gk_cli_gerror (cli, error);
  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      gk_json_add_spend (builder, spend);
      gk_cli_print_json (cli, builder);
    }
  else
    print_spend (spend);
  return GK_CLI_OK;
}

int
gk_cli_cmd_hygiene (GkCli  *cli,
                    int     argc,
                    char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) stale = NULL;
  int unused_days = 0;
  const GOptionEntry entries[] = {
    { "unused-days", 0, 0, G_OPTION_ARG_INT, &unused_days,
      N_("List keys not used for N days (default 30; kept as a setting)"), N_("N") },
    G_OPTION_ENTRY_NULL
  };
  GkMasterKeyAge age;
  GkDatabase *db;
  int status;

  status = gk_cli_parse_options (cli, "",
                                 _("Lists the keys worth deleting (unused for a while, or "
                                   "rejected by Google) and how old the master key is."),
                                 entries, 0, 0, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;
  db = gk_cli_get_database (cli);
  if (db == NULL)
    return GK_CLI_ERROR;
  if (unused_days != 0 && !gk_hygiene_set_unused_days (db, (guint) MAX (unused_days, 0), &error))
    return gk_cli_usage_error (cli, "%s", error->message);

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      if (!gk_json_add_hygiene (builder, db, &error))
        return gk_cli_gerror (cli, error);
      gk_cli_print_json (cli, builder);
      return GK_CLI_OK;
    }

  stale = gk_hygiene_stale_keys (db, &error);
  if (stale == NULL || !gk_hygiene_master_key_age (db, &age, &error))
    return gk_cli_gerror (cli, error);
  if (stale->len == 0)
    printf (_("No key to delete: every key was used in the last %u days.\n"),
            gk_hygiene_get_unused_days (db));
  else
    {
      g_autoptr(GkCliTable) table = gk_cli_table_new (_("ID"), _("NAME"), _("WHY"), NULL);

      printf ("%s\n", _("Consider deleting (gemini-keysctl key delete ID):"));
      for (guint i = 0; i < stale->len; i++)
        {
          const GkStaleKey *key = g_ptr_array_index (stale, i);
          g_autofree char *id = format_int (key->key_id);
          g_autofree char *why = gk_stale_key_describe (key);

          gk_cli_table_add_row (table, id, key->name, why);
        }
      gk_cli_table_print (table);
    }
  printf ("\n");
  if (age.created_at == 0)
    printf ("%s\n", _("Master key: no key stored yet."));
  else
    {
      g_autofree char *created = gk_cli_format_time (age.created_at);

      if (age.estimated)
        printf (_("Master key: at most %d days old (the oldest key was added %s).\n"),
                (int) age.age_days, created);
      else
        printf (_("Master key: %d days old (made %s).\n"), (int) age.age_days, created);
      if (age.rotate_due)
        printf (_("Rotate it (gemini-keysctl master-key rotate): it is older than %d days.\n"),
                GK_MASTER_KEY_MAX_AGE_DAYS);
    }
  return GK_CLI_OK;
}

static void
print_dashboard (const GkDashboard *d)
{
  g_autoptr(GkCliTable) daily = NULL;
  g_autofree char *total_cost = format_cost (d->cards.cost_usd);
  g_autofree char *states = gk_key_state_format_counts (d->cards.keys_by_state);

  printf (_("Keys:          %" PRId64 " (%s)\n"), d->cards.total_keys, states);
  printf (_("Requests:      %" PRId64 " in %u days\n"), d->cards.requests, d->days);
  printf (_("Success rate:  %.1f%%\n"), d->cards.success_rate);
  printf (_("Cost:          %s\n"), total_cost);
  if (d->spend != NULL)
    print_spend (d->spend);

  printf ("\n%s\n", _("Daily requests"));
  daily = gk_cli_table_new (_("DAY"), _("REQUESTS"), _("SUCCESSES"), _("COST"), NULL);
  for (guint i = 0; d->daily != NULL && i < d->daily->len; i++)
    {
      const GkDailyPoint *p = &g_array_index (d->daily, GkDailyPoint, i);
      g_autoptr(GDateTime) utc = g_date_time_new_from_unix_utc (p->day_start);
      g_autoptr(GDateTime) local = utc ? g_date_time_to_local (utc) : NULL;
      g_autofree char *day = local ? g_date_time_format (local, "%Y-%m-%d") : g_strdup ("?");
      g_autofree char *requests = format_int (p->requests);
      g_autofree char *successes = format_int (p->successes);
      g_autofree char *cost = format_cost (p->cost_usd);

      gk_cli_table_add_row (daily, day, requests, successes, cost);
    }
  gk_cli_table_print (daily);

  print_rank_table (_("Top models"), _("MODEL"), d->top_models);
  print_rank_table (_("Top users"), _("USER"), d->top_users);

  printf ("\n%s\n", _("Latest rotations"));
  if (d->rotations == NULL || d->rotations->len == 0)
    printf ("  %s\n", _("none"));
  else
    {
      g_autoptr(GkCliTable) table = gk_cli_table_new (_("TIME"), _("FROM"), _("TO"),
                                                      _("REASON"), _("BY"), NULL);

      for (guint i = 0; i < d->rotations->len; i++)
        {
          const GkRotationRow *row = d->rotations->pdata[i];
          g_autofree char *time = gk_cli_format_time (row->created_at);

          gk_cli_table_add_row (table, time, row->from_key_name,
                                row->to_key_id > 0 ? row->to_key_name : _("none"),
                                gk_key_state_get_label (gk_rotation_reason_get_state (row->reason)),
                                row->triggered_by);
        }
      gk_cli_table_print (table);
    }
}

int
gk_cli_cmd_dashboard (GkCli  *cli,
                      int     argc,
                      char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDashboard) dashboard = NULL;
  int days = 7;
  const GOptionEntry entries[] = {
    { "days", 'd', 0, G_OPTION_ARG_INT, &days, N_("7 or 30 (default 7)"), N_("DAYS") },
    G_OPTION_ENTRY_NULL
  };
  GkDatabase *db;
  int status;

  status = gk_cli_parse_options (cli, "", _("Shows the dashboard’s figures."), entries,
                                 0, 0, &argc, &argv);
  if (status == GK_CLI_OK && days != 7 && days != 30)
    status = gk_cli_usage_error (cli, _("--days must be 7 or 30"));
  if (status != GK_CLI_OK)
    return status;

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return GK_CLI_ERROR;

  dashboard = gk_stats_dashboard (db, (guint) days, &error);
  if (dashboard == NULL)
    return gk_cli_gerror (cli, error);

  if (gk_cli_json (cli))
    print_dashboard_json (cli, dashboard);
  else
    print_dashboard (dashboard);
  return GK_CLI_OK;
}

/* Where an export goes: a temporary file next to the target (0600),
 * renamed over it once complete, or standard output. Output is written as
 * it is produced, in blocks, so memory stays constant. */
typedef struct
{
  FILE    *file;
  char    *path;        /* the target, or NULL for standard output */
  char    *tmp_path;
  GString *buffer;
  int      write_errno;
} ExportSink;

#define EXPORT_FLUSH_BYTES (256 * 1024)

static gboolean
export_sink_open (ExportSink  *sink,
                  const char  *path,
                  GError     **error)
{
  memset (sink, 0, sizeof *sink);
  sink->buffer = g_string_sized_new (EXPORT_FLUSH_BYTES + 4096);
  if (g_str_equal (path, "-"))
    {
      sink->file = stdout;
      return TRUE;
    }

  {
    int fd;

    sink->path = g_strdup (path);
    sink->tmp_path = g_strdup_printf ("%s.XXXXXX", path);
    fd = g_mkstemp_full (sink->tmp_path, O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0)
      {
        int errsv = errno;
        g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errsv),
                     _("Cannot write “%s”: %s"), path, g_strerror (errsv));
        g_clear_pointer (&sink->tmp_path, g_free);
        return FALSE;
      }
    sink->file = fdopen (fd, "w");
    g_assert (sink->file != NULL);
  }
  return TRUE;
}

static void
export_sink_flush (ExportSink *sink)
{
  if (sink->buffer->len > 0 && sink->write_errno == 0
      && fwrite (sink->buffer->str, 1, sink->buffer->len, sink->file) != sink->buffer->len)
    sink->write_errno = errno != 0 ? errno : EIO;
  g_string_truncate (sink->buffer, 0);
}

static void
export_sink_maybe_flush (ExportSink *sink)
{
  if (sink->buffer->len >= EXPORT_FLUSH_BYTES)
    export_sink_flush (sink);
}

/* Finishes the export: on success the file takes its final name. */
static gboolean
export_sink_close (ExportSink  *sink,
                   gboolean     ok,
                   GError     **error)
{
  export_sink_flush (sink);
  g_string_free (sink->buffer, TRUE);
  if (ok && sink->write_errno == 0 && fflush (sink->file) != 0)
    sink->write_errno = errno;
  if (sink->path == NULL)
    return ok;

  if (ok && sink->write_errno == 0 && fsync (fileno (sink->file)) != 0)
    sink->write_errno = errno;
  fclose (sink->file);
  if (ok && sink->write_errno == 0 && g_rename (sink->tmp_path, sink->path) != 0)
    sink->write_errno = errno;
  if (ok && sink->write_errno != 0)
    {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (sink->write_errno),
                   _("Cannot write “%s”: %s"), sink->path, g_strerror (sink->write_errno));
      ok = FALSE;
    }
  if (!ok)
    g_unlink (sink->tmp_path);
  g_free (sink->tmp_path);
  g_free (sink->path);
  return ok;
}

/* A UTC time as ISO 8601 ("2026-03-15T12:00:00Z"), formatted without
 * GDateTime: the export writes a million of them. */
static void
append_csv_time (GString *out,
                 gint64   unix_time)
{
  struct tm tm;
  time_t t = (time_t) unix_time;
  char buffer[32];

  if (unix_time <= 0 || gmtime_r (&t, &tm) == NULL)
    return;
  g_string_append_len (out, buffer,
                       (gssize) strftime (buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm));
}

static void
append_int_field (GString *out,
                  gint64   value)
{
  g_string_append_printf (out, "%" PRId64 ",", value);
}

/* One usage row, the same text as usage_row_csv() writes, appended
 * directly (no string per field). */
static void
export_usage_row (const GkUsageRow *row,
                  gpointer          user_data)
{
  ExportSink *sink = user_data;
  GString *out = sink->buffer;
  char cost[G_ASCII_DTOSTR_BUF_SIZE];

  append_int_field (out, row->id);
  append_int_field (out, row->key_id);
  gk_cli_csv_append (out, row->key_name, FALSE);
  gk_cli_csv_append (out, row->model, FALSE);
  append_int_field (out, row->tokens_used);
  append_int_field (out, row->prompt_tokens);
  append_int_field (out, row->output_tokens);
  g_string_append (out, g_ascii_formatd (cost, sizeof cost, "%.6f", row->cost_usd));
  g_string_append (out, row->priced ? ",1," : ",0,");
  g_string_append (out, gk_usage_status_to_string (row->status));
  g_string_append_c (out, ',');
  if (row->http_status > 0)
    g_string_append_printf (out, "%d", row->http_status);
  g_string_append_c (out, ',');
  gk_cli_csv_append (out, row->error_message, FALSE);
  gk_cli_csv_append (out, row->user_id, FALSE);
  append_int_field (out, row->latency_ms);
  append_csv_time (out, row->created_at);
  g_string_append (out, "\r\n");
  export_sink_maybe_flush (sink);
}

/* The whole usage log, newest first, a page at a time by id (never by
 * OFFSET, which would re-read every row skipped). Rows recorded while the
 * export runs have higher ids than its first page and are left out. */
static gboolean
export_usage (GkDatabase  *db,
              ExportSink  *sink,
              guint       *n_rows,
              GError     **error)
{
  gint64 before = G_MAXINT64;

  gk_database_stop_mmap (db);
  csv_header (sink->buffer, usage_columns, G_N_ELEMENTS (usage_columns));
  for (;;)
    {
      gint64 n = gk_stats_usage_page (db, before, EXPORT_PAGE, export_usage_row, sink, &before,
                                      error);

      if (n < 0)
        return FALSE;
      *n_rows += (guint) n;
      if (sink->write_errno != 0 || n < EXPORT_PAGE)
        return TRUE;
    }
}

static gboolean
export_rotations (GkDatabase  *db,
                  GString     *out,
                  guint       *n_rows,
                  GError     **error)
{
  g_autoptr(GPtrArray) rows = NULL;
  gint64 all = 0, manual = 0, automatic = 0;

  if (!gk_stats_rotation_totals (db, &all, &manual, &automatic, error))
    return FALSE;
  rows = gk_stats_rotation_logs (db, (guint) MAX (all, 1), error);
  if (rows == NULL)
    return FALSE;

  csv_header (out, rotation_columns, G_N_ELEMENTS (rotation_columns));
  for (guint i = 0; i < rows->len; i++)
    rotation_row_csv (out, rows->pdata[i]);
  *n_rows = rows->len;
  return TRUE;
}

static gboolean
export_audit (GkDatabase  *db,
              GString     *out,
              guint       *n_rows,
              GError     **error)
{
  g_autoptr(GPtrArray) rows = NULL;
  gint64 count = gk_audit_count (db, error);

  if (count < 0)
    return FALSE;
  rows = gk_audit_list (db, (guint) MIN (count, G_MAXUINT), 0, error);
  if (rows == NULL)
    return FALSE;

  csv_header (out, audit_columns, G_N_ELEMENTS (audit_columns));
  for (guint i = 0; i < rows->len; i++)
    audit_row_csv (out, rows->pdata[i]);
  *n_rows = rows->len;
  return TRUE;
}

static gboolean
export_keys (GkKeyStore  *store,
             GString     *out,
             guint       *n_rows,
             GError     **error)
{
  g_autoptr(GPtrArray) keys = gk_key_store_list (store, error);

  if (keys == NULL)
    return FALSE;

  csv_header (out, key_columns, G_N_ELEMENTS (key_columns));
  for (guint i = 0; i < keys->len; i++)
    key_row_csv (out, keys->pdata[i]);
  *n_rows = keys->len;
  return TRUE;
}

int
gk_cli_cmd_export (GkCli  *cli,
                   int     argc,
                   char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  g_autofree char *xlsx_path = NULL;
  g_autofree char *what = NULL;
  const GOptionEntry entries[] = {
    { "csv", 0, 0, G_OPTION_ARG_FILENAME, &path,
      N_("Write CSV to FILE (“-” for standard output)"), N_("FILE") },
    { "xlsx", 0, 0, G_OPTION_ARG_FILENAME, &xlsx_path,
      N_("Write an Excel workbook (.xlsx) to FILE"), N_("FILE") },
    { "table", 0, 0, G_OPTION_ARG_STRING, &what,
      N_("usage (default), rotations, audit or keys (masked)"), N_("TABLE") },
    G_OPTION_ENTRY_NULL
  };
  GkDatabase *db;
  GkKeyStore *store = NULL;
  ExportSink sink;
  guint n_rows = 0;
  gboolean ok;
  int status;

  status = gk_cli_parse_options (cli, "",
                                 _("Exports the whole usage log (or the rotation log, the audit "
                                   "log or the keys, masked) as CSV or as an Excel workbook."),
                                 entries, 0, 0, &argc, &argv);
  if (status == GK_CLI_OK && (path == NULL) == (xlsx_path == NULL))
    status = gk_cli_usage_error (cli, _("“export” needs either --csv FILE or --xlsx FILE"));
  if (status == GK_CLI_OK && what != NULL && !g_str_equal (what, "usage") &&
      !g_str_equal (what, "rotations") && !g_str_equal (what, "audit") &&
      !g_str_equal (what, "keys"))
    status = gk_cli_usage_error (cli,
                                 _("Unknown table “%s”: use usage, rotations, audit or keys"),
                                 what);
  if (status != GK_CLI_OK)
    return status;

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return GK_CLI_ERROR;

  /* Written by rename over the target: over the database itself, that
   * would destroy it under every connection. */
  if (xlsx_path != NULL && gk_database_is_own_file (db, xlsx_path))
    return gk_cli_error (cli, _("“%s” is the database itself: export to another file."),
                         xlsx_path);
  if (path != NULL && !g_str_equal (path, "-") && gk_database_is_own_file (db, path))
    return gk_cli_error (cli, _("“%s” is the database itself: export to another file."), path);

  /* Listing keys goes through the key store, which needs the master key. */
  if (what != NULL && g_str_equal (what, "keys"))
    {
      store = gk_cli_get_key_store (cli);
      if (store == NULL)
        return GK_CLI_ERROR;
    }

  if (xlsx_path != NULL)
    {
      guint64 n = 0;

      if (what == NULL || g_str_equal (what, "usage"))
        {
          gk_database_stop_mmap (db);
          ok = gk_export_usage_xlsx (db, NULL, xlsx_path, NULL, NULL, NULL, &n, &error);
        }
      else if (g_str_equal (what, "rotations"))
        ok = gk_export_rotations_xlsx (db, xlsx_path, &n, &error);
      else if (g_str_equal (what, "audit"))
        ok = gk_export_audit_xlsx (db, xlsx_path, &n, &error);
      else
        ok = gk_export_keys_xlsx (store, xlsx_path, &n, &error);
      if (!ok)
        return gk_cli_gerror (cli, error);
      n_rows = (guint) MIN (n, G_MAXUINT);
      path = g_steal_pointer (&xlsx_path);
    }
  else
    {
      if (!export_sink_open (&sink, path, &error))
        return gk_cli_gerror (cli, error);
      if (what == NULL || g_str_equal (what, "usage"))
        ok = export_usage (db, &sink, &n_rows, &error);
      else if (g_str_equal (what, "rotations"))
        ok = export_rotations (db, sink.buffer, &n_rows, &error);
      else if (g_str_equal (what, "audit"))
        ok = export_audit (db, sink.buffer, &n_rows, &error);
      else
        ok = export_keys (store, sink.buffer, &n_rows, &error);
      if (!export_sink_close (&sink, ok, ok ? &error : NULL) ||
          !gk_audit_record_export (db, what != NULL ? what : "usage", path, n_rows, &error))
        return gk_cli_gerror (cli, error);
    }

  if (g_str_equal (path, "-"))
    return GK_CLI_OK;

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      gk_json_add_string (builder, "file", path);
      gk_json_add_int (builder, "rows", n_rows);
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else
    printf (ngettext ("Exported %u row to %s\n", "Exported %u rows to %s\n", n_rows),
            n_rows, path);
  return GK_CLI_OK;
}
