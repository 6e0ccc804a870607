//! The one error type that becomes an HTTP response:
//! `{"error": "<machine_code>", "message": "<human text>"}` with the status
//! the contract gives. Internals are logged, never sent.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::auth::AuthError;
use crate::domain::event::EventId;
use crate::domain::resume::Unresumable;
use crate::store::{AppendError, AppendRejected, ReadError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    TooLarge { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { message: String },
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("cannot resume from this cursor")]
    Gone(Unresumable),
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    #[error("internal error")]
    Internal(#[source] StoreError),
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    oldest_id: Option<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    head: Option<EventId>,
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(AuthError::Missing) => "missing_token",
            ApiError::Unauthenticated(AuthError::Expired) => "token_expired",
            ApiError::Unauthenticated(AuthError::Invalid(_)) => "invalid_token",
            ApiError::Forbidden { code, .. }
            | ApiError::BadRequest { code, .. }
            | ApiError::TooLarge { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::Unavailable { code, .. } => code,
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Gone(Unresumable::Expired(_)) => "cursor_expired",
            ApiError::Gone(Unresumable::Ahead(_)) => "cursor_unknown",
            ApiError::Internal(_) => "internal",
        }
    }

    fn human_message(&self) -> String {
        match self {
            ApiError::Gone(Unresumable::Expired(bounds)) => format!(
                "retention has deleted events after this cursor; the oldest id left is {}: refetch your state, then resume from {}",
                bounds.oldest_id(),
                bounds.head
            ),
            ApiError::Gone(Unresumable::Ahead(bounds)) => format!(
                "the cursor is beyond the newest event ({}): it comes from another or a restored log; refetch your state, then resume from {}",
                bounds.head, bounds.head
            ),
            ApiError::Internal(_) => "something went wrong on our side; it has been logged".into(),
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(source) = self {
            tracing::error!(error = %source, cause = ?source, "request failed");
        }
        let (oldest_id, head) = match self {
            ApiError::Gone(unresumable) => {
                let bounds = unresumable.bounds();
                (Some(bounds.oldest_id()), Some(bounds.head))
            }
            _ => (None, None),
        };
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthenticated(_)) {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"pushlog\""),
            ));
        }
        if matches!(self, ApiError::Unavailable { .. }) {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        response.json(Body {
            error: self.code(),
            message: self.human_message(),
            oldest_id,
            head,
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::WriterGone | StoreError::CommitFailed => ApiError::Unavailable {
                code: "log_unavailable",
                message: format!("{error}; retry the request"),
            },
            ref unreachable if unreachable.is_unreachable() => ApiError::Unavailable {
                code: "log_unavailable",
                message: "the event log cannot be reached; retry the request".into(),
            },
            other => ApiError::Internal(other),
        }
    }
}

/// The one place an unresumable cursor becomes `410`; the streams say the
/// same with a `reset` frame.
impl From<ReadError> for ApiError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Unresumable(unresumable) => ApiError::Gone(unresumable),
            ReadError::Store(store) => store.into(),
        }
    }
}

impl From<AppendError> for ApiError {
    fn from(error: AppendError) -> Self {
        match error {
            AppendError::Rejected(rejected @ AppendRejected::DuplicateKey { .. }) => {
                ApiError::Unprocessable {
                    code: "duplicate_key",
                    message: rejected.to_string(),
                }
            }
            AppendError::Rejected(rejected @ AppendRejected::KeyConflict { .. }) => {
                ApiError::Unprocessable {
                    code: "idempotency_conflict",
                    message: rejected.to_string(),
                }
            }
            AppendError::Store(store) => store.into(),
        }
    }
}
