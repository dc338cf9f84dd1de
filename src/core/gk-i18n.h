/* gk-i18n.h: locale and message catalogue set-up shared by the programs.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Call early in main() of every program that shows translated text: sets
 * the locale from the environment and binds the gettext domain to
 * $GEMINI_KEYS_LOCALEDIR when it is set (the build tree's catalogues, as
 * `meson devenv` sets it) and to the installed LOCALEDIR otherwise. */
void gk_i18n_init (void);

G_END_DECLS
