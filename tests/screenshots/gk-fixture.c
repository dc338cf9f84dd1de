/* gk-fixture.c: fills a database with keys, usage and rotations through the
 * core API, for screenshots, demos and the UI benchmark.
 *
 *   gk-fixture --db PATH --master-key-file PATH [--bulk-usage N]
 *
 * The master key comes from (or is written to) the file, so no keyring is
 * needed; run the app with GEMINI_KEYS_MASTER_KEY_FILE set to the same file.
 * The keys are made up: they have the right shape but were never issued.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gstdio.h>
#include <sqlite3.h>

#include "gk-core.h"

#define MASTER_KEY_BYTES 32
#define HISTORY_DAYS     7
/* Past the 180 days after which Preferences asks to rotate it. */
#define MASTER_KEY_DAYS  200
/* The last use of the key that stopped being used: past the 30 days after
 * which a key is worth deleting. */
#define NIGHTLY_LAST_USE_DAYS 40
#define POOL_BUDGET_USD  2.0
#define BOT_EXTRA_LATENCY_MS 1500

typedef struct
{
  const char *name;
  int         priority;
  const char *project;
  gboolean    is_default;
  gint64      monthly;
  gint64      daily;
  gint64      minute;
  gint64      rpd;
  gint64      rpm;
  double      budget;      /* < 0: none */
  int         added_days;  /* added this many days ago; 0: when the history starts */
} FixtureKey;

static const FixtureKey fixture_keys[] = {
  { "Production",    9, "prod-app",  TRUE,  60000000, 250000,  120000, 0,    0,  -1,   0 },
  { "Staging",       6, "staging",   FALSE, 20000000, 1000000, 120000, 0,    0,  -1,   0 },
  { "Batch jobs",    4, NULL,        FALSE, 0,        1500000, 0,      1500, 15, -1,   0 },
  { "Research",      3, "lab",       FALSE, 8000000,  400000,  60000,  0,    0,  -1,   0 },
  { "Personal",      1, NULL,        FALSE, 0,        0,       0,      0,    0,  -1,   0 },
  /* Put in the remaining states at the end, so every state shows. */
  { "Nightly",       1, NULL,        FALSE, 0,        0,       0,      0,    0,  -1,   50 },
  { "Free tier",     1, NULL,        FALSE, 0,        100000,  0,      0,    0,  -1,   0 },
  { "Spare",         1, NULL,        FALSE, 0,        200000,  0,      0,    0,  -1,   0 },
  { "Team budget",   1, "team",      FALSE, 0,        0,       0,      0,    0,  0.05, 0 },
  /* Never used: worth deleting, as is Nightly. */
  { "Old free tier", 1, NULL,        FALSE, 0,        0,       0,      0,    0,  -1,   60 },
};

enum { KEY_BATCH_JOBS = 2, KEY_NIGHTLY = 5, KEY_FREE_TIER, KEY_SPARE, KEY_TEAM_BUDGET,
       KEY_OLD_FREE_TIER };

static const char * const models[] = {
  "gemini-2.5-flash", "gemini-2.5-flash", "gemini-2.5-flash",
  "gemini-2.5-pro", "gemini-2.0-flash", "gemini-2.5-flash-lite",
};

static const char * const users[] = { "alice", "build-bot", "notebook", "support-app" };

/* How many days ago the key at @i was added. */
static int
added_days (guint i)
{
  return fixture_keys[i].added_days > 0 ? fixture_keys[i].added_days : HISTORY_DAYS;
}

static int
oldest_first_cb (gconstpointer a,
                 gconstpointer b,
                 gpointer      user_data)
{
  return added_days (*(const guint *) b) - added_days (*(const guint *) a);
}

/* A well-formed but never issued key: "AIza" + 35 characters. */
static char *
fake_api_key (guint n)
{
  return g_strdup_printf ("AIzaFixtureOnlyNotARealKey%011uXz", n);
}

static gboolean
ensure_master_key_file (const char  *path,
                        GError     **error)
{
  guint8 key[MASTER_KEY_BYTES];
  g_autofree char *encoded = NULL;
  g_autofree char *contents = NULL;

  if (g_file_test (path, G_FILE_TEST_EXISTS))
    return TRUE;

  for (guint i = 0; i < MASTER_KEY_BYTES; i += 4)
    {
      guint32 r = g_random_int ();
      memcpy (key + i, &r, 4);
    }
  encoded = g_base64_encode (key, sizeof key);
  contents = g_strconcat (encoded, "\n", NULL);
  if (!g_file_set_contents_full (path, contents, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error))
    return FALSE;

  return TRUE;
}

static gboolean
bulk_usage (const char  *db_path,
            gint64       key_id,
            gint64       rows,
            gint64       now,
            GError     **error)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *stmt = NULL;
  gboolean ok = FALSE;

  if (sqlite3_open (db_path, &db) != SQLITE_OK)
    goto out;
  sqlite3_busy_timeout (db, 10000);
  if (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    goto out;
  if (sqlite3_prepare_v2 (db,
                          "INSERT INTO gemini_key_usage_log (key_id, model, tokens_used, prompt_tokens,"
                          " output_tokens, cost_usd, priced, status, http_status, user_id, latency_ms,"
                          " created_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
                          -1, &stmt, NULL) != SQLITE_OK)
    goto out;

  for (gint64 i = 0; i < rows; i++)
    {
      gint64 prompt = 200 + (i * 37) % 4000;
      gint64 output = 50 + (i * 11) % 900;
      gboolean success = i % 23 != 0;

      sqlite3_bind_int64 (stmt, 1, key_id);
      sqlite3_bind_text (stmt, 2, models[i % G_N_ELEMENTS (models)], -1, SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, 3, prompt + output);
      sqlite3_bind_int64 (stmt, 4, prompt);
      sqlite3_bind_int64 (stmt, 5, output);
      sqlite3_bind_double (stmt, 6, (prompt * 0.3 + output * 2.5) / 1e6);
      sqlite3_bind_text (stmt, 7, success ? "SUCCESS" : "RATE_LIMITED", -1, SQLITE_STATIC);
      sqlite3_bind_int (stmt, 8, success ? 200 : 429);
      sqlite3_bind_text (stmt, 9, users[i % G_N_ELEMENTS (users)], -1, SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, 10, 300 + i % 1200);
      /* Spread over the last 30 days, oldest first. */
      sqlite3_bind_int64 (stmt, 11, now - 30 * 86400 + (i * 30 * 86400) / MAX (rows, 1));
      if (sqlite3_step (stmt) != SQLITE_DONE)
        goto out;
      sqlite3_reset (stmt);
    }

  if (sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
    goto out;
  ok = TRUE;

out:
  if (!ok)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Bulk insert failed: %s",
                 db != NULL ? sqlite3_errmsg (db) : "cannot open");
  sqlite3_finalize (stmt);
  sqlite3_close (db);
  return ok;
}

int
main (int   argc,
      char *argv[])
{
  g_autofree char *db_path = NULL;
  g_autofree char *key_file = NULL;
  gint64 bulk = 0;
  GOptionEntry entries[] = {
    { "db", 0, 0, G_OPTION_ARG_FILENAME, &db_path, "Database to create", "PATH" },
    { "master-key-file", 0, 0, G_OPTION_ARG_FILENAME, &key_file, "Master key file", "PATH" },
    { "bulk-usage", 0, 0, G_OPTION_ARG_INT64, &bulk, "Extra usage rows (raw SQL)", "N" },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new ("- fill a demo database");
  g_autoptr(GError) error = NULL;
  g_autoptr(GkClock) clock = NULL;
  g_autoptr(GkDatabase) db = NULL;
  g_autoptr(GkSecretStore) secrets = NULL;
  g_autoptr(GBytes) master_key = NULL;
  g_autoptr(GkKeyStore) store = NULL;
  g_autoptr(GkPool) pool = NULL;
  gint64 ids[G_N_ELEMENTS (fixture_keys)];
  guint order[G_N_ELEMENTS (fixture_keys)];
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  guint request = 0;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error) || db_path == NULL || key_file == NULL)
    {
      g_printerr ("%s\n", error != NULL ? error->message : "--db and --master-key-file are required");
      return 2;
    }

  if (!ensure_master_key_file (key_file, &error))
    goto fail;

  /* History is written on a clock that walks from the master key's
   * creation, through the keys added, to a week of traffic up to now. */
  clock = gk_clock_new_fixed (now - MASTER_KEY_DAYS * 86400);
  db = gk_database_open (db_path, clock, &error);
  if (db == NULL)
    goto fail;

  secrets = gk_secret_store_new_for_file (key_file);
  master_key = gk_secret_store_unlock (secrets, db, NULL, &error);
  if (master_key == NULL || !gk_hygiene_mark_master_key_created (db, &error))
    goto fail;

  store = gk_key_store_new (db, master_key);
  pool = gk_pool_new (db, NULL);

  /* Added oldest first, as the audit log then tells. */
  for (guint i = 0; i < G_N_ELEMENTS (fixture_keys); i++)
    order[i] = i;
  g_qsort_with_data (order, G_N_ELEMENTS (order), sizeof order[0], oldest_first_cb, NULL);
  for (guint n = 0; n < G_N_ELEMENTS (order); n++)
    {
      guint i = order[n];
      const FixtureKey *fk = &fixture_keys[i];
      g_autofree char *api_key = fake_api_key (i + 1);
      GkKeySpec spec;

      gk_key_spec_init (&spec);
      spec.name = fk->name;
      spec.priority = fk->priority;
      spec.project = fk->project;
      spec.is_default = fk->is_default;
      spec.limits[GK_QUOTA_SLOT_MONTHLY_TOKENS] = fk->monthly;
      spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = fk->daily;
      spec.limits[GK_QUOTA_SLOT_MINUTE_TOKENS] = fk->minute;
      spec.limits[GK_QUOTA_SLOT_DAILY_REQUESTS] = fk->rpd;
      spec.limits[GK_QUOTA_SLOT_MINUTE_REQUESTS] = fk->rpm;
      spec.monthly_budget_usd = fk->budget;
      gk_clock_set (clock, now - added_days (i) * 86400);
      /* Kept out of the week's traffic; used once at the end. */
      spec.active = i < KEY_NIGHTLY;
      ids[i] = gk_key_store_add (store, &spec, api_key, &error);
      if (ids[i] == 0)
        goto fail;
    }

  /* Nightly's last use, long ago. */
  gk_clock_set (clock, now - NIGHTLY_LAST_USE_DAYS * 86400);
  {
    GkUsageRecord record;
    GkTrackResult result;

    gk_usage_record_init (&record);
    record.key_id = ids[KEY_NIGHTLY];
    record.model = "gemini-2.5-flash-lite";
    record.prompt_tokens = 12000;
    record.output_tokens = 900;
    record.user_id = "build-bot";
    record.latency_ms = 900;
    record.status = GK_USAGE_SUCCESS;
    record.http_status = 200;
    if (!gk_pool_track (pool, &record, &result, &error))
      goto fail;
  }
  gk_clock_set (clock, now - HISTORY_DAYS * 86400);
  if (!gk_spend_set_pool_budget (db, POOL_BUDGET_USD, &error))
    goto fail;

  /* A week of traffic: busier on later days, a few failures, two
   * rotations by hand and the automatic ones the 429s cause. */
  for (guint day = 0; day < HISTORY_DAYS; day++)
    {
      guint requests = 30 + day * 9 + (day % 3) * 7;
      gint64 step = 86400 / (requests + 1);

      for (guint r = 0; r < requests; r++, request++)
        {
          g_autoptr(GkKey) key = NULL;
          g_autoptr(GError) local_error = NULL;
          GkUsageRecord record;
          GkTrackResult result;
          gboolean bot;

          gk_clock_advance (clock, step);
          key = gk_pool_select (pool, models[request % G_N_ELEMENTS (models)], NULL, &local_error);
          if (key == NULL)
            continue;

          gk_usage_record_init (&record);
          /* The build bot has a key of its own and slower, longer jobs. */
          bot = request % G_N_ELEMENTS (users) == 1;
          record.key_id = bot ? ids[KEY_BATCH_JOBS] : key->id;
          record.model = models[request % G_N_ELEMENTS (models)];
          record.prompt_tokens = 400 + (request * 131) % 6000;
          record.output_tokens = 80 + (request * 47) % 1500;
          record.user_id = users[request % G_N_ELEMENTS (users)];
          record.latency_ms = 350 + (request * 53) % 2400 + (bot ? BOT_EXTRA_LATENCY_MS : 0);
          record.status = GK_USAGE_SUCCESS;
          record.http_status = 200;
          if (request % 41 == 17)
            {
              record.status = GK_USAGE_RATE_LIMITED;
              record.http_status = 429;
              record.retry_delay_s = 30;
              record.prompt_tokens = record.output_tokens = 0;
            }
          else if (request % 29 == 5)
            {
              record.status = GK_USAGE_ERROR;
              record.http_status = 503;
              record.error_message = "The model is overloaded. Please try again later.";
              record.prompt_tokens = record.output_tokens = 0;
            }

          if (!gk_pool_track (pool, &record, &result, &local_error))
            {
              g_printerr ("track: %s\n", local_error->message);
              return 1;
            }
        }

      if (day == 2 || day == 5)
        {
          g_autoptr(GError) local_error = NULL;

          gk_pool_rotate (pool, ids[day == 2 ? 1 : 3], "manual:alice", &local_error);
          if (local_error != NULL)
            g_printerr ("rotate: %s\n", local_error->message);
        }
    }

  /* End on the wall clock, with one key rate-limited and one revoked, so
   * every badge shows. */
  gk_clock_set (clock, now - 120);
  {
    GkUsageRecord record;
    GkTrackResult result;
    g_autoptr(GError) local_error = NULL;

    gk_usage_record_init (&record);
    record.key_id = ids[2];
    record.model = "gemini-2.5-flash";
    record.status = GK_USAGE_RATE_LIMITED;
    record.http_status = 429;
    record.retry_delay_s = 3600;
    record.user_id = "build-bot";
    if (!gk_pool_track (pool, &record, &result, &local_error))
      g_printerr ("track: %s\n", local_error->message);
    g_clear_error (&local_error);

    gk_clock_set (clock, now - 60);
    record.key_id = ids[3];
    record.status = GK_USAGE_INVALID_KEY;
    record.http_status = 400;
    record.retry_delay_s = 0;
    record.error_message = "API key not valid. Please pass a valid API key.";
    record.user_id = "notebook";
    if (!gk_pool_track (pool, &record, &result, &local_error))
      g_printerr ("track: %s\n", local_error->message);
    g_clear_error (&local_error);

    /* The rest: skipped by hand, a daily quota used up, one near it, a
     * budget reached and one turned off. */
    for (guint i = KEY_NIGHTLY; i < KEY_OLD_FREE_TIER; i++)
      if (!gk_key_store_set_status (store, ids[i], GK_KEY_STATUS_ACTIVE, NULL, &local_error))
        {
          g_printerr ("status: %s\n", local_error->message);
          g_clear_error (&local_error);
        }
    gk_pool_rotate (pool, ids[KEY_NIGHTLY], "manual:alice", &local_error);
    g_clear_error (&local_error);
    record.status = GK_USAGE_SUCCESS;
    record.http_status = 200;
    record.error_message = NULL;
    record.user_id = "alice";
    record.output_tokens = 0;
    record.key_id = ids[KEY_FREE_TIER];
    record.prompt_tokens = 100000;
    gk_pool_track (pool, &record, &result, &local_error);
    g_clear_error (&local_error);
    record.key_id = ids[KEY_SPARE];
    record.prompt_tokens = 194000;
    gk_pool_track (pool, &record, &result, &local_error);
    g_clear_error (&local_error);
    record.key_id = ids[KEY_TEAM_BUDGET];
    record.model = "gemini-2.5-pro";
    record.prompt_tokens = 50000;
    gk_pool_track (pool, &record, &result, &local_error);
    g_clear_error (&local_error);
  }
  gk_clock_set (clock, now);

  if (bulk > 0 && !bulk_usage (db_path, ids[0], bulk, now, &error))
    goto fail;

  g_print ("%s: %u keys, %u tracked requests, %" G_GINT64_FORMAT " bulk rows\n",
           db_path, (guint) G_N_ELEMENTS (fixture_keys), request, bulk);
  return 0;

fail:
  g_printerr ("gk-fixture: %s\n", error->message);
  return 1;
}
