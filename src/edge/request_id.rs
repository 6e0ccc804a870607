//! A span per request, named by its `X-Request-Id`: taken from the client
//! or a proxy in front when it is a plain token, generated otherwise, and
//! sent back with the answer, so one id ties a client's report, the proxy's
//! log and ours together.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest id taken from a request; longer ones are replaced.
const MAX_ID_LEN: usize = 128;

/// Runs the request inside its span and names the answer with its id.
pub async fn within_span(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_plain_token(id))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.path(),
    );
    let mut response = next.call(req).instrument(span).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    Ok(response.map_into_boxed_body())
}

/// Letters, digits and `-_.:`, 1 to 128 of them: what ids look like, and
/// nothing that could forge a log line.
fn is_plain_token(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_tokens_are_taken_as_ids() {
        assert!(is_plain_token("3f2a-9c_1.x:y"));
        assert!(!is_plain_token(""));
        assert!(!is_plain_token("a b"));
        assert!(!is_plain_token("line\nbreak"));
        assert!(!is_plain_token(&"a".repeat(MAX_ID_LEN + 1)));
    }
}
