//! `GET /events/changes?since=&topics=&types=&limit=`: which entities
//! changed after a cursor, the latest readable event of each, from the
//! entity index (see [`crate::store::changes`]). `since=0` is the initial state.

use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::page::{PageQuery, PageRequest, page_fields, page_response};
use crate::domain::cursor::Since;
use crate::domain::resume::Unresumable;
use crate::error::ApiError;
use crate::store::ReadError;
use crate::store::changes::read_changes;

pub async fn changes(
    req: HttpRequest,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let PageRequest {
        viewer,
        since,
        limit,
        filter,
    } = PageRequest::read(&req, &state, &query)?;

    // The log's verdict on the cursor matters only when it is ahead: one
    // the log has pruned past is what the entity index is for (a timestamp
    // is turned into an id by the log, so one older than it stays expired).
    let cursor = match (state.log.resolve(since).await, since) {
        (Ok(cursor), _) => cursor,
        (Err(ReadError::Unresumable(Unresumable::Expired(_))), Since::Id(cursor)) => cursor,
        (Err(error), _) => return Err(error.into()),
    };
    // Read after resolving, so the cursor is never above it.
    let head = state.log.bounds().head;
    let page = read_changes(&state.log, &filter, cursor, head, limit).await?;

    let mut fields = page_fields(page.covered_through, page.has_more, head);
    fields.push_str(if page.log_complete {
        ",\"log_complete\":true"
    } else {
        ",\"log_complete\":false"
    });
    Ok(page_response(&page.events, viewer, &fields))
}
