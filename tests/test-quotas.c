/* test-quotas.c: windows, resets, DST days, clock jumps.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <locale.h>

#include "gk-test-util.h"

static gint64
utc (int year, int month, int day, int hour, int minute, int second)
{
  g_autoptr(GDateTime) dt = g_date_time_new_utc (year, month, day, hour, minute, second);
  return g_date_time_to_unix (dt);
}

typedef struct
{
  const char  *zone;
  GkQuotaType  type;
  gint64       now;
  gint64       expected_next;
  gint64       expected_start;
} BoundaryCase;

static void
test_boundaries (void)
{
  /* Los Angeles: PST = UTC−8, PDT = UTC−7. 2026-03-08 is 23 h long (spring
   * forward), 2026-11-01 is 25 h long (fall back). */
  const BoundaryCase cases[] = {
    /* Minute windows align to the minute in any zone. */
    { "America/Los_Angeles", GK_QUOTA_PER_MINUTE, utc (2026, 3, 15, 12, 0, 0),
      utc (2026, 3, 15, 12, 1, 0), utc (2026, 3, 15, 12, 0, 0) },
    { "America/Los_Angeles", GK_QUOTA_PER_MINUTE, utc (2026, 3, 15, 12, 0, 59),
      utc (2026, 3, 15, 12, 1, 0), utc (2026, 3, 15, 12, 0, 0) },
    /* An ordinary PDT day: midnight is 07:00 UTC. */
    { "America/Los_Angeles", GK_QUOTA_DAILY, utc (2026, 3, 15, 12, 0, 0),
      utc (2026, 3, 16, 7, 0, 0), utc (2026, 3, 15, 7, 0, 0) },
    /* Exactly at midnight: the window that starts now ends tomorrow. */
    { "America/Los_Angeles", GK_QUOTA_DAILY, utc (2026, 3, 16, 7, 0, 0),
      utc (2026, 3, 17, 7, 0, 0), utc (2026, 3, 16, 7, 0, 0) },
    /* The 23-hour day: starts 08:00 UTC (PST), ends 07:00 UTC next day. */
    { "America/Los_Angeles", GK_QUOTA_DAILY, utc (2026, 3, 8, 12, 0, 0),
      utc (2026, 3, 9, 7, 0, 0), utc (2026, 3, 8, 8, 0, 0) },
    /* The 25-hour day: starts 07:00 UTC (PDT), ends 08:00 UTC next day. */
    { "America/Los_Angeles", GK_QUOTA_DAILY, utc (2026, 11, 1, 12, 0, 0),
      utc (2026, 11, 2, 8, 0, 0), utc (2026, 11, 1, 7, 0, 0) },
    /* Month ends: February in a common year, a 31-day month, the year end. */
    { "America/Los_Angeles", GK_QUOTA_MONTHLY, utc (2026, 2, 28, 20, 0, 0),
      utc (2026, 3, 1, 8, 0, 0), utc (2026, 2, 1, 8, 0, 0) },
    { "America/Los_Angeles", GK_QUOTA_MONTHLY, utc (2026, 3, 31, 23, 0, 0),
      utc (2026, 4, 1, 7, 0, 0), utc (2026, 3, 1, 8, 0, 0) },
    { "UTC", GK_QUOTA_MONTHLY, utc (2026, 12, 31, 23, 59, 59),
      utc (2027, 1, 1, 0, 0, 0), utc (2026, 12, 1, 0, 0, 0) },
    { "UTC", GK_QUOTA_DAILY, utc (2028, 2, 28, 23, 0, 0),
      utc (2028, 2, 29, 0, 0, 0), utc (2028, 2, 28, 0, 0, 0) },
    /* 23:30 local on Dec 31 in LA is already Jan 1 in UTC. */
    { "America/Los_Angeles", GK_QUOTA_MONTHLY, utc (2027, 1, 1, 7, 30, 0),
      utc (2027, 1, 1, 8, 0, 0), utc (2026, 12, 1, 8, 0, 0) },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GTimeZone) tz = g_time_zone_new_identifier (cases[i].zone);

      g_assert_nonnull (tz);
      g_test_message ("case %u", i);
      g_assert_cmpint (gk_quota_next_reset (cases[i].type, cases[i].now, tz), ==,
                       cases[i].expected_next);
      g_assert_cmpint (gk_quota_window_start (cases[i].type, cases[i].now, tz), ==,
                       cases[i].expected_start);
    }

  /* The DST days really are 23 and 25 hours long. */
  {
    g_autoptr(GTimeZone) la = g_time_zone_new_identifier ("America/Los_Angeles");
    gint64 spring = gk_quota_window_start (GK_QUOTA_DAILY, utc (2026, 3, 8, 12, 0, 0), la);
    gint64 fall = gk_quota_window_start (GK_QUOTA_DAILY, utc (2026, 11, 1, 12, 0, 0), la);

    g_assert_cmpint (gk_quota_next_reset (GK_QUOTA_DAILY, spring, la) - spring, ==, 23 * 3600);
    g_assert_cmpint (gk_quota_next_reset (GK_QUOTA_DAILY, fall, la) - fall, ==, 25 * 3600);
  }
}

typedef GkTestFixture Fixture;

static gint64
add_key_with_limits (Fixture *f,
                     gint64   monthly,
                     gint64   daily,
                     gint64   minute)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *api_key = NULL;
  static guint n;
  GkKeySpec spec;
  gint64 id;

  gk_key_spec_init (&spec);
  spec.name = "limited";
  spec.limits[GK_QUOTA_SLOT_MONTHLY_TOKENS] = monthly;
  spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = daily;
  spec.limits[GK_QUOTA_SLOT_MINUTE_TOKENS] = minute;
  api_key = gk_test_api_key (n++);
  id = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);
  return id;
}

static gint64
used (Fixture     *f,
      gint64       key_id,
      GkQuotaSlot  slot)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) key = gk_key_store_get (f->store, key_id, &error);

  g_assert_no_error (error);
  return key->quotas[slot].used_value;
}

static void
test_lazy_reset (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GTimeZone) la = g_time_zone_new_identifier ("America/Los_Angeles");
  gint64 id = add_key_with_limits (f, 1000000, 100000, 10000);
  gint64 now = GK_TEST_EPOCH;

  gk_test_track (f->pool, id, GK_USAGE_SUCCESS, 500);
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_MINUTE_TOKENS), ==, 500);
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_DAILY_TOKENS), ==, 500);
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_MONTHLY_TOKENS), ==, 500);

  /* One second before the minute ends nothing resets; at the boundary the
   * minute window does, and only it. */
  gk_clock_set (f->clock, gk_quota_next_reset (GK_QUOTA_PER_MINUTE, now, la) - 1);
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_MINUTE_TOKENS), ==, 500);
  gk_clock_set (f->clock, gk_quota_next_reset (GK_QUOTA_PER_MINUTE, now, la));
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_MINUTE_TOKENS), ==, 0);
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_DAILY_TOKENS), ==, 500);

  /* Pacific midnight resets the day, not the month. */
  gk_clock_set (f->clock, gk_quota_next_reset (GK_QUOTA_DAILY, now, la));
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_DAILY_TOKENS), ==, 0);
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_MONTHLY_TOKENS), ==, 500);

  /* The 1st of the next month resets the month. */
  gk_clock_set (f->clock, gk_quota_next_reset (GK_QUOTA_MONTHLY, now, la));
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_MONTHLY_TOKENS), ==, 0);
}

static void
test_dst_day_reset (Fixture       *f,
                    gconstpointer  data)
{
  gint64 id;

  /* On the 23-hour day, a charge at 00:30 PST is reset at 00:00 PDT of
   * the next day: 22.5 hours later, not 24. */
  gk_clock_set (f->clock, utc (2026, 3, 8, 8, 30, 0));
  id = add_key_with_limits (f, 0, 1000, 0);
  gk_test_track (f->pool, id, GK_USAGE_SUCCESS, 10);
  gk_clock_set (f->clock, utc (2026, 3, 9, 6, 59, 59));
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_DAILY_TOKENS), ==, 10);
  gk_clock_set (f->clock, utc (2026, 3, 9, 7, 0, 0));
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_DAILY_TOKENS), ==, 0);

  /* On the 25-hour day the window lasts until 08:00 UTC. */
  gk_clock_set (f->clock, utc (2026, 11, 1, 7, 30, 0));
  gk_test_track (f->pool, id, GK_USAGE_SUCCESS, 20);
  gk_clock_set (f->clock, utc (2026, 11, 2, 7, 30, 0));
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_DAILY_TOKENS), ==, 20);
  gk_clock_set (f->clock, utc (2026, 11, 2, 8, 0, 0));
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_DAILY_TOKENS), ==, 0);
}

typedef struct
{
  gint64      now;           /* the injected clock */
  const char *daily_iso;     /* the next daily reset, in Ho Chi Minh City */
  const char *daily_text;
  const char *monthly_text;
} ResetCase;

/* An admin in Vietnam: the daily window resets at 15:00 local time while
 * the US is on standard time and at 14:00 during its summer time, on both
 * sides of the spring and autumn changes. */
static void
test_reset_times_local (Fixture       *f,
                        gconstpointer  data)
{
  static const ResetCase cases[] = {
    /* Saturday 2026-03-07 10:00 UTC: 17:00 in Hanoi, 02:00 PST. */
    { 1772877600, "2026-03-08T15:00:00+07:00", "tomorrow 15:00 UTC+07, midnight PST",
      "2026-04-01 14:00 UTC+07, midnight PDT" },
    /* Sunday 2026-03-08 07:30 UTC: 14:30 in Hanoi, 23:30 PST on the 7th;
     * the clocks change at 02:00, so that midnight is still PST. */
    { 1772955000, "2026-03-08T15:00:00+07:00", "15:00 UTC+07, midnight PST",
      "2026-04-01 14:00 UTC+07, midnight PDT" },
    /* Sunday 2026-03-08 10:00 UTC, the first hours of PDT. */
    { 1772964000, "2026-03-09T14:00:00+07:00", "tomorrow 14:00 UTC+07, midnight PDT",
      "2026-04-01 14:00 UTC+07, midnight PDT" },
    /* Sunday 2026-11-01 06:00 UTC: 13:00 in Hanoi, 23:00 PDT on Oct 31;
     * the day and the month both end at 00:00 PDT. */
    { 1793512800, "2026-11-01T14:00:00+07:00", "14:00 UTC+07, midnight PDT",
      "14:00 UTC+07, midnight PDT" },
    /* Monday 2026-11-02 03:00 UTC: 10:00 in Hanoi, 19:00 PST on the 1st. */
    { 1793588400, "2026-11-02T15:00:00+07:00", "15:00 UTC+07, midnight PST",
      "2026-12-01 15:00 UTC+07, midnight PST" },
  };
  g_autoptr(GTimeZone) reset_tz = NULL;
  g_autoptr(GTimeZone) local_tz = NULL;
  g_autofree char *old_tz = g_strdup (g_getenv ("TZ"));
  g_autofree char *old_locale = g_strdup (setlocale (LC_ALL, NULL));
  gint64 id;

  /* The strings are checked in English whatever the environment. */
  setlocale (LC_ALL, "C.UTF-8");
  g_setenv ("TZ", "Asia/Ho_Chi_Minh", TRUE);
  local_tz = g_time_zone_new_local ();
  g_assert_cmpstr (g_time_zone_get_identifier (local_tz), ==, "Asia/Ho_Chi_Minh");
  reset_tz = gk_database_get_reset_timezone (f->db);
  g_assert_cmpstr (g_time_zone_get_identifier (reset_tz), ==, "America/Los_Angeles");

  gk_clock_set (f->clock, cases[0].now);
  id = add_key_with_limits (f, 1000000, 1000, 0);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GkKey) key = NULL;
      g_autofree char *iso = NULL;
      g_autofree char *text = NULL;
      g_autofree char *month = NULL;
      g_autoptr(JsonBuilder) builder = json_builder_new ();
      g_autoptr(JsonNode) root = NULL;
      JsonObject *daily;

      g_test_message ("case %u", i);
      gk_clock_set (f->clock, cases[i].now);
      key = gk_key_store_get (f->store, id, &error);
      g_assert_no_error (error);

      iso = gk_quota_format_reset_iso (key->quotas[GK_QUOTA_SLOT_DAILY_TOKENS].reset_at, local_tz);
      g_assert_cmpstr (iso, ==, cases[i].daily_iso);
      text = gk_quota_format_reset (key->quotas[GK_QUOTA_SLOT_DAILY_TOKENS].reset_at,
                                    cases[i].now, local_tz, reset_tz);
      g_assert_cmpstr (text, ==, cases[i].daily_text);
      month = gk_quota_format_reset (key->quotas[GK_QUOTA_SLOT_MONTHLY_TOKENS].reset_at,
                                     cases[i].now, local_tz, reset_tz);
      g_assert_cmpstr (month, ==, cases[i].monthly_text);

      /* The JSON of `key show` and the admin API carries the same. */
      gk_json_add_key (builder, key, reset_tz);
      root = json_builder_get_root (builder);
      daily = json_array_get_object_element (
        json_object_get_array_member (json_node_get_object (root), "quotas"),
        GK_QUOTA_SLOT_DAILY_TOKENS);
      g_assert_cmpstr (json_object_get_string_member (daily, "reset_at_local"), ==,
                       cases[i].daily_iso);
    }

  /* The next day is "tomorrow"; the same zone as the reset zone shows no
   * second clock. */
  {
    g_autofree char *tomorrow = gk_quota_format_reset (1772877600 + 86400, 1772877600,
                                                       local_tz, NULL);
    g_autofree char *same = gk_quota_format_reset (1772877600 + 3600, 1772877600,
                                                   local_tz, local_tz);

    g_assert_cmpstr (tomorrow, ==, "tomorrow 17:00 UTC+07");
    g_assert_cmpstr (same, ==, "18:00 UTC+07");
    g_assert_null (gk_quota_format_reset (0, 1772877600, local_tz, reset_tz));
  }

  if (old_tz != NULL)
    g_setenv ("TZ", old_tz, TRUE);
  else
    g_unsetenv ("TZ");
  setlocale (LC_ALL, old_locale);
}

static void
test_clock_jump (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) key = NULL;
  g_autoptr(GTimeZone) la = g_time_zone_new_identifier ("America/Los_Angeles");
  gint64 id = add_key_with_limits (f, 0, 1000, 0);

  gk_test_track (f->pool, id, GK_USAGE_SUCCESS, 100);

  /* The clock steps back a day: the counter is kept (never overrun a
   * quota) and the window now ends at the next midnight of the new "now",
   * not two days out. */
  gk_clock_advance (f->clock, -86400);
  key = gk_key_store_get (f->store, id, &error);
  g_assert_no_error (error);
  g_assert_cmpint (key->quotas[GK_QUOTA_SLOT_DAILY_TOKENS].used_value, ==, 100);
  g_assert_cmpint (key->quotas[GK_QUOTA_SLOT_DAILY_TOKENS].reset_at, ==,
                   gk_quota_next_reset (GK_QUOTA_DAILY, gk_clock_now (f->clock), la));
  g_clear_pointer (&key, gk_key_free);

  /* Then forward by two days: the window has ended, the counter resets. */
  gk_clock_advance (f->clock, 2 * 86400);
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_DAILY_TOKENS), ==, 0);
}

static void
test_manual_reset_and_boundary (Fixture       *f,
                                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GTimeZone) la = g_time_zone_new_identifier ("America/Los_Angeles");
  gint64 id = add_key_with_limits (f, 5000, 1000, 100);
  gint64 next;

  gk_test_track (f->pool, id, GK_USAGE_SUCCESS, 50);

  next = gk_quotas_next_boundary (f->db, &error);
  g_assert_no_error (error);
  g_assert_cmpint (next, ==, gk_quota_next_reset (GK_QUOTA_PER_MINUTE, GK_TEST_EPOCH, la));

  gk_quotas_reset (f->db, FALSE, GK_QUOTA_DAILY, "manual:test", &error);
  g_assert_no_error (error);
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_DAILY_TOKENS), ==, 0);
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_MONTHLY_TOKENS), ==, 50);

  gk_quotas_reset (f->db, TRUE, 0, "manual:test", &error);
  g_assert_no_error (error);
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_MONTHLY_TOKENS), ==, 0);
  g_assert_cmpint (used (f, id, GK_QUOTA_SLOT_MINUTE_TOKENS), ==, 0);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add_func ("/quotas/boundaries", test_boundaries);
  g_test_add ("/quotas/lazy-reset", Fixture, NULL, gk_test_fixture_setup, test_lazy_reset, gk_test_fixture_teardown);
  g_test_add ("/quotas/dst-days", Fixture, NULL, gk_test_fixture_setup, test_dst_day_reset, gk_test_fixture_teardown);
  g_test_add ("/quotas/reset-times-local", Fixture, NULL, gk_test_fixture_setup,
              test_reset_times_local, gk_test_fixture_teardown);
  g_test_add ("/quotas/clock-jump", Fixture, NULL, gk_test_fixture_setup, test_clock_jump, gk_test_fixture_teardown);
  g_test_add ("/quotas/manual-reset", Fixture, NULL, gk_test_fixture_setup, test_manual_reset_and_boundary,
              gk_test_fixture_teardown);

  return g_test_run ();
}
