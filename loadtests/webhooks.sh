#!/usr/bin/env bash
# Webhook delivery under warm redirect load, and a receiver that hangs.
#
#   loadtests/webhooks.sh                       # embedded store, 5000 req/s, ok/hang/ok/hang, 20 s each
#   STORE=mysql RATE=10000 loadtests/webhooks.sh
#
# A release server (with --webhook-allow-private) gets PREP_LETTERS letters
# (10 click links each) minted through the API, and one webhook endpoint
# (all events, from "now") pointing at examples/webhook_receiver. Then
# PHASES alternate the receiver between acknowledging everything (`ok`) and
# holding every delivery without answering (`hang`), each PHASE_SECS long
# under RATE req/s of warm `GET /c/<token>` (oha, open loop, a browser
# User-Agent). Per phase (webhooks.tsv): redirect p50/p99 (ms), events
# stored per second, events delivered per second (acknowledged by the
# receiver), and the endpoint's lag (events not yet delivered, and the
# webhook lag gauge in seconds) at the end of the phase. Finally the load
# stops and the script waits (up to DRAIN_SECS) for delivery to catch up with
# every stored event, and reports the drain time.
#
# Knobs: STORE [sqlite|mysql], RATE [5000], PHASES [ok hang ok hang],
# PHASE_SECS [20], DRAIN_SECS [120], PREP_LETTERS [2000], CONNECTIONS [32],
# PORT [18380], RPORT [18390], DB_PORT [3520], BIN [target/release/linktrack],
# RECV_BIN [examples/webhook_receiver next to BIN], OUT [/tmp/linktrack-webhooks-<time>].
# Only processes this script started are stopped (by PID, on exit).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=loadtests/lib.sh
. "$HERE/lib.sh"
ROOT=$(dirname "$HERE")

STORE=${STORE:-sqlite}
RATE=${RATE:-5000}
PHASES=${PHASES:-"ok hang ok hang"}
PHASE_SECS=${PHASE_SECS:-20}
DRAIN_SECS=${DRAIN_SECS:-120}
PREP_LETTERS=${PREP_LETTERS:-2000}
CONNECTIONS=${CONNECTIONS:-32}
PORT=${PORT:-18380}
RPORT=${RPORT:-18390}
DB_PORT=${DB_PORT:-3520}
BIN=${BIN:-$ROOT/target/release/linktrack}
RECV_BIN=${RECV_BIN:-$(dirname "$BIN")/examples/webhook_receiver}
OUT=${OUT:-/tmp/linktrack-webhooks-$(date -u +%Y%m%d-%H%M%S)}
UA="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
API_KEY=lt-loadtest-key-0001

command -v oha >/dev/null || { echo "oha not found: cargo install oha --locked" >&2; exit 2; }
command -v jq >/dev/null || { echo "jq not found" >&2; exit 2; }
[[ -x $BIN && -x $RECV_BIN ]] || { echo "build first: cargo build --release --bin linktrack --example webhook_receiver" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export LT_MARIADB_STATE=$OUT/mariadb-state LT_MARIADB_PORT=$DB_PORT
SERVER_PID= RECV_PID= DB_STARTED=

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
cleanup() {
    local rc=$?
    [[ -z $SERVER_PID ]] || { term_and_wait "$SERVER_PID" 30 || kill -KILL "$SERVER_PID" 2>/dev/null || true; }
    [[ -z $RECV_PID ]] || kill "$RECV_PID" 2>/dev/null || true
    [[ -z $DB_STARTED ]] || "$HERE/mariadb.sh" stop >/dev/null 2>&1 || true
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

metric() { curl -fsS "http://127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 == n { v = $2 } END { print (v == "" ? 0 : v) }'; }
delivered() { curl -fsS "http://127.0.0.1:$RPORT/count" | awk '{ print $2 }'; }

"$RECV_BIN" "127.0.0.1:$RPORT" >"$OUT/receiver.log" 2>&1 &
RECV_PID=$!
case $STORE in
    mysql)
        "$HERE/mariadb.sh" start >&2
        DB_STARTED=1
        mariadb --no-defaults -h 127.0.0.1 -P "$DB_PORT" -u root -e "DROP DATABASE IF EXISTS lt_webhooks; CREATE DATABASE lt_webhooks"
        url="mysql://root@127.0.0.1:$DB_PORT/lt_webhooks"
        ;;
    sqlite) url="sqlite://$OUT/db/linktrack.db" ;;
    *) die "STORE: mysql or sqlite" ;;
esac
"$BIN" --log-format json serve --database-url "$url" --listen "127.0.0.1:$PORT" --api-keys "$API_KEY" --data-dir "$OUT/data" \
    --webhook-allow-private --webhook-batch-max 1000 --webhook-timeout-ms 2000 --webhook-backoff-max-ms 2000 >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break; sleep 0.2; done
curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" || die "server did not start: $(tail -n 5 "$OUT/server.log")"

log "minting $PREP_LETTERS letters"
python3 "$HERE/mint_load.py" --url "http://127.0.0.1:$PORT" --key "$API_KEY" --concurrency 16 --links 10 --count "$PREP_LETTERS" \
    --tokens-out "$OUT/clicks.tsv" >"$OUT/mint.json"
cut -f1 "$OUT/clicks.tsv" | shuf | sed "s|^|http://127.0.0.1:$PORT/c/|" >"$OUT/urls.txt"
curl -fsS -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' \
    -d "{\"url\":\"http://127.0.0.1:$RPORT/hook\",\"start\":\"now\"}" "http://127.0.0.1:$PORT/v1/webhooks" >"$OUT/endpoint.json"
log "endpoint $(jq -r .id "$OUT/endpoint.json"); $(wc -l <"$OUT/urls.txt") click tokens; $RATE req/s, ${PHASE_SECS}s phases: $PHASES"

TSV=$OUT/webhooks.tsv
printf 'phase\treceiver\tachieved_rps\tp50_ms\tp99_ms\tstored_per_s\tdelivered_per_s\tundelivered_at_end\tlag_gauge_s\n' >"$TSV"
n=0
for mode in $PHASES; do
    n=$((n + 1))
    curl -fsS -X POST "http://127.0.0.1:$RPORT/mode/$mode" >/dev/null
    s0=$(metric linktrack_events_stored_total); d0=$(delivered)
    timeout $((PHASE_SECS + 60)) oha --no-tui --output-format json -q "$RATE" -z "${PHASE_SECS}s" -c "$CONNECTIONS" --latency-correction \
        --redirect 0 -H "User-Agent: $UA" --urls-from-file "$OUT/urls.txt" >"$OUT/oha-$n.json" 2>"$OUT/oha-$n.err" || true
    s1=$(metric linktrack_events_stored_total); d1=$(delivered)
    lag=$(curl -fsS "http://127.0.0.1:$PORT/metrics" | awk '/^linktrack_webhook_lag_seconds\{/ { print $2 }')
    jq -r --arg n "$n" --arg m "$mode" --argjson st "$(( (s1 - s0) / PHASE_SECS ))" --argjson dl "$(( (d1 - d0) / PHASE_SECS ))" \
        --argjson und "$((s1 - d1))" --arg lag "${lag:-NaN}" \
        '[$n, $m, (.summary.requestsPerSec | floor), (.latencyPercentiles.p50 * 1e6 | round / 1000), (.latencyPercentiles.p99 * 1e6 | round / 1000), $st, $dl, $und, $lag] | @tsv' \
        "$OUT/oha-$n.json" >>"$TSV"
    log "$(tail -n 1 "$TSV")"
done
curl -fsS -X POST "http://127.0.0.1:$RPORT/mode/ok" >/dev/null
log "load stopped; waiting for delivery to catch up"
t0=$(date +%s)
while :; do
    s=$(metric linktrack_events_stored_total); d=$(delivered)
    (( d >= s )) && break
    (( $(date +%s) - t0 > DRAIN_SECS )) && { log "not caught up after ${DRAIN_SECS}s: stored $s, delivered $d"; break; }
    sleep 1
done
echo "drain: stored $(metric linktrack_events_stored_total), delivered $(delivered) after $(( $(date +%s) - t0 )) s" | tee "$OUT/drain.txt" >&2
column -t -s $'\t' "$TSV" | tee "$OUT/summary.txt"
