//! Sending a body on an HTTP/2 stream under flow control, shared by the
//! server (response bodies) and client (request bodies) sides.

use bytes::Bytes;
use futures_util::future::poll_fn;
use h2::SendStream;

/// Why [`send_with_capacity`] stopped.
pub(crate) enum SendBodyError {
    /// `h2` failed: the stream was reset or the connection failed.
    H2(h2::Error),
    /// The stream closed before it granted capacity for the rest.
    Closed,
}

/// Send `data` on `stream` piece by piece as the peer's flow-control
/// windows (stream and connection, RFC 9113 §5.2) grant capacity, the last
/// piece with END_STREAM when `end`. Empty `data` is sent at once, which
/// only matters with `end` (an empty DATA frame that ends the stream).
pub(crate) async fn send_with_capacity(
    stream: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), SendBodyError> {
    if data.is_empty() {
        return stream.send_data(data, end).map_err(SendBodyError::H2);
    }
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(SendBodyError::H2(e)),
            None => return Err(SendBodyError::Closed),
        };
        if granted == 0 {
            continue;
        }
        let piece = data.split_to(granted.min(data.len()));
        stream
            .send_data(piece, end && data.is_empty())
            .map_err(SendBodyError::H2)?;
    }
    Ok(())
}
