/* test-charts.c: GkLineChart and GkBarChart rendered to pixels.
 *
 * Each chart is shown in a window, rendered through the window's renderer
 * to a texture, and the pixels are checked for the theme's series colours,
 * in light and in dark mode. Set GK_TEST_PNG_DIR to keep the images.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <adwaita.h>
#include <math.h>

#include "gk-bar-chart.h"
#include "gk-line-chart.h"
#include "gk-ui-test-util.h"

#define WIDTH     480
#define HEIGHT    260
#define TOLERANCE 10

typedef struct
{
  int     width;
  int     height;
  guchar *data;        /* premultiplied ARGB32, as downloaded */
  gsize   stride;
} Pixels;

static void
pixels_clear (Pixels *pixels)
{
  g_clear_pointer (&pixels->data, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Pixels, pixels_clear)

static void
wait_for_mapped (GtkWidget *widget)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;

  while ((!gtk_widget_get_mapped (widget) || gtk_widget_get_width (widget) == 0)
         && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  /* Let the layout and CSS settle after mapping. */
  while (g_main_context_pending (NULL))
    g_main_context_iteration (NULL, FALSE);
  g_assert_true (gtk_widget_get_mapped (widget));
}

/* Waits until @widget has been given its natural height again: new data
 * queues a resize, which is only carried out on a later frame, and a
 * render before it would cut the drawing to the old height. */
static void
wait_for_natural_height (GtkWidget *widget)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  int natural = 0;

  while (g_get_monotonic_time () < deadline)
    {
      gtk_widget_measure (widget, GTK_ORIENTATION_VERTICAL, gtk_widget_get_width (widget),
                          NULL, &natural, NULL, NULL);
      if (gtk_widget_get_height (widget) == natural)
        break;
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (G_USEC_PER_SEC / 1000);
    }
  g_assert_cmpint (gtk_widget_get_height (widget), ==, natural);
}

static GtkWidget *
show_in_window (GtkWidget *child)
{
  GtkWidget *window = gtk_window_new ();

  gtk_window_set_default_size (GTK_WINDOW (window), WIDTH, HEIGHT);
  gtk_window_set_child (GTK_WINDOW (window), child);
  gtk_window_present (GTK_WINDOW (window));
  wait_for_mapped (child);
  return window;
}

/* Renders @widget's own drawing (transparent where it draws nothing). */
static void
render (GtkWidget  *widget,
        const char *png_name,
        Pixels     *pixels)
{
  GtkNative *native = gtk_widget_get_native (widget);
  g_autoptr(GtkSnapshot) snapshot = gtk_snapshot_new ();
  g_autoptr(GskRenderNode) node = NULL;
  g_autoptr(GdkTexture) texture = NULL;
  const char *dir = g_getenv ("GK_TEST_PNG_DIR");

  while (g_main_context_pending (NULL))
    g_main_context_iteration (NULL, FALSE);

  pixels->width = gtk_widget_get_width (widget);
  pixels->height = gtk_widget_get_height (widget);
  /* The widget's own drawing, without waiting for a frame clock tick. */
  GTK_WIDGET_GET_CLASS (widget)->snapshot (widget, snapshot);
  node = gtk_snapshot_to_node (snapshot);
  g_assert_nonnull (node);
  texture = gsk_renderer_render_texture (gtk_native_get_renderer (native), node,
                                         &GRAPHENE_RECT_INIT (0, 0, pixels->width,
                                                              pixels->height));
  g_assert_cmpint (gdk_texture_get_width (texture), ==, pixels->width);

  pixels->stride = (gsize) pixels->width * 4;
  pixels->data = g_malloc (pixels->stride * pixels->height);
  gdk_texture_download (texture, pixels->data, pixels->stride);

  if (dir != NULL)
    {
      g_autofree char *path = g_build_filename (dir, png_name, NULL);

      g_mkdir_with_parents (dir, 0755);
      g_assert_true (gdk_texture_save_to_png (texture, path));
    }
}

static gboolean
pixel_matches (const Pixels  *pixels,
               int            x,
               int            y,
               const GdkRGBA *color)
{
  const guchar *p = pixels->data + y * pixels->stride + x * 4;
  guint32 argb = *(const guint32 *) p;
  int a = (argb >> 24) & 0xff;
  int r = (argb >> 16) & 0xff;
  int g = (argb >> 8) & 0xff;
  int b = argb & 0xff;

  /* Only fully opaque pixels: their premultiplied values are the colour. */
  return a == 255
         && ABS (r - (int) (color->red * 255 + .5)) <= TOLERANCE
         && ABS (g - (int) (color->green * 255 + .5)) <= TOLERANCE
         && ABS (b - (int) (color->blue * 255 + .5)) <= TOLERANCE;
}

static guint
count_color (const Pixels          *pixels,
             const graphene_rect_t *area,
             const GdkRGBA         *color)
{
  int x0 = area ? MAX (0, (int) area->origin.x) : 0;
  int y0 = area ? MAX (0, (int) area->origin.y) : 0;
  int x1 = area ? MIN (pixels->width, (int) (area->origin.x + area->size.width)) : pixels->width;
  int y1 = area ? MIN (pixels->height, (int) (area->origin.y + area->size.height)) : pixels->height;
  guint count = 0;

  for (int y = y0; y < y1; y++)
    for (int x = x0; x < x1; x++)
      if (pixel_matches (pixels, x, y, color))
        count++;
  return count;
}

static guint
count_drawn (const Pixels *pixels)
{
  guint count = 0;

  for (int y = 0; y < pixels->height; y++)
    for (int x = 0; x < pixels->width; x++)
      if (pixels->data[y * pixels->stride + x * 4 + 3] != 0)
        count++;
  return count;
}

static void
set_dark (gboolean dark)
{
  adw_style_manager_set_color_scheme (adw_style_manager_get_default (),
                                      dark ? ADW_COLOR_SCHEME_FORCE_DARK
                                           : ADW_COLOR_SCHEME_FORCE_LIGHT);
  while (g_main_context_pending (NULL))
    g_main_context_iteration (NULL, FALSE);
}

static double
luminance (const GdkRGBA *c)
{
  return 0.2126 * c->red + 0.7152 * c->green + 0.0722 * c->blue;
}

#define N_MANY 30

static void
fill_days (gint64 *days,
           double *values,
           double *rates,
           guint   n)
{
  for (guint i = 0; i < n; i++)
    {
      days[i] = 1773532800 + (gint64) i * 86400;
      /* Rising requests; the rate dips in the middle. */
      values[i] = 40.0 * i;
      rates[i] = i == n / 2 ? 50 : 100;
    }
}

static void
test_line_chart (gconstpointer data)
{
  gboolean dark = GPOINTER_TO_INT (data);
  const char *scheme = dark ? "dark" : "light";
  GtkWidget *chart = gk_line_chart_new ();
  GtkWidget *window;
  GkChartColors colors;
  gint64 days[N_MANY];
  double values[N_MANY], rates[N_MANY];
  g_autofree char *name = NULL;

  set_dark (dark);
  window = show_in_window (chart);
  gk_chart_colors_lookup (chart, &colors);
  if (dark)
    g_assert_cmpfloat (luminance (&colors.fg), >, 0.5);
  else
    g_assert_cmpfloat (luminance (&colors.fg), <, 0.5);

  /* No points: the axes and the empty text, no series at all. */
  {
    g_auto(Pixels) pixels = { 0 };

    name = g_strdup_printf ("line-empty-%s.png", scheme);
    render (chart, name, &pixels);
    g_assert_cmpuint (count_color (&pixels, NULL, &colors.accent), ==, 0);
    g_assert_cmpuint (count_color (&pixels, NULL, &colors.success), ==, 0);
    g_assert_cmpuint (count_drawn (&pixels), >, 0);
    g_clear_pointer (&name, g_free);
  }

  /* One point: a dot in the middle, nowhere else. */
  {
    g_auto(Pixels) pixels = { 0 };
    int width = gtk_widget_get_width (chart);
    /* Below the legend, whose swatches are in the series colours. */
    graphene_rect_t below_legend = GRAPHENE_RECT_INIT (0, 24, width, HEIGHT);
    graphene_rect_t middle = GRAPHENE_RECT_INIT (width / 2.0 - 8, 24, 16, HEIGHT);

    fill_days (days, values, rates, N_MANY);
    values[0] = 7;
    gk_line_chart_set_data (GK_LINE_CHART (chart), days, values, NULL, 1);
    name = g_strdup_printf ("line-one-%s.png", scheme);
    render (chart, name, &pixels);
    g_assert_cmpuint (count_color (&pixels, &middle, &colors.accent), >, 10);
    g_assert_cmpuint (count_color (&pixels, &below_legend, &colors.accent),
                      ==, count_color (&pixels, &middle, &colors.accent));
    g_assert_cmpuint (gk_line_chart_get_n_points (GK_LINE_CHART (chart)), ==, 1);
    g_clear_pointer (&name, g_free);
  }

  /* Many points, rising: the line starts low on the left and ends high on
   * the right; the success-rate line is drawn too. */
  {
    g_auto(Pixels) pixels = { 0 };
    int width = gtk_widget_get_width (chart);
    int height = gtk_widget_get_height (chart);
    graphene_rect_t low_left = GRAPHENE_RECT_INIT (0, height / 2.0, width / 4.0, height / 2.0);
    graphene_rect_t high_left = GRAPHENE_RECT_INIT (0, 24, width / 4.0, height / 3.0);
    graphene_rect_t high_right = GRAPHENE_RECT_INIT (width * 3 / 4.0, 0, width / 4.0, height / 2.0);

    fill_days (days, values, rates, N_MANY);
    gk_line_chart_set_data (GK_LINE_CHART (chart), days, values, rates, N_MANY);
    /* 1160 requests at most: steps of 500, so the axis ends at 1500. */
    g_assert_cmpfloat (gk_line_chart_get_axis_max (GK_LINE_CHART (chart)), ==, 1500);
    name = g_strdup_printf ("line-many-%s.png", scheme);
    render (chart, name, &pixels);
    g_assert_cmpuint (count_color (&pixels, &low_left, &colors.accent), >, 20);
    g_assert_cmpuint (count_color (&pixels, &high_left, &colors.accent), ==, 0);
    g_assert_cmpuint (count_color (&pixels, &high_right, &colors.accent), >, 20);
    g_assert_cmpuint (count_color (&pixels, NULL, &colors.success), >, 50);
    g_clear_pointer (&name, g_free);

    /* The pointer over the right edge picks the newest day. */
    gk_line_chart_hover_at (GK_LINE_CHART (chart), width - 1);
    g_assert_cmpint (gk_line_chart_get_hover (GK_LINE_CHART (chart)), ==, N_MANY - 1);
    gk_line_chart_hover_at (GK_LINE_CHART (chart), 0);
    g_assert_cmpint (gk_line_chart_get_hover (GK_LINE_CHART (chart)), ==, 0);
    {
      g_auto(Pixels) hovered = { 0 };

      gk_line_chart_hover_at (GK_LINE_CHART (chart), width / 2.0);
      name = g_strdup_printf ("line-hover-%s.png", scheme);
      render (chart, name, &hovered);
      g_assert_cmpint (gk_line_chart_get_hover (GK_LINE_CHART (chart)), ==, N_MANY / 2);
      /* The hover label's background covers part of the plot. */
      g_assert_cmpuint (count_color (&hovered, NULL, &colors.popup_bg), >, 200);
      g_clear_pointer (&name, g_free);
    }
    gk_line_chart_hover_at (GK_LINE_CHART (chart), -1);
    g_assert_cmpint (gk_line_chart_get_hover (GK_LINE_CHART (chart)), ==, -1);
  }

  gtk_window_destroy (GTK_WINDOW (window));
}

/* The colours follow a theme change on a chart already shown. */
static void
test_line_chart_theme_switch (void)
{
  GtkWidget *chart = gk_line_chart_new ();
  GtkWidget *window;
  GkChartColors light, dark;
  gint64 days[N_MANY];
  double values[N_MANY], rates[N_MANY];
  g_auto(Pixels) pixels = { 0 };

  set_dark (FALSE);
  window = show_in_window (chart);
  fill_days (days, values, rates, N_MANY);
  gk_line_chart_set_data (GK_LINE_CHART (chart), days, values, rates, N_MANY);
  gk_chart_colors_lookup (chart, &light);

  set_dark (TRUE);
  gk_chart_colors_lookup (chart, &dark);
  g_assert_false (gdk_rgba_equal (&light.accent, &dark.accent));
  render (chart, "line-switched-dark.png", &pixels);
  g_assert_cmpuint (count_color (&pixels, NULL, &dark.accent), >, 50);
  g_assert_cmpuint (count_color (&pixels, NULL, &light.accent), ==, 0);

  gtk_window_destroy (GTK_WINDOW (window));
  set_dark (FALSE);
}

/* Days without requests have no success rate: the rate line leaves them
 * out instead of drawing them as 0 % or 100 %. */
static void
test_line_chart_gaps (void)
{
  GtkWidget *chart = gk_line_chart_new ();
  GtkWidget *window;
  GkChartColors colors;
  gint64 days[N_MANY];
  double values[N_MANY], rates[N_MANY];
  g_auto(Pixels) pixels = { 0 };
  int width, height;

  set_dark (FALSE);
  window = show_in_window (chart);
  gk_chart_colors_lookup (chart, &colors);
  fill_days (days, values, rates, N_MANY);
  for (guint i = 0; i < N_MANY / 2; i++)
    {
      values[i] = 0;
      rates[i] = NAN;
    }
  gk_line_chart_set_data (GK_LINE_CHART (chart), days, values, rates, N_MANY);
  render (chart, "line-gaps-light.png", &pixels);

  width = gtk_widget_get_width (chart);
  height = gtk_widget_get_height (chart);
  {
    /* Below the legend (whose swatch has the rate colour). */
    graphene_rect_t left = GRAPHENE_RECT_INIT (0, 24, width * 0.4, height - 24);
    graphene_rect_t right = GRAPHENE_RECT_INIT (width * 0.6, 24, width * 0.4, height - 24);

    g_assert_cmpuint (count_color (&pixels, &left, &colors.success), ==, 0);
    g_assert_cmpuint (count_color (&pixels, &right, &colors.success), >, 50);
  }

  gtk_window_destroy (GTK_WINDOW (window));
}

/* The widest run of @color on row @y. */
static int
run_length (const Pixels  *pixels,
            int            y,
            const GdkRGBA *color)
{
  int count = 0;

  for (int x = 0; x < pixels->width; x++)
    if (pixel_matches (pixels, x, y, color))
      count++;
  return count;
}

static void
test_bar_chart (gconstpointer data)
{
  gboolean dark = GPOINTER_TO_INT (data);
  const char *scheme = dark ? "dark" : "light";
  GtkWidget *chart = gk_bar_chart_new ();
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 0);
  GtkWidget *window;
  GkChartColors colors;
  g_autofree char *name = NULL;

  set_dark (dark);
  gtk_widget_set_valign (chart, GTK_ALIGN_START);
  gtk_box_append (GTK_BOX (box), chart);
  window = show_in_window (box);
  gk_chart_colors_lookup (chart, &colors);

  {
    g_auto(Pixels) pixels = { 0 };

    name = g_strdup_printf ("bar-empty-%s.png", scheme);
    render (chart, name, &pixels);
    g_assert_cmpuint (count_color (&pixels, NULL, &colors.accent), ==, 0);
    g_assert_cmpuint (count_drawn (&pixels), >, 0);
    g_clear_pointer (&name, g_free);
  }

  {
    const char *labels[] = { "gemini-2.5-flash" };
    double values[] = { 12 };
    g_auto(Pixels) pixels = { 0 };
    int widest = 0;

    gk_bar_chart_set_data (GK_BAR_CHART (chart), labels, values, 1);
    wait_for_natural_height (chart);
    name = g_strdup_printf ("bar-one-%s.png", scheme);
    render (chart, name, &pixels);
    for (int y = 0; y < pixels.height; y++)
      widest = MAX (widest, run_length (&pixels, y, &colors.accent));
    /* The largest bar spans the whole width. */
    g_assert_cmpint (widest, >=, pixels.width - 2);
    g_clear_pointer (&name, g_free);
  }

  {
    const char *labels[] = { "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash-lite" };
    double values[] = { 400, 200, 100 };
    g_auto(Pixels) pixels = { 0 };
    int runs[3] = { 0 };
    guint n_runs = 0;
    int previous = 0;

    gk_bar_chart_set_data (GK_BAR_CHART (chart), labels, values, 3);
    g_assert_cmpuint (gk_bar_chart_get_n_bars (GK_BAR_CHART (chart)), ==, 3);
    wait_for_natural_height (chart);
    name = g_strdup_printf ("bar-many-%s.png", scheme);
    render (chart, name, &pixels);
    /* Three bars from top to bottom; each half the one above it. */
    for (int y = 0; y < pixels.height; y++)
      {
        int run = run_length (&pixels, y, &colors.accent);

        if (run > 0 && previous == 0)
          {
            g_assert_cmpuint (n_runs, <, 3);
            runs[n_runs++] = run;
          }
        else if (run > 0)
          runs[n_runs - 1] = MAX (runs[n_runs - 1], run);
        previous = run;
      }
    g_assert_cmpuint (n_runs, ==, 3);
    g_assert_cmpint (ABS (runs[1] * 2 - runs[0]), <=, 8);
    g_assert_cmpint (ABS (runs[2] * 4 - runs[0]), <=, 16);
    g_clear_pointer (&name, g_free);
  }

  gtk_window_destroy (GTK_WINDOW (window));
}

int
main (int   argc,
      char *argv[])
{
  /* The Cairo renderer gives the same pixels on every machine. */
  g_setenv ("GSK_RENDERER", "cairo", TRUE);
  gtk_test_init (&argc, &argv, NULL);
  gk_ui_test_fixed_locale ();
  gk_ui_test_adw_init ();

  g_test_add_data_func ("/ui/charts/line/light", GINT_TO_POINTER (FALSE), test_line_chart);
  g_test_add_data_func ("/ui/charts/line/dark", GINT_TO_POINTER (TRUE), test_line_chart);
  g_test_add_func ("/ui/charts/line/theme-switch", test_line_chart_theme_switch);
  g_test_add_func ("/ui/charts/line/gaps", test_line_chart_gaps);
  g_test_add_data_func ("/ui/charts/bar/light", GINT_TO_POINTER (FALSE), test_bar_chart);
  g_test_add_data_func ("/ui/charts/bar/dark", GINT_TO_POINTER (TRUE), test_bar_chart);

  return g_test_run ();
}
