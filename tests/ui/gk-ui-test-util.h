/* gk-ui-test-util.h: helpers shared by the UI tests.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <adwaita.h>

#include "gk-backend.h"
#include "gk-window.h"

G_BEGIN_DECLS

/* Long enough for a loaded CI machine; a hang still fails. */
#define GK_UI_TEST_TIMEOUT_S 20

typedef gboolean (*GkUiTestCondition) (gpointer data);

/* Call after gtk_test_init () or gtk_init (): the C.UTF-8 locale and
 * English messages, whatever locales the machine has and whatever the
 * environment asks for. gtk_test_init () switches to en_US.UTF-8 where that
 * exists and gtk_init () to the environment's locale, so any text compared
 * with a literal would depend on the machine. A test of another locale sets
 * that locale itself. */
void       gk_ui_test_fixed_locale (void);

/* adw_init () and the app's stylesheets, as AdwApplication loads them for
 * the app (style.css, and style-dark.css while the style is dark): the
 * tests measure the widths the app has. Call instead of adw_init (). */
void       gk_ui_test_adw_init     (void);

/* Iterates the default main context until @condition holds; fails the test
 * with @what after GK_UI_TEST_TIMEOUT_S. */
void       gk_ui_test_wait      (GkUiTestCondition  condition,
                                 gpointer           data,
                                 const char        *what);
/* Iterates for @ms milliseconds (to show that something did NOT happen). */
void       gk_ui_test_spin      (guint              ms);

/* The first toplevel of @type, or NULL. */
GtkWidget *gk_ui_test_find_toplevel (GType          type);

/* A window over a backend for the database at @db_path, presented and
 * loaded (the "loaded" signal ran). */
GkWindow  *gk_ui_test_open_window (const char      *db_path);
/* The same, @width × @height from the start. */
GkWindow  *gk_ui_test_open_window_sized (const char *db_path,
                                         int         width,
                                         int         height);
/* A template child of the window ("keys_page", "unlock_page", …). */
gpointer   gk_ui_test_window_child (GkWindow       *window,
                                    const char     *name);
/* Destroys the window and waits until the backend is finalized. */
void       gk_ui_test_close_window (GkWindow       *window);

/* TRUE when @path (or its -wal) contains @needle. */
gboolean   gk_ui_test_file_contains (const char    *path,
                                     const char    *needle);

/* Runs @sql on @db (a fixture's rows); fails the test on an error. */
void       gk_ui_test_exec_sql    (GkDatabase      *db,
                                   const char      *sql);
/* A backend for the database at @db_path, loaded (unlocked). */
GkBackend *gk_ui_test_backend_new (const char      *db_path);
/* Drops the last reference to @object and fails the test unless it is
 * finalized soon after. */
void       gk_ui_test_finalize_object (gpointer     object);

/* Runs the main loop briefly (what it dispatches must not wait for the
 * database either); returns the µs since @start, the caller's work included. */
gint64     gk_ui_test_spin_since  (gint64           start);

/* Another thread holding @db's lock, as a long write would. */
typedef struct _GkUiTestHolder GkUiTestHolder;

/* Returns once the other thread holds the lock. */
GkUiTestHolder *gk_ui_test_hold_database (GkDatabase     *db);
/* Lets the lock go and frees @holder. */
void       gk_ui_test_holder_release (GkUiTestHolder   *holder);

/* One request (@body: a JSON body, or NULL) to the gateway listening on
 * @port, with @token as its key, sent from another thread while the main
 * loop runs; returns the answer's HTTP status. */
int        gk_ui_test_gateway_request (guint        port,
                                       const char  *method,
                                       const char  *path,
                                       const char  *token,
                                       const char  *body);

/* The first GtkLabel below @root (or @root) whose label is @text, or NULL. */
GtkWidget *gk_ui_test_find_label  (GtkWidget       *root,
                                   const char      *text);
/* The first widget of @type below @root (or @root), or NULL. */
GtkWidget *gk_ui_test_find_type   (GtkWidget       *root,
                                   GType            type);

/* Exports through @root's Export menu as the user does: chooses "csv" or
 * "xlsx" in the menu, @path in the file chooser, waits until the file is
 * written; returns the outcome shown ("Exported 3 rows"). */
const char *gk_ui_test_export     (GtkWidget       *root,
                                   const char      *format,
                                   const char      *path);
/* Opens the workbook at @path (a zip of XML, with tests/cli/check-xlsx.py)
 * and checks its first sheet: the header (comma-separated), the frozen
 * header row, @rows data rows and the types of the first row's cells. */
void       gk_ui_test_check_xlsx  (const char      *path,
                                   const char      *header,
                                   guint            rows,
                                   const char      *types);

G_END_DECLS
