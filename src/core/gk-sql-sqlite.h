/* gk-sql-sqlite.h: the SQLite driver's own connection, for tests that look
 * at what only SQLite has (its list of prepared statements, for instance).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <sqlite3.h>

#include "gk-sql.h"

G_BEGIN_DECLS

/* The sqlite3 connection under @sql, a connection of gk_sql_sqlite_driver. */
sqlite3 *gk_sql_sqlite_get_handle (GkSql *sql);

/* Registers, once, the VFS every connection of the core opens its file
 * with (gk-sql-sqlite-vfs.c: the default one, with the WAL's writes
 * joined); returns its name. */
const char *gk_sql_sqlite_vfs_name (void);

/* To be called right before @db reads PRAGMA data_version: the wal-index
 * as it is then is what gk_sql_sqlite_vfs_data_unchanged() compares with. */
void gk_sql_sqlite_vfs_data_read (sqlite3 *db);

/* TRUE when no connection but @db itself has committed since its last
 * data_version read (gk_sql_sqlite_vfs_data_read()), so that reading it
 * again would give the same value; FALSE when that cannot be told without
 * reading it (the file is not in WAL mode, another commit is under way…). */
gboolean gk_sql_sqlite_vfs_data_unchanged (sqlite3 *db);

G_END_DECLS
