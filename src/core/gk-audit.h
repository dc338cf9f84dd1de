/* gk-audit.h: the audit log, one row per administrative action.
 *
 * Every action a person takes on the pool (adding, editing, deleting,
 * turning a key on or off, skipping it, revealing or copying it, exports,
 * quota resets, settings, gateway tokens, the master key) is recorded by
 * the core function the action passes through, so the app, the CLI and the
 * admin API cannot diverge. A row holds the time, the actor, the target and
 * a short English summary of what changed; never a key or any secret.
 *
 * The stored text stays English whatever the language (the CLI's --json,
 * the admin API and exports give it as stored). Summaries are made of the
 * fixed phrases below, joined by "; ", with values (names, numbers, paths)
 * in them; gk_audit_render_summary() and gk_audit_render_target() give a
 * person the same in the current language, values verbatim.
 *
 * The table is append-only: no function deletes or edits rows, and
 * triggers refuse UPDATE and DELETE. Usage retention and compaction leave
 * it alone.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-types.h"

G_BEGIN_DECLS

/* Stored as the lower-case names ("key_add", …). */
typedef enum
{
  GK_AUDIT_KEY_ADD,
  GK_AUDIT_KEY_EDIT,
  GK_AUDIT_KEY_DELETE,
  GK_AUDIT_KEY_ENABLE,
  GK_AUDIT_KEY_DISABLE,
  GK_AUDIT_KEY_SKIP,
  GK_AUDIT_KEY_REVEAL,
  GK_AUDIT_KEY_COPY,
  GK_AUDIT_EXPORT,
  GK_AUDIT_QUOTA_RESET,
  GK_AUDIT_SETTING_CHANGE,
  GK_AUDIT_TOKEN_CREATE,
  GK_AUDIT_TOKEN_REVOKE,
  GK_AUDIT_MASTER_KEY_EXPORT,
  GK_AUDIT_MASTER_KEY_IMPORT,
  GK_AUDIT_MASTER_KEY_ROTATE,
  GK_AUDIT_N_ACTIONS,
} GkAuditAction;

/* The phrases of summaries; a field's phrase is followed by the phrase of
 * its change ("priority %s", then "priority %s → %s"). */
typedef enum
{
  GK_AUDIT_PHRASE_NAME,
  GK_AUDIT_PHRASE_NAME_CHANGE,
  GK_AUDIT_PHRASE_PRIORITY,
  GK_AUDIT_PHRASE_PRIORITY_CHANGE,
  GK_AUDIT_PHRASE_PROJECT,
  GK_AUDIT_PHRASE_PROJECT_CHANGE,
  GK_AUDIT_PHRASE_MONTHLY_BUDGET,
  GK_AUDIT_PHRASE_MONTHLY_BUDGET_CHANGE,
  GK_AUDIT_PHRASE_DEFAULT,
  GK_AUDIT_PHRASE_DEFAULT_CHANGE,
  GK_AUDIT_PHRASE_MONTHLY_TOKENS,
  GK_AUDIT_PHRASE_MONTHLY_TOKENS_CHANGE,
  GK_AUDIT_PHRASE_DAILY_TOKENS,
  GK_AUDIT_PHRASE_DAILY_TOKENS_CHANGE,
  GK_AUDIT_PHRASE_MINUTE_TOKENS,
  GK_AUDIT_PHRASE_MINUTE_TOKENS_CHANGE,
  GK_AUDIT_PHRASE_DAILY_REQUESTS,
  GK_AUDIT_PHRASE_DAILY_REQUESTS_CHANGE,
  GK_AUDIT_PHRASE_MINUTE_REQUESTS,
  GK_AUDIT_PHRASE_MINUTE_REQUESTS_CHANGE,
  GK_AUDIT_PHRASE_TURNED_OFF,
  GK_AUDIT_PHRASE_KEY_REPLACED,
  GK_AUDIT_PHRASE_UNTIL_DAILY_RESET,
  GK_AUDIT_PHRASE_NEXT_KEY,
  GK_AUDIT_PHRASE_NO_KEY_LEFT,
  GK_AUDIT_PHRASE_ROWS_TO_FILE,
  GK_AUDIT_PHRASE_ROWS_TO_STANDARD_OUTPUT,
  GK_AUDIT_PHRASE_INTO_KEYRING,
  GK_AUDIT_PHRASE_INTO_KEY_FILE,
  GK_AUDIT_N_PHRASES,
} GkAuditPhrase;

/* The target of a reset of every quota. */
#define GK_AUDIT_TARGET_ALL_QUOTAS "all quotas"

typedef struct
{
  gint64         id;
  gint64         created_at;
  char          *actor;      /* OS user name, or the admin API token's name */
  GkAuditAction  action;
  gint64         target_id;  /* a key's or token's id; 0 when none */
  char          *target;     /* what was acted on, e.g. a key's name; may be NULL */
  char          *summary;    /* what changed, in English; may be NULL */
} GkAuditRow;

void        gk_audit_row_free          (GkAuditRow    *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GkAuditRow, gk_audit_row_free)

const char *gk_audit_action_to_string  (GkAuditAction  action);
/* -1 when @text names no action. */
int         gk_audit_action_from_string (const char   *text);
/* Translated, for people ("Key added"). */
const char *gk_audit_action_get_label  (GkAuditAction  action);

/* Appends @phrase to @summary (after "; " unless it is empty), its
 * placeholders filled with @first and @second, which are values made by
 * the gk_audit_value_*() functions or, for counts, digits. */
void        gk_audit_summary_add       (GString       *summary,
                                        GkAuditPhrase  phrase,
                                        const char    *first,
                                        const char    *second);
/* Values in summaries: “text” (none when NULL or empty), $1.50 (none when
 * negative), a limit (unlimited when 0), yes or no. */
char       *gk_audit_value_text        (const char    *text);
char       *gk_audit_value_money       (double         usd);
char       *gk_audit_value_limit       (gint64         limit);
const char *gk_audit_value_flag        (gboolean       flag);

/* A row's stored summary (may be NULL) or target for a person, in the
 * current language: the phrases translated, the values as they are. Text
 * that is not made of the phrases, or that could be read in two ways (a
 * name may hold anything, "; " and phrases included), is returned as
 * stored. */
char       *gk_audit_render_summary    (GkAuditAction  action,
                                        const char    *summary);
char       *gk_audit_render_target     (GkAuditAction  action,
                                        const char    *target);

/* Who the calling thread acts for, until the matching pop. Scopes nest,
 * like g_main_context_push_thread_default(). Without one, the actor is the
 * OS user (g_get_user_name()): what the app and the CLI want; the admin
 * API pushes its token's name around each request. */
void        gk_audit_push_actor        (const char    *actor);
void        gk_audit_pop_actor         (void);
const char *gk_audit_get_actor         (void);

/* Appends one row for the current actor at the database clock's time.
 * Inside a caller's transaction it commits with it. @target may be NULL:
 * for key actions (@target_id a key id) the key's stored name is used. */
gboolean    gk_audit_record            (GkDatabase    *db,
                                        GkAuditAction  action,
                                        gint64         target_id,
                                        const char    *target,
                                        const char    *summary,
                                        GError       **error);
/* The row of an export of @table ("usage", "rotations", "keys", "audit")
 * to @path ("-" = standard output). */
gboolean    gk_audit_record_export     (GkDatabase    *db,
                                        const char    *table,
                                        const char    *path,
                                        guint64        n_rows,
                                        GError       **error);
/* Newest first. Element type GkAuditRow. */
GPtrArray  *gk_audit_list              (GkDatabase    *db,
                                        guint          limit,
                                        guint          offset,
                                        GError       **error);
gint64      gk_audit_count             (GkDatabase    *db,
                                        GError       **error);

G_END_DECLS
