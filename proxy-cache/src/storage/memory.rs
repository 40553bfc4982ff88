//! [`MemCache`]: an in-memory [`Storage`] fit for production.
//!
//! # Layout
//! - Complete entries live in one concurrent map (`papaya`) keyed by
//!   [`CacheKey::combined_bin`] (the primary digest, or the digest of the
//!   primary and the variance), whose reads take no lock: a hit finds its
//!   entry and clones an `Arc`, so hits on one hot key from every core never
//!   wait on each other (they still share the entry's reference count).
//! - Fills in progress live in 64 shards picked by the digest, each a
//!   `parking_lot::RwLock` over a map and a count of its fills. Every change
//!   to an entry or a fill (a fill starting or finishing, a purge, a meta
//!   update) takes its shard's write lock, which keeps the two maps in step;
//!   a lookup reads the count first and takes the shard's read lock only
//!   when some fill of that shard is in progress. A lock is held only for
//!   one map operation and never across an `.await`.
//! - A complete entry is one reference-counted allocation (`Stored`, a
//!   thin pointer in the map): its [`CacheMeta`] in the form
//!   [`CacheMeta::serialize`] writes, read back on each hit (as Pingora's
//!   in-memory storage does, except that the decoded metas of recently
//!   hit entries stay in a fixed table of 1,024: `decoded.rs`), and its
//!   body. A body of at most
//!   [`INLINE_MAX`] bytes is gathered with the meta when the fill finishes
//!   and copied into the entry's allocation, of their exact size (which
//!   keeps small entries
//!   small and releases whatever larger buffers the writer's pieces were cut
//!   from); a hit reads it as `Bytes` that hold a reference to the entry.
//!   A larger body keeps the writer's `Bytes` pieces as they are, except
//!   that one of at least 128 KiB is
//!   copied, when the fill finishes, into a sealed memfd (anonymous shared
//!   memory) read through a read-only mapping: a hit can then hand it to a
//!   plain socket with sendfile(2) ([`HandleHit::body_file`]) instead of
//!   copying it through user space, as nginx does from its page cache (at
//!   most a quarter of `RLIMIT_NOFILE` such bodies; past that, pieces).
//!   Either way a hit clones `Arc`s and never copies body bytes.
//! - Why serialized: a [`CacheMeta`] in memory is about 400 bytes beyond
//!   its header's bytes (its response header keeps room for a header map
//!   and positions of every line), which a cache holding a million entries
//!   cannot afford; its serialized form is the header's bytes, 6 bytes of
//!   lengths per line and 43 bytes of times, status and counts (16 more
//!   for a variance). An entry costs [`entry_size`] bytes in all.
//!
//! # Streaming fills
//! [`MemCache::support_streaming_partial_write`] is true: while a fill is in
//! progress, [`Storage::lookup`] returns it, and its reader yields each piece
//! as the writer appends it (woken by a `tokio::sync::Notify`, no polling),
//! ending when the writer finishes. A writer dropped without
//! [`HandleMiss::finish`] makes its readers' `read_body` fail and leaves no
//! entry behind (an older complete entry stays). A finished fill replaces the
//! older complete entry in one map operation, so a lookup sees either the old
//! entry or the new one, never a mix. When a second fill of the same key
//! starts before the first finishes, the later one wins: the earlier one
//! still serves its readers to the end but is not stored.
//!
//! # Bounds
//! `MemCache` itself stores whatever it is given; pair it with an eviction
//! manager ([`crate::eviction`]) for a byte budget, and with the cache's
//! maximum file size for a per-entry bound.

use std::any::Any;
use std::hash::BuildHasherDefault;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use proxy_core::error::{Error, ErrorType, Result};
use tokio::sync::Notify;
use triomphe::ThinArc;

use crate::digest_map::{shard_index, DigestHasher, DigestMap};
use crate::key::{CacheKey, CompactCacheKey, HashBinary};
use crate::meta::CacheMeta;
use crate::storage::decoded::DecodedMetas;
use crate::storage::file_body::{FileBody, FILE_BODY_MIN};
use crate::storage::{
    BodyFile, HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeType, Storage,
};

/// Number of shards. A power of two well above the core count keeps two
/// writers on the same shard rare.
const SHARDS: usize = 64;

/// Bodies of at most this many bytes are kept in one buffer of their exact
/// size, owned by the entry.
pub const INLINE_MAX: usize = 16 * 1024;

/// An in-memory, sharded cache storage. See the module docs.
///
/// ```
/// use proxy_cache::MemCache;
/// let storage: &'static MemCache = Box::leak(Box::new(MemCache::new()));
/// assert_eq!(storage.len(), 0);
/// ```
pub struct MemCache {
    /// Complete entries: read without a lock; changed only under the
    /// shard's write lock.
    entries: papaya::HashMap<HashBinary, Stored, BuildHasherDefault<DigestHasher>>,
    shards: Box<[Shard]>,
    /// The decoded metas of recently hit entries.
    decoded: DecodedMetas,
}

#[derive(Default)]
struct Shard {
    fills: RwLock<DigestMap<Arc<Fill>>>,
    /// `fills.len()`, readable without the lock: written under the write
    /// lock after each change (Release), read by lookups (Acquire).
    fill_count: AtomicUsize,
}

impl Shard {
    /// Record the fills map's new size (call with the write lock held).
    fn count_fills(&self, fills: &DigestMap<Arc<Fill>>) {
        self.fill_count.store(fills.len(), Ordering::Release);
    }
}

/// A complete entry: its meta as [`CacheMeta::serialize`] wrote it, read
/// back on each hit, and its body, in one allocation behind a thin
/// reference-counted pointer (8 bytes in the map): a count (8 bytes), the
/// large body if any (8), the length of the bytes (8), then the bytes:
/// the meta's length (4, little-endian), the serialized meta, and the body
/// when that is inline (at most [`INLINE_MAX`] bytes). 28 bytes beside the
/// meta and body, where a `std::sync::Arc` of a record owning a boxed
/// buffer took 48 and a second allocation. Cloning it is what a hit does.
#[derive(Clone)]
struct Stored(ThinArc<Option<Arc<Large>>, u8>);

/// Bytes before the serialized meta: its length.
const META_LEN_BYTES: usize = 4;

/// A body larger than [`INLINE_MAX`].
enum Large {
    /// The writer's pieces, as they came.
    Pieces { pieces: Box<[Bytes]>, len: usize },
    /// A body of at least [`FILE_BODY_MIN`] bytes in a sealed memfd, which
    /// a hit can send with sendfile(2) ([`HandleHit::body_file`]).
    File(FileBody),
}

impl Stored {
    /// An entry of `meta` (serialized) and the body `pieces`, `len` bytes
    /// in all.
    fn new(meta: &[u8], pieces: Vec<Bytes>, len: usize) -> Stored {
        if len <= INLINE_MAX {
            return Stored::of(meta, &pieces, None);
        }
        let large = if len >= FILE_BODY_MIN {
            FileBody::from_pieces(&pieces, len)
                .map(Large::File)
                .map_err(|e| log::debug!("cache body of {len} bytes not put in a memfd: {e}"))
                .ok()
        } else {
            None
        };
        // kept in memory pieces when not in a memfd: served the same, only
        // copied on send
        let large = large.unwrap_or_else(|| Large::Pieces {
            pieces: pieces.into_boxed_slice(),
            len,
        });
        Stored::of(meta, &[] as &[&[u8]], Some(Arc::new(large)))
    }

    /// An entry of `meta` followed by the inline body `body` (its pieces;
    /// none for a large one). The bytes are gathered once and copied into
    /// the entry's allocation.
    fn of(meta: &[u8], body: &[impl AsRef<[u8]>], large: Option<Arc<Large>>) -> Stored {
        // a serialized meta is far below 4 GiB (header blocks are limited
        // to kilobytes); one of 4 GiB or more would be cut short here, fail
        // to decode and make its hits errors, never a wrong response
        let meta_len = u32::try_from(meta.len()).unwrap_or(u32::MAX);
        let body_len: usize = body.iter().map(|p| p.as_ref().len()).sum();
        let mut bytes = Vec::with_capacity(META_LEN_BYTES + meta.len() + body_len);
        bytes.extend_from_slice(&meta_len.to_le_bytes());
        bytes.extend_from_slice(meta);
        for p in body {
            bytes.extend_from_slice(p.as_ref());
        }
        Stored(ThinArc::from_header_and_slice(large, &bytes))
    }

    fn large(&self) -> Option<&Large> {
        self.0.header.header.as_deref()
    }

    /// Where the meta ends and the body starts in the bytes (at most their
    /// length).
    fn body_start(&self) -> usize {
        let bytes = &self.0.slice;
        // every entry starts with its meta's length (`Stored::of`); read
        // without assuming it, as 0, should that ever not hold
        let meta_len = bytes
            .get(..META_LEN_BYTES)
            .and_then(|b| <[u8; META_LEN_BYTES]>::try_from(b).ok())
            .map_or(0, u32::from_le_bytes);
        (META_LEN_BYTES + meta_len as usize).min(bytes.len())
    }

    /// The serialized meta.
    fn meta_bytes(&self) -> &[u8] {
        self.0
            .slice
            .get(META_LEN_BYTES..self.body_start())
            .unwrap_or_default()
    }

    /// An inline body (empty for a large one).
    fn inline_body(&self) -> &[u8] {
        match self.large() {
            None => &self.0.slice[self.body_start()..],
            Some(_) => &[],
        }
    }

    fn body_len(&self) -> usize {
        match self.large() {
            None => self.0.slice.len() - self.body_start(),
            Some(Large::Pieces { len, .. }) => *len,
            Some(Large::File(f)) => f.bytes().len(),
        }
    }

    /// The bytes this entry is counted as: [`entry_size`] of its meta and
    /// body, without reading the meta back.
    fn size(&self) -> usize {
        self.meta_bytes().len() + self.body_len() + ENTRY_OVERHEAD
    }

    /// A new entry of `meta` (serialized) with this entry's body (an inline
    /// body is small enough to copy; a large one is shared).
    fn with_meta(&self, meta: &[u8]) -> Stored {
        Stored::of(meta, &[self.inline_body()], self.0.header.header.clone())
    }
}

/// The owner of the `Bytes` a hit reads from an inline body: a reference to
/// the entry.
struct InlineBody(Stored);

impl AsRef<[u8]> for InlineBody {
    fn as_ref(&self) -> &[u8] {
        self.0.inline_body()
    }
}

/// A fill in progress, shared by its writer and its readers.
struct Fill {
    meta: CacheMeta,
    state: Mutex<FillState>,
    /// Woken on every append and at the end (finished or abandoned).
    notify: Notify,
    /// A later fill of the same key, or an invalidation, took over: this one
    /// must not be stored. Written and read under the shard's write lock.
    superseded: AtomicBool,
}

struct FillState {
    pieces: Vec<Bytes>,
    len: usize,
    phase: FillPhase,
}

/// Where a fill is.
enum FillPhase {
    /// The writer may append more.
    Writing,
    /// The writer finished: this is the whole entry (the pieces were moved
    /// into it).
    Done(Stored),
    /// The writer went away without finishing: the body is incomplete.
    Abandoned,
}

impl MemCache {
    /// An empty storage.
    pub fn new() -> Self {
        MemCache::with_capacity(0)
    }

    /// An empty storage with room for about `entries` complete entries
    /// without growing its map.
    pub fn with_capacity(entries: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| Shard::default())
            .collect::<Vec<_>>()
            .into_boxed_slice();
        MemCache {
            entries: papaya::HashMap::with_capacity_and_hasher(
                entries,
                BuildHasherDefault::default(),
            ),
            shards,
            decoded: DecodedMetas::new(),
        }
    }

    /// Number of complete entries (fills in progress not counted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no complete entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`Storage::lookup`], with the bytes the entry is counted as
    /// ([`entry_size`]; a fill in progress is counted without its body):
    /// what the memory tier's eviction needs per hit, known here without
    /// walking the header.
    ///
    /// # Errors
    /// `InternalError` if a stored meta does not read back (it always does).
    pub(crate) fn lookup_sized(
        &'static self,
        key: &CacheKey,
    ) -> Result<Option<(CacheMeta, HitHandler, usize)>> {
        let digest = key.combined_bin();
        let shard = self.shard(&digest);
        if shard.fill_count.load(Ordering::Acquire) > 0 {
            let fill = shard.fills.read().get(&digest).cloned();
            if let Some(fill) = fill {
                let meta = fill.meta.clone();
                let size = entry_size(&meta, 0);
                let hit = Box::new(FillHit {
                    fill,
                    next: 0,
                    pos: 0,
                    rest: None,
                });
                return Ok(Some((meta, hit, size)));
            }
        }
        let Some(stored) = self.entries.pin().get(&digest).cloned() else {
            return Ok(None);
        };
        let meta =
            self.decoded
                .get_or_decode(&digest, stored.meta_bytes(), CacheMeta::deserialize_own)?;
        let size = stored.size();
        Ok(Some((meta, Box::new(CompleteHit::new(stored, 0)), size)))
    }

    fn shard(&self, digest: &HashBinary) -> &Shard {
        &self.shards[shard_index(digest, self.shards.len())]
    }
}

impl Default for MemCache {
    fn default() -> Self {
        MemCache::new()
    }
}

/// Bytes of memory a complete entry takes besides its serialized meta and
/// its body: the entry's count, large body, length and meta length (28 B),
/// its slot in the map with the map's spare capacity, and malloc's
/// rounding of the entry's blocks. `cargo bench -p proxy-cache --bench mem_per_entry`
/// measures about 75 B allocated beyond header and body with 1,000,000
/// entries, and more resident (malloc's per-block rounding); this leaves
/// room for both.
pub const ENTRY_OVERHEAD: usize = 128;

/// The bytes `MemCache` holds for an entry of `meta` and a body of
/// `body_len` bytes: the meta's serialized length
/// ([`CacheMeta::serialized_len`]), the body and [`ENTRY_OVERHEAD`]. What
/// [`HandleMiss::finish`] reports and what a byte budget should count.
pub fn entry_size(meta: &CacheMeta, body_len: usize) -> usize {
    meta.serialized_len() + body_len + ENTRY_OVERHEAD
}

#[async_trait]
impl Storage for MemCache {
    async fn lookup(&'static self, key: &CacheKey) -> Result<Option<(CacheMeta, HitHandler)>> {
        let found = self.lookup_sized(key)?;
        Ok(found.map(|(meta, hit, _)| (meta, hit)))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
    ) -> Result<MissHandler> {
        let digest = key.combined_bin();
        let fill = Arc::new(Fill {
            meta: meta.clone(),
            state: Mutex::new(FillState {
                pieces: Vec::new(),
                len: 0,
                phase: FillPhase::Writing,
            }),
            notify: Notify::new(),
            superseded: AtomicBool::new(false),
        });
        let shard = self.shard(&digest);
        {
            let mut fills = shard.fills.write();
            if let Some(older) = fills.insert(digest, fill.clone()) {
                older.superseded.store(true, Ordering::Relaxed);
            }
            shard.count_fills(&fills);
        }
        Ok(Box::new(MemMiss {
            cache: self,
            digest,
            fill,
            meta: meta.serialize(),
            finished: false,
        }))
    }

    async fn purge(&'static self, key: &CompactCacheKey, purge_type: PurgeType) -> Result<bool> {
        let digest = key.combined_bin();
        let shard = self.shard(&digest);
        let mut fills = shard.fills.write();
        let removed = self.entries.pin().remove(&digest).is_some();
        // an invalidation also stops a fill in progress from being stored
        // (it would bring back what was just invalidated); an eviction only
        // drops the complete entry the manager chose
        if purge_type == PurgeType::Invalidation {
            if let Some(fill) = fills.remove(&digest) {
                shard.count_fills(&fills);
                fill.superseded.store(true, Ordering::Relaxed);
                return Ok(true);
            }
        }
        Ok(removed)
    }

    async fn update_meta(&'static self, key: &CacheKey, meta: &CacheMeta) -> Result<bool> {
        let digest = key.combined_bin();
        let _writer = self.shard(&digest).fills.write();
        let entries = self.entries.pin();
        match entries.get(&digest) {
            Some(stored) => {
                let updated = stored.with_meta(&meta.serialize());
                entries.insert(digest, updated);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

/// Reads a complete body, optionally a range of it.
struct CompleteHit {
    stored: Stored,
    /// Next byte to return.
    pos: usize,
    /// End of the range, exclusive.
    end: usize,
    /// Index of the piece `pos` was last found in, and where it starts: a
    /// cursor so sequential reads do not rescan the pieces.
    piece: usize,
    piece_start: usize,
}

impl CompleteHit {
    /// A reader of `stored`'s body from byte `pos` to its end.
    fn new(stored: Stored, pos: usize) -> Self {
        let end = stored.body_len();
        CompleteHit {
            stored,
            pos,
            end,
            piece: 0,
            piece_start: 0,
        }
    }

    /// The next piece of the range, `None` at its end.
    fn next_piece(&mut self) -> Option<Bytes> {
        if self.pos >= self.end {
            return None;
        }
        let pieces = match self.stored.large() {
            None => {
                let range = self.pos..self.end;
                self.pos = self.end;
                return Some(Bytes::from_owner(InlineBody(self.stored.clone())).slice(range));
            }
            Some(Large::Pieces { pieces, .. }) => pieces,
            Some(Large::File(f)) => {
                let range = self.pos..self.end;
                self.pos = self.end;
                return Some(f.bytes().slice(range));
            }
        };
        while let Some(p) = pieces.get(self.piece) {
            let p_end = self.piece_start + p.len();
            if self.pos >= p_end {
                self.piece += 1;
                self.piece_start = p_end;
                continue;
            }
            let from = self.pos - self.piece_start;
            let to = p_end.min(self.end) - self.piece_start;
            self.pos += to - from;
            if from == 0 && to == p.len() {
                return Some(p.clone());
            }
            return Some(p.slice(from..to));
        }
        None
    }
}

#[async_trait]
impl HandleHit for CompleteHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        Ok(self.next_piece())
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static dyn Storage,
        _key: &CacheKey,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    /// `start` may equal the body length (an empty read); `end` past the
    /// body is clamped to it.
    ///
    /// # Errors
    /// `InternalError` when `start` is past the end of the body or `end` is
    /// before `start`.
    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.stored.body_len();
        let end = end.unwrap_or(len).min(len);
        if start > len || end < start {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek {start}..{end} outside a body of {len} bytes"),
            );
        }
        if start < self.piece_start {
            self.piece = 0;
            self.piece_start = 0;
        }
        self.pos = start;
        self.end = end;
        Ok(())
    }

    fn body_len(&self) -> Option<usize> {
        Some(self.stored.body_len())
    }

    /// The memfd of a body kept in one, and the range left to read.
    fn body_file(&self) -> Option<BodyFile> {
        match self.stored.large() {
            Some(Large::File(f)) => Some(BodyFile {
                file: f.file().clone(),
                offset: self.pos as u64,
                len: (self.end - self.pos) as u64,
            }),
            Some(Large::Pieces { .. }) | None => None,
        }
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

/// Follows a fill in progress: yields pieces as the writer appends them.
struct FillHit {
    fill: Arc<Fill>,
    /// Index of the next piece to return while the fill is being written.
    next: usize,
    /// Bytes returned so far.
    pos: usize,
    /// Once the fill is done: the rest of the body, read from the entry.
    rest: Option<CompleteHit>,
}

#[async_trait]
impl HandleHit for FillHit {
    /// # Cancel safety
    /// Cancel safe: a dropped call returns no piece and the next call
    /// resumes at the same one.
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if let Some(rest) = self.rest.as_mut() {
            return Ok(rest.next_piece());
        }
        loop {
            // register for the wake-up before looking, so an append between
            // the look and the await is not missed
            let mut notified = pin!(self.fill.notify.notified());
            notified.as_mut().enable();
            {
                let state = self.fill.state.lock();
                if let Some(piece) = state.pieces.get(self.next) {
                    self.next += 1;
                    self.pos += piece.len();
                    return Ok(Some(piece.clone()));
                }
                match &state.phase {
                    FillPhase::Done(stored) => {
                        // the pieces moved into the entry: go on from there
                        let rest = self.rest.insert(CompleteHit::new(stored.clone(), self.pos));
                        return Ok(rest.next_piece());
                    }
                    FillPhase::Abandoned => {
                        return Error::e_explain(
                            ErrorType::InternalError,
                            "the cache fill this hit was reading was abandoned",
                        )
                    }
                    FillPhase::Writing => {}
                }
            }
            notified.await;
        }
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static dyn Storage,
        _key: &CacheKey,
    ) -> Result<()> {
        Ok(())
    }

    /// # Errors
    /// Always: a body still being written cannot be sought.
    fn seek(&mut self, start: usize, _end: Option<usize>) -> Result<()> {
        Error::e_explain(
            ErrorType::InternalError,
            format!("seek to {start} in a cache entry still being filled"),
        )
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

/// Writes one fill.
struct MemMiss {
    cache: &'static MemCache,
    digest: HashBinary,
    fill: Arc<Fill>,
    /// The meta, serialized: the start of the entry.
    meta: Vec<u8>,
    finished: bool,
}

/// `finish` reports `Created(`[`entry_size`]`)`, also for
/// a fill that a later fill of the same key or an invalidation superseded
/// and that is therefore not stored (the eviction manager then tracks bytes
/// that a later admit or eviction corrects).
#[async_trait]
impl HandleMiss for MemMiss {
    async fn write_body(&mut self, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        {
            let mut state = self.fill.state.lock();
            state.len += data.len();
            state.pieces.push(data);
        }
        self.fill.notify.notify_waiters();
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        // the body is built outside the fill's lock (a memfd body copies the
        // pieces): readers keep following the pieces meanwhile, and nothing
        // appends to them any more
        let (pieces, len) = {
            let state = self.fill.state.lock();
            (state.pieces.clone(), state.len)
        };
        let stored = Stored::new(&self.meta, pieces, len);
        let size = stored.size();
        {
            let mut state = self.fill.state.lock();
            state.pieces = Vec::new();
            state.phase = FillPhase::Done(stored.clone());
        }
        self.finished = true;
        self.fill.notify.notify_waiters();
        {
            let shard = self.cache.shard(&self.digest);
            let mut fills = shard.fills.write();
            if !self.fill.superseded.load(Ordering::Relaxed) {
                // before the fill leaves: a lookup finds one or the other
                self.cache.entries.pin().insert(self.digest, stored);
            }
            remove_fill(shard, &mut fills, &self.digest, &self.fill);
        }
        Ok(MissFinishType::Created(size))
    }
}

impl Drop for MemMiss {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.fill.state.lock().phase = FillPhase::Abandoned;
        self.fill.notify.notify_waiters();
        let shard = self.cache.shard(&self.digest);
        let mut fills = shard.fills.write();
        remove_fill(shard, &mut fills, &self.digest, &self.fill);
    }
}

/// Remove `fill` from the shard's fills if it is still the one there.
/// (`fills` is `shard`'s map, write-locked.)
fn remove_fill(
    shard: &Shard,
    fills: &mut DigestMap<Arc<Fill>>,
    digest: &HashBinary,
    fill: &Arc<Fill>,
) {
    if fills
        .get(digest)
        .is_some_and(|current| Arc::ptr_eq(current, fill))
    {
        fills.remove(digest);
        shard.count_fills(fills);
    }
}

/// Sizes of the per-entry records, for the memory benchmark: (map slot,
/// entry record before its bytes: count, large body, length and meta length).
#[doc(hidden)]
pub fn entry_sizes() -> (usize, usize) {
    (
        std::mem::size_of::<(HashBinary, Stored)>(),
        // the count, the large body and the length of the bytes, then the
        // meta's length
        3 * std::mem::size_of::<usize>() + META_LEN_BYTES,
    )
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
