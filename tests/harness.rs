//! Self-tests of the end-to-end harness (`tests/support`): the origins and
//! clients work on their own, without the proxy, so a failure in the proxy
//! tests points at the proxy.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::*;

#[test]
fn nginx_serves_files_and_logs_one_connection_for_keepalive_requests() {
    let nginx = Nginx::start(&[("1k", 1024), ("empty", 0)]);
    let url = format!("http://{}/1k", nginx.addr());
    let dir = tempfile::tempdir().unwrap();
    let out_a = temp_path(&dir, "a");
    let out_b = temp_path(&dir, "b");
    // One curl, two URLs: curl reuses the connection.
    let out = curl(&[
        &url,
        "-o",
        out_a.to_str().unwrap(),
        &url,
        "-o",
        out_b.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&out_a).unwrap(), nginx.file("1k"));
    assert_eq!(std::fs::read(&out_b).unwrap(), pattern_bytes(1024));
    let log = nginx.wait_access_log(2);
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].request, "GET /1k HTTP/1.1");
    assert_eq!(log[0].status, 200);
    assert_eq!(log[0].body_bytes_sent, 1024);
    assert_eq!(log[1].connection_requests, 2);
    assert_eq!(nginx.distinct_connections(), 1);
}

#[test]
fn nginx_sends_server_and_x_powered_by() {
    let nginx = Nginx::start(&[("empty", 0)]);
    let r = raw_exchange(
        nginx.addr(),
        b"GET /empty HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), Some(200), "{}", r.text());
    let text = r.text().to_ascii_lowercase();
    assert!(text.contains("\r\nserver: nginx"), "{text}");
    assert!(text.contains("\r\nx-powered-by: nginx-e2e"), "{text}");
    assert!(r.closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_origin_hashes_content_length_and_chunked_bodies() {
    let origin = TestOrigin::start();
    let len = 3 * PATTERN_CHUNK as u64 + 11;
    for exact in [true, false] {
        let req = Request::post("/sha256")
            .header("host", "origin")
            .body(PatternBody::new(len, exact))
            .unwrap();
        let resp = send(origin.addr(), req).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.body(),
            &Bytes::from(format!("{len} {}", pattern_sha256(len)))
        );
    }
    assert_eq!(pattern_sha256(1000), sha256_hex(&pattern_bytes(1000)));
    assert_eq!(origin.requests(), 2);
    assert_eq!(origin.connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_origin_echoes_and_reports_host_and_api_key() {
    let origin = TestOrigin::start();
    let req = Request::post("/echo")
        .header("host", "h.example")
        .header("x-api-key", "k1")
        .body(Full::new(Bytes::from_static(b"ping")))
        .unwrap();
    let resp = send(origin.addr(), req).await;
    assert_eq!(resp.body(), &Bytes::from_static(b"ping"));
    assert_eq!(resp.headers()[SAW_HOST], "h.example");
    assert_eq!(resp.headers()[SAW_API_KEY], "k1");
    assert_eq!(resp.headers()["server"], "test-origin");
    assert_eq!(resp.headers()["x-powered-by"], "e2e-tests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_origin_echoes_messages() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let origin = WsEchoOrigin::start();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", origin.addr()))
        .await
        .unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    let msg = ws.next().await.unwrap().unwrap();
    assert_eq!(msg, Message::text("hello"));
}

#[test]
fn silent_origin_accepts_but_never_answers() {
    let silent = SilentOrigin::start();
    let r = raw_exchange_within(
        silent.addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_millis(300),
    );
    assert!(r.bytes.is_empty());
    assert!(!r.closed);
}

#[test]
fn dead_addr_refuses_connections() {
    let addr = dead_addr();
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn status_line_parser_reads_the_code() {
    assert_eq!(
        status_of(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        Some(431)
    );
    assert_eq!(status_of(b"HTTP/1.0 200 OK\r\n"), Some(200));
    assert_eq!(status_of(b"garbage"), None);
    assert_eq!(status_of(b""), None);
}

#[test]
fn rss_of_this_process_is_readable() {
    let kib = vm_rss_kib(std::process::id()).unwrap();
    assert!(kib > 0);
    let sampler = RssSampler::start(std::process::id());
    std::thread::sleep(Duration::from_millis(120));
    assert!(sampler.stop() > 0);
}
