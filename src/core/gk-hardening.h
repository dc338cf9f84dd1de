/* gk-hardening.h: process-wide protections for programs that hold keys.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Call first in main() of every program that decrypts keys: no core file
 * and no ptrace attach by other processes of the same user
 * (PR_SET_DUMPABLE 0), and a core size limit of 0 so a crash writes no
 * plaintext to disk. Failures are logged, never fatal. */
void gk_hardening_init (void);

G_END_DECLS
