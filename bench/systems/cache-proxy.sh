# System file for suite.sh: this project's caching proxy, the tutorial's part 6
# (target/release/part-06-caching), one worker thread, :8083 -> origin :8000,
# MemCache with an LRU budget (cache_size, default 1 GiB here) and every response
# without freshness information cached for 10 minutes (cache_default_ttl=600:
# the origin's static files carry no Cache-Control), as nginx-cache
# (proxy_cache_valid 200 10m) and varnish (default_ttl=600) do: after the
# warm-up every request is a hit. Plain HTTP only (TLS cases are skipped).
# Large hits (128 KiB and more) are written from memory, and with
# cache_dir go out with sendfile(2): the example's defaults.
# CACHE_PROXY_SENDFILE=true or false sets the conf's cache_sendfile instead.
# Builds nothing: run `cargo build --release -p proxy-examples --bin part-06-caching` first.
# cache-proxy-disk.sh sets CACHE_PROXY_NAME, CACHE_PROXY_PORT and CACHE_PROXY_DISK
# before sourcing this file, to run the same proxy with `cache_dir`.
CACHE_PROXY_NAME="${CACHE_PROXY_NAME:-cache-proxy}"
CACHE_PROXY_PORT="${CACHE_PROXY_PORT:-8083}"
LABEL="${CACHE_PROXY_LABEL:-ours-cache}"
HTTP=127.0.0.1:$CACHE_PROXY_PORT
TLS=
PIDFILE="$BENCH_RUN/$CACHE_PROXY_NAME/proxy.pid"
RUN_ARGS=()
CACHE_PROXY_BIN="${CACHE_PROXY_BIN:-$(cd "$BENCH_DIR/.." && pwd)/target/release/part-06-caching}"

sys_start() {
    local run="$BENCH_RUN/$CACHE_PROXY_NAME" p
    [ -x "$CACHE_PROXY_BIN" ] || die "no $CACHE_PROXY_BIN: cargo build --release -p proxy-examples --bin part-06-caching"
    need taskset
    if p="$(read_pidfile "$PIDFILE")"; then echo "$CACHE_PROXY_NAME: already running (pid $p)"; return 0; fi
    mkdir -p "$run"
    cat > "$run/conf.yaml" <<YAML
---
version: 1
threads: 1
work_stealing: ${OURS_WORK_STEALING:-true}
pid_file: $run/server.pid
upgrade_sock: $run/upgrade.sock
listen: $HTTP
upstreams: ["127.0.0.1:8000"]
cache_default_ttl: ${CACHE_PROXY_DEFAULT_TTL:-600}
cache_size: ${CACHE_PROXY_SIZE:-1073741824}
YAML
    if [ -n "${CACHE_PROXY_SENDFILE:-}" ]; then
        echo "cache_sendfile: $CACHE_PROXY_SENDFILE" >> "$run/conf.yaml"
    fi
    if [ -n "${CACHE_PROXY_DISK:-}" ]; then
        # every start begins from an empty cache, as nginx-cache.sh empties
        # its own and Varnish keeps nothing; CACHE_PROXY_KEEP_DIR=1 keeps the
        # directory, to measure a restarted proxy (index rebuilt from disk,
        # memory tier empty)
        [ -n "${CACHE_PROXY_KEEP_DIR:-}" ] || rm -rf "${CACHE_PROXY_DIR:-$run/cache}"
        echo "cache_dir: ${CACHE_PROXY_DIR:-$run/cache}" >> "$run/conf.yaml"
    fi
    ulimit -n 20000
    RUST_LOG="${RUST_LOG:-warn}" taskset -c "$PROXY_CPU" \
        "$CACHE_PROXY_BIN" -c "$run/conf.yaml" </dev/null >"$run/stdout.log" 2>"$run/stderr.log" &
    echo $! > "$PIDFILE"
    wait_port "$HTTP" 10 || die "$CACHE_PROXY_NAME did not come up (see $run/stderr.log)"
    p="$(read_pidfile "$PIDFILE")" || die "$CACHE_PROXY_NAME exited (see $run/stderr.log)"
    pin_tree "$PROXY_CPU" "$p"
    echo "$CACHE_PROXY_NAME: started (pid $p, cpu $PROXY_CPU)"
}

sys_stop() { stop_pidfile "$PIDFILE" "$CACHE_PROXY_NAME"; }
