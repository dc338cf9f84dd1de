/* gk-clock.h: the source of "now" for everything that depends on time.
 *
 * The system clock in production; a settable clock in tests, so resets, DST
 * days and clock jumps are tested without waiting.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include "gk-types.h"

G_BEGIN_DECLS

#define GK_TYPE_CLOCK (gk_clock_get_type ())
G_DECLARE_FINAL_TYPE (GkClock, gk_clock, GK, CLOCK, GObject)

/* The wall clock (g_get_real_time). */
GkClock *gk_clock_new       (void);
/* A clock that stays at @now (UTC Unix seconds) until set or advanced. */
GkClock *gk_clock_new_fixed (gint64   now);
/* UTC Unix seconds. Thread-safe. */
gint64   gk_clock_now       (GkClock *self);
void     gk_clock_set       (GkClock *self,
                             gint64   now);
void     gk_clock_advance   (GkClock *self,
                             gint64   seconds);

G_END_DECLS
