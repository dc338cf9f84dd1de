/* gk-test-util.h: fixtures shared by the GTest programs.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include "gk-core.h"

G_BEGIN_DECLS

/* 2026-03-15 12:00:00 UTC: a plain day, not near a DST change or month end. */
#define GK_TEST_EPOCH G_GINT64_CONSTANT (1773576000)

/* A fresh path for a database in a new temporary directory; or, when
 * GK_TEST_DATABASE_CLUSTER is set (the `postgresql` suite runs the core's
 * tests a second time so, beside tests/pg/pg-cluster.sh's cluster), the
 * URI of a new, empty PostgreSQL database there. */
char       *gk_test_db_path        (void);
/* TRUE when gk_test_db_path() gives PostgreSQL databases. */
gboolean    gk_test_on_postgresql  (void);
/* For a test of SQLite's own file (modes, WAL, integrity_check…): on
 * PostgreSQL, marks the test skipped with @reason and returns TRUE. */
gboolean    gk_test_skip_on_postgresql (const char *reason);
/* A migrated database at a fresh path on @clock (NULL: a fixed clock at
 * GK_TEST_EPOCH). */
GkDatabase *gk_test_open_db        (GkClock    *clock);
/* A constant master key (secure bytes) for tests that do not need the
 * keyring. */
GBytes     *gk_test_master_key     (void);
/* A valid-looking classic key, distinct for each @n. */
char       *gk_test_api_key        (guint       n);
/* Adds a key named @name with @priority and no quotas; returns its id. */
gint64      gk_test_add_key        (GkKeyStore *store,
                                    const char *name,
                                    int         priority);
/* What most core tests work on: a database on a fixed clock at
 * GK_TEST_EPOCH, the test master key, a key store and a pool. */
typedef struct
{
  GkClock    *clock;
  GkDatabase *db;
  GBytes     *master;
  GkKeyStore *store;
  GkPool     *pool;
} GkTestFixture;

/* For g_test_add(); teardown checks that nothing leaked a reference. */
void        gk_test_fixture_setup    (GkTestFixture *f,
                                      gconstpointer  data);
void        gk_test_fixture_teardown (GkTestFixture *f,
                                      gconstpointer  data);
#define GK_TEST_ADD(path, func) \
  g_test_add (path, GkTestFixture, NULL, gk_test_fixture_setup, func, gk_test_fixture_teardown)

/* Records one use of @key_id with @prompt_tokens (asserts success). */
GkTrackResult gk_test_track          (GkPool        *pool,
                                      gint64         key_id,
                                      GkUsageStatus  status,
                                      gint64         prompt_tokens);

/* How many POSIX locks process @pid holds on the file at @path, as
 * /proc/locks lists them (0 when the file does not exist). */
guint       gk_test_count_locks    (GPid        pid,
                                    const char *path);
/* Whether the file at @path contains @needle. Read in a child process: a
 * file this process has a database connection to must not be opened and
 * closed here, as close() drops every lock the process holds on it. */
gboolean    gk_test_file_contains  (const char *path,
                                    const char *needle);

/* Keyring prompts, tested in a private D-Bus session whose keyring service
 * has no keyring yet (started without --login), so that storing a key asks
 * to create one. Its prompts go to a fake system prompter that opens them
 * and never answers, as a user looking at the prompt would; killing it
 * dismisses the prompt. A test program's main() runs the fake prompter when
 * its first argument is GK_TEST_FAKE_PROMPTER_ARG. */
#define GK_TEST_FAKE_PROMPTER_ARG "--fake-prompter"
#define GK_TEST_PROMPTER_NAME     "org.gnome.keyring.SystemPrompter"

/* The fake prompter's process: writes the file @flag when a prompt opens. */
int          gk_test_fake_prompter_main     (const char *flag);
/* Starts this program as the fake prompter; returns once it owns its name. */
GSubprocess *gk_test_start_fake_prompter    (const char *flag);
/* Starts gnome-keyring-daemon's Secret Service without a login keyring. */
void         gk_test_start_bare_keyring     (void);
/* The process owning @name on the session bus, 0 when none does. */
GPid         gk_test_bus_name_pid           (const char *name);
/* Whether this process is the copy gk_test_run_in_private_session() runs. */
gboolean     gk_test_in_private_session     (void);
/* Runs the test @test_path of this program again in a private D-Bus session
 * with folders of its own, and asserts that it passed. */
void         gk_test_run_in_private_session (const char *test_path);

/* PostgreSQL (tests run by tests/pg/pg-cluster.sh, which sets
 * GK_TEST_PG_URI): a new, empty database on the test cluster, named after
 * this process and a counter; returns its connection URI, password
 * included. */
char        *gk_test_pg_database_new        (void);
/* Drops a database gk_test_pg_database_new() made, ending its sessions. */
void         gk_test_pg_database_drop       (const char *uri);

/* A folder for a test's own files (exports, key files) beside @db: the
 * database file's folder, or on PostgreSQL a new temporary one, removed
 * when the test ends. */
char        *gk_test_db_dir                 (GkDatabase *db);
/* Removes what gk_test_db_path() made: the database's folder, or the
 * PostgreSQL database (once no connection of this process uses it). */
void        gk_test_remove_db      (const char *path);
/* Removes a directory tree (test clean-up). */
void        gk_test_rm_rf          (const char *path);

G_END_DECLS
