/* gk-usage-page.h: the usage log over a period, filtered and limited.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <adwaita.h>

#include "gk-backend.h"

G_BEGIN_DECLS

#define GK_TYPE_USAGE_PAGE (gk_usage_page_get_type ())
G_DECLARE_FINAL_TYPE (GkUsagePage, gk_usage_page, GK, USAGE_PAGE, AdwBin)

GtkWidget  *gk_usage_page_new          (void);
/* Reloads now and whenever @backend emits "changed". */
void        gk_usage_page_set_backend  (GkUsagePage *self,
                                        GkBackend   *backend);
/* Moves the keyboard focus to the key filter (Ctrl+F). */
void        gk_usage_page_focus_filter (GkUsagePage *self);
/* The period and filters shown, a copy (free with gk_usage_filter_free()). */
GkUsageFilter *gk_usage_page_get_filter (GkUsagePage *self);
/* Selects @key_id (0 = all keys; must be listed) and @limit (10, 50, 100
 * or 500), as the drop-downs do. */
void        gk_usage_page_set_filter   (GkUsagePage *self,
                                        gint64       key_id,
                                        guint        limit);
/* The table's model (a GkUsageModel), or NULL before a backend is set. */
GListModel *gk_usage_page_get_model    (GkUsagePage *self);
/* TRUE while anything on the page is loading ("notify::loading"). */
gboolean    gk_usage_page_get_loading  (GkUsagePage *self);

G_END_DECLS
