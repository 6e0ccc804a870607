//! The feeds of one WebSocket connection.
//!
//! Each `subscribe` opens one feed for its patterns, so the events it
//! replays and then streams are in id order and the client's single cursor
//! stays valid. Unsubscribing from some of a feed's patterns reopens the
//! feed for the rest from its cursor: gap-free, because a feed resumes
//! exactly like a client does.
//!
//! Two feeds can both admit an event (`device:*` and `device:1`); such an
//! event is sent once, remembered until every feed's cursor has passed it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::stream::{LocalBoxStream, SelectAll};
use futures_util::{FutureExt, StreamExt, stream};
use tokio::sync::oneshot;

use super::protocol::RequestId;
use crate::event::{EventId, TopicPattern};
use crate::replay::{Feed, FeedEnd, FeedItem};
use crate::wire::SharedEvent;

type FeedId = u64;
type FeedStream = LocalBoxStream<'static, (FeedId, Result<FeedItem, FeedEnd>, EventId)>;

struct Active {
    patterns: Vec<TopicPattern>,
    request_id: Option<RequestId>,
    /// Whether this feed's `caught_up` goes to the client: not for a feed
    /// reopened after a partial unsubscribe, which the client did not ask for.
    announce: bool,
    /// Whether this feed's replay has ended.
    caught_up: bool,
    cursor: EventId,
    /// Dropping it ends the feed's stream.
    _cancel: oneshot::Sender<()>,
}

/// What the session must act on.
pub enum Update {
    Event(Arc<SharedEvent>),
    CaughtUp {
        head: EventId,
        request_id: Option<RequestId>,
    },
    /// A feed ended; the session decides what that means for the connection.
    Ended {
        end: FeedEnd,
        patterns: Vec<TopicPattern>,
        request_id: Option<RequestId>,
        /// Whether the client still waits for this request's `caught_up`.
        owes_caught_up: bool,
    },
}

/// A feed to reopen from `cursor` for `patterns`.
pub struct Reopen {
    pub patterns: Vec<TopicPattern>,
    pub cursor: EventId,
    pub request_id: Option<RequestId>,
}

#[derive(Default)]
pub struct Subscriptions {
    next_id: FeedId,
    active: HashMap<FeedId, Active>,
    streams: SelectAll<FeedStream>,
    /// Ids sent that another feed may still deliver.
    sent: BTreeSet<EventId>,
}

impl Subscriptions {
    /// How many topic patterns the connection holds.
    pub fn pattern_count(&self) -> usize {
        self.active.values().map(|a| a.patterns.len()).sum()
    }

    pub fn add(&mut self, feed: Feed, request_id: Option<RequestId>, announce: bool) {
        let id = self.next_id;
        self.next_id += 1;
        let (cancel, cancelled) = oneshot::channel::<()>();
        let patterns = feed.filter().patterns.clone();
        let cursor = feed.cursor();
        let stream = stream::unfold(feed, |mut feed| async move {
            let item = feed.next().await;
            let cursor = feed.cursor();
            Some(((item, cursor), feed))
        })
        .map(move |(item, cursor)| (id, item, cursor))
        .take_until(cancelled.map(|_| ()))
        .boxed_local();
        self.streams.push(stream);
        self.active.insert(
            id,
            Active {
                patterns,
                request_id,
                announce,
                caught_up: false,
                cursor,
                _cancel: cancel,
            },
        );
    }

    /// Drops `patterns` from every feed. Feeds left with other patterns are
    /// returned, to be reopened for those from their cursor.
    pub fn remove(&mut self, patterns: &[TopicPattern]) -> Vec<Reopen> {
        let touched: Vec<FeedId> = self
            .active
            .iter()
            .filter(|(_, a)| a.patterns.iter().any(|p| patterns.contains(p)))
            .map(|(id, _)| *id)
            .collect();
        let mut reopen = Vec::new();
        for id in touched {
            if let Some(active) = self.active.remove(&id) {
                let remaining: Vec<TopicPattern> = active
                    .patterns
                    .into_iter()
                    .filter(|p| !patterns.contains(p))
                    .collect();
                if !remaining.is_empty() {
                    reopen.push(Reopen {
                        patterns: remaining,
                        cursor: active.cursor,
                        request_id: active.request_id,
                    });
                }
            }
        }
        self.forget_passed();
        reopen
    }

    /// Whether any active feed has exactly this pattern.
    pub fn holds(&self, pattern: &TopicPattern) -> bool {
        self.active.values().any(|a| a.patterns.contains(pattern))
    }

    /// The next thing to send or handle. Pending forever when there are no
    /// feeds, so it can sit in a `select!` unguarded.
    pub async fn next(&mut self) -> Update {
        loop {
            if self.streams.is_empty() {
                return std::future::pending().await;
            }
            let Some((id, item, cursor)) = self.streams.next().await else {
                continue;
            };
            let Some(active) = self.active.get_mut(&id) else {
                // Cancelled while this item was in flight.
                continue;
            };
            active.cursor = cursor;
            match item {
                Ok(FeedItem::Event(event)) => {
                    if self.first_delivery(id, &event) {
                        return Update::Event(event);
                    }
                }
                Ok(FeedItem::CaughtUp { head }) => {
                    active.caught_up = true;
                    if active.announce {
                        return Update::CaughtUp {
                            head,
                            request_id: active.request_id.clone(),
                        };
                    }
                }
                Err(end) => {
                    let Some(active) = self.active.remove(&id) else {
                        continue;
                    };
                    self.forget_passed();
                    return Update::Ended {
                        end,
                        owes_caught_up: active.announce && !active.caught_up,
                        patterns: active.patterns,
                        request_id: active.request_id,
                    };
                }
            }
        }
    }

    /// False when another feed already sent this event.
    fn first_delivery(&mut self, from: FeedId, event: &SharedEvent) -> bool {
        let topic = &event.event().topic;
        let shared = self
            .active
            .iter()
            .any(|(id, a)| *id != from && a.patterns.iter().any(|p| p.matches(topic)));
        if !shared {
            return true;
        }
        let fresh = self.sent.insert(event.id());
        self.forget_passed();
        fresh
    }

    /// Ids at or below every feed's cursor can never come again.
    fn forget_passed(&mut self) {
        let Some(floor) = self.active.values().map(|a| a.cursor).min() else {
            self.sent.clear();
            return;
        };
        self.sent = self.sent.split_off(&floor.next());
    }
}
