//! The stream session against the `h2` client over an in-memory pipe.

#![allow(clippy::unwrap_used)]

use super::*;
use h2::client::SendRequest;
use tokio::task::JoinHandle;

/// An `h2` client and our server connected by a pipe; the server's accept
/// loop hands each stream's session to the returned channel.
async fn pair(
    options: H2Options,
) -> (
    SendRequest<Bytes>,
    tokio::sync::mpsc::UnboundedReceiver<HttpSession>,
    JoinHandle<()>,
) {
    let (client, rx, server, _) = tapped_pair(options).await;
    (client, rx, server)
}

/// The client's end of the pipe, keeping a copy of every byte the server
/// sent (its frames, to be read back by [`frames`]).
struct Tap {
    inner: tokio::io::DuplexStream,
    seen: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl tokio::io::AsyncRead for Tap {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let new = buf.filled()[before..].to_vec();
        self.seen.lock().unwrap().extend_from_slice(&new);
        r
    }
}

impl tokio::io::AsyncWrite for Tap {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The channel [`pair`] returns, with every byte the server wrote.
type Tapped = (
    SendRequest<Bytes>,
    tokio::sync::mpsc::UnboundedReceiver<HttpSession>,
    JoinHandle<()>,
    Arc<std::sync::Mutex<Vec<u8>>>,
);

/// [`pair`], plus every byte the server wrote, as the client read them.
async fn tapped_pair(options: H2Options) -> Tapped {
    tapped_pair_with(options, &h2::client::Builder::new()).await
}

/// [`tapped_pair`] with the client's settings from `client`.
async fn tapped_pair_with(options: H2Options, client: &h2::client::Builder) -> Tapped {
    let (a, b) = tokio::io::duplex(1 << 20);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        let mut conn = handshake(Box::new(b), &options).await.unwrap();
        let info = Arc::new(ConnInfo::default());
        while let Some(Ok((req, respond))) = conn.accept().await {
            let _ = tx.send(HttpSession::new(req, respond, Arc::clone(&info)).unwrap());
        }
    });
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tap = Tap {
        inner: a,
        seen: Arc::clone(&seen),
    };
    let (client, conn) = client.handshake(tap).await.unwrap();
    tokio::spawn(conn);
    (client, rx, server, seen)
}

/// The frames in `wire` (RFC 9113 §4.1): (type, flags, stream id, payload length).
fn frames(wire: &[u8]) -> Vec<(u8, u8, u32, usize)> {
    let mut out = Vec::new();
    let mut rest = wire;
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let id = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
        out.push((rest[3], rest[4], id, len));
        rest = &rest[(9 + len).min(rest.len())..];
    }
    out
}

async fn read_all(mut body: RecvStream) -> Vec<u8> {
    let mut all = Vec::new();
    while let Some(piece) = body.data().await {
        let piece = piece.unwrap();
        body.flow_control().release_capacity(piece.len()).unwrap();
        all.extend_from_slice(&piece);
    }
    all
}

#[tokio::test]
async fn a_request_and_its_response_round_trip() {
    let (client, mut streams, _server) = pair(H2Options::default()).await;
    let mut client = client.ready().await.unwrap();
    let req = http::Request::post("https://example.org/up?x=1")
        .header("content-type", "text/plain")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(req, false).unwrap();
    body.send_data(Bytes::from_static(b"hello "), false)
        .unwrap();
    body.send_data(Bytes::from_static(b"world"), true).unwrap();

    let mut s = streams.recv().await.unwrap();
    assert_eq!(s.req_header().method, http::Method::POST);
    assert_eq!(s.req_header().uri.to_string(), "/up?x=1");
    assert_eq!(s.req_header().headers["host"], "example.org");
    assert!(!s.is_body_empty());
    let mut got = Vec::new();
    while let Some(piece) = s.read_body_bytes().await.unwrap() {
        got.extend_from_slice(&piece);
    }
    assert_eq!(got, b"hello world");
    assert!(s.is_body_done());
    assert_eq!(s.body_bytes_read(), 11);

    let mut resp = ResponseHeader::build(201u16, None).unwrap();
    resp.insert_header("Connection", "close").unwrap();
    resp.insert_header("X-Test", "1").unwrap();
    s.write_response_header(Box::new(resp)).await.unwrap();
    s.write_body(b"created").await.unwrap();
    s.finish_body().await.unwrap();
    assert!(s.response_finished());
    assert_eq!(s.body_bytes_sent(), 7);

    let resp = response.await.unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-test"], "1");
    assert!(resp.headers().get("connection").is_none());
    assert_eq!(read_all(resp.into_body()).await, b"created");
}

#[tokio::test]
async fn a_bodyless_response_is_one_headers_frame_with_end_stream() {
    let (client, mut streams, _server) = pair(H2Options::default()).await;
    let mut client = client.ready().await.unwrap();
    let req = http::Request::get("https://example.org/").body(()).unwrap();
    let (response, _) = client.send_request(req, true).unwrap();
    let mut s = streams.recv().await.unwrap();
    assert!(s.is_body_empty());
    assert_eq!(s.read_body_bytes().await.unwrap(), None);
    // a held-back head may be replaced before it is sent
    s.write_response_header(Box::new(ResponseHeader::build(200u16, None).unwrap()))
        .await
        .unwrap();
    s.write_response_header(Box::new(ResponseHeader::build(204u16, None).unwrap()))
        .await
        .unwrap();
    s.finish_body().await.unwrap();
    let resp = response.await.unwrap();
    assert_eq!(resp.status(), 204);
    // END_STREAM came with the HEADERS frame
    assert!(resp.body().is_end_stream());
}

/// The last piece of a small body is handed to h2 without reserving
/// capacity first: it must still arrive whole through a window smaller
/// than itself, as the client opens it.
#[tokio::test]
async fn a_small_last_piece_goes_through_a_smaller_window() {
    let mut builder = h2::client::Builder::new();
    builder.initial_window_size(100);
    let (client, mut streams, _server, _) = tapped_pair_with(H2Options::default(), &builder).await;
    let mut client = client.ready().await.unwrap();
    let req = http::Request::get("https://example.org/").body(()).unwrap();
    let (response, _) = client.send_request(req, true).unwrap();
    let mut s = streams.recv().await.unwrap();
    let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    s.write_response_header(Box::new(ResponseHeader::build(200u16, None).unwrap()))
        .await
        .unwrap();
    s.write_body_bytes(Bytes::from(body.clone()), true)
        .await
        .unwrap();
    assert!(s.response_finished());
    let resp = response.await.unwrap();
    assert_eq!(read_all(resp.into_body()).await, body);
}

#[tokio::test]
async fn a_body_larger_than_the_clients_window_waits_for_it() {
    let (client, mut streams, _server) = pair(H2Options::default()).await;
    let mut client = client.ready().await.unwrap();
    let req = http::Request::get("https://example.org/big")
        .body(())
        .unwrap();
    let (response, _) = client.send_request(req, true).unwrap();
    let mut s = streams.recv().await.unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10)));
    let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
    let writer = {
        let big = big.clone();
        tokio::spawn(async move {
            s.write_response_header(Box::new(ResponseHeader::build(200u16, None).unwrap()))
                .await
                .unwrap();
            // the client's default window is 64 KiB: this must wait for it
            s.write_body(&big).await.unwrap();
            s.finish_body().await.unwrap();
        })
    };
    let resp = response.await.unwrap();
    assert_eq!(read_all(resp.into_body()).await, big);
    writer.await.unwrap();
}

#[tokio::test]
async fn a_request_expecting_100_continue_gets_its_body_read() {
    let (client, mut streams, _server) = pair(H2Options::default()).await;
    let mut client = client.ready().await.unwrap();
    let req = http::Request::post("https://example.org/")
        .header("expect", "100-continue")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(req, false).unwrap();
    let mut s = streams.recv().await.unwrap();
    let reader = tokio::spawn(async move {
        let piece = s.read_body_bytes().await.unwrap();
        (s, piece)
    });
    // h2's client surfaces informational responses only through the
    // final one, so check the body flows after the 100 went out
    body.send_data(Bytes::from_static(b"x"), true).unwrap();
    let (mut s, piece) = reader.await.unwrap();
    assert_eq!(piece.as_deref(), Some(&b"x"[..]));
    s.write_response_header(Box::new(ResponseHeader::build(200u16, None).unwrap()))
        .await
        .unwrap();
    s.finish_body().await.unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_read_past_the_timeout_fails_with_read_timed_out() {
    let (client, mut streams, _server) = pair(H2Options::default()).await;
    let mut client = client.ready().await.unwrap();
    let req = http::Request::post("https://example.org/")
        .body(())
        .unwrap();
    let (_response, _body) = client.send_request(req, false).unwrap();
    let mut s = streams.recv().await.unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50)));
    let e = s.read_body_bytes().await.unwrap_err();
    assert_eq!(*e.etype(), ErrorType::ReadTimedout);
}

#[tokio::test]
async fn max_concurrent_streams_is_announced() {
    let options = H2Options {
        max_concurrent_streams: 7,
        ..H2Options::default()
    };
    let (client, _streams, _server) = pair(options).await;
    let client = client.ready().await.unwrap();
    // the client learns the limit from our SETTINGS
    for _ in 0..100 {
        if client.current_max_send_streams() == 7 {
            return;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("max streams seen: {}", client.current_max_send_streams());
}

#[tokio::test]
async fn the_last_body_piece_carries_end_stream_in_its_data_frame() {
    const DATA: u8 = 0x0;
    const END_STREAM: u8 = 0x1;
    let (client, mut streams, _server, wire) = tapped_pair(H2Options::default()).await;
    let mut client = client.ready().await.unwrap();
    let req = http::Request::get("https://example.org/").body(()).unwrap();
    let (response, _) = client.send_request(req, true).unwrap();
    let mut s = streams.recv().await.unwrap();
    s.write_response_header(Box::new(ResponseHeader::build(200u16, None).unwrap()))
        .await
        .unwrap();
    s.write_body_bytes(Bytes::from_static(b"first "), false)
        .await
        .unwrap();
    s.write_body_bytes(Bytes::from_static(b"and last"), true)
        .await
        .unwrap();
    assert!(s.response_finished());
    assert_eq!(s.body_bytes_sent(), 14);
    let resp = response.await.unwrap();
    assert_eq!(read_all(resp.into_body()).await, b"first and last");
    let data: Vec<(u8, usize)> = frames(&wire.lock().unwrap())
        .into_iter()
        .filter(|&(kind, _, id, _)| kind == DATA && id == 1)
        .map(|(_, flags, _, len)| (flags & END_STREAM, len))
        .collect();
    // two DATA frames, END_STREAM on the second; no empty frame after it
    assert_eq!(data, vec![(0, 6), (END_STREAM, 8)]);
}

/// The server's end of a pipe taking at most 16 KiB per write, as
/// BoringSSL does with partial writes (one record per `SSL_write`).
#[derive(Debug)]
struct Trickle(tokio::io::DuplexStream);

impl tokio::io::AsyncRead for Trickle {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Trickle {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let n = buf.len().min(16 * 1024);
        std::pin::Pin::new(&mut self.0).poll_write(cx, &buf[..n])
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl crate::protocols::IO for Trickle {}

/// A client and our server over a [`Trickle`] pipe; the client's windows
/// (4 MiB per stream, 16 MiB for the connection) take every test's
/// responses without a WINDOW_UPDATE, so it sends nothing after its
/// requests unless asked to.
async fn trickle_pair() -> (
    SendRequest<Bytes>,
    tokio::sync::mpsc::UnboundedReceiver<HttpSession>,
) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let (tx, streams) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut conn = handshake(Box::new(Trickle(b)), &H2Options::default())
            .await
            .unwrap();
        let info = Arc::new(ConnInfo::default());
        while let Some(Ok((req, respond))) = conn.accept().await {
            let _ = tx.send(HttpSession::new(req, respond, Arc::clone(&info)).unwrap());
        }
    });
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(4 << 20)
        .initial_connection_window_size(16 << 20);
    let (client, conn) = builder.handshake::<_, Bytes>(a).await.unwrap();
    tokio::spawn(conn);
    (client, streams)
}

/// Many streams answered at once, in every shape a write turn can end
/// with (a HEADERS frame alone, small DATA copied into `h2`'s buffer, DATA
/// written apart, heads over 16 KiB with CONTINUATION, trailers), through
/// a transport that takes 16 KiB per write, to a client that sends
/// nothing after its requests (windows large enough, no capacity
/// released): every byte the server holds must go out without a frame
/// from the client to prompt it (`coalesce.rs`).
#[tokio::test]
async fn concurrent_responses_of_every_shape_all_arrive() {
    const SIZES: [usize; 7] = [0, 10, 1023, 1024, 5_000, 16_384, 100_000];
    let (client, mut streams) = trickle_pair().await;
    let mut client = client.ready().await.unwrap();
    let mut responses = Vec::new();
    for i in 0..(SIZES.len() * 4) {
        let req = http::Request::get(format!("https://example.org/{i}"))
            .body(())
            .unwrap();
        responses.push(client.send_request(req, true).unwrap().0);
        client = client.ready().await.unwrap();
    }
    let mut writers = Vec::new();
    for _ in 0..responses.len() {
        let mut s = streams.recv().await.unwrap();
        let i: usize = s.req_header().uri.path()[1..].parse().unwrap();
        writers.push(tokio::spawn(async move {
            let size = SIZES[i % SIZES.len()];
            let body: Vec<u8> = (0..size).map(|b| (b + i) as u8).collect();
            let mut head = ResponseHeader::build(200u16, None).unwrap();
            if i.is_multiple_of(5) {
                // a head over one frame: HEADERS and CONTINUATION
                head.insert_header("x-big", "v".repeat(20_000)).unwrap();
            }
            s.write_response_header(Box::new(head)).await.unwrap();
            if i.is_multiple_of(2) {
                s.write_body_bytes(Bytes::from(body), true).await.unwrap();
            } else {
                s.write_body_bytes(Bytes::from(body), false).await.unwrap();
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                s.write_trailers(trailers).unwrap();
            }
        }));
    }
    let readers: Vec<_> = responses
        .into_iter()
        .enumerate()
        .map(|(i, response)| {
            tokio::spawn(async move {
                let size = SIZES[i % SIZES.len()];
                let resp = response.await.unwrap();
                assert_eq!(resp.headers().contains_key("x-big"), i.is_multiple_of(5));
                let mut body = resp.into_body();
                let mut got = Vec::new();
                while let Some(piece) = body.data().await {
                    got.extend_from_slice(&piece.unwrap());
                }
                let want: Vec<u8> = (0..size).map(|b| (b + i) as u8).collect();
                assert_eq!(got, want, "response {i}");
                let trailers = body.trailers().await.unwrap();
                assert_eq!(trailers.is_some(), !i.is_multiple_of(2), "response {i}");
            })
        })
        .collect();
    let all = async {
        for r in readers {
            r.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(10), all)
        .await
        .expect("every response arrives");
    for w in writers {
        w.await.unwrap();
    }
}

/// After a head large enough to grow `h2`'s write buffer past 16 KiB, one
/// turn's small frames (many small responses ready together) fill more
/// than a record: the transport takes them in pieces and all must still go
/// out, with the client sending nothing to prompt another turn.
#[tokio::test]
async fn a_turn_of_small_responses_over_a_record_is_all_written() {
    let (client, mut streams) = trickle_pair().await;
    let mut client = client.ready().await.unwrap();
    let get = |i: usize| {
        http::Request::get(format!("https://example.org/{i}"))
            .body(())
            .unwrap()
    };

    // a 20 KB head grows h2's buffer
    let (first, _) = client.send_request(get(0), true).unwrap();
    let mut s = streams.recv().await.unwrap();
    let mut head = ResponseHeader::build(200u16, None).unwrap();
    head.insert_header("x-big", "v".repeat(20_000)).unwrap();
    s.write_response_header(Box::new(head)).await.unwrap();
    s.finish_body().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the big head arrives")
        .unwrap();
    assert_eq!(first.headers()["x-big"].len(), 20_000);

    // then 60 responses of 400 bytes, answered together: over 24 KB of
    // frames in the connection's next write turn
    let mut responses = Vec::new();
    for i in 1..=60 {
        client = client.ready().await.unwrap();
        responses.push(client.send_request(get(i), true).unwrap().0);
    }
    let mut sessions = Vec::new();
    for _ in 0..responses.len() {
        sessions.push(streams.recv().await.unwrap());
    }
    for mut s in sessions {
        tokio::spawn(async move {
            s.write_response_header(Box::new(ResponseHeader::build(200u16, None).unwrap()))
                .await
                .unwrap();
            s.write_body_bytes(Bytes::from(vec![b'x'; 400]), true)
                .await
                .unwrap();
        });
    }
    let all = async {
        for response in responses {
            let mut body = response.await.unwrap().into_body();
            let mut got = 0;
            while let Some(piece) = body.data().await {
                got += piece.unwrap().len();
            }
            assert_eq!(got, 400);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), all)
        .await
        .expect("every response arrives");
}
