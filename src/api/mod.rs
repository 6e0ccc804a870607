//! HTTP handlers: each reads as a short script from request to response.
//! Parsing happens here, in the handlers; errors are `ApiError`s.

mod changes;
mod client_address;
mod cors;
mod dashboard;
mod health;
mod missed;
mod page;
mod publish;
mod stream;
mod ws;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::{Authenticator, Principal, extract_token};
use crate::domain::event::TopicPattern;
use crate::domain::filter::Filter;
use crate::domain::read_scope::ReadScope;
use crate::domain::type_filter::TypeFilter;
use crate::error::ApiError;
use crate::fanout::Hub;
use crate::limits::{ConnectionLimiter, ConnectionPermit, Limits, PendingLimiter};
use crate::metrics::Metrics;
use crate::sessions::StreamSettings;
use crate::shutdown::Shutdown;
use crate::store::EventLog;

/// Everything a handler may use, shared by all workers.
pub struct AppState {
    pub log: EventLog,
    pub hub: Hub,
    pub auth: Authenticator,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    pub streams: Arc<StreamSettings>,
    /// Origins whose pages may call the API (CORS) and open a WebSocket
    /// with the token cookie.
    pub allowed_origins: Vec<String>,
    pub connections: ConnectionLimiter,
    /// WebSocket connections that have not authenticated yet.
    pub pending: PendingLimiter,
    pub shutdown: Shutdown,
}

/// The stream routes' paths, named once: the edge recognises a stream
/// request by them before actix sees it, and the routes below serve them.
pub const STREAM_PATH: &str = "/events/stream";
pub const WEBSOCKET_PATH: &str = "/ws";

/// Every route the application serves, as (method, path). The OpenAPI test
/// checks `openapi/openapi.yaml` against this list.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/assets/{file}"),
    ("POST", "/events"),
    ("GET", "/events/missed"),
    ("GET", "/events/changes"),
    ("GET", STREAM_PATH),
    ("GET", WEBSOCKET_PATH),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

/// Every route; the ones a browser front end calls from another origin
/// (publish, missed, changes, stream) answer CORS for `allowed_origins`.
pub fn configure(cfg: &mut web::ServiceConfig, allowed_origins: &[String]) {
    let cors = || cors::for_origins(allowed_origins);
    cfg.app_data(web::QueryConfig::default().error_handler(|error, _| {
        ApiError::BadRequest {
            code: "invalid_query",
            message: error.to_string(),
        }
        .into()
    }))
    .service(resource("/", "GET").route(web::get().to(dashboard::index)))
    .service(resource("/assets/{file}", "GET").route(web::get().to(dashboard::asset)))
    .service(
        resource("/events", "POST")
            .wrap(cors())
            .route(web::post().to(publish::publish)),
    )
    .service(
        resource("/events/missed", "GET")
            .wrap(cors())
            .route(web::get().to(missed::missed)),
    )
    .service(
        resource("/events/changes", "GET")
            .wrap(cors())
            .route(web::get().to(changes::changes)),
    )
    .service(
        resource(STREAM_PATH, "GET")
            .wrap(cors())
            .route(web::get().to(stream::stream)),
    )
    .service(resource(WEBSOCKET_PATH, "GET").route(web::get().to(ws::ws)))
    .service(resource("/healthz", "GET").route(web::get().to(health::healthz)))
    .service(resource("/readyz", "GET").route(web::get().to(health::readyz)))
    .service(resource("/metrics", "GET").route(web::get().to(health::metrics)));
}

/// A route's path, answering any method it does not serve with `405
/// method_not_allowed`, `Allow: <allow>` and the JSON error body of every
/// other error (actix's own 405 has no body, and a bare `.route` falls
/// through to the 404 of unknown paths).
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: HttpRequest| async move {
        HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, allow))
            .json(serde_json::json!({
                "error": "method_not_allowed",
                "message": format!("{} {} is not served; this path answers {allow}", req.method(), req.path()),
            }))
    }))
}

/// Unknown routes answer in the same JSON shape as every other error.
pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound {
        message: format!("no route {} {}", req.method(), req.path()),
    })
}

/// The caller's verified identity, or `401`.
pub(crate) fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Principal, ApiError> {
    let (token, _source) = extract_token(req)?.ok_or(crate::auth::AuthError::Missing)?;
    Ok(state.auth.verify(&token)?)
}

/// `503 shutting_down` once the server drains.
pub(crate) fn refuse_when_draining(state: &AppState) -> Result<(), ApiError> {
    if state.shutdown.is_draining() {
        return Err(ApiError::Unavailable {
            code: "shutting_down",
            message: "the server is shutting down; reconnect to another node or retry".into(),
        });
    }
    Ok(())
}

/// A slot for one more long-lived connection (SSE or WebSocket), or `503`
/// when draining or full: refused before any work is done for it.
pub(crate) fn admit_connection(state: &AppState) -> Result<ConnectionPermit, ApiError> {
    refuse_when_draining(state)?;
    state
        .connections
        .try_acquire()
        .ok_or_else(|| ApiError::Unavailable {
            code: "too_many_connections",
            message: "the server holds as many connections as it is configured for".into(),
        })
}

/// Parses `?topics=` and `?types=` and checks each topic pattern against
/// what the token may read: `400` for a malformed pattern or more than `max_patterns` of
/// either kind, `403` for a topic the token can never read.
pub(crate) fn reader_filter(
    scope: ReadScope,
    topics: Option<&str>,
    types: Option<&str>,
    max_patterns: usize,
) -> Result<Filter, ApiError> {
    let patterns =
        TopicPattern::parse_list(topics.unwrap_or("")).map_err(|reason| ApiError::BadRequest {
            code: "invalid_topic",
            message: format!("topics: {reason}"),
        })?;
    if patterns.len() > max_patterns {
        return Err(ApiError::BadRequest {
            code: "too_many_topics",
            message: format!("at most {max_patterns} topic patterns per request"),
        });
    }
    let types = TypeFilter::parse_list(types.unwrap_or(""), max_patterns).map_err(|reason| {
        ApiError::BadRequest {
            code: "invalid_type_filter",
            message: format!("types: {reason}"),
        }
    })?;
    if let Some(denied) = patterns.iter().find(|p| !scope.may_subscribe(p)) {
        return Err(ApiError::Forbidden {
            code: "forbidden_topic",
            message: format!("this token may not read topic {denied}"),
        });
    }
    Ok(Filter {
        patterns,
        types,
        scope,
    })
}
