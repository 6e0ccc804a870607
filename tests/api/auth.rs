//! Authentication: where tokens come from, and every way a token can be bad.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pushlog::auth::Claims;
use serde_json::json;

use crate::helpers::{SECRET, TestApp, event, read_reply, spawn_app, spawn_app_with};

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str, roles: &[&str], exp: u64) -> Claims {
    Claims {
        sub: sub.into(),
        exp,
        iat: None,
        roles: roles.iter().map(|r| r.to_string()).collect(),
        topics: None,
    }
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Claims) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Tries a token on publish, on the stream and on `/events/missed`.
async fn assert_refused(app: &TestApp, token: &str, code: &str) {
    let publish = app
        .publish_raw(token, "application/json", event("t").to_string())
        .await;
    let missed = app.missed(token, "since=0").await;
    let stream = app.stream(token, "", None).await;
    assert_eq!(
        (publish.status, publish.error_code()),
        (401, code),
        "publish"
    );
    assert_eq!((missed.status, missed.error_code()), (401, code), "missed");
    assert_eq!(stream.status, 401, "stream");
}

#[actix_web::test]
async fn requests_without_a_token_are_401() {
    let app = spawn_app().await;

    let missed = app.get("/events/missed?since=0").await;
    let publish = read_reply(
        app.client
            .post(format!("{}/events", app.base))
            .send_json(&event("t"))
            .await
            .unwrap(),
    )
    .await;

    assert_eq!((missed.status, missed.error_code()), (401, "missing_token"));
    assert_eq!(
        (publish.status, publish.error_code()),
        (401, "missing_token")
    );
    assert!(app.all_ids().await.is_empty());
}

#[actix_web::test]
async fn expired_wrongly_signed_and_unsigned_tokens_are_401() {
    let app = spawn_app().await;
    let ours = EncodingKey::from_secret(SECRET.as_bytes());
    let theirs = EncodingKey::from_secret(b"somebody-elses-secret-somebody-else");
    let expired = sign(
        Algorithm::HS256,
        &ours,
        &claims("pub", &["publisher"], unix_now() - 3600),
    );
    let wrong_key = sign(
        Algorithm::HS256,
        &theirs,
        &claims("pub", &["publisher"], unix_now() + 3600),
    );
    let body = b64(
        json!({"sub": "pub", "roles": ["publisher"], "exp": unix_now() + 3600})
            .to_string()
            .as_bytes(),
    );
    let alg_none = format!("{}.{body}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
    let hs512 = sign(
        Algorithm::HS512,
        &ours,
        &claims("pub", &["publisher"], unix_now() + 3600),
    );

    assert_refused(&app, &expired, "token_expired").await;
    assert_refused(&app, &wrong_key, "invalid_token").await;
    assert_refused(&app, &alg_none, "invalid_token").await;
    assert_refused(&app, &hs512, "invalid_token").await;
    assert_refused(&app, "not-a-jwt", "invalid_token").await;
    assert!(app.all_ids().await.is_empty());
}

#[actix_web::test]
async fn the_token_may_come_from_the_query_or_a_cookie() {
    let app = spawn_app().await;
    app.publish(&event("t")).await;

    let by_query = app
        .get(&format!("/events/missed?since=0&token={}", app.reader))
        .await;
    let by_cookie = read_reply(
        app.client
            .get(format!("{}/events/missed?since=0", app.base))
            .insert_header(("Cookie", format!("pushlog_token={}", app.reader)))
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(by_query.status, 200);
    assert_eq!(by_cookie.status, 200);
}

#[actix_web::test]
async fn rs256_tokens_verify_against_a_configured_public_key() {
    let public = String::from_utf8(fixture("rsa_public.pem")).unwrap();
    let app = spawn_app_with(|c| {
        c.jwt_secret = None;
        c.jwt_public_key = Some(public.clone());
    })
    .await;
    let private = EncodingKey::from_rsa_pem(&fixture("rsa_private.pem")).unwrap();
    let token = sign(
        Algorithm::RS256,
        &private,
        &claims("svc", &["publisher"], unix_now() + 60),
    );

    let reply = app
        .publish_raw(&token, "application/json", event("t").to_string())
        .await;

    assert_eq!(reply.status, 201, "{}", reply.body);
}

#[actix_web::test]
async fn es256_tokens_verify_against_a_configured_public_key() {
    let app = spawn_app_with(|c| {
        c.jwt_secret = None;
        c.jwt_public_key = Some(format!(
            "{}/tests/fixtures/ec_public.pem",
            env!("CARGO_MANIFEST_DIR")
        ));
    })
    .await;
    let private = EncodingKey::from_ec_pem(&fixture("ec_private.pem")).unwrap();
    let token = sign(
        Algorithm::ES256,
        &private,
        &claims("svc", &[], unix_now() + 60),
    );

    let reply = app.missed(&token, "since=0").await;

    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[actix_web::test]
async fn an_hs256_token_signed_with_the_public_key_is_refused() {
    // The algorithm-confusion attack: the public key is public, so a server
    // that let the token pick HS256 would accept this forgery.
    let public = fixture("rsa_public.pem");
    let app = spawn_app_with(|c| {
        c.jwt_secret = None;
        c.jwt_public_key = Some(String::from_utf8(public.clone()).unwrap());
    })
    .await;
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public),
        &claims("evil", &["publisher"], unix_now() + 60),
    );

    assert_refused(&app, &forged, "invalid_token").await;
}

/// A token signed with the test secret, carrying `extra` claims beside a
/// publisher's `sub` and `exp`, and `header` members beside `alg`/`typ`.
fn token_with(extra: serde_json::Value, header: serde_json::Value) -> String {
    use raw_token::sign_hs256;
    let mut claims = json!({"sub": "svc", "exp": unix_now() + 600, "roles": ["publisher"]});
    let mut head = json!({"alg": "HS256", "typ": "JWT"});
    for (target, more) in [(&mut claims, extra), (&mut head, header)] {
        if let (Some(target), Some(more)) = (target.as_object_mut(), more.as_object()) {
            target.extend(more.clone());
        }
    }
    sign_hs256(&head, &claims)
}

/// A token with a header of our own choosing (jsonwebtoken's `Header` has
/// no `crit`), signed with the test secret by jsonwebtoken's own HMAC.
mod raw_token {
    use super::b64;
    use crate::helpers::SECRET;
    use jsonwebtoken::{Algorithm, EncodingKey};

    pub fn sign_hs256(header: &serde_json::Value, claims: &serde_json::Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).expect("signs");
        format!("{input}.{signature}")
    }
}

async fn publish_status(app: &TestApp, token: &str) -> (u16, String) {
    let reply = app
        .publish_raw(token, "application/json", event("t").to_string())
        .await;
    (
        reply.status,
        reply.body["message"].as_str().unwrap_or("").to_owned(),
    )
}

#[actix_web::test]
async fn a_token_not_valid_yet_or_issued_in_the_future_is_refused() {
    let app = spawn_app().await;
    let hour_ahead = unix_now() + 3600;
    for claim in ["nbf", "iat"] {
        let token = token_with(json!({claim: hour_ahead}), json!({}));
        let (status, message) = publish_status(&app, &token).await;
        assert_eq!(status, 401, "{claim}: {message}");
        assert!(message.contains(claim), "{claim}: {message}");
    }
    // Within the leeway, and in the past, both are fine.
    let token = token_with(
        json!({"nbf": unix_now() + 5, "iat": unix_now() - 60}),
        json!({}),
    );
    assert_eq!(publish_status(&app, &token).await.0, 201);
}

#[actix_web::test]
async fn a_token_with_critical_header_extensions_is_refused() {
    let app = spawn_app().await;
    let token = token_with(json!({}), json!({"crit": ["exp-ext"], "exp-ext": true}));
    let (status, message) = publish_status(&app, &token).await;
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("crit"), "{message}");
}

#[actix_web::test]
async fn aud_and_iss_are_ignored_unless_configured() {
    let app = spawn_app().await;
    let token = token_with(
        json!({"aud": "some-client", "iss": "https://idp.example"}),
        json!({}),
    );
    assert_eq!(publish_status(&app, &token).await.0, 201);
}

#[actix_web::test]
async fn a_configured_audience_and_issuer_are_required_and_checked() {
    let app = spawn_app_with(|c| {
        c.jwt_audience = Some("pushlog".into());
        c.jwt_issuer = Some("https://idp.example".into());
    })
    .await;
    let right = json!({"aud": ["other", "pushlog"], "iss": "https://idp.example"});
    assert_eq!(
        publish_status(&app, &token_with(right, json!({}))).await.0,
        201
    );
    for (claims, why) in [
        (json!({"iss": "https://idp.example"}), "no aud"),
        (
            json!({"aud": "other", "iss": "https://idp.example"}),
            "wrong aud",
        ),
        (json!({"aud": "pushlog"}), "no iss"),
        (
            json!({"aud": "pushlog", "iss": "https://evil.example"}),
            "wrong iss",
        ),
    ] {
        let (status, message) = publish_status(&app, &token_with(claims, json!({}))).await;
        assert_eq!(status, 401, "{why}: {message}");
    }
}
