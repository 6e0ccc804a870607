//! `GET /ws`: checks what must be refused before the upgrade (draining, the
//! connection limit, a cookie from a foreign origin), then hands the socket
//! to the WebSocket session. Token problems are told with close code 4001
//! after the upgrade, because a browser cannot see an HTTP status there.

use actix_http::ws::HandshakeError;
use actix_web::ResponseError;
use actix_web::http::header::{HOST, HeaderValue, ORIGIN, SEC_WEBSOCKET_VERSION, UPGRADE};
use actix_web::{HttpRequest, HttpResponse, web};

use super::client_address::client_address;
use super::{AppState, admit_connection, refuse_when_draining};
use crate::auth::{TokenSource, extract_token};
use crate::error::ApiError;
use crate::fanout::Shard;
use crate::limits::Admission;
use crate::sessions::ws::{self, SessionServices, names_websocket};

pub async fn ws(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    shard: web::Data<Shard>,
) -> Result<HttpResponse, ApiError> {
    let token = extract_token(&req);
    if let Ok(Some((_, TokenSource::Cookie))) = &token {
        check_origin(&req, &state.allowed_origins)?;
    }
    let principal = token.and_then(|found| match found {
        Some((token, _)) => state.auth.verify(&token).map(Some),
        None => Ok(None),
    });
    let admission = match &principal {
        Ok(Some(_)) => Admission::Admitted(admit_connection(&state)?),
        // Not authenticated (yet): a place from the pending budget, so
        // that this connection takes no slot until it shows a token.
        Ok(None) | Err(_) => {
            refuse_when_draining(&state)?;
            let permit = state
                .pending
                .try_acquire(client_address(&req, &state.limits.trusted_proxies))
                .ok_or_else(|| ApiError::Unavailable {
                    code: "too_many_pending",
                    message: "too many connections are waiting to authenticate; send the token with the upgrade request, or retry".into(),
                })?;
            Admission::Pending {
                permit,
                connections: state.connections.clone(),
            }
        }
    };
    match verify_handshake(&req) {
        Ok(()) => {}
        Err(HandshakeError::UnsupportedVersion) => {
            // RFC 6455 §4.4: say which version this server speaks.
            let mut refused = not_a_websocket(HandshakeError::UnsupportedVersion).error_response();
            refused
                .headers_mut()
                .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            return Ok(refused);
        }
        Err(error) => return Err(not_a_websocket(error)),
    }
    let services = SessionServices {
        log: state.log.clone(),
        shard: Shard::clone(&shard),
        auth: state.auth.clone(),
        metrics: state.metrics.clone(),
        limits: state.limits.clone(),
        streams: state.streams.clone(),
        shutdown: state.shutdown.clone(),
        admission,
    };
    ws::open(services, principal, &req, body).map_err(|error| ApiError::BadRequest {
        code: "not_a_websocket",
        message: error.to_string(),
    })
}

/// actix's handshake checks, after checking that `Upgrade` names `websocket`
/// as a token (actix looks for the substring: `Upgrade: notwebsocket` would
/// do).
fn verify_handshake(req: &HttpRequest) -> Result<(), HandshakeError> {
    let named = req
        .headers()
        .get(UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(names_websocket);
    if !named {
        return Err(HandshakeError::NoWebsocketUpgrade);
    }
    actix_http::ws::verify_handshake(req.head())
}

fn not_a_websocket(error: HandshakeError) -> ApiError {
    ApiError::BadRequest {
        code: "not_a_websocket",
        message: format!("this endpoint speaks WebSocket only: {error}"),
    }
}

/// A cookie rides along on any request the browser makes, including a
/// WebSocket opened by another site's page (cross-site WebSocket hijacking).
/// So when the cookie is the credential, the page's origin must be ours or
/// on the allow-list. Non-browser clients send no `Origin` and are not at
/// risk.
fn check_origin(req: &HttpRequest, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(ORIGIN) else {
        return Ok(());
    };
    // An `Origin` that is not text is no origin we could allow.
    let origin = origin.to_str().unwrap_or("<not text>");
    let own_host = req.headers().get(HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, host)| host);
    let same_origin = own_host.is_some() && origin_host == own_host;
    if same_origin || allowed.iter().any(|a| a == "*" || a == origin) {
        return Ok(());
    }
    Err(ApiError::Forbidden {
        code: "forbidden_origin",
        message: format!(
            "origin {origin} may not use the pushlog_token cookie here; add it to PUSHLOG_ALLOWED_ORIGINS or send the token explicitly"
        ),
    })
}
