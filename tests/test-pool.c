/* test-pool.c: selection order, rotation triggers, cooldowns, concurrency.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <sys/wait.h>
#include <unistd.h>

#include "gk-database-private.h"
#include "gk-sql-sqlite.h"
#include "gk-test-util.h"

typedef GkTestFixture Fixture;

typedef struct
{
  const char *name;
  int         priority;
  gboolean    is_default;
  gint64      daily_limit;
  gint64      daily_used;
  gint64      last_used_at;   /* offset from the epoch; 0 = never */
  const char *status;
  gint64      cooldown;       /* seconds from now; 0 = none */
  double      budget;         /* < 0 none */
  double      month_cost;
} KeyRow;

static gint64
add_row (Fixture      *f,
         const KeyRow *row,
         guint         n)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *api_key = gk_test_api_key (n);
  g_autofree char *sql = NULL;
  GkKeySpec spec;
  gint64 id;

  gk_key_spec_init (&spec);
  spec.name = row->name;
  spec.priority = row->priority;
  spec.is_default = row->is_default;
  spec.monthly_budget_usd = row->budget;
  spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = row->daily_limit;
  id = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);

  sql = g_strdup_printf ("UPDATE gemini_api_keys SET status = '%s', cooldown_until = %" G_GINT64_FORMAT
                         ", last_used_at = %" G_GINT64_FORMAT ", month_cost_usd = %f WHERE id = %" G_GINT64_FORMAT ";"
                         "UPDATE gemini_key_quotas SET used_value = %" G_GINT64_FORMAT
                         " WHERE key_id = %" G_GINT64_FORMAT " AND quota_type = 'DAILY' AND unit = 'TOKENS';",
                         row->status ? row->status : "ACTIVE",
                         row->cooldown ? GK_TEST_EPOCH + row->cooldown : 0,
                         row->last_used_at ? GK_TEST_EPOCH + row->last_used_at : 0,
                         row->month_cost, id, row->daily_used, id);
  gk_database_exec (f->db, sql, &error);
  g_assert_no_error (error);
  gk_database_touch (f->db);
  return id;
}

static char *
select_name (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) key = gk_pool_select (f->pool, "gemini-2.5-flash", NULL, &error);

  if (key == NULL)
    {
      g_assert_error (error, GK_POOL_ERROR, GK_POOL_ERROR_NO_ACTIVE_KEYS);
      g_assert_cmpstr (error->message, ==, "No active keys available");
      return NULL;
    }
  g_assert_no_error (error);
  return g_strdup (key->name);
}

typedef struct
{
  const char *what;
  KeyRow      rows[4];
  const char *expected;   /* NULL: "No active keys available" */
} SelectionCase;

static void
test_selection_order (void)
{
  const SelectionCase cases[] = {
    { "higher priority wins",
      { { "low", 3, .budget = -1 }, { "high", 9, .budget = -1 } }, "high" },
    { "the default key wins over priority",
      { { "high", 10, .budget = -1 }, { "default", 1, TRUE, .budget = -1 } }, "default" },
    { "more remaining quota wins at equal priority",
      { { "half", 5, FALSE, 1000, 500, .budget = -1 }, { "fresh", 5, FALSE, 1000, 100, .budget = -1 } },
      "fresh" },
    { "unlimited counts as full",
      { { "limited", 5, FALSE, 1000, 10, .budget = -1 }, { "unlimited", 5, .budget = -1 } },
      "unlimited" },
    { "least recently used breaks ties",
      { { "recent", 5, .last_used_at = -10, .budget = -1 },
        { "older", 5, .last_used_at = -1000, .budget = -1 } },
      "older" },
    { "never used counts as least recent",
      { { "recent", 5, .last_used_at = -10, .budget = -1 }, { "never", 5, .budget = -1 } }, "never" },
    { "below the threshold is skipped even at top priority",
      { { "nearly-empty", 10, FALSE, 1000, 960, .budget = -1 }, { "ok", 1, .budget = -1 } }, "ok" },
    { "exactly at the threshold is still eligible",
      { { "at-threshold", 10, FALSE, 1000, 950, .budget = -1 }, { "ok", 1, .budget = -1 } },
      "at-threshold" },
    { "inactive, invalid and quota-exceeded keys are skipped",
      { { "inactive", 10, .status = "INACTIVE", .budget = -1 },
        { "invalid", 10, .status = "INVALID", .budget = -1 },
        { "exceeded", 10, .status = "QUOTA_EXCEEDED", .budget = -1 },
        { "fine", 1, .budget = -1 } },
      "fine" },
    { "a rate-limited key in cooldown is skipped",
      { { "cooling", 10, .status = "RATE_LIMITED", .cooldown = 30, .budget = -1 },
        { "fine", 1, .budget = -1 } },
      "fine" },
    { "a rate-limited key whose cooldown passed is active again",
      { { "cooled", 10, .status = "RATE_LIMITED", .cooldown = -1, .budget = -1 },
        { "fine", 1, .budget = -1 } },
      "cooled" },
    { "a key at its budget is skipped",
      { { "spent", 10, .budget = 5.0, .month_cost = 5.0 }, { "fine", 1, .budget = -1 } }, "fine" },
    { "a default key that is not eligible does not win",
      { { "default-dead", 5, TRUE, .status = "INVALID", .budget = -1 }, { "fine", 1, .budget = -1 } },
      "fine" },
    { "nothing eligible",
      { { "inactive", 10, .status = "INACTIVE", .budget = -1 },
        { "cooling", 10, .status = "RATE_LIMITED", .cooldown = 30, .budget = -1 } },
      NULL },
    { "with no eligible key, a key only near its quota serves, highest priority first",
      { { "near-low", 3, FALSE, 1000, 960, .budget = -1 },
        { "near-high", 9, FALSE, 1000, 970, .status = "QUOTA_EXCEEDED", .budget = -1 },
        { "used-up", 10, FALSE, 1000, 1000, .status = "QUOTA_EXCEEDED", .budget = -1 } },
      "near-high" },
    { "among near-quota keys of one priority, more remaining quota wins",
      { { "less", 5, FALSE, 1000, 990, .status = "QUOTA_EXCEEDED", .budget = -1 },
        { "more", 5, FALSE, 1000, 960, .status = "QUOTA_EXCEEDED", .budget = -1 } },
      "more" },
    { "the near-quota fallback skips cooling, over-budget, rejected and turned-off keys",
      { { "cooling", 9, FALSE, 1000, 960, .status = "QUOTA_EXCEEDED", .cooldown = 30,
          .budget = -1 },
        { "spent", 9, FALSE, 1000, 960, .status = "QUOTA_EXCEEDED", .budget = 1.0,
          .month_cost = 1.0 },
        { "invalid", 9, FALSE, 1000, 960, .status = "INVALID", .budget = -1 },
        { "inactive", 9, FALSE, 1000, 960, .status = "INACTIVE", .budget = -1 } },
      NULL },
    { "a key with a window used up is not near quota but over it",
      { { "used-up", 9, FALSE, 1000, 1000, .budget = -1 },
        { "over", 9, FALSE, 1000, 1200, .status = "QUOTA_EXCEEDED", .budget = -1 } },
      NULL },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      Fixture f;
      g_autofree char *chosen = NULL;

      g_test_message ("%s", cases[i].what);
      gk_test_fixture_setup (&f, NULL);
      for (guint r = 0; r < G_N_ELEMENTS (cases[i].rows) && cases[i].rows[r].name; r++)
        add_row (&f, &cases[i].rows[r], i * 10 + r);
      chosen = select_name (&f);
      g_assert_cmpstr (chosen, ==, cases[i].expected);
      gk_test_fixture_teardown (&f, NULL);
    }
}

static void
test_empty_pool (Fixture       *f,
                 gconstpointer  data)
{
  g_autofree char *chosen = select_name (f);
  g_assert_null (chosen);
}

typedef struct
{
  gint64 count;
  gint64 from_key_id;
  gint64 to_key_id;
  char  *reason;
  char  *triggered_by;
} RotationLog;

static void
read_rotations (Fixture     *f,
                RotationLog *log)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = gk_stats_rotation_logs (f->db, 100, &error);
  GkRotationRow *last;

  g_assert_no_error (error);
  memset (log, 0, sizeof *log);
  log->count = rows->len;
  if (rows->len == 0)
    return;
  last = g_ptr_array_index (rows, 0);
  log->from_key_id = last->from_key_id;
  log->to_key_id = last->to_key_id;
  log->reason = g_strdup (gk_rotation_reason_to_string (last->reason));
  log->triggered_by = g_strdup (last->triggered_by);
}

static void
rotation_log_clear (RotationLog *log)
{
  g_free (log->reason);
  g_free (log->triggered_by);
}

static GkKey *
get_key (Fixture *f,
         gint64   id)
{
  g_autoptr(GError) error = NULL;
  GkKey *key = gk_key_store_get (f->store, id, &error);

  g_assert_no_error (error);
  return key;
}

static GkTrackResult
track (Fixture       *f,
       gint64         key_id,
       GkUsageStatus  status,
       gint64         tokens,
       gint64         retry_delay,
       gboolean       per_day)
{
  g_autoptr(GError) error = NULL;
  GkTrackResult result;
  GkUsageRecord record;

  gk_usage_record_init (&record);
  record.key_id = key_id;
  record.model = "gemini-2.5-flash";
  record.prompt_tokens = tokens;
  record.status = status;
  record.retry_delay_s = retry_delay;
  record.per_day = per_day;
  record.http_status = status == GK_USAGE_SUCCESS ? 200 : status == GK_USAGE_RATE_LIMITED ? 429 : 400;
  gk_pool_track (f->pool, &record, &result, &error);
  g_assert_no_error (error);
  return result;
}

static void
test_trigger_quota_low (Fixture       *f,
                        gconstpointer  data)
{
  const KeyRow a = { "a", 9, FALSE, 1000, 0, .budget = -1 };
  const KeyRow b = { "b", 1, .budget = -1 };
  gint64 ida = add_row (f, &a, 1), idb = add_row (f, &b, 2);
  g_autoptr(GkKey) key = NULL;
  GkTrackResult result;
  RotationLog log;

  /* 940 of 1000 used: 6% left, above the 5% threshold — no rotation. */
  result = track (f, ida, GK_USAGE_SUCCESS, 940, 0, FALSE);
  g_assert_false (result.rotated);
  g_assert_true (result.priced);
  g_assert_cmpfloat (result.cost_usd, >, 0);
  read_rotations (f, &log);
  g_assert_cmpint (log.count, ==, 0);

  /* 20 more: 4% left → QUOTA_LOW, exactly one rotation row, to b. */
  result = track (f, ida, GK_USAGE_SUCCESS, 20, 0, FALSE);
  g_assert_true (result.rotated);
  g_assert_cmpint (result.reason, ==, GK_ROTATION_QUOTA_LOW);
  g_assert_cmpint (result.to_key_id, ==, idb);
  read_rotations (f, &log);
  g_assert_cmpint (log.count, ==, 1);
  g_assert_cmpint (log.from_key_id, ==, ida);
  g_assert_cmpint (log.to_key_id, ==, idb);
  g_assert_cmpstr (log.reason, ==, "QUOTA_LOW");
  g_assert_cmpstr (log.triggered_by, ==, "auto");
  rotation_log_clear (&log);

  key = get_key (f, ida);
  g_assert_cmpint (key->status, ==, GK_KEY_STATUS_QUOTA_EXCEEDED);
  g_autofree char *chosen = select_name (f);
  g_assert_cmpstr (chosen, ==, "b");

  /* Another use of the exhausted key is not a second rotation. */
  track (f, ida, GK_USAGE_SUCCESS, 1, 0, FALSE);
  read_rotations (f, &log);
  g_assert_cmpint (log.count, ==, 1);
  rotation_log_clear (&log);

  /* At Pacific midnight the daily window resets and the key returns. */
  {
    g_autoptr(GTimeZone) la = g_time_zone_new_identifier ("America/Los_Angeles");
    g_autofree char *again = NULL;
    g_autoptr(GkKey) back = NULL;

    gk_clock_set (f->clock, gk_quota_next_reset (GK_QUOTA_DAILY, GK_TEST_EPOCH, la));
    again = select_name (f);
    g_assert_cmpstr (again, ==, "a");
    back = get_key (f, ida);
    g_assert_cmpint (back->status, ==, GK_KEY_STATUS_ACTIVE);
  }
}

static void
test_trigger_rate_limited (Fixture       *f,
                           gconstpointer  data)
{
  const KeyRow a = { "a", 9, .budget = -1 };
  const KeyRow b = { "b", 1, .budget = -1 };
  gint64 ida = add_row (f, &a, 1), idb = add_row (f, &b, 2);
  g_autoptr(GkKey) key = NULL;
  g_autofree char *chosen = NULL;
  GkTrackResult result;
  RotationLog log;

  result = track (f, ida, GK_USAGE_RATE_LIMITED, 0, 26, FALSE);
  g_assert_true (result.rotated);
  g_assert_cmpint (result.reason, ==, GK_ROTATION_RATE_LIMITED);
  g_assert_cmpint (result.to_key_id, ==, idb);
  key = get_key (f, ida);
  g_assert_cmpint (key->status, ==, GK_KEY_STATUS_RATE_LIMITED);
  g_assert_cmpint (key->cooldown_until, ==, GK_TEST_EPOCH + 26);
  read_rotations (f, &log);
  g_assert_cmpint (log.count, ==, 1);
  g_assert_cmpstr (log.reason, ==, "RATE_LIMITED");
  rotation_log_clear (&log);

  chosen = select_name (f);
  g_assert_cmpstr (chosen, ==, "b");
  g_clear_pointer (&chosen, g_free);

  /* The cooldown ends after retryDelay: the key is chosen again and shown
   * ACTIVE. */
  gk_clock_advance (f->clock, 26);
  chosen = select_name (f);
  g_assert_cmpstr (chosen, ==, "a");
  g_clear_pointer (&key, gk_key_free);
  key = get_key (f, ida);
  g_assert_cmpint (key->status, ==, GK_KEY_STATUS_ACTIVE);

  /* A second 429 in a row doubles the cooldown. */
  track (f, ida, GK_USAGE_RATE_LIMITED, 0, 26, FALSE);
  g_clear_pointer (&key, gk_key_free);
  key = get_key (f, ida);
  g_assert_cmpint (key->cooldown_until, ==, gk_clock_now (f->clock) + 52);

  /* A success clears the strikes. */
  gk_clock_advance (f->clock, 52);
  track (f, ida, GK_USAGE_SUCCESS, 10, 0, FALSE);
  track (f, ida, GK_USAGE_RATE_LIMITED, 0, 26, FALSE);
  g_clear_pointer (&key, gk_key_free);
  key = get_key (f, ida);
  g_assert_cmpint (key->cooldown_until, ==, gk_clock_now (f->clock) + 26);
}

static void
test_trigger_rate_limited_per_day (Fixture       *f,
                                   gconstpointer  data)
{
  g_autoptr(GTimeZone) la = g_time_zone_new_identifier ("America/Los_Angeles");
  const KeyRow a = { "a", 9, .budget = -1 };
  gint64 ida = add_row (f, &a, 1);
  g_autoptr(GkKey) key = NULL;
  GkTrackResult result;

  result = track (f, ida, GK_USAGE_RATE_LIMITED, 0, 30, TRUE);
  g_assert_true (result.rotated);
  g_assert_cmpint (result.to_key_id, ==, 0);
  key = get_key (f, ida);
  /* Until Pacific midnight, whatever retryDelay said. */
  g_assert_cmpint (key->cooldown_until, ==, gk_quota_next_reset (GK_QUOTA_DAILY, GK_TEST_EPOCH, la));
}

static void
test_per_project_cooldown (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *chosen = NULL;
  const KeyRow rows[] = {
    { "p1-a", 9, .budget = -1 }, { "p1-b", 8, .budget = -1 }, { "p2", 1, .budget = -1 },
  };
  gint64 ids[3];
  GkUsageRecord record;
  GkTrackResult result;

  for (guint i = 0; i < 3; i++)
    ids[i] = add_row (f, &rows[i], i + 1);
  gk_database_exec (f->db,
                    "UPDATE gemini_api_keys SET project = 'proj-1' WHERE name LIKE 'p1-%';"
                    "UPDATE gemini_api_keys SET project = 'proj-2' WHERE name = 'p2';",
                    &error);
  g_assert_no_error (error);
  gk_database_touch (f->db);

  gk_usage_record_init (&record);
  record.key_id = ids[0];
  record.status = GK_USAGE_RATE_LIMITED;
  record.retry_delay_s = 40;
  record.per_project = TRUE;
  gk_pool_track (f->pool, &record, &result, &error);
  g_assert_no_error (error);

  /* The whole project cools down; the next key is from another project. */
  g_assert_cmpint (result.to_key_id, ==, ids[2]);
  chosen = select_name (f);
  g_assert_cmpstr (chosen, ==, "p2");
  {
    g_autoptr(GkKey) b = get_key (f, ids[1]);
    g_assert_cmpint (b->status, ==, GK_KEY_STATUS_RATE_LIMITED);
    g_assert_cmpint (b->cooldown_until, ==, GK_TEST_EPOCH + 40);
  }
}

static void
test_trigger_invalid (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  const KeyRow a = { "a", 9, .budget = -1 };
  const KeyRow b = { "b", 1, .budget = -1 };
  gint64 ida = add_row (f, &a, 1), idb = add_row (f, &b, 2);
  g_autoptr(GkKey) key = NULL;
  GkTrackResult result;
  GkKeySpec spec;
  RotationLog log;

  result = track (f, ida, GK_USAGE_INVALID_KEY, 0, 0, FALSE);
  g_assert_true (result.rotated);
  g_assert_cmpint (result.to_key_id, ==, idb);
  key = get_key (f, ida);
  g_assert_cmpint (key->status, ==, GK_KEY_STATUS_INVALID);
  read_rotations (f, &log);
  g_assert_cmpstr (log.reason, ==, "INVALID_KEY");
  rotation_log_clear (&log);

  /* It stays out after any time... */
  gk_clock_advance (f->clock, 40 * 86400);
  {
    g_autofree char *chosen = select_name (f);
    g_assert_cmpstr (chosen, ==, "b");
  }

  /* ...until the user edits it. */
  gk_key_spec_from_key (&spec, key);
  gk_key_store_update (f->store, ida, &spec, NULL, &error);
  g_assert_no_error (error);
  {
    g_autofree char *chosen = select_name (f);
    g_assert_cmpstr (chosen, ==, "a");
  }
}

static void
test_trigger_budget (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GkPricing) pricing = NULL;
  g_autoptr(GError) error = NULL;
  const KeyRow a = { "a", 9, .budget = 1.0 };
  const KeyRow b = { "b", 1, .budget = -1 };
  gint64 ida = add_row (f, &a, 1), idb = add_row (f, &b, 2);
  g_autoptr(GkKey) key = NULL;
  GkTrackResult result;

  /* 2.5 Flash: $0.30 per 1M input tokens; 4M tokens = $1.20 ≥ $1.00. */
  result = track (f, ida, GK_USAGE_SUCCESS, 4000000, 0, FALSE);
  g_assert_true (result.rotated);
  g_assert_cmpint (result.reason, ==, GK_ROTATION_BUDGET);
  g_assert_cmpint (result.to_key_id, ==, idb);
  key = get_key (f, ida);
  g_assert_cmpint (key->status, ==, GK_KEY_STATUS_QUOTA_EXCEEDED);
  g_assert_cmpfloat_with_epsilon (key->month_cost_usd, 1.2, 1e-9);
}

static void
test_errors_do_not_penalise (Fixture       *f,
                             gconstpointer  data)
{
  const KeyRow a = { "a", 9, .budget = -1 };
  gint64 ida = add_row (f, &a, 1);
  g_autoptr(GkKey) key = NULL;
  GkTrackResult result;

  for (int i = 0; i < 5; i++)
    {
      result = track (f, ida, GK_USAGE_ERROR, 0, 0, FALSE);
      g_assert_false (result.rotated);
    }
  key = get_key (f, ida);
  g_assert_cmpint (key->status, ==, GK_KEY_STATUS_ACTIVE);
  {
    g_autofree char *chosen = select_name (f);
    g_assert_cmpstr (chosen, ==, "a");
  }
}

static GkKeyState
key_state (Fixture *f,
           gint64   id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = gk_key_store_list (f->store, &error);

  g_assert_no_error (error);
  for (guint i = 0; i < keys->len; i++)
    {
      GkKey *key = g_ptr_array_index (keys, i);

      if (key->id == id)
        return key->state;
    }
  g_assert_not_reached ();
}

/* Keys below the rotation threshold still have quota: when nothing else is
 * left they serve, without a rotation for each use, and keep showing
 * "Near quota" until a window is used up. */
static void
test_near_quota_fallback (Fixture       *f,
                          gconstpointer  data)
{
  const KeyRow a = { "a", 9, FALSE, 1000, 0, .budget = -1 };
  const KeyRow b = { "b", 1, FALSE, 1000, 0, .budget = -1 };
  gint64 ida = add_row (f, &a, 1), idb = add_row (f, &b, 2);
  g_autofree char *chosen = NULL;
  GkTrackResult result;
  RotationLog log;

  /* a leaves for b, then b leaves too: the next key is a, near its quota. */
  result = track (f, ida, GK_USAGE_SUCCESS, 960, 0, FALSE);
  g_assert_true (result.rotated);
  g_assert_cmpint (result.to_key_id, ==, idb);
  result = track (f, idb, GK_USAGE_SUCCESS, 960, 0, FALSE);
  g_assert_true (result.rotated);
  g_assert_cmpint (result.reason, ==, GK_ROTATION_QUOTA_LOW);
  g_assert_cmpint (result.to_key_id, ==, ida);
  read_rotations (f, &log);
  g_assert_cmpint (log.count, ==, 2);
  g_assert_cmpint (log.to_key_id, ==, ida);
  rotation_log_clear (&log);

  chosen = select_name (f);
  g_assert_cmpstr (chosen, ==, "a");
  g_clear_pointer (&chosen, g_free);

  /* Using it logs no rotation; it stays "Near quota". */
  for (guint i = 0; i < 3; i++)
    {
      result = track (f, ida, GK_USAGE_SUCCESS, 10, 0, FALSE);
      g_assert_false (result.rotated);
    }
  read_rotations (f, &log);
  g_assert_cmpint (log.count, ==, 2);
  rotation_log_clear (&log);
  g_assert_cmpint (key_state (f, ida), ==, GK_KEY_STATE_NEAR_QUOTA);
  g_assert_cmpint (key_state (f, idb), ==, GK_KEY_STATE_NEAR_QUOTA);

  /* Used up (990 + 10 of 1000): over quota, so b takes over, still
   * without a rotation. */
  track (f, ida, GK_USAGE_SUCCESS, 10, 0, FALSE);
  g_assert_cmpint (key_state (f, ida), ==, GK_KEY_STATE_OVER_QUOTA);
  chosen = select_name (f);
  g_assert_cmpstr (chosen, ==, "b");
  g_clear_pointer (&chosen, g_free);

  /* A 429 on the last near-quota key cools it down: nothing is left. */
  track (f, idb, GK_USAGE_RATE_LIMITED, 0, 30, FALSE);
  chosen = select_name (f);
  g_assert_null (chosen);
  read_rotations (f, &log);
  g_assert_cmpint (log.count, ==, 2);
  rotation_log_clear (&log);
}

static void
test_manual_rotation (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GTimeZone) la = g_time_zone_new_identifier ("America/Los_Angeles");
  const KeyRow a = { "a", 9, .budget = -1 };
  const KeyRow b = { "b", 1, .budget = -1 };
  gint64 ida = add_row (f, &a, 1), idb = add_row (f, &b, 2);
  RotationLog log;
  gint64 next;

  next = gk_pool_rotate (f->pool, ida, "manual:alice", &error);
  g_assert_no_error (error);
  g_assert_cmpint (next, ==, idb);
  read_rotations (f, &log);
  g_assert_cmpint (log.count, ==, 1);
  g_assert_cmpstr (log.reason, ==, "MANUAL");
  g_assert_cmpstr (log.triggered_by, ==, "manual:alice");
  rotation_log_clear (&log);
  {
    g_autofree char *chosen = select_name (f);
    g_assert_cmpstr (chosen, ==, "b");
  }

  /* Skipped until the next daily reset. */
  gk_clock_set (f->clock, gk_quota_next_reset (GK_QUOTA_DAILY, GK_TEST_EPOCH, la));
  {
    g_autofree char *chosen = select_name (f);
    g_assert_cmpstr (chosen, ==, "a");
  }

  gk_pool_rotate (f->pool, 9999, "manual:alice", &error);
  g_assert_error (error, GK_POOL_ERROR, GK_POOL_ERROR_NOT_FOUND);
}

static void
test_usage_row (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  const KeyRow a = { "a", 9, .budget = -1 };
  gint64 ida = add_row (f, &a, 1);
  g_autofree char *leaky = NULL;
  g_autofree char *api_key = gk_test_api_key (777);
  GkUsageRecord record;
  GkUsageRow *row;

  leaky = g_strdup_printf ("upstream said: bad key %s", api_key);
  gk_usage_record_init (&record);
  record.key_id = ida;
  record.model = "models/gemini-unknown-9";
  record.prompt_tokens = 12;
  record.output_tokens = 30;
  record.status = GK_USAGE_ERROR;
  record.http_status = 403;
  record.error_message = leaky;
  record.user_id = "ci-bot";
  record.latency_ms = 321;
  gk_pool_track (f->pool, &record, NULL, &error);
  g_assert_no_error (error);

  rows = gk_stats_usage_logs (f->db, 0, 10, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (rows->len, ==, 1);
  row = g_ptr_array_index (rows, 0);
  g_assert_cmpint (row->key_id, ==, ida);
  g_assert_cmpstr (row->model, ==, "models/gemini-unknown-9");
  g_assert_cmpint (row->tokens_used, ==, 42);
  g_assert_cmpint (row->http_status, ==, 403);
  g_assert_cmpstr (row->user_id, ==, "ci-bot");
  g_assert_cmpint (row->latency_ms, ==, 321);
  g_assert_false (row->priced);
  g_assert_cmpfloat (row->cost_usd, ==, 0.0);
  g_assert_null (strstr (row->error_message, api_key));

  /* Negative numbers are refused, nothing written. */
  record.prompt_tokens = -1;
  g_assert_false (gk_pool_track (f->pool, &record, NULL, &error));
  g_assert_error (error, GK_POOL_ERROR, GK_POOL_ERROR_INVALID);
}

/* Two processes charge the same key at once: no update is lost. */
#define CHARGES_PER_PROCESS 300

static void
test_concurrent_processes (Fixture       *f,
                           gconstpointer  data)
{
  const KeyRow a = { "a", 9, .budget = -1 };
  gint64 ida = add_row (f, &a, 1);
  const char *path = gk_database_get_path (f->db);
  pid_t children[2];
  g_autoptr(GkKey) key = NULL;
  gint64 count;

  for (int c = 0; c < 2; c++)
    {
      children[c] = fork ();
      g_assert_cmpint (children[c], >=, 0);
      if (children[c] == 0)
        {
          g_autoptr(GError) error = NULL;
          g_autoptr(GkDatabase) db = gk_database_open (path, NULL, &error);
          g_autoptr(GkPool) pool = NULL;

          if (db == NULL)
            _exit (2);
          pool = gk_pool_new (db, NULL);
          for (int i = 0; i < CHARGES_PER_PROCESS; i++)
            {
              GkUsageRecord record;

              gk_usage_record_init (&record);
              record.key_id = ida;
              record.model = "gemini-2.5-flash";
              record.prompt_tokens = 1;
              if (!gk_pool_track (pool, &record, NULL, &error))
                _exit (3);
            }
          /* _exit skips the autoptr clean-up; leak checkers watch children too. */
          g_clear_object (&pool);
          g_clear_object (&db);
          _exit (0);
        }
    }
  for (int c = 0; c < 2; c++)
    {
      int status;
      g_assert_cmpint (waitpid (children[c], &status, 0), ==, children[c]);
      g_assert_true (WIFEXITED (status));
      g_assert_cmpint (WEXITSTATUS (status), ==, 0);
    }

  key = get_key (f, ida);
  g_assert_cmpint (key->quotas[GK_QUOTA_SLOT_MONTHLY_TOKENS].used_value, ==, 2 * CHARGES_PER_PROCESS);
  g_assert_cmpint (key->quotas[GK_QUOTA_SLOT_DAILY_REQUESTS].used_value, ==, 2 * CHARGES_PER_PROCESS);
  count = gk_stats_usage_count (f->db, ida, NULL);
  g_assert_cmpint (count, ==, 2 * CHARGES_PER_PROCESS);
}

/* A pool notices keys written by another connection. */
/* A key store on a connection of its own to the fixture's database, as
 * another process would have. */
static GkKeyStore *
other_connection_store (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) other = gk_database_open (gk_database_get_path (f->db), f->clock, &error);

  g_assert_no_error (error);
  return gk_key_store_new (other, f->master);
}

static void
test_other_connection (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GkKeyStore) other_store = other_connection_store (f);
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;

  /* tests/pg/test-pg-pool.c: through the watch of change notices. */
  if (gk_test_skip_on_postgresql ("on a server, changes reach a pool through its watch"))
    return;
  first = select_name (f);
  g_assert_null (first);
  gk_test_add_key (other_store, "from-elsewhere", 5);
  second = select_name (f);
  g_assert_cmpstr (second, ==, "from-elsewhere");
}

/* With a change check age, the pool takes the data_version last read on
 * its connection (by a token check, say) while that read is recent, and
 * reads no other: a key another connection added shows once someone on
 * this connection read data_version again. */
static void
test_change_check_age (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GkKeyStore) other_store = other_connection_store (f);
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;
  g_autofree char *third = NULL;

  /* tests/pg/test-pg-pool.c: through the watch of change notices. */
  if (gk_test_skip_on_postgresql ("on a server, changes reach a pool through its watch"))
    return;
  /* An hour: no read of this test gets old enough to be taken again. */
  gk_pool_set_change_check_age (f->pool, (gint64) 3600 * G_USEC_PER_SEC);
  first = select_name (f);
  g_assert_null (first);
  gk_test_add_key (other_store, "from-elsewhere", 5);
  second = select_name (f);
  g_assert_null (second);
  g_assert_cmpint (gk_database_get_data_version (f->db), >=, 0);
  third = select_name (f);
  g_assert_cmpstr (third, ==, "from-elsewhere");

  /* Back to a read on every use. */
  gk_pool_set_change_check_age (f->pool, 0);
  gk_test_add_key (other_store, "later", 9);
  g_clear_pointer (&third, g_free);
  third = select_name (f);
  g_assert_cmpstr (third, ==, "later");
}

/* The key's plaintext for a request, from the ciphertext the snapshot holds. */
static char *
reveal_selected (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) key = gk_pool_select (f->pool, NULL, NULL, &error);
  g_autoptr(GBytes) plain = NULL;

  g_assert_no_error (error);
  g_assert_nonnull (key->ciphertext);
  plain = gk_key_store_reveal_key (f->store, key, &error);
  g_assert_no_error (error);
  return g_strdup (g_bytes_get_data (plain, NULL));
}

/* A selected key carries its ciphertext, and a new
 * secret reaches the next request whether this connection or another
 * one (another process) wrote it. */
static void
test_key_secret (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) other = gk_database_open (gk_database_get_path (f->db), f->clock, &error);
  g_autoptr(GkKeyStore) other_store = NULL;
  g_autofree char *first = gk_test_api_key (1);
  g_autofree char *second = gk_test_api_key (2);
  g_autofree char *third = gk_test_api_key (3);
  g_autofree char *revealed = NULL;
  GkKeySpec spec;
  gint64 id;

  /* tests/pg/test-pg-pool.c: through the watch of change notices. */
  if (gk_test_skip_on_postgresql ("on a server, changes reach a pool through its watch"))
    return;
  g_assert_no_error (error);
  other_store = gk_key_store_new (other, f->master);
  gk_key_spec_init (&spec);
  spec.name = "secret";
  id = gk_key_store_add (f->store, &spec, first, &error);
  g_assert_no_error (error);

  revealed = reveal_selected (f);
  g_assert_cmpstr (revealed, ==, first);

  g_assert_true (gk_key_store_update (other_store, id, &spec, second, &error));
  g_assert_no_error (error);
  g_clear_pointer (&revealed, g_free);
  revealed = reveal_selected (f);
  g_assert_cmpstr (revealed, ==, second);

  g_assert_true (gk_key_store_update (f->store, id, &spec, third, &error));
  g_assert_no_error (error);
  g_clear_pointer (&revealed, g_free);
  revealed = reveal_selected (f);
  g_assert_cmpstr (revealed, ==, third);
}

/* The integer @sql gives for key @id (its ?1). */
static gint64
query_for_key (GkDatabase *db,
               const char *sql,
               gint64      id)
{
  g_autoptr(GError) error = NULL;
  GkSqlStmt *stmt;
  gint64 value = -1;

  gk_database_lock (db);
  stmt = gk_database_prepare (db, sql, &error);
  g_assert_no_error (error);
  gk_sql_bind_int64 (stmt, 1, id);
  if (gk_sql_step (stmt) == GK_SQL_ROW)
    value = gk_sql_column_int64 (stmt, 0);
  gk_sql_reset (stmt);
  gk_database_unlock (db);
  return value;
}

/* A key deleted while a request that uses it is in flight (the CLI or
 * the app deletes it, the gateway answers a moment later): the row of
 * that answered request is still written and charged. */
static void
test_track_deleted_key (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) selected = NULL;
  const KeyRow a = { "a", 9, .budget = -1 };
  gint64 ida = add_row (f, &a, 1);
  GkTrackResult result = { 0 };
  GkUsageRecord record;

  selected = gk_pool_select (f->pool, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (selected->id, ==, ida);
  g_assert_true (gk_key_store_delete (f->store, ida, &error));
  g_assert_no_error (error);

  gk_usage_record_init (&record);
  record.key_id = ida;
  record.model = "gemini-2.5-flash";
  record.prompt_tokens = 10;
  record.output_tokens = 5;
  record.status = GK_USAGE_SUCCESS;
  g_assert_true (gk_pool_track (f->pool, &record, &result, &error));
  g_assert_no_error (error);
  g_assert_cmpint (result.usage_id, ==,
                   query_for_key (f->db, "SELECT max (id) FROM gemini_key_usage_log"
                                         " WHERE key_id = ?1", ida));
  g_assert_cmpint (result.usage_id, >, 0);
  g_assert_false (result.rotated);
  g_assert_cmpint (query_for_key (f->db, "SELECT count(*) FROM gemini_key_usage_log"
                                                " WHERE key_id = ?1", ida), ==, 1);
  g_assert_cmpint (query_for_key (f->db, "SELECT used_value FROM gemini_key_quotas"
                                                " WHERE key_id = ?1 AND quota_type = 'DAILY'"
                                                " AND unit = 'TOKENS'", ida), ==, 15);

  /* A key that never existed is still refused. */
  record.key_id = ida + 1000;
  g_assert_false (gk_pool_track (f->pool, &record, NULL, &error));
  g_assert_error (error, GK_POOL_ERROR, GK_POOL_ERROR_NOT_FOUND);
}

/* How many times @db's connection has run a statement whose SQL starts
 * with @prefix (SQLite only). */
static int
statement_runs (GkDatabase *db,
                const char *prefix)
{
  sqlite3 *handle = gk_sql_sqlite_get_handle (gk_database_get_handle (db));
  int runs = 0;

  for (sqlite3_stmt *stmt = sqlite3_next_stmt (handle, NULL); stmt != NULL;
       stmt = sqlite3_next_stmt (handle, stmt))
    if (g_str_has_prefix (sqlite3_sql (stmt), prefix))
      runs += sqlite3_stmt_status (stmt, SQLITE_STMTSTATUS_RUN, 0);
  return runs;
}

/* Rows written in one batch (as the gateway writes those of requests that
 * end together) charge the quotas and the keys as if written one by one:
 * counters equal rows, a 429 after successes leaves its strike. On an
 * SQLite file the charges of one key go out in one UPDATE rather than one
 * per row, and the 429 (which writes the key's row itself) comes after
 * those that came before it. */
static void
test_batch_charges (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  const KeyRow a = { "a", 9, FALSE, 1000000, 0, .budget = -1 };
  const KeyRow b = { "b", 1, FALSE, 1000000, 0, .budget = -1 };
  gint64 ida = add_row (f, &a, 1), idb = add_row (f, &b, 2);
  const char *charge_sql = "UPDATE OR FAIL gemini_key_quotas";
  gboolean sqlite = !gk_database_is_remote (f->db);
  g_autoptr(GkKey) key = NULL;
  int runs = 0;

  track (f, ida, GK_USAGE_SUCCESS, 1, 0, FALSE);
  if (sqlite)
    runs = statement_runs (f->db, charge_sql);
  gk_clock_advance (f->clock, 5);
  g_assert_true (gk_pool_batch_begin (f->pool, &error));
  g_assert_no_error (error);
  track (f, ida, GK_USAGE_SUCCESS, 10, 0, FALSE);
  track (f, ida, GK_USAGE_SUCCESS, 20, 0, FALSE);
  track (f, idb, GK_USAGE_SUCCESS, 5, 0, FALSE);
  track (f, ida, GK_USAGE_RATE_LIMITED, 0, 30, FALSE);
  track (f, idb, GK_USAGE_SUCCESS, 7, 0, FALSE);
  g_assert_true (gk_pool_batch_end (f->pool, &error));
  g_assert_no_error (error);
  /* a and b before the 429, b after it. */
  if (sqlite)
    g_assert_cmpint (statement_runs (f->db, charge_sql), ==, runs + 3);

  g_assert_cmpint (query_for_key (f->db, "SELECT used_value FROM gemini_key_quotas WHERE key_id = ?1"
                                         " AND unit = 'TOKENS'", ida), ==, 31);
  g_assert_cmpint (query_for_key (f->db, "SELECT used_value FROM gemini_key_quotas WHERE key_id = ?1"
                                         " AND unit = 'TOKENS'", idb), ==, 12);
  g_assert_cmpint (query_for_key (f->db, "SELECT count(*) FROM gemini_key_usage_log"
                                         " WHERE key_id = ?1", ida), ==, 4);
  g_assert_cmpint (query_for_key (f->db, "SELECT rate_limit_strikes FROM gemini_api_keys"
                                         " WHERE id = ?1", ida), ==, 1);
  g_assert_cmpint (query_for_key (f->db, "SELECT rate_limit_strikes FROM gemini_api_keys"
                                         " WHERE id = ?1", idb), ==, 0);
  g_assert_cmpint (query_for_key (f->db, "SELECT last_used_at FROM gemini_api_keys WHERE id = ?1",
                                  idb), ==, gk_clock_now (f->clock));
  /* The month's cost is the sum of the rows' costs (micro-dollars here). */
  g_assert_cmpint (query_for_key (f->db, "SELECT CAST (round (month_cost_usd * 1e9) AS INTEGER)"
                                         " FROM gemini_api_keys WHERE id = ?1", idb), ==,
                   query_for_key (f->db, "SELECT CAST (round (sum (cost_usd) * 1e9) AS INTEGER)"
                                         " FROM gemini_key_usage_log WHERE key_id = ?1", idb));
  g_assert_cmpint (query_for_key (f->db, "SELECT count(*) FROM gemini_key_usage_log"
                                         " WHERE key_id = ?1 AND cost_usd > 0", idb), ==, 2);
  key = get_key (f, ida);
  g_assert_cmpint (key->status, ==, GK_KEY_STATUS_RATE_LIMITED);

  /* And the next charge adds to the batch's. */
  track (f, idb, GK_USAGE_SUCCESS, 1, 0, FALSE);
  g_assert_cmpint (query_for_key (f->db, "SELECT used_value FROM gemini_key_quotas WHERE key_id = ?1"
                                         " AND unit = 'TOKENS'", idb), ==, 13);
}

#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, gk_test_fixture_setup, func, gk_test_fixture_teardown)

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add_func ("/pool/selection-order", test_selection_order);
  ADD ("/pool/empty", test_empty_pool);
  ADD ("/pool/trigger/quota-low", test_trigger_quota_low);
  ADD ("/pool/trigger/rate-limited", test_trigger_rate_limited);
  ADD ("/pool/trigger/rate-limited-per-day", test_trigger_rate_limited_per_day);
  ADD ("/pool/trigger/per-project", test_per_project_cooldown);
  ADD ("/pool/trigger/invalid", test_trigger_invalid);
  ADD ("/pool/trigger/budget", test_trigger_budget);
  ADD ("/pool/errors-do-not-penalise", test_errors_do_not_penalise);
  ADD ("/pool/near-quota-fallback", test_near_quota_fallback);
  ADD ("/pool/manual-rotation", test_manual_rotation);
  ADD ("/pool/usage-row", test_usage_row);
  ADD ("/pool/batch-charges", test_batch_charges);
  ADD ("/pool/track-deleted-key", test_track_deleted_key);
  ADD ("/pool/concurrent-processes", test_concurrent_processes);
  ADD ("/pool/other-connection", test_other_connection);
  ADD ("/pool/change-check-age", test_change_check_age);
  ADD ("/pool/key-secret", test_key_secret);

  return g_test_run ();
}
