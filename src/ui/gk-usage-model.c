/* gk-usage-model.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include "gk-usage-model.h"

struct _GkUsageItem
{
  GObject     parent_instance;
  GkUsageRow *row;
};

G_DEFINE_FINAL_TYPE (GkUsageItem, gk_usage_item, G_TYPE_OBJECT)

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
  G_OBJECT_CLASS (klass)->finalize = gk_usage_item_finalize;
}

static void
gk_usage_item_init (GkUsageItem *self)
{
}

struct _GkUsageModel
{
  GObject     parent_instance;
  GkDatabase *db;
  guint       n_items;
};

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
  return NULL;
}

static void
gk_usage_model_list_model_init (GListModelInterface *iface)
{
  iface->get_item_type = gk_usage_model_get_item_type;
  iface->get_n_items = gk_usage_model_get_n_items;
  iface->get_item = gk_usage_model_get_item;
}

G_DEFINE_FINAL_TYPE_WITH_CODE (GkUsageModel, gk_usage_model, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL,
                                                      gk_usage_model_list_model_init))

static void
gk_usage_model_dispose (GObject *object)
{
  GkUsageModel *self = GK_USAGE_MODEL (object);

  g_clear_object (&self->db);

  G_OBJECT_CLASS (gk_usage_model_parent_class)->dispose (object);
}

static void
gk_usage_model_class_init (GkUsageModelClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = gk_usage_model_dispose;
}

static void
gk_usage_model_init (GkUsageModel *self)
{
}

GkUsageModel *
gk_usage_model_new (GkDatabase *db)
{
  GkUsageModel *self = g_object_new (GK_TYPE_USAGE_MODEL, NULL);

  self->db = g_object_ref (db);
  return self;
}
