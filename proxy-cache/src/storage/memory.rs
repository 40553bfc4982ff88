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
//! - A complete entry is one `Arc<Stored>`: its [`CacheMeta`] (itself an
//!   `Arc`) and its body. A body of at most [`INLINE_MAX`] bytes is copied
//!   once, when the fill finishes, into a buffer of its exact size owned by
//!   the entry (which keeps small entries small and releases whatever larger
//!   buffers the writer's pieces were cut from); a hit reads it as `Bytes`
//!   that hold a reference to the entry. A larger body keeps the writer's
//!   `Bytes` pieces as they are, except that one of at least 128 KiB is
//!   copied, when the fill finishes, into a sealed memfd (anonymous shared
//!   memory) read through a read-only mapping: a hit can then hand it to a
//!   plain socket with sendfile(2) ([`HandleHit::body_file`]) instead of
//!   copying it through user space, as nginx does from its page cache (at
//!   most a quarter of `RLIMIT_NOFILE` such bodies; past that, pieces).
//!   Either way a hit clones `Arc`s and never copies body bytes.
//! - The stored meta is a compact copy of the one given
//!   ([`compact_meta`]): a parsed response header keeps spare capacity for
//!   more headers, which a cache holding a million of them cannot afford.
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

use crate::digest_map::{shard_index, DigestHasher, DigestMap};
use crate::key::{CacheKey, CompactCacheKey, HashBinary};
use crate::meta::CacheMeta;
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
    entries: papaya::HashMap<HashBinary, Arc<Stored>, BuildHasherDefault<DigestHasher>>,
    shards: Box<[Shard]>,
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

/// A complete entry.
struct Stored {
    meta: CacheMeta,
    body: Body,
}

/// A complete body.
enum Body {
    /// At most [`INLINE_MAX`] bytes, in the entry's own buffer.
    Inline(Box<[u8]>),
    /// A larger body, shared by reference (so `Body` stays 16 bytes).
    Large(Arc<Large>),
}

/// A body larger than [`INLINE_MAX`].
enum Large {
    /// The writer's pieces, as they came.
    Pieces { pieces: Box<[Bytes]>, len: usize },
    /// A body of at least [`FILE_BODY_MIN`] bytes in a sealed memfd, which
    /// a hit can send with sendfile(2) ([`HandleHit::body_file`]).
    File(FileBody),
}

impl Body {
    fn from_pieces(pieces: Vec<Bytes>, len: usize) -> Body {
        if len <= INLINE_MAX {
            let mut joined = Vec::with_capacity(len);
            for p in &pieces {
                joined.extend_from_slice(p);
            }
            return Body::Inline(joined.into_boxed_slice());
        }
        if len >= FILE_BODY_MIN {
            match FileBody::from_pieces(&pieces, len) {
                Ok(f) => return Body::Large(Arc::new(Large::File(f))),
                // kept in memory pieces: served the same, only copied on send
                Err(e) => log::debug!("cache body of {len} bytes not put in a memfd: {e}"),
            }
        }
        Body::Large(Arc::new(Large::Pieces {
            pieces: pieces.into_boxed_slice(),
            len,
        }))
    }

    fn len(&self) -> usize {
        match self {
            Body::Inline(b) => b.len(),
            Body::Large(l) => match &**l {
                Large::Pieces { len, .. } => *len,
                Large::File(f) => f.bytes().len(),
            },
        }
    }

    /// A copy for a new entry that shares the body (an inline body is small
    /// enough to copy; a large one is reference counted).
    fn share(&self) -> Body {
        match self {
            Body::Inline(b) => Body::Inline(b.clone()),
            Body::Large(l) => Body::Large(l.clone()),
        }
    }
}

/// The owner of the `Bytes` a hit reads from an inline body: a reference to
/// the entry.
struct InlineBody(Arc<Stored>);

impl AsRef<[u8]> for InlineBody {
    fn as_ref(&self) -> &[u8] {
        match &self.0.body {
            Body::Inline(b) => b,
            Body::Large(_) => &[],
        }
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
    Done(Arc<Stored>),
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

    fn shard(&self, digest: &HashBinary) -> &Shard {
        &self.shards[shard_index(digest, self.shards.len())]
    }
}

impl Default for MemCache {
    fn default() -> Self {
        MemCache::new()
    }
}

/// A copy of `meta` whose response header allocates only what its fields
/// need (through [`CacheMeta::serialize`] and back); `meta` itself if that
/// fails, which it cannot for a header the proxy accepted.
pub fn compact_meta(meta: &CacheMeta) -> CacheMeta {
    CacheMeta::deserialize(&meta.serialize()).unwrap_or_else(|_| meta.clone())
}

/// Bytes an entry's header is counted as: the fixed fields of the meta and
/// the status line, plus each header's name and value and 4 bytes of
/// framing. Close to [`CacheMeta::serialize`]'s length without allocating.
pub fn header_size_estimate(meta: &CacheMeta) -> usize {
    let header = meta.response_header();
    let fields: usize = header
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 6)
        .sum();
    64 + fields
}

#[async_trait]
impl Storage for MemCache {
    async fn lookup(&'static self, key: &CacheKey) -> Result<Option<(CacheMeta, HitHandler)>> {
        let digest = key.combined_bin();
        let shard = self.shard(&digest);
        if shard.fill_count.load(Ordering::Acquire) > 0 {
            let fill = shard.fills.read().get(&digest).cloned();
            if let Some(fill) = fill {
                let meta = fill.meta.clone();
                return Ok(Some((
                    meta,
                    Box::new(FillHit {
                        fill,
                        next: 0,
                        pos: 0,
                        rest: None,
                    }),
                )));
            }
        }
        let Some(stored) = self.entries.pin().get(&digest).cloned() else {
            return Ok(None);
        };
        let meta = stored.meta.clone();
        Ok(Some((meta, Box::new(CompleteHit::new(stored, 0)))))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
    ) -> Result<MissHandler> {
        let digest = key.combined_bin();
        let fill = Arc::new(Fill {
            meta: compact_meta(meta),
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
            header_size: header_size_estimate(meta),
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
                let updated = Arc::new(Stored {
                    meta: compact_meta(meta),
                    body: stored.body.share(),
                });
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
    stored: Arc<Stored>,
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
    fn new(stored: Arc<Stored>, pos: usize) -> Self {
        let end = stored.body.len();
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
        let pieces = match &self.stored.body {
            Body::Inline(_) => {
                let range = self.pos..self.end;
                self.pos = self.end;
                return Some(Bytes::from_owner(InlineBody(self.stored.clone())).slice(range));
            }
            Body::Large(l) => match &**l {
                Large::Pieces { pieces, .. } => pieces,
                Large::File(f) => {
                    let range = self.pos..self.end;
                    self.pos = self.end;
                    return Some(f.bytes().slice(range));
                }
            },
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
        let len = self.stored.body.len();
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
        Some(self.stored.body.len())
    }

    /// The memfd of a body kept in one, and the range left to read.
    fn body_file(&self) -> Option<BodyFile> {
        match &self.stored.body {
            Body::Large(l) => match &**l {
                Large::File(f) => Some(BodyFile {
                    file: f.file().clone(),
                    offset: self.pos as u64,
                    len: (self.end - self.pos) as u64,
                }),
                Large::Pieces { .. } => None,
            },
            Body::Inline(_) => None,
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
    header_size: usize,
    finished: bool,
}

/// `finish` reports `Created(body bytes + header_size_estimate)`, also for
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
        let stored = Arc::new(Stored {
            meta: self.fill.meta.clone(),
            body: Body::from_pieces(pieces, len),
        });
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
        Ok(MissFinishType::Created(len + self.header_size))
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
/// entry record including its reference counts).
#[doc(hidden)]
pub fn entry_sizes() -> (usize, usize) {
    (
        std::mem::size_of::<(HashBinary, Arc<Stored>)>(),
        std::mem::size_of::<Stored>() + 2 * std::mem::size_of::<usize>(),
    )
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
