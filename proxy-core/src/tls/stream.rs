//! A TLS connection over a [`Stream`](crate::protocols::Stream), usable wherever a `Stream` is.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_boring::SslStream;

use crate::protocols::{SocketAddr, IO};
use crate::tls::read_ahead::ReadAhead;
use crate::tls::SslDigest;

/// The most plaintext one TLS record carries (RFC 8446 §5.1: 2^14 bytes).
const MAX_RECORD_PLAINTEXT: usize = 16 * 1024;

/// A TLS connection whose handshake has finished, over a TCP or Unix
/// [`Stream`](crate::protocols::Stream).
///
/// Reads and writes carry plaintext; the addresses are those of the
/// transport underneath; [`IO::ssl_digest`] gives the handshake's facts,
/// taken once when it finished. Shutting it down sends a TLS `close_notify`
/// before closing the transport.
///
/// Vectored writes are supported: pieces written together (a message head
/// and a small body, an HTTP/2 frame header and its payload) are packed
/// into one TLS record of up to 16 KiB and leave in one system call, where
/// writing them one by one would cost a record and a call each.
pub struct TlsStream {
    inner: SslStream<ReadAhead>,
    digest: Arc<SslDigest>,
    /// A read has returned the end of the stream (`close_notify`) or an
    /// error: later reads go to BoringSSL, which repeats it, whatever the
    /// socket's readiness.
    read_ended: bool,
}

impl TlsStream {
    /// Wrap a connection whose handshake has just finished; reads its digest.
    pub(crate) fn new(inner: SslStream<ReadAhead>) -> Self {
        let digest = Arc::new(SslDigest::from_ssl(inner.ssl()));
        TlsStream {
            inner,
            digest,
            read_ended: false,
        }
    }

    /// The BoringSSL connection, for facts the digest does not carry.
    pub fn ssl(&self) -> &boring::ssl::SslRef {
        self.inner.ssl()
    }

    /// The handshake's facts.
    pub fn digest(&self) -> &Arc<SslDigest> {
        &self.digest
    }
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("transport", self.inner.get_ref())
            .field("digest", &self.digest)
            .finish()
    }
}

impl TlsStream {
    /// Whether a read could return something now: BoringSSL holds decrypted
    /// bytes, the transport has bytes (buffered or in the socket), or the
    /// reading side has ended (a read returns that again at once). When
    /// neither, the context's waker is registered with the socket.
    ///
    /// BoringSSL reads exactly the record it is working on and no further
    /// (it has no read-ahead), so with no decrypted bytes pending it can only
    /// go on with bytes from the transport.
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.read_ended || self.inner.ssl().pending() > 0 {
            return Poll::Ready(Ok(()));
        }
        self.inner.get_ref().poll_read_ready(cx)
    }
}

impl AsyncRead for TlsStream {
    /// Reads plaintext. When nothing is decrypted and the socket has nothing,
    /// returns `Pending` without calling `SSL_read`, which would only say it
    /// wants more (at a cost of about 600 instructions, most of them clearing
    /// BoringSSL's error queue): a keep-alive or HTTP/2 connection polls its
    /// reader once more after every message it has read.
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() > 0 && self.poll_readable(cx).is_pending() {
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &read {
            Poll::Ready(Err(_)) => self.read_ended = true,
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                self.read_ended = true;
            }
            _ => {}
        }
        read
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    /// Writes the pieces as one record: the first piece alone when it fills
    /// a record or is the only one, else a copy of the pieces' first
    /// 16 KiB (`MAX_RECORD_PLAINTEXT`) at most. Either way the bytes handed
    /// to BoringSSL are a prefix of the caller's, at least as long as on the
    /// previous attempt when a write is retried with the same (or more)
    /// data, as BoringSSL requires of a retried write.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut pieces = bufs.iter().filter(|b| !b.is_empty());
        let Some(first) = pieces.next() else {
            return Poll::Ready(Ok(0));
        };
        if first.len() >= MAX_RECORD_PLAINTEXT || pieces.next().is_none() {
            return Pin::new(&mut self.inner).poll_write(cx, first);
        }
        let total = bufs
            .iter()
            .map(|b| b.len())
            .sum::<usize>()
            .min(MAX_RECORD_PLAINTEXT);
        let mut joined = Vec::with_capacity(total);
        for b in bufs {
            let room = total - joined.len();
            if room == 0 {
                break;
            }
            joined.extend_from_slice(&b[..b.len().min(room)]);
        }
        Pin::new(&mut self.inner).poll_write(cx, &joined)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl IO for TlsStream {
    fn peer_addr(&self) -> Option<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Ready when BoringSSL holds decrypted bytes, the transport is
    /// readable, or a read has already returned the end or an error (see
    /// `poll_readable`).
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_readable(cx)
    }

    fn ssl_digest(&self) -> Option<Arc<SslDigest>> {
        Some(self.digest.clone())
    }
}
