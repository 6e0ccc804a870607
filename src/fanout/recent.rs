//! The most recent committed events, kept in memory in id order.
//!
//! Most replays are short: a tab that slept a minute, a reconnect storm after
//! a deploy. Serving those from memory spares the database thousands of
//! identical queries, and every replaying client shares one encoding of each
//! event. Anything older than the window is read from the log.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::domain::event::EventId;
use crate::domain::wire::SharedEvent;

/// Bytes counted per event besides its payload: the rest of the event and
/// its cached encodings, roughly.
const OVERHEAD_BYTES: usize = 512;

pub(crate) struct RecentEvents {
    events: VecDeque<Arc<SharedEvent>>,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
}

impl RecentEvents {
    pub(crate) fn new(max_events: usize, max_bytes: usize) -> RecentEvents {
        RecentEvents {
            events: VecDeque::new(),
            bytes: 0,
            max_events,
            max_bytes,
        }
    }

    fn size(event: &SharedEvent) -> usize {
        OVERHEAD_BYTES + event.event().payload.as_ref().map_or(0, |p| p.get().len())
    }

    /// Appends a newly committed event. Ids arrive in commit order; an event
    /// that does not follow the last one directly (there is no such case
    /// with one writer, but a shared log may skip ids) restarts the window,
    /// so the window never holds a hole.
    pub(crate) fn push(&mut self, event: Arc<SharedEvent>) {
        if let Some(last) = self.events.back()
            && last.id().next() != event.id()
        {
            self.events.clear();
            self.bytes = 0;
        }
        self.bytes += Self::size(&event);
        self.events.push_back(event);
        while self.events.len() > self.max_events || self.bytes > self.max_bytes {
            match self.events.pop_front() {
                Some(old) => self.bytes -= Self::size(&old),
                None => break,
            }
        }
    }

    /// Visits every event with `after < id <= until` in order, while
    /// `visit` returns true, if the window holds all of them. False means
    /// the window does not reach back far enough (or forward: events not yet
    /// dispatched), and nothing was visited.
    pub(crate) fn visit(
        &self,
        after: EventId,
        until: EventId,
        mut visit: impl FnMut(&Arc<SharedEvent>) -> bool,
    ) -> bool {
        if until <= after {
            return true;
        }
        let (Some(first), Some(last)) = (self.events.front(), self.events.back()) else {
            return false;
        };
        let (first, last) = (first.id(), last.id());
        if first > after.next() || last < until {
            return false;
        }
        // Ids in the window are consecutive, so positions follow from ids.
        let start = (after.next().get() - first.get()) as usize;
        let end = (until.get() - first.get()) as usize;
        for event in self.events.range(start..=end) {
            if !visit(event) {
                break;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64) -> Arc<SharedEvent> {
        super::super::fixtures::event(id, "t")
    }

    fn id(raw: i64) -> EventId {
        EventId::new(raw).unwrap()
    }

    fn ids(recent: &RecentEvents, after: i64, until: i64) -> Option<Vec<i64>> {
        let mut seen = Vec::new();
        recent
            .visit(id(after), id(until), |e| {
                seen.push(e.id().get());
                true
            })
            .then_some(seen)
    }

    #[test]
    fn a_range_inside_the_window_is_served() {
        let mut recent = RecentEvents::new(10, usize::MAX);
        (1..=5).for_each(|i| recent.push(event(i)));
        assert_eq!(ids(&recent, 2, 4), Some(vec![3, 4]));
        assert_eq!(ids(&recent, 0, 5), Some(vec![1, 2, 3, 4, 5]));
        assert_eq!(ids(&recent, 5, 5), Some(vec![]));
    }

    #[test]
    fn a_range_reaching_outside_the_window_is_not() {
        let mut recent = RecentEvents::new(3, usize::MAX);
        (1..=5).for_each(|i| recent.push(event(i)));
        assert_eq!(ids(&recent, 1, 5), None, "2 was evicted");
        assert_eq!(ids(&recent, 2, 5), Some(vec![3, 4, 5]));
        assert_eq!(ids(&recent, 3, 6), None, "6 is not dispatched yet");
    }

    #[test]
    fn a_hole_in_the_ids_restarts_the_window() {
        let mut recent = RecentEvents::new(10, usize::MAX);
        recent.push(event(1));
        recent.push(event(2));
        recent.push(event(4));
        assert_eq!(ids(&recent, 1, 4), None);
        assert_eq!(ids(&recent, 3, 4), Some(vec![4]));
    }
}
