//! The [`Storage`] trait: where cached responses live, and the handles that
//! read a hit ([`HandleHit`]) and write a fill ([`HandleMiss`]).
//!
//! A storage holds, per [`CacheKey`], a [`CacheMeta`] and a body. The cache
//! state machine never knows which storage it talks to; the RFC 9111 rules
//! live elsewhere. Storages are `'static` (users leak them, as in Pingora:
//! `Box::leak(Box::new(MemCache::new()))`), so handles may borrow them.
//!
//! Errors: every method returns [`Result`]; the caller treats an error as
//! "serve this request uncached" and logs it. A storage must never hand out
//! a partial body as if it were whole: a fill that does not reach
//! [`HandleMiss::finish`] must not become visible as a complete entry.

mod decoded;
pub mod disk;
mod file_body;
pub mod memory;
pub mod tiered;

use std::any::Any;
use std::fs::File;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use proxy_core::error::Result;

use crate::key::{CacheKey, CompactCacheKey};
use crate::meta::CacheMeta;

/// A body that a storage keeps in a file, as a byte range of it: what
/// [`HandleHit::body_file`] returns so the proxy can send it with
/// sendfile(2) instead of reading it into memory. The file must not change
/// while the handle lives (the storages write entries to new files and
/// rename them, or seal them).
#[derive(Debug, Clone)]
pub struct BodyFile {
    /// The open file.
    pub file: Arc<File>,
    /// Where the body (or the range left to read) starts in the file, in bytes.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// Why an entry is purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeType {
    /// The eviction manager chose it to stay within the byte budget.
    Eviction,
    /// A purge request or an invalidation (RFC 9111 §4.4).
    Invalidation,
}

/// How a fill finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissFinishType {
    /// A new entry of this many bytes (header and body) was stored.
    Created(usize),
    /// An existing entry grew to this many bytes.
    Appended(usize),
}

/// A reader of one stored body.
pub type HitHandler = Box<dyn HandleHit + Send + Sync>;
/// A writer of one new entry's body.
pub type MissHandler = Box<dyn HandleMiss + Send + Sync>;

/// A cache storage.
#[async_trait]
pub trait Storage: Send + Sync {
    /// Find the entry for `key` (its exact variant when `key` has a
    /// variance): its meta and a reader of its body. With
    /// [`Storage::support_streaming_partial_write`], an entry still being
    /// filled is found too, and its reader yields the body as it is written.
    /// `Ok(None)`: nothing stored.
    async fn lookup(&'static self, key: &CacheKey) -> Result<Option<(CacheMeta, HitHandler)>>;

    /// Start storing a new entry for `key` with `meta` (replacing any older
    /// one once the fill finishes). The body is written through the handler.
    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
    ) -> Result<MissHandler>;

    /// Remove the entry `key` names. Returns whether one was there.
    async fn purge(&'static self, key: &CompactCacheKey, purge_type: PurgeType) -> Result<bool>;

    /// Replace the meta of an existing entry (after a revalidation, RFC 9111
    /// §4.3.4), keeping its body. Returns whether the entry was there.
    async fn update_meta(&'static self, key: &CacheKey, meta: &CacheMeta) -> Result<bool>;

    /// Whether a lookup during a fill finds the entry and streams its body as
    /// it arrives. Default false.
    fn support_streaming_partial_write(&self) -> bool {
        false
    }

    /// For downcasting to the concrete storage.
    fn as_any(&self) -> &(dyn Any + Send + Sync);
}

/// Reads a stored body.
#[async_trait]
pub trait HandleHit {
    /// The next piece of the body; `Ok(None)` at its end. For an entry being
    /// filled, waits for the writer.
    ///
    /// # Errors
    /// A storage error, or the fill this reader follows was abandoned (the
    /// body will never be whole).
    async fn read_body(&mut self) -> Result<Option<Bytes>>;

    /// Done reading; lets the storage account the access.
    async fn finish(self: Box<Self>, storage: &'static dyn Storage, key: &CacheKey) -> Result<()>;

    /// Whether [`HandleHit::seek`] works (e.g. the body is complete).
    fn can_seek(&self) -> bool {
        false
    }

    /// Restrict reading to bytes `start..end` of the body (`end` exclusive,
    /// `None` = to the end). Call before the first [`HandleHit::read_body`],
    /// or again after reading a range (multipart ranges).
    ///
    /// # Errors
    /// The storage cannot seek, or `start` is past the end.
    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()>;

    /// The body's length in bytes, when the entry is complete.
    fn body_len(&self) -> Option<usize> {
        None
    }

    /// The rest of the body (what [`HandleHit::read_body`] would return
    /// next, within the current [`HandleHit::seek`] range) as a range of an
    /// open file, when the storage keeps it in one; `None` (the default)
    /// otherwise. A caller that sends this range does not call `read_body`
    /// for it.
    fn body_file(&self) -> Option<BodyFile> {
        None
    }

    /// For downcasting.
    fn as_any(&self) -> &(dyn Any + Send + Sync);
}

/// Writes a new entry's body.
#[async_trait]
pub trait HandleMiss {
    /// Append `data` to the body.
    ///
    /// # Errors
    /// A storage error (e.g. out of space); the caller stops storing and
    /// keeps serving the client.
    async fn write_body(&mut self, data: Bytes) -> Result<()>;

    /// The body is complete: make the entry visible as whole.
    ///
    /// # Errors
    /// A storage error; the entry must then not be served.
    async fn finish(self: Box<Self>) -> Result<MissFinishType>;
}
