#!/usr/bin/env bash
# A private, throw-away MariaDB for load tests.
#
#   loadtests/mariadb.sh start    # install a fresh datadir under /tmp and start mariadbd
#   loadtests/mariadb.sh url      # print mysql://root@127.0.0.1:PORT/
#   loadtests/mariadb.sh status   # running or not
#   loadtests/mariadb.sh stop     # stop the server started by `start` (by its PID) and delete its files
#
# The server is MariaDB with its defaults except a 128 MiB buffer pool (the
# setting the spec's measurements use), no binary log, loopback only.
# Durability stays at the default (innodb_flush_log_at_trx_commit=1).
#
# Environment:
#   LT_MARIADB_STATE  state directory (pid, port, datadir path); default /tmp/linktrack-loadtest-mariadb
#   LT_MARIADB_PORT   TCP port; default 3391
#   LT_MARIADB_EXTRA  extra mariadbd options, e.g. "--innodb-buffer-pool-size=1G"
#   MARIADBD          path of mariadbd; default /usr/sbin/mariadbd
set -euo pipefail
# shellcheck source=loadtests/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

STATE=${LT_MARIADB_STATE:-/tmp/linktrack-loadtest-mariadb}
PORT=${LT_MARIADB_PORT:-3391}
MARIADBD=${MARIADBD:-/usr/sbin/mariadbd}

die() { echo "mariadb.sh: $*" >&2; exit 1; }

client() { mariadb --no-defaults -h 127.0.0.1 -P "$(cat "$STATE/port")" -u root "$@"; }

is_running() {
    [[ -f $STATE/pid ]] || return 1
    local pid
    pid=$(cat "$STATE/pid")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

start() {
    if is_running; then
        echo "already running (pid $(cat "$STATE/pid")): $(url)"
        return 0
    fi
    command -v mariadb-install-db >/dev/null || die "mariadb-install-db not found (apt-get install mariadb-server)"
    [[ -x $MARIADBD ]] || die "$MARIADBD not found"
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        die "port $PORT is already in use; set LT_MARIADB_PORT"
    fi
    mkdir -p "$STATE"
    local dir
    dir=$(mktemp -d /tmp/lt-mariadb.XXXXXX)
    # mariadbd runs as `mysql` and must reach the datadir.
    chmod 0755 "$dir"
    mkdir -p "$dir/data"
    local user_args=()
    if [[ $(id -u) == 0 ]]; then
        user_args=(--user=mysql)
        chown -R mysql:mysql "$dir"
    fi
    echo "$dir" >"$STATE/dir"
    echo "$PORT" >"$STATE/port"
    mariadb-install-db --no-defaults "${user_args[@]}" --datadir="$dir/data" \
        --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 \
        || { cat "$dir/install.log" >&2; die "mariadb-install-db failed"; }
    # shellcheck disable=SC2086
    "$MARIADBD" --no-defaults "${user_args[@]}" \
        --datadir="$dir/data" --socket="$dir/mysqld.sock" --pid-file="$dir/mariadbd.pid" \
        --port="$PORT" --bind-address=127.0.0.1 --skip-name-resolve \
        --innodb-buffer-pool-size=128M --skip-log-bin \
        --log-error="$dir/error.log" ${LT_MARIADB_EXTRA:-} \
        </dev/null >"$dir/mariadbd.out" 2>&1 &
    echo $! >"$STATE/pid"
    for _ in $(seq 1 120); do
        if client -e 'SELECT 1' >/dev/null 2>&1; then
            echo "started mariadbd pid $(cat "$STATE/pid"): $(url)"
            return 0
        fi
        is_running || { tail -n 30 "$dir/error.log" >&2 || true; die "mariadbd exited during start-up"; }
        sleep 0.5
    done
    tail -n 30 "$dir/error.log" >&2 || true
    die "mariadbd did not accept connections within 60 s"
}

stop() {
    if [[ ! -f $STATE/pid ]]; then
        echo "not running (no $STATE/pid)"
        return 0
    fi
    local pid dir
    pid=$(cat "$STATE/pid")
    dir=$(cat "$STATE/dir" 2>/dev/null || true)
    if [[ -n $pid ]] && ! term_and_wait "$pid" 60; then
        echo "mariadbd $pid still running after 60 s; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # Only ever delete a directory this script created.
    if [[ -n $dir && $dir == /tmp/lt-mariadb.* && -d $dir ]]; then
        rm -rf "$dir"
    fi
    rm -f "$STATE/pid" "$STATE/dir" "$STATE/port"
    rmdir "$STATE" 2>/dev/null || true
    echo "stopped mariadbd $pid"
}

url() {
    [[ -f $STATE/port ]] || die "not started"
    echo "mysql://root@127.0.0.1:$(cat "$STATE/port")/"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    url) url ;;
    status) if is_running; then echo "running pid $(cat "$STATE/pid") $(url) datadir $(cat "$STATE/dir")/data"; else echo "not running"; exit 1; fi ;;
    *) echo "usage: $0 start|stop|url|status" >&2; exit 2 ;;
esac
