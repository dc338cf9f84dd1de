/* gk-bar-chart.h: horizontal bars with a label and a value each.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define GK_TYPE_BAR_CHART (gk_bar_chart_get_type ())
G_DECLARE_FINAL_TYPE (GkBarChart, gk_bar_chart, GK, BAR_CHART, GtkWidget)

GtkWidget *gk_bar_chart_new      (void);
void       gk_bar_chart_set_data (GkBarChart         *self,
                                  const char * const *labels,
                                  const double       *values,
                                  guint               n_bars);
void       gk_bar_chart_set_data_full (GkBarChart         *self,
                                       const char * const *labels,
                                       const double       *values,
                                       const char * const *texts,
                                       guint               n_bars);
guint      gk_bar_chart_get_n_bars (GkBarChart *self);

G_END_DECLS
