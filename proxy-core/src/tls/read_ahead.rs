//! [`ReadAhead`]: the transport under BoringSSL, read a few KiB at a time.
//!
//! BoringSSL reads a record in two exact steps, its 5-byte header and then
//! its body (it has no read-ahead of its own: `SSL_set_read_ahead` does
//! nothing), so every record costs two `recv` calls. Reading into a small
//! buffer instead serves both steps, and often the next record too, from
//! one call. The buffer is allocated when a read needs it and dropped when
//! the transport has nothing more to give (the read would block), so an
//! idle connection holds none. It is read into uninitialised: zeroing 4 KiB
//! per allocation cost about 5,000 instructions per HTTP/2 request.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::protocols::{SocketAddr, Stream, IO};

/// Bytes read from the transport per call when the reader asks for less:
/// a small record (an HTTP request, a handshake message) whole, with its header.
const READ_AHEAD: usize = 4096;

/// A transport whose small reads are served from a read-ahead buffer;
/// writes go straight through.
pub(crate) struct ReadAhead {
    inner: Stream,
    /// The bytes read and not yet served; no allocation when none are
    /// buffered and no read is under way.
    buf: BytesMut,
}

impl ReadAhead {
    pub(crate) fn new(inner: Stream) -> Self {
        ReadAhead {
            inner,
            buf: BytesMut::new(),
        }
    }

    /// Give the buffered bytes to `out`, as many as fit.
    fn serve(&mut self, out: &mut ReadBuf<'_>) {
        let n = out.remaining().min(self.buf.len());
        out.put_slice(&self.buf[..n]);
        self.buf.advance(n);
    }
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("inner", &self.inner)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl AsyncRead for ReadAhead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.buf.is_empty() {
            this.serve(out);
            return Poll::Ready(Ok(()));
        }
        if out.remaining() >= READ_AHEAD {
            // a large read gains nothing from a copy
            return Pin::new(&mut this.inner).poll_read(cx, out);
        }
        // empty: this takes back the room in front of the served bytes, or
        // allocates (without zeroing) when the buffer was given up
        this.buf.reserve(READ_AHEAD);
        let read = tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.buf);
        match read {
            Poll::Ready(Ok(_)) => {
                this.serve(out);
                Poll::Ready(Ok(()))
            }
            other => {
                // nothing buffered: an idle (or failed) connection keeps no buffer
                this.buf = BytesMut::new();
                other.map_ok(|_| ())
            }
        }
    }
}

impl AsyncWrite for ReadAhead {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl IO for ReadAhead {
    fn peer_addr(&self) -> Option<SocketAddr> {
        self.inner.peer_addr()
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.buf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_read_ready(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_reads_are_served_from_one_transport_read_in_order() {
        let (mut far, near) = tokio::io::duplex(64 * 1024);
        let mut r = ReadAhead::new(Box::new(near));
        let sent: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        far.write_all(&sent).await.unwrap();
        drop(far);
        // a 5-byte header, then 300 bytes: both from the first 4 KiB read
        let mut head = [0u8; 5];
        r.read_exact(&mut head).await.unwrap();
        assert_eq!(r.buf.len(), READ_AHEAD - 5);
        let mut body = vec![0u8; 300];
        r.read_exact(&mut body).await.unwrap();
        assert_eq!(r.buf.len(), READ_AHEAD - 305);
        // a large read bypasses the buffer once it is drained
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.unwrap();
        let got: Vec<u8> = [&head[..], &body[..], &rest[..]].concat();
        assert!(got == sent, "bytes differ from what was sent");
    }

    #[tokio::test]
    async fn an_idle_transport_leaves_no_buffer_behind() {
        let (mut far, near) = tokio::io::duplex(1024);
        let mut r = ReadAhead::new(Box::new(near));
        far.write_all(b"ping").await.unwrap();
        let mut b = [0u8; 4];
        r.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"ping");
        // nothing more to read: the read blocks and the buffer is dropped
        let mut more = [0u8; 1];
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), r.read(&mut more)).await;
        assert!(waited.is_err());
        assert_eq!(r.buf.capacity(), 0);
    }
}
