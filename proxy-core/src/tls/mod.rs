//! TLS through BoringSSL (`boring` / `tokio-boring`), on both sides.
//!
//! - [`CertKey`]: a certificate chain (leaf + intermediates) and its private
//!   key, loaded from PEM files with errors naming the file.
//! - [`TlsSettings`]: how a listener accepts TLS (Mozilla's intermediate
//!   profile by default), with per-SNI certificates from a [`TlsAccept`]
//!   callback, client-certificate verification (mTLS) and a
//!   [`CertReloader`] that swaps the certificate without a restart.
//! - [`SslDigest`]: the facts of a finished handshake (version, cipher,
//!   ALPN, SNI, the peer's certificate), readable through any
//!   [`Stream`](crate::protocols::Stream) with
//!   [`IO::ssl_digest`](crate::protocols::IO::ssl_digest).
//! - [`TlsStream`]: a TLS connection over a `Stream`, itself an
//!   [`IO`](crate::protocols::IO).
//!
//! The upstream side (verification, SNI, client certificates, session
//! resumption) lives in `connectors::tls` and is configured per peer through
//! [`PeerOptions`](crate::upstreams::peer::PeerOptions).

mod acceptor;
pub(crate) mod cert;
mod digest;
pub(crate) mod read_ahead;
mod settings;
mod stream;

pub use acceptor::TlsAcceptor;
pub use cert::CertKey;
pub use digest::{CertSummary, SslDigest};
pub use settings::{CertReloader, TlsAccept, TlsSettings, DEFAULT_HANDSHAKE_TIMEOUT};
pub use stream::TlsStream;

/// The BoringSSL bindings this module is built on, for settings it does not
/// wrap (e.g. `TlsSettings` derefs to [`boring::ssl::SslAcceptorBuilder`]).
pub use boring;

/// `boring`'s error stack as a readable string: each entry's reason, joined by `; `.
pub(crate) fn describe(e: &boring::error::ErrorStack) -> String {
    let parts: Vec<String> = e
        .errors()
        .iter()
        .map(|err| {
            err.reason()
                .map(str::to_string)
                .unwrap_or_else(|| err.to_string())
        })
        .collect();
    if parts.is_empty() {
        "unknown BoringSSL error".to_string()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests;
