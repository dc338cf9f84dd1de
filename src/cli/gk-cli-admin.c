/* gk-cli-admin.c: `db migrate`, `token …` and `master-key …`.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <stdio.h>

#include "gk-cli.h"

static int
db_migrate (GkCli  *cli,
            int     argc,
            char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = NULL;
  g_auto(GStrv) created = NULL;
  g_autofree char *target = NULL;
  g_autofree char *shown = NULL;
  int status;

  status = gk_cli_parse_options (cli, "",
                                 _("Creates the database, or upgrades it to this version’s "
                                   "schema. Prints one line per table created, then the "
                                   "schema version."),
                                 NULL, 0, 0, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;

  /* Not gk_cli_get_database(): opening migrates, and this command reports
   * what the migration did. */
  target = gk_cli_get_target (cli);
  shown = gk_database_redact_target (target);
  db = gk_database_new (target, NULL, &error);
  if (db == NULL)
    return gk_cli_error (cli, _("Cannot open the database “%s”: %s"), shown, error->message);
  if (!gk_database_migrate (db, &created, &error))
    return gk_cli_error (cli, _("Cannot upgrade the database “%s”: %s"), shown, error->message);

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      gk_json_add_string (builder, "path", shown);
      gk_json_add_int (builder, "schema_version", gk_database_get_schema_version (db));
      json_builder_set_member_name (builder, "created_tables");
      json_builder_begin_array (builder);
      for (guint i = 0; created != NULL && created[i] != NULL; i++)
        json_builder_add_string_value (builder, created[i]);
      json_builder_end_array (builder);
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else
    {
      for (guint i = 0; created != NULL && created[i] != NULL; i++)
        printf (_("Created table %s\n"), created[i]);
      printf (_("Database “%s” at schema version %d\n"), shown,
              gk_database_get_schema_version (db));
    }
  return GK_CLI_OK;
}

/* Opens (and migrates) @target for `db copy`, printing what failed. */
static GkDatabase *
open_for_copy (GkCli       *cli,
               const char  *target)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *shown = gk_database_redact_target (target);
  GkDatabase *db = gk_database_open (target, NULL, &error);

  if (db == NULL)
    gk_cli_error (cli, _("Cannot open the database “%s”: %s"), shown, error->message);
  return db;
}

static int
db_copy (GkCli  *cli,
         int     argc,
         char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) from = NULL;
  g_autoptr(GkDatabase) to = NULL;
  g_autoptr(GPtrArray) tables = NULL;
  g_autofree char *from_path = NULL;
  g_autofree char *to_target = NULL;
  g_autofree char *to_shown = NULL;
  gint64 total = 0;
  int status;
  const GOptionEntry entries[] = {
    { "from", 0, 0, G_OPTION_ARG_FILENAME, &from_path,
      N_("The SQLite file to copy (default: the local database)"), N_("FILE") },
    { "to", 0, 0, G_OPTION_ARG_STRING, &to_target,
      N_("The empty PostgreSQL database to fill, a postgresql:// URI without its password "
         "(default: --database, else $GEMINI_KEYS_DATABASE)"), N_("URI") },
    G_OPTION_ENTRY_NULL
  };

  status = gk_cli_parse_options (cli, "",
                                 _("Copies a pool from an SQLite file into an empty PostgreSQL "
                                   "database, history included, and verifies the copy. The "
                                   "same master key opens it."),
                                 entries, 0, 0, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;
  if (to_target != NULL && (status = gk_cli_check_target (cli, "--to", to_target)) != GK_CLI_OK)
    return status;
  if (from_path == NULL)
    from_path = gk_database_default_path ();
  if (to_target == NULL)
    to_target = gk_cli_get_target (cli);
  to_shown = gk_database_redact_target (to_target);

  if (gk_database_target_is_remote (from_path) || !g_file_test (from_path, G_FILE_TEST_IS_REGULAR))
    return gk_cli_usage_error (cli, _("--from must name an existing SQLite file, not “%s”"),
                               gk_database_target_is_remote (from_path) ? "postgresql://…"
                                                                        : from_path);
  if (!gk_database_target_is_remote (to_target))
    return gk_cli_usage_error (cli, _("The target must be a PostgreSQL database "
                                      "(postgresql://…), not “%s”"), to_shown);

  from = open_for_copy (cli, from_path);
  if (from == NULL)
    return GK_CLI_ERROR;
  to = open_for_copy (cli, to_target);
  if (to == NULL)
    return GK_CLI_ERROR;

  tables = gk_database_copy (from, to, &error);
  if (tables == NULL)
    return gk_cli_error (cli, _("Cannot copy “%s” to “%s”: %s"), from_path, to_shown,
                         error->message);

  for (guint i = 0; i < tables->len; i++)
    total += ((GkDatabaseCopyTable *) tables->pdata[i])->rows;
  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      gk_json_add_string (builder, "from", from_path);
      gk_json_add_string (builder, "to", to_shown);
      json_builder_set_member_name (builder, "tables");
      json_builder_begin_array (builder);
      for (guint i = 0; i < tables->len; i++)
        {
          GkDatabaseCopyTable *table = tables->pdata[i];

          json_builder_begin_object (builder);
          gk_json_add_string (builder, "name", table->name);
          gk_json_add_int (builder, "rows", table->rows);
          json_builder_end_object (builder);
        }
      json_builder_end_array (builder);
      gk_json_add_int (builder, "rows", total);
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else
    {
      for (guint i = 0; i < tables->len; i++)
        {
          GkDatabaseCopyTable *table = tables->pdata[i];
          g_autofree char *rows = g_strdup_printf ("%" G_GINT64_FORMAT, table->rows);

          printf (_("Copied %s: %s rows\n"), table->name, rows);
        }
      {
        g_autofree char *rows = g_strdup_printf ("%" G_GINT64_FORMAT, total);

        printf (_("Copied “%s” to “%s” and verified it (row counts and sums of tokens and "
                  "cost of every table): %s rows in %u tables\n"),
                from_path, to_shown, rows, tables->len);
      }
    }
  return GK_CLI_OK;
}

/* "Keep all" or "90 days", for people. */
static char *
format_retention (guint days)
{
  if (days == 0)
    return g_strdup (_("keep all usage rows"));
  return g_strdup_printf (ngettext ("keep usage rows for %u day",
                                       "keep usage rows for %u days", days),
                          days);
}

static int
db_retention (GkCli  *cli,
              int     argc,
              char  **argv)
{
  g_autoptr(GError) error = NULL;
  GkDatabase *db;
  guint days;
  int status;

  status = gk_cli_parse_options (cli, _("[DAYS|all]"),
                                 _("Shows or sets how long raw usage rows are kept. Older rows "
                                   "are removed by “db compact”; the dashboard keeps their "
                                   "totals. “all” (the default) keeps every row."),
                                 NULL, 0, 1, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return GK_CLI_ERROR;

  if (argc > 1)
    {
      guint64 parsed = 0;

      if (g_ascii_strcasecmp (argv[1], "all") == 0)
        parsed = 0;
      else if (!g_ascii_string_to_unsigned (argv[1], 10, 1, 36500, &parsed, NULL))
        return gk_cli_usage_error (cli, _("DAYS must be a number of days from 1 to 36500, "
                                          "or “all”"));
      if (!gk_rollup_set_retention_days (db, (guint) parsed, &error))
        return gk_cli_gerror (cli, error);
    }

  days = gk_rollup_get_retention_days (db);
  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      gk_json_add_int (builder, "retention_days", days);
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else
    {
      g_autofree char *text = format_retention (days);

      printf (_("Retention: %s\n"), text);
    }
  return GK_CLI_OK;
}

static int
db_compact (GkCli  *cli,
            int     argc,
            char  **argv)
{
  g_autoptr(GError) error = NULL;
  GkCompactReport report;
  GkDatabase *db;
  gboolean ok;
  int status;

  status = gk_cli_parse_options (cli, "",
                                 _("Removes usage rows past the retention period, merges old "
                                   "15-minute totals into daily ones and gives the free space "
                                   "back to the disk. No figure of the dashboard changes."),
                                 NULL, 0, 0, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return GK_CLI_ERROR;

  ok = gk_rollup_compact (db, &report, &error);
  /* Busy: the rows are gone but the file was not rewritten; say both. */
  if (!ok && !g_error_matches (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_BUSY))
    return gk_cli_gerror (cli, error);

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      gk_json_add_int (builder, "rows_deleted", report.rows_deleted);
      gk_json_add_int (builder, "buckets_coarsened", report.buckets_coarsened);
      gk_json_add_int (builder, "bytes_before", report.bytes_before);
      gk_json_add_int (builder, "bytes_after", report.bytes_after);
      gk_json_add_boolean (builder, "space_reclaimed", report.space_reclaimed);
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else
    {
      g_autofree char *before = g_format_size ((guint64) report.bytes_before);
      g_autofree char *after = g_format_size ((guint64) report.bytes_after);

      printf (ngettext ("Removed %" PRId64 " old usage row\n",
                           "Removed %" PRId64 " old usage rows\n", (gulong) report.rows_deleted),
              report.rows_deleted);
      printf (ngettext ("Merged %" PRId64 " old 15-minute total into daily "
                           "totals\n",
                           "Merged %" PRId64 " old 15-minute totals into daily totals\n",
                           (gulong) report.buckets_coarsened),
              report.buckets_coarsened);
      printf (_("Database size: %s before, %s after\n"), before, after);
    }
  if (!ok)
    return gk_cli_gerror (cli, error);
  return GK_CLI_OK;
}

int
gk_cli_cmd_db (GkCli  *cli,
               int     argc,
               char  **argv)
{
  static const GkCliCommand db_commands[] = {
    { "migrate", db_migrate, N_("Create or upgrade the database") },
    { "copy", db_copy, N_("Copy a pool from an SQLite file into an empty PostgreSQL database") },
    { "retention", db_retention, N_("Show or set how long usage rows are kept") },
    { "compact", db_compact, N_("Apply the retention and give free space back to the disk") },
    { NULL, NULL, NULL },
  };

  return gk_cli_dispatch (cli, "db", db_commands, argc, argv);
}

static int
token_add (GkCli  *cli,
           int     argc,
           char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *name = NULL;
  const GOptionEntry entries[] = {
    { "name", 0, 0, G_OPTION_ARG_STRING, &name,
      N_("Who uses the token (recorded as the usage log’s user)"), N_("NAME") },
    G_OPTION_ENTRY_NULL
  };
  GkDatabase *db;
  char *token;
  gint64 id = 0;
  int status;

  status = gk_cli_parse_options (cli, "",
                                 _("Creates a client token for the gateway. The token is "
                                   "printed once; only its hash is stored."),
                                 entries, 0, 0, &argc, &argv);
  if (status == GK_CLI_OK && name == NULL)
    status = gk_cli_usage_error (cli, _("“token add” needs --name"));
  if (status != GK_CLI_OK)
    return status;

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return GK_CLI_ERROR;

  token = gk_token_create (db, name, &id, &error);
  if (token == NULL)
    return gk_cli_gerror (cli, error);

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      gk_json_add_int (builder, "id", id);
      gk_json_add_string (builder, "name", name);
      gk_json_add_string (builder, "token", token);
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else
    {
      /* The token alone on stdout, so `$(gemini-keysctl token add …)` works;
       * the advice goes to stderr. */
      printf ("%s\n", token);
      fprintf (stderr, _("Created token “%s” (id %" PRId64 "). It is shown only "
                         "once: store it now.\n"), name, id);
    }
  gk_crypto_wipe_string (token);
  return GK_CLI_OK;
}

static void
token_cells (GkCliTable    *table,
             gconstpointer  data)
{
  const GkToken *token = data;

  gk_cli_table_take_row (table, g_strdup_printf ("%" PRId64, token->id), g_strdup (token->name),
                         gk_cli_format_time (token->created_at),
                         gk_cli_format_time (token->last_used_at),
                         g_strdup (token->revoked_at > 0 ? _("revoked") : _("valid")));
}

static int
token_list (GkCli  *cli,
            int     argc,
            char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) tokens = NULL;
  GkDatabase *db;
  int status;

  status = gk_cli_parse_options (cli, "", _("Lists the gateway’s client tokens."), NULL, 0, 0,
                                 &argc, &argv);
  if (status != GK_CLI_OK)
    return status;

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return GK_CLI_ERROR;

  tokens = gk_token_list (db, &error);
  if (tokens == NULL)
    return gk_cli_gerror (cli, error);

  return gk_cli_print_rows (cli, tokens, (GkJsonAddRow) gk_json_add_token,
                            gk_cli_table_new (_("ID"), _("NAME"), _("CREATED"), _("LAST USED"),
                                              _("STATUS"), NULL),
                            token_cells,
                            _("No tokens yet. Create one with “gemini-keysctl token add "
                              "--name NAME”."));
}

static int
token_revoke (GkCli  *cli,
              int     argc,
              char  **argv)
{
  g_autoptr(GError) error = NULL;
  GkDatabase *db;
  gint64 id;
  int status;

  status = gk_cli_parse_options (cli, _("ID"),
                                 _("Revokes a client token: the gateway refuses it from now on."),
                                 NULL, 1, 1, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;
  if (!gk_cli_parse_id (cli, argv[1], &id))
    return GK_CLI_USAGE;

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return GK_CLI_ERROR;

  if (!gk_token_revoke (db, id, &error))
    return gk_cli_gerror (cli, error);

  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      gk_json_add_int (builder, "id", id);
      gk_json_add_boolean (builder, "revoked", TRUE);
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else
    printf (_("Revoked token %" PRId64 "\n"), id);
  return GK_CLI_OK;
}

int
gk_cli_cmd_token (GkCli  *cli,
                  int     argc,
                  char  **argv)
{
  static const GkCliCommand token_commands[] = {
    { "add",    token_add,    N_("Create a client token (printed once)") },
    { "list",   token_list,   N_("List the client tokens") },
    { "revoke", token_revoke, N_("Revoke a client token") },
    { NULL, NULL, NULL },
  };

  return gk_cli_dispatch (cli, "token", token_commands, argc, argv);
}

static void
print_file_result (GkCli      *cli,
                   const char *path,
                   const char *message)
{
  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      gk_json_add_string (builder, "file", path);
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else
    printf ("%s\n", message);
}

static int
master_key_export (GkCli  *cli,
                   int     argc,
                   char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *message = NULL;
  gboolean force = FALSE;
  const GOptionEntry entries[] = {
    { "force", 0, 0, G_OPTION_ARG_NONE, &force, N_("Replace FILE if it exists"), NULL },
    G_OPTION_ENTRY_NULL
  };
  GBytes *master_key;
  int status;

  status = gk_cli_parse_options (cli, _("FILE"),
                                 _("Writes the master key to FILE (created with mode 0600), "
                                   "for GEMINI_KEYS_MASTER_KEY_FILE on a server or a backup. "
                                   "Anyone with the file and the database can read every key."),
                                 entries, 1, 1, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;

  /* Checked before the keyring is asked: nothing to unlock for a file
   * that will not be written. */
  if (!force && g_file_test (argv[1], G_FILE_TEST_EXISTS))
    return gk_cli_error (cli, _("%s already exists and was not overwritten. Choose another "
                                "file name, or add --force to replace it."),
                         argv[1]);

  master_key = gk_cli_get_master_key (cli);
  if (master_key == NULL)
    return GK_CLI_ERROR;

  /* The secret store writes files without a database; the export is
   * recorded here, its only caller. */
  if (!gk_secret_store_export_file_full (gk_cli_get_secret_store (cli), master_key, argv[1],
                                         force, &error) ||
      !gk_audit_record (gk_cli_get_database (cli), GK_AUDIT_MASTER_KEY_EXPORT, 0, NULL,
                        argv[1], &error))
    return gk_cli_gerror (cli, error);

  message = g_strdup_printf (_("Wrote the master key to %s. Keep it as safe as the keys "
                               "themselves."), argv[1]);
  print_file_result (cli, argv[1], message);
  return GK_CLI_OK;
}

static int
master_key_import (GkCli  *cli,
                   int     argc,
                   char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *message = NULL;
  gboolean force = FALSE;
  const GOptionEntry entries[] = {
    { "force", 0, 0, G_OPTION_ARG_NONE, &force,
      N_("Replace the key in GEMINI_KEYS_MASTER_KEY_FILE even if it holds another one"), NULL },
    G_OPTION_ENTRY_NULL
  };
  GkSecretStore *secrets;
  const char *file;
  GkDatabase *db;
  int status;

  status = gk_cli_parse_options (cli, _("FILE"),
                                 _("Reads the master key from FILE, checks it against the "
                                   "database and stores it: in the keyring, or in the file "
                                   "GEMINI_KEYS_MASTER_KEY_FILE names when it is set."),
                                 entries, 1, 1, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return GK_CLI_ERROR;

  /* Where the other commands look for the key is where it goes: the file
   * of a headless setup, else the keyring. */
  secrets = gk_cli_get_secret_store (cli);
  if (!gk_secret_store_import_file_full (secrets, db, argv[1], force, &error))
    return gk_cli_gerror (cli, error);

  file = gk_secret_store_get_file (secrets);
  if (file != NULL)
    message = g_strdup_printf (_("Imported the master key from %s into %s."), argv[1], file);
  else
    message = g_strdup_printf (_("Imported the master key from %s into the keyring."), argv[1]);
  print_file_result (cli, argv[1], message);
  return GK_CLI_OK;
}

static int
master_key_rotate (GkCli  *cli,
                   int     argc,
                   char  **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) new_key = NULL;
  GkSecretStore *secrets;
  GBytes *old_key;
  const char *file;
  int status;

  status = gk_cli_parse_options (cli, "",
                                 _("Re-encrypts every key under a new master key. If it is "
                                   "interrupted, the old master key keeps working."),
                                 NULL, 0, 0, &argc, &argv);
  if (status != GK_CLI_OK)
    return status;

  old_key = gk_cli_get_master_key (cli);
  if (old_key == NULL)
    return GK_CLI_ERROR;

  secrets = gk_cli_get_secret_store (cli);
  new_key = gk_secret_store_rotate_master_key (secrets, gk_cli_get_database (cli), old_key,
                                               NULL, &error);
  if (new_key == NULL)
    return gk_cli_gerror (cli, error);

  file = gk_secret_store_get_file (secrets);
  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      gk_json_add_boolean (builder, "rotated", TRUE);
      gk_json_add_string (builder, "file", file);
      json_builder_end_object (builder);
      gk_cli_print_json (cli, builder);
    }
  else if (file != NULL)
    printf (_("Rotated the master key; the new one is in %s. The old one is kept beside it, "
              "for copies and backups of the database made before now.\n"), file);
  else
    printf ("%s\n", _("Rotated the master key; the new one is in the keyring. The old one stays "
                      "there too, for copies and backups of the database made before now."));
  return GK_CLI_OK;
}

int
gk_cli_cmd_master_key (GkCli  *cli,
                       int     argc,
                       char  **argv)
{
  static const GkCliCommand master_key_commands[] = {
    { "export", master_key_export, N_("Write the master key to a 0600 file") },
    { "import", master_key_import, N_("Store a master key file in the keyring or the key file") },
    { "rotate", master_key_rotate, N_("Re-encrypt every key under a new master key") },
    { NULL, NULL, NULL },
  };

  return gk_cli_dispatch (cli, "master-key", master_key_commands, argc, argv);
}
