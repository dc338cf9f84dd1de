/* pg-test-util.c: what the PostgreSQL tests share.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <libpq-fe.h>
#include <string.h>

#include "gk-sql-postgresql.h"
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

void
pg_test_split_uri (char **target,
                   char **password)
{
  const char *uri = g_getenv ("GK_TEST_PG_URI");
  PQconninfoOption *options;

  g_assert_nonnull (uri);
  options = PQconninfoParse (uri, NULL);
  g_assert_nonnull (options);
  *password = NULL;
  for (PQconninfoOption *o = options; o->keyword != NULL; o++)
    if (g_str_equal (o->keyword, "password"))
      *password = g_strdup (o->val);
  PQconninfoFree (options);
  g_assert_nonnull (*password);
  *target = gk_sql_redact_target (uri);
  g_assert_null (strstr (*target, *password));
}
