# System file for suite.sh: cache-proxy.sh with `cache_dir` (DiskCache behind its
# memory tier of min(64 MiB, cache_size/4), issue 9), label ours-disk, on :8084.
# The cache directory (CACHE_PROXY_DIR, default under $BENCH_RUN) persists
# between rounds.
CACHE_PROXY_NAME=cache-proxy-disk
CACHE_PROXY_PORT=8084
CACHE_PROXY_LABEL=ours-disk
CACHE_PROXY_DISK=1
. "$BENCH_DIR/systems/cache-proxy.sh"
