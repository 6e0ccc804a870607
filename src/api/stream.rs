//! `GET /events/stream`: authenticate, parse the resume point, open a feed,
//! and hand it to the SSE transport.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{AppState, admit_connection, authenticate, reader_filter};
use crate::domain::cursor::Since;
use crate::error::ApiError;
use crate::fanout::Shard;
use crate::limits::MAX_TOPIC_PATTERNS;
use crate::metrics::GaugeGuard;
use crate::sessions::replay::{Feed, Start};
use crate::sessions::sse;
use crate::store::ReadError;

#[derive(Deserialize)]
pub struct StreamQuery {
    topics: Option<String>,
    types: Option<String>,
    since: Option<String>,
    #[serde(rename = "lastEventId")]
    last_event_id_camel: Option<String>,
    last_event_id: Option<String>,
}

pub async fn stream(
    req: HttpRequest,
    query: web::Query<StreamQuery>,
    state: web::Data<AppState>,
    shard: web::Data<Shard>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let viewer = principal.viewer();
    let token_lifetime = principal.time_left();
    let filter = reader_filter(
        principal.scope,
        query.topics.as_deref(),
        query.types.as_deref(),
        MAX_TOPIC_PATTERNS,
    )?;
    let start = resume_point(&req, &query)?;
    let permit = admit_connection(&state)?;
    let opened = Feed::open(
        state.log.clone(),
        Shard::clone(&shard),
        state.metrics.clone(),
        Arc::new(filter),
        start,
    )
    .await;
    let opened = match opened {
        Ok(feed) => Ok(feed),
        // Told as the stream's first frame, `reset`, not as `410`: an
        // `EventSource` cannot read an error response.
        Err(ReadError::Unresumable(unresumable)) => Err(unresumable),
        Err(ReadError::Store(error)) => return Err(error.into()),
    };
    Ok(sse::respond(
        opened,
        sse::Session {
            viewer,
            heartbeat: state.streams.heartbeat,
            token_lifetime,
            retry_ms: state.streams.sse_retry_ms,
            shutdown: state.shutdown.clone(),
            permit,
            gauge: GaugeGuard::hold(state.metrics.clone(), |m| &m.sse_connections),
            metrics: state.metrics.clone(),
        },
    ))
}

/// `Last-Event-ID` (what `EventSource` sends on its own reconnects), else
/// the `lastEventId`, `last_event_id` or `since` query parameter, else now.
/// Every one given must be a cursor, the ones not used too: a malformed
/// resume point is `400`, never silently ignored.
fn resume_point(req: &HttpRequest, query: &StreamQuery) -> Result<Start, ApiError> {
    let header = req
        .headers()
        .get("Last-Event-ID")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let given = [
        header,
        query.last_event_id_camel.as_deref(),
        query.last_event_id.as_deref(),
        query.since.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(str::trim)
    .filter(|v| !v.is_empty());
    let mut start = Start::Now;
    for raw in given {
        let since = raw.parse::<Since>().map_err(|e| ApiError::BadRequest {
            code: "invalid_cursor",
            message: e.to_string(),
        })?;
        if matches!(start, Start::Now) {
            start = Start::After(since);
        }
    }
    Ok(start)
}
