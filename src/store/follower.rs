//! A node's view of a shared log: what any node committed, read back from
//! the log in id order and handed to this node's hub.
//!
//! Notifications only say "the head moved" (`pushlog_head`) or "the outbox
//! has rows" (`pushlog_outbox`); the events themselves always come from the
//! log, after the last id this node dispatched. So a lost notification, a
//! dropped listener connection or a database restart costs latency, never
//! an event: after each of them, and at least once a second, the follower
//! reads whatever it has not dispatched yet.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgNotification, PgPool};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::MissedTickBehavior;

use super::StoreError;
use super::position::LogPosition;
use super::postgres::{self, HEAD_CHANNEL, OUTBOX_CHANNEL};
use super::writer::Command;
use crate::domain::event::{Event, EventId, TopicPattern};

/// Events read from the log per query.
const PAGE: u32 = 1000;
/// How often the log is read even without a notification.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Waits between attempts while the database cannot be reached.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

pub(super) struct Follower {
    pub reader: postgres::Reader,
    /// A pool of one: the listener holds its connection.
    pub listener_pool: PgPool,
    pub position: Arc<LogPosition>,
    /// Into this node's hub.
    pub announce: mpsc::Sender<Arc<[Event]>>,
    /// This node's writer, asked to relay the outbox.
    pub writer: mpsc::Sender<Command>,
    /// Notified by this node's writer after each commit, so its own events
    /// do not wait for the notification's round trip.
    pub poke: Arc<Notify>,
    /// The newest id handed to the hub.
    pub dispatched: EventId,
}

impl Follower {
    /// Follows the log until `stop` resolves (or its sender is dropped).
    pub(super) async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut listener: Option<PgListener> = None;
        let mut retry = RECONNECT_FIRST;
        // Not restarted by other wake-ups: under steady traffic it still
        // fires once a second.
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The outbox may hold rows from before this node started, or staged
        // while nobody listened: look until it is found empty.
        let mut relay_owed = true;
        // Whether the log may hold events not dispatched yet. A notification
        // of a head already dispatched (this node's own commit, read back
        // on the writer's poke) costs no query.
        let mut behind = true;
        loop {
            if listener.is_none() {
                listener = self.listen().await;
                relay_owed |= listener.is_some();
                behind = true;
            }
            let caught_up = if behind {
                match self.catch_up().await {
                    Ok(true) => return,
                    Ok(false) => true,
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the shared log; retrying");
                        false
                    }
                }
            } else {
                true
            };
            behind = !caught_up;
            let backoff = if caught_up && listener.is_some() {
                retry = RECONNECT_FIRST;
                None
            } else {
                retry = (retry * 2).min(RECONNECT_MAX);
                Some(retry)
            };
            tokio::select! {
                _ = &mut stop => return,
                () = self.poke.notified() => behind = true,
                _ = tick.tick() => {
                    relay_owed = true;
                    behind = true;
                }
                () = sleep_or_never(backoff) => {}
                received = next_notification(&mut listener) => match received {
                    Ok(Some(notification)) => self.heard(&notification, &mut behind, &mut relay_owed),
                    // The connection dropped; sqlx reconnects on the next
                    // call. Whatever was notified meanwhile is read back now.
                    Ok(None) => {
                        tracing::warn!("the listener's connection was lost; catching up");
                        relay_owed = true;
                        behind = true;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the listener failed; reconnecting");
                        listener = None;
                    }
                },
            }
            if let Some(listening) = &mut listener {
                while let Some(notification) = listening.next_buffered() {
                    self.heard(&notification, &mut behind, &mut relay_owed);
                }
            }
            if relay_owed {
                relay_owed = !self.relay_if_waiting().await;
            }
        }
    }

    /// What a notification asks for: reading the log (a head past what was
    /// dispatched; a payload that is no id counts as one) or a relay.
    fn heard(&self, notification: &PgNotification, behind: &mut bool, relay_owed: &mut bool) {
        if notification.channel() == OUTBOX_CHANNEL {
            *relay_owed = true;
        } else {
            let head = notification.payload().parse::<i64>().unwrap_or(i64::MAX);
            *behind |= head > self.dispatched.get();
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let listening = async {
            let mut listener = PgListener::connect_with(&self.listener_pool).await?;
            listener.listen_all([HEAD_CHANNEL, OUTBOX_CHANNEL]).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match listening.await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for commits; polling until it can");
                None
            }
        }
    }

    /// Hands every event after `dispatched` to the hub, in id order.
    /// `Ok(true)` when the hub is gone (the node is stopping).
    async fn catch_up(&mut self) -> Result<bool, StoreError> {
        let until = EventId::new(i64::MAX).unwrap_or(EventId::ZERO);
        loop {
            let events = self
                .reader
                .read_range(self.dispatched, until, &[TopicPattern::All], PAGE)
                .await?;
            let Some(last) = events.last().map(|event| event.id) else {
                return Ok(false);
            };
            let full = events.len() == PAGE as usize;
            // The head before the dispatch: see `replay`, step 2.
            self.position.advance_head(last.get());
            if self.announce.send(events.into()).await.is_err() {
                return Ok(true);
            }
            self.dispatched = last;
            if !full {
                return Ok(false);
            }
        }
    }

    /// Asks this node's writer to move the outbox's committed rows into the
    /// log, if there are any; `true` once the outbox is seen empty. Until
    /// then the follower asks again on each wake-up (the writer's commit
    /// pokes it), so a backlog larger than one relay drains batch after
    /// batch, and a full writer queue only delays the request.
    async fn relay_if_waiting(&self) -> bool {
        match self.reader.outbox_waiting().await {
            Ok(true) => {
                let _ = self.writer.try_send(Command::Relay);
                false
            }
            Ok(false) => true,
            Err(error) => {
                tracing::warn!(%error, "cannot look at the outbox");
                false
            }
        }
    }
}

async fn sleep_or_never(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}

/// The next notification; never, while there is no listener.
async fn next_notification(
    listener: &mut Option<PgListener>,
) -> Result<Option<PgNotification>, sqlx::Error> {
    match listener {
        Some(listener) => listener.try_recv().await,
        None => std::future::pending().await,
    }
}
