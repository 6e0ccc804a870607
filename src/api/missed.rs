//! `GET /events/missed?since=&topics=&types=&limit=`: replay by pages for clients
//! that reconnect over plain HTTP.

use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::page::{PageQuery, PageRequest, page_fields, page_response};
use crate::error::ApiError;
use crate::sessions::replay::read_page;

pub async fn missed(
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

    let cursor = state.log.resolve(since).await?;
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
    .await?;

    Ok(page_response(
        &page.events,
        viewer,
        &page_fields(page.covered_through, page.has_more, head),
    ))
}
