//! The Server-Sent Events session: a feed turned into a response body.
//!
//! One `select!` per step over the feed, the heartbeat tick, the token's
//! expiry and shutdown. A stream ends when its token expires, so access is
//! never longer than the token allows; the client reconnects with a fresh
//! one and resumes from its cursor.
//! The body is polled only while the client's socket can take bytes, so a
//! client that stops reading stops the feed; its hub queue then fills, and it
//! is told `reset` (`lagged`) when it next reads.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use bytes::Bytes;
use futures_util::{FutureExt, stream};
use serde::Serialize;
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};

use crate::domain::event::EventId;
use crate::domain::resume::{LogBounds, ResetReason, Unresumable};
use crate::domain::wire::Viewer;
use crate::limits::ConnectionPermit;
use crate::metrics::{GaugeGuard, Metrics, Transport};
use crate::sessions::replay::{Feed, FeedEnd, FeedItem};
use crate::shutdown::{Shutdown, ShutdownSignal};

/// What a stream needs besides its feed.
pub struct Session {
    pub viewer: Viewer,
    pub heartbeat: Duration,
    /// How long the token stays valid.
    pub token_lifetime: Duration,
    pub retry_ms: u64,
    pub shutdown: Shutdown,
    pub permit: ConnectionPermit,
    /// Counts this stream in `pushlog_connections` while it lives.
    pub gauge: GaugeGuard,
    pub metrics: Arc<Metrics>,
}

#[derive(Serialize)]
struct Reset {
    reason: ResetReason,
    oldest_id: EventId,
    head: EventId,
}

fn reset_frame(metrics: &Metrics, reason: ResetReason, bounds: LogBounds) -> Bytes {
    metrics.reset(Transport::Sse, reason.as_str());
    let data = serde_json::to_string(&Reset {
        reason,
        oldest_id: bounds.oldest_id(),
        head: bounds.head,
    })
    .unwrap_or_default();
    Bytes::from(format!("event: reset\ndata: {data}\n\n"))
}

enum State {
    Opening {
        feed: Result<Feed, Unresumable>,
        session: Session,
    },
    Streaming {
        feed: Feed,
        session: Session,
        heartbeat: Heartbeat,
        expiry: Pin<Box<Sleep>>,
        shutdown: ShutdownSignal,
    },
    /// Sends one last frame, then ends.
    Closing(Bytes),
    Done,
}

pub fn respond(feed: Result<Feed, Unresumable>, session: Session) -> HttpResponse {
    let body = stream::unfold(State::Opening { feed, session }, step);
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache, no-transform"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

async fn step(state: State) -> Option<(Result<Bytes, std::convert::Infallible>, State)> {
    match state {
        State::Opening { feed, session } => {
            // `retry:` and a comment, sent at once so proxies and browsers
            // see the stream open even before the first event.
            let opening = Bytes::from(format!(
                "retry: {}\n: pushlog stream open\n\n",
                session.retry_ms
            ));
            let next = match feed {
                Ok(feed) => {
                    let heartbeat = Heartbeat::new(session.heartbeat);
                    let expiry = Box::pin(tokio::time::sleep(session.token_lifetime));
                    let shutdown = session.shutdown.signal();
                    State::Streaming {
                        feed,
                        session,
                        heartbeat,
                        expiry,
                        shutdown,
                    }
                }
                Err(unresumable) => State::Closing(reset_frame(
                    &session.metrics,
                    unresumable.reason(),
                    unresumable.bounds(),
                )),
            };
            Some((Ok(opening), next))
        }
        State::Streaming {
            mut feed,
            session,
            mut heartbeat,
            mut expiry,
            mut shutdown,
        } => loop {
            // Events first: a wake-up that brings one polls nothing else.
            // So that a stream always ready (a long replay) still ends on
            // time, the drain and the expiry are also checked here, without
            // polling their futures.
            if session.shutdown.is_draining() || expiry.is_elapsed() {
                return None;
            }
            tokio::select! {
                biased;
                item = feed.next() => match item {
                    Ok(FeedItem::Event(event)) => {
                        heartbeat.sent();
                        let first = event.sse_frame(session.viewer);
                        let (chunk, end) = coalesce(first, &mut feed, session.viewer);
                        let next = match end.map(|end| end_frame(&session.metrics, end)) {
                            None => State::Streaming { feed, session, heartbeat, expiry, shutdown },
                            Some(Some(reset)) => State::Closing(reset),
                            Some(None) => State::Done,
                        };
                        return Some((Ok(chunk), next));
                    }
                    Ok(FeedItem::CaughtUp { .. }) => continue,
                    Err(end) => {
                        return end_frame(&session.metrics, end).map(|frame| (Ok(frame), State::Done));
                    }
                },
                () = &mut shutdown => return None,
                () = &mut expiry => return None,
                due = heartbeat.tick() => {
                    if !heartbeat.ping_due(due) {
                        continue;
                    }
                    let ping = Bytes::from_static(b": ping\n\n");
                    return Some((Ok(ping), State::Streaming { feed, session, heartbeat, expiry, shutdown }));
                }
            }
        },
        State::Closing(frame) => Some((Ok(frame), State::Done)),
        State::Done => None,
    }
}

/// The `: ping` clock: a comment goes out once the stream has been silent
/// for a whole interval. Events do not reset the timer (that would touch the
/// timer wheel once per event per stream); they only note the time, and a
/// tick that finds the stream recently written moves itself to one interval
/// after that write instead of pinging.
struct Heartbeat {
    every: Duration,
    timer: Interval,
    last_sent: Instant,
}

impl Heartbeat {
    fn new(every: Duration) -> Heartbeat {
        let now = Instant::now();
        let mut timer = tokio::time::interval_at(now + every, every);
        timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Heartbeat {
            every,
            timer,
            last_sent: now,
        }
    }

    fn sent(&mut self) {
        self.last_sent = Instant::now();
    }

    async fn tick(&mut self) -> Instant {
        self.timer.tick().await
    }

    /// Whether the tick that was `due` finds the stream silent for a whole
    /// interval; if not, the next tick is one interval after the last write.
    fn ping_due(&mut self, due: Instant) -> bool {
        let quiet_until = self.last_sent + self.every;
        if due >= quiet_until {
            return true;
        }
        self.timer.reset_at(quiet_until);
        false
    }
}

/// Frames written together in one chunk at most, and their size bound.
const MAX_COALESCED_FRAMES: usize = 64;
const MAX_CHUNK_BYTES: usize = 64 * 1024;

/// Appends the events that are ready right now to `first`, so a burst goes
/// out in one write instead of one per event. `Feed::next` is cancel-safe,
/// which is what makes polling it once without waiting sound. Returns the
/// chunk, and how the feed ended if it did.
fn coalesce(
    first: Bytes,
    feed: &mut Feed,
    viewer: crate::domain::wire::Viewer,
) -> (Bytes, Option<FeedEnd>) {
    let mut chunk: Option<bytes::BytesMut> = None;
    for _ in 0..MAX_COALESCED_FRAMES {
        if chunk.as_ref().map_or(first.len(), |c| c.len()) >= MAX_CHUNK_BYTES {
            break;
        }
        match feed.next().now_or_never() {
            Some(Ok(FeedItem::Event(event))) => {
                let chunk = chunk.get_or_insert_with(|| bytes::BytesMut::from(&first[..]));
                chunk.extend_from_slice(&event.sse_frame(viewer));
            }
            Some(Ok(FeedItem::CaughtUp { .. })) => {}
            Some(Err(end)) => return (chunk.map_or(first.clone(), |c| c.freeze()), Some(end)),
            None => break,
        }
    }
    (chunk.map_or(first, |c| c.freeze()), None)
}

/// The last frame for a feed that ended, if the client must be told.
fn end_frame(metrics: &Metrics, end: FeedEnd) -> Option<Bytes> {
    match end {
        FeedEnd::Lagged(bounds) => Some(reset_frame(metrics, ResetReason::Lagged, bounds)),
        FeedEnd::Unresumable(unresumable) => Some(reset_frame(
            metrics,
            unresumable.reason(),
            unresumable.bounds(),
        )),
        FeedEnd::Closed => None,
        FeedEnd::Store(error) => {
            // Ending the response makes the client reconnect with its
            // cursor, which is the right recovery from a failed read.
            tracing::error!(error = %error, "replay read failed; ending the stream");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(15);

    #[tokio::test]
    async fn a_stream_silent_for_a_whole_interval_is_pinged() {
        let mut heartbeat = Heartbeat::new(EVERY);
        let due = heartbeat.last_sent + EVERY;
        assert!(heartbeat.ping_due(due));
    }

    #[tokio::test]
    async fn a_recently_written_stream_is_not_pinged_and_the_next_tick_moves_after_the_write() {
        let mut heartbeat = Heartbeat::new(EVERY);
        heartbeat.sent();
        let written = heartbeat.last_sent;
        let due = written + EVERY - Duration::from_millis(1);
        assert!(!heartbeat.ping_due(due));
        assert_eq!(heartbeat.timer.period(), EVERY);
        // The next tick is one whole interval after the write, so the
        // longest silence a client sees is one interval, never more.
        let next = heartbeat.tick().now_or_never();
        assert!(next.is_none(), "no tick before the interval has passed");
        assert!(heartbeat.ping_due(written + EVERY));
    }
}
