//! A self-signed certificate made at startup, so part 4 serves HTTPS with
//! nothing to set up.

use proxy_facade::tls::boring::asn1::Asn1Time;
use proxy_facade::tls::boring::bn::{BigNum, MsbOption};
use proxy_facade::tls::boring::ec::{EcGroup, EcKey};
use proxy_facade::tls::boring::error::ErrorStack;
use proxy_facade::tls::boring::hash::MessageDigest;
use proxy_facade::tls::boring::nid::Nid;
use proxy_facade::tls::boring::pkey::PKey;
use proxy_facade::tls::boring::x509::extension::SubjectAlternativeName;
use proxy_facade::tls::boring::x509::{X509NameBuilder, X509};
use proxy_facade::tls::CertKey;
use proxy_facade::{Error, ErrorType, Result};

/// How long the generated certificate is valid, in days.
pub const VALID_DAYS: u32 = 30;

/// A fresh ECDSA P-256 key and a self-signed certificate for `localhost`
/// (SAN `DNS:localhost`, `IP:127.0.0.1`, `IP:::1`), valid [`VALID_DAYS`]
/// days, with a random 64-bit serial.
///
/// # Errors
/// `InternalError` with BoringSSL's reason if a step fails (it should not).
pub fn localhost() -> Result<CertKey> {
    let (cert, key) = build().map_err(|e| {
        Error::explain(
            ErrorType::InternalError,
            format!("self-signed certificate: {e}"),
        )
    })?;
    CertKey::new(vec![cert], key)
}

fn build() -> Result<(X509, PKey<proxy_facade::tls::boring::pkey::Private>), ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "localhost")?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    let (from, until) = (
        Asn1Time::days_from_now(0)?,
        Asn1Time::days_from_now(VALID_DAYS)?,
    );
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .ip("::1")
        .build(&b.x509v3_context(None, None))?;
    b.append_extension(san)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((b.build(), key))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_localhost_and_differs_each_time() {
        let a = localhost().unwrap();
        let b = localhost().unwrap();
        let s = a.summary();
        assert_eq!(s.subject, "CN=localhost");
        assert_eq!(s.san, ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]);
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
