//! Cacheability prediction: remember keys whose responses were uncacheable
//! and bypass the cache for them next time (no lookup, no cache lock).

use parking_lot::Mutex;

use crate::digest_map::shard_index;
use crate::key::{CacheKey, HashBinary};
use crate::lru_list::LruList;
use crate::reasons::NoCacheReason;

/// Predicts whether a key's response will be cacheable.
pub trait CacheablePredictor: Send + Sync {
    /// Whether the response for `key` is expected to be cacheable. `false`
    /// makes the request bypass the cache.
    fn cacheable_prediction(&self, key: &CacheKey) -> bool;

    /// The response for `key` was cacheable. Returns whether a prediction
    /// was cleared.
    fn mark_cacheable(&self, key: &CacheKey) -> bool;

    /// The response for `key` was not cacheable for `reason`. Returns
    /// `Some(true)` if the key is now predicted uncacheable, `Some(false)`
    /// if it already was, `None` if `reason` is not remembered (e.g. a
    /// transient error).
    fn mark_uncacheable(&self, key: &CacheKey, reason: NoCacheReason) -> Option<bool>;
}

/// Whether `reason` is transient: it says nothing about the next response
/// for the key (a storage or internal error, the cache lock, the upstream
/// failing, a decision deferred or a phase answering instead), so
/// [`Predictor`] does not remember it unless told otherwise.
pub fn is_transient(reason: NoCacheReason) -> bool {
    matches!(
        reason,
        NoCacheReason::StorageError
            | NoCacheReason::InternalError
            | NoCacheReason::Deferred
            | NoCacheReason::UpstreamError
            | NoCacheReason::CacheLockGiveUp
            | NoCacheReason::CacheLockTimeout
            | NoCacheReason::DeclinedToUpstream
    )
}

/// A bounded set of primary keys predicted uncacheable: `N_SHARDS` shards,
/// each a least-recently-marked list of at most `shard_capacity` primary
/// digests (24 bytes a node with its links, and a 4-byte index slot), so the
/// whole set holds at most `N_SHARDS * shard_capacity` keys and forgets the
/// least recently marked first. A shard's mutex is held for one map
/// operation.
///
/// Keys are predicted by their primary digest ([`CacheKey::primary_bin`]):
/// an uncacheable response says nothing about variance.
///
/// ```
/// use proxy_cache::predictor::{CacheablePredictor, Predictor};
/// use proxy_cache::{CacheKey, NoCacheReason};
/// static PREDICTOR: std::sync::LazyLock<Predictor<16>> =
///     std::sync::LazyLock::new(|| Predictor::new(1024, None));
/// let key = CacheKey::new("", "/private", "");
/// assert!(PREDICTOR.cacheable_prediction(&key));
/// PREDICTOR.mark_uncacheable(&key, NoCacheReason::OriginNotCache);
/// assert!(!PREDICTOR.cacheable_prediction(&key));
/// ```
pub struct Predictor<const N_SHARDS: usize> {
    shards: [Mutex<LruList<()>>; N_SHARDS],
    shard_capacity: usize,
    skip_fn: Option<fn(NoCacheReason) -> bool>,
}

impl<const N_SHARDS: usize> Predictor<N_SHARDS> {
    /// A predictor of at most `shard_capacity` keys per shard (at least 1).
    /// `skip_fn` decides which reasons are *not* remembered (true = skip);
    /// `None` skips the transient ones ([`is_transient`]).
    ///
    /// `N_SHARDS` must be at least 1 (a compile-time error otherwise).
    pub fn new(shard_capacity: usize, skip_fn: Option<fn(NoCacheReason) -> bool>) -> Self {
        const { assert!(N_SHARDS > 0, "a predictor needs at least one shard") };
        Predictor {
            shards: std::array::from_fn(|_| Mutex::new(LruList::with_capacity(0))),
            shard_capacity: shard_capacity.max(1),
            skip_fn,
        }
    }

    fn shard(&self, digest: &HashBinary) -> &Mutex<LruList<()>> {
        &self.shards[shard_index(digest, N_SHARDS)]
    }

    /// Number of keys predicted uncacheable.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether no key is predicted uncacheable.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<const N_SHARDS: usize> CacheablePredictor for Predictor<N_SHARDS> {
    fn cacheable_prediction(&self, key: &CacheKey) -> bool {
        let digest = key.primary_bin();
        !self.shard(&digest).lock().contains(&digest)
    }

    fn mark_cacheable(&self, key: &CacheKey) -> bool {
        let digest = key.primary_bin();
        self.shard(&digest).lock().remove(&digest).is_some()
    }

    fn mark_uncacheable(&self, key: &CacheKey, reason: NoCacheReason) -> Option<bool> {
        let skip = self.skip_fn.unwrap_or(is_transient);
        if skip(reason) {
            return None;
        }
        let digest = key.primary_bin();
        let mut shard = self.shard(&digest).lock();
        let added = shard.insert_head(digest, ()).is_none();
        while shard.len() > self.shard_capacity {
            shard.pop_tail();
        }
        Some(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> CacheKey {
        CacheKey::new("ns", format!("/{i}"), "")
    }

    #[test]
    fn remembers_uncacheable_keys_until_marked_cacheable() {
        let p = Predictor::<4>::new(10, None);
        assert!(p.cacheable_prediction(&key(1)));
        assert_eq!(
            p.mark_uncacheable(&key(1), NoCacheReason::OriginNotCache),
            Some(true)
        );
        assert_eq!(
            p.mark_uncacheable(&key(1), NoCacheReason::ResponseTooLarge),
            Some(false)
        );
        assert!(!p.cacheable_prediction(&key(1)));
        // a variant of the same primary key is predicted the same
        let mut variant = key(1);
        variant.set_variance_key([3; 16]);
        assert!(!p.cacheable_prediction(&variant));
        assert!(p.cacheable_prediction(&key(2)));
        assert!(p.mark_cacheable(&key(1)));
        assert!(!p.mark_cacheable(&key(1)));
        assert!(p.cacheable_prediction(&key(1)));
    }

    #[test]
    fn transient_reasons_are_not_remembered_by_default() {
        let p = Predictor::<1>::new(10, None);
        for reason in [
            NoCacheReason::StorageError,
            NoCacheReason::InternalError,
            NoCacheReason::Deferred,
            NoCacheReason::UpstreamError,
            NoCacheReason::CacheLockGiveUp,
            NoCacheReason::CacheLockTimeout,
            NoCacheReason::DeclinedToUpstream,
        ] {
            assert_eq!(p.mark_uncacheable(&key(1), reason), None, "{reason:?}");
        }
        assert!(p.cacheable_prediction(&key(1)));
        assert_eq!(
            p.mark_uncacheable(&key(1), NoCacheReason::Custom("mine")),
            Some(true)
        );
    }

    #[test]
    fn skip_fn_replaces_the_default() {
        fn only_custom(reason: NoCacheReason) -> bool {
            matches!(reason, NoCacheReason::Custom(_))
        }
        let p = Predictor::<2>::new(10, Some(only_custom));
        assert_eq!(
            p.mark_uncacheable(&key(1), NoCacheReason::Custom("x")),
            None
        );
        assert_eq!(
            p.mark_uncacheable(&key(1), NoCacheReason::UpstreamError),
            Some(true)
        );
    }

    #[test]
    fn each_shard_keeps_its_most_recent_keys() {
        let p = Predictor::<1>::new(3, None);
        for i in 0..5 {
            p.mark_uncacheable(&key(i), NoCacheReason::OriginNotCache);
        }
        assert_eq!(p.len(), 3);
        assert!(p.cacheable_prediction(&key(0)));
        assert!(p.cacheable_prediction(&key(1)));
        assert!(!p.cacheable_prediction(&key(4)));
        // marking again makes a key recent
        p.mark_uncacheable(&key(2), NoCacheReason::OriginNotCache);
        p.mark_uncacheable(&key(5), NoCacheReason::OriginNotCache);
        assert!(!p.cacheable_prediction(&key(2)));
        assert!(p.cacheable_prediction(&key(3)));
    }
}
