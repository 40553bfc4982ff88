//! The HTTP/2 client against an in-process `h2` server over an in-memory pipe.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::protocols::IO;

/// What the test server saw of one request.
#[derive(Debug, Default)]
struct Seen {
    method: String,
    uri: String,
    headers: http::HeaderMap,
    body: Vec<u8>,
    trailers: Option<http::HeaderMap>,
}

/// An h2 server on one end of a pipe that answers each request with
/// `200`, the request body echoed, and a trailer `x-echo-len`; it sends
/// what it saw to the test.
async fn pair(
    options: ClientOptions,
    max_concurrent: u32,
) -> (ConnectionRef, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut conn = h2::server::Builder::new()
            .max_concurrent_streams(max_concurrent)
            .handshake::<_, Bytes>(server)
            .await
            .unwrap();
        while let Some(Ok((req, mut respond))) = conn.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (parts, mut body) = req.into_parts();
                let mut seen = Seen {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    headers: parts.headers,
                    ..Seen::default()
                };
                while let Some(d) = body.data().await {
                    let d = d.unwrap();
                    let _ = body.flow_control().release_capacity(d.len());
                    seen.body.extend_from_slice(&d);
                }
                seen.trailers = body.trailers().await.unwrap();
                let echo = Bytes::from(seen.body.clone());
                let resp = http::Response::builder().status(200).body(()).unwrap();
                let mut send = respond.send_response(resp, false).unwrap();
                let mut rest = echo;
                while !rest.is_empty() {
                    send.reserve_capacity(rest.len());
                    let n = poll_fn(|cx| send.poll_capacity(cx)).await.unwrap().unwrap();
                    send.send_data(rest.split_to(n.min(rest.len())), false)
                        .unwrap();
                }
                let mut t = http::HeaderMap::new();
                t.insert("x-echo-len", seen.body.len().into());
                send.send_trailers(t).unwrap();
                let _ = tx.send(seen);
            });
        }
    });
    let stream: Stream = Box::new(client) as Box<dyn IO>;
    (handshake(stream, &options).await.unwrap(), rx)
}

fn get(path: &str, host: &str) -> Box<RequestHeader> {
    let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
    r.insert_header("Host", host).unwrap();
    r.insert_header("Connection", "keep-alive").unwrap();
    Box::new(r)
}

#[tokio::test]
async fn request_body_and_trailers_round_trip() {
    let (conn, mut seen) = pair(ClientOptions::default(), 100).await;
    let mut s = conn.new_session().unwrap();
    let mut req = RequestHeader::build("POST", b"/upload?x=1", None).unwrap();
    req.insert_header("Host", "origin.example").unwrap();
    req.insert_header("TE", "trailers").unwrap();
    s.write_request_header(Box::new(req), false).await.unwrap();
    // larger than the default 64 KiB window: flow control must be respected
    let body = Bytes::from(vec![b'x'; 300_000]);
    s.write_request_body(body.slice(..100_000), false)
        .await
        .unwrap();
    s.write_request_body(body.slice(100_000..), false)
        .await
        .unwrap();
    let mut t = HeaderMap::new();
    t.insert("x-req-trailer", "1".parse().unwrap());
    s.write_request_trailers(t).unwrap();

    s.read_response_header().await.unwrap();
    assert_eq!(s.response_header().unwrap().status, 200);
    let mut got = Vec::new();
    while let Some(b) = s.read_response_body().await.unwrap() {
        got.extend_from_slice(&b);
    }
    assert!(s.response_body_done());
    assert_eq!(got.len(), 300_000);
    let trailers = s.read_response_trailers().await.unwrap().unwrap();
    assert_eq!(trailers["x-echo-len"], "300000");
    assert!(s.response_finished());

    let seen = seen.recv().await.unwrap();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri, "http://origin.example/upload?x=1");
    assert!(seen.headers.get("host").is_none());
    assert_eq!(seen.headers["te"], "trailers");
    assert_eq!(seen.body.len(), 300_000);
    assert_eq!(seen.trailers.unwrap()["x-req-trailer"], "1");
}

#[tokio::test]
async fn bodyless_request_ends_with_its_header() {
    let (conn, mut seen) = pair(ClientOptions::default(), 100).await;
    let mut s = conn.new_session().unwrap();
    s.write_request_header(get("/", "a.example"), true)
        .await
        .unwrap();
    s.read_response_header().await.unwrap();
    assert_eq!(s.read_response_body().await.unwrap(), None);
    // trailers of an empty echo still arrive
    let t = s.read_response_trailers().await.unwrap().unwrap();
    assert_eq!(t["x-echo-len"], "0");
    let seen = seen.recv().await.unwrap();
    assert_eq!(seen.uri, "http://a.example/");
    // the hop-by-hop Connection field never reaches an HTTP/2 hop
    assert!(seen.headers.get("connection").is_none());
}

#[tokio::test]
async fn streams_are_limited_by_max_streams_and_freed_on_drop() {
    let options = ClientOptions {
        max_streams: 2,
        ..ClientOptions::default()
    };
    let (conn, _seen) = pair(options, 100).await;
    let a = conn.new_session().unwrap();
    let b = conn.new_session().unwrap();
    assert_eq!(conn.streams_in_use(), 2);
    assert!(
        conn.new_session().is_none(),
        "a third stream over max_streams"
    );
    drop(a);
    assert_eq!(conn.streams_in_use(), 1);
    let _c = conn.new_session().unwrap();
    drop(b);
    assert_eq!(conn.streams_in_use(), 1);
}

#[tokio::test]
async fn the_servers_stream_limit_lowers_ours() {
    let options = ClientOptions {
        max_streams: 10,
        ..ClientOptions::default()
    };
    let (conn, _seen) = pair(options, 1).await;
    // one exchange makes sure the server's SETTINGS have arrived
    let mut s = conn.new_session().unwrap();
    s.write_request_header(get("/", "a"), true).await.unwrap();
    s.read_response_header().await.unwrap();
    drop(s);
    assert_eq!(conn.stream_limit(), 1);
    let _a = conn.new_session().unwrap();
    assert!(conn.new_session().is_none());
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_its_idle_timeout() {
    let options = ClientOptions {
        max_streams: 4,
        idle_timeout: Some(Duration::from_millis(100)),
        ..ClientOptions::default()
    };
    let (conn, _seen) = pair(options, 100).await;
    let s = conn.new_session().unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    // busy: not closed however long
    assert!(!conn.is_closing());
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !conn.is_closing() {
        assert!(Instant::now() < deadline, "idle connection never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(conn.new_session().is_none());
}

#[tokio::test]
async fn goaway_marks_the_connection_closing_and_new_streams_retryable() {
    let (client, server) = tokio::io::duplex(1 << 16);
    let (go, gone) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut conn = h2::server::handshake(server).await.unwrap();
        let _ = gone.await;
        conn.graceful_shutdown();
        // keep driving so the GOAWAY goes out
        while let Some(Ok(_)) = conn.accept().await {}
    });
    let stream: Stream = Box::new(client) as Box<dyn IO>;
    let conn = handshake(stream, &ClientOptions::default()).await.unwrap();
    assert!(!conn.is_closing());
    go.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !conn.is_closing() {
        assert!(Instant::now() < deadline, "GOAWAY not noticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(conn.new_session().is_none());
}

#[test]
fn refused_stream_is_retryable_and_other_resets_are_not() {
    let refused = h2_err(h2::Error::from(h2::Reason::REFUSED_STREAM), "x");
    assert!(refused.retry());
    assert_eq!(refused.esource(), &crate::error::ErrorSource::Upstream);
    let cancel = h2_err(h2::Error::from(h2::Reason::CANCEL), "x");
    assert!(!cancel.retry());
}
