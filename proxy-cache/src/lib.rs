//! An RFC 9111 HTTP cache for the proxy framework.
//!
//! - [`key`]: [`CacheKey`], what names an entry.
//! - [`meta`]: [`CacheMeta`], the stored response header and its times.
//! - [`reasons`]: the outcome enums ([`NoCacheReason`], [`HitStatus`],
//!   [`ForcedFreshness`], [`RespCacheable`], [`CachePhase`]).
//! - [`storage`]: the [`Storage`] trait and its hit/miss handlers.
//! - [`eviction`]: eviction managers (byte budgets).
//! - [`http_cache`]: [`HttpCache`], the per-request state machine.
//! - [`lock`]: [`CacheLock`], one fill per key at a time.
//! - [`filters`]: the RFC 9111 shared-cache policy.
//! - [`vary`]: variants (RFC 9111 §4.1).
//! - [`predictor`]: remembering uncacheable keys.
//! - [`cache_control`]: `Cache-Control` / `CDN-Cache-Control` parsing (RFC 9111 §5.2, RFC 9213).

pub mod cache_control;
mod digest_map;
pub mod eviction;
pub mod filters;
pub mod http_cache;
pub mod key;
pub mod lock;
mod lru_list;
pub mod meta;
pub mod predictor;
pub mod reasons;
pub mod storage;
pub mod vary;

pub use cache_control::CacheControl;
pub use http_cache::{CacheOptionOverrides, HttpCache};
pub use key::{CacheKey, CompactCacheKey, HashBinary};
pub use lock::{CacheLock, LockStatus, Locked, ReadLock, WritePermit};
pub use meta::{CacheMeta, CacheMetaDefaults};
pub use predictor::{CacheablePredictor, Predictor};
pub use reasons::{CachePhase, ForcedFreshness, HitStatus, NoCacheReason, RespCacheable};
pub use storage::disk::DiskCache;
pub use storage::memory::MemCache;
pub use storage::tiered::TieredCache;
pub use storage::{
    BodyFile, HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeType, Storage,
};
