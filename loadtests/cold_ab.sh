#!/usr/bin/env bash
# Cold redirects of two builds, alternated, against a sysbench point-select
# baseline measured in the same session:
#   sysbench, A, B, A, B, sysbench
# Each A/B run is `PHASES=cold run.sh` with that build as BIN: a fresh private
# MariaDB, a token pool minted by that build (so a pre-v2 build resolves v1
# tokens, a v2 build v2 tokens), then DURATION s of wrk against a server with
# no link cache. sysbench runs oltp_point_select on SB_ROWS rows (default
# 100 000, ~24 MB: fits the 128 MiB buffer pool). Each run.sh reports DB work
# per redirect, including Handler_read_* (all sessions) and mariadbd CPU µs per
# redirect; each sysbench run the same two per point select, so the summary
# puts the cold redirect's database cost next to a plain point select's.
#
#   A=/tmp/lt-prev2/target/release/linktrack B=target/release/linktrack loadtests/cold_ab.sh
#
# Knobs: A, B (binaries; B defaults to target/release/linktrack), A_NAME [A],
# B_NAME [B], ROUNDS [2], DURATION [20], CONNECTIONS [64], SB_ROWS [100000],
# SB_PORT [3397], SERVE_ARGS [--rollup-interval-ms 3600000: the stats rollup
# stays out of the measurement], OUT [/tmp/linktrack-cold-ab-<time>].
# About 1 minute per cold run plus 30 s per sysbench run. Only processes this
# script (or run.sh / mariadb.sh under it) started are stopped, by PID.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=loadtests/lib.sh
. "$HERE/lib.sh"
A=${A:?set A to the first build (a linktrack binary)}
B=${B:-$ROOT/target/release/linktrack}
A_NAME=${A_NAME:-A}
B_NAME=${B_NAME:-B}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-64}
SB_ROWS=${SB_ROWS:-100000}
SB_PORT=${SB_PORT:-3397}
SERVE_ARGS=${SERVE_ARGS-"--rollup-interval-ms 3600000"}
OUT=${OUT:-/tmp/linktrack-cold-ab-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
trap 'LT_MARIADB_STATE=$OUT/sb-state "$HERE/mariadb.sh" stop >/dev/null 2>&1 || true' EXIT
SUMMARY=$OUT/cold-ab.tsv
printf 'run\tbuild\tfigure\n' >"$SUMMARY"

sysbench_run() { # LABEL
    LT_MARIADB_STATE=$OUT/sb-state LT_MARIADB_PORT=$SB_PORT sysbench_point "$OUT/$1" "$SB_ROWS" "$CONNECTIONS" "$DURATION"
    log "$1: $SB_QPS qps, p99 $SB_P99 ms ($SB_CPU); per select: mariadbd CPU $SB_CPU_US µs, Handler_read_key/next/rnd_next $SB_HANDLER"
    printf '%s\tsysbench %s rows\t%s qps, p99 %s ms, CPU %s\n' "$1" "$SB_ROWS" "$SB_QPS" "$SB_P99" "$SB_CPU" >>"$SUMMARY"
    printf '%s\tsysbench %s rows\tper select: mariadbd CPU µs %s; Handler_read_key / Handler_read_next / Handler_read_rnd_next %s\n' \
        "$1" "$SB_ROWS" "$SB_CPU_US" "$SB_HANDLER" >>"$SUMMARY"
}

cold_run() { # LABEL BIN NAME
    log "$1: $3 ($2)"
    BIN=$2 PHASES=cold DURATION=$DURATION CONNECTIONS=$CONNECTIONS SERVE_ARGS=$SERVE_ARGS ROLLUP_WAIT=0 \
        OUT=$OUT/$1 "$HERE/run.sh" >"$OUT/$1.md"
    awk -F'\t' -v r="$1" -v b="$3" '$1 ~ /^cold redirect/ || $1 == "problem" { sub(/^cold redirect \(DB lookup\): /, "", $1); printf "%s\t%s\t%s: %s\n", r, b, $1, $2 }' \
        "$OUT/$1/results.tsv" >>"$SUMMARY"
}

sysbench_run sysbench-1
for ((i = 1; i <= ROUNDS; i++)); do
    cold_run "cold-$i-$A_NAME" "$A" "$A_NAME"
    cold_run "cold-$i-$B_NAME" "$B" "$B_NAME"
done
sysbench_run sysbench-2

# cold req/s ÷ mean sysbench QPS, per run.
awk -F'\t' '
    $2 ~ /^sysbench/ && $3 ~ /qps/ { split($3, a, " "); q += a[1]; nq++ }
    $3 ~ /^redirects\/s: / { sub(/^redirects\/s: /, "", $3); rps[$1] = $3; build[$1] = $2; order[++n] = $1 }
    END {
        printf "\nmean sysbench QPS %.0f\n", q / nq
        for (i = 1; i <= n; i++) printf "%s (%s): %s redirects/s, cold / sysbench = %.3f\n", order[i], build[order[i]], rps[order[i]], rps[order[i]] / (q / nq)
    }' "$SUMMARY" | tee -a "$SUMMARY"
cat "$SUMMARY"
log "raw outputs in $OUT"
