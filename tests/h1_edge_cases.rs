//! Edge cases of proxying HTTP/1.1 that a review of the proxy loop found:
//! each test pins down one rule, with a [`RawOrigin`] answering with exact
//! bytes and a raw client on the other side.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::*;

/// The binary under test.
const PART1: &str = env!("CARGO_BIN_EXE_part-01-first-proxy");

#[test]
fn upstream_101_to_a_request_that_did_not_ask_to_upgrade_gets_502() {
    let origin = RawOrigin::start(|_| {
        vec![Step::Send(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
                .to_vec(),
        )]
    });
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let r = raw_exchange(
        proxy.addr(),
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), Some(502), "{}", r.text());
}

#[test]
fn request_with_a_transfer_coding_other_than_chunked_gets_501() {
    // RFC 9112 §6.1: a server that does not understand a transfer coding
    // answers 501; the request never reaches the origin.
    let origin = RawOrigin::start(|_| vec![Step::Send(ok_response(b"ok"))]);
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let r = raw_exchange(
        proxy.addr(),
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(r.status(), Some(501), "{}", r.text());
    assert!(r.closed);
    assert_eq!(origin.seen().len(), 0);
}

#[test]
fn content_length_listed_in_connection_is_still_forwarded() {
    // Listing a framing field in Connection must not change how the body is
    // read on the next hop.
    let origin = RawOrigin::start(|_| vec![Step::Send(ok_response(b"ok"))]);
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let r = raw_exchange(
        proxy.addr(),
        b"POST / HTTP/1.1\r\nHost: t\r\nConnection: close, Content-Length\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.status(), Some(200), "{}", r.text());
    assert!(origin.wait_for_requests(1));
    let seen = &origin.seen()[0];
    assert_eq!(seen.body, b"hello");
    let head = String::from_utf8_lossy(&seen.head).to_ascii_lowercase();
    assert!(head.contains("content-length: 5\r\n"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
}

#[test]
fn an_http_1_0_request_is_forwarded_as_http_1_1() {
    // RFC 9110 §6.2: a proxy sends its own HTTP version upstream.
    let origin = RawOrigin::start(|_| vec![Step::Send(ok_response(b"ok"))]);
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let r = raw_exchange(proxy.addr(), b"GET /old HTTP/1.0\r\nHost: t\r\n\r\n");
    assert_eq!(r.status(), Some(200), "{}", r.text());
    assert!(origin.wait_for_requests(1));
    assert!(origin.seen()[0].head.starts_with(b"GET /old HTTP/1.1\r\n"));
}

#[test]
fn early_hints_are_not_sent_to_an_http_1_0_client() {
    // RFC 9110 §15.2: no 1xx response to an HTTP/1.0 client.
    let origin = RawOrigin::start(|_| {
        let mut bytes = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n".to_vec();
        bytes.extend_from_slice(&ok_response(b"final"));
        vec![Step::Send(bytes)]
    });
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let r = raw_exchange(proxy.addr(), b"GET / HTTP/1.0\r\nHost: t\r\n\r\n");
    assert_eq!(r.status(), Some(200), "{}", r.text());
    assert!(find(&r.bytes, b"103").is_none(), "{}", r.text());
    assert!(r.text().ends_with("final"), "{}", r.text());
}

#[test]
fn response_with_both_transfer_encoding_and_content_length_loses_the_length() {
    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, which a
    // proxy must remove before forwarding.
    let origin = RawOrigin::start(|_| {
        vec![Step::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
        )]
    });
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let mut client = RawClient::connect(proxy.addr());
    client.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let reply = client.read_response(false).unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"hello");
    assert!(reply.header("content-length").is_none(), "{}", reply.head);
}

#[test]
fn a_slow_body_does_not_hold_back_the_response_head() {
    // The head goes out at once even when the first body piece is late
    // (streamed responses, server-sent events).
    let origin = RawOrigin::start(|_| {
        vec![
            Step::Send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()),
            Step::Sleep(Duration::from_millis(1500)),
            Step::Send(b"5\r\nlater\r\n0\r\n\r\n".to_vec()),
        ]
    });
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let started = Instant::now();
    let mut client = RawClient::connect(proxy.addr());
    client.write(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = client.read_response(true).unwrap();
    assert_eq!(head.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "the head took {:?}",
        started.elapsed()
    );
}

#[test]
fn upstream_read_timeout_on_a_reused_connection_is_not_retried() {
    // The first request on each connection is answered; the second one is
    // read and never answered. The proxy times out and answers 504 without
    // sending the request again: the upstream may have acted on it.
    let origin = RawOrigin::start(|req| {
        if req.nth_on_conn == 1 {
            vec![Step::Send(ok_response(b"first"))]
        } else {
            vec![Step::Sleep(Duration::from_secs(3))]
        }
    });
    let proxy = Proxy::start(PART1, &[origin.addr()], "upstream_read_timeout_ms: 500\n");
    let first = raw_exchange(
        proxy.addr(),
        b"GET /1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(first.status(), Some(200), "{}", first.text());
    let second = raw_exchange(
        proxy.addr(),
        b"POST /2 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assert_eq!(second.status(), Some(504), "{}", second.text());
    let posts = origin.seen().iter().filter(|r| r.path == "/2").count();
    assert_eq!(posts, 1, "the POST reached the origin {posts} times");
}
