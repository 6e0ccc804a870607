//! The Server-Sent Events session: a feed turned into a response body.
//!
//! One `select!` per step over the feed, the heartbeat tick and shutdown.
//! The body is polled only while the client's socket can take bytes, so a
//! client that stops reading stops the feed; its hub queue then fills, and it
//! is told `reset` (`lagged`) when it next reads.

use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use bytes::Bytes;
use futures_util::stream;
use serde::Serialize;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::event::EventId;
use crate::limits::ConnectionPermit;
use crate::metrics::GaugeGuard;
use crate::replay::{Feed, FeedEnd, FeedItem, ResetReason, Unresumable};
use crate::shutdown::Shutdown;
use crate::store::LogBounds;
use crate::wire::View;

/// What a stream needs besides its feed.
pub struct Session {
    pub view: View,
    pub heartbeat: Duration,
    pub retry_ms: u64,
    pub shutdown: Shutdown,
    pub permit: ConnectionPermit,
    /// Counts this stream in `pushlog_sse_connections` while it lives.
    pub gauge: GaugeGuard,
}

#[derive(Serialize)]
struct Reset {
    reason: ResetReason,
    oldest_id: EventId,
    head: EventId,
}

fn reset_frame(reason: ResetReason, bounds: LogBounds) -> Bytes {
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
        heartbeat: Interval,
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
                    let mut heartbeat = tokio::time::interval_at(
                        Instant::now() + session.heartbeat,
                        session.heartbeat,
                    );
                    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
                    State::Streaming {
                        feed,
                        session,
                        heartbeat,
                    }
                }
                Err(unresumable) => {
                    State::Closing(reset_frame(unresumable.reason(), unresumable.bounds()))
                }
            };
            Some((Ok(opening), next))
        }
        State::Streaming {
            mut feed,
            session,
            mut heartbeat,
        } => loop {
            tokio::select! {
                biased;
                () = session.shutdown.wait() => return None,
                item = feed.next() => match item {
                    Ok(FeedItem::Event(event)) => {
                        heartbeat.reset();
                        let frame = event.sse_frame(session.view);
                        return Some((Ok(frame), State::Streaming { feed, session, heartbeat }));
                    }
                    Ok(FeedItem::CaughtUp { .. }) => continue,
                    Err(end) => return finish(end),
                },
                _ = heartbeat.tick() => {
                    let ping = Bytes::from_static(b": ping\n\n");
                    return Some((Ok(ping), State::Streaming { feed, session, heartbeat }));
                }
            }
        },
        State::Closing(frame) => Some((Ok(frame), State::Done)),
        State::Done => None,
    }
}

fn finish(end: FeedEnd) -> Option<(Result<Bytes, std::convert::Infallible>, State)> {
    let frame = match end {
        FeedEnd::Lagged(bounds) => reset_frame(ResetReason::Lagged, bounds),
        FeedEnd::Expired(bounds) => reset_frame(ResetReason::CursorExpired, bounds),
        FeedEnd::Closed => return None,
        FeedEnd::Store(error) => {
            // Ending the response makes the client reconnect with its
            // cursor, which is the right recovery from a failed read.
            tracing::error!(error = %error, "replay read failed; ending the stream");
            return None;
        }
    };
    Some((Ok(frame), State::Done))
}
