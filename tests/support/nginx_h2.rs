//! nginx as an HTTP/2 origin: over TLS (`listen ... ssl http2`, ALPN h2)
//! or cleartext with prior knowledge (`listen ... http2`, h2c), serving
//! static files and passing `/sha256` and
//! `/echo` on to a [`TestOrigin`](super::TestOrigin) so request bodies can
//! be checked. Its access log records nginx's connection serial per
//! request, to count the upstream connections the proxy opened.

use std::collections::HashSet;
use std::fs;
use std::net::SocketAddr;
use std::time::Instant;

use super::tls::Issued;
use super::{parse_access_line, pattern_bytes, start_nginx_in, AccessLine, ChildGuard, WAIT};

/// nginx speaking HTTP/2 (see the module docs). Files served: `/<name>`
/// for each of `files` (the [`pattern_bytes`] of its size).
pub(crate) struct NginxH2 {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    _process: ChildGuard,
}

impl NginxH2 {
    /// Over TLS with `issued` as its certificate (ALPN offers h2 and http/1.1).
    pub(crate) fn start_tls(issued: &Issued, origin: SocketAddr, files: &[(&str, usize)]) -> Self {
        let tls = format!(
            "ssl_certificate {};\n        ssl_certificate_key {};\n",
            issued.cert.display(),
            issued.key.display()
        );
        Self::start("ssl http2", &tls, origin, files)
    }

    /// Cleartext HTTP/2 with prior knowledge only (h2c).
    pub(crate) fn start_h2c(origin: SocketAddr, files: &[(&str, usize)]) -> Self {
        Self::start("http2", "", origin, files)
    }

    fn start(listen: &str, tls: &str, origin: SocketAddr, files: &[(&str, usize)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for nginx");
        let www = dir.path().join("www");
        fs::create_dir_all(&www).expect("create www");
        for (name, size) in files {
            fs::write(www.join(name), pattern_bytes(*size)).expect("write static file");
        }
        let d = dir.path().display().to_string();
        let (addr, process) = start_nginx_in(dir.path(), "nginx (HTTP/2)", |addr| {
            format!(
                r#"    log_format e2e '$connection $connection_requests $status $body_bytes_sent "$request"';
    access_log {d}/access.log e2e;
    default_type application/octet-stream;
    client_max_body_size 64m;
    keepalive_timeout 120s;
    server {{
        listen {addr} {listen};
        {tls}
        root {d}/www;
        location / {{ }}
        location /sha256 {{
            proxy_pass http://{origin};
        }}
        location /echo {{
            proxy_pass http://{origin};
        }}
    }}
"#
            )
        });
        NginxH2 {
            dir,
            addr,
            _process: process,
        }
    }

    /// The address nginx listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The access log once it has at least `n` lines, or as it is after [`WAIT`].
    pub(crate) fn wait_access_log(&self, n: usize) -> Vec<AccessLine> {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
            let log: Vec<AccessLine> = text.lines().filter_map(parse_access_line).collect();
            if log.len() >= n || Instant::now() >= deadline {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// How many distinct connections the first `n` logged requests came on.
    pub(crate) fn distinct_connections(&self, n: usize) -> usize {
        self.wait_access_log(n)
            .iter()
            .map(|l| l.connection)
            .collect::<HashSet<_>>()
            .len()
    }
}
