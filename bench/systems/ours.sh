# System file for suite.sh: this project's proxy, the tutorial's part 1
# (target/release/part-01-first-proxy), one worker thread, :8088 -> origin :8000
# over HTTP/1.1 with its upstream pool. Plain HTTP only for now (no TLS
# listener yet, so TLS cases are skipped).
# Builds nothing: run `cargo build --release -p proxy-examples --bin part-01-first-proxy` first.
LABEL=ours
HTTP=127.0.0.1:8088
TLS=
PIDFILE="$BENCH_RUN/ours/proxy.pid"
RUN_ARGS=()
OURS_BIN="${OURS_BIN:-$(cd "$BENCH_DIR/.." && pwd)/target/release/part-01-first-proxy}"

sys_start() {
    local run="$BENCH_RUN/ours" p
    [ -x "$OURS_BIN" ] || die "no $OURS_BIN: cargo build --release -p proxy-examples --bin part-01-first-proxy"
    need taskset
    if p="$(read_pidfile "$PIDFILE")"; then echo "ours: already running (pid $p)"; return 0; fi
    mkdir -p "$run"
    cat > "$run/conf.yaml" <<YAML
---
version: 1
threads: 1
work_stealing: ${OURS_WORK_STEALING:-true}
pid_file: $run/server.pid
upgrade_sock: $run/upgrade.sock
listen: 127.0.0.1:8088
upstreams: ["127.0.0.1:8000"]
YAML
    ulimit -n 20000
    RUST_LOG="${RUST_LOG:-warn}" taskset -c "$PROXY_CPU" \
        "$OURS_BIN" -c "$run/conf.yaml" </dev/null >"$run/stdout.log" 2>"$run/stderr.log" &
    echo $! > "$PIDFILE"
    wait_port "$HTTP" 10 || die "ours did not come up (see $run/stderr.log)"
    p="$(read_pidfile "$PIDFILE")" || die "ours exited (see $run/stderr.log)"
    pin_tree "$PROXY_CPU" "$p"
    echo "ours: started (pid $p, cpu $PROXY_CPU)"
}

sys_stop() { stop_pidfile "$PIDFILE" ours; }
