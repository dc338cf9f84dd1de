/* test-catalogue.c: the compiled Vietnamese catalogue, looked up the way
 * the programs look strings up at run time.
 *
 * Every translated entry of po/vi.po must come back from gettext with its
 * translation: plain, with a context (C_) and plural (g_dngettext) ones,
 * and the "system dependent" ones that use <inttypes.h> macros such as
 * PRId64, which msgfmt stores apart and only the C library resolves.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <inttypes.h>
#include <locale.h>
#include <string.h>

#include <glib.h>
#include <glib/gi18n.h>

typedef struct
{
  char      *ctxt;
  char      *msgid;
  char      *msgid_plural;
  GPtrArray *msgstr;        /* msgstr, or msgstr[0], msgstr[1], … */
  gboolean   fuzzy;
  gboolean   obsolete;
} PoEntry;

typedef enum
{
  FIELD_NONE,
  FIELD_CTXT,
  FIELD_MSGID,
  FIELD_PLURAL,
  FIELD_MSGSTR,
} Field;

static void
po_entry_free (PoEntry *e)
{
  g_free (e->ctxt);
  g_free (e->msgid);
  g_free (e->msgid_plural);
  g_clear_pointer (&e->msgstr, g_ptr_array_unref);
  g_free (e);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PoEntry, po_entry_free)

static PoEntry *
po_entry_new (void)
{
  PoEntry *e = g_new0 (PoEntry, 1);

  e->msgstr = g_ptr_array_new_with_free_func (g_free);
  return e;
}

/* The text between the first and the last quote, unescaped. */
static char *
po_unquote (const char *s)
{
  const char *start = strchr (s, '"');
  const char *end = strrchr (s, '"');
  g_autofree char *inner = NULL;

  g_assert_nonnull (start);
  g_assert_true (end > start);
  inner = g_strndup (start + 1, end - start - 1);
  return g_strcompress (inner);
}

static void
po_append (char       **field,
           const char  *line)
{
  g_autofree char *value = po_unquote (line);
  char *joined = g_strconcat (*field != NULL ? *field : "", value, NULL);

  g_free (*field);
  *field = joined;
}

/* A small reader for the subset of the PO format msgmerge writes. */
static GPtrArray *
po_parse (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify) po_entry_free);
  g_autoptr(PoEntry) cur = po_entry_new ();
  Field field = FIELD_NONE;

  g_file_get_contents (path, &text, NULL, &error);
  g_assert_no_error (error);
  lines = g_strsplit (text, "\n", -1);

  for (guint i = 0; lines[i] != NULL; i++)
    {
      const char *line = lines[i];
      gboolean obsolete = FALSE;

      if (*line == '\0')
        {
          if (cur->msgid != NULL)
            g_ptr_array_add (entries, g_steal_pointer (&cur));
          g_clear_pointer (&cur, po_entry_free);
          cur = po_entry_new ();
          field = FIELD_NONE;
          continue;
        }
      if (g_str_has_prefix (line, "#~"))
        {
          obsolete = TRUE;
          line += 2;
          while (*line == ' ')
            line++;
          /* "#~|": the previous msgid of an obsolete entry. */
          if (*line == '|')
            continue;
        }
      else if (g_str_has_prefix (line, "#,"))
        {
          if (strstr (line, "fuzzy") != NULL)
            cur->fuzzy = TRUE;
          continue;
        }
      else if (*line == '#')
        continue;
      cur->obsolete |= obsolete;

      if (g_str_has_prefix (line, "msgctxt "))
        {
          field = FIELD_CTXT;
          po_append (&cur->ctxt, line);
        }
      else if (g_str_has_prefix (line, "msgid_plural "))
        {
          field = FIELD_PLURAL;
          po_append (&cur->msgid_plural, line);
        }
      else if (g_str_has_prefix (line, "msgid "))
        {
          field = FIELD_MSGID;
          po_append (&cur->msgid, line);
        }
      else if (g_str_has_prefix (line, "msgstr"))
        {
          field = FIELD_MSGSTR;
          g_ptr_array_add (cur->msgstr, po_unquote (line));
        }
      else if (*line == '"')
        {
          switch (field)
            {
            case FIELD_CTXT:
              po_append (&cur->ctxt, line);
              break;
            case FIELD_MSGID:
              po_append (&cur->msgid, line);
              break;
            case FIELD_PLURAL:
              po_append (&cur->msgid_plural, line);
              break;
            case FIELD_MSGSTR:
              po_append ((char **) &cur->msgstr->pdata[cur->msgstr->len - 1], line);
              break;
            case FIELD_NONE:
            default:
              g_assert_not_reached ();
            }
        }
      else
        g_error ("%s: cannot read line %u", path, i + 1);
    }
  if (cur->msgid != NULL)
    g_ptr_array_add (entries, g_steal_pointer (&cur));

  return g_steal_pointer (&entries);
}

/* gettext writes <inttypes.h> macros as "%<PRId64>"; the program asks for
 * what the macro expands to on this platform. */
static char *
expand_sysdep (const char *s)
{
  static const struct { const char *name; const char *value; } macros[] = {
    { "<PRId64>", PRId64 },
    { "<PRIu64>", PRIu64 },
    { "<PRIx64>", PRIx64 },
    { "<PRId32>", PRId32 },
    { "<PRIu32>", PRIu32 },
  };
  g_autoptr(GString) out = g_string_new (s);

  for (guint i = 0; i < G_N_ELEMENTS (macros); i++)
    g_string_replace (out, macros[i].name, macros[i].value, 0);
  g_assert_null (strstr (out->str, "%<"));
  return g_string_free (g_steal_pointer (&out), FALSE);
}

static char *
vi_po_path (void)
{
  const char *root = g_getenv ("GEMINI_KEYS_SOURCE_ROOT");

  g_assert_nonnull (root);
  return g_build_filename (root, "po", "vi.po", NULL);
}

static void
test_catalogue_every_entry (void)
{
  g_autofree char *path = vi_po_path ();
  g_autoptr(GPtrArray) entries = po_parse (path);
  guint checked = 0;
  guint sysdep = 0;
  guint with_context = 0;
  guint plural = 0;

  for (guint i = 0; i < entries->len; i++)
    {
      PoEntry *e = g_ptr_array_index (entries, i);
      g_autofree char *msgid = NULL;
      g_autofree char *expected = NULL;
      const char *got;

      /* msgfmt leaves these out of the catalogue. */
      if (e->obsolete || e->fuzzy || *e->msgid == '\0' || e->msgstr->len == 0 ||
          *(const char *) g_ptr_array_index (e->msgstr, 0) == '\0')
        continue;

      msgid = expand_sysdep (e->msgid);
      expected = expand_sysdep (g_ptr_array_index (e->msgstr, 0));
      if (strcmp (msgid, e->msgid) != 0)
        sysdep++;

      if (e->msgid_plural != NULL)
        {
          g_autofree char *msgid_plural = expand_sysdep (e->msgid_plural);

          /* Vietnamese has one form: every count gets msgstr[0]. */
          g_assert_cmpuint (e->msgstr->len, ==, 1);
          for (gulong n = 0; n < 3; n++)
            {
              got = g_dngettext (GETTEXT_PACKAGE, msgid, msgid_plural, n);
              g_assert_cmpstr (got, ==, expected);
            }
          plural++;
        }
      else if (e->ctxt != NULL)
        {
          got = g_dpgettext2 (GETTEXT_PACKAGE, e->ctxt, msgid);
          g_assert_cmpstr (got, ==, expected);
          with_context++;
        }
      else
        {
          got = g_dgettext (GETTEXT_PACKAGE, msgid);
          g_assert_cmpstr (got, ==, expected);
        }
      checked++;
    }

  g_test_message ("%u entries looked up: %u with a context, %u plural, %u with PRI macros",
                  checked, with_context, plural, sysdep);
  g_assert_cmpuint (checked, >, 0);
}

static void
test_catalogue_product_name (void)
{
  /* The name the desktop shows (DESIGN.md: "Quản lý Gemini Keys"). */
  g_assert_cmpstr (g_dgettext (GETTEXT_PACKAGE, "Gemini Keys"), ==, "Quản lý Gemini Keys");
  /* A string nobody translated comes back unchanged, so the lookups above
   * do not pass by accident. */
  g_assert_cmpstr (g_dgettext (GETTEXT_PACKAGE, "gk-test: not a message"), ==,
                   "gk-test: not a message");
}

static void
test_catalogue_sysdep_format (void)
{
  g_autofree char *path = vi_po_path ();
  g_autoptr(GPtrArray) entries = po_parse (path);

  /* A translated PRId64 message must still format a 64-bit id. */
  for (guint i = 0; i < entries->len; i++)
    {
      PoEntry *e = g_ptr_array_index (entries, i);
      g_autofree char *msgid = NULL;
      g_autofree char *formatted = NULL;
      const char *translated;

      if (e->obsolete || e->fuzzy || e->ctxt != NULL || e->msgid_plural != NULL ||
          strcmp (e->msgid, "Revoked token %<PRId64>\n") != 0)
        continue;

      msgid = expand_sysdep (e->msgid);
      translated = g_dgettext (GETTEXT_PACKAGE, msgid);
      /* The format comes from the catalogue, as in the program. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
      formatted = g_strdup_printf (translated, G_GINT64_CONSTANT (9007199254740993));
#pragma GCC diagnostic pop
      g_assert_nonnull (strstr (formatted, "9007199254740993"));
      g_assert_cmpstr (formatted, !=, "Revoked token 9007199254740993\n");
      return;
    }
  g_test_skip ("vi.po has no “Revoked token %<PRId64>” entry");
}

int
main (int   argc,
      char *argv[])
{
  g_autofree char *localedir = NULL;
  const char *build_root;

  /* The catalogue built in the build tree, in Vietnamese: LANGUAGE picks
   * the language, LC_ALL=C.UTF-8 keeps the rest of the locale neutral. */
  g_setenv ("LANGUAGE", "vi", TRUE);
  g_setenv ("LC_ALL", "C.UTF-8", TRUE);
  setlocale (LC_ALL, "");

  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  build_root = g_getenv ("GEMINI_KEYS_BUILD_ROOT");
  g_assert_nonnull (build_root);
  localedir = g_build_filename (build_root, "po", NULL);
  bindtextdomain (GETTEXT_PACKAGE, localedir);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");

  g_test_add_func ("/catalogue/product-name", test_catalogue_product_name);
  g_test_add_func ("/catalogue/every-entry", test_catalogue_every_entry);
  g_test_add_func ("/catalogue/sysdep-format", test_catalogue_sysdep_format);

  return g_test_run ();
}
