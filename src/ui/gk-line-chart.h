/* gk-line-chart.h: daily requests, with the success rate on a right axis.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define GK_TYPE_LINE_CHART (gk_line_chart_get_type ())
G_DECLARE_FINAL_TYPE (GkLineChart, gk_line_chart, GK, LINE_CHART, GtkWidget)

GtkWidget *gk_line_chart_new          (void);
/* Copies the data. @days: UTC seconds of each day's local midnight, oldest
 * first; @values: the requests of each day; @rates: each day's success
 * rate 0–100 (NAN for a day without one: a gap in the line), or NULL for
 * no rate line. All @n_points long. */
void       gk_line_chart_set_data     (GkLineChart  *self,
                                       const gint64 *days,
                                       const double *values,
                                       const double *rates,
                                       guint         n_points);
guint      gk_line_chart_get_n_points (GkLineChart  *self);
/* The top of the left axis (a round number ≥ the largest value). */
double     gk_line_chart_get_axis_max (GkLineChart  *self);
/* The point under the pointer, or -1. */
int        gk_line_chart_get_hover    (GkLineChart  *self);
/* Marks the point nearest @x (widget coordinates) as hovered, as the
 * pointer does; x < 0 clears it. */
void       gk_line_chart_hover_at     (GkLineChart  *self,
                                       double        x);

/* Colours both charts take from the theme, so they follow dark mode. */
typedef struct
{
  GdkRGBA fg;          /* text */
  GdkRGBA dim;         /* tick labels */
  GdkRGBA grid;        /* grid lines */
  GdkRGBA axis;        /* axis lines */
  GdkRGBA accent;      /* the main series */
  GdkRGBA success;     /* the success-rate series */
  GdkRGBA popup_bg;    /* the hover label's background */
} GkChartColors;

void       gk_chart_colors_lookup     (GtkWidget     *widget,
                                       GkChartColors *colors);
/* A short, locale-grouped count for an axis or a bar ("1,234", "12.5k"). */
char      *gk_chart_format_count      (double         value);

G_END_DECLS
