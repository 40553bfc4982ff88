//! End-to-end checks of the tutorial's complete proxy (`part-08-complete`):
//! load balancing with health checks, per-client rate limiting, the API-key
//! gate, response header cleanup and the access log, against real origins
//! and driven by curl.

#![allow(clippy::unwrap_used)]

mod support;

use support::*;

/// The binary under test.
const PART8: &str = env!("CARGO_BIN_EXE_part-08-complete");
/// The conf key the tests use (instead of the default).
const KEY_YAML: &str = "api_key: k-8\n";
const KEY: &str = "X-API-Key: k-8";

/// Access-log lines (from `logging`) in the proxy's stderr.
fn access_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("request=\"") && l.contains("limited="))
        .collect()
}

#[test]
fn embedded_default_answers_with_the_key_and_refuses_without() {
    let proxy = Proxy::start(PART8, &[], "");
    let (code, head) = curl_status_and_head(&proxy.url("/"), &["X-API-Key: secret123"]);
    assert_eq!(code, "200", "{head}");
    let (code, _) = curl_status_and_head(&proxy.url("/"), &[]);
    assert_eq!(code, "401");
}

#[test]
fn authenticated_requests_reach_the_origin_cleaned_up_and_without_the_key() {
    let origin = TestOrigin::start();
    let proxy = Proxy::start(PART8, &[origin.addr()], KEY_YAML);
    let (code, head) = curl_status_and_head(&proxy.url("/"), &[KEY]);
    assert_eq!(code, "200", "{head}");
    assert_eq!(
        head_header(&head, "server"),
        None,
        "Server must be removed: {head}"
    );
    assert_eq!(head_header(&head, "x-powered-by"), None, "{head}");
    assert_eq!(
        head_header(&head, SAW_API_KEY).as_deref(),
        Some("-"),
        "the key must not be forwarded"
    );
    assert_eq!(
        head_header(&head, SAW_HOST),
        Some(origin.addr().to_string()),
        "Host names the upstream"
    );
    let (code, _) = curl_status_and_head(&proxy.url("/"), &["X-API-Key: wrong"]);
    assert_eq!(code, "401");
    assert_eq!(
        origin.requests(),
        1,
        "a refused request must not reach the origin"
    );
}

#[test]
fn a_client_over_its_burst_gets_429_with_retry_after_and_is_logged() {
    let origin = TestOrigin::start();
    let conf = format!("{KEY_YAML}rate_limit_per_sec: 1\nrate_limit_burst: 3\n");
    let proxy = Proxy::start(PART8, &[origin.addr()], &conf);
    let mut codes = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let (code, head) = curl_status_and_head(&proxy.url("/"), &[KEY]);
        if code == "429" {
            retry_after = retry_after.or_else(|| head_header(&head, "retry-after"));
        }
        codes.push(code);
    }
    assert_eq!(codes, ["200", "200", "200", "429", "429"]);
    let wait: u64 = retry_after
        .expect("a 429 carries Retry-After")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        origin.requests(),
        3,
        "limited requests never reach the origin"
    );
    std::thread::sleep(std::time::Duration::from_secs(wait));
    let (code, _) = curl_status_and_head(&proxy.url("/"), &[KEY]);
    assert_eq!(code, "200", "allowed again after Retry-After");
    proxy.wait_for_stderr(6, |s| access_lines(s).len());
    let stderr = proxy.stderr();
    let lines = access_lines(&stderr);
    assert_eq!(lines.len(), 6, "one access-log line per request:\n{stderr}");
    assert_eq!(
        lines.iter().filter(|l| l.contains("limited=yes")).count(),
        2
    );
    assert!(
        lines.iter().any(|l| l.contains("limited_total=2")),
        "{stderr}"
    );
}

#[test]
fn a_dead_upstream_in_the_list_fails_no_request() {
    let live = TestOrigin::start();
    let dead = dead_addr();
    let proxy = Proxy::start(PART8, &[live.addr(), dead], KEY_YAML);
    for i in 0..10 {
        let (code, head) = curl_status_and_head(&proxy.url(&format!("/r{i}")), &[KEY]);
        assert_eq!(code, "200", "request {i}: {head}");
    }
    assert_eq!(live.requests(), 10);
}
