//! Body framing state machines for reading and writing HTTP/1.1 bodies
//! (RFC 9112 §6).

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::chunked::{self, ChunkedDecoder, Decoded, LAST_CHUNK};
use super::common::{self, BODY_BUF_LIMIT};
use crate::error::{Error, ErrorType, Result};
use crate::protocols::Stream;

/// How the body being read is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyReader {
    /// Exactly `remaining` more bytes.
    ContentLength {
        /// Bytes still to read.
        remaining: u64,
    },
    /// The chunked coding.
    Chunked(ChunkedDecoder),
    /// Everything until the peer closes (a response without length, or
    /// either direction after a `101 Switching Protocols`).
    UntilClose,
    /// The body is complete (or there is none).
    Done,
}

impl BodyReader {
    /// A reader for a body of `len` bytes (`Done` when 0).
    pub fn content_length(len: u64) -> Self {
        if len == 0 {
            BodyReader::Done
        } else {
            BodyReader::ContentLength { remaining: len }
        }
    }

    /// A reader for a chunked body.
    pub fn chunked() -> Self {
        BodyReader::Chunked(ChunkedDecoder::new())
    }

    /// Whether the body has been read completely.
    pub fn is_done(&self) -> bool {
        matches!(self, BodyReader::Done)
    }

    /// Read the next piece of body (at most [`BODY_BUF_LIMIT`], 60 KiB),
    /// using bytes already in `buf` first; `Ok(None)` at the end. Bytes
    /// after the body stay in `buf`.
    ///
    /// # Errors
    /// `ConnectionClosed` if the peer closes before a length-delimited body
    /// is complete, `H1Error` for bad chunked framing, `ReadTimedout` when a
    /// single read takes longer than `timeout`, `ReadError` for socket errors.
    ///
    /// # Cancel safety
    /// Not cancel safe in the chunked state: a dropped read may lose the
    /// position within a chunk header. Drop the session after cancelling.
    pub(crate) async fn read(
        &mut self,
        io: &mut Stream,
        buf: &mut BytesMut,
        timeout: Option<Duration>,
    ) -> Result<Option<Bytes>> {
        loop {
            match self {
                BodyReader::Done => return Ok(None),
                BodyReader::ContentLength { remaining } => {
                    let want = usize::try_from(*remaining)
                        .map_or(BODY_BUF_LIMIT, |r| r.min(BODY_BUF_LIMIT));
                    if buf.is_empty() {
                        // room past the end of the body: a read that comes back
                        // short tells the runtime the socket is drained, which
                        // saves a syscall when the connection is pooled
                        let room = (want + 4096).min(BODY_BUF_LIMIT);
                        let n = common::read_more(io, buf, room, timeout, "reading body").await?;
                        if n == 0 {
                            return Err(Error::explain(
                                ErrorType::ConnectionClosed,
                                format!("peer closed with {remaining} body bytes still expected"),
                            ));
                        }
                    }
                    let n = buf.len().min(want);
                    let data = buf.split_to(n).freeze();
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        *self = BodyReader::Done;
                    }
                    return Ok(Some(data));
                }
                BodyReader::UntilClose => {
                    if buf.is_empty() {
                        let n = common::read_more(io, buf, BODY_BUF_LIMIT, timeout, "reading body")
                            .await?;
                        if n == 0 {
                            *self = BodyReader::Done;
                            return Ok(None);
                        }
                    }
                    let n = buf.len().min(BODY_BUF_LIMIT);
                    return Ok(Some(buf.split_to(n).freeze()));
                }
                BodyReader::Chunked(decoder) => match decoder.decode(buf)? {
                    Decoded::Data(data) => return Ok(Some(data)),
                    Decoded::Done => {
                        *self = BodyReader::Done;
                        return Ok(None);
                    }
                    Decoded::NeedMore => {
                        let want = match decoder.state() {
                            chunked::ChunkState::Data { remaining } => usize::try_from(remaining)
                                .map_or(BODY_BUF_LIMIT, |r| r.clamp(4096, BODY_BUF_LIMIT)),
                            _ => 4096,
                        };
                        let n = common::read_more(io, buf, want, timeout, "reading chunked body")
                            .await?;
                        if n == 0 {
                            return Err(Error::explain(
                                ErrorType::ConnectionClosed,
                                "peer closed in the middle of a chunked body",
                            ));
                        }
                    }
                },
            }
        }
    }
}

/// How the body being written is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyWriter {
    /// No header has been written yet.
    Pending,
    /// Exactly `remaining` more bytes may be written.
    ContentLength {
        /// Bytes still allowed.
        remaining: u64,
    },
    /// Each write becomes a chunk; finishing writes the last chunk.
    Chunked,
    /// Raw bytes; the end is marked by closing the connection.
    UntilClose,
    /// The message has no body (HEAD response, 1xx/204/304, request without
    /// length); body writes are discarded.
    NoBody,
    /// The body is complete.
    Done,
}

/// Bodies up to this size are copied next to their chunk framing and sent
/// in one write; larger ones are written in place.
const COALESCE_LIMIT: usize = 16 * 1024;

impl BodyWriter {
    /// Whether the body is complete (or there is none): the message is over.
    pub fn is_finished(&self) -> bool {
        matches!(self, BodyWriter::Done | BodyWriter::NoBody)
    }

    /// Write `data` with this framing, after the bytes held back in
    /// `pending` (the message head, not sent yet so that head and first body
    /// piece go out in one write). Returns how many body bytes were sent (0
    /// when discarded for a body-less message). `pending` is empty afterwards.
    ///
    /// # Errors
    /// `H1Error` if `data` goes past the Content-Length or the body was
    /// already finished or no header was written; `WriteTimedout` /
    /// `WriteError` from the socket.
    pub(crate) async fn write(
        &mut self,
        io: &mut Stream,
        pending: &mut BytesMut,
        data: &[u8],
        timeout: Option<Duration>,
    ) -> Result<usize> {
        match self {
            BodyWriter::Pending => Err(Error::explain(
                ErrorType::H1Error,
                "body written before the header",
            )),
            BodyWriter::Done => Err(Error::explain(
                ErrorType::H1Error,
                "body written after it was finished",
            )),
            BodyWriter::NoBody => Ok(0),
            BodyWriter::ContentLength { remaining } => {
                if data.len() as u64 > *remaining {
                    return Err(Error::explain(
                        ErrorType::H1Error,
                        format!(
                            "body of {} bytes exceeds the {remaining} bytes left of Content-Length",
                            data.len()
                        ),
                    ));
                }
                *remaining -= data.len() as u64;
                common::write_all_after(io, pending, data, timeout, "writing body").await?;
                Ok(data.len())
            }
            BodyWriter::UntilClose => {
                common::write_all_after(io, pending, data, timeout, "writing body").await?;
                Ok(data.len())
            }
            BodyWriter::Chunked => {
                if data.is_empty() {
                    return Ok(0);
                }
                if data.len() <= COALESCE_LIMIT {
                    chunked::encode_chunk(data, pending);
                    common::write_all_after(io, pending, b"", timeout, "writing chunk").await?;
                } else {
                    chunked::encode_chunk_head(data.len(), pending);
                    common::write_all_after(io, pending, data, timeout, "writing chunk").await?;
                    common::write_all(io, b"\r\n", timeout, "writing chunk").await?;
                }
                Ok(data.len())
            }
        }
    }

    /// Whether [`BodyWriter::write_file`] can send a body in this framing
    /// (Content-Length or close-delimited: the bytes go out unframed).
    pub(crate) fn can_write_file(&self) -> bool {
        matches!(
            self,
            BodyWriter::ContentLength { .. } | BodyWriter::UntilClose
        )
    }

    /// Write `len` bytes of `file` from `offset` as body, after `pending`,
    /// with sendfile(2). Returns the number of body bytes sent.
    ///
    /// # Errors
    /// `H1Error` when the framing is not Content-Length or close-delimited
    /// (check [`BodyWriter::can_write_file`] first; nothing is written then)
    /// or `len` goes past the Content-Length; socket and file errors as for
    /// `common::send_file_after`.
    pub(crate) async fn write_file(
        &mut self,
        io: &mut Stream,
        pending: &mut BytesMut,
        file: &std::fs::File,
        offset: u64,
        len: u64,
        timeout: Option<Duration>,
    ) -> Result<u64> {
        match self {
            BodyWriter::ContentLength { remaining } if len <= *remaining => {
                *remaining -= len;
            }
            BodyWriter::ContentLength { remaining } => {
                return Err(Error::explain(
                    ErrorType::H1Error,
                    format!(
                        "body of {len} bytes exceeds the {remaining} bytes left of Content-Length"
                    ),
                ));
            }
            BodyWriter::UntilClose => {}
            _ => {
                return Err(Error::explain(
                    ErrorType::H1Error,
                    "a file body needs Content-Length or close-delimited framing",
                ))
            }
        }
        common::send_file_after(io, pending, file, offset, len, timeout, "sending body file")
            .await?;
        Ok(len)
    }

    /// End a chunked body with a trailer section (RFC 9112 §7.1.2):
    /// `0 CRLF`, each field as `name: value CRLF`, then `CRLF`; then flush.
    /// For any other framing this is [`BodyWriter::finish`] (trailers
    /// dropped).
    ///
    /// # Errors
    /// As [`BodyWriter::finish`].
    pub(crate) async fn finish_with_trailers(
        &mut self,
        io: &mut Stream,
        pending: &mut BytesMut,
        trailers: &http::HeaderMap,
        timeout: Option<Duration>,
    ) -> Result<()> {
        if *self != BodyWriter::Chunked {
            return self.finish(io, pending, timeout).await;
        }
        let mut last = BytesMut::with_capacity(64);
        chunked::encode_last_chunk_with_trailers(trailers, &mut last);
        common::write_all_after(io, pending, &last, timeout, "writing last chunk").await?;
        *self = BodyWriter::Done;
        common::flush(io, timeout, "flushing body").await
    }

    /// End the body: the last chunk when chunked, then flush.
    ///
    /// # Errors
    /// `H1Error` if a Content-Length body is short (the connection must then
    /// be closed, which the sessions do); socket errors as for `write`.
    pub(crate) async fn finish(
        &mut self,
        io: &mut Stream,
        pending: &mut BytesMut,
        timeout: Option<Duration>,
    ) -> Result<()> {
        match *self {
            BodyWriter::Pending => {
                return Err(Error::explain(
                    ErrorType::H1Error,
                    "body finished before the header was written",
                ))
            }
            BodyWriter::Done | BodyWriter::NoBody => {
                return common::write_all_after(io, pending, b"", timeout, "writing message head")
                    .await
            }
            BodyWriter::Chunked => {
                common::write_all_after(io, pending, LAST_CHUNK, timeout, "writing last chunk")
                    .await?;
            }
            BodyWriter::ContentLength { remaining } if remaining > 0 => {
                *self = BodyWriter::Done;
                return Err(Error::explain(
                    ErrorType::H1Error,
                    format!("body ended {remaining} bytes short of its Content-Length"),
                ));
            }
            BodyWriter::ContentLength { .. } | BodyWriter::UntilClose => {
                common::write_all_after(io, pending, b"", timeout, "writing message head").await?;
            }
        }
        *self = BodyWriter::Done;
        common::flush(io, timeout, "flushing body").await
    }
}
