//! Whether a client's cursor can be resumed, and what the client is told
//! when it cannot.
//!
//! One outcome travels from the store to the wire: the log checks a cursor
//! against its [`LogBounds`] and answers the cursor's id or an
//! [`Unresumable`]; the paged routes turn that into `410` (in
//! [`crate::error`]) and the streams into a `reset` frame with
//! [`Unresumable::reason`], so the two can never disagree.

use crate::domain::event::EventId;

/// Where the log starts and ends: what a cursor is checked against, and
/// what `410` and `reset` report.
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

    /// `cursor` itself when the log can serve everything after it, else why
    /// it cannot.
    pub fn check(&self, cursor: EventId) -> Result<EventId, Unresumable> {
        if cursor < self.pruned_through {
            Err(Unresumable::Expired(*self))
        } else if cursor > self.head {
            Err(Unresumable::Ahead(*self))
        } else {
            Ok(cursor)
        }
    }
}

/// Why a read cannot resume gap-free from the requested cursor. The client
/// must refetch its state and resume from `head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unresumable {
    /// Retention has deleted events the cursor has not seen.
    #[error("retention has deleted events after the cursor")]
    Expired(LogBounds),
    /// The cursor is beyond the newest event: from another or a restored log.
    #[error("the cursor is beyond the newest event")]
    Ahead(LogBounds),
}

impl Unresumable {
    pub fn bounds(&self) -> LogBounds {
        match self {
            Unresumable::Expired(bounds) | Unresumable::Ahead(bounds) => *bounds,
        }
    }

    /// The `reset` reason that tells a streaming client this.
    pub fn reason(&self) -> ResetReason {
        match self {
            Unresumable::Expired(_) => ResetReason::CursorExpired,
            Unresumable::Ahead(_) => ResetReason::CursorUnknown,
        }
    }
}

/// The contract's reasons for `reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetReason {
    CursorExpired,
    CursorUnknown,
    Lagged,
}

impl ResetReason {
    /// The reason as the contract spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::CursorExpired => "cursor_expired",
            ResetReason::CursorUnknown => "cursor_unknown",
            ResetReason::Lagged => "lagged",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(pruned: i64, head: i64) -> LogBounds {
        LogBounds {
            head: id(head),
            pruned_through: id(pruned),
            pruned_through_at: 0,
        }
    }

    fn id(raw: i64) -> EventId {
        EventId::new(raw).unwrap()
    }

    #[test]
    fn a_cursor_at_or_after_the_pruned_point_is_resumable() {
        assert_eq!(bounds(10, 20).check(id(10)), Ok(id(10)));
        assert_eq!(bounds(10, 20).check(id(20)), Ok(id(20)));
    }

    #[test]
    fn a_cursor_before_the_pruned_point_is_expired() {
        assert!(matches!(
            bounds(10, 20).check(id(9)),
            Err(Unresumable::Expired(_))
        ));
        assert_eq!(bounds(10, 20).oldest_id(), id(11));
    }

    #[test]
    fn a_cursor_beyond_the_head_is_ahead() {
        assert!(matches!(
            bounds(0, 20).check(id(21)),
            Err(Unresumable::Ahead(_))
        ));
        assert!(matches!(
            bounds(0, 0).check(id(1)),
            Err(Unresumable::Ahead(_))
        ));
    }

    #[test]
    fn each_unresumable_cursor_has_its_reset_reason() {
        let bounds = bounds(10, 20);
        assert_eq!(
            Unresumable::Expired(bounds).reason().as_str(),
            "cursor_expired"
        );
        assert_eq!(
            Unresumable::Ahead(bounds).reason().as_str(),
            "cursor_unknown"
        );
    }
}
