/* hardening-util.h: helpers shared by the crash and fault tests.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include "gk-test-util.h"

G_BEGIN_DECLS

/* The path of a program built next to the running test. */
char    *hardening_sibling_path   (const char  *name);
/* A database at a fresh path on a clock fixed at GK_TEST_EPOCH, with
 * @n_keys keys (names "key-N"); their ids in @ids (may be NULL). The
 * database is closed again; returns its path. */
char    *hardening_make_db        (guint        n_keys,
                                   gint64      *ids);
/* TRUE when a usage row with @usage_id exists. */
gboolean hardening_usage_exists   (GkDatabase  *db,
                                   gint64       usage_id);
/* The result of one "SELECT <integer>" style query (first column, first row). */
gint64   hardening_query_int      (GkDatabase  *db,
                                   const char  *sql);
/* The tables a migration of an empty database creates, and the schema
 * version it reaches: what a complete database has. */
char   **hardening_fresh_schema   (int         *version);
/* TRUE when every table in @tables exists in @db. */
gboolean hardening_has_tables     (GkDatabase  *db,
                                   char       **tables);
/* Whether any file under @dir (recursively) contains @needle. */
gboolean hardening_tree_contains  (const char  *dir,
                                   const char  *needle);

G_END_DECLS
