//! The one error type of the workspace.
//!
//! An [`Error`] carries what went wrong ([`ErrorType`]), which side caused it
//! ([`ErrorSource`]: the upstream, the downstream client, or the framework
//! itself), whether the proxy may retry the request ([`RetryType`]), an
//! optional cause (any `std::error::Error`) and a human context string.
//! Errors travel boxed: [`Result<T>`] is `std::result::Result<T, Box<Error>>`.
//!
//! ```
//! use proxy_core::error::{Error, ErrorType, OrErr, Result};
//!
//! fn parse_port(s: &str) -> Result<u16> {
//!     s.parse::<u16>().or_err(ErrorType::InternalError, "parsing a port number")
//! }
//! let e = parse_port("http").unwrap_err();
//! assert_eq!(e.etype(), &ErrorType::InternalError);
//! assert!(e.to_string().contains("parsing a port number"));
//! ```

use std::borrow::Cow;
use std::fmt;

/// A boxed [`Error`], the error half of every [`Result`] in the workspace.
pub type BError = Box<Error>;

/// `Result<T, Box<Error>>`.
pub type Result<T, E = BError> = std::result::Result<T, E>;

/// Context text: a static string or an owned one.
pub type ImmutStr = Cow<'static, str>;

/// Which side of the proxy caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorSource {
    /// The upstream server (connect failed, bad response, reset...).
    Upstream,
    /// The downstream client (bad request, client went away...).
    Downstream,
    /// The framework or the user's code.
    Internal,
    /// Not decided yet.
    Unset,
}

impl ErrorSource {
    /// A short lowercase name for logs: `"Upstream"`, `"Downstream"`, `"Internal"` or `""`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Upstream => "Upstream",
            Self::Downstream => "Downstream",
            Self::Internal => "Internal",
            Self::Unset => "",
        }
    }
}

/// Whether the request that failed may be sent again (to the same or another upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryType {
    /// The decision is made: `true` retries, `false` does not.
    Decided(bool),
    /// Retry only if the upstream connection was a reused (pooled) one: a pooled
    /// connection the upstream closed while it sat idle fails on first use, and
    /// the request is safe to resend on a fresh connection.
    ReusedOnly,
}

impl RetryType {
    /// Turn [`RetryType::ReusedOnly`] into a decision given whether the connection was reused.
    pub fn decide_reuse(&mut self, reused: bool) {
        if matches!(self, RetryType::ReusedOnly) {
            *self = RetryType::Decided(reused);
        }
    }

    /// Whether to retry. `ReusedOnly` that was never decided counts as `false`.
    pub fn retry(&self) -> bool {
        matches!(self, RetryType::Decided(true))
    }
}

impl From<bool> for RetryType {
    fn from(b: bool) -> Self {
        RetryType::Decided(b)
    }
}

/// What went wrong. The names follow Pingora's, so code ported from it matches on the same variants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorType {
    // connect errors
    /// TCP connect to the upstream did not finish within the connection timeout.
    ConnectTimedout,
    /// The upstream refused the TCP connection.
    ConnectRefused,
    /// No route to the upstream.
    ConnectNoRoute,
    /// The TLS handshake with the upstream failed.
    TLSHandshakeFailure,
    /// The TLS handshake did not finish in time.
    TLSHandshakeTimedout,
    /// The upstream's certificate did not verify.
    InvalidCert,
    /// A protocol handshake failed.
    HandshakeError,
    /// Any other connect failure.
    ConnectError,
    /// Binding a local address failed.
    BindError,
    /// Accepting a downstream connection failed.
    AcceptError,
    /// A socket operation (setsockopt, getsockname...) failed.
    SocketError,
    /// A CONNECT proxy refused to tunnel.
    ConnectProxyFailure,
    // protocol errors
    /// A header could not be parsed or is not allowed (RFC 9112 §5).
    InvalidHTTPHeader,
    /// An HTTP/1 framing violation (bad chunk size, ambiguous length...).
    H1Error,
    /// An HTTP/2 protocol error.
    H2Error,
    /// An HTTP/2 upstream asked to be spoken to in HTTP/1.1.
    H2Downgrade,
    /// An HTTP/2 peer sent something invalid.
    InvalidH2,
    // IO errors
    /// Reading from a socket failed.
    ReadError,
    /// Writing to a socket failed.
    WriteError,
    /// A read did not finish within its timeout.
    ReadTimedout,
    /// A write did not finish within its timeout.
    WriteTimedout,
    /// The peer closed the connection before the message was complete.
    ConnectionClosed,
    // application errors
    /// Respond to the downstream with this status code.
    HTTPStatus(u16),
    // file-related errors
    /// Opening a file failed.
    FileOpenError,
    /// Creating a file failed.
    FileCreateError,
    /// Reading a file failed.
    FileReadError,
    /// Writing a file failed.
    FileWriteError,
    // other errors
    /// A bug or broken invariant inside the framework or the user's code.
    InternalError,
    /// Nothing more is known.
    UnknownError,
    /// A user-defined kind.
    Custom(&'static str),
    /// A user-defined kind that maps to an HTTP status code.
    CustomCode(&'static str, u16),
}

impl ErrorType {
    /// A user-defined error kind (usable in `const`).
    pub const fn new(name: &'static str) -> Self {
        ErrorType::Custom(name)
    }

    /// A user-defined error kind with the HTTP status to answer with.
    pub const fn new_code(name: &'static str, code: u16) -> Self {
        ErrorType::CustomCode(name, code)
    }

    /// The kind's name as it appears in logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ConnectTimedout => "ConnectTimedout",
            Self::ConnectRefused => "ConnectRefused",
            Self::ConnectNoRoute => "ConnectNoRoute",
            Self::TLSHandshakeFailure => "TLSHandshakeFailure",
            Self::TLSHandshakeTimedout => "TLSHandshakeTimedout",
            Self::InvalidCert => "InvalidCert",
            Self::HandshakeError => "HandshakeError",
            Self::ConnectError => "ConnectError",
            Self::BindError => "BindError",
            Self::AcceptError => "AcceptError",
            Self::SocketError => "SocketError",
            Self::ConnectProxyFailure => "ConnectProxyFailure",
            Self::InvalidHTTPHeader => "InvalidHTTPHeader",
            Self::H1Error => "H1Error",
            Self::H2Error => "H2Error",
            Self::H2Downgrade => "H2Downgrade",
            Self::InvalidH2 => "InvalidH2",
            Self::ReadError => "ReadError",
            Self::WriteError => "WriteError",
            Self::ReadTimedout => "ReadTimedout",
            Self::WriteTimedout => "WriteTimedout",
            Self::ConnectionClosed => "ConnectionClosed",
            Self::HTTPStatus(_) => "HTTPStatus",
            Self::FileOpenError => "FileOpenError",
            Self::FileCreateError => "FileCreateError",
            Self::FileReadError => "FileReadError",
            Self::FileWriteError => "FileWriteError",
            Self::InternalError => "InternalError",
            Self::UnknownError => "UnknownError",
            Self::Custom(s) => s,
            Self::CustomCode(s, _) => s,
        }
    }

    /// Whether this is a timeout of any kind (connect, TLS handshake, read, write).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Self::ConnectTimedout
                | Self::TLSHandshakeTimedout
                | Self::ReadTimedout
                | Self::WriteTimedout
        )
    }

    /// Whether this is a failure to establish a connection (nothing was sent on it).
    pub fn is_connect_error(&self) -> bool {
        matches!(
            self,
            Self::ConnectTimedout
                | Self::ConnectRefused
                | Self::ConnectNoRoute
                | Self::TLSHandshakeFailure
                | Self::TLSHandshakeTimedout
                | Self::InvalidCert
                | Self::HandshakeError
                | Self::ConnectError
                | Self::BindError
                | Self::ConnectProxyFailure
        )
    }
}

/// The error: a kind, a source, a retry decision, an optional cause and context.
///
/// Fields sit behind accessors so the type can grow without breaking users.
pub struct Error {
    etype: ErrorType,
    esource: ErrorSource,
    retry: RetryType,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    context: Option<ImmutStr>,
}

impl Error {
    /// The general constructor; the others are shorthands for it.
    pub fn create(
        etype: ErrorType,
        esource: ErrorSource,
        context: Option<ImmutStr>,
        cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> BError {
        let retry = match &cause {
            // an error wrapping another inherits its retry decision
            Some(c) => as_error(c.as_ref())
                .map(|e| e.retry)
                .unwrap_or(RetryType::Decided(false)),
            None => RetryType::Decided(false),
        };
        Box::new(Error {
            etype,
            esource,
            retry,
            cause,
            context,
        })
    }

    #[cold]
    fn do_new(e: ErrorType, s: ErrorSource) -> BError {
        Self::create(e, s, None, None)
    }

    /// A new error of kind `e` with no source set.
    #[cold]
    pub fn new(e: ErrorType) -> BError {
        Self::do_new(e, ErrorSource::Unset)
    }

    /// A new error caused by the upstream.
    #[cold]
    pub fn new_up(e: ErrorType) -> BError {
        Self::do_new(e, ErrorSource::Upstream)
    }

    /// A new error caused by the downstream client.
    #[cold]
    pub fn new_down(e: ErrorType) -> BError {
        Self::do_new(e, ErrorSource::Downstream)
    }

    /// A new internal error.
    #[cold]
    pub fn new_in(e: ErrorType) -> BError {
        Self::do_new(e, ErrorSource::Internal)
    }

    /// A new error of a custom kind named `s`.
    #[cold]
    pub fn new_str(s: &'static str) -> BError {
        Self::do_new(ErrorType::Custom(s), ErrorSource::Unset)
    }

    /// `Err(Error::new(e))`.
    #[cold]
    pub fn err<T>(e: ErrorType) -> Result<T> {
        Err(Self::new(e))
    }

    /// `Err(Error::new_up(e))`.
    #[cold]
    pub fn err_up<T>(e: ErrorType) -> Result<T> {
        Err(Self::new_up(e))
    }

    /// `Err(Error::new_down(e))`.
    #[cold]
    pub fn err_down<T>(e: ErrorType) -> Result<T> {
        Err(Self::new_down(e))
    }

    /// `Err(Error::new_in(e))`.
    #[cold]
    pub fn err_in<T>(e: ErrorType) -> Result<T> {
        Err(Self::new_in(e))
    }

    /// A new error of kind `e` with `context`, caused by `cause`.
    #[cold]
    pub fn because<S: Into<ImmutStr>, E: Into<Box<dyn std::error::Error + Send + Sync>>>(
        e: ErrorType,
        context: S,
        cause: E,
    ) -> BError {
        Self::create(
            e,
            ErrorSource::Unset,
            Some(context.into()),
            Some(cause.into()),
        )
    }

    /// `Err(Error::because(..))`.
    #[cold]
    pub fn e_because<T, S: Into<ImmutStr>, E: Into<Box<dyn std::error::Error + Send + Sync>>>(
        e: ErrorType,
        context: S,
        cause: E,
    ) -> Result<T> {
        Err(Self::because(e, context, cause))
    }

    /// A new error of kind `e` explained by `context`.
    #[cold]
    pub fn explain<S: Into<ImmutStr>>(e: ErrorType, context: S) -> BError {
        Self::create(e, ErrorSource::Unset, Some(context.into()), None)
    }

    /// `Err(Error::explain(..))`.
    #[cold]
    pub fn e_explain<T, S: Into<ImmutStr>>(e: ErrorType, context: S) -> Result<T> {
        Err(Self::explain(e, context))
    }

    /// The kind of this error.
    pub fn etype(&self) -> &ErrorType {
        &self.etype
    }

    /// Which side caused it.
    pub fn esource(&self) -> &ErrorSource {
        &self.esource
    }

    /// The retry decision.
    pub fn retry(&self) -> bool {
        self.retry.retry()
    }

    /// The retry decision, undecided `ReusedOnly` included.
    pub fn retry_type(&self) -> RetryType {
        self.retry
    }

    /// The context string, if any.
    pub fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// The direct cause, if any.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }

    /// Set the retry decision.
    pub fn set_retry(&mut self, retry: bool) {
        self.retry = RetryType::Decided(retry);
    }

    /// Set the retry type, e.g. [`RetryType::ReusedOnly`].
    pub fn set_retry_type(&mut self, retry: RetryType) {
        self.retry = retry;
    }

    /// Decide a `ReusedOnly` retry given whether the connection was reused.
    pub fn decide_reuse(&mut self, reused: bool) {
        self.retry.decide_reuse(reused);
    }

    /// Mark as caused by the upstream.
    pub fn as_up(&mut self) {
        self.esource = ErrorSource::Upstream;
    }

    /// Mark as caused by the downstream.
    pub fn as_down(&mut self) {
        self.esource = ErrorSource::Downstream;
    }

    /// Mark as internal.
    pub fn as_in(&mut self) {
        self.esource = ErrorSource::Internal;
    }

    /// Mark as caused by the upstream, by value.
    #[cold]
    pub fn into_up(mut self: BError) -> BError {
        self.as_up();
        self
    }

    /// Mark as caused by the downstream, by value.
    #[cold]
    pub fn into_down(mut self: BError) -> BError {
        self.as_down();
        self
    }

    /// Mark as internal, by value.
    #[cold]
    pub fn into_in(mut self: BError) -> BError {
        self.as_in();
        self
    }

    /// Replace the kind.
    pub fn set_etype(&mut self, etype: ErrorType) {
        self.etype = etype;
    }

    /// Replace the cause.
    pub fn set_cause<C: Into<Box<dyn std::error::Error + Send + Sync>>>(&mut self, cause: C) {
        self.cause = Some(cause.into());
    }

    /// Replace the context.
    pub fn set_context<T: Into<ImmutStr>>(&mut self, context: T) {
        self.context = Some(context.into());
    }

    /// Prepend `context` to the existing context (`"new: old"`).
    #[cold]
    pub fn more_context<T: Into<ImmutStr>>(self: BError, context: T) -> BError {
        let esource = self.esource;
        let retry = self.retry;
        let mut e = Self::because(self.etype.clone(), context, self);
        e.esource = esource;
        e.retry = retry;
        e
    }

    /// The kind of the innermost [`Error`] in the cause chain (this one's if it has no `Error` cause).
    pub fn root_etype(&self) -> &ErrorType {
        self.cause
            .as_deref()
            .and_then(as_error)
            .map_or(&self.etype, |e| e.root_etype())
    }

    /// The innermost cause of the chain (this error itself if it has none).
    pub fn root_cause(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        match self.cause.as_deref() {
            Some(c) => match as_error(c) {
                Some(e) => e.root_cause(),
                None => c,
            },
            None => self,
        }
    }

    /// The kind's name (same as `etype().as_str()`).
    pub fn reason_str(&self) -> &str {
        self.etype.as_str()
    }

    /// The source's name (same as `esource().as_str()`).
    pub fn source_str(&self) -> &str {
        self.esource.as_str()
    }

    fn chain_display(&self, previous: Option<&Error>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if previous.map(|p| p.esource != self.esource).unwrap_or(true) {
            write!(f, "{}", self.esource.as_str())?;
        }
        if previous.map(|p| p.etype != self.etype).unwrap_or(true) {
            write!(f, " {}", self.etype.as_str())?;
        }
        if let Some(c) = self.context.as_ref() {
            write!(f, " context: {c}")?;
        }
        if let Some(c) = self.cause.as_ref() {
            if let Some(e) = as_error(c.as_ref()) {
                write!(f, " cause: ")?;
                e.chain_display(Some(self), f)
            } else {
                write!(f, " cause: {c}")
            }
        } else {
            Ok(())
        }
    }
}

/// The [`Error`] inside a cause, whether it was boxed once (`Box<dyn Error>`
/// holding an `Error`) or twice (holding a `Box<Error>`, which is what
/// `Into<Box<dyn Error>>` makes of a [`BError`]).
fn as_error<'a>(c: &'a (dyn std::error::Error + Send + Sync + 'static)) -> Option<&'a Error> {
    c.downcast_ref::<Error>()
        .or_else(|| c.downcast_ref::<BError>().map(|b| b.as_ref()))
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chain_display(None, f)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// Turn any `Result<T, E>` into a [`Result<T>`] with a kind and context.
pub trait OrErr<T, E> {
    /// Wrap the error as the cause of a new one of kind `et` with `context`.
    fn or_err(self, et: ErrorType, context: &'static str) -> Result<T>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>;

    /// Like [`OrErr::or_err`], with the context built only on error.
    fn or_err_with<C: Into<ImmutStr>, F: FnOnce() -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>;

    /// Replace the error by a new one of kind `et` with `context`, dropping the original.
    fn explain_err<C: Into<ImmutStr>, F: FnOnce(E) -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T>;

    /// Wrap the error as the cause of a new one of kind `et`, no context.
    fn or_fail(self) -> Result<T>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>;
}

impl<T, E> OrErr<T, E> for std::result::Result<T, E> {
    fn or_err(self, et: ErrorType, context: &'static str) -> Result<T>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.map_err(|e| Error::because(et, context, e))
    }

    fn or_err_with<C: Into<ImmutStr>, F: FnOnce() -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.map_err(|e| Error::because(et, context(), e))
    }

    fn explain_err<C: Into<ImmutStr>, F: FnOnce(E) -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T> {
        self.map_err(|e| Error::explain(et, context(e)))
    }

    fn or_fail(self) -> Result<T>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.map_err(|e| Error::because(ErrorType::InternalError, "", e))
    }
}

/// Turn an `Option<T>` into a [`Result<T>`].
pub trait OkOrErr<T> {
    /// `None` becomes an error of kind `et` with `context`.
    fn or_err(self, et: ErrorType, context: &'static str) -> Result<T>;

    /// `None` becomes an error of kind `et` with a context built on demand.
    fn or_err_with<C: Into<ImmutStr>, F: FnOnce() -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T>;
}

impl<T> OkOrErr<T> for Option<T> {
    fn or_err(self, et: ErrorType, context: &'static str) -> Result<T> {
        self.ok_or_else(|| Error::explain(et, context))
    }

    fn or_err_with<C: Into<ImmutStr>, F: FnOnce() -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T> {
        self.ok_or_else(|| Error::explain(et, context()))
    }
}

/// Add context to an error crossing a boundary.
pub trait Context<T> {
    /// Prepend `context` to the error's context.
    fn err_context<C: Into<ImmutStr>, F: FnOnce() -> C>(self, context: F) -> Result<T>;
}

impl<T> Context<T> for Result<T> {
    fn err_context<C: Into<ImmutStr>, F: FnOnce() -> C>(self, context: F) -> Result<T> {
        self.map_err(|e| e.more_context(context()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn display_chains_context_and_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e =
            Error::because(ErrorType::ConnectRefused, "connecting to 127.0.0.1:1", io).into_up();
        assert_eq!(
            e.to_string(),
            "Upstream ConnectRefused context: connecting to 127.0.0.1:1 cause: refused"
        );
    }

    #[test]
    fn more_context_keeps_kind_source_and_retry() {
        let mut e = Error::new_up(ErrorType::ReadError);
        e.set_retry(true);
        let e = e.more_context("reading response header");
        assert_eq!(e.etype(), &ErrorType::ReadError);
        assert_eq!(e.esource(), &ErrorSource::Upstream);
        assert!(e.retry());
        assert_eq!(e.root_etype(), &ErrorType::ReadError);
    }

    #[test]
    fn reused_only_is_decided_by_reuse() {
        let mut e = Error::new_up(ErrorType::ConnectionClosed);
        e.set_retry_type(RetryType::ReusedOnly);
        assert!(!e.retry());
        e.decide_reuse(true);
        assert!(e.retry());
        let mut e = Error::new_up(ErrorType::ConnectionClosed);
        e.set_retry_type(RetryType::ReusedOnly);
        e.decide_reuse(false);
        assert!(!e.retry());
    }

    #[test]
    fn root_cause_walks_the_chain() {
        let inner = Error::explain(ErrorType::H1Error, "bad chunk size");
        let outer = Error::because(ErrorType::ReadError, "reading body", inner);
        assert_eq!(outer.root_etype(), &ErrorType::H1Error);
        assert_eq!(
            outer.root_cause().to_string(),
            " H1Error context: bad chunk size"
        );
    }

    #[test]
    fn option_or_err() {
        let v: Option<u8> = None;
        let e = v.or_err(ErrorType::InternalError, "no value").unwrap_err();
        assert_eq!(e.context(), Some("no value"));
    }
}
