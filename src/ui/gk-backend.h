/* gk-backend.h: the GUI's handle on the core engine.
 *
 * Holds the database, and once the master key is unlocked the key store
 * and the pool. Pages read through it with core calls run in worker
 * threads (g_task_run_in_thread); nothing here blocks the main thread.
 * "changed" is emitted on the main thread whenever the data may have
 * changed: our own writes, another process's (polled), quota resets.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-core.h"

G_BEGIN_DECLS

#define GK_TYPE_BACKEND (gk_backend_get_type ())
G_DECLARE_FINAL_TYPE (GkBackend, gk_backend, GK, BACKEND, GObject)

GkDatabase *gk_backend_get_database  (GkBackend *self);
/* NULL until unlocked. */
GkKeyStore *gk_backend_get_key_store (GkBackend *self);
GkPool     *gk_backend_get_pool      (GkBackend *self);
/* Emits "changed" (after a write the caller made). */
void        gk_backend_notify_changed (GkBackend *self);

G_END_DECLS
