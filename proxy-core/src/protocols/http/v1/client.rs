//! The HTTP/1.1 client session: write requests to and read responses from
//! an upstream server (RFC 9112).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, Method, StatusCode, Version};
use tokio::io::AsyncWriteExt;

use super::body::{BodyReader, BodyWriter};
use super::common::{self, HeaderLimits, TransferCoding};
use super::head::{self, HeadParse};
use super::idle_timer::IdleTimer;
use crate::error::{Error, ErrorType, Result, RetryType};
use crate::http::{FieldLines, RequestHeader, ResponseHeader};
use crate::protocols::Stream;

/// How much room (bytes) the first read of a response gets: enough for the
/// head and a 16 KiB body together (nginx's `proxy_buffer_size` is 4–16 KiB;
/// the body pieces after it are read up to 60 KiB at a time anyway). Kept
/// under 64 KiB: glibc's `free` of a chunk that large first consolidates its
/// fast bins, a cost paid on every request.
const RESPONSE_READ_SIZE: usize = 32 * 1024;
/// One upstream HTTP/1.1 connection, carrying one request at a time.
///
/// [`HttpSession::write_request_header`], [`HttpSession::write_body`],
/// [`HttpSession::finish_body`], then [`HttpSession::read_response_header`]
/// (repeat while the status is 1xx) and [`HttpSession::read_body_bytes`];
/// finally [`HttpSession::reuse`] returns the connection for the pool.
#[derive(Debug)]
pub struct HttpSession {
    stream: Stream,
    buf: BytesMut,
    request_written: Option<Box<RequestHeader>>,
    response_header: Option<Box<ResponseHeader>>,
    body_reader: BodyReader,
    body_writer: BodyWriter,
    /// The request head, serialized but held back so that it goes out in one
    /// write with the first body piece (or at `finish_body`).
    pending_head: BytesMut,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    limits: HeaderLimits,
    /// The exchange requires closing the connection afterwards.
    must_close: bool,
    upgraded: bool,
    /// A final (non-1xx) response header has been read.
    final_response: bool,
    body_bytes_read: usize,
    body_bytes_sent: usize,
}

impl HttpSession {
    /// A session over a connected stream, without read/write timeouts and
    /// with the default head limits (64 KiB, 256 headers).
    pub fn new(stream: Stream) -> Self {
        HttpSession {
            stream,
            buf: BytesMut::new(),
            request_written: None,
            response_header: None,
            body_reader: BodyReader::Done,
            body_writer: BodyWriter::Pending,
            pending_head: BytesMut::new(),
            read_timeout: None,
            write_timeout: None,
            limits: HeaderLimits::default(),
            must_close: false,
            upgraded: false,
            final_response: false,
            body_bytes_read: 0,
            body_bytes_sent: 0,
        }
    }

    /// Timeout for each read from the upstream; `None` waits forever.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// Timeout for each write to the upstream; `None` waits forever.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// Limits on the response head (default 64 KiB, 256 headers).
    pub fn set_header_limits(&mut self, limits: HeaderLimits) {
        self.limits = limits;
    }

    /// Write the request head: request line with the raw target, headers in
    /// their original case and order. The body is framed by the request's
    /// `Content-Length` or `Transfer-Encoding: chunked`; with neither it has
    /// no body. Returns the number of head bytes written.
    ///
    /// # Errors
    /// Source Upstream: `InternalError` if a request was already written;
    /// `InvalidHTTPHeader` for an invalid Content-Length or a
    /// Transfer-Encoding not ending in chunked; `WriteTimedout`/`WriteError`.
    pub async fn write_request_header(&mut self, req: Box<RequestHeader>) -> Result<usize> {
        if self.request_written.is_some() {
            return Err(Error::explain(
                ErrorType::InternalError,
                "a request was already written on this session",
            )
            .into_in());
        }
        self.body_writer = match common::transfer_coding(&*req) {
            TransferCoding::Chunked => BodyWriter::Chunked,
            TransferCoding::Absent => {
                match common::content_length(&*req, ErrorType::InvalidHTTPHeader)
                    .map_err(Error::into_in)?
                {
                    Some(len) => BodyWriter::ContentLength { remaining: len },
                    None => BodyWriter::NoBody,
                }
            }
            _ => {
                return Err(Error::explain(
                    ErrorType::InvalidHTTPHeader,
                    "request Transfer-Encoding must end in chunked",
                )
                .into_in())
            }
        };
        if !common::is_keepalive(req.http_version(), &*req) {
            self.must_close = true;
        }
        let mut out = BytesMut::with_capacity(512);
        head::request_to_wire(&req, &mut out);
        self.request_written = Some(req);
        let len = out.len();
        if !matches!(
            self.body_writer,
            BodyWriter::NoBody | BodyWriter::ContentLength { remaining: 0 }
        ) {
            // held back: sent with the first body piece or by finish_body
            self.pending_head = out;
            return Ok(len);
        }
        let r = async {
            common::write_all(
                &mut self.stream,
                &out,
                self.write_timeout,
                "writing request header",
            )
            .await?;
            common::flush(
                &mut self.stream,
                self.write_timeout,
                "writing request header",
            )
            .await
        }
        .await;
        r.map(|_| len).map_err(|e| self.fail(e))
    }

    fn fail(&mut self, e: Box<Error>) -> Box<Error> {
        self.must_close = true;
        e.into_up()
    }

    /// Write a piece of the request body (one chunk when chunked; after a
    /// `101`, raw bytes).
    ///
    /// # Errors
    /// `H1Error` before the header, past the Content-Length or after
    /// finishing; `WriteTimedout`/`WriteError` (source Upstream).
    pub async fn write_body(&mut self, data: &[u8]) -> Result<()> {
        match self
            .body_writer
            .write(
                &mut self.stream,
                &mut self.pending_head,
                data,
                self.write_timeout,
            )
            .await
        {
            Ok(n) => {
                self.body_bytes_sent += n;
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// End the request body (the last chunk when chunked) and flush.
    ///
    /// # Errors
    /// `H1Error` if a Content-Length body is short; socket errors.
    pub async fn finish_body(&mut self) -> Result<()> {
        match self
            .body_writer
            .finish(&mut self.stream, &mut self.pending_head, self.write_timeout)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Read the next response head. A 1xx head is returned like any other:
    /// call again for the final one (after a `101` to an upgrade request the
    /// connection is a raw byte pipe and no further head comes).
    ///
    /// # Errors
    /// Source Upstream: `ConnectionClosed` if the upstream closes before
    /// sending a byte (retryable on a reused connection: `RetryType::ReusedOnly`)
    /// or in the middle of the head; `InvalidHTTPHeader` for a malformed or
    /// oversized head or an invalid/conflicting Content-Length;
    /// `ReadTimedout`; `ReadError`.
    ///
    /// # Cancel safety
    /// Cancel safe: bytes read so far stay buffered.
    pub async fn read_response_header(&mut self) -> Result<()> {
        let r = self.read_response_header_inner(None).await;
        r.map_err(|e| self.fail(e))
    }

    /// As [`HttpSession::read_response_header`], waiting for the first
    /// byte with `timer` (the downstream connection's, free while its
    /// request is in flight) instead of a timer registered and cancelled in
    /// the runtime's wheel for every response.
    pub(crate) async fn read_response_header_with(&mut self, timer: &mut IdleTimer) -> Result<()> {
        let r = self.read_response_header_inner(Some(timer)).await;
        r.map_err(|e| self.fail(e))
    }

    async fn read_response_header_inner(&mut self, timer: Option<&mut IdleTimer>) -> Result<()> {
        let Some(req) = self.request_written.as_deref() else {
            return Error::e_explain(
                ErrorType::InternalError,
                "response read before a request was written",
            );
        };
        if self.final_response {
            return Error::e_explain(
                ErrorType::InternalError,
                "the final response header was already read",
            );
        }
        let is_head = *req.method() == Method::HEAD;
        let is_upgrade_req = common::is_upgrade(req.http_version(), req);
        let mut got_any = !self.buf.is_empty();
        if let (Some(timer), false) = (timer, got_any) {
            common::wait_readable_with(
                &self.stream,
                timer,
                self.read_timeout,
                "reading response header",
            )
            .await?;
        }
        let (resp, _len) = loop {
            if !self.buf.is_empty() {
                if let HeadParse::Complete(resp, len) =
                    head::parse_response(&mut self.buf, &self.limits)?
                {
                    break (resp, len);
                }
            }
            // A large first read: a small response (head and body) then
            // arrives in one syscall. The buffer lives only for this exchange.
            let n = common::read_more(
                &mut self.stream,
                &mut self.buf,
                RESPONSE_READ_SIZE,
                self.read_timeout,
                "reading response header",
            )
            .await?;
            if n == 0 {
                let mut e = Error::explain(
                    ErrorType::ConnectionClosed,
                    if got_any {
                        "upstream closed in the middle of the response header"
                    } else {
                        "upstream closed before sending a response"
                    },
                );
                if !got_any {
                    // an idle pooled connection the upstream closed: safe to retry on a new one
                    e.set_retry_type(RetryType::ReusedOnly);
                }
                return Err(e);
            }
            got_any = true;
        };
        let status = resp.status_code();
        if status == StatusCode::SWITCHING_PROTOCOLS && is_upgrade_req {
            self.upgraded = true;
            self.final_response = true;
            self.body_reader = BodyReader::UntilClose;
            self.body_writer = BodyWriter::UntilClose;
        } else if status.is_informational() {
            // RFC 9110 §15.2: 1xx has no body; the final response follows
            self.body_reader = BodyReader::Done;
        } else {
            self.final_response = true;
            self.body_reader = response_body_reader(is_head, &resp, &mut self.must_close)?;
            if !common::is_keepalive(resp.http_version(), &resp) {
                self.must_close = true;
            }
        }
        self.response_header = Some(Box::new(resp));
        Ok(())
    }

    /// The last response header read (a 1xx one until the final arrives).
    pub fn resp_header(&self) -> Option<&ResponseHeader> {
        self.response_header.as_deref()
    }

    /// The last response header read, mutable.
    pub fn resp_header_mut(&mut self) -> Option<&mut ResponseHeader> {
        self.response_header.as_deref_mut()
    }

    /// Take the last response header read out of the session (the body
    /// framing it decided stays in force), to forward it without a copy.
    pub fn take_resp_header(&mut self) -> Option<Box<ResponseHeader>> {
        self.response_header.take()
    }

    /// The request written, if any.
    pub fn req_header(&self) -> Option<&RequestHeader> {
        self.request_written.as_deref()
    }

    /// The next piece (at most [`super::common::BODY_BUF_LIMIT`], 60 KiB)
    /// of the response body, `Ok(None)` at its end (RFC 9112 §6.3: none for
    /// HEAD and 1xx/204/304; then chunked, Content-Length, or until close).
    /// After a `101`, the upstream's raw bytes until it closes.
    ///
    /// # Errors
    /// Source Upstream: `ConnectionClosed` when a delimited body is cut
    /// short, `H1Error` for bad chunked framing, `ReadTimedout`, `ReadError`.
    ///
    /// # Cancel safety
    /// Not cancel safe for chunked bodies; drop the session after cancelling.
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        if !self.final_response {
            return Ok(None);
        }
        match self
            .body_reader
            .read(&mut self.stream, &mut self.buf, self.read_timeout)
            .await
        {
            Ok(Some(b)) => {
                self.body_bytes_read += b.len();
                Ok(Some(b))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Whether the final response's body has been read completely.
    pub fn is_body_done(&self) -> bool {
        self.final_response && self.body_reader.is_done()
    }

    /// Whether a `101 Switching Protocols` was received.
    pub fn was_upgraded(&self) -> bool {
        self.upgraded
    }

    /// Response body bytes read so far.
    pub fn body_bytes_read(&self) -> usize {
        self.body_bytes_read
    }

    /// Request body bytes sent so far.
    pub fn body_bytes_sent(&self) -> usize {
        self.body_bytes_sent
    }

    /// Whether the connection may carry another request afterwards: the
    /// final response was read completely, the request body was finished,
    /// neither side asked to close (RFC 9112 §9.3), no error happened and no
    /// upgrade.
    pub fn will_keepalive(&self) -> bool {
        !self.must_close && !self.upgraded && self.is_body_done() && self.body_writer.is_finished()
    }

    /// The stream, for the connection pool, if [`HttpSession::will_keepalive`]
    /// and no unexpected bytes followed the response; otherwise the
    /// connection is shut down and `None` returned.
    pub async fn reuse(mut self) -> Option<Stream> {
        if self.can_reuse() {
            return Some(self.stream);
        }
        self.shutdown().await;
        None
    }

    /// Whether [`HttpSession::reuse`] would pool the connection:
    /// [`HttpSession::will_keepalive`] and no unexpected bytes followed the
    /// response. Then [`HttpSession::into_stream`] gives the stream without
    /// an `.await`.
    pub fn can_reuse(&self) -> bool {
        self.will_keepalive() && self.buf.is_empty()
    }

    /// The connection, for the pool after [`HttpSession::can_reuse`].
    pub fn into_stream(self) -> Stream {
        self.stream
    }

    /// Close our side of the connection; errors are ignored.
    pub async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// The underlying stream.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }
}

/// RFC 9112 §6.3 for a response: how its body is delimited. `must_close` is
/// set when the framing leaves the connection unusable afterwards.
fn response_body_reader(
    is_head: bool,
    resp: &ResponseHeader,
    must_close: &mut bool,
) -> Result<BodyReader> {
    let status = resp.status_code();
    if is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(BodyReader::Done);
    }
    match common::transfer_coding(resp) {
        TransferCoding::Absent => {}
        te => {
            if resp.has_field(&header::CONTENT_LENGTH) || resp.http_version() == Version::HTTP_10 {
                // rule 3: Transfer-Encoding wins, but the framing is suspect
                *must_close = true;
            }
            if te == TransferCoding::Chunked {
                return Ok(BodyReader::chunked());
            }
            *must_close = true;
            return Ok(BodyReader::UntilClose);
        }
    }
    match common::content_length(resp, ErrorType::InvalidHTTPHeader)? {
        Some(len) => Ok(BodyReader::content_length(len)),
        None => {
            *must_close = true;
            Ok(BodyReader::UntilClose)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, DuplexStream};

    async fn exchange(
        method: &str,
        req_headers: &[(&'static str, &'static str)],
        req_body: &[u8],
        upstream_reply: &[u8],
        close_upstream: bool,
    ) -> (HttpSession, DuplexStream, Vec<u8>) {
        let (mut upstream, ours) = tokio::io::duplex(1 << 20);
        let mut s = HttpSession::new(Box::new(ours));
        let mut req = RequestHeader::build(method, b"/p?x", None).unwrap();
        for (k, v) in req_headers {
            req.append_header(*k, *v).unwrap();
        }
        s.write_request_header(Box::new(req)).await.unwrap();
        s.write_body(req_body).await.unwrap();
        s.finish_body().await.unwrap();
        upstream.write_all(upstream_reply).await.unwrap();
        if close_upstream {
            upstream.shutdown().await.unwrap();
        }
        let mut got = vec![0u8; 4096];
        let n = upstream.read(&mut got).await.unwrap();
        got.truncate(n);
        (s, upstream, got)
    }

    async fn body(s: &mut HttpSession) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(b) = s.read_body_bytes().await? {
            out.extend_from_slice(&b);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn request_is_written_with_raw_path_case_and_chunked_body() {
        let (mut s, _up, got) = exchange(
            "POST",
            &[
                ("Host", "h"),
                ("X-CuStOm", "a"),
                ("Transfer-Encoding", "chunked"),
            ],
            b"hello",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            false,
        )
        .await;
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "POST /p?x HTTP/1.1\r\nHost: h\r\nX-CuStOm: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        s.read_response_header().await.unwrap();
        assert_eq!(s.resp_header().unwrap().status, 200);
        assert_eq!(body(&mut s).await.unwrap(), b"ok");
        assert!(s.reuse().await.is_some());
    }

    #[tokio::test]
    async fn response_framings_table() {
        // (method, reply, close upstream after, expected body, reusable)
        type Case<'a> = (&'a str, &'a [u8], bool, &'a [u8], bool);
        let cases: &[Case<'_>] = &[
            ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", false, b"abc", true),
            ("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: 1\r\n\r\n", false, b"abc", true),
            ("GET", b"HTTP/1.1 200 OK\r\n\r\nuntil close", true, b"until close", false),
            ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false, b"", true),
            ("GET", b"HTTP/1.1 204 No Content\r\n\r\n", false, b"", true),
            ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, b"", true),
            ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx", false, b"x", false),
            ("GET", b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", false, b"x", false),
            ("GET", b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\nx", false, b"x", true),
            ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxEXTRA", false, b"x", false),
        ];
        for (method, reply, close, expect, reusable) in cases {
            let (mut s, _up, _) = exchange(method, &[("Host", "h")], b"", reply, *close).await;
            s.read_response_header().await.unwrap();
            assert_eq!(
                body(&mut s).await.unwrap(),
                *expect,
                "{}",
                String::from_utf8_lossy(reply)
            );
            assert!(s.is_body_done());
            assert_eq!(
                s.reuse().await.is_some(),
                *reusable,
                "{}",
                String::from_utf8_lossy(reply)
            );
        }
    }

    #[tokio::test]
    async fn informational_responses_come_before_the_final_one() {
        let (mut s, _up, _) = exchange(
            "GET",
            &[("Host", "h")],
            b"",
            b"HTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\nHTTP/1.1 200 Fine\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .await;
        s.read_response_header().await.unwrap();
        assert_eq!(s.resp_header().unwrap().status, 103);
        assert!(s.read_body_bytes().await.unwrap().is_none());
        s.read_response_header().await.unwrap();
        assert_eq!(s.resp_header().unwrap().status, 200);
        assert_eq!(s.resp_header().unwrap().get_reason_phrase(), Some("Fine"));
        assert!(s.read_body_bytes().await.unwrap().is_none());
        assert!(s.reuse().await.is_some());
    }

    #[tokio::test]
    async fn bad_responses_are_upstream_errors() {
        let cases: &[(&[u8], ErrorType)] = &[
            (b"", ErrorType::ConnectionClosed),
            (b"HTTP/1.1 200 OK\r\nX-A", ErrorType::ConnectionClosed),
            (b"HTTP/1.1 2000 OK\r\n\r\n", ErrorType::InvalidHTTPHeader),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                ErrorType::InvalidHTTPHeader,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                ErrorType::InvalidHTTPHeader,
            ),
        ];
        for (reply, etype) in cases {
            let (mut s, _up, _) = exchange("GET", &[("Host", "h")], b"", reply, true).await;
            let e = s.read_response_header().await.unwrap_err();
            assert_eq!(e.etype(), etype, "{}", String::from_utf8_lossy(reply));
            assert_eq!(e.esource(), &crate::ErrorSource::Upstream);
        }
        let (mut s, _up, _) = exchange("GET", &[("Host", "h")], b"", b"", true).await;
        let mut e = s.read_response_header().await.unwrap_err();
        e.decide_reuse(true);
        assert!(
            e.retry(),
            "closed before any byte is retryable on a reused connection"
        );
    }

    #[tokio::test]
    async fn truncated_and_bad_chunked_bodies_are_errors() {
        let (mut s, _up, _) = exchange(
            "GET",
            &[],
            b"",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
            true,
        )
        .await;
        s.read_response_header().await.unwrap();
        assert_eq!(
            body(&mut s).await.unwrap_err().etype(),
            &ErrorType::ConnectionClosed
        );
        let (mut s, _up, _) = exchange(
            "GET",
            &[],
            b"",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nq\r\n",
            true,
        )
        .await;
        s.read_response_header().await.unwrap();
        assert_eq!(body(&mut s).await.unwrap_err().etype(), &ErrorType::H1Error);
    }

    #[tokio::test]
    async fn upgrade_then_raw_bytes_both_ways() {
        let (mut s, mut up, _) = exchange(
            "GET",
            &[("Host", "h"), ("Upgrade", "websocket"), ("Connection", "upgrade")],
            b"",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nhello",
            false,
        )
        .await;
        s.read_response_header().await.unwrap();
        assert!(s.was_upgraded());
        assert_eq!(&s.read_body_bytes().await.unwrap().unwrap()[..], b"hello");
        s.write_body(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        up.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        up.shutdown().await.unwrap();
        assert!(s.read_body_bytes().await.unwrap().is_none());
        assert!(s.reuse().await.is_none());
    }
}
