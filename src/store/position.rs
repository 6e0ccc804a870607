//! Where the log starts and ends, kept in memory so every stream open and
//! every `/events/missed` call can check a cursor without a query.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::event::EventId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    /// The newest committed id (0 for a log that never had an event).
    pub head: EventId,
    /// Every id up to this one has been deleted by retention.
    pub pruned_through: EventId,
    /// Timestamp (Unix ms) of the newest deleted event.
    pub pruned_through_at: i64,
}

impl LogBounds {
    /// The oldest id the log may still hold; what `410` and `reset` report.
    pub fn oldest_id(&self) -> EventId {
        self.pruned_through.next()
    }

    /// Whether the log can serve everything after `cursor`.
    pub fn check(&self, cursor: EventId) -> Resolution {
        if cursor < self.pruned_through {
            Resolution::Expired(*self)
        } else if cursor > self.head {
            Resolution::Ahead(*self)
        } else {
            Resolution::Resumable(cursor)
        }
    }
}

/// A cursor checked against the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Everything after this id is still in the log.
    Resumable(EventId),
    /// Retention has deleted events the cursor has not seen.
    Expired(LogBounds),
    /// The cursor is beyond the newest event: from another or a restored log.
    Ahead(LogBounds),
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(pruned: i64, head: i64) -> LogBounds {
        LogPosition::new(head, pruned, 0).bounds()
    }

    fn id(raw: i64) -> EventId {
        EventId::new(raw).unwrap()
    }

    #[test]
    fn a_cursor_at_or_after_the_pruned_point_is_resumable() {
        assert_eq!(bounds(10, 20).check(id(10)), Resolution::Resumable(id(10)));
        assert_eq!(bounds(10, 20).check(id(20)), Resolution::Resumable(id(20)));
    }

    #[test]
    fn a_cursor_before_the_pruned_point_is_expired() {
        assert!(matches!(
            bounds(10, 20).check(id(9)),
            Resolution::Expired(_)
        ));
        assert_eq!(bounds(10, 20).oldest_id(), id(11));
    }

    #[test]
    fn a_cursor_beyond_the_head_is_ahead() {
        assert!(matches!(bounds(0, 20).check(id(21)), Resolution::Ahead(_)));
        assert!(matches!(bounds(0, 0).check(id(1)), Resolution::Ahead(_)));
    }
}
