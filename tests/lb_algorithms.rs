//! The selection algorithms through a real proxy (in-process, see
//! `support/lb_proxy.rs`) to real origins on loopback: weighted round robin
//! splits in exact proportion, random and least connections within
//! statistical bounds, and least connections steers away from a slow
//! backend that round robin would keep feeding.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proxy_facade::lb::discovery::Static;
use proxy_facade::lb::selection::{BackendSelection, LeastConnections, Random, RoundRobin};
use proxy_facade::lb::{Backend, Backends, LoadBalancer};
use support::lb_proxy::{fetch, InProcessProxy, Pick};
use support::*;

/// A load balancer of algorithm `S` over `(address, weight)`, filled now.
fn balancer<S: BackendSelection>(spec: &[(SocketAddr, usize)]) -> Arc<LoadBalancer<S>> {
    let set: BTreeSet<Backend> = spec
        .iter()
        .map(|(a, w)| Backend::from_addr(*a, *w))
        .collect();
    let lb = LoadBalancer::<S>::from_backends(Backends::new(Static::new(set)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(lb.update()).unwrap();
    Arc::new(lb)
}

/// `select` as a [`Pick`].
fn untracked<S: BackendSelection>(lb: &Arc<LoadBalancer<S>>) -> Box<Pick> {
    let lb = lb.clone();
    Box::new(move |key| lb.select(key, 256).map(|b| (b, None)))
}

/// `select_tracked` as a [`Pick`]: the guard lives as long as the request.
fn tracked(lb: &Arc<LoadBalancer<LeastConnections>>) -> Box<Pick> {
    let lb = lb.clone();
    Box::new(move |key| lb.select_tracked(key, 256).map(|(b, g)| (b, Some(g))))
}

/// `clients` keep-alive clients on threads, `per_client` requests each;
/// every response must be a 200.
fn load(proxy: &InProcessProxy, clients: usize, per_client: usize) {
    let addr = proxy.addr();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            std::thread::spawn(move || {
                let mut client = None;
                for i in 0..per_client {
                    let r = fetch(&mut client, addr, &format!("/c{c}/r{i}"));
                    assert_eq!(r.status, 200, "{}", r.head);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Waits until no request is in flight to `addr` (a request's guard is
/// dropped with its context, just after the client has its response).
fn wait_released(lb: &LoadBalancer<LeastConnections>, addr: SocketAddr) {
    let backend = Backend::from_addr(addr, 1);
    let deadline = std::time::Instant::now() + WAIT;
    while lb.in_flight(&backend) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{addr} still has requests in flight"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn no_backend_to_pick_is_a_502_with_the_tutorials_error() {
    let proxy = InProcessProxy::start(Box::new(|_| None), None);
    let mut client = None;
    let r = fetch(&mut client, proxy.addr(), "/none");
    assert_eq!(r.status, 502, "{}", r.head);
}

#[test]
fn weighted_round_robin_splits_10000_requests_in_exact_proportion() {
    let origins: Vec<TestOrigin> = (0..3).map(|_| TestOrigin::start()).collect();
    let lb = balancer::<RoundRobin>(&[
        (origins[0].addr(), 5),
        (origins[1].addr(), 3),
        (origins[2].addr(), 2),
    ]);
    let proxy = InProcessProxy::start(untracked(&lb), None);
    load(&proxy, 4, 2500);
    let got: Vec<usize> = origins.iter().map(TestOrigin::requests).collect();
    assert_eq!(got, [5000, 3000, 2000]);
}

#[test]
fn weighted_random_stays_within_statistical_bounds() {
    let origins: Vec<TestOrigin> = (0..3).map(|_| TestOrigin::start()).collect();
    let lb = balancer::<Random>(&[
        (origins[0].addr(), 1),
        (origins[1].addr(), 1),
        (origins[2].addr(), 2),
    ]);
    let proxy = InProcessProxy::start(untracked(&lb), None);
    load(&proxy, 2, 2000);
    let got: Vec<usize> = origins.iter().map(TestOrigin::requests).collect();
    assert_eq!(got.iter().sum::<usize>(), 4000);
    // binomial: 1000 ± 27.4 and 2000 ± 31.6 (one standard deviation);
    // 5.5 deviations either side fail a correct balancer about once in 10^7 runs
    assert!(got[0].abs_diff(1000) <= 150, "{got:?}");
    assert!(got[1].abs_diff(1000) <= 150, "{got:?}");
    assert!(got[2].abs_diff(2000) <= 175, "{got:?}");
}

#[test]
fn least_connections_spreads_idle_ties_evenly() {
    let origins: Vec<TestOrigin> = (0..3).map(|_| TestOrigin::start()).collect();
    let lb =
        balancer::<LeastConnections>(&origins.iter().map(|o| (o.addr(), 1)).collect::<Vec<_>>());
    let proxy = InProcessProxy::start(tracked(&lb), None);
    // one request at a time: every pick is a three-way tie, drawn at random
    load(&proxy, 1, 3000);
    let got: Vec<usize> = origins.iter().map(TestOrigin::requests).collect();
    // 1000 ± 25.8 per backend; 5.5 deviations
    for n in &got {
        assert!(n.abs_diff(1000) <= 142, "{got:?}");
    }
    for o in &origins {
        wait_released(&lb, o.addr());
    }
}

#[test]
fn least_connections_sends_little_to_a_slow_backend() {
    let fast: Vec<TestOrigin> = (0..2).map(|_| TestOrigin::start()).collect();
    let slow = RawOrigin::start(|_| {
        vec![
            Step::Sleep(Duration::from_millis(200)),
            Step::Send(ok_response(b"slow\n")),
        ]
    });
    let lb =
        balancer::<LeastConnections>(&[(fast[0].addr(), 1), (fast[1].addr(), 1), (slow.addr(), 1)]);
    let proxy = InProcessProxy::start(tracked(&lb), None);
    load(&proxy, 6, 60);
    let to_slow = slow.seen().len();
    let to_fast: Vec<usize> = fast.iter().map(TestOrigin::requests).collect();
    assert_eq!(to_slow + to_fast.iter().sum::<usize>(), 360);
    // round robin would send it 120 (a third); least connections only
    // sends it a request when it has no more in flight than the others
    assert!(
        to_slow <= 36,
        "slow backend got {to_slow} of 360; fast {to_fast:?}"
    );
    assert!(to_fast[0].abs_diff(to_fast[1]) <= 80, "{to_fast:?}");
    for b in [fast[0].addr(), fast[1].addr(), slow.addr()] {
        wait_released(&lb, b);
    }
}
