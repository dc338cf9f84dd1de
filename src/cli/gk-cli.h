/* gk-cli.h: shared state of gemini-keysctl's commands.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <json-glib/json-glib.h>

#include "gk-core.h"

G_BEGIN_DECLS

/* Exit codes. */
#define GK_CLI_OK    0
#define GK_CLI_ERROR 1
#define GK_CLI_USAGE 2

typedef struct _GkCli GkCli;

/* A command or subcommand: argv[0] is its name. */
typedef int (*GkCliCommandFunc) (GkCli  *cli,
                                 int     argc,
                                 char  **argv);

typedef struct
{
  const char       *name;
  GkCliCommandFunc  func;
  const char       *summary;   /* N_() */
} GkCliCommand;

/* The database to open: --database, else gk_database_default_target().
 * A connection string is a secret: show it through
 * gk_database_redact_target(). */
char       *gk_cli_get_target    (GkCli      *cli);
/* GK_CLI_OK, or GK_CLI_USAGE after saying why: an empty @target, or a
 * connection string with a password, given on the command line with
 * @option (which every user of the machine can read). */
int         gk_cli_check_target  (GkCli      *cli,
                                  const char *option,
                                  const char *target);
/* Opened lazily; errors are printed and NULL returned. */
GkDatabase *gk_cli_get_database  (GkCli      *cli);
/* Unlocks the master key (keyring or GEMINI_KEYS_MASTER_KEY_FILE). */
GkKeyStore *gk_cli_get_key_store (GkCli      *cli);
GkPool     *gk_cli_get_pool      (GkCli      *cli);
gboolean    gk_cli_json          (GkCli      *cli);
/* Prints "gemini-keysctl: <message>" on stderr; returns GK_CLI_ERROR. */
int         gk_cli_error         (GkCli      *cli,
                                  const char *format,
                                  ...) G_GNUC_PRINTF (2, 3);

/* The gateway's commands (src/cli/gk-cli-gateway.c). argv[0] is the
 * command name ("serve", or "test" for `key test`). */
int         gk_cli_cmd_serve     (GkCli      *cli,
                                  int         argc,
                                  char      **argv);
int         gk_cli_cmd_key_test  (GkCli      *cli,
                                  int         argc,
                                  char      **argv);

/* Helpers shared by the command files (gk-cli.c). */

/* Like gk_cli_error() but for a mistake in the command line: prints the
 * message and a pointer to --help; returns GK_CLI_USAGE. */
int         gk_cli_usage_error   (GkCli      *cli,
                                  const char *format,
                                  ...) G_GNUC_PRINTF (2, 3);
/* Prints @error's message; returns GK_CLI_ERROR. */
int         gk_cli_gerror        (GkCli      *cli,
                                  const GError *error);
/* The secret store the key commands use: the keyring, or the file named
 * by GEMINI_KEYS_MASTER_KEY_FILE. Created lazily, never NULL. */
GkSecretStore *gk_cli_get_secret_store (GkCli *cli);
/* The unlocked master key (secure bytes); errors are printed and NULL
 * returned. */
GBytes     *gk_cli_get_master_key (GkCli     *cli);

/* Parses a command's options (plus the global --json) from @argc/@argv,
 * leaving argv[0] and the positional arguments. @n_args_min/@n_args_max
 * bound the positional arguments (max -1: no bound). Returns GK_CLI_OK, or
 * GK_CLI_USAGE after printing the problem. */
int         gk_cli_parse_options (GkCli              *cli,
                                  const char         *parameter_string,
                                  const char         *summary,
                                  const GOptionEntry *entries,
                                  int                 n_args_min,
                                  int                 n_args_max,
                                  int                *argc,
                                  char             ***argv);
/* Runs the subcommand named by argv[1] from @commands; prints the list
 * when it is missing or unknown (GK_CLI_USAGE). */
int         gk_cli_dispatch      (GkCli              *cli,
                                  const char         *group,
                                  const GkCliCommand *commands,
                                  int                 argc,
                                  char              **argv);
/* A positive row id from the command line; FALSE after printing a usage
 * error. */
gboolean    gk_cli_parse_id      (GkCli      *cli,
                                  const char *text,
                                  gint64     *id);

/* Reads an API key from stdin: a no-echo prompt on a terminal, otherwise
 * everything up to EOF with the trailing newline stripped. The result must
 * be freed with gk_crypto_wipe_string(). */
char       *gk_cli_read_secret   (GkCli      *cli,
                                  const char *prompt,
                                  GError    **error);
/* Asks @question on the terminal; TRUE only for an explicit yes. */
gboolean    gk_cli_confirm       (GkCli      *cli,
                                  const char *question);
/* The name recorded as triggered_by for manual actions: "manual:<user>". */
const char *gk_cli_get_actor     (GkCli      *cli);

/* Output. */
void        gk_cli_print_json    (GkCli      *cli,
                                  JsonBuilder *builder);
/* "2026-03-15 05:00" in local time; "—" (or "" in CSV) for 0. */
char       *gk_cli_format_time   (gint64      unix_time);

/* An aligned text table. */
typedef struct _GkCliTable GkCliTable;

GkCliTable *gk_cli_table_new     (const char *first_header,
                                  ...) G_GNUC_NULL_TERMINATED;
/* Takes the strings (g_strdup'ed) of one row; as many as headers. */
void        gk_cli_table_add_row (GkCliTable *table,
                                  ...);
/* The same, taking ownership of the strings. */
void        gk_cli_table_take_row (GkCliTable *table,
                                   ...);
void        gk_cli_table_print   (GkCliTable *table);
void        gk_cli_table_free    (GkCliTable *table);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GkCliTable, gk_cli_table_free)

/* Adds one row to @table (gk_cli_table_take_row()). */
typedef void (*GkCliTableRow) (GkCliTable    *table,
                               gconstpointer  row);

/* Prints @table (made with its headers; taken) with a line per row, or
 * @empty when there are no rows; TRUE when it printed the table. */
gboolean    gk_cli_table_print_rows (GkCliTable    *table,
                                     GPtrArray     *rows,
                                     GkCliTableRow  table_row,
                                     const char    *empty);
/* Prints @rows with --json as an array of @json_row's objects, else as
 * gk_cli_table_print_rows() does; returns GK_CLI_OK. */
int         gk_cli_print_rows       (GkCli         *cli,
                                     GPtrArray     *rows,
                                     GkJsonAddRow   json_row,
                                     GkCliTable    *table,
                                     GkCliTableRow  table_row,
                                     const char    *empty);

/* The command groups (one file each). */
int         gk_cli_cmd_db        (GkCli *cli, int argc, char **argv);
int         gk_cli_cmd_key       (GkCli *cli, int argc, char **argv);
int         gk_cli_cmd_keys      (GkCli *cli, int argc, char **argv);
int         gk_cli_cmd_select    (GkCli *cli, int argc, char **argv);
int         gk_cli_cmd_track     (GkCli *cli, int argc, char **argv);
int         gk_cli_cmd_usage     (GkCli *cli, int argc, char **argv);
int         gk_cli_cmd_rotations (GkCli *cli, int argc, char **argv);
int         gk_cli_cmd_audit     (GkCli *cli, int argc, char **argv);
int         gk_cli_cmd_budget    (GkCli *cli, int argc, char **argv);
int         gk_cli_cmd_hygiene   (GkCli *cli, int argc, char **argv);
int         gk_cli_cmd_dashboard (GkCli *cli, int argc, char **argv);
int         gk_cli_cmd_quotas    (GkCli *cli, int argc, char **argv);
int         gk_cli_cmd_token     (GkCli *cli, int argc, char **argv);
int         gk_cli_cmd_export    (GkCli *cli, int argc, char **argv);
int         gk_cli_cmd_master_key (GkCli *cli, int argc, char **argv);

G_END_DECLS
