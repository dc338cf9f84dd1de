/* test-upstream.c: the gateway's upstream side over loopback: TLS with a
 * CA made here (never the system's), a CONNECT proxy, timeouts, and
 * upstreams that answer badly (empty bodies, conflicting lengths, too many
 * headers, answers too large).
 *
 * The certificates are made with the openssl command in a temporary
 * directory; $GEMINI_KEYS_UPSTREAM_CA makes the gateway trust the test CA.
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
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "gk-gateway.h"
#include "gk-test-util.h"
#include "gk-upstream.h"

#define MODEL_PATH    "/v1beta/models/gemini-2.5-flash"
#define GENERATE_BODY "{\"contents\":[{\"parts\":[{\"text\":\"Hello\"}]}]}"
#define EVENT_SIZE    (16 * 1024)

static char *pki_dir;
static char *ca_file;        /* the test CA, trusted */
static char *other_ca_file;  /* a CA that signed nothing the mocks use */
static guint good_port;      /* https mock, certificate for 127.0.0.1 */
static guint expired_port;   /* https mock, expired certificate */
static GPtrArray *mocks;     /* GSubprocess * */

/* ---- Certificates and https mocks --------------------------------------- */

static void
run_openssl (const char *args)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *command = g_strdup_printf ("openssl %s", args);
  g_auto(GStrv) argv = NULL;
  g_autofree char *err = NULL;
  int status = 0;

  g_assert_true (g_shell_parse_argv (command, NULL, &argv, &error));
  g_assert_true (g_spawn_sync (pki_dir, argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                               NULL, NULL, NULL, &err, &status, &error));
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("openssl %s failed: %s", args, err);
}

/* A CA, another CA, and two server certificates signed by the first: one
 * valid for 127.0.0.1 only (so "localhost" is the wrong host), one expired
 * a day ago. */
static void
make_pki (void)
{
  g_autofree char *ext = NULL;

  pki_dir = g_dir_make_tmp ("gk-upstream-pki-XXXXXX", NULL);
  g_assert_nonnull (pki_dir);
  ext = g_build_filename (pki_dir, "ext", NULL);
  g_assert_true (g_file_set_contents (ext, "subjectAltName=IP:127.0.0.1\n", -1, NULL));

  run_openssl ("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
               "-out ca.pem -subj /CN=Gemini-Keys-Test-CA -days 2");
  run_openssl ("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key "
               "-out other.pem -subj /CN=Other-CA -days 2");
  run_openssl ("req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key "
               "-out server.csr -subj /CN=127.0.0.1");
  run_openssl ("x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
               "-extfile ext -out good.pem");
  /* Valid from now until a day ago: expired. */
  run_openssl ("x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days -1 "
               "-extfile ext -out expired.pem");
  ca_file = g_build_filename (pki_dir, "ca.pem", NULL);
  other_ca_file = g_build_filename (pki_dir, "other.pem", NULL);
}

static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGTERM);
}

/* Starts tests/mock-gemini; with @cert, over https. Returns its port. */
static guint
start_mock (const char *cert)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename (g_getenv ("GEMINI_KEYS_BUILD_ROOT"), "tests",
                                            "mock-gemini", "mock-gemini", NULL);
  g_autofree char *cert_path = cert ? g_build_filename (pki_dir, cert, NULL) : NULL;
  g_autofree char *key_path = g_build_filename (pki_dir, "server.key", NULL);
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr(GDataInputStream) lines = NULL;
  g_autofree char *line = NULL;
  GSubprocess *mock;

  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  if (cert != NULL)
    mock = g_subprocess_launcher_spawn (launcher, &error, path, "--port", "0", "--tls-cert",
                                        cert_path, "--tls-key", key_path, NULL);
  else
    mock = g_subprocess_launcher_spawn (launcher, &error, path, "--port", "0", NULL);
  g_assert_no_error (error);
  g_ptr_array_add (mocks, mock);
  lines = g_data_input_stream_new (g_subprocess_get_stdout_pipe (mock));
  line = g_data_input_stream_read_line (lines, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "PORT "));
  return (guint) g_ascii_strtoull (line + 5, NULL, 10);
}

/* ---- Sockets ------------------------------------------------------------ */

static int
listen_loopback (guint *port)
{
  struct sockaddr_in addr = { 0 };
  socklen_t len = sizeof addr;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  g_assert_cmpint (bind (fd, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  g_assert_cmpint (listen (fd, 64), ==, 0);
  g_assert_cmpint (getsockname (fd, (struct sockaddr *) &addr, &len), ==, 0);
  *port = ntohs (addr.sin_port);
  return fd;
}

static int
connect_loopback (guint port)
{
  struct sockaddr_in addr = { 0 };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  addr.sin_port = htons (port);
  if (connect (fd, (struct sockaddr *) &addr, sizeof addr) != 0)
    {
      close (fd);
      return -1;
    }
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

      if (n <= 0)
        return FALSE;
      data += n;
      len -= n;
    }
  return TRUE;
}

/* Waits until @fd has something to read or @stop_fd is written to.
 * FALSE when told to stop. */
static gboolean
wait_readable (int fd,
               int stop_fd)
{
  struct pollfd pfds[2] = { { stop_fd, POLLIN, 0 }, { fd, POLLIN, 0 } };

  return poll (pfds, 2, 60000) > 0 && pfds[0].revents == 0;
}

/* ---- A raw upstream ----------------------------------------------------- */

typedef struct
{
  int          listen_fd;
  guint        port;
  int          stop[2];
  GThread     *thread;
  const char  *answer;       /* written as it is, then the connection closes */
  guint64      huge;         /* > 0: a 200 of this many bytes instead */
  gboolean     stream;       /* with @huge: as a chunked event stream */
  gint         events_sent;  /* with @stream: events the gateway took */
  gboolean     silent;       /* never answers */
  gint         requests;
  gint         accepted;     /* connections the gateway opened */
  gint         closed;       /* connections the gateway closed */
  char        *base;
  GMutex       lock;
  char        *last;         /* the last request's bytes, as first read (under @lock) */
} Raw;

typedef struct
{
  Raw *raw;
  int  fd;
} RawConn;

static gpointer
raw_conn_thread (gpointer data)
{
  RawConn *rc = data;
  Raw *raw = rc->raw;
  g_autoptr(GString) in = g_string_new (NULL);
  char buf[65536];

  while (strstr (in->str, "\r\n\r\n") == NULL)
    {
      gssize n;

      if (!wait_readable (rc->fd, raw->stop[0]))
        goto done;
      n = recv (rc->fd, buf, sizeof buf, 0);
      if (n <= 0)
        goto done;
      g_string_append_len (in, buf, n);
    }
  g_mutex_lock (&raw->lock);
  g_free (raw->last);
  raw->last = g_strdup (in->str);
  g_mutex_unlock (&raw->lock);
  g_atomic_int_inc (&raw->requests);

  if (raw->silent)
    {
      /* Reads (and drops) until the gateway closes. */
      while (wait_readable (rc->fd, raw->stop[0]) && recv (rc->fd, buf, sizeof buf, 0) > 0)
        ;
    }
  else if (raw->huge > 0 && raw->stream)
    {
      const char *head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n";
      g_autoptr(GString) chunk = g_string_new (NULL);
      guint64 left = raw->huge;

      /* Events of 16 KiB, one per chunk. */
      g_string_append_printf (chunk, "%x\r\ndata: ", EVENT_SIZE);
      for (guint i = 0; i < EVENT_SIZE - 8; i++)
        g_string_append_c (chunk, 'x');
      g_string_append (chunk, "\n\n\r\n");
      send_all (rc->fd, head, strlen (head));
      while (left > 0 && send_all (rc->fd, chunk->str, chunk->len))
        {
          g_atomic_int_inc (&raw->events_sent);
          left -= MIN (left, EVENT_SIZE);
        }
      send_all (rc->fd, "0\r\n\r\n", 5);
    }
  else if (raw->huge > 0)
    {
      g_autofree char *head = g_strdup_printf ("HTTP/1.1 200 OK\r\n"
                                               "Content-Type: application/json\r\n"
                                               "Content-Length: %" G_GUINT64_FORMAT "\r\n\r\n",
                                               raw->huge);
      guint64 left = raw->huge;

      memset (buf, 'x', sizeof buf);
      send_all (rc->fd, head, strlen (head));
      while (left > 0 && send_all (rc->fd, buf, MIN (left, sizeof buf)))
        left -= MIN (left, sizeof buf);
    }
  else
    send_all (rc->fd, raw->answer, strlen (raw->answer));

done:
  close (rc->fd);
  g_atomic_int_inc (&raw->closed);
  g_free (rc);
  return NULL;
}

static gpointer
raw_accept_thread (gpointer data)
{
  Raw *raw = data;

  while (wait_readable (raw->listen_fd, raw->stop[0]))
    {
      RawConn *rc = g_new0 (RawConn, 1);

      rc->raw = raw;
      rc->fd = accept4 (raw->listen_fd, NULL, NULL, SOCK_CLOEXEC);
      if (rc->fd < 0)
        {
          g_free (rc);
          continue;
        }
      g_atomic_int_inc (&raw->accepted);
      g_thread_unref (g_thread_new ("raw-conn", raw_conn_thread, rc));
    }
  return NULL;
}

static Raw *
raw_new (const char *answer)
{
  Raw *raw = g_new0 (Raw, 1);

  raw->answer = answer;
  raw->listen_fd = listen_loopback (&raw->port);
  g_assert_cmpint (pipe2 (raw->stop, O_CLOEXEC), ==, 0);
  raw->base = g_strdup_printf ("http://127.0.0.1:%u", raw->port);
  raw->thread = g_thread_new ("raw-accept", raw_accept_thread, raw);
  return raw;
}

static void
raw_free (Raw *raw)
{
  g_assert_cmpint (write (raw->stop[1], "x", 1), ==, 1);
  g_thread_join (raw->thread);
  close (raw->listen_fd);
  /* The connection threads see the stop pipe too: wait for them. */
  for (guint i = 0; i < 500 && g_atomic_int_get (&raw->closed) < g_atomic_int_get (&raw->requests); i++)
    g_usleep (10000);
  close (raw->stop[0]);
  close (raw->stop[1]);
  g_free (raw->base);
  g_free (raw->last);
  g_free (raw);
}

/* ---- A CONNECT proxy ---------------------------------------------------- */

typedef struct
{
  int       listen_fd;
  guint     port;
  int       stop[2];
  GThread  *thread;
  gboolean  refuse;     /* answers 403 to every CONNECT */
  gint      tunnels;
  gint      active;
} Proxy;

typedef struct
{
  Proxy *proxy;
  int    fd;
} ProxyConn;

static void
relay (int a,
       int b,
       int stop_fd)
{
  char buf[65536];

  for (;;)
    {
      struct pollfd pfds[3] = { { stop_fd, POLLIN, 0 }, { a, POLLIN, 0 }, { b, POLLIN, 0 } };

      if (poll (pfds, 3, 60000) <= 0 || pfds[0].revents != 0)
        return;
      for (int i = 1; i < 3; i++)
        if (pfds[i].revents != 0)
          {
            int from = pfds[i].fd, to = i == 1 ? b : a;
            gssize n = recv (from, buf, sizeof buf, 0);

            if (n <= 0 || !send_all (to, buf, n))
              return;
          }
    }
}

static gpointer
proxy_conn_thread (gpointer data)
{
  ProxyConn *pc = data;
  Proxy *proxy = pc->proxy;
  g_autoptr(GString) in = g_string_new (NULL);
  char buf[4096];
  const char *colon;
  guint port;
  int target = -1;

  while (strstr (in->str, "\r\n\r\n") == NULL)
    {
      gssize n;

      if (!wait_readable (pc->fd, proxy->stop[0]))
        goto done;
      n = recv (pc->fd, buf, sizeof buf, 0);
      if (n <= 0)
        goto done;
      g_string_append_len (in, buf, n);
    }
  if (!g_str_has_prefix (in->str, "CONNECT ") || proxy->refuse)
    {
      const char *no = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

      send_all (pc->fd, no, strlen (no));
      goto done;
    }
  /* "CONNECT 127.0.0.1:PORT HTTP/1.1": only loopback targets here. */
  colon = strchr (in->str + 8, ':');
  g_assert_nonnull (colon);
  port = (guint) g_ascii_strtoull (colon + 1, NULL, 10);
  target = connect_loopback (port);
  if (target < 0)
    {
      const char *no = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n";

      send_all (pc->fd, no, strlen (no));
      goto done;
    }
  g_atomic_int_inc (&proxy->tunnels);
  send_all (pc->fd, "HTTP/1.1 200 Connection established\r\n\r\n", 39);
  relay (pc->fd, target, proxy->stop[0]);

done:
  if (target >= 0)
    close (target);
  close (pc->fd);
  g_atomic_int_dec_and_test (&proxy->active);
  g_free (pc);
  return NULL;
}

static gpointer
proxy_accept_thread (gpointer data)
{
  Proxy *proxy = data;

  while (wait_readable (proxy->listen_fd, proxy->stop[0]))
    {
      ProxyConn *pc = g_new0 (ProxyConn, 1);

      pc->proxy = proxy;
      pc->fd = accept4 (proxy->listen_fd, NULL, NULL, SOCK_CLOEXEC);
      if (pc->fd < 0)
        {
          g_free (pc);
          continue;
        }
      g_atomic_int_inc (&proxy->active);
      g_thread_unref (g_thread_new ("proxy-conn", proxy_conn_thread, pc));
    }
  return NULL;
}

static Proxy *
proxy_new (void)
{
  Proxy *proxy = g_new0 (Proxy, 1);

  proxy->listen_fd = listen_loopback (&proxy->port);
  g_assert_cmpint (pipe2 (proxy->stop, O_CLOEXEC), ==, 0);
  proxy->thread = g_thread_new ("proxy-accept", proxy_accept_thread, proxy);
  return proxy;
}

static void
proxy_free (Proxy *proxy)
{
  g_assert_cmpint (write (proxy->stop[1], "x", 1), ==, 1);
  g_thread_join (proxy->thread);
  close (proxy->listen_fd);
  for (guint i = 0; i < 500 && g_atomic_int_get (&proxy->active) > 0; i++)
    g_usleep (10000);
  close (proxy->stop[0]);
  close (proxy->stop[1]);
  g_free (proxy);
}

/* ---- The gateway -------------------------------------------------------- */

typedef struct
{
  GkDatabase  *db;
  GkKeyStore  *store;
  GkPool      *pool;
  GkGateway   *gateway;
  SoupSession *session;
  char        *token;
  char        *base;
  char        *db_dir;
  GMutex       log_lock;
  GString     *log;
} Fixture;

static void
log_cb (GkGateway  *gateway,
        const char *line,
        Fixture    *f)
{
  g_mutex_lock (&f->log_lock);
  g_string_append (f->log, line);
  g_string_append_c (f->log, '\n');
  g_mutex_unlock (&f->log_lock);
}

static gboolean
log_has (Fixture    *f,
         const char *text)
{
  gboolean found;

  g_mutex_lock (&f->log_lock);
  found = strstr (f->log->str, text) != NULL;
  if (!found)
    g_test_message ("log: %s", f->log->str);
  g_mutex_unlock (&f->log_lock);
  return found;
}

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
  f->session = soup_session_new_with_options ("timeout", 60, NULL);
  f->log = g_string_new (NULL);
  g_mutex_init (&f->log_lock);
  f->gateway = gk_gateway_new (f->store, f->pool);
  g_signal_connect (f->gateway, "log", G_CALLBACK (log_cb), f);
  g_setenv ("GEMINI_KEYS_UPSTREAM_CA", ca_file, TRUE);
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  gk_gateway_stop (f->gateway);
  g_assert_finalize_object (f->gateway);
  g_clear_object (&f->session);
  g_clear_object (&f->pool);
  g_clear_object (&f->store);
  g_clear_object (&f->db);
  g_free (f->token);
  g_free (f->base);
  g_string_free (f->log, TRUE);
  g_mutex_clear (&f->log_lock);
  gk_test_rm_rf (f->db_dir);
  g_free (f->db_dir);
  g_unsetenv ("https_proxy");
  g_unsetenv ("HTTPS_PROXY");
  g_unsetenv ("no_proxy");
  g_unsetenv ("NO_PROXY");
}

/* (Re)starts the gateway against @upstream. */
static void
start (Fixture    *f,
       const char *upstream)
{
  g_autoptr(GError) error = NULL;

  gk_gateway_stop (f->gateway);
  gk_gateway_set_upstream (f->gateway, upstream);
  g_assert_true (gk_gateway_start (f->gateway, "127.0.0.1", 0, &error));
  g_assert_no_error (error);
  g_free (f->base);
  f->base = g_strdup_printf ("http://127.0.0.1:%u", gk_gateway_get_port (f->gateway));
}

static gint64
add_key (Fixture    *f,
         const char *word)
{
  static guint counter;
  g_autoptr(GError) error = NULL;
  g_autofree char *name = g_strdup_printf ("%s-%u", word, ++counter);
  g_autofree char *api_key = g_strdup_printf ("AIza%s%0*u", word, 35 - (int) strlen (word),
                                              counter);
  GkKeySpec spec;
  gint64 id;

  gk_key_spec_init (&spec);
  spec.name = name;
  spec.priority = 5;
  id = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);
  return id;
}

/* One request through the gateway. */
static GBytes *
post (Fixture    *f,
      const char *method,
      const char *path,
      guint      *status)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *url = g_strconcat (f->base, path, NULL);
  g_autoptr(SoupMessage) msg = soup_message_new (method, url);
  GBytes *out;

  soup_message_headers_replace (soup_message_get_request_headers (msg), "x-goog-api-key",
                                f->token);
  /* What the gateway answers, not where a redirect leads. */
  soup_message_set_flags (msg, SOUP_MESSAGE_NO_REDIRECT);
  if (g_strcmp0 (method, "POST") == 0)
    soup_message_set_request_body_from_bytes (msg, "application/json",
                                              g_bytes_new_static (GENERATE_BODY,
                                                                  strlen (GENERATE_BODY)));
  out = soup_session_send_and_read (f->session, msg, NULL, &error);
  g_assert_no_error (error);
  *status = soup_message_get_status (msg);
  return out;
}

/* Asserts Google's error shape with @code, and a message holding @text. */
static void
assert_error (GBytes     *body,
              guint       code,
              const char *text)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  gsize len;
  const char *data = g_bytes_get_data (body, &len);
  JsonObject *error;

  g_assert_true (json_parser_load_from_data (parser, data, len, NULL));
  error = json_object_get_object_member (json_node_get_object (json_parser_get_root (parser)),
                                         "error");
  g_assert_nonnull (error);
  g_assert_cmpint (json_object_get_int_member (error, "code"), ==, code);
  g_test_message ("error: %s", json_object_get_string_member (error, "message"));
  g_assert_nonnull (strstr (json_object_get_string_member (error, "message"), text));
}

typedef struct
{
  GMainLoop *loop;
  GError    *error;
  gboolean   ok;
} KeyTest;

static void
key_test_done_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  KeyTest *wait = user_data;

  wait->ok = gk_gateway_test_key_finish (result, &wait->error);
  g_main_loop_quit (wait->loop);
}

/* `key test` of @key_id against @upstream; returns its error, if any. */
static GError *
key_test (Fixture    *f,
          gint64      key_id,
          const char *upstream)
{
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  KeyTest wait = { loop, NULL, FALSE };

  g_setenv ("GEMINI_KEYS_UPSTREAM", upstream, TRUE);
  gk_gateway_test_key_async (f->store, key_id, NULL, key_test_done_cb, &wait);
  g_main_loop_run (loop);
  g_unsetenv ("GEMINI_KEYS_UPSTREAM");
  g_assert_true (wait.ok == (wait.error == NULL));
  return wait.error;
}

/* ---- TLS ---------------------------------------------------------------- */

static void
test_tls_trusted (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *upstream = g_strdup_printf ("https://127.0.0.1:%u", good_port);
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  gint64 id = add_key (f, "OK");
  guint status;

  start (f, upstream);
  body = post (f, "POST", MODEL_PATH ":generateContent", &status);
  g_assert_cmpuint (status, ==, 200);
  g_assert_nonnull (g_strstr_len (g_bytes_get_data (body, NULL), g_bytes_get_size (body),
                                  "Hello from the mock."));
  error = key_test (f, id, upstream);
  g_assert_no_error (error);
}

/* A TLS failure: the client gets 502 naming its class, the log and
 * `key test` say which it is. */
static void
check_tls_failure (Fixture    *f,
                   const char *upstream,
                   const char *client_text,
                   const char *log_text)
{
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  gint64 id = add_key (f, "OK");
  guint status;

  start (f, upstream);
  body = post (f, "POST", MODEL_PATH ":generateContent", &status);
  g_assert_cmpuint (status, ==, 502);
  assert_error (body, 502, client_text);
  g_assert_true (log_has (f, log_text));
  /* Not retried on other keys: the upstream itself is the problem. */
  g_assert_true (log_has (f, "-> 502 upstream failure"));

  error = key_test (f, id, upstream);
  g_assert_error (error, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_UPSTREAM);
  g_test_message ("key test: %s", error->message);
  g_assert_nonnull (strstr (error->message, client_text));
}

static void
test_tls_untrusted (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *upstream = g_strdup_printf ("https://127.0.0.1:%u", good_port);

  g_setenv ("GEMINI_KEYS_UPSTREAM_CA", other_ca_file, TRUE);
  check_tls_failure (f, upstream, "TLS certificate is not trusted", "TLS certificate not trusted");
}

static void
test_tls_expired (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *upstream = g_strdup_printf ("https://127.0.0.1:%u", expired_port);

  check_tls_failure (f, upstream, "TLS certificate has expired",
                     "TLS certificate expired or not yet valid");
}

static void
test_tls_wrong_host (Fixture       *f,
                     gconstpointer  data)
{
  /* The certificate names 127.0.0.1 only. */
  g_autofree char *upstream = g_strdup_printf ("https://localhost:%u", good_port);

  check_tls_failure (f, upstream, "TLS certificate is for another host name",
                     "TLS certificate for another host name");
}

/* ---- Proxies ------------------------------------------------------------ */

static void
test_proxy_connect (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *upstream = g_strdup_printf ("https://127.0.0.1:%u", good_port);
  Proxy *proxy = proxy_new ();
  g_autofree char *proxy_url = g_strdup_printf ("http://127.0.0.1:%u", proxy->port);
  g_autoptr(GError) error = NULL;
  gint64 id = add_key (f, "OK");
  guint status;

  start (f, upstream);

  /* https_proxy: through a tunnel. */
  g_setenv ("https_proxy", proxy_url, TRUE);
  g_bytes_unref (post (f, "POST", MODEL_PATH ":generateContent", &status));
  g_assert_cmpuint (status, ==, 200);
  g_assert_cmpint (g_atomic_int_get (&proxy->tunnels), ==, 1);
  g_unsetenv ("https_proxy");

  /* HTTPS_PROXY too, as curl reads it. */
  g_setenv ("HTTPS_PROXY", proxy_url, TRUE);
  g_bytes_unref (post (f, "POST", MODEL_PATH ":countTokens", &status));
  g_assert_cmpuint (status, ==, 200);
  g_assert_cmpint (g_atomic_int_get (&proxy->tunnels), >=, 1);

  /* no_proxy names the upstream: straight there. */
  {
    gint before = g_atomic_int_get (&proxy->tunnels);

    g_setenv ("no_proxy", "127.0.0.1", TRUE);
    g_bytes_unref (post (f, "POST", MODEL_PATH ":generateContent", &status));
    g_assert_cmpuint (status, ==, 200);
    g_assert_cmpint (g_atomic_int_get (&proxy->tunnels), ==, before);
    g_unsetenv ("no_proxy");
  }

  /* `key test` goes the same way. */
  {
    gint before = g_atomic_int_get (&proxy->tunnels);

    error = key_test (f, id, upstream);
    g_assert_no_error (error);
    g_assert_cmpint (g_atomic_int_get (&proxy->tunnels), ==, before + 1);
  }

  /* A proxy that refuses: 502 naming the proxy. */
  proxy->refuse = TRUE;
  start (f, upstream);
  {
    g_autoptr(GBytes) body = post (f, "POST", MODEL_PATH ":generateContent", &status);

    g_assert_cmpuint (status, ==, 502);
    assert_error (body, 502, "proxy");
    g_assert_true (log_has (f, "HTTP 403"));
  }
  g_unsetenv ("HTTPS_PROXY");
  gk_gateway_stop (f->gateway);
  proxy_free (proxy);
}

/* ---- Timeouts ----------------------------------------------------------- */

static void
test_first_byte_timeout (Fixture       *f,
                         gconstpointer  data)
{
  Raw *raw = raw_new (NULL);
  g_autoptr(GBytes) body = NULL;
  guint status;

  raw->silent = TRUE;
  add_key (f, "OK");
  gk_gateway_set_upstream_timeout (f->gateway, 1);
  gk_gateway_set_max_attempts (f->gateway, 1);
  start (f, raw->base);
  body = post (f, "POST", MODEL_PATH ":generateContent", &status);
  g_assert_cmpuint (status, ==, 504);
  assert_error (body, 504, "did not answer in time");
  g_assert_true (log_has (f, "no answer within 1 s"));
  gk_gateway_stop (f->gateway);
  raw_free (raw);
}

static void
test_request_deadline (Fixture       *f,
                       gconstpointer  data)
{
  Raw *raw = raw_new (NULL);
  g_autoptr(GBytes) body = NULL;
  gint64 start_us;
  guint status;

  raw->silent = TRUE;
  for (guint i = 0; i < 5; i++)
    add_key (f, "OK");
  /* Five keys of 1 s each would take 5 s; the request may take 2. */
  gk_gateway_set_upstream_timeout (f->gateway, 1);
  gk_gateway_set_request_timeout (f->gateway, 2);
  start (f, raw->base);
  start_us = g_get_monotonic_time ();
  body = post (f, "POST", MODEL_PATH ":generateContent", &status);
  g_test_message ("answered after %" G_GINT64_FORMAT " ms",
                  (g_get_monotonic_time () - start_us) / 1000);
  g_assert_cmpuint (status, ==, 504);
  assert_error (body, 504, "deadline passed");
  g_assert_cmpint (g_atomic_int_get (&raw->requests), <, 5);
  gk_gateway_stop (f->gateway);
  raw_free (raw);
}

/* The gateway started with a key, forwarding to an upstream that never
 * answers. */
static Raw *
raw_silent_start (Fixture *f)
{
  Raw *raw = raw_new (NULL);

  raw->silent = TRUE;
  add_key (f, "OK");
  gk_gateway_set_upstream_timeout (f->gateway, 120);
  start (f, raw->base);
  return raw;
}

/* A whole generateContent request to the gateway, as a client writes it. */
static char *
generate_request_text (Fixture *f)
{
  return g_strdup_printf ("POST %s:generateContent HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                          "x-goog-api-key: %s\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n\r\n%s", MODEL_PATH,
                          gk_gateway_get_port (f->gateway), f->token, strlen (GENERATE_BODY),
                          GENERATE_BODY);
}

/* Sends @request on @fd, waits for the (silent) upstream to receive it,
 * then closes @fd: the upstream call must end at once. */
static void
leave_during_upstream_call (Raw        *raw,
                            int         fd,
                            const char *request)
{
  g_assert_true (send_all (fd, request, strlen (request)));
  for (guint i = 0; i < 1000 && g_atomic_int_get (&raw->requests) == 0; i++)
    g_usleep (10000);
  g_assert_cmpint (g_atomic_int_get (&raw->requests), ==, 1);
  close (fd);
  for (guint i = 0; i < 1000 && g_atomic_int_get (&raw->closed) == 0; i++)
    g_usleep (10000);
  g_assert_cmpint (g_atomic_int_get (&raw->closed), ==, 1);
}

/* A client that hangs up ends its upstream call at once: the upstream sees
 * its connection closed long before any timeout. */
static void
test_client_gone_cancels (Fixture       *f,
                          gconstpointer  data)
{
  Raw *raw = raw_silent_start (f);
  g_autofree char *request = generate_request_text (f);
  int fd = connect_loopback (gk_gateway_get_port (f->gateway));

  g_assert_cmpint (fd, >=, 0);
  leave_during_upstream_call (raw, fd, request);
  gk_gateway_stop (f->gateway);
  raw_free (raw);
}

/* A client that shuts its side down right after its request, before the
 * gateway has forwarded it, and one that leaves during the second request
 * of a kept-alive connection: each upstream call ends at once too. */
static void
test_client_gone_early (Fixture       *f,
                        gconstpointer  data)
{
  Raw *raw = raw_silent_start (f);
  g_autofree char *request = generate_request_text (f);
  g_autofree char *models = NULL;
  char buf[4096];
  gssize n;
  int fd = connect_loopback (gk_gateway_get_port (f->gateway));

  g_assert_cmpint (fd, >=, 0);
  g_assert_true (send_all (fd, request, strlen (request)));
  shutdown (fd, SHUT_WR);
  /* Either the call never starts or it ends at once: no upstream
   * connection stays open (the silent upstream would hold it for 120 s). */
  g_usleep (100000);
  for (guint i = 0; i < 1000 && g_atomic_int_get (&raw->closed) < g_atomic_int_get (&raw->accepted); i++)
    g_usleep (10000);
  g_assert_cmpint (g_atomic_int_get (&raw->closed), ==, g_atomic_int_get (&raw->accepted));
  close (fd);

  /* A first request answered (the 404 of an unknown path, not forwarded),
   * then a second one on the same connection whose client leaves. */
  fd = connect_loopback (gk_gateway_get_port (f->gateway));
  g_assert_cmpint (fd, >=, 0);
  models = g_strdup_printf ("GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                            "x-goog-api-key: %s\r\n\r\n",
                            gk_gateway_get_port (f->gateway), f->token);
  g_assert_true (send_all (fd, models, strlen (models)));
  n = recv (fd, buf, sizeof buf - 1, 0);
  g_assert_cmpint (n, >, 0);
  buf[n] = '\0';
  g_assert_true (g_str_has_prefix (buf, "HTTP/1.1 404"));
  g_atomic_int_set (&raw->requests, 0);
  g_atomic_int_set (&raw->closed, 0);
  leave_during_upstream_call (raw, fd, request);
  gk_gateway_stop (f->gateway);
  raw_free (raw);
}


/* A client that reads a stream slowly holds the upstream back: the gateway
 * neither reads the whole answer nor holds it. */
static void
test_slow_client (Fixture       *f,
                  gconstpointer  data)
{
  Raw *raw = raw_new (NULL);
  g_autofree char *request = NULL;
  gint64 total = 0;
  gint taken;
  char buf[65536];
  int fd;

  raw->huge = 256 * 1024 * 1024;
  raw->stream = TRUE;
  add_key (f, "OK");
  start (f, raw->base);

  request = g_strdup_printf ("POST %s:streamGenerateContent?alt=sse HTTP/1.1\r\n"
                             "Host: 127.0.0.1:%u\r\nx-goog-api-key: %s\r\n"
                             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                             MODEL_PATH, gk_gateway_get_port (f->gateway), f->token,
                             strlen (GENERATE_BODY), GENERATE_BODY);
  fd = connect_loopback (gk_gateway_get_port (f->gateway));
  g_assert_cmpint (fd, >=, 0);
  g_assert_true (send_all (fd, request, strlen (request)));
  /* The answer starts, then the client stops reading for a while. */
  g_assert_cmpint (recv (fd, buf, sizeof buf, 0), >, 0);
  g_usleep (2 * G_USEC_PER_SEC);
  taken = g_atomic_int_get (&raw->events_sent);
  g_test_message ("the gateway took %d KiB of a 256 MiB stream", taken * EVENT_SIZE / 1024);
  /* Socket buffers on both sides, libcurl's read-ahead and libsoup's
   * backlog: a few MiB at most, not the whole stream. */
  g_assert_cmpint ((gint64) taken * EVENT_SIZE, <, 32 * 1024 * 1024);

  /* Reading on gets more of it. */
  for (guint i = 0; i < 200; i++)
    {
      gssize n = recv (fd, buf, sizeof buf, 0);

      g_assert_cmpint (n, >, 0);
      total += n;
    }
  for (guint i = 0; i < 500 && g_atomic_int_get (&raw->events_sent) == taken; i++)
    g_usleep (10000);
  g_assert_cmpint (g_atomic_int_get (&raw->events_sent), >, taken);
  close (fd);
  gk_gateway_stop (f->gateway);
  raw_free (raw);
}

/* ---- Upstreams that answer badly ---------------------------------------- */

/* Empty bodies with any status: relayed, never a crash. */
static void
test_empty_bodies (Fixture       *f,
                   gconstpointer  data)
{
  static const struct
  {
    const char *answer;
    guint       status;
  } cases[] = {
    { "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 404 },
    { "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n", 302 },
    { "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", 400 },
    { "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", 500 },
    { "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n", 503 },
    { "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", 403 },
    { "HTTP/1.1 204 No Content\r\n\r\n", 204 },
    { "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200 },
    { "HTTP/1.1 503 Service Unavailable\r\n\r\n", 503 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      Raw *raw = raw_new (cases[i].answer);
      guint status;

      /* Fresh keys: a 429 takes the earlier ones out of service. */
      add_key (f, "OK");
      add_key (f, "OK");
      start (f, raw->base);
      g_bytes_unref (post (f, "POST", MODEL_PATH ":generateContent", &status));
      g_test_message ("%s -> %u", cases[i].answer, status);
      g_assert_cmpuint (status, ==, cases[i].status);
      g_bytes_unref (post (f, "GET", "/v1beta/models", &status));
      g_assert_cmpuint (status, ==, cases[i].status);
      gk_gateway_stop (f->gateway);
      raw_free (raw);
    }
}

/* HEAD through the upstream client: an empty body whatever the head says. */
static void
head_cb (GkUpstreamCall *call,
         GError         *error,
         gpointer        user_data)
{
  guint *status = user_data;

  g_assert_no_error (error);
  *status = gk_upstream_call_get_status (call);
}

static void
read_end_cb (GkUpstreamCall *call,
             GBytes         *chunk,
             GError         *error,
             gpointer        user_data)
{
  gboolean *done = user_data;

  g_assert_no_error (error);
  g_assert_null (chunk);
  *done = TRUE;
}

static void
test_head (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GError) error = NULL;
  Raw *raw = raw_new ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      "Content-Length: 1000\r\n\r\n");
  GkUpstream *upstream;
  GkUpstreamCall *call;
  gboolean done = FALSE;
  guint status = 0;

  g_main_context_push_thread_default (context);
  upstream = gk_upstream_new (raw->base, 30, NULL, &error);
  g_assert_no_error (error);
  call = gk_upstream_call_new (upstream, "HEAD", "/v1beta/models");
  gk_upstream_call_send (call, NULL, head_cb, &status);
  while (status == 0)
    g_main_context_iteration (context, TRUE);
  g_assert_cmpuint (status, ==, 200);
  g_assert_cmpstr (soup_message_headers_get_one (gk_upstream_call_get_response_headers (call),
                                                 "Content-Length"), ==, "1000");
  gk_upstream_call_read (call, read_end_cb, &done);
  while (!done)
    g_main_context_iteration (context, TRUE);
  gk_upstream_call_free (call);
  gk_upstream_free (upstream);
  g_main_context_pop_thread_default (context);
  raw_free (raw);
}

/* Calls of every kind in turn over one upstream, whose libcurl handle the
 * next call takes over with the previous call's options: each request is
 * sent as its own method and body say (a HEAD leaves no NOBODY to a POST,
 * a POST no body to a DELETE). */
static void
test_handle_reuse (void)
{
  static const struct
  {
    const char *method;
    const char *body;     /* NULL: none */
    const char *expect;   /* the start of what the upstream reads */
    const char *absent;   /* what it must not read, or NULL */
  } calls[] = {
    { "HEAD", NULL, "HEAD /a HTTP/1.1\r\n", "Content-Length" },
    { "POST", "abc", "POST /a HTTP/1.1\r\n", NULL },
    { "DELETE", NULL, "DELETE /a HTTP/1.1\r\n", "abc" },
    { "GET", NULL, "GET /a HTTP/1.1\r\n", "Content-Length" },
    { "PUT", "defg", "PUT /a HTTP/1.1\r\n", NULL },
    { "POST", NULL, "POST /a HTTP/1.1\r\n", "defg" },
    { "HEAD", NULL, "HEAD /a HTTP/1.1\r\n", "Content-Length" },
    { "GET", NULL, "GET /a HTTP/1.1\r\n", "Content-Length" },
  };
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GError) error = NULL;
  Raw *raw = raw_new ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  GkUpstream *upstream;

  g_main_context_push_thread_default (context);
  upstream = gk_upstream_new (raw->base, 30, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (calls); i++)
    {
      GkUpstreamCall *call = gk_upstream_call_new (upstream, calls[i].method, "/a");
      g_autoptr(GBytes) body = NULL;
      g_autofree char *length = NULL;
      g_autofree char *seen = NULL;
      gboolean done = FALSE;
      guint status = 0;

      if (calls[i].body != NULL)
        {
          body = g_bytes_new_static (calls[i].body, strlen (calls[i].body));
          gk_upstream_call_set_body (call, "text/plain", body);
          length = g_strdup_printf ("Content-Length: %zu\r\n", strlen (calls[i].body));
        }
      gk_upstream_call_send (call, NULL, head_cb, &status);
      while (status == 0)
        g_main_context_iteration (context, TRUE);
      g_assert_cmpuint (status, ==, 200);
      gk_upstream_call_read (call, read_end_cb, &done);
      while (!done)
        g_main_context_iteration (context, TRUE);
      gk_upstream_call_free (call);

      g_mutex_lock (&raw->lock);
      seen = g_strdup (raw->last);
      g_mutex_unlock (&raw->lock);
      g_test_message ("%s", seen);
      g_assert_true (g_str_has_prefix (seen, calls[i].expect));
      if (length != NULL)
        {
          g_assert_nonnull (strstr (seen, length));
          g_assert_true (g_str_has_suffix (seen, calls[i].body));
        }
      if (calls[i].absent != NULL)
        g_assert_null (strstr (seen, calls[i].absent));
    }
  gk_upstream_free (upstream);
  g_main_context_pop_thread_default (context);
  raw_free (raw);
}

/* An answer that breaks framing or bounds: 502, named in the log. */
static void
check_bad_answer (Fixture    *f,
                  Raw        *raw,
                  const char *client_text,
                  const char *log_text)
{
  g_autoptr(GBytes) body = NULL;
  guint status;

  add_key (f, "OK");
  start (f, raw->base);
  body = post (f, "POST", MODEL_PATH ":generateContent", &status);
  g_assert_cmpuint (status, ==, 502);
  assert_error (body, 502, client_text);
  g_assert_true (log_has (f, log_text));
  gk_gateway_stop (f->gateway);
  raw_free (raw);
}

static void
test_conflicting_length (Fixture       *f,
                         gconstpointer  data)
{
  check_bad_answer (f, raw_new ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                "Content-Length: 2\r\nContent-Length: 12\r\n\r\n"
                                "{}{\"more\":1}"),
                    "invalid answer", "conflicting Content-Length");
}

static void
test_many_headers (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GString) answer = g_string_new ("HTTP/1.1 200 OK\r\n");

  for (guint i = 0; i < 1000; i++)
    g_string_append_printf (answer, "X-Header-%u: %u\r\n", i, i);
  g_string_append (answer, "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
  check_bad_answer (f, raw_new (answer->str), "invalid answer", "more than 100 response headers");
}

static void
test_big_head (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GString) answer = g_string_new ("HTTP/1.1 200 OK\r\n");
  g_autofree char *big = g_strnfill (70 * 1024, 'a');

  g_string_append_printf (answer, "X-Big: %s\r\n", big);
  g_string_append (answer, "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
  check_bad_answer (f, raw_new (answer->str), "invalid answer", "response head larger than");
}

static gsize
rss_kib (void)
{
  g_autofree char *status = NULL;
  const char *line;

  g_assert_true (g_file_get_contents ("/proc/self/status", &status, NULL, NULL));
  line = strstr (status, "VmRSS:");
  g_assert_nonnull (line);
  return (gsize) g_ascii_strtoull (line + 6, NULL, 10);
}

/* A non-stream answer above the cap: 502, and the memory it took comes
 * back. */
static void
test_huge_answer (Fixture       *f,
                  gconstpointer  data)
{
  Raw *raw = raw_new (NULL);
  gsize first, before = 0, after;
  guint status;

  raw->huge = (guint64) GK_GATEWAY_ANSWER_LIMIT * 2;
  add_key (f, "OK");
  start (f, raw->base);
  first = rss_kib ();
  /* The first request also loads what stays for the gateway's life. */
  for (guint i = 0; i < 4; i++)
    {
      g_autoptr(GBytes) body = post (f, "POST", MODEL_PATH ":generateContent", &status);

      g_assert_cmpuint (status, ==, 502);
      assert_error (body, 502, "larger than the gateway relays");
      if (i == 0)
        before = rss_kib ();
    }
  after = rss_kib ();
  g_test_message ("RSS: %zu KiB at start, %zu KiB after one answer, %zu KiB after four",
                  first, before, after);
#if !defined(__SANITIZE_ADDRESS__)
  /* Each answer held up to the cap (64 MiB), four of them 256 MiB: less
   * than one cap stays, whatever the allocator keeps for reuse. */
  g_assert_cmpuint (after, <, first + GK_GATEWAY_ANSWER_LIMIT / 1024);
#endif
  g_assert_true (log_has (f, "larger than"));
  gk_gateway_stop (f->gateway);
  raw_free (raw);
}

/* ---- HTTP/2 ------------------------------------------------------------- */

static void
h2_head_cb (GkUpstreamCall *call,
            GError         *error,
            gpointer        user_data)
{
  guint *version = user_data;

  g_assert_no_error (error);
  g_assert_cmpuint (gk_upstream_call_get_status (call), ==, 200);
  *version = gk_upstream_call_get_http_version (call);
}

/* nginx terminates TLS with HTTP/2 in front of the plain mock: libcurl
 * speaks HTTP/2 to it (ALPN), two calls at once share one connection. */
static void
test_http2 (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *conf = NULL;
  g_autofree char *conf_path = NULL;
  g_autofree char *log_path = NULL;
  g_autofree char *base = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) nginx = NULL;
  GkUpstream *upstream;
  GkUpstreamCall *calls[2];
  guint versions[2] = { 0, 0 };
  guint mock_port, port;
  int probe;

  if (!g_file_test ("/usr/sbin/nginx", G_FILE_TEST_IS_EXECUTABLE))
    {
      g_test_skip ("nginx (Debian nginx-light) is not installed");
      return;
    }
  mock_port = start_mock (NULL);
  close (listen_loopback (&port));
  dir = g_build_filename (pki_dir, "nginx", NULL);
  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  conf = g_strdup_printf ("daemon off; master_process off; worker_processes 1;\n"
                          "pid %s/nginx.pid; error_log %s/error.log warn;\n"
                          "events { worker_connections 64; }\n"
                          "http { access_log off; client_body_temp_path %s/body;\n"
                          "  proxy_temp_path %s/proxy; fastcgi_temp_path %s/fcgi;\n"
                          "  uwsgi_temp_path %s/uwsgi; scgi_temp_path %s/scgi;\n"
                          "  server { listen 127.0.0.1:%u ssl http2;\n"
                          "    ssl_certificate %s/good.pem; ssl_certificate_key %s/server.key;\n"
                          "    location / { proxy_pass http://127.0.0.1:%u; } } }\n",
                          dir, dir, dir, dir, dir, dir, dir, port, pki_dir, pki_dir, mock_port);
  conf_path = g_build_filename (dir, "nginx.conf", NULL);
  log_path = g_build_filename (dir, "error.log", NULL);
  g_assert_true (g_file_set_contents (conf_path, conf, -1, NULL));
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  nginx = g_subprocess_launcher_spawn (launcher, &error, "/usr/sbin/nginx", "-p", dir, "-e",
                                       log_path, "-c", conf_path, NULL);
  g_assert_no_error (error);
  for (guint i = 0; i < 500 && (probe = connect_loopback (port)) < 0; i++)
    g_usleep (10000);
  g_assert_cmpint (probe, >=, 0);
  close (probe);

  g_setenv ("GEMINI_KEYS_UPSTREAM_CA", ca_file, TRUE);
  g_main_context_push_thread_default (context);
  base = g_strdup_printf ("https://127.0.0.1:%u", port);
  upstream = gk_upstream_new (base, 30, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < 2; i++)
    {
      g_autofree char *key = g_strdup_printf ("AIzaOK%033u", i);

      calls[i] = gk_upstream_call_new (upstream, "GET", "/v1beta/models?pageSize=1");
      gk_upstream_call_add_header (calls[i], "x-goog-api-key", key);
      gk_upstream_call_send (calls[i], NULL, h2_head_cb, &versions[i]);
    }
  while (versions[0] == 0 || versions[1] == 0)
    g_main_context_iteration (context, TRUE);
  g_assert_cmpuint (versions[0], ==, 2);
  g_assert_cmpuint (versions[1], ==, 2);
  g_assert_cmpuint (gk_upstream_get_connect_count (upstream), ==, 1);
  for (guint i = 0; i < 2; i++)
    gk_upstream_call_free (calls[i]);
  gk_upstream_free (upstream);
  g_main_context_pop_thread_default (context);
  g_subprocess_send_signal (nginx, SIGTERM);
  g_subprocess_wait (nginx, NULL, NULL);
}

/* ---- main --------------------------------------------------------------- */

int
main (int   argc,
      char *argv[])
{
  int status;

  g_setenv ("GIO_USE_PROXY_RESOLVER", "dummy", TRUE);
  /* Whatever proxy the machine uses, these tests set their own. */
  for (const char *const *name = (const char *const[]) { "http_proxy", "https_proxy",
                                                          "HTTPS_PROXY", "all_proxy",
                                                          "ALL_PROXY", "no_proxy", "NO_PROXY",
                                                          NULL };
       *name != NULL; name++)
    g_unsetenv (*name);
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  mocks = g_ptr_array_new_with_free_func (g_object_unref);
  make_pki ();
  good_port = start_mock ("good.pem");
  expired_port = start_mock ("expired.pem");

#define ADD(name, func) \
  g_test_add ("/upstream/" name, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("tls/trusted", test_tls_trusted);
  ADD ("tls/untrusted", test_tls_untrusted);
  ADD ("tls/expired", test_tls_expired);
  ADD ("tls/wrong-host", test_tls_wrong_host);
  ADD ("proxy/connect", test_proxy_connect);
  ADD ("timeout/first-byte", test_first_byte_timeout);
  ADD ("timeout/deadline", test_request_deadline);
  ADD ("timeout/client-gone", test_client_gone_cancels);
  ADD ("timeout/client-gone-early", test_client_gone_early);
  ADD ("stream/slow-client", test_slow_client);
  ADD ("answer/empty-bodies", test_empty_bodies);
  ADD ("answer/conflicting-length", test_conflicting_length);
  ADD ("answer/many-headers", test_many_headers);
  ADD ("answer/big-head", test_big_head);
  ADD ("answer/huge", test_huge_answer);
#undef ADD
  g_test_add_func ("/upstream/answer/head", test_head);
  g_test_add_func ("/upstream/handle-reuse", test_handle_reuse);
  g_test_add_func ("/upstream/http2", test_http2);

  status = g_test_run ();
  for (guint i = 0; i < mocks->len; i++)
    g_subprocess_force_exit (g_ptr_array_index (mocks, i));
  g_ptr_array_unref (mocks);
  gk_test_rm_rf (pki_dir);
  g_free (pki_dir);
  g_free (ca_file);
  g_free (other_ca_file);
  return status;
}
