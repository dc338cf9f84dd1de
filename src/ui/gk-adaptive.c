/* gk-adaptive.c: a wide child, or a narrow one below a width.
 *
 * libadwaita 1.2 has no breakpoints. Like AdwSqueezer, this widget asks
 * only for what its narrow child needs, so the window can shrink, and
 * picks the child from the width it is given; unlike AdwSqueezer it
 * switches at a set width, not when the wide child stops fitting: a table
 * in a scrolled window always "fits", by scrolling sideways. The switch
 * happens just after the allocation that calls for it (showing a child
 * while allocating would leave parts of it unallocated for a frame).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include "gk-adaptive.h"

struct _GkAdaptive
{
  GtkWidget  parent_instance;

  GtkWidget *wide;
  GtkWidget *narrow_child;
  int        threshold;
  gboolean   narrow;
  guint      switch_source;
};

G_DEFINE_FINAL_TYPE (GkAdaptive, gk_adaptive, GTK_TYPE_WIDGET)

enum {
  PROP_0,
  PROP_WIDE_CHILD,
  PROP_NARROW_CHILD,
  PROP_THRESHOLD,
  PROP_NARROW,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* Helpers */

static GtkWidget *
shown_child (GkAdaptive *self)
{
  return self->narrow && self->narrow_child != NULL ? self->narrow_child : self->wide;
}

static void
update_visible (GkAdaptive *self)
{
  if (self->wide != NULL)
    gtk_widget_set_child_visible (self->wide, shown_child (self) == self->wide);
  if (self->narrow_child != NULL)
    gtk_widget_set_child_visible (self->narrow_child, shown_child (self) == self->narrow_child);
}

static gboolean
switch_cb (gpointer user_data)
{
  GkAdaptive *self = user_data;

  self->switch_source = 0;
  self->narrow = !self->narrow;
  update_visible (self);
  gtk_widget_queue_resize (GTK_WIDGET (self));
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_NARROW]);
  return G_SOURCE_REMOVE;
}

static void
set_child (GkAdaptive  *self,
           GtkWidget  **slot,
           GtkWidget   *child,
           GParamSpec  *pspec)
{
  if (*slot == child)
    return;
  if (*slot != NULL)
    gtk_widget_unparent (*slot);
  *slot = child;
  if (child != NULL)
    gtk_widget_set_parent (child, GTK_WIDGET (self));
  update_visible (self);
  gtk_widget_queue_resize (GTK_WIDGET (self));
  g_object_notify_by_pspec (G_OBJECT (self), pspec);
}

/* Overrides */

static void
gk_adaptive_measure (GtkWidget      *widget,
                     GtkOrientation  orientation,
                     int             for_size,
                     int            *minimum,
                     int            *natural,
                     int            *minimum_baseline,
                     int            *natural_baseline)
{
  GkAdaptive *self = GK_ADAPTIVE (widget);
  GtkWidget *narrow = self->narrow_child != NULL ? self->narrow_child : self->wide;

  *minimum = *natural = 0;
  if (self->wide == NULL)
    return;

  if (orientation == GTK_ORIENTATION_HORIZONTAL)
    {
      int wide_min, wide_nat, narrow_min, narrow_nat;

      gtk_widget_measure (self->wide, orientation, for_size, &wide_min, &wide_nat, NULL, NULL);
      gtk_widget_measure (narrow, orientation, for_size, &narrow_min, &narrow_nat, NULL, NULL);
      /* Never more than the narrow child needs; the wide one from the
       * threshold up. */
      *minimum = narrow_min;
      *natural = MAX (narrow_nat, MAX (wide_nat, MIN (wide_min, self->threshold)));
    }
  else
    gtk_widget_measure (shown_child (self), orientation, for_size, minimum, natural, NULL, NULL);
}

static void
gk_adaptive_size_allocate (GtkWidget *widget,
                           int        width,
                           int        height,
                           int        baseline)
{
  GkAdaptive *self = GK_ADAPTIVE (widget);
  gboolean narrow = width < self->threshold && self->narrow_child != NULL;

  if (self->wide == NULL)
    return;
  if (narrow != self->narrow && self->switch_source == 0)
    self->switch_source = g_idle_add_full (G_PRIORITY_HIGH_IDLE, switch_cb, self, NULL);
  else if (narrow == self->narrow)
    g_clear_handle_id (&self->switch_source, g_source_remove);
  gtk_widget_allocate (shown_child (self), width, height, baseline, NULL);
}

static void
gk_adaptive_dispose (GObject *object)
{
  GkAdaptive *self = GK_ADAPTIVE (object);

  g_clear_handle_id (&self->switch_source, g_source_remove);
  g_clear_pointer (&self->wide, gtk_widget_unparent);
  g_clear_pointer (&self->narrow_child, gtk_widget_unparent);

  G_OBJECT_CLASS (gk_adaptive_parent_class)->dispose (object);
}

static void
gk_adaptive_get_property (GObject    *object,
                          guint       prop_id,
                          GValue     *value,
                          GParamSpec *pspec)
{
  GkAdaptive *self = GK_ADAPTIVE (object);

  switch (prop_id)
    {
    case PROP_WIDE_CHILD:
      g_value_set_object (value, self->wide);
      break;
    case PROP_NARROW_CHILD:
      g_value_set_object (value, self->narrow_child);
      break;
    case PROP_THRESHOLD:
      g_value_set_int (value, self->threshold);
      break;
    case PROP_NARROW:
      g_value_set_boolean (value, self->narrow);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gk_adaptive_set_property (GObject      *object,
                          guint         prop_id,
                          const GValue *value,
                          GParamSpec   *pspec)
{
  GkAdaptive *self = GK_ADAPTIVE (object);

  switch (prop_id)
    {
    case PROP_WIDE_CHILD:
      gk_adaptive_set_wide_child (self, g_value_get_object (value));
      break;
    case PROP_NARROW_CHILD:
      gk_adaptive_set_narrow_child (self, g_value_get_object (value));
      break;
    case PROP_THRESHOLD:
      if (self->threshold != g_value_get_int (value))
        {
          self->threshold = g_value_get_int (value);
          gtk_widget_queue_resize (GTK_WIDGET (self));
          g_object_notify_by_pspec (object, pspec);
        }
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gk_adaptive_class_init (GkAdaptiveClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_adaptive_dispose;
  object_class->get_property = gk_adaptive_get_property;
  object_class->set_property = gk_adaptive_set_property;
  widget_class->measure = gk_adaptive_measure;
  widget_class->size_allocate = gk_adaptive_size_allocate;

  properties[PROP_WIDE_CHILD] =
    g_param_spec_object ("wide-child", NULL, NULL, GTK_TYPE_WIDGET,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_NARROW_CHILD] =
    g_param_spec_object ("narrow-child", NULL, NULL, GTK_TYPE_WIDGET,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_THRESHOLD] =
    g_param_spec_int ("threshold", NULL, NULL, 0, G_MAXINT, GK_ADAPTIVE_DEFAULT_THRESHOLD,
                      G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_NARROW] =
    g_param_spec_boolean ("narrow", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
gk_adaptive_init (GkAdaptive *self)
{
  self->threshold = GK_ADAPTIVE_DEFAULT_THRESHOLD;
}

/* Public API */

GtkWidget *
gk_adaptive_new (void)
{
  return g_object_new (GK_TYPE_ADAPTIVE, NULL);
}

void
gk_adaptive_set_wide_child (GkAdaptive *self,
                            GtkWidget  *child)
{
  g_return_if_fail (GK_IS_ADAPTIVE (self));
  g_return_if_fail (child == NULL || GTK_IS_WIDGET (child));

  set_child (self, &self->wide, child, properties[PROP_WIDE_CHILD]);
}

void
gk_adaptive_set_narrow_child (GkAdaptive *self,
                              GtkWidget  *child)
{
  g_return_if_fail (GK_IS_ADAPTIVE (self));
  g_return_if_fail (child == NULL || GTK_IS_WIDGET (child));

  set_child (self, &self->narrow_child, child, properties[PROP_NARROW_CHILD]);
}

gboolean
gk_adaptive_get_narrow (GkAdaptive *self)
{
  g_return_val_if_fail (GK_IS_ADAPTIVE (self), FALSE);

  return self->narrow;
}
