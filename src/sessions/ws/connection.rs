//! The session loop: one `select!` over the client's messages, the
//! connection's feeds, the ping clock, the token's expiry and shutdown, and
//! the frames the session sends.

use std::time::Duration;

use actix_ws::AggregatedMessageStream;
use bytestring::ByteString;
use tokio::time::{Instant, MissedTickBehavior};

use super::SessionServices;
use super::close::{CloseReason, Closing, closing};
use super::outbound::{Outbound, Unsent};
use super::protocol::ServerMessage;
use super::rate::RateLimiter;
use super::subscriptions::Subscriptions;
use crate::auth::{AuthError, Principal};

/// How long a connection without a token may take to send `auth`.
const AUTH_DEADLINE: Duration = Duration::from_secs(5);

/// One client's session.
pub(super) struct Connection {
    pub(super) services: SessionServices,
    pub(super) outbound: Outbound,
    connection_id: String,
    pub(super) principal: Option<Principal>,
    /// When `principal`'s token expires, as a timer deadline.
    token_deadline: Option<Instant>,
    pub(super) subscriptions: Subscriptions,
    /// Malformed or unknown messages so far.
    pub(super) malformed: u32,
}

/// Whether a client last heard at `last_heard` has been silent for two ping
/// intervals at the tick that was `due`. Measured from when the tick was due,
/// not from when the loop got to it, so the verdict does not hinge on timer
/// lateness: a client silent since the connection opened is closed at the
/// second tick exactly, not a whole interval later. A frame read after the
/// tick was due counts as heard (the silence saturates to zero).
fn silent_for_two_intervals(due: Instant, last_heard: Instant, ping_every: Duration) -> bool {
    due.saturating_duration_since(last_heard) >= ping_every * 2
}

impl Connection {
    pub(super) fn new(
        services: SessionServices,
        outbound: Outbound,
        connection_id: String,
    ) -> Connection {
        Connection {
            services,
            outbound,
            connection_id,
            principal: None,
            token_deadline: None,
            subscriptions: Subscriptions::default(),
            malformed: 0,
        }
    }

    pub(super) async fn serve(
        &mut self,
        principal: Result<Option<Principal>, AuthError>,
        mut messages: AggregatedMessageStream,
    ) -> Closing {
        match principal {
            Ok(Some(principal)) => {
                if let Err(closing) = self.authenticated(principal) {
                    return closing;
                }
            }
            Ok(None) => {}
            Err(error) => return closing(CloseReason::Unauthenticated, error.to_string()),
        }
        let ping_every = self.services.streams.ws_ping;
        // The ping clock and the silence start at the same instant, so a
        // client that never answers is silent exactly 2 × `ping_every` at the
        // second tick (see `silent_for_two_intervals`).
        let opened = Instant::now();
        let mut ping = tokio::time::interval_at(opened + ping_every, ping_every);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = opened;
        let mut rate = RateLimiter::new(
            self.services.limits.max_messages_per_sec,
            std::time::Instant::now(),
        );
        let auth_deadline = Instant::now() + AUTH_DEADLINE;
        // Made once and kept pinned: a new timer or shutdown waiter on every
        // turn of the loop would register and unregister once per event.
        let mut shutdown = self.services.shutdown.signal();
        let expiry = tokio::time::sleep_until(self.token_deadline.unwrap_or(auth_deadline));
        tokio::pin!(expiry);
        loop {
            // An `auth` message may have moved the deadline.
            let due = self.token_deadline.unwrap_or(auth_deadline);
            if expiry.deadline() != due {
                expiry.as_mut().reset(due);
            }
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    return closing(CloseReason::ShuttingDown, "server shutting down");
                }
                frame = messages.recv() => {
                    last_heard = Instant::now();
                    let Some(frame) = frame else {
                        return closing(CloseReason::ClientLeft, "");
                    };
                    if !rate.allow(std::time::Instant::now()) {
                        return closing(CloseReason::Policy, "message rate limit exceeded");
                    }
                    // Boxed: handling a client message may query the log,
                    // and inlining those futures would make every idle
                    // session's own future kilobytes larger. Client
                    // messages are few (rate-limited); events are many.
                    if let Err(closing) = Box::pin(self.on_frame(frame)).await {
                        return closing;
                    }
                }
                // Events are taken only while the outbound queue has room,
                // so a slow reader holds its feeds back instead of
                // overflowing; see `outbound`.
                update = self.subscriptions.next(), if self.outbound.has_room() => {
                    if let Err(closing) = self.on_update(update).await {
                        return closing;
                    }
                }
                () = self.outbound.room(), if !self.outbound.has_room() => {}
                due = ping.tick() => {
                    if silent_for_two_intervals(due, last_heard, ping_every) {
                        return closing(CloseReason::HeartbeatTimeout, "no answer to pings");
                    }
                    if self.outbound.ping() == Err(Unsent::Closed) {
                        return closing(CloseReason::ClientLeft, "");
                    }
                }
                () = &mut expiry => {
                    let message = if self.principal.is_some() {
                        "token expired: reconnect or send a fresh `auth`"
                    } else {
                        "no token: send {\"type\":\"auth\",\"token\":\"…\"} within 5 s"
                    };
                    return closing(CloseReason::Unauthenticated, message);
                }
            }
        }
    }

    pub(super) fn authenticated(&mut self, principal: Principal) -> Result<(), Closing> {
        match &self.principal {
            Some(current) if current.user() != principal.user() => {
                return Err(closing(
                    CloseReason::Forbidden,
                    "a connection cannot change its user",
                ));
            }
            Some(_) => {
                // A refreshed token: new subscriptions use its claims.
                self.token_deadline = Some(Instant::now() + principal.time_left());
                self.principal = Some(principal);
                return Ok(());
            }
            None => {
                if !self.services.admission.promote() {
                    return Err(closing(
                        CloseReason::Full,
                        "the server holds as many connections as it is configured for; retry",
                    ));
                }
                self.token_deadline = Some(Instant::now() + principal.time_left());
                self.principal = Some(principal);
            }
        }
        let welcome = ServerMessage::Welcome {
            connection_id: &self.connection_id,
            head: self.services.log.bounds().head,
            heartbeat_ms: u64::try_from(self.services.streams.ws_ping.as_millis())
                .unwrap_or(u64::MAX),
        };
        self.send(welcome.encode())
    }

    pub(super) fn send(&self, text: ByteString) -> Result<(), Closing> {
        Ok(self.outbound.text(text)?)
    }

    /// Sends a text frame already encoded (an event's, shared).
    pub(super) fn send_frame(&self, frame: bytes::Bytes) -> Result<(), Closing> {
        Ok(self.outbound.frame(frame)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(30);

    #[test]
    fn a_client_silent_since_it_connected_is_dead_at_the_second_tick() {
        let opened = Instant::now();

        assert!(!silent_for_two_intervals(opened + EVERY, opened, EVERY));
        assert!(silent_for_two_intervals(opened + EVERY * 2, opened, EVERY));
    }

    #[test]
    fn a_client_last_heard_after_a_tick_is_closed_at_the_first_tick_two_intervals_on() {
        let opened = Instant::now();
        let pong = opened + EVERY + Duration::from_millis(40);

        assert!(!silent_for_two_intervals(opened + EVERY * 2, pong, EVERY));
        assert!(!silent_for_two_intervals(opened + EVERY * 3, pong, EVERY));
        assert!(silent_for_two_intervals(opened + EVERY * 4, pong, EVERY));
    }

    #[test]
    fn a_frame_read_after_the_tick_was_due_counts_as_heard() {
        let opened = Instant::now();
        let late_frame = opened + EVERY * 2 + Duration::from_millis(5);

        assert!(!silent_for_two_intervals(
            opened + EVERY * 2,
            late_frame,
            EVERY
        ));
    }
}
