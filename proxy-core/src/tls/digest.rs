//! What a finished TLS handshake tells: version, cipher, ALPN, SNI, peer certificate.

use boring::hash::MessageDigest;
use boring::ssl::{NameType, SslRef};
use boring::x509::X509Ref;

/// The facts of one TLS handshake, taken once when it finishes.
///
/// On a downstream connection `peer_cert` is the client certificate (mTLS,
/// verified against the listener's CA) and `sni` the name the client asked
/// for; on an upstream connection `peer_cert` is the server's certificate and
/// `sni` the name the proxy sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslDigest {
    /// The protocol version, as BoringSSL names it: `TLSv1.2`, `TLSv1.3`.
    pub version: &'static str,
    /// The cipher suite's standard (IANA) name, e.g. `TLS_AES_128_GCM_SHA256`.
    pub cipher: &'static str,
    /// The protocol agreed by ALPN (RFC 7301), e.g. `http/1.1`; `None` when none was.
    pub alpn: Option<String>,
    /// The server name indication (RFC 6066 §3), when one was sent.
    pub sni: Option<String>,
    /// The peer's leaf certificate, when it presented one.
    pub peer_cert: Option<CertSummary>,
    /// Whether the handshake resumed an earlier session (RFC 8446 §2.2).
    pub session_reused: bool,
}

impl SslDigest {
    /// Read the digest of a connection whose handshake has finished.
    pub fn from_ssl(ssl: &SslRef) -> Self {
        SslDigest {
            version: ssl.version_str(),
            cipher: ssl
                .current_cipher()
                .and_then(|c| c.standard_name())
                .unwrap_or("unknown"),
            alpn: ssl
                .selected_alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            sni: ssl.servername(NameType::HOST_NAME).map(str::to_string),
            peer_cert: ssl.peer_certificate().map(|c| CertSummary::from_x509(&c)),
            session_reused: ssl.session_reused(),
        }
    }

    /// The negotiated ALPN is HTTP/2 (`h2`).
    pub fn is_h2(&self) -> bool {
        self.alpn.as_deref() == Some("h2")
    }
}

/// The identifying facts of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject's distinguished name, entries in certificate order as
    /// `SHORTNAME=value` joined by `, ` (e.g. `C=US, O=Example, CN=client`).
    pub subject: String,
    /// The subject alternative names (RFC 5280 §4.2.1.6), each prefixed by its
    /// kind: `DNS:a.example`, `IP:127.0.0.1`, `email:x@y`, `URI:spiffe://...`.
    pub san: Vec<String>,
    /// The serial number in upper-case hex, whole bytes (as `openssl x509 -serial` prints it).
    pub serial: String,
    /// The SHA-256 of the DER certificate, in lower-case hex (64 characters).
    pub sha256: String,
}

impl CertSummary {
    /// Summarise `cert`. Fields BoringSSL cannot decode are left empty.
    pub fn from_x509(cert: &X509Ref) -> Self {
        let subject = cert
            .subject_name()
            .entries()
            .filter_map(|e| {
                let key = e.object().nid().short_name().ok()?;
                let value = e.data().as_utf8().ok()?;
                Some(format!("{key}={value}"))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let san = cert
            .subject_alt_names()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| {
                        if let Some(d) = n.dnsname() {
                            Some(format!("DNS:{d}"))
                        } else if let Some(ip) = n.ipaddress() {
                            ip_string(ip).map(|ip| format!("IP:{ip}"))
                        } else if let Some(e) = n.email() {
                            Some(format!("email:{e}"))
                        } else {
                            n.uri().map(|u| format!("URI:{u}"))
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let serial = cert
            .serial_number()
            .to_bn()
            .ok()
            .and_then(|bn| bn.to_hex_str().ok().map(|s| s.to_uppercase()))
            .unwrap_or_default();
        let sha256 = cert
            .digest(MessageDigest::sha256())
            .map(|d| hex(&d))
            .unwrap_or_default();
        CertSummary {
            subject,
            san,
            serial,
            sha256,
        }
    }
}

/// An IPv4 (4 bytes) or IPv6 (16 bytes) address as text.
fn ip_string(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // writing to a String cannot fail
        let _ = write!(s, "{b:02x}");
    }
    s
}
