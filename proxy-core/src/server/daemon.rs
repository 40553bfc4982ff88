//! Daemon mode: detach from the terminal, write the pid file, send logs to
//! `error_log`, drop privileges to `user`/`group`.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use daemonize::Daemonize;
use log::{info, warn};

use super::configuration::ServerConf;
use crate::error::{Error, ErrorType::*, OrErr, Result};

/// Fork into the background as `conf` says, and return in the daemon.
///
/// The calling process exits with code 0 once the daemon is detached; this
/// returns only in the daemon, whose pid is then in `pid_file`. Call it before
/// any thread starts: a fork copies only the calling thread.
///
/// - `write_pid`: write `pid_file` now. A graceful upgrade (`-d -u`) passes
///   `false` and calls [`write_pid_file`] once the sockets are taken over, so
///   that until then the pid file still names the old process, the one to
///   send SIGQUIT to (`proxy -d -u && kill -QUIT $(cat pid_file)`).
/// - stdout and stderr go to `error_log` (appended) when it is set, to
///   `/dev/null` otherwise.
/// - The working directory stays the current one unless `working_directory`
///   is set, so relative paths in the configuration keep their meaning.
/// - `user` and `group`, when set, are switched to after the pid file is
///   made: a daemon that cannot switch exits with an error naming the user
///   (in `error_log`) rather than run with the privileges it started with.
///
/// # Errors
/// `FileOpenError` naming `error_log` when it cannot be opened (reported in
/// the foreground, before the fork); `InternalError` when the fork, the pid
/// file or the privilege switch fails.
pub(crate) fn daemonize(conf: &ServerConf, write_pid: bool) -> Result<()> {
    let log_file = match &conf.error_log {
        Some(path) => Some(open_log(path)?),
        None => None,
    };
    let pid_file = Path::new(&conf.pid_file);
    if write_pid {
        move_old_pid_file(&conf.pid_file);
    }
    let cwd = match &conf.working_directory {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().or_err(InternalError, "reading the current directory")?,
    };
    let mut d = Daemonize::new()
        .working_directory(cwd)
        // keep the process umask: files the proxy writes (logs, caches) get the
        // modes the operator expects
        .umask(current_umask());
    if write_pid {
        d = d.pid_file(pid_file).chown_pid_file(true);
    }
    if let Some(f) = log_file {
        let err = f
            .try_clone()
            .or_err(FileOpenError, "duplicating error_log")?;
        d = d.stdout(f).stderr(err);
    }
    if let Some(user) = &conf.user {
        d = d.user(user.as_str());
    }
    if let Some(group) = &conf.group {
        d = d.group(group.as_str());
    }
    let who = match (&conf.user, &conf.group) {
        (None, None) => String::new(),
        (u, g) => format!(
            " as user {} group {}",
            u.as_deref().unwrap_or("(unchanged)"),
            g.as_deref().unwrap_or("(unchanged)")
        ),
    };
    if let Err(e) = d.start() {
        // in the daemon (the foreground process has exited): a pid file left
        // empty by a failed user switch would name no process
        if write_pid && std::fs::metadata(pid_file).is_ok_and(|m| m.len() == 0) {
            let _ = std::fs::remove_file(pid_file);
        }
        return Err(Error::explain(
            InternalError,
            format!("daemonizing (pid file {}){who}: {e}", conf.pid_file),
        ));
    }
    if write_pid {
        info!(
            "running as a daemon, pid {} written to {}{who}",
            std::process::id(),
            conf.pid_file
        );
    } else {
        info!("running as a daemon, pid {}{who}", std::process::id());
    }
    Ok(())
}

/// Move a pid file already at `pid_file` to `<pid_file>.old` (Pingora's
/// rule: the old process of a graceful upgrade may still hold its lock).
fn move_old_pid_file(pid_file: &str) {
    if Path::new(pid_file).exists() {
        let old = format!("{pid_file}.old");
        if let Err(e) = std::fs::rename(pid_file, &old) {
            warn!("moving the old pid file {pid_file} to {old}: {e}");
        }
    }
}

/// Write this process's pid to `pid_file` (the old one moved to
/// `<pid_file>.old`), replacing it in one rename so a reader never sees a
/// partial file. Used by a daemon that took the sockets over.
pub(crate) fn write_pid_file(pid_file: &str) {
    move_old_pid_file(pid_file);
    let tmp = format!("{pid_file}.tmp{}", std::process::id());
    let written = std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, pid_file));
    match written {
        Ok(()) => info!("pid {} written to {pid_file}", std::process::id()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            warn!("writing pid file {pid_file}: {e}");
        }
    }
}

/// Remove `pid_file` if it still names this process (a newer process of a
/// graceful upgrade may have written its own pid there since).
pub(crate) fn remove_pid_file(pid_file: &str) {
    let mine = std::process::id().to_string();
    match std::fs::read_to_string(pid_file) {
        Ok(text) if text.trim() == mine => {
            if let Err(e) = std::fs::remove_file(pid_file) {
                warn!("removing pid file {pid_file}: {e}");
            }
        }
        Ok(_) => info!("pid file {pid_file} belongs to a newer process: left in place"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => warn!("reading pid file {pid_file}: {e}"),
    }
}

fn open_log(path: &str) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .or_err_with(FileOpenError, || format!("opening error_log {path}"))
}

/// The process umask, read without changing it (`/proc/self/status` has it
/// since Linux 4.7); `0o022` when it cannot be read.
fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_of_another_process_is_left_alone_and_ours_is_removed() {
        let dir = tempfile_dir();
        let theirs = dir.join("theirs.pid");
        std::fs::write(&theirs, "1\n").unwrap();
        remove_pid_file(theirs.to_str().unwrap());
        assert!(theirs.exists());
        let ours = dir.join("ours.pid");
        std::fs::write(&ours, format!("{}\n", std::process::id())).unwrap();
        remove_pid_file(ours.to_str().unwrap());
        assert!(!ours.exists());
        remove_pid_file(dir.join("absent.pid").to_str().unwrap());
    }

    #[test]
    fn written_pid_file_names_this_process_and_keeps_the_old_one() {
        let dir = tempfile_dir();
        let pid = dir.join("write.pid");
        let pid = pid.to_str().unwrap();
        std::fs::write(pid, "1\n").unwrap();
        write_pid_file(pid);
        let mine = format!("{}\n", std::process::id());
        assert_eq!(std::fs::read_to_string(pid).unwrap(), mine);
        assert_eq!(
            std::fs::read_to_string(format!("{pid}.old")).unwrap(),
            "1\n"
        );
    }

    #[test]
    fn unopenable_error_log_is_an_error_naming_it() {
        let e = open_log("/nonexistent-dir/err.log").unwrap_err();
        assert_eq!(e.etype(), &FileOpenError);
        assert!(e.to_string().contains("/nonexistent-dir/err.log"), "{e}");
    }

    #[test]
    fn umask_is_read_from_proc() {
        assert!(current_umask() <= 0o777);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("proxy-core-daemon-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
