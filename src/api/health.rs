//! Liveness, readiness and metrics.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use crate::error::ApiError;

/// The process is alive and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The log answers, it can write, and the server is not draining. Writing
/// is checked apart from answering: on a full disk or read-only files the
/// log still answers reads while every publish is refused, and a node in
/// that state should not be sent publishers.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.shutdown.is_draining() {
        return Err(ApiError::Unavailable {
            code: "shutting_down",
            message: "the server is shutting down".into(),
        });
    }
    state.log.ping().await.map_err(|error| {
        tracing::warn!(error = %error, "readiness check: the log does not answer");
        ApiError::Unavailable {
            code: "log_unavailable",
            message: "the event log does not answer".into(),
        }
    })?;
    state.log.check_writable().await.map_err(|error| {
        tracing::warn!(error = %error, "readiness check: the log cannot write");
        ApiError::Unavailable {
            code: "log_unavailable",
            message: "the event log cannot write: publishes are refused until it can".into(),
        }
    })?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready", "head": state.log.bounds().head})))
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let bounds = state.log.bounds();
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(
            state
                .metrics
                .render(bounds.head.get(), bounds.oldest_id().get()),
        )
}
