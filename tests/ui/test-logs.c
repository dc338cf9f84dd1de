/* test-logs.c: the usage page's filter, limit and summary; the rotation
 * page's totals; the audit page, read only while shown; the lazy model
 * over a large log.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <adwaita.h>
#include <locale.h>
#include <time.h>

#include "gk-audit-page.h"
#include "gk-backend.h"
#include "gk-database-private.h"
#include "gk-export-button.h"
#include "gk-rotations-page.h"
#include "gk-test-util.h"
#include "gk-ui-test-util.h"
#include "gk-usage-model.h"
#include "gk-usage-page.h"

/* Key 1 has 120 rows (every 4th an error, $0.01 each success), key 2 has 30;
 * 3 rotations, one manual. */
static char *
fixture (void)
{
  char *path = gk_test_db_path ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = gk_database_open (path, NULL, &error);

  g_assert_no_error (error);
  gk_ui_test_exec_sql (db,
            "INSERT INTO gemini_api_keys (uuid, name, created_at, updated_at) VALUES"
            " ('u1', 'alpha', 1, 1), ('u2', 'beta', 1, 1);"
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150)"
            " INSERT INTO gemini_key_usage_log (key_id, model, tokens_used, cost_usd, status,"
            " created_at) SELECT CASE WHEN i <= 120 THEN 1 ELSE 2 END, 'gemini-2.5-flash', 10,"
            " CASE WHEN i % 4 = 0 THEN 0 ELSE 0.01 END,"
            " CASE WHEN i % 4 = 0 THEN 'ERROR' ELSE 'SUCCESS' END, 1773500000 + i FROM n;"
            "INSERT INTO gemini_key_rotation_log (from_key_id, to_key_id, reason, triggered_by,"
            " created_at) VALUES (1, 2, 'QUOTA_LOW', 'auto', 1773500000),"
            " (2, NULL, 'RATE_LIMITED', 'auto', 1773500100),"
            " (1, 2, 'MANUAL', 'manual:ann', 1773500200);");
  return path;
}

/* A summary card's figure: the label after its title. */
static const char *
card_value (GtkWidget  *root,
            const char *title)
{
  GtkWidget *label = gk_ui_test_find_label (root, title);
  GtkWidget *value;

  g_assert_nonnull (label);
  value = gtk_widget_get_next_sibling (label);
  g_assert_true (GTK_IS_LABEL (value));
  return gtk_label_get_label (GTK_LABEL (value));
}

/* The page's own stack (drop-downs have stacks of their own). */
static GtkStack *
find_page_stack (GtkWidget *root)
{
  if (GTK_IS_STACK (root) && gtk_stack_get_child_by_name (GTK_STACK (root), "list") != NULL)
    return GTK_STACK (root);
  for (GtkWidget *child = gtk_widget_get_first_child (root); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      GtkStack *found = find_page_stack (child);

      if (found != NULL)
        return found;
    }
  return NULL;
}

static const char *
visible_page (GtkWidget *page)
{
  GtkStack *stack = find_page_stack (page);

  g_assert_nonnull (stack);
  return gtk_stack_get_visible_child_name (stack);
}

static void
wait_usage (GkUsagePage *page)
{
  while (gk_usage_page_get_loading (page))
    g_main_context_iteration (NULL, TRUE);
}

static guint
n_rows (GkUsagePage *page)
{
  return g_list_model_get_n_items (gk_usage_page_get_model (page));
}

/* The row at @position, once its page has been read. */
static GkUsageItem *
row_item (GkUsagePage *page,
          guint        position)
{
  GkUsageItem *item = g_list_model_get_item (gk_usage_page_get_model (page), position);

  g_assert_nonnull (item);
  wait_usage (page);
  g_assert_nonnull (gk_usage_item_get_row (item));
  return item;
}

static char *
item_text (gpointer    item,
           const char *property)
{
  char *text = NULL;

  g_object_get (item, property, &text, NULL);
  return text;
}

static void
assert_summary (GtkWidget  *page,
                const char *requests,
                const char *succeeded,
                const char *failed,
                const char *cost)
{
  g_assert_cmpstr (card_value (page, "Requests"), ==, requests);
  g_assert_cmpstr (card_value (page, "Succeeded"), ==, succeeded);
  g_assert_cmpstr (card_value (page, "Failed"), ==, failed);
  g_assert_cmpstr (card_value (page, "Cost"), ==, cost);
}

static void
test_usage_page (void)
{
  g_autofree char *path = fixture ();
  g_autoptr(GkBackend) backend = gk_ui_test_backend_new (path);
  GtkWidget *page = g_object_ref_sink (gk_usage_page_new ());
  GkUsagePage *usage = GK_USAGE_PAGE (page);
  GtkDropDown *keys;

  gk_usage_page_set_backend (usage, backend);
  wait_usage (usage);
  g_assert_cmpstr (visible_page (page), ==, "list");

  /* The key filter lists every key after "All keys". */
  keys = GTK_DROP_DOWN (gk_ui_test_find_type (page, GTK_TYPE_DROP_DOWN));
  g_assert_cmpuint (g_list_model_get_n_items (gtk_drop_down_get_model (keys)), ==, 3);
  g_assert_cmpstr (gtk_string_list_get_string (GTK_STRING_LIST (gtk_drop_down_get_model (keys)), 2),
                   ==, "beta");

  /* All keys, the default limit of 50: rows 101–150, every 4th failed;
   * the summary is every request of the period (all time), not the rows
   * shown. */
  g_assert_cmpuint (n_rows (usage), ==, 50);
  assert_summary (page, "150", "113", "37", "$1.13");
  {
    g_autoptr(GkUsageItem) newest = row_item (usage, 0);
    g_autoptr(GkUsageItem) failed = row_item (usage, 2);
    g_autofree char *key = item_text (newest, "key");
    g_autofree char *cost = item_text (newest, "cost");
    g_autofree char *status = item_text (failed, "status");
    g_autofree char *failed_cost = item_text (failed, "cost");

    g_assert_cmpint (gk_usage_item_get_row (newest)->created_at, ==, 1773500150);
    g_assert_cmpstr (key, ==, "beta");
    g_assert_cmpstr (cost, ==, "$0.0100");
    g_assert_cmpint (gk_usage_item_get_row (failed)->created_at, ==, 1773500148);
    g_assert_cmpstr (status, ==, "Error");
    g_assert_cmpstr (failed_cost, ==, "$0.0000");
  }

  gk_usage_page_set_filter (usage, 0, 500);
  wait_usage (usage);
  g_assert_cmpuint (n_rows (usage), ==, 150);
  assert_summary (page, "150", "113", "37", "$1.13");

  /* One key: beta has rows 121–150. */
  gk_usage_page_set_filter (usage, 2, 500);
  wait_usage (usage);
  g_assert_cmpuint (gtk_drop_down_get_selected (keys), ==, 2);
  g_assert_cmpuint (n_rows (usage), ==, 30);
  assert_summary (page, "30", "23", "7", "$0.23");
  {
    g_autoptr(GkUsageItem) oldest = row_item (usage, 29);

    g_assert_cmpint (gk_usage_item_get_row (oldest)->created_at, ==, 1773500121);
    g_assert_cmpint (gk_usage_item_get_row (oldest)->key_id, ==, 2);
  }

  /* alpha's newest 10 shown: rows 111–120; the summary is all of
   * alpha's 120 rows, every 4th failed. */
  gk_usage_page_set_filter (usage, 1, 10);
  wait_usage (usage);
  g_assert_cmpuint (n_rows (usage), ==, 10);
  assert_summary (page, "120", "90", "30", "$0.90");

  /* A new request shows when the backend says the data changed, on top. */
  gk_usage_page_set_filter (usage, 0, 500);
  wait_usage (usage);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(GkDatabase) db = gk_database_open (path, NULL, &error);

    g_assert_no_error (error);
    gk_ui_test_exec_sql (db,
              "INSERT INTO gemini_key_usage_log (key_id, model, tokens_used, cost_usd, status,"
              " http_status, created_at) VALUES (1, 'gemini-2.5-pro', 5, 0, 'RATE_LIMITED', 429,"
              " 1773500500);");
  }
  gk_backend_notify_changed (backend);
  wait_usage (usage);
  g_assert_cmpuint (n_rows (usage), ==, 151);
  assert_summary (page, "151", "113", "38", "$1.13");
  {
    g_autoptr(GkUsageItem) newest = row_item (usage, 0);
    g_autofree char *status = item_text (newest, "status");

    g_assert_cmpint (gk_usage_item_get_row (newest)->created_at, ==, 1773500500);
    g_assert_cmpstr (status, ==, "Rate limited (429)");
  }

  gk_usage_page_set_backend (usage, NULL);
  gk_ui_test_finalize_object (page);
}

/* A widget of the page by its name ("period", "status", "model", …). */
static GtkWidget *
find_named (GtkWidget  *root,
            const char *name)
{
  if (g_strcmp0 (gtk_widget_get_name (root), name) == 0)
    return root;
  for (GtkWidget *child = gtk_widget_get_first_child (root); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      GtkWidget *found = find_named (child, name);

      if (found != NULL)
        return found;
    }
  return NULL;
}

static GtkWidget *
named (GtkWidget  *page,
       const char *name)
{
  GtkWidget *widget = find_named (page, name);

  /* The calendars live in the range button's popover. */
  if (widget == NULL)
    {
      GtkWidget *range = find_named (page, "range");
      GtkPopover *popover = gtk_menu_button_get_popover (GTK_MENU_BUTTON (range));

      widget = find_named (GTK_WIDGET (popover), name);
    }
  g_assert_nonnull (widget);
  return widget;
}

typedef struct
{
  GkUsagePage *page;
  const char  *model;
  const char  *user;
} FilterWait;

static gboolean
filter_applied (gpointer data)
{
  FilterWait *w = data;
  const GkUsageFilter *filter = gk_usage_model_get_filter (GK_USAGE_MODEL (gk_usage_page_get_model (w->page)));

  return g_strcmp0 (filter->model, w->model) == 0 && g_strcmp0 (filter->user_id, w->user) == 0;
}

/* Types into the model and user entries as a user would, and waits for
 * the (delayed) search to apply. */
static void
type_filters (GtkWidget  *page,
              const char *model,
              const char *user)
{
  FilterWait w = { GK_USAGE_PAGE (page), model, user };

  gtk_editable_set_text (GTK_EDITABLE (named (page, "model")), model ? model : "");
  gtk_editable_set_text (GTK_EDITABLE (named (page, "user")), user ? user : "");
  gk_ui_test_wait (filter_applied, &w, "the typed filters");
  wait_usage (GK_USAGE_PAGE (page));
}

static void
select_item (GtkWidget  *page,
             const char *name,
             guint       position)
{
  gtk_drop_down_set_selected (GTK_DROP_DOWN (named (page, name)), position);
  wait_usage (GK_USAGE_PAGE (page));
}

/* Local midnight @days_back days before today. */
static gint64
midnight (int days_back)
{
  return gk_stats_local_midnight (NULL, g_get_real_time () / G_USEC_PER_SEC, days_back);
}

/* The period drives both the cards and the list; filters by key, result,
 * model and user; the cards sum the whole period whatever "Show" lists. */
static void
test_usage_period (void)
{
  g_autofree char *path = gk_test_db_path ();
  g_autoptr(GkBackend) backend = NULL;
  GtkWidget *page = NULL;
  GkUsagePage *usage;
  g_autofree char *sql = NULL;

  {
    g_autoptr(GError) error = NULL;
    g_autoptr(GkDatabase) db = gk_database_open (path, NULL, &error);

    g_assert_no_error (error);
    /* Today: 12 rows from midnight on (a 1/4 of them errors, pro model
     * on odd rows, user "ann" on rows divisible by 3); 1 s before
     * midnight, 3 days ago, 20 days ago and 40 days ago: one row each. */
    sql = g_strdup_printf (
      "INSERT INTO gemini_api_keys (uuid, name, created_at, updated_at) VALUES"
      " ('u1', 'alpha', 1, 1), ('u2', 'beta', 1, 1);"
      "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 11)"
      " INSERT INTO gemini_key_usage_log (key_id, model, tokens_used, cost_usd, status,"
      " user_id, created_at) SELECT 1 + i %% 2, CASE WHEN i %% 2 = 1 THEN 'gemini-2.5-pro'"
      " ELSE 'gemini-2.5-flash' END, 10, 0.25, CASE WHEN i %% 4 = 0 THEN 'ERROR' ELSE"
      " 'SUCCESS' END, CASE WHEN i %% 3 = 0 THEN 'ann' ELSE 'bob' END, %" G_GINT64_FORMAT
      " + i * 60 FROM n;"
      "INSERT INTO gemini_key_usage_log (key_id, model, tokens_used, cost_usd, status,"
      " user_id, created_at) VALUES"
      " (1, 'gemini-2.5-flash', 1, 1, 'SUCCESS', 'ann', %" G_GINT64_FORMAT "),"
      " (2, 'gemini-2.5-flash', 1, 2, 'RATE_LIMITED', 'ann', %" G_GINT64_FORMAT "),"
      " (1, 'gemini-2.5-pro', 1, 4, 'SUCCESS', 'bob', %" G_GINT64_FORMAT "),"
      " (1, 'gemini-2.5-pro', 1, 8, 'SUCCESS', 'bob', %" G_GINT64_FORMAT ");",
      midnight (0), midnight (0) - 1, midnight (3) + 3600, midnight (20) + 3600,
      midnight (40) + 3600);
    gk_ui_test_exec_sql (db, sql);
  }

  backend = gk_ui_test_backend_new (path);
  page = g_object_ref_sink (gk_usage_page_new ());
  usage = GK_USAGE_PAGE (page);
  gk_usage_page_set_backend (usage, backend);
  wait_usage (usage);

  /* All time, show 10: ten rows listed, all 16 summed. */
  gk_usage_page_set_filter (usage, 0, 10);
  wait_usage (usage);
  g_assert_cmpuint (n_rows (usage), ==, 10);
  assert_summary (page, "16", "12", "4", "$18.00");
  g_assert_false (gtk_widget_get_visible (named (page, "range")));

  /* Today starts at local midnight: the 12 rows of today, not the one a
   * second before. "Show 10" still lists 10. */
  select_item (page, "period", 0);
  g_assert_cmpuint (n_rows (usage), ==, 10);
  assert_summary (page, "12", "9", "3", "$3.00");
  gk_usage_page_set_filter (usage, 0, 500);
  wait_usage (usage);
  g_assert_cmpuint (n_rows (usage), ==, 12);
  assert_summary (page, "12", "9", "3", "$3.00");

  /* Last 7 days: today, yesterday's last second and 3 days ago. */
  select_item (page, "period", 1);
  g_assert_cmpuint (n_rows (usage), ==, 14);
  assert_summary (page, "14", "10", "4", "$6.00");
  /* Last 30 days adds 20 days ago. */
  select_item (page, "period", 2);
  g_assert_cmpuint (n_rows (usage), ==, 15);
  assert_summary (page, "15", "11", "4", "$10.00");

  /* Key beta (odd rows of today, the rate-limited one). */
  gk_usage_page_set_filter (usage, 2, 500);
  wait_usage (usage);
  g_assert_cmpuint (n_rows (usage), ==, 7);
  assert_summary (page, "7", "6", "1", "$3.50");
  gk_usage_page_set_filter (usage, 0, 500);
  wait_usage (usage);

  /* Errors only: today's rows 0, 4, 8. */
  select_item (page, "status", 4);
  g_assert_cmpuint (n_rows (usage), ==, 3);
  assert_summary (page, "3", "0", "3", "$0.75");
  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(GkUsageItem) item = row_item (usage, i);

      g_assert_cmpint (gk_usage_item_get_row (item)->status, ==, GK_USAGE_ERROR);
    }
  select_item (page, "status", 0);

  /* Model and user, typed: pro and ann in 30 days = today's rows 3 and 9. */
  type_filters (page, "gemini-2.5-pro", "ann");
  g_assert_cmpuint (n_rows (usage), ==, 2);
  assert_summary (page, "2", "2", "0", "$0.50");
  type_filters (page, NULL, "ann");
  g_assert_cmpuint (n_rows (usage), ==, 6);
  assert_summary (page, "6", "4", "2", "$4.00");
  type_filters (page, NULL, NULL);

  /* A custom range: from 3 days ago to yesterday (both days included). */
  select_item (page, "period", 4);
  g_assert_true (gtk_widget_get_visible (named (page, "range")));
  {
    g_autoptr(GDateTime) from = g_date_time_new_from_unix_local (midnight (3) + 3600);
    g_autoptr(GDateTime) to = g_date_time_new_from_unix_local (midnight (1) + 3600);

    gtk_calendar_select_day (GTK_CALENDAR (named (page, "from")), from);
    wait_usage (usage);
    gtk_calendar_select_day (GTK_CALENDAR (named (page, "to")), to);
    wait_usage (usage);
  }
  g_assert_cmpuint (n_rows (usage), ==, 2);
  assert_summary (page, "2", "1", "1", "$3.00");
  {
    g_autoptr(GkUsageFilter) filter = gk_usage_page_get_filter (usage);

    g_assert_cmpint (filter->since, ==, midnight (3));
    g_assert_cmpint (filter->until, ==, midnight (0));
  }

  /* Export the period and filters shown (the two rows of the range) as a
   * workbook and as CSV, through the Export menu and the file chooser, off
   * the main thread; then open the files and check their cells. */
  {
    g_autofree char *dir = g_path_get_dirname (path);
    g_autofree char *xlsx = g_build_filename (dir, "usage-export.xlsx", NULL);
    g_autofree char *csv = g_build_filename (dir, "usage-export.csv", NULL);
    g_autofree char *contents = NULL;
    g_auto(GStrv) lines = NULL;

    g_assert_true (gtk_widget_get_sensitive (named (page, "export")));
    g_assert_cmpstr (gk_ui_test_export (page, "xlsx", xlsx), ==, "Exported 2 rows");
    g_assert_true (gtk_widget_get_sensitive (named (page, "export")));
    gk_ui_test_check_xlsx (xlsx, "id,time_utc,key_id,key_name,model,status,http_status,"
                                 "tokens_used,prompt_tokens,output_tokens,cost_usd,priced,"
                                 "user_id,latency_ms,error_message",
                           2, "n,d,n,s,s,s,-,n,n,n,m,b,s,n,-");

    g_assert_cmpstr (gk_ui_test_export (page, "csv", csv), ==, "Exported 2 rows");
    g_assert_true (g_file_get_contents (csv, &contents, NULL, NULL));
    lines = g_strsplit (contents, "\r\n", -1);
    g_assert_cmpuint (g_strv_length (lines), ==, 4);
    g_assert_cmpstr (lines[0], ==, "id,key_id,key_name,model,tokens_used,prompt_tokens,"
                                   "output_tokens,cost_usd,priced,status,http_status,"
                                   "error_message,user_id,latency_ms,created_at");
    g_assert_cmpstr (lines[3], ==, "");
    /* In the range, times in ISO 8601 UTC. */
    {
      for (guint i = 1; i <= 2; i++)
        {
          g_auto(GStrv) cells = g_strsplit (lines[i], ",", -1);
          g_autoptr(GDateTime) time = NULL;

          g_assert_cmpuint (g_strv_length (cells), ==, 15);
          g_assert_true (g_str_has_suffix (cells[14], "Z"));
          time = g_date_time_new_from_iso8601 (cells[14], NULL);
          g_assert_nonnull (time);
          g_assert_cmpint (g_date_time_to_unix (time), >=, midnight (3));
          g_assert_cmpint (g_date_time_to_unix (time), <, midnight (0));
        }
    }
  }

  /* Cancel: 50,000 more rows, cancelled at once; no file is left. */
  {
    g_autofree char *dir = g_path_get_dirname (path);
    g_autofree char *xlsx = g_build_filename (dir, "cancelled.xlsx", NULL);
    g_autofree char *part = g_strconcat (xlsx, ".part", NULL);
    GkExportButton *button = GK_EXPORT_BUTTON (gk_ui_test_find_type (page,
                                                                     GK_TYPE_EXPORT_BUTTON));
    g_autoptr(GError) error = NULL;
    g_autoptr(GkDatabase) db = gk_database_open (path, NULL, &error);

    g_assert_no_error (error);
    gk_ui_test_exec_sql (db,
              "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)"
              " INSERT INTO gemini_key_usage_log (key_id, model, status, created_at)"
              " SELECT 1, 'gemini-2.5-flash', 'SUCCESS', 1773500000 + i FROM n;");
    select_item (page, "period", 3);
    /* What choosing the file does. */
    gk_export_button_export (button, GK_EXPORT_XLSX, xlsx);
    g_assert_true (gk_export_button_get_exporting (button));
    g_assert_false (gtk_widget_get_sensitive (named (page, "export")));
    g_assert_true (gtk_widget_get_visible (gtk_widget_get_parent (named (page, "export-cancel"))));
    g_signal_emit_by_name (named (page, "export-cancel"), "clicked");
    while (gk_export_button_get_exporting (button))
      g_main_context_iteration (NULL, TRUE);
    g_assert_cmpstr (gk_export_button_get_message (button), ==, "Export cancelled");
    g_assert_false (g_file_test (xlsx, G_FILE_TEST_EXISTS));
    g_assert_false (g_file_test (part, G_FILE_TEST_EXISTS));
    g_assert_false (gtk_widget_get_visible (gtk_widget_get_parent (named (page, "export-cancel"))));
  }

  gk_usage_page_set_backend (usage, NULL);
  gk_ui_test_finalize_object (page);
}

/* An empty log: a status page instead of an empty table. */
static void
test_usage_empty (void)
{
  g_autofree char *path = gk_test_db_path ();
  g_autoptr(GkBackend) backend = gk_ui_test_backend_new (path);
  GtkWidget *page = g_object_ref_sink (gk_usage_page_new ());

  /* No backend yet: nothing to read, nothing loading. */
  g_assert_cmpstr (visible_page (page), ==, "empty");
  gk_usage_page_set_backend (GK_USAGE_PAGE (page), backend);
  /* Not "No Requests Yet" before the log has been counted. */
  g_assert_cmpstr (visible_page (page), ==, "loading");
  wait_usage (GK_USAGE_PAGE (page));
  g_assert_cmpuint (n_rows (GK_USAGE_PAGE (page)), ==, 0);
  g_assert_cmpstr (visible_page (page), ==, "empty");
  g_assert_nonnull (gk_ui_test_find_label (page, "No Requests Yet"));
  assert_summary (page, "0", "0", "0", "$0.00");

  gk_usage_page_set_backend (GK_USAGE_PAGE (page), NULL);
  gk_ui_test_finalize_object (page);
}

static void
test_rotations_page (void)
{
  g_autofree char *path = fixture ();
  g_autoptr(GkBackend) backend = gk_ui_test_backend_new (path);
  GtkWidget *page = g_object_ref_sink (gk_rotations_page_new ());
  GListModel *rows;

  gk_rotations_page_set_backend (GK_ROTATIONS_PAGE (page), backend);
  while (gk_rotations_page_get_loading (GK_ROTATIONS_PAGE (page)))
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpstr (card_value (page, "All Rotations"), ==, "3");
  g_assert_cmpstr (card_value (page, "Manual"), ==, "1");
  g_assert_cmpstr (card_value (page, "Automatic"), ==, "2");
  g_assert_cmpstr (visible_page (page), ==, "list");

  rows = G_LIST_MODEL (gtk_column_view_get_model (GTK_COLUMN_VIEW (gk_ui_test_find_type (page,
                                                                         GTK_TYPE_COLUMN_VIEW))));
  g_assert_cmpuint (g_list_model_get_n_items (rows), ==, 3);
  {
    /* Newest first: the manual rotation, then the one with no key left. */
    g_autoptr(GObject) manual = g_list_model_get_item (rows, 0);
    g_autoptr(GObject) none_left = g_list_model_get_item (rows, 1);
    g_autofree char *from = item_text (manual, "from");
    g_autofree char *to = item_text (manual, "to");
    g_autofree char *reason = item_text (manual, "reason");
    g_autofree char *trigger = item_text (manual, "trigger");
    g_autofree char *to_none = item_text (none_left, "to");
    g_autofree char *reason_rate = item_text (none_left, "reason");
    g_autofree char *trigger_auto = item_text (none_left, "trigger");

    g_assert_cmpstr (from, ==, "alpha");
    g_assert_cmpstr (to, ==, "beta");
    g_assert_cmpstr (reason, ==, "Skipped by you");
    g_assert_cmpstr (trigger, ==, "Manual (ann)");
    g_assert_cmpstr (to_none, ==, "None");
    g_assert_cmpstr (reason_rate, ==, "Cooling down");
    g_assert_cmpstr (trigger_auto, ==, "Automatic");
  }

  /* The whole log exported from the tab, as a workbook and as CSV. */
  {
    g_autofree char *dir = g_path_get_dirname (path);
    g_autofree char *xlsx = g_build_filename (dir, "rotations.xlsx", NULL);
    g_autofree char *csv = g_build_filename (dir, "rotations.csv", NULL);
    g_autofree char *contents = NULL;

    g_assert_cmpstr (gk_ui_test_export (page, "xlsx", xlsx), ==, "Exported 3 rows");
    gk_ui_test_check_xlsx (xlsx, "id,time_utc,from_key_id,from_key_name,to_key_id,to_key_name,"
                                 "reason,triggered_by", 3, "n,d,n,s,n,s,s,s");
    g_assert_cmpstr (gk_ui_test_export (page, "csv", csv), ==, "Exported 3 rows");
    g_assert_true (g_file_get_contents (csv, &contents, NULL, NULL));
    g_assert_cmpstr (contents, ==,
                     "id,from_key_id,from_key_name,to_key_id,to_key_name,reason,triggered_by,"
                     "created_at\r\n"
                     "3,1,alpha,2,beta,MANUAL,manual:ann,2026-03-14T14:56:40Z\r\n"
                     "2,2,beta,,,RATE_LIMITED,auto,2026-03-14T14:55:00Z\r\n"
                     "1,1,alpha,2,beta,QUOTA_LOW,auto,2026-03-14T14:53:20Z\r\n");
  }

  gk_rotations_page_set_backend (GK_ROTATIONS_PAGE (page), NULL);
  gk_ui_test_finalize_object (page);
}

static void
test_rotations_empty (void)
{
  g_autofree char *path = gk_test_db_path ();
  g_autoptr(GkBackend) backend = gk_ui_test_backend_new (path);
  GtkWidget *page = g_object_ref_sink (gk_rotations_page_new ());

  g_assert_cmpstr (visible_page (page), ==, "empty");
  gk_rotations_page_set_backend (GK_ROTATIONS_PAGE (page), backend);
  g_assert_cmpstr (visible_page (page), ==, "loading");
  while (gk_rotations_page_get_loading (GK_ROTATIONS_PAGE (page)))
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpstr (card_value (page, "All Rotations"), ==, "0");
  g_assert_cmpstr (visible_page (page), ==, "empty");
  g_assert_nonnull (gk_ui_test_find_label (page, "No Rotations Yet"));

  gk_rotations_page_set_backend (GK_ROTATIONS_PAGE (page), NULL);
  gk_ui_test_finalize_object (page);
}

static guint
audit_rows (GtkWidget *page)
{
  return g_list_model_get_n_items (G_LIST_MODEL (gtk_column_view_get_model (
    GTK_COLUMN_VIEW (gk_ui_test_find_type (page, GTK_TYPE_COLUMN_VIEW)))));
}

static void
add_audit_row (GkBackend *backend)
{
  gk_ui_test_exec_sql (gk_backend_get_database (backend),
                       "INSERT INTO audit_log (created_at, actor, action, target)"
                       " VALUES (1773500000, 'ann', 'key_copy', 'alpha')");
}

static void
wait_audit (GtkWidget *page)
{
  while (gk_audit_page_get_loading (GK_AUDIT_PAGE (page)))
    g_main_context_iteration (NULL, TRUE);
}

/* The audit page reads the log when it is shown and when the data changes
 * while it is; hidden, it reads nothing (a change waits until it is shown
 * again). The rotation page reads whether shown or not. */
static void
test_audit_when_shown (void)
{
  g_autofree char *path = fixture ();
  g_autoptr(GkBackend) backend = gk_ui_test_backend_new (path);
  GtkWidget *page = g_object_ref_sink (gk_audit_page_new ());
  GtkWidget *rotations = g_object_ref_sink (gk_rotations_page_new ());
  GtkWidget *window = gtk_window_new ();

  add_audit_row (backend);
  gk_audit_page_set_backend (GK_AUDIT_PAGE (page), backend);
  gk_rotations_page_set_backend (GK_ROTATIONS_PAGE (rotations), backend);
  g_assert_false (gk_audit_page_get_loading (GK_AUDIT_PAGE (page)));
  g_assert_true (gk_rotations_page_get_loading (GK_ROTATIONS_PAGE (rotations)));
  while (gk_rotations_page_get_loading (GK_ROTATIONS_PAGE (rotations)))
    g_main_context_iteration (NULL, TRUE);
  gk_backend_notify_changed (backend);
  g_assert_false (gk_audit_page_get_loading (GK_AUDIT_PAGE (page)));
  g_assert_true (gk_rotations_page_get_loading (GK_ROTATIONS_PAGE (rotations)));
  g_assert_cmpuint (audit_rows (page), ==, 0);
  g_assert_cmpstr (visible_page (page), ==, "empty");

  gtk_window_set_child (GTK_WINDOW (window), page);
  gtk_window_present (GTK_WINDOW (window));
  while (!gtk_widget_get_mapped (page))
    g_main_context_iteration (NULL, TRUE);
  g_assert_true (gk_audit_page_get_loading (GK_AUDIT_PAGE (page)));
  wait_audit (page);
  g_assert_cmpuint (audit_rows (page), ==, 1);
  g_assert_cmpstr (visible_page (page), ==, "list");

  /* Shown, a change reads the log again. */
  add_audit_row (backend);
  gk_backend_notify_changed (backend);
  g_assert_true (gk_audit_page_get_loading (GK_AUDIT_PAGE (page)));
  wait_audit (page);
  g_assert_cmpuint (audit_rows (page), ==, 2);

  /* Hidden again, a change waits until the page is shown. */
  gtk_widget_set_visible (window, FALSE);
  g_assert_false (gtk_widget_get_mapped (page));
  add_audit_row (backend);
  gk_backend_notify_changed (backend);
  g_assert_false (gk_audit_page_get_loading (GK_AUDIT_PAGE (page)));
  g_assert_cmpuint (audit_rows (page), ==, 2);
  gtk_widget_set_visible (window, TRUE);
  while (!gtk_widget_get_mapped (page))
    g_main_context_iteration (NULL, TRUE);
  wait_audit (page);
  g_assert_cmpuint (audit_rows (page), ==, 3);

  while (gk_rotations_page_get_loading (GK_ROTATIONS_PAGE (rotations)))
    g_main_context_iteration (NULL, TRUE);
  gk_rotations_page_set_backend (GK_ROTATIONS_PAGE (rotations), NULL);
  gk_ui_test_finalize_object (rotations);
  gk_audit_page_set_backend (GK_AUDIT_PAGE (page), NULL);
  gtk_window_destroy (GTK_WINDOW (window));
  gk_ui_test_finalize_object (page);
}

static void
test_model_large (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = gk_test_open_db (NULL);
  g_autoptr(GkUsageModel) model = NULL;
  g_autoptr(GkUsageItem) last = NULL;
  GkUsageItem *last_weak = NULL;

  gk_ui_test_exec_sql (db,
            "INSERT INTO gemini_api_keys (uuid, name, created_at, updated_at) VALUES ('u', 'k', 1, 1);"
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)"
            " INSERT INTO gemini_key_usage_log (key_id, model, status, created_at)"
            " SELECT 1, 'm', 'SUCCESS', i FROM n;");

  model = gk_usage_model_new (db);
  while (gk_usage_model_get_loading (model))
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (model)), ==, 1000000);
  g_assert_cmpuint (gk_usage_model_get_n_cached_pages (model), ==, 0);

  last = g_list_model_get_item (G_LIST_MODEL (model), 999999);
  g_assert_null (gk_usage_item_get_row (last));
  while (gk_usage_model_get_loading (model))
    g_main_context_iteration (NULL, TRUE);
  /* Newest first: the last position is the oldest row. */
  g_assert_nonnull (gk_usage_item_get_row (last));
  g_assert_cmpint (gk_usage_item_get_row (last)->created_at, ==, 1);

  /* Scrolling through many pages keeps only a bounded number, and the
   * rows of the pages let go are freed. */
  last_weak = last;
  g_object_add_weak_pointer (G_OBJECT (last), (gpointer *) &last_weak);
  g_clear_object (&last);
  g_assert_nonnull (last_weak);
  for (guint i = 0; i < 40; i++)
    {
      g_autoptr(GObject) item = g_list_model_get_item (G_LIST_MODEL (model),
                                                       i * GK_USAGE_MODEL_PAGE_SIZE * 10);
    }
  while (gk_usage_model_get_loading (model))
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (gk_usage_model_get_n_cached_pages (model), <=, GK_USAGE_MODEL_MAX_PAGES);
  g_assert_null (last_weak);
}

static void
wait_model (GkUsageModel *model)
{
  while (gk_usage_model_get_loading (model))
    g_main_context_iteration (NULL, TRUE);
}

/* Rows that arrive while a page is read, or above a placeholder the view
 * keeps across a reload, do not shift the rows the items get. */
static void
test_model_rows_added (void)
{
  g_autoptr(GkDatabase) db = gk_test_open_db (NULL);
  g_autoptr(GkUsageModel) model = NULL;
  g_autoptr(GkUsageItem) fifth = NULL;
  g_autoptr(GkUsageItem) kept = NULL;
  g_autoptr(GkUsageItem) newest = NULL;

  gk_ui_test_exec_sql (db,
            "INSERT INTO gemini_api_keys (uuid, name, created_at, updated_at) VALUES ('u', 'k', 1, 1);"
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)"
            " INSERT INTO gemini_key_usage_log (key_id, model, status, created_at)"
            " SELECT 1, 'm', 'SUCCESS', i FROM n;");
  model = gk_usage_model_new (db);
  wait_model (model);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (model)), ==, 1000);

  /* The fetch of the first page waits for the lock; three rows come first. */
  gk_database_lock (db);
  fifth = g_list_model_get_item (G_LIST_MODEL (model), 5);
  gk_ui_test_exec_sql (db,
            "INSERT INTO gemini_key_usage_log (key_id, model, status, created_at) VALUES"
            " (1, 'm', 'SUCCESS', 2001), (1, 'm', 'SUCCESS', 2002), (1, 'm', 'SUCCESS', 2003);");
  gk_database_unlock (db);
  wait_model (model);
  g_assert_nonnull (gk_usage_item_get_row (fifth));
  g_assert_cmpint (gk_usage_item_get_row (fifth)->created_at, ==, 995);

  /* A placeholder held (as a view holds its rows) while a reload finds
   * new rows above it and drops the pages. */
  gk_database_lock (db);
  kept = g_list_model_get_item (G_LIST_MODEL (model), 250);
  gk_ui_test_exec_sql (db,
            "INSERT INTO gemini_key_usage_log (key_id, model, status, created_at) VALUES"
            " (1, 'm', 'SUCCESS', 3004), (1, 'm', 'SUCCESS', 3005);");
  gk_usage_model_reload (model);
  gk_database_unlock (db);
  wait_model (model);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (model)), ==, 1005);
  g_assert_nonnull (gk_usage_item_get_row (kept));
  g_assert_cmpint (gk_usage_item_get_row (kept)->created_at, ==, 750);

  newest = g_list_model_get_item (G_LIST_MODEL (model), 0);
  wait_model (model);
  g_assert_cmpint (gk_usage_item_get_row (newest)->created_at, ==, 3005);
}

/* With the database held elsewhere, the usage page and its model still
 * answer at once, and show the rows once it is free. */
static void
test_usage_never_blocks (void)
{
  g_autofree char *path = fixture ();
  g_autoptr(GkBackend) backend = gk_ui_test_backend_new (path);
  GtkWidget *page = g_object_ref_sink (gk_usage_page_new ());
  GkUsagePage *usage = GK_USAGE_PAGE (page);
  GkUiTestHolder *holder = gk_ui_test_hold_database (gk_backend_get_database (backend));
  gint64 start = g_get_monotonic_time ();

  gk_usage_page_set_backend (usage, backend);
  gk_usage_page_set_filter (usage, 0, 500);
  g_assert_cmpint (gk_ui_test_spin_since (start), <, G_USEC_PER_SEC / 2);
  g_assert_true (gk_usage_page_get_loading (usage));
  g_assert_cmpstr (visible_page (page), ==, "loading");
  gk_ui_test_holder_release (holder);

  wait_usage (usage);
  g_assert_cmpuint (n_rows (usage), ==, 150);
  assert_summary (page, "150", "113", "37", "$1.13");

  gk_usage_page_set_backend (usage, NULL);
  gk_ui_test_finalize_object (page);
}

static void
test_rotations_never_block (void)
{
  g_autofree char *path = fixture ();
  g_autoptr(GkBackend) backend = gk_ui_test_backend_new (path);
  GtkWidget *page = g_object_ref_sink (gk_rotations_page_new ());
  GkUiTestHolder *holder = gk_ui_test_hold_database (gk_backend_get_database (backend));
  gint64 start = g_get_monotonic_time ();

  gk_rotations_page_set_backend (GK_ROTATIONS_PAGE (page), backend);
  g_assert_cmpint (gk_ui_test_spin_since (start), <, G_USEC_PER_SEC / 2);
  g_assert_true (gk_rotations_page_get_loading (GK_ROTATIONS_PAGE (page)));
  gk_ui_test_holder_release (holder);

  while (gk_rotations_page_get_loading (GK_ROTATIONS_PAGE (page)))
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpstr (card_value (page, "All Rotations"), ==, "3");

  gk_rotations_page_set_backend (GK_ROTATIONS_PAGE (page), NULL);
  gk_ui_test_finalize_object (page);
}

/* Amounts take two decimals, four below one cent; per-request costs always
 * four. Counts and money group by the locale (none under C.UTF-8). */
static void
test_format (void)
{
  static const struct { double usd; const char *text; const char *per_request; } money[] = {
    { 0, "$0.00", "$0.0000" },
    { 0.0015, "$0.0015", "$0.0015" },
    { 0.000012, "< $0.0001", "< $0.0001" },
    { 0.009, "$0.0090", "$0.0090" },
    { 0.01, "$0.01", "$0.0100" },
    { 0.0116, "$0.01", "$0.0116" },
    { 0.25, "$0.25", "$0.2500" },
    { 12.5, "$12.50", "$12.5000" },
    { 1234.567, "$1234.57", "$1234.5670" },
  };
  g_autofree char *saved = g_strdup (setlocale (LC_ALL, NULL));

  /* The expected texts are those of a locale without grouping. */
  if (setlocale (LC_ALL, "C.UTF-8") == NULL)
    setlocale (LC_ALL, "C");
  for (guint i = 0; i < G_N_ELEMENTS (money); i++)
    {
      g_autofree char *text = gk_format_money (money[i].usd);
      g_autofree char *per_request = gk_format_money_per_request (money[i].usd);

      g_assert_cmpstr (text, ==, money[i].text);
      g_assert_cmpstr (per_request, ==, money[i].per_request);
    }
  {
    g_autofree char *count = gk_format_count (1234567);

    g_assert_cmpstr (count, ==, "1234567");
  }
  setlocale (LC_ALL, saved);
}

/* GNOME-style dates: today, yesterday, a weekday with the day this year,
 * the year otherwise; 24-hour unless the desktop says 12-hour. */
static void
test_format_dates (void)
{
  g_autofree char *saved = g_strdup (setlocale (LC_ALL, NULL));
  g_autofree char *saved_tz = g_strdup (g_getenv ("TZ"));
  /* Wed 2 Dec 2026 20:23 UTC. */
  const gint64 now = 1796242980;
  static const struct { gint64 time; const char *text; } dates[] = {
    { 1796242980 - 60, "Today 20:22" },
    { 1796242980 - 11 * 3600 - 13 * 60, "Today 09:10" },
    { 1796242980 - 24 * 3600 - 11 * 3600 - 13 * 60, "Yesterday 09:10" },
    { 1796242980 - 20 * 3600 - 24 * 60, "Yesterday 23:59" },
    { 1796242980 - 2 * 24 * 3600 - 6 * 3600 - 18 * 60, "Mon 30 Nov 14:05" },
    { 1796242980 - 365 * 24 * 3600, "Tue 2 Dec 2025 20:23" },
  };

  if (setlocale (LC_ALL, "C.UTF-8") == NULL)
    setlocale (LC_ALL, "C");
  g_setenv ("TZ", "UTC", TRUE);
  tzset ();
  for (guint i = 0; i < G_N_ELEMENTS (dates); i++)
    {
      g_autofree char *text = gk_format_date_at (dates[i].time, now);

      g_assert_cmpstr (text, ==, dates[i].text);
    }
  {
    g_autofree char *never = gk_format_date_at (0, now);
    g_autofree char *full = gk_format_date_full (now);

    g_assert_cmpstr (never, ==, "");
    g_assert_cmpstr (full, ==, "Wednesday 2 December 2026, 20:23:00");
  }

  /* The desktop's 12-hour setting, when its schema is installed. */
  {
    GSettingsSchemaSource *source = g_settings_schema_source_get_default ();
    g_autoptr(GSettingsSchema) schema = source != NULL
      ? g_settings_schema_source_lookup (source, "org.gnome.desktop.interface", TRUE)
      : NULL;

    if (schema != NULL)
      {
        g_autoptr(GSettings) settings = g_settings_new ("org.gnome.desktop.interface");
        g_autofree char *text = NULL;

        g_settings_set_string (settings, "clock-format", "12h");
        text = gk_format_date_at (dates[0].time, now);
        g_assert_cmpstr (text, ==, "Today 8:22 PM");
        g_settings_reset (settings, "clock-format");
        g_clear_pointer (&text, g_free);
        text = gk_format_date_at (dates[0].time, now);
        g_assert_cmpstr (text, ==, "Today 20:22");
      }
  }

  if (saved_tz != NULL)
    g_setenv ("TZ", saved_tz, TRUE);
  else
    g_unsetenv ("TZ");
  tzset ();
  setlocale (LC_ALL, saved);
}

/* 2026-03-15 12:00 in the local time zone, whichever it is. */
static gint64
local_noon (void)
{
  g_autoptr(GDateTime) noon = g_date_time_new_local (2026, 3, 15, 12, 0, 0);

  return g_date_time_to_unix (noon);
}

/* Under a US English locale the figures group with commas. */
static void
test_format_en (void)
{
  g_autofree char *saved = g_strdup (setlocale (LC_ALL, NULL));

  if (setlocale (LC_ALL, "en_US.UTF-8") == NULL)
    {
      g_test_skip ("no en_US.UTF-8 locale (./run test generates it with localedef)");
      return;
    }
  {
    g_autofree char *money = gk_format_money (1234.567);
    g_autofree char *small = gk_format_money (0.0042);
    g_autofree char *per_request = gk_format_money_per_request (1234.567);
    g_autofree char *count = gk_format_count (1234567);
    g_autofree char *time = gk_format_date_full (local_noon ());
    g_autofree char *date = gk_format_date_at (local_noon (), local_noon () + 2 * 24 * 3600);

    g_assert_cmpstr (money, ==, "$1,234.57");
    g_assert_cmpstr (small, ==, "$0.0042");
    g_assert_cmpstr (per_request, ==, "$1,234.5670");
    g_assert_cmpstr (count, ==, "1,234,567");
    /* The desktop's default clock format is 24-hour. */
    g_assert_cmpstr (time, ==, "Sunday 15 March 2026, 12:00:00");
    g_assert_cmpstr (date, ==, "Sun 15 Mar 12:00");
  }
  setlocale (LC_ALL, saved);
}

/* Under a Vietnamese locale the figures group with dots and take a
 * decimal comma, as the rest of the desktop shows them. */
static void
test_format_vi (void)
{
  g_autofree char *saved = g_strdup (setlocale (LC_ALL, NULL));

  if (setlocale (LC_ALL, "vi_VN.UTF-8") == NULL)
    {
      g_test_skip ("no vi_VN.UTF-8 locale (./run test generates it with localedef)");
      return;
    }
  {
    g_autofree char *money = gk_format_money (1234.5);
    g_autofree char *small = gk_format_money (0.0042);
    g_autofree char *per_request = gk_format_money_per_request (1234.5);
    g_autofree char *count = gk_format_count (1234567);

    g_assert_cmpstr (money, ==, "$1.234,50");
    g_assert_cmpstr (small, ==, "$0,0042");
    g_assert_cmpstr (per_request, ==, "$1.234,5000");
    g_assert_cmpstr (count, ==, "1.234.567");
  }
  setlocale (LC_ALL, saved);
}

int
main (int   argc,
      char *argv[])
{
  gtk_test_init (&argc, &argv, NULL);
  gk_ui_test_fixed_locale ();
  gk_ui_test_adw_init ();

  g_test_add_func ("/ui/logs/usage", test_usage_page);
  g_test_add_func ("/ui/logs/usage-period", test_usage_period);
  g_test_add_func ("/ui/logs/format-dates", test_format_dates);
  g_test_add_func ("/ui/logs/usage-empty", test_usage_empty);
  g_test_add_func ("/ui/logs/rotations", test_rotations_page);
  g_test_add_func ("/ui/logs/rotations-empty", test_rotations_empty);
  g_test_add_func ("/ui/logs/audit-when-shown", test_audit_when_shown);
  g_test_add_func ("/ui/logs/model-large", test_model_large);
  g_test_add_func ("/ui/logs/model-rows-added", test_model_rows_added);
  g_test_add_func ("/ui/logs/usage-never-blocks", test_usage_never_blocks);
  g_test_add_func ("/ui/logs/rotations-never-block", test_rotations_never_block);
  g_test_add_func ("/ui/logs/format", test_format);
  g_test_add_func ("/ui/logs/format-en", test_format_en);
  g_test_add_func ("/ui/logs/format-vi", test_format_vi);

  return g_test_run ();
}
