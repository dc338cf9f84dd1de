/* gk-database.h: the SQLite database shared by the GUI, the CLI and the gateway.
 *
 * One GkDatabase wraps one connection. Every public function is safe to call
 * from any thread (calls are serialised by a recursive mutex); the GUI calls
 * them from worker threads only. Several processes may use one file at once:
 * WAL, busy timeout, BEGIN IMMEDIATE for writes.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-types.h"

G_BEGIN_DECLS

#define GK_DATABASE_ERROR (gk_database_error_quark ())

typedef enum
{
  GK_DATABASE_ERROR_OPEN,       /* the file cannot be opened or created */
  GK_DATABASE_ERROR_CORRUPT,    /* not a database, or integrity failure */
  GK_DATABASE_ERROR_READ_ONLY,  /* the file or disk refuses writes */
  GK_DATABASE_ERROR_FULL,       /* disk or file size limit reached */
  GK_DATABASE_ERROR_BUSY,       /* another process held a lock too long */
  GK_DATABASE_ERROR_TOO_NEW,    /* written by a newer Gemini Keys */
  GK_DATABASE_ERROR_FAILED,     /* any other SQLite error */
  GK_DATABASE_ERROR_UNREACHABLE, /* the database server went away; the next call reconnects */
} GkDatabaseError;

/* Setting names (the `settings` table). */
#define GK_SETTING_ROTATION_THRESHOLD "rotation_threshold_percent" /* default "5" */
#define GK_SETTING_RESET_TIMEZONE     "reset_timezone"     /* default "America/Los_Angeles" */
#define GK_SETTING_NOTIFICATIONS      "notifications_enabled"      /* default "1" */
#define GK_SETTING_GATEWAY_ENABLED    "gateway_enabled"            /* default "0" */
#define GK_SETTING_GATEWAY_PORT       "gateway_port"               /* default "8765" */
#define GK_SETTING_USAGE_RETENTION_DAYS "usage_retention_days"     /* default "0": keep all */
#define GK_SETTING_POOL_BUDGET        "pool_monthly_budget_usd"    /* unset or "": none */

#define GK_DEFAULT_RESET_TIMEZONE "America/Los_Angeles"
#define GK_DEFAULT_GATEWAY_PORT   8765
#define GK_DEFAULT_ROTATION_THRESHOLD 5.0

#define GK_TYPE_DATABASE (gk_database_get_type ())
G_DECLARE_FINAL_TYPE (GkDatabase, gk_database, GK, DATABASE, GObject)

GQuark      gk_database_error_quark        (void);

/* $GEMINI_KEYS_DATA_DIR/keys.db, else $XDG_DATA_HOME/gemini-keys/keys.db. */
char       *gk_database_default_path       (void);
/* The database every program opens unless told otherwise:
 * $GEMINI_KEYS_DATABASE when set and not empty (a postgresql:// or
 * postgres:// connection URI, or a file path), else
 * gk_database_default_path(). A connection string is a secret: show it
 * only through gk_database_redact_target(). */
char       *gk_database_default_target     (void);
/* TRUE when @target names a PostgreSQL server rather than a file. */
gboolean    gk_database_target_is_remote   (const char   *target);
/* @target fit to show or log: a connection string reduced to
 * scheme://user@host:port/database, a file path unchanged. */
char       *gk_database_redact_target      (const char   *target);
/* TRUE when the connection string @target holds a password (in any of
 * libpq's spellings). FALSE for a file path. */
gboolean    gk_database_target_has_password (const char  *target);

/* Opens (creating the file 0600 and its directory 0700) without migrating. */
GkDatabase *gk_database_new                (const char   *path,
                                            GkClock      *clock,
                                            GError      **error);
/* Applies pending migrations in one transaction. @created_tables, if not
 * NULL, receives the names of the tables this call created (NULL-terminated). */
gboolean    gk_database_migrate            (GkDatabase   *self,
                                            char       ***created_tables,
                                            GError      **error);
/* gk_database_new() + gk_database_migrate(). @clock may be NULL (system). */
GkDatabase *gk_database_open               (const char   *path,
                                            GkClock      *clock,
                                            GError      **error);

/* The target the database was opened with: a file path, or a connection
 * string (a secret: use gk_database_get_display_name() to show it). */
const char *gk_database_get_path           (GkDatabase   *self);
/* TRUE on a PostgreSQL server, FALSE on an SQLite file. */
gboolean    gk_database_is_remote          (GkDatabase   *self);
/* The file path, or the connection string redacted. */
char       *gk_database_get_display_name   (GkDatabase   *self);
/* TRUE when @path names the database file or its -wal, -shm or -journal
 * file (even through another name): writing there outside SQLite would
 * destroy the database. Always FALSE on a PostgreSQL server. */
gboolean    gk_database_is_own_file        (GkDatabase   *self,
                                            const char   *path);
GkClock    *gk_database_get_clock          (GkDatabase   *self);
gint64      gk_database_now                (GkDatabase   *self);
/* The database's uuid (meta "uuid"), the master key's keyring attribute. */
const char *gk_database_get_uuid           (GkDatabase   *self);
int         gk_database_get_schema_version (GkDatabase   *self);

/* Changes when another connection (process) commits; cheap, for polling. */
gint64      gk_database_get_data_version   (GkDatabase   *self);

/* On a server database, where there is no data_version, other processes'
 * changes to keys, quotas and settings are watched through a connection of
 * their own (LISTEN): a source to attach to a main context, which makes
 * gk_database_get_data_version() move when a change is notified, when the
 * watch connects again after a break (notices may have been lost), and at
 * the latest every GK_DATABASE_REFRESH_S seconds (charges are not
 * notified). Without it, a server's data_version never moves. NULL for an
 * SQLite file, whose data_version needs no watching. */
#define GK_DATABASE_REFRESH_S 5
GSource    *gk_database_watch_source_new   (GkDatabase   *self);

/* Returns a newly allocated value or NULL when unset. */
char       *gk_database_get_setting        (GkDatabase   *self,
                                            const char   *key);
gboolean    gk_database_set_setting        (GkDatabase   *self,
                                            const char   *key,
                                            const char   *value,
                                            GError      **error);
int         gk_database_get_setting_int    (GkDatabase   *self,
                                            const char   *key,
                                            int           default_value);
double      gk_database_get_rotation_threshold (GkDatabase *self);
/* The reset time zone (setting, default America/Los_Angeles). */
GTimeZone  *gk_database_get_reset_timezone (GkDatabase   *self);

char       *gk_database_get_meta           (GkDatabase   *self,
                                            const char   *key);
gboolean    gk_database_set_meta           (GkDatabase   *self,
                                            const char   *key,
                                            const char   *value,
                                            GError      **error);
/* TRUE when at least one key row holds ciphertext. */
gboolean    gk_database_has_ciphertext     (GkDatabase   *self,
                                            GError      **error);
/* Stops reading the file through mmap on this connection. For one long
 * sequential read (an export): mapped pages count as the process's
 * resident memory, so a scan of the whole file would grow it by the file's
 * size; read() through SQLite's small page cache keeps it constant. */
void        gk_database_stop_mmap          (GkDatabase   *self);
/* PRAGMA integrity_check == "ok". */
gboolean    gk_database_check_integrity    (GkDatabase   *self,
                                            GError      **error);

/* One table of gk_database_copy()'s report. */
typedef struct
{
  char   *name;
  gint64  rows;
} GkDatabaseCopyTable;

void        gk_database_copy_table_free    (GkDatabaseCopyTable *table);
/* Copies an SQLite pool (history included) into an empty PostgreSQL
 * database, both migrated, and verifies it by row counts and sums
 * (gk-database-copy.c). Returns the tables copied, or NULL. */
GPtrArray  *gk_database_copy               (GkDatabase   *from,
                                            GkDatabase   *to,
                                            GError      **error);

G_END_DECLS
