//! `GET /events/missed?since=&topics=&limit=`: replay by pages for clients
//! that reconnect over plain HTTP.

use std::io::Write;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{AppState, authenticate, reader_filter};
use crate::cursor::Since;
use crate::error::ApiError;
use crate::limits::{DEFAULT_PAGE, MAX_PAGE, MAX_TOPIC_PATTERNS};
use crate::replay::{Unresumable, read_page};
use crate::store::Resolution;

#[derive(Deserialize)]
pub struct MissedQuery {
    since: Option<String>,
    topics: Option<String>,
    limit: Option<String>,
}

pub async fn missed(
    req: HttpRequest,
    query: web::Query<MissedQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let view = principal.view();
    let since = parse_since(query.since.as_deref())?;
    let limit = parse_limit(query.limit.as_deref())?;
    let filter = reader_filter(principal, query.topics.as_deref(), MAX_TOPIC_PATTERNS)?;

    let cursor = match state.log.resolve(since).await? {
        Resolution::Resumable(cursor) => cursor,
        Resolution::Expired(bounds) => return Err(ApiError::Gone(Unresumable::Expired(bounds))),
        Resolution::Ahead(bounds) => return Err(ApiError::Gone(Unresumable::Ahead(bounds))),
    };
    // Read after resolving, so the cursor is never above it.
    let head = state.log.bounds().head;
    let page = read_page(
        &state.log,
        &state.hub,
        &state.metrics,
        &filter,
        cursor,
        head,
        limit,
    )
    .await?
    .map_err(ApiError::Gone)?;

    // Assembled by hand from each event's encoding, which a 10,000-event
    // page makes worth it.
    let mut body = Vec::with_capacity(64 + page.events.len() * 256);
    body.extend_from_slice(b"{\"events\":[");
    for (i, event) in page.events.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event.json(view));
    }
    let _ = write!(
        body,
        "],\"next_since\":{},\"has_more\":{},\"head\":{}}}",
        page.covered_through, page.has_more, head
    );
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-store"))
        .body(body))
}

fn parse_since(raw: Option<&str>) -> Result<Since, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::BadRequest {
        code: "invalid_cursor",
        message: "`since` is required: the id of the last event you processed (0 for everything)"
            .into(),
    })?;
    raw.parse()
        .map_err(|e: crate::cursor::InvalidCursor| ApiError::BadRequest {
            code: "invalid_cursor",
            message: e.to_string(),
        })
}

fn parse_limit(raw: Option<&str>) -> Result<u32, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_PAGE);
    };
    match raw.parse::<u32>() {
        Ok(limit) if (1..=MAX_PAGE).contains(&limit) => Ok(limit),
        _ => Err(ApiError::BadRequest {
            code: "invalid_limit",
            message: format!("`limit` must be a whole number from 1 to {MAX_PAGE}"),
        }),
    }
}
