/* gk-rotations-page.c: the rotation history and its totals.
 *
 * Rotations are rare (one per key taken out of service), so the newest
 * HISTORY_LIMIT rows are read in one query, in a worker thread, into a
 * GListStore of small row objects.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-adaptive.h"
#include "gk-export-button.h"
#include "gk-page-load.h"
#include "gk-rotations-page.h"
#include "gk-usage-model.h"

#define HISTORY_LIMIT 1000
/* The days the page looks back for rotation spikes. */
#define SPIKE_DAYS    7

/* Row objects: the cell texts, formatted once. */

#define GK_TYPE_ROTATION_ITEM (gk_rotation_item_get_type ())
G_DECLARE_FINAL_TYPE (GkRotationItem, gk_rotation_item, GK, ROTATION_ITEM, GObject)

enum {
  ITEM_PROP_0,
  ITEM_PROP_TIME,
  ITEM_PROP_FROM,
  ITEM_PROP_TO,
  ITEM_PROP_REASON,
  ITEM_PROP_TRIGGER,
  ITEM_PROP_TIME_FULL,
  ITEM_N_PROPS
};

struct _GkRotationItem
{
  GObject  parent_instance;
  char    *texts[ITEM_N_PROPS];
};

G_DEFINE_FINAL_TYPE (GkRotationItem, gk_rotation_item, G_TYPE_OBJECT)

static void
gk_rotation_item_get_property (GObject    *object,
                               guint       prop_id,
                               GValue     *value,
                               GParamSpec *pspec)
{
  GkRotationItem *self = GK_ROTATION_ITEM (object);

  if (prop_id > ITEM_PROP_0 && prop_id < ITEM_N_PROPS)
    g_value_set_string (value, self->texts[prop_id]);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
}

static void
gk_rotation_item_finalize (GObject *object)
{
  GkRotationItem *self = GK_ROTATION_ITEM (object);

  for (guint i = 0; i < ITEM_N_PROPS; i++)
    g_free (self->texts[i]);

  G_OBJECT_CLASS (gk_rotation_item_parent_class)->finalize (object);
}

static void
gk_rotation_item_class_init (GkRotationItemClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  static const char * const names[] = { NULL, "time", "from", "to", "reason", "trigger", "time-full" };

  object_class->finalize = gk_rotation_item_finalize;
  object_class->get_property = gk_rotation_item_get_property;

  for (guint i = ITEM_PROP_TIME; i < ITEM_N_PROPS; i++)
    g_object_class_install_property (object_class, i,
                                     g_param_spec_string (names[i], NULL, NULL, NULL,
                                                          G_PARAM_READABLE |
                                                          G_PARAM_STATIC_STRINGS));
}

static void
gk_rotation_item_init (GkRotationItem *self)
{
}

static GkRotationItem *
gk_rotation_item_new (const GkRotationRow *row)
{
  GkRotationItem *self = g_object_new (GK_TYPE_ROTATION_ITEM, NULL);

  self->texts[ITEM_PROP_TIME] = gk_format_date (row->created_at);
  self->texts[ITEM_PROP_TIME_FULL] = gk_format_date_full (row->created_at);
  self->texts[ITEM_PROP_FROM] = g_strdup (row->from_key_name != NULL ? row->from_key_name : "");
  self->texts[ITEM_PROP_TO] = g_strdup (row->to_key_name != NULL ? row->to_key_name
                                                                 : C_("rotation target", "None"));
  self->texts[ITEM_PROP_REASON] = gk_rotation_reason_label_full (row);
  self->texts[ITEM_PROP_TRIGGER] = gk_rotation_trigger_label (row->triggered_by);
  return self;
}

/* The page */

struct _GkRotationsPage
{
  AdwBin          parent_instance;

  GtkLabel       *all_label;
  GtkLabel       *manual_label;
  GtkLabel       *automatic_label;
  GtkStack       *stack;
  AdwStatusPage  *empty_status;
  GtkColumnView  *column_view;
  GtkLabel       *spikes_label;
  GtkListView    *narrow_list;   /* the same rows in narrow windows */

  GListStore     *store;
  GkPageLoad      load;
};

G_DEFINE_FINAL_TYPE (GkRotationsPage, gk_rotations_page, ADW_TYPE_BIN)

enum {
  PROP_0,
  PROP_LOADING,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static gboolean
export_job_run (gpointer           db,
                GkExportFormat     format,
                const char        *path,
                GkExportProgress   progress,
                gpointer           progress_data,
                GCancellable      *cancellable,
                guint64           *n_rows,
                GError           **error)
{
  return gk_export_rotations (db, format, path, cancellable, n_rows, error);
}

static void
export_cb (GkRotationsPage *self,
           int              format,
           const char      *path,
           GkExportButton  *button)
{
  GkDatabase *db = self->load.backend != NULL ? gk_backend_get_database (self->load.backend)
                                              : NULL;

  if (db != NULL)
    gk_export_button_run (button, format, path, export_job_run, g_object_ref (db),
                          g_object_unref);
}

typedef struct
{
  GPtrArray *rows;       /* GkRotationRow */
  GPtrArray *spikes;     /* GkRotationSpike of the last days */
  gint64     all;
  gint64     manual;
  gint64     automatic;
} LoadResult;

static void
load_result_free (LoadResult *result)
{
  g_clear_pointer (&result->rows, g_ptr_array_unref);
  g_clear_pointer (&result->spikes, g_ptr_array_unref);
  g_free (result);
}

static void
load_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  GkDatabase *db = task_data;
  LoadResult *result = g_new0 (LoadResult, 1);
  GError *error = NULL;

  result->rows = gk_stats_rotation_logs (db, HISTORY_LIMIT, &error);
  if (result->rows != NULL)
    result->spikes = gk_insights_rotation_spikes (db, gk_database_now (db) - SPIKE_DAYS * 86400,
                                                  0, &error);
  if (result->spikes == NULL
      || !gk_stats_rotation_totals (db, &result->all, &result->manual, &result->automatic,
                                    &error))
    {
      load_result_free (result);
      g_task_return_error (task, error);
      return;
    }
  g_task_return_pointer (task, result, (GDestroyNotify) load_result_free);
}

static void
set_count (GtkLabel *label,
           gint64    count)
{
  g_autofree char *text = gk_format_count (count);

  gtk_label_set_label (label, text);
}

/* The latest spike, said in a sentence, with how many there were. */
static void
show_spikes (GkRotationsPage *self,
             GPtrArray       *spikes)
{
  const GkRotationSpike *spike;
  g_autofree char *when = NULL;
  g_autofree char *count = NULL;
  g_autofree char *text = NULL;

  gtk_widget_set_visible (GTK_WIDGET (self->spikes_label), spikes->len > 0);
  if (spikes->len == 0)
    return;
  spike = g_ptr_array_index (spikes, spikes->len - 1);
  when = gk_format_date (spike->hour_start);
  count = gk_format_count (spike->rotations);
  text = spike->key_id != 0
         /* Translators: "Rotation spike: alpha was rotated 12 times in the hour from Today
          * 14:00, mostly Cooling down." */
         ? g_strdup_printf (_("Rotation spike: %s was rotated %s times in the hour from %s, "
                              "mostly %s."),
                            spike->key_name, count, when,
                            gk_rotation_reason_label (spike->dominant_reason))
         : g_strdup_printf (_("Rotation spike: keys were rotated %s times in the hour from %s, "
                              "mostly %s."),
                            count, when,
                            gk_rotation_reason_label (spike->dominant_reason));
  gtk_label_set_label (self->spikes_label, text);
}

static void
load_cb (GObject      *object,
         GAsyncResult *res,
         gpointer      user_data)
{
  GkRotationsPage *self = GK_ROTATIONS_PAGE (object);
  LoadResult *result;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) items = NULL;

  result = g_task_propagate_pointer (G_TASK (res), &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  gk_page_load_set_loading (&self->load, FALSE);
  if (result == NULL)
    {
      adw_status_page_set_title (self->empty_status, _("Could Not Read the Rotations"));
      adw_status_page_set_description (self->empty_status, error->message);
      gtk_stack_set_visible_child_name (self->stack, "empty");
      return;
    }

  show_spikes (self, result->spikes);
  set_count (self->all_label, result->all);
  set_count (self->manual_label, result->manual);
  set_count (self->automatic_label, result->automatic);

  items = g_ptr_array_new_full (result->rows->len, g_object_unref);
  for (guint i = 0; i < result->rows->len; i++)
    g_ptr_array_add (items, gk_rotation_item_new (g_ptr_array_index (result->rows, i)));
  g_list_store_splice (self->store, 0, g_list_model_get_n_items (G_LIST_MODEL (self->store)),
                       items->pdata, items->len);

  gtk_stack_set_visible_child_name (self->stack, items->len > 0 ? "list" : "empty");
  load_result_free (result);
}

static void
reload (gpointer page)
{
  GkRotationsPage *self = page;

  gk_page_load_list (&self->load, G_LIST_MODEL (self->store), self->stack, load_cb, load_thread);
}

static void
gk_rotations_page_dispose (GObject *object)
{
  GkRotationsPage *self = GK_ROTATIONS_PAGE (object);

  gk_page_load_dispose (&self->load);
  gk_page_dispose_template (ADW_BIN (self), GK_TYPE_ROTATIONS_PAGE);
  g_clear_object (&self->store);

  G_OBJECT_CLASS (gk_rotations_page_parent_class)->dispose (object);
}

static void
gk_rotations_page_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  GkRotationsPage *self = GK_ROTATIONS_PAGE (object);

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
gk_rotations_page_class_init (GkRotationsPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_rotations_page_dispose;
  object_class->get_property = gk_rotations_page_get_property;

  properties[PROP_LOADING] =
    g_param_spec_boolean ("loading", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /* The column factories look the item type up by name. */
  g_type_ensure (GK_TYPE_ROTATION_ITEM);
  g_type_ensure (GK_TYPE_EXPORT_BUTTON);
  g_type_ensure (GK_TYPE_ADAPTIVE);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/geminikeys/GeminiKeys/ui/gk-rotations-page.ui");
  gtk_widget_class_bind_template_child (widget_class, GkRotationsPage, all_label);
  gtk_widget_class_bind_template_child (widget_class, GkRotationsPage, manual_label);
  gtk_widget_class_bind_template_child (widget_class, GkRotationsPage, automatic_label);
  gtk_widget_class_bind_template_child (widget_class, GkRotationsPage, stack);
  gtk_widget_class_bind_template_child (widget_class, GkRotationsPage, empty_status);
  gtk_widget_class_bind_template_child (widget_class, GkRotationsPage, column_view);
  gtk_widget_class_bind_template_child (widget_class, GkRotationsPage, spikes_label);
  gtk_widget_class_bind_template_child (widget_class, GkRotationsPage, narrow_list);
  gtk_widget_class_bind_template_callback (widget_class, export_cb);
}

static void
gk_rotations_page_init (GkRotationsPage *self)
{
  g_autoptr(GtkNoSelection) selection = NULL;

  gk_page_load_init (&self->load, GTK_WIDGET (self), properties[PROP_LOADING], reload, FALSE);
  gtk_widget_init_template (GTK_WIDGET (self));

  self->store = g_list_store_new (GK_TYPE_ROTATION_ITEM);
  selection = gtk_no_selection_new (g_object_ref (G_LIST_MODEL (self->store)));
  gtk_column_view_set_model (self->column_view, GTK_SELECTION_MODEL (selection));
  gtk_list_view_set_model (self->narrow_list, GTK_SELECTION_MODEL (selection));
  gtk_stack_set_visible_child_name (self->stack, "empty");
}

/* Public API */

GtkWidget *
gk_rotations_page_new (void)
{
  return g_object_new (GK_TYPE_ROTATIONS_PAGE, NULL);
}

void
gk_rotations_page_set_backend (GkRotationsPage *self,
                               GkBackend       *backend)
{
  g_return_if_fail (GK_IS_ROTATIONS_PAGE (self));
  g_return_if_fail (backend == NULL || GK_IS_BACKEND (backend));

  gk_page_load_set_backend (&self->load, backend);
}

gboolean
gk_rotations_page_get_loading (GkRotationsPage *self)
{
  g_return_val_if_fail (GK_IS_ROTATIONS_PAGE (self), FALSE);

  return self->load.loading;
}

/**
 * gk_rotation_reason_label_full:
 *
 * The reason of @row, marked when it lies in a rotation spike.
 */
char *
gk_rotation_reason_label_full (const GkRotationRow *row)
{
  if (row->in_spike)
    /* Translators: the reason of a rotation in an hour with unusually many. */
    return g_strdup_printf (_("%s (spike)"), gk_rotation_reason_label (row->reason));
  return g_strdup (gk_rotation_reason_label (row->reason));
}

const char *
gk_rotation_reason_label (GkRotationReason reason)
{
  /* The badge's words: the state the rotation left the key in. */
  return gk_key_state_get_label (gk_rotation_reason_get_state (reason));
}

char *
gk_rotation_trigger_label (const char *triggered_by)
{
  if (triggered_by == NULL || g_str_equal (triggered_by, "auto"))
    return g_strdup (C_("rotation trigger", "Automatic"));
  if (g_str_has_prefix (triggered_by, "manual:") && triggered_by[7] != '\0')
    /* Translators: a rotation made by hand; %s is who made it. */
    return g_strdup_printf (C_("rotation trigger", "Manual (%s)"), triggered_by + 7);
  if (g_str_has_prefix (triggered_by, "manual"))
    return g_strdup (C_("rotation trigger", "Manual"));
  return g_strdup (triggered_by);
}
