//! Handshakes between our acceptor and our connector over loopback:
//! digests, upstream verification, resumption, mTLS, SNI callbacks, reload.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use boring::asn1::Asn1Time;
use boring::bn::BigNum;
use boring::ec::{EcGroup, EcKey};
use boring::hash::MessageDigest;
use boring::nid::Nid;
use boring::pkey::{PKey, Private};
use boring::x509::extension::{BasicConstraints, SubjectAlternativeName};
use boring::x509::{X509NameBuilder, X509};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::connectors::TransportConnector;
use crate::error::{Error, ErrorType};
use crate::protocols::Stream;
use crate::upstreams::peer::{HttpPeer, Peer};

const WAIT: Duration = Duration::from_secs(10);

fn p256() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// A certificate for `cn` (SAN `DNS:cn`, `IP:127.0.0.1`) signed by
/// `issuer` (self-signed when `None`); `ca` marks it as a CA.
fn cert(
    cn: &str,
    serial: u32,
    ca: bool,
    issuer: Option<(&X509, &PKey<Private>)>,
) -> (X509, PKey<Private>) {
    let key = p256();
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    let n = n.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&n).unwrap();
    b.set_issuer_name(issuer.map_or(&*n, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
    } else {
        let san = SubjectAlternativeName::new()
            .dns(cn)
            .ip("127.0.0.1")
            .build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None))
            .unwrap();
        b.append_extension(san).unwrap();
    }
    b.sign(issuer.map_or(&key, |(_, k)| k), MessageDigest::sha256())
        .unwrap();
    (b.build(), key)
}

struct Pki {
    ca: X509,
    ca_key: PKey<Private>,
}

impl Pki {
    fn new() -> Self {
        let (ca, ca_key) = cert("Test CA", 1, true, None);
        Pki { ca, ca_key }
    }
    fn leaf(&self, cn: &str, serial: u32) -> Arc<CertKey> {
        let (c, k) = cert(cn, serial, false, Some((&self.ca, &self.ca_key)));
        Arc::new(CertKey::new(vec![c, self.ca.clone()], k).unwrap())
    }
    fn ca_pem(&self) -> Arc<Vec<u8>> {
        Arc::new(self.ca.to_pem().unwrap())
    }
}

/// A TLS echo server: handshakes every connection with `acceptor`, sends
/// the downstream digest's serial of the client cert (or `-`) and echoes.
async fn server(
    acceptor: TlsAcceptor,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Result<Arc<SslDigest>, String>>,
) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match acceptor.handshake(Box::new(s)).await {
                    Ok(mut tls) => {
                        let _ = tx.send(Ok(tls.ssl_digest().unwrap()));
                        let mut b = [0u8; 64];
                        while let Ok(n) = tls.read(&mut b).await {
                            if n == 0 || tls.write_all(&b[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn echo(s: &mut Stream) {
    s.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    tokio::time::timeout(WAIT, s.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"ping");
}

fn peer(addr: std::net::SocketAddr, sni: &str, pki: &Pki) -> HttpPeer {
    let mut p = HttpPeer::new(addr, true, sni.to_string());
    p.options.ca = Some(pki.ca_pem());
    p
}

#[tokio::test]
async fn verified_connection_has_digests_on_both_sides() {
    let pki = Pki::new();
    let settings = TlsSettings::with_cert(pki.leaf("origin.test", 7)).unwrap();
    let (addr, mut seen) = server(settings.build()).await;
    let c = TransportConnector::new(None);
    let mut s = c
        .new_stream(&peer(addr, "origin.test", &pki))
        .await
        .unwrap();
    echo(&mut s).await;
    let up = s.ssl_digest().unwrap();
    assert_eq!(up.version, "TLSv1.3");
    assert_eq!(up.alpn.as_deref(), Some("http/1.1"));
    assert_eq!(up.sni.as_deref(), Some("origin.test"));
    let server_cert = up.peer_cert.as_ref().unwrap();
    assert_eq!(server_cert.subject, "CN=origin.test");
    assert_eq!(server_cert.serial, "07");
    let down = seen.recv().await.unwrap().unwrap();
    assert_eq!(down.sni.as_deref(), Some("origin.test"));
    assert_eq!(down.cipher, up.cipher);
    assert!(down.peer_cert.is_none());
}

#[tokio::test]
async fn wrong_ca_and_wrong_name_fail_alternative_cn_passes() {
    let pki = Pki::new();
    let other = Pki::new();
    let settings = TlsSettings::with_cert(pki.leaf("origin.test", 7)).unwrap();
    let (addr, _seen) = server(settings.build()).await;
    let c = TransportConnector::new(None);

    let e = c
        .new_stream(&peer(addr, "origin.test", &other))
        .await
        .unwrap_err();
    assert_eq!(e.etype(), &ErrorType::TLSHandshakeFailure);
    assert!(e.to_string().contains("certificate"), "{e}");

    let e = c
        .new_stream(&peer(addr, "other.test", &pki))
        .await
        .unwrap_err();
    assert_eq!(e.etype(), &ErrorType::TLSHandshakeFailure);
    assert!(e.to_string().to_lowercase().contains("hostname"), "{e}");

    let mut p = peer(addr, "other.test", &pki);
    p.options.alternative_cn = Some("origin.test".into());
    let mut s = c.new_stream(&p).await.unwrap();
    echo(&mut s).await;

    let mut p = peer(addr, "other.test", &pki);
    p.options.verify_hostname = false;
    c.new_stream(&p).await.unwrap();

    // without `ca` and without system certs nothing is trusted
    let mut p = peer(addr, "origin.test", &pki);
    p.options.ca = None;
    p.options.use_system_certs = false;
    assert!(c.new_stream(&p).await.is_err());
    p.options.verify_cert = false;
    c.new_stream(&p).await.unwrap();
}

#[tokio::test]
async fn reconnect_resumes_the_session() {
    let pki = Pki::new();
    let settings = TlsSettings::with_cert(pki.leaf("origin.test", 7)).unwrap();
    let (addr, _seen) = server(settings.build()).await;
    let c = TransportConnector::new(None);
    let p = peer(addr, "origin.test", &pki);
    let mut first = c.new_stream(&p).await.unwrap();
    // TLS 1.3 tickets arrive after the handshake: read once to take them in
    echo(&mut first).await;
    assert!(!first.ssl_digest().unwrap().session_reused);
    let mut second = c.new_stream(&p).await.unwrap();
    echo(&mut second).await;
    assert!(second.ssl_digest().unwrap().session_reused);
    // a peer with other TLS settings does not get that session
    let mut p2 = p.clone();
    p2.options.alternative_cn = Some("x.test".into());
    assert_ne!(p.reuse_hash(), p2.reuse_hash());
    let third = c.new_stream(&p2).await.unwrap();
    assert!(!third.ssl_digest().unwrap().session_reused);
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_signed_by_the_ca() {
    let pki = Pki::new();
    let clients = Pki::new();
    let dir = std::env::temp_dir().join(format!("proxy-core-mtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("clients-ca.pem");
    std::fs::write(&ca_file, clients.ca.to_pem().unwrap()).unwrap();
    let mut settings = TlsSettings::with_cert(pki.leaf("origin.test", 7)).unwrap();
    settings.require_client_cert(&ca_file).unwrap();
    let (addr, mut seen) = server(settings.build()).await;
    let c = TransportConnector::new(None);

    // no client certificate: refused (TLS 1.3 reports it on the first read)
    let refused = async {
        let mut s = c.new_stream(&peer(addr, "origin.test", &pki)).await?;
        s.write_all(b"ping")
            .await
            .map_err(|e| Error::because(ErrorType::WriteError, "w", e))?;
        let mut b = [0u8; 4];
        s.read_exact(&mut b)
            .await
            .map_err(|e| Error::because(ErrorType::ReadError, "r", e))?;
        Ok::<_, Box<Error>>(())
    }
    .await;
    assert!(refused.is_err());
    let e = seen.recv().await.unwrap().unwrap_err();
    assert!(e.contains("TLS handshake"), "{e}");

    // a certificate from another CA: refused
    let p = HttpPeer::new_mtls(addr, "origin.test".into(), pki.leaf("client", 9));
    let mut p = p;
    p.options.ca = Some(pki.ca_pem());
    let _ = c
        .new_stream(&p)
        .await
        .map(|mut s| async move { s.write_all(b"x").await });
    assert!(seen.recv().await.unwrap().is_err());

    // a certificate from the client CA: accepted, its facts in the digest
    let mut p = HttpPeer::new_mtls(addr, "origin.test".into(), clients.leaf("client-a", 0x2a));
    p.options.ca = Some(pki.ca_pem());
    let mut s = c.new_stream(&p).await.unwrap();
    echo(&mut s).await;
    let d = seen.recv().await.unwrap().unwrap();
    let cc = d.peer_cert.as_ref().unwrap();
    assert_eq!(cc.subject, "CN=client-a");
    assert_eq!(cc.serial, "2A");
    assert!(cc.san.contains(&"DNS:client-a".to_string()));
}

struct BySni {
    a: Arc<CertKey>,
}

#[async_trait]
impl TlsAccept for BySni {
    async fn certificate_callback(&self, sni: Option<&str>) -> Option<Arc<CertKey>> {
        tokio::task::yield_now().await; // a real await inside the handshake
        (sni == Some("a.test")).then(|| self.a.clone())
    }
}

#[tokio::test]
async fn sni_callback_picks_the_certificate_and_falls_back_to_default() {
    let pki = Pki::new();
    let mut settings = TlsSettings::with_callbacks(Box::new(BySni {
        a: pki.leaf("a.test", 0xa),
    }))
    .unwrap();
    let reloader = settings.reloader();
    settings.set_handshake_timeout(WAIT);
    let (addr, _seen) = server(settings.build()).await;
    let c = TransportConnector::new(None);

    let s = c.new_stream(&peer(addr, "a.test", &pki)).await.unwrap();
    assert_eq!(
        s.ssl_digest().unwrap().peer_cert.as_ref().unwrap().serial,
        "0A"
    );
    // no certificate for b.test and no default: the handshake fails
    assert!(c.new_stream(&peer(addr, "b.test", &pki)).await.is_err());
    reloader.set(pki.leaf("b.test", 0xb));
    let s = c.new_stream(&peer(addr, "b.test", &pki)).await.unwrap();
    assert_eq!(
        s.ssl_digest().unwrap().peer_cert.as_ref().unwrap().serial,
        "0B"
    );
}

#[tokio::test]
async fn reload_serves_new_handshakes_and_keeps_live_connections() {
    let pki = Pki::new();
    let dir = std::env::temp_dir().join(format!("proxy-core-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cf, kf) = (dir.join("c.pem"), dir.join("k.pem"));
    let write = |ck: &CertKey| {
        let mut pem = Vec::new();
        for c in ck.chain() {
            pem.extend(c.to_pem().unwrap());
        }
        std::fs::write(&cf, pem).unwrap();
        std::fs::write(&kf, ck.key().private_key_to_pem_pkcs8().unwrap()).unwrap();
    };
    write(&pki.leaf("origin.test", 1));
    let settings = TlsSettings::intermediate(&cf, &kf).unwrap();
    let reloader = settings.reloader();
    let (addr, _seen) = server(settings.build()).await;
    let c = TransportConnector::new(None);
    let mut p = peer(addr, "origin.test", &pki);
    p.options.idle_timeout = Some(Duration::ZERO);
    let mut old = c.new_stream(&p).await.unwrap();
    assert_eq!(
        old.ssl_digest().unwrap().peer_cert.as_ref().unwrap().serial,
        "01"
    );

    // a broken file is refused and the old certificate stays
    std::fs::write(&kf, b"garbage").unwrap();
    let e = reloader.reload().unwrap_err();
    assert!(e.to_string().contains("k.pem"), "{e}");

    write(&pki.leaf("origin.test", 2));
    assert_eq!(reloader.reload().unwrap().serial, "02");
    // a different group key: no session resumption, a full handshake
    p.group_key = 1;
    let new = c.new_stream(&p).await.unwrap();
    assert_eq!(
        new.ssl_digest().unwrap().peer_cert.as_ref().unwrap().serial,
        "02"
    );
    echo(&mut old).await;
}

#[test]
fn intermediate_names_the_missing_file() {
    let e = TlsSettings::intermediate("/nonexistent/cert.pem", "/nonexistent/key.pem").unwrap_err();
    assert_eq!(e.etype(), &ErrorType::FileReadError);
    assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
}

#[tokio::test]
async fn silent_client_times_out_the_downstream_handshake() {
    let pki = Pki::new();
    let mut settings = TlsSettings::with_cert(pki.leaf("origin.test", 7)).unwrap();
    settings.set_handshake_timeout(Duration::from_millis(100));
    let (addr, mut seen) = server(settings.build()).await;
    let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let e = tokio::time::timeout(WAIT, seen.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(e.contains("TLSHandshakeTimedout"), "{e}");
}

/// One TLS connection over loopback: our acceptor (certificate for
/// `origin.test`) runs `serve` on the connection it accepts, its transport
/// first passed through `wrap`; returns our connector's stream to it and
/// `serve`'s task.
async fn one_connection<T, F>(
    wrap: fn(tokio::net::TcpStream) -> Stream,
    serve: impl FnOnce(Stream) -> F + Send + 'static,
) -> (Stream, tokio::task::JoinHandle<T>)
where
    F: std::future::Future<Output = T> + Send,
    T: Send + 'static,
{
    let pki = Pki::new();
    let acceptor = TlsSettings::with_cert(pki.leaf("origin.test", 7))
        .unwrap()
        .build();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        serve(acceptor.handshake(wrap(tcp)).await.unwrap()).await
    });
    let s = TransportConnector::new(None)
        .new_stream(&peer(addr, "origin.test", &pki))
        .await
        .unwrap();
    (s, server)
}

/// Everything `s` yields up to its end, within [`WAIT`].
async fn read_to_end(s: &mut Stream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    got
}

fn plain(tcp: tokio::net::TcpStream) -> Stream {
    Box::new(tcp)
}

#[tokio::test]
async fn vectored_writes_pack_small_pieces_into_one_record_and_keep_the_bytes() {
    use bytes::Buf;
    use std::io::IoSlice;
    let head = vec![b'h'; 300];
    let small = vec![b's'; 1000];
    let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let (h, sm, b) = (head.clone(), small.clone(), big.clone());
    let (mut s, writer) = one_connection(plain, |mut tls| async move {
        assert!(tls.is_write_vectored());
        // partial writes are on: one call writes one record, so a count of
        // both pieces means they went out as one
        let n = tls
            .write_vectored(&[IoSlice::new(&h), IoSlice::new(&sm)])
            .await
            .unwrap();
        let mut rest = Buf::chain(&h[n.min(h.len())..], &sm[n.saturating_sub(h.len())..]);
        tls.write_all_buf(&mut rest).await.unwrap();
        // a record's worth at most per call, the rest in later ones
        let mut chain = Buf::chain(&h[..], &b[..]);
        tls.write_all_buf(&mut chain).await.unwrap();
        tls.shutdown().await.unwrap();
        n
    })
    .await;
    let got = read_to_end(&mut s).await;
    let first_write = writer.await.unwrap();
    assert_eq!(first_write, head.len() + small.len());
    let want: Vec<u8> = [&head[..], &small[..], &head[..], &big[..]].concat();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the bytes read differ from the bytes written");
}

#[tokio::test]
async fn small_reads_drain_a_record_then_wait_for_the_next() {
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    // one small record: the read-ahead's first read gets all of it, so the
    // socket is found empty while most of it still waits, decrypted, in
    // BoringSSL
    let record: Vec<u8> = (0..1_000u32).map(|i| (i % 251) as u8).collect();
    let sent = record.clone();
    let (mut s, writer) = one_connection(plain, |mut tls| async move {
        tls.write_all(&sent).await.unwrap();
        go_rx.await.unwrap();
        tls.write_all(b"later").await.unwrap();
        tls.shutdown().await.unwrap();
    })
    .await;
    // 100 bytes at a time
    let mut got = Vec::new();
    let mut piece = [0u8; 100];
    while got.len() < record.len() {
        let n = tokio::time::timeout(WAIT, s.read(&mut piece))
            .await
            .expect("a decrypted record's bytes are readable without the socket")
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&piece[..n]);
        if got.len() < record.len() {
            let ready = std::future::poll_fn(|cx| Poll::Ready(s.poll_read_ready(cx))).await;
            assert!(ready.is_ready(), "bytes left in the record: ready");
        }
    }
    assert!(got == record);
    // nothing decrypted, nothing sent: a read waits, and once it has found
    // the socket empty the stream is not ready
    assert!(
        tokio::time::timeout(Duration::from_millis(50), s.read(&mut piece))
            .await
            .is_err()
    );
    let ready = std::future::poll_fn(|cx| Poll::Ready(s.poll_read_ready(cx))).await;
    assert!(ready.is_pending());
    // ...and wakes when the next record comes
    go_tx.send(()).unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rest, b"later");
    writer.await.unwrap();
}

/// A transport whose shutdown sends no FIN: a peer that has sent
/// `close_notify` but keeps the TCP connection open.
#[derive(Debug)]
struct NoFin(tokio::net::TcpStream);

impl tokio::io::AsyncRead for NoFin {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for NoFin {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl crate::protocols::IO for NoFin {}

#[tokio::test]
async fn the_end_of_the_stream_is_read_again_at_once_after_close_notify() {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let no_fin = |tcp| -> Stream { Box::new(NoFin(tcp)) };
    let (mut s, server) = one_connection(no_fin, |mut tls| async move {
        tls.write_all(b"bye").await.unwrap();
        tls.shutdown().await.unwrap();
        // the TCP connection stays open until the client is done
        let _ = done_rx.await;
    })
    .await;
    let got = read_to_end(&mut s).await;
    assert_eq!(got, b"bye");
    // no FIN has come: the end is known from close_notify alone
    let n = tokio::time::timeout(Duration::from_secs(1), s.read(&mut [0u8; 16]))
        .await
        .expect("a read after close_notify returns at once")
        .unwrap();
    assert_eq!(n, 0);
    let ready = std::future::poll_fn(|cx| Poll::Ready(s.poll_read_ready(cx))).await;
    assert!(ready.is_ready());
    // an empty read never waits
    let n = tokio::time::timeout(Duration::from_secs(1), s.read(&mut []))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);
    done_tx.send(()).unwrap();
    server.await.unwrap();
}
