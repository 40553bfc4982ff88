#!/usr/bin/env bash
# tests/cache-tests/run.sh -- run the HTTP caching conformance suite
# (npm package http-cache-tests, the suite behind https://cache-tests.fyi)
# against a reverse proxy on loopback, and score it.
#
#   tests/cache-tests/run.sh [-o RESULTS.json] [-v] [--] PROXY_CMD [ARG...]
#
# 1. Installs http-cache-tests@$CACHE_TESTS_VERSION (default 0.4.5) with npm into
#    $CACHE_TESTS_HOME/<version> (default <repo>/target/cache-tests), once: later
#    runs reuse it.
# 2. Starts the suite's origin the way its README and package.json say
#    (`npm run server --port=N`; server/server.mjs reads npm_config_port) on a
#    free port, never one in 8000-8100 (the benchmark's).
# 3. Starts PROXY_CMD in the foreground of a background job, with the
#    environment ORIGIN_PORT, PROXY_PORT and WORK_DIR (a scratch directory for
#    its conf and logs); the tokens {ORIGIN_PORT}, {PROXY_PORT} and {WORK_DIR} in
#    its arguments are replaced too. It must listen on 127.0.0.1:$PROXY_PORT and
#    forward everything (PUT with its body included) to 127.0.0.1:$ORIGIN_PORT.
#    Ready-made commands: proxies/nginx-cache.sh, proxies/nginx-plain.sh,
#    proxies/conf-yaml.sh BIN (a tutorial binary taking `-c conf.yaml`).
# 4. Runs the suite's client (`npm run --silent cli --base=http://127.0.0.1:PORT`)
#    and writes its JSON results to RESULTS.json (default $WORK_DIR/results.json).
# 5. Scores the results with score.mjs (the suite's own determineTestResult,
#    dependencies honoured) and prints `required P/N optimal P/N`; -v also lists
#    every required test that did not pass.
#
# Environment: CACHE_TESTS_VERSION, CACHE_TESTS_HOME, CACHE_TESTS_TIMEOUT (seconds
# for the client, default 360), PROXY_START_TIMEOUT (seconds, default 30).
# Exit status: 0 when the suite ran and was scored (whatever the score), 2 on
# usage errors, 1 when something could not be set up or run.
# Only the processes this script starts are stopped, by their PIDs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VERSION="${CACHE_TESTS_VERSION:-0.4.5}"
HOME_DIR="${CACHE_TESTS_HOME:-${CARGO_TARGET_DIR:-$REPO/target}/cache-tests}"
CLIENT_TIMEOUT="${CACHE_TESTS_TIMEOUT:-360}"
START_TIMEOUT="${PROXY_START_TIMEOUT:-30}"

die() { echo "cache-tests: $*" >&2; exit 1; }
usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

RESULTS=
VERBOSE=()
while [ $# -gt 0 ]; do
    case "$1" in
        -o) [ $# -ge 2 ] || usage; RESULTS="$2"; shift 2 ;;
        -v) VERBOSE=(-v); shift ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -*) usage ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || usage

command -v node >/dev/null 2>&1 || die "node is not installed"
command -v npm >/dev/null 2>&1 || die "npm is not installed"

# ---------------------------------------------------------------- install ---
PKG_ROOT="$HOME_DIR/$VERSION"
PKG="$PKG_ROOT/node_modules/http-cache-tests"
if [ ! -f "$PKG_ROOT/.installed" ]; then
    echo "cache-tests: installing http-cache-tests@$VERSION into $PKG_ROOT" >&2
    rm -rf "$PKG_ROOT"
    mkdir -p "$PKG_ROOT"
    printf '{"name":"cache-tests-scratch","private":true}\n' > "$PKG_ROOT/package.json"
    (cd "$PKG_ROOT" && npm install --no-audit --no-fund --no-save --loglevel=error \
        "http-cache-tests@$VERSION" >&2) || die "npm install http-cache-tests@$VERSION failed"
    [ -f "$PKG/cli.mjs" ] || die "no cli.mjs in $PKG after install"
    touch "$PKG_ROOT/.installed"
fi

# ---------------------------------------------------------------- scratch ---
WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/cache-tests.XXXXXX")"
[ -n "$RESULTS" ] || RESULTS="$WORK_DIR/results.json"
ORIGIN_PID=
PROXY_PID=
CLIENT_PID=

# A pid we started, still alive: TERM, wait up to 5 s, then KILL.
stop_pid() {
    local pid="$1" i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$CLIENT_PID"
    stop_pid "$PROXY_PID"
    stop_pid "$ORIGIN_PID"
    if [ -z "${CACHE_TESTS_KEEP:-}" ]; then rm -rf "$WORK_DIR"; else echo "cache-tests: kept $WORK_DIR" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A loopback port that was free a moment ago, outside 8000-8100.
free_port() {
    local p
    while :; do
        p="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
        if [ "$p" -lt 8000 ] || [ "$p" -gt 8100 ]; then echo "$p"; return; fi
    done
}

# Waits until 127.0.0.1:$1 accepts, for $2 seconds, while pid $3 lives.
wait_port() {
    local port="$1" secs="$2" pid="$3" i
    for i in $(seq $((secs * 10))); do
        if node -e 'const c=require("net").connect(+process.argv[1],"127.0.0.1");c.on("connect",()=>process.exit(0));c.on("error",()=>process.exit(1))' "$port"; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# ----------------------------------------------------------------- origin ---
ORIGIN_PORT="$(free_port)"
# `npm run server` runs `node server/server.mjs &` and returns; the server writes
# its own pid to --pidfile. The same settings go in the environment too
# (npm_config_*, what npm turns them into), as newer npm versions may stop
# passing unknown command-line configs on.
(cd "$PKG" && npm_config_port="$ORIGIN_PORT" npm_config_pidfile="$WORK_DIR/origin.pid" \
    npm run server --port="$ORIGIN_PORT" --pidfile="$WORK_DIR/origin.pid" \
    </dev/null >"$WORK_DIR/origin.log" 2>&1) || die "npm run server failed: $(cat "$WORK_DIR/origin.log")"
for _ in $(seq 100); do
    [ -s "$WORK_DIR/origin.pid" ] && break
    sleep 0.1
done
ORIGIN_PID="$(cat "$WORK_DIR/origin.pid" 2>/dev/null || true)"
[ -n "$ORIGIN_PID" ] || die "the origin wrote no pid file: $(cat "$WORK_DIR/origin.log")"
wait_port "$ORIGIN_PORT" 10 "$ORIGIN_PID" || die "the origin did not listen on $ORIGIN_PORT: $(cat "$WORK_DIR/origin.log")"
echo "cache-tests: origin on 127.0.0.1:$ORIGIN_PORT (pid $ORIGIN_PID)" >&2

# ------------------------------------------------------------------ proxy ---
PROXY_PORT="$(free_port)"
while [ "$PROXY_PORT" = "$ORIGIN_PORT" ]; do PROXY_PORT="$(free_port)"; done
export ORIGIN_PORT PROXY_PORT WORK_DIR
ARGS=()
for a in "$@"; do
    a="${a//\{ORIGIN_PORT\}/$ORIGIN_PORT}"
    a="${a//\{PROXY_PORT\}/$PROXY_PORT}"
    a="${a//\{WORK_DIR\}/$WORK_DIR}"
    ARGS+=("$a")
done
"${ARGS[@]}" </dev/null >"$WORK_DIR/proxy.stdout.log" 2>"$WORK_DIR/proxy.stderr.log" &
PROXY_PID=$!
if ! wait_port "$PROXY_PORT" "$START_TIMEOUT" "$PROXY_PID"; then
    tail -n 40 "$WORK_DIR/proxy.stderr.log" >&2 || true
    die "the proxy (${ARGS[*]}) did not listen on 127.0.0.1:$PROXY_PORT"
fi
echo "cache-tests: proxy on 127.0.0.1:$PROXY_PORT (pid $PROXY_PID): ${ARGS[*]}" >&2

# ----------------------------------------------------------------- client ---
echo "cache-tests: running the client (up to ${CLIENT_TIMEOUT}s)" >&2
# In the background and waited for, so that a TERM to this script runs its
# cleanup at once; `timeout` passes the TERM on to npm, npm to the client.
(cd "$PKG" && export npm_config_base="http://127.0.0.1:$PROXY_PORT" &&
    exec timeout "$CLIENT_TIMEOUT" npm run --silent cli --base="http://127.0.0.1:$PROXY_PORT" \
    </dev/null >"$RESULTS.tmp" 2>"$WORK_DIR/client.stderr.log") &
CLIENT_PID=$!
rc=0
wait "$CLIENT_PID" || rc=$?
CLIENT_PID=
if [ "$rc" -ne 0 ]; then
    tail -n 20 "$WORK_DIR/client.stderr.log" >&2 || true
    [ "$rc" -eq 124 ] && die "the client did not finish within ${CLIENT_TIMEOUT}s"
    die "the client failed (exit $rc)"
fi
mv "$RESULTS.tmp" "$RESULTS"
if ! kill -0 "$PROXY_PID" 2>/dev/null; then
    echo "cache-tests: warning: the proxy exited during the run; the end of its stderr:" >&2
    tail -n 40 "$WORK_DIR/proxy.stderr.log" >&2 || true
fi

# ------------------------------------------------------------------ score ---
node "$HERE/score.mjs" "${VERBOSE[@]}" --suite "$PKG" "$RESULTS"
