//! How a listener accepts TLS: [`TlsSettings`], the per-SNI certificate
//! callback [`TlsAccept`] and the [`CertReloader`].

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use boring::ssl::{
    AlpnError, AsyncSelectCertError, BoxSelectCertFinish, ClientHello, NameType, SelectCertError,
    SslAcceptor, SslAcceptorBuilder, SslMethod, SslVerifyMode, SslVersion,
};
use boring::x509::{X509Name, X509};

use crate::error::{Error, ErrorType, Result};
use crate::tls::cert::read;
use crate::tls::{describe, CertKey, CertSummary, TlsAcceptor};

/// How long a downstream TLS handshake may take before the connection is
/// closed: 60 s, nginx's `ssl_handshake_timeout` default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// ALPN protocol id of HTTP/1.1 (RFC 7301 §6).
const ALPN_HTTP11: &[u8] = b"http/1.1";
/// ALPN protocol id of HTTP/2 over TLS (RFC 9113 §3.2).
const ALPN_H2: &[u8] = b"h2";
/// `h2` then `http/1.1`, in ALPN's wire form (each id after its length byte).
const ALPN_H2_H1_WIRE: &[u8] = b"\x02h2\x08http/1.1";

/// Chooses the certificate of each downstream handshake (Pingora's
/// `TlsAccept`), e.g. per SNI from a store of many certificates.
///
/// ```
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use proxy_core::tls::{CertKey, TlsAccept};
///
/// struct PerName { a: Arc<CertKey>, b: Arc<CertKey> }
///
/// #[async_trait]
/// impl TlsAccept for PerName {
///     async fn certificate_callback(&self, sni: Option<&str>) -> Option<Arc<CertKey>> {
///         match sni {
///             Some("b.example") => Some(self.b.clone()),
///             _ => Some(self.a.clone()),
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait TlsAccept: Send + Sync {
    /// The certificate and key for a handshake whose client asked for `sni`
    /// (`None` when it sent no SNI, e.g. when connecting to an IP address).
    ///
    /// Runs on the connection's task during the handshake (after the
    /// ClientHello, before the certificate is sent) and may await (a
    /// lookup in a remote store, say). `None` falls back to the settings'
    /// default certificate; with no default the handshake fails.
    async fn certificate_callback(&self, sni: Option<&str>) -> Option<Arc<CertKey>>;
}

/// Swaps the certificate a listener serves, without a restart.
///
/// Obtained from [`TlsSettings::reloader`] before the settings go to the
/// listener; cheap to clone and `Send + Sync`, so it can live in a signal
/// handler, an admin endpoint or a background task. New handshakes use the
/// new certificate; established connections are not touched.
#[derive(Clone)]
pub struct CertReloader {
    current: Arc<ArcSwapOption<CertKey>>,
    paths: Option<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for CertReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertReloader")
            .field("paths", &self.paths)
            .field("current", &self.current.load())
            .finish()
    }
}

impl CertReloader {
    /// Read the certificate and key files the settings were made from again
    /// and serve them from the next handshake on. Returns the new leaf's summary.
    ///
    /// # Errors
    /// The errors of [`CertKey::from_files`] (the file named); the certificate
    /// being served does not change then. `InternalError` when the settings
    /// were not made from files (use [`CertReloader::set`]).
    pub fn reload(&self) -> Result<CertSummary> {
        let Some((cert, key)) = &self.paths else {
            return Error::e_explain(
                ErrorType::InternalError,
                "these TLS settings were not made from files: nothing to reload",
            );
        };
        let ck = CertKey::from_files(cert, key)?;
        let summary = ck.summary();
        self.current.store(Some(Arc::new(ck)));
        log::info!(
            "TLS certificate reloaded from {}: {} serial {} sha256 {}",
            cert.display(),
            summary.subject,
            summary.serial,
            summary.sha256
        );
        Ok(summary)
    }

    /// Serve `cert` from the next handshake on.
    pub fn set(&self, cert: Arc<CertKey>) {
        self.current.store(Some(cert));
    }

    /// The certificate served now, if any.
    pub fn current(&self) -> Option<Arc<CertKey>> {
        self.current.load_full()
    }
}

/// How a listener accepts TLS (Pingora's `TlsSettings`).
///
/// Built by [`TlsSettings::intermediate`] (a certificate from files) or
/// [`TlsSettings::with_callbacks`] (certificates from a [`TlsAccept`]); given
/// to `Service::add_tls_with_settings`. Derefs to BoringSSL's
/// [`SslAcceptorBuilder`] for every knob not wrapped here (e.g.
/// `set_max_proto_version`, `set_cipher_list`).
pub struct TlsSettings {
    builder: SslAcceptorBuilder,
    default_cert: Arc<ArcSwapOption<CertKey>>,
    paths: Option<(PathBuf, PathBuf)>,
    callbacks: Option<Arc<dyn TlsAccept>>,
    h2: bool,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("paths", &self.paths)
            .field("callbacks", &self.callbacks.is_some())
            .field("h2", &self.h2)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

impl TlsSettings {
    /// Mozilla's "intermediate" server profile (version 5,
    /// <https://wiki.mozilla.org/Security/Server_Side_TLS>): TLS 1.2 and
    /// 1.3 only, TLS 1.2 limited to ECDHE with AES-GCM or ChaCha20-Poly1305
    /// (BoringSSL has no finite-field DHE, so those entries of the list drop
    /// out), with the PEM certificate chain at `cert_path` (leaf then
    /// intermediates) and its key at `key_path`.
    ///
    /// # Errors
    /// `FileReadError` / `InvalidCert` naming the file when a file is
    /// missing, unreadable, not PEM, or the key does not match the
    /// certificate; `InternalError` if BoringSSL cannot make the context.
    pub fn intermediate(cert_path: impl AsRef<Path>, key_path: impl AsRef<Path>) -> Result<Self> {
        let (cert_path, key_path) = (cert_path.as_ref(), key_path.as_ref());
        let cert = CertKey::from_files(cert_path, key_path)?;
        let mut settings = Self::base()?;
        settings.default_cert.store(Some(Arc::new(cert)));
        settings.paths = Some((cert_path.to_path_buf(), key_path.to_path_buf()));
        Ok(settings)
    }

    /// The intermediate profile with a certificate already in memory (e.g.
    /// one generated at startup). [`CertReloader::reload`] then has no files
    /// to read; [`CertReloader::set`] still works.
    ///
    /// # Errors
    /// `InternalError` if BoringSSL cannot make the context.
    pub fn with_cert(cert: Arc<CertKey>) -> Result<Self> {
        let settings = Self::base()?;
        settings.default_cert.store(Some(cert));
        Ok(settings)
    }

    /// The intermediate profile, each handshake's certificate chosen by
    /// `callbacks` (per SNI, say). With no default certificate, a handshake
    /// for which the callback returns `None` fails.
    ///
    /// # Errors
    /// `InternalError` if BoringSSL cannot make the context.
    pub fn with_callbacks(callbacks: Box<dyn TlsAccept>) -> Result<Self> {
        let mut settings = Self::base()?;
        settings.callbacks = Some(Arc::from(callbacks));
        Ok(settings)
    }

    fn base() -> Result<Self> {
        let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
            .map_err(|e| Error::explain(ErrorType::InternalError, describe(&e)))?;
        let limits = builder
            .set_min_proto_version(Some(SslVersion::TLS1_2))
            .and_then(|()| builder.set_max_proto_version(Some(SslVersion::TLS1_3)))
            // needed for session resumption once client certificates are verified
            .and_then(|()| builder.set_session_id_context(b"proxy-core"));
        limits.map_err(|e| Error::explain(ErrorType::InternalError, describe(&e)))?;
        Ok(TlsSettings {
            builder,
            default_cert: Arc::new(ArcSwapOption::empty()),
            paths: None,
            callbacks: None,
            h2: false,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// Offer HTTP/2 by ALPN: `h2` first, then `http/1.1` (Pingora's `ALPN::H2H1`).
    /// A client offering `h2` gets HTTP/2; one offering only `http/1.1`, or
    /// no ALPN, gets HTTP/1.1. The HTTP app serving the listener sees the
    /// choice in the connection's [`SslDigest`](crate::tls::SslDigest).
    pub fn enable_h2(&mut self) {
        self.h2 = true;
    }

    /// Whether [`TlsSettings::enable_h2`] was called.
    pub fn h2_enabled(&self) -> bool {
        self.h2
    }

    /// Require a client certificate on every handshake and verify it
    /// against the PEM CA certificates in `ca_path` (mTLS). The CA names are
    /// sent to clients as acceptable issuers. A client without a certificate,
    /// or with one the CAs did not sign, fails the handshake.
    ///
    /// # Errors
    /// `FileReadError` / `InvalidCert` naming the file when it is missing,
    /// unreadable or holds no PEM certificate.
    pub fn require_client_cert(&mut self, ca_path: impl AsRef<Path>) -> Result<()> {
        let ca_path = ca_path.as_ref();
        let pem = read(ca_path, "client CA")?;
        let cas = X509::stack_from_pem(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                Error::explain(
                    ErrorType::InvalidCert,
                    format!("{}: no PEM CA certificate found", ca_path.display()),
                )
            })?;
        let internal = |e: boring::error::ErrorStack| {
            Error::explain(
                ErrorType::InternalError,
                format!("{}: {}", ca_path.display(), describe(&e)),
            )
        };
        let names = X509Name::load_client_ca_file(ca_path).map_err(internal)?;
        for ca in cas {
            self.builder
                .cert_store_mut()
                .add_cert(ca)
                .map_err(internal)?;
        }
        self.builder.set_client_ca_list(names);
        self.builder
            .set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        Ok(())
    }

    /// How long a handshake may take (default [`DEFAULT_HANDSHAKE_TIMEOUT`]);
    /// past it the connection is closed with `TLSHandshakeTimedout`.
    pub fn set_handshake_timeout(&mut self, timeout: Duration) {
        self.handshake_timeout = timeout;
    }

    /// A handle that swaps the default certificate while the listener runs.
    pub fn reloader(&self) -> CertReloader {
        CertReloader {
            current: self.default_cert.clone(),
            paths: self.paths.clone(),
        }
    }

    /// Finish the settings into the acceptor a listener uses.
    pub(crate) fn build(mut self) -> TlsAcceptor {
        let default_cert = self.default_cert.clone();
        match self.callbacks.clone() {
            None => self
                .builder
                .set_select_certificate_callback(move |mut hello| {
                    let cert = default_cert.load();
                    let Some(cert) = cert.as_ref() else {
                        log::warn!("TLS handshake refused: no certificate configured");
                        return Err(SelectCertError::ERROR);
                    };
                    cert.apply(hello.ssl_mut()).map_err(|e| {
                        log::warn!("TLS handshake refused: cannot use the certificate: {e}");
                        SelectCertError::ERROR
                    })
                }),
            Some(callbacks) => self.builder.set_async_select_certificate_callback(
                move |hello: &mut ClientHello<'_>| {
                    let sni = hello.servername(NameType::HOST_NAME).map(str::to_string);
                    let callbacks = callbacks.clone();
                    let default_cert = default_cert.clone();
                    Ok(Box::pin(async move {
                        let chosen = callbacks.certificate_callback(sni.as_deref()).await;
                        let cert = chosen.or_else(|| default_cert.load_full());
                        let finish: BoxSelectCertFinish =
                            Box::new(move |mut hello: ClientHello<'_>| {
                                let Some(cert) = cert else {
                                    log::debug!(
                                        "TLS handshake refused: no certificate for SNI {sni:?}"
                                    );
                                    return Err(AsyncSelectCertError);
                                };
                                cert.apply(hello.ssl_mut()).map_err(|e| {
                                    log::warn!("TLS handshake refused: {e}");
                                    AsyncSelectCertError
                                })
                            });
                        Ok(finish)
                    }))
                },
            ),
        }
        // ALPN (RFC 7301 §3.2): the server's preference wins. With h2 enabled,
        // h2 then http/1.1; else http/1.1 only. A client offering none of
        // ours gets no ALPN answer (and speaks HTTP/1.1 without it).
        let h2 = self.h2;
        self.builder.set_alpn_select_callback(move |_, client| {
            let ours: &[u8] = if h2 { ALPN_H2_H1_WIRE } else { b"\x08http/1.1" };
            boring::ssl::select_next_proto(ours, client)
                // only a protocol of ours, whatever the wrapper does on no overlap
                .filter(|p| *p == ALPN_HTTP11 || (h2 && *p == ALPN_H2))
                .ok_or(AlpnError::NOACK)
        });
        TlsAcceptor::new(self.builder.build(), self.handshake_timeout)
    }
}

impl Deref for TlsSettings {
    type Target = SslAcceptorBuilder;
    fn deref(&self) -> &SslAcceptorBuilder {
        &self.builder
    }
}

impl DerefMut for TlsSettings {
    fn deref_mut(&mut self) -> &mut SslAcceptorBuilder {
        &mut self.builder
    }
}
