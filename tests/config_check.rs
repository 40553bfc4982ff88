//! `-t` (test the configuration and exit) of the tutorial proxy: exit 0 for
//! a good conf, exit 1 naming the file, the line and the key for a bad one.

#![allow(clippy::unwrap_used)]

use std::process::Command;

/// The binary under test.
const PART1: &str = env!("CARGO_BIN_EXE_part-01-first-proxy");

/// Runs `part-01-first-proxy -t -c <file with conf>`; returns (exit code, stderr).
fn check(conf: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conf.yaml");
    std::fs::write(&path, conf).unwrap();
    let out = Command::new(PART1)
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path.display().to_string(),
    )
}

#[test]
fn good_conf_passes_the_check_with_exit_0() {
    let (code, stderr, _) = check(
        "---\nversion: 1\nthreads: 2\nlisten: 127.0.0.1:0\nupstreams: [\"127.0.0.1:1\"]\nupstream_read_timeout_ms: 500\n",
    );
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn bad_conf_fails_the_check_with_exit_1_naming_file_line_and_key() {
    let (code, stderr, path) = check("---\nversion: 1\nthreads: two\n");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&path), "names the file {path}: {stderr}");
    assert!(stderr.contains("line 3"), "names the line: {stderr}");
    assert!(stderr.contains("threads"), "names the key: {stderr}");
}

#[test]
fn bad_example_key_fails_the_check_too() {
    // Our own keys are checked with the server's (read before bootstrap).
    let (code, stderr, _) = check("---\nversion: 1\nthreads: 1\nupstreams: 5\n");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("upstreams"), "names the key: {stderr}");
}
