/* gk-compare-view.c: the key comparison: a chart and a sortable table.
 *
 * The rows come from gk_insights_compare() (the dashboard loads them with
 * its own figures, in a worker thread); this widget only shows them. The
 * chart draws one of the table's measures per key, the busiest keys
 * first.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-bar-chart.h"
#include "gk-compare-view.h"
#include "gk-core.h"
#include "gk-format.h"

/* The busiest keys the chart shows. */
#define CHART_KEYS 10

/* One row of the table: a GObject over a GkKeyComparison. */
#define GK_TYPE_COMPARE_ITEM (gk_compare_item_get_type ())
G_DECLARE_FINAL_TYPE (GkCompareItem, gk_compare_item, GK, COMPARE_ITEM, GObject)

struct _GkCompareItem
{
  GObject                parent_instance;
  GPtrArray             *rows;    /* keeps @row alive */
  const GkKeyComparison *row;
};

G_DEFINE_FINAL_TYPE (GkCompareItem, gk_compare_item, G_TYPE_OBJECT)

static void
gk_compare_item_finalize (GObject *object)
{
  g_clear_pointer (&GK_COMPARE_ITEM (object)->rows, g_ptr_array_unref);
  G_OBJECT_CLASS (gk_compare_item_parent_class)->finalize (object);
}

static void
gk_compare_item_class_init (GkCompareItemClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gk_compare_item_finalize;
}

static void
gk_compare_item_init (GkCompareItem *self)
{
}

struct _GkCompareView
{
  GtkWidget         parent_instance;

  GtkDropDown      *metric_dropdown;
  GkBarChart       *chart;
  GtkColumnView    *column_view;

  GListStore       *store;
  GtkSortListModel *sorted;
  GPtrArray        *rows;
};

G_DEFINE_FINAL_TYPE (GkCompareView, gk_compare_view, GTK_TYPE_WIDGET)

typedef enum
{
  COLUMN_NAME,
  COLUMN_REQUESTS,
  COLUMN_SUCCESS,
  COLUMN_RATE_LIMITED,
  COLUMN_REJECTED,
  COLUMN_P50,
  COLUMN_P95,
  COLUMN_TOKENS,
  COLUMN_COST,
  COLUMN_COST_PER_1K,
  COLUMN_SHARE,
  N_COLUMNS,
} Column;

/* "429", "p50" and "p95" read the same in every language. */
static const char *const column_titles[N_COLUMNS] = {
  N_("Key"), N_("Requests"), N_("Success"), "429", N_("Rejected"), "p50", "p95",
  N_("Tokens"), N_("Cost"), N_("Per 1K Tokens"), N_("Share"),
};

/* The chart's measures, in the order of the drop-down. */
static const Column chart_columns[] = {
  COLUMN_REQUESTS, COLUMN_SUCCESS, COLUMN_RATE_LIMITED, COLUMN_P95, COLUMN_COST,
};

/* A measure as a number (-1 = none, sorted last). */
static double
column_value (const GkKeyComparison *row,
              Column                 column)
{
  switch (column)
    {
    case COLUMN_REQUESTS: return (double) row->requests;
    case COLUMN_SUCCESS: return row->requests > 0 ? row->success_rate : -1;
    case COLUMN_RATE_LIMITED: return row->requests > 0 ? row->rate_limited_rate : -1;
    case COLUMN_REJECTED: return row->requests > 0 ? row->rejected_rate : -1;
    case COLUMN_P50: return row->p50_ms;
    case COLUMN_P95: return row->p95_ms;
    case COLUMN_TOKENS: return (double) row->tokens;
    case COLUMN_COST: return row->cost_usd;
    case COLUMN_COST_PER_1K: return row->cost_per_1k_tokens;
    case COLUMN_SHARE: return row->share;
    case COLUMN_NAME:
    case N_COLUMNS:
    default: return 0;
    }
}

/* A measure as people read it; "—" for none. */
static char *
column_text (const GkKeyComparison *row,
             Column                 column)
{
  double value = column_value (row, column);

  if (column == COLUMN_NAME)
    return row->deleted ? g_strdup_printf (_("%s (deleted)"), row->name) : g_strdup (row->name);
  if (value < 0)
    return g_strdup ("—");
  switch (column)
    {
    case COLUMN_REQUESTS:
    case COLUMN_TOKENS:
      return gk_format_count ((gint64) value);
    case COLUMN_SUCCESS:
    case COLUMN_RATE_LIMITED:
    case COLUMN_REJECTED:
    case COLUMN_SHARE:
      return g_strdup_printf ("%.1f%%", value);
    case COLUMN_P50:
    case COLUMN_P95:
      /* Translators: a latency in milliseconds. */
      return g_strdup_printf (_("%.0f ms"), value);
    case COLUMN_COST:
    case COLUMN_COST_PER_1K:
      return gk_format_money (value);
    case COLUMN_NAME:
    case N_COLUMNS:
    default:
      return g_strdup ("");
    }
}

static int
by_requests_cb (gconstpointer a,
                gconstpointer b)
{
  const GkKeyComparison *ra = *(GkKeyComparison * const *) a;
  const GkKeyComparison *rb = *(GkKeyComparison * const *) b;

  return (ra->requests < rb->requests) - (ra->requests > rb->requests);
}

static void
update_chart (GkCompareView *self)
{
  guint metric = gtk_drop_down_get_selected (self->metric_dropdown);
  Column column = chart_columns[MIN (metric, G_N_ELEMENTS (chart_columns) - 1)];
  g_autoptr(GPtrArray) busiest = NULL;
  g_autoptr(GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  g_autofree const char **labels = NULL;
  g_autofree double *values = NULL;
  guint n = 0;

  if (self->rows == NULL)
    {
      gk_bar_chart_set_data (self->chart, NULL, NULL, 0);
      return;
    }

  /* The keys that carried the most traffic, busiest first. */
  /* A view of the rows: a copy would free them too. */
  busiest = g_ptr_array_new ();
  g_ptr_array_extend (busiest, self->rows, NULL, NULL);
  g_ptr_array_sort (busiest, by_requests_cb);

  labels = g_new0 (const char *, CHART_KEYS + 1);
  values = g_new0 (double, CHART_KEYS + 1);
  for (guint i = 0; i < busiest->len && n < CHART_KEYS; i++)
    {
      const GkKeyComparison *row = busiest->pdata[i];

      if (row->requests == 0)
        break;
      labels[n] = row->name;
      values[n] = MAX (column_value (row, column), 0);
      g_ptr_array_add (texts, column_text (row, column));
      n++;
    }
  gk_bar_chart_set_data_full (self->chart, labels, values,
                              (const char * const *) texts->pdata, n);
}

static void
metric_changed_cb (GkCompareView *self)
{
  update_chart (self);
}

/* Cells */

static void
setup_cell_cb (GtkSignalListItemFactory *factory,
               GtkListItem              *item,
               gpointer                  user_data)
{
  Column column = GPOINTER_TO_INT (user_data);
  GtkWidget *label = g_object_new (GTK_TYPE_LABEL,
                                   "xalign", column == COLUMN_NAME ? 0.0f : 1.0f,
                                   "ellipsize", column == COLUMN_NAME ? PANGO_ELLIPSIZE_END
                                                                      : PANGO_ELLIPSIZE_NONE,
                                   NULL);

  if (column != COLUMN_NAME)
    gtk_widget_add_css_class (label, "numeric");
  gtk_list_item_set_child (item, label);
}

static void
bind_cell_cb (GtkSignalListItemFactory *factory,
              GtkListItem              *item,
              gpointer                  user_data)
{
  GkCompareItem *row = gtk_list_item_get_item (item);
  g_autofree char *text = column_text (row->row, GPOINTER_TO_INT (user_data));

  gtk_label_set_text (GTK_LABEL (gtk_list_item_get_child (item)), text);
}

static int
compare_items_cb (gconstpointer a,
                  gconstpointer b,
                  gpointer      user_data)
{
  Column column = GPOINTER_TO_INT (user_data);
  const GkKeyComparison *ra = GK_COMPARE_ITEM ((gpointer) a)->row;
  const GkKeyComparison *rb = GK_COMPARE_ITEM ((gpointer) b)->row;
  int result;

  if (column == COLUMN_NAME)
    result = g_utf8_collate (ra->name, rb->name);
  else
    {
      double va = column_value (ra, column), vb = column_value (rb, column);

      result = (va > vb) - (va < vb);
    }
  if (result == 0)
    result = (ra->key_id > rb->key_id) - (ra->key_id < rb->key_id);
  return result < 0 ? GTK_ORDERING_SMALLER : (result > 0 ? GTK_ORDERING_LARGER : GTK_ORDERING_EQUAL);
}

static void
add_columns (GkCompareView *self)
{
  for (Column column = 0; column < N_COLUMNS; column++)
    {
      g_autoptr(GtkListItemFactory) factory = gtk_signal_list_item_factory_new ();
      g_autoptr(GtkColumnViewColumn) view_column = NULL;
      g_autoptr(GtkCustomSorter) sorter = NULL;

      g_signal_connect (factory, "setup", G_CALLBACK (setup_cell_cb), GINT_TO_POINTER (column));
      g_signal_connect (factory, "bind", G_CALLBACK (bind_cell_cb), GINT_TO_POINTER (column));
      view_column = gtk_column_view_column_new (_(column_titles[column]), g_object_ref (factory));
      gtk_column_view_column_set_expand (view_column, column == COLUMN_NAME);
      gtk_column_view_column_set_resizable (view_column, TRUE);
      sorter = gtk_custom_sorter_new (compare_items_cb, GINT_TO_POINTER (column), NULL);
      gtk_column_view_column_set_sorter (view_column, GTK_SORTER (sorter));
      gtk_column_view_append_column (self->column_view, view_column);
    }
}

/* GTK 4.8 has no factory for column titles, and its titles start at the
 * left: the numbers' titles are moved to the right by hand, their sort
 * arrow before them, so each ends where its right-aligned figures do. A
 * header built otherwise (another GTK) is left as it is. */
static void
align_titles (GkCompareView *self)
{
  GtkWidget *header = gtk_widget_get_first_child (GTK_WIDGET (self->column_view));
  Column column = COLUMN_NAME;

  if (header == NULL || g_strcmp0 (gtk_widget_get_css_name (header), "header") != 0)
    return;

  for (GtkWidget *title = gtk_widget_get_first_child (header);
       title != NULL && column < N_COLUMNS;
       title = gtk_widget_get_next_sibling (title), column++)
    {
      GtkWidget *box = gtk_widget_get_first_child (title);
      GtkWidget *label = box != NULL ? gtk_widget_get_first_child (box) : NULL;

      if (column == COLUMN_NAME || !GTK_IS_BOX (box) || !GTK_IS_LABEL (label))
        continue;
      gtk_widget_set_hexpand (label, TRUE);
      gtk_label_set_xalign (GTK_LABEL (label), 1.0f);
      gtk_box_reorder_child_after (GTK_BOX (box), label, gtk_widget_get_last_child (box));
    }
}

/* Overrides */

static void
gk_compare_view_dispose (GObject *object)
{
  GkCompareView *self = GK_COMPARE_VIEW (object);

  gtk_widget_dispose_template (GTK_WIDGET (self), GK_TYPE_COMPARE_VIEW);
  for (GtkWidget *child; (child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL;)
    gtk_widget_unparent (child);
  g_clear_object (&self->store);
  g_clear_object (&self->sorted);
  g_clear_pointer (&self->rows, g_ptr_array_unref);

  G_OBJECT_CLASS (gk_compare_view_parent_class)->dispose (object);
}

static void
gk_compare_view_class_init (GkCompareViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_compare_view_dispose;

  g_type_ensure (GK_TYPE_BAR_CHART);
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/geminikeys/GeminiKeys/ui/gk-compare-view.ui");
  gtk_widget_class_bind_template_child (widget_class, GkCompareView, metric_dropdown);
  gtk_widget_class_bind_template_child (widget_class, GkCompareView, chart);
  gtk_widget_class_bind_template_child (widget_class, GkCompareView, column_view);
  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
}

static void
gk_compare_view_init (GkCompareView *self)
{
  g_autoptr(GtkNoSelection) selection = NULL;

  gtk_widget_init_template (GTK_WIDGET (self));

  self->store = g_list_store_new (GK_TYPE_COMPARE_ITEM);
  self->sorted = gtk_sort_list_model_new (G_LIST_MODEL (g_object_ref (self->store)), NULL);
  add_columns (self);
  align_titles (self);
  gtk_sort_list_model_set_sorter (self->sorted, gtk_column_view_get_sorter (self->column_view));
  /* Busiest first, as in the chart. */
  {
    g_autoptr(GtkColumnViewColumn) requests =
      g_list_model_get_item (gtk_column_view_get_columns (self->column_view), COLUMN_REQUESTS);

    gtk_column_view_sort_by_column (self->column_view, requests, GTK_SORT_DESCENDING);
  }
  selection = gtk_no_selection_new (G_LIST_MODEL (g_object_ref (self->sorted)));
  gtk_column_view_set_model (self->column_view, GTK_SELECTION_MODEL (selection));

  g_signal_connect_swapped (self->metric_dropdown, "notify::selected",
                            G_CALLBACK (metric_changed_cb), self);
}

/* Public API */

GtkWidget *
gk_compare_view_new (void)
{
  return g_object_new (GK_TYPE_COMPARE_VIEW, NULL);
}

void
gk_compare_view_set_rows (GkCompareView *self,
                          GPtrArray     *rows)
{
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func (g_object_unref);

  g_return_if_fail (GK_IS_COMPARE_VIEW (self));
  g_return_if_fail (rows != NULL);

  g_clear_pointer (&self->rows, g_ptr_array_unref);
  self->rows = g_ptr_array_ref (rows);
  for (guint i = 0; i < rows->len; i++)
    {
      GkCompareItem *item = g_object_new (GK_TYPE_COMPARE_ITEM, NULL);

      item->rows = g_ptr_array_ref (rows);
      item->row = rows->pdata[i];
      g_ptr_array_add (items, item);
    }
  g_list_store_splice (self->store, 0, g_list_model_get_n_items (G_LIST_MODEL (self->store)),
                       items->pdata, items->len);
  update_chart (self);
}

GListModel *
gk_compare_view_get_model (GkCompareView *self)
{
  g_return_val_if_fail (GK_IS_COMPARE_VIEW (self), NULL);

  return G_LIST_MODEL (self->sorted);
}

/**
 * gk_compare_view_get_row:
 * @position: a row of the table, as sorted
 *
 * Returns: (transfer none) (nullable): the row shown at @position.
 */
const GkKeyComparison *
gk_compare_view_get_row (GkCompareView *self,
                         guint          position)
{
  g_autoptr(GkCompareItem) item = NULL;

  g_return_val_if_fail (GK_IS_COMPARE_VIEW (self), NULL);

  item = g_list_model_get_item (G_LIST_MODEL (self->sorted), position);
  return item != NULL ? item->row : NULL;
}
