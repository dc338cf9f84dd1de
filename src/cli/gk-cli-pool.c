/* gk-cli-pool.c: `select`, `track` and `quotas reset`: the pool without
 * the master key (none of them decrypts a key, so none touches the
 * keyring).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <stdio.h>

#include "gk-cli.h"

int
gk_cli_cmd_select (GkCli  *cli,
                   int     argc,
                   char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) key = NULL;
  g_autofree char *model = NULL;
  g_autofree char *masked = NULL;
  const GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_STRING, &model, N_("The model of the request"), N_("MODEL") },
    G_OPTION_ENTRY_NULL
  };
  GkPool *pool;
  int status;

  status = gk_cli_parse_options (cli, "",
                                 _("Shows the key a request would get now, without using it."),
                                 entries, 0, 0, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;

  pool = gk_cli_get_pool (cli);
  if (pool == NULL)
    return GK_CLI_ERROR;

  key = gk_pool_select (pool, model, NULL, &error);
  if (key == NULL)
    return gk_cli_gerror (cli, error);

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();
      g_autoptr(GTimeZone) reset_tz = gk_database_get_reset_timezone (gk_pool_get_database (pool));

      json_builder_begin_object (builder);
      gk_json_add_key_members (builder, key, reset_tz);
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else
    {
      masked = gk_key_get_masked (key);
      printf ("%" PRId64 "  %s  %s\n", key->id, key->name, masked);
    }
  return GK_CLI_OK;
}

static gboolean
parse_usage_status (const char    *text,
                    GkUsageStatus *status)
{
  g_autofree char *normal = g_strdup (text);

  /* "rate-limited" reads as well as "rate_limited". */
  g_strdelimit (normal, "-", '_');
  return gk_usage_status_from_string (normal, status);
}

int
gk_cli_cmd_track (GkCli  *cli,
                  int     argc,
                  char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *model = NULL;
  g_autofree char *status_text = NULL;
  g_autofree char *error_text = NULL;
  g_autofree char *user = NULL;
  gint64 key_id = 0, prompt_tokens = 0, output_tokens = 0, latency_ms = 0;
  int http_status = 0;
  const GOptionEntry entries[] = {
    { "key", 'k', 0, G_OPTION_ARG_INT64, &key_id, N_("The key that was used"), N_("ID") },
    { "model", 'm', 0, G_OPTION_ARG_STRING, &model, N_("The model of the request"), N_("MODEL") },
    { "prompt-tokens", 0, 0, G_OPTION_ARG_INT64, &prompt_tokens,
      N_("Prompt (input) tokens"), N_("N") },
    { "output-tokens", 0, 0, G_OPTION_ARG_INT64, &output_tokens,
      N_("Output tokens (candidates and thoughts)"), N_("N") },
    { "status", 's', 0, G_OPTION_ARG_STRING, &status_text,
      N_("success, rate_limited, invalid_key or error"), N_("STATUS") },
    { "http-status", 0, 0, G_OPTION_ARG_INT, &http_status,
      N_("The upstream HTTP status"), N_("CODE") },
    { "error", 0, 0, G_OPTION_ARG_STRING, &error_text,
      N_("The error message (keys are redacted)"), N_("TEXT") },
    { "user", 'u', 0, G_OPTION_ARG_STRING, &user, N_("Who made the request"), N_("USER") },
    { "latency-ms", 0, 0, G_OPTION_ARG_INT64, &latency_ms,
      N_("How long the request took"), N_("MS") },
    G_OPTION_ENTRY_NULL
  };
  GkUsageRecord record;
  GkTrackResult result = { 0 };
  GkUsageStatus usage_status;
  GkPool *pool;
  int status;

  status = gk_cli_parse_options (cli, "",
                                 _("Records one use of a key: charges its quotas and rotates "
                                   "away from it when a trigger fires."),
                                 entries, 0, 0, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;

  if (key_id <= 0)
    return gk_cli_usage_error (cli, _("“track” needs --key ID"));
  if (model == NULL || *model == '\0')
    return gk_cli_usage_error (cli, _("“track” needs --model MODEL"));
  if (status_text == NULL)
    return gk_cli_usage_error (cli, _("“track” needs --status"));
  if (!parse_usage_status (status_text, &usage_status))
    return gk_cli_usage_error (cli, _("Unknown status “%s”: use success, rate_limited, "
                                      "invalid_key or error"), status_text);
  if (prompt_tokens < 0 || output_tokens < 0 || latency_ms < 0)
    return gk_cli_usage_error (cli, _("Token counts and latency cannot be negative"));
  if (http_status < 0 || http_status > 999)
    return gk_cli_usage_error (cli, _("“%d” is not an HTTP status"), http_status);

  pool = gk_cli_get_pool (cli);
  if (pool == NULL)
    return GK_CLI_ERROR;

  gk_usage_record_init (&record);
  record.key_id = key_id;
  record.model = model;
  record.prompt_tokens = prompt_tokens;
  record.output_tokens = output_tokens;
  record.status = usage_status;
  record.http_status = http_status;
  record.error_message = error_text;
  record.user_id = user;
  record.latency_ms = latency_ms;

  if (!gk_pool_track (pool, &record, &result, &error))
    return gk_cli_gerror (cli, error);

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      gk_json_add_int (builder, "usage_id", result.usage_id);
      gk_json_add_int (builder, "key_id", key_id);
      gk_json_add_double (builder, "cost_usd", result.cost_usd);
      gk_json_add_boolean (builder, "priced", result.priced);
      gk_json_add_boolean (builder, "rotated", result.rotated);
      gk_json_add_string (builder, "reason",
                              result.rotated ? gk_rotation_reason_to_string (result.reason)
                                             : NULL);
      gk_json_add_optional_id (builder, "to_key_id", result.rotated ? result.to_key_id : 0);
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else
    {
      if (result.priced)
        printf (_("Recorded usage %" PRId64 " (cost $%.6f)\n"),
                result.usage_id, result.cost_usd);
      else
        printf (_("Recorded usage %" PRId64 " (unpriced model: cost not known)\n"),
                result.usage_id);
      if (result.rotated && result.to_key_id > 0)
        printf (_("Key %" PRId64 " left service (%s); requests now go to key %"
                  PRId64 "\n"),
                key_id, gk_rotation_reason_to_string (result.reason), result.to_key_id);
      else if (result.rotated)
        printf (_("Key %" PRId64 " left service (%s); no other key is available\n"),
                key_id, gk_rotation_reason_to_string (result.reason));
    }
  return GK_CLI_OK;
}

static int
quotas_reset (GkCli  *cli,
              int     argc,
              char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *type_text = NULL;
  const GOptionEntry entries[] = {
    { "type", 't', 0, G_OPTION_ARG_STRING, &type_text,
      N_("monthly, daily or minute (default: all)"), N_("TYPE") },
    G_OPTION_ENTRY_NULL
  };
  GkQuotaType type = GK_QUOTA_MONTHLY;
  gboolean all = TRUE;
  GkDatabase *db;
  int status;

  status = gk_cli_parse_options (cli, "",
                                 _("Resets the used amount of every key’s quotas now and "
                                   "returns keys that ran out to service."),
                                 entries, 0, 0, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;

  if (type_text != NULL)
    {
      all = FALSE;
      if (g_ascii_strcasecmp (type_text, "monthly") == 0)
        type = GK_QUOTA_MONTHLY;
      else if (g_ascii_strcasecmp (type_text, "daily") == 0)
        type = GK_QUOTA_DAILY;
      else if (g_ascii_strcasecmp (type_text, "minute") == 0 ||
               g_ascii_strcasecmp (type_text, "per_minute") == 0 ||
               g_ascii_strcasecmp (type_text, "per-minute") == 0)
        type = GK_QUOTA_PER_MINUTE;
      else
        return gk_cli_usage_error (cli, _("Unknown quota type “%s”: use monthly, daily or "
                                          "minute"), type_text);
    }

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return GK_CLI_ERROR;

  if (!gk_quotas_reset (db, all, type, gk_cli_get_actor (cli), &error))
    return gk_cli_gerror (cli, error);

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      gk_json_add_string (builder, "quota_type",
                              all ? "ALL" : gk_quota_type_to_string (type));
      gk_json_add_string (builder, "triggered_by", gk_cli_get_actor (cli));
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else if (all)
    printf ("%s\n", _("Reset all quotas"));
  else if (type == GK_QUOTA_MONTHLY)
    printf ("%s\n", _("Reset the monthly quotas"));
  else if (type == GK_QUOTA_DAILY)
    printf ("%s\n", _("Reset the daily quotas"));
  else
    printf ("%s\n", _("Reset the per-minute quotas"));
  return GK_CLI_OK;
}

int
gk_cli_cmd_quotas (GkCli  *cli,
                   int     argc,
                   char  **argv)
{
  static const GkCliCommand quota_commands[] = {
    { "reset", quotas_reset, N_("Reset quotas now") },
    { NULL, NULL, NULL },
  };

  return gk_cli_dispatch (cli, "quotas", quota_commands, argc, argv);
}
