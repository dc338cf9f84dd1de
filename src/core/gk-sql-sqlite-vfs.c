/* gk-sql-sqlite-vfs.c: SQLite's default VFS, with the WAL's writes joined.
 *
 * SQLite appends a commit to the write-ahead log a frame at a time, each in
 * two writes (its 24-byte header, then the page): recording one request,
 * four or five pages, took ten pwrite calls. This VFS hands everything to
 * the default one, except that the contiguous writes to a WAL file wait in
 * a buffer and go out in one call:
 *
 *  - once the last frame of a commit is complete (its header holds the
 *    database size, which only a commit frame's does), so a write that
 *    fails (a full disk) fails the commit, as it would have;
 *  - before anything else is done with the WAL file (a read, a sync, its
 *    size…), or a write elsewhere in it;
 *  - before SQLite publishes new frames to other connections and processes
 *    (the wal-index barrier and locks, on the database file), so nothing
 *    they could read is ever held back.
 *
 * It also tells, without a read transaction, that no other connection has
 * committed since this one last read PRAGMA data_version
 * (gk_sql_sqlite_vfs_data_unchanged()): a read transaction costs four
 * fcntl() calls on the wal-index when the WAL has grown since the last one,
 * as it has after every commit, and the gateway checks data_version for
 * every request (a revoked client token is refused on the next one). Every
 * commit moves the wal-index header (its change counter, WAL size and
 * salts: see SQLite's walformat.html), and this connection's own commits are
 * seen while it holds the WAL's write lock, so the header it knows stays
 * current across them.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <string.h>

#include "gk-sql-sqlite.h"

#define VFS_NAME          "gk-unix"
#define WAL_FRAME_HEADER  24
/* Runs up to this size are joined (a request's commit is some 20 KiB);
 * the default VFS writes at most 128 KiB in one call. */
#define WAL_BUFFER_SIZE   (64 * 1024)
/* The wal-index (region 0 of the -shm file) begins with two copies of its
 * header, which a writer updates second copy first; the WAL's write lock is
 * the first of its locks. */
#define WAL_INDEX_HEADER  48
#define WAL_INDEX_IS_INIT 12
#define WAL_WRITE_LOCK    0

typedef struct _WalFile WalFile;

/* A database file: its own methods forward to the default VFS's file,
 * which lives right after this header; @wal is its WAL while open. */
typedef struct
{
  sqlite3_file  base;
  sqlite3_file *real;
  WalFile      *wal;
  /* The wal-index as mapped, and its header as of this connection's last
   * data_version read or own commit, while no other commit came between
   * (@known_valid). */
  const volatile guint8 *shm;
  guint8        known[WAL_INDEX_HEADER];
  gboolean      known_valid;
  /* Holds the WAL's write lock, having found the header it knew. */
  gboolean      writing;
} DbFile;

struct _WalFile
{
  sqlite3_file   base;
  sqlite3_file  *real;
  DbFile        *db;
  guint8        *buffer;
  int            length;
  sqlite3_int64  start;
  /* The last write was a commit frame's header: its page ends the commit. */
  gboolean       commit_page_next;
};

/* Room for either header, aligned for the default VFS's file after it. */
#define FILE_HEADER_SIZE \
  ((MAX (sizeof (DbFile), sizeof (WalFile)) + 15) & ~(gsize) 15)

static sqlite3_vfs vfs;
static sqlite3_vfs *parent;

#define REAL(file) (((DbFile *) (file))->real)

static int
wal_flush (WalFile *self)
{
  int length = self->length;

  self->length = 0;
  self->commit_page_next = FALSE;
  if (length == 0)
    return SQLITE_OK;
  return self->real->pMethods->xWrite (self->real, self->buffer, length, self->start);
}

/* Methods both kinds of file forward as they are. */

static int
file_read (sqlite3_file *file, void *data, int amount, sqlite3_int64 offset)
{
  return REAL (file)->pMethods->xRead (REAL (file), data, amount, offset);
}

static int
file_write (sqlite3_file *file, const void *data, int amount, sqlite3_int64 offset)
{
  return REAL (file)->pMethods->xWrite (REAL (file), data, amount, offset);
}

static int
file_truncate (sqlite3_file *file, sqlite3_int64 size)
{
  return REAL (file)->pMethods->xTruncate (REAL (file), size);
}

static int
file_sync (sqlite3_file *file, int flags)
{
  return REAL (file)->pMethods->xSync (REAL (file), flags);
}

static int
file_size (sqlite3_file *file, sqlite3_int64 *size)
{
  return REAL (file)->pMethods->xFileSize (REAL (file), size);
}

static int
file_lock (sqlite3_file *file, int level)
{
  return REAL (file)->pMethods->xLock (REAL (file), level);
}

static int
file_unlock (sqlite3_file *file, int level)
{
  return REAL (file)->pMethods->xUnlock (REAL (file), level);
}

static int
file_check_reserved_lock (sqlite3_file *file, int *reserved)
{
  return REAL (file)->pMethods->xCheckReservedLock (REAL (file), reserved);
}

static int
file_control (sqlite3_file *file, int op, void *arg)
{
  return REAL (file)->pMethods->xFileControl (REAL (file), op, arg);
}

static int
file_sector_size (sqlite3_file *file)
{
  return REAL (file)->pMethods->xSectorSize (REAL (file));
}

static int
file_device_characteristics (sqlite3_file *file)
{
  return REAL (file)->pMethods->xDeviceCharacteristics (REAL (file));
}

static int
file_shm_map (sqlite3_file *file, int region, int size, int extend, void volatile **p)
{
  return REAL (file)->pMethods->xShmMap (REAL (file), region, size, extend, p);
}

static int
file_shm_lock (sqlite3_file *file, int offset, int n, int flags)
{
  return REAL (file)->pMethods->xShmLock (REAL (file), offset, n, flags);
}

static void
file_shm_barrier (sqlite3_file *file)
{
  REAL (file)->pMethods->xShmBarrier (REAL (file));
}

static int
file_shm_unmap (sqlite3_file *file, int delete_flag)
{
  return REAL (file)->pMethods->xShmUnmap (REAL (file), delete_flag);
}

static int
file_fetch (sqlite3_file *file, sqlite3_int64 offset, int amount, void **p)
{
  return REAL (file)->pMethods->xFetch (REAL (file), offset, amount, p);
}

static int
file_unfetch (sqlite3_file *file, sqlite3_int64 offset, void *p)
{
  return REAL (file)->pMethods->xUnfetch (REAL (file), offset, p);
}

/* The database file: its WAL's writes go out before other connections are
 * told of new frames (barrier) or the wal-index changes hands (locks). */

static void
db_flush_wal (sqlite3_file *file)
{
  DbFile *self = (DbFile *) file;

  /* Only frames rewritten in place can wait here (a commit's own frames
   * went out with its last page), and overwriting needs no new space: an
   * error here has nowhere to go, and would have been the commit's. */
  if (self->wal != NULL && wal_flush (self->wal) != SQLITE_OK)
    g_warning ("Cannot write the database's write-ahead log");
}

static int
db_close (sqlite3_file *file)
{
  DbFile *self = (DbFile *) file;

  if (self->wal != NULL)
    self->wal->db = NULL;
  return self->real->pMethods->xClose (self->real);
}

/* Copies the wal-index header into @out; FALSE when there is none, or a
 * writer is updating it (its two copies differ), as SQLite itself reads it. */
static gboolean
shm_header_read (DbFile *self,
                 guint8 *out)
{
  guint8 second[WAL_INDEX_HEADER];

  if (self->shm == NULL)
    return FALSE;
  memcpy (out, (const guint8 *) self->shm, WAL_INDEX_HEADER);
  __atomic_thread_fence (__ATOMIC_SEQ_CST);
  memcpy (second, (const guint8 *) self->shm + WAL_INDEX_HEADER, WAL_INDEX_HEADER);
  return out[WAL_INDEX_IS_INIT] != 0 && memcmp (out, second, WAL_INDEX_HEADER) == 0;
}

static int
db_shm_map (sqlite3_file *file, int region, int size, int extend, void volatile **p)
{
  DbFile *self = (DbFile *) file;
  int rc = file_shm_map (file, region, size, extend, p);

  if (region == 0 && rc == SQLITE_OK && *p != NULL)
    self->shm = *p;
  return rc;
}

static int
db_shm_lock (sqlite3_file *file, int offset, int n, int flags)
{
  DbFile *self = (DbFile *) file;
  guint8 header[WAL_INDEX_HEADER];
  int rc;

  db_flush_wal (file);
  if (offset != WAL_WRITE_LOCK || n != 1 || !(flags & SQLITE_SHM_EXCLUSIVE))
    return file_shm_lock (file, offset, n, flags);

  if (flags & SQLITE_SHM_UNLOCK)
    {
      /* The header as this connection's commit (if any) left it, read
       * while no other can change it. */
      if (self->writing && shm_header_read (self, header))
        memcpy (self->known, header, WAL_INDEX_HEADER);
      else
        self->known_valid = FALSE;
      self->writing = FALSE;
      return file_shm_lock (file, offset, n, flags);
    }

  rc = file_shm_lock (file, offset, n, flags);
  if (rc == SQLITE_OK)
    {
      /* Another connection's commit since the header was known would
       * move this connection's data_version: the next read finds out. */
      self->writing = self->known_valid && shm_header_read (self, header)
                      && memcmp (header, self->known, WAL_INDEX_HEADER) == 0;
      if (!self->writing)
        self->known_valid = FALSE;
    }
  return rc;
}

static void
db_shm_barrier (sqlite3_file *file)
{
  db_flush_wal (file);
  file_shm_barrier (file);
}

static int
db_shm_unmap (sqlite3_file *file, int delete_flag)
{
  DbFile *self = (DbFile *) file;

  db_flush_wal (file);
  self->shm = NULL;
  self->known_valid = FALSE;
  self->writing = FALSE;
  return file_shm_unmap (file, delete_flag);
}

static const sqlite3_io_methods db_methods = {
  .iVersion = 3,
  .xClose = db_close,
  .xRead = file_read,
  .xWrite = file_write,
  .xTruncate = file_truncate,
  .xSync = file_sync,
  .xFileSize = file_size,
  .xLock = file_lock,
  .xUnlock = file_unlock,
  .xCheckReservedLock = file_check_reserved_lock,
  .xFileControl = file_control,
  .xSectorSize = file_sector_size,
  .xDeviceCharacteristics = file_device_characteristics,
  .xShmMap = db_shm_map,
  .xShmLock = db_shm_lock,
  .xShmBarrier = db_shm_barrier,
  .xShmUnmap = db_shm_unmap,
  .xFetch = file_fetch,
  .xUnfetch = file_unfetch,
};

/* The WAL file: whatever is done with it sees the writes before it. */

static int
wal_close (sqlite3_file *file)
{
  WalFile *self = (WalFile *) file;
  int rc = wal_flush (self);
  int close_rc;

  if (self->db != NULL)
    self->db->wal = NULL;
  g_clear_pointer (&self->buffer, g_free);
  close_rc = self->real->pMethods->xClose (self->real);
  return rc != SQLITE_OK ? rc : close_rc;
}

static int
wal_write (sqlite3_file *file, const void *data, int amount, sqlite3_int64 offset)
{
  WalFile *self = (WalFile *) file;
  gboolean ends_commit = self->commit_page_next;
  int rc;

  self->commit_page_next = FALSE;
  if (self->length > 0
      && (offset != self->start + self->length || self->length + amount > WAL_BUFFER_SIZE)
      && (rc = wal_flush (self)) != SQLITE_OK)
    return rc;
  if (amount > WAL_BUFFER_SIZE)
    return self->real->pMethods->xWrite (self->real, data, amount, offset);

  if (self->buffer == NULL)
    self->buffer = g_malloc (WAL_BUFFER_SIZE);
  if (self->length == 0)
    self->start = offset;
  memcpy (self->buffer + self->length, data, amount);
  self->length += amount;
  if (ends_commit)
    return wal_flush (self);
  /* A frame header: page number, then the database's size in pages after
   * the commit, which is 0 except in a commit's last frame. */
  self->commit_page_next = amount == WAL_FRAME_HEADER
                           && memcmp ((const guint8 *) data + 4, "\0\0\0\0", 4) != 0;
  return SQLITE_OK;
}

/* Writes what waits, then calls the default VFS's @call. */
#define WAL_FLUSHED(call, ...) \
  WalFile *self = (WalFile *) file; \
  int rc = wal_flush (self); \
  return rc != SQLITE_OK ? rc : self->real->pMethods->call (self->real, __VA_ARGS__)

static int
wal_read (sqlite3_file *file, void *data, int amount, sqlite3_int64 offset)
{
  WAL_FLUSHED (xRead, data, amount, offset);
}

static int
wal_truncate (sqlite3_file *file, sqlite3_int64 size)
{
  WAL_FLUSHED (xTruncate, size);
}

static int
wal_sync (sqlite3_file *file, int flags)
{
  WAL_FLUSHED (xSync, flags);
}

static int
wal_size (sqlite3_file *file, sqlite3_int64 *size)
{
  WAL_FLUSHED (xFileSize, size);
}

static int
wal_control (sqlite3_file *file, int op, void *arg)
{
  WAL_FLUSHED (xFileControl, op, arg);
}

static int
wal_fetch (sqlite3_file *file, sqlite3_int64 offset, int amount, void **p)
{
  WAL_FLUSHED (xFetch, offset, amount, p);
}

static const sqlite3_io_methods wal_methods = {
  .iVersion = 3,
  .xClose = wal_close,
  .xRead = wal_read,
  .xWrite = wal_write,
  .xTruncate = wal_truncate,
  .xSync = wal_sync,
  .xFileSize = wal_size,
  .xLock = file_lock,
  .xUnlock = file_unlock,
  .xCheckReservedLock = file_check_reserved_lock,
  .xFileControl = wal_control,
  .xSectorSize = file_sector_size,
  .xDeviceCharacteristics = file_device_characteristics,
  .xShmMap = file_shm_map,
  .xShmLock = file_shm_lock,
  .xShmBarrier = file_shm_barrier,
  .xShmUnmap = file_shm_unmap,
  .xFetch = wal_fetch,
  .xUnfetch = file_unfetch,
};

static int
vfs_open (sqlite3_vfs  *self,
          const char   *name,
          sqlite3_file *file,
          int           flags,
          int          *out_flags)
{
  sqlite3_file *real = (sqlite3_file *) ((char *) file + FILE_HEADER_SIZE);
  int rc;

  (void) self;
  /* Journals and temporary files are the default VFS's own. */
  if (!(flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)))
    return parent->xOpen (parent, name, file, flags, out_flags);

  memset (file, 0, FILE_HEADER_SIZE);
  rc = parent->xOpen (parent, name, real, flags, out_flags);
  if (real->pMethods == NULL)
    return rc;
  /* Methods the default VFS's file lacks (an older version) stay absent. */
  if (real->pMethods->iVersion < 3)
    {
      real->pMethods->xClose (real);
      return parent->xOpen (parent, name, file, flags, out_flags);
    }

  if (flags & SQLITE_OPEN_WAL)
    {
      WalFile *wal = (WalFile *) file;

      wal->real = real;
      wal->db = (DbFile *) sqlite3_database_file_object (name);
      if (wal->db != NULL && wal->db->base.pMethods == &db_methods)
        wal->db->wal = wal;
      else
        wal->db = NULL;
      file->pMethods = &wal_methods;
    }
  else
    {
      ((DbFile *) file)->real = real;
      file->pMethods = &db_methods;
    }
  return rc;
}

const char *
gk_sql_sqlite_vfs_name (void)
{
  static gsize registered = 0;

  if (g_once_init_enter (&registered))
    {
      parent = sqlite3_vfs_find (NULL);
      vfs = *parent;
      vfs.szOsFile = FILE_HEADER_SIZE + parent->szOsFile;
      vfs.pNext = NULL;
      vfs.zName = VFS_NAME;
      vfs.xOpen = vfs_open;
      sqlite3_vfs_register (&vfs, 0);
      g_once_init_leave (&registered, 1);
    }
  return VFS_NAME;
}

/* The main database file of @db when it is one of ours. */
static DbFile *
db_file_of (sqlite3 *db)
{
  sqlite3_file *file = NULL;

  if (sqlite3_file_control (db, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK
      || file == NULL || file->pMethods != &db_methods)
    return NULL;
  return (DbFile *) file;
}

void
gk_sql_sqlite_vfs_data_read (sqlite3 *db)
{
  DbFile *self = db_file_of (db);

  /* Read before the PRAGMA's own read transaction: a commit between the
   * two only makes the next check read again. */
  if (self != NULL)
    self->known_valid = shm_header_read (self, self->known);
}

gboolean
gk_sql_sqlite_vfs_data_unchanged (sqlite3 *db)
{
  DbFile *self = db_file_of (db);
  guint8 header[WAL_INDEX_HEADER];

  return self != NULL && self->known_valid && shm_header_read (self, header)
         && memcmp (header, self->known, WAL_INDEX_HEADER) == 0;
}
