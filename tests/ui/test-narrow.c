/* test-narrow.c: the Keys, Usage and Rotations tabs at about 400 px and
 * at the default width, in English (and, built as test-narrow-vi, in
 * Vietnamese): nothing scrolls sideways, the narrow rows show
 * and their menus are on screen and work, the bulk actions are reachable.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <locale.h>

#include "gk-adaptive.h"
#include "gk-compare-view.h"
#include "gk-export-button.h"
#include "gk-key-dialog.h"
#include "gk-keys-page.h"
#include "gk-rotations-page.h"
#include "gk-test-util.h"
#include "gk-ui-test-util.h"
#include "gk-usage-page.h"

#define NARROW_WIDTH  400
#define NARROW_HEIGHT 800
/* How long new rows may take to be laid out, on a loaded machine. */
#define LAYOUT_TIMEOUT_S 10

typedef struct
{
  char     *dir;
  char     *db_path;
  GkWindow *window;
} Fixture;

/* The screenshots' database: a key in every state, with quotas, usage
 * and rotations; its master key in a file. */
static void
open_window (Fixture *f,
             int      width)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *master = NULL;
  int status = 0;

  f->dir = g_dir_make_tmp ("gk-test-narrow-XXXXXX", &error);
  g_assert_no_error (error);
  f->db_path = g_build_filename (f->dir, "keys.db", NULL);
  master = g_build_filename (f->dir, "master.key", NULL);
  {
    const char *argv[] = { GK_FIXTURE_PATH, "--db", f->db_path, "--master-key-file", master,
                           NULL };

    g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
                  NULL, &status, &error);
    g_assert_no_error (error);
    g_assert_true (g_spawn_check_wait_status (status, NULL));
  }
  g_setenv (GK_MASTER_KEY_FILE_ENV, master, TRUE);
  /* -1: the window's own default size. */
  f->window = gk_ui_test_open_window_sized (f->db_path, width, width > 0 ? NARROW_HEIGHT : -1);
}

static void
close_window (Fixture *f)
{
  gk_ui_test_close_window (f->window);
  gk_test_rm_rf (f->dir);
  g_free (f->db_path);
  g_free (f->dir);
}

static gboolean
tab_idle (gpointer data)
{
  GtkWidget *page = data;
  GtkColumnView *view = GTK_COLUMN_VIEW (gk_ui_test_find_type (page, GTK_TYPE_COLUMN_VIEW));
  GListModel *rows = G_LIST_MODEL (gtk_column_view_get_model (view));
  gboolean loading = GK_IS_KEYS_PAGE (page) ? gk_keys_page_get_loading (GK_KEYS_PAGE (page))
                     : GK_IS_USAGE_PAGE (page) ? gk_usage_page_get_loading (GK_USAGE_PAGE (page))
                     : gk_rotations_page_get_loading (GK_ROTATIONS_PAGE (page));

  return !loading && rows != NULL && g_list_model_get_n_items (rows) > 0;
}

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

typedef struct
{
  GtkWidget *page;
  gboolean   narrow;
} Layout;

/* The rows (narrow) or the table are shown, laid out. */
static gboolean
layout_is (gpointer data)
{
  Layout *layout = data;
  GkAdaptive *adaptive = GK_ADAPTIVE (gk_ui_test_find_type (layout->page, GK_TYPE_ADAPTIVE));
  GtkWidget *rows = find_named (layout->page, "narrow-list");
  GtkWidget *table = gk_ui_test_find_type (layout->page, GTK_TYPE_COLUMN_VIEW);
  GtkWidget *shown = layout->narrow ? rows : table;
  GtkWidget *hidden = layout->narrow ? table : rows;

  return gk_adaptive_get_narrow (adaptive) == layout->narrow && gtk_widget_get_mapped (shown) &&
         gtk_widget_get_width (shown) > 0 && !gtk_widget_get_mapped (hidden);
}

/* Shows @tab, lets it load and lay out as rows (@narrow) or a table. */
static GtkWidget *
show_tab (Fixture    *f,
          const char *tab,
          gboolean    narrow)
{
  g_autofree char *child = g_strdup_printf ("%s_page", tab);
  GtkWidget *page = gk_ui_test_window_child (f->window, child);
  Layout layout = { page, narrow };

  gk_window_set_visible_tab (f->window, tab);
  gk_ui_test_wait (tab_idle, page, "the tab to load");
  gk_ui_test_wait (layout_is, &layout, narrow ? "the rows" : "the table");
  gk_ui_test_spin (200);
  return page;
}

/* Every mapped scrolled window below @root: nothing to scroll sideways. */
static void
assert_no_sideways_scroll (GtkWidget *root)
{
  for (GtkWidget *child = gtk_widget_get_first_child (root); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      if (GTK_IS_SCROLLED_WINDOW (child) && gtk_widget_get_mapped (child))
        {
          GtkAdjustment *h = gtk_scrolled_window_get_hadjustment (GTK_SCROLLED_WINDOW (child));

          if (gtk_adjustment_get_upper (h) > gtk_adjustment_get_page_size (h) + 0.5)
            g_error ("%s scrolls sideways: %.0f px of content in %.0f",
                     G_OBJECT_TYPE_NAME (gtk_scrolled_window_get_child (GTK_SCROLLED_WINDOW (child))),
                     gtk_adjustment_get_upper (h), gtk_adjustment_get_page_size (h));
        }
      assert_no_sideways_scroll (child);
    }
}

/* @widget is mapped and wholly inside the window. */
static void
assert_on_screen (Fixture   *f,
                  GtkWidget *widget)
{
  graphene_rect_t bounds;
  int width = gtk_widget_get_width (GTK_WIDGET (f->window));

  g_assert_true (gtk_widget_get_mapped (widget));
  g_assert_true (gtk_widget_compute_bounds (widget, GTK_WIDGET (f->window), &bounds));
  g_assert_cmpfloat (bounds.origin.x, >=, 0);
  g_assert_cmpfloat (bounds.origin.x + bounds.size.width, <=, width);
  g_assert_cmpfloat (bounds.size.width, >, 0);
}

/* The mapped widget of @type below @root whose label is @text. */
static GtkWidget *
find_mapped_label (GtkWidget  *root,
                   const char *text)
{
  if (GTK_IS_LABEL (root) && gtk_widget_get_mapped (root) &&
      g_strcmp0 (gtk_label_get_text (GTK_LABEL (root)), text) == 0)
    return root;
  for (GtkWidget *child = gtk_widget_get_first_child (root); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      GtkWidget *found = find_mapped_label (child, text);

      if (found != NULL)
        return found;
    }
  return NULL;
}

static gboolean
bar_revealed (gpointer data)
{
  return gtk_action_bar_get_revealed (GTK_ACTION_BAR (data));
}

static gboolean
key_dialog_shown (gpointer data)
{
  return gk_ui_test_find_toplevel (GK_TYPE_KEY_DIALOG) != NULL;
}

static gboolean
message_dialog_shown (gpointer data)
{
  return gk_ui_test_find_toplevel (ADW_TYPE_MESSAGE_DIALOG) != NULL;
}

static gboolean
no_dialogs (gpointer data)
{
  return gk_ui_test_find_toplevel (GK_TYPE_KEY_DIALOG) == NULL &&
         gk_ui_test_find_toplevel (ADW_TYPE_MESSAGE_DIALOG) == NULL;
}

/* Activates the item of @button's menu for @action, as a click on it
 * does. */
static void
activate_menu_item (GtkWidget  *button,
                    const char *action)
{
  GMenuModel *menu = gtk_menu_button_get_menu_model (GTK_MENU_BUTTON (button));
  g_autoptr(GPtrArray) models = g_ptr_array_new ();

  g_assert_nonnull (menu);
  g_ptr_array_add (models, menu);
  for (guint m = 0; m < models->len; m++)
    {
      GMenuModel *model = models->pdata[m];

      for (int i = 0; i < g_menu_model_get_n_items (model); i++)
        {
          g_autofree char *name = NULL;
          g_autoptr(GVariant) target = NULL;
          GMenuModel *section = g_menu_model_get_item_link (model, i, G_MENU_LINK_SECTION);

          if (section != NULL)
            {
              g_ptr_array_add (models, section);
              g_object_unref (section);   /* the menu keeps it */
              continue;
            }
          if (!g_menu_model_get_item_attribute (model, i, G_MENU_ATTRIBUTE_ACTION, "s", &name) ||
              !g_str_equal (name, action))
            continue;
          target = g_menu_model_get_item_attribute_value (model, i, G_MENU_ATTRIBUTE_TARGET, NULL);
          g_assert_true (gtk_widget_activate_action_variant (button, name, target));
          return;
        }
    }
  g_error ("no menu item for %s", action);
}

static void
test_keys_narrow (void)
{
  Fixture f = { 0 };
  GtkWidget *page, *list, *menu, *bulk;
  GtkSelectionModel *selection;

  open_window (&f, NARROW_WIDTH);
  page = show_tab (&f, "keys", TRUE);
  g_assert_cmpint (gtk_widget_get_width (GTK_WIDGET (f.window)), <=, NARROW_WIDTH);
  assert_no_sideways_scroll (GTK_WIDGET (f.window));

  /* Rows, not the table. */
  list = find_named (page, "narrow-list");
  g_assert_nonnull (list);
  g_assert_true (gtk_widget_get_mapped (list));
  g_assert_false (gtk_widget_get_mapped (gk_ui_test_find_type (page, GTK_TYPE_COLUMN_VIEW)));
  g_assert_true (gk_adaptive_get_narrow (GK_ADAPTIVE (gk_ui_test_find_type (page,
                                                                            GK_TYPE_ADAPTIVE))));
  /* The first row: its name, the next-key marker, its state, its menu. */
  assert_on_screen (&f, find_mapped_label (list, "Staging"));
  assert_on_screen (&f, find_mapped_label (list, C_("key", "Next")));
  assert_on_screen (&f, find_mapped_label (list, gk_key_state_get_label (GK_KEY_STATE_AVAILABLE)));
  menu = gk_ui_test_find_type (list, GTK_TYPE_MENU_BUTTON);
  g_assert_nonnull (menu);
  assert_on_screen (&f, menu);
  assert_on_screen (&f, find_named (page, "export"));
  /* No column headers to click. */
  g_assert_nonnull (find_mapped_label (page, _("Keys are listed in the order they will be used.")));

  /* Its actions: Edit opens the key's dialog, Skip asks first. */
  activate_menu_item (menu, "keys.edit");
  gk_ui_test_wait (key_dialog_shown, NULL, "the key dialog");
  gtk_window_close (GTK_WINDOW (gk_ui_test_find_toplevel (GK_TYPE_KEY_DIALOG)));
  gk_ui_test_wait (no_dialogs, NULL, "the key dialog to close");
  activate_menu_item (menu, "keys.rotate");
  gk_ui_test_wait (message_dialog_shown, NULL, "the confirmation");
  adw_message_dialog_response (ADW_MESSAGE_DIALOG (gk_ui_test_find_toplevel (ADW_TYPE_MESSAGE_DIALOG)),
                               "cancel");
  gtk_window_close (GTK_WINDOW (gk_ui_test_find_toplevel (ADW_TYPE_MESSAGE_DIALOG)));
  gk_ui_test_wait (no_dialogs, NULL, "the confirmation to close");

  /* Selecting rows shows the bulk actions, on screen. */
  selection = gtk_list_view_get_model (GTK_LIST_VIEW (list));
  gtk_selection_model_select_range (selection, 0, 2, TRUE);
  bulk = gk_ui_test_find_type (page, GTK_TYPE_ACTION_BAR);
  /* A busy machine reveals it a few frames later; then it slides in. */
  gk_ui_test_wait (bar_revealed, bulk, "the bulk actions");
  gk_ui_test_spin (300);
  for (GtkWidget *button = gk_ui_test_find_type (bulk, GTK_TYPE_BUTTON); button != NULL;
       button = gtk_widget_get_next_sibling (button))
    if (GTK_IS_BUTTON (button))
      assert_on_screen (&f, button);
  assert_no_sideways_scroll (GTK_WIDGET (f.window));

  close_window (&f);
}

static void
test_logs_narrow (void)
{
  Fixture f = { 0 };

  open_window (&f, NARROW_WIDTH);
  for (guint i = 0; i < 2; i++)
    {
      GtkWidget *page = show_tab (&f, i == 0 ? "usage" : "rotations", TRUE);
      GtkWidget *list = find_named (page, "narrow-list");

      g_assert_cmpint (gtk_widget_get_width (GTK_WIDGET (f.window)), <=, NARROW_WIDTH);
      assert_no_sideways_scroll (GTK_WIDGET (f.window));
      g_assert_nonnull (list);
          g_assert_true (gtk_widget_get_mapped (list));
      g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (gtk_list_view_get_model (GTK_LIST_VIEW (list)))),
                        >, 0);
      assert_on_screen (&f, find_named (page, "export"));
    }
  close_window (&f);
}

/* @label has less room than its text needs; @natural tells how much. */
static gboolean
label_is_cut (GtkWidget *label,
              int       *natural)
{
  GtkStyleContext *style = gtk_widget_get_style_context (label);
  GtkBorder margin, border, padding;

  /* The measure counts the margins, the CSS border and padding (a badge's
   * pill), which gtk_widget_get_width () leaves out: only the text's own
   * width is compared. */
  gtk_widget_measure (label, GTK_ORIENTATION_HORIZONTAL, -1, NULL, natural, NULL, NULL);
  gtk_style_context_get_margin (style, &margin);
  gtk_style_context_get_border (style, &border);
  gtk_style_context_get_padding (style, &padding);
  *natural -= gtk_widget_get_margin_start (label) + gtk_widget_get_margin_end (label)
              + margin.left + margin.right + border.left + border.right
              + padding.left + padding.right;
  return gtk_widget_get_width (label) < *natural;
}

/* Every mapped label below @root that neither wraps nor ellipsizes has
 * room for its text, and every menu button is wholly in the window. */
static void
assert_nothing_clipped (Fixture   *f,
                        GtkWidget *root)
{
  for (GtkWidget *child = gtk_widget_get_first_child (root); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      if (!gtk_widget_get_mapped (child))
        continue;
      if (GTK_IS_LABEL (child) && !gtk_label_get_wrap (GTK_LABEL (child)) &&
          gtk_label_get_ellipsize (GTK_LABEL (child)) == PANGO_ELLIPSIZE_NONE)
        {
          int natural = 0;

          if (label_is_cut (child, &natural))
            g_error ("“%s” is cut: %d px for %d", gtk_label_get_text (GTK_LABEL (child)),
                     gtk_widget_get_width (child), natural);
        }
      if (GTK_IS_MENU_BUTTON (child))
        assert_on_screen (f, child);
      assert_nothing_clipped (f, child);
    }
}

/* At the default width: the tables, whole (every column's cells as wide
 * as their text), nothing scrolling sideways. */
static void
test_default_width (void)
{
  Fixture f = { 0 };
  const char *tabs[] = { "keys", "usage", "rotations" };

  open_window (&f, -1);
  for (guint i = 0; i < G_N_ELEMENTS (tabs); i++)
    {
      GtkWidget *page = show_tab (&f, tabs[i], FALSE);

      g_assert_true (gtk_widget_get_mapped (gk_ui_test_find_type (page, GTK_TYPE_COLUMN_VIEW)));
      assert_no_sideways_scroll (GTK_WIDGET (f.window));
      assert_nothing_clipped (&f, gk_ui_test_find_type (page, GTK_TYPE_COLUMN_VIEW));
    }
  close_window (&f);
}

static gboolean
compare_loaded (gpointer data)
{
  GkCompareView *view = data;

  return gtk_widget_get_mapped (GTK_WIDGET (view)) &&
         g_list_model_get_n_items (gk_compare_view_get_model (view)) > 0;
}

/* The first mapped label below @root, ellipsizing ones too, with less
 * room than its text needs, or NULL. */
static GtkWidget *
find_cut_label (GtkWidget *root)
{
  for (GtkWidget *child = gtk_widget_get_first_child (root); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      GtkWidget *cut;
      int natural = 0;

      if (!gtk_widget_get_mapped (child))
        continue;
      if (GTK_IS_LABEL (child) && label_is_cut (child, &natural))
        return child;
      if ((cut = find_cut_label (child)) != NULL)
        return cut;
    }
  return NULL;
}

/* The dashboard's Compare Keys table at the default width: its eleven
 * columns leave every key's name whole, and nothing scrolls sideways; the
 * busiest key comes first, as in the chart. */
static void
test_compare_default_width (void)
{
  Fixture f = { 0 };
  GtkWidget *page, *view, *table, *cut;
  gint64 deadline;

  open_window (&f, -1);
  page = gk_ui_test_window_child (f.window, "dashboard_page");
  gk_window_set_visible_tab (f.window, "dashboard");
  view = gk_ui_test_find_type (page, GK_TYPE_COMPARE_VIEW);
  gk_ui_test_wait (compare_loaded, view, "the comparison");
  g_assert_cmpstr (gk_compare_view_get_row (GK_COMPARE_VIEW (view), 0)->name, ==, "Production");

  /* The rows are laid out on a later frame: a label cut until then is
   * not cut. */
  table = gk_ui_test_find_type (view, GTK_TYPE_COLUMN_VIEW);
  deadline = g_get_monotonic_time () + LAYOUT_TIMEOUT_S * G_USEC_PER_SEC;
  while ((cut = find_cut_label (table)) != NULL && g_get_monotonic_time () < deadline)
    gk_ui_test_spin (50);
  if (cut != NULL)
    {
      int natural = 0;

      label_is_cut (cut, &natural);
      g_error ("“%s” is cut: %d px for %d", gtk_label_get_text (GTK_LABEL (cut)),
               gtk_widget_get_width (cut), natural);
    }
  assert_no_sideways_scroll (view);
  close_window (&f);
}

int
main (int   argc,
      char *argv[])
{
#ifdef GK_TEST_VIETNAMESE
  gboolean vietnamese = TRUE;
#else
  gboolean vietnamese = FALSE;
#endif

  if (vietnamese)
    {
      g_autofree char *localedir = g_build_filename (g_getenv ("GEMINI_KEYS_BUILD_ROOT"), "po",
                                                     NULL);

      g_setenv ("LANGUAGE", "vi", TRUE);
      g_setenv ("LC_ALL", "vi_VN.UTF-8", TRUE);
      if (setlocale (LC_ALL, "") == NULL)
        g_error ("The vi_VN.UTF-8 locale is not installed");
      bindtextdomain (GETTEXT_PACKAGE, localedir);
      bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
      textdomain (GETTEXT_PACKAGE);
      /* As test-vietnamese does: gtk_test_init () would switch to en_US. */
      g_test_init (&argc, &argv, NULL);
      gtk_init ();
    }
  else
    {
      gtk_test_init (&argc, &argv, NULL);
      gk_ui_test_fixed_locale ();
    }
  gk_ui_test_adw_init ();

  g_test_add_func ("/ui/narrow/keys", test_keys_narrow);
  g_test_add_func ("/ui/narrow/logs", test_logs_narrow);
  g_test_add_func ("/ui/narrow/default-width", test_default_width);
  g_test_add_func ("/ui/narrow/compare-default-width", test_compare_default_width);

  return g_test_run ();
}
