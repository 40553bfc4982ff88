#!/usr/bin/env bash
# working-set.sh OUT.jsonl REPS [SYSTEM_FILE...]
#
# The http-ws case (cache hits over a working set twice our memory tier, see
# README.md) on the cache systems, REPS rounds of suite.sh with one round
# each: before every round our disk cache directory is emptied, as nginx-cache
# empties its own at start and Varnish keeps nothing, so every system starts
# from an empty cache and fills it in the warm pass (a kept directory of
# ~660,000 entries would also be rescanned at start). The system order
# rotates every round. Default systems: nginx-cache, varnish, cache-proxy-disk.
# Env: SIZES (default "0 1k 16k 1m"), DURATION, WARMUP, WS_TIER, WS_WARM_MAX,
# CACHE_PROXY_SIZE (default 4 GiB: a disk budget for all four sets; the
# memory tier stays min(64 MiB, CACHE_PROXY_SIZE / 4)).
#   bench/working-set.sh /tmp/bench/ws.jsonl 3
#   python3 bench/summarize.py /tmp/bench/ws.jsonl --base nginx-cache
set -euo pipefail
. "$(dirname "$0")/common.sh"
[ $# -ge 2 ] || { sed -n '2,15p' "$0" >&2; exit 2; }
OUT="$1"; REPS="$2"; shift 2
SYSFILES=("$@")
[ ${#SYSFILES[@]} -gt 0 ] ||
    SYSFILES=("$BENCH_DIR"/systems/{nginx-cache,varnish,cache-proxy-disk}.sh)
export CASES=http-ws
export SIZES="${SIZES:-0 1k 16k 1m}"
export CACHE_PROXY_SIZE="${CACHE_PROXY_SIZE:-4294967296}"
export CACHE_PROXY_DIR="${CACHE_PROXY_DIR:-$BENCH_RUN/ws-cache}"
n=${#SYSFILES[@]}
for rep in $(seq 1 "$REPS"); do
    order=()
    for i in $(seq 0 $(( n - 1 ))); do order+=("${SYSFILES[$(( (i + rep - 1) % n ))]}"); done
    echo "== working set, round $rep/$REPS: emptying $CACHE_PROXY_DIR" >&2
    rm -rf "$CACHE_PROXY_DIR"
    "$BENCH_DIR/suite.sh" "$OUT" 1 "${order[@]}"
done
rm -rf "$CACHE_PROXY_DIR"
