//! Cache keys: what identifies a stored response.
//!
//! A [`CacheKey`] names an entry by a *primary* key (usually the request's
//! target) in a *namespace*, plus an optional *variance* hash that tells the
//! variants of one primary key apart (RFC 9111 §4.1, `Vary`). Storages index
//! entries by 128-bit BLAKE2b digests of these parts ([`HashBinary`]), never
//! by the raw bytes, so a key costs a fixed 16 bytes per entry however long
//! the URL.
//!
//! There is no implicit default key: which parts of a request make two
//! requests "the same" is a security decision (a key that leaves out the
//! `Host` lets one site's response be served for another's, the cache
//! poisoning that made Pingora remove its own default). The opt-in
//! [`CacheKey::default_http`] builds the usual one: scheme, host, path and
//! query.

use blake2::digest::consts::U16;
use blake2::{Blake2b, Digest};
use proxy_core::http::{FieldLines, RequestHeader};

/// A 128-bit digest: the unit storages key entries by.
pub type HashBinary = [u8; 16];

type Blake2b128 = Blake2b<U16>;

/// Hex spelling of a [`HashBinary`] (32 lowercase characters), for logs and
/// file names.
pub fn hex(hash: &HashBinary) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(32);
    for b in hash {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// The key of a cached response.
///
/// - `namespace`: separates caches that share a storage (for example one per
///   service or tenant).
/// - `primary`: what the response is for, usually the request target.
/// - `user_tag`: not part of the hash; storages may use it to group or
///   account entries (Pingora's meaning).
/// - variance: set by the proxy from the response's `Vary` and the request's
///   matching header values; `None` for a response that does not vary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    namespace: Box<[u8]>,
    primary: Box<[u8]>,
    variance: Option<HashBinary>,
    user_tag: Box<str>,
    primary_bin: HashBinary,
}

impl CacheKey {
    /// A key for `primary` in `namespace`. The primary hash is computed here,
    /// once: BLAKE2b-128 over both parts, each preceded by its length so that
    /// (`"ab"`, `"c"`) and (`"a"`, `"bc"`) never collide.
    pub fn new(
        namespace: impl AsRef<[u8]>,
        primary: impl AsRef<[u8]>,
        user_tag: impl Into<String>,
    ) -> Self {
        CacheKey::from_parts(namespace.as_ref().into(), primary.as_ref().into(), user_tag)
    }

    /// [`CacheKey::new`] from owned parts.
    fn from_parts(namespace: Box<[u8]>, primary: Box<[u8]>, user_tag: impl Into<String>) -> Self {
        let primary_bin = hash_parts(&[&namespace, &primary]);
        CacheKey {
            namespace,
            primary,
            variance: None,
            user_tag: user_tag.into().into_boxed_str(),
            primary_bin,
        }
    }

    /// The usual HTTP key, opt-in: `namespace` plus
    /// `scheme://host/path?query` of `req`, the host taken from the request
    /// target's authority or else the `Host` header (RFC 9110 §7.2),
    /// lowercased, with the scheme's default port removed. `tls`: whether the
    /// request came over TLS (the scheme is `https` then).
    ///
    /// Two requests that differ in anything else (method, cookies,
    /// `Authorization`, other headers) get the same key: responses that
    /// depend on them must say so with `Vary`, or the proxy must add them to
    /// the key itself.
    pub fn default_http(
        namespace: impl AsRef<[u8]>,
        req: &RequestHeader,
        tls: bool,
        user_tag: impl Into<String>,
    ) -> Self {
        let scheme = if tls { "https" } else { "http" };
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| {
                req.field_values(&http::header::HOST)
                    .next()
                    .and_then(|h| std::str::from_utf8(h).ok())
            })
            .unwrap_or("");
        let default_port = if tls { ":443" } else { ":80" };
        let host = host.strip_suffix(default_port).unwrap_or(host);
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        // built in place, at its exact size, so it boxes without a copy
        let mut primary = Vec::with_capacity(scheme.len() + 3 + host.len() + path.len());
        primary.extend_from_slice(scheme.as_bytes());
        primary.extend_from_slice(b"://");
        primary.extend(host.bytes().map(|b| b.to_ascii_lowercase()));
        primary.extend_from_slice(path.as_bytes());
        CacheKey::from_parts(
            namespace.as_ref().into(),
            primary.into_boxed_slice(),
            user_tag,
        )
    }

    /// The namespace bytes.
    pub fn namespace(&self) -> &[u8] {
        &self.namespace
    }

    /// The primary key bytes.
    pub fn primary_key(&self) -> &[u8] {
        &self.primary
    }

    /// The user tag (not hashed).
    pub fn user_tag(&self) -> &str {
        &self.user_tag
    }

    /// The digest of namespace and primary key: shared by all variants.
    pub fn primary_bin(&self) -> HashBinary {
        self.primary_bin
    }

    /// The variance digest, if this key names one variant.
    pub fn variance_bin(&self) -> Option<HashBinary> {
        self.variance
    }

    /// Name the variant `variance` of the primary key.
    pub fn set_variance_key(&mut self, variance: HashBinary) {
        self.variance = Some(variance);
    }

    /// Back to the primary key alone.
    pub fn remove_variance_key(&mut self) {
        self.variance = None;
    }

    /// The digest that names this exact entry: the primary digest when there
    /// is no variance, else the digest of both.
    pub fn combined_bin(&self) -> HashBinary {
        combine(&self.primary_bin, self.variance.as_ref())
    }

    /// The fixed-size form storages and eviction managers keep.
    pub fn to_compact(&self) -> CompactCacheKey {
        CompactCacheKey {
            primary: self.primary_bin,
            variance: self.variance,
            user_tag: self.user_tag.clone(),
        }
    }
}

/// A [`CacheKey`] reduced to its digests (33 bytes plus the user tag):
/// what storages and eviction managers keep per entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CompactCacheKey {
    /// Digest of namespace and primary key.
    pub primary: HashBinary,
    /// Variance digest, for a variant.
    pub variance: Option<HashBinary>,
    /// The key's user tag.
    pub user_tag: Box<str>,
}

impl CompactCacheKey {
    /// The digest that names this exact entry (see [`CacheKey::combined_bin`]).
    pub fn combined_bin(&self) -> HashBinary {
        combine(&self.primary, self.variance.as_ref())
    }
}

fn combine(primary: &HashBinary, variance: Option<&HashBinary>) -> HashBinary {
    match variance {
        None => *primary,
        Some(v) => hash_parts(&[primary, v]),
    }
}

/// BLAKE2b-128 over `parts`, each preceded by its length (8 bytes, little
/// endian) so the split between parts is part of the digest.
pub(crate) fn hash_parts(parts: &[&[u8]]) -> HashBinary {
    let mut h = Blake2b128::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parts_boundary_is_hashed() {
        assert_ne!(
            CacheKey::new("ab", "c", "").primary_bin(),
            CacheKey::new("a", "bc", "").primary_bin()
        );
    }

    #[test]
    fn user_tag_is_not_hashed_variance_is() {
        let a = CacheKey::new("ns", "/x", "one");
        let mut b = CacheKey::new("ns", "/x", "two");
        assert_eq!(a.primary_bin(), b.primary_bin());
        assert_eq!(a.combined_bin(), a.primary_bin());
        b.set_variance_key([7; 16]);
        assert_eq!(b.primary_bin(), a.primary_bin());
        assert_ne!(b.combined_bin(), a.combined_bin());
        assert_eq!(b.to_compact().combined_bin(), b.combined_bin());
        b.remove_variance_key();
        assert_eq!(b.combined_bin(), a.combined_bin());
    }

    #[test]
    fn default_http_uses_scheme_host_path_query() {
        let mut req = RequestHeader::build("GET", b"/a/b?q=1", None).unwrap();
        req.insert_header("Host", "Example.ORG:80").unwrap();
        let k = CacheKey::default_http("", &req, false, "");
        assert_eq!(k.primary_key(), b"http://example.org/a/b?q=1");
        let k = CacheKey::default_http("", &req, true, "");
        assert_eq!(k.primary_key(), b"https://example.org:80/a/b?q=1");
        let abs = RequestHeader::build("GET", b"http://h.test/p", None).unwrap();
        let k = CacheKey::default_http("", &abs, false, "");
        assert_eq!(k.primary_key(), b"http://h.test/p");
    }

    #[test]
    fn hex_is_lowercase_and_32_chars() {
        let h = hex(&[0xab; 16]);
        assert_eq!(h.len(), 32);
        assert!(h.starts_with("abab"));
    }
}
