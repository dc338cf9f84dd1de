/* main.c: the gemini-keys desktop application.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-application.h"
#include "gk-hardening.h"
#include "gk-i18n.h"

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GkApplication) app = NULL;
  int status;

  /* The app decrypts keys: no core dumps, no ptrace by other processes. */
  gk_hardening_init ();
  gk_i18n_init ();

  g_set_application_name (_("Gemini Keys"));

  app = gk_application_new ();
  status = g_application_run (G_APPLICATION (app), argc, argv);

  return gk_application_get_failed (app) ? 1 : status;
}
