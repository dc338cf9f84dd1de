/* pg-test-util.c: what the PostgreSQL tests share.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "pg-test-util.h"

GkSql *
pg_test_open (const char *uri)
{
  GkSqlErr code = GK_SQL_ERR_OTHER;
  g_autofree char *message = NULL;
  GkSql *sql = pg->open (uri, &code, &message);

  if (sql == NULL)
    g_error ("cannot connect: %s", message);
  g_assert_cmpint (code, ==, GK_SQL_OK);
  return sql;
}

GkSqlStmt *
pg_test_prepare (GkSql      *sql,
                 const char *text)
{
  GkSqlStmt *stmt = pg->prepare (sql, text);

  if (stmt == NULL)
    g_error ("cannot prepare “%s”: %s", text, pg->errmsg (sql));
  return stmt;
}

void
pg_test_exec (GkSql      *sql,
              const char *text)
{
  if (!pg->exec (sql, text))
    g_error ("“%s” failed: %s", text, pg->errmsg (sql));
}
