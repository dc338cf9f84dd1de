/* gk-cli-keys.c: `gemini-keysctl key …`.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gk-cli.h"

/* "Not given on the command line", for options that edit a key. */
#define UNSET_INT   G_MININT
#define UNSET_INT64 G_MININT64

typedef struct
{
  char     *name;
  int       priority;
  gint64    limits[GK_QUOTA_N_SLOTS];
  char     *project;
  double    budget;
  gboolean  is_default;
  gboolean  no_default;
  gboolean  active;
  gboolean  inactive;
  gboolean  replace_key;
} KeyOptions;

static void
key_options_init (KeyOptions *o)
{
  *o = (KeyOptions) { 0 };
  o->priority = UNSET_INT;
  for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
    o->limits[i] = UNSET_INT64;
  o->budget = NAN;
}

static void
key_options_clear (KeyOptions *o)
{
  g_clear_pointer (&o->name, g_free);
  g_clear_pointer (&o->project, g_free);
}

/* The options of `key add`, and with @for_update those only `key update`
 * has. Returns a NULL-terminated array to g_free(). */
static GOptionEntry *
key_option_entries (KeyOptions *o,
                    gboolean    for_update)
{
  const GOptionEntry common[] = {
    { "name", 0, 0, G_OPTION_ARG_STRING, &o->name,
      N_("The key’s name (up to 100 characters)"), N_("NAME") },
    { "priority", 0, 0, G_OPTION_ARG_INT, &o->priority,
      N_("1–10, higher is used first (default 5)"), N_("N") },
    { "monthly-quota", 0, 0, G_OPTION_ARG_INT64, &o->limits[GK_QUOTA_SLOT_MONTHLY_TOKENS],
      N_("Tokens per month (0 = unlimited)"), N_("TOKENS") },
    { "daily-quota", 0, 0, G_OPTION_ARG_INT64, &o->limits[GK_QUOTA_SLOT_DAILY_TOKENS],
      N_("Tokens per day (0 = unlimited)"), N_("TOKENS") },
    { "minute-quota", 0, 0, G_OPTION_ARG_INT64, &o->limits[GK_QUOTA_SLOT_MINUTE_TOKENS],
      N_("Tokens per minute (0 = unlimited)"), N_("TOKENS") },
    { "rpm", 0, 0, G_OPTION_ARG_INT64, &o->limits[GK_QUOTA_SLOT_MINUTE_REQUESTS],
      N_("Requests per minute (0 = unlimited)"), N_("REQUESTS") },
    { "rpd", 0, 0, G_OPTION_ARG_INT64, &o->limits[GK_QUOTA_SLOT_DAILY_REQUESTS],
      N_("Requests per day (0 = unlimited)"), N_("REQUESTS") },
    { "project", 0, 0, G_OPTION_ARG_STRING, &o->project,
      N_("Google Cloud project label: keys of one project share its limits"), N_("PROJECT") },
    { "budget", 0, 0, G_OPTION_ARG_DOUBLE, &o->budget,
      N_("Monthly budget in USD (0 = none)"), N_("USD") },
    { "default", 0, 0, G_OPTION_ARG_NONE, &o->is_default,
      N_("Use this key before all others"), NULL },
  };
  const GOptionEntry update_only[] = {
    { "no-default", 0, 0, G_OPTION_ARG_NONE, &o->no_default,
      N_("No longer the default key"), NULL },
    { "active", 0, 0, G_OPTION_ARG_NONE, &o->active,
      N_("Put the key back in service"), NULL },
    { "inactive", 0, 0, G_OPTION_ARG_NONE, &o->inactive,
      N_("Take the key out of service"), NULL },
    { "replace-key", 0, 0, G_OPTION_ARG_NONE, &o->replace_key,
      N_("Read a new API key from standard input"), NULL },
  };
  gsize n = G_N_ELEMENTS (common) + (for_update ? G_N_ELEMENTS (update_only) : 0);
  GOptionEntry *entries = g_new0 (GOptionEntry, n + 1);

  memcpy (entries, common, sizeof common);
  if (for_update)
    memcpy (entries + G_N_ELEMENTS (common), update_only, sizeof update_only);
  return entries;
}

/* Copies what was given on the command line into @spec. */
static void
key_options_apply (const KeyOptions *o,
                   GkKeySpec        *spec)
{
  if (o->name != NULL)
    spec->name = o->name;
  if (o->priority != UNSET_INT)
    spec->priority = o->priority;
  for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
    {
      if (o->limits[i] != UNSET_INT64)
        spec->limits[i] = o->limits[i];
    }
  if (o->project != NULL)
    spec->project = o->project;
  /* A budget of zero would block the key at once: it means "no budget". */
  if (!isnan (o->budget))
    spec->monthly_budget_usd = o->budget == 0 ? -1 : o->budget;
  if (o->is_default)
    spec->is_default = TRUE;
  if (o->no_default)
    spec->is_default = FALSE;
  if (o->active)
    spec->active = TRUE;
  if (o->inactive)
    spec->active = FALSE;
}

static int
check_budget (GkCli            *cli,
              const KeyOptions *o)
{
  if (!isnan (o->budget) && (o->budget < 0 || !isfinite (o->budget)))
    return gk_cli_error (cli, _("The budget must be a positive amount in USD, or 0 for none"));
  return GK_CLI_OK;
}

/* The reset time zone, for quota resets shown in both zones. */
static GTimeZone *
reset_timezone (GkCli *cli)
{
  GkDatabase *db = gk_cli_get_database (cli);

  return db != NULL ? gk_database_get_reset_timezone (db) : NULL;
}

static void
print_key_json (GkCli       *cli,
                const GkKey *key)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(GTimeZone) reset_tz = reset_timezone (cli);

  gk_json_add_key (builder, key, reset_tz);
  gk_cli_print_json (cli, builder);
}

static void
print_key_details (GkCli       *cli,
                   const GkKey *key)
{
  g_autoptr(GTimeZone) reset_tz = reset_timezone (cli);
  g_autoptr(GTimeZone) local_tz = g_time_zone_new_local ();
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  g_autofree char *masked = gk_key_get_masked (key);
  g_autofree char *created = gk_cli_format_time (key->created_at);
  g_autofree char *last_used = gk_cli_format_time (key->last_used_at);
  g_autofree char *last_rotation = gk_cli_format_time (key->last_rotation_at);
  g_autoptr(GkCliTable) quotas = NULL;

  printf ("%-16s %" PRId64 "\n", _("Id:"), key->id);
  printf ("%-16s %s\n", _("Name:"), key->name);
  printf ("%-16s %s\n", _("Key:"), masked);
  printf ("%-16s %s\n", _("Status:"), gk_key_state_get_label (key->state));
  if (key->state_reason != NULL)
    printf ("%-16s %s\n", _("Reason:"), key->state_reason);
  if (key->state_until > 0)
    {
      g_autofree char *until = gk_cli_format_time (key->state_until);
      printf ("%-16s %s\n", _("Back at:"), until);
    }
  printf ("%-16s %d\n", _("Priority:"), key->priority);
  printf ("%-16s %s\n", _("Default:"), key->is_default ? _("yes") : _("no"));
  printf ("%-16s %s\n", _("Project:"), key->project ? key->project : "—");
  if (key->monthly_budget_usd >= 0)
    printf ("%-16s $%.2f / $%.2f\n", _("Budget:"), key->month_cost_usd,
            key->monthly_budget_usd);
  else
    printf ("%-16s $%.4f (%s)\n", _("Cost (month):"), key->month_cost_usd, _("no budget"));
  printf ("%-16s %s\n", _("Created:"), created);
  printf ("%-16s %s\n", _("Last used:"), last_used);
  printf ("%-16s %s\n", _("Last rotation:"), last_rotation);
  printf ("\n");

  quotas = gk_cli_table_new (_("QUOTA"), _("USED"), _("LIMIT"), _("RESETS"), NULL);
  for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
    {
      const GkQuota *q = &key->quotas[i];
      g_autofree char *used = g_strdup_printf ("%" PRId64, q->used_value);
      g_autofree char *limit = q->limit_value > 0
                                 ? g_strdup_printf ("%" PRId64, q->limit_value)
                                 : g_strdup (_("unlimited"));
      g_autofree char *resets = gk_quota_format_reset (q->reset_at, now, local_tz, reset_tz);

      gk_cli_table_add_row (quotas, gk_quota_slot_get_label (i), used, limit, resets != NULL ? resets : "—");
    }
  gk_cli_table_print (quotas);
}

static int
key_add (GkCli  *cli,
         int     argc,
         char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree GOptionEntry *entries = NULL;
  g_autoptr(GkKey) key = NULL;
  g_autofree char *masked = NULL;
  KeyOptions o;
  GkKeySpec spec;
  GkKeyStore *store;
  char *api_key;
  gint64 id;
  int status;

  key_options_init (&o);
  entries = key_option_entries (&o, FALSE);
  status = gk_cli_parse_options (cli, "", _("Adds a key. The API key is read from standard "
                                            "input (or a prompt on a terminal)."),
                                 entries, 0, 0, &argc, &argv);
  if (status == GK_CLI_OK && o.name == NULL)
    status = gk_cli_usage_error (cli, _("“key add” needs --name"));
  if (status == GK_CLI_OK)
    status = check_budget (cli, &o);
  if (status != GK_CLI_OK)
    goto out;

  gk_key_spec_init (&spec);
  key_options_apply (&o, &spec);
  /* Check what the user typed before asking for the key or the keyring. */
  if (!gk_key_validate_spec (&spec, &error))
    {
      status = gk_cli_gerror (cli, error);
      goto out;
    }

  api_key = gk_cli_read_secret (cli, _("API key: "), &error);
  if (api_key == NULL)
    {
      status = gk_cli_gerror (cli, error);
      goto out;
    }
  if (!gk_key_validate_api_key (api_key, &error))
    {
      gk_crypto_wipe_string (api_key);
      status = gk_cli_gerror (cli, error);
      goto out;
    }

  store = gk_cli_get_key_store (cli);
  id = store != NULL ? gk_key_store_add (store, &spec, api_key, &error) : 0;
  gk_crypto_wipe_string (api_key);
  if (store == NULL)
    {
      status = GK_CLI_ERROR;
      goto out;
    }
  if (id == 0)
    {
      status = gk_cli_gerror (cli, error);
      goto out;
    }

  key = gk_key_store_get (store, id, &error);
  if (key == NULL)
    {
      status = gk_cli_gerror (cli, error);
      goto out;
    }

  if (gk_cli_json (cli))
    print_key_json (cli, key);
  else
    {
      masked = gk_key_get_masked (key);
      printf (_("Added key “%s” (id %" PRId64 ", %s)\n"), key->name, key->id, masked);
    }

out:
  key_options_clear (&o);
  return status;
}

static int
key_list (GkCli  *cli,
          int     argc,
          char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = NULL;
  GkKeyStore *store;
  int status;

  status = gk_cli_parse_options (cli, "", _("Lists the keys (masked)."), NULL, 0, 0,
                                 &argc, &argv);
  if (status != GK_CLI_OK)
    return status;

  store = gk_cli_get_key_store (cli);
  if (store == NULL)
    return GK_CLI_ERROR;

  keys = gk_key_store_list (store, &error);
  if (keys == NULL)
    return gk_cli_gerror (cli, error);

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();
      g_autoptr(GTimeZone) reset_tz = reset_timezone (cli);

      json_builder_begin_array (builder);
      for (guint i = 0; i < keys->len; i++)
        gk_json_add_key (builder, keys->pdata[i], reset_tz);
      json_builder_end_array (builder);
      gk_cli_print_json (cli, builder);
    }
  else if (keys->len == 0)
    printf ("%s\n", _("No keys yet. Add one with “gemini-keysctl key add --name NAME”."));
  else
    {
      g_autoptr(GkCliTable) table = gk_cli_table_new (_("ID"), _("NAME"), _("KEY"), _("STATUS"),
                                                      _("PRIORITY"), _("DEFAULT"),
                                                      _("REMAINING"), _("LAST USED"), NULL);

      for (guint i = 0; i < keys->len; i++)
        {
          const GkKey *key = keys->pdata[i];
          g_autofree char *id = g_strdup_printf ("%" PRId64, key->id);
          g_autofree char *masked = gk_key_get_masked (key);
          g_autofree char *priority = g_strdup_printf ("%d", key->priority);
          g_autofree char *remaining = g_strdup_printf ("%.0f%%",
                                                        100.0 * gk_key_remaining_share (key));
          g_autofree char *last_used = gk_cli_format_time (key->last_used_at);

          gk_cli_table_add_row (table, id, key->name, masked, gk_key_state_get_label (key->state),
                                priority, key->is_default ? _("yes") : "", remaining,
                                last_used);
        }
      gk_cli_table_print (table);
    }
  return GK_CLI_OK;
}

/* Parses "COMMAND ID [options]"; returns the key store, NULL on error with
 * *@status set. */
static GkKeyStore *
parse_id_and_open (GkCli               *cli,
                   const char          *summary,
                   const GOptionEntry  *entries,
                   int                 *argc,
                   char              ***argv,
                   gint64              *id,
                   int                 *status)
{
  GkKeyStore *store;

  *status = gk_cli_parse_options (cli, _("ID"), summary, entries, 1, 1, argc, argv);
  if (*status != GK_CLI_OK)
    return NULL;
  if (!gk_cli_parse_id (cli, (*argv)[1], id))
    {
      *status = GK_CLI_USAGE;
      return NULL;
    }

  store = gk_cli_get_key_store (cli);
  if (store == NULL)
    *status = GK_CLI_ERROR;
  return store;
}

static int
key_show (GkCli  *cli,
          int     argc,
          char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) key = NULL;
  GkKeyStore *store;
  gint64 id;
  int status;

  store = parse_id_and_open (cli, _("Shows one key (masked) and its quotas."), NULL,
                             &argc, &argv, &id, &status);
  if (store == NULL)
    return status;

  key = gk_key_store_get (store, id, &error);
  if (key == NULL)
    return gk_cli_gerror (cli, error);

  if (gk_cli_json (cli))
    print_key_json (cli, key);
  else
    print_key_details (cli, key);
  return GK_CLI_OK;
}

static int
key_update (GkCli  *cli,
            int     argc,
            char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree GOptionEntry *entries = NULL;
  g_autoptr(GkKey) key = NULL;
  g_autoptr(GkKey) updated = NULL;
  GkKeyStore *store = NULL;
  char *api_key = NULL;
  KeyOptions o;
  GkKeySpec spec;
  gint64 id = 0;
  int status;
  gboolean ok;

  key_options_init (&o);
  entries = key_option_entries (&o, TRUE);
  status = gk_cli_parse_options (cli, _("ID"),
                                 _("Changes a key. With --replace-key the new API key is read "
                                   "from standard input."),
                                 entries, 1, 1, &argc, &argv);
  if (status == GK_CLI_OK && !gk_cli_parse_id (cli, argv[1], &id))
    status = GK_CLI_USAGE;
  if (status == GK_CLI_OK && o.active && o.inactive)
    status = gk_cli_usage_error (cli, _("--active and --inactive cannot be used together"));
  if (status == GK_CLI_OK && o.is_default && o.no_default)
    status = gk_cli_usage_error (cli, _("--default and --no-default cannot be used together"));
  if (status == GK_CLI_OK)
    status = check_budget (cli, &o);
  if (status != GK_CLI_OK)
    goto out;

  store = gk_cli_get_key_store (cli);
  if (store == NULL)
    {
      status = GK_CLI_ERROR;
      goto out;
    }

  key = gk_key_store_get (store, id, &error);
  if (key == NULL)
    {
      status = gk_cli_gerror (cli, error);
      goto out;
    }

  gk_key_spec_from_key (&spec, key);
  key_options_apply (&o, &spec);
  if (!gk_key_validate_spec (&spec, &error))
    {
      status = gk_cli_gerror (cli, error);
      goto out;
    }

  if (o.replace_key)
    {
      api_key = gk_cli_read_secret (cli, _("New API key: "), &error);
      if (api_key == NULL || !gk_key_validate_api_key (api_key, &error))
        {
          gk_crypto_wipe_string (api_key);
          status = gk_cli_gerror (cli, error);
          goto out;
        }
    }

  ok = gk_key_store_update (store, id, &spec, api_key, &error);
  gk_crypto_wipe_string (api_key);
  if (!ok)
    {
      status = gk_cli_gerror (cli, error);
      goto out;
    }

  updated = gk_key_store_get (store, id, &error);
  if (updated == NULL)
    {
      status = gk_cli_gerror (cli, error);
      goto out;
    }

  if (gk_cli_json (cli))
    print_key_json (cli, updated);
  else
    printf (_("Updated key “%s” (id %" PRId64 ")\n"), updated->name, updated->id);

out:
  key_options_clear (&o);
  return status;
}

static int
key_delete (GkCli  *cli,
            int     argc,
            char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) key = NULL;
  gboolean yes = FALSE;
  const GOptionEntry entries[] = {
    { "yes", 'y', 0, G_OPTION_ARG_NONE, &yes, N_("Do not ask for confirmation"), NULL },
    G_OPTION_ENTRY_NULL
  };
  GkKeyStore *store;
  gint64 id;
  int status;

  store = parse_id_and_open (cli,
                             _("Deletes a key: its encrypted key is destroyed, its usage and "
                               "rotation history stay."),
                             entries, &argc, &argv, &id, &status);
  if (store == NULL)
    return status;

  key = gk_key_store_get (store, id, &error);
  if (key == NULL)
    return gk_cli_gerror (cli, error);

  if (!yes)
    {
      g_autofree char *question = NULL;

      if (!isatty (STDIN_FILENO))
        return gk_cli_error (cli, _("Not deleting key %" PRId64 " without confirmation: "
                                    "add --yes (standard input is not a terminal)"), id);

      question = g_strdup_printf (_("Delete key “%s” (id %" PRId64 ")? Its history "
                                    "is kept."), key->name, id);
      if (!gk_cli_confirm (cli, question))
        return gk_cli_error (cli, _("Not deleted"));
    }

  if (!gk_key_store_delete (store, id, &error))
    return gk_cli_gerror (cli, error);

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      gk_json_add_int (builder, "id", id);
      gk_json_add_string (builder, "name", key->name);
      gk_json_add_boolean (builder, "deleted", TRUE);
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else
    printf (_("Deleted key “%s” (id %" PRId64 "); its history is kept\n"),
            key->name, id);
  return GK_CLI_OK;
}

static int
key_rotate (GkCli  *cli,
            int     argc,
            char  **argv)
{
  g_autoptr(GError) error = NULL;
  GkPool *pool;
  gint64 id, next;
  int status;

  /* Rotation needs only the pool: no master key, no keyring. */
  status = gk_cli_parse_options (cli, _("ID"),
                                 _("Skips a key until the next daily reset: it stays stored and "
                                   "unchanged, requests go to the next key (logged as a MANUAL "
                                   "rotation, shown as “Skipped by you”). It does not replace "
                                   "the key; use “key update ID --replace-key” for that."),
                                 NULL, 1, 1, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;
  if (!gk_cli_parse_id (cli, argv[1], &id))
    return GK_CLI_USAGE;

  pool = gk_cli_get_pool (cli);
  if (pool == NULL)
    return GK_CLI_ERROR;

  next = gk_pool_rotate (pool, id, gk_cli_get_actor (cli), &error);
  if (error != NULL)
    return gk_cli_gerror (cli, error);

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      gk_json_add_int (builder, "from_key_id", id);
      gk_json_add_optional_id (builder, "to_key_id", next);
      gk_json_add_string (builder, "reason", gk_rotation_reason_to_string (GK_ROTATION_MANUAL));
      gk_json_add_string (builder, "triggered_by", gk_cli_get_actor (cli));
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else if (next > 0)
    printf (_("Key %" PRId64 " is skipped until the daily reset; requests now go to key %"
              PRId64 "\n"), id, next);
  else
    printf (_("Key %" PRId64 " is skipped until the daily reset; no other key is available\n"),
            id);
  return GK_CLI_OK;
}

/* Reads the whole of @path ("-": standard input) into secure-enough
 * memory the caller wipes. */
static char *
read_import_text (const char  *path,
                  gsize       *len,
                  GError     **error)
{
  char *text = NULL;

  if (!g_str_equal (path, "-"))
    {
      if (!g_file_get_contents (path, &text, len, error))
        return NULL;
      return text;
    }

  {
    gsize size = 16384, used = 0;
    gssize n;

    text = g_malloc (size);
    for (;;)
      {
        if (size - used < 4096)
          {
            /* Grown by hand, so no copy of the keys is freed unwiped. */
            char *bigger = g_malloc (size * 2);

            memcpy (bigger, text, used);
            gk_crypto_wipe (text, size);
            g_free (text);
            text = bigger;
            size *= 2;
          }
        n = read (STDIN_FILENO, text + used, size - used - 1);
        if (n <= 0)
          break;
        used += (gsize) n;
      }
    if (n < 0)
      {
        int errsv = errno;

        gk_crypto_wipe (text, size);
        g_free (text);
        g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                     _("Cannot read standard input: %s"), g_strerror (errsv));
        return NULL;
      }
    text[used] = '\0';
    *len = used;
  }
  return text;
}

static int
key_import (GkCli  *cli,
            int     argc,
            char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkImportReport) report = NULL;
  gboolean dry_run = FALSE;
  const GOptionEntry entries[] = {
    { "dry-run", 'n', 0, G_OPTION_ARG_NONE, &dry_run,
      N_("Check every line and show what would happen, adding nothing"), NULL },
    G_OPTION_ENTRY_NULL
  };
  GkKeyStore *store;
  char *text;
  gsize len = 0;
  int status;

  status = gk_cli_parse_options (cli, _("FILE|-"),
                                 _("Adds many keys at once from FILE (“-”: standard input): one "
                                   "key per line, or CSV with a header line naming its columns "
                                   "(name, key, priority, monthly_quota, daily_quota, "
                                   "minute_quota, daily_requests, minute_requests, budget, "
                                   "project; only key is required). Keys already in the pool "
                                   "are skipped. Each line is reported with its number, name "
                                   "and the key’s last four characters."),
                                 entries, 1, 1, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;

  store = gk_cli_get_key_store (cli);
  if (store == NULL)
    return GK_CLI_ERROR;

  /* Reading the database's own files here would drop this process's
   * locks on them (close() drops every lock of the process on a file). */
  if (!g_str_equal (argv[1], "-")
      && gk_database_is_own_file (gk_cli_get_database (cli), argv[1]))
    return gk_cli_error (cli, _("“%s” is the database itself: import from another file."),
                         argv[1]);

  text = read_import_text (argv[1], &len, &error);
  if (text == NULL)
    return gk_cli_gerror (cli, error);
  report = gk_key_import (store, text, (gssize) len, dry_run, &error);
  gk_crypto_wipe (text, len);
  g_free (text);
  if (report == NULL)
    return gk_cli_gerror (cli, error);

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      gk_json_add_boolean (builder, "dry_run", dry_run);
      gk_json_add_int (builder, dry_run ? "would_add" : "added", report->added);
      gk_json_add_int (builder, "duplicates", report->duplicates);
      gk_json_add_int (builder, "invalid", report->invalid);
      json_builder_set_member_name (builder, "lines");
      json_builder_begin_array (builder);
      for (guint i = 0; i < report->lines->len; i++)
        {
          const GkImportLine *line = report->lines->pdata[i];

          json_builder_begin_object (builder);
          gk_json_add_int (builder, "line", line->line);
          gk_json_add_string (builder, "name", line->name);
          gk_json_add_string (builder, "key_hint", line->key_hint);
          gk_json_add_string (builder, "result", gk_import_result_to_string (line->result));
          gk_json_add_string (builder, "message", line->message);
          gk_json_add_optional_id (builder, "id", line->id);
          json_builder_end_object (builder);
        }
      json_builder_end_array (builder);
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else
    {
      g_autoptr(GkCliTable) table = gk_cli_table_new (_("LINE"), _("NAME"), _("KEY"),
                                                      _("RESULT"), NULL);

      for (guint i = 0; i < report->lines->len; i++)
        {
          const GkImportLine *line = report->lines->pdata[i];
          g_autofree char *number = g_strdup_printf ("%u", line->line);
          g_autofree char *result = line->message != NULL
                                      ? g_strdup_printf ("%s: %s",
                                                         gk_import_result_get_label (line->result),
                                                         line->message)
                                      : g_strdup (gk_import_result_get_label (line->result));

          gk_cli_table_add_row (table, number, line->name, line->key_hint, result);
        }
      gk_cli_table_print (table);
      printf ("\n");
      if (dry_run)
        printf (_("Dry run: %u would be added, %u skipped (already in the pool or repeated), "
                  "%u invalid; nothing was changed\n"),
                report->added, report->duplicates, report->invalid);
      else
        printf (_("Added %u, skipped %u (already in the pool or repeated), %u invalid\n"),
                report->added, report->duplicates, report->invalid);
    }

  /* Some lines were refused: say so in the exit status too. */
  if (report->invalid > 0)
    return GK_CLI_ERROR;
  return GK_CLI_OK;
}

#ifndef HAVE_CLI_GATEWAY
static int
key_test_missing (GkCli  *cli,
                  int     argc,
                  char  **argv)
{
  return gk_cli_error (cli, _("This build of gemini-keysctl has no gateway, so it cannot "
                              "test keys"));
}
#endif

int
gk_cli_cmd_key (GkCli  *cli,
                int     argc,
                char  **argv)
{
  static const GkCliCommand key_commands[] = {
    { "add",    key_add,    N_("Add a key (read from standard input)") },
    { "list",   key_list,   N_("List the keys (masked)") },
    { "show",   key_show,   N_("Show one key and its quotas") },
    { "update", key_update, N_("Change a key’s settings or replace it") },
    { "delete", key_delete, N_("Delete a key (its history stays)") },
    { "rotate", key_rotate, N_("Skip a key until the next daily reset (does not replace it)") },
    { "import", key_import, N_("Add many keys at once from a file or standard input") },
#ifdef HAVE_CLI_GATEWAY
    { "test",   gk_cli_cmd_key_test, N_("Test a key against Google") },
#else
    { "test",   key_test_missing,    N_("Test a key against Google") },
#endif
    { NULL, NULL, NULL },
  };

  return gk_cli_dispatch (cli, "key", key_commands, argc, argv);
}
