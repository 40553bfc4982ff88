//! # Part 3: filters
//!
//! Part 1's proxy, plus three phases:
//!
//! - `request_filter` turns away requests without the right `X-API-Key`
//!   header with a `401`, before any upstream is contacted;
//! - `response_filter` removes the `Server` and `X-Powered-By` headers the
//!   origin sent, so clients do not learn what runs behind the proxy;
//! - `logging` writes one access-log line per request, whatever happened to
//!   it (served, refused, failed upstream).
//!
//! ```sh
//! cargo run --release -p proxy-examples --bin part-03-filters
//! curl -i http://127.0.0.1:6188/                              # 401
//! curl -i -H 'X-API-Key: secret123' http://127.0.0.1:6188/    # 200
//! ```
//!
//! Conf keys: those of part 1, plus `api_key` (default `secret123`).

use std::time::Instant;

use async_trait::async_trait;
use proxy_examples::conf::{self, ExampleConf, RoundRobin, API_KEY_HEADER};
use proxy_facade::http::{HeaderValue, RequestHeader, ResponseHeader};
use proxy_facade::prelude::*;
use proxy_facade::proxy::{ProxyHttp, Session};
use proxy_facade::server::configuration::Opt;
use proxy_facade::upstreams::peer::HttpPeer;

/// The proxy: shared by all requests, so read-only settings only.
struct FilterProxy {
    /// Where to send requests, in turn.
    upstreams: RoundRobin,
    /// Our conf keys: the timeouts and the expected API key.
    conf: ExampleConf,
}

/// Per-request state, made by `new_ctx` when the request arrives.
struct Ctx {
    /// When the request started; `logging` reports the duration from here.
    started: Instant,
    /// The API key the client presented (`None`: no header, or not text).
    api_key: Option<String>,
    /// The `host:port` `upstream_peer` picked, used as `Host`.
    upstream: Option<HeaderValue>,
}

#[async_trait]
impl ProxyHttp for FilterProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            started: Instant::now(),
            api_key: None,
            upstream: None,
        }
    }

    /// Phase `request_filter`: runs for every request before anything is
    /// sent upstream. Returning `Ok(true)` means "I have already written the
    /// response; stop here" — the framework then skips straight to
    /// `logging`, and no upstream connection is ever made.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.api_key = session
            .req_header()
            .headers
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // A real gateway would compare in constant time and look keys up in
        // a store; one fixed key keeps the tutorial short.
        if ctx.api_key.as_deref() != Some(self.conf.api_key.as_str()) {
            session.respond_error(401).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Phase `upstream_peer` (required), as in part 1.
    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let upstream = self
            .upstreams
            .pick()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no upstreams configured"))?;
        ctx.upstream = Some(upstream.host.clone());
        Ok(conf::peer_for(upstream.addr, &self.conf))
    }

    /// Phase `upstream_request_filter`, as in part 1: set `Host`. We also
    /// keep the API key to ourselves: the origin does not need it.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(host) = &ctx.upstream {
            upstream_request.insert_header("Host", host.clone())?;
        }
        upstream_request.remove_header(API_KEY_HEADER);
        Ok(())
    }

    /// Phase `response_filter`: the upstream's response header, before it
    /// goes to the client. Removing a header that is absent is a no-op.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        upstream_response.remove_header("Server");
        upstream_response.remove_header("X-Powered-By");
        Ok(())
    }

    /// Phase `logging`: always the last phase, called exactly once per
    /// request, on success and on error (`e` is the error that ended the
    /// request, if any). One line per request:
    ///
    /// `client=<addr> request="<method path>" status=<code or -> duration_ms=<ms> error=<error or ->`
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let status = session
            .response_written()
            .map_or_else(|| "-".to_owned(), |resp| resp.status.as_u16().to_string());
        let client = session
            .client_addr()
            .map_or_else(|| "-".to_owned(), |addr| addr.to_string());
        let error = e.map_or_else(|| "-".to_owned(), |e| e.to_string());
        log::info!(
            target: "access",
            "client={client} request=\"{}\" status={status} duration_ms={} error={error}",
            session.request_summary(),
            ctx.started.elapsed().as_millis(),
        );
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run() {
        eprintln!("part-03-filters: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut server = Server::new(Some(Opt::parse_args()))?;
    let conf = conf::load(&server)?;
    let upstreams = conf
        .upstreams_or_demo_origin()
        .or_err(ErrorType::InternalError, "starting the demo origin")?;
    server.bootstrap();

    let listen = conf.listen.clone();
    let mut service = http_proxy_service(&server.configuration, FilterProxy { upstreams, conf });
    service.add_tcp(&listen);
    log::info!("proxy listening on http://{listen}/ (send the {API_KEY_HEADER} header)");
    server.add_service(service);
    server.run_forever();
}
