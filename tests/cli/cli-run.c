/* cli-run.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <string.h>

#include "cli-run.h"

void
gk_test_run_clear (GkTestRun *run)
{
  g_clear_pointer (&run->out, g_free);
  g_clear_pointer (&run->err, g_free);
}

GSubprocessLauncher *
gk_test_cli_launcher (gboolean with_input)
{
  GSubprocessLauncher *launcher;

  launcher = g_subprocess_launcher_new ((with_input ? G_SUBPROCESS_FLAGS_STDIN_PIPE : 0) |
                                        G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_PIPE);
  if (!with_input)
    g_subprocess_launcher_set_stdin_file_path (launcher, "/dev/null");
  g_subprocess_launcher_setenv (launcher, "LC_ALL", "C.UTF-8", TRUE);
  g_subprocess_launcher_unsetenv (launcher, "LANGUAGE");
  return launcher;
}

GkTestRun
gk_test_cli_run (GSubprocessLauncher *launcher,
                 const char * const  *args,
                 const char          *input)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  const char *binary = g_getenv ("GEMINI_KEYSCTL");
  GkTestRun run = { 0 };

  g_assert_nonnull (binary);
  g_ptr_array_add (argv, (gpointer) binary);
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);

  process = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, &error);
  g_assert_no_error (error);
  if (input != NULL)
    {
      GOutputStream *in = g_subprocess_get_stdin_pipe (process);

      /* Written before reading: the input is far smaller than a pipe's
       * buffer. A command that exits without reading it (a usage error)
       * closes the pipe first; that is not the test's failure. */
      g_output_stream_write_all (in, input, strlen (input), NULL, NULL, NULL);
    }
  /* Closes stdin (nothing more to send) and reads both outputs. */
  g_subprocess_communicate_utf8 (process, NULL, NULL, &run.out, &run.err, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (process));
  run.status = g_subprocess_get_exit_status (process);

  if (g_test_verbose ())
    {
      g_autofree char *line = g_strjoinv (" ", (char **) args);
      g_printerr ("$ gemini-keysctl %s → %d\n%s%s", line, run.status, run.out, run.err);
    }
  return run;
}
