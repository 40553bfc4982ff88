//! HTTP/2 to upstreams: nginx over TLS (ALPN h2) and over h2c (prior
//! knowledge) behind the proxy, reached by an HTTP/1.1 client and by an
//! HTTP/2 client (curl); request and response bodies intact (10 MiB
//! streamed), trailers carried to both kinds of client, concurrent requests
//! multiplexed on few upstream connections, and the ALPN fallback to
//! HTTP/1.1 (or a 502 when the peer allows HTTP/2 only).

#![allow(clippy::unwrap_used)]

mod support;

use proxy_facade::upstreams::peer::{HttpPeer, ALPN};
use support::h2_proxy::H2Proxy;
use support::nginx_h2::NginxH2;
use support::tls::{NginxTls, Pki};
use support::{curl, pattern_bytes, sha256_hex, temp_path, TestOrigin};

const MIB: usize = 1024 * 1024;

/// A peer to nginx over TLS, verified with `ca`, speaking `alpn`.
fn tls_peer(addr: std::net::SocketAddr, ca: &[u8], alpn: ALPN, streams: usize) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, true, "origin.test".to_string());
    peer.options.ca = Some(std::sync::Arc::new(ca.to_vec()));
    peer.options.alpn = alpn;
    peer.options.max_h2_streams = streams;
    peer
}

/// `curl args... -D <headers> -o <body>`: (status, head text, body bytes).
fn fetch(args: &[&str]) -> (String, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let head = temp_path(&dir, "head");
    let body = temp_path(&dir, "body");
    let mut all: Vec<&str> = args.to_vec();
    let (h, b) = (head.to_str().unwrap(), body.to_str().unwrap());
    all.extend(["-D", h, "-o", b, "-w", "%{http_code}"]);
    let out = curl(&all);
    assert!(out.status.success(), "{out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        std::fs::read_to_string(&head).unwrap_or_default(),
        std::fs::read(&body).unwrap_or_default(),
    )
}

/// POST `len` pattern bytes to `/sha256` with `extra` curl flags; the
/// origin behind nginx answers `"<count> <sha256>"`.
fn post_sha(proxy: &H2Proxy, len: usize, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = temp_path(&dir, "upload");
    std::fs::write(&file, pattern_bytes(len)).unwrap();
    let data = format!("@{}", file.display());
    let url = proxy.url("/sha256");
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["--data-binary", &data, &url]);
    let out = curl(&args);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn h1_and_h2_clients_reach_nginx_over_tls_h2_with_bodies_intact() {
    let origin = TestOrigin::start();
    let pki = Pki::new("h2-origin-ca");
    let leaf = pki.issue("origin.test", "DNS:origin.test", "0a01");
    let nginx = NginxH2::start_tls(&leaf, origin.addr(), &[("1k", 1024), ("10m", 10 * MIB)]);
    let ca = std::fs::read(pki.ca()).unwrap();
    let addr = nginx.addr();
    let proxy = H2Proxy::start(move || tls_peer(addr, &ca, ALPN::H2, 100));

    for client in ["--http1.1", "--http2-prior-knowledge"] {
        // GET, small and 10 MiB (streamed through both hops)
        let (code, head, body) = fetch(&[client, &proxy.url("/1k")]);
        assert_eq!(code, "200", "{client}: {head}");
        assert_eq!(body, pattern_bytes(1024), "{client}");
        assert!(
            head.contains("x-upstream-version: HTTP/2"),
            "{client}: {head}"
        );
        let (code, _, body) = fetch(&[client, &proxy.url("/10m")]);
        assert_eq!(code, "200");
        assert_eq!(
            sha256_hex(&body),
            sha256_hex(&pattern_bytes(10 * MIB)),
            "{client}"
        );

        // POST, small and 10 MiB: what the origin behind nginx got
        let want = |n| format!("{n} {}", sha256_hex(&pattern_bytes(n)));
        assert_eq!(post_sha(&proxy, 5000, &[client]), want(5000), "{client}");
        assert_eq!(
            post_sha(&proxy, 10 * MIB, &[client]),
            want(10 * MIB),
            "{client}"
        );
    }
    // nginx saw HTTP/2 requests
    let log = nginx.wait_access_log(8);
    assert_eq!(log.len(), 8, "{log:?}");
    assert!(
        log.iter().all(|l| l.request.ends_with("HTTP/2.0")),
        "{log:?}"
    );
}

#[test]
fn h2c_upstream_with_prior_knowledge_serves_h1_and_h2c_clients() {
    let origin = TestOrigin::start();
    let nginx = NginxH2::start_h2c(origin.addr(), &[("64k", 64 * 1024)]);
    let addr = nginx.addr();
    let proxy = H2Proxy::start(move || {
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.alpn = ALPN::H2;
        peer.options.max_h2_streams = 10;
        peer
    });
    for client in ["--http1.1", "--http2-prior-knowledge"] {
        let (code, head, body) = fetch(&[client, &proxy.url("/64k")]);
        assert_eq!(code, "200", "{head}");
        assert_eq!(body, pattern_bytes(64 * 1024));
        assert!(head.contains("x-upstream-version: HTTP/2"), "{head}");
        let n = 300_000;
        let want = format!("{n} {}", sha256_hex(&pattern_bytes(n)));
        assert_eq!(post_sha(&proxy, n, &[client]), want);
    }
    let log = nginx.wait_access_log(4);
    assert!(
        log.iter().all(|l| l.request.ends_with("HTTP/2.0")),
        "{log:?}"
    );
}

/// An h2c origin (the `h2` crate, on a runtime thread of its own) whose
/// every response is `200`, body `"with a trailer\n"` and no
/// Content-Length, then the trailer `x-origin-trailer: from-origin`.
/// (nginx 1.22's `add_trailer` sends nothing on a static file over h2.)
fn trailer_origin() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(tcp).await else {
                        return;
                    };
                    while let Some(Ok((_req, mut respond))) = conn.accept().await {
                        let resp = http::Response::builder().status(200).body(()).unwrap();
                        let mut send = respond.send_response(resp, false).unwrap();
                        send.send_data(bytes::Bytes::from_static(b"with a trailer\n"), false)
                            .unwrap();
                        let mut t = http::HeaderMap::new();
                        t.insert("x-origin-trailer", "from-origin".parse().unwrap());
                        send.send_trailers(t).unwrap();
                    }
                });
            }
        });
    });
    addr
}

#[test]
fn trailers_from_an_h2_upstream_reach_h2_and_chunked_h1_clients() {
    let addr = trailer_origin();
    let proxy = H2Proxy::start(move || {
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.alpn = ALPN::H2;
        peer
    });
    for client in ["--http2-prior-knowledge", "--http1.1"] {
        let (code, head, body) = fetch(&[client, &proxy.url("/trailer.txt")]);
        assert_eq!(code, "200", "{client}: {head}");
        assert_eq!(body, b"with a trailer\n");
        // curl writes trailers after the header block in its -D output
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("x-origin-trailer: from-origin"),
            "{client}: {head}"
        );
        // and upstream_response_trailer_filter ran on them
        assert!(head.contains("x-proxy-trailer: seen"), "{client}: {head}");
        if client == "--http1.1" {
            assert!(head.contains("transfer-encoding: chunked"), "{head}");
        }
    }
}

#[test]
fn concurrent_requests_share_one_upstream_h2_connection() {
    let origin = TestOrigin::start();
    let pki = Pki::new("h2-share-ca");
    let leaf = pki.issue("origin.test", "DNS:origin.test", "0a02");
    let nginx = NginxH2::start_tls(&leaf, origin.addr(), &[("4k", 4096)]);
    let ca = std::fs::read(pki.ca()).unwrap();
    let addr = nginx.addr();
    let proxy = H2Proxy::start(move || tls_peer(addr, &ca, ALPN::H2, 100));

    // 200 requests, up to 50 at once, on separate HTTP/1.1 connections to the proxy
    let n = 200;
    let url = proxy.url("/4k");
    let mut args = vec![
        "--http1.1",
        "--parallel",
        "--parallel-max",
        "50",
        "-w",
        "%{http_code}\n",
    ];
    for _ in 0..n {
        args.extend([url.as_str(), "-o", "/dev/null"]);
    }
    let out = curl(&args);
    assert!(out.status.success(), "{out:?}");
    let codes = String::from_utf8_lossy(&out.stdout);
    assert_eq!(codes.lines().filter(|l| *l == "200").count(), n, "{codes}");
    let log = nginx.wait_access_log(n);
    assert_eq!(log.len(), n);
    let conns = nginx.distinct_connections(n);
    assert!(
        conns <= 2,
        "{n} requests, 50 concurrent, came on {conns} upstream connections"
    );
}

#[test]
fn h2h1_peer_falls_back_to_http1_when_the_tls_upstream_offers_only_http1() {
    let pki = Pki::new("h1-only-ca");
    let leaf = pki.issue("origin.test", "DNS:origin.test", "0a03");
    let nginx = NginxTls::start(&leaf);
    let ca = std::fs::read(pki.ca()).unwrap();
    let addr = nginx.addr();
    let ca2 = ca.clone();
    let proxy = H2Proxy::start(move || tls_peer(addr, &ca2, ALPN::H2H1, 10));
    for client in ["--http1.1", "--http2-prior-knowledge"] {
        let (code, head, body) = fetch(&[client, &proxy.url("/")]);
        assert_eq!(code, "200", "{head}");
        assert_eq!(body, b"nginx over tls\n");
        assert!(head.contains("x-upstream-version: HTTP/1.1"), "{head}");
    }

    // a peer that allows HTTP/2 only gets no h2 from this server: 502
    let strict = H2Proxy::start(move || tls_peer(addr, &ca, ALPN::H2, 10));
    let (code, _, _) = fetch(&["--http1.1", &strict.url("/")]);
    assert_eq!(code, "502");
}
