//! Cacheability prediction: remember keys whose responses were uncacheable
//! and bypass the cache for them next time (no lookup, no cache lock).

use crate::key::CacheKey;
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
