/* gk-usage-model.c: a lazy GListModel over the usage log.
 *
 * The rows are split into pages of GK_USAGE_MODEL_PAGE_SIZE. get_item()
 * creates the item objects of a page on first use, as placeholders, and
 * fetches the page's rows in a worker thread; when they arrive each item
 * takes its row and notifies its properties, which the view's expressions
 * watch. At most GK_USAGE_MODEL_MAX_PAGES pages are kept (least recently
 * used first out): the view holds its own references to the items it
 * shows, so an evicted page only costs a fetch if it is needed again.
 *
 * A "generation" counter ties each count to the filter it was made for,
 * so the answer to a count for an older filter is dropped. Page fetches
 * need none: see "Page fetches" below.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>

#include "gk-usage-model.h"

/* Below a millionth of a dollar the digits stop meaning anything. */
#define MAX_MONEY_DECIMALS 8
/* Amounts under this many dollars show two significant digits. */
#define SIGNIFICANT_BELOW  0.1

/* Items */

struct _GkUsageItem
{
  GObject     parent_instance;
  GkUsageRow *row;
};

G_DEFINE_FINAL_TYPE (GkUsageItem, gk_usage_item, G_TYPE_OBJECT)

enum {
  ITEM_PROP_0,
  ITEM_PROP_LOADED,
  ITEM_PROP_TIME,
  ITEM_PROP_KEY,
  ITEM_PROP_MODEL,
  ITEM_PROP_TOKENS,
  ITEM_PROP_COST,
  ITEM_PROP_STATUS,
  ITEM_PROP_USER,
  ITEM_PROP_TIME_FULL,
  ITEM_N_PROPS
};

static GParamSpec *item_properties[ITEM_N_PROPS];

static char *
item_text (GkUsageItem *self,
           guint        prop_id)
{
  const GkUsageRow *row = self->row;

  if (row == NULL)
    return NULL;

  switch (prop_id)
    {
    case ITEM_PROP_TIME:
      return gk_format_date (row->created_at);
    case ITEM_PROP_KEY:
      return g_strdup (row->key_name != NULL ? row->key_name : "");
    case ITEM_PROP_MODEL:
      return g_strdup (row->model != NULL ? row->model : "");
    case ITEM_PROP_TOKENS:
      return gk_format_count (row->tokens_used);
    case ITEM_PROP_COST:
      /* Never a guess: an unknown model shows as unpriced, not as $0. */
      if (!row->priced)
        return g_strdup (C_("cost", "Unpriced"));
      return gk_format_money_per_request (row->cost_usd);
    case ITEM_PROP_STATUS:
      if (row->http_status > 0 && row->status != GK_USAGE_SUCCESS)
        return g_strdup_printf ("%s (%d)", gk_usage_status_label (row->status), row->http_status);
      return g_strdup (gk_usage_status_label (row->status));
    case ITEM_PROP_USER:
      return g_strdup (row->user_id != NULL ? row->user_id : "");
    case ITEM_PROP_TIME_FULL:
      return gk_format_date_full (row->created_at);
    default:
      g_assert_not_reached ();
    }
}

static void
gk_usage_item_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  GkUsageItem *self = GK_USAGE_ITEM (object);

  if (prop_id == ITEM_PROP_LOADED)
    g_value_set_boolean (value, self->row != NULL);
  else if (prop_id > ITEM_PROP_LOADED && prop_id < ITEM_N_PROPS)
    g_value_take_string (value, item_text (self, prop_id));
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
}

static void
gk_usage_item_finalize (GObject *object)
{
  GkUsageItem *self = GK_USAGE_ITEM (object);

  g_clear_pointer (&self->row, gk_usage_row_free);

  G_OBJECT_CLASS (gk_usage_item_parent_class)->finalize (object);
}

static void
gk_usage_item_class_init (GkUsageItemClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  static const char * const names[] = {
    NULL, "loaded", "time", "key", "model", "tokens", "cost", "status", "user", "time-full",
  };

  object_class->finalize = gk_usage_item_finalize;
  object_class->get_property = gk_usage_item_get_property;

  item_properties[ITEM_PROP_LOADED] =
    g_param_spec_boolean ("loaded", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  for (guint i = ITEM_PROP_TIME; i < ITEM_N_PROPS; i++)
    item_properties[i] = g_param_spec_string (names[i], NULL, NULL, NULL,
                                              G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY |
                                              G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, ITEM_N_PROPS, item_properties);
}

static void
gk_usage_item_init (GkUsageItem *self)
{
}

static void
gk_usage_item_take_row (GkUsageItem *self,
                        GkUsageRow  *row)
{
  g_clear_pointer (&self->row, gk_usage_row_free);
  self->row = row;

  g_object_freeze_notify (G_OBJECT (self));
  for (guint i = ITEM_PROP_LOADED; i < ITEM_N_PROPS; i++)
    g_object_notify_by_pspec (G_OBJECT (self), item_properties[i]);
  g_object_thaw_notify (G_OBJECT (self));
}

const GkUsageRow *
gk_usage_item_get_row (GkUsageItem *self)
{
  g_return_val_if_fail (GK_IS_USAGE_ITEM (self), NULL);

  return self->row;
}

/* The model */

typedef struct
{
  GPtrArray *items;       /* GkUsageItem */
} Page;

struct _GkUsageModel
{
  GObject       parent_instance;

  GkDatabase   *db;
  GkUsageFilter *filter;
  guint         limit;

  guint         n_items;
  gint64        total;        /* rows of the filter, limit aside; -1 = unknown */
  gint64        newest_id;    /* id at position 0, to tell new rows on reload */
  guint         generation;

  GHashTable   *pages;        /* page index → Page */
  GQueue        lru;          /* page indices, most recently used first */

  GCancellable *cancellable;
  guint         pending;
};

enum {
  PROP_0,
  PROP_LOADING,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void gk_usage_model_list_model_init (GListModelInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (GkUsageModel, gk_usage_model, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL,
                                                      gk_usage_model_list_model_init))

static void
page_free (Page *page)
{
  g_ptr_array_unref (page->items);
  g_free (page);
}

static void
pending_add (GkUsageModel *self,
             int           delta)
{
  gboolean was_loading = self->pending > 0;

  self->pending += delta;
  if (was_loading != (self->pending > 0))
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LOADING]);
}

static void
drop_pages (GkUsageModel *self)
{
  g_hash_table_remove_all (self->pages);
  g_queue_clear (&self->lru);
}

/* Page fetches
 *
 * A page's items are numbered as the log was when the page was made: its
 * total and newest row. Rows arriving later are only ever added at the
 * top, so a fetch that finds k more rows reads k further down, and the
 * items it fills are right whichever filter or generation is current by
 * then. That matters for the items a view still holds after new rows
 * were inserted above them (count_cb drops the pages, not the view's
 * items): a placeholder among them is filled all the same. */

/* Tries before a fetch settles for rows that moved while it read them. */
#define FETCH_ATTEMPTS 3

typedef struct
{
  GkDatabase *db;
  GPtrArray  *items;        /* GkUsageItem, the page's */
  GkUsageFilter *filter;
  guint       offset;
  guint       count;
  gint64      total;        /* the log as the items were numbered */
  gint64      newest_id;
} FetchData;

static gint64 row_id_at (GkDatabase  *db,
                         const GkUsageFilter *filter,
                         gint64       offset,
                         GError     **error);

static void
fetch_data_free (FetchData *data)
{
  g_clear_object (&data->db);
  g_clear_pointer (&data->items, g_ptr_array_unref);
  g_clear_pointer (&data->filter, gk_usage_filter_free);
  g_free (data);
}

static GPtrArray *
fetch_rows (FetchData  *data,
            GError    **error)
{
  g_autoptr(GPtrArray) rows = NULL;

  for (guint attempt = 0; attempt < FETCH_ATTEMPTS; attempt++)
    {
      gint64 newest = row_id_at (data->db, data->filter, 0, error);
      gint64 shift = 0;

      if (newest < 0)
        return NULL;
      /* (A page made while a new filter was being counted has no numbering
       * to keep; the count's answer replaces it anyway.) */
      if (newest != data->newest_id && data->total >= 0)
        {
          gint64 total = gk_stats_usage_query_count (data->db, data->filter, error);

          if (total < 0)
            return NULL;
          shift = MAX (0, total - data->total);
        }

      g_clear_pointer (&rows, g_ptr_array_unref);
      rows = gk_stats_usage_query (data->db, data->filter, data->count,
                                  (guint) MIN (G_MAXUINT, data->offset + shift), error);
      if (rows == NULL)
        return NULL;

      /* Nothing was added while the page was read: the shift held. */
      if (row_id_at (data->db, data->filter, 0, error) == newest)
        break;
    }
  return g_steal_pointer (&rows);
}

static void
fetch_thread (GTask        *task,
              gpointer      source_object,
              gpointer      task_data,
              GCancellable *cancellable)
{
  GError *error = NULL;
  GPtrArray *rows = fetch_rows (task_data, &error);

  if (rows == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, rows, (GDestroyNotify) g_ptr_array_unref);
}

static void
fetch_cb (GObject      *object,
          GAsyncResult *result,
          gpointer      user_data)
{
  GkUsageModel *self = GK_USAGE_MODEL (object);
  FetchData *data = g_task_get_task_data (G_TASK (result));
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GError) error = NULL;

  rows = g_task_propagate_pointer (G_TASK (result), &error);
  pending_add (self, -1);
  if (rows == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_warning ("Could not read the usage log: %s", error->message);
      return;
    }

  /* The log may have shrunk since it was counted; the rows missing stay
   * placeholders until the next reload fixes the count. */
  for (guint i = 0; i < rows->len && i < data->items->len; i++)
    gk_usage_item_take_row (g_ptr_array_index (data->items, i),
                            g_steal_pointer (&rows->pdata[i]));
}

static Page *
page_get (GkUsageModel *self,
          guint         page_index)
{
  Page *page = g_hash_table_lookup (self->pages, GUINT_TO_POINTER (page_index));
  guint offset = page_index * GK_USAGE_MODEL_PAGE_SIZE;
  guint count;
  g_autoptr(GTask) task = NULL;
  FetchData *data;

  if (page != NULL)
    {
      GList *link = g_queue_find (&self->lru, GUINT_TO_POINTER (page_index));

      g_queue_unlink (&self->lru, link);
      g_queue_push_head_link (&self->lru, link);
      return page;
    }

  count = MIN (GK_USAGE_MODEL_PAGE_SIZE, self->n_items - offset);
  page = g_new0 (Page, 1);
  page->items = g_ptr_array_new_full (count, g_object_unref);
  for (guint i = 0; i < count; i++)
    g_ptr_array_add (page->items, g_object_new (GK_TYPE_USAGE_ITEM, NULL));
  g_hash_table_insert (self->pages, GUINT_TO_POINTER (page_index), page);
  g_queue_push_head (&self->lru, GUINT_TO_POINTER (page_index));

  while (g_queue_get_length (&self->lru) > GK_USAGE_MODEL_MAX_PAGES)
    g_hash_table_remove (self->pages, g_queue_pop_tail (&self->lru));

  data = g_new0 (FetchData, 1);
  data->db = g_object_ref (self->db);
  data->items = g_ptr_array_ref (page->items);
  data->filter = gk_usage_filter_copy (self->filter);
  data->offset = offset;
  data->count = count;
  data->total = self->total;
  data->newest_id = self->newest_id;

  pending_add (self, 1);
  task = g_task_new (self, self->cancellable, fetch_cb, NULL);
  g_task_set_source_tag (task, page_get);
  g_task_set_task_data (task, data, (GDestroyNotify) fetch_data_free);
  g_task_run_in_thread (task, fetch_thread);

  return page;
}

/* Counting */

typedef struct
{
  GkDatabase *db;
  GkUsageFilter *filter;
  guint       generation;
  gint64      old_total;      /* -1: a new filter, nothing to compare */
  gint64      old_newest_id;
  /* Results */
  gint64      total;
  gint64      newest_id;
  gboolean    prepended;      /* the old rows are still there, below the new */
} CountData;

static void
count_data_free (CountData *data)
{
  g_clear_object (&data->db);
  g_clear_pointer (&data->filter, gk_usage_filter_free);
  g_free (data);
}

static gint64
row_id_at (GkDatabase *db,
           const GkUsageFilter *filter,
           gint64      offset,
           GError    **error)
{
  g_autoptr(GPtrArray) rows = NULL;

  rows = gk_stats_usage_query (db, filter, 1, (guint) MIN (G_MAXUINT, offset), error);
  if (rows == NULL)
    return -1;
  return rows->len > 0 ? ((GkUsageRow *) g_ptr_array_index (rows, 0))->id : 0;
}

static void
count_thread (GTask        *task,
              gpointer      source_object,
              gpointer      task_data,
              GCancellable *cancellable)
{
  CountData *data = task_data;
  GError *error = NULL;

  data->total = gk_stats_usage_query_count (data->db, data->filter, &error);
  if (data->total >= 0)
    data->newest_id = row_id_at (data->db, data->filter, 0, &error);
  /* Rows are only ever added at the top (newest first): when the row that
   * was first is now k rows down, the k rows above it are all that
   * changed. */
  if (error == NULL && data->old_total >= 0 && data->total >= data->old_total)
    {
      gint64 added = data->total - data->old_total;

      data->prepended = added == 0 ? data->newest_id == data->old_newest_id
                                   : row_id_at (data->db, data->filter, added, &error)
                                     == data->old_newest_id;
    }

  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

static void
count_cb (GObject      *object,
          GAsyncResult *result,
          gpointer      user_data)
{
  GkUsageModel *self = GK_USAGE_MODEL (object);
  CountData *data = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  guint old_n, new_n;

  pending_add (self, -1);
  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_warning ("Could not count the usage log: %s", error->message);
      return;
    }
  if (data->generation != self->generation)
    return;

  old_n = self->n_items;
  new_n = (guint) (self->limit > 0 ? MIN ((gint64) self->limit, data->total)
                                   : MIN ((gint64) G_MAXUINT, data->total));
  self->total = data->total;
  self->newest_id = data->newest_id;

  if (data->prepended)
    {
      guint added = (guint) (data->total - data->old_total);

      if (added == 0)
        return;

      /* Page boundaries moved with the rows; the view keeps the items it
       * holds, which are still right. */
      drop_pages (self);
      self->generation++;
      self->n_items = new_n;
      g_list_model_items_changed (G_LIST_MODEL (self), 0, 0, MIN (added, new_n));
      if (old_n + MIN (added, new_n) > new_n)
        g_list_model_items_changed (G_LIST_MODEL (self), new_n,
                                    old_n + MIN (added, new_n) - new_n, 0);
      return;
    }

  drop_pages (self);
  self->generation++;
  self->n_items = new_n;
  if (old_n > 0 || new_n > 0)
    g_list_model_items_changed (G_LIST_MODEL (self), 0, old_n, new_n);
}

static void
start_count (GkUsageModel *self,
             gboolean      same_filter)
{
  g_autoptr(GTask) task = NULL;
  CountData *data;

  data = g_new0 (CountData, 1);
  data->db = g_object_ref (self->db);
  data->filter = gk_usage_filter_copy (self->filter);
  data->generation = self->generation;
  data->old_total = same_filter ? self->total : -1;
  data->old_newest_id = self->newest_id;

  pending_add (self, 1);
  task = g_task_new (self, self->cancellable, count_cb, NULL);
  g_task_set_source_tag (task, start_count);
  g_task_set_task_data (task, data, (GDestroyNotify) count_data_free);
  g_task_run_in_thread (task, count_thread);
}

/* GListModel */

static GType
gk_usage_model_get_item_type (GListModel *model)
{
  return GK_TYPE_USAGE_ITEM;
}

static guint
gk_usage_model_get_n_items (GListModel *model)
{
  return GK_USAGE_MODEL (model)->n_items;
}

static gpointer
gk_usage_model_get_item (GListModel *model,
                         guint       position)
{
  GkUsageModel *self = GK_USAGE_MODEL (model);
  Page *page;

  if (position >= self->n_items)
    return NULL;

  page = page_get (self, position / GK_USAGE_MODEL_PAGE_SIZE);
  return g_object_ref (g_ptr_array_index (page->items, position % GK_USAGE_MODEL_PAGE_SIZE));
}

static void
gk_usage_model_list_model_init (GListModelInterface *iface)
{
  iface->get_item_type = gk_usage_model_get_item_type;
  iface->get_n_items = gk_usage_model_get_n_items;
  iface->get_item = gk_usage_model_get_item;
}

/* GObject */

static void
gk_usage_model_dispose (GObject *object)
{
  GkUsageModel *self = GK_USAGE_MODEL (object);

  g_cancellable_cancel (self->cancellable);
  drop_pages (self);

  G_OBJECT_CLASS (gk_usage_model_parent_class)->dispose (object);
}

static void
gk_usage_model_finalize (GObject *object)
{
  GkUsageModel *self = GK_USAGE_MODEL (object);

  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->pages, g_hash_table_unref);
  g_clear_object (&self->db);
  g_clear_pointer (&self->filter, gk_usage_filter_free);

  G_OBJECT_CLASS (gk_usage_model_parent_class)->finalize (object);
}

static void
gk_usage_model_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  GkUsageModel *self = GK_USAGE_MODEL (object);

  switch (prop_id)
    {
    case PROP_LOADING:
      g_value_set_boolean (value, self->pending > 0);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gk_usage_model_class_init (GkUsageModelClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = gk_usage_model_dispose;
  object_class->finalize = gk_usage_model_finalize;
  object_class->get_property = gk_usage_model_get_property;

  properties[PROP_LOADING] =
    g_param_spec_boolean ("loading", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
gk_usage_model_init (GkUsageModel *self)
{
  self->pages = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) page_free);
  g_queue_init (&self->lru);
  self->cancellable = g_cancellable_new ();
  self->total = -1;
  {
    GkUsageFilter all = GK_USAGE_FILTER_INIT;

    self->filter = gk_usage_filter_copy (&all);
  }
}

/* Public API */

GkUsageModel *
gk_usage_model_new (GkDatabase *db)
{
  GkUsageModel *self;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);

  self = g_object_new (GK_TYPE_USAGE_MODEL, NULL);
  self->db = g_object_ref (db);
  start_count (self, FALSE);
  return self;
}

void
gk_usage_model_set_filter (GkUsageModel        *self,
                           const GkUsageFilter *filter,
                           guint                limit)
{
  g_return_if_fail (GK_IS_USAGE_MODEL (self));
  g_return_if_fail (filter != NULL);

  if (gk_usage_filter_equal (self->filter, filter) && self->limit == limit)
    return;

  g_clear_pointer (&self->filter, gk_usage_filter_free);
  self->filter = gk_usage_filter_copy (filter);
  self->limit = limit;
  /* Answers for the old filter are dropped by their generation. */
  self->generation++;
  self->total = -1;
  start_count (self, FALSE);
}

const GkUsageFilter *
gk_usage_model_get_filter (GkUsageModel *self)
{
  g_return_val_if_fail (GK_IS_USAGE_MODEL (self), NULL);

  return self->filter;
}

gint64
gk_usage_model_get_key_id (GkUsageModel *self)
{
  g_return_val_if_fail (GK_IS_USAGE_MODEL (self), 0);

  return self->filter->key_id;
}

guint
gk_usage_model_get_limit (GkUsageModel *self)
{
  g_return_val_if_fail (GK_IS_USAGE_MODEL (self), 0);

  return self->limit;
}

void
gk_usage_model_reload (GkUsageModel *self)
{
  g_return_if_fail (GK_IS_USAGE_MODEL (self));

  start_count (self, self->total >= 0);
}

gboolean
gk_usage_model_get_loading (GkUsageModel *self)
{
  g_return_val_if_fail (GK_IS_USAGE_MODEL (self), FALSE);

  return self->pending > 0;
}

guint
gk_usage_model_get_n_cached_pages (GkUsageModel *self)
{
  g_return_val_if_fail (GK_IS_USAGE_MODEL (self), 0);

  return g_hash_table_size (self->pages);
}

/* Formatting */

const char *
gk_usage_status_label (GkUsageStatus status)
{
  switch (status)
    {
    case GK_USAGE_SUCCESS:
      return C_("usage status", "Success");
    case GK_USAGE_RATE_LIMITED:
      return C_("usage status", "Rate limited");
    case GK_USAGE_INVALID_KEY:
      return C_("usage status", "Invalid key");
    case GK_USAGE_ERROR:
      return C_("usage status", "Error");
    default:
      return "";
    }
}
