/* test-pricing.c: the price list, tiers, model names and overrides.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gstdio.h>

#include "gk-test-util.h"

#define EPSILON 1e-12

static void
assert_cost (GkPricing  *pricing,
             const char *model,
             gint64      prompt,
             gint64      output,
             double      expected,
             gboolean    expected_priced)
{
  gboolean priced = !expected_priced;
  double cost = gk_pricing_cost (pricing, model, prompt, output, &priced);

  g_test_message ("%s: %" G_GINT64_FORMAT " in, %" G_GINT64_FORMAT " out", model, prompt, output);
  g_assert_cmpint (priced, ==, expected_priced);
  g_assert_cmpfloat_with_epsilon (cost, expected, EPSILON);
}

static void
test_builtin_models (void)
{
  g_autoptr(GkPricing) pricing = gk_pricing_new_default ();
  static const struct
  {
    const char *model;
    double      input;
    double      output;
  } models[] = {
    { "gemini-2.5-pro", 1.25, 10.0 },
    { "gemini-2.5-flash", 0.30, 2.50 },
    { "gemini-2.5-flash-lite", 0.10, 0.40 },
    { "gemini-2.0-flash", 0.10, 0.40 },
    { "gemini-2.0-flash-lite", 0.075, 0.30 },
    { "gemini-embedding-001", 0.15, 0.0 },
    { "text-embedding-004", 0.0, 0.0 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (models); i++)
    {
      /* Below every long-context tier: a tenth of the per-1M prices. */
      assert_cost (pricing, models[i].model, 100000, 100000,
                   (models[i].input + models[i].output) / 10, TRUE);
      assert_cost (pricing, models[i].model, 1000, 2000,
                   (1000 * models[i].input + 2000 * models[i].output) / 1e6, TRUE);
      assert_cost (pricing, models[i].model, 0, 0, 0.0, TRUE);
    }

  /* The worked example from the documented generateContent response. */
  assert_cost (pricing, "gemini-2.5-flash", 55021, 923 + 785,
               (55021 * 0.30 + 1708 * 2.50) / 1e6, TRUE);
}

static void
test_long_context_tier (void)
{
  g_autoptr(GkPricing) pricing = gk_pricing_new_default ();

  assert_cost (pricing, "gemini-2.5-pro", 200000, 1000, 0.25 + 0.01, TRUE);
  assert_cost (pricing, "gemini-2.5-pro", 200001, 1000, 200001 * 2.5 / 1e6 + 0.015, TRUE);
  /* The tier depends on the prompt only. */
  assert_cost (pricing, "gemini-2.5-pro", 1000, 500000, 1000 * 1.25 / 1e6 + 5.0, TRUE);
  /* Versions inherit the tiers. */
  assert_cost (pricing, "models/gemini-2.5-pro-preview-06-05", 300000, 0, 0.75, TRUE);
  /* Flash has no tier. */
  assert_cost (pricing, "gemini-2.5-flash", 300000, 0, 300000 * 0.30 / 1e6, TRUE);
}

static void
test_normalize (void)
{
  g_autoptr(GkPricing) pricing = gk_pricing_new_default ();
  static const struct
  {
    const char *model;
    const char *entry;
  } cases[] = {
    { "gemini-2.5-flash", "gemini-2.5-flash" },
    { "models/gemini-2.5-flash", "gemini-2.5-flash" },
    { "Models/Gemini-2.5-Flash", "gemini-2.5-flash" },
    { " gemini-2.5-flash\n", "gemini-2.5-flash" },
    { "gemini-2.5-flash-preview-05-20", "gemini-2.5-flash" },
    { "gemini-2.5-flash-lite", "gemini-2.5-flash-lite" },
    { "gemini-2.5-flash-lite-001", "gemini-2.5-flash-lite" },
    { "models/gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite" },
    { "gemini-2.5-pro-exp-03-25", "gemini-2.5-pro" },
    { "gemini-2.0-flash-001", "gemini-2.0-flash" },
    { "gemini-2.0-flash-lite-001", "gemini-2.0-flash-lite" },
    { "gemini-1.5-flash-8b-latest", "gemini-1.5-flash-8b" },
    { "gemini-1.5-flash-002", "gemini-1.5-flash" },
    { "gemini-embedding-001", "gemini-embedding-001" },
    { "models/text-embedding-004", "text-embedding-004" },
    /* A prefix counts only up to a "-". */
    { "gemini-2.5-flashy", NULL },
    { "gemini-2.5", NULL },
    { "gemini", NULL },
    { "gemini-3-pro-preview", NULL },
    { "gpt-4o", NULL },
    { "", NULL },
    { "models/", NULL },
    { "-", NULL },
    /* Families marked unpriced do not fall back to a shorter prefix. */
    { "gemini-2.5-flash-native-audio-preview-09-2025", NULL },
    { "gemini-2.0-flash-live-001", NULL },
  };

  g_assert_null (gk_pricing_normalize (pricing, NULL));
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *entry = gk_pricing_normalize (pricing, cases[i].model);
      gboolean priced;
      double cost;

      g_test_message ("model “%s”", cases[i].model);
      g_assert_cmpstr (entry, ==, cases[i].entry);

      cost = gk_pricing_cost (pricing, cases[i].model, 1000000, 1000000, &priced);
      g_assert_cmpint (priced, ==, cases[i].entry != NULL);
      if (cases[i].entry == NULL)
        g_assert_cmpfloat (cost, ==, 0.0);
    }
}

static void
test_unknown_and_odd_input (void)
{
  g_autoptr(GkPricing) pricing = gk_pricing_new_default ();

  assert_cost (pricing, "not-a-model", 1000000, 1000000, 0.0, FALSE);
  assert_cost (pricing, NULL, 1000000, 1000000, 0.0, FALSE);
  /* Negative counts are not refunds. */
  assert_cost (pricing, "gemini-2.5-flash", -100, -100, 0.0, TRUE);
  /* priced may be omitted. */
  g_assert_cmpfloat_with_epsilon (gk_pricing_cost (pricing, "gemini-2.5-flash", 1000000, 0, NULL),
                                  0.30, EPSILON);
}

static void
test_from_data (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkPricing) pricing = NULL;
  g_autofree char *entry = NULL;

  pricing = gk_pricing_new_from_data (
    "{\"version\":1,\"models\":{"
    " \"Tiered\":{\"input\":1,\"output\":2,\"tiers\":["
    "   {\"above_prompt_tokens\":1000,\"input\":10,\"output\":20},"
    "   {\"above_prompt_tokens\":100,\"input\":5}]},"
    " \"models/in-only\":{\"input\":4},"
    " \"blocked\":null}}",
    -1, &error);
  g_assert_no_error (error);
  g_assert_nonnull (pricing);

  /* Tiers are sorted; a tier without a price keeps the base one. */
  assert_cost (pricing, "tiered", 100, 1000000, 100 * 1 / 1e6 + 2.0, TRUE);
  assert_cost (pricing, "tiered", 101, 1000000, 101 * 5 / 1e6 + 2.0, TRUE);
  assert_cost (pricing, "tiered", 1000, 0, 1000 * 5 / 1e6, TRUE);
  assert_cost (pricing, "tiered-v2", 1001, 1000000, 1001 * 10 / 1e6 + 20.0, TRUE);
  assert_cost (pricing, "in-only", 1000000, 1000000, 4.0, TRUE);
  assert_cost (pricing, "blocked", 1000000, 1000000, 0.0, FALSE);
  assert_cost (pricing, "blocked-001", 1000000, 1000000, 0.0, FALSE);
  assert_cost (pricing, "gemini-2.5-flash", 1000000, 1000000, 0.0, FALSE);

  entry = gk_pricing_normalize (pricing, "models/in-only-latest");
  g_assert_cmpstr (entry, ==, "in-only");

  g_assert_finalize_object (g_steal_pointer (&pricing));
}

static void
test_from_data_errors (void)
{
  static const struct
  {
    const char *json;
    int         code;
  } cases[] = {
    { "", GK_PRICING_ERROR_PARSE },
    { "{", GK_PRICING_ERROR_PARSE },
    { "not json", GK_PRICING_ERROR_PARSE },
    { "\xff\xfe{}", GK_PRICING_ERROR_PARSE },
    { "[]", GK_PRICING_ERROR_INVALID },
    { "{}", GK_PRICING_ERROR_INVALID },
    { "{\"models\":[]}", GK_PRICING_ERROR_INVALID },
    { "{\"models\":{\"m\":\"cheap\"}}", GK_PRICING_ERROR_INVALID },
    { "{\"models\":{\"m\":{}}}", GK_PRICING_ERROR_INVALID },
    { "{\"models\":{\"m\":{\"input\":\"1\"}}}", GK_PRICING_ERROR_INVALID },
    { "{\"models\":{\"m\":{\"input\":-1}}}", GK_PRICING_ERROR_INVALID },
    { "{\"models\":{\"m\":{\"input\":1,\"output\":null}}}", GK_PRICING_ERROR_INVALID },
    { "{\"models\":{\"m\":{\"input\":1,\"tiers\":{}}}}", GK_PRICING_ERROR_INVALID },
    { "{\"models\":{\"m\":{\"input\":1,\"tiers\":[3]}}}", GK_PRICING_ERROR_INVALID },
    { "{\"models\":{\"m\":{\"input\":1,\"tiers\":[{\"input\":2}]}}}", GK_PRICING_ERROR_INVALID },
    { "{\"models\":{\"m\":{\"input\":1,\"tiers\":[{\"above_prompt_tokens\":1.5}]}}}",
      GK_PRICING_ERROR_INVALID },
    { "{\"models\":{\"m\":{\"input\":1,\"tiers\":[{\"above_prompt_tokens\":-1}]}}}",
      GK_PRICING_ERROR_INVALID },
    { "{\"models\":{\"m\":{\"input\":1,\"tiers\":[{\"above_prompt_tokens\":5,\"output\":-2}]}}}",
      GK_PRICING_ERROR_INVALID },
    { "{\"models\":{\"\":{\"input\":1}}}", GK_PRICING_ERROR_INVALID },
    { "{\"models\":{\"models/\":{\"input\":1}}}", GK_PRICING_ERROR_INVALID },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GkPricing) pricing = NULL;
      /* TAP output must be UTF-8: some cases are not. */
      g_autofree char *shown = g_strescape (cases[i].json, NULL);

      g_test_message ("json: %s", shown);
      pricing = gk_pricing_new_from_data (cases[i].json, -1, &error);
      g_assert_null (pricing);
      g_assert_error (error, GK_PRICING_ERROR, cases[i].code);
      g_assert_true (g_utf8_validate (error->message, -1, NULL));
    }
}

static void
write_override (const char *contents)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_build_filename (g_get_user_config_dir (), "gemini-keys", NULL);
  g_autofree char *path = g_build_filename (dir, "pricing.json", NULL);

  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  g_file_set_contents (path, contents, -1, &error);
  g_assert_no_error (error);
}

static void
test_override_merge (void)
{
  g_autoptr(GkPricing) pricing = NULL;
  g_autofree char *entry = NULL;

  write_override ("{\"models\":{"
                  " \"models/Gemini-2.5-Flash\":{\"input\":1,\"output\":2},"
                  " \"my-tuned-model\":{\"input\":3,\"output\":4},"
                  " \"gemini-2.5-pro\":{\"input\":5,\"output\":6},"
                  " \"gemini-2.0-flash\":null}}");
  pricing = gk_pricing_new_default ();

  /* Replaced per model. */
  assert_cost (pricing, "gemini-2.5-flash-preview-05-20", 1000000, 1000000, 3.0, TRUE);
  /* Added. */
  assert_cost (pricing, "my-tuned-model", 1000000, 1000000, 7.0, TRUE);
  /* A replaced entry does not keep the built-in tiers. */
  assert_cost (pricing, "gemini-2.5-pro", 300000, 0, 300000 * 5 / 1e6, TRUE);
  /* null takes a built-in price away without falling back to a prefix. */
  assert_cost (pricing, "gemini-2.0-flash", 1000000, 1000000, 0.0, FALSE);
  assert_cost (pricing, "gemini-2.0-flash-001", 1000000, 1000000, 0.0, FALSE);
  /* Untouched built-ins stay, including the longer name next to an override. */
  assert_cost (pricing, "gemini-2.5-flash-lite", 1000000, 1000000, 0.50, TRUE);
  assert_cost (pricing, "gemini-2.0-flash-lite", 1000000, 1000000, 0.375, TRUE);

  entry = gk_pricing_normalize (pricing, "models/gemini-2.5-flash-001");
  g_assert_cmpstr (entry, ==, "gemini-2.5-flash");
}

static void
test_override_malformed (void)
{
  static const char *const bad[] = {
    "{ \"models\": { \"gemini-2.5-flash\": { \"input\": 99 ",
    "{\"models\":{\"gemini-2.5-flash\":{\"input\":99},\"broken\":{\"input\":-1}}}",
    "\xff\xfe",
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GkPricing) pricing = NULL;

      write_override (bad[i]);
      g_test_expect_message ("gk-pricing", G_LOG_LEVEL_WARNING, "Ignoring the price list*");
      pricing = gk_pricing_new_default ();
      g_test_assert_expected_messages ();

      /* Nothing of the bad file is used, not even its valid entries. */
      assert_cost (pricing, "gemini-2.5-flash", 1000000, 1000000, 2.80, TRUE);
      assert_cost (pricing, "broken", 1000000, 1000000, 0.0, FALSE);
    }
}

static void
test_override_absent (void)
{
  g_autoptr(GkPricing) pricing = NULL;
  g_autofree char *dir = g_build_filename (g_get_user_config_dir (), "gemini-keys", NULL);

  /* No folder at all, then an empty folder: neither is worth a warning. */
  pricing = gk_pricing_new_default ();
  assert_cost (pricing, "gemini-2.5-flash", 1000000, 1000000, 2.80, TRUE);
  g_clear_object (&pricing);

  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  pricing = gk_pricing_new_default ();
  assert_cost (pricing, "gemini-2.5-pro", 100000, 0, 0.125, TRUE);
  g_assert_finalize_object (g_steal_pointer (&pricing));
}

typedef struct
{
  GkPricing *pricing;
  double     total;
} ThreadData;

static gpointer
cost_thread (gpointer user_data)
{
  ThreadData *data = user_data;

  for (guint i = 0; i < 20000; i++)
    {
      gboolean priced;

      data->total += gk_pricing_cost (data->pricing, "models/gemini-2.5-pro-preview", 300000,
                                      1000, &priced);
      g_assert_true (priced);
    }
  return NULL;
}

static void
test_threads (void)
{
  g_autoptr(GkPricing) pricing = gk_pricing_new_default ();
  ThreadData data[4];
  GThread *threads[4];

  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      data[i].pricing = pricing;
      data[i].total = 0;
      threads[i] = g_thread_new ("cost", cost_thread, &data[i]);
    }
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      g_thread_join (threads[i]);
      g_assert_cmpfloat_with_epsilon (data[i].total, 20000 * (0.75 + 0.015), 1e-6);
    }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add_func ("/pricing/builtin-models", test_builtin_models);
  g_test_add_func ("/pricing/long-context-tier", test_long_context_tier);
  g_test_add_func ("/pricing/normalize", test_normalize);
  g_test_add_func ("/pricing/unknown", test_unknown_and_odd_input);
  g_test_add_func ("/pricing/from-data", test_from_data);
  g_test_add_func ("/pricing/from-data-errors", test_from_data_errors);
  g_test_add_func ("/pricing/override/merge", test_override_merge);
  g_test_add_func ("/pricing/override/malformed", test_override_malformed);
  g_test_add_func ("/pricing/override/absent", test_override_absent);
  g_test_add_func ("/pricing/threads", test_threads);

  return g_test_run ();
}
