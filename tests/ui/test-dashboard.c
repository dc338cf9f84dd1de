/* test-dashboard.c: the dashboard's cards, charts and tables over a
 * fixture database; the period buttons; the empty state.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <adwaita.h>

#include "gk-backend.h"
#include "gk-bar-chart.h"
#include "gk-compare-view.h"
#include "gk-dashboard-page.h"
#include "gk-line-chart.h"
#include "gk-database-private.h"
#include "gk-test-util.h"
#include "gk-ui-test-util.h"

static void
fill_fixture (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = gk_database_open (path, NULL, &error);
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  g_autofree char *sql = NULL;

  g_assert_no_error (error);
  sql = g_strdup_printf (
    "INSERT INTO gemini_api_keys (uuid, name, status, created_at, updated_at) VALUES"
    " ('u1', 'alpha', 'ACTIVE', %1$" G_GINT64_FORMAT ", %1$" G_GINT64_FORMAT "),"
    " ('u2', 'beta', 'ACTIVE', %1$" G_GINT64_FORMAT ", %1$" G_GINT64_FORMAT "),"
    " ('u3', 'gamma', 'INACTIVE', %1$" G_GINT64_FORMAT ", %1$" G_GINT64_FORMAT ");"
    "INSERT INTO gemini_key_usage_log (key_id, model, tokens_used, cost_usd, status, user_id,"
    " created_at) VALUES"
    " (1, 'gemini-2.5-flash', 100, 0.25, 'SUCCESS', 'ann', %1$" G_GINT64_FORMAT " - 60),"
    " (1, 'gemini-2.5-flash', 100, 0.50, 'SUCCESS', 'ann', %1$" G_GINT64_FORMAT " - 120),"
    " (2, 'gemini-2.5-pro', 100, 1.00, 'SUCCESS', 'bob', %1$" G_GINT64_FORMAT " - 180),"
    " (2, 'gemini-2.5-pro', 0, 0, 'ERROR', 'bob', %1$" G_GINT64_FORMAT " - 240),"
    " (1, 'gemini-2.5-pro', 100, 2.00, 'SUCCESS', 'ann', %1$" G_GINT64_FORMAT " - 20 * 86400);"
    "INSERT INTO gemini_key_rotation_log (from_key_id, to_key_id, reason, triggered_by,"
    " created_at) VALUES (1, 2, 'QUOTA_LOW', 'auto', %1$" G_GINT64_FORMAT " - 30);",
    now);
  gk_ui_test_exec_sql (db, sql);
}

/* The widget right after the label @title: a card's value, a table. */
static GtkWidget *
after_title (GtkWidget  *root,
             const char *title)
{
  GtkWidget *label = gk_ui_test_find_label (root, title);

  g_assert_nonnull (label);
  g_assert_nonnull (gtk_widget_get_next_sibling (label));
  return gtk_widget_get_next_sibling (label);
}

static const char *
card_value (GtkWidget  *root,
            const char *title)
{
  GtkWidget *value = after_title (root, title);

  g_assert_true (GTK_IS_LABEL (value));
  return gtk_label_get_label (GTK_LABEL (value));
}

static const char *
card_detail (GtkWidget  *root,
             const char *title)
{
  GtkWidget *detail = gtk_widget_get_next_sibling (after_title (root, title));

  g_assert_true (GTK_IS_LABEL (detail));
  return gtk_label_get_label (GTK_LABEL (detail));
}

static const char *
cell (GtkGrid *grid,
      int      column,
      int      row)
{
  GtkWidget *child = gtk_grid_get_child_at (grid, column, row);

  g_assert_true (GTK_IS_LABEL (child));
  return gtk_label_get_label (GTK_LABEL (child));
}

/* The rows of a table below its header row. */
static int
table_rows (GtkGrid *grid)
{
  int rows = 0;

  while (gtk_grid_get_child_at (grid, 0, rows + 1) != NULL)
    rows++;
  return rows;
}

/* The table row whose first cell is @first, or -1. */
static int
table_find (GtkGrid    *grid,
            const char *first)
{
  for (int row = 1; gtk_grid_get_child_at (grid, 0, row) != NULL; row++)
    if (g_strcmp0 (cell (grid, 0, row), first) == 0)
      return row;
  return -1;
}

static void
assert_user (GtkGrid    *users,
             const char *name,
             const char *requests,
             const char *tokens,
             const char *cost)
{
  int row = table_find (users, name);

  g_assert_cmpint (row, >, 0);
  g_assert_cmpstr (cell (users, 1, row), ==, requests);
  g_assert_cmpstr (cell (users, 2, row), ==, tokens);
  g_assert_cmpstr (cell (users, 3, row), ==, cost);
}

static void
wait_loaded (GkDashboardPage *page)
{
  while (gk_dashboard_page_get_loading (page))
    g_main_context_iteration (NULL, TRUE);
}

static void
test_cards (void)
{
  g_autofree char *path = gk_test_db_path ();
  g_autoptr(GkBackend) backend = NULL;
  GtkWidget *page;
  GtkGrid *users, *rotations;
  GkLineChart *line;
  GkBarChart *bars;

  fill_fixture (path);
  backend = gk_ui_test_backend_new (path);

  page = g_object_ref_sink (gk_dashboard_page_new ());
  gk_dashboard_page_set_backend (GK_DASHBOARD_PAGE (page), backend);
  wait_loaded (GK_DASHBOARD_PAGE (page));

  g_assert_cmpstr (gtk_stack_get_visible_child_name (GTK_STACK (gk_ui_test_find_type (page, GTK_TYPE_STACK))),
                   ==, "content");
  /* The last 7 days: the four recent requests, one of them failed. */
  g_assert_cmpstr (card_value (page, "Keys"), ==, "3");
  g_assert_cmpstr (card_detail (page, "Keys"), ==, "2\u00a0Available · 1\u00a0Turned\u00a0off");
  g_assert_cmpstr (card_value (page, "Requests, Last 7 Days"), ==, "4");
  g_assert_cmpstr (card_detail (page, "Requests, Last 7 Days"), ==, "1 failed");
  g_assert_cmpstr (card_value (page, "Success Rate"), ==, "75.0%");
  g_assert_cmpstr (card_detail (page, "Success Rate"), ==, "3 succeeded");
  g_assert_cmpstr (card_value (page, "Cost, Last 7 Days"), ==, "$1.75");

  line = GK_LINE_CHART (gk_ui_test_find_type (page, GK_TYPE_LINE_CHART));
  bars = GK_BAR_CHART (gk_ui_test_find_type (page, GK_TYPE_BAR_CHART));
  g_assert_cmpuint (gk_line_chart_get_n_points (line), ==, 7);
  g_assert_cmpuint (gk_bar_chart_get_n_bars (bars), ==, 2);

  users = GTK_GRID (after_title (page, "Top Users"));
  g_assert_cmpint (table_rows (users), ==, 2);
  assert_user (users, "ann", "2", "200", "$0.75");
  assert_user (users, "bob", "2", "100", "$1.00");

  rotations = GTK_GRID (gk_ui_test_find_type (after_title (page, "Latest Rotations"), GTK_TYPE_GRID));
  g_assert_cmpint (table_rows (rotations), ==, 1);
  g_assert_cmpstr (cell (rotations, 1, 1), ==, "alpha");
  g_assert_cmpstr (cell (rotations, 2, 1), ==, "beta");
  g_assert_cmpstr (cell (rotations, 3, 1), ==, "Near quota");
  g_assert_cmpstr (cell (rotations, 4, 1), ==, "Automatic");

  /* 30 days take in the old request too. */
  gk_dashboard_page_set_days (GK_DASHBOARD_PAGE (page), 30);
  wait_loaded (GK_DASHBOARD_PAGE (page));
  g_assert_cmpstr (card_value (page, "Requests, Last 30 Days"), ==, "5");
  g_assert_cmpstr (card_value (page, "Success Rate"), ==, "80.0%");
  g_assert_cmpstr (card_value (page, "Cost, Last 30 Days"), ==, "$3.75");
  g_assert_cmpuint (gk_line_chart_get_n_points (line), ==, 30);
  users = GTK_GRID (after_title (page, "Top Users"));
  assert_user (users, "ann", "3", "300", "$2.75");
  assert_user (users, "bob", "2", "100", "$1.00");

  gk_dashboard_page_set_backend (GK_DASHBOARD_PAGE (page), NULL);
  gk_ui_test_finalize_object (page);
}

/* Today's and this month's spend against the pool's budget, per key. */
static void
test_spend (void)
{
  g_autofree char *path = gk_test_db_path ();
  g_autoptr(GkBackend) backend = NULL;
  g_autoptr(GError) error = NULL;
  GtkWidget *page;
  GtkGrid *grid;
  GtkWidget *summary;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  {
    g_autoptr(GkDatabase) db = gk_database_open (path, NULL, &error);
    g_autofree char *sql = g_strdup_printf (
      "INSERT INTO gemini_api_keys (uuid, name, status, monthly_budget_usd, month_cost_usd,"
      " created_at, updated_at) VALUES"
      " ('u1', 'alpha', 'ACTIVE', 3, 2.10, %1$" G_GINT64_FORMAT ", %1$" G_GINT64_FORMAT "),"
      " ('u2', 'beta', 'ACTIVE', NULL, 0.90, %1$" G_GINT64_FORMAT ", %1$" G_GINT64_FORMAT ");"
      "INSERT INTO gemini_key_usage_log (key_id, model, tokens_used, cost_usd, status,"
      " created_at) VALUES (1, 'gemini-2.5-flash', 100, 0.60, 'SUCCESS', %1$" G_GINT64_FORMAT ");",
      now);

    g_assert_no_error (error);
    gk_ui_test_exec_sql (db, sql);
    g_assert_true (gk_spend_set_pool_budget (db, 3, &error));
  }
  backend = gk_ui_test_backend_new (path);
  page = g_object_ref_sink (gk_dashboard_page_new ());
  gk_dashboard_page_set_backend (GK_DASHBOARD_PAGE (page), backend);
  wait_loaded (GK_DASHBOARD_PAGE (page));

  summary = after_title (page, "Spend");
  g_assert_cmpstr (gtk_label_get_label (GTK_LABEL (summary)), ==,
                   "Today $0.60 · this month $3.00 of $3.00 (100%)");
  g_assert_true (gtk_widget_get_visible (gtk_widget_get_next_sibling (summary)));
  grid = GTK_GRID (gtk_widget_get_next_sibling (gtk_widget_get_next_sibling (summary)));
  g_assert_cmpint (table_rows (grid), ==, 2);
  g_assert_cmpstr (cell (grid, 0, 1), ==, "alpha");
  g_assert_cmpstr (cell (grid, 1, 1), ==, "$0.60");
  g_assert_cmpstr (cell (grid, 2, 1), ==, "$2.10 of $3.00 (70%)");
  g_assert_cmpstr (cell (grid, 0, 2), ==, "beta");
  g_assert_cmpstr (cell (grid, 2, 2), ==, "$0.90");

  gk_dashboard_page_set_backend (GK_DASHBOARD_PAGE (page), NULL);
  gk_ui_test_finalize_object (page);
}

/* The period buttons choose the days, as a person would. */
static void
test_period_buttons (void)
{
  g_autofree char *path = gk_test_db_path ();
  g_autoptr(GkBackend) backend = NULL;
  GtkWidget *page;
  GtkWidget *week, *month;

  fill_fixture (path);
  backend = gk_ui_test_backend_new (path);
  page = g_object_ref_sink (gk_dashboard_page_new ());
  gk_dashboard_page_set_backend (GK_DASHBOARD_PAGE (page), backend);
  wait_loaded (GK_DASHBOARD_PAGE (page));

  week = gtk_widget_get_parent (gk_ui_test_find_label (page, "7 Days"));
  month = gtk_widget_get_parent (gk_ui_test_find_label (page, "30 Days"));
  g_assert_true (GTK_IS_TOGGLE_BUTTON (week));
  g_assert_true (GTK_IS_TOGGLE_BUTTON (month));
  g_assert_true (gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (week)));

  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (month), TRUE);
  g_assert_false (gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (week)));
  g_assert_cmpuint (gk_dashboard_page_get_days (GK_DASHBOARD_PAGE (page)), ==, 30);
  wait_loaded (GK_DASHBOARD_PAGE (page));
  g_assert_cmpstr (card_value (page, "Requests, Last 30 Days"), ==, "5");

  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (week), TRUE);
  g_assert_cmpuint (gk_dashboard_page_get_days (GK_DASHBOARD_PAGE (page)), ==, 7);
  wait_loaded (GK_DASHBOARD_PAGE (page));
  g_assert_cmpstr (card_value (page, "Requests, Last 7 Days"), ==, "4");

  /* Set from code, the buttons follow. */
  gk_dashboard_page_set_days (GK_DASHBOARD_PAGE (page), 30);
  g_assert_true (gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (month)));
  wait_loaded (GK_DASHBOARD_PAGE (page));

  gk_dashboard_page_set_backend (GK_DASHBOARD_PAGE (page), NULL);
  gk_ui_test_finalize_object (page);
}

/* No keys and no history: a status page says what to do. */
static void
test_empty (void)
{
  g_autofree char *path = gk_test_db_path ();
  g_autoptr(GkBackend) backend = gk_ui_test_backend_new (path);
  GtkWidget *page = g_object_ref_sink (gk_dashboard_page_new ());

  gk_dashboard_page_set_backend (GK_DASHBOARD_PAGE (page), backend);
  wait_loaded (GK_DASHBOARD_PAGE (page));
  g_assert_cmpstr (gtk_stack_get_visible_child_name (GTK_STACK (gk_ui_test_find_type (page, GTK_TYPE_STACK))),
                   ==, "empty");
  g_assert_nonnull (gk_ui_test_find_label (page, "No Keys Yet"));
  /* No requests: no success rate, rather than 0 %. */
  g_assert_cmpstr (card_value (page, "Success Rate"), ==, "—");

  gk_dashboard_page_set_backend (GK_DASHBOARD_PAGE (page), NULL);
  gk_ui_test_finalize_object (page);
}

/* With the database held elsewhere, the dashboard answers at once (a
 * reload, a change of period) and fills in once it is free. */
static void
test_never_blocks (void)
{
  g_autofree char *path = gk_test_db_path ();
  g_autoptr(GkBackend) backend = NULL;
  GtkWidget *page;
  GkUiTestHolder *holder;
  gint64 start, elapsed;

  fill_fixture (path);
  backend = gk_ui_test_backend_new (path);
  page = g_object_ref_sink (gk_dashboard_page_new ());

  holder = gk_ui_test_hold_database (gk_backend_get_database (backend));

  start = g_get_monotonic_time ();
  gk_dashboard_page_set_backend (GK_DASHBOARD_PAGE (page), backend);
  gk_dashboard_page_set_days (GK_DASHBOARD_PAGE (page), 30);
  gk_backend_notify_changed (backend);
  elapsed = gk_ui_test_spin_since (start);
  g_assert_cmpint (elapsed, <, G_USEC_PER_SEC / 2);
  g_assert_true (gk_dashboard_page_get_loading (GK_DASHBOARD_PAGE (page)));

  gk_ui_test_holder_release (holder);

  wait_loaded (GK_DASHBOARD_PAGE (page));
  g_assert_cmpstr (card_value (page, "Requests, Last 30 Days"), ==, "5");

  gk_dashboard_page_set_backend (GK_DASHBOARD_PAGE (page), NULL);
  gk_ui_test_finalize_object (page);
}


/* The key comparison (table sortable by each column, a chart), the
 * forecast line and the spike mark of the latest rotations. */
static void
test_insights (void)
{
  g_autofree char *path = gk_test_db_path ();
  g_autoptr(GkBackend) backend = NULL;
  g_autoptr(GTimeZone) la = g_time_zone_new_identifier ("America/Los_Angeles");
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  GtkWidget *page;
  GkCompareView *view;
  GListModel *model;
  GtkColumnView *columns;
  GtkGrid *rotations;
  GtkWidget *forecast;

  fill_fixture (path);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(GkDatabase) db = gk_database_open (path, NULL, &error);
    g_autofree char *sql = NULL;

    g_assert_no_error (error);
    /* alpha: 2 successes at 150 and 450 ms; beta: 1 at 2,500 ms. alpha has
     * 1 token of its daily quota left before the rotation threshold. Five
     * rotations of beta in this hour make a spike. */
    sql = g_strdup_printf ("UPDATE gemini_key_usage_log SET latency_ms = 150 WHERE id = 1;"
                           " UPDATE gemini_key_usage_log SET latency_ms = 450 WHERE id = 2;"
                           " UPDATE gemini_key_usage_log SET latency_ms = 2500 WHERE id = 3;"
                           " INSERT INTO gemini_key_quotas (key_id, quota_type, unit, limit_value,"
                           " used_value, reset_at) VALUES (1, 'DAILY', 'TOKENS', 200, 189, %"
                           G_GINT64_FORMAT ");"
                           " INSERT INTO gemini_key_rotation_log (from_key_id, reason,"
                           " triggered_by, created_at) SELECT 2, 'RATE_LIMITED', 'auto', %"
                           G_GINT64_FORMAT " FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3"
                           " UNION ALL SELECT 4 UNION ALL SELECT 5)",
                           gk_quota_next_reset (GK_QUOTA_DAILY, now, la), now - 60);
    gk_ui_test_exec_sql (db, sql);
  }
  backend = gk_ui_test_backend_new (path);

  page = g_object_ref_sink (gk_dashboard_page_new ());
  gk_dashboard_page_set_backend (GK_DASHBOARD_PAGE (page), backend);
  wait_loaded (GK_DASHBOARD_PAGE (page));

  forecast = gk_ui_test_find_label (page, "1 key will run out today");
  g_assert_nonnull (forecast);
  g_assert_true (gtk_widget_is_visible (forecast));
  g_assert_nonnull (gtk_widget_get_tooltip_text (forecast));

  view = GK_COMPARE_VIEW (gk_ui_test_find_type (page, GK_TYPE_COMPARE_VIEW));
  model = gk_compare_view_get_model (view);
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, 3);
  g_assert_cmpuint (gk_bar_chart_get_n_bars (GK_BAR_CHART (gk_ui_test_find_type (GTK_WIDGET (view),
                                                                                 GK_TYPE_BAR_CHART))),
                    ==, 2);

  /* Sorted by p95 latency, highest first: beta (2,950 ms), alpha (480 ms),
   * gamma (none). */
  columns = GTK_COLUMN_VIEW (gk_ui_test_find_type (GTK_WIDGET (view), GTK_TYPE_COLUMN_VIEW));
  {
    g_autoptr(GtkColumnViewColumn) p95 = g_list_model_get_item (gtk_column_view_get_columns (columns),
                                                                6);

    g_assert_cmpstr (gtk_column_view_column_get_title (p95), ==, "p95");
    gtk_column_view_sort_by_column (columns, p95, GTK_SORT_DESCENDING);
  }
  g_assert_cmpstr (gk_compare_view_get_row (view, 0)->name, ==, "beta");
  g_assert_cmpfloat_with_epsilon (gk_compare_view_get_row (view, 0)->p95_ms, 2950, 1e-9);
  g_assert_cmpstr (gk_compare_view_get_row (view, 1)->name, ==, "alpha");
  g_assert_cmpfloat_with_epsilon (gk_compare_view_get_row (view, 1)->p95_ms, 480, 1e-9);
  g_assert_cmpstr (gk_compare_view_get_row (view, 2)->name, ==, "gamma");
  /* By name, A to Z. */
  {
    g_autoptr(GtkColumnViewColumn) name = g_list_model_get_item (gtk_column_view_get_columns (columns),
                                                                 0);

    gtk_column_view_sort_by_column (columns, name, GTK_SORT_ASCENDING);
  }
  g_assert_cmpstr (gk_compare_view_get_row (view, 0)->name, ==, "alpha");
  g_assert_cmpstr (gk_compare_view_get_row (view, 2)->name, ==, "gamma");

  /* beta's rotations of this hour are a spike. */
  rotations = GTK_GRID (gk_ui_test_find_type (after_title (page, "Latest Rotations"), GTK_TYPE_GRID));
  {
    guint cooling = 0;

    for (int row = 1; row <= table_rows (rotations); row++)
      if (g_str_has_prefix (cell (rotations, 3, row), "Cooling down"))
        {
          g_assert_cmpstr (cell (rotations, 3, row), ==, "Cooling down (spike)");
          cooling++;
        }
    g_assert_cmpuint (cooling, ==, 5);
  }

  gk_dashboard_page_set_backend (GK_DASHBOARD_PAGE (page), NULL);
  gk_ui_test_finalize_object (page);
}

int
main (int   argc,
      char *argv[])
{
  gtk_test_init (&argc, &argv, NULL);
  gk_ui_test_fixed_locale ();
  gk_ui_test_adw_init ();

  g_test_add_func ("/ui/dashboard/cards", test_cards);
  g_test_add_func ("/ui/dashboard/spend", test_spend);
  g_test_add_func ("/ui/dashboard/period-buttons", test_period_buttons);
  g_test_add_func ("/ui/dashboard/empty", test_empty);
  g_test_add_func ("/ui/dashboard/never-blocks", test_never_blocks);
  g_test_add_func ("/ui/dashboard/insights", test_insights);

  return g_test_run ();
}
