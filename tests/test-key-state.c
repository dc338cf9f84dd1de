/* test-key-state.c: the one status model (gk-key-state.h), built through
 * the real paths that put keys in each state.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <string.h>

#include "gk-test-util.h"

static gint64
add_key (GkTestFixture *f,
         const char    *name,
         gint64         daily_limit,
         double         budget)
{
  static guint n = 1;
  g_autoptr(GError) error = NULL;
  g_autofree char *api_key = gk_test_api_key (n++);
  GkKeySpec spec;
  gint64 id;

  gk_key_spec_init (&spec);
  spec.name = name;
  spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = daily_limit;
  spec.monthly_budget_usd = budget;
  id = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);
  return id;
}

static GkKey *
get_key (GkTestFixture *f,
         gint64         id)
{
  g_autoptr(GError) error = NULL;
  GkKey *key = gk_key_store_get (f->store, id, &error);

  g_assert_no_error (error);
  return key;
}

static void
assert_state (GkTestFixture *f,
              gint64         id,
              GkKeyState     state,
              const char    *reason_part,
              gint64         until)
{
  g_autoptr(GkKey) key = get_key (f, id);

  g_assert_cmpstr (gk_key_state_to_string (key->state), ==, gk_key_state_to_string (state));
  if (reason_part != NULL)
    {
      g_assert_nonnull (key->state_reason);
      g_assert_nonnull (strstr (key->state_reason, reason_part));
    }
  g_assert_cmpint (key->state_until, ==, until);
}

static void
test_every_state (GkTestFixture *f,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GTimeZone) tz = gk_database_get_reset_timezone (f->db);
  gint64 now = gk_database_now (f->db);
  gint64 daily = gk_quota_next_reset (GK_QUOTA_DAILY, now, tz);
  gint64 monthly = gk_quota_next_reset (GK_QUOTA_MONTHLY, now, tz);
  gint64 available, near, over, cooling, skipped, budget, rejected, off;
  GkUsageRecord record;
  GkTrackResult result;

  available = add_key (f, "Available", 0, -1);
  near = add_key (f, "Near", 1000, -1);
  over = add_key (f, "Over", 1000, -1);
  cooling = add_key (f, "Cooling", 0, -1);
  skipped = add_key (f, "Skipped", 0, -1);
  budget = add_key (f, "Budget", 0, 0.000001);
  rejected = add_key (f, "Rejected", 0, -1);
  off = add_key (f, "Off", 0, -1);

  /* 96% used: below the 5% threshold but not used up. The stored status
   * is QUOTA_EXCEEDED; what people see is "Near quota", not "Over quota". */
  result = gk_test_track (f->pool, near, GK_USAGE_SUCCESS, 960);
  g_assert_true (result.rotated);
  assert_state (f, near, GK_KEY_STATE_NEAR_QUOTA, "4% left", daily);

  result = gk_test_track (f->pool, over, GK_USAGE_SUCCESS, 1200);
  assert_state (f, over, GK_KEY_STATE_OVER_QUOTA, "Daily tokens", daily);

  gk_usage_record_init (&record);
  record.key_id = cooling;
  record.model = "gemini-2.5-flash";
  record.status = GK_USAGE_RATE_LIMITED;
  record.http_status = 429;
  record.retry_delay_s = 60;
  g_assert_true (gk_pool_track (f->pool, &record, &result, &error));
  g_assert_no_error (error);
  assert_state (f, cooling, GK_KEY_STATE_COOLING_DOWN, "429", now + 60);

  /* Skipped by hand: the stored status stays ACTIVE. */
  gk_pool_rotate (f->pool, skipped, "manual:test", &error);
  g_assert_no_error (error);
  assert_state (f, skipped, GK_KEY_STATE_SKIPPED, NULL, daily);

  gk_test_track (f->pool, budget, GK_USAGE_SUCCESS, 1000);
  assert_state (f, budget, GK_KEY_STATE_OVER_BUDGET, "budget", monthly);

  gk_test_track (f->pool, rejected, GK_USAGE_INVALID_KEY, 0);
  assert_state (f, rejected, GK_KEY_STATE_REJECTED, NULL, 0);

  g_assert_true (gk_key_store_set_status (f->store, off, GK_KEY_STATUS_INACTIVE, NULL, &error));
  g_assert_no_error (error);
  assert_state (f, off, GK_KEY_STATE_TURNED_OFF, NULL, 0);

  assert_state (f, available, GK_KEY_STATE_AVAILABLE, NULL, 0);

  /* The JSON of the CLI and the admin API carries the state beside the
   * stored status. */
  {
    g_autoptr(GkKey) key = get_key (f, near);
    g_autoptr(JsonBuilder) builder = json_builder_new ();
    g_autoptr(JsonNode) node = NULL;
    JsonObject *object;

    gk_json_add_key (builder, key, NULL);
    node = json_builder_get_root (builder);
    object = json_node_get_object (node);
    g_assert_cmpstr (json_object_get_string_member (object, "status"), ==, "QUOTA_EXCEEDED");
    g_assert_cmpstr (json_object_get_string_member (object, "state"), ==, "NEAR_QUOTA");
    g_assert_cmpstr (json_object_get_string_member (object, "state_label"), ==, "Near quota");
    g_assert_cmpint (json_object_get_int_member (object, "back_at"), ==, daily);
  }

  /* The dashboard counts keys by state. */
  {
    g_autoptr(GkDashboard) dashboard = gk_stats_dashboard (f->db, 7, &error);
    g_autofree char *text = NULL;

    g_assert_no_error (error);
    for (guint i = 0; i < GK_KEY_N_STATES; i++)
      g_assert_cmpint (dashboard->cards.keys_by_state[i], ==, 1);
    text = gk_key_state_format_counts (dashboard->cards.keys_by_state);
    g_assert_cmpstr (text, ==, "1 Available · 1 Near quota · 1 Cooling down · 1 Skipped by you · "
                               "1 Over quota · 1 Over budget · 1 Rejected by Google · 1 Turned off");
  }

  /* The cooldown ends by itself. */
  gk_clock_advance (f->clock, 61);
  assert_state (f, cooling, GK_KEY_STATE_AVAILABLE, NULL, 0);
}

static int
compare_use_order (gconstpointer a,
                   gconstpointer b)
{
  return gk_key_compare_use_order (*(const GkKey **) a, *(const GkKey **) b);
}

/* The order of use puts the key the selector picks first. */
static void
test_use_order (GkTestFixture *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = NULL;
  g_autoptr(GkKey) chosen = NULL;
  gint64 low, high, off;

  low = gk_test_add_key (f->store, "Low", 2);
  high = gk_test_add_key (f->store, "High", 9);
  off = gk_test_add_key (f->store, "Off but high", 10);
  g_assert_true (gk_key_store_set_status (f->store, off, GK_KEY_STATUS_INACTIVE, NULL, &error));

  keys = gk_key_store_list (f->store, &error);
  g_assert_no_error (error);
  g_ptr_array_sort (keys, compare_use_order);
  chosen = gk_pool_select (f->pool, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (((GkKey *) keys->pdata[0])->id, ==, chosen->id);
  g_assert_cmpint (((GkKey *) keys->pdata[0])->id, ==, high);
  g_assert_cmpint (((GkKey *) keys->pdata[1])->id, ==, low);
  g_assert_cmpint (((GkKey *) keys->pdata[2])->id, ==, off);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  GK_TEST_ADD ("/key-state/every-state", test_every_state);
  GK_TEST_ADD ("/key-state/use-order", test_use_order);

  return g_test_run ();
}
