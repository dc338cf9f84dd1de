/* gk-token-store.c: gateway client tokens, stored as SHA-256 hashes.
 *
 * A token is "gk_" followed by 32 random bytes in unpadded base64url. Only
 * its hash is kept, so a copy of the database does not let anyone use the
 * gateway. The tokens carry 256 bits of randomness, so a plain hash (not a
 * slow password hash) is enough.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <string.h>

#include <glib/gi18n.h>
#include <openssl/rand.h>

#include "gk-audit.h"
#include "gk-crypto.h"
#include "gk-database-private.h"
#include "gk-token-store.h"

#define TOKEN_PREFIX        "gk_"
#define TOKEN_RANDOM_BYTES  32
#define TOKEN_NAME_MAX      100
/* last_used_at is for display; writing it on every request would turn each
 * gateway request into a database write. */
#define LAST_USED_RESOLUTION_S 60

G_DEFINE_QUARK (gk-token-error-quark, gk_token_error)

void
gk_token_free (GkToken *token)
{
  if (token == NULL)
    return;
  g_free (token->name);
  g_free (token);
}

/**
 * gk_token_validate_name:
 *
 * Whether @name can name a token (the rules gk_token_create() applies);
 * sets a GK_TOKEN_ERROR_INVALID_NAME error saying why not.
 */
gboolean
gk_token_validate_name (const char  *name,
                        GError     **error)
{
  glong n_chars;

  if (name == NULL || !g_utf8_validate (name, -1, NULL))
    {
      g_set_error (error, GK_TOKEN_ERROR, GK_TOKEN_ERROR_INVALID_NAME,
                   _("The token name is not valid text."));
      return FALSE;
    }

  n_chars = g_utf8_strlen (name, -1);
  if (n_chars < 1 || n_chars > TOKEN_NAME_MAX)
    {
      g_set_error (error, GK_TOKEN_ERROR, GK_TOKEN_ERROR_INVALID_NAME,
                   _("The token name must be 1 to %d characters long."), TOKEN_NAME_MAX);
      return FALSE;
    }

  /* The name is the user id in logs and tables: keep it printable and
   * free of look-alike padding. */
  if (g_unichar_isspace (g_utf8_get_char (name))
      || g_unichar_isspace (g_utf8_get_char (g_utf8_prev_char (name + strlen (name)))))
    {
      g_set_error (error, GK_TOKEN_ERROR, GK_TOKEN_ERROR_INVALID_NAME,
                   _("The token name must not start or end with a space."));
      return FALSE;
    }
  for (const char *p = name; *p != '\0'; p = g_utf8_next_char (p))
    {
      if (g_unichar_iscntrl (g_utf8_get_char (p)))
        {
          g_set_error (error, GK_TOKEN_ERROR, GK_TOKEN_ERROR_INVALID_NAME,
                       _("The token name must not contain control characters."));
          return FALSE;
        }
    }
  return TRUE;
}

static char *
new_token_text (void)
{
  guint8 random_bytes[TOKEN_RANDOM_BYTES];
  char *encoded;
  char *token;

  if (RAND_bytes (random_bytes, sizeof random_bytes) != 1)
    g_error ("The system random number generator failed");

  encoded = g_base64_encode (random_bytes, sizeof random_bytes);
  gk_crypto_wipe (random_bytes, sizeof random_bytes);

  /* base64url without padding: safe in URLs (?key=) and headers. */
  for (char *p = encoded; *p != '\0'; p++)
    {
      if (*p == '+')
        *p = '-';
      else if (*p == '/')
        *p = '_';
      else if (*p == '=')
        {
          *p = '\0';
          break;
        }
    }

  token = g_strconcat (TOKEN_PREFIX, encoded, NULL);
  gk_crypto_wipe_string (encoded);
  return token;
}

/**
 * gk_token_create:
 *
 * Creates a token named @name (1–100 characters, unique among live tokens).
 * The returned text is the only copy: show it once, then wipe it.
 */
char *
gk_token_create (GkDatabase  *db,
                 const char  *name,
                 gint64      *id_out,
                 GError     **error)
{
  g_autofree char *hash = NULL;
  char *token;
  GkSqlStmt *stmt;
  gboolean duplicate = FALSE;
  gint64 id;
  int rc;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!gk_token_validate_name (name, error))
    return NULL;

  token = new_token_text ();
  hash = gk_crypto_sha256_hex (token);

  if (!gk_database_begin (db, error))
    {
      gk_crypto_wipe_string (token);
      return NULL;
    }

  stmt = gk_database_prepare (db,
                              "SELECT EXISTS (SELECT 1 FROM gateway_tokens"
                              " WHERE name = ?1 AND revoked_at IS NULL)",
                              error);
  if (stmt == NULL)
    goto fail;
  gk_sql_bind_text (stmt, 1, name, -1);
  rc = gk_sql_step (stmt);
  if (rc == GK_SQL_ROW)
    duplicate = gk_sql_column_int64 (stmt, 0) != 0;
  else
    gk_database_set_error (db, error, _("Cannot read the gateway tokens"));
  gk_sql_reset (stmt);
  if (rc != GK_SQL_ROW)
    goto fail;
  if (duplicate)
    {
      g_set_error (error, GK_TOKEN_ERROR, GK_TOKEN_ERROR_DUPLICATE,
                   _("A token named “%s” already exists. Choose another name, or revoke the "
                     "old token first."),
                   name);
      goto fail;
    }

  stmt = gk_database_prepare (db,
                              "INSERT INTO gateway_tokens (name, token_hash, created_at)"
                              " VALUES (?1, ?2, ?3) RETURNING id",
                              error);
  if (stmt == NULL)
    goto fail;
  gk_sql_bind_text (stmt, 1, name, -1);
  gk_sql_bind_text (stmt, 2, hash, -1);
  gk_sql_bind_int64 (stmt, 3, gk_database_now (db));
  id = gk_database_step_insert (db, stmt, N_("Cannot save the gateway token"), error);
  if (id == 0)
    goto fail;

  if (id_out != NULL)
    *id_out = id;
  if (!gk_audit_record (db, GK_AUDIT_TOKEN_CREATE, id, name, NULL, error))
    goto fail;

  if (!gk_database_commit (db, error))
    {
      gk_crypto_wipe_string (token);
      return NULL;
    }
  return token;

fail:
  gk_database_rollback (db);
  gk_crypto_wipe_string (token);
  return NULL;
}

/**
 * gk_token_list:
 *
 * Every token, revoked ones included, oldest first.
 */
GPtrArray *
gk_token_list (GkDatabase  *db,
               GError     **error)
{
  g_autoptr(GPtrArray) tokens = g_ptr_array_new_with_free_func ((GDestroyNotify) gk_token_free);
  GkSqlStmt *stmt;
  int rc;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);

  gk_database_lock (db);
  stmt = gk_database_prepare (db,
                              "SELECT id, name, created_at, COALESCE (last_used_at, 0),"
                              " COALESCE (revoked_at, 0) FROM gateway_tokens ORDER BY id",
                              error);
  if (stmt == NULL)
    {
      gk_database_unlock (db);
      return NULL;
    }

  while ((rc = gk_sql_step (stmt)) == GK_SQL_ROW)
    {
      GkToken *token = g_new0 (GkToken, 1);

      token->id = gk_sql_column_int64 (stmt, 0);
      token->name = g_strdup (gk_sql_column_text (stmt, 1));
      token->created_at = gk_sql_column_int64 (stmt, 2);
      token->last_used_at = gk_sql_column_int64 (stmt, 3);
      token->revoked_at = gk_sql_column_int64 (stmt, 4);
      g_ptr_array_add (tokens, token);
    }
  if (rc != GK_SQL_DONE)
    gk_database_set_error (db, error, _("Cannot read the gateway tokens"));
  gk_sql_reset (stmt);
  gk_database_unlock (db);

  if (rc != GK_SQL_DONE)
    return NULL;
  return g_steal_pointer (&tokens);
}

/* Live tokens already verified, by hash, so that a request from a known
 * client reads no row. The cache is valid for one data_version: any
 * other connection's or process's commit (a revocation by the CLI) empties
 * it before the next lookup, and gk_token_revoke() empties it for this
 * connection's own commits, which do not move data_version. On a server,
 * data_version moves only while the database is watched (a gateway), at
 * the latest every GK_DATABASE_REFRESH_S seconds, and not while the server
 * is out of reach: the clients checked since its last change are still let
 * in then (the others cannot be checked: gk_token_verify_full() says so).
 * Unknown tokens are never cached. Guarded by the database lock. */
typedef struct
{
  gint64      version;
  GHashTable *entries;    /* token_hash -> TokenEntry */
} TokenCache;

typedef struct
{
  gint64  id;
  char   *name;
  gint64  last_used;
} TokenEntry;

static void
token_entry_free (gpointer data)
{
  TokenEntry *entry = data;

  g_free (entry->name);
  g_free (entry);
}

static void
token_cache_free (gpointer data)
{
  TokenCache *cache = data;

  g_hash_table_unref (cache->entries);
  g_free (cache);
}

/* The database's token cache, current for its data_version; NULL on a
 * server not watched (its data_version does not move). Call with the
 * database lock held. */
static TokenCache *
token_cache_get (GkDatabase *db)
{
  TokenCache *cache;
  gint64 version;

  if (!gk_database_has_live_version (db))
    return NULL;
  version = gk_database_get_data_version (db);
  if (version < 0)
    return NULL;

  cache = g_object_get_data (G_OBJECT (db), "gk-token-cache");
  if (cache == NULL)
    {
      cache = g_new0 (TokenCache, 1);
      cache->entries = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, token_entry_free);
      g_object_set_data_full (G_OBJECT (db), "gk-token-cache", cache, token_cache_free);
    }
  if (cache->version != version)
    {
      g_hash_table_remove_all (cache->entries);
      cache->version = version;
    }
  return cache;
}

/* Forgets every cached token. Call with the database lock held. */
static void
token_cache_clear (GkDatabase *db)
{
  TokenCache *cache = g_object_get_data (G_OBJECT (db), "gk-token-cache");

  if (cache != NULL)
    g_hash_table_remove_all (cache->entries);
}

/**
 * gk_token_revoke:
 *
 * Revokes token @id at once; revoking a revoked token changes nothing.
 */
gboolean
gk_token_revoke (GkDatabase  *db,
                 gint64       id,
                 GError     **error)
{
  g_autofree char *name = NULL;
  GkSqlStmt *stmt;
  gboolean was_valid = FALSE;
  int rc;

  g_return_val_if_fail (GK_IS_DATABASE (db), FALSE);

  if (!gk_database_begin (db, error))
    return FALSE;
  stmt = gk_database_prepare (db,
                              "SELECT name, revoked_at IS NULL FROM gateway_tokens WHERE id = ?1",
                              error);
  if (stmt == NULL)
    goto fail;
  gk_sql_bind_int64 (stmt, 1, id);
  rc = gk_sql_step (stmt);
  if (rc == GK_SQL_ROW)
    {
      name = g_strdup (gk_sql_column_text (stmt, 0));
      was_valid = gk_sql_column_int64 (stmt, 1) != 0;
    }
  else if (rc != GK_SQL_DONE)
    gk_database_set_error (db, error, _("Cannot read the gateway tokens"));
  gk_sql_reset (stmt);
  if (rc != GK_SQL_ROW && rc != GK_SQL_DONE)
    goto fail;
  if (name == NULL)
    {
      g_autofree char *id_text = g_strdup_printf ("%" G_GINT64_FORMAT, id);

      g_set_error (error, GK_TOKEN_ERROR, GK_TOKEN_ERROR_NOT_FOUND,
                   _("There is no gateway token with id %s."), id_text);
      goto fail;
    }
  /* A revoked token keeps its first revocation time and row. */
  if (!was_valid)
    {
      gk_database_rollback (db);
      return TRUE;
    }

  stmt = gk_database_prepare (db, "UPDATE gateway_tokens SET revoked_at = ?2 WHERE id = ?1",
                              error);
  if (stmt == NULL)
    goto fail;
  gk_sql_bind_int64 (stmt, 1, id);
  gk_sql_bind_int64 (stmt, 2, gk_database_now (db));
  rc = gk_sql_step (stmt);
  if (rc != GK_SQL_DONE)
    gk_database_set_error (db, error, _("Cannot revoke the gateway token"));
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE ||
      !gk_audit_record (db, GK_AUDIT_TOKEN_REVOKE, id, name, NULL, error))
    goto fail;
  /* Our own commit does not move data_version: the next verification must
   * not find the token in the cache. */
  token_cache_clear (db);
  return gk_database_commit (db, error);

fail:
  gk_database_rollback (db);
  return FALSE;
}

/* Looks @hash up among the live tokens; a new TokenEntry, or NULL (with
 * @error set when the database could not answer). */
static TokenEntry *
token_lookup (GkDatabase *db,
              const char *hash,
              GError    **error)
{
  GkSqlStmt *stmt;
  GkSqlStep rc;
  TokenEntry *entry = NULL;

  stmt = gk_database_prepare (db,
                              "SELECT id, name, token_hash, COALESCE (last_used_at, 0)"
                              " FROM gateway_tokens WHERE token_hash = ?1 AND revoked_at IS NULL",
                              error);
  if (stmt == NULL)
    return NULL;
  gk_sql_bind_text (stmt, 1, hash, -1);
  rc = gk_sql_step (stmt);
  if (rc == GK_SQL_ROW && gk_crypto_equal_const_time (gk_sql_column_text (stmt, 2), hash))
    {
      entry = g_new0 (TokenEntry, 1);
      entry->id = gk_sql_column_int64 (stmt, 0);
      entry->name = g_strdup (gk_sql_column_text (stmt, 1));
      entry->last_used = gk_sql_column_int64 (stmt, 3);
    }
  else if (rc != GK_SQL_ROW && rc != GK_SQL_DONE)
    gk_database_set_error (db, error, _("Cannot read the gateway tokens"));
  gk_sql_reset (stmt);
  return entry;
}

/**
 * gk_token_verify:
 *
 * The name of the live token @token, or NULL. Safe to call from any thread.
 */
char *
gk_token_verify (GkDatabase *db,
                 const char *token)
{
  return gk_token_verify_full (db, token, NULL);
}

/**
 * gk_token_verify_full:
 *
 * gk_token_verify(), and @error set when the answer is NULL because the
 * database could not be asked (a server out of reach): the token may well
 * be valid then. Safe to call from any thread.
 */
char *
gk_token_verify_full (GkDatabase  *db,
                      const char  *token,
                      GError     **error)
{
  g_autofree char *hash = NULL;
  TokenEntry *uncached = NULL;    /* looked up without a cache (a server) */
  GkSqlStmt *stmt;
  TokenCache *cache;
  TokenEntry *entry = NULL;
  char *name = NULL;
  gint64 now;

  g_return_val_if_fail (GK_IS_DATABASE (db), NULL);

  if (token == NULL || *token == '\0')
    return NULL;

  /* Both lookups (the cache's and the table's) are by hash, so their timing
   * says nothing about the token; the table's final comparison is
   * constant-time all the same. */
  hash = gk_crypto_sha256_hex (token);

  gk_database_lock (db);
  cache = token_cache_get (db);
  if (cache != NULL)
    entry = g_hash_table_lookup (cache->entries, hash);
  if (entry == NULL)
    {
      entry = token_lookup (db, hash, error);
      if (entry != NULL && cache != NULL)
        g_hash_table_replace (cache->entries, g_strdup (hash), entry);
      else
        uncached = entry;
    }

  now = gk_database_now (db);
  if (entry != NULL && (now - entry->last_used >= LAST_USED_RESOLUTION_S || now < entry->last_used))
    {
      stmt = gk_database_prepare (db, "UPDATE gateway_tokens SET last_used_at = ?2 WHERE id = ?1",
                                  NULL);
      if (stmt != NULL)
        {
          gk_sql_bind_int64 (stmt, 1, entry->id);
          gk_sql_bind_int64 (stmt, 2, now);
          /* Failing to record the time (a busy database) must not refuse a
           * valid token. */
          if (gk_sql_step (stmt) == GK_SQL_DONE)
            entry->last_used = now;
          else
            g_debug ("Cannot record the use of gateway token %" G_GINT64_FORMAT, entry->id);
          gk_sql_reset (stmt);
        }
    }
  if (entry != NULL)
    name = g_strdup (entry->name);
  gk_database_unlock (db);
  g_clear_pointer (&uncached, token_entry_free);

  return name;
}
