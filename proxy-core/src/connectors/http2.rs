//! The registry of upstream HTTP/2 connections, shared and multiplexed.
//!
//! Unlike an HTTP/1.1 connection, which serves one request at a time and
//! sits in the pool between requests, an HTTP/2 connection carries many
//! streams at once (RFC 9113 §5). The registry keeps every open one under
//! its peer's [`reuse_hash`](crate::upstreams::peer::Peer::reuse_hash), so
//! peers with different TLS settings never share a connection, and hands
//! out streams on the first connection of a key that has a free slot
//! (`min(max_h2_streams, the server's SETTINGS_MAX_CONCURRENT_STREAMS)`)
//! and is not closing. Connections that received GOAWAY, failed or were
//! closed for idleness are dropped from it as they are met.
//!
//! Opening a new connection to a key that is known to speak HTTP/2 goes
//! through a per-key gate: while one request makes the connection, the
//! others wait and then share it, so a burst of concurrent requests opens
//! one connection, not one each.
//!
//! Idle connections (no stream in flight) are kept until the peer's idle
//! timeout (the connection's own task closes them), and at most
//! `max_idle_per_key` of them per key (`ConnectorOptions::keepalive_pool_size`):
//! a stream that ends on a connection past that cap closes it.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::protocols::http::v2::client::{ConnectionRef, HttpSession};

/// The upstream HTTP/2 connections of one connector, by peer key.
pub(crate) struct H2Registry {
    conns: Mutex<HashMap<u64, Vec<ConnectionRef>>>,
    /// One gate per key that has had an HTTP/2 connection (see the module docs).
    gates: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    max_idle_per_key: usize,
}

impl H2Registry {
    /// An empty registry keeping at most `max_idle_per_key` (at least 1)
    /// idle connections per key.
    pub(crate) fn new(max_idle_per_key: usize) -> Self {
        H2Registry {
            conns: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
            max_idle_per_key: max_idle_per_key.max(1),
        }
    }

    /// A stream on an open connection of `key` with a free slot, if any.
    /// Closing connections met on the way are dropped from the registry
    /// (their streams in flight keep them alive until they end).
    pub(crate) fn reuse(&self, key: u64) -> Option<HttpSession> {
        let mut conns = self.conns.lock();
        let list = conns.get_mut(&key)?;
        list.retain(|c| !c.is_closing());
        // the oldest connection first: streams concentrate on few connections
        let found = list.iter().find_map(|c| c.new_session());
        if list.is_empty() {
            conns.remove(&key);
        }
        found
    }

    /// Register a new connection under `key`.
    pub(crate) fn add(&self, key: u64, conn: ConnectionRef) {
        self.conns.lock().entry(key).or_default().push(conn);
        self.gates.lock().entry(key).or_default();
    }

    /// The gate of `key` if it is known to speak HTTP/2 (or `force`):
    /// hold it while making a new connection for the key.
    pub(crate) fn gate(&self, key: u64, force: bool) -> Option<Arc<tokio::sync::Mutex<()>>> {
        let mut gates = self.gates.lock();
        match gates.get(&key) {
            Some(g) => Some(g.clone()),
            None if force => Some(gates.entry(key).or_default().clone()),
            None => None,
        }
    }

    /// A stream of `key`'s connection is done: free its slot, and close
    /// the connection if that leaves more than `max_idle_per_key` idle
    /// connections under the key.
    pub(crate) fn release(&self, key: u64, session: HttpSession) {
        let conn = session.conn().clone();
        drop(session);
        if conn.streams_in_use() > 0 {
            return;
        }
        let mut conns = self.conns.lock();
        let Some(list) = conns.get_mut(&key) else {
            return;
        };
        let idle = list.iter().filter(|c| c.streams_in_use() == 0).count();
        if idle > self.max_idle_per_key && conn.close_if_unused() {
            list.retain(|c| c.id() != conn.id());
        }
    }

    /// Open connections (closing ones not yet met included), all keys.
    pub(crate) fn connection_count(&self) -> usize {
        self.conns.lock().values().map(Vec::len).sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::protocols::http::v2::client::{handshake, ClientOptions};
    use crate::protocols::{Stream, IO};

    /// A connection to an in-process h2 server that accepts streams and
    /// never answers (streams stay in flight while the test holds them).
    async fn conn(max_streams: usize) -> ConnectionRef {
        let (client, server) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let mut c = h2::server::handshake(server).await.unwrap();
            let mut held = Vec::new();
            while let Some(Ok(s)) = c.accept().await {
                held.push(s);
            }
        });
        let stream: Stream = Box::new(client) as Box<dyn IO>;
        let options = ClientOptions {
            max_streams,
            ..ClientOptions::default()
        };
        handshake(stream, &options).await.unwrap()
    }

    #[tokio::test]
    async fn streams_fill_the_first_connection_then_the_next() {
        let reg = H2Registry::new(8);
        assert!(reg.reuse(1).is_none());
        let (a, b) = (conn(2).await, conn(2).await);
        reg.add(1, a.clone());
        reg.add(1, b.clone());
        let s1 = reg.reuse(1).unwrap();
        let s2 = reg.reuse(1).unwrap();
        assert_eq!(s1.conn().id(), a.id());
        assert_eq!(s2.conn().id(), a.id());
        let s3 = reg.reuse(1).unwrap();
        assert_eq!(s3.conn().id(), b.id());
        let _s4 = reg.reuse(1).unwrap();
        assert!(reg.reuse(1).is_none(), "both connections full");
        reg.release(1, s1);
        assert_eq!(reg.reuse(1).unwrap().conn().id(), a.id());
        // another key never sees these connections
        assert!(reg.reuse(2).is_none());
        let _ = (s2, s3);
    }

    #[tokio::test]
    async fn closing_connections_are_skipped_and_dropped() {
        let reg = H2Registry::new(8);
        let (a, b) = (conn(4).await, conn(4).await);
        reg.add(7, a.clone());
        reg.add(7, b.clone());
        a.mark_closing();
        assert_eq!(reg.reuse(7).unwrap().conn().id(), b.id());
        assert_eq!(reg.connection_count(), 1);
    }

    #[tokio::test]
    async fn idle_connections_past_the_cap_are_closed() {
        let reg = H2Registry::new(1);
        let (a, b) = (conn(1).await, conn(1).await);
        reg.add(3, a.clone());
        reg.add(3, b.clone());
        let sa = reg.reuse(3).unwrap();
        let sb = reg.reuse(3).unwrap();
        reg.release(3, sa);
        // one idle connection: within the cap
        assert!(!a.is_closing());
        reg.release(3, sb);
        // two idle: the one just released goes
        assert!(b.is_closing());
        assert!(!a.is_closing());
        assert_eq!(reg.connection_count(), 1);
    }

    #[tokio::test]
    async fn a_gate_exists_once_a_key_spoke_h2() {
        let reg = H2Registry::new(8);
        assert!(reg.gate(5, false).is_none());
        assert!(reg.gate(5, true).is_some());
        let reg = H2Registry::new(8);
        reg.add(6, conn(1).await);
        let g = reg.gate(6, false).unwrap();
        // the same gate for every caller
        assert!(Arc::ptr_eq(&g, &reg.gate(6, false).unwrap()));
    }
}
