/* fuzz-replay.c: runs a fuzz target's checked-in corpus as ordinary tests,
 * so the regular build (gcc, no libFuzzer) checks every seed and every
 * crash input added to the corpus after a fix.
 *
 * Usage: fuzz-<target>-replay [--tap] CORPUS_DIR
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <stdint.h>

#include <glib.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
replay_one (gconstpointer data)
{
  const char *path = data;
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize len = 0;

  g_file_get_contents (path, &contents, &len, &error);
  g_assert_no_error (error);
  LLVMFuzzerTestOneInput ((const uint8_t *) contents, len);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GDir) dir = NULL;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) error = NULL;
  const char *name;

  g_test_init (&argc, &argv, NULL);
  if (argc != 2)
    {
      g_printerr ("usage: %s [--tap] CORPUS_DIR\n", argv[0]);
      return 2;
    }
  dir = g_dir_open (argv[1], 0, &error);
  g_assert_no_error (error);
  while ((name = g_dir_read_name (dir)) != NULL)
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, (GCompareFunc) g_strcmp0);
  g_assert_cmpuint (names->len, >, 0);

  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *test = g_strdup_printf ("/fuzz/replay/%s", (char *) names->pdata[i]);

      g_test_add_data_func_full (test, g_build_filename (argv[1], names->pdata[i], NULL),
                                 replay_one, g_free);
    }
  return g_test_run ();
}
