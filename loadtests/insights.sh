#!/usr/bin/env bash
# The cost of a stats and a series read for a big mailing, on both stores:
# 1 M recipients, 10 links, 30 days of traffic (a 30-day hourly series is
# 720 buckets from 5760 quarter-hour rows), among 200 other mailings of the
# same shape. See examples/insights.rs for how the state is built and what
# is timed. Each store is filled and measured twice (A B A B), in fresh
# stores: the VM is noisy. Target (issue 15): 50 ms.
#
#   loadtests/insights.sh [OUT_DIR]
#
# MariaDB is a private server (loadtests/mariadb.sh on port 3392, 128 MiB
# buffer pool), stopped by its PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-loadtests/results/insights-$(date -u +%Y-%m-%d)}
mkdir -p "$OUT"
export LT_MARIADB_STATE=/tmp/linktrack-insights-mariadb LT_MARIADB_PORT=${LT_MARIADB_PORT:-3392}
cargo build --release --example insights >/dev/null
BIN=target/release/examples/insights
loadtests/mariadb.sh start >/dev/null
trap 'loadtests/mariadb.sh stop >/dev/null 2>&1 || true' EXIT
MYSQL_URL=$(loadtests/mariadb.sh url)
{
    echo "# insights reads, $(date -u +%FT%TZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| run | store | stats p50 / p99 ms | hourly series (720 buckets) p50 / p99 ms | daily series at +02:00 p50 / p99 ms | fill s |"
    echo "|---|---|---|---|---|---|"
} >"$OUT/summary.md"
for run in 1 2; do
    for store in sqlite mysql; do
        if [[ $store == sqlite ]]; then
            dir=$(mktemp -d /tmp/lt-insights.XXXXXX)
            url="sqlite://$dir/linktrack.db"
        else
            db="insights_$run"
            mariadb --no-defaults -h 127.0.0.1 -P "$LT_MARIADB_PORT" -u root -e "CREATE DATABASE $db"
            url="${MYSQL_URL%/}/$db"
        fi
        "$BIN" --database-url "$url" --other-mailings 200 --reads 300 >"$OUT/$store-$run.json"
        [[ $store == sqlite ]] && rm -rf "$dir"
        python3 - "$OUT/$store-$run.json" "$run" "$store" >>"$OUT/summary.md" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["reads"]
f = lambda k: f'{r[k]["p50_ms"]:.1f} / {r[k]["p99_ms"]:.1f}'
print(f'| {sys.argv[2]} | {sys.argv[3]} | {f("stats")} | {f("series_hourly")} | {f("series_daily_tz")} | {json.load(open(sys.argv[1]))["fill_seconds"]:.0f} |')
PY
    done
done
cat "$OUT/summary.md"
