//! An RFC 9111 HTTP cache for the proxy framework.
//!
//! - [`key`]: [`CacheKey`], what names an entry.
//! - [`meta`]: [`CacheMeta`], the stored response header and its times.
//! - [`reasons`]: the outcome enums ([`NoCacheReason`], [`HitStatus`],
//!   [`ForcedFreshness`], [`RespCacheable`], [`CachePhase`]).
//! - [`storage`]: the [`Storage`] trait and its hit/miss handlers;
//!   [`MemCache`], the in-memory storage.
//! - [`eviction`]: eviction managers (byte budgets): [`eviction::lru`],
//!   and TinyLFU admission in front of it, [`eviction::tinylfu`].
//! - [`lock`]: [`CacheLock`], one fill per key against stampedes.
//! - [`predictor`]: remembering uncacheable keys ([`Predictor`]).

mod digest_map;
pub mod eviction;
pub mod key;
pub mod lock;
mod lru_list;
pub mod meta;
pub mod predictor;
pub mod reasons;
pub mod storage;

pub use key::{CacheKey, CompactCacheKey, HashBinary};
pub use lock::{CacheLock, LockStatus, Locked, ReadLock, WritePermit};
pub use meta::{CacheMeta, CacheMetaDefaults};
pub use predictor::{CacheablePredictor, Predictor};
pub use reasons::{CachePhase, ForcedFreshness, HitStatus, NoCacheReason, RespCacheable};
pub use storage::memory::MemCache;
pub use storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeType, Storage,
};
