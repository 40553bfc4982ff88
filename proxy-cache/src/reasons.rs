//! The outcomes the cache reports: why a response was not cached, how a hit
//! was judged, what a phase may force, and whether a response is cacheable
//! (Pingora's names, `../shared/PARITY.md` §2.5).

use crate::meta::CacheMeta;

/// Why a request was not served from, or a response not stored in, the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCacheReason {
    /// The cache was never enabled for the request.
    NeverEnabled,
    /// The origin's response forbids or does not allow storing it (RFC 9111 §3).
    OriginNotCache,
    /// The body turned out larger than the maximum cacheable size.
    ResponseTooLarge,
    /// The response was predicted to be too large (e.g. from Content-Length).
    PredictedResponseTooLarge,
    /// The storage failed; the response was served uncached.
    StorageError,
    /// An internal error (e.g. no cache key could be built).
    InternalError,
    /// Caching was deferred (the decision comes later).
    Deferred,
    /// The proxy declined to go upstream (a phase answered instead).
    DeclinedToUpstream,
    /// The upstream failed.
    UpstreamError,
    /// The request gave up waiting on the cache lock.
    CacheLockGiveUp,
    /// The cache lock's wait timed out.
    CacheLockTimeout,
    /// A reason of the user's.
    Custom(&'static str),
}

impl NoCacheReason {
    /// A short name for logs and `Cache-Status` (RFC 9211 `detail`).
    pub fn as_str(&self) -> &'static str {
        match self {
            NoCacheReason::NeverEnabled => "NeverEnabled",
            NoCacheReason::OriginNotCache => "OriginNotCache",
            NoCacheReason::ResponseTooLarge => "ResponseTooLarge",
            NoCacheReason::PredictedResponseTooLarge => "PredictedResponseTooLarge",
            NoCacheReason::StorageError => "StorageError",
            NoCacheReason::InternalError => "InternalError",
            NoCacheReason::Deferred => "Deferred",
            NoCacheReason::DeclinedToUpstream => "DeclinedToUpstream",
            NoCacheReason::UpstreamError => "UpstreamError",
            NoCacheReason::CacheLockGiveUp => "CacheLockGiveUp",
            NoCacheReason::CacheLockTimeout => "CacheLockTimeout",
            NoCacheReason::Custom(s) => s,
        }
    }
}

/// How a found entry was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitStatus {
    /// Stale: to be revalidated (or served stale).
    Expired,
    /// Fresh, but `cache_hit_filter` forced it expired.
    ForceExpired,
    /// `cache_hit_filter` forced a miss.
    ForceMiss,
    /// `cache_hit_filter` failed; treated as a miss.
    FailedHitFilter,
    /// Fresh: served from the cache.
    Fresh,
    /// Stale, but `cache_hit_filter` forced it fresh.
    ForceFresh,
}

impl HitStatus {
    /// A short name for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            HitStatus::Expired => "expired",
            HitStatus::ForceExpired => "force_expired",
            HitStatus::ForceMiss => "force_miss",
            HitStatus::FailedHitFilter => "failed_hit_filter",
            HitStatus::Fresh => "fresh",
            HitStatus::ForceFresh => "force_fresh",
        }
    }

    /// Whether the entry is served as it is.
    pub fn is_fresh(&self) -> bool {
        matches!(self, HitStatus::Fresh | HitStatus::ForceFresh)
    }

    /// Whether the entry is ignored and the request treated as a miss.
    pub fn is_treated_as_miss(&self) -> bool {
        matches!(self, HitStatus::ForceMiss | HitStatus::FailedHitFilter)
    }
}

/// What `cache_hit_filter` may force on a found entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForcedFreshness {
    /// Treat a fresh entry as expired (revalidate it).
    ForceExpired,
    /// Ignore the entry: go upstream and replace it.
    ForceMiss,
    /// Serve a stale entry as if fresh.
    ForceFresh,
}

/// The verdict on a response: store it with this meta, or not, and why.
#[derive(Debug, Clone)]
pub enum RespCacheable {
    /// Store the response with this meta.
    Cacheable(CacheMeta),
    /// Do not store it.
    Uncacheable(NoCacheReason),
}

impl RespCacheable {
    /// Whether the verdict is to store.
    pub fn is_cacheable(&self) -> bool {
        matches!(self, RespCacheable::Cacheable(_))
    }

    /// The meta, for a cacheable verdict.
    pub fn unwrap_meta(self) -> Option<CacheMeta> {
        match self {
            RespCacheable::Cacheable(m) => Some(m),
            RespCacheable::Uncacheable(_) => None,
        }
    }
}

/// The public view of where a request is in the cache state machine
/// (Pingora's `CachePhase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePhase {
    /// The cache is off for this request, and why.
    Disabled(NoCacheReason),
    /// The cache was never touched.
    Uninit,
    /// Enabled, but this request bypasses it (the response is not stored).
    Bypass,
    /// Enabled; the key is set; not looked up yet.
    CacheKey,
    /// A fresh entry is being served.
    Hit,
    /// Nothing usable was found; the response comes from upstream and may be stored.
    Miss,
    /// A stale entry is being served (stale-if-error or stale-while-revalidate).
    Stale,
    /// A stale entry is being served while another request refreshes it.
    StaleUpdating,
    /// An entry was found stale and is being revalidated.
    Expired,
    /// The stale entry was revalidated (304) and is served.
    Revalidated,
    /// Revalidated, but the refreshed response must not be stored.
    RevalidatedNoCache(NoCacheReason),
}

impl CachePhase {
    /// A short name for logs (`hit`, `miss`, `stale`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            CachePhase::Disabled(_) => "disabled",
            CachePhase::Uninit => "uninitialized",
            CachePhase::Bypass => "bypass",
            CachePhase::CacheKey => "key",
            CachePhase::Hit => "hit",
            CachePhase::Miss => "miss",
            CachePhase::Stale => "stale",
            CachePhase::StaleUpdating => "stale-updating",
            CachePhase::Expired => "expired",
            CachePhase::Revalidated => "revalidated",
            CachePhase::RevalidatedNoCache(_) => "revalidated-nocache",
        }
    }
}
