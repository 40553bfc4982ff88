//! End-to-end tests of `part-02-load-balancing` against real origins on
//! loopback: the round robin spreads evenly, a dead upstream is taken out by
//! the health check without a failed request and used again when it comes
//! back, and with every upstream down the proxy answers 502 with a log line
//! that says why.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use support::lb_proxy::{fetch, BACKEND_HEADER};
use support::*;

const PART02: &str = env!("CARGO_BIN_EXE_part-02-load-balancing");

/// Waits until the proxy logged that `addr` flipped to `state` ("unhealthy"
/// or "healthy again") at least `times` times; panics past [`WAIT`].
fn wait_for_flip(proxy: &Proxy, addr: SocketAddr, state: &str, times: usize) {
    let line = format!("backend {addr} is {state}");
    let seen = proxy.wait_for_stderr(times, |s| s.matches(&line).count());
    assert!(seen >= times, "no '{line}' in the log:\n{}", proxy.stderr());
}

/// Sends `n` requests on one keep-alive connection; every one must succeed.
/// Returns how many each backend (by `X-Backend`) served.
fn spread(proxy: &Proxy, n: usize, pause: Duration) -> HashMap<String, usize> {
    let mut client = None;
    let mut counts = HashMap::new();
    for i in 0..n {
        let r = fetch(&mut client, proxy.addr(), &format!("/r{i}"));
        assert_eq!(
            r.status,
            200,
            "request {i}: {}\nlog:\n{}",
            r.head,
            proxy.stderr()
        );
        *counts.entry(r.header(BACKEND_HEADER).unwrap()).or_default() += 1;
        std::thread::sleep(pause);
    }
    counts
}

#[test]
fn round_robin_spreads_evenly_over_live_upstreams_and_skips_a_dead_one() {
    let origins: Vec<TestOrigin> = (0..3).map(|_| TestOrigin::start()).collect();
    let dead = dead_addr();
    let mut upstreams: Vec<SocketAddr> = origins.iter().map(TestOrigin::addr).collect();
    upstreams.insert(1, dead);
    let proxy = Proxy::start(PART02, &upstreams, "");
    wait_for_flip(&proxy, dead, "unhealthy", 1);

    let counts = spread(&proxy, 300, Duration::ZERO);
    assert_eq!(counts.len(), 3, "{counts:?}");
    for o in &origins {
        assert_eq!(counts[&o.addr().to_string()], 100, "{counts:?}");
        assert_eq!(o.requests(), 100);
    }
    assert!(!counts.contains_key(&dead.to_string()));
}

#[test]
fn an_upstream_that_dies_is_skipped_without_a_failed_request_and_used_again_when_back() {
    let a = TestOrigin::start();
    let b = TestOrigin::start();
    let c = TestOrigin::start();
    let c_addr = c.addr();
    let proxy = Proxy::start(PART02, &[a.addr(), b.addr(), c_addr], "");
    let warm = spread(&proxy, 30, Duration::ZERO);
    assert_eq!(warm[&c_addr.to_string()], 10, "{warm:?}");

    // c dies with a pooled connection to it open: requests go on, none
    // fails (connect failures and the dead pooled connection are retried
    // elsewhere), across at least one health check
    drop(c);
    spread(&proxy, 60, Duration::from_millis(25));
    wait_for_flip(&proxy, c_addr, "unhealthy", 1);
    let after = spread(&proxy, 60, Duration::ZERO);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(!after.contains_key(&c_addr.to_string()));
    assert_eq!(after[&a.addr().to_string()], 30, "{after:?}");

    // c comes back on the same address: the next check puts it back
    let c = TestOrigin::start_on(c_addr);
    wait_for_flip(&proxy, c_addr, "healthy again", 1);
    let back = spread(&proxy, 60, Duration::ZERO);
    assert_eq!(back[&c_addr.to_string()], 20, "{back:?}");
    assert_eq!(c.requests(), 20);
}

#[test]
fn every_upstream_down_gives_502_and_a_log_line_saying_why() {
    let (d1, d2) = (dead_addr(), dead_addr());
    let proxy = Proxy::start(PART02, &[d1, d2], "");
    wait_for_flip(&proxy, d1, "unhealthy", 1);
    wait_for_flip(&proxy, d2, "unhealthy", 1);
    let mut client = None;
    let r = fetch(&mut client, proxy.addr(), "/");
    assert_eq!(r.status, 502, "{}", r.head);
    let logged = proxy.wait_for_stderr(1, |s| {
        s.lines()
            .filter(|l| {
                l.contains("no healthy upstream available: all 2 upstreams are down")
                    && l.contains("502")
            })
            .count()
    });
    assert_eq!(logged, 1, "log:\n{}", proxy.stderr());
}
