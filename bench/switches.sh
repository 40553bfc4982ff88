#!/usr/bin/env bash
# switches.sh SYSTEM_FILE [PATH] -- who sleeps and who is preempted on each
# CPU while one proxy serves `wrk -t1 -c64` (default PATH /0, plain HTTP).
#
# Starts the origin and the system (e.g. bench/systems/nginx.sh), runs wrk on
# LOAD_CPU for 4 s and records `sched:sched_switch` on every CPU for the
# middle 0.5 s (`perf record -a`). Prints, per CPU and program, how often it
# was switched out asleep (S: it waited for an event) or runnable (R: it was
# preempted), and how long it ran. With two proxies, compare the origin's
# sleeps and wrk's preemptions: the proxy's send pattern decides how often
# the origin wakes and preempts wrk on the shared CPU (see
# docs/benchmarks.md, "HTTP/1.1 at 0 B and 1 MiB").
#
# Needs: perf (with the sched tracepoints), wrk, python3; root.
set -euo pipefail
. "$(dirname "$0")/common.sh"
need perf wrk python3
SYSFILE="${1:?usage: switches.sh SYSTEM_FILE [PATH]}"
URLPATH="${2:-/0}"
OUT="$BENCH_RUN/switches"
mkdir -p "$OUT"
(
    . "$SYSFILE"
    "$BENCH_DIR/origin.sh" start >&2
    sys_start >&2
    taskset -c "$LOAD_CPU" wrk -t1 -c64 -d4s "http://$HTTP$URLPATH" > "$OUT/$LABEL.wrk" &
    w=$!
    sleep 2
    perf record -q -e sched:sched_switch -a -o "$OUT/$LABEL.data" -- sleep 0.5 2>/dev/null
    wait "$w"
    sys_stop >&2
    echo "$LABEL: $(awk '/requests in/ {print $1, $2, $3, $4, $5}' "$OUT/$LABEL.wrk")"
    perf script -i "$OUT/$LABEL.data" -F cpu,time,trace 2>/dev/null |
        python3 "$BENCH_DIR/switches.py"
)
