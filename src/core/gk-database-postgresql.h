/* gk-database-postgresql.h: the schema's migrations in PostgreSQL's dialect.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>

#include "gk-sql.h"

G_BEGIN_DECLS

/* One statement of a migration, and the table it creates (or NULL). */
typedef struct
{
  const char *table;
  const char *sql;
} GkMigrationStep;

/* The statements that take a database from one schema version to the
 * next. */
typedef struct
{
  const GkMigrationStep *steps;
  gsize                  n_steps;
} GkMigration;

/* The migrations of a PostgreSQL database, version 1 first: the same
 * tables, columns, constraints, indexes and triggers as the SQLite
 * migrations of the same version (tests/pg/test-pg-schema.c compares
 * them). *@n_migrations is the schema version they reach. */
const GkMigration *gk_database_postgresql_migrations (gsize *n_migrations);

/* PostgreSQL has no PRAGMA user_version: the version is the meta row
 * "schema_version" (absent, with meta itself, in an empty database). */
#define GK_DATABASE_POSTGRESQL_VERSION_KEY "schema_version"

/* Run first (with gk_sql_exec: two statements) inside the migration's
 * transaction: one process migrates at a time, the others wait for it,
 * longer than the driver's usual lock timeout, and then find the database
 * up to date. */
#define GK_DATABASE_POSTGRESQL_MIGRATION_LOCK \
  "SET LOCAL lock_timeout = '120s'; SELECT pg_advisory_xact_lock (7310677453398390015)"

/* What BEGIN IMMEDIATE is on an SQLite file: a write transaction waits
 * for the one in progress in any process (up to the lock timeout, as the
 * busy timeout does) and holds the lock until it ends. The core relies on
 * one writer at a time (a rollup reads what is folded and folds the rest,
 * a rotation is logged by the one that takes the key out of service); with
 * it, two gateways folding or rotating at once cannot both act. */
#define GK_DATABASE_POSTGRESQL_WRITE_LOCK_KEY "7310677453398390016"
#define GK_DATABASE_POSTGRESQL_BEGIN_WRITE \
  "BEGIN; SELECT pg_advisory_xact_lock (" GK_DATABASE_POSTGRESQL_WRITE_LOCK_KEY ")"

/* The channel on which the schema's triggers notify changes of keys,
 * quotas and settings (migration 10). */
#define GK_DATABASE_POSTGRESQL_CHANNEL "gemini_keys_changes"

/* Sets the version; bind it (an integer) as the one parameter. */
#define GK_DATABASE_POSTGRESQL_WRITE_VERSION \
  "INSERT INTO meta (key, value) VALUES ('" GK_DATABASE_POSTGRESQL_VERSION_KEY "'," \
  " CAST (CAST (? AS BIGINT) AS TEXT))" \
  " ON CONFLICT (key) DO UPDATE SET value = excluded.value"

/* The schema version of the database on @sql: 0 for an empty one, -1 on
 * error (see gk_sql_errcode()). */
int gk_database_postgresql_read_version (GkSql *sql);

G_END_DECLS
