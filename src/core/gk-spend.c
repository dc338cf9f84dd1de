/* gk-spend.c: today's and this month's spend, the pool's budget.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>

#include "gk-database-private.h"
#include "gk-quotas.h"
#include "gk-rollup.h"
#include "gk-spend.h"

static void
key_spend_free (GkKeySpend *key)
{
  g_free (key->key_name);
  g_free (key);
}

void
gk_spend_free (GkSpend *spend)
{
  if (spend == NULL)
    return;
  g_clear_pointer (&spend->keys, g_ptr_array_unref);
  g_free (spend);
}

double
gk_spend_get_pool_budget (GkDatabase *db)
{
  g_autofree char *value = gk_database_get_setting (db, GK_SETTING_POOL_BUDGET);
  char *end = NULL;
  double usd;

  if (value == NULL || *value == '\0')
    return -1.0;
  usd = g_ascii_strtod (value, &end);
  /* Nonsense is no budget rather than a pool out of service. */
  if (end == value || *end != '\0' || !isfinite (usd) || usd < 0)
    return -1.0;
  return usd;
}

void
gk_spend_format_budget (double usd,
                        char   text[G_ASCII_DTOSTR_BUF_SIZE])
{
  text[0] = '\0';
  if (usd >= 0)
    g_ascii_formatd (text, G_ASCII_DTOSTR_BUF_SIZE, "%.2f", usd);
}

gboolean
gk_spend_set_pool_budget (GkDatabase  *db,
                          double       usd,
                          GError     **error)
{
  char text[G_ASCII_DTOSTR_BUF_SIZE];

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);
  g_return_val_if_fail (isfinite (usd), FALSE);

  gk_spend_format_budget (usd, text);
  return gk_database_set_setting (db, GK_SETTING_POOL_BUDGET, text, error);
}

double
gk_spend_percent (double spent,
                  double budget)
{
  if (budget < 0)
    return 0;
  if (budget == 0)
    return 100.0;
  return spent * 100.0 / budget;
}

gboolean
gk_spend_month_total (GkDatabase  *db,
                      double      *total,
                      GError     **error)
{
  GkSqlStmt *stmt;
  gboolean ok = FALSE;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);

  if (!gk_quotas_reset_expired (db, error))
    return FALSE;
  gk_database_lock (db);
  stmt = gk_database_prepare (db, "SELECT coalesce (sum(month_cost_usd), 0.0) FROM gemini_api_keys",
                              error);
  if (stmt != NULL)
    {
      ok = gk_sql_step (stmt) == GK_SQL_ROW;
      if (ok)
        *total = gk_sql_column_double (stmt, 0);
      else
        gk_database_set_error (db, error, _("Cannot read the keys"));
      gk_sql_reset (stmt);
    }
  gk_database_unlock (db);
  return ok;
}

static int
compare_month_desc (gconstpointer a,
                    gconstpointer b)
{
  const GkKeySpend *x = *(const GkKeySpend **) a;
  const GkKeySpend *y = *(const GkKeySpend **) b;

  if (x->month_usd != y->month_usd)
    return x->month_usd > y->month_usd ? -1 : 1;
  return x->key_id < y->key_id ? -1 : x->key_id > y->key_id;
}

GkSpend *
gk_spend_read (GkDatabase  *db,
               GError     **error)
{
  g_autoptr(GkSpend) spend = g_new0 (GkSpend, 1);
  g_autoptr(GTimeZone) tz = NULL;
  g_autoptr(GHashTable) by_id = g_hash_table_new (g_int64_hash, g_int64_equal);
  g_autofree char *folded = NULL;
  GkSqlStmt *stmt;
  gint64 now;
  int rc;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);

  if (!gk_quotas_reset_expired (db, error))
    return NULL;

  tz = gk_database_get_reset_timezone (db);
  now = gk_database_now (db);
  spend->day_start = gk_quota_window_start (GK_QUOTA_DAILY, now, tz);
  spend->month_start = gk_quota_window_start (GK_QUOTA_MONTHLY, now, tz);
  spend->pool_budget_usd = gk_spend_get_pool_budget (db);
  spend->keys = g_ptr_array_new_with_free_func ((GDestroyNotify) key_spend_free);

  gk_database_lock (db);
  folded = gk_database_get_meta (db, GK_ROLLUP_META_MAX_ID);

  stmt = gk_database_prepare (db,
                              "SELECT id, name, month_cost_usd, monthly_budget_usd,"
                              " deleted_at IS NOT NULL FROM gemini_api_keys ORDER BY id",
                              error);
  if (stmt == NULL)
    goto fail;
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      double month = gk_sql_column_double (stmt, 2);
      GkKeySpend *key;

      spend->month_usd += month;
      if (gk_sql_column_int64 (stmt, 4))
        continue;
      key = g_new0 (GkKeySpend, 1);
      key->key_id = gk_sql_column_int64 (stmt, 0);
      key->key_name = g_strdup (gk_sql_column_text (stmt, 1));
      key->month_usd = month;
      key->budget_usd = gk_sql_column_type (stmt, 3) == GK_SQL_NULL
                          ? -1.0 : gk_sql_column_double (stmt, 3);
      g_ptr_array_add (spend->keys, key);
      g_hash_table_insert (by_id, &key->key_id, key);
    }
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    goto sql_error;

  /* Today: the 15-minute sums, plus the rows not folded into them yet. */
  stmt = gk_database_prepare (db,
                              "SELECT key_id, coalesce (sum(cost), 0.0) FROM ("
                              " SELECT key_id, cost_usd AS cost FROM usage_rollup_facet"
                              "  WHERE start >= ?1"
                              " UNION ALL"
                              " SELECT coalesce (key_id, 0), cost_usd FROM gemini_key_usage_log"
                              "  WHERE id > ?2 AND created_at >= ?1) AS today"
                              " GROUP BY key_id",
                              error);
  if (stmt == NULL)
    goto fail;
  gk_sql_bind_int64 (stmt, 1, spend->day_start);
  gk_sql_bind_int64 (stmt, 2, folded != NULL ? g_ascii_strtoll (folded, NULL, 10) : 0);
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      gint64 id = gk_sql_column_int64 (stmt, 0);
      double cost = gk_sql_column_double (stmt, 1);
      GkKeySpend *key = g_hash_table_lookup (by_id, &id);

      spend->today_usd += cost;
      if (key != NULL)
        key->today_usd = cost;
    }
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    goto sql_error;
  gk_database_unlock (db);

  g_ptr_array_sort (spend->keys, compare_month_desc);
  return g_steal_pointer (&spend);

sql_error:
  gk_database_set_error (db, error, _("Cannot read the spend"));
fail:
  gk_database_unlock (db);
  return NULL;
}
