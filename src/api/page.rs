//! What the paged read routes (`/events/missed`, `/events/changes`) share:
//! their query and how it is read, and the JSON page they answer with.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{AppState, authenticate, reader_filter};
use crate::domain::cursor::Since;
use crate::domain::filter::Filter;
use crate::domain::wire::{SharedEvent, Viewer};
use crate::error::ApiError;
use crate::limits::{DEFAULT_PAGE, MAX_PAGE, MAX_TOPIC_PATTERNS};

/// `?since=&topics=&types=&limit=`, as sent.
#[derive(Deserialize)]
pub struct PageQuery {
    since: Option<String>,
    topics: Option<String>,
    types: Option<String>,
    limit: Option<String>,
}

/// A page request read and checked: who asks, from where, how much, and
/// what they may and want to read.
pub(super) struct PageRequest {
    pub viewer: Viewer,
    pub since: Since,
    pub limit: u32,
    pub filter: Filter,
}

impl PageRequest {
    /// Authenticates first, so that a client without a token learns nothing
    /// from the parameters' errors.
    pub(super) fn read(
        req: &HttpRequest,
        state: &AppState,
        query: &PageQuery,
    ) -> Result<PageRequest, ApiError> {
        let principal = authenticate(req, state)?;
        let viewer = principal.viewer();
        let since = parse_since(query.since.as_deref())?;
        let limit = parse_limit(query.limit.as_deref())?;
        let filter = reader_filter(
            principal.scope,
            query.topics.as_deref(),
            query.types.as_deref(),
            MAX_TOPIC_PATTERNS,
        )?;
        Ok(PageRequest {
            viewer,
            since,
            limit,
            filter,
        })
    }
}

/// `since`, required: an event id or a timestamp.
fn parse_since(raw: Option<&str>) -> Result<Since, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::BadRequest {
        code: "invalid_cursor",
        message: "`since` is required: the id of the last event you processed (0 for everything)"
            .into(),
    })?;
    raw.parse().map_err(
        |e: crate::domain::cursor::InvalidCursor| ApiError::BadRequest {
            code: "invalid_cursor",
            message: e.to_string(),
        },
    )
}

/// `limit`, from 1 to `MAX_PAGE`; `DEFAULT_PAGE` when absent.
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

/// `{"events":[…],<fields>}` as `200`, uncacheable. `fields` are the
/// page's other members, already written as JSON (`"next_since":5,…`).
///
/// Assembled by hand from each event's encoding, shared by every reader
/// of the same viewer, which a 10,000-event page makes worth it.
pub(super) fn page_response(
    events: &[Arc<SharedEvent>],
    viewer: Viewer,
    fields: &str,
) -> HttpResponse {
    let mut body = Vec::with_capacity(64 + fields.len() + events.len() * 256);
    body.extend_from_slice(b"{\"events\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event.json(viewer));
    }
    let _ = write!(body, "],{fields}}}");
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

/// The members every page has besides its events.
pub(super) fn page_fields(
    next_since: impl std::fmt::Display,
    has_more: bool,
    head: impl std::fmt::Display,
) -> String {
    let mut fields = String::with_capacity(64);
    let _ = write!(
        fields,
        "\"next_since\":{next_since},\"has_more\":{has_more},\"head\":{head}"
    );
    fields
}
