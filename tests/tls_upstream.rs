//! Part 4 proxying to nginx over TLS (a CA made in the test): verified by
//! `upstream_ca`, refused (502) for a wrong CA and for a wrong host name,
//! accepted again with `upstream_alternative_cn`.

#![allow(clippy::unwrap_used)]

mod support;

use support::tls::{NginxTls, Pki};
use support::{curl, Proxy};

const BIN: &str = env!("CARGO_BIN_EXE_part-04-tls");

/// Status and body of a GET through `proxy`'s plain listener.
fn get(proxy: &Proxy) -> (String, String) {
    let out = curl(&["-w", "\n%{http_code}", &proxy.url("/")]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_owned(), body.to_owned())
}

fn proxy_to(nginx: &NginxTls, extra: &str) -> Proxy {
    // the TLS listener is not under test here: park it on a free port
    let tls_listen = format!("127.0.0.1:{}", support::free_port());
    Proxy::start(
        BIN,
        &[nginx.addr()],
        &format!("tls_listen: \"{tls_listen}\"\nupstream_tls: true\n{extra}"),
    )
}

#[test]
fn nginx_over_tls_verified_by_ca_and_refused_for_wrong_ca_or_name() {
    let pki = Pki::new("origin-ca");
    let leaf = pki.issue("origin.test", "DNS:origin.test", "0123");
    let nginx = NginxTls::start(&leaf);
    let ca = pki.ca();
    let wrong_pki = Pki::new("wrong-ca");
    let wrong_ca = wrong_pki.ca();

    // the right CA and the name on the certificate: served
    let p = proxy_to(
        &nginx,
        &format!(
            "upstream_sni: origin.test\nupstream_ca: \"{}\"\n",
            ca.display()
        ),
    );
    assert_eq!(get(&p), ("200".to_owned(), "nginx over tls\n".to_owned()));
    let n = p.wait_for_stderr(1, |s| s.matches("upstream=TLSv1.3").count());
    assert!(n >= 1, "{}", p.stderr());

    // a CA that did not sign it: 502, never a plaintext fallback
    let p = proxy_to(
        &nginx,
        &format!(
            "upstream_sni: origin.test\nupstream_ca: \"{}\"\n",
            wrong_ca.display()
        ),
    );
    assert_eq!(get(&p).0, "502");
    let n = p.wait_for_stderr(1, |s| s.matches("TLSHandshakeFailure").count());
    assert!(n >= 1, "{}", p.stderr());

    // the system store does not know the test CA either
    let p = proxy_to(&nginx, "upstream_sni: origin.test\n");
    assert_eq!(get(&p).0, "502");

    // the right CA but another name: 502
    let p = proxy_to(
        &nginx,
        &format!(
            "upstream_sni: wrong.test\nupstream_ca: \"{}\"\n",
            ca.display()
        ),
    );
    assert_eq!(get(&p).0, "502");
    let n = p.wait_for_stderr(1, |s| s.matches("ostname").count());
    assert!(n >= 1, "{}", p.stderr());

    // ... accepted when the certificate's name is the alternative CN
    let p = proxy_to(
        &nginx,
        &format!(
            "upstream_sni: wrong.test\nupstream_alternative_cn: origin.test\nupstream_ca: \"{}\"\n",
            ca.display()
        ),
    );
    assert_eq!(get(&p).0, "200");
}
