#!/usr/bin/env bash
# linktrack load test: mint throughput, warm and cold redirect throughput,
# DB queries per redirect, bytes per link against a seed-style baseline, and
# a bare hyper server as the redirect baseline.
#
#   loadtests/run.sh                                   # all phases, defaults (about 4-5 minutes)
#   PHASES="mint warm cold bytes" DURATION=20 CONNECTIONS=64 loadtests/run.sh
#   PHASES="warm cold" DURATION=5 loadtests/run.sh     # quick smoke (mints a token pool first)
#   PHASES="mint warm cold bare" loadtests/run.sh      # plus the bare-hyper baseline (examples/bare_redirect.rs)
#   STORE=sqlite PHASES="mint warm cold bytes" loadtests/run.sh   # the embedded store, no MariaDB
#
# Everything runs on loopback: a private MariaDB (loadtests/mariadb.sh, its
# own state dir; not started with STORE=sqlite), the release binary, the
# Python mint generator and wrk.
# Only processes this script started are stopped (by PID, on exit).
# See loadtests/README.md for what each phase measures.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=loadtests/lib.sh
. "$HERE/lib.sh"
ROOT=$(dirname "$HERE")

STORE=${STORE:-mysql}                       # mysql (private MariaDB) or sqlite (embedded store under $OUT)
PHASES=${PHASES:-"mint warm cold bytes"}    # any of: mint warm cold bytes bare
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
BARE_BIN=${BARE_BIN:-}                      # default: examples/bare_redirect next to BIN, built by the bare phase
SERVE_ARGS=${SERVE_ARGS:-}                  # extra flags for every `linktrack serve` (experiments), word-split
ROLLUP_WAIT=${ROLLUP_WAIT:-300}             # seconds to wait after each redirect phase for the rollup to catch up; 0: don't
API_KEY=lt-loadtest-key-0001
# Fixed key so tokens are reproducible across server restarts in one run.
TOKEN_KEYS=1:6c696e6b747261636b2d6c6f6164746573742d6b65792d303030303030303030

case $STORE in
    mysql | sqlite) ;;
    *) echo "STORE must be mysql or sqlite, not '$STORE'" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)                     # absolute: it ends up in sqlite:// URLs
export LT_MARIADB_STATE=$OUT/mariadb-state LT_MARIADB_PORT=$DB_PORT
RESULTS=$OUT/results.tsv
: >"$RESULTS"
SERVER_PID=
SERVER_NAME=
SERVER_DIR=
DB_STARTED=

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
has_phase() { [[ " $PHASES " == *" $1 "* ]]; }
is_mysql() { [[ $STORE == mysql ]]; }
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

# The database URL of logical database NAME (lt_bench: the mint/warm/cold
# data, lt_bytes: the bytes phase). With STORE=sqlite each is a fresh
# directory under $OUT: lt_bench -> $OUT/db, lt_bytes -> $OUT/db-bytes.
sqlite_dir() { case $1 in lt_bench) echo "$OUT/db" ;; *) echo "$OUT/db-${1#lt_}" ;; esac; }
db_url() {
    if is_mysql; then echo "mysql://root@127.0.0.1:$DB_PORT/$1"; else echo "sqlite://$(sqlite_dir "$1")/linktrack.db"; fi
}
# PIDs (other than NOT_PID) holding a file under DIR open: the embedded store
# must be used by one server process at a time.
dir_users() { # DIR [NOT_PID]
    local fd pid
    for fd in /proc/[0-9]*/fd/*; do
        [[ $(readlink "$fd" 2>/dev/null) == "$1"/* ]] || continue
        pid=${fd#/proc/}; pid=${pid%%/*}
        [[ $pid == "${2:-}" ]] || echo "$pid"
    done 2>/dev/null | sort -u | tr '\n' ' '
}
# Storage I/O of a PID from /proc/PID/io: "read_bytes write_bytes" (0 0 if gone).
io_bytes() { awk '/^read_bytes/ { r = $2 } /^write_bytes/ { w = $2 } END { print r + 0, w + 0 }' "/proc/$1/io" 2>/dev/null || echo "0 0"; }

# Global status counters we diff around a phase.
COUNTERS="Com_select Com_stmt_execute Com_stmt_prepare Com_set_option Questions Connections Innodb_buffer_pool_reads Innodb_data_fsyncs Com_commit
    Com_insert Com_update Handler_read_key Handler_read_next Handler_read_rnd_next Rows_read Innodb_rows_read"
status_snapshot() {
    if ! is_mysql; then : >"$1"; return 0; fi
    local in_list
    in_list=$(printf "'%s'," $COUNTERS)
    sql -e "SHOW GLOBAL STATUS WHERE Variable_name IN (${in_list%,})" >"$1"
}
# status_delta BEFORE AFTER NAME
status_delta() { awk -v n="$3" 'NR==FNR { a[$1]=$2; next } $1==n { print $2 - a[$1] }' "$1" "$2"; }

# CPU ticks (user+system) of a PID; 0 if gone.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
DB_PID() { if is_mysql; then cat "$LT_MARIADB_STATE/pid"; else echo 0; fi; }
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
    [[ -z $SERVER_PID ]] || die "start_server $name: server '$SERVER_NAME' (pid $SERVER_PID) is still ours and running"
    if ! is_mysql; then
        local dir users
        dir=$(sqlite_dir "$db")
        mkdir -p "$dir"
        users=$(dir_users "$dir")
        [[ -z $users ]] || die "start_server $name: $dir is still in use by pid(s) $users"
    fi
    "$BIN" --log-format json serve --database-url "$(db_url "$db")" \
        --listen "127.0.0.1:$PORT" --api-keys "$API_KEY" --token-keys "$TOKEN_KEYS" \
        --data-dir "$OUT/data" "$@" ${SERVE_ARGS:-} >"$OUT/server-$name.log" 2>&1 &
    SERVER_PID=$!
    SERVER_NAME=$name
    SERVER_DIR=
    is_mysql || SERVER_DIR=$(sqlite_dir "$db")
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
    if ! term_and_wait "$SERVER_PID" 15; then
        log "server '$SERVER_NAME' ignored SIGTERM for 15 s; SIGKILL"
        result "problem" "server '$SERVER_NAME' did not stop within 15 s of SIGTERM"
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    if [[ -n $SERVER_DIR ]]; then
        local users side
        users=$(dir_users "$SERVER_DIR")
        [[ -z $users ]] || result "problem" "server '$SERVER_NAME' stopped but $SERVER_DIR is still open in pid(s) $users"
        side=$(find "$SERVER_DIR" -name '*-wal' -o -name '*-shm' -o -name '*-journal' | wc -l)
        result "server '$SERVER_NAME': SQLite -wal/-shm/-journal files left after SIGTERM" "$side"
    fi
    local warns
    if [[ $SERVER_NAME == bare ]]; then
        # Plain stderr: anything besides the start-up banner is an error (e.g. "accept failed").
        warns=$(grep -vc '^bare_redirect listening on' "$OUT/server-$SERVER_NAME.log" || true)
        result "bare server: stderr lines besides the banner" "$warns"
        [[ $warns == 0 ]] || head -n 3 "$OUT/server-$SERVER_NAME.log" >&2
        SERVER_PID=
        return 0
    fi
    warns=$(grep -cE '"level":"(WARN|ERROR)"' "$OUT/server-$SERVER_NAME.log" || true)
    result "server log '$SERVER_NAME': WARN/ERROR lines" "$warns"
    if [[ $warns != 0 ]]; then
        grep -E '"level":"(WARN|ERROR)"' "$OUT/server-$SERVER_NAME.log" | head -n 3 >&2 || true
    fi
    SERVER_PID=
    SERVER_DIR=
}

# ---------------------------------------------------------------- phases
mint_run() { # LABEL CLIENTS LINKS EXTRA_ARGS... ; prints the generator's JSON
    local label=$1 clients=$2 links=$3
    shift 3
    local before="$OUT/status-$label.0" after="$OUT/status-$label.1" s0 d0 s1 d1 io0 io1 dio0 dio1
    status_snapshot "$before"
    s0=$(cpu_ticks "$SERVER_PID"); d0=$(cpu_ticks "$(DB_PID)"); io0=$(io_bytes "$SERVER_PID"); dio0=$(io_bytes "$(DB_PID)")
    local hogs
    hogs=$(other_cpu_hogs)
    timeout $((DURATION * 4 + 120)) python3 "$HERE/mint_load.py" --url "http://127.0.0.1:$PORT" --key "$API_KEY" \
        --concurrency "$clients" --links "$links" --timeline "$@" >"$OUT/mint-$label.json" || true
    s1=$(cpu_ticks "$SERVER_PID"); d1=$(cpu_ticks "$(DB_PID)"); io1=$(io_bytes "$SERVER_PID"); dio1=$(io_bytes "$(DB_PID)")
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
    # Trend within the phase (the tables grow as it runs): letters/s over the first and the last 5 whole seconds.
    result "$label: letters/s, first 5 s / last 5 whole s" \
        "$(jq -r '(.timeline // []) | .[:-1] | if length >= 10 then "\(([.[:5][][1]] | add) / 5) / \(([.[-5:][][1]] | add) / 5)" else "n/a (phase too short)" end' "$j")"
    if [[ $letters -gt 0 ]] && ! is_mysql; then
        result "$label: server storage writes per letter (KiB, /proc/PID/io write_bytes)" \
            "$(awk -v a="${io0#* }" -v b="${io1#* }" -v n="$letters" 'BEGIN { printf "%.2f", (b - a) / 1024 / n }')"
    fi
    if [[ $letters -gt 0 ]] && is_mysql; then
        result "$label: mariadbd storage writes per letter (KiB, /proc/PID/io write_bytes); buffer-pool disk reads per letter" \
            "$(awk -v a="${dio0#* }" -v b="${dio1#* }" -v n="$letters" 'BEGIN { printf "%.2f", (b - a) / 1024 / n }'); $(awk -v c="$(status_delta "$before" "$after" Innodb_buffer_pool_reads)" -v n="$letters" 'BEGIN { printf "%.3f", c / n }')"
        result "$label: DB connections opened per letter" "$(awk -v c="$(status_delta "$before" "$after" Connections)" -v n="$letters" 'BEGIN { printf "%.3f", c / n }')"
        result "$label: Com_stmt_prepare per letter" "$(awk -v c="$(status_delta "$before" "$after" Com_stmt_prepare)" -v n="$letters" 'BEGIN { printf "%.3f", c / n }')"
        result "$label: fsyncs per letter" "$(awk -v c="$(status_delta "$before" "$after" Innodb_data_fsyncs)" -v n="$letters" 'BEGIN { printf "%.3f", c / n }')"
    fi
    if is_mysql; then
        result "$label: CPU server / mariadbd / generator (% of one core)" "$(awk -v s=$((s1 - s0)) -v d=$((d1 - d0)) -v g="$(jq -r .generator_cpu_s "$j")" -v w="$wall" -v t="$TCK" \
            'BEGIN { printf "%.0f / %.0f / %.0f", 100 * s / t / w, 100 * d / t / w, 100 * g / w }')"
    else
        result "$label: CPU server (incl. embedded store) / generator (% of one core)" "$(awk -v s=$((s1 - s0)) -v g="$(jq -r .generator_cpu_s "$j")" -v w="$wall" -v t="$TCK" \
            'BEGIN { printf "%.0f / %.0f", 100 * s / t / w, 100 * g / w }')"
    fi
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

# metric NAME: one counter from the server's /metrics (0 if absent).
metric() { curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null | awk -v n="$1" '$1 == n { print $2; found = 1 } END { if (!found) print 0 }'; }

# After a redirect run: wait (up to 120 s) until every captured event is stored
# or dropped, then report the event pipeline's figures for the run.
events_report() { # LABEL T0 CAPTURED0 STORED0 DROPPED0 SPOOLED0
    local label=$1 t0=$2 c0=$3 st0=$4 dr0=$5 sp0=$6 c1 st1 dr1 sp1 depth t_end
    for _ in $(seq 1 1200); do
        c1=$(metric linktrack_events_captured_total); st1=$(metric linktrack_events_stored_total)
        dr1=$(metric linktrack_events_dropped_total); depth=$(metric linktrack_event_queue_depth)
        [[ $depth == 0 && $((st1 + dr1 - st0 - dr0)) -ge $((c1 - c0)) ]] && break
        sleep 0.1
    done
    t_end=$(date +%s.%N)
    sp1=$(metric linktrack_events_spooled_total)
    result "$label: events captured / stored / dropped / spooled" "$((c1 - c0)) / $((st1 - st0)) / $((dr1 - dr0)) / $((sp1 - sp0))"
    result "$label: events persisted per second, load start to last event stored" \
        "$(awk -v n=$((st1 - st0)) -v a="$t0" -v b="$t_end" 'BEGIN { printf "%.0f (%.1f s)", n / (b - a), b - a }')"
    if [[ $((dr1 - dr0)) != 0 || $((c1 - c0)) != $((st1 - st0)) ]]; then
        result "problem" "$label: $((c1 - c0)) events captured but $((st1 - st0)) stored and $((dr1 - dr0)) dropped"
    fi
    rollup_catch_up "$label" "$t0"
}

# Wait (up to ROLLUP_WAIT s) until the stats rollup has processed every event this
# server stored, so the next phase is not charged with this one's backlog.
# Events settle for burst window + flush interval + 2 s (13 s by default)
# before the rollup takes them.
rollup_catch_up() { # LABEL T0
    local label=$1 t0=$2 r0 r st t_end
    ((ROLLUP_WAIT > 0)) || return 0
    r0=$(metric linktrack_rollup_events_total)
    for _ in $(seq 1 $((ROLLUP_WAIT * 10))); do
        r=$(metric linktrack_rollup_events_total); st=$(metric linktrack_events_stored_total)
        ((r >= st)) && break
        sleep 0.1
    done
    t_end=$(date +%s.%N)
    if ((r < st)); then
        result "problem" "$label: rollup still behind after $ROLLUP_WAIT s ($r of $st events)"
        return 0
    fi
    result "$label: rollup caught up with every stored event, seconds after load start (events rolled up meanwhile)" \
        "$(awk -v a="$t0" -v b="$t_end" 'BEGIN { printf "%.1f", b - a }') ($((r - r0)) after the events were stored)"
}

redirect_run() { # LABEL [bare] ; sets LAST_RPS
    local label=$1 bare=${2:-}
    local before="$OUT/status-$label.0" after="$OUT/status-$label.1" settled="$OUT/status-$label.2" s0 d0 s1 d1 io0 io1 hogs ec0 es0 ed0 esp0
    hogs=$(other_cpu_hogs)
    if [[ -z $bare ]]; then
        ec0=$(metric linktrack_events_captured_total); es0=$(metric linktrack_events_stored_total)
        ed0=$(metric linktrack_events_dropped_total); esp0=$(metric linktrack_events_spooled_total)
    fi
    status_snapshot "$before"
    s0=$(cpu_ticks "$SERVER_PID"); d0=$(cpu_ticks "$(DB_PID)"); io0=$(io_bytes "$SERVER_PID")
    local t0 t1
    t0=$(date +%s.%N)
    WRK_STRICT=1 timeout $((DURATION + 60)) wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --latency --timeout 5s \
        -s "$HERE/zipf.lua" "http://127.0.0.1:$PORT" -- "$OUT/pool.txt" "$ZIPF_S" "$SEQUENCE" /c/ >"$OUT/wrk-$label.txt" 2>&1 || true
    t1=$(date +%s.%N)
    s1=$(cpu_ticks "$SERVER_PID"); d1=$(cpu_ticks "$(DB_PID)"); io1=$(io_bytes "$SERVER_PID")
    status_snapshot "$after"
    # TIME_WAIT sockets towards MariaDB: held by linktrack (dport) and by mariadbd (sport).
    local tw=
    is_mysql && tw="$(ss -Htan state time-wait "( dport = :$DB_PORT )" 2>/dev/null | wc -l) linktrack-side / $(ss -Htan state time-wait "( sport = :$DB_PORT )" 2>/dev/null | wc -l) mariadbd-side"
    grep -q '^WRK_JSON ' "$OUT/wrk-$label.txt" || { cat "$OUT/wrk-$label.txt" >&2; die "wrk failed in $label"; }
    local j
    j=$(sed -n 's/^WRK_JSON //p' "$OUT/wrk-$label.txt")
    echo "$j" >"$OUT/wrk-$label.json"
    local reqs
    reqs=$(jq -r .requests <<<"$j")
    log "$label: $(jq -c '{rps,p50_us,p99_us,max_us,unexpected_status,err_status,err_connect,err_read,err_timeout}' <<<"$j")"
    LAST_RPS=$(jq -r .rps <<<"$j")
    result "$label: redirects/s" "$LAST_RPS"
    result "$label: latency p50 / p99 / max (ms)" "$(jq -r '"\(.p50_us/1000) / \(.p99_us/1000) / \(.max_us/1000)"' <<<"$j")"
    result "$label: requests, non-3xx, socket errors (connect/read/write/timeout)" \
        "$(jq -r '"\(.requests), \(.unexpected_status), \(.err_connect)/\(.err_read)/\(.err_write)/\(.err_timeout)"' <<<"$j")"
    if [[ $(jq -r '.unexpected_status + .err_connect + .err_read + .err_write + .err_timeout' <<<"$j") != 0 ]]; then
        result "problem" "$label: $(jq -c '{unexpected_status,err_status,err_connect,err_read,err_write,err_timeout}' <<<"$j")"
    fi
    local wall
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    [[ -n $bare ]] || events_report "$label" "$t0" "$ec0" "$es0" "$ed0" "$esp0"
    # Again once every event is stored and (ROLLUP_WAIT > 0) rolled up: what a redirect costs the database in all.
    [[ -n $bare ]] || status_snapshot "$settled"
    if [[ -n $bare ]]; then
        result "$label: CPU bare server (% of one core)" "$(awk -v s=$((s1 - s0)) -v w="$wall" -v t="$TCK" 'BEGIN { printf "%.0f", 100 * s / t / w }')"
        [[ -z $hogs ]] || result "$label: other busy processes at start" "$hogs"
        return 0
    fi
    if is_mysql; then
        per() { awk -v c="$(status_delta "$before" "$after" "$1")" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.3f", c / n; else print "n/a" }'; }
        # per_k COUNTER...: the sum of the counters' deltas from the load's start until the events were rolled up, per 1000 redirects.
        per_k() {
            local c=0 name
            for name in "$@"; do c=$((c + $(status_delta "$before" "$settled" "$name" | awk '{ print $1 + 0 } END { if (!NR) print 0 }'))); done
            awk -v c="$c" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.1f", 1000 * c / n; else print "n/a" }'
        }
        result "$label: per redirect: Com_stmt_execute / Com_select / Questions" "$(per Com_stmt_execute) / $(per Com_select) / $(per Questions)"
        result "$label: per redirect: new DB connections / Com_stmt_prepare / buffer-pool disk reads" "$(per Connections) / $(per Com_stmt_prepare) / $(per Innodb_buffer_pool_reads)"
        # Index work on the server, all sessions (the event writer and rollup included, unless SERVE_ARGS takes the rollup out).
        result "$label: per redirect: Handler_read_key / Handler_read_next / Handler_read_rnd_next" \
            "$(per Handler_read_key) / $(per Handler_read_next) / $(per Handler_read_rnd_next)"
        # Load start until every event was stored and rolled up: the redirect, its event's write and its rollup
        # (plus the rollup's idle polls until it caught up). A warm redirect itself runs no statement.
        local upto="until events stored and rolled up"
        ((ROLLUP_WAIT > 0)) || upto="until events stored (ROLLUP_WAIT=0: rollup not awaited)"
        result "$label: per 1000 redirects, load start $upto: statements (Questions) / Com_stmt_execute / Com_select / Com_insert / Com_update" \
            "$(per_k Questions) / $(per_k Com_stmt_execute) / $(per_k Com_select) / $(per_k Com_insert) / $(per_k Com_update)"
        # Rows_read is MariaDB's counter of rows read, Innodb_rows_read MySQL's (each server lacks the other's).
        result "$label: per 1000 redirects, load start $upto: rows read (Rows_read or Innodb_rows_read) / Handler_read_key / Handler_read_next / Handler_read_rnd_next" \
            "$(per_k Rows_read Innodb_rows_read) / $(per_k Handler_read_key) / $(per_k Handler_read_next) / $(per_k Handler_read_rnd_next)"
        result "$label: per redirect: CPU µs server / mariadbd (/proc/PID/stat utime+stime)" \
            "$(awk -v s=$((s1 - s0)) -v d=$((d1 - d0)) -v t="$TCK" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.1f / %.1f", s / t * 1e6 / n, d / t * 1e6 / n; else print "n/a" }')"
        result "$label: CPU server / mariadbd (% of one core); TIME_WAIT to MariaDB after" "$(awk -v s=$((s1 - s0)) -v d=$((d1 - d0)) -v w="$wall" -v t="$TCK" \
            'BEGIN { printf "%.0f / %.0f", 100 * s / t / w, 100 * d / t / w }'); $tw"
    else
        # No statement counters for the embedded store; storage reads show whether lookups hit the disk or the page cache.
        result "$label: server storage reads per redirect (bytes, /proc/PID/io read_bytes)" \
            "$(awk -v a="${io0% *}" -v b="${io1% *}" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.1f", (b - a) / n; else print "n/a" }')"
        result "$label: CPU server (incl. embedded store) (% of one core)" "$(awk -v s=$((s1 - s0)) -v w="$wall" -v t="$TCK" 'BEGIN { printf "%.0f", 100 * s / t / w }')"
    fi
    [[ -z $hogs ]] || result "$label: other busy processes at start" "$hogs"
    local v
    v=$(python3 "$HERE/verify.py" --url "http://127.0.0.1:$PORT" --clicks "$OUT/pool.tsv" --pixels "$OUT/pixels.txt" || true)
    result "$label: spot-check after load (302 + exact Location, HEAD, pixel, forged->404)" "$(jq -r '"\(.checked) checked, \(.problems) wrong"' <<<"$v")"
    if [[ $(jq -r .problems <<<"$v") != 0 ]]; then
        result "problem" "$label spot-check: $(jq -c .examples <<<"$v")"
    fi
}

bytes_phase() {
    if is_mysql; then
        sql -e "CREATE DATABASE lt_bytes"
        "$BIN" migrate --database-url "$(db_url lt_bytes)" >>"$OUT/migrate.log" 2>&1
    fi
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
    if is_mysql; then
        result "bulk mint: CPU server / mariadbd (% of one core)" "$(awk -v s=$((s1 - s0)) -v d=$((d1 - d0)) -v w="$(jq -r .wall_s "$j")" -v t="$TCK" 'BEGIN { printf "%.0f / %.0f", 100 * s / t / w, 100 * d / t / w }')"
    else
        result "bulk mint: CPU server (incl. embedded store) (% of one core)" "$(awk -v s=$((s1 - s0)) -v w="$(jq -r .wall_s "$j")" -v t="$TCK" 'BEGIN { printf "%.0f", 100 * s / t / w }')"
    fi
    [[ -z $hogs ]] || result "bulk mint: other busy processes at start" "$hogs"
    [[ $(jq -r '.non_201 + .conn_errors' "$j") == 0 ]] || result "problem" "bulk mint: statuses $(jq -c .statuses "$j") sample: $(jq -r '.error_sample // .conn_error_sample' "$j")"
    stop_server
    if is_mysql; then bytes_mysql; else bytes_sqlite "$(jq -r .links_minted "$j")"; fi
}

bytes_mysql() {
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

# Embedded store: measured on the files after the bytes server stopped cleanly (SIGTERM).
bytes_sqlite() { # LINKS_MINTED
    local links=$1 dir days
    dir=$(sqlite_dir lt_bytes)
    days="$dir/linktrack.db.days"
    [[ $links -gt 0 ]] || die "bytes phase minted no links"
    sum_sizes() { awk '{ s += $1 } END { print s + 0 }'; }
    # 1. Sizes first, before anything else opens the files.
    local n_files db_bytes wal_bytes alloc big big_bytes
    n_files=$(find "$days" -maxdepth 1 -name '*.db' | wc -l)
    db_bytes=$(find "$days" -maxdepth 1 -name '*.db' -printf '%s\n' | sum_sizes)
    wal_bytes=$(find "$days" -maxdepth 1 -name '*.db-wal' -printf '%s\n' | sum_sizes)
    alloc=$(find "$days" -maxdepth 1 \( -name '*.db' -o -name '*.db-wal' \) -printf '%b\n' | awk '{ s += $1 * 512 } END { print s + 0 }')
    big=$(find "$days" -maxdepth 1 -name '*.db' -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)
    big_bytes=$(stat -c %s "$big")
    result "bytes: day files (count), *.db bytes, *-wal bytes after clean stop" "$n_files, $db_bytes, $wal_bytes"
    result "bytes: all day files (*.db + -wal) per link minted ($links links)" "$(awk -v b=$((db_bytes + wal_bytes)) -v l="$links" 'BEGIN { printf "%.1f", b / l }')"
    result "bytes: the day file with the links ($(basename "$big")): MiB / per link" \
        "$(awk -v b="$big_bytes" -v l="$links" 'BEGIN { printf "%.1f / %.1f", b / 1048576, b / l }')"
    result "bytes: the other $((n_files - 1)) (empty) day files, KiB in all" "$(( (db_bytes - big_bytes) / 1024 ))"
    result "bytes: allocated on disk (du) for the day files, per link" "$(awk -v b="$alloc" -v l="$links" 'BEGIN { printf "%.1f", b / l }')"
    result "bytes: main file (settings, migrations; not counted)" "$(stat -c %s "$dir/linktrack.db") bytes"
    # 2. Where the bytes go: SQLite's dbstat over the day file with the links.
    if command -v sqlite3 >/dev/null; then
        local rows
        rows=$(sqlite3 "$big" "SELECT (SELECT COUNT(*) FROM links) || ' / ' || (SELECT COUNT(*) FROM urls) || ' / ' || (SELECT COUNT(*) FROM letters)")
        result "bytes: rows in that file: links / urls / letters" "$rows"
        result "bytes: page size, pages, free pages" "$(sqlite3 -separator ', ' "$big" "SELECT * FROM pragma_page_size, pragma_page_count, pragma_freelist_count")"
        local name pg payload unused
        while IFS='|' read -r name pg payload unused; do
            result "bytes: b-tree $name: MiB / per link / fill (payload / page bytes)" \
                "$(awk -v b="$pg" -v l="$links" -v p="$payload" 'BEGIN { printf "%.1f / %.1f / %.0f%%", b / 1048576, b / l, 100 * p / b }')"
        done < <(sqlite3 "$big" "SELECT name, SUM(pgsize), SUM(payload), SUM(unused) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 6")
    else
        result "bytes: b-tree breakdown" "skipped: no sqlite3 CLI"
    fi
    # 3. Seed-style baseline in SQLite (same rows as the MariaDB baseline), for the ratio.
    log "seed-style baseline in SQLite: $SEED_ROWS rows, random 32-hex TEXT PK (WITHOUT ROWID) + JSON text"
    local t0 t1 seed_bytes
    t0=$(date +%s.%N)
    python3 "$HERE/seed_sql.py" --rows "$SEED_ROWS" --sqlite "$OUT/seed-baseline.db"
    t1=$(date +%s.%N)
    seed_bytes=$(stat -c %s "$OUT/seed-baseline.db")
    result "bytes: SQLite seed baseline per row ($SEED_ROWS rows; loaded at $(awk -v a="$t0" -v b="$t1" -v n="$SEED_ROWS" 'BEGIN { printf "%.0f", n / (b - a) }') rows/s)" \
        "$(awk -v b="$seed_bytes" -v r="$SEED_ROWS" 'BEGIN { printf "%.1f", b / r }')"
    result "bytes: ratio all day files per link / SQLite seed per row (target <= 0.333)" \
        "$(awk -v a=$((db_bytes + wal_bytes)) -v l="$links" -v b="$seed_bytes" -v r="$SEED_ROWS" 'BEGIN { printf "%.3f", (a / l) / (b / r) }')"
}

bare_phase() {
    [[ -z $SERVER_PID ]] || die "bare phase: server '$SERVER_NAME' is still running"
    "$BARE_BIN" "127.0.0.1:$PORT" >"$OUT/server-bare.log" 2>&1 &
    SERVER_PID=$!
    SERVER_NAME=bare
    SERVER_DIR=
    local code=
    for _ in $(seq 1 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/c/x" 2>/dev/null || true)
        [[ $code == 302 ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/server-bare.log" >&2; die "bare server exited during start-up"; }
        sleep 0.2
    done
    [[ $code == 302 ]] || die "bare server did not answer 302 within 20 s"
    log "bare server up (pid $SERVER_PID); bare hyper baseline, ${DURATION}s, $CONNECTIONS connections"
    redirect_run "bare hyper baseline" bare
    BARE_RPS=$LAST_RPS
    stop_server
    if [[ -n $WARM_RPS ]]; then
        result "warm / bare req/s (spec target >= 0.6)" "$(awk -v w="$WARM_RPS" -v b="$BARE_RPS" 'BEGIN { printf "%.3f", w / b }')"
    fi
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
DIRTY=$({ git -C "$BIN_TREE" status --porcelain --untracked-files=no 2>/dev/null || true; } | wc -l)
result "date (UTC)" "$(date -u '+%Y-%m-%d %H:%M')"
result "commit (of the tree BIN was built in)" "$COMMIT$([[ $DIRTY == 0 ]] || echo " (+$DIRTY modified tracked files in that tree)")"
result "machine" "$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -r)"
result "binary" "$BIN ($(date -u -r "$BIN" '+%Y-%m-%d %H:%M'))"
# A binary older than its tree's sources measures something else (run.sh only builds a missing one).
BIN_SRC=$(git -C "$BIN_TREE" rev-parse --show-toplevel 2>/dev/null || true)
if [[ -n $BIN_SRC ]] && [[ -n $(find "$BIN_SRC/src" "$BIN_SRC/Cargo.toml" "$BIN_SRC/Cargo.lock" -newer "$BIN" -print -quit 2>/dev/null) ]]; then
    log "WARNING: $BIN is older than sources in $BIN_SRC; run cargo build --release there"
    result "problem" "binary $BIN is older than sources in $BIN_SRC (stale build?)"
fi
result "settings" "STORE=$STORE PHASES=\"$PHASES\" DURATION=${DURATION}s CONNECTIONS=$CONNECTIONS THREADS=$THREADS MINT_CLIENTS=$MINT_CLIENTS MINT_BIG_CLIENTS=$MINT_BIG_CLIENTS ZIPF_S=$ZIPF_S POOL_TOKENS=$POOL_TOKENS"

WARM_RPS=
BARE_RPS=
LAST_RPS=
if has_phase bare; then
    # Build the baseline before anything is measured, in the tree BIN was built in, so both are the same commit.
    if [[ -z $BARE_BIN ]]; then
        BARE_SRC=$(git -C "$BIN_TREE" rev-parse --show-toplevel 2>/dev/null || echo "$ROOT")
        log "building examples/bare_redirect in $BARE_SRC"
        (cd "$BARE_SRC" && cargo build --release --example bare_redirect) >&2 || die "cargo build --release --example bare_redirect failed in $BARE_SRC"
        BARE_BIN=$(dirname "$BIN")/examples/bare_redirect
    fi
    [[ -x $BARE_BIN ]] || die "no bare baseline binary at $BARE_BIN"
    result "bare baseline binary" "$BARE_BIN ($(date -u -r "$BARE_BIN" '+%Y-%m-%d %H:%M'))"
fi

if is_mysql; then
    "$HERE/mariadb.sh" start >&2
    DB_STARTED=1
    result "mariadb" "$(sql -e "SELECT CONCAT(VERSION(), ', buffer pool ', @@innodb_buffer_pool_size DIV 1048576, ' MiB, flush_log_at_trx_commit=', @@innodb_flush_log_at_trx_commit, ', log file ', @@innodb_log_file_size DIV 1048576, ' MiB')")"
    sql -e "CREATE DATABASE lt_bench"
    "$BIN" migrate --database-url "$(db_url lt_bench)" >>"$OUT/migrate.log" 2>&1
else
    result "store" "embedded SQLite (rusqlite bundled$(awk '/^name = "libsqlite3-sys"/ { getline; gsub(/[^0-9.]/, ""); printf ", libsqlite3-sys %s", $0 }' "$(git -C "$BIN_TREE" rev-parse --show-toplevel 2>/dev/null || echo "$ROOT")/Cargo.lock" 2>/dev/null)), $(db_url lt_bench), created by serve (migrate + today + 7 days ahead); $(findmnt -no FSTYPE -T "$OUT" 2>/dev/null || echo '?') under $OUT"
fi

if has_phase mint || has_phase warm || has_phase cold || has_phase bare; then
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
        result "token pool mint: letters, non-201, connection errors" "$(jq -r '"\(.requests), \(.non_201), \(.conn_errors)"' "$OUT/mint-prep.json")"
        if [[ $(jq -r '.non_201 + .conn_errors' "$OUT/mint-prep.json") != 0 ]]; then
            result "problem" "token pool mint: statuses $(jq -c .statuses "$OUT/mint-prep.json")"
        fi
    fi
    make_pool
    if has_phase warm; then
        log "warm redirects: default cache, same server that minted, ${DURATION}s, $CONNECTIONS connections"
        redirect_run "warm redirect (cache)"
        WARM_RPS=$LAST_RPS
    fi
    stop_server
    if has_phase cold; then
        start_server cold lt_bench --cache-bytes 0 --negative-cache-entries 0
        log "cold redirects: --cache-bytes 0, ${DURATION}s, $CONNECTIONS connections"
        redirect_run "cold redirect (DB lookup)"
        stop_server
    fi
    if has_phase bare; then
        bare_phase
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
