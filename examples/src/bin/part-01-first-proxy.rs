//! # Part 1: your first proxy
//!
//! A reverse proxy in about forty lines of your own code. It listens on
//! `listen` (default `0.0.0.0:6188`) and forwards every request to one of
//! the `upstreams`, in turn. With no `upstreams` configured it starts a small
//! demo origin inside the process, so this works with nothing installed:
//!
//! ```sh
//! cargo run --release -p proxy-examples --bin part-01-first-proxy
//! curl http://127.0.0.1:6188/
//! ```
//!
//! With a conf file (the server's keys and ours side by side):
//!
//! ```yaml
//! threads: 2
//! listen: 127.0.0.1:6188
//! upstreams: [127.0.0.1:8000]
//! upstream_connect_timeout_ms: 1000
//! upstream_read_timeout_ms: 5000
//! ```
//!
//! ```sh
//! cargo run --release -p proxy-examples --bin part-01-first-proxy -- -c conf.yaml
//! ```
//!
//! `-t` checks the conf and exits (0 when good, 1 with the file, line and key
//! at fault when not).

use async_trait::async_trait;
use proxy_examples::conf::{self, ExampleConf, RoundRobin};
use proxy_facade::http::{HeaderValue, RequestHeader};
use proxy_facade::prelude::*;
use proxy_facade::proxy::{ProxyHttp, Session};
use proxy_facade::server::configuration::Opt;
use proxy_facade::upstreams::peer::HttpPeer;

/// The proxy: everything `upstream_peer` needs to pick a peer.
///
/// The framework shares one value of this type between all threads and all
/// requests (it is behind an `Arc`), so it holds only read-only settings and
/// thread-safe state such as the round robin's atomic counter.
struct FirstProxy {
    /// Where to send requests, in turn.
    upstreams: RoundRobin,
    /// Our conf keys (for the timeouts).
    conf: ExampleConf,
}

/// Per-request state: the framework makes one with `new_ctx` when a request
/// arrives and hands it to every phase of that request.
struct Ctx {
    /// The `host:port` `upstream_peer` picked; `upstream_request_filter`
    /// uses it as the `Host` header.
    upstream: Option<HeaderValue>,
}

#[async_trait]
impl ProxyHttp for FirstProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx { upstream: None }
    }

    /// Phase `upstream_peer` (required): where should this request go?
    /// We take the next upstream in turn. An error here ends the request
    /// with a 502 (the framework's `fail_to_proxy` writes it).
    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let upstream = self
            .upstreams
            .pick()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no upstreams configured"))?;
        ctx.upstream = Some(upstream.host.clone());
        // A plain-HTTP peer (no TLS) with our conf's timeouts applied.
        Ok(conf::peer_for(upstream.addr, &self.conf))
    }

    /// Phase `upstream_request_filter`: the request header is about to be
    /// sent upstream; we may change it. Many origins route on `Host`, so we
    /// set it to the upstream we chose.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // taken rather than cloned: `upstream_peer` sets it again on a retry
        if let Some(host) = ctx.upstream.take() {
            upstream_request.insert_header("Host", host)?;
        }
        Ok(())
    }
}

fn main() {
    // Logs go to stderr; `RUST_LOG=debug` shows more.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run() {
        eprintln!("part-01-first-proxy: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    // 1. The server: parses the command line (-c conf.yaml, -t, -d, -u) and
    //    loads the server's keys (threads, pid_file, ...) from the conf file.
    let mut server = Server::new(Some(Opt::parse_args()))?;

    // 2. Our own keys, from the same file. Read them before `bootstrap` so
    //    `-t` checks them too.
    let conf = conf::load(&server)?;
    let upstreams = conf
        .upstreams_or_demo_origin()
        .or_err(ErrorType::InternalError, "starting the demo origin")?;

    // 3. `bootstrap` finishes start-up (with `-t` it exits here, 0 = good).
    server.bootstrap();

    // 4. A proxy service running our `ProxyHttp`, listening on `listen`.
    let listen = conf.listen.clone();
    let mut service = http_proxy_service(&server.configuration, FirstProxy { upstreams, conf });
    service.add_tcp(&listen);
    log::info!("proxy listening on http://{listen}/");

    // 5. Run until a signal: SIGINT exits now, SIGTERM drains then exits.
    server.add_service(service);
    server.run_forever();
}
