//! Wire-level tests of the HTTP/1.1 server session (`super`): the bytes a
//! client sends, what the session parses, the bytes that come back.
#![allow(clippy::unwrap_used)]

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

async fn session(input: &[u8]) -> (HttpSession, DuplexStream) {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    client.write_all(input).await.unwrap();
    (HttpSession::new(Box::new(server)), client)
}

/// Everything the client receives until the server side closes.
async fn received(mut client: DuplexStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(out).unwrap()
}

async fn body(s: &mut HttpSession) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(b) = s.read_body_bytes().await? {
        out.extend_from_slice(&b);
    }
    Ok(out)
}

async fn respond(
    s: &mut HttpSession,
    code: u16,
    headers: &[(&'static str, &'static str)],
    data: &[u8],
) {
    let mut resp = ResponseHeader::build(code, None).unwrap();
    for (k, v) in headers {
        resp.append_header(*k, *v).unwrap();
    }
    s.write_response_header(Box::new(resp)).await.unwrap();
    s.write_body(data).await.unwrap();
    s.finish_body().await.unwrap();
}

#[tokio::test]
async fn get_is_parsed_and_answered_with_content_length() {
    let (mut s, client) =
        session(b"GET /p?q=1 HTTP/1.1\r\nHost: example.org\r\nX-CuStOm: a\r\n\r\n").await;
    assert!(s.read_request().await.unwrap().is_some());
    assert_eq!(s.req_header().method, Method::GET);
    assert_eq!(s.req_header().raw_path(), b"/p?q=1");
    assert_eq!(s.request_summary(), "GET /p?q=1, Host: example.org");
    assert!(s.is_body_empty() && s.is_body_done());
    assert!(s.will_keepalive());
    respond(&mut s, 200, &[("Content-Length", "5")], b"hello").await;
    assert_eq!(s.body_bytes_sent(), 5);
    drop(s.reuse().await.unwrap());
    assert_eq!(
        received(client).await,
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    );
}

#[tokio::test]
async fn head_and_204_and_304_responses_have_no_body() {
    for (method, code, expect) in [
        ("HEAD", 200, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
        ("GET", 204, "HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", 304, "HTTP/1.1 304 Not Modified\r\n\r\n"),
    ] {
        let req = format!("{method} / HTTP/1.1\r\nHost: h\r\n\r\n");
        let (mut s, client) = session(req.as_bytes()).await;
        s.read_request().await.unwrap().unwrap();
        let hdrs: &[(&str, &str)] = if code == 200 {
            &[("Content-Length", "5")]
        } else {
            &[]
        };
        respond(&mut s, code, hdrs, b"hello").await;
        drop(s.reuse().await.unwrap());
        assert_eq!(received(client).await, expect, "{method} {code}");
    }
}

#[tokio::test]
async fn post_body_with_content_length_is_streamed() {
    let (mut s, client) =
        session(b"POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world").await;
    s.read_request().await.unwrap().unwrap();
    assert!(!s.is_body_empty());
    assert_eq!(body(&mut s).await.unwrap(), b"hello world");
    assert_eq!(s.body_bytes_read(), 11);
    assert!(s.is_body_done());
    respond(&mut s, 200, &[], b"ok").await;
    drop(s.reuse().await.unwrap());
    assert_eq!(
        received(client).await,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    );
}

#[tokio::test]
async fn chunked_request_with_extensions_and_trailers() {
    let (mut s, _client) = session(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n",
    )
    .await;
    s.read_request().await.unwrap().unwrap();
    assert_eq!(body(&mut s).await.unwrap(), b"hello!");
}

#[tokio::test]
async fn invalid_chunk_size_is_an_h1_error() {
    let (mut s, _client) = session(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    s.read_request().await.unwrap().unwrap();
    let e = body(&mut s).await.unwrap_err();
    assert_eq!(e.etype(), &ErrorType::H1Error);
    assert_eq!(e.esource(), &crate::ErrorSource::Downstream);
    assert!(!s.will_keepalive());
}

#[tokio::test]
async fn body_cut_short_is_connection_closed() {
    let (mut s, client) =
        session(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc").await;
    drop(client);
    s.read_request().await.unwrap().unwrap();
    let e = body(&mut s).await.unwrap_err();
    assert_eq!(e.etype(), &ErrorType::ConnectionClosed);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (mut s, client) = session(
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhiGET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    let mut paths = Vec::new();
    loop {
        s.read_request().await.unwrap().unwrap();
        paths.push(String::from_utf8(s.req_header().raw_path().to_vec()).unwrap());
        let b = body(&mut s).await.unwrap();
        let mut resp = ResponseHeader::build(200, None).unwrap();
        let text = format!("{}{}", paths.last().unwrap(), String::from_utf8(b).unwrap());
        resp.set_content_length(text.len()).unwrap();
        s.write_response_header(Box::new(resp)).await.unwrap();
        s.write_body(text.as_bytes()).await.unwrap();
        s.finish_body().await.unwrap();
        match s.reuse().await {
            Some(next) => s = next,
            None => break,
        }
    }
    assert_eq!(paths, ["/1", "/2", "/3"]);
    assert_eq!(
        received(client).await,
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n/1\
         HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n/2hi\
         HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n/3"
    );
}

#[tokio::test]
async fn keepalive_decision_for_each_version() {
    // (request, keep-alive?, connection header in the response)
    for (req, keep, conn) in [
        ("GET / HTTP/1.1\r\nHost: h\r\n\r\n", true, None),
        (
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            false,
            Some("close"),
        ),
        ("GET / HTTP/1.0\r\n\r\n", false, Some("close")),
        (
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            true,
            Some("keep-alive"),
        ),
    ] {
        let (mut s, _client) = session(req.as_bytes()).await;
        s.read_request().await.unwrap().unwrap();
        assert_eq!(s.will_keepalive(), keep, "{req}");
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.set_content_length(0).unwrap();
        s.write_response_header(Box::new(resp)).await.unwrap();
        // the head is held back until the body (here: none) is finished
        assert!(s.response_written().is_none(), "{req}");
        s.finish_body().await.unwrap();
        let written = s
            .response_written()
            .unwrap()
            .headers
            .get("connection")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(written.as_deref(), conn, "{req}");
        assert_eq!(s.reuse().await.is_some(), keep, "{req}");
    }
}

#[tokio::test]
async fn keepalive_off_closes_after_response() {
    let (mut s, _client) = session(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").await;
    s.set_keepalive(None);
    s.read_request().await.unwrap().unwrap();
    assert!(!s.will_keepalive());
    respond(&mut s, 200, &[("Content-Length", "0")], b"").await;
    assert_eq!(s.response_written().unwrap().headers["connection"], "close");
    assert!(s.reuse().await.is_none());
}

#[tokio::test]
async fn http10_response_without_length_is_close_delimited() {
    let (mut s, client) = session(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").await;
    s.read_request().await.unwrap().unwrap();
    respond(&mut s, 200, &[], b"raw body").await;
    assert!(s.reuse().await.is_none());
    assert_eq!(
        received(client).await,
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nraw body"
    );
}

#[tokio::test]
async fn expect_100_continue_is_sent_on_first_body_read() {
    let (mut s, mut client) =
        session(b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
            .await;
    s.read_request().await.unwrap().unwrap();
    let reader = tokio::spawn(async move {
        let b = body(&mut s).await.unwrap();
        (s, b)
    });
    let mut first = [0u8; 25];
    client.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
    client.write_all(b"data").await.unwrap();
    let (_s, b) = reader.await.unwrap();
    assert_eq!(b, b"data");
}

#[tokio::test]
async fn no_100_continue_after_a_final_response() {
    let (mut s, client) =
        session(b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
            .await;
    s.read_request().await.unwrap().unwrap();
    respond(&mut s, 413, &[("Content-Length", "0")], b"").await;
    // the body was never asked for: the connection is closed, not drained
    assert!(s.reuse().await.is_none());
    assert_eq!(
        received(client).await,
        "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

#[tokio::test]
async fn smuggling_and_malformed_requests_are_rejected() {
    let cases: &[(&[u8], ErrorType)] = &[
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", ErrorType::HTTPStatus(400)),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", ErrorType::HTTPStatus(400)),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\n", ErrorType::HTTPStatus(400)),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n", ErrorType::HTTPStatus(400)),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", ErrorType::HTTPStatus(400)),
        (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", ErrorType::HTTPStatus(400)),
        (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", ErrorType::HTTPStatus(400)),
        (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", ErrorType::HTTPStatus(400)),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", ErrorType::HTTPStatus(400)),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ErrorType::HTTPStatus(400)),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n", ErrorType::InvalidHTTPHeader),
        (b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n", ErrorType::InvalidHTTPHeader),
        (b"GET /\r\n\r\n", ErrorType::InvalidHTTPHeader),
    ];
    for (input, etype) in cases {
        let (mut s, _client) = session(input).await;
        let e = s.read_request().await.unwrap_err();
        assert_eq!(e.etype(), etype, "{}", String::from_utf8_lossy(input));
        assert_eq!(e.esource(), &crate::ErrorSource::Downstream);
    }
}

#[tokio::test]
async fn oversize_header_is_431() {
    let mut input = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
    input.extend(vec![b'a'; 70 * 1024]);
    input.extend_from_slice(b"\r\n\r\n");
    let (mut s, _client) = session(&input).await;
    let e = s.read_request().await.unwrap_err();
    assert_eq!(e.etype(), &ErrorType::HTTPStatus(431));
    let mut input = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..300 {
        input.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    let (mut s, _client) = session(&input).await;
    assert_eq!(
        s.read_request().await.unwrap_err().etype(),
        &ErrorType::HTTPStatus(431)
    );
}

#[tokio::test]
async fn eof_before_any_byte_is_none_and_mid_head_is_an_error() {
    let (mut s, client) = session(b"").await;
    drop(client);
    assert!(s.read_request().await.unwrap().is_none());
    let (mut s, client) = session(b"GET / HT").await;
    drop(client);
    assert_eq!(
        s.read_request().await.unwrap_err().etype(),
        &ErrorType::ConnectionClosed
    );
}

#[tokio::test]
async fn idle_keepalive_timeout_ends_quietly() {
    let (mut s, _client) = session(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").await;
    s.set_keepalive(Some(1));
    s.read_request().await.unwrap().unwrap();
    respond(&mut s, 200, &[("Content-Length", "0")], b"").await;
    let mut s = s.reuse().await.unwrap();
    assert_eq!(s.get_keepalive(), Some(1));
    let r = tokio::time::timeout(Duration::from_secs(10), s.read_request())
        .await
        .unwrap();
    assert!(r.unwrap().is_none());
}

#[tokio::test]
async fn upgrade_then_raw_bytes_both_ways() {
    let (mut s, mut client) = session(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nearly",
    )
    .await;
    s.read_request().await.unwrap().unwrap();
    assert!(s.is_upgrade_req());
    let mut resp = ResponseHeader::build(101, None).unwrap();
    resp.insert_header("Upgrade", "websocket").unwrap();
    resp.insert_header("Connection", "Upgrade").unwrap();
    s.write_response_header(Box::new(resp)).await.unwrap();
    assert!(s.was_upgraded());
    assert_eq!(&s.read_body_bytes().await.unwrap().unwrap()[..], b"early");
    client.write_all(b"ping").await.unwrap();
    assert_eq!(&s.read_body_bytes().await.unwrap().unwrap()[..], b"ping");
    s.write_body(b"pong").await.unwrap();
    s.finish_body().await.unwrap();
    client.shutdown().await.unwrap();
    assert!(s.read_body_bytes().await.unwrap().is_none());
    assert!(s.reuse().await.is_none());
    assert_eq!(
        received(client).await,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\npong"
    );
}

#[tokio::test]
async fn switching_protocols_without_upgrade_request_is_refused() {
    let (mut s, _client) = session(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").await;
    s.read_request().await.unwrap().unwrap();
    let e = s
        .write_response_header(Box::new(ResponseHeader::build(101, None).unwrap()))
        .await
        .unwrap_err();
    assert_eq!(e.etype(), &ErrorType::H1Error);
}

#[tokio::test]
async fn informational_then_final_and_custom_reason_and_case_kept() {
    let (mut s, client) = session(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").await;
    s.read_request().await.unwrap().unwrap();
    let mut early = ResponseHeader::build(103, None).unwrap();
    early
        .insert_header("Link", "</a.css>; rel=preload")
        .unwrap();
    s.write_response_header(Box::new(early)).await.unwrap();
    assert!(s.response_written().is_none());
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.set_reason_phrase(Some("Very Fine")).unwrap();
    resp.append_header("X-CuStOm", "1").unwrap();
    resp.append_header("x-custom", "2").unwrap();
    resp.set_content_length(0).unwrap();
    s.write_response_header(Box::new(resp)).await.unwrap();
    s.finish_body().await.unwrap();
    drop(s.reuse().await.unwrap());
    assert_eq!(
        received(client).await,
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
         HTTP/1.1 200 Very Fine\r\nX-CuStOm: 1\r\nx-custom: 2\r\nContent-Length: 0\r\n\r\n"
    );
}

#[tokio::test]
async fn body_past_content_length_is_refused() {
    let (mut s, _client) = session(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").await;
    s.read_request().await.unwrap().unwrap();
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.set_content_length(2).unwrap();
    s.write_response_header(Box::new(resp)).await.unwrap();
    assert_eq!(
        s.write_body(b"abc").await.unwrap_err().etype(),
        &ErrorType::H1Error
    );
    assert!(!s.will_keepalive());
}

#[tokio::test]
async fn unread_request_body_is_drained_on_reuse() {
    let (mut s, _client) = session(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\nHost: h\r\n\r\n",
    )
    .await;
    s.read_request().await.unwrap().unwrap();
    respond(&mut s, 200, &[("Content-Length", "0")], b"").await;
    let mut s = s.reuse().await.unwrap();
    s.read_request().await.unwrap().unwrap();
    assert_eq!(s.req_header().raw_path(), b"/next");
}

#[tokio::test]
async fn idle_reused_session_holds_no_read_buffer() {
    let (mut s, _client) = session(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").await;
    s.read_request().await.unwrap().unwrap();
    respond(&mut s, 200, &[("Content-Length", "0")], b"").await;
    let s = s.reuse().await.unwrap();
    assert_eq!(s.buf.capacity(), 0);
    assert!(s.request_header.is_none() && s.response_written.is_none());
    assert!(std::mem::size_of::<HttpSession>() < 1024);
}

/// A TCP pair on loopback: the server side as a session's stream, and the
/// client side.
async fn tcp_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (server, client)
}

/// A session that has read `GET /f` on a loopback TCP connection, its
/// client side, and an unlinked temporary file holding `data`.
async fn file_session(data: &[u8]) -> (HttpSession, tokio::net::TcpStream, std::fs::File) {
    let (server, mut client) = tcp_pair().await;
    client
        .write_all(b"GET /f HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut s = HttpSession::new(Box::new(server));
    assert!(s.read_request().await.unwrap().is_some());
    let path = std::env::temp_dir().join(format!(
        "h1-file-body-{}-{}",
        std::process::id(),
        data.len()
    ));
    std::fs::write(&path, data).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    (s, client, file)
}

#[tokio::test]
async fn a_body_sent_from_a_file_follows_the_head_and_keeps_the_connection() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let (mut s, mut client, file) = file_session(&data).await;
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.append_header("Content-Length", "199990").unwrap();
    assert!(!s.can_write_body_file(), "no response header written yet");
    s.write_response_header(Box::new(resp)).await.unwrap();
    assert!(s.can_write_body_file());
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        got
    });
    s.write_body_file(&file, 10, 199_990).await.unwrap();
    s.finish_body().await.unwrap();
    assert_eq!(s.body_bytes_sent(), 199_990);
    assert!(s.will_keepalive());
    drop(s);
    let got = reader.await.unwrap();
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..head_end]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(got[head_end..] == data[10..], "body differs");
}

#[tokio::test]
async fn a_file_body_past_the_content_length_or_the_file_end_is_an_error() {
    let (mut s, _client, file) = file_session(b"0123456789").await;
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.append_header("Content-Length", "5").unwrap();
    s.write_response_header(Box::new(resp)).await.unwrap();
    // more than the Content-Length allows: refused before anything is sent
    let e = s.write_body_file(&file, 0, 6).await.unwrap_err();
    assert_eq!(e.etype(), &ErrorType::H1Error);
    assert!(!s.will_keepalive());

    let (mut s, _client, file) = file_session(b"0123456789").await;
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.append_header("Content-Length", "8").unwrap();
    s.write_response_header(Box::new(resp)).await.unwrap();
    // the file ends 3 bytes early: an error, and the connection closes
    let e = s.write_body_file(&file, 5, 8).await.unwrap_err();
    assert_eq!(e.etype(), &ErrorType::WriteError);
    assert!(!s.will_keepalive());
}

#[tokio::test]
async fn chunked_responses_and_in_memory_streams_do_not_take_files() {
    let (mut s, _client) = session(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(s.read_request().await.unwrap().is_some());
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.append_header("Content-Length", "3").unwrap();
    s.write_response_header(Box::new(resp)).await.unwrap();
    // a DuplexStream is no socket
    assert!(!s.can_write_body_file());

    let (server, mut client) = tcp_pair().await;
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut s = HttpSession::new(Box::new(server));
    assert!(s.read_request().await.unwrap().is_some());
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.append_header("Transfer-Encoding", "chunked").unwrap();
    s.write_response_header(Box::new(resp)).await.unwrap();
    assert!(!s.can_write_body_file());
}
