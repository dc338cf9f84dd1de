/* gk-i18n.c: locale and message catalogue set-up shared by the programs.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <locale.h>

#include "gk-i18n.h"

void
gk_i18n_init (void)
{
  const char *localedir = g_getenv ("GEMINI_KEYS_LOCALEDIR");

  /* An empty value counts as unset, as for the XDG variables. */
  if (localedir == NULL || *localedir == '\0')
    localedir = LOCALEDIR;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, localedir);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
}
