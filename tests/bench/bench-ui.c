/* bench-ui.c: start-up time to the first frame and resident memory of the
 * desktop app, with 0 and 1,000,000 usage rows.
 *
 * Needs a display (Xvfb) and runs the real binary with GK_BENCH=1, which
 * prints its own figures once the unlocked window drew its first frame:
 *   xvfb-run -a meson test -C _build --benchmark --suite bench bench-ui -v
 * or run _build/tests/ui/bench-ui directly under xvfb-run.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <gio/gio.h>

#include "gk-test-util.h"

static gboolean
run_fixture (const char  *dir,
             const char  *key_file,
             gint64       rows,
             GError     **error)
{
  g_autofree char *db_path = g_build_filename (dir, "keys.db", NULL);
  g_autofree char *rows_text = g_strdup_printf ("%" G_GINT64_FORMAT, rows);
  g_autoptr(GSubprocess) fixture = NULL;

  fixture = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE, error,
                              GK_FIXTURE_PATH, "--db", db_path, "--master-key-file", key_file,
                              "--bulk-usage", rows_text, NULL);
  if (fixture == NULL)
    return FALSE;

  return g_subprocess_wait_check (fixture, NULL, error);
}

static gboolean
measure (const char  *dir,
         const char  *key_file,
         gint64       rows,
         GError     **error)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) app = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  double spawn_to_frame_ms = -1;
  double app_frame_ms = -1;
  long rss_frame = -1, rss_settled = -1;
  gint64 start;
  char *line;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_DATA_DIR", dir, TRUE);
  g_subprocess_launcher_setenv (launcher, "GEMINI_KEYS_MASTER_KEY_FILE", key_file, TRUE);
  g_subprocess_launcher_setenv (launcher, "GK_BENCH", "1", TRUE);
  g_subprocess_launcher_setenv (launcher, "GSETTINGS_BACKEND", "memory", TRUE);
  /* No accessibility bus under Xvfb; do not time the attempt. */
  g_subprocess_launcher_setenv (launcher, "NO_AT_BRIDGE", "1", TRUE);
  g_subprocess_launcher_setenv (launcher, "GTK_A11Y", "none", TRUE);

  start = g_get_monotonic_time ();
  app = g_subprocess_launcher_spawn (launcher, error, GK_APP_PATH, NULL);
  if (app == NULL)
    return FALSE;

  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (app));
  while ((line = g_data_input_stream_read_line (out, NULL, NULL, NULL)) != NULL)
    {
      if (g_str_has_prefix (line, "first-frame-ms "))
        {
          spawn_to_frame_ms = (g_get_monotonic_time () - start) / 1000.0;
          app_frame_ms = g_ascii_strtod (line + strlen ("first-frame-ms "), NULL);
        }
      else if (g_str_has_prefix (line, "rss-first-frame-kib "))
        rss_frame = strtol (line + strlen ("rss-first-frame-kib "), NULL, 10);
      else if (g_str_has_prefix (line, "rss-settled-kib "))
        rss_settled = strtol (line + strlen ("rss-settled-kib "), NULL, 10);
      g_free (line);
    }

  if (!g_subprocess_wait_check (app, NULL, error))
    return FALSE;
  if (spawn_to_frame_ms < 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "The app printed no first frame");
      return FALSE;
    }

  g_print ("%8" G_GINT64_FORMAT " usage rows: first frame %.0f ms after spawn "
           "(%.0f ms after main), RSS %.1f MiB at first frame, %.1f MiB settled\n",
           rows, spawn_to_frame_ms, app_frame_ms, rss_frame / 1024.0, rss_settled / 1024.0);
  return TRUE;
}

int
main (int   argc,
      char *argv[])
{
  const gint64 row_counts[] = { 0, 1000000 };
  g_autofree char *root = NULL;
  g_autofree char *key_file = NULL;
  g_autoptr(GError) error = NULL;
  int status = 0;

  root = g_dir_make_tmp ("gk-bench-ui-XXXXXX", &error);
  if (root == NULL)
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }
  key_file = g_build_filename (root, "master.key", NULL);

  for (guint i = 0; i < G_N_ELEMENTS (row_counts); i++)
    {
      g_autofree char *name = g_strdup_printf ("rows-%" G_GINT64_FORMAT, row_counts[i]);
      g_autofree char *dir = g_build_filename (root, name, NULL);

      g_mkdir_with_parents (dir, 0700);
      if (!run_fixture (dir, key_file, row_counts[i], &error) ||
          !measure (dir, key_file, row_counts[i], &error))
        {
          g_printerr ("bench-ui: %s\n", error->message);
          g_clear_error (&error);
          status = 1;
        }
    }

  gk_test_rm_rf (root);
  return status;
}
