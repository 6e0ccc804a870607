//! The bounds a client cannot push the server past.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::Config;

/// The most events one publish request may carry (the contract's number).
pub const MAX_BATCH: usize = 1000;
/// The most events one `/events/missed` page may carry.
pub const MAX_PAGE: u32 = 10_000;
/// The page size when the client names none.
pub const DEFAULT_PAGE: u32 = 500;
/// Topic patterns one request may name.
pub const MAX_TOPIC_PATTERNS: usize = 100;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_payload_bytes: usize,
    pub max_body_bytes: usize,
    pub max_subscriptions: usize,
    pub max_messages_per_sec: u32,
    pub heartbeat: Duration,
    pub ws_ping: Duration,
    pub sse_retry_ms: u64,
    pub ws_max_frame_bytes: usize,
    pub subscriber_queue: usize,
    pub allowed_origins: Vec<String>,
}

impl Limits {
    pub fn from_config(config: &Config) -> Limits {
        Limits {
            max_payload_bytes: config.max_payload_bytes,
            max_body_bytes: config.max_body_bytes,
            max_subscriptions: config.max_subscriptions,
            max_messages_per_sec: config.max_messages_per_sec,
            heartbeat: config.heartbeat(),
            ws_ping: Duration::from_secs(config.ws_ping_secs),
            sse_retry_ms: config.sse_retry_ms,
            ws_max_frame_bytes: config.ws_max_frame_bytes,
            subscriber_queue: config.subscriber_queue,
            allowed_origins: config.allowed_origins.clone(),
        }
    }
}

/// Counts open streams against the configured maximum.
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// One open stream; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnectionPermit {
    open: Arc<AtomicUsize>,
}

impl ConnectionLimiter {
    pub fn new(max: usize) -> ConnectionLimiter {
        ConnectionLimiter {
            open: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    pub fn try_acquire(&self) -> Option<ConnectionPermit> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            })
            .ok()
            .map(|_| ConnectionPermit {
                open: self.open.clone(),
            })
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_bounded_and_returned_on_drop() {
        let limiter = ConnectionLimiter::new(2);
        let a = limiter.try_acquire();
        let b = limiter.try_acquire();
        assert!(a.is_some() && b.is_some());
        assert!(limiter.try_acquire().is_none());
        drop(a);
        assert!(limiter.try_acquire().is_some());
    }
}
