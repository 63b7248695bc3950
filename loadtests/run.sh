#!/usr/bin/env bash
# linktrack load test: mint throughput, warm and cold redirect throughput,
# DB queries per redirect, and bytes per link against a seed-style baseline.
#
#   loadtests/run.sh                                   # all phases, defaults (about 4-5 minutes)
#   PHASES="mint warm cold bytes" DURATION=20 CONNECTIONS=64 loadtests/run.sh
#   PHASES="warm cold" DURATION=5 loadtests/run.sh     # quick smoke (mints a token pool first)
#
# Everything runs on loopback: a private MariaDB (loadtests/mariadb.sh, its
# own state dir), the release binary, the Python mint generator and wrk.
# Only processes this script started are stopped (by PID, on exit).
# See loadtests/README.md for what each phase measures.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

PHASES=${PHASES:-"mint warm cold bytes"}
DURATION=${DURATION:-20}                    # seconds per timed phase (each mint sub-phase, warm, cold)
CONNECTIONS=${CONNECTIONS:-64}              # wrk connections for redirects
THREADS=${THREADS:-2}                       # wrk threads
MINT_CLIENTS=${MINT_CLIENTS:-32}            # concurrent clients, 10-link letters
MINT_BIG_CLIENTS=${MINT_BIG_CLIENTS:-8}     # concurrent clients, 1000-link batches
LINKS_PER_LETTER=${LINKS_PER_LETTER:-10}
BIG_BATCH=${BIG_BATCH:-1000}
ZIPF_S=${ZIPF_S:-1.1}
POOL_TOKENS=${POOL_TOKENS:-200000}          # distinct click tokens the redirect phases draw from
SEQUENCE=${SEQUENCE:-200000}                # precomputed Zipf requests per wrk thread
PREP_LETTERS=${PREP_LETTERS:-20000}         # letters minted for the pool when the mint phase is skipped
BYTES_LINKS=${BYTES_LINKS:-1000000}
BYTES_CLIENTS=${BYTES_CLIENTS:-8}
SEED_ROWS=${SEED_ROWS:-1000000}
PORT=${PORT:-18181}
DB_PORT=${DB_PORT:-3393}
BIN=${BIN:-$ROOT/target/release/linktrack}
OUT=${OUT:-/tmp/linktrack-loadtest-$(date -u +%Y%m%d-%H%M%S)}
API_KEY=lt-loadtest-key
# Fixed key so tokens are reproducible across server restarts in one run.
TOKEN_KEYS=1:6c696e6b747261636b2d6c6f6164746573742d6b65792d303030303030303030

mkdir -p "$OUT"
export LT_MARIADB_STATE=$OUT/mariadb-state LT_MARIADB_PORT=$DB_PORT
RESULTS=$OUT/results.tsv
: >"$RESULTS"
SERVER_PID=
DB_STARTED=

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
has_phase() { [[ " $PHASES " == *" $1 "* ]]; }
# result KEY VALUE: one line of the final table.
result() { printf '%s\t%s\n' "$1" "$2" >>"$RESULTS"; }

cleanup() {
    local rc=$?
    stop_server
    if [[ -n $DB_STARTED ]]; then
        if [[ ${KEEP_DB:-0} == 1 ]]; then
            log "KEEP_DB=1: MariaDB left running: $("$HERE/mariadb.sh" url) (stop: LT_MARIADB_STATE=$LT_MARIADB_STATE $HERE/mariadb.sh stop)"
        else
            "$HERE/mariadb.sh" stop >/dev/null || true
        fi
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sql() { mariadb --no-defaults -h 127.0.0.1 -P "$DB_PORT" -u root -N -B "$@"; }

# Global status counters we diff around a phase.
COUNTERS="Com_select Com_stmt_execute Com_stmt_prepare Com_set_option Questions Connections Innodb_buffer_pool_reads Innodb_data_fsyncs Com_commit"
status_snapshot() {
    local in_list
    in_list=$(printf "'%s'," $COUNTERS)
    sql -e "SHOW GLOBAL STATUS WHERE Variable_name IN (${in_list%,})" >"$1"
}
# status_delta BEFORE AFTER NAME
status_delta() { awk -v n="$3" 'NR==FNR { a[$1]=$2; next } $1==n { print $2 - a[$1] }' "$1" "$2"; }

# CPU ticks (user+system) of a PID; 0 if gone.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
DB_PID() { cat "$LT_MARIADB_STATE/pid"; }
TCK=$(getconf CLK_TCK)

other_cpu_hogs() {
    # Processes (not ours) using >20% CPU right now: a fuzzer or build skews results.
    ps -eo pid=,pcpu=,comm= --sort=-pcpu | awk -v s="${SERVER_PID:-0}" -v d="$(DB_PID 2>/dev/null || echo 0)" -v me=$$ \
        '$2 > 20 && $1 != s && $1 != d && $1 != me && $3 != "wrk" && $3 != "python3" && $3 != "ps" { printf "%s%s(%s%%)", sep, $3, $2; sep = " " }'
}

# ---------------------------------------------------------------- server
start_server() { # NAME DB ARGS...
    local name=$1 db=$2
    shift 2
    "$BIN" --log-format json serve --database-url "mysql://root@127.0.0.1:$DB_PORT/$db" \
        --listen "127.0.0.1:$PORT" --api-keys "$API_KEY" --token-keys "$TOKEN_KEYS" \
        --data-dir "$OUT/data" "$@" >"$OUT/server-$name.log" 2>&1 &
    SERVER_PID=$!
    SERVER_NAME=$name
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null; then
            log "server '$name' up (pid $SERVER_PID) $*"
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$OUT/server-$name.log" >&2; die "server '$name' exited during start-up"; }
        sleep 0.2
    done
    die "server '$name' did not answer /healthz within 20 s"
}

stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID"
        for _ in $(seq 1 60); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            log "server '$SERVER_NAME' ignored SIGTERM for 15 s; SIGKILL"
            result "problem" "server '$SERVER_NAME' did not stop within 15 s of SIGTERM"
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    local warns
    warns=$(grep -cE '"level":"(WARN|ERROR)"' "$OUT/server-$SERVER_NAME.log" || true)
    result "server log '$SERVER_NAME': WARN/ERROR lines" "$warns"
    if [[ $warns != 0 ]]; then
        grep -E '"level":"(WARN|ERROR)"' "$OUT/server-$SERVER_NAME.log" | head -n 3 >&2 || true
    fi
    SERVER_PID=
}

# ---------------------------------------------------------------- phases
mint_run() { # LABEL CLIENTS LINKS EXTRA_ARGS... ; prints the generator's JSON
    local label=$1 clients=$2 links=$3
    shift 3
    local before="$OUT/status-$label.0" after="$OUT/status-$label.1" s0 d0 s1 d1
    status_snapshot "$before"
    s0=$(cpu_ticks "$SERVER_PID"); d0=$(cpu_ticks "$(DB_PID)")
    local hogs
    hogs=$(other_cpu_hogs)
    timeout $((DURATION * 4 + 120)) python3 "$HERE/mint_load.py" --url "http://127.0.0.1:$PORT" --key "$API_KEY" \
        --concurrency "$clients" --links "$links" --timeline "$@" >"$OUT/mint-$label.json" || true
    s1=$(cpu_ticks "$SERVER_PID"); d1=$(cpu_ticks "$(DB_PID)")
    status_snapshot "$after"
    local j=$OUT/mint-$label.json
    [[ -s $j ]] || die "mint generator produced no output for $label"
    local wall letters
    wall=$(jq -r .wall_s "$j"); letters=$(jq -r .letters_ok "$j")
    log "$label: $(jq -c '{letters_per_s,links_per_s,p50_ms,p99_ms,max_ms,statuses,conn_errors}' "$j")"
    result "$label: letters/s" "$(jq -r .letters_per_s "$j")"
    result "$label: links/s" "$(jq -r .links_per_s "$j")"
    result "$label: latency p50 / p99 / max (ms)" "$(jq -r '"\(.p50_ms) / \(.p99_ms) / \(.max_ms)"' "$j")"
    result "$label: requests, non-201, connection errors" "$(jq -r '"\(.requests), \(.non_201), \(.conn_errors)"' "$j")"
    if [[ $(jq -r .non_201 "$j") != 0 || $(jq -r .conn_errors "$j") != 0 ]]; then
        result "problem" "$label: statuses $(jq -c .statuses "$j") sample: $(jq -r '.error_sample // .conn_error_sample' "$j")"
    fi
    result "$label: slowest 1 s window (second, letters, max ms); seconds with a >1 s response" \
        "$(jq -r '"\(.slowest_second.second), \(.slowest_second.letters), \(.slowest_second.max_ms); \(.seconds_over_1s_max_latency)"' "$j")"
    if [[ $letters -gt 0 ]]; then
        result "$label: DB connections opened per letter" "$(awk -v c="$(status_delta "$before" "$after" Connections)" -v n="$letters" 'BEGIN { printf "%.3f", c / n }')"
        result "$label: Com_stmt_prepare per letter" "$(awk -v c="$(status_delta "$before" "$after" Com_stmt_prepare)" -v n="$letters" 'BEGIN { printf "%.3f", c / n }')"
        result "$label: fsyncs per letter" "$(awk -v c="$(status_delta "$before" "$after" Innodb_data_fsyncs)" -v n="$letters" 'BEGIN { printf "%.3f", c / n }')"
    fi
    result "$label: CPU server / mariadbd / generator (% of one core)" "$(awk -v s=$((s1 - s0)) -v d=$((d1 - d0)) -v g="$(jq -r .generator_cpu_s "$j")" -v w="$wall" -v t="$TCK" \
        'BEGIN { printf "%.0f / %.0f / %.0f", 100 * s / t / w, 100 * d / t / w, 100 * g / w }')"
    [[ -z $hogs ]] || result "$label: other busy processes at start" "$hogs"
}

make_pool() {
    # The redirect phases draw from the last POOL_TOKENS click tokens of the
    # 10-link letters (minted last, so certainly still in the link cache), shuffled.
    [[ -s $OUT/clicks.tsv ]] || die "no minted click tokens"
    tail -n "$POOL_TOKENS" "$OUT/clicks.tsv" | shuf --random-source=<(yes) >"$OUT/pool.tsv"
    cut -f1 "$OUT/pool.tsv" >"$OUT/pool.txt"
    log "token pool: $(wc -l <"$OUT/pool.txt") click tokens, Zipf s=$ZIPF_S"
}

redirect_run() { # LABEL
    local label=$1
    local before="$OUT/status-$label.0" after="$OUT/status-$label.1" s0 d0 s1 d1 hogs
    hogs=$(other_cpu_hogs)
    status_snapshot "$before"
    s0=$(cpu_ticks "$SERVER_PID"); d0=$(cpu_ticks "$(DB_PID)")
    local t0 t1
    t0=$(date +%s.%N)
    WRK_STRICT=1 timeout $((DURATION + 60)) wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --latency --timeout 5s \
        -s "$HERE/zipf.lua" "http://127.0.0.1:$PORT" -- "$OUT/pool.txt" "$ZIPF_S" "$SEQUENCE" /c/ >"$OUT/wrk-$label.txt" 2>&1 || true
    t1=$(date +%s.%N)
    s1=$(cpu_ticks "$SERVER_PID"); d1=$(cpu_ticks "$(DB_PID)")
    status_snapshot "$after"
    # TIME_WAIT sockets towards MariaDB: held by linktrack (dport) and by mariadbd (sport).
    local tw
    tw="$(ss -Htan state time-wait "( dport = :$DB_PORT )" 2>/dev/null | wc -l) linktrack-side / $(ss -Htan state time-wait "( sport = :$DB_PORT )" 2>/dev/null | wc -l) mariadbd-side"
    grep -q '^WRK_JSON ' "$OUT/wrk-$label.txt" || { cat "$OUT/wrk-$label.txt" >&2; die "wrk failed in $label"; }
    local j
    j=$(sed -n 's/^WRK_JSON //p' "$OUT/wrk-$label.txt")
    echo "$j" >"$OUT/wrk-$label.json"
    local reqs
    reqs=$(jq -r .requests <<<"$j")
    log "$label: $(jq -c '{rps,p50_us,p99_us,max_us,unexpected_status,err_status,err_connect,err_read,err_timeout}' <<<"$j")"
    result "$label: redirects/s" "$(jq -r .rps <<<"$j")"
    result "$label: latency p50 / p99 / max (ms)" "$(jq -r '"\(.p50_us/1000) / \(.p99_us/1000) / \(.max_us/1000)"' <<<"$j")"
    result "$label: requests, non-3xx, socket errors (connect/read/write/timeout)" \
        "$(jq -r '"\(.requests), \(.unexpected_status), \(.err_connect)/\(.err_read)/\(.err_write)/\(.err_timeout)"' <<<"$j")"
    if [[ $(jq -r '.unexpected_status + .err_connect + .err_read + .err_write + .err_timeout' <<<"$j") != 0 ]]; then
        result "problem" "$label: $(jq -c '{unexpected_status,err_status,err_connect,err_read,err_write,err_timeout}' <<<"$j")"
    fi
    per() { awk -v c="$(status_delta "$before" "$after" "$1")" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.3f", c / n; else print "n/a" }'; }
    result "$label: per redirect: Com_stmt_execute / Com_select / Questions" "$(per Com_stmt_execute) / $(per Com_select) / $(per Questions)"
    result "$label: per redirect: new DB connections / Com_stmt_prepare / buffer-pool disk reads" "$(per Connections) / $(per Com_stmt_prepare) / $(per Innodb_buffer_pool_reads)"
    result "$label: CPU server / mariadbd (% of one core); TIME_WAIT to MariaDB after" "$(awk -v s=$((s1 - s0)) -v d=$((d1 - d0)) -v w="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" -v t="$TCK" \
        'BEGIN { printf "%.0f / %.0f", 100 * s / t / w, 100 * d / t / w }'); $tw"
    [[ -z $hogs ]] || result "$label: other busy processes at start" "$hogs"
    local v
    v=$(python3 "$HERE/verify.py" --url "http://127.0.0.1:$PORT" --clicks "$OUT/pool.tsv" --pixels "$OUT/pixels.txt" || true)
    result "$label: spot-check after load (302 + exact Location, HEAD, pixel, forged->404)" "$(jq -r '"\(.checked) checked, \(.problems) wrong"' <<<"$v")"
    if [[ $(jq -r .problems <<<"$v") != 0 ]]; then
        result "problem" "$label spot-check: $(jq -c .examples <<<"$v")"
    fi
}

bytes_phase() {
    sql -e "CREATE DATABASE lt_bytes"
    "$BIN" migrate --database-url "mysql://root@127.0.0.1:$DB_PORT/lt_bytes" >>"$OUT/migrate.log" 2>&1
    start_server bytes lt_bytes
    local n=$(( (BYTES_LINKS + BIG_BATCH - 1) / BIG_BATCH ))
    local hogs s0 d0 s1 d1
    hogs=$(other_cpu_hogs)
    s0=$(cpu_ticks "$SERVER_PID"); d0=$(cpu_ticks "$(DB_PID)")
    timeout 900 python3 "$HERE/mint_load.py" --url "http://127.0.0.1:$PORT" --key "$API_KEY" \
        --concurrency "$BYTES_CLIENTS" --links "$BIG_BATCH" --count "$n" --start 50000000 --timeline >"$OUT/mint-bytes.json" || true
    s1=$(cpu_ticks "$SERVER_PID"); d1=$(cpu_ticks "$(DB_PID)")
    local j=$OUT/mint-bytes.json
    log "bulk mint: $(jq -c '{letters_ok,links_minted,links_per_s,p50_ms,p99_ms,max_ms,statuses}' "$j")"
    result "bulk mint ${BYTES_LINKS} links (${BIG_BATCH}/request, ${BYTES_CLIENTS} clients): links/s" "$(jq -r .links_per_s "$j")"
    result "bulk mint: latency p50 / p99 / max (ms); non-201" "$(jq -r '"\(.p50_ms) / \(.p99_ms) / \(.max_ms); \(.non_201 + .conn_errors)"' "$j")"
    result "bulk mint: CPU server / mariadbd (% of one core)" "$(awk -v s=$((s1 - s0)) -v d=$((d1 - d0)) -v w="$(jq -r .wall_s "$j")" -v t="$TCK" 'BEGIN { printf "%.0f / %.0f", 100 * s / t / w, 100 * d / t / w }')"
    [[ -z $hogs ]] || result "bulk mint: other busy processes at start" "$hogs"
    stop_server

    log "seed-style baseline: $SEED_ROWS rows, random varchar(32) PK + JSON, 1000-row INSERTs"
    local t0 t1
    t0=$(date +%s.%N)
    python3 "$HERE/seed_sql.py" --rows "$SEED_ROWS" | sql lt_bytes
    t1=$(date +%s.%N)
    result "seed baseline load: rows/s (1000-row INSERTs via mariadb CLI)" "$(awk -v a="$t0" -v b="$t1" -v n="$SEED_ROWS" 'BEGIN { printf "%.0f", n / (b - a) }')"

    sql lt_bytes -e "ANALYZE TABLE links, urls, letters, seed" >/dev/null
    local links_rows
    links_rows=$(sql lt_bytes -e "SELECT COUNT(*) FROM links")
    local t rows data idx
    local total=0
    for t in links urls letters seed; do
        rows=$(sql lt_bytes -e "SELECT COUNT(*) FROM $t")
        read -r data idx < <(sql lt_bytes -e "SELECT DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA='lt_bytes' AND TABLE_NAME='$t'")
        result "bytes: $t rows / data MiB / index MiB" "$rows / $(awk -v b="$data" 'BEGIN { printf "%.1f", b / 1048576 }') / $(awk -v b="$idx" 'BEGIN { printf "%.1f", b / 1048576 }')"
        result "bytes: $t (data+index) per own row / per link" "$(awk -v b=$((data + idx)) -v r="$rows" -v l="$links_rows" 'BEGIN { printf "%.1f / %.1f", (r ? b / r : 0), b / l }')"
        eval "B_$t=$((data + idx)) R_$t=$rows"
        [[ $t == seed ]] || total=$((total + data + idx))
    done
    # shellcheck disable=SC2154
    result "bytes: links only, per link" "$(awk -v b="$B_links" -v l="$links_rows" 'BEGIN { printf "%.1f", b / l }')"
    result "bytes: links+urls+letters, per link" "$(awk -v b="$total" -v l="$links_rows" 'BEGIN { printf "%.1f", b / l }')"
    # shellcheck disable=SC2154
    result "bytes: seed baseline per row" "$(awk -v b="$B_seed" -v r="$R_seed" 'BEGIN { printf "%.1f", b / r }')"
    result "bytes: ratio links-only / seed (target <= 0.333)" "$(awk -v a="$B_links" -v l="$links_rows" -v b="$B_seed" -v r="$R_seed" 'BEGIN { printf "%.3f", (a / l) / (b / r) }')"
    result "bytes: ratio all three tables / seed" "$(awk -v a="$total" -v l="$links_rows" -v b="$B_seed" -v r="$R_seed" 'BEGIN { printf "%.3f", (a / l) / (b / r) }')"
    # Cross-check: on-disk tablespace files (include free extents InnoDB preallocated).
    local dir
    dir="$(cat "$LT_MARIADB_STATE/dir")/data/lt_bytes"
    result "bytes: .ibd files on disk, links / seed (MiB)" "$(du -cm "$dir"/links*.ibd | tail -n1 | cut -f1) / $(du -cm "$dir"/seed.ibd | tail -n1 | cut -f1)"
}

# ---------------------------------------------------------------- main
if [[ ! -x $BIN ]]; then
    log "building release binary"
    (cd "$ROOT" && cargo build --release) >&2
fi
[[ -x $BIN ]] || die "no binary at $BIN"
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
command -v jq >/dev/null || die "jq not found (apt-get install jq)"

log "output: $OUT"
# The commit of the tree the binary was built in (BIN may point at a clone).
BIN_TREE=$(dirname "$(readlink -f "$BIN")")
COMMIT=$(git -C "$BIN_TREE" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$BIN_TREE" status --porcelain --untracked-files=no 2>/dev/null | wc -l)
result "date (UTC)" "$(date -u '+%Y-%m-%d %H:%M')"
result "commit (of the tree BIN was built in)" "$COMMIT$([[ $DIRTY == 0 ]] || echo " (+$DIRTY modified tracked files in that tree)")"
result "machine" "$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -r)"
result "binary" "$BIN ($(date -u -r "$BIN" '+%Y-%m-%d %H:%M'))"
result "settings" "DURATION=${DURATION}s CONNECTIONS=$CONNECTIONS THREADS=$THREADS MINT_CLIENTS=$MINT_CLIENTS MINT_BIG_CLIENTS=$MINT_BIG_CLIENTS ZIPF_S=$ZIPF_S POOL_TOKENS=$POOL_TOKENS"

"$HERE/mariadb.sh" start >&2
DB_STARTED=1
result "mariadb" "$(sql -e "SELECT CONCAT(VERSION(), ', buffer pool ', @@innodb_buffer_pool_size DIV 1048576, ' MiB, flush_log_at_trx_commit=', @@innodb_flush_log_at_trx_commit, ', log file ', @@innodb_log_file_size DIV 1048576, ' MiB')")"
sql -e "CREATE DATABASE lt_bench"
"$BIN" migrate --database-url "mysql://root@127.0.0.1:$DB_PORT/lt_bench" >>"$OUT/migrate.log" 2>&1

if has_phase mint || has_phase warm || has_phase cold; then
    : >"$OUT/clicks.tsv"
    : >"$OUT/pixels.txt"
    start_server main lt_bench
    if has_phase mint; then
        # 1000-link batches first, so the 10-link letters (the redirect pool) are the most recently cached.
        log "mint: ${BIG_BATCH}-link batches, $MINT_BIG_CLIENTS clients, ${DURATION}s"
        mint_run "mint ${BIG_BATCH}-link batches, $MINT_BIG_CLIENTS clients" "$MINT_BIG_CLIENTS" "$BIG_BATCH" --duration "$DURATION" --start 10000000
        log "mint: letters of $LINKS_PER_LETTER links + pixel, $MINT_CLIENTS clients, ${DURATION}s"
        mint_run "mint letters ($LINKS_PER_LETTER links + pixel), $MINT_CLIENTS clients" "$MINT_CLIENTS" "$LINKS_PER_LETTER" --pixel \
            --duration "$DURATION" --tokens-out "$OUT/clicks.tsv" --pixel-tokens-out "$OUT/pixels.txt"
    else
        log "minting a token pool: $PREP_LETTERS letters"
        python3 "$HERE/mint_load.py" --url "http://127.0.0.1:$PORT" --key "$API_KEY" --concurrency "$MINT_CLIENTS" \
            --links "$LINKS_PER_LETTER" --pixel --count "$PREP_LETTERS" \
            --tokens-out "$OUT/clicks.tsv" --pixel-tokens-out "$OUT/pixels.txt" >"$OUT/mint-prep.json"
    fi
    make_pool
    if has_phase warm; then
        log "warm redirects: default cache, same server that minted, ${DURATION}s, $CONNECTIONS connections"
        redirect_run "warm redirect (cache)"
    fi
    stop_server
    if has_phase cold; then
        start_server cold lt_bench --cache-bytes 0 --negative-cache-entries 0
        log "cold redirects: --cache-bytes 0, ${DURATION}s, $CONNECTIONS connections"
        redirect_run "cold redirect (DB lookup)"
        stop_server
    fi
fi

if has_phase bytes; then
    log "bytes per link: minting $BYTES_LINKS links into a fresh database"
    bytes_phase
fi

{
    echo
    echo "| measurement | value |"
    echo "|---|---|"
    awk -F'\t' '{ printf "| %s | %s |\n", $1, $2 }' "$RESULTS"
} | tee "$OUT/results.md"
log "raw outputs in $OUT"
