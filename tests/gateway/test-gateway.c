/* test-gateway.c: the local gateway against tests/mock-gemini.
 *
 * The mock runs as a subprocess on a free port; GEMINI_KEYS_UPSTREAM points
 * at it. Each test gets a fresh database, key store, pool and gateway. The
 * mock decides how to answer from the text of the key it receives (see the
 * comment at the top of mock-gemini.c), so a key's name in the API key text
 * says how it behaves.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <sqlite3.h>

#include "gk-database-private.h"
#include "gk-gateway.h"
#include "gk-test-util.h"
#include "gk-upstream.h"

#define MODEL_PATH "/v1beta/models/gemini-2.5-flash"
#define GENERATE_BODY "{\"contents\":[{\"parts\":[{\"text\":\"Hello\"}]}]}"

static GSubprocess *mock_process;
static char *mock_base;

typedef struct
{
  GkDatabase *db;
  GkKeyStore *store;
  GkPool     *pool;
  GkGateway  *gateway;
  SoupSession *session;
  char       *token;         /* client token named "tester" */
  char       *admin_token;   /* client token named "admin" */
  char       *base;          /* http://127.0.0.1:PORT */
  char       *db_dir;
} Fixture;

/* ---- helpers ------------------------------------------------------------ */

/* A valid-looking classic key whose text carries @word for the mock. */
static char *
mock_key (const char *word,
          guint       n)
{
  int pad = 35 - (int) strlen (word);

  return g_strdup_printf ("AIza%s%0*u", word, pad, n);
}

static gint64
add_key (Fixture    *f,
         const char *word,
         int         priority,
         const char *project)
{
  static guint counter;
  g_autoptr(GError) error = NULL;
  g_autofree char *api_key = mock_key (word, ++counter);
  g_autofree char *name = g_strdup_printf ("%s-%u", word, counter);
  GkKeySpec spec;
  gint64 id;

  gk_key_spec_init (&spec);
  spec.name = name;
  spec.priority = priority;
  spec.project = project;
  id = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);
  g_assert_cmpint (id, >, 0);
  return id;
}

static GBytes *
http (Fixture     *f,
      const char  *method,
      const char  *base,
      const char  *path,
      const char  *token_header,   /* nullable */
      const char  *body,           /* nullable */
      guint       *status)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *url = g_strconcat (base, path, NULL);
  g_autoptr(SoupMessage) msg = soup_message_new (method, url);
  GBytes *out;

  g_assert_nonnull (msg);
  if (token_header != NULL)
    soup_message_headers_replace (soup_message_get_request_headers (msg), "x-goog-api-key",
                                  token_header);
  if (body != NULL)
    soup_message_set_request_body_from_bytes (msg, "application/json",
                                              g_bytes_new_static (body, strlen (body)));
  out = soup_session_send_and_read (f->session, msg, NULL, &error);
  g_assert_no_error (error);
  *status = soup_message_get_status (msg);
  return out;
}

static JsonNode *
parse_json (GBytes *bytes)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);

  json_parser_load_from_data (parser, data, len, &error);
  g_assert_no_error (error);
  return json_node_copy (json_parser_get_root (parser));
}

static char *
bytes_to_string (GBytes *bytes)
{
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);

  return g_strndup (data, len);
}

/* Asserts @bytes is Google's error shape with @code and @status. */
static void
assert_google_error (GBytes     *bytes,
                     int         code,
                     const char *status,
                     const char *message)
{
  g_autoptr(JsonNode) root = parse_json (bytes);
  JsonObject *error;

  g_assert_true (JSON_NODE_HOLDS_OBJECT (root));
  error = json_object_get_object_member (json_node_get_object (root), "error");
  g_assert_nonnull (error);
  g_assert_cmpint (json_object_get_int_member (error, "code"), ==, code);
  g_assert_cmpstr (json_object_get_string_member (error, "status"), ==, status);
  if (message != NULL)
    g_assert_cmpstr (json_object_get_string_member (error, "message"), ==, message);
}

static void
mock_call (Fixture    *f,
           const char *method,
           const char *path,
           JsonNode  **out)
{
  g_autoptr(GBytes) body = NULL;
  guint status;

  body = http (f, method, mock_base, path, NULL, NULL, &status);
  g_assert_cmpuint (status, ==, 200);
  if (out)
    *out = parse_json (body);
}

static gint64
mock_count (Fixture    *f,
            const char *word_key)
{
  g_autoptr(JsonNode) stats = NULL;

  mock_call (f, "GET", "/_mock/stats", &stats);
  return json_object_get_int_member_with_default (json_node_get_object (stats), word_key, 0);
}

/* One integer from the test database, read through a separate connection
 * the way another process would. */
static gint64
sql_int (Fixture    *f,
         const char *sql)
{
  sqlite3 *conn = NULL;
  sqlite3_stmt *stmt = NULL;
  gint64 value = -1;

  g_assert_cmpint (sqlite3_open_v2 (gk_database_get_path (f->db), &conn, SQLITE_OPEN_READONLY, NULL),
                   ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_prepare_v2 (conn, sql, -1, &stmt, NULL), ==, SQLITE_OK);
  if (sqlite3_step (stmt) == SQLITE_ROW)
    value = sqlite3_column_int64 (stmt, 0);
  sqlite3_finalize (stmt);
  sqlite3_close (conn);
  return value;
}

static char *
sql_text (Fixture    *f,
          const char *sql)
{
  sqlite3 *conn = NULL;
  sqlite3_stmt *stmt = NULL;
  char *value = NULL;

  g_assert_cmpint (sqlite3_open_v2 (gk_database_get_path (f->db), &conn, SQLITE_OPEN_READONLY, NULL),
                   ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_prepare_v2 (conn, sql, -1, &stmt, NULL), ==, SQLITE_OK);
  if (sqlite3_step (stmt) == SQLITE_ROW && sqlite3_column_text (stmt, 0) != NULL)
    value = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
  sqlite3_finalize (stmt);
  sqlite3_close (conn);
  return value;
}

static GkKey *
get_key (Fixture *f,
         gint64   id)
{
  g_autoptr(GError) error = NULL;
  GkKey *key = gk_key_store_get (f->store, id, &error);

  g_assert_no_error (error);
  return key;
}

/* Sends raw bytes and reads the answer until the server closes. */
static char *
raw_request (Fixture    *f,
             const char *request,
             gsize       len)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) conn = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) out = g_string_new (NULL);
  char buf[4096];
  gssize n;

  g_socket_client_set_timeout (client, 10);
  conn = g_socket_client_connect_to_host (client, "127.0.0.1", gk_gateway_get_port (f->gateway),
                                          NULL, &error);
  g_assert_no_error (error);
  g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (conn)), request, len,
                             NULL, NULL, NULL);
  while ((n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (conn)), buf,
                                   sizeof buf, NULL, NULL)) > 0)
    g_string_append_len (out, buf, n);
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* ---- fixture ------------------------------------------------------------ */

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) master = gk_test_master_key ();
  gint64 id;

  f->db = gk_test_open_db (NULL);
  f->db_dir = g_path_get_dirname (gk_database_get_path (f->db));
  f->store = gk_key_store_new (f->db, master);
  f->pool = gk_pool_new (f->db, NULL);
  f->token = gk_token_create (f->db, "tester", &id, &error);
  g_assert_no_error (error);
  f->admin_token = gk_token_create (f->db, "admin", &id, &error);
  g_assert_no_error (error);
  f->session = soup_session_new_with_options ("timeout", 30, NULL);

  f->gateway = gk_gateway_new (f->store, f->pool);
  g_assert_true (gk_gateway_start (f->gateway, "127.0.0.1", 0, &error));
  g_assert_no_error (error);
  g_assert_true (gk_gateway_is_running (f->gateway));
  g_assert_cmpuint (gk_gateway_get_port (f->gateway), >, 0);
  f->base = g_strdup_printf ("http://127.0.0.1:%u", gk_gateway_get_port (f->gateway));

  mock_call (f, "POST", "/_mock/reset", NULL);
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  gk_gateway_stop (f->gateway);
  g_assert_false (gk_gateway_is_running (f->gateway));
  g_assert_finalize_object (f->gateway);
  g_clear_object (&f->session);
  g_clear_object (&f->pool);
  g_clear_object (&f->store);
  g_clear_object (&f->db);
  g_free (f->token);
  g_free (f->admin_token);
  g_free (f->base);
  gk_test_rm_rf (f->db_dir);
  g_free (f->db_dir);
}

/* Restarts the gateway after a setting changed (settings apply at start). */
static void
restart (Fixture *f)
{
  g_autoptr(GError) error = NULL;

  gk_gateway_stop (f->gateway);
  g_assert_true (gk_gateway_start (f->gateway, "127.0.0.1", 0, &error));
  g_assert_no_error (error);
  g_free (f->base);
  f->base = g_strdup_printf ("http://127.0.0.1:%u", gk_gateway_get_port (f->gateway));
}

/* ---- tests -------------------------------------------------------------- */

/* The gateway's log lines, as emitted (from its thread). */
typedef struct
{
  GMutex     mutex;
  GPtrArray *lines;
} LogLines;

static void
log_lines_cb (GkGateway  *gateway,
              const char *line,
              gpointer    user_data)
{
  LogLines *log = user_data;

  g_mutex_lock (&log->mutex);
  g_ptr_array_add (log->lines, g_strdup (line));
  g_mutex_unlock (&log->mutex);
}

/* Whether a line of @log matches @pattern (a whole-line regex). */
static gboolean
log_has_line (LogLines   *log,
              const char *pattern)
{
  gboolean found = FALSE;

  g_mutex_lock (&log->mutex);
  for (guint i = 0; i < log->lines->len && !found; i++)
    found = g_regex_match_simple (pattern, g_ptr_array_index (log->lines, i), 0, 0);
  g_mutex_unlock (&log->mutex);
  return found;
}

static void
test_generate_ok (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GBytes) body = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *user = NULL;
  gint64 id = add_key (f, "OK", 5, NULL);
  guint status;

  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 200);
  root = parse_json (body);
  g_assert_true (json_object_has_member (json_node_get_object (root), "candidates"));

  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log"), ==, 1);
  g_assert_cmpint (sql_int (f, "SELECT key_id FROM gemini_key_usage_log"), ==, id);
  g_assert_cmpint (sql_int (f, "SELECT prompt_tokens FROM gemini_key_usage_log"), ==, 12);
  /* candidates 8 + thoughts 5 */
  g_assert_cmpint (sql_int (f, "SELECT output_tokens FROM gemini_key_usage_log"), ==, 13);
  g_assert_cmpint (sql_int (f, "SELECT http_status FROM gemini_key_usage_log"), ==, 200);
  user = sql_text (f, "SELECT user_id FROM gemini_key_usage_log");
  g_assert_cmpstr (user, ==, "tester");
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_rotation_log"), ==, 0);
}

/* One line a request: method, path, status, key, user, outcome, tokens,
 * time, and the rotation it caused. */
static void
test_request_log_line (Fixture       *f,
                       gconstpointer  data)
{
  LogLines log = { .lines = g_ptr_array_new_with_free_func (g_free) };
  g_autoptr(GBytes) body = NULL;
  g_autofree char *ok_line = NULL;
  g_autofree char *rotated_line = NULL;
  gint64 rate_id = add_key (f, "RATEMIN", 9, NULL);
  gint64 ok_id = add_key (f, "OK", 5, NULL);
  gulong handler;
  guint status;

  g_mutex_init (&log.mutex);
  handler = g_signal_connect (f->gateway, "log", G_CALLBACK (log_lines_cb), &log);
  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 200);
  g_signal_handler_disconnect (f->gateway, handler);

  rotated_line = g_strdup_printf ("^POST " MODEL_PATH ":generateContent -> 429 key=%" G_GINT64_FORMAT
                                  " user=tester status=RATE_LIMITED tokens=0\\+0 [0-9]+ ms"
                                  " \\(rotated: RATE_LIMITED\\)$", rate_id);
  ok_line = g_strdup_printf ("^POST " MODEL_PATH ":generateContent -> 200 key=%" G_GINT64_FORMAT
                             " user=tester status=SUCCESS tokens=12\\+13 [0-9]+ ms$", ok_id);
  for (guint i = 0; i < log.lines->len; i++)
    g_test_message ("log: %s", (const char *) g_ptr_array_index (log.lines, i));
  g_assert_true (log_has_line (&log, rotated_line));
  g_assert_true (log_has_line (&log, ok_line));
  g_ptr_array_unref (log.lines);
  g_mutex_clear (&log.mutex);
}

static void
test_rate_limited_minute (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GkKey) a = NULL;
  g_autoptr(GkKey) b = NULL;
  g_autofree char *reason = NULL;
  g_autofree char *by = NULL;
  gint64 a_id = add_key (f, "RATEMIN", 9, NULL);
  gint64 b_id = add_key (f, "OK", 5, NULL);
  gint64 now = gk_database_now (f->db);
  guint status;

  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 200);

  a = get_key (f, a_id);
  b = get_key (f, b_id);
  g_assert_cmpint (a->status, ==, GK_KEY_STATUS_RATE_LIMITED);
  g_assert_cmpint (a->cooldown_until, ==, now + 26);
  g_assert_cmpint (b->status, ==, GK_KEY_STATUS_ACTIVE);

  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_rotation_log"), ==, 1);
  g_assert_cmpint (sql_int (f, "SELECT from_key_id FROM gemini_key_rotation_log"), ==, a_id);
  g_assert_cmpint (sql_int (f, "SELECT to_key_id FROM gemini_key_rotation_log"), ==, b_id);
  reason = sql_text (f, "SELECT reason FROM gemini_key_rotation_log");
  by = sql_text (f, "SELECT triggered_by FROM gemini_key_rotation_log");
  g_assert_cmpstr (reason, ==, "RATE_LIMITED");
  g_assert_cmpstr (by, ==, "auto");

  /* One row for the failed attempt, one for the request. */
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log"), ==, 2);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log WHERE status = 'RATE_LIMITED'"
                               " AND http_status = 429"), ==, 1);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log WHERE status = 'SUCCESS'"
                               " AND output_tokens = 13"), ==, 1);

  /* While A cools down, requests go straight to B. */
  g_clear_pointer (&body, g_bytes_unref);
  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 200);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log"), ==, 3);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_rotation_log"), ==, 1);
}

static void
test_rate_limited_day (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GkKey) a = NULL;
  g_autoptr(GTimeZone) pacific = g_time_zone_new_identifier ("America/Los_Angeles");
  gint64 a_id = add_key (f, "RATEDAY", 9, NULL);
  gint64 now = gk_database_now (f->db);
  guint status;

  add_key (f, "OK", 5, NULL);
  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 200);

  a = get_key (f, a_id);
  g_assert_cmpint (a->status, ==, GK_KEY_STATUS_RATE_LIMITED);
  g_assert_nonnull (pacific);
  g_assert_cmpint (a->cooldown_until, ==, gk_quota_next_reset (GK_QUOTA_DAILY, now, pacific));
  /* 2026-03-15 12:00 UTC is 05:00 PDT: the next Pacific midnight is 07:00 UTC next day. */
  g_assert_cmpint (a->cooldown_until, ==, GK_TEST_EPOCH + 19 * 3600);
}

static void
test_rate_limited_project (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GkKey) a = NULL;
  g_autoptr(GkKey) sibling = NULL;
  g_autoptr(GkKey) other = NULL;
  gint64 a_id = add_key (f, "RATEPROJ", 9, "project-one");
  gint64 sibling_id = add_key (f, "OK", 8, "project-one");
  gint64 other_id = add_key (f, "OK", 5, "project-two");
  guint status;

  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 200);

  a = get_key (f, a_id);
  sibling = get_key (f, sibling_id);
  other = get_key (f, other_id);
  g_assert_cmpint (a->status, ==, GK_KEY_STATUS_RATE_LIMITED);
  /* The key of the same project shares Google's limit: it was not tried. */
  g_assert_cmpint (sibling->cooldown_until, >, gk_database_now (f->db));
  g_assert_cmpint (other->cooldown_until, ==, 0);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log WHERE status = 'SUCCESS'"),
                   ==, 1);
  g_assert_cmpint (sql_int (f, "SELECT key_id FROM gemini_key_usage_log WHERE status = 'SUCCESS'"),
                   ==, other_id);
}

static void
test_invalid_key (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GkKey) a = NULL;
  g_autoptr(GkKey) s = NULL;
  g_autofree char *reason = NULL;
  g_autofree char *errors = NULL;
  gint64 a_id = add_key (f, "INVALID", 9, NULL);
  gint64 s_id = add_key (f, "SUSPEND", 8, NULL);
  gint64 b_id = add_key (f, "OK", 5, NULL);
  guint status;

  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 200);

  a = get_key (f, a_id);
  s = get_key (f, s_id);
  g_assert_cmpint (a->status, ==, GK_KEY_STATUS_INVALID);
  g_assert_cmpint (s->status, ==, GK_KEY_STATUS_INVALID);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_rotation_log WHERE reason = 'INVALID_KEY'"),
                   ==, 2);
  reason = sql_text (f, "SELECT group_concat(status) FROM gemini_key_usage_log ORDER BY id");
  g_assert_cmpstr (reason, ==, "INVALID_KEY,INVALID_KEY,SUCCESS");
  g_assert_cmpint (sql_int (f, "SELECT key_id FROM gemini_key_usage_log WHERE status = 'SUCCESS'"),
                   ==, b_id);
  /* The suspended key's message quotes the key: stored redacted. */
  errors = sql_text (f, "SELECT group_concat(error_message, ' | ') FROM gemini_key_usage_log");
  g_assert_nonnull (errors);
  g_assert_null (strstr (errors, "AIzaSUSPEND"));
}

static void
test_transient_no_penalty (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GkKey) a = NULL;
  g_autoptr(GkKey) c = NULL;
  gint64 a_id = add_key (f, "E503", 9, NULL);
  gint64 c_id = add_key (f, "E500", 8, NULL);
  guint status;

  add_key (f, "OK", 5, NULL);
  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 200);

  a = get_key (f, a_id);
  c = get_key (f, c_id);
  g_assert_cmpint (a->status, ==, GK_KEY_STATUS_ACTIVE);
  g_assert_cmpint (a->cooldown_until, ==, 0);
  g_assert_cmpint (c->status, ==, GK_KEY_STATUS_ACTIVE);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_rotation_log"), ==, 0);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log WHERE status = 'ERROR'"
                               " AND http_status IN (500, 503)"), ==, 2);

  /* With only overloaded keys, Google's own 503 reaches the client. */
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) keys = gk_key_store_list (f->store, &error);

    for (guint i = 0; i < keys->len; i++)
      {
        GkKey *k = g_ptr_array_index (keys, i);

        if (k->id != a_id && k->id != c_id)
          g_assert_true (gk_key_store_delete (f->store, k->id, NULL));
      }
  }
  g_clear_pointer (&body, g_bytes_unref);
  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_true (status == 500 || status == 503);
  g_clear_pointer (&a, gk_key_free);
  a = get_key (f, a_id);
  g_assert_cmpint (a->status, ==, GK_KEY_STATUS_ACTIVE);
}

static JsonObject *admin_call (Fixture    *f,
                               const char *method,
                               const char *path,
                               const char *body_text,
                               guint       expect,
                               JsonNode  **keep);

/* The pool's budget, set through the admin API: once spent, every request
 * gets a 503 saying so, until it is raised or removed. */
static void
test_pool_budget (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GBytes) body = NULL;
  g_autoptr(JsonNode) n1 = NULL, n2 = NULL, n3 = NULL, n4 = NULL;
  JsonObject *obj;
  guint status;

  add_key (f, "OK", 5, NULL);
  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 200);

  obj = admin_call (f, "GET", "/budget", NULL, 200, &n1);
  g_assert_true (json_node_is_null (json_object_get_member (obj, "pool_budget_usd")));
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (obj, "keys")), ==, 1);

  obj = admin_call (f, "PUT", "/budget", "{\"monthly_budget_usd\":0}", 200, &n2);
  g_assert_cmpfloat (json_object_get_double_member (obj, "pool_budget_usd"), ==, 0);
  g_assert_cmpfloat (json_object_get_double_member (obj, "pool_budget_percent"), >=, 100);

  g_clear_pointer (&body, g_bytes_unref);
  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 503);
  assert_google_error (body, 503, "UNAVAILABLE",
                       "The pool’s monthly budget of $0.00 is spent: no key is used until the "
                       "month resets or the budget is raised.");

  admin_call (f, "PUT", "/budget", "{\"monthly_budget_usd\":\"lots\"}", 400, &n3);
  g_clear_pointer (&n3, json_node_unref);
  admin_call (f, "PUT", "/budget", "{\"monthly_budget_usd\":null}", 200, &n3);
  g_clear_pointer (&body, g_bytes_unref);
  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 200);

  /* Each change is in the audit log, by the admin token. */
  obj = admin_call (f, "GET", "/audit-logs?limit=2", NULL, 200, &n4);
  {
    JsonObject *row = json_array_get_object_element (json_object_get_array_member (obj,
                                                                                   "audit_logs"), 0);

    g_assert_cmpstr (json_object_get_string_member (row, "action"), ==, "setting_change");
    g_assert_cmpstr (json_object_get_string_member (row, "target"), ==, "pool_monthly_budget_usd");
    g_assert_cmpstr (json_object_get_string_member (row, "summary"), ==, "“0.00” → “”");
    g_assert_cmpstr (json_object_get_string_member (row, "actor"), ==, "admin");
  }
}

static void
count_no_key_lines_cb (GkGateway  *gateway,
                       const char *line,
                       gpointer    user_data)
{
  if (strstr (line, "-> 503 no active keys") != NULL)
    g_atomic_int_inc ((int *) user_data);
}

/* The 503s of requests no key could serve, as the usage log holds them. */
#define NO_KEY_ROWS_SQL \
  "SELECT count(*) FROM gemini_key_usage_log WHERE key_id IS NULL AND status = 'ERROR'" \
  " AND http_status = 503 AND error_message = 'No active keys available'" \
  " AND user_id = 'tester' AND model = 'gemini-2.5-flash'"

static void
test_no_keys_left (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GBytes) body = NULL;
  g_autofree char *text = NULL;
  guint status;
  int no_key_lines = 0;

  g_signal_connect (f->gateway, "log", G_CALLBACK (count_no_key_lines_cb), &no_key_lines);

  /* No key at all: each request is in the usage log, without a key, and
   * the gateway's log says so once, not per request. */
  for (guint i = 0; i < 5; i++)
    {
      g_clear_pointer (&body, g_bytes_unref);
      body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY,
                   &status);
      g_assert_cmpuint (status, ==, 503);
      assert_google_error (body, 503, "UNAVAILABLE", "No active keys available");
    }
  g_assert_cmpint (sql_int (f, NO_KEY_ROWS_SQL), ==, 5);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log"), ==, 5);
  g_assert_cmpint (g_atomic_int_get (&no_key_lines), ==, 1);

  /* Every key dies on this request: one row per failed attempt, and one
   * for the 503 the client got. */
  add_key (f, "INVALID", 9, NULL);
  add_key (f, "RATEMIN", 5, NULL);
  g_clear_pointer (&body, g_bytes_unref);
  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 503);
  assert_google_error (body, 503, "UNAVAILABLE", "No active keys available");
  text = bytes_to_string (body);
  g_assert_null (strstr (text, "AIza"));
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log"), ==, 8);
  g_assert_cmpint (sql_int (f, NO_KEY_ROWS_SQL), ==, 6);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log"
                               " WHERE key_id IS NOT NULL"), ==, 2);
  g_signal_handlers_disconnect_by_data (f->gateway, &no_key_lines);
  /* The last rotation found no key to go to. */
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_rotation_log WHERE to_key_id IS NULL"),
                   >=, 1);
}

/* Gives key @id a limit of @limit requests a day, @used of them used. */
static void
set_daily_requests (Fixture *f,
                    gint64   id,
                    gint64   limit,
                    gint64   used)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) key = get_key (f, id);
  g_autofree char *sql = NULL;
  GkKeySpec spec;

  gk_key_spec_from_key (&spec, key);
  spec.limits[GK_QUOTA_SLOT_DAILY_REQUESTS] = limit;
  g_assert_true (gk_key_store_update (f->store, id, &spec, NULL, &error));
  g_assert_no_error (error);
  sql = g_strdup_printf ("UPDATE gemini_key_quotas SET used_value = %" G_GINT64_FORMAT
                         " WHERE key_id = %" G_GINT64_FORMAT " AND quota_type = 'DAILY'"
                         " AND unit = 'REQUESTS'", used, id);
  gk_database_exec (f->db, sql, &error);
  g_assert_no_error (error);
  gk_database_touch (f->db);
}

/* Keys below the rotation threshold still have quota: once every key is
 * there, requests keep going to them (in the selector's order) until their
 * quota is used up, and only then does the gateway answer 503. */
static void
test_near_quota_keys_serve (Fixture       *f,
                            gconstpointer  data)
{
  gint64 a_id = add_key (f, "OK", 9, NULL);
  gint64 b_id = add_key (f, "OK", 5, NULL);
  g_autoptr(GkKey) a = NULL;
  g_autoptr(GBytes) body = NULL;
  guint status;

  /* 95 of 100 requests used: exactly at the 5% threshold, still eligible. */
  set_daily_requests (f, a_id, 100, 95);
  set_daily_requests (f, b_id, 100, 95);

  /* a drops below the threshold and leaves for b; b leaves for a; then
   * both serve until each has used its 100 requests. */
  for (guint i = 0; i < 10; i++)
    {
      g_clear_pointer (&body, g_bytes_unref);
      body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY,
                   &status);
      g_assert_cmpuint (status, ==, 200);
    }
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log WHERE status = 'SUCCESS'"),
                   ==, 10);
  /* Two rotations (a → b, b → a), none for the uses near the quota. */
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_rotation_log"), ==, 2);
  {
    g_autofree char *sql = g_strdup_printf ("SELECT count(*) FROM gemini_key_rotation_log"
                                            " WHERE from_key_id = %" G_GINT64_FORMAT
                                            " AND to_key_id = %" G_GINT64_FORMAT,
                                            b_id, a_id);
    g_assert_cmpint (sql_int (f, sql), ==, 1);
  }

  /* a, used first, is over quota now; nothing is left. */
  a = get_key (f, a_id);
  g_assert_cmpint (a->state, ==, GK_KEY_STATE_OVER_QUOTA);
  g_clear_pointer (&body, g_bytes_unref);
  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY,
               &status);
  g_assert_cmpuint (status, ==, 503);
  assert_google_error (body, 503, "UNAVAILABLE", "No active keys available");
}

static void
check_stream (Fixture    *f,
              const char *word,
              const char *path,
              const char *body_text,
              gint64      prompt,
              gint64      output,
              const char *expect_in_body)
{
  g_autoptr(GBytes) body = NULL;
  g_autofree char *text = NULL;
  g_autofree char *sql = NULL;
  gint64 id = add_key (f, word, 5, NULL);
  guint status;

  body = http (f, "POST", f->base, path, f->token, body_text, &status);
  g_assert_cmpuint (status, ==, 200);
  text = bytes_to_string (body);
  g_assert_nonnull (strstr (text, expect_in_body));

  sql = g_strdup_printf ("SELECT count(*) FROM gemini_key_usage_log WHERE key_id = %" G_GINT64_FORMAT
                         " AND status = 'SUCCESS' AND prompt_tokens = %" G_GINT64_FORMAT
                         " AND output_tokens = %" G_GINT64_FORMAT, id, prompt, output);
  g_assert_cmpint (sql_int (f, sql), ==, 1);
  g_assert_true (gk_key_store_delete (f->store, id, NULL));
}

static void
test_stream_usage (Fixture       *f,
                   gconstpointer  data)
{
  /* The last chunk holds prompt 20, candidates 15, thoughts 6; earlier
   * chunks hold partial counts that must not win. */
  check_stream (f, "OK", MODEL_PATH ":streamGenerateContent?alt=sse", GENERATE_BODY, 20, 21,
                " mock stream.");
  check_stream (f, "CRLF", MODEL_PATH ":streamGenerateContent?alt=sse", GENERATE_BODY, 20, 21,
                "\r\n\r\n");
  check_stream (f, "OK", MODEL_PATH ":streamGenerateContent", GENERATE_BODY, 20, 21, "[{");
  check_stream (f, "OK", "/v1beta/openai/chat/completions",
                "{\"model\":\"gemini-2.5-flash\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                13, 9, "[DONE]");
  check_stream (f, "OK", "/v1beta/openai/chat/completions",
                "{\"model\":\"gemini-2.5-flash\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                11, 7, "chat.completion");
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log WHERE model = 'gemini-2.5-flash'"),
                   ==, 5);
}

static void
test_stream_dropped (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *url = g_strconcat (f->base, MODEL_PATH ":streamGenerateContent?alt=sse", NULL);
  g_autoptr(SoupMessage) msg = soup_message_new ("POST", url);
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GkKey) key = NULL;
  gint64 id = add_key (f, "DROP", 5, NULL);

  soup_message_headers_replace (soup_message_get_request_headers (msg), "x-goog-api-key", f->token);
  soup_message_set_request_body_from_bytes (msg, "application/json",
                                            g_bytes_new_static (GENERATE_BODY, strlen (GENERATE_BODY)));
  body = soup_session_send_and_read (f->session, msg, NULL, &error);
  /* The answer had started, so it cannot move to another key: the client
   * gets the part that came (libsoup itself may or may not flag the cut). */
  if (body != NULL)
    {
      g_autofree char *text = bytes_to_string (body);

      g_assert_null (strstr (text, "mock stream."));
    }
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log WHERE status = 'ERROR'"),
                   ==, 1);
  key = get_key (f, id);
  g_assert_cmpint (key->status, ==, GK_KEY_STATUS_ACTIVE);
}

static void
test_dropped_before_answer_retries (Fixture       *f,
                                    gconstpointer  data)
{
  g_autoptr(GBytes) body = NULL;
  guint status;

  add_key (f, "DROP", 9, NULL);
  add_key (f, "OK", 5, NULL);
  /* A non-streamed answer is read whole before it is relayed, so a broken
   * connection moves the request to the next key. */
  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 200);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log WHERE status = 'ERROR'"
                               " AND (http_status = 0 OR http_status IS NULL)"), ==, 1);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log WHERE status = 'SUCCESS'"),
                   ==, 1);
}

static void
test_upstream_timeout (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GkKey) slow = NULL;
  gint64 slow_id = add_key (f, "SLOW", 9, NULL);
  guint status;

  add_key (f, "OK", 5, NULL);
  gk_gateway_set_upstream_timeout (f->gateway, 1);
  restart (f);
  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 200);
  slow = get_key (f, slow_id);
  g_assert_cmpint (slow->status, ==, GK_KEY_STATUS_ACTIVE);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log WHERE status = 'ERROR'"),
                   ==, 1);
}

static void
test_credentials_isolated (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(JsonNode) audit = NULL;
  g_autoptr(JsonNode) last = NULL;
  g_autofree char *query_path = NULL;
  g_autofree char *url = NULL;
  JsonObject *obj;
  guint status;

  add_key (f, "BADREQ", 5, NULL);

  /* Token as ?key=, as Authorization: Bearer, and as x-goog-api-key. */
  {
    g_autoptr(GBytes) body = NULL;
    g_autofree char *text = NULL;

    query_path = g_strconcat (MODEL_PATH ":generateContent?key=", f->token, NULL);
    body = http (f, "POST", f->base, query_path, NULL, GENERATE_BODY, &status);
    /* A client error is relayed, with the key quoted by Google redacted. */
    g_assert_cmpuint (status, ==, 400);
    text = bytes_to_string (body);
    g_assert_null (strstr (text, "AIzaBADREQ"));
    g_assert_nonnull (strstr (text, "Invalid JSON payload"));
  }
  {
    g_autoptr(SoupMessage) msg = NULL;
    g_autoptr(GBytes) body = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char *bearer = g_strconcat ("Bearer ", f->token, NULL);

    url = g_strconcat (f->base, "/v1beta/openai/chat/completions", NULL);
    msg = soup_message_new ("POST", url);
    soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", bearer);
    soup_message_set_request_body_from_bytes (msg, "application/json",
                                              g_bytes_new_static ("{\"model\":\"gemini-2.5-flash\"}", 27));
    body = soup_session_send_and_read (f->session, msg, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (soup_message_get_status (msg), ==, 400);
  }
  {
    g_autoptr(GBytes) body = NULL;

    body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
    g_assert_cmpuint (status, ==, 400);
  }

  mock_call (f, "GET", "/_mock/audit", &audit);
  obj = json_node_get_object (audit);
  g_assert_cmpint (json_object_get_int_member (obj, "requests"), ==, 3);
  g_assert_cmpint (json_object_get_int_member (obj, "header"), ==, 3);
  g_assert_cmpint (json_object_get_int_member (obj, "query"), ==, 0);
  g_assert_cmpint (json_object_get_int_member (obj, "bearer"), ==, 0);
  g_assert_cmpint (json_object_get_int_member (obj, "multiple"), ==, 0);
  g_assert_cmpint (json_array_get_length (json_object_get_array_member (obj, "foreign")), ==, 0);
  g_assert_cmpint (mock_count (f, f->token), ==, 0);

  mock_call (f, "GET", "/_mock/last", &last);
  g_assert_false (json_object_has_member (json_node_get_object (last), "authorization"));
  g_assert_false (json_object_has_member (json_node_get_object (last), "cookie"));

  /* A successful answer carries no key either. */
  add_key (f, "OK", 9, NULL);
  {
    g_autoptr(SoupMessage) msg = NULL;
    g_autoptr(GBytes) body = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char *text = NULL;
    SoupMessageHeadersIter iter;
    const char *name, *value;

    g_free (url);
    url = g_strconcat (f->base, MODEL_PATH ":generateContent", NULL);
    msg = soup_message_new ("POST", url);
    soup_message_headers_replace (soup_message_get_request_headers (msg), "x-goog-api-key", f->token);
    soup_message_set_request_body_from_bytes (msg, "application/json",
                                              g_bytes_new_static (GENERATE_BODY, strlen (GENERATE_BODY)));
    body = soup_session_send_and_read (f->session, msg, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (soup_message_get_status (msg), ==, 200);
    text = bytes_to_string (body);
    g_assert_null (strstr (text, "AIza"));
    soup_message_headers_iter_init (&iter, soup_message_get_response_headers (msg));
    while (soup_message_headers_iter_next (&iter, &name, &value))
      {
        g_assert_null (strstr (value, "AIza"));
        g_assert_false (g_ascii_strcasecmp (name, "Access-Control-Allow-Origin") == 0);
      }
  }
}

static void
test_auth_and_host (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GBytes) body = NULL;
  g_autofree char *answer = NULL;
  g_autofree char *request = NULL;
  g_autoptr(GError) error = NULL;
  gint64 token_id = 0;
  g_autofree char *revoked = NULL;
  guint status;

  add_key (f, "OK", 5, NULL);

  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", NULL, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 401);
  assert_google_error (body, 401, "UNAUTHENTICATED", NULL);

  g_clear_pointer (&body, g_bytes_unref);
  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", "not-a-token", GENERATE_BODY,
               &status);
  g_assert_cmpuint (status, ==, 401);
  assert_google_error (body, 401, "UNAUTHENTICATED", NULL);

  /* A real API key is not a gateway token either. */
  {
    g_autofree char *key = mock_key ("OK", 77);

    g_clear_pointer (&body, g_bytes_unref);
    body = http (f, "POST", f->base, MODEL_PATH ":generateContent", key, GENERATE_BODY, &status);
    g_assert_cmpuint (status, ==, 401);
  }

  /* A revoked token stops working at once. */
  revoked = gk_token_create (f->db, "leaver", &token_id, &error);
  g_assert_no_error (error);
  g_clear_pointer (&body, g_bytes_unref);
  body = http (f, "GET", f->base, "/v1beta/models", revoked, NULL, &status);
  g_assert_cmpuint (status, ==, 200);
  g_assert_true (gk_token_revoke (f->db, token_id, &error));
  g_clear_pointer (&body, g_bytes_unref);
  body = http (f, "GET", f->base, "/v1beta/models", revoked, NULL, &status);
  g_assert_cmpuint (status, ==, 401);

  /* DNS rebinding: a page on another name reaching the loopback port. */
  request = g_strdup_printf ("GET /v1beta/models HTTP/1.1\r\nHost: evil.example:%u\r\n"
                             "x-goog-api-key: %s\r\nConnection: close\r\n\r\n",
                             gk_gateway_get_port (f->gateway), f->token);
  answer = raw_request (f, request, strlen (request));
  g_assert_true (g_str_has_prefix (answer, "HTTP/1.1 403"));
  g_assert_nonnull (strstr (answer, "PERMISSION_DENIED"));

  g_free (request);
  g_free (answer);
  request = g_strdup_printf ("GET /v1beta/models HTTP/1.1\r\nHost: localhost:%u\r\n"
                             "x-goog-api-key: %s\r\nConnection: close\r\n\r\n",
                             gk_gateway_get_port (f->gateway), f->token);
  answer = raw_request (f, request, strlen (request));
  g_assert_true (g_str_has_prefix (answer, "HTTP/1.1 200"));

  /* Only the mock's stats for real calls: refused requests never left. */
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log"), ==, 2);
}

static void
test_body_limit (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GString) big = g_string_new ("{\"contents\":\"");
  g_autoptr(GBytes) body = NULL;
  g_autoptr(JsonNode) audit = NULL;
  g_autoptr(GString) chunked = NULL;
  g_autofree char *answer = NULL;
  guint status;

  add_key (f, "OK", 5, NULL);
  gk_gateway_set_body_limit (f->gateway, 1024);
  restart (f);

  while (big->len < 4000)
    g_string_append (big, "xxxxxxxxxxxxxxxxxxxxxxxx");
  g_string_append (big, "\"}");

  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, big->str, &status);
  g_assert_cmpuint (status, ==, 413);
  assert_google_error (body, 413, "INVALID_ARGUMENT", NULL);

  /* Without Content-Length the limit is enforced while reading. */
  chunked = g_string_new (NULL);
  g_string_append_printf (chunked, "POST " MODEL_PATH ":generateContent HTTP/1.1\r\n"
                          "Host: 127.0.0.1:%u\r\nx-goog-api-key: %s\r\n"
                          "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                          "Connection: close\r\n\r\n", gk_gateway_get_port (f->gateway), f->token);
  for (guint i = 0; i < 4; i++)
    g_string_append_printf (chunked, "%zx\r\n%s\r\n", big->len, big->str);
  g_string_append (chunked, "0\r\n\r\n");
  answer = raw_request (f, chunked->str, chunked->len);
  g_assert_true (g_str_has_prefix (answer, "HTTP/1.1 413"));

  /* A small body still passes. */
  g_clear_pointer (&body, g_bytes_unref);
  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 200);

  mock_call (f, "GET", "/_mock/audit", &audit);
  g_assert_cmpint (json_object_get_int_member (json_node_get_object (audit), "requests"), ==, 1);
}

static void
test_concurrency_cap (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GBytes) body = NULL;
  g_autoptr(SoupMessage) slow_msg = NULL;
  g_autofree char *url = NULL;
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(SoupSession) async_session = NULL;
  guint status;

  add_key (f, "SLOW", 5, NULL);
  gk_gateway_set_max_in_flight (f->gateway, 1);
  restart (f);

  /* One slow request in flight (sent from a private context), then a second
   * one is turned away at once. */
  g_main_context_push_thread_default (context);
  async_session = soup_session_new ();
  url = g_strconcat (f->base, MODEL_PATH ":generateContent", NULL);
  slow_msg = soup_message_new ("POST", url);
  soup_message_headers_replace (soup_message_get_request_headers (slow_msg), "x-goog-api-key", f->token);
  soup_message_set_request_body_from_bytes (slow_msg, "application/json",
                                            g_bytes_new_static (GENERATE_BODY, strlen (GENERATE_BODY)));
  soup_session_send_async (async_session, slow_msg, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
  /* Let it reach the gateway. */
  for (guint i = 0; i < 50; i++)
    {
      while (g_main_context_iteration (context, FALSE))
        ;
      g_usleep (10000);
    }
  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 503);
  assert_google_error (body, 503, "UNAVAILABLE", NULL);
  soup_session_abort (async_session);
  while (g_main_context_iteration (context, FALSE))
    ;
  g_main_context_pop_thread_default (context);
}

static void
test_loopback_only (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GkGateway) other = gk_gateway_new (f->store, f->pool);
  g_autoptr(GError) error = NULL;

  g_assert_false (gk_gateway_start (other, "0.0.0.0", 0, &error));
  g_assert_error (error, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_ADDRESS);
  g_clear_error (&error);
  g_assert_false (gk_gateway_start (other, "192.0.2.10", 0, &error));
  g_assert_error (error, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_ADDRESS);
  g_clear_error (&error);
  /* The port of the running gateway is taken. */
  g_assert_false (gk_gateway_start (other, "127.0.0.1", gk_gateway_get_port (f->gateway), &error));
  g_assert_error (error, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_ADDRESS);
  g_assert_false (gk_gateway_is_running (other));
}

static void
test_query_and_paths (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GBytes) body = NULL;
  g_autoptr(JsonNode) root = NULL;
  guint status;

  add_key (f, "OK", 5, NULL);
  body = http (f, "GET", f->base, "/v1beta/models?pageSize=2", f->token, NULL, &status);
  g_assert_cmpuint (status, ==, 200);
  root = parse_json (body);
  g_assert_cmpint (json_array_get_length (json_object_get_array_member (json_node_get_object (root), "models")),
                   ==, 2);
  g_assert_cmpstr (json_object_get_string_member (json_node_get_object (root), "nextPageToken"), ==, "2");

  g_clear_pointer (&body, g_bytes_unref);
  body = http (f, "POST", f->base, "/v1/models/gemini-embedding-001:batchEmbedContents", f->token,
               "{\"requests\":[{},{},{}]}", &status);
  g_assert_cmpuint (status, ==, 200);
  g_clear_pointer (&root, json_node_unref);
  root = parse_json (body);
  g_assert_cmpint (json_array_get_length (json_object_get_array_member (json_node_get_object (root), "embeddings")),
                   ==, 3);

  g_clear_pointer (&body, g_bytes_unref);
  body = http (f, "GET", f->base, "/not/an/api", f->token, NULL, &status);
  g_assert_cmpuint (status, ==, 404);
}

static JsonObject *
admin_call (Fixture    *f,
            const char *method,
            const char *path,
            const char *body_text,
            guint       expect,
            JsonNode  **keep)
{
  g_autoptr(GBytes) body = NULL;
  g_autofree char *full = g_strconcat ("/admin/gemini-keys", path, NULL);
  guint status;

  body = http (f, method, f->base, full, f->admin_token, body_text, &status);
  g_assert_cmpuint (status, ==, expect);
  *keep = parse_json (body);
  return json_node_get_object (*keep);
}

/* The member @member of a GET of @path: its length when it is an array,
 * else its value. */
static gint64
admin_member (Fixture    *f,
              const char *path,
              const char *member)
{
  g_autoptr(JsonNode) node = NULL;
  JsonNode *value = json_object_get_member (admin_call (f, "GET", path, NULL, 200, &node),
                                            member);

  g_assert_nonnull (value);
  if (JSON_NODE_HOLDS_ARRAY (value))
    return json_array_get_length (json_node_get_array (value));
  return json_node_get_int (value);
}

/* The read-only paths' query parameters: ?days is checked (a 400 names
 * it); ?limit, ?offset and ?key_id out of range or not numbers are their
 * defaults; the dashboard shows 30 days from ?days=30 up, else 7. */
static void
test_admin_query (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  gint64 all;

  for (guint i = 0; i < 3; i++)
    {
      gk_audit_record (f->db, GK_AUDIT_SETTING_CHANGE, 0, "setting", NULL, &error);
      g_assert_no_error (error);
    }
  all = admin_member (f, "/audit-logs", "audit_logs");
  g_assert_cmpint (all, >=, 3);
  g_assert_cmpint (all, <, 50);
  g_assert_cmpint (admin_member (f, "/audit-logs?limit=2", "audit_logs"), ==, 2);
  g_assert_cmpint (admin_member (f, "/audit-logs?limit=lots", "audit_logs"), ==, all);
  g_assert_cmpint (admin_member (f, "/audit-logs?limit=501", "audit_logs"), ==, all);
  g_assert_cmpint (admin_member (f, "/audit-logs?offset=1", "audit_logs"), ==, all - 1);
  g_assert_cmpint (admin_member (f, "/audit-logs?offset=-1", "audit_logs"), ==, all);
  g_assert_cmpint (admin_member (f, "/audit-logs?limit=1&offset=1", "total"), ==, all);
  g_assert_cmpint (admin_member (f, "/rotation-logs?limit=x", "rotations"), ==, 0);
  g_assert_cmpint (admin_member (f, "/usage-logs?key_id=x&limit=0", "logs"), ==, 0);

  g_assert_cmpint (admin_member (f, "/compare", "days"), ==, 7);
  g_assert_cmpint (admin_member (f, "/compare?days=366", "days"), ==, 366);
  g_assert_cmpint (admin_member (f, "/rotation-spikes?days=1", "days"), ==, 1);
  for (guint i = 0; i < 2; i++)
    {
      const char *path = i == 0 ? "/compare?days=367" : "/rotation-spikes?days=week";
      g_autoptr(GBytes) body = NULL;
      g_autofree char *full = g_strconcat ("/admin/gemini-keys", path, NULL);
      guint status;

      body = http (f, "GET", f->base, full, f->admin_token, NULL, &status);
      g_assert_cmpuint (status, ==, 400);
      assert_google_error (body, 400, "INVALID_ARGUMENT",
                           "days must be a whole number from 1 to 366.");
    }

  g_assert_cmpint (admin_member (f, "/dashboard", "days"), ==, 7);
  g_assert_cmpint (admin_member (f, "/dashboard?days=30", "days"), ==, 30);
  g_assert_cmpint (admin_member (f, "/dashboard?days=90", "days"), ==, 30);
  g_assert_cmpint (admin_member (f, "/dashboard?days=29", "days"), ==, 7);
  g_assert_cmpint (admin_member (f, "/dashboard?days=400", "days"), ==, 7);
  g_assert_cmpint (admin_member (f, "/dashboard?days=month", "days"), ==, 7);
}

static void
test_admin_api (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GBytes) body = NULL;
  g_autoptr(JsonNode) n1 = NULL, n2 = NULL, n3 = NULL, n4 = NULL, n5 = NULL, n6 = NULL, n7 = NULL;
  g_autoptr(JsonNode) n8 = NULL;
  g_autofree char *create = NULL;
  g_autofree char *secret = mock_key ("OK", 4242);
  g_autofree char *path = NULL;
  JsonObject *obj;
  JsonArray *keys;
  gint64 id;
  guint status;

  /* A client token that is not the admin's is refused. */
  body = http (f, "GET", f->base, "/admin/gemini-keys/", f->token, NULL, &status);
  g_assert_cmpuint (status, ==, 403);
  g_clear_pointer (&body, g_bytes_unref);
  body = http (f, "GET", f->base, "/admin/gemini-keys/", NULL, NULL, &status);
  g_assert_cmpuint (status, ==, 401);

  create = g_strdup_printf ("{\"name\":\"Main\",\"api_key\":\"%s\",\"priority\":7,\"daily_quota\":1000}",
                            secret);
  obj = admin_call (f, "POST", "/", create, 201, &n1);
  id = json_object_get_int_member (obj, "id");
  g_assert_cmpint (id, >, 0);
  g_assert_cmpstr (json_object_get_string_member (obj, "name"), ==, "Main");
  g_assert_cmpint (json_object_get_int_member (obj, "priority"), ==, 7);
  {
    g_autofree char *text = json_to_string (n1, FALSE);

    g_assert_null (strstr (text, secret));
  }

  /* The same key twice is a conflict. */
  admin_call (f, "POST", "/", create, 409, &n8);

  obj = admin_call (f, "GET", "", NULL, 200, &n2);
  keys = json_object_get_array_member (obj, "keys");
  g_assert_cmpint (json_array_get_length (keys), ==, 1);
  {
    g_autofree char *text = json_to_string (n2, FALSE);

    g_assert_null (strstr (text, secret));
  }

  path = g_strdup_printf ("/%" G_GINT64_FORMAT, id);
  obj = admin_call (f, "PUT", path, "{\"priority\":3}", 200, &n3);
  g_assert_cmpint (json_object_get_int_member (obj, "priority"), ==, 3);
  g_assert_cmpstr (json_object_get_string_member (obj, "name"), ==, "Main");

  /* The gateway can use it. */
  g_clear_pointer (&body, g_bytes_unref);
  body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY, &status);
  g_assert_cmpuint (status, ==, 200);

  obj = admin_call (f, "GET", "/usage-logs?limit=10", NULL, 200, &n4);
  g_assert_cmpint (json_array_get_length (json_object_get_array_member (obj, "logs")), ==, 1);

  g_free (path);
  path = g_strdup_printf ("/%" G_GINT64_FORMAT "/rotate", id);
  admin_call (f, "POST", path, NULL, 200, &n5);

  obj = admin_call (f, "GET", "/rotation-logs", NULL, 200, &n6);
  g_assert_cmpint (json_array_get_length (json_object_get_array_member (obj, "rotations")), ==, 1);

  g_assert_false (json_object_get_boolean_member (
                    json_array_get_object_element (
                      json_object_get_array_member (obj, "rotations"), 0), "in_spike"));

  /* Insights: the comparison, the forecast and the rotation spikes. */
  g_clear_pointer (&n7, json_node_unref);
  obj = admin_call (f, "GET", "/compare?days=1", NULL, 200, &n7);
  g_assert_cmpint (json_object_get_int_member (obj, "days"), ==, 1);
  keys = json_object_get_array_member (obj, "keys");
  g_assert_cmpuint (json_array_get_length (keys), ==, 1);
  g_assert_cmpint (json_object_get_int_member (json_array_get_object_element (keys, 0),
                                               "requests"), ==, 1);
  g_assert_cmpfloat (json_object_get_double_member (json_array_get_object_element (keys, 0),
                                                    "success_rate"), ==, 100);
  g_assert_cmpfloat (json_object_get_double_member (json_array_get_object_element (keys, 0),
                                                    "share"), ==, 100);
  {
    g_autofree char *text = json_to_string (n7, FALSE);

    g_assert_null (strstr (text, secret));
  }
  g_clear_pointer (&n7, json_node_unref);
  admin_call (f, "GET", "/compare?days=0", NULL, 400, &n7);
  g_clear_pointer (&n7, json_node_unref);
  admin_call (f, "POST", "/compare", NULL, 405, &n7);
  g_clear_pointer (&n7, json_node_unref);
  obj = admin_call (f, "GET", "/forecast", NULL, 200, &n7);
  g_assert_true (json_object_has_member (obj, "windows"));
  g_assert_cmpint (json_object_get_int_member (obj, "keys_out_today"), ==, 0);
  g_clear_pointer (&n7, json_node_unref);
  obj = admin_call (f, "GET", "/rotation-spikes?days=2", NULL, 200, &n7);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (obj, "spikes")), ==, 0);

  g_clear_pointer (&n7, json_node_unref);
  admin_call (f, "GET", "/dashboard?days=7", NULL, 200, &n7);
  g_clear_pointer (&n7, json_node_unref);
  admin_call (f, "POST", "/quotas/reset", "{\"type\":\"daily\"}", 200, &n7);

  g_free (path);
  path = g_strdup_printf ("/%" G_GINT64_FORMAT, id);
  g_clear_pointer (&n7, json_node_unref);
  admin_call (f, "DELETE", path, NULL, 200, &n7);
  g_clear_pointer (&n7, json_node_unref);
  admin_call (f, "GET", path, NULL, 404, &n7);

  /* Each change made through the API is in the audit log, by the admin
   * token, newest first, without the key. */
  {
    const char *expected[] = { "key_delete", "quota_reset", "key_skip", "key_edit", "key_add" };
    g_autofree char *text = NULL;
    JsonArray *rows;

    g_clear_pointer (&n7, json_node_unref);
    obj = admin_call (f, "GET", "/audit-logs?limit=5", NULL, 200, &n7);
    rows = json_object_get_array_member (obj, "audit_logs");
    g_assert_cmpuint (json_array_get_length (rows), ==, G_N_ELEMENTS (expected));
    g_assert_cmpint (json_object_get_int_member (obj, "total"), >=, G_N_ELEMENTS (expected));
    for (guint i = 0; i < G_N_ELEMENTS (expected); i++)
      {
        JsonObject *row = json_array_get_object_element (rows, i);

        g_assert_cmpstr (json_object_get_string_member (row, "action"), ==, expected[i]);
        g_assert_cmpstr (json_object_get_string_member (row, "actor"), ==, "admin");
      }
    g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (rows, 3),
                                                    "summary"), ==, "priority 7 → 3");
    text = json_to_string (n7, FALSE);
    g_assert_null (strstr (text, secret));
    g_clear_pointer (&n7, json_node_unref);
    admin_call (f, "DELETE", "/audit-logs", NULL, 405, &n7);
  }

  /* Hygiene: the deleted key is not listed; the master key's age is. */
  {
    g_clear_pointer (&n7, json_node_unref);
    obj = admin_call (f, "GET", "/hygiene", NULL, 200, &n7);
    g_assert_cmpuint (json_array_get_length (json_object_get_array_member (obj,
                                                                           "consider_deleting")),
                      ==, 0);
    g_assert_true (json_object_has_member (obj, "master_key"));
  }
}

typedef struct
{
  GMainLoop *loop;
  gboolean   ok;
  GError    *error;
} Wait;

static void
test_key_done_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  Wait *wait = user_data;

  wait->ok = gk_gateway_test_key_finish (result, &wait->error);
  g_main_loop_quit (wait->loop);
}

static gboolean
run_key_test (Fixture *f,
              gint64   id,
              GError **error)
{
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  Wait wait = { loop, FALSE, NULL };

  gk_gateway_test_key_async (f->store, id, NULL, test_key_done_cb, &wait);
  g_main_loop_run (loop);
  if (wait.error)
    g_propagate_error (error, wait.error);
  return wait.ok;
}

static void
test_key_test (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GkKey) bad = NULL;
  g_autoptr(GkKey) good = NULL;
  gint64 bad_id = add_key (f, "INVALID", 5, NULL);
  gint64 good_id = add_key (f, "OK", 5, NULL);
  gint64 down_id = add_key (f, "E503", 5, NULL);

  g_assert_false (run_key_test (f, bad_id, &error));
  g_assert_error (error, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_INVALID_KEY);
  g_clear_error (&error);
  bad = get_key (f, bad_id);
  g_assert_cmpint (bad->status, ==, GK_KEY_STATUS_INVALID);

  /* A good key marked invalid is cleared by a successful test. */
  g_assert_true (gk_key_store_set_status (f->store, good_id, GK_KEY_STATUS_INVALID, "test", &error));
  g_assert_true (run_key_test (f, good_id, &error));
  g_assert_no_error (error);
  good = get_key (f, good_id);
  g_assert_cmpint (good->status, ==, GK_KEY_STATUS_ACTIVE);

  g_assert_false (run_key_test (f, down_id, &error));
  g_assert_error (error, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_UPSTREAM);
  g_clear_pointer (&good, gk_key_free);
  good = get_key (f, down_id);
  g_assert_cmpint (good->status, ==, GK_KEY_STATUS_ACTIVE);
}

/* The last @n lines of @text on one line (a TAP skip reason is one line),
 * separated by " | ". */
static char *
last_lines (const char *text,
            guint       n)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  g_autoptr(GPtrArray) kept = g_ptr_array_new ();
  guint len = g_strv_length (lines);

  for (guint i = len; i > 0 && kept->len < n; i--)
    {
      char *line = g_strstrip (lines[i - 1]);

      if (*line != '\0')
        g_ptr_array_insert (kept, 0, line);
    }
  g_ptr_array_add (kept, NULL);
  return g_strjoinv (" | ", (char **) kept->pdata);
}

/* Installs the SDK client's node packages (tests/sdk-client) with npm ci
 * into the build tree, never into the source tree, once per version of its
 * package-lock.json. Returns the folder to run it from, or NULL with
 * *@why saying why npm could not install them: whatever the reason
 * (no network, a proxy, TLS, a registry mirror), that is the machine's
 * problem, not the gateway's, and the test is skipped. */
static char *
sdk_client_install (const char  *npm,
                    char       **why)
{
  static const char *files[] = { "package.json", "package-lock.json", "run.mjs" };
  g_autoptr(GError) error = NULL;
  g_autofree char *src = g_build_filename (g_getenv ("GEMINI_KEYS_SOURCE_ROOT"), "tests",
                                           "sdk-client", NULL);
  g_autofree char *dir = g_build_filename (g_getenv ("GEMINI_KEYS_BUILD_ROOT"), "tests",
                                           "sdk-client", NULL);
  g_autofree char *marker = g_build_filename (dir, "installed-package-lock.json", NULL);
  g_autofree char *modules = g_build_filename (dir, "node_modules", "@google", "genai", NULL);
  g_autofree char *lock = NULL;
  g_autofree char *installed = NULL;
  g_autofree char *npm_home = NULL;
  g_autofree char *cache = NULL;
  g_autofree char *out = NULL;
  g_autofree char *timeout = g_find_program_in_path ("timeout");
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();

  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *from = g_build_filename (src, files[i], NULL);
      g_autofree char *to = g_build_filename (dir, files[i], NULL);
      g_autofree char *contents = NULL;
      gsize len = 0;

      g_file_get_contents (from, &contents, &len, &error);
      g_assert_no_error (error);
      g_file_set_contents (to, contents, len, &error);
      g_assert_no_error (error);
      if (g_str_equal (files[i], "package-lock.json"))
        lock = g_steal_pointer (&contents);
    }
  if (g_file_get_contents (marker, &installed, NULL, NULL) && g_str_equal (installed, lock) &&
      g_file_test (modules, G_FILE_TEST_IS_DIR))
    return g_steal_pointer (&dir);

  /* npm ci starts by removing node_modules: whatever happens next, the
   * old installation is gone. */
  g_unlink (marker);
  npm_home = g_dir_make_tmp ("gk-npm-XXXXXX", &error);
  g_assert_no_error (error);
  cache = g_build_filename (dir, "npm-cache", NULL);
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_set_cwd (launcher, dir);
  /* The isolated test HOME is not writable by npm: give it one of its own. */
  g_subprocess_launcher_setenv (launcher, "HOME", npm_home, TRUE);
  g_subprocess_launcher_setenv (launcher, "npm_config_cache", cache, TRUE);
  g_subprocess_launcher_setenv (launcher, "npm_config_update_notifier", "false", TRUE);
  g_subprocess_launcher_setenv (launcher, "npm_config_fetch_retries", "1", TRUE);
  g_subprocess_launcher_setenv (launcher, "npm_config_fetch_timeout", "60000", TRUE);
  /* A stalled proxy must not take the suite's whole time-out. */
  if (timeout != NULL)
    {
      g_ptr_array_add (argv, timeout);
      g_ptr_array_add (argv, (gpointer) "180");
    }
  g_ptr_array_add (argv, (gpointer) npm);
  g_ptr_array_add (argv, (gpointer) "ci");
  g_ptr_array_add (argv, (gpointer) "--no-audit");
  g_ptr_array_add (argv, (gpointer) "--no-fund");
  g_ptr_array_add (argv, NULL);
  proc = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (proc, NULL, NULL, &out, NULL, &error);
  g_assert_no_error (error);
  gk_test_rm_rf (npm_home);

  if (!g_subprocess_get_successful (proc))
    {
      g_autofree char *tail = last_lines (out != NULL ? out : "", 8);

      *why = g_strdup_printf ("npm ci could not install the SDK's packages into %s "
                              "(exit status %d): %s", dir,
                              g_subprocess_get_if_exited (proc)
                                ? g_subprocess_get_exit_status (proc) : -1,
                              tail);
      return NULL;
    }
  g_file_set_contents (marker, lock, -1, &error);
  g_assert_no_error (error);
  return g_steal_pointer (&dir);
}

/* The official JS SDK with only baseUrl and apiKey changed. */
static void
test_official_sdk (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *node = g_find_program_in_path ("node");
  g_autofree char *npm = g_find_program_in_path ("npm");
  g_autofree char *sdk_dir = NULL;
  g_autofree char *why = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) proc = NULL;

  if (node == NULL || npm == NULL)
    {
      g_test_skip ("node and npm are not installed (Debian: nodejs, npm)");
      return;
    }
  sdk_dir = sdk_client_install (npm, &why);
  if (sdk_dir == NULL)
    {
      g_test_skip (why);
      return;
    }

  add_key (f, "OK", 5, NULL);
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_set_cwd (launcher, sdk_dir);
  g_subprocess_launcher_setenv (launcher, "GK_BASE_URL", f->base, TRUE);
  g_subprocess_launcher_setenv (launcher, "GK_TOKEN", f->token, TRUE);
  proc = g_subprocess_launcher_spawn (launcher, &error, node, "run.mjs", NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (proc, NULL, NULL, &out, &err, &error);
  g_assert_no_error (error);
  if (!g_subprocess_get_successful (proc))
    g_error ("the SDK client failed:\n%s\n%s", out, err);

  g_assert_nonnull (strstr (out, "\"text\":\"Hello from the mock.\""));
  g_assert_nonnull (strstr (out, "\"text\":\"Hello from the mock stream.\""));
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log WHERE status = 'SUCCESS'"
                               " AND user_id = 'tester' AND model = 'gemini-2.5-flash'"), ==, 2);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log WHERE prompt_tokens = 12"
                               " AND output_tokens = 13"), ==, 1);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log WHERE prompt_tokens = 20"
                               " AND output_tokens = 21"), ==, 1);
  /* The SDK's token never reached the upstream. */
  g_assert_cmpint (mock_count (f, f->token), ==, 0);
}

/* ---- the upstream client ------------------------------------------------ */

/* A raw HTTP/1.1 upstream whose every byte the test controls: what the mock
 * (libsoup) never does, such as closing a kept-alive connection, a body cut
 * short or a chunked body that trickles in byte by byte. Each connection is
 * served by a thread of its own with blocking I/O. */
typedef enum
{
  RAW_KEEP,               /* Content-Length answers, connection kept */
  RAW_CLOSE_AFTER_ANSWER, /* closes each connection after one answer */
  RAW_DROP_SECOND,        /* closes without answering a connection's 2nd request */
  RAW_TRICKLE_CHUNKED,    /* chunked, extensions and a trailer, one byte a write */
  RAW_EOF_BODY,           /* no length: the body ends at the close */
  RAW_CUT_BODY,           /* Content-Length larger than what is sent, then close */
} RawMode;

/* The usage text quoted inside a string and a nested "usage" object must
 * not be taken for the answer's own usageMetadata (7 + 3). */
#define RAW_ANSWER \
  "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"quoted \\\"usageMetadata\\\":" \
  "{\\\"promptTokenCount\\\":999} and {\\\"usage\\\":1} \\\\\"}],\"role\":\"model\"}," \
  "\"index\":0}],\"nested\":{\"usage\":{\"prompt_tokens\":555}}," \
  "\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":3,\"totalTokenCount\":10}," \
  "\"modelVersion\":\"raw\"}"

typedef struct
{
  GSocket      *listener;
  GThread      *thread;
  RawMode       mode;
  const char   *answer;       /* the body of every answer */
  guint16       port;
  char         *base;
  gint          connections;
  gint          requests;
  gint          closed;
} RawServer;

typedef struct
{
  RawServer *raw;
  GSocket   *socket;
} RawConn;

static void
raw_write (GOutputStream *out,
           const char    *text,
           gsize          len,
           gboolean       trickle)
{
  if (!trickle)
    {
      g_output_stream_write_all (out, text, len, NULL, NULL, NULL);
      return;
    }
  for (gsize i = 0; i < len; i++)
    {
      if (!g_output_stream_write_all (out, text + i, 1, NULL, NULL, NULL))
        return;
      g_usleep (200);
    }
}

static void
raw_answer (RawServer     *raw,
            GOutputStream *out)
{
  const char *body = raw->answer;
  gsize len = strlen (body);
  g_autofree char *text = NULL;

  switch (raw->mode)
    {
    case RAW_TRICKLE_CHUNKED:
      {
        g_autoptr(GString) chunked = g_string_new ("HTTP/1.1 200 OK\r\n"
                                                   "Content-Type: application/json\r\n"
                                                   "Transfer-Encoding: chunked\r\n\r\n");

        for (gsize i = 0; i < len; i += 61)
          {
            gsize n = MIN (61, len - i);

            g_string_append_printf (chunked, "%zx%s\r\n", n, i == 0 ? ";note=first" : "");
            g_string_append_len (chunked, body + i, n);
            g_string_append (chunked, "\r\n");
          }
        g_string_append (chunked, "0\r\nX-Trailer: yes\r\n\r\n");
        raw_write (out, chunked->str, chunked->len, TRUE);
      }
      return;
    case RAW_EOF_BODY:
      text = g_strdup_printf ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n%s", body);
      break;
    case RAW_CUT_BODY:
      text = g_strdup_printf ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              "Content-Length: %zu\r\n\r\n%s", len + 50, body);
      break;
    case RAW_KEEP:
    case RAW_CLOSE_AFTER_ANSWER:
    case RAW_DROP_SECOND:
    default:
      text = g_strdup_printf ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              "Content-Length: %zu\r\n\r\n%s", len, body);
      break;
    }
  raw_write (out, text, strlen (text), FALSE);
}

static gpointer
raw_conn_thread (gpointer data)
{
  RawConn *rc = data;
  RawServer *raw = rc->raw;
  g_autoptr(GSocketConnection) connection = g_socket_connection_factory_create_connection (rc->socket);
  g_autoptr(GDataInputStream) in = g_data_input_stream_new (
    g_io_stream_get_input_stream (G_IO_STREAM (connection)));
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (connection));
  guint on_this_connection = 0;

  g_socket_set_option (rc->socket, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  for (;;)
    {
      gsize content_length = 0;
      gboolean any = FALSE;

      for (;;)
        {
          g_autofree char *line = g_data_input_stream_read_line (in, NULL, NULL, NULL);

          if (line == NULL)
            goto done;
          g_strchomp (line);
          if (*line == '\0')
            break;
          any = TRUE;
          if (g_ascii_strncasecmp (line, "Content-Length:", 15) == 0)
            content_length = (gsize) g_ascii_strtoull (line + 15, NULL, 10);
        }
      if (!any)
        goto done;
      if (content_length > 0)
        {
          g_autofree char *body = g_malloc (content_length);

          if (!g_input_stream_read_all (G_INPUT_STREAM (in), body, content_length, NULL, NULL, NULL))
            goto done;
        }
      on_this_connection++;
      g_atomic_int_inc (&raw->requests);
      if (raw->mode == RAW_DROP_SECOND && on_this_connection == 2)
        goto done;
      raw_answer (raw, out);
      if (raw->mode == RAW_CLOSE_AFTER_ANSWER || raw->mode == RAW_EOF_BODY ||
          raw->mode == RAW_CUT_BODY)
        goto done;
    }

done:
  g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
  g_object_unref (rc->socket);
  g_free (rc);
  g_atomic_int_inc (&raw->closed);
  return NULL;
}

static gpointer
raw_accept_thread (gpointer data)
{
  RawServer *raw = data;

  for (;;)
    {
      GSocket *socket = g_socket_accept (raw->listener, NULL, NULL);
      RawConn *rc;

      if (socket == NULL)
        break;
      g_atomic_int_inc (&raw->connections);
      rc = g_new0 (RawConn, 1);
      rc->raw = raw;
      rc->socket = socket;
      g_thread_unref (g_thread_new ("raw-conn", raw_conn_thread, rc));
    }
  return NULL;
}

static RawServer *
raw_server_new (RawMode mode)
{
  RawServer *raw = g_new0 (RawServer, 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_autoptr(GSocketAddress) bound = NULL;

  raw->mode = mode;
  raw->answer = RAW_ANSWER;
  raw->listener = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                                &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (raw->listener, address, TRUE, &error));
  g_assert_true (g_socket_listen (raw->listener, &error));
  g_assert_no_error (error);
  bound = g_socket_get_local_address (raw->listener, &error);
  g_assert_no_error (error);
  raw->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  raw->base = g_strdup_printf ("http://127.0.0.1:%u", raw->port);
  raw->thread = g_thread_new ("raw-accept", raw_accept_thread, raw);
  return raw;
}

/* Waits (at most 5 s) until @count connections have been closed. */
static void
raw_server_wait_closed (RawServer *raw,
                        gint       count)
{
  for (guint i = 0; i < 500 && g_atomic_int_get (&raw->closed) < count; i++)
    g_usleep (10000);
  g_assert_cmpint (g_atomic_int_get (&raw->closed), >=, count);
}

/* The clients must be gone first: every connection thread ends when its
 * client closes. */
static void
raw_server_free (RawServer *raw)
{
  g_socket_shutdown (raw->listener, TRUE, TRUE, NULL);
  g_socket_close (raw->listener, NULL);
  g_thread_join (raw->thread);
  raw_server_wait_closed (raw, g_atomic_int_get (&raw->connections));
  g_object_unref (raw->listener);
  g_free (raw->base);
  g_free (raw);
}

typedef struct
{
  gboolean   done;
  GError    *error;
  guint      status;
  gboolean   reused;
  GString   *body;
  guint      pieces;
} CallResult;

static void
call_result_clear (CallResult *r)
{
  g_clear_error (&r->error);
  if (r->body)
    g_string_free (r->body, TRUE);
  memset (r, 0, sizeof *r);
}

static void
call_read_cb (GkUpstreamCall *call,
              GBytes         *chunk,
              GError         *error,
              gpointer        user_data)
{
  CallResult *r = user_data;

  if (error != NULL)
    {
      r->error = g_error_copy (error);
      r->done = TRUE;
      return;
    }
  if (chunk == NULL)
    {
      r->done = TRUE;
      return;
    }
  g_assert_cmpuint (g_bytes_get_size (chunk), >, 0);
  r->pieces++;
  g_string_append_len (r->body, g_bytes_get_data (chunk, NULL), g_bytes_get_size (chunk));
  gk_upstream_call_read (call, call_read_cb, r);
}

static void
call_head_cb (GkUpstreamCall *call,
              GError         *error,
              gpointer        user_data)
{
  CallResult *r = user_data;

  if (error != NULL)
    {
      r->error = g_error_copy (error);
      r->done = TRUE;
      return;
    }
  r->status = gk_upstream_call_get_status (call);
  r->reused = gk_upstream_call_get_reused (call);
  gk_upstream_call_read (call, call_read_cb, r);
}

/* One call through @upstream with a key that carries @word for the mock,
 * run to its end in the thread-default context. */
static void
upstream_run_as (GkUpstream *upstream,
                 const char *word,
                 const char *method,
                 const char *path,
                 const char *body,
                 CallResult *r)
{
  g_autoptr(GkUpstreamCall) call = gk_upstream_call_new (upstream, method, path);
  g_autofree char *key = mock_key (word, 77);

  call_result_clear (r);
  r->body = g_string_new (NULL);
  gk_upstream_call_add_header (call, "x-goog-api-key", key);
  /* Header lines that would split the head are dropped, not sent. */
  gk_upstream_call_add_header (call, "X-Injected", "a\r\nx-goog-api-key: AIzaInjected");
  if (body != NULL)
    gk_upstream_call_set_body (call, "application/json",
                               g_bytes_new_static (body, strlen (body)));
  gk_upstream_call_send (call, NULL, call_head_cb, r);
  /* Never called back from within send. */
  g_assert_false (r->done);
  while (!r->done)
    g_main_context_iteration (g_main_context_get_thread_default (), TRUE);
}

static void
upstream_run (GkUpstream *upstream,
              const char *method,
              const char *path,
              const char *body,
              CallResult *r)
{
  upstream_run_as (upstream, "OK", method, path, body, r);
}

static void
test_upstream_pool_reuse (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) last = NULL;
  CallResult r = { 0 };
  GkUpstream *upstream;
  GBytes *bytes;

  g_main_context_push_thread_default (context);
  upstream = gk_upstream_new (mock_base, 30, "test-agent", &error);
  g_assert_no_error (error);

  /* A Content-Length answer, then a chunked stream, then another: one
   * connection carries them all. */
  upstream_run (upstream, "GET", "/v1beta/models?pageSize=2", NULL, &r);
  g_assert_no_error (r.error);
  g_assert_cmpuint (r.status, ==, 200);
  g_assert_false (r.reused);
  g_assert_nonnull (strstr (r.body->str, "\"nextPageToken\":\"2\""));
  g_assert_cmpuint (gk_upstream_get_idle_count (upstream), ==, 1);

  /* Its chunks 250 ms apart: even a loaded machine reads them apart. */
  upstream_run_as (upstream, "GAPPED", "POST",
                   "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                   GENERATE_BODY, &r);
  g_assert_no_error (r.error);
  g_assert_cmpuint (r.status, ==, 200);
  g_assert_true (r.reused);
  /* Relayed as the chunks came, not all at once. */
  g_assert_cmpuint (r.pieces, >=, 2);
  g_assert_nonnull (strstr (r.body->str, "data: {"));
  g_assert_nonnull (strstr (r.body->str, "mock stream."));
  g_assert_true (g_str_has_suffix (r.body->str, "\n\n"));

  upstream_run (upstream, "POST", "/v1beta/models/gemini-2.5-flash:generateContent",
                GENERATE_BODY, &r);
  g_assert_no_error (r.error);
  g_assert_cmpuint (r.status, ==, 200);
  g_assert_true (r.reused);
  g_assert_nonnull (strstr (r.body->str, "Hello from the mock."));
  g_assert_cmpuint (gk_upstream_get_connect_count (upstream), ==, 1);
  g_assert_cmpuint (gk_upstream_get_idle_count (upstream), ==, 1);

  /* What the upstream saw: our agent, the key once, no injected line. */
  upstream_run (upstream, "GET", "/_mock/last", NULL, &r);
  g_assert_no_error (r.error);
  bytes = g_bytes_new (r.body->str, r.body->len);
  last = parse_json (bytes);
  g_bytes_unref (bytes);
  g_assert_cmpstr (json_object_get_string_member (json_node_get_object (last), "user-agent"), ==,
                   "test-agent");
  g_assert_false (json_object_has_member (json_node_get_object (last), "x-injected"));
  g_assert_cmpstr (json_object_get_string_member (json_node_get_object (last), "x-goog-api-key"),
                   !=, "AIzaInjected");

  call_result_clear (&r);
  gk_upstream_free (upstream);
  g_main_context_pop_thread_default (context);
}

/* gk_upstream_call_cancel(): a call cancelled before its send is never
 * sent; one cancelled while the upstream thinks ends at once. Either way
 * its head callback gets G_IO_ERROR_CANCELLED, from the main loop. */
static void
test_upstream_cancel (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GError) error = NULL;
  CallResult r = { 0 };
  GkUpstream *upstream;

  g_main_context_push_thread_default (context);
  upstream = gk_upstream_new (mock_base, 30, "test-agent", &error);
  g_assert_no_error (error);

  {
    g_autoptr(GkUpstreamCall) call = gk_upstream_call_new (upstream, "GET", "/v1beta/models");
    g_autofree char *key = mock_key ("OK", 78);

    call_result_clear (&r);
    gk_upstream_call_add_header (call, "x-goog-api-key", key);
    gk_upstream_call_cancel (call);
    gk_upstream_call_send (call, NULL, call_head_cb, &r);
    g_assert_false (r.done);
    while (!r.done)
      g_main_context_iteration (context, TRUE);
    g_assert_error (r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
    g_assert_cmpuint (gk_upstream_get_connect_count (upstream), ==, 0);
  }

  {
    g_autoptr(GkUpstreamCall) call = gk_upstream_call_new (upstream, "POST",
                                                           "/v1beta/models/gemini-2.5-flash:generateContent");
    g_autofree char *key = mock_key ("SLOW", 79);

    call_result_clear (&r);
    gk_upstream_call_add_header (call, "x-goog-api-key", key);
    gk_upstream_call_set_body (call, "application/json",
                               g_bytes_new_static (GENERATE_BODY, strlen (GENERATE_BODY)));
    gk_upstream_call_send (call, NULL, call_head_cb, &r);
    while (gk_upstream_get_connect_count (upstream) == 0)
      g_main_context_iteration (context, TRUE);
    gk_upstream_call_cancel (call);
    g_assert_false (r.done);
    while (!r.done)
      g_main_context_iteration (context, TRUE);
    g_assert_error (r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  }

  call_result_clear (&r);
  gk_upstream_free (upstream);
  g_main_context_pop_thread_default (context);
}

static void
test_upstream_bodies (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GError) error = NULL;
  CallResult r = { 0 };

  g_main_context_push_thread_default (context);

  /* Chunked, one byte per write: every state of the chunk reader sees a
   * cut; an extension and a trailer are skipped. */
  {
    RawServer *raw = raw_server_new (RAW_TRICKLE_CHUNKED);
    GkUpstream *upstream = gk_upstream_new (raw->base, 30, NULL, &error);

    g_assert_no_error (error);
    upstream_run (upstream, "POST", "/v1beta/x", GENERATE_BODY, &r);
    g_assert_no_error (r.error);
    g_assert_cmpuint (r.status, ==, 200);
    g_assert_cmpstr (r.body->str, ==, RAW_ANSWER);
    g_assert_cmpuint (r.pieces, >, 1);
    g_assert_cmpuint (gk_upstream_get_idle_count (upstream), ==, 1);
    gk_upstream_free (upstream);
    raw_server_free (raw);
  }

  /* A body that ends at the close: read whole, the connection not kept. */
  {
    RawServer *raw = raw_server_new (RAW_EOF_BODY);
    GkUpstream *upstream = gk_upstream_new (raw->base, 30, NULL, &error);

    g_assert_no_error (error);
    upstream_run (upstream, "POST", "/v1beta/x", GENERATE_BODY, &r);
    g_assert_no_error (r.error);
    g_assert_cmpstr (r.body->str, ==, RAW_ANSWER);
    g_assert_cmpuint (gk_upstream_get_idle_count (upstream), ==, 0);
    gk_upstream_free (upstream);
    raw_server_free (raw);
  }

  /* A Content-Length body cut short is an error, not a shorter answer. */
  {
    RawServer *raw = raw_server_new (RAW_CUT_BODY);
    GkUpstream *upstream = gk_upstream_new (raw->base, 30, NULL, &error);

    g_assert_no_error (error);
    upstream_run (upstream, "POST", "/v1beta/x", GENERATE_BODY, &r);
    g_assert_error (r.error, GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_CLOSED);
    g_assert_cmpuint (r.status, ==, 200);
    g_assert_cmpuint (gk_upstream_get_idle_count (upstream), ==, 0);
    gk_upstream_free (upstream);
    raw_server_free (raw);
  }

  /* Nothing listens: the error comes from the main loop. */
  {
    RawServer *raw = raw_server_new (RAW_KEEP);
    g_autofree char *base = g_strdup (raw->base);
    GkUpstream *upstream = NULL;

    raw_server_free (raw);
    upstream = gk_upstream_new (base, 30, NULL, &error);
    g_assert_no_error (error);
    upstream_run (upstream, "GET", "/", NULL, &r);
    g_assert_error (r.error, GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_CONNECT);
    gk_upstream_free (upstream);
  }

  g_assert_null (gk_upstream_new ("ftp://127.0.0.1/", 30, NULL, &error));
  g_assert_error (error, GK_UPSTREAM_ERROR, GK_UPSTREAM_ERROR_INVALID);

  call_result_clear (&r);
  g_main_context_pop_thread_default (context);
}

static void
test_upstream_closed_pooled (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GError) error = NULL;
  CallResult r = { 0 };

  g_main_context_push_thread_default (context);

  /* Closed while idle in the pool: noticed before use, a fresh connection
   * serves the request. */
  {
    RawServer *raw = raw_server_new (RAW_CLOSE_AFTER_ANSWER);
    GkUpstream *upstream = gk_upstream_new (raw->base, 30, NULL, &error);

    g_assert_no_error (error);
    upstream_run (upstream, "POST", "/v1beta/x", GENERATE_BODY, &r);
    g_assert_no_error (r.error);
    g_assert_cmpuint (gk_upstream_get_idle_count (upstream), ==, 1);
    raw_server_wait_closed (raw, 1);
    upstream_run (upstream, "POST", "/v1beta/x", GENERATE_BODY, &r);
    g_assert_no_error (r.error);
    g_assert_cmpuint (r.status, ==, 200);
    g_assert_cmpstr (r.body->str, ==, RAW_ANSWER);
    g_assert_false (r.reused);
    g_assert_cmpuint (gk_upstream_get_connect_count (upstream), ==, 2);
    gk_upstream_free (upstream);
    raw_server_free (raw);
  }

  /* Closed when the request arrives, before any byte of an answer: sent
   * once more on a fresh connection. */
  {
    RawServer *raw = raw_server_new (RAW_DROP_SECOND);
    GkUpstream *upstream = gk_upstream_new (raw->base, 30, NULL, &error);

    g_assert_no_error (error);
    upstream_run (upstream, "POST", "/v1beta/x", GENERATE_BODY, &r);
    g_assert_no_error (r.error);
    upstream_run (upstream, "POST", "/v1beta/x", GENERATE_BODY, &r);
    g_assert_no_error (r.error);
    g_assert_cmpuint (r.status, ==, 200);
    g_assert_cmpstr (r.body->str, ==, RAW_ANSWER);
    g_assert_cmpuint (gk_upstream_get_connect_count (upstream), ==, 2);
    g_assert_cmpint (g_atomic_int_get (&raw->requests), ==, 3);
    gk_upstream_free (upstream);
    raw_server_free (raw);
  }

  call_result_clear (&r);
  g_main_context_pop_thread_default (context);
}

/* Through the gateway: an upstream that closes kept-alive connections
 * costs the client nothing, and the usage is the answer's own. */
static void
test_pooled_upstream_closed (Fixture       *f,
                             gconstpointer  data)
{
  RawMode modes[] = { RAW_CLOSE_AFTER_ANSWER, RAW_DROP_SECOND, RAW_TRICKLE_CHUNKED };

  add_key (f, "OK", 5, NULL);
  for (guint m = 0; m < G_N_ELEMENTS (modes); m++)
    {
      RawServer *raw = raw_server_new (modes[m]);

      gk_gateway_set_upstream (f->gateway, raw->base);
      restart (f);
      for (guint i = 0; i < 3; i++)
        {
          g_autoptr(GBytes) body = NULL;
          g_autofree char *text = NULL;
          guint status;

          body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY,
                       &status);
          g_assert_cmpuint (status, ==, 200);
          text = bytes_to_string (body);
          g_assert_cmpstr (text, ==, RAW_ANSWER);
          if (modes[m] == RAW_CLOSE_AFTER_ANSWER)
            raw_server_wait_closed (raw, i + 1);
        }
      gk_gateway_stop (f->gateway);
      raw_server_free (raw);
    }
  gk_gateway_set_upstream (f->gateway, mock_base);
  restart (f);

  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log WHERE status = 'SUCCESS'"
                               " AND prompt_tokens = 7 AND output_tokens = 3"), ==, 9);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log"), ==, 9);
}

/* Token counts in the shapes the API may use are read as gk_usage_parse()
 * reads them, whichever way the gateway finds them. */
static void
test_usage_shapes (Fixture       *f,
                   gconstpointer  data)
{
  static const struct
  {
    const char *answer;
    gint64      prompt;
    gint64      output;
  } cases[] = {
    /* Details arrays, tool prompt, thoughts, white space. */
    { "{ \"candidates\": [], \"usageMetadata\" : { \"promptTokenCount\" : 10, "
      "\"promptTokensDetails\": [{\"modality\": \"TEXT\", \"tokenCount\": 10}], "
      "\"toolUsePromptTokenCount\": 4, \"candidatesTokenCount\": 6, \"thoughtsTokenCount\": 2, "
      "\"totalTokenCount\": 22 } }", 14, 8 },
    /* 64-bit counts as decimal strings (proto3 JSON). */
    { "{\"usageMetadata\":{\"promptTokenCount\":\"9\",\"candidatesTokenCount\":\"5\"}}", 9, 5 },
    /* A fraction is not a plain integer. */
    { "{\"usageMetadata\":{\"promptTokenCount\":3.0,\"candidatesTokenCount\":1}}", 3, 1 },
    /* OpenAI's usage, total counting thinking tokens as output. */
    { "{\"id\":\"x\",\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":11}}", 5, 6 },
    /* No usage at all. */
    { "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"usageMetadata\"}]}}]}", 0, 0 },
    /* A JSON array (the non-SSE stream shape), usage in its last element. */
    { "[{\"usageMetadata\":{\"promptTokenCount\":1}},{\"usageMetadata\":{\"promptTokenCount\":2,"
      "\"candidatesTokenCount\":3}}]", 2, 3 },
  };

  add_key (f, "OK", 5, NULL);
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      RawServer *raw = raw_server_new (RAW_KEEP);
      g_autoptr(GBytes) body = NULL;
      g_autofree char *sql = NULL;
      guint status;

      raw->answer = cases[c].answer;
      gk_gateway_set_upstream (f->gateway, raw->base);
      restart (f);
      body = http (f, "POST", f->base, MODEL_PATH ":generateContent", f->token, GENERATE_BODY,
                   &status);
      g_assert_cmpuint (status, ==, 200);
      sql = g_strdup_printf ("SELECT prompt_tokens * 1000 + output_tokens FROM gemini_key_usage_log"
                             " ORDER BY id DESC LIMIT 1");
      g_test_message ("case %u", c);
      g_assert_cmpint (sql_int (f, sql), ==, cases[c].prompt * 1000 + cases[c].output);
      gk_gateway_stop (f->gateway);
      raw_server_free (raw);
    }
  gk_gateway_set_upstream (f->gateway, mock_base);
  restart (f);
}

typedef struct
{
  guint     pending;
  guint     ok;
  gboolean  stream_ok;
} Concurrent;

static void
concurrent_done_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  Concurrent *c = user_data;
  SoupMessage *msg = soup_session_get_async_result_message (SOUP_SESSION (source), result);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = soup_session_send_and_read_finish (SOUP_SESSION (source), result, &error);

  if (error != NULL)
    {
      g_autofree char *uri = g_uri_to_string (soup_message_get_uri (msg));

      g_test_message ("%s failed", uri);
    }
  g_assert_no_error (error);
  if (soup_message_get_status (msg) == 200)
    {
      g_autofree char *text = bytes_to_string (body);

      c->ok++;
      if (strstr (text, "data: ") != NULL)
        c->stream_ok = c->stream_ok && strstr (text, " mock stream.") != NULL;
    }
  c->pending--;
}

/* Many requests at once: their rows are written in batches, all of them
 * written by the time each client has its answer. */
static void
test_concurrent_rows (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(SoupSession) session = NULL;
  Concurrent c = { 0, 0, TRUE };
  const guint n = 24;

  add_key (f, "OK", 5, NULL);
  g_main_context_push_thread_default (context);
  session = soup_session_new_with_options ("max-conns", 64, "max-conns-per-host", 64, NULL);
  for (guint i = 0; i < n; i++)
    {
      /* Streams take some 15 ms at the mock, so the requests overlap. */
      g_autofree char *url = g_strconcat (f->base, MODEL_PATH,
                                          i % 2 ? ":streamGenerateContent?alt=sse" : ":generateContent",
                                          NULL);
      g_autoptr(SoupMessage) msg = soup_message_new ("POST", url);

      soup_message_headers_replace (soup_message_get_request_headers (msg), "x-goog-api-key", f->token);
      soup_message_set_request_body_from_bytes (msg, "application/json",
                                                g_bytes_new_static (GENERATE_BODY, strlen (GENERATE_BODY)));
      c.pending++;
      soup_session_send_and_read_async (session, msg, G_PRIORITY_DEFAULT, NULL, concurrent_done_cb, &c);
    }
  while (c.pending > 0)
    g_main_context_iteration (context, TRUE);
  g_main_context_pop_thread_default (context);

  g_assert_cmpuint (c.ok, ==, n);
  g_assert_true (c.stream_ok);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log WHERE status = 'SUCCESS'"
                               " AND prompt_tokens = 12 AND output_tokens = 13"), ==, n / 2);
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log WHERE status = 'SUCCESS'"
                               " AND prompt_tokens = 20 AND output_tokens = 21"), ==, n / 2);
  /* The quota counters saw every request once. */
  g_assert_cmpint (sql_int (f, "SELECT count(*) FROM gemini_key_usage_log"), ==, n);
}

/* ---- main --------------------------------------------------------------- */

static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGTERM);
}

static void
start_mock (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename (g_getenv ("GEMINI_KEYS_BUILD_ROOT"), "tests",
                                            "mock-gemini", "mock-gemini", NULL);
  g_autoptr(GDataInputStream) lines = NULL;
  g_autofree char *line = NULL;
  guint port;

  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);

  /* A failed assertion aborts this process: the mock must not outlive it
   * (it would hold the test harness's stderr open). */
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  mock_process = g_subprocess_launcher_spawn (launcher, &error, path, "--port", "0", NULL);
  g_assert_no_error (error);
  lines = g_data_input_stream_new (g_subprocess_get_stdout_pipe (mock_process));
  line = g_data_input_stream_read_line (lines, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "PORT "));
  port = (guint) g_ascii_strtoull (line + 5, NULL, 10);
  g_assert_cmpuint (port, >, 0);
  mock_base = g_strdup_printf ("http://127.0.0.1:%u", port);
  g_setenv ("GEMINI_KEYS_UPSTREAM", mock_base, TRUE);
}

int
main (int   argc,
      char *argv[])
{
  int status;

  /* The isolated directories hold no GSettings schemas, which the desktop
   * proxy resolver needs; nothing here goes through a proxy anyway. */
  g_setenv ("GIO_USE_PROXY_RESOLVER", "dummy", TRUE);
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  /* The SLOW key answers after 1.5 s, past the 1 s timeout test. */
  g_setenv ("MOCK_GEMINI_SLOW_MS", "1500", TRUE);
  start_mock ();

#define ADD(name, func) \
  g_test_add ("/gateway/" name, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("generate-ok", test_generate_ok);
  ADD ("request-log-line", test_request_log_line);
  ADD ("rate-limited-minute", test_rate_limited_minute);
  ADD ("rate-limited-day", test_rate_limited_day);
  ADD ("rate-limited-project", test_rate_limited_project);
  ADD ("invalid-key", test_invalid_key);
  ADD ("transient-no-penalty", test_transient_no_penalty);
  ADD ("no-keys-left", test_no_keys_left);
  ADD ("near-quota-keys-serve", test_near_quota_keys_serve);
  ADD ("pool-budget", test_pool_budget);
  ADD ("stream-usage", test_stream_usage);
  ADD ("stream-dropped", test_stream_dropped);
  ADD ("dropped-before-answer", test_dropped_before_answer_retries);
  ADD ("upstream-timeout", test_upstream_timeout);
  ADD ("credentials-isolated", test_credentials_isolated);
  ADD ("auth-and-host", test_auth_and_host);
  ADD ("body-limit", test_body_limit);
  ADD ("concurrency-cap", test_concurrency_cap);
  ADD ("loopback-only", test_loopback_only);
  ADD ("query-and-paths", test_query_and_paths);
  ADD ("admin-api", test_admin_api);
  ADD ("admin-query", test_admin_query);
  ADD ("key-test", test_key_test);
  ADD ("official-sdk", test_official_sdk);
  ADD ("pooled-upstream-closed", test_pooled_upstream_closed);
  ADD ("usage-shapes", test_usage_shapes);
  ADD ("concurrent-rows", test_concurrent_rows);
#undef ADD
  g_test_add_func ("/gateway/upstream/pool-reuse", test_upstream_pool_reuse);
  g_test_add_func ("/gateway/upstream/cancel", test_upstream_cancel);
  g_test_add_func ("/gateway/upstream/bodies", test_upstream_bodies);
  g_test_add_func ("/gateway/upstream/closed-pooled", test_upstream_closed_pooled);

  status = g_test_run ();
  g_subprocess_force_exit (mock_process);
  g_subprocess_wait (mock_process, NULL, NULL);
  g_clear_object (&mock_process);
  g_free (mock_base);
  return status;
}
