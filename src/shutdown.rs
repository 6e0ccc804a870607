//! The shutdown signal, cloned into every session. Once it fires the server
//! drains: new streams get `503`, open streams end cleanly, publishes already
//! queued still commit and get their answer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    /// The same fact as `token.is_cancelled()`, which takes a lock: session
    /// loops ask on every delivered event.
    draining: Arc<AtomicBool>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Starts the drain. Idempotent.
    pub fn trigger(&self) {
        self.draining.store(true, Ordering::Release);
        self.token.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Resolves once the drain has started.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// The same as [`wait`](Self::wait), as a future that owns its handle.
    /// A session loop keeps one pinned for its whole life instead of making
    /// a new `wait()` on every turn: each new one registers with the token
    /// under its lock, and dropping it unregisters, which per delivered
    /// event adds up across thousands of connections.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            draining: self.draining.clone(),
            wait: Box::pin(self.token.clone().cancelled_owned()),
            registered: None,
        }
    }
}

/// See [`Shutdown::signal`]. Polled on every wake-up of its session, so
/// once its waker is registered with the token a poll is one atomic load:
/// the token's own future takes the token's lock on every poll.
pub struct ShutdownSignal {
    draining: Arc<AtomicBool>,
    wait: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The waker the token holds for this signal, once it holds one.
    registered: Option<Waker>,
}

impl Future for ShutdownSignal {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // `trigger` sets the flag before it cancels the token, so a wake-up
        // from the token always finds it set.
        if this.draining.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if let Some(registered) = &this.registered
            && registered.will_wake(cx.waker())
        {
            return Poll::Pending;
        }
        let polled = this.wait.as_mut().poll(cx);
        if polled.is_pending() {
            this.registered = Some(cx.waker().clone());
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures_util::FutureExt;

    #[tokio::test]
    async fn a_signal_fires_on_trigger_after_being_polled_many_times() {
        let shutdown = Shutdown::new();
        let mut signal = shutdown.signal();
        for _ in 0..3 {
            assert!((&mut signal).now_or_never().is_none());
        }
        let waiter = tokio::spawn(signal);
        tokio::task::yield_now().await;
        shutdown.trigger();
        waiter
            .await
            .expect("the signal resolves once the drain starts");
        assert!(shutdown.is_draining());
    }

    #[tokio::test]
    async fn a_signal_made_after_the_trigger_is_ready_at_once() {
        let shutdown = Shutdown::new();
        shutdown.trigger();
        assert!(shutdown.signal().now_or_never().is_some());
    }
}
