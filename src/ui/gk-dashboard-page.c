/* gk-dashboard-page.c: cards, charts and tables over the last 7 or 30 days.
 *
 * One worker-thread query (gk_stats_dashboard) per reload; a reload
 * cancels the one before it, so a slow answer never overwrites a newer one.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>

#include "gk-bar-chart.h"
#include "gk-compare-view.h"
#include "gk-dashboard-page.h"
#include "gk-line-chart.h"
#include "gk-page-load.h"
#include "gk-rotations-page.h"
#include "gk-usage-model.h"

#define DEFAULT_DAYS   7
#define LONG_DAYS      30
#define MIN_NAME_CHARS 8

struct _GkDashboardPage
{
  AdwBin         parent_instance;

  GtkStack      *stack;
  AdwStatusPage *error_status;
  GtkToggleButton *week_button;
  GtkToggleButton *month_button;
  GtkLabel      *keys_label;
  GtkLabel      *keys_detail_label;
  GtkLabel      *requests_title_label;
  GtkLabel      *requests_label;
  GtkLabel      *requests_detail_label;
  GtkLabel      *success_label;
  GtkLabel      *success_detail_label;
  GtkLabel      *cost_title_label;
  GtkLabel      *cost_label;
  GkLineChart   *line_chart;
  GkBarChart    *models_chart;
  GtkGrid       *users_grid;
  GtkGrid       *rotations_grid;
  GtkLabel      *spend_summary_label;
  GtkLabel      *spend_warning_label;
  GtkGrid       *spend_grid;
  GtkWidget     *forecast_box;
  GtkLabel      *forecast_label;
  GkCompareView *compare_view;

  GkPageLoad     load;
  guint          days;
};

G_DEFINE_FINAL_TYPE (GkDashboardPage, gk_dashboard_page, ADW_TYPE_BIN)

/* GkDashboardPair: two cards side by side, of equal width, when both fit
 * at their natural width; one above the other, each its own height, when
 * not. (libadwaita 1.2 has no breakpoints, and a flow box either makes
 * the two widths unequal or, homogeneous, the stacked heights equal.) */

#define GK_TYPE_DASHBOARD_PAIR (gk_dashboard_pair_get_type ())
G_DECLARE_FINAL_TYPE (GkDashboardPair, gk_dashboard_pair, GK, DASHBOARD_PAIR, GtkWidget)

struct _GkDashboardPair
{
  GtkWidget parent_instance;
};

G_DEFINE_FINAL_TYPE (GkDashboardPair, gk_dashboard_pair, GTK_TYPE_WIDGET)

#define PAIR_SPACING 18

static gboolean
pair_get_children (GtkWidget  *widget,
                   GtkWidget **first,
                   GtkWidget **second)
{
  *first = gtk_widget_get_first_child (widget);
  *second = *first != NULL ? gtk_widget_get_next_sibling (*first) : NULL;
  return *second != NULL;
}

static gboolean
pair_side_by_side (GtkWidget *first,
                   GtkWidget *second,
                   int        width)
{
  int natural_first, natural_second;

  gtk_widget_measure (first, GTK_ORIENTATION_HORIZONTAL, -1, NULL, &natural_first, NULL, NULL);
  gtk_widget_measure (second, GTK_ORIENTATION_HORIZONTAL, -1, NULL, &natural_second, NULL, NULL);
  return width >= 2 * MAX (natural_first, natural_second) + PAIR_SPACING;
}

static void
gk_dashboard_pair_measure (GtkWidget      *widget,
                           GtkOrientation  orientation,
                           int             for_size,
                           int            *minimum,
                           int            *natural,
                           int            *minimum_baseline,
                           int            *natural_baseline)
{
  GtkWidget *first, *second;
  int min_first, nat_first, min_second, nat_second;
  int child_size = for_size;
  gboolean beside;

  *minimum = *natural = 0;
  if (!pair_get_children (widget, &first, &second))
    return;

  if (orientation == GTK_ORIENTATION_HORIZONTAL)
    {
      gtk_widget_measure (first, orientation, -1, &min_first, &nat_first, NULL, NULL);
      gtk_widget_measure (second, orientation, -1, &min_second, &nat_second, NULL, NULL);
      /* Stacked at the least, side by side at the most. */
      *minimum = MAX (min_first, min_second);
      *natural = 2 * MAX (nat_first, nat_second) + PAIR_SPACING;
      return;
    }

  beside = for_size >= 0 && pair_side_by_side (first, second, for_size);
  if (beside)
    child_size = (for_size - PAIR_SPACING) / 2;
  gtk_widget_measure (first, orientation, child_size, &min_first, &nat_first, NULL, NULL);
  gtk_widget_measure (second, orientation, child_size, &min_second, &nat_second, NULL, NULL);
  if (beside)
    {
      *minimum = MAX (min_first, min_second);
      *natural = MAX (nat_first, nat_second);
    }
  else
    {
      *minimum = min_first + PAIR_SPACING + min_second;
      *natural = nat_first + PAIR_SPACING + nat_second;
    }
}

static void
gk_dashboard_pair_size_allocate (GtkWidget *widget,
                                 int        width,
                                 int        height,
                                 int        baseline)
{
  GtkWidget *first, *second;
  int height_first, height_second;

  if (!pair_get_children (widget, &first, &second))
    return;

  if (pair_side_by_side (first, second, width))
    {
      int half = (width - PAIR_SPACING) / 2;

      gtk_widget_measure (first, GTK_ORIENTATION_VERTICAL, half, NULL, &height_first, NULL, NULL);
      gtk_widget_measure (second, GTK_ORIENTATION_VERTICAL, width - half - PAIR_SPACING,
                          NULL, &height_second, NULL, NULL);
      gtk_widget_size_allocate (first, &(GtkAllocation) { 0, 0, half, MIN (height, height_first) },
                                -1);
      gtk_widget_size_allocate (second,
                                &(GtkAllocation) { half + PAIR_SPACING, 0,
                                                   width - half - PAIR_SPACING,
                                                   MIN (height, height_second) },
                                -1);
      return;
    }

  gtk_widget_measure (first, GTK_ORIENTATION_VERTICAL, width, NULL, &height_first, NULL, NULL);
  gtk_widget_measure (second, GTK_ORIENTATION_VERTICAL, width, NULL, &height_second, NULL, NULL);
  gtk_widget_size_allocate (first, &(GtkAllocation) { 0, 0, width, height_first }, -1);
  gtk_widget_size_allocate (second,
                            &(GtkAllocation) { 0, height_first + PAIR_SPACING,
                                               width, height_second },
                            -1);
}

static GtkSizeRequestMode
gk_dashboard_pair_get_request_mode (GtkWidget *widget)
{
  return GTK_SIZE_REQUEST_HEIGHT_FOR_WIDTH;
}

static void
gk_dashboard_pair_dispose (GObject *object)
{
  GtkWidget *child;

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (object))) != NULL)
    gtk_widget_unparent (child);

  G_OBJECT_CLASS (gk_dashboard_pair_parent_class)->dispose (object);
}

static void
gk_dashboard_pair_class_init (GkDashboardPairClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_dashboard_pair_dispose;
  widget_class->measure = gk_dashboard_pair_measure;
  widget_class->size_allocate = gk_dashboard_pair_size_allocate;
  widget_class->get_request_mode = gk_dashboard_pair_get_request_mode;
}

static void
gk_dashboard_pair_init (GkDashboardPair *self)
{
}

/* The page */

enum {
  PROP_0,
  PROP_DAYS,
  PROP_LOADING,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* Tables */

static void
grid_clear (GtkGrid *grid)
{
  GtkWidget *child;

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (grid))) != NULL)
    gtk_grid_remove (grid, child);
}

typedef enum
{
  COLUMN_TEXT    = 0,
  /* Figures and times are never cut: they are right-aligned and keep their
   * width, and the names around them give way. */
  COLUMN_NUMBER  = 1 << 0,
  COLUMN_FIXED   = 1 << 1,
  /* Takes a share of the spare width. */
  COLUMN_EXPAND  = 1 << 2,
} ColumnFlags;

typedef struct
{
  const char  *header;
  ColumnFlags  flags;
} Column;

static GtkWidget *
cell_new (const char   *text,
          const Column *column,
          gboolean      header)
{
  GtkWidget *label = gtk_label_new (text);

  gtk_label_set_xalign (GTK_LABEL (label), (column->flags & COLUMN_NUMBER) ? 1 : 0);
  if (!(column->flags & (COLUMN_NUMBER | COLUMN_FIXED)))
    {
      gtk_label_set_ellipsize (GTK_LABEL (label), PANGO_ELLIPSIZE_END);
      /* Enough of a name to tell keys apart before the ellipsis. */
      gtk_label_set_width_chars (GTK_LABEL (label), MIN_NAME_CHARS);
    }
  gtk_widget_set_hexpand (label, (column->flags & COLUMN_EXPAND) != 0);
  if (header)
    {
      gtk_widget_add_css_class (label, "caption-heading");
      gtk_widget_add_css_class (label, "dim-label");
    }
  else if (column->flags & COLUMN_NUMBER)
    {
      gtk_widget_add_css_class (label, "numeric");
    }
  return label;
}

/* Fills @grid with a header row and @n_rows rows of @n_columns cells
 * (@cells row by row, owned by the caller). */
static void
grid_fill (GtkGrid      *grid,
           const Column *columns,
           guint         n_columns,
           char        **cells,
           guint         n_rows)
{
  grid_clear (grid);

  if (n_rows == 0)
    {
      GtkWidget *empty = gtk_label_new (_("No data yet"));

      gtk_widget_add_css_class (empty, "dim-label");
      gtk_widget_set_hexpand (empty, TRUE);
      gtk_widget_set_margin_top (empty, 12);
      gtk_widget_set_margin_bottom (empty, 12);
      gtk_grid_attach (grid, empty, 0, 0, 1, 1);
      return;
    }

  for (guint c = 0; c < n_columns; c++)
    gtk_grid_attach (grid, cell_new (columns[c].header, &columns[c], TRUE), c, 0, 1, 1);
  for (guint r = 0; r < n_rows; r++)
    for (guint c = 0; c < n_columns; c++)
      gtk_grid_attach (grid, cell_new (cells[r * n_columns + c], &columns[c], FALSE),
                       c, r + 1, 1, 1);
}

static void
show_users (GkDashboardPage *self,
            GPtrArray       *users)
{
  const Column columns[] = {
    { _("User"), COLUMN_EXPAND },
    { _("Requests"), COLUMN_NUMBER },
    { _("Tokens"), COLUMN_NUMBER },
    { _("Cost"), COLUMN_NUMBER },
  };
  g_autoptr(GPtrArray) cells = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; i < users->len; i++)
    {
      GkRankRow *row = g_ptr_array_index (users, i);

      g_ptr_array_add (cells, g_strdup (row->name != NULL && *row->name != '\0'
                                        ? row->name : _("Unknown")));
      g_ptr_array_add (cells, gk_format_count (row->requests));
      g_ptr_array_add (cells, gk_format_count (row->tokens));
      g_ptr_array_add (cells, gk_format_money (row->cost_usd));
    }
  grid_fill (self->users_grid, columns, G_N_ELEMENTS (columns),
             (char **) cells->pdata, users->len);
}

static void
show_rotations (GkDashboardPage *self,
                GPtrArray       *rotations)
{
  const Column columns[] = {
    { _("Time"), COLUMN_FIXED },
    { _("From"), COLUMN_EXPAND },
    { _("To"), COLUMN_EXPAND },
    { _("Reason"), COLUMN_FIXED },
    { _("Triggered By"), COLUMN_FIXED },
  };
  g_autoptr(GPtrArray) cells = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; i < rotations->len; i++)
    {
      GkRotationRow *row = g_ptr_array_index (rotations, i);

      g_ptr_array_add (cells, gk_format_date (row->created_at));
      g_ptr_array_add (cells, g_strdup (row->from_key_name != NULL ? row->from_key_name : ""));
      /* Translators: no key was left to rotate to. */
      g_ptr_array_add (cells, g_strdup (row->to_key_name != NULL ? row->to_key_name
                                                                 : C_("rotation target", "None")));
      g_ptr_array_add (cells, gk_rotation_reason_label_full (row));
      g_ptr_array_add (cells, gk_rotation_trigger_label (row->triggered_by));
    }
  grid_fill (self->rotations_grid, columns, G_N_ELEMENTS (columns),
             (char **) cells->pdata, rotations->len);
}

static void set_label_take (GtkLabel *label,
                            char     *text);

/* "$2.10 of $3.00 (70%)", or the amount alone without a budget. */
static char *
format_against_budget (double spent,
                       double budget)
{
  g_autofree char *amount = gk_format_money (spent);
  g_autofree char *limit = NULL;

  if (budget < 0)
    return g_steal_pointer (&amount);
  limit = gk_format_money (budget);
  /* Translators: spend against a budget: "$2.10 of $3.00 (70%)". */
  return g_strdup_printf (_("%s of %s (%.0f%%)"), amount, limit, gk_spend_percent (spent, budget));
}

/* Today's and this month's spend, the pool's budget, and each key's. */
static void
show_spend (GkDashboardPage *self,
            const GkSpend   *spend)
{
  const Column columns[] = {
    { _("Key"), COLUMN_EXPAND },
    { _("Today"), COLUMN_NUMBER },
    { _("This Month"), COLUMN_NUMBER },
  };
  g_autoptr(GPtrArray) cells = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *today = gk_format_money (spend->today_usd);
  g_autofree char *month = format_against_budget (spend->month_usd, spend->pool_budget_usd);
  gboolean spent = spend->pool_budget_usd >= 0 &&
                   gk_spend_percent (spend->month_usd, spend->pool_budget_usd) >= 100.0;

  set_label_take (self->spend_summary_label,
                  /* Translators: "Today $0.60 · this month $2.10 of $3.00 (70%)". */
                  g_strdup_printf (_("Today %s · this month %s"), today, month));
  gtk_widget_set_visible (GTK_WIDGET (self->spend_warning_label), spent);
  if (spent)
    gtk_label_set_label (self->spend_warning_label,
                         _("The pool’s monthly budget is spent: no key is used until the month "
                           "resets or the budget is raised in Preferences."));

  for (guint i = 0; i < spend->keys->len; i++)
    {
      const GkKeySpend *key = g_ptr_array_index (spend->keys, i);

      g_ptr_array_add (cells, g_strdup (key->key_name));
      g_ptr_array_add (cells, gk_format_money (key->today_usd));
      g_ptr_array_add (cells, format_against_budget (key->month_usd, key->budget_usd));
    }
  grid_fill (self->spend_grid, columns, G_N_ELEMENTS (columns),
             (char **) cells->pdata, spend->keys->len);
}

/* Cards and charts */

static void
set_label_take (GtkLabel *label,
                char     *text)
{
  gtk_label_set_label (label, text);
  g_free (text);
}

static void
show_titles (GkDashboardPage *self)
{
  set_label_take (self->requests_title_label,
                  g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                                "Requests, Last %u Day",
                                                "Requests, Last %u Days", self->days),
                                   self->days));
  set_label_take (self->cost_title_label,
                  g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                                "Cost, Last %u Day",
                                                "Cost, Last %u Days", self->days),
                                   self->days));
}

static void
show_dashboard (GkDashboardPage *self,
                GkDashboard     *dashboard)
{
  const GkDashboardCards *cards = &dashboard->cards;
  g_autofree char *states = gk_key_state_format_counts (cards->keys_by_state);
  g_autofree char *successes = gk_format_count (cards->successes);
  g_autofree char *failures = gk_format_count (cards->requests - cards->successes);
  g_autofree gint64 *days = g_new0 (gint64, MAX (1, dashboard->daily->len));
  g_autofree double *requests = g_new0 (double, MAX (1, dashboard->daily->len));
  g_autofree double *rates = g_new0 (double, MAX (1, dashboard->daily->len));
  g_autofree const char **models = g_new0 (const char *, dashboard->top_models->len + 1);
  g_autofree double *model_requests = g_new0 (double, dashboard->top_models->len + 1);

  show_titles (self);

  set_label_take (self->keys_label, gk_format_count (cards->total_keys));
  /* The breakdown by state, in the badges' words; a line breaks only
   * between states, never inside "1 Rejected by Google". */
  {
    g_auto(GStrv) parts = g_strsplit (states, " · ", -1);

    for (guint i = 0; parts[i] != NULL; i++)
      {
        g_auto(GStrv) words = g_strsplit (parts[i], " ", -1);

        g_free (parts[i]);
        parts[i] = g_strjoinv ("\u00a0", words);
      }
    set_label_take (self->keys_detail_label, g_strjoinv (" · ", parts));
  }
  set_label_take (self->requests_label, gk_format_count (cards->requests));
  /* Translators: the Requests card's detail: failed request count. */
  set_label_take (self->requests_detail_label, g_strdup_printf (_("%s failed"), failures));
  /* No requests, no rate: 0 % would read as every request failing. */
  set_label_take (self->success_label, cards->requests > 0
                                       ? g_strdup_printf ("%.1f%%", cards->success_rate)
                                       : g_strdup ("—"));
  /* Translators: the Success Rate card's detail: successful request count. */
  set_label_take (self->success_detail_label, g_strdup_printf (_("%s succeeded"), successes));
  set_label_take (self->cost_label, gk_format_money (cards->cost_usd));

  for (guint i = 0; i < dashboard->daily->len; i++)
    {
      const GkDailyPoint *point = &g_array_index (dashboard->daily, GkDailyPoint, i);

      days[i] = point->day_start;
      requests[i] = point->requests;
      /* A day without requests has no rate: a gap in the line, neither a
       * failure nor a success. */
      rates[i] = point->requests > 0 ? 100.0 * point->successes / point->requests : NAN;
    }
  gk_line_chart_set_data (self->line_chart, days, requests, rates, dashboard->daily->len);

  for (guint i = 0; i < dashboard->top_models->len; i++)
    {
      GkRankRow *row = g_ptr_array_index (dashboard->top_models, i);

      models[i] = row->name;
      model_requests[i] = row->requests;
    }
  gk_bar_chart_set_data (self->models_chart, models, model_requests,
                         dashboard->top_models->len);

  show_users (self, dashboard->top_users);
  show_rotations (self, dashboard->rotations);
  show_spend (self, dashboard->spend);

  /* With no keys and no history there is nothing to chart: say what to do. */
  if (cards->total_keys == 0 && cards->requests == 0 && dashboard->rotations->len == 0)
    gtk_stack_set_visible_child_name (self->stack, "empty");
  else
    gtk_stack_set_visible_child_name (self->stack, "content");
}

/* Loading */

typedef struct
{
  GkDatabase *db;
  guint       days;
} LoadData;

/* What one load reads, in a worker thread. */
typedef struct
{
  GkDashboard *dashboard;
  GPtrArray   *compare;     /* GkKeyComparison */
  GkForecast  *forecast;
} Loaded;

static void
loaded_free (Loaded *loaded)
{
  g_clear_pointer (&loaded->dashboard, gk_dashboard_free);
  g_clear_pointer (&loaded->compare, g_ptr_array_unref);
  g_clear_pointer (&loaded->forecast, gk_forecast_free);
  g_free (loaded);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Loaded, loaded_free)

static void
load_data_free (LoadData *data)
{
  g_clear_object (&data->db);
  g_free (data);
}

static void
load_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  LoadData *data = task_data;
  GError *error = NULL;
  g_autoptr(Loaded) loaded = g_new0 (Loaded, 1);

  loaded->dashboard = gk_stats_dashboard (data->db, data->days, &error);
  if (loaded->dashboard != NULL)
    loaded->compare = gk_insights_compare_days (data->db, data->days, &error);
  if (loaded->compare != NULL)
    loaded->forecast = gk_insights_forecast (data->db, &error);
  if (loaded->forecast == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, g_steal_pointer (&loaded), (GDestroyNotify) loaded_free);
}

static void
show_forecast (GkDashboardPage  *self,
               const GkForecast *forecast)
{
  g_autofree char *keys = NULL;
  g_autofree char *pool = NULL;

  gtk_widget_set_visible (self->forecast_box, forecast->windows->len > 0);
  if (forecast->keys_out_today > 0)
    keys = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%u key will run out today",
                                         "%u keys will run out today",
                                         forecast->keys_out_today),
                            forecast->keys_out_today);
  else
    keys = g_strdup (_("No key will run out today"));
  if (forecast->pool_runs_out_at != 0)
    {
      g_autofree char *at = gk_format_moment_at (forecast->pool_runs_out_at, forecast->now);

      /* Translators: %s is a time ("18:40") or a day and time. */
      pool = g_strdup_printf (_("At this rate the pool lasts until %s"), at);
    }
  set_label_take (self->forecast_label,
                  pool != NULL ? g_strdup_printf ("%s · %s", keys, pool) : g_steal_pointer (&keys));
}

static void
load_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  GkDashboardPage *self = GK_DASHBOARD_PAGE (object);
  g_autoptr(Loaded) loaded = NULL;
  g_autoptr(GError) error = NULL;

  loaded = g_task_propagate_pointer (G_TASK (result), &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  if (loaded == NULL)
    {
      adw_status_page_set_description (self->error_status, error->message);
      gtk_stack_set_visible_child_name (self->stack, "error");
    }
  else if (loaded->dashboard->days == self->days)
    {
      show_dashboard (self, loaded->dashboard);
      show_forecast (self, loaded->forecast);
      gk_compare_view_set_rows (self->compare_view, loaded->compare);
    }
  gk_page_load_set_loading (&self->load, FALSE);
}

static void
reload (gpointer page)
{
  GkDashboardPage *self = page;
  GkDatabase *db;
  g_autoptr(GTask) task = gk_page_load_start (&self->load, load_cb, reload, &db);
  LoadData *data;

  if (task == NULL)
    return;

  data = g_new0 (LoadData, 1);
  data->db = g_object_ref (db);
  data->days = self->days;
  g_task_set_task_data (task, data, (GDestroyNotify) load_data_free);
  g_task_run_in_thread (task, load_thread);
}

/* Signal callbacks */

static void
period_toggled_cb (GtkToggleButton *button,
                   GkDashboardPage *self)
{
  /* Both buttons of the group toggle; act once, on the one turned on. */
  if (!gtk_toggle_button_get_active (button))
    return;
  gk_dashboard_page_set_days (self, button == self->month_button ? LONG_DAYS : DEFAULT_DAYS);
}

/* Overrides */

static void
gk_dashboard_page_dispose (GObject *object)
{
  GkDashboardPage *self = GK_DASHBOARD_PAGE (object);

  gk_page_load_dispose (&self->load);
  gk_page_dispose_template (ADW_BIN (self), GK_TYPE_DASHBOARD_PAGE);

  G_OBJECT_CLASS (gk_dashboard_page_parent_class)->dispose (object);
}

static void
gk_dashboard_page_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  GkDashboardPage *self = GK_DASHBOARD_PAGE (object);

  switch (prop_id)
    {
    case PROP_DAYS:
      g_value_set_uint (value, self->days);
      break;
    case PROP_LOADING:
      g_value_set_boolean (value, self->load.loading);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gk_dashboard_page_set_property (GObject      *object,
                                guint         prop_id,
                                const GValue *value,
                                GParamSpec   *pspec)
{
  GkDashboardPage *self = GK_DASHBOARD_PAGE (object);

  switch (prop_id)
    {
    case PROP_DAYS:
      gk_dashboard_page_set_days (self, g_value_get_uint (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gk_dashboard_page_class_init (GkDashboardPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_dashboard_page_dispose;
  object_class->get_property = gk_dashboard_page_get_property;
  object_class->set_property = gk_dashboard_page_set_property;

  properties[PROP_DAYS] =
    g_param_spec_uint ("days", NULL, NULL, 1, 366, DEFAULT_DAYS,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_LOADING] =
    g_param_spec_boolean ("loading", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  g_type_ensure (GK_TYPE_LINE_CHART);
  g_type_ensure (GK_TYPE_BAR_CHART);
  g_type_ensure (GK_TYPE_COMPARE_VIEW);
  g_type_ensure (GK_TYPE_DASHBOARD_PAIR);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/geminikeys/GeminiKeys/ui/gk-dashboard-page.ui");
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, stack);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, forecast_box);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, forecast_label);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, compare_view);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, error_status);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, week_button);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, month_button);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, keys_label);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, keys_detail_label);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, requests_title_label);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, requests_label);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, requests_detail_label);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, success_label);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, success_detail_label);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, cost_title_label);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, cost_label);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, line_chart);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, models_chart);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, users_grid);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, rotations_grid);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, spend_summary_label);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, spend_warning_label);
  gtk_widget_class_bind_template_child (widget_class, GkDashboardPage, spend_grid);
  gtk_widget_class_bind_template_callback (widget_class, period_toggled_cb);
}

static void
gk_dashboard_page_init (GkDashboardPage *self)
{
  self->days = DEFAULT_DAYS;
  gk_page_load_init (&self->load, GTK_WIDGET (self), properties[PROP_LOADING], reload, FALSE);
  gtk_widget_init_template (GTK_WIDGET (self));
  show_titles (self);
}

/* Public API */

GtkWidget *
gk_dashboard_page_new (void)
{
  return g_object_new (GK_TYPE_DASHBOARD_PAGE, NULL);
}

void
gk_dashboard_page_set_backend (GkDashboardPage *self,
                               GkBackend       *backend)
{
  g_return_if_fail (GK_IS_DASHBOARD_PAGE (self));
  g_return_if_fail (backend == NULL || GK_IS_BACKEND (backend));

  gk_page_load_set_backend (&self->load, backend);
}

void
gk_dashboard_page_set_days (GkDashboardPage *self,
                            guint            days)
{
  g_return_if_fail (GK_IS_DASHBOARD_PAGE (self));
  g_return_if_fail (days > 0);

  if (self->days == days)
    return;

  self->days = days;
  /* Keep the toggle in step when the days are set from code. */
  gtk_toggle_button_set_active (days == LONG_DAYS ? self->month_button : self->week_button, TRUE);
  show_titles (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_DAYS]);
  reload (self);
}

guint
gk_dashboard_page_get_days (GkDashboardPage *self)
{
  g_return_val_if_fail (GK_IS_DASHBOARD_PAGE (self), DEFAULT_DAYS);

  return self->days;
}

gboolean
gk_dashboard_page_get_loading (GkDashboardPage *self)
{
  g_return_val_if_fail (GK_IS_DASHBOARD_PAGE (self), FALSE);

  return self->load.loading;
}
