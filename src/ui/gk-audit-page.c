/* gk-audit-page.c: the audit log, who changed what, newest first.
 *
 * Like the rotation log, the newest HISTORY_LIMIT rows are read in one
 * query, in a worker thread, into a GListStore of small row objects, when
 * the page is shown and, while it is, when the data changes. Some actions
 * change nothing else (a key copied, an export): showing the page reads
 * them.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-audit-page.h"
#include "gk-format.h"
#include "gk-page-load.h"

#define HISTORY_LIMIT 1000

/* Row objects: the cell texts, formatted once. */

#define GK_TYPE_AUDIT_ITEM (gk_audit_item_get_type ())
G_DECLARE_FINAL_TYPE (GkAuditItem, gk_audit_item, GK, AUDIT_ITEM, GObject)

enum {
  ITEM_PROP_0,
  ITEM_PROP_TIME,
  ITEM_PROP_ACTOR,
  ITEM_PROP_ACTION,
  ITEM_PROP_TARGET,
  ITEM_PROP_SUMMARY,
  ITEM_PROP_TIME_FULL,
  ITEM_N_PROPS
};

struct _GkAuditItem
{
  GObject  parent_instance;
  char    *texts[ITEM_N_PROPS];
};

G_DEFINE_FINAL_TYPE (GkAuditItem, gk_audit_item, G_TYPE_OBJECT)

static void
gk_audit_item_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  GkAuditItem *self = GK_AUDIT_ITEM (object);

  if (prop_id > ITEM_PROP_0 && prop_id < ITEM_N_PROPS)
    g_value_set_string (value, self->texts[prop_id]);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
}

static void
gk_audit_item_finalize (GObject *object)
{
  GkAuditItem *self = GK_AUDIT_ITEM (object);

  for (guint i = 0; i < ITEM_N_PROPS; i++)
    g_free (self->texts[i]);

  G_OBJECT_CLASS (gk_audit_item_parent_class)->finalize (object);
}

static void
gk_audit_item_class_init (GkAuditItemClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  static const char * const names[] = {
    NULL, "time", "actor", "action", "target", "summary", "time-full",
  };

  object_class->finalize = gk_audit_item_finalize;
  object_class->get_property = gk_audit_item_get_property;

  for (guint i = ITEM_PROP_TIME; i < ITEM_N_PROPS; i++)
    g_object_class_install_property (object_class, i,
                                     g_param_spec_string (names[i], NULL, NULL, NULL,
                                                          G_PARAM_READABLE |
                                                          G_PARAM_STATIC_STRINGS));
}

static void
gk_audit_item_init (GkAuditItem *self)
{
}

static GkAuditItem *
gk_audit_item_new (const GkAuditRow *row)
{
  GkAuditItem *self = g_object_new (GK_TYPE_AUDIT_ITEM, NULL);

  self->texts[ITEM_PROP_TIME] = gk_format_date (row->created_at);
  self->texts[ITEM_PROP_TIME_FULL] = gk_format_date_full (row->created_at);
  self->texts[ITEM_PROP_ACTOR] = g_strdup (row->actor);
  self->texts[ITEM_PROP_ACTION] = g_strdup (gk_audit_action_get_label (row->action));
  self->texts[ITEM_PROP_TARGET] = gk_audit_render_target (row->action, row->target);
  self->texts[ITEM_PROP_SUMMARY] = gk_audit_render_summary (row->action, row->summary);
  return self;
}

/* The page */

struct _GkAuditPage
{
  AdwBin          parent_instance;

  GtkStack       *stack;
  AdwStatusPage  *empty_status;
  GtkColumnView  *column_view;

  GListStore     *store;
  GkPageLoad      load;
};

G_DEFINE_FINAL_TYPE (GkAuditPage, gk_audit_page, ADW_TYPE_BIN)

enum {
  PROP_0,
  PROP_LOADING,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
load_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  GError *error = NULL;
  GPtrArray *rows = gk_audit_list (task_data, HISTORY_LIMIT, 0, &error);

  if (rows == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, rows, (GDestroyNotify) g_ptr_array_unref);
}

static void
load_cb (GObject      *object,
         GAsyncResult *res,
         gpointer      user_data)
{
  GkAuditPage *self = GK_AUDIT_PAGE (object);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GPtrArray) items = NULL;

  rows = g_task_propagate_pointer (G_TASK (res), &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  gk_page_load_set_loading (&self->load, FALSE);
  if (rows == NULL)
    {
      adw_status_page_set_title (self->empty_status, _("Could Not Read the Audit Log"));
      adw_status_page_set_description (self->empty_status, error->message);
      gtk_stack_set_visible_child_name (self->stack, "empty");
      return;
    }

  items = g_ptr_array_new_full (rows->len, g_object_unref);
  for (guint i = 0; i < rows->len; i++)
    g_ptr_array_add (items, gk_audit_item_new (g_ptr_array_index (rows, i)));
  g_list_store_splice (self->store, 0, g_list_model_get_n_items (G_LIST_MODEL (self->store)),
                       items->pdata, items->len);

  gtk_stack_set_visible_child_name (self->stack, items->len > 0 ? "list" : "empty");
}

static void
reload (gpointer page)
{
  GkAuditPage *self = page;

  gk_page_load_list (&self->load, G_LIST_MODEL (self->store), self->stack, load_cb, load_thread);
}

static void
gk_audit_page_dispose (GObject *object)
{
  GkAuditPage *self = GK_AUDIT_PAGE (object);

  gk_page_load_dispose (&self->load);
  gk_page_dispose_template (ADW_BIN (self), GK_TYPE_AUDIT_PAGE);
  g_clear_object (&self->store);

  G_OBJECT_CLASS (gk_audit_page_parent_class)->dispose (object);
}

static void
gk_audit_page_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  GkAuditPage *self = GK_AUDIT_PAGE (object);

  switch (prop_id)
    {
    case PROP_LOADING:
      g_value_set_boolean (value, self->load.loading);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gk_audit_page_class_init (GkAuditPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_audit_page_dispose;
  object_class->get_property = gk_audit_page_get_property;

  properties[PROP_LOADING] =
    g_param_spec_boolean ("loading", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /* The column factories look the item type up by name. */
  g_type_ensure (GK_TYPE_AUDIT_ITEM);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/geminikeys/GeminiKeys/ui/gk-audit-page.ui");
  gtk_widget_class_bind_template_child (widget_class, GkAuditPage, stack);
  gtk_widget_class_bind_template_child (widget_class, GkAuditPage, empty_status);
  gtk_widget_class_bind_template_child (widget_class, GkAuditPage, column_view);
}

static void
gk_audit_page_init (GkAuditPage *self)
{
  g_autoptr(GtkNoSelection) selection = NULL;

  gk_page_load_init (&self->load, GTK_WIDGET (self), properties[PROP_LOADING], reload, TRUE);
  gtk_widget_init_template (GTK_WIDGET (self));

  self->store = g_list_store_new (GK_TYPE_AUDIT_ITEM);
  selection = gtk_no_selection_new (g_object_ref (G_LIST_MODEL (self->store)));
  gtk_column_view_set_model (self->column_view, GTK_SELECTION_MODEL (selection));
  gtk_stack_set_visible_child_name (self->stack, "empty");
}

/* Public API */

GtkWidget *
gk_audit_page_new (void)
{
  return g_object_new (GK_TYPE_AUDIT_PAGE, NULL);
}

void
gk_audit_page_set_backend (GkAuditPage *self,
                           GkBackend   *backend)
{
  g_return_if_fail (GK_IS_AUDIT_PAGE (self));
  g_return_if_fail (backend == NULL || GK_IS_BACKEND (backend));

  gk_page_load_set_backend (&self->load, backend);
}

gboolean
gk_audit_page_get_loading (GkAuditPage *self)
{
  g_return_val_if_fail (GK_IS_AUDIT_PAGE (self), FALSE);

  return self->load.loading;
}
