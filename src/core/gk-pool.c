/* gk-pool.c: select_best_key, track_usage and rotate_key.
 *
 * Selection runs for every gateway request, so it works on an in-memory
 * snapshot of the keys and their quotas. The snapshot is reloaded when the
 * database's change stamp moves (another process committed, or a core
 * module changed keys); this pool's own charges are applied to it in place.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <math.h>

#include "gk-audit.h"
#include "gk-database-private.h"
#include "gk-outcome.h"
#include "gk-pool.h"
#include "gk-pricing.h"
#include "gk-quotas.h"
#include "gk-rollup.h"
#include "gk-spend.h"

/* A 429 without RetryInfo cools a key down this long; repeated 429s double
 * it, up to the next daily reset. */
#define DEFAULT_COOLDOWN_S 60
#define MAX_STRIKE_SHIFT   10
#define ERROR_MESSAGE_MAX  500
/* Every this many usage rows, the tracking process folds them into the
 * dashboard's running totals (about 1 ms). */
#define ROLLUP_INTERVAL    1024
/* While the server is out of reach, how often it is asked again. */
#define OFFLINE_RETRY_US   (G_USEC_PER_SEC / 2)

typedef struct
{
  gint64      id;
  char       *uuid;
  char       *name;
  char       *key_hint;
  char       *project;
  GkKeyStatus status;
  gint64      cooldown_until;
  int         priority;
  gboolean    is_default;
  gint64      last_used_at;
  double      budget;        /* < 0: none */
  double      month_cost;
  int         strikes;
  gint64      limit[GK_QUOTA_N_SLOTS];
  gint64      used[GK_QUOTA_N_SLOTS];
  GBytes     *ciphertext;   /* the encrypted key, or NULL; never the plaintext */
} PoolEntry;

struct _GkPool
{
  GObject     parent_instance;
  GkDatabase *db;
  GkPricing  *pricing;

  GMutex      mutex;        /* guards the snapshot */
  GArray     *entries;      /* PoolEntry */
  GHashTable *by_id;        /* id → index into entries */
  guint64     stamp;        /* the change stamp the snapshot reflects */
  gint64      next_due;     /* earliest reset_at or cooldown end in the snapshot */
  double      threshold;    /* percent */
  double      pool_budget;  /* USD a month for all keys together; < 0: none */
  double      deleted_cost; /* this month's cost of deleted keys */
  gint64      last_now;     /* to notice the clock going backwards */
  gint64      change_check_age; /* µs, see gk_pool_set_change_check_age() */
  gboolean    loaded;
  /* On a server shared with other gateways, whose charges this snapshot
   * does not see until it reloads. */
  gboolean    shared;
  gboolean    have_entries; /* a snapshot was loaded once (it may be stale) */
  gint64      offline_until; /* monotonic µs: the server is not asked before */
  /* Between gk_pool_batch_begin() and its end on an SQLite file: the
   * charges of the batch's rows so far (PendingCharge), written one UPDATE
   * per key (see pending_flush()). Touched only with the database lock. */
  gboolean    batching;
  GError     *batch_error;  /* a write of pending charges failed: no commit */
  GArray     *pending;
};

/* A key's charges in a batch: its requests, tokens and cost, and the time
 * of its last use. */
typedef struct
{
  gint64  key_id;
  gint64  requests;
  gint64  tokens;
  double  cost;
  gint64  last_used_at;
} PendingCharge;

G_DEFINE_FINAL_TYPE (GkPool, gk_pool, G_TYPE_OBJECT)
G_DEFINE_QUARK (gk-pool-error-quark, gk_pool_error)

static void
pool_entry_clear (gpointer data)
{
  PoolEntry *e = data;

  g_free (e->uuid);
  g_free (e->name);
  g_free (e->key_hint);
  g_free (e->project);
  g_clear_pointer (&e->ciphertext, g_bytes_unref);
}

static GArray *
entries_new (void)
{
  GArray *entries = g_array_new (FALSE, TRUE, sizeof (PoolEntry));

  g_array_set_clear_func (entries, pool_entry_clear);
  return entries;
}

void
gk_usage_record_init (GkUsageRecord *record)
{
  g_return_if_fail (record != NULL);
  memset (record, 0, sizeof *record);
  record->status = GK_USAGE_SUCCESS;
}

static void
gk_pool_finalize (GObject *object)
{
  GkPool *self = (GkPool *) object;

  g_clear_pointer (&self->entries, g_array_unref);
  g_clear_pointer (&self->by_id, g_hash_table_unref);
  g_clear_pointer (&self->pending, g_array_unref);
  g_clear_error (&self->batch_error);
  g_clear_object (&self->db);
  g_clear_object (&self->pricing);
  g_mutex_clear (&self->mutex);

  G_OBJECT_CLASS (gk_pool_parent_class)->finalize (object);
}

static void
gk_pool_class_init (GkPoolClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gk_pool_finalize;
}

static void
gk_pool_init (GkPool *self)
{
  g_mutex_init (&self->mutex);
  self->entries = entries_new ();
  self->by_id = g_hash_table_new (g_int64_hash, g_int64_equal);
  self->pending = g_array_new (FALSE, FALSE, sizeof (PendingCharge));
}

GkPool *
gk_pool_new (GkDatabase *db,
             GkPricing  *pricing)
{
  GkPool *self;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);
  g_return_val_if_fail (pricing == NULL || GK_IS_PRICING (pricing), NULL);

  self = g_object_new (GK_TYPE_POOL, NULL);
  self->db = g_object_ref (db);
  self->shared = gk_sql_get_dialect (gk_database_get_handle (db)) != GK_SQL_DIALECT_SQLITE;
  self->pricing = pricing ? g_object_ref (pricing) : gk_pricing_new_default ();
  return self;
}

GkDatabase *
gk_pool_get_database (GkPool *self)
{
  g_return_val_if_fail (GK_IS_POOL (self), NULL);
  return self->db;
}

GkPricing *
gk_pool_get_pricing (GkPool *self)
{
  g_return_val_if_fail (GK_IS_POOL (self), NULL);
  return self->pricing;
}

void
gk_pool_set_change_check_age (GkPool *self,
                              gint64  max_age_us)
{
  g_return_if_fail (GK_IS_POOL (self));
  g_return_if_fail (max_age_us >= 0);

  g_mutex_lock (&self->mutex);
  self->change_check_age = max_age_us;
  g_mutex_unlock (&self->mutex);
}

/* Snapshot */

static int
slot_index (const char *type,
            const char *unit)
{
  gboolean requests = g_strcmp0 (unit, "REQUESTS") == 0;

  if (g_strcmp0 (type, "MONTHLY") == 0)
    return requests ? -1 : GK_QUOTA_SLOT_MONTHLY_TOKENS;
  if (g_strcmp0 (type, "DAILY") == 0)
    return requests ? GK_QUOTA_SLOT_DAILY_REQUESTS : GK_QUOTA_SLOT_DAILY_TOKENS;
  if (g_strcmp0 (type, "PER_MINUTE") == 0)
    return requests ? GK_QUOTA_SLOT_MINUTE_REQUESTS : GK_QUOTA_SLOT_MINUTE_TOKENS;
  return -1;
}

static gboolean read_snapshot (GkPool  *self,
                               GError **error);

static PoolEntry *
entry_for (GkPool *self,
           gint64  id)
{
  gpointer index;

  if (!g_hash_table_lookup_extended (self->by_id, &id, NULL, &index))
    return NULL;
  return &g_array_index (self->entries, PoolEntry, GPOINTER_TO_UINT (index));
}

/* Called with the database lock and the pool mutex held. On failure the
 * previous snapshot stays (marked not loaded). */
static gboolean
load_snapshot (GkPool  *self,
               GError **error)
{
  g_autoptr(GArray) previous = g_steal_pointer (&self->entries);
  g_autoptr(GHashTable) previous_by_id = g_steal_pointer (&self->by_id);

  self->entries = entries_new ();
  self->by_id = g_hash_table_new (g_int64_hash, g_int64_equal);
  self->loaded = FALSE;
  if (read_snapshot (self, error))
    {
      self->loaded = TRUE;
      self->have_entries = TRUE;
      return TRUE;
    }
  g_clear_pointer (&self->entries, g_array_unref);
  g_clear_pointer (&self->by_id, g_hash_table_unref);
  self->entries = g_steal_pointer (&previous);
  self->by_id = g_steal_pointer (&previous_by_id);
  return FALSE;
}

static gboolean
snapshot_error (GkPool  *self,
                GError **error)
{
  gk_database_set_error (self->db, error, _("Cannot read the keys"));
  return FALSE;
}

/* Reads the snapshot into the pool's (empty) entries. Called with the
 * database lock and the pool mutex held. */
static gboolean
read_snapshot (GkPool  *self,
               GError **error)
{
  GkSqlStmt *stmt;
  GkSqlStep rc;
  gint64 next_due = G_MAXINT64;

  stmt = gk_database_prepare (self->db,
                              "SELECT id, name, project, status, cooldown_until, priority,"
                              " is_default, last_used_at, monthly_budget_usd, month_cost_usd,"
                              " rate_limit_strikes, uuid, key_hint, api_key_encrypted"
                              " FROM gemini_api_keys WHERE deleted_at IS NULL"
                              " ORDER BY is_default DESC, priority DESC, id",
                              error);
  if (stmt == NULL)
    return FALSE;
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      PoolEntry e = { 0 };
      const char *text;

      e.id = gk_sql_column_int64 (stmt, 0);
      e.name = g_strdup (gk_sql_column_text (stmt, 1));
      text = gk_sql_column_text (stmt, 2);
      e.project = text && *text ? g_strdup (text) : NULL;
      if (!gk_key_status_from_string (gk_sql_column_text (stmt, 3), &e.status))
        e.status = GK_KEY_STATUS_INVALID;
      e.cooldown_until = gk_sql_column_int64 (stmt, 4);
      e.priority = gk_sql_column_int64 (stmt, 5);
      e.is_default = gk_sql_column_int64 (stmt, 6) != 0;
      e.last_used_at = gk_sql_column_int64 (stmt, 7);
      e.budget = gk_sql_column_type (stmt, 8) == GK_SQL_NULL ? -1.0
                                                               : gk_sql_column_double (stmt, 8);
      e.month_cost = gk_sql_column_double (stmt, 9);
      e.strikes = gk_sql_column_int64 (stmt, 10);
      e.uuid = g_strdup (gk_sql_column_text (stmt, 11));
      e.key_hint = g_strdup (gk_sql_column_text (stmt, 12));
      /* Kept so that a request decrypts its key without reading the row. */
      if (gk_sql_column_type (stmt, 13) == GK_SQL_BLOB)
        e.ciphertext = g_bytes_new (gk_sql_column_blob (stmt, 13), gk_sql_column_bytes (stmt, 13));
      if (e.cooldown_until != 0)
        next_due = MIN (next_due, e.cooldown_until);
      g_array_append_val (self->entries, e);
    }
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    return snapshot_error (self, error);

  for (guint i = 0; i < self->entries->len; i++)
    {
      PoolEntry *e = &g_array_index (self->entries, PoolEntry, i);
      g_hash_table_insert (self->by_id, &e->id, GUINT_TO_POINTER (i));
    }

  stmt = gk_database_prepare (self->db,
                              "SELECT key_id, quota_type, unit, limit_value, used_value, reset_at"
                              " FROM gemini_key_quotas",
                              error);
  if (stmt == NULL)
    return FALSE;
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      PoolEntry *e = entry_for (self, gk_sql_column_int64 (stmt, 0));
      int slot = slot_index (gk_sql_column_text (stmt, 1),
                             gk_sql_column_text (stmt, 2));

      if (e == NULL || slot < 0)
        continue;
      e->limit[slot] = gk_sql_column_int64 (stmt, 3);
      e->used[slot] = gk_sql_column_int64 (stmt, 4);
      next_due = MIN (next_due, gk_sql_column_int64 (stmt, 5));
    }
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    return snapshot_error (self, error);

  /* Deleted keys spent part of the month too. */
  stmt = gk_database_prepare (self->db,
                              "SELECT coalesce (sum(month_cost_usd), 0.0) FROM gemini_api_keys"
                              " WHERE deleted_at IS NOT NULL",
                              error);
  if (stmt == NULL)
    return FALSE;
  rc = gk_sql_step (stmt);
  self->deleted_cost = rc == GK_SQL_ROW ? gk_sql_column_double (stmt, 0) : 0;
  gk_sql_reset (stmt);
  if (rc == GK_SQL_ERROR)
    return snapshot_error (self, error);

  self->next_due = next_due;
  self->pool_budget = gk_spend_get_pool_budget (self->db);
  self->threshold = gk_database_get_rotation_threshold (self->db);
  self->stamp = gk_database_change_stamp_recent (self->db, self->change_check_age);
  return TRUE;
}

static gboolean pending_flush (GkPool  *self,
                               GError **error);

/* Makes the snapshot current: resets what is due, reloads when the
 * database changed. Takes the database lock and the pool mutex; on
 * success both stay held (release with snapshot_release). */
static gboolean
snapshot_refresh (GkPool  *self,
                  GError **error)
{
  gint64 now = gk_database_now (self->db);

  /* A batch's charges not written yet go out before a reset or a reload
   * reads or rewrites the rows they charge. */
  gk_database_lock (self->db);
  if (self->batching && self->pending->len > 0)
    {
      gboolean stale;

      g_mutex_lock (&self->mutex);
      stale = !self->loaded || now >= self->next_due || now < self->last_now ||
              self->stamp != gk_database_change_stamp_recent (self->db, self->change_check_age);
      g_mutex_unlock (&self->mutex);
      if (stale && !pending_flush (self, error))
        {
          gk_database_unlock (self->db);
          return FALSE;
        }
    }
  gk_database_unlock (self->db);

  g_mutex_lock (&self->mutex);
  if (self->loaded && (now >= self->next_due || now < self->last_now))
    {
      /* Resets take their own write transaction: drop our mutex first so
       * the lock order (database, then pool) holds. */
      g_mutex_unlock (&self->mutex);
      if (!gk_quotas_reset_expired (self->db, error))
        return FALSE;
      g_mutex_lock (&self->mutex);
      self->loaded = FALSE;
    }
  g_mutex_unlock (&self->mutex);

  gk_database_lock (self->db);
  g_mutex_lock (&self->mutex);
  self->last_now = now;
  if (!self->loaded ||
      self->stamp != gk_database_change_stamp_recent (self->db, self->change_check_age))
    {
      if (!load_snapshot (self, error))
        {
          g_mutex_unlock (&self->mutex);
          gk_database_unlock (self->db);
          return FALSE;
        }
      /* A first load may find windows already due. */
      if (now >= self->next_due)
        {
          g_mutex_unlock (&self->mutex);
          gk_database_unlock (self->db);
          if (!gk_quotas_reset_expired (self->db, error))
            return FALSE;
          gk_database_lock (self->db);
          g_mutex_lock (&self->mutex);
          if (!load_snapshot (self, error))
            {
              g_mutex_unlock (&self->mutex);
              gk_database_unlock (self->db);
              return FALSE;
            }
          /* Whatever is still "due" now is not resettable (e.g. a reset_at
           * already in the future after a clock jump was pulled back);
           * never loop on it. */
          if (now >= self->next_due)
            self->next_due = now + 1;
        }
    }
  return TRUE;
}

/* snapshot_refresh(), or while a server is out of reach, the last
 * snapshot as it was: its keys (ciphertexts included) still serve, and
 * the server is asked again only every OFFLINE_RETRY_US, not for every
 * request (a connection attempt may wait for its timeout). */
static gboolean
snapshot_acquire (GkPool  *self,
                  GError **error)
{
  g_autoptr(GError) local_error = NULL;

  gk_database_lock (self->db);
  g_mutex_lock (&self->mutex);
  if (self->have_entries && g_get_monotonic_time () < self->offline_until)
    return TRUE;
  g_mutex_unlock (&self->mutex);
  gk_database_unlock (self->db);

  if (snapshot_refresh (self, &local_error))
    return TRUE;
  if (g_error_matches (local_error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_UNREACHABLE))
    {
      gk_database_lock (self->db);
      g_mutex_lock (&self->mutex);
      if (self->have_entries)
        {
          self->offline_until = g_get_monotonic_time () + OFFLINE_RETRY_US;
          return TRUE;
        }
      g_mutex_unlock (&self->mutex);
      gk_database_unlock (self->db);
    }
  g_propagate_error (error, g_steal_pointer (&local_error));
  return FALSE;
}

static void
snapshot_release (GkPool *self)
{
  g_mutex_unlock (&self->mutex);
  gk_database_unlock (self->db);
}

static double
entry_remaining_share (const PoolEntry *e)
{
  double share = 1.0;

  for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
    {
      if (e->limit[i] > 0)
        share = MIN (share, (double) (e->limit[i] - e->used[i]) / (double) e->limit[i]);
    }
  return MAX (share, 0.0);
}

/* Whether @e may serve a request. In the normal pass (@near_quota FALSE)
 * the key must be eligible: in service and every quota at or above the
 * rotation threshold. The fallback pass, used only when no key is eligible,
 * also takes keys that are only "Near quota": below the threshold (whether
 * or not they were already rotated away for it) but with no window used up,
 * and neither cooling down, skipped, rejected, turned off nor over budget. */
static gboolean
entry_usable (const PoolEntry *e,
              gint64           now,
              double           threshold,
              gboolean         near_quota)
{
  if (e->cooldown_until > now)
    return FALSE;
  if (e->status != GK_KEY_STATUS_ACTIVE && e->status != GK_KEY_STATUS_RATE_LIMITED
      && !(near_quota && e->status == GK_KEY_STATUS_QUOTA_EXCEEDED))
    return FALSE;

  if (e->budget >= 0 && e->month_cost >= e->budget)
    return FALSE;

  for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
    {
      if (e->limit[i] <= 0)
        continue;
      if (near_quota ? e->used[i] >= e->limit[i]
                     : (double) (e->limit[i] - e->used[i]) * 100.0 < threshold * e->limit[i])
        return FALSE;
    }
  return TRUE;
}

static gboolean
id_in (GArray *ids,
       gint64  id)
{
  if (ids == NULL)
    return FALSE;
  for (guint i = 0; i < ids->len; i++)
    {
      if (g_array_index (ids, gint64, i) == id)
        return TRUE;
    }
  return FALSE;
}

/* TRUE when @a should be chosen over @b: the default key, then higher
 * priority, then more remaining quota, then least recently used. */
static gboolean
entry_better (const PoolEntry *a,
              double           share_a,
              const PoolEntry *b,
              double           share_b)
{
  if (a->is_default != b->is_default)
    return a->is_default;
  if (a->priority != b->priority)
    return a->priority > b->priority;
  if (fabs (share_a - share_b) > 1e-9)
    return share_a > share_b;
  if (a->last_used_at != b->last_used_at)
    return a->last_used_at < b->last_used_at;
  return a->id < b->id;
}

/* Called with the snapshot held. The entries are ordered by (default,
 * priority), the first two criteria, so a pass stops at the end of the
 * first group that has a usable key. Keys that are only near their quota
 * serve, in the same order, when no key is eligible. */
static PoolEntry *
choose (GkPool *self,
        gint64  now,
        GArray *exclude,
        gint64  also_exclude)
{
  for (guint pass = 0; pass < 2; pass++)
    {
      gboolean near_quota = pass == 1;
      PoolEntry *best = NULL;
      double best_share = 0;

      for (guint i = 0; i < self->entries->len; i++)
        {
          PoolEntry *e = &g_array_index (self->entries, PoolEntry, i);
          double share;

          if (best != NULL && (e->is_default != best->is_default || e->priority != best->priority))
            break;
          if (e->id == also_exclude || id_in (exclude, e->id)
              || !entry_usable (e, now, self->threshold, near_quota))
            continue;
          share = entry_remaining_share (e);
          if (best == NULL || entry_better (e, share, best, best_share))
            {
              best = e;
              best_share = share;
            }
        }
      if (best != NULL)
        return best;
    }
  return NULL;
}

/* This month's cost of every key, deleted ones included (the month the
 * per-key budgets count). Called with the snapshot held. */
static double
pool_month_cost (GkPool *self)
{
  double total = self->deleted_cost;

  for (guint i = 0; i < self->entries->len; i++)
    total += g_array_index (self->entries, PoolEntry, i).month_cost;
  return total;
}

static gboolean
pool_budget_spent (GkPool *self)
{
  return self->pool_budget >= 0 && pool_month_cost (self) >= self->pool_budget;
}

static void
set_no_keys_error (GError **error)
{
  g_set_error_literal (error, GK_POOL_ERROR, GK_POOL_ERROR_NO_ACTIVE_KEYS,
                       _("No active keys available"));
}

GkKey *
gk_pool_select (GkPool      *self,
                const char  *model,
                GArray      *exclude,
                GError     **error)
{
  PoolEntry *best;
  GkKey *key = NULL;

  g_return_val_if_fail (GK_IS_POOL (self), NULL);

  if (!snapshot_acquire (self, error))
    return NULL;

  /* The whole pool is out of service while its budget is spent. */
  if (pool_budget_spent (self))
    {
      g_set_error (error, GK_POOL_ERROR, GK_POOL_ERROR_BUDGET_SPENT,
                   _("The pool’s monthly budget of $%.2f is spent: no key is used until the "
                     "month resets or the budget is raised."),
                   self->pool_budget);
      snapshot_release (self);
      return NULL;
    }

  best = choose (self, gk_database_now (self->db), exclude, 0);
  if (best != NULL)
    {
      key = g_new0 (GkKey, 1);
      key->id = best->id;
      key->uuid = g_strdup (best->uuid);
      key->name = g_strdup (best->name);
      key->key_hint = g_strdup (best->key_hint);
      key->project = g_strdup (best->project);
      key->status = GK_KEY_STATUS_ACTIVE;
      key->priority = best->priority;
      key->is_default = best->is_default;
      key->monthly_budget_usd = best->budget;
      key->month_cost_usd = best->month_cost;
      key->last_used_at = best->last_used_at;
      key->has_ciphertext = TRUE;
      key->ciphertext = best->ciphertext != NULL ? g_bytes_ref (best->ciphertext) : NULL;
      for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
        {
          key->quotas[i].type = gk_quota_slot_type (i);
          key->quotas[i].unit = gk_quota_slot_unit (i);
          key->quotas[i].limit_value = best->limit[i];
          key->quotas[i].used_value = best->used[i];
        }
    }
  else
    set_no_keys_error (error);

  snapshot_release (self);
  return key;
}

/* Tracking */

static gboolean
step (GkDatabase    *db,
      GkSqlStmt     *stmt,
      GError       **error)
{
  int rc = gk_sql_step (stmt);

  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (db, error, _("Cannot record the request"));
      return FALSE;
    }
  return TRUE;
}

static gboolean
insert_rotation (GkPool            *self,
                 gint64             from_id,
                 gint64             to_id,
                 GkRotationReason   reason,
                 const char        *triggered_by,
                 gint64             now,
                 GError           **error)
{
  GkSqlStmt *stmt;

  stmt = gk_database_prepare (self->db,
                              "INSERT INTO gemini_key_rotation_log"
                              " (from_key_id, to_key_id, reason, triggered_by, created_at)"
                              " VALUES (?1, ?2, ?3, ?4, ?5)",
                              error);
  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, from_id);
  if (to_id > 0)
    gk_sql_bind_int64 (stmt, 2, to_id);
  else
    gk_sql_bind_null (stmt, 2);
  gk_sql_bind_text (stmt, 3, gk_rotation_reason_to_string (reason), -1);
  gk_sql_bind_text (stmt, 4, triggered_by ? triggered_by : "auto", -1);
  gk_sql_bind_int64 (stmt, 5, now);
  if (!step (self->db, stmt, error))
    return FALSE;

  stmt = gk_database_prepare (self->db,
                              "UPDATE gemini_api_keys SET last_rotation_at = ?2 WHERE id = ?1",
                              error);
  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, from_id);
  gk_sql_bind_int64 (stmt, 2, now);
  return step (self->db, stmt, error);
}

static gboolean
set_key_state (GkPool       *self,
               const char   *where,
               gint64        id,
               const char   *project,
               GkKeyStatus   status,
               const char   *reason,
               gint64        cooldown_until,
               gboolean      strike,
               GError      **error)
{
  g_autofree char *sql = NULL;
  GkSqlStmt *stmt;

  sql = g_strconcat ("UPDATE gemini_api_keys SET status = ?3, status_reason = ?4,"
                     " cooldown_until = CASE WHEN cooldown_until > ?5 THEN cooldown_until"
                     " ELSE ?5 END,"
                     " rate_limit_strikes = rate_limit_strikes + ?6 WHERE ",
                     where, NULL);
  stmt = gk_database_prepare (self->db, sql, error);
  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, id);
  if (project != NULL)
    gk_sql_bind_text (stmt, 2, project, -1);
  else
    gk_sql_bind_null (stmt, 2);
  gk_sql_bind_text (stmt, 3, gk_key_status_to_string (status), -1);
  gk_sql_bind_text (stmt, 4, reason, -1);
  gk_sql_bind_int64 (stmt, 5, cooldown_until);
  gk_sql_bind_int64 (stmt, 6, strike ? 1 : 0);
  return step (self->db, stmt, error);
}

/* Whether @e serves requests now (a cooldown that ended counts as in
 * service: the key is back by itself). */
static gboolean
entry_in_service (const PoolEntry *e,
                  gint64           now)
{
  return e->cooldown_until <= now
         && (e->status == GK_KEY_STATUS_ACTIVE || e->status == GK_KEY_STATUS_RATE_LIMITED);
}

/* Decides whether the tracked use takes the key out of service, and how.
 * Returns TRUE when it does, filling the new state. Called with the
 * snapshot held; @e reflects the charge already. */
static gboolean
leaves_service (GkPool              *self,
                const PoolEntry     *e,
                const GkUsageRecord *record,
                gint64               now,
                GkRotationReason    *reason,
                GkKeyStatus         *status,
                const char         **status_reason,
                gint64              *cooldown_until)
{
  gboolean in_service = entry_in_service (e, now);

  *cooldown_until = 0;

  switch (record->status)
    {
    case GK_USAGE_SUCCESS:
      if (e->status != GK_KEY_STATUS_ACTIVE)
        return FALSE;
      if (e->budget >= 0 && e->month_cost >= e->budget)
        {
          *reason = GK_ROTATION_BUDGET;
          *status = GK_KEY_STATUS_QUOTA_EXCEEDED;
          *status_reason = N_("Monthly budget reached");
          return TRUE;
        }
      for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
        {
          if (e->limit[i] > 0
              && (double) (e->limit[i] - e->used[i]) * 100.0 < self->threshold * e->limit[i])
            {
              *reason = GK_ROTATION_QUOTA_LOW;
              *status = GK_KEY_STATUS_QUOTA_EXCEEDED;
              *status_reason = N_("Quota below the rotation threshold");
              return TRUE;
            }
        }
      return FALSE;

    case GK_USAGE_RATE_LIMITED:
      {
        g_autoptr(GTimeZone) tz = gk_database_get_reset_timezone (self->db);
        gint64 daily = gk_quota_next_reset (GK_QUOTA_DAILY, now, tz);
        gint64 delay;

        if (record->per_day)
          *cooldown_until = daily;
        else
          {
            delay = record->retry_delay_s > 0 ? record->retry_delay_s : DEFAULT_COOLDOWN_S;
            delay <<= MIN (e->strikes, MAX_STRIKE_SHIFT);
            *cooldown_until = MIN (now + delay, daily);
          }
        *reason = GK_ROTATION_RATE_LIMITED;
        *status = GK_KEY_STATUS_RATE_LIMITED;
        *status_reason = record->per_day ? N_("Daily request limit reached (429)")
                                         : N_("Rate-limited by Google (429)");
        /* A key already cooling down is not rotated again, but its
         * cooldown is extended. */
        return TRUE;
      }

    case GK_USAGE_INVALID_KEY:
      *reason = GK_ROTATION_INVALID_KEY;
      *status = GK_KEY_STATUS_INVALID;
      *status_reason = N_("Rejected by Google as invalid, suspended or leaked");
      return e->status != GK_KEY_STATUS_INVALID || in_service;

    case GK_USAGE_ERROR:
    default:
      return FALSE;
    }
}

/* Whether the key row exists, deleted or not. Called with the database
 * lock held. */
static gboolean
key_row_exists (GkPool *self,
                gint64  key_id)
{
  GkSqlStmt *stmt = gk_database_prepare (self->db,
                                            "SELECT 1 FROM gemini_api_keys WHERE id = ?1", NULL);
  gboolean found;

  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, key_id);
  found = gk_sql_step (stmt) == GK_SQL_ROW;
  gk_sql_reset (stmt);
  return found;
}

#define CHARGE_QUOTAS(update) \
  update " gemini_key_quotas SET used_value = used_value +" \
  " CASE unit WHEN 'REQUESTS' THEN CAST (?3 AS BIGINT) ELSE ?2 END WHERE key_id = ?1"
#define CHARGE_KEY \
  "UPDATE gemini_api_keys SET last_used_at = ?2, month_cost_usd = month_cost_usd + ?3," \
  " rate_limit_strikes = 0 WHERE id = ?1"

/* Charges @requests uses to the key: incremented in SQL, as another
 * process may be charging it too. On a server, where other gateways charge
 * it without this snapshot knowing, the new totals come back (RETURNING)
 * and replace the snapshot's, so the quota decisions that follow see every
 * charge; on an SQLite file another process's commit reloads the snapshot
 * anyway, and RETURNING would cost a temporary table per request. The
 * snapshot's own totals are entry_charge()'s. */
static gboolean
charge_key (GkPool     *self,
            PoolEntry  *e,
            gint64      key_id,
            gint64      requests,
            gint64      tokens,
            double      cost,
            gint64      now,
            GError    **error)
{
  /* Literals, each found again by its address (gk_database_prepare). In
   * SQLite, OR FAIL spares the statement a journal of the pages it
   * changes, kept to undo it alone should it fail half-way: no constraint
   * can fail it (the sum is never NULL), and whatever else fails it undoes
   * the whole track (its transaction or savepoint) anyway. */
  const char *quotas_sql = self->shared
                             ? CHARGE_QUOTAS ("UPDATE")
                               " RETURNING quota_type, unit, used_value, limit_value"
                             : CHARGE_QUOTAS ("UPDATE OR FAIL");
  const char *key_sql = self->shared ? CHARGE_KEY " RETURNING month_cost_usd" : CHARGE_KEY;
  GkSqlStmt *stmt;
  GkSqlStep rc;

  stmt = gk_database_prepare (self->db, quotas_sql, error);
  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, key_id);
  gk_sql_bind_int64 (stmt, 2, tokens);
  gk_sql_bind_int64 (stmt, 3, requests);
  /* A key this snapshot does not hold (deleted meanwhile) still returns
   * its rows on a server: read and ignored. */
  if (!self->shared)
    {
      if (!step (self->db, stmt, error))
        return FALSE;
    }
  else
    {
      while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
        {
          int slot = slot_index (gk_sql_column_text (stmt, 0), gk_sql_column_text (stmt, 1));

          if (slot < 0 || e == NULL)
            continue;
          e->used[slot] = gk_sql_column_int64 (stmt, 2);
          e->limit[slot] = gk_sql_column_int64 (stmt, 3);
        }
      gk_sql_reset (stmt);
      if (rc != GK_SQL_DONE)
        {
          gk_database_set_error (self->db, error, _("Cannot record the request"));
          return FALSE;
        }
    }

  stmt = gk_database_prepare (self->db, key_sql, error);
  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, key_id);
  gk_sql_bind_int64 (stmt, 2, now);
  gk_sql_bind_double (stmt, 3, cost);
  if (!self->shared)
    {
      if (!step (self->db, stmt, error))
        return FALSE;
    }
  else
    {
      rc = gk_sql_step (stmt);
      if (rc == GK_SQL_ROW && e != NULL)
        e->month_cost = gk_sql_column_double (stmt, 0);
      gk_sql_reset (stmt);
      if (rc == GK_SQL_ERROR)
        {
          gk_database_set_error (self->db, error, _("Cannot record the request"));
          return FALSE;
        }
    }

  return TRUE;
}

/* One use charged to the snapshot's @e (NULL: a key it does not hold), as
 * charge_key() charges its rows. */
static void
entry_charge (GkPool    *self,
              PoolEntry *e,
              gint64     tokens,
              double     cost,
              gint64     now)
{
  if (e == NULL)
    return;
  if (!self->shared)
    {
      for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
        e->used[i] += gk_quota_slot_unit (i) == GK_QUOTA_UNIT_REQUESTS ? 1 : tokens;
      e->month_cost += cost;
    }
  e->last_used_at = now;
  e->strikes = 0;
}

/* Keeps a batch's charge of one use, to write with the others of its key
 * (pending_flush()). */
static void
pending_add (GkPool *self,
             gint64  key_id,
             gint64  tokens,
             double  cost,
             gint64  now)
{
  PendingCharge *charge = NULL;

  for (guint i = 0; i < self->pending->len && charge == NULL; i++)
    if (g_array_index (self->pending, PendingCharge, i).key_id == key_id)
      charge = &g_array_index (self->pending, PendingCharge, i);
  if (charge == NULL)
    {
      g_array_set_size (self->pending, self->pending->len + 1);
      charge = &g_array_index (self->pending, PendingCharge, self->pending->len - 1);
      memset (charge, 0, sizeof *charge);
      charge->key_id = key_id;
    }
  charge->requests++;
  charge->tokens = charge->tokens > G_MAXINT64 - tokens ? G_MAXINT64 : charge->tokens + tokens;
  charge->cost += cost;
  charge->last_used_at = now;
}

/* Writes a batch's pending charges, one UPDATE of its quotas and one of
 * its row per key rather than per request: the same totals, in the same
 * transaction, so as atomic for other processes. A failure leaves some of
 * them written: the batch must not be committed then. Called with the
 * database lock held. */
static gboolean
pending_flush (GkPool  *self,
               GError **error)
{
  for (guint i = 0; i < self->pending->len; i++)
    {
      const PendingCharge *charge = &g_array_index (self->pending, PendingCharge, i);
      g_autoptr(GError) local_error = NULL;

      if (!charge_key (self, NULL, charge->key_id, charge->requests, charge->tokens, charge->cost,
                       charge->last_used_at, &local_error))
        {
          if (self->batch_error == NULL)
            self->batch_error = g_error_copy (local_error);
          g_propagate_error (error, g_steal_pointer (&local_error));
          g_mutex_lock (&self->mutex);
          self->loaded = FALSE;
          g_mutex_unlock (&self->mutex);
          return FALSE;
        }
    }
  g_array_set_size (self->pending, 0);
  return TRUE;
}

/* Reads the key's state (status, cooldown, strikes) from its row into @e.
 * Called in a write transaction. */
static gboolean
read_key_state (GkPool     *self,
                PoolEntry  *e,
                GError    **error)
{
  GkSqlStmt *stmt = gk_database_prepare (self->db,
                                         "SELECT status, cooldown_until, rate_limit_strikes"
                                         " FROM gemini_api_keys WHERE id = ?1",
                                         error);
  GkSqlStep rc;

  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, e->id);
  rc = gk_sql_step (stmt);
  if (rc == GK_SQL_ROW)
    {
      if (!gk_key_status_from_string (gk_sql_column_text (stmt, 0), &e->status))
        e->status = GK_KEY_STATUS_INVALID;
      e->cooldown_until = gk_sql_column_int64 (stmt, 1);
      e->strikes = gk_sql_column_int64 (stmt, 2);
    }
  gk_sql_reset (stmt);
  if (rc == GK_SQL_ERROR)
    {
      gk_database_set_error (self->db, error, _("Cannot record the request"));
      return FALSE;
    }
  return TRUE;
}

gboolean
gk_pool_track (GkPool               *self,
               const GkUsageRecord  *record,
               GkTrackResult        *result,
               GError              **error)
{
  GkTrackResult local_result = { 0 };
  g_autofree char *redacted = NULL;
  PoolEntry *e;
  GkSqlStmt *stmt;
  gint64 now, tokens;
  gboolean charge, was_in_service;
  GkRotationReason reason = GK_ROTATION_MANUAL;
  GkKeyStatus new_status = GK_KEY_STATUS_ACTIVE;
  const char *status_reason = NULL;
  gint64 cooldown_until = 0;
  gboolean out, pool_was_spent, deferred;

  g_return_val_if_fail (GK_IS_POOL (self), FALSE);
  g_return_val_if_fail (record != NULL, FALSE);

  if (record->prompt_tokens < 0 || record->output_tokens < 0 || record->latency_ms < 0)
    {
      g_set_error_literal (error, GK_POOL_ERROR, GK_POOL_ERROR_INVALID,
                           _("Token counts and latency cannot be negative."));
      return FALSE;
    }

  /* A request answered without a key (none was available) charges nothing. */
  charge = record->status == GK_USAGE_SUCCESS && record->key_id != 0;
  /* In a batch, a success's charge waits for the others of its key. Any
   * other row may change the key's row itself (its strikes): what waits
   * is written first, in the order the rows came. */
  gk_database_lock (self->db);
  deferred = charge && self->batching;
  if (self->batching && !charge && self->pending->len > 0 && !pending_flush (self, error))
    {
      gk_database_unlock (self->db);
      return FALSE;
    }
  gk_database_unlock (self->db);

  if (!snapshot_acquire (self, error))
    return FALSE;

  /* A key deleted while its request was in flight is not in the
   * snapshot, but the request was made and answered: its row is written
   * and its counters charged all the same (history of deleted keys stays). */
  e = record->key_id != 0 ? entry_for (self, record->key_id) : NULL;
  if (e == NULL && record->key_id != 0 && !key_row_exists (self, record->key_id))
    {
      snapshot_release (self);
      g_set_error (error, GK_POOL_ERROR, GK_POOL_ERROR_NOT_FOUND,
                   _("There is no key with id %" PRId64 "."), record->key_id);
      return FALSE;
    }

  now = gk_database_now (self->db);
  /* Both are non-negative (checked above); absurd counts saturate. */
  tokens = record->prompt_tokens > G_MAXINT64 - record->output_tokens
             ? G_MAXINT64
             : record->prompt_tokens + record->output_tokens;
  local_result.cost_usd = gk_pricing_cost (self->pricing, record->model ? record->model : "",
                                           record->prompt_tokens, record->output_tokens,
                                           &local_result.priced);
  if (record->error_message != NULL)
    {
      g_autofree char *valid = g_utf8_make_valid (record->error_message, -1);
      redacted = gk_redact_keys (valid);
      if (g_utf8_strlen (redacted, -1) > ERROR_MESSAGE_MAX)
        *g_utf8_offset_to_pointer (redacted, ERROR_MESSAGE_MAX) = '\0';
    }

  /* The snapshot already holds the database lock; BEGIN nests on the
   * recursive mutex. */
  if (!gk_database_begin (self->db, error))
    {
      snapshot_release (self);
      return FALSE;
    }

  stmt = gk_database_prepare_insert (self->db,
                                     "INSERT INTO gemini_key_usage_log (key_id, model,"
                                     " tokens_used, prompt_tokens, output_tokens, cost_usd,"
                                     " priced, status, http_status, error_message, user_id,"
                                     " latency_ms, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
                                     " ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                                     error);
  if (stmt == NULL)
    goto fail;
  if (record->key_id != 0)
    gk_sql_bind_int64 (stmt, 1, record->key_id);
  else
    gk_sql_bind_null (stmt, 1);
  gk_sql_bind_text (stmt, 2, record->model ? record->model : "", -1);
  gk_sql_bind_int64 (stmt, 3, tokens);
  gk_sql_bind_int64 (stmt, 4, record->prompt_tokens);
  gk_sql_bind_int64 (stmt, 5, record->output_tokens);
  gk_sql_bind_double (stmt, 6, local_result.cost_usd);
  gk_sql_bind_int64 (stmt, 7, local_result.priced ? 1 : 0);
  gk_sql_bind_text (stmt, 8, gk_usage_status_to_string (record->status), -1);
  if (record->http_status > 0)
    gk_sql_bind_int64 (stmt, 9, record->http_status);
  else
    gk_sql_bind_null (stmt, 9);
  if (redacted != NULL)
    gk_sql_bind_text (stmt, 10, redacted, -1);
  else
    gk_sql_bind_null (stmt, 10);
  if (record->user_id != NULL)
    gk_sql_bind_text (stmt, 11, record->user_id, -1);
  else
    gk_sql_bind_null (stmt, 11);
  gk_sql_bind_int64 (stmt, 12, record->latency_ms);
  gk_sql_bind_int64 (stmt, 13, now);
  local_result.usage_id = gk_database_step_insert (self->db, stmt,
                                                   N_("Cannot record the request"), error);
  if (local_result.usage_id == 0)
    goto fail;

  pool_was_spent = pool_budget_spent (self);
  if (charge && !deferred &&
      !charge_key (self, e, record->key_id, 1, tokens, local_result.cost_usd, now, error))
    goto fail;
  if (charge)
    entry_charge (self, e, tokens, local_result.cost_usd, now);

  /* A deleted key has no service to leave. */
  was_in_service = e != NULL && entry_in_service (e, now);

  out = e != NULL && leaves_service (self, e, record, now, &reason, &new_status, &status_reason,
                                     &cooldown_until);
  /* The snapshot may not have seen another gateway take the key out of
   * service already: decide again on the row, read under the write lock,
   * so that the rotation is logged once. */
  if (out && self->shared)
    {
      if (!read_key_state (self, e, error))
        goto fail;
      was_in_service = entry_in_service (e, now);
      out = leaves_service (self, e, record, now, &reason, &new_status, &status_reason,
                            &cooldown_until);
    }
  if (out)
    {
      gboolean project_wide = record->status == GK_USAGE_RATE_LIMITED && record->per_project
                              && e->project != NULL;
      PoolEntry *next;

      if (!set_key_state (self, project_wide
                                  ? "(id = ?1 OR project = ?2) AND deleted_at IS NULL"
                                    " AND status IN ('ACTIVE', 'RATE_LIMITED')"
                                  : "id = ?1 AND (CAST (?2 AS TEXT) IS NULL OR project = ?2)",
                          record->key_id, project_wide ? e->project : NULL, new_status,
                          status_reason, cooldown_until,
                          record->status == GK_USAGE_RATE_LIMITED, error))
        goto fail;

      /* Rotations are logged once, when the key leaves service. */
      if (was_in_service)
        {
          for (guint i = 0; i < self->entries->len; i++)
            {
              PoolEntry *other = &g_array_index (self->entries, PoolEntry, i);

              if (other == e
                  || (project_wide && g_strcmp0 (other->project, e->project) == 0
                      && (other->status == GK_KEY_STATUS_ACTIVE
                          || other->status == GK_KEY_STATUS_RATE_LIMITED)))
                {
                  other->status = new_status;
                  other->cooldown_until = MAX (other->cooldown_until, cooldown_until);
                }
            }
          next = choose (self, now, NULL, record->key_id);
          if (!insert_rotation (self, record->key_id, next ? next->id : 0, reason,
                                record->triggered_by, now, error))
            goto fail;
          local_result.rotated = TRUE;
          local_result.reason = reason;
          local_result.to_key_id = next ? next->id : 0;
        }
    }
  else if (was_in_service && !pool_was_spent && pool_budget_spent (self))
    {
      /* This use spent the pool's budget: every key leaves service with
       * it, logged once as a budget rotation to no key. */
      if (!insert_rotation (self, record->key_id, 0, GK_ROTATION_BUDGET, record->triggered_by,
                            now, error))
        goto fail;
      local_result.rotated = TRUE;
      local_result.reason = GK_ROTATION_BUDGET;
      local_result.to_key_id = 0;
    }

  if (!gk_database_commit (self->db, error))
    {
      self->loaded = FALSE;
      snapshot_release (self);
      return FALSE;
    }
  if (deferred)
    pending_add (self, record->key_id, tokens, local_result.cost_usd, now);

  /* This pool applied its own change; other pools on this database must
   * reload, which the bumped stamp tells them. */
  self->stamp = gk_database_touch (self->db);
  if (out)
    self->loaded = FALSE;
  snapshot_release (self);

  /* Keep the dashboard's running totals close to current, so no dashboard
   * load has much to fold. Outside the track's transaction; a failure only
   * leaves more for the next fold. */
  if (local_result.usage_id % ROLLUP_INTERVAL == 0)
    {
      g_autoptr(GError) fold_error = NULL;

      if (!gk_rollup_catch_up (self->db, &fold_error))
        g_debug ("Usage totals not brought up to date: %s", fold_error->message);
    }

  if (result != NULL)
    *result = local_result;
  return TRUE;

fail:
  gk_database_rollback (self->db);
  self->loaded = FALSE;
  snapshot_release (self);
  return FALSE;
}

gboolean
gk_pool_batch_begin (GkPool  *self,
                     GError **error)
{
  g_return_val_if_fail (GK_IS_POOL (self), FALSE);

  if (!gk_database_begin (self->db, error))
    return FALSE;
  /* A server's charges come back from their own UPDATE (see charge_key()):
   * one per request there. */
  self->batching = !self->shared;
  return TRUE;
}

/* The batch is over (its lock still held). */
static void
batch_stop (GkPool *self)
{
  self->batching = FALSE;
  g_array_set_size (self->pending, 0);
  g_clear_error (&self->batch_error);
}

gboolean
gk_pool_batch_end (GkPool  *self,
                   GError **error)
{
  gboolean flushed;

  g_return_val_if_fail (GK_IS_POOL (self), FALSE);

  if (self->batch_error != NULL)
    g_propagate_error (error, g_error_copy (self->batch_error));
  flushed = self->batch_error == NULL && pending_flush (self, error);
  batch_stop (self);
  if (flushed && gk_database_commit (self->db, error))
    return TRUE;
  if (!flushed)
    gk_database_rollback (self->db);
  /* The snapshot counted charges that were not written. */
  g_mutex_lock (&self->mutex);
  self->loaded = FALSE;
  g_mutex_unlock (&self->mutex);
  return FALSE;
}

void
gk_pool_batch_cancel (GkPool *self)
{
  g_return_if_fail (GK_IS_POOL (self));

  batch_stop (self);
  gk_database_rollback (self->db);
  /* The snapshot counted charges that were not written. */
  g_mutex_lock (&self->mutex);
  self->loaded = FALSE;
  g_mutex_unlock (&self->mutex);
}

gint64
gk_pool_rotate (GkPool      *self,
                gint64       key_id,
                const char  *triggered_by,
                GError     **error)
{
  g_autoptr(GTimeZone) tz = NULL;
  PoolEntry *e, *next;
  GkSqlStmt *stmt;
  gint64 now, until, next_id;

  g_return_val_if_fail (GK_IS_POOL (self), 0);
  g_return_val_if_fail (triggered_by != NULL, 0);

  if (!snapshot_acquire (self, error))
    return 0;

  e = entry_for (self, key_id);
  if (e == NULL)
    {
      snapshot_release (self);
      g_set_error (error, GK_POOL_ERROR, GK_POOL_ERROR_NOT_FOUND,
                   _("There is no key with id %" PRId64 "."), key_id);
      return 0;
    }

  now = gk_database_now (self->db);
  tz = gk_database_get_reset_timezone (self->db);
  until = gk_quota_next_reset (GK_QUOTA_DAILY, now, tz);

  if (!gk_database_begin (self->db, error))
    {
      snapshot_release (self);
      return 0;
    }

  /* The key keeps its status (it is not broken); the cooldown takes it out
   * of selection until the next daily reset. */
  stmt = gk_database_prepare (self->db,
                              "UPDATE gemini_api_keys SET cooldown_until = CASE"
                              " WHEN cooldown_until > ?2 THEN cooldown_until ELSE ?2 END,"
                              " status_reason = ?3 WHERE id = ?1",
                              error);
  if (stmt == NULL)
    goto fail;
  gk_sql_bind_int64 (stmt, 1, key_id);
  gk_sql_bind_int64 (stmt, 2, until);
  gk_sql_bind_text (stmt, 3, N_("Skipped by hand until the daily reset"), -1);
  if (!step (self->db, stmt, error))
    goto fail;

  next = choose (self, now, NULL, key_id);
  next_id = next ? next->id : 0;
  if (!insert_rotation (self, key_id, next_id, GK_ROTATION_MANUAL, triggered_by, now, error))
    goto fail;
  {
    g_autoptr(GString) summary = g_string_new (NULL);
    g_autofree char *next_name = next ? gk_audit_value_text (next->name) : NULL;

    gk_audit_summary_add (summary, GK_AUDIT_PHRASE_UNTIL_DAILY_RESET, NULL, NULL);
    if (next != NULL)
      gk_audit_summary_add (summary, GK_AUDIT_PHRASE_NEXT_KEY, next_name, NULL);
    else
      gk_audit_summary_add (summary, GK_AUDIT_PHRASE_NO_KEY_LEFT, NULL, NULL);
    if (!gk_audit_record (self->db, GK_AUDIT_KEY_SKIP, key_id, e->name, summary->str, error))
      goto fail;
  }
  if (!gk_database_commit (self->db, error))
    {
      self->loaded = FALSE;
      snapshot_release (self);
      return 0;
    }
  self->loaded = FALSE;
  gk_database_touch (self->db);
  snapshot_release (self);
  return next_id;

fail:
  gk_database_rollback (self->db);
  self->loaded = FALSE;
  snapshot_release (self);
  return 0;
}
