//! Cross-origin access for browser front ends served from other origins.

use actix_cors::Cors;
use actix_web::http::Uri;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName};

/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE_SECS: usize = 3600;

/// CORS for the origins `PUSHLOG_ALLOWED_ORIGINS` names: credentials (the
/// `pushlog_token` cookie) included, since each origin was named. `*`
/// allows every origin, but then without credentials: a cookie must never
/// let any site read a user's events. With no origin named, no cross-origin
/// request is answered with CORS headers, and browsers keep the answer from
/// the page.
pub fn for_origins(allowed: &[String]) -> Cors {
    let cors = Cors::default()
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            AUTHORIZATION,
            CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ])
        .max_age(PREFLIGHT_MAX_AGE_SECS);
    if allowed.iter().any(|origin| origin == "*") {
        return cors.allow_any_origin();
    }
    let named: Vec<&String> = allowed
        .iter()
        .filter(|origin| {
            let valid = origin.parse::<Uri>().is_ok_and(|uri| uri.scheme().is_some());
            if !valid {
                tracing::warn!(%origin, "PUSHLOG_ALLOWED_ORIGINS: not an origin (scheme://host[:port]); ignored");
            }
            valid
        })
        .collect();
    if named.is_empty() {
        return cors;
    }
    named
        .into_iter()
        .fold(cors, |cors, origin| cors.allowed_origin(origin))
        .supports_credentials()
}
