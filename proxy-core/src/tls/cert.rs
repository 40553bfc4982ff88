//! A certificate chain and its private key, from PEM.

use std::path::Path;

use boring::pkey::{PKey, Private};
use boring::ssl::SslRef;
use boring::x509::X509;

use crate::error::{Error, ErrorType, OrErr, Result};
use crate::tls::{describe, CertSummary};

/// A certificate chain (leaf first, then intermediates) and the leaf's private key.
///
/// Cheap to share behind an `Arc`; a listener hands the same `CertKey` to
/// every handshake that uses it.
#[derive(Clone)]
pub struct CertKey {
    chain: Vec<X509>,
    key: PKey<Private>,
    /// SHA-256 of the leaf's DER: identifies the pair in pool keys.
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let leaf = CertSummary::from_x509(self.leaf());
        f.debug_struct("CertKey")
            .field("leaf", &leaf.subject)
            .field("serial", &leaf.serial)
            .field("chain_len", &self.chain.len())
            .finish()
    }
}

impl CertKey {
    /// Load a PEM certificate chain (leaf first, then any intermediates) from
    /// `cert_path` and the leaf's PEM private key (PKCS#8, RSA or EC) from `key_path`.
    ///
    /// # Errors
    /// `FileReadError` naming the file when it is missing or unreadable;
    /// `InvalidCert` naming the file when it holds no PEM certificate or key,
    /// or when the key does not match the leaf certificate.
    pub fn from_files(cert_path: impl AsRef<Path>, key_path: impl AsRef<Path>) -> Result<Self> {
        let (cert_path, key_path) = (cert_path.as_ref(), key_path.as_ref());
        let cert_pem = read(cert_path, "certificate")?;
        let key_pem = read(key_path, "private key")?;
        Self::from_pem_named(
            &cert_pem,
            &key_pem,
            &cert_path.display().to_string(),
            &key_path.display().to_string(),
        )
    }

    /// The same from PEM bytes already in memory.
    ///
    /// # Errors
    /// `InvalidCert` when either holds no PEM item or the key does not match.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        Self::from_pem_named(cert_pem, key_pem, "certificate PEM", "key PEM")
    }

    fn from_pem_named(cert_pem: &[u8], key_pem: &[u8], cert: &str, key: &str) -> Result<Self> {
        let chain = X509::stack_from_pem(cert_pem).map_err(|e| {
            Error::explain(
                ErrorType::InvalidCert,
                format!("{cert}: not a PEM certificate chain: {}", describe(&e)),
            )
        })?;
        if chain.is_empty() {
            return Error::e_explain(
                ErrorType::InvalidCert,
                format!("{cert}: no PEM certificate found"),
            );
        }
        let pkey = PKey::private_key_from_pem(key_pem).map_err(|e| {
            Error::explain(
                ErrorType::InvalidCert,
                format!("{key}: not a PEM private key: {}", describe(&e)),
            )
        })?;
        let leaf_key = chain[0].public_key().map_err(|e| {
            Error::explain(
                ErrorType::InvalidCert,
                format!("{cert}: unreadable public key: {}", describe(&e)),
            )
        })?;
        if !leaf_key.public_eq(&pkey) {
            return Error::e_explain(
                ErrorType::InvalidCert,
                format!("{key}: the private key does not match the certificate in {cert}"),
            );
        }
        Self::assemble(chain, pkey, cert)
    }

    /// A certificate chain and key already parsed (e.g. made at startup).
    ///
    /// # Errors
    /// `InvalidCert` when `chain` is empty or `key` does not match its first certificate.
    pub fn new(chain: Vec<X509>, key: PKey<Private>) -> Result<Self> {
        let Some(leaf) = chain.first() else {
            return Error::e_explain(ErrorType::InvalidCert, "empty certificate chain");
        };
        let matches = leaf
            .public_key()
            .map(|pk| pk.public_eq(&key))
            .unwrap_or(false);
        if !matches {
            return Error::e_explain(
                ErrorType::InvalidCert,
                "the private key does not match the certificate",
            );
        }
        Self::assemble(chain, key, "certificate")
    }

    /// `chain` must not be empty (both callers check).
    fn assemble(chain: Vec<X509>, key: PKey<Private>, cert: &str) -> Result<Self> {
        let digest = chain[0]
            .digest(boring::hash::MessageDigest::sha256())
            .map_err(|e| {
                Error::explain(
                    ErrorType::InvalidCert,
                    format!("{cert}: cannot hash the certificate: {}", describe(&e)),
                )
            })?;
        // SHA-256 digests are 32 bytes, so the slice below is exactly in range
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(&digest[..32]);
        Ok(CertKey {
            chain,
            key,
            fingerprint,
        })
    }

    /// The SHA-256 of the leaf certificate's DER encoding.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> &X509 {
        // `chain` is never empty: every constructor checks it
        &self.chain[0]
    }

    /// Every certificate, leaf first.
    pub fn chain(&self) -> &[X509] {
        &self.chain
    }

    /// The private key.
    pub fn key(&self) -> &PKey<Private> {
        &self.key
    }

    /// Subject, SAN, serial and SHA-256 fingerprint of the leaf.
    pub fn summary(&self) -> CertSummary {
        CertSummary::from_x509(self.leaf())
    }

    /// Put this chain and key on one connection (during its handshake).
    pub(crate) fn apply(&self, ssl: &mut SslRef) -> std::result::Result<(), String> {
        ssl.set_certificate(self.leaf()).map_err(|e| describe(&e))?;
        for cert in &self.chain[1..] {
            ssl.add_chain_cert(cert).map_err(|e| describe(&e))?;
        }
        ssl.set_private_key(&self.key).map_err(|e| describe(&e))
    }
}

/// Read a whole file; the error names it and says what it should have held.
pub(crate) fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).or_err_with(ErrorType::FileReadError, || {
        format!("cannot read the TLS {what} file {}", path.display())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use boring::asn1::Asn1Time;
    use boring::bn::BigNum;
    use boring::ec::{EcGroup, EcKey};
    use boring::hash::MessageDigest;
    use boring::nid::Nid;
    use boring::x509::extension::SubjectAlternativeName;
    use boring::x509::X509NameBuilder;

    /// A self-signed P-256 certificate for `name` with serial `serial`.
    pub(crate) fn self_signed(name: &str, serial: u32) -> (X509, PKey<Private>) {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut n = X509NameBuilder::new().unwrap();
        n.append_entry_by_text("CN", name).unwrap();
        let n = n.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&n).unwrap();
        b.set_issuer_name(&n).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        let san = SubjectAlternativeName::new()
            .dns(name)
            .ip("127.0.0.1")
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(san).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        (b.build(), key)
    }

    fn write_tmp(name: &str, data: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("proxy-core-cert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    #[test]
    fn loads_a_matching_pair_and_summarises_it() {
        let (cert, key) = self_signed("example.test", 0x1234);
        let c = write_tmp("ok.crt", &cert.to_pem().unwrap());
        let k = write_tmp("ok.key", &key.private_key_to_pem_pkcs8().unwrap());
        let ck = CertKey::from_files(&c, &k).unwrap();
        let s = ck.summary();
        assert_eq!(s.subject, "CN=example.test");
        assert_eq!(s.serial, "1234");
        assert_eq!(s.san, ["DNS:example.test", "IP:127.0.0.1"]);
        assert_eq!(s.sha256.len(), 64);
    }

    #[test]
    fn errors_name_the_file() {
        let (cert, key) = self_signed("a.test", 1);
        let (_, other_key) = self_signed("b.test", 2);
        let c = write_tmp("e.crt", &cert.to_pem().unwrap());
        let k = write_tmp("e.key", &key.private_key_to_pem_pkcs8().unwrap());
        let wrong = write_tmp("wrong.key", &other_key.private_key_to_pem_pkcs8().unwrap());
        let junk = write_tmp("junk.pem", b"not pem at all");
        let missing = c.with_file_name("missing.crt");

        let e = CertKey::from_files(&missing, &k).unwrap_err();
        assert_eq!(e.etype(), &ErrorType::FileReadError);
        assert!(e.to_string().contains("missing.crt"), "{e}");

        let e = CertKey::from_files(&junk, &k).unwrap_err();
        assert_eq!(e.etype(), &ErrorType::InvalidCert);
        assert!(e.to_string().contains("junk.pem"), "{e}");

        let e = CertKey::from_files(&c, &junk).unwrap_err();
        assert!(e.to_string().contains("junk.pem"), "{e}");

        let e = CertKey::from_files(&c, &wrong).unwrap_err();
        assert!(
            e.to_string().contains("wrong.key") && e.to_string().contains("does not match"),
            "{e}"
        );
    }

    #[test]
    fn chain_keeps_intermediates_in_order() {
        let (leaf, key) = self_signed("leaf.test", 1);
        let (inter, _) = self_signed("inter.test", 2);
        let mut pem = leaf.to_pem().unwrap();
        pem.extend(inter.to_pem().unwrap());
        let ck = CertKey::from_pem(&pem, &key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        assert_eq!(ck.chain().len(), 2);
        assert_eq!(ck.chain()[1].to_der().unwrap(), inter.to_der().unwrap());
    }
}
