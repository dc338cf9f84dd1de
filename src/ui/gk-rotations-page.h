/* gk-rotations-page.h: the rotation history and its totals.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <adwaita.h>

#include "gk-backend.h"

G_BEGIN_DECLS

#define GK_TYPE_ROTATIONS_PAGE (gk_rotations_page_get_type ())
G_DECLARE_FINAL_TYPE (GkRotationsPage, gk_rotations_page, GK, ROTATIONS_PAGE, AdwBin)

GtkWidget  *gk_rotations_page_new         (void);
/* Reloads now and whenever @backend emits "changed". */
void        gk_rotations_page_set_backend (GkRotationsPage  *self,
                                           GkBackend        *backend);
/* TRUE while a reload runs ("notify::loading" tells when it ends). */
gboolean    gk_rotations_page_get_loading (GkRotationsPage  *self);

/* Translated labels, shared with the dashboard's rotation table. */
const char *gk_rotation_reason_label      (GkRotationReason  reason);
/* The reason, with "(spike)" when @row lies in a rotation spike. */
char       *gk_rotation_reason_label_full (const GkRotationRow *row);
/* "auto" → "Automatic", "manual:NAME" → "Manual (NAME)". */
char       *gk_rotation_trigger_label     (const char       *triggered_by);

G_END_DECLS
