/* gk-rotations-page.h
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <adwaita.h>

#include "gk-backend.h"

G_BEGIN_DECLS

#define GK_TYPE_ROTATIONS_PAGE (gk_rotations_page_get_type ())
G_DECLARE_FINAL_TYPE (GkRotationsPage, gk_rotations_page, GK, ROTATIONS_PAGE, AdwBin)

GtkWidget *gk_rotations_page_new         (void);
void       gk_rotations_page_set_backend (GkRotationsPage *self,
                                     GkBackend  *backend);

G_END_DECLS
