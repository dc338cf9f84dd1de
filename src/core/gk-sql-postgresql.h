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

G_END_DECLS
