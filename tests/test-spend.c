/* test-spend.c: today's and this month's spend, the pool's budget taking
 * every key out of service, and the budget notifications at 80% and 100%,
 * once a month each, all on an injected clock.
 *
 * 2.5 Flash input costs $0.30 per 1M tokens: 1M prompt tokens = $0.30.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include "gk-database-private.h"
#include "gk-test-util.h"

typedef GkTestFixture Fixture;

#define MILLION 1000000

static gint64
add_budgeted_key (Fixture    *f,
                  const char *name,
                  double      budget)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *api_key = gk_test_api_key (g_str_hash (name) % 100000);
  GkKeySpec spec;
  gint64 id;

  gk_key_spec_init (&spec);
  spec.name = name;
  spec.monthly_budget_usd = budget;
  id = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);
  return id;
}

static GkSpend *
read_spend (GkDatabase *db)
{
  g_autoptr(GError) error = NULL;
  GkSpend *spend = gk_spend_read (db, &error);

  g_assert_no_error (error);
  g_assert_nonnull (spend);
  return spend;
}

static const GkKeySpend *
key_spend (const GkSpend *spend,
           gint64         id)
{
  for (guint i = 0; i < spend->keys->len; i++)
    if (((GkKeySpend *) g_ptr_array_index (spend->keys, i))->key_id == id)
      return g_ptr_array_index (spend->keys, i);
  return NULL;
}

/* Yesterday counts for the month, not for today; a deleted key's spend
 * stays in the totals; per key, the most spent first. */
static void
test_spend_figures (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GkSpend) spend = NULL;
  g_autoptr(GError) error = NULL;
  gint64 a = add_budgeted_key (f, "a", 10);
  gint64 b = add_budgeted_key (f, "b", -1);
  gint64 gone = add_budgeted_key (f, "gone", -1);

  /* 2026-03-14, 12:00 UTC: the day before, in Los Angeles too. */
  gk_clock_set (f->clock, GK_TEST_EPOCH - 86400);
  gk_test_track (f->pool, a, GK_USAGE_SUCCESS, 2 * MILLION);
  gk_clock_set (f->clock, GK_TEST_EPOCH);
  gk_test_track (f->pool, a, GK_USAGE_SUCCESS, MILLION);
  gk_test_track (f->pool, b, GK_USAGE_SUCCESS, 5 * MILLION);
  gk_test_track (f->pool, gone, GK_USAGE_SUCCESS, MILLION);
  g_assert_true (gk_key_store_delete (f->store, gone, &error));
  g_assert_no_error (error);

  spend = read_spend (f->db);
  g_assert_cmpfloat_with_epsilon (spend->today_usd, 0.30 + 1.50 + 0.30, 1e-9);
  g_assert_cmpfloat_with_epsilon (spend->month_usd, 0.90 + 1.50 + 0.30, 1e-9);
  g_assert_cmpfloat (spend->pool_budget_usd, <, 0);
  g_assert_cmpuint (spend->keys->len, ==, 2);
  g_assert_cmpint (((GkKeySpend *) g_ptr_array_index (spend->keys, 0))->key_id, ==, b);
  g_assert_cmpfloat_with_epsilon (key_spend (spend, a)->today_usd, 0.30, 1e-9);
  g_assert_cmpfloat_with_epsilon (key_spend (spend, a)->month_usd, 0.90, 1e-9);
  g_assert_cmpfloat (key_spend (spend, a)->budget_usd, ==, 10);
  g_assert_cmpfloat (key_spend (spend, b)->budget_usd, <, 0);
  /* Today in the reset time zone (Los Angeles, UTC-7 in March). */
  g_assert_cmpint (spend->day_start, ==, GK_TEST_EPOCH - 5 * 3600);

  /* Folded into the rollup or not, the same figures. */
  g_assert_true (gk_rollup_catch_up (f->db, &error));
  g_assert_no_error (error);
  g_clear_pointer (&spend, gk_spend_free);
  spend = read_spend (f->db);
  g_assert_cmpfloat_with_epsilon (spend->today_usd, 2.10, 1e-9);

  /* A new month starts from nothing. */
  gk_clock_set (f->clock, GK_TEST_EPOCH + 20 * 86400);
  g_clear_pointer (&spend, gk_spend_free);
  spend = read_spend (f->db);
  g_assert_cmpfloat (spend->month_usd, ==, 0);
  g_assert_cmpfloat (spend->today_usd, ==, 0);
}

static void
test_pool_budget_setting (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *stored = NULL;

  g_assert_cmpfloat (gk_spend_get_pool_budget (f->db), <, 0);
  g_assert_true (gk_spend_set_pool_budget (f->db, 12.345, &error));
  g_assert_cmpfloat (gk_spend_get_pool_budget (f->db), ==, 12.35);
  stored = gk_database_get_setting (f->db, GK_SETTING_POOL_BUDGET);
  g_assert_cmpstr (stored, ==, "12.35");
  g_assert_true (gk_spend_set_pool_budget (f->db, -1, &error));
  g_assert_cmpfloat (gk_spend_get_pool_budget (f->db), <, 0);
  /* Nonsense written elsewhere is no budget, not a pool out of service. */
  g_assert_true (gk_database_set_setting (f->db, GK_SETTING_POOL_BUDGET, "lots", &error));
  g_assert_cmpfloat (gk_spend_get_pool_budget (f->db), <, 0);
  g_assert_no_error (error);
}

/* At 100% of the pool's budget no key is selected (the gateway's 503),
 * the use that spent it is logged once as a budget rotation to no key,
 * and the next month the pool serves again. */
static void
test_pool_budget_stops_the_pool (Fixture       *f,
                                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) selected = NULL;
  g_autoptr(GPtrArray) rotations = NULL;
  GkTrackResult result;
  gint64 a = add_budgeted_key (f, "a", -1);
  gint64 b = add_budgeted_key (f, "b", -1);
  const GkRotationRow *row;

  g_assert_true (gk_spend_set_pool_budget (f->db, 1.0, &error));
  result = gk_test_track (f->pool, a, GK_USAGE_SUCCESS, 2 * MILLION);
  g_assert_false (result.rotated);
  selected = gk_pool_select (f->pool, "gemini-2.5-flash", NULL, &error);
  g_assert_no_error (error);
  g_clear_pointer (&selected, gk_key_free);

  /* $0.60 + $0.45 = $1.05: spent, by key b. */
  result = gk_test_track (f->pool, b, GK_USAGE_SUCCESS, 1500000);
  g_assert_true (result.rotated);
  g_assert_cmpint (result.reason, ==, GK_ROTATION_BUDGET);
  g_assert_cmpint (result.to_key_id, ==, 0);
  selected = gk_pool_select (f->pool, "gemini-2.5-flash", NULL, &error);
  g_assert_null (selected);
  g_assert_error (error, GK_POOL_ERROR, GK_POOL_ERROR_BUDGET_SPENT);
  g_assert_nonnull (strstr (error->message, "$1.00"));
  g_clear_error (&error);

  /* A request already under way is recorded, without a second rotation. */
  result = gk_test_track (f->pool, a, GK_USAGE_SUCCESS, 100);
  g_assert_false (result.rotated);
  rotations = gk_stats_rotation_logs (f->db, 10, &error);
  g_assert_cmpuint (rotations->len, ==, 1);
  row = g_ptr_array_index (rotations, 0);
  g_assert_cmpint (row->from_key_id, ==, b);
  g_assert_cmpint (row->to_key_id, ==, 0);
  g_assert_cmpint (row->reason, ==, GK_ROTATION_BUDGET);

  /* Raising the budget puts the pool back at once; so does a new month. */
  g_assert_true (gk_spend_set_pool_budget (f->db, 2.0, &error));
  selected = gk_pool_select (f->pool, "gemini-2.5-flash", NULL, &error);
  g_assert_no_error (error);
  g_clear_pointer (&selected, gk_key_free);
  g_assert_true (gk_spend_set_pool_budget (f->db, 1.0, &error));
  g_assert_null (gk_pool_select (f->pool, "gemini-2.5-flash", NULL, &error));
  g_clear_error (&error);
  gk_clock_set (f->clock, GK_TEST_EPOCH + 20 * 86400);
  selected = gk_pool_select (f->pool, "gemini-2.5-flash", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (selected);
}

static GPtrArray *
check (GkAlertTracker *tracker)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *alerts = gk_alert_tracker_check (tracker, &error);

  g_assert_no_error (error);
  return alerts;
}

static void
assert_alerts (GkAlertTracker *tracker,
               guint           n,
               ...)
{
  g_autoptr(GPtrArray) alerts = check (tracker);
  va_list args;

  g_assert_cmpuint (alerts->len, ==, n);
  va_start (args, n);
  for (guint i = 0; i < n; i++)
    {
      GkAlertKind kind = va_arg (args, GkAlertKind);
      gboolean found = FALSE;

      for (guint j = 0; j < alerts->len; j++)
        found |= ((GkAlert *) g_ptr_array_index (alerts, j))->kind == kind;
      if (!found)
        g_error ("no alert of kind %d", kind);
    }
  va_end (args);
}

/* 80%, then 100%, for a key and for the pool: each once a month, even when
 * the budget is raised and reached again; the next month, again. */
static void
test_budget_alerts (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GkAlertTracker) tracker = gk_alert_tracker_new (f->db);
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) key = NULL;
  gint64 a = add_budgeted_key (f, "a", 1.0);
  gint64 b = add_budgeted_key (f, "b", -1);
  GkKeySpec spec;

  g_assert_true (gk_spend_set_pool_budget (f->db, 3.0, &error));
  assert_alerts (tracker, 0);

  /* Key a: $0.75 of $1 (75%): nothing yet. Then $0.84: 84%. */
  gk_test_track (f->pool, a, GK_USAGE_SUCCESS, 2500000);
  assert_alerts (tracker, 0);
  gk_test_track (f->pool, a, GK_USAGE_SUCCESS, 300000);
  assert_alerts (tracker, 1, GK_ALERT_BUDGET_WARNING);
  assert_alerts (tracker, 0);
  /* $1.05: the key's budget is reached. */
  gk_test_track (f->pool, a, GK_USAGE_SUCCESS, 700000);
  assert_alerts (tracker, 1, GK_ALERT_BUDGET);

  /* Raised to $2, then reached again: no second notice this month. */
  key = gk_key_store_get (f->store, a, &error);
  gk_key_spec_from_key (&spec, key);
  spec.monthly_budget_usd = 1.2;
  g_assert_true (gk_key_store_update (f->store, a, &spec, NULL, &error));
  g_assert_no_error (error);
  gk_test_track (f->pool, a, GK_USAGE_SUCCESS, MILLION);
  assert_alerts (tracker, 0);

  /* The pool: $1.35 + $1.20 = $2.55 of $3 (85%), then $3.15. */
  gk_test_track (f->pool, b, GK_USAGE_SUCCESS, 4 * MILLION);
  assert_alerts (tracker, 1, GK_ALERT_POOL_BUDGET_WARNING);
  gk_test_track (f->pool, b, GK_USAGE_SUCCESS, 2 * MILLION);
  assert_alerts (tracker, 1, GK_ALERT_POOL_BUDGET);
  assert_alerts (tracker, 0);

  /* A new month: the counters restart and each level is news again. */
  gk_clock_set (f->clock, GK_TEST_EPOCH + 20 * 86400);
  assert_alerts (tracker, 0);
  gk_test_track (f->pool, a, GK_USAGE_SUCCESS, 3400000);
  gk_test_track (f->pool, b, GK_USAGE_SUCCESS, 5 * MILLION);
  assert_alerts (tracker, 2, GK_ALERT_BUDGET_WARNING, GK_ALERT_POOL_BUDGET_WARNING);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  GK_TEST_ADD ("/spend/figures", test_spend_figures);
  GK_TEST_ADD ("/spend/pool-budget-setting", test_pool_budget_setting);
  GK_TEST_ADD ("/spend/pool-budget-stops-the-pool", test_pool_budget_stops_the_pool);
  GK_TEST_ADD ("/spend/budget-alerts", test_budget_alerts);
  return g_test_run ();
}
