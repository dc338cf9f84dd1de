/* gk-backend.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-backend.h"

#ifdef GK_HAVE_GATEWAY
# include "gk-gateway.h"
#endif

/* The setting naming the team database (empty: the local file), and the
 * variable naming a database for one run, which wins over it. */
#define TEAM_DATABASE_KEY "team-database"
#define DATABASE_ENV      "GEMINI_KEYS_DATABASE"

/* Another process's commits show up within this many seconds. */
#define POLL_INTERVAL_S 1

/* The reset timer never sleeps longer than this. g_timeout_add_seconds()
 * counts on the monotonic clock, which stands still while the machine is
 * suspended and ignores changes to the wall clock; a boundary computed
 * before a suspend or a clock change would fire late by that much. Waking
 * at least once a minute to re-read the wall clock bounds the lag, and the
 * check is one cheap query (gk_quotas_reset_expired when nothing is due). */
#define RESET_MAX_DELAY_S 60

struct _GkBackend
{
  GObject        parent_instance;

  char          *db_path;      /* a file, or a connection string: show it redacted */
  GkDatabase    *db;
  GMainLoop     *watch_loop;   /* a team database's change watch, see watch_start() */
  GkSecretStore *secret_store;
  GkKeyStore    *key_store;
  GkPool        *pool;
#ifdef GK_HAVE_GATEWAY
  GkGateway     *gateway;
#endif

  GCancellable  *cancellable;

  guint          poll_source;
  gboolean       poll_in_flight;
  gint64         data_version;
  guint          gateway_usage;      /* gk_gateway_get_usage_count() as last polled */
  guint          poll_count;
  gboolean       master_key_stored;  /* as last checked */
  gboolean       keyring_prompting;

  guint          reset_source;
  gint64         reset_target;     /* the boundary the timer waits for; 0 = none */
  gboolean       reset_in_flight;
  gboolean       reset_again;      /* data changed during a tick: recompute */

  /* Bumped when another database takes this one's place: what the poll
   * and the reset timer started before then is dropped. */
  guint          generation;
  gboolean       switched;         /* "changed" once the new one is unlocked */
};

G_DEFINE_FINAL_TYPE (GkBackend, gk_backend, G_TYPE_OBJECT)

enum {
  CHANGED,
  DATABASE_CHANGED,
  SETTING_CHANGED,
  MASTER_KEY_STORED,
  KEYRING_PROMPTING,
  GATEWAY_CHANGED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

typedef struct
{
  GkKeyStore *key_store;
  GkPool     *pool;
  gint64      data_version;
  gboolean    gateway_enabled;
  guint       gateway_port;
} LoadResult;

static void
load_result_free (LoadResult *result)
{
  g_clear_object (&result->key_store);
  g_clear_object (&result->pool);
  g_free (result);
}

static void reset_tick (GkBackend *self);
static void rearm_reset_timer (GkBackend *self);

/* Watching a team database */

/* On a server, other members' changes move data_version only through a
 * change watch (gk_database_watch_source_new). Its connection is made and
 * made again with blocking calls, so it runs in a thread of its own,
 * never on the main thread; the poll below then sees the changes as it
 * does another process's commits to the local file. */

typedef struct
{
  GMainLoop  *loop;
  GkDatabase *db;
} WatchJob;

static gpointer
watch_thread (gpointer data)
{
  WatchJob *job = data;
  GMainContext *context = g_main_loop_get_context (job->loop);
  GSource *source;

  g_main_context_push_thread_default (context);
  source = gk_database_watch_source_new (job->db);
  if (source != NULL)
    g_source_attach (source, context);
  g_main_loop_run (job->loop);
  if (source != NULL)
    {
      g_source_destroy (source);
      g_source_unref (source);
    }
  g_main_context_pop_thread_default (context);
  g_main_loop_unref (job->loop);
  g_object_unref (job->db);
  g_free (job);
  return NULL;
}

/* Starts watching @self's database when it is a server's. */
static void
watch_start (GkBackend *self)
{
  g_autoptr(GMainContext) context = NULL;
  WatchJob *job;

  if (self->db == NULL || !gk_database_target_is_remote (gk_database_get_path (self->db)))
    return;
  context = g_main_context_new ();
  self->watch_loop = g_main_loop_new (context, FALSE);
  job = g_new0 (WatchJob, 1);
  job->loop = g_main_loop_ref (self->watch_loop);
  job->db = g_object_ref (self->db);
  /* Not joined: stopping never waits for a connection attempt. */
  g_thread_unref (g_thread_new ("gk-database-watch", watch_thread, job));
}

static void
watch_stop (GkBackend *self)
{
  if (self->watch_loop == NULL)
    return;
  g_main_loop_quit (self->watch_loop);
  g_clear_pointer (&self->watch_loop, g_main_loop_unref);
}

/* Polling for other processes' writes */

/* Every this many polls, whether the master key is still stored (a
 * keyring round trip, so not every second). */
#define STORED_CHECK_EVERY 3

typedef struct
{
  gint64   version;
  int      stored;   /* -1: not checked this time */
} PollResult;

/* @data: whether to check that the master key is still stored. */
static gpointer
poll_job (const GkBackendRefs  *refs,
          gpointer              data,
          GError              **error)
{
  PollResult *result = g_new (PollResult, 1);

  result->version = gk_database_get_data_version (refs->db);
  result->stored = -1;
  if (refs->key_store != NULL)
    {
      /* A rotation by another process: one read of the check value, and
       * the new key fetched when it changed. */
      gk_key_store_refresh_master_key (refs->key_store, NULL);
      if (GPOINTER_TO_INT (data))
        {
          gboolean stored = TRUE;

          if (gk_key_store_check_master_key_stored (refs->key_store, &stored, NULL))
            result->stored = stored;
        }
    }
  return result;
}

static void
set_master_key_stored (GkBackend *self,
                       gboolean   stored)
{
  if (self->master_key_stored == stored)
    return;
  self->master_key_stored = stored;
  if (!stored)
    g_message ("The master key of this database is no longer stored; keys cannot be added "
               "until it is stored again");
  g_signal_emit (self, signals[MASTER_KEY_STORED], 0, stored);
}

static void
poll_done_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  GkBackend *self = GK_BACKEND (object);
  g_autofree PollResult *polled = NULL;
  guint usage;

  self->poll_in_flight = FALSE;
  polled = gk_backend_run_finish (self, result, NULL);
  if (polled == NULL || GPOINTER_TO_UINT (user_data) != self->generation)
    return;
  self->poll_count++;
  if (polled->stored >= 0)
    set_master_key_stored (self, polled->stored);
  usage = self->gateway_usage;
#ifdef GK_HAVE_GATEWAY
  /* The gateway in this process writes its usage rows over this
   * connection, where they do not move data_version. */
  if (self->gateway != NULL)
    usage = gk_gateway_get_usage_count (self->gateway);
#endif
  if (polled->version == self->data_version && usage == self->gateway_usage)
    return;

  self->data_version = polled->version;
  self->gateway_usage = usage;
  g_signal_emit (self, signals[CHANGED], 0);
  /* Another process may have started a cooldown or changed a quota. */
  rearm_reset_timer (self);
}

static gboolean
poll_cb (gpointer user_data)
{
  GkBackend *self = user_data;

  if (self->poll_in_flight)
    return G_SOURCE_CONTINUE;

  self->poll_in_flight = TRUE;
  gk_backend_run_async (self, poll_job,
                        GINT_TO_POINTER (self->poll_count % STORED_CHECK_EVERY == 0), NULL,
                        g_free, self->cancellable, poll_done_cb,
                        GUINT_TO_POINTER (self->generation));

  return G_SOURCE_CONTINUE;
}

/* The quota reset timer */

static gpointer
reset_job (const GkBackendRefs  *refs,
           gpointer              data,
           GError              **job_error)
{
  g_autoptr(GError) error = NULL;
  gint64 *boundary = g_new0 (gint64, 1);

  /* Cheap when nothing is due; after a backwards clock jump it also pulls
   * the windows back, so it runs on every wake-up, not only at boundaries. */
  if (!gk_quotas_reset_expired (refs->db, &error))
    g_warning ("Could not reset expired quotas: %s", error->message);
  g_clear_error (&error);

  *boundary = gk_quotas_next_boundary (refs->db, &error);
  if (error != NULL)
    g_warning ("Could not compute the next quota reset: %s", error->message);

  return boundary;
}

static gboolean
reset_timeout_cb (gpointer user_data)
{
  GkBackend *self = user_data;

  self->reset_source = 0;
  reset_tick (self);

  return G_SOURCE_REMOVE;
}

static void
reset_done_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  GkBackend *self = GK_BACKEND (object);
  g_autofree gint64 *boundary = NULL;
  gint64 now;
  gint64 delay;

  boundary = gk_backend_run_finish (self, result, NULL);
  if (boundary == NULL)
    return;   /* cancelled: the backend is going away */
  if (GPOINTER_TO_UINT (user_data) != self->generation)
    return;   /* for the database used before: the new one runs its own */

  self->reset_in_flight = FALSE;
  if (self->reset_again)
    {
      self->reset_again = FALSE;
      reset_tick (self);
      return;
    }

  now = gk_database_now (self->db);

  /* The boundary we slept for has passed: the quotas were just reset (or a
   * cooldown ended), so the pages should re-read. */
  if (self->reset_target != 0 && now >= self->reset_target)
    g_signal_emit (self, signals[CHANGED], 0);

  self->reset_target = *boundary;
  if (*boundary > now)
    delay = *boundary - now;
  else if (*boundary == 0)
    delay = RESET_MAX_DELAY_S;
  else
    delay = 1;
  delay = CLAMP (delay, 1, RESET_MAX_DELAY_S);

  g_clear_handle_id (&self->reset_source, g_source_remove);
  self->reset_source = g_timeout_add_seconds ((guint) delay, reset_timeout_cb, self);
}

static void
reset_tick (GkBackend *self)
{
  g_clear_handle_id (&self->reset_source, g_source_remove);
  self->reset_in_flight = TRUE;
  gk_backend_run_async (self, reset_job, NULL, NULL, g_free, self->cancellable, reset_done_cb,
                        GUINT_TO_POINTER (self->generation));
}

/* A write can bring the next boundary closer (a new cooldown, a new
 * per-minute quota): compute it again instead of sleeping past it. */
static void
rearm_reset_timer (GkBackend *self)
{
  if (self->key_store == NULL)
    return;

  if (self->reset_in_flight)
    self->reset_again = TRUE;
  else
    reset_tick (self);
}

/* Loading */

/* A team database (a connection URI) with the password the keyring keeps
 * for it, if any; else the file at @target. */
static GkDatabase *
open_target (GkSecretStore  *secret_store,
             const char     *target,
             const char     *password,
             GError        **error)
{
  g_autofree char *stored = NULL;
  g_autoptr(GError) local = NULL;
  GkDatabase *db;

  /* A file, or a connection string set outside the app (the environment)
   * with its own password or options. */
  if (!gk_database_target_is_remote (target) || !gk_team_database_check_target (target, NULL))
    return gk_database_open (target, NULL, error);

  if (password == NULL)
    {
      stored = gk_team_database_lookup_password (secret_store, target, NULL, &local);
      if (local != NULL)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return NULL;
        }
      password = stored;
    }
  db = gk_team_database_open (target, password, NULL, error);
  gk_crypto_wipe_string (g_steal_pointer (&stored));
  return db;
}

/* @data: the database's path or target. */
static gpointer
open_job (const GkBackendRefs  *refs,
          gpointer              data,
          GError              **error)
{
  return open_target (refs->secret_store, data, NULL, error);
}

/* @data: the master key. */
static gpointer
finish_load_job (const GkBackendRefs  *refs,
                 gpointer              data,
                 GError              **error)
{
  LoadResult *result = g_new0 (LoadResult, 1);

  result->key_store = gk_key_store_new (refs->db, data);
  /* Rotations by the CLI or a headless gateway are followed. */
  gk_key_store_set_secret_store (result->key_store, refs->secret_store);
  result->pool = gk_pool_new (refs->db, NULL);
  result->data_version = gk_database_get_data_version (refs->db);
  result->gateway_enabled = gk_database_get_setting_int (refs->db, GK_SETTING_GATEWAY_ENABLED, 0) != 0;
  result->gateway_port = (guint) gk_database_get_setting_int (refs->db,
                                                              GK_SETTING_GATEWAY_PORT,
                                                              GK_DEFAULT_GATEWAY_PORT);
  return result;
}

static void
finish_load_cb (GObject      *object,
                GAsyncResult *res,
                gpointer      user_data)
{
  GkBackend *self = GK_BACKEND (object);
  g_autoptr(GTask) task = user_data;
  LoadResult *result;
  GError *error = NULL;

  result = gk_backend_run_finish (self, res, &error);
  if (result == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  /* Disposed while unlocking: nothing may start again. */
  if (g_cancellable_set_error_if_cancelled (self->cancellable, &error))
    {
      load_result_free (result);
      g_task_return_error (task, error);
      return;
    }

  g_set_object (&self->key_store, result->key_store);
  g_set_object (&self->pool, result->pool);
  self->data_version = result->data_version;

  if (self->poll_source == 0)
    self->poll_source = g_timeout_add_seconds (POLL_INTERVAL_S, poll_cb, self);
  if (self->reset_source == 0 && !self->reset_in_flight)
    reset_tick (self);

  /* A gateway that fails to start (port taken) must not keep the keys
   * from showing; Preferences shows the state and the error on retry. */
  if (result->gateway_enabled && gk_backend_has_gateway ())
    {
      g_autoptr(GError) gateway_error = NULL;

      if (!gk_backend_start_gateway (self, result->gateway_port, &gateway_error))
        g_warning ("Could not start the gateway: %s", gateway_error->message);
    }

  load_result_free (result);
  /* The pages shown before a switch read the new database now. */
  if (self->switched)
    {
      self->switched = FALSE;
      g_signal_emit (self, signals[CHANGED], 0);
    }
  g_task_return_boolean (task, TRUE);
}

static void
unlock_cb (GObject      *object,
           GAsyncResult *res,
           gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GkBackend *self = g_task_get_source_object (task);
  g_autoptr(GBytes) master_key = NULL;
  GError *error = NULL;

  master_key = gk_secret_store_unlock_finish (GK_SECRET_STORE (object), res, &error);
  if (master_key == NULL)
    {
      if (error == NULL)
        error = g_error_new_literal (GK_SECRET_ERROR, GK_SECRET_ERROR_FAILED,
                                     _("The master key could not be read"));
      g_task_return_error (task, error);
      return;
    }

  gk_backend_run_async (self, finish_load_job, g_steal_pointer (&master_key),
                        (GDestroyNotify) g_bytes_unref, (GDestroyNotify) load_result_free,
                        g_task_get_cancellable (task), finish_load_cb, task);
  g_steal_pointer (&task);
}

static void
start_unlock (GTask *task)
{
  GkBackend *self = g_task_get_source_object (task);

  gk_secret_store_unlock_async (self->secret_store,
                                self->db,
                                g_task_get_cancellable (task),
                                unlock_cb,
                                task);
}

static void
open_cb (GObject      *object,
         GAsyncResult *res,
         gpointer      user_data)
{
  GkBackend *self = GK_BACKEND (object);
  g_autoptr(GTask) task = user_data;
  g_autoptr(GkDatabase) db = NULL;
  GError *error = NULL;

  db = gk_backend_run_finish (self, res, &error);
  if (db == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  g_set_object (&self->db, db);
  watch_start (self);
  start_unlock (g_steal_pointer (&task));
}

/* Jobs */

typedef struct
{
  GkBackendRefs  refs;
  GkBackendJob   job;
  gpointer       data;
  GDestroyNotify data_free;
  GDestroyNotify result_free;
} JobData;

static void
job_data_free (JobData *job)
{
  if (job->data_free != NULL && job->data != NULL)
    job->data_free (job->data);
  g_clear_object (&job->refs.db);
  g_clear_object (&job->refs.secret_store);
  g_clear_object (&job->refs.key_store);
  g_clear_object (&job->refs.pool);
  g_free (job);
}

static void
job_thread (GTask        *task,
            gpointer      source_object,
            gpointer      task_data,
            GCancellable *cancellable)
{
  JobData *job = task_data;
  GError *error = NULL;
  gpointer result;

  result = job->job (&job->refs, job->data, &error);
  if (result == NULL)
    {
      if (error == NULL)
        error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, _("The operation failed"));
      g_task_return_error (task, error);
    }
  else
    g_task_return_pointer (task, result, job->result_free);
}

typedef struct
{
  GkDatabase *db;
  char       *key;
  char       *value;
} SettingData;

static void
setting_data_free (SettingData *data)
{
  g_clear_object (&data->db);
  g_free (data->key);
  g_free (data->value);
  g_free (data);
}

static void
set_setting_thread (GTask        *task,
                    gpointer      source_object,
                    gpointer      task_data,
                    GCancellable *cancellable)
{
  SettingData *data = task_data;
  GError *error = NULL;

  if (gk_database_set_setting (data->db, data->key, data->value, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

/* @data: the GFile. */
static gpointer
import_job (const GkBackendRefs  *refs,
            gpointer              data,
            GError              **error)
{
  g_autofree char *path = g_file_get_path (data);

  if (refs->db == NULL)
    {
      g_set_error_literal (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_OPEN,
                           _("The database is not open"));
      return NULL;
    }
  if (path == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                           _("Choose a file on this computer"));
      return NULL;
    }
  if (!gk_secret_store_import_file (refs->secret_store, refs->db, path, error))
    return NULL;
  return GINT_TO_POINTER (TRUE);
}

/* GObject */

static void
gk_backend_dispose (GObject *object)
{
  GkBackend *self = GK_BACKEND (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_handle_id (&self->poll_source, g_source_remove);
  g_clear_handle_id (&self->reset_source, g_source_remove);
#ifdef GK_HAVE_GATEWAY
  if (self->gateway != NULL)
    gk_gateway_stop (self->gateway);
  g_clear_object (&self->gateway);
#endif
  g_clear_object (&self->pool);
  g_clear_object (&self->key_store);
  if (self->secret_store != NULL)
    g_signal_handlers_disconnect_by_data (self->secret_store, self);
  g_clear_object (&self->secret_store);
  watch_stop (self);
  g_clear_object (&self->db);

  G_OBJECT_CLASS (gk_backend_parent_class)->dispose (object);
}

static void
gk_backend_finalize (GObject *object)
{
  GkBackend *self = GK_BACKEND (object);

  g_clear_object (&self->cancellable);
  g_free (self->db_path);

  G_OBJECT_CLASS (gk_backend_parent_class)->finalize (object);
}

static void
gk_backend_class_init (GkBackendClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = gk_backend_dispose;
  object_class->finalize = gk_backend_finalize;

  /**
   * GkBackend::changed:
   *
   * The data may have changed: re-read what is shown.
   */
  signals[CHANGED] =
    g_signal_new ("changed",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 0);

  /**
   * GkBackend::database-changed:
   *
   * Another database took the place of the one in use (Team Pool in
   * Preferences): nothing is unlocked until gk_backend_load_async() runs
   * again.
   */
  signals[DATABASE_CHANGED] =
    g_signal_new ("database-changed",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 0);

  /**
   * GkBackend::setting-changed:
   * @name: the setting's name (GK_SETTING_*)
   */
  signals[SETTING_CHANGED] =
    g_signal_new ("setting-changed",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_STRING);

  /**
   * GkBackend::master-key-stored:
   * @stored: whether the master key in use is still in the keyring (or
   *   its file)
   *
   * Emitted when that changes; while it is not stored, adding keys fails.
   */
  signals[MASTER_KEY_STORED] =
    g_signal_new ("master-key-stored",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_BOOLEAN);

  /**
   * GkBackend::keyring-prompting:
   * @open: whether a keyring prompt is open
   *
   * The keyring asks the user something (to create or unlock a keyring)
   * and unlocking waits for the answer.
   */
  signals[KEYRING_PROMPTING] =
    g_signal_new ("keyring-prompting",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_BOOLEAN);

  /**
   * GkBackend::gateway-changed:
   *
   * The in-process gateway started or stopped, whoever asked: Preferences,
   * the load of a database whose setting enables it, or a switch to
   * another database (gk_backend_get_gateway_running(),
   * gk_backend_get_gateway_port()).
   */
  signals[GATEWAY_CHANGED] =
    g_signal_new ("gateway-changed",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 0);
}

typedef struct
{
  GkBackend *backend;
  gboolean   open;
} PromptingData;

static gboolean
keyring_prompting_idle (gpointer user_data)
{
  PromptingData *data = user_data;
  GkBackend *self = data->backend;

  if (self->keyring_prompting != data->open)
    {
      self->keyring_prompting = data->open;
      g_signal_emit (self, signals[KEYRING_PROMPTING], 0, data->open);
    }
  return G_SOURCE_REMOVE;
}

static void
prompting_data_free (gpointer user_data)
{
  PromptingData *data = user_data;

  g_object_unref (data->backend);
  g_free (data);
}

/* Runs in the worker thread waiting on the keyring. */
static void
secret_store_prompting_cb (GkSecretStore *secret_store,
                           gboolean       open,
                           GkBackend     *self)
{
  PromptingData *data = g_new0 (PromptingData, 1);

  data->backend = g_object_ref (self);
  data->open = open;
  g_main_context_invoke_full (NULL, G_PRIORITY_DEFAULT, keyring_prompting_idle, data,
                              prompting_data_free);
}

static void
gk_backend_init (GkBackend *self)
{
  self->cancellable = g_cancellable_new ();
  self->secret_store = gk_secret_store_new ();
  g_signal_connect (self->secret_store, "prompting", G_CALLBACK (secret_store_prompting_cb), self);
  self->data_version = -1;
  self->master_key_stored = TRUE;
}

/* Public API */

/* The app's settings, or NULL when their schema is not installed (running
 * uninstalled, or in tests). */
static GSettings *
team_settings_new (void)
{
  GSettingsSchemaSource *source = g_settings_schema_source_get_default ();
  g_autoptr(GSettingsSchema) schema = NULL;

  if (source == NULL)
    return NULL;
  schema = g_settings_schema_source_lookup (source, APP_ID, TRUE);
  if (schema == NULL || !g_settings_schema_has_key (schema, TEAM_DATABASE_KEY))
    return NULL;
  return g_settings_new_full (schema, NULL, NULL);
}

/* The team database chosen in Preferences, unless the environment names
 * a database for this run. */
static char *
default_target (void)
{
  g_autoptr(GSettings) settings = NULL;
  g_autofree char *team = NULL;

  if (g_getenv (DATABASE_ENV) == NULL && (settings = team_settings_new ()) != NULL)
    team = g_settings_get_string (settings, TEAM_DATABASE_KEY);
  if (team != NULL && *team != '\0')
    return g_steal_pointer (&team);
  return gk_database_default_target ();
}

GkBackend *
gk_backend_new (const char *db_path)
{
  GkBackend *self = g_object_new (GK_TYPE_BACKEND, NULL);

  self->db_path = db_path != NULL ? g_strdup (db_path) : default_target ();

  return self;
}

GkDatabase *
gk_backend_get_database (GkBackend *self)
{
  g_return_val_if_fail (GK_IS_BACKEND (self), NULL);

  return self->db;
}

GkKeyStore *
gk_backend_get_key_store (GkBackend *self)
{
  g_return_val_if_fail (GK_IS_BACKEND (self), NULL);

  return self->key_store;
}

GkPool *
gk_backend_get_pool (GkBackend *self)
{
  g_return_val_if_fail (GK_IS_BACKEND (self), NULL);

  return self->pool;
}

GkSecretStore *
gk_backend_get_secret_store (GkBackend *self)
{
  g_return_val_if_fail (GK_IS_BACKEND (self), NULL);

  return self->secret_store;
}

gboolean
gk_backend_is_ready (GkBackend *self)
{
  g_return_val_if_fail (GK_IS_BACKEND (self), FALSE);

  return self->key_store != NULL;
}

void
gk_backend_notify_changed (GkBackend *self)
{
  g_return_if_fail (GK_IS_BACKEND (self));

  /* Between a switch and the unlock of the new database, no page shows
   * data: "changed" waits for the unlock. */
  if (self->key_store == NULL)
    return;
  g_signal_emit (self, signals[CHANGED], 0);
  rearm_reset_timer (self);
}

void
gk_backend_load_async (GkBackend           *self,
                       GCancellable        *cancellable,
                       GAsyncReadyCallback  callback,
                       gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (GK_IS_BACKEND (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, gk_backend_load_async);

  if (self->key_store != NULL)
    {
      g_task_return_boolean (task, TRUE);
      g_object_unref (task);
    }
  else if (self->db != NULL)
    start_unlock (task);
  else
    gk_backend_run_async (self, open_job, g_strdup (self->db_path), g_free, g_object_unref,
                          cancellable, open_cb, task);
}

gboolean
gk_backend_load_finish (GkBackend     *self,
                        GAsyncResult  *result,
                        GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

void
gk_backend_import_key_file_async (GkBackend           *self,
                                  GFile               *file,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  g_return_if_fail (GK_IS_BACKEND (self));
  g_return_if_fail (G_IS_FILE (file));

  gk_backend_run_async (self, import_job, g_object_ref (file), g_object_unref, NULL,
                        cancellable, callback, user_data);
}

gboolean
gk_backend_import_key_file_finish (GkBackend     *self,
                                   GAsyncResult  *result,
                                   GError       **error)
{
  return gk_backend_run_finish (self, result, error) != NULL;
}

void
gk_backend_run_async (GkBackend           *self,
                      GkBackendJob         job,
                      gpointer             data,
                      GDestroyNotify       data_free,
                      GDestroyNotify       result_free,
                      GCancellable        *cancellable,
                      GAsyncReadyCallback  callback,
                      gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  JobData *job_data;

  g_return_if_fail (GK_IS_BACKEND (self));
  g_return_if_fail (job != NULL);

  job_data = g_new0 (JobData, 1);
  /* Taken here, on the main thread: dispose drops the backend's own. */
  g_set_object (&job_data->refs.db, self->db);
  g_set_object (&job_data->refs.secret_store, self->secret_store);
  g_set_object (&job_data->refs.key_store, self->key_store);
  g_set_object (&job_data->refs.pool, self->pool);
  job_data->job = job;
  job_data->data = data;
  job_data->data_free = data_free;
  job_data->result_free = result_free;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, gk_backend_run_async);
  g_task_set_task_data (task, job_data, (GDestroyNotify) job_data_free);
  g_task_run_in_thread (task, job_thread);
}

gpointer
gk_backend_run_finish (GkBackend     *self,
                       GAsyncResult  *result,
                       GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* Client tokens */

static gpointer
list_tokens_job (const GkBackendRefs  *refs,
                 gpointer              data,
                 GError              **error)
{
  GPtrArray *tokens = gk_token_list (refs->db, error);

  if (tokens == NULL)
    return NULL;
  for (guint i = tokens->len; i > 0; i--)
    {
      GkToken *token = g_ptr_array_index (tokens, i - 1);

      if (token->revoked_at != 0)
        g_ptr_array_remove_index (tokens, i - 1);
    }
  return tokens;
}

void
gk_backend_list_tokens_async (GkBackend           *self,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_return_if_fail (GK_IS_BACKEND (self));

  gk_backend_run_async (self, list_tokens_job, NULL, NULL, (GDestroyNotify) g_ptr_array_unref,
                        cancellable, callback, user_data);
}

GPtrArray *
gk_backend_list_tokens_finish (GkBackend     *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  return gk_backend_run_finish (self, result, error);
}

static gpointer
create_token_job (const GkBackendRefs  *refs,
                  gpointer              data,
                  GError              **error)
{
  return gk_token_create (refs->db, data, NULL, error);
}

static void
token_write_done_cb (GObject      *object,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GkBackend *self = GK_BACKEND (object);
  GError *error = NULL;
  gpointer value = gk_backend_run_finish (self, result, &error);

  if (value == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  gk_backend_notify_changed (self);
  /* A created token's text is the only copy: wiped if nobody takes it. */
  if (g_task_get_source_tag (task) == gk_backend_create_token_async)
    g_task_return_pointer (task, value, (GDestroyNotify) gk_crypto_wipe_string);
  else
    g_task_return_pointer (task, value, NULL);
}

void
gk_backend_create_token_async (GkBackend           *self,
                               const char          *name,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (GK_IS_BACKEND (self));
  g_return_if_fail (name != NULL);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, gk_backend_create_token_async);
  gk_backend_run_async (self, create_token_job, g_strdup (name), g_free,
                        (GDestroyNotify) gk_crypto_wipe_string, cancellable,
                        token_write_done_cb, task);
}

char *
gk_backend_create_token_finish (GkBackend     *self,
                                GAsyncResult  *result,
                                GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

static gpointer
revoke_token_job (const GkBackendRefs  *refs,
                  gpointer              data,
                  GError              **error)
{
  if (!gk_token_revoke (refs->db, *(gint64 *) data, error))
    return NULL;
  return GINT_TO_POINTER (TRUE);
}

void
gk_backend_revoke_token_async (GkBackend           *self,
                               gint64               id,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (GK_IS_BACKEND (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, gk_backend_revoke_token_async);
  gk_backend_run_async (self, revoke_token_job, g_memdup2 (&id, sizeof id), g_free, NULL,
                        cancellable, token_write_done_cb, task);
}

gboolean
gk_backend_revoke_token_finish (GkBackend     *self,
                                GAsyncResult  *result,
                                GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_pointer (G_TASK (result), error) != NULL;
}

void
gk_backend_set_setting_async (GkBackend           *self,
                              const char          *key,
                              const char          *value,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  SettingData *data;

  g_return_if_fail (GK_IS_BACKEND (self));
  g_return_if_fail (key != NULL);

  data = g_new0 (SettingData, 1);
  g_set_object (&data->db, self->db);
  data->key = g_strdup (key);
  data->value = g_strdup (value);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, gk_backend_set_setting_async);
  g_task_set_task_data (task, data, (GDestroyNotify) setting_data_free);
  g_task_run_in_thread (task, set_setting_thread);
}

gboolean
gk_backend_set_setting_finish (GkBackend     *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  SettingData *data;

  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return FALSE;

  data = g_task_get_task_data (G_TASK (result));
  g_signal_emit (self, signals[SETTING_CHANGED], g_quark_from_string (data->key), data->key);
  /* The rotation threshold and the reset zone change what the keys show,
   * and the zone moves the next reset. */
  gk_backend_notify_changed (self);

  return TRUE;
}

gboolean
gk_backend_has_gateway (void)
{
#ifdef GK_HAVE_GATEWAY
  return TRUE;
#else
  return FALSE;
#endif
}

gboolean
gk_backend_start_gateway (GkBackend  *self,
                          guint       port,
                          GError    **error)
{
#ifdef GK_HAVE_GATEWAY
  gboolean started;
#endif

  g_return_val_if_fail (GK_IS_BACKEND (self), FALSE);

#ifdef GK_HAVE_GATEWAY
  if (self->key_store == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_INITIALIZED,
                           _("Unlock the keys first"));
      return FALSE;
    }

  if (self->gateway == NULL)
    self->gateway = gk_gateway_new (self->key_store, self->pool);
  else if (gk_gateway_is_running (self->gateway))
    {
      if (gk_gateway_get_port (self->gateway) == port)
        return TRUE;
      gk_gateway_stop (self->gateway);
    }

  started = gk_gateway_start (self->gateway, "127.0.0.1", port, error);
  g_signal_emit (self, signals[GATEWAY_CHANGED], 0);
  return started;
#else
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                       _("This build has no gateway"));
  return FALSE;
#endif
}

void
gk_backend_stop_gateway (GkBackend *self)
{
  g_return_if_fail (GK_IS_BACKEND (self));

#ifdef GK_HAVE_GATEWAY
  if (self->gateway != NULL && gk_gateway_is_running (self->gateway))
    {
      gk_gateway_stop (self->gateway);
      g_signal_emit (self, signals[GATEWAY_CHANGED], 0);
    }
#endif
}

gboolean
gk_backend_get_gateway_running (GkBackend *self)
{
  g_return_val_if_fail (GK_IS_BACKEND (self), FALSE);

#ifdef GK_HAVE_GATEWAY
  return self->gateway != NULL && gk_gateway_is_running (self->gateway);
#else
  return FALSE;
#endif
}

guint
gk_backend_get_gateway_port (GkBackend *self)
{
  g_return_val_if_fail (GK_IS_BACKEND (self), 0);

#ifdef GK_HAVE_GATEWAY
  if (gk_backend_get_gateway_running (self))
    return gk_gateway_get_port (self->gateway);
#endif
  return 0;
}

#ifdef GK_HAVE_GATEWAY
static void
test_key_cb (GObject      *object,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;

  if (gk_gateway_test_key_finish (result, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}
#endif

void
gk_backend_test_key_async (GkBackend           *self,
                           gint64               key_id,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (GK_IS_BACKEND (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, gk_backend_test_key_async);

#ifdef GK_HAVE_GATEWAY
  if (self->key_store != NULL)
    {
      gk_gateway_test_key_async (self->key_store, key_id, cancellable,
                                 test_key_cb, g_steal_pointer (&task));
      return;
    }
#endif

  g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                           _("Testing keys needs the gateway, which this build lacks"));
}

gboolean
gk_backend_test_key_finish (GkBackend     *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

GkKeyTestFailure
gk_backend_classify_test_error (const GError *error)
{
  g_return_val_if_fail (error != NULL, GK_KEY_TEST_FAILED);

#ifdef GK_HAVE_GATEWAY
  if (g_error_matches (error, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_INVALID_KEY))
    return GK_KEY_TEST_REJECTED;
  if (g_error_matches (error, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_UPSTREAM))
    return GK_KEY_TEST_UNREACHABLE;
#endif
  if (error->domain == G_RESOLVER_ERROR
      || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_HOST_NOT_FOUND)
      || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NETWORK_UNREACHABLE)
      || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED)
      || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    return GK_KEY_TEST_UNREACHABLE;
  return GK_KEY_TEST_FAILED;
}

char *
gk_backend_manual_trigger (void)
{
  return g_strdup_printf ("manual:%s", g_get_user_name ());
}

gboolean
gk_backend_set_watched (GkBackend **backend_ptr,
                        GkBackend  *backend,
                        GCallback   changed_cb,
                        gpointer    owner)
{
  g_return_val_if_fail (backend_ptr != NULL, FALSE);
  g_return_val_if_fail (backend == NULL || GK_IS_BACKEND (backend), FALSE);
  g_return_val_if_fail (backend == NULL || changed_cb != NULL, FALSE);

  if (*backend_ptr == backend)
    return FALSE;

  if (*backend_ptr != NULL)
    g_signal_handlers_disconnect_by_data (*backend_ptr, owner);
  g_set_object (backend_ptr, backend);
  if (backend != NULL)
    g_signal_connect_swapped (backend, "changed", changed_cb, owner);
  return TRUE;
}

static gpointer
store_master_key_job (const GkBackendRefs  *refs,
                      gpointer              data,
                      GError              **error)
{
  if (!gk_key_store_store_master_key (refs->key_store, error))
    return NULL;
  return GINT_TO_POINTER (TRUE);
}

static void
store_master_key_done_cb (GObject      *object,
                          GAsyncResult *result,
                          gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GkBackend *self = GK_BACKEND (object);
  GError *error = NULL;

  if (gk_backend_run_finish (self, result, &error) == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  set_master_key_stored (self, TRUE);
  g_task_return_boolean (task, TRUE);
}

/**
 * gk_backend_store_master_key_async:
 *
 * Stores the master key in use again (after its keyring item or file was
 * removed), in a worker thread.
 */
void
gk_backend_store_master_key_async (GkBackend           *self,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (GK_IS_BACKEND (self));
  g_return_if_fail (self->key_store != NULL);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, gk_backend_store_master_key_async);
  gk_backend_run_async (self, store_master_key_job, NULL, NULL, NULL, cancellable,
                        store_master_key_done_cb, task);
}

gboolean
gk_backend_store_master_key_finish (GkBackend     *self,
                                    GAsyncResult  *result,
                                    GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* Switching databases */

const char *
gk_backend_get_target (GkBackend *self)
{
  g_return_val_if_fail (GK_IS_BACKEND (self), NULL);

  return self->db_path;
}

gboolean
gk_backend_is_team (GkBackend *self)
{
  g_return_val_if_fail (GK_IS_BACKEND (self), FALSE);

  return gk_database_target_is_remote (self->db_path);
}

char *
gk_backend_dup_team_setting (void)
{
  g_autoptr(GSettings) settings = team_settings_new ();

  return settings != NULL ? g_settings_get_string (settings, TEAM_DATABASE_KEY) : g_strdup ("");
}

typedef struct
{
  char     *target;     /* a team database, or this computer's file */
  char     *password;   /* NULL: the keyring's */
  char     *forget;     /* a team database whose password goes, or NULL */
  gboolean  remember;
} SwitchData;

static void
switch_data_free (SwitchData *data)
{
  g_free (data->target);
  gk_crypto_wipe_string (data->password);
  g_free (data->forget);
  g_free (data);
}

static gpointer
switch_job (const GkBackendRefs  *refs,
            gpointer              user_data,
            GError              **error)
{
  SwitchData *data = user_data;
  g_autoptr(GkDatabase) db = open_target (refs->secret_store, data->target, data->password,
                                          error);
  g_autoptr(GError) forget_error = NULL;

  if (db == NULL)
    return NULL;
  /* Kept only once it was let in: a refused password is never stored. */
  if (data->remember && data->password != NULL && gk_database_target_is_remote (data->target)
      && !gk_team_database_store_password (refs->secret_store, data->target, data->password,
                                           NULL, error))
    return NULL;
  if (data->forget != NULL
      && !gk_team_database_forget_password (refs->secret_store, data->forget, NULL,
                                            &forget_error))
    g_warning ("Could not remove the team database's password from the keyring: %s",
               forget_error->message);
  return g_steal_pointer (&db);
}

/* Puts @db in the place of the database in use: what worked on the old
 * one (the gateway, the key store, the timers) stops, and the window loads
 * again. */
static void
replace_database (GkBackend  *self,
                  GkDatabase *db,
                  const char *target)
{
  gk_backend_stop_gateway (self);
#ifdef GK_HAVE_GATEWAY
  g_clear_object (&self->gateway);
#endif
  g_clear_handle_id (&self->poll_source, g_source_remove);
  g_clear_handle_id (&self->reset_source, g_source_remove);
  self->generation++;
  self->poll_in_flight = FALSE;
  self->reset_in_flight = FALSE;
  self->reset_again = FALSE;
  self->reset_target = 0;
  self->data_version = -1;
  self->gateway_usage = 0;
  g_clear_object (&self->pool);
  g_clear_object (&self->key_store);
  watch_stop (self);
  g_set_object (&self->db, db);
  watch_start (self);
  g_free (self->db_path);
  self->db_path = g_strdup (target);
  set_master_key_stored (self, TRUE);
  self->switched = TRUE;
  g_signal_emit (self, signals[DATABASE_CHANGED], 0);
}

static void
switch_done_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GkBackend *self = GK_BACKEND (object);
  SwitchData *data = g_task_get_task_data (task);
  g_autoptr(GkDatabase) db = NULL;
  GError *error = NULL;

  db = gk_backend_run_finish (self, result, &error);
  if (db == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  if (data->remember)
    {
      g_autoptr(GSettings) settings = team_settings_new ();

      /* Only the redacted target: never a password. */
      if (settings != NULL)
        g_settings_set_string (settings, TEAM_DATABASE_KEY,
                               gk_database_target_is_remote (data->target) ? data->target : "");
    }
  replace_database (self, db, data->target);
  g_task_return_boolean (task, TRUE);
}

void
gk_backend_switch_async (GkBackend           *self,
                         const char          *target,
                         const char          *password,
                         gboolean             remember,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  GTask *task;
  SwitchData *data;
  SwitchData *job_data;

  g_return_if_fail (GK_IS_BACKEND (self));

  data = g_new0 (SwitchData, 1);
  data->target = target != NULL ? g_strdup (target) : gk_database_default_path ();
  data->remember = remember;
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, gk_backend_switch_async);
  g_task_set_task_data (task, data, (GDestroyNotify) switch_data_free);

  /* The job has its own copy, the password with it; the task keeps what
   * the callback needs. */
  job_data = g_new0 (SwitchData, 1);
  job_data->target = g_strdup (data->target);
  job_data->password = password != NULL && *password != '\0' ? g_strdup (password) : NULL;
  job_data->remember = remember;
  if (remember && gk_backend_is_team (self) && g_strcmp0 (self->db_path, data->target) != 0)
    job_data->forget = g_strdup (self->db_path);
  gk_backend_run_async (self, switch_job, job_data, (GDestroyNotify) switch_data_free,
                        g_object_unref, cancellable, switch_done_cb, task);
}

gboolean
gk_backend_switch_finish (GkBackend     *self,
                          GAsyncResult  *result,
                          GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}
