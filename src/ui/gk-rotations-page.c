/* gk-rotations-page.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-rotations-page.h"

struct _GkRotationsPage
{
  AdwBin     parent_instance;
  GkBackend *backend;
};

G_DEFINE_FINAL_TYPE (GkRotationsPage, gk_rotations_page, ADW_TYPE_BIN)

static void
gk_rotations_page_dispose (GObject *object)
{
  GkRotationsPage *self = GK_ROTATIONS_PAGE (object);

  g_clear_object (&self->backend);
  gtk_widget_dispose_template (GTK_WIDGET (self), GK_TYPE_ROTATIONS_PAGE);

  G_OBJECT_CLASS (gk_rotations_page_parent_class)->dispose (object);
}

static void
gk_rotations_page_class_init (GkRotationsPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_rotations_page_dispose;
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/geminikeys/GeminiKeys/ui/gk-rotations-page.ui");
}

static void
gk_rotations_page_init (GkRotationsPage *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

GtkWidget *
gk_rotations_page_new (void)
{
  return g_object_new (GK_TYPE_ROTATIONS_PAGE, NULL);
}

void
gk_rotations_page_set_backend (GkRotationsPage *self,
                          GkBackend  *backend)
{
  g_return_if_fail (GK_IS_ROTATIONS_PAGE (self));

  g_set_object (&self->backend, backend);
}
