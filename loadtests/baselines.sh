#!/usr/bin/env bash
# The spec's two DB baselines, each measured right before the matching run.sh phase:
#   1. sysbench oltp_point_select (CONNECTIONS threads, 1 table of SB_ROWS rows)
#      then `PHASES=cold run.sh`  -> cold req/s ÷ sysbench QPS   (target >= 0.5)
#   2. plain_insert.py (1000-row batches x MINT_BIG_CLIENTS, 10 links + pixel x MINT_CLIENTS)
#      then `PHASES=mint run.sh`  -> mint ÷ plain INSERT          (target >= 0.8)
# Every MariaDB here is a fresh private one from mariadb.sh (same settings as
# run.sh), stopped by its PID afterwards.
#
#   loadtests/baselines.sh
#   BIN=/tmp/clone/target/release/linktrack OUT=/tmp/lt-baselines loadtests/baselines.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=loadtests/lib.sh
. "$HERE/lib.sh"
BIN=${BIN:-$ROOT/target/release/linktrack}
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-64}
MINT_CLIENTS=${MINT_CLIENTS:-32}
MINT_BIG_CLIENTS=${MINT_BIG_CLIENTS:-8}
BIG_BATCH=${BIG_BATCH:-1000}
SB_ROWS=${SB_ROWS:-1000000}
DB_PORT=${DB_PORT:-3394}
OUT=${OUT:-/tmp/linktrack-baselines-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
export LT_MARIADB_STATE=$OUT/mariadb-state LT_MARIADB_PORT=$DB_PORT
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
command -v sysbench >/dev/null || { echo "sysbench not found (apt-get install -y sysbench)" >&2; exit 1; }
trap '"$HERE/mariadb.sh" stop >/dev/null 2>&1 || true' EXIT
db() { mariadb --no-defaults -h 127.0.0.1 -P "$DB_PORT" -u root "$@"; }

# 1. sysbench point select, then the cold phase.
log "sysbench: $SB_ROWS rows, $CONNECTIONS threads, ${DURATION}s"
sysbench_point "$OUT" "$SB_ROWS" "$CONNECTIONS" "$DURATION"
log "sysbench: $SB_QPS qps, p99 $SB_P99 ms; CPU (% of one core): $SB_CPU"
log "run.sh PHASES=cold"
BIN=$BIN PHASES=cold DURATION=$DURATION CONNECTIONS=$CONNECTIONS OUT=$OUT/run-cold "$HERE/run.sh" >"$OUT/run-cold.md"
COLD=$(jq -r '.rps // empty' "$OUT/run-cold/wrk-cold redirect (DB lookup).json" 2>/dev/null || true)
[[ -n $COLD ]] || COLD=$(awk -F'\t' '$1 == "cold redirect (DB lookup): redirects/s" { print $2 }' "$OUT/run-cold/results.tsv")
COLD_LAT=$(awk -F'\t' '$1 == "cold redirect (DB lookup): latency p50 / p99 / max (ms)" { print $2 }' "$OUT/run-cold/results.tsv")

# 2. plain multi-row INSERT, then the mint phase (same order: batches first).
"$HERE/mariadb.sh" start >&2
db -e 'CREATE DATABASE lt_plain'
"$BIN" migrate --database-url "mysql://root@127.0.0.1:$DB_PORT/lt_plain" >"$OUT/migrate.log" 2>&1
"$BIN" partitions --database-url "mysql://root@127.0.0.1:$DB_PORT/lt_plain" >>"$OUT/migrate.log" 2>&1
log "plain INSERT: $BIG_BATCH-row batches, $MINT_BIG_CLIENTS clients, ${DURATION}s"
timeout $((DURATION + 60)) python3 "$HERE/plain_insert.py" --port "$DB_PORT" --clients "$MINT_BIG_CLIENTS" \
    --links "$BIG_BATCH" --no-pixel --duration "$DURATION" >"$OUT/plain-batch.json"
log "plain INSERT: letters of 10 links + pixel, $MINT_CLIENTS clients, ${DURATION}s"
timeout $((DURATION + 60)) python3 "$HERE/plain_insert.py" --port "$DB_PORT" --clients "$MINT_CLIENTS" \
    --links 11 --duration "$DURATION" >"$OUT/plain-letters.json"
"$HERE/mariadb.sh" stop >&2
log "run.sh PHASES=mint"
BIN=$BIN PHASES=mint DURATION=$DURATION MINT_CLIENTS=$MINT_CLIENTS MINT_BIG_CLIENTS=$MINT_BIG_CLIENTS BIG_BATCH=$BIG_BATCH \
    OUT=$OUT/run-mint "$HERE/run.sh" >"$OUT/run-mint.md"
MB=$(ls "$OUT"/run-mint/mint-mint\ *batches*.json); ML=$(ls "$OUT"/run-mint/mint-mint\ letters*.json)

{
echo "| baseline | figure | service | figure | ratio | target |"
echo "|---|---|---|---|---|---|"
awk -v q="$SB_QPS" -v p="$SB_P99" -v c="$COLD" -v cl="$COLD_LAT" -v n="$CONNECTIONS" -v sc="$SB_CPU" 'BEGIN {
    printf "| sysbench oltp_point_select, %d threads | %.0f QPS, p99 %s ms (CPU %s) | cold redirect, %d conns | %.0f req/s (p50/p99/max %s ms) | **%.3f** | >= 0.5 |\n", n, q, p, sc, n, c, cl, c / q }'
jq -rn --slurpfile p "$OUT/plain-batch.json" --slurpfile s "$MB" '"| plain INSERT, \($p[0].links_per_letter)-row batches, \($p[0].clients) clients | \($p[0].links_per_s) rows/s, p99 \($p[0].p99_ms) ms | mint \($s[0].links_per_letter)-link batches, \($s[0].concurrency) clients | \($s[0].links_per_s) links/s, p99 \($s[0].p99_ms) ms | **\($s[0].links_per_s / $p[0].links_per_s * 1000 | round / 1000)** | >= 0.8 |"'
jq -rn --slurpfile p "$OUT/plain-letters.json" --slurpfile s "$ML" '"| plain INSERT, letter + 11 links, \($p[0].clients) clients | \($p[0].letters_per_s) letters/s (\($p[0].links_per_s) links/s), p99 \($p[0].p99_ms) ms | mint 10 links + pixel, \($s[0].concurrency) clients | \($s[0].letters_per_s) letters/s (\($s[0].links_per_s) links/s), p99 \($s[0].p99_ms) ms | **\($s[0].letters_per_s / $p[0].letters_per_s * 1000 | round / 1000)** | >= 0.8 |"'
} | tee "$OUT/baselines.md"
log "raw outputs in $OUT"
