#!/usr/bin/env bash
# Used as BIN=ht-linktrack.sh (HT_BIN=the release binary, HT_OUT=output prefix) for loadtests/soak.sh 5 with
# STORES=mysql SERVE_ARGS="--cache-bytes 33554432"; then heaptrack_print -f OUT.zst -p 1 -a 0 -T 0 -l 0 -n 3 -s 12.
# heaptrack the release server, keeping its PID (exec) so soak.sh samples and stops it as usual.
out=${HT_OUT:-/tmp/soakmem/heaptrack.linktrack}
pipe=$(mktemp -u /tmp/soakmem/ht-pipe.XXXXXX)
mkfifo "$pipe"
/usr/lib/heaptrack/libexec/heaptrack_interpret <"$pipe" | zstd -q -c >"$out.zst" &
LD_PRELOAD=/usr/lib/heaptrack/libheaptrack_preload.so DUMP_HEAPTRACK_OUTPUT="$pipe" exec ${HT_BIN:-/tmp/soakmem/linktrack-base} "$@"
