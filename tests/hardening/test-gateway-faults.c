/* test-gateway-faults.c: the gateway under hostile or broken peers: an
 * upstream that stalls mid-stream, 2,000 clients at once, huge and lying
 * request bodies, a request to listen on a non-loopback address, and a
 * stop while the database is locked and a client sends more, or a request
 * ends after the stop's last write and cannot write its row.
 *
 * Clients are raw sockets, so the test controls every byte (a lying
 * Content-Length, a body cut short). The gateway runs in this process, so
 * /proc/self/fd counts its sockets too.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gk-database-private.h"
#include "gk-gateway.h"
#include "gk-sql-sqlite.h"
#include "hardening-util.h"

#define STREAM_PATH "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
#define GENERATE_PATH "/v1beta/models/gemini-2.5-flash:generateContent"
#define SMALL_BODY "{\"contents\":[{\"parts\":[{\"text\":\"hi\"}]}]}"
#define N_CLIENTS 2000

typedef struct
{
  char       *dir;
  GkDatabase *db;
  GBytes     *master;
  GkKeyStore *store;
  GkPool     *pool;
  GkGateway  *gateway;
  char       *token;
  GSubprocess *mock;
  guint       mock_port;
} Fixture;

/* ---- Helpers ------------------------------------------------------------ */

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

/* Lists open descriptors, to tell which one leaked. */
static void
show_fds (void)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  const char *name;

  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename ("/proc/self/fd", name, NULL);
      g_autofree char *target = g_file_read_link (path, NULL);

      g_test_message ("fd %s → %s", name, target ? target : "?");
    }
}

/* Waits until the descriptor count is back to @baseline (sockets close
 * asynchronously in the gateway thread); returns the last count. */
static guint
wait_fds (guint baseline)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  guint n;

  while ((n = count_fds ()) > baseline && g_get_monotonic_time () < deadline)
    g_usleep (20000);
  return n;
}

/* The descriptor count once it stopped changing for a moment. */
static guint
settle_fds (void)
{
  guint n = count_fds ();

  for (guint i = 0; i < 50; i++)
    {
      guint again;

      g_usleep (200000);
      again = count_fds ();
      if (again == n)
        break;
      n = again;
    }
  return n;
}

static gint64
rss_kib (void)
{
  g_autofree char *status = NULL;
  const char *line;

  g_assert_true (g_file_get_contents ("/proc/self/status", &status, NULL, NULL));
  line = strstr (status, "VmRSS:");
  g_assert_nonnull (line);
  return g_ascii_strtoll (line + strlen ("VmRSS:"), NULL, 10);
}

static int
connect_to (guint    port,
            gboolean nonblocking)
{
  struct sockaddr_in addr = { 0 };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  int rc;

  g_assert_cmpint (fd, >=, 0);
  addr.sin_family = AF_INET;
  addr.sin_port = htons (port);
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  rc = connect (fd, (struct sockaddr *) &addr, sizeof addr);
  if (rc != 0)
    g_assert_true (nonblocking && errno == EINPROGRESS);
  return fd;
}

/* Sends all of @data; FALSE when the peer closed or reset the connection. */
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
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        {
          struct pollfd pfd = { fd, POLLOUT, 0 };

          poll (&pfd, 1, 1000);
          continue;
        }
      if (n <= 0)
        return FALSE;
      data += n;
      len -= n;
    }
  return TRUE;
}

/* Reads until EOF, an error or @timeout_ms of silence; returns what came. */
static GString *
read_response (int  fd,
               int  timeout_ms,
               int *error_out)
{
  GString *out = g_string_new (NULL);

  *error_out = 0;
  for (;;)
    {
      struct pollfd pfd = { fd, POLLIN, 0 };
      char buf[16384];
      gssize n;
      int rc = poll (&pfd, 1, timeout_ms);

      if (rc < 0 && errno == EINTR)
        continue;
      if (rc == 0)
        {
          *error_out = ETIMEDOUT;
          break;
        }
      n = recv (fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          *error_out = errno;
          break;
        }
      if (n == 0)
        break;
      g_string_append_len (out, buf, n);
    }
  return out;
}

/* The status code of an HTTP/1.x response, 0 when there is none. */
static guint
status_of (const char *response)
{
  if (!g_str_has_prefix (response, "HTTP/1."))
    return 0;
  return (guint) g_ascii_strtoull (response + strlen ("HTTP/1.x "), NULL, 10);
}

/* A request with client token @token, on a connection the client keeps
 * open when @keep_alive is set. */
static char *
request_text_full (Fixture    *f,
                   const char *token,
                   const char *method,
                   const char *path,
                   const char *extra_headers,
                   const char *body,
                   gboolean    keep_alive)
{
  g_autofree char *length = body ? g_strdup_printf ("Content-Length: %zu\r\n", strlen (body))
                                 : NULL;

  return g_strdup_printf ("%s %s HTTP/1.1\r\n"
                          "Host: 127.0.0.1:%u\r\n"
                          "x-goog-api-key: %s\r\n"
                          "Content-Type: application/json\r\n"
                          "%s%s%s\r\n%s",
                          method, path, gk_gateway_get_port (f->gateway), token,
                          keep_alive ? "" : "Connection: close\r\n",
                          extra_headers ? extra_headers : "", length ? length : "",
                          body ? body : "");
}

static char *
request_text (Fixture    *f,
              const char *method,
              const char *path,
              const char *extra_headers,
              const char *body)
{
  return request_text_full (f, f->token, method, path, extra_headers, body, FALSE);
}

/* One plain request; returns the status. */
static guint
simple_request (Fixture *f)
{
  g_autofree char *req = request_text (f, "POST", GENERATE_PATH, NULL, SMALL_BODY);
  g_autoptr(GString) resp = NULL;
  int fd = connect_to (gk_gateway_get_port (f->gateway), FALSE);
  int err = 0;
  guint status;

  g_assert_true (send_all (fd, req, strlen (req)));
  resp = read_response (fd, 15000, &err);
  close (fd);
  status = status_of (resp->str);
  if (status != 200)
    g_test_message ("response: %.300s", resp->str);
  return status;
}

/* A key the mock treats by the word in it ("SLOW", …), valid in form. */
static char *
mock_key (const char *word,
          guint       n)
{
  g_autofree char *base = g_strdup_printf ("AIza%s%u", word, n);
  g_autofree char *pad = g_strnfill (39 - strlen (base), '0');

  return g_strconcat (base, pad, NULL);
}

static gint64
add_key_with_priority (Fixture    *f,
                       const char *api_key,
                       int         priority)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *name = g_strdup_printf ("key-%.8s", api_key + 4);
  GkKeySpec spec;
  gint64 id;

  gk_key_spec_init (&spec);
  spec.name = name;
  spec.priority = priority;
  id = gk_key_store_add (f->store, &spec, api_key, &error);
  g_assert_no_error (error);
  g_assert_cmpint (id, >, 0);
  return id;
}

static void
add_key (Fixture    *f,
         const char *api_key)
{
  add_key_with_priority (f, api_key, GK_KEY_PRIORITY_DEFAULT);
}

static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static void
start_mock (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autofree char *line = NULL;
  const char *mock = g_getenv ("GK_MOCK_GEMINI");

  g_assert_nonnull (mock);
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_setenv (launcher, "MOCK_GEMINI_SLOW_MS", "1000", TRUE);
  /* The mock goes with this process even when an assertion aborts it. */
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  f->mock = g_subprocess_launcher_spawn (launcher, &error, mock, "--port", "0", NULL);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (f->mock));
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (line, "PORT "));
  f->mock_port = (guint) g_ascii_strtoull (line + 5, NULL, 10);
}

static void
start_gateway (Fixture    *f,
               const char *upstream)
{
  g_autoptr(GError) error = NULL;

  f->gateway = gk_gateway_new (f->store, f->pool);
  gk_gateway_set_upstream (f->gateway, upstream);
  g_assert_true (gk_gateway_start (f->gateway, "127.0.0.1", 0, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (gk_gateway_get_port (f->gateway), >, 0);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;

  f->dir = g_dir_make_tmp ("gk-gwfault-XXXXXX", &error);
  g_assert_no_error (error);
  path = g_build_filename (f->dir, "keys.db", NULL);
  f->db = gk_database_open (path, NULL, &error);
  g_assert_no_error (error);
  f->master = gk_test_master_key ();
  f->store = gk_key_store_new (f->db, f->master);
  f->pool = gk_pool_new (f->db, NULL);
  f->token = gk_token_create (f->db, "fault-client", NULL, &error);
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  if (f->gateway != NULL)
    gk_gateway_stop (f->gateway);
  g_clear_object (&f->gateway);
  if (f->mock != NULL)
    {
      g_subprocess_force_exit (f->mock);
      g_subprocess_wait (f->mock, NULL, NULL);
      g_clear_object (&f->mock);
    }
  g_clear_object (&f->pool);
  g_clear_object (&f->store);
  g_clear_object (&f->db);
  g_clear_pointer (&f->master, g_bytes_unref);
  g_free (f->token);
  gk_test_rm_rf (f->dir);
  g_free (f->dir);
}

/* ---- An upstream that stalls mid-stream --------------------------------- */

typedef struct
{
  int      listen_fd;
  guint    port;
  int      stop_pipe[2];
  GThread *thread;
  int      stalled;   /* connections answered and then left hanging */
} StallServer;

/* Serves one connection: reads the request head, answers with the start
 * of a stream, then says nothing more until the gateway gives up (closes)
 * or the test ends. FALSE when the test ends. */
static gboolean
stall_one (StallServer *s,
           int          conn)
{
  const char *head = "HTTP/1.1 200 OK\r\n"
                     "Content-Type: text/event-stream\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n";
  const char *event = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}]}}]}\r\n\r\n";
  g_autofree char *chunk = g_strdup_printf ("%zx\r\n%s\r\n", strlen (event), event);
  g_autoptr(GString) request = g_string_new (NULL);
  struct pollfd pfds[2];

  while (strstr (request->str, "\r\n\r\n") == NULL)
    {
      char buf[4096];
      gssize n = recv (conn, buf, sizeof buf, 0);

      if (n <= 0)
        return TRUE;
      g_string_append_len (request, buf, n);
    }
  send_all (conn, head, strlen (head));
  send_all (conn, chunk, strlen (chunk));
  g_atomic_int_inc (&s->stalled);

  pfds[0] = (struct pollfd) { s->stop_pipe[0], POLLIN, 0 };
  pfds[1] = (struct pollfd) { conn, POLLIN, 0 };
  for (;;)
    {
      char buf[4096];

      if (poll (pfds, 2, 60000) <= 0 || pfds[0].revents != 0)
        return FALSE;
      if (recv (conn, buf, sizeof buf, 0) <= 0)
        return TRUE;
    }
}

static gpointer
stall_thread (gpointer data)
{
  StallServer *s = data;

  for (;;)
    {
      struct pollfd pfds[2] = {
        { s->stop_pipe[0], POLLIN, 0 },
        { s->listen_fd, POLLIN, 0 },
      };
      gboolean go_on;
      int conn;

      if (poll (pfds, 2, 60000) <= 0 || pfds[0].revents != 0)
        break;
      conn = accept4 (s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
      if (conn < 0)
        continue;
      go_on = stall_one (s, conn);
      close (conn);
      if (!go_on)
        break;
    }
  return NULL;
}

static void
stall_server_start (StallServer *s)
{
  struct sockaddr_in addr = { 0 };
  socklen_t len = sizeof addr;

  s->listen_fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  g_assert_cmpint (bind (s->listen_fd, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  g_assert_cmpint (listen (s->listen_fd, 4), ==, 0);
  g_assert_cmpint (getsockname (s->listen_fd, (struct sockaddr *) &addr, &len), ==, 0);
  s->port = ntohs (addr.sin_port);
  g_assert_cmpint (pipe2 (s->stop_pipe, O_CLOEXEC), ==, 0);
  s->thread = g_thread_new ("stall-upstream", stall_thread, s);
}

static void
stall_server_stop (StallServer *s)
{
  g_assert_cmpint (write (s->stop_pipe[1], "x", 1), ==, 1);
  g_thread_join (s->thread);
  close (s->listen_fd);
  close (s->stop_pipe[0]);
  close (s->stop_pipe[1]);
}

/* One streamed request through a stalling upstream; returns what the
 * client got, and how long the gateway took to end it. */
static GString *
stalled_request (Fixture *f,
                 gint64  *elapsed_ms)
{
  g_autofree char *req = request_text (f, "POST", STREAM_PATH, NULL, SMALL_BODY);
  g_autofree char *shown = NULL;
  GString *resp;
  gint64 start;
  int fd, err = 0;

  fd = connect_to (gk_gateway_get_port (f->gateway), FALSE);
  start = g_get_monotonic_time ();
  g_assert_true (send_all (fd, req, strlen (req)));
  /* Silence for longer than the upstream timeout plus slack is a hang. */
  resp = read_response (fd, 8000, &err);
  *elapsed_ms = (g_get_monotonic_time () - start) / 1000;
  close (fd);
  shown = g_strescape (resp->str, NULL);
  g_test_message ("stalled stream ended after %" G_GINT64_FORMAT " ms (error %d): %s",
                  *elapsed_ms, err, shown);
  g_assert_cmpint (err, !=, ETIMEDOUT);
  return resp;
}

static void
test_upstream_stall (Fixture       *f,
                     gconstpointer  data)
{
  StallServer stall = { 0 };
  g_autofree char *upstream = NULL;
  g_autofree char *key = gk_test_api_key (1);
  g_autoptr(GString) first = NULL;
  g_autoptr(GString) resp = NULL;
  guint baseline, after;
  gint64 elapsed_ms;

  add_key (f, key);
  stall_server_start (&stall);
  upstream = g_strdup_printf ("http://127.0.0.1:%u", stall.port);
  f->gateway = gk_gateway_new (f->store, f->pool);
  gk_gateway_set_upstream (f->gateway, upstream);
  gk_gateway_set_upstream_timeout (f->gateway, 2);
  {
    g_autoptr(GError) error = NULL;
    g_assert_true (gk_gateway_start (f->gateway, "127.0.0.1", 0, &error));
    g_assert_no_error (error);
  }

  /* The first request also sets up what lives as long as the gateway
   * (its upstream session, worker contexts); the second must leave the
   * descriptor count where the first left it. */
  first = stalled_request (f, &elapsed_ms);
  baseline = settle_fds ();
  resp = stalled_request (f, &elapsed_ms);
  g_assert_cmpint (g_atomic_int_get (&stall.stalled), ==, 2);

  /* The client saw the stream start, then an end within the timeout: not
   * a hang. */
  g_assert_cmpint (elapsed_ms, <, 7000);
  g_assert_cmpint (elapsed_ms, >=, 1500);
  g_assert_cmpuint (status_of (resp->str), ==, 200);
  g_assert_nonnull (strstr (resp->str, "Hel"));
  /* A full key never reaches the client. */
  g_assert_null (strstr (resp->str, key));

  /* Every socket of the request is closed again, on both sides. */
  after = wait_fds (baseline);
  g_test_message ("descriptors: %u before, %u after", baseline, after);
  if (after > baseline)
    show_fds ();
  g_assert_cmpuint (after, <=, baseline);

  /* The gateway keeps serving. */
  g_assert_true (gk_gateway_is_running (f->gateway));
  stall_server_stop (&stall);

  /* A stream cut short must not look complete: a clean last chunk
   * ("0\r\n\r\n") tells the client the answer is whole. */
  g_assert_null (strstr (resp->str, "\r\n0\r\n\r\n"));
}

/* ---- 2,000 clients at once --------------------------------------------- */

typedef struct
{
  int      fd;
  gsize    sent;
  GString *in;
  gboolean done;
} Client;

static void
test_many_clients (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *upstream = NULL;
  g_autofree char *slow = mock_key ("SLOW", 1);
  g_autofree char *req = NULL;
  g_autofree Client *clients = g_new0 (Client, N_CLIENTS);
  g_autofree struct pollfd *pfds = g_new0 (struct pollfd, N_CLIENTS);
  struct rlimit nofile;
  guint counts[600] = { 0 };
  guint baseline, finished = 0, broken = 0, unanswered;
  gsize req_len;
  gint64 deadline;

  /* Both ends of every connection live in this process. */
  g_assert_cmpint (getrlimit (RLIMIT_NOFILE, &nofile), ==, 0);
  if (nofile.rlim_max < 3 * N_CLIENTS)
    {
      g_test_skip ("the descriptor limit is too low for 2,000 clients");
      return;
    }
  nofile.rlim_cur = nofile.rlim_max;
  g_assert_cmpint (setrlimit (RLIMIT_NOFILE, &nofile), ==, 0);

  add_key (f, slow);
  start_mock (f);
  upstream = g_strdup_printf ("http://127.0.0.1:%u", f->mock_port);
  baseline = count_fds ();
  f->gateway = gk_gateway_new (f->store, f->pool);
  gk_gateway_set_upstream (f->gateway, upstream);
  gk_gateway_set_max_in_flight (f->gateway, 64);
  {
    g_autoptr(GError) error = NULL;
    g_assert_true (gk_gateway_start (f->gateway, "127.0.0.1", 0, &error));
    g_assert_no_error (error);
  }
  req = request_text (f, "POST", GENERATE_PATH, NULL, SMALL_BODY);
  req_len = strlen (req);

  for (guint i = 0; i < N_CLIENTS; i++)
    {
      clients[i].fd = connect_to (gk_gateway_get_port (f->gateway), TRUE);
      clients[i].in = g_string_new (NULL);
    }

  /* Send every request and read every answer, all at once. */
  deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  while (finished < N_CLIENTS && g_get_monotonic_time () < deadline)
    {
      for (guint i = 0; i < N_CLIENTS; i++)
        {
          pfds[i].fd = clients[i].done ? -1 : clients[i].fd;
          pfds[i].events = clients[i].sent < req_len ? POLLOUT : POLLIN;
          pfds[i].revents = 0;
        }
      if (poll (pfds, N_CLIENTS, 1000) <= 0)
        continue;
      for (guint i = 0; i < N_CLIENTS; i++)
        {
          Client *c = &clients[i];

          if (pfds[i].revents == 0)
            continue;
          if (c->sent < req_len && (pfds[i].revents & POLLOUT))
            {
              gssize n = send (c->fd, req + c->sent, req_len - c->sent, MSG_NOSIGNAL);

              if (n > 0)
                c->sent += n;
              else if (n < 0 && errno != EAGAIN)
                c->done = TRUE, broken++, finished++;
              continue;
            }
          if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR))
            {
              char buf[8192];
              gssize n = recv (c->fd, buf, sizeof buf, 0);

              if (n > 0)
                {
                  g_string_append_len (c->in, buf, n);
                  continue;
                }
              if (n < 0 && errno == EAGAIN)
                continue;
              c->done = TRUE;
              finished++;
              if (n < 0)
                broken++;
            }
        }
    }

  {
    guint unsent = 0, waiting = 0;

    for (guint i = 0; i < N_CLIENTS; i++)
      if (!clients[i].done)
        {
          if (clients[i].sent < req_len)
            unsent++;
          else
            waiting++;
        }
    g_test_message ("unfinished: %u still sending, %u waiting for an answer", unsent, waiting);
  }
  for (guint i = 0; i < N_CLIENTS; i++)
    {
      guint status = status_of (clients[i].in->str);

      counts[MIN (status, G_N_ELEMENTS (counts) - 1)]++;
      if (status == 503)
        g_assert_nonnull (strstr (clients[i].in->str, "Retry-After"));
      close (clients[i].fd);
      g_string_free (clients[i].in, TRUE);
    }
  g_test_message ("%u finished, %u broken; 200: %u, 429: %u, 503: %u, none: %u",
                  finished, broken, counts[200], counts[429], counts[503], counts[0]);

  /* No client was cut off, and every answer is a real one: served, or
   * told to come back later. */
  g_assert_cmpuint (broken, ==, 0);
  g_assert_cmpuint (counts[200] + counts[429] + counts[503] + counts[0], ==, N_CLIENTS);
  g_assert_cmpuint (counts[200], >=, 64);
  g_assert_cmpuint (counts[429] + counts[503], >, 0);
  unanswered = N_CLIENTS - finished;

  /* The gateway is still up and serving. */
  g_assert_true (gk_gateway_is_running (f->gateway));
  g_assert_cmpuint (simple_request (f), ==, 200);

  /* Stopped, it holds no socket of the storm: only what GLib keeps for
   * the process (a worker context's eventfd or two) may stay. */
  gk_gateway_stop (f->gateway);
  g_clear_object (&f->gateway);
  {
    guint after = wait_fds (baseline + 2);

    g_test_message ("descriptors: %u before, %u after", baseline, after);
    if (after > baseline + 2)
      show_fds ();
    g_assert_cmpuint (after, <=, baseline + 2);
  }

  /* Every client beyond the cap should get its 503 at once; clients that
   * waited 30 s for nothing point at a listen backlog too short for a
   * burst (GSocket's default is 10). */
  g_assert_cmpuint (unanswered, ==, 0);
}

/* ---- Huge and lying bodies ---------------------------------------------- */

static void
test_huge_bodies (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *upstream = NULL;
  g_autofree char *key = gk_test_api_key (2);
  g_autofree char *megabyte = g_strnfill (1024 * 1024, 'a');
  gboolean body_read_whole = FALSE;
  gint64 rss_before, grown_kib;

  add_key (f, key);
  start_mock (f);
  upstream = g_strdup_printf ("http://127.0.0.1:%u", f->mock_port);
  start_gateway (f, upstream);
  rss_before = rss_kib ();

  /* A 100 MB Content-Length with "Expect: 100-continue" (what curl and
   * most SDKs send for big bodies): refused from the headers alone, before
   * any of the body is sent, let alone read or buffered. */
  {
    g_autofree char *head = request_text (f, "POST", GENERATE_PATH,
                                          "Content-Length: 104857600\r\n"
                                          "Expect: 100-continue\r\n", NULL);
    g_autoptr(GString) resp = NULL;
    int fd = connect_to (gk_gateway_get_port (f->gateway), FALSE);
    int err = 0;

    g_assert_true (send_all (fd, head, strlen (head)));
    resp = read_response (fd, 5000, &err);
    close (fd);
    g_test_message ("RSS now +%" G_GINT64_FORMAT " KiB", rss_kib () - rss_before);
    g_test_message ("100 MB announced, expecting 100-continue: %.200s (error %d)",
                    resp->str, err);
    g_assert_cmpuint (status_of (resp->str), ==, 413);
  }

  /* The same without Expect, the body sent right away: the gateway must
   * stop reading long before 100 MB. */
  {
    g_autofree char *head = request_text (f, "POST", GENERATE_PATH,
                                          "Content-Length: 104857600\r\n", NULL);
    g_autoptr(GString) resp = NULL;
    int fd = connect_to (gk_gateway_get_port (f->gateway), FALSE);
    gint64 deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
    guint sent_mb = 0;
    int err = 0;

    g_assert_true (send_all (fd, head, strlen (head)));
    for (; sent_mb < 100 && g_get_monotonic_time () < deadline; sent_mb++)
      if (!send_all (fd, megabyte, 1024 * 1024))
        break;
    resp = read_response (fd, 5000, &err);
    close (fd);
    g_test_message ("RSS now +%" G_GINT64_FORMAT " KiB", rss_kib () - rss_before);
    g_test_message ("100 MB announced and sent: %u MB went through; %.200s (error %d)",
                    sent_mb, resp->str, err);
    if (resp->len > 0)
      g_assert_cmpuint (status_of (resp->str), ==, 413);
    if (sent_mb == 100)
      body_read_whole = TRUE;
  }

  /* The same 100 MB, chunked, with no length to judge by: cut off once the
   * limit is passed. */
  {
    g_autofree char *head = request_text (f, "POST", GENERATE_PATH,
                                          "Transfer-Encoding: chunked\r\n", NULL);
    g_autofree char *chunk_head = g_strdup_printf ("%x\r\n", 1024 * 1024);
    g_autoptr(GString) resp = NULL;
    int fd = connect_to (gk_gateway_get_port (f->gateway), FALSE);
    guint sent_mb = 0;
    int err = 0;

    g_assert_true (send_all (fd, head, strlen (head)));
    for (; sent_mb < 100; sent_mb++)
      if (!send_all (fd, chunk_head, strlen (chunk_head))
          || !send_all (fd, megabyte, 1024 * 1024) || !send_all (fd, "\r\n", 2))
        break;
    if (sent_mb == 100)
      send_all (fd, "0\r\n\r\n", 5);
    resp = read_response (fd, 10000, &err);
    close (fd);
    g_test_message ("RSS now +%" G_GINT64_FORMAT " KiB", rss_kib () - rss_before);
    g_test_message ("chunked 100 MB: refused after %u MB sent: %.200s (error %d)",
                    sent_mb, resp->str, err);
    if (resp->len > 0)
      g_assert_cmpuint (status_of (resp->str), ==, 413);
    else
      g_assert_cmpint (err, ==, ECONNRESET);
    /* The gateway should stop reading well before the end. */
    if (sent_mb == 100)
      body_read_whole = TRUE;
  }

  /* A Content-Length smaller than the body that follows: the rest is not
   * a request; it must not be served nor crash the gateway. */
  {
    g_autofree char *head = request_text (f, "POST", GENERATE_PATH, "Content-Length: 5\r\n",
                                          NULL);
    g_autoptr(GString) resp = NULL;
    int fd = connect_to (gk_gateway_get_port (f->gateway), FALSE);
    int err = 0;

    g_assert_true (send_all (fd, head, strlen (head)));
    send_all (fd, megabyte, 64 * 1024);
    shutdown (fd, SHUT_WR);
    resp = read_response (fd, 10000, &err);
    close (fd);
    g_test_message ("RSS now +%" G_GINT64_FORMAT " KiB", rss_kib () - rss_before);
    g_test_message ("short Content-Length: %.200s", resp->str);
    g_assert_cmpint (err, !=, ETIMEDOUT);
    /* The first 5 bytes were a request (the mock does not judge its
     * JSON); what follows is not, and must never be answered as one. */
    g_assert_cmpuint (status_of (resp->str), >, 0);
    {
      const char *second = strstr (resp->str + 1, "HTTP/1.");

      if (second != NULL)
        g_assert_cmpuint (status_of (second) / 100, ==, 4);
    }
  }

  /* Nothing near 100 MB was kept, and the gateway still serves. */
  grown_kib = rss_kib () - rss_before;
  g_test_message ("RSS grew by %" G_GINT64_FORMAT " KiB", grown_kib);
  g_assert_cmpuint (simple_request (f), ==, 200);

  /* Refused from the headers, or once a chunked body passed the limit:
   * never read to the end, never held in memory. */
  g_assert_false (body_read_whole);
#ifndef __SANITIZE_ADDRESS__
  /* (AddressSanitizer keeps freed memory in quarantine: RSS says nothing.) */
  g_assert_cmpint (grown_kib, <, 48 * 1024);
#endif
}

/* ---- No key in what the gateway says, logs or stores --------------------- */

static void
log_cb (GkGateway  *gateway,
        const char *line,
        gpointer    data)
{
  GString *logs = data;

  /* Emitted in the gateway's thread. */
  G_LOCK_DEFINE_STATIC (logs);
  G_LOCK (logs);
  g_string_append (logs, line);
  g_string_append_c (logs, '\n');
  G_UNLOCK (logs);
}

static void
assert_no_key (char      **keys,
               const char *text,
               gsize       len,
               const char *where)
{
  for (guint i = 0; keys[i] != NULL; i++)
    if (memmem (text, len, keys[i], strlen (keys[i])) != NULL)
      g_error ("key %u appears in %s", i, where);
}

static void
test_no_key_exposed (Fixture       *f,
                     gconstpointer  data)
{
  g_autofree char *upstream = NULL;
  g_auto(GStrv) keys = g_new0 (char *, 5);
  g_autoptr(GString) logs = g_string_new (NULL);
  g_autoptr(GString) seen = g_string_new (NULL);
  const char *paths[] = {
    GENERATE_PATH, STREAM_PATH, "/v1beta/models/gemini-2.5-flash:countTokens",
    "/v1beta/models", "/v1beta/openai/chat/completions",
  };
  const char *suffixes[] = { "", "-wal", "-shm" };
  gint64 plain_id;

  /* Keys the mock answers with errors that quote or concern the key. */
  keys[0] = mock_key ("BADREQ", 1);
  keys[1] = mock_key ("INVALID", 2);
  keys[2] = mock_key ("LEAKED", 3);
  keys[3] = gk_test_api_key (4);
  /* Tried in this order: the invalid and leaked keys are rotated away,
   * the plain key serves; once it is switched off, the BADREQ key's
   * answers (which quote the key) are relayed. */
  add_key_with_priority (f, keys[0], 1);
  add_key_with_priority (f, keys[1], 10);
  add_key_with_priority (f, keys[2], 9);
  plain_id = add_key_with_priority (f, keys[3], 5);
  start_mock (f);
  upstream = g_strdup_printf ("http://127.0.0.1:%u", f->mock_port);
  f->gateway = gk_gateway_new (f->store, f->pool);
  g_signal_connect (f->gateway, "log", G_CALLBACK (log_cb), logs);
  gk_gateway_set_upstream (f->gateway, upstream);
  {
    g_autoptr(GError) error = NULL;
    g_assert_true (gk_gateway_start (f->gateway, "127.0.0.1", 0, &error));
    g_assert_no_error (error);
  }

  for (guint round = 0; round < 4; round++)
    for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
      {
        if (round == 2 && i == 0)
          {
            g_autoptr(GError) error = NULL;

            g_assert_true (gk_key_store_set_status (f->store, plain_id, GK_KEY_STATUS_INACTIVE,
                                                    NULL, &error));
            g_assert_no_error (error);
          }

        gboolean get = g_str_equal (paths[i], "/v1beta/models");
        g_autofree char *req = request_text (f, get ? "GET" : "POST", paths[i], NULL,
                                             get ? NULL : SMALL_BODY);
        g_autoptr(GString) resp = NULL;
        int fd = connect_to (gk_gateway_get_port (f->gateway), FALSE);
        int err = 0;

        g_assert_true (send_all (fd, req, strlen (req)));
        resp = read_response (fd, 15000, &err);
        close (fd);
        g_assert_cmpint (err, !=, ETIMEDOUT);
        g_assert_cmpuint (status_of (resp->str), >, 0);
        g_string_append_len (seen, resp->str, resp->len);
      }

  gk_gateway_stop (f->gateway);
  g_test_message ("gateway log:\n%s", logs->str);
  assert_no_key (keys, seen->str, seen->len, "a response to a client");
  assert_no_key (keys, logs->str, logs->len, "the gateway log");
  /* The error text stored for the BADREQ answer is redacted too. */
  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *path = g_strconcat (f->dir, "/keys.db", suffixes[i], NULL);
      g_autofree char *contents = NULL;
      gsize len = 0;

      if (g_file_get_contents (path, &contents, &len, NULL))
        assert_no_key (keys, contents, len, path);
    }
  /* All four kinds of answer were met. */
  g_assert_cmpint (hardening_query_int (f->db, "SELECT COUNT (DISTINCT key_id)"
                                               " FROM gemini_key_usage_log"), ==, 4);
}

/* ---- Loopback only ------------------------------------------------------ */

static void
test_loopback_only (Fixture       *f,
                    gconstpointer  data)
{
  const char *refused[] = { "0.0.0.0", "::", "192.0.2.10", "10.1.2.3", "example.com", "" };
  const char *accepted[] = { "127.0.0.1", "localhost" };

  for (guint i = 0; i < G_N_ELEMENTS (refused); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GkGateway) gateway = gk_gateway_new (f->store, f->pool);

      g_assert_false (gk_gateway_start (gateway, refused[i], 0, &error));
      g_assert_error (error, GK_GATEWAY_ERROR, GK_GATEWAY_ERROR_ADDRESS);
      g_assert_false (gk_gateway_is_running (gateway));
    }
  for (guint i = 0; i < G_N_ELEMENTS (accepted); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GkGateway) gateway = gk_gateway_new (f->store, f->pool);

      g_assert_true (gk_gateway_start (gateway, accepted[i], 0, &error));
      g_assert_no_error (error);
      g_assert_true (gk_gateway_is_running (gateway));
      gk_gateway_stop (gateway);
    }
}

/* ---- Stopping while the database is locked ------------------------------ */

/* The time from a stop to the end of its drain, with room to spare. */
#define PAST_DRAIN_US (3 * G_USEC_PER_SEC)

static gpointer
stop_gateway_thread (gpointer data)
{
  gk_gateway_stop (data);
  return NULL;
}

/* Reads one response on a connection kept open: its head, then as many
 * body bytes as its Content-Length says. Stops early at EOF or after
 * @timeout_ms of silence (what came is returned). */
static GString *
read_one_response (int fd,
                   int timeout_ms)
{
  GString *out = g_string_new (NULL);
  gssize want = -1;

  while (want < 0 || (gssize) out->len < want)
    {
      struct pollfd pfd = { fd, POLLIN, 0 };
      char buf[4096];
      gssize n;
      const char *end;

      if (poll (&pfd, 1, timeout_ms) <= 0)
        break;
      n = recv (fd, buf, sizeof buf, 0);
      if (n <= 0)
        break;
      g_string_append_len (out, buf, n);
      end = strstr (out->str, "\r\n\r\n");
      if (want < 0 && end != NULL)
        {
          const char *length = strcasestr (out->str, "\r\nContent-Length:");

          g_assert_true (length != NULL && length < end);
          want = (end + 4 - out->str)
                 + (gssize) g_ascii_strtoull (length + strlen ("\r\nContent-Length:"), NULL,
                                              10);
        }
    }
  return out;
}

/* How many requests the mock received with @key, from its /_mock/stats. */
static guint
mock_requests_with (Fixture    *f,
                    const char *key)
{
  g_autofree char *req = g_strdup_printf ("GET /_mock/stats HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                                          "Connection: close\r\n\r\n", f->mock_port);
  g_autofree char *member = g_strdup_printf ("\"%s\":", key);
  g_autoptr(GString) resp = NULL;
  int fd = connect_to (f->mock_port, FALSE);
  const char *count;
  int err = 0;

  g_assert_true (send_all (fd, req, strlen (req)));
  resp = read_response (fd, 15000, &err);
  close (fd);
  count = strstr (resp->str, member);
  return count ? (guint) g_ascii_strtoull (count + strlen (member), NULL, 10) : 0;
}

/* Waits until the mock received @n requests with @key. */
static void
wait_mock_requests (Fixture    *f,
                    const char *key,
                    guint       n)
{
  while (mock_requests_with (f, key) < n)
    g_usleep (10 * 1000);
}

/* Sends @text on a new connection to the gateway; returns its socket. */
static int
send_request (Fixture    *f,
              const char *text)
{
  int fd = connect_to (gk_gateway_get_port (f->gateway), FALSE);

  g_assert_true (send_all (fd, text, strlen (text)));
  return fd;
}

/* Another connection to the pool's database, holding its write lock until
 * gk_database_rollback(). */
static GkDatabase *
lock_database (Fixture *f)
{
  g_autofree char *path = g_build_filename (f->dir, "keys.db", NULL);
  g_autoptr(GError) error = NULL;
  GkDatabase *locker = gk_database_open (path, NULL, &error);

  g_assert_no_error (error);
  g_assert_true (gk_database_begin (locker, &error));
  g_assert_no_error (error);
  return locker;
}

/* The gateway is stopped while a request is in flight and the database is
 * locked by another connection for longer than the gateway waits for its
 * requests to end; meanwhile a client sends one more request on a
 * connection it kept open. The request in flight is answered once its row
 * is written, and the late one is refused without reaching Google (before,
 * it was forwarded, left running when the gateway freed its upstream client
 * and its queues of rows, and never recorded). */
static void
test_stop_locked (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *key = mock_key ("SLOW", 1);
  g_autofree char *upstream = NULL;
  g_autofree char *kept_text = NULL;
  g_autofree char *in_flight_text = NULL;
  g_autoptr(GkDatabase) locker = NULL;
  g_autoptr(GString) first = NULL;
  g_autoptr(GString) in_flight = NULL;
  g_autoptr(GString) late = NULL;
  GThread *stopper;
  int kept, other, err = 0;

  add_key (f, key);
  start_mock (f);
  upstream = g_strdup_printf ("http://127.0.0.1:%u", f->mock_port);
  start_gateway (f, upstream);
  kept_text = request_text_full (f, f->token, "POST", GENERATE_PATH, NULL, SMALL_BODY, TRUE);
  in_flight_text = request_text (f, "POST", GENERATE_PATH, NULL, SMALL_BODY);

  /* A first request on a connection the client keeps. */
  kept = send_request (f, kept_text);
  first = read_one_response (kept, 15000);
  g_assert_cmpuint (status_of (first->str), ==, 200);

  /* A second one waits for the slow upstream. */
  other = send_request (f, in_flight_text);
  wait_mock_requests (f, key, 2);

  /* Another connection holds the write lock: the row of the cancelled
   * request waits for it past the gateway's drain time (2 s). */
  locker = lock_database (f);
  stopper = g_thread_new ("stop", stop_gateway_thread, f->gateway);
  g_usleep (G_USEC_PER_SEC);
  g_assert_true (send_all (kept, kept_text, strlen (kept_text)));
  g_usleep (PAST_DRAIN_US);
  gk_database_rollback (locker);
  g_thread_join (stopper);
  g_assert_false (gk_gateway_is_running (f->gateway));

  /* The request in flight is told the gateway stopped, and its row is in
   * the usage log. */
  in_flight = read_response (other, 15000, &err);
  close (other);
  g_assert_cmpuint (status_of (in_flight->str), ==, 503);
  g_assert_nonnull (strstr (in_flight->str, "The gateway is stopping."));
  /* The late request is refused, or its connection closed unanswered. */
  late = read_response (kept, 15000, &err);
  close (kept);
  g_test_message ("late request: %.300s", late->str);
  g_assert_true (late->len == 0 || status_of (late->str) == 503);
  g_assert_cmpuint (mock_requests_with (f, key), ==, 2);
  g_assert_cmpint (hardening_query_int (f->db, "SELECT COUNT (*) FROM gemini_key_usage_log"),
                   ==, 2);
  g_assert_cmpint (hardening_query_int (f->db, "SELECT COUNT (*) FROM gemini_key_usage_log"
                                               " WHERE status = 'SUCCESS'"), ==, 1);
}

/* A database lock held by another connection makes each write of the
 * gateway wait this long (SQLite's busy timeout) before it gives up. */
#define BUSY_TIMEOUT_US (10 * G_USEC_PER_SEC)

/* A request's first key fails while the gateway is busy (an admin token's
 * first use is recorded: that write waits for the database, locked by
 * another connection) and the gateway is asked to stop meanwhile: the
 * failure's row waits for the lock past the drain time, then the request
 * goes on to its next key, an attempt that ends (the request was
 * cancelled) only after the gateway wrote its last rows in a batch. That
 * last row is written too and the client is answered (before, the row went
 * into the freed queue: a crash). */
static void
test_stop_retrying (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *failing = mock_key ("SLOWE503", 1);
  g_autofree char *spare = gk_test_api_key (2);
  g_autofree char *upstream = NULL;
  g_autofree char *admin_token = NULL;
  g_autofree char *proxy_text = NULL;
  g_autofree char *admin_text = NULL;
  g_autoptr(GkDatabase) locker = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) resp = NULL;
  g_autoptr(GString) admin_resp = NULL;
  g_autofree char *spare_rows = NULL;
  GThread *stopper;
  gint64 spare_id;
  int client, admin, err = 0;

  add_key_with_priority (f, failing, 10);
  spare_id = add_key_with_priority (f, spare, 1);
  admin_token = gk_token_create (f->db, "admin", NULL, &error);
  g_assert_no_error (error);
  start_mock (f);
  upstream = g_strdup_printf ("http://127.0.0.1:%u", f->mock_port);
  start_gateway (f, upstream);
  proxy_text = request_text (f, "POST", GENERATE_PATH, NULL, SMALL_BODY);
  admin_text = request_text_full (f, admin_token, "GET", "/admin/gemini-keys/budget", NULL, NULL,
                                  FALSE);

  /* The first key answers 503 a second after it is asked. */
  client = send_request (f, proxy_text);
  wait_mock_requests (f, failing, 1);

  /* Meanwhile the gateway waits for the lock to record the admin token's
   * use, and is asked to stop. */
  locker = lock_database (f);
  admin = send_request (f, admin_text);
  g_usleep (PAST_DRAIN_US);
  stopper = g_thread_new ("stop", stop_gateway_thread, f->gateway);

  /* The token's write gives up, then the 503's row waits in vain, then
   * the drain's write of that row waits, then the last tries of the stop:
   * the lock goes during one of the last two. */
  g_usleep (3 * BUSY_TIMEOUT_US + BUSY_TIMEOUT_US / 5);
  gk_database_rollback (locker);
  g_thread_join (stopper);
  g_assert_false (gk_gateway_is_running (f->gateway));

  admin_resp = read_response (admin, 15000, &err);
  close (admin);
  g_test_message ("admin request: %.200s", admin_resp->str);
  resp = read_response (client, 15000, &err);
  close (client);
  g_test_message ("request: %.300s", resp->str);
  g_assert_cmpuint (status_of (resp->str), ==, 503);
  g_assert_nonnull (strstr (resp->str, "The gateway is stopping."));

  /* Both attempts have their row; the second never reached Google. */
  g_assert_cmpuint (mock_requests_with (f, failing), ==, 1);
  g_assert_cmpuint (mock_requests_with (f, spare), ==, 0);
  g_assert_cmpint (hardening_query_int (f->db, "SELECT COUNT (*) FROM gemini_key_usage_log"),
                   ==, 2);
  spare_rows = g_strdup_printf ("SELECT COUNT (*) FROM gemini_key_usage_log"
                                " WHERE key_id = %" G_GINT64_FORMAT " AND status = 'ERROR'",
                                spare_id);
  g_assert_cmpint (hardening_query_int (f->db, spare_rows), ==, 1);
}

/* The late case of a stop, in steps the gateway's "log" signal sets (it is
 * emitted in the gateway's thread, which waits for its handler). */
typedef struct
{
  Fixture    *f;
  gint64      first_key;
  GThread    *stopper;
  sqlite3    *locker;     /* holds the database's write lock once set */
  gboolean    slowed;
} LateStop;

/* How long the gateway's connection waits for a lock held by another: the
 * test's own, shorter than SQLite's busy timeout of the core (10 s). */
#define LATE_BUSY_TIMEOUT_MS 1000
/* Far above the mock's delay before its 503 (MOCK_GEMINI_SLOW_MS). */
#define LATE_ANSWERED_US (5 * G_USEC_PER_SEC)

static void
late_stop_log_cb (GkGateway  *gateway,
                  const char *line,
                  gpointer    data)
{
  LateStop *late = data;
  g_autofree char *first_key = g_strdup_printf (" key=%" G_GINT64_FORMAT " ", late->first_key);

  /* The refused request: the gateway is asked to stop while it waits
   * here, and the first attempts' 503s arrive meanwhile. */
  if (late->stopper == NULL && strstr (line, " refused: ") != NULL)
    {
      g_atomic_pointer_set (&late->stopper, g_thread_new ("stop", stop_gateway_thread, gateway));
      g_usleep (LATE_ANSWERED_US);
      return;
    }
  /* A first attempt's row, written in the stop's drain (both requests
   * were in flight, so their rows were queued). The drain's time runs out
   * here; then another connection takes the write lock, so that the next
   * attempts, which end after the stop's last write of queued rows, cannot
   * write theirs. */
  if (late->stopper != NULL && !late->slowed && strstr (line, first_key) != NULL)
    {
      g_autofree char *path = g_build_filename (late->f->dir, "keys.db", NULL);

      late->slowed = TRUE;
      g_usleep (PAST_DRAIN_US);
      g_assert_cmpint (sqlite3_open (path, &late->locker), ==, SQLITE_OK);
      g_assert_cmpint (sqlite3_exec (late->locker, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==,
                       SQLITE_OK);
    }
}

/* Two requests' first key answers 503 as the gateway is asked to stop: the
 * rows of those attempts are written in the stop's drain, then the
 * requests go on to their next key, attempts cancelled at once that end
 * only after the stop wrote its last queued rows. The database is locked
 * by then, so a request cannot write its own row: it is closed unanswered
 * (nothing is acknowledged that is not recorded), and its next key is
 * never asked. */
static void
test_stop_late_row_lost (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *failing = mock_key ("SLOWE503", 1);
  g_autofree char *spare = gk_test_api_key (2);
  g_autofree char *upstream = NULL;
  g_autofree char *proxy_text = NULL;
  g_autofree char *refused_text = NULL;
  g_autofree char *first_rows = NULL;
  LateStop late = { f, 0, NULL, NULL, FALSE };
  int clients[2];
  int refused, err = 0;
  guint closed = 0;
  gint64 deadline;

  late.first_key = add_key_with_priority (f, failing, 10);
  add_key_with_priority (f, spare, 1);
  start_mock (f);
  upstream = g_strdup_printf ("http://127.0.0.1:%u", f->mock_port);
  sqlite3_busy_timeout (gk_sql_sqlite_get_handle (gk_database_get_handle (f->db)),
                        LATE_BUSY_TIMEOUT_MS);
  start_gateway (f, upstream);
  g_signal_connect (f->gateway, "log", G_CALLBACK (late_stop_log_cb), &late);
  proxy_text = request_text (f, "POST", GENERATE_PATH, NULL, SMALL_BODY);
  refused_text = request_text (f, "TRACE", GENERATE_PATH, NULL, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (clients); i++)
    clients[i] = send_request (f, proxy_text);
  wait_mock_requests (f, failing, G_N_ELEMENTS (clients));
  refused = send_request (f, refused_text);
  deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  while (g_atomic_pointer_get (&late.stopper) == NULL && g_get_monotonic_time () < deadline)
    g_usleep (10 * 1000);
  g_assert_nonnull (late.stopper);
  g_thread_join (late.stopper);
  g_assert_false (gk_gateway_is_running (f->gateway));
  g_assert_true (late.slowed);
  g_assert_nonnull (late.locker);
  sqlite3_exec (late.locker, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_close (late.locker);
  close (refused);

  /* A request is closed without an answer, or (the 503 of its first
   * attempt came after the drain began) told the gateway stopped. */
  for (guint i = 0; i < G_N_ELEMENTS (clients); i++)
    {
      g_autoptr(GString) resp = read_response (clients[i], 15000, &err);

      close (clients[i]);
      g_test_message ("request %u: %.300s", i, resp->str);
      if (resp->len == 0)
        closed++;
      else
        g_assert_nonnull (strstr (resp->str, "The gateway is stopping."));
    }
  g_assert_cmpuint (closed, >=, 1);

  /* Only the first attempts have rows; the next key was never asked. */
  g_assert_cmpuint (mock_requests_with (f, spare), ==, 0);
  first_rows = g_strdup_printf ("SELECT COUNT (*) FROM gemini_key_usage_log"
                                " WHERE key_id = %" G_GINT64_FORMAT, late.first_key);
  g_assert_cmpint (hardening_query_int (f->db, "SELECT COUNT (*) FROM gemini_key_usage_log"),
                   ==, 2);
  g_assert_cmpint (hardening_query_int (f->db, first_rows), ==, 2);
}

int
main (int   argc,
      char *argv[])
{
  /* No G_TEST_OPTION_ISOLATE_DIRS: libsoup's proxy resolver reads the
   * system's GSettings schemas, which isolated data dirs hide. */
  g_test_init (&argc, &argv, NULL);
  signal (SIGPIPE, SIG_IGN);

#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/hardening/gateway/upstream-stall", test_upstream_stall);
  ADD ("/hardening/gateway/many-clients", test_many_clients);
  ADD ("/hardening/gateway/huge-bodies", test_huge_bodies);
  ADD ("/hardening/gateway/loopback-only", test_loopback_only);
  ADD ("/hardening/gateway/no-key-exposed", test_no_key_exposed);
  ADD ("/hardening/gateway/stop-locked", test_stop_locked);
  ADD ("/hardening/gateway/stop-retrying", test_stop_retrying);
  ADD ("/hardening/gateway/stop-late-row-lost", test_stop_late_row_lost);
#undef ADD
  return g_test_run ();
}
