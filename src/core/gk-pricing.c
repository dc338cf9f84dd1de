/* gk-pricing.c: USD cost of a request from pricing.json.
 *
 * The table is read once and never changed afterwards, so one GkPricing can
 * be shared by every thread without locking.
 *
 * The format (USD per 1M tokens):
 *
 *   { "models": {
 *       "gemini-2.5-pro": { "input": 1.25, "output": 10.0,
 *                           "tiers": [ { "above_prompt_tokens": 200000,
 *                                        "input": 2.5, "output": 15.0 } ] },
 *       "gemini-2.5-flash-native-audio": null } }
 *
 * A tier applies to the whole request when the prompt has more tokens than
 * above_prompt_tokens; a tier without input or output keeps the base price.
 * null marks a model (family) as unpriced: its versions are then not priced
 * by a shorter prefix. Other top-level members are ignored.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#define G_LOG_DOMAIN "gk-pricing"

#include "config.h"

#include <glib/gi18n.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "gk-core-resources.h"
#include "gk-pricing.h"

#define BUILTIN_RESOURCE  "/io/github/geminikeys/GeminiKeys/core/pricing.json"
#define OVERRIDE_DIR      "gemini-keys"
#define OVERRIDE_FILE     "pricing.json"
#define TOKENS_PER_UNIT   1e6

typedef struct
{
  gint64 above_prompt_tokens;
  double input;
  double output;
} PriceTier;

typedef struct
{
  gboolean  priced;
  double    input;
  double    output;
  GArray   *tiers;   /* PriceTier, ascending above_prompt_tokens */
} PriceEntry;

struct _GkPricing
{
  GObject     parent_instance;
  GHashTable *models;   /* normalised name → PriceEntry */
};

G_DEFINE_FINAL_TYPE (GkPricing, gk_pricing, G_TYPE_OBJECT)
G_DEFINE_QUARK (gk-pricing-error-quark, gk_pricing_error)

static void
price_entry_free (PriceEntry *entry)
{
  g_clear_pointer (&entry->tiers, g_array_unref);
  g_free (entry);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PriceEntry, price_entry_free)

static void
gk_pricing_finalize (GObject *object)
{
  GkPricing *self = (GkPricing *) object;

  g_clear_pointer (&self->models, g_hash_table_unref);

  G_OBJECT_CLASS (gk_pricing_parent_class)->finalize (object);
}

static void
gk_pricing_class_init (GkPricingClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gk_pricing_finalize;
}

static void
gk_pricing_init (GkPricing *self)
{
  self->models = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify) price_entry_free);
}

/* "models/Gemini-2.5-Flash " → "gemini-2.5-flash". Resource paths such as
 * "publishers/google/models/x" lose everything up to the last slash. */
static char *
normalize_name (const char *model)
{
  g_autofree char *lower = g_ascii_strdown (model, -1);
  const char *slash;

  g_strstrip (lower);
  slash = strrchr (lower, '/');
  if (slash != NULL)
    return g_strdup (slash + 1);
  return g_steal_pointer (&lower);
}

static gboolean
read_price (JsonObject  *object,
            const char  *member,
            const char  *model,
            gboolean     required,
            double      *price,
            GError     **error)
{
  JsonNode *node = json_object_get_member (object, member);
  GType type;
  double value;

  if (node == NULL)
    {
      if (!required)
        return TRUE;
      g_set_error (error, GK_PRICING_ERROR, GK_PRICING_ERROR_INVALID,
                   _("The price of “%s” has no “%s” value"), model, member);
      return FALSE;
    }

  type = JSON_NODE_HOLDS_VALUE (node) ? json_node_get_value_type (node) : G_TYPE_INVALID;
  if (type == G_TYPE_INT64)
    value = (double) json_node_get_int (node);
  else if (type == G_TYPE_DOUBLE)
    value = json_node_get_double (node);
  else
    value = NAN;

  if (!isfinite (value) || value < 0)
    {
      g_set_error (error, GK_PRICING_ERROR, GK_PRICING_ERROR_INVALID,
                   _("The “%s” price of “%s” must be a number of at least 0"), member, model);
      return FALSE;
    }
  *price = value;
  return TRUE;
}

static int
compare_tiers (gconstpointer a,
               gconstpointer b)
{
  const PriceTier *ta = a, *tb = b;

  return (ta->above_prompt_tokens > tb->above_prompt_tokens)
         - (ta->above_prompt_tokens < tb->above_prompt_tokens);
}

static gboolean
read_tiers (JsonNode    *node,
            PriceEntry  *entry,
            const char  *model,
            GError     **error)
{
  JsonArray *array;
  guint n;

  if (!JSON_NODE_HOLDS_ARRAY (node))
    {
      g_set_error (error, GK_PRICING_ERROR, GK_PRICING_ERROR_INVALID,
                   _("The tiers of “%s” must be a list"), model);
      return FALSE;
    }

  array = json_node_get_array (node);
  n = json_array_get_length (array);
  for (guint i = 0; i < n; i++)
    {
      JsonNode *element = json_array_get_element (array, i);
      JsonObject *object;
      JsonNode *above;
      PriceTier tier;

      if (!JSON_NODE_HOLDS_OBJECT (element))
        {
          g_set_error (error, GK_PRICING_ERROR, GK_PRICING_ERROR_INVALID,
                       _("Each tier of “%s” must be an object"), model);
          return FALSE;
        }
      object = json_node_get_object (element);
      above = json_object_get_member (object, "above_prompt_tokens");
      if (above == NULL || !JSON_NODE_HOLDS_VALUE (above)
          || json_node_get_value_type (above) != G_TYPE_INT64
          || json_node_get_int (above) < 0)
        {
          g_set_error (error, GK_PRICING_ERROR, GK_PRICING_ERROR_INVALID,
                       _("Each tier of “%s” needs a whole, non-negative above_prompt_tokens"),
                       model);
          return FALSE;
        }

      tier.above_prompt_tokens = json_node_get_int (above);
      tier.input = entry->input;
      tier.output = entry->output;
      if (!read_price (object, "input", model, FALSE, &tier.input, error)
          || !read_price (object, "output", model, FALSE, &tier.output, error))
        return FALSE;

      if (entry->tiers == NULL)
        entry->tiers = g_array_new (FALSE, FALSE, sizeof (PriceTier));
      g_array_append_val (entry->tiers, tier);
    }

  if (entry->tiers != NULL)
    g_array_sort (entry->tiers, compare_tiers);
  return TRUE;
}

static PriceEntry *
read_entry (JsonNode    *node,
            const char  *model,
            GError     **error)
{
  g_autoptr(PriceEntry) entry = g_new0 (PriceEntry, 1);
  JsonObject *object;
  JsonNode *tiers;

  if (JSON_NODE_HOLDS_NULL (node))
    return g_steal_pointer (&entry);

  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      g_set_error (error, GK_PRICING_ERROR, GK_PRICING_ERROR_INVALID,
                   _("The price of “%s” must be an object or null"), model);
      return NULL;
    }

  object = json_node_get_object (node);
  if (!read_price (object, "input", model, TRUE, &entry->input, error)
      || !read_price (object, "output", model, FALSE, &entry->output, error))
    return NULL;

  tiers = json_object_get_member (object, "tiers");
  if (tiers != NULL && !read_tiers (tiers, entry, model, error))
    return NULL;

  entry->priced = TRUE;
  return g_steal_pointer (&entry);
}

static gboolean
load_table (GHashTable  *models,
            const char  *json,
            gssize       len,
            GError     **error)
{
  g_autoptr(JsonParser) parser = json_parser_new_immutable ();
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GHashTable) table = NULL;
  JsonNode *root;
  JsonNode *models_node;
  JsonObjectIter iter;
  const char *name;
  JsonNode *node;

  if (len < 0)
    len = (gssize) strlen (json);
  if (!g_utf8_validate (json, len, NULL)
      || !json_parser_load_from_data (parser, json, len, &local_error)
      || (root = json_parser_get_root (parser)) == NULL)
    {
      g_set_error (error, GK_PRICING_ERROR, GK_PRICING_ERROR_PARSE,
                   _("The price list is not valid JSON: %s"),
                   local_error != NULL ? local_error->message : _("not UTF-8 text, or empty"));
      return FALSE;
    }

  if (!JSON_NODE_HOLDS_OBJECT (root)
      || (models_node = json_object_get_member (json_node_get_object (root), "models")) == NULL
      || !JSON_NODE_HOLDS_OBJECT (models_node))
    {
      g_set_error_literal (error, GK_PRICING_ERROR, GK_PRICING_ERROR_INVALID,
                           _("The price list has no “models” object"));
      return FALSE;
    }

  /* Collect into a separate table so a bad entry leaves @models as it was. */
  table = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                 (GDestroyNotify) price_entry_free);
  json_object_iter_init (&iter, json_node_get_object (models_node));
  while (json_object_iter_next (&iter, &name, &node))
    {
      g_autofree char *normalized = normalize_name (name);
      PriceEntry *entry;

      if (*normalized == '\0')
        {
          g_set_error_literal (error, GK_PRICING_ERROR, GK_PRICING_ERROR_INVALID,
                               _("The price list has a model without a name"));
          return FALSE;
        }
      entry = read_entry (node, name, error);
      if (entry == NULL)
        return FALSE;
      g_hash_table_replace (table, g_steal_pointer (&normalized), entry);
    }

  {
    GHashTableIter hiter;
    gpointer key, value;

    /* Entries of the later table replace whole entries of the earlier one:
     * an override of a model's price must not inherit stale tiers. */
    g_hash_table_iter_init (&hiter, table);
    while (g_hash_table_iter_next (&hiter, &key, &value))
      {
        g_hash_table_iter_steal (&hiter);
        g_hash_table_replace (models, key, value);
      }
  }
  return TRUE;
}

/**
 * gk_pricing_new_from_data:
 * @json: the price list
 * @len: its length, or -1 when nul-terminated
 * @error: a #GK_PRICING_ERROR
 *
 * Returns: (transfer full): the price list, or %NULL when @json is malformed.
 */
GkPricing *
gk_pricing_new_from_data (const char  *json,
                          gssize       len,
                          GError     **error)
{
  g_autoptr(GkPricing) self = NULL;

  g_return_val_if_fail (json != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  self = g_object_new (GK_TYPE_PRICING, NULL);
  if (!load_table (self->models, json, len, error))
    return NULL;
  return g_steal_pointer (&self);
}

static void
merge_user_overrides (GkPricing *self)
{
  g_autofree char *path = g_build_filename (g_get_user_config_dir (), OVERRIDE_DIR,
                                            OVERRIDE_FILE, NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize len;

  if (!g_file_get_contents (path, &contents, &len, &error))
    {
      if (!g_error_matches (error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        g_warning ("Ignoring the price list %s: %s", path, error->message);
      return;
    }

  if (!load_table (self->models, contents, (gssize) len, &error))
    g_warning ("Ignoring the price list %s: %s", path, error->message);
}

/**
 * gk_pricing_new_default:
 *
 * Returns: (transfer full): the built-in price list with the user's
 *   overrides merged in per model.
 */
GkPricing *
gk_pricing_new_default (void)
{
  g_autoptr(GkPricing) self = g_object_new (GK_TYPE_PRICING, NULL);
  g_autoptr(GBytes) builtin = NULL;
  g_autoptr(GError) error = NULL;
  gsize len;
  const char *data;

  /* Referencing the resource directly also keeps its object file linked
   * in from the static library. */
  builtin = g_resource_lookup_data (gk_core_get_resource (), BUILTIN_RESOURCE,
                                    G_RESOURCE_LOOKUP_FLAGS_NONE, &error);
  g_assert_no_error (error);

  data = g_bytes_get_data (builtin, &len);
  if (!load_table (self->models, data, (gssize) len, &error))
    g_error ("The built-in price list is broken: %s", error->message);

  merge_user_overrides (self);
  return g_steal_pointer (&self);
}

/* The entry for @model: an exact match, else the longest entry that is a
 * prefix of @model followed by "-" (a version suffix). */
static const char *
lookup (GkPricing         *self,
        const char        *model,
        const PriceEntry **entry_out)
{
  g_autofree char *name = NULL;
  char *dash;
  gpointer key, value;

  *entry_out = NULL;
  if (model == NULL)
    return NULL;

  name = normalize_name (model);
  for (;;)
    {
      if (g_hash_table_lookup_extended (self->models, name, &key, &value))
        {
          *entry_out = value;
          return key;
        }
      dash = strrchr (name, '-');
      if (dash == NULL || dash == name)
        return NULL;
      *dash = '\0';
    }
}

/**
 * gk_pricing_cost:
 * @self: the price list
 * @model: a model name as a client or upstream gave it
 * @prompt_tokens: input tokens (the prompt, including cached and tool-use
 *   prompt tokens)
 * @output_tokens: candidates + thoughts
 * @priced: (out) (optional): %FALSE when the model has no price
 *
 * Returns: the cost in USD, 0 for an unpriced model.
 */
double
gk_pricing_cost (GkPricing  *self,
                 const char *model,
                 gint64      prompt_tokens,
                 gint64      output_tokens,
                 gboolean   *priced)
{
  const PriceEntry *entry;
  double input, output;

  if (priced != NULL)
    *priced = FALSE;
  g_return_val_if_fail (GK_IS_PRICING (self), 0.0);

  lookup (self, model, &entry);
  if (entry == NULL || !entry->priced)
    return 0.0;

  prompt_tokens = MAX (prompt_tokens, 0);
  output_tokens = MAX (output_tokens, 0);

  input = entry->input;
  output = entry->output;
  for (guint i = 0; entry->tiers != NULL && i < entry->tiers->len; i++)
    {
      const PriceTier *tier = &g_array_index (entry->tiers, PriceTier, i);

      if (prompt_tokens <= tier->above_prompt_tokens)
        break;
      input = tier->input;
      output = tier->output;
    }

  if (priced != NULL)
    *priced = TRUE;
  return ((double) prompt_tokens * input + (double) output_tokens * output) / TOKENS_PER_UNIT;
}

/**
 * gk_pricing_normalize:
 * @self: the price list
 * @model: a model name
 *
 * Returns: (transfer full) (nullable): the entry that prices @model, or
 *   %NULL when none does.
 */
char *
gk_pricing_normalize (GkPricing  *self,
                      const char *model)
{
  const PriceEntry *entry;
  const char *name;

  g_return_val_if_fail (GK_IS_PRICING (self), NULL);

  name = lookup (self, model, &entry);
  if (entry == NULL || !entry->priced)
    return NULL;
  return g_strdup (name);
}
