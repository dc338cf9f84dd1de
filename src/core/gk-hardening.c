/* gk-hardening.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <errno.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "gk-hardening.h"

void
gk_hardening_init (void)
{
  struct rlimit no_core = { 0, 0 };

  /* Decrypted keys live in this process's memory for a moment at a time; a
   * core dump or a debugger attached by another program of the same user
   * would see them. Non-dumpable also makes /proc/PID/mem and environ
   * readable by root only. */
  if (prctl (PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
    g_warning ("Cannot turn off core dumps: %s", g_strerror (errno));

  /* Belt and braces: a core handler may ignore the dumpable flag for some
   * signals when core_pattern pipes to a program. */
  if (setrlimit (RLIMIT_CORE, &no_core) != 0)
    g_warning ("Cannot set the core size limit to 0: %s", g_strerror (errno));
}
