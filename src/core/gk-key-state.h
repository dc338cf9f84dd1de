/* gk-key-state.h: one status model for every place a key's state is shown.
 *
 * The database stores a key's status (ACTIVE, RATE_LIMITED, …), a reason,
 * a cooldown, its quotas and its budget; what they mean together depends
 * on the clock and on the rotation threshold. This module derives the one
 * state people see (GkKeyState), with a reason and the moment the key is
 * back by itself, so the GUI, the CLI, the admin API and the notifications
 * use the same words.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>

#include "gk-key-store.h"
#include "gk-types.h"

G_BEGIN_DECLS

/* Fills @key's state, state_reason and state_until from its stored fields,
 * at @now (UTC seconds) and with the rotation threshold @threshold_percent. */
void        gk_key_update_state            (GkKey            *key,
                                            double            threshold_percent,
                                            gint64            now);

/* The state's name as shown ("Available", "Cooling down", …), translated. */
const char *gk_key_state_get_label         (GkKeyState        state);
/* The state a rotation of @reason leaves its key in, so the rotation log
 * names a reason with the badge's words. */
GkKeyState  gk_rotation_reason_get_state   (GkRotationReason  reason);
/* "3 Available · 1 Cooling down · 1 Turned off": the states that have keys,
 * in the model's order; "" when there is none. */
char       *gk_key_state_format_counts     (const gint64      counts[GK_KEY_N_STATES]);
/* Orders keys as the selector would use them: available keys first, then
 * the default key, higher priority, more remaining quota, least recently
 * used; the others after them in the same order. */
int         gk_key_compare_use_order       (const GkKey      *a,
                                            const GkKey      *b);
/* "Daily tokens", "Requests per minute", …, translated. */
const char *gk_quota_slot_get_label        (GkQuotaSlot       slot);

G_END_DECLS
