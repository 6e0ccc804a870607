//! Checking one subscriber's stream of sequence numbers against the contract:
//! every event once, in order.
//!
//! A subscriber expects 0, 1, 2, … A jump ahead is a gap; the skipped range
//! is remembered as a hole. A number below the next expected one either
//! fills a hole (it came late: out of order) or does not (seen before: a
//! duplicate). Holes are few in any run worth looking at, so a short list is
//! enough; this keeps a check per subscriber at a few dozen bytes where a
//! bitmap of everything seen would take megabytes across 15,000 of them.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// Holes remembered per subscriber. Past this the run is broken anyway;
/// further holes are still counted as gaps and missing events.
const MAX_HOLES: usize = 64;

#[derive(Debug, Clone, Default)]
pub struct SequenceCheck {
    next: u64,
    holes: Vec<Range<u64>>,
    /// Events skipped in holes that were not remembered.
    forgotten_missing: u64,
    pub counts: SequenceCounts,
}

/// What a check found; summed across subscribers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceCounts {
    /// Events received, duplicates included.
    pub received: u64,
    /// Times the stream jumped ahead.
    pub gaps: u64,
    pub duplicates: u64,
    /// Events that arrived after a later one.
    pub out_of_order: u64,
}

impl SequenceCounts {
    pub fn add(&mut self, other: &SequenceCounts) {
        self.received += other.received;
        self.gaps += other.gaps;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
    }
}

impl SequenceCheck {
    pub fn observe(&mut self, seq: u64) {
        self.counts.received += 1;
        if seq == self.next {
            self.next += 1;
        } else if seq > self.next {
            self.counts.gaps += 1;
            if self.holes.len() < MAX_HOLES {
                self.holes.push(self.next..seq);
            } else {
                self.forgotten_missing += seq - self.next;
            }
            self.next = seq + 1;
        } else if let Some(i) = self.holes.iter().position(|hole| hole.contains(&seq)) {
            self.counts.out_of_order += 1;
            let hole = self.holes.swap_remove(i);
            if hole.start < seq {
                self.holes.push(hole.start..seq);
            }
            if seq + 1 < hole.end {
                self.holes.push(seq + 1..hole.end);
            }
        } else {
            self.counts.duplicates += 1;
        }
    }

    /// The next sequence number expected: everything below it has been
    /// received or is a hole.
    pub fn next_expected(&self) -> u64 {
        self.next
    }

    /// Events never received, given the last one published (`None`: nothing
    /// was published).
    pub fn missing(&self, last_published: Option<u64>) -> u64 {
        let in_holes: u64 = self.holes.iter().map(|h| h.end - h.start).sum();
        let tail = last_published.map_or(0, |last| (last + 1).saturating_sub(self.next));
        in_holes + self.forgotten_missing + tail
    }

    /// Whether every event up to `last` has arrived.
    pub fn complete_through(&self, last: u64) -> bool {
        self.next > last && self.holes.is_empty() && self.forgotten_missing == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(seqs: &[u64]) -> SequenceCheck {
        let mut check = SequenceCheck::default();
        for &seq in seqs {
            check.observe(seq);
        }
        check
    }

    #[test]
    fn an_unbroken_stream_has_nothing_to_report() {
        let check = check(&[0, 1, 2, 3]);
        assert_eq!(
            check.counts.gaps + check.counts.duplicates + check.counts.out_of_order,
            0
        );
        assert_eq!(check.missing(Some(3)), 0);
        assert!(check.complete_through(3));
    }

    #[test]
    fn a_skipped_event_is_a_gap_and_missing() {
        let check = check(&[0, 1, 3, 4]);
        assert_eq!(check.counts.gaps, 1);
        assert_eq!(check.missing(Some(4)), 1);
        assert!(!check.complete_through(4));
    }

    #[test]
    fn a_late_event_is_out_of_order_and_no_longer_missing() {
        let check = check(&[0, 2, 1, 3]);
        assert_eq!(check.counts.gaps, 1);
        assert_eq!(check.counts.out_of_order, 1);
        assert_eq!(check.counts.duplicates, 0);
        assert_eq!(check.missing(Some(3)), 0);
    }

    #[test]
    fn a_repeated_event_is_a_duplicate() {
        let check = check(&[0, 1, 2, 1, 2, 3]);
        assert_eq!(check.counts.duplicates, 2);
        assert_eq!(check.counts.out_of_order, 0);
        assert_eq!(check.missing(Some(3)), 0);
    }

    #[test]
    fn events_never_received_at_the_end_are_missing() {
        let check = check(&[0, 1]);
        assert_eq!(check.missing(Some(4)), 3);
        assert_eq!(check.missing(None), 0);
    }
}
