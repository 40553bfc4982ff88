//! # Part 6: caching
//!
//! Part 1's proxy with an HTTP cache in front of the origin, done the way a
//! production cache is, not with the tutorial's fixed 60 seconds:
//!
//! - **policy**: the framework's RFC 9111 rules for a shared cache decide
//!   what is stored and for how long (`Cache-Control`, `Expires`,
//!   `CDN-Cache-Control`, `Vary`, `private`, `no-store`, `Authorization`);
//!   `cache_default_ttl` gives responses without freshness information a
//!   lifetime, like nginx's `proxy_cache_valid`;
//! - **key**: scheme, host, path and query (`CacheKey::default_http`), not
//!   the path alone: two sites behind one proxy never share an entry;
//! - **storage**: `MemCache`, sharded, bounded by an eviction manager to
//!   `cache_size` bytes (TinyLFU admission in front of LRU, or plain LRU
//!   with `cache_admission: lru`); with `cache_dir`, a `DiskCache` in that
//!   directory (surviving restarts) behind a memory tier of hot entries
//!   (`proxy_examples::cache_storage`);
//! - **cache lock**: concurrent misses on one key send one request upstream;
//!   the others are served from the new entry as it is written;
//! - **predictor**: keys whose responses were uncacheable skip the cache;
//! - **purge**: `PURGE /path` from the proxy's own host removes an entry;
//! - unsafe requests (POST, PUT, DELETE, PATCH) go upstream and invalidate
//!   what is stored for their URI (RFC 9111 §4.4);
//! - each response carries an RFC 9211 `Cache-Status` header, and the
//!   access log says hit, miss, stale, revalidated or why not cached.
//!
//! ```sh
//! cargo run --release -p proxy-examples --bin part-06-caching
//! curl -si http://127.0.0.1:6188/ | grep -i cache-status    # miss, stored
//! curl -si http://127.0.0.1:6188/ | grep -i cache-status    # hit
//! curl -si -X PURGE http://127.0.0.1:6188/                  # 200, purged
//! ```
//!
//! Conf keys: those of part 1, plus `cache_size` (bytes, default 256 MiB),
//! `cache_default_ttl` (seconds, default 0: none) and `cache_max_file_size`
//! (bytes, default 0: no limit but the budget), `cache_dir` (default
//! none: in memory), `cache_admission` (`lru` or `tinylfu`, default
//! `tinylfu`) and `cache_sendfile` (default: on with `cache_dir`, off in
//! memory).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use proxy_examples::cache_storage;
use proxy_examples::conf::{self, ExampleConf, RoundRobin};
use proxy_facade::cache::eviction::EvictionManager;
use proxy_facade::cache::predictor::Predictor;
use proxy_facade::cache::{CacheKey, CacheLock, CacheMetaDefaults, CacheOptionOverrides, Storage};
use proxy_facade::http::{FieldLines, HeaderValue, RequestHeader};
use proxy_facade::prelude::*;
use proxy_facade::proxy::{ProxyHttp, Session};
use proxy_facade::server::configuration::Opt;
use proxy_facade::upstreams::peer::HttpPeer;

/// How long a fill may hold the cache lock before waiters stop trusting it.
const LOCK_AGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The proxy: the upstreams, the conf, and the cache's shared parts. The
/// storage, eviction manager, lock and predictor live for the whole
/// process, so they are leaked into `&'static` references, as in Pingora.
struct CachingProxy {
    upstreams: RoundRobin,
    conf: ExampleConf,
    storage: &'static dyn Storage,
    eviction: &'static dyn EvictionManager,
    lock: &'static CacheLock,
    predictor: &'static Predictor<16>,
    overrides: CacheOptionOverrides,
}

struct Ctx {
    started: Instant,
    upstream: Option<HeaderValue>,
}

#[async_trait]
impl ProxyHttp for CachingProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            started: Instant::now(),
            upstream: None,
        }
    }

    /// Phase `request_cache_filter`: turn the cache on. The tutorial turns
    /// it on for GET and HEAD only; we turn it on for every method, because
    /// the framework then also invalidates what is stored when a POST, PUT,
    /// DELETE or PATCH to the same URI succeeds (RFC 9111 §4.4). Only GET
    /// and HEAD are ever served from or stored in the cache.
    async fn request_cache_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<()> {
        session.cache.enable(
            self.storage,
            Some(self.eviction),
            Some(self.predictor),
            Some(self.lock),
            Some(self.overrides),
        );
        if self.conf.cache_max_file_size > 0 {
            session
                .cache
                .set_max_file_size_bytes(self.conf.cache_max_file_size);
        }
        Ok(())
    }

    /// Phase `cache_key_callback`: scheme, host, path and query.
    fn cache_key_callback(&self, session: &Session, _ctx: &mut Ctx) -> Result<CacheKey> {
        let tls = session.ssl_digest().is_some();
        Ok(CacheKey::default_http("", session.req_header(), tls, ""))
    }

    /// Phase `is_purge`: `PURGE` requests from this host only (anyone who
    /// can purge can make the origin take the load of every miss).
    fn is_purge(&self, session: &Session, _ctx: &Ctx) -> bool {
        session.req_header().method().as_str() == "PURGE"
            && session
                .client_addr()
                .and_then(|a| a.as_inet())
                .is_some_and(|a| a.ip().is_loopback())
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let upstream = self
            .upstreams
            .pick()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no upstreams configured"))?;
        ctx.upstream = Some(upstream.host.clone());
        Ok(conf::peer_for(upstream.addr, &self.conf))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // Keep the client's Host when it sent one (it is part of the key and
        // origins route on it); else name the upstream.
        if !session.req_header().has_field(&http::header::HOST) {
            if let Some(host) = &ctx.upstream {
                upstream_request.insert_header("Host", host.clone())?;
            }
        }
        Ok(())
    }

    /// Phase `logging`: one line per request, with the cache's outcome.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        if !log::log_enabled!(log::Level::Info) {
            return;
        }
        let status = session
            .response_written()
            .map_or_else(|| "-".to_owned(), |r| r.status.as_u16().to_string());
        let cache = match session.cache.no_cache_reason() {
            Some(reason) => format!("{} ({})", session.cache.phase().as_str(), reason.as_str()),
            None => session.cache.phase().as_str().to_owned(),
        };
        let req = session.req_header();
        log::info!(
            "request=\"{} {}\" status={status} cache={cache} duration_ms={} error={}",
            req.method,
            req.uri,
            ctx.started.elapsed().as_millis(),
            e.map_or_else(|| "-".to_owned(), |e| e.to_string()),
        );
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run() {
        eprintln!("part-06-caching: {e}");
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

    let overrides = CacheOptionOverrides {
        defaults: (conf.cache_default_ttl > 0)
            .then(|| CacheMetaDefaults::uniform(conf.cache_default_ttl)),
        cache_status_name: Some("part-06"),
        // no body filter here: large hits may go out with sendfile(2)
        sendfile: conf.cache_sendfile(),
        ..Default::default()
    };
    let (storage, eviction) = cache_storage::build(&conf);
    let proxy = CachingProxy {
        upstreams,
        storage,
        eviction,
        lock: Box::leak(Box::new(CacheLock::new(LOCK_AGE_TIMEOUT))),
        predictor: Box::leak(Box::new(Predictor::new(16 * 1024, None))),
        overrides,
        conf,
    };
    let listen = proxy.conf.listen.clone();
    let mut service = http_proxy_service(&server.configuration, proxy);
    service.add_tcp(&listen);
    log::info!("caching proxy listening on http://{listen}/");
    server.add_service(service);
    server.run_forever();
}
