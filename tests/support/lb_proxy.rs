//! An in-process proxy over a `LoadBalancer`, for the load-balancing tests
//! that need an algorithm or a discovery source the `part-02` binary does
//! not offer (weights, random, least connections, DNS).
//!
//! Unlike the rest of `support`, this one is built on the framework: it
//! runs a real `Server` (its own runtimes, a listening proxy service on
//! `127.0.0.1:0`, optionally the load balancer as a background service) on a
//! thread of the test process, and stops it when dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use proxy_facade::http::ResponseHeader;
use proxy_facade::lb::selection::InFlightGuard;
use proxy_facade::lb::Backend;
use proxy_facade::prelude::*;
use proxy_facade::proxy::{http_proxy_service_with_name, ProxyHttp, Session};
use proxy_facade::server::configuration::ServerConf;
use proxy_facade::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use proxy_facade::services::listening::Service as ListeningService;
use proxy_facade::services::Service;
use proxy_facade::upstreams::peer::HttpPeer;

use super::WAIT;

/// The header naming the backend that served a response (as `part-02`).
pub(crate) const BACKEND_HEADER: &str = "x-backend";

/// Picks a backend for a request key (the request path); may hand back an
/// in-flight guard the proxy keeps until the request ends.
pub(crate) type Pick = dyn Fn(&[u8]) -> Option<(Backend, Option<InFlightGuard>)> + Send + Sync;

struct LbTestProxy {
    pick: Box<Pick>,
}

#[derive(Default)]
struct Ctx {
    backend: Option<Backend>,
    _in_flight: Option<InFlightGuard>,
}

#[async_trait]
impl ProxyHttp for LbTestProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let key = session.req_header().uri.path().as_bytes().to_vec();
        // as the tutorial writes it: an error without a source, which the
        // framework answers with 502
        let (backend, guard) =
            (self.pick)(&key).ok_or_else(|| Error::new_str("no healthy upstream available"))?;
        let peer = HttpPeer::new(&backend, false, String::new());
        ctx.backend = Some(backend);
        ctx._in_flight = guard;
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        _ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        e.set_retry(true);
        e
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(b) = &ctx.backend {
            resp.insert_header(BACKEND_HEADER, b.addr.to_string())?;
        }
        Ok(())
    }
}

/// Tells the server to stop when the test is done with it.
struct StopSignal(Arc<tokio::sync::Notify>);

#[async_trait]
impl ShutdownSignalWatch for StopSignal {
    async fn recv(&self) -> ShutdownSignal {
        self.0.notified().await;
        ShutdownSignal::FastShutdown
    }
}

/// A proxy server running in this process (see the module docs).
pub(crate) struct InProcessProxy {
    addr: SocketAddr,
    /// Where `Service::prometheus_http_service()` listens, when started
    /// with [`InProcessProxy::start_with_metrics`].
    metrics_addr: Option<SocketAddr>,
    stop: Arc<tokio::sync::Notify>,
    thread: Option<JoinHandle<()>>,
}

impl InProcessProxy {
    /// Starts a server with 2 worker threads: a proxy on `127.0.0.1:0`
    /// asking `pick` for each request's backend, plus `background` (e.g.
    /// the load balancer's background service) when given.
    pub(crate) fn start(pick: Box<Pick>, background: Option<Box<dyn Service>>) -> InProcessProxy {
        Self::start_inner(None, pick, background)
    }

    /// [`InProcessProxy::start`] with the proxy service named `name` (the
    /// `service` label of its metrics) and a Prometheus service
    /// (`Service::prometheus_http_service()`) on another `127.0.0.1:0`.
    pub(crate) fn start_with_metrics(
        name: &str,
        pick: Box<Pick>,
        background: Option<Box<dyn Service>>,
    ) -> InProcessProxy {
        Self::start_inner(Some(name), pick, background)
    }

    fn start_inner(
        metrics_name: Option<&str>,
        pick: Box<Pick>,
        background: Option<Box<dyn Service>>,
    ) -> InProcessProxy {
        let conf = ServerConf {
            version: 1,
            threads: 2,
            ..ServerConf::default()
        };
        let mut server = Server::new_with_opt_and_conf(None, conf);
        let proxy = LbTestProxy { pick };
        let mut service = match metrics_name {
            Some(name) => http_proxy_service_with_name(&server.configuration, proxy, name),
            None => http_proxy_service(&server.configuration, proxy),
        };
        service.add_tcp("127.0.0.1:0");
        let bound = service.bound_addrs();
        if let Some(bg) = background {
            server.add_boxed_service(bg);
        }
        server.add_service(service);
        let metrics_bound = metrics_name.map(|_| {
            let mut metrics = ListeningService::prometheus_http_service();
            metrics.add_tcp("127.0.0.1:0");
            let bound = metrics.bound_addrs();
            server.add_service(metrics);
            bound
        });
        let stop = Arc::new(tokio::sync::Notify::new());
        let signal = StopSignal(stop.clone());
        let thread = std::thread::spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(signal),
            })
        });
        let deadline = Instant::now() + WAIT;
        let wait_bound = |bound: &tokio::sync::watch::Receiver<Vec<_>>| loop {
            if let Some(a) = bound
                .borrow()
                .first()
                .and_then(|a: &proxy_facade::protocols::SocketAddr| a.as_inet().copied())
            {
                break a;
            }
            assert!(
                Instant::now() < deadline,
                "in-process server did not listen"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let addr = wait_bound(&bound);
        let metrics_addr = metrics_bound.as_ref().map(wait_bound);
        InProcessProxy {
            addr,
            metrics_addr,
            stop,
            thread: Some(thread),
        }
    }

    /// The address the proxy listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the Prometheus service; panics (failing the test) if
    /// the server was not started with [`InProcessProxy::start_with_metrics`].
    pub(crate) fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
            .expect("started without metrics: use InProcessProxy::start_with_metrics")
    }
}

impl Drop for InProcessProxy {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// GETs `path` from the proxy at `addr` on the keep-alive connection in
/// `client`, opening one when there is none (or the last one was closed).
pub(crate) fn fetch(
    client: &mut Option<super::RawClient>,
    addr: SocketAddr,
    path: &str,
) -> super::RawReply {
    for _ in 0..2 {
        let c = client.get_or_insert_with(|| super::RawClient::connect(addr));
        c.try_write(format!("GET {path} HTTP/1.1\r\nHost: lb-test\r\n\r\n").as_bytes());
        match c.read_response(false) {
            Some(reply) if reply.complete => {
                if reply
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                {
                    *client = None;
                }
                return reply;
            }
            // the proxy closed an idle keep-alive connection: reconnect once
            _ => *client = None,
        }
    }
    panic!("no response from the proxy at {addr} for {path}");
}
