/* test-pg-pool.c: several processes on one PostgreSQL database, as several
 * gateways of a team are: their charges all counted, a key taken out of
 * service logged once. Each test works in a schema of its own; the processes are copies of
 * this program (its first argument GK_CHILD_ARG).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gstdio.h>

#include "gk-core.h"
#include "gk-database-private.h"
#include "gk-test-util.h"
#include "pg-test-util.h"

#define GK_CHILD_ARG   "--child"
#define N_CHILDREN     4
#define USES_PER_CHILD 150
#define PROMPT_TOKENS  10

typedef struct
{
  GkSql      *sql;      /* the test's own connection, to look */
  char       *uri;      /* the test's schema */
  GkDatabase *db;
  GkKeyStore *store;
  GBytes     *master;
  char       *dir;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  static guint counter;
  g_autoptr(GError) error = NULL;
  g_autofree char *create = NULL;
  const char *base = g_getenv ("GK_TEST_PG_URI");

  if (base == NULL)
    {
      g_test_skip ("GK_TEST_PG_URI is not set: run through tests/pg/pg-cluster.sh");
      return;
    }
  f->sql = pg_test_open (base);
  create = g_strdup_printf ("DROP SCHEMA IF EXISTS pool%u CASCADE; CREATE SCHEMA pool%u;"
                            " SET search_path = pool%u", counter, counter, counter);
  pg_test_exec (f->sql, create);
  f->uri = g_strdup_printf ("%s?options=-c%%20search_path%%3Dpool%u", base, counter);
  counter++;
  f->db = gk_database_open (f->uri, NULL, &error);
  g_assert_no_error (error);
  f->master = gk_test_master_key ();
  f->store = gk_key_store_new (f->db, f->master);
  f->dir = g_dir_make_tmp ("gk-pg-pool-XXXXXX", &error);
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  if (f->dir != NULL)
    {
      g_autofree char *go = g_build_filename (f->dir, "go", NULL);

      g_remove (go);
      g_rmdir (f->dir);
    }
  g_free (f->dir);
  g_clear_object (&f->store);
  g_clear_pointer (&f->master, g_bytes_unref);
  g_clear_object (&f->db);
  g_clear_pointer (&f->sql, pg->close);
  g_free (f->uri);
}

/* One number from @query on the test's own connection. */
static gint64
query_int (Fixture    *f,
           const char *query)
{
  GkSqlStmt *stmt = pg_test_prepare (f->sql, query);
  gint64 value;

  g_assert_cmpint (pg->step (stmt), ==, GK_SQL_ROW);
  value = pg->column_int64 (stmt, 0);
  pg->finalize (stmt);
  return value;
}

/* Children ---------------------------------------------------------------- */

/* A child: loads its snapshot (selects a key), waits for the file @go so
 * that every child starts at once, then records @count uses of @key_id
 * with @status. */
static int
child_main (const char *status_name,
            const char *key_id_text,
            const char *count_text,
            const char *go)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = NULL;
  g_autoptr(GkPool) pool = NULL;
  g_autoptr(GkKey) key = NULL;
  GkUsageStatus status;
  gint64 key_id = g_ascii_strtoll (key_id_text, NULL, 10);
  guint count = (guint) g_ascii_strtoull (count_text, NULL, 10);
  gint64 waited = 0;

  if (!gk_usage_status_from_string (status_name, &status))
    g_error ("unknown status %s", status_name);
  db = gk_database_open (g_getenv ("GK_TEST_CHILD_URI"), NULL, &error);
  g_assert_no_error (error);
  pool = gk_pool_new (db, NULL);
  key = gk_pool_select (pool, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (key->id, ==, key_id);

  while (!g_file_test (go, G_FILE_TEST_EXISTS))
    {
      g_usleep (2000);
      waited += 2000;
      g_assert_cmpint (waited, <, 120 * G_USEC_PER_SEC);
    }

  for (guint i = 0; i < count; i++)
    {
      GkUsageRecord record;

      gk_usage_record_init (&record);
      record.key_id = key_id;
      record.model = "gemini-2.5-flash";
      record.status = status;
      record.prompt_tokens = status == GK_USAGE_SUCCESS ? PROMPT_TOKENS : 0;
      record.http_status = status == GK_USAGE_SUCCESS ? 200 : 429;
      record.retry_delay_s = 30;
      gk_pool_track (pool, &record, NULL, &error);
      g_assert_no_error (error);
    }
  return 0;
}

/* Starts N_CHILDREN children on @f's schema, lets them go at once and
 * waits for them to succeed. */
static void
run_children (Fixture    *f,
              const char *status,
              gint64      key_id,
              guint       count)
{
  g_autofree char *go = g_build_filename (f->dir, "go", NULL);
  g_autofree char *id = g_strdup_printf ("%" G_GINT64_FORMAT, key_id);
  g_autofree char *count_text = g_strdup_printf ("%u", count);
  g_autoptr(GPtrArray) children = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);

  /* The URI holds the test role's password: in the environment, not argv. */
  g_subprocess_launcher_setenv (launcher, "GK_TEST_CHILD_URI", f->uri, TRUE);
  for (guint i = 0; i < N_CHILDREN; i++)
    {
      g_autoptr(GError) error = NULL;
      GSubprocess *child = g_subprocess_launcher_spawn (launcher, &error,
                                                        "/proc/self/exe", GK_CHILD_ARG, status,
                                                        id, count_text, go, NULL);

      g_assert_no_error (error);
      g_ptr_array_add (children, child);
    }
  /* Every child has loaded its snapshot once it waits: give them time to
   * get there, then start them together. */
  g_usleep (G_USEC_PER_SEC);
  g_assert_true (g_file_set_contents (go, "", 0, NULL));
  for (guint i = 0; i < children->len; i++)
    {
      g_autoptr(GError) error = NULL;
      GSubprocess *child = g_ptr_array_index (children, i);

      g_assert_true (g_subprocess_wait_check (child, NULL, &error));
      g_assert_no_error (error);
    }
}

/* Tests ------------------------------------------------------------------- */

/* Every process's charges are counted. */
static void
test_charges (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *api_key = gk_test_api_key (1);
  GkKeySpec spec;
  gint64 key_id;
  const gint64 uses = N_CHILDREN * USES_PER_CHILD;

  if (f->sql == NULL)
    return;
  gk_key_spec_init (&spec);
  spec.name = "shared";
  spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = 1000000;
  spec.limits[GK_QUOTA_SLOT_DAILY_REQUESTS] = 100000;
  key_id = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);

  run_children (f, "SUCCESS", key_id, USES_PER_CHILD);

  g_assert_cmpint (query_int (f, "SELECT count(*) FROM gemini_key_usage_log"), ==, uses);
  g_assert_cmpint (query_int (f, "SELECT used_value FROM gemini_key_quotas"
                                 " WHERE quota_type = 'DAILY' AND unit = 'TOKENS'"),
                   ==, uses * PROMPT_TOKENS);
  g_assert_cmpint (query_int (f, "SELECT used_value FROM gemini_key_quotas"
                                 " WHERE quota_type = 'DAILY' AND unit = 'REQUESTS'"),
                   ==, uses);
}

/* A quota that no process used up alone but all together did takes the
 * key out of service (each charge sees the others'), logged once. */
static void
test_quota_across_processes (Fixture       *f,
                             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *api_key = gk_test_api_key (2);
  GkKeySpec spec;
  gint64 key_id;

  if (f->sql == NULL)
    return;
  gk_key_spec_init (&spec);
  spec.name = "limited";
  /* Each child's 40 uses leave most of it; the four together pass it. */
  spec.limits[GK_QUOTA_SLOT_DAILY_REQUESTS] = 100;
  key_id = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);

  run_children (f, "SUCCESS", key_id, 40);

  g_assert_cmpint (query_int (f, "SELECT used_value FROM gemini_key_quotas"
                                 " WHERE quota_type = 'DAILY' AND unit = 'REQUESTS'"),
                   ==, N_CHILDREN * 40);
  g_assert_cmpint (query_int (f, "SELECT count(*) FROM gemini_api_keys"
                                 " WHERE status = 'QUOTA_EXCEEDED'"), ==, 1);
  g_assert_cmpint (query_int (f, "SELECT count(*) FROM gemini_key_rotation_log"
                                 " WHERE reason = 'QUOTA_LOW'"), ==, 1);
}

/* A key rate-limited in every process at once leaves service once: one
 * rotation logged, one strike counted per 429. */
static void
test_rotation_logged_once (Fixture       *f,
                           gconstpointer  data)
{
  gint64 first, second;

  if (f->sql == NULL)
    return;
  first = gk_test_add_key (f->store, "first", 9);
  second = gk_test_add_key (f->store, "second", 1);

  run_children (f, "RATE_LIMITED", first, 1);

  g_assert_cmpint (query_int (f, "SELECT count(*) FROM gemini_key_rotation_log"), ==, 1);
  g_assert_cmpint (query_int (f, "SELECT count(*) FROM gemini_key_rotation_log"
                                 " WHERE reason = 'RATE_LIMITED'"), ==, 1);
  g_assert_cmpint (query_int (f, "SELECT to_key_id FROM gemini_key_rotation_log"), ==, second);
  g_assert_cmpint (query_int (f, "SELECT rate_limit_strikes FROM gemini_api_keys"
                                 " WHERE name = 'first'"), ==, N_CHILDREN);
  g_assert_cmpint (query_int (f, "SELECT count(*) FROM gemini_key_usage_log"), ==, N_CHILDREN);
}

/* Iterates @context until @db's data_version is no longer @version;
 * returns how long that took (µs). The test fails past a generous bound,
 * still below the periodic refresh: a notice, not the refresh, moved it. */
static gint64
wait_for_change (GMainContext *context,
                 GkDatabase   *db,
                 gint64        version)
{
  gint64 start = g_get_monotonic_time ();

  while (gk_database_get_data_version (db) == version)
    {
      g_main_context_iteration (context, FALSE);
      g_usleep (1000);
      g_assert_cmpint (g_get_monotonic_time () - start, <,
                       (GK_DATABASE_REFRESH_S - 1) * G_USEC_PER_SEC);
    }
  return g_get_monotonic_time () - start;
}

/* A key cooling down, added or deleted through another connection is
 * notified: the watching pool's next choice knows it. */
static void
test_changes_notified (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GSource) watch = NULL;
  g_autoptr(GkDatabase) other_db = NULL;
  g_autoptr(GkKeyStore) other_store = NULL;
  g_autoptr(GkPool) other_pool = NULL;
  g_autoptr(GkPool) pool = NULL;
  g_autoptr(GkKey) key = NULL;
  g_autoptr(GError) error = NULL;
  GkUsageRecord record;
  gint64 first, second, third, version, waited;

  if (f->sql == NULL)
    return;
  first = gk_test_add_key (f->store, "first", 9);
  second = gk_test_add_key (f->store, "second", 5);
  pool = gk_pool_new (f->db, NULL);
  watch = gk_database_watch_source_new (f->db);
  g_assert_nonnull (watch);
  g_source_attach (watch, context);

  other_db = gk_database_open (f->uri, NULL, &error);
  g_assert_no_error (error);
  other_store = gk_key_store_new (other_db, f->master);
  other_pool = gk_pool_new (other_db, NULL);

  key = gk_pool_select (pool, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (key->id, ==, first);
  g_clear_pointer (&key, gk_key_free);

  /* Rate-limited elsewhere. */
  version = gk_database_get_data_version (f->db);
  gk_usage_record_init (&record);
  record.key_id = first;
  record.status = GK_USAGE_RATE_LIMITED;
  record.http_status = 429;
  record.retry_delay_s = 60;
  g_assert_true (gk_pool_track (other_pool, &record, NULL, &error));
  g_assert_no_error (error);
  waited = wait_for_change (context, f->db, version);
  g_test_message ("a cooldown was seen after %" G_GINT64_FORMAT " us", waited);
  key = gk_pool_select (pool, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (key->id, ==, second);
  g_clear_pointer (&key, gk_key_free);

  /* A key added elsewhere, higher than the others. */
  version = gk_database_get_data_version (f->db);
  third = gk_test_add_key (other_store, "third", 10);
  waited = wait_for_change (context, f->db, version);
  g_test_message ("a new key was seen after %" G_GINT64_FORMAT " us", waited);
  key = gk_pool_select (pool, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (key->id, ==, third);
  g_clear_pointer (&key, gk_key_free);

  /* And deleted there. */
  version = gk_database_get_data_version (f->db);
  g_assert_true (gk_key_store_delete (other_store, third, &error));
  g_assert_no_error (error);
  wait_for_change (context, f->db, version);
  key = gk_pool_select (pool, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (key->id, ==, second);

  g_source_destroy (watch);
}

/* A client token revoked through another connection is notified: the
 * watching process refuses it as soon as the notice arrives, well before
 * the periodic reload, although it had checked (and cached) it before. */
static void
test_token_revocation_notified (Fixture       *f,
                                gconstpointer  data)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GSource) watch = NULL;
  g_autoptr(GkDatabase) other_db = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *token = NULL;
  g_autofree char *user = NULL;
  gint64 id, version, waited;

  if (f->sql == NULL)
    return;
  token = gk_token_create (f->db, "ci", &id, &error);
  g_assert_no_error (error);
  watch = gk_database_watch_source_new (f->db);
  g_source_attach (watch, context);
  user = gk_token_verify (f->db, token);
  g_assert_cmpstr (user, ==, "ci");

  other_db = gk_database_open (f->uri, NULL, &error);
  g_assert_no_error (error);
  version = gk_database_get_data_version (f->db);
  g_assert_true (gk_token_revoke (other_db, id, &error));
  g_assert_no_error (error);
  waited = wait_for_change (context, f->db, version);
  g_test_message ("a revocation was seen after %" G_GINT64_FORMAT " us", waited);
  g_clear_pointer (&user, g_free);
  user = gk_token_verify (f->db, token);
  g_assert_null (user);

  g_source_destroy (watch);
}

int
main (int   argc,
      char *argv[])
{
  if (argc == 6 && g_str_equal (argv[1], GK_CHILD_ARG))
    return child_main (argv[2], argv[3], argv[4], argv[5]);

  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  g_test_add ("/pg-pool/charges", Fixture, NULL, fixture_setup,
              test_charges, fixture_teardown);
  g_test_add ("/pg-pool/quota-across-processes", Fixture, NULL, fixture_setup,
              test_quota_across_processes, fixture_teardown);
  g_test_add ("/pg-pool/changes-notified", Fixture, NULL, fixture_setup,
              test_changes_notified, fixture_teardown);
  g_test_add ("/pg-pool/rotation-logged-once", Fixture, NULL, fixture_setup,
              test_rotation_logged_once, fixture_teardown);
  g_test_add ("/pg-pool/token-revocation-notified", Fixture, NULL, fixture_setup,
              test_token_revocation_notified, fixture_teardown);
  return g_test_run ();
}
