//! A downstream connection's wait for a graceful shutdown to begin,
//! registered with the server's shutdown watch once for the connection's
//! life.
//!
//! The watch's own `wait_for` registers with its `Notify` (a lock) when
//! first polled and leaves it (another) when dropped, and every later poll
//! takes that lock again; made afresh per request, or polled on every
//! request, that is several atomic updates per request. [`ShutdownWait`]
//! keeps one `wait_for` pinned, polls it only when a second receiver's
//! `has_changed` (an atomic load) reports a change, and answers
//! [`ShutdownWait::began`] the same way.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use proxy_core::server::ShutdownWatch;

pin_project_lite::pin_project! {
    /// Ready once shutdown has begun (or the server's watch is gone), then
    /// pending for good. Poll it from one task only: the registered waker
    /// is that task's. Made by [`shutdown_wait`].
    pub(crate) struct ShutdownWait<F> {
        #[pin]
        wait: Option<F>,
        // a receiver marked up to date when made: later changes show in
        // `has_changed`
        probe: ShutdownWatch,
        registered: bool,
        seen: bool,
    }
}

/// The wait for `watch` to turn true, for one connection.
pub(crate) fn shutdown_wait(watch: &ShutdownWatch) -> ShutdownWait<impl Future<Output = ()>> {
    let mut rx = watch.clone();
    let mut probe = watch.clone();
    let seen = *probe.borrow_and_update();
    ShutdownWait {
        wait: Some(async move {
            let _ = rx.wait_for(|s| *s).await;
        }),
        probe,
        registered: false,
        seen,
    }
}

impl<F> ShutdownWait<F> {
    /// Whether shutdown has begun: an atomic load while the watch has not
    /// changed since this wait was made.
    pub(crate) fn began(self: Pin<&mut Self>) -> bool {
        let this = self.project();
        if !*this.seen && !matches!(this.probe.has_changed(), Ok(false)) {
            *this.seen = *this.probe.borrow();
        }
        *this.seen
    }
}

impl<F: Future<Output = ()>> Future for ShutdownWait<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let Some(wait) = this.wait.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        if *this.registered && matches!(this.probe.has_changed(), Ok(false)) {
            return Poll::Pending;
        }
        *this.registered = true;
        if wait.poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.wait.set(None);
        *this.seen = true;
        Poll::Ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_when_shutdown_begins_and_began_says_so() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let wait = shutdown_wait(&rx);
        tokio::pin!(wait);
        assert!(!wait.as_mut().began());
        let polled = std::future::poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx))).await;
        assert!(polled.is_pending());
        assert!(tx.send(true).is_ok());
        wait.as_mut().await;
        assert!(wait.as_mut().began());
        // over: pending for good, never polled again underneath
        let polled = std::future::poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx))).await;
        assert!(polled.is_pending());
    }

    #[tokio::test]
    async fn a_shutdown_begun_before_the_connection_counts() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        assert!(tx.send(true).is_ok());
        let wait = shutdown_wait(&rx);
        tokio::pin!(wait);
        assert!(wait.as_mut().began());
        wait.as_mut().await;
    }

    #[tokio::test]
    async fn a_server_gone_ends_the_wait() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let wait = shutdown_wait(&rx);
        tokio::pin!(wait);
        drop(tx);
        wait.as_mut().await;
    }
}
