/* gk-pricing.h: USD cost of a request from pricing.json.
 *
 * The built-in table (resource pricing.json) is overridden by
 * $XDG_CONFIG_HOME/gemini-keys/pricing.json. Model names are normalised
 * ("models/" prefix dropped, version suffixes matched by longest prefix).
 * An unknown model costs 0 and is reported as unpriced, never guessed.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-types.h"

G_BEGIN_DECLS

#define GK_PRICING_ERROR (gk_pricing_error_quark ())

typedef enum
{
  GK_PRICING_ERROR_PARSE,
  GK_PRICING_ERROR_INVALID,
} GkPricingError;

#define GK_TYPE_PRICING (gk_pricing_get_type ())
G_DECLARE_FINAL_TYPE (GkPricing, gk_pricing, GK, PRICING, GObject)

GQuark     gk_pricing_error_quark  (void);

/* The built-in table merged with the user's override file, if any. A
 * malformed override is reported with g_warning and ignored. */
GkPricing *gk_pricing_new_default  (void);
/* A table from JSON text (tests, override files). */
GkPricing *gk_pricing_new_from_data (const char *json,
                                     gssize      len,
                                     GError    **error);

/* Cost in USD; *@priced is FALSE (and the cost 0) for an unknown model. */
double     gk_pricing_cost         (GkPricing  *self,
                                    const char *model,
                                    gint64      prompt_tokens,
                                    gint64      output_tokens,
                                    gboolean   *priced);
/* The canonical pricing entry name for @model, or NULL when unknown. */
char      *gk_pricing_normalize    (GkPricing  *self,
                                    const char *model);

G_END_DECLS
