//! Cleartext HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3): a client that
//! knows the server speaks HTTP/2 opens with the connection preface instead
//! of an HTTP/1.1 request. [`detect`] reads just enough to tell the two apart
//! and gives the bytes it read back through [`Rewind`].

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::protocols::{SocketAddr, Stream, IO};

/// The client connection preface (RFC 9113 §3.4), 24 bytes.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Read from `stream` until its first bytes either are the h2 preface or
/// cannot be (the first byte that differs), waiting at most `timeout` in all
/// (`None`: no bound).
///
/// Returns whether the preface was seen, and the stream with every byte
/// read put back in front, for the HTTP/2 or HTTP/1 session to read again.
/// An HTTP/1 request differs from the preface at its first or second byte,
/// so an HTTP/1 client is never kept waiting for 24 bytes. A client that
/// closes, errors or times out first is returned as not h2: the HTTP/1
/// session then sees the same end.
pub async fn detect(mut stream: Stream, timeout: Option<Duration>) -> (bool, Stream) {
    let mut buf = Vec::with_capacity(PREFACE.len());
    let read = async {
        while buf.len() < PREFACE.len() {
            let mut piece = [0u8; 24];
            let want = PREFACE.len() - buf.len();
            let n = match stream.read(&mut piece[..want]).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            buf.extend_from_slice(&piece[..n]);
            if !PREFACE.starts_with(&buf) {
                return false;
            }
        }
        true
    };
    let is_h2 = match timeout {
        Some(t) => tokio::time::timeout(t, read).await.unwrap_or(false),
        None => read.await,
    };
    if buf.is_empty() {
        return (is_h2, stream);
    }
    let rewound: Stream = Box::new(Rewind {
        prefix: Bytes::from(buf),
        inner: stream,
    });
    (is_h2, rewound)
}

/// A stream whose first reads return `prefix`, then the rest of `inner`.
/// Writes, addresses and TLS facts are `inner`'s.
#[derive(Debug)]
pub struct Rewind {
    prefix: Bytes,
    inner: Stream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl IO for Rewind {
    fn peer_addr(&self) -> Option<SocketAddr> {
        self.inner.peer_addr()
    }
    fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr()
    }
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.prefix.is_empty() {
            self.inner.poll_read_ready(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }
    fn ssl_digest(&self) -> Option<std::sync::Arc<crate::tls::SslDigest>> {
        self.inner.ssl_digest()
    }
    fn can_send_file(&self) -> bool {
        self.inner.can_send_file()
    }
    fn poll_send_file(
        &self,
        cx: &mut Context<'_>,
        file: &std::fs::File,
        offset: u64,
        count: usize,
    ) -> Poll<std::io::Result<usize>> {
        // writes go straight to the inner stream (the prefix is read-side only)
        self.inner.poll_send_file(cx, file, offset, count)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn run(client_sends: &'static [u8]) -> (bool, Vec<u8>) {
        let (a, mut b) = tokio::io::duplex(1024);
        b.write_all(client_sends).await.unwrap();
        drop(b); // the rest of the stream is its end
        let (h2, mut s) = detect(Box::new(a), Some(Duration::from_secs(5))).await;
        let mut all = Vec::new();
        s.read_to_end(&mut all).await.unwrap();
        (h2, all)
    }

    #[tokio::test]
    async fn the_preface_is_detected_and_given_back() {
        let mut sent = PREFACE.to_vec();
        sent.extend_from_slice(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        let sent: &'static [u8] = Box::leak(sent.into_boxed_slice());
        let (h2, all) = run(sent).await;
        assert!(h2);
        assert_eq!(all, sent);
    }

    #[tokio::test]
    async fn a_short_http1_request_is_not_h2_and_is_given_back() {
        // 18 bytes, shorter than the preface: must not wait for 24
        let (h2, all) = run(b"GET / HTTP/1.0\r\n\r\n").await;
        assert!(!h2);
        assert_eq!(all, b"GET / HTTP/1.0\r\n\r\n");
    }

    #[tokio::test]
    async fn a_pri_lookalike_is_not_h2() {
        let (h2, all) = run(b"PRI * HTTP/1.1\r\n\r\n").await;
        assert!(!h2);
        assert_eq!(all, b"PRI * HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn an_http1_client_is_not_kept_waiting() {
        let (a, mut b) = tokio::io::duplex(1024);
        // keep `b` open: the decision must come from the first byte alone
        b.write_all(b"G").await.unwrap();
        let (h2, _s) = tokio::time::timeout(Duration::from_secs(5), detect(Box::new(a), None))
            .await
            .unwrap();
        assert!(!h2);
    }
}
