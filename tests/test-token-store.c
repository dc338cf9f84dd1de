/* test-token-store.c: gateway client tokens.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "gk-core.h"
#include "gk-database-private.h"
#include "gk-sql-sqlite.h"

#define EPOCH G_GINT64_CONSTANT (1773576000)

typedef struct
{
  char       *dir;
  char       *path;
  GkClock    *clock;
  GkDatabase *db;
} Fixture;

static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  fixture->dir = g_dir_make_tmp ("gk-token-XXXXXX", &error);
  g_assert_no_error (error);
  fixture->path = g_build_filename (fixture->dir, "keys.db", NULL);
  fixture->clock = gk_clock_new_fixed (EPOCH);
  fixture->db = gk_database_open (fixture->path, fixture->clock, &error);
  g_assert_no_error (error);
}

static void
fixture_tear_down (Fixture       *fixture,
                   gconstpointer  data)
{
  g_autofree char *wal = g_strconcat (fixture->path, "-wal", NULL);
  g_autofree char *shm = g_strconcat (fixture->path, "-shm", NULL);

  g_assert_finalize_object (fixture->db);
  g_clear_object (&fixture->clock);
  g_unlink (fixture->path);
  g_unlink (wal);
  g_unlink (shm);
  g_rmdir (fixture->dir);
  g_free (fixture->path);
  g_free (fixture->dir);
}

static char *
create (Fixture    *fixture,
        const char *name,
        gint64     *id_out)
{
  g_autoptr(GError) error = NULL;
  char *token = gk_token_create (fixture->db, name, id_out, &error);

  g_assert_no_error (error);
  g_assert_nonnull (token);
  return token;
}

static GkToken *
find (Fixture *fixture,
      gint64   id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) tokens = gk_token_list (fixture->db, &error);

  g_assert_no_error (error);
  for (guint i = 0; i < tokens->len; i++)
    {
      GkToken *token = g_ptr_array_index (tokens, i);

      if (token->id == id)
        return g_ptr_array_steal_index (tokens, i);
    }
  return NULL;
}

static void
test_create_verify (Fixture       *fixture,
                    gconstpointer  data)
{
  gint64 id = 0;
  g_autofree char *token = create (fixture, "admin", &id);
  g_autofree char *name = NULL;
  g_autofree char *tampered = NULL;
  g_autoptr(GkToken) row = NULL;

  g_assert_cmpint (id, >, 0);
  g_assert_true (g_str_has_prefix (token, "gk_"));
  /* 32 random bytes in unpadded base64url. */
  g_assert_cmpuint (strlen (token), ==, 3 + 43);
  for (const char *p = token + 3; *p; p++)
    g_assert_true (g_ascii_isalnum (*p) || *p == '-' || *p == '_');

  name = gk_token_verify (fixture->db, token);
  g_assert_cmpstr (name, ==, "admin");

  tampered = g_strdup (token);
  tampered[10] = tampered[10] == 'A' ? 'B' : 'A';
  g_assert_null (gk_token_verify (fixture->db, tampered));
  g_assert_null (gk_token_verify (fixture->db, ""));
  g_assert_null (gk_token_verify (fixture->db, NULL));
  g_assert_null (gk_token_verify (fixture->db, "gk_"));

  row = find (fixture, id);
  g_assert_nonnull (row);
  g_assert_cmpstr (row->name, ==, "admin");
  g_assert_cmpint (row->created_at, ==, EPOCH);
  g_assert_cmpint (row->last_used_at, ==, EPOCH);
  g_assert_cmpint (row->revoked_at, ==, 0);
}

static void
test_tokens_differ (Fixture       *fixture,
                    gconstpointer  data)
{
  g_autofree char *a = create (fixture, "alice", NULL);
  g_autofree char *b = create (fixture, "bob", NULL);
  g_autofree char *name_a = gk_token_verify (fixture->db, a);
  g_autofree char *name_b = gk_token_verify (fixture->db, b);

  g_assert_cmpstr (a, !=, b);
  g_assert_cmpstr (name_a, ==, "alice");
  g_assert_cmpstr (name_b, ==, "bob");
}

static void
test_hash_stored (Fixture       *fixture,
                  gconstpointer  data)
{
  gint64 id = 0;
  g_autofree char *token = create (fixture, "ci", &id);
  g_autofree char *expected = gk_crypto_sha256_hex (token);
  g_autofree char *stored = NULL;
  g_autofree char *dump = NULL;
  GkSqlStmt *stmt;

  gk_database_lock (fixture->db);
  stmt = gk_database_prepare (fixture->db,
                              "SELECT token_hash FROM gateway_tokens WHERE id = ?1", NULL);
  gk_sql_bind_int64 (stmt, 1, id);
  g_assert_cmpint (gk_sql_step (stmt), ==, GK_SQL_ROW);
  stored = g_strdup (gk_sql_column_text (stmt, 0));
  gk_sql_reset (stmt);

  /* No column of any row holds the token text. */
  stmt = gk_database_prepare (fixture->db,
                              "SELECT group_concat (id || name || token_hash || created_at)"
                              " FROM gateway_tokens",
                              NULL);
  g_assert_cmpint (gk_sql_step (stmt), ==, GK_SQL_ROW);
  dump = g_strdup (gk_sql_column_text (stmt, 0));
  gk_sql_reset (stmt);
  gk_database_unlock (fixture->db);

  g_assert_cmpstr (stored, ==, expected);
  g_assert_null (strstr (dump, token + 3));
}

static void
test_revoke (Fixture       *fixture,
             gconstpointer  data)
{
  gint64 id = 0;
  g_autofree char *token = create (fixture, "laptop", &id);
  g_autofree char *name = gk_token_verify (fixture->db, token);
  g_autofree char *again = NULL;
  g_autofree char *replacement = NULL;
  g_autoptr(GkToken) row = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_cmpstr (name, ==, "laptop");

  gk_clock_advance (fixture->clock, 5);
  g_assert_true (gk_token_revoke (fixture->db, id, &error));
  g_assert_no_error (error);
  g_assert_null (gk_token_verify (fixture->db, token));

  row = find (fixture, id);
  g_assert_cmpint (row->revoked_at, ==, EPOCH + 5);
  g_clear_pointer (&row, gk_token_free);

  /* Revoking again keeps the first time and is not an error. */
  gk_clock_advance (fixture->clock, 5);
  g_assert_true (gk_token_revoke (fixture->db, id, &error));
  g_assert_no_error (error);
  row = find (fixture, id);
  g_assert_cmpint (row->revoked_at, ==, EPOCH + 5);

  g_assert_false (gk_token_revoke (fixture->db, id + 100, &error));
  g_assert_error (error, GK_TOKEN_ERROR, GK_TOKEN_ERROR_NOT_FOUND);

  /* The name is free again once its token is revoked. */
  replacement = create (fixture, "laptop", NULL);
  again = gk_token_verify (fixture->db, replacement);
  g_assert_cmpstr (again, ==, "laptop");
  g_assert_null (gk_token_verify (fixture->db, token));
}

static void
test_duplicate (Fixture       *fixture,
                gconstpointer  data)
{
  g_autofree char *first = create (fixture, "shared", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) tokens = NULL;
  char *second;

  second = gk_token_create (fixture->db, "shared", NULL, &error);
  g_assert_error (error, GK_TOKEN_ERROR, GK_TOKEN_ERROR_DUPLICATE);
  g_assert_null (second);
  g_clear_error (&error);

  tokens = gk_token_list (fixture->db, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (tokens->len, ==, 1);
}

static void
test_invalid_names (Fixture       *fixture,
                    gconstpointer  data)
{
  g_autofree char *long_name = g_strnfill (101, 'x');
  g_autoptr(GString) hundred = g_string_new (NULL);
  g_autofree char *ok_token = NULL;
  g_autofree char *unicode_token = NULL;
  g_autoptr(GPtrArray) tokens = NULL;
  g_autoptr(GError) error = NULL;
  const char *bad[] = { "", " lead", "trail ", "tab\there", "\xff\xfe", long_name, NULL };

  for (guint i = 0; bad[i] != NULL; i++)
    {
      char *token = gk_token_create (fixture->db, bad[i], NULL, &error);

      g_assert_error (error, GK_TOKEN_ERROR, GK_TOKEN_ERROR_INVALID_NAME);
      g_assert_null (token);
      g_clear_error (&error);
    }
  g_assert_null (gk_token_create (fixture->db, NULL, NULL, &error));
  g_assert_error (error, GK_TOKEN_ERROR, GK_TOKEN_ERROR_INVALID_NAME);
  g_clear_error (&error);

  /* 100 characters of two bytes each are fine: characters, not bytes. */
  for (guint i = 0; i < 100; i++)
    g_string_append (hundred, "ư");
  unicode_token = create (fixture, hundred->str, NULL);
  ok_token = create (fixture, "a", NULL);

  tokens = gk_token_list (fixture->db, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (tokens->len, ==, 2);
}

static void
test_list (Fixture       *fixture,
           gconstpointer  data)
{
  gint64 ids[3];
  g_autoptr(GPtrArray) tokens = NULL;
  g_autoptr(GError) error = NULL;
  const char *names[] = { "one", "two", "three" };

  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    {
      g_autofree char *token = create (fixture, names[i], &ids[i]);

      gk_clock_advance (fixture->clock, 10);
    }
  g_assert_true (gk_token_revoke (fixture->db, ids[1], &error));

  tokens = gk_token_list (fixture->db, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (tokens->len, ==, 3);
  for (guint i = 0; i < tokens->len; i++)
    {
      GkToken *token = g_ptr_array_index (tokens, i);

      g_assert_cmpint (token->id, ==, ids[i]);
      g_assert_cmpstr (token->name, ==, names[i]);
      g_assert_cmpint (token->created_at, ==, EPOCH + 10 * i);
      g_assert_cmpint (token->last_used_at, ==, 0);
      if (i == 1)
        g_assert_cmpint (token->revoked_at, ==, EPOCH + 30);
      else
        g_assert_cmpint (token->revoked_at, ==, 0);
    }
}

static void
test_last_used (Fixture       *fixture,
                gconstpointer  data)
{
  gint64 id = 0;
  g_autofree char *token = create (fixture, "client", &id);
  g_autoptr(GkToken) row = NULL;

  g_free (gk_token_verify (fixture->db, token));
  row = find (fixture, id);
  g_assert_cmpint (row->last_used_at, ==, EPOCH);
  g_clear_pointer (&row, gk_token_free);

  /* Within a minute the stored time is not rewritten... */
  gk_clock_advance (fixture->clock, 30);
  g_free (gk_token_verify (fixture->db, token));
  row = find (fixture, id);
  g_assert_cmpint (row->last_used_at, ==, EPOCH);
  g_clear_pointer (&row, gk_token_free);

  /* ...after it, it is. */
  gk_clock_advance (fixture->clock, 60);
  g_free (gk_token_verify (fixture->db, token));
  row = find (fixture, id);
  g_assert_cmpint (row->last_used_at, ==, EPOCH + 90);
}

/* A statement left stepped but not reset keeps a read transaction open, so
 * the connection no longer sees other connections' commits. (On a server,
 * a statement's rows are all read at once: it holds nothing open.) */
static gboolean
has_active_statement (GkDatabase *db)
{
  sqlite3 *handle;
  gboolean active = FALSE;

  if (gk_database_is_remote (db))
    return FALSE;
  handle = gk_sql_sqlite_get_handle (gk_database_get_handle (db));
  gk_database_lock (db);
  for (sqlite3_stmt *stmt = sqlite3_next_stmt (handle, NULL); stmt != NULL;
       stmt = sqlite3_next_stmt (handle, stmt))
    active |= sqlite3_stmt_busy (stmt) != 0;
  gk_database_unlock (db);
  return active;
}

static void
test_other_connection (Fixture       *fixture,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) other = gk_database_open (fixture->path, fixture->clock, &error);
  gint64 id = 0;
  g_autofree char *token = NULL;
  g_autofree char *name = NULL;

  g_assert_no_error (error);

  g_assert_false (has_active_statement (fixture->db));
  g_assert_false (has_active_statement (other));

  /* A token made by the CLI works in the gateway's process at once. */
  token = create (fixture, "cli-made", &id);
  name = gk_token_verify (other, token);
  g_assert_cmpstr (name, ==, "cli-made");

  g_assert_true (gk_token_revoke (fixture->db, id, &error));
  g_assert_no_error (error);
  g_assert_null (gk_token_verify (other, token));
  g_assert_false (has_active_statement (other));
}

/* The gateway remembers the tokens it verified; a revocation by another
 * process (the CLI) must still refuse the token on its very next use. */
static void
test_other_process (Fixture       *fixture,
                    gconstpointer  data)
{
  gint64 id = 0;
  g_autofree char *token = create (fixture, "shared", &id);
  int status;
  pid_t child;

  for (int i = 0; i < 3; i++)
    {
      g_autofree char *name = gk_token_verify (fixture->db, token);

      g_assert_cmpstr (name, ==, "shared");
    }

  child = fork ();
  g_assert_cmpint (child, >=, 0);
  if (child == 0)
    {
      g_autoptr(GError) error = NULL;
      GkDatabase *db = gk_database_open (fixture->path, NULL, &error);
      gboolean revoked = db != NULL && gk_token_revoke (db, id, &error);

      /* _exit skips the autoptr clean-up; leak checkers watch children too. */
      g_clear_object (&db);
      g_clear_error (&error);
      g_clear_pointer (&token, g_free);
      _exit (revoked ? 0 : 2);
    }
  g_assert_cmpint (waitpid (child, &status, 0), ==, child);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);

  g_assert_null (gk_token_verify (fixture->db, token));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

  ADD ("/token-store/create-verify", test_create_verify);
  ADD ("/token-store/tokens-differ", test_tokens_differ);
  ADD ("/token-store/hash-stored", test_hash_stored);
  ADD ("/token-store/revoke", test_revoke);
  ADD ("/token-store/other-process", test_other_process);
  ADD ("/token-store/duplicate", test_duplicate);
  ADD ("/token-store/invalid-names", test_invalid_names);
  ADD ("/token-store/list", test_list);
  ADD ("/token-store/last-used", test_last_used);
  ADD ("/token-store/other-connection", test_other_connection);

#undef ADD

  return g_test_run ();
}
