#!/usr/bin/env bash
# Redirect latency at fixed offered loads (open loop): the tail that
# closed-loop wrk figures hide. oha sends RATE requests/s whatever the
# server's answers do, and with --latency-correction it measures each
# request from the moment it was due, not from when a busy connection got
# round to sending it (coordinated omission).
#
#   loadtests/fixed_rate.sh                                  # bare, MariaDB and embedded; warm 10k and 20k, cold 5k; each twice
#   STORES=sqlite RATES=10000 RUNS=1 loadtests/fixed_rate.sh # one store, one rate, one run
#   BIN=/tmp/lt-before/linktrack loadtests/fixed_rate.sh     # another build (BARE_BIN then defaults to the one next to it, or set it)
#
# For each store a server mints a pool of PREP_LETTERS letters (10 click
# links each) through the API, then, for each rate and run: PRELOAD s of load
# at that rate (not measured: the event writer and the stats rollup reach the
# steady state they have under that load; events settle 13 s before the
# rollup takes them), then DURATION s measured, at once. Every request is
# `GET /c/<token>` over the pool, with one browser User-Agent (UA). Cold runs
# use a second server on the same data with --cache-bytes 0
# --negative-cache-entries 0. The bare baseline (examples/bare_redirect)
# answers the same requests first.
#
# Reported per run (fixed-rate.tsv, summary in summary.md): offered and
# achieved req/s, p50/p99/p99.9/max (ms), non-302 answers, server CPU µs per
# request (/proc/PID/stat utime+stime), mariadbd CPU µs per request, and the
# events captured/stored/dropped during the run. The summary keeps the better
# (lower p99) of the RUNS runs.
#
# Knobs: STORES [mysql sqlite], RATES [10000 20000], COLD_RATE [5000; empty:
# no cold runs], BARE [1], RUNS [2], DURATION [10], PRELOAD [15],
# CONNECTIONS [64], PREP_LETTERS [20000], UA [Chrome 124 on Windows],
# PORT [18300], DB_PORT [3500], BIN [target/release/linktrack], BARE_BIN
# [examples/bare_redirect next to BIN], SERVE_ARGS [unset: extra serve flags],
# OHA [oha; `cargo install oha --locked`], HOLD_FILE [unset: before each
# measurement, wait while this file exists], PERF [unset; 1: `perf record -g`
# the server during each measured run, into $OUT/perf-*.data; it costs CPU,
# so figures from such a run are not comparable], OUT [/tmp/linktrack-fixed-<time>].
# Only processes this script started are stopped (by PID, on exit).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=loadtests/lib.sh
. "$HERE/lib.sh"
ROOT=$(dirname "$HERE")

STORES=${STORES:-"mysql sqlite"}
RATES=${RATES:-"10000 20000"}
COLD_RATE=${COLD_RATE-5000}
BARE=${BARE:-1}
RUNS=${RUNS:-2}
DURATION=${DURATION:-10}
PRELOAD=${PRELOAD:-15}
CONNECTIONS=${CONNECTIONS:-64}
PREP_LETTERS=${PREP_LETTERS:-20000}
UA=${UA:-"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"}
PORT=${PORT:-18300}
DB_PORT=${DB_PORT:-3500}
BIN=${BIN:-$ROOT/target/release/linktrack}
BARE_BIN=${BARE_BIN:-$(dirname "$BIN")/examples/bare_redirect}
SERVE_ARGS=${SERVE_ARGS:-}
OHA=${OHA:-oha}
HOLD_FILE=${HOLD_FILE:-}
PERF=${PERF:-}
OUT=${OUT:-/tmp/linktrack-fixed-$(date -u +%Y%m%d-%H%M%S)}
API_KEY=lt-loadtest-key-0001
TOKEN_KEYS=1:6c696e6b747261636b2d6c6f6164746573742d6b65792d303030303030303030

command -v "$OHA" >/dev/null || { echo "oha not found: cargo install oha --locked" >&2; exit 2; }
command -v jq >/dev/null || { echo "jq not found" >&2; exit 2; }
[[ -x $BIN ]] || { echo "no linktrack binary at $BIN (cargo build --release)" >&2; exit 2; }
[[ $BARE != 1 || -x $BARE_BIN ]] || { echo "no bare baseline at $BARE_BIN (cargo build --release --example bare_redirect, or BARE=0)" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export LT_MARIADB_STATE=$OUT/mariadb-state LT_MARIADB_PORT=$DB_PORT
TSV=$OUT/fixed-rate.tsv
printf 'target\trate\trun\tachieved\tp50_ms\tp99_ms\tp999_ms\tmax_ms\tnon302\tserver_us_per_req\tmariadbd_us_per_req\tevents_captured/stored/dropped\n' >"$TSV"
TCK=$(getconf CLK_TCK)
SERVER_PID=
DB_STARTED=

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
cleanup() {
    local rc=$?
    stop_server
    [[ -z $DB_STARTED ]] || "$HERE/mariadb.sh" stop >/dev/null 2>&1 || true
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
metric() { curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null | awk -v n="$1" '$1 == n { print $2; found = 1 } END { if (!found) print 0 }'; }
events() { echo "$(metric linktrack_events_captured_total) $(metric linktrack_events_stored_total) $(metric linktrack_events_dropped_total)"; }

start_server() { # NAME DB_URL ARGS...
    local name=$1 url=$2
    shift 2
    # shellcheck disable=SC2086 # SERVE_ARGS is word-split on purpose
    "$BIN" --log-format json serve --database-url "$url" --listen "127.0.0.1:$PORT" --api-keys "$API_KEY" \
        --token-keys "$TOKEN_KEYS" --data-dir "$OUT/data-$name" "$@" $SERVE_ARGS >"$OUT/server-$name.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && { log "server $name up (pid $SERVER_PID)"; return 0; }
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$OUT/server-$name.log" >&2; die "server $name exited during start-up"; }
        sleep 0.2
    done
    die "server $name did not answer /healthz within 20 s"
}

# events_settled NAME: wait (up to 60 s) until every captured event is stored
# or dropped, then note the server's totals in events.txt.
events_settled() {
    local c st dr
    for _ in $(seq 1 600); do
        read -r c st dr <<<"$(events)"
        ((st + dr >= c)) && break
        sleep 0.1
    done
    echo "- $1: events captured $c, stored $st, dropped $dr over the server's life" | tee -a "$OUT/events.txt" >&2
}

stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    if ! term_and_wait "$SERVER_PID" 30; then
        log "server pid $SERVER_PID ignored SIGTERM for 30 s; SIGKILL"
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

wait_hold() {
    [[ -n $HOLD_FILE ]] || return 0
    while [[ -e $HOLD_FILE ]]; do
        log "$HOLD_FILE exists: waiting"
        sleep 30
    done
}

oha_run() { # RATE SECONDS JSON_OUT
    timeout $(($2 + 60)) "$OHA" --no-tui --output-format json -q "$1" -z "$2s" -c "$CONNECTIONS" --latency-correction \
        --redirect 0 -H "User-Agent: $UA" --urls-from-file "$OUT/urls.txt" >"$3" 2>"$3.err" || true
}

# measure TARGET RATE RUN SERVER_PID DB_PID: preload, then one measured run, one TSV line.
measure() {
    local target=$1 rate=$2 run=$3 spid=$4 dpid=$5 s0 s1 d0 d1 e0 e1 json n
    wait_hold
    json=$OUT/oha-$target-$rate-$run.json
    ((PRELOAD > 0)) && oha_run "$rate" "$PRELOAD" "$OUT/preload-$target-$rate-$run.json"
    e0=$(events)
    local perf_pid=
    if [[ -n $PERF && $target != bare ]]; then
        perf record -g -F 499 -o "$OUT/perf-$target-$rate-$run.data" -p "$spid" -- sleep "$DURATION" >"$OUT/perf-$target-$rate-$run.log" 2>&1 &
        perf_pid=$!
    fi
    s0=$(cpu_ticks "$spid"); d0=$(cpu_ticks "$dpid")
    oha_run "$rate" "$DURATION" "$json"
    s1=$(cpu_ticks "$spid"); d1=$(cpu_ticks "$dpid")
    [[ -z $perf_pid ]] || wait "$perf_pid" || true
    e1=$(events)
    [[ -s $json ]] || die "oha wrote nothing for $target $rate run $run: $(head -c 300 "$json.err")"
    n=$(jq '[.statusCodeDistribution[]] | add // 0' "$json")
    jq -r --arg t "$target" --arg r "$rate" --arg run "$run" --argjson n "$n" \
        --argjson sus "$(awk -v a="$s0" -v b="$s1" -v t="$TCK" -v n="$n" 'BEGIN { printf "%.1f", n ? (b - a) / t * 1e6 / n : 0 }')" \
        --arg dus "$(awk -v a="$d0" -v b="$d1" -v t="$TCK" -v n="$n" -v p="$dpid" 'BEGIN { if (p == 0) print "-"; else printf "%.1f", n ? (b - a) / t * 1e6 / n : 0 }')" \
        --arg ev "$(awk -v a="$e0" -v b="$e1" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%d/%d/%d", y[1] - x[1], y[2] - x[2], y[3] - x[3] }')" \
        '[$t, $r, $run, (.summary.requestsPerSec | floor),
          (.latencyPercentiles.p50 * 1000 * 1000 | round / 1000), (.latencyPercentiles.p99 * 1000 * 1000 | round / 1000),
          (.latencyPercentiles["p99.9"] * 1000 * 1000 | round / 1000), (.summary.slowest * 1000 * 1000 | round / 1000),
          ($n - (.statusCodeDistribution["302"] // 0)), $sus, $dus, $ev] | @tsv' "$json" >>"$TSV"
    log "$(tail -n 1 "$TSV")"
}

# ---------------------------------------------------------------- run
log "oha $("$OHA" --version | head -n 1); BIN $BIN ($(date -u -r "$BIN" '+%Y-%m-%d %H:%M')); out $OUT"
if [[ $BARE == 1 ]]; then
    "$BARE_BIN" "127.0.0.1:$PORT" >"$OUT/server-bare.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
    for ((i = 0; i < 1000; i++)); do echo "http://127.0.0.1:$PORT/c/bare$i"; done >"$OUT/urls.txt"
    for ((run = 1; run <= RUNS; run++)); do
        for rate in $RATES $COLD_RATE; do measure bare "$rate" "$run" "$SERVER_PID" 0; done
    done
    stop_server
fi

for store in $STORES; do
    case $store in
        mysql)
            "$HERE/mariadb.sh" start >&2
            DB_STARTED=1
            mariadb --no-defaults -h 127.0.0.1 -P "$DB_PORT" -u root -e "DROP DATABASE IF EXISTS lt_fixed; CREATE DATABASE lt_fixed"
            url="mysql://root@127.0.0.1:$DB_PORT/lt_fixed"
            "$BIN" migrate --database-url "$url" >"$OUT/migrate.log" 2>&1
            dpid=$(cat "$LT_MARIADB_STATE/pid")
            ;;
        sqlite)
            mkdir -p "$OUT/db"
            url="sqlite://$OUT/db/linktrack.db"
            dpid=0
            ;;
        *) die "STORES: mysql or sqlite, not $store" ;;
    esac
    start_server "$store-warm" "$url"
    log "$store: minting $PREP_LETTERS letters for the token pool"
    : >"$OUT/clicks-$store.tsv"
    timeout 900 python3 "$HERE/mint_load.py" --url "http://127.0.0.1:$PORT" --key "$API_KEY" --concurrency 32 \
        --links 10 --count "$PREP_LETTERS" --tokens-out "$OUT/clicks-$store.tsv" >"$OUT/mint-$store.json"
    cut -f1 "$OUT/clicks-$store.tsv" | shuf | sed "s|^|http://127.0.0.1:$PORT/c/|" >"$OUT/urls.txt"
    log "$store: pool of $(wc -l <"$OUT/urls.txt") click tokens"
    for ((run = 1; run <= RUNS; run++)); do
        for rate in $RATES; do measure "$store-warm" "$rate" "$run" "$SERVER_PID" "$dpid"; done
    done
    events_settled "$store-warm"
    stop_server
    if [[ -n $COLD_RATE ]]; then
        start_server "$store-cold" "$url" --cache-bytes 0 --negative-cache-entries 0
        for ((run = 1; run <= RUNS; run++)); do measure "$store-cold" "$COLD_RATE" "$run" "$SERVER_PID" "$dpid"; done
        events_settled "$store-cold"
        stop_server
    fi
    grep -cE '"level":"(WARN|ERROR)"' "$OUT"/server-"$store"-*.log | sed "s|^|WARN/ERROR lines: |" >&2 || true
    if [[ $store == mysql ]]; then
        "$HERE/mariadb.sh" stop >/dev/null
        DB_STARTED=
    fi
done

# The better (lower p99) run of each target and rate.
{
    echo "| target | offered req/s | achieved | p50 ms | p99 ms (better run) | p99.9 ms | max ms | non-302 | server CPU µs/req | mariadbd CPU µs/req | events captured/stored/dropped | p99 of every run |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    awk -F'\t' 'NR > 1 {
        k = $1 "\t" $2
        if (!(k in best) || $6 + 0 < b[k]) { best[k] = $0; b[k] = $6 + 0 }
        all[k] = all[k] (all[k] == "" ? "" : ", ") $6
        if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    }
    END {
        for (i = 1; i <= n; i++) {
            split(best[order[i]], f, "\t")
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f[1], f[2], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12], all[order[i]]
        }
    }' "$TSV"
    [[ ! -s $OUT/events.txt ]] || { echo; cat "$OUT/events.txt"; }
} | tee "$OUT/summary.md"
# Builds with --cfg tokio_unstable log their task poll times when they stop (src/runtime.rs): over each server's life.
if grep -qs '"poll times"' "$OUT"/server-*.log; then
    {
        echo
        echo "Task poll times over each server's life (tokio_unstable build):"
        echo
        for f in "$OUT"/server-*.log; do
            grep '"poll times"' "$f" | jq -r --arg s "$(basename "$f" .log)" '(.fields // .) as $p |
                "- \($s), \($p.runtime) runtime (\($p.workers) workers): \($p.polls) polls; from 100 µs \($p.polls_from_100us), from 500 µs \($p.polls_from_500us), from 1 ms \($p.polls_from_1ms), from 5 ms \($p.polls_from_5ms); slowest bucket starts at \($p.slowest_from_us) µs"'
        done
    } | tee -a "$OUT/summary.md"
fi
log "raw outputs in $OUT"
