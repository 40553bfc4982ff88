//! The upstream TLS handshake: verification, SNI, client certificates and
//! session resumption, as each peer's [`PeerOptions`](crate::upstreams::peer::PeerOptions) say.
//!
//! One BoringSSL context is made per distinct TLS configuration (trust
//! anchors, verification on or off, client certificate, versions) and
//! cached, so the system CA store is read once, not per connection. Each
//! context keeps the latest session ticket per peer ([`Peer::reuse_hash`]),
//! offered on the next connection to that peer (RFC 8446 §2.2): a reconnect
//! resumes instead of running a full handshake.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use boring::ex_data::Index;
use boring::ssl::{
    Ssl, SslConnector, SslMethod, SslSession, SslSessionCacheMode, SslVerifyMode, SslVersion,
};
use boring::x509::store::X509StoreBuilder;
use boring::x509::{X509StoreContextRef, X509VerifyError, X509};
use parking_lot::Mutex;

use crate::error::{Error, ErrorType, Result};
use crate::protocols::Stream;
use crate::tls::read_ahead::ReadAhead;
use crate::tls::{describe, TlsStream};
use crate::upstreams::peer::{Peer, TlsVersion, ALPN};

/// Most distinct TLS configurations kept; past it the cache starts over
/// (contexts in use stay alive through their connections).
const MAX_CONTEXTS: usize = 1024;
/// Most peers whose session ticket one context keeps; past it one is dropped.
const MAX_SESSIONS: usize = 10_000;

/// One BoringSSL client context and the session tickets it issued.
struct Context {
    connector: SslConnector,
    /// Latest session per peer reuse hash. Only sessions made by this very
    /// context are stored here (by its new-session callback).
    sessions: Arc<Mutex<HashMap<u64, SslSession>>>,
}

/// Upstream TLS for the transport connector.
#[derive(Default)]
pub(crate) struct TlsConnector {
    contexts: Mutex<HashMap<u64, Arc<Context>>>,
}

/// The index, on each upstream `Ssl`, of the peer's reuse hash: lets the
/// new-session callback file the ticket under the right peer.
fn peer_key_index() -> Result<Index<Ssl, u64>> {
    static INDEX: OnceLock<std::result::Result<Index<Ssl, u64>, String>> = OnceLock::new();
    INDEX
        .get_or_init(|| Ssl::new_ex_index().map_err(|e| describe(&e)))
        .clone()
        .map_err(|e| Error::explain(ErrorType::InternalError, e))
}

fn ssl_version(v: TlsVersion) -> SslVersion {
    match v {
        TlsVersion::Tls12 => SslVersion::TLS1_2,
        TlsVersion::Tls13 => SslVersion::TLS1_3,
    }
}

/// Hash of what goes into a context (not SNI, hostname checks or ALPN,
/// which are set per connection).
fn context_key<P: Peer>(peer: &P) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    peer.verify_cert().hash(&mut h);
    peer.get_ca().map(|c| c.as_slice()).hash(&mut h);
    peer.use_system_certs().hash(&mut h);
    peer.get_client_cert_key()
        .map(|c| c.fingerprint())
        .hash(&mut h);
    peer.min_tls_version().hash(&mut h);
    peer.max_tls_version().hash(&mut h);
    h.finish()
}

/// A context error, as the connect error it causes.
fn setup_error(
    peer: &impl std::fmt::Display,
    what: &str,
    e: &boring::error::ErrorStack,
) -> Box<Error> {
    Error::explain(
        ErrorType::TLSHandshakeFailure,
        format!("TLS to {peer}: {what}: {}", describe(e)),
    )
    .into_up()
}

impl TlsConnector {
    /// The context for `peer`'s configuration, made on first use.
    fn context<P: Peer>(&self, peer: &P) -> Result<Arc<Context>> {
        let key = context_key(peer);
        if let Some(ctx) = self.contexts.lock().get(&key) {
            return Ok(ctx.clone());
        }
        // built without the lock held: reading the system store takes a while
        let ctx = Arc::new(Self::build_context(peer)?);
        let mut contexts = self.contexts.lock();
        if contexts.len() >= MAX_CONTEXTS {
            contexts.clear();
        }
        Ok(contexts.entry(key).or_insert(ctx).clone())
    }

    fn build_context<P: Peer>(peer: &P) -> Result<Context> {
        let err = |what: &str, e: boring::error::ErrorStack| setup_error(peer, what, &e);
        // trusts the system store (default paths) and verifies the peer
        let mut b = SslConnector::builder(SslMethod::tls()).map_err(|e| err("context", e))?;
        if let Some(ca) = peer.get_ca() {
            let certs = X509::stack_from_pem(ca)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    Error::explain(
                        ErrorType::InvalidCert,
                        format!("TLS to {peer}: the peer's `ca` holds no PEM certificate"),
                    )
                    .into_up()
                })?;
            let mut store = X509StoreBuilder::new().map_err(|e| err("CA store", e))?;
            for c in certs {
                store.add_cert(c).map_err(|e| err("CA store", e))?;
            }
            b.set_cert_store_builder(store);
        } else if !peer.use_system_certs() {
            let store = X509StoreBuilder::new().map_err(|e| err("CA store", e))?;
            b.set_cert_store_builder(store);
        }
        b.set_verify(if peer.verify_cert() {
            SslVerifyMode::PEER
        } else {
            SslVerifyMode::NONE
        });
        if let Some(ck) = peer.get_client_cert_key() {
            b.set_certificate(ck.leaf())
                .map_err(|e| err("client certificate", e))?;
            for c in &ck.chain()[1..] {
                b.add_extra_chain_cert(c.clone())
                    .map_err(|e| err("client certificate chain", e))?;
            }
            b.set_private_key(ck.key())
                .map_err(|e| err("client key", e))?;
        }
        b.set_min_proto_version(peer.min_tls_version().map(ssl_version))
            .map_err(|e| err("minimum version", e))?;
        b.set_max_proto_version(peer.max_tls_version().map(ssl_version))
            .map_err(|e| err("maximum version", e))?;
        let sessions: Arc<Mutex<HashMap<u64, SslSession>>> = Arc::default();
        b.set_session_cache_mode(SslSessionCacheMode::CLIENT);
        let index = peer_key_index()?;
        let store = sessions.clone();
        b.set_new_session_callback(move |ssl, session| {
            let Some(key) = ssl.ex_data(index).copied() else {
                return;
            };
            let mut map = store.lock();
            if map.len() >= MAX_SESSIONS && !map.contains_key(&key) {
                if let Some(evict) = map.keys().next().copied() {
                    map.remove(&evict);
                }
            }
            map.insert(key, session);
        });
        Ok(Context {
            connector: b.build(),
            sessions,
        })
    }

    /// Run the client handshake with `peer` over `stream`.
    ///
    /// SNI is the peer's `sni()` unless empty or an IP address (RFC 6066
    /// §3 forbids literal addresses). With `verify_cert`, the chain must lead
    /// to a trusted CA; with `verify_hostname` too, the leaf must name the
    /// SNI or the peer's `alternative_cn` (a DNS name, or an IP address
    /// checked against IP SANs).
    ///
    /// # Errors
    /// `TLSHandshakeFailure` (source Upstream) naming the peer and the
    /// reason (e.g. `cert verification failed - unable to get local issuer
    /// certificate`, `... - Hostname mismatch`); never a fallback to plaintext.
    pub(crate) async fn connect<P: Peer>(&self, stream: Stream, peer: &P) -> Result<Stream> {
        let ctx = self.context(peer)?;
        let err = |what: &str, e: boring::error::ErrorStack| setup_error(peer, what, &e);
        let mut config = ctx
            .connector
            .configure()
            .map_err(|e| err("connection", e))?;
        // our own hostname check below accepts the SNI or the alternative CN
        config.set_verify_hostname(false);
        let sni = peer.sni().to_string();
        let sni_is_name = !sni.is_empty() && sni.parse::<IpAddr>().is_err();
        config.set_use_server_name_indication(sni_is_name);
        let mut ssl = config.into_ssl(&sni).map_err(|e| err("SNI", e))?;
        if peer.verify_cert() && peer.verify_hostname() {
            let names: Vec<String> = std::iter::once(sni.clone())
                .chain(peer.alternative_cn().cloned())
                .filter(|n| !n.is_empty())
                .collect();
            if names.is_empty() {
                return Err(Error::explain(
                    ErrorType::TLSHandshakeFailure,
                    format!(
                        "TLS to {peer}: verify_hostname needs an SNI or an alternative_cn to check the certificate against"
                    ),
                )
                .into_up());
            }
            ssl.set_verify_callback(SslVerifyMode::PEER, move |ok, store| {
                ok && (store.error_depth() != 0 || leaf_matches(store, &names))
            });
        }
        // ALPN per connection (RFC 7301), from the peer's preference
        ssl.set_alpn_protos(alpn_wire(peer.get_alpn().copied().unwrap_or_default()))
            .map_err(|e| err("ALPN", e))?;
        let key = peer.reuse_hash();
        ssl.set_ex_data(peer_key_index()?, key);
        if let Some(session) = ctx.sessions.lock().get(&key).cloned() {
            // SAFETY: `session` was stored by this context's own new-session
            // callback (sessions are kept per context, never shared), and
            // `ssl` was made from this same context above, as
            // `SslRef::set_session` requires.
            #[allow(unsafe_code)]
            let resumed = unsafe { ssl.set_session(&session) };
            if let Err(e) = resumed {
                log::debug!("TLS to {peer}: session not offered: {}", describe(&e));
            }
        }
        let handshake = tokio_boring::SslStreamBuilder::new(ssl, ReadAhead::new(stream))
            .connect()
            .await;
        match handshake {
            Ok(tls) => Ok(Box::new(TlsStream::new(tls))),
            // tokio-boring's message already carries the verification
            // result ("cert verification failed - Hostname mismatch")
            Err(e) => Err(Error::explain(
                ErrorType::TLSHandshakeFailure,
                format!("TLS handshake with {peer}: {e}"),
            )
            .into_up()),
        }
    }
}

/// The ALPN protocol list (RFC 7301 §3.1 wire format: length-prefixed
/// names, most preferred first) offered for `alpn`.
fn alpn_wire(alpn: ALPN) -> &'static [u8] {
    match alpn {
        ALPN::H1 => b"\x08http/1.1",
        ALPN::H2 => b"\x02h2",
        ALPN::H2H1 => b"\x02h2\x08http/1.1",
    }
}

/// Whether the leaf certificate in `store` names one of `names` (DNS names
/// with RFC 6125 wildcard rules as BoringSSL applies them, or IP addresses).
/// Records `HOSTNAME_MISMATCH` when not.
fn leaf_matches(store: &mut X509StoreContextRef, names: &[String]) -> bool {
    let found = store.current_cert().is_some_and(|cert| {
        names.iter().any(|n| {
            if n.parse::<IpAddr>().is_ok() {
                cert.check_ip_asc(n).unwrap_or(false)
            } else {
                cert.check_host(n).unwrap_or(false)
            }
        })
    });
    if !found {
        store.set_error(Err(X509VerifyError::HOSTNAME_MISMATCH));
    }
    found
}
