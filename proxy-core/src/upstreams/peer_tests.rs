//! Tests of `peer.rs`.

#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn new_accepts_every_address_form() {
    let want: std::net::SocketAddr = "127.0.0.1:8000".parse().unwrap();
    let forms = [
        HttpPeer::new("127.0.0.1:8000", false, String::new()),
        HttpPeer::new(String::from("127.0.0.1:8000"), false, String::new()),
        HttpPeer::new(("127.0.0.1", 8000), false, String::new()),
        HttpPeer::new((String::from("127.0.0.1"), 8000), false, String::new()),
        HttpPeer::new(want, false, String::new()),
        HttpPeer::new((IpAddr::from([127, 0, 0, 1]), 8000), false, String::new()),
        HttpPeer::new((Ipv4Addr::LOCALHOST, 8000), false, String::new()),
    ];
    for peer in forms {
        assert_eq!(peer.address(), &SocketAddr::Inet(want));
    }
}

#[test]
fn try_new_with_bad_address_names_it() {
    let e = HttpPeer::try_new("not an address", false, String::new()).unwrap_err();
    assert_eq!(e.etype(), &ErrorType::ConnectError);
    assert!(e.to_string().contains("'not an address'"), "{e}");
}

#[test]
#[should_panic(expected = "'nope'")]
fn new_with_bad_address_panics_naming_it() {
    let _ = HttpPeer::new("nope", false, String::new());
}

#[test]
fn display_shows_address_scheme_and_sni() {
    let peer = HttpPeer::new(("127.0.0.1", 8000), false, String::new());
    assert_eq!(peer.to_string(), "addr: 127.0.0.1:8000, scheme: HTTP");
    let peer = HttpPeer::new(("127.0.0.1", 443), true, "example.com".into());
    assert_eq!(
        peer.to_string(),
        "addr: 127.0.0.1:443, scheme: HTTPS, sni: example.com"
    );
}

#[test]
fn options_default_to_pingora_values() {
    let o = PeerOptions::new();
    assert_eq!(o.connection_timeout, None);
    assert_eq!(o.total_connection_timeout, None);
    assert_eq!(o.read_timeout, None);
    assert_eq!(o.write_timeout, None);
    assert_eq!(o.idle_timeout, None);
    assert!(o.verify_cert);
    assert!(o.verify_hostname);
    assert_eq!(o.alpn, ALPN::H1);
    assert_eq!(o.max_h2_streams, 1);
    assert!(o.extra_proxy_headers.is_empty());
    assert_eq!(o, PeerOptions::default());
}

#[test]
fn getters_read_the_options() {
    let mut peer = HttpPeer::new(("127.0.0.1", 80), false, String::new());
    peer.options.connection_timeout = Some(Duration::from_millis(100));
    peer.options.total_connection_timeout = Some(Duration::from_secs(1));
    peer.options.idle_timeout = Some(Duration::from_secs(60));
    peer.options.read_timeout = Some(Duration::from_secs(2));
    peer.options.write_timeout = Some(Duration::from_secs(3));
    assert_eq!(peer.connection_timeout(), Some(Duration::from_millis(100)));
    assert_eq!(
        peer.total_connection_timeout(),
        Some(Duration::from_secs(1))
    );
    assert_eq!(peer.idle_timeout(), Some(Duration::from_secs(60)));
    assert_eq!(peer.read_timeout(), Some(Duration::from_secs(2)));
    assert_eq!(peer.write_timeout(), Some(Duration::from_secs(3)));
    peer.get_mut_peer_options().unwrap().verify_cert = false;
    assert!(!peer.verify_cert());
}

#[test]
fn reuse_hash_equal_for_interchangeable_peers() {
    let a = HttpPeer::new(("127.0.0.1", 80), false, String::new());
    let mut b = HttpPeer::new("127.0.0.1:80", false, String::new());
    // timeouts do not make connections different
    b.options.read_timeout = Some(Duration::from_secs(1));
    assert_eq!(a.reuse_hash(), b.reuse_hash());
    // nor do TLS settings and SNI on a plain connection
    let mut c = HttpPeer::new(("127.0.0.1", 80), false, "a.example".into());
    c.options.verify_cert = false;
    c.options.min_tls_version = Some(TlsVersion::Tls13);
    assert_eq!(a.reuse_hash(), c.reuse_hash());
}

#[test]
fn reuse_hash_differs_by_anything_that_changes_the_connection() {
    let base = HttpPeer::new(("127.0.0.1", 443), true, "a.example".into());
    let h = base.reuse_hash();
    let (cert, key) = crate::tls::cert::tests::self_signed("client.example", 1);
    let variants: Vec<HttpPeer> = vec![
        HttpPeer::new(("127.0.0.1", 444), true, "a.example".into()),
        HttpPeer::new(("127.0.0.1", 443), false, "a.example".into()),
        HttpPeer::new(("127.0.0.1", 443), true, "b.example".into()),
        {
            let mut p = base.clone();
            p.group_key = 7;
            p
        },
        {
            let mut p = base.clone();
            p.options.verify_cert = false;
            p
        },
        {
            let mut p = base.clone();
            p.options.verify_hostname = false;
            p
        },
        {
            let mut p = base.clone();
            p.options.alternative_cn = Some("c.example".into());
            p
        },
        {
            let mut p = base.clone();
            p.options.set_http_version(2, 1);
            p
        },
        {
            let mut p = base.clone();
            p.options.max_h2_streams = 10;
            p
        },
        {
            let mut p = base.clone();
            p.options.ca = Some(Arc::new(b"-----BEGIN CERTIFICATE-----".to_vec()));
            p
        },
        {
            let mut p = base.clone();
            p.options.use_system_certs = false;
            p
        },
        {
            let mut p = base.clone();
            p.options.min_tls_version = Some(TlsVersion::Tls13);
            p
        },
        {
            let mut p = base.clone();
            p.options.max_tls_version = Some(TlsVersion::Tls12);
            p
        },
        {
            let mut p = base.clone();
            p.client_cert_key = Some(Arc::new(crate::tls::CertKey::new(vec![cert], key).unwrap()));
            p
        },
    ];
    for v in variants {
        assert_ne!(v.reuse_hash(), h, "{v} {:?}", v.options);
    }
}

#[test]
fn new_uds_checks_the_path() {
    let peer = HttpPeer::new_uds("/tmp/upstream.sock", false, String::new()).unwrap();
    assert_eq!(
        peer.address(),
        &SocketAddr::Unix(Some(PathBuf::from("/tmp/upstream.sock")))
    );
    assert_eq!(
        peer.to_string(),
        "addr: unix:/tmp/upstream.sock, scheme: HTTP"
    );
    assert!(HttpPeer::new_uds("", false, String::new()).is_err());
    let long = "/".repeat(200);
    let e = HttpPeer::new_uds(&long, false, String::new()).unwrap_err();
    assert_eq!(e.etype(), &ErrorType::ConnectError);
}

#[test]
fn alpn_versions_round_trip() {
    for alpn in [ALPN::H1, ALPN::H2, ALPN::H2H1] {
        assert_eq!(
            ALPN::new(alpn.get_max_http_version(), alpn.get_min_http_version()),
            alpn
        );
    }
    assert_eq!(ALPN::new(1, 2), ALPN::H1);
}

#[test]
fn basic_peer_is_plaintext() {
    let peer = BasicPeer::new("127.0.0.1:9");
    assert!(!peer.tls());
    assert_eq!(peer.to_string(), "addr: 127.0.0.1:9");
    assert!(BasicPeer::try_new("bad").is_err());
}
