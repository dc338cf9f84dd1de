/* gk-database-private.h: SQLite access for the core modules only.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <sqlite3.h>

#include "gk-database.h"

G_BEGIN_DECLS

G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)

/* The connection. Hold the lock (gk_database_lock) while using it. */
sqlite3      *gk_database_get_handle  (GkDatabase   *self);
void          gk_database_lock        (GkDatabase   *self);
void          gk_database_unlock      (GkDatabase   *self);

/* A cached prepared statement, reset and with bindings cleared. Owned by the
 * database: do not finalize. Returns NULL and sets @error on failure. */
sqlite3_stmt *gk_database_prepare     (GkDatabase   *self,
                                       const char   *sql,
                                       GError      **error);
/* Runs one or more statements without results. */
gboolean      gk_database_exec        (GkDatabase   *self,
                                       const char   *sql,
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
/* Bumped by core modules whenever they change keys or quotas, so caches
 * over those tables know to reload (data_version only sees other
 * connections' commits). Returns the new change stamp. */
guint64       gk_database_touch       (GkDatabase   *self);
/* data_version combined with the local touch counter. */
guint64       gk_database_change_stamp (GkDatabase  *self);

G_END_DECLS
