//! The per-request user-space work of proxying one HTTP/1.1 exchange, without
//! sockets: parse the client's request head, build the upstream request
//! (clone, strip hop-by-hop headers, set Host, serialise), parse the
//! upstream's response head and serialise it for the client.
//!
//! `cargo bench -p proxy-core --bench h1_head`. For repeatable counts on a
//! noisy machine, run the bench binary under `valgrind --tool=callgrind`.
#![allow(missing_docs, clippy::unwrap_used)]

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use proxy_core::protocols::http::hop_by_hop;
use proxy_core::protocols::http::v1::common::HeaderLimits;
use proxy_core::protocols::http::v1::head::{self, HeadParse};

const REQUEST: &[u8] = b"GET /assets/app.js?v=42 HTTP/1.1\r\n\
Host: www.example.org\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: */*\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Referer: https://www.example.org/\r\n\
Connection: keep-alive\r\n\
Cookie: session=0123456789abcdef; theme=dark\r\n\
Sec-Fetch-Dest: script\r\n\
Sec-Fetch-Mode: no-cors\r\n\r\n";

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: nginx/1.22.1\r\n\
Date: Mon, 23 Nov 2026 11:00:00 GMT\r\n\
Content-Type: application/javascript\r\n\
Content-Length: 1024\r\n\
Last-Modified: Mon, 23 Nov 2026 10:00:00 GMT\r\n\
Connection: keep-alive\r\n\
ETag: \"65f1a2b3-400\"\r\n\
Cache-Control: max-age=3600\r\n\
Accept-Ranges: bytes\r\n\r\n";

fn parse_request() -> proxy_core::http::RequestHeader {
    let mut buf = BytesMut::from(REQUEST);
    match head::parse_request(&mut buf, &HeaderLimits::default()).unwrap() {
        HeadParse::Complete(req, _) => req,
        HeadParse::Partial => unreachable!("the request head is complete"),
    }
}

fn parse_response() -> proxy_core::http::ResponseHeader {
    let mut buf = BytesMut::from(RESPONSE);
    match head::parse_response(&mut buf, &HeaderLimits::default()).unwrap() {
        HeadParse::Complete(resp, _) => resp,
        HeadParse::Partial => unreachable!("the response head is complete"),
    }
}

fn bench(c: &mut Criterion) {
    c.bench_function("parse_request (10 headers)", |b| {
        b.iter(|| black_box(parse_request()))
    });
    c.bench_function("parse_response (9 headers)", |b| {
        b.iter(|| black_box(parse_response()))
    });
    let req = parse_request();
    c.bench_function("upstream request: clone, strip, Host, serialise", |b| {
        let mut out = BytesMut::with_capacity(1024);
        b.iter(|| {
            let mut up = Box::new(req.clone());
            hop_by_hop::strip_request(&mut up, false);
            up.insert_header("Host", "origin.internal").unwrap();
            out.clear();
            head::request_to_wire(&up, &mut out);
            black_box(out.len())
        })
    });
    c.bench_function("downstream response: parse, strip, serialise", |b| {
        let mut out = BytesMut::with_capacity(1024);
        b.iter(|| {
            let mut resp = parse_response();
            hop_by_hop::strip_response(&mut resp, false);
            out.clear();
            head::response_to_wire(&resp, &mut out);
            black_box(out.len())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
