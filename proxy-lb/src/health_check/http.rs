//! [`HttpHealthCheck`]: a backend is healthy when it answers an HTTP
//! request as expected.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use proxy_core::connectors::http::Connector;
use proxy_core::http::{RequestHeader, ResponseHeader};
use proxy_core::protocols::SocketAddr as PeerAddr;
use proxy_core::upstreams::peer::{HttpPeer, Peer};
use proxy_core::{Error, ErrorType, Result};

use super::{HealthCheck, HealthObserveCallback};
use crate::Backend;

/// Connect and read timeout of an HTTP check unless the template says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// The most response body bytes a check reads before it fails.
const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// Decides whether a response header means healthy.
pub type Validator = Box<dyn Fn(&ResponseHeader) -> Result<()> + Send + Sync>;

/// Healthy when the backend answers [`HttpHealthCheck::req`] with
/// [`HttpHealthCheck::expected_status`] (200 by default; or, with a
/// [`Validator`], a response it accepts) and a body of at most
/// `max_body_bytes`, within the template's timeouts (1 s to connect, 1 s
/// per read and write by default).
///
/// ```
/// use proxy_lb::health_check::HttpHealthCheck;
/// use proxy_core::{Error, ErrorType};
///
/// let mut hc = HttpHealthCheck::new("api.internal", false);
/// hc.req.set_raw_path(b"/healthz").unwrap();
/// hc.consecutive_failure = 3;
/// hc.reuse_connection = true;
/// hc.validator = Some(Box::new(|resp| {
///     if resp.status.is_success() { Ok(()) } else {
///         Error::e_explain(ErrorType::Custom("BadStatus"), format!("status {}", resp.status))
///     }
/// }));
/// ```
pub struct HttpHealthCheck {
    /// Passing checks in a row before an unhealthy backend is healthy again. Default 1.
    pub consecutive_success: usize,
    /// Failing checks in a row before a healthy backend is marked unhealthy. Default 1.
    pub consecutive_failure: usize,
    /// How to connect: scheme, SNI and options (`connection_timeout`,
    /// `read_timeout` and `write_timeout` 1 s by default) apply to every
    /// probe; the address is replaced by each backend's.
    pub peer_template: HttpPeer,
    /// Keep the connection open between checks (HTTP keep-alive) instead of
    /// opening one per check. Default `false`.
    pub reuse_connection: bool,
    /// The request sent: `GET /` with `Host` as given to `new`.
    pub req: RequestHeader,
    /// The status a healthy backend answers with, when there is no
    /// `validator`. Default 200.
    pub expected_status: u16,
    /// Decides from the response header instead of `expected_status`.
    /// Default `None`.
    pub validator: Option<Validator>,
    /// Probe this port instead of the backend's. Default `None`.
    pub port_override: Option<u16>,
    /// The most response body bytes read; a longer body fails the check.
    /// Default 64 KiB.
    pub max_body_bytes: usize,
    /// Told when a backend flips.
    pub health_changed_callback: Option<HealthObserveCallback>,
    connector: Connector,
}

impl std::fmt::Debug for HttpHealthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpHealthCheck")
            .field("consecutive_success", &self.consecutive_success)
            .field("consecutive_failure", &self.consecutive_failure)
            .field("peer_template", &self.peer_template)
            .field("reuse_connection", &self.reuse_connection)
            .field("req", &self.req)
            .field("port_override", &self.port_override)
            .finish_non_exhaustive()
    }
}

impl HttpHealthCheck {
    /// `GET /` with `Host: host`, over TLS when `tls` (with `host` as SNI).
    ///
    /// TLS upstreams are not supported by the connector yet: a TLS check
    /// fails every probe with a `ConnectError` saying so.
    pub fn new(host: &str, tls: bool) -> Self {
        let mut req = match RequestHeader::build("GET", b"/", None) {
            Ok(req) => req,
            // "GET" and "/" are a valid method and target
            Err(e) => unreachable!("GET / is a valid request: {e}"),
        };
        if let Err(e) = req.insert_header("Host", host) {
            log::warn!("HTTP health check: invalid Host '{host}' not sent: {e}");
        }
        let mut peer_template = HttpPeer::new_from_sockaddr(
            PeerAddr::Inet(SocketAddr::from(([0, 0, 0, 0], 1))),
            tls,
            host.to_string(),
        );
        peer_template.options.connection_timeout = Some(DEFAULT_TIMEOUT);
        peer_template.options.read_timeout = Some(DEFAULT_TIMEOUT);
        peer_template.options.write_timeout = Some(DEFAULT_TIMEOUT);
        HttpHealthCheck {
            consecutive_success: 1,
            consecutive_failure: 1,
            peer_template,
            reuse_connection: false,
            req,
            expected_status: 200,
            validator: None,
            port_override: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            health_changed_callback: None,
            connector: Connector::new(None),
        }
    }

    /// Probe with `connector` instead of a default one.
    pub fn set_connector(&mut self, connector: Connector) {
        self.connector = connector;
    }

    /// The status check used without a validator.
    fn check_status(&self, resp: &ResponseHeader) -> Result<()> {
        let code = resp.status.as_u16();
        if code == self.expected_status {
            Ok(())
        } else {
            Error::e_explain(
                ErrorType::CustomCode("unexpected status", code),
                format!(
                    "HTTP health check got status {code}, expected {}",
                    self.expected_status
                ),
            )
        }
    }
}

#[async_trait]
impl HealthCheck for HttpHealthCheck {
    /// # Errors
    /// The connect, write or read error (timeouts included); the validator's
    /// error, or `CustomCode("unexpected status", status)`; `Custom("BodyTooLong")`
    /// past `max_body_bytes`. Each names the backend.
    async fn check(&self, target: &Backend) -> Result<()> {
        let mut peer = self.peer_template.clone();
        let port = self.port_override.unwrap_or(target.addr.port());
        peer._address = PeerAddr::Inet(SocketAddr::new(target.addr.ip(), port));
        let describe =
            |e: Box<Error>| e.more_context(format!("HTTP health check of {}", peer._address));
        let (mut session, _reused) = self
            .connector
            .get_http_session(&peer)
            .await
            .map_err(describe)?;
        session
            .write_request_header(Box::new(self.req.clone()))
            .await
            .map_err(describe)?;
        session.finish_request_body().await.map_err(describe)?;
        // skip interim (1xx) responses
        loop {
            session.read_response_header().await.map_err(describe)?;
            match session.response_header() {
                Some(resp) if resp.status.is_informational() => continue,
                Some(resp) => {
                    match &self.validator {
                        Some(validate) => validate(resp),
                        None => self.check_status(resp),
                    }
                    .map_err(describe)?;
                    break;
                }
                None => {
                    return Err(describe(Error::explain(
                        ErrorType::InvalidHTTPHeader,
                        "no response header",
                    )))
                }
            }
        }
        let mut body = 0usize;
        while let Some(chunk) = session.read_response_body().await.map_err(describe)? {
            body += chunk.len();
            if body > self.max_body_bytes {
                return Err(describe(Error::explain(
                    ErrorType::Custom("BodyTooLong"),
                    format!("response body over {} bytes", self.max_body_bytes),
                )));
            }
        }
        if self.reuse_connection {
            self.connector
                .release_http_session(session, &peer, peer.idle_timeout())
                .await;
        }
        Ok(())
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        if let Some(cb) = &self.health_changed_callback {
            cb.observe(target, healthy).await;
        }
    }

    fn health_threshold(&self, success: bool) -> usize {
        if success {
            self.consecutive_success
        } else {
            self.consecutive_failure
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// An origin answering every request on a connection with `response`;
    /// counts connections and collects the request heads.
    async fn origin(
        response: &'static [u8],
    ) -> (
        Backend,
        Arc<AtomicUsize>,
        Arc<parking_lot::Mutex<Vec<String>>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = Backend::from_addr(listener.local_addr().unwrap(), 1);
        let conns = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (c, h) = (conns.clone(), heads.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let h = h.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head: Vec<u8> = buf.drain(..end + 4).collect();
                            h.lock().push(String::from_utf8_lossy(&head).into_owned());
                            if s.write_all(response).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (backend, conns, heads)
    }

    #[tokio::test]
    async fn status_200_passes_and_sends_host() {
        let (b, _, heads) = origin(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        let hc = HttpHealthCheck::new("svc.internal", false);
        hc.check(&b).await.unwrap();
        let head = heads.lock()[0].clone();
        assert!(head.starts_with("GET / HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Host: svc.internal\r\n"), "{head}");
    }

    #[tokio::test]
    async fn other_status_fails_unless_the_validator_accepts() {
        let (b, _, _) = origin(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n").await;
        let mut hc = HttpHealthCheck::new("x", false);
        let e = hc.check(&b).await.unwrap_err();
        assert_eq!(
            e.etype(),
            &ErrorType::CustomCode("unexpected status", 503),
            "{e}"
        );
        assert!(e.to_string().contains(&b.addr.to_string()), "{e}");
        hc.expected_status = 503;
        hc.check(&b).await.unwrap();
        hc.expected_status = 200;
        hc.validator = Some(Box::new(|r: &ResponseHeader| {
            if r.status.as_u16() == 503 {
                Ok(())
            } else {
                Error::e_explain(ErrorType::InternalError, "want 503")
            }
        }));
        hc.check(&b).await.unwrap();
    }

    #[tokio::test]
    async fn interim_responses_are_skipped() {
        let (b, _, _) = origin(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        HttpHealthCheck::new("x", false).check(&b).await.unwrap();
    }

    #[tokio::test]
    async fn connection_is_reused_only_when_asked() {
        let (b, conns, _) = origin(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        let mut hc = HttpHealthCheck::new("x", false);
        for _ in 0..3 {
            hc.check(&b).await.unwrap();
        }
        assert_eq!(conns.load(Ordering::SeqCst), 3);
        hc.reuse_connection = true;
        for _ in 0..3 {
            hc.check(&b).await.unwrap();
        }
        assert_eq!(conns.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn long_body_and_silence_fail() {
        let (b, _, _) = origin(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789").await;
        let mut hc = HttpHealthCheck::new("x", false);
        hc.max_body_bytes = 10;
        let e = hc.check(&b).await.unwrap_err();
        assert_eq!(e.etype(), &ErrorType::Custom("BodyTooLong"), "{e}");

        // accepts but never answers: the read timeout fails the check
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = Backend::from_addr(silent.local_addr().unwrap(), 1);
        let mut hc = HttpHealthCheck::new("x", false);
        hc.peer_template.options.read_timeout = Some(Duration::from_millis(200));
        let started = std::time::Instant::now();
        let e = hc.check(&b).await.unwrap_err();
        assert_eq!(e.etype(), &ErrorType::ReadTimedout, "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn port_override_probes_another_port() {
        let (b, _, _) = origin(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        let mut hc = HttpHealthCheck::new("x", false);
        hc.port_override = Some(b.addr.port());
        let elsewhere = Backend::from_addr(SocketAddr::new(b.addr.ip(), 9), 1);
        hc.check(&elsewhere).await.unwrap();
    }
}
