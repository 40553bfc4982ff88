//! End-to-end checks of the disk cache: `part-06-caching` with `cache_dir`,
//! against scripted origins on loopback that count the requests they get.
//! Restarts (graceful stop and `kill -9`), the byte budget measured on
//! disk, a cache directory that cannot be written, and concurrent fills and
//! reads of one key.

#![allow(clippy::unwrap_used)]

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::*;

/// The binary under test.
const PART6: &str = env!("CARGO_BIN_EXE_part-06-caching");

/// `n` bytes that depend on `seed`.
fn body_of(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

/// The query value `size=N` of a request target, or `default`.
fn size_param(path: &str, default: usize) -> usize {
    path.split_once("size=")
        .and_then(|(_, v)| v.split('&').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A seed for a path (stable across runs).
fn seed_of(path: &str) -> u64 {
    path.split('?')
        .next()
        .unwrap_or("")
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

/// An origin answering `GET /<name>?size=N` with N deterministic bytes,
/// cacheable for an hour.
fn object_origin() -> RawOrigin {
    RawOrigin::start(|req| {
        let body = body_of(seed_of(&req.path), size_param(&req.path, 1000));
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nCache-Control: max-age=3600\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(&body);
        vec![Step::Send(r)]
    })
}

/// An origin that sends `GET /big?size=N` slowly: the head, then the body
/// in 64 KiB pieces with `pause` between them.
fn slow_origin(pause: Duration) -> RawOrigin {
    RawOrigin::start(move |req| {
        let body = body_of(seed_of(&req.path), size_param(&req.path, 1000));
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nCache-Control: max-age=3600\r\n\r\n",
            body.len()
        );
        let mut steps = vec![Step::Send(head.into_bytes())];
        for piece in body.chunks(64 * 1024) {
            steps.push(Step::Send(piece.to_vec()));
            steps.push(Step::Sleep(pause));
        }
        steps
    })
}

fn requests_to(origin: &RawOrigin, path: &str) -> usize {
    origin.seen().iter().filter(|r| r.path == path).count()
}

/// The `Host` every request sends: the cache key has the host in it, and a
/// restarted proxy listens on another port.
const HOST: &str = "Host: cache.test";

/// GET `url`; (status, Cache-Status header, body).
fn get(url: &str) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let head_file = temp_path(&dir, "head");
    let body_file = temp_path(&dir, "body");
    let out = curl(&[
        "-H",
        HOST,
        "-D",
        head_file.to_str().unwrap(),
        "-o",
        body_file.to_str().unwrap(),
        "-w",
        "%{http_code}",
        url,
    ]);
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let head = fs::read_to_string(&head_file).unwrap_or_default();
    let status = head_header(&head, "cache-status").unwrap_or_default();
    (code, status, fs::read(&body_file).unwrap_or_default())
}

/// GET every URL with one curl process (a config file of `url`/`output`
/// pairs); returns the status codes curl printed, in order.
fn get_many(urls: &[String]) -> Vec<u16> {
    let dir = tempfile::tempdir().unwrap();
    let config = temp_path(&dir, "curl.conf");
    let mut text = String::new();
    for u in urls {
        text.push_str(&format!("url = \"{u}\"\noutput = \"/dev/null\"\n"));
    }
    fs::write(&config, text).unwrap();
    let out = curl(&["-K", config.to_str().unwrap(), "-w", "%{http_code}\n"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn sha256(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

/// The conf lines for a disk cache in `dir` of `size` bytes.
fn disk_conf(dir: &Path, size: u64) -> String {
    format!("cache_dir: \"{}\"\ncache_size: {size}\n", dir.display())
}

/// Stop the proxy gracefully and wait for it to exit.
fn stop(mut proxy: Proxy) {
    proxy.signal("TERM");
    assert!(
        proxy.wait_exit(Duration::from_secs(30)).is_some(),
        "the proxy did not stop"
    );
}

/// Bytes the files under `dir` take on disk (allocated blocks, what `du`
/// counts), their number, and the number of directories below `dir`.
///
/// Safe to call while the proxy changes the directory: a file or directory
/// that goes away between being listed and being looked at is skipped. The
/// fills' `tmp/` is walked last, so a fill renamed from `tmp/` into its
/// leaf directory during the walk is counted at most once (it may be
/// missed, never counted twice).
fn usage(dir: &Path) -> (u64, usize, usize) {
    let (mut bytes, mut files, mut dirs) = (0, 0, 0);
    let tmp = dir.join("tmp");
    let mut stack = vec![tmp.clone(), dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(listing) = fs::read_dir(&d) else {
            continue;
        };
        for e in listing.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                dirs += 1;
                if e.path() != tmp {
                    stack.push(e.path());
                }
            } else {
                bytes += m.blocks() * 512;
                files += 1;
            }
        }
    }
    (bytes, files, dirs)
}

/// What the storage counts against its budget from a [`usage`] sample: the
/// files' blocks plus a block per directory, the cache directory included.
fn counted(sample: (u64, usize, usize)) -> u64 {
    let (bytes, _, dirs) = sample;
    bytes + (dirs as u64 + 1) * 4096
}

#[test]
fn a_restarted_proxy_serves_what_was_cached_without_asking_the_origin() {
    let origin = object_origin();
    let cache = tempfile::tempdir().unwrap();
    let conf = disk_conf(cache.path(), 64 << 20);
    let paths: Vec<String> = (0..30)
        .map(|i| format!("/obj/{i}?size={}", 1000 + i * 9000))
        .collect();
    let proxy = Proxy::start(PART6, &[origin.addr()], &conf);
    let mut first = Vec::new();
    for p in &paths {
        let (code, status, body) = get(&proxy.url(p));
        assert_eq!(code, 200);
        assert!(status.contains("stored"), "{p}: {status}");
        assert_eq!(body, body_of(seed_of(p), size_param(p, 0)));
        first.push(body);
    }
    stop(proxy);
    assert_eq!(origin.seen().len(), 30);

    let proxy = Proxy::start(PART6, &[origin.addr()], &conf);
    for (p, before) in paths.iter().zip(&first) {
        let (code, status, body) = get(&proxy.url(p));
        assert_eq!(code, 200);
        assert!(status.contains("hit"), "{p}: {status}");
        assert_eq!(&body, before, "{p}");
    }
    assert_eq!(origin.seen().len(), 30, "no request reached the origin");
    // a range from a disk entry
    let out = curl(&["-H", HOST, "-r", "100-199", &proxy.url(&paths[5])]);
    assert_eq!(out.stdout, first[5][100..200]);
    assert_eq!(origin.seen().len(), 30);
}

#[test]
fn kill_9_during_a_50_mib_fill_leaves_the_entry_absent_or_whole() {
    const SIZE: usize = 50 << 20;
    let origin = slow_origin(Duration::from_millis(5));
    let cache = tempfile::tempdir().unwrap();
    let conf = disk_conf(cache.path(), 1 << 30);
    let path = format!("/big?size={SIZE}");
    let want = sha256(&body_of(seed_of(&path), SIZE));

    let proxy = Proxy::start(PART6, &[origin.addr()], &conf);
    let url = proxy.url(&path);
    let mut client = Command::new("curl")
        .args(["-s", "-H", HOST, "-o", "/dev/null", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(origin.wait_for_requests(1));
    // wait until the fill has written a few MiB to its temporary file
    let tmp = cache.path().join("tmp");
    let deadline = std::time::Instant::now() + WAIT;
    let written = loop {
        let files: Vec<_> = fs::read_dir(&tmp).unwrap().flatten().collect();
        let len = files.first().map_or(0, |f| f.metadata().unwrap().len());
        if len > (4 << 20) || std::time::Instant::now() > deadline {
            break (files.len(), len);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(written.0, 1, "the fill is in progress in tmp/");
    assert!(
        written.1 < SIZE as u64,
        "killed midway: {} bytes",
        written.1
    );
    proxy.signal("KILL");
    let mut proxy = proxy;
    assert!(proxy.wait_exit(Duration::from_secs(10)).is_some());
    let _ = client.wait();

    let proxy = Proxy::start(PART6, &[origin.addr()], &conf);
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0, "leftovers removed");
    let (code, status, body) = get(&proxy.url(&path));
    assert_eq!(code, 200);
    assert_eq!(body.len(), SIZE, "{status}");
    assert_eq!(sha256(&body), want, "never a partial or corrupt entry");
    // the killed fill was not kept: the origin was asked again
    assert_eq!(requests_to(&origin, &path), 2, "{status}");
    // and the new fill is whole on disk: a restart serves it as a hit
    stop(proxy);
    let proxy = Proxy::start(PART6, &[origin.addr()], &conf);
    let (_, status, body) = get(&proxy.url(&path));
    assert!(status.contains("hit"), "{status}");
    assert_eq!(sha256(&body), want);
    assert_eq!(requests_to(&origin, &path), 2);
}

/// A random object size: mostly 0 B .. 64 KiB, one in 50 from 64 KiB to
/// 576 KiB.
fn random_size(x: &mut u64) -> usize {
    *x = x
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let r = (*x >> 33) as usize;
    if r.is_multiple_of(50) {
        (64 << 10) + (r / 50) % (512 << 10)
    } else {
        r % (64 << 10)
    }
}

#[test]
fn ten_thousand_objects_of_random_sizes_keep_the_directory_within_the_budget() {
    fill_within_the_budget("tinylfu");
}

#[test]
fn ten_thousand_objects_keep_the_directory_within_the_budget_with_lru_admission_too() {
    fill_within_the_budget("lru");
}

/// 10,000 objects of [`random_size`] (about 360 MiB) through a 16 MiB disk
/// cache with `cache_admission: <admission>`, from four concurrent
/// clients, while a sampler measures the directory: every sample, and the
/// directory at the end (also by `du`), stays within the budget.
fn fill_within_the_budget(admission: &str) {
    const BUDGET: u64 = 16 << 20;
    const OBJECTS: usize = 10_000;
    const CLIENTS: usize = 4;
    const BATCH: usize = 100;
    let origin = object_origin();
    let cache = tempfile::tempdir().unwrap();
    let proxy = Proxy::start_with_log(
        PART6,
        &[origin.addr()],
        &format!(
            "{}cache_admission: {admission}\n",
            disk_conf(cache.path(), BUDGET)
        ),
        "warn",
    );
    let mut x: u64 = 12345;
    let urls: Vec<String> = (0..OBJECTS)
        .map(|i| proxy.url(&format!("/o/{i}?size={}", random_size(&mut x))))
        .collect();
    let total: usize = urls.iter().map(|u| size_param(u, 0)).sum();
    let started = std::time::Instant::now();

    // A sampler measures the directory while the clients fill it.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (dir, done) = (cache.path().to_path_buf(), done.clone());
        std::thread::spawn(move || {
            let (mut samples, mut peak, mut over) = (0usize, 0u64, Vec::new());
            while !done.load(Ordering::SeqCst) {
                let used = counted(usage(&dir));
                samples += 1;
                peak = peak.max(used);
                if used > BUDGET {
                    over.push(used);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (samples, peak, over)
        })
    };
    // CLIENTS curl processes at a time, each fetching a batch of BATCH
    // URLs on one connection; bounded by the number of batches.
    let batches: Vec<Vec<String>> = urls.chunks(BATCH).map(<[String]>::to_vec).collect();
    let next = AtomicUsize::new(0);
    let codes: Vec<Vec<u16>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(|| {
                    let mut codes = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(batch) = batches.get(i) else {
                            return codes;
                        };
                        let got = get_many(batch);
                        assert_eq!(got.len(), batch.len(), "batch {i}");
                        codes.extend(got);
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    done.store(true, Ordering::SeqCst);
    let (samples, peak, over) = sampler.join().unwrap();
    let elapsed = started.elapsed();

    let codes: Vec<u16> = codes.into_iter().flatten().collect();
    assert_eq!(codes.len(), OBJECTS);
    assert!(codes.iter().all(|c| *c == 200), "every request served");
    let end = usage(cache.path());
    let du = Command::new("du")
        .args(["-s", "-B1"])
        .arg(cache.path())
        .output()
        .unwrap();
    let du: u64 = String::from_utf8_lossy(&du.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    eprintln!(
        "{admission}: {OBJECTS} objects, {total} bytes, {CLIENTS} clients, in {elapsed:?}; budget {BUDGET}: \
         {samples} samples while filling, peak {peak}; at the end entry files {} bytes \
         ({} files) in {} directories, du -s {du} bytes",
        end.0, end.1, end.2
    );
    assert!(
        over.is_empty(),
        "samples over the budget of {BUDGET}: {over:?}"
    );
    assert!(
        samples >= 10,
        "the directory was sampled while filling: {samples}"
    );
    assert!(
        peak > BUDGET / 2,
        "the fill reached the eviction range: peak {peak}"
    );
    assert!(end.1 > 100, "entries were stored: {}", end.1);
    // du counts the directories too (a block each): so does the storage
    assert!(counted(end) <= BUDGET, "{end:?}, budget {BUDGET}");
    assert!(du <= BUDGET, "du {du}, budget {BUDGET}");
    assert_eq!(origin.seen().len(), OBJECTS);
}

#[test]
fn an_unwritable_cache_directory_leaves_every_request_served() {
    let origin = object_origin();
    let cache = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(PART6, &[origin.addr()], &disk_conf(cache.path(), 64 << 20));
    let (code, status, _) = get(&proxy.url("/kept?size=5000"));
    assert_eq!(code, 200);
    assert!(status.contains("stored"), "{status}");
    // Make the directory unwritable. chmod does not stop root, which tests
    // often run as: then put a file where tmp/ is, so no fill can create its
    // temporary file (the same error path as a read-only filesystem).
    let tmp = cache.path().join("tmp");
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if root {
        fs::remove_dir_all(&tmp).unwrap();
        fs::write(&tmp, b"").unwrap();
    } else {
        for d in [cache.path().to_path_buf(), tmp.clone()] {
            fs::set_permissions(&d, fs::Permissions::from_mode(0o555)).unwrap();
        }
    }
    for i in 0..20 {
        let p = format!("/new/{i}?size={}", 100 + i * 3000);
        let (code, status, body) = get(&proxy.url(&p));
        assert_eq!(code, 200, "{p}");
        assert_eq!(body, body_of(seed_of(&p), size_param(&p, 0)), "{p}");
        assert!(!status.contains("stored"), "{p}: {status}");
    }
    let (code, status, body) = get(&proxy.url("/kept?size=5000"));
    assert_eq!(code, 200);
    assert!(
        status.contains("hit"),
        "what is stored is still served: {status}"
    );
    assert_eq!(body.len(), 5000);
    assert!(proxy.stderr().contains("StorageError") || proxy.stderr().contains("disk cache"));
    if !root {
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(cache.path(), fs::Permissions::from_mode(0o755)).unwrap();
    }

    // a cache_dir that cannot even be created (its parent is a file): the
    // proxy logs it, caches in memory, and serves
    let file = tempfile::NamedTempFile::new().unwrap();
    let bad = file.path().join("cache");
    let proxy = Proxy::start(PART6, &[origin.addr()], &disk_conf(&bad, 64 << 20));
    for _ in 0..2 {
        let (code, _, body) = get(&proxy.url("/mem?size=700"));
        assert_eq!(code, 200);
        assert_eq!(body.len(), 700);
    }
    assert!(
        proxy.stderr().contains("caching in memory instead"),
        "{}",
        proxy.stderr()
    );
}

#[test]
fn concurrent_fills_and_reads_of_one_key_all_get_the_whole_body() {
    const SIZE: usize = 4 << 20;
    let origin = slow_origin(Duration::from_millis(2));
    let cache = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(PART6, &[origin.addr()], &disk_conf(cache.path(), 1 << 30));
    let path = format!("/shared?size={SIZE}");
    let want = sha256(&body_of(seed_of(&path), SIZE));
    let url = proxy.url(&path);
    for round in 0..2 {
        let readers: Vec<_> = (0..10)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || get(&url))
            })
            .collect();
        for r in readers {
            let (code, status, body) = r.join().unwrap();
            assert_eq!(code, 200, "round {round}");
            assert_eq!(sha256(&body), want, "round {round}: {status}");
        }
    }
    // the cache lock sent one request upstream; the others read the fill
    // from the disk as it was written, then the entry
    assert_eq!(requests_to(&origin, &path), 1);
}

#[test]
fn a_revalidated_entry_keeps_its_body_and_new_headers_across_a_restart() {
    let origin = RawOrigin::start(|req| {
        if req.header("if-none-match").as_deref() == Some("\"v1\"") {
            return vec![Step::Send(
                b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=3600\r\nX-Version: 2\r\n\r\n"
                    .to_vec(),
            )];
        }
        let body = b"the stored body";
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"v1\"\r\nCache-Control: max-age=1\r\nX-Version: 1\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        vec![Step::Send(r)]
    });
    let cache = tempfile::tempdir().unwrap();
    let conf = disk_conf(cache.path(), 64 << 20);
    let proxy = Proxy::start(PART6, &[origin.addr()], &conf);
    let url = proxy.url("/r");
    let (_, status, body) = get(&url);
    assert!(status.contains("stored"), "{status}");
    assert_eq!(body, b"the stored body");
    std::thread::sleep(Duration::from_millis(2100));
    let (code, _, body) = get(&url);
    assert_eq!(code, 200);
    assert_eq!(body, b"the stored body");
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].header("if-none-match").as_deref(), Some("\"v1\""));
    stop(proxy);

    let proxy = Proxy::start(PART6, &[origin.addr()], &conf);
    let dir = tempfile::tempdir().unwrap();
    let head_file = temp_path(&dir, "head");
    let out = curl(&[
        "-H",
        HOST,
        "-D",
        head_file.to_str().unwrap(),
        &proxy.url("/r"),
    ]);
    let head = fs::read_to_string(&head_file).unwrap();
    assert_eq!(out.stdout, b"the stored body");
    assert_eq!(
        head_header(&head, "x-version").as_deref(),
        Some("2"),
        "{head}"
    );
    assert!(
        head_header(&head, "cache-status")
            .unwrap_or_default()
            .contains("hit"),
        "{head}"
    );
    assert_eq!(origin.seen().len(), 2, "served from disk after the restart");
}

#[test]
fn the_complete_proxy_caches_on_disk_across_a_restart() {
    const PART8: &str = env!("CARGO_BIN_EXE_part-08-complete");
    let origin = object_origin();
    let cache = tempfile::tempdir().unwrap();
    let conf = format!("api_key: k\n{}", disk_conf(cache.path(), 64 << 20));
    let fetch = |proxy: &Proxy, key: &str| {
        let out = curl(&[
            "-H",
            HOST,
            "-H",
            key,
            "-w",
            "\n%{http_code}",
            &proxy.url("/p8?size=3000"),
        ]);
        let text = out.stdout;
        let split = text.iter().rposition(|b| *b == b'\n').unwrap();
        (text[split + 1..].to_vec(), text[..split].to_vec())
    };
    let want = body_of(seed_of("/p8?size=3000"), 3000);
    let proxy = Proxy::start(PART8, &[origin.addr()], &conf);
    for _ in 0..3 {
        let (code, body) = fetch(&proxy, "X-API-Key: k");
        assert_eq!(code, b"200");
        assert_eq!(body, want);
    }
    // the key check still comes first: no hit without it
    assert_eq!(fetch(&proxy, "X-API-Key: wrong").0, b"401");
    assert_eq!(origin.seen().len(), 1);
    stop(proxy);
    let proxy = Proxy::start(PART8, &[origin.addr()], &conf);
    let (code, body) = fetch(&proxy, "X-API-Key: k");
    assert_eq!((code.as_slice(), body), (b"200".as_slice(), want));
    assert_eq!(origin.seen().len(), 1, "served from disk after the restart");
    // `logging` writes the access line just after the response: wait for it
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut stderr = proxy.stderr();
    while !stderr.contains("cache=hit") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        stderr = proxy.stderr();
    }
    assert!(stderr.contains("cache=hit"), "{stderr}");
}
