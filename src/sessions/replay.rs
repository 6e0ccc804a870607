//! The live/replay handover: one resumable, filtered, gap-free and
//! duplicate-free sequence of events from a cursor, used by every transport.
//!
//! The order of the steps is the whole trick:
//!
//! 1. Subscribe to the hub first (to the worker's shard of it). From then
//!    on every newly dispatched event lands in the subscription's queue.
//! 2. Then read the log's head `H`. The writer publishes a head only after its
//!    commit, and dispatches only after publishing the head, so every event
//!    above `H` is dispatched after step 1 and is in the queue; every event up
//!    to `H` is committed and readable.
//! 3. Replay `(cursor, H]` from the log, page by page.
//! 4. Switch to the queue, dropping every event at or below the cursor: those
//!    were dispatched during the replay (or just before step 1, reaching the
//!    shard after it) and were sent from the log.
//!
//! Ids are commit order, so "at or below the cursor" is exactly "already
//! sent". If the queue overflows while a long replay runs, nothing is lost:
//! the feed subscribes again and replays further from the log. Only a
//! consumer that falls behind once live is told it lagged.
//!
//! A duplicate is dropped by its id at three layers, each for a reason of
//! its own, and the chain is what makes "exactly once" hold:
//!
//! 1. The shard offers an event to a subscriber once, however many of its
//!    patterns match it (`offered_through` in `fanout::shard`).
//! 2. The feed drops what its replay already sent: at the handover, every
//!    queued event at or below its cursor (step 4 above).
//! 3. A WebSocket connection whose subscriptions overlap sends an event
//!    that two of its feeds deliver once (`sent` in
//!    `sessions::ws::subscriptions`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_util::future::BoxFuture;

use crate::domain::cursor::Since;
use crate::domain::event::EventId;
use crate::domain::filter::Filter;
use crate::domain::resume::{LogBounds, Unresumable};
use crate::domain::wire::SharedEvent;
use crate::fanout::{Hub, Received, Shard, Subscription};
use crate::metrics::Metrics;
use crate::store::{EventLog, ReadError, StoreError};

/// Rows read from the log per query while replaying.
const REPLAY_PAGE: u32 = 500;

/// Where a feed starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// With the next event committed.
    Now,
    /// After a client's cursor.
    After(Since),
}

#[derive(Debug)]
pub enum FeedItem {
    Event(Arc<SharedEvent>),
    /// The replay is done; what follows is live. Sent once per feed.
    CaughtUp {
        head: EventId,
    },
}

/// Why a feed ended. Every variant but `Closed` means the client must act.
#[derive(Debug, thiserror::Error)]
pub enum FeedEnd {
    /// The consumer fell too far behind while live.
    #[error("the consumer lagged")]
    Lagged(LogBounds),
    /// The log can no longer serve the rest of the replay: retention
    /// deleted events it had not reached yet.
    #[error("cannot resume the replay")]
    Unresumable(Unresumable),
    /// The hub stopped: shutdown.
    #[error("the hub closed")]
    Closed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ReadError> for FeedEnd {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Unresumable(unresumable) => FeedEnd::Unresumable(unresumable),
            ReadError::Store(error) => FeedEnd::Store(error),
        }
    }
}

/// Events after `after`, up to `until`, that `filter` admits: at most
/// `limit`, in id order.
#[derive(Debug)]
pub struct Page {
    pub events: Vec<Arc<SharedEvent>>,
    /// Every admitted event up to this id is in `events`.
    pub covered_through: EventId,
    /// Whether events after `covered_through` (up to `until`) remain unread.
    pub has_more: bool,
}

/// Reads one page, from the hub's recent events when they reach back far
/// enough, else from the log; or says that retention passed `after`.
///
/// The same filter decides for replayed and live events, so a replayed
/// stream, a live one and `/events/missed` always agree.
pub async fn read_page(
    log: &EventLog,
    hub: &Hub,
    metrics: &Metrics,
    filter: &Filter,
    after: EventId,
    until: EventId,
    limit: u32,
) -> Result<Page, ReadError> {
    let page = match recent_page(hub, filter, after, until, limit) {
        Some(page) => {
            metrics
                .replayed_from_memory
                .inc_by(page.events.len() as u64);
            page
        }
        None => {
            let page = read_log_page(log, filter, after, until, limit).await?;
            metrics.replayed_from_log.inc_by(page.events.len() as u64);
            page
        }
    };
    // Checked after reading, never before: retention raises its mark before
    // deleting, so a page read across a delete is caught here.
    let bounds = log.bounds();
    if after < bounds.pruned_through {
        return Err(Unresumable::Expired(bounds).into());
    }
    Ok(page)
}

/// A page from the hub's recent events, if they cover `(after, until]`.
fn recent_page(
    hub: &Hub,
    filter: &Filter,
    after: EventId,
    until: EventId,
    limit: u32,
) -> Option<Page> {
    let mut page = Page {
        events: Vec::new(),
        has_more: false,
        covered_through: until,
    };
    let served = hub.visit_recent(after, until, |event| {
        if !filter.admits(event.event()) {
            return true;
        }
        page.events.push(event.clone());
        if page.events.len() < limit as usize {
            return true;
        }
        page.covered_through = event.id();
        page.has_more = event.id() < until;
        false
    });
    served.then_some(page)
}

async fn read_log_page(
    log: &EventLog,
    filter: &Filter,
    after: EventId,
    until: EventId,
    limit: u32,
) -> Result<Page, StoreError> {
    let mut events = Vec::new();
    let mut scanned_to = after;
    loop {
        // Only topics narrow the query. Types and audience are left to
        // `filter.admits` on every row, the very check live delivery makes,
        // so the log, the memory window and the hub cannot disagree; a
        // filter that skips most rows costs rows read, never an event.
        let rows = log
            .read_range(scanned_to, until, &filter.patterns, limit)
            .await?;
        let exhausted = rows.len() < limit as usize;
        for row in rows {
            scanned_to = row.id;
            if filter.admits(&row) {
                events.push(Arc::new(SharedEvent::new(row)));
                if events.len() == limit as usize {
                    return Ok(Page {
                        events,
                        has_more: scanned_to < until,
                        covered_through: scanned_to,
                    });
                }
            }
        }
        if exhausted {
            return Ok(Page {
                events,
                has_more: false,
                covered_through: until,
            });
        }
    }
}

enum Phase {
    Replay { until: EventId },
    Live,
}

/// A resumable event sequence for one subscriber.
pub struct Feed {
    log: EventLog,
    shard: Shard,
    filter: Arc<Filter>,
    metrics: Arc<Metrics>,
    subscription: Subscription,
    /// The newest id delivered or known not to concern this subscriber.
    cursor: EventId,
    phase: Phase,
    /// Replayed events not yet handed out.
    pending: VecDeque<Arc<SharedEvent>>,
    /// Where `cursor` moves once `pending` is drained.
    pending_covers: EventId,
    /// The page being read from the log, while replaying.
    reading: Option<BoxFuture<'static, Result<Page, ReadError>>>,
    /// Events replayed so far, for `pushlog_replay_events`.
    replayed: u64,
}

/// How long ago `event` was appended, in seconds (0 if the clock went back).
fn age_seconds(event: &crate::domain::event::Event) -> f64 {
    let age = chrono::Utc::now() - event.timestamp;
    age.to_std().map_or(0.0, |age| age.as_secs_f64())
}

impl Feed {
    pub async fn open(
        log: EventLog,
        shard: Shard,
        metrics: Arc<Metrics>,
        filter: Arc<Filter>,
        start: Start,
    ) -> Result<Feed, ReadError> {
        // Step 1 before step 2: see the module documentation.
        let subscription = shard.subscribe(filter.clone());
        let head = log.bounds().head;
        let cursor = match start {
            Start::Now => head,
            Start::After(since) => log.resolve(since).await?,
        };
        // The cursor may resolve above `head` when events commit meanwhile;
        // those were dispatched after step 1, so the queue alone serves them.
        let until = head;
        Ok(Feed {
            log,
            shard,
            filter,
            metrics,
            subscription,
            cursor,
            phase: Phase::Replay { until },
            pending: VecDeque::new(),
            pending_covers: cursor,
            reading: None,
            replayed: 0,
        })
    }

    /// The newest id this feed has delivered or passed over.
    pub fn cursor(&self) -> EventId {
        self.cursor
    }

    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// The next item. Cancel-safe: all state lives in the feed, so a
    /// session may drop this future in a `select!` without losing an event.
    pub async fn next(&mut self) -> Result<FeedItem, FeedEnd> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The next item, as a poll: what a session polls on every wake-up, so
    /// the live path is one queue pop with nothing allocated around it.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<FeedItem, FeedEnd>> {
        loop {
            match self.phase {
                Phase::Live => {
                    return match ready!(self.subscription.poll_recv(cx)) {
                        Received::Event(event) => {
                            if event.id() <= self.cursor {
                                continue;
                            }
                            self.cursor = event.id();
                            self.metrics
                                .delivery_seconds
                                .observe(age_seconds(event.event()));
                            Poll::Ready(Ok(FeedItem::Event(event)))
                        }
                        Received::Lagged => Poll::Ready(Err(FeedEnd::Lagged(self.log.bounds()))),
                        Received::Closed => Poll::Ready(Err(FeedEnd::Closed)),
                    };
                }
                Phase::Replay { until } => {
                    if let Some(reading) = &mut self.reading {
                        let read = ready!(reading.as_mut().poll(cx));
                        self.reading = None;
                        let page = read?;
                        self.pending_covers = page.covered_through;
                        self.pending = page.events.into();
                    }
                    if let Some(event) = self.pending.pop_front() {
                        self.cursor = event.id();
                        self.replayed += 1;
                        return Poll::Ready(Ok(FeedItem::Event(event)));
                    }
                    self.cursor = self.cursor.max(self.pending_covers);
                    if self.cursor >= until {
                        if self.subscription.is_lagged() {
                            // The queue overflowed during the replay: some
                            // live events after `until` are not in it. Start
                            // over from the cursor with a fresh queue.
                            self.subscription = self.shard.subscribe(self.filter.clone());
                            let head = self.log.bounds().head;
                            self.phase = Phase::Replay { until: head };
                            continue;
                        }
                        self.phase = Phase::Live;
                        self.metrics.replay_events.observe(self.replayed as f64);
                        return Poll::Ready(Ok(FeedItem::CaughtUp { head: until }));
                    }
                    let (log, hub, metrics, filter) = (
                        self.log.clone(),
                        self.shard.hub().clone(),
                        self.metrics.clone(),
                        self.filter.clone(),
                    );
                    let after = self.cursor;
                    self.reading = Some(Box::pin(async move {
                        read_page(&log, &hub, &metrics, &filter, after, until, REPLAY_PAGE).await
                    }));
                }
            }
        }
    }
}
