//! `/metrics` end to end: an in-process proxy (see `support/lb_proxy.rs`)
//! with `Service::prometheus_http_service()`, requests of known statuses to
//! a real origin (nginx), then a scrape whose counters must equal what was
//! sent. The scrape is parsed strictly (the text exposition format 0.0.4:
//! HELP/TYPE before samples, valid names and label escapes, cumulative
//! histogram buckets ending in `+Inf` = `_count`, no duplicate series) and,
//! when `promtool` is installed (Debian's `prometheus` package; or the path
//! in `PROMTOOL`), checked with `promtool check metrics` too.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proxy_facade::lb::health_check::TcpHealthCheck;
use proxy_facade::lb::selection::RoundRobin;
use proxy_facade::lb::{Backend, LoadBalancer};
use proxy_facade::metrics::prometheus;
use proxy_facade::prelude::background_service;
use support::lb_proxy::{self, InProcessProxy};
use support::*;

// ------------------------------------------------------------- scraping ---

/// One sample: the metric name and its labels, sorted.
type SeriesKey = (String, BTreeMap<String, String>);

/// A scrape, parsed.
struct Scrape {
    text: String,
    /// `# TYPE` of each family.
    types: BTreeMap<String, String>,
    samples: BTreeMap<SeriesKey, f64>,
}

impl Scrape {
    /// The value of `name{labels}`, if present.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.get(&(name.to_string(), labels)).copied()
    }

    /// [`Scrape::get`], 0 when absent, as an integer.
    fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.get(name, labels).unwrap_or(0.0) as u64
    }
}

/// GET /metrics from `addr` on a fresh connection.
fn scrape(addr: SocketAddr) -> Scrape {
    let mut c = RawClient::connect(addr);
    c.write(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(r.body).unwrap();
    parse_strictly(text)
}

fn valid_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    chars.next().is_some_and(ok_first) && chars.all(|c| ok_first(c) || c.is_ascii_digit())
}

/// Parses `{a="x",b="y\"z"}` from the start of `s`; returns the labels and
/// the rest. Panics on anything the format does not allow.
fn parse_labels(s: &str, line: &str) -> (BTreeMap<String, String>, String) {
    let mut labels = BTreeMap::new();
    let mut rest = &s[1..];
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return (labels, r.to_string());
        }
        let eq = rest
            .find('=')
            .unwrap_or_else(|| panic!("label without '=': {line}"));
        let name = &rest[..eq];
        assert!(valid_name(name, false), "bad label name {name:?}: {line}");
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .unwrap_or_else(|| panic!("unquoted label value: {line}"));
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    other => panic!("bad escape {other:?}: {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value: {line}"),
            }
        };
        assert!(
            labels.insert(name.to_string(), value).is_none(),
            "duplicate label {name}: {line}"
        );
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses the text format strictly (see the module docs); panics, failing
/// the test, on the first violation.
fn parse_strictly(text: String) -> Scrape {
    let mut types = BTreeMap::new();
    let mut helps = BTreeSet::new();
    let mut samples = BTreeMap::new();
    assert!(
        text.ends_with('\n'),
        "the exposition must end with a newline"
    );
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(valid_name(name, true), "bad name in {line}");
            assert!(helps.insert(name.to_string()), "second HELP: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(valid_name(name, true), "bad name in {line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad type: {line}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "second TYPE: {line}"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let name_end = line.find(['{', ' ']).unwrap();
        let name = &line[..name_end];
        assert!(valid_name(name, true), "bad metric name: {line}");
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..], line)
        } else {
            (BTreeMap::new(), line[name_end..].to_string())
        };
        let value = rest.trim_start_matches(' ');
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        let kind = types
            .get(family)
            .unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
        if kind == "counter" {
            assert!(value >= 0.0, "negative counter: {line}");
        }
        assert!(
            samples.insert((name.to_string(), labels), value).is_none(),
            "duplicate series: {line}"
        );
    }
    check_histograms(&types, &samples);
    Scrape {
        text,
        types,
        samples,
    }
}

/// Every histogram series: buckets cumulative (non-decreasing in `le`), a
/// `+Inf` bucket equal to `_count`, and a `_sum`.
fn check_histograms(types: &BTreeMap<String, String>, samples: &BTreeMap<SeriesKey, f64>) {
    for (family, _) in types.iter().filter(|(_, t)| *t == "histogram") {
        let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for ((name, labels), v) in samples {
            if *name != format!("{family}_bucket") {
                continue;
            }
            let mut base = labels.clone();
            let le = base.remove("le").expect("bucket without le");
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            series.entry(base).or_default().push((le, *v));
        }
        for (base, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family}{base:?}: buckets not cumulative: {buckets:?}"
            );
            let (le, last) = *buckets.last().unwrap();
            assert!(le.is_infinite(), "{family}{base:?}: no +Inf bucket");
            let count = samples.get(&(format!("{family}_count"), base.clone()));
            assert_eq!(
                count,
                Some(&last),
                "{family}{base:?}: +Inf bucket != _count"
            );
            assert!(samples.contains_key(&(format!("{family}_sum"), base.clone())));
        }
    }
}

/// `promtool check metrics` on `text` when promtool is available (`PROMTOOL`
/// or on `PATH`; required when `CI` is set); returns whether it ran. Its lint findings (e.g. a counter
/// name's suffix) fail the test as errors do.
fn promtool_check(text: &str) -> bool {
    let tool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_string());
    let child = Command::new(&tool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        // CI installs it (.ci/run): there a missing promtool is a failure
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool not found ({tool}) under CI"
        );
        eprintln!("promtool not found ({tool}): checked by the strict parser only");
        return false;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    true
}

/// Scrapes until `done` holds or [`WAIT`] passes.
fn scrape_until(addr: SocketAddr, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = scrape(addr);
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never saw {what}:\n{}", s.text);
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------- tests ---

/// Sends `method path` (with `body`) on the keep-alive connection in
/// `client` (opened when there is none); returns the reply. After a reply
/// with `Connection: close`, or an error the proxy answered itself (its
/// `fail_to_proxy` does not keep the connection, as Pingora's), the
/// connection is dropped so the next request opens another.
fn send(
    client: &mut Option<RawClient>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> RawReply {
    let c = client.get_or_insert_with(|| RawClient::connect(addr));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: metrics-test\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.write(req.as_bytes());
    let r = c
        .read_response(false)
        .unwrap_or_else(|| panic!("no response to {method} {path}"));
    assert!(r.complete, "{}", r.head);
    let proxy_error = r.status >= 500 && r.header(lb_proxy::BACKEND_HEADER).is_none();
    let close = r
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    if proxy_error || close {
        *client = None;
    }
    r
}

#[test]
fn scraped_counters_equal_the_requests_sent() {
    const SERVICE: &str = "metrics e2e";
    let nginx = Nginx::start(&[("page", 1000)]);
    let dead = dead_addr();
    let origin = nginx.addr();
    // `/dead...` goes to an address that refuses connections, the rest to nginx
    let proxy = InProcessProxy::start_with_metrics(
        SERVICE,
        Box::new(move |path| {
            let addr = if path.starts_with(b"/dead") {
                dead
            } else {
                origin
            };
            Some((Backend::from_addr(addr, 1), None))
        }),
        None,
    );
    // a program's own counter, in the same default registry
    let own =
        prometheus::IntCounter::new("metrics_test_own_total", "The test's own counter.").unwrap();
    prometheus::register(Box::new(own.clone())).unwrap();
    own.inc_by(3);

    let svc = [("service", SERVICE)];
    // before any request: the families exist, every count is 0
    let before = scrape(proxy.metrics_addr());
    assert_eq!(
        before.count("proxy_requests_total", &[svc[0], ("status_class", "2xx")]),
        0
    );

    let mut client = None;
    let mut out_bytes = 0;
    let mut statuses = BTreeMap::<u16, u64>::new();
    // the 502s first: the proxy closes the connection after each, and the
    // last connection is to stay open for the active-connections gauge
    let plan: [(&str, &str, &str, u64); 4] = [
        ("GET", "/dead", "", 2),       // 502 (connection refused)
        ("GET", "/page", "", 7),       // 200
        ("GET", "/missing", "", 3),    // 404
        ("POST", "/page", "hello", 2), // 405 (nginx: POST to a static file)
    ];
    for (method, path, body, n) in plan {
        for _ in 0..n {
            let r = send(&mut client, proxy.addr(), method, path, body);
            out_bytes += r.body.len() as u64;
            *statuses.entry(r.status).or_default() += 1;
        }
    }
    assert_eq!(
        statuses,
        BTreeMap::from([(200, 7), (404, 3), (405, 2), (502, 2)])
    );

    // a request is counted when it ends, just after its last byte is sent:
    // wait until all 14 have ended
    let s = scrape_until(proxy.metrics_addr(), "14 requests ended", |s| {
        ["none", "1xx", "2xx", "3xx", "4xx", "5xx"]
            .iter()
            .map(|c| s.count("proxy_requests_total", &[svc[0], ("status_class", c)]))
            .sum::<u64>()
            == 14
    });
    let req = |class| s.count("proxy_requests_total", &[svc[0], ("status_class", class)]);
    assert_eq!(
        [
            req("none"),
            req("1xx"),
            req("2xx"),
            req("3xx"),
            req("4xx"),
            req("5xx")
        ],
        [0, 0, 7, 0, 5, 2],
        "{}",
        s.text
    );
    assert_eq!(s.count("proxy_request_duration_seconds_count", &svc), 14);
    assert!(s.get("proxy_request_duration_seconds_sum", &svc).unwrap() > 0.0);

    // upstream connections: every request that reached nginx used one; the
    // opened ones are exactly the TCP connections nginx saw
    let conns = |kind| {
        s.count(
            "proxy_upstream_connections_total",
            &[svc[0], ("kind", kind)],
        )
    };
    let (opened, reused) = (conns("opened"), conns("reused"));
    assert_eq!(opened + reused, 12, "{}", s.text);
    // every request nginx answered is logged (12 reached it)
    nginx.wait_access_log(12);
    assert_eq!(opened as usize, nginx.distinct_connections());
    assert!(
        reused >= 1,
        "a sequential keep-alive client must reuse: {}",
        s.text
    );
    assert_eq!(
        s.count("proxy_upstream_connect_duration_seconds_count", &svc),
        opened
    );

    // the two 502s: connection refused, an upstream error
    let errors = s.count(
        "proxy_errors_total",
        &[
            svc[0],
            ("error_type", "ConnectRefused"),
            ("error_source", "Upstream"),
        ],
    );
    assert_eq!(errors, 2, "{}", s.text);

    let bytes = |dir| {
        s.count(
            "proxy_downstream_body_bytes_total",
            &[svc[0], ("direction", dir)],
        )
    };
    assert_eq!(bytes("in"), 10);
    assert_eq!(bytes("out"), out_bytes);
    assert!(out_bytes >= 7000);

    // the client's keep-alive connection is open (connections the proxy
    // closed after an error may take a moment to be counted out)
    assert!(client.is_some());
    scrape_until(proxy.metrics_addr(), "1 active connection", |s| {
        s.count("proxy_downstream_connections_active", &svc) == 1
    });
    // (every test of this file runs a metrics service under that name)
    assert!(
        s.count(
            "proxy_downstream_connections_active",
            &[("service", "Prometheus metric HTTP")]
        ) >= 1
    );
    assert_eq!(s.count("metrics_test_own_total", &[]), 3);
    assert_eq!(s.types["proxy_requests_total"], "counter");
    assert_eq!(s.types["proxy_request_duration_seconds"], "histogram");
    assert_eq!(s.types["proxy_downstream_connections_active"], "gauge");
    promtool_check(&s.text);

    // the client leaves: the gauge follows
    drop(client);
    scrape_until(proxy.metrics_addr(), "0 active connections", |s| {
        s.count("proxy_downstream_connections_active", &svc) == 0
    });
}

#[test]
fn the_wait_for_a_keepalive_request_is_not_part_of_its_duration() {
    const SERVICE: &str = "metrics keep-alive wait";
    let nginx = Nginx::start(&[("page", 10)]);
    let origin = nginx.addr();
    let proxy = InProcessProxy::start_with_metrics(
        SERVICE,
        Box::new(move |_| Some((Backend::from_addr(origin, 1), None))),
        None,
    );
    let svc = [("service", SERVICE)];
    let mut client = None;
    assert_eq!(
        send(&mut client, proxy.addr(), "GET", "/page", "").status,
        200
    );
    assert!(client.is_some(), "the connection was kept alive");
    // the idle gap under test, not a wait for an event: the connection sits
    // idle, then carries a second request
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        send(&mut client, proxy.addr(), "GET", "/page", "").status,
        200
    );
    let s = scrape_until(proxy.metrics_addr(), "2 requests ended", |s| {
        s.count("proxy_request_duration_seconds_count", &svc) == 2
    });
    // each request's time starts with its first byte: the 0.8 s idle wait
    // before the second is not in it
    let sum = s.get("proxy_request_duration_seconds_sum", &svc).unwrap();
    assert!(sum > 0.0 && sum < 0.4, "duration sum {sum} s:\n{}", s.text);
}

#[test]
fn metrics_service_answers_404_405_and_head() {
    let proxy = InProcessProxy::start_with_metrics("metrics http", Box::new(|_| None), None);
    let mut c = RawClient::connect(proxy.metrics_addr());
    c.write(b"GET /other HTTP/1.1\r\nHost: m\r\n\r\n");
    assert_eq!(c.read_response(false).unwrap().status, 404);
    c.write(b"DELETE /metrics HTTP/1.1\r\nHost: m\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow").as_deref(), Some("GET, HEAD"));
    c.write(b"HEAD /metrics HTTP/1.1\r\nHost: m\r\n\r\n");
    let r = c.read_response(true).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
    // still the same keep-alive connection
    c.write(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.body.is_empty());
}

#[test]
fn backend_health_gauge_follows_the_health_checks() {
    let origin = TestOrigin::start();
    let (live, dead) = (origin.addr(), dead_addr());
    let mut lb = LoadBalancer::<RoundRobin>::try_from_iter([live, dead]).unwrap();
    lb.set_health_check(TcpHealthCheck::new());
    lb.health_check_frequency = Some(Duration::from_millis(100));
    let background = background_service("lb health", lb);
    let lb: Arc<LoadBalancer<RoundRobin>> = background.task();
    let proxy = InProcessProxy::start_with_metrics(
        "metrics lb",
        Box::new(move |key| lb.select(key, 256).map(|b| (b, None))),
        Some(Box::new(background)),
    );
    let (live_s, dead_s) = (live.to_string(), dead.to_string());
    let gauge = |s: &Scrape, b: &str| s.get("proxy_lb_backend_healthy", &[("backend", b)]);
    let s = scrape_until(proxy.metrics_addr(), "both backends' health", |s| {
        gauge(s, &live_s) == Some(1.0) && gauge(s, &dead_s) == Some(0.0)
    });
    assert_eq!(s.types["proxy_lb_backend_healthy"], "gauge");
    promtool_check(&s.text);

    // the live backend goes down: its gauge turns 0
    drop(origin);
    scrape_until(proxy.metrics_addr(), "the stopped backend at 0", |s| {
        gauge(s, &live_s) == Some(0.0)
    });
}
