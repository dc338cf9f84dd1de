/* main.c: the gemini-keys desktop application.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <locale.h>

#include "gk-application.h"
#include "gk-hardening.h"

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GkApplication) app = NULL;
  const char *localedir;
  int status;

  /* The app decrypts keys: no core dumps, no ptrace by other processes. */
  gk_hardening_init ();

  /* GEMINI_KEYS_LOCALEDIR lets the build tree's translations be used
   * before installing (screenshots, tests). */
  localedir = g_getenv ("GEMINI_KEYS_LOCALEDIR");
  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, localedir != NULL ? localedir : LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  g_set_application_name (_("Gemini Keys"));

  app = gk_application_new ();
  status = g_application_run (G_APPLICATION (app), argc, argv);

  return gk_application_get_failed (app) ? 1 : status;
}
