# What the Python tests of the postgresql suite share: a team's gemini-keysctl
# processes (a master key file, the cluster's URI, the mock upstream), TAP
# checks, and psql on the cluster (tests/pg/pg-cluster.sh).
#
# SPDX-License-Identifier: GPL-3.0-or-later
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CTL = os.environ["GEMINI_KEYSCTL"]
MOCK = os.environ["MOCK_GEMINI"]
URI = os.environ["GK_TEST_PG_URI"]
HUGE = "1000000000000"
BODY = json.dumps({"contents": [{"parts": [{"text": "hello"}]}]})
PATH = "/v1beta/models/gemini-2.5-flash:generateContent"

results = []


def check(ok, name, detail=""):
    results.append(ok)
    print(("ok" if ok else "not ok") + " %d %s" % (len(results), name))
    if detail:
        for line in str(detail).splitlines():
            print("# " + line)
    sys.stdout.flush()


def api_key(word, n):
    """A valid-looking classic key whose text carries @word for the mock."""
    return "AIza" + word + str(n).zfill(35 - len(word))


def sql(query):
    out = subprocess.run(["/usr/lib/postgresql/15/bin/psql", "-X", "-A", "-t", "-q", URI,
                          "-c", query], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def server(action):
    """Stops ("STOP", a fast shutdown) or starts ("START") the cluster."""
    subprocess.run(os.environ["GK_TEST_PG_" + action], shell=True, check=True,
                   stdout=subprocess.DEVNULL, timeout=120)


class Team:
    def __init__(self, prefix):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        key_file = os.path.join(self.dir, "master.key")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, base64.b64encode(os.urandom(32)))
        os.close(fd)
        self.env = dict(os.environ)
        self.env.update({
            "GEMINI_KEYS_DATABASE": URI,
            "GEMINI_KEYS_MASTER_KEY_FILE": key_file,
            "GEMINI_KEYS_DATA_DIR": os.path.join(self.dir, "data"),
            "G_DEBUG": "",
        })
        self.env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        self.processes = []

    def ctl(self, *args, stdin=None):
        run = subprocess.run([CTL] + list(args), input=stdin, env=self.env,
                             capture_output=True, text=True, timeout=120)
        if run.returncode != 0:
            raise RuntimeError("gemini-keysctl %s: %s" % (" ".join(args), run.stderr))
        return run.stdout

    def add_key(self, name, word, n, priority):
        self.ctl("key", "add", "--name", name, "--priority", str(priority),
                 "--daily-quota", HUGE, "--rpd", HUGE, stdin=api_key(word, n) + "\n")
        keys = json.loads(self.ctl("key", "list", "--json"))
        if isinstance(keys, dict):
            keys = keys.get("keys", [])
        return next(k["id"] for k in keys if k["name"] == name)

    def add_token(self, name):
        return json.loads(self.ctl("token", "add", "--name", name, "--json"))["token"]

    def start(self, argv, name):
        log = open(os.path.join(self.dir, name + ".log"), "w+")
        process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   text=True)
        self.processes.append((process, log))
        return process, log

    def start_mock(self):
        """tests/mock-gemini on a free port, the upstream of what starts next."""
        _, log = self.start([MOCK, "--port", "0"], "mock")
        port = int(self.wait_line(log, r"PORT (\d+)").group(1))
        self.env["GEMINI_KEYS_UPSTREAM"] = "http://127.0.0.1:%d" % port

    def serve(self, name, *options):
        """A `gemini-keysctl serve` gateway: its process, log and port."""
        process, log = self.start([CTL, "serve", "--port", "0"] + list(options), name)
        port = int(self.wait_line(log, r"listening on http://127\.0\.0\.1:(\d+)").group(1))
        return process, log, port

    def wait_line(self, log, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log.seek(0)
            match = re.search(pattern, log.read())
            if match:
                return match
            time.sleep(0.05)
        log.seek(0)
        raise RuntimeError("no %r in:\n%s" % (pattern, log.read()))

    def stop(self, process):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self):
        for process, _ in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.processes:
            self.stop(process)

    def clean(self):
        self.stop_all()
        for _, log in self.processes:
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
