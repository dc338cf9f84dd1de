/* gk-sql.h: the store interface — one SQL connection behind a small driver
 * table, so the core runs on a local SQLite file (the default) or on a shared
 * PostgreSQL database (a team pool) with the same code.
 *
 * The calls mirror SQLite's C API, which the core was written against:
 * prepare once, bind, step through the rows, reset. The SQL the core passes
 * is the portable subset both engines accept; placeholders are "?" or "?N"
 * (the PostgreSQL driver rewrites them to "$N"). Where the engines differ
 * (DDL, a few functions) the caller asks gk_sql_get_dialect().
 *
 * A connection is not thread-safe: GkDatabase serialises its use.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _GkSql     GkSql;       /* one connection */
typedef struct _GkSqlStmt GkSqlStmt;   /* one prepared statement */

typedef enum
{
  GK_SQL_DIALECT_SQLITE,
  GK_SQL_DIALECT_POSTGRESQL,
} GkSqlDialect;

/* gk_sql_step() results. */
typedef enum
{
  GK_SQL_ROW,    /* a row is ready: read it with gk_sql_column_*() */
  GK_SQL_DONE,   /* the statement ran to completion */
  GK_SQL_ERROR,  /* see gk_sql_errcode() / gk_sql_errmsg() */
} GkSqlStep;

/* Error classes, the same for every driver (GkDatabase maps them to
 * GkDatabaseError). */
typedef enum
{
  GK_SQL_OK,
  GK_SQL_ERR_BUSY,        /* lock wait ran out; retry later */
  GK_SQL_ERR_CONSTRAINT,  /* unique, check, foreign key or trigger refusal */
  GK_SQL_ERR_CORRUPT,     /* not a database / integrity failure */
  GK_SQL_ERR_READ_ONLY,
  GK_SQL_ERR_FULL,
  GK_SQL_ERR_CONNECTION,  /* the server went away or cannot be reached */
  GK_SQL_ERR_OTHER,
} GkSqlErr;

/* Column value types (gk_sql_column_type). */
typedef enum
{
  GK_SQL_NULL,
  GK_SQL_INTEGER,
  GK_SQL_FLOAT,
  GK_SQL_TEXT,
  GK_SQL_BLOB,
} GkSqlType;

/* What a driver implements. Indices of bind and column calls are those of
 * SQLite: parameters from 1, columns from 0. */
typedef struct
{
  const char   *name;          /* "sqlite", "postgresql" */
  GkSqlDialect  dialect;

  /* @target: a file path (sqlite) or a connection URI (postgresql). Returns
   * NULL with *errcode and *errmsg (newly allocated, no secrets in it) set. */
  GkSql       *(*open)            (const char *target, GkSqlErr *errcode, char **errmsg);
  void         (*close)           (GkSql *sql);

  GkSqlStmt   *(*prepare)         (GkSql *sql, const char *text);   /* NULL on error */
  void         (*finalize)        (GkSqlStmt *stmt);
  void         (*reset)           (GkSqlStmt *stmt);   /* also clears the bindings */
  int          (*bind_parameter_count) (GkSqlStmt *stmt);

  void         (*bind_null)       (GkSqlStmt *stmt, int i);
  void         (*bind_int64)      (GkSqlStmt *stmt, int i, gint64 value);
  void         (*bind_double)     (GkSqlStmt *stmt, int i, double value);
  /* Copies @text; @len -1 means NUL-terminated. */
  void         (*bind_text)       (GkSqlStmt *stmt, int i, const char *text, gssize len);
  void         (*bind_blob)       (GkSqlStmt *stmt, int i, gconstpointer data, gsize len);

  GkSqlStep    (*step)            (GkSqlStmt *stmt);
  int          (*column_count)    (GkSqlStmt *stmt);
  GkSqlType    (*column_type)     (GkSqlStmt *stmt, int col);
  gint64       (*column_int64)    (GkSqlStmt *stmt, int col);
  double       (*column_double)   (GkSqlStmt *stmt, int col);
  /* Valid until the next step, reset or finalize; NULL for SQL NULL. */
  const char  *(*column_text)     (GkSqlStmt *stmt, int col);
  gconstpointer (*column_blob)    (GkSqlStmt *stmt, int col);
  gsize        (*column_bytes)    (GkSqlStmt *stmt, int col);

  /* Runs one or more statements without results. */
  gboolean     (*exec)            (GkSql *sql, const char *text);
  /* Rows changed by the last INSERT, UPDATE or DELETE. */
  gint64       (*changes)         (GkSql *sql);
  /* TRUE inside BEGIN … COMMIT. */
  gboolean     (*in_transaction)  (GkSql *sql);
  /* The last error of the connection (or of its last statement). */
  GkSqlErr     (*errcode)         (GkSql *sql);
  const char  *(*errmsg)          (GkSql *sql);
} GkSqlDriver;

/* The driver for @target: "postgresql://…" or "postgres://…" (and the
 * key=value form starting with "host=" or "dbname=") selects PostgreSQL,
 * anything else is an SQLite file path. */
const GkSqlDriver *gk_sql_driver_for       (const char *target);
gboolean           gk_sql_target_is_remote (const char *target);

extern const GkSqlDriver gk_sql_sqlite_driver;
extern const GkSqlDriver gk_sql_postgresql_driver;

/* Every connection begins with its driver pointer, so the wrappers below
 * dispatch without knowing the driver's structs. */
struct _GkSqlBase { const GkSqlDriver *driver; };
struct _GkSqlStmtBase { const GkSqlDriver *driver; GkSql *sql; };

#define GK_SQL_DRIVER(sql)  (((const struct _GkSqlBase *) (sql))->driver)
#define GK_SQL_STMT_DRIVER(stmt) (((const struct _GkSqlStmtBase *) (stmt))->driver)
#define GK_SQL_STMT_CONNECTION(stmt) (((const struct _GkSqlStmtBase *) (stmt))->sql)

GkSql       *gk_sql_open         (const char *target, GkSqlErr *errcode, char **errmsg);
void         gk_sql_close        (GkSql *sql);
GkSqlDialect gk_sql_get_dialect  (GkSql *sql);
GkSqlStmt   *gk_sql_prepare      (GkSql *sql, const char *text);
void         gk_sql_finalize     (GkSqlStmt *stmt);
gboolean     gk_sql_exec         (GkSql *sql, const char *text);
gint64       gk_sql_changes      (GkSql *sql);
gboolean     gk_sql_in_transaction (GkSql *sql);
GkSqlErr     gk_sql_errcode      (GkSql *sql);
const char  *gk_sql_errmsg       (GkSql *sql);

void         gk_sql_reset        (GkSqlStmt *stmt);
int          gk_sql_bind_parameter_count (GkSqlStmt *stmt);
void         gk_sql_bind_null    (GkSqlStmt *stmt, int i);
void         gk_sql_bind_int64   (GkSqlStmt *stmt, int i, gint64 value);
void         gk_sql_bind_double  (GkSqlStmt *stmt, int i, double value);
void         gk_sql_bind_text    (GkSqlStmt *stmt, int i, const char *text, gssize len);
void         gk_sql_bind_blob    (GkSqlStmt *stmt, int i, gconstpointer data, gsize len);
GkSqlStep    gk_sql_step         (GkSqlStmt *stmt);
int          gk_sql_column_count (GkSqlStmt *stmt);
GkSqlType    gk_sql_column_type  (GkSqlStmt *stmt, int col);
gint64       gk_sql_column_int64 (GkSqlStmt *stmt, int col);
double       gk_sql_column_double (GkSqlStmt *stmt, int col);
const char  *gk_sql_column_text  (GkSqlStmt *stmt, int col);
gconstpointer gk_sql_column_blob (GkSqlStmt *stmt, int col);
gsize        gk_sql_column_bytes (GkSqlStmt *stmt, int col);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GkSqlStmt, gk_sql_finalize)

G_END_DECLS
