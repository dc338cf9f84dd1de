/* gk-clock.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include "gk-clock.h"

struct _GkClock
{
  GObject  parent_instance;
  gboolean fixed;
  gint64   now;   /* atomic; used when fixed */
};

G_DEFINE_FINAL_TYPE (GkClock, gk_clock, G_TYPE_OBJECT)

static void
gk_clock_class_init (GkClockClass *klass)
{
}

static void
gk_clock_init (GkClock *self)
{
}

GkClock *
gk_clock_new (void)
{
  return g_object_new (GK_TYPE_CLOCK, NULL);
}

GkClock *
gk_clock_new_fixed (gint64 now)
{
  GkClock *self = g_object_new (GK_TYPE_CLOCK, NULL);

  self->fixed = TRUE;
  self->now = now;
  return self;
}

gint64
gk_clock_now (GkClock *self)
{
  g_return_val_if_fail (GK_IS_CLOCK (self), 0);

  if (self->fixed)
    return self->now;
  return g_get_real_time () / G_USEC_PER_SEC;
}

void
gk_clock_set (GkClock *self,
              gint64   now)
{
  g_return_if_fail (GK_IS_CLOCK (self));
  g_return_if_fail (self->fixed);

  self->now = now;
}

void
gk_clock_advance (GkClock *self,
                  gint64   seconds)
{
  g_return_if_fail (GK_IS_CLOCK (self));
  g_return_if_fail (self->fixed);

  self->now += seconds;
}
