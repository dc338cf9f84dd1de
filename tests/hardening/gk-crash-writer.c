/* gk-crash-writer.c: a small process the crash tests kill with SIGKILL.
 *
 *   gk-crash-writer track DB KEY_ID   writes usage rows through gk_pool_track()
 *                                     forever; prints each row's usage id on
 *                                     stdout only after the call returned.
 *   gk-crash-writer migrate DB        prints "start", opens (and so migrates)
 *                                     DB, prints "done".
 *
 * Ids go out with one write(2) each, shorter than PIPE_BUF, so the parent
 * never reads half an id, and nothing sits in a stdio buffer when the kill
 * lands.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gk-test-util.h"

static void
write_line (const char *line)
{
  gsize len = strlen (line);
  gsize done = 0;

  while (done < len)
    {
      gssize n = write (STDOUT_FILENO, line + done, len - done);

      if (n < 0)
        exit (3);
      done += n;
    }
}

static int
run_track (const char *path,
           gint64      key_id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkClock) clock = gk_clock_new_fixed (GK_TEST_EPOCH);
  g_autoptr(GkDatabase) db = gk_database_open (path, clock, &error);
  g_autoptr(GkPool) pool = NULL;

  if (db == NULL)
    {
      g_printerr ("open: %s\n", error->message);
      return 2;
    }
  pool = gk_pool_new (db, NULL);

  for (guint n = 0;; n++)
    {
      GkUsageRecord record;
      GkTrackResult result;
      char line[32];

      gk_usage_record_init (&record);
      record.key_id = key_id;
      record.model = "gemini-2.5-flash";
      record.prompt_tokens = 1 + n % 7;
      record.output_tokens = 2;
      record.status = GK_USAGE_SUCCESS;
      record.http_status = 200;
      record.user_id = "crash-test";
      if (!gk_pool_track (pool, &record, &result, &error))
        {
          g_printerr ("track: %s\n", error->message);
          return 2;
        }
      g_snprintf (line, sizeof line, "%" G_GINT64_FORMAT "\n", result.usage_id);
      write_line (line);
    }
}

static int
run_migrate (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = NULL;

  /* Lets the parent time its kill from the start of the migration rather
   * than from the start of the process. */
  write_line ("start\n");
  db = gk_database_open (path, NULL, &error);
  if (db == NULL)
    {
      g_printerr ("open: %s\n", error->message);
      return 2;
    }
  write_line ("done\n");
  return 0;
}

int
main (int   argc,
      char *argv[])
{
  if (argc == 4 && strcmp (argv[1], "track") == 0)
    return run_track (argv[2], g_ascii_strtoll (argv[3], NULL, 10));
  if (argc == 3 && strcmp (argv[1], "migrate") == 0)
    return run_migrate (argv[2]);
  g_printerr ("usage: %s track DB KEY_ID | migrate DB\n", argv[0]);
  return 64;
}
