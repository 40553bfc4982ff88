//! The timer of a connection's wait for its next request, armed once and
//! moved lazily, as nginx moves its timers: a busy keep-alive connection
//! does not register and cancel a timer in the runtime's wheel for every
//! request.
//!
//! Each wait asks for a deadline. The armed timer is kept when it is due
//! no later than that deadline and at most `slack` before it; when it then
//! fires early, it is moved to the real deadline and the wait goes on. So
//! the wait ends at the deadline asked for, never before, and a connection
//! that serves a request every few milliseconds re-registers its timer only
//! once per `slack`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A reusable deadline for waits on one connection (see the module docs).
/// Holds no timer until the first wait; must be used from inside a tokio
/// runtime with time enabled, the one the connection's task runs on.
#[derive(Debug, Default)]
pub(crate) struct IdleTimer {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    /// Poll `ready` until it is ready, for at most until `deadline`.
    /// Returns `None` when the deadline passes first.
    pub(crate) async fn wait<T>(
        &mut self,
        deadline: Instant,
        slack: Duration,
        mut ready: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Option<T> {
        let sleep = match &mut self.sleep {
            Some(s) => {
                let armed = s.deadline();
                if armed > deadline || armed + slack < deadline {
                    s.as_mut().reset(deadline);
                }
                s
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = ready(cx) {
                return Poll::Ready(Some(v));
            }
            loop {
                match sleep.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) if sleep.deadline() >= deadline => return Poll::Ready(None),
                    // armed early on purpose: move it to the real deadline
                    Poll::Ready(()) => sleep.as_mut().reset(deadline),
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_at_its_own_deadline_even_with_an_earlier_timer_armed() {
        let mut t = IdleTimer::default();
        let start = Instant::now();
        let slack = Duration::from_secs(15);
        // arms the timer for start + 60 s; the wait is cut short by `ready`
        let mut polls = 0;
        let got = t
            .wait(start + Duration::from_secs(60), slack, |_| {
                polls += 1;
                Poll::Ready(7)
            })
            .await;
        assert_eq!((got, polls), (Some(7), 1));
        // 10 s later a wait for start + 70 s keeps the timer armed at +60 s
        tokio::time::advance(Duration::from_secs(10)).await;
        let r = t.wait(start + Duration::from_secs(70), slack, never).await;
        assert_eq!(r, None);
        assert_eq!(Instant::now() - start, Duration::from_secs(70));
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_deadline_moves_the_timer_back() {
        let mut t = IdleTimer::default();
        let start = Instant::now();
        let _ = t
            .wait(
                start + Duration::from_secs(60),
                Duration::from_secs(15),
                |_| Poll::Ready(()),
            )
            .await;
        let r = t
            .wait(
                start + Duration::from_secs(5),
                Duration::from_secs(1),
                never,
            )
            .await;
        assert_eq!(r, None);
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
    }
}
