/* gk-line-chart.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include "gk-line-chart.h"

struct _GkLineChart
{
  GtkWidget  parent_instance;
  GArray    *days;
  GArray    *values;
  GArray    *rates;
};

G_DEFINE_FINAL_TYPE (GkLineChart, gk_line_chart, GTK_TYPE_WIDGET)

static void
gk_line_chart_finalize (GObject *object)
{
  GkLineChart *self = GK_LINE_CHART (object);

  g_clear_pointer (&self->days, g_array_unref);
  g_clear_pointer (&self->values, g_array_unref);
  g_clear_pointer (&self->rates, g_array_unref);

  G_OBJECT_CLASS (gk_line_chart_parent_class)->finalize (object);
}

static void
gk_line_chart_class_init (GkLineChartClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gk_line_chart_finalize;
}

static void
gk_line_chart_init (GkLineChart *self)
{
  self->days = g_array_new (FALSE, FALSE, sizeof (gint64));
  self->values = g_array_new (FALSE, FALSE, sizeof (double));
  self->rates = g_array_new (FALSE, FALSE, sizeof (double));
}

GtkWidget *
gk_line_chart_new (void)
{
  return g_object_new (GK_TYPE_LINE_CHART, NULL);
}

void
gk_line_chart_set_data (GkLineChart  *self,
                        const gint64 *days,
                        const double *values,
                        const double *rates,
                        guint         n_points)
{
  g_return_if_fail (GK_IS_LINE_CHART (self));

  g_array_set_size (self->days, 0);
  g_array_set_size (self->values, 0);
  g_array_set_size (self->rates, 0);
  g_array_append_vals (self->days, days, n_points);
  g_array_append_vals (self->values, values, n_points);
  if (rates != NULL)
    g_array_append_vals (self->rates, rates, n_points);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

guint
gk_line_chart_get_n_points (GkLineChart *self)
{
  g_return_val_if_fail (GK_IS_LINE_CHART (self), 0);

  return self->values->len;
}
