/* test-faults.c: the core under faults it cannot prevent: a full disk, a
 * read-only or truncated file, damaged or swapped ciphertexts, a locked
 * keyring, the wrong master key file, a failed migration and clock steps.
 *
 * Each test asserts what the user gets (a clear GError), that the rest
 * keeps working, that nothing acknowledged is lost and that no key leaks
 * into an error message.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <libsecret/secret.h>

#include "gk-database-private.h"
#include "hardening-util.h"

#define PRIVATE_KEYRING_ENV "GK_HARDENING_PRIVATE_KEYRING"

/* Keys and stores over one database. */
typedef struct
{
  GkClock    *clock;
  GkDatabase *db;
  GBytes     *master;
  GkKeyStore *store;
  GkPool     *pool;
  gint64      ids[3];
  char       *api_keys[3];
} Fixture;

static void
fixture_open (Fixture    *f,
              const char *path)
{
  g_autoptr(GError) error = NULL;

  if (f->clock == NULL)
    f->clock = gk_clock_new_fixed (GK_TEST_EPOCH);
  f->db = gk_database_open (path, f->clock, &error);
  g_assert_no_error (error);
  if (f->master == NULL)
    f->master = gk_test_master_key ();
  f->store = gk_key_store_new (f->db, f->master);
  f->pool = gk_pool_new (f->db, NULL);
}

static void
fixture_close (Fixture *f)
{
  g_clear_object (&f->pool);
  g_clear_object (&f->store);
  g_clear_object (&f->db);
}

/* A database at @path (NULL: a fresh one) with three keys. */
static void
fixture_setup_at (Fixture    *f,
                  const char *path)
{
  g_autofree char *fresh = path == NULL ? gk_test_db_path () : NULL;

  fixture_open (f, path != NULL ? path : fresh);
  for (guint i = 0; i < G_N_ELEMENTS (f->ids); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *name = g_strdup_printf ("key-%u", i);
      GkKeySpec spec;

      gk_key_spec_init (&spec);
      spec.name = name;
      f->api_keys[i] = gk_test_api_key (500 + i);
      f->ids[i] = gk_key_store_add (f->store, &spec, f->api_keys[i], &error);
      g_assert_no_error (error);
    }
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  fixture_setup_at (f, NULL);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *dir = f->db ? g_path_get_dirname (gk_database_get_path (f->db)) : NULL;

  fixture_close (f);
  g_clear_object (&f->clock);
  g_clear_pointer (&f->master, g_bytes_unref);
  for (guint i = 0; i < G_N_ELEMENTS (f->api_keys); i++)
    g_clear_pointer (&f->api_keys[i], g_free);
  if (dir != NULL)
    gk_test_rm_rf (dir);
}

/* No error text may carry a full key. */
static void
assert_no_key_in (Fixture      *f,
                  const GError *error)
{
  if (error == NULL)
    return;
  for (guint i = 0; i < G_N_ELEMENTS (f->api_keys); i++)
    if (f->api_keys[i] != NULL)
      g_assert_null (strstr (error->message, f->api_keys[i]));
}

static void
assert_reveals (Fixture *f,
                guint    i)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) plain = gk_key_store_reveal (f->store, f->ids[i], &error);

  g_assert_no_error (error);
  g_assert_cmpstr (g_bytes_get_data (plain, NULL), ==, f->api_keys[i]);
}

static gint64
track_one (Fixture  *f,
           guint     i,
           gint64    tokens,
           GError  **error)
{
  GkUsageRecord record;
  GkTrackResult result = { 0 };

  gk_usage_record_init (&record);
  record.key_id = f->ids[i];
  record.model = "gemini-2.5-flash";
  record.prompt_tokens = tokens;
  record.status = GK_USAGE_SUCCESS;
  if (!gk_pool_track (f->pool, &record, &result, error))
    return 0;
  return result.usage_id;
}

static gint64
usage_rows (Fixture *f)
{
  return hardening_query_int (f->db, "SELECT COUNT (*) FROM gemini_key_usage_log");
}

/* Runs the rest of the test in a private mount namespace, so mounts made
 * for it vanish with the (sub)process. FALSE when not permitted. */
static gboolean
enter_private_mounts (void)
{
  if (geteuid () != 0 || unshare (CLONE_NEWNS) != 0)
    return FALSE;
  return mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
}

/* Whether enter_private_mounts() and mounting work here, asked of a
 * throw-away child so the test process itself stays as it is. */
static gboolean
mounts_permitted (void)
{
  g_autofree char *dir = g_dir_make_tmp ("gk-probe-XXXXXX", NULL);
  int status = 0;
  pid_t pid;

  g_assert_nonnull (dir);
  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      /* Only system calls here: the parent may have threads. */
      if (!enter_private_mounts () || mount ("tmpfs", dir, "tmpfs", 0, "size=64k") != 0)
        _exit (1);
      _exit (0);
    }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_rmdir (dir);
  return WIFEXITED (status) && WEXITSTATUS (status) == 0;
}

/* ---- Disk full ---------------------------------------------------------- */

/* Writes until the disk refuses, then frees space with @make_room and
 * checks that the pool works again and nothing acknowledged was lost. */
static void
fill_until_full (Fixture   *f,
                 void     (*make_room) (gpointer data),
                 gpointer   data)
{
  g_autoptr(GArray) acked = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr(GError) error = NULL;
  g_autofree char *filler = g_strnfill (2000, 'x');
  guint attempts;

  for (attempts = 0; attempts < 200000; attempts++)
    {
      GkUsageRecord record;
      GkTrackResult result = { 0 };

      gk_usage_record_init (&record);
      record.key_id = f->ids[attempts % 3];
      record.model = "gemini-2.5-flash";
      record.prompt_tokens = 1;
      record.status = GK_USAGE_ERROR;
      record.http_status = 400;
      /* Large rows fill the disk quickly. */
      record.error_message = filler;
      if (!gk_pool_track (f->pool, &record, &result, &error))
        break;
      g_array_append_val (acked, result.usage_id);
    }
  g_assert_nonnull (error);
  g_test_message ("refused after %u rows: %s", acked->len, error->message);
  g_assert_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_FULL);
  assert_no_key_in (f, error);
  g_clear_error (&error);

  /* Reading keeps working while the disk is full. */
  for (guint i = 0; i < 3; i++)
    assert_reveals (f, i);
  {
    g_autoptr(GPtrArray) keys = gk_key_store_list (f->store, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (keys->len, ==, 3);
  }
  {
    g_autoptr(GkKey) key = gk_pool_select (f->pool, NULL, NULL, &error);
    g_assert_no_error (error);
    g_assert_nonnull (key);
  }

  /* A second refused write is still a clean error, not a crash. */
  g_assert_cmpint (track_one (f, 0, 1, &error), ==, 0);
  g_assert_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_FULL);
  g_clear_error (&error);

  make_room (data);
  g_assert_cmpint (track_one (f, 1, 5, &error), >, 0);
  g_assert_no_error (error);

  g_assert_true (gk_database_check_integrity (f->db, &error));
  g_assert_no_error (error);
  for (guint i = 0; i < acked->len; i++)
    g_assert_true (hardening_usage_exists (f->db, g_array_index (acked, gint64, i)));
  g_assert_cmpint (usage_rows (f), ==, acked->len + 1);

  /* And the file reopens cleanly. */
  {
    g_autofree char *path = g_strdup (gk_database_get_path (f->db));

    fixture_close (f);
    fixture_open (f, path);
    g_assert_true (gk_database_check_integrity (f->db, &error));
    g_assert_no_error (error);
    g_assert_cmpint (usage_rows (f), ==, acked->len + 1);
    for (guint i = 0; i < 3; i++)
      assert_reveals (f, i);
  }
}

static void
remove_file_cb (gpointer data)
{
  g_assert_cmpint (g_unlink (data), ==, 0);
}

static void
disk_full_tmpfs_child (void)
{
  g_autofree char *mnt = g_dir_make_tmp ("gk-full-XXXXXX", NULL);
  g_autofree char *path = NULL;
  g_autofree char *ballast = NULL;
  g_autofree char *zeros = NULL;
  Fixture f = { 0 };

  g_assert_nonnull (mnt);
  g_assert_cmpint (mount ("tmpfs", mnt, "tmpfs", 0, "size=2m,mode=0700"), ==, 0);
  path = g_build_filename (mnt, "keys.db", NULL);
  fixture_setup_at (&f, path);

  /* Ballast takes most of the space, so the database fills it soon and
   * deleting the ballast makes room again. */
  ballast = g_build_filename (mnt, "ballast", NULL);
  zeros = g_malloc0 (1536 * 1024);
  g_assert_true (g_file_set_contents (ballast, zeros, 1536 * 1024, NULL));

  fill_until_full (&f, remove_file_cb, ballast);
  fixture_teardown (&f, NULL);
}

static void
test_disk_full_tmpfs (void)
{
  if (g_test_subprocess ())
    {
      g_assert_true (enter_private_mounts ());
      disk_full_tmpfs_child ();
      return;
    }
  if (!mounts_permitted ())
    {
      g_test_skip ("mounting a tmpfs is not permitted here");
      return;
    }
  g_test_trap_subprocess (NULL, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_test_trap_assert_passed ();
}

static void
raise_fsize_cb (gpointer data)
{
  struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };

  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &unlimited), ==, 0);
}

static void
test_disk_full_rlimit (void)
{
  if (g_test_subprocess ())
    {
      Fixture f = { 0 };
      struct rlimit limit = { 512 * 1024, RLIM_INFINITY };

      fixture_setup (&f, NULL);
      /* A write past the limit fails with EFBIG instead of killing us. */
      signal (SIGXFSZ, SIG_IGN);
      g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &limit), ==, 0);
      fill_until_full (&f, raise_fsize_cb, NULL);
      fixture_teardown (&f, NULL);
      return;
    }
  g_test_trap_subprocess (NULL, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_test_trap_assert_passed ();
}

/* ---- Read-only file ----------------------------------------------------- */

static char *
file_digest (const char *path)
{
  g_autofree char *contents = NULL;
  gsize len = 0;

  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) contents, len);
}

/* A database the process cannot write: either opening fails with a clear
 * error, or it opens, reads work and every write fails READ_ONLY. */
static void
assert_read_only_behaviour (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkClock) clock = gk_clock_new_fixed (GK_TEST_EPOCH);
  g_autoptr(GkDatabase) db = gk_database_open (path, clock, &error);

  if (db == NULL)
    {
      g_test_message ("open refused: %s", error->message);
      g_assert_true (g_error_matches (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_READ_ONLY)
                     || g_error_matches (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_OPEN));
      g_assert_cmpstr (error->message, !=, "");
      return;
    }
  {
    g_autoptr(GBytes) master = gk_test_master_key ();
    g_autoptr(GkKeyStore) store = gk_key_store_new (db, master);
    g_autoptr(GkPool) pool = gk_pool_new (db, NULL);
    g_autoptr(GPtrArray) keys = gk_key_store_list (store, &error);
    g_autoptr(GBytes) plain = NULL;
    GkUsageRecord record;
    GkKeySpec spec;

    g_assert_no_error (error);
    g_assert_cmpuint (keys->len, ==, 3);
    plain = gk_key_store_reveal (store, ((GkKey *) keys->pdata[0])->id, &error);
    g_assert_no_error (error);

    gk_usage_record_init (&record);
    record.key_id = ((GkKey *) keys->pdata[0])->id;
    record.model = "gemini-2.5-flash";
    g_assert_false (gk_pool_track (pool, &record, NULL, &error));
    g_test_message ("track refused: %s", error->message);
    g_assert_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_READ_ONLY);
    g_clear_error (&error);

    gk_key_spec_init (&spec);
    spec.name = "new";
    {
      g_autofree char *api_key = gk_test_api_key (900);
      g_assert_cmpint (gk_key_store_add (store, &spec, api_key, &error), ==, 0);
      g_assert_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_READ_ONLY);
      g_assert_null (strstr (error->message, api_key));
      g_clear_error (&error);
    }
    g_assert_false (gk_database_set_setting (db, "k", "v", &error));
    g_assert_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_READ_ONLY);
  }
}

/* A closed database with three keys and a usage row; returns its path. */
static char *
make_closed_db (void)
{
  Fixture f = { 0 };
  g_autoptr(GError) error = NULL;
  char *path;

  fixture_setup (&f, NULL);
  g_assert_cmpint (track_one (&f, 0, 10, &error), >, 0);
  g_assert_no_error (error);
  path = g_strdup (gk_database_get_path (f.db));
  /* Closing the last connection checkpoints and removes the WAL. */
  fixture_close (&f);
  g_clear_object (&f.clock);
  g_clear_pointer (&f.master, g_bytes_unref);
  for (guint i = 0; i < 3; i++)
    g_free (f.api_keys[i]);
  return path;
}

static void
test_read_only_mount (void)
{
  if (g_test_subprocess ())
    {
      const char *path = g_getenv ("GK_HARDENING_DB");
      g_autofree char *dir = g_path_get_dirname (path);

      g_assert_true (enter_private_mounts ());
      /* Root ignores file modes; a read-only bind mount stops it. */
      g_assert_cmpint (mount (dir, dir, NULL, MS_BIND, NULL), ==, 0);
      g_assert_cmpint (mount (NULL, dir, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL), ==, 0);
      assert_read_only_behaviour (path);
      return;
    }
  {
    g_autofree char *path = make_closed_db ();
    g_autofree char *dir = g_path_get_dirname (path);
    g_autofree char *before = file_digest (path);
    g_autofree char *after = NULL;
    g_autoptr(GError) error = NULL;

    if (!mounts_permitted ())
      {
        g_test_skip ("mounts are not permitted here");
        gk_test_rm_rf (dir);
        return;
      }
    g_setenv ("GK_HARDENING_DB", path, TRUE);
    g_test_trap_subprocess (NULL, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_unsetenv ("GK_HARDENING_DB");
    g_test_trap_assert_passed ();

    /* Nothing was changed, and the file is still whole and writable. */
    after = file_digest (path);
    g_assert_cmpstr (before, ==, after);
    {
      g_autoptr(GkDatabase) db = gk_database_open (path, NULL, &error);
      g_assert_no_error (error);
      g_assert_true (gk_database_check_integrity (db, &error));
      g_assert_no_error (error);
      g_assert_true (gk_database_set_setting (db, "k", "v", &error));
      g_assert_no_error (error);
    }
    gk_test_rm_rf (dir);
  }
}

static gboolean
set_immutable (const char *path,
               gboolean    immutable)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  int flags = 0;
  gboolean ok;

  if (fd < 0)
    return FALSE;
  ok = ioctl (fd, FS_IOC_GETFLAGS, &flags) == 0;
  if (ok)
    {
      flags = immutable ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
      ok = ioctl (fd, FS_IOC_SETFLAGS, &flags) == 0;
    }
  close (fd);
  return ok;
}

static void
test_read_only_immutable (void)
{
  g_autofree char *path = make_closed_db ();
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *before = file_digest (path);
  g_autofree char *after = NULL;

  /* `chattr +i`: not even root may write the file (ext4, xfs, btrfs). */
  if (!set_immutable (path, TRUE))
    {
      g_test_skip ("the file system has no immutable flag, or it may not be set here");
      gk_test_rm_rf (dir);
      return;
    }
  assert_read_only_behaviour (path);
  g_assert_true (set_immutable (path, FALSE));
  after = file_digest (path);
  g_assert_cmpstr (before, ==, after);
  gk_test_rm_rf (dir);
}

/* ---- Truncated file ----------------------------------------------------- */

static void
test_truncated (void)
{
  g_autofree char *path = make_closed_db ();
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *contents = NULL;
  gsize len = 0;
  const double cuts[] = { 0.5, 0.9 };
  const gsize small_cuts[] = { 60, 100, 4096 };

  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  g_assert_cmpuint (len, >, 8192);

  for (guint i = 0; i < G_N_ELEMENTS (cuts) + G_N_ELEMENTS (small_cuts); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GkDatabase) db = NULL;
      gsize keep = i < G_N_ELEMENTS (cuts) ? (gsize) (len * cuts[i])
                                           : small_cuts[i - G_N_ELEMENTS (cuts)];

      g_assert_true (g_file_set_contents (path, contents, keep, NULL));
      db = gk_database_open (path, NULL, &error);
      if (db != NULL)
        {
          /* SQLite reads lazily: the damage shows in the integrity check
           * or on the first read of a missing page. */
          g_autoptr(GBytes) master = gk_test_master_key ();
          g_autoptr(GkKeyStore) store = gk_key_store_new (db, master);
          g_autoptr(GPtrArray) keys = NULL;

          if (gk_database_check_integrity (db, &error))
            g_error ("a file cut to %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT
                     " bytes passed the integrity check", keep, len);
          keys = gk_key_store_list (store, NULL);
          (void) keys;
        }
      g_test_message ("cut to %" G_GSIZE_FORMAT ": %s", keep, error->message);
      g_assert_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_CORRUPT);
      g_assert_cmpstr (error->message, !=, "");
    }
  gk_test_rm_rf (dir);
}

/* ---- Damaged and swapped ciphertexts ------------------------------------ */

static GBytes *
read_blob (Fixture *f,
           gint64   id)
{
  g_autoptr(GError) error = NULL;
  GkSqlStmt *stmt;
  GBytes *blob = NULL;

  gk_database_lock (f->db);
  stmt = gk_database_prepare (f->db, "SELECT api_key_encrypted FROM gemini_api_keys WHERE id = ?1",
                              &error);
  g_assert_no_error (error);
  gk_sql_bind_int64 (stmt, 1, id);
  g_assert_cmpint (gk_sql_step (stmt), ==, GK_SQL_ROW);
  blob = g_bytes_new (gk_sql_column_blob (stmt, 0), gk_sql_column_bytes (stmt, 0));
  gk_sql_reset (stmt);
  gk_database_unlock (f->db);
  return blob;
}

static void
write_blob (Fixture *f,
            gint64   id,
            GBytes  *blob)
{
  g_autoptr(GError) error = NULL;
  GkSqlStmt *stmt;

  gk_database_lock (f->db);
  stmt = gk_database_prepare (f->db, "UPDATE gemini_api_keys SET api_key_encrypted = ?2"
                                     " WHERE id = ?1", &error);
  g_assert_no_error (error);
  gk_sql_bind_int64 (stmt, 1, id);
  gk_sql_bind_blob (stmt, 2, g_bytes_get_data (blob, NULL), g_bytes_get_size (blob));
  g_assert_cmpint (gk_sql_step (stmt), ==, GK_SQL_DONE);
  gk_sql_reset (stmt);
  gk_database_unlock (f->db);
}

static void
assert_corrupt (Fixture *f,
                guint    i)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) plain = gk_key_store_reveal (f->store, f->ids[i], &error);
  g_autoptr(GkKey) key = NULL;

  g_assert_null (plain);
  g_assert_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_CORRUPT);
  assert_no_key_in (f, error);
  g_clear_error (&error);
  /* Its metadata still reads. */
  key = gk_key_store_get (f->store, f->ids[i], &error);
  g_assert_no_error (error);
  g_assert_nonnull (key);
}

static void
test_corrupt_ciphertext (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(GBytes) blob = read_blob (f, f->ids[1]);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = NULL;
  gsize len = g_bytes_get_size (blob);
  guint8 *bytes = g_memdup2 (g_bytes_get_data (blob, NULL), len);
  g_autoptr(GBytes) damaged = NULL;

  /* One bit flipped in the middle of the ciphertext. */
  bytes[len / 2] ^= 0x04;
  damaged = g_bytes_new_take (bytes, len);
  write_blob (f, f->ids[1], damaged);

  assert_corrupt (f, 1);
  assert_reveals (f, 0);
  assert_reveals (f, 2);

  keys = gk_key_store_list (f->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (keys->len, ==, 3);

  /* Usage of the other keys goes on; fixing the key (entering it again)
   * heals the row. */
  g_assert_cmpint (track_one (f, 2, 7, &error), >, 0);
  g_assert_no_error (error);
  {
    g_autoptr(GkKey) key = gk_key_store_get (f->store, f->ids[1], &error);
    GkKeySpec spec;

    g_assert_no_error (error);
    gk_key_spec_from_key (&spec, key);
    g_assert_true (gk_key_store_update (f->store, f->ids[1], &spec, f->api_keys[1], &error));
    g_assert_no_error (error);
  }
  assert_reveals (f, 1);
}

static void
test_swapped_ciphertexts (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(GBytes) a = read_blob (f, f->ids[0]);
  g_autoptr(GBytes) b = read_blob (f, f->ids[1]);

  /* Each blob is whole and made with the right master key, but bound to
   * its own row's uuid: moved to another row, it must not decrypt. */
  write_blob (f, f->ids[0], b);
  write_blob (f, f->ids[1], a);

  assert_corrupt (f, 0);
  assert_corrupt (f, 1);
  assert_reveals (f, 2);
}

/* ---- Master key: locked keyring, wrong key file -------------------------- */

static void
lock_default_collection (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SecretService) service = secret_service_get_sync (SECRET_SERVICE_LOAD_COLLECTIONS,
                                                              NULL, &error);
  g_autoptr(SecretCollection) collection = NULL;
  GList *objects;

  g_assert_no_error (error);
  collection = secret_collection_for_alias_sync (service, SECRET_COLLECTION_DEFAULT,
                                                 SECRET_COLLECTION_NONE, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (collection);
  objects = g_list_append (NULL, collection);
  secret_service_lock_sync (service, objects, NULL, NULL, &error);
  g_list_free (objects);
  g_assert_no_error (error);
  g_assert_true (secret_collection_get_locked (collection));
}

static void
keyring_locked_child (void)
{
  Fixture f = { 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GkSecretStore) secrets = NULL;
  g_autoptr(GkSecretStore) later = NULL;
  g_autoptr(GBytes) master = NULL;
  g_autoptr(GBytes) again = NULL;
  g_autofree char *check_before = NULL;
  g_autofree char *check_after = NULL;
  g_autofree char *path = gk_test_db_path ();

  g_unsetenv (GK_MASTER_KEY_FILE_ENV);
  f.clock = gk_clock_new_fixed (GK_TEST_EPOCH);
  f.db = gk_database_open (path, f.clock, &error);
  g_assert_no_error (error);
  secrets = gk_secret_store_new ();
  g_assert_null (gk_secret_store_get_file (secrets));
  master = gk_secret_store_unlock (secrets, f.db, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (master);
  g_object_unref (f.db);
  f.master = g_bytes_ref (master);
  fixture_setup_at (&f, path);
  check_before = gk_database_get_meta (f.db, "key_check_value");

  lock_default_collection ();

  /* A new start while the keyring is locked: a clear LOCKED error, and no
   * new master key is made over the existing ciphertext. */
  later = gk_secret_store_new ();
  again = gk_secret_store_unlock (later, f.db, NULL, &error);
  g_assert_null (again);
  g_assert_nonnull (error);
  g_test_message ("unlock while locked: %s", error->message);
  g_assert_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_LOCKED);
  g_clear_error (&error);
  check_after = gk_database_get_meta (f.db, "key_check_value");
  g_assert_cmpstr (check_before, ==, check_after);

  /* The session that unlocked before holds its key and keeps working. */
  for (guint i = 0; i < 3; i++)
    assert_reveals (&f, i);
  g_assert_cmpint (track_one (&f, 0, 3, &error), >, 0);
  g_assert_no_error (error);
  fixture_teardown (&f, NULL);
}

static void
test_keyring_locked (void)
{
  g_autofree char *script = NULL;
  g_autofree char *self = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) envp = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *dbus_run_session = NULL;
  g_autofree char *keyring_daemon = NULL;
  int status = 0;

  if (g_getenv (PRIVATE_KEYRING_ENV) != NULL)
    {
      keyring_locked_child ();
      return;
    }

  /* Locking the login keyring of the shared test session would fail the
   * keyring tests running next to this one: run in a private session. */
  script = g_build_filename (g_getenv ("GEMINI_KEYS_SOURCE_ROOT") ?: ".", "tests",
                             "keyring-session.sh", NULL);
  dbus_run_session = g_find_program_in_path ("dbus-run-session");
  keyring_daemon = g_find_program_in_path ("gnome-keyring-daemon");
  if (!g_file_test (script, G_FILE_TEST_IS_EXECUTABLE)
      || dbus_run_session == NULL || keyring_daemon == NULL)
    {
      g_test_skip ("needs dbus-run-session, gnome-keyring-daemon and tests/keyring-session.sh");
      return;
    }
  self = g_file_read_link ("/proc/self/exe", &error);
  g_assert_no_error (error);
  envp = g_get_environ ();
  envp = g_environ_unsetenv (envp, "GK_IN_KEYRING_SESSION");
  envp = g_environ_setenv (envp, PRIVATE_KEYRING_ENV, "1", TRUE);
  /* The unlock prompt must fail at once rather than wait on a screen
   * (the suite runs under Xvfb). */
  envp = g_environ_unsetenv (envp, "DISPLAY");
  envp = g_environ_unsetenv (envp, "WAYLAND_DISPLAY");
  {
    const char *argv[] = { script, self, "--tap", "-p", "/hardening/faults/keyring-locked", NULL };

    g_spawn_sync (NULL, (char **) argv, envp, G_SPAWN_DEFAULT, NULL, NULL, &out, &err,
                  &status, &error);
  }
  g_assert_no_error (error);
  g_test_message ("%s%s", out, err);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  g_assert_nonnull (strstr (out, "\nok 1 /hardening/faults/keyring-locked"));
}

static void
write_key_file (const char *path,
                guint8      seed)
{
  guint8 raw[GK_MASTER_KEY_LEN];
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < sizeof raw; i++)
    raw[i] = (guint8) (seed + i * 13);
  text = g_base64_encode (raw, sizeof raw);
  g_assert_true (g_file_set_contents_full (path, text, -1, G_FILE_SET_CONTENTS_NONE, 0600,
                                           &error));
  g_assert_no_error (error);
}

static char *
key_rows_digest (GkDatabase *db)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  GkSqlStmt *stmt;

  gk_database_lock (db);
  stmt = gk_database_prepare (db, "SELECT id, uuid, api_key_encrypted, status, updated_at"
                                  " FROM gemini_api_keys ORDER BY id", &error);
  g_assert_no_error (error);
  while (gk_sql_step (stmt) == GK_SQL_ROW)
    for (int c = 0; c < 5; c++)
      g_checksum_update (sum, gk_sql_column_blob (stmt, c), gk_sql_column_bytes (stmt, c));
  gk_sql_reset (stmt);
  gk_database_unlock (db);
  return g_strdup (g_checksum_get_string (sum));
}

static void
test_wrong_master_key_file (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = gk_test_db_path ();
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *right = g_build_filename (dir, "right.key", NULL);
  g_autofree char *wrong = g_build_filename (dir, "wrong.key", NULL);
  g_autofree char *wrong_before = NULL;
  g_autofree char *wrong_after = NULL;
  g_autofree char *rows_before = NULL;
  g_autofree char *rows_after = NULL;
  g_autofree char *check_before = NULL;
  g_autofree char *check_after = NULL;
  Fixture f = { 0 };

  write_key_file (right, 1);
  write_key_file (wrong, 2);
  {
    g_autoptr(GkSecretStore) secrets = gk_secret_store_new_for_file (right);
    g_autoptr(GkDatabase) db = gk_database_open (path, NULL, &error);

    g_assert_no_error (error);
    f.master = gk_secret_store_unlock (secrets, db, NULL, &error);
    g_assert_no_error (error);
  }
  fixture_setup_at (&f, path);
  rows_before = key_rows_digest (f.db);
  check_before = gk_database_get_meta (f.db, "key_check_value");
  wrong_before = file_digest (wrong);

  /* The way a headless user points at a file: the environment. */
  g_setenv (GK_MASTER_KEY_FILE_ENV, wrong, TRUE);
  {
    g_autoptr(GkSecretStore) secrets = gk_secret_store_new ();
    g_autoptr(GBytes) key = NULL;

    g_assert_cmpstr (gk_secret_store_get_file (secrets), ==, wrong);
    key = gk_secret_store_unlock (secrets, f.db, NULL, &error);
    g_assert_null (key);
    g_test_message ("wrong key file: %s", error->message);
    g_assert_error (error, GK_SECRET_ERROR, GK_SECRET_ERROR_WRONG_KEY);
    assert_no_key_in (&f, error);
    g_clear_error (&error);
  }
  g_unsetenv (GK_MASTER_KEY_FILE_ENV);

  /* Nothing changed: rows, check value, the wrong file itself. */
  rows_after = key_rows_digest (f.db);
  check_after = gk_database_get_meta (f.db, "key_check_value");
  wrong_after = file_digest (wrong);
  g_assert_cmpstr (rows_before, ==, rows_after);
  g_assert_cmpstr (check_before, ==, check_after);
  g_assert_cmpstr (wrong_before, ==, wrong_after);

  /* The right file still opens everything. */
  {
    g_autoptr(GkSecretStore) secrets = gk_secret_store_new_for_file (right);
    g_autoptr(GBytes) key = gk_secret_store_unlock (secrets, f.db, NULL, &error);

    g_assert_no_error (error);
    g_assert_true (g_bytes_equal (key, f.master));
    for (guint i = 0; i < 3; i++)
      assert_reveals (&f, i);
  }
  fixture_teardown (&f, NULL);
  gk_test_rm_rf (dir);
}

/* ---- Migration step failing --------------------------------------------- */

static void
test_migration_conflict (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = gk_test_db_path ();
  g_autofree char *dir = g_path_get_dirname (path);
  g_auto(GStrv) created = NULL;
  int version = 0;
  g_auto(GStrv) tables = hardening_fresh_schema (&version);

  {
    g_autoptr(GkDatabase) db = gk_database_new (path, NULL, &error);

    g_assert_no_error (error);
    /* An object in the way of one of the last steps. */
    g_assert_true (gk_database_exec (db, "CREATE TABLE quota_reset_log (x)", &error));
    g_assert_no_error (error);

    g_assert_false (gk_database_migrate (db, &created, &error));
    g_test_message ("migration refused: %s", error->message);
    g_assert_true (error->domain == GK_DATABASE_ERROR);
    g_assert_cmpstr (error->message, !=, "");
    g_clear_error (&error);
    g_assert_null (created);

    /* The whole migration was rolled back: no table of it is left. */
    g_assert_cmpint (hardening_query_int (db, "PRAGMA user_version"), ==, 0);
    g_assert_cmpint (hardening_query_int (db, "SELECT COUNT (*) FROM sqlite_master"
                                              " WHERE name IN ('meta', 'gemini_api_keys')"), ==, 0);

    /* Once the conflict is gone, the same call completes. */
    g_assert_true (gk_database_exec (db, "DROP TABLE quota_reset_log", &error));
    g_assert_no_error (error);
    g_assert_true (gk_database_migrate (db, &created, &error));
    g_assert_no_error (error);
    g_assert_cmpstrv (created, tables);
    g_assert_cmpint (gk_database_get_schema_version (db), ==, version);
    g_assert_true (gk_database_check_integrity (db, &error));
    g_assert_no_error (error);
  }
  {
    /* And the next start finds nothing to do. */
    g_autoptr(GkDatabase) db = gk_database_new (path, NULL, &error);
    g_auto(GStrv) none = NULL;

    g_assert_no_error (error);
    g_assert_true (gk_database_migrate (db, &none, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (g_strv_length (none), ==, 0);
  }
  gk_test_rm_rf (dir);
}

/* ---- Clock stepped across a reset --------------------------------------- */

static gint64
quota_used (Fixture    *f,
            guint       i,
            const char *type)
{
  g_autofree char *sql = g_strdup_printf ("SELECT used_value FROM gemini_key_quotas"
                                          " WHERE key_id = %" G_GINT64_FORMAT
                                          " AND quota_type = '%s' AND unit = 'TOKENS'",
                                          f->ids[i], type);
  g_autoptr(GError) error = NULL;

  /* What a reader sees: expired windows are reset first. */
  g_assert_true (gk_quotas_reset_expired (f->db, &error));
  g_assert_no_error (error);
  return hardening_query_int (f->db, sql);
}

static GkKeyStatus
key_status (Fixture *f,
            guint    i)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) key = NULL;

  g_assert_true (gk_quotas_reset_expired (f->db, &error));
  g_assert_no_error (error);
  key = gk_key_store_get (f->store, f->ids[i], &error);
  g_assert_no_error (error);
  return key->status;
}

static void
test_clock_step (void)
{
  g_autoptr(GError) error = NULL;
  Fixture f = { 0 };
  gint64 monthly = 0;

  fixture_setup (&f, NULL);
  /* Key 0 gets a daily limit; the others are set inactive, so selection
   * shows key 0's state alone. */
  {
    g_autoptr(GkKey) key = gk_key_store_get (f.store, f.ids[0], &error);
    GkKeySpec spec;

    g_assert_no_error (error);
    gk_key_spec_from_key (&spec, key);
    spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = 1000;
    g_assert_true (gk_key_store_update (f.store, f.ids[0], &spec, NULL, &error));
    g_assert_no_error (error);
    for (guint i = 1; i < 3; i++)
      {
        g_assert_true (gk_key_store_set_status (f.store, f.ids[i], GK_KEY_STATUS_INACTIVE,
                                                NULL, &error));
        g_assert_no_error (error);
      }
  }

  /* 2026-03-15 12:00 UTC (05:00 in Los Angeles): the day's quota runs out. */
  g_assert_cmpint (track_one (&f, 0, 960, &error), >, 0);
  g_assert_no_error (error);
  monthly += 960;
  g_assert_cmpint (key_status (&f, 0), ==, GK_KEY_STATUS_QUOTA_EXCEEDED);

  /* One day back: the clock went backwards, not to a new day. Nothing is
   * reset, nothing goes negative, the key stays out. */
  gk_clock_advance (f.clock, -G_TIME_SPAN_DAY / G_USEC_PER_SEC);
  g_assert_cmpint (quota_used (&f, 0, "DAILY"), ==, 960);
  g_assert_cmpint (quota_used (&f, 0, "MONTHLY"), ==, monthly);
  g_assert_cmpint (key_status (&f, 0), ==, GK_KEY_STATUS_QUOTA_EXCEEDED);
  {
    /* Only near its quota (4% left), it still serves when no other key is
     * left, and stays out of normal service. */
    g_autoptr(GkKey) near = gk_pool_select (f.pool, NULL, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpint (near->id, ==, f.ids[0]);
    g_assert_cmpint (key_status (&f, 0), ==, GK_KEY_STATUS_QUOTA_EXCEEDED);
  }

  /* Two days forward (one past the original day): the daily window has
   * ended, the monthly one (March) has not. */
  gk_clock_advance (f.clock, 2 * G_TIME_SPAN_DAY / G_USEC_PER_SEC);
  g_assert_cmpint (quota_used (&f, 0, "DAILY"), ==, 0);
  g_assert_cmpint (quota_used (&f, 0, "MONTHLY"), ==, monthly);
  g_assert_cmpint (key_status (&f, 0), ==, GK_KEY_STATUS_ACTIVE);
  {
    g_autoptr(GkKey) key = gk_pool_select (f.pool, NULL, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpint (key->id, ==, f.ids[0]);
  }
  g_assert_cmpint (track_one (&f, 0, 100, &error), >, 0);
  g_assert_no_error (error);
  monthly += 100;

  /* One day back again, after a reset: no second reset of the month, the
   * day's count is never negative nor above what was charged. */
  gk_clock_advance (f.clock, -G_TIME_SPAN_DAY / G_USEC_PER_SEC);
  g_assert_cmpint (quota_used (&f, 0, "MONTHLY"), ==, monthly);
  g_assert_cmpint (quota_used (&f, 0, "DAILY"), >=, 0);
  g_assert_cmpint (quota_used (&f, 0, "DAILY"), <=, 100);
  g_assert_cmpint (key_status (&f, 0), ==, GK_KEY_STATUS_ACTIVE);

  /* Every use is still in the log, once. */
  g_assert_cmpint (usage_rows (&f), ==, 2);
  g_assert_cmpint (hardening_query_int (f.db, "SELECT COUNT (*) FROM gemini_key_rotation_log"
                                              " WHERE reason = 'QUOTA_LOW'"), ==, 1);
  fixture_teardown (&f, NULL);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add_func ("/hardening/faults/disk-full/tmpfs", test_disk_full_tmpfs);
  g_test_add_func ("/hardening/faults/disk-full/rlimit", test_disk_full_rlimit);
  g_test_add_func ("/hardening/faults/read-only/mount", test_read_only_mount);
  g_test_add_func ("/hardening/faults/read-only/immutable", test_read_only_immutable);
  g_test_add_func ("/hardening/faults/truncated", test_truncated);
  g_test_add ("/hardening/faults/corrupt-ciphertext", Fixture, NULL,
              fixture_setup, test_corrupt_ciphertext, fixture_teardown);
  g_test_add ("/hardening/faults/swapped-ciphertexts", Fixture, NULL,
              fixture_setup, test_swapped_ciphertexts, fixture_teardown);
  g_test_add_func ("/hardening/faults/keyring-locked", test_keyring_locked);
  g_test_add_func ("/hardening/faults/wrong-master-key-file", test_wrong_master_key_file);
  g_test_add_func ("/hardening/faults/migration-conflict", test_migration_conflict);
  g_test_add_func ("/hardening/faults/clock-step", test_clock_step);
  return g_test_run ();
}
