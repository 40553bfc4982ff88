//! The transport under an `h2` connection, with its writes gathered until
//! a write turn of the connection ends.
//!
//! `h2` buffers small frames, but writes a DATA frame whose payload is
//! 1 KiB or more (256 bytes when the transport reports vectored writes) as
//! two writes of its own, its buffer then the payload, and flushes at
//! once. Without [`Coalescing`] each such response cost a TLS record and a
//! `send` even when many streams' responses were ready together.
//!
//! [`Coalescing`] holds what is written, up to [`RECORD`] bytes, and
//! treats a flush that follows two or more held writes (the flush `h2`
//! makes after one payload written apart, in the middle of its turn) as
//! done without writing. The flush that ends the turn follows one held
//! write or none (`h2` writes its buffer once; a buffer of a record or more
//! goes straight through and is not counted, however many pieces the
//! transport takes it in), and writes everything held. So that nothing can
//! stay held if a writer ever ended its turn on a skipped flush, a skipped
//! flush also wakes the task, which polls the connection once more: that
//! turn ends with a flush after no write.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes gathered before they are written: one TLS record's
/// plaintext (2^14 bytes, RFC 8446 §5.1).
pub const RECORD: usize = 16 * 1024;

/// A transport whose writes are held (up to [`RECORD`] bytes) until the
/// next write that would not fit, a flush, or a shutdown.
///
/// Only for a writer that always flushes before it waits for its peer, as
/// `h2`'s connection does at the end of every write turn: bytes written
/// and never flushed are never sent.
#[derive(Debug)]
pub struct Coalescing<S> {
    inner: S,
    /// Bytes accepted from the caller and not yet written to `inner`.
    pending: Vec<u8>,
    /// Writes held since the last flush (saturating).
    writes: u8,
}

impl<S> Coalescing<S> {
    /// `inner` with no bytes held.
    pub fn new(inner: S) -> Self {
        Coalescing {
            inner,
            pending: Vec::new(),
            writes: 0,
        }
    }

    /// The transport underneath.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncWrite + Unpin> Coalescing<S> {
    /// Write every held byte to the transport. A retried write hands it
    /// the same bytes from the start, as BoringSSL requires of a write it
    /// could not finish.
    fn poll_write_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalescing<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalescing<S> {
    /// Holds `buf` when it fits beside the held bytes in [`RECORD`];
    /// otherwise writes the held bytes first, and `buf` straight through
    /// when it fills a record by itself.
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if !this.pending.is_empty() && this.pending.len() + buf.len() > RECORD {
            ready!(this.poll_write_pending(cx))?;
        }
        if this.pending.is_empty() && buf.len() >= RECORD {
            // written, not held: the transport may take it in pieces, each
            // a `poll_write` here, so these are not counted
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        if this.pending.capacity() == 0 {
            this.pending.reserve_exact(RECORD);
        }
        this.pending.extend_from_slice(buf);
        this.writes = this.writes.saturating_add(1);
        Poll::Ready(Ok(buf.len()))
    }

    /// `false`: see the module's documentation.
    fn is_write_vectored(&self) -> bool {
        false
    }

    /// After two or more held writes, done without writing, the task
    /// woken to come back (see the module's documentation); otherwise
    /// every held byte is written, the buffer released (an idle connection
    /// keeps none), then the transport flushed.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if std::mem::take(&mut this.writes) >= 2 {
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_write_pending(cx))?;
        this.pending = Vec::new();
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writes = 0;
        ready!(self.poll_write_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer that records each write it is given, and accepts at most
    /// `limit` bytes per write.
    #[derive(Default)]
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        limit: Option<usize>,
        flushes: usize,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = self.limit.map_or(buf.len(), |l| l.min(buf.len()));
            self.writes.lock().unwrap().push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flushes += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn sizes(w: &Arc<Mutex<Vec<Vec<u8>>>>) -> Vec<usize> {
        w.lock().unwrap().iter().map(Vec::len).collect()
    }

    /// Writes as `h2` makes them for one DATA frame written apart: its
    /// buffer (ending in the frame's header), then the payload, then a flush.
    async fn frame_apart(io: &mut Coalescing<Recorder>, payload: usize) {
        use tokio::io::AsyncWriteExt;
        io.write_all(&[0; 9]).await.unwrap();
        io.write_all(&vec![1; payload]).await.unwrap();
        io.flush().await.unwrap();
    }

    #[tokio::test]
    async fn frames_written_apart_go_out_together_at_the_turns_last_flush() {
        use tokio::io::AsyncWriteExt;
        let rec = Recorder::default();
        let writes = rec.writes.clone();
        let mut io = Coalescing::new(rec);
        for _ in 0..3 {
            frame_apart(&mut io, 1024).await;
        }
        assert!(sizes(&writes).is_empty(), "nothing written mid-turn");
        // the turn ends with a flush after no write
        io.flush().await.unwrap();
        assert_eq!(sizes(&writes), vec![3 * 1033]);
        assert_eq!(io.get_ref().flushes, 1);
        // or after one write (h2's buffer of small frames)
        frame_apart(&mut io, 2000).await;
        io.write_all(&[2; 100]).await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(sizes(&writes), vec![3 * 1033, 2109]);
    }

    #[tokio::test]
    async fn a_flush_after_one_write_writes_it() {
        use tokio::io::AsyncWriteExt;
        let rec = Recorder::default();
        let writes = rec.writes.clone();
        let mut io = Coalescing::new(rec);
        io.write_all(&[0; 50]).await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(sizes(&writes), vec![50]);
        assert_eq!(io.pending.capacity(), 0, "no buffer kept between turns");
    }

    #[tokio::test]
    async fn held_bytes_fill_a_record_and_a_full_payload_goes_straight_through() {
        use tokio::io::AsyncWriteExt;
        let rec = Recorder::default();
        let writes = rec.writes.clone();
        let mut io = Coalescing::new(rec);
        frame_apart(&mut io, 10_000).await;
        // the next header fits beside the 10,009 held, its payload does
        // not: what is held goes first
        frame_apart(&mut io, 10_000).await;
        assert_eq!(sizes(&writes), vec![10_018]);
        io.write_all(&[0; 9]).await.unwrap();
        // a payload of a whole record is written as it is, after what is held
        io.write_all(&[1; RECORD]).await.unwrap();
        assert_eq!(sizes(&writes), vec![10_018, 10_009, RECORD]);
        io.shutdown().await.unwrap();
        assert_eq!(sizes(&writes), vec![10_018, 10_009, RECORD]);
    }

    #[tokio::test]
    async fn a_record_or_more_taken_in_pieces_is_written_at_the_flush() {
        use tokio::io::AsyncWriteExt;
        // the transport takes at most one record per write, as BoringSSL
        // with partial writes does
        let rec = Recorder {
            limit: Some(RECORD),
            ..Recorder::default()
        };
        let writes = rec.writes.clone();
        let mut io = Coalescing::new(rec);
        io.write_all(&[7; 20_000]).await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(sizes(&writes), vec![RECORD, 20_000 - RECORD]);
    }

    /// Counts its wakes.
    #[derive(Default)]
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn a_skipped_flush_wakes_the_task_and_the_next_flush_writes() {
        let rec = Recorder::default();
        let writes = rec.writes.clone();
        let mut io = Coalescing::new(rec);
        let wakes = Arc::new(Wakes::default());
        let waker = std::task::Waker::from(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        let mut io = Pin::new(&mut io);
        assert!(matches!(
            io.as_mut().poll_write(&mut cx, &[0; 9]),
            Poll::Ready(Ok(9))
        ));
        assert!(matches!(
            io.as_mut().poll_write(&mut cx, &[1; 1024]),
            Poll::Ready(Ok(1024))
        ));
        assert!(matches!(
            io.as_mut().poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert!(sizes(&writes).is_empty());
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(matches!(
            io.as_mut().poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(sizes(&writes), vec![1033]);
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn shutdown_writes_what_is_held() {
        let rec = Recorder::default();
        let writes = rec.writes.clone();
        let mut io = Coalescing::new(rec);
        frame_apart(&mut io, 1024).await;
        tokio::io::AsyncWriteExt::shutdown(&mut io).await.unwrap();
        assert_eq!(sizes(&writes), vec![1033]);
    }

    #[tokio::test]
    async fn a_short_write_underneath_loses_and_repeats_nothing() {
        use tokio::io::AsyncWriteExt;
        let rec = Recorder {
            limit: Some(1000),
            ..Recorder::default()
        };
        let writes = rec.writes.clone();
        let mut io = Coalescing::new(rec);
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        io.write_all(&data[..3000]).await.unwrap();
        io.write_all(&data[3000..]).await.unwrap();
        io.shutdown().await.unwrap();
        let sent: Vec<u8> = writes.lock().unwrap().concat();
        assert_eq!(sent, data);
    }

    #[tokio::test]
    async fn reports_no_vectored_writes() {
        assert!(!Coalescing::new(Recorder::default()).is_write_vectored());
    }
}
