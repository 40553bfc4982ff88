//! Part 4 over TLS with real clients: curl --http1.1 over HTTPS with a
//! certificate from the conf (verified against its CA), the self-signed
//! certificate made when none is configured, mTLS, and the startup errors
//! that name the faulty file.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::process::Command;

use support::tls::{presented_cert, wait_listening, Pki};
use support::{curl, free_port, Proxy, TestOrigin};

const BIN: &str = env!("CARGO_BIN_EXE_part-04-tls");

/// Part 4 with `extra` conf lines and a TLS listener on a free port.
fn start(origin: &TestOrigin, extra: &str) -> (Proxy, SocketAddr) {
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let proxy = Proxy::start(
        BIN,
        &[origin.addr()],
        &format!("tls_listen: \"{tls_addr}\"\n{extra}"),
    );
    wait_listening(tls_addr);
    (proxy, tls_addr)
}

#[test]
fn curl_http11_over_tls_with_the_confs_certificate_verified_by_its_ca() {
    let origin = TestOrigin::start();
    let pki = Pki::new("part4-ca");
    let leaf = pki.issue("localhost", "DNS:localhost,IP:127.0.0.1", "4A11");
    let (proxy, tls) = start(
        &origin,
        &format!(
            "tls_cert: \"{}\"\ntls_key: \"{}\"\n",
            leaf.cert.display(),
            leaf.key.display()
        ),
    );
    let url = format!("https://localhost:{}/", tls.port());
    let resolve = format!("localhost:{}:127.0.0.1", tls.port());
    let ca = pki.ca();
    let out = curl(&[
        "--http1.1",
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-w",
        "\n%{http_version} %{http_code} %{ssl_verify_result}",
        &url,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl failed: {out:?}");
    assert!(
        text.starts_with("hello from the test origin"),
        "body: {text}"
    );
    assert!(text.ends_with("\n1.1 200 0"), "{text}");
    // the chain from the conf is what the server presents
    let seen = presented_cert(tls, "localhost");
    assert_eq!(seen.serial, "4A11");
    assert_eq!(seen.protocol, "TLSv1.3");
    // the logging phase saw the TLS facts, with the SNI curl sent
    let n = proxy.wait_for_stderr(1, |s| {
        s.matches("TLSv1.3")
            .filter(|_| s.contains("sni=localhost"))
            .count()
    });
    assert!(n >= 1, "{}", proxy.stderr());
    // TLS 1.1 is refused (Mozilla intermediate: 1.2 and 1.3 only)
    let out = curl(&[
        "-k",
        "--tlsv1.1",
        "--tls-max",
        "1.1",
        &url,
        "--resolve",
        &resolve,
    ]);
    assert!(!out.status.success(), "TLS 1.1 was accepted");
    // the plain listener still answers
    let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", &proxy.url("/")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}

#[test]
fn without_a_certificate_a_self_signed_one_for_localhost_is_made_and_logged() {
    let origin = TestOrigin::start();
    let (proxy, tls) = start(&origin, "");
    assert!(
        proxy
            .stderr()
            .contains("generated a self-signed certificate for localhost"),
        "{}",
        proxy.stderr()
    );
    let url = format!("https://{tls}/");
    let out = curl(&[
        "-k",
        "--http1.1",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    // curl without -k refuses it: it is self-signed
    let out = curl(&["--http1.1", &url]);
    assert!(!out.status.success());
    // the logged serial is the one served
    let seen = presented_cert(tls, "localhost");
    assert!(
        proxy.stderr().contains(&format!("serial {}", seen.serial)),
        "served {seen:?}; log:\n{}",
        proxy.stderr()
    );
}

#[test]
fn mtls_refuses_a_client_without_a_certificate_and_serves_one_with() {
    let origin = TestOrigin::start();
    let server_pki = Pki::new("server-ca");
    let leaf = server_pki.issue("localhost", "DNS:localhost,IP:127.0.0.1", "51");
    let client_pki = Pki::new("client-ca");
    let client = client_pki.issue("client-a", "DNS:client-a.test", "C1");
    let other_pki = Pki::new("other-ca");
    let stranger = other_pki.issue("client-b", "DNS:client-b.test", "C2");
    let (proxy, tls) = start(
        &origin,
        &format!(
            "tls_cert: \"{}\"\ntls_key: \"{}\"\ntls_client_ca: \"{}\"\n",
            leaf.cert.display(),
            leaf.key.display(),
            client_pki.ca().display()
        ),
    );
    let url = format!("https://{tls}/");
    let ca = server_pki.ca();
    let base = [
        "--http1.1",
        "--cacert",
        ca.to_str().unwrap(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ];

    let out = curl(&[&base[..], &[url.as_str()]].concat());
    assert!(
        !out.status.success(),
        "served without a client certificate: {out:?}"
    );

    let (c, k) = (
        stranger.cert.to_str().unwrap(),
        stranger.key.to_str().unwrap(),
    );
    let out = curl(&[&base[..], &["--cert", c, "--key", k, url.as_str()]].concat());
    assert!(
        !out.status.success(),
        "served a certificate from another CA: {out:?}"
    );

    let (c, k) = (client.cert.to_str().unwrap(), client.key.to_str().unwrap());
    let out = curl(&[&base[..], &["--cert", c, "--key", k, url.as_str()]].concat());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
    let n = proxy.wait_for_stderr(1, |s| {
        s.matches("client_cert=CN=client-a serial=C1").count()
    });
    assert_eq!(n, 1, "{}", proxy.stderr());
}

/// Runs part 4 with `-t` and the given TLS keys; its exit code and stderr.
fn check(extra: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf.yaml");
    std::fs::write(
        &conf,
        format!("---\nversion: 1\nupstreams: [\"127.0.0.1:9\"]\n{extra}"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["-t", "-c", conf.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_certificate_or_key_stops_startup_naming_the_file() {
    let pki = Pki::new("check-ca");
    let a = pki.issue("localhost", "DNS:localhost", "A1");
    let b = pki.issue("localhost", "DNS:localhost", "B2");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let missing = dir.path().join("missing.pem");
    let keys = |c: &std::path::Path, k: &std::path::Path| {
        format!(
            "tls_cert: \"{}\"\ntls_key: \"{}\"\n",
            c.display(),
            k.display()
        )
    };

    let (code, err) = check(&keys(&a.cert, &a.key));
    assert_eq!(code, Some(0), "{err}");

    for (c, k, names, says) in [
        (&missing, &a.key, &missing, "cannot read"),
        (&a.cert, &missing, &missing, "cannot read"),
        (&junk, &a.key, &junk, "certificate"),
        (&a.cert, &junk, &junk, "private key"),
        (&a.cert, &b.key, &b.key, "does not match"),
    ] {
        let (code, err) = check(&keys(c, k));
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains(names.to_str().unwrap()) && err.contains(says),
            "expected {says:?} naming {}: {err}",
            names.display()
        );
    }
}

#[test]
fn sighup_reloads_the_certificate_files_for_new_handshakes() {
    let origin = TestOrigin::start();
    let pki = Pki::new("hup-ca");
    let first = pki.issue("localhost", "DNS:localhost,IP:127.0.0.1", "0F1F");
    let second = pki.issue("localhost", "DNS:localhost,IP:127.0.0.1", "0F2F");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(&first.cert, &cert).unwrap();
    std::fs::copy(&first.key, &key).unwrap();
    let (proxy, tls) = start(
        &origin,
        &format!(
            "tls_cert: \"{}\"\ntls_key: \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    assert_eq!(presented_cert(tls, "localhost").serial, "0F1F");
    // before its handler is installed, SIGHUP would end the process
    let n = proxy.wait_for_stderr(1, |s| {
        s.matches("SIGHUP reloads the certificate files").count()
    });
    assert_eq!(n, 1, "{}", proxy.stderr());

    // broken files: refused, logged, the old certificate stays
    std::fs::write(&key, "garbage").unwrap();
    proxy.signal("HUP");
    let n = proxy.wait_for_stderr(1, |s| s.matches("certificate not reloaded").count());
    assert_eq!(n, 1, "{}", proxy.stderr());
    assert_eq!(presented_cert(tls, "localhost").serial, "0F1F");

    std::fs::copy(&second.cert, &cert).unwrap();
    std::fs::copy(&second.key, &key).unwrap();
    proxy.signal("HUP");
    let n = proxy.wait_for_stderr(1, |s| {
        s.matches("certificate reloaded, serial 0F2F").count()
    });
    assert_eq!(n, 1, "{}", proxy.stderr());
    assert_eq!(presented_cert(tls, "localhost").serial, "0F2F");
    // still serving
    let out = curl(&[
        "-k",
        "--http1.1",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("https://{tls}/"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}
