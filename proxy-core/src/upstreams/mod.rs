//! Upstreams: the servers the proxy connects to.
//!
//! [`peer`] describes one upstream ([`peer::HttpPeer`]) and how to connect to
//! it ([`peer::PeerOptions`]); the connectors in [`crate::connectors`] turn a
//! peer into a connected stream.

pub mod peer;
