//! The chunked transfer coding (RFC 9112 §7.1): a sans-I/O decoder and the encoder.

use bytes::{BufMut, Bytes, BytesMut};

use super::common::{BODY_BUF_LIMIT, MAX_CHUNK_HEAD_SIZE, MAX_TRAILER_SIZE};
use crate::error::{Error, ErrorType, Result};

/// Where the decoder is in the chunked body.
///
/// ```text
/// chunked-body = *chunk last-chunk trailer-section CRLF
/// chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// last-chunk   = 1*("0") [ chunk-ext ] CRLF
/// ```
/// `Size` → `Data` → `DataEnd` → `Size` ... → (size 0) `Trailers` → `Done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk-data, `remaining` bytes to go.
    Data {
        /// Bytes of this chunk's data not yet returned.
        remaining: u64,
    },
    /// Expecting the CRLF after chunk-data.
    DataEnd,
    /// After the last chunk, reading trailer lines until an empty one.
    Trailers {
        /// Trailer bytes seen so far (bounded by [`MAX_TRAILER_SIZE`]).
        seen: usize,
    },
    /// The body is complete.
    Done,
}

/// What one decoding step produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Some body data (at most [`BODY_BUF_LIMIT`] bytes).
    Data(Bytes),
    /// The input ends before the next item; read more and call again.
    NeedMore,
    /// The last chunk and the trailers have been consumed.
    Done,
}

/// Decodes a chunked body out of a read buffer, consuming what it uses.
/// Chunk extensions are ignored; trailers are checked for size and discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn h1_err(msg: impl Into<String>) -> Box<Error> {
    Error::explain(ErrorType::H1Error, msg.into())
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
        }
    }

    /// The current state.
    pub fn state(&self) -> ChunkState {
        self.state
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decode the next item from `buf`, consuming the bytes it used.
    ///
    /// # Errors
    /// `H1Error` for a malformed or oversized chunk-size line (not hex, too
    /// large for 64 bits, over 8 KiB), missing CRLF after chunk data, or
    /// trailers over 64 KiB or malformed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(end) = find_crlf(&buf[..buf.len().min(MAX_CHUNK_HEAD_SIZE)]) else {
                        if buf.len() >= MAX_CHUNK_HEAD_SIZE {
                            return Err(h1_err("chunk-size line longer than 8 KiB"));
                        }
                        return Ok(Decoded::NeedMore);
                    };
                    let size = parse_chunk_size(&buf[..end])?;
                    let _ = buf.split_to(end + 2);
                    self.state = if size == 0 {
                        ChunkState::Trailers { seen: 0 }
                    } else {
                        ChunkState::Data { remaining: size }
                    };
                }
                ChunkState::Data { remaining } => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = buf.len().min(BODY_BUF_LIMIT);
                    // n fits in u64 and in usize, so both conversions are lossless
                    let n = usize::try_from(remaining).map_or(n, |r| r.min(n));
                    let data = buf.split_to(n).freeze();
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data { remaining: left }
                    };
                    return Ok(Decoded::Data(data));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(h1_err("missing CRLF after chunk data"));
                    }
                    let _ = buf.split_to(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers { seen } => {
                    let Some(end) = find_crlf(buf) else {
                        if seen + buf.len() > MAX_TRAILER_SIZE {
                            return Err(h1_err("trailer section larger than 64 KiB"));
                        }
                        return Ok(Decoded::NeedMore);
                    };
                    if end == 0 {
                        let _ = buf.split_to(2);
                        self.state = ChunkState::Done;
                        return Ok(Decoded::Done);
                    }
                    let line = &buf[..end];
                    if matches!(line[0], b' ' | b'\t') || !line.contains(&b':') {
                        return Err(h1_err("malformed trailer field"));
                    }
                    let seen = seen + end + 2;
                    if seen > MAX_TRAILER_SIZE {
                        return Err(h1_err("trailer section larger than 64 KiB"));
                    }
                    let _ = buf.split_to(end + 2);
                    self.state = ChunkState::Trailers { seen };
                }
                ChunkState::Done => return Ok(Decoded::Done),
            }
        }
    }
}

/// `chunk-size [ chunk-ext ]` without the CRLF: 1*HEXDIG, then nothing or
/// `BWS ";" ...` (extensions are not interpreted, only checked for control bytes).
fn parse_chunk_size(line: &[u8]) -> Result<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(h1_err(format!(
            "invalid chunk size {:?}",
            String::from_utf8_lossy(line)
        )));
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        // is_ascii_hexdigit above guarantees to_digit succeeds
        let d = u64::from((b as char).to_digit(16).unwrap_or(0));
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(d))
            .ok_or_else(|| h1_err("chunk size overflows 64 bits"))?;
    }
    let rest = &line[digits..];
    let ext = rest.trim_ascii_start();
    let valid_rest =
        rest.is_empty() || (ext.first() == Some(&b';') && crate::http::is_field_value(ext));
    if !valid_rest {
        return Err(h1_err(format!(
            "invalid chunk size line {:?}",
            String::from_utf8_lossy(line)
        )));
    }
    Ok(size)
}

/// Write `chunk-size CRLF` for a chunk of `len` bytes into `buf`.
pub fn encode_chunk_head(len: usize, buf: &mut BytesMut) {
    use std::fmt::Write;
    buf.reserve(18);
    // writing into a BytesMut cannot fail: it grows as needed
    let _ = write!(buf, "{len:X}\r\n");
}

/// Encode `data` as one whole chunk into `buf` (nothing for empty data: an
/// empty chunk would end the body).
pub fn encode_chunk(data: &[u8], buf: &mut BytesMut) {
    if data.is_empty() {
        return;
    }
    encode_chunk_head(data.len(), buf);
    buf.reserve(data.len() + 2);
    buf.put_slice(data);
    buf.put_slice(b"\r\n");
}

/// The last chunk with `trailers` as its trailer section (RFC 9112
/// §7.1.2), into `buf`: `0 CRLF`, `name: value CRLF` per field, `CRLF`.
/// Fields that must not be trailers (framing, routing, hop-by-hop:
/// RFC 9110 §6.5.1) are left out.
pub fn encode_last_chunk_with_trailers(trailers: &http::HeaderMap, buf: &mut BytesMut) {
    buf.put_slice(b"0\r\n");
    for (name, value) in trailers {
        if is_forbidden_trailer(name) {
            continue;
        }
        buf.put_slice(name.as_str().as_bytes());
        buf.put_slice(b": ");
        buf.put_slice(value.as_bytes());
        buf.put_slice(b"\r\n");
    }
    buf.put_slice(b"\r\n");
}

/// Fields a trailer section must not carry (RFC 9110 §6.5.1): message
/// framing, routing, and connection-specific fields.
fn is_forbidden_trailer(name: &http::HeaderName) -> bool {
    use http::header;
    [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::HOST,
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::CONTENT_TYPE,
    ]
    .contains(name)
}

/// The last chunk with an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, bool)> {
        let mut d = ChunkedDecoder::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match d.decode(&mut buf)? {
                Decoded::Data(b) => out.extend_from_slice(&b),
                Decoded::NeedMore => return Ok((out, false)),
                Decoded::Done => return Ok((out, true)),
            }
        }
    }

    #[test]
    fn last_chunk_carries_trailers_but_not_framing_fields() {
        let mut t = http::HeaderMap::new();
        t.insert("grpc-status", "0".parse().unwrap());
        t.insert("grpc-message", "ok".parse().unwrap());
        t.insert("content-length", "5".parse().unwrap());
        let mut buf = BytesMut::new();
        encode_last_chunk_with_trailers(&t, &mut buf);
        assert_eq!(&buf[..], b"0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n");
        // and our own decoder reads it as the end of a body
        assert_eq!(decode_all(&buf).unwrap(), (Vec::new(), true));
    }

    #[test]
    fn decodes_chunks_with_extensions_and_trailers() {
        let (out, done) =
            decode_all(b"5;name=val\r\nhello\r\n6 ; x\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT")
                .unwrap();
        assert_eq!(out, b"hello world");
        assert!(done);
    }

    #[test]
    fn leaves_following_bytes_in_the_buffer() {
        let mut d = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"0\r\n\r\nGET / HTTP/1.1\r\n"[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), Decoded::Done);
        assert_eq!(&buf[..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn partial_input_asks_for_more() {
        let (out, done) = decode_all(b"a\r\n01234").unwrap();
        assert_eq!(out, b"01234");
        assert!(!done);
        assert_eq!(decode_all(b"1").unwrap(), (vec![], false));
    }

    #[test]
    fn invalid_sizes_are_h1_errors() {
        for bad in [
            &b"x\r\n"[..],
            b"-1\r\n",
            b"\r\n",
            b"5 5\r\nhello\r\n",
            b"11111111111111111\r\n",
            b"5\r\nhelloXX",
            b"0\r\n bad\r\n\r\n",
        ] {
            let e = decode_all(bad).unwrap_err();
            assert_eq!(
                e.etype(),
                &ErrorType::H1Error,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn oversized_chunk_head_is_rejected() {
        let mut line = b"1;".to_vec();
        line.extend(vec![b'a'; MAX_CHUNK_HEAD_SIZE]);
        assert!(decode_all(&line).is_err());
    }

    #[test]
    fn encode_then_decode_round_trips() {
        // a deterministic spread of chunk sizes instead of a proptest dependency
        let mut seed: u32 = 12345;
        for _ in 0..200 {
            let mut wire = BytesMut::new();
            let mut expected = Vec::new();
            let n_chunks = (seed % 5) as usize;
            for i in 0..n_chunks {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let len = (seed % 70_000) as usize;
                let data: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
                encode_chunk(&data, &mut wire);
                expected.extend_from_slice(&data);
            }
            wire.extend_from_slice(LAST_CHUNK);
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            // feed in pieces of a varying size to exercise NeedMore
            let step = 1 + (seed % 5000) as usize;
            let mut d = ChunkedDecoder::new();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut fed = 0;
            loop {
                match d.decode(&mut buf).unwrap() {
                    Decoded::Data(b) => {
                        assert!(b.len() <= BODY_BUF_LIMIT);
                        out.extend_from_slice(&b)
                    }
                    Decoded::Done => break,
                    Decoded::NeedMore => {
                        assert!(fed < wire.len(), "decoder wants more than was encoded");
                        let end = (fed + step).min(wire.len());
                        buf.extend_from_slice(&wire[fed..end]);
                        fed = end;
                    }
                }
            }
            assert_eq!(out, expected);
            assert!(buf.is_empty());
        }
    }
}
