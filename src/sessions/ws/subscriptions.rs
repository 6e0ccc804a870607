//! The feeds of one WebSocket connection.
//!
//! Each `subscribe` opens one feed for its patterns, so the events it
//! replays and then streams are in id order and the client's single cursor
//! stays valid. Unsubscribing from some of a feed's patterns reopens the
//! feed for the rest from its cursor: gap-free, because a feed resumes
//! exactly like a client does.
//!
//! A `subscribe`'s types belong to its feed: they apply to the topics of
//! that `subscribe` only, a feed reopened for the rest of its patterns keeps
//! them, and a `subscribe` that takes a pattern over takes it with its own
//! types (or none).
//!
//! Two feeds can both admit an event (`device:*` and `device:1`); such an
//! event is sent once, remembered until every feed's cursor has passed it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::protocol::RequestId;
use crate::domain::event::{EventId, TopicPattern};
use crate::domain::type_filter::TypeFilter;
use crate::domain::wire::SharedEvent;
use crate::sessions::replay::{Feed, FeedEnd, FeedItem};

/// One open feed and what the client asked of it.
struct SubscribedFeed {
    feed: Feed,
    patterns: Vec<TopicPattern>,
    request_id: Option<RequestId>,
    /// Whether the client waits for this feed's `caught_up`: from its
    /// `subscribe` until it is sent. A feed reopened for the rest of a
    /// subscribe's patterns inherits the debt, or none once it was paid.
    owes_caught_up: bool,
    /// An item taken from the feed and not yet handed out, and the feed's
    /// cursor before it: see `Subscriptions::poll_next`.
    ready: Option<(Result<FeedItem, FeedEnd>, EventId)>,
}

impl SubscribedFeed {
    /// The newest id handed out or passed over: an item held in `ready`
    /// has not been handed out yet.
    fn cursor(&self) -> EventId {
        match &self.ready {
            Some((_, before)) => *before,
            None => self.feed.cursor(),
        }
    }
}

/// What the session must act on.
pub(super) enum FeedUpdate {
    Event(Arc<SharedEvent>),
    CaughtUp {
        head: EventId,
        request_id: Option<RequestId>,
    },
    /// A feed ended; the session decides what that means for the connection.
    Ended {
        end: FeedEnd,
        patterns: Vec<TopicPattern>,
        types: TypeFilter,
        request_id: Option<RequestId>,
        /// Whether the client still waits for this request's `caught_up`.
        owes_caught_up: bool,
    },
}

/// A feed to reopen from `cursor` for `patterns`, with the types it had.
pub(super) struct FeedToReopen {
    pub(super) patterns: Vec<TopicPattern>,
    pub(super) types: TypeFilter,
    pub(super) cursor: EventId,
    pub(super) request_id: Option<RequestId>,
    /// Whether the client still waits for this request's `caught_up`,
    /// which the reopened feed then sends.
    pub(super) owes_caught_up: bool,
}

/// A connection holds a handful of feeds at most (its pattern limit bounds
/// them), so they sit in a `Vec` and each wake-up polls every one: no
/// stream combinator, whose bookkeeping costs more per delivered event than
/// the delivery itself.
#[derive(Default)]
pub(super) struct Subscriptions {
    feeds: Vec<SubscribedFeed>,
    /// Ids sent that another feed may still deliver.
    sent: BTreeSet<EventId>,
}

impl Subscriptions {
    /// How many topic patterns the connection holds.
    pub(super) fn pattern_count(&self) -> usize {
        self.feeds.iter().map(|a| a.patterns.len()).sum()
    }

    /// How many type patterns the connection would hold once `patterns`
    /// are dropped from every feed: a feed left with other patterns keeps
    /// its types.
    pub(super) fn type_count_without(&self, patterns: &[TopicPattern]) -> usize {
        self.feeds
            .iter()
            .filter(|a| a.patterns.iter().any(|p| !patterns.contains(p)))
            .map(|a| a.feed.filter().types.patterns().len())
            .sum()
    }

    pub(super) fn add(&mut self, feed: Feed, request_id: Option<RequestId>, owes_caught_up: bool) {
        let patterns = feed.filter().patterns.clone();
        self.feeds.push(SubscribedFeed {
            feed,
            patterns,
            request_id,
            owes_caught_up,
            ready: None,
        });
    }

    /// Drops `patterns` from every feed. Feeds left with other patterns are
    /// returned, to be reopened for those from their cursor.
    pub(super) fn remove(&mut self, patterns: &[TopicPattern]) -> Vec<FeedToReopen> {
        let (touched, kept) = std::mem::take(&mut self.feeds)
            .into_iter()
            .partition(|a| a.patterns.iter().any(|p| patterns.contains(p)));
        self.feeds = kept;
        let mut reopen = Vec::new();
        for subscribed in touched {
            let cursor = subscribed.cursor();
            let remaining: Vec<TopicPattern> = subscribed
                .patterns
                .into_iter()
                .filter(|p| !patterns.contains(p))
                .collect();
            if !remaining.is_empty() {
                reopen.push(FeedToReopen {
                    patterns: remaining,
                    types: subscribed.feed.filter().types.clone(),
                    cursor,
                    request_id: subscribed.request_id,
                    owes_caught_up: subscribed.owes_caught_up,
                });
            }
        }
        // The reopened feeds start from their cursors and may deliver what
        // is remembered as sent above them.
        self.forget_below(reopen.iter().map(|r| r.cursor));
        reopen
    }

    /// Whether any subscribed feed has exactly this pattern.
    pub(super) fn holds(&self, pattern: &TopicPattern) -> bool {
        self.feeds.iter().any(|a| a.patterns.contains(pattern))
    }

    /// The next thing to send or handle. Pending forever when there are no
    /// feeds, so it can sit in a `select!` unguarded.
    pub(super) async fn next(&mut self) -> FeedUpdate {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Events go out in id order across feeds, as the client's one cursor
    /// needs: each feed's next item is taken into its `ready` slot, and the
    /// lowest event among them goes first (an event committed in the same
    /// batch for another feed is in that feed's queue already). Endings and
    /// `caught_up` go before any event.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<FeedUpdate> {
        loop {
            // Every feed with nothing held is polled, so each registers
            // this task's waker.
            for subscribed in &mut self.feeds {
                if subscribed.ready.is_none() {
                    let before = subscribed.feed.cursor();
                    if let Poll::Ready(item) = subscribed.feed.poll_next(cx) {
                        subscribed.ready = Some((item, before));
                    }
                }
            }
            let first = self
                .feeds
                .iter()
                .enumerate()
                .filter_map(|(index, subscribed)| {
                    let (item, _) = subscribed.ready.as_ref()?;
                    let order = match item {
                        Ok(FeedItem::Event(event)) => Some(event.id()),
                        _ => None,
                    };
                    Some((order, index))
                })
                .min();
            let Some((_, index)) = first else {
                return Poll::Pending;
            };
            let Some((item, _)) = self.feeds[index].ready.take() else {
                return Poll::Pending;
            };
            if let Some(update) = self.on_item(index, item) {
                return Poll::Ready(update);
            }
            // Passed over (a duplicate, a `caught_up` no client waits for): look
            // again, which polls that feed once more.
        }
    }

    /// What the item from the feed at `index` means for the session, if
    /// anything.
    fn on_item(&mut self, index: usize, item: Result<FeedItem, FeedEnd>) -> Option<FeedUpdate> {
        match item {
            Ok(FeedItem::Event(event)) => self
                .first_delivery(index, &event)
                .then_some(FeedUpdate::Event(event)),
            Ok(FeedItem::CaughtUp { head }) => {
                let subscribed = &mut self.feeds[index];
                std::mem::take(&mut subscribed.owes_caught_up).then(|| FeedUpdate::CaughtUp {
                    head,
                    request_id: subscribed.request_id.clone(),
                })
            }
            Err(end) => {
                let subscribed = self.feeds.remove(index);
                self.forget_passed();
                Some(FeedUpdate::Ended {
                    end,
                    owes_caught_up: subscribed.owes_caught_up,
                    types: subscribed.feed.filter().types.clone(),
                    patterns: subscribed.patterns,
                    request_id: subscribed.request_id,
                })
            }
        }
    }

    /// False when another feed already sent this event.
    fn first_delivery(&mut self, from: usize, event: &SharedEvent) -> bool {
        // Asked of each feed's own filter (topics, types, token), which
        // decides what that feed delivers, so no event two feeds deliver
        // goes unremembered.
        let shared = self
            .feeds
            .iter()
            .enumerate()
            .any(|(index, a)| index != from && a.feed.filter().admits(event.event()));
        if !shared {
            return true;
        }
        let fresh = self.sent.insert(event.id());
        self.forget_passed();
        fresh
    }

    /// Ids at or below every feed's cursor can never come again.
    fn forget_passed(&mut self) {
        self.forget_below(std::iter::empty());
    }

    /// Like `forget_passed`, counting feeds about to open at `cursors` too.
    fn forget_below(&mut self, cursors: impl Iterator<Item = EventId>) {
        let Some(floor) = self
            .feeds
            .iter()
            .map(SubscribedFeed::cursor)
            .chain(cursors)
            .min()
        else {
            self.sent.clear();
            return;
        };
        self.sent = self.sent.split_off(&floor.next());
    }
}
