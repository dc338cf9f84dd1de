/* gk-team-database.h: a team pool's PostgreSQL database, as a user's
 * program reaches it: its password kept in the keyring (never in a
 * setting or a file), merged into the connection string in memory only,
 * and a connection test that says in plain words what went wrong.
 *
 * A team database is named by its redacted target (gk_sql_redact_target:
 * postgresql://user@host:port/database), which is what settings keep and
 * the keyring item's attribute; the password is added when connecting.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-types.h"

G_BEGIN_DECLS

#define GK_TEAM_DATABASE_ERROR (gk_team_database_error_quark ())

typedef enum
{
  GK_TEAM_DATABASE_ERROR_INVALID,      /* not a connection URI of the accepted form */
  GK_TEAM_DATABASE_ERROR_UNREACHABLE,  /* no server answered (host, port, network, time-out) */
  GK_TEAM_DATABASE_ERROR_PASSWORD,     /* the password was refused, or one is needed */
  GK_TEAM_DATABASE_ERROR_NO_DATABASE,  /* the server has no database of that name */
  GK_TEAM_DATABASE_ERROR_REFUSED,      /* the server turned the user away (rules, rights, load) */
} GkTeamDatabaseError;

/* The keyring schema of team database passwords; its one attribute,
 * "target", is the redacted target. */
#define GK_TEAM_DATABASE_SCHEMA_NAME "io.github.geminikeys.GeminiKeys.DatabasePassword"

/* What a connection test found. */
typedef struct
{
  int schema_version;   /* 0: an empty database (connecting sets it up) */
  int app_version;      /* the schema version this program writes */
} GkTeamDatabaseProbe;

GQuark      gk_team_database_error_quark (void);

/* Whether @target is a connection URI fit to keep in a setting: a
 * postgresql:// (or postgres://) URI with neither password nor options,
 * i.e. equal to its redacted form. INVALID, with what to do, otherwise. */
gboolean    gk_team_database_check_target (const char     *target,
                                           GError        **error);

/* @target with @password added (percent-encoded, as the "password"
 * parameter of the URI), for libpq; @password NULL or "" gives a copy of
 * @target. Wipe the result with gk_crypto_wipe_string() once connected. */
char       *gk_team_database_merge_password (const char   *target,
                                             const char   *password);

/* The password stored for @target (any form: its redacted form is looked
 * up), or NULL and no error when none is. Wipe it with
 * gk_crypto_wipe_string(). @store prompts when the keyring must be unlocked
 * (its "prompting" signal). Errors: GK_SECRET_ERROR LOCKED, NO_SERVICE,
 * DISMISSED, FAILED. Blocks: call it in a worker thread. */
char       *gk_team_database_lookup_password (GkSecretStore *store,
                                              const char    *target,
                                              GCancellable  *cancellable,
                                              GError       **error);
/* Stores @password for @target, replacing the one stored before. */
gboolean    gk_team_database_store_password  (GkSecretStore *store,
                                              const char    *target,
                                              const char    *password,
                                              GCancellable  *cancellable,
                                              GError       **error);
/* Removes the password stored for @target (none stored is no error). */
gboolean    gk_team_database_forget_password (GkSecretStore *store,
                                              const char    *target,
                                              GCancellable  *cancellable,
                                              GError       **error);

/* Connects to @target with @password (NULL: none, or what libpq finds in
 * ~/.pgpass), reads the schema version and disconnects; changes nothing.
 * On failure the error is GK_TEAM_DATABASE_ERROR_* in plain words, the
 * server's own message after them. Blocks for up to the connect time-out. */
gboolean    gk_team_database_probe (const char           *target,
                                    const char           *password,
                                    GkTeamDatabaseProbe  *probe,
                                    GError              **error);

/* Opens and migrates the database at @target with @password: first the
 * probe (so a failure reads as above, and a newer schema is
 * GK_DATABASE_ERROR_TOO_NEW), then gk_database_open() on the merged URI,
 * which is wiped afterwards (the database keeps its own copy to reconnect:
 * show it only redacted). */
GkDatabase *gk_team_database_open (const char    *target,
                                   const char    *password,
                                   GkClock       *clock,
                                   GError       **error);

G_END_DECLS
