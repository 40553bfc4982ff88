//! End-to-end checks of the tutorial's part 3 (`part-03-filters`): the
//! API-key `request_filter`, the `response_filter` that hides `Server` and
//! `X-Powered-By`, and the `logging` phase's one line per request.

#![allow(clippy::unwrap_used)]

mod support;

use support::*;

/// The binary under test.
const PART3: &str = env!("CARGO_BIN_EXE_part-03-filters");

/// Counts access-log lines (written by `logging`) in the proxy's stderr.
fn access_lines(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.contains("request=\"") && l.contains("duration_ms="))
        .count()
}

/// Lines of the access log with `status=<code>`.
fn access_lines_with_status(stderr: &str, code: &str) -> usize {
    let token = format!("status={code} ");
    stderr
        .lines()
        .filter(|l| l.contains("duration_ms=") && l.contains(&token))
        .count()
}

#[test]
fn missing_or_wrong_api_key_gets_401_and_the_origin_sees_no_connection() {
    let origin = TestOrigin::start();
    let proxy = Proxy::start(PART3, &[origin.addr()], "api_key: k-123\n");
    let (code, _) = curl_status_and_head(&proxy.url("/"), &[]);
    assert_eq!(code, "401");
    let (code, _) = curl_status_and_head(&proxy.url("/"), &["X-API-Key: wrong"]);
    assert_eq!(code, "401");
    assert_eq!(
        origin.connections(),
        0,
        "a refused request must not reach the origin"
    );
}

#[test]
fn right_api_key_gets_200_without_server_and_x_powered_by() {
    let origin = TestOrigin::start();
    let proxy = Proxy::start(PART3, &[origin.addr()], "api_key: k-123\n");
    let (code, head) = curl_status_and_head(&proxy.url("/"), &["X-API-Key: k-123"]);
    assert_eq!(code, "200", "{head}");
    let head = head.to_ascii_lowercase();
    assert!(
        !head.contains("\nserver:"),
        "Server must be removed: {head}"
    );
    assert!(
        !head.contains("\nx-powered-by:"),
        "X-Powered-By must be removed: {head}"
    );
    // The origin did answer (its own header is still there) and the proxy
    // set Host to the upstream and kept the key to itself.
    assert!(
        head.contains(&format!("{SAW_HOST}: {}", origin.addr())),
        "{head}"
    );
    assert!(head.contains(&format!("{SAW_API_KEY}: -")), "{head}");
    assert_eq!(origin.requests(), 1);
}

#[test]
fn logging_writes_exactly_one_line_per_request() {
    // Upstream: one live origin. 3 refused (401) + 2 served (200).
    let origin = TestOrigin::start();
    let proxy = Proxy::start(PART3, &[origin.addr()], "");
    for _ in 0..3 {
        assert_eq!(curl_status_and_head(&proxy.url("/"), &[]).0, "401");
    }
    for _ in 0..2 {
        let (code, _) = curl_status_and_head(&proxy.url("/"), &["X-API-Key: secret123"]);
        assert_eq!(code, "200");
    }
    let n = proxy.wait_for_stderr(5, access_lines);
    // A duplicate line would come right after the first; give it a moment.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let stderr = proxy.stderr();
    assert_eq!(n, 5, "{stderr}");
    assert_eq!(access_lines(&stderr), 5, "{stderr}");
    assert_eq!(access_lines_with_status(&stderr, "401"), 3, "{stderr}");
    assert_eq!(access_lines_with_status(&stderr, "200"), 2, "{stderr}");
}

#[test]
fn logging_runs_once_for_a_failed_upstream_too() {
    // Upstream: nothing listening. 1 refused (401) + 2 failing (502).
    let proxy = Proxy::start(PART3, &[dead_addr()], "");
    assert_eq!(curl_status_and_head(&proxy.url("/"), &[]).0, "401");
    for _ in 0..2 {
        let (code, _) = curl_status_and_head(&proxy.url("/"), &["X-API-Key: secret123"]);
        assert_eq!(code, "502");
    }
    proxy.wait_for_stderr(3, access_lines);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let stderr = proxy.stderr();
    assert_eq!(access_lines(&stderr), 3, "{stderr}");
    assert_eq!(access_lines_with_status(&stderr, "401"), 1, "{stderr}");
    assert_eq!(access_lines_with_status(&stderr, "502"), 2, "{stderr}");
    // The failed requests carry their error.
    let with_error = stderr
        .lines()
        .filter(|l| l.contains("status=502 ") && !l.trim_end().ends_with("error=-"))
        .count();
    assert_eq!(with_error, 2, "{stderr}");
}
