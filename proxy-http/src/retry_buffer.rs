//! The request-body retry buffer.
//!
//! A request sent on a pooled connection that the upstream had already
//! closed fails on first use; the request may be sent again on a fresh
//! connection only if its body can be replayed. The body pieces read from the
//! client are kept here up to [`RetryBuffer::CAPACITY`] bytes (Pingora's 64
//! KiB); past that the buffer is truncated and the request is not retried.

use bytes::Bytes;

/// The request body read so far, for replay on a retry.
#[derive(Debug, Default)]
pub(crate) struct RetryBuffer {
    chunks: Vec<Bytes>,
    len: usize,
    truncated: bool,
    /// The downstream body ended: everything is in `chunks` (unless truncated).
    complete: bool,
}

impl RetryBuffer {
    /// The most body bytes kept for a retry, in bytes.
    pub(crate) const CAPACITY: usize = 64 * 1024;

    /// Record a piece read from the client (`Bytes` clones share the memory).
    pub(crate) fn record(&mut self, piece: &Bytes) {
        if self.truncated {
            return;
        }
        if self.len + piece.len() > Self::CAPACITY {
            self.truncated = true;
            self.chunks = Vec::new();
            return;
        }
        self.len += piece.len();
        self.chunks.push(piece.clone());
    }

    /// The client's body has ended.
    pub(crate) fn set_complete(&mut self) {
        self.complete = true;
    }

    /// Whether the body has ended.
    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// Whether a retry can replay everything sent so far.
    pub(crate) fn replayable(&self) -> bool {
        !self.truncated
    }

    /// The recorded pieces, in order.
    pub(crate) fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_pieces_until_capacity() {
        let mut b = RetryBuffer::default();
        b.record(&Bytes::from_static(b"abc"));
        b.record(&Bytes::from_static(b"def"));
        assert!(b.replayable());
        assert_eq!(b.chunks().concat(), b"abcdef");
    }

    #[test]
    fn truncates_past_capacity() {
        let mut b = RetryBuffer::default();
        b.record(&Bytes::from(vec![0u8; RetryBuffer::CAPACITY]));
        assert!(b.replayable());
        b.record(&Bytes::from_static(b"x"));
        assert!(!b.replayable());
        assert!(b.chunks().is_empty());
    }
}
