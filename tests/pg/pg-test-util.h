/* pg-test-util.h: what the PostgreSQL tests share. They call the driver's
 * own functions, not the dispatching wrappers, to test the driver alone.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include "gk-sql.h"

G_BEGIN_DECLS

static const GkSqlDriver *const pg = &gk_sql_postgresql_driver;

/* A connection to @uri (the test fails if there is none). */
GkSql     *pg_test_open    (const char *uri);
/* A statement for @text (the test fails if it does not prepare). */
GkSqlStmt *pg_test_prepare (GkSql      *sql,
                            const char *text);
/* Runs @text (the test fails if it fails). */
void       pg_test_exec    (GkSql      *sql,
                            const char *text);

/* The cluster's URI ($GK_TEST_PG_URI) without its password, and the
 * password. */
void       pg_test_split_uri (char      **target,
                              char      **password);

G_END_DECLS
