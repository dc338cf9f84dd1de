/* gk-usage-page.c: the usage log over a period, filtered by key, result,
 * model and user, the list limited to the newest N.
 *
 * The table is a GkUsageModel (lazy, paged); the summary and the key list
 * are read in worker threads. The summary covers every request of the
 * period and filters (from the rollup), not only the rows the list shows. The key names need the key store, which
 * exists only once the master key is unlocked; until then the filter
 * offers "All keys" alone.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-adaptive.h"
#include "gk-export-button.h"
#include "gk-page-load.h"
#include "gk-usage-model.h"
#include "gk-usage-page.h"

static const guint limits[] = { 10, 50, 100, 500 };

/* The period drop-down's items. */
enum
{
  PERIOD_TODAY,
  PERIOD_WEEK,
  PERIOD_MONTH,
  PERIOD_ALL,
  PERIOD_CUSTOM,
};

struct _GkUsagePage
{
  AdwBin          parent_instance;

  GtkDropDown    *key_dropdown;
  GtkStringList  *key_names;
  GtkDropDown    *limit_dropdown;
  GtkDropDown    *period_dropdown;
  GtkMenuButton  *range_button;
  GtkCalendar    *from_calendar;
  GtkCalendar    *to_calendar;
  GtkDropDown    *status_dropdown;
  GtkEditable    *model_entry;
  GtkEditable    *user_entry;
  GtkLabel       *requests_label;
  GtkLabel       *success_label;
  GtkLabel       *failed_label;
  GtkLabel       *cost_label;
  GtkStack       *stack;
  AdwStatusPage  *empty_status;
  GtkColumnView  *column_view;
  GtkListView    *narrow_list;   /* the same rows in narrow windows */

  GkBackend      *backend;
  GkUsageModel   *model;
  GArray         *key_ids;        /* gint64, parallel to key_names; 0 = all */
  GCancellable   *cancellable;    /* summary and key list */
  guint           pending;
  gboolean        updating_keys;
};

G_DEFINE_FINAL_TYPE (GkUsagePage, gk_usage_page, ADW_TYPE_BIN)

enum {
  PROP_0,
  PROP_LOADING,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void reload (GkUsagePage *self);

static void
pending_add (GkUsagePage *self,
             int          delta)
{
  gboolean was_loading = gk_usage_page_get_loading (self);

  self->pending += delta;
  if (was_loading != gk_usage_page_get_loading (self))
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LOADING]);
}

static gint64
selected_key_id (GkUsagePage *self)
{
  guint selected = gtk_drop_down_get_selected (self->key_dropdown);

  if (selected == GTK_INVALID_LIST_POSITION || selected >= self->key_ids->len)
    return 0;
  return g_array_index (self->key_ids, gint64, selected);
}

static guint
selected_limit (GkUsagePage *self)
{
  guint selected = gtk_drop_down_get_selected (self->limit_dropdown);

  return selected < G_N_ELEMENTS (limits) ? limits[selected] : limits[1];
}

/* Local midnight of @calendar's day, @days_after days later. */
static gint64
calendar_midnight (GtkCalendar *calendar,
                   int          days_after)
{
  g_autoptr(GDateTime) date = gtk_calendar_get_date (calendar);
  g_autoptr(GDateTime) noon = g_date_time_new_local (g_date_time_get_year (date),
                                                     g_date_time_get_month (date),
                                                     g_date_time_get_day_of_month (date),
                                                     12, 0, 0);
  g_autoptr(GDateTime) later = g_date_time_add_days (noon, days_after);
  g_autoptr(GDateTime) midnight = g_date_time_new_local (g_date_time_get_year (later),
                                                         g_date_time_get_month (later),
                                                         g_date_time_get_day_of_month (later),
                                                         0, 0, 0);

  return g_date_time_to_unix (midnight);
}

static const char *
entry_value (GtkEditable *entry,
             char       **owned)
{
  *owned = g_strstrip (g_strdup (gtk_editable_get_text (entry)));
  return **owned != '\0' ? *owned : NULL;
}

/* The period and filters the widgets show. Days are local: "Today"
 * starts at local midnight. The strings are @model and @user, owned by
 * the caller. */
static void
selected_filter (GkUsagePage   *self,
                 GkUsageFilter *filter,
                 char         **model,
                 char         **user)
{
  GkDatabase *db = self->backend != NULL ? gk_backend_get_database (self->backend) : NULL;
  gint64 now = db != NULL ? gk_clock_now (gk_database_get_clock (db)) : g_get_real_time () / G_USEC_PER_SEC;
  gint64 tomorrow = gk_stats_local_midnight (NULL, now + 86400, 0);
  guint status = gtk_drop_down_get_selected (self->status_dropdown);

  *filter = (GkUsageFilter) GK_USAGE_FILTER_INIT;
  filter->key_id = selected_key_id (self);
  switch (gtk_drop_down_get_selected (self->period_dropdown))
    {
    case PERIOD_TODAY:
      filter->since = gk_stats_local_midnight (NULL, now, 0);
      filter->until = tomorrow;
      break;
    case PERIOD_WEEK:
      filter->since = gk_stats_local_midnight (NULL, now, 6);
      filter->until = tomorrow;
      break;
    case PERIOD_MONTH:
      filter->since = gk_stats_local_midnight (NULL, now, 29);
      filter->until = tomorrow;
      break;
    case PERIOD_CUSTOM:
      {
        gint64 a = calendar_midnight (self->from_calendar, 0);
        gint64 b = calendar_midnight (self->to_calendar, 0);

        /* Either way round, both days included. */
        filter->since = MIN (a, b);
        filter->until = a <= b ? calendar_midnight (self->to_calendar, 1)
                               : calendar_midnight (self->from_calendar, 1);
      }
      break;
    default:
      break;
    }
  if (status >= 1 && status <= GK_USAGE_ERROR + 1)
    filter->status = (int) status - 1;
  filter->model = entry_value (self->model_entry, model);
  filter->user_id = entry_value (self->user_entry, user);
}

/* A copy of the current filter that owns its strings. */
static GkUsageFilter *
current_filter (GkUsagePage *self)
{
  GkUsageFilter filter;
  g_autofree char *model = NULL;
  g_autofree char *user = NULL;

  selected_filter (self, &filter, &model, &user);
  return gk_usage_filter_copy (&filter);
}

static void
update_range_label (GkUsagePage *self)
{
  g_autoptr(GkUsageFilter) filter = current_filter (self);
  gboolean custom = gtk_drop_down_get_selected (self->period_dropdown) == PERIOD_CUSTOM;

  gtk_widget_set_visible (GTK_WIDGET (self->range_button), custom);
  if (custom)
    {
      g_autoptr(GDateTime) from = g_date_time_new_from_unix_local (filter->since);
      g_autoptr(GDateTime) to = g_date_time_new_from_unix_local (filter->until - 1);
      g_autofree char *a = g_date_time_format (from, "%x");
      g_autofree char *b = g_date_time_format (to, "%x");
      /* Translators: a range of days, "first – last". */
      g_autofree char *label = g_strdup_printf (_("%s – %s"), a, b);

      gtk_menu_button_set_label (self->range_button, label);
    }
}

static void
update_stack (GkUsagePage *self)
{
  const char *name;

  if (self->model != NULL && g_list_model_get_n_items (G_LIST_MODEL (self->model)) > 0)
    name = "list";
  /* Not "No Requests Yet" before the log has been counted. */
  else if (self->model != NULL && gk_usage_model_get_loading (self->model))
    name = "loading";
  else
    name = "empty";
  gtk_stack_set_visible_child_name (self->stack, name);
}

/* The summary */

typedef struct
{
  GkDatabase    *db;
  GkUsageFilter *filter;
  GkUsageSummary summary;
} SummaryData;

static void
summary_data_free (SummaryData *data)
{
  g_clear_object (&data->db);
  g_clear_pointer (&data->filter, gk_usage_filter_free);
  g_free (data);
}

static void
summary_thread (GTask        *task,
                gpointer      source_object,
                gpointer      task_data,
                GCancellable *cancellable)
{
  SummaryData *data = task_data;
  GError *error = NULL;

  if (gk_stats_usage_filter_summary (data->db, data->filter, &data->summary, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static void
set_label_take (GtkLabel *label,
                char     *text)
{
  gtk_label_set_label (label, text);
  g_free (text);
}

static void
summary_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  GkUsagePage *self = GK_USAGE_PAGE (object);
  SummaryData *data = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;
      adw_status_page_set_title (self->empty_status, _("Could Not Read the Usage Log"));
      adw_status_page_set_description (self->empty_status, error->message);
      gtk_stack_set_visible_child_name (self->stack, "empty");
      pending_add (self, -1);
      return;
    }

  /* An answer for a filter since changed; the newer one is on its way. */
  {
    g_autoptr(GkUsageFilter) filter = current_filter (self);

    if (!gk_usage_filter_equal (data->filter, filter))
      {
        pending_add (self, -1);
        return;
      }
  }

  set_label_take (self->requests_label, gk_format_count (data->summary.requests));
  set_label_take (self->success_label, gk_format_count (data->summary.successes));
  set_label_take (self->failed_label, gk_format_count (data->summary.failures));
  set_label_take (self->cost_label, gk_format_money (data->summary.cost_usd));
  pending_add (self, -1);
}

/* The key list */

typedef struct
{
  GkKeyStore *store;
  GPtrArray  *keys;     /* GkKey */
} KeysData;

static void
keys_data_free (KeysData *data)
{
  g_clear_object (&data->store);
  g_clear_pointer (&data->keys, g_ptr_array_unref);
  g_free (data);
}

static void
keys_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  KeysData *data = task_data;
  GError *error = NULL;

  data->keys = gk_key_store_list (data->store, &error);
  if (data->keys == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

static void
set_keys (GkUsagePage *self,
          GPtrArray   *keys)
{
  gint64 selected = selected_key_id (self);
  guint position = 0;
  g_autoptr(GPtrArray) names = g_ptr_array_new ();

  g_array_set_size (self->key_ids, 1);
  g_ptr_array_add (names, (gpointer) _("All keys"));
  for (guint i = 0; keys != NULL && i < keys->len; i++)
    {
      GkKey *key = g_ptr_array_index (keys, i);

      g_array_append_val (self->key_ids, key->id);
      g_ptr_array_add (names, key->name);
      if (key->id == selected)
        position = i + 1;
    }
  g_ptr_array_add (names, NULL);

  /* Replacing the names moves the selection; it is put back below, and
   * the filter is not reloaded in between. */
  self->updating_keys = TRUE;
  gtk_string_list_splice (self->key_names, 0,
                          g_list_model_get_n_items (G_LIST_MODEL (self->key_names)),
                          (const char * const *) names->pdata);
  gtk_drop_down_set_selected (self->key_dropdown, position);
  self->updating_keys = FALSE;

  /* The selected key was deleted: show every key's rows again. */
  if (selected != selected_key_id (self))
    reload (self);
}

static void
keys_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  GkUsagePage *self = GK_USAGE_PAGE (object);
  KeysData *data = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;
      g_warning ("Could not list the keys: %s", error->message);
    }
  else
    {
      set_keys (self, data->keys);
    }
  pending_add (self, -1);
}

/* Loading */

static GTask *
task_new (GkUsagePage         *self,
          gpointer             data,
          GDestroyNotify       data_free,
          GAsyncReadyCallback  callback,
          gpointer             tag)
{
  GTask *task = g_task_new (self, self->cancellable, callback, NULL);

  g_task_set_source_tag (task, tag);
  g_task_set_task_data (task, data, data_free);
  pending_add (self, 1);
  return task;
}

static void
load_keys (GkUsagePage *self)
{
  GkKeyStore *store = gk_backend_get_key_store (self->backend);
  g_autoptr(GTask) task = NULL;
  KeysData *data;

  if (store == NULL)
    {
      set_keys (self, NULL);
      return;
    }

  data = g_new0 (KeysData, 1);
  data->store = g_object_ref (store);
  task = task_new (self, data, (GDestroyNotify) keys_data_free, keys_cb, load_keys);
  g_task_run_in_thread (task, keys_thread);
}

static void
load_summary (GkUsagePage *self)
{
  g_autoptr(GTask) task = NULL;
  SummaryData *data;

  data = g_new0 (SummaryData, 1);
  data->db = g_object_ref (gk_backend_get_database (self->backend));
  data->filter = current_filter (self);
  task = task_new (self, data, (GDestroyNotify) summary_data_free, summary_cb, load_summary);
  g_task_run_in_thread (task, summary_thread);
}

static void
model_items_changed_cb (GkUsagePage *self)
{
  update_stack (self);
}

static void
model_loading_cb (GkUsagePage *self)
{
  update_stack (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LOADING]);
}

static void
ensure_model (GkUsagePage *self)
{
  GkDatabase *db = gk_backend_get_database (self->backend);
  g_autoptr(GtkNoSelection) selection = NULL;

  if (self->model != NULL)
    return;

  self->model = gk_usage_model_new (db);
  {
    g_autoptr(GkUsageFilter) filter = current_filter (self);

    gk_usage_model_set_filter (self->model, filter, selected_limit (self));
  }
  g_signal_connect_swapped (self->model, "items-changed",
                            G_CALLBACK (model_items_changed_cb), self);
  g_signal_connect_swapped (self->model, "notify::loading",
                            G_CALLBACK (model_loading_cb), self);
  selection = gtk_no_selection_new (g_object_ref (G_LIST_MODEL (self->model)));
  gtk_column_view_set_model (self->column_view, GTK_SELECTION_MODEL (selection));
  gtk_list_view_set_model (self->narrow_list, GTK_SELECTION_MODEL (selection));
}

static void
drop_model (GkUsagePage *self)
{
  gtk_column_view_set_model (self->column_view, NULL);
  gtk_list_view_set_model (self->narrow_list, NULL);
  if (self->model != NULL)
    g_signal_handlers_disconnect_by_data (self->model, self);
  g_clear_object (&self->model);
}

/* The filter changed (or the data): the table and the summary again. */
static void
reload (GkUsagePage *self)
{
  g_autoptr(GkUsageFilter) filter = NULL;

  update_range_label (self);
  if (self->backend == NULL || gk_backend_get_database (self->backend) == NULL)
    return;

  filter = current_filter (self);
  if (self->model == NULL)
    ensure_model (self);
  else if (gk_usage_filter_equal (gk_usage_model_get_filter (self->model), filter)
           && gk_usage_model_get_limit (self->model) == selected_limit (self))
    gk_usage_model_reload (self->model);
  else
    gk_usage_model_set_filter (self->model, filter, selected_limit (self));
  load_summary (self);
}

/* Everything, as when the backend says the data changed. */
static void
reload_all (GkUsagePage *self)
{
  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  self->cancellable = g_cancellable_new ();
  /* Cancelled tasks still complete, but without touching the counter. */
  if (self->pending > 0)
    {
      self->pending = 0;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LOADING]);
    }

  if (self->backend == NULL || gk_backend_get_database (self->backend) == NULL)
    return;

  load_keys (self);
  reload (self);
}

/* Signal callbacks */

static void
filter_changed_cb (GkUsagePage *self)
{
  if (self->updating_keys || self->backend == NULL)
    return;
  reload (self);
}

static void
backend_changed_cb (GkUsagePage *self)
{
  reload_all (self);
}

/* Export: the period and filters shown, from the database. */

typedef struct
{
  GkDatabase    *db;
  GkUsageFilter *filter;
} ExportJob;

static void
export_job_free (ExportJob *job)
{
  g_clear_object (&job->db);
  g_clear_pointer (&job->filter, gk_usage_filter_free);
  g_free (job);
}

static gboolean
export_job_run (gpointer           data,
                GkExportFormat     format,
                const char        *path,
                GkExportProgress   progress,
                gpointer           progress_data,
                GCancellable      *cancellable,
                guint64           *n_rows,
                GError           **error)
{
  ExportJob *job = data;

  return gk_export_usage (job->db, job->filter, format, path, progress, progress_data,
                          cancellable, n_rows, error);
}

static void
export_cb (GkUsagePage    *self,
           int             format,
           const char     *path,
           GkExportButton *button)
{
  ExportJob *job;

  if (self->backend == NULL || gk_backend_get_database (self->backend) == NULL)
    return;
  job = g_new0 (ExportJob, 1);
  job->db = g_object_ref (gk_backend_get_database (self->backend));
  job->filter = current_filter (self);
  gk_export_button_run (button, format, path, export_job_run, job,
                        (GDestroyNotify) export_job_free);
}

/* Overrides */

static void
gk_usage_page_dispose (GObject *object)
{
  GkUsagePage *self = GK_USAGE_PAGE (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  gk_backend_set_watched (&self->backend, NULL, NULL, self);
  drop_model (self);
  gk_page_dispose_template (ADW_BIN (self), GK_TYPE_USAGE_PAGE);

  G_OBJECT_CLASS (gk_usage_page_parent_class)->dispose (object);
}

static void
gk_usage_page_finalize (GObject *object)
{
  GkUsagePage *self = GK_USAGE_PAGE (object);

  g_clear_pointer (&self->key_ids, g_array_unref);

  G_OBJECT_CLASS (gk_usage_page_parent_class)->finalize (object);
}

static void
gk_usage_page_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  GkUsagePage *self = GK_USAGE_PAGE (object);

  switch (prop_id)
    {
    case PROP_LOADING:
      g_value_set_boolean (value, gk_usage_page_get_loading (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gk_usage_page_class_init (GkUsagePageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_usage_page_dispose;
  object_class->finalize = gk_usage_page_finalize;
  object_class->get_property = gk_usage_page_get_property;

  properties[PROP_LOADING] =
    g_param_spec_boolean ("loading", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /* The column factories look the item type up by name. */
  g_type_ensure (GK_TYPE_USAGE_ITEM);
  g_type_ensure (GK_TYPE_EXPORT_BUTTON);
  g_type_ensure (GK_TYPE_ADAPTIVE);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/geminikeys/GeminiKeys/ui/gk-usage-page.ui");
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, key_dropdown);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, key_names);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, limit_dropdown);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, period_dropdown);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, range_button);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, from_calendar);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, to_calendar);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, status_dropdown);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, model_entry);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, user_entry);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, requests_label);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, success_label);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, failed_label);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, cost_label);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, stack);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, empty_status);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, column_view);
  gtk_widget_class_bind_template_child (widget_class, GkUsagePage, narrow_list);
  gtk_widget_class_bind_template_callback (widget_class, filter_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, export_cb);
}

static void
gk_usage_page_init (GkUsagePage *self)
{
  self->key_ids = g_array_new (FALSE, TRUE, sizeof (gint64));
  self->cancellable = g_cancellable_new ();

  gtk_widget_init_template (GTK_WIDGET (self));
  set_keys (self, NULL);
  update_stack (self);
}

/* Public API */

/* For the export: the period and filters shown (a copy). */
GkUsageFilter *
gk_usage_page_get_filter (GkUsagePage *self)
{
  g_return_val_if_fail (GK_IS_USAGE_PAGE (self), NULL);

  return current_filter (self);
}

GtkWidget *
gk_usage_page_new (void)
{
  return g_object_new (GK_TYPE_USAGE_PAGE, NULL);
}

void
gk_usage_page_set_backend (GkUsagePage *self,
                           GkBackend   *backend)
{
  g_return_if_fail (GK_IS_USAGE_PAGE (self));
  g_return_if_fail (backend == NULL || GK_IS_BACKEND (backend));

  if (!gk_backend_set_watched (&self->backend, backend, G_CALLBACK (backend_changed_cb), self))
    return;

  drop_model (self);
  reload_all (self);
  update_stack (self);
}

void
gk_usage_page_focus_filter (GkUsagePage *self)
{
  g_return_if_fail (GK_IS_USAGE_PAGE (self));

  gtk_widget_grab_focus (GTK_WIDGET (self->key_dropdown));
}

void
gk_usage_page_set_filter (GkUsagePage *self,
                          gint64       key_id,
                          guint        limit)
{
  g_return_if_fail (GK_IS_USAGE_PAGE (self));

  for (guint i = 0; i < self->key_ids->len; i++)
    if (g_array_index (self->key_ids, gint64, i) == key_id)
      gtk_drop_down_set_selected (self->key_dropdown, i);
  for (guint i = 0; i < G_N_ELEMENTS (limits); i++)
    if (limits[i] == limit)
      gtk_drop_down_set_selected (self->limit_dropdown, i);
}

GListModel *
gk_usage_page_get_model (GkUsagePage *self)
{
  g_return_val_if_fail (GK_IS_USAGE_PAGE (self), NULL);

  return self->model != NULL ? G_LIST_MODEL (self->model) : NULL;
}

gboolean
gk_usage_page_get_loading (GkUsagePage *self)
{
  g_return_val_if_fail (GK_IS_USAGE_PAGE (self), FALSE);

  return self->pending > 0 || (self->model != NULL && gk_usage_model_get_loading (self->model));
}
