/* gk-spend.h: what the pool spends today and this month, and its budget.
 *
 * "Today" and "this month" are the daily and monthly quota windows in the
 * reset time zone: the month a key's budget counts. This month's figures
 * are the keys' budget counters (month_cost_usd); today's come from the
 * 15-minute rollup (and the rows not folded into it yet).
 *
 * A budget for the whole pool (a setting) takes every key out of service
 * while this month's cost of all keys, deleted ones included, has reached
 * it (gk_pool_select() fails with GK_POOL_ERROR_BUDGET_SPENT).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-types.h"

G_BEGIN_DECLS

/* Budget notifications: at this share of a budget, then at 100%. */
#define GK_BUDGET_WARNING_PERCENT 80.0

typedef struct
{
  gint64  key_id;
  char   *key_name;
  double  today_usd;
  double  month_usd;
  double  budget_usd;   /* < 0: none */
} GkKeySpend;

typedef struct
{
  gint64     day_start;        /* UTC seconds: today's window in the reset time zone */
  gint64     month_start;
  double     today_usd;        /* every key, deleted ones included */
  double     month_usd;
  double     pool_budget_usd;  /* < 0: none */
  GPtrArray *keys;             /* GkKeySpend of the keys not deleted, most spent this month first */
} GkSpend;

void      gk_spend_free             (GkSpend     *spend);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GkSpend, gk_spend_free)

/* Today's and this month's spend, in total and per key. */
GkSpend  *gk_spend_read             (GkDatabase  *db,
                                     GError     **error);
/* This month's cost of every key, deleted ones included. */
gboolean  gk_spend_month_total      (GkDatabase  *db,
                                     double      *total,
                                     GError     **error);
/* The pool's monthly budget in USD; < 0 when none is set. */
double    gk_spend_get_pool_budget  (GkDatabase  *db);
/* The setting's text for @usd: whole cents, the same in every locale, or
 * "" (no budget) when @usd < 0. */
void      gk_spend_format_budget    (double       usd,
                                     char         text[G_ASCII_DTOSTR_BUF_SIZE]);
/* @usd < 0 removes the budget; 0 or more sets it. */
gboolean  gk_spend_set_pool_budget  (GkDatabase  *db,
                                     double       usd,
                                     GError     **error);
/* The share of @budget that @spent is, in percent (0 when no budget). */
double    gk_spend_percent          (double       spent,
                                     double       budget);

G_END_DECLS
