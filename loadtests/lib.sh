# Shared shell helpers for the load-test scripts (sourced, not run).

# term_and_wait PID SECONDS: send SIGTERM to PID and wait up to SECONDS for it
# to exit. Returns 0 once it is gone, 1 if it is still running afterwards.
term_and_wait() {
    local pid=$1 secs=$2 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid"
    for ((i = 0; i < secs * 4; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.25
    done
    ! kill -0 "$pid" 2>/dev/null
}

# sysbench_point OUT ROWS THREADS DURATION: sysbench oltp_point_select (1.0.x
# defaults otherwise: --rand-type=special, prepared statements) on one table
# of ROWS rows in a fresh private MariaDB (mariadb.sh, with the caller's
# LT_MARIADB_STATE and LT_MARIADB_PORT), stopped by its PID afterwards.
# Writes OUT/sysbench-{prepare,run,time,status0,status1}.txt and sets SB_QPS,
# SB_P99, SB_CPU (sysbench and mariadbd, % of one core), SB_CPU_US (mariadbd
# CPU µs per point select, from /proc/PID/stat utime+stime) and SB_HANDLER
# (Handler_read_key / _next / _rnd_next per point select, SHOW GLOBAL STATUS
# before and after the run, so the same figures as run.sh's cold phase).
sysbench_point() {
    local out=$1 rows=$2 threads=$3 duration=$4 port=${LT_MARIADB_PORT:?} d0 d1 dpid n
    local mdb
    mdb="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/mariadb.sh"
    command -v sysbench >/dev/null || { echo "sysbench not found (apt-get install -y sysbench)" >&2; return 1; }
    mkdir -p "$out"
    "$mdb" start >&2
    mariadb --no-defaults -h 127.0.0.1 -P "$port" -u root -e 'CREATE DATABASE sbtest'
    local sb=(sysbench oltp_point_select --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$port"
        --mysql-user=root --mysql-db=sbtest --tables=1 --table-size="$rows")
    timeout 600 "${sb[@]}" prepare >"$out/sysbench-prepare.txt"
    dpid=$(cat "$LT_MARIADB_STATE/pid")
    local status_sql="SHOW GLOBAL STATUS WHERE Variable_name IN ('Handler_read_key', 'Handler_read_next', 'Handler_read_rnd_next', 'Com_stmt_execute')"
    mariadb --no-defaults -h 127.0.0.1 -P "$port" -u root -N -B -e "$status_sql" >"$out/sysbench-status0.txt"
    d0=$(awk '{ print $14 + $15 }' "/proc/$dpid/stat")
    local TIMEFORMAT='%U %S %R'
    { time timeout $((duration + 60)) "${sb[@]}" --threads="$threads" --time="$duration" --percentile=99 run >"$out/sysbench-run.txt"; } 2>"$out/sysbench-time.txt"
    d1=$(awk '{ print $14 + $15 }' "/proc/$dpid/stat")
    mariadb --no-defaults -h 127.0.0.1 -P "$port" -u root -N -B -e "$status_sql" >"$out/sysbench-status1.txt"
    # Point selects run: the read count of sysbench's own summary.
    n=$(awk '/^ +read:/ { print $2; exit }' "$out/sysbench-run.txt")
    SB_CPU_US=$(awk -v d=$((d1 - d0)) -v t="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { if (n > 0) printf "%.1f", d / t * 1e6 / n; else print "n/a" }')
    SB_HANDLER=$(awk -v n="$n" 'NR == FNR { a[$1] = $2; next } { d[$1] = $2 - a[$1] }
        END { if (n > 0) printf "%.3f / %.3f / %.3f", d["Handler_read_key"] / n, d["Handler_read_next"] / n, d["Handler_read_rnd_next"] / n; else print "n/a" }' \
        "$out/sysbench-status0.txt" "$out/sysbench-status1.txt")
    SB_CPU=$(awk -v d=$((d1 - d0)) -v t="$(getconf CLK_TCK)" '{ printf "sysbench %.0f %%, mariadbd %.0f %%", 100 * ($1 + $2) / $3, 100 * d / t / $3 }' "$out/sysbench-time.txt")
    "$mdb" stop >&2
    SB_QPS=$(awk '/queries:/ { gsub(/[()]/, "", $3); print $3 }' "$out/sysbench-run.txt")
    SB_P99=$(awk '/99th percentile:/ { print $3 }' "$out/sysbench-run.txt")
}
