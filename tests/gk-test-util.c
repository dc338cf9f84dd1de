/* gk-test-util.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#define _GNU_SOURCE
#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "gk-sql.h"
#include "gk-test-util.h"

static guint db_counter;

gboolean
gk_test_on_postgresql (void)
{
  const char *cluster = g_getenv ("GK_TEST_DATABASE_CLUSTER");

  return cluster != NULL && *cluster != '\0';
}

gboolean
gk_test_skip_on_postgresql (const char *reason)
{
  if (!gk_test_on_postgresql ())
    return FALSE;
  g_test_skip (reason);
  return TRUE;
}

char *
gk_test_db_path (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *name = NULL;

  if (gk_test_on_postgresql ())
    return gk_test_pg_database_new ();

  dir = g_dir_make_tmp ("gk-test-XXXXXX", &error);
  g_assert_no_error (error);
  name = g_strdup_printf ("keys-%u.db", db_counter++);
  return g_build_filename (dir, name, NULL);
}

GkDatabase *
gk_test_open_db (GkClock *clock)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkClock) fixed = clock ? g_object_ref (clock) : gk_clock_new_fixed (GK_TEST_EPOCH);
  g_autofree char *path = gk_test_db_path ();
  GkDatabase *db = gk_database_open (path, fixed, &error);

  g_assert_no_error (error);
  g_assert_nonnull (db);
  return db;
}

GBytes *
gk_test_master_key (void)
{
  guint8 key[GK_MASTER_KEY_LEN];

  for (guint i = 0; i < sizeof key; i++)
    key[i] = (guint8) (i * 7 + 3);
  return gk_secure_bytes_new (key, sizeof key);
}

char *
gk_test_api_key (guint n)
{
  /* "AIza" + 35 characters of [A-Za-z0-9_-]. */
  return g_strdup_printf ("AIzaSyTest%029u", n);
}

gint64
gk_test_add_key (GkKeyStore *store,
                 const char *name,
                 int         priority)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *api_key = NULL;
  static guint counter = 1000;
  GkKeySpec spec;
  gint64 id;

  gk_key_spec_init (&spec);
  spec.name = name;
  spec.priority = priority;
  api_key = gk_test_api_key (counter++);
  id = gk_key_store_add (store, &spec, api_key, &error);
  g_assert_no_error (error);
  g_assert_cmpint (id, >, 0);
  return id;
}

void
gk_test_fixture_setup (GkTestFixture *f,
                       gconstpointer  data)
{
  f->clock = gk_clock_new_fixed (GK_TEST_EPOCH);
  f->db = gk_test_open_db (f->clock);
  f->master = gk_test_master_key ();
  f->store = gk_key_store_new (f->db, f->master);
  f->pool = gk_pool_new (f->db, NULL);
}

void
gk_test_fixture_teardown (GkTestFixture *f,
                          gconstpointer  data)
{
  g_autofree char *path = g_strdup (gk_database_get_path (f->db));

  g_assert_finalize_object (f->pool);
  g_assert_finalize_object (f->store);
  g_assert_finalize_object (f->db);
  g_clear_object (&f->clock);
  g_clear_pointer (&f->master, g_bytes_unref);
  gk_test_remove_db (path);
}

GkTrackResult
gk_test_track (GkPool        *pool,
               gint64         key_id,
               GkUsageStatus  status,
               gint64         prompt_tokens)
{
  g_autoptr(GError) error = NULL;
  GkTrackResult result = { 0 };
  GkUsageRecord record;

  gk_usage_record_init (&record);
  record.key_id = key_id;
  record.model = "gemini-2.5-flash";
  record.prompt_tokens = prompt_tokens;
  record.status = status;
  gk_pool_track (pool, &record, &result, &error);
  g_assert_no_error (error);
  return result;
}

/* Runs @text on the cluster's own test database. */
static void
pg_admin_exec (const char *text)
{
  const char *uri = g_getenv ("GK_TEST_PG_URI");
  g_autofree char *message = NULL;
  GkSqlErr code;
  GkSql *sql;

  g_assert_nonnull (uri);
  sql = gk_sql_open (uri, &code, &message);
  if (sql == NULL)
    g_error ("cannot connect to the test cluster: %s", message);
  if (!gk_sql_exec (sql, text))
    g_error ("“%s” failed: %s", text, gk_sql_errmsg (sql));
  gk_sql_close (sql);
}

/* The database name at the end of a URI made by gk_test_pg_database_new(). */
static const char *
pg_database_name (const char *uri)
{
  const char *slash = strrchr (uri, '/');

  g_assert_nonnull (slash);
  return slash + 1;
}

char *
gk_test_pg_database_new (void)
{
  static guint counter;
  const char *base = g_getenv ("GK_TEST_PG_URI");
  g_autofree char *name = NULL;
  g_autofree char *create = NULL;
  const char *slash;

  g_assert_nonnull (base);
  slash = strrchr (base, '/');
  g_assert_nonnull (slash);
  name = g_strdup_printf ("gk_test_%d_%u", (int) getpid (), g_atomic_int_add (&counter, 1));
  create = g_strdup_printf ("CREATE DATABASE %s", name);
  pg_admin_exec (create);
  return g_strdup_printf ("%.*s/%s", (int) (slash - base), base, name);
}

void
gk_test_pg_database_drop (const char *uri)
{
  g_autofree char *drop = g_strdup_printf ("DROP DATABASE IF EXISTS %s WITH (FORCE)",
                                           pg_database_name (uri));

  pg_admin_exec (drop);
}

static void
rm_rf_free (gpointer path)
{
  gk_test_rm_rf (path);
  g_free (path);
}

char *
gk_test_db_dir (GkDatabase *db)
{
  g_autoptr(GError) error = NULL;
  char *dir;

  if (!gk_database_is_remote (db))
    return g_path_get_dirname (gk_database_get_path (db));
  dir = g_dir_make_tmp ("gk-test-XXXXXX", &error);
  g_assert_no_error (error);
  g_test_queue_destroy (rm_rf_free, g_strdup (dir));
  return dir;
}

void
gk_test_remove_db (const char *path)
{
  g_autofree char *dir = NULL;

  if (gk_database_target_is_remote (path))
    {
      gk_test_pg_database_drop (path);
      return;
    }
  dir = g_path_get_dirname (path);
  gk_test_rm_rf (dir);
}

void
gk_test_rm_rf (const char *path)
{
  g_autoptr(GFile) file = g_file_new_for_path (path);
  g_autoptr(GFileEnumerator) children = NULL;
  GFileInfo *info;

  children = g_file_enumerate_children (file, G_FILE_ATTRIBUTE_STANDARD_NAME,
                                        G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS, NULL, NULL);
  while (children != NULL && (info = g_file_enumerator_next_file (children, NULL, NULL)))
    {
      g_autofree char *child = g_build_filename (path, g_file_info_get_name (info), NULL);
      gk_test_rm_rf (child);
      g_object_unref (info);
    }
  g_remove (path);
}

guint
gk_test_count_locks (GPid        pid,
                     const char *path)
{
  g_autofree char *locks = NULL;
  g_autofree char *file_id = NULL;
  g_auto(GStrv) lines = NULL;
  GStatBuf st;
  guint n = 0;

  if (g_stat (path, &st) != 0)
    return 0;
  g_assert_true (g_file_get_contents ("/proc/locks", &locks, NULL, NULL));
  /* "1: POSIX  ADVISORY  READ 1234 fe:00:10953469 128 128" */
  file_id = g_strdup_printf ("%02x:%02x:%lu", major (st.st_dev), minor (st.st_dev),
                             (unsigned long) st.st_ino);
  lines = g_strsplit (locks, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_auto(GStrv) fields = g_strsplit_set (lines[i], " ", -1);
      g_autoptr(GPtrArray) words = g_ptr_array_new ();

      for (guint j = 0; fields[j] != NULL; j++)
        if (*fields[j] != '\0')
          g_ptr_array_add (words, fields[j]);
      /* A lock others wait for is listed as "1: -> POSIX ...": skip it. */
      if (words->len >= 6 && g_str_equal (words->pdata[1], "POSIX")
          && atoi (words->pdata[4]) == pid && g_str_equal (words->pdata[5], file_id))
        n++;
    }
  return n;
}

gboolean
gk_test_file_contains (const char *path,
                       const char *needle)
{
  gsize needle_len = strlen (needle);
  int status = 0;
  pid_t pid;

  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      /* Only system calls here: the parent may have threads. Locks are
       * not inherited, so this close() drops none of the parent's. */
      struct stat st;
      void *map;
      int fd = open (path, O_RDONLY | O_CLOEXEC);

      if (fd < 0 || fstat (fd, &st) != 0)
        _exit (1);
      if (st.st_size == 0)
        _exit (1);
      map = mmap (NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (map == MAP_FAILED)
        _exit (2);
      _exit (memmem (map, (size_t) st.st_size, needle, needle_len) != NULL ? 0 : 1);
    }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), !=, 2);
  return WEXITSTATUS (status) == 0;
}

/* Keyring prompts */

#define PROMPTER_PATH       "/org/gnome/keyring/Prompter"
#define PRIVATE_SESSION_ENV "GK_TEST_PRIVATE_SESSION"
/* Generous: the machine running the suite may be loaded. */
#define PROMPTER_WAIT_S     60

static const char prompter_xml[] =
  "<node><interface name='org.gnome.keyring.internal.Prompter'>"
  "<method name='BeginPrompting'><arg type='o' direction='in'/></method>"
  "<method name='PerformPrompt'><arg type='o' direction='in'/><arg type='s' direction='in'/>"
  "<arg type='a{sv}' direction='in'/><arg type='s' direction='in'/></method>"
  "<method name='StopPrompting'><arg type='o' direction='in'/></method>"
  "</interface></node>";

static void
fake_prompter_method_call (GDBusConnection       *connection,
                           const char            *sender,
                           const char            *path,
                           const char            *interface,
                           const char            *method,
                           GVariant              *parameters,
                           GDBusMethodInvocation *invocation,
                           gpointer               user_data)
{
  if (g_str_equal (method, "BeginPrompting"))
    g_file_set_contents (user_data, "", 0, NULL);
  g_dbus_method_invocation_return_value (invocation, NULL);
}

int
gk_test_fake_prompter_main (const char *flag)
{
  static const GDBusInterfaceVTable vtable = { fake_prompter_method_call, NULL, NULL, { 0 } };
  g_autoptr(GError) error = NULL;
  g_autoptr(GDBusConnection) bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, &error);
  g_autoptr(GDBusNodeInfo) node = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);

  if (bus == NULL)
    return 1;
  node = g_dbus_node_info_new_for_xml (prompter_xml, &error);
  g_assert_no_error (error);
  g_dbus_connection_register_object (bus, PROMPTER_PATH, node->interfaces[0], &vtable,
                                     (gpointer) flag, NULL, &error);
  g_assert_no_error (error);
  g_bus_own_name_on_connection (bus, GK_TEST_PROMPTER_NAME, G_BUS_NAME_OWNER_FLAGS_DO_NOT_QUEUE,
                                NULL, NULL, NULL, NULL);
  g_main_loop_run (loop);
  return 0;
}

GPid
gk_test_bus_name_pid (const char *name)
{
  g_autoptr(GDBusConnection) bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, NULL);
  g_autoptr(GVariant) reply = NULL;
  guint32 pid = 0;

  g_assert_nonnull (bus);
  reply = g_dbus_connection_call_sync (bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "GetConnectionUnixProcessID",
                                       g_variant_new ("(s)", name), G_VARIANT_TYPE ("(u)"),
                                       G_DBUS_CALL_FLAGS_NONE, -1, NULL, NULL);
  if (reply != NULL)
    g_variant_get (reply, "(u)", &pid);
  return (GPid) pid;
}

GSubprocess *
gk_test_start_fake_prompter (const char *flag)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *self = g_file_read_link ("/proc/self/exe", &error);
  GSubprocess *prompter;
  gint64 deadline;

  g_assert_no_error (error);
  prompter = g_subprocess_new (G_SUBPROCESS_FLAGS_NONE, &error, self, GK_TEST_FAKE_PROMPTER_ARG,
                               flag, NULL);
  g_assert_no_error (error);
  deadline = g_get_monotonic_time () + PROMPTER_WAIT_S * G_TIME_SPAN_SECOND;
  while (gk_test_bus_name_pid (GK_TEST_PROMPTER_NAME) == 0 && g_get_monotonic_time () < deadline)
    g_usleep (50 * 1000);
  g_assert_cmpint (gk_test_bus_name_pid (GK_TEST_PROMPTER_NAME), !=, 0);
  return prompter;
}

void
gk_test_start_bare_keyring (void)
{
  const char *argv[] = { "gnome-keyring-daemon", "--start", "--components=secrets", NULL };
  g_autoptr(GError) error = NULL;
  int status = 0;

  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                NULL, NULL, NULL, NULL, &status, &error);
  g_assert_no_error (error);
}

gboolean
gk_test_in_private_session (void)
{
  return g_getenv (PRIVATE_SESSION_ENV) != NULL;
}

void
gk_test_run_in_private_session (const char *test_path)
{
  static const struct
  {
    const char *variable;
    const char *name;
  } user_dirs[] = {
    { "XDG_RUNTIME_DIR", "runtime" },
    { "XDG_DATA_HOME", "data" },
    { "XDG_CONFIG_HOME", "config" },
    { "XDG_CACHE_HOME", "cache" },
  };
  g_autoptr(GError) error = NULL;
  g_autofree char *dbus_run_session = g_find_program_in_path ("dbus-run-session");
  g_autofree char *keyring_daemon = g_find_program_in_path ("gnome-keyring-daemon");
  g_autofree char *self = NULL;
  g_autofree char *home = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *expected = NULL;
  g_auto(GStrv) envp = NULL;
  int status = 0;

  if (dbus_run_session == NULL || keyring_daemon == NULL)
    {
      g_test_skip ("needs dbus-run-session and gnome-keyring-daemon");
      return;
    }
  self = g_file_read_link ("/proc/self/exe", &error);
  g_assert_no_error (error);
  envp = g_get_environ ();
  envp = g_environ_setenv (envp, PRIVATE_SESSION_ENV, "1", TRUE);
  /* Or gnome-keyring-daemon would join the shared session's daemon. */
  envp = g_environ_unsetenv (envp, "GNOME_KEYRING_CONTROL");
  /* The bus and the keyring service need real folders of their own. */
  home = g_dir_make_tmp ("gk-session-home-XXXXXX", &error);
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (user_dirs); i++)
    {
      g_autofree char *dir = g_build_filename (home, user_dirs[i].name, NULL);

      g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
      envp = g_environ_setenv (envp, user_dirs[i].variable, dir, TRUE);
    }
  envp = g_environ_setenv (envp, "HOME", home, TRUE);
  {
    const char *argv[] = { dbus_run_session, "--", self, "--tap", "-p", test_path, NULL };

    g_spawn_sync (NULL, (char **) argv, envp, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status,
                  &error);
  }
  g_assert_no_error (error);
  gk_test_rm_rf (home);
  g_test_message ("%s%s", out, err);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  expected = g_strdup_printf ("\nok 1 %s", test_path);
  g_assert_nonnull (strstr (out, expected));
}
