//! # Part 7: rate limiting
//!
//! Part 1's proxy, plus a limit on how fast each client may send requests:
//!
//! - `request_filter` checks the client's IP address against a
//!   [`RateLimiter`]: each address may make `rate_limit_burst` requests at
//!   once (default 20), then `rate_limit_per_sec` per second (default 10).
//!   A request over the limit is answered `429 Too Many Requests` with a
//!   `Retry-After` header (RFC 6585 §4) giving, in whole seconds
//!   (RFC 9110 §10.2.3), how long until the client would be let through. No
//!   upstream is chosen or contacted for it;
//! - `logging` writes one access-log line per request and counts the
//!   limited ones: each line carries `limited=yes|no` and the running total
//!   `limited_total=<n>`.
//!
//! ```sh
//! cargo run --release -p proxy-examples --bin part-07-rate-limiting
//! for i in $(seq 25); do curl -s -o /dev/null -w '%{http_code} ' http://127.0.0.1:6188/; done
//! # 200 (x20) 429 (x5)
//! curl -i http://127.0.0.1:6188/   # 429 with Retry-After: 1 ... until a second has passed
//! ```
//!
//! Conf keys: those of part 1, plus `rate_limit_per_sec` (default 10) and
//! `rate_limit_burst` (default 20).
//!
//! The limiter keeps no per-client table: it hashes each address into a
//! fixed sketch of atomic words (256 KiB), so a flood of new addresses
//! costs no memory, and checking takes no lock, so the worker threads never
//! wait for each other. See `docs/07-rate-limiting.md`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use proxy_examples::conf::{self, ExampleConf, RoundRobin};
use proxy_facade::http::{HeaderValue, RequestHeader, ResponseHeader};
use proxy_facade::limits::{Decision, RateLimiter};
use proxy_facade::prelude::*;
use proxy_facade::proxy::{ProxyHttp, Session};
use proxy_facade::server::configuration::Opt;
use proxy_facade::upstreams::peer::HttpPeer;

/// The proxy: shared by all requests on all threads. The limiter and the
/// counter are lock-free, so sharing them costs no waiting.
struct RateLimitProxy {
    /// Where to send requests, in turn.
    upstreams: RoundRobin,
    /// Our conf keys: the timeouts (the limits are already in `limiter`).
    conf: ExampleConf,
    /// One budget per client IP address.
    limiter: RateLimiter,
    /// Requests answered 429 so far, counted by `logging`.
    limited_total: AtomicU64,
}

/// Per-request state.
struct Ctx {
    /// When the request started: the time the limiter judges it at (one
    /// clock read for both), and the start of `logging`'s duration.
    started: Instant,
    /// Whether `request_filter` turned the request away.
    limited: bool,
    /// The `host:port` `upstream_peer` picked, used as `Host`.
    upstream: Option<HeaderValue>,
}

#[async_trait]
impl ProxyHttp for RateLimitProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            started: Instant::now(),
            limited: false,
            upstream: None,
        }
    }

    /// Phase `request_filter`: the first phase that sees the request, before
    /// any upstream is picked. Over the limit: answer 429 and return
    /// `Ok(true)` ("answered, stop here").
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // The key: the client's IP address (not the port: a client opens
        // many connections). `None` for a client without one (a Unix
        // socket); those share one budget.
        let client: Option<IpAddr> = session
            .client_addr()
            .and_then(|addr| addr.as_inet())
            .map(|addr| addr.ip());
        let retry_after = match self.limiter.check_at(&client, ctx.started) {
            Decision::Allowed => return Ok(false),
            // whole seconds, rounded up: waiting that long is enough
            limited => limited.retry_after_secs().unwrap_or(1),
        };
        ctx.limited = true;
        let body = Bytes::from(format!(
            "Too many requests: at most {} per second, in bursts of {}. Retry after {retry_after} s.\n",
            self.limiter.rate(),
            self.limiter.burst()
        ));
        let mut resp = ResponseHeader::build(429, Some(4))?;
        resp.insert_header("Retry-After", retry_after.to_string())?;
        resp.insert_header("Content-Type", "text/plain")?;
        resp.insert_header("Content-Length", body.len().to_string())?;
        // A 429 is about this moment: no cache should keep it.
        resp.insert_header("Cache-Control", "no-store")?;
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body), true).await?;
        Ok(true)
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

    /// Phase `upstream_request_filter`, as in part 1: set `Host`.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(host) = &ctx.upstream {
            upstream_request.insert_header("Host", host.clone())?;
        }
        Ok(())
    }

    /// Phase `logging`: once per request, last. Counts the limited
    /// requests and writes one line:
    ///
    /// `client=<addr> request="<method path>" status=<code> limited=<yes|no> limited_total=<n> duration_ms=<ms> error=<error or ->`
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let limited_total = if ctx.limited {
            self.limited_total.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.limited_total.load(Ordering::Relaxed)
        };
        let status = session
            .response_written()
            .map_or_else(|| "-".to_owned(), |resp| resp.status.as_u16().to_string());
        let client = session
            .client_addr()
            .map_or_else(|| "-".to_owned(), |addr| addr.to_string());
        let error = e.map_or_else(|| "-".to_owned(), |e| e.to_string());
        log::info!(
            target: "access",
            "client={client} request=\"{}\" status={status} limited={} limited_total={limited_total} duration_ms={} error={error}",
            session.request_summary(),
            if ctx.limited { "yes" } else { "no" },
            ctx.started.elapsed().as_millis(),
        );
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run() {
        eprintln!("part-07-rate-limiting: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut server = Server::new(Some(Opt::parse_args()))?;
    let conf = conf::load(&server)?;
    let limiter = RateLimiter::new(conf.rate_limit_per_sec, conf.rate_limit_burst).or_err(
        ErrorType::InternalError,
        "rate_limit_per_sec / rate_limit_burst in the conf",
    )?;
    let upstreams = conf
        .upstreams_or_demo_origin()
        .or_err(ErrorType::InternalError, "starting the demo origin")?;
    server.bootstrap();

    let listen = conf.listen.clone();
    log::info!(
        "proxy listening on http://{listen}/, {} requests per second per client, bursts of {}",
        limiter.rate(),
        limiter.burst()
    );
    let proxy = RateLimitProxy {
        upstreams,
        conf,
        limiter,
        limited_total: AtomicU64::new(0),
    };
    let mut service = http_proxy_service(&server.configuration, proxy);
    service.add_tcp(&listen);
    server.add_service(service);
    server.run_forever();
}
