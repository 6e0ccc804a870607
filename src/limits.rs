//! The bounds a client cannot push the server past. How streams are kept
//! alive is not a bound: that is [`crate::sessions::StreamSettings`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::domain::event::PayloadRules;
use crate::domain::trusted_proxy::TrustedProxy;

/// The most events one publish request may carry (the contract's number).
pub const MAX_BATCH: usize = 1000;
/// The most events one page of `/events/missed` or `/events/changes` may
/// carry.
pub const MAX_PAGE: u32 = 10_000;
/// The page size when the client names none.
pub const DEFAULT_PAGE: u32 = 500;
/// Topic patterns one request may name.
pub const MAX_TOPIC_PATTERNS: usize = 100;

#[derive(Debug, Clone)]
pub struct Limits {
    pub payload: PayloadRules,
    pub max_body_bytes: usize,
    pub max_subscriptions: usize,
    pub max_messages_per_sec: u32,
    pub ws_max_frame_bytes: usize,
    pub trusted_proxies: Vec<TrustedProxy>,
}

impl Limits {
    pub fn from_config(config: &Config) -> Limits {
        Limits {
            payload: PayloadRules {
                max_bytes: config.max_payload_bytes,
                max_depth: config.max_payload_depth,
            },
            max_body_bytes: config.max_body_bytes,
            max_subscriptions: config.max_subscriptions,
            max_messages_per_sec: config.max_messages_per_sec,
            ws_max_frame_bytes: config.ws_max_frame_bytes,
            trusted_proxies: config.trusted_proxies.clone(),
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

/// Connections that have not authenticated yet: a budget of their own and
/// a cap per client address, so that clients without a token can neither
/// take the slots of those that have one nor, from one address, the whole
/// budget.
#[derive(Debug, Clone)]
pub struct PendingLimiter {
    total: ConnectionLimiter,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_address: usize,
}

/// One connection waiting to authenticate; dropping it frees its share.
#[derive(Debug)]
pub struct PendingPermit {
    _slot: ConnectionPermit,
    address: Option<IpAddr>,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PendingLimiter {
    pub fn new(max: usize, max_per_address: usize) -> PendingLimiter {
        PendingLimiter {
            total: ConnectionLimiter::new(max),
            per_address: Arc::default(),
            max_per_address,
        }
    }

    /// A slot for a connection from `address` (unknown: only the total
    /// applies), or `None` when either bound is reached.
    pub fn try_acquire(&self, address: Option<IpAddr>) -> Option<PendingPermit> {
        let slot = self.total.try_acquire()?;
        if let Some(address) = address {
            let mut counts = lock(&self.per_address);
            let count = counts.entry(address).or_default();
            if *count >= self.max_per_address {
                if *count == 0 {
                    counts.remove(&address);
                }
                return None;
            }
            *count += 1;
        }
        Some(PendingPermit {
            _slot: slot,
            address,
            per_address: self.per_address.clone(),
        })
    }
}

impl Drop for PendingPermit {
    fn drop(&mut self) {
        let Some(address) = self.address else {
            return;
        };
        let mut counts = lock(&self.per_address);
        if let Some(count) = counts.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&address);
            }
        }
    }
}

/// A count map has no invariant a panic could break half-way.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How a stream holds its place: a slot, or while it has not
/// authenticated, a pending one that becomes a slot when it does.
#[derive(Debug)]
pub enum Admission {
    Admitted(ConnectionPermit),
    Pending {
        permit: PendingPermit,
        connections: ConnectionLimiter,
    },
}

impl Admission {
    /// Trades a pending place for a slot; `false` (and nothing changes)
    /// when every slot is taken.
    pub fn promote(&mut self) -> bool {
        let Admission::Pending { connections, .. } = self else {
            return true;
        };
        match connections.try_acquire() {
            Some(slot) => {
                *self = Admission::Admitted(slot);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([127, 0, 0, last]))
    }

    #[test]
    fn pending_places_are_bounded_in_total_and_per_address() {
        let pending = PendingLimiter::new(3, 2);
        let a1 = pending.try_acquire(address(1));
        let a2 = pending.try_acquire(address(1));
        assert!(a1.is_some() && a2.is_some());
        assert!(
            pending.try_acquire(address(1)).is_none(),
            "the address's cap"
        );
        let b1 = pending.try_acquire(address(2));
        assert!(b1.is_some());
        assert!(pending.try_acquire(address(3)).is_none(), "the total");
        drop(a1);
        assert!(pending.try_acquire(address(1)).is_some());
        assert!(lock(&pending.per_address).len() <= 2);
    }

    #[test]
    fn a_pending_place_becomes_a_slot_only_if_one_is_free() {
        let connections = ConnectionLimiter::new(1);
        let pending = PendingLimiter::new(2, 2);
        let mut first = Admission::Pending {
            permit: pending.try_acquire(address(1)).expect("a place"),
            connections: connections.clone(),
        };
        let mut second = Admission::Pending {
            permit: pending.try_acquire(address(1)).expect("a place"),
            connections: connections.clone(),
        };
        assert!(first.promote());
        assert!(matches!(first, Admission::Admitted(_)));
        assert!(!second.promote(), "the only slot is taken");
        assert!(matches!(second, Admission::Pending { .. }));
        drop(first);
        assert!(second.promote());
        assert_eq!(connections.open(), 1);
    }

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
