//! TLS for listeners, under the path Pingora users know
//! (`listeners::tls::TlsSettings`): the same items as [`crate::tls`].

pub use crate::tls::{CertKey, CertReloader, TlsAccept, TlsSettings};
