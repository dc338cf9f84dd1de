/* gk-usage-model.h: a lazy GListModel over the usage log.
 *
 * Knows its length (a COUNT query) and fetches rows a page at a time in a
 * worker thread as the view asks for them, so a log of millions of rows
 * never sits in memory. Items of a page not fetched yet are placeholders
 * ("loaded" FALSE) that fill in, with property notifications, when their
 * page arrives.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-format.h"

#include "gk-core.h"

G_BEGIN_DECLS

#define GK_TYPE_USAGE_ITEM (gk_usage_item_get_type ())
G_DECLARE_FINAL_TYPE (GkUsageItem, gk_usage_item, GK, USAGE_ITEM, GObject)

/* NULL until the item's page has been fetched. */
const GkUsageRow *gk_usage_item_get_row (GkUsageItem *self);

#define GK_TYPE_USAGE_MODEL (gk_usage_model_get_type ())
G_DECLARE_FINAL_TYPE (GkUsageModel, gk_usage_model, GK, USAGE_MODEL, GObject)

GkUsageModel *gk_usage_model_new            (GkDatabase   *db);
/* The rows of @filter (period, key, status, model, user), the newest
 * @limit (0 = all). Reloads when either changes. */
void          gk_usage_model_set_filter     (GkUsageModel        *self,
                                             const GkUsageFilter *filter,
                                             guint                limit);
const GkUsageFilter *gk_usage_model_get_filter (GkUsageModel *self);
gint64        gk_usage_model_get_key_id     (GkUsageModel *self);
guint         gk_usage_model_get_limit      (GkUsageModel *self);
/* Counts again; new rows at the top are inserted, not a full reset. */
void          gk_usage_model_reload         (GkUsageModel *self);
/* TRUE while a count or a page fetch runs ("notify::loading"). */
gboolean      gk_usage_model_get_loading    (GkUsageModel *self);
/* Pages of rows held in memory (bounded, whatever the log's size). */
guint         gk_usage_model_get_n_cached_pages (GkUsageModel *self);

#define GK_USAGE_MODEL_PAGE_SIZE  200
#define GK_USAGE_MODEL_MAX_PAGES  16

/* Formatting shared by the pages: locale-grouped counts ("1,234"), US
 * dollars ("$1,234.56"; under a dime with two significant digits,
 * "$0.0015", "$0.012") and local times ("%x %X"). */
/* A translated label for a usage status ("Success", "Rate limited", …). */
const char   *gk_usage_status_label (GkUsageStatus status);

G_END_DECLS
