//! The OpenAPI document describes exactly the routes the application serves.

use std::collections::BTreeSet;

use awc::http::Method;
use serde_json::Value;

use crate::helpers::spawn_app;

fn spec() -> Value {
    let path = format!("{}/openapi/openapi.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("openapi/openapi.yaml exists");
    serde_yaml_ng::from_str(&text).expect("openapi.yaml parses")
}

fn spec_routes(spec: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[actix_web::test]
async fn the_spec_is_openapi_3_1_and_lists_exactly_the_served_routes() {
    let spec = spec();
    let served: BTreeSet<(String, String)> = pushlog::api::ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();

    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(spec_routes(&spec), served);
}

/// The path with each `{parameter}` replaced by the spec's example for it.
fn with_examples(spec: &Value, method: &str, path: &str) -> String {
    let parameters = &spec["paths"][path][method.to_lowercase()]["parameters"];
    let mut concrete = path.to_owned();
    for parameter in parameters.as_array().into_iter().flatten() {
        if parameter["in"] == "path" {
            let name = parameter["name"].as_str().unwrap();
            let example = parameter["example"]
                .as_str()
                .expect("path parameters have an example");
            concrete = concrete.replace(&format!("{{{name}}}"), example);
        }
    }
    concrete
}

#[actix_web::test]
async fn every_route_in_the_spec_answers() {
    let app = spawn_app().await;
    let spec = spec();
    for (method, path) in spec_routes(&spec) {
        let url = format!("{}{}", app.base, with_examples(&spec, &method, &path));
        let request = match method.as_str() {
            "GET" => app.client.get(url),
            "POST" => app.client.post(url),
            other => panic!("unexpected method {other}"),
        };
        let status = request.send().await.expect("request").status().as_u16();
        assert!(
            status != 404 && status != 405,
            "{method} {path} answered {status}"
        );
    }
}

#[actix_web::test]
async fn a_method_a_route_does_not_serve_is_405_with_allow_and_a_json_body() {
    let app = spawn_app().await;
    for (allowed, path) in pushlog::api::ROUTES {
        let other = if *allowed == "GET" {
            Method::PUT
        } else {
            Method::GET
        };
        let url = format!("{}{}", app.base, path.replace("{file}", "app.js"));
        let mut response = app
            .client
            .request(other.clone(), url)
            .send()
            .await
            .expect("request");
        let what = format!("{other} {path}");
        assert_eq!(response.status().as_u16(), 405, "{what}");
        let allow = response.headers().get("allow").map(|v| v.to_str().unwrap());
        assert_eq!(allow, Some(*allowed), "{what}: Allow");
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(body["error"], "method_not_allowed", "{what}");
    }
}

/// Follows a local `$ref` (`#/components/...`) if `value` is one.
fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            spec.pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {reference}"))
        }
        None => value,
    }
}

#[actix_web::test]
async fn every_operation_documents_its_errors_with_the_error_schema() {
    let spec = spec();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "post"].contains(&method.as_str()) {
                continue;
            }
            let what = format!("{method} {path}");
            assert!(
                operation.get("operationId").is_some(),
                "{what} has an operationId"
            );
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2') || s == "101"),
                "{what} has a success response"
            );
            for (status, response) in responses {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                let response = resolve(&spec, response);
                let schema = resolve(&spec, &response["content"]["application/json"]["schema"]);
                let properties = schema["properties"].as_object().unwrap_or_else(|| {
                    panic!("{what} {status}: a JSON error body with properties")
                });
                assert!(
                    properties.contains_key("error") && properties.contains_key("message"),
                    "{what} {status}: the body has `error` and `message`"
                );
            }
        }
    }
}
