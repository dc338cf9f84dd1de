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

G_END_DECLS
