/* gk-key-import.h: adding many keys at once from text (a file or a paste).
 *
 * The text is either one API key per line, or CSV whose first line is a
 * header naming the columns (in any order; only "key" is required):
 *
 *   name, key, priority, monthly_quota, daily_quota, minute_quota,
 *   daily_requests, minute_requests, budget, project
 *
 * (also accepted: "rpd", "rpm", "monthly_tokens", "daily_tokens",
 * "minute_tokens", "monthly_budget_usd"). Empty lines and lines starting
 * with "#" are skipped. Each line is checked like the Add Key dialog;
 * keys already in the pool (by fingerprint) or earlier in the same text
 * are skipped. The report names each line by its number, its name and the
 * key's last four characters: no plaintext key is kept or written.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-types.h"

G_BEGIN_DECLS

#define GK_KEY_IMPORT_ERROR (gk_key_import_error_quark ())

typedef enum
{
  GK_KEY_IMPORT_ERROR_HEADER,    /* a CSV header with an unknown or missing column */
  GK_KEY_IMPORT_ERROR_EMPTY,     /* no line with a key */
} GkKeyImportError;

typedef enum
{
  GK_IMPORT_ADDED,
  GK_IMPORT_WOULD_ADD,           /* dry run: valid and new */
  GK_IMPORT_DUPLICATE,           /* already in the pool, or earlier in the text */
  GK_IMPORT_INVALID,
} GkImportResult;

typedef struct
{
  guint           line;          /* 1-based line number in the text */
  char           *name;
  char           *key_hint;      /* "…wxyz", or "" when there was no key */
  GkImportResult  result;
  char           *message;       /* why it was skipped or refused; NULL otherwise */
  gint64          id;            /* the new key's id (ADDED) */
} GkImportLine;

typedef struct
{
  gboolean   dry_run;
  GPtrArray *lines;              /* GkImportLine, in text order */
  guint      added;              /* or would be added, in a dry run */
  guint      duplicates;
  guint      invalid;
} GkImportReport;

GQuark          gk_key_import_error_quark  (void);

/* "added", "would_add", "duplicate", "invalid" (for JSON). */
const char     *gk_import_result_to_string (GkImportResult  result);
/* Translated, for people ("added", "would be added", "skipped", "invalid"). */
const char     *gk_import_result_get_label (GkImportResult  result);

void            gk_import_report_free      (GkImportReport *report);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GkImportReport, gk_import_report_free)

/* Checks every line of @text (@len bytes, or -1 when NUL-terminated) and,
 * unless @dry_run, adds the valid new keys in one transaction. The caller
 * wipes @text afterwards. Returns NULL with @error set only when the text
 * as a whole cannot be read (a bad header, no key at all, the database);
 * a bad line is reported in its GkImportLine. */
GkImportReport *gk_key_import              (GkKeyStore     *store,
                                            const char     *text,
                                            gssize          len,
                                            gboolean        dry_run,
                                            GError        **error);

G_END_DECLS
