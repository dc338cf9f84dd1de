/* gk-cli-stats.c: `usage`, `rotations`, `dashboard` and `export`: the logs
 * and figures, read without the master key.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "gk-cli.h"

#define DEFAULT_LIMIT 50
#define MAX_LIMIT     100000

static int
check_limit (GkCli *cli,
             int    limit)
{
  if (limit < 1 || limit > MAX_LIMIT)
    return gk_cli_usage_error (cli, _("--limit must be between 1 and %d"), MAX_LIMIT);
  return GK_CLI_OK;
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

      gk_export_csv_usage_header (out);
      for (guint i = 0; i < rows->len; i++)
        gk_export_csv_usage_row (out, rows->pdata[i]);
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

static void
rotation_cells (GkCliTable    *table,
                gconstpointer  data)
{
  const GkRotationRow *row = data;
  g_autofree char *from = g_strdup_printf ("%s (%" PRId64 ")",
                                           row->from_key_name ? row->from_key_name : "",
                                           row->from_key_id);
  g_autofree char *to = row->to_key_id > 0
                          ? g_strdup_printf ("%s (%" PRId64 ")",
                                             row->to_key_name ? row->to_key_name : "",
                                             row->to_key_id)
                          : g_strdup (_("none"));

  gk_cli_table_take_row (table, format_int (row->id), gk_cli_format_time (row->created_at),
                         g_steal_pointer (&from), g_steal_pointer (&to),
                         g_strdup (gk_key_state_get_label (
                                     gk_rotation_reason_get_state (row->reason))),
                         g_strdup (row->triggered_by),
                         /* TRANSLATORS: marks a rotation in an hour with unusually
                          * many (see `keys spikes`). */
                         g_strdup (row->in_spike ? _("spike") : ""));
}

static void
audit_cells (GkCliTable    *table,
             gconstpointer  data)
{
  const GkAuditRow *row = data;

  gk_cli_table_take_row (table, format_int (row->id), gk_cli_format_time (row->created_at),
                         g_strdup (row->actor), g_strdup (gk_audit_action_get_label (row->action)),
                         gk_audit_render_target (row->action, row->target),
                         gk_audit_render_summary (row->action, row->summary));
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

  gk_cli_print_rows (cli, rows, (GkJsonAddRow) gk_json_add_rotation_row,
                     gk_cli_table_new (_("ID"), _("TIME"), _("FROM"), _("TO"), _("REASON"),
                                       _("BY"), _("SPIKE"), NULL),
                     rotation_cells, _("No rotations yet."));
  if (!gk_cli_json (cli) && rows->len > 0 &&
      gk_stats_rotation_totals (db, &all, &manual, &automatic, NULL))
    {
      printf ("\n");
      printf (_("Rotations: %" PRId64 " (%" PRId64 " manual, %" PRId64 " automatic)\n"),
              all, manual, automatic);
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

  return gk_cli_print_rows (cli, rows, (GkJsonAddRow) gk_json_add_audit_row,
                            gk_cli_table_new (_("ID"), _("TIME"), _("BY"), _("ACTION"),
                                              _("TARGET"), _("DETAILS"), NULL),
                            audit_cells, _("No actions recorded yet."));
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
  GkExportFormat format = GK_EXPORT_CSV;
  guint64 n_rows = 0;
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
      format = GK_EXPORT_XLSX;
      g_free (path);
      path = g_steal_pointer (&xlsx_path);
    }
  if (what == NULL || g_str_equal (what, "usage"))
    {
      gk_database_stop_mmap (db);
      ok = gk_export_usage (db, NULL, format, path, NULL, NULL, NULL, &n_rows, &error);
    }
  else if (g_str_equal (what, "rotations"))
    ok = gk_export_rotations (db, format, path, NULL, &n_rows, &error);
  else if (g_str_equal (what, "audit"))
    ok = gk_export_audit (db, format, path, NULL, &n_rows, &error);
  else
    ok = gk_export_keys (store, format, path, NULL, &n_rows, &error);
  if (!ok)
    return gk_cli_gerror (cli, error);

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
    {
      guint shown = (guint) MIN (n_rows, G_MAXUINT);

      printf (ngettext ("Exported %u row to %s\n", "Exported %u rows to %s\n", shown),
              shown, path);
    }
  return GK_CLI_OK;
}
