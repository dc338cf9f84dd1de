/* gk-sql-sqlite.c: the store interface over a local SQLite file, a thin
 * layer over the sqlite3 calls it mirrors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include "gk-sql-sqlite.h"

/* How long a statement waits for another process's lock before BUSY. */
#define BUSY_TIMEOUT_MS 10000

typedef struct
{
  struct _GkSqlBase base;
  sqlite3          *db;
} SqliteConnection;

typedef struct
{
  struct _GkSqlStmtBase base;
  sqlite3_stmt         *stmt;
} SqliteStatement;

#define DB(sql)     (((SqliteConnection *) (sql))->db)
#define STMT(stmt)  (((SqliteStatement *) (stmt))->stmt)

static GkSqlErr
err_for_rc (int rc)
{
  switch (rc & 0xff)
    {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
      return GK_SQL_OK;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return GK_SQL_ERR_CORRUPT;
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return GK_SQL_ERR_READ_ONLY;
    case SQLITE_FULL:
      return GK_SQL_ERR_FULL;
    case SQLITE_IOERR:
      /* A write past RLIMIT_FSIZE or a full disk surfaces as an I/O error. */
      return (rc == SQLITE_IOERR_WRITE || rc == SQLITE_IOERR_FSYNC) ? GK_SQL_ERR_FULL
                                                                    : GK_SQL_ERR_OTHER;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return GK_SQL_ERR_BUSY;
    case SQLITE_CONSTRAINT:
      return GK_SQL_ERR_CONSTRAINT;
    case SQLITE_CANTOPEN:
      /* The file cannot be reached, as a server that does not answer. */
      return GK_SQL_ERR_CONNECTION;
    default:
      return GK_SQL_ERR_OTHER;
    }
}

static GkSql *
sqlite_open (const char  *target,
             GkSqlErr    *errcode,
             char       **errmsg)
{
  static gsize configured = 0;
  SqliteConnection *conn;
  sqlite3 *db = NULL;
  int rc;

  /* SQLite's memory statistics take a global mutex for every allocation,
   * some forty per recorded request; nothing reads them. Set before SQLite
   * starts (refused harmlessly if something else in the process started
   * it first). */
  if (g_once_init_enter (&configured))
    {
      sqlite3_config (SQLITE_CONFIG_MEMSTATUS, 0);
      g_once_init_leave (&configured, 1);
    }

  /* GkDatabase serialises every use of a connection with its own lock, so
   * SQLite's per-call mutex would only be taken and released again. */
  rc = sqlite3_open_v2 (target, &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        gk_sql_sqlite_vfs_name ());
  if (rc != SQLITE_OK)
    {
      *errcode = err_for_rc (db != NULL ? sqlite3_extended_errcode (db) : rc);
      *errmsg = g_strdup (db != NULL ? sqlite3_errmsg (db) : sqlite3_errstr (rc));
      sqlite3_close_v2 (db);
      return NULL;
    }
  sqlite3_extended_result_codes (db, 1);
  sqlite3_busy_timeout (db, BUSY_TIMEOUT_MS);

  conn = g_new0 (SqliteConnection, 1);
  conn->base.driver = &gk_sql_sqlite_driver;
  conn->db = db;
  *errcode = GK_SQL_OK;
  return (GkSql *) conn;
}

static void
sqlite_close (GkSql *sql)
{
  sqlite3_close_v2 (DB (sql));
  g_free (sql);
}

static GkSqlStmt *
sqlite_prepare (GkSql      *sql,
                const char *text)
{
  SqliteStatement *stmt;
  sqlite3_stmt *handle = NULL;

  /* The core prepares each statement once and keeps it. */
  if (sqlite3_prepare_v3 (DB (sql), text, -1, SQLITE_PREPARE_PERSISTENT, &handle, NULL)
        != SQLITE_OK
      || handle == NULL)
    return NULL;
  stmt = g_new (SqliteStatement, 1);
  stmt->base.driver = &gk_sql_sqlite_driver;
  stmt->base.sql = sql;
  stmt->stmt = handle;
  return (GkSqlStmt *) stmt;
}

static void
sqlite_finalize (GkSqlStmt *stmt)
{
  sqlite3_finalize (STMT (stmt));
  g_free (stmt);
}

static void
sqlite_reset (GkSqlStmt *stmt)
{
  /* sqlite3_reset() repeats the last step's error, which the connection
   * keeps for errcode/errmsg: nothing to report here. */
  sqlite3_reset (STMT (stmt));
  sqlite3_clear_bindings (STMT (stmt));
}

static int
sqlite_bind_parameter_count (GkSqlStmt *stmt)
{
  return sqlite3_bind_parameter_count (STMT (stmt));
}

static void
sqlite_bind_null (GkSqlStmt *stmt,
                  int        i)
{
  sqlite3_bind_null (STMT (stmt), i);
}

static void
sqlite_bind_int64 (GkSqlStmt *stmt,
                   int        i,
                   gint64     value)
{
  sqlite3_bind_int64 (STMT (stmt), i, value);
}

static void
sqlite_bind_double (GkSqlStmt *stmt,
                    int        i,
                    double     value)
{
  sqlite3_bind_double (STMT (stmt), i, value);
}

static void
sqlite_bind_text (GkSqlStmt  *stmt,
                  int         i,
                  const char *text,
                  gssize      len)
{
  sqlite3_bind_text (STMT (stmt), i, text, len < 0 ? -1 : (int) MIN (len, G_MAXINT),
                     SQLITE_TRANSIENT);
}

static void
sqlite_bind_blob (GkSqlStmt     *stmt,
                  int            i,
                  gconstpointer  data,
                  gsize          len)
{
  sqlite3_bind_blob64 (STMT (stmt), i, data, len, SQLITE_TRANSIENT);
}

static GkSqlStep
sqlite_step (GkSqlStmt *stmt)
{
  switch (sqlite3_step (STMT (stmt)))
    {
    case SQLITE_ROW:
      return GK_SQL_ROW;
    case SQLITE_DONE:
      return GK_SQL_DONE;
    default:
      return GK_SQL_ERROR;
    }
}

static int
sqlite_column_count (GkSqlStmt *stmt)
{
  return sqlite3_column_count (STMT (stmt));
}

static GkSqlType
sqlite_column_type (GkSqlStmt *stmt,
                    int        col)
{
  switch (sqlite3_column_type (STMT (stmt), col))
    {
    case SQLITE_INTEGER:
      return GK_SQL_INTEGER;
    case SQLITE_FLOAT:
      return GK_SQL_FLOAT;
    case SQLITE_TEXT:
      return GK_SQL_TEXT;
    case SQLITE_BLOB:
      return GK_SQL_BLOB;
    default:
      return GK_SQL_NULL;
    }
}

static gint64
sqlite_column_int64 (GkSqlStmt *stmt,
                     int        col)
{
  return sqlite3_column_int64 (STMT (stmt), col);
}

static double
sqlite_column_double (GkSqlStmt *stmt,
                      int        col)
{
  return sqlite3_column_double (STMT (stmt), col);
}

static const char *
sqlite_column_text (GkSqlStmt *stmt,
                    int        col)
{
  return (const char *) sqlite3_column_text (STMT (stmt), col);
}

static gconstpointer
sqlite_column_blob (GkSqlStmt *stmt,
                    int        col)
{
  return sqlite3_column_blob (STMT (stmt), col);
}

static gsize
sqlite_column_bytes (GkSqlStmt *stmt,
                     int        col)
{
  return (gsize) sqlite3_column_bytes (STMT (stmt), col);
}

static gboolean
sqlite_exec (GkSql      *sql,
             const char *text)
{
  return sqlite3_exec (DB (sql), text, NULL, NULL, NULL) == SQLITE_OK;
}

static gint64
sqlite_changes (GkSql *sql)
{
  return sqlite3_changes64 (DB (sql));
}

static gboolean
sqlite_in_transaction (GkSql *sql)
{
  return !sqlite3_get_autocommit (DB (sql));
}

static GkSqlErr
sqlite_errcode (GkSql *sql)
{
  return err_for_rc (sqlite3_extended_errcode (DB (sql)));
}

static const char *
sqlite_errmsg (GkSql *sql)
{
  return sqlite3_errmsg (DB (sql));
}

const GkSqlDriver gk_sql_sqlite_driver = {
  .name = "sqlite",
  .dialect = GK_SQL_DIALECT_SQLITE,
  .open = sqlite_open,
  .close = sqlite_close,
  .prepare = sqlite_prepare,
  .finalize = sqlite_finalize,
  .reset = sqlite_reset,
  .bind_parameter_count = sqlite_bind_parameter_count,
  .bind_null = sqlite_bind_null,
  .bind_int64 = sqlite_bind_int64,
  .bind_double = sqlite_bind_double,
  .bind_text = sqlite_bind_text,
  .bind_blob = sqlite_bind_blob,
  .step = sqlite_step,
  .column_count = sqlite_column_count,
  .column_type = sqlite_column_type,
  .column_int64 = sqlite_column_int64,
  .column_double = sqlite_column_double,
  .column_text = sqlite_column_text,
  .column_blob = sqlite_column_blob,
  .column_bytes = sqlite_column_bytes,
  .exec = sqlite_exec,
  .changes = sqlite_changes,
  .in_transaction = sqlite_in_transaction,
  .errcode = sqlite_errcode,
  .errmsg = sqlite_errmsg,
};

sqlite3 *
gk_sql_sqlite_get_handle (GkSql *sql)
{
  g_return_val_if_fail (sql != NULL && GK_SQL_DRIVER (sql) == &gk_sql_sqlite_driver, NULL);
  return DB (sql);
}
