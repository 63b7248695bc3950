#!/usr/bin/env bash
# Token v2 knee: the mint rate of ONE day's partition from 1 M to 30 M links,
# v1 (UNIQUE (rnd, day) on random bytes) against v2 (primary key on reserved
# ids), on MariaDB with a 128 MiB buffer pool and on the embedded store.
#
#   cargo build --release --example knee
#   loadtests/knee.sh                                    # about 45-55 minutes
#   V2_TO=3000000 V1_MAX_SECS=120 SQLITE_TO=2000000 loadtests/knee.sh   # quick smoke
#
# What it does (examples/knee.rs mints straight through the Store, no HTTP):
#   1. Starts TWO private MariaDB servers with loadtests/mariadb.sh (own state
#      dirs under $OUT, ports DB_PORT_V1 / DB_PORT_V2, 128 MiB buffer pool
#      each, loopback only): one for v1, one for v2.
#   2. Alternates ABAB in STEP-link steps, all in one day partition: v1 to
#      1 M, v2 to 1 M, v1 to 2 M, v2 to 2 M, ... v2 up to V2_TO; v1 up to
#      V1_TO or until it has spent V1_MAX_SECS minting (then v2 goes on alone).
#      Per step: links/s and Innodb_buffer_pool_reads per minted link.
#   3. Bytes per link on each server: ANALYZE TABLE, then DATA_LENGTH +
#      INDEX_LENGTH of the day's partition of links / links_v2 (and of urls
#      and letters) from information_schema.PARTITIONS, over the links counted.
#      Then the v2 probe: STEP links into the full day, then STEP links into
#      a fresh day partition, PROBE_ROUNDS times (ratio full / fresh).
#   4. Stops both servers (by PID, through mariadb.sh stop), then the embedded
#      store: v1 and v2 each into one day file of its own store, ABAB in STEP
#      steps up to SQLITE_TO; v1 capped at SQLITE_V1_MAX_SECS.
#
# Only processes this script started are stopped; every mint run has a
# `timeout`. Raw output: $OUT/knee.log (one line per step), $OUT/bytes.txt,
# $OUT/summary.md (tables), $OUT/*.err (stderr of each tool).
#
# Knobs: OUT [/tmp/linktrack-knee-<time>], KNEE [target/release/examples/knee],
# STEP [1000000], V1_TO [30000000], V2_TO [30000000], V1_MAX_SECS [1500],
# SQLITE_TO [8000000], SQLITE_V1_MAX_SECS [600], CONCURRENCY [8],
# DB_PORT_V1 [3395], DB_PORT_V2 [3396], PHASES ["mysql sqlite"], PROBE_ROUNDS [4]
# (v2 only: STEP links into the full day, then into a fresh day, alternated;
# 0 skips). V1_TO=0 runs v2 alone, back to back.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
OUT=${OUT:-/tmp/linktrack-knee-$(date -u +%Y%m%d-%H%M%S)}
KNEE=${KNEE:-$ROOT/target/release/examples/knee}
STEP=${STEP:-1000000}
V1_TO=${V1_TO:-30000000}
V2_TO=${V2_TO:-30000000}
V1_MAX_SECS=${V1_MAX_SECS:-1500}
SQLITE_TO=${SQLITE_TO:-8000000}
SQLITE_V1_MAX_SECS=${SQLITE_V1_MAX_SECS:-600}
CONCURRENCY=${CONCURRENCY:-8}
DB_PORT_V1=${DB_PORT_V1:-3395}
DB_PORT_V2=${DB_PORT_V2:-3396}
PHASES=${PHASES:-"mysql sqlite"}
PROBE_ROUNDS=${PROBE_ROUNDS:-4}
DAY=$(date -u +%F)                 # one fixed day for the whole run, even across midnight
PART=p$(date -u -d "$DAY" +%Y%m%d) # its partition (store::mysql::partition_name)

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/knee.log
: >"$LOG"
STARTED=()

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
has_phase() { [[ " $PHASES " == *" $1 "* ]]; }
state() { echo "$OUT/mariadb-v$1"; }
port() { if [[ $1 == 1 ]]; then echo "$DB_PORT_V1"; else echo "$DB_PORT_V2"; fi; }
db() { LT_MARIADB_STATE=$(state "$1") LT_MARIADB_PORT=$(port "$1") "$HERE/mariadb.sh" "${@:2}"; }
sql() { mariadb --no-defaults -h 127.0.0.1 -P "$(port "$1")" -u root -N -B lt -e "$2"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

cleanup() {
    local rc=$? v
    for v in "${STARTED[@]}"; do db "$v" stop >/dev/null 2>&1 || true; done
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ! -x $KNEE ]]; then
    log "building examples/knee"
    (cd "$ROOT" && cargo build --release --example knee)
fi
{
    echo "# knee run $(date -u +%FT%TZ), day $DAY, host $(hostname), $(nproc) cores"
    echo "# git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?), knee $KNEE"
    echo "# STEP=$STEP V1_TO=$V1_TO V2_TO=$V2_TO V1_MAX_SECS=$V1_MAX_SECS SQLITE_TO=$SQLITE_TO SQLITE_V1_MAX_SECS=$SQLITE_V1_MAX_SECS CONCURRENCY=$CONCURRENCY"
} >>"$LOG"

# knee STORE VERSION FROM TO MAX_SECS TARGET_ARGS...: one run of the tool;
# appends its step lines to the log with the store, the 1-minute load average
# and the CPU the database server used; prints the links the day then holds.
knee() {
    local store=$1 v=$2 from=$3 to=$4 max=$5
    shift 5
    local dbpid=0 c0 c1 t0 t1 rc=0 out=$OUT/last-step.out
    if [[ $store == mysql ]]; then dbpid=$(cat "$(state "$v")/pid"); fi
    c0=$(cpu_ticks "$dbpid")
    t0=$(date +%s.%N)
    timeout --kill-after=10 $((${max%.*} + 300)) "$KNEE" --version "$v" --day "${KNEE_DAY:-$DAY}" --from "$from" --to "$to" \
        --step "$STEP" --concurrency "$CONCURRENCY" --max-secs "$max" "$@" >"$out" 2>>"$OUT/knee-$store-v$v.err" || rc=$?
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$dbpid")
    local extra
    extra="load1=$(cut -d' ' -f1 /proc/loadavg) wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
    if [[ $store == mysql ]]; then
        extra+=" db_cpu=$(awk -v c=$((c1 - c0)) -v t="$(getconf CLK_TCK)" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f%%", 100 * c / t / (b - a) }')"
    fi
    grep '^step ' "$out" | sed "s/^/${KNEE_LABEL:-$store} /; s/\$/ $extra/" >>"$LOG" || true
    if [[ $rc != 0 ]]; then
        log "knee $store v$v exited with $rc (see $OUT/knee-$store-v$v.err)"
        echo "$store problem version=$v exit=$rc from=$from to=$to" >>"$LOG"
    fi
    local reached
    reached=$(sed -n 's/^reached=//p' "$out")
    echo "${reached:-$from}"
}

# abab STORE V1_TO V2_TO V1_MAX_SECS ARGS_V1 ARGS_V2: the alternating series.
abab() {
    local store=$1 v1_to=$2 v2_to=$3 v1_max=$4 args1=$5 args2=$6
    local at1=0 at2=0 used1=0 target=$STEP t0 t1 left
    local top=$((v1_to > v2_to ? v1_to : v2_to))
    local v1_on=1
    while ((target <= top)); do
        if ((v1_on && target <= v1_to)); then
            left=$(awk -v m="$v1_max" -v u="$used1" 'BEGIN { printf "%.0f", m - u }')
            if ((left <= 0)); then
                v1_on=0
                echo "$store note version=1 stopped at $at1 links: its ${v1_max}s budget is spent" >>"$LOG"
            else
                log "$store v1: $at1 -> $target (budget left ${left}s)"
                t0=$(date +%s)
                # shellcheck disable=SC2086
                at1=$(knee "$store" 1 "$at1" "$target" "$left" $args1)
                t1=$(date +%s)
                used1=$((used1 + t1 - t0))
                if ((at1 < target)); then
                    v1_on=0
                    echo "$store note version=1 stopped at $at1 links after ${used1}s (budget ${v1_max}s)" >>"$LOG"
                fi
            fi
        fi
        if ((target <= v2_to)); then
            log "$store v2: $at2 -> $target"
            # shellcheck disable=SC2086
            at2=$(knee "$store" 2 "$at2" "$target" 900 $args2)
            if ((at2 < target)); then
                echo "$store note version=2 stopped at $at2 links" >>"$LOG"
                break
            fi
        fi
        target=$((target + STEP))
    done
    echo "$store reached version=1 links=$at1 mint_wall_s=$used1" >>"$LOG"
    echo "$store reached version=2 links=$at2" >>"$LOG"
}

# Bytes per link of server V: the day's partition of each table, after ANALYZE.
bytes() {
    local v=$1 table=links
    [[ $v == 2 ]] && table=links_v2
    sql "$v" "ANALYZE TABLE $table, urls, letters" >/dev/null
    local n
    n=$(sql "$v" "SELECT COUNT(*) FROM $table PARTITION ($PART)")
    if [[ $n == 0 ]]; then
        echo "mysql bytes version=$v no links minted"
        return 0
    fi
    sql "$v" "SELECT TABLE_NAME, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH FROM information_schema.PARTITIONS
              WHERE TABLE_SCHEMA = 'lt' AND PARTITION_NAME = '$PART' AND TABLE_NAME IN ('$table', 'urls', 'letters')
              ORDER BY TABLE_NAME" |
        awk -v v="$v" -v n="$n" -v part="$PART" '
            { b = $3 + $4; tot += b
              printf "mysql bytes version=%s table=%s partition=%s rows_estimate=%s data=%.0f index=%.0f per_link=%.1f\n", v, $1, part, $2, $3, $4, b / n }
            END { printf "mysql bytes version=%s table=all links_counted=%.0f per_link=%.1f\n", v, n, tot / n }'
    sql "$v" "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('innodb_buffer_pool_size', 'innodb_change_buffering', 'innodb_log_file_size', 'innodb_flush_log_at_trx_commit', 'version')" |
        awk -v v="$v" '{ printf "mysql setting version=%s %s=%s\n", v, $1, $2 }'
}

if has_phase mysql; then
    VERSIONS=()
    ((V1_TO > 0)) && VERSIONS+=(1)
    ((V2_TO > 0)) && VERSIONS+=(2)
    for v in "${VERSIONS[@]}"; do
        db "$v" start >&2
        STARTED+=("$v")
        mariadb --no-defaults -h 127.0.0.1 -P "$(port "$v")" -u root -e "CREATE DATABASE lt"
    done
    abab mysql "$V1_TO" "$V2_TO" "$V1_MAX_SECS" "--mysql mysql://root@127.0.0.1:$DB_PORT_V1/lt" "--mysql mysql://root@127.0.0.1:$DB_PORT_V2/lt"
    log "bytes per link"
    for v in "${VERSIONS[@]}"; do bytes "$v" | tee -a "$OUT/bytes.txt" >>"$LOG"; done
    # Probe: v2 STEP links into the big day, then STEP links into a fresh day
    # partition of the same table and server, alternated PROBE_ROUNDS times.
    # The same load into an empty and into a full partition, back to back, so
    # the machine's drift hits both alike.
    if ((PROBE_ROUNDS > 0 && V2_TO > 0)); then
        at=$(sql 2 "SELECT COUNT(*) FROM links_v2 PARTITION ($PART)")
        for ((r = 1; r <= PROBE_ROUNDS; r++)); do
            log "probe $r: v2 $at -> $((at + STEP)) in $DAY, then 0 -> $STEP in a fresh day"
            at=$(KNEE_LABEL=probe-full knee mysql 2 "$at" $((at + STEP)) 900 --mysql "mysql://root@127.0.0.1:$DB_PORT_V2/lt")
            KNEE_LABEL=probe-fresh KNEE_DAY=$(date -u -d "$DAY + $r day" +%F) knee mysql 2 0 "$STEP" 900 \
                --mysql "mysql://root@127.0.0.1:$DB_PORT_V2/lt" >/dev/null
        done
    fi
    for v in "${VERSIONS[@]}"; do
        du -sm "$(cat "$(state "$v")/dir")/data/lt" | awk -v v="$v" '{ printf "mysql disk version=%s lt_dir_mib=%s\n", v, $1 }' >>"$LOG"
        db "$v" stop >&2
    done
    STARTED=()
fi

if has_phase sqlite; then
    mkdir -p "$OUT/sqlite-v1" "$OUT/sqlite-v2"
    abab sqlite "$SQLITE_TO" "$SQLITE_TO" "$SQLITE_V1_MAX_SECS" "--sqlite $OUT/sqlite-v1/lt.db" "--sqlite $OUT/sqlite-v2/lt.db"
    for v in 1 2; do
        f="$OUT/sqlite-v$v/lt.db.days/$DAY.db"
        ls -l "$f"* 2>/dev/null | awk -v v="$v" '{ s += $5 } END { printf "sqlite disk version=%s day_file_bytes=%.0f\n", v, s }' >>"$LOG"
    done
fi

# Summary: one table per store, a row per step target.
awk '
    $2 == "step" {
        for (i = 3; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        key = $1 SUBSEP f["to"]; rows[$1] = rows[$1] " " f["to"]
        rate[key, f["version"]] = f["rate"]; reads[key, f["version"]] = f["bp_reads_per_link"]
        load[key, f["version"]] = f["load1"]
        if (f["from"] == 0) first[$1, f["version"]] = f["rate"]
        last[$1, f["version"]] = f["rate"]; lastto[$1, f["version"]] = f["to"]
    }
    END {
        split("mysql sqlite", stores, " ")
        for (s = 1; s <= 2; s++) {
            st = stores[s]
            if (!(st in rows)) continue
            printf "\n### %s\n\n| links in the day | v1 links/s | v1 bp reads/link | v2 links/s | v2 bp reads/link | load1 v1 / v2 |\n|---|---|---|---|---|---|\n", st
            n = split(rows[st], tos, " "); delete seen
            for (i = 1; i <= n; i++) {
                t = tos[i]; if (t in seen) continue; seen[t] = 1; k = st SUBSEP t
                printf "| %s | %s | %s | %s | %s | %s / %s |\n", t, rate[k, 1], reads[k, 1], rate[k, 2], reads[k, 2], load[k, 1], load[k, 2]
            }
            for (v = 1; v <= 2; v++) if ((st, v) in first)
                printf "\n%s v%d: last step (to %s) / first step = %.3f\n", st, v, lastto[st, v], last[st, v] / first[st, v]
        }
    }' "$LOG" >"$OUT/summary.md"
awk '$1 ~ /^probe-/ && $2 == "step" { split($8, r, "="); s[$1] += r[2]; n[$1]++; all[$1] = all[$1] " " r[2] }
    END { if (n["probe-full"] && n["probe-fresh"])
        printf "\nprobe: v2 into the full day %s (mean %.0f) / into a fresh day %s (mean %.0f) = %.3f\n",
            all["probe-full"], s["probe-full"] / n["probe-full"], all["probe-fresh"], s["probe-fresh"] / n["probe-fresh"],
            (s["probe-full"] / n["probe-full"]) / (s["probe-fresh"] / n["probe-fresh"]) }' "$LOG" >>"$OUT/summary.md"
grep -h 'bytes\|note\|reached\|problem\|disk' "$LOG" >>"$OUT/summary.md" || true
cat "$OUT/summary.md"
log "raw output in $OUT"
