/* gk-bar-chart.c: horizontal bars, each with its label and value.
 *
 * Horizontal, because the labels are model names: long, and easier read
 * on a line of their own than slanted under a column. Values are
 * normalised to 0–1 of the largest when set; bars are colour nodes.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>

#include "gk-bar-chart.h"
#include "gk-line-chart.h"

#define BAR_HEIGHT     10.0
#define LABEL_GAP      4.0
#define ROW_GAP        10.0
#define VALUE_PAD      8.0
#define BAR_RADIUS     3.0
#define MIN_WIDTH      200
#define NATURAL_WIDTH  360
#define EMPTY_HEIGHT   120

struct _GkBarChart
{
  GtkWidget      parent_instance;

  GPtrArray     *labels;
  GArray        *values;      /* double, raw */
  GPtrArray     *texts;       /* how each value reads; NULL: a count */
  GArray        *fractions;   /* double, 0–1 of the largest */
  GkChartColors  colors;
};

G_DEFINE_FINAL_TYPE (GkBarChart, gk_bar_chart, GTK_TYPE_WIDGET)

static PangoLayout *
create_layout (GtkWidget  *widget,
               const char *text)
{
  PangoLayout *layout = gtk_widget_create_pango_layout (widget, text);

  pango_layout_set_ellipsize (layout, PANGO_ELLIPSIZE_MIDDLE);
  pango_layout_set_single_paragraph_mode (layout, TRUE);
  return layout;
}

static double
text_height (GtkWidget *widget)
{
  g_autoptr(PangoLayout) layout = create_layout (widget, "Ag");
  int h;

  pango_layout_get_pixel_size (layout, NULL, &h);
  return h;
}

static double
row_height (GtkWidget *widget)
{
  return text_height (widget) + LABEL_GAP + BAR_HEIGHT + ROW_GAP;
}

static void
normalise (GkBarChart *self)
{
  double max = 0;

  for (guint i = 0; i < self->values->len; i++)
    max = MAX (max, g_array_index (self->values, double, i));

  g_array_set_size (self->fractions, self->values->len);
  for (guint i = 0; i < self->values->len; i++)
    g_array_index (self->fractions, double, i) =
      max > 0 ? CLAMP (g_array_index (self->values, double, i) / max, 0, 1) : 0;
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

static void
gk_bar_chart_snapshot (GtkWidget   *widget,
                       GtkSnapshot *snapshot)
{
  GkBarChart *self = GK_BAR_CHART (widget);
  double width = gtk_widget_get_width (widget);
  double line = text_height (widget);
  double y = 0;

  if (self->values->len == 0)
    {
      g_autoptr(PangoLayout) layout = create_layout (widget, _("No data yet"));
      int w, h;

      pango_layout_get_pixel_size (layout, &w, &h);
      draw_layout (snapshot, layout, (width - w) / 2,
                   (gtk_widget_get_height (widget) - h) / 2, &self->colors.dim);
      return;
    }

  for (guint i = 0; i < self->values->len; i++)
    {
      g_autofree char *value = g_ptr_array_index (self->texts, i) != NULL
                               ? g_strdup (g_ptr_array_index (self->texts, i))
                               : gk_chart_format_count (g_array_index (self->values, double, i));
      g_autoptr(PangoLayout) value_layout = create_layout (widget, value);
      g_autoptr(PangoLayout) label_layout = create_layout (widget, g_ptr_array_index (self->labels, i));
      double fraction = g_array_index (self->fractions, double, i);
      GskRoundedRect track, bar;
      int vw, vh;

      pango_layout_get_pixel_size (value_layout, &vw, &vh);
      draw_layout (snapshot, value_layout, width - vw, y, &self->colors.dim);
      pango_layout_set_width (label_layout, MAX (0, width - vw - VALUE_PAD) * PANGO_SCALE);
      draw_layout (snapshot, label_layout, 0, y, &self->colors.fg);

      y += line + LABEL_GAP;
      gsk_rounded_rect_init_from_rect (&track, &GRAPHENE_RECT_INIT (0, y, width, BAR_HEIGHT),
                                       BAR_RADIUS);
      gtk_snapshot_push_rounded_clip (snapshot, &track);
      gtk_snapshot_append_color (snapshot, &self->colors.grid, &track.bounds);
      /* A non-zero value always shows, if only as a sliver. */
      if (fraction > 0)
        {
          gsk_rounded_rect_init_from_rect (&bar,
                                           &GRAPHENE_RECT_INIT (0, y, MAX (2 * BAR_RADIUS,
                                                                           width * fraction),
                                                                BAR_HEIGHT),
                                           BAR_RADIUS);
          gtk_snapshot_push_rounded_clip (snapshot, &bar);
          gtk_snapshot_append_color (snapshot, &self->colors.accent, &bar.bounds);
          gtk_snapshot_pop (snapshot);
        }
      gtk_snapshot_pop (snapshot);
      y += BAR_HEIGHT + ROW_GAP;
    }
}

static void
gk_bar_chart_measure (GtkWidget      *widget,
                      GtkOrientation  orientation,
                      int             for_size,
                      int            *minimum,
                      int            *natural,
                      int            *minimum_baseline,
                      int            *natural_baseline)
{
  GkBarChart *self = GK_BAR_CHART (widget);

  if (orientation == GTK_ORIENTATION_HORIZONTAL)
    {
      *minimum = MIN_WIDTH;
      *natural = NATURAL_WIDTH;
    }
  else if (self->values->len == 0)
    {
      *minimum = *natural = EMPTY_HEIGHT;
    }
  else
    {
      *minimum = *natural = (int) ceil (row_height (widget) * self->values->len - ROW_GAP);
    }
}

static void
gk_bar_chart_css_changed (GtkWidget         *widget,
                          GtkCssStyleChange *change)
{
  GkBarChart *self = GK_BAR_CHART (widget);

  GTK_WIDGET_CLASS (gk_bar_chart_parent_class)->css_changed (widget, change);

  gk_chart_colors_lookup (widget, &self->colors);
  /* The font may have changed too, and with it the rows' height. */
  gtk_widget_queue_resize (widget);
}

static void
gk_bar_chart_finalize (GObject *object)
{
  GkBarChart *self = GK_BAR_CHART (object);

  g_clear_pointer (&self->labels, g_ptr_array_unref);
  g_clear_pointer (&self->texts, g_ptr_array_unref);
  g_clear_pointer (&self->values, g_array_unref);
  g_clear_pointer (&self->fractions, g_array_unref);

  G_OBJECT_CLASS (gk_bar_chart_parent_class)->finalize (object);
}

static void
gk_bar_chart_class_init (GkBarChartClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->finalize = gk_bar_chart_finalize;

  widget_class->snapshot = gk_bar_chart_snapshot;
  widget_class->measure = gk_bar_chart_measure;
  widget_class->css_changed = gk_bar_chart_css_changed;

  gtk_widget_class_set_css_name (widget_class, "barchart");
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_IMG);
}

static void
gk_bar_chart_init (GkBarChart *self)
{
  self->labels = g_ptr_array_new_with_free_func (g_free);
  self->texts = g_ptr_array_new_with_free_func (g_free);
  self->values = g_array_new (FALSE, FALSE, sizeof (double));
  self->fractions = g_array_new (FALSE, FALSE, sizeof (double));
  gk_chart_colors_lookup (GTK_WIDGET (self), &self->colors);
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
  gk_bar_chart_set_data_full (self, labels, values, NULL, n_bars);
}

/**
 * gk_bar_chart_set_data_full:
 * @texts: (nullable): how each value reads ("250 ms"); NULL, or a NULL
 *   element, for a count
 *
 * gk_bar_chart_set_data() for values that are not counts.
 */
void
gk_bar_chart_set_data_full (GkBarChart         *self,
                            const char * const *labels,
                            const double       *values,
                            const char * const *texts,
                            guint               n_bars)
{
  GString *description;

  g_return_if_fail (GK_IS_BAR_CHART (self));
  g_return_if_fail (n_bars == 0 || (labels != NULL && values != NULL));

  g_ptr_array_set_size (self->labels, 0);
  g_ptr_array_set_size (self->texts, 0);
  g_array_set_size (self->values, 0);
  description = g_string_new (NULL);
  for (guint i = 0; i < n_bars; i++)
    {
      const char *text = texts != NULL ? texts[i] : NULL;

      g_ptr_array_add (self->labels, g_strdup (labels[i] != NULL ? labels[i] : ""));
      g_ptr_array_add (self->texts, g_strdup (text));
      if (text != NULL)
        g_string_append_printf (description, "%s%s: %s", i > 0 ? ", " : "",
                                labels[i] != NULL ? labels[i] : "", text);
      else
        g_string_append_printf (description, "%s%s: %'.0f", i > 0 ? ", " : "",
                                labels[i] != NULL ? labels[i] : "", values[i]);
    }
  if (n_bars > 0)
    g_array_append_vals (self->values, values, n_bars);
  normalise (self);

  /* What the bars say, for a screen reader. */
  gtk_accessible_update_property (GTK_ACCESSIBLE (self),
                                  GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, description->str,
                                  -1);
  g_string_free (description, TRUE);
  gtk_widget_queue_resize (GTK_WIDGET (self));
}

guint
gk_bar_chart_get_n_bars (GkBarChart *self)
{
  g_return_val_if_fail (GK_IS_BAR_CHART (self), 0);

  return self->values->len;
}
