/* gk-cli.c: gemini-keysctl's entry point, global options and the helpers
 * its commands share (option parsing, secret input, tables, JSON).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <errno.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "gk-cli.h"

/* Longer than any API key; anything bigger on stdin is a mistake. */
#define SECRET_MAX_LEN 4096

struct _GkCli
{
  gboolean       json;
  char          *target;       /* --database, NULL for the default */
  GkDatabase    *db;
  gboolean       db_created;   /* this command made the database file */
  gboolean       db_removed;   /* …and removed it again: do not make it anew */
  GkSecretStore *secrets;
  GBytes        *master_key;
  GkKeyStore    *key_store;
  GkPool        *pool;
  char          *actor;
};

struct _GkCliTable
{
  guint      n_columns;
  GPtrArray *rows;   /* GStrv, the headers first */
};

static int cmd_serve_or_missing (GkCli *cli, int argc, char **argv);

static const GkCliCommand commands[] = {
  { "db",         gk_cli_cmd_db,         N_("Create or upgrade the database") },
  { "key",        gk_cli_cmd_key,        N_("Add, list, edit, skip and delete keys") },
  { "keys",       gk_cli_cmd_keys,       N_("Compare keys, forecast quotas, list rotation spikes") },
  { "select",     gk_cli_cmd_select,     N_("Show the key a request would get now") },
  { "track",      gk_cli_cmd_track,      N_("Record one use of a key") },
  { "usage",      gk_cli_cmd_usage,      N_("Show the usage log") },
  { "rotations",  gk_cli_cmd_rotations,  N_("Show the rotation log") },
  { "audit",      gk_cli_cmd_audit,      N_("Show the audit log of administrative actions") },
  { "dashboard",  gk_cli_cmd_dashboard,  N_("Show the dashboard’s figures") },
  { "hygiene",    gk_cli_cmd_hygiene,    N_("Keys worth deleting, the master key’s age") },
  { "budget",     gk_cli_cmd_budget,     N_("Show the spend, set the pool’s monthly budget") },
  { "quotas",     gk_cli_cmd_quotas,     N_("Reset quotas") },
  { "token",      gk_cli_cmd_token,      N_("Manage the gateway’s client tokens") },
  { "serve",      cmd_serve_or_missing,  N_("Run the local gateway") },
  { "export",     gk_cli_cmd_export,     N_("Export logs or keys as CSV") },
  { "master-key", gk_cli_cmd_master_key, N_("Export, import or rotate the master key") },
  { NULL, NULL, NULL },
};

static int
cmd_serve_or_missing (GkCli  *cli,
                      int     argc,
                      char  **argv)
{
#ifdef HAVE_CLI_GATEWAY
  return gk_cli_cmd_serve (cli, argc, argv);
#else
  return gk_cli_error (cli, _("This build of gemini-keysctl has no gateway"));
#endif
}

static void
gk_cli_clear (GkCli *cli)
{
  g_clear_object (&cli->pool);
  g_clear_object (&cli->key_store);
  g_clear_pointer (&cli->master_key, g_bytes_unref);
  g_clear_object (&cli->secrets);
  g_clear_object (&cli->db);
  g_clear_pointer (&cli->actor, g_free);
  g_clear_pointer (&cli->target, g_free);
}

static void
print_commands (FILE               *stream,
                const char         *group,
                const GkCliCommand *list)
{
  int width = 0;

  for (const GkCliCommand *c = list; c->name != NULL; c++)
    width = MAX (width, (int) strlen (c->name));

  for (const GkCliCommand *c = list; c->name != NULL; c++)
    fprintf (stream, "  %s%s%-*s  %s\n",
             group ? group : "", group ? " " : "",
             width, c->name, _(c->summary));
}

static void
print_help (FILE *stream)
{
  fprintf (stream, _("Usage: %s [--json] [--database URI|PATH] COMMAND [OPTION…]\n"),
           g_get_prgname ());
  fprintf (stream, "\n%s\n\n", _("Manages the Gemini API keys of Gemini Keys."));
  fprintf (stream, "%s\n", _("Commands:"));
  print_commands (stream, NULL, commands);
  fprintf (stream, "\n%s\n", _("Global options:"));
  fprintf (stream, "  --json                    %s\n",
           _("Print one JSON document instead of text"));
  fprintf (stream, "  --database URI|PATH       %s\n",
           _("Use this database: a postgresql:// URI (no password) or an SQLite file "
             "(default: $GEMINI_KEYS_DATABASE, else the local file)"));
  fprintf (stream, "  --version                 %s\n", _("Print the version"));
  fprintf (stream, "\n%s\n",
           _("Run “gemini-keysctl COMMAND --help” for a command’s options. API keys are "
             "read from standard input, never from the command line."));
}

int
gk_cli_check_target (GkCli      *cli,
                     const char *option,
                     const char *target)
{
  if (*target == '\0')
    return gk_cli_usage_error (cli, _("%s needs a PostgreSQL URI or a file path"), option);
  if (gk_database_target_has_password (target))
    {
      g_autofree char *shown = gk_database_redact_target (target);

      return gk_cli_usage_error (cli,
                                 _("Refusing the password given with %s %s: the command line "
                                   "is visible to other users. Set GEMINI_KEYS_DATABASE "
                                   "instead, or give the password in ~/.pgpass (or the file "
                                   "PGPASSFILE names) or in PGPASSWORD."),
                                 option, shown);
    }
  return GK_CLI_OK;
}

/* Takes the --database option's value. */
static int
set_target (GkCli      *cli,
            const char *target)
{
  int status = gk_cli_check_target (cli, "--database", target);

  if (status != GK_CLI_OK)
    return status;
  g_free (cli->target);
  cli->target = g_strdup (target);
  return GK_CLI_OK;
}

int
main (int    argc,
      char **argv)
{
  GkCli cli = { 0 };
  int status;
  int i;

  /* Keys pass through this process: no core dumps, no ptrace by others. */
  gk_hardening_init ();
  gk_i18n_init ();
  g_set_prgname ("gemini-keysctl");

  /* Global options come before the command; --json is also accepted after
   * it (each command's option context knows it). */
  for (i = 1; i < argc && argv[i][0] == '-'; i++)
    {
      if (g_str_equal (argv[i], "--json"))
        cli.json = TRUE;
      else if (g_str_equal (argv[i], "--help") || g_str_equal (argv[i], "-h"))
        {
          print_help (stdout);
          return GK_CLI_OK;
        }
      else if (g_str_equal (argv[i], "--database") || g_str_has_prefix (argv[i], "--database="))
        {
          const char *value = strchr (argv[i], '=');

          if (value != NULL)
            value++;
          else if (++i < argc)
            value = argv[i];
          else
            return gk_cli_usage_error (&cli, _("%s needs a PostgreSQL URI or a file path"),
                                       "--database");
          status = set_target (&cli, value);
          if (status != GK_CLI_OK)
            {
              gk_cli_clear (&cli);
              return status;
            }
        }
      else if (g_str_equal (argv[i], "--version"))
        {
          printf ("gemini-keysctl %s\n", PACKAGE_VERSION);
          return GK_CLI_OK;
        }
      else if (g_str_equal (argv[i], "--"))
        {
          i++;
          break;
        }
      else
        return gk_cli_usage_error (&cli, _("Unknown option “%s”"), argv[i]);
    }

  if (i >= argc)
    {
      print_help (stderr);
      return GK_CLI_USAGE;
    }

  if (g_str_equal (argv[i], "help"))
    {
      print_help (stdout);
      return GK_CLI_OK;
    }

  status = -1;
  for (const GkCliCommand *c = commands; c->name != NULL; c++)
    {
      if (g_str_equal (c->name, argv[i]))
        {
          status = c->func (&cli, argc - i, argv + i);
          break;
        }
    }
  if (status < 0)
    status = gk_cli_usage_error (&cli, _("Unknown command “%s”"), argv[i]);

  gk_cli_clear (&cli);

  if (fflush (stdout) != 0 || ferror (stdout))
    {
      fprintf (stderr, "gemini-keysctl: %s\n", _("Cannot write the output"));
      return GK_CLI_ERROR;
    }
  return status;
}

gboolean
gk_cli_json (GkCli *cli)
{
  return cli->json;
}

static void
print_message (const char *format,
               va_list     args)
{
  g_autofree char *message = g_strdup_vprintf (format, args);

  fprintf (stderr, "gemini-keysctl: %s\n", message);
}

int
gk_cli_error (GkCli      *cli,
              const char *format,
              ...)
{
  va_list args;

  va_start (args, format);
  print_message (format, args);
  va_end (args);
  return GK_CLI_ERROR;
}

int
gk_cli_usage_error (GkCli      *cli,
                    const char *format,
                    ...)
{
  va_list args;

  va_start (args, format);
  print_message (format, args);
  va_end (args);
  fprintf (stderr, _("Try “%s --help” for more information.\n"), g_get_prgname ());
  return GK_CLI_USAGE;
}

int
gk_cli_gerror (GkCli        *cli,
               const GError *error)
{
  return gk_cli_error (cli, "%s", error->message);
}

char *
gk_cli_get_target (GkCli *cli)
{
  return cli->target != NULL ? g_strdup (cli->target) : gk_database_default_target ();
}

GkDatabase *
gk_cli_get_database (GkCli *cli)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *target = NULL;

  if (cli->db != NULL)
    return cli->db;
  /* The error that made it go was reported already. */
  if (cli->db_removed)
    return NULL;

  target = gk_cli_get_target (cli);
  /* Only a file is ours to remove again (remove_created_database()). */
  cli->db_created = !gk_database_target_is_remote (target)
                    && !g_file_test (target, G_FILE_TEST_EXISTS);
  cli->db = gk_database_open (target, NULL, &error);
  if (cli->db == NULL)
    {
      g_autofree char *shown = gk_database_redact_target (target);

      gk_cli_error (cli, _("Cannot open the database “%s”: %s"), shown, error->message);
      if (g_error_matches (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_TOO_NEW))
        fprintf (stderr, "%s\n", _("Update Gemini Keys to use this database."));
    }
  return cli->db;
}

GkSecretStore *
gk_cli_get_secret_store (GkCli *cli)
{
  if (cli->secrets == NULL)
    cli->secrets = gk_secret_store_new ();
  return cli->secrets;
}

/* A command that stops because the master key is out of reach wrote
 * nothing: a database file it created on the way goes again, so a failed
 * first try leaves no empty database behind. */
static void
remove_created_database (GkCli *cli)
{
  g_autofree char *path = NULL;
  static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };

  if (!cli->db_created || cli->db == NULL)
    return;
  path = g_strdup (gk_database_get_path (cli->db));
  g_clear_object (&cli->db);
  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *file = g_strconcat (path, suffixes[i], NULL);

      g_unlink (file);
    }
  cli->db_created = FALSE;
  cli->db_removed = TRUE;
}

GBytes *
gk_cli_get_master_key (GkCli *cli)
{
  g_autoptr(GError) error = NULL;
  GkDatabase *db;

  if (cli->master_key != NULL)
    return cli->master_key;

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return NULL;

  cli->master_key = gk_secret_store_unlock (gk_cli_get_secret_store (cli), db, NULL, &error);
  if (cli->master_key == NULL)
    {
      /* The message says what to do, for the keyring or the key file in
       * use; a second line would only repeat or contradict it. */
      gk_cli_error (cli, _("Cannot unlock the master key: %s"), error->message);
      remove_created_database (cli);
    }
  return cli->master_key;
}

GkKeyStore *
gk_cli_get_key_store (GkCli *cli)
{
  GBytes *master_key;

  if (cli->key_store != NULL)
    return cli->key_store;

  master_key = gk_cli_get_master_key (cli);
  if (master_key == NULL)
    return NULL;

  cli->key_store = gk_key_store_new (cli->db, master_key);
  /* A long-running command (serve) follows rotations by other processes. */
  gk_key_store_set_secret_store (cli->key_store, gk_cli_get_secret_store (cli));
  return cli->key_store;
}

GkPool *
gk_cli_get_pool (GkCli *cli)
{
  GkDatabase *db;

  if (cli->pool != NULL)
    return cli->pool;

  db = gk_cli_get_database (cli);
  if (db == NULL)
    return NULL;

  cli->pool = gk_pool_new (db, NULL);
  return cli->pool;
}

const char *
gk_cli_get_actor (GkCli *cli)
{
  if (cli->actor == NULL)
    cli->actor = g_strdup_printf ("manual:%s", g_get_user_name ());
  return cli->actor;
}

int
gk_cli_parse_options (GkCli              *cli,
                      const char         *parameter_string,
                      const char         *summary,
                      const GOptionEntry *entries,
                      int                 n_args_min,
                      int                 n_args_max,
                      int                *argc,
                      char             ***argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  const GOptionEntry json_entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &cli->json,
      N_("Print one JSON document instead of text"), NULL },
    G_OPTION_ENTRY_NULL
  };
  int n_args;

  context = g_option_context_new (parameter_string);
  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  if (summary != NULL)
    g_option_context_set_summary (context, summary);
  if (entries != NULL)
    g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  g_option_context_add_main_entries (context, json_entries, GETTEXT_PACKAGE);

  if (!g_option_context_parse (context, argc, argv, &error))
    return gk_cli_usage_error (cli, "%s", error->message);

  /* What is left: argv[0] (the command) and the positional arguments. */
  n_args = *argc - 1;
  if (n_args > 0 && g_str_equal ((*argv)[1], "--"))
    {
      memmove (&(*argv)[1], &(*argv)[2], sizeof (char *) * (gsize) (*argc - 1));
      (*argc)--;
      n_args--;
    }
  if (n_args < n_args_min)
    return gk_cli_usage_error (cli, _("Missing argument: %s"), parameter_string);
  if (n_args_max >= 0 && n_args > n_args_max)
    return gk_cli_usage_error (cli, _("Unexpected argument “%s”"),
                               (*argv)[1 + n_args_max]);
  return GK_CLI_OK;
}

int
gk_cli_dispatch (GkCli              *cli,
                 const char         *group,
                 const GkCliCommand *list,
                 int                 argc,
                 char              **argv)
{
  const char *name = argc > 1 ? argv[1] : NULL;

  if (name != NULL && g_str_equal (name, "--json"))
    {
      /* "--json" between the group and its subcommand. */
      cli->json = TRUE;
      return gk_cli_dispatch (cli, group, list, argc - 1, argv + 1);
    }

  if (name != NULL && (g_str_equal (name, "--help") || g_str_equal (name, "-h")))
    {
      printf (_("Usage: %s %s COMMAND [OPTION…]\n\n"), g_get_prgname (), group);
      print_commands (stdout, group, list);
      return GK_CLI_OK;
    }

  for (const GkCliCommand *c = list; name != NULL && c->name != NULL; c++)
    {
      if (g_str_equal (c->name, name))
        return c->func (cli, argc - 1, argv + 1);
    }

  if (name == NULL)
    fprintf (stderr, _("gemini-keysctl: “%s” needs a command\n"), group);
  else
    fprintf (stderr, _("gemini-keysctl: Unknown command “%s %s”\n"), group, name);
  fprintf (stderr, "%s\n", _("Commands:"));
  print_commands (stderr, group, list);
  return GK_CLI_USAGE;
}

gboolean
gk_cli_parse_id (GkCli      *cli,
                 const char *text,
                 gint64     *id)
{
  guint64 value;

  if (!g_ascii_string_to_unsigned (text, 10, 1, G_MAXINT64, &value, NULL))
    {
      gk_cli_usage_error (cli, _("“%s” is not a valid id (a positive number)"), text);
      return FALSE;
    }
  *id = (gint64) value;
  return TRUE;
}

/* The terminal settings to restore if the user interrupts the no-echo
 * prompt; otherwise their shell would be left without echo. */
static struct termios prompt_saved_termios;

static void
prompt_interrupted (int signum)
{
  tcsetattr (STDIN_FILENO, TCSAFLUSH, &prompt_saved_termios);
  signal (signum, SIG_DFL);
  raise (signum);
}

/* Reads a line from the terminal on stdin with echo off. */
static gboolean
read_secret_from_terminal (const char *prompt,
                           char       *buffer,
                           gsize       size,
                           gsize      *len,
                           GError    **error)
{
  struct termios saved, quiet;
  gboolean ok = TRUE;
  char c;

  if (tcgetattr (STDIN_FILENO, &saved) != 0)
    {
      int errsv = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   _("Cannot read from the terminal: %s"), g_strerror (errsv));
      return FALSE;
    }

  quiet = saved;
  quiet.c_lflag &= ~(tcflag_t) ECHO;
  quiet.c_lflag |= ECHONL;
  prompt_saved_termios = saved;
  signal (SIGINT, prompt_interrupted);
  signal (SIGTERM, prompt_interrupted);
  /* Echo goes off before the prompt shows, so nothing typed after it is
   * ever echoed. */
  tcsetattr (STDIN_FILENO, TCSAFLUSH, &quiet);
  fputs (prompt, stderr);
  fflush (stderr);

  *len = 0;
  for (;;)
    {
      ssize_t n = read (STDIN_FILENO, &c, 1);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0 || c == '\n')
        break;
      if (*len + 1 >= size)
        {
          ok = FALSE;
          continue;
        }
      buffer[(*len)++] = c;
    }
  c = 0;

  tcsetattr (STDIN_FILENO, TCSAFLUSH, &saved);
  signal (SIGINT, SIG_DFL);
  signal (SIGTERM, SIG_DFL);

  if (!ok)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                 _("The input is too long to be an API key"));
  return ok;
}

static gboolean
read_secret_from_pipe (char    *buffer,
                       gsize    size,
                       gsize   *len,
                       GError **error)
{
  *len = 0;
  for (;;)
    {
      ssize_t n = read (STDIN_FILENO, buffer + *len, size - 1 - *len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int errsv = errno;
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                       _("Cannot read the API key from standard input: %s"),
                       g_strerror (errsv));
          return FALSE;
        }
      if (n == 0)
        return TRUE;
      *len += (gsize) n;
      if (*len >= size - 1)
        {
          char extra;

          /* Full buffer: fine only if the input ends exactly here. */
          n = read (STDIN_FILENO, &extra, 1);
          extra = 0;
          if (n == 0)
            return TRUE;
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                       _("The input is too long to be an API key"));
          return FALSE;
        }
    }
}

char *
gk_cli_read_secret (GkCli       *cli,
                    const char  *prompt,
                    GError     **error)
{
  char *buffer = g_malloc0 (SECRET_MAX_LEN);
  gsize len = 0;
  gboolean ok;

  if (isatty (STDIN_FILENO))
    ok = read_secret_from_terminal (prompt, buffer, SECRET_MAX_LEN, &len, error);
  else
    ok = read_secret_from_pipe (buffer, SECRET_MAX_LEN, &len, error);

  if (!ok)
    {
      gk_crypto_wipe (buffer, SECRET_MAX_LEN);
      g_free (buffer);
      return NULL;
    }

  /* One trailing newline (from echo or a file), LF or CRLF. */
  if (len > 0 && buffer[len - 1] == '\n')
    buffer[--len] = '\0';
  if (len > 0 && buffer[len - 1] == '\r')
    buffer[--len] = '\0';

  if (len == 0 || strlen (buffer) != len)
    {
      gk_crypto_wipe (buffer, SECRET_MAX_LEN);
      g_free (buffer);
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           _("No API key was given on standard input (for example: "
                             "gemini-keysctl key add --name NAME < key.txt)"));
      return NULL;
    }

  return buffer;
}

gboolean
gk_cli_confirm (GkCli      *cli,
                const char *question)
{
  char answer[16] = { 0 };

  if (!isatty (STDIN_FILENO))
    return FALSE;

  fprintf (stderr, "%s [y/N] ", question);
  fflush (stderr);
  if (fgets (answer, sizeof answer, stdin) == NULL)
    return FALSE;
  g_strstrip (answer);
  /* English answers always work, a translated "y" too. */
  return g_ascii_strcasecmp (answer, "y") == 0 || g_ascii_strcasecmp (answer, "yes") == 0 ||
         g_strcmp0 (answer, C_("yes answer", "y")) == 0;
}

void
gk_cli_print_json (GkCli       *cli,
                   JsonBuilder *builder)
{
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = json_builder_get_root (builder);
  g_autofree char *text = NULL;

  json_generator_set_pretty (generator, TRUE);
  json_generator_set_indent (generator, 2);
  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, NULL);
  printf ("%s\n", text);
}

char *
gk_cli_format_time (gint64 unix_time)
{
  g_autoptr(GDateTime) utc = NULL;
  g_autoptr(GDateTime) local = NULL;

  if (unix_time <= 0)
    return g_strdup ("—");

  utc = g_date_time_new_from_unix_utc (unix_time);
  if (utc == NULL)
    return g_strdup ("?");
  local = g_date_time_to_local (utc);
  return g_date_time_format (local, "%Y-%m-%d %H:%M");
}

/* The record shapes and member helpers live in the core (gk-json.c), shared
 * with the gateway's admin API; these names stay for the commands' use. */
GkCliTable *
gk_cli_table_new (const char *first_header,
                  ...)
{
  GkCliTable *table = g_new0 (GkCliTable, 1);
  g_autoptr(GStrvBuilder) headers = g_strv_builder_new ();
  va_list args;

  va_start (args, first_header);
  for (const char *h = first_header; h != NULL; h = va_arg (args, const char *))
    g_strv_builder_add (headers, h);
  va_end (args);

  table->rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  g_ptr_array_add (table->rows, g_strv_builder_end (headers));
  table->n_columns = g_strv_length (table->rows->pdata[0]);
  return table;
}

/* A row of @args, one string per column: copied, or taken when @take. */
static void
table_add_row_va (GkCliTable *table,
                  gboolean    take,
                  va_list     args)
{
  char **row = g_new0 (char *, table->n_columns + 1);

  for (guint i = 0; i < table->n_columns; i++)
    {
      char *cell = va_arg (args, char *);

      row[i] = cell == NULL ? g_strdup ("") : take ? cell : g_strdup (cell);
    }
  g_ptr_array_add (table->rows, row);
}

void
gk_cli_table_add_row (GkCliTable *table,
                      ...)
{
  va_list args;

  va_start (args, table);
  table_add_row_va (table, FALSE, args);
  va_end (args);
}

void
gk_cli_table_take_row (GkCliTable *table,
                       ...)
{
  va_list args;

  va_start (args, table);
  table_add_row_va (table, TRUE, args);
  va_end (args);
}

void
gk_cli_table_print (GkCliTable *table)
{
  g_autofree glong *widths = g_new0 (glong, table->n_columns);

  for (guint r = 0; r < table->rows->len; r++)
    {
      char **row = table->rows->pdata[r];

      for (guint c = 0; c < table->n_columns; c++)
        widths[c] = MAX (widths[c], g_utf8_strlen (row[c], -1));
    }

  for (guint r = 0; r < table->rows->len; r++)
    {
      char **row = table->rows->pdata[r];
      g_autoptr(GString) line = g_string_new (NULL);

      for (guint c = 0; c < table->n_columns; c++)
        {
          g_string_append (line, row[c]);
          if (c + 1 < table->n_columns)
            {
              for (glong pad = g_utf8_strlen (row[c], -1); pad < widths[c] + 2; pad++)
                g_string_append_c (line, ' ');
            }
        }
      /* Trailing blanks of empty last cells help nobody. */
      while (line->len > 0 && line->str[line->len - 1] == ' ')
        g_string_truncate (line, line->len - 1);
      printf ("%s\n", line->str);
    }
}

void
gk_cli_table_free (GkCliTable *table)
{
  if (table == NULL)
    return;
  g_ptr_array_unref (table->rows);
  g_free (table);
}

gboolean
gk_cli_table_print_rows (GkCliTable    *table,
                         GPtrArray     *rows,
                         GkCliTableRow  table_row,
                         const char    *empty)
{
  g_autoptr(GkCliTable) owned = table;

  if (rows->len == 0)
    {
      printf ("%s\n", empty);
      return FALSE;
    }
  for (guint i = 0; i < rows->len; i++)
    table_row (table, rows->pdata[i]);
  gk_cli_table_print (table);
  return TRUE;
}

int
gk_cli_print_rows (GkCli         *cli,
                   GPtrArray     *rows,
                   GkJsonAddRow   json_row,
                   GkCliTable    *table,
                   GkCliTableRow  table_row,
                   const char    *empty)
{
  if (gk_cli_json (cli))
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      gk_cli_table_free (table);
      gk_json_add_rows (builder, NULL, rows, json_row);
      gk_cli_print_json (cli, builder);
    }
  else
    gk_cli_table_print_rows (table, rows, table_row, empty);
  return GK_CLI_OK;
}
