#!/usr/bin/env bash
# tests/cache-tests/proxies/conf-yaml.sh BIN [YAML_LINE...] -- one of the
# tutorial's binaries (e.g. target/debug/part-06-caching) as the proxy under
# test of run.sh, in the foreground: writes $WORK_DIR/conf.yaml with `listen`
# on 127.0.0.1:$PROXY_PORT and `upstreams: [127.0.0.1:$ORIGIN_PORT]`, then the
# extra YAML lines given (e.g. "threads: 1"), and execs `BIN -c conf.yaml`.
# RUST_LOG defaults to warn.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BIN [YAML_LINE...]" >&2; exit 2; }
bin="$1"; shift
: "${ORIGIN_PORT:?}" "${PROXY_PORT:?}" "${WORK_DIR:?}"
conf="$WORK_DIR/conf.yaml"
{
    printf -- '---\nversion: 1\n'
    printf 'pid_file: %s/proxy.pid\nupgrade_sock: %s/upgrade.sock\n' "$WORK_DIR" "$WORK_DIR"
    printf 'listen: "127.0.0.1:%s"\nupstreams: ["127.0.0.1:%s"]\n' "$PROXY_PORT" "$ORIGIN_PORT"
    for line in "$@"; do printf '%s\n' "$line"; done
} > "$conf"
RUST_LOG="${RUST_LOG:-warn}" exec "$bin" -c "$conf"
