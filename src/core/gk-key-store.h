/* gk-key-store.h: the encrypted keys: create, list, get, update, delete.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-audit.h"
#include "gk-types.h"

G_BEGIN_DECLS

#define GK_KEY_STORE_ERROR (gk_key_store_error_quark ())

typedef enum
{
  GK_KEY_STORE_ERROR_INVALID_NAME,
  GK_KEY_STORE_ERROR_INVALID_KEY,
  GK_KEY_STORE_ERROR_INVALID_PRIORITY,
  GK_KEY_STORE_ERROR_INVALID_QUOTA,
  GK_KEY_STORE_ERROR_INVALID_BUDGET,
  GK_KEY_STORE_ERROR_INVALID_PROJECT,
  GK_KEY_STORE_ERROR_DUPLICATE,
  GK_KEY_STORE_ERROR_NOT_FOUND,
  GK_KEY_STORE_ERROR_CORRUPT,    /* this row's ciphertext does not decrypt */
  GK_KEY_STORE_ERROR_MASTER_KEY_CHANGED, /* another process rotated the master key */
  GK_KEY_STORE_ERROR_MASTER_KEY_UNAVAILABLE, /* …and the new one cannot be read */
  GK_KEY_STORE_ERROR_MASTER_KEY_NOT_STORED,  /* the key in use is stored nowhere */
} GkKeyStoreError;

#define GK_KEY_NAME_MAX_CHARS 100
#define GK_KEY_PRIORITY_MIN   1
#define GK_KEY_PRIORITY_MAX   10
#define GK_KEY_PRIORITY_DEFAULT 5

typedef struct
{
  GkQuotaType type;
  GkQuotaUnit unit;
  gint64      limit_value;   /* 0 = unlimited */
  gint64      used_value;
  gint64      reset_at;      /* UTC seconds of the window's end */
} GkQuota;

/* A key row as read from the database; never holds the plaintext key. */
typedef struct
{
  gint64       id;
  char        *uuid;
  char        *name;
  char        *key_hint;          /* last 4 characters */
  char        *project;           /* NULL when unset */
  GkKeyStatus  status;
  char        *status_reason;     /* NULL or a short English reason */
  gint64       cooldown_until;    /* 0 when none */
  int          priority;
  gboolean     is_default;
  double       monthly_budget_usd; /* < 0: no budget */
  double       month_cost_usd;
  gint64       created_at;
  gint64       updated_at;
  gint64       last_used_at;      /* 0 = never */
  gint64       last_rotation_at;  /* 0 = never */
  gint64       deleted_at;        /* 0 = not deleted */
  gboolean     has_ciphertext;
  GkQuota      quotas[GK_QUOTA_N_SLOTS];
  int          last_rotation_reason; /* a GkRotationReason; -1 = never rotated */
  /* Derived when the key is read (gk_key_update_state): what the stored
   * fields mean at that moment. */
  GkKeyState   state;
  char        *state_reason;      /* translated; NULL when nothing to say */
  gint64       state_until;       /* UTC seconds it is back by itself; 0 = not by itself */
  /* The encrypted key as the pool's snapshot holds it (gk_pool_select), so
   * that a request decrypts it without reading the row; NULL elsewhere. */
  GBytes      *ciphertext;
} GkKey;

/* What the user sets when adding or editing a key. */
typedef struct
{
  const char *name;
  int         priority;
  const char *project;             /* NULL or "" = none */
  double      monthly_budget_usd;  /* < 0 = none */
  gboolean    is_default;
  gboolean    active;              /* FALSE = INACTIVE */
  gint64      limits[GK_QUOTA_N_SLOTS]; /* 0 = unlimited */
} GkKeySpec;

#define GK_TYPE_KEY (gk_key_get_type ())
GType       gk_key_get_type          (void) G_GNUC_CONST;
GkKey      *gk_key_copy              (const GkKey *key);
void        gk_key_free              (GkKey       *key);
/* "AIza…wxyz"-style masked form: never more than the hint. */
char       *gk_key_get_masked        (const GkKey *key);
/* The smallest remaining share (0.0–1.0) over the limited quotas; 1.0 when
 * every quota is unlimited. */
double      gk_key_remaining_share   (const GkKey *key);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GkKey, gk_key_free)

void        gk_key_spec_init         (GkKeySpec   *spec);
/* Fills @spec from an existing key (strings point into @key). */
void        gk_key_spec_from_key     (GkKeySpec   *spec,
                                      const GkKey *key);

#define GK_TYPE_KEY_STORE (gk_key_store_get_type ())
G_DECLARE_FINAL_TYPE (GkKeyStore, gk_key_store, GK, KEY_STORE, GObject)

GQuark      gk_key_store_error_quark (void);

/* Validation used by the store and, for inline errors, by the UI and CLI.
 * Messages are translated and say what to fix. */
gboolean    gk_key_validate_name     (const char      *name,
                                      GError         **error);
gboolean    gk_key_validate_api_key  (const char      *api_key,
                                      GError         **error);
gboolean    gk_key_validate_spec     (const GkKeySpec *spec,
                                      GError         **error);

/* @master_key: secure bytes from gk_secret_store_unlock(). */
GkKeyStore *gk_key_store_new         (GkDatabase      *db,
                                      GBytes          *master_key);
GkDatabase *gk_key_store_get_database (GkKeyStore     *self);

/* With a secret store, the store follows master-key rotations made by other
 * processes (reloading the key by its check value) and checks that its key
 * is still stored before saving a key (MASTER_KEY_NOT_STORED otherwise). */
void        gk_key_store_set_secret_store (GkKeyStore    *self,
                                           GkSecretStore *secrets);
/* One read of the key check value when nothing changed; reloads the master
 * key when another process rotated it (MASTER_KEY_UNAVAILABLE when it
 * cannot). Thread-safe. */
gboolean    gk_key_store_refresh_master_key (GkKeyStore  *self,
                                             GError     **error);
/* Blocks on the keyring: call from a worker thread. */
gboolean    gk_key_store_check_master_key_stored (GkKeyStore  *self,
                                                  gboolean    *stored,
                                                  GError     **error);
gboolean    gk_key_store_store_master_key (GkKeyStore  *self,
                                           GError     **error);

/* Moves every key to a new master key (gk_secret_store_rotate_master_key()
 * with this store's key and secret store, which it needs) and goes on with
 * the new one. Blocks on the keyring: call from a worker thread. */
gboolean    gk_key_store_rotate_master_key (GkKeyStore   *self,
                                            GCancellable *cancellable,
                                            GError      **error);
/* Returns the new key's id, or 0 with @error set. */
gint64      gk_key_store_add         (GkKeyStore      *self,
                                      const GkKeySpec *spec,
                                      const char      *api_key,
                                      GError         **error);
/* Keys not deleted, ordered by id, their state derived now. Element type
 * GkKey. */
GPtrArray  *gk_key_store_list        (GkKeyStore      *self,
                                      GError         **error);
/* The same from a database alone (no master key is needed to list). */
GPtrArray  *gk_key_list_from_database (GkDatabase     *db,
                                      GError         **error);
/* A key by id; deleted keys are NOT_FOUND. */
GkKey      *gk_key_store_get         (GkKeyStore      *self,
                                      gint64           id,
                                      GError         **error);
/* Replaces the user-set fields; @new_api_key (nullable) replaces the key.
 * Editing clears an INVALID status. */
gboolean    gk_key_store_update      (GkKeyStore      *self,
                                      gint64           id,
                                      const GkKeySpec *spec,
                                      const char      *new_api_key,
                                      GError         **error);
/* Destroys the ciphertext and hides the key; its history stays. */
gboolean    gk_key_store_delete      (GkKeyStore      *self,
                                      gint64           id,
                                      GError         **error);
/* The plaintext key as secure bytes (NUL-terminated). CORRUPT when only
 * this row fails to decrypt. */
GBytes     *gk_key_store_reveal      (GkKeyStore      *self,
                                      gint64           id,
                                      GError         **error);
/* gk_key_store_reveal() of @key, from the ciphertext it carries when it has
 * one (a key from gk_pool_select), else from its row. */
GBytes     *gk_key_store_reveal_key  (GkKeyStore      *self,
                                      const GkKey     *key,
                                      GError         **error);
/* gk_key_store_reveal() for a person, who sees (@action
 * GK_AUDIT_KEY_REVEAL) or copies (GK_AUDIT_KEY_COPY) the key: recorded in
 * the audit log. */
GBytes     *gk_key_store_disclose    (GkKeyStore      *self,
                                      gint64           id,
                                      GkAuditAction    action,
                                      GError         **error);
/* Sets a key's status by hand (ACTIVE after a successful test clears
 * INVALID; INACTIVE/ACTIVE from the UI). */
gboolean    gk_key_store_set_status  (GkKeyStore      *self,
                                      gint64           id,
                                      GkKeyStatus      status,
                                      const char      *reason,
                                      GError         **error);

/* Whether @api_key is already in the pool (by fingerprint, without
 * decrypting anything). On TRUE, @name_out (if not NULL) receives the
 * name it is stored under. */
gboolean    gk_key_store_contains    (GkKeyStore      *self,
                                      const char      *api_key,
                                      gboolean        *found,
                                      char           **name_out,
                                      GError         **error);

G_END_DECLS
