//! The phases a user implements: [`ProxyHttp`].

use std::time::Duration;

use crate::range::RangeType;
use async_trait::async_trait;
use bytes::Bytes;
use proxy_cache::{CacheKey, CacheMeta, ForcedFreshness, HashBinary, HitHandler, RespCacheable};
use proxy_core::error::{Error, ErrorSource, ErrorType, Result};
use proxy_core::http::{RequestHeader, ResponseHeader};
use proxy_core::upstreams::peer::HttpPeer;

use crate::proxy_cache::PurgeStatus;

use crate::ready::{BoxFuture, ReadyBool, ReadyOk, ReadyUnit};
use crate::session::Session;

/// What [`ProxyHttp::fail_to_proxy`] did about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailToProxy {
    /// The status code sent to the client, `0` if none was sent (e.g. the client is gone).
    pub error_code: u16,
    /// Whether the downstream connection may serve another request.
    pub can_reuse_downstream: bool,
}

/// The status code [`ProxyHttp::fail_to_proxy`] answers an error with by default.
///
/// - `HTTPStatus(code)` and `CustomCode(_, code)` → `code`;
/// - an upstream timeout (connect, read or write) → 504 (RFC 9110 §15.6.5);
/// - any other upstream error → 502 (RFC 9110 §15.6.3);
/// - a downstream read/write error or closed connection → 0 (nobody to answer);
/// - any other downstream error → 400;
/// - internal or unknown errors → 500.
pub fn error_status(e: &Error) -> u16 {
    match e.etype() {
        ErrorType::HTTPStatus(code) | ErrorType::CustomCode(_, code) => *code,
        etype => match e.esource() {
            ErrorSource::Upstream if etype.is_timeout() => 504,
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match etype {
                ErrorType::WriteError
                | ErrorType::ReadError
                | ErrorType::ConnectionClosed
                | ErrorType::WriteTimedout => 0,
                ErrorType::ReadTimedout => 408,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

/// The phases of one proxied request, as default methods a user overrides.
///
/// Only [`ProxyHttp::new_ctx`] and [`ProxyHttp::upstream_peer`] are required.
/// For each request the framework calls, in this order (see `docs/phases.md`):
///
/// 1. [`new_ctx`](ProxyHttp::new_ctx)
/// 2. [`early_request_filter`](ProxyHttp::early_request_filter)
/// 3. [`request_filter`](ProxyHttp::request_filter) — `Ok(true)` ends the request here
/// 4. with the cache enabled by [`request_cache_filter`](ProxyHttp::request_cache_filter):
///    [`cache_key_callback`](ProxyHttp::cache_key_callback), [`is_purge`](ProxyHttp::is_purge)
///    (→ [`purge_response_filter`](ProxyHttp::purge_response_filter)), lookup with
///    [`cache_vary_filter`](ProxyHttp::cache_vary_filter), [`cache_hit_filter`](ProxyHttp::cache_hit_filter);
///    a hit is served from the cache (through [`cache_not_modified_filter`](ProxyHttp::cache_not_modified_filter),
///    [`range_header_filter`](ProxyHttp::range_header_filter), [`response_filter`](ProxyHttp::response_filter),
///    [`response_body_filter`](ProxyHttp::response_body_filter)) and the request goes to step 12;
///    else [`cache_miss`](ProxyHttp::cache_miss), with [`should_serve_stale`](ProxyHttp::should_serve_stale)
///    for stale entries, and after the upstream's response header [`response_cache_filter`](ProxyHttp::response_cache_filter)
/// 5. [`proxy_upstream_filter`](ProxyHttp::proxy_upstream_filter) — `Ok(false)` ends it with 502 unless a response was written
/// 6. [`upstream_peer`](ProxyHttp::upstream_peer), then connect (or reuse a pooled connection);
///    on failure [`fail_to_connect`](ProxyHttp::fail_to_connect), which may mark the error retryable
/// 7. [`connected_to_upstream`](ProxyHttp::connected_to_upstream)
/// 8. [`upstream_request_filter`](ProxyHttp::upstream_request_filter), then the request body,
///    each piece through [`request_body_filter`](ProxyHttp::request_body_filter)
/// 9. [`upstream_response_filter`](ProxyHttp::upstream_response_filter), [`response_filter`](ProxyHttp::response_filter)
/// 10. each body piece through [`upstream_response_body_filter`](ProxyHttp::upstream_response_body_filter)
///     and [`response_body_filter`](ProxyHttp::response_body_filter); trailers through
///     [`upstream_response_trailer_filter`](ProxyHttp::upstream_response_trailer_filter) and
///     [`response_trailer_filter`](ProxyHttp::response_trailer_filter)
/// 11. on an error after connecting: [`error_while_proxy`](ProxyHttp::error_while_proxy) (retry from 6 if it
///     says so), else [`fail_to_proxy`](ProxyHttp::fail_to_proxy) writes the error response
/// 12. [`logging`](ProxyHttp::logging), always, once, success or error.
#[async_trait]
pub trait ProxyHttp {
    /// Per-request state, made by [`ProxyHttp::new_ctx`] and handed to every phase.
    type CTX;

    /// Make the per-request state. Called once per request, before any other phase.
    fn new_ctx(&self) -> Self::CTX;

    /// The upstream to send this request to. Called again for each retry.
    ///
    /// # Errors
    /// An error ends the request through [`ProxyHttp::fail_to_proxy`].
    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>>;

    /// The first phase, before any module or filter sees the request.
    fn early_request_filter<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _ctx: &'life2 mut Self::CTX,
    ) -> BoxFuture<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
        Self::CTX: Send + Sync,
    {
        Box::pin(ReadyOk)
    }

    /// Inspect or answer the request. Return `Ok(true)` when this phase already
    /// wrote a response (e.g. [`Session::respond_error`]): the request then ends
    /// here, with no upstream connection.
    fn request_filter<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _ctx: &'life2 mut Self::CTX,
    ) -> BoxFuture<'async_trait, Result<bool>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
        Self::CTX: Send + Sync,
    {
        Box::pin(ReadyBool::<false>)
    }

    /// Decide whether this request may use the cache: call
    /// `session.cache.enable(storage, eviction, predictor, lock, overrides)`
    /// here. The default leaves the cache off. Called for every request after
    /// [`ProxyHttp::request_filter`].
    fn request_cache_filter<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _ctx: &'life2 mut Self::CTX,
    ) -> BoxFuture<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
        Self::CTX: Send + Sync,
    {
        Box::pin(ReadyOk)
    }

    /// The key this request's response is looked up and stored under.
    /// Called when the cache is enabled.
    ///
    /// There is no default key: which parts of a request make two requests
    /// the same is a security decision (leaving the `Host` out lets one
    /// site's response be served for another's). The default returns an
    /// error, which turns the cache off for the request with a log line.
    /// [`CacheKey::default_http`] builds the usual key (scheme, host, path
    /// and query) for those who want it.
    ///
    /// # Errors
    /// Any error turns the cache off for this request
    /// ([`NoCacheReason::InternalError`](proxy_cache::NoCacheReason::InternalError)); the request is still proxied.
    fn cache_key_callback(&self, _session: &Session, _ctx: &mut Self::CTX) -> Result<CacheKey> {
        Error::e_explain(
            ErrorType::InternalError,
            "cache_key_callback is not implemented: the cache needs a key (see CacheKey::default_http)",
        )
    }

    /// Whether this request is a purge (e.g. method `PURGE` from a trusted
    /// client). A purge removes the entry for the request's key and is
    /// answered 200 (purged) or 404 (not cached) without going upstream.
    /// Default `false`.
    fn is_purge(&self, _session: &Session, _ctx: &Self::CTX) -> bool {
        false
    }

    /// Change the response to a purge before it is sent (`purge_response`
    /// starts as 200, 404 or 500 with an empty body, by `purge_status`).
    async fn purge_response_filter(
        &self,
        _session: &Session,
        _ctx: &mut Self::CTX,
        _purge_status: PurgeStatus,
        _purge_response: &mut ResponseHeader,
    ) -> Result<()>
    where
        Self::CTX: Send + Sync,
    {
        Ok(())
    }

    /// The variance of `req` for a stored response whose meta is `meta`
    /// (RFC 9111 §4.1): a digest of the request's values of the header
    /// fields the response's `Vary` names, or `None` when it does not vary.
    /// Called on lookup (against the stored `Vary`) and when storing (against
    /// the new response's). The default normalises the named request fields
    /// (see `proxy_cache::vary`).
    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut Self::CTX,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        let names = proxy_cache::vary::vary_names(meta.response_header());
        proxy_cache::vary::variance_for(&names, req)
    }

    /// Judge a found entry: `is_fresh` is the cache's verdict (RFC 9111
    /// §4.2, and the request's own directives, §5.2.1). Return a
    /// [`ForcedFreshness`] to override it. An error makes the request a miss
    /// ([`proxy_cache::HitStatus::FailedHitFilter`]).
    async fn cache_hit_filter(
        &self,
        _session: &mut Session,
        _meta: &CacheMeta,
        _hit_handler: &mut HitHandler,
        _is_fresh: bool,
        _ctx: &mut Self::CTX,
    ) -> Result<Option<ForcedFreshness>>
    where
        Self::CTX: Send + Sync,
    {
        Ok(None)
    }

    /// Nothing usable was found (or this request holds the cache lock): the
    /// response comes from upstream. The default marks the cache as a miss.
    fn cache_miss(&self, session: &mut Session, _ctx: &mut Self::CTX) {
        session.cache.cache_miss();
    }

    /// Whether to serve the stale stored response. `error` is `None` for
    /// stale-while-revalidate (RFC 5861 §3: the stale copy goes out and the
    /// entry is refreshed in the background), `Some` when the origin failed
    /// (stale-if-error, RFC 5861 §4). Only asked within the windows the
    /// response allowed. Default: yes, for both.
    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
        _error: Option<&Error>,
    ) -> bool {
        true
    }

    /// Decide whether and how long to store the upstream's response. The
    /// default applies RFC 9111 for a shared cache (no-store, private,
    /// Authorization, s-maxage over max-age over Expires, `CDN-Cache-Control`
    /// first, RFC 9213) with the fallback lifetimes of the cache overrides'
    /// `defaults`, and no lifetime for a response that names none.
    ///
    /// # Errors
    /// An error is logged and the response passes uncached.
    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<RespCacheable> {
        Ok(crate::proxy_cache::default_response_cacheable(
            session, resp,
        ))
    }

    /// Whether to answer the client's conditional request (`If-None-Match`,
    /// `If-Modified-Since`, RFC 9110 §13) with 304 for a response served
    /// from the cache. The default evaluates them against `resp`.
    ///
    /// # Errors
    /// An error serves the full response.
    fn cache_not_modified_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<bool> {
        Ok(proxy_cache::filters::not_modified_filter(
            session.req_header(),
            resp,
        ))
    }

    /// Apply the client's `Range` (RFC 9110 §14) to a response served from
    /// the cache, rewriting `resp` for a 206 or 416, and say which ranges to
    /// send. Called only when the stored body can be seeked and its length is
    /// known. The default serves single and multipart ranges (up to 200).
    fn range_header_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> RangeType {
        let len = session.cache.hit_handler().and_then(|h| h.body_len());
        match len {
            Some(len) => crate::range::range_header_filter(session.req_header(), resp, len),
            None => RangeType::None,
        }
    }

    /// Each piece of the request body on its way upstream; `body` may be
    /// changed or taken. `end_of_stream` is true for the last call.
    fn request_body_filter<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _body: &'life2 mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &'life3 mut Self::CTX,
    ) -> BoxFuture<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
        Self::CTX: Send + Sync,
    {
        Box::pin(ReadyOk)
    }

    /// Decide whether to go upstream at all. `Ok(false)` ends the request: with
    /// 502 unless this phase wrote a response itself.
    fn proxy_upstream_filter<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _ctx: &'life2 mut Self::CTX,
    ) -> BoxFuture<'async_trait, Result<bool>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
        Self::CTX: Send + Sync,
    {
        Box::pin(ReadyBool::<true>)
    }

    /// Called after a connection to the upstream is ready; `reused` tells
    /// whether it came from the pool.
    fn connected_to_upstream<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _reused: bool,
        _peer: &'life2 HttpPeer,
        _ctx: &'life3 mut Self::CTX,
    ) -> BoxFuture<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
        Self::CTX: Send + Sync,
    {
        Box::pin(ReadyOk)
    }

    /// Called when connecting to `peer` failed; nothing was sent on the wire.
    /// Return the error, after `e.set_retry(true)` to try [`ProxyHttp::upstream_peer`]
    /// again (e.g. to fail over to another peer), up to `max_retries`.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        _ctx: &mut Self::CTX,
        e: Box<Error>,
    ) -> Box<Error> {
        e
    }

    /// Change the request header before it is sent upstream. Hop-by-hop headers
    /// (RFC 9110 §7.6.1) are already removed.
    fn upstream_request_filter<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _upstream_request: &'life2 mut RequestHeader,
        _ctx: &'life3 mut Self::CTX,
    ) -> BoxFuture<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
        Self::CTX: Send + Sync,
    {
        Box::pin(ReadyOk)
    }

    /// Change the upstream's response header before anything else sees it
    /// (with a cache, before it is stored).
    fn upstream_response_filter<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _upstream_response: &'life2 mut ResponseHeader,
        _ctx: &'life3 mut Self::CTX,
    ) -> BoxFuture<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
        Self::CTX: Send + Sync,
    {
        Box::pin(ReadyOk)
    }

    /// Each piece of the upstream's response body, before [`ProxyHttp::response_body_filter`].
    /// A returned duration delays the next read by that long (bandwidth throttling).
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut Self::CTX,
    ) -> Result<Option<Duration>> {
        Ok(None)
    }

    /// The upstream's response trailers (HTTP/2 trailing HEADERS, RFC 9113
    /// §8.1; e.g. gRPC's `grpc-status`), after the last body piece.
    ///
    /// Called for HTTP/2 upstreams; the trailer section of a chunked
    /// HTTP/1.1 upstream response is still read and dropped.
    fn upstream_response_trailer_filter(
        &self,
        _session: &mut Session,
        _trailers: &mut http::HeaderMap,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        Ok(())
    }

    /// Change the response header before it goes to the client.
    fn response_filter<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _upstream_response: &'life2 mut ResponseHeader,
        _ctx: &'life3 mut Self::CTX,
    ) -> BoxFuture<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
        Self::CTX: Send + Sync,
    {
        Box::pin(ReadyOk)
    }

    /// Each piece of the response body on its way to the client. A returned
    /// duration delays the next piece by that long (bandwidth throttling).
    fn response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut Self::CTX,
    ) -> Result<Option<Duration>> {
        Ok(None)
    }

    /// The response trailers on their way to the client. Returning `Some(bytes)`
    /// sends those bytes as a last body piece instead of trailers.
    ///
    /// Called after [`ProxyHttp::upstream_response_trailer_filter`]. The
    /// trailers then go to an HTTP/2 client as trailing HEADERS, to an
    /// HTTP/1.1 client in the trailer section of a chunked body (dropped
    /// when the body has a Content-Length).
    async fn response_trailer_filter(
        &self,
        _session: &mut Session,
        _trailers: &mut http::HeaderMap,
        _ctx: &mut Self::CTX,
    ) -> Result<Option<Bytes>>
    where
        Self::CTX: Send + Sync,
    {
        Ok(None)
    }

    /// Called when proxying to `peer` failed after the connection was made.
    /// The default decides a [`proxy_core::RetryType::ReusedOnly`] error by
    /// `client_reused` (a pooled connection that turned out dead is retried on
    /// a fresh one) and adds the peer to the context.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        _session: &mut Session,
        e: Box<Error>,
        _ctx: &mut Self::CTX,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("peer: {peer}"));
        e.decide_reuse(client_reused);
        e
    }

    /// Write the error response for a request that failed, and say what was
    /// sent. The default answers with [`error_status`] unless a response
    /// header was already sent, and never reuses the downstream connection
    /// (the error response carries `Connection: close`).
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut Self::CTX,
    ) -> FailToProxy
    where
        Self::CTX: Send + Sync,
    {
        let code = error_status(e);
        let code = if code > 0 && session.response_written().is_none() {
            // the connection is closed after this answer (can_reuse_downstream
            // below): say so in it, RFC 9112 §9.6
            session.set_keepalive(None);
            match session.respond_error(code).await {
                Ok(()) => code,
                Err(we) => {
                    log::debug!("failed to send error response {code} downstream: {we}");
                    0
                }
            }
        } else {
            0
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// The last phase, called exactly once per request, with the error that
    /// ended it if any. Write access logs and metrics here.
    fn logging<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _e: Option<&'life2 Error>,
        _ctx: &'life3 mut Self::CTX,
    ) -> BoxFuture<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
        Self::CTX: Send + Sync,
    {
        Box::pin(ReadyUnit)
    }

    /// Return `true` to keep `error` out of the error log.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Self::CTX, _error: &Error) -> bool {
        false
    }

    /// The one-line description of the request used in error logs.
    fn request_summary(&self, session: &Session, _ctx: &Self::CTX) -> String {
        session.request_summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_status_mapping() {
        let cases: Vec<(Box<Error>, u16)> = vec![
            (Error::new(ErrorType::HTTPStatus(403)), 403),
            (Error::new_up(ErrorType::ConnectRefused), 502),
            (Error::new_up(ErrorType::ConnectTimedout), 504),
            (Error::new_up(ErrorType::ReadTimedout), 504),
            (Error::new_up(ErrorType::InvalidHTTPHeader), 502),
            (Error::new_down(ErrorType::InvalidHTTPHeader), 400),
            (Error::new_down(ErrorType::ConnectionClosed), 0),
            (Error::new_down(ErrorType::WriteError), 0),
            (Error::new_in(ErrorType::InternalError), 500),
            (Error::new(ErrorType::UnknownError), 500),
            (Error::new(ErrorType::new_code("quota", 429)), 429),
        ];
        for (e, code) in cases {
            assert_eq!(error_status(&e), code, "{e}");
        }
    }
}
