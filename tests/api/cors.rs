//! CORS: a browser front end on another origin may publish, read missed
//! events and stream, as `PUSHLOG_ALLOWED_ORIGINS` allows, preflight
//! included; any other origin gets no CORS headers.

use awc::http::Method;

use crate::helpers::{TestApp, event, spawn_app, spawn_app_with};

const APP_ORIGIN: &str = "https://app.example";

fn header<'a>(headers: &'a awc::http::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// A preflight for `method` on `path` from `origin`: status and headers.
async fn preflight(
    app: &TestApp,
    path: &str,
    method: &str,
    origin: &str,
) -> (u16, awc::http::header::HeaderMap) {
    let response = app
        .client
        .request(Method::OPTIONS, format!("{}{path}", app.base))
        .insert_header(("Origin", origin))
        .insert_header(("Access-Control-Request-Method", method))
        .insert_header((
            "Access-Control-Request-Headers",
            "authorization, content-type, last-event-id",
        ))
        .send()
        .await
        .expect("preflight");
    (response.status().as_u16(), response.headers().clone())
}

/// A GET of `path` with the reader's token from `origin`: status and headers.
async fn get_from(app: &TestApp, path: &str, origin: &str) -> (u16, awc::http::header::HeaderMap) {
    let response = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(&app.reader)
        .insert_header(("Origin", origin))
        .send()
        .await
        .expect("request");
    (response.status().as_u16(), response.headers().clone())
}

async fn with_allowed_origin() -> TestApp {
    spawn_app_with(|c| c.allowed_origins = vec![APP_ORIGIN.into()]).await
}

#[actix_web::test]
async fn an_allowed_origin_passes_the_preflight_of_each_front_end_route() {
    let app = with_allowed_origin().await;
    for (path, method) in [
        ("/events", "POST"),
        ("/events/missed?since=0", "GET"),
        ("/events/stream?topics=t", "GET"),
    ] {
        let (status, headers) = preflight(&app, path, method, APP_ORIGIN).await;
        assert_eq!(status, 200, "{method} {path}");
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            Some(APP_ORIGIN),
            "{method} {path}"
        );
        assert_eq!(
            header(&headers, "access-control-allow-credentials"),
            Some("true")
        );
        let allowed_headers = header(&headers, "access-control-allow-headers")
            .unwrap_or("")
            .to_ascii_lowercase();
        for needed in ["authorization", "content-type", "last-event-id"] {
            assert!(
                allowed_headers.contains(needed),
                "{path}: {allowed_headers}"
            );
        }
    }
}

#[actix_web::test]
async fn answers_to_an_allowed_origin_carry_cors_headers_on_every_transport() {
    let app = with_allowed_origin().await;
    let publish = app
        .client
        .post(format!("{}/events", app.base))
        .bearer_auth(&app.publisher)
        .insert_header(("Origin", APP_ORIGIN))
        .send_json(&event("t"))
        .await
        .expect("publish");
    assert_eq!(publish.status().as_u16(), 201);
    assert_eq!(
        header(publish.headers(), "access-control-allow-origin"),
        Some(APP_ORIGIN)
    );

    // The stream is served by the edge when it opens a connection.
    for path in ["/events/missed?since=0", "/events/stream?topics=t"] {
        let (status, headers) = get_from(&app, path, APP_ORIGIN).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            Some(APP_ORIGIN),
            "{path}"
        );
    }
}

#[actix_web::test]
async fn another_origin_gets_no_cors_headers_and_is_still_served() {
    let app = with_allowed_origin().await;
    let (_, headers) = preflight(&app, "/events", "POST", "https://evil.example").await;
    assert_eq!(header(&headers, "access-control-allow-origin"), None);

    // Non-browser clients send what Origin they like: served as usual,
    // without CORS headers a browser would honour.
    let (status, headers) = get_from(&app, "/events/missed?since=0", "https://evil.example").await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
}

#[actix_web::test]
async fn with_no_origin_configured_nothing_is_allowed_cross_origin() {
    let app = spawn_app().await;
    let (_, headers) = preflight(&app, "/events/missed", "GET", APP_ORIGIN).await;
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
}

#[actix_web::test]
async fn a_wildcard_allows_every_origin_without_credentials() {
    let app = spawn_app_with(|c| c.allowed_origins = vec!["*".into()]).await;
    let (status, headers) = preflight(&app, "/events/missed", "GET", "https://any.example").await;
    assert_eq!(status, 200);
    assert!(header(&headers, "access-control-allow-origin").is_some());
    assert_eq!(header(&headers, "access-control-allow-credentials"), None);
}
