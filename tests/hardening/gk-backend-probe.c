/* gk-backend-probe.c: the desktop app's backend (GkBackend, as the window
 * uses it) opening the database while other processes use it, for
 * test-multiprocess. No window: the backend needs GIO only.
 *
 *   gk-backend-probe SECONDS
 *
 * Loads the backend (open, migrate, unlock the master key from
 * $GEMINI_KEYS_MASTER_KEY_FILE), prints "READY" and then, for SECONDS,
 * lists the keys and selects one in the backend's worker threads every
 * 50 ms, as the Keys and Dashboard pages do on every change. Prints
 * "DONE <jobs>" and exits 0, or prints the first error and exits 1.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <stdio.h>

#include "gk-backend.h"

#define JOB_INTERVAL_MS 50

typedef struct
{
  GkBackend *backend;
  GMainLoop *loop;
  gint64     deadline;
  guint      jobs;
  GError    *error;
  gboolean   job_running;
} Probe;

static gpointer
read_job (const GkBackendRefs  *refs,
          gpointer              data,
          GError              **error)
{
  g_autoptr(GPtrArray) keys = gk_key_store_list (refs->key_store, error);
  g_autoptr(GkKey) key = NULL;

  if (keys == NULL)
    return NULL;
  key = gk_pool_select (refs->pool, NULL, NULL, error);
  if (key == NULL && error != NULL && *error != NULL)
    return NULL;
  return GINT_TO_POINTER (TRUE);
}

static void
job_done_cb (GObject      *object,
             GAsyncResult *result,
             gpointer      user_data)
{
  Probe *probe = user_data;

  probe->job_running = FALSE;
  if (gk_backend_run_finish (GK_BACKEND (object), result, &probe->error) == NULL)
    g_main_loop_quit (probe->loop);
  else
    probe->jobs++;
}

static gboolean
tick_cb (gpointer user_data)
{
  Probe *probe = user_data;

  if (g_get_monotonic_time () >= probe->deadline)
    {
      g_main_loop_quit (probe->loop);
      return G_SOURCE_REMOVE;
    }
  if (!probe->job_running)
    {
      probe->job_running = TRUE;
      gk_backend_run_async (probe->backend, read_job, NULL, NULL, NULL, NULL, job_done_cb,
                            probe);
    }
  return G_SOURCE_CONTINUE;
}

static void
loaded_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  Probe *probe = user_data;

  if (!gk_backend_load_finish (GK_BACKEND (object), result, &probe->error))
    {
      g_main_loop_quit (probe->loop);
      return;
    }
  printf ("READY\n");
  fflush (stdout);
  g_timeout_add (JOB_INTERVAL_MS, tick_cb, probe);
}

int
main (int    argc,
      char **argv)
{
  Probe probe = { 0 };
  guint seconds = argc > 1 ? (guint) g_ascii_strtoull (argv[1], NULL, 10) : 3;

  probe.backend = gk_backend_new (NULL);
  probe.loop = g_main_loop_new (NULL, FALSE);
  probe.deadline = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;
  gk_backend_load_async (probe.backend, NULL, loaded_cb, &probe);
  g_main_loop_run (probe.loop);

  /* A job still in a worker thread finishes before the backend goes. */
  while (probe.job_running)
    g_main_context_iteration (NULL, TRUE);

  if (probe.error != NULL)
    {
      fprintf (stderr, "gk-backend-probe: %s\n", probe.error->message);
      return 1;
    }
  printf ("DONE %u\n", probe.jobs);
  g_main_loop_unref (probe.loop);
  g_object_unref (probe.backend);
  return 0;
}
