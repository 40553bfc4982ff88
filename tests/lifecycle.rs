//! Process lifecycle of the tutorial's first proxy (`part-01-first-proxy`):
//! SIGTERM drains in-flight requests and closes idle connections, then exits
//! 0; SIGINT exits at once; `-t` reports a YAML syntax error.
//!
//! Signals go to the PID of the proxy the test started (`kill -s`), never
//! by name.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// The binary under test.
const PART1: &str = env!("CARGO_BIN_EXE_part-01-first-proxy");

/// How long the slow origin endpoint takes to answer.
const SLOW: Duration = Duration::from_millis(1500);

/// The slow endpoint's body.
const SLOW_BODY: &[u8] = b"slow body, all of it\n";

/// Conf lines: a grace period far longer than any wait in these tests, so a
/// prompt exit shows the drain ended because the work did, not the timer.
const DRAIN_CONF: &str = "grace_period_seconds: 30\ngraceful_shutdown_timeout_seconds: 5\n";

/// An origin whose `/slow` answers after `delay`; anything else at once.
fn slow_origin(delay: Duration) -> RawOrigin {
    RawOrigin::start(move |req| {
        if req.path == "/slow" {
            vec![Step::Sleep(delay), Step::Send(ok_response(SLOW_BODY))]
        } else {
            vec![Step::Send(ok_response(b"fast\n"))]
        }
    })
}

/// Waits until the proxy logged that it received `signal` (e.g. `SIGTERM`).
fn wait_for_signal_logged(proxy: &Proxy, signal: &str) {
    let needle = format!("{signal} received");
    let n = proxy.wait_for_stderr(1, |s| s.matches(needle.as_str()).count());
    assert_eq!(
        n,
        1,
        "the proxy logs {needle:?}; stderr:\n{}",
        proxy.stderr()
    );
}

#[test]
fn sigterm_lets_the_in_flight_request_finish_refuses_new_ones_and_exits_0() {
    let origin = slow_origin(SLOW);
    let mut proxy = Proxy::start(PART1, &[origin.addr()], DRAIN_CONF);
    let addr = proxy.addr();
    let in_flight = std::thread::spawn(move || {
        raw_exchange(
            addr,
            b"GET /slow HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
        )
    });
    assert!(
        origin.wait_for_requests(1),
        "the slow request reached the origin"
    );

    proxy.signal("TERM");
    let signalled = Instant::now();
    wait_for_signal_logged(&proxy, "SIGTERM");

    // A new connection after the signal: refused, or closed without a byte.
    if let Some(mut late) = RawClient::try_connect(addr) {
        late.try_write(b"GET /fast HTTP/1.1\r\nHost: example.test\r\n\r\n");
        let got = late.wait_closed(Duration::from_secs(10));
        assert_eq!(
            got.as_deref(),
            Some(&b""[..]),
            "a connection made after SIGTERM must be closed without a response"
        );
    }

    let r = in_flight.join().unwrap();
    assert_eq!(r.status(), Some(200), "{}", r.text());
    assert!(
        r.bytes.ends_with(SLOW_BODY),
        "the whole body arrives: {}",
        r.text()
    );
    let status = proxy.wait_exit(Duration::from_secs(10));
    let exited_after = signalled.elapsed();
    assert!(
        status.is_some(),
        "still running 10 s after the in-flight request ended; stderr:\n{}",
        proxy.stderr()
    );
    assert_eq!(status.unwrap().code(), Some(0), "{}", proxy.stderr());
    assert!(
        exited_after < Duration::from_secs(10),
        "exited {exited_after:?} after SIGTERM (grace period 30 s)"
    );
    // Only the slow request ever reached the origin.
    assert_eq!(origin.seen().len(), 1, "{:?}", origin.seen());
}

#[test]
fn sigterm_closes_an_idle_keep_alive_connection_and_exits_0_promptly() {
    let origin = slow_origin(SLOW);
    let mut proxy = Proxy::start(PART1, &[origin.addr()], DRAIN_CONF);
    let mut client = RawClient::connect(proxy.addr());
    client.write(b"GET /fast HTTP/1.1\r\nHost: example.test\r\n\r\n");
    let reply = client.read_response(false).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_eq!(reply.body, b"fast\n");

    proxy.signal("TERM");
    let signalled = Instant::now();
    let closed = client.wait_closed(Duration::from_secs(10));
    assert_eq!(
        closed.as_deref(),
        Some(&b""[..]),
        "the idle keep-alive connection is closed (EOF, no bytes) on SIGTERM"
    );
    let status = proxy.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some(),
        "still running 10 s after SIGTERM with only an idle connection open; stderr:\n{}",
        proxy.stderr()
    );
    assert_eq!(status.unwrap().code(), Some(0), "{}", proxy.stderr());
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "exited {:?} after SIGTERM",
        signalled.elapsed()
    );
}

#[test]
fn sigint_exits_at_once_without_waiting_for_the_in_flight_request() {
    let origin = slow_origin(Duration::from_secs(20));
    let mut proxy = Proxy::start(PART1, &[origin.addr()], DRAIN_CONF);
    let addr = proxy.addr();
    let in_flight = std::thread::spawn(move || {
        raw_exchange(
            addr,
            b"GET /slow HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
        )
    });
    assert!(
        origin.wait_for_requests(1),
        "the slow request reached the origin"
    );

    proxy.signal("INT");
    let signalled = Instant::now();
    let status = proxy.wait_exit(Duration::from_secs(5));
    let took = signalled.elapsed();
    assert!(
        status.is_some(),
        "still running 5 s after SIGINT; stderr:\n{}",
        proxy.stderr()
    );
    assert!(
        took < Duration::from_millis(1500),
        "exited {took:?} after SIGINT"
    );
    let r = in_flight.join().unwrap();
    assert!(r.closed, "the client's connection is closed");
    assert_ne!(
        r.status(),
        Some(200),
        "the slow answer never came: {}",
        r.text()
    );
}

#[test]
fn check_of_a_yaml_syntax_error_names_the_file_and_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conf.yaml");
    // Line 4 is a sequence entry inside a mapping: not YAML.
    std::fs::write(
        &path,
        "---\nversion: 1\nthreads: 2\n- stray item\nlisten: \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = Command::new(PART1)
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&path.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(stderr.contains("line 4"), "names the line: {stderr}");
}
