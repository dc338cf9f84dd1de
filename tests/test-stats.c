/* test-stats.c: dashboard figures, usage and rotation listings.
 *
 * Rows are written with raw SQL so the figures are checked against known
 * data, independent of the modules that write them in the app.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include "gk-database-private.h"
#include "gk-test-util.h"

#define DAY   G_GINT64_CONSTANT (86400)
#define HOUR  G_GINT64_CONSTANT (3600)
/* GK_TEST_EPOCH is 2026-03-15 12:00 UTC, and March 15 in every zone the
 * suite runs in (tests/meson.build: UTC, Asia/Ho_Chi_Minh,
 * America/Los_Angeles). The dashboard counts local days, so the fixtures
 * place rows relative to local midnights; the 30 days before March 15 hold
 * the US switch to DST (March 8, a 23-hour day in Los Angeles). */
#define TODAY (day_start (0))
/* Midnight UTC on March 15, for the tests that pick their zone. */
#define UTC_TODAY (GK_TEST_EPOCH - 12 * HOUR)

typedef struct
{
  GkDatabase *db;
  char       *dir;
} Fixture;

/* The zone the test program runs in (TZ as started; NULL if unset). */
static char *run_zone;

/* Local midnight @offset days from March 15, 2026 (the day of
 * GK_TEST_EPOCH) in the current local zone. */
static gint64
day_start (int offset)
{
  g_autoptr(GDateTime) now = g_date_time_new_from_unix_local (GK_TEST_EPOCH);
  g_autoptr(GDate) date = g_date_new_dmy (g_date_time_get_day_of_month (now),
                                          g_date_time_get_month (now),
                                          g_date_time_get_year (now));
  g_autoptr(GDateTime) midnight = NULL;

  if (offset >= 0)
    g_date_add_days (date, offset);
  else
    g_date_subtract_days (date, -offset);
  midnight = g_date_time_new_local (g_date_get_year (date), g_date_get_month (date),
                                    g_date_get_day (date), 0, 0, 0);
  return g_date_time_to_unix (midnight);
}

/* Switches the process to @zone for what follows. */
static void
use_zone (const char *zone)
{
  g_setenv ("TZ", zone, TRUE);
}

/* Back to the zone the test program runs in. */
static void
restore_zone (void)
{
  if (run_zone != NULL)
    g_setenv ("TZ", run_zone, TRUE);
  else
    g_unsetenv ("TZ");
}

static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  data)
{
  fixture->db = gk_test_open_db (NULL);
  fixture->dir = gk_test_db_dir (fixture->db);
}

static void
fixture_tear_down (Fixture       *fixture,
                   gconstpointer  data)
{
  g_assert_finalize_object (g_steal_pointer (&fixture->db));
  gk_test_rm_rf (fixture->dir);
  g_free (fixture->dir);
}

static gint64
add_key (GkDatabase *db,
         const char *name,
         const char *status,
         gboolean    deleted)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *uuid = g_uuid_string_random ();
  GkSqlStmt *stmt;
  gint64 id;

  gk_database_lock (db);
  stmt = gk_database_prepare (db,
                              "INSERT INTO gemini_api_keys (uuid, name, status, created_at,"
                              " updated_at, deleted_at) VALUES (?1, ?2, ?3, ?4, ?4, ?5)"
                              " RETURNING id",
                              &error);
  g_assert_no_error (error);
  gk_sql_bind_text (stmt, 1, uuid, -1);
  gk_sql_bind_text (stmt, 2, name, -1);
  gk_sql_bind_text (stmt, 3, status, -1);
  gk_sql_bind_int64 (stmt, 4, GK_TEST_EPOCH - 100 * DAY);
  if (deleted)
    gk_sql_bind_int64 (stmt, 5, GK_TEST_EPOCH - DAY);
  id = gk_database_step_insert (db, stmt, "insert", &error);
  g_assert_no_error (error);
  gk_database_unlock (db);
  return id;
}

typedef struct
{
  gint64      key_id;
  const char *model;
  gint64      tokens;
  double      cost;
  const char *status;
  const char *user;
  gint64      created_at;
} UsageSpec;

static gint64
add_usage_on (GkDatabase      *db,
              const UsageSpec *u)
{
  g_autoptr(GError) error = NULL;
  GkSqlStmt *stmt;
  gint64 id;

  gk_database_lock (db);
  stmt = gk_database_prepare (db,
                              "INSERT INTO gemini_key_usage_log (key_id, model, tokens_used,"
                              " prompt_tokens, output_tokens, cost_usd, priced, status,"
                              " http_status, error_message, user_id, latency_ms, created_at)"
                              " VALUES (?1, ?2, CAST (?3 AS BIGINT), CAST (?3 AS BIGINT) / 2,"
                              " CAST (?3 AS BIGINT) - CAST (?3 AS BIGINT) / 2, ?4, ?5, ?6, ?7,"
                              " ?8, ?9, nullif (CAST (?3 AS BIGINT) * 37 % 150001, 0), ?10)"
                              " RETURNING id",
                              &error);
  g_assert_no_error (error);
  gk_sql_bind_int64 (stmt, 1, u->key_id);
  gk_sql_bind_text (stmt, 2, u->model ? u->model : "", -1);
  gk_sql_bind_int64 (stmt, 3, u->tokens);
  gk_sql_bind_double (stmt, 4, u->cost);
  gk_sql_bind_int64 (stmt, 5, u->cost > 0);
  gk_sql_bind_text (stmt, 6, u->status ? u->status : "SUCCESS", -1);
  gk_sql_bind_int64 (stmt, 7, g_strcmp0 (u->status, "RATE_LIMITED") == 0 ? 429 : 200);
  if (g_strcmp0 (u->status, "ERROR") == 0)
    gk_sql_bind_text (stmt, 8, "boom", -1);
  if (u->user != NULL)
    gk_sql_bind_text (stmt, 9, u->user, -1);
  gk_sql_bind_int64 (stmt, 10, u->created_at);
  id = gk_database_step_insert (db, stmt, "insert", &error);
  g_assert_no_error (error);
  gk_database_unlock (db);
  return id;
}

static gint64
add_usage (GkDatabase *db,
           gint64      key_id,
           const char *model,
           double      cost,
           const char *status,
           const char *user,
           gint64      created_at)
{
  UsageSpec u = { key_id, model, 100, cost, status, user, created_at };

  return add_usage_on (db, &u);
}

static gint64
add_rotation (GkDatabase *db,
              gint64      from_key,
              gint64      to_key,
              const char *reason,
              const char *triggered_by,
              gint64      created_at)
{
  g_autoptr(GError) error = NULL;
  GkSqlStmt *stmt;
  gint64 id;

  gk_database_lock (db);
  stmt = gk_database_prepare (db,
                              "INSERT INTO gemini_key_rotation_log (from_key_id, to_key_id,"
                              " reason, triggered_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5)"
                              " RETURNING id",
                              &error);
  g_assert_no_error (error);
  gk_sql_bind_int64 (stmt, 1, from_key);
  if (to_key != 0)
    gk_sql_bind_int64 (stmt, 2, to_key);
  gk_sql_bind_text (stmt, 3, reason, -1);
  gk_sql_bind_text (stmt, 4, triggered_by, -1);
  gk_sql_bind_int64 (stmt, 5, created_at);
  id = gk_database_step_insert (db, stmt, "insert", &error);
  g_assert_no_error (error);
  gk_database_unlock (db);
  return id;
}

static GkDashboard *
dashboard (GkDatabase *db,
           guint       days)
{
  g_autoptr(GError) error = NULL;
  GkDashboard *result = gk_stats_dashboard (db, days, &error);

  g_assert_no_error (error);
  g_assert_nonnull (result);
  g_assert_cmpuint (result->days, ==, days);
  g_assert_cmpuint (result->daily->len, ==, days);
  return result;
}

static const GkDailyPoint *
point (GkDashboard *d,
       guint        i)
{
  return &g_array_index (d->daily, GkDailyPoint, i);
}

static void
assert_point (GkDashboard *d,
              guint        i,
              gint64       requests,
              gint64       successes,
              double       cost)
{
  g_assert_cmpint (point (d, i)->requests, ==, requests);
  g_assert_cmpint (point (d, i)->successes, ==, successes);
  g_assert_cmpfloat_with_epsilon (point (d, i)->cost_usd, cost, 1e-9);
}

/* The cards and the chart must tell the same story. */
static void
assert_cards_match_series (GkDashboard *d)
{
  gint64 requests = 0, successes = 0;
  double cost = 0;

  for (guint i = 0; i < d->daily->len; i++)
    {
      requests += point (d, i)->requests;
      successes += point (d, i)->successes;
      cost += point (d, i)->cost_usd;
    }
  g_assert_cmpint (d->cards.requests, ==, requests);
  g_assert_cmpint (d->cards.successes, ==, successes);
  g_assert_cmpfloat_with_epsilon (d->cards.cost_usd, cost, 1e-9);
  if (requests == 0)
    g_assert_cmpfloat (d->cards.success_rate, ==, 0.0);
  else
    g_assert_cmpfloat_with_epsilon (d->cards.success_rate, 100.0 * successes / requests, 1e-9);
}

static void
test_empty (Fixture       *fixture,
            gconstpointer  data)
{
  g_autoptr(GkDashboard) week = dashboard (fixture->db, 7);
  g_autoptr(GkDashboard) month = dashboard (fixture->db, 30);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) logs = NULL;
  g_autoptr(GPtrArray) rotations = NULL;
  GkUsageSummary summary = { 1, 1, 1, 1 };
  gint64 all = -1, manual = -1, automatic = -1;

  g_assert_cmpint (week->cards.total_keys, ==, 0);
  g_assert_cmpint (week->cards.active_keys, ==, 0);
  g_assert_cmpint (week->cards.inactive_keys, ==, 0);
  assert_cards_match_series (week);
  assert_cards_match_series (month);
  g_assert_cmpint (week->cards.requests, ==, 0);

  /* One point per day, oldest first, each at local midnight. */
  for (guint i = 0; i < 7; i++)
    {
      g_assert_cmpint (point (week, i)->day_start, ==, day_start ((int) i - 6));
      assert_point (week, i, 0, 0, 0);
    }
  for (guint i = 0; i < 30; i++)
    g_assert_cmpint (point (month, i)->day_start, ==, day_start ((int) i - 29));

  g_assert_cmpuint (week->top_models->len, ==, 0);
  g_assert_cmpuint (week->top_users->len, ==, 0);
  g_assert_cmpuint (week->rotations->len, ==, 0);

  logs = gk_stats_usage_logs (fixture->db, 0, 10, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (logs->len, ==, 0);
  g_assert_cmpint (gk_stats_usage_count (fixture->db, 0, &error), ==, 0);
  g_assert_true (gk_stats_usage_summary (fixture->db, 0, 0, &summary, &error));
  g_assert_no_error (error);
  g_assert_cmpint (summary.requests, ==, 0);
  g_assert_cmpint (summary.successes, ==, 0);
  g_assert_cmpint (summary.failures, ==, 0);
  g_assert_cmpfloat (summary.cost_usd, ==, 0.0);

  rotations = gk_stats_rotation_logs (fixture->db, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rotations->len, ==, 0);
  g_assert_true (gk_stats_rotation_totals (fixture->db, &all, &manual, &automatic, &error));
  g_assert_cmpint (all, ==, 0);
  g_assert_cmpint (manual, ==, 0);
  g_assert_cmpint (automatic, ==, 0);
}

static void
test_key_cards (Fixture       *fixture,
                gconstpointer  data)
{
  g_autoptr(GkDashboard) d = NULL;

  add_key (fixture->db, "a", "ACTIVE", FALSE);
  add_key (fixture->db, "b", "ACTIVE", FALSE);
  add_key (fixture->db, "c", "ACTIVE", FALSE);
  add_key (fixture->db, "d", "INACTIVE", FALSE);
  add_key (fixture->db, "e", "RATE_LIMITED", FALSE);
  add_key (fixture->db, "f", "INVALID", FALSE);
  add_key (fixture->db, "gone", "ACTIVE", TRUE);
  add_key (fixture->db, "gone too", "INVALID", TRUE);

  d = dashboard (fixture->db, 7);
  g_assert_cmpint (d->cards.total_keys, ==, 6);
  g_assert_cmpint (d->cards.active_keys, ==, 3);
  g_assert_cmpint (d->cards.inactive_keys, ==, 3);
}

static void
test_single_point (Fixture       *fixture,
                   gconstpointer  data)
{
  gint64 key = add_key (fixture->db, "k", "ACTIVE", FALSE);
  g_autoptr(GkDashboard) d = NULL;

  add_usage (fixture->db, key, "gemini-2.5-flash", 0.25, "SUCCESS", "alice", TODAY + HOUR);

  d = dashboard (fixture->db, 7);
  for (guint i = 0; i < 6; i++)
    assert_point (d, i, 0, 0, 0);
  assert_point (d, 6, 1, 1, 0.25);
  assert_cards_match_series (d);
  g_assert_cmpfloat (d->cards.success_rate, ==, 100.0);
}

static void
test_daily_series (Fixture       *fixture,
                   gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", "ACTIVE", FALSE);
  g_autoptr(GkDashboard) week = NULL;
  g_autoptr(GkDashboard) month = NULL;

  /* Today: its first second and a failure. */
  add_usage (db, key, "m", 1.0, "SUCCESS", NULL, TODAY);
  add_usage (db, key, "m", 2.0, "ERROR", NULL, TODAY + 11 * HOUR);
  /* Yesterday's last second. */
  add_usage (db, key, "m", 4.0, "SUCCESS", NULL, TODAY - 1);
  /* The first day of the week, at its first second. */
  add_usage (db, key, "m", 8.0, "RATE_LIMITED", NULL, day_start (-6));
  /* The last second before the week: only in the month. */
  add_usage (db, key, "m", 16.0, "SUCCESS", NULL, day_start (-6) - 1);
  /* The month's first day, and the second before it. */
  add_usage (db, key, "m", 32.0, "SUCCESS", NULL, day_start (-29));
  add_usage (db, key, "m", 64.0, "SUCCESS", NULL, day_start (-29) - 1);
  /* Tomorrow (a skewed clock) belongs to no period yet. */
  add_usage (db, key, "m", 128.0, "SUCCESS", NULL, day_start (1));

  week = dashboard (db, 7);
  assert_point (week, 6, 2, 1, 3.0);
  assert_point (week, 5, 1, 1, 4.0);
  assert_point (week, 0, 1, 0, 8.0);
  for (guint i = 1; i < 5; i++)
    assert_point (week, i, 0, 0, 0);
  assert_cards_match_series (week);
  g_assert_cmpint (week->cards.requests, ==, 4);
  g_assert_cmpint (week->cards.successes, ==, 2);
  g_assert_cmpfloat_with_epsilon (week->cards.success_rate, 50.0, 1e-9);
  g_assert_cmpfloat_with_epsilon (week->cards.cost_usd, 15.0, 1e-9);

  month = dashboard (db, 30);
  assert_point (month, 29, 2, 1, 3.0);
  assert_point (month, 28, 1, 1, 4.0);
  assert_point (month, 23, 1, 0, 8.0);
  assert_point (month, 22, 1, 1, 16.0);
  assert_point (month, 0, 1, 1, 32.0);
  assert_cards_match_series (month);
  g_assert_cmpint (month->cards.requests, ==, 6);
  g_assert_cmpfloat_with_epsilon (month->cards.cost_usd, 63.0, 1e-9);
}

static void
test_many_points (Fixture       *fixture,
                  gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", "ACTIVE", FALSE);
  g_autoptr(GkDashboard) d = NULL;

  /* Day i (0 = 29 days ago) gets i + 1 requests, every third a failure. */
  gk_database_exec (db, "BEGIN", NULL);
  for (guint i = 0; i < 30; i++)
    {
      for (guint j = 0; j <= i; j++)
        add_usage (db, key, "m", 0.5, j % 3 == 2 ? "ERROR" : "SUCCESS", NULL,
                   day_start ((int) i - 29) + (gint64) j * 60);
    }
  gk_database_exec (db, "COMMIT", NULL);

  d = dashboard (db, 30);
  for (guint i = 0; i < 30; i++)
    assert_point (d, i, i + 1, (i + 1) - (i + 1) / 3, 0.5 * (i + 1));
  assert_cards_match_series (d);
  g_assert_cmpint (d->cards.requests, ==, 30 * 31 / 2);
}

static void
assert_rank (GPtrArray  *rows,
             guint       i,
             const char *name,
             gint64      requests,
             double      cost)
{
  const GkRankRow *row = g_ptr_array_index (rows, i);

  g_assert_cmpstr (row->name, ==, name);
  g_assert_cmpint (row->requests, ==, requests);
  g_assert_cmpint (row->tokens, ==, requests * 100);
  g_assert_cmpfloat_with_epsilon (row->cost_usd, cost, 1e-9);
}

static void
test_top_models (Fixture       *fixture,
                 gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", "ACTIVE", FALSE);
  static const struct
  {
    const char *model;
    guint       requests;
    double      cost_each;
  } models[] = {
    { "gemini-2.5-pro", 3, 1.0 },
    { "gemini-2.5-flash", 7, 0.1 },
    { "gemini-2.0-flash", 5, 0.2 },
    { "gemini-2.5-flash-lite", 5, 0.3 },   /* same requests: more cost first */
    { "b-model", 4, 0.0 },
    { "a-model", 4, 0.0 },                 /* same requests and cost: by name */
    { "gemini-embedding-001", 1, 0.0 },
  };
  g_autoptr(GkDashboard) d = NULL;

  for (guint m = 0; m < G_N_ELEMENTS (models); m++)
    for (guint j = 0; j < models[m].requests; j++)
      add_usage (db, key, models[m].model, models[m].cost_each, "SUCCESS", NULL,
                 day_start (-(int) j) + HOUR);
  /* Outside the week, and without a model: not ranked. */
  for (guint j = 0; j < 20; j++)
    add_usage (db, key, "old-model", 1.0, "SUCCESS", NULL, day_start (-8));
  add_usage (db, key, "", 0.0, "ERROR", NULL, TODAY + HOUR);

  d = dashboard (db, 7);
  g_assert_cmpuint (d->top_models->len, ==, 5);
  assert_rank (d->top_models, 0, "gemini-2.5-flash", 7, 0.7);
  assert_rank (d->top_models, 1, "gemini-2.5-flash-lite", 5, 1.5);
  assert_rank (d->top_models, 2, "gemini-2.0-flash", 5, 1.0);
  assert_rank (d->top_models, 3, "a-model", 4, 0.0);
  assert_rank (d->top_models, 4, "b-model", 4, 0.0);
  g_clear_pointer (&d, gk_dashboard_free);

  /* The month sees the old model at the top. */
  d = dashboard (db, 30);
  assert_rank (d->top_models, 0, "old-model", 20, 20.0);
  g_assert_cmpuint (d->top_models->len, ==, 5);
}

static void
test_top_users (Fixture       *fixture,
                gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", "ACTIVE", FALSE);
  g_autoptr(GkDashboard) d = NULL;

  /* user-NN makes NN requests, 12 users: the two smallest drop out. */
  for (guint u = 1; u <= 12; u++)
    {
      g_autofree char *user = g_strdup_printf ("user-%02u", u);

      for (guint j = 0; j < u; j++)
        add_usage (db, key, "m", 0.01, "SUCCESS", user, TODAY + (gint64) j);
    }
  /* No user id: counted, not ranked. */
  for (guint j = 0; j < 50; j++)
    add_usage (db, key, "m", 0.01, "SUCCESS", NULL, TODAY + HOUR);

  d = dashboard (db, 7);
  g_assert_cmpuint (d->top_users->len, ==, 10);
  for (guint i = 0; i < 10; i++)
    {
      g_autofree char *user = g_strdup_printf ("user-%02u", 12 - i);

      assert_rank (d->top_users, i, user, 12 - i, 0.01 * (12 - i));
    }
  g_assert_cmpint (d->cards.requests, ==, 78 + 50);
}

static void
assert_rotation (const GkRotationRow *row,
                 gint64               id,
                 const char          *from_name,
                 const char          *to_name,
                 GkRotationReason     reason,
                 const char          *triggered_by)
{
  g_assert_cmpint (row->id, ==, id);
  g_assert_cmpstr (row->from_key_name, ==, from_name);
  g_assert_cmpstr (row->to_key_name, ==, to_name);
  g_assert_cmpint (row->to_key_id == 0, ==, to_name == NULL);
  g_assert_cmpint (row->reason, ==, reason);
  g_assert_cmpstr (row->triggered_by, ==, triggered_by);
}

static void
test_rotations (Fixture       *fixture,
                gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 a = add_key (db, "alpha", "ACTIVE", FALSE);
  gint64 b = add_key (db, "beta", "ACTIVE", FALSE);
  gint64 gone = add_key (db, "deleted one", "INVALID", TRUE);
  g_autoptr(GkDashboard) d = NULL;
  g_autoptr(GPtrArray) all_rows = NULL;
  g_autoptr(GPtrArray) three = NULL;
  g_autoptr(GError) error = NULL;
  gint64 ids[12];
  gint64 all, manual, automatic;

  for (guint i = 0; i < 9; i++)
    ids[i] = add_rotation (db, a, b, "QUOTA_LOW", "auto", GK_TEST_EPOCH - 100 + (gint64) i);
  ids[9] = add_rotation (db, gone, a, "INVALID_KEY", "auto", GK_TEST_EPOCH);
  /* Same second: the later row is newer. */
  ids[10] = add_rotation (db, b, 0, "MANUAL", "manual:alice", GK_TEST_EPOCH);
  ids[11] = add_rotation (db, a, b, "RATE_LIMITED", "Manual", GK_TEST_EPOCH - 1000);

  d = dashboard (db, 7);
  g_assert_cmpuint (d->rotations->len, ==, 10);
  assert_rotation (g_ptr_array_index (d->rotations, 0), ids[10], "beta", NULL,
                   GK_ROTATION_MANUAL, "manual:alice");
  assert_rotation (g_ptr_array_index (d->rotations, 1), ids[9], "deleted one", "alpha",
                   GK_ROTATION_INVALID_KEY, "auto");
  for (guint i = 2; i < 10; i++)
    assert_rotation (g_ptr_array_index (d->rotations, i), ids[10 - i], "alpha", "beta",
                     GK_ROTATION_QUOTA_LOW, "auto");

  all_rows = gk_stats_rotation_logs (db, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (all_rows->len, ==, 12);
  assert_rotation (g_ptr_array_index (all_rows, 11), ids[11], "alpha", "beta",
                   GK_ROTATION_RATE_LIMITED, "Manual");
  g_assert_cmpint (((GkRotationRow *) g_ptr_array_index (all_rows, 11))->created_at, ==,
                   GK_TEST_EPOCH - 1000);

  three = gk_stats_rotation_logs (db, 3, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (three->len, ==, 3);
  g_assert_cmpint (((GkRotationRow *) g_ptr_array_index (three, 2))->id, ==, ids[8]);

  g_assert_true (gk_stats_rotation_totals (db, &all, &manual, &automatic, &error));
  g_assert_no_error (error);
  g_assert_cmpint (all, ==, 12);
  g_assert_cmpint (manual, ==, 2);
  g_assert_cmpint (automatic, ==, 10);
  /* Every out-parameter is optional. */
  g_assert_true (gk_stats_rotation_totals (db, NULL, NULL, NULL, &error));
}

static void
test_usage_logs (Fixture       *fixture,
                 gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 a = add_key (db, "alpha", "ACTIVE", FALSE);
  gint64 gone = add_key (db, "removed", "ACTIVE", TRUE);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) page = NULL;
  g_autoptr(GPtrArray) rest = NULL;
  g_autoptr(GPtrArray) of_gone = NULL;
  g_autoptr(GPtrArray) everything = NULL;
  const GkUsageRow *row;
  gint64 ids[6];

  ids[0] = add_usage (db, a, "gemini-2.5-flash", 0.1, "SUCCESS", "alice", GK_TEST_EPOCH - 50);
  ids[1] = add_usage (db, gone, "gemini-2.5-pro", 0.2, "ERROR", NULL, GK_TEST_EPOCH - 40);
  ids[2] = add_usage (db, a, "x", 0.0, "RATE_LIMITED", "bob", GK_TEST_EPOCH - 30);
  ids[3] = add_usage (db, gone, "gemini-2.5-pro", 0.4, "INVALID_KEY", NULL, GK_TEST_EPOCH - 20);
  /* Two in one second: the later id first. */
  ids[4] = add_usage (db, a, "gemini-2.5-flash", 0.8, "SUCCESS", NULL, GK_TEST_EPOCH - 10);
  ids[5] = add_usage (db, a, "gemini-2.5-flash", 1.6, "SUCCESS", NULL, GK_TEST_EPOCH - 10);

  page = gk_stats_usage_logs (db, 0, 2, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (page->len, ==, 2);
  g_assert_cmpint (((GkUsageRow *) g_ptr_array_index (page, 0))->id, ==, ids[5]);
  g_assert_cmpint (((GkUsageRow *) g_ptr_array_index (page, 1))->id, ==, ids[4]);

  rest = gk_stats_usage_logs (db, 0, 10, 2, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rest->len, ==, 4);
  for (guint i = 0; i < 4; i++)
    g_assert_cmpint (((GkUsageRow *) g_ptr_array_index (rest, i))->id, ==, ids[3 - i]);

  /* A deleted key's rows keep its name. */
  row = g_ptr_array_index (rest, 0);
  g_assert_cmpint (row->key_id, ==, gone);
  g_assert_cmpstr (row->key_name, ==, "removed");
  g_assert_cmpstr (row->model, ==, "gemini-2.5-pro");
  g_assert_cmpint (row->status, ==, GK_USAGE_INVALID_KEY);
  g_assert_null (row->user_id);
  g_assert_cmpint (row->tokens_used, ==, 100);
  g_assert_cmpint (row->prompt_tokens, ==, 50);
  g_assert_cmpint (row->output_tokens, ==, 50);
  g_assert_cmpint (row->latency_ms, ==, 3700);
  g_assert_cmpint (row->created_at, ==, GK_TEST_EPOCH - 20);
  g_assert_true (row->priced);

  row = g_ptr_array_index (rest, 1);
  g_assert_cmpint (row->status, ==, GK_USAGE_RATE_LIMITED);
  g_assert_cmpint (row->http_status, ==, 429);
  g_assert_cmpstr (row->user_id, ==, "bob");
  g_assert_cmpstr (row->key_name, ==, "alpha");
  g_assert_false (row->priced);

  row = g_ptr_array_index (rest, 2);
  g_assert_cmpint (row->status, ==, GK_USAGE_ERROR);
  g_assert_cmpstr (row->error_message, ==, "boom");

  of_gone = gk_stats_usage_logs (db, gone, 0, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (of_gone->len, ==, 2);
  g_assert_cmpint (((GkUsageRow *) g_ptr_array_index (of_gone, 0))->id, ==, ids[3]);
  g_assert_cmpint (((GkUsageRow *) g_ptr_array_index (of_gone, 1))->id, ==, ids[1]);

  everything = gk_stats_usage_logs (db, 0, 0, 0, &error);
  g_assert_cmpuint (everything->len, ==, 6);

  g_assert_cmpint (gk_stats_usage_count (db, 0, &error), ==, 6);
  g_assert_cmpint (gk_stats_usage_count (db, a, &error), ==, 4);
  g_assert_cmpint (gk_stats_usage_count (db, gone, &error), ==, 2);
  g_assert_cmpint (gk_stats_usage_count (db, 9999, &error), ==, 0);
  g_assert_no_error (error);
}

static void
assert_summary (GkDatabase *db,
                gint64      key_id,
                guint       limit,
                gint64      requests,
                gint64      successes,
                double      cost)
{
  g_autoptr(GError) error = NULL;
  GkUsageSummary summary;

  g_assert_true (gk_stats_usage_summary (db, key_id, limit, &summary, &error));
  g_assert_no_error (error);
  g_assert_cmpint (summary.requests, ==, requests);
  g_assert_cmpint (summary.successes, ==, successes);
  g_assert_cmpint (summary.failures, ==, requests - successes);
  g_assert_cmpfloat_with_epsilon (summary.cost_usd, cost, 1e-9);
}

static void
test_usage_summary (Fixture       *fixture,
                    gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 a = add_key (db, "a", "ACTIVE", FALSE);
  gint64 b = add_key (db, "b", "ACTIVE", FALSE);

  /* Oldest to newest; costs are powers of two so every sum is distinct. */
  add_usage (db, a, "m", 1, "SUCCESS", NULL, GK_TEST_EPOCH - 60);
  add_usage (db, b, "m", 2, "ERROR", NULL, GK_TEST_EPOCH - 50);
  add_usage (db, a, "m", 4, "RATE_LIMITED", NULL, GK_TEST_EPOCH - 40);
  add_usage (db, b, "m", 8, "SUCCESS", NULL, GK_TEST_EPOCH - 30);
  add_usage (db, a, "m", 16, "SUCCESS", NULL, GK_TEST_EPOCH - 20);
  add_usage (db, a, "m", 32, "INVALID_KEY", NULL, GK_TEST_EPOCH - 10);

  assert_summary (db, 0, 0, 6, 3, 63);
  assert_summary (db, 0, 3, 3, 2, 56);
  assert_summary (db, 0, 1, 1, 0, 32);
  assert_summary (db, 0, 100, 6, 3, 63);
  assert_summary (db, a, 0, 4, 2, 53);
  assert_summary (db, a, 2, 2, 1, 48);
  assert_summary (db, b, 1, 1, 1, 8);
  assert_summary (db, 9999, 0, 0, 0, 0);
}

/* The dashboard keeps sums between calls (the rollup tables); rows written
 * since, by this connection or another, must show at once, and rows
 * deleted by hand must drop out. */
static void
test_dashboard_sees_new_rows (Fixture       *fixture,
                              gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", "ACTIVE", FALSE);
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) other = NULL;
  g_autoptr(GkDashboard) d = NULL;

  add_usage (db, key, "m", 1, "SUCCESS", "u", day_start (-3));
  add_usage (db, key, "m", 2, "SUCCESS", "u", TODAY);
  d = dashboard (db, 30);
  assert_point (d, 26, 1, 1, 1);
  assert_point (d, 29, 1, 1, 2);
  g_clear_pointer (&d, gk_dashboard_free);

  /* Unchanged: the same answer again. */
  d = dashboard (db, 7);
  assert_point (d, 3, 1, 1, 1);
  assert_point (d, 6, 1, 1, 2);
  g_clear_pointer (&d, gk_dashboard_free);

  /* A late row for a past day. */
  add_usage (db, key, "late", 4, "ERROR", "v", day_start (-5));
  d = dashboard (db, 7);
  assert_point (d, 1, 1, 0, 4);
  assert_point (d, 3, 1, 1, 1);
  assert_rank (d->top_models, 1, "late", 1, 4);
  g_clear_pointer (&d, gk_dashboard_free);

  /* Another connection (another process) writes. */
  other = gk_database_open (gk_database_get_path (db), gk_database_get_clock (db), &error);
  g_assert_no_error (error);
  add_usage (other, key, "m", 8, "SUCCESS", "u", TODAY + HOUR);
  d = dashboard (db, 30);
  assert_point (d, 29, 2, 2, 10);
  assert_point (d, 24, 1, 0, 4);
  assert_cards_match_series (d);
  g_clear_pointer (&d, gk_dashboard_free);

  /* Rows removed from the middle. */
  g_assert_true (gk_database_exec (other, "DELETE FROM gemini_key_usage_log WHERE model = 'late'",
                                   NULL));
  d = dashboard (db, 7);
  assert_point (d, 1, 0, 0, 0);
  g_assert_cmpint (d->cards.requests, ==, 3);
  g_assert_cmpuint (d->top_models->len, ==, 1);
  g_clear_pointer (&d, gk_dashboard_free);

  /* The clock moves to the next day: the window moves with it. */
  gk_clock_advance (gk_database_get_clock (db), DAY);
  d = dashboard (db, 7);
  g_assert_cmpint (point (d, 6)->day_start, ==, day_start (1));
  assert_point (d, 6, 0, 0, 0);
  assert_point (d, 5, 2, 2, 10);
  g_clear_pointer (&d, gk_dashboard_free);
  gk_clock_advance (gk_database_get_clock (db), -DAY);

  g_assert_finalize_object (g_steal_pointer (&other));
}

/* Inside a caller's transaction the figures include its uncommitted rows,
 * and a rollback does not leave them behind. */
static void
test_dashboard_in_transaction (Fixture       *fixture,
                               gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", "ACTIVE", FALSE);
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDashboard) d = NULL;

  add_usage (db, key, "m", 1, "SUCCESS", NULL, TODAY);
  g_assert_true (gk_database_begin (db, &error));
  add_usage (db, key, "m", 2, "SUCCESS", NULL, TODAY);
  d = dashboard (db, 7);
  assert_point (d, 6, 2, 2, 3);
  g_clear_pointer (&d, gk_dashboard_free);
  gk_database_rollback (db);

  d = dashboard (db, 7);
  assert_point (d, 6, 1, 1, 1);
}

/* Local days follow the time zone, including a 23-hour DST day. */
static void
test_local_days_dst (Fixture       *fixture,
                     gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", "ACTIVE", FALSE);
  /* America/Los_Angeles: 2026-03-08 (23 h, PST→PDT), 2026-03-09, 2026-03-10. */
  const gint64 mar8 = 1772956800, mar9 = 1773039600, mar10 = mar9 + DAY;
  g_autoptr(GkDashboard) utc = NULL;
  g_autoptr(GkDashboard) d = NULL;

  add_usage (db, key, "m", 1, "SUCCESS", NULL, mar8);
  /* 00:30 PDT on March 9: a fixed 24 h from March 8 would miss it. */
  add_usage (db, key, "m", 2, "SUCCESS", NULL, mar9 + 30 * 60);
  add_usage (db, key, "m", 4, "SUCCESS", NULL, mar9 - 1);

  gk_clock_set (gk_database_get_clock (db), mar10 + 12 * HOUR);
  use_zone ("UTC");
  utc = dashboard (db, 3);   /* folds the rows, read as UTC days */

  use_zone ("America/Los_Angeles");
  d = dashboard (db, 3);
  use_zone ("UTC");

  g_assert_cmpint (point (d, 0)->day_start, ==, mar8);
  g_assert_cmpint (point (d, 1)->day_start, ==, mar9);
  g_assert_cmpint (point (d, 2)->day_start, ==, mar10);
  assert_point (d, 0, 2, 2, 5);
  assert_point (d, 1, 1, 1, 2);
  assert_point (d, 2, 0, 0, 0);

  /* Back in UTC the days are UTC days again, not the local ones of before. */
  g_clear_pointer (&d, gk_dashboard_free);
  d = dashboard (db, 3);
  g_assert_cmpint (point (d, 0)->day_start, ==, point (utc, 0)->day_start);
  g_assert_cmpint (point (d, 0)->day_start % DAY, ==, 0);
  for (guint i = 0; i < 3; i++)
    g_assert_cmpint (point (d, i)->requests, ==, point (utc, i)->requests);

  restore_zone ();
  gk_clock_set (gk_database_get_clock (db), GK_TEST_EPOCH);
}

/* --- The rollup ---------------------------------------------------------- */

static gint64
query_int (GkDatabase *db,
           const char *sql)
{
  g_autoptr(GError) error = NULL;
  GkSqlStmt *stmt;
  gint64 value;

  gk_database_lock (db);
  stmt = gk_database_prepare (db, sql, &error);
  g_assert_no_error (error);
  g_assert_cmpint (gk_sql_step (stmt), ==, GK_SQL_ROW);
  value = gk_sql_column_int64 (stmt, 0);
  gk_sql_reset (stmt);
  gk_database_unlock (db);
  return value;
}

static gint64 G_GNUC_PRINTF (2, 3)
query_intf (GkDatabase *db,
            const char *format,
            ...)
{
  g_autofree char *sql = NULL;
  va_list args;

  va_start (args, format);
  sql = g_strdup_vprintf (format, args);
  va_end (args);
  return query_int (db, sql);
}

static gint64
folded_id (GkDatabase *db)
{
  return query_int (db, "SELECT CAST (value AS INTEGER) FROM meta WHERE key = 'rollup_max_id'");
}

/* The two queries give the same rows. */
static void
assert_same_rows (GkDatabase *db,
                  const char *log_side,
                  const char *rollup_side)
{
  g_autofree char *missing = g_strdup_printf ("SELECT count(*) FROM (%s EXCEPT %s) AS difference",
                                              log_side, rollup_side);
  g_autofree char *extra = g_strdup_printf ("SELECT count(*) FROM (%s EXCEPT %s) AS difference",
                                            rollup_side, log_side);

  g_assert_cmpint (query_int (db, missing), ==, 0);
  g_assert_cmpint (query_int (db, extra), ==, 0);
}

/* Every sum the rollup tables hold equals the same sum over the log, and
 * the mark is the log's highest id: nothing missed, nothing counted twice. */
static void
assert_rollup_exact (GkDatabase *db)
{
  const int spans[] = { 900, 86400 };

  g_assert_cmpint (folded_id (db), ==,
                   query_int (db, "SELECT coalesce (max (id), 0) FROM gemini_key_usage_log"));
  assert_same_rows (db,
                    "SELECT created_at - created_at % 900, count(*), sum(CASE WHEN status = 'SUCCESS' THEN 1 ELSE 0 END),"
                    " coalesce (sum(cost_usd), 0.0) FROM gemini_key_usage_log GROUP BY 1",
                    "SELECT start, requests, successes, cost_usd FROM usage_rollup_total"
                    " WHERE requests > 0");
  for (guint j = 0; j < G_N_ELEMENTS (spans); j++)
    {
      g_autofree char *key_log = NULL;
      g_autofree char *key_rollup = NULL;
      g_autofree char *latency_log = NULL;
      g_autofree char *latency_rollup = NULL;

      for (guint i = 0; i < 2; i++)
        {
          const char *const tables[] = { "usage_rollup_model", "usage_rollup_user" };
          const char *const columns[] = { "model", "user_id" };
          g_autofree char *log_side =
            g_strdup_printf ("SELECT created_at - created_at %% %d, %s, count(*),"
                             " sum(tokens_used), coalesce (sum(cost_usd), 0.0) FROM gemini_key_usage_log"
                             " WHERE %s <> '' GROUP BY 1, 2",
                             spans[j], columns[i], columns[i]);
          g_autofree char *rollup_side =
            g_strdup_printf ("SELECT start, %s, requests, tokens, cost_usd FROM %s"
                             " WHERE span = %d AND requests > 0",
                             columns[i], tables[i], spans[j]);

          assert_same_rows (db, log_side, rollup_side);
        }

      /* The sums per key and status, and the latency histograms of
       * successful requests. */
      key_log = g_strdup_printf ("SELECT created_at - created_at %% %d, coalesce (key_id, 0),"
                                 " status, count(*), sum(tokens_used), coalesce (sum(cost_usd), 0.0)"
                                 " FROM gemini_key_usage_log GROUP BY 1, 2, 3", spans[j]);
      key_rollup = g_strdup_printf ("SELECT start, key_id, status, requests, tokens, cost_usd"
                                    " FROM usage_rollup_key WHERE span = %d AND requests > 0",
                                    spans[j]);
      assert_same_rows (db, key_log, key_rollup);
      latency_log = g_strdup_printf ("SELECT created_at - created_at %% %d, coalesce (key_id, 0), "
                                     GK_ROLLUP_LATENCY_BUCKET_SQL ("latency_ms") ", count(*)"
                                     " FROM gemini_key_usage_log WHERE status = 'SUCCESS'"
                                     " AND latency_ms > 0 GROUP BY 1, 2, 3", spans[j]);
      latency_rollup = g_strdup_printf ("SELECT start, key_id, bucket, requests"
                                        " FROM usage_rollup_latency"
                                        " WHERE span = %d AND requests > 0", spans[j]);
      assert_same_rows (db, latency_log, latency_rollup);
    }
}

/* The local midnight after @day_start, computed apart from the stats code. */
static gint64
next_local_midnight (gint64 day_start)
{
  g_autoptr(GDateTime) start = g_date_time_new_from_unix_local (day_start);
  g_autoptr(GDateTime) later = g_date_time_add_hours (start, 36);
  g_autoptr(GDateTime) midnight = g_date_time_new_local (g_date_time_get_year (later),
                                                         g_date_time_get_month (later),
                                                         g_date_time_get_day_of_month (later),
                                                         0, 0, 0);

  return g_date_time_to_unix (midnight);
}

static void
assert_ranks_match_log (GkDatabase *db,
                        GPtrArray  *rows,
                        const char *column,
                        guint       limit,
                        gint64      start,
                        gint64      end)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *sql = g_strdup_printf ("SELECT %s, count(*), sum(tokens_used), coalesce (sum(cost_usd), 0.0)"
                                          " FROM gemini_key_usage_log WHERE %s <> ''"
                                          " AND created_at >= ?1 AND created_at < ?2"
                                          " GROUP BY 1 ORDER BY 2 DESC, 4 DESC, 1 LIMIT ?3",
                                          column, column);
  GkSqlStmt *stmt;
  guint n = 0;

  gk_database_lock (db);
  stmt = gk_database_prepare (db, sql, &error);
  g_assert_no_error (error);
  gk_sql_bind_int64 (stmt, 1, start);
  gk_sql_bind_int64 (stmt, 2, end);
  gk_sql_bind_int64 (stmt, 3, limit);
  while (gk_sql_step (stmt) == GK_SQL_ROW)
    {
      const GkRankRow *row;

      g_assert_cmpuint (n, <, rows->len);
      row = g_ptr_array_index (rows, n++);
      g_assert_cmpstr (row->name, ==, gk_sql_column_text (stmt, 0));
      g_assert_cmpint (row->requests, ==, gk_sql_column_int64 (stmt, 1));
      g_assert_cmpint (row->tokens, ==, gk_sql_column_int64 (stmt, 2));
      g_assert_cmpfloat_with_epsilon (row->cost_usd, gk_sql_column_double (stmt, 3), 1e-9);
    }
  gk_sql_reset (stmt);
  gk_database_unlock (db);
  g_assert_cmpuint (n, ==, rows->len);
}

/* The dashboard in the current local zone, against sums over the log. */
static void
assert_dashboard_matches_log (GkDatabase *db,
                              guint       days)
{
  g_autoptr(GkDashboard) d = dashboard (db, days);
  gint64 start = point (d, 0)->day_start;
  gint64 end = next_local_midnight (point (d, days - 1)->day_start);

  for (guint i = 0; i < days; i++)
    {
      gint64 day_end = i + 1 < days ? point (d, i + 1)->day_start
                                    : end;
      g_autoptr(GError) error = NULL;
      GkSqlStmt *stmt;

      /* Consecutive local midnights. */
      g_assert_cmpint (next_local_midnight (point (d, i)->day_start), ==, day_end);

      gk_database_lock (db);
      stmt = gk_database_prepare (db,
                                  "SELECT count(*), coalesce (sum(CASE WHEN status = 'SUCCESS' THEN 1 ELSE 0 END), 0), coalesce (sum(cost_usd), 0.0)"
                                  " FROM gemini_key_usage_log"
                                  " WHERE created_at >= ?1 AND created_at < ?2",
                                  &error);
      g_assert_no_error (error);
      gk_sql_bind_int64 (stmt, 1, point (d, i)->day_start);
      gk_sql_bind_int64 (stmt, 2, day_end);
      g_assert_cmpint (gk_sql_step (stmt), ==, GK_SQL_ROW);
      assert_point (d, i, gk_sql_column_int64 (stmt, 0),
                    (gint64) gk_sql_column_double (stmt, 1), gk_sql_column_double (stmt, 2));
      gk_sql_reset (stmt);
      gk_database_unlock (db);
    }
  assert_cards_match_series (d);
  assert_ranks_match_log (db, d->top_models, "model", 5, start, end);
  assert_ranks_match_log (db, d->top_users, "user_id", 10, start, end);
}

/* Random rows around @now: past days, the day's edges, a skewed future. */
static void
add_random_usage (GkDatabase *db,
                  gint64      key,
                  gint64      now,
                  guint       n)
{
  static const char *const models[] = { "gemini-2.5-flash", "gemini-2.5-pro", "a", "b", "c",
                                        "d", "" };
  static const char *const users[] = { "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9",
                                       "u10", "u11", "u12", "u13", NULL };
  static const char *const statuses[] = { "SUCCESS", "SUCCESS", "SUCCESS", "ERROR",
                                          "RATE_LIMITED", "INVALID_KEY" };

  g_assert_true (gk_database_begin (db, NULL));
  for (guint i = 0; i < n; i++)
    {
      /* Costs in eighths add up exactly, so ties rank the same both ways. */
      UsageSpec u = {
        key,
        models[g_test_rand_int_range (0, G_N_ELEMENTS (models))],
        g_test_rand_int_range (0, 5000),
        g_test_rand_int_range (0, 9) / 8.0,
        statuses[g_test_rand_int_range (0, G_N_ELEMENTS (statuses))],
        users[g_test_rand_int_range (0, G_N_ELEMENTS (users))],
        now + g_test_rand_int_range (-33 * 86400, 86400),
      };

      add_usage_on (db, &u);
    }
  g_assert_true (gk_database_commit (db, NULL));
}

/* Quarter-hour, half-hour and DST zones, with "now" near DST changes. */
static const char *const zones[] = {
  "UTC", "America/Los_Angeles", "Asia/Kolkata", "Asia/Kathmandu", "Pacific/Chatham",
  "Australia/Lord_Howe", "Europe/Berlin",
};
static const gint64 nows[] = {
  GK_TEST_EPOCH,          /* a week after the US and two before the EU spring forward */
  1793620800,             /* 2026-11-02 10:40 UTC: the day after the US fall back */
  1775390400,             /* 2026-04-05 12:00 UTC: Chatham and Lord Howe end DST */
};

static void
assert_every_zone_matches_log (GkDatabase *db)
{
  for (guint z = 0; z < G_N_ELEMENTS (zones); z++)
    {
      g_autoptr(GTimeZone) tz = g_time_zone_new_identifier (zones[z]);

      g_assert_nonnull (tz);
      use_zone (zones[z]);
      for (guint n = 0; n < G_N_ELEMENTS (nows); n++)
        {
          gk_clock_set (gk_database_get_clock (db), nows[n]);
          assert_dashboard_matches_log (db, 1);
          assert_dashboard_matches_log (db, 7);
          assert_dashboard_matches_log (db, 30);
        }
    }
  restore_zone ();
  gk_clock_set (gk_database_get_clock (db), GK_TEST_EPOCH);
}

/* The dashboard agrees with the log in every zone, whether its rows were
 * folded before, are still past the mark, or were deleted by hand. */
static void
test_rollup_matches_log (Fixture       *fixture,
                         gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", "ACTIVE", FALSE);
  g_autoptr(GError) error = NULL;

  for (guint n = 0; n < G_N_ELEMENTS (nows); n++)
    add_random_usage (db, key, nows[n], 600);
  assert_every_zone_matches_log (db);
  assert_rollup_exact (db);

  /* Rows of a caller's open transaction are not folded but still count. */
  g_assert_true (gk_database_begin (db, &error));
  for (guint n = 0; n < G_N_ELEMENTS (nows); n++)
    add_random_usage (db, key, nows[n], 100);
  use_zone ("Asia/Kolkata");
  for (guint n = 0; n < G_N_ELEMENTS (nows); n++)
    {
      gk_clock_set (gk_database_get_clock (db), nows[n]);
      assert_dashboard_matches_log (db, 7);
      assert_dashboard_matches_log (db, 30);
    }
  restore_zone ();
  gk_clock_set (gk_database_get_clock (db), GK_TEST_EPOCH);
  g_assert_cmpint (folded_id (db), <,
                   query_int (db, "SELECT max (id) FROM gemini_key_usage_log"));
  gk_database_rollback (db);
  assert_rollup_exact (db);

  /* A hand-made purge of folded rows, and of rows not folded yet. */
  for (guint n = 0; n < G_N_ELEMENTS (nows); n++)
    add_random_usage (db, key, nows[n], 100);
  g_assert_true (gk_database_exec (db, "DELETE FROM gemini_key_usage_log WHERE id % 7 = 3", NULL));
  assert_every_zone_matches_log (db);
  assert_rollup_exact (db);
}

/* A row written after a dashboard load shows in the next one, whether
 * this connection or another wrote it, and is folded by that load. */
static void
test_rollup_new_rows (Fixture       *fixture,
                      gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", "ACTIVE", FALSE);
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) other = NULL;
  g_autoptr(GkDashboard) d = NULL;
  gint64 id;

  add_usage (db, key, "m", 1, "SUCCESS", "u", TODAY + HOUR);
  d = dashboard (db, 7);
  assert_point (d, 6, 1, 1, 1);
  g_clear_pointer (&d, gk_dashboard_free);

  id = add_usage (db, key, "m", 2, "ERROR", "v", TODAY + 2 * HOUR);
  g_assert_cmpint (folded_id (db), ==, id - 1);
  d = dashboard (db, 7);
  assert_point (d, 6, 2, 1, 3);
  assert_rank (d->top_users, 0, "v", 1, 2);
  g_assert_cmpint (folded_id (db), ==, id);
  g_clear_pointer (&d, gk_dashboard_free);

  other = gk_database_open (gk_database_get_path (db), gk_database_get_clock (db), &error);
  g_assert_no_error (error);
  id = add_usage (other, key, "n", 4, "SUCCESS", "v", day_start (-2));
  d = dashboard (db, 7);
  assert_point (d, 4, 1, 1, 4);
  assert_rank (d->top_users, 0, "v", 2, 6);
  assert_rank (d->top_models, 1, "n", 1, 4);
  g_assert_cmpint (folded_id (db), ==, id);
  g_clear_pointer (&d, gk_dashboard_free);

  /* The other connection sees the fold, and has nothing left to do. */
  g_assert_cmpint (folded_id (other), ==, id);
  g_assert_true (gk_rollup_catch_up (other, &error));
  g_assert_no_error (error);
  assert_rollup_exact (other);

  g_assert_finalize_object (g_steal_pointer (&other));
}

/* Inside a caller's transaction the fold is part of it: a rollback takes
 * the fold back with the rows. */
static void
test_rollup_nested (Fixture       *fixture,
                    gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", "ACTIVE", FALSE);
  g_autoptr(GError) error = NULL;
  gint64 kept, id;

  kept = add_usage (db, key, "m", 1, "SUCCESS", "u", TODAY);
  g_assert_true (gk_rollup_catch_up (db, &error));
  g_assert_cmpint (folded_id (db), ==, kept);

  g_assert_true (gk_database_begin (db, &error));
  id = add_usage (db, key, "m", 2, "SUCCESS", "u", TODAY);
  g_assert_true (gk_rollup_catch_up (db, &error));
  g_assert_no_error (error);
  g_assert_cmpint (folded_id (db), ==, id);
  assert_rollup_exact (db);
  gk_database_rollback (db);

  g_assert_cmpint (folded_id (db), ==, kept);
  g_assert_cmpint (query_int (db, "SELECT sum (requests) FROM usage_rollup_total"), ==, 1);
  assert_rollup_exact (db);
}

/* With nothing new to fold the dashboard takes no write lock, so another
 * process's long write does not hold it up. */
static void
test_rollup_current_reads_only (Fixture       *fixture,
                                gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", "ACTIVE", FALSE);
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) other = NULL;
  g_autoptr(GkDashboard) d = NULL;
  gint64 start;

  add_usage (db, key, "m", 1, "SUCCESS", "u", TODAY);
  g_assert_true (gk_rollup_catch_up (db, &error));

  other = gk_database_open (gk_database_get_path (db), gk_database_get_clock (db), &error);
  g_assert_no_error (error);
  g_assert_true (gk_database_begin (other, &error));
  g_assert_no_error (error);

  /* The busy timeout is 10 s: a write lock would have waited for it. */
  start = g_get_monotonic_time ();
  d = dashboard (db, 7);
  g_assert_cmpint (g_get_monotonic_time () - start, <, G_USEC_PER_SEC);
  assert_point (d, 6, 1, 1, 1);
  g_assert_true (gk_rollup_catch_up (db, &error));
  g_assert_no_error (error);

  gk_database_rollback (other);
  g_assert_finalize_object (g_steal_pointer (&other));
}

typedef struct
{
  const char *path;
  GkClock    *clock;
  gint64      key;
  guint       seed;
} Writer;

#define WRITER_ROWS   4

/* Under valgrind (GK_TEST_SLOW) each round costs a hundred times more and
 * the other writer can wait past the busy timeout on a loaded machine;
 * fewer rounds still race the two folds against each other. */
static guint
writer_rounds (void)
{
  return g_getenv ("GK_TEST_SLOW") != NULL ? 40 : 400;
}

/* Another process in all but name: its own connection, its own locks. */
static gpointer
writer_thread (gpointer data)
{
  const Writer *w = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = gk_database_open (w->path, w->clock, &error);
  g_autoptr(GRand) rand = g_rand_new_with_seed (w->seed);

  g_assert_no_error (error);
  for (guint round = 0; round < writer_rounds (); round++)
    {
      g_assert_true (gk_database_begin (db, &error));
      g_assert_no_error (error);
      for (guint i = 0; i < WRITER_ROWS; i++)
        {
          g_autofree char *user = g_strdup_printf ("user-%d", g_rand_int_range (rand, 0, 5));
          UsageSpec u = { w->key, i % 2 ? "a" : "b", 100, 0.125, "SUCCESS", user,
                          GK_TEST_EPOCH - g_rand_int_range (rand, 0, 3 * 86400) };

          add_usage_on (db, &u);
        }
      g_assert_true (gk_database_commit (db, &error));
      g_assert_no_error (error);

      /* Both writers fold after every round, racing each other. */
      g_assert_true (gk_rollup_catch_up (db, &error));
      g_assert_no_error (error);
    }
  return NULL;
}

/* Two connections writing and folding at the same time count every row
 * exactly once. */
static void
test_rollup_concurrent (Fixture       *fixture,
                        gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", "ACTIVE", FALSE);
  Writer writers[2];
  GThread *threads[G_N_ELEMENTS (writers)];
  g_autoptr(GkDashboard) d = NULL;
  const gint64 rows = writer_rounds () * WRITER_ROWS;

  for (guint i = 0; i < G_N_ELEMENTS (writers); i++)
    {
      writers[i] = (Writer) { gk_database_get_path (db), gk_database_get_clock (db), key,
                              g_test_rand_int () + i };
      threads[i] = g_thread_new ("writer", writer_thread, &writers[i]);
    }
  for (guint i = 0; i < G_N_ELEMENTS (writers); i++)
    g_thread_join (threads[i]);

  assert_rollup_exact (db);
  d = dashboard (db, 7);
  g_assert_cmpint (d->cards.requests, ==, 2 * rows);
  g_assert_cmpfloat_with_epsilon (d->cards.cost_usd, 2 * rows * 0.125, 1e-9);
  /* Half the rows each; the tie goes by name. */
  assert_rank (d->top_models, 0, "a", rows, rows * 0.125);
}

/* A :30 zone: its days start at :30 past a UTC hour, and a row a second
 * before the period is not ranked while one at its first second is. */
static void
test_rollup_half_hour_zone (Fixture       *fixture,
                            gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", "ACTIVE", FALSE);
  /* Asia/Kolkata (UTC+5:30): 2026-03-09 00:00 IST is 03-08 18:30 UTC. */
  const gint64 week_start = UTC_TODAY - 6 * DAY - 5 * HOUR - 30 * 60;
  const gint64 tomorrow = UTC_TODAY + DAY - 5 * HOUR - 30 * 60;
  g_autoptr(GkDashboard) d = NULL;

  add_usage (db, key, "before", 1, "SUCCESS", "early", week_start - 1);
  add_usage (db, key, "first", 2, "SUCCESS", "first", week_start);
  add_usage (db, key, "first", 2, "SUCCESS", "first", week_start + 29 * 60);
  add_usage (db, key, "middle", 4, "SUCCESS", "middle", week_start + 3 * DAY);
  add_usage (db, key, "last", 8, "ERROR", "last", tomorrow - 1);
  add_usage (db, key, "after", 16, "SUCCESS", "late", tomorrow);

  use_zone ("Asia/Kolkata");
  d = dashboard (db, 7);
  restore_zone ();

  g_assert_cmpint (point (d, 0)->day_start, ==, week_start);
  g_assert_cmpint (point (d, 6)->day_start, ==, tomorrow - DAY);
  assert_point (d, 0, 2, 2, 4);
  assert_point (d, 3, 1, 1, 4);
  assert_point (d, 6, 1, 0, 8);
  g_assert_cmpint (d->cards.requests, ==, 4);
  g_assert_cmpuint (d->top_models->len, ==, 3);
  assert_rank (d->top_models, 0, "first", 2, 4);
  assert_rank (d->top_models, 1, "last", 1, 8);
  assert_rank (d->top_models, 2, "middle", 1, 4);
  g_assert_cmpuint (d->top_users->len, ==, 3);
  assert_rank (d->top_users, 0, "first", 2, 4);
}

/* The 25-hour day when DST ends: both of its 1 a.m. hours are one day. */
static void
test_rollup_dst_fall_back (Fixture       *fixture,
                           gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", "ACTIVE", FALSE);
  /* America/Los_Angeles: 2026-11-01 00:00 PDT and 2026-11-02 00:00 PST. */
  const gint64 nov1 = 1761980400 + 365 * DAY, nov2 = nov1 + 25 * HOUR;
  g_autoptr(GkDashboard) d = NULL;

  add_usage (db, key, "m", 1, "SUCCESS", "u", nov1);
  add_usage (db, key, "m", 2, "SUCCESS", "u", nov1 + HOUR + 30 * 60);       /* 1:30 PDT */
  add_usage (db, key, "m", 4, "SUCCESS", "u", nov1 + 2 * HOUR + 30 * 60);   /* 1:30 PST */
  add_usage (db, key, "m", 8, "SUCCESS", "u", nov2 - 1);
  add_usage (db, key, "m", 16, "SUCCESS", "u", nov2);

  gk_clock_set (gk_database_get_clock (db), nov2 + 12 * HOUR);
  use_zone ("America/Los_Angeles");
  d = dashboard (db, 2);
  restore_zone ();
  gk_clock_set (gk_database_get_clock (db), GK_TEST_EPOCH);

  g_assert_cmpint (point (d, 0)->day_start, ==, nov1);
  g_assert_cmpint (point (d, 1)->day_start, ==, nov2);
  assert_point (d, 0, 4, 4, 15);
  assert_point (d, 1, 1, 1, 16);
  assert_rank (d->top_models, 0, "m", 5, 31);
}

/* A database from before the rollup gets its history folded when it is
 * upgraded, so the first dashboard has nothing to fold. */
static void assert_filters_match_rows (GkDatabase *db,
                                       gint64      key_a,
                                       gint64      now);

static void
test_rollup_upgrade (Fixture       *fixture,
                     gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", "ACTIVE", FALSE);
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) upgraded = NULL;
  g_auto(GStrv) created = NULL;
  const char *const rollup_tables[] = { "usage_rollup_total", "usage_rollup_model",
                                        "usage_rollup_user", "usage_rollup_facet", "audit_log",
                                        "usage_rollup_latency", "usage_rollup_key", NULL };

  if (gk_test_skip_on_postgresql ("an upgrade from an older SQLite schema"))
    return;
  /* Back to schema version 1, history and all. */
  g_assert_true (gk_database_exec (db,
                                   "DROP TRIGGER usage_rollup_forget;"
                                   " DROP TABLE usage_rollup_total;"
                                   " DROP TABLE usage_rollup_model;"
                                   " DROP TABLE usage_rollup_user;"
                                   " DROP TABLE usage_rollup_facet;"
                                   " DROP TABLE audit_log;"
                                   " DROP TABLE usage_rollup_latency;"
                                   " DROP TABLE usage_rollup_key;"
                                   " DELETE FROM meta WHERE key = 'rollup_max_id';"
                                   " DROP INDEX gemini_key_usage_log_key;"
                                   " CREATE INDEX gemini_key_usage_log_created"
                                   "  ON gemini_key_usage_log (created_at);"
                                   " CREATE INDEX gemini_key_usage_log_key"
                                   "  ON gemini_key_usage_log (key_id, created_at);"
                                   " PRAGMA user_version = 1",
                                   &error));
  g_assert_no_error (error);
  add_random_usage (db, key, GK_TEST_EPOCH, 500);

  upgraded = gk_database_new (gk_database_get_path (db), gk_database_get_clock (db), &error);
  g_assert_no_error (error);
  g_assert_true (gk_database_migrate (upgraded, &created, &error));
  g_assert_no_error (error);
  g_assert_cmpstrv (created, rollup_tables);
  g_assert_cmpint (gk_database_get_schema_version (upgraded), ==, 12);
  assert_rollup_exact (upgraded);
  assert_filters_match_rows (upgraded, key, GK_TEST_EPOCH);
  assert_dashboard_matches_log (upgraded, 30);

  g_assert_finalize_object (g_steal_pointer (&upgraded));
}

typedef struct
{
  GArray *ids;
  gint64  last;
} PageCollector;

static void
collect_id (const GkUsageRow *row,
            gpointer          user_data)
{
  PageCollector *c = user_data;

  g_assert_cmpint (row->id, <, c->last);
  g_assert_cmpstr (row->key_name, ==, "Paged");
  c->last = row->id;
  g_array_append_val (c->ids, row->id);
}

/* Keyset pages cover every row once, newest first, and rows written
 * between two pages do not show up in later ones. */
static void
test_usage_pages (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "Paged", "ACTIVE", FALSE);
  PageCollector c = { g_array_new (FALSE, FALSE, sizeof (gint64)), G_MAXINT64 };
  gint64 before = G_MAXINT64, newest = 0, n;
  guint pages = 0;

  for (int i = 0; i < 2500; i++)
    newest = add_usage (db, key, "gemini-2.5-flash", 0.001, "SUCCESS", "u", TODAY + i);

  do
    {
      n = gk_stats_usage_page (db, before, 1000, collect_id, &c, &before, &error);
      g_assert_no_error (error);
      pages++;
      /* A row recorded while the export runs is newer than its first page. */
      add_usage (db, key, "gemini-2.5-flash", 0.001, "SUCCESS", "u", TODAY);
    }
  while (n == 1000);

  g_assert_cmpuint (pages, ==, 3);
  g_assert_cmpuint (c.ids->len, ==, 2500);
  for (guint i = 0; i < c.ids->len; i++)
    g_assert_cmpint (g_array_index (c.ids, gint64, i), ==, newest - (gint64) i);
  g_array_unref (c.ids);
}

/* The usage tab's summary: over the period and filters, from the rollup,
 * equal to the sums over every row of the period whatever a list shows. */
static void
assert_filter_summary_matches_rows (GkDatabase          *db,
                                    const GkUsageFilter *filter)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GPtrArray) shown = NULL;
  GkUsageSummary summary;
  gint64 successes = 0;
  double cost = 0;

  rows = gk_stats_usage_query (db, filter, 0, 0, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < rows->len; i++)
    {
      const GkUsageRow *row = rows->pdata[i];

      g_assert_cmpint (row->created_at, >=, filter->since);
      if (filter->until > 0)
        g_assert_cmpint (row->created_at, <, filter->until);
      if (filter->key_id != 0)
        g_assert_cmpint (row->key_id, ==, filter->key_id);
      if (filter->status >= 0)
        g_assert_cmpint (row->status, ==, filter->status);
      if (filter->model != NULL)
        g_assert_cmpstr (row->model, ==, filter->model);
      if (filter->user_id != NULL)
        g_assert_cmpstr (row->user_id != NULL ? row->user_id : "", ==, filter->user_id);
      successes += row->status == GK_USAGE_SUCCESS;
      cost += row->cost_usd;
    }
  g_assert_cmpint (gk_stats_usage_query_count (db, filter, &error), ==, rows->len);
  g_assert_no_error (error);

  /* "Show 10" lists ten rows; the summary does not change. */
  shown = gk_stats_usage_query (db, filter, 10, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (shown->len, ==, MIN (10, rows->len));

  g_assert_true (gk_stats_usage_filter_summary (db, filter, &summary, &error));
  g_assert_no_error (error);
  g_assert_cmpint (summary.requests, ==, rows->len);
  g_assert_cmpint (summary.successes, ==, successes);
  g_assert_cmpint (summary.failures, ==, (gint64) rows->len - successes);
  g_assert_cmpfloat_with_epsilon (summary.cost_usd, cost, 1e-6);
}

static void
assert_filters_match_rows (GkDatabase *db,
                           gint64      key_a,
                           gint64      now)
{
  static const int periods[] = { 0, 6, 29, 40, 60 };
  gint64 midnight = gk_stats_local_midnight (NULL, now, 0);
  gint64 tomorrow = gk_stats_local_midnight (NULL, now + 86400, 0);

  for (guint p = 0; p < G_N_ELEMENTS (periods); p++)
    {
      GkUsageFilter filter = GK_USAGE_FILTER_INIT;

      filter.since = gk_stats_local_midnight (NULL, now, periods[p]);
      filter.until = tomorrow;
      g_assert_cmpint (filter.since % 900, ==, 0);
      g_assert_cmpint (filter.since, <=, midnight);
      assert_filter_summary_matches_rows (db, &filter);
      filter.key_id = key_a;
      assert_filter_summary_matches_rows (db, &filter);
      filter.status = GK_USAGE_RATE_LIMITED;
      assert_filter_summary_matches_rows (db, &filter);
      filter.key_id = 0;
      filter.status = GK_USAGE_SUCCESS;
      filter.model = "gemini-2.5-pro";
      assert_filter_summary_matches_rows (db, &filter);
      filter.status = -1;
      filter.user_id = "u3";
      assert_filter_summary_matches_rows (db, &filter);
      filter.model = NULL;
      assert_filter_summary_matches_rows (db, &filter);
    }

  /* Custom ranges: two days ending yesterday; 15 days ending 45 days ago;
   * one day 41 days ago. */
  {
    static const int ranges[][2] = { { 3, 0 }, { 60, 45 }, { 41, 40 } };

    for (guint r = 0; r < G_N_ELEMENTS (ranges); r++)
      {
        GkUsageFilter filter = GK_USAGE_FILTER_INIT;

        filter.since = gk_stats_local_midnight (NULL, now, ranges[r][0]);
        filter.until = gk_stats_local_midnight (NULL, now, ranges[r][1]);
        assert_filter_summary_matches_rows (db, &filter);
        filter.user_id = "u3";
        assert_filter_summary_matches_rows (db, &filter);
      }
  }
}

/* The key comparison (gk-insights.h), as text: its sums and latency
 * percentiles per key. */
static void
append_comparison_rows (GString   *out,
                        GPtrArray *rows)
{
  for (guint i = 0; i < rows->len; i++)
    {
      const GkKeyComparison *r = rows->pdata[i];

      g_string_append_printf (out, " compare %" G_GINT64_FORMAT ": %" G_GINT64_FORMAT " %"
                              G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %"
                              G_GINT64_FORMAT " %.9f %.3f %.3f\n",
                              r->key_id, r->requests, r->successes, r->rate_limited,
                              r->rejected, r->tokens, r->cost_usd, r->p50_ms, r->p95_ms);
    }
}

/* The comparison over the dashboard's last @days days. */
static void
append_comparison (GString    *out,
                   GkDatabase *db,
                   guint       days)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = gk_insights_compare_days (db, days, &error);

  g_assert_no_error (error);
  append_comparison_rows (out, rows);
}

/* Zones whose local midnights are not UTC ones, or not whole hours. */
static const char *const summary_zones[] = {
  "UTC", "Asia/Ho_Chi_Minh", "America/Los_Angeles", "Asia/Kathmandu", "Pacific/Chatham",
};

/* The usage tab's summaries and the key comparison, as text: periods from
 * local midnights (some 40+ days back, where the facet sums are per UTC
 * day, so the period starts or ends inside one) to now or to an earlier
 * midnight, with each kind of filter, in each of summary_zones[]. */
static void
append_filter_summaries (GString      *out,
                         GkDatabase   *db,
                         gint64        key)
{
  static const struct { int since, until; } periods[] = {
    { 0, -1 }, { 6, -1 }, { 29, -1 }, { 40, -1 }, { 60, -1 }, { 60, 45 }, { 41, 40 },
    { 120, -1 }, { 366, -1 },
  };
  gint64 now = gk_database_now (db);

  for (guint z = 0; z < G_N_ELEMENTS (summary_zones); z++)
    {
      g_setenv ("TZ", summary_zones[z], TRUE);
      for (guint p = 0; p < G_N_ELEMENTS (periods); p++)
        for (guint f = 0; f < 6; f++)
          {
            g_autoptr(GError) error = NULL;
            GkUsageFilter filter = GK_USAGE_FILTER_INIT;
            GkUsageSummary summary;

            /* Past the retention period only where days are UTC days:
             * elsewhere a part of a day there has no rows left to read. */
            if (periods[p].since > 89 && z > 0)
              continue;
            filter.since = gk_stats_local_midnight (NULL, now, periods[p].since);
            if (periods[p].until >= 0)
              filter.until = gk_stats_local_midnight (NULL, now, periods[p].until);
            filter.key_id = f == 1 || f == 5 ? key : 0;
            filter.status = f == 2 ? GK_USAGE_SUCCESS : f == 5 ? GK_USAGE_RATE_LIMITED : -1;
            filter.model = f == 3 ? "gemini-2.5-pro" : NULL;
            filter.user_id = f == 4 ? "u3" : NULL;
            g_assert_true (gk_stats_usage_filter_summary (db, &filter, &summary, &error));
            g_assert_no_error (error);
            g_string_append_printf (out, "%s filter %d-%d/%u: %" G_GINT64_FORMAT " %"
                                    G_GINT64_FORMAT " %.9f\n", summary_zones[z],
                                    periods[p].since, periods[p].until, f, summary.requests,
                                    summary.successes, summary.cost_usd);

            /* The key comparison over the same period. */
            if (f == 0)
              {
                g_autoptr(GPtrArray) rows = gk_insights_compare (db, filter.since, filter.until,
                                                                 &error);

                g_assert_no_error (error);
                append_comparison_rows (out, rows);
              }
          }
    }
  g_setenv ("TZ", "UTC", TRUE);
}

/* Every figure the dashboard (7 and 30 days, in every zone of zones[])
 * and the usage summaries (all keys and each key, over the newest rows;
 * the usage tab's, see append_filter_summaries()) show, as text. */
static char *
shown_figures (GkDatabase   *db,
               const gint64 *keys,
               guint         n_keys)
{
  GString *out = g_string_new (NULL);
  static const guint limits[] = { 1, 20, 100 };

  /* The app shows 7 and 30 days; in UTC, where local days are the
   * rollup's days, longer periods too, back past the retention period. */
  for (guint z = 0; z <= G_N_ELEMENTS (zones); z++)
    {
      static const guint periods[] = { 7, 30, 120, 366 };

      g_setenv ("TZ", z < G_N_ELEMENTS (zones) ? zones[z] : "UTC", TRUE);
      for (guint p = 0; p < (z < G_N_ELEMENTS (zones) ? 2 : G_N_ELEMENTS (periods)); p++)
        {
          g_autoptr(GkDashboard) d = dashboard (db, periods[p]);

          g_string_append_printf (out, "%s %u: %" G_GINT64_FORMAT " %" G_GINT64_FORMAT
                                  " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %.9f %.9f\n",
                                  z < G_N_ELEMENTS (zones) ? zones[z] : "UTC", d->days,
                                  d->cards.total_keys,
                                  d->cards.active_keys, d->cards.requests,
                                  d->cards.successes, d->cards.success_rate,
                                  d->cards.cost_usd);
          for (guint i = 0; i < d->daily->len; i++)
            g_string_append_printf (out, " day %" G_GINT64_FORMAT ": %" G_GINT64_FORMAT
                                    " %" G_GINT64_FORMAT " %.9f\n",
                                    point (d, i)->day_start, point (d, i)->requests,
                                    point (d, i)->successes, point (d, i)->cost_usd);
          for (guint r = 0; r < 2; r++)
            {
              GPtrArray *rows = r == 0 ? d->top_models : d->top_users;

              for (guint i = 0; i < rows->len; i++)
                {
                  const GkRankRow *row = rows->pdata[i];

                  g_string_append_printf (out, " %s %s: %" G_GINT64_FORMAT " %"
                                          G_GINT64_FORMAT " %.9f\n",
                                          r == 0 ? "model" : "user", row->name, row->requests,
                                          row->tokens, row->cost_usd);
                }
            }
          for (guint i = 0; i < d->rotations->len; i++)
            g_string_append_printf (out, " rotation %" G_GINT64_FORMAT "\n",
                                    ((GkRotationRow *) d->rotations->pdata[i])->id);
          append_comparison (out, db, periods[p]);
        }
    }
  g_setenv ("TZ", "UTC", TRUE);

  for (guint k = 0; k <= n_keys; k++)
    for (guint l = 0; l < G_N_ELEMENTS (limits); l++)
      {
        g_autoptr(GError) error = NULL;
        GkUsageSummary summary;

        g_assert_true (gk_stats_usage_summary (db, k == 0 ? 0 : keys[k - 1], limits[l],
                                               &summary, &error));
        g_assert_no_error (error);
        g_string_append_printf (out, "summary %u/%u: %" G_GINT64_FORMAT " %" G_GINT64_FORMAT
                                " %" G_GINT64_FORMAT " %.9f\n", k, limits[l],
                                summary.requests, summary.successes, summary.failures,
                                summary.cost_usd);
      }
  append_filter_summaries (out, db, keys[0]);
  return g_string_free (out, FALSE);
}

/* Retention, coarsening and VACUUM change no figure the dashboard or the
 * usage summary shows, now or weeks later, while the old rows and the old
 * quarter-hour sums are gone and the file is smaller. */
static void
test_compact_keeps_figures (Fixture       *fixture,
                            gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  GkDatabase *db = fixture->db;
  GkClock *clock = gk_database_get_clock (db);
  gint64 keys[2];
  GkCompactReport report;
  gint64 later[] = { GK_TEST_EPOCH, GK_TEST_EPOCH + 20 * DAY, GK_TEST_EPOCH + 45 * DAY };

  keys[0] = add_key (db, "k1", "ACTIVE", FALSE);
  keys[1] = add_key (db, "k2", "ACTIVE", FALSE);
  add_rotation (db, keys[0], keys[1], "MANUAL", "manual:test", GK_TEST_EPOCH - DAY);
  /* Older rows first, as they would have been recorded. */
  for (gint64 d = 200; d >= 0; d -= 10)
    {
      add_random_usage (db, keys[0], GK_TEST_EPOCH - d * DAY, 150);
      add_random_usage (db, keys[1], GK_TEST_EPOCH - d * DAY, 150);
    }

  g_assert_cmpuint (gk_rollup_get_retention_days (db), ==, 0);
  g_assert_true (gk_rollup_set_retention_days (db, 90, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (gk_rollup_get_retention_days (db), ==, 90);

  for (guint t = 0; t < G_N_ELEMENTS (later); t++)
    {
      g_autofree char *before = NULL;
      g_autofree char *after = NULL;
      gint64 cutoff;

      gk_clock_set (clock, later[t]);
      /* Rows recorded since the last compaction, not yet folded. */
      add_random_usage (db, keys[t % 2], later[t], 100);
      before = shown_figures (db, keys, G_N_ELEMENTS (keys));

      g_assert_true (gk_rollup_compact (db, &report, &error));
      g_assert_no_error (error);
      g_assert_true (report.space_reclaimed);
      if (t == 0)
        {
          g_assert_cmpint (report.rows_deleted, >, 0);
          g_assert_cmpint (report.buckets_coarsened, >, 0);
          /* A server's VACUUM makes the space reusable, not the files smaller. */
          if (!gk_test_on_postgresql ())
            g_assert_cmpint (report.bytes_after, <, report.bytes_before);
        }

      after = shown_figures (db, keys, G_N_ELEMENTS (keys));
      g_assert_cmpstr (after, ==, before);

      cutoff = later[t] - 90 * DAY;
      g_assert_cmpint (query_intf (db, "SELECT count(*) FROM gemini_key_usage_log"
                                      " WHERE created_at < %" G_GINT64_FORMAT, cutoff), ==, 0);
      g_assert_cmpint (query_intf (db, "SELECT count(*) FROM gemini_key_usage_log"
                                      " WHERE created_at >= %" G_GINT64_FORMAT, cutoff), >, 0);
      cutoff = (later[t] - GK_ROLLUP_FINE_DAYS * DAY) / DAY * DAY;
      g_assert_cmpint (query_intf (db, "SELECT count(*) FROM usage_rollup_user WHERE span = 900"
                                      " AND start < %" G_GINT64_FORMAT, cutoff), ==, 0);
      g_assert_cmpint (query_intf (db, "SELECT count(*) FROM usage_rollup_model WHERE span = 900"
                                      " AND start < %" G_GINT64_FORMAT, cutoff), ==, 0);
      /* Facet sums before the cutoff are one per UTC day, and say so. */
      g_assert_cmpint (query_intf (db, "SELECT count(*) FROM usage_rollup_facet"
                                      " WHERE start < %" G_GINT64_FORMAT " AND start %% 86400 <> 0",
                                   cutoff), ==, 0);
      g_assert_cmpint (query_intf (db, "SELECT count(*) FROM usage_rollup_facet"
                                      " WHERE start < %" G_GINT64_FORMAT, cutoff), >, 0);
      g_assert_cmpint (query_int (db, "SELECT CAST (value AS INTEGER) FROM meta WHERE key = '"
                                      GK_ROLLUP_META_FACET_DAYS "'"), ==, cutoff);
      g_assert_null (gk_database_get_meta (db, GK_ROLLUP_META_PRUNING));

      /* Exact against the rows themselves, from periods that start (or
       * end) inside a coarsened day, in zones whose midnights are not
       * UTC's. */
      for (guint z = 0; z < G_N_ELEMENTS (summary_zones); z++)
        {
          g_setenv ("TZ", summary_zones[z], TRUE);
          assert_filters_match_rows (db, keys[0], later[t]);
        }
      g_setenv ("TZ", "UTC", TRUE);
    }

  /* A row deleted by hand after compaction still leaves the sums. */
  {
    g_autoptr(GkDashboard) d = NULL;
    gint64 requests;

    gint64 id;

    gk_clock_set (clock, GK_TEST_EPOCH + 45 * DAY);
    id = add_usage (db, keys[0], "m", 0.5, "SUCCESS", "u", GK_TEST_EPOCH + 45 * DAY - HOUR);
    d = dashboard (db, 7);
    requests = d->cards.requests;
    g_assert_true (gk_database_exec (db, "DELETE FROM gemini_key_usage_log WHERE id ="
                                         " (SELECT max (id) FROM gemini_key_usage_log)", NULL));
    g_assert_cmpint (query_int (db, "SELECT max (id) FROM gemini_key_usage_log"), <, id);
    g_clear_pointer (&d, gk_dashboard_free);
    d = dashboard (db, 7);
    g_assert_cmpint (d->cards.requests, ==, requests - 1);
  }

  /* In a day whose facet sums are coarsened, a row recorded late goes to
   * the day's sum, and a row deleted by hand leaves it: the usage tab's
   * summaries stay exact. */
  {
    gint64 now = GK_TEST_EPOCH + 45 * DAY;
    gint64 day = GK_TEST_EPOCH - 10 * DAY - (GK_TEST_EPOCH - 10 * DAY) % DAY;
    GkUsageFilter filter = GK_USAGE_FILTER_INIT;
    GkUsageSummary summary;

    g_assert_cmpint (day + DAY, <=, query_int (db, "SELECT CAST (value AS INTEGER) FROM meta"
                                                   " WHERE key = '" GK_ROLLUP_META_FACET_DAYS "'"));
    add_usage (db, keys[1], "late", 0.25, "SUCCESS", "u3", day + 5 * HOUR + 7);
    filter.since = day;
    filter.until = day + DAY;
    g_assert_true (gk_stats_usage_filter_summary (db, &filter, &summary, &error));
    g_assert_no_error (error);
    g_assert_cmpint (query_int (db, "SELECT start FROM usage_rollup_facet WHERE model = 'late'"),
                     ==, day);
    {
      g_autofree char *sql = g_strdup_printf ("DELETE FROM gemini_key_usage_log WHERE id IN"
                                              " (SELECT id FROM gemini_key_usage_log"
                                              "  WHERE created_at >= %" G_GINT64_FORMAT
                                              "  AND created_at < %" G_GINT64_FORMAT
                                              "  ORDER BY id LIMIT 5)",
                                              day - 2 * DAY, day + DAY);

      g_assert_true (gk_database_exec (db, sql, NULL));
    }
    for (guint z = 0; z < G_N_ELEMENTS (summary_zones); z++)
      {
        g_setenv ("TZ", summary_zones[z], TRUE);
        assert_filters_match_rows (db, keys[1], now);
        assert_filter_summary_matches_rows (db, &filter);
      }
    g_setenv ("TZ", "UTC", TRUE);
  }

  /* Keep all: nothing more is deleted. */
  g_assert_true (gk_rollup_set_retention_days (db, 0, &error));
  gk_clock_set (clock, GK_TEST_EPOCH + 400 * DAY);
  g_assert_true (gk_rollup_prune (db, &report, &error));
  g_assert_no_error (error);
  g_assert_cmpint (report.rows_deleted, ==, 0);
}

static void
test_usage_filter_summary (Fixture       *fixture,
                           gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 a = add_key (db, "a", "ACTIVE", FALSE);
  gint64 b = add_key (db, "b", "ACTIVE", FALSE);
  gint64 now = GK_TEST_EPOCH;
  GkUsageFilter today = GK_USAGE_FILTER_INIT;
  GkUsageSummary summary;
  g_autoptr(GError) error = NULL;

  add_random_usage (db, a, now, 400);
  add_random_usage (db, b, now, 400);
  /* Folded in by the first summary. */
  assert_filters_match_rows (db, a, now);
  g_assert_cmpint (query_int (db, "SELECT count(*) FROM usage_rollup_facet"), >, 0);

  /* Rows written after the fold, then rows the fold has not seen (inside a
   * transaction the summary reads them from the log). */
  add_random_usage (db, a, now, 100);
  assert_filters_match_rows (db, a, now);
  g_assert_true (gk_database_exec (db, "BEGIN", NULL));
  add_random_usage (db, b, now, 50);
  assert_filters_match_rows (db, a, now);
  g_assert_true (gk_database_exec (db, "COMMIT", NULL));

  /* Rows deleted by hand drop out of the sums. */
  g_assert_true (gk_database_exec (db, "DELETE FROM gemini_key_usage_log WHERE id % 3 = 0",
                                   NULL));
  assert_filters_match_rows (db, a, now);

  /* "Today" starts at local midnight: a row one second before it is not in
   * today's summary, one at midnight is. */
  today.since = gk_stats_local_midnight (NULL, now, 0);
  today.until = gk_stats_local_midnight (NULL, now + 86400, 0);
  g_assert_true (gk_database_exec (db, "DELETE FROM gemini_key_usage_log", NULL));
  add_usage (db, a, "m", 1, "SUCCESS", NULL, today.since - 1);
  add_usage (db, a, "m", 2, "SUCCESS", NULL, today.since);
  add_usage (db, b, "m", 4, "ERROR", NULL, today.until - 1);
  add_usage (db, b, "m", 8, "ERROR", NULL, today.until);
  g_assert_true (gk_stats_usage_filter_summary (db, &today, &summary, &error));
  g_assert_no_error (error);
  g_assert_cmpint (summary.requests, ==, 2);
  g_assert_cmpint (summary.successes, ==, 1);
  g_assert_cmpint (summary.failures, ==, 1);
  g_assert_cmpfloat_with_epsilon (summary.cost_usd, 6, 1e-9);
}

static void
test_usage_filter_zones (Fixture       *fixture,
                         gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 a = add_key (db, "a", "ACTIVE", FALSE);

  add_random_usage (db, a, GK_TEST_EPOCH, 300);
  for (guint z = 0; z < G_N_ELEMENTS (zones); z++)
    {
      use_zone (zones[z]);
      for (guint n = 0; n < G_N_ELEMENTS (nows); n++)
        assert_filters_match_rows (db, a, nows[n]);
    }
  restore_zone ();
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  run_zone = g_strdup (g_getenv ("TZ"));

#define ADD(path, func) \
  g_test_add ("/stats/" path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

  ADD ("empty", test_empty);
  ADD ("key-cards", test_key_cards);
  ADD ("daily/single-point", test_single_point);
  ADD ("daily/boundaries", test_daily_series);
  ADD ("daily/many-points", test_many_points);
  ADD ("top/models", test_top_models);
  ADD ("top/users", test_top_users);
  ADD ("rotations", test_rotations);
  ADD ("usage/logs", test_usage_logs);
  ADD ("usage/summary", test_usage_summary);
  ADD ("usage/pages", test_usage_pages);
  ADD ("usage/filter-summary", test_usage_filter_summary);
  ADD ("usage/filter-zones", test_usage_filter_zones);
  ADD ("compact/keeps-figures", test_compact_keeps_figures);
  ADD ("cache/new-rows", test_dashboard_sees_new_rows);
  ADD ("cache/transaction", test_dashboard_in_transaction);
  ADD ("daily/dst", test_local_days_dst);
  ADD ("rollup/matches-log", test_rollup_matches_log);
  ADD ("rollup/new-rows", test_rollup_new_rows);
  ADD ("rollup/nested", test_rollup_nested);
  ADD ("rollup/current-reads-only", test_rollup_current_reads_only);
  ADD ("rollup/concurrent", test_rollup_concurrent);
  ADD ("rollup/half-hour-zone", test_rollup_half_hour_zone);
  ADD ("rollup/dst-fall-back", test_rollup_dst_fall_back);
  ADD ("rollup/upgrade", test_rollup_upgrade);

#undef ADD

  return g_test_run ();
}
