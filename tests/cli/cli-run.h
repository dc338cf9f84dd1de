/* cli-run.h: running gemini-keysctl from a test, as test-cli and
 * test-pg-cli do.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* What a run printed and how it ended. */
typedef struct
{
  int   status;
  char *out;
  char *err;
} GkTestRun;

void                 gk_test_run_clear    (GkTestRun           *run);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (GkTestRun, gk_test_run_clear)

/* A launcher in the C locale, capturing stdout and stderr; stdin is a
 * pipe for @with_input, else /dev/null (never a pipe a child that exits
 * early would leave the test writing into: SIGPIPE). */
GSubprocessLauncher *gk_test_cli_launcher (gboolean             with_input);
/* Runs $GEMINI_KEYSCTL with @args through @launcher, writes @input (may be
 * NULL) and reads both outputs to the end. */
GkTestRun            gk_test_cli_run      (GSubprocessLauncher *launcher,
                                           const char * const  *args,
                                           const char          *input);

G_END_DECLS
