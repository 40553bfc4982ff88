//! [`PrometheusHttpApp`]: an HTTP/1.1 server app answering `GET /metrics`
//! with the default registry in the Prometheus text format, and
//! [`Service::prometheus_http_service`] around it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, Method};
use prometheus::{Encoder, TextEncoder};

use crate::apps::ServerApp;
use crate::error::Result;
use crate::http::ResponseHeader;
use crate::protocols::http::error_resp::gen_error_response;
use crate::protocols::http::ServerSession;
use crate::protocols::Stream;
use crate::server::ShutdownWatch;
use crate::services::listening::Service;

/// The path the app serves.
pub const METRICS_PATH: &str = "/metrics";

/// The name [`Service::prometheus_http_service`] gives its service (Pingora's).
pub const PROMETHEUS_SERVICE_NAME: &str = "Prometheus metric HTTP";

/// Idle keep-alive, head, body and write timeouts of a scrape connection.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Serves the `prometheus` crate's default registry (the framework's metrics
/// and any a program registered) over HTTP/1.1, in the text exposition
/// format 0.0.4 (`Content-Type: text/plain; version=0.0.4`).
///
/// - `GET /metrics` (any query string): 200 with every metric family;
///   `HEAD /metrics`: the same head without the body (RFC 9110 §9.3.2).
/// - another path: 404; another method on `/metrics`: 405 with
///   `Allow: GET, HEAD` (RFC 9110 §15.5.6).
/// - keep-alive as HTTP/1.1 asks (60 s idle); a malformed request head is
///   answered 400 and the connection closed.
#[derive(Debug, Default, Clone, Copy)]
pub struct PrometheusHttpApp;

impl PrometheusHttpApp {
    /// The app.
    pub fn new() -> Self {
        PrometheusHttpApp
    }

    /// Answer one request whose head has been read.
    async fn respond(&self, session: &mut ServerSession) -> Result<()> {
        let req = session.req_header();
        let method = req.method().clone();
        let (resp, body) = if req.uri().path() != METRICS_PATH {
            (gen_error_response(404), Bytes::new())
        } else if method != Method::GET && method != Method::HEAD {
            let mut resp = gen_error_response(405);
            resp.insert_header(header::ALLOW, "GET, HEAD")?;
            (resp, Bytes::new())
        } else {
            match encode_default_registry() {
                Ok((content_type, body)) => {
                    let mut resp = ResponseHeader::build(200u16, Some(3))?;
                    resp.insert_header(header::CONTENT_TYPE, content_type)?;
                    resp.set_content_length(body.len())?;
                    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
                    (resp, body)
                }
                Err(e) => {
                    log::error!("encoding metrics: {e}");
                    (gen_error_response(500), Bytes::new())
                }
            }
        };
        session.write_response_header(Box::new(resp)).await?;
        // for HEAD the session knows the response has no body and drops it
        if !body.is_empty() {
            session.write_response_body(&body).await?;
        }
        session.finish_body().await
    }
}

/// The default registry in the text format: its content type and bytes.
fn encode_default_registry() -> std::result::Result<(String, Bytes), prometheus::Error> {
    let encoder = TextEncoder::new();
    let mut out = Vec::with_capacity(16 * 1024);
    encoder.encode(&prometheus::gather(), &mut out)?;
    Ok((encoder.format_type().to_string(), Bytes::from(out)))
}

#[async_trait]
impl ServerApp for PrometheusHttpApp {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut session = ServerSession::new_http1(stream);
        let mut shutdown = shutdown.clone();
        let mut served = 0u64;
        loop {
            session.set_keepalive(Some(TIMEOUT.as_secs()));
            session.set_header_read_timeout(Some(TIMEOUT));
            session.set_read_timeout(Some(TIMEOUT));
            session.set_write_timeout(Some(TIMEOUT));
            let arrived = tokio::select! {
                biased;
                r = session.wait_for_request() => matches!(r, Ok(true)),
                // an idle keep-alive connection closes as soon as shutdown begins
                _ = shutdown.wait_for(|s| *s), if served > 0 => false,
            };
            if !arrived {
                return None;
            }
            served += 1;
            match session.read_request().await {
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(e) => {
                    log::debug!("metrics: bad request: {e}");
                    if session
                        .write_rejection(gen_error_response(400))
                        .await
                        .is_ok()
                    {
                        session.close_lingering().await;
                    }
                    return None;
                }
            }
            if *shutdown.borrow() {
                session.set_keepalive(None);
            }
            if let Err(e) = self.respond(&mut session).await {
                log::debug!("metrics: {e}, {}", session.request_summary());
                return None;
            }
            session = session.reuse().await?;
        }
    }
}

impl Service<PrometheusHttpApp> {
    /// A listening service named `Prometheus metric HTTP` serving
    /// `GET /metrics` from the default registry ([`PrometheusHttpApp`]), as
    /// Pingora's `Service::prometheus_http_service()`. Add an address with
    /// `add_tcp` (e.g. `0.0.0.0:6192`) and hand it to `Server::add_service`.
    pub fn prometheus_http_service() -> Self {
        Service::new(
            PROMETHEUS_SERVICE_NAME.to_string(),
            PrometheusHttpApp::new(),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Send `requests` on one connection and read until the app closes it.
    async fn exchange(requests: &str) -> String {
        let (client, server) = tokio::io::duplex(1 << 20);
        let app = Arc::new(PrometheusHttpApp::new());
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move { app.process_new(Box::new(server), &rx).await });
        let (mut rd, mut wr) = tokio::io::split(client);
        wr.write_all(requests.as_bytes()).await.unwrap();
        wr.shutdown().await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(10), rd.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        task.await.unwrap();
        out
    }

    fn register_probe() {
        // a program's own counter, in the default registry
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let c = prometheus::IntCounter::new("app_test_probe_total", "probe").unwrap();
            c.inc_by(7);
            prometheus::register(Box::new(c)).unwrap();
        });
    }

    #[tokio::test]
    async fn get_metrics_serves_the_default_registry_and_keeps_alive() {
        register_probe();
        let out = exchange(
            "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\nGET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(out.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{out}");
        assert!(
            out.contains("Content-Type: text/plain; version=0.0.4\r\n"),
            "{out}"
        );
        assert_eq!(out.matches("app_test_probe_total 7\n").count(), 2, "{out}");
    }

    #[tokio::test]
    async fn head_has_no_body_other_paths_404_other_methods_405() {
        register_probe();
        let out = exchange(concat!(
            "HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
            "GET /metrics/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        ))
        .await;
        let statuses: Vec<&str> = out.lines().filter(|l| l.starts_with("HTTP/1.1 ")).collect();
        assert_eq!(
            statuses,
            [
                "HTTP/1.1 200 OK",
                "HTTP/1.1 404 Not Found",
                "HTTP/1.1 405 Method Not Allowed",
                "HTTP/1.1 404 Not Found"
            ],
            "{out}"
        );
        assert!(out.contains("Allow: GET, HEAD\r\n"));
        // the HEAD response announced a length but sent no body
        assert!(!out.contains("app_test_probe_total"), "{out}");
    }

    #[tokio::test]
    async fn malformed_head_gets_400_and_close() {
        let out = exchange("GARBAGE\r\n\r\n").await;
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
        assert!(out.contains("Connection: close\r\n"));
    }
}
