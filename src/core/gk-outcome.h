/* gk-outcome.h: what an upstream answer means for the key that got it.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum
{
  GK_OUTCOME_SUCCESS,
  GK_OUTCOME_RATE_LIMITED_MINUTE,   /* 429 with a per-minute quota or no detail */
  GK_OUTCOME_RATE_LIMITED_DAY,      /* 429 with a PerDay quotaId */
  GK_OUTCOME_INVALID_KEY,           /* API_KEY_INVALID, CONSUMER_SUSPENDED, leaked */
  GK_OUTCOME_TRANSIENT,             /* 5xx, timeouts: try elsewhere, no penalty */
  GK_OUTCOME_ERROR,                 /* anything else: the client's problem */
} GkOutcomeKind;

typedef struct
{
  GkOutcomeKind kind;
  gint64        retry_delay_s;  /* RetryInfo.retryDelay rounded up; 0 = none */
  gboolean      per_project;    /* the quotaId is a PerProject quota */
  char         *reason;         /* ErrorInfo reason or status, may be NULL */
  char         *message;        /* upstream message, keys redacted; may be NULL */
} GkOutcome;

typedef struct
{
  gint64   prompt_tokens;   /* promptTokenCount (+ toolUsePromptTokenCount) or prompt_tokens */
  gint64   output_tokens;   /* candidatesTokenCount + thoughtsTokenCount, or completion_tokens */
  gint64   total_tokens;
  gboolean found;
} GkTokenUsage;

/* Classifies an upstream answer. @body may be NULL or garbage. */
void     gk_outcome_classify    (guint          http_status,
                                 const char    *body,
                                 gsize          body_len,
                                 GkOutcome     *outcome);
void     gk_outcome_clear       (GkOutcome     *outcome);

/* Reads usageMetadata (Gemini) or usage (OpenAI) from one JSON document or
 * SSE chunk. Returns FALSE when the text holds no usage. */
gboolean gk_usage_parse         (const char    *json,
                                 gsize          len,
                                 GkTokenUsage  *usage);

/* A copy of @text with every AIza… and AQ.… key replaced by a mask. */
char    *gk_redact_keys         (const char    *text);

/* Whether JSON brackets outside strings in @text nest at most @max_depth
 * deep: a fast scan to run before json-glib, whose parser recurses. */
gboolean gk_json_depth_ok       (const char    *text,
                                 gsize          len,
                                 guint          max_depth);

G_END_DECLS
