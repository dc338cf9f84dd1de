/* gk-adaptive.h: a wide child, or a narrow one below a width.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

/* Below this width the data tabs show rows instead of tables. */
#define GK_ADAPTIVE_DEFAULT_THRESHOLD 600

#define GK_TYPE_ADAPTIVE (gk_adaptive_get_type ())
G_DECLARE_FINAL_TYPE (GkAdaptive, gk_adaptive, GK, ADAPTIVE, GtkWidget)

GtkWidget *gk_adaptive_new              (void);
void       gk_adaptive_set_wide_child   (GkAdaptive *self,
                                         GtkWidget  *child);
void       gk_adaptive_set_narrow_child (GkAdaptive *self,
                                         GtkWidget  *child);
/* TRUE while the narrow child is shown ("notify::narrow"). */
gboolean   gk_adaptive_get_narrow       (GkAdaptive *self);

G_END_DECLS
