/* gk-cli.h: shared state of gemini-keysctl's commands.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include "gk-core.h"

G_BEGIN_DECLS

/* Exit codes. */
#define GK_CLI_OK    0
#define GK_CLI_ERROR 1
#define GK_CLI_USAGE 2

typedef struct _GkCli GkCli;

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

G_END_DECLS
