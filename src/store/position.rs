//! Where the log starts and ends ([`LogBounds`]), kept in memory so every
//! stream open and every `/events/missed` call can check a cursor without a
//! query.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::domain::event::EventId;
use crate::domain::resume::LogBounds;

#[derive(Debug)]
pub(crate) struct LogPosition {
    head: AtomicI64,
    pruned_through: AtomicI64,
    pruned_through_at: AtomicI64,
}

impl LogPosition {
    pub(crate) fn new(head: i64, pruned_through: i64, pruned_through_at: i64) -> LogPosition {
        LogPosition {
            head: AtomicI64::new(head),
            pruned_through: AtomicI64::new(pruned_through),
            pruned_through_at: AtomicI64::new(pruned_through_at),
        }
    }

    pub(crate) fn bounds(&self) -> LogBounds {
        // Acquire pairs with the writer's Release: whoever sees a head also
        // sees the commit that produced it.
        LogBounds {
            head: EventId::new(self.head.load(Ordering::Acquire)).unwrap_or(EventId::ZERO),
            pruned_through: EventId::new(self.pruned_through.load(Ordering::Acquire))
                .unwrap_or(EventId::ZERO),
            pruned_through_at: self.pruned_through_at.load(Ordering::Acquire),
        }
    }

    /// Called after a commit, never before, and before the events up to it
    /// are dispatched: a reader that sees this head can read every event up
    /// to it. Never moves back (on a shared log, a cursor's check and the
    /// follower may both raise it).
    pub(crate) fn advance_head(&self, head: i64) {
        self.head.fetch_max(head, Ordering::AcqRel);
    }

    /// Called before the deletes commit, never after: a reader that checks
    /// the bounds after reading a page then notices that the page may be
    /// missing deleted events. (Raised early, it can only cause a spurious
    /// "expired", never a silent gap.)
    pub(crate) fn raise_pruned(&self, through: i64, at: i64) {
        self.pruned_through_at.fetch_max(at, Ordering::AcqRel);
        self.pruned_through.fetch_max(through, Ordering::AcqRel);
    }
}
