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

  return g_test_run ();
}
