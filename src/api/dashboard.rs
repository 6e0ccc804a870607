//! `GET /` and `GET /assets/{file}`: the live dashboard, embedded in the
//! binary so a deployment is one file. The page authenticates like any other
//! client, with a token it is given; serving it needs none.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};

use crate::error::ApiError;

/// (name, content type, bytes) of every asset, built into the binary.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../dashboard/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../dashboard/style.css"),
    ),
    (
        "pushlog-client.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../dashboard/pushlog-client.js"),
    ),
];

const INDEX: &[u8] = include_bytes!("../../dashboard/index.html");

pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
        // The page is tiny and changes with the binary: always revalidate.
        .insert_header((CACHE_CONTROL, "no-cache"))
        .body(INDEX)
}

pub async fn asset(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (_, content_type, bytes) = ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name.as_str())
        .ok_or_else(|| ApiError::NotFound {
            message: format!("no asset {:?}", name.as_str()),
        })?;
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, *content_type))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .body(*bytes))
}
