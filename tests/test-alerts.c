/* test-alerts.c: what is worth a notification, and only once.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include "gk-database-private.h"
#include "gk-test-util.h"

typedef GkTestFixture Fixture;

static GPtrArray *
check (GkAlertTracker *tracker)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *alerts = gk_alert_tracker_check (tracker, &error);

  g_assert_no_error (error);
  g_assert_nonnull (alerts);
  return alerts;
}

static void
test_quota_low_and_invalid (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(GkAlertTracker) tracker = gk_alert_tracker_new (f->db);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) first = NULL;
  g_autoptr(GPtrArray) second = NULL;
  g_autoptr(GPtrArray) third = NULL;
  g_autoptr(GPtrArray) fourth = NULL;
  g_autofree char *api_key = gk_test_api_key (1);
  GkKeySpec spec;
  gint64 id, other;
  GkAlert *alert;

  gk_key_spec_init (&spec);
  spec.name = "small";
  spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = 1000;
  id = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);
  other = gk_test_add_key (f->store, "other", 5);

  first = check (tracker);
  g_assert_cmpint (first->len, ==, 0);

  /* 92% used: below 10% left. */
  gk_test_track (f->pool, id, GK_USAGE_SUCCESS, 920);
  second = check (tracker);
  g_assert_cmpint (second->len, ==, 1);
  alert = g_ptr_array_index (second, 0);
  g_assert_cmpint (alert->kind, ==, GK_ALERT_QUOTA_LOW);
  g_assert_cmpint (alert->key_id, ==, id);
  g_assert_cmpstr (alert->key_name, ==, "small");
  g_assert_cmpfloat_with_epsilon (alert->value, 8.0, 1e-9);

  /* Still low: not news. A key turning invalid is. */
  gk_test_track (f->pool, other, GK_USAGE_INVALID_KEY, 0);
  third = check (tracker);
  g_assert_cmpint (third->len, ==, 1);
  alert = g_ptr_array_index (third, 0);
  g_assert_cmpint (alert->kind, ==, GK_ALERT_KEY_INVALID);
  g_assert_cmpint (alert->key_id, ==, other);

  /* After the daily reset the quota is fine; running low again is news. */
  {
    g_autoptr(GTimeZone) la = g_time_zone_new_identifier ("America/Los_Angeles");
    gk_clock_set (f->clock, gk_quota_next_reset (GK_QUOTA_DAILY, GK_TEST_EPOCH, la));
  }
  g_ptr_array_unref (check (tracker));
  gk_test_track (f->pool, id, GK_USAGE_SUCCESS, 950);
  fourth = check (tracker);
  g_assert_cmpint (fourth->len, ==, 1);
  g_assert_cmpint (((GkAlert *) g_ptr_array_index (fourth, 0))->kind, ==, GK_ALERT_QUOTA_LOW);
}

static void
test_success_rate (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GkAlertTracker) tracker = gk_alert_tracker_new (f->db);
  gint64 id = gk_test_add_key (f->store, "k", 5);
  g_autoptr(GPtrArray) first = NULL;
  g_autoptr(GPtrArray) second = NULL;
  g_autoptr(GPtrArray) third = NULL;
  g_autoptr(GPtrArray) fourth = NULL;

  first = check (tracker);
  g_assert_cmpint (first->len, ==, 0);

  /* 8 of 10 succeed: 80%. */
  for (int i = 0; i < 8; i++)
    gk_test_track (f->pool, id, GK_USAGE_SUCCESS, 1);
  /* These are counted from the rollup, the next two from the log itself. */
  g_assert_true (gk_rollup_catch_up (f->db, NULL));
  for (int i = 0; i < 2; i++)
    gk_test_track (f->pool, id, GK_USAGE_ERROR, 0);
  second = check (tracker);
  g_assert_cmpint (second->len, ==, 1);
  g_assert_cmpint (((GkAlert *) g_ptr_array_index (second, 0))->kind, ==, GK_ALERT_SUCCESS_RATE);
  g_assert_cmpfloat_with_epsilon (((GkAlert *) g_ptr_array_index (second, 0))->value, 80.0, 1e-9);

  /* At most once an hour. */
  gk_clock_advance (f->clock, 1800);
  for (int i = 0; i < 10; i++)
    gk_test_track (f->pool, id, GK_USAGE_ERROR, 0);
  third = check (tracker);
  g_assert_cmpint (third->len, ==, 0);
  gk_clock_advance (f->clock, 1800);
  fourth = check (tracker);
  g_assert_cmpint (fourth->len, ==, 1);
}

static void
test_budget (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(GkAlertTracker) tracker = gk_alert_tracker_new (f->db);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) first = NULL;
  g_autoptr(GPtrArray) second = NULL;
  g_autofree char *api_key = gk_test_api_key (3);
  GkKeySpec spec;
  gint64 id;

  gk_key_spec_init (&spec);
  spec.name = "budgeted";
  spec.monthly_budget_usd = 0.5;
  id = gk_key_store_add (f->store, &spec, api_key, &error);
  first = check (tracker);
  g_assert_cmpint (first->len, ==, 0);
  /* 2M tokens of 2.5 Flash input: $0.60. */
  gk_test_track (f->pool, id, GK_USAGE_SUCCESS, 2000000);
  second = check (tracker);
  g_assert_cmpint (second->len, ==, 1);
  g_assert_cmpint (((GkAlert *) g_ptr_array_index (second, 0))->kind, ==, GK_ALERT_BUDGET);
  g_assert_cmpfloat (((GkAlert *) g_ptr_array_index (second, 0))->value, ==, 0.5);
}

static void
test_first_check_only_learns (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(GkAlertTracker) tracker = gk_alert_tracker_new (f->db);
  gint64 id = gk_test_add_key (f->store, "k", 5);
  g_autoptr(GPtrArray) first = NULL;
  g_autoptr(GPtrArray) second = NULL;

  gk_test_track (f->pool, id, GK_USAGE_INVALID_KEY, 0);
  first = check (tracker);
  g_assert_cmpint (first->len, ==, 0);
  second = check (tracker);
  g_assert_cmpint (second->len, ==, 0);
}


static void
exec_sql (GkDatabase *db,
          const char *sql)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (gk_database_exec (db, sql, &error));
  g_assert_no_error (error);
}

/* A key burning 4,000 tokens an hour is reported once when its daily
 * quota is forecast to run out within the hour, not before. */
static void
test_depletion (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GkAlertTracker) tracker = gk_alert_tracker_new (f->db);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) first = NULL;
  g_autoptr(GPtrArray) later = NULL;
  g_autoptr(GPtrArray) soon = NULL;
  g_autoptr(GPtrArray) again = NULL;
  g_autofree char *api_key = gk_test_api_key (7);
  g_autofree char *sql = NULL;
  GkKeySpec spec;
  GkAlert *alert;
  gint64 id;

  gk_key_spec_init (&spec);
  spec.name = "busy";
  spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = 60000;
  id = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);
  /* A day of 1,000 tokens every 15 minutes. */
  sql = g_strdup_printf ("WITH RECURSIVE t (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t"
                         " WHERE n < 96) INSERT INTO gemini_key_usage_log (key_id, model,"
                         " tokens_used, status, created_at) SELECT %" G_GINT64_FORMAT ", 'm',"
                         " 1000, 'SUCCESS', %" G_GINT64_FORMAT " - n * 900 FROM t",
                         id, gk_clock_now (f->clock));
  exec_sql (f->db, sql);

  first = check (tracker);
  g_assert_cmpint (first->len, ==, 0);

  /* 9,000 tokens left before the threshold (57,000): 135 minutes. */
  g_clear_pointer (&sql, g_free);
  sql = g_strdup_printf ("UPDATE gemini_key_quotas SET used_value = 48000 WHERE key_id = %"
                         G_GINT64_FORMAT " AND quota_type = 'DAILY'", id);
  exec_sql (f->db, sql);
  gk_clock_advance (f->clock, 60);
  later = check (tracker);
  g_assert_cmpint (later->len, ==, 0);

  /* 3,500 left: about 53 minutes (and more than 10% of the quota, so
   * not "quota low" yet). */
  g_clear_pointer (&sql, g_free);
  sql = g_strdup_printf ("UPDATE gemini_key_quotas SET used_value = 53500 WHERE key_id = %"
                         G_GINT64_FORMAT " AND quota_type = 'DAILY'", id);
  exec_sql (f->db, sql);
  gk_clock_advance (f->clock, 60);
  soon = check (tracker);
  g_assert_cmpint (soon->len, ==, 1);
  alert = g_ptr_array_index (soon, 0);
  g_assert_cmpint (alert->kind, ==, GK_ALERT_DEPLETION);
  g_assert_cmpint (alert->key_id, ==, id);
  g_assert_cmpstr (alert->key_name, ==, "busy");
  g_assert_cmpint (alert->at, >, gk_clock_now (f->clock) + 50 * 60);
  g_assert_cmpint (alert->at, <, gk_clock_now (f->clock) + 56 * 60);

  gk_clock_advance (f->clock, 60);
  again = check (tracker);
  g_assert_cmpint (again->len, ==, 0);
}

/* Five rotations of a key in an hour, with no history before: a spike of
 * the key and of the pool, each reported once, with the main reason. */
static void
test_rotation_spike (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GkAlertTracker) tracker = gk_alert_tracker_new (f->db);
  g_autoptr(GPtrArray) first = NULL;
  g_autoptr(GPtrArray) four = NULL;
  g_autoptr(GPtrArray) five = NULL;
  g_autoptr(GPtrArray) again = NULL;
  gint64 id = gk_test_add_key (f->store, "flaky", 5);
  gint64 now = gk_clock_now (f->clock);

  first = check (tracker);
  g_assert_cmpint (first->len, ==, 0);
  for (guint i = 0; i < 5; i++)
    {
      g_autofree char *sql = g_strdup_printf ("INSERT INTO gemini_key_rotation_log (from_key_id,"
                                              " reason, created_at) VALUES (%" G_GINT64_FORMAT
                                              ", '%s', %" G_GINT64_FORMAT ")",
                                              id, i == 0 ? "QUOTA_LOW" : "RATE_LIMITED",
                                              now - now % 3600 + i);

      exec_sql (f->db, sql);
      if (i == 3)
        {
          four = check (tracker);
          g_assert_cmpint (four->len, ==, 0);
        }
    }
  five = check (tracker);
  g_assert_cmpint (five->len, ==, 2);
  for (guint i = 0; i < 2; i++)
    {
      GkAlert *alert = g_ptr_array_index (five, i);

      g_assert_cmpint (alert->kind, ==, GK_ALERT_ROTATION_SPIKE);
      g_assert_cmpint (alert->key_id, ==, i == 0 ? 0 : id);
      g_assert_cmpfloat (alert->value, ==, 5);
      g_assert_cmpint (alert->reason, ==, GK_ROTATION_RATE_LIMITED);
    }
  again = check (tracker);
  g_assert_cmpint (again->len, ==, 0);
}

#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, gk_test_fixture_setup, func, gk_test_fixture_teardown)

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  ADD ("/alerts/quota-low-and-invalid", test_quota_low_and_invalid);
  ADD ("/alerts/success-rate", test_success_rate);
  ADD ("/alerts/budget", test_budget);
  ADD ("/alerts/first-check-only-learns", test_first_check_only_learns);
  ADD ("/alerts/depletion", test_depletion);
  ADD ("/alerts/rotation-spike", test_rotation_spike);

  return g_test_run ();
}
