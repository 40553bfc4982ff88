//! Listening sockets that outlive a process: the table a server keeps of
//! them, and their hand-over to a new process in a graceful upgrade.
//!
//! Every listening socket a server binds (or inherits) is recorded in a
//! [`ListenFds`] table under its key, the listener's address as
//! [`crate::listeners::ServerAddress`] prints it (`tcp 0.0.0.0:6188`,
//! `unix /run/proxy.sock`). On SIGQUIT the old process sends the whole table
//! over the new process's `upgrade_sock`; the new process's services then
//! take the inherited socket whose key matches each address they listen on,
//! instead of binding a new one. Both processes hold the same listening
//! sockets (the same kernel queue) for a moment, so no connection is refused
//! while one stops accepting and the other starts.
//!
//! # Wire format on `upgrade_sock` (a Unix stream socket)
//! 1. old → new, in one `sendmsg`: the 12-byte header `PXFD`, the number of
//!    sockets `n` (u32, big-endian) and the length `len` of the key list
//!    (u32, big-endian), with the `n` descriptors attached as `SCM_RIGHTS`;
//! 2. old → new: the key list, `len` bytes of UTF-8, one key per socket in
//!    the order of the descriptors, separated by `\n`;
//! 3. new → old: the byte `1` once everything is received. Only then does the
//!    old process stop accepting.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use log::{info, warn};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::error::{Error, ErrorType::*, OrErr, Result};

/// The header's magic bytes.
const MAGIC: &[u8; 4] = b"PXFD";
/// Header: magic, socket count, key-list length.
const HEADER_LEN: usize = 12;
/// The acknowledgement the new process sends once it holds every socket.
const ACK: u8 = b'1';
/// The kernel's limit of descriptors in one `SCM_RIGHTS` message (`SCM_MAX_FD`).
const MAX_FDS: usize = 253;
/// Bound on the key list, so a stray peer cannot make us allocate much.
const MAX_KEYS_LEN: usize = 1 << 20;
/// Bound on each read and write of the hand-over once connected.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between attempts to connect to, or accept on, `upgrade_sock`.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The listening sockets of a server, by key (see the module docs).
///
/// `inherited` holds what a previous process handed over and no service has
/// claimed yet; `current` holds a duplicate of every socket this process
/// listens on, which is what it hands over in turn.
#[derive(Debug, Default)]
pub struct ListenFds {
    inherited: Vec<(String, OwnedFd)>,
    current: Vec<(String, OwnedFd)>,
}

impl ListenFds {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Take the inherited socket recorded under `key`, if the previous process
    /// handed one over. Each socket is taken at most once.
    pub fn take_inherited(&mut self, key: &str) -> Option<OwnedFd> {
        let i = self.inherited.iter().position(|(k, _)| k == key)?;
        Some(self.inherited.swap_remove(i).1)
    }

    /// Record a socket this process listens on under `key` (a duplicate of
    /// its descriptor is kept, so the caller keeps its own).
    ///
    /// # Errors
    /// `SocketError` when the descriptor cannot be duplicated (out of descriptors).
    pub fn record(&mut self, key: String, socket: BorrowedFd<'_>) -> Result<()> {
        let dup = socket
            .try_clone_to_owned()
            .or_err_with(SocketError, || format!("duplicating the socket of {key}"))?;
        self.current.push((key, dup));
        Ok(())
    }

    /// The keys of the sockets this process listens on, in the order recorded.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.current.iter().map(|(k, _)| k.as_str())
    }

    /// How many sockets this process listens on.
    pub fn len(&self) -> usize {
        self.current.len()
    }

    /// Whether this process listens on nothing.
    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    /// Close the inherited sockets no service claimed, with a warning naming
    /// each: the new configuration no longer listens there.
    pub fn close_unclaimed(&mut self) {
        for (key, _fd) in self.inherited.drain(..) {
            warn!("inherited listener {key} is not in this configuration: closing it");
        }
    }

    /// Hand every socket this process listens on to the process waiting on
    /// `path`, and wait for its acknowledgement.
    ///
    /// Connecting is tried `attempts` times (at least once) 1 second apart,
    /// since the new process may not be listening yet. Blocks the calling
    /// thread for at most `attempts` seconds plus 10 seconds of I/O.
    ///
    /// # Errors
    /// `ConnectError` when nothing accepts on `path`; `SocketError` when the
    /// transfer fails or is not acknowledged. The sockets stay open in this
    /// process either way, so a failed hand-over can keep serving.
    pub fn send_to_sock(&self, path: &Path, attempts: usize) -> Result<()> {
        if self.current.len() > MAX_FDS {
            return Error::e_explain(
                SocketError,
                format!(
                    "{} listening sockets, more than the {MAX_FDS} one hand-over can carry",
                    self.current.len()
                ),
            );
        }
        let mut stream = connect_with_retry(path, attempts)?;
        let ctx = || format!("handing listeners over on {}", path.display());
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .or_err_with(SocketError, ctx)?;
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .or_err_with(SocketError, ctx)?;

        let keys = self.keys().collect::<Vec<_>>().join("\n");
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(MAGIC);
        // both fit in u32: at most MAX_FDS sockets, and keys are short addresses
        header[4..8].copy_from_slice(&(self.current.len() as u32).to_be_bytes());
        header[8..12].copy_from_slice(&(keys.len() as u32).to_be_bytes());
        let fds: Vec<BorrowedFd<'_>> = self.current.iter().map(|(_, fd)| fd.as_fd()).collect();
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Error::e_explain(SocketError, "the SCM_RIGHTS message does not fit");
        }
        let sent = rustix::net::sendmsg(
            &stream,
            &[IoSlice::new(&header)],
            &mut control,
            SendFlags::NOSIGNAL,
        )
        .map_err(io::Error::from)
        .or_err_with(SocketError, ctx)?;
        // the descriptors travel with the first byte; send the rest of the
        // header, if the kernel took only part of it, and the key list
        stream
            .write_all(&header[sent..])
            .and_then(|_| stream.write_all(keys.as_bytes()))
            .or_err_with(SocketError, ctx)?;
        let mut ack = [0u8; 1];
        stream.read_exact(&mut ack).or_err_with(SocketError, || {
            format!(
                "no acknowledgement from the new process on {}",
                path.display()
            )
        })?;
        if ack[0] != ACK {
            return Error::e_explain(
                SocketError,
                "unexpected acknowledgement from the new process",
            );
        }
        info!(
            "handed {} listener(s) over on {}",
            self.current.len(),
            path.display()
        );
        Ok(())
    }

    /// Listen on `path` for the old process and receive its listening sockets
    /// into a new table (as inherited sockets).
    ///
    /// A stale socket file at `path` is removed first; the socket file is made
    /// with mode `0600`, so only this user (or root) can hand sockets over.
    /// Accepting is tried `attempts` times (at least once), each waiting
    /// 1 second, so this blocks the calling thread for at most `attempts`
    /// seconds plus 10 seconds of I/O. The socket file is removed afterwards.
    ///
    /// # Errors
    /// `BindError` when `path` cannot be listened on; `AcceptError` when no
    /// old process connects in time; `SocketError`
    /// when the transfer is malformed or cut short.
    pub fn receive_from_sock(path: &Path, attempts: usize) -> Result<ListenFds> {
        let listener = listen_on(path)?;
        let result = accept_with_retry(&listener, path, attempts).and_then(receive_on);
        drop(listener);
        let _ = std::fs::remove_file(path);
        let table = result?;
        info!(
            "received {} listener(s) on {}",
            table.inherited.len(),
            path.display()
        );
        Ok(table)
    }
}

/// Read one hand-over from a connected old process, then acknowledge it.
fn receive_on(mut stream: UnixStream) -> Result<ListenFds> {
    let ctx = "receiving listeners from the old process";
    stream.set_nonblocking(false).or_err(SocketError, ctx)?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .or_err(SocketError, ctx)?;
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .or_err(SocketError, ctx)?;

    let mut header = [0u8; HEADER_LEN];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut header)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)
    .or_err(SocketError, ctx)?
    .bytes;
    let mut fds = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = msg {
            fds.extend(received);
        }
    }
    if got == 0 {
        return Error::e_explain(SocketError, "the old process closed before sending");
    }
    stream
        .read_exact(&mut header[got..])
        .or_err(SocketError, ctx)?;
    if &header[..4] != MAGIC {
        return Error::e_explain(SocketError, "not a listener hand-over (bad magic)");
    }
    let count = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let keys_len = u32::from_be_bytes([header[8], header[9], header[10], header[11]]) as usize;
    if count != fds.len() {
        return Error::e_explain(
            SocketError,
            format!("announced {count} sockets but {} arrived", fds.len()),
        );
    }
    if keys_len > MAX_KEYS_LEN {
        return Error::e_explain(SocketError, format!("key list of {keys_len} bytes"));
    }
    let mut keys = vec![0u8; keys_len];
    stream.read_exact(&mut keys).or_err(SocketError, ctx)?;
    let keys = String::from_utf8(keys).or_err(SocketError, "key list is not UTF-8")?;
    let keys: Vec<String> = if count == 0 {
        Vec::new()
    } else {
        keys.split('\n').map(str::to_string).collect()
    };
    if keys.len() != fds.len() {
        return Error::e_explain(
            SocketError,
            format!("{} keys for {} sockets", keys.len(), fds.len()),
        );
    }
    stream.write_all(&[ACK]).or_err(SocketError, ctx)?;
    Ok(ListenFds {
        inherited: keys.into_iter().zip(fds).collect(),
        current: Vec::new(),
    })
}

fn listen_on(path: &Path) -> Result<UnixListener> {
    let shown = || format!("listening for the old process on {}", path.display());
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path).or_err_with(BindError, shown)?;
        }
    }
    let listener = UnixListener::bind(path).or_err_with(BindError, shown)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .or_err_with(BindError, shown)?;
    listener
        .set_nonblocking(true)
        .or_err_with(BindError, shown)?;
    Ok(listener)
}

fn accept_with_retry(listener: &UnixListener, path: &Path, attempts: usize) -> Result<UnixStream> {
    let deadline = Instant::now() + RETRY_DELAY * attempts.max(1) as u32;
    info!(
        "waiting up to {:?} for the old process on {}",
        deadline - Instant::now(),
        path.display()
    );
    loop {
        match listener.accept() {
            Ok((stream, _)) => return Ok(stream),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Error::e_explain(
                    AcceptError,
                    format!(
                        "no old process handed its listeners over on {} in time \
                         (send it SIGQUIT after starting this one with -u)",
                        path.display()
                    ),
                )
            }
            Err(e) => {
                return Err(Error::because(
                    AcceptError,
                    format!("accepting on {}", path.display()),
                    e,
                ))
            }
        }
    }
}

fn connect_with_retry(path: &Path, attempts: usize) -> Result<UnixStream> {
    let attempts = attempts.max(1);
    let mut attempt = 1;
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(e) if attempt < attempts => {
                warn!(
                    "connecting to {} for the upgrade: {e}; retrying in {RETRY_DELAY:?} ({attempt}/{attempts})",
                    path.display()
                );
                attempt += 1;
                std::thread::sleep(RETRY_DELAY);
            }
            Err(e) => {
                return Err(Error::because(
                    ConnectError,
                    format!(
                        "no new process listening on {} (start it with -u first)",
                        path.display()
                    ),
                    e,
                ))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn sock_path(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("proxy-core-fds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn listeners_cross_to_a_receiver_and_still_accept() {
        let path = sock_path("handover.sock");
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let b = TcpListener::bind("127.0.0.1:0").unwrap();
        let (pa, pb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut old = ListenFds::new();
        old.record(format!("tcp {pa}"), a.as_fd()).unwrap();
        old.record(format!("tcp {pb}"), b.as_fd()).unwrap();

        let receiver = {
            let path = path.clone();
            std::thread::spawn(move || ListenFds::receive_from_sock(&path, 5))
        };
        old.send_to_sock(&path, 5).unwrap();
        let mut new = receiver.join().unwrap().unwrap();
        assert!(
            !path.exists(),
            "the upgrade socket file is removed afterwards"
        );

        // the received socket is the same listening socket: a connection made
        // to it is accepted through the new descriptor
        let fd = new.take_inherited(&format!("tcp {pb}")).unwrap();
        assert!(
            new.take_inherited(&format!("tcp {pb}")).is_none(),
            "taken once"
        );
        let inherited = TcpListener::from(fd);
        let _client = TcpStream::connect(pb).unwrap();
        let (_conn, _) = inherited.accept().unwrap();
        assert!(new.take_inherited(&format!("tcp {pa}")).is_some());
        assert!(new.take_inherited("tcp 127.0.0.1:1").is_none());
    }

    #[test]
    fn sending_with_nobody_listening_fails_naming_the_path() {
        let path = sock_path("nobody.sock");
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut old = ListenFds::new();
        old.record("tcp x".into(), a.as_fd()).unwrap();
        let e = old.send_to_sock(&path, 1).unwrap_err();
        assert_eq!(e.etype(), &ConnectError);
        assert!(e.to_string().contains("nobody.sock"), "{e}");
    }

    #[test]
    fn receiving_gives_up_when_no_old_process_connects() {
        let path = sock_path("lonely.sock");
        let e = ListenFds::receive_from_sock(&path, 1).unwrap_err();
        assert_eq!(e.etype(), &AcceptError);
        assert!(e.to_string().contains("lonely.sock"), "{e}");
    }

    #[test]
    fn a_peer_that_is_not_an_old_process_is_rejected() {
        let path = sock_path("stranger.sock");
        let receiver = {
            let path = path.clone();
            std::thread::spawn(move || ListenFds::receive_from_sock(&path, 5))
        };
        let mut stream = loop {
            match UnixStream::connect(&path) {
                Ok(s) => break s,
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let e = receiver.join().unwrap().unwrap_err();
        assert!(e.to_string().contains("bad magic"), "{e}");
    }
}
