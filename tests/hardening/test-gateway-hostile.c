/* test-gateway-hostile.c: the gateway against hostile clients.
 *
 * Clients are raw sockets, so the test controls every byte; the upstream
 * is a raw server in a thread of this test that records every byte it is
 * sent and answers with canned bytes, so the test sees exactly what the
 * gateway forwards and controls exactly what it relays. The gateway runs in
 * this process (/proc/self/fd counts its sockets), or in a child of its own
 * under a low descriptor limit.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

#include "gk-gateway.h"
#include "gk-upstream.h"
#include "hardening-util.h"

#define GENERATE_PATH "/v1beta/models/gemini-2.5-flash:generateContent"
#define STREAM_PATH   "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
#define SMALL_BODY    "{\"contents\":[{\"parts\":[{\"text\":\"hi\"}]}]}"
#define OK_ANSWER     "{\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":1}}"
/* A pool key the way Google's look (39 characters). */
#define POOL_KEY      "AIzaSyHostileTestKey0123456789abcdefghi"
#define ADMIN_PREFIX  "/admin/gemini-keys"

/* ---- A raw upstream ------------------------------------------------------ */

typedef struct
{
  int        listen_fd;
  guint      port;
  int        stop_pipe[2];
  GThread   *thread;
  GMutex     mutex;
  GString   *captured;   /* every request, as received */
  guint      requests;
  char     **pieces;     /* the answer, sent piece by piece */
  guint      gap_ms;     /* between pieces */
} RawUpstream;

static gboolean
head_complete (GString *req,
               gsize   *total)
{
  const char *end = g_strstr_len (req->str, req->len, "\r\n\r\n");
  g_autofree char *head = NULL;
  const char *cl;
  gsize body = 0;

  if (end == NULL)
    return FALSE;
  head = g_ascii_strdown (req->str, end - req->str);
  cl = strstr (head, "\r\ncontent-length:");
  if (cl != NULL)
    body = g_ascii_strtoull (cl + strlen ("\r\ncontent-length:"), NULL, 10);
  *total = (end - req->str) + 4 + body;
  return TRUE;
}

static void
raw_upstream_serve (RawUpstream *u,
                    int          fd)
{
  g_autoptr(GString) req = g_string_new (NULL);
  gsize total = 0;

  while (!head_complete (req, &total) || req->len < total)
    {
      struct pollfd pfd = { fd, POLLIN, 0 };
      char buf[8192];
      gssize n;

      if (poll (&pfd, 1, 10000) <= 0)
        return;
      n = recv (fd, buf, sizeof buf, 0);
      if (n <= 0)
        return;
      g_string_append_len (req, buf, n);
    }
  g_mutex_lock (&u->mutex);
  g_string_append_len (u->captured, req->str, req->len);
  u->requests++;
  g_mutex_unlock (&u->mutex);

  for (guint i = 0; u->pieces[i] != NULL; i++)
    {
      if (i > 0 && u->gap_ms > 0)
        g_usleep (u->gap_ms * 1000);
      if (send (fd, u->pieces[i], strlen (u->pieces[i]), MSG_NOSIGNAL) < 0)
        return;
    }
}

static gpointer
raw_upstream_thread (gpointer data)
{
  RawUpstream *u = data;

  for (;;)
    {
      struct pollfd pfds[2] = { { u->listen_fd, POLLIN, 0 }, { u->stop_pipe[0], POLLIN, 0 } };
      int fd;

      if (poll (pfds, 2, -1) < 0)
        continue;
      if (pfds[1].revents)
        break;
      fd = accept4 (u->listen_fd, NULL, NULL, SOCK_CLOEXEC);
      if (fd < 0)
        continue;
      raw_upstream_serve (u, fd);
      close (fd);
    }
  return NULL;
}

/* Answers every request with @pieces (NULL-terminated, copied) and closes. */
static RawUpstream *
raw_upstream_start (const char * const *pieces,
                    guint               gap_ms)
{
  RawUpstream *u = g_new0 (RawUpstream, 1);
  struct sockaddr_in addr = { 0 };
  socklen_t len = sizeof addr;

  u->listen_fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  g_assert_cmpint (bind (u->listen_fd, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  g_assert_cmpint (listen (u->listen_fd, 64), ==, 0);
  g_assert_cmpint (getsockname (u->listen_fd, (struct sockaddr *) &addr, &len), ==, 0);
  u->port = ntohs (addr.sin_port);
  g_assert_cmpint (pipe2 (u->stop_pipe, O_CLOEXEC), ==, 0);
  g_mutex_init (&u->mutex);
  u->captured = g_string_new (NULL);
  u->pieces = g_strdupv ((char **) pieces);
  u->gap_ms = gap_ms;
  u->thread = g_thread_new ("raw-upstream", raw_upstream_thread, u);
  return u;
}

static void
raw_upstream_stop (RawUpstream *u)
{
  g_assert_cmpint (write (u->stop_pipe[1], "x", 1), ==, 1);
  g_thread_join (u->thread);
  close (u->listen_fd);
  close (u->stop_pipe[0]);
  close (u->stop_pipe[1]);
  g_mutex_clear (&u->mutex);
  g_string_free (u->captured, TRUE);
  g_strfreev (u->pieces);
  g_free (u);
}

static char *
raw_upstream_captured (RawUpstream *u,
                       guint       *requests)
{
  char *copy;

  g_mutex_lock (&u->mutex);
  copy = g_strndup (u->captured->str, u->captured->len);
  if (requests != NULL)
    *requests = u->requests;
  g_mutex_unlock (&u->mutex);
  return copy;
}

static char *
raw_upstream_url (RawUpstream *u)
{
  return g_strdup_printf ("http://127.0.0.1:%u", u->port);
}

/* ---- Fixture --------------------------------------------------------------- */

typedef struct
{
  char        *dir;
  char        *db_path;
  GkDatabase  *db;
  GBytes      *master;
  GkKeyStore  *store;
  GkPool      *pool;
  GkGateway   *gateway;
  char        *token;
  char        *admin_token;
  RawUpstream *upstream;
  GPtrArray   *log;
  GMutex       log_mutex;
} Fixture;

static void
log_cb (GkGateway  *gateway,
        const char *line,
        Fixture    *f)
{
  g_mutex_lock (&f->log_mutex);
  g_ptr_array_add (f->log, g_strdup (line));
  g_mutex_unlock (&f->log_mutex);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("gk-hostile-XXXXXX", &error);
  g_assert_no_error (error);
  f->db_path = g_build_filename (f->dir, "keys.db", NULL);
  f->db = gk_database_open (f->db_path, NULL, &error);
  g_assert_no_error (error);
  f->master = gk_test_master_key ();
  f->store = gk_key_store_new (f->db, f->master);
  f->pool = gk_pool_new (f->db, NULL);
  f->token = gk_token_create (f->db, "hostile-client", NULL, &error);
  g_assert_no_error (error);
  f->admin_token = gk_token_create (f->db, "admin", NULL, &error);
  g_assert_no_error (error);
  f->log = g_ptr_array_new_with_free_func (g_free);
  g_mutex_init (&f->log_mutex);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  if (f->gateway != NULL)
    gk_gateway_stop (f->gateway);
  g_clear_object (&f->gateway);
  g_clear_pointer (&f->upstream, raw_upstream_stop);
  g_clear_object (&f->pool);
  g_clear_object (&f->store);
  g_clear_object (&f->db);
  g_clear_pointer (&f->master, g_bytes_unref);
  g_free (f->token);
  g_free (f->admin_token);
  g_ptr_array_unref (f->log);
  g_mutex_clear (&f->log_mutex);
  gk_test_rm_rf (f->dir);
  g_free (f->db_path);
  g_free (f->dir);
}

static void
add_pool_key (Fixture    *f,
              const char *api_key)
{
  g_autoptr(GError) error = NULL;
  GkKeySpec spec;

  gk_key_spec_init (&spec);
  spec.name = "pool-key";
  g_assert_cmpint (gk_key_store_add (f->store, &spec, api_key, &error), >, 0);
  g_assert_no_error (error);
}

/* Starts the gateway in front of a raw upstream answering with @pieces. */
static void
start_gateway (Fixture            *f,
               const char * const *pieces,
               guint               gap_ms)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *url = NULL;

  if (pieces != NULL)
    {
      f->upstream = raw_upstream_start (pieces, gap_ms);
      url = raw_upstream_url (f->upstream);
    }
  f->gateway = gk_gateway_new (f->store, f->pool);
  gk_gateway_set_upstream (f->gateway, url ? url : "http://127.0.0.1:9");
  gk_gateway_set_max_attempts (f->gateway, 1);
  g_signal_connect (f->gateway, "log", G_CALLBACK (log_cb), f);
  g_assert_true (gk_gateway_start (f->gateway, "127.0.0.1", 0, &error));
  g_assert_no_error (error);
}

static const char * const plain_ok[] = {
  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 56\r\n"
  "Connection: close\r\n\r\n" OK_ANSWER,
  NULL,
};

/* ---- Client helpers -------------------------------------------------------- */

static int
connect_to (guint port)
{
  struct sockaddr_in addr = { 0 };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  addr.sin_family = AF_INET;
  addr.sin_port = htons (port);
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  g_assert_cmpint (connect (fd, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  return fd;
}

static gboolean
send_all (int         fd,
          const char *data,
          gsize       len)
{
  while (len > 0)
    {
      gssize n = send (fd, data, len, MSG_NOSIGNAL);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      data += n;
      len -= n;
    }
  return TRUE;
}

/* Reads one response: its head, then a Content-Length or chunked body, or
 * up to the close. NULL when nothing came within @timeout_ms. The body,
 * de-chunked, goes to @body. */
static GString *
read_one_response (int       fd,
                   int       timeout_ms,
                   GString **body)
{
  GString *in = g_string_new (NULL);
  g_autoptr(GString) decoded = g_string_new (NULL);
  gsize head_len = 0;
  gboolean chunked = FALSE;
  gssize length = -1;
  gboolean closed = FALSE;

  for (;;)
    {
      struct pollfd pfd = { fd, POLLIN, 0 };
      char buf[16384];
      gssize n;

      if (head_len == 0)
        {
          const char *end = g_strstr_len (in->str, in->len, "\r\n\r\n");

          if (end != NULL)
            {
              g_autofree char *head = g_ascii_strdown (in->str, end - in->str);
              const char *cl = strstr (head, "\r\ncontent-length:");

              head_len = end - in->str + 4;
              chunked = strstr (head, "\r\ntransfer-encoding: chunked") != NULL;
              if (cl != NULL)
                length = (gssize) g_ascii_strtoull (cl + strlen ("\r\ncontent-length:"), NULL, 10);
              if (g_str_has_prefix (head, "http/1.1 304") || g_str_has_prefix (head, "http/1.1 204"))
                length = 0;
            }
        }
      if (head_len > 0)
        {
          if (chunked)
            {
              /* Complete when the last chunk is in. */
              const char *p = in->str + head_len;
              const char *end = in->str + in->len;
              gboolean done = FALSE;

              g_string_truncate (decoded, 0);
              while (p < end)
                {
                  const char *eol = g_strstr_len (p, end - p, "\r\n");
                  guint64 size;

                  if (eol == NULL)
                    break;
                  size = g_ascii_strtoull (p, NULL, 16);
                  if (size == 0)
                    {
                      done = TRUE;
                      break;
                    }
                  if ((gsize) (end - eol - 2) < size + 2)
                    break;
                  g_string_append_len (decoded, eol + 2, size);
                  p = eol + 2 + size + 2;
                }
              if (done)
                break;
            }
          else if (length >= 0 && in->len >= head_len + length)
            {
              g_string_append_len (decoded, in->str + head_len, length);
              break;
            }
        }
      if (closed)
        break;
      if (poll (&pfd, 1, timeout_ms) <= 0)
        break;
      n = recv (fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          closed = TRUE;
          if (head_len > 0 && !chunked && length < 0)
            g_string_append_len (decoded, in->str + head_len, in->len - head_len);
          if (head_len == 0 || length < 0)
            break;
          continue;
        }
      g_string_append_len (in, buf, n);
    }
  if (in->len == 0)
    {
      g_string_free (in, TRUE);
      return NULL;
    }
  if (body != NULL)
    *body = g_steal_pointer (&decoded);
  return in;
}

static guint
status_of (const char *response)
{
  if (response == NULL || !g_str_has_prefix (response, "HTTP/1."))
    return 0;
  return (guint) g_ascii_strtoull (response + strlen ("HTTP/1.x "), NULL, 10);
}

/* Sends @raw as it is on a new connection; returns the status of the
 * answer (0 for none), the whole answer in @response_out and its body in
 * @body_out when not NULL. */
static guint
exchange (Fixture     *f,
          const char  *raw,
          gsize        len,
          GString    **response_out,
          GString    **body_out)
{
  int fd = connect_to (gk_gateway_get_port (f->gateway));
  g_autoptr(GString) response = NULL;
  guint status;

  send_all (fd, raw, len);
  response = read_one_response (fd, 20000, body_out);
  close (fd);
  status = status_of (response ? response->str : NULL);
  if (response_out != NULL)
    *response_out = g_steal_pointer (&response);
  return status;
}

/* A request with the client token; @target is the request target as
 * written on the request line. */
static char *
request_text (Fixture    *f,
              const char *method,
              const char *target,
              const char *token,
              const char *extra_headers,
              const char *body)
{
  g_autofree char *length = body ? g_strdup_printf ("Content-Length: %zu\r\n", strlen (body))
                                 : NULL;

  return g_strdup_printf ("%s %s HTTP/1.1\r\n"
                          "Host: 127.0.0.1:%u\r\n"
                          "x-goog-api-key: %s\r\n"
                          "Connection: close\r\n"
                          "%s%s\r\n%s",
                          method, target, gk_gateway_get_port (f->gateway), token,
                          extra_headers ? extra_headers : "", length ? length : "",
                          body ? body : "");
}

static guint
request (Fixture     *f,
         const char  *method,
         const char  *target,
         const char  *extra_headers,
         const char  *body,
         GString    **body_out)
{
  g_autofree char *raw = request_text (f, method, target, f->token, extra_headers, body);

  return exchange (f, raw, strlen (raw), NULL, body_out);
}

static void
assert_google_error (GString    *body,
                     guint       code)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  JsonObject *err;

  g_assert_nonnull (body);
  json_parser_load_from_data (parser, body->str, body->len, &error);
  g_assert_no_error (error);
  err = json_object_get_object_member (json_node_get_object (json_parser_get_root (parser)),
                                       "error");
  g_assert_nonnull (err);
  g_assert_cmpint (json_object_get_int_member (err, "code"), ==, code);
  g_assert_nonnull (json_object_get_string_member (err, "message"));
  g_assert_nonnull (json_object_get_string_member (err, "status"));
}

static gboolean
log_has_control_bytes (Fixture *f)
{
  gboolean found = FALSE;

  g_mutex_lock (&f->log_mutex);
  for (guint i = 0; i < f->log->len; i++)
    for (const guchar *p = g_ptr_array_index (f->log, i); *p != '\0'; p++)
      if (*p < 0x20 || *p == 0x7f)
        found = TRUE;
  g_mutex_unlock (&f->log_mutex);
  return found;
}

/* ---- Request splitting ---------------------------------------------------- */

static void
test_request_splitting (Fixture       *f,
                        gconstpointer  data)
{
  static const char * const refused[] = {
    "/v1beta/models/x%0d%0aX-Injected:%20yes%0d%0a:generateContent",
    "/v1beta/models/x%0d%0a%0d%0aGET%20/v1beta/models%20HTTP/1.1%0d%0aHost:%20a%0d%0a%0d%0a",
    "/v1beta/models/x%0a:generateContent",
    "/v1beta/models/x%00:generateContent",
    "/v1beta/models/x%7f:generateContent",
    "/v1beta/models/x%09:generateContent",
    "/v1beta/models/x:generateContent?alt=%0d%0aX-Injected:%20yes",
    "/v1beta/models/x:generateContent?a%0a=1",
    "/v1beta/models/x:generateContent?a=%zz",
  };
  g_autofree char *captured = NULL;
  guint requests = 0;

  add_pool_key (f, POOL_KEY);
  start_gateway (f, plain_ok, 0);

  for (guint i = 0; i < G_N_ELEMENTS (refused); i++)
    {
      g_autoptr(GString) body = NULL;
      guint status = request (f, "POST", refused[i], NULL, SMALL_BODY, &body);

      g_test_message ("%s -> %u %s", refused[i], status, body ? body->str : "(none)");
      g_assert_cmpuint (status, ==, 400);
      /* A bad escape in the query fails libsoup's parse of the request
       * line: it answers on its own, with no body. */
      if (body->len > 0)
        assert_google_error (body, 400);
    }
  /* A control byte in a forwarded header. */
  {
    g_autoptr(GString) body = NULL;

    g_assert_cmpuint (request (f, "POST", GENERATE_PATH, "x-goog-api-client: a\x01" "b\r\n",
                               SMALL_BODY, &body), ==, 400);
    assert_google_error (body, 400);
  }
  /* Dot segments are resolved before routing: never sent as they are. */
  g_assert_cmpuint (request (f, "POST", "/v1beta/models/%2e%2e/%2e%2e/admin:generateContent", NULL,
                             SMALL_BODY, NULL), ==, 404);
  captured = raw_upstream_captured (f->upstream, &requests);
  g_assert_cmpuint (requests, ==, 0);
  g_assert_false (log_has_control_bytes (f));

  /* What is sent is re-encoded from checked parts: a space and a quote in
   * the path, escapes and '+' in the query keep their meaning, the ?key=
   * credential (however spelt) is gone. */
  g_assert_cmpuint (request (f, "POST",
                             "/v1beta/models/a%20b%22c:generateContent?x=%2B1+2&k%65y=tok&y=%26&key=t",
                             NULL, SMALL_BODY, NULL), ==, 200);
  g_free (captured);
  captured = raw_upstream_captured (f->upstream, &requests);
  g_assert_cmpuint (requests, ==, 1);
  g_test_message ("%s", captured);
  g_assert_true (g_str_has_prefix (captured,
                                   "POST /v1beta/models/a%20b%22c:generateContent?x=%2B1+2&y=%26 HTTP/1.1\r\n"));
}

static void
test_header_allow_list (Fixture       *f,
                        gconstpointer  data)
{
  g_autofree char *captured = NULL;
  g_autofree char *lower = NULL;
  g_autofree char *bearer = NULL;
  g_autofree char *raw = NULL;

  add_pool_key (f, POOL_KEY);
  start_gateway (f, plain_ok, 0);

  bearer = g_strdup_printf ("Authorization: Bearer %s\r\n", f->token);
  raw = g_strdup_printf ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n%s"
                         "Content-Type: application/json\r\n"
                         "Accept: application/json\r\n"
                         "Accept-Encoding: gzip\r\n"
                         "x-goog-api-client: genai-js/1.0\r\n"
                         "X-Goog-Upload-Protocol: raw\r\n"
                         "X-Evil: 1\r\n"
                         "Cookie: session=1\r\n"
                         "Forwarded: for=1.2.3.4\r\n"
                         "User-Agent: evil-agent\r\n"
                         "Connection: close\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         GENERATE_PATH, gk_gateway_get_port (f->gateway), bearer,
                         strlen (SMALL_BODY), SMALL_BODY);
  g_assert_cmpuint (exchange (f, raw, strlen (raw), NULL, NULL), ==, 200);
  captured = raw_upstream_captured (f->upstream, NULL);
  g_test_message ("%s", captured);
  lower = g_ascii_strdown (captured, -1);
  g_assert_nonnull (strstr (lower, "\r\naccept: application/json\r\n"));
  g_assert_nonnull (strstr (lower, "\r\nx-goog-api-client: genai-js/1.0\r\n"));
  g_assert_nonnull (strstr (lower, "\r\nx-goog-upload-protocol: raw\r\n"));
  g_assert_nonnull (strstr (lower, "\r\ncontent-type: application/json\r\n"));
  g_assert_nonnull (strstr (captured, POOL_KEY));
  g_assert_null (strstr (captured, f->token));
  g_assert_null (strstr (lower, "authorization"));
  g_assert_null (strstr (lower, "x-evil"));
  g_assert_null (strstr (lower, "cookie"));
  g_assert_null (strstr (lower, "forwarded"));
  g_assert_null (strstr (lower, "evil-agent"));
  g_assert_null (strstr (lower, "gzip"));
}

/* ---- Methods, deep bodies, framing ---------------------------------------- */

static void
test_methods (Fixture       *f,
              gconstpointer  data)
{
  static const char * const methods[] = { "HEAD", "OPTIONS", "TRACE", "FOO", "CONNECT", "PROPFIND" };
  static const char * const targets[] = { GENERATE_PATH, "/v1beta/models", ADMIN_PREFIX "/" };

  add_pool_key (f, POOL_KEY);
  start_gateway (f, plain_ok, 0);

  for (guint i = 0; i < G_N_ELEMENTS (methods); i++)
    for (guint j = 0; j < G_N_ELEMENTS (targets); j++)
      {
        g_autofree char *raw = request_text (f, methods[i], targets[j],
                                             j == 2 ? f->admin_token : f->token, NULL, NULL);
        g_autoptr(GString) response = NULL;
        guint status = exchange (f, raw, strlen (raw), &response, NULL);

        g_test_message ("%s %s -> %u", methods[i], targets[j], status);
        g_assert_cmpuint (status, >=, 400);
        g_assert_cmpuint (status, <, 500);
      }
  /* Still serving. */
  g_assert_cmpuint (request (f, "POST", GENERATE_PATH, NULL, SMALL_BODY, NULL), ==, 200);
}

static void
test_deep_json (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GString) deep = g_string_new ("{\"model\":\"m\",\"messages\":");
  g_autoptr(GString) body = NULL;
  g_autofree char *raw = NULL;

  add_pool_key (f, POOL_KEY);
  start_gateway (f, plain_ok, 0);
  for (guint i = 0; i < 100000; i++)
    g_string_append_c (deep, '[');
  for (guint i = 0; i < 100000; i++)
    g_string_append_c (deep, ']');
  g_string_append_c (deep, '}');

  g_assert_cmpuint (request (f, "POST", "/v1beta/openai/chat/completions", NULL, deep->str,
                             &body), ==, 400);
  assert_google_error (body, 400);
  g_string_free (g_steal_pointer (&body), TRUE);

  raw = request_text (f, "POST", ADMIN_PREFIX "/", f->admin_token, NULL, deep->str);
  g_assert_cmpuint (exchange (f, raw, strlen (raw), NULL, &body), ==, 400);
  assert_google_error (body, 400);
  g_clear_pointer (&raw, g_free);
  raw = request_text (f, "POST", ADMIN_PREFIX "/quotas/reset", f->admin_token, NULL, deep->str);
  g_assert_cmpuint (exchange (f, raw, strlen (raw), NULL, NULL), ==, 400);

  /* 64 levels are fine. */
  {
    g_autoptr(GString) ok = g_string_new ("{\"model\":\"m\",\"x\":");

    for (guint i = 0; i < 62; i++)
      g_string_append_c (ok, '[');
    for (guint i = 0; i < 62; i++)
      g_string_append_c (ok, ']');
    g_string_append_c (ok, '}');
    g_assert_cmpuint (request (f, "POST", "/v1beta/openai/chat/completions", NULL, ok->str,
                               NULL), ==, 200);
  }
}

static void
test_framing (Fixture       *f,
              gconstpointer  data)
{
  static const struct
  {
    const char *name;
    const char *headers;
    const char *body;
  } cases[] = {
    { "two different Content-Length", "Content-Length: 5\r\nContent-Length: 6\r\n", "{}{}{}" },
    { "a list of Content-Length", "Content-Length: 2, 3\r\n", "{}" },
    { "negative Content-Length", "Content-Length: -1\r\n", "" },
    { "non-numeric Content-Length", "Content-Length: abc\r\n", "" },
    { "signed Content-Length", "Content-Length: +2\r\n", "{}" },
    { "huge Content-Length", "Content-Length: 99999999999999999999999\r\n", "" },
    { "chunked and Content-Length", "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n",
      "2\r\n{}\r\n0\r\n\r\n" },
    { "unknown Transfer-Encoding", "Transfer-Encoding: gzip\r\n", "{}" },
    { "two Transfer-Encoding", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
      "2\r\n{}\r\n0\r\n\r\n" },
    { "invalid chunk size", "Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n" },
    { "two Host", "Host: 127.0.0.1:1\r\n", NULL },
  };

  add_pool_key (f, POOL_KEY);
  start_gateway (f, plain_ok, 0);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *raw = g_strdup_printf ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                                              "x-goog-api-key: %s\r\n"
                                              "Content-Type: application/json\r\n%s\r\n%s",
                                              GENERATE_PATH, gk_gateway_get_port (f->gateway),
                                              f->token, cases[i].headers,
                                              cases[i].body ? cases[i].body : "");
      g_autoptr(GString) response = NULL;
      guint status = exchange (f, raw, strlen (raw), &response, NULL);

      g_test_message ("%s -> %u", cases[i].name, status);
      /* An unknown transfer coding is answered 501, as RFC 9112 asks; a
       * length past what the server can count, 413 (by libmicrohttpd). */
      if (strstr (cases[i].headers, "gzip") != NULL)
        g_assert_cmpuint (status, ==, 501);
      else if (strstr (cases[i].name, "huge") != NULL)
        g_assert_cmpuint (status, ==, 413);
      else
        g_assert_cmpuint (status, ==, 400);
    }
  {
    guint requests = 0;
    g_autofree char *captured = raw_upstream_captured (f->upstream, &requests);

    g_assert_cmpuint (requests, ==, 0);
  }
  g_assert_cmpuint (request (f, "POST", GENERATE_PATH, NULL, SMALL_BODY, NULL), ==, 200);
}


/* ---- Connections the client closes ----------------------------------------- */

static guint
count_fds (void)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  guint n = 0;

  g_assert_nonnull (dir);
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

/* A keep-alive request the gateway answers itself (404), so no upstream
 * is involved; the connection stays open afterwards. */
static char *
keep_alive_text (guint       port,
                 const char *token)
{
  return g_strdup_printf ("GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                          "x-goog-api-key: %s\r\n\r\n", port, token);
}

/* Opens @n connections, makes one keep-alive request on each, and closes
 * them from the client side, @batch at a time. */
static void
open_and_close (guint       port,
                const char *token,
                guint       n,
                guint       batch)
{
  g_autofree char *raw = keep_alive_text (port, token);
  g_autofree int *fds = g_new (int, batch);

  for (guint done = 0; done < n; done += batch)
    {
      guint k = MIN (batch, n - done);

      for (guint i = 0; i < k; i++)
        {
          fds[i] = connect_to (port);
          g_assert_true (send_all (fds[i], raw, strlen (raw)));
        }
      for (guint i = 0; i < k; i++)
        {
          g_autoptr(GString) response = read_one_response (fds[i], 20000, NULL);

          g_assert_cmpuint (status_of (response ? response->str : NULL), ==, 404);
          close (fds[i]);
        }
    }
}

static void
test_closed_connections (Fixture       *f,
                         gconstpointer  data)
{
  guint port, baseline, n = 0;
  gint64 closed_at, deadline;

  start_gateway (f, plain_ok, 0);
  port = gk_gateway_get_port (f->gateway);
  /* Whatever the first requests open for good (the database…). */
  open_and_close (port, f->token, 10, 10);
  g_usleep (200000);
  baseline = count_fds ();

  open_and_close (port, f->token, 10000, 50);
  closed_at = g_get_monotonic_time ();
  /* Back to the baseline within a second (a few on a loaded machine). */
  deadline = closed_at + 5 * G_USEC_PER_SEC;
  while ((n = count_fds ()) > baseline && g_get_monotonic_time () < deadline)
    g_usleep (10000);
  g_test_message ("10,000 connections closed by the client: %u descriptors (baseline %u) "
                  "after %" G_GINT64_FORMAT " ms", n, baseline,
                  (g_get_monotonic_time () - closed_at) / 1000);
  g_assert_cmpuint (n, <=, baseline);
}

/* The gateway in a child of its own, under a limit of 64 descriptors: it
 * must go on serving however many connections come and go. */
static void
test_fd_limit (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                                                      G_SUBPROCESS_FLAGS_STDIN_PIPE);
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  g_autofree char *self = g_file_read_link ("/proc/self/exe", NULL);
  guint port;

  child = g_subprocess_launcher_spawn (launcher, &error, self, "--limited-gateway", f->db_path,
                                       NULL);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (child));
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "PORT "));
  port = (guint) g_ascii_strtoull (line + 5, NULL, 10);

  /* Many times the limit, one after another and a few at once. */
  open_and_close (port, f->token, 1000, 1);
  open_and_close (port, f->token, 1000, 20);
  open_and_close (port, f->token, 1, 1);

  g_output_stream_close (g_subprocess_get_stdin_pipe (child), NULL, NULL);
  g_subprocess_wait_check (child, NULL, &error);
  g_assert_no_error (error);
}

/* The child of test_fd_limit: serves the database at @path until its
 * standard input closes. */
static int
limited_gateway (const char *path)
{
  struct rlimit limit = { 64, 64 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = NULL;
  g_autoptr(GBytes) master = gk_test_master_key ();
  g_autoptr(GkKeyStore) store = NULL;
  g_autoptr(GkPool) pool = NULL;
  g_autoptr(GkGateway) gateway = NULL;
  char buf[16];

  prctl (PR_SET_PDEATHSIG, SIGKILL);
  g_assert_cmpint (setrlimit (RLIMIT_NOFILE, &limit), ==, 0);
  db = gk_database_open (path, NULL, &error);
  g_assert_no_error (error);
  store = gk_key_store_new (db, master);
  pool = gk_pool_new (db, NULL);
  gateway = gk_gateway_new (store, pool);
  gk_gateway_set_upstream (gateway, "http://127.0.0.1:9");
  g_assert_true (gk_gateway_start (gateway, "127.0.0.1", 0, &error));
  g_assert_no_error (error);
  printf ("PORT %u\n", gk_gateway_get_port (gateway));
  fflush (stdout);
  while (read (0, buf, sizeof buf) > 0)
    ;
  gk_gateway_stop (gateway);
  return 0;
}

/* ---- Slow clients ----------------------------------------------------------- */

/* Waits for the gateway to close @fd; returns the milliseconds it took,
 * or -1 when it was still open after @limit_ms. Sends one byte of
 * @trickle (when not NULL) every 100 ms meanwhile. */
static gint64
wait_closed (int         fd,
             const char *trickle,
             gint64      limit_ms)
{
  gint64 start = g_get_monotonic_time ();

  while ((g_get_monotonic_time () - start) / 1000 < limit_ms)
    {
      struct pollfd pfd = { fd, POLLIN, 0 };
      char buf[4096];

      if (poll (&pfd, 1, 100) > 0)
        {
          gssize n = recv (fd, buf, sizeof buf, 0);

          if (n <= 0)
            return (g_get_monotonic_time () - start) / 1000;
          continue;
        }
      if (trickle != NULL && !send_all (fd, trickle, 1))
        return (g_get_monotonic_time () - start) / 1000;
    }
  return -1;
}

static void
test_slow_clients_cut (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *keep_alive = NULL;
  g_autofree char *head = NULL;
  guint port;
  gint64 ms;
  int fd;

  f->gateway = gk_gateway_new (f->store, f->pool);
  gk_gateway_set_upstream (f->gateway, "http://127.0.0.1:9");
  gk_gateway_set_client_timeouts (f->gateway, 1500, 1500);
  g_assert_true (gk_gateway_start (f->gateway, "127.0.0.1", 0, &error));
  g_assert_no_error (error);
  port = gk_gateway_get_port (f->gateway);
  keep_alive = keep_alive_text (port, f->token);

  /* Idle on keep-alive after an answer. */
  fd = connect_to (port);
  g_assert_true (send_all (fd, keep_alive, strlen (keep_alive)));
  {
    g_autoptr(GString) response = read_one_response (fd, 20000, NULL);

    g_assert_cmpuint (status_of (response ? response->str : NULL), ==, 404);
  }
  ms = wait_closed (fd, NULL, 20000);
  close (fd);
  g_test_message ("idle keep-alive connection closed after %" G_GINT64_FORMAT " ms", ms);
  g_assert_cmpint (ms, >=, 1000);

  /* Connected and silent. */
  fd = connect_to (port);
  ms = wait_closed (fd, NULL, 20000);
  close (fd);
  g_test_message ("silent connection closed after %" G_GINT64_FORMAT " ms", ms);
  g_assert_cmpint (ms, >=, 1000);

  /* A head trickled one byte every 100 ms, never complete. */
  head = g_strdup_printf ("GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nX-Slow: ", port);
  fd = connect_to (port);
  g_assert_true (send_all (fd, head, strlen (head)));
  ms = wait_closed (fd, "a", 20000);
  close (fd);
  g_test_message ("trickled head cut after %" G_GINT64_FORMAT " ms", ms);
  g_assert_cmpint (ms, >=, 1000);

  /* The same after a first request on a keep-alive connection. */
  fd = connect_to (port);
  g_assert_true (send_all (fd, keep_alive, strlen (keep_alive)));
  {
    g_autoptr(GString) response = read_one_response (fd, 20000, NULL);

    g_assert_cmpuint (status_of (response ? response->str : NULL), ==, 404);
  }
  g_assert_true (send_all (fd, head, strlen (head)));
  ms = wait_closed (fd, "a", 20000);
  close (fd);
  g_test_message ("trickled second head cut after %" G_GINT64_FORMAT " ms", ms);
  g_assert_cmpint (ms, >=, 1000);

  /* A body that stops coming. */
  {
    g_autofree char *raw = g_strdup_printf ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                                            "x-goog-api-key: %s\r\nContent-Length: 1000\r\n\r\n"
                                            "{\"contents\":", GENERATE_PATH, port, f->token);

    fd = connect_to (port);
    g_assert_true (send_all (fd, raw, strlen (raw)));
    ms = wait_closed (fd, NULL, 20000);
    close (fd);
    g_test_message ("stalled body cut after %" G_GINT64_FORMAT " ms", ms);
    g_assert_cmpint (ms, >=, 1000);
  }
}

typedef struct
{
  guint         port;
  guint         n;
  gint          stop;
  GAsyncQueue  *ready;
} Trickler;

/* Keeps @n connections trickling their heads, one byte each every 100 ms. */
static gpointer
trickler_thread (gpointer data)
{
  Trickler *t = data;
  g_autofree int *fds = g_new (int, t->n);
  g_autofree char *head = g_strdup_printf ("GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                                           "X-Slow: ", t->port);

  for (guint i = 0; i < t->n; i++)
    {
      fds[i] = connect_to (t->port);
      send_all (fds[i], head, strlen (head));
    }
  g_async_queue_push (t->ready, GINT_TO_POINTER (1));
  while (!g_atomic_int_get (&t->stop))
    {
      for (guint i = 0; i < t->n; i++)
        send (fds[i], "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      g_usleep (100000);
    }
  for (guint i = 0; i < t->n; i++)
    close (fds[i]);
  return NULL;
}

static int
compare_gint64 (gconstpointer a,
                gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

/* The median and the worst of @n requests' latencies, in us. */
static void
measure_latency (guint       port,
                 const char *token,
                 guint       n,
                 gint64     *median,
                 gint64     *worst)
{
  g_autofree char *raw = g_strdup_printf ("GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                                          "x-goog-api-key: %s\r\nConnection: close\r\n\r\n",
                                          port, token);
  g_autofree gint64 *times = g_new (gint64, n);

  for (guint i = 0; i < n; i++)
    {
      gint64 start = g_get_monotonic_time ();
      int fd = connect_to (port);
      g_autoptr(GString) response = NULL;

      g_assert_true (send_all (fd, raw, strlen (raw)));
      response = read_one_response (fd, 20000, NULL);
      close (fd);
      g_assert_cmpuint (status_of (response ? response->str : NULL), ==, 404);
      times[i] = g_get_monotonic_time () - start;
      g_usleep (10000);
    }
  qsort (times, n, sizeof *times, compare_gint64);
  *median = times[n / 2];
  *worst = times[n - 1];
}

static void
test_slow_clients_latency (Fixture       *f,
                           gconstpointer  data)
{
  Trickler t = { 0 };
  GThread *thread;
  gint64 base_median, base_worst, median, worst;

  start_gateway (f, plain_ok, 0);
  t.port = gk_gateway_get_port (f->gateway);
  t.n = 300;
  t.ready = g_async_queue_new ();

  measure_latency (t.port, f->token, 50, &base_median, &base_worst);
  thread = g_thread_new ("trickler", trickler_thread, &t);
  g_async_queue_pop (t.ready);
  g_usleep (300000);
  measure_latency (t.port, f->token, 50, &median, &worst);
  g_atomic_int_set (&t.stop, 1);
  g_thread_join (thread);
  g_async_queue_unref (t.ready);

  g_test_message ("a request alone: median %" G_GINT64_FORMAT " us, worst %" G_GINT64_FORMAT
                  " us; with 300 clients trickling their heads: median %" G_GINT64_FORMAT
                  " us, worst %" G_GINT64_FORMAT " us", base_median, base_worst, median, worst);
  /* A few ms at most on an idle machine; generous for a loaded one, far
   * below the seconds a stalled server takes. */
  g_assert_cmpint (median, <, base_median + 100000);
}

/* ---- Redaction of what is relayed ----------------------------------------- */

/* Whether @text holds @key in any case. */
static gboolean
holds_key (const char *text,
           const char *key)
{
  g_autofree char *lower_text = g_ascii_strdown (text, -1);
  g_autofree char *lower_key = g_ascii_strdown (key, -1);

  return strstr (lower_text, lower_key) != NULL;
}

#define AQ_KEY "AQ.Ab8RN6Kq2hostileTestToken_0123456789"

static void
test_redaction_whole (Fixture       *f,
                      gconstpointer  data)
{
  g_autofree char *lower = g_ascii_strdown (POOL_KEY, -1);
  g_autofree char *body = g_strdup_printf ("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":"
                                           "\"%s %s %s\"}]}}]}", POOL_KEY, lower, AQ_KEY);
  g_autofree char *answer = g_strdup_printf ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                             "X-Debug: key=%s\r\nX-Other: %s\r\n"
                                             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                                             lower, AQ_KEY, strlen (body), body);
  const char *pieces[] = { answer, NULL };
  g_autofree char *raw = NULL;
  g_autoptr(GString) response = NULL;

  add_pool_key (f, POOL_KEY);
  start_gateway (f, pieces, 0);
  raw = request_text (f, "POST", GENERATE_PATH, f->token, NULL, SMALL_BODY);
  g_assert_cmpuint (exchange (f, raw, strlen (raw), &response, NULL), ==, 200);
  g_test_message ("%s", response->str);
  g_assert_false (holds_key (response->str, POOL_KEY));
  g_assert_false (holds_key (response->str, AQ_KEY));
  g_assert_nonnull (strstr (response->str, "[REDACTED]"));
  g_assert_nonnull (strstr (response->str, "X-Debug: key=[REDACTED]"));
}

static void
test_redaction_stream (Fixture       *f,
                       gconstpointer  data)
{
  /* The key cut in two, across two chunks sent 200 ms apart, lower-cased
   * in a later event, and an AQ. key cut in three. */
  g_autofree char *lower = g_ascii_strdown (POOL_KEY, -1);
  g_autofree char *e1 = g_strdup_printf ("data: {\"text\":\"%.20s", POOL_KEY);
  g_autofree char *e2 = g_strdup_printf ("%s\"}\r\n\r\ndata: {\"text\":\"%s %.5s", POOL_KEY + 20,
                                         lower, AQ_KEY);
  g_autofree char *e3 = g_strdup_printf ("%.10s", AQ_KEY + 5);
  g_autofree char *e4 = g_strdup_printf ("%s\"}\r\n\r\n", AQ_KEY + 15);
  g_autofree char *p1 = g_strdup_printf ("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                         "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                         "%zx\r\n%s\r\n", strlen (e1), e1);
  g_autofree char *p2 = g_strdup_printf ("%zx\r\n%s\r\n", strlen (e2), e2);
  g_autofree char *p3 = g_strdup_printf ("%zx\r\n%s\r\n", strlen (e3), e3);
  g_autofree char *p4 = g_strdup_printf ("%zx\r\n%s\r\n0\r\n\r\n", strlen (e4), e4);
  const char *pieces[] = { p1, p2, p3, p4, NULL };
  g_autoptr(GString) body = NULL;

  add_pool_key (f, POOL_KEY);
  start_gateway (f, pieces, 200);
  g_assert_cmpuint (request (f, "POST", STREAM_PATH, NULL, SMALL_BODY, &body), ==, 200);
  g_test_message ("%s", body->str);
  g_assert_false (holds_key (body->str, POOL_KEY));
  g_assert_false (holds_key (body->str, AQ_KEY));
  g_assert_nonnull (strstr (body->str, "data: {\"text\":\"[REDACTED]\"}\r\n\r\n"));
  g_assert_nonnull (strstr (body->str, "data: {\"text\":\"[REDACTED] [REDACTED]\"}\r\n\r\n"));
}

/* An upstream head near the limit the gateway takes (GK_UPSTREAM_HEAD_LIMIT,
 * GK_UPSTREAM_HEADER_COUNT_LIMIT) is relayed whole: the gateway's server
 * has room for an answer head that large. */
static void
test_big_upstream_head (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(GString) head = g_string_new ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                          "Connection: close\r\n");
  g_autofree char *pad = g_strnfill (550, 'p');
  g_autofree char *answer = NULL;
  g_autofree char *raw = NULL;
  g_autoptr(GString) response = NULL;
  const char *pieces[2] = { NULL, NULL };
  guint status;

  for (guint i = 0; i < 90; i++)
    g_string_append_printf (head, "X-Pad-%02u: %s\r\n", i, pad);
  g_assert_cmpuint (head->len, >, 48 * 1024);
  g_assert_cmpuint (head->len, <, GK_UPSTREAM_HEAD_LIMIT);
  answer = g_strdup_printf ("%sContent-Length: %zu\r\n\r\n%s", head->str, strlen (OK_ANSWER),
                            OK_ANSWER);
  pieces[0] = answer;
  add_pool_key (f, POOL_KEY);
  start_gateway (f, pieces, 0);

  raw = request_text (f, "POST", GENERATE_PATH, f->token, NULL, SMALL_BODY);
  status = exchange (f, raw, strlen (raw), &response, NULL);
  g_assert_cmpuint (status, ==, 200);
  g_assert_nonnull (strstr (response->str, "X-Pad-00: "));
  g_assert_nonnull (strstr (response->str, "X-Pad-89: "));
  g_assert_nonnull (strstr (response->str, OK_ANSWER));
}

/* An upstream error with no body at all. */
static void
test_empty_error (Fixture       *f,
                  gconstpointer  data)
{
  static const char * const pieces[] = {
    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    NULL,
  };

  add_pool_key (f, POOL_KEY);
  start_gateway (f, pieces, 0);
  g_assert_cmpuint (request (f, "POST", GENERATE_PATH, NULL, SMALL_BODY, NULL), ==, 404);
  g_assert_cmpuint (request (f, "GET", "/v1beta/models", NULL, NULL, NULL), ==, 404);
}

/* ---- The admin API's input ------------------------------------------------- */

#define ADMIN_KEY "AIzaSyAdminTestKey000000000000000000000"

static guint
admin_call (Fixture     *f,
            const char  *method,
            const char  *path,
            const char  *body,
            gsize        body_len,
            GString    **body_out)
{
  g_autofree char *head = g_strdup_printf ("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                                           "x-goog-api-key: %s\r\nContent-Type: application/json\r\n"
                                           "Connection: close\r\nContent-Length: %zu\r\n\r\n",
                                           method, path, gk_gateway_get_port (f->gateway),
                                           f->admin_token, body ? body_len : 0);
  g_autoptr(GString) raw = g_string_new (head);

  if (body != NULL)
    g_string_append_len (raw, body, body_len);
  return exchange (f, raw->str, raw->len, NULL, body_out);
}

static guint
count_keys (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = gk_key_store_list (f->store, &error);

  g_assert_no_error (error);
  return keys->len;
}

static void
test_admin_input (Fixture       *f,
                  gconstpointer  data)
{
  static const struct
  {
    const char *fields;   /* after "name" and "api_key" */
    const char *named;    /* what the error message must name */
  } bad[] = {
    { "\"priority\":4294967301", "priority" },
    { "\"priority\":5.9", "priority" },
    { "\"priority\":\"5\"", "priority" },
    { "\"priority\":0", "priority" },
    { "\"priority\":11", "priority" },
    { "\"priority\":null", "priority" },
    { "\"monthly_budget_usd\":-100", "monthly_budget_usd" },
    { "\"monthly_budget_usd\":\"abc\"", "monthly_budget_usd" },
    { "\"monthly_budget_usd\":1e400", "monthly_budget_usd" },
    { "\"monthly_budget_usd\":[]", "monthly_budget_usd" },
    { "\"active\":\"yes\"", "active" },
    { "\"active\":1", "active" },
    { "\"is_default\":\"true\"", "is_default" },
    { "\"monthly_quota\":-1", "monthly_quota" },
    { "\"daily_quota\":1.5", "daily_quota" },
    { "\"rpm\":\"10\"", "rpm" },
    { "\"rpd\":{}", "rpd" },
    { "\"minute_quota\":9223372036854775808", "minute_quota" },
    { "\"project\":5", "project" },
    { "\"status\":\"DELETED\"", "status" },
    { "\"status\":7", "status" },
    { "\"nmae\":\"typo\"", "nmae" },
  };
  static const char * const bad_names[] = {
    "\"a\\u0000b\"", "\"key\\u202Egnp\"", "\"key\\u2067x\"", "\"key\\u200Bx\"", "\"key\\uFEFFx\"",
    "\"two\\nlines\"", "\"\"", "null", "5", "[\"x\"]", "{}",
  };
  g_autoptr(GString) body = NULL;
  g_autofree char *long_name = g_strnfill (101, 'n');
  gint64 id;

  start_gateway (f, NULL, 0);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *json = g_strdup_printf ("{\"name\":\"k\",\"api_key\":\"%s\",%s}", ADMIN_KEY,
                                               bad[i].fields);
      guint status = admin_call (f, "POST", ADMIN_PREFIX "/", json, strlen (json), &body);

      g_test_message ("%s -> %u %s", json, status, body ? body->str : "");
      g_assert_cmpuint (status, ==, 400);
      assert_google_error (body, 400);
      g_assert_nonnull (strstr (body->str, bad[i].named));
      g_string_free (g_steal_pointer (&body), TRUE);
    }
  for (guint i = 0; i < G_N_ELEMENTS (bad_names) + 2; i++)
    {
      g_autofree char *json = NULL;
      g_autofree char *shown = NULL;
      guint status;

      if (i == G_N_ELEMENTS (bad_names))
        json = g_strdup_printf ("{\"name\":\"%s\",\"api_key\":\"%s\"}", long_name, ADMIN_KEY);
      else if (i == G_N_ELEMENTS (bad_names) + 1)
        json = g_strdup_printf ("{\"name\":\"bad \xff\xfe\",\"api_key\":\"%s\"}", ADMIN_KEY);
      else
        json = g_strdup_printf ("{\"name\":%s,\"api_key\":\"%s\"}", bad_names[i], ADMIN_KEY);
      status = admin_call (f, "POST", ADMIN_PREFIX "/", json, strlen (json), &body);
      /* TAP output must be UTF-8: the last name is not. */
      shown = g_strescape (json, NULL);
      g_test_message ("%s -> %u %s", shown, status, body ? body->str : "");
      g_assert_cmpuint (status, ==, 400);
      assert_google_error (body, 400);
      g_string_free (g_steal_pointer (&body), TRUE);
    }
  /* A NUL byte in the body itself. */
  {
    static const char json[] = "{\"name\":\"a\0b\",\"api_key\":\"" ADMIN_KEY "\"}";

    g_assert_cmpuint (admin_call (f, "POST", ADMIN_PREFIX "/", json, sizeof json - 1, NULL), ==, 400);
  }
  g_assert_cmpuint (count_keys (f), ==, 0);

  /* A sound body is taken, and bad updates change nothing. */
  {
    g_autofree char *json = g_strdup_printf ("{\"name\":\"ok\",\"api_key\":\"%s\",\"priority\":3,"
                                             "\"monthly_budget_usd\":null,\"rpm\":0,"
                                             "\"active\":true}", ADMIN_KEY);
    g_autoptr(JsonParser) parser = json_parser_new ();
    g_autoptr(GkKey) key = NULL;
    g_autofree char *path = NULL;

    g_assert_cmpuint (admin_call (f, "POST", ADMIN_PREFIX "/", json, strlen (json), &body), ==, 201);
    g_assert_true (json_parser_load_from_data (parser, body->str, body->len, NULL));
    id = json_object_get_int_member (json_node_get_object (json_parser_get_root (parser)), "id");
    g_string_free (g_steal_pointer (&body), TRUE);
    path = g_strdup_printf (ADMIN_PREFIX "/%" G_GINT64_FORMAT, id);
    for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
      {
        g_autofree char *update = g_strdup_printf ("{%s}", bad[i].fields);

        g_assert_cmpuint (admin_call (f, "PUT", path, update, strlen (update), NULL), ==, 400);
      }
    key = gk_key_store_get (f->store, id, NULL);
    g_assert_nonnull (key);
    g_assert_cmpint (key->priority, ==, 3);
    g_assert_cmpint (key->status, !=, GK_KEY_STATUS_INACTIVE);
    g_assert_cmpstr (key->name, ==, "ok");
    g_assert_cmpfloat (key->monthly_budget_usd, <, 0);
  }

  /* Quota resets: an unknown type is refused, not taken for "all". */
  {
    static const char * const bad_resets[] = {
      "{\"type\":\"weekly\"}", "{\"type\":5}", "{\"type\":null}", "{\"kind\":\"daily\"}", "[]",
    };

    for (guint i = 0; i < G_N_ELEMENTS (bad_resets); i++)
      {
        guint status = admin_call (f, "POST", ADMIN_PREFIX "/quotas/reset", bad_resets[i],
                                   strlen (bad_resets[i]), &body);

        g_test_message ("reset %s -> %u %s", bad_resets[i], status, body ? body->str : "");
        g_assert_cmpuint (status, ==, 400);
        assert_google_error (body, 400);
        g_string_free (g_steal_pointer (&body), TRUE);
      }
    g_assert_cmpuint (admin_call (f, "POST", ADMIN_PREFIX "/quotas/reset", "{\"type\":\"daily\"}",
                                  16, &body), ==, 200);
    g_assert_nonnull (strstr (body->str, "\"DAILY\""));
    g_string_free (g_steal_pointer (&body), TRUE);
    g_assert_cmpuint (admin_call (f, "POST", ADMIN_PREFIX "/quotas/reset", NULL, 0, &body), ==, 200);
    g_assert_nonnull (strstr (body->str, "\"all\""));
  }
}

/* Chunk sizes that are not numbers: the request is refused and the
 * connection closed, so what follows is never read as a request of its
 * own (nor is it left to hang: the client timeouts are short here). */
static void
test_chunk_sizes (Fixture       *f,
                  gconstpointer  data)
{
  static const char * const bodies[] = {
    "-2\r\n{}\r\n0\r\n\r\n",
    "fffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
    "zz\r\n{}\r\n0\r\n\r\nGET /v1beta/models HTTP/1.1\r\nHost: a\r\n\r\n",
  };
  g_autoptr(GError) error = NULL;
  g_autofree char *url = NULL;
  guint requests = 0;

  add_pool_key (f, POOL_KEY);
  f->upstream = raw_upstream_start (plain_ok, 0);
  url = raw_upstream_url (f->upstream);
  f->gateway = gk_gateway_new (f->store, f->pool);
  gk_gateway_set_upstream (f->gateway, url);
  gk_gateway_set_client_timeouts (f->gateway, 1500, 1500);
  g_assert_true (gk_gateway_start (f->gateway, "127.0.0.1", 0, &error));
  g_assert_no_error (error);

  for (guint i = 0; i < G_N_ELEMENTS (bodies); i++)
    {
      g_autofree char *raw = g_strdup_printf ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                                              "x-goog-api-key: %s\r\nTransfer-Encoding: chunked\r\n"
                                              "Content-Type: application/json\r\n\r\n%s",
                                              GENERATE_PATH, gk_gateway_get_port (f->gateway),
                                              f->token, bodies[i]);
      int fd = connect_to (gk_gateway_get_port (f->gateway));
      g_autoptr(GString) all = g_string_new (NULL);
      gint64 start = g_get_monotonic_time ();

      g_assert_true (send_all (fd, raw, strlen (raw)));
      /* Everything the gateway says until it closes. */
      for (;;)
        {
          struct pollfd pfd = { fd, POLLIN, 0 };
          char buf[4096];
          gssize n;

          if (poll (&pfd, 1, 20000) <= 0)
            break;
          n = recv (fd, buf, sizeof buf, 0);
          if (n <= 0)
            break;
          g_string_append_len (all, buf, n);
        }
      close (fd);
      g_test_message ("chunked body %u: %" G_GINT64_FORMAT " ms, \"%.60s\"", i,
                      (g_get_monotonic_time () - start) / 1000, all->str);
      /* Closed, with at most one answer, and never a success. */
      g_assert_cmpint ((g_get_monotonic_time () - start) / 1000, <, 19000);
      if (all->len > 0)
        {
          g_assert_cmpuint (status_of (all->str), >=, 400);
          g_assert_null (strstr (all->str + 1, "HTTP/1.1"));
        }
    }
  g_free (raw_upstream_captured (f->upstream, &requests));
  g_assert_cmpuint (requests, ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  if (argc == 3 && g_str_equal (argv[1], "--limited-gateway"))
    return limited_gateway (argv[2]);

  g_test_init (&argc, &argv, NULL);
  signal (SIGPIPE, SIG_IGN);

#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/hardening/hostile/request-splitting", test_request_splitting);
  ADD ("/hardening/hostile/header-allow-list", test_header_allow_list);
  ADD ("/hardening/hostile/methods", test_methods);
  ADD ("/hardening/hostile/deep-json", test_deep_json);
  ADD ("/hardening/hostile/framing", test_framing);
  ADD ("/hardening/hostile/chunk-sizes", test_chunk_sizes);
  ADD ("/hardening/hostile/closed-connections", test_closed_connections);
  ADD ("/hardening/hostile/fd-limit", test_fd_limit);
  ADD ("/hardening/hostile/slow-clients-cut", test_slow_clients_cut);
  ADD ("/hardening/hostile/slow-clients-latency", test_slow_clients_latency);
  ADD ("/hardening/hostile/redaction-whole", test_redaction_whole);
  ADD ("/hardening/hostile/redaction-stream", test_redaction_stream);
  ADD ("/hardening/hostile/empty-error", test_empty_error);
  ADD ("/hardening/hostile/big-upstream-head", test_big_upstream_head);
  ADD ("/hardening/hostile/admin-input", test_admin_input);
#undef ADD
  return g_test_run ();
}
