#!/usr/bin/env bash
# Soak: a long stretch of mixed load on a release server, on each store, to
# show that nothing grows that should stay flat. Not run in CI.
#
#   cargo build --release
#   loadtests/soak.sh            # 20 minutes per store, MariaDB then embedded
#   loadtests/soak.sh 3          # 3 minutes per store (the smoke of the script)
#   STORES=sqlite loadtests/soak.sh 10
#
# The load, all at once for the whole duration:
#   - mints: MINT_CLIENTS closed-loop clients (mint_load.py), 5-link letters plus a pixel;
#   - redirects: oha at REDIRECT_RATE req/s over a pool of minted click tokens, browser user agent;
#   - scanner bursts: every BURST_EVERY s, BURST_REQUESTS HEAD then GET requests from
#     64 connections with a mail scanner's user agent, as fast as the server answers;
#   - exports: every EXPORT_EVERY s, the NDJSON export followed from its last cursor
#     (pages of 5000), and every minute one CSV page from the start.
# Every SAMPLE_EVERY (10) s it appends to samples-<store>.csv: the server's RSS and open
# file descriptors (/proc), MariaDB's Threads_connected (the sampler's own connection
# included), and from /metrics the spool bytes and the event queue depth (plus events
# stored and dropped). At the end it draws soak.png (matplotlib, in a venv under
# target/) and prints first, last and peak values per store.
#
# A private MariaDB (mariadb.sh) on DB_PORT with its own datadir, deleted afterwards;
# the embedded store and spool live under OUT and are deleted too (samples, logs and
# the chart stay). Every child is stopped by its PID and has a timeout.
#
# Knobs (environment): STORES [mysql sqlite], REDIRECT_RATE [1000], BURST_EVERY [60],
# BURST_REQUESTS [3000], MINT_CLIENTS [2], EXPORT_EVERY [10], PORT [18400],
# DB_PORT [3610], BIN [target/release/linktrack], OHA, OUT [/tmp/linktrack-soak-<time>],
# SERVE_ARGS [unset]: extra `serve` flags, e.g. `--cache-bytes 33554432` so a short run fills the cache.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=loadtests/lib.sh
. "$here/lib.sh"

MINUTES=${1:-20}
STORES=${STORES:-mysql sqlite}
REDIRECT_RATE=${REDIRECT_RATE:-1000}
BURST_EVERY=${BURST_EVERY:-60}
BURST_REQUESTS=${BURST_REQUESTS:-3000}
MINT_CLIENTS=${MINT_CLIENTS:-2}
EXPORT_EVERY=${EXPORT_EVERY:-10}
SAMPLE_EVERY=10
PORT=${PORT:-18400}
DB_PORT=${DB_PORT:-3610}
BIN=${BIN:-$root/target/release/linktrack}
OHA=${OHA:-$(command -v oha || echo /root/.cargo/bin/oha)}
OUT=${OUT:-/tmp/linktrack-soak-$(date +%Y%m%d-%H%M%S)}
API_KEY=lt-soak-key-0001
TOKEN_KEYS=1:6c696e6b747261636b2d736f616b2d6b65792d30303030303030303030303030
BROWSER_UA="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
SCANNER_UA="Barracuda Sentinel (EE)"
BASE=http://127.0.0.1:$PORT
DURATION=$((MINUTES * 60))

[[ -x $BIN ]] || { echo "soak.sh: $BIN missing: cargo build --release" >&2; exit 1; }
[[ -x $OHA ]] || { echo "soak.sh: oha not found: cargo install oha --locked" >&2; exit 1; }
mkdir -p "$OUT"
export LT_MARIADB_STATE=$OUT/mariadb-state LT_MARIADB_PORT=$DB_PORT

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

SERVER_PID=
# The server process itself (SERVER_PID is the `timeout` wrapping it): what the sampler reads in /proc.
SERVER_PROC=
JOBS=()
cleanup() {
    local p
    for p in "${JOBS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [[ -n $SERVER_PID ]]; then
        term_and_wait "$SERVER_PID" 30 || kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
    "$here/mariadb.sh" status >/dev/null 2>&1 && "$here/mariadb.sh" stop >&2
    rm -rf "$OUT"/*/data "$OUT"/*/db
}
trap cleanup EXIT

metrics() { curl -fsS --max-time 5 "$BASE/metrics" 2>/dev/null || true; }
metric() { awk -v n="$1" '$1 == n { print $2; found = 1 } END { if (!found) print "" }' <<<"$2"; }
mysql_client() { mariadb --no-defaults -h 127.0.0.1 -P "$DB_PORT" -u root "$@"; }

# sample STORE CSV: one row every SAMPLE_EVERY s until the server stops or the load ends.
sampler() {
    local store=$1 csv=$2 t0 m threads
    t0=$(date +%s)
    echo "t_s,rss_kib,open_fds,db_threads_connected,spool_bytes,queue_depth,events_stored,events_dropped" >"$csv"
    while kill -0 "$SERVER_PROC" 2>/dev/null && (($(date +%s) - t0 <= DURATION)); do
        m=$(metrics)
        threads=
        if [[ $store == mysql ]]; then
            threads=$(mysql_client -N -B -e "SHOW GLOBAL STATUS LIKE 'Threads_connected'" 2>/dev/null | awk '{ print $2 }')
        fi
        echo "$(($(date +%s) - t0)),$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PROC/status"),$(find "/proc/$SERVER_PROC/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l),$threads,$(metric linktrack_spool_bytes "$m"),$(metric linktrack_event_queue_depth "$m"),$(metric linktrack_events_stored_total "$m"),$(metric linktrack_events_dropped_total "$m")" >>"$csv"
        sleep "$SAMPLE_EVERY"
    done
}

# Scanner bursts: HEAD then GET, BURST_REQUESTS each, every BURST_EVERY s.
bursts() {
    local urls=$1 out=$2 end=$(($(date +%s) + DURATION)) m
    while (($(date +%s) + BURST_EVERY < end)); do
        sleep "$BURST_EVERY"
        for m in HEAD GET; do
            timeout 120 "$OHA" --no-tui -n "$BURST_REQUESTS" -c 64 -m "$m" -H "User-Agent: $SCANNER_UA" \
                --urls-from-file "$urls" --output-format json >>"$out" 2>&1 || echo "{\"burst_failed\": \"$m\"}" >>"$out"
            echo >>"$out"
        done
    done
}

# Exports: follow the NDJSON stream from its last cursor; one CSV page a minute.
exports() {
    local out=$1 end=$(($(date +%s) + DURATION)) cursor= rows=0 pages=0 errors=0 n last i=0 body
    body=$(mktemp "$OUT/export.XXXXXX")
    while (($(date +%s) < end)); do
        while :; do
            if ! curl -fsS --max-time 60 -H "Authorization: Bearer $API_KEY" \
                "$BASE/v1/events?limit=5000${cursor:+&after=$cursor}" -o "$body"; then
                errors=$((errors + 1))
                break
            fi
            n=$(wc -l <"$body")
            pages=$((pages + 1))
            rows=$((rows + n))
            ((n > 0)) || break
            last=$(tail -n 1 "$body" | jq -r .cursor)
            cursor=$last
            ((n == 5000)) || break
        done
        if ((i % (60 / EXPORT_EVERY) == 0)); then
            curl -fsS --max-time 60 -H "Authorization: Bearer $API_KEY" "$BASE/v1/events?format=csv&limit=10000" -o /dev/null \
                || errors=$((errors + 1))
        fi
        i=$((i + 1))
        echo "{\"export_rows\": $rows, \"pages\": $pages, \"errors\": $errors}" >"$out"
        sleep "$EXPORT_EVERY"
    done
    rm -f "$body"
}

soak_store() {
    local store=$1 dir=$OUT/$1 db
    mkdir -p "$dir/data" "$dir/db"
    if [[ $store == mysql ]]; then
        "$here/mariadb.sh" start >&2
        mysql_client -e "CREATE DATABASE lt_soak"
        db="$("$here/mariadb.sh" url)lt_soak"
    else
        db="sqlite://$dir/db/linktrack.db"
    fi
    timeout $((DURATION + 600)) "$BIN" --log-format json serve --database-url "$db" --listen "127.0.0.1:$PORT" \
        --api-keys "$API_KEY" --token-keys "$TOKEN_KEYS" --data-dir "$dir/data" ${SERVE_ARGS:-} >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 150); do
        curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$dir/server.log" >&2; exit 1; }
        sleep 0.2
    done
    SERVER_PROC=$(pgrep -P "$SERVER_PID" | head -n 1)
    [[ -n $SERVER_PROC ]] || { echo "soak.sh: no server process under timeout pid $SERVER_PID" >&2; exit 1; }
    log "$store: server pid $SERVER_PROC up; minting the redirect pool"
    timeout 300 python3 "$here/mint_load.py" --url "$BASE" --key "$API_KEY" --concurrency 8 --count 2000 --links 5 --pixel \
        --tokens-out "$dir/pool.tsv" >"$dir/pool.json"
    awk -F'\t' -v b="$BASE" '{ print b "/c/" $1 }' "$dir/pool.tsv" >"$dir/urls.txt"
    log "$store: $(wc -l <"$dir/urls.txt") pool links; ${MINUTES} min of mixed load"

    JOBS=()
    sampler "$store" "$OUT/samples-$store.csv" &
    JOBS+=($!)
    timeout $((DURATION + 120)) python3 "$here/mint_load.py" --url "$BASE" --key "$API_KEY" --concurrency "$MINT_CLIENTS" \
        --duration "$DURATION" --links 5 --pixel --start 1000000 >"$dir/mint.json" &
    JOBS+=($!)
    timeout $((DURATION + 120)) "$OHA" --no-tui -z "${DURATION}s" -q "$REDIRECT_RATE" -c 16 -H "User-Agent: $BROWSER_UA" \
        --urls-from-file "$dir/urls.txt" --output-format json >"$dir/redirects.json" 2>&1 &
    JOBS+=($!)
    bursts "$dir/urls.txt" "$dir/bursts.jsonl" &
    JOBS+=($!)
    exports "$dir/exports.json" &
    JOBS+=($!)
    local p
    for p in "${JOBS[@]}"; do wait "$p" || log "$store: a load job exited with $?"; done
    JOBS=()
    log "$store: load done; stopping the server"
    term_and_wait "$SERVER_PID" 30 || kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    [[ $store != mysql ]] || "$here/mariadb.sh" stop >&2
    rm -rf "$dir/data" "$dir/db"
    {
        echo "$store: mint $(jq -c "{letters_ok, letters_per_s, statuses, p99_ms}" "$dir/mint.json" 2>/dev/null || head -c 300 "$dir/mint.json")"
        echo "$store: redirects $(jq -c '{rps: .summary.requestsPerSec, success: .summary.successRate, p99_s: .latencyPercentiles.p99, statuses: .statusCodeDistribution}' "$dir/redirects.json" 2>/dev/null || head -c 300 "$dir/redirects.json")"
        echo "$store: scanner bursts $(jq -sc '[.[] | select(.summary) | {rps: .summary.requestsPerSec, statuses: .statusCodeDistribution}]' "$dir/bursts.jsonl" 2>/dev/null || echo '?')"
        echo "$store: exports $(cat "$dir/exports.json" 2>/dev/null || echo '?')"
    } | tee -a "$OUT/summary.txt" >&2
}

{
    echo "commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, $MINUTES min per store, serve ${SERVE_ARGS:-(defaults)}"
    echo "load: redirects $REDIRECT_RATE/s, scanner bursts of $BURST_REQUESTS HEAD + $BURST_REQUESTS GET every ${BURST_EVERY}s, $MINT_CLIENTS mint clients, export every ${EXPORT_EVERY}s"
} | tee "$OUT/summary.txt" >&2
for store in $STORES; do
    soak_store "$store"
done

venv=$root/target/soak-venv
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check matplotlib
fi
csvs=()
for store in $STORES; do csvs+=("$OUT/samples-$store.csv"); done
"$venv/bin/python" "$here/plot_soak.py" --out "$OUT/soak.png" "${csvs[@]}" | tee -a "$OUT/summary.txt"
log "results in $OUT (summary.txt, samples-*.csv, soak.png)"
