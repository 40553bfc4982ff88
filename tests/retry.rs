//! Retries of the tutorial's first proxy (`part-01-first-proxy`): a request
//! that fails on a reused (pooled) upstream connection before any response
//! byte is sent again on a fresh connection, with its body when the body
//! fits the retry buffer (64 KiB); a failure on a fresh connection is not
//! retried.
//!
//! The origins are [`RawOrigin`]s that answer the first request of each
//! connection and close the connection when a second request arrives on it:
//! a pooled connection that died as it was reused.

#![allow(clippy::unwrap_used)]

mod support;

use support::*;

/// The binary under test.
const PART1: &str = env!("CARGO_BIN_EXE_part-01-first-proxy");

/// An origin that answers the first request on each connection with `200`
/// (keep-alive, `Content-Length`, the hex SHA-256 of the request body) and
/// closes the connection without answering when a second request comes on it.
fn origin_dying_on_reuse() -> RawOrigin {
    RawOrigin::start(|req| {
        if req.nth_on_conn == 1 {
            vec![Step::Send(ok_response(sha256_hex(&req.body).as_bytes()))]
        } else {
            vec![Step::Close]
        }
    })
}

/// `GET path` on its own client connection (`Connection: close`).
fn get_close(proxy: &Proxy, path: &str) -> RawResponse {
    let req = format!("GET {path} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n");
    raw_exchange(proxy.addr(), req.as_bytes())
}

/// `POST path` with `body` (`Content-Length`) on its own client connection.
fn post_close(proxy: &Proxy, path: &str, body: &[u8]) -> RawResponse {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw_exchange(proxy.addr(), &req)
}

/// (connection, position on it, method, path) of each request the origin read.
fn trace(origin: &RawOrigin) -> Vec<(usize, usize, String, String)> {
    origin
        .seen()
        .into_iter()
        .map(|r| (r.conn, r.nth_on_conn, r.method, r.path))
        .collect()
}

fn t(conn: usize, nth: usize, method: &str, path: &str) -> (usize, usize, String, String) {
    (conn, nth, method.to_owned(), path.to_owned())
}

#[test]
fn get_on_a_pooled_connection_that_died_is_retried_on_a_fresh_one() {
    let origin = origin_dying_on_reuse();
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let first = get_close(&proxy, "/first");
    assert_eq!(first.status(), Some(200), "{}", first.text());
    let second = get_close(&proxy, "/second");
    assert_eq!(second.status(), Some(200), "{}", second.text());
    assert_eq!(origin.connections(), 2);
    assert_eq!(
        trace(&origin),
        [
            t(1, 1, "GET", "/first"),
            t(1, 2, "GET", "/second"),
            t(2, 1, "GET", "/second"),
        ],
        "the second request went to the pooled connection, then to a fresh one"
    );
}

#[test]
fn post_of_10_kib_on_a_pooled_connection_that_died_is_retried_with_its_body() {
    let origin = origin_dying_on_reuse();
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let first = get_close(&proxy, "/first");
    assert_eq!(first.status(), Some(200), "{}", first.text());
    let body = pattern_bytes(10 * 1024);
    let r = post_close(&proxy, "/upload", &body);
    assert_eq!(r.status(), Some(200), "{}", r.text());
    assert!(
        r.bytes.ends_with(sha256_hex(&body).as_bytes()),
        "the origin hashed the same body: {}",
        r.text()
    );
    assert_eq!(origin.connections(), 2);
    assert_eq!(
        trace(&origin),
        [
            t(1, 1, "GET", "/first"),
            t(1, 2, "POST", "/upload"),
            t(2, 1, "POST", "/upload"),
        ]
    );
    let retried = origin.seen().pop().unwrap();
    assert_eq!(sha256_hex(&retried.body), sha256_hex(&body));
    assert_eq!(
        retried.header("content-length").as_deref(),
        Some("10240"),
        "{}",
        retried.head_text()
    );
}

#[test]
fn post_of_200_kib_on_a_pooled_connection_that_died_gets_502_without_a_retry() {
    // 200 KiB is past the 64 KiB retry buffer: the body cannot be replayed.
    let origin = origin_dying_on_reuse();
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let first = get_close(&proxy, "/first");
    assert_eq!(first.status(), Some(200), "{}", first.text());
    let body = pattern_bytes(200 * 1024);
    let r = post_close(&proxy, "/upload", &body);
    assert_eq!(r.status(), Some(502), "{}", r.text());
    assert_eq!(origin.connections(), 1, "no fresh connection for a retry");
    assert_eq!(
        trace(&origin),
        [t(1, 1, "GET", "/first"), t(1, 2, "POST", "/upload")]
    );
}

#[test]
fn failure_on_a_fresh_connection_gets_502_after_one_attempt() {
    let origin = RawOrigin::closing_at_once();
    let proxy = Proxy::start(PART1, &[origin.addr()], "");
    let r = get_close(&proxy, "/");
    assert_eq!(r.status(), Some(502), "{}", r.text());
    assert_eq!(origin.connections(), 1, "a fresh connection is not retried");
}
