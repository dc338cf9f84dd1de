/* gk-page-load.h: how a page reads the database in the background.
 *
 * The page watches its backend and reads again, in a worker thread,
 * whenever the data may have changed; the newest read wins (starting one
 * cancels the one in progress, as disposing the page does). A page that
 * reads only while it is shown reads when it is mapped, and a change
 * while it is hidden waits until then. The page embeds a GkPageLoad and
 * has a "loading" property, TRUE while a read runs.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <adwaita.h>

#include "gk-backend.h"

G_BEGIN_DECLS

/* Starts a read of the page (with gk_page_load_start()). */
typedef void (*GkPageReload) (gpointer page);

typedef struct
{
  GtkWidget    *page;           /* the owner, not a reference */
  GParamSpec   *loading_pspec;  /* the page's "loading" property */
  GkPageReload  reload;
  gboolean      when_shown;     /* read only while the page is mapped */
  GkBackend    *backend;
  GCancellable *cancellable;    /* of the read in progress */
  gboolean      loading;
} GkPageLoad;

void        gk_page_load_init        (GkPageLoad          *load,
                                      GtkWidget           *page,
                                      GParamSpec          *loading_pspec,
                                      GkPageReload         reload,
                                      gboolean             when_shown);
/* Watches @backend (NULL: none) and reads, as a change would; FALSE when
 * it was already the page's. */
gboolean    gk_page_load_set_backend (GkPageLoad          *load,
                                      GkBackend           *backend);
/* Cancels the read in progress and returns a task for the next, with
 * the page as its source and @done as its callback, and its database in
 * @db; the page gives it its data and runs it in a thread. NULL, and
 * "loading" FALSE, when there is no database to read. */
GTask      *gk_page_load_start       (GkPageLoad          *load,
                                      GAsyncReadyCallback  done,
                                      gpointer             source_tag,
                                      GkDatabase         **db);
/* The read of a page that lists rows in @stack ("loading", "empty" and
 * the list): runs @thread with the database as its task data. A list
 * already shown (@shown has items) stays while it is read again. */
void        gk_page_load_list        (GkPageLoad          *load,
                                      GListModel          *shown,
                                      GtkStack            *stack,
                                      GAsyncReadyCallback  done,
                                      GTaskThreadFunc      thread);
void        gk_page_load_set_loading (GkPageLoad          *load,
                                      gboolean             loading);
/* From the page's dispose: cancels the read and lets the backend go. */
void        gk_page_load_dispose     (GkPageLoad          *load);

/* Disposes the template of @page, a bin whose child is the template's top
 * widget (from its dispose). */
void        gk_page_dispose_template (AdwBin              *page,
                                      GType                type);

G_END_DECLS
