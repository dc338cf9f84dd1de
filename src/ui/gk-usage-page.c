/* gk-usage-page.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-usage-page.h"

struct _GkUsagePage
{
  AdwBin     parent_instance;
  GkBackend *backend;
};

G_DEFINE_FINAL_TYPE (GkUsagePage, gk_usage_page, ADW_TYPE_BIN)

static void
gk_usage_page_dispose (GObject *object)
{
  GkUsagePage *self = GK_USAGE_PAGE (object);

  g_clear_object (&self->backend);
  gtk_widget_dispose_template (GTK_WIDGET (self), GK_TYPE_USAGE_PAGE);

  G_OBJECT_CLASS (gk_usage_page_parent_class)->dispose (object);
}

static void
gk_usage_page_class_init (GkUsagePageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_usage_page_dispose;
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/geminikeys/GeminiKeys/ui/gk-usage-page.ui");
}

static void
gk_usage_page_init (GkUsagePage *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

GtkWidget *
gk_usage_page_new (void)
{
  return g_object_new (GK_TYPE_USAGE_PAGE, NULL);
}

void
gk_usage_page_set_backend (GkUsagePage *self,
                          GkBackend  *backend)
{
  g_return_if_fail (GK_IS_USAGE_PAGE (self));

  g_set_object (&self->backend, backend);
}

void
gk_usage_page_focus_filter (GkUsagePage *self)
{
  g_return_if_fail (GK_IS_USAGE_PAGE (self));

  gtk_widget_grab_focus (GTK_WIDGET (self));
}
