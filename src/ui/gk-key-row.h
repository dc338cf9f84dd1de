/* gk-key-row.h: one key as an item of the keys page's list model.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib-object.h>

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

/* The translated badge text and its style class ("active", "warning", …). */
const char  *gk_key_status_get_label       (GkKeyStatus status);
const char  *gk_key_status_get_style_class (GkKeyStatus status);

G_END_DECLS
