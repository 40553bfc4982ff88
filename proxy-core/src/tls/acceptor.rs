//! The downstream TLS handshake of one accepted connection.

use std::time::Duration;

use boring::ssl::SslAcceptor;

use crate::error::{Error, ErrorType, Result};
use crate::protocols::Stream;
use crate::tls::read_ahead::ReadAhead;
use crate::tls::TlsStream;

/// The finished form of [`TlsSettings`](crate::tls::TlsSettings) that a
/// listener holds: runs the handshake of each accepted connection.
#[derive(Clone)]
pub struct TlsAcceptor {
    acceptor: SslAcceptor,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

impl TlsAcceptor {
    pub(crate) fn new(acceptor: SslAcceptor, handshake_timeout: Duration) -> Self {
        TlsAcceptor {
            acceptor,
            handshake_timeout,
        }
    }

    /// Run the server side of the TLS handshake over `stream`; the result is
    /// a [`TlsStream`] (as a `Stream`) carrying the handshake's digest.
    ///
    /// # Errors
    /// Source Downstream: `TLSHandshakeTimedout` past the handshake timeout,
    /// `TLSHandshakeFailure` when the handshake fails (no shared version or
    /// cipher, a client certificate missing or not verified, the client went
    /// away...), the context naming the client address.
    ///
    /// # Cancel safety
    /// Dropping the future closes the connection.
    pub async fn handshake(&self, stream: Stream) -> Result<Stream> {
        let peer = stream.peer_addr();
        let describe_peer = || match &peer {
            Some(p) => p.to_string(),
            None => "unknown client".to_string(),
        };
        match tokio::time::timeout(
            self.handshake_timeout,
            tokio_boring::accept(&self.acceptor, ReadAhead::new(stream)),
        )
        .await
        {
            Ok(Ok(tls)) => Ok(Box::new(TlsStream::new(tls))),
            Ok(Err(e)) => Err(Error::explain(
                ErrorType::TLSHandshakeFailure,
                format!("TLS handshake with {} failed: {e}", describe_peer()),
            )
            .into_down()),
            Err(_) => Err(Error::explain(
                ErrorType::TLSHandshakeTimedout,
                format!(
                    "TLS handshake with {} took over {:?}",
                    describe_peer(),
                    self.handshake_timeout
                ),
            )
            .into_down()),
        }
    }
}
