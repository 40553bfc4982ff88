//! Cache lock (placeholder API until the lock implementation lands on this
//! branch): every caller is a writer.

use std::time::Duration;

use crate::key::CacheKey;

/// Why a lock was released, as the waiters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStatus {
    /// Still held.
    Waiting,
    /// The writer stored the entry.
    Done,
    /// The writer failed transiently; retry.
    TransientError,
    /// The writer found the response uncacheable; do not wait again.
    GiveUp,
    /// The writer went away without releasing.
    Dangling,
    /// The reader waited too long.
    WaitTimeout,
    /// The writer held the lock too long.
    AgeTimeout,
}

/// A lock against stampedes.
#[derive(Debug)]
pub struct CacheLock {
    _age_timeout: Duration,
}

/// The permit of the one writer.
#[derive(Debug)]
pub struct WritePermit(());

/// A waiter's handle.
#[derive(Debug)]
pub struct ReadLock(());

/// The outcome of [`CacheLock::lock`].
#[derive(Debug)]
pub enum Locked {
    /// This caller fills the entry.
    Write(WritePermit),
    /// Another caller fills it; wait.
    Read(ReadLock),
}

impl CacheLock {
    /// A lock whose writers are ignored after `age_timeout`.
    pub fn new(age_timeout: Duration) -> Self {
        CacheLock {
            _age_timeout: age_timeout,
        }
    }
    /// Take the lock for `key`.
    pub fn lock(&self, _key: &CacheKey) -> Locked {
        Locked::Write(WritePermit(()))
    }
    /// Release the lock for `key`.
    pub fn release(&self, _key: &CacheKey, _permit: WritePermit, _status: LockStatus) {}
}

impl ReadLock {
    /// Wait for the writer.
    pub async fn wait(&self) {}
    /// Why the wait ended.
    pub fn lock_status(&self) -> LockStatus {
        LockStatus::Done
    }
}
