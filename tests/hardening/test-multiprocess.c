/* test-multiprocess.c: one database used at once by every kind of process
 * the product has, as a user runs them: `gemini-keysctl serve` under
 * constant load, the CLI in a loop, the desktop app's backend, and more
 * gateways, one stopped with SIGTERM and one killed with SIGKILL.
 *
 * All are real processes on a real file; clients are threads of this
 * process talking HTTP to the gateways, which relay to tests/mock-gemini.
 * Every request carries its own model name, so each answer can be matched
 * with its usage row. A monitor samples /proc/locks: a process that has the
 * database's -shm open (it has a connection) must hold POSIX locks on the
 * database file and on the -shm, which it loses if anything in it closes a
 * descriptor of those files behind SQLite's back.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#define _GNU_SOURCE
#include "config.h"

#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "gk-database-private.h"
#include "hardening-util.h"

#define N_CLIENTS           16
#define CLI_LOOP_SECONDS    10
#define BACKEND_SECONDS     3
#define CLIENT_TIMEOUT_S    60
#define VISIBLE_WITHIN_US   G_USEC_PER_SEC
#define MONITOR_INTERVAL_US (20 * 1000)
#define MONITOR_STREAK      3
#define REQUEST_BODY        "{\"contents\":[{\"parts\":[{\"text\":\"hi\"}]}]}"
#define TOKENS_PER_REQUEST  25 /* the mock's generateContent: 12 + 8 + 5 */

enum { GW_A, GW_B, GW_C, N_GATEWAYS };

typedef struct
{
  char  *model;
  guint  status;   /* 0: no answer (transport error) */
  int    gateway;
} Answer;

typedef struct
{
  GPid  pid;
  char *name;
  guint streak;    /* samples in a row with a connection but without locks */
} Watched;

typedef struct
{
  char         *dir;
  char         *db_path;
  char         *shm_path;
  const char   *ctl;
  char         *token;

  GSubprocess  *mock;
  GSubprocess  *gateways[N_GATEWAYS];
  char         *urls[N_GATEWAYS];
  gboolean      alive[N_GATEWAYS];   /* under lock */

  /* Clients */
  GMutex        lock;
  GCond         cond;
  gboolean      spread;      /* phase 3: clients use every live gateway */
  gboolean      paused;
  gboolean      stop;
  guint         busy;        /* clients inside a request */
  GPtrArray    *answers;     /* Answer * */
  GThread      *clients[N_CLIENTS];

  /* Lock monitor */
  GThread      *monitor;
  GPtrArray    *watched;     /* Watched *, under lock */
  GPtrArray    *violations;  /* char *, under lock */
  GHashTable   *seen_locked; /* process name → TRUE, under lock */
  gboolean      monitor_stop;

  /* CLI */
  guint         cli_runs;
  gint64        cli_slowest_us;
  GPtrArray    *cli_failures; /* char * */
  guint         visibility_checks;

  char         *first_refusal; /* the body of the first 503, under lock */
} Fixture;

/* ---- Helpers ------------------------------------------------------------ */

static void
answer_free (Answer *answer)
{
  g_free (answer->model);
  g_free (answer);
}

static void
watched_free (Watched *w)
{
  g_free (w->name);
  g_free (w);
}

static GPid
subprocess_pid (GSubprocess *proc)
{
  const char *id = g_subprocess_get_identifier (proc);

  return id != NULL ? (GPid) atoi (id) : 0;
}

static void
watch (Fixture    *f,
       GPid        pid,
       const char *name)
{
  Watched *w = g_new0 (Watched, 1);

  w->pid = pid;
  w->name = g_strdup (name);
  g_mutex_lock (&f->lock);
  g_ptr_array_add (f->watched, w);
  g_mutex_unlock (&f->lock);
}

static void
unwatch (Fixture *f,
         GPid     pid)
{
  g_mutex_lock (&f->lock);
  for (guint i = 0; i < f->watched->len; i++)
    if (((Watched *) f->watched->pdata[i])->pid == pid)
      {
        g_ptr_array_remove_index_fast (f->watched, i);
        break;
      }
  g_mutex_unlock (&f->lock);
}

static void
die_with_parent (gpointer data)
{
  /* A failed assertion must not leave gateways running (and meson
   * waiting for their output). */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

/* A launcher for every child: output as @flags say, killed with us. */
static GSubprocessLauncher *
new_launcher (GSubprocessFlags flags)
{
  GSubprocessLauncher *launcher = g_subprocess_launcher_new (flags);

  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  return launcher;
}

static GSubprocess *
spawn (GSubprocessFlags    flags,
       const char * const *argv)
{
  g_autoptr(GSubprocessLauncher) launcher = new_launcher (flags);
  g_autoptr(GError) error = NULL;
  GSubprocess *proc = g_subprocess_launcher_spawnv (launcher, argv, &error);

  g_assert_no_error (error);
  return proc;
}

/* Reads one line from @stream, for a child's first words ("PORT n",
 * "READY"), failing the test when the child says nothing in time. */
static char *
read_line (GInputStream *stream)
{
  g_autoptr(GDataInputStream) data = g_data_input_stream_new (stream);
  g_autoptr(GError) error = NULL;
  char *line;

  g_filter_input_stream_set_close_base_stream (G_FILTER_INPUT_STREAM (data), FALSE);
  line = g_data_input_stream_read_line (data, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);
  return line;
}

/* Runs gemini-keysctl with @argv (NULL-terminated, without the program),
 * @input on stdin; returns its exit status and its stdout in @out. Its pid
 * is watched by the lock monitor while it runs. */
static int
run_ctl (Fixture            *f,
         const char         *input,
         char              **out,
         char              **err,
         const char * const *argv)
{
  g_autoptr(GPtrArray) args = g_ptr_array_new ();
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *stdout_text = NULL;
  g_autofree char *stderr_text = NULL;
  GPid pid;

  g_ptr_array_add (args, (gpointer) f->ctl);
  for (guint i = 0; argv[i] != NULL; i++)
    g_ptr_array_add (args, (gpointer) argv[i]);
  g_ptr_array_add (args, NULL);

  proc = spawn (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                | G_SUBPROCESS_FLAGS_STDERR_PIPE, (const char * const *) args->pdata);
  pid = subprocess_pid (proc);
  watch (f, pid, "gemini-keysctl");
  g_subprocess_communicate_utf8 (proc, input ? input : "", NULL, &stdout_text, &stderr_text,
                                 &error);
  g_assert_no_error (error);
  g_subprocess_wait (proc, NULL, &error);
  g_assert_no_error (error);
  unwatch (f, pid);

  if (out != NULL)
    *out = g_steal_pointer (&stdout_text);
  if (err != NULL)
    *err = g_steal_pointer (&stderr_text);
  return g_subprocess_get_if_exited (proc) ? g_subprocess_get_exit_status (proc) : -1;
}

/* As run_ctl(), asserting success; returns stdout. */
static char *
ctl_ok (Fixture            *f,
        const char         *input,
        const char * const *argv)
{
  g_autofree char *err = NULL;
  char *out = NULL;
  int status = run_ctl (f, input, &out, &err, argv);

  if (status != 0)
    g_error ("gemini-keysctl %s failed (%d): %s", argv[0], status, err);
  return out;
}

static JsonNode *
parse_json (const char *text)
{
  g_autoptr(GError) error = NULL;
  JsonNode *node = json_from_string (text, &error);

  g_assert_no_error (error);
  g_assert_nonnull (node);
  return node;
}

static gint64
add_key (Fixture    *f,
         const char *name,
         const char *priority,
         guint       n)
{
  /* Classic keys are "AIza" and 35 more characters. */
  g_autofree char *key = g_strdup_printf ("AIzaSyMultiProcessKey%018u", n);
  const char *argv[] = { "key", "add", "--name", name, "--priority", priority,
                         "--monthly-quota", "100000000000", "--daily-quota", "1000000000",
                         "--rpd", "100000000", "--json", NULL };
  g_autofree char *out = ctl_ok (f, key, argv);
  g_autoptr(JsonNode) node = parse_json (out);

  return json_object_get_int_member (json_node_get_object (node), "id");
}

/* Starts `gemini-keysctl serve` with its output (a line per request) in a
 * file, and waits for its port. */
static GSubprocess *
start_gateway (Fixture *f,
               int      index)
{
  const char *argv[] = { f->ctl, "serve", "--port", "0", NULL };
  g_autoptr(GSubprocessLauncher) launcher = new_launcher (G_SUBPROCESS_FLAGS_NONE);
  g_autofree char *log = g_strdup_printf ("%s/gateway-%c.log", f->dir, 'A' + index);
  g_autoptr(GError) error = NULL;
  const char *prefix = "listening on http://127.0.0.1:";
  GSubprocess *proc;
  guint port = 0;

  g_subprocess_launcher_set_stdout_file_path (launcher, log);
  g_subprocess_launcher_set_stderr_file_path (launcher, log);
  proc = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  for (guint i = 0; port == 0; i++)
    {
      g_autofree char *text = NULL;
      const char *at;

      g_assert_cmpuint (i, <, 600);
      g_usleep (50 * 1000);
      if (g_file_get_contents (log, &text, NULL, NULL) && (at = strstr (text, prefix)) != NULL)
        port = (guint) g_ascii_strtoull (at + strlen (prefix), NULL, 10);
    }
  f->urls[index] = g_strdup_printf ("http://127.0.0.1:%u", port);
  g_mutex_lock (&f->lock);
  f->alive[index] = TRUE;
  g_mutex_unlock (&f->lock);
  watch (f, subprocess_pid (proc), index == GW_A ? "gateway A" : index == GW_B ? "gateway B"
                                                                                : "gateway C");
  return proc;
}

/* ---- Clients ------------------------------------------------------------ */

typedef struct
{
  Fixture *f;
  guint    index;
} ClientData;

/* One client: a request at a time, each to a model of its own name. */
static gpointer
client_thread (gpointer data)
{
  ClientData *cd = data;
  Fixture *f = cd->f;
  g_autoptr(SoupSession) session = soup_session_new_with_options ("timeout", CLIENT_TIMEOUT_S,
                                                                   NULL);
  g_autoptr(GBytes) body = g_bytes_new_static (REQUEST_BODY, strlen (REQUEST_BODY));

  for (guint seq = 0;; seq++)
    {
      g_autoptr(SoupMessage) msg = NULL;
      g_autoptr(GBytes) reply = NULL;
      g_autoptr(GError) error = NULL;
      g_autofree char *uri = NULL;
      Answer *answer;
      int gateway = GW_A;

      g_mutex_lock (&f->lock);
      while (f->paused && !f->stop)
        g_cond_wait (&f->cond, &f->lock);
      if (f->stop)
        {
          g_mutex_unlock (&f->lock);
          break;
        }
      if (f->spread && f->alive[cd->index % N_GATEWAYS])
        gateway = cd->index % N_GATEWAYS;
      f->busy++;
      uri = g_strdup_printf ("%s/v1beta/models/gemini-2.5-flash-c%u-%u:generateContent",
                             f->urls[gateway], cd->index, seq);
      g_mutex_unlock (&f->lock);

      answer = g_new0 (Answer, 1);
      answer->model = g_strdup_printf ("gemini-2.5-flash-c%u-%u", cd->index, seq);
      answer->gateway = gateway;

      msg = soup_message_new ("POST", uri);
      /* Keep-alive: a new connection per POST would exhaust ports. */
      soup_message_add_flags (msg, SOUP_MESSAGE_IDEMPOTENT);
      soup_message_headers_append (soup_message_get_request_headers (msg), "x-goog-api-key",
                                   f->token);
      soup_message_set_request_body_from_bytes (msg, "application/json", body);
      reply = soup_session_send_and_read (session, msg, NULL, &error);
      answer->status = reply != NULL ? soup_message_get_status (msg) : 0;

      g_mutex_lock (&f->lock);
      if (answer->status == 503 && f->first_refusal == NULL)
        f->first_refusal = g_strndup (g_bytes_get_data (reply, NULL), g_bytes_get_size (reply));
      g_ptr_array_add (f->answers, answer);
      f->busy--;
      g_cond_broadcast (&f->cond);
      g_mutex_unlock (&f->lock);

      /* A refused connection (a gateway just stopped) must not spin. */
      if (answer->status == 0)
        g_usleep (10 * 1000);
    }
  g_free (cd);
  return NULL;
}

static void
clients_start (Fixture *f)
{
  for (guint i = 0; i < N_CLIENTS; i++)
    {
      ClientData *cd = g_new0 (ClientData, 1);

      cd->f = f;
      cd->index = i;
      f->clients[i] = g_thread_new ("client", client_thread, cd);
    }
}

/* Stops new requests and waits for those in flight. */
static void
clients_pause (Fixture *f)
{
  g_mutex_lock (&f->lock);
  f->paused = TRUE;
  while (f->busy > 0)
    g_cond_wait (&f->cond, &f->lock);
  g_mutex_unlock (&f->lock);
}

static void
clients_resume (Fixture *f)
{
  g_mutex_lock (&f->lock);
  f->paused = FALSE;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->lock);
}

static void
clients_stop (Fixture *f)
{
  g_mutex_lock (&f->lock);
  f->stop = TRUE;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->lock);
  for (guint i = 0; i < N_CLIENTS; i++)
    g_thread_join (g_steal_pointer (&f->clients[i]));
}

static guint
answers_count (Fixture *f)
{
  guint n;

  g_mutex_lock (&f->lock);
  n = f->answers->len;
  g_mutex_unlock (&f->lock);
  return n;
}

/* ---- Lock monitor ------------------------------------------------------- */

static char *
file_id (const char *path)
{
  GStatBuf st;

  if (g_stat (path, &st) != 0)
    return NULL;
  return g_strdup_printf ("%02x:%02x:%lu", major (st.st_dev), minor (st.st_dev),
                          (unsigned long) st.st_ino);
}

/* Whether process @pid has @path open. */
static gboolean
has_open (GPid        pid,
          const char *path)
{
  g_autofree char *fd_dir = g_strdup_printf ("/proc/%d/fd", (int) pid);
  g_autoptr(GDir) dir = g_dir_open (fd_dir, 0, NULL);
  const char *name;

  if (dir == NULL)
    return FALSE;
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *link = g_build_filename (fd_dir, name, NULL);
      g_autofree char *target = g_file_read_link (link, NULL);

      if (g_strcmp0 (target, path) == 0)
        return TRUE;
    }
  return FALSE;
}

/* How many POSIX locks @pid holds on the file @id, in /proc/locks @lines. */
static guint
locks_of (char      **lines,
          GPid        pid,
          const char *id)
{
  g_autofree char *needle = g_strdup_printf (" %d %s ", (int) pid, id);
  guint n = 0;

  for (guint i = 0; lines[i] != NULL; i++)
    if (strstr (lines[i], " POSIX ") != NULL && strstr (lines[i], "->") == NULL
        && strstr (lines[i], needle) != NULL)
      n++;
  return n;
}

/* Samples every watched process: one that has the -shm open (so it has a
 * connection) must hold locks on the database and on the -shm. A process
 * opening or closing its connection passes through a moment without
 * them, so only several samples in a row count. */
static gpointer
monitor_thread (gpointer data)
{
  Fixture *f = data;

  for (;;)
    {
      g_autoptr(GPtrArray) snapshot = g_ptr_array_new_with_free_func ((GDestroyNotify) watched_free);
      g_autofree char *db_id = NULL;
      g_autofree char *shm_id = NULL;
      gboolean stop;

      g_mutex_lock (&f->lock);
      stop = f->monitor_stop;
      for (guint i = 0; i < f->watched->len; i++)
        {
          Watched *w = f->watched->pdata[i];
          Watched *copy = g_new0 (Watched, 1);

          copy->pid = w->pid;
          copy->name = g_strdup (w->name);
          g_ptr_array_add (snapshot, copy);
        }
      g_mutex_unlock (&f->lock);
      if (stop)
        break;

      db_id = file_id (f->db_path);
      shm_id = file_id (f->shm_path);
      for (guint i = 0; db_id != NULL && shm_id != NULL && i < snapshot->len; i++)
        {
          Watched *s = snapshot->pdata[i];
          g_autofree char *locks = NULL;
          g_auto(GStrv) lines = NULL;
          gboolean before, after, locked;

          before = has_open (s->pid, f->shm_path);
          if (!before)
            continue;
          g_assert_true (g_file_get_contents ("/proc/locks", &locks, NULL, NULL));
          after = has_open (s->pid, f->shm_path);
          lines = g_strsplit (locks, "\n", -1);
          locked = locks_of (lines, s->pid, db_id) > 0 && locks_of (lines, s->pid, shm_id) > 0;

          g_mutex_lock (&f->lock);
          for (guint j = 0; j < f->watched->len; j++)
            {
              Watched *w = f->watched->pdata[j];

              if (w->pid != s->pid)
                continue;
              if (locked)
                {
                  w->streak = 0;
                  g_hash_table_add (f->seen_locked, g_strdup (w->name));
                }
              else if (after && ++w->streak == MONITOR_STREAK)
                g_ptr_array_add (f->violations,
                                 g_strdup_printf ("%s (pid %d) has a connection to the database"
                                                  " but holds no lock on %s", w->name,
                                                  (int) w->pid,
                                                  locks_of (lines, s->pid, db_id) == 0
                                                    ? "the database file" : "the -shm file"));
            }
          g_mutex_unlock (&f->lock);
        }
      g_usleep (MONITOR_INTERVAL_US);
    }
  return NULL;
}

/* ---- The CLI loop ------------------------------------------------------- */

/* A request through gateway A whose answer is followed, within a second,
 * by its row in `gemini-keysctl usage`. */
static void
check_visibility (Fixture *f,
                  guint    n)
{
  g_autoptr(SoupSession) session = soup_session_new_with_options ("timeout", CLIENT_TIMEOUT_S,
                                                                   NULL);
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GBytes) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *model = g_strdup_printf ("gemini-2.5-flash-probe-%u", n);
  g_autofree char *uri = g_strdup_printf ("%s/v1beta/models/%s:generateContent",
                                          f->urls[GW_A], model);
  g_autofree char *quoted = g_strdup_printf ("\"%s\"", model);
  g_autoptr(GBytes) body = g_bytes_new_static (REQUEST_BODY, strlen (REQUEST_BODY));
  gint64 answered;

  msg = soup_message_new ("POST", uri);
  soup_message_headers_append (soup_message_get_request_headers (msg), "x-goog-api-key",
                               f->token);
  soup_message_set_request_body_from_bytes (msg, "application/json", body);
  reply = soup_session_send_and_read (session, msg, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (soup_message_get_status (msg), ==, 200);
  answered = g_get_monotonic_time ();

  for (;;)
    {
      const char *argv[] = { "usage", "--json", "--limit", "5000", NULL };
      g_autofree char *out = ctl_ok (f, NULL, argv);

      f->cli_runs++;
      if (strstr (out, quoted) != NULL)
        break;
      if (g_get_monotonic_time () - answered > VISIBLE_WITHIN_US)
        g_error ("the row of a request gateway A answered is not in `gemini-keysctl usage` "
                 "a second later");
    }
  f->visibility_checks++;
}

static void
run_cli_loop (Fixture *f,
              gint64   key_rotated)
{
  g_autofree char *rotated = g_strdup_printf ("%" G_GINT64_FORMAT, key_rotated);
  gint64 end = g_get_monotonic_time () + CLI_LOOP_SECONDS * G_USEC_PER_SEC;
  guint round = 0;

  while (g_get_monotonic_time () < end || round == 0)
    {
      g_autofree char *priority = g_strdup_printf ("%u", 2 + round % 8);
      g_autofree char *temp_name = g_strdup_printf ("temporary-%u", round);
      const char *update[] = { "key", "update", rotated, "--priority", priority, NULL };
      const char *rotate[] = { "key", "rotate", rotated, NULL };
      const char *const *plain[] = {
        (const char *[]) { "quotas", "reset", NULL },
        (const char *[]) { "quotas", "reset", "--type", "daily", NULL },
        update,
        rotate,
        (const char *[]) { "usage", NULL },
        (const char *[]) { "dashboard", NULL },
        (const char *[]) { "export", "--csv", "-", NULL },
        (const char *[]) { "key", "list", NULL },
      };
      g_autofree char *temp_id = NULL;

      for (guint i = 0; i < G_N_ELEMENTS (plain); i++)
        {
          g_autofree char *err = NULL;
          gint64 start = g_get_monotonic_time ();
          int status = run_ctl (f, NULL, NULL, &err, plain[i]);
          gint64 took = g_get_monotonic_time () - start;

          f->cli_runs++;
          f->cli_slowest_us = MAX (f->cli_slowest_us, took);
          if (status != 0)
            g_ptr_array_add (f->cli_failures,
                             g_strdup_printf ("%s %s → %d: %s", plain[i][0], plain[i][1],
                                              status, err));
        }

      /* A key added and deleted again while the gateway serves: the
       * highest priority, so requests are in flight on it when it goes. */
      temp_id = g_strdup_printf ("%" G_GINT64_FORMAT, add_key (f, temp_name, "10", 100 + round));
      {
        const char *del[] = { "key", "delete", temp_id, "--yes", NULL };
        g_autofree char *out = ctl_ok (f, NULL, del);
      }
      f->cli_runs += 2;

      check_visibility (f, round);
      round++;
    }
}

/* The desktop app's backend opens the database, reads for a while as its
 * pages do, and closes it again, all while gateway A serves. */
static void
run_backend (Fixture    *f,
             const char *probe_path)
{
  const char *argv[] = { probe_path, G_STRINGIFY (BACKEND_SECONDS), NULL };
  g_autoptr(GSubprocess) probe = spawn (G_SUBPROCESS_FLAGS_STDOUT_PIPE, argv);
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  g_autofree char *rest = NULL;

  watch (f, subprocess_pid (probe), "desktop backend");
  line = read_line (g_subprocess_get_stdout_pipe (probe));
  g_assert_cmpstr (line, ==, "READY");
  rest = read_line (g_subprocess_get_stdout_pipe (probe));
  g_assert_true (g_str_has_prefix (rest, "DONE "));
  g_subprocess_wait_check (probe, NULL, &error);
  g_assert_no_error (error);
  unwatch (f, subprocess_pid (probe));
}

/* ---- The checks --------------------------------------------------------- */

static gint64
query_int (GkDatabase *db,
           const char *sql,
           const char *text,
           gint64      number)
{
  g_autoptr(GError) error = NULL;
  GkSqlStmt *stmt;
  gint64 value = -1;

  gk_database_lock (db);
  stmt = gk_database_prepare (db, sql, &error);
  g_assert_no_error (error);
  if (text != NULL)
    gk_sql_bind_text (stmt, 1, text, -1);
  else
    gk_sql_bind_int64 (stmt, 1, number);
  if (gk_sql_step (stmt) == GK_SQL_ROW)
    value = gk_sql_column_int64 (stmt, 0);
  gk_sql_reset (stmt);
  gk_database_unlock (db);
  return value;
}

/* Every 200 has exactly one usage row; no request has two. */
static void
check_answers (Fixture    *f,
               GkDatabase *db,
               gboolean    all_gateways)
{
  g_autoptr(GHashTable) rows = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GError) error = NULL;
  guint ok[N_GATEWAYS] = { 0 }, other[N_GATEWAYS] = { 0 };
  GkSqlStmt *stmt;

  gk_database_lock (db);
  stmt = gk_database_prepare (db, "SELECT model, count(*) FROM gemini_key_usage_log"
                                  " WHERE status = 'SUCCESS' GROUP BY model", &error);
  g_assert_no_error (error);
  while (gk_sql_step (stmt) == GK_SQL_ROW)
    g_hash_table_insert (rows, g_strdup (gk_sql_column_text (stmt, 0)),
                         GINT_TO_POINTER (gk_sql_column_int64 (stmt, 1)));
  gk_sql_reset (stmt);
  gk_database_unlock (db);

  for (guint i = 0; i < f->answers->len; i++)
    {
      Answer *a = f->answers->pdata[i];
      int n = GPOINTER_TO_INT (g_hash_table_lookup (rows, a->model));

      if (a->status == 200)
        {
          ok[a->gateway]++;
          if (n != 1)
            g_error ("%s was answered 200 by gateway %c but has %d usage rows", a->model,
                     'A' + a->gateway, n);
        }
      else
        {
          other[a->gateway]++;
          g_assert_cmpint (n, <=, 1);
        }
      g_hash_table_remove (rows, a->model);
    }
  g_test_message ("answers: A %u ok %u other, B %u ok %u other, C %u ok %u other",
                  ok[GW_A], other[GW_A], ok[GW_B], other[GW_B], ok[GW_C], other[GW_C]);
  g_assert_cmpuint (ok[GW_A], >=, N_CLIENTS);
  if (all_gateways)
    {
      /* Gateway A served until the clients stopped: every answer was a 200. */
      g_assert_cmpuint (other[GW_A], ==, 0);
      g_assert_cmpuint (ok[GW_B], >, 0);
      g_assert_cmpuint (ok[GW_C], >, 0);
    }
  /* What is left are the visibility probes: no row of a request that was
   * never sent. */
  {
    GHashTableIter iter;
    gpointer model;

    g_hash_table_iter_init (&iter, rows);
    while (g_hash_table_iter_next (&iter, &model, NULL))
      g_assert_true (g_str_has_prefix (model, "gemini-2.5-flash-probe-"));
  }
}

/* Each key's daily and monthly counters equal the sum of its rows since
 * the last reset (rows after @after_id). */
static void
check_quotas (GkDatabase *db,
              gint64      after_id)
{
  g_autoptr(GError) error = NULL;
  GkSqlStmt *stmt;
  guint checked = 0;

  gk_database_lock (db);
  stmt = gk_database_prepare (db,
                              "SELECT q.key_id, q.quota_type, q.unit, q.used_value,"
                              " (SELECT coalesce (sum (CASE q.unit WHEN 'REQUESTS' THEN 1"
                              "   ELSE u.tokens_used END), 0) FROM gemini_key_usage_log u"
                              "  WHERE u.key_id = q.key_id AND u.status = 'SUCCESS'"
                              "  AND u.id > ?1)"
                              " FROM gemini_key_quotas q WHERE q.quota_type <> 'PER_MINUTE'",
                              &error);
  g_assert_no_error (error);
  gk_sql_bind_int64 (stmt, 1, after_id);
  while (gk_sql_step (stmt) == GK_SQL_ROW)
    {
      gint64 used = gk_sql_column_int64 (stmt, 3);
      gint64 sum = gk_sql_column_int64 (stmt, 4);

      if (used != sum)
        g_error ("key %" G_GINT64_FORMAT " %s %s: the counter says %" G_GINT64_FORMAT
                 ", its usage rows %" G_GINT64_FORMAT, (gint64) gk_sql_column_int64 (stmt, 0),
                 gk_sql_column_text (stmt, 1), gk_sql_column_text (stmt, 2), used, sum);
      checked++;
    }
  gk_sql_reset (stmt);
  gk_database_unlock (db);
  g_assert_cmpuint (checked, >, 0);
}

/* ---- The test ----------------------------------------------------------- */

static void
stop_gateway (Fixture *f,
              int      index,
              int      signal_number)
{
  GSubprocess *proc = f->gateways[index];
  g_autoptr(GError) error = NULL;

  g_mutex_lock (&f->lock);
  f->alive[index] = FALSE;
  g_mutex_unlock (&f->lock);
  unwatch (f, subprocess_pid (proc));
  g_subprocess_send_signal (proc, signal_number);
  g_subprocess_wait (proc, NULL, &error);
  g_assert_no_error (error);
  if (signal_number == SIGKILL)
    {
      g_assert_true (g_subprocess_get_if_signaled (proc));
    }
  else
    {
      /* A clean stop. */
      g_assert_true (g_subprocess_get_if_exited (proc));
      g_assert_cmpint (g_subprocess_get_exit_status (proc), ==, 0);
    }
}

/* The data folder (a tmpfs when @mount_size is set), the master key file,
 * the mock, the lock monitor and a database with two keys and a client
 * token. Every child inherits the environment that points at them. */
static gboolean
fixture_setup (Fixture    *f,
               const char *mount_size,
               gint64     *key_steady,
               gint64     *key_rotated)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *key_file = NULL;
  g_autofree char *data_dir = NULL;
  g_autofree char *mock_port = NULL;
  const char *mock = g_getenv ("GK_MOCK_GEMINI");

  f->ctl = g_getenv ("GEMINI_KEYSCTL");
  if (f->ctl == NULL || mock == NULL)
    {
      g_test_skip ("GEMINI_KEYSCTL or GK_MOCK_GEMINI is not set");
      return FALSE;
    }
  g_mutex_init (&f->lock);
  g_cond_init (&f->cond);
  f->answers = g_ptr_array_new_with_free_func ((GDestroyNotify) answer_free);
  f->watched = g_ptr_array_new_with_free_func ((GDestroyNotify) watched_free);
  f->violations = g_ptr_array_new_with_free_func (g_free);
  f->cli_failures = g_ptr_array_new_with_free_func (g_free);
  f->seen_locked = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  f->dir = g_dir_make_tmp ("gk-multiprocess-XXXXXX", &error);
  g_assert_no_error (error);
  data_dir = g_build_filename (f->dir, "data", NULL);
  g_assert_cmpint (g_mkdir (data_dir, 0700), ==, 0);
  if (mount_size != NULL)
    {
      g_autofree char *options = g_strdup_printf ("size=%s,mode=0700", mount_size);

      g_assert_cmpint (mount ("tmpfs", data_dir, "tmpfs", 0, options), ==, 0);
    }
  key_file = g_build_filename (f->dir, "master.key", NULL);
  f->db_path = g_build_filename (data_dir, "keys.db", NULL);
  f->shm_path = g_strconcat (f->db_path, "-shm", NULL);
  {
    guint8 raw[32];
    g_autofree char *encoded = NULL;
    g_autofree char *text = NULL;

    for (guint i = 0; i < sizeof raw; i++)
      raw[i] = (guint8) g_random_int ();
    encoded = g_base64_encode (raw, sizeof raw);
    text = g_strconcat (encoded, "\n", NULL);
    g_assert_true (g_file_set_contents_full (key_file, text, -1, G_FILE_SET_CONTENTS_NONE,
                                             0600, &error));
    g_assert_no_error (error);
  }
  g_setenv ("GEMINI_KEYS_DATA_DIR", data_dir, TRUE);
  g_setenv ("GEMINI_KEYS_MASTER_KEY_FILE", key_file, TRUE);
  /* GIO's default proxy resolver wants GSettings schemas; nothing here
   * goes through a proxy. */
  g_setenv ("GIO_USE_PROXY_RESOLVER", "dummy", TRUE);

  {
    const char *argv[] = { mock, "--port", "0", NULL };
    g_autofree char *line = NULL;

    f->mock = spawn (G_SUBPROCESS_FLAGS_STDOUT_PIPE, argv);
    line = read_line (g_subprocess_get_stdout_pipe (f->mock));
    g_assert_true (g_str_has_prefix (line, "PORT "));
    mock_port = g_strdup (line + strlen ("PORT "));
  }
  {
    g_autofree char *upstream = g_strdup_printf ("http://127.0.0.1:%s", mock_port);

    g_setenv ("GEMINI_KEYS_UPSTREAM", upstream, TRUE);
  }

  f->monitor = g_thread_new ("lock-monitor", monitor_thread, f);

  {
    const char *migrate[] = { "db", "migrate", NULL };
    const char *token[] = { "token", "add", "--name", "multiprocess", "--json", NULL };
    g_autofree char *out = NULL;
    g_autoptr(JsonNode) node = NULL;

    g_free (ctl_ok (f, NULL, migrate));
    *key_steady = add_key (f, "steady", "5", 1);
    *key_rotated = add_key (f, "rotated", "5", 2);
    out = ctl_ok (f, NULL, token);
    node = parse_json (out);
    f->token = g_strdup (json_object_get_string_member (json_node_get_object (node), "token"));
  }
  return TRUE;
}

static void
monitor_stop (Fixture *f)
{
  g_mutex_lock (&f->lock);
  f->monitor_stop = TRUE;
  g_mutex_unlock (&f->lock);
  g_thread_join (g_steal_pointer (&f->monitor));
}

static void
fixture_teardown (Fixture *f)
{
  g_subprocess_force_exit (f->mock);
  g_subprocess_wait (f->mock, NULL, NULL);
  g_clear_object (&f->mock);
  for (guint i = 0; i < N_GATEWAYS; i++)
    {
      g_clear_object (&f->gateways[i]);
      g_free (f->urls[i]);
    }
  g_unsetenv ("GEMINI_KEYS_UPSTREAM");
  g_unsetenv ("GEMINI_KEYS_DATA_DIR");
  g_unsetenv ("GEMINI_KEYS_MASTER_KEY_FILE");
  gk_test_rm_rf (f->dir);
  g_free (f->dir);
  g_free (f->db_path);
  g_free (f->shm_path);
  g_free (f->token);
  g_free (f->first_refusal);
  g_ptr_array_unref (f->answers);
  g_ptr_array_unref (f->watched);
  g_ptr_array_unref (f->violations);
  g_ptr_array_unref (f->cli_failures);
  g_hash_table_unref (f->seen_locked);
  g_mutex_clear (&f->lock);
  g_cond_clear (&f->cond);
}

/* Waits until the clients have had @n more answers. */
static void
wait_answers (Fixture *f,
              guint    n)
{
  guint target = answers_count (f) + n;

  while (answers_count (f) < target)
    g_usleep (20 * 1000);
}

static void
test_multiprocess (void)
{
  Fixture fixture = { 0 }, *f = &fixture;
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = NULL;
  const char *probe_path = g_getenv ("GK_BACKEND_PROBE");
  gint64 key_steady, key_rotated, key_fresh, last_before_reset;

  if (!fixture_setup (f, NULL, &key_steady, &key_rotated))
    return;
  /* Phase 1: gateway A under load from every client while the CLI loops,
   * then the desktop app's backend opens the database too. */
  f->gateways[GW_A] = start_gateway (f, GW_A);
  clients_start (f);
  run_cli_loop (f, key_rotated);
  if (probe_path != NULL)
    run_backend (f, probe_path);
  else
    g_test_message ("GK_BACKEND_PROBE is not set (built without the GUI): no desktop backend");
  g_test_message ("phase 1: %u answers, %u CLI runs (slowest %" G_GINT64_FORMAT " ms), "
                  "%u visibility checks", answers_count (f), f->cli_runs,
                  f->cli_slowest_us / 1000, f->visibility_checks);

  /* Phase 2: a reset with nothing in flight, so that each counter must
   * equal the rows recorded after it; then a key added while A serves. */
  clients_pause (f);
  {
    const char *reset[] = { "quotas", "reset", NULL };
    const char *newest[] = { "usage", "--json", "--limit", "1", NULL };
    g_autofree char *out = NULL;
    g_autoptr(JsonNode) node = NULL;
    JsonArray *rows;

    g_free (ctl_ok (f, NULL, reset));
    out = ctl_ok (f, NULL, newest);
    node = parse_json (out);
    rows = json_node_get_array (node);
    g_assert_cmpuint (json_array_get_length (rows), ==, 1);
    last_before_reset = json_object_get_int_member (json_array_get_object_element (rows, 0),
                                                    "id");
  }
  key_fresh = add_key (f, "fresh", "10", 3);
  clients_resume (f);

  /* Phase 3: two more gateways on the same database; C is killed and B
   * stopped while their clients are busy. */
  f->gateways[GW_B] = start_gateway (f, GW_B);
  f->gateways[GW_C] = start_gateway (f, GW_C);
  g_mutex_lock (&f->lock);
  f->spread = TRUE;
  g_mutex_unlock (&f->lock);
  wait_answers (f, 600);
  stop_gateway (f, GW_C, SIGKILL);
  wait_answers (f, 300);
  stop_gateway (f, GW_B, SIGTERM);
  wait_answers (f, 300);
  clients_stop (f);
  stop_gateway (f, GW_A, SIGTERM);

  monitor_stop (f);

  /* The checks. */
  for (guint i = 0; i < f->cli_failures->len; i++)
    g_test_message ("CLI failed: %s", (char *) f->cli_failures->pdata[i]);
  g_assert_cmpuint (f->cli_failures->len, ==, 0);
  g_test_message ("%u CLI runs, the slowest took %" G_GINT64_FORMAT " ms", f->cli_runs,
                  f->cli_slowest_us / 1000);

  for (guint i = 0; i < f->violations->len; i++)
    g_test_message ("lock lost: %s", (char *) f->violations->pdata[i]);
  g_assert_cmpuint (f->violations->len, ==, 0);
  /* The monitor did see each kind of process with its locks. */
  g_assert_true (g_hash_table_contains (f->seen_locked, "gateway A"));
  g_assert_true (g_hash_table_contains (f->seen_locked, "gateway B"));
  g_assert_true (g_hash_table_contains (f->seen_locked, "gateway C"));
  if (probe_path != NULL)
    g_assert_true (g_hash_table_contains (f->seen_locked, "desktop backend"));
  g_assert_true (g_hash_table_contains (f->seen_locked, "gemini-keysctl"));

  db = gk_database_open (f->db_path, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (gk_database_check_integrity (db, &error));
  g_assert_no_error (error);
  check_answers (f, db, TRUE);
  check_quotas (db, last_before_reset);
  /* The key added while the gateway served was chosen (highest priority)
   * and its use recorded. */
  g_assert_cmpint (query_int (db, "SELECT count(*) FROM gemini_key_usage_log"
                                  " WHERE key_id = ?1 AND status = 'SUCCESS'", NULL, key_fresh),
                   >, 0);
  g_assert_cmpint (query_int (db, "SELECT count(*) FROM gemini_key_usage_log"
                                  " WHERE key_id = ?1", NULL, key_steady), >, 0);
  g_test_message ("%" G_GINT64_FORMAT " usage rows",
                  hardening_query_int (db, "SELECT count(*) FROM gemini_key_usage_log"));

  g_clear_object (&db);
  fixture_teardown (f);
}

/* ---- Disk full ---------------------------------------------------------- */

static gboolean
enter_private_mounts (void)
{
  if (geteuid () != 0 || unshare (CLONE_NEWNS) != 0)
    return FALSE;
  return mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
}

/* Whether a private tmpfs can be mounted here, asked of a throw-away
 * child so the test process itself stays as it is. */
static gboolean
mounts_permitted (void)
{
  g_autofree char *dir = g_dir_make_tmp ("gk-probe-XXXXXX", NULL);
  int status = 0;
  pid_t pid;

  g_assert_nonnull (dir);
  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      /* Only system calls here: the parent may have threads. */
      if (!enter_private_mounts () || mount ("tmpfs", dir, "tmpfs", 0, "size=64k") != 0)
        _exit (1);
      _exit (0);
    }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_rmdir (dir);
  return WIFEXITED (status) && WEXITSTATUS (status) == 0;
}

/* How many answers from @from on have @status. */
static guint
count_answers (Fixture *f,
               guint    from,
               guint    status)
{
  guint n = 0;

  g_mutex_lock (&f->lock);
  for (guint i = from; i < f->answers->len; i++)
    if (((Answer *) f->answers->pdata[i])->status == status)
      n++;
  g_mutex_unlock (&f->lock);
  return n;
}

/* Waits until @n answers from @from on have @status. */
static void
wait_for_answers (Fixture    *f,
                  guint       from,
                  guint       status,
                  guint       n,
                  const char *what)
{
  for (guint i = 0; count_answers (f, from, status) < n; i++)
    {
      if (i >= 60 * 50)
        g_error ("not %u answers %u in a minute: %s", n, status, what);
      g_usleep (20 * 1000);
    }
}

/* The gateway on a database whose disk fills up under load: it stops
 * forwarding (503, "disk is full") instead of answering requests it cannot
 * charge, keeps the rows of the requests it did answer, and once space is
 * freed writes them and serves again by itself. */
static void
disk_full_child (void)
{
  Fixture fixture = { 0 }, *f = &fixture;
  g_autoptr(GError) error = NULL;
  g_autoptr(GkDatabase) db = NULL;
  g_autofree char *ballast = NULL;
  g_autofree char *log = NULL;
  g_autofree char *log_text = NULL;
  struct statvfs fs;
  gint64 key_steady, key_rotated;
  guint freed_at;

  g_assert_true (enter_private_mounts ());
  if (!fixture_setup (f, "4m", &key_steady, &key_rotated))
    return;

  /* Ballast takes all but 256 KiB, so the usage rows fill the disk soon
   * and deleting the ballast makes room again. */
  g_assert_cmpint (statvfs (f->db_path, &fs), ==, 0);
  ballast = g_build_filename (f->dir, "data", "ballast", NULL);
  {
    gsize size = (gsize) fs.f_bavail * fs.f_bsize - 256 * 1024;
    g_autofree char *zeros = g_malloc0 (size);

    g_assert_true (g_file_set_contents (ballast, zeros, (gssize) size, &error));
    g_assert_no_error (error);
  }

  f->gateways[GW_A] = start_gateway (f, GW_A);
  clients_start (f);
  wait_for_answers (f, 0, 503, 1, "the gateway went on forwarding with the disk full");
  g_mutex_lock (&f->lock);
  g_test_message ("refused after %u answers: %s", f->answers->len, f->first_refusal);
  {
    /* Google's error shape. */
    g_autoptr(JsonNode) node = parse_json (f->first_refusal);
    JsonObject *body = json_node_get_object (node);
    JsonObject *inner = json_object_get_object_member (body, "error");

    g_assert_nonnull (inner);
    g_assert_cmpint (json_object_get_int_member (inner, "code"), ==, 503);
    g_assert_cmpstr (json_object_get_string_member (inner, "status"), ==, "UNAVAILABLE");
    g_assert_nonnull (strstr (json_object_get_string_member (inner, "message"), "disk is full"));
  }
  g_mutex_unlock (&f->lock);

  /* Refusing goes on while the disk stays full. */
  wait_answers (f, 200);
  g_assert_cmpint (g_unlink (ballast), ==, 0);
  freed_at = answers_count (f);
  /* More 200s than requests could have been in flight when it filled. */
  wait_for_answers (f, freed_at, 200, 4 * N_CLIENTS,
                    "the gateway did not serve again once space was freed");
  clients_stop (f);
  stop_gateway (f, GW_A, SIGTERM);
  monitor_stop (f);

  /* The rows of the requests answered while the disk was full were kept
   * in memory and written. */
  log = g_build_filename (f->dir, "gateway-A.log", NULL);
  g_assert_true (g_file_get_contents (log, &log_text, NULL, NULL));
  g_assert_nonnull (strstr (log_text, "kept in memory"));
  g_assert_nonnull (strstr (log_text, "503 disk full"));

  db = gk_database_open (f->db_path, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (gk_database_check_integrity (db, &error));
  g_assert_no_error (error);
  check_answers (f, db, FALSE);
  check_quotas (db, 0);
  g_clear_object (&db);
  {
    g_autofree char *data_dir = g_path_get_dirname (f->db_path);

    g_assert_cmpint (umount2 (data_dir, MNT_DETACH), ==, 0);
  }
  fixture_teardown (f);
}

static void
test_disk_full (void)
{
  if (g_test_subprocess ())
    {
      disk_full_child ();
      return;
    }
  if (!mounts_permitted ())
    {
      g_test_skip ("mounting a tmpfs is not permitted here");
      return;
    }
  g_test_trap_subprocess (NULL, 180 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_test_trap_assert_passed ();
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  /* A gateway stopped under a client's feet must not kill the test. */
  signal (SIGPIPE, SIG_IGN);
  g_test_add_func ("/hardening/multiprocess/one-database", test_multiprocess);
  g_test_add_func ("/hardening/multiprocess/disk-full", test_disk_full);
  return g_test_run ();
}
