//! End-to-end checks of the tutorial's part 7 (`part-07-rate-limiting`):
//! per-client-IP limits with `429 Too Many Requests` and `Retry-After`
//! (RFC 6585 §4, RFC 9110 §10.2.3) from `request_filter`, before any
//! upstream is contacted, and the `logging` phase's count of limited
//! requests. Clients: curl, and a raw keep-alive socket where the timing
//! of many requests matters.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::*;

/// The binary under test.
const PART7: &str = env!("CARGO_BIN_EXE_part-07-rate-limiting");

/// A keep-alive GET of `/` on `client`; the reply.
fn get_on(client: &mut RawClient, addr: std::net::SocketAddr) -> RawReply {
    client.write(format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes());
    client
        .read_response(false)
        .expect("a response before the connection closed")
}

/// One curl GET of `url` from the local address `from`; (status code,
/// response head, body).
fn curl_from(from: &str, url: &str) -> (u16, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let head_file = temp_path(&dir, "headers");
    let out = curl(&[
        "--interface",
        from,
        "-D",
        head_file.to_str().unwrap(),
        "-w",
        "\n%{http_code}",
        url,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let head = std::fs::read_to_string(&head_file).unwrap_or_default();
    (code.trim().parse().unwrap(), head, body.to_owned())
}

/// Access-log lines (written by `logging`) in the proxy's stderr.
fn access_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("request=\"") && l.contains("limited_total="))
        .collect()
}

#[test]
fn with_the_defaults_twenty_quick_requests_pass_and_the_rest_get_429_with_retry_after() {
    // The tutorial's loop: 25 quick requests from one client, default
    // limits (10 per second, bursts of 20).
    let origin = TestOrigin::start();
    let proxy = Proxy::start(PART7, &[origin.addr()], "");
    let mut client = RawClient::connect(proxy.addr());
    let start = Instant::now();
    let replies: Vec<RawReply> = (0..25).map(|_| get_on(&mut client, proxy.addr())).collect();
    let elapsed = start.elapsed();
    let codes: Vec<u16> = replies.iter().map(|r| r.status).collect();
    let passed = codes.iter().filter(|c| **c == 200).count();
    // A token comes back every 100 ms: 25 requests on one keep-alive
    // connection take a few ms, but a loaded machine may take longer, and
    // then a refilled token may let one more through.
    let refilled = (elapsed.as_secs_f64() * 10.0) as usize;
    assert!(
        codes[..20].iter().all(|c| *c == 200) && (20..=20 + refilled).contains(&passed),
        "{codes:?} in {elapsed:?}"
    );
    assert!(codes.iter().all(|c| *c == 200 || *c == 429), "{codes:?}");
    assert!(codes[24] == 429 || refilled > 0, "{codes:?} in {elapsed:?}");
    for r in replies.iter().filter(|r| r.status == 429) {
        // at most 100 ms to wait, rounded up to whole seconds
        assert_eq!(r.header("Retry-After").as_deref(), Some("1"), "{}", r.head);
        assert_eq!(r.header("Cache-Control").as_deref(), Some("no-store"));
        assert!(String::from_utf8_lossy(&r.body).contains("Retry after 1 s"));
    }
    assert_eq!(
        origin.requests(),
        passed,
        "a limited request must not reach the origin"
    );
}

#[test]
fn retry_after_is_the_wait_in_whole_seconds_and_waiting_it_is_enough() {
    // 0.5 per second: after the burst of 2, the next token is 2 s away.
    let origin = TestOrigin::start();
    let proxy = Proxy::start(
        PART7,
        &[origin.addr()],
        "rate_limit_per_sec: 0.5\nrate_limit_burst: 2\n",
    );
    let url = proxy.url("/");
    let start = Instant::now();
    assert_eq!(curl_from("127.0.0.1", &url).0, 200);
    assert_eq!(curl_from("127.0.0.1", &url).0, 200);
    let (code, head, body) = curl_from("127.0.0.1", &url);
    let elapsed = start.elapsed();
    assert_eq!(code, 429, "{head}");
    let retry_after: u64 = head_header(&head, "Retry-After").unwrap().parse().unwrap();
    // 2 s after the first request, less the time that passed, rounded up
    let expected = if elapsed < Duration::from_secs(1) {
        2
    } else {
        1
    };
    assert_eq!(retry_after, expected, "after {elapsed:?}: {head}");
    assert!(
        body.contains("at most 0.5 per second, in bursts of 2"),
        "{body}"
    );
    assert_eq!(origin.requests(), 2);

    std::thread::sleep(Duration::from_secs(retry_after));
    let (code, head, _) = curl_from("127.0.0.1", &url);
    assert_eq!(code, 200, "after waiting Retry-After: {head}");
}

#[test]
fn a_client_at_exactly_the_allowed_rate_is_never_refused() {
    // 20 per second, bursts of 3: a client sending one request every 50 ms
    // (on a fixed schedule, so delays do not add up) for 3 s. The burst of 3
    // leaves 100 ms of slack for the client's and the proxy's jitter.
    let origin = TestOrigin::start();
    let proxy = Proxy::start(
        PART7,
        &[origin.addr()],
        "rate_limit_per_sec: 20\nrate_limit_burst: 3\n",
    );
    let mut client = RawClient::connect(proxy.addr());
    let start = Instant::now();
    let mut codes = Vec::new();
    for k in 0..60u32 {
        let due = start + Duration::from_millis(50) * k;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        codes.push(get_on(&mut client, proxy.addr()).status);
    }
    assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    assert_eq!(origin.requests(), 60);
    // The same client now going twice as fast is refused within a second:
    // the limit is the rate, not just the burst.
    let refused = (0..20)
        .map(|k| {
            let due = start + Duration::from_millis(3000 + 25 * k);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            get_on(&mut client, proxy.addr()).status
        })
        .filter(|c| *c == 429)
        .count();
    assert!(refused >= 5, "{refused} of 20 refused at twice the rate");
}

#[test]
fn two_clients_are_limited_independently() {
    // 0.5 per second, bursts of 3: no token comes back during the test.
    let origin = TestOrigin::start();
    let proxy = Proxy::start(
        PART7,
        &[origin.addr()],
        "rate_limit_per_sec: 0.5\nrate_limit_burst: 3\n",
    );
    let url = proxy.url("/");
    let a: Vec<u16> = (0..5).map(|_| curl_from("127.0.0.1", &url).0).collect();
    assert_eq!(a, [200, 200, 200, 429, 429]);
    // Another address (all of 127/8 is loopback) has its own budget,
    // untouched by the first client's spent one.
    let b: Vec<u16> = (0..4).map(|_| curl_from("127.0.0.2", &url).0).collect();
    assert_eq!(b, [200, 200, 200, 429]);
    // and the first is still limited
    assert_eq!(curl_from("127.0.0.1", &url).0, 429);
    assert_eq!(origin.requests(), 6);
}

#[test]
fn logging_writes_one_line_per_request_and_counts_the_limited_ones() {
    let origin = TestOrigin::start();
    let proxy = Proxy::start(
        PART7,
        &[origin.addr()],
        "rate_limit_per_sec: 0.5\nrate_limit_burst: 2\n",
    );
    let mut client = RawClient::connect(proxy.addr());
    let codes: Vec<u16> = (0..5)
        .map(|_| get_on(&mut client, proxy.addr()).status)
        .collect();
    assert_eq!(codes, [200, 200, 429, 429, 429]);
    proxy.wait_for_stderr(5, |s| access_lines(s).len());
    // A duplicate line would come right after the others; give it a moment.
    std::thread::sleep(Duration::from_millis(300));
    let stderr = proxy.stderr();
    let lines = access_lines(&stderr);
    assert_eq!(lines.len(), 5, "{stderr}");
    let limited: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains(" limited=yes "))
        .collect();
    assert_eq!(limited.len(), 3, "{stderr}");
    assert!(
        limited.iter().all(|l| l.contains("status=429 ")),
        "{stderr}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(" limited=no ") && l.contains("status=200 "))
            .count(),
        2,
        "{stderr}"
    );
    // the running total reaches 3
    assert!(
        lines.last().unwrap().contains("limited_total=3 "),
        "{stderr}"
    );
}
