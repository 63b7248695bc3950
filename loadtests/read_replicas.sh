#!/usr/bin/env bash
# Cold redirects with reads on a MariaDB read replica against the primary
# alone (issue 17, step 2): throughput, and the primary's CPU per cold
# redirect in each case.
#
#   loadtests/read_replicas.sh
#   ROUNDS=3 DURATION=20 CONNECTIONS=32 loadtests/read_replicas.sh
#
# A private primary (binary log, GTID) and a private replica (GTID
# replication over loopback), both with a 128 MiB buffer pool, started with
# loadtests/mariadb.sh in their own state directories. A token pool of
# LETTERS letters (10 click links each, ~40 B of link row each: far inside
# the buffer pool on both servers) is minted once, and the replica catches up.
# Then the same cold load (wrk, Zipf over the pool, `--cache-bytes 0
# --negative-cache-entries 0`, so every redirect is one resolve plus its
# event) runs against a fresh `linktrack serve` per run, alternating
#   primary, replica, primary, replica, ...   (ROUNDS pairs, ABAB)
# "primary": no --read-database-url; "replica": --read-database-url set.
# Each run measures redirects/s (wrk) and the CPU of the primary's and the
# replica's mariadbd (/proc/PID/stat utime+stime) from the start of the load
# until every captured event is stored, divided by the redirects served.
# Events are written to the primary in both modes.
#
# Knobs: BIN [target/release/linktrack], ROUNDS [2], DURATION [15],
# CONNECTIONS [32], LETTERS [10000], PORT [18191], PRIMARY_PORT [3395],
# REPLICA_PORT [3396], OUT [/tmp/linktrack-read-replicas-<time>].
# Loopback only; bounded (every wrk and wait has a timeout); stops by itself.
# Only processes this script started are stopped, by PID (also on exit).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=loadtests/lib.sh
. "$HERE/lib.sh"
BIN=${BIN:-$ROOT/target/release/linktrack}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-32}
LETTERS=${LETTERS:-10000}
PORT=${PORT:-18191}
PRIMARY_PORT=${PRIMARY_PORT:-3395}
REPLICA_PORT=${REPLICA_PORT:-3396}
OUT=${OUT:-/tmp/linktrack-read-replicas-$(date -u +%Y%m%d-%H%M%S)}
API_KEY=lt-loadtest-key-0001
TOKEN_KEYS=1:6c696e6b747261636b2d6c6f6164746573742d6b65792d303030303030303030
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TCK=$(getconf CLK_TCK)
SERVER_PID=
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "read_replicas.sh: $*"; exit 1; }
[[ -x $BIN ]] || die "no binary at $BIN (cargo build --release)"
for tool in wrk jq curl mariadb python3; do command -v "$tool" >/dev/null || die "$tool not found"; done

db() { LT_MARIADB_STATE=$OUT/$1 LT_MARIADB_PORT=$2 "$HERE/mariadb.sh" "${@:3}"; }
sql() { local port=$1; shift; mariadb --no-defaults -h 127.0.0.1 -P "$port" -u root -N -B "$@"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
metric() { curl -fsS "http://127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 == n { print $2; f = 1 } END { if (!f) print 0 }'; }
cleanup() {
    [[ -z $SERVER_PID ]] || { term_and_wait "$SERVER_PID" 15 || kill -KILL "$SERVER_PID" 2>/dev/null || true; }
    db replica "$REPLICA_PORT" stop >/dev/null 2>&1 || true
    db primary "$PRIMARY_PORT" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

start_server() { # NAME ARGS...
    local name=$1
    shift
    "$BIN" --log-format json serve --database-url "mysql://root@127.0.0.1:$PRIMARY_PORT/lt_bench" \
        --listen "127.0.0.1:$PORT" --api-keys "$API_KEY" --token-keys "$TOKEN_KEYS" --data-dir "$OUT/data-$name" \
        --ready-check-ms 500 --rollup-interval-ms 3600000 "$@" >"$OUT/server-$name.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 150); do
        curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$OUT/server-$name.log" >&2; die "server $name exited during start-up"; }
        sleep 0.2
    done
    die "server $name not ready within 30 s"
}
stop_server() {
    term_and_wait "$SERVER_PID" 15 || kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# ---- the pair
log "output: $OUT"
LT_MARIADB_EXTRA="--log-bin=primary-bin --server-id=1 --binlog-format=ROW" db primary "$PRIMARY_PORT" start >&2
[[ $(sql "$PRIMARY_PORT" -e 'SELECT @@log_bin') == 1 ]] || die "the primary has no binary log"
LT_MARIADB_EXTRA="--server-id=2 --relay-log=replica-relay-bin --skip-slave-start" db replica "$REPLICA_PORT" start >&2
sql "$REPLICA_PORT" -e "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$PRIMARY_PORT, MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE"
PRIMARY_PID=$(cat "$OUT/primary/pid")
REPLICA_PID=$(cat "$OUT/replica/pid")
caught_up() { sql "$REPLICA_PORT" -e "SELECT MASTER_GTID_WAIT('$(sql "$PRIMARY_PORT" -e 'SELECT @@gtid_binlog_pos')', 120)" | grep -qx 0; }
sql "$PRIMARY_PORT" -e "CREATE DATABASE lt_bench"
"$BIN" migrate --database-url "mysql://root@127.0.0.1:$PRIMARY_PORT/lt_bench" >"$OUT/migrate.log" 2>&1
caught_up || die "the replica did not catch up with the schema"

# ---- the token pool, minted once through the primary
start_server mint
log "minting $LETTERS letters"
timeout 600 python3 "$HERE/mint_load.py" --url "http://127.0.0.1:$PORT" --key "$API_KEY" --concurrency 16 --links 10 \
    --count "$LETTERS" --tokens-out "$OUT/clicks.tsv" >"$OUT/mint.json"
stop_server
shuf --random-source=<(yes) "$OUT/clicks.tsv" | cut -f1 >"$OUT/pool.txt"
caught_up || die "the replica did not catch up with the mints"
LINKS_MB=$(sql "$PRIMARY_PORT" -e "SELECT ROUND(SUM(DATA_LENGTH + INDEX_LENGTH) / 1048576, 1) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'lt_bench'")
log "pool: $(wc -l <"$OUT/pool.txt") click tokens; lt_bench is $LINKS_MB MiB (buffer pool 128 MiB)"

SUMMARY=$OUT/summary.tsv
printf 'run\tmode\tredirects/s\tp99 ms\tnon-3xx+errors\tprimary CPU µs/redirect\treplica CPU µs/redirect\treplica reads\tprimary retries\tfallbacks\tloadavg before\n' >"$SUMMARY"
one_run() { # LABEL MODE
    local label=$1 mode=$2 args=(--cache-bytes 0 --negative-cache-entries 0)
    [[ $mode == replica ]] && args+=(--read-database-url "mysql://root@127.0.0.1:$REPLICA_PORT/lt_bench")
    start_server "$label" "${args[@]}"
    if [[ $mode == replica ]]; then
        for _ in $(seq 1 50); do
            [[ $(curl -fsS "http://127.0.0.1:$PORT/readyz" | jq -r '.read_replicas[0].state') == serving ]] && break
            sleep 0.2
        done
        [[ $(curl -fsS "http://127.0.0.1:$PORT/readyz" | jq -r '.read_replicas[0].state') == serving ]] || die "$label: the replica is not serving"
    fi
    local load p0 r0 p1 r1 stored0 captured t0
    load=$(cut -d' ' -f1 /proc/loadavg)
    stored0=$(metric linktrack_events_stored_total)
    p0=$(cpu_ticks "$PRIMARY_PID"); r0=$(cpu_ticks "$REPLICA_PID"); t0=$(date +%s)
    WRK_STRICT=1 timeout $((DURATION + 60)) wrk -t 2 -c "$CONNECTIONS" -d "${DURATION}s" --latency --timeout 5s \
        -s "$HERE/zipf.lua" "http://127.0.0.1:$PORT" -- "$OUT/pool.txt" 1.1 200000 /c/ >"$OUT/wrk-$label.txt" 2>&1 || true
    # Until every event of the load is stored (at most 60 s): its insert is part of a redirect's cost.
    for _ in $(seq 1 600); do
        captured=$(metric linktrack_events_captured_total)
        [[ $(metric linktrack_event_queue_depth) == 0 && $(($(metric linktrack_events_stored_total) - stored0)) -ge $captured ]] && break
        sleep 0.1
    done
    caught_up || log "$label: the replica did not catch up within 120 s"
    p1=$(cpu_ticks "$PRIMARY_PID"); r1=$(cpu_ticks "$REPLICA_PID")
    local j reqs
    j=$(sed -n 's/^WRK_JSON //p' "$OUT/wrk-$label.txt")
    [[ -n $j ]] || { cat "$OUT/wrk-$label.txt" >&2; die "wrk failed in $label"; }
    reqs=$(jq -r .requests <<<"$j")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$mode" "$(jq -r .rps <<<"$j")" "$(jq -r '.p99_us / 1000' <<<"$j")" \
        "$(jq -r '.unexpected_status + .err_connect + .err_read + .err_write + .err_timeout' <<<"$j")" \
        "$(awk -v d=$((p1 - p0)) -v t="$TCK" -v n="$reqs" 'BEGIN { printf "%.1f", d / t * 1e6 / n }')" \
        "$(awk -v d=$((r1 - r0)) -v t="$TCK" -v n="$reqs" 'BEGIN { printf "%.1f", d / t * 1e6 / n }')" \
        "$(curl -fsS "http://127.0.0.1:$PORT/metrics" | awk '/^linktrack_read_replica_reads_total/ { s += $2 } END { print s + 0 }')" \
        "$(curl -fsS "http://127.0.0.1:$PORT/metrics" | awk '/^linktrack_read_primary_retries_total/ { s += $2 } END { print s + 0 }')" \
        "$(metric linktrack_read_primary_fallbacks_total)" "$load" >>"$SUMMARY"
    log "$(tail -n 1 "$SUMMARY")"
    stop_server
}
for ((i = 1; i <= ROUNDS; i++)); do
    one_run "$i-primary" primary
    one_run "$i-replica" replica
done

{
    echo "# Cold redirects: reads on a read replica vs the primary alone"
    echo
    echo "- date (UTC): $(date -u '+%Y-%m-%d %H:%M'); commit $(git -C "$ROOT" rev-parse --short HEAD); binary $BIN"
    echo "- machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), shared with other engineers' builds (load average at each run start in the table)"
    echo "- $(sql "$PRIMARY_PORT" -e 'SELECT VERSION()'), primary and replica on the same machine, 128 MiB buffer pool each, GTID replication on loopback"
    echo "- pool: $(wc -l <"$OUT/pool.txt") click tokens (lt_bench $LINKS_MB MiB), Zipf s=1.1, --cache-bytes 0 --negative-cache-entries 0, $CONNECTIONS connections, ${DURATION} s per run, ABAB"
    echo "- CPU per redirect: mariadbd utime+stime from the load's start until its events are stored and replicated, over the redirects served"
    echo
    awk -F'\t' 'NR == 1 { printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; printf "\n|"; for (i = 1; i <= NF; i++) printf "---|"; printf "\n"; next }
        { printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; printf "\n" }' "$SUMMARY"
    echo
    awk -F'\t' 'NR > 1 { n[$2]++; rps[$2] += $3; p[$2] += $6; r[$2] += $7 }
        END { for (m in n) printf "- mean %s: %.0f redirects/s, primary %.1f µs and replica %.1f µs of mariadbd CPU per redirect\n", m, rps[m] / n[m], p[m] / n[m], r[m] / n[m] }' "$SUMMARY" | sort
} | tee "$OUT/results.md"
log "raw outputs in $OUT"
