/* gk-usage-model.h: a lazy GListModel over the usage log.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-core.h"

G_BEGIN_DECLS

#define GK_TYPE_USAGE_ITEM (gk_usage_item_get_type ())
G_DECLARE_FINAL_TYPE (GkUsageItem, gk_usage_item, GK, USAGE_ITEM, GObject)

#define GK_TYPE_USAGE_MODEL (gk_usage_model_get_type ())
G_DECLARE_FINAL_TYPE (GkUsageModel, gk_usage_model, GK, USAGE_MODEL, GObject)

GkUsageModel *gk_usage_model_new (GkDatabase *db);

G_END_DECLS
