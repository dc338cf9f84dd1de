/* gk-key-row.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-format.h"
#include "gk-key-row.h"

struct _GkKeyRow
{
  GObject    parent_instance;
  GkKey     *key;
  GTimeZone *reset_tz;
  char      *search_text;
  guint      use_order;
  gboolean   is_next;
  char      *forecast;   /* "Runs out around 16:40", or NULL */
};

G_DEFINE_FINAL_TYPE (GkKeyRow, gk_key_row, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_NAME,
  PROP_SEARCH_TEXT,
  PROP_IS_NEXT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
gk_key_row_finalize (GObject *object)
{
  GkKeyRow *self = GK_KEY_ROW (object);

  g_clear_pointer (&self->key, gk_key_free);
  g_clear_pointer (&self->reset_tz, g_time_zone_unref);
  g_clear_pointer (&self->search_text, g_free);
  g_clear_pointer (&self->forecast, g_free);

  G_OBJECT_CLASS (gk_key_row_parent_class)->finalize (object);
}

static void
gk_key_row_get_property (GObject    *object,
                         guint       prop_id,
                         GValue     *value,
                         GParamSpec *pspec)
{
  GkKeyRow *self = GK_KEY_ROW (object);

  switch (prop_id)
    {
    case PROP_NAME:
      g_value_set_string (value, gk_key_row_get_name (self));
      break;

    case PROP_SEARCH_TEXT:
      g_value_set_string (value, self->search_text);
      break;

    case PROP_IS_NEXT:
      g_value_set_boolean (value, self->is_next);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gk_key_row_class_init (GkKeyRowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = gk_key_row_finalize;
  object_class->get_property = gk_key_row_get_property;

  /* Read by the keys page's search filter (GtkStringFilter). */
  properties[PROP_NAME] =
    g_param_spec_string ("name", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /* Name, project and masked key, for the search. */
  properties[PROP_SEARCH_TEXT] =
    g_param_spec_string ("search-text", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  /* The key the selector picks now. */
  properties[PROP_IS_NEXT] =
    g_param_spec_boolean ("is-next", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
gk_key_row_init (GkKeyRow *self)
{
}

GkKeyRow *
gk_key_row_new (const GkKey *key)
{
  GkKeyRow *self;

  g_return_val_if_fail (key != NULL, NULL);

  self = g_object_new (GK_TYPE_KEY_ROW, NULL);
  self->key = gk_key_copy (key);
  {
    g_autofree char *masked = gk_key_get_masked (key);

    self->search_text = g_strjoin ("\n", key->name ? key->name : "",
                                   key->project ? key->project : "", masked, NULL);
  }

  return self;
}

GkKeyRow *
gk_key_row_new_with_reset_zone (const GkKey *key,
                                GTimeZone   *reset_tz)
{
  GkKeyRow *self = gk_key_row_new (key);

  self->reset_tz = reset_tz != NULL ? g_time_zone_ref (reset_tz) : NULL;
  return self;
}

char *
gk_key_row_format_reset (GkKeyRow    *self,
                         GkQuotaSlot  slot)
{
  g_autoptr(GTimeZone) local_tz = g_time_zone_new_local ();

  g_return_val_if_fail (GK_IS_KEY_ROW (self), NULL);
  g_return_val_if_fail (slot < GK_QUOTA_N_SLOTS, NULL);

  return gk_quota_format_reset (self->key->quotas[slot].reset_at,
                                g_get_real_time () / G_USEC_PER_SEC, local_tz, self->reset_tz);
}

const GkKey *
gk_key_row_get_key (GkKeyRow *self)
{
  g_return_val_if_fail (GK_IS_KEY_ROW (self), NULL);

  return self->key;
}

gint64
gk_key_row_get_id (GkKeyRow *self)
{
  g_return_val_if_fail (GK_IS_KEY_ROW (self), 0);

  return self->key->id;
}

const char *
gk_key_row_get_name (GkKeyRow *self)
{
  g_return_val_if_fail (GK_IS_KEY_ROW (self), NULL);

  return self->key->name;
}

guint
gk_key_row_get_use_order (GkKeyRow *self)
{
  g_return_val_if_fail (GK_IS_KEY_ROW (self), 0);

  return self->use_order;
}

void
gk_key_row_set_use_order (GkKeyRow *self,
                          guint     use_order)
{
  g_return_if_fail (GK_IS_KEY_ROW (self));

  self->use_order = use_order;
}

gboolean
gk_key_row_get_is_next (GkKeyRow *self)
{
  g_return_val_if_fail (GK_IS_KEY_ROW (self), FALSE);

  return self->is_next;
}

void
gk_key_row_set_is_next (GkKeyRow *self,
                        gboolean  is_next)
{
  g_return_if_fail (GK_IS_KEY_ROW (self));

  is_next = !!is_next;
  if (self->is_next == is_next)
    return;
  self->is_next = is_next;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_IS_NEXT]);
}

/**
 * gk_key_row_set_forecast:
 * @depletion: (nullable): the key's first window forecast to run out
 *   (gk_forecast_key_first()), or %NULL
 * @now: the forecast's now, for the date
 */
void
gk_key_row_set_forecast (GkKeyRow          *self,
                         const GkDepletion *depletion,
                         gint64             now)
{
  g_autofree char *at = NULL;

  g_return_if_fail (GK_IS_KEY_ROW (self));

  g_clear_pointer (&self->forecast, g_free);
  if (depletion == NULL)
    return;
  at = gk_format_moment_at (depletion->runs_out_at, now);
  /* Translators: %s is a time ("16:40") or a day and time ("Fri 4 Dec 09:00"). */
  self->forecast = g_strdup_printf (_("Runs out around %s"), at);
}

const char *
gk_key_row_get_forecast (GkKeyRow *self)
{
  g_return_val_if_fail (GK_IS_KEY_ROW (self), NULL);

  return self->forecast;
}

char *
gk_key_row_dup_state_detail (GkKeyRow *self)
{
  const GkKey *key;
  g_autofree char *until = NULL;

  g_return_val_if_fail (GK_IS_KEY_ROW (self), NULL);

  key = self->key;
  if (key->state_until > 0)
    {
      g_autofree char *date = gk_format_date (key->state_until);

      /* Translators: when a key is back by itself, e.g. "until Today 20:23". */
      until = g_strdup_printf (_("until %s"), date);
    }
  if (key->state_reason != NULL && until != NULL)
    /* Translators: a key state's reason and its end, e.g. "Rate-limited (429) · until 20:23". */
    return g_strdup_printf (C_("state detail", "%s · %s"), key->state_reason, until);
  if (until != NULL)
    return g_steal_pointer (&until);
  return g_strdup (key->state_reason);
}

const char *
gk_key_state_get_style_class (GkKeyState state)
{
  static const char *const classes[] = {
    "gk-state-available", "gk-state-near-quota", "gk-state-cooling-down", "gk-state-skipped",
    "gk-state-over-quota", "gk-state-over-budget", "gk-state-rejected", "gk-state-turned-off",
  };

  G_STATIC_ASSERT (G_N_ELEMENTS (classes) == GK_KEY_N_STATES);
  g_return_val_if_fail ((guint) state < GK_KEY_N_STATES, "");
  return classes[state];
}

void
gk_key_state_apply_style_class (GtkWidget  *widget,
                                GkKeyState  state)
{
  for (guint i = 0; i < GK_KEY_N_STATES; i++)
    gtk_widget_remove_css_class (widget, gk_key_state_get_style_class (i));
  gtk_widget_add_css_class (widget, gk_key_state_get_style_class (state));
}
