/* gk-backend.h: the GUI's handle on the core engine.
 *
 * Holds the database, and once the master key is unlocked the key store
 * and the pool. Pages read through it with core calls run in worker
 * threads (g_task_run_in_thread); nothing here blocks the main thread.
 * "changed" is emitted on the main thread whenever the data may have
 * changed: our own writes, another process's (polled), quota resets.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-core.h"

G_BEGIN_DECLS

#define GK_TYPE_BACKEND (gk_backend_get_type ())
G_DECLARE_FINAL_TYPE (GkBackend, gk_backend, GK, BACKEND, GObject)

/* What a job works on: references taken on the main thread when the job
 * starts. A job never reads the backend itself, which may be disposed
 * (quitting) while the job runs. Each is NULL when the backend has none
 * yet: db until the database is open, key_store and pool until unlocked. */
typedef struct
{
  GkDatabase    *db;
  GkSecretStore *secret_store;
  GkKeyStore    *key_store;
  GkPool        *pool;
} GkBackendRefs;

/* A piece of work run in a worker thread by gk_backend_run_async(). It
 * returns its result (freed with the result_free given there), or NULL
 * with @error set. Jobs with no result return GINT_TO_POINTER (TRUE). */
typedef gpointer (*GkBackendJob) (const GkBackendRefs  *refs,
                                  gpointer              data,
                                  GError              **error);

GkDatabase *gk_backend_get_database  (GkBackend *self);
/* NULL until unlocked. */
GkKeyStore *gk_backend_get_key_store (GkBackend *self);
GkPool     *gk_backend_get_pool      (GkBackend *self);
/* Emits "changed" (after a write the caller made). */
void        gk_backend_notify_changed (GkBackend *self);

/* @db_path: NULL for gk_database_default_target() ($GEMINI_KEYS_DATABASE, else
 * the local file). */
GkBackend  *gk_backend_new           (const char          *db_path);
GkSecretStore *gk_backend_get_secret_store (GkBackend     *self);
gboolean    gk_backend_is_ready      (GkBackend           *self);

/* Opens (and migrates) the database in a worker thread, then unlocks the
 * master key (gk_secret_store_unlock_async). On success the key store and
 * pool exist, polling and the reset timer run, and "ready" is emitted.
 * Errors: GK_DATABASE_ERROR_* or GK_SECRET_ERROR_*. May be called again
 * after a failure (Retry). */
void        gk_backend_load_async    (GkBackend           *self,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data);
gboolean    gk_backend_load_finish   (GkBackend           *self,
                                      GAsyncResult        *result,
                                      GError             **error);

/* Imports a master key file (gk_secret_store_import_file) in a worker
 * thread. The database must be open (a failed load still opens it). */
void        gk_backend_import_key_file_async  (GkBackend           *self,
                                               GFile               *file,
                                               GCancellable        *cancellable,
                                               GAsyncReadyCallback  callback,
                                               gpointer             user_data);
gboolean    gk_backend_import_key_file_finish (GkBackend           *self,
                                               GAsyncResult        *result,
                                               GError             **error);

/* Stores the master key in use again, after its keyring item or file was
 * removed ("master-key-stored" said FALSE). */
void        gk_backend_store_master_key_async  (GkBackend           *self,
                                                GCancellable        *cancellable,
                                                GAsyncReadyCallback  callback,
                                                gpointer             user_data);
gboolean    gk_backend_store_master_key_finish (GkBackend           *self,
                                                GAsyncResult        *result,
                                                GError             **error);

/* Runs @job in a worker thread. @data is freed with @data_free after the
 * job ran; the result is owned by the GTask and freed with @result_free
 * unless gk_backend_run_finish() took it. */
void        gk_backend_run_async     (GkBackend           *self,
                                      GkBackendJob         job,
                                      gpointer             data,
                                      GDestroyNotify       data_free,
                                      GDestroyNotify       result_free,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data);
/* Returns the job's result (transfer full), or NULL with @error set. */
gpointer    gk_backend_run_finish    (GkBackend           *self,
                                      GAsyncResult        *result,
                                      GError             **error);

/* Writes a setting (gk_database_set_setting) in a worker thread and emits
 * "setting-changed" with its name. */
void        gk_backend_set_setting_async  (GkBackend           *self,
                                           const char          *key,
                                           const char          *value,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data);
gboolean    gk_backend_set_setting_finish (GkBackend           *self,
                                           GAsyncResult        *result,
                                           GError             **error);

/* The gateway's client tokens (gk-token-store), each call in a worker
 * thread. The list holds the live tokens only (GkToken, oldest first).
 * The created token's text is returned once: wipe it with
 * gk_crypto_wipe_string() when it is no longer shown. Create and revoke
 * emit "changed" when they succeed. */
void        gk_backend_list_tokens_async   (GkBackend           *self,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);
GPtrArray  *gk_backend_list_tokens_finish  (GkBackend           *self,
                                            GAsyncResult        *result,
                                            GError             **error);
void        gk_backend_create_token_async  (GkBackend           *self,
                                            const char          *name,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);
char       *gk_backend_create_token_finish (GkBackend           *self,
                                            GAsyncResult        *result,
                                            GError             **error);
void        gk_backend_revoke_token_async  (GkBackend           *self,
                                            gint64               id,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);
gboolean    gk_backend_revoke_token_finish (GkBackend           *self,
                                            GAsyncResult        *result,
                                            GError             **error);

/* The in-process gateway (FALSE when the gateway is not built in).
 * Starting and stopping it emit "gateway-changed". */
gboolean    gk_backend_has_gateway         (void);
gboolean    gk_backend_start_gateway       (GkBackend           *self,
                                            guint                port,
                                            GError             **error);
void        gk_backend_stop_gateway        (GkBackend           *self);
gboolean    gk_backend_get_gateway_running (GkBackend           *self);
guint       gk_backend_get_gateway_port    (GkBackend           *self);

/* Tests one key against the upstream (gateway), or fails with
 * G_IO_ERROR_NOT_SUPPORTED when the gateway is not built in. */
void        gk_backend_test_key_async      (GkBackend           *self,
                                            gint64               key_id,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);
gboolean    gk_backend_test_key_finish     (GkBackend           *self,
                                            GAsyncResult        *result,
                                            GError             **error);

/* What a failed key test means, for a short message naming the key. */
typedef enum
{
  GK_KEY_TEST_FAILED,       /* anything else: the details say what */
  GK_KEY_TEST_REJECTED,     /* Google rejected the key */
  GK_KEY_TEST_UNREACHABLE,  /* Google could not be reached */
} GkKeyTestFailure;

GkKeyTestFailure gk_backend_classify_test_error (const GError *error);

/* g_set_object() for a backend that @owner watches: moves @owner's
 * "changed" handler (@changed_cb, called with @owner only) from the old
 * backend to @backend, which may be NULL (as in dispose). Returns FALSE,
 * changing nothing, when *@backend_ptr already is @backend. */
gboolean    gk_backend_set_watched         (GkBackend          **backend_ptr,
                                            GkBackend           *backend,
                                            GCallback            changed_cb,
                                            gpointer             owner);

/* What the backend opens: a file's path, or a team database's redacted
 * connection URI. NULL for gk_backend_new() picks the team database kept in
 * the settings (Preferences → Team Pool) unless GEMINI_KEYS_DATABASE is set,
 * else gk_database_default_path(). */
const char *gk_backend_get_target          (GkBackend           *self);
gboolean    gk_backend_is_team             (GkBackend           *self);
/* The team database the settings keep ("" for none), whichever is open. */
char       *gk_backend_dup_team_setting    (void);

/* Opens the database at @target (a team database's connection URI, as
 * gk_team_database_check_target() accepts; NULL for this computer's file)
 * in a worker thread, with @password (NULL or "": the one the keyring
 * keeps, if any). On success it takes the place of the one in use:
 * "database-changed" is emitted, and gk_backend_load_async() unlocks it.
 * With @remember the choice is kept for the next start (the setting holds
 * the target, the keyring the password given, once the server let it in)
 * and a team database left behind has its password removed; without it,
 * nothing is kept (falling back to the file for this run). */
void        gk_backend_switch_async        (GkBackend           *self,
                                            const char          *target,
                                            const char          *password,
                                            gboolean             remember,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);
gboolean    gk_backend_switch_finish       (GkBackend           *self,
                                            GAsyncResult        *result,
                                            GError             **error);

/* The "triggered_by" of the user's own actions: "manual:<user name>". */
char       *gk_backend_manual_trigger      (void);

G_END_DECLS
