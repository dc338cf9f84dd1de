/* gk-keys-page.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "gk-adaptive.h"
#include "gk-export-button.h"
#include "gk-format.h"
#include "gk-import-dialog.h"
#include "gk-key-dialog.h"
#include "gk-key-row.h"
#include "gk-keys-page.h"
#include "gk-page-load.h"
#include "gk-quota-bar.h"

struct _GkKeysPage
{
  AdwBin              parent_instance;

  GkBackend          *backend;
  GCancellable       *cancellable;
  GListStore         *store;
  GtkStringFilter    *filter;
  GtkCustomFilter    *state_filter;
  GkKeyState          shown_state;     /* GK_KEY_N_STATES = every state */
  GtkSortListModel   *sorted;
  GtkMultiSelection  *selection;
  gboolean            loading;
  gboolean            reload_pending;
  gboolean            loaded_once;

  /* The clipboard content we set with a key, until cleared. */
  GdkContentProvider *copied;
  guint               clear_clipboard_source;

  GtkStack           *stack;
  AdwStatusPage      *error_page;
  GtkSearchBar       *search_bar;
  GtkSearchEntry     *search_entry;
  GtkColumnView      *column_view;
  GtkListView        *narrow_list;
  GtkLabel           *order_label;
  GtkDropDown        *state_dropdown;
  GtkActionBar       *bulk_bar;
  GtkWidget          *stale_box;
  GtkListBox         *stale_list;
  GtkLabel           *bulk_label;
};

G_DEFINE_FINAL_TYPE (GkKeysPage, gk_keys_page, ADW_TYPE_BIN)

enum {
  PROP_0,
  PROP_LOADING,
  N_PROPS
};

enum {
  ADD_TOAST,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

typedef enum
{
  COLUMN_NAME,
  COLUMN_KEY,
  COLUMN_STATUS,
  COLUMN_PRIORITY,
  COLUMN_QUOTAS,
  COLUMN_LAST_USED,
  COLUMN_MENU,
} Column;

#define N_QUOTA_BARS 3
#define TOAST_TIMEOUT_S 4
#define QUOTA_BAR_WIDTH 120

static void reload (GkKeysPage *self);

/* Helpers */

static void
toast (GkKeysPage *self,
       const char *title)
{
  AdwToast *toast = adw_toast_new (title);

  adw_toast_set_timeout (toast, TOAST_TIMEOUT_S);
  g_signal_emit (self, signals[ADD_TOAST], 0, toast);
  g_object_unref (toast);
}

static void
toast_error (GkKeysPage   *self,
             const GError *error)
{
  if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    toast (self, error->message);
}

static GkKeyRow *
find_row (GkKeysPage *self,
          gint64      id)
{
  guint n = g_list_model_get_n_items (G_LIST_MODEL (self->store));

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GkKeyRow) row = g_list_model_get_item (G_LIST_MODEL (self->store), i);

      if (gk_key_row_get_id (row) == id)
        return row;   /* the store still holds a reference */
    }

  return NULL;
}

static GtkWindow *
get_parent_window (GkKeysPage *self)
{
  GtkRoot *root = gtk_widget_get_root (GTK_WIDGET (self));

  return GTK_IS_WINDOW (root) ? GTK_WINDOW (root) : NULL;
}

/* The list */

static int
compare_use_order_cb (gconstpointer a,
                      gconstpointer b)
{
  return gk_key_compare_use_order (*(const GkKey **) a, *(const GkKey **) b);
}

/* The keys, in the order the selector would use them, the one it picks
 * now, and the reset time zone their quota resets are shown in. */
typedef struct
{
  GPtrArray *keys;
  gint64     next_id;  /* 0 = none */
  GTimeZone *reset_tz;
  GPtrArray *stale;    /* GkStaleKey: worth deleting */
  GkForecast *forecast; /* NULL when it could not be computed */
} KeyList;

static void
key_list_free (KeyList *list)
{
  g_clear_pointer (&list->keys, g_ptr_array_unref);
  g_clear_pointer (&list->reset_tz, g_time_zone_unref);
  g_clear_pointer (&list->stale, g_ptr_array_unref);
  g_clear_pointer (&list->forecast, gk_forecast_free);
  g_free (list);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (KeyList, key_list_free)

static gpointer
list_job (const GkBackendRefs  *refs,
          gpointer              data,
          GError              **error)
{
  g_autoptr(GkKey) next = NULL;
  KeyList *list;
  GPtrArray *keys;

  keys = gk_key_store_list (refs->key_store, error);
  if (keys == NULL)
    return NULL;
  g_ptr_array_sort (keys, compare_use_order_cb);

  list = g_new0 (KeyList, 1);
  list->keys = keys;
  /* No key to pick is a state of the pool, not an error of the list. */
  next = gk_pool_select (refs->pool, NULL, NULL, NULL);
  list->next_id = next != NULL ? next->id : 0;
  list->reset_tz = gk_database_get_reset_timezone (refs->db);
  /* A hint only: without it the list is still right. */
  list->stale = gk_hygiene_stale_keys (refs->db, NULL);
  /* A forecast that cannot be read leaves the rows without one. */
  list->forecast = gk_insights_forecast (refs->db, NULL);
  return list;
}

static void
set_loading (GkKeysPage *self,
             gboolean    loading)
{
  if (self->loading == loading)
    return;

  self->loading = loading;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LOADING]);
}

/* Keys worth deleting, each with a Delete button that asks first (the
 * row menu's Delete…). */
static void
show_stale (GkKeysPage *self,
            GPtrArray  *stale)
{
  GtkWidget *child;

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->stale_list))) != NULL)
    gtk_list_box_remove (self->stale_list, child);
  for (guint i = 0; stale != NULL && i < stale->len; i++)
    {
      const GkStaleKey *key = g_ptr_array_index (stale, i);
      g_autofree char *why = gk_stale_key_describe (key);
      GtkWidget *row = adw_action_row_new ();
      GtkWidget *button = gtk_button_new_with_mnemonic (_("_Delete…"));

      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), key->name);
      adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
      adw_action_row_set_subtitle (ADW_ACTION_ROW (row), why);
      gtk_widget_set_valign (button, GTK_ALIGN_CENTER);
      gtk_widget_add_css_class (button, "destructive-action");
      gtk_actionable_set_action_name (GTK_ACTIONABLE (button), "keys.delete");
      gtk_actionable_set_action_target (GTK_ACTIONABLE (button), "x", key->key_id);
      adw_action_row_add_suffix (ADW_ACTION_ROW (row), button);
      gtk_list_box_append (self->stale_list, row);
    }
  gtk_widget_set_visible (self->stale_box, stale != NULL && stale->len > 0);
}

static void
list_done_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GkKeysPage) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KeyList) list = NULL;
  g_autoptr(GPtrArray) rows = NULL;

  list = gk_backend_run_finish (GK_BACKEND (object), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  if (list == NULL)
    {
      adw_status_page_set_description (self->error_page, error->message);
      gtk_stack_set_visible_child_name (self->stack, "error");
    }
  else
    {
      GPtrArray *keys = list->keys;

      rows = g_ptr_array_new_with_free_func (g_object_unref);
      for (guint i = 0; i < keys->len; i++)
        {
          const GkKey *key = g_ptr_array_index (keys, i);
          GkKeyRow *row = gk_key_row_new_with_reset_zone (key, list->reset_tz);

          gk_key_row_set_use_order (row, i);
          gk_key_row_set_is_next (row, key->id == list->next_id);
          if (list->forecast != NULL)
            gk_key_row_set_forecast (row, gk_forecast_key_first (list->forecast, key->id),
                                     list->forecast->now);
          g_ptr_array_add (rows, row);
        }

      g_list_store_splice (self->store, 0, g_list_model_get_n_items (G_LIST_MODEL (self->store)),
                           rows->pdata, rows->len);
      show_stale (self, list->stale);
      gtk_stack_set_visible_child_name (self->stack, rows->len > 0 ? "list" : "empty");
    }

  self->loaded_once = TRUE;

  if (self->reload_pending)
    {
      self->reload_pending = FALSE;
      self->loading = FALSE;
      reload (self);
      return;
    }

  set_loading (self, FALSE);
}

static void
reload (GkKeysPage *self)
{
  if (self->backend == NULL || gk_backend_get_key_store (self->backend) == NULL)
    return;

  /* One load at a time; a change during a load schedules one more. */
  if (self->loading)
    {
      self->reload_pending = TRUE;
      return;
    }

  set_loading (self, TRUE);
  if (!self->loaded_once)
    gtk_stack_set_visible_child_name (self->stack, "loading");

  gk_backend_run_async (self->backend, list_job, NULL, NULL,
                        (GDestroyNotify) key_list_free,
                        self->cancellable, list_done_cb, g_object_ref (self));
}

static void
backend_changed_cb (GkKeysPage *self)
{
  reload (self);
}

/* Cells */

static GtkWidget *
create_cell (Column column)
{
  GtkWidget *widget = NULL;

  switch (column)
    {
    case COLUMN_NAME:
      {
        GtkWidget *title = g_object_new (GTK_TYPE_LABEL,
                                         "xalign", 0.0f,
                                         "ellipsize", PANGO_ELLIPSIZE_END,
                                         "width-chars", 12,
                                         NULL);
        GtkWidget *subtitle = g_object_new (GTK_TYPE_LABEL,
                                            "xalign", 0.0f,
                                            "ellipsize", PANGO_ELLIPSIZE_END,
                                            NULL);

        GtkWidget *next = g_object_new (GTK_TYPE_LABEL,
                                        /* Translators: marks the key the next request gets. */
                                        "label", C_("key", "Next"),
                                        "valign", GTK_ALIGN_CENTER,
                                        "tooltip-text", _("The next request uses this key"),
                                        NULL);
        GtkWidget *line = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);

        gtk_widget_add_css_class (title, "heading");
        gtk_widget_add_css_class (next, "gk-next-key");
        gtk_widget_add_css_class (subtitle, "caption");
        gtk_widget_add_css_class (subtitle, "dim-label");
        gtk_box_append (GTK_BOX (line), title);
        gtk_box_append (GTK_BOX (line), next);
        widget = gtk_box_new (GTK_ORIENTATION_VERTICAL, 2);
        gtk_widget_set_valign (widget, GTK_ALIGN_CENTER);
        gtk_box_append (GTK_BOX (widget), line);
        gtk_box_append (GTK_BOX (widget), subtitle);
      }
      break;

    case COLUMN_KEY:
      widget = g_object_new (GTK_TYPE_LABEL, "xalign", 0.0f, "selectable", FALSE, NULL);
      gtk_widget_add_css_class (widget, "monospace");
      break;

    case COLUMN_STATUS:
      {
        GtkWidget *badge = g_object_new (GTK_TYPE_LABEL, "halign", GTK_ALIGN_START, NULL);
        GtkWidget *detail = g_object_new (GTK_TYPE_LABEL,
                                          "xalign", 0.0f,
                                          "wrap", TRUE,
                                          "wrap-mode", PANGO_WRAP_WORD_CHAR,
                                          "max-width-chars", 28,
                                          NULL);

        gtk_widget_add_css_class (badge, "gk-badge");
        gtk_widget_add_css_class (detail, "caption");
        widget = gtk_box_new (GTK_ORIENTATION_VERTICAL, 2);
        gtk_widget_set_valign (widget, GTK_ALIGN_CENTER);
        gtk_box_append (GTK_BOX (widget), badge);
        gtk_box_append (GTK_BOX (widget), detail);
      }
      break;

    case COLUMN_PRIORITY:
      widget = g_object_new (GTK_TYPE_LABEL, "xalign", 0.5f, NULL);
      gtk_widget_add_css_class (widget, "numeric");
      break;

    case COLUMN_QUOTAS:
      {
        GtkWidget *bars = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
        GtkWidget *forecast = g_object_new (GTK_TYPE_LABEL,
                                            "xalign", 0.0f,
                                            "visible", FALSE,
                                            "tooltip-text",
                                            _("Forecast at the current rate: the last day’s use, "
                                              "shaped by how busy each hour of the week has "
                                              "been. The key leaves service at the rotation "
                                              "threshold."),
                                            NULL);

        gtk_box_set_homogeneous (GTK_BOX (bars), TRUE);
        for (guint i = 0; i < N_QUOTA_BARS; i++)
          {
            GtkWidget *bar = gk_quota_bar_new ();

            gtk_widget_set_size_request (bar, QUOTA_BAR_WIDTH, -1);
            gtk_box_append (GTK_BOX (bars), bar);
          }
        gtk_widget_add_css_class (forecast, "caption");
        gtk_widget_add_css_class (forecast, "warning");
        widget = gtk_box_new (GTK_ORIENTATION_VERTICAL, 2);
        gtk_widget_set_valign (widget, GTK_ALIGN_CENTER);
        gtk_box_append (GTK_BOX (widget), bars);
        gtk_box_append (GTK_BOX (widget), forecast);
      }
      break;

    case COLUMN_LAST_USED:
      widget = g_object_new (GTK_TYPE_LABEL, "xalign", 0.0f, NULL);
      break;

    case COLUMN_MENU:
      widget = g_object_new (GTK_TYPE_MENU_BUTTON,
                             "icon-name", "view-more-symbolic",
                             "valign", GTK_ALIGN_CENTER,
                             "tooltip-text", _("Key Actions"),
                             NULL);
      gtk_widget_add_css_class (widget, "flat");
      break;

    default:
      g_assert_not_reached ();
    }

  return widget;
}

static void
setup_cell_cb (GtkSignalListItemFactory *factory,
               GtkListItem              *item,
               gpointer                  user_data)
{
  gtk_list_item_set_child (item, create_cell (GPOINTER_TO_INT (user_data)));
}

/* One quota bar: the token window, or the request window when only that
 * one has a limit. */
static void
bind_quota_bar (GkQuotaBar  *bar,
                GkKeyRow    *row,
                GkQuotaSlot  token_slot,
                GkQuotaSlot  request_slot,
                const char  *title,
                const char  *request_title)
{
  const GkKey *key = gk_key_row_get_key (row);
  GkQuotaSlot slot = token_slot;
  g_autofree char *resets = NULL;

  if (key->quotas[slot].limit_value == 0 && request_slot != token_slot &&
      key->quotas[request_slot].limit_value > 0)
    {
      slot = request_slot;
      title = request_title;
    }

  resets = gk_key_row_format_reset (row, slot);
  gk_quota_bar_set (bar, title, key->quotas[slot].used_value, key->quotas[slot].limit_value,
                    resets);
}

static GMenuModel *
build_row_menu (gint64 id)
{
  g_autoptr(GMenu) menu = g_menu_new ();
  g_autoptr(GMenu) section = g_menu_new ();
  struct { const char *label; const char *action; gboolean second; } items[] = {
    { N_("_Edit…"), "keys.edit", FALSE },
    { N_("_Copy Key"), "keys.copy", FALSE },
    { N_("_Test Key"), "keys.test", FALSE },
    { N_("_Skip Until Reset…"), "keys.rotate", TRUE },
    { N_("_Delete…"), "keys.delete", TRUE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (items); i++)
    {
      g_autoptr(GMenuItem) item = NULL;

      if (g_str_equal (items[i].action, "keys.test") && !gk_backend_has_gateway ())
        continue;

      item = g_menu_item_new (_(items[i].label), NULL);
      g_menu_item_set_action_and_target_value (item, items[i].action, g_variant_new_int64 (id));
      g_menu_append_item (items[i].second ? section : menu, item);
    }

  g_menu_append_section (menu, NULL, G_MENU_MODEL (section));

  return G_MENU_MODEL (g_steal_pointer (&menu));
}

static void
bind_cell (Column     column,
           GtkWidget *widget,
           GkKeyRow  *row)
{
  const GkKey *key = gk_key_row_get_key (row);

  switch (column)
    {
    case COLUMN_NAME:
      {
        GtkWidget *line = gtk_widget_get_first_child (widget);
        GtkWidget *title = gtk_widget_get_first_child (line);
        GtkWidget *next = gtk_widget_get_next_sibling (title);
        GtkWidget *subtitle = gtk_widget_get_next_sibling (line);
        g_autofree char *text = NULL;

        gtk_label_set_text (GTK_LABEL (title), key->name);
        gtk_widget_set_tooltip_text (title, key->name);
        gtk_widget_set_visible (next, gk_key_row_get_is_next (row));
        if (key->is_default && key->project != NULL)
          /* Translators: "Default key · <project>". */
          text = g_strdup_printf (_("Default · %s"), key->project);
        else if (key->is_default)
          text = g_strdup (_("Default"));
        else
          text = g_strdup (key->project);

        gtk_label_set_text (GTK_LABEL (subtitle), text != NULL ? text : "");
        gtk_widget_set_visible (subtitle, text != NULL);
      }
      break;

    case COLUMN_KEY:
      {
        g_autofree char *masked = gk_key_get_masked (key);

        gtk_label_set_text (GTK_LABEL (widget), masked);
      }
      break;

    case COLUMN_STATUS:
      {
        GtkWidget *badge = gtk_widget_get_first_child (widget);
        GtkWidget *detail = gtk_widget_get_next_sibling (badge);
        g_autofree char *text = gk_key_row_dup_state_detail (row);
        g_autofree char *until = gk_format_date_full (key->state_until);

        gtk_label_set_text (GTK_LABEL (badge), gk_key_state_get_label (key->state));
        gk_key_state_apply_style_class (badge, key->state);
        gk_key_state_apply_style_class (detail, key->state);
        gtk_label_set_text (GTK_LABEL (detail), text != NULL ? text : "");
        gtk_widget_set_visible (detail, text != NULL);
        gtk_widget_set_tooltip_text (detail, until);
      }
      break;

    case COLUMN_PRIORITY:
      {
        g_autofree char *text = g_strdup_printf ("%d", key->priority);

        gtk_label_set_text (GTK_LABEL (widget), text);
      }
      break;

    case COLUMN_QUOTAS:
      {
        GtkWidget *bars = gtk_widget_get_first_child (widget);
        GtkWidget *forecast = gtk_widget_get_next_sibling (bars);
        GtkWidget *bar = gtk_widget_get_first_child (bars);
        const char *runs_out = gk_key_row_get_forecast (row);

        gtk_label_set_text (GTK_LABEL (forecast), runs_out != NULL ? runs_out : "");
        gtk_widget_set_visible (forecast, runs_out != NULL);

        bind_quota_bar (GK_QUOTA_BAR (bar), row, GK_QUOTA_SLOT_MONTHLY_TOKENS,
                        GK_QUOTA_SLOT_MONTHLY_TOKENS, C_("quota", "Month"), NULL);
        bar = gtk_widget_get_next_sibling (bar);
        bind_quota_bar (GK_QUOTA_BAR (bar), row, GK_QUOTA_SLOT_DAILY_TOKENS,
                        GK_QUOTA_SLOT_DAILY_REQUESTS, C_("quota", "Day"),
                        C_("quota", "Requests/day"));
        bar = gtk_widget_get_next_sibling (bar);
        bind_quota_bar (GK_QUOTA_BAR (bar), row, GK_QUOTA_SLOT_MINUTE_TOKENS,
                        GK_QUOTA_SLOT_MINUTE_REQUESTS, C_("quota", "Minute"),
                        C_("quota", "Requests/min"));
      }
      break;

    case COLUMN_LAST_USED:
      {
        g_autofree char *text = gk_format_date (key->last_used_at);
        g_autofree char *full = gk_format_date_full (key->last_used_at);

        gtk_label_set_text (GTK_LABEL (widget),
                            key->last_used_at > 0 ? text : C_("last used", "Never"));
        gtk_widget_set_tooltip_text (widget, full);
      }
      break;

    case COLUMN_MENU:
      {
        g_autoptr(GMenuModel) menu = build_row_menu (key->id);

        gtk_menu_button_set_menu_model (GTK_MENU_BUTTON (widget), menu);
      }
      break;

    default:
      g_assert_not_reached ();
    }
}

static void
bind_cell_cb (GtkSignalListItemFactory *factory,
              GtkListItem              *item,
              gpointer                  user_data)
{
  bind_cell (GPOINTER_TO_INT (user_data), gtk_list_item_get_child (item),
             gtk_list_item_get_item (item));
}

/* Narrow windows: one row per key, the same cells stacked (all but the
 * priority: the list is in the order of use), the menu at the top. */

static const Column narrow_cells[] = {
  COLUMN_NAME, COLUMN_MENU, COLUMN_STATUS, COLUMN_KEY, COLUMN_LAST_USED, COLUMN_QUOTAS,
};

static void
setup_narrow_row_cb (GtkSignalListItemFactory *factory,
                     GtkListItem              *item,
                     gpointer                  user_data)
{
  GtkWidget *cells[G_N_ELEMENTS (narrow_cells)];
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  GtkWidget *top = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  GtkWidget *line = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  GtkWidget *last_used = gtk_label_new (_("Last Used"));
  GtkWidget *bars;

  for (guint i = 0; i < G_N_ELEMENTS (narrow_cells); i++)
    cells[i] = create_cell (narrow_cells[i]);
  gtk_widget_set_hexpand (cells[0], TRUE);
  gtk_widget_set_valign (cells[1], GTK_ALIGN_START);
  gtk_box_append (GTK_BOX (top), cells[0]);
  gtk_box_append (GTK_BOX (top), cells[1]);
  gtk_widget_set_hexpand (cells[3], TRUE);
  gtk_widget_add_css_class (last_used, "caption");
  gtk_widget_add_css_class (last_used, "dim-label");
  gtk_box_append (GTK_BOX (line), cells[3]);
  gtk_box_append (GTK_BOX (line), last_used);
  gtk_box_append (GTK_BOX (line), cells[4]);
  gtk_box_append (GTK_BOX (box), top);
  gtk_box_append (GTK_BOX (box), cells[2]);
  gtk_box_append (GTK_BOX (box), line);
  /* The bars (above the forecast) one above the other, as wide as the row. */
  bars = gtk_widget_get_first_child (cells[5]);
  gtk_orientable_set_orientation (GTK_ORIENTABLE (bars), GTK_ORIENTATION_VERTICAL);
  gtk_box_set_spacing (GTK_BOX (bars), 6);
  for (GtkWidget *bar = gtk_widget_get_first_child (bars); bar != NULL;
       bar = gtk_widget_get_next_sibling (bar))
    gtk_widget_set_size_request (bar, -1, -1);
  gtk_box_append (GTK_BOX (box), cells[5]);
  g_object_set_data_full (G_OBJECT (box), "cells",
                          g_memdup2 (cells, sizeof cells), g_free);
  gtk_widget_set_margin_top (box, 6);
  gtk_widget_set_margin_bottom (box, 6);
  gtk_list_item_set_child (item, box);
}

static void
bind_narrow_row_cb (GtkSignalListItemFactory *factory,
                    GtkListItem              *item,
                    gpointer                  user_data)
{
  GtkWidget **cells = g_object_get_data (G_OBJECT (gtk_list_item_get_child (item)), "cells");

  for (guint i = 0; i < G_N_ELEMENTS (narrow_cells); i++)
    bind_cell (narrow_cells[i], cells[i], gtk_list_item_get_item (item));
}


/* Sorting: the column view's sorters compare rows; ties keep the order of
 * use, which is also the order when no column is sorted. */

static int
compare_int64 (gint64 a,
               gint64 b)
{
  return a < b ? -1 : (a > b ? 1 : 0);
}

static int
compare_rows_cb (gconstpointer a,
                 gconstpointer b,
                 gpointer      user_data)
{
  Column column = GPOINTER_TO_INT (user_data);
  GkKeyRow *row_a = (GkKeyRow *) a, *row_b = (GkKeyRow *) b;
  const GkKey *ka = gk_key_row_get_key (row_a);
  const GkKey *kb = gk_key_row_get_key (row_b);
  int result = 0;

  switch (column)
    {
    case COLUMN_NAME:
      {
        g_autofree char *ca = g_utf8_collate_key (ka->name, -1);
        g_autofree char *cb = g_utf8_collate_key (kb->name, -1);

        result = strcmp (ca, cb);
      }
      break;
    case COLUMN_KEY:
      result = g_strcmp0 (ka->key_hint, kb->key_hint);
      break;
    case COLUMN_STATUS:
      result = compare_int64 (ka->state, kb->state);
      break;
    case COLUMN_PRIORITY:
      result = compare_int64 (ka->priority, kb->priority);
      break;
    case COLUMN_QUOTAS:
      {
        double sa = gk_key_remaining_share (ka), sb = gk_key_remaining_share (kb);

        result = sa < sb ? -1 : (sa > sb ? 1 : 0);
      }
      break;
    case COLUMN_LAST_USED:
      result = compare_int64 (ka->last_used_at, kb->last_used_at);
      break;
    case COLUMN_MENU:
    default:
      break;
    }

  if (result == 0)
    result = compare_int64 (gk_key_row_get_use_order (row_a), gk_key_row_get_use_order (row_b));
  return result < 0 ? GTK_ORDERING_SMALLER : (result > 0 ? GTK_ORDERING_LARGER : GTK_ORDERING_EQUAL);
}

static void
add_column (GkKeysPage *self,
            Column      column,
            const char *title,
            gboolean    expand)
{
  g_autoptr(GtkListItemFactory) factory = gtk_signal_list_item_factory_new ();
  g_autoptr(GtkColumnViewColumn) view_column = NULL;

  g_signal_connect (factory, "setup", G_CALLBACK (setup_cell_cb), GINT_TO_POINTER (column));
  g_signal_connect (factory, "bind", G_CALLBACK (bind_cell_cb), GINT_TO_POINTER (column));

  view_column = gtk_column_view_column_new (title, g_object_ref (factory));
  gtk_column_view_column_set_expand (view_column, expand);
  gtk_column_view_column_set_resizable (view_column, column != COLUMN_MENU);
  if (column != COLUMN_MENU)
    {
      g_autoptr(GtkCustomSorter) sorter = gtk_custom_sorter_new (compare_rows_cb,
                                                                 GINT_TO_POINTER (column), NULL);

      gtk_column_view_column_set_sorter (view_column, GTK_SORTER (sorter));
    }
  gtk_column_view_append_column (self->column_view, view_column);
}

/* Per-key actions */

typedef struct
{
  gint64  id;
  char   *name;
} KeyRef;

static void
key_ref_free (KeyRef *ref)
{
  g_free (ref->name);
  g_free (ref);
}

static KeyRef *
key_ref_new (GkKeyRow *row)
{
  KeyRef *ref = g_new0 (KeyRef, 1);

  ref->id = gk_key_row_get_id (row);
  ref->name = g_strdup (gk_key_row_get_name (row));

  return ref;
}

static void
dialog_saved_cb (GkKeysPage  *self,
                 gint64       id,
                 GkKeyDialog *dialog)
{
  toast (self, gk_key_dialog_get_key_id (dialog) == 0 ? _("Key added") : _("Key saved"));
}

static void
open_dialog (GkKeysPage *self,
             GkKeyRow   *row)
{
  GkKeyDialog *dialog;

  if (self->backend == NULL || gk_backend_get_key_store (self->backend) == NULL)
    return;

  dialog = gk_key_dialog_new (get_parent_window (self), self->backend,
                              row != NULL ? gk_key_row_get_key (row) : NULL);
  if (row != NULL)
    gk_key_dialog_show_resets (dialog, row);
  g_signal_connect_object (dialog, "saved", G_CALLBACK (dialog_saved_cb), self, G_CONNECT_SWAPPED);
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
add_action_cb (GtkWidget  *widget,
               const char *action_name,
               GVariant   *parameter)
{
  open_dialog (GK_KEYS_PAGE (widget), NULL);
}

static void
edit_action_cb (GtkWidget  *widget,
                const char *action_name,
                GVariant   *parameter)
{
  GkKeysPage *self = GK_KEYS_PAGE (widget);
  GkKeyRow *row = find_row (self, g_variant_get_int64 (parameter));

  if (row != NULL)
    open_dialog (self, row);
}

static gboolean
clear_clipboard_cb (gpointer user_data)
{
  GkKeysPage *self = user_data;
  GdkClipboard *clipboard = gtk_widget_get_clipboard (GTK_WIDGET (self));

  self->clear_clipboard_source = 0;
  /* Only if nobody copied something else meanwhile. */
  if (self->copied != NULL && gdk_clipboard_get_content (clipboard) == self->copied)
    gdk_clipboard_set_content (clipboard, NULL);
  g_clear_object (&self->copied);

  return G_SOURCE_REMOVE;
}

static gpointer
reveal_job (const GkBackendRefs  *refs,
            gpointer              data,
            GError              **error)
{
  KeyRef *ref = data;

  return gk_key_store_disclose (refs->key_store, ref->id, GK_AUDIT_KEY_COPY,
                                error);
}

static void
reveal_done_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GkKeysPage) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) plain = NULL;
  GdkClipboard *clipboard;
  GValue value = G_VALUE_INIT;

  plain = gk_backend_run_finish (GK_BACKEND (object), result, &error);
  if (plain == NULL)
    {
      toast_error (self, error);
      return;
    }

  /* The clipboard needs its own copy; ours (secure bytes) is wiped when
   * @plain is released. */
  clipboard = gtk_widget_get_clipboard (GTK_WIDGET (self));
  g_value_init (&value, G_TYPE_STRING);
  g_value_set_string (&value, g_bytes_get_data (plain, NULL));
  g_clear_object (&self->copied);
  self->copied = gdk_content_provider_new_for_value (&value);
  g_value_unset (&value);
  gdk_clipboard_set_content (clipboard, self->copied);

  g_clear_handle_id (&self->clear_clipboard_source, g_source_remove);
  self->clear_clipboard_source = g_timeout_add_seconds (GK_CLIPBOARD_CLEAR_SECONDS,
                                                        clear_clipboard_cb, self);

  toast (self, _("Key copied; the clipboard is cleared in 30 seconds"));
}

static void
copy_action_cb (GtkWidget  *widget,
                const char *action_name,
                GVariant   *parameter)
{
  GkKeysPage *self = GK_KEYS_PAGE (widget);
  GkKeyRow *row = find_row (self, g_variant_get_int64 (parameter));

  if (row == NULL)
    return;

  gk_backend_run_async (self->backend, reveal_job, key_ref_new (row), (GDestroyNotify) key_ref_free,
                        (GDestroyNotify) g_bytes_unref, self->cancellable,
                        reveal_done_cb, g_object_ref (self));
}

typedef struct
{
  GkKeysPage *self;
  char       *name;
} TestRef;

static void
test_ref_free (TestRef *ref)
{
  g_object_unref (ref->self);
  g_free (ref->name);
  g_free (ref);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestRef, test_ref_free)

static void
details_clicked_cb (AdwToast   *toast,
                    GkKeysPage *self)
{
  const char *details = g_object_get_data (G_OBJECT (toast), "gk-details");
  GtkWidget *dialog;

  dialog = adw_message_dialog_new (get_parent_window (self), _("Key Test Details"), details);
  adw_message_dialog_add_response (ADW_MESSAGE_DIALOG (dialog), "close", _("_Close"));
  gtk_window_present (GTK_WINDOW (dialog));
}

/* Google's own words from a rejection ("API key not valid"), without our
 * prefix and anything after the first sentence. */
static char *
rejection_reason (const char *message)
{
  const char *colon = strstr (message, ": ");
  const char *text = colon != NULL ? colon + 2 : message;
  const char *end = strstr (text, ". ");

  return end != NULL ? g_strndup (text, end - text) : g_strdup (text);
}

static void
test_done_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(TestRef) ref = user_data;
  GkKeysPage *self = ref->self;
  g_autoptr(GError) error = NULL;
  g_autofree char *title = NULL;
  AdwToast *result_toast;

  if (gk_backend_test_key_finish (GK_BACKEND (object), result, &error))
    /* Translators: the key test's result; %s is the key's name. */
    title = g_strdup_printf (_("Key “%s” works"), ref->name);
  else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  else
    {
      switch (gk_backend_classify_test_error (error))
        {
        case GK_KEY_TEST_REJECTED:
          {
            g_autofree char *reason = rejection_reason (error->message);

            /* Translators: "Google rejected “Old free tier”: API key not valid". */
            title = g_strdup_printf (_("Google rejected “%s”: %s"), ref->name, reason);
          }
          break;
        case GK_KEY_TEST_UNREACHABLE:
          title = g_strdup (_("Couldn’t reach Google"));
          break;
        case GK_KEY_TEST_FAILED:
        default:
          /* Translators: %s is the key's name. */
          title = g_strdup_printf (_("Couldn’t test “%s”"), ref->name);
          break;
        }
    }

  result_toast = adw_toast_new (title);
  adw_toast_set_timeout (result_toast, TOAST_TIMEOUT_S);
  if (error != NULL)
    {
      /* The full error on demand, not in the toast. */
      adw_toast_set_button_label (result_toast, _("_Details"));
      g_object_set_data_full (G_OBJECT (result_toast), "gk-details", g_strdup (error->message),
                              g_free);
      g_signal_connect_object (result_toast, "button-clicked", G_CALLBACK (details_clicked_cb),
                               self, 0);
    }
  g_signal_emit (self, signals[ADD_TOAST], 0, result_toast);
  g_object_unref (result_toast);

  /* A test can change the key's status either way. */
  if (self->backend != NULL)
    gk_backend_notify_changed (self->backend);
}

static void
test_action_cb (GtkWidget  *widget,
                const char *action_name,
                GVariant   *parameter)
{
  GkKeysPage *self = GK_KEYS_PAGE (widget);
  GkKeyRow *row = find_row (self, g_variant_get_int64 (parameter));
  TestRef *ref;
  g_autofree char *testing = NULL;

  if (row == NULL)
    return;

  ref = g_new0 (TestRef, 1);
  ref->self = g_object_ref (self);
  ref->name = g_strdup (gk_key_row_get_name (row));
  /* Translators: %s is the key's name. */
  testing = g_strdup_printf (_("Testing “%s”…"), ref->name);
  toast (self, testing);
  gk_backend_test_key_async (self->backend, g_variant_get_int64 (parameter), self->cancellable,
                             test_done_cb, ref);
}

static gpointer
rotate_job (const GkBackendRefs  *refs,
            gpointer              data,
            GError              **error)
{
  KeyRef *ref = data;
  g_autofree char *trigger = gk_backend_manual_trigger ();
  g_autoptr(GError) local_error = NULL;
  gint64 *next = g_new (gint64, 1);

  *next = gk_pool_rotate (refs->pool, ref->id, trigger, &local_error);
  if (local_error != NULL)
    {
      g_free (next);
      g_propagate_error (error, g_steal_pointer (&local_error));
      return NULL;
    }

  return next;
}

static void
rotate_done_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GkKeysPage) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree gint64 *next = NULL;

  next = gk_backend_run_finish (GK_BACKEND (object), result, &error);
  if (next == NULL)
    {
      toast_error (self, error);
      return;
    }

  if (*next == 0)
    toast (self, _("Key skipped until the daily reset; no other key is available now"));
  else
    {
      GkKeyRow *row = find_row (self, *next);
      /* Translators: %s is the name of the key used next. */
      g_autofree char *text = g_strdup_printf (_("Key skipped until the daily reset; “%s” is used next"),
                                               row != NULL ? gk_key_row_get_name (row) : "?");
      toast (self, text);
    }

  gk_backend_notify_changed (self->backend);
}

static gpointer
delete_job (const GkBackendRefs  *refs,
            gpointer              data,
            GError              **error)
{
  KeyRef *ref = data;

  if (!gk_key_store_delete (refs->key_store, ref->id, error))
    return NULL;

  return GINT_TO_POINTER (TRUE);
}

static void
delete_done_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GkKeysPage) self = user_data;
  g_autoptr(GError) error = NULL;

  if (gk_backend_run_finish (GK_BACKEND (object), result, &error) == NULL)
    {
      toast_error (self, error);
      return;
    }

  toast (self, _("Key deleted; its history is kept"));
  gk_backend_notify_changed (self->backend);
}

/* Rotate and Delete ask first; the response id names the job. */
static void
confirm_response_cb (AdwMessageDialog *dialog,
                     const char       *response,
                     gpointer          user_data)
{
  GkKeysPage *self = g_object_get_data (G_OBJECT (dialog), "gk-keys-page");
  KeyRef *ref = g_object_steal_data (G_OBJECT (dialog), "gk-key-ref");

  if (self == NULL || ref == NULL || self->backend == NULL)
    {
      g_clear_pointer (&ref, key_ref_free);
      return;
    }

  if (g_str_equal (response, "rotate"))
    gk_backend_run_async (self->backend, rotate_job, ref, (GDestroyNotify) key_ref_free, g_free,
                          self->cancellable, rotate_done_cb, g_object_ref (self));
  else if (g_str_equal (response, "delete"))
    gk_backend_run_async (self->backend, delete_job, ref, (GDestroyNotify) key_ref_free, NULL,
                          self->cancellable, delete_done_cb, g_object_ref (self));
  else
    key_ref_free (ref);
}

static void
confirm (GkKeysPage *self,
         GkKeyRow   *row,
         const char *response,
         const char *response_label,
         const char *heading,
         const char *body)
{
  GtkWidget *dialog;

  dialog = adw_message_dialog_new (get_parent_window (self), heading, body);
  adw_message_dialog_add_responses (ADW_MESSAGE_DIALOG (dialog),
                                    "cancel", _("_Cancel"),
                                    response, response_label,
                                    NULL);
  adw_message_dialog_set_response_appearance (ADW_MESSAGE_DIALOG (dialog), response,
                                              g_str_equal (response, "delete")
                                              ? ADW_RESPONSE_DESTRUCTIVE
                                              : ADW_RESPONSE_SUGGESTED);
  adw_message_dialog_set_default_response (ADW_MESSAGE_DIALOG (dialog), "cancel");
  adw_message_dialog_set_close_response (ADW_MESSAGE_DIALOG (dialog), "cancel");

  g_object_set_data_full (G_OBJECT (dialog), "gk-keys-page", g_object_ref (self), g_object_unref);
  g_object_set_data_full (G_OBJECT (dialog), "gk-key-ref", key_ref_new (row),
                          (GDestroyNotify) key_ref_free);
  g_signal_connect (dialog, "response", G_CALLBACK (confirm_response_cb), NULL);

  gtk_window_present (GTK_WINDOW (dialog));
}

static void
rotate_action_cb (GtkWidget  *widget,
                  const char *action_name,
                  GVariant   *parameter)
{
  GkKeysPage *self = GK_KEYS_PAGE (widget);
  GkKeyRow *row = find_row (self, g_variant_get_int64 (parameter));
  g_autofree char *heading = NULL;

  if (row == NULL)
    return;

  /* Translators: %s is a key's name. */
  heading = g_strdup_printf (_("Skip “%s” Until the Daily Reset?"), gk_key_row_get_name (row));
  confirm (self, row, "rotate", _("_Skip"), heading,
           _("Requests go to the next key until the daily reset; then this key is used again. "
             "The key itself is not changed or replaced. This is logged as a manual rotation."));
}

static void
delete_action_cb (GtkWidget  *widget,
                  const char *action_name,
                  GVariant   *parameter)
{
  GkKeysPage *self = GK_KEYS_PAGE (widget);
  GkKeyRow *row = find_row (self, g_variant_get_int64 (parameter));
  g_autofree char *heading = NULL;

  if (row == NULL)
    return;

  /* Translators: %s is a key's name. */
  heading = g_strdup_printf (_("Delete “%s”?"), gk_key_row_get_name (row));
  confirm (self, row, "delete", _("_Delete"), heading,
           _("The encrypted key is destroyed and cannot be recovered. Its usage and rotation "
             "history are kept."));
}

static void
search_action_cb (GtkWidget  *widget,
                  const char *action_name,
                  GVariant   *parameter)
{
  gk_keys_page_focus_search (GK_KEYS_PAGE (widget));
}

static void
search_changed_cb (GkKeysPage *self)
{
  gtk_string_filter_set_search (self->filter, gtk_editable_get_text (GTK_EDITABLE (self->search_entry)));
}

/* Rows have no column headers to sort by. */
static void
narrow_changed_cb (GkKeysPage *self,
                   GParamSpec *pspec,
                   GkAdaptive *adaptive)
{
  gtk_label_set_label (self->order_label,
                       gk_adaptive_get_narrow (adaptive)
                         ? _("Keys are listed in the order they will be used.")
                         : _("Keys are listed in the order they will be used. Click a column "
                             "header to sort."));
}

/* Export: every key, masked (the key store never reveals a secret in a
 * listing). */
static gboolean
export_job_run (gpointer           store,
                GkExportFormat     format,
                const char        *path,
                GkExportProgress   progress,
                gpointer           progress_data,
                GCancellable      *cancellable,
                guint64           *n_rows,
                GError           **error)
{
  return gk_export_keys (store, format, path, cancellable, n_rows, error);
}

static void
export_cb (GkKeysPage     *self,
           int             format,
           const char     *path,
           GkExportButton *button)
{
  GkKeyStore *store = self->backend != NULL ? gk_backend_get_key_store (self->backend) : NULL;

  if (store != NULL)
    gk_export_button_run (button, format, path, export_job_run, g_object_ref (store),
                          g_object_unref);
}

static void
stop_search_cb (GkKeysPage *self)
{
  gtk_editable_set_text (GTK_EDITABLE (self->search_entry), "");
}

static gboolean
state_filter_cb (gpointer item,
                 gpointer user_data)
{
  GkKeysPage *self = user_data;

  return self->shown_state == GK_KEY_N_STATES
         || gk_key_row_get_key (GK_KEY_ROW (item))->state == self->shown_state;
}

static void
state_selected_cb (GkKeysPage *self)
{
  guint selected = gtk_drop_down_get_selected (self->state_dropdown);

  /* Item 0 is "All states"; then the states in the model's order. */
  gk_keys_page_set_state_filter (self, selected == 0 || selected == GTK_INVALID_LIST_POSITION
                                         ? GK_KEY_N_STATES
                                         : (GkKeyState) (selected - 1));
}

/* Bulk actions on the selected rows */

typedef struct
{
  GArray      *ids;      /* gint64 */
  GkKeyStatus  status;   /* for enable/disable */
  gboolean     delete;
} BulkJob;

static void
bulk_job_free (BulkJob *job)
{
  g_array_unref (job->ids);
  g_free (job);
}

static gpointer
bulk_job (const GkBackendRefs  *refs,
          gpointer              data,
          GError              **error)
{
  BulkJob *job = data;
  GkKeyStore *store = refs->key_store;

  for (guint i = 0; i < job->ids->len; i++)
    {
      gint64 id = g_array_index (job->ids, gint64, i);
      gboolean ok = job->delete ? gk_key_store_delete (store, id, error)
                                : gk_key_store_set_status (store, id, job->status, NULL, error);

      if (!ok)
        return NULL;
    }
  return GINT_TO_POINTER (TRUE);
}

static void
bulk_done_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GkKeysPage) self = user_data;
  g_autoptr(GError) error = NULL;

  if (gk_backend_run_finish (GK_BACKEND (object), result, &error) == NULL)
    toast_error (self, error);
  if (self->backend != NULL && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      gtk_selection_model_unselect_all (GTK_SELECTION_MODEL (self->selection));
      gk_backend_notify_changed (self->backend);
    }
}

/* The ids of the selected rows; with @only_status >= 0, only rows whose
 * stored status is (or, @negate, is not) that one. */
static GArray *
selected_ids (GkKeysPage *self,
              int         only_status,
              gboolean    negate)
{
  GListModel *model = G_LIST_MODEL (self->selection);
  g_autoptr(GtkBitset) selected = gtk_selection_model_get_selection (GTK_SELECTION_MODEL (self->selection));
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  GtkBitsetIter iter;
  guint position;

  for (gboolean more = gtk_bitset_iter_init_first (&iter, selected, &position); more;
       more = gtk_bitset_iter_next (&iter, &position))
    {
      g_autoptr(GkKeyRow) row = g_list_model_get_item (model, position);
      gint64 id;

      if (row == NULL)
        continue;
      if (only_status >= 0
          && ((int) gk_key_row_get_key (row)->status == only_status) == negate)
        continue;
      id = gk_key_row_get_id (row);
      g_array_append_val (ids, id);
    }
  return ids;
}

static void
run_bulk (GkKeysPage *self,
          GArray     *ids,
          GkKeyStatus status,
          gboolean    delete)
{
  BulkJob *job;

  if (ids->len == 0 || self->backend == NULL)
    {
      g_array_unref (ids);
      return;
    }
  job = g_new0 (BulkJob, 1);
  job->ids = ids;
  job->status = status;
  job->delete = delete;
  gk_backend_run_async (self->backend, bulk_job, job, (GDestroyNotify) bulk_job_free, NULL,
                        self->cancellable, bulk_done_cb, g_object_ref (self));
}

static void
enable_selected_cb (GtkWidget  *widget,
                    const char *action_name,
                    GVariant   *parameter)
{
  GkKeysPage *self = GK_KEYS_PAGE (widget);

  /* Only turned-off keys are turned on: a rejected key stays rejected. */
  run_bulk (self, selected_ids (self, GK_KEY_STATUS_INACTIVE, FALSE), GK_KEY_STATUS_ACTIVE, FALSE);
}

static void
disable_selected_cb (GtkWidget  *widget,
                     const char *action_name,
                     GVariant   *parameter)
{
  GkKeysPage *self = GK_KEYS_PAGE (widget);

  run_bulk (self, selected_ids (self, GK_KEY_STATUS_INACTIVE, TRUE), GK_KEY_STATUS_INACTIVE, FALSE);
}

static void
delete_selected_response_cb (AdwMessageDialog *dialog,
                             const char       *response,
                             GkKeysPage       *self)
{
  GArray *ids = g_object_steal_data (G_OBJECT (dialog), "gk-key-ids");

  if (g_str_equal (response, "delete") && ids != NULL)
    run_bulk (self, ids, GK_KEY_STATUS_INACTIVE, TRUE);
  else if (ids != NULL)
    g_array_unref (ids);
}

static void
delete_selected_cb (GtkWidget  *widget,
                    const char *action_name,
                    GVariant   *parameter)
{
  GkKeysPage *self = GK_KEYS_PAGE (widget);
  GArray *ids = selected_ids (self, -1, FALSE);
  g_autofree char *heading = NULL;
  GtkWidget *dialog;

  if (ids->len == 0)
    {
      g_array_unref (ids);
      return;
    }

  heading = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "Delete %u Key?", "Delete %u Keys?",
                                          ids->len),
                             ids->len);
  dialog = adw_message_dialog_new (get_parent_window (self), heading,
                                   _("The encrypted keys are destroyed and cannot be recovered. "
                                     "Their usage and rotation history are kept."));
  adw_message_dialog_add_responses (ADW_MESSAGE_DIALOG (dialog),
                                    "cancel", _("_Cancel"),
                                    "delete", _("_Delete"),
                                    NULL);
  adw_message_dialog_set_response_appearance (ADW_MESSAGE_DIALOG (dialog), "delete",
                                              ADW_RESPONSE_DESTRUCTIVE);
  adw_message_dialog_set_default_response (ADW_MESSAGE_DIALOG (dialog), "cancel");
  adw_message_dialog_set_close_response (ADW_MESSAGE_DIALOG (dialog), "cancel");
  g_object_set_data_full (G_OBJECT (dialog), "gk-key-ids", ids, (GDestroyNotify) g_array_unref);
  g_signal_connect_object (dialog, "response", G_CALLBACK (delete_selected_response_cb), self, 0);
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
selection_changed_cb (GkKeysPage *self)
{
  g_autoptr(GtkBitset) selected = gtk_selection_model_get_selection (GTK_SELECTION_MODEL (self->selection));
  guint64 n = gtk_bitset_get_size (selected);
  g_autofree char *text = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%u key selected",
                                                        "%u keys selected", (gulong) n),
                                           (guint) n);

  gtk_label_set_text (self->bulk_label, text);
  gtk_action_bar_set_revealed (self->bulk_bar, n > 0);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "keys.enable-selected", n > 0);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "keys.disable-selected", n > 0);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "keys.delete-selected", n > 0);
}

/* "activate" of the table or of the narrow list (same model). */
static void
row_activated_cb (GkKeysPage *self,
                  guint       position)
{
  g_autoptr(GkKeyRow) row = g_list_model_get_item (G_LIST_MODEL (self->selection), position);

  if (row != NULL)
    open_dialog (self, row);
}

/* GObject */

static void
gk_keys_page_dispose (GObject *object)
{
  GkKeysPage *self = GK_KEYS_PAGE (object);

  g_cancellable_cancel (self->cancellable);

  /* Do not leave a key behind on the clipboard. */
  if (self->clear_clipboard_source != 0)
    {
      g_clear_handle_id (&self->clear_clipboard_source, g_source_remove);
      clear_clipboard_cb (self);
    }
  g_clear_object (&self->copied);

  gk_backend_set_watched (&self->backend, NULL, NULL, self);

  gk_page_dispose_template (ADW_BIN (self), GK_TYPE_KEYS_PAGE);

  G_OBJECT_CLASS (gk_keys_page_parent_class)->dispose (object);
}

static void
gk_keys_page_finalize (GObject *object)
{
  GkKeysPage *self = GK_KEYS_PAGE (object);

  g_clear_object (&self->store);
  g_clear_object (&self->filter);
  g_clear_object (&self->state_filter);
  g_clear_object (&self->sorted);
  g_clear_object (&self->selection);
  g_clear_object (&self->cancellable);

  G_OBJECT_CLASS (gk_keys_page_parent_class)->finalize (object);
}

static void
gk_keys_page_get_property (GObject    *object,
                           guint       prop_id,
                           GValue     *value,
                           GParamSpec *pspec)
{
  GkKeysPage *self = GK_KEYS_PAGE (object);

  switch (prop_id)
    {
    case PROP_LOADING:
      g_value_set_boolean (value, self->loading);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gk_keys_page_class_init (GkKeysPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_keys_page_dispose;
  object_class->finalize = gk_keys_page_finalize;
  object_class->get_property = gk_keys_page_get_property;

  properties[PROP_LOADING] =
    g_param_spec_boolean ("loading", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * GkKeysPage::add-toast:
   * @toast: the toast to show (the handler takes its own reference)
   */
  signals[ADD_TOAST] =
    g_signal_new ("add-toast",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, ADW_TYPE_TOAST);

  g_type_ensure (GK_TYPE_EXPORT_BUTTON);
  g_type_ensure (GK_TYPE_ADAPTIVE);
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/geminikeys/GeminiKeys/ui/gk-keys-page.ui");
  gtk_widget_class_bind_template_child (widget_class, GkKeysPage, stack);
  gtk_widget_class_bind_template_child (widget_class, GkKeysPage, error_page);
  gtk_widget_class_bind_template_child (widget_class, GkKeysPage, search_bar);
  gtk_widget_class_bind_template_child (widget_class, GkKeysPage, search_entry);
  gtk_widget_class_bind_template_child (widget_class, GkKeysPage, column_view);
  gtk_widget_class_bind_template_child (widget_class, GkKeysPage, narrow_list);
  gtk_widget_class_bind_template_child (widget_class, GkKeysPage, order_label);
  gtk_widget_class_bind_template_child (widget_class, GkKeysPage, state_dropdown);
  gtk_widget_class_bind_template_child (widget_class, GkKeysPage, bulk_bar);
  gtk_widget_class_bind_template_child (widget_class, GkKeysPage, stale_box);
  gtk_widget_class_bind_template_child (widget_class, GkKeysPage, stale_list);
  gtk_widget_class_bind_template_child (widget_class, GkKeysPage, bulk_label);
  gtk_widget_class_bind_template_callback (widget_class, search_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, state_selected_cb);
  gtk_widget_class_bind_template_callback (widget_class, stop_search_cb);
  gtk_widget_class_bind_template_callback (widget_class, export_cb);
  gtk_widget_class_bind_template_callback (widget_class, narrow_changed_cb);

  gtk_widget_class_install_action (widget_class, "keys.add", NULL, add_action_cb);
  gtk_widget_class_install_action (widget_class, "keys.search", NULL, search_action_cb);
  gtk_widget_class_install_action (widget_class, "keys.edit", "x", edit_action_cb);
  gtk_widget_class_install_action (widget_class, "keys.copy", "x", copy_action_cb);
  gtk_widget_class_install_action (widget_class, "keys.test", "x", test_action_cb);
  gtk_widget_class_install_action (widget_class, "keys.rotate", "x", rotate_action_cb);
  gtk_widget_class_install_action (widget_class, "keys.delete", "x", delete_action_cb);
  gtk_widget_class_install_action (widget_class, "keys.enable-selected", NULL, enable_selected_cb);
  gtk_widget_class_install_action (widget_class, "keys.disable-selected", NULL, disable_selected_cb);
  gtk_widget_class_install_action (widget_class, "keys.delete-selected", NULL, delete_selected_cb);
}

static void
gk_keys_page_init (GkKeysPage *self)
{
  g_autoptr(GtkFilterListModel) filtered = NULL;
  g_autoptr(GtkEveryFilter) every = NULL;
  g_autoptr(GtkStringList) states = NULL;

  gtk_widget_init_template (GTK_WIDGET (self));

  self->cancellable = g_cancellable_new ();
  self->store = g_list_store_new (GK_TYPE_KEY_ROW);
  self->shown_state = GK_KEY_N_STATES;

  /* Search the name, the project and the masked key. */
  self->filter = gtk_string_filter_new (gtk_property_expression_new (GK_TYPE_KEY_ROW, NULL, "search-text"));
  gtk_string_filter_set_match_mode (self->filter, GTK_STRING_FILTER_MATCH_MODE_SUBSTRING);
  gtk_string_filter_set_ignore_case (self->filter, TRUE);
  self->state_filter = gtk_custom_filter_new (state_filter_cb, self, NULL);
  every = gtk_every_filter_new ();
  gtk_multi_filter_append (GTK_MULTI_FILTER (every), g_object_ref (GTK_FILTER (self->filter)));
  gtk_multi_filter_append (GTK_MULTI_FILTER (every), g_object_ref (GTK_FILTER (self->state_filter)));

  filtered = gtk_filter_list_model_new (g_object_ref (G_LIST_MODEL (self->store)),
                                        GTK_FILTER (g_steal_pointer (&every)));
  self->sorted = gtk_sort_list_model_new (G_LIST_MODEL (g_steal_pointer (&filtered)), NULL);
  self->selection = gtk_multi_selection_new (g_object_ref (G_LIST_MODEL (self->sorted)));
  gtk_column_view_set_model (self->column_view, GTK_SELECTION_MODEL (self->selection));
  g_signal_connect_object (self->column_view, "activate", G_CALLBACK (row_activated_cb), self,
                           G_CONNECT_SWAPPED);
  {
    g_autoptr(GtkListItemFactory) factory = gtk_signal_list_item_factory_new ();

    g_signal_connect (factory, "setup", G_CALLBACK (setup_narrow_row_cb), NULL);
    g_signal_connect (factory, "bind", G_CALLBACK (bind_narrow_row_cb), NULL);
    gtk_list_view_set_factory (self->narrow_list, factory);
    gtk_list_view_set_model (self->narrow_list, GTK_SELECTION_MODEL (self->selection));
    g_signal_connect_object (self->narrow_list, "activate", G_CALLBACK (row_activated_cb), self,
                             G_CONNECT_SWAPPED);
  }
  g_signal_connect_object (self->selection, "selection-changed", G_CALLBACK (selection_changed_cb),
                           self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->selection, "items-changed", G_CALLBACK (selection_changed_cb),
                           self, G_CONNECT_SWAPPED);

  add_column (self, COLUMN_NAME, _("Name"), TRUE);
  add_column (self, COLUMN_KEY, _("Key"), FALSE);
  add_column (self, COLUMN_STATUS, _("Status"), FALSE);
  add_column (self, COLUMN_PRIORITY, _("Priority"), FALSE);
  add_column (self, COLUMN_QUOTAS, _("Token Quotas"), FALSE);
  add_column (self, COLUMN_LAST_USED, _("Last Used"), FALSE);
  add_column (self, COLUMN_MENU, NULL, FALSE);
  /* No column sorted: the order of use, as loaded. */
  gtk_sort_list_model_set_sorter (self->sorted, gtk_column_view_get_sorter (self->column_view));

  states = gtk_string_list_new (NULL);
  gtk_string_list_append (states, _("All States"));
  for (guint i = 0; i < GK_KEY_N_STATES; i++)
    gtk_string_list_append (states, gk_key_state_get_label (i));
  gtk_drop_down_set_model (self->state_dropdown, G_LIST_MODEL (states));

  gtk_search_bar_connect_entry (self->search_bar, GTK_EDITABLE (self->search_entry));
  /* Typing over the list starts filtering it. */
  gtk_search_bar_set_key_capture_widget (self->search_bar, GTK_WIDGET (self));
  selection_changed_cb (self);
}

/* Public API */

GtkWidget *
gk_keys_page_new (void)
{
  return g_object_new (GK_TYPE_KEYS_PAGE, NULL);
}

void
gk_keys_page_set_backend (GkKeysPage *self,
                          GkBackend  *backend)
{
  g_return_if_fail (GK_IS_KEYS_PAGE (self));
  g_return_if_fail (!backend || GK_IS_BACKEND (backend));

  if (gk_backend_set_watched (&self->backend, backend, G_CALLBACK (backend_changed_cb), self) &&
      backend != NULL)
    reload (self);
}

GListModel *
gk_keys_page_get_keys (GkKeysPage *self)
{
  g_return_val_if_fail (GK_IS_KEYS_PAGE (self), NULL);

  return G_LIST_MODEL (self->store);
}

gboolean
gk_keys_page_get_loading (GkKeysPage *self)
{
  g_return_val_if_fail (GK_IS_KEYS_PAGE (self), FALSE);

  return self->loading;
}

void
gk_keys_page_add_key (GkKeysPage *self)
{
  g_return_if_fail (GK_IS_KEYS_PAGE (self));

  open_dialog (self, NULL);
}

static void
imported_cb (GkKeysPage     *self,
             guint           added,
             GkImportDialog *dialog)
{
  g_autofree char *text = g_strdup_printf (ngettext ("Imported %u key", "Imported %u keys", added),
                                           added);

  toast (self, text);
}

void
gk_keys_page_import_keys (GkKeysPage *self)
{
  GkImportDialog *dialog;

  g_return_if_fail (GK_IS_KEYS_PAGE (self));

  if (self->backend == NULL || gk_backend_get_key_store (self->backend) == NULL)
    return;
  dialog = gk_import_dialog_new (get_parent_window (self), self->backend);
  g_signal_connect_object (dialog, "imported", G_CALLBACK (imported_cb), self, G_CONNECT_SWAPPED);
  gtk_window_present (GTK_WINDOW (dialog));
}

void
gk_keys_page_focus_search (GkKeysPage *self)
{
  g_return_if_fail (GK_IS_KEYS_PAGE (self));

  gtk_search_bar_set_search_mode (self->search_bar, TRUE);
  gtk_widget_grab_focus (GTK_WIDGET (self->search_entry));
}

GListModel *
gk_keys_page_get_shown (GkKeysPage *self)
{
  g_return_val_if_fail (GK_IS_KEYS_PAGE (self), NULL);

  return G_LIST_MODEL (self->sorted);
}

GtkSelectionModel *
gk_keys_page_get_selection (GkKeysPage *self)
{
  g_return_val_if_fail (GK_IS_KEYS_PAGE (self), NULL);

  return GTK_SELECTION_MODEL (self->selection);
}

void
gk_keys_page_set_state_filter (GkKeysPage *self,
                               GkKeyState  state)
{
  g_return_if_fail (GK_IS_KEYS_PAGE (self));
  g_return_if_fail (state <= GK_KEY_N_STATES);

  if (self->shown_state == state)
    return;
  self->shown_state = state;
  gtk_drop_down_set_selected (self->state_dropdown, state == GK_KEY_N_STATES ? 0 : state + 1);
  gtk_filter_changed (GTK_FILTER (self->state_filter), GTK_FILTER_CHANGE_DIFFERENT);
}

void
gk_keys_page_set_search (GkKeysPage *self,
                         const char *text)
{
  g_return_if_fail (GK_IS_KEYS_PAGE (self));

  gtk_editable_set_text (GTK_EDITABLE (self->search_entry), text != NULL ? text : "");
  /* Not waiting for the entry's delay: the caller asked for it now. */
  gtk_string_filter_set_search (self->filter, text);
}
