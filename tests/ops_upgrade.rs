//! Part 5 in production, with real processes and real signals: `-d`
//! detaches and writes the pid file; a new process started with `-d -u`
//! takes the listening sockets over on SIGQUIT while clients keep sending
//! requests (on new and on keep-alive connections) and not one fails or is
//! refused; SIGTERM removes the pid file; a user that cannot be switched to
//! stops the daemon with an error naming it.

mod support;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{free_port, RawClient, TestOrigin, WAIT};

const BIN: &str = env!("CARGO_BIN_EXE_part-05-production");

/// A conf in a temp dir, and the daemons started from it (killed by the
/// pid their pid file names when the test ends, however it ends).
struct Deployment {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    pids: Vec<u32>,
}

impl Deployment {
    fn new(upstream: SocketAddr, extra_yaml: &str) -> Deployment {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let d = dir.path().display();
        let conf = format!(
            "---\nversion: 1\nthreads: 2\npid_file: {d}/proxy.pid\nupgrade_sock: {d}/upgrade.sock\n\
             error_log: {d}/error.log\ngrace_period_seconds: 5\ngraceful_shutdown_timeout_seconds: 1\n\
             listen: \"{addr}\"\nmetrics_listen: \"{metrics}\"\nupstreams: [\"{upstream}\"]\n{extra_yaml}"
        );
        fs::write(dir.path().join("conf.yaml"), conf).expect("write conf");
        Deployment {
            dir,
            addr,
            pids: Vec::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the binary with `-c conf.yaml` and `flags`; it must return (the
    /// daemon detached) with code 0 within `WAIT`.
    fn launch(&mut self, flags: &[&str]) {
        let started = Instant::now();
        let out = Command::new(BIN)
            .arg("-c")
            .arg(self.path("conf.yaml"))
            .args(flags)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .output()
            .expect("run part-05-production");
        assert!(
            out.status.success(),
            "{flags:?} exited {:?}; stderr:\n{}\nerror.log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        assert!(
            started.elapsed() < WAIT,
            "{flags:?} took {:?} to detach",
            started.elapsed()
        );
    }

    /// The pid in the pid file, once it names a live process other than
    /// `not` (waits up to `WAIT`).
    fn wait_pid(&mut self, not: Option<u32>) -> u32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(pid) = fs::read_to_string(self.path("proxy.pid"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                if Some(pid) != not && alive(pid) {
                    if !self.pids.contains(&pid) {
                        self.pids.push(pid);
                    }
                    return pid;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no new pid file; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the daemon's log contains `needle`.
    fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in error_log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("error.log")).unwrap_or_default()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for &pid in &self.pids {
            if alive(pid) {
                kill(pid, "KILL");
            }
        }
    }
}

fn alive(pid: u32) -> bool {
    // a zombie (exited, not yet reaped by init) counts as gone
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// The parent pid and session id of `/proc/<pid>/stat`.
fn parent_and_session(pid: &str) -> (u32, u32) {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // fields after the command name: state, ppid, pgrp, session, ...
    let fields: Vec<u32> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(3)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    (fields[0], fields[2])
}

fn kill(pid: u32, signal: &str) {
    let out = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .output()
        .expect("run kill");
    assert!(out.status.success(), "kill -s {signal} {pid}: {out:?}");
}

fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One request on a new connection (`Connection: close`); the status, or
/// the error kind as text.
fn get_on_new_connection(addr: SocketAddr) -> Result<u16, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {:?}", e.kind()))?;
    s.set_read_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
    s.write_all(b"GET /new HTTP/1.1\r\nHost: ops\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {:?}", e.kind()))?;
    let mut reply = Vec::new();
    match s.read_to_end(&mut reply) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset && !reply.is_empty() => {}
        Err(e) => return Err(format!("read: {:?}", e.kind())),
    }
    let text = String::from_utf8_lossy(&reply);
    text.get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {} bytes", reply.len()))
}

/// Tallies of the load.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
}

/// Sends requests until `stop`: `new_conn` threads on a new connection
/// each, `keep_alive` threads on persistent connections (reopened only when
/// a response says `Connection: close`, as a client must).
fn load(
    addr: SocketAddr,
    new_conn: usize,
    keep_alive: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Vec<std::thread::JoinHandle<Vec<String>>> {
    let mut threads = Vec::new();
    for _ in 0..new_conn {
        let (stop, tally) = (stop.clone(), tally.clone());
        threads.push(std::thread::spawn(move || {
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match get_on_new_connection(addr) {
                    Ok(200) => tally.ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) if e.contains("ConnectionRefused") => {
                        errors.push(e);
                        tally.refused.fetch_add(1, Ordering::Relaxed)
                    }
                    other => {
                        errors.push(format!("new connection: {other:?}"));
                        tally.failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            errors
        }));
    }
    for _ in 0..keep_alive {
        let (stop, tally) = (stop.clone(), tally.clone());
        threads.push(std::thread::spawn(move || {
            let mut errors = Vec::new();
            let mut conn: Option<RawClient> = None;
            while !stop.load(Ordering::Relaxed) {
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => match RawClient::try_connect(addr) {
                        Some(c) => conn.insert(c),
                        None => {
                            errors.push("keep-alive connect refused".to_string());
                            tally.refused.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    },
                };
                c.try_write(b"GET /ka HTTP/1.1\r\nHost: ops\r\n\r\n");
                match c.read_response(false) {
                    Some(r) if r.status == 200 && r.complete => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                        if r.header("connection")
                            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                        {
                            conn = None;
                        }
                    }
                    other => {
                        errors.push(format!(
                            "keep-alive: {:?}",
                            other.map(|r| (r.status, r.complete))
                        ));
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
            }
            errors
        }));
    }
    threads
}

#[test]
fn daemon_detaches_writes_its_pid_file_and_sigterm_removes_it() {
    let origin = TestOrigin::start();
    let mut d = Deployment::new(origin.addr(), "");
    d.launch(&["-d"]);
    let pid = d.wait_pid(None);
    assert_ne!(pid, std::process::id());
    // detached: in its own session, not a child of this test
    let (ppid, sid) = parent_and_session(&pid.to_string());
    let (_, our_sid) = parent_and_session("self");
    assert_ne!(
        ppid,
        std::process::id(),
        "the daemon is not the test's child"
    );
    assert_ne!(
        sid, our_sid,
        "the daemon has left the test's session (setsid)"
    );
    wait_listening(d.addr);
    assert_eq!(get_on_new_connection(d.addr), Ok(200));
    assert!(
        d.log().contains("running as a daemon"),
        "error_log:\n{}",
        d.log()
    );

    kill(pid, "TERM");
    assert!(wait_gone(pid, WAIT), "still running after SIGTERM");
    assert!(!d.path("proxy.pid").exists(), "pid file left behind");
    assert!(d.log().contains("server exited"), "error_log:\n{}", d.log());
}

#[test]
fn graceful_upgrade_under_load_fails_and_refuses_no_request() {
    let origin = TestOrigin::start();
    let mut d = Deployment::new(origin.addr(), "");
    d.launch(&["-d"]);
    let old = d.wait_pid(None);
    d.wait_log("listening on");

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let threads = load(d.addr, 3, 3, stop.clone(), tally.clone());

    std::thread::sleep(Duration::from_secs(2));
    let before = tally.ok.load(Ordering::Relaxed);
    // the command: `proxy -d -u && kill -QUIT $(cat pid_file)`: until
    // the new process has the sockets, the pid file names the old one
    d.launch(&["-d", "-u"]);
    let named = fs::read_to_string(d.path("proxy.pid")).expect("pid file");
    assert_eq!(named.trim(), old.to_string(), "pid file right after -d -u");
    kill(old, "QUIT");
    let new = d.wait_pid(Some(old));
    assert!(
        wait_gone(old, WAIT),
        "the old process did not exit after the hand-over"
    );
    // keep the load on the new process for a while
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let errors: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("load thread"))
        .collect();
    let elapsed = started.elapsed();

    let (ok, failed, refused) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
    );
    eprintln!(
        "upgrade under load: {ok} ok, {failed} failed, {refused} refused in {elapsed:?} \
         ({:.0} requests/s); old pid {old}, new pid {new}",
        ok as f64 / elapsed.as_secs_f64()
    );
    assert_eq!((failed, refused), (0, 0), "errors: {errors:?}");
    assert!(ok > before, "requests were served after the upgrade");
    assert!(
        ok >= 1000,
        "too little load to show anything: {ok} requests"
    );
    assert!(
        d.log().contains("handed 2 listener(s) over"),
        "log:\n{}",
        d.log()
    );
    assert!(
        d.log().contains("received 2 listener(s)"),
        "log:\n{}",
        d.log()
    );
    // the new process serves, and the pid file names it
    assert_eq!(get_on_new_connection(d.addr), Ok(200));
    kill(new, "TERM");
    assert!(wait_gone(new, WAIT));
}

#[test]
fn sigquit_without_a_new_process_keeps_serving() {
    let origin = TestOrigin::start();
    let mut d = Deployment::new(
        origin.addr(),
        "upgrade_sock_connect_accept_max_retries: 1\n",
    );
    d.launch(&["-d"]);
    let pid = d.wait_pid(None);
    // the services run (and so the signal handlers are installed)
    d.wait_log("listening on");
    kill(pid, "QUIT");
    d.wait_log("graceful upgrade failed, still serving");
    assert!(alive(pid));
    assert_eq!(get_on_new_connection(d.addr), Ok(200));
    kill(pid, "TERM");
    assert!(wait_gone(pid, WAIT));
}

#[test]
fn a_user_that_cannot_be_switched_to_stops_the_daemon_with_its_name() {
    let origin = TestOrigin::start();
    let mut d = Deployment::new(origin.addr(), "user: no-such-user-for-ops-test\n");
    // the foreground part succeeds (sockets bound, fork done); the daemon
    // then fails to switch user and exits instead of running as is
    d.launch(&["-d"]);
    d.wait_log("no-such-user-for-ops-test");
    // it exits, closing the listening socket it inherited from the fork
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(d.addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "a daemon that could not switch user must not serve"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = d.log();
    assert!(log.contains("error"), "error_log:\n{log}");
    assert!(!log.contains("running as a daemon"), "error_log:\n{log}");
    assert!(
        !d.path("proxy.pid").exists(),
        "the empty pid file is removed"
    );
}

#[test]
fn root_daemon_runs_as_the_configured_user() {
    let uid = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
        })
        .unwrap_or_default();
    if uid != "0" {
        eprintln!("skipped: switching users needs root (uid {uid})");
        return;
    }
    let origin = TestOrigin::start();
    let mut d = Deployment::new(origin.addr(), "user: nobody\n");
    d.launch(&["-d"]);
    let pid = d.wait_pid(None);
    wait_listening(d.addr);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uids = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .expect("Uid line");
    let nobody = Command::new("id")
        .args(["-u", "nobody"])
        .output()
        .expect("id -u nobody");
    let nobody = String::from_utf8_lossy(&nobody.stdout).trim().to_string();
    assert!(
        uids.split_whitespace().all(|u| u == nobody),
        "real, effective, saved and fs uids should all be nobody ({nobody}): {uids}"
    );
    assert_eq!(get_on_new_connection(d.addr), Ok(200));
    kill(pid, "TERM");
    assert!(wait_gone(pid, WAIT));
}

#[test]
fn a_new_process_nobody_hands_sockets_to_gives_up_leaving_the_pid_file_to_the_old_one() {
    let origin = TestOrigin::start();
    let mut d = Deployment::new(
        origin.addr(),
        "upgrade_sock_connect_accept_max_retries: 1\n",
    );
    d.launch(&["-d"]);
    let old = d.wait_pid(None);
    d.wait_log("listening on");
    // no SIGQUIT follows: the new process waits 1 s for the sockets, then gives up
    d.launch(&["-d", "-u"]);
    d.wait_log("no old process handed its listeners over");
    let deadline = Instant::now() + WAIT;
    loop {
        let named = fs::read_to_string(d.path("proxy.pid")).unwrap_or_default();
        if named.trim() == old.to_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pid file names {named:?}, not {old}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(alive(old));
    assert_eq!(get_on_new_connection(d.addr), Ok(200));
    kill(old, "TERM");
    assert!(wait_gone(old, WAIT));
}
