//! # Part 8: the complete proxy
//!
//! Everything the tutorial built, in one program:
//!
//! - **load balancing** (part 2): round robin over `upstreams`, each checked
//!   over TCP every second by a background service; a request goes to a
//!   healthy upstream, and a failed connection is retried on the next one;
//! - **rate limiting** (part 7): each client IP address may send
//!   `rate_limit_burst` requests at once, then `rate_limit_per_sec` a second;
//!   over that it gets `429 Too Many Requests` with `Retry-After`;
//! - **authentication** (part 3): requests without the right `X-API-Key`
//!   header get `401`; the key is not forwarded upstream;
//! - **response header cleanup** (part 3): `Server` and `X-Powered-By` from
//!   the origin are removed;
//! - **a cache** (part 6, which the tutorial left out of its complete proxy
//!   as an exercise): RFC 9111 rules, the key of scheme, host, path and
//!   query, a budget of `cache_size` bytes (TinyLFU admission in front of
//!   LRU, or plain LRU with `cache_admission: lru`) and a cache lock; in memory,
//!   or on disk in `cache_dir` (surviving restarts) behind a memory tier.
//!   It sits after the limiter and the key check: a hit is served only to
//!   a client that passed both;
//! - **an access log** (part 3): one line per request from `logging`, with
//!   the upstream that served it, whether the limiter refused it, and the
//!   cache's outcome.
//!
//! Each refusal happens in `request_filter`, before an upstream is chosen,
//! so neither a flood nor a missing key costs an upstream connection. The
//! limiter runs first: it also protects the key check from guessing.
//!
//! ```sh
//! cargo run --release -p proxy-examples --bin part-08-complete
//! curl -i -H 'X-API-Key: secret123' http://127.0.0.1:6188/    # 200 from a demo origin
//! curl -i http://127.0.0.1:6188/                              # 401
//! ```
//!
//! With no `upstreams` in the conf it starts two demo origins in-process and
//! balances over them, so it answers at once. Conf keys: `listen`,
//! `upstreams`, `upstream_connect_timeout_ms`, `upstream_read_timeout_ms`,
//! `api_key`, `rate_limit_per_sec`, `rate_limit_burst` (see
//! `docs/08-complete-proxy.md`), and part 6's `cache_size`, `cache_dir`,
//! `cache_admission`, `cache_default_ttl`, `cache_max_file_size` and
//! `cache_sendfile`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use proxy_examples::cache_storage;
use proxy_examples::conf::{self, ExampleConf, API_KEY_HEADER};
use proxy_facade::cache::eviction::EvictionManager;
use proxy_facade::cache::{CacheKey, CacheLock, CacheMetaDefaults, CacheOptionOverrides, Storage};
use proxy_facade::http::{RequestHeader, ResponseHeader};
use proxy_facade::lb::Backend;
use proxy_facade::limits::RateLimiter;
use proxy_facade::prelude::*;
use proxy_facade::proxy::{ProxyHttp, Session};
use proxy_facade::server::configuration::Opt;
use proxy_facade::upstreams::peer::HttpPeer;

/// The proxy, shared by every request on every thread: the load balancer,
/// the limiter and the counter are all lock-free.
struct CompleteProxy {
    /// The upstreams and their health, kept current by the health-check
    /// background service.
    upstreams: Arc<LoadBalancer<RoundRobin>>,
    /// One request budget per client IP address.
    limiter: RateLimiter,
    /// Our conf keys (timeouts, API key).
    conf: ExampleConf,
    /// Requests refused with 429 so far.
    limited_total: AtomicU64,
    /// The cache's shared parts, leaked to `&'static` as in part 6.
    cache: CacheParts,
}

/// The cache's storage, eviction manager, lock and options.
struct CacheParts {
    storage: &'static dyn Storage,
    eviction: &'static dyn EvictionManager,
    lock: &'static CacheLock,
    overrides: CacheOptionOverrides,
}

/// How long a fill may hold the cache lock before waiters stop trusting it.
const LOCK_AGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-request state.
struct Ctx {
    /// When the request arrived; the access log reports the duration.
    started: Instant,
    /// The upstream `upstream_peer` chose (`None`: no upstream was needed,
    /// or none was healthy).
    backend: Option<Backend>,
    /// Whether the limiter refused this request.
    limited: bool,
}

#[async_trait]
impl ProxyHttp for CompleteProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            started: Instant::now(),
            backend: None,
            limited: false,
        }
    }

    /// Rate limit, then authenticate; `Ok(true)` ends the request here.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // 1. the client's budget, by IP address (not port: a client opens
        //    many connections); clients without one (a Unix socket) share one
        let client: Option<IpAddr> = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if let Some(wait) = self
            .limiter
            .check_at(&client, ctx.started)
            .retry_after_secs()
        {
            ctx.limited = true;
            let body = Bytes::from(format!("Too many requests. Retry after {wait} s.\n"));
            let mut resp = ResponseHeader::build(429, Some(4))?;
            // whole seconds, rounded up (RFC 6585 §4, RFC 9110 §10.2.3)
            resp.insert_header("Retry-After", wait.to_string())?;
            resp.insert_header("Content-Type", "text/plain")?;
            resp.insert_header("Content-Length", body.len().to_string())?;
            resp.insert_header("Cache-Control", "no-store")?;
            session.write_response_header(Box::new(resp), false).await?;
            session.write_response_body(Some(body), true).await?;
            return Ok(true);
        }
        // 2. the API key
        let key_ok = session
            .req_header()
            .headers
            .get(API_KEY_HEADER)
            .is_some_and(|v| v.as_bytes() == self.conf.api_key.as_bytes());
        if !key_ok {
            session.respond_error(401).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Phase `request_cache_filter`: the cache, for every method (only GET
    /// and HEAD are served from it; a successful unsafe method invalidates,
    /// RFC 9111 §4.4). Runs after `request_filter`, so refused requests
    /// never reach it.
    async fn request_cache_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<()> {
        let c = &self.cache;
        session.cache.enable(
            c.storage,
            Some(c.eviction),
            None,
            Some(c.lock),
            Some(c.overrides),
        );
        if self.conf.cache_max_file_size > 0 {
            session
                .cache
                .set_max_file_size_bytes(self.conf.cache_max_file_size);
        }
        Ok(())
    }

    /// Phase `cache_key_callback`: scheme, host, path and query (the API
    /// key is not part of it: every client that passed the check shares
    /// the entries).
    fn cache_key_callback(&self, session: &Session, _ctx: &mut Ctx) -> Result<CacheKey> {
        let tls = session.ssl_digest().is_some();
        Ok(CacheKey::default_http("", session.req_header(), tls, ""))
    }

    /// A healthy upstream, in turn; 502 when there is none.
    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let backend = self
            .upstreams
            .select(b"", 256)
            .ok_or_else(|| Error::new_str("no healthy upstream available"))?;
        let mut peer = HttpPeer::new(&backend, false, String::new());
        peer.options.connection_timeout = self.conf.connect_timeout();
        peer.options.read_timeout = self.conf.read_timeout();
        ctx.backend = Some(backend);
        Ok(Box::new(peer))
    }

    /// An upstream that refused the connection may just have gone down since
    /// the last health check: try the next one (up to `max_retries`).
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        _ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        log::warn!("connecting to {peer} failed, trying another upstream: {e}");
        e.set_retry(true);
        e
    }

    /// The origin routes on `Host`; the API key stays with us.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(backend) = &ctx.backend {
            upstream_request.insert_header("Host", backend.addr.to_string())?;
        }
        upstream_request.remove_header(API_KEY_HEADER);
        Ok(())
    }

    /// Do not tell clients what runs behind the proxy.
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

    /// One line per request:
    /// `client=<addr> request="<method path>" status=<code> upstream=<addr or -> duration_ms=<ms> limited=<yes|no> limited_total=<n> cache=<phase> error=<error or ->`
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let limited_total = if ctx.limited {
            self.limited_total.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.limited_total.load(Ordering::Relaxed)
        };
        let status = session
            .response_written()
            .map_or_else(|| "-".to_owned(), |r| r.status.as_u16().to_string());
        let client = session
            .client_addr()
            .map_or_else(|| "-".to_owned(), |a| a.to_string());
        let upstream = ctx
            .backend
            .as_ref()
            .map_or_else(|| "-".to_owned(), |b| b.addr.to_string());
        let error = e.map_or_else(|| "-".to_owned(), |e| e.to_string());
        let cache = session.cache.phase().as_str();
        log::info!(
            target: "access",
            "client={client} request=\"{}\" status={status} upstream={upstream} duration_ms={} limited={} limited_total={limited_total} cache={cache} error={error}",
            session.request_summary(),
            ctx.started.elapsed().as_millis(),
            if ctx.limited { "yes" } else { "no" },
        );
    }
}

/// The upstreams from the conf, or two demo origins started in-process.
fn upstream_addrs(conf: &ExampleConf) -> Result<Vec<String>> {
    if !conf.upstreams.is_empty() {
        return Ok(conf.upstreams.clone());
    }
    let addrs = proxy_examples::demo_origin::spawn_several(2)
        .or_err(ErrorType::InternalError, "starting the demo origins")?;
    log::info!(
        "no upstreams configured: demo origins on {}",
        addrs.join(" and ")
    );
    Ok(addrs)
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run() {
        eprintln!("part-08-complete: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut server = Server::new(Some(Opt::parse_args()))?;
    let conf = conf::load(&server)?;
    let limiter = RateLimiter::new(conf.rate_limit_per_sec, conf.rate_limit_burst).or_err(
        ErrorType::InternalError,
        "rate_limit_per_sec / rate_limit_burst",
    )?;
    let addrs = upstream_addrs(&conf)?;
    server.bootstrap();

    let mut upstreams = LoadBalancer::try_from_iter(&addrs)?;
    upstreams.set_health_check(TcpHealthCheck::new());
    upstreams.health_check_frequency = Some(Duration::from_secs(1));
    let background = background_service("health_check", upstreams);
    let upstreams = background.task();

    let (storage, eviction) = cache_storage::build(&conf);
    let cache = CacheParts {
        storage,
        eviction,
        lock: Box::leak(Box::new(CacheLock::new(LOCK_AGE_TIMEOUT))),
        overrides: CacheOptionOverrides {
            defaults: (conf.cache_default_ttl > 0)
                .then(|| CacheMetaDefaults::uniform(conf.cache_default_ttl)),
            // no body filter here: large hits may go out with sendfile(2)
            sendfile: conf.cache_sendfile(),
            ..Default::default()
        },
    };
    let listen = conf.listen.clone();
    let proxy = CompleteProxy {
        upstreams,
        limiter,
        conf,
        limited_total: AtomicU64::new(0),
        cache,
    };
    let mut service = http_proxy_service(&server.configuration, proxy);
    service.add_tcp(&listen);
    log::info!("proxy listening on http://{listen}/ (send the {API_KEY_HEADER} header)");
    server.add_service(background);
    server.add_service(service);
    server.run_forever();
}
