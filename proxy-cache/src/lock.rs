//! The cache lock: against stampedes, one request per key goes upstream to
//! fill the cache while the others wait for it.
//!
//! [`CacheLock::lock`] hands the first caller for a key a [`WritePermit`]
//! ([`Locked::Write`]) and every later caller a [`ReadLock`]
//! ([`Locked::Read`]) until the writer releases the permit with a
//! [`LockStatus`] ([`CacheLock::release`], or by dropping it, which releases
//! with [`LockStatus::Dangling`] so readers never hang).
//!
//! ```text
//!              lock(key)                 lock(key) while Waiting
//!   (no lock) ──────────► Write permit ◄───────────────────────── Read locks
//!                            │ release(status) / drop (Dangling)      │ wait()
//!                            ▼                                        ▼
//!                         removed ─────────── wakes every reader with the status
//! ```
//!
//! Timeouts (both measured with `tokio::time`, so tests can pause time):
//! - *age timeout*: a writer holding the permit longer than this is presumed
//!   stuck. Its readers wake with [`LockStatus::AgeTimeout`], and the next
//!   [`CacheLock::lock`] call for the key gets a fresh write permit; the
//!   stuck writer's later release changes nothing.
//! - *wait timeout*: a reader waits at most this long in one
//!   [`ReadLock::wait`] and then gets [`LockStatus::WaitTimeout`] (the
//!   writer keeps its permit).
//!
//! What the caller does with a status: after [`LockStatus::Done`], look the
//! key up again (a hit). After anything else, look it up again and, if still
//! a miss, call [`CacheLock::lock`] again: exactly one of the woken readers
//! becomes the next writer, the others wait for it. After
//! [`LockStatus::WaitTimeout`] that second `lock` returns a read lock again
//! while the writer is within its age; the caller then goes upstream
//! uncached (`NoCacheReason::CacheLockTimeout`) rather than wait again.
//!
//! Locks are keyed by [`CacheKey::combined_bin`] in a sharded map; a shard's
//! mutex is held for one map operation, never across an `.await`.

use std::pin::pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::digest_map::{digest_map, shard_index, DigestMap};
use crate::key::{CacheKey, HashBinary};

/// Number of shards of the lock table.
const SHARDS: usize = 16;

/// The state of a cache lock, as a reader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LockStatus {
    /// The writer still holds the permit.
    Waiting = 0,
    /// The writer finished: the entry is stored (or being streamed).
    Done = 1,
    /// The writer failed for a reason that may not recur (an upstream or
    /// storage error); a reader may try to fill it itself.
    TransientError = 2,
    /// The writer gave up filling (e.g. the response was uncacheable);
    /// readers go upstream themselves.
    GiveUp = 3,
    /// The writer went away without releasing (its permit was dropped).
    Dangling = 4,
    /// This reader's wait timeout passed; the writer still holds the permit.
    WaitTimeout = 5,
    /// The writer held the permit past the age timeout and is ignored.
    AgeTimeout = 6,
}

impl LockStatus {
    fn from_u8(v: u8) -> LockStatus {
        match v {
            1 => LockStatus::Done,
            2 => LockStatus::TransientError,
            3 => LockStatus::GiveUp,
            4 => LockStatus::Dangling,
            5 => LockStatus::WaitTimeout,
            6 => LockStatus::AgeTimeout,
            _ => LockStatus::Waiting,
        }
    }

    /// A short name for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            LockStatus::Waiting => "waiting",
            LockStatus::Done => "done",
            LockStatus::TransientError => "transient_error",
            LockStatus::GiveUp => "give_up",
            LockStatus::Dangling => "dangling",
            LockStatus::WaitTimeout => "wait_timeout",
            LockStatus::AgeTimeout => "age_timeout",
        }
    }
}

/// A table of cache locks. See the module docs.
pub struct CacheLock {
    table: Arc<Table>,
    age_timeout: Duration,
    wait_timeout: Duration,
}

struct Table {
    shards: Box<[Mutex<DigestMap<Arc<Core>>>]>,
}

impl Table {
    fn shard(&self, digest: &HashBinary) -> &Mutex<DigestMap<Arc<Core>>> {
        &self.shards[shard_index(digest, self.shards.len())]
    }
}

/// One lock, shared by its writer and readers.
struct Core {
    created: Instant,
    age_timeout: Duration,
    /// A [`LockStatus`]; set once from `Waiting` to its final value.
    status: AtomicU8,
    notify: Notify,
}

impl Core {
    fn status(&self) -> LockStatus {
        LockStatus::from_u8(self.status.load(Ordering::Acquire))
    }

    /// Set the final status (the first one wins) and wake every reader.
    fn finish(&self, status: LockStatus) {
        let _ = self.status.compare_exchange(
            LockStatus::Waiting as u8,
            status as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.notify.notify_waiters();
    }

    fn age_deadline(&self) -> Instant {
        self.created + self.age_timeout
    }
}

/// What [`CacheLock::lock`] gives.
#[must_use]
pub enum Locked {
    /// This caller fills the cache, then releases.
    Write(WritePermit),
    /// Another caller is filling; wait for it.
    Read(ReadLock),
}

impl Locked {
    /// Whether this is a write permit.
    pub fn is_write(&self) -> bool {
        matches!(self, Locked::Write(_))
    }
}

impl CacheLock {
    /// A lock table whose writers are presumed stuck after `age_timeout`;
    /// readers wait at most as long.
    pub fn new(age_timeout: Duration) -> Self {
        Self::new_with_timeouts(age_timeout, age_timeout)
    }

    /// A lock table with separate age and reader wait timeouts.
    pub fn new_with_timeouts(age_timeout: Duration, wait_timeout: Duration) -> Self {
        let shards = (0..SHARDS)
            .map(|_| Mutex::new(digest_map(0)))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        CacheLock {
            table: Arc::new(Table { shards }),
            age_timeout,
            wait_timeout,
        }
    }

    /// The age timeout.
    pub fn age_timeout(&self) -> Duration {
        self.age_timeout
    }

    /// The reader wait timeout.
    pub fn wait_timeout(&self) -> Duration {
        self.wait_timeout
    }

    /// Lock `key`: a write permit if nobody holds one (or the holder is past
    /// the age timeout), else a read lock to wait on.
    pub fn lock(&self, key: &CacheKey) -> Locked {
        let digest = key.combined_bin();
        let mut shard = self.table.shard(&digest).lock();
        if let Some(core) = shard.get(&digest) {
            if core.status() == LockStatus::Waiting && Instant::now() < core.age_deadline() {
                return Locked::Read(ReadLock {
                    core: core.clone(),
                    wait_timeout: self.wait_timeout,
                    timed_out: AtomicU8::new(LockStatus::Waiting as u8),
                });
            }
            // the holder is stuck: wake its readers, and replace it
            core.finish(LockStatus::AgeTimeout);
        }
        let core = Arc::new(Core {
            created: Instant::now(),
            age_timeout: self.age_timeout,
            status: AtomicU8::new(LockStatus::Waiting as u8),
            notify: Notify::new(),
        });
        shard.insert(digest, core.clone());
        Locked::Write(WritePermit {
            table: self.table.clone(),
            digest,
            core,
            released: false,
        })
    }

    /// Release `permit` with `status`, waking every reader of the key.
    /// `LockStatus::Waiting` is not a final status and is recorded as
    /// [`LockStatus::Dangling`]. `key` names the same entry the permit was
    /// taken for; the permit itself knows which lock it holds.
    pub fn release(&self, key: &CacheKey, mut permit: WritePermit, status: LockStatus) {
        debug_assert_eq!(
            key.combined_bin(),
            permit.digest,
            "release with another key"
        );
        permit.release(status);
    }

    /// Number of keys currently locked (for metrics and tests).
    pub fn len(&self) -> usize {
        self.table.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether no key is locked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The right to fill one key. Release it with [`CacheLock::release`];
/// dropping it releases with [`LockStatus::Dangling`].
pub struct WritePermit {
    table: Arc<Table>,
    digest: HashBinary,
    core: Arc<Core>,
    released: bool,
}

impl WritePermit {
    /// How long this permit has been held.
    pub fn age(&self) -> Duration {
        self.core.created.elapsed()
    }

    fn release(&mut self, status: LockStatus) {
        if self.released {
            return;
        }
        self.released = true;
        let status = match status {
            LockStatus::Waiting => LockStatus::Dangling,
            s => s,
        };
        self.core.finish(status);
        let mut shard = self.table.shard(&self.digest).lock();
        if shard
            .get(&self.digest)
            .is_some_and(|current| Arc::ptr_eq(current, &self.core))
        {
            shard.remove(&self.digest);
        }
    }
}

impl Drop for WritePermit {
    fn drop(&mut self) {
        self.release(LockStatus::Dangling);
    }
}

impl std::fmt::Debug for WritePermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WritePermit")
            .field("key", &crate::key::hex(&self.digest))
            .finish()
    }
}

/// A reader's wait on another request's fill.
pub struct ReadLock {
    core: Arc<Core>,
    wait_timeout: Duration,
    /// `WaitTimeout` or `AgeTimeout` once a wait of this reader timed out.
    timed_out: AtomicU8,
}

impl ReadLock {
    /// Wait until the writer releases, the wait timeout passes (from this
    /// call) or the lock's age timeout passes, whichever is first. Returns
    /// the status, as [`ReadLock::lock_status`] then reports it.
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped wait leaves the lock as it was.
    pub async fn wait(&self) -> LockStatus {
        let wait_deadline = Instant::now() + self.wait_timeout;
        let age_deadline = self.core.age_deadline();
        let (deadline, on_timeout) = if age_deadline <= wait_deadline {
            (age_deadline, LockStatus::AgeTimeout)
        } else {
            (wait_deadline, LockStatus::WaitTimeout)
        };
        loop {
            let mut notified = pin!(self.core.notify.notified());
            notified.as_mut().enable();
            let status = self.core.status();
            if status != LockStatus::Waiting {
                return status;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                self.timed_out.store(on_timeout as u8, Ordering::Release);
                return on_timeout;
            }
        }
    }

    /// The lock's status now: the writer's final status once released;
    /// else this reader's timeout if its wait timed out, or `AgeTimeout`
    /// once the writer is past its age; else `Waiting`.
    pub fn lock_status(&self) -> LockStatus {
        let status = self.core.status();
        if status != LockStatus::Waiting {
            return status;
        }
        let timed_out = LockStatus::from_u8(self.timed_out.load(Ordering::Acquire));
        if timed_out != LockStatus::Waiting {
            return timed_out;
        }
        if Instant::now() >= self.core.age_deadline() {
            return LockStatus::AgeTimeout;
        }
        LockStatus::Waiting
    }
}

impl std::fmt::Debug for ReadLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadLock")
            .field("status", &self.lock_status())
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key() -> CacheKey {
        CacheKey::new("ns", "/locked", "")
    }

    fn read(l: Locked) -> ReadLock {
        match l {
            Locked::Read(r) => r,
            Locked::Write(_) => panic!("expected a read lock"),
        }
    }

    fn write(l: Locked) -> WritePermit {
        match l {
            Locked::Write(w) => w,
            Locked::Read(_) => panic!("expected a write permit"),
        }
    }

    #[tokio::test]
    async fn one_writer_many_readers_woken_with_done() {
        let lock: &'static CacheLock = Box::leak(Box::new(CacheLock::new(Duration::from_secs(10))));
        let permit = write(lock.lock(&key()));
        let readers: Vec<_> = (0..10)
            .map(|_| {
                let r = read(lock.lock(&key()));
                tokio::spawn(async move { (r.wait().await, r.lock_status()) })
            })
            .collect();
        tokio::task::yield_now().await;
        // another key is independent
        assert!(lock.lock(&CacheKey::new("ns", "/other", "")).is_write());
        lock.release(&key(), permit, LockStatus::Done);
        for r in readers {
            assert_eq!(r.await.unwrap(), (LockStatus::Done, LockStatus::Done));
        }
        assert!(lock.is_empty());
        assert!(lock.lock(&key()).is_write(), "a released key locks afresh");
    }

    #[tokio::test]
    async fn dropped_writer_wakes_readers_dangling_and_one_becomes_writer() {
        let lock: &'static CacheLock = Box::leak(Box::new(CacheLock::new(Duration::from_secs(10))));
        let permit = write(lock.lock(&key()));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let r = read(lock.lock(&key()));
                tokio::spawn(async move {
                    let status = r.wait().await;
                    // what the cache does after a status other than Done
                    (status, lock.lock(&key()))
                })
            })
            .collect();
        tokio::task::yield_now().await;
        drop(permit);
        let mut writers = 0;
        let mut held = Vec::new();
        for t in tasks {
            let (status, again) = t.await.unwrap();
            assert_eq!(status, LockStatus::Dangling);
            writers += usize::from(again.is_write());
            held.push(again);
        }
        assert_eq!(writers, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn stuck_writer_is_replaced_after_the_age_timeout() {
        let lock = CacheLock::new_with_timeouts(Duration::from_secs(5), Duration::from_secs(60));
        let stuck = write(lock.lock(&key()));
        let r = read(lock.lock(&key()));
        assert_eq!(r.lock_status(), LockStatus::Waiting);
        let started = Instant::now();
        assert_eq!(r.wait().await, LockStatus::AgeTimeout);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(r.lock_status(), LockStatus::AgeTimeout);
        let fresh = write(lock.lock(&key()));
        let r2 = read(lock.lock(&key()));
        // the stuck writer's late release does not touch the fresh lock
        lock.release(&key(), stuck, LockStatus::Done);
        assert_eq!(r2.lock_status(), LockStatus::Waiting);
        assert_eq!(lock.len(), 1);
        lock.release(&key(), fresh, LockStatus::GiveUp);
        assert_eq!(r2.wait().await, LockStatus::GiveUp);
    }

    #[tokio::test(start_paused = true)]
    async fn reader_gives_up_after_the_wait_timeout() {
        let lock = CacheLock::new_with_timeouts(Duration::from_secs(60), Duration::from_secs(2));
        let permit = write(lock.lock(&key()));
        let r = read(lock.lock(&key()));
        let started = Instant::now();
        assert_eq!(r.wait().await, LockStatus::WaitTimeout);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(r.lock_status(), LockStatus::WaitTimeout);
        // the writer keeps its permit: another lock call reads again
        assert!(!lock.lock(&key()).is_write());
        lock.release(&key(), permit, LockStatus::TransientError);
        assert_eq!(r.lock_status(), LockStatus::TransientError);
    }

    #[tokio::test]
    async fn waiting_is_not_a_final_status() {
        let lock = CacheLock::new(Duration::from_secs(10));
        let permit = write(lock.lock(&key()));
        let r = read(lock.lock(&key()));
        lock.release(&key(), permit, LockStatus::Waiting);
        assert_eq!(r.wait().await, LockStatus::Dangling);
    }

    #[test]
    fn status_round_trips_through_u8() {
        for s in [
            LockStatus::Waiting,
            LockStatus::Done,
            LockStatus::TransientError,
            LockStatus::GiveUp,
            LockStatus::Dangling,
            LockStatus::WaitTimeout,
            LockStatus::AgeTimeout,
        ] {
            assert_eq!(LockStatus::from_u8(s as u8), s);
            assert!(!s.as_str().is_empty());
        }
    }
}
