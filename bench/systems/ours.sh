# System file for suite.sh: this project's proxy, the tutorial's part 1
# (target/release/part-01-first-proxy), one worker thread, :8088 -> origin :8000
# over HTTP/1.1 with its upstream pool. Plain HTTP only (TLS cases are skipped).
# Builds nothing: run `cargo build --release -p proxy-examples --bin part-01-first-proxy` first.
# ours-tls.sh sets OURS_NAME, OURS_LABEL, OURS_PORT, OURS_EXAMPLE and OURS_TLS_PORT
# before sourcing this file, to run part 4 with its HTTPS (h2 by ALPN) listener.
OURS_NAME="${OURS_NAME:-ours}"
OURS_EXAMPLE="${OURS_EXAMPLE:-part-01-first-proxy}"
LABEL="${OURS_LABEL:-ours}"
HTTP=127.0.0.1:${OURS_PORT:-8088}
TLS=${OURS_TLS_PORT:+127.0.0.1:$OURS_TLS_PORT}
PIDFILE="$BENCH_RUN/$OURS_NAME/proxy.pid"
RUN_ARGS=()
OURS_BIN="${OURS_BIN:-$(cd "$BENCH_DIR/.." && pwd)/target/release/$OURS_EXAMPLE}"

sys_start() {
    local run="$BENCH_RUN/$OURS_NAME" p
    [ -x "$OURS_BIN" ] || die "no $OURS_BIN: cargo build --release -p proxy-examples --bin $OURS_EXAMPLE"
    need taskset
    if p="$(read_pidfile "$PIDFILE")"; then echo "$OURS_NAME: already running (pid $p)"; return 0; fi
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
YAML
    if [ -n "$TLS" ]; then
        ensure_certs
        printf 'tls_listen: %s\ntls_cert: %s\ntls_key: %s\n' \
            "$TLS" "$TLS_DIR/cert.pem" "$TLS_DIR/key.pem" >> "$run/conf.yaml"
    fi
    ulimit -n 20000
    RUST_LOG="${RUST_LOG:-warn}" taskset -c "$PROXY_CPU" \
        "$OURS_BIN" -c "$run/conf.yaml" </dev/null >"$run/stdout.log" 2>"$run/stderr.log" &
    echo $! > "$PIDFILE"
    wait_port "$HTTP" 10 || die "$OURS_NAME did not come up (see $run/stderr.log)"
    [ -z "$TLS" ] || wait_port "$TLS" 10 || die "$OURS_NAME: no TLS listener (see $run/stderr.log)"
    p="$(read_pidfile "$PIDFILE")" || die "$OURS_NAME exited (see $run/stderr.log)"
    pin_tree "$PROXY_CPU" "$p"
    echo "$OURS_NAME: started (pid $p, cpu $PROXY_CPU)"
}

sys_stop() { stop_pidfile "$PIDFILE" "$OURS_NAME"; }
