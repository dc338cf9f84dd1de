/* test-vietnamese.c: the app in Vietnamese shows no English.
 *
 * Every tab (and the add-key dialog and Preferences) is opened with
 * LANGUAGE=vi over a database with data in every view; every mapped label
 * is read, and the test fails on any text that is an untranslated English
 * message, or that contains a word which only appears in the English
 * source strings (a word used by the Vietnamese translation too, such as
 * "Gemini" or "token", does not count).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <locale.h>

#include "gk-application.h"
#include "gk-audit-page.h"
#include "gk-preferences-window.h"
#include "gk-test-util.h"
#include "gk-ui-test-util.h"

typedef struct
{
  GHashTable *msgids;         /* English source strings */
  GHashTable *english_words;  /* words of msgids that no translation uses */
} Catalogue;

/* Appends the C-quoted string on @line (after the keyword) to @out. */
static void
append_po_string (GString    *out,
                  const char *line)
{
  const char *start = strchr (line, '"');
  g_autofree char *quoted = NULL;
  g_autofree char *text = NULL;
  const char *end;

  if (start == NULL || (end = strrchr (line, '"')) == start)
    return;
  quoted = g_strndup (start + 1, end - start - 1);
  text = g_strcompress (quoted);
  g_string_append (out, text);
}

static void
add_words (GHashTable *words,
           const char *text)
{
  g_auto(GStrv) parts = g_regex_split_simple ("[^\\p{L}]+", text, 0, 0);

  for (guint i = 0; parts[i] != NULL; i++)
    {
      if (g_utf8_strlen (parts[i], -1) >= 4)
        g_hash_table_add (words, g_utf8_strdown (parts[i], -1));
    }
}

static void
load_catalogue (Catalogue *c)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename (g_getenv ("GEMINI_KEYS_SOURCE_ROOT"), "po", "vi.po",
                                            NULL);
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GHashTable) source_words = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GHashTable) translated_words = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GString) msgid = g_string_new (NULL);
  g_autoptr(GString) msgstr = g_string_new (NULL);
  GString *current = NULL;
  GHashTableIter iter;
  gpointer word;

  g_file_get_contents (path, &contents, NULL, &error);
  g_assert_no_error (error);
  c->msgids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  c->english_words = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  lines = g_strsplit (contents, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      const char *line = lines[i];

      if (g_str_has_prefix (line, "msgid ") || lines[i + 1] == NULL)
        {
          if (msgid->len > 0)
            {
              g_hash_table_add (c->msgids, g_strdup (msgid->str));
              add_words (source_words, msgid->str);
              add_words (translated_words, msgstr->str);
            }
          g_string_truncate (msgid, 0);
          g_string_truncate (msgstr, 0);
          current = msgid;
          append_po_string (current, line);
        }
      else if (g_str_has_prefix (line, "msgid_plural "))
        current = NULL;
      else if (g_str_has_prefix (line, "msgstr"))
        {
          current = msgstr;
          append_po_string (current, line);
        }
      else if (line[0] == '"' && current != NULL)
        append_po_string (current, line);
    }

  g_hash_table_iter_init (&iter, source_words);
  while (g_hash_table_iter_next (&iter, &word, NULL))
    {
      if (!g_hash_table_contains (translated_words, word))
        g_hash_table_add (c->english_words, g_strdup (word));
    }
  g_assert_cmpuint (g_hash_table_size (c->english_words), >, 100);
}

static void
collect_texts (GtkWidget *widget,
               GPtrArray *texts)
{
  if (!gtk_widget_get_mapped (widget))
    return;

  if (GTK_IS_LABEL (widget))
    {
      const char *text = gtk_label_get_text (GTK_LABEL (widget));
      if (text != NULL && *text != '\0')
        g_ptr_array_add (texts, g_strdup (text));
    }

  for (GtkWidget *child = gtk_widget_get_first_child (widget); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    collect_texts (child, texts);
}

static void
assert_no_english (Catalogue  *c,
                   GtkWidget  *root,
                   const char *where)
{
  g_autoptr(GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GString) problems = g_string_new (NULL);

  collect_texts (root, texts);
  g_assert_cmpuint (texts->len, >, 3);

  for (guint i = 0; i < texts->len; i++)
    {
      const char *text = g_ptr_array_index (texts, i);
      g_autoptr(GHashTable) words = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
      GHashTableIter iter;
      gpointer word;

      if (g_hash_table_contains (c->msgids, text))
        g_string_append_printf (problems, "  untranslated: “%s”\n", text);
      add_words (words, text);
      g_hash_table_iter_init (&iter, words);
      while (g_hash_table_iter_next (&iter, &word, NULL))
        {
          if (g_hash_table_contains (c->english_words, word))
            g_string_append_printf (problems, "  English word “%s” in “%s”\n", (char *) word, text);
        }
    }

  if (problems->len > 0)
    g_error ("%s shows English:\n%s", where, problems->str);
  g_test_message ("%s: %u labels checked", where, texts->len);
}

/* Data in every view, named so no English word comes from the data. */
static void
fill_database (const char *db_path,
               const char *key_file)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = gk_database_open (db_path, NULL, &error);
  g_autoptr(GkSecretStore) secrets = gk_secret_store_new_for_file (key_file);
  g_autoptr(GBytes) master = NULL;
  g_autoptr(GkKeyStore) store = NULL;
  g_autoptr(GkPool) pool = NULL;
  const char *const names[] = { "Khóa chính", "Khóa phụ", "Dự phòng" };
  gint64 ids[3];

  g_assert_no_error (error);
  master = gk_secret_store_unlock (secrets, db, NULL, &error);
  g_assert_no_error (error);
  store = gk_key_store_new (db, master);
  pool = gk_pool_new (db, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *api_key = gk_test_api_key (i);
      GkKeySpec spec;

      gk_key_spec_init (&spec);
      spec.name = names[i];
      spec.priority = 5 + i;
      spec.limits[GK_QUOTA_SLOT_DAILY_TOKENS] = 100000;
      spec.limits[GK_QUOTA_SLOT_MINUTE_REQUESTS] = 15;
      ids[i] = gk_key_store_add (store, &spec, api_key, &error);
      g_assert_no_error (error);
    }

  for (int i = 0; i < 30; i++)
    {
      GkUsageRecord record;

      gk_usage_record_init (&record);
      record.key_id = ids[i % 2];
      record.model = i % 3 ? "gemini-2.5-flash" : "gemini-2.5-pro";
      record.prompt_tokens = 1000 + i;
      record.output_tokens = 200;
      record.user_id = i % 2 ? "an" : "binh";
      record.status = i % 7 == 0 ? GK_USAGE_ERROR : GK_USAGE_SUCCESS;
      record.http_status = i % 7 == 0 ? 500 : 200;
      gk_pool_track (pool, &record, NULL, &error);
      g_assert_no_error (error);
    }
  gk_pool_rotate (pool, ids[2], "manual:an", &error);
  g_assert_no_error (error);
}

static void
test_no_english (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("gk-test-vi-XXXXXX", &error);
  g_autofree char *db_path = g_build_filename (dir, "keys.db", NULL);
  g_autofree char *key_file = g_build_filename (dir, "master.key", NULL);
  const char *const tabs[] = { "dashboard", "keys", "usage", "rotations", "audit" };
  Catalogue catalogue = { 0 };
  GkWindow *window;

  g_assert_no_error (error);
  load_catalogue (&catalogue);
  /* The catalogue really is in use: a known message comes out translated. */
  g_assert_cmpstr (_("Dashboard"), !=, "Dashboard");

  fill_database (db_path, key_file);
  g_setenv (GK_MASTER_KEY_FILE_ENV, key_file, TRUE);
  window = gk_ui_test_open_window (db_path);

  for (guint i = 0; i < G_N_ELEMENTS (tabs); i++)
    {
      g_autofree char *where = g_strdup_printf ("the %s tab", tabs[i]);

      g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.show-tab", "s", tabs[i]));
      gk_ui_test_spin (1500);
      assert_no_english (&catalogue, GTK_WIDGET (window), where);
    }

  /* The add-key dialog. */
  gtk_widget_activate_action (GTK_WIDGET (window), "win.add-key", NULL);
  gk_ui_test_spin (800);
  {
    GListModel *toplevels = gtk_window_get_toplevels ();

    for (guint i = 0; i < g_list_model_get_n_items (toplevels); i++)
      {
        g_autoptr(GtkWidget) toplevel = g_list_model_get_item (toplevels, i);

        if (toplevel != GTK_WIDGET (window) && gtk_widget_get_mapped (toplevel))
          {
            assert_no_english (&catalogue, toplevel, "the add-key dialog");
            gtk_window_destroy (GTK_WINDOW (toplevel));
            break;
          }
      }
  }

  gk_ui_test_close_window (window);
  g_unsetenv (GK_MASTER_KEY_FILE_ENV);
  g_hash_table_unref (catalogue.msgids);
  g_hash_table_unref (catalogue.english_words);
  gk_test_rm_rf (dir);
}

static gboolean
audit_loaded (gpointer page)
{
  return !gk_audit_page_get_loading (page);
}

/* The Audit Log tab tells what changed in Vietnamese, the names as they
 * are, even one that holds the separators and phrases of summaries; a
 * summary such a name makes readable in two ways shows as stored rather
 * than garbled. */
static void
test_audit_log (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("gk-test-vi-XXXXXX", &error);
  g_autofree char *db_path = g_build_filename (dir, "keys.db", NULL);
  g_autofree char *key_file = g_build_filename (dir, "master.key", NULL);
  const char *tricky = "a” → “b; priority 1 → 2";
  const char *const shown[] = {
    "độ ưu tiên 7; token theo ngày 100000; yêu cầu mỗi phút 15",
    "đến lần đặt lại hằng ngày; khóa kế tiếp “Khóa phụ”",
    "độ ưu tiên 3",
    "name “a” → “b; priority 1 → 2” → “c”",
    tricky,
  };
  GkWindow *window;
  GtkWidget *page;

  g_assert_no_error (error);
  fill_database (db_path, key_file);
  {
    g_autoptr(GkDatabase) db = gk_database_open (db_path, NULL, &error);
    g_autoptr(GkSecretStore) secrets = gk_secret_store_new_for_file (key_file);
    g_autoptr(GBytes) master = NULL;
    g_autoptr(GkKeyStore) store = NULL;
    g_autoptr(GkKey) key = NULL;
    GkKeySpec spec;

    g_assert_no_error (error);
    master = gk_secret_store_unlock (secrets, db, NULL, &error);
    g_assert_no_error (error);
    store = gk_key_store_new (db, master);
    key = gk_key_store_get (store, gk_test_add_key (store, tricky, 3), &error);
    g_assert_no_error (error);
    gk_key_spec_from_key (&spec, key);
    spec.name = "c";
    g_assert_true (gk_key_store_update (store, key->id, &spec, NULL, &error));
    g_assert_no_error (error);
  }

  g_setenv (GK_MASTER_KEY_FILE_ENV, key_file, TRUE);
  window = gk_ui_test_open_window (db_path);
  page = gk_ui_test_window_child (window, "audit_page");
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.show-tab", "s", "audit"));
  gk_ui_test_spin (300);
  gk_ui_test_wait (audit_loaded, page, "the audit log to load");
  gk_ui_test_spin (300);

  for (guint i = 0; i < G_N_ELEMENTS (shown); i++)
    if (gk_ui_test_find_label (page, shown[i]) == NULL)
      g_error ("the Audit Log tab does not show “%s”", shown[i]);
  g_assert_null (gk_ui_test_find_label (page, "priority 7; daily tokens 100000; "
                                              "requests per minute 15"));

  gk_ui_test_close_window (window);
  g_unsetenv (GK_MASTER_KEY_FILE_ENV);
  gk_test_rm_rf (dir);
}

int
main (int argc, char *argv[])
{
  g_autofree char *localedir = NULL;
  g_autofree char *schema_dir = NULL;

  /* Vietnamese messages and Vietnamese dates and numbers. */
  g_setenv ("LANGUAGE", "vi", TRUE);
  g_setenv ("LC_ALL", "vi_VN.UTF-8", TRUE);
  if (setlocale (LC_ALL, "") == NULL)
    g_error ("The vi_VN.UTF-8 locale is not installed (./run test generates it with localedef)");
  localedir = g_build_filename (g_getenv ("GEMINI_KEYS_BUILD_ROOT"), "po", NULL);
  bindtextdomain (GETTEXT_PACKAGE, localedir);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  /* Not G_TEST_OPTION_ISOLATE_DIRS: without the system data dirs GTK cannot
   * sniff its own SVG icons in this locale. The run is hermetic anyway:
   * tests/keyring-session.sh gives it a throw-away HOME. */
  g_test_init (&argc, &argv, NULL);
  schema_dir = g_build_filename (g_getenv ("GEMINI_KEYS_BUILD_ROOT"), "data", NULL);
  g_setenv ("GSETTINGS_SCHEMA_DIR", schema_dir, TRUE);
  gtk_init ();
  gk_ui_test_adw_init ();

  g_test_add_func ("/i18n/vietnamese-window", test_no_english);
  g_test_add_func ("/i18n/vietnamese-audit-log", test_audit_log);

  return g_test_run ();
}
