#!/usr/bin/env bash
# What one statement costs MariaDB as a table's partition count grows, with
# the rows in memory: the resolve's shape (links_v2 joined to urls, both
# pinned to one day) as a server-side prepared statement, N executions on
# one connection, against copies of linktrack's own schema with 30, 98 (the
# default 90 days kept + 7 ahead + today) and 365 day partitions, 2000 links
# a day. Optional PERF=1 records mariadbd with perf during the 365 run.
#
#   loadtests/partition_overhead.sh            # prints µs per statement for each count, twice (ABAB)
#   PERF=1 N=20000 loadtests/partition_overhead.sh
#
# Starts its own MariaDB (mariadb.sh, DB_PORT default 3602), builds and
# runs `linktrack migrate` for the schema, and
# stops the server by PID at the end.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
N=${N:-5000}
OUT=${OUT:-$(mktemp -d /tmp/linktrack-partition-overhead.XXXXXX)}
export LT_MARIADB_STATE=$OUT/mariadb-state LT_MARIADB_PORT=${DB_PORT:-3602}
"$here/mariadb.sh" start >&2
trap '"$here/mariadb.sh" stop >&2' EXIT
M=(mariadb --no-defaults -h 127.0.0.1 -P "$LT_MARIADB_PORT" -u root)
BIN=${BIN:-$root/target/release/linktrack}
[[ -x $BIN ]] || (cd "$root" && cargo build -q --release --bin linktrack)
for days in 30 98 365; do
    db=p$days
    "${M[@]}" -e "CREATE DATABASE $db"
    url="mysql://root@127.0.0.1:$LT_MARIADB_PORT/$db"
    "$BIN" migrate --database-url "$url" >/dev/null
    # Partitions for the last $days days through tomorrow, named as the service names them
    # (it never creates past days itself, so the table is re-partitioned while empty).
    python3 - "$db" "$days" >"$OUT/fill-$db.sql" <<'PY'
import sys, datetime
db, days = sys.argv[1], int(sys.argv[2])
epoch = datetime.date(2020, 1, 1)  # linktrack's day 0
today = (datetime.datetime.now(datetime.timezone.utc).date() - epoch).days
name = lambda d: "p" + (epoch + datetime.timedelta(days=d)).strftime("%Y%m%d")
tables = ["links", "links_v2", "urls", "letters", "idempotency", "user_agents", "events", "event_batches", "link_seen"]
for t in tables:
    defs = ["PARTITION p_start VALUES LESS THAN (1)"] + [f"PARTITION {name(d)} VALUES LESS THAN ({d + 1})" for d in range(today - days + 1, today + 2)]
    print(f"ALTER TABLE {t} PARTITION BY RANGE (day) ({', '.join(defs)});")
lid = 1
for d in range(today - days + 1, today + 1):
    print(f"INSERT INTO urls (id, day, hash, url) VALUES ({d}, {d}, UNHEX(MD5('{d}')), 'https://shop.example/{d}');")
    rows = ",".join(f"({lid + i}, {d}, UNHEX('00112233445566778899'), 1, {d}, 1)" for i in range(2000))
    print(f"INSERT INTO links_v2 (id, day, secret, kind, url_id, letter_id) VALUES {rows};")
    lid += 2000
print(f"SELECT {today}, {lid - 1000};")
PY
    "${M[@]}" "$db" -N <"$OUT/fill-$db.sql" | tail -1 >"$OUT/probe-$db"
    nparts=$("${M[@]}" -N -e "SELECT COUNT(*) FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA='$db' AND TABLE_NAME='links_v2'")
    read -r d i <"$OUT/probe-$db"
    python3 - "$db" "$d" "$i" "$N" >"$OUT/loop-$db.sql" <<'PY'
import sys
db, d, i, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
print(f"use {db};")
print('PREPARE s FROM "SELECT l.secret, l.kind, l.letter_id, u.url FROM links_v2 l LEFT JOIN urls u ON u.id = l.url_id AND u.day = ? WHERE l.day = ? AND l.id = ?";')
print(f"SET @d={d}, @i={i};")
print("EXECUTE s USING @d, @d, @i;\n" * n, end="")
PY
    echo "$db: $nparts partitions of links_v2, probe day $d id $i" >&2
done
pid=$(cat "$LT_MARIADB_STATE/pid")
for round in 1 2; do
    for days in 30 98 365; do
        if [[ ${PERF:-0} == 1 && $days == 365 && $round == 2 ]]; then
            perf record -F 1999 -g -p "$pid" -o "$OUT/perf-365.data" -- sleep 600 >/dev/null 2>&1 &
            perf_pid=$!
            sleep 0.5
        fi
        c0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
        s=$(date +%s%N)
        "${M[@]}" <"$OUT/loop-p$days.sql" >/dev/null
        e=$(date +%s%N)
        c1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
        if [[ -n ${perf_pid:-} ]]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; perf_pid=; fi
        awk -v days="$days" -v round="$round" -v n="$N" -v ns=$((e - s)) -v ticks=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" \
            'BEGIN { printf "round %d: %3d day partitions: %7.1f us per statement (wall), mariadbd CPU %7.1f us per statement\n", round, days, ns / n / 1000, ticks / hz * 1e6 / n }'
    done
done
if [[ ${PERF:-0} == 1 ]]; then
    perf report -i "$OUT/perf-365.data" --no-children --sort symbol --stdio -g none 2>/dev/null | grep -v '^#' | grep '%' | head -25 >"$OUT/perf-365-top.txt"
    echo "perf top symbols (365 partitions): $OUT/perf-365-top.txt" >&2
    cat "$OUT/perf-365-top.txt"
fi
