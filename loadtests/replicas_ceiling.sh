#!/usr/bin/env bash
# The event writer's hot row, measured (issue 17): every event insert takes
# the `locks` row `event_writer` FOR UPDATE, so event writes from all
# replicas run one at a time. This script puts the same total redirect load
# (three wrk processes, Zipf over a minted token pool, CONNECTIONS connections
# in all) on ONE
# replica, then split over THREE, alternated (1, 3, 1, 3, ... ROUNDS times),
# with three replicas running in both cases (only the load moves), and
# reports per run:
#   redirects/s, events persisted/s during the window (event rows counted in
#   the store before and after), how long the store took to catch up with
#   every answered hit after the load stopped, events dropped (the replicas'
#   /metrics), and InnoDB row-lock waits and wait time in the window
#   (SHOW GLOBAL STATUS; the event_writer row is the only contended row lock
#   on this path).
# Everything on loopback, on a private MariaDB (mariadb.sh) deleted at exit;
# every process it starts is stopped by its PID.
#
# Knobs: BIN [target/release/linktrack], DURATION [15] s per run, ROUNDS [2],
# CONNECTIONS [48], LETTERS [2000] (10 links each: the token pool),
# SERVE_ARGS [unset] extra flags for every replica (e.g. a short
# --event-flush-ms for many small event transactions), PORT [18400] (three
# consecutive ports), DB_PORT [3620], OUT [/tmp/linktrack-ceiling-<time>].
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=loadtests/lib.sh
source "$HERE/lib.sh"

BIN=${BIN:-$ROOT/target/release/linktrack}
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-48}
LETTERS=${LETTERS:-2000}
PORT=${PORT:-18400}
DB_PORT=${DB_PORT:-3620}
OUT=${OUT:-/tmp/linktrack-ceiling-$(date +%Y%m%d-%H%M%S)}
API_KEY=ceiling-api-key-0123456789
TOKEN_KEYS=1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f

[[ -x $BIN ]] || { echo "no $BIN: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk not found" >&2; exit 1; }
mkdir -p "$OUT"
export LT_MARIADB_STATE="$OUT/mariadb" LT_MARIADB_PORT=$DB_PORT
DB="mysql://root@127.0.0.1:$DB_PORT/lt"
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do term_and_wait "$pid" 30 || kill -KILL "$pid" 2>/dev/null || true; done
    "$HERE/mariadb.sh" stop >/dev/null 2>&1 || true
    rm -rf "$OUT/mariadb" "$OUT"/data-*
}
trap cleanup EXIT

sql() { timeout 60 mariadb -h127.0.0.1 -P"$DB_PORT" -uroot -N -B lt -e "$1"; }
status() { sql "SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_row_lock_waits', 'Innodb_row_lock_time')" | awk '{ printf "%s ", $2 } END { print "" }'; }
events() { sql "SELECT COUNT(*) FROM events"; }
dropped() { # sum of linktrack_events_dropped_total over the replicas
    local i n=0 v
    for i in 0 1 2; do
        v=$(curl -s "http://127.0.0.1:$((PORT + i))/metrics" | awk '$1 == "linktrack_events_dropped_total" { print $2 }')
        n=$((n + ${v:-0}))
    done
    echo "$n"
}

"$HERE/mariadb.sh" start >"$OUT/mariadb-start.log"
timeout 60 mariadb -h127.0.0.1 -P"$DB_PORT" -uroot -e "CREATE DATABASE lt"
"$BIN" migrate --database-url "$DB" >"$OUT/migrate.log" 2>&1

for i in 0 1 2; do
    # shellcheck disable=SC2086
    timeout $((ROUNDS * 2 * (DURATION + 200) + 300)) "$BIN" --log-format json serve --database-url "$DB" \
        --listen "127.0.0.1:$((PORT + i))" --api-keys "$API_KEY" --token-keys "$TOKEN_KEYS" \
        --data-dir "$OUT/data-$i" ${SERVE_ARGS:-} >"$OUT/server-$i.log" 2>&1 &
    PIDS+=($!)
done
for i in 0 1 2; do
    for _ in $(seq 1 240); do
        curl -sf "http://127.0.0.1:$((PORT + i))/healthz" >/dev/null && break
        sleep 0.25
    done
    curl -sf "http://127.0.0.1:$((PORT + i))/healthz" >/dev/null || { echo "replica $i did not start; see $OUT/server-$i.log" >&2; exit 1; }
done

timeout 600 python3 "$HERE/mint_load.py" --url "http://127.0.0.1:$PORT" --key "$API_KEY" --concurrency 16 \
    --count "$LETTERS" --links 10 --distinct-urls 10 --tokens-out "$OUT/tokens.tsv" >"$OUT/mint.json"
shuf "$OUT/tokens.tsv" | cut -f1 >"$OUT/tokens.txt"
echo "minted $(wc -l <"$OUT/tokens.txt") tokens" >&2

# Warm every replica's cache once, so both modes measure warm redirects.
for i in 0 1 2; do
    timeout 120 wrk -t1 -c8 -d5s -s "$HERE/zipf.lua" "http://127.0.0.1:$((PORT + i))" -- "$OUT/tokens.txt" >/dev/null
done

TSV="$OUT/ceiling.tsv"
printf 'run\treplicas\tredirects_per_s\tevents_persisted_per_s\tcatch_up_s\tdropped\trow_lock_waits\trow_lock_wait_ms\n' >"$TSV"

one_run() { # RUN REPLICAS
    local run=$1 n=$2 i per c0 c1 s0 s1 d0 d1 served=0 t0 t1 caught
    # The same load generator in both modes: three single-thread wrk
    # processes; with one replica all three aim at it.
    per=$((CONNECTIONS / 3))
    # Let the previous run's events and rollup settle first.
    sleep 3
    c0=$(events); s0=$(status); d0=$(dropped)
    local wpids=()
    for i in 0 1 2; do
        timeout $((DURATION + 60)) wrk -t1 -c"$per" -d"${DURATION}s" -s "$HERE/zipf.lua" "http://127.0.0.1:$((PORT + i % n))" -- "$OUT/tokens.txt" \
            >"$OUT/wrk-$run-$n-$i.txt" 2>&1 &
        wpids+=($!)
    done
    for i in "${wpids[@]}"; do wait "$i"; done
    c1=$(events); s1=$(status)
    t0=$(date +%s.%N)
    for i in 0 1 2; do
        served=$((served + $(sed -n 's/^WRK_JSON //p' "$OUT/wrk-$run-$n-$i.txt" | jq .requests)))
    done
    # Catch-up: until every answered hit is a row (wrk's requests include a few
    # cut off at the end that were never answered, so allow 1 per connection).
    caught=no
    for _ in $(seq 1 600); do
        if (($(events) - c0 >= served - CONNECTIONS)); then caught=yes; break; fi
        sleep 0.2
    done
    t1=$(date +%s.%N)
    d1=$(dropped)
    read -r w0 wt0 <<<"$s0"
    read -r w1 wt1 <<<"$s1"
    printf '%s\t%s\t%.0f\t%.0f\t%s\t%s\t%s\t%s\n' "$run" "$n" "$(echo "$served / $DURATION" | bc -l)" \
        "$(echo "($c1 - $c0) / $DURATION" | bc -l)" "$( [[ $caught == yes ]] && printf '%.1f' "$(echo "$t1 - $t0" | bc -l)" || echo '>120')" \
        "$((d1 - d0))" "$((w1 - w0))" "$((wt1 - wt0))" | tee -a "$TSV" >&2
}

run=0
for ((r = 1; r <= ROUNDS; r++)); do
    for n in 1 3; do
        run=$((run + 1))
        one_run "$run" "$n"
    done
done
echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%Y-%m-%dT%H:%MZ), nproc $(nproc), SERVE_ARGS='${SERVE_ARGS:-}'" >"$OUT/summary.txt"
cat "$TSV" >>"$OUT/summary.txt"
cat "$OUT/summary.txt"
