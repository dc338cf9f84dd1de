/* fuzz-key-import.c: reading a master key file
 * (gk_secret_store_read_key_file: base64 of 32 bytes, or 32 raw bytes) and
 * validating an API key as typed or pasted (gk_key_validate_api_key).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <fcntl.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static char *key_file_path;

static void
remove_key_file (void)
{
  if (key_file_path != NULL)
    {
      g_autofree char *dir = g_path_get_dirname (key_file_path);

      g_unlink (key_file_path);
      g_rmdir (dir);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) key = NULL;
  g_autofree char *text = NULL;
  int fd;

  if (key_file_path == NULL)
    {
      g_autofree char *dir = g_dir_make_tmp ("gk-fuzz-XXXXXX", NULL);

      g_assert_nonnull (dir);
      key_file_path = g_build_filename (dir, "master.key", NULL);
      atexit (remove_key_file);
    }

  /* The file is private (0600) so the reader gets to parse it. */
  fd = g_open (key_file_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (write (fd, data, size), ==, (gssize) size);
  close (fd);

  key = gk_secret_store_read_key_file (key_file_path, &error);
  if (key != NULL)
    {
      g_assert_no_error (error);
      g_assert_cmpuint (g_bytes_get_size (key), ==, GK_MASTER_KEY_LEN);
    }
  else
    {
      g_assert_nonnull (error);
      g_assert_true (error->domain == GK_SECRET_ERROR);
    }
  g_clear_error (&error);

  text = fuzz_strndup (data, size);
  if (gk_key_validate_api_key (text, &error))
    {
      g_autofree char *trimmed = g_strstrip (g_strdup (text));

      g_assert_no_error (error);
      g_assert_true (g_str_has_prefix (trimmed, "AIza") || g_str_has_prefix (trimmed, "AQ."));
    }
  else
    {
      g_assert_nonnull (error);
      /* The refusal never quotes what was pasted. */
      if (strlen (text) >= 12)
        g_assert_null (strstr (error->message, text));
    }
  return 0;
}
