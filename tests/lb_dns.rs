//! DNS discovery end to end: a load balancer whose backends come from a
//! name in a hosts file, run as the server's background service, follows
//! the name to a new address within `update_frequency`, and keeps the last
//! good address when the name stops resolving.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proxy_facade::lb::discovery::{Dns, HostsFile};
use proxy_facade::lb::selection::RoundRobin;
use proxy_facade::lb::{Backends, LoadBalancer};
use proxy_facade::prelude::background_service;
use support::lb_proxy::{fetch, InProcessProxy, BACKEND_HEADER};
use support::*;

/// Two origins on the same port, one on 127.0.0.1 and one on 127.0.0.2
/// (the whole 127/8 is loopback on Linux).
fn origins_on_one_port() -> (TestOrigin, TestOrigin) {
    for _ in 0..20 {
        let first = TestOrigin::start();
        let second = SocketAddr::from(([127, 0, 0, 2], first.addr().port()));
        if std::net::TcpListener::bind(second).is_ok() {
            return (first, TestOrigin::start_on(second));
        }
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2");
}

/// Requests until one is served by `want` (by `X-Backend`); the time it took.
fn until_served_by(proxy: &InProcessProxy, want: SocketAddr) -> Duration {
    let started = Instant::now();
    let mut client = None;
    loop {
        let r = fetch(&mut client, proxy.addr(), "/");
        if r.status == 200 && r.header(BACKEND_HEADER) == Some(want.to_string()) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < WAIT,
            "never served by {want}; last: {}",
            r.head
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dns_discovery_follows_a_changed_address_within_update_frequency() {
    let (old, new) = origins_on_one_port();
    let port = old.addr().port();
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "# backends\n127.0.0.1 api.lb-test\n").unwrap();

    let discovery = Dns::new([format!("api.lb-test:{port}")])
        .unwrap()
        .with_resolver(HostsFile::new(&hosts));
    let mut lb = LoadBalancer::<RoundRobin>::from_backends(Backends::new(discovery));
    let update_frequency = Duration::from_secs(1);
    lb.update_frequency = Some(update_frequency);
    let background = background_service("lb", lb);
    let lb = background.task();
    let pick = {
        let lb = lb.clone();
        Box::new(move |key: &[u8]| lb.select(key, 256).map(|b| (b, None)))
    };
    let proxy = InProcessProxy::start(pick, Some(Box::new(background)));

    // the background service resolves the name when it starts
    until_served_by(&proxy, old.addr());
    assert!(old.requests() >= 1);

    // the name moves: within one update (plus a request's time) traffic follows
    std::fs::write(&hosts, "127.0.0.2 api.lb-test\n").unwrap();
    let took = until_served_by(&proxy, new.addr());
    assert!(
        took <= update_frequency + Duration::from_secs(1),
        "took {took:?} to follow the name (update_frequency {update_frequency:?})"
    );
    let before = old.requests();

    // the name stops resolving: the last good address stays in use
    std::fs::remove_file(&hosts).unwrap();
    std::thread::sleep(update_frequency * 2 + Duration::from_millis(200));
    let mut client = None;
    for _ in 0..10 {
        let r = fetch(&mut client, proxy.addr(), "/");
        assert_eq!(r.status, 200, "{}", r.head);
        assert_eq!(r.header(BACKEND_HEADER), Some(new.addr().to_string()));
    }
    assert_eq!(old.requests(), before);
    assert_eq!(lb.backends().get_backend().len(), 1);
}
