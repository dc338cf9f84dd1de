#!/usr/bin/env python3
# Three `gemini-keysctl serve` gateways of a team on one PostgreSQL database
# (tests/pg/pg-cluster.sh's throwaway cluster), under load from one pool of
# clients for GK_PG_LOAD_SECONDS (default 20) against tests/mock-gemini:
#
#  - every 200 a client got has its usage row, and every key's quota
#    counters equal its rows;
#  - a key that Google rate-limits, added while they run, is tried by the
#    gateways for at most about a second: the first 429 any of them sees
#    takes it out of service for all;
#  - a key added from the CLI while they run is used by all three;
#  - PostgreSQL restarted (pg_ctl stop and start) in the middle: nothing
#    answered is lost (rows kept in memory are written when it is back),
#    and each gateway says so once in its log;
#  - each gateway ends cleanly on SIGTERM, however many it gets.
#
# Run through meson (the postgresql suite), TAP on stdout.
#
# SPDX-License-Identifier: GPL-3.0-or-later
import http.client
import os
import re
import sys
import threading
import time

from pgteam import BODY, PATH, Team, check, results, server, sql

LOAD_S = float(os.environ.get("GK_PG_LOAD_SECONDS", "20"))
N_GATEWAYS = 3
N_CLIENTS = 6


class Load:
    """One pool of client threads spreading requests over the gateways."""

    def __init__(self, ports, token):
        self.ports = ports
        self.token = token
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.statuses = {}
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(N_CLIENTS)]

    def run(self, index):
        connections = {}
        turn = index
        while not self.stop.is_set():
            port = self.ports[turn % len(self.ports)]
            turn += 1
            status = 0
            try:
                conn = connections.get(port)
                if conn is None:
                    conn = connections[port] = http.client.HTTPConnection("127.0.0.1", port,
                                                                         timeout=120)
                conn.request("POST", PATH, BODY, {"x-goog-api-key": self.token,
                                                  "Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connections.pop(port, None)
                time.sleep(0.01)
            with self.lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join()


def main():
    print("1..8")
    team = Team("gk-pg-gateways-")
    try:
        team.start_mock()

        team.ctl("db", "migrate")
        first = team.add_key("first", "OK", 1, 5)
        second = team.add_key("second", "OK", 2, 5)
        token = team.add_token("team")

        gateways = [team.serve("gateway%d" % i) for i in range(N_GATEWAYS)]

        with Load([g[2] for g in gateways], token) as load:
            time.sleep(LOAD_S * 0.2)
            limited = team.add_key("limited", "RATEMIN", 3, 10)
            time.sleep(LOAD_S * 0.2)
            added = team.add_key("added", "OK", 4, 9)
            time.sleep(LOAD_S * 0.2)
            server("STOP")
            time.sleep(min(2.0, LOAD_S * 0.1))
            server("START")
            time.sleep(LOAD_S * 0.3)
        # Stopped gateways have written every row they kept.
        team.stop_all()
        statuses = load.statuses
        print("# client statuses: %s" % statuses)

        ok_answers = statuses.get(200, 0)
        rows = int(sql("SELECT count(*) FROM gemini_key_usage_log WHERE http_status = 200"))
        check(ok_answers > 0 and rows == ok_answers,
              "every 200 a client got has its usage row",
              "200s: %d, rows: %d" % (ok_answers, rows))

        mismatched = sql(
            "SELECT k.name || ': ' || q.quota_type || ' ' || q.unit || ' ' || q.used_value"
            " || ' vs ' || CASE q.unit WHEN 'REQUESTS' THEN count(u.id)"
            " ELSE coalesce (sum (u.tokens_used), 0) END"
            " FROM gemini_api_keys k JOIN gemini_key_quotas q ON q.key_id = k.id"
            " LEFT JOIN gemini_key_usage_log u ON u.key_id = k.id AND u.status = 'SUCCESS'"
            " WHERE q.limit_value > 0 GROUP BY k.name, q.quota_type, q.unit, q.used_value"
            " HAVING q.used_value <> CASE q.unit WHEN 'REQUESTS' THEN count(u.id)"
            " ELSE coalesce (sum (u.tokens_used), 0) END")
        check(mismatched == "", "every key's quota counters equal its rows", mismatched)

        spread = sql("SELECT count(*) || ' ' || coalesce (max(created_at) - min(created_at), -1)"
                     " FROM gemini_key_usage_log WHERE key_id = %d" % limited).split()
        check(int(spread[0]) >= 1 and int(spread[1]) <= 1,
              "a 429 seen by one gateway stops all from using the key within 1 s",
              "429 rows: %s, seconds between the first and the last: %s" % tuple(spread))
        rotations = sql("SELECT count(*) FROM gemini_key_rotation_log WHERE from_key_id = %d"
                        % limited)
        check(rotations == "1", "the rate-limited key's rotation is logged once",
              "rotations: " + rotations)

        logs = []
        for _, log, _ in gateways:
            log.seek(0)
            logs.append(log.read())
        users = [bool(re.search(r"-> 200 key=%d " % added, text)) for text in logs]
        check(all(users), "a key added from the CLI is used by every gateway", users)

        exits = [process.returncode for process, _, _ in gateways]
        check(exits == [0] * N_GATEWAYS, "every gateway stops cleanly on SIGTERM",
              "exit statuses %s" % exits)

        outages = [len(re.findall(r"database cannot be reached", text)) for text in logs]
        recoveries = [len(re.findall(r"database can be reached again", text)) for text in logs]
        check(all(n == 1 for n in outages) and all(n == 1 for n in recoveries),
              "each gateway logs the outage and the recovery once",
              "outages %s, recoveries %s" % (outages, recoveries))
        if not all(results):
            for i, text in enumerate(logs):
                lines = [line for line in text.splitlines() if "-> 200" not in line]
                print("# gateway %d, its log without its 200s:" % i)
                for line in lines[:12] + ["…"] + lines[-12:]:
                    print("#   " + line)
        check(sql("SELECT count(*) FROM gemini_key_usage_log WHERE key_id IN (%d, %d)"
                  % (first, second)) != "0", "the first keys served before the others came")
    finally:
        team.clean()
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
