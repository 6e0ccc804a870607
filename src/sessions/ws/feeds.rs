//! The session's feeds: opening one for a `subscribe`, reopening the rest
//! of one after an `unsubscribe`, and acting on what they deliver.

use std::sync::Arc;

use super::close::{CloseReason, Closing, closing};
use super::connection::Connection;
use super::protocol::{RequestId, ServerMessage};
use super::subscriptions::{FeedToReopen, FeedUpdate};
use crate::auth::Principal;
use crate::domain::cursor::Since;
use crate::domain::event::TopicPattern;
use crate::domain::filter::Filter;
use crate::domain::read_scope::ReadScope;
use crate::domain::resume::{LogBounds, ResetReason};
use crate::domain::type_filter::TypeFilter;
use crate::domain::wire::Viewer;
use crate::metrics::Transport;
use crate::sessions::replay::{Feed, FeedEnd, Start};
use crate::store::ReadError;

impl Connection {
    /// Opens a feed; a cursor the log cannot serve is answered with `reset`
    /// and the subscription continues from the log's head.
    pub(super) async fn open_feed(
        &mut self,
        patterns: Vec<TopicPattern>,
        types: TypeFilter,
        scope: ReadScope,
        start: Start,
        request_id: Option<RequestId>,
        owes_caught_up: bool,
    ) -> Result<(), Closing> {
        let filter = Arc::new(Filter {
            patterns,
            types,
            scope,
        });
        let opened = self.open(filter.clone(), start).await;
        let feed = match opened {
            Ok(feed) => feed,
            Err(ReadError::Unresumable(unresumable)) => {
                self.reset(
                    unresumable.reason(),
                    unresumable.bounds(),
                    request_id.as_ref(),
                )?;
                let from_head = Start::After(Since::Id(unresumable.bounds().head));
                self.open(filter, from_head).await.map_err(|error| {
                    tracing::error!(error = %error, "could not reopen a feed from the head");
                    closing(CloseReason::ServerError, "internal error")
                })?
            }
            Err(ReadError::Store(error)) => {
                tracing::error!(error = %error, "could not open a feed");
                return Err(closing(CloseReason::ServerError, "internal error"));
            }
        };
        self.subscriptions.add(feed, request_id, owes_caught_up);
        Ok(())
    }

    async fn open(&self, filter: Arc<Filter>, start: Start) -> Result<Feed, ReadError> {
        Feed::open(
            self.services.log.clone(),
            self.services.shard.clone(),
            self.services.metrics.clone(),
            filter,
            start,
        )
        .await
    }

    pub(super) async fn reopen(&mut self, feeds: Vec<FeedToReopen>) -> Result<(), Closing> {
        let Some(scope) = self.principal.as_ref().map(|p| p.scope.clone()) else {
            return Ok(());
        };
        for FeedToReopen {
            patterns,
            types,
            cursor,
            request_id,
            owes_caught_up,
        } in feeds
        {
            let start = Start::After(Since::Id(cursor));
            self.open_feed(
                patterns,
                types,
                scope.clone(),
                start,
                request_id,
                owes_caught_up,
            )
            .await?;
        }
        Ok(())
    }

    fn reset(
        &mut self,
        reason: ResetReason,
        bounds: LogBounds,
        request_id: Option<&RequestId>,
    ) -> Result<(), Closing> {
        self.services
            .metrics
            .reset(Transport::WebSocket, reason.as_str());
        self.send(
            ServerMessage::Reset {
                reason,
                oldest_id: bounds.oldest_id(),
                head: bounds.head,
                request_id,
            }
            .encode(),
        )
    }

    pub(super) async fn on_update(&mut self, update: FeedUpdate) -> Result<(), Closing> {
        match update {
            FeedUpdate::Event(event) => {
                let viewer = self
                    .principal
                    .as_ref()
                    .map_or(Viewer::Reader, Principal::viewer);
                self.send_frame(event.ws_frame(viewer))
            }
            FeedUpdate::CaughtUp { head, request_id } => self.send(
                ServerMessage::CaughtUp {
                    head,
                    request_id: request_id.as_ref(),
                }
                .encode(),
            ),
            FeedUpdate::Ended {
                end,
                patterns,
                types,
                request_id,
                owes_caught_up,
            } => match end {
                FeedEnd::Lagged(_) => Err(closing(
                    CloseReason::Lagged,
                    "too far behind: reconnect and resume from your last event id",
                )),
                FeedEnd::Unresumable(unresumable) => {
                    // Retention overtook a long replay: say so, go on live.
                    let bounds = unresumable.bounds();
                    self.reset(unresumable.reason(), bounds, request_id.as_ref())?;
                    let Some(scope) = self.principal.as_ref().map(|p| p.scope.clone()) else {
                        return Ok(());
                    };
                    let start = Start::After(Since::Id(bounds.head));
                    // Boxed: opening a feed queries the log, and this
                    // future is part of every session's own (see `serve`).
                    Box::pin(self.open_feed(
                        patterns,
                        types,
                        scope,
                        start,
                        request_id,
                        owes_caught_up,
                    ))
                    .await
                }
                FeedEnd::Closed => Err(closing(CloseReason::ShuttingDown, "server shutting down")),
                FeedEnd::Store(error) => {
                    tracing::error!(error = %error, "replay read failed");
                    Err(closing(
                        CloseReason::ServerError,
                        "internal error; resume from your last event id",
                    ))
                }
            },
        }
    }
}
