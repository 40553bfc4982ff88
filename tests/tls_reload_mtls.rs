//! An in-process proxy with an HTTPS listener: the certificate reloaded
//! from disk is served to new handshakes (checked with `openssl s_client`)
//! while a connection opened before keeps working; under mTLS the verified
//! client certificate is readable from the `Session` in every phase.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use proxy_facade::http::ResponseHeader;
use proxy_facade::prelude::*;
use proxy_facade::proxy::{ProxyHttp, Session};
use proxy_facade::server::configuration::ServerConf;
use proxy_facade::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use proxy_facade::tls::{CertReloader, TlsSettings};
use proxy_facade::upstreams::peer::HttpPeer;

use support::tls::{presented_cert, Issued, Pki};
use support::{curl, TestOrigin, WAIT};

/// The client certificate as one phase saw it: `subject serial sha256`, or `-`.
fn client_cert(session: &Session) -> String {
    session
        .ssl_digest()
        .and_then(|d| d.peer_cert.clone())
        .map_or("-".to_owned(), |c| {
            format!("{} {} {}", c.subject, c.serial, c.sha256)
        })
}

struct Facts {
    origin: SocketAddr,
}

#[derive(Default)]
struct Ctx {
    seen_in_request_filter: String,
    seen_in_upstream_peer: String,
}

#[async_trait]
impl ProxyHttp for Facts {
    type CTX = Ctx;
    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.seen_in_request_filter = client_cert(session);
        Ok(false)
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        ctx.seen_in_upstream_peer = client_cert(session);
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        resp.insert_header("x-cert-request-filter", ctx.seen_in_request_filter.as_str())?;
        resp.insert_header("x-cert-upstream-peer", ctx.seen_in_upstream_peer.as_str())?;
        resp.insert_header("x-cert-response-filter", client_cert(session).as_str())?;
        Ok(())
    }
}

struct StopSignal(Arc<tokio::sync::Notify>);

#[async_trait]
impl ShutdownSignalWatch for StopSignal {
    async fn recv(&self) -> ShutdownSignal {
        self.0.notified().await;
        ShutdownSignal::FastShutdown
    }
}

/// The proxy on a thread, HTTPS on `127.0.0.1:0` with `tls`.
struct TlsProxy {
    addr: SocketAddr,
    stop: Arc<tokio::sync::Notify>,
    thread: Option<JoinHandle<()>>,
}

impl TlsProxy {
    fn start(origin: SocketAddr, tls: TlsSettings) -> TlsProxy {
        let conf = ServerConf {
            version: 1,
            threads: 1,
            ..ServerConf::default()
        };
        let mut server = Server::new_with_opt_and_conf(None, conf);
        let mut service = http_proxy_service(&server.configuration, Facts { origin });
        service.add_tls_with_settings("127.0.0.1:0", None, tls);
        let bound = service.bound_addrs();
        server.add_service(service);
        let stop = Arc::new(tokio::sync::Notify::new());
        let signal = StopSignal(stop.clone());
        let thread = std::thread::spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(signal),
            })
        });
        let deadline = Instant::now() + WAIT;
        let addr = loop {
            if let Some(a) = bound.borrow().first().and_then(|a| a.as_inet().copied()) {
                break a;
            }
            assert!(Instant::now() < deadline, "in-process proxy did not listen");
            std::thread::sleep(Duration::from_millis(10));
        };
        TlsProxy {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copy `from`'s certificate and key over the files the listener reads.
fn install(from: &Issued, cert: &std::path::Path, key: &std::path::Path) {
    std::fs::copy(&from.cert, cert).unwrap();
    std::fs::copy(&from.key, key).unwrap();
}

#[test]
fn reloaded_certificate_is_served_to_new_handshakes_and_live_connections_stay() {
    let origin = TestOrigin::start();
    let pki = Pki::new("reload-ca");
    let first = pki.issue("localhost", "DNS:localhost,IP:127.0.0.1", "0AAA");
    let second = pki.issue("localhost", "DNS:localhost,IP:127.0.0.1", "0BBB");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    install(&first, &cert, &key);
    let tls = TlsSettings::intermediate(&cert, &key).unwrap();
    let reloader: CertReloader = tls.reloader();
    let proxy = TlsProxy::start(origin.addr(), tls);

    let before = presented_cert(proxy.addr, "localhost");
    assert_eq!(before.serial, "0AAA");

    // a connection made before the reload, kept open across it
    let mut live = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &proxy.addr.to_string(),
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // s_client reports its check of the served certificate on stderr: once
    // it has, the handshake has picked the certificate of before the reload
    let (seen, verified) = std::sync::mpsc::channel();
    let stderr = live.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.starts_with("verify return") {
                let _ = seen.send(());
            }
        }
    });
    verified
        .recv_timeout(WAIT)
        .expect("s_client received the certificate");

    install(&second, &cert, &key);
    let summary = reloader.reload().unwrap();
    assert_eq!(summary.serial, "0BBB");

    let after = presented_cert(proxy.addr, "localhost");
    assert_eq!(after.serial, "0BBB");
    assert_ne!(after.sha256, before.sha256);
    // the fingerprint the reloader reports is the one served
    assert_eq!(after.sha256.replace(':', "").to_lowercase(), summary.sha256);

    // the old connection still carries a request
    let mut stdin = live.stdin.take().unwrap();
    stdin
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    live.stdout
        .take()
        .unwrap()
        .read_to_string(&mut reply)
        .unwrap();
    drop(stdin);
    let _ = live.wait();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("hello from the test origin"), "{reply}");

    // a broken file is refused and the current certificate stays
    std::fs::write(&key, "garbage").unwrap();
    let e = reloader.reload().unwrap_err();
    assert!(e.to_string().contains(key.to_str().unwrap()), "{e}");
    assert_eq!(presented_cert(proxy.addr, "localhost").serial, "0BBB");
}

#[test]
fn verified_client_certificate_is_readable_in_every_phase() {
    let origin = TestOrigin::start();
    let server_pki = Pki::new("srv-ca");
    let leaf = server_pki.issue("localhost", "DNS:localhost,IP:127.0.0.1", "10");
    let client_pki = Pki::new("cli-ca");
    let client = client_pki.issue("client-x", "DNS:client-x.test", "0C0FFEE0");
    let mut tls = TlsSettings::intermediate(&leaf.cert, &leaf.key).unwrap();
    tls.require_client_cert(client_pki.ca()).unwrap();
    let proxy = TlsProxy::start(origin.addr(), tls);
    let url = format!("https://{}/", proxy.addr);
    let ca = server_pki.ca();

    let out = curl(&["--http1.1", "--cacert", ca.to_str().unwrap(), &url]);
    assert!(!out.status.success(), "served without a client certificate");

    let out = curl(&[
        "--http1.1",
        "--cacert",
        ca.to_str().unwrap(),
        "--cert",
        client.cert.to_str().unwrap(),
        "--key",
        client.key.to_str().unwrap(),
        "-D",
        "-",
        "-o",
        "/dev/null",
        &url,
    ]);
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let fingerprint = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&client.cert)
        .output()
        .unwrap();
    let fingerprint = String::from_utf8_lossy(&fingerprint.stdout)
        .split_once('=')
        .map(|(_, v)| v.trim().replace(':', "").to_lowercase())
        .unwrap();
    let want = format!("cn=client-x 0c0ffee0 {fingerprint}");
    for phase in ["request-filter", "upstream-peer", "response-filter"] {
        assert!(
            head.contains(&format!("x-cert-{phase}: {want}")),
            "{phase}: want {want} in\n{head}"
        );
    }
}
