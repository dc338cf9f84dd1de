/* gk-line-chart.c: daily requests, with the success rate on a right axis.
 *
 * The data is normalised once, when it is set (values to 0–1 of a round
 * axis maximum); snapshot only scales those fractions to the allocation.
 * Grid and axes are plain colour nodes, the series one Cairo node, the
 * text PangoLayouts; every colour comes from the theme (css_changed), so
 * the chart follows dark mode.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>

#include "gk-line-chart.h"

/* Horizontal grid lines above the zero line. */
#define TARGET_TICKS    4
/* The success-rate axis: 0, 25, 50, 75, 100 %. */
#define RATE_TICKS      4
#define LABEL_PAD       6.0
#define LINE_WIDTH      2.0
#define POINT_RADIUS    3.0
#define HOVER_RADIUS    5.0
#define LEGEND_SWATCH   10.0
#define MIN_WIDTH       240
#define MIN_HEIGHT      180
#define NATURAL_WIDTH   560
#define NATURAL_HEIGHT  260

struct _GkLineChart
{
  GtkWidget      parent_instance;

  GArray        *days;        /* gint64 */
  GArray        *values;      /* double, raw */
  GArray        *norm_values; /* double, 0–1 of axis_max */
  GArray        *norm_rates;  /* double, 0–1; empty when no rates */
  GArray        *rates;       /* double, raw 0–100 */
  double         axis_max;
  guint          n_ticks;

  int            hover;
  GkChartColors  colors;
};

G_DEFINE_FINAL_TYPE (GkLineChart, gk_line_chart, GTK_TYPE_WIDGET)

typedef struct
{
  graphene_rect_t plot;      /* the area inside the axes */
  gboolean        has_rates;
} Layout;

static gboolean
lookup_color (GtkStyleContext *context,
              const char      *name,
              GdkRGBA         *color)
{
  return gtk_style_context_lookup_color (context, name, color);
}

void
gk_chart_colors_lookup (GtkWidget     *widget,
                        GkChartColors *colors)
{
  /* GtkStyleContext is what GTK 4.8 offers for named colours; it is only
   * deprecated from 4.10 on. */
  G_GNUC_BEGIN_IGNORE_DEPRECATIONS
  GtkStyleContext *context = gtk_widget_get_style_context (widget);

  gtk_style_context_get_color (context, &colors->fg);
  if (!lookup_color (context, "accent_color", &colors->accent))
    gdk_rgba_parse (&colors->accent, "#1c71d8");
  if (!lookup_color (context, "success_color", &colors->success))
    gdk_rgba_parse (&colors->success, "#26a269");
  if (!lookup_color (context, "popover_bg_color", &colors->popup_bg)
      && !lookup_color (context, "window_bg_color", &colors->popup_bg))
    gdk_rgba_parse (&colors->popup_bg, "#ffffff");
  G_GNUC_END_IGNORE_DEPRECATIONS

  colors->dim = colors->fg;
  colors->dim.alpha *= 0.65f;
  colors->grid = colors->fg;
  colors->grid.alpha *= 0.10f;
  colors->axis = colors->fg;
  colors->axis.alpha *= 0.35f;
}

char *
gk_chart_format_count (double value)
{
  if (fabs (value) >= 1e6)
    return g_strdup_printf ("%'.1fM", value / 1e6);
  if (fabs (value) >= 1e4)
    return g_strdup_printf ("%'.1fk", value / 1e3);
  return g_strdup_printf ("%'.0f", value);
}

/* The smallest of 1, 2, 2.5 (n ≥ 1), 5 × 10ⁿ (n ≥ 0: counts are whole)
 * ≥ @raw. 2.5 gives a maximum of 88 four grid lines (25, 50, 75, 100)
 * rather than two. */
static double
nice_step (double raw)
{
  double magnitude;
  double fraction;

  if (raw <= 1)
    return 1;

  magnitude = pow (10, floor (log10 (raw)));
  fraction = raw / magnitude;
  if (fraction <= 1)
    return magnitude;
  if (fraction <= 2)
    return 2 * magnitude;
  if (fraction <= 2.5 && magnitude >= 10)
    return 2.5 * magnitude;
  if (fraction <= 5)
    return 5 * magnitude;
  return 10 * magnitude;
}

static void
normalise (GkLineChart *self)
{
  double max = 0;
  double step;

  for (guint i = 0; i < self->values->len; i++)
    max = MAX (max, g_array_index (self->values, double, i));

  step = nice_step (max / TARGET_TICKS);
  self->n_ticks = MAX (1, (guint) ceil (max / step));
  self->axis_max = step * self->n_ticks;

  g_array_set_size (self->norm_values, self->values->len);
  for (guint i = 0; i < self->values->len; i++)
    g_array_index (self->norm_values, double, i) =
      CLAMP (g_array_index (self->values, double, i) / self->axis_max, 0, 1);

  g_array_set_size (self->norm_rates, self->rates->len);
  for (guint i = 0; i < self->rates->len; i++)
    {
      double rate = g_array_index (self->rates, double, i);

      /* NaN (a day without requests has no rate) stays NaN: a gap. */
      g_array_index (self->norm_rates, double, i) = isnan (rate) ? NAN : CLAMP (rate / 100, 0, 1);
    }
}

static PangoLayout *
create_layout (GtkWidget  *widget,
               const char *text,
               double      scale)
{
  PangoLayout *layout = gtk_widget_create_pango_layout (widget, text);

  if (scale != 1)
    {
      g_autoptr(PangoAttrList) attrs = pango_attr_list_new ();

      pango_attr_list_insert (attrs, pango_attr_scale_new (scale));
      pango_layout_set_attributes (layout, attrs);
    }
  return layout;
}

static void
layout_size (PangoLayout *layout,
             double      *width,
             double      *height)
{
  int w, h;

  pango_layout_get_pixel_size (layout, &w, &h);
  *width = w;
  *height = h;
}

static void
draw_layout (GtkSnapshot   *snapshot,
             PangoLayout   *layout,
             double         x,
             double         y,
             const GdkRGBA *color)
{
  gtk_snapshot_save (snapshot);
  gtk_snapshot_translate (snapshot, &GRAPHENE_POINT_INIT (roundf (x), roundf (y)));
  gtk_snapshot_append_layout (snapshot, layout, color);
  gtk_snapshot_restore (snapshot);
}

static char *
format_day (gint64 day,
            gboolean with_weekday)
{
  g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local (day);

  if (dt == NULL)
    return g_strdup ("");
  /* Translators: a short date on the chart's axis, see g_date_time_format(). */
  return g_date_time_format (dt, with_weekday ? _("%a %-d %b") : _("%-d %b"));
}

static double
point_x (const Layout *l,
         guint         i,
         guint         n)
{
  if (n <= 1)
    return l->plot.origin.x + l->plot.size.width / 2;
  return l->plot.origin.x + l->plot.size.width * i / (n - 1);
}

static double
point_y (const Layout *l,
         double        fraction)
{
  return l->plot.origin.y + l->plot.size.height * (1 - fraction);
}

static void
compute_layout (GkLineChart *self,
                Layout      *l)
{
  GtkWidget *widget = GTK_WIDGET (self);
  double width = gtk_widget_get_width (widget);
  double height = gtk_widget_get_height (widget);
  g_autofree char *max_label = gk_chart_format_count (self->axis_max);
  g_autoptr(PangoLayout) left = create_layout (widget, max_label, PANGO_SCALE_SMALL);
  g_autoptr(PangoLayout) right = create_layout (widget, "100%", PANGO_SCALE_SMALL);
  double lw, lh, rw, rh;
  double left_margin, right_margin, top_margin, bottom_margin;

  layout_size (left, &lw, &lh);
  layout_size (right, &rw, &rh);

  /* No rate on any day (no requests at all): no rate axis or legend. */
  l->has_rates = FALSE;
  for (guint i = 0; i < self->norm_rates->len && !l->has_rates; i++)
    l->has_rates = !isnan (g_array_index (self->norm_rates, double, i));
  left_margin = lw + 2 * LABEL_PAD;
  right_margin = l->has_rates ? rw + 2 * LABEL_PAD : 2 * LABEL_PAD;
  /* The legend sits above the plot, the day labels below it. */
  top_margin = lh + 2 * LABEL_PAD;
  bottom_margin = lh + 2 * LABEL_PAD;

  l->plot = GRAPHENE_RECT_INIT (left_margin, top_margin,
                                MAX (1, width - left_margin - right_margin),
                                MAX (1, height - top_margin - bottom_margin));
}

static void
snapshot_grid (GkLineChart  *self,
               GtkSnapshot  *snapshot,
               const Layout *l)
{
  GtkWidget *widget = GTK_WIDGET (self);
  const graphene_rect_t *p = &l->plot;

  for (guint t = 0; t <= self->n_ticks; t++)
    {
      double fraction = (double) t / self->n_ticks;
      double y = roundf (point_y (l, fraction));
      g_autofree char *text = gk_chart_format_count (self->axis_max * fraction);
      g_autoptr(PangoLayout) layout = create_layout (widget, text, PANGO_SCALE_SMALL);
      double w, h;

      gtk_snapshot_append_color (snapshot, t == 0 ? &self->colors.axis : &self->colors.grid,
                                 &GRAPHENE_RECT_INIT (p->origin.x, y, p->size.width, 1));
      layout_size (layout, &w, &h);
      draw_layout (snapshot, layout, p->origin.x - LABEL_PAD - w, y - h / 2, &self->colors.dim);

    }

  /* The left axis; the right one only when it carries the rate scale,
   * whose quarters need not meet the left axis' grid lines. */
  gtk_snapshot_append_color (snapshot, &self->colors.axis,
                             &GRAPHENE_RECT_INIT (p->origin.x, p->origin.y, 1, p->size.height));
  if (!l->has_rates)
    return;

  gtk_snapshot_append_color (snapshot, &self->colors.axis,
                             &GRAPHENE_RECT_INIT (p->origin.x + p->size.width - 1, p->origin.y,
                                                  1, p->size.height));
  for (guint q = 0; q <= RATE_TICKS; q++)
    {
      double fraction = (double) q / RATE_TICKS;
      double y = roundf (point_y (l, fraction));
      g_autofree char *rate = g_strdup_printf ("%.0f%%", 100.0 * fraction);
      g_autoptr(PangoLayout) layout = create_layout (widget, rate, PANGO_SCALE_SMALL);
      double w, h;

      layout_size (layout, &w, &h);
      gtk_snapshot_append_color (snapshot, &self->colors.axis,
                                 &GRAPHENE_RECT_INIT (p->origin.x + p->size.width, y,
                                                      LABEL_PAD / 2, 1));
      draw_layout (snapshot, layout, p->origin.x + p->size.width + LABEL_PAD,
                   y - h / 2, &self->colors.dim);
    }
}

static void
snapshot_day_labels (GkLineChart  *self,
                     GtkSnapshot  *snapshot,
                     const Layout *l)
{
  GtkWidget *widget = GTK_WIDGET (self);
  double width = gtk_widget_get_width (widget);
  guint n = self->days->len;
  g_autofree char *sample = NULL;
  g_autoptr(PangoLayout) sample_layout = NULL;
  double sample_w, sample_h;
  guint step = 1;
  gboolean with_weekday;

  if (n == 0)
    return;

  /* A week has room for weekday names; a month shows every few days. */
  with_weekday = n <= 7 && l->plot.size.width / n > 70;
  sample = format_day (g_array_index (self->days, gint64, 0), with_weekday);
  sample_layout = create_layout (widget, sample, PANGO_SCALE_SMALL);
  layout_size (sample_layout, &sample_w, &sample_h);
  if (n > 1)
    {
      double spacing = l->plot.size.width / (n - 1);

      step = MAX (1, (guint) ceil ((sample_w + 2 * LABEL_PAD) / spacing));
    }

  for (guint i = 0; i < n; i += step)
    {
      /* Keep the newest day labelled: it is the one people look for. */
      guint index = (i + step >= n && n > 1) ? n - 1 : i;
      g_autofree char *text = format_day (g_array_index (self->days, gint64, index), with_weekday);
      g_autoptr(PangoLayout) layout = create_layout (widget, text, PANGO_SCALE_SMALL);
      double w, h, x;

      layout_size (layout, &w, &h);
      x = CLAMP (point_x (l, index, n) - w / 2, 0, MAX (0, width - w));
      draw_layout (snapshot, layout, x, l->plot.origin.y + l->plot.size.height + LABEL_PAD,
                   &self->colors.dim);
      gtk_snapshot_append_color (snapshot, &self->colors.axis,
                                 &GRAPHENE_RECT_INIT (roundf (point_x (l, index, n)),
                                                      l->plot.origin.y + l->plot.size.height,
                                                      1, LABEL_PAD / 2));
      if (index == n - 1)
        break;
    }
}

static void
snapshot_legend (GkLineChart  *self,
                 GtkSnapshot  *snapshot,
                 const Layout *l)
{
  GtkWidget *widget = GTK_WIDGET (self);
  struct { const char *label; const GdkRGBA *color; } items[] = {
    { _("Requests"), &self->colors.accent },
    { _("Success rate"), &self->colors.success },
  };
  guint n_items = l->has_rates ? 2 : 1;
  double x = l->plot.origin.x + l->plot.size.width;

  /* Right-aligned, last item first. */
  for (guint i = n_items; i > 0; i--)
    {
      g_autoptr(PangoLayout) layout = create_layout (widget, items[i - 1].label, PANGO_SCALE_SMALL);
      double w, h;

      layout_size (layout, &w, &h);
      x -= w;
      draw_layout (snapshot, layout, x, 0, &self->colors.fg);
      x -= LABEL_PAD / 2 + LEGEND_SWATCH;
      gtk_snapshot_append_color (snapshot, items[i - 1].color,
                                 &GRAPHENE_RECT_INIT (x, (h - LEGEND_SWATCH) / 2 + 1,
                                                      LEGEND_SWATCH, LEGEND_SWATCH / 2 + 1));
      x -= 2 * LABEL_PAD;
    }
}

/* The line through @fractions, broken where a value is NaN. */
static void
trace_series (cairo_t      *cr,
              const Layout *l,
              GArray       *fractions)
{
  guint n = fractions->len;
  gboolean pen_down = FALSE;

  for (guint i = 0; i < n; i++)
    {
      double fraction = g_array_index (fractions, double, i);
      double x = point_x (l, i, n);

      if (isnan (fraction))
        {
          pen_down = FALSE;
          continue;
        }
      if (pen_down)
        cairo_line_to (cr, x, point_y (l, fraction));
      else
        cairo_move_to (cr, x, point_y (l, fraction));
      pen_down = TRUE;
    }
}

static void
draw_points (cairo_t       *cr,
             const Layout  *l,
             GArray        *fractions,
             const GdkRGBA *color,
             int            hover)
{
  guint n = fractions->len;

  gdk_cairo_set_source_rgba (cr, color);
  for (guint i = 0; i < n; i++)
    {
      double radius = (int) i == hover ? HOVER_RADIUS : POINT_RADIUS;

      if (isnan (g_array_index (fractions, double, i)))
        continue;
      /* Dots only where they stay apart, or to show a single day. */
      if (n > 1 && l->plot.size.width / (n - 1) < 4 * POINT_RADIUS && (int) i != hover)
        continue;
      cairo_new_sub_path (cr);
      cairo_arc (cr, point_x (l, i, n), point_y (l, g_array_index (fractions, double, i)),
                 radius, 0, 2 * G_PI);
    }
  cairo_fill (cr);
}

static void
snapshot_series (GkLineChart  *self,
                 GtkSnapshot  *snapshot,
                 const Layout *l)
{
  const graphene_rect_t *p = &l->plot;
  guint n = self->norm_values->len;
  graphene_rect_t bounds;
  cairo_t *cr;

  /* Room for the dots that sit on the plot's edges. */
  graphene_rect_inset_r (p, -HOVER_RADIUS - 1, -HOVER_RADIUS - 1, &bounds);
  cr = gtk_snapshot_append_cairo (snapshot, &bounds);
  cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
  cairo_set_line_cap (cr, CAIRO_LINE_CAP_ROUND);
  cairo_set_line_width (cr, LINE_WIDTH);

  /* The area under the requests, then the line over it. */
  if (n > 1)
    {
      GdkRGBA fill = self->colors.accent;

      fill.alpha *= 0.15f;
      trace_series (cr, l, self->norm_values);
      cairo_line_to (cr, point_x (l, n - 1, n), p->origin.y + p->size.height);
      cairo_line_to (cr, point_x (l, 0, n), p->origin.y + p->size.height);
      cairo_close_path (cr);
      gdk_cairo_set_source_rgba (cr, &fill);
      cairo_fill (cr);

      trace_series (cr, l, self->norm_values);
      gdk_cairo_set_source_rgba (cr, &self->colors.accent);
      cairo_stroke (cr);
    }
  draw_points (cr, l, self->norm_values, &self->colors.accent, self->hover);

  if (l->has_rates)
    {
      static const double dashes[] = { 6, 3 };

      if (n > 1)
        {
          cairo_set_dash (cr, dashes, G_N_ELEMENTS (dashes), 0);
          trace_series (cr, l, self->norm_rates);
          gdk_cairo_set_source_rgba (cr, &self->colors.success);
          cairo_stroke (cr);
          cairo_set_dash (cr, NULL, 0, 0);
        }
      draw_points (cr, l, self->norm_rates, &self->colors.success, self->hover);
    }

  cairo_destroy (cr);
}

static void
snapshot_hover (GkLineChart  *self,
                GtkSnapshot  *snapshot,
                const Layout *l)
{
  GtkWidget *widget = GTK_WIDGET (self);
  const graphene_rect_t *p = &l->plot;
  guint n = self->values->len;
  double x, w, h, box_x, box_y;
  g_autofree char *day = NULL;
  g_autofree char *count = NULL;
  g_autofree char *text = NULL;
  g_autoptr(PangoLayout) layout = NULL;
  GskRoundedRect box;

  if (self->hover < 0 || (guint) self->hover >= n)
    return;

  x = roundf (point_x (l, self->hover, n));
  gtk_snapshot_append_color (snapshot, &self->colors.axis,
                             &GRAPHENE_RECT_INIT (x, p->origin.y, 1, p->size.height));

  day = format_day (g_array_index (self->days, gint64, self->hover), TRUE);
  count = g_strdup_printf ("%'.0f", g_array_index (self->values, double, self->hover));
  if (l->has_rates && !isnan (g_array_index (self->rates, double, self->hover)))
    /* Translators: the chart's hover label: a date, requests, success rate. */
    text = g_strdup_printf (_("%s\n%s requests\n%.1f%% success"), day, count,
                            g_array_index (self->rates, double, self->hover));
  else
    /* Translators: the chart's hover label: a date and the requests. */
    text = g_strdup_printf (_("%s\n%s requests"), day, count);

  layout = create_layout (widget, text, PANGO_SCALE_SMALL);
  layout_size (layout, &w, &h);

  /* Beside the guide line, on whichever side has room. */
  box_x = x + 2 * LABEL_PAD;
  if (box_x + w + 2 * LABEL_PAD > p->origin.x + p->size.width)
    box_x = x - 2 * LABEL_PAD - w - 2 * LABEL_PAD;
  box_x = MAX (0, box_x);
  box_y = p->origin.y + LABEL_PAD;

  gsk_rounded_rect_init_from_rect (&box,
                                   &GRAPHENE_RECT_INIT (box_x, box_y, w + 2 * LABEL_PAD,
                                                        h + 2 * LABEL_PAD),
                                   LABEL_PAD);
  gtk_snapshot_push_rounded_clip (snapshot, &box);
  gtk_snapshot_append_color (snapshot, &self->colors.popup_bg, &box.bounds);
  gtk_snapshot_pop (snapshot);
  gtk_snapshot_append_border (snapshot, &box,
                              (float[4]) { 1, 1, 1, 1 },
                              (GdkRGBA[4]) { self->colors.axis, self->colors.axis,
                                             self->colors.axis, self->colors.axis });
  draw_layout (snapshot, layout, box_x + LABEL_PAD, box_y + LABEL_PAD, &self->colors.fg);
}

static void
snapshot_empty (GkLineChart *self,
                GtkSnapshot *snapshot)
{
  GtkWidget *widget = GTK_WIDGET (self);
  g_autoptr(PangoLayout) layout = create_layout (widget, _("No data yet"), 1);
  double w, h;

  layout_size (layout, &w, &h);
  draw_layout (snapshot, layout,
               (gtk_widget_get_width (widget) - w) / 2,
               (gtk_widget_get_height (widget) - h) / 2,
               &self->colors.dim);
}

static void
gk_line_chart_snapshot (GtkWidget   *widget,
                        GtkSnapshot *snapshot)
{
  GkLineChart *self = GK_LINE_CHART (widget);
  Layout l;

  compute_layout (self, &l);
  snapshot_grid (self, snapshot, &l);

  if (self->values->len == 0)
    {
      snapshot_empty (self, snapshot);
      return;
    }

  snapshot_legend (self, snapshot, &l);
  snapshot_day_labels (self, snapshot, &l);
  snapshot_series (self, snapshot, &l);
  snapshot_hover (self, snapshot, &l);
}

static void
gk_line_chart_measure (GtkWidget      *widget,
                       GtkOrientation  orientation,
                       int             for_size,
                       int            *minimum,
                       int            *natural,
                       int            *minimum_baseline,
                       int            *natural_baseline)
{
  if (orientation == GTK_ORIENTATION_HORIZONTAL)
    {
      *minimum = MIN_WIDTH;
      *natural = NATURAL_WIDTH;
    }
  else
    {
      *minimum = MIN_HEIGHT;
      *natural = NATURAL_HEIGHT;
    }
}

static void
gk_line_chart_css_changed (GtkWidget         *widget,
                           GtkCssStyleChange *change)
{
  GkLineChart *self = GK_LINE_CHART (widget);

  GTK_WIDGET_CLASS (gk_line_chart_parent_class)->css_changed (widget, change);

  gk_chart_colors_lookup (widget, &self->colors);
  gtk_widget_queue_draw (widget);
}

static void
motion_cb (GtkEventControllerMotion *motion,
           double                    x,
           double                    y,
           GkLineChart              *self)
{
  gk_line_chart_hover_at (self, x);
}

static void
leave_cb (GtkEventControllerMotion *motion,
          GkLineChart              *self)
{
  gk_line_chart_hover_at (self, -1);
}

static void
gk_line_chart_finalize (GObject *object)
{
  GkLineChart *self = GK_LINE_CHART (object);

  g_clear_pointer (&self->days, g_array_unref);
  g_clear_pointer (&self->values, g_array_unref);
  g_clear_pointer (&self->rates, g_array_unref);
  g_clear_pointer (&self->norm_values, g_array_unref);
  g_clear_pointer (&self->norm_rates, g_array_unref);

  G_OBJECT_CLASS (gk_line_chart_parent_class)->finalize (object);
}

static void
gk_line_chart_class_init (GkLineChartClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->finalize = gk_line_chart_finalize;

  widget_class->snapshot = gk_line_chart_snapshot;
  widget_class->measure = gk_line_chart_measure;
  widget_class->css_changed = gk_line_chart_css_changed;

  gtk_widget_class_set_css_name (widget_class, "linechart");
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_IMG);
}

static void
gk_line_chart_init (GkLineChart *self)
{
  GtkEventController *motion;

  self->days = g_array_new (FALSE, FALSE, sizeof (gint64));
  self->values = g_array_new (FALSE, FALSE, sizeof (double));
  self->rates = g_array_new (FALSE, FALSE, sizeof (double));
  self->norm_values = g_array_new (FALSE, FALSE, sizeof (double));
  self->norm_rates = g_array_new (FALSE, FALSE, sizeof (double));
  self->hover = -1;
  normalise (self);
  gk_chart_colors_lookup (GTK_WIDGET (self), &self->colors);

  motion = gtk_event_controller_motion_new ();
  g_signal_connect (motion, "motion", G_CALLBACK (motion_cb), self);
  g_signal_connect (motion, "leave", G_CALLBACK (leave_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), motion);

  gtk_accessible_update_property (GTK_ACCESSIBLE (self),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Daily requests"),
                                  -1);
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
  g_return_if_fail (n_points == 0 || (days != NULL && values != NULL));

  g_array_set_size (self->days, 0);
  g_array_set_size (self->values, 0);
  g_array_set_size (self->rates, 0);
  if (n_points > 0)
    {
      g_array_append_vals (self->days, days, n_points);
      g_array_append_vals (self->values, values, n_points);
      if (rates != NULL)
        g_array_append_vals (self->rates, rates, n_points);
    }
  self->hover = -1;
  normalise (self);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

guint
gk_line_chart_get_n_points (GkLineChart *self)
{
  g_return_val_if_fail (GK_IS_LINE_CHART (self), 0);

  return self->values->len;
}

double
gk_line_chart_get_axis_max (GkLineChart *self)
{
  g_return_val_if_fail (GK_IS_LINE_CHART (self), 0);

  return self->axis_max;
}

int
gk_line_chart_get_hover (GkLineChart *self)
{
  g_return_val_if_fail (GK_IS_LINE_CHART (self), -1);

  return self->hover;
}

void
gk_line_chart_hover_at (GkLineChart *self,
                        double       x)
{
  guint n;
  int hover = -1;

  g_return_if_fail (GK_IS_LINE_CHART (self));

  n = self->values->len;
  if (x >= 0 && n > 0)
    {
      Layout l;

      compute_layout (self, &l);
      if (n == 1)
        hover = 0;
      else
        hover = (int) CLAMP (round ((x - l.plot.origin.x) / l.plot.size.width * (n - 1)),
                             0, n - 1);
    }

  if (hover != self->hover)
    {
      self->hover = hover;
      gtk_widget_queue_draw (GTK_WIDGET (self));
    }
}
