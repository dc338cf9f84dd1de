/* gk-database.c: a GObject over one SQL connection (gk-sql.h: an SQLite
 * file by default), with migrations.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>

#include "gk-audit.h"
#include "gk-clock.h"
#include "gk-database-postgresql.h"
#include "gk-database-private.h"
#include "gk-sql-postgresql.h"
#include "gk-sql-sqlite.h"
#include "gk-rollup.h"

struct _GkDatabase
{
  GObject     parent_instance;
  char       *path;
  GkSql      *handle;
  GkClock    *clock;
  GRecMutex   mutex;
  /* The thread holding the mutex and how many times: the connection is
   * opened without SQLite's own mutex, so every use must hold ours. */
  GThread    *owner;
  guint       lock_count;
  GHashTable *statements;   /* sql → GkSqlStmt */
  /* The address of a statement's text as last asked for (most often a
   * string literal) → its StatementAddress: found again without hashing
   * the whole text, as each request's dozen statements are. */
  GHashTable *statement_addresses;
  char       *uuid;
  guint64     local_changes;
  gint64      last_data_version;
  gint64      last_data_version_at; /* monotonic µs of that read; 0 = none yet */
  /* On a server: changes other processes notified (atomic; see
   * gk_database_watch_source_new). */
  gint        remote_changes;
  gint        watches;          /* atomic: watch sources alive */
  /* Write transactions nest: the outermost is BEGIN IMMEDIATE … COMMIT,
   * inner ones are savepoints. Bit n of savepoints: level n+1 is one. */
  guint       depth;
  guint64     savepoints;
};

typedef struct
{
  const char *sql;          /* the key in statements */
  GkSqlStmt  *stmt;
} StatementAddress;

/* Texts asked for at addresses that come and go (built at run time) would
 * fill statement_addresses: it starts again past this size. */
#define STATEMENT_ADDRESSES_MAX 512

G_DEFINE_FINAL_TYPE (GkDatabase, gk_database, G_TYPE_OBJECT)
G_DEFINE_QUARK (gk-database-error-quark, gk_database_error)

/* A statement and the table it creates, or NULL (gk-database-postgresql.h
 * has the same migrations in PostgreSQL's dialect). */
typedef GkMigrationStep MigrationStep;

/* Version 1: the seed's four tables (their names and columns kept) plus the
 * spec's extra columns, settings, meta, gateway tokens and the log of manual
 * quota resets. */
static const MigrationStep migration_1[] = {
  { "meta",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)" },
  { "settings",
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)" },
  { "gemini_api_keys",
    "CREATE TABLE gemini_api_keys ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " uuid TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL,"
    " api_key_encrypted BLOB,"
    " key_fingerprint TEXT UNIQUE,"
    " key_hint TEXT NOT NULL DEFAULT '',"
    " project TEXT,"
    " status TEXT NOT NULL DEFAULT 'ACTIVE' CHECK (status IN"
    "   ('ACTIVE','INACTIVE','QUOTA_EXCEEDED','RATE_LIMITED','INVALID')),"
    " status_reason TEXT,"
    " cooldown_until INTEGER NOT NULL DEFAULT 0,"
    " rate_limit_strikes INTEGER NOT NULL DEFAULT 0,"
    " priority INTEGER NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),"
    " is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),"
    " monthly_budget_usd REAL,"
    " month_cost_usd REAL NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " last_used_at INTEGER,"
    " last_rotation_at INTEGER,"
    " deleted_at INTEGER)" },
  { NULL,
    "CREATE UNIQUE INDEX gemini_api_keys_one_default ON gemini_api_keys (is_default)"
    " WHERE is_default = 1 AND deleted_at IS NULL" },
  { NULL,
    "CREATE INDEX gemini_api_keys_project ON gemini_api_keys (project)" },
  { "gemini_key_quotas",
    "CREATE TABLE gemini_key_quotas ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " key_id INTEGER NOT NULL REFERENCES gemini_api_keys (id) ON DELETE CASCADE,"
    " quota_type TEXT NOT NULL CHECK (quota_type IN ('MONTHLY','DAILY','PER_MINUTE')),"
    " unit TEXT NOT NULL DEFAULT 'TOKENS' CHECK (unit IN ('TOKENS','REQUESTS')),"
    " limit_value INTEGER NOT NULL DEFAULT 0 CHECK (limit_value >= 0),"
    " used_value INTEGER NOT NULL DEFAULT 0,"
    " reset_at INTEGER NOT NULL,"
    " UNIQUE (key_id, quota_type, unit))" },
  { NULL,
    "CREATE INDEX gemini_key_quotas_reset ON gemini_key_quotas (reset_at)" },
  { "gemini_key_usage_log",
    "CREATE TABLE gemini_key_usage_log ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " key_id INTEGER REFERENCES gemini_api_keys (id),"
    " model TEXT NOT NULL DEFAULT '',"
    " tokens_used INTEGER NOT NULL DEFAULT 0,"
    " prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    " output_tokens INTEGER NOT NULL DEFAULT 0,"
    " cost_usd REAL NOT NULL DEFAULT 0,"
    " priced INTEGER NOT NULL DEFAULT 1,"
    " status TEXT NOT NULL CHECK (status IN"
    "   ('SUCCESS','RATE_LIMITED','INVALID_KEY','ERROR')),"
    " http_status INTEGER,"
    " error_message TEXT,"
    " user_id TEXT,"
    " latency_ms INTEGER,"
    " created_at INTEGER NOT NULL)" },
  { NULL,
    "CREATE INDEX gemini_key_usage_log_created ON gemini_key_usage_log (created_at)" },
  { NULL,
    "CREATE INDEX gemini_key_usage_log_key ON gemini_key_usage_log (key_id, created_at)" },
  { "gemini_key_rotation_log",
    "CREATE TABLE gemini_key_rotation_log ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " from_key_id INTEGER REFERENCES gemini_api_keys (id),"
    " to_key_id INTEGER REFERENCES gemini_api_keys (id),"
    " reason TEXT NOT NULL CHECK (reason IN"
    "   ('QUOTA_LOW','RATE_LIMITED','INVALID_KEY','BUDGET','MANUAL')),"
    " triggered_by TEXT NOT NULL DEFAULT 'auto',"
    " created_at INTEGER NOT NULL)" },
  { NULL,
    "CREATE INDEX gemini_key_rotation_log_created ON gemini_key_rotation_log (created_at)" },
  { "gateway_tokens",
    "CREATE TABLE gateway_tokens ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL,"
    " token_hash TEXT NOT NULL UNIQUE,"
    " created_at INTEGER NOT NULL,"
    " last_used_at INTEGER,"
    " revoked_at INTEGER)" },
  { "quota_reset_log",
    "CREATE TABLE quota_reset_log ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " quota_type TEXT,"
    " triggered_by TEXT NOT NULL,"
    " created_at INTEGER NOT NULL)" },
};

/* Folds every usage row of one 15-minute (900 s) or UTC-day (86400 s)
 * span into a rank table keyed by @col. Used once, by migration 2. */
#define ROLLUP_RANK_FOLD(table, col, span) \
  "INSERT INTO " table " (span, start, " col ", requests, tokens, cost_usd)" \
  " SELECT " span ", created_at - created_at % " span ", " col ", count(*)," \
  " sum(tokens_used), total(cost_usd) FROM gemini_key_usage_log" \
  " WHERE " col " <> '' GROUP BY 2, 3"

/* Subtracts a deleted row from one span of a rank table. */
#define ROLLUP_RANK_FORGET(table, col, span) \
  " UPDATE " table " SET requests = requests - 1, tokens = tokens - OLD.tokens_used," \
  " cost_usd = cost_usd - OLD.cost_usd WHERE span = " span \
  " AND start = OLD.created_at - OLD.created_at % " span " AND " col " = OLD." col ";"

/* Version 2: the dashboard's rollup of the usage log (see gk-rollup.c):
 * sums per 15-minute UTC bucket, and per model and per user both per
 * bucket and per UTC day. History is folded here, once, so no request or
 * dashboard load after an upgrade has to fold it. A row deleted by hand
 * after it was folded is taken out again by the trigger. */
static const MigrationStep migration_2[] = {
  { "usage_rollup_total",
    "CREATE TABLE usage_rollup_total ("
    " start INTEGER PRIMARY KEY,"
    " requests INTEGER NOT NULL,"
    " successes INTEGER NOT NULL,"
    " cost_usd REAL NOT NULL)" },
  { "usage_rollup_model",
    "CREATE TABLE usage_rollup_model ("
    " span INTEGER NOT NULL,"
    " start INTEGER NOT NULL,"
    " model TEXT NOT NULL,"
    " requests INTEGER NOT NULL,"
    " tokens INTEGER NOT NULL,"
    " cost_usd REAL NOT NULL,"
    " PRIMARY KEY (span, start, model)) WITHOUT ROWID" },
  { "usage_rollup_user",
    "CREATE TABLE usage_rollup_user ("
    " span INTEGER NOT NULL,"
    " start INTEGER NOT NULL,"
    " user_id TEXT NOT NULL,"
    " requests INTEGER NOT NULL,"
    " tokens INTEGER NOT NULL,"
    " cost_usd REAL NOT NULL,"
    " PRIMARY KEY (span, start, user_id)) WITHOUT ROWID" },
  { NULL,
    "INSERT INTO usage_rollup_total (start, requests, successes, cost_usd)"
    " SELECT created_at - created_at % 900, count(*), sum(status = 'SUCCESS'), total(cost_usd)"
    " FROM gemini_key_usage_log GROUP BY 1" },
  { NULL, ROLLUP_RANK_FOLD ("usage_rollup_model", "model", "900") },
  { NULL, ROLLUP_RANK_FOLD ("usage_rollup_model", "model", "86400") },
  { NULL, ROLLUP_RANK_FOLD ("usage_rollup_user", "user_id", "900") },
  { NULL, ROLLUP_RANK_FOLD ("usage_rollup_user", "user_id", "86400") },
  { NULL,
    "INSERT INTO meta (key, value)"
    " SELECT 'rollup_max_id', coalesce (max (id), 0) FROM gemini_key_usage_log" },
  { NULL,
    "CREATE TRIGGER usage_rollup_forget AFTER DELETE ON gemini_key_usage_log"
    " WHEN OLD.id <= (SELECT CAST (value AS INTEGER) FROM meta WHERE key = 'rollup_max_id')"
    " BEGIN"
    " UPDATE usage_rollup_total SET requests = requests - 1,"
    " successes = successes - (OLD.status = 'SUCCESS'), cost_usd = cost_usd - OLD.cost_usd"
    " WHERE start = OLD.created_at - OLD.created_at % 900;"
    ROLLUP_RANK_FORGET ("usage_rollup_model", "model", "900")
    ROLLUP_RANK_FORGET ("usage_rollup_model", "model", "86400")
    ROLLUP_RANK_FORGET ("usage_rollup_user", "user_id", "900")
    ROLLUP_RANK_FORGET ("usage_rollup_user", "user_id", "86400")
    " END" },
};

typedef GkMigration Migration;

/* Version 3: the log is listed newest first by id (the order rows were
 * recorded in, which a clock jump cannot scramble), and the dashboard reads
 * the rollup, so the index on created_at only cost every insert a page
 * write. The per-key index keeps (key_id, id) order. */
static const MigrationStep migration_3[] = {
  { NULL, "DROP INDEX IF EXISTS gemini_key_usage_log_created" },
  { NULL, "DROP INDEX IF EXISTS gemini_key_usage_log_key" },
  { NULL, "CREATE INDEX gemini_key_usage_log_key ON gemini_key_usage_log (key_id)" },
};

/* Version 4: retention (gk_rollup_compact) deletes raw usage rows whose
 * sums the rollup keeps: the trigger that takes a deleted row out of the
 * rollup stands aside while meta "usage_pruning" is set, which compaction
 * does only inside its own transaction. */
static const MigrationStep migration_4[] = {
  { NULL, "DROP TRIGGER IF EXISTS usage_rollup_forget" },
  { NULL,
    "CREATE TRIGGER usage_rollup_forget AFTER DELETE ON gemini_key_usage_log"
    " WHEN OLD.id <= (SELECT CAST (value AS INTEGER) FROM meta WHERE key = 'rollup_max_id')"
    " AND NOT EXISTS (SELECT 1 FROM meta WHERE key = 'usage_pruning')"
    " BEGIN"
    " UPDATE usage_rollup_total SET requests = requests - 1,"
    " successes = successes - (OLD.status = 'SUCCESS'), cost_usd = cost_usd - OLD.cost_usd"
    " WHERE start = OLD.created_at - OLD.created_at % 900;"
    ROLLUP_RANK_FORGET ("usage_rollup_model", "model", "900")
    ROLLUP_RANK_FORGET ("usage_rollup_model", "model", "86400")
    ROLLUP_RANK_FORGET ("usage_rollup_user", "user_id", "900")
    ROLLUP_RANK_FORGET ("usage_rollup_user", "user_id", "86400")
    " END" },
};

/* Version 5: sums per 15-minute bucket and per key, status, model and
 * user, so the usage tab totals any period and filter without reading the
 * log (kept at that grain for ever: the combinations in use are few). The
 * trigger also takes deleted rows out of these sums. */
#define ROLLUP_FACET_START "OLD.created_at - OLD.created_at % 900"

/* The trigger of version 5 on: takes a row deleted by hand (not by
 * retention) out of every sum; @facet_start is the start of its facet sum,
 * @more the statements for the tables of later versions. */
#define ROLLUP_FORGET_TRIGGER(facet_start, more) \
  "CREATE TRIGGER usage_rollup_forget AFTER DELETE ON gemini_key_usage_log" \
  " WHEN OLD.id <= (SELECT CAST (value AS INTEGER) FROM meta WHERE key = 'rollup_max_id')" \
  " AND NOT EXISTS (SELECT 1 FROM meta WHERE key = 'usage_pruning')" \
  " BEGIN" \
  " UPDATE usage_rollup_total SET requests = requests - 1," \
  " successes = successes - (OLD.status = 'SUCCESS'), cost_usd = cost_usd - OLD.cost_usd" \
  " WHERE start = OLD.created_at - OLD.created_at % 900;" \
  ROLLUP_RANK_FORGET ("usage_rollup_model", "model", "900") \
  ROLLUP_RANK_FORGET ("usage_rollup_model", "model", "86400") \
  ROLLUP_RANK_FORGET ("usage_rollup_user", "user_id", "900") \
  ROLLUP_RANK_FORGET ("usage_rollup_user", "user_id", "86400") \
  " UPDATE usage_rollup_facet SET requests = requests - 1," \
  " successes = successes - (OLD.status = 'SUCCESS'), tokens = tokens - OLD.tokens_used," \
  " cost_usd = cost_usd - OLD.cost_usd" \
  " WHERE start = " facet_start \
  " AND key_id = coalesce (OLD.key_id, 0) AND status = OLD.status" \
  " AND model = coalesce (OLD.model, '') AND user_id = coalesce (OLD.user_id, '');" \
  more \
  " END"

static const MigrationStep migration_5[] = {
  { "usage_rollup_facet",
    "CREATE TABLE usage_rollup_facet ("
    " start INTEGER NOT NULL,"
    " key_id INTEGER NOT NULL,"
    " status TEXT NOT NULL,"
    " model TEXT NOT NULL,"
    " user_id TEXT NOT NULL,"
    " requests INTEGER NOT NULL,"
    " successes INTEGER NOT NULL,"
    " tokens INTEGER NOT NULL,"
    " cost_usd REAL NOT NULL,"
    " PRIMARY KEY (start, key_id, status, model, user_id)) WITHOUT ROWID" },
  { NULL,
    "INSERT INTO usage_rollup_facet (start, key_id, status, model, user_id, requests,"
    " successes, tokens, cost_usd)"
    " SELECT created_at - created_at % 900, coalesce (key_id, 0), status, coalesce (model, ''),"
    " coalesce (user_id, ''), count(*), sum(status = 'SUCCESS'), sum(tokens_used),"
    " total(cost_usd) FROM gemini_key_usage_log"
    " WHERE id <= (SELECT CAST (value AS INTEGER) FROM meta WHERE key = 'rollup_max_id')"
    " GROUP BY 1, 2, 3, 4, 5" },
  { NULL, "DROP TRIGGER IF EXISTS usage_rollup_forget" },
  { NULL, ROLLUP_FORGET_TRIGGER (ROLLUP_FACET_START, "") },
};

/* Version 6: the audit log (gk-audit.h), append-only: triggers refuse
 * edits and deletions, and retention leaves it alone. */
static const MigrationStep migration_6[] = {
  { "audit_log",
    "CREATE TABLE audit_log ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " created_at INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " target_id INTEGER,"
    " target TEXT,"
    " summary TEXT)" },
  { NULL,
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log"
    " BEGIN SELECT RAISE (ABORT, 'the audit log is append-only'); END" },
  { NULL,
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log"
    " BEGIN SELECT RAISE (ABORT, 'the audit log is append-only'); END" },
};

/* Version 7: compaction coarsens the facet sums older than
 * GK_ROLLUP_FINE_DAYS to one per UTC day (meta GK_ROLLUP_META_FACET_DAYS
 * says up to where); a row deleted by hand leaves the sum that holds it. */
#define ROLLUP_FACET_DAY_OR_QUARTER \
  "CASE WHEN OLD.created_at < " GK_ROLLUP_FACET_DAYS_SQL \
  " THEN OLD.created_at - OLD.created_at % 86400 ELSE " ROLLUP_FACET_START " END"
static const MigrationStep migration_7[] = {
  { NULL, "DROP TRIGGER IF EXISTS usage_rollup_forget" },
  { NULL,
    ROLLUP_FORGET_TRIGGER (ROLLUP_FACET_DAY_OR_QUARTER, "") },
};

/* Version 8: a latency histogram of successful requests per key, per
 * 15-minute bucket and per UTC day (as the sums per model and user), for
 * the key comparison's percentiles (gk-insights.c). History is folded
 * here; the trigger also takes deleted rows out of it. */
#define ROLLUP_LATENCY_FOLD(span) \
  "INSERT INTO usage_rollup_latency (span, start, key_id, bucket, requests)" \
  " SELECT " span ", created_at - created_at % " span ", coalesce (key_id, 0), " \
  GK_ROLLUP_LATENCY_BUCKET_SQL ("latency_ms") ", count(*) FROM gemini_key_usage_log" \
  " WHERE status = 'SUCCESS' AND latency_ms > 0" \
  " AND id <= (SELECT CAST (value AS INTEGER) FROM meta WHERE key = 'rollup_max_id')" \
  " GROUP BY 2, 3, 4"
#define ROLLUP_LATENCY_FORGET \
  " UPDATE usage_rollup_latency SET requests = requests - 1" \
  " WHERE OLD.status = 'SUCCESS' AND OLD.latency_ms > 0 AND span IN (900, 86400)" \
  " AND start = OLD.created_at - OLD.created_at % span AND key_id = coalesce (OLD.key_id, 0)" \
  " AND bucket = " GK_ROLLUP_LATENCY_BUCKET_SQL ("OLD.latency_ms") ";"
static const MigrationStep migration_8[] = {
  { "usage_rollup_latency",
    "CREATE TABLE usage_rollup_latency ("
    " span INTEGER NOT NULL,"
    " start INTEGER NOT NULL,"
    " key_id INTEGER NOT NULL,"
    " bucket INTEGER NOT NULL,"
    " requests INTEGER NOT NULL,"
    " PRIMARY KEY (span, start, key_id, bucket)) WITHOUT ROWID" },
  { NULL, ROLLUP_LATENCY_FOLD ("900") },
  { NULL, ROLLUP_LATENCY_FOLD ("86400") },
  { NULL, "DROP TRIGGER IF EXISTS usage_rollup_forget" },
  { NULL, ROLLUP_FORGET_TRIGGER (ROLLUP_FACET_DAY_OR_QUARTER, ROLLUP_LATENCY_FORGET) },
};

/* Version 9: sums per key and status (requests, tokens, cost), per
 * 15-minute bucket and per UTC day, coarsened as the latency histogram is,
 * so the key comparison reads one row per key, status and day rather than
 * the facet sums (a row per key, status, model and user). History is
 * summed from the facet sums, which hold every folded row, even those
 * retention has removed since: the quarter hours where the facet sums have
 * them (from the mark GK_ROLLUP_META_FACET_DAYS on), the days everywhere.
 * The trigger also takes deleted rows out of it. */
#define ROLLUP_KEY_FROM_FACETS(span, where) \
  "INSERT INTO usage_rollup_key (span, start, key_id, status, requests, tokens, cost_usd)" \
  " SELECT " span ", start - start % " span ", key_id, status, sum(requests), sum(tokens)," \
  " total(cost_usd) FROM usage_rollup_facet" where " GROUP BY 2, 3, 4"
#define ROLLUP_KEY_FORGET \
  " UPDATE usage_rollup_key SET requests = requests - 1, tokens = tokens - OLD.tokens_used," \
  " cost_usd = cost_usd - OLD.cost_usd WHERE span IN (900, 86400)" \
  " AND start = OLD.created_at - OLD.created_at % span AND key_id = coalesce (OLD.key_id, 0)" \
  " AND status = OLD.status;"
static const MigrationStep migration_9[] = {
  { "usage_rollup_key",
    "CREATE TABLE usage_rollup_key ("
    " span INTEGER NOT NULL,"
    " start INTEGER NOT NULL,"
    " key_id INTEGER NOT NULL,"
    " status TEXT NOT NULL,"
    " requests INTEGER NOT NULL,"
    " tokens INTEGER NOT NULL,"
    " cost_usd REAL NOT NULL,"
    " PRIMARY KEY (span, start, key_id, status)) WITHOUT ROWID" },
  { NULL, ROLLUP_KEY_FROM_FACETS ("900", " WHERE start >= " GK_ROLLUP_FACET_DAYS_SQL) },
  { NULL, ROLLUP_KEY_FROM_FACETS ("86400", "") },
  { NULL, "DROP TRIGGER IF EXISTS usage_rollup_forget" },
  { NULL,
    ROLLUP_FORGET_TRIGGER (ROLLUP_FACET_DAY_OR_QUARTER, ROLLUP_LATENCY_FORGET ROLLUP_KEY_FORGET) },
};

/* Version 12: the usage log's CHECK on status as a chain of ORs. SQLite
 * checks `status IN (…)` of four values or more by building a temporary
 * b-tree of the values for every row inserted, a fifth of the instructions
 * of recording a request; `=` and OR compare in place. The two accept the
 * same rows and the records on disk do not change, so the table's text in
 * sqlite_schema is edited in place (SQLite's documented procedure for a
 * CHECK, ALTER TABLE §7) rather than the log copied into a new table;
 * RESET makes this connection read the schema again, and the migration
 * moves schema_version so that every other connection does too. */
#define USAGE_STATUS_CHECK_IN \
  "status IN   (''SUCCESS'',''RATE_LIMITED'',''INVALID_KEY'',''ERROR'')"
#define USAGE_STATUS_CHECK_OR \
  "status = ''SUCCESS'' OR status = ''RATE_LIMITED'' OR status = ''INVALID_KEY''" \
  " OR status = ''ERROR''"
static const MigrationStep migration_12[] = {
  { NULL, "PRAGMA writable_schema = ON" },
  { NULL,
    "UPDATE sqlite_schema SET sql = replace (sql, '" USAGE_STATUS_CHECK_IN "', '"
    USAGE_STATUS_CHECK_OR "') WHERE type = 'table' AND name = 'gemini_key_usage_log'" },
  { NULL, "PRAGMA writable_schema = RESET" },
};

static const Migration migrations[] = {
  { migration_1, G_N_ELEMENTS (migration_1) },
  { migration_2, G_N_ELEMENTS (migration_2) },
  { migration_3, G_N_ELEMENTS (migration_3) },
  { migration_4, G_N_ELEMENTS (migration_4) },
  { migration_5, G_N_ELEMENTS (migration_5) },
  { migration_6, G_N_ELEMENTS (migration_6) },
  { migration_7, G_N_ELEMENTS (migration_7) },
  { migration_8, G_N_ELEMENTS (migration_8) },
  { migration_9, G_N_ELEMENTS (migration_9) },
  /* Version 10: on a server, triggers that notify other processes of
   * changes to keys, quotas and settings (gk-database-postgresql.c); an
   * SQLite file has data_version for that, and nothing to add. */
  { NULL, 0 },
  /* Version 11: the same for client tokens. */
  { NULL, 0 },
  { migration_12, G_N_ELEMENTS (migration_12) },
};

#define SCHEMA_VERSION ((int) G_N_ELEMENTS (migrations))

static gboolean begin_transaction (GkDatabase  *self,
                                   const char  *server_begin,
                                   GError     **error);

static void
gk_database_finalize (GObject *object)
{
  GkDatabase *self = (GkDatabase *) object;

  g_clear_pointer (&self->statement_addresses, g_hash_table_unref);
  g_clear_pointer (&self->statements, g_hash_table_unref);
  g_clear_pointer (&self->handle, gk_sql_close);
  g_clear_object (&self->clock);
  g_clear_pointer (&self->path, g_free);
  g_clear_pointer (&self->uuid, g_free);
  g_rec_mutex_clear (&self->mutex);

  G_OBJECT_CLASS (gk_database_parent_class)->finalize (object);
}

static void
gk_database_class_init (GkDatabaseClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gk_database_finalize;
}

static void
gk_database_init (GkDatabase *self)
{
  g_rec_mutex_init (&self->mutex);
  self->statements = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                            (GDestroyNotify) gk_sql_finalize);
  self->statement_addresses = g_hash_table_new_full (NULL, NULL, NULL, g_free);
}

/* The SQLite file's own knobs (PRAGMAs, mmap, data_version) apply. */
static gboolean
is_sqlite (GkDatabase *self)
{
  return gk_sql_get_dialect (self->handle) == GK_SQL_DIALECT_SQLITE;
}

/* @remote: the connection is to a server (a lost connection is then an
 * outage the next call may get over, not a file that cannot be opened). */
static GkDatabaseError
error_code_for (GkSqlErr err,
                gboolean remote)
{
  switch (err)
    {
    case GK_SQL_ERR_CORRUPT:
      return GK_DATABASE_ERROR_CORRUPT;
    case GK_SQL_ERR_READ_ONLY:
      return GK_DATABASE_ERROR_READ_ONLY;
    case GK_SQL_ERR_FULL:
      return GK_DATABASE_ERROR_FULL;
    case GK_SQL_ERR_BUSY:
      return GK_DATABASE_ERROR_BUSY;
    case GK_SQL_ERR_CONNECTION:
      return remote ? GK_DATABASE_ERROR_UNREACHABLE : GK_DATABASE_ERROR_OPEN;
    case GK_SQL_OK:
    case GK_SQL_ERR_CONSTRAINT:
    case GK_SQL_ERR_OTHER:
    default:
      return GK_DATABASE_ERROR_FAILED;
    }
}

static void
set_error_rc (GError          **error,
              GkDatabaseError   code,
              const char       *what,
              const char       *detail)
{
  const char *hint;

  switch (code)
    {
    case GK_DATABASE_ERROR_CORRUPT:
      hint = _("The database file is damaged. Restore it from a backup or move it aside to start afresh.");
      break;
    case GK_DATABASE_ERROR_READ_ONLY:
      hint = _("The database file cannot be written. Check its permissions and the disk.");
      break;
    case GK_DATABASE_ERROR_FULL:
      hint = _("The disk is full. Free some space and try again; nothing was saved.");
      break;
    case GK_DATABASE_ERROR_BUSY:
      hint = _("Another program kept the database locked. Try again.");
      break;
    default:
      hint = NULL;
      break;
    }

  if (hint != NULL)
    g_set_error (error, GK_DATABASE_ERROR, code, "%s: %s (%s)", what, hint, detail);
  else
    g_set_error (error, GK_DATABASE_ERROR, code, "%s: %s", what, detail);
}

void
gk_database_set_error (GkDatabase  *self,
                       GError     **error,
                       const char  *what)
{
  set_error_rc (error, error_code_for (gk_sql_errcode (self->handle), !is_sqlite (self)), what,
                gk_sql_errmsg (self->handle));
}

char *
gk_database_default_path (void)
{
  const char *dir = g_getenv ("GEMINI_KEYS_DATA_DIR");

  if (dir != NULL && *dir != '\0')
    return g_build_filename (dir, "keys.db", NULL);
  return g_build_filename (g_get_user_data_dir (), "gemini-keys", "keys.db", NULL);
}

char *
gk_database_default_target (void)
{
  const char *target = g_getenv ("GEMINI_KEYS_DATABASE");

  if (target != NULL && *target != '\0')
    return g_strdup (target);
  return gk_database_default_path ();
}

gboolean
gk_database_target_is_remote (const char *target)
{
  g_return_val_if_fail (target != NULL, FALSE);
  return gk_sql_target_is_remote (target);
}

char *
gk_database_redact_target (const char *target)
{
  return gk_sql_redact_target (target);
}

gboolean
gk_database_target_has_password (const char *target)
{
  return gk_sql_target_has_password (target);
}

/* Held while a file is created and while any connection of this process is
 * opened: see ensure_file(). */
static GMutex open_mutex;

/* Creates the folder, and the database file with mode 0600 when it does not
 * exist yet (SQLite would create it with 0644 minus the umask, and its -wal
 * and -shm files take the database file's mode).
 *
 * An existing file is never opened here: close() on any descriptor of a
 * file drops every POSIX lock this process holds on it, SQLite's included,
 * and another process could then rewrite or delete the WAL under a
 * connection of ours. A file that O_EXCL just created has no connection of
 * ours, since every connection is opened under open_mutex, held by the
 * caller. */
static gboolean
ensure_file (const char  *path,
             GError     **error)
{
  g_autofree char *dir = g_path_get_dirname (path);
  int fd;

  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int errsv = errno;
      g_set_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_OPEN,
                   _("Cannot create the folder “%s”: %s"), dir, g_strerror (errsv));
      return FALSE;
    }

  fd = g_open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      int errsv = errno;
      /* An existing file keeps its mode. A read-only folder (mode, mount)
       * is left to SQLite, which reports it clearly. */
      if (errsv == EEXIST || errsv == EACCES || errsv == EROFS || errsv == EPERM)
        return TRUE;
      g_set_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_OPEN,
                   _("Cannot open the database “%s”: %s"), path, g_strerror (errsv));
      return FALSE;
    }
  close (fd);
  return TRUE;
}

GkDatabase *
gk_database_new (const char  *path,
                 GkClock     *clock,
                 GError     **error)
{
  g_autoptr(GkDatabase) self = NULL;
  g_autofree char *detail = NULL;
  GkSqlErr err;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (clock == NULL || GK_IS_CLOCK (clock), NULL);

  self = g_object_new (GK_TYPE_DATABASE, NULL);
  self->path = g_strdup (path);
  self->clock = clock != NULL ? g_object_ref (clock) : gk_clock_new ();

  g_mutex_lock (&open_mutex);
  if (!gk_sql_target_is_remote (path) && !ensure_file (path, error))
    {
      g_mutex_unlock (&open_mutex);
      return NULL;
    }
  self->handle = gk_sql_open (path, &err, &detail);
  g_mutex_unlock (&open_mutex);
  if (self->handle == NULL)
    {
      /* A server that cannot be reached at all is an open failure. */
      set_error_rc (error, error_code_for (err, FALSE), _("Cannot open the database"), detail);
      return NULL;
    }

  /* journal_mode=WAL also reads the header: a file that is not a database
   * fails here with a clear error rather than later. Reads through mmap
   * save a system call per page on the per-request path (writes still go
   * through the WAL). */
  if (is_sqlite (self)
      && !gk_database_exec (self,
                            "PRAGMA journal_mode = WAL;"
                            "PRAGMA synchronous = NORMAL;"
                            "PRAGMA foreign_keys = ON;"
                            "PRAGMA secure_delete = ON;"
                            "PRAGMA mmap_size = 268435456;",
                            error))
    return NULL;

  return g_steal_pointer (&self);
}

static int
read_user_version (GkDatabase *self)
{
  GkSqlStmt *stmt;
  int version = -1;

  if (!is_sqlite (self))
    return gk_database_postgresql_read_version (self->handle);

  stmt = gk_database_prepare (self, "PRAGMA user_version", NULL);

  /* Every statement is reset after use: one left active would pin an old
   * read snapshot of the WAL. */
  if (stmt != NULL && gk_sql_step (stmt) == GK_SQL_ROW)
    version = gk_sql_column_int64 (stmt, 0);
  if (stmt != NULL)
    gk_sql_reset (stmt);
  return version;
}

static gboolean
write_version (GkDatabase  *self,
               GError     **error)
{
  g_autofree char *pragma = NULL;
  GkSqlStmt *stmt;
  GkSqlStep rc;

  if (is_sqlite (self))
    {
      gint64 schema = -1;

      /* An edit of sqlite_schema (version 12) does not move the schema
       * cookie as DDL does: moved here, so that the other connections to
       * the file read the new schema. */
      stmt = gk_database_prepare (self, "PRAGMA schema_version", error);
      if (stmt == NULL)
        return FALSE;
      if (gk_sql_step (stmt) == GK_SQL_ROW)
        schema = gk_sql_column_int64 (stmt, 0);
      gk_sql_reset (stmt);
      if (schema < 0)
        {
          gk_database_set_error (self, error, _("Database update failed"));
          return FALSE;
        }
      pragma = g_strdup_printf ("PRAGMA user_version = %d;"
                                " PRAGMA schema_version = %" G_GINT64_FORMAT,
                                SCHEMA_VERSION, schema + 1);
      return gk_database_exec (self, pragma, error);
    }
  stmt = gk_database_prepare (self, GK_DATABASE_POSTGRESQL_WRITE_VERSION, error);
  if (stmt == NULL)
    return FALSE;
  gk_sql_bind_int64 (stmt, 1, SCHEMA_VERSION);
  rc = gk_sql_step (stmt);
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    gk_database_set_error (self, error, _("Database update failed"));
  return rc == GK_SQL_DONE;
}

static gboolean
load_uuid (GkDatabase  *self,
           GError     **error)
{
  g_autofree char *uuid = gk_database_get_meta (self, "uuid");

  if (uuid == NULL)
    {
      g_set_error_literal (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_CORRUPT,
                           _("The database has no identifier. Restore it from a backup."));
      return FALSE;
    }
  g_free (self->uuid);
  self->uuid = g_steal_pointer (&uuid);
  return TRUE;
}

/* Sets SQLite's defensive mode on this connection; returns the setting it
 * had. */
static int
sqlite_set_defensive (GkDatabase *self,
                      int         on)
{
  sqlite3 *db = gk_sql_sqlite_get_handle (self->handle);
  int was = 0;

  sqlite3_db_config (db, SQLITE_DBCONFIG_DEFENSIVE, -1, &was);
  sqlite3_db_config (db, SQLITE_DBCONFIG_DEFENSIVE, on, NULL);
  return was;
}

/* Runs the migrations from @version on, in the transaction the caller
 * began, and commits; on failure the transaction is undone. */
static gboolean
apply_migrations (GkDatabase       *self,
                  const Migration  *steps,
                  int               version,
                  GPtrArray        *created,
                  GError          **error)
{
  for (int v = version; v < SCHEMA_VERSION; v++)
    {
      const Migration *m = &steps[v];

      for (gsize i = 0; i < m->n_steps; i++)
        {
          if (!gk_database_exec (self, m->steps[i].sql, error))
            {
              gk_database_rollback (self);
              return FALSE;
            }
          if (m->steps[i].table != NULL)
            g_ptr_array_add (created, g_strdup (m->steps[i].table));
        }
    }

  if (version == 0)
    {
      g_autofree char *uuid = g_uuid_string_random ();

      if (!gk_database_set_meta (self, "uuid", uuid, error))
        {
          gk_database_rollback (self);
          return FALSE;
        }
    }

  if (version != SCHEMA_VERSION && !write_version (self, error))
    {
      gk_database_rollback (self);
      return FALSE;
    }

  return gk_database_commit (self, error);
}

gboolean
gk_database_migrate (GkDatabase   *self,
                     char       ***created_tables,
                     GError      **error)
{
  g_autoptr(GPtrArray) created = g_ptr_array_new_with_free_func (g_free);
  const Migration *steps = migrations;
  int version, defensive;
  gboolean ok;

  g_return_val_if_fail (GK_IS_DATABASE (self), FALSE);

  if (created_tables != NULL)
    *created_tables = NULL;

  if (!is_sqlite (self))
    {
      gsize n = 0;

      steps = gk_database_postgresql_migrations (&n);
      g_assert (n == SCHEMA_VERSION);
    }

  /* On a server, the migration lock first: a second process waits for the
   * first one's migration, longer than for an ordinary write. */
  if (!begin_transaction (self,
                          "BEGIN; " GK_DATABASE_POSTGRESQL_MIGRATION_LOCK "; "
                          "SELECT pg_advisory_xact_lock (" GK_DATABASE_POSTGRESQL_WRITE_LOCK_KEY ")",
                          error))
    return FALSE;

  /* Read the version inside the write transaction: two processes starting
   * at once must not both migrate. */
  version = read_user_version (self);
  if (version < 0)
    {
      gk_database_set_error (self, error, _("Cannot read the database version"));
      gk_database_rollback (self);
      return FALSE;
    }
  if (version > SCHEMA_VERSION)
    {
      gk_database_rollback (self);
      g_set_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_TOO_NEW,
                   _("The database was written by a newer version of Gemini Keys (schema %d). "
                     "Update Gemini Keys to open it."),
                   version);
      return FALSE;
    }

  /* Migration 12 edits sqlite_schema, which SQLite refuses in defensive
   * mode (on by default in builds with SQLITE_DEFAULT_DEFENSIVE): off on
   * this connection until the migrations are committed or undone, then as
   * it was. */
  gk_database_lock (self);
  defensive = is_sqlite (self) && version < SCHEMA_VERSION ? sqlite_set_defensive (self, 0) : -1;
  ok = apply_migrations (self, steps, version, created, error);
  if (defensive >= 0)
    sqlite_set_defensive (self, defensive);
  gk_database_unlock (self);
  if (!ok)
    return FALSE;

  if (!load_uuid (self, error))
    return FALSE;

  if (created_tables != NULL)
    {
      g_ptr_array_add (created, NULL);
      *created_tables = (char **) g_ptr_array_steal (created, NULL);
    }
  return TRUE;
}

GkDatabase *
gk_database_open (const char  *path,
                  GkClock     *clock,
                  GError     **error)
{
  g_autoptr(GkDatabase) self = gk_database_new (path, clock, error);

  if (self == NULL || !gk_database_migrate (self, NULL, error))
    return NULL;
  return g_steal_pointer (&self);
}

const char *
gk_database_get_path (GkDatabase *self)
{
  g_return_val_if_fail (GK_IS_DATABASE (self), NULL);
  return self->path;
}

gboolean
gk_database_is_remote (GkDatabase *self)
{
  g_return_val_if_fail (GK_IS_DATABASE (self), FALSE);
  return !is_sqlite (self);
}

char *
gk_database_get_display_name (GkDatabase *self)
{
  g_return_val_if_fail (GK_IS_DATABASE (self), NULL);
  return gk_sql_redact_target (self->path);
}

/* Same file: the same device and inode, or, for one that does not exist
 * yet, the same name. */
static gboolean
same_file (const char *a,
           const char *b)
{
  GStatBuf sa, sb;

  if (g_stat (a, &sa) == 0 && g_stat (b, &sb) == 0)
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  return g_strcmp0 (a, b) == 0;
}

gboolean
gk_database_is_own_file (GkDatabase *self,
                         const char *path)
{
  static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };

  g_return_val_if_fail (GK_IS_DATABASE (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  /* A server's data is no file of ours, whatever name it has. */
  if (!is_sqlite (self))
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *own = g_strconcat (self->path, suffixes[i], NULL);

      if (same_file (own, path))
        return TRUE;
    }
  return FALSE;
}

GkClock *
gk_database_get_clock (GkDatabase *self)
{
  g_return_val_if_fail (GK_IS_DATABASE (self), NULL);
  return self->clock;
}

gint64
gk_database_now (GkDatabase *self)
{
  g_return_val_if_fail (GK_IS_DATABASE (self), 0);
  return gk_clock_now (self->clock);
}

const char *
gk_database_get_uuid (GkDatabase *self)
{
  g_return_val_if_fail (GK_IS_DATABASE (self), NULL);
  return self->uuid;
}

int
gk_database_get_schema_version (GkDatabase *self)
{
  int version;

  g_return_val_if_fail (GK_IS_DATABASE (self), -1);

  gk_database_lock (self);
  version = read_user_version (self);
  gk_database_unlock (self);
  return version;
}

GkSql *
gk_database_get_handle (GkDatabase *self)
{
  return self->handle;
}

void
gk_database_lock (GkDatabase *self)
{
  g_rec_mutex_lock (&self->mutex);
  if (self->lock_count++ == 0)
    g_atomic_pointer_set (&self->owner, g_thread_self ());
}

void
gk_database_unlock (GkDatabase *self)
{
  g_assert (self->lock_count > 0);
  if (--self->lock_count == 0)
    g_atomic_pointer_set (&self->owner, NULL);
  g_rec_mutex_unlock (&self->mutex);
}

GkSqlStmt *
gk_database_prepare (GkDatabase  *self,
                     const char  *sql,
                     GError     **error)
{
  StatementAddress *known;
  GkSqlStmt *stmt;
  char *key;

  /* The statement is used after this returns: the caller must already
   * hold the lock, or another thread could run it at the same time. */
  g_assert (g_atomic_pointer_get (&self->owner) == g_thread_self ());
  gk_database_lock (self);
  /* The same address may hold another text by now: compared to be sure. */
  known = g_hash_table_lookup (self->statement_addresses, sql);
  if (known != NULL && strcmp (known->sql, sql) == 0)
    {
      gk_sql_reset (known->stmt);
      gk_database_unlock (self);
      return known->stmt;
    }

  if (g_hash_table_lookup_extended (self->statements, sql, (gpointer *) &key, (gpointer *) &stmt))
    gk_sql_reset (stmt);
  else if ((stmt = gk_sql_prepare (self->handle, sql)) == NULL)
    {
      gk_database_set_error (self, error, _("Database query failed"));
      gk_database_unlock (self);
      return NULL;
    }
  else
    {
      key = g_strdup (sql);
      g_hash_table_insert (self->statements, key, stmt);
    }

  if (g_hash_table_size (self->statement_addresses) >= STATEMENT_ADDRESSES_MAX)
    g_hash_table_remove_all (self->statement_addresses);
  known = g_new (StatementAddress, 1);
  known->sql = key;
  known->stmt = stmt;
  g_hash_table_insert (self->statement_addresses, (gpointer) sql, known);
  gk_database_unlock (self);
  return stmt;
}

gboolean
gk_database_exec (GkDatabase  *self,
                  const char  *sql,
                  GError     **error)
{
  gboolean ok;

  gk_database_lock (self);
  ok = gk_sql_exec (self->handle, sql);
  if (!ok)
    gk_database_set_error (self, error, _("Database update failed"));
  gk_database_unlock (self);
  return ok;
}

/* Runs a cached statement without results (BEGIN and COMMIT run on every
 * request: compiling them each time would cost more than the write). */
static gboolean
step_cached (GkDatabase  *self,
             const char  *sql,
             GError     **error)
{
  GkSqlStmt *stmt = gk_database_prepare (self, sql, error);
  GkSqlStep rc;

  if (stmt == NULL)
    return FALSE;
  rc = gk_sql_step (stmt);
  gk_sql_reset (stmt);
  if (rc != GK_SQL_DONE)
    {
      gk_database_set_error (self, error, _("Database update failed"));
      return FALSE;
    }
  return TRUE;
}

GkSqlStmt *
gk_database_prepare_insert (GkDatabase  *self,
                            const char  *sql,
                            GError     **error)
{
  g_autofree char *returning = NULL;

  /* SQLite makes a temporary table for RETURNING's rows: on the request
   * path that costs more than asking for the last rowid. */
  if (is_sqlite (self))
    return gk_database_prepare (self, sql, error);
  returning = g_strconcat (sql, " RETURNING id", NULL);
  return gk_database_prepare (self, returning, error);
}

gint64
gk_database_step_insert (GkDatabase  *self,
                         GkSqlStmt   *stmt,
                         const char  *what,
                         GError     **error)
{
  GkSqlStep rc = gk_sql_step (stmt);
  gint64 id = 0;

  /* With RETURNING, the row is written by the first step, which returns
   * its id. */
  if (rc == GK_SQL_ROW)
    id = gk_sql_column_int64 (stmt, 0);
  gk_sql_reset (stmt);
  if (rc == GK_SQL_DONE && is_sqlite (self))
    id = sqlite3_last_insert_rowid (gk_sql_sqlite_get_handle (self->handle));
  if (id == 0)
    gk_database_set_error (self, error, _(what));
  return id;
}

#define MAX_DEPTH 64

/* gk_database_begin(), with @server_begin as the outermost BEGIN on a
 * server (statements for gk_sql_exec). */
static gboolean
begin_transaction (GkDatabase  *self,
                   const char  *server_begin,
                   GError     **error)
{
  gboolean nested, ok;

  gk_database_lock (self);
  /* Inside a transaction (ours or one a caller opened with exec), a
   * savepoint: the inner work can fail alone, and one COMMIT makes a whole
   * batch durable. */
  nested = gk_sql_in_transaction (self->handle);
  g_assert (self->depth < MAX_DEPTH);
  if (nested)
    ok = step_cached (self, "SAVEPOINT gk_nested", error);
  else if (is_sqlite (self))
    ok = step_cached (self, "BEGIN IMMEDIATE", error);
  else if (!(ok = gk_database_exec (self, server_begin, error)) && gk_sql_in_transaction (self->handle))
    /* The lock wait ran out (or the connection broke) after BEGIN. */
    gk_sql_exec (self->handle, "ROLLBACK");
  if (!ok)
    {
      gk_database_unlock (self);
      return FALSE;
    }
  if (nested)
    self->savepoints |= G_GUINT64_CONSTANT (1) << self->depth;
  else
    self->savepoints &= ~(G_GUINT64_CONSTANT (1) << self->depth);
  self->depth++;
  return TRUE;
}

gboolean
gk_database_begin (GkDatabase  *self,
                   GError     **error)
{
  return begin_transaction (self, GK_DATABASE_POSTGRESQL_BEGIN_WRITE, error);
}

static gboolean
level_is_savepoint (GkDatabase *self)
{
  g_assert (self->depth > 0);
  self->depth--;
  return (self->savepoints >> self->depth) & 1;
}

gboolean
gk_database_commit (GkDatabase  *self,
                    GError     **error)
{
  gboolean savepoint = level_is_savepoint (self);
  gboolean ok = step_cached (self, savepoint ? "RELEASE gk_nested" : "COMMIT", error);

  if (!ok && !savepoint && gk_sql_in_transaction (self->handle))
    gk_sql_exec (self->handle, "ROLLBACK");
  if (!ok)
    /* Caches over what was not written must reload. */
    self->local_changes++;
  gk_database_unlock (self);
  return ok;
}

void
gk_database_rollback (GkDatabase *self)
{
  if (level_is_savepoint (self))
    {
      step_cached (self, "ROLLBACK TO gk_nested", NULL);
      step_cached (self, "RELEASE gk_nested", NULL);
    }
  else if (gk_sql_in_transaction (self->handle))
    gk_sql_exec (self->handle, "ROLLBACK");
  self->local_changes++;
  gk_database_unlock (self);
}

guint64
gk_database_touch (GkDatabase *self)
{
  guint64 stamp;

  gk_database_lock (self);
  self->local_changes++;
  /* Our own commits do not move data_version; the last value read stands. */
  stamp = ((guint64) self->last_data_version << 32) + self->local_changes;
  gk_database_unlock (self);
  return stamp;
}

gint64
gk_database_get_data_version (GkDatabase *self)
{
  GkSqlStmt *stmt;
  sqlite3 *handle;
  gint64 version = -1;

  g_return_val_if_fail (GK_IS_DATABASE (self), -1);

  /* A server has no data_version: its change notices stand in. */
  if (!is_sqlite (self))
    {
      gk_database_lock (self);
      version = g_atomic_int_get (&self->remote_changes);
      self->last_data_version = version;
      gk_database_unlock (self);
      return version;
    }

  gk_database_lock (self);
  handle = gk_sql_sqlite_get_handle (self->handle);
  /* No other commit since the last read: the same value, without the read
   * transaction that reading it takes. */
  if (self->last_data_version_at > 0 && gk_sql_sqlite_vfs_data_unchanged (handle))
    version = self->last_data_version;
  else
    {
      gk_sql_sqlite_vfs_data_read (handle);
      stmt = gk_database_prepare (self, "PRAGMA data_version", NULL);
      if (stmt != NULL && gk_sql_step (stmt) == GK_SQL_ROW)
        version = gk_sql_column_int64 (stmt, 0);
      if (stmt != NULL)
        gk_sql_reset (stmt);
    }
  self->last_data_version = version;
  self->last_data_version_at = version >= 0 ? g_get_monotonic_time () : 0;
  gk_database_unlock (self);
  return version;
}

/* The watch of a server's change notices: its listener's socket, and a
 * timer for the periodic refresh or the next attempt to connect. */
typedef struct
{
  GSource        source;
  GkDatabase    *db;
  GkSqlListener *listener;
  gpointer       fd_tag;
} WatchSource;

#define WATCH_RECONNECT_S 1

static void
watch_changed (WatchSource *watch)
{
  g_atomic_int_inc (&watch->db->remote_changes);
}

static void
watch_schedule (WatchSource *watch,
                guint        seconds)
{
  g_source_set_ready_time ((GSource *) watch,
                           g_get_monotonic_time () + seconds * G_USEC_PER_SEC);
}

/* Connects the listener; TRUE when it listens. */
static gboolean
watch_connect (WatchSource *watch)
{
  if (!gk_sql_listener_connect (watch->listener))
    return FALSE;
  watch->fd_tag = g_source_add_unix_fd ((GSource *) watch,
                                        gk_sql_listener_get_fd (watch->listener),
                                        G_IO_IN | G_IO_HUP | G_IO_ERR);
  return TRUE;
}

static gboolean
watch_dispatch (GSource     *source,
                GSourceFunc  callback,
                gpointer     data)
{
  WatchSource *watch = (WatchSource *) source;
  gint64 now = g_source_get_time (source);

  if (watch->fd_tag != NULL && g_source_query_unix_fd (source, watch->fd_tag) != 0)
    {
      int n = gk_sql_listener_read (watch->listener);

      /* A break is not counted: what changed meanwhile is counted when
       * the watch is back (caches stay usable while the server is not). */
      if (n > 0)
        watch_changed (watch);
      if (n < 0)
        {
          g_debug ("The change notices' connection broke: connecting again");
          g_source_remove_unix_fd (source, watch->fd_tag);
          watch->fd_tag = NULL;
          watch_schedule (watch, WATCH_RECONNECT_S);
        }
    }
  if (g_source_get_ready_time (source) >= 0 && now >= g_source_get_ready_time (source))
    {
      /* Notices sent while there was no connection are lost: after a
       * reconnection, as at every refresh, count a change. */
      if (watch->fd_tag == NULL && !watch_connect (watch))
        watch_schedule (watch, WATCH_RECONNECT_S);
      else
        {
          watch_changed (watch);
          watch_schedule (watch, GK_DATABASE_REFRESH_S);
        }
    }
  return G_SOURCE_CONTINUE;
}

static void
watch_finalize (GSource *source)
{
  WatchSource *watch = (WatchSource *) source;

  g_clear_pointer (&watch->listener, gk_sql_listener_free);
  g_atomic_int_add (&watch->db->watches, -1);
  g_clear_object (&watch->db);
}

static GSourceFuncs watch_funcs = {
  .dispatch = watch_dispatch,
  .finalize = watch_finalize,
};

GSource *
gk_database_watch_source_new (GkDatabase *self)
{
  WatchSource *watch;

  g_return_val_if_fail (GK_IS_DATABASE (self), NULL);

  if (is_sqlite (self))
    return NULL;
  watch = (WatchSource *) g_source_new (&watch_funcs, sizeof (WatchSource));
  g_source_set_static_name ((GSource *) watch, "gk-database-watch");
  watch->db = g_object_ref (self);
  g_atomic_int_inc (&self->watches);
  watch->listener = gk_sql_listener_new (self->path, GK_DATABASE_POSTGRESQL_CHANNEL);
  if (!watch_connect (watch))
    watch_schedule (watch, WATCH_RECONNECT_S);
  else
    watch_schedule (watch, GK_DATABASE_REFRESH_S);
  return (GSource *) watch;
}

gboolean
gk_database_has_live_version (GkDatabase *self)
{
  return is_sqlite (self) || g_atomic_int_get (&self->watches) > 0;
}

guint64
gk_database_change_stamp (GkDatabase *self)
{
  return gk_database_change_stamp_recent (self, 0);
}

guint64
gk_database_change_stamp_recent (GkDatabase *self,
                                 gint64      max_age_us)
{
  guint64 stamp;
  gint64 version;

  gk_database_lock (self);
  if (max_age_us > 0 && self->last_data_version_at > 0 &&
      g_get_monotonic_time () - self->last_data_version_at <= max_age_us)
    version = self->last_data_version;
  else
    version = gk_database_get_data_version (self);
  stamp = ((guint64) version << 32) + self->local_changes;
  gk_database_unlock (self);
  return stamp;
}

static char *
get_text (GkDatabase *self,
          const char *sql,
          const char *key)
{
  GkSqlStmt *stmt;
  char *value = NULL;

  gk_database_lock (self);
  stmt = gk_database_prepare (self, sql, NULL);
  if (stmt != NULL)
    {
      gk_sql_bind_text (stmt, 1, key, -1);
      if (gk_sql_step (stmt) == GK_SQL_ROW)
        value = g_strdup (gk_sql_column_text (stmt, 0));
      gk_sql_reset (stmt);
    }
  gk_database_unlock (self);
  return value;
}

static gboolean
set_text (GkDatabase  *self,
          const char  *sql,
          const char  *key,
          const char  *value,
          GError     **error)
{
  GkSqlStmt *stmt;
  gboolean ok = FALSE;

  gk_database_lock (self);
  stmt = gk_database_prepare (self, sql, error);
  if (stmt != NULL)
    {
      gk_sql_bind_text (stmt, 1, key, -1);
      gk_sql_bind_text (stmt, 2, value, -1);
      ok = gk_sql_step (stmt) == GK_SQL_DONE;
      if (!ok)
        gk_database_set_error (self, error, _("Cannot save the setting"));
      gk_sql_reset (stmt);
    }
  gk_database_unlock (self);
  return ok;
}

char *
gk_database_get_setting (GkDatabase *self,
                         const char *key)
{
  g_return_val_if_fail (GK_IS_DATABASE (self), NULL);
  return get_text (self, "SELECT value FROM settings WHERE key = ?1", key);
}

gboolean
gk_database_set_setting (GkDatabase  *self,
                         const char  *key,
                         const char  *value,
                         GError     **error)
{
  g_autofree char *before = NULL;
  g_autofree char *summary = NULL;

  g_return_val_if_fail (GK_IS_DATABASE (self), FALSE);
  g_return_val_if_fail (key != NULL && value != NULL, FALSE);

  if (!gk_database_begin (self, error))
    return FALSE;
  before = gk_database_get_setting (self, key);
  if (g_strcmp0 (before, value) == 0)
    {
      gk_database_rollback (self);
      return TRUE;
    }
  summary = before != NULL ? g_strdup_printf ("“%s” → “%s”", before, value)
                           : g_strdup_printf ("“%s”", value);
  if (!set_text (self,
                 "INSERT INTO settings (key, value) VALUES (?1, ?2)"
                 " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 key, value, error) ||
      !gk_audit_record (self, GK_AUDIT_SETTING_CHANGE, 0, key, summary, error))
    {
      gk_database_rollback (self);
      return FALSE;
    }
  if (!gk_database_commit (self, error))
    return FALSE;
  /* Settings such as the threshold change selection. */
  gk_database_touch (self);
  return TRUE;
}

int
gk_database_get_setting_int (GkDatabase *self,
                             const char *key,
                             int         default_value)
{
  g_autofree char *value = gk_database_get_setting (self, key);
  gint64 parsed;

  if (value == NULL || !g_ascii_string_to_signed (value, 10, G_MININT, G_MAXINT, &parsed, NULL))
    return default_value;
  return (int) parsed;
}

double
gk_database_get_rotation_threshold (GkDatabase *self)
{
  g_autofree char *value = gk_database_get_setting (self, GK_SETTING_ROTATION_THRESHOLD);
  char *end = NULL;
  double parsed;

  if (value == NULL)
    return GK_DEFAULT_ROTATION_THRESHOLD;
  parsed = g_ascii_strtod (value, &end);
  if (end == value || *end != '\0' || !(parsed >= 0.0 && parsed <= 100.0))
    return GK_DEFAULT_ROTATION_THRESHOLD;
  return parsed;
}

GTimeZone *
gk_database_get_reset_timezone (GkDatabase *self)
{
  g_autofree char *id = gk_database_get_setting (self, GK_SETTING_RESET_TIMEZONE);
  GTimeZone *tz = NULL;

  if (id != NULL)
    tz = g_time_zone_new_identifier (id);
  if (tz == NULL)
    tz = g_time_zone_new_identifier (GK_DEFAULT_RESET_TIMEZONE);
  if (tz == NULL)
    tz = g_time_zone_new_utc ();
  return tz;
}

char *
gk_database_get_meta (GkDatabase *self,
                      const char *key)
{
  g_return_val_if_fail (GK_IS_DATABASE (self), NULL);
  return get_text (self, "SELECT value FROM meta WHERE key = ?1", key);
}

gboolean
gk_database_set_meta (GkDatabase  *self,
                      const char  *key,
                      const char  *value,
                      GError     **error)
{
  g_return_val_if_fail (GK_IS_DATABASE (self), FALSE);
  return set_text (self,
                   "INSERT INTO meta (key, value) VALUES (?1, ?2)"
                   " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                   key, value, error);
}

gboolean
gk_database_has_ciphertext (GkDatabase  *self,
                            GError     **error)
{
  GkSqlStmt *stmt;
  gboolean result = FALSE;

  g_return_val_if_fail (GK_IS_DATABASE (self), FALSE);

  gk_database_lock (self);
  stmt = gk_database_prepare (self,
                              "SELECT EXISTS (SELECT 1 FROM gemini_api_keys"
                              " WHERE api_key_encrypted IS NOT NULL)",
                              error);
  if (stmt != NULL)
    {
      if (gk_sql_step (stmt) == GK_SQL_ROW)
        result = gk_sql_column_int64 (stmt, 0) != 0;
      else
        gk_database_set_error (self, error, _("Cannot read the keys"));
      gk_sql_reset (stmt);
    }
  gk_database_unlock (self);
  return result;
}

void
gk_database_checkpoint (GkDatabase *self)
{
  if (is_sqlite (self))
    gk_database_exec (self, "PRAGMA wal_checkpoint(TRUNCATE)", NULL);
}

void
gk_database_stop_mmap (GkDatabase *self)
{
  g_return_if_fail (GK_IS_DATABASE (self));
  if (is_sqlite (self))
    gk_database_exec (self, "PRAGMA mmap_size = 0", NULL);
}

gboolean
gk_database_check_integrity (GkDatabase  *self,
                             GError     **error)
{
  GkSqlStmt *stmt;
  gboolean ok = FALSE;

  g_return_val_if_fail (GK_IS_DATABASE (self), FALSE);

  /* A server checks its own pages. */
  if (!is_sqlite (self))
    return TRUE;

  gk_database_lock (self);
  stmt = gk_database_prepare (self, "PRAGMA integrity_check", error);
  if (stmt != NULL)
    {
      if (gk_sql_step (stmt) == GK_SQL_ROW)
        {
          const char *result = gk_sql_column_text (stmt, 0);

          ok = g_strcmp0 (result, "ok") == 0;
          if (!ok)
            g_set_error (error, GK_DATABASE_ERROR, GK_DATABASE_ERROR_CORRUPT,
                         _("The database failed its integrity check: %s"), result);
        }
      else
        gk_database_set_error (self, error, _("The database failed its integrity check"));
      gk_sql_reset (stmt);
    }
  gk_database_unlock (self);
  return ok;
}
