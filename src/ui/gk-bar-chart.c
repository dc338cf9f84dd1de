/* gk-bar-chart.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include "gk-bar-chart.h"

struct _GkBarChart
{
  GtkWidget  parent_instance;
  GPtrArray *labels;
  GArray    *values;
};

G_DEFINE_FINAL_TYPE (GkBarChart, gk_bar_chart, GTK_TYPE_WIDGET)

static void
gk_bar_chart_finalize (GObject *object)
{
  GkBarChart *self = GK_BAR_CHART (object);

  g_clear_pointer (&self->labels, g_ptr_array_unref);
  g_clear_pointer (&self->values, g_array_unref);

  G_OBJECT_CLASS (gk_bar_chart_parent_class)->finalize (object);
}

static void
gk_bar_chart_class_init (GkBarChartClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gk_bar_chart_finalize;
}

static void
gk_bar_chart_init (GkBarChart *self)
{
  self->labels = g_ptr_array_new_with_free_func (g_free);
  self->values = g_array_new (FALSE, FALSE, sizeof (double));
}

GtkWidget *
gk_bar_chart_new (void)
{
  return g_object_new (GK_TYPE_BAR_CHART, NULL);
}

void
gk_bar_chart_set_data (GkBarChart         *self,
                       const char * const *labels,
                       const double       *values,
                       guint               n_bars)
{
  g_return_if_fail (GK_IS_BAR_CHART (self));

  g_ptr_array_set_size (self->labels, 0);
  g_array_set_size (self->values, 0);
  for (guint i = 0; i < n_bars; i++)
    g_ptr_array_add (self->labels, g_strdup (labels[i]));
  g_array_append_vals (self->values, values, n_bars);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

guint
gk_bar_chart_get_n_bars (GkBarChart *self)
{
  g_return_val_if_fail (GK_IS_BAR_CHART (self), 0);

  return self->values->len;
}
