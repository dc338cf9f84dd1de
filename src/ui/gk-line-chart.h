/* gk-line-chart.h: daily requests with the success rate on a right axis.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define GK_TYPE_LINE_CHART (gk_line_chart_get_type ())
G_DECLARE_FINAL_TYPE (GkLineChart, gk_line_chart, GK, LINE_CHART, GtkWidget)

GtkWidget *gk_line_chart_new      (void);
/* @days: UTC seconds of each day's local midnight; @values: requests;
 * @rates: success rate 0–100 (nullable). All @n_points long. */
void       gk_line_chart_set_data (GkLineChart  *self,
                                   const gint64 *days,
                                   const double *values,
                                   const double *rates,
                                   guint         n_points);
guint      gk_line_chart_get_n_points (GkLineChart *self);

G_END_DECLS
