/* gk-sql.c: the store interface's dispatch — each call goes to the driver
 * whose pointer begins the connection or statement (see gk-sql.h).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include "gk-sql.h"

gboolean
gk_sql_target_is_remote (const char *target)
{
  g_return_val_if_fail (target != NULL, FALSE);

  return g_str_has_prefix (target, "postgresql://") || g_str_has_prefix (target, "postgres://")
         || g_str_has_prefix (target, "host=") || g_str_has_prefix (target, "dbname=");
}

const GkSqlDriver *
gk_sql_driver_for (const char *target)
{
  g_return_val_if_fail (target != NULL, NULL);

  return gk_sql_target_is_remote (target) ? &gk_sql_postgresql_driver : &gk_sql_sqlite_driver;
}

GkSql *
gk_sql_open (const char  *target,
             GkSqlErr    *errcode,
             char       **errmsg)
{
  g_return_val_if_fail (target != NULL, NULL);
  g_return_val_if_fail (errcode != NULL && errmsg != NULL, NULL);

  *errcode = GK_SQL_OK;
  *errmsg = NULL;
  return gk_sql_driver_for (target)->open (target, errcode, errmsg);
}

void
gk_sql_close (GkSql *sql)
{
  if (sql != NULL)
    GK_SQL_DRIVER (sql)->close (sql);
}

GkSqlDialect
gk_sql_get_dialect (GkSql *sql)
{
  return GK_SQL_DRIVER (sql)->dialect;
}

GkSqlStmt *
gk_sql_prepare (GkSql      *sql,
                const char *text)
{
  return GK_SQL_DRIVER (sql)->prepare (sql, text);
}

void
gk_sql_finalize (GkSqlStmt *stmt)
{
  if (stmt != NULL)
    GK_SQL_STMT_DRIVER (stmt)->finalize (stmt);
}

gboolean
gk_sql_exec (GkSql      *sql,
             const char *text)
{
  return GK_SQL_DRIVER (sql)->exec (sql, text);
}

gint64
gk_sql_changes (GkSql *sql)
{
  return GK_SQL_DRIVER (sql)->changes (sql);
}

gboolean
gk_sql_in_transaction (GkSql *sql)
{
  return GK_SQL_DRIVER (sql)->in_transaction (sql);
}

GkSqlErr
gk_sql_errcode (GkSql *sql)
{
  return GK_SQL_DRIVER (sql)->errcode (sql);
}

const char *
gk_sql_errmsg (GkSql *sql)
{
  return GK_SQL_DRIVER (sql)->errmsg (sql);
}

void
gk_sql_reset (GkSqlStmt *stmt)
{
  GK_SQL_STMT_DRIVER (stmt)->reset (stmt);
}

int
gk_sql_bind_parameter_count (GkSqlStmt *stmt)
{
  return GK_SQL_STMT_DRIVER (stmt)->bind_parameter_count (stmt);
}

void
gk_sql_bind_null (GkSqlStmt *stmt,
                  int        i)
{
  GK_SQL_STMT_DRIVER (stmt)->bind_null (stmt, i);
}

void
gk_sql_bind_int64 (GkSqlStmt *stmt,
                   int        i,
                   gint64     value)
{
  GK_SQL_STMT_DRIVER (stmt)->bind_int64 (stmt, i, value);
}

void
gk_sql_bind_double (GkSqlStmt *stmt,
                    int        i,
                    double     value)
{
  GK_SQL_STMT_DRIVER (stmt)->bind_double (stmt, i, value);
}

void
gk_sql_bind_text (GkSqlStmt  *stmt,
                  int         i,
                  const char *text,
                  gssize      len)
{
  GK_SQL_STMT_DRIVER (stmt)->bind_text (stmt, i, text, len);
}

void
gk_sql_bind_blob (GkSqlStmt     *stmt,
                  int            i,
                  gconstpointer  data,
                  gsize          len)
{
  GK_SQL_STMT_DRIVER (stmt)->bind_blob (stmt, i, data, len);
}

GkSqlStep
gk_sql_step (GkSqlStmt *stmt)
{
  return GK_SQL_STMT_DRIVER (stmt)->step (stmt);
}

int
gk_sql_column_count (GkSqlStmt *stmt)
{
  return GK_SQL_STMT_DRIVER (stmt)->column_count (stmt);
}

GkSqlType
gk_sql_column_type (GkSqlStmt *stmt,
                    int        col)
{
  return GK_SQL_STMT_DRIVER (stmt)->column_type (stmt, col);
}

gint64
gk_sql_column_int64 (GkSqlStmt *stmt,
                     int        col)
{
  return GK_SQL_STMT_DRIVER (stmt)->column_int64 (stmt, col);
}

double
gk_sql_column_double (GkSqlStmt *stmt,
                      int        col)
{
  return GK_SQL_STMT_DRIVER (stmt)->column_double (stmt, col);
}

const char *
gk_sql_column_text (GkSqlStmt *stmt,
                    int        col)
{
  return GK_SQL_STMT_DRIVER (stmt)->column_text (stmt, col);
}

gconstpointer
gk_sql_column_blob (GkSqlStmt *stmt,
                    int        col)
{
  return GK_SQL_STMT_DRIVER (stmt)->column_blob (stmt, col);
}

gsize
gk_sql_column_bytes (GkSqlStmt *stmt,
                     int        col)
{
  return GK_SQL_STMT_DRIVER (stmt)->column_bytes (stmt, col);
}
