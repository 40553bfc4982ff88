//! End-to-end checks of the tutorial's part 6 (`part-06-caching`) against
//! scripted origins on loopback, counting what reaches the origin: hits and
//! misses, expiry, RFC 9111 storing rules, revalidation, Vary, stale
//! serving, the cache lock, streaming a fill to a second client, ranges,
//! purge and invalidation.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::*;

/// The binary under test.
const PART6: &str = env!("CARGO_BIN_EXE_part-06-caching");

/// A response with `status`, the extra header lines (`"Name: value"`) and
/// `body`, framed by Content-Length.
fn response(status: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

/// GET (or `method`) `url` with curl; returns (status, head, body).
fn fetch(method: &str, url: &str, headers: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let head_file = temp_path(&dir, "head");
    let body_file = temp_path(&dir, "body");
    let mut args = vec![
        "-s",
        "-X",
        method,
        "-D",
        head_file.to_str().unwrap(),
        "-o",
        body_file.to_str().unwrap(),
        "-w",
        "%{http_code}",
    ];
    if method == "HEAD" {
        args = vec![
            "-s",
            "-I",
            "-D",
            head_file.to_str().unwrap(),
            "-o",
            body_file.to_str().unwrap(),
            "-w",
            "%{http_code}",
        ];
    }
    for h in headers {
        args.push("-H");
        args.push(h);
    }
    args.push(url);
    let out = curl(&args);
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let head = std::fs::read_to_string(&head_file).unwrap_or_default();
    let body = std::fs::read(&body_file).unwrap_or_default();
    (code, head, body)
}

fn get(url: &str) -> (u16, String, Vec<u8>) {
    fetch("GET", url, &[])
}

fn cache_status(head: &str) -> String {
    head_header(head, "cache-status").unwrap_or_default()
}

fn requests_to(origin: &RawOrigin, path: &str) -> usize {
    origin.seen().iter().filter(|r| r.path == path).count()
}

/// An origin whose answer depends on the path: `/cc/<directives>` answers
/// with that Cache-Control (`_` for spaces) and an ETag; conditional
/// requests matching the ETag get 304.
fn policy_origin() -> RawOrigin {
    RawOrigin::start(|req| {
        let path = req.path.clone();
        let cc = path
            .strip_prefix("/cc/")
            .map(|s| {
                s.split('?')
                    .next()
                    .unwrap_or("")
                    .replace('_', " ")
                    .replace("%20", " ")
            })
            .unwrap_or_else(|| "max-age=60".to_owned());
        let etag = "\"v1\"";
        if req.header("if-none-match").as_deref() == Some(etag) {
            return vec![Step::Send(response(
                "304 Not Modified",
                &[
                    &format!("Cache-Control: {cc}"),
                    &format!("ETag: {etag}"),
                    "X-Version: 2",
                ],
                b"",
            ))];
        }
        let body = format!("body of {path}");
        vec![Step::Send(response(
            "200 OK",
            &[
                &format!("Cache-Control: {cc}"),
                &format!("ETag: {etag}"),
                "X-Version: 1",
            ],
            body.as_bytes(),
        ))]
    })
}

#[test]
fn second_request_is_a_hit_that_never_reaches_the_origin() {
    let origin = policy_origin();
    let proxy = Proxy::start(PART6, &[origin.addr()], "");
    let url = proxy.url("/cc/max-age=60");
    let (c1, h1, b1) = get(&url);
    let (c2, h2, b2) = get(&url);
    assert_eq!((c1, c2), (200, 200));
    assert_eq!(b1, b2);
    assert_eq!(requests_to(&origin, "/cc/max-age=60"), 1, "{h1}\n{h2}");
    assert!(cache_status(&h1).contains("fwd=uri-miss"), "{h1}");
    assert!(cache_status(&h2).contains("hit"), "{h2}");
    assert!(head_header(&h2, "age").is_some(), "a hit carries Age: {h2}");
    // HEAD is answered from the cached GET
    let (c3, h3, _) = fetch("HEAD", &url, &[]);
    assert_eq!(c3, 200);
    assert!(cache_status(&h3).contains("hit"), "{h3}");
    assert_eq!(requests_to(&origin, "/cc/max-age=60"), 1);
}

#[test]
fn entry_expires_after_max_age_and_is_revalidated_with_its_etag() {
    let origin = policy_origin();
    let proxy = Proxy::start(PART6, &[origin.addr()], "");
    let url = proxy.url("/cc/max-age=1");
    let (_, h1, b1) = get(&url);
    assert_eq!(head_header(&h1, "x-version").as_deref(), Some("1"));
    std::thread::sleep(Duration::from_millis(2100));
    let (c2, h2, b2) = get(&url);
    assert_eq!(c2, 200);
    assert_eq!(b1, b2, "the stored body is served after a 304");
    let seen: Vec<_> = origin
        .seen()
        .into_iter()
        .filter(|r| r.path == "/cc/max-age=1")
        .collect();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].header("if-none-match").as_deref(), Some("\"v1\""));
    // RFC 9111 §4.3.4: the 304's fields replace the stored ones
    assert_eq!(head_header(&h2, "x-version").as_deref(), Some("2"), "{h2}");
    let (_, h3, _) = get(&url);
    assert!(cache_status(&h3).contains("hit"), "{h3}");
    assert_eq!(requests_to(&origin, "/cc/max-age=1"), 2);
}

#[test]
fn s_maxage_wins_over_max_age_for_a_shared_cache() {
    let origin = policy_origin();
    let proxy = Proxy::start(PART6, &[origin.addr()], "");
    let url = proxy.url("/cc/max-age=0,_s-maxage=60");
    get(&url);
    let (_, h, _) = get(&url);
    assert!(cache_status(&h).contains("hit"), "{h}");
    assert_eq!(requests_to(&origin, "/cc/max-age=0,_s-maxage=60"), 1);
}

#[test]
fn private_no_store_and_authorization_are_not_stored() {
    let origin = policy_origin();
    let proxy = Proxy::start(PART6, &[origin.addr()], "");
    for path in ["/cc/private,_max-age=60", "/cc/no-store"] {
        get(&proxy.url(path));
        get(&proxy.url(path));
        assert_eq!(requests_to(&origin, path), 2, "{path} must not be stored");
    }
    let path = "/cc/max-age=60?auth";
    let url = proxy.url(path);
    fetch("GET", &url, &["Authorization: Basic dTpw"]);
    fetch("GET", &url, &["Authorization: Basic dTpw"]);
    assert_eq!(
        requests_to(&origin, path),
        2,
        "Authorization without public"
    );
    // ...but `public` allows it (RFC 9111 §3.5)
    let path = "/cc/public,_max-age=60";
    fetch("GET", &proxy.url(path), &["Authorization: Basic dTpw"]);
    fetch("GET", &proxy.url(path), &["Authorization: Basic dTpw"]);
    assert_eq!(requests_to(&origin, path), 1);
}

#[test]
fn vary_on_accept_encoding_keeps_one_entry_per_variant() {
    let origin = RawOrigin::start(|req| {
        let enc = req.header("accept-encoding").unwrap_or_default();
        vec![Step::Send(response(
            "200 OK",
            &["Cache-Control: max-age=60", "Vary: Accept-Encoding"],
            format!("variant for [{enc}]").as_bytes(),
        ))]
    });
    let proxy = Proxy::start(PART6, &[origin.addr()], "");
    let url = proxy.url("/v");
    let (_, _, gz1) = fetch("GET", &url, &["Accept-Encoding: gzip"]);
    let (_, _, br1) = fetch("GET", &url, &["Accept-Encoding: br"]);
    let (_, h, gz2) = fetch("GET", &url, &["Accept-Encoding: gzip"]);
    let (_, _, br2) = fetch("GET", &url, &["Accept-Encoding: br"]);
    assert_eq!(gz1, b"variant for [gzip]");
    assert_eq!(br1, b"variant for [br]");
    assert_eq!(gz1, gz2);
    assert_eq!(br1, br2);
    assert!(cache_status(&h).contains("hit"), "{h}");
    assert_eq!(requests_to(&origin, "/v"), 2);
}

#[test]
fn stale_while_revalidate_serves_stale_once_and_refreshes() {
    let origin = policy_origin();
    let proxy = Proxy::start(PART6, &[origin.addr()], "");
    let path = "/cc/max-age=1,_stale-while-revalidate=60";
    let url = proxy.url(path);
    get(&url);
    std::thread::sleep(Duration::from_millis(2100));
    let (c, h, _) = get(&url);
    assert_eq!(c, 200);
    assert!(cache_status(&h).contains("fwd=stale"), "{h}");
    assert!(
        origin.wait_for_requests(2),
        "the refresh reaches the origin"
    );
    let (_, h, _) = get(&url);
    assert!(cache_status(&h).contains("hit"), "{h}");
    assert_eq!(requests_to(&origin, path), 2);
}

/// [`policy_origin`] that answers 503 once `down` is set.
fn failing_origin(down: std::sync::Arc<std::sync::atomic::AtomicBool>) -> RawOrigin {
    RawOrigin::start(move |req| {
        if down.load(std::sync::atomic::Ordering::SeqCst) {
            return vec![Step::Send(response(
                "503 Service Unavailable",
                &[],
                b"down",
            ))];
        }
        let cc = req.path.trim_start_matches("/cc/").replace('_', " ");
        vec![Step::Send(response(
            "200 OK",
            &[&format!("Cache-Control: {cc}")],
            b"stored copy",
        ))]
    })
}

#[test]
fn stale_if_error_serves_the_stored_copy_when_the_origin_fails() {
    let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let origin = failing_origin(down.clone());
    let proxy = Proxy::start(PART6, &[origin.addr()], "");
    let sie = proxy.url("/cc/max-age=1,_stale-if-error=60");
    let plain = proxy.url("/cc/max-age=1");
    let (_, _, b1) = get(&sie);
    get(&plain);
    down.store(true, std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(2100));
    let (c, h, b2) = get(&sie);
    assert_eq!(c, 200, "{h}");
    assert_eq!(b1, b2);
    assert!(cache_status(&h).contains("fwd=stale"), "{h}");
    // without stale-if-error, the origin's error goes to the client
    let (c, _, _) = get(&plain);
    assert_eq!(c, 503);
    // and with the origin unreachable, too
    drop(origin);
    let proxy2 = Proxy::start(PART6, &[dead_addr()], "");
    let (c, _, _) = get(&proxy2.url("/x"));
    assert_eq!(c, 502);
}

#[test]
fn concurrent_misses_on_a_cold_key_reach_the_origin_once() {
    let origin = RawOrigin::start(|_| {
        vec![
            Step::Sleep(Duration::from_millis(500)),
            Step::Send(response(
                "200 OK",
                &["Cache-Control: max-age=60"],
                &[b'x'; 10_000],
            )),
        ]
    });
    let proxy = Proxy::start(PART6, &[origin.addr()], "");
    let url = proxy.url("/cold");
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || get(&url))
        })
        .collect();
    for h in handles {
        let (c, _, b) = h.join().unwrap();
        assert_eq!(c, 200);
        assert_eq!(b.len(), 10_000);
    }
    assert_eq!(requests_to(&origin, "/cold"), 1);
}

#[test]
fn clients_waiting_on_a_revalidation_are_served_the_revalidated_entry() {
    // the revalidation is slow, so the other clients wait on the cache lock
    // while their lookup found the entry expired
    let origin = RawOrigin::start(|req| {
        if req.header("if-none-match").is_some() {
            vec![
                Step::Sleep(Duration::from_millis(500)),
                Step::Send(response(
                    "304 Not Modified",
                    &["Cache-Control: max-age=60", "ETag: \"r1\""],
                    b"",
                )),
            ]
        } else {
            vec![Step::Send(response(
                "200 OK",
                &["Cache-Control: max-age=1", "ETag: \"r1\""],
                &[b'r'; 3000],
            ))]
        }
    });
    let proxy = Proxy::start(PART6, &[origin.addr()], "");
    let url = proxy.url("/reval");
    assert_eq!(get(&url).0, 200);
    std::thread::sleep(Duration::from_millis(2100));
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || get(&url))
        })
        .collect();
    for h in handles {
        let (c, head, b) = h.join().unwrap();
        assert_eq!(c, 200, "{head}");
        assert_eq!(b, vec![b'r'; 3000]);
    }
    assert_eq!(
        requests_to(&origin, "/reval"),
        2,
        "one fill, one revalidation"
    );
}

#[test]
fn a_second_client_streams_a_fill_in_progress() {
    // 10 MiB sent in 10 pieces, 200 ms apart
    let origin = RawOrigin::start(|_| {
        let total = 10 * 1024 * 1024;
        let mut steps = vec![Step::Send(
            format!(
                "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: {total}\r\n\r\n"
            )
            .into_bytes(),
        )];
        let piece = pattern_bytes(total / 10);
        for _ in 0..10 {
            steps.push(Step::Send(piece.clone()));
            steps.push(Step::Sleep(Duration::from_millis(200)));
        }
        steps
    });
    let proxy = Proxy::start(PART6, &[origin.addr()], "");
    let url = proxy.url("/big");
    let first = {
        let url = url.clone();
        std::thread::spawn(move || get(&url))
    };
    assert!(origin.wait_for_requests(1));
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let (c2, _, b2) = get(&url);
    let (c1, _, b1) = first.join().unwrap();
    assert_eq!((c1, c2), (200, 200));
    assert_eq!(b1.len(), 10 * 1024 * 1024);
    assert_eq!(sha256_hex(&b1), sha256_hex(&b2));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        requests_to(&origin, "/big"),
        1,
        "the second client read the fill"
    );
}

#[test]
fn ranges_are_served_from_a_hit() {
    let origin = RawOrigin::start(|_| {
        vec![Step::Send(response(
            "200 OK",
            &["Cache-Control: max-age=60", "Content-Type: text/plain"],
            b"0123456789abcdefghij",
        ))]
    });
    let proxy = Proxy::start(PART6, &[origin.addr()], "");
    let url = proxy.url("/r");
    get(&url);
    let (c, h, b) = fetch("GET", &url, &["Range: bytes=2-5"]);
    assert_eq!(c, 206, "{h}");
    assert_eq!(b, b"2345");
    assert_eq!(
        head_header(&h, "content-range").as_deref(),
        Some("bytes 2-5/20")
    );
    let (c, h, b) = fetch("GET", &url, &["Range: bytes=0-1,-2"]);
    assert_eq!(c, 206, "{h}");
    let ct = head_header(&h, "content-type").unwrap();
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    let text = String::from_utf8_lossy(&b);
    assert!(
        text.contains("Content-Range: bytes 0-1/20\r\n\r\n01"),
        "{text}"
    );
    assert!(
        text.contains("Content-Range: bytes 18-19/20\r\n\r\nij"),
        "{text}"
    );
    let (c, h, _) = fetch("GET", &url, &["Range: bytes=50-60"]);
    assert_eq!(c, 416, "{h}");
    assert_eq!(
        head_header(&h, "content-range").as_deref(),
        Some("bytes */20")
    );
    assert_eq!(requests_to(&origin, "/r"), 1);
}

#[test]
fn purge_removes_an_entry_and_post_invalidates() {
    let origin = policy_origin();
    let proxy = Proxy::start(PART6, &[origin.addr()], "");
    let path = "/cc/max-age=60";
    let url = proxy.url(path);
    get(&url);
    let (c, _, _) = fetch("PURGE", &url, &[]);
    assert_eq!(c, 200);
    let (c, _, _) = fetch("PURGE", &url, &[]);
    assert_eq!(c, 404, "nothing left to purge");
    get(&url);
    assert_eq!(requests_to(&origin, path), 2, "a miss after the purge");
    get(&url);
    assert_eq!(requests_to(&origin, path), 2, "stored again");
    let (c, _, _) = fetch("POST", &url, &["Content-Type: text/plain"]);
    assert_eq!(c, 200);
    get(&url);
    assert_eq!(
        origin
            .seen()
            .iter()
            .filter(|r| r.path == path && r.method == "GET")
            .count(),
        3,
        "the POST invalidated the entry"
    );
}

#[test]
fn a_response_over_the_size_limit_passes_through_uncached() {
    let origin = RawOrigin::start(|_| {
        vec![Step::Send(response(
            "200 OK",
            &["Cache-Control: max-age=60"],
            &pattern_bytes(100_000),
        ))]
    });
    let proxy = Proxy::start(PART6, &[origin.addr()], "cache_max_file_size: 50000\n");
    let url = proxy.url("/large");
    let (_, _, b1) = get(&url);
    let (_, _, b2) = get(&url);
    assert_eq!(b1.len(), 100_000);
    assert_eq!(b1, b2);
    assert_eq!(requests_to(&origin, "/large"), 2);
}

#[test]
fn large_hits_sent_from_the_cache_file_are_whole_in_full_in_ranges_and_in_parallel() {
    // 3 MiB: kept in a memfd, sent with sendfile(2) on hits when asked
    for sendfile in [true, false] {
        large_hits_are_whole(sendfile);
    }
}

fn large_hits_are_whole(sendfile: bool) {
    let total = 3 * 1024 * 1024 + 17;
    let body = pattern_bytes(total);
    let origin = {
        let body = body.clone();
        RawOrigin::start(move |_| {
            vec![Step::Send(response(
                "200 OK",
                &["Cache-Control: max-age=60"],
                &body,
            ))]
        })
    };
    let proxy = Proxy::start(
        PART6,
        &[origin.addr()],
        &format!("cache_sendfile: {sendfile}\n"),
    );
    let url = proxy.url("/large-file");
    let (c, _, b) = get(&url);
    assert_eq!((c, b.len()), (200, total));
    let (c, h, b) = get(&url);
    assert_eq!(c, 200);
    assert!(cache_status(&h).contains("hit"), "{h}");
    assert_eq!(sha256_hex(&b), sha256_hex(&body));
    let (c, h, b) = fetch("HEAD", &url, &[]);
    assert_eq!(c, 200);
    // curl -I writes the head where the body would go: no body after it
    assert!(b.len() < 1024, "HEAD answered with {} bytes", b.len());
    assert_eq!(
        head_header(&h, "content-length").as_deref(),
        Some(total.to_string().as_str())
    );
    let (c, h, b) = fetch("GET", &url, &["Range: bytes=1048570-1048599"]);
    assert_eq!(c, 206, "{h}");
    assert_eq!(b, &body[1_048_570..1_048_600]);
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || get(&url))
        })
        .collect();
    let want = sha256_hex(&body);
    for r in readers {
        let (c, _, b) = r.join().unwrap();
        assert_eq!(c, 200);
        assert_eq!(sha256_hex(&b), want);
    }
    assert_eq!(requests_to(&origin, "/large-file"), 1);
}

/// The `Host` the admission tests send, so the cache keys (and the LRU
/// shards they fall in) are the same on every run.
const ADMISSION_HOST: &str = "Host: admission.test";

/// Body bytes of each object the admission tests fetch: 64 KiB on disk.
const ADMISSION_OBJECT: usize = 60_000;

/// GET `path` from `proxy` with [`ADMISSION_HOST`]; whether the cache
/// served it (its `Cache-Status` says hit), after checking the body.
fn admission_get(proxy: &Proxy, path: &str) -> bool {
    let (code, head, body) = fetch("GET", &proxy.url(path), &[ADMISSION_HOST]);
    assert_eq!(code, 200, "{path}: {head}");
    assert_eq!(body.len(), ADMISSION_OBJECT, "{path}");
    cache_status(&head).contains("hit")
}

#[test]
fn tinylfu_admission_keeps_a_popular_entry_through_a_scan_and_lru_does_not() {
    let origin = RawOrigin::start(|_| {
        vec![Step::Send(response(
            "200 OK",
            &["Cache-Control: max-age=600"],
            &vec![b'a'; ADMISSION_OBJECT],
        ))]
    });
    let disk = tempfile::tempdir().unwrap();
    // a dozen objects fit: 768 KiB in memory (headers and bodies); on disk
    // 1 MiB, of which the eviction manager gets 3/4, the rest being for
    // directories and fills in progress
    let memory_conf = "cache_size: 786432\n".to_owned();
    for (storage, conf) in [
        ("memory", memory_conf),
        (
            "disk",
            format!(
                "cache_size: 1048576\ncache_dir: \"{}\"\n",
                disk.path().display()
            ),
        ),
    ] {
        for admission in ["lru", "tinylfu"] {
            let case = format!("{admission} in {storage}");
            let _ = std::fs::remove_dir_all(disk.path());
            let proxy = Proxy::start(
                PART6,
                &[origin.addr()],
                &format!("{conf}cache_admission: {admission}\n"),
            );
            let hot = format!("/{storage}/{admission}/hot");
            assert!(!admission_get(&proxy, &hot), "{case}: a miss first");
            for _ in 0..4 {
                assert!(admission_get(&proxy, &hot), "{case}: then hits");
            }
            // a one-pass scan of cold keys, five times what fits
            for i in 0..60 {
                admission_get(&proxy, &format!("/{storage}/{admission}/cold/{i}"));
            }
            let kept = admission_get(&proxy, &hot);
            match admission {
                "tinylfu" => assert!(kept, "{case}: the popular entry survives the scan"),
                _ => assert!(!kept, "{case}: the scan flushed the popular entry"),
            }
            assert_eq!(
                requests_to(&origin, &hot),
                if kept { 1 } else { 2 },
                "{case}"
            );
        }
    }
}

#[test]
fn the_complete_proxy_caches_with_either_admission_policy() {
    const PART8: &str = env!("CARGO_BIN_EXE_part-08-complete");
    let origin = policy_origin();
    for admission in ["lru", "tinylfu"] {
        let proxy = Proxy::start(
            PART8,
            &[origin.addr()],
            &format!("api_key: k\ncache_admission: {admission}\n"),
        );
        let path = format!("/cc/max-age=60?p8={admission}");
        let url = proxy.url(&path);
        let (c1, h1, b1) = fetch("GET", &url, &["X-API-Key: k"]);
        let (c2, h2, b2) = fetch("GET", &url, &["X-API-Key: k"]);
        assert_eq!((c1, c2), (200, 200), "{admission}");
        assert_eq!(b1, b2);
        // part 8 sends no Cache-Status: its access log says hit
        let hits = proxy.wait_for_stderr(1, |log| log.matches("cache=hit").count());
        assert_eq!(hits, 1, "{admission}: {h1}\n{h2}\n{}", proxy.stderr());
        assert_eq!(requests_to(&origin, &path), 1, "{admission}");
    }
}

#[test]
fn an_unknown_cache_admission_fails_the_conf_check_naming_the_key() {
    const PART8: &str = env!("CARGO_BIN_EXE_part-08-complete");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf.yaml");
    for (text, want) in [
        ("---\nversion: 1\ncache_admission: lru\n", 0),
        ("---\nversion: 1\ncache_admission: tinylfu\n", 0),
        ("---\nversion: 1\ncache_admission: lfu\n", 1),
    ] {
        std::fs::write(&conf, text).unwrap();
        for bin in [PART6, PART8] {
            let out = std::process::Command::new(bin)
                .arg("-t")
                .arg("-c")
                .arg(&conf)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(want), "{bin} {text}: {stderr}");
            if want == 1 {
                assert!(stderr.contains("cache_admission"), "{bin}: {stderr}");
                assert!(stderr.contains("line 3"), "{bin}: {stderr}");
            }
        }
    }
    // the example conf that documents the cache keys passes the check
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/part-06-caching.yaml");
    for bin in [PART6, PART8] {
        let out = std::process::Command::new(bin)
            .args(["-t", "-c", example])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{bin} {example}: {stderr}");
    }
}
