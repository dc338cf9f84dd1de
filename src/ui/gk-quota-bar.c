/* gk-quota-bar.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-quota-bar.h"

struct _GkQuotaBar
{
  GtkWidget    parent_instance;

  GtkWidget   *title_label;
  GtkWidget   *value_label;
  GtkWidget   *level_bar;
  char        *text;
};

G_DEFINE_FINAL_TYPE (GkQuotaBar, gk_quota_bar, GTK_TYPE_WIDGET)

/* Above these shares of a quota the bar turns amber, then red. */
#define QUOTA_HIGH_SHARE 0.8
#define QUOTA_FULL_SHARE 0.95

static void
gk_quota_bar_dispose (GObject *object)
{
  GkQuotaBar *self = GK_QUOTA_BAR (object);
  GtkWidget *child;

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);

  G_OBJECT_CLASS (gk_quota_bar_parent_class)->dispose (object);
}

static void
gk_quota_bar_finalize (GObject *object)
{
  GkQuotaBar *self = GK_QUOTA_BAR (object);

  g_free (self->text);

  G_OBJECT_CLASS (gk_quota_bar_parent_class)->finalize (object);
}

static void
gk_quota_bar_class_init (GkQuotaBarClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_quota_bar_dispose;
  object_class->finalize = gk_quota_bar_finalize;

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_GRID_LAYOUT);
  gtk_widget_class_set_css_name (widget_class, "quotabar");
}

static void
gk_quota_bar_init (GkQuotaBar *self)
{
  GtkLayoutManager *layout = gtk_widget_get_layout_manager (GTK_WIDGET (self));
  GtkLayoutChild *child;

  gtk_grid_layout_set_column_spacing (GTK_GRID_LAYOUT (layout), 6);

  /* The use above, right-aligned; the window's name beside its bar: a
   * narrow column even with long numbers and words ("Tháng", "146,5 N /
   * 20,0 Tr"). */
  self->value_label = g_object_new (GTK_TYPE_LABEL, "xalign", 1.0f, "hexpand", TRUE, NULL);
  gtk_widget_add_css_class (self->value_label, "caption");
  gtk_widget_add_css_class (self->value_label, "numeric");
  gtk_widget_set_parent (self->value_label, GTK_WIDGET (self));
  child = gtk_layout_manager_get_layout_child (layout, self->value_label);
  gtk_grid_layout_child_set_column_span (GTK_GRID_LAYOUT_CHILD (child), 2);

  self->title_label = g_object_new (GTK_TYPE_LABEL, "xalign", 0.0f, NULL);
  gtk_widget_add_css_class (self->title_label, "caption");
  gtk_widget_add_css_class (self->title_label, "dim-label");
  gtk_widget_set_parent (self->title_label, GTK_WIDGET (self));
  child = gtk_layout_manager_get_layout_child (layout, self->title_label);
  gtk_grid_layout_child_set_row (GTK_GRID_LAYOUT_CHILD (child), 1);

  self->level_bar = gtk_level_bar_new_for_interval (0.0, 1.0);
  gtk_widget_set_hexpand (self->level_bar, TRUE);
  gtk_widget_set_valign (self->level_bar, GTK_ALIGN_CENTER);
  /* The bar shows the share used, while the default offsets colour a full
   * bar as good; quotas use their own offsets (styled in style.css). */
  gtk_level_bar_remove_offset_value (GTK_LEVEL_BAR (self->level_bar), GTK_LEVEL_BAR_OFFSET_LOW);
  gtk_level_bar_remove_offset_value (GTK_LEVEL_BAR (self->level_bar), GTK_LEVEL_BAR_OFFSET_HIGH);
  gtk_level_bar_remove_offset_value (GTK_LEVEL_BAR (self->level_bar), GTK_LEVEL_BAR_OFFSET_FULL);
  gtk_level_bar_add_offset_value (GTK_LEVEL_BAR (self->level_bar), "quota-ok", QUOTA_HIGH_SHARE);
  gtk_level_bar_add_offset_value (GTK_LEVEL_BAR (self->level_bar), "quota-high", QUOTA_FULL_SHARE);
  gtk_level_bar_add_offset_value (GTK_LEVEL_BAR (self->level_bar), "quota-full", 1.0);
  gtk_widget_set_parent (self->level_bar, GTK_WIDGET (self));
  child = gtk_layout_manager_get_layout_child (layout, self->level_bar);
  gtk_grid_layout_child_set_row (GTK_GRID_LAYOUT_CHILD (child), 1);
  gtk_grid_layout_child_set_column (GTK_GRID_LAYOUT_CHILD (child), 1);
}

GtkWidget *
gk_quota_bar_new (void)
{
  return g_object_new (GK_TYPE_QUOTA_BAR, NULL);
}

static char *
format_count (gint64 value)
{
  if (value < 0)
    value = 0;

  if (value < 10000)
    return g_strdup_printf ("%" G_GINT64_FORMAT, value);
  if (value < 1000000)
    return g_strdup_printf (C_("thousands", "%.1fK"), value / 1000.0);
  if (value < G_GINT64_CONSTANT (1000000000))
    return g_strdup_printf (C_("millions", "%.1fM"), value / 1e6);
  return g_strdup_printf (C_("billions", "%.1fB"), value / 1e9);
}

void
gk_quota_bar_set (GkQuotaBar *self,
                  const char *title,
                  gint64      used,
                  gint64      limit,
                  const char *resets)
{
  g_autofree char *used_text = NULL;
  g_autofree char *tooltip = NULL;
  g_autofree char *limit_text = NULL;
  double share;

  g_return_if_fail (GK_IS_QUOTA_BAR (self));

  used_text = format_count (used);
  if (limit > 0)
    limit_text = format_count (limit);
  else
    limit_text = g_strdup ("∞");

  g_free (self->text);
  /* Translators: a quota's use, e.g. "1.2K / 50K". */
  self->text = g_strdup_printf (_("%s / %s"), used_text, limit_text);

  gtk_label_set_text (GTK_LABEL (self->title_label), title);
  gtk_label_set_text (GTK_LABEL (self->value_label), self->text);

  share = limit > 0 ? CLAMP ((double) used / (double) limit, 0.0, 1.0) : 0.0;
  gtk_level_bar_set_value (GTK_LEVEL_BAR (self->level_bar), share);
  gtk_widget_set_visible (self->level_bar, limit > 0);
  if (limit > 0 && resets != NULL)
    /* Translators: %s is when the quota resets, e.g. "15:00 UTC+07, midnight PST". */
    tooltip = g_strdup_printf (_("Resets %s"), resets);
  else if (limit <= 0)
    tooltip = g_strdup (_("No limit set"));
  gtk_widget_set_tooltip_text (GTK_WIDGET (self), tooltip);
}

const char *
gk_quota_bar_get_text (GkQuotaBar *self)
{
  g_return_val_if_fail (GK_IS_QUOTA_BAR (self), NULL);

  return self->text;
}
