/* gk-key-import.c: adding many keys at once (see gk-key-import.h).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "gk-crypto.h"
#include "gk-database-private.h"
#include "gk-key-import.h"
#include "gk-key-store.h"

G_DEFINE_QUARK (gk-key-import-error-quark, gk_key_import_error)

/* The hint shown for a key: its last characters, as everywhere else. */
#define HINT_CHARS      4
#define MIN_HINT_LENGTH 8

typedef enum
{
  COL_NAME,
  COL_KEY,
  COL_PRIORITY,
  COL_MONTHLY,
  COL_DAILY,
  COL_MINUTE,
  COL_DAILY_REQUESTS,
  COL_MINUTE_REQUESTS,
  COL_BUDGET,
  COL_PROJECT,
  N_COLUMNS,
  COL_NONE = -1,
} Column;

static const struct
{
  const char *name;
  Column      column;
} column_names[] = {
  { "name", COL_NAME },
  { "key", COL_KEY },
  { "api_key", COL_KEY },
  { "priority", COL_PRIORITY },
  { "monthly_quota", COL_MONTHLY },
  { "monthly_tokens", COL_MONTHLY },
  { "daily_quota", COL_DAILY },
  { "daily_tokens", COL_DAILY },
  { "minute_quota", COL_MINUTE },
  { "minute_tokens", COL_MINUTE },
  { "daily_requests", COL_DAILY_REQUESTS },
  { "rpd", COL_DAILY_REQUESTS },
  { "minute_requests", COL_MINUTE_REQUESTS },
  { "rpm", COL_MINUTE_REQUESTS },
  { "budget", COL_BUDGET },
  { "monthly_budget_usd", COL_BUDGET },
  { "project", COL_PROJECT },
};

/* The quota slot of each quota column. */
static const struct
{
  Column      column;
  GkQuotaSlot slot;
} quota_columns[] = {
  { COL_MONTHLY, GK_QUOTA_SLOT_MONTHLY_TOKENS },
  { COL_DAILY, GK_QUOTA_SLOT_DAILY_TOKENS },
  { COL_MINUTE, GK_QUOTA_SLOT_MINUTE_TOKENS },
  { COL_DAILY_REQUESTS, GK_QUOTA_SLOT_DAILY_REQUESTS },
  { COL_MINUTE_REQUESTS, GK_QUOTA_SLOT_MINUTE_REQUESTS },
};

const char *
gk_import_result_to_string (GkImportResult result)
{
  switch (result)
    {
    case GK_IMPORT_ADDED:
      return "added";
    case GK_IMPORT_WOULD_ADD:
      return "would_add";
    case GK_IMPORT_DUPLICATE:
      return "duplicate";
    case GK_IMPORT_INVALID:
    default:
      return "invalid";
    }
}

/**
 * gk_import_result_get_label:
 *
 * What a report line's result reads as, translated ("added", "skipped").
 */
const char *
gk_import_result_get_label (GkImportResult result)
{
  switch (result)
    {
    case GK_IMPORT_ADDED:
      return C_("import result", "added");
    case GK_IMPORT_WOULD_ADD:
      return C_("import result", "would be added");
    case GK_IMPORT_DUPLICATE:
      return C_("import result", "skipped");
    case GK_IMPORT_INVALID:
    default:
      return C_("import result", "invalid");
    }
}

static void
import_line_free (GkImportLine *line)
{
  g_free (line->name);
  g_free (line->key_hint);
  g_free (line->message);
  g_free (line);
}

void
gk_import_report_free (GkImportReport *report)
{
  if (report == NULL)
    return;
  g_clear_pointer (&report->lines, g_ptr_array_unref);
  g_free (report);
}

/* Splits one CSV line into fields (quotes with "" escapes). The fields may
 * hold a key: free them with wipe_fields(). */
static GPtrArray *
split_csv (const char *line)
{
  GPtrArray *fields = g_ptr_array_new ();
  GString *field = g_string_new (NULL);
  gboolean quoted = FALSE;

  for (const char *p = line;; p++)
    {
      if (quoted)
        {
          if (*p == '\0')
            quoted = FALSE;
          else if (*p == '"' && p[1] == '"')
            {
              g_string_append_c (field, '"');
              p++;
              continue;
            }
          else if (*p == '"')
            {
              quoted = FALSE;
              continue;
            }
          else
            {
              g_string_append_c (field, *p);
              continue;
            }
        }
      if (*p == '"' && field->len == 0)
        quoted = TRUE;
      else if (*p == ',' || *p == '\0')
        {
          g_ptr_array_add (fields, g_strstrip (g_strndup (field->str, field->len)));
          gk_crypto_wipe (field->str, field->len);
          g_string_truncate (field, 0);
          if (*p == '\0')
            break;
        }
      else
        g_string_append_c (field, *p);
    }
  gk_crypto_wipe (field->str, field->allocated_len);
  g_string_free (field, TRUE);
  return fields;
}

static void
wipe_fields (GPtrArray *fields)
{
  for (guint i = 0; i < fields->len; i++)
    gk_crypto_wipe_string (fields->pdata[i]);
  g_ptr_array_free (fields, TRUE);
}

static Column
column_for_name (const char *name)
{
  g_autofree char *lower = g_ascii_strdown (name, -1);

  g_strdelimit (lower, " -", '_');
  for (guint i = 0; i < G_N_ELEMENTS (column_names); i++)
    if (g_str_equal (lower, column_names[i].name))
      return column_names[i].column;
  return COL_NONE;
}

/* Whether @line (the first one with content) is a CSV header: one of its
 * fields names the key column. */
static gboolean
is_header (const char *line)
{
  GPtrArray *fields = split_csv (line);
  gboolean header = FALSE;

  for (guint i = 0; i < fields->len && !header; i++)
    header = column_for_name (fields->pdata[i]) == COL_KEY;
  wipe_fields (fields);
  return header;
}

/* The position of each column in a header line. */
static gboolean
parse_header (const char  *line,
              int          positions[N_COLUMNS],
              GError     **error)
{
  GPtrArray *fields = split_csv (line);
  gboolean ok = TRUE;

  for (guint c = 0; c < N_COLUMNS; c++)
    positions[c] = -1;
  for (guint i = 0; i < fields->len && ok; i++)
    {
      const char *name = fields->pdata[i];
      Column column = column_for_name (name);

      if (column == COL_NONE)
        {
          g_set_error (error, GK_KEY_IMPORT_ERROR, GK_KEY_IMPORT_ERROR_HEADER,
                       _("Unknown column “%s” in the header. Use name, key, priority, "
                         "monthly_quota, daily_quota, minute_quota, daily_requests, "
                         "minute_requests, budget and project."),
                       name);
          ok = FALSE;
        }
      else
        positions[column] = (int) i;
    }
  wipe_fields (fields);
  return ok;
}

static const char *
field_at (GPtrArray *fields,
          int        position)
{
  if (fields == NULL || position < 0 || (guint) position >= fields->len)
    return "";
  return fields->pdata[position];
}

static char *
hint_for (const char *api_key)
{
  gsize len = strlen (api_key);

  if (len < MIN_HINT_LENGTH)
    return g_strdup ("");
  return g_strconcat ("…", api_key + len - HINT_CHARS, NULL);
}

/* Reads the user-set fields of a CSV line into @spec. @name is set to an
 * allocated name (the column's, or one made from the key's hint). */
static gboolean
parse_spec (GPtrArray    *fields,
            const int     positions[N_COLUMNS],
            const char   *hint,
            GkKeySpec    *spec,
            char        **name,
            char        **project,
            GError      **error)
{
  const char *text;

  gk_key_spec_init (spec);

  text = field_at (fields, positions[COL_NAME]);
  /* Translators: the name given to an imported key without one; %s is
   * the key's last characters, such as "…wxyz". */
  *name = *text != '\0' ? g_strdup (text) : g_strdup_printf (_("Imported %s"), hint);
  spec->name = *name;

  text = field_at (fields, positions[COL_PRIORITY]);
  if (*text != '\0')
    {
      gint64 priority;

      if (!g_ascii_string_to_signed (text, 10, G_MININT, G_MAXINT, &priority, NULL))
        {
          g_set_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_PRIORITY,
                       _("The priority “%s” is not a whole number from 1 to 10."), text);
          return FALSE;
        }
      spec->priority = (int) priority;
    }

  for (guint i = 0; i < G_N_ELEMENTS (quota_columns); i++)
    {
      text = field_at (fields, positions[quota_columns[i].column]);
      if (*text == '\0')
        continue;
      if (!g_ascii_string_to_signed (text, 10, 0, G_MAXINT64, &spec->limits[quota_columns[i].slot],
                                     NULL))
        {
          g_set_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_QUOTA,
                       _("The quota “%s” is not a whole number (0 means no limit)."), text);
          return FALSE;
        }
    }

  text = field_at (fields, positions[COL_BUDGET]);
  if (*text != '\0')
    {
      char *end = NULL;
      double budget = g_ascii_strtod (text, &end);

      if (end == text || *end != '\0' || !(budget >= 0))
        {
          g_set_error (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_BUDGET,
                       _("The budget “%s” is not an amount in US dollars."), text);
          return FALSE;
        }
      spec->monthly_budget_usd = budget > 0 ? budget : -1;
    }

  text = field_at (fields, positions[COL_PROJECT]);
  if (*text != '\0')
    {
      *project = g_strdup (text);
      spec->project = *project;
    }

  return gk_key_validate_spec (spec, error);
}

static GkImportLine *
check_line (GkKeyStore  *store,
            GHashTable  *seen,
            guint        number,
            const char  *line,
            gboolean     csv,
            const int    positions[N_COLUMNS],
            gboolean     dry_run)
{
  g_autoptr(GError) error = NULL;
  GkImportLine *result = g_new0 (GkImportLine, 1);
  GPtrArray *fields = NULL;
  char *api_key;
  g_autofree char *project = NULL;
  g_autofree char *digest = NULL;
  g_autofree char *existing = NULL;
  GkKeySpec spec;
  gboolean found = FALSE;

  result->line = number;
  if (csv)
    {
      fields = split_csv (line);
      api_key = g_strdup (field_at (fields, positions[COL_KEY]));
    }
  else
    api_key = g_strstrip (g_strdup (line));
  result->key_hint = hint_for (api_key);

  if (!parse_spec (csv ? fields : NULL, positions, result->key_hint, &spec, &result->name,
                   &project, &error)
      || !gk_key_validate_api_key (api_key, &error))
    {
      result->result = GK_IMPORT_INVALID;
      result->message = g_strdup (error->message);
      goto done;
    }

  /* Twice in the same text: the first one counts. Only a digest is kept. */
  digest = gk_crypto_sha256_hex (api_key);
  if (g_hash_table_contains (seen, digest))
    {
      result->result = GK_IMPORT_DUPLICATE;
      result->message = g_strdup (_("The same key appears on an earlier line."));
      goto done;
    }
  g_hash_table_add (seen, g_strdup (digest));

  if (!gk_key_store_contains (store, api_key, &found, &existing, &error))
    {
      result->result = GK_IMPORT_INVALID;
      result->message = g_strdup (error->message);
      goto done;
    }
  if (found)
    {
      result->result = GK_IMPORT_DUPLICATE;
      result->message = g_strdup_printf (_("Already in the pool as “%s”."), existing);
      goto done;
    }

  if (dry_run)
    {
      result->result = GK_IMPORT_WOULD_ADD;
      goto done;
    }

  result->id = gk_key_store_add (store, &spec, api_key, &error);
  if (result->id > 0)
    result->result = GK_IMPORT_ADDED;
  else
    {
      result->result = g_error_matches (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_DUPLICATE)
                         ? GK_IMPORT_DUPLICATE : GK_IMPORT_INVALID;
      result->message = g_strdup (error->message);
    }

done:
  gk_crypto_wipe_string (api_key);
  if (fields != NULL)
    wipe_fields (fields);
  return result;
}

GkImportReport *
gk_key_import (GkKeyStore  *store,
               const char  *text,
               gssize       len,
               gboolean     dry_run,
               GError     **error)
{
  g_autoptr(GkImportReport) report = NULL;
  g_autoptr(GHashTable) seen = NULL;
  GkDatabase *db;
  char *copy;
  char **lines;
  gboolean csv = FALSE, header_read = FALSE, ok = TRUE, began = FALSE;
  int positions[N_COLUMNS];

  g_return_val_if_fail (GK_IS_KEY_STORE (store), NULL);
  g_return_val_if_fail (text != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (len < 0)
    len = (gssize) strlen (text);
  copy = g_strndup (text, (gsize) len);
  lines = g_strsplit (copy, "\n", -1);
  gk_crypto_wipe (copy, (gsize) len);
  g_free (copy);

  for (guint c = 0; c < N_COLUMNS; c++)
    positions[c] = -1;
  positions[COL_KEY] = 0;

  report = g_new0 (GkImportReport, 1);
  report->dry_run = dry_run;
  report->lines = g_ptr_array_new_with_free_func ((GDestroyNotify) import_line_free);
  seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  db = gk_key_store_get_database (store);
  /* One commit for the whole import: 1,000 keys in about a second. Each
   * key is a savepoint of its own, so a bad one fails alone. */
  if (!dry_run)
    ok = began = gk_database_begin (db, error);

  for (guint i = 0; ok && lines[i] != NULL; i++)
    {
      char *line = lines[i];
      gsize n = strlen (line);
      GkImportLine *result;

      if (n > 0 && line[n - 1] == '\r')
        line[n - 1] = '\0';
      /* A byte-order mark some editors write at the start. */
      if (i == 0 && g_str_has_prefix (line, "\xEF\xBB\xBF"))
        memmove (line, line + 3, strlen (line + 3) + 1);
      g_strstrip (line);
      if (*line == '\0' || *line == '#')
        continue;

      if (!header_read)
        {
          header_read = TRUE;
          csv = is_header (line);
          if (csv)
            {
              if (!parse_header (line, positions, error))
                ok = FALSE;
              continue;
            }
        }

      result = check_line (store, seen, i + 1, line, csv, positions, dry_run);
      switch (result->result)
        {
        case GK_IMPORT_ADDED:
        case GK_IMPORT_WOULD_ADD:
          report->added++;
          break;
        case GK_IMPORT_DUPLICATE:
          report->duplicates++;
          break;
        case GK_IMPORT_INVALID:
        default:
          report->invalid++;
          break;
        }
      g_ptr_array_add (report->lines, result);
    }

  for (guint i = 0; lines[i] != NULL; i++)
    gk_crypto_wipe (lines[i], strlen (lines[i]));
  g_strfreev (lines);

  if (ok && report->lines->len == 0)
    {
      g_set_error_literal (error, GK_KEY_IMPORT_ERROR, GK_KEY_IMPORT_ERROR_EMPTY,
                           _("There is no key to import: give one key per line, or CSV with a "
                             "header line naming a “key” column."));
      ok = FALSE;
    }

  if (began && !ok)
    gk_database_rollback (db);
  else if (began && !gk_database_commit (db, error))
    return NULL;
  if (!ok)
    return NULL;
  if (!dry_run && report->added > 0)
    gk_database_touch (db);
  return g_steal_pointer (&report);
}
