/* gk-notifier.h: desktop notifications (GNotification) about the pool.
 *
 * A key's quota below 10%, the last hour's success rate below 90% (at most
 * once an hour), a key invalidated, a budget reached, and rotations. Each
 * kind can be turned off in Preferences; activating a notification opens
 * the matching tab (app.show-tab).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-backend.h"

G_BEGIN_DECLS

#define GK_TYPE_NOTIFIER (gk_notifier_get_type ())
G_DECLARE_FINAL_TYPE (GkNotifier, gk_notifier, GK, NOTIFIER, GObject)

GkNotifier    *gk_notifier_new                (GApplication  *application,
                                               GkBackend     *backend);

/* The GSettings key that turns @kind off, and the notification for @alert:
 * its id and the tab its default action opens. */
const char    *gk_notifier_settings_key       (GkAlertKind    kind);
/* The application's GSettings, or NULL when the schema is not installed. */
GSettings     *gk_notifier_settings_new       (void);
GNotification *gk_notifier_build_notification (const GkAlert *alert,
                                               char         **id_out);

G_END_DECLS
