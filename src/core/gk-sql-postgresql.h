/* gk-sql-postgresql.h: what the PostgreSQL driver offers beyond the driver
 * table (gk-sql.h).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A store target fit to show or log: a connection URI or key=value string
 * reduced to its scheme, user, host, port and database (no password, no
 * other parameters, whatever the input's syntax); a file path unchanged.
 * Connection strings are secrets: show only this. */
char *gk_sql_redact_target (const char *target);
/* TRUE when the connection string @target sets a password, as a URI's
 * "user:password@", a "?password=" parameter or a "password=" keyword. */
gboolean gk_sql_target_has_password (const char *target);

/* Change notices: a connection of its own that LISTENs on a channel, for a
 * main loop to watch (its socket is readable when a notice comes). */
typedef struct _GkSqlListener GkSqlListener;

GkSqlListener *gk_sql_listener_new     (const char    *target,
                                        const char    *channel);
/* Connects (blocking, up to the connect timeout) and listens; FALSE when
 * the server cannot be reached. */
gboolean       gk_sql_listener_connect (GkSqlListener *self);
/* The connection's socket, or -1 while not connected. */
int            gk_sql_listener_get_fd  (GkSqlListener *self);
/* Takes in what the socket has, without blocking: the number of notices
 * received, or -1 when the connection broke (it is then closed: connect
 * again). */
int            gk_sql_listener_read    (GkSqlListener *self);
void           gk_sql_listener_free    (GkSqlListener *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GkSqlListener, gk_sql_listener_free)

G_END_DECLS
