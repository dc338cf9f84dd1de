#!/usr/bin/env python3
# The two 503 answers of a `gemini-keysctl serve` gateway while its
# PostgreSQL server (tests/pg/pg-cluster.sh's throwaway cluster) is out of
# reach, against tests/mock-gemini:
#
#  - the usage rows kept in memory reach `--outage-rows` (rows kept and
#    requests in flight): exactly that many requests are answered 200 from
#    the last snapshot, the next ones 503 UNAVAILABLE with Retry-After; once
#    the server is back the rows kept are written (one per 200) and
#    requests get 200 again;
#  - the gateway has no snapshot of the keys at all (it verified the
#    client's token, on a request it answered 404, but never chose a key):
#    a request waits for the server until its deadline (`serve --timeout`),
#    then gets 503, not a hang and not a 200; once the server is back the
#    same request gets 200;
#  - a client whose token was checked before the server's last change (a
#    reload, every 5 s) cannot be checked during the outage: 503, not 401
#    (its token is not known to be revoked).
#  - the gateway is stopped (SIGTERM) while a request waits for the server
#    (no snapshot, its deadline far away): the request is answered 503
#    "The gateway is stopping." at once, its row is written once the server
#    is back, and the gateway exits cleanly (before, it was asked the
#    server again, or left behind unanswered, its state never freed, when
#    the stop's drain ended first).
#
# Run through meson (the postgresql suite), TAP on stdout.
#
# SPDX-License-Identifier: GPL-3.0-or-later
import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import time

from pgteam import BODY, PATH, Team, check, results, server, sql

OUTAGE_ROWS = 3
TIMEOUT_S = 3
# Far above what a request waiting for its deadline of TIMEOUT_S takes, even
# on a loaded machine; a gateway that hangs is caught by it, not by the
# client's own timeout.
WAIT_BOUND_S = TIMEOUT_S + 30
# The client token cache is valid for one change count of the server: a
# reload (every 5 s) or a notice counted between the last check of a token
# and the outage sends the token back to the server, which cannot answer
# (503 "cannot check the client token"). The outage is then started again;
# three times in a row cannot happen by chance.
OUTAGE_TRIES = 3
# More than the gateways' reload period (GK_DATABASE_REFRESH_S).
RELOAD_S = 6
# Far above what a stop takes to answer the requests in flight (its drain
# is 2 s), even on a loaded machine; far below the waiting request's own
# deadline, so that an answer in time is the stop's.
STOP_BOUND_S = 60


def call(port, token, method="POST", path=PATH):
    """One request on a connection of its own: status, headers, body, seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.monotonic()
    try:
        conn.request(method, path, BODY if method == "POST" else None,
                     {"x-goog-api-key": token, "Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        return response.status, response.getheader("Retry-After"), body, \
            time.monotonic() - start
    finally:
        conn.close()


def google_unavailable(answer):
    """A 503 in Google's error shape, with Retry-After, about the database."""
    status, retry_after, body, _ = answer
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return (status == 503 and error.get("code") == 503 and error.get("status") == "UNAVAILABLE"
            and "database" in error.get("message", "") and retry_after is not None
            and retry_after.isdigit())


def token_unchecked(answer):
    return google_unavailable(answer) and b"cannot check the client token" in answer[2]


def outage(port, token, warm_up):
    """Stops the server right after @warm_up, and makes the first request of
    the outage: its answer, or None when the token had to go back to the
    server (see OUTAGE_TRIES)."""
    for _ in range(OUTAGE_TRIES):
        warm_up()
        server("STOP")
        answer = call(port, token)
        if not token_unchecked(answer):
            return answer
        print("# a change was counted just before the outage: once more")
        server("START")
    return None


def log_text(log):
    log.seek(0)
    return log.read()


def usage_rows(user, http_status):
    return int(sql("SELECT count(*) FROM gemini_key_usage_log WHERE user_id = '%s'"
                   " AND http_status = %d" % (user, http_status)))


def test_rows_full(team):
    token = team.add_token("full")
    process, log, port = team.serve("full", "--outage-rows", str(OUTAGE_ROWS))
    statuses = []

    def warm_up():
        # The keys' snapshot and the token are loaded.
        statuses.append(call(port, token)[0])

    answers = []
    first = outage(port, token, warm_up)
    if first is not None:
        answers = [first] + [call(port, token) for _ in range(OUTAGE_ROWS + 1)]
    outage_statuses = [a[0] for a in answers]
    check(statuses and all(s == 200 for s in statuses)
          and outage_statuses == [200] * OUTAGE_ROWS + [503, 503],
          "the server out of reach: %d requests served from memory, then 503" % OUTAGE_ROWS,
          "before: %s, during: %s" % (statuses, outage_statuses))
    check(all(google_unavailable(a) for a in answers[OUTAGE_ROWS:]) and answers,
          "the 503s are in Google's error shape (UNAVAILABLE) with Retry-After",
          "\n".join(repr(a[:3]) for a in answers[OUTAGE_ROWS:]))

    server("START")
    kept = team.wait_line(log, r"database can be reached again: (\d+) usage rows").group(1)
    text = log_text(log)
    said = re.findall(r"The database cannot be reached \(.*\): usage rows are kept in memory "
                      r"\(at most (\d+)\)", text)
    refused = len(re.findall(r"-> 503 database out of reach", text))
    check(said == [str(OUTAGE_ROWS)] and refused == 2 and kept == str(OUTAGE_ROWS),
          "the log says so once, with the bound, each 503 in a line, and the rows kept",
          "outage lines: %s, 503 lines: %d, rows kept: %s" % (said, refused, kept))

    served = statuses.count(200) + outage_statuses.count(200)
    rows = usage_rows("full", 200)
    check(rows == served, "the rows kept in memory are written when the server is back",
          "200s: %d, rows: %d" % (served, rows))
    after = [call(port, token)[0] for _ in range(OUTAGE_ROWS + 1)]
    check(after == [200] * (OUTAGE_ROWS + 1) and usage_rows("full", 200) == served + len(after),
          "then requests get 200 again, each with its row", "statuses: %s" % after)
    team.stop(process)


def test_no_snapshot(team):
    token = team.add_token("nosnap")
    process, log, port = team.serve("nosnap", "--timeout", str(TIMEOUT_S))
    checked = []

    def warm_up():
        # The token is verified, and the request refused before any key is
        # chosen.
        checked.append(call(port, token, "GET", "/not-an-api")[0])

    answer = outage(port, token, warm_up)
    check(checked and all(s == 404 for s in checked) and answer is not None
          and answer[0] == 503 and google_unavailable(answer),
          "no snapshot and the server out of reach: 503 UNAVAILABLE with Retry-After",
          "token checks: %s, answer: %s" % (checked, answer and answer[:3]))
    waited = answer[3] if answer is not None else -1
    check(TIMEOUT_S - 1 <= waited <= WAIT_BOUND_S,
          "the request waited for the server until its deadline (%d s), not more" % TIMEOUT_S,
          "waited %.2f s" % waited)

    server("START")
    again = call(port, token)
    check(again[0] == 200, "once the server is back the same request gets 200",
          "answer: %s" % (again[:3],))
    team.stop(process)
    text = log_text(log)
    check(len(re.findall(r"The database cannot be reached", text)) == 1
          and usage_rows("nosnap", 503) == 1 and usage_rows("nosnap", 200) == 1,
          "the log says so once; the 503 and the 200 have their rows",
          "503 rows: %d, 200 rows: %d" % (usage_rows("nosnap", 503), usage_rows("nosnap", 200)))


def test_token_unchecked(team):
    token = team.add_token("quiet")
    process, log, port = team.serve("quiet")
    before = call(port, token)[0]
    time.sleep(RELOAD_S)
    server("STOP")
    during = call(port, token)
    check(before == 200 and token_unchecked(during),
          "a token not checked since the last reload, the server out of reach: 503, not 401",
          "before: %d, during: %s" % (before, during[:3]))
    server("START")
    after = call(port, token)[0]
    team.stop(process)
    text = log_text(log)
    check(after == 200 and len(re.findall(r"The database cannot be reached", text)) == 1
          and len(re.findall(r"-> 503 database out of reach \(client token not checked\)",
                             text)) == 1,
          "the log says so; once the server is back the token is let in again",
          "after: %d" % after)


def test_stop_waiting(team):
    token = team.add_token("stopped")
    for attempt in range(OUTAGE_TRIES):
        process, log, port = team.serve("stopped%d" % attempt,
                                        "--timeout", str(STOP_BOUND_S * 10))
        # The token is verified, and the request refused before any key is
        # chosen: no snapshot of the keys.
        call(port, token, "GET", "/not-an-api")
        server("STOP")
        answers = []
        client = threading.Thread(target=lambda: answers.append(call(port, token)),
                                  daemon=True)
        client.start()
        # The request asked the server once and waits to ask it again,
        # unless its token had to go back to the server (see
        # OUTAGE_TRIES): then both lines are written at once.
        team.wait_line(log, r"The database cannot be reached")
        time.sleep(1)
        if "client token not checked" not in log_text(log):
            break
        print("# a change was counted just before the outage: once more")
        client.join(STOP_BOUND_S)
        server("START")
        team.stop(process)
    stopped_at = time.monotonic()
    process.send_signal(signal.SIGTERM)
    client.join(STOP_BOUND_S)
    waited = time.monotonic() - stopped_at
    answer = answers[0] if answers else None
    try:
        message = json.loads(answer[2])["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = None
    check(answer is not None and answer[0] == 503 and message == "The gateway is stopping."
          and waited < STOP_BOUND_S,
          "stopped, the gateway answers a request waiting for the server: 503, it stops",
          "answer: %s after %.1f s" % (answer and answer[:3], waited))

    server("START")
    try:
        status = process.wait(STOP_BOUND_S)
    except subprocess.TimeoutExpired:
        status = None
    text = log_text(log)
    check(status == 0 and "Gateway stopped." in text and "are lost" not in text
          and usage_rows("stopped", 503) == 1,
          "then it exits cleanly, the request's row written once the server is back",
          "exit status: %s, 503 rows: %d" % (status, usage_rows("stopped", 503)))


def main():
    print("1..13")
    team = Team("gk-pg-outage-")
    try:
        team.start_mock()
        team.ctl("db", "migrate")
        team.add_key("only", "OK", 1, 5)
        test_rows_full(team)
        test_no_snapshot(team)
        test_token_unchecked(team)
        test_stop_waiting(team)
        if not all(results):
            for process, log in team.processes:
                print("# %s:" % log.name)
                for line in log_text(log).splitlines()[-40:]:
                    print("#   " + line)
    finally:
        team.clean()
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
