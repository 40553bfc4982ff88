//! Reads of entry files that would block, done on io_uring instead of the
//! blocking pool.
//!
//! A lookup first reads an entry without blocking (`preadv2` with
//! `RWF_NOWAIT`, see [`super::hit::open_entry_cached`]). When its bytes
//! are not in the page cache, handing the read to a blocking-pool thread
//! costs two thread wake-ups and their context switches (about five
//! futex calls) on top of the read. Here the read is submitted to an
//! io_uring instead: the kernel reads the pages itself (for a buffered
//! file, without a worker thread) and posts the completion to an eventfd
//! that the async worker's reactor watches. One `io_uring_enter` and one
//! eventfd read replace the hand-off.
//!
//! # Shape
//! - One ring per worker thread (created on its first use there), driven
//!   by a *reaper* task spawned on that thread's runtime: it waits for the
//!   eventfd, drains the completion queue and wakes the waiting reads.
//! - Every read owns its buffer and file in the ring's table until the
//!   kernel's completion arrives, also when the reading future is dropped
//!   first (its slot is then *abandoned* and freed by the reaper), so the
//!   kernel never writes into freed memory nor reads a closed descriptor.
//! - A ring is never freed: when its runtime shuts down (the reaper task is
//!   dropped) the thread's next read makes a new ring and the old one, with
//!   whatever it still has in flight, is leaked. A few pages per runtime.
//! - [`read_at`] returns `None` when there is no usable ring (io_uring
//!   disabled by `kernel.io_uring_disabled` or a seccomp filter, a kernel
//!   before 5.6, no tokio reactor) or the ring is full: the caller then uses
//!   the blocking pool, as before.

use std::cell::Cell;
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use io_uring::{opcode, types, IoUring};
use parking_lot::Mutex;
use tokio::io::unix::AsyncFd;

/// Submission queue entries per ring, and the most reads in flight on it.
const RING_ENTRIES: u32 = 128;

/// A ring and its table of reads in flight.
struct Ring {
    inner: Mutex<Inner>,
    /// The eventfd the kernel signals on every completion.
    events: AsyncFd<OwnedFd>,
    /// False once the reaper task has ended (its runtime shut down).
    alive: AtomicBool,
}

struct Inner {
    ring: IoUring,
    /// Reads in flight or completed but not yet taken, by `user_data`.
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
}

/// One read: the buffer the kernel writes and the file it reads, owned
/// here until the completion arrives.
struct Slot {
    buf: Vec<u8>,
    file: File,
    state: SlotState,
}

enum SlotState {
    /// Submitted; the waker of the future waiting for it.
    Waiting(Option<Waker>),
    /// The kernel's result: bytes read, or a negated errno.
    Done(i32),
    /// The future was dropped: free the slot when the completion arrives.
    Abandoned,
}

thread_local! {
    /// This thread's ring: `Some(None)` when making one failed (not tried
    /// again on this thread).
    static RING: Cell<Option<Option<&'static Ring>>> = const { Cell::new(None) };
}

/// This thread's live ring, made on first use.
fn ring() -> Option<&'static Ring> {
    RING.with(|cell| {
        match cell.get() {
            Some(Some(r)) if r.alive.load(Ordering::Acquire) => return Some(r),
            Some(None) => return None,
            // none yet, or its runtime is gone: make a new one
            _ => {}
        }
        let made = Ring::new().map_err(|e| log::debug!("disk cache: no io_uring: {e}"));
        let r = made.ok();
        cell.set(Some(r));
        r
    })
}

impl Ring {
    /// A leaked ring with its reaper spawned on the current runtime.
    fn new() -> io::Result<&'static Ring> {
        let handle =
            tokio::runtime::Handle::try_current().map_err(|e| io::Error::other(e.to_string()))?;
        let ring = IoUring::new(RING_ENTRIES)?;
        // SAFETY: eventfd(2) takes no pointers; a non-negative result is a
        // new descriptor that nothing else owns.
        #[allow(unsafe_code)]
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `efd` was just returned by eventfd(2) and is owned here.
        #[allow(unsafe_code)]
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        ring.submitter().register_eventfd(efd.as_raw_fd())?;
        let events = {
            let _entered = handle.enter();
            // SAFETY: `efd` is a valid descriptor that the AsyncFd owns and
            // that is never replaced nor closed while registered (the ring
            // is leaked, never dropped).
            #[allow(unsafe_code)]
            unsafe {
                AsyncFd::register(efd)?
            }
        };
        let ring: &'static Ring = Box::leak(Box::new(Ring {
            inner: Mutex::new(Inner {
                ring,
                slots: Vec::new(),
                free: Vec::new(),
            }),
            events,
            alive: AtomicBool::new(true),
        }));
        handle.spawn(ring.reap());
        Ok(ring)
    }

    /// The reaper: on every eventfd signal, hand out the completions.
    async fn reap(&'static self) {
        /// Marks the ring dead when the task ends or is dropped.
        struct Alive(&'static AtomicBool);
        impl Drop for Alive {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _alive = Alive(&self.alive);
        loop {
            let Ok(mut guard) = self.events.readable().await else {
                return;
            };
            let mut count = [0u8; 8];
            // SAFETY: read(2) of the eventfd's 8-byte counter into `count`.
            #[allow(unsafe_code)]
            let n = unsafe {
                libc::read(
                    self.events.get_ref().as_raw_fd(),
                    count.as_mut_ptr().cast(),
                    count.len(),
                )
            };
            if n < 0 {
                // EAGAIN: nothing new since the last drain
                guard.clear_ready();
            }
            self.inner.lock().drain();
        }
    }
}

impl Inner {
    /// Move every completion into its slot, waking its reader; free the
    /// slots of abandoned reads.
    fn drain(&mut self) {
        let done: Vec<(u64, i32)> = self
            .ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (key, res) in done {
            let key = key as usize;
            let Some(Some(slot)) = self.slots.get_mut(key) else {
                continue;
            };
            match std::mem::replace(&mut slot.state, SlotState::Done(res)) {
                SlotState::Waiting(waker) => {
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
                SlotState::Abandoned => {
                    self.slots[key] = None;
                    self.free.push(key);
                }
                SlotState::Done(_) => {}
            }
        }
    }

    /// Slots taken: reads in flight, abandoned or not yet collected.
    fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Submit a read of `n` bytes of `file` at `at`; its slot's key, or
    /// an error when the ring is full or refuses it: `Err(Some(file))`
    /// when nothing was queued, `Err(None)` when the submission failed
    /// after queueing (the slot keeps the file until the kernel is done).
    fn submit(&mut self, file: File, at: u64, n: usize) -> Result<usize, Option<File>> {
        if self.in_flight() >= RING_ENTRIES as usize || u32::try_from(n).is_err() {
            return Err(Some(file));
        }
        let key = match self.free.pop() {
            Some(k) => k,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        let mut buf = Vec::with_capacity(n);
        // n fits in u32: checked above
        let entry = opcode::Read::new(types::Fd(file.as_raw_fd()), buf.as_mut_ptr(), n as u32)
            .offset(at)
            .build()
            .user_data(key as u64);
        // SAFETY: the buffer (heap memory of `n` bytes that does not move
        // when the Vec does) and the descriptor are kept in the slot until
        // the completion for `key` is drained, or for ever if the ring is
        // leaked with the read in flight; the kernel writes nothing else.
        #[allow(unsafe_code)]
        let pushed = unsafe { self.ring.submission().push(&entry) };
        if pushed.is_err() {
            self.free.push(key);
            return Err(Some(file));
        }
        self.slots[key] = Some(Slot {
            buf,
            file,
            state: SlotState::Waiting(None),
        });
        if let Err(e) = self.ring.submit() {
            // the entry stays queued and may go with a later submit, so its
            // buffer and file stay in the slot until it completes; this
            // read does not wait for that
            log::debug!("disk cache: io_uring submit: {e}");
            if let Some(slot) = self.slots[key].as_mut() {
                slot.state = SlotState::Abandoned;
            }
            return Err(None);
        }
        Ok(key)
    }
}

/// Read `n` bytes of `file` at byte `at` on this thread's io_uring,
/// without blocking the thread. Returns the file back with the bytes read
/// (fewer than `n` only at the end of the file) or the read's error; `None`
/// when io_uring cannot take the read (see the module docs): the caller
/// then reads another way (the file is not given back).
pub(crate) async fn read_at(file: File, at: u64, n: usize) -> Option<(File, io::Result<Bytes>)> {
    let ring = ring()?;
    let key = ring.inner.lock().submit(file, at, n).ok()?;
    Some(
        ReadAt {
            ring,
            key: Some(key),
        }
        .await,
    )
}

/// A submitted read; abandons its slot when dropped before completion.
struct ReadAt {
    ring: &'static Ring,
    key: Option<usize>,
}

impl Future for ReadAt {
    type Output = (File, io::Result<Bytes>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(key) = self.key else {
            return Poll::Pending;
        };
        let mut inner = self.ring.inner.lock();
        inner.drain();
        let Some(Some(slot)) = inner.slots.get_mut(key) else {
            // unreachable: the slot is ours until taken below
            return Poll::Pending;
        };
        let res = match &mut slot.state {
            SlotState::Done(res) => *res,
            SlotState::Waiting(waker) => {
                *waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            SlotState::Abandoned => return Poll::Pending,
        };
        let Some(mut slot) = inner.slots[key].take() else {
            return Poll::Pending;
        };
        inner.free.push(key);
        drop(inner);
        self.key = None;
        let out = match usize::try_from(res) {
            Ok(read) => {
                // SAFETY: the kernel reported `read` bytes written into the
                // buffer's first bytes, and `read <= n = capacity`.
                #[allow(unsafe_code)]
                unsafe {
                    slot.buf.set_len(read.min(slot.buf.capacity()))
                };
                Ok(Bytes::from(std::mem::take(&mut slot.buf)))
            }
            Err(_) => Err(io::Error::from_raw_os_error(-res)),
        };
        Poll::Ready((slot.file, out))
    }
}

impl Drop for ReadAt {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut inner = self.ring.inner.lock();
        let finished = match inner.slots.get_mut(key) {
            Some(Some(slot)) => match slot.state {
                SlotState::Done(_) => true,
                _ => {
                    slot.state = SlotState::Abandoned;
                    false
                }
            },
            _ => false,
        };
        if finished {
            inner.slots[key] = None;
            inner.free.push(key);
        }
    }
}

/// Whether reads here go through io_uring (for tests and logs).
#[cfg(test)]
pub(crate) fn available() -> bool {
    ring().is_some()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file_with(data: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(data)
            .unwrap();
        (dir, File::open(&path).unwrap())
    }

    #[tokio::test]
    async fn reads_a_range_the_end_of_a_file_and_many_at_once() {
        if !available() {
            eprintln!("io_uring unavailable here: the blocking pool is used");
            return;
        }
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (_dir, f) = file_with(&data);
        let (f, got) = read_at(f, 1000, 5000).await.unwrap();
        assert_eq!(got.unwrap(), data[1000..6000]);
        // past the end: a short read, then an empty one
        let (f, got) = read_at(f, 99_000, 5000).await.unwrap();
        assert_eq!(got.unwrap(), data[99_000..]);
        let (_f, got) = read_at(f, 200_000, 10).await.unwrap();
        assert!(got.unwrap().is_empty());
        // more reads than the ring holds: the excess is refused, not lost
        let reads = (0..RING_ENTRIES as usize + 40).map(|i| {
            let f = File::open(_dir.path().join("f")).unwrap();
            async move { (i, read_at(f, i as u64 * 10, 10).await) }
        });
        let mut served = 0;
        for (i, r) in futures_join_all(reads).await {
            if let Some((_, got)) = r {
                assert_eq!(got.unwrap(), data[i * 10..i * 10 + 10]);
                served += 1;
            }
        }
        assert!(served >= RING_ENTRIES as usize, "{served}");
    }

    #[tokio::test]
    async fn a_dropped_read_frees_its_slot_when_the_kernel_is_done() {
        if !available() {
            return;
        }
        let (dir, _) = file_with(&[7; 4096]);
        for _ in 0..3 * RING_ENTRIES {
            let f = File::open(dir.path().join("f")).unwrap();
            // polled once (submitted), then dropped
            let mut read = Box::pin(read_at(f, 0, 4096));
            let _ = futures_poll_once(read.as_mut()).await;
        }
        // the reaper frees the abandoned slots as the kernel completes them
        let ring = ring().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while ring.inner.lock().in_flight() > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("abandoned slots freed");
        let f = File::open(dir.path().join("f")).unwrap();
        let (_, got) = read_at(f, 0, 4096).await.expect("ring not full");
        assert_eq!(got.unwrap(), vec![7; 4096]);
    }

    #[test]
    fn a_new_runtime_on_the_thread_gets_a_new_ring() {
        for _ in 0..3 {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if !available() {
                    return;
                }
                let (_dir, f) = file_with(b"hello");
                let (_, got) = read_at(f, 0, 5).await.unwrap();
                assert_eq!(got.unwrap(), &b"hello"[..]);
            });
        }
    }

    /// Poll `fut` once.
    async fn futures_poll_once<F: Future + Unpin>(mut fut: F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut fut).poll(cx))).await
    }

    /// Run all of `futs` concurrently on this task.
    async fn futures_join_all<F: Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
        let mut pending: Vec<Pin<Box<F>>> = futs.map(Box::pin).collect();
        let mut out: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut all = true;
            for (i, f) in pending.iter_mut().enumerate() {
                if out[i].is_none() {
                    match f.as_mut().poll(cx) {
                        Poll::Ready(v) => out[i] = Some(v),
                        Poll::Pending => all = false,
                    }
                }
            }
            if all {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        out.into_iter().flatten().collect()
    }
}
