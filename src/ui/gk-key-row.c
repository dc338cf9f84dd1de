/* gk-key-row.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-key-row.h"

struct _GkKeyRow
{
  GObject    parent_instance;
  GkKey     *key;
  GTimeZone *reset_tz;
};

G_DEFINE_FINAL_TYPE (GkKeyRow, gk_key_row, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_NAME,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
gk_key_row_finalize (GObject *object)
{
  GkKeyRow *self = GK_KEY_ROW (object);

  g_clear_pointer (&self->key, gk_key_free);
  g_clear_pointer (&self->reset_tz, g_time_zone_unref);

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

const char *
gk_key_status_get_label (GkKeyStatus status)
{
  switch (status)
    {
    case GK_KEY_STATUS_ACTIVE:
      return C_("key status", "Active");
    case GK_KEY_STATUS_QUOTA_EXCEEDED:
      return C_("key status", "Quota exceeded");
    case GK_KEY_STATUS_RATE_LIMITED:
      return C_("key status", "Rate-limited");
    case GK_KEY_STATUS_INVALID:
      return C_("key status", "Invalid");
    case GK_KEY_STATUS_INACTIVE:
    default:
      return C_("key status", "Inactive");
    }
}

const char *
gk_key_status_get_style_class (GkKeyStatus status)
{
  switch (status)
    {
    case GK_KEY_STATUS_ACTIVE:
      return "success";
    case GK_KEY_STATUS_QUOTA_EXCEEDED:
    case GK_KEY_STATUS_RATE_LIMITED:
      return "warning";
    case GK_KEY_STATUS_INVALID:
      return "error";
    case GK_KEY_STATUS_INACTIVE:
    default:
      return "dim-label";
    }
}
