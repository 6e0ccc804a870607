//! `POST /events`: validate everything, then append all or nothing.

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::value::RawValue;

use super::{AppState, authenticate};
use crate::domain::event::{EventDraft, InvalidEvent, NewEvent, PayloadRules};
use crate::error::ApiError;
use crate::limits::MAX_BATCH;
use crate::store::PublishedEvent;

#[derive(Serialize)]
struct Published {
    events: Vec<PublishedEvent>,
}

pub async fn publish(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // The drain line. A publish that got here before the drain began is
    // finished: the server waits for in-flight requests before it stops the
    // log writer, so it commits and is answered. One that arrives after is
    // refused whole, before anything of it is read, so no client is left
    // wondering whether a publish cut off by the shutdown landed.
    let arrived = std::time::Instant::now();
    if state.shutdown.is_draining() {
        return Err(ApiError::Unavailable {
            code: "shutting_down",
            message: "the server is shutting down; nothing was appended: publish again, to another node or after the restart".into(),
        });
    }
    let principal = authenticate(&req, &state)?;
    if !principal.is_publisher() {
        return Err(ApiError::Forbidden {
            code: "forbidden",
            message: "publishing needs a token with the role `publisher`".into(),
        });
    }
    require_json(&req)?;
    let body = read_body(body, state.limits.max_body_bytes).await?;
    let events = parse_events(&body, state.limits.payload)?;
    let count = events.len();
    let appended = state.log.append(events).await?;
    state
        .metrics
        .publish_seconds
        .observe(arrived.elapsed().as_secs_f64());
    let status = if appended.created {
        state.metrics.events_appended.inc_by(count as u64);
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    state.metrics.publish_requests.inc();
    Ok(HttpResponse::build(status).json(Published {
        events: appended.events,
    }))
}

fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// Reads the body up to `limit` bytes; beyond it, `413` without reading on.
async fn read_body(mut body: web::Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let mut buffer = web::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| ApiError::BadRequest {
            code: "bad_body",
            message: format!("could not read the request body: {error}"),
        })?;
        if buffer.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge {
                code: "body_too_large",
                message: format!("the request body is larger than {limit} bytes"),
            });
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer)
}

/// One event or an array of 1 to 1000, each validated. Syntax errors are
/// `400`; well-formed JSON that is not a valid event is `422`.
fn parse_events(body: &[u8], rules: PayloadRules) -> Result<Vec<NewEvent>, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let drafts: Vec<Box<RawValue>> = match first {
        Some(b'[') => serde_json::from_slice(body).map_err(json_error)?,
        Some(_) => vec![serde_json::from_slice(body).map_err(json_error)?],
        None => {
            return Err(ApiError::BadRequest {
                code: "malformed_json",
                message: "the body is empty".into(),
            });
        }
    };
    if drafts.is_empty() {
        return Err(ApiError::Unprocessable {
            code: "invalid_event",
            message: "the array holds no events".into(),
        });
    }
    if drafts.len() > MAX_BATCH {
        return Err(ApiError::TooLarge {
            code: "batch_too_large",
            message: format!(
                "{} events in one request; at most {MAX_BATCH}",
                drafts.len()
            ),
        });
    }
    let batch = drafts.len() > 1 || first == Some(&b'[');
    drafts
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            let at = |message: String| {
                if batch {
                    format!("events[{index}]: {message}")
                } else {
                    message
                }
            };
            let draft: EventDraft =
                serde_json::from_str(raw.get()).map_err(|error| ApiError::Unprocessable {
                    code: "invalid_event",
                    message: at(error.to_string()),
                })?;
            draft.validate(rules).map_err(|invalid| match invalid {
                InvalidEvent::PayloadTooLarge { .. } => ApiError::TooLarge {
                    code: "payload_too_large",
                    message: at(invalid.to_string()),
                },
                InvalidEvent::Field { .. } => ApiError::Unprocessable {
                    code: "invalid_event",
                    message: at(invalid.to_string()),
                },
            })
        })
        .collect()
}

fn json_error(error: serde_json::Error) -> ApiError {
    match error.classify() {
        serde_json::error::Category::Data => ApiError::Unprocessable {
            code: "invalid_event",
            message: format!("expected an event object or an array of them: {error}"),
        },
        _ => ApiError::BadRequest {
            code: "malformed_json",
            message: format!("the body is not valid JSON: {error}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(max_bytes: usize) -> PayloadRules {
        PayloadRules {
            max_bytes,
            max_depth: 64,
        }
    }

    fn code(result: Result<Vec<NewEvent>, ApiError>) -> &'static str {
        result.err().map(|e| e.code()).unwrap_or("ok")
    }

    #[test]
    fn one_event_or_an_array_is_accepted() {
        assert_eq!(
            code(parse_events(br#"{"topic":"a","type":"t"}"#, rules(100))),
            "ok"
        );
        assert_eq!(
            parse_events(
                br#"[{"topic":"a","type":"t"},{"topic":"b","type":"t"}]"#,
                rules(100)
            )
            .unwrap()
            .len(),
            2
        );
    }

    #[test]
    fn syntax_errors_are_malformed_and_shape_errors_invalid() {
        assert_eq!(
            code(parse_events(b"{not json", rules(100))),
            "malformed_json"
        );
        assert_eq!(code(parse_events(b"", rules(100))), "malformed_json");
        assert_eq!(code(parse_events(b"42", rules(100))), "invalid_event");
        assert_eq!(code(parse_events(b"[]", rules(100))), "invalid_event");
        assert_eq!(
            code(parse_events(br#"{"topic":"a"}"#, rules(100))),
            "invalid_event"
        );
        assert_eq!(
            code(parse_events(
                br#"{"topic":"a","type":"t","id":5}"#,
                rules(100)
            )),
            "invalid_event"
        );
    }

    #[test]
    fn the_bad_event_of_a_batch_is_named_by_index() {
        let error = parse_events(
            br#"[{"topic":"a","type":"t"},{"topic":"b c","type":"t"}]"#,
            rules(100),
        )
        .unwrap_err();
        assert!(error.to_string().starts_with("events[1]: topic"), "{error}");
    }

    #[test]
    fn oversized_payloads_and_batches_are_too_large() {
        assert_eq!(
            code(parse_events(
                br#"{"topic":"a","type":"t","payload":"xxxxxxxx"}"#,
                rules(4)
            )),
            "payload_too_large"
        );
        let many = format!("[{}]", vec![r#"{"topic":"a","type":"t"}"#; 1001].join(","));
        assert_eq!(
            code(parse_events(many.as_bytes(), rules(100))),
            "batch_too_large"
        );
    }
}
