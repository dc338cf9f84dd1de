/* gk-format.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <gio/gio.h>
#include <glib/gi18n.h>

#include "gk-format.h"

#define INTERFACE_SCHEMA "org.gnome.desktop.interface"
#define ONE_CENT         0.01
#define PER_REQUEST_MIN  0.00005  /* rounds to $0.0001 */

char *
gk_format_count (gint64 count)
{
  return g_strdup_printf ("%'" G_GINT64_FORMAT, count);
}

/* "< $0.0001": what four decimals would show as nothing. */
static char *
format_tiny (void)
{
  g_autofree char *smallest = g_strdup_printf ("$%.4f", 0.0001);

  /* Translators: a cost smaller than the amount shown, e.g. "< $0.0001". */
  return g_strdup_printf (_("< %s"), smallest);
}

char *
gk_format_money (double usd)
{
  if (usd > 0 && usd < PER_REQUEST_MIN)
    return format_tiny ();
  if (usd > 0 && usd < ONE_CENT)
    return g_strdup_printf ("$%.4f", usd);
  return g_strdup_printf ("$%'.2f", usd);
}

char *
gk_format_money_per_request (double usd)
{
  if (usd > 0 && usd < PER_REQUEST_MIN)
    return format_tiny ();
  return g_strdup_printf ("$%'.4f", usd);
}

/* The desktop's interface settings, or NULL without that schema. Made once
 * and kept: it follows changes by itself. */
static GSettings *
interface_settings (void)
{
  static gsize initialized;
  static GSettings *settings;

  if (g_once_init_enter (&initialized))
    {
      GSettingsSchemaSource *source = g_settings_schema_source_get_default ();
      g_autoptr(GSettingsSchema) schema = NULL;

      if (source != NULL)
        schema = g_settings_schema_source_lookup (source, INTERFACE_SCHEMA, TRUE);
      if (schema != NULL && g_settings_schema_has_key (schema, "clock-format"))
        settings = g_settings_new_full (schema, NULL, NULL);
      g_once_init_leave (&initialized, 1);
    }
  return settings;
}

gboolean
gk_format_uses_24h (void)
{
  GSettings *settings = interface_settings ();
  g_autofree char *format = NULL;

  if (settings == NULL)
    return TRUE;
  format = g_settings_get_string (settings, "clock-format");
  return g_strcmp0 (format, "12h") != 0;
}

static char *
format_clock (GDateTime *dt)
{
  /* Translators: strftime formats of a time of day, 24-hour and 12-hour. */
  return g_date_time_format (dt, gk_format_uses_24h () ? _("%H:%M") : _("%-I:%M %p"));
}

char *
gk_format_date_at (gint64 unix_time,
                   gint64 now)
{
  g_autoptr(GDateTime) then = NULL;
  g_autoptr(GDateTime) today = NULL;
  g_autofree char *clock = NULL;
  g_autofree char *day = NULL;
  gint64 days_ago;

  if (unix_time <= 0)
    return g_strdup ("");

  then = g_date_time_new_from_unix_local (unix_time);
  today = g_date_time_new_from_unix_local (now);
  if (then == NULL || today == NULL)
    return g_strdup ("");

  clock = format_clock (then);

  /* Calendar days, not 24-hour spans: 23:50 yesterday is "Yesterday". */
  {
    GDate a, b;

    g_date_clear (&a, 1);
    g_date_clear (&b, 1);
    g_date_set_dmy (&a, g_date_time_get_day_of_month (then), g_date_time_get_month (then),
                    g_date_time_get_year (then));
    g_date_set_dmy (&b, g_date_time_get_day_of_month (today), g_date_time_get_month (today),
                    g_date_time_get_year (today));
    days_ago = g_date_days_between (&a, &b);
  }

  if (days_ago == 0)
    /* Translators: %s is a time of day, e.g. "Today 20:23". */
    return g_strdup_printf (_("Today %s"), clock);
  if (days_ago == 1)
    /* Translators: %s is a time of day, e.g. "Yesterday 09:10". */
    return g_strdup_printf (_("Yesterday %s"), clock);

  if (g_date_time_get_year (then) == g_date_time_get_year (today))
    /* Translators: strftime format of a day this year, e.g. "Tue 1 Dec". */
    day = g_date_time_format (then, _("%a %-d %b"));
  else
    /* Translators: strftime format of a day in another year, e.g. "Tue 1 Dec 2025". */
    day = g_date_time_format (then, _("%a %-d %b %Y"));

  /* Translators: a day and a time of day, e.g. "Tue 1 Dec 14:05". */
  return g_strdup_printf (C_("day and time", "%s %s"), day, clock);
}

char *
gk_format_date (gint64 unix_time)
{
  return gk_format_date_at (unix_time, g_get_real_time () / G_USEC_PER_SEC);
}

char *
gk_format_date_full (gint64 unix_time)
{
  g_autoptr(GDateTime) dt = NULL;
  g_autofree char *day = NULL;
  g_autofree char *clock = NULL;

  if (unix_time <= 0)
    return NULL;
  dt = g_date_time_new_from_unix_local (unix_time);
  if (dt == NULL)
    return NULL;

  /* Translators: strftime format of a full date, e.g. "Tuesday 1 December 2026". */
  day = g_date_time_format (dt, _("%A %-d %B %Y"));
  /* Translators: strftime formats of a time with seconds, 24-hour and 12-hour. */
  clock = g_date_time_format (dt, gk_format_uses_24h () ? _("%H:%M:%S") : _("%-I:%M:%S %p"));
  /* Translators: a full date and a time, e.g. "Tuesday 1 December 2026, 14:05:09". */
  return g_strdup_printf (C_("full date and time", "%s, %s"), day, clock);
}

/**
 * gk_format_moment_at:
 *
 * A moment ahead or behind, for a sentence: the time alone on @now's
 * local day ("16:40"), else as gk_format_date_at() ("Fri 4 Dec 09:00").
 */
char *
gk_format_moment_at (gint64 unix_time,
                     gint64 now)
{
  g_autoptr(GDateTime) then = NULL;
  g_autoptr(GDateTime) today = NULL;

  if (unix_time <= 0)
    return g_strdup ("");
  then = g_date_time_new_from_unix_local (unix_time);
  today = g_date_time_new_from_unix_local (now);
  if (then != NULL && today != NULL
      && g_date_time_get_year (then) == g_date_time_get_year (today)
      && g_date_time_get_day_of_year (then) == g_date_time_get_day_of_year (today))
    return format_clock (then);
  return gk_format_date_at (unix_time, now);
}
