/* gk-audit-page.h: the audit log, who changed what.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <adwaita.h>

#include "gk-backend.h"

G_BEGIN_DECLS

#define GK_TYPE_AUDIT_PAGE (gk_audit_page_get_type ())
G_DECLARE_FINAL_TYPE (GkAuditPage, gk_audit_page, GK, AUDIT_PAGE, AdwBin)

GtkWidget  *gk_audit_page_new         (void);
/* Reads the log when the page is shown, and whenever @backend emits
 * "changed" while it is. */
void        gk_audit_page_set_backend (GkAuditPage  *self,
                                       GkBackend    *backend);
/* TRUE while a reload runs ("notify::loading" tells when it ends). */
gboolean    gk_audit_page_get_loading (GkAuditPage  *self);

G_END_DECLS
