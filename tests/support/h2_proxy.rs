//! An in-process proxy to one upstream whose `HttpPeer` the test builds
//! (TLS, SNI, CA, ALPN, `max_h2_streams`), for the HTTP/2-upstream and
//! gRPC tests. Its plain listener takes HTTP/1.1 and, with prior knowledge,
//! HTTP/2 (h2c). Like `lb_proxy`, it is built on the framework and runs a
//! real `Server` on a thread of the test process, stopped when dropped.
//!
//! Every response gets `x-upstream-version: HTTP/1.1|HTTP/2` (the version
//! the upstream answered with, from `upstream_response_filter`) and every
//! upstream trailer section gets `x-proxy-trailer: seen` (from
//! `upstream_response_trailer_filter`), so tests can see both phases ran.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use proxy_facade::http::ResponseHeader;
use proxy_facade::prelude::*;
use proxy_facade::proxy::{http_proxy_service, ProxyHttp, Session};
use proxy_facade::server::configuration::ServerConf;
use proxy_facade::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use proxy_facade::upstreams::peer::HttpPeer;

use super::WAIT;

/// Makes the peer of each request.
pub(crate) type MakePeer = dyn Fn() -> HttpPeer + Send + Sync;

struct H2TestProxy {
    make_peer: Box<MakePeer>,
}

#[async_trait]
impl ProxyHttp for H2TestProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new((self.make_peer)()))
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        let v = if resp.version == http::Version::HTTP_2 {
            "HTTP/2"
        } else {
            "HTTP/1.1"
        };
        resp.insert_header("x-upstream-version", v)?;
        Ok(())
    }

    fn upstream_response_trailer_filter(
        &self,
        _session: &mut Session,
        trailers: &mut http::HeaderMap,
        _ctx: &mut (),
    ) -> Result<()> {
        trailers.insert("x-proxy-trailer", http::HeaderValue::from_static("seen"));
        Ok(())
    }
}

struct StopSignal(Arc<tokio::sync::Notify>);

#[async_trait]
impl ShutdownSignalWatch for StopSignal {
    async fn recv(&self) -> ShutdownSignal {
        self.0.notified().await;
        ShutdownSignal::FastShutdown
    }
}

/// A proxy server running in this process (see the module docs).
pub(crate) struct H2Proxy {
    addr: SocketAddr,
    stop: Arc<tokio::sync::Notify>,
    thread: Option<JoinHandle<()>>,
}

impl H2Proxy {
    /// Starts a server with 2 worker threads and a proxy on `127.0.0.1:0`
    /// (h2c enabled) that sends every request to `make_peer()`.
    pub(crate) fn start(make_peer: impl Fn() -> HttpPeer + Send + Sync + 'static) -> H2Proxy {
        let conf = ServerConf {
            version: 1,
            threads: 2,
            ..ServerConf::default()
        };
        let mut server = Server::new_with_opt_and_conf(None, conf);
        let proxy = H2TestProxy {
            make_peer: Box::new(make_peer),
        };
        let mut service = http_proxy_service(&server.configuration, proxy);
        if let Some(app) = service.app_logic_mut() {
            app.server_options.h2c = true;
        }
        service.add_tcp("127.0.0.1:0");
        let bound = service.bound_addrs();
        server.add_service(service);
        let stop = Arc::new(tokio::sync::Notify::new());
        let signal = StopSignal(stop.clone());
        let thread = std::thread::spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(signal),
            })
        });
        let deadline = Instant::now() + WAIT;
        let addr = loop {
            if let Some(a) = bound.borrow().first().and_then(|a| a.as_inet().copied()) {
                break a;
            }
            assert!(Instant::now() < deadline, "in-process proxy did not listen");
            std::thread::sleep(Duration::from_millis(10));
        };
        H2Proxy {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// The address the proxy listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for H2Proxy {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
