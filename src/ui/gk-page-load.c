/* gk-page-load.c: how a page reads the database in the background.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <string.h>

#include "gk-page-load.h"

/* Hidden, a page that reads only while shown waits until it is mapped. */
static void
changed_cb (GkPageLoad *load)
{
  if (!load->when_shown || gtk_widget_get_mapped (load->page))
    load->reload (load->page);
}

void
gk_page_load_init (GkPageLoad   *load,
                   GtkWidget    *page,
                   GParamSpec   *loading_pspec,
                   GkPageReload  reload,
                   gboolean      when_shown)
{
  g_return_if_fail (GTK_IS_WIDGET (page));
  g_return_if_fail (G_IS_PARAM_SPEC (loading_pspec));

  memset (load, 0, sizeof *load);
  load->page = page;
  load->loading_pspec = loading_pspec;
  load->reload = reload;
  load->when_shown = when_shown;
  if (when_shown)
    g_signal_connect_swapped (page, "map", G_CALLBACK (reload), page);
}

gboolean
gk_page_load_set_backend (GkPageLoad *load,
                          GkBackend  *backend)
{
  if (!gk_backend_set_watched (&load->backend, backend, G_CALLBACK (changed_cb), load))
    return FALSE;
  changed_cb (load);
  return TRUE;
}

void
gk_page_load_set_loading (GkPageLoad *load,
                          gboolean    loading)
{
  if (load->loading == loading)
    return;
  load->loading = loading;
  g_object_notify_by_pspec (G_OBJECT (load->page), load->loading_pspec);
}

GTask *
gk_page_load_start (GkPageLoad           *load,
                    GAsyncReadyCallback   done,
                    gpointer              source_tag,
                    GkDatabase          **db)
{
  GTask *task;

  g_cancellable_cancel (load->cancellable);
  g_clear_object (&load->cancellable);

  *db = load->backend != NULL ? gk_backend_get_database (load->backend) : NULL;
  if (*db == NULL)
    {
      gk_page_load_set_loading (load, FALSE);
      return NULL;
    }

  load->cancellable = g_cancellable_new ();
  gk_page_load_set_loading (load, TRUE);
  task = g_task_new (load->page, load->cancellable, done, NULL);
  g_task_set_source_tag (task, source_tag);
  return task;
}

void
gk_page_load_list (GkPageLoad          *load,
                   GListModel          *shown,
                   GtkStack            *stack,
                   GAsyncReadyCallback  done,
                   GTaskThreadFunc      thread)
{
  GkDatabase *db;
  g_autoptr(GTask) task = gk_page_load_start (load, done, gk_page_load_list, &db);
  gboolean empty = g_list_model_get_n_items (shown) == 0;

  if (task == NULL)
    {
      if (empty)
        gtk_stack_set_visible_child_name (stack, "empty");
      return;
    }

  if (empty)
    gtk_stack_set_visible_child_name (stack, "loading");
  g_task_set_task_data (task, g_object_ref (db), g_object_unref);
  g_task_run_in_thread (task, thread);
}

void
gk_page_load_dispose (GkPageLoad *load)
{
  g_cancellable_cancel (load->cancellable);
  g_clear_object (&load->cancellable);
  gk_backend_set_watched (&load->backend, NULL, NULL, load);
}

void
gk_page_dispose_template (AdwBin *page,
                          GType   type)
{
  /* AdwBin unparents its child in its own dispose; let it go first, or
   * dispose_template unparents it too and AdwBin is left with a stale child. */
  adw_bin_set_child (page, NULL);
  gtk_widget_dispose_template (GTK_WIDGET (page), type);
}
