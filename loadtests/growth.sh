#!/usr/bin/env bash
# Growth run: linktrack's tables from 1 M to 50 M links over 30 and 365 day
# partitions, 100 M events, and the seed's design beside them, on a private
# MariaDB (loadtests/mariadb.sh) through linktrack's own store code
# (examples/growth.rs). Off by default: it takes about an hour and 20 GB.
#
#   loadtests/growth.sh                 # the full run; JSON lines in $OUT/growth.jsonl
#   loadtests/growth.sh --smoke         # 100 k links, 60 k events, 30 k seed rows (scripts/test runs this)
#   loadtests/growth.sh --phases seed --seed-max-secs 600   # any flag of examples/growth.rs
#
# Environment:
#   OUT     output directory (default /tmp/linktrack-growth-<time>)
#   BIN     the growth binary (default: built with `cargo build --release --example growth`)
#   DB_PORT port of the private MariaDB (default 3600)
#   GROWTH_MYSQL_URL  use this server instead of starting one. It needs a root-like user: the
#           tool creates growth_* databases and RESIZES THE SERVER'S BUFFER POOL, so never
#           point it at a shared server (this is why it does not take LINKTRACK_TEST_MYSQL_URL)
# Afterwards: python3 loadtests/plot_growth.py $OUT/growth.jsonl loadtests/results/
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
OUT=${OUT:-/tmp/linktrack-growth-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
if [[ -z ${BIN:-} ]]; then
    profile=(--release)
    dir=release
    for a in "$@"; do [[ $a == --smoke ]] && profile=() && dir=debug; done
    (cd "$root" && cargo build -q "${profile[@]}" --example growth)
    BIN=$root/target/$dir/examples/growth
fi
export LT_MARIADB_STATE=$OUT/mariadb-state LT_MARIADB_PORT=${DB_PORT:-3600}
url=${GROWTH_MYSQL_URL:-}
if [[ -z $url ]]; then
    "$here/mariadb.sh" start >&2
    trap '"$here/mariadb.sh" stop >&2' EXIT
    url=$("$here/mariadb.sh" url)
fi
{
    echo "commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo "host $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -r)"
    echo "args $*"
} | tee "$OUT/run.txt" >&2
timeout "${GROWTH_TIMEOUT:-10800}" "$BIN" --mysql "$url" --out "$OUT/growth.jsonl" "$@"
echo "results: $OUT/growth.jsonl" >&2
