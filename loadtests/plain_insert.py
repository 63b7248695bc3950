#!/usr/bin/env python3
"""Plain-client INSERT baseline for the spec's mint target (stdlib only).

Writes the rows `linktrack` writes for a mint, straight into the service's
schema, with no HTTP and no service in between:

  one `letters` row + N `links` rows (N-1 clicks with a fixed url_id, plus the
  open pixel with url_id 0), as one multi-row INSERT, in one transaction,
  COMMIT per letter (autocommit off, server durability unchanged).

Each client is one `mariadb` CLI process (C client, text protocol, one
connection) fed SQL on stdin, closed loop: the next letter is sent only after
the previous one's COMMIT has returned. Completion is observed with a
`SELECT <n>` after the COMMIT (one extra round trip per letter). The urls
dedup the service does per letter (INSERT ... ON DUPLICATE KEY + SELECT) is
skipped: every click row points at one pre-inserted `urls` row.

  plain_insert.py --port 3394 --db lt_plain --clients 32 --links 11 --duration 20
  plain_insert.py --port 3394 --db lt_plain --clients 8 --links 1000 --duration 20

The schema must exist (`linktrack migrate` and `linktrack partitions`).
Prints one JSON object: letters/s, links/s, latency percentiles, errors.
"""
import argparse
import json
import os
import subprocess
import threading
import time

EPOCH_OFFSET_DAYS = 18262  # 2020-01-01, as src/day.rs


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def client_cmd(args):
    return ["mariadb", "--no-defaults", "-h", args.host, "-P", str(args.port), "-u", args.user,
            "-N", "-B", "-n", args.db]


def worker(idx, args, day, url_id, deadline, out):
    lat = []
    done = 0
    err = None
    p = subprocess.Popen(client_cmd(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, bufsize=1)
    try:
        p.stdin.write("SET autocommit=0;\n")
        n = 0
        while time.monotonic() < deadline:
            n += 1
            recipient = "user%d-%d@example.com" % (idx, n)
            mailing = "m-%d" % (n % 100)
            rows = []
            for i in range(args.links):
                pixel = args.pixel and i == args.links - 1
                rows.append("(%d,X'%s',%d,%d,LAST_INSERT_ID())" % (
                    day, os.urandom(16).hex(), 2 if pixel else 1, 0 if pixel else url_id))
            sql = ("INSERT INTO letters (day, minted_at, mailing_id, recipient, meta) VALUES (%d,%d,'%s','%s',NULL);\n"
                   "INSERT INTO links (day, rnd, kind, url_id, letter_id) VALUES %s;\n"
                   "COMMIT;\nSELECT %d;\n") % (day, int(time.time()), mailing, recipient, ",".join(rows), n)
            t0 = time.monotonic()
            p.stdin.write(sql)
            p.stdin.flush()
            line = p.stdout.readline()
            if line.strip() != str(n):
                err = "client %d: expected %d, got %r; stderr: %s" % (idx, n, line, p.stderr.read()[:500])
                break
            lat.append(time.monotonic() - t0)
            done += 1
    except (BrokenPipeError, OSError) as e:
        err = "client %d: %s" % (idx, e)
    finally:
        try:
            p.stdin.close()
        except OSError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    out[idx] = (done, lat, err)


def mysql(args, sql):
    return subprocess.run(client_cmd(args), input=sql, text=True, capture_output=True, check=True).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=3394)
    ap.add_argument("--user", default="root")
    ap.add_argument("--db", default="lt_plain")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--links", type=int, default=11, help="links rows per letter, pixel included")
    ap.add_argument("--no-pixel", dest="pixel", action="store_false", help="all rows are clicks")
    ap.add_argument("--duration", type=float, default=20)
    args = ap.parse_args()

    day = int(time.time()) // 86400 - EPOCH_OFFSET_DAYS
    mysql(args, "INSERT INTO urls (day, hash, url) VALUES (%d, UNHEX(MD5('plain')), "
                "'https://shop.example/item/3?utm_source=mail') ON DUPLICATE KEY UPDATE id = id;\n" % day)
    url_id = int(mysql(args, "SELECT id FROM urls WHERE day = %d AND hash = UNHEX(MD5('plain'));\n" % day).strip())
    before = int(mysql(args, "SELECT COUNT(*) FROM letters;\n").strip())

    out = {}
    t_start = time.monotonic()
    deadline = t_start + args.duration
    cpu0 = os.times()
    threads = [threading.Thread(target=worker, args=(i, args, day, url_id, deadline, out)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t_start
    cpu1 = os.times()

    letters = sum(v[0] for v in out.values())
    lat = sorted(x for v in out.values() for x in v[1])
    errors = [v[2] for v in out.values() if v[2]]
    after = int(mysql(args, "SELECT COUNT(*) FROM letters;\n").strip())
    orphans = int(mysql(args, "SELECT COUNT(*) FROM links l LEFT JOIN letters t ON t.id = l.letter_id AND t.day = l.day "
                              "WHERE l.day = %d AND t.id IS NULL;\n" % day).strip())
    gen_cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    cli_cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
    res = {
        "clients": args.clients,
        "links_per_letter": args.links,
        "pixel": args.pixel,
        "elapsed_s": round(elapsed, 3),
        "letters": letters,
        "letters_in_db_delta": after - before,
        "letters_per_s": round(letters / elapsed, 1),
        "links_per_s": round(letters * args.links / elapsed, 1),
        "p50_ms": round(pct(lat, 50) * 1000, 2) if lat else None,
        "p99_ms": round(pct(lat, 99) * 1000, 2) if lat else None,
        "max_ms": round(lat[-1] * 1000, 2) if lat else None,
        "orphan_links": orphans,
        "errors": errors,
        "cpu_python_pct": round(100 * gen_cpu / elapsed, 1),
        "cpu_mariadb_cli_pct": round(100 * cli_cpu / elapsed, 1),
    }
    print(json.dumps(res))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
