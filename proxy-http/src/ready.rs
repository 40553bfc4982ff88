//! Futures that are ready at once, for the phases' default bodies.
//!
//! `#[async_trait]` boxes the future of every phase call. The defaults below
//! are zero-sized, and boxing a zero-sized value allocates nothing, so a
//! phase the user does not override costs no allocation per request. Their
//! signatures are the ones `#[async_trait]` gives an `async fn` in the
//! user's `impl`, so overriding works as for any other phase.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use proxy_core::error::Result;

/// The future a phase returns: what `#[async_trait]` makes of an `async fn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Ready with `Ok(())`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadyOk;

impl Future for ReadyOk {
    type Output = Result<()>;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(()))
    }
}

/// Ready with `Ok(B)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadyBool<const B: bool>;

impl<const B: bool> Future for ReadyBool<B> {
    type Output = Result<bool>;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(B))
    }
}

/// Ready with `()`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadyUnit;

impl Future for ReadyUnit {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_futures_are_zero_sized_so_boxing_them_allocates_nothing() {
        assert_eq!(std::mem::size_of::<ReadyOk>(), 0);
        assert_eq!(std::mem::size_of::<ReadyBool<true>>(), 0);
        assert_eq!(std::mem::size_of::<ReadyUnit>(), 0);
    }
}
