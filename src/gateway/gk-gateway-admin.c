/* gk-gateway-admin.c: the admin REST API under /admin/gemini-keys/.
 *
 *   /                 GET list, POST create (the key in "api_key")
 *   /{id}             GET, PUT (fields to change), DELETE
 *   /{id}/rotate      POST: take the key out of service by hand
 *   /dashboard        GET ?days=7|30
 *   /usage-logs       GET ?key_id=&limit=&offset=
 *   /rotation-logs    GET ?limit= (rows in a spike hour have "in_spike": true)
 *   /audit-logs       GET ?limit=&offset=: who did what, newest first
 *   /compare          GET ?days=1…366 (default 7): the key comparison
 *   /forecast         GET: when each key's quotas run out at the current rate
 *   /rotation-spikes  GET ?days=1…366 (default 7)
 *   /hygiene          GET keys worth deleting and the master key's age
 *   /budget           GET today's and this month's spend; PUT {"monthly_budget_usd":
 *                     USD or null}: the whole pool's monthly budget
 *   /quotas/reset     POST {"type": "all"|"monthly"|"daily"|"minute"} (none = all)
 *
 * Bodies are checked strictly: integers must be JSON integers in range,
 * booleans booleans, the budget a number of dollars (0 or more) or null,
 * and a field the API does not know is refused with a 400 naming it.
 *
 * The records are written by gk-json.c, in the same shape as the CLI's --json
 * output; field names follow the seed's columns.
 * Keys only ever appear masked.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#define G_LOG_DOMAIN "gk-gateway"

#include "config.h"

#include <math.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "gk-gateway-private.h"

#define ADMIN_WHO             "manual:admin"
#define DEFAULT_LOG_LIMIT     50
#define MAX_LOG_LIMIT         500

static const struct
{
  const char  *field;
  GkQuotaSlot  slot;
} quota_fields[] = {
  { "monthly_quota", GK_QUOTA_SLOT_MONTHLY_TOKENS },
  { "daily_quota",   GK_QUOTA_SLOT_DAILY_TOKENS },
  { "minute_quota",  GK_QUOTA_SLOT_MINUTE_TOKENS },
  { "rpd",           GK_QUOTA_SLOT_DAILY_REQUESTS },
  { "rpm",           GK_QUOTA_SLOT_MINUTE_REQUESTS },
};

/* The admin API's own input errors: a 400 naming the field. */
G_DEFINE_QUARK (gk-gateway-admin-error-quark, admin_error)

static void
respond_node (GkExchange        *msg,
              guint              status,
              JsonBuilder       *builder)
{
  g_autoptr(JsonNode) root = json_builder_get_root (builder);

  gk_gateway_respond_json (msg, status, json_to_string (root, FALSE));
}

/* Maps a core error to an HTTP answer in Google's shape. */
static void
respond_gerror (GkExchange        *msg,
                const GError      *error)
{
  guint code = SOUP_STATUS_BAD_REQUEST;
  const char *status = "INVALID_ARGUMENT";

  if (g_error_matches (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_NOT_FOUND) ||
      g_error_matches (error, GK_POOL_ERROR, GK_POOL_ERROR_NOT_FOUND))
    {
      code = SOUP_STATUS_NOT_FOUND;
      status = "NOT_FOUND";
    }
  else if (g_error_matches (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_DUPLICATE))
    {
      code = SOUP_STATUS_CONFLICT;
      status = "ALREADY_EXISTS";
    }
  else if (error->domain != GK_KEY_STORE_ERROR && error->domain != GK_POOL_ERROR &&
           error->domain != admin_error_quark ())
    {
      code = SOUP_STATUS_INTERNAL_SERVER_ERROR;
      status = "INTERNAL";
    }
  {
    g_autofree char *redacted = gk_redact_keys (error->message);

    gk_gateway_respond_error (msg, code, status, redacted);
  }
}

static gboolean
admin_fail (GError    **error,
            const char *format,
            ...) G_GNUC_PRINTF (2, 3);

static gboolean
admin_fail (GError    **error,
            const char *format,
            ...)
{
  va_list args;

  va_start (args, format);
  g_propagate_error (error, g_error_new_valist (admin_error_quark (), 0, format, args));
  va_end (args);
  return FALSE;
}

static JsonObject *
parse_body (GByteArray  *body,
            JsonParser  *parser,
            GError     **error)
{
  JsonNode *root;

  if (body == NULL || body->len == 0)
    return NULL;
  /* json-glib keeps strings as C strings: a NUL, raw or escaped, would
   * silently cut a name short. */
  if (memchr (body->data, '\0', body->len) != NULL ||
      g_strstr_len ((const char *) body->data, body->len, "\\u0000") != NULL)
    {
      admin_fail (error, "The body must not contain NUL characters.");
      return NULL;
    }
  if (!json_parser_load_from_data (parser, (const char *) body->data, body->len, error))
    return NULL;
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error_literal (error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_INVALID_DATA,
                           "The body must be a JSON object.");
      return NULL;
    }
  return json_node_get_object (root);
}

/* The fields a key's body may hold; anything else is refused, so that a
 * misspelt field is not silently ignored. */
static const char * const key_fields[] = {
  "name", "api_key", "priority", "project", "monthly_budget_usd", "is_default", "active",
  "status", "monthly_quota", "daily_quota", "minute_quota", "rpd", "rpm",
};

static gboolean
only_fields (JsonObject          *obj,
             const char * const  *fields,
             guint                n_fields,
             GError             **error)
{
  g_autoptr(GList) members = json_object_get_members (obj);

  for (GList *l = members; l != NULL; l = l->next)
    {
      gboolean known = FALSE;

      for (guint i = 0; i < n_fields && !known; i++)
        known = g_str_equal (l->data, fields[i]);
      if (!known)
        {
          g_autofree char *shown = g_strescape (l->data, NULL);

          return admin_fail (error, "Unknown field \"%.64s\".", shown);
        }
    }
  return TRUE;
}

static gboolean
node_is (JsonNode *node,
         GType     type)
{
  return JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == type;
}

/* A JSON integer (not 5.9, not "5") from @min to @max. */
static gboolean
get_int (JsonObject  *obj,
         const char  *field,
         gint64       min,
         gint64       max,
         gint64      *out,
         GError     **error)
{
  JsonNode *node = json_object_get_member (obj, field);

  if (!node_is (node, G_TYPE_INT64) || json_node_get_int (node) < min ||
      json_node_get_int (node) > max)
    return admin_fail (error, "%s must be an integer from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT ".",
                       field, min, max);
  *out = json_node_get_int (node);
  return TRUE;
}

static gboolean
get_boolean (JsonObject  *obj,
             const char  *field,
             gboolean    *out,
             GError     **error)
{
  JsonNode *node = json_object_get_member (obj, field);

  if (!node_is (node, G_TYPE_BOOLEAN))
    return admin_fail (error, "%s must be true or false.", field);
  *out = json_node_get_boolean (node);
  return TRUE;
}

/* A string, or NULL when @nullable and the member is null. */
static gboolean
get_string (JsonObject  *obj,
            const char  *field,
            gboolean     nullable,
            const char **out,
            GError     **error)
{
  JsonNode *node = json_object_get_member (obj, field);

  if (nullable && JSON_NODE_HOLDS_NULL (node))
    {
      *out = NULL;
      return TRUE;
    }
  if (!node_is (node, G_TYPE_STRING))
    return admin_fail (error, nullable ? "%s must be a string or null." : "%s must be a string.",
                       field);
  *out = json_node_get_string (node);
  return TRUE;
}

/* Applies the fields present in @obj to @spec, each checked for its type
 * and range; strings point into @obj. */
static gboolean
spec_from_json (GkKeySpec   *spec,
                JsonObject  *obj,
                GError     **error)
{
  gint64 n;

  if (!only_fields (obj, key_fields, G_N_ELEMENTS (key_fields), error))
    return FALSE;
  if (json_object_has_member (obj, "name") && !get_string (obj, "name", FALSE, &spec->name, error))
    return FALSE;
  if (json_object_has_member (obj, "priority"))
    {
      if (!get_int (obj, "priority", GK_KEY_PRIORITY_MIN, GK_KEY_PRIORITY_MAX, &n, error))
        return FALSE;
      spec->priority = (int) n;
    }
  if (json_object_has_member (obj, "project") &&
      !get_string (obj, "project", TRUE, &spec->project, error))
    return FALSE;
  if (json_object_has_member (obj, "monthly_budget_usd"))
    {
      JsonNode *node = json_object_get_member (obj, "monthly_budget_usd");

      if (JSON_NODE_HOLDS_NULL (node))
        spec->monthly_budget_usd = -1.0;
      else if ((node_is (node, G_TYPE_INT64) || node_is (node, G_TYPE_DOUBLE)) &&
               isfinite (json_node_get_double (node)) && json_node_get_double (node) >= 0)
        spec->monthly_budget_usd = json_node_get_double (node);
      else
        return admin_fail (error, "monthly_budget_usd must be a number of US dollars, 0 or more, or null.");
    }
  if (json_object_has_member (obj, "is_default") &&
      !get_boolean (obj, "is_default", &spec->is_default, error))
    return FALSE;
  if (json_object_has_member (obj, "active") && !get_boolean (obj, "active", &spec->active, error))
    return FALSE;
  if (json_object_has_member (obj, "status"))
    {
      const char *status;

      if (!get_string (obj, "status", FALSE, &status, error))
        return FALSE;
      if (g_str_equal (status, "ACTIVE"))
        spec->active = TRUE;
      else if (g_str_equal (status, "INACTIVE"))
        spec->active = FALSE;
      else
        return admin_fail (error, "status can only be set to ACTIVE or INACTIVE.");
    }
  for (guint i = 0; i < G_N_ELEMENTS (quota_fields); i++)
    if (json_object_has_member (obj, quota_fields[i].field))
      {
        if (!get_int (obj, quota_fields[i].field, 0, G_MAXINT64, &n, error))
          return FALSE;
        spec->limits[quota_fields[i].slot] = n;
      }
  return TRUE;
}

/* The new key of a body, when it holds one. */
static gboolean
api_key_from_json (JsonObject  *obj,
                   const char **api_key,
                   GError     **error)
{
  *api_key = NULL;
  return !json_object_has_member (obj, "api_key") ||
         get_string (obj, "api_key", FALSE, api_key, error);
}

/* A query parameter of the read-only handlers: a whole number from @min
 * to @max, @fallback when absent. Not one, it is @fallback too, or, where
 * @invalid is given, a 400 saying so. */
typedef struct
{
  const char *name;
  guint       min;
  guint       max;
  guint       fallback;
  const char *invalid;
} QueryParam;

static const QueryParam days_param = {
  "days", 1, 366, 7, "days must be a whole number from 1 to 366."
};
/* The dashboard shows 7 or 30 days: 30 from ?days=30 up, else 7. */
static const QueryParam dashboard_days_param = { "days", 0, 366, 7, NULL };
static const QueryParam limit_param = { "limit", 0, MAX_LOG_LIMIT, DEFAULT_LOG_LIMIT, NULL };
static const QueryParam offset_param = { "offset", 0, G_MAXUINT, 0, NULL };
static const QueryParam key_id_param = { "key_id", 0, G_MAXUINT, 0, NULL };

/* Reads the parameters given as pairs of a QueryParam and where its value
 * goes, up to a NULL; FALSE after answering 400 for an invalid one. */
static gboolean
query_params (GkExchange *msg,
              GHashTable *query,
              ...)
{
  const QueryParam *param;
  gboolean ok = TRUE;
  va_list args;

  va_start (args, query);
  while (ok && (param = va_arg (args, const QueryParam *)) != NULL)
    {
      guint *value = va_arg (args, guint *);
      const char *text = query != NULL ? g_hash_table_lookup (query, param->name) : NULL;
      guint64 n = param->fallback;

      if (text != NULL &&
          !g_ascii_string_to_unsigned (text, 10, param->min, param->max, &n, NULL))
        {
          n = param->fallback;
          if (param->invalid != NULL)
            {
              gk_gateway_respond_error (msg, SOUP_STATUS_BAD_REQUEST, "INVALID_ARGUMENT",
                                        param->invalid);
              ok = FALSE;
            }
        }
      *value = (guint) n;
    }
  va_end (args);
  return ok;
}

static void
list_keys (GkKeyStore        *store,
           GkExchange        *msg)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = gk_key_store_list (store, &error);
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(GTimeZone) reset_tz = gk_database_get_reset_timezone (gk_key_store_get_database (store));

  if (keys == NULL)
    {
      respond_gerror (msg, error);
      return;
    }
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "keys");
  json_builder_begin_array (b);
  for (guint i = 0; i < keys->len; i++)
    gk_json_add_key (b, g_ptr_array_index (keys, i), reset_tz);
  json_builder_end_array (b);
  json_builder_end_object (b);
  respond_node (msg, SOUP_STATUS_OK, b);
}

static void
respond_key (GkKeyStore        *store,
             GkExchange        *msg,
             guint              status,
             gint64             id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) key = gk_key_store_get (store, id, &error);
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(GTimeZone) reset_tz = gk_database_get_reset_timezone (gk_key_store_get_database (store));

  if (key == NULL)
    {
      respond_gerror (msg, error);
      return;
    }
  gk_json_add_key (b, key, reset_tz);
  respond_node (msg, status, b);
}

static void
create_key (GkKeyStore        *store,
            GkExchange        *msg,
            GByteArray        *body)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *obj = parse_body (body, parser, &error);
  const char *api_key;
  GkKeySpec spec;
  gint64 id;

  if (obj == NULL)
    {
      gk_gateway_respond_error (msg, SOUP_STATUS_BAD_REQUEST, "INVALID_ARGUMENT",
                                error ? error->message : "A JSON body is required.");
      return;
    }
  gk_key_spec_init (&spec);
  if (!spec_from_json (&spec, obj, &error))
    {
      respond_gerror (msg, error);
      return;
    }
  if (!api_key_from_json (obj, &api_key, &error))
    {
      respond_gerror (msg, error);
      return;
    }
  if (api_key == NULL)
    {
      gk_gateway_respond_error (msg, SOUP_STATUS_BAD_REQUEST, "INVALID_ARGUMENT",
                                "The field api_key is required.");
      return;
    }
  id = gk_key_store_add (store, &spec, api_key, &error);
  if (id <= 0)
    {
      respond_gerror (msg, error);
      return;
    }
  respond_key (store, msg, SOUP_STATUS_CREATED, id);
}

static void
update_key (GkKeyStore        *store,
            GkExchange        *msg,
            gint64             id,
            GByteArray        *body)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GkKey) key = NULL;
  JsonObject *obj = parse_body (body, parser, &error);
  const char *api_key = NULL;
  GkKeySpec spec;

  if (obj == NULL)
    {
      gk_gateway_respond_error (msg, SOUP_STATUS_BAD_REQUEST, "INVALID_ARGUMENT",
                                error ? error->message : "A JSON body is required.");
      return;
    }
  key = gk_key_store_get (store, id, &error);
  if (key == NULL)
    {
      respond_gerror (msg, error);
      return;
    }
  gk_key_spec_from_key (&spec, key);
  if (!spec_from_json (&spec, obj, &error) || !api_key_from_json (obj, &api_key, &error) ||
      !gk_key_store_update (store, id, &spec, api_key, &error))
    {
      respond_gerror (msg, error);
      return;
    }
  respond_key (store, msg, SOUP_STATUS_OK, id);
}

static void
delete_key (GkKeyStore        *store,
            GkExchange        *msg,
            gint64             id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonBuilder) b = json_builder_new ();

  if (!gk_key_store_delete (store, id, &error))
    {
      respond_gerror (msg, error);
      return;
    }
  json_builder_begin_object (b);
  gk_json_add_int (b, "id", id);
  gk_json_add_boolean (b, "deleted", TRUE);
  json_builder_end_object (b);
  respond_node (msg, SOUP_STATUS_OK, b);
}

static void
rotate_key (GkKeyStore        *store,
            GkPool            *pool,
            GkExchange        *msg,
            gint64             id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) key = gk_key_store_get (store, id, &error);
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(GTimeZone) reset_tz = gk_database_get_reset_timezone (gk_key_store_get_database (store));
  gint64 to;

  if (key == NULL)
    {
      respond_gerror (msg, error);
      return;
    }
  to = gk_pool_rotate (pool, id, ADMIN_WHO, &error);
  if (error != NULL)
    {
      respond_gerror (msg, error);
      return;
    }
  json_builder_begin_object (b);
  gk_json_add_int (b, "from_key_id", id);
  gk_json_add_optional_id (b, "to_key_id", to);
  gk_json_add_string (b, "reason", gk_rotation_reason_to_string (GK_ROTATION_MANUAL));
  gk_json_add_string (b, "triggered_by", ADMIN_WHO);
  json_builder_end_object (b);
  respond_node (msg, SOUP_STATUS_OK, b);
}

/* @record as a 200 (added by @add_record), or the error when it is NULL. */
static void
respond_record (GkExchange    *msg,
                gconstpointer  record,
                GkJsonAddRow   add_record,
                const GError  *error)
{
  g_autoptr(JsonBuilder) b = NULL;

  if (record == NULL)
    {
      respond_gerror (msg, error);
      return;
    }
  b = json_builder_new ();
  add_record (b, record);
  respond_node (msg, SOUP_STATUS_OK, b);
}

static void
dashboard (GkDatabase        *db,
           GkExchange        *msg,
           GHashTable        *query)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDashboard) dash = NULL;
  guint days;

  query_params (msg, query, &dashboard_days_param, &days, NULL);
  dash = gk_stats_dashboard (db, days >= 30 ? 30 : 7, &error);
  respond_record (msg, dash, (GkJsonAddRow) gk_json_add_dashboard, error);
}

/* Reads the rows of the last ?days (1…366, default 7) of a database. */
typedef GPtrArray *(*DaysRows) (GkDatabase  *db,
                                guint        days,
                                GError     **error);

static GPtrArray *
spikes_of_days (GkDatabase  *db,
                guint        days,
                GError     **error)
{
  return gk_insights_rotation_spikes (db, gk_database_now (db) - (gint64) days * 86400, 0,
                                      error);
}

/* Answers { "days": N, @member: [rows] } with the rows @read gives for the
 * ?days of @query. */
static void
respond_days_rows (GkDatabase   *db,
                   GkExchange   *msg,
                   GHashTable   *query,
                   DaysRows      read,
                   const char   *member,
                   GkJsonAddRow  add_row)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(JsonBuilder) b = NULL;
  guint days;

  if (!query_params (msg, query, &days_param, &days, NULL))
    return;
  rows = read (db, days, &error);
  if (rows == NULL)
    {
      respond_gerror (msg, error);
      return;
    }
  b = json_builder_new ();
  json_builder_begin_object (b);
  gk_json_add_int (b, "days", days);
  gk_json_add_rows (b, member, rows, add_row);
  json_builder_end_object (b);
  respond_node (msg, SOUP_STATUS_OK, b);
}

static void
forecast (GkDatabase        *db,
          GkExchange        *msg)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkForecast) f = gk_insights_forecast (db, &error);

  respond_record (msg, f, (GkJsonAddRow) gk_json_add_forecast, error);
}

static void
usage_logs (GkDatabase        *db,
            GkExchange        *msg,
            GHashTable        *query)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  GkUsageSummary summary = { 0 };
  guint key_id, limit, offset;

  query_params (msg, query, &key_id_param, &key_id, &limit_param, &limit, &offset_param,
                &offset, NULL);
  rows = gk_stats_usage_logs (db, key_id, limit, offset, &error);
  if (rows == NULL || !gk_stats_usage_summary (db, key_id, limit, &summary, &error))
    {
      respond_gerror (msg, error);
      return;
    }
  json_builder_begin_object (b);
  gk_json_add_rows (b, "logs", rows, (GkJsonAddRow) gk_json_add_usage_row);
  json_builder_set_member_name (b, "summary");
  json_builder_begin_object (b);
  gk_json_add_int (b, "requests", summary.requests);
  gk_json_add_int (b, "successes", summary.successes);
  gk_json_add_int (b, "failures", summary.failures);
  gk_json_add_double (b, "cost_usd", summary.cost_usd);
  json_builder_end_object (b);
  json_builder_end_object (b);
  respond_node (msg, SOUP_STATUS_OK, b);
}

static void
rotation_logs (GkDatabase        *db,
               GkExchange        *msg,
               GHashTable        *query)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  gint64 all = 0, manual = 0, automatic = 0;
  guint limit;

  query_params (msg, query, &limit_param, &limit, NULL);
  rows = gk_stats_rotation_logs (db, limit, &error);
  if (rows == NULL || !gk_stats_rotation_totals (db, &all, &manual, &automatic, &error))
    {
      respond_gerror (msg, error);
      return;
    }
  json_builder_begin_object (b);
  gk_json_add_rows (b, "rotations", rows, (GkJsonAddRow) gk_json_add_rotation_row);
  json_builder_set_member_name (b, "totals");
  json_builder_begin_object (b);
  gk_json_add_int (b, "all", all);
  gk_json_add_int (b, "manual", manual);
  gk_json_add_int (b, "auto", automatic);
  json_builder_end_object (b);
  json_builder_end_object (b);
  respond_node (msg, SOUP_STATUS_OK, b);
}

static void
audit_logs (GkDatabase        *db,
            GkExchange        *msg,
            GHashTable        *query)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  gint64 total;
  guint limit, offset;

  query_params (msg, query, &limit_param, &limit, &offset_param, &offset, NULL);
  rows = gk_audit_list (db, limit, offset, &error);
  total = rows != NULL ? gk_audit_count (db, &error) : -1;
  if (rows == NULL || total < 0)
    {
      respond_gerror (msg, error);
      return;
    }
  json_builder_begin_object (b);
  gk_json_add_rows (b, "audit_logs", rows, (GkJsonAddRow) gk_json_add_audit_row);
  gk_json_add_int (b, "total", total);
  json_builder_end_object (b);
  respond_node (msg, SOUP_STATUS_OK, b);
}

static void
hygiene (GkDatabase        *db,
         GkExchange        *msg)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonBuilder) b = json_builder_new ();

  if (!gk_json_add_hygiene (b, db, &error))
    {
      respond_gerror (msg, error);
      return;
    }
  respond_node (msg, SOUP_STATUS_OK, b);
}

static void
budget (GkDatabase        *db,
        GkExchange        *msg,
        GByteArray        *body)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GkSpend) spend = NULL;
  static const char * const budget_fields[] = { "monthly_budget_usd" };

  if (g_str_equal (gk_exchange_get_method (msg), "PUT"))
    {
      JsonObject *obj = parse_body (body, parser, &error);
      JsonNode *node;
      double usd;

      if (obj == NULL || !only_fields (obj, budget_fields, G_N_ELEMENTS (budget_fields), &error) ||
          !json_object_has_member (obj, "monthly_budget_usd"))
        {
          gk_gateway_respond_error (msg, SOUP_STATUS_BAD_REQUEST, "INVALID_ARGUMENT",
                                    error ? error->message
                                          : "The field monthly_budget_usd is required.");
          return;
        }
      node = json_object_get_member (obj, "monthly_budget_usd");
      if (JSON_NODE_HOLDS_NULL (node))
        usd = -1;
      else if ((node_is (node, G_TYPE_INT64) || node_is (node, G_TYPE_DOUBLE)) &&
               isfinite (json_node_get_double (node)) && json_node_get_double (node) >= 0)
        usd = json_node_get_double (node);
      else
        {
          gk_gateway_respond_error (msg, SOUP_STATUS_BAD_REQUEST, "INVALID_ARGUMENT",
                                    "monthly_budget_usd must be a number of US dollars, 0 or "
                                    "more, or null.");
          return;
        }
      if (!gk_spend_set_pool_budget (db, usd, &error))
        {
          respond_gerror (msg, error);
          return;
        }
    }
  spend = gk_spend_read (db, &error);
  respond_record (msg, spend, (GkJsonAddRow) gk_json_add_spend, error);
}

static void
reset_quotas (GkDatabase        *db,
              GkExchange        *msg,
              GByteArray        *body)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(JsonBuilder) b = json_builder_new ();
  JsonObject *obj = parse_body (body, parser, &error);
  static const char * const reset_fields[] = { "type" };
  const char *type_name = NULL;
  GkQuotaType type = GK_QUOTA_MONTHLY;
  gboolean all;

  if (error != NULL ||
      (obj != NULL && (!only_fields (obj, reset_fields, G_N_ELEMENTS (reset_fields), &error) ||
                       (json_object_has_member (obj, "type") &&
                        !get_string (obj, "type", FALSE, &type_name, &error)))))
    {
      gk_gateway_respond_error (msg, SOUP_STATUS_BAD_REQUEST, "INVALID_ARGUMENT", error->message);
      return;
    }
  /* No body, or no type: every quota. */
  all = type_name == NULL || g_ascii_strcasecmp (type_name, "all") == 0;
  if (!all)
    {
      if (g_ascii_strcasecmp (type_name, "monthly") == 0)
        type = GK_QUOTA_MONTHLY;
      else if (g_ascii_strcasecmp (type_name, "daily") == 0)
        type = GK_QUOTA_DAILY;
      else if (g_ascii_strcasecmp (type_name, "minute") == 0 ||
               g_ascii_strcasecmp (type_name, "per_minute") == 0)
        type = GK_QUOTA_PER_MINUTE;
      else
        {
          gk_gateway_respond_error (msg, SOUP_STATUS_BAD_REQUEST, "INVALID_ARGUMENT",
                                    "type must be all, monthly, daily or minute.");
          return;
        }
    }
  if (!gk_quotas_reset (db, all, type, ADMIN_WHO, &error))
    {
      respond_gerror (msg, error);
      return;
    }
  json_builder_begin_object (b);
  gk_json_add_string (b, "reset", all ? "all" : gk_quota_type_to_string (type));
  json_builder_end_object (b);
  respond_node (msg, SOUP_STATUS_OK, b);
}

static void
method_not_allowed (GkExchange        *msg)
{
  gk_gateway_respond_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "INVALID_ARGUMENT",
                            "Method not allowed on this path.");
}

void
gk_gateway_admin_handle (GkKeyStore        *key_store,
                         GkPool            *pool,
                         GkExchange        *msg,
                         const char        *subpath,
                         GHashTable        *query,
                         GByteArray        *body)
{
  GkDatabase *db = gk_pool_get_database (pool);
  const char *method = gk_exchange_get_method (msg);
  gboolean is_get = g_str_equal (method, "GET");
  gboolean is_post = g_str_equal (method, "POST");
  g_auto(GStrv) parts = NULL;
  guint n_parts;
  guint64 id;

  /* No cache may keep admin answers. */
  soup_message_headers_replace (gk_exchange_get_response_headers (msg),
                                "Cache-Control", "no-store");

  while (*subpath == '/')
    subpath++;
  parts = g_strsplit (subpath, "/", -1);
  n_parts = g_strv_length (parts);
  /* A trailing slash leaves an empty last part. */
  if (n_parts > 0 && *parts[n_parts - 1] == '\0')
    n_parts--;

  if (n_parts == 0)
    {
      if (is_get)
        list_keys (key_store, msg);
      else if (is_post)
        create_key (key_store, msg, body);
      else
        method_not_allowed (msg);
      return;
    }

  if (n_parts == 1 && g_str_equal (parts[0], "dashboard"))
    is_get ? dashboard (db, msg, query) : method_not_allowed (msg);
  else if (n_parts == 1 && g_str_equal (parts[0], "usage-logs"))
    is_get ? usage_logs (db, msg, query) : method_not_allowed (msg);
  else if (n_parts == 1 && g_str_equal (parts[0], "rotation-logs"))
    is_get ? rotation_logs (db, msg, query) : method_not_allowed (msg);
  else if (n_parts == 1 && g_str_equal (parts[0], "audit-logs"))
    is_get ? audit_logs (db, msg, query) : method_not_allowed (msg);
  else if (n_parts == 1 && g_str_equal (parts[0], "compare"))
    is_get ? respond_days_rows (db, msg, query, gk_insights_compare_days, "keys",
                                (GkJsonAddRow) gk_json_add_key_comparison)
           : method_not_allowed (msg);
  else if (n_parts == 1 && g_str_equal (parts[0], "forecast"))
    is_get ? forecast (db, msg) : method_not_allowed (msg);
  else if (n_parts == 1 && g_str_equal (parts[0], "rotation-spikes"))
    is_get ? respond_days_rows (db, msg, query, spikes_of_days, "spikes",
                                (GkJsonAddRow) gk_json_add_rotation_spike)
           : method_not_allowed (msg);
  else if (n_parts == 1 && g_str_equal (parts[0], "hygiene"))
    is_get ? hygiene (db, msg) : method_not_allowed (msg);
  else if (n_parts == 1 && g_str_equal (parts[0], "budget"))
    is_get || g_str_equal (method, "PUT") ? budget (db, msg, body) : method_not_allowed (msg);
  else if (n_parts == 2 && g_str_equal (parts[0], "quotas") && g_str_equal (parts[1], "reset"))
    is_post ? reset_quotas (db, msg, body) : method_not_allowed (msg);
  else if (g_ascii_string_to_unsigned (parts[0], 10, 1, G_MAXINT64, &id, NULL))
    {
      if (n_parts == 1)
        {
          if (is_get)
            respond_key (key_store, msg, SOUP_STATUS_OK, (gint64) id);
          else if (g_str_equal (method, "PUT") || g_str_equal (method, "PATCH"))
            update_key (key_store, msg, (gint64) id, body);
          else if (g_str_equal (method, "DELETE"))
            delete_key (key_store, msg, (gint64) id);
          else
            method_not_allowed (msg);
        }
      else if (n_parts == 2 && g_str_equal (parts[1], "rotate"))
        is_post ? rotate_key (key_store, pool, msg, (gint64) id) : method_not_allowed (msg);
      else
        gk_gateway_respond_error (msg, SOUP_STATUS_NOT_FOUND, "NOT_FOUND", "Unknown admin path.");
    }
  else
    gk_gateway_respond_error (msg, SOUP_STATUS_NOT_FOUND, "NOT_FOUND", "Unknown admin path.");
}
