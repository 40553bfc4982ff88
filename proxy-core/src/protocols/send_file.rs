//! Zero-copy sending of a file's bytes to a socket with sendfile(2): the
//! kernel moves page-cache (or memfd) pages to the socket without a copy
//! through user space, as nginx does with `sendfile on`.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::task::{Context, Poll};

use tokio::io::Interest;

/// Poll one sendfile(2) of up to `count` bytes of `file` from `offset` to
/// the non-blocking socket `sock` (a tokio `TcpStream` or `UnixStream`):
/// waits for writability, retries when the readiness was stale, and returns
/// the number of bytes sent (0: `file` ends before `offset`).
pub(crate) fn poll_send_file<S: AsFd>(
    sock: &S,
    cx: &mut Context<'_>,
    poll_write_ready: impl Fn(&mut Context<'_>) -> Poll<io::Result<()>>,
    try_io: impl Fn(Interest, &mut dyn FnMut() -> io::Result<usize>) -> io::Result<usize>,
    file: &File,
    offset: u64,
    count: usize,
) -> Poll<io::Result<usize>> {
    loop {
        match poll_write_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        let mut call = || {
            let mut off = offset;
            rustix::fs::sendfile(sock.as_fd(), file.as_fd(), Some(&mut off), count)
                .map_err(io::Error::from)
        };
        match try_io(Interest::WRITABLE, &mut call) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return Poll::Ready(r),
        }
    }
}

/// `IO::can_send_file` and `IO::poll_send_file` for a tokio socket type
/// (`TcpStream`, `UnixStream`: both have `poll_write_ready` and `try_io`).
macro_rules! socket_send_file {
    () => {
        fn can_send_file(&self) -> bool {
            true
        }
        fn poll_send_file(
            &self,
            cx: &mut Context<'_>,
            file: &std::fs::File,
            offset: u64,
            count: usize,
        ) -> Poll<std::io::Result<usize>> {
            send_file::poll_send_file(
                self,
                cx,
                |cx| self.poll_write_ready(cx),
                |interest, f| self.try_io(interest, f),
                file,
                offset,
                count,
            )
        }
    };
}
pub(crate) use socket_send_file;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use tokio::io::AsyncReadExt;

    use crate::protocols::IO;

    #[tokio::test]
    async fn a_file_range_arrives_whole_over_tcp() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let path = std::env::temp_dir().join(format!("send-file-test-{}", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&body)
            .unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(sock.can_send_file());
        // a range that starts past the beginning; sent in as many calls as the
        // socket buffer takes
        let (start, end) = (7u64, body.len() as u64 - 5);
        let mut off = start;
        while off < end {
            let n = std::future::poll_fn(|cx| {
                sock.poll_send_file(cx, &file, off, (end - off) as usize)
            })
            .await
            .unwrap();
            assert!(n > 0);
            off += n as u64;
        }
        drop(sock);
        let got = reader.await.unwrap();
        assert_eq!(got.len() as u64, end - start);
        assert!(got == body[start as usize..end as usize]);
    }

    #[tokio::test]
    async fn past_the_end_of_the_file_sends_nothing() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sock = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let path = std::env::temp_dir().join(format!("send-file-short-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let n = std::future::poll_fn(|cx| sock.poll_send_file(cx, &file, 10, 100))
            .await
            .unwrap();
        assert_eq!(n, 0);
    }
}
