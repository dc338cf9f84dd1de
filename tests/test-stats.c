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
/* GK_TEST_EPOCH is 2026-03-15 12:00 UTC; the tests run with TZ=UTC. */
#define TODAY (GK_TEST_EPOCH - 12 * HOUR)

typedef struct
{
  GkDatabase *db;
  char       *dir;
} Fixture;

static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  data)
{
  fixture->db = gk_test_open_db (NULL);
  fixture->dir = g_path_get_dirname (gk_database_get_path (fixture->db));
}

static void
fixture_tear_down (Fixture       *fixture,
                   gconstpointer  data)
{
  g_assert_finalize_object (g_steal_pointer (&fixture->db));
  gk_test_rm_rf (fixture->dir);
  g_free (fixture->dir);
}

static void
exec_stmt (GkDatabase   *db,
           sqlite3_stmt *stmt)
{
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_DONE);
  sqlite3_reset (stmt);
  (void) db;
}

static gint64
add_key (GkDatabase *db,
         const char *name,
         const char *status,
         gboolean    deleted)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *uuid = g_uuid_string_random ();
  sqlite3_stmt *stmt;
  gint64 id;

  gk_database_lock (db);
  stmt = gk_database_prepare (db,
                              "INSERT INTO gemini_api_keys (uuid, name, status, created_at,"
                              " updated_at, deleted_at) VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                              &error);
  g_assert_no_error (error);
  sqlite3_bind_text (stmt, 1, uuid, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (stmt, 2, name, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (stmt, 3, status, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 4, GK_TEST_EPOCH - 100 * DAY);
  if (deleted)
    sqlite3_bind_int64 (stmt, 5, GK_TEST_EPOCH - DAY);
  exec_stmt (db, stmt);
  id = sqlite3_last_insert_rowid (gk_database_get_handle (db));
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
  sqlite3_stmt *stmt;
  gint64 id;

  gk_database_lock (db);
  stmt = gk_database_prepare (db,
                              "INSERT INTO gemini_key_usage_log (key_id, model, tokens_used,"
                              " prompt_tokens, output_tokens, cost_usd, priced, status,"
                              " http_status, error_message, user_id, latency_ms, created_at)"
                              " VALUES (?1, ?2, ?3, ?3 / 2, ?3 - ?3 / 2, ?4, ?5, ?6, ?7, ?8,"
                              " ?9, 42, ?10)",
                              &error);
  g_assert_no_error (error);
  sqlite3_bind_int64 (stmt, 1, u->key_id);
  sqlite3_bind_text (stmt, 2, u->model ? u->model : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64 (stmt, 3, u->tokens);
  sqlite3_bind_double (stmt, 4, u->cost);
  sqlite3_bind_int (stmt, 5, u->cost > 0);
  sqlite3_bind_text (stmt, 6, u->status ? u->status : "SUCCESS", -1, SQLITE_STATIC);
  sqlite3_bind_int (stmt, 7, g_strcmp0 (u->status, "RATE_LIMITED") == 0 ? 429 : 200);
  if (g_strcmp0 (u->status, "ERROR") == 0)
    sqlite3_bind_text (stmt, 8, "boom", -1, SQLITE_STATIC);
  if (u->user != NULL)
    sqlite3_bind_text (stmt, 9, u->user, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64 (stmt, 10, u->created_at);
  exec_stmt (db, stmt);
  id = sqlite3_last_insert_rowid (gk_database_get_handle (db));
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
  sqlite3_stmt *stmt;
  gint64 id;

  gk_database_lock (db);
  stmt = gk_database_prepare (db,
                              "INSERT INTO gemini_key_rotation_log (from_key_id, to_key_id,"
                              " reason, triggered_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                              &error);
  g_assert_no_error (error);
  sqlite3_bind_int64 (stmt, 1, from_key);
  if (to_key != 0)
    sqlite3_bind_int64 (stmt, 2, to_key);
  sqlite3_bind_text (stmt, 3, reason, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 4, triggered_by, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 5, created_at);
  exec_stmt (db, stmt);
  id = sqlite3_last_insert_rowid (gk_database_get_handle (db));
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
      g_assert_cmpint (point (week, i)->day_start, ==, TODAY - (6 - (gint64) i) * DAY);
      assert_point (week, i, 0, 0, 0);
    }
  for (guint i = 0; i < 30; i++)
    g_assert_cmpint (point (month, i)->day_start, ==, TODAY - (29 - (gint64) i) * DAY);

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
  add_usage (db, key, "m", 8.0, "RATE_LIMITED", NULL, TODAY - 6 * DAY);
  /* The last second before the week: only in the month. */
  add_usage (db, key, "m", 16.0, "SUCCESS", NULL, TODAY - 6 * DAY - 1);
  /* The month's first day, and the second before it. */
  add_usage (db, key, "m", 32.0, "SUCCESS", NULL, TODAY - 29 * DAY);
  add_usage (db, key, "m", 64.0, "SUCCESS", NULL, TODAY - 29 * DAY - 1);
  /* Tomorrow (a skewed clock) belongs to no period yet. */
  add_usage (db, key, "m", 128.0, "SUCCESS", NULL, TODAY + DAY);

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
                   TODAY - (29 - (gint64) i) * DAY + (gint64) j * 60);
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
                 TODAY - (gint64) j * DAY + HOUR);
  /* Outside the week, and without a model: not ranked. */
  for (guint j = 0; j < 20; j++)
    add_usage (db, key, "old-model", 1.0, "SUCCESS", NULL, TODAY - 8 * DAY);
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
  g_assert_cmpint (row->latency_ms, ==, 42);
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

/* The dashboard keeps per-day sums between calls; rows written since, by
 * this connection or another, must show at once. */
static void
test_dashboard_sees_new_rows (Fixture       *fixture,
                              gconstpointer  data)
{
  GkDatabase *db = fixture->db;
  gint64 key = add_key (db, "k", "ACTIVE", FALSE);
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) other = NULL;
  g_autoptr(GkDashboard) d = NULL;

  add_usage (db, key, "m", 1, "SUCCESS", "u", TODAY - 3 * DAY);
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
  add_usage (db, key, "late", 4, "ERROR", "v", TODAY - 5 * DAY);
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
  g_assert_cmpint (point (d, 6)->day_start, ==, TODAY + DAY);
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
  utc = dashboard (db, 3);   /* fills the cache under UTC */

  g_setenv ("TZ", "America/Los_Angeles", TRUE);
  d = dashboard (db, 3);
  g_setenv ("TZ", "UTC", TRUE);

  g_assert_cmpint (point (d, 0)->day_start, ==, mar8);
  g_assert_cmpint (point (d, 1)->day_start, ==, mar9);
  g_assert_cmpint (point (d, 2)->day_start, ==, mar10);
  assert_point (d, 0, 2, 2, 5);
  assert_point (d, 1, 1, 1, 2);
  assert_point (d, 2, 0, 0, 0);

  /* Back in UTC the days are UTC days again, not the cached local ones. */
  g_clear_pointer (&d, gk_dashboard_free);
  d = dashboard (db, 3);
  g_assert_cmpint (point (d, 0)->day_start, ==, point (utc, 0)->day_start);
  g_assert_cmpint (point (d, 0)->day_start % DAY, ==, 0);
  for (guint i = 0; i < 3; i++)
    g_assert_cmpint (point (d, i)->requests, ==, point (utc, i)->requests);

  gk_clock_set (gk_database_get_clock (db), GK_TEST_EPOCH);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

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
  ADD ("cache/new-rows", test_dashboard_sees_new_rows);
  ADD ("cache/transaction", test_dashboard_in_transaction);
  ADD ("daily/dst", test_local_days_dst);

#undef ADD

  return g_test_run ();
}
