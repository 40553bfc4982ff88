//! End-to-end HTTP/1.1 proxying through the tutorial's first proxy
//! (`part-01-first-proxy`), against real origins: nginx, a hyper origin, a
//! WebSocket echo origin, and upstreams that are dead or never answer.
//!
//! Every test starts its own origin and proxy on free ports; see
//! `tests/support`.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use support::*;

/// The binary under test.
const PART1: &str = env!("CARGO_BIN_EXE_part-01-first-proxy");

/// Upper bound for the proxy's resident memory while it streams 1 GiB.
const RSS_LIMIT_KIB: u64 = 64 * 1024;

// ------------------------------------------------------ methods, bodies ---

#[test]
fn get_returns_the_origin_files_byte_for_byte() {
    let nginx = Nginx::start(&[("empty", 0), ("1k", 1024), ("1m", 1 << 20)]);
    let proxy = Proxy::start(PART1, &[nginx.addr()], "");
    let dir = tempfile::tempdir().unwrap();
    for name in ["empty", "1k", "1m"] {
        let out_file = temp_path(&dir, name);
        let out = curl(&[
            "-o",
            out_file.to_str().unwrap(),
            "-w",
            "%{http_code}",
            &proxy.url(&format!("/{name}")),
        ]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "200",
            "{name}: {out:?}"
        );
        assert_eq!(
            std::fs::read(&out_file).unwrap(),
            nginx.file(name),
            "{name}"
        );
    }
    assert_eq!(nginx.wait_access_log(3).len(), 3);
}

#[test]
fn head_returns_the_content_length_and_no_body() {
    let nginx = Nginx::start(&[("1k", 1024)]);
    let proxy = Proxy::start(PART1, &[nginx.addr()], "");
    let r = raw_exchange(
        proxy.addr(),
        b"HEAD /1k HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), Some(200), "{}", r.text());
    let text = r.text();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\ncontent-length: 1024"),
        "{head}"
    );
    assert_eq!(body, "", "a HEAD response has no body");
    assert!(r.closed, "Connection: close was asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_with_content_length_reaches_the_origin_intact() {
    let origin = TestOrigin::start();
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let len = (1 << 20) + 3;
    let req = Request::post("/sha256")
        .header("host", "example.test")
        .header("content-length", len.to_string())
        .body(PatternBody::new(len, true))
        .unwrap();
    let resp = send(proxy.addr(), req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.body(),
        &Bytes::from(format!("{len} {}", pattern_sha256(len)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_with_chunked_body_reaches_the_origin_intact() {
    let origin = TestOrigin::start();
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let len = 5 * PATTERN_CHUNK as u64 + 17;
    let req = Request::post("/sha256")
        .header("host", "example.test")
        .header("transfer-encoding", "chunked")
        .body(PatternBody::new(len, false))
        .unwrap();
    let resp = send(proxy.addr(), req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.body(),
        &Bytes::from(format!("{len} {}", pattern_sha256(len)))
    );
}

#[test]
fn curl_chunked_upload_is_echoed_back_intact() {
    let origin = TestOrigin::start();
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let dir = tempfile::tempdir().unwrap();
    let input = temp_path(&dir, "in");
    let output = temp_path(&dir, "out");
    std::fs::write(&input, pattern_bytes(300_000)).unwrap();
    let out = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{}", input.display()),
        "-o",
        output.to_str().unwrap(),
        "-w",
        "%{http_code}",
        &proxy.url("/echo"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
    assert_eq!(
        sha256_hex(&std::fs::read(&output).unwrap()),
        sha256_hex(&pattern_bytes(300_000))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_upload_streams_through_with_bounded_proxy_memory() {
    let origin = TestOrigin::start();
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let len: u64 = 1 << 30;
    let sampler = RssSampler::start(proxy.pid());
    let req = Request::post("/sha256")
        .header("host", "example.test")
        .header("content-length", len.to_string())
        .body(PatternBody::new(len, true))
        .unwrap();
    let resp = send(proxy.addr(), req).await;
    let max_rss_kib = sampler.stop();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.body(),
        &Bytes::from(format!("{len} {}", pattern_sha256(len)))
    );
    assert!(max_rss_kib > 0, "the sampler saw the proxy");
    assert!(
        max_rss_kib < RSS_LIMIT_KIB,
        "proxy VmRSS reached {max_rss_kib} KiB while streaming 1 GiB (limit {RSS_LIMIT_KIB} KiB)"
    );
}

// ------------------------------------------------- connection reuse ---

#[test]
fn sequential_requests_reuse_upstream_connections() {
    const N: usize = 20;
    let nginx = Nginx::start(&[("1k", 1024)]);
    let proxy = Proxy::start(PART1, &[nginx.addr()], "");
    // Each curl is a new downstream connection; the upstream side should
    // come from the proxy's pool.
    for i in 0..N {
        let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", &proxy.url("/1k")]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "200",
            "request {i}: {out:?}"
        );
    }
    let log = nginx.wait_access_log(N);
    assert_eq!(log.len(), N, "{log:?}");
    let conns = nginx.distinct_connections();
    assert!(
        conns <= N / 4,
        "{N} sequential requests used {conns} upstream connections: {log:?}"
    );
}

// ------------------------------------------------- upstream failures ---

#[test]
fn dead_upstream_gets_502() {
    let proxy = Proxy::start(PART1, &[dead_addr()], "");
    let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", &proxy.url("/")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "502", "{out:?}");
}

#[test]
fn an_error_answer_on_a_keep_alive_connection_says_connection_close_and_closes() {
    // RFC 9112 §9.6: a server that closes after a response says so in it
    let proxy = Proxy::start(PART1, &[dead_addr()], "");
    let mut c = RawClient::connect(proxy.addr());
    c.write(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n");
    let r = c.read_response(false).expect("a response");
    assert_eq!(r.status, 502, "{}", r.head);
    assert_eq!(
        r.header("connection").as_deref(),
        Some("close"),
        "{}",
        r.head
    );
    assert!(c.read_response(false).is_none(), "the connection is closed");
}

#[test]
fn silent_upstream_gets_504_after_the_read_timeout() {
    let silent = SilentOrigin::start();
    let proxy = Proxy::start(PART1, &[silent.addr()], "upstream_read_timeout_ms: 500\n");
    let started = Instant::now();
    let r = raw_exchange(
        proxy.addr(),
        b"GET / HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), Some(504), "{}", r.text());
    assert!(
        started.elapsed() < WAIT,
        "answered before the harness gave up"
    );
}

// ------------------------------------------- malformed and smuggling ---

/// Sends `request` raw through a proxy in front of a fresh nginx, and
/// checks the proxy answers 400 and closes, and that nginx never saw a
/// request for `/smuggled`.
fn assert_400_and_close_and_nothing_smuggled(request: &[u8]) {
    let nginx = Nginx::start(&[("1k", 1024), ("smuggled", 1)]);
    let proxy = Proxy::start(PART1, &[nginx.addr()], "");
    let r = raw_exchange(proxy.addr(), request);
    assert_eq!(r.status(), Some(400), "{}", r.text());
    assert!(r.closed, "the proxy must close after a 400: {}", r.text());
    // Give a smuggled request time to show up in the log if it got through.
    std::thread::sleep(Duration::from_millis(200));
    let log = nginx.access_log();
    assert!(
        log.iter().all(|l| !l.request.contains("/smuggled")),
        "nginx saw a smuggled request: {log:?}"
    );
}

#[test]
fn malformed_request_line_gets_400_and_close() {
    assert_400_and_close_and_nothing_smuggled(b"NOT A REQUEST LINE\r\nHost: x\r\n\r\n");
}

#[test]
fn content_length_with_transfer_encoding_gets_400_and_close() {
    // RFC 9112 §6.1: a request with both is a smuggling attempt; reject.
    assert_400_and_close_and_nothing_smuggled(
        b"POST /1k HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    );
}

#[test]
fn two_different_content_lengths_get_400_and_close() {
    // RFC 9112 §6.3 rule 5: differing Content-Length values are unrecoverable.
    assert_400_and_close_and_nothing_smuggled(
        b"POST /1k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 45\r\n\r\n\
          helloGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    );
}

#[test]
fn obs_fold_header_gets_400_and_close() {
    // RFC 9112 §5.2: a server must reject obs-fold in a request (or unfold it).
    assert_400_and_close_and_nothing_smuggled(
        b"GET /1k HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
    );
}

#[test]
fn invalid_chunk_size_gets_400_and_close() {
    // RFC 9112 §7.1: chunk-size is 1*HEXDIG. The hyper origin waits for the
    // whole body, so the proxy's error comes before any upstream response.
    let origin = TestOrigin::start();
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let r = raw_exchange(
        proxy.addr(),
        b"POST /sha256 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(r.status(), Some(400), "{}", r.text());
    assert!(r.closed, "the proxy must close after a 400: {}", r.text());
}

#[test]
fn header_of_100_kib_gets_431() {
    let nginx = Nginx::start(&[("1k", 1024)]);
    let proxy = Proxy::start(PART1, &[nginx.addr()], "");
    let mut req = b"GET /1k HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    req.resize(req.len() + 100 * 1024, b'a');
    req.extend_from_slice(b"\r\n\r\n");
    let r = raw_exchange(proxy.addr(), &req);
    assert_eq!(r.status(), Some(431), "{}", r.text());
    assert!(nginx.access_log().is_empty(), "nothing reaches the origin");
}

// ---------------------------------------------------------- WebSocket ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_messages_echo_through_the_proxy() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let origin = WsEchoOrigin::start();
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let (mut ws, resp) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{}/chat", proxy.addr())),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.status(), 101);
    for msg in [
        Message::text("hello through the proxy"),
        Message::binary(pattern_bytes(100_000)),
    ] {
        ws.send(msg.clone()).await.unwrap();
        let back = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back, msg);
    }
    ws.close(None).await.unwrap();
}
