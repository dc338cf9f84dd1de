/* gk-key-row.h: one key as an item of the keys page's list model.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

#include "gk-core.h"

G_BEGIN_DECLS

#define GK_TYPE_KEY_ROW (gk_key_row_get_type ())
G_DECLARE_FINAL_TYPE (GkKeyRow, gk_key_row, GK, KEY_ROW, GObject)

/* Takes a copy of @key. */
GkKeyRow    *gk_key_row_new      (const GkKey *key);
/* @reset_tz: the reset time zone (setting), for reset times shown in it
 * as well as in the local zone; NULL shows the local zone only. */
GkKeyRow    *gk_key_row_new_with_reset_zone (const GkKey *key,
                                             GTimeZone   *reset_tz);
/* The next reset of the quota in @slot, for people ("15:00 UTC+07,
 * midnight PST"); NULL when it has none. */
char        *gk_key_row_format_reset (GkKeyRow    *self,
                                      GkQuotaSlot  slot);
const GkKey *gk_key_row_get_key  (GkKeyRow    *self);
gint64       gk_key_row_get_id   (GkKeyRow    *self);
const char  *gk_key_row_get_name (GkKeyRow    *self);

/* Where the selector would use the key (0 = first), and whether it is the
 * one it picks now. Set by the keys page when it loads. */
guint        gk_key_row_get_use_order (GkKeyRow *self);
void         gk_key_row_set_use_order (GkKeyRow *self,
                                       guint     use_order);
gboolean     gk_key_row_get_is_next   (GkKeyRow *self);
void         gk_key_row_set_is_next   (GkKeyRow *self,
                                       gboolean  is_next);
/* The state's reason and "until …", as shown under the badge; NULL when
 * there is nothing to say. */
/* "Runs out around 16:40" when the key's quota is forecast to run out
 * before it resets (gk-insights.h), else NULL. */
void         gk_key_row_set_forecast  (GkKeyRow          *self,
                                       const GkDepletion *depletion,
                                       gint64             now);
const char  *gk_key_row_get_forecast  (GkKeyRow          *self);
char        *gk_key_row_dup_state_detail (GkKeyRow *self);

/* The style class of a state's colour ("gk-state-cooling-down", …);
 * apply replaces any other state's class on @widget. */
const char  *gk_key_state_get_style_class   (GkKeyState  state);
void         gk_key_state_apply_style_class (GtkWidget  *widget,
                                             GkKeyState  state);

G_END_DECLS
