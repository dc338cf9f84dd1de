/* gk-dashboard-page.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-dashboard-page.h"

struct _GkDashboardPage
{
  AdwBin     parent_instance;
  GkBackend *backend;
};

G_DEFINE_FINAL_TYPE (GkDashboardPage, gk_dashboard_page, ADW_TYPE_BIN)

static void
gk_dashboard_page_dispose (GObject *object)
{
  GkDashboardPage *self = GK_DASHBOARD_PAGE (object);

  g_clear_object (&self->backend);
  gtk_widget_dispose_template (GTK_WIDGET (self), GK_TYPE_DASHBOARD_PAGE);

  G_OBJECT_CLASS (gk_dashboard_page_parent_class)->dispose (object);
}

static void
gk_dashboard_page_class_init (GkDashboardPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_dashboard_page_dispose;
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/geminikeys/GeminiKeys/ui/gk-dashboard-page.ui");
}

static void
gk_dashboard_page_init (GkDashboardPage *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

GtkWidget *
gk_dashboard_page_new (void)
{
  return g_object_new (GK_TYPE_DASHBOARD_PAGE, NULL);
}

void
gk_dashboard_page_set_backend (GkDashboardPage *self,
                          GkBackend  *backend)
{
  g_return_if_fail (GK_IS_DASHBOARD_PAGE (self));

  g_set_object (&self->backend, backend);
}
