/* gk-key-store.c: the encrypted keys.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <math.h>

#include "gk-audit.h"
#include "gk-crypto.h"
#include "gk-database-private.h"
#include "gk-key-state.h"
#include "gk-key-store.h"
#include "gk-quotas.h"
#include "gk-secret-store.h"

#define CLASSIC_KEY_PREFIX   "AIza"
#define CLASSIC_KEY_BODY_LEN 35
#define AQ_KEY_PREFIX        "AQ."
#define AQ_KEY_MIN_BODY_LEN  20
#define AQ_KEY_MAX_BODY_LEN  512
#define KEY_HINT_LEN         4
#define PROJECT_MAX_CHARS    100
/* After a failed reload of the master key, how long the failure stands
 * before the keyring is asked again: a gateway under load must not ask it
 * once per request. */
#define RELOAD_RETRY_US      (G_USEC_PER_SEC / 2)
#define META_CHECK_VALUE     "key_check_value"

struct _GkKeyStore
{
  GObject        parent_instance;
  GkDatabase    *db;
  GkSecretStore *secrets;      /* where a changed master key is reloaded from */
  GMutex         mutex;        /* guards the fields below */
  GBytes        *master_key;
  char          *check_value;  /* of master_key */
  GError        *reload_error; /* why the database's current key is out of reach */
  gint64         reload_failed_at;
};

G_DEFINE_FINAL_TYPE (GkKeyStore, gk_key_store, G_TYPE_OBJECT)
G_DEFINE_QUARK (gk-key-store-error-quark, gk_key_store_error)
G_DEFINE_BOXED_TYPE (GkKey, gk_key, gk_key_copy, gk_key_free)

/* The columns read_key() expects, in order. */
#define KEY_COLUMNS                                                               \
  "id, uuid, name, key_hint, project, status, status_reason, cooldown_until,"    \
  " priority, is_default, monthly_budget_usd, month_cost_usd, created_at,"       \
  " updated_at, last_used_at, last_rotation_at, deleted_at,"                     \
  " api_key_encrypted IS NOT NULL,"                                              \
  /* The reason of the key's last rotation (through the created_at index). */   \
  " (SELECT reason FROM gemini_key_rotation_log r"                               \
  "   WHERE r.created_at = gemini_api_keys.last_rotation_at"                     \
  "     AND r.from_key_id = gemini_api_keys.id ORDER BY r.id DESC LIMIT 1)"

#define QUOTA_COLUMNS "key_id, quota_type, unit, limit_value, used_value, reset_at"

GkKey *
gk_key_copy (const GkKey *key)
{
  GkKey *copy;

  g_return_val_if_fail (key != NULL, NULL);

  copy = g_memdup2 (key, sizeof *key);
  copy->uuid = g_strdup (key->uuid);
  copy->name = g_strdup (key->name);
  copy->key_hint = g_strdup (key->key_hint);
  copy->project = g_strdup (key->project);
  copy->status_reason = g_strdup (key->status_reason);
  copy->state_reason = g_strdup (key->state_reason);
  if (key->ciphertext != NULL)
    g_bytes_ref (key->ciphertext);
  return copy;
}

void
gk_key_free (GkKey *key)
{
  if (key == NULL)
    return;
  g_free (key->uuid);
  g_free (key->name);
  g_free (key->key_hint);
  g_free (key->project);
  g_free (key->status_reason);
  g_free (key->state_reason);
  g_clear_pointer (&key->ciphertext, g_bytes_unref);
  g_free (key);
}

char *
gk_key_get_masked (const GkKey *key)
{
  g_return_val_if_fail (key != NULL, NULL);
  return g_strconcat ("••••••••", key->key_hint ? key->key_hint : "", NULL);
}

double
gk_key_remaining_share (const GkKey *key)
{
  double share = 1.0;

  g_return_val_if_fail (key != NULL, 0.0);

  for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
    {
      const GkQuota *q = &key->quotas[i];

      if (q->limit_value > 0)
        share = MIN (share, CLAMP ((double) (q->limit_value - q->used_value) / q->limit_value,
                                   0.0, 1.0));
    }
  return share;
}

void
gk_key_spec_init (GkKeySpec *spec)
{
  g_return_if_fail (spec != NULL);

  memset (spec, 0, sizeof *spec);
  spec->priority = GK_KEY_PRIORITY_DEFAULT;
  spec->monthly_budget_usd = -1.0;
  spec->active = TRUE;
}

void
gk_key_spec_from_key (GkKeySpec   *spec,
                      const GkKey *key)
{
  g_return_if_fail (spec != NULL);
  g_return_if_fail (key != NULL);

  gk_key_spec_init (spec);
  spec->name = key->name;
  spec->priority = key->priority;
  spec->project = key->project;
  spec->monthly_budget_usd = key->monthly_budget_usd;
  spec->is_default = key->is_default;
  spec->active = key->status != GK_KEY_STATUS_INACTIVE;
  for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
    spec->limits[i] = key->quotas[i].limit_value;
}

/* Audit summaries */

/* The phrases of the quota slots in audit summaries. */
static const GkAuditPhrase audit_slot_phrases[GK_QUOTA_N_SLOTS] = {
  [GK_QUOTA_SLOT_MONTHLY_TOKENS]  = GK_AUDIT_PHRASE_MONTHLY_TOKENS,
  [GK_QUOTA_SLOT_DAILY_TOKENS]    = GK_AUDIT_PHRASE_DAILY_TOKENS,
  [GK_QUOTA_SLOT_MINUTE_TOKENS]   = GK_AUDIT_PHRASE_MINUTE_TOKENS,
  [GK_QUOTA_SLOT_DAILY_REQUESTS]  = GK_AUDIT_PHRASE_DAILY_REQUESTS,
  [GK_QUOTA_SLOT_MINUTE_REQUESTS] = GK_AUDIT_PHRASE_MINUTE_REQUESTS,
};

/* "field before → after" (the field's _CHANGE phrase), or "field after"
 * when @adding; nothing when the values are equal. */
static void
audit_change (GString       *out,
              gboolean       adding,
              GkAuditPhrase  field,
              const char    *before,
              const char    *after)
{
  if (g_strcmp0 (before, after) == 0)
    return;
  if (adding)
    gk_audit_summary_add (out, field, after, NULL);
  else
    gk_audit_summary_add (out, field + 1, before, after);
}

/* What differs between @before and @after (the user-set fields, not the
 * active switch), for the audit log; with @adding, the fields @after sets
 * away from the defaults. Never the key itself. */
static GString *
audit_describe_spec (const GkKeySpec *before,
                     const GkKeySpec *after,
                     gboolean         adding)
{
  GString *out = g_string_new (NULL);
  g_autofree char *name_a = gk_audit_value_text (before->name);
  g_autofree char *name_b = gk_audit_value_text (after->name);
  g_autofree char *project_a = gk_audit_value_text (before->project);
  g_autofree char *project_b = gk_audit_value_text (after->project);
  g_autofree char *budget_a = gk_audit_value_money (before->monthly_budget_usd);
  g_autofree char *budget_b = gk_audit_value_money (after->monthly_budget_usd);
  g_autofree char *priority_a = g_strdup_printf ("%d", before->priority);
  g_autofree char *priority_b = g_strdup_printf ("%d", after->priority);

  if (!adding)
    audit_change (out, adding, GK_AUDIT_PHRASE_NAME, name_a, name_b);
  audit_change (out, adding, GK_AUDIT_PHRASE_PRIORITY, priority_a, priority_b);
  audit_change (out, adding, GK_AUDIT_PHRASE_PROJECT, project_a, project_b);
  audit_change (out, adding, GK_AUDIT_PHRASE_MONTHLY_BUDGET, budget_a, budget_b);
  audit_change (out, adding, GK_AUDIT_PHRASE_DEFAULT, gk_audit_value_flag (before->is_default),
                gk_audit_value_flag (after->is_default));
  for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
    {
      g_autofree char *limit_a = gk_audit_value_limit (before->limits[i]);
      g_autofree char *limit_b = gk_audit_value_limit (after->limits[i]);

      audit_change (out, adding, audit_slot_phrases[i], limit_a, limit_b);
    }
  return out;
}

/* Validation */

static gboolean
has_control_chars (const char *text)
{
  for (const char *p = text; *p; p = g_utf8_next_char (p))
    {
      if (g_unichar_iscntrl (g_utf8_get_char (p)))
        return TRUE;
    }
  return FALSE;
}

/* Characters that change how the text around them reads without being
 * seen: bidirectional overrides and isolates (a name shown as "key-1"
 * could be stored as something else) and zero-width characters (two names
 * that look the same). */
static gboolean
has_invisible_chars (const char *text)
{
  for (const char *p = text; *p; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if ((c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069) ||
          (c >= 0x200B && c <= 0x200D) || c == 0x2060 || c == 0xFEFF)
        return TRUE;
    }
  return FALSE;
}

gboolean
gk_key_validate_name (const char  *name,
                      GError     **error)
{
  glong n_chars;

  if (name == NULL || !g_utf8_validate (name, -1, NULL))
    {
      g_set_error_literal (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_NAME,
                           _("The name is not valid UTF-8 text."));
      return FALSE;
    }

  n_chars = g_utf8_strlen (name, -1);
  if (n_chars == 0 || strspn (name, " \t") == strlen (name))
    {
      g_set_error_literal (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_NAME,
                           _("Enter a name for the key."));
      return FALSE;
    }
  if (n_chars > GK_KEY_NAME_MAX_CHARS)
    {
      g_set_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_NAME,
                   _("The name is too long: use at most %d characters."), GK_KEY_NAME_MAX_CHARS);
      return FALSE;
    }
  if (has_control_chars (name))
    {
      g_set_error_literal (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_NAME,
                           _("The name must not contain control characters such as line breaks."));
      return FALSE;
    }
  if (has_invisible_chars (name))
    {
      g_set_error_literal (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_NAME,
                           _("The name must not contain invisible characters or characters that change the text direction."));
      return FALSE;
    }
  return TRUE;
}

static gboolean
all_chars_in (const char *text,
              const char *extra)
{
  for (const char *p = text; *p; p++)
    {
      if (!g_ascii_isalnum (*p) && strchr (extra, *p) == NULL)
        return FALSE;
    }
  return TRUE;
}

gboolean
gk_key_validate_api_key (const char  *api_key,
                         GError     **error)
{
  gsize len = api_key ? strlen (api_key) : 0;

  /* The messages never quote the key: it may be pasted by mistake into a
   * bug report. */
  if (len == 0)
    {
      g_set_error_literal (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_KEY,
                           _("Enter the API key."));
      return FALSE;
    }

  if (g_str_has_prefix (api_key, CLASSIC_KEY_PREFIX))
    {
      const char *body = api_key + strlen (CLASSIC_KEY_PREFIX);

      if (strlen (body) == CLASSIC_KEY_BODY_LEN && all_chars_in (body, "_-"))
        return TRUE;
      g_set_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_KEY,
                   _("This does not look like a Gemini API key: keys starting with “AIza” have "
                     "39 characters (letters, digits, “-” and “_”). Copy the whole key from "
                     "Google AI Studio."));
      return FALSE;
    }

  if (g_str_has_prefix (api_key, AQ_KEY_PREFIX))
    {
      const char *body = api_key + strlen (AQ_KEY_PREFIX);
      gsize body_len = strlen (body);

      if (body_len >= AQ_KEY_MIN_BODY_LEN && body_len <= AQ_KEY_MAX_BODY_LEN
          && all_chars_in (body, "_-."))
        return TRUE;
      g_set_error_literal (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_KEY,
                           _("This does not look like a Gemini API key: the key starting with "
                             "“AQ.” is incomplete or contains spaces. Copy the whole key from "
                             "Google AI Studio."));
      return FALSE;
    }

  g_set_error_literal (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_KEY,
                       _("This does not look like a Gemini API key: keys start with “AIza” or "
                         "“AQ.”. Copy the key from Google AI Studio."));
  return FALSE;
}

gboolean
gk_key_validate_spec (const GkKeySpec  *spec,
                      GError          **error)
{
  g_return_val_if_fail (spec != NULL, FALSE);

  if (!gk_key_validate_name (spec->name, error))
    return FALSE;

  if (spec->priority < GK_KEY_PRIORITY_MIN || spec->priority > GK_KEY_PRIORITY_MAX)
    {
      g_set_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_PRIORITY,
                   _("The priority must be between %d and %d."), GK_KEY_PRIORITY_MIN,
                   GK_KEY_PRIORITY_MAX);
      return FALSE;
    }

  for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
    {
      if (spec->limits[i] < 0)
        {
          g_set_error_literal (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_QUOTA,
                               _("A quota cannot be negative. Use 0 for no limit."));
          return FALSE;
        }
    }

  if (!isfinite (spec->monthly_budget_usd))
    {
      g_set_error_literal (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_BUDGET,
                           _("The monthly budget must be a number of US dollars."));
      return FALSE;
    }

  if (spec->project != NULL
      && (!g_utf8_validate (spec->project, -1, NULL)
          || g_utf8_strlen (spec->project, -1) > PROJECT_MAX_CHARS
          || has_control_chars (spec->project)))
    {
      g_set_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_PROJECT,
                   _("The project label must be text of at most %d characters."),
                   PROJECT_MAX_CHARS);
      return FALSE;
    }

  return TRUE;
}

/* Reading */

static char *
dup_column_text (GkSqlStmt    *stmt,
                 int           col)
{
  const char *text = gk_sql_column_text (stmt, col);

  return text ? g_strdup (text) : NULL;
}

static GkKey *
read_key (GkSqlStmt *stmt)
{
  GkKey *key = g_new0 (GkKey, 1);
  const char *status = gk_sql_column_text (stmt, 5);

  key->id = gk_sql_column_int64 (stmt, 0);
  key->uuid = dup_column_text (stmt, 1);
  key->name = dup_column_text (stmt, 2);
  key->key_hint = dup_column_text (stmt, 3);
  key->project = dup_column_text (stmt, 4);
  if (!gk_key_status_from_string (status, &key->status))
    key->status = GK_KEY_STATUS_INVALID;
  key->status_reason = dup_column_text (stmt, 6);
  key->cooldown_until = gk_sql_column_int64 (stmt, 7);
  key->priority = gk_sql_column_int64 (stmt, 8);
  key->is_default = gk_sql_column_int64 (stmt, 9) != 0;
  key->monthly_budget_usd = gk_sql_column_type (stmt, 10) == GK_SQL_NULL
                              ? -1.0
                              : gk_sql_column_double (stmt, 10);
  key->month_cost_usd = gk_sql_column_double (stmt, 11);
  key->created_at = gk_sql_column_int64 (stmt, 12);
  key->updated_at = gk_sql_column_int64 (stmt, 13);
  key->last_used_at = gk_sql_column_int64 (stmt, 14);
  key->last_rotation_at = gk_sql_column_int64 (stmt, 15);
  key->deleted_at = gk_sql_column_int64 (stmt, 16);
  key->has_ciphertext = gk_sql_column_int64 (stmt, 17) != 0;
  {
    GkRotationReason reason;

    key->last_rotation_reason = gk_rotation_reason_from_string (gk_sql_column_text (stmt, 18), &reason)
                                  ? (int) reason
                                  : -1;
  }

  /* Slots without a row (never, for keys made here) read as unlimited. */
  for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
    {
      key->quotas[i].type = gk_quota_slot_type (i);
      key->quotas[i].unit = gk_quota_slot_unit (i);
    }
  /* A name that is not UTF-8 (a damaged row) must still display. */
  if (key->name == NULL || !g_utf8_validate (key->name, -1, NULL))
    {
      g_free (key->name);
      key->name = g_strdup (_("(unreadable name)"));
    }
  return key;
}

static int
slot_for (const char *type_str,
          const char *unit_str)
{
  GkQuotaType type;
  gboolean requests = g_strcmp0 (unit_str, "REQUESTS") == 0;

  if (!gk_quota_type_from_string (type_str, &type))
    return -1;
  switch (type)
    {
    case GK_QUOTA_MONTHLY:
      return requests ? -1 : GK_QUOTA_SLOT_MONTHLY_TOKENS;
    case GK_QUOTA_DAILY:
      return requests ? GK_QUOTA_SLOT_DAILY_REQUESTS : GK_QUOTA_SLOT_DAILY_TOKENS;
    case GK_QUOTA_PER_MINUTE:
      return requests ? GK_QUOTA_SLOT_MINUTE_REQUESTS : GK_QUOTA_SLOT_MINUTE_TOKENS;
    default:
      return -1;
    }
}

/* Fills the quotas of the keys in @by_id (id → GkKey*) from @stmt's rows. */
static void
read_quotas (GkSqlStmt    *stmt,
             GHashTable   *by_id)
{
  while (gk_sql_step (stmt) == GK_SQL_ROW)
    {
      gint64 key_id = gk_sql_column_int64 (stmt, 0);
      GkKey *key = g_hash_table_lookup (by_id, &key_id);
      int slot = slot_for (gk_sql_column_text (stmt, 1),
                           gk_sql_column_text (stmt, 2));

      if (key == NULL || slot < 0)
        continue;
      key->quotas[slot].limit_value = gk_sql_column_int64 (stmt, 3);
      key->quotas[slot].used_value = gk_sql_column_int64 (stmt, 4);
      key->quotas[slot].reset_at = gk_sql_column_int64 (stmt, 5);
    }
}

static GPtrArray *
query_keys (GkDatabase  *db,
            gint64       id,
            GError     **error)
{
  double threshold;
  gint64 now;
  g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func ((GDestroyNotify) gk_key_free);
  g_autoptr(GHashTable) by_id = g_hash_table_new (g_int64_hash, g_int64_equal);
  GkSqlStmt *stmt;
  int rc;

  /* Quotas past their window are reset first, so what is shown is current. */
  if (!gk_quotas_reset_expired (db, error))
    return NULL;

  gk_database_lock (db);

  stmt = gk_database_prepare (db,
                              id > 0 ? "SELECT " KEY_COLUMNS " FROM gemini_api_keys"
                                       " WHERE id = ?1 AND deleted_at IS NULL"
                                     : "SELECT " KEY_COLUMNS " FROM gemini_api_keys"
                                       " WHERE deleted_at IS NULL ORDER BY id",
                              error);
  if (stmt == NULL)
    goto fail;
  if (id > 0)
    gk_sql_bind_int64 (stmt, 1, id);
  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      GkKey *key = read_key (stmt);

      g_ptr_array_add (keys, key);
      g_hash_table_insert (by_id, &key->id, key);
    }
  if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (db, error, _("Cannot read the keys"));
      goto fail;
    }
  gk_sql_reset (stmt);

  stmt = gk_database_prepare (db,
                              id > 0 ? "SELECT " QUOTA_COLUMNS " FROM gemini_key_quotas"
                                       " WHERE key_id = ?1"
                                     : "SELECT " QUOTA_COLUMNS " FROM gemini_key_quotas",
                              error);
  if (stmt == NULL)
    goto fail;
  if (id > 0)
    gk_sql_bind_int64 (stmt, 1, id);
  read_quotas (stmt, by_id);
  gk_sql_reset (stmt);

  threshold = gk_database_get_rotation_threshold (db);
  now = gk_database_now (db);
  gk_database_unlock (db);

  for (guint i = 0; i < keys->len; i++)
    gk_key_update_state (keys->pdata[i], threshold, now);
  return g_steal_pointer (&keys);

fail:
  gk_database_unlock (db);
  return NULL;
}

/* Writing */

static gboolean
step_done (GkDatabase    *db,
           GkSqlStmt     *stmt,
           const char    *what,
           GError       **error)
{
  int rc = gk_sql_step (stmt);

  if (rc == GK_SQL_DONE)
    {
      gk_sql_reset (stmt);
      return TRUE;
    }
  gk_database_set_error (db, error, what);
  gk_sql_reset (stmt);
  return FALSE;
}

static gboolean
clear_other_defaults (GkKeyStore  *self,
                      gint64       keep_id,
                      GError     **error)
{
  GkSqlStmt *stmt = gk_database_prepare (self->db,
                                            "UPDATE gemini_api_keys SET is_default = 0"
                                            " WHERE is_default = 1 AND id != ?1",
                                            error);
  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, keep_id);
  return step_done (self->db, stmt, _("Cannot change the default key"), error);
}

static gboolean
fingerprint_taken (GkKeyStore  *self,
                   const char  *fingerprint,
                   gint64       except_id,
                   gboolean    *taken,
                   GError     **error)
{
  GkSqlStmt *stmt = gk_database_prepare (self->db,
                                            "SELECT name FROM gemini_api_keys"
                                            " WHERE key_fingerprint = ?1 AND id != ?2",
                                            error);
  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_text (stmt, 1, fingerprint, -1);
  gk_sql_bind_int64 (stmt, 2, except_id);
  switch (gk_sql_step (stmt))
    {
    case GK_SQL_ROW:
      g_set_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_DUPLICATE,
                   _("This API key is already stored as “%s”."),
                   gk_sql_column_text (stmt, 0));
      *taken = TRUE;
      gk_sql_reset (stmt);
      return FALSE;
    case GK_SQL_DONE:
      *taken = FALSE;
      gk_sql_reset (stmt);
      return TRUE;
    default:
      gk_database_set_error (self->db, error, _("Cannot check for duplicate keys"));
      gk_sql_reset (stmt);
      return FALSE;
    }
}

/* A reference to the master key in use, and its check value. */
static GBytes *
get_master_key (GkKeyStore  *self,
                char       **check_value)
{
  GBytes *key;

  g_mutex_lock (&self->mutex);
  key = g_bytes_ref (self->master_key);
  if (check_value != NULL)
    *check_value = g_strdup (self->check_value);
  g_mutex_unlock (&self->mutex);
  return key;
}

/* Encrypts @api_key for the row @uuid and binds blob, fingerprint and hint
 * to @stmt at @first, @first+1, @first+2. */
static gboolean
bind_secret (GkKeyStore    *self,
             GkSqlStmt     *stmt,
             int            first,
             const char    *uuid,
             const char    *api_key,
             char         **fingerprint_out,
             GError       **error)
{
  g_autoptr(GBytes) blob = NULL;
  g_autoptr(GBytes) master_key = get_master_key (self, NULL);
  gsize len = strlen (api_key);

  blob = gk_crypto_encrypt (master_key, uuid, api_key, len, error);
  if (blob == NULL)
    return FALSE;

  *fingerprint_out = gk_crypto_fingerprint (master_key, api_key);
  gk_sql_bind_blob (stmt, first, g_bytes_get_data (blob, NULL), (int) g_bytes_get_size (blob));
  gk_sql_bind_text (stmt, first + 1, *fingerprint_out, -1);
  gk_sql_bind_text (stmt, first + 2, api_key + len - KEY_HINT_LEN, -1);
  return TRUE;
}

static void
bind_nullable_text (GkSqlStmt    *stmt,
                    int           col,
                    const char   *text)
{
  if (text != NULL && *text != '\0')
    gk_sql_bind_text (stmt, col, text, -1);
  else
    gk_sql_bind_null (stmt, col);
}

static void
bind_budget (GkSqlStmt    *stmt,
             int           col,
             double        budget)
{
  if (budget >= 0)
    gk_sql_bind_double (stmt, col, budget);
  else
    gk_sql_bind_null (stmt, col);
}

static gboolean
write_quota_limits (GkKeyStore      *self,
                    gint64           key_id,
                    const GkKeySpec *spec,
                    GError         **error)
{
  g_autoptr(GTimeZone) tz = gk_database_get_reset_timezone (self->db);
  gint64 now = gk_database_now (self->db);

  for (guint i = 0; i < GK_QUOTA_N_SLOTS; i++)
    {
      GkQuotaType type = gk_quota_slot_type (i);
      GkSqlStmt *stmt = gk_database_prepare (
        self->db,
        "INSERT INTO gemini_key_quotas (key_id, quota_type, unit, limit_value, used_value, reset_at)"
        " VALUES (?1, ?2, ?3, ?4, 0, ?5)"
        " ON CONFLICT (key_id, quota_type, unit) DO UPDATE SET limit_value = excluded.limit_value",
        error);

      if (stmt == NULL)
        return FALSE;
      gk_sql_bind_int64 (stmt, 1, key_id);
      gk_sql_bind_text (stmt, 2, gk_quota_type_to_string (type), -1);
      gk_sql_bind_text (stmt, 3, gk_quota_unit_to_string (gk_quota_slot_unit (i)), -1);
      gk_sql_bind_int64 (stmt, 4, spec->limits[i]);
      gk_sql_bind_int64 (stmt, 5, gk_quota_next_reset (type, now, tz));
      if (!step_done (self->db, stmt, _("Cannot save the quotas"), error))
        return FALSE;
    }
  return TRUE;
}

/* Another process may have rotated the master key since this store was
 * made: writing with the old key would make rows nobody can read. */
static gboolean
master_key_current (GkKeyStore  *self,
                    GError     **error)
{
  g_autofree char *stored = gk_database_get_meta (self->db, META_CHECK_VALUE);
  g_autofree char *ours = NULL;
  g_autoptr(GBytes) key = get_master_key (self, &ours);

  if (stored == NULL || gk_crypto_equal_const_time (stored, ours))
    return TRUE;
  g_set_error_literal (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_MASTER_KEY_CHANGED,
                       _("The master key was changed by another program. Restart Gemini Keys "
                         "to unlock the keys with the new master key."));
  return FALSE;
}

/* Before a write: picks up a master key another process rotated to, and
 * refuses when the key in use is no longer stored anywhere (keys added now
 * could not be read after a restart). */
static gboolean
ready_to_encrypt (GkKeyStore  *self,
                  GError     **error)
{
  g_autofree char *check = NULL;
  g_autoptr(GBytes) key = NULL;
  g_autoptr(GError) local = NULL;
  gboolean stored = TRUE;

  if (!gk_key_store_refresh_master_key (self, error))
    return FALSE;
  if (self->secrets == NULL)
    return TRUE;

  key = get_master_key (self, &check);
  if (!gk_secret_store_is_stored (self->secrets, gk_database_get_uuid (self->db), check, &stored,
                                  NULL, &local))
    {
      g_set_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_MASTER_KEY_NOT_STORED,
                   _("Cannot check that the master key is still stored, so no key was saved: "
                     "%s"),
                   local->message);
      return FALSE;
    }
  if (!stored)
    {
      g_set_error_literal (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_MASTER_KEY_NOT_STORED,
                           _("The master key of this database is no longer stored (it was "
                             "removed from the keyring or its file), so no key was saved: it "
                             "could not be read after a restart. Store the master key again "
                             "(“gemini-keysctl master-key import FILE” with an exported copy, or "
                             "Store Master Key Again in Gemini Keys) and try again."));
      return FALSE;
    }
  return TRUE;
}

static void
gk_key_store_finalize (GObject *object)
{
  GkKeyStore *self = (GkKeyStore *) object;

  g_clear_object (&self->db);
  g_clear_object (&self->secrets);
  g_clear_pointer (&self->master_key, g_bytes_unref);
  g_clear_pointer (&self->check_value, g_free);
  g_clear_error (&self->reload_error);
  g_mutex_clear (&self->mutex);

  G_OBJECT_CLASS (gk_key_store_parent_class)->finalize (object);
}

static void
gk_key_store_class_init (GkKeyStoreClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gk_key_store_finalize;
}

static void
gk_key_store_init (GkKeyStore *self)
{
  g_mutex_init (&self->mutex);
}

GkKeyStore *
gk_key_store_new (GkDatabase *db,
                  GBytes     *master_key)
{
  GkKeyStore *self;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);
  g_return_val_if_fail (master_key != NULL, NULL);
  g_return_val_if_fail (g_bytes_get_size (master_key) == GK_MASTER_KEY_LEN, NULL);

  self = g_object_new (GK_TYPE_KEY_STORE, NULL);
  self->db = g_object_ref (db);
  self->master_key = g_bytes_ref (master_key);
  self->check_value = gk_crypto_check_value (master_key);
  return self;
}

GkDatabase *
gk_key_store_get_database (GkKeyStore *self)
{
  g_return_val_if_fail (GK_IS_KEY_STORE (self), NULL);
  return self->db;
}

gboolean
gk_key_store_rotate_master_key (GkKeyStore    *self,
                                GCancellable  *cancellable,
                                GError       **error)
{
  g_autoptr(GBytes) old_key = NULL;
  g_autoptr(GBytes) new_key = NULL;

  g_return_val_if_fail (GK_IS_KEY_STORE (self), FALSE);
  g_return_val_if_fail (self->secrets != NULL, FALSE);

  if (!gk_key_store_refresh_master_key (self, error))
    return FALSE;
  old_key = get_master_key (self, NULL);
  new_key = gk_secret_store_rotate_master_key (self->secrets, self->db, old_key, cancellable,
                                               error);
  if (new_key == NULL)
    return FALSE;

  g_mutex_lock (&self->mutex);
  g_clear_pointer (&self->master_key, g_bytes_unref);
  self->master_key = g_steal_pointer (&new_key);
  g_free (self->check_value);
  self->check_value = gk_crypto_check_value (self->master_key);
  g_mutex_unlock (&self->mutex);
  return TRUE;
}

gint64
gk_key_store_add (GkKeyStore       *self,
                  const GkKeySpec  *spec,
                  const char       *api_key,
                  GError          **error)
{
  g_autofree char *uuid = g_uuid_string_random ();
  g_autofree char *fingerprint = NULL;
  GkSqlStmt *stmt;
  gboolean taken;
  gint64 now, id;

  g_return_val_if_fail (GK_IS_KEY_STORE (self), 0);
  g_return_val_if_fail (spec != NULL, 0);

  if (!gk_key_validate_spec (spec, error) || !gk_key_validate_api_key (api_key, error))
    return 0;
  if (!ready_to_encrypt (self, error))
    return 0;

  if (!gk_database_begin (self->db, error))
    return 0;
  if (!master_key_current (self, error))
    {
      gk_database_rollback (self->db);
      return 0;
    }

  now = gk_database_now (self->db);
  stmt = gk_database_prepare (
    self->db,
    "INSERT INTO gemini_api_keys (uuid, name, api_key_encrypted, key_fingerprint, key_hint,"
    " project, status, priority, is_default, monthly_budget_usd, created_at, updated_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11) RETURNING id",
    error);
  if (stmt == NULL)
    goto fail;

  gk_sql_bind_text (stmt, 1, uuid, -1);
  gk_sql_bind_text (stmt, 2, spec->name, -1);
  if (!bind_secret (self, stmt, 3, uuid, api_key, &fingerprint, error))
    goto fail;
  if (!fingerprint_taken (self, fingerprint, 0, &taken, error))
    goto fail;
  bind_nullable_text (stmt, 6, spec->project);
  gk_sql_bind_text (stmt, 7,
                    gk_key_status_to_string (spec->active ? GK_KEY_STATUS_ACTIVE
                                                          : GK_KEY_STATUS_INACTIVE),
                    -1);
  gk_sql_bind_int64 (stmt, 8, spec->priority);
  gk_sql_bind_int64 (stmt, 9, spec->is_default ? 1 : 0);
  bind_budget (stmt, 10, spec->monthly_budget_usd);
  gk_sql_bind_int64 (stmt, 11, now);

  if (spec->is_default && !clear_other_defaults (self, 0, error))
    goto fail;
  id = gk_database_step_insert (self->db, stmt, N_("Cannot save the key"), error);
  if (id == 0)
    goto fail;
  if (!write_quota_limits (self, id, spec, error))
    goto fail;
  {
    g_autoptr(GString) summary = NULL;
    GkKeySpec defaults;

    gk_key_spec_init (&defaults);
    defaults.name = spec->name;
    summary = audit_describe_spec (&defaults, spec, TRUE);
    if (!spec->active)
      gk_audit_summary_add (summary, GK_AUDIT_PHRASE_TURNED_OFF, NULL, NULL);
    if (!gk_audit_record (self->db, GK_AUDIT_KEY_ADD, id, spec->name, summary->str, error))
      goto fail;
  }
  if (!gk_database_commit (self->db, error))
    return 0;

  gk_database_touch (self->db);
  return id;

fail:
  if (stmt != NULL)
    gk_sql_reset (stmt);
  gk_database_rollback (self->db);
  return 0;
}

GPtrArray *
gk_key_store_list (GkKeyStore  *self,
                   GError     **error)
{
  g_return_val_if_fail (GK_IS_KEY_STORE (self), NULL);
  return query_keys (self->db, 0, error);
}

GPtrArray *
gk_key_list_from_database (GkDatabase  *db,
                           GError     **error)
{
  g_return_val_if_fail (db != NULL, NULL);
  return query_keys (db, 0, error);
}

GkKey *
gk_key_store_get (GkKeyStore  *self,
                  gint64       id,
                  GError     **error)
{
  g_autoptr(GPtrArray) keys = NULL;

  g_return_val_if_fail (GK_IS_KEY_STORE (self), NULL);

  if (id <= 0)
    goto not_found;
  keys = query_keys (self->db, id, error);
  if (keys == NULL)
    return NULL;
  if (keys->len == 1)
    return gk_key_copy (g_ptr_array_index (keys, 0));

not_found:
  g_set_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_NOT_FOUND,
               _("There is no key with id %" PRId64 "."), id);
  return NULL;
}

static gboolean
exists (GkKeyStore  *self,
        gint64       id,
        GError     **error)
{
  GkSqlStmt *stmt = gk_database_prepare (self->db,
                                            "SELECT 1 FROM gemini_api_keys"
                                            " WHERE id = ?1 AND deleted_at IS NULL",
                                            error);
  gboolean found;

  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, id);
  found = gk_sql_step (stmt) == GK_SQL_ROW;
  gk_sql_reset (stmt);
  if (!found)
    g_set_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_NOT_FOUND,
                 _("There is no key with id %" PRId64 "."), id);
  return found;
}

/* The audit rows of an edit: one for the changed fields (and a replaced
 * key), one for the active switch when it moved. */
static gboolean
audit_update (GkKeyStore       *self,
              const GkKey      *before,
              const GkKeySpec  *after,
              gboolean          key_replaced,
              GError          **error)
{
  g_autoptr(GString) summary = NULL;
  GkKeySpec old;
  gboolean was_active = before->status != GK_KEY_STATUS_INACTIVE;

  gk_key_spec_from_key (&old, before);
  summary = audit_describe_spec (&old, after, FALSE);
  if (key_replaced)
    gk_audit_summary_add (summary, GK_AUDIT_PHRASE_KEY_REPLACED, NULL, NULL);
  if (summary->len > 0 &&
      !gk_audit_record (self->db, GK_AUDIT_KEY_EDIT, before->id, after->name, summary->str,
                        error))
    return FALSE;
  if (was_active != after->active &&
      !gk_audit_record (self->db, after->active ? GK_AUDIT_KEY_ENABLE : GK_AUDIT_KEY_DISABLE,
                        before->id, after->name, NULL, error))
    return FALSE;
  return TRUE;
}

gboolean
gk_key_store_update (GkKeyStore       *self,
                     gint64            id,
                     const GkKeySpec  *spec,
                     const char       *new_api_key,
                     GError          **error)
{
  g_autofree char *uuid = NULL;
  g_autofree char *fingerprint = NULL;
  g_autoptr(GPtrArray) before = NULL;
  GkSqlStmt *stmt;
  gboolean taken;

  g_return_val_if_fail (GK_IS_KEY_STORE (self), FALSE);
  g_return_val_if_fail (spec != NULL, FALSE);

  if (!gk_key_validate_spec (spec, error))
    return FALSE;
  if (new_api_key != NULL && !gk_key_validate_api_key (new_api_key, error))
    return FALSE;
  if (new_api_key != NULL && !ready_to_encrypt (self, error))
    return FALSE;

  if (!gk_database_begin (self->db, error))
    return FALSE;
  if (!exists (self, id, error))
    goto fail;
  if (new_api_key != NULL && !master_key_current (self, error))
    goto fail;
  before = query_keys (self->db, id, error);
  if (before == NULL || before->len != 1)
    goto fail;

  /* Editing a key clears INVALID and any cooldown: the user has looked at
   * it. The active switch decides between ACTIVE and INACTIVE; a key out of
   * quota stays QUOTA_EXCEEDED until its window resets. */
  stmt = gk_database_prepare (
    self->db,
    "UPDATE gemini_api_keys SET name = ?2, project = ?3, priority = ?4, is_default = ?5,"
    " monthly_budget_usd = ?6, updated_at = ?7,"
    " status = CASE WHEN ?8 = 0 THEN 'INACTIVE'"
    "               WHEN status IN ('INACTIVE', 'INVALID', 'RATE_LIMITED') THEN 'ACTIVE'"
    "               ELSE status END,"
    " status_reason = CASE WHEN status = 'QUOTA_EXCEEDED' AND ?8 != 0 THEN status_reason"
    "                      ELSE NULL END,"
    " cooldown_until = 0, rate_limit_strikes = 0"
    " WHERE id = ?1",
    error);
  if (stmt == NULL)
    goto fail;
  gk_sql_bind_int64 (stmt, 1, id);
  gk_sql_bind_text (stmt, 2, spec->name, -1);
  bind_nullable_text (stmt, 3, spec->project);
  gk_sql_bind_int64 (stmt, 4, spec->priority);
  gk_sql_bind_int64 (stmt, 5, spec->is_default ? 1 : 0);
  bind_budget (stmt, 6, spec->monthly_budget_usd);
  gk_sql_bind_int64 (stmt, 7, gk_database_now (self->db));
  gk_sql_bind_int64 (stmt, 8, spec->active ? 1 : 0);
  if (spec->is_default && !clear_other_defaults (self, id, error))
    goto fail;
  if (!step_done (self->db, stmt, _("Cannot save the key"), error))
    goto fail;

  if (new_api_key != NULL)
    {
      stmt = gk_database_prepare (self->db, "SELECT uuid FROM gemini_api_keys WHERE id = ?1",
                                  error);
      if (stmt == NULL)
        goto fail;
      gk_sql_bind_int64 (stmt, 1, id);
      if (gk_sql_step (stmt) == GK_SQL_ROW)
        uuid = dup_column_text (stmt, 0);
      gk_sql_reset (stmt);

      stmt = gk_database_prepare (self->db,
                                  "UPDATE gemini_api_keys SET api_key_encrypted = ?1,"
                                  " key_fingerprint = ?2, key_hint = ?3 WHERE id = ?4",
                                  error);
      if (stmt == NULL || uuid == NULL)
        goto fail;
      if (!bind_secret (self, stmt, 1, uuid, new_api_key, &fingerprint, error))
        goto fail;
      if (!fingerprint_taken (self, fingerprint, id, &taken, error))
        goto fail;
      gk_sql_bind_int64 (stmt, 4, id);
      if (!step_done (self->db, stmt, _("Cannot save the key"), error))
        goto fail;
    }

  if (!write_quota_limits (self, id, spec, error))
    goto fail;
  if (!audit_update (self, g_ptr_array_index (before, 0), spec, new_api_key != NULL, error))
    goto fail;
  if (!gk_database_commit (self->db, error))
    return FALSE;
  gk_database_touch (self->db);
  return TRUE;

fail:
  gk_database_rollback (self->db);
  return FALSE;
}

gboolean
gk_key_store_delete (GkKeyStore  *self,
                     gint64       id,
                     GError     **error)
{
  GkSqlStmt *stmt;

  g_return_val_if_fail (GK_IS_KEY_STORE (self), FALSE);

  if (!gk_database_begin (self->db, error))
    return FALSE;
  if (!exists (self, id, error))
    goto fail;

  /* secure_delete overwrites the freed ciphertext in the database file; the
   * checkpoint below moves the change out of the WAL. */
  stmt = gk_database_prepare (self->db,
                              "UPDATE gemini_api_keys SET api_key_encrypted = NULL,"
                              " key_fingerprint = NULL, is_default = 0, status = 'INACTIVE',"
                              " status_reason = NULL, deleted_at = ?2, updated_at = ?2"
                              " WHERE id = ?1",
                              error);
  if (stmt == NULL)
    goto fail;
  gk_sql_bind_int64 (stmt, 1, id);
  gk_sql_bind_int64 (stmt, 2, gk_database_now (self->db));
  if (!step_done (self->db, stmt, _("Cannot delete the key"), error))
    goto fail;
  if (!gk_audit_record (self->db, GK_AUDIT_KEY_DELETE, id, NULL, NULL, error))
    goto fail;
  if (!gk_database_commit (self->db, error))
    return FALSE;

  gk_database_checkpoint (self->db);
  gk_database_touch (self->db);
  return TRUE;

fail:
  gk_database_rollback (self->db);
  return FALSE;
}

/* Decrypts @blob, the ciphertext of the key row @uuid (named @name). */
static GBytes *
decrypt_secret (GkKeyStore  *self,
                const char  *uuid,
                const char  *name,
                GBytes      *blob,
                GError     **error)
{
  g_autoptr(GError) local_error = NULL;
  GBytes *plain = NULL;

  if (blob != NULL)
    {
      g_autoptr(GBytes) master_key = get_master_key (self, NULL);

      plain = gk_crypto_decrypt (master_key, uuid, g_bytes_get_data (blob, NULL),
                                 g_bytes_get_size (blob), &local_error);
      /* Another process may have rotated the master key: pick up the new
       * one and try once more, so the caller never sees the change. */
      if (plain == NULL)
        {
          g_autoptr(GBytes) reloaded = NULL;

          if (!gk_key_store_refresh_master_key (self, error))
            return NULL;
          reloaded = get_master_key (self, NULL);
          if (!g_bytes_equal (reloaded, master_key))
            plain = gk_crypto_decrypt (reloaded, uuid, g_bytes_get_data (blob, NULL),
                                       g_bytes_get_size (blob), NULL);
        }
    }
  if (plain == NULL && !master_key_current (self, error))
    return NULL;
  if (plain == NULL)
    {
      /* The master key matches the database, so this row alone is bad. */
      g_set_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_CORRUPT,
                   _("The stored key “%s” cannot be decrypted: its row is damaged. Edit the key "
                     "and enter it again; the other keys are not affected."),
                   name && g_utf8_validate (name, -1, NULL) ? name : "?");
      return NULL;
    }
  return plain;
}

GBytes *
gk_key_store_reveal (GkKeyStore  *self,
                     gint64       id,
                     GError     **error)
{
  g_autofree char *uuid = NULL;
  g_autofree char *name = NULL;
  g_autoptr(GBytes) blob = NULL;
  GkSqlStmt *stmt;

  g_return_val_if_fail (GK_IS_KEY_STORE (self), NULL);

  gk_database_lock (self->db);
  stmt = gk_database_prepare (self->db,
                              "SELECT uuid, name, api_key_encrypted FROM gemini_api_keys"
                              " WHERE id = ?1 AND deleted_at IS NULL",
                              error);
  if (stmt == NULL)
    {
      gk_database_unlock (self->db);
      return NULL;
    }
  gk_sql_bind_int64 (stmt, 1, id);
  if (gk_sql_step (stmt) == GK_SQL_ROW)
    {
      uuid = dup_column_text (stmt, 0);
      name = dup_column_text (stmt, 1);
      if (gk_sql_column_type (stmt, 2) == GK_SQL_BLOB)
        blob = g_bytes_new (gk_sql_column_blob (stmt, 2), gk_sql_column_bytes (stmt, 2));
    }
  gk_sql_reset (stmt);
  gk_database_unlock (self->db);

  if (uuid == NULL)
    {
      g_set_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_NOT_FOUND,
                   _("There is no key with id %" PRId64 "."), id);
      return NULL;
    }
  return decrypt_secret (self, uuid, name, blob, error);
}

GBytes *
gk_key_store_reveal_key (GkKeyStore   *self,
                         const GkKey  *key,
                         GError      **error)
{
  g_return_val_if_fail (GK_IS_KEY_STORE (self), NULL);
  g_return_val_if_fail (key != NULL, NULL);

  if (key->ciphertext == NULL)
    return gk_key_store_reveal (self, key->id, error);
  return decrypt_secret (self, key->uuid, key->name, key->ciphertext, error);
}

/**
 * gk_key_store_disclose:
 *
 * gk_key_store_reveal() for a person: the key is shown or copied
 * (@action GK_AUDIT_KEY_REVEAL or GK_AUDIT_KEY_COPY), which the audit log
 * records.
 */
GBytes *
gk_key_store_disclose (GkKeyStore     *self,
                       gint64          id,
                       GkAuditAction   action,
                       GError        **error)
{
  g_autoptr(GBytes) plain = NULL;

  g_return_val_if_fail (action == GK_AUDIT_KEY_REVEAL || action == GK_AUDIT_KEY_COPY, NULL);

  plain = gk_key_store_reveal (self, id, error);
  if (plain == NULL || !gk_audit_record (self->db, action, id, NULL, NULL, error))
    return NULL;
  return g_steal_pointer (&plain);
}

gboolean
gk_key_store_set_status (GkKeyStore   *self,
                         gint64        id,
                         GkKeyStatus   status,
                         const char   *reason,
                         GError      **error)
{
  GkSqlStmt *stmt;
  gboolean was_inactive;

  g_return_val_if_fail (GK_IS_KEY_STORE (self), FALSE);

  if (!gk_database_begin (self->db, error))
    return FALSE;
  if (!exists (self, id, error))
    goto fail;
  stmt = gk_database_prepare (self->db, "SELECT status FROM gemini_api_keys WHERE id = ?1",
                              error);
  if (stmt == NULL)
    goto fail;
  gk_sql_bind_int64 (stmt, 1, id);
  was_inactive = gk_sql_step (stmt) == GK_SQL_ROW &&
                 g_strcmp0 (gk_sql_column_text (stmt, 0),
                            gk_key_status_to_string (GK_KEY_STATUS_INACTIVE)) == 0;
  gk_sql_reset (stmt);
  stmt = gk_database_prepare (self->db,
                              "UPDATE gemini_api_keys SET status = ?2, status_reason = ?3,"
                              " updated_at = ?4,"
                              " cooldown_until = CASE WHEN ?2 = 'ACTIVE' THEN 0"
                              "                       ELSE cooldown_until END"
                              " WHERE id = ?1",
                              error);
  if (stmt == NULL)
    goto fail;
  gk_sql_bind_int64 (stmt, 1, id);
  gk_sql_bind_text (stmt, 2, gk_key_status_to_string (status), -1);
  bind_nullable_text (stmt, 3, reason);
  gk_sql_bind_int64 (stmt, 4, gk_database_now (self->db));
  if (!step_done (self->db, stmt, _("Cannot change the key's status"), error))
    goto fail;
  /* Turning a key off or back on is a person's act; other changes (a
   * test's verdict) are the key's own news, not audited. */
  if ((status == GK_KEY_STATUS_INACTIVE) != was_inactive &&
      (status == GK_KEY_STATUS_INACTIVE || status == GK_KEY_STATUS_ACTIVE) &&
      !gk_audit_record (self->db,
                        was_inactive ? GK_AUDIT_KEY_ENABLE : GK_AUDIT_KEY_DISABLE,
                        id, NULL, reason, error))
    goto fail;
  if (!gk_database_commit (self->db, error))
    return FALSE;
  gk_database_touch (self->db);
  return TRUE;

fail:
  gk_database_rollback (self->db);
  return FALSE;
}

/**
 * gk_key_store_set_secret_store:
 *
 * Where the store reloads the master key from when another process
 * rotates it (gk_key_store_refresh_master_key()), and checks that it is
 * still stored before saving a key.
 */
void
gk_key_store_set_secret_store (GkKeyStore    *self,
                               GkSecretStore *secrets)
{
  g_return_if_fail (GK_IS_KEY_STORE (self));
  g_return_if_fail (secrets == NULL || GK_IS_SECRET_STORE (secrets));

  g_set_object (&self->secrets, secrets);
}

/**
 * gk_key_store_refresh_master_key:
 *
 * Cheap when nothing changed (one read of the key check value). When
 * another process rotated the master key, reloads it from the secret
 * store; MASTER_KEY_UNAVAILABLE (MASTER_KEY_CHANGED without a secret store)
 * when the new key cannot be had. A failure is kept for RELOAD_RETRY_US
 * before the keyring is asked again.
 */
gboolean
gk_key_store_refresh_master_key (GkKeyStore  *self,
                                 GError     **error)
{
  g_autofree char *stored = NULL;
  g_autofree char *ours = NULL;
  g_autoptr(GBytes) current = NULL;
  g_autoptr(GBytes) reloaded = NULL;
  g_autoptr(GError) local = NULL;
  gint64 now;

  g_return_val_if_fail (GK_IS_KEY_STORE (self), FALSE);

  stored = gk_database_get_meta (self->db, META_CHECK_VALUE);
  current = get_master_key (self, &ours);
  if (stored == NULL || gk_crypto_equal_const_time (stored, ours))
    {
      g_mutex_lock (&self->mutex);
      g_clear_error (&self->reload_error);
      g_mutex_unlock (&self->mutex);
      return TRUE;
    }
  if (self->secrets == NULL)
    return master_key_current (self, error);

  now = g_get_monotonic_time ();
  g_mutex_lock (&self->mutex);
  if (self->reload_error != NULL && now - self->reload_failed_at < RELOAD_RETRY_US)
    {
      g_propagate_error (error, g_error_copy (self->reload_error));
      g_mutex_unlock (&self->mutex);
      return FALSE;
    }
  g_mutex_unlock (&self->mutex);

  reloaded = gk_secret_store_unlock (self->secrets, self->db, NULL, &local);

  g_mutex_lock (&self->mutex);
  if (reloaded != NULL)
    {
      g_clear_pointer (&self->master_key, g_bytes_unref);
      g_free (self->check_value);
      self->master_key = g_bytes_ref (reloaded);
      self->check_value = gk_crypto_check_value (reloaded);
      g_clear_error (&self->reload_error);
      g_mutex_unlock (&self->mutex);
      return TRUE;
    }
  g_clear_error (&self->reload_error);
  self->reload_error = g_error_new (GK_KEY_STORE_ERROR,
                                    GK_KEY_STORE_ERROR_MASTER_KEY_UNAVAILABLE,
                                    _("The master key was changed by another program and the new "
                                      "one cannot be read: %s"),
                                    local->message);
  self->reload_failed_at = now;
  g_propagate_error (error, g_error_copy (self->reload_error));
  g_mutex_unlock (&self->mutex);
  return FALSE;
}

/**
 * gk_key_store_store_master_key:
 *
 * Stores the master key in use again (after its keyring item or file was
 * removed while the store was open).
 */
gboolean
gk_key_store_store_master_key (GkKeyStore  *self,
                               GError     **error)
{
  g_autoptr(GBytes) key = NULL;

  g_return_val_if_fail (GK_IS_KEY_STORE (self), FALSE);
  g_return_val_if_fail (self->secrets != NULL, FALSE);

  key = get_master_key (self, NULL);
  return gk_secret_store_store (self->secrets, gk_database_get_uuid (self->db), key, NULL, error);
}

/**
 * gk_key_store_check_master_key_stored:
 *
 * Whether the master key in use is still stored (keyring item or file);
 * FALSE with @error when that cannot be known. Blocks on the keyring.
 */
gboolean
gk_key_store_check_master_key_stored (GkKeyStore  *self,
                                      gboolean    *stored,
                                      GError     **error)
{
  g_autofree char *check = NULL;
  g_autoptr(GBytes) key = NULL;

  g_return_val_if_fail (GK_IS_KEY_STORE (self), FALSE);
  g_return_val_if_fail (stored != NULL, FALSE);

  *stored = TRUE;
  if (self->secrets == NULL)
    return TRUE;
  key = get_master_key (self, &check);
  return gk_secret_store_is_stored (self->secrets, gk_database_get_uuid (self->db), check, stored,
                                    NULL, error);
}

gboolean
gk_key_store_contains (GkKeyStore  *self,
                       const char  *api_key,
                       gboolean    *found,
                       char       **name_out,
                       GError     **error)
{
  g_autofree char *fingerprint = NULL;
  g_autoptr(GBytes) master_key = NULL;
  GkSqlStmt *stmt;
  int rc;

  g_return_val_if_fail (GK_IS_KEY_STORE (self), FALSE);
  g_return_val_if_fail (api_key != NULL && found != NULL, FALSE);

  master_key = get_master_key (self, NULL);
  fingerprint = gk_crypto_fingerprint (master_key, api_key);
  gk_database_lock (self->db);
  stmt = gk_database_prepare (self->db,
                              "SELECT name FROM gemini_api_keys WHERE key_fingerprint = ?1",
                              error);
  if (stmt == NULL)
    {
      gk_database_unlock (self->db);
      return FALSE;
    }
  gk_sql_bind_text (stmt, 1, fingerprint, -1);
  rc = gk_sql_step (stmt);
  *found = rc == GK_SQL_ROW;
  if (*found && name_out != NULL)
    *name_out = g_strdup (gk_sql_column_text (stmt, 0));
  if (rc != GK_SQL_ROW && rc != GK_SQL_DONE)
    gk_database_set_error (self->db, error, _("Cannot check for duplicate keys"));
  gk_sql_reset (stmt);
  gk_database_unlock (self->db);
  return rc == GK_SQL_ROW || rc == GK_SQL_DONE;
}
