//! The cache stage of the proxy loop: between `request_filter` and
//! `upstream_peer`, and around the upstream's response.
//!
//! - [`HttpProxy::cache_stage`]: `request_cache_filter`, the key, purge,
//!   lookup (with `Vary`), `cache_hit_filter`, the cache lock, serving hits,
//!   and the decision to go upstream (miss or revalidation). Serving an
//!   entry is in `cache_hit.rs`.
//! - [`HttpProxy::cache_upstream_request`]: the request a fill or a
//!   revalidation sends (GET, the stored validators).
//! - [`HttpProxy::cache_admit_response`]: what to do with the upstream's
//!   response header: serve the stored body (304, stale-if-error), or
//!   forward it, storing it if `response_cache_filter` says so.
//! - [`HttpProxy::cache_after_response`]: invalidation after unsafe methods
//!   (RFC 9111 §4.4) and stale-if-error when the upstream failed.

use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use proxy_cache::cache_control::CacheControl;
use proxy_cache::http_cache::purge_key;
use proxy_cache::{
    filters, CacheKey, CachePhase, ForcedFreshness, HitStatus, LockStatus, NoCacheReason,
    RespCacheable,
};
use proxy_core::error::{Error, ErrorSource, ErrorType, Result};
use proxy_core::http::{FieldLines, RequestHeader, ResponseHeader};
use proxy_core::protocols::http::ServerSession;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::proxy::HttpProxy;
use crate::proxy_trait::ProxyHttp;
use crate::session::Session;

/// How many times a request waits on the cache lock and looks up again
/// before it goes upstream on its own.
const MAX_LOCK_ROUNDS: usize = 4;

/// The outcome of a purge, handed to `purge_response_filter`.
#[derive(Debug)]
pub enum PurgeStatus {
    /// The cache is not enabled for this request.
    NoCache,
    /// An entry was found and removed (200).
    Found,
    /// Nothing was stored for the key (404).
    NotFound,
    /// The storage failed (500).
    Error(Box<Error>),
}

/// Whether the cache stage answered the request.
pub(crate) enum CacheStep {
    /// A response was sent (hit, purge, 504 for only-if-cached).
    Served,
    /// Go upstream (miss, revalidation, bypass, or no cache).
    Upstream,
}

/// What to do with the upstream's response header.
pub(crate) enum Admission {
    /// Forward it (storing it if a fill was started).
    Forward,
    /// Serve the stored body instead (after a 304, or stale-if-error); the
    /// upstream's body is not read.
    ServeStored,
}

/// The framework's default `response_cache_filter`: RFC 9111 for a shared
/// cache, with the overrides' fallback lifetimes.
pub(crate) fn default_response_cacheable(
    session: &Session,
    resp: &ResponseHeader,
) -> RespCacheable {
    let defaults = session.cache.overrides().and_then(|o| o.defaults);
    let auth = session.req_header().has_field(&http::header::AUTHORIZATION);
    filters::resp_cacheable(resp, auth, defaults.as_ref(), SystemTime::now())
}

impl<SV> HttpProxy<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    /// The cache stage: enable, key, purge, lookup, lock, serve a hit.
    pub(crate) async fn cache_stage(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
    ) -> Result<CacheStep> {
        self.inner.request_cache_filter(session, ctx).await?;
        if !session.cache.enabled() {
            return Ok(CacheStep::Upstream);
        }
        // boxed: a proxy without a cache keeps none of the lookup's states
        // (or its code) in every request's future
        Box::pin(self.cache_lookup_stage(session, ctx)).await
    }

    /// The cache stage once `request_cache_filter` enabled the cache: key,
    /// purge, lookup, lock, serve a hit.
    async fn cache_lookup_stage(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
    ) -> Result<CacheStep> {
        match self.inner.cache_key_callback(session, ctx) {
            Ok(key) => session.cache.set_cache_key(key),
            Err(e) => {
                log::warn!("cache off for this request: {e}");
                session.cache.disable(NoCacheReason::InternalError);
                return Ok(CacheStep::Upstream);
            }
        }
        if self.inner.is_purge(session, ctx) {
            self.serve_purge(session, ctx).await?;
            return Ok(CacheStep::Served);
        }
        let req = session.req_header();
        if *req.method() != Method::GET && *req.method() != Method::HEAD {
            // unsafe methods invalidate after their response (§4.4)
            session.cache.bypass();
            return Ok(CacheStep::Upstream);
        }
        // RFC 9111 §5.4: `Pragma: no-cache` counts when there is no Cache-Control
        let req_cc = CacheControl::from_req_headers(req).or_else(|| {
            req.field_values(&http::header::PRAGMA)
                .any(|v| v.eq_ignore_ascii_case(b"no-cache"))
                .then(|| CacheControl::parse([&b"no-cache"[..]]))
        });
        if req_cc.as_ref().is_some_and(|cc| cc.no_store()) {
            // RFC 9111 §5.2.1.5: store no part of this request or response
            session.cache.bypass();
            return Ok(CacheStep::Upstream);
        }
        if !session.cache.cacheable_prediction() {
            session.cache.bypass();
            return Ok(CacheStep::Upstream);
        }
        let only_if_cached = req_cc.as_ref().is_some_and(|cc| cc.only_if_cached());
        for _ in 0..MAX_LOCK_ROUNDS {
            let found = match self.cache_lookup_vary(session, ctx).await {
                Ok(found) => found,
                Err(e) => {
                    log::warn!("cache lookup failed, serving uncached: {e}");
                    session.cache.disable(NoCacheReason::StorageError);
                    return Ok(CacheStep::Upstream);
                }
            };
            if let Some((meta, mut hit)) = found {
                let now = SystemTime::now();
                let is_fresh = !session.background_refresh
                    && filters::request_allows_fresh(req_cc.as_ref(), &meta, now);
                let forced = match self
                    .inner
                    .cache_hit_filter(session, &meta, &mut hit, is_fresh, ctx)
                    .await
                {
                    Ok(f) => f,
                    Err(e) => {
                        log::warn!("cache_hit_filter failed, treating as a miss: {e}");
                        Some(ForcedFreshness::ForceMiss)
                    }
                };
                let status = match (forced, is_fresh) {
                    (Some(ForcedFreshness::ForceMiss), _) => HitStatus::ForceMiss,
                    (Some(ForcedFreshness::ForceFresh), false) => HitStatus::ForceFresh,
                    (Some(ForcedFreshness::ForceExpired), true) => HitStatus::ForceExpired,
                    (_, true) => HitStatus::Fresh,
                    (_, false) => HitStatus::Expired,
                };
                let stale_ok = !status.is_fresh()
                    && !status.is_treated_as_miss()
                    && !session.background_refresh
                    && filters::request_allows_stale(req_cc.as_ref(), &meta, now);
                session.cache.cache_found(meta, hit, status)?;
                if status.is_fresh() || stale_ok {
                    if stale_ok {
                        session.cache.serve_stored(CachePhase::Stale, None)?;
                    }
                    self.serve_from_cache(session, ctx).await?;
                    return Ok(CacheStep::Served);
                }
                if !status.is_treated_as_miss() {
                    if only_if_cached {
                        // RFC 9111 §5.2.1.7: no stored response that may be used
                        session.respond_error(504).await?;
                        return Ok(CacheStep::Served);
                    }
                    if !session.background_refresh
                        && self.serve_stale_while_revalidate(session, ctx).await?
                    {
                        return Ok(CacheStep::Served);
                    }
                }
            } else if only_if_cached {
                session.respond_error(504).await?;
                return Ok(CacheStep::Served);
            }
            // a miss or a revalidation: one request goes upstream per key
            match session.cache.cache_lock() {
                None => {
                    if !matches!(session.cache.phase(), CachePhase::Expired) {
                        self.inner.cache_miss(session, ctx);
                    }
                    return Ok(CacheStep::Upstream);
                }
                Some(read) => {
                    let status = session.cache.cache_lock_wait(read).await;
                    match status {
                        LockStatus::Done | LockStatus::TransientError | LockStatus::Dangling => {
                            // look up again: the new entry, or take the lock
                            session.cache.cache_miss();
                            session.cache.set_variance(None);
                            continue;
                        }
                        LockStatus::GiveUp => {
                            session.cache.bypass();
                            return Ok(CacheStep::Upstream);
                        }
                        LockStatus::WaitTimeout | LockStatus::AgeTimeout | LockStatus::Waiting => {
                            session.cache.disable(NoCacheReason::CacheLockTimeout);
                            return Ok(CacheStep::Upstream);
                        }
                    }
                }
            }
        }
        session.cache.disable(NoCacheReason::CacheLockGiveUp);
        Ok(CacheStep::Upstream)
    }

    /// Look the key up; if what is stored for the primary key is a `Vary`
    /// marker, look up this request's variant (RFC 9111 §4.1). A variant
    /// stored before the marker was (re)written belongs to an invalidated
    /// generation and is not used.
    async fn cache_lookup_vary(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
    ) -> Result<Option<(proxy_cache::CacheMeta, proxy_cache::HitHandler)>> {
        session.cache.set_variance(None);
        let Some((marker, hit)) = session.cache.cache_lookup().await? else {
            return Ok(None);
        };
        if marker.variance().is_none() {
            return Ok(Some((marker, hit)));
        }
        drop(hit);
        let variance =
            self.inner
                .cache_vary_filter(&marker, ctx, session.downstream_session.req_header());
        let Some(variance) = variance else {
            return Ok(None);
        };
        session.cache.set_variance(Some(variance));
        match session.cache.cache_lookup().await? {
            Some((meta, hit)) if meta.updated() >= marker.updated() => Ok(Some((meta, hit))),
            _ => Ok(None),
        }
    }

    /// A stale entry within its stale-while-revalidate window: serve it now
    /// and refresh it after the response, once per key. Returns whether it
    /// was served.
    async fn serve_stale_while_revalidate(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
    ) -> Result<bool> {
        let now = SystemTime::now();
        let Some(meta) = session.cache.stale_meta() else {
            return Ok(false);
        };
        if !meta.serve_stale_while_revalidate(now)
            || !self.inner.should_serve_stale(session, ctx, None)
        {
            return Ok(false);
        }
        let Some(key) = session.cache.cache_key().map(CacheKey::combined_bin) else {
            return Ok(false);
        };
        let first = self.refreshing.lock().insert(key);
        session
            .cache
            .serve_stored(CachePhase::StaleUpdating, None)?;
        self.serve_from_cache(session, ctx).await?;
        if first {
            let req = session.req_header().clone();
            self.background_refresh(req).await;
            self.refreshing.lock().remove(&key);
        }
        Ok(true)
    }

    /// Refresh a stale entry: run `req` through the proxy as a request of
    /// its own, on an in-memory connection whose response is discarded, with
    /// the cache told to revalidate rather than serve.
    async fn background_refresh(&self, mut req: RequestHeader) {
        req.set_method(Method::GET);
        req.remove_header(&http::header::CONTENT_LENGTH);
        req.remove_header(&http::header::TRANSFER_ENCODING);
        req.remove_header(&http::header::RANGE);
        req.remove_header(&http::header::IF_NONE_MATCH);
        req.remove_header(&http::header::IF_MODIFIED_SINCE);
        req.set_version(http::Version::HTTP_11);
        let mut head = BytesMut::with_capacity(512);
        head.extend_from_slice(b"GET ");
        head.extend_from_slice(req.raw_path());
        head.extend_from_slice(b" HTTP/1.1\r\n");
        req.header_to_h1_wire(&mut head);
        head.extend_from_slice(b"\r\n");
        let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
        if theirs.write_all(&head).await.is_err() {
            return;
        }
        let mut down = Box::new(ServerSession::new_http1(Box::new(ours)));
        if !matches!(down.read_request().await, Ok(Some(_))) {
            return;
        }
        down.set_keepalive(None);
        let mut session = Session::new(down);
        session.background_refresh = true;
        // boxed: this request's future is part of the one that serves it
        let mut work = Box::pin(self.process_request(session, Instant::now()));
        let mut sink = vec![0u8; 16 * 1024];
        let mut draining = true;
        loop {
            tokio::select! {
                _ = &mut work => return,
                n = theirs.read(&mut sink), if draining => {
                    if !matches!(n, Ok(n) if n > 0) {
                        draining = false;
                    }
                }
            }
        }
    }

    /// Answer a purge: remove the key's entry, then 200, 404 or 500.
    async fn serve_purge(&self, session: &mut Session, ctx: &mut SV::CTX) -> Result<()> {
        let status = match session.cache.purge().await {
            Ok(true) => PurgeStatus::Found,
            Ok(false) => PurgeStatus::NotFound,
            Err(e) => PurgeStatus::Error(e),
        };
        let code = match &status {
            PurgeStatus::Found => 200,
            PurgeStatus::NotFound => 404,
            PurgeStatus::NoCache => 405,
            PurgeStatus::Error(_) => 500,
        };
        let mut resp = ResponseHeader::build(code, Some(2))?;
        resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
        self.inner
            .purge_response_filter(session, ctx, status, &mut resp)
            .await?;
        session
            .write_response_header(Box::new(resp), true)
            .await
            .map_err(|e| e.into_down())
    }

    /// Add an RFC 9211 `Cache-Status` field when the overrides ask for it.
    pub(crate) fn add_cache_status(&self, session: &Session, resp: &mut ResponseHeader) {
        let Some(name) = session.cache.overrides().and_then(|o| o.cache_status_name) else {
            return;
        };
        let value = cache_status_value(name, &session.cache, resp.status_code().as_u16());
        if let Err(e) = resp.append_header("Cache-Status", value) {
            log::debug!("Cache-Status not added: {e}");
        }
    }

    /// Prepare the upstream request of a fill or a revalidation (RFC 9111
    /// §4.3.1): a fill asks with GET, without the client's Range; a
    /// revalidation carries the stored validators instead of the client's.
    pub(crate) fn cache_upstream_request(&self, session: &Session, req: &mut RequestHeader) {
        match session.cache.phase() {
            CachePhase::Miss if session.cache.enabled() => {
                filters::upstream_fill_request(req);
            }
            CachePhase::Expired => {
                if let Some(meta) = session.cache.stale_meta() {
                    filters::upstream_conditional_request(req, meta);
                }
            }
            _ => {}
        }
    }

    /// Decide what the upstream's response header means for the cache.
    /// Called after `upstream_response_filter`, before `response_filter`.
    /// With the cache on, `Surrogate-Control` (addressed to this cache) is
    /// not forwarded.
    pub(crate) async fn cache_admit_response(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut SV::CTX,
    ) -> Result<Admission> {
        let admission = if matches!(
            session.cache.phase(),
            CachePhase::Miss | CachePhase::Expired
        ) {
            // boxed: only a fill or a revalidation needs it
            Box::pin(self.cache_admit(session, resp, ctx)).await
        } else {
            Ok(Admission::Forward)
        };
        if session.cache.storage().is_some() || session.cache.phase() != CachePhase::Uninit {
            resp.remove_header(filters::SURROGATE_CONTROL);
        }
        admission
    }

    /// [`HttpProxy::cache_admit_response`] for a fill or a revalidation
    /// (phase `Miss` or `Expired`).
    async fn cache_admit(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut SV::CTX,
    ) -> Result<Admission> {
        let status = resp.status_code();
        if session.cache.phase() == CachePhase::Expired {
            if status == StatusCode::NOT_MODIFIED {
                return self.cache_revalidated(session, resp, ctx).await;
            }
            if matches!(status.as_u16(), 500 | 502 | 503 | 504) {
                let now = SystemTime::now();
                let allowed = session
                    .cache
                    .stale_meta()
                    .is_some_and(|m| m.serve_stale_if_error(now));
                let err = Error::explain(ErrorType::HTTPStatus(status.as_u16()), "origin error");
                if allowed && self.inner.should_serve_stale(session, ctx, Some(&err)) {
                    session.cache.serve_stored(CachePhase::Stale, None)?;
                    return Ok(Admission::ServeStored);
                }
            }
        }
        let verdict = match self.inner.response_cache_filter(session, resp, ctx) {
            Ok(v) => v,
            Err(e) => {
                log::warn!("response_cache_filter failed, not storing: {e}");
                RespCacheable::Uncacheable(NoCacheReason::InternalError)
            }
        };
        let mut meta = match verdict {
            RespCacheable::Cacheable(meta) => meta,
            RespCacheable::Uncacheable(reason) => {
                session.cache.response_became_uncacheable(reason);
                session.cache.disable(reason);
                return Ok(Admission::Forward);
            }
        };
        let names = proxy_cache::vary::vary_names(meta.response_header());
        if names.is_wildcard() {
            // RFC 9111 §4.1: `Vary: *` never matches a later request
            session.cache.disable(NoCacheReason::OriginNotCache);
            return Ok(Admission::Forward);
        }
        if !names.is_empty() {
            let variance = self
                .inner
                .cache_vary_filter(&meta, ctx, session.req_header());
            let had = session.cache.cache_key().and_then(CacheKey::variance_bin);
            meta.set_variance(variance);
            session.cache.set_variance(variance);
            if variance.is_some() && had != variance {
                session.cache.set_vary_marker(meta.clone());
            }
        } else {
            session.cache.set_variance(None);
        }
        if let (Some(max), Some(len)) = (session.cache.max_file_size_bytes(), content_length(resp))
        {
            if len > max {
                session
                    .cache
                    .response_became_uncacheable(NoCacheReason::ResponseTooLarge);
                session
                    .cache
                    .disable(NoCacheReason::PredictedResponseTooLarge);
                return Ok(Admission::Forward);
            }
        }
        if let Err(e) = session.cache.set_miss_handler(meta).await {
            log::warn!("cache fill could not start, serving uncached: {e}");
            session.cache.disable(NoCacheReason::StorageError);
        }
        Ok(Admission::Forward)
    }

    /// The origin answered a revalidation with 304: merge its header into
    /// the stored one (RFC 9111 §4.3.4), store the new meta, serve the
    /// stored body.
    async fn cache_revalidated(
        &self,
        session: &mut Session,
        not_modified: &ResponseHeader,
        ctx: &mut SV::CTX,
    ) -> Result<Admission> {
        let Some(stale) = session.cache.stale_meta() else {
            return Ok(Admission::Forward);
        };
        let merged = filters::merge_not_modified(stale.response_header(), not_modified);
        let verdict = match self.inner.response_cache_filter(session, &merged, ctx) {
            Ok(v) => v,
            Err(e) => {
                log::warn!("response_cache_filter failed on a 304: {e}");
                RespCacheable::Uncacheable(NoCacheReason::InternalError)
            }
        };
        match verdict {
            RespCacheable::Cacheable(mut meta) => {
                meta.set_variance(session.cache.cache_key().and_then(CacheKey::variance_bin));
                session.cache.revalidate_cache_meta(meta).await?;
            }
            RespCacheable::Uncacheable(reason) => {
                let mut meta = session
                    .cache
                    .stale_meta()
                    .cloned()
                    .ok_or_else(|| Error::explain(ErrorType::InternalError, "no stale meta"))?;
                *meta.response_header_mut() = merged;
                session.cache.revalidate_uncacheable(meta, reason)?;
            }
        }
        Ok(Admission::ServeStored)
    }

    /// Store a piece of the upstream's body when a fill is in progress.
    pub(crate) async fn cache_body(&self, session: &mut Session, piece: Option<&Bytes>, end: bool) {
        if session.cache.is_filling() {
            // boxed: only a fill needs it
            Box::pin(self.cache_fill(session, piece, end)).await;
        }
    }

    /// Store a piece in the fill in progress; `end`: finish the fill.
    async fn cache_fill(&self, session: &mut Session, piece: Option<&Bytes>, end: bool) {
        if let Some(p) = piece {
            session.cache.write_body(p).await;
        }
        if end {
            session.cache.finish_miss_handler().await;
        }
    }

    /// After the upstream exchange: a successful unsafe request invalidates
    /// the stored responses for its target and for its `Location` and
    /// `Content-Location` on the same host (RFC 9111 §4.4).
    pub(crate) async fn cache_after_response(&self, session: &mut Session) {
        let (Some(storage), Some(key)) = (session.cache.storage(), session.cache.cache_key())
        else {
            return;
        };
        let req = session.req_header();
        if req.method().is_safe() {
            return;
        }
        let Some(resp) = session.response_written() else {
            return;
        };
        if !(200..400).contains(&resp.status.as_u16()) {
            return;
        }
        let tls = session.ssl_digest().is_some();
        let mut keys = vec![key.clone()];
        for primary in filters::invalidation_targets(req, resp, key, tls) {
            keys.push(CacheKey::new(key.namespace(), primary, key.user_tag()));
        }
        for k in keys {
            if let Err(e) = purge_key(storage, None, &k).await {
                log::warn!("cache invalidation failed: {e}");
            }
        }
    }

    /// The upstream failed: serve the stale entry being revalidated if its
    /// stale-if-error window (RFC 5861 §4) and `should_serve_stale` allow.
    /// Returns whether it was served.
    pub(crate) async fn serve_stale_if_error(
        &self,
        session: &mut Session,
        error: &Error,
        ctx: &mut SV::CTX,
    ) -> bool {
        if session.response_written().is_some() || session.cache.phase() != CachePhase::Expired {
            return false;
        }
        let now = SystemTime::now();
        let within = session
            .cache
            .stale_meta()
            .is_some_and(|m| m.serve_stale_if_error(now));
        if !within || error.esource() != &ErrorSource::Upstream {
            return false;
        }
        if !self.inner.should_serve_stale(session, ctx, Some(error)) {
            return false;
        }
        if session.cache.serve_stored(CachePhase::Stale, None).is_err() {
            return false;
        }
        session.cache.release_write_lock(LockStatus::TransientError);
        match self.serve_from_cache(session, ctx).await {
            Ok(()) => true,
            Err(e) => {
                log::warn!("serving stale after an upstream error failed: {e}");
                false
            }
        }
    }
}

fn content_length(resp: &ResponseHeader) -> Option<usize> {
    resp.headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// An RFC 9211 `Cache-Status` member for this request's cache outcome:
/// `hit` with `ttl` (seconds of freshness left, negative when stale) for a
/// response served from the cache, else `fwd` with the reason it went
/// upstream, `fwd-status`, `stored` when it is being stored, and `detail`
/// naming why not.
fn cache_status_value(name: &str, cache: &proxy_cache::HttpCache, status: u16) -> String {
    let ttl = |m: &proxy_cache::CacheMeta| {
        let now = SystemTime::now();
        match m.fresh_until().duration_since(now) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        }
    };
    let meta_ttl = cache.cache_meta().map(ttl);
    // whether it is a hit, and the `fwd` reason and status
    let (hit, fwd) = match cache.phase() {
        CachePhase::Hit => (true, None),
        CachePhase::Stale | CachePhase::StaleUpdating => (true, Some(("stale", None))),
        CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => {
            (false, Some(("stale", Some(304))))
        }
        CachePhase::Bypass => (false, Some(("bypass", Some(status)))),
        CachePhase::Expired => (false, Some(("stale", Some(status)))),
        CachePhase::Miss | CachePhase::Disabled(_) => (false, Some(("uri-miss", Some(status)))),
        CachePhase::Uninit | CachePhase::CacheKey => (false, Some(("request", Some(status)))),
    };
    let mut num = itoa::Buffer::new();
    let mut v = String::with_capacity(48);
    v.push_str(name);
    if hit {
        v.push_str("; hit");
    }
    if let Some((reason, fwd_status)) = fwd {
        v.push_str("; fwd=");
        v.push_str(reason);
        if let Some(code) = fwd_status {
            v.push_str("; fwd-status=");
            v.push_str(num.format(code));
        }
    }
    if let (true, Some(t)) = (hit, meta_ttl) {
        v.push_str("; ttl=");
        v.push_str(num.format(t));
    }
    match cache.phase() {
        CachePhase::Miss if cache.is_filling() => v.push_str("; stored"),
        CachePhase::Disabled(reason) => {
            v.push_str("; detail=");
            v.push_str(reason.as_str());
        }
        _ => {}
    }
    // exact size: the value's `Bytes` then takes the buffer as it is (a
    // spare capacity would cost it a second allocation to share it)
    v.shrink_to_fit();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxy_cache::{HttpCache, NoCacheReason};

    #[test]
    fn cache_status_names_why_a_response_went_upstream() {
        let mut cache = HttpCache::default();
        assert_eq!(
            cache_status_value("p", &cache, 200),
            "p; fwd=request; fwd-status=200"
        );
        cache.disable(NoCacheReason::OriginNotCache);
        let v = cache_status_value("p", &cache, 404);
        assert_eq!(
            v,
            format!(
                "p; fwd=uri-miss; fwd-status=404; detail={}",
                NoCacheReason::OriginNotCache.as_str()
            )
        );
        assert_eq!(v.len(), v.capacity(), "sized exactly");
    }
}
