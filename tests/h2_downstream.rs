//! HTTP/2 downstream with real clients: curl `--http2` over TLS (ALPN h2)
//! with a large download and upload checked by digest, curl
//! `--http2-prior-knowledge` on h2c, h2load with 100 concurrent streams on
//! one connection, a graceful GOAWAY that lets the stream in flight
//! finish, and a rapid-reset client (CVE-2023-44487) disconnected (the `h2`
//! crate as the client of the last two).

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use support::tls::wait_listening;
use support::{curl, free_port, sha256_hex, Nginx, Proxy, TestOrigin};

const BIN: &str = env!("CARGO_BIN_EXE_part-04-tls");

/// Part 4 in front of `upstream` with a TLS listener on a free port (its
/// self-signed `localhost` certificate: curl runs with `-k`) and `extra`
/// conf lines.
fn start(upstream: SocketAddr, extra: &str) -> (Proxy, SocketAddr) {
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let proxy = Proxy::start(
        BIN,
        &[upstream],
        &format!("tls_listen: \"{tls_addr}\"\n{extra}"),
    );
    wait_listening(tls_addr);
    (proxy, tls_addr)
}

/// curl's `%{http_version} %{http_code}` line after the body.
fn version_and_status(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.rsplit('\n').next().unwrap_or_default().to_owned()
}

#[test]
fn curl_http2_over_tls_downloads_and_uploads_intact() {
    const BIG: usize = 8 << 20;
    let nginx = Nginx::start(&[("big", BIG)]);
    let (_proxy, tls) = start(nginx.addr(), "");
    let dir = tempfile::tempdir().unwrap();
    let got = dir.path().join("got");
    let out = curl(&[
        "-k",
        "--http2",
        "-o",
        got.to_str().unwrap(),
        "-w",
        "\n%{http_version} %{http_code}",
        &format!("https://127.0.0.1:{}/big", tls.port()),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(version_and_status(&out), "2 200");
    let body = std::fs::read(&got).unwrap();
    assert_eq!(body.len(), BIG);
    assert_eq!(sha256_hex(&body), sha256_hex(&nginx.file("big")));

    // 3 MB up, bigger than the stream and connection windows: the origin
    // answers with the count and digest of what it received
    let origin = TestOrigin::start();
    let (_proxy, tls) = start(origin.addr(), "");
    let up: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let file = dir.path().join("up");
    std::fs::write(&file, &up).unwrap();
    let out = curl(&[
        "-k",
        "--http2",
        "--data-binary",
        &format!("@{}", file.display()),
        "-w",
        "\n%{http_version} %{http_code}",
        &format!("https://127.0.0.1:{}/sha256", tls.port()),
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        format!("{} {}\n2 200", up.len(), sha256_hex(&up)),
        "{out:?}"
    );
}

#[test]
fn early_answer_to_an_unread_upload_reaches_the_client() {
    // nginx answers a POST to a missing file at once, without reading the
    // 2 MB body; the proxy must still end the h2 stream cleanly
    let nginx = Nginx::start(&[("small", 10)]);
    let (_proxy, tls) = start(nginx.addr(), "");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("up");
    std::fs::write(&file, vec![b'x'; 2_000_000]).unwrap();
    let out = curl(&[
        "-k",
        "--http2",
        "-o",
        "/dev/null",
        "--data-binary",
        &format!("@{}", file.display()),
        "-w",
        "%{http_version} %{http_code}",
        &format!("https://127.0.0.1:{}/missing", tls.port()),
    ]);
    // a reset stream would be curl exit 92 with status 000
    assert!(out.status.success(), "{out:?}");
    // (nginx says 413: the body is over its 1 MB client_max_body_size)
    assert!(version_and_status(&out).starts_with("2 4"), "{out:?}");
}

#[test]
fn h2c_with_prior_knowledge_and_http1_share_the_plain_listener() {
    let origin = TestOrigin::start();
    let (proxy, _tls) = start(origin.addr(), "h2c: true\n");
    let out = curl(&[
        "--http2-prior-knowledge",
        "-w",
        "\n%{http_version} %{http_code}",
        &proxy.url("/"),
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("hello from the test origin"), "{text}");
    assert_eq!(version_and_status(&out), "2 200");
    // an HTTP/1.1 client on the same listener is not mistaken for h2c
    let out = curl(&["-w", "\n%{http_version} %{http_code}", &proxy.url("/")]);
    assert_eq!(version_and_status(&out), "1.1 200", "{out:?}");
    // and without `h2c` the preface is not HTTP/1.1: refused, not served
    let (plain, _tls) = start(origin.addr(), "");
    let out = curl(&[
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &plain.url("/"),
    ]);
    assert_ne!(String::from_utf8_lossy(&out.stdout), "2 200", "{out:?}");
}

#[test]
fn h2load_100_concurrent_streams_on_one_connection_without_errors() {
    let origin = TestOrigin::start();
    let (_proxy, tls) = start(origin.addr(), "");
    let out = Command::new("timeout")
        .args(["120", "h2load", "-n", "2000", "-c", "1", "-m", "100"])
        .arg(format!("https://127.0.0.1:{}/", tls.port()))
        .output()
        .expect("cannot run h2load (apt-get install nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2000 succeeded, 0 failed, 0 errored"),
        "{text}"
    );
    assert!(text.contains("Application protocol: h2"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_sends_goaway_and_the_stream_in_flight_finishes() {
    let origin = TestOrigin::start();
    let (proxy, _tls) = start(
        origin.addr(),
        "h2c: true\ngrace_period_seconds: 30\ngraceful_shutdown_timeout_seconds: 5\n",
    );
    let tcp = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    // a request whose body is still coming when the shutdown begins
    let req = http::Request::post(format!("http://{}/sha256", proxy.addr()))
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(req, false).unwrap();
    body.send_data(Bytes::from(vec![7u8; 1000]), false).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let proxy = tokio::task::spawn_blocking(move || {
        proxy.signal("TERM");
        let n = proxy.wait_for_stderr(1, |s| s.matches("SIGTERM received").count());
        assert_eq!(n, 1, "{}", proxy.stderr());
        proxy
    })
    .await
    .unwrap();
    // the GOAWAY reaches the client while its stream is still open
    tokio::time::sleep(Duration::from_millis(300)).await;
    body.send_data(Bytes::from(vec![7u8; 1000]), true).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("response in time")
        .expect("the stream in flight is served");
    assert_eq!(resp.status(), 200);
    let mut recv = resp.into_body();
    let mut got = Vec::new();
    while let Some(piece) = recv.data().await {
        let piece = piece.unwrap();
        let _ = recv.flow_control().release_capacity(piece.len());
        got.extend_from_slice(&piece);
    }
    let want = format!("2000 {}", sha256_hex(&[7u8; 2000]));
    assert_eq!(String::from_utf8_lossy(&got), want);
    // no new stream is accepted, and the connection closes cleanly
    let refused = match client.ready().await {
        Err(_) => true,
        Ok(mut c) => {
            let req = http::Request::get(format!("http://{}/", "x"))
                .body(())
                .unwrap();
            match c.send_request(req, true) {
                Err(_) => true,
                Ok((r, _)) => r.await.is_err(),
            }
        }
    };
    assert!(refused, "a stream opened after GOAWAY was served");
    let closed = tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the connection closes after its last stream");
    let closed = closed.unwrap();
    assert!(closed.is_ok(), "{closed:?}");
    let mut proxy = proxy;
    let status = tokio::task::spawn_blocking(move || proxy.wait_exit(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapid_reset_client_is_disconnected() {
    // CVE-2023-44487: open a stream and reset it at once, without end
    let origin = TestOrigin::start();
    let (proxy, _tls) = start(origin.addr(), "h2c: true\n");
    let tcp = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut client = client;
    let mut sent = 0u32;
    let flood = async {
        while sent < 100_000 {
            client = match client.ready().await {
                Ok(c) => c,
                Err(_) => return,
            };
            let req = http::Request::get(format!("http://{}/", proxy.addr()))
                .body(())
                .unwrap();
            match client.send_request(req, false) {
                Ok((_response, mut stream)) => {
                    stream.send_reset(h2::Reason::CANCEL);
                    sent += 1;
                }
                Err(_) => return,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), flood)
        .await
        .expect("the flood ends in time");
    let ended = tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the connection is closed by the proxy")
        .unwrap();
    assert!(sent < 100_000, "all {sent} resets were taken");
    // the proxy sends GOAWAY(ENHANCE_YOUR_CALM) and closes; a client still
    // writing may see only the closed socket
    let e = ended.expect_err("closed with an error");
    assert!(
        e.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) || e.is_io(),
        "{e} after {sent} streams"
    );
    // and the reset streams were not all served upstream
    let served = origin.requests();
    assert!(
        served < sent as usize,
        "{served} of {sent} reset streams served"
    );
    eprintln!("disconnected after {sent} reset streams: {e}");
}
