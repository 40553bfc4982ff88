//! Logging of the tutorial proxy (part 1): the level comes from `RUST_LOG`,
//! and the error line of a failed request carries the request summary
//! (`ProxyHttp::request_summary`: method, path and Host).

#![allow(clippy::unwrap_used)]

mod support;

use support::*;

const PART01: &str = env!("CARGO_BIN_EXE_part-01-first-proxy");

/// A request the proxy cannot forward (its upstream refuses connections):
/// answered 502.
fn failing_request(proxy: &Proxy) {
    let mut c = RawClient::connect(proxy.addr());
    c.write(b"GET /logged/path?q=1 HTTP/1.1\r\nHost: log-test\r\n\r\n");
    assert_eq!(c.read_response(false).unwrap().status, 502);
}

fn fail_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains("fail to proxy"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn error_line_of_a_failed_request_carries_its_summary_at_rust_log_warn() {
    let proxy = Proxy::start_with_log(PART01, &[dead_addr()], "", "warn");
    failing_request(&proxy);
    assert_eq!(proxy.wait_for_stderr(1, |s| fail_lines(s).len()), 1);
    let stderr = proxy.stderr();
    let line = &fail_lines(&stderr)[0];
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("ConnectRefused"), "{line}");
    assert!(line.contains("status: 502"), "{line}");
    assert!(
        line.contains("GET /logged/path?q=1, Host: log-test"),
        "{line}"
    );
    // RUST_LOG=warn: the start-up info lines are not written
    assert!(!stderr.contains("listening on"), "{stderr}");
}

#[test]
fn rust_log_info_adds_the_info_lines() {
    let proxy = Proxy::start_with_log(PART01, &[dead_addr()], "", "info");
    let listening = proxy.wait_for_stderr(1, |s| s.matches("listening on").count());
    assert!(listening >= 1, "{}", proxy.stderr());
    failing_request(&proxy);
    assert_eq!(proxy.wait_for_stderr(1, |s| fail_lines(s).len()), 1);
}
