/* gk-json.h: the JSON shape of the core records, shared by the CLI's --json
 * output and the gateway's admin API so the two cannot drift apart.
 *
 * Field names follow the seed's columns. Keys only ever appear masked.
 * A time, or the id of a row that may be missing, of 0 is written as null.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <json-glib/json-glib.h>

#include "gk-types.h"
#include "gk-audit.h"
#include "gk-hygiene.h"
#include "gk-key-store.h"
#include "gk-insights.h"
#include "gk-stats.h"
#include "gk-token-store.h"

G_BEGIN_DECLS

/* Members: each sets @member and adds its value to the open object. */
void gk_json_add_int          (JsonBuilder *builder,
                               const char  *member,
                               gint64       value);
void gk_json_add_double       (JsonBuilder *builder,
                               const char  *member,
                               double       value);
void gk_json_add_boolean      (JsonBuilder *builder,
                               const char  *member,
                               gboolean     value);
/* NULL is written as null. */
void gk_json_add_string       (JsonBuilder *builder,
                               const char  *member,
                               const char  *value);
/* 0 (no such row) is written as null. */
void gk_json_add_optional_id  (JsonBuilder *builder,
                               const char  *member,
                               gint64       id);
/* Unix seconds; 0 (never) is written as null. */
void gk_json_add_time         (JsonBuilder *builder,
                               const char  *member,
                               gint64       unix_time);

/* Adds one record (below) as the next value. */
typedef void (*GkJsonAddRow) (JsonBuilder   *builder,
                              gconstpointer  row);

/* An array of @rows, each added by @add_row: the value of @member of the
 * open object, or the next value when @member is NULL. */
void gk_json_add_rows         (JsonBuilder  *builder,
                               const char   *member,
                               GPtrArray    *rows,
                               GkJsonAddRow  add_row);

/* The members of a key (masked, with its quotas) into the open object, for
 * callers that add members of their own. Each quota also gets its reset in
 * the process's local time zone: "reset_at_local" (ISO 8601 with the
 * offset) and "reset_at_text" (for people, with the time in @reset_tz,
 * the reset time zone, when given). */
void gk_json_add_key_members  (JsonBuilder *builder,
                               const GkKey *key,
                               GTimeZone   *reset_tz);

/* Records: each adds one whole object as the next value (array element, or
 * the value of a member set just before). */
void gk_json_add_key          (JsonBuilder         *builder,
                               const GkKey         *key,
                               GTimeZone           *reset_tz);
void gk_json_add_usage_row    (JsonBuilder         *builder,
                               const GkUsageRow    *row);
void gk_json_add_audit_row    (JsonBuilder         *builder,
                               const GkAuditRow    *row);
void gk_json_add_rotation_row (JsonBuilder         *builder,
                               const GkRotationRow *row);
void gk_json_add_key_comparison (JsonBuilder         *builder,
                                 const GkKeyComparison *row);
void gk_json_add_forecast     (JsonBuilder         *builder,
                               const GkForecast    *forecast);
void gk_json_add_rotation_spike (JsonBuilder         *builder,
                                 const GkRotationSpike *spike);
/* Keys worth deleting and the master key's age (gk-hygiene.h). */
gboolean gk_json_add_hygiene  (JsonBuilder         *builder,
                               GkDatabase          *db,
                               GError             **error);
void gk_json_add_spend        (JsonBuilder         *builder,
                               const GkSpend       *spend);
void gk_json_add_dashboard    (JsonBuilder         *builder,
                               const GkDashboard   *dashboard);
/* A client token's metadata; the token itself is never stored. */
void gk_json_add_token        (JsonBuilder         *builder,
                               const GkToken       *token);

G_END_DECLS
