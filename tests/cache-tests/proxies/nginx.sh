#!/usr/bin/env bash
# tests/cache-tests/proxies/nginx.sh cache|plain -- nginx as the proxy under
# test of run.sh, in the foreground (run.sh stops it by its pid).
#   cache: proxy_cache in $WORK_DIR with proxy_cache_revalidate on, otherwise
#          nginx's defaults, as the suite's own docker/nginx/nginx.conf does;
#   plain: the same proxy without a cache (the no-cache baseline).
# Reads ORIGIN_PORT, PROXY_PORT and WORK_DIR from run.sh. NGINX overrides the
# binary (default /usr/sbin/nginx, Debian nginx-light).
set -euo pipefail
mode="${1:-}"
case "$mode" in
    cache) cache="proxy_cache conformance; proxy_cache_revalidate on;" ;;
    plain) cache="" ;;
    *) echo "usage: $0 cache|plain" >&2; exit 2 ;;
esac
: "${ORIGIN_PORT:?}" "${PROXY_PORT:?}" "${WORK_DIR:?}"
dir="$WORK_DIR/nginx"
mkdir -p "$dir/cache" "$dir/tmp"
cat > "$dir/nginx.conf" <<CONF
daemon off;
# One process, no master: it runs as the invoking user (no switch to nobody,
# which could not write the cache under a private \$WORK_DIR).
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    proxy_cache_path $dir/cache levels=1:2 keys_zone=conformance:8m max_size=100m;
    server {
        listen 127.0.0.1:$PROXY_PORT;
        location / {
            proxy_pass http://127.0.0.1:$ORIGIN_PORT;
            $cache
        }
    }
}
CONF
exec "${NGINX:-/usr/sbin/nginx}" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
