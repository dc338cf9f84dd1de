/* gk-quotas.c: quota windows and their resets.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-audit.h"
#include "gk-database-private.h"
#include "gk-quotas.h"

#define SECONDS_PER_MINUTE 60

G_DEFINE_QUARK (gk-quotas-error-quark, gk_quotas_error)

/* Local midnight of @year-@month-@day in @tz, as UTC seconds. */
static gint64
local_midnight (GTimeZone *tz,
                int        year,
                int        month,
                int        day)
{
  g_autoptr(GDateTime) dt = g_date_time_new (tz, year, month, day, 0, 0, 0);

  return g_date_time_to_unix (dt);
}

gint64
gk_quota_window_start (GkQuotaType  type,
                       gint64       now,
                       GTimeZone   *tz)
{
  g_autoptr(GDateTime) utc = NULL;
  g_autoptr(GDateTime) local = NULL;

  g_return_val_if_fail (tz != NULL, 0);

  if (type == GK_QUOTA_PER_MINUTE)
    return now - (((now % SECONDS_PER_MINUTE) + SECONDS_PER_MINUTE) % SECONDS_PER_MINUTE);

  utc = g_date_time_new_from_unix_utc (now);
  local = g_date_time_to_timezone (utc, tz);
  return local_midnight (tz, g_date_time_get_year (local), g_date_time_get_month (local),
                         type == GK_QUOTA_MONTHLY ? 1 : g_date_time_get_day_of_month (local));
}

gint64
gk_quota_next_reset (GkQuotaType  type,
                     gint64       now,
                     GTimeZone   *tz)
{
  g_autoptr(GDateTime) utc = NULL;
  g_autoptr(GDateTime) local = NULL;
  GDate date;

  g_return_val_if_fail (tz != NULL, 0);

  if (type == GK_QUOTA_PER_MINUTE)
    return gk_quota_window_start (type, now, tz) + SECONDS_PER_MINUTE;

  /* Calendar arithmetic on the local date, then back to an instant: a day
   * is 23 or 25 hours long when DST changes, never "86400 seconds". */
  utc = g_date_time_new_from_unix_utc (now);
  local = g_date_time_to_timezone (utc, tz);
  g_date_clear (&date, 1);
  g_date_set_dmy (&date, g_date_time_get_day_of_month (local), g_date_time_get_month (local),
                  g_date_time_get_year (local));
  if (type == GK_QUOTA_MONTHLY)
    {
      g_date_set_day (&date, 1);
      g_date_add_months (&date, 1);
    }
  else
    {
      g_date_add_days (&date, 1);
    }
  return local_midnight (tz, g_date_get_year (&date), g_date_get_month (&date),
                         g_date_get_day (&date));
}

char *
gk_quota_format_reset_iso (gint64     reset_at,
                           GTimeZone *local_tz)
{
  g_autoptr(GDateTime) utc = NULL;
  g_autoptr(GDateTime) local = NULL;

  g_return_val_if_fail (local_tz != NULL, NULL);

  if (reset_at <= 0 || (utc = g_date_time_new_from_unix_utc (reset_at)) == NULL)
    return NULL;
  local = g_date_time_to_timezone (utc, local_tz);
  /* Not g_date_time_format_iso8601(): it writes "Z" for UTC and drops the
   * offset's minutes in some versions; "+00:00" reads the same everywhere. */
  return g_date_time_format (local, "%Y-%m-%dT%H:%M:%S%:z");
}

/* The zone's abbreviation ("PST", "CET"), or "UTC+07" where the zone has
 * only a numeric one ("+07", "+0530"). */
static char *
zone_label (GDateTime *dt)
{
  const char *abbreviation = g_date_time_get_timezone_abbreviation (dt);

  if (abbreviation[0] == '+' || abbreviation[0] == '-')
    {
      gint64 offset = g_date_time_get_utc_offset (dt) / G_TIME_SPAN_SECOND;
      gint64 minutes = ABS (offset) / 60;

      if (minutes % 60 == 0)
        return g_strdup_printf ("UTC%c%02d", offset < 0 ? '-' : '+', (int) (minutes / 60));
      return g_strdup_printf ("UTC%c%02d:%02d", offset < 0 ? '-' : '+', (int) (minutes / 60),
                              (int) (minutes % 60));
    }
  return g_strdup (abbreviation);
}

static int
day_number (GDateTime *dt)
{
  GDate date;

  g_date_clear (&date, 1);
  g_date_set_dmy (&date, g_date_time_get_day_of_month (dt), g_date_time_get_month (dt),
                  g_date_time_get_year (dt));
  return (int) g_date_get_julian (&date);
}

char *
gk_quota_format_reset (gint64     reset_at,
                       gint64     now,
                       GTimeZone *local_tz,
                       GTimeZone *reset_tz)
{
  g_autoptr(GDateTime) utc = NULL;
  g_autoptr(GDateTime) local = NULL;
  g_autoptr(GDateTime) local_now = NULL;
  g_autoptr(GDateTime) utc_now = NULL;
  g_autofree char *clock = NULL;
  g_autofree char *zone = NULL;
  g_autofree char *when = NULL;
  int days;

  g_return_val_if_fail (local_tz != NULL, NULL);

  if (reset_at <= 0 || (utc = g_date_time_new_from_unix_utc (reset_at)) == NULL)
    return NULL;
  utc_now = g_date_time_new_from_unix_utc (now);
  local = g_date_time_to_timezone (utc, local_tz);
  local_now = g_date_time_to_timezone (utc_now, local_tz);
  clock = g_date_time_format (local, "%H:%M");
  zone = zone_label (local);

  days = day_number (local) - day_number (local_now);
  if (days == 0)
    /* Translators: a time and its zone, e.g. "15:00 UTC+07". */
    when = g_strdup_printf (C_("reset time", "%s %s"), clock, zone);
  else if (days == 1)
    /* Translators: a time and its zone on the next day, e.g. "tomorrow 15:00 UTC+07". */
    when = g_strdup_printf (C_("reset time", "tomorrow %s %s"), clock, zone);
  else
    {
      g_autofree char *date = g_date_time_format (local, "%Y-%m-%d");

      /* Translators: a date, a time and its zone, e.g. "2026-04-01 14:00 UTC+07". */
      when = g_strdup_printf (C_("reset time", "%s %s %s"), date, clock, zone);
    }

  if (reset_tz != NULL)
    {
      g_autoptr(GDateTime) there = g_date_time_to_timezone (utc, reset_tz);

      if (g_date_time_get_utc_offset (there) != g_date_time_get_utc_offset (local))
        {
          g_autofree char *there_zone = zone_label (there);

          if (g_date_time_get_hour (there) == 0 && g_date_time_get_minute (there) == 0)
            /* Translators: the local reset time, then midnight in the reset
             * time zone: "15:00 UTC+07, midnight PST". */
            return g_strdup_printf (_("%s, midnight %s"), when, there_zone);
          else
            {
              g_autofree char *there_clock = g_date_time_format (there, "%H:%M");

              /* Translators: the local reset time, then the same moment in
               * the reset time zone: "15:04 UTC+07, 00:04 PST". */
              return g_strdup_printf (_("%s, %s %s"), when, there_clock, there_zone);
            }
        }
    }
  return g_steal_pointer (&when);
}

static gboolean
run (GkDatabase   *db,
     const char   *sql,
     const char   *type,
     gint64        a,
     gint64        b,
     GError      **error)
{
  GkSqlStmt *stmt = gk_database_prepare (db, sql, error);
  int rc;

  if (stmt == NULL)
    return FALSE;
  if (type != NULL)
    gk_sql_bind_text (stmt, 1, type, -1);
  gk_sql_bind_int64 (stmt, 2, a);
  /* Not every statement has a ?3: PostgreSQL's driver refuses to bind a
   * parameter the statement does not have, as SQLite quietly does. */
  if (gk_sql_bind_parameter_count (stmt) >= 3)
    gk_sql_bind_int64 (stmt, 3, b);
  rc = gk_sql_step (stmt);
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (db, error, _("Cannot reset the quotas"));
      return FALSE;
    }
  return TRUE;
}

/* Keys whose reason to be out of service has ended come back: expired
 * cooldowns, and QUOTA_EXCEEDED keys whose every quota is above the
 * threshold again and whose budget is not reached. */
static gboolean
reactivate_keys (GkDatabase  *db,
                 gint64       now,
                 GError     **error)
{
  GkSqlStmt *stmt;
  int rc;

  if (!run (db,
            "UPDATE gemini_api_keys SET status = 'ACTIVE', status_reason = NULL,"
            " cooldown_until = 0"
            " WHERE status = 'RATE_LIMITED' AND cooldown_until <= ?2 AND CAST (?1 AS TEXT) IS NULL",
            NULL, now, 0, error))
    return FALSE;
  if (!run (db,
            "UPDATE gemini_api_keys SET status_reason = NULL, cooldown_until = 0"
            " WHERE status = 'ACTIVE' AND cooldown_until != 0 AND cooldown_until <= ?2"
            " AND CAST (?1 AS TEXT) IS NULL",
            NULL, now, 0, error))
    return FALSE;

  stmt = gk_database_prepare (
    db,
    "UPDATE gemini_api_keys SET status = 'ACTIVE', status_reason = NULL"
    " WHERE status = 'QUOTA_EXCEEDED'"
    " AND (monthly_budget_usd IS NULL OR month_cost_usd < monthly_budget_usd)"
    " AND NOT EXISTS (SELECT 1 FROM gemini_key_quotas q WHERE q.key_id = gemini_api_keys.id"
    "   AND q.limit_value > 0 AND (q.limit_value - q.used_value) * 100.0 < ?1 * q.limit_value)",
    error);
  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_double (stmt, 1, gk_database_get_rotation_threshold (db));
  rc = gk_sql_step (stmt);
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (db, error, _("Cannot reset the quotas"));
      return FALSE;
    }
  return TRUE;
}

/* Resets the windows of @type that ended by @now, and pulls reset_at back
 * to the current window after the clock went backwards (the counter is
 * kept: better to under-use a key than to overrun its quota). */
static gboolean
roll_windows (GkDatabase  *db,
              GkQuotaType  type,
              gint64       now,
              GTimeZone   *tz,
              GError     **error)
{
  const char *name = gk_quota_type_to_string (type);
  gint64 next = gk_quota_next_reset (type, now, tz);

  if (type == GK_QUOTA_MONTHLY
      && !run (db,
               "UPDATE gemini_api_keys SET month_cost_usd = 0 WHERE id IN"
               " (SELECT key_id FROM gemini_key_quotas WHERE quota_type = ?1 AND reset_at <= ?2)"
               " AND ?3 = ?3",
               name, now, 0, error))
    return FALSE;

  return run (db,
              "UPDATE gemini_key_quotas SET used_value = 0, reset_at = ?3"
              " WHERE quota_type = ?1 AND reset_at <= ?2",
              name, now, next, error)
         && run (db,
                 "UPDATE gemini_key_quotas SET reset_at = ?3"
                 " WHERE quota_type = ?1 AND reset_at > ?3 AND ?2 = ?2",
                 name, now, next, error);
}

static gboolean
something_due (GkDatabase *db,
               gint64      now,
               GTimeZone  *tz)
{
  GkSqlStmt *stmt;
  gboolean due = TRUE;

  /* Due: a window ended, a cooldown ended, or a reset_at lies beyond the
   * end of its current window (the clock went back). */
  stmt = gk_database_prepare (
    db,
    "SELECT EXISTS (SELECT 1 FROM gemini_key_quotas WHERE reset_at <= ?1"
    "   OR (quota_type = 'PER_MINUTE' AND reset_at > ?2)"
    "   OR (quota_type = 'DAILY' AND reset_at > ?3)"
    "   OR (quota_type = 'MONTHLY' AND reset_at > ?4))"
    " OR EXISTS (SELECT 1 FROM gemini_api_keys WHERE cooldown_until != 0"
    "            AND cooldown_until <= ?1)",
    NULL);
  if (stmt == NULL)
    return TRUE;
  gk_sql_bind_int64 (stmt, 1, now);
  gk_sql_bind_int64 (stmt, 2, gk_quota_next_reset (GK_QUOTA_PER_MINUTE, now, tz));
  gk_sql_bind_int64 (stmt, 3, gk_quota_next_reset (GK_QUOTA_DAILY, now, tz));
  gk_sql_bind_int64 (stmt, 4, gk_quota_next_reset (GK_QUOTA_MONTHLY, now, tz));
  if (gk_sql_step (stmt) == GK_SQL_ROW)
    due = gk_sql_column_int64 (stmt, 0) != 0;
  gk_sql_reset (stmt);
  return due;
}

gboolean
gk_quotas_reset_expired (GkDatabase  *db,
                         GError     **error)
{
  g_autoptr(GTimeZone) tz = NULL;
  gint64 now;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);

  tz = gk_database_get_reset_timezone (db);
  now = gk_database_now (db);

  gk_database_lock (db);
  if (!something_due (db, now, tz))
    {
      gk_database_unlock (db);
      return TRUE;
    }
  gk_database_unlock (db);

  if (!gk_database_begin (db, error))
    return FALSE;
  for (GkQuotaType type = 0; type < GK_QUOTA_N_TYPES; type++)
    {
      if (!roll_windows (db, type, now, tz, error))
        goto fail;
    }
  if (!reactivate_keys (db, now, error))
    goto fail;
  if (!gk_database_commit (db, error))
    return FALSE;
  gk_database_touch (db);
  return TRUE;

fail:
  gk_database_rollback (db);
  return FALSE;
}

gboolean
gk_quotas_reset (GkDatabase   *db,
                 gboolean      all,
                 GkQuotaType   type,
                 const char   *triggered_by,
                 GError      **error)
{
  g_autoptr(GTimeZone) tz = NULL;
  GkSqlStmt *stmt;
  gint64 now;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (triggered_by != NULL, FALSE);

  tz = gk_database_get_reset_timezone (db);
  now = gk_database_now (db);

  if (!gk_database_begin (db, error))
    return FALSE;
  for (GkQuotaType t = 0; t < GK_QUOTA_N_TYPES; t++)
    {
      if (!all && t != type)
        continue;
      if (!run (db,
                "UPDATE gemini_key_quotas SET used_value = 0, reset_at = ?3"
                " WHERE quota_type = ?1 AND ?2 = ?2",
                gk_quota_type_to_string (t), now, gk_quota_next_reset (t, now, tz), error))
        goto fail;
    }
  if (!reactivate_keys (db, now, error))
    goto fail;

  stmt = gk_database_prepare (db,
                              "INSERT INTO quota_reset_log (quota_type, triggered_by, created_at)"
                              " VALUES (?1, ?2, ?3)",
                              error);
  if (stmt == NULL)
    goto fail;
  if (all)
    gk_sql_bind_null (stmt, 1);
  else
    gk_sql_bind_text (stmt, 1, gk_quota_type_to_string (type), -1);
  gk_sql_bind_text (stmt, 2, triggered_by, -1);
  gk_sql_bind_int64 (stmt, 3, now);
  if (gk_sql_step (stmt) != GK_SQL_DONE)
    {
      gk_database_set_error (db, error, _("Cannot reset the quotas"));
      gk_sql_reset (stmt);
      goto fail;
    }
  gk_sql_reset (stmt);
  if (!gk_audit_record (db, GK_AUDIT_QUOTA_RESET, 0,
                        all ? GK_AUDIT_TARGET_ALL_QUOTAS : gk_quota_type_to_string (type), NULL, error))
    goto fail;
  if (!gk_database_commit (db, error))
    return FALSE;
  gk_database_touch (db);
  return TRUE;

fail:
  gk_database_rollback (db);
  return FALSE;
}

gint64
gk_quotas_next_boundary (GkDatabase  *db,
                         GError     **error)
{
  GkSqlStmt *stmt;
  gint64 next = 0;

  g_return_val_if_fail (GK_IS_DATABASE (db), 0);

  gk_database_lock (db);
  /* Only windows whose reset changes something visible: a limit or a count. */
  stmt = gk_database_prepare (
    db,
    "SELECT MIN(t) FROM ("
    " SELECT MIN(q.reset_at) AS t FROM gemini_key_quotas q JOIN gemini_api_keys k ON k.id = q.key_id"
    "  WHERE k.deleted_at IS NULL AND (q.limit_value > 0 OR q.used_value > 0)"
    " UNION ALL"
    " SELECT MIN(cooldown_until) FROM gemini_api_keys"
    "  WHERE deleted_at IS NULL AND cooldown_until != 0) AS windows",
    error);
  if (stmt != NULL)
    {
      if (gk_sql_step (stmt) == GK_SQL_ROW)
        next = gk_sql_column_int64 (stmt, 0);
      else
        gk_database_set_error (db, error, _("Cannot read the quotas"));
      gk_sql_reset (stmt);
    }
  gk_database_unlock (db);
  return next;
}
