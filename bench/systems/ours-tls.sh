# System file for suite.sh: ours.sh running the tutorial's part 4
# (target/release/part-04-tls), label ours-tls: HTTP on :8089 and HTTPS on
# :8463 (TLS 1.2/1.3, Mozilla intermediate, h2 then http/1.1 by ALPN) with the
# bench's certificate (/tmp/bench/tls), one worker thread -> origin :8000 over
# HTTP/1.1 with keep-alive. For the TLS cases (https, https-close, tls-full, h2,
# idle-tls) beside nginx's :8443.
# Builds nothing: run `cargo build --release -p proxy-examples --bin part-04-tls` first.
OURS_NAME=ours-tls
OURS_LABEL=ours-tls
OURS_PORT=8089
OURS_TLS_PORT=8463
OURS_EXAMPLE=part-04-tls
. "$BENCH_DIR/systems/ours.sh"
