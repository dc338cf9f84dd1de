/* gk-database-private.h: SQL access for the core modules only.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include "gk-database.h"
#include "gk-sql.h"

G_BEGIN_DECLS

/* The connection. Hold the lock (gk_database_lock) while using it. */
GkSql        *gk_database_get_handle  (GkDatabase   *self);
void          gk_database_lock        (GkDatabase   *self);
void          gk_database_unlock      (GkDatabase   *self);

/* A cached prepared statement, reset and with bindings cleared. Owned by the
 * database: do not finalize. Returns NULL and sets @error on failure. */
GkSqlStmt    *gk_database_prepare     (GkDatabase   *self,
                                       const char   *sql,
                                       GError      **error);
/* Runs one or more statements without results. */
gboolean      gk_database_exec        (GkDatabase   *self,
                                       const char   *sql,
                                       GError      **error);
/* An INSERT of one row, to run with gk_database_step_insert(): @sql
 * without RETURNING, which is added where it is the cheaper way. */
GkSqlStmt    *gk_database_prepare_insert (GkDatabase   *self,
                                          const char   *sql,
                                          GError      **error);
/* Runs @stmt, an INSERT … RETURNING id or one from
 * gk_database_prepare_insert(), and resets it. Returns the new row's id,
 * or 0 with @error set (@what, marked with N_() and translated only then,
 * giving the context: the usage row's insert is on every request). */
gint64        gk_database_step_insert (GkDatabase   *self,
                                       GkSqlStmt    *stmt,
                                       const char   *what,
                                       GError      **error);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK, taking and releasing the lock.
 * They nest: inside a transaction they make and release a savepoint, so a
 * caller can wrap several writes (e.g. gk_pool_track calls) in one commit
 * and each inner one still fails alone. */
gboolean      gk_database_begin       (GkDatabase   *self,
                                       GError      **error);
gboolean      gk_database_commit      (GkDatabase   *self,
                                       GError      **error);
void          gk_database_rollback    (GkDatabase   *self);
/* Sets @error from the connection's last error (with @what as context). */
void          gk_database_set_error   (GkDatabase   *self,
                                       GError      **error,
                                       const char   *what);
/* Copies the WAL back into an SQLite file and truncates it (after a
 * deletion, so the deleted rows leave the disk); nothing on a server. */
void          gk_database_checkpoint  (GkDatabase   *self);
/* Bumped by core modules whenever they change keys or quotas, so caches
 * over those tables know to reload (data_version only sees other
 * connections' commits). Returns the new change stamp. */
guint64       gk_database_touch       (GkDatabase   *self);
/* TRUE when gk_database_get_data_version() moves with other processes'
 * changes: always on an SQLite file, on a server while a watch source
 * (gk_database_watch_source_new) exists. */
gboolean      gk_database_has_live_version (GkDatabase *self);
/* data_version combined with the local touch counter. */
guint64       gk_database_change_stamp (GkDatabase  *self);
/* The same, from the data_version last read on this connection when that
 * read is at most @max_age_us old (any caller's: one read can serve
 * several checks), read again otherwise; 0 always reads. */
guint64       gk_database_change_stamp_recent (GkDatabase *self,
                                               gint64      max_age_us);

G_END_DECLS
