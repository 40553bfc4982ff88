#!/usr/bin/env bash
# instructions.sh [SIZE...] -- user-space instructions per proxied request,
# ours (target/release/part-01-first-proxy) and nginx (bench/nginx-proxy.conf,
# one process, no master), each run under valgrind's callgrind against the
# bench origin and driven by `wrk -c16` for DURATION seconds per size.
#
# Unlike CPU time, an instruction count does not move with the machine's load
# or clock, so it compares two builds (or us and nginx) on a busy 2-core box.
# It is not time: cache misses, branch misses and the kernel are not in it.
# Counting starts after a WARMUP of load (callgrind_control -z) and stops with
# a dump after the measured run, so start-up work is excluded.
#
# MODE=cache measures cache hits instead: ours is part-06-caching (MemCache,
# every response cached 10 minutes; CACHE_DIR=DIR: DiskCache in DIR, its
# memory tier in front) and nginx is bench/nginx-cache.conf (proxy_cache); the
# warm-up fills both caches, so every measured request is a hit.
#
# MODE=h2 measures HTTP/2 over TLS: ours is part-04-tls on :8463 and nginx
# bench/nginx-proxy.conf on :8443 (both with the bench's certificate), driven
# by `h2load -t1 -c8 -m8` for WARMUP_REQS and then REQS requests; MODE=https
# the same listeners over HTTP/1.1 with `wrk -c16`.
#
# CALLGRIND_OPTS adds options to valgrind's (e.g. `--cache-sim=yes`: the
# outputs' `summary:` lines then hold simulated cache misses after Ir).
#
# LOCKED=1 also counts the atomic read-modify-write (lock-prefixed)
# instructions each program's own code runs per request (bench/locked.py;
# adds `--dump-instr=yes`): tens of cycles each, one instruction to callgrind.
#
# Output: one line per system and size, and the ratio ours/nginx.
# Needs: valgrind, wrk, nginx (h2load for MODE=h2). Builds nothing (cargo
# build --release first).
set -euo pipefail
. "$(dirname "$0")/common.sh"
need valgrind callgrind_control wrk nginx

SIZES=("${@:-1k}")
DURATION="${DURATION:-4}"
WARMUP="${WARMUP:-2}"
MODE="${MODE:-proxy}"
LOCKED="${LOCKED:-}"
[ -z "$LOCKED" ] || CALLGRIND_OPTS="${CALLGRIND_OPTS:-} --dump-instr=yes"
SCHEME=http OURS_PORT=8088
case "$MODE" in
proxy) OURS_PART=part-01-first-proxy NGINX_CONF=nginx-proxy.conf NGINX_PORT=8080 ;;
cache) OURS_PART=part-06-caching NGINX_CONF=nginx-cache.conf NGINX_PORT=8081 ;;
h2 | https)
    OURS_PART=part-04-tls NGINX_CONF=nginx-proxy.conf NGINX_PORT=8443
    SCHEME=https OURS_PORT=8463
    ensure_certs
    [ "$MODE" = https ] || need h2load
    ;;
*) die "MODE is proxy, cache, h2 or https, not $MODE" ;;
esac
REQS="${REQS:-20000}"
WARMUP_REQS="${WARMUP_REQS:-2000}"

# load SECONDS REQUESTS URL -> prints the requests completed (h2load runs
# REQUESTS, wrk runs SECONDS)
load() {
    if [ "$MODE" = h2 ]; then
        h2load -t1 -c8 -m8 -n "$2" "$3" | awk '/^requests:/ {print $8}'
    else
        wrk -t1 -c16 -d"$1s" "$3" | awk '/requests in/ {print $1}'
    fi
}
OURS_BIN="${OURS_BIN:-$(cd "$BENCH_DIR/.." && pwd)/target/release/$OURS_PART}"
RUN="$BENCH_RUN/instructions"
[ -x "$OURS_BIN" ] || die "no $OURS_BIN: cargo build --release -p proxy-examples --bin $OURS_PART"
mkdir -p "$RUN"
"$BENCH_DIR/origin.sh" start >/dev/null

# measure LABEL PORT SIZE CMD... -> prints "LABEL SIZE requests instructions/request"
measure() {
    local label="$1" port="$2" size="$3" pid out reqs ir f
    shift 3
    rm -f "$RUN/$label".cg.*
    # shellcheck disable=SC2086 # CALLGRIND_OPTS is a list of options
    valgrind --tool=callgrind ${CALLGRIND_OPTS:-} --callgrind-out-file="$RUN/$label.cg.%p" "$@" \
        >"$RUN/$label.log" 2>&1 &
    pid=$!
    wait_port "127.0.0.1:$port" 30 || die "$label did not come up (see $RUN/$label.log)"
    load "$WARMUP" "$WARMUP_REQS" "$SCHEME://127.0.0.1:$port/$size" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    reqs="$(load "$DURATION" "$REQS" "$SCHEME://127.0.0.1:$port/$size")"
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid"; wait "$pid" 2>/dev/null || true
    # the dump taken after the measured run (part 1), else the final one
    f="$(ls "$RUN/$label".cg.*.1 2>/dev/null | head -1)"
    [ -n "$f" ] || f="$(ls "$RUN/$label".cg.* | head -1)"
    ir="$(awk '/^summary:/ {print $2}' "$f")"
    if [ -n "$LOCKED" ]; then
        python3 "$BENCH_DIR/locked.py" "$f" "$(command -v "$1")" "$reqs" 8 > "$RUN/$label.locked"
    fi
    echo "$label $size $reqs $((ir / reqs))"
}

cat > "$RUN/ours.yaml" <<YAML
---
version: 1
threads: 1
pid_file: $RUN/ours.pid
upgrade_sock: $RUN/ours.sock
listen: 127.0.0.1:8088
upstreams: ["127.0.0.1:8000"]
YAML
if [ "$SCHEME" = https ]; then
    printf 'tls_listen: 127.0.0.1:%s\ntls_cert: %s\ntls_key: %s\n' \
        "$OURS_PORT" "$TLS_DIR/cert.pem" "$TLS_DIR/key.pem" >> "$RUN/ours.yaml"
fi
if [ "$MODE" = cache ]; then
    rm -rf "$RUN/nginx-cache" "${CACHE_DIR:-$RUN/none}"
    printf 'cache_default_ttl: 600\ncache_size: 1073741824\n' >> "$RUN/ours.yaml"
    [ -z "${CACHE_DIR:-}" ] || echo "cache_dir: $CACHE_DIR" >> "$RUN/ours.yaml"
fi
sed "s|^pid .*|pid $RUN/nginx.pid;|; s|^error_log .*|error_log $RUN/nginx-error.log crit;|; \
     s|/tmp/bench/nginx-cache/cache|$RUN/nginx-cache|" \
    "$BENCH_DIR/$NGINX_CONF" > "$RUN/nginx.conf"

printf '%-6s %-5s %9s %12s\n' system size requests instr/req
for size in "${SIZES[@]}"; do
    read -r _ _ rn on < <(measure nginx "$NGINX_PORT" "$size" nginx -p "$RUN" -c "$RUN/nginx.conf" \
        -g 'daemon off; master_process off;')
    read -r _ _ ro oo < <(RUST_LOG=warn measure ours "$OURS_PORT" "$size" "$OURS_BIN" -c "$RUN/ours.yaml")
    printf '%-6s %-5s %9s %12s\n' nginx "$size" "$rn" "$on" ours "$size" "$ro" "$oo"
    python3 -c "print(f'ratio  $size  ours/nginx instructions per request: {$oo/$on:.2f}')"
    if [ -n "$LOCKED" ]; then
        for label in nginx ours; do
            echo "$label $size:"; sed 's/^/  /' "$RUN/$label.locked"
        done
    fi
done
