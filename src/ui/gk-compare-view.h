/* gk-compare-view.h: the key comparison: a chart and a sortable table.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

#include "gk-core.h"

G_BEGIN_DECLS

#define GK_TYPE_COMPARE_VIEW (gk_compare_view_get_type ())
G_DECLARE_FINAL_TYPE (GkCompareView, gk_compare_view, GK, COMPARE_VIEW, GtkWidget)

GtkWidget *gk_compare_view_new      (void);
/* @rows: (element-type GkKeyComparison): the rows to show (a reference
 * is taken). */
void       gk_compare_view_set_rows (GkCompareView *self,
                                     GPtrArray     *rows);
/* The model the table shows, sorted as the user chose, and its rows. */
GListModel *gk_compare_view_get_model (GkCompareView *self);
const GkKeyComparison *gk_compare_view_get_row (GkCompareView *self,
                                                guint          position);

G_END_DECLS
