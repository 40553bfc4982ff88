//! [`HttpCache`]: the per-request cache state machine, reachable as
//! `session.cache`.
//!
//! The proxy drives it through these stages (each a method here), and a call
//! in the wrong stage returns an `InternalError` instead of panicking:
//!
//! ```text
//! Uninit ──enable──► CacheKey ──set_cache_key, cache_lookup──┬─► Hit (cache_found: fresh) ──► serve body
//!   │                   │                                     ├─► Expired (cache_found: stale) ──► revalidate upstream
//!   │                   └─bypass──► Bypass                    └─► Miss (cache_miss) ──► upstream
//!   └─(never enabled)                                              │
//!                                   Expired ──304──► Revalidated ──┤ (serve stored body)
//!                                   Expired ──error, stale-if-error──► Stale
//!                                   Expired ──stale-while-revalidate──► StaleUpdating
//!                                   Miss / Expired ──set_miss_handler──► fill (write_body … finish_miss_handler)
//! any ──disable(reason)──► Disabled(reason)
//! ```
//!
//! Data lives in the variant that needs it: the hit handler only while a
//! body is served from the cache, the miss handler only while a fill is in
//! progress, the cache-lock permit only while this request is the writer.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use proxy_core::error::{Error, ErrorType, Result};

use crate::eviction::EvictionManager;
use crate::key::{CacheKey, HashBinary};
use crate::lock::{CacheLock, LockStatus, Locked, ReadLock, WritePermit};
use crate::meta::{CacheMeta, CacheMetaDefaults};
use crate::predictor::CacheablePredictor;
use crate::reasons::{CachePhase, HitStatus, NoCacheReason};
use crate::storage::{HitHandler, MissFinishType, MissHandler, PurgeType, Storage};

/// Per-request settings that override the cache's defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheOptionOverrides {
    /// How long a request waits on the cache lock for another request's
    /// fill before going upstream itself. `None`: the lock's own timeout.
    pub wait_timeout: Option<Duration>,
    /// Fallback lifetimes for responses without freshness information, used
    /// by the framework's default `response_cache_filter`. `None`: RFC 9111
    /// alone (no default lifetime, no heuristic freshness).
    pub defaults: Option<CacheMetaDefaults>,
    /// Add an RFC 9211 `Cache-Status` header to responses, naming this cache.
    pub cache_status_name: Option<&'static str>,
    /// Send a hit's whole body with sendfile(2) when the storage keeps it in
    /// a file (`MemCache` does for bodies of 128 KiB and more, in a sealed
    /// memfd) and the client connection can take it (HTTP/1.x without TLS):
    /// the kernel moves the pages to the socket without a copy through user
    /// space. `ProxyHttp::response_body_filter` is then not called for that
    /// body, as nginx's body filters do not see a body under `sendfile on`
    /// unless they ask for it: leave this `false` (the default, as nginx's
    /// `sendfile` is off by default) when a body filter must see every hit.
    /// Ranges, `HEAD`, TLS and HTTP/2 clients are served as without it.
    pub sendfile: bool,
}

/// Where the request is, with the data that stage owns.
enum Stage {
    /// Enabled; the key may be set; not looked up yet.
    Key,
    /// Enabled but this request's response is not stored.
    Bypass,
    /// Serving a body from the cache (fresh, forced fresh, revalidated or
    /// stale); `phase` tells which.
    Serving { meta: CacheMeta, hit: HitHandler },
    /// Found stale; an upstream revalidation is under way. The stored body
    /// is kept to serve after a 304 or as stale-if-error.
    Expired { meta: CacheMeta, hit: HitHandler },
    /// Nothing usable stored: the response comes from upstream.
    Miss,
    /// Storing the upstream's response.
    Filling {
        meta: CacheMeta,
        miss: MissHandler,
        written: usize,
    },
    /// Done (the fill finished, or the stored body was served).
    Done { meta: Option<CacheMeta> },
}

struct Enabled {
    storage: &'static dyn Storage,
    eviction: Option<&'static dyn EvictionManager>,
    predictor: Option<&'static dyn CacheablePredictor>,
    lock: Option<&'static CacheLock>,
    overrides: CacheOptionOverrides,
    key: Option<CacheKey>,
    max_file_size: Option<usize>,
    stage: Stage,
    /// The write permit, with the key it was taken for (the key may gain a
    /// variance afterwards).
    write_permit: Option<(WritePermit, CacheKey)>,
    hit_status: Option<HitStatus>,
    lookup_duration: Duration,
    lock_duration: Duration,
    /// A marker for `Vary` must be written for the primary key after the fill.
    vary_marker: Option<CacheMeta>,
}

/// The cache state of one request. A new request's cache is
/// [`CachePhase::Uninit`] and costs one word until enabled.
pub struct HttpCache {
    phase: CachePhase,
    inner: Option<Box<Enabled>>,
}

impl Default for HttpCache {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for HttpCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCache")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

fn wrong_phase<T>(what: &str, phase: CachePhase) -> Result<T> {
    Error::e_explain(
        ErrorType::InternalError,
        format!("cache: {what} in phase {}", phase.as_str()),
    )
}

impl HttpCache {
    /// A cache that is not (yet) enabled.
    pub const fn new() -> Self {
        HttpCache {
            phase: CachePhase::Uninit,
            inner: None,
        }
    }

    /// Turn the cache on for this request: the storage, and optionally an
    /// eviction manager (byte budget), a cacheability predictor, a cache
    /// lock and per-request overrides. The next step is
    /// [`HttpCache::set_cache_key`]. Ignored when the cache was disabled for
    /// this request.
    pub fn enable(
        &mut self,
        storage: &'static dyn Storage,
        eviction: Option<&'static dyn EvictionManager>,
        predictor: Option<&'static dyn CacheablePredictor>,
        cache_lock: Option<&'static CacheLock>,
        overrides: Option<CacheOptionOverrides>,
    ) {
        if !matches!(self.phase, CachePhase::Uninit) {
            return;
        }
        self.inner = Some(Box::new(Enabled {
            storage,
            eviction,
            predictor,
            lock: cache_lock,
            overrides: overrides.unwrap_or_default(),
            key: None,
            max_file_size: None,
            stage: Stage::Key,
            write_permit: None,
            hit_status: None,
            lookup_duration: Duration::ZERO,
            lock_duration: Duration::ZERO,
            vary_marker: None,
        }));
        self.phase = CachePhase::CacheKey;
    }

    /// Whether the cache is in use for this request (enabled and neither
    /// disabled nor bypassed).
    pub fn enabled(&self) -> bool {
        !matches!(
            self.phase,
            CachePhase::Disabled(_) | CachePhase::Uninit | CachePhase::Bypass
        )
    }

    /// Whether this request bypasses the cache (nothing is stored).
    pub fn bypassing(&self) -> bool {
        matches!(self.phase, CachePhase::Bypass)
    }

    /// The phase, for logging and decisions.
    pub fn phase(&self) -> CachePhase {
        self.phase
    }

    /// Turn the cache off for the rest of this request, for `reason`. A fill
    /// in progress is abandoned (the storage never shows it as whole) and a
    /// held cache lock is released so waiters go on.
    pub fn disable(&mut self, reason: NoCacheReason) {
        if let CachePhase::Disabled(_) = self.phase {
            return;
        }
        if let Some(inner) = self.inner.as_mut() {
            let status = match reason {
                NoCacheReason::OriginNotCache | NoCacheReason::ResponseTooLarge => {
                    LockStatus::GiveUp
                }
                _ => LockStatus::TransientError,
            };
            release_lock(inner, status);
        }
        self.inner = None;
        self.phase = CachePhase::Disabled(reason);
    }

    /// Do not store this request's response (the cache stays enabled for
    /// invalidation). Releases a held cache lock.
    pub fn bypass(&mut self) {
        match self.inner.as_mut() {
            Some(inner) if self.phase == CachePhase::CacheKey || self.phase == CachePhase::Miss => {
                release_lock(inner, LockStatus::GiveUp);
                inner.stage = Stage::Bypass;
                self.phase = CachePhase::Bypass;
            }
            _ => {}
        }
    }

    /// Set the key entries are looked up and stored under.
    pub fn set_cache_key(&mut self, key: CacheKey) {
        if let Some(inner) = self.inner.as_mut() {
            inner.key = Some(key);
        }
    }

    /// The key, once set.
    pub fn cache_key(&self) -> Option<&CacheKey> {
        self.inner.as_ref().and_then(|i| i.key.as_ref())
    }

    /// The storage, when enabled.
    pub fn storage(&self) -> Option<&'static dyn Storage> {
        self.inner.as_ref().map(|i| i.storage)
    }

    /// The per-request overrides, when enabled.
    pub fn overrides(&self) -> Option<&CacheOptionOverrides> {
        self.inner.as_ref().map(|i| &i.overrides)
    }

    /// The largest body, in bytes, that may be stored; larger responses pass
    /// through uncached ([`NoCacheReason::ResponseTooLarge`]).
    pub fn set_max_file_size_bytes(&mut self, max: usize) {
        if let Some(inner) = self.inner.as_mut() {
            inner.max_file_size = Some(max);
        }
    }

    /// The maximum storable body size in bytes, if set.
    pub fn max_file_size_bytes(&self) -> Option<usize> {
        self.inner.as_ref().and_then(|i| i.max_file_size)
    }

    /// The meta of the entry found or being stored.
    pub fn cache_meta(&self) -> Option<&CacheMeta> {
        match &self.inner.as_ref()?.stage {
            Stage::Serving { meta, .. } | Stage::Expired { meta, .. } => Some(meta),
            Stage::Filling { meta, .. } => Some(meta),
            Stage::Done { meta } => meta.as_ref(),
            _ => None,
        }
    }

    /// How the found entry was judged, once one was.
    pub fn hit_status(&self) -> Option<HitStatus> {
        self.inner.as_ref().and_then(|i| i.hit_status)
    }

    /// Why nothing was served from or stored in the cache, if that is so.
    pub fn no_cache_reason(&self) -> Option<NoCacheReason> {
        match self.phase {
            CachePhase::Disabled(r) | CachePhase::RevalidatedNoCache(r) => Some(r),
            _ => None,
        }
    }

    /// Time spent in storage lookups.
    pub fn lookup_duration(&self) -> Duration {
        self.inner
            .as_ref()
            .map_or(Duration::ZERO, |i| i.lookup_duration)
    }

    /// Time spent waiting on the cache lock.
    pub fn lock_duration(&self) -> Duration {
        self.inner
            .as_ref()
            .map_or(Duration::ZERO, |i| i.lock_duration)
    }

    /// The predictor's verdict for the key: `false` means the response was
    /// uncacheable before, so the proxy bypasses the cache. `true` without a
    /// predictor.
    pub fn cacheable_prediction(&self) -> bool {
        match self.inner.as_deref() {
            Some(Enabled {
                predictor: Some(p),
                key: Some(k),
                ..
            }) => p.cacheable_prediction(k),
            _ => true,
        }
    }

    /// Tell the predictor the response turned out uncacheable.
    pub fn response_became_uncacheable(&self, reason: NoCacheReason) {
        if let Some(Enabled {
            predictor: Some(p),
            key: Some(k),
            ..
        }) = self.inner.as_deref()
        {
            p.mark_uncacheable(k, reason);
        }
    }

    /// Tell the predictor the response turned out cacheable.
    pub fn response_became_cacheable(&self) {
        if let Some(Enabled {
            predictor: Some(p),
            key: Some(k),
            ..
        }) = self.inner.as_deref()
        {
            p.mark_cacheable(k);
        }
    }

    fn key_stage(&mut self, what: &str) -> Result<&mut Enabled> {
        let phase = self.phase;
        match self.inner.as_deref_mut() {
            Some(inner) if inner.key.is_some() => Ok(inner),
            _ => wrong_phase(what, phase),
        }
    }

    /// Look the key up in the storage (its exact variant if a variance is
    /// set). `Ok(None)`: nothing stored. The caller judges what it finds and
    /// calls [`HttpCache::cache_found`] or [`HttpCache::cache_miss`].
    ///
    /// # Errors
    /// No key set, or the storage failed (the caller serves uncached).
    pub async fn cache_lookup(&mut self) -> Result<Option<(CacheMeta, HitHandler)>> {
        let inner = self.key_stage("lookup")?;
        let started = Instant::now();
        let storage = inner.storage;
        let Some(key) = inner.key.as_ref() else {
            return wrong_phase("lookup without key", CachePhase::CacheKey);
        };
        let found = storage.lookup(key).await;
        inner.lookup_duration += started.elapsed();
        found
    }

    /// Make the key name the variant `variance` (RFC 9111 §4.1), or the
    /// primary entry with `None`.
    pub fn set_variance(&mut self, variance: Option<HashBinary>) {
        if let Some(key) = self.inner.as_mut().and_then(|i| i.key.as_mut()) {
            match variance {
                Some(v) => key.set_variance_key(v),
                None => key.remove_variance_key(),
            }
        }
    }

    /// Remember that after the fill, a `Vary` marker (the primary entry that
    /// points lookups at variants) must be stored with `meta`.
    pub fn set_vary_marker(&mut self, meta: CacheMeta) {
        if let Some(inner) = self.inner.as_mut() {
            inner.vary_marker = Some(meta);
        }
    }

    /// An entry was found and judged `status`: fresh ones are served
    /// ([`CachePhase::Hit`]), stale ones revalidated ([`CachePhase::Expired`]).
    /// A status that is treated as a miss drops the entry and goes
    /// [`CachePhase::Miss`].
    ///
    /// # Errors
    /// Called outside the lookup stage.
    pub fn cache_found(
        &mut self,
        meta: CacheMeta,
        hit: HitHandler,
        status: HitStatus,
    ) -> Result<()> {
        let phase = self.phase;
        let inner = match self.inner.as_deref_mut() {
            Some(i) if matches!(i.stage, Stage::Key | Stage::Miss) => i,
            _ => return wrong_phase("cache_found", phase),
        };
        inner.hit_status = Some(status);
        if status.is_treated_as_miss() {
            inner.stage = Stage::Miss;
            self.phase = CachePhase::Miss;
        } else if status.is_fresh() {
            release_lock(inner, LockStatus::Done);
            inner.stage = Stage::Serving { meta, hit };
            self.phase = CachePhase::Hit;
        } else {
            inner.stage = Stage::Expired { meta, hit };
            self.phase = CachePhase::Expired;
        }
        Ok(())
    }

    /// Nothing usable was found: the response comes from upstream. From
    /// [`CachePhase::Expired`] this drops the expired entry: a request that
    /// waited on the cache lock while another revalidated it calls this
    /// before looking the key up again.
    pub fn cache_miss(&mut self) {
        if let Some(inner) = self.inner.as_deref_mut() {
            if matches!(
                inner.stage,
                Stage::Key | Stage::Miss | Stage::Expired { .. }
            ) {
                inner.stage = Stage::Miss;
                self.phase = CachePhase::Miss;
            }
        }
    }

    /// Take the cache lock for the key, when there is one. `Ok(None)`: this
    /// request is the writer (or there is no lock): go upstream. `Some`: wait
    /// on it with [`HttpCache::cache_lock_wait`], then look up again.
    pub fn cache_lock(&mut self) -> Option<ReadLock> {
        let inner = self.inner.as_deref_mut()?;
        let (lock, key) = (inner.lock?, inner.key.as_ref()?);
        if inner.write_permit.is_some() {
            return None;
        }
        match lock.lock(key) {
            Locked::Write(p) => {
                inner.write_permit = Some((p, key.clone()));
                None
            }
            Locked::Read(r) => Some(r),
        }
    }

    /// Wait for the writer holding the lock (bounded by the lock's or the
    /// overrides' wait timeout). Returns why the wait ended.
    pub async fn cache_lock_wait(&mut self, read: ReadLock) -> LockStatus {
        let started = Instant::now();
        let wait = self.inner.as_ref().and_then(|i| i.overrides.wait_timeout);
        let status = match wait {
            Some(t) => tokio::time::timeout(t, read.wait())
                .await
                .unwrap_or(LockStatus::WaitTimeout),
            None => read.wait().await,
        };
        if let Some(inner) = self.inner.as_mut() {
            inner.lock_duration += started.elapsed();
        }
        status
    }

    /// Whether this request holds the cache lock as its writer.
    pub fn is_cache_lock_writer(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.write_permit.is_some())
    }

    /// Release the lock this request holds as writer (waiters see `status`).
    pub fn release_write_lock(&mut self, status: LockStatus) {
        if let Some(inner) = self.inner.as_mut() {
            release_lock(inner, status);
        }
    }

    /// The stored entry being revalidated or served, if any.
    pub fn stale_meta(&self) -> Option<&CacheMeta> {
        match &self.inner.as_ref()?.stage {
            Stage::Expired { meta, .. } => Some(meta),
            _ => None,
        }
    }

    /// Serve the stored entry that was being revalidated, as `phase`
    /// ([`CachePhase::Stale`] for stale-if-error, [`CachePhase::StaleUpdating`]
    /// for stale-while-revalidate, [`CachePhase::Revalidated`] after a 304
    /// whose merged meta is `meta`).
    ///
    /// # Errors
    /// No entry is being revalidated.
    pub fn serve_stored(&mut self, phase: CachePhase, meta: Option<CacheMeta>) -> Result<()> {
        let cur = self.phase;
        let Some(inner) = self.inner.as_deref_mut() else {
            return wrong_phase("serve_stored", cur);
        };
        let Stage::Expired { meta: stale, hit } = std::mem::replace(&mut inner.stage, Stage::Key)
        else {
            return wrong_phase("serve_stored", cur);
        };
        inner.stage = Stage::Serving {
            meta: meta.unwrap_or(stale),
            hit,
        };
        self.phase = phase;
        Ok(())
    }

    /// The reader of the body being served from the cache.
    pub fn hit_handler(&mut self) -> Option<&mut HitHandler> {
        match &mut self.inner.as_mut()?.stage {
            Stage::Serving { hit, .. } => Some(hit),
            _ => None,
        }
    }

    /// The body was served: let the storage and eviction manager account
    /// the access.
    pub async fn finish_hit_handler(&mut self) -> Result<()> {
        let Some(inner) = self.inner.as_deref_mut() else {
            return Ok(());
        };
        let Stage::Serving { meta, hit } = std::mem::replace(&mut inner.stage, Stage::Key) else {
            return Ok(());
        };
        let size = hit.body_len().unwrap_or(0);
        inner.stage = Stage::Done {
            meta: Some(meta.clone()),
        };
        let Some(key) = inner.key.as_ref() else {
            return Ok(());
        };
        if let Some(ev) = inner.eviction {
            ev.access(&key.to_compact(), size, meta.fresh_until());
        }
        hit.finish(inner.storage, key).await
    }

    /// Start storing the upstream's response with `meta` (RFC 9111 §3 said
    /// yes). Releases the cache lock to waiters when the storage lets them
    /// read the body as it is written.
    ///
    /// # Errors
    /// Not in a miss or revalidation, or the storage failed; the caller then
    /// [`disable`](HttpCache::disable)s with [`NoCacheReason::StorageError`].
    pub async fn set_miss_handler(&mut self, meta: CacheMeta) -> Result<()> {
        let phase = self.phase;
        let inner = match self.inner.as_deref_mut() {
            Some(i) if matches!(i.stage, Stage::Miss | Stage::Expired { .. }) => i,
            _ => return wrong_phase("set_miss_handler", phase),
        };
        let Some(key) = inner.key.as_ref() else {
            return wrong_phase("set_miss_handler without key", phase);
        };
        let miss = inner.storage.get_miss_handler(key, &meta).await?;
        let streaming = inner.storage.support_streaming_partial_write();
        inner.stage = Stage::Filling {
            meta,
            miss,
            written: 0,
        };
        self.phase = CachePhase::Miss;
        if streaming {
            release_lock(inner, LockStatus::Done);
        }
        Ok(())
    }

    /// Whether a fill is in progress.
    pub fn is_filling(&self) -> bool {
        matches!(
            self.inner.as_ref().map(|i| &i.stage),
            Some(Stage::Filling { .. })
        )
    }

    /// Store the next piece of the body being filled. Past the maximum file
    /// size the fill is abandoned ([`NoCacheReason::ResponseTooLarge`]); a
    /// storage error abandons it too ([`NoCacheReason::StorageError`],
    /// logged). Either way the client's response goes on.
    pub async fn write_body(&mut self, data: &Bytes) {
        let Some(inner) = self.inner.as_deref_mut() else {
            return;
        };
        let max = inner.max_file_size;
        let Stage::Filling { miss, written, .. } = &mut inner.stage else {
            return;
        };
        *written += data.len();
        if max.is_some_and(|m| *written > m) {
            self.response_became_uncacheable(NoCacheReason::ResponseTooLarge);
            self.disable(NoCacheReason::ResponseTooLarge);
            return;
        }
        if data.is_empty() {
            return;
        }
        if let Err(e) = miss.write_body(data.clone()).await {
            log::warn!("cache fill failed, serving uncached: {e}");
            self.disable(NoCacheReason::StorageError);
        }
    }

    /// The body is complete: make the entry whole in the storage, admit it
    /// to the eviction manager (purging what it evicts), write the `Vary`
    /// marker if one is due, and release the cache lock.
    ///
    /// # Errors
    /// None returned: a storage error is logged and the cache disabled for
    /// this request ([`NoCacheReason::StorageError`]).
    pub async fn finish_miss_handler(&mut self) {
        let Some(inner) = self.inner.as_deref_mut() else {
            return;
        };
        let Stage::Filling { meta, miss, .. } = std::mem::replace(&mut inner.stage, Stage::Key)
        else {
            return;
        };
        let finished = miss.finish().await;
        let size = match finished {
            Ok(MissFinishType::Created(s) | MissFinishType::Appended(s)) => s,
            Err(e) => {
                log::warn!("cache fill could not be finished, not stored: {e}");
                self.disable(NoCacheReason::StorageError);
                return;
            }
        };
        let storage = inner.storage;
        if let Some(key) = inner.key.as_ref() {
            if let Some(ev) = inner.eviction {
                for evicted in ev.admit(key.to_compact(), size, meta.fresh_until()) {
                    if let Err(e) = storage.purge(&evicted, PurgeType::Eviction).await {
                        log::warn!("cache eviction could not purge an entry: {e}");
                    }
                }
            }
            if let Some(marker) = inner.vary_marker.take() {
                let mut primary = key.clone();
                primary.remove_variance_key();
                if let Err(e) = write_marker(storage, inner.eviction, &primary, &marker).await {
                    log::warn!("cache: the Vary marker could not be stored: {e}");
                }
            }
        }
        release_lock(inner, LockStatus::Done);
        inner.stage = Stage::Done { meta: Some(meta) };
        self.response_became_cacheable();
    }

    /// A 304 revalidated the stored entry; store `meta` (the merged header,
    /// RFC 9111 §4.3.4) for it and serve the stored body
    /// ([`CachePhase::Revalidated`]). A storage error is logged; the stored
    /// body is still served.
    ///
    /// # Errors
    /// No entry is being revalidated.
    pub async fn revalidate_cache_meta(&mut self, meta: CacheMeta) -> Result<()> {
        let phase = self.phase;
        let Some(inner) = self.inner.as_deref_mut() else {
            return wrong_phase("revalidate_cache_meta", phase);
        };
        if !matches!(inner.stage, Stage::Expired { .. }) {
            return wrong_phase("revalidate_cache_meta", phase);
        }
        if let Some(key) = inner.key.as_ref() {
            match inner.storage.update_meta(key, &meta).await {
                Ok(_) => {}
                Err(e) => log::warn!("cache: revalidated meta could not be stored: {e}"),
            }
        }
        release_lock(inner, LockStatus::Done);
        self.serve_stored(CachePhase::Revalidated, Some(meta))
    }

    /// A 304 revalidated the entry but the refreshed response must not be
    /// stored: serve the stored body once, for `reason`.
    ///
    /// # Errors
    /// No entry is being revalidated.
    pub fn revalidate_uncacheable(&mut self, meta: CacheMeta, reason: NoCacheReason) -> Result<()> {
        if let Some(inner) = self.inner.as_mut() {
            release_lock(inner, LockStatus::GiveUp);
        }
        self.serve_stored(CachePhase::RevalidatedNoCache(reason), Some(meta))
    }

    /// Remove the entry for the key (and, for a varied resource, the marker
    /// that leads to its variants: they are no longer found). Returns
    /// whether anything was removed.
    ///
    /// # Errors
    /// No key set, or the storage failed.
    pub async fn purge(&mut self) -> Result<bool> {
        let inner = self.key_stage("purge")?;
        let Some(key) = inner.key.as_ref() else {
            return Ok(false);
        };
        purge_key(inner.storage, inner.eviction, key).await
    }
}

/// Purge `key` and, when it names a variant, its primary entry (the `Vary`
/// marker) too; tell the eviction manager. Returns whether anything was there.
///
/// # Errors
/// The storage failed.
pub async fn purge_key(
    storage: &'static dyn Storage,
    eviction: Option<&'static dyn EvictionManager>,
    key: &CacheKey,
) -> Result<bool> {
    let mut any = false;
    let mut compact = key.to_compact();
    for _ in 0..2 {
        if storage.purge(&compact, PurgeType::Invalidation).await? {
            any = true;
        }
        if let Some(ev) = eviction {
            ev.remove(&compact);
        }
        if compact.variance.take().is_none() {
            break;
        }
    }
    Ok(any)
}

async fn write_marker(
    storage: &'static dyn Storage,
    eviction: Option<&'static dyn EvictionManager>,
    primary: &CacheKey,
    marker: &CacheMeta,
) -> Result<()> {
    let miss = storage.get_miss_handler(primary, marker).await?;
    let size = match miss.finish().await? {
        MissFinishType::Created(s) | MissFinishType::Appended(s) => s,
    };
    if let Some(ev) = eviction {
        for evicted in ev.admit(primary.to_compact(), size, marker.fresh_until()) {
            storage.purge(&evicted, PurgeType::Eviction).await?;
        }
    }
    Ok(())
}

fn release_lock(inner: &mut Enabled, status: LockStatus) {
    if let (Some((permit, key)), Some(lock)) = (inner.write_permit.take(), inner.lock) {
        lock.release(&key, permit, status);
    }
}

/// `SystemTime::now()`, the clock the cache's rules are given.
pub fn now() -> SystemTime {
    SystemTime::now()
}
