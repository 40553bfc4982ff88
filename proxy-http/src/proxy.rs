//! [`HttpProxy`]: the [`ServerApp`] that drives each request through the phases.
//!
//! The request lifecycle is a sequence of named stages, each a method here:
//! `serve_connection` (keep-alive loop) → `process_request` (context,
//! phases, error handling, logging) → `run_phases` (downstream filters, then
//! upstream) → `proxy_to_upstream` (peer selection, connect, retries) →
//! [`crate::proxy_h1`] or [`crate::proxy_to_h2`] (one exchange with an
//! HTTP/1 or HTTP/2 upstream).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::Method;
use proxy_cache::{HashBinary, NoCacheReason};
use proxy_core::apps::{HttpServerOptions, ServerApp};
use proxy_core::connectors::http::Connector;
use proxy_core::connectors::ConnectorOptions;
use proxy_core::error::{Error, ErrorSource, ErrorType, Result};
use proxy_core::protocols::http::client::HttpSession as ClientSession;
use proxy_core::protocols::http::error_resp::gen_error_response;
use proxy_core::protocols::http::v2::{prior_knowledge, H2Options};
use proxy_core::protocols::http::ServerSession;
use proxy_core::protocols::Stream;
use proxy_core::server::configuration::ServerConf;
use proxy_core::server::ShutdownWatch;
use proxy_core::upstreams::peer::Peer;

use crate::metrics::ServiceMetrics;
use crate::proxy_cache::CacheStep;
use crate::proxy_trait::ProxyHttp;
use crate::service::DEFAULT_SERVICE_NAME;
use crate::session::Session;
use crate::shutdown_wait::shutdown_wait;

/// How long the proxy reads and discards an unread request body (e.g. after
/// `request_filter` answered a POST with 401) to keep the connection, before
/// it closes the connection instead.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The proxy application: a user's [`ProxyHttp`] plus the framework's
/// upstream connector (with its connection pool) and retry policy.
pub struct HttpProxy<SV> {
    pub(crate) inner: SV,
    /// Downstream keep-alive, timeouts and request limit; change them before
    /// the service starts (`service.app_logic_mut()`).
    pub server_options: HttpServerOptions,
    /// The HTTP/2 server's settings (streams, header list, windows, reset
    /// limits) for connections that negotiate `h2` or, with
    /// `server_options.h2c`, open with the HTTP/2 preface.
    pub h2_options: H2Options,
    client_connector: Connector,
    max_retries: usize,
    pub(crate) metrics: ServiceMetrics,
    /// Keys whose stale entry is being refreshed in the background
    /// (stale-while-revalidate): one refresh per key at a time.
    pub(crate) refreshing: parking_lot::Mutex<std::collections::HashSet<HashBinary>>,
}

/// How long an idle keep-alive connection still waits for a next request
/// once a graceful shutdown has begun (see `serve_connection`).
const DRAIN_IDLE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl<SV> HttpProxy<SV> {
    /// Wrap `inner`, with the pool size (`upstream_keepalive_pool_size`) and
    /// retry bound (`max_retries`) from `conf`.
    ///
    /// Its metrics carry the label `service="Proxy HTTP Service"`
    /// ([`DEFAULT_SERVICE_NAME`]) until [`HttpProxy::set_metrics_service`].
    pub fn new(inner: SV, conf: Arc<ServerConf>) -> Self {
        Self::with_metrics_service(inner, conf, DEFAULT_SERVICE_NAME)
    }

    /// [`HttpProxy::new`] with `service` as the `service` label of its metrics.
    pub(crate) fn with_metrics_service(inner: SV, conf: Arc<ServerConf>, service: &str) -> Self {
        let metrics = ServiceMetrics::new(service);
        let mut client_connector = Connector::new(Some(ConnectorOptions::new(
            conf.upstream_keepalive_pool_size,
        )));
        client_connector.set_metrics(Some(metrics.upstream()));
        HttpProxy {
            inner,
            server_options: HttpServerOptions::default(),
            h2_options: H2Options::default(),
            client_connector,
            max_retries: conf.max_retries,
            metrics,
            refreshing: parking_lot::Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Set the `service` label of this proxy's metrics (requests, durations,
    /// body bytes, errors, upstream connections; see
    /// `proxy_core::metrics::FrameworkMetrics`). `http_proxy_service_with_name`
    /// sets it to the service's name; call it before the service starts.
    pub fn set_metrics_service(&mut self, service: &str) {
        self.metrics = ServiceMetrics::new(service);
        self.client_connector
            .set_metrics(Some(self.metrics.upstream()));
    }

    /// The user's proxy logic.
    pub fn app_logic(&self) -> &SV {
        &self.inner
    }

    /// The upstream connector, with its pool.
    pub fn connector(&self) -> &Connector {
        &self.client_connector
    }
}

impl<SV> HttpProxy<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    /// Serve requests on one downstream connection until it closes.
    ///
    /// Between requests the task holds only the session and a small wait for
    /// the next request's first byte; everything a request needs lives in a
    /// boxed future that exists only while the request is in flight, so an
    /// idle keep-alive connection stays small.
    async fn serve_connection(&self, stream: Stream, shutdown: &ShutdownWatch) {
        // boxed for the connection's life: a request moves a pointer, not the
        // session, through the phases and back
        let mut downstream = Box::new(ServerSession::new_http1(stream));
        let shutdown = shutdown_wait(shutdown);
        tokio::pin!(shutdown);
        let mut served: u32 = 0;
        loop {
            self.apply_server_options(&mut downstream);
            let arrived = tokio::select! {
                biased;
                r = downstream.wait_for_request() => Some(matches!(r, Ok(true))),
                _ = shutdown.as_mut(), if served > 0 => None,
            };
            let arrived = match arrived {
                Some(arrived) => arrived,
                // Shutdown began while this keep-alive connection was idle.
                // The client may be sending its next request right now, and
                // closing under it would fail that request (RFC 9112 §9.3.1
                // lets a client retry only idempotent ones, and many do not):
                // wait a moment, serve a request that arrives with
                // `Connection: close`, and close if none does.
                None => matches!(
                    tokio::time::timeout(DRAIN_IDLE_WAIT, downstream.wait_for_request()).await,
                    Ok(Ok(true))
                ),
            };
            if !arrived {
                return;
            }
            served = served.saturating_add(1);
            let closing = shutdown.as_mut().began()
                || self
                    .server_options
                    .keepalive_request_limit
                    .is_some_and(|l| served >= l);
            match Box::pin(self.serve_request(downstream, closing)).await {
                Some(next) => downstream = next,
                None => return,
            }
        }
    }

    /// Read one request, serve it, and return the session for the next one
    /// if the connection stays open. `closing`: answer, then close.
    async fn serve_request(
        &self,
        mut downstream: Box<ServerSession>,
        closing: bool,
    ) -> Option<Box<ServerSession>> {
        let started = Instant::now();
        match downstream.read_request().await {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => {
                self.metrics.error(&e);
                let code = Box::pin(reject_request(*downstream, &e)).await;
                self.metrics.request_rejected(code, started);
                return None;
            }
        }
        if closing {
            downstream.set_keepalive(None);
        }
        let (done, reuse) = self
            .process_request(Session::new(downstream), started)
            .await;
        if !reuse {
            if !done.is_body_done() {
                Box::pin(done.close_lingering()).await;
            }
            return None;
        }
        done.reuse_boxed().await
    }

    /// Keep-alive and timeouts from [`HttpServerOptions`] for the next request.
    fn apply_server_options(&self, downstream: &mut ServerSession) {
        let o = &self.server_options;
        downstream.set_keepalive(o.keepalive_timeout_seconds);
        downstream.set_header_read_timeout(o.header_read_timeout);
        downstream.set_read_timeout(o.body_read_timeout);
        downstream.set_write_timeout(o.write_timeout);
    }

    /// One request: context, phases, error response, logging. Returns the
    /// downstream session and whether it may serve another request.
    /// `started`: when reading the request head began (for its metrics).
    pub(crate) async fn process_request(
        &self,
        mut session: Session,
        started: Instant,
    ) -> (Box<ServerSession>, bool) {
        let mut ctx = self.inner.new_ctx();
        let error = self.run_phases(&mut session, &mut ctx).await.err();
        let mut reuse = true;
        if let Some(e) = error.as_deref() {
            self.metrics.error(e);
            let fail = self.inner.fail_to_proxy(&mut session, e, &mut ctx).await;
            reuse = fail.can_reuse_downstream;
            if !self.inner.suppress_error_log(&session, &ctx, e) {
                log::error!(
                    "fail to proxy: {e}, status: {}, {}",
                    fail.error_code,
                    self.inner.request_summary(&session, &ctx)
                );
            }
        }
        self.inner
            .logging(&mut session, error.as_deref(), &mut ctx)
            .await;
        self.metrics
            .request_done(&session.downstream_session, started);
        let mut downstream = session.downstream_session;
        reuse = reuse && downstream.will_keepalive();
        if reuse && !downstream.is_body_done() {
            // the request body was not (fully) read: drain it, bounded, or close
            let drained = Box::pin(tokio::time::timeout(
                DRAIN_TIMEOUT,
                downstream.drain_request_body(),
            ))
            .await;
            reuse = matches!(drained, Ok(Ok(()))) && downstream.will_keepalive();
        }
        (downstream, reuse)
    }

    /// The downstream phases, then (unless a phase answered) the upstream.
    async fn run_phases(&self, session: &mut Session, ctx: &mut SV::CTX) -> Result<()> {
        self.inner.early_request_filter(session, ctx).await?;
        if self.inner.request_filter(session, ctx).await? {
            return Ok(());
        }
        if let CacheStep::Served = self.cache_stage(session, ctx).await? {
            return Ok(());
        }
        if *session.req_header().method() == Method::CONNECT {
            // RFC 9110 §9.3.6: tunnelling is not a reverse proxy's job unless enabled
            return Error::e_explain(ErrorType::HTTPStatus(405), "CONNECT is not allowed");
        }
        if !self.inner.proxy_upstream_filter(session, ctx).await? {
            if session.response_written().is_none() {
                session.respond_error(502).await?;
            }
            return Ok(());
        }
        match self.proxy_to_upstream(session, ctx).await {
            Ok(()) => {
                if session.cache.storage().is_some() {
                    Box::pin(self.cache_after_response(session)).await;
                }
                Ok(())
            }
            Err(e) => {
                if session.cache.enabled() {
                    if Box::pin(self.serve_stale_if_error(session, &e, ctx)).await {
                        return Ok(());
                    }
                    session.cache.disable(NoCacheReason::UpstreamError);
                }
                Err(e)
            }
        }
    }

    /// Pick a peer, connect (or reuse a pooled connection) and exchange the
    /// request, retrying up to `max_retries` times when a phase or the
    /// framework marks the error retryable.
    async fn proxy_to_upstream(&self, session: &mut Session, ctx: &mut SV::CTX) -> Result<()> {
        let mut retries = 0usize;
        loop {
            // No upstream to go to is a bad gateway (502), not a fault of
            // ours: an error without a source (e.g. `Error::new_str("no
            // healthy upstream")`, as the tutorial writes) counts as upstream.
            let peer = self.inner.upstream_peer(session, ctx).await.map_err(|e| {
                if *e.esource() == ErrorSource::Unset {
                    e.into_up()
                } else {
                    e
                }
            })?;
            let (mut client, reused) = match self.client_connector.get_http_session(&peer).await {
                Ok(c) => c,
                Err(e) => {
                    let e = self.inner.fail_to_connect(session, &peer, ctx, e);
                    if e.retry() && retries < self.max_retries {
                        retries += 1;
                        log::debug!("retrying after connect failure: {e}");
                        continue;
                    }
                    return Err(e);
                }
            };
            session.upstream_ssl_digest = client.ssl_digest();
            let result = async {
                self.inner
                    .connected_to_upstream(session, reused, &peer, ctx)
                    .await?;
                match &mut client {
                    // boxed: an HTTP/1 exchange does not carry its states
                    ClientSession::H2(h2) => Box::pin(self.proxy_to_h2(session, h2, ctx)).await,
                    ClientSession::H1(_) => self.proxy_h1(session, &mut client, ctx).await,
                }
            }
            .await;
            match result {
                Ok(()) => {
                    // returns the connection to the pool if it can serve another request
                    self.client_connector
                        .release_http_session(client, &peer, peer.idle_timeout())
                        .await;
                    return Ok(());
                }
                Err(e) => {
                    let e = self.inner.error_while_proxy(&peer, session, e, ctx, reused);
                    let can_replay =
                        session.response_written().is_none() && session.retry_buffer.replayable();
                    if e.retry() && can_replay && retries < self.max_retries {
                        retries += 1;
                        log::debug!("retrying after proxy failure: {e}");
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }
}

/// Answer a request whose head could not be read, then close: 400 for a
/// malformed or smuggling-prone head, 431 (RFC 6585 §5) for an oversized one,
/// nothing for timeouts or a client that went away. Returns the status
/// sent, 0 when none was.
async fn reject_request(mut downstream: ServerSession, e: &Error) -> u16 {
    let code = match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::ReadTimedout | ErrorType::ConnectionClosed | ErrorType::ReadError => 0,
        _ => 400,
    };
    log::debug!("rejecting downstream request ({code}): {e}");
    if code == 0 {
        return 0;
    }
    if downstream
        .write_rejection(gen_error_response(code))
        .await
        .is_err()
    {
        return 0;
    }
    downstream.close_lingering().await;
    code
}

#[async_trait]
impl<SV> ServerApp for HttpProxy<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // HTTP/2 when TLS chose it by ALPN, or (h2c) the client opens with
        // the HTTP/2 preface on a plain listener; else HTTP/1.x
        // The HTTP/2 paths and the preface detection are boxed: awaited in
        // place, their futures would size every connection's future, and an
        // idle HTTP/1.1 keep-alive connection would carry their room.
        if stream.ssl_digest().is_some_and(|d| d.is_h2()) {
            Box::pin(self.serve_h2(stream, shutdown)).await;
            return None;
        }
        let stream = if self.server_options.h2c && stream.ssl_digest().is_none() {
            let (is_h2, stream) = Box::pin(prior_knowledge::detect(
                stream,
                self.server_options.header_read_timeout,
            ))
            .await;
            if is_h2 {
                Box::pin(self.serve_h2(stream, shutdown)).await;
                return None;
            }
            stream
        } else {
            stream
        };
        self.serve_connection(stream, shutdown).await;
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proxy_core::upstreams::peer::HttpPeer;

    struct Nothing;

    #[async_trait]
    impl ProxyHttp for Nothing {
        type CTX = ();
        fn new_ctx(&self) {}
        async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
            Error::e_explain(ErrorType::InternalError, "unused")
        }
    }

    /// What an idle keep-alive connection holds is this future (plus the
    /// socket and the task): the target is at most 2 KiB per idle
    /// connection in all (docs/benchmarks.md), so the future must stay small.
    #[test]
    fn idle_connection_future_stays_under_one_kib() {
        let conf = Arc::new(ServerConf::default());
        let proxy = HttpProxy::new(Nothing, conf);
        let (a, _b) = tokio::io::duplex(64);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let fut = proxy.serve_connection(Box::new(a), &rx);
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 1024, "serve_connection future is {size} bytes");
    }
}
