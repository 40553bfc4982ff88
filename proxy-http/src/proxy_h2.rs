//! Serving an HTTP/2 downstream connection: every stream the client opens
//! runs on its own task through the same request stage as an HTTP/1.1
//! request (`process_request`: context, phases, error response, logging).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proxy_core::protocols::http::v2::handshake;
use proxy_core::protocols::http::v2::server::{ConnInfo, HttpSession as StreamSession};
use proxy_core::protocols::http::ServerSession;
use proxy_core::protocols::Stream;
use proxy_core::server::ShutdownWatch;

use crate::proxy::HttpProxy;
use crate::proxy_trait::ProxyHttp;
use crate::session::Session;
use crate::shutdown_wait::shutdown_wait;

/// How long a connection with no open stream is kept when the server
/// options give no keep-alive timeout.
const DEFAULT_H2_IDLE: Duration = Duration::from_secs(60);

/// How long a stream whose response is complete still reads (and
/// discards) an unread request body before it is dropped (and reset).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

impl<SV> HttpProxy<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    /// Serve an HTTP/2 connection until it closes: handshake with
    /// `h2_options`, then accept streams and spawn one task per stream.
    ///
    /// When `shutdown` turns true, or the connection had no open stream
    /// and no new one for a keep-alive timeout (checked once per timeout,
    /// so an idle connection lasts between one and two), a graceful GOAWAY
    /// (RFC 9113 §6.8) is sent: streams in flight finish, new ones are refused, and
    /// the connection closes when the last one ends.
    pub(crate) async fn serve_h2(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) {
        let info = Arc::new(ConnInfo::of(&stream));
        let handshake = handshake(stream, &self.h2_options);
        let conn = match self.server_options.header_read_timeout {
            Some(t) => tokio::time::timeout(t, handshake).await.ok(),
            None => Some(handshake.await),
        };
        let mut conn = match conn {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                log::debug!("HTTP/2 handshake failed: {e}");
                return;
            }
            None => {
                log::debug!("HTTP/2 handshake timed out");
                return;
            }
        };
        let idle_for = self
            .server_options
            .keepalive_timeout_seconds
            .filter(|s| *s > 0)
            .map_or(DEFAULT_H2_IDLE, Duration::from_secs);
        let shutdown = shutdown_wait(shutdown);
        tokio::pin!(shutdown);
        let mut draining = false;
        // One timer for the connection, moved on when it fires, rather than
        // a new one armed (and cancelled) for every stream accepted.
        let mut last_stream = Instant::now();
        let idle = tokio::time::sleep(idle_for);
        tokio::pin!(idle);
        loop {
            if !draining && shutdown.as_mut().began() {
                draining = true;
                conn.graceful_shutdown();
            }
            let next = tokio::select! {
                next = conn.accept() => next,
                _ = shutdown.as_mut(), if !draining => {
                    // shutdown, or the server is gone
                    draining = true;
                    conn.graceful_shutdown();
                    continue;
                }
                _ = &mut idle, if !draining => {
                    let quiet = last_stream.elapsed();
                    if conn.has_streams() {
                        idle.as_mut().reset(tokio::time::Instant::now() + idle_for);
                    } else if quiet < idle_for {
                        // a stream came since: look again a timeout after it
                        idle.as_mut().reset(tokio::time::Instant::now() + (idle_for - quiet));
                    } else {
                        draining = true;
                        conn.graceful_shutdown();
                    }
                    continue;
                }
            };
            match next {
                None => return,
                Some(Err(e)) => {
                    log::debug!("HTTP/2 connection ended: {e}");
                    return;
                }
                Some(Ok((request, respond))) => {
                    last_stream = Instant::now();
                    let app = Arc::clone(self);
                    let info = Arc::clone(&info);
                    // boxed: the task then moves a pointer, not the whole
                    // stream future (several KiB), in and out of its cell
                    tokio::spawn(Box::pin(async move {
                        app.serve_h2_stream(request, respond, info).await;
                    }));
                }
            }
        }
    }

    /// One stream: the request through the phases, then make sure the
    /// stream ended (reset with `CANCEL` if the response could not finish).
    async fn serve_h2_stream(
        &self,
        request: http::Request<h2::RecvStream>,
        respond: h2::server::SendResponse<Bytes>,
        info: Arc<ConnInfo>,
    ) {
        let started = Instant::now();
        let session = match StreamSession::new(request, respond, info) {
            Ok(s) => s,
            Err(e) => {
                self.metrics.error(&e);
                log::debug!("HTTP/2 stream refused: {e}");
                return;
            }
        };
        let mut downstream = ServerSession::H2(session);
        downstream.set_read_timeout(self.server_options.body_read_timeout);
        downstream.set_write_timeout(self.server_options.write_timeout);
        let (mut done, _) = self
            .process_request(Session::new(downstream), started)
            .await;
        if let ServerSession::H2(s) = &mut *done {
            if !s.response_finished() {
                s.shutdown();
            } else if !s.is_body_done() {
                // The response went out before the request body was read
                // (e.g. an early 401 or 404). Dropping the stream now would
                // reset it with CANCEL, which clients take as a failed
                // request, so read the rest first, bounded, as HTTP/1 does.
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, s.drain_request_body()).await;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use proxy_core::error::{Error, ErrorType, Result};
    use proxy_core::server::configuration::ServerConf;
    use proxy_core::upstreams::peer::HttpPeer;

    /// Answers every request with the framework's 502 (no upstream).
    struct NoUpstream;

    #[async_trait]
    impl ProxyHttp for NoUpstream {
        type CTX = ();
        fn new_ctx(&self) {}
        async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
            Error::e_explain(ErrorType::ConnectRefused, "no upstream in this test")
        }
    }

    /// A client connected to `serve_h2` with a keep-alive timeout of 1 s;
    /// the task ends when the server closes the connection.
    async fn connect() -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
        let mut proxy = HttpProxy::new(NoUpstream, Arc::new(ServerConf::default()));
        proxy.server_options.keepalive_timeout_seconds = Some(1);
        let proxy = Arc::new(proxy);
        let (a, b) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let (_tx, rx) = tokio::sync::watch::channel(false);
            proxy.serve_h2(Box::new(b), &rx).await;
        });
        let (client, conn) = h2::client::handshake(a).await.unwrap();
        let closed = tokio::spawn(async move {
            let _ = conn.await;
        });
        (client, closed)
    }

    async fn get(client: &mut h2::client::SendRequest<Bytes>) -> http::StatusCode {
        let req = http::Request::get("https://t.test/").body(()).unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        resp.await.unwrap().status()
    }

    #[tokio::test]
    async fn a_connection_without_streams_is_closed_after_the_keepalive_timeout() {
        let (mut client, closed) = connect().await;
        assert_eq!(get(&mut client).await, 502);
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .unwrap()
            .unwrap();
        let lasted = started.elapsed();
        assert!(
            lasted >= Duration::from_millis(900),
            "closed after {lasted:?}"
        );
        assert!(
            lasted < Duration::from_millis(2500),
            "closed after {lasted:?}"
        );
    }

    #[tokio::test]
    async fn streams_more_often_than_the_timeout_keep_the_connection() {
        let (client, closed) = connect().await;
        let mut client = client.ready().await.unwrap();
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert_eq!(get(&mut client).await, 502);
            client = client.ready().await.unwrap();
        }
        // 2.4 s in, over two timeouts, and still open
        assert!(!closed.is_finished());
    }
}
