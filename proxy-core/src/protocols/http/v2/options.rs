//! [`H2Options`]: what an HTTP/2 server announces and how it defends itself.

use std::time::Duration;

/// Settings of the downstream HTTP/2 server (Pingora's `H2Options`, there an
/// alias of `h2::server::Builder`; here the fields users change, so the
/// defaults stay documented and the defences are always on).
///
/// Sizes are in bytes. Build with `H2Options::default()` and change fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct H2Options {
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` (RFC 9113 §6.5.2): streams one
    /// client may have open at once. Default 100.
    pub max_concurrent_streams: u32,
    /// `SETTINGS_MAX_HEADER_LIST_SIZE` (RFC 9113 §6.5.2): the largest
    /// decoded header list accepted, per the RFC's size accounting (name +
    /// value + 32 per field). Default 64 KiB. Larger heads, including ones
    /// spread over CONTINUATION frames, are refused.
    pub max_header_list_size: u32,
    /// `SETTINGS_INITIAL_WINDOW_SIZE` (RFC 9113 §6.9.2): how much request body
    /// a client may send on one stream before we read it. Default 1 MiB.
    pub initial_window_size: u32,
    /// The connection-level receive window (RFC 9113 §6.9.1), announced by a
    /// WINDOW_UPDATE after the handshake. Default 4 MiB. Windows above
    /// 2^31 - 1 are clamped to it.
    pub initial_connection_window_size: u32,
    /// `SETTINGS_MAX_FRAME_SIZE` (RFC 9113 §6.5.2), 16 KiB..16 MiB - 1
    /// (values outside are clamped into it). Default 16 KiB.
    pub max_frame_size: u32,
    /// Streams the client opened and reset before we accepted them, at most
    /// this many pending at once; more is a rapid-reset flood
    /// (CVE-2023-44487) and the connection is closed with
    /// `ENHANCE_YOUR_CALM`. Default 20.
    pub max_pending_accept_reset_streams: usize,
    /// Streams we had to reset because the client broke the protocol on
    /// them, at most this many per connection before it is closed (the
    /// other side of the rapid-reset defence). Default 1024.
    pub max_local_error_reset_streams: usize,
    /// How long the ids of reset streams are remembered (frames arriving for
    /// them are ignored, not connection errors). Default 1 s.
    pub reset_stream_duration: Duration,
    /// Response bytes buffered per stream beyond the peer's window. Default 400 KiB.
    pub max_send_buffer_size: usize,
}

impl Default for H2Options {
    fn default() -> Self {
        H2Options {
            max_concurrent_streams: 100,
            max_header_list_size: 64 * 1024,
            initial_window_size: 1024 * 1024,
            initial_connection_window_size: 4 * 1024 * 1024,
            max_frame_size: 16 * 1024,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
            reset_stream_duration: Duration::from_secs(1),
            max_send_buffer_size: 400 * 1024,
        }
    }
}

/// The largest flow-control window (RFC 9113 §6.9.1: 2^31 - 1).
const MAX_WINDOW: u32 = (1 << 31) - 1;
/// The legal range of `SETTINGS_MAX_FRAME_SIZE` (RFC 9113 §6.5.2).
const MIN_FRAME: u32 = 1 << 14;
const MAX_FRAME: u32 = (1 << 24) - 1;

impl H2Options {
    /// The `h2` server builder with these settings.
    pub(crate) fn builder(&self) -> h2::server::Builder {
        let mut b = h2::server::Builder::new();
        b.max_concurrent_streams(self.max_concurrent_streams)
            .max_header_list_size(self.max_header_list_size)
            .initial_window_size(self.initial_window_size.min(MAX_WINDOW))
            .initial_connection_window_size(self.initial_connection_window_size.min(MAX_WINDOW))
            // `h2` panics outside the legal range: clamp instead
            .max_frame_size(self.max_frame_size.clamp(MIN_FRAME, MAX_FRAME))
            .max_pending_accept_reset_streams(self.max_pending_accept_reset_streams)
            .max_local_error_reset_streams(Some(self.max_local_error_reset_streams))
            .reset_stream_duration(self.reset_stream_duration)
            .max_send_buffer_size(self.max_send_buffer_size);
        b
    }
}
