//! The AsyncAPI document describes every WebSocket message and SSE frame.

use serde_json::Value;

const CLIENT_MESSAGES: &[&str] = &["subscribe", "unsubscribe", "ping", "auth"];
const SERVER_MESSAGES: &[&str] = &[
    "welcome",
    "subscribed",
    "event",
    "caught_up",
    "unsubscribed",
    "pong",
    "reset",
    "error",
];
const SSE_FRAMES: &[&str] = &["sse_event", "sse_reset", "sse_heartbeat"];

fn spec() -> Value {
    let path = format!("{}/openapi/asyncapi.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("openapi/asyncapi.yaml exists");
    serde_yaml_ng::from_str(&text).expect("asyncapi.yaml parses")
}

fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => spec
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {reference}")),
        None => value,
    }
}

#[test]
fn the_document_is_asyncapi_3_with_both_channels() {
    let spec = spec();

    assert!(spec["asyncapi"].as_str().unwrap().starts_with("3.0"));
    let addresses: Vec<&str> = spec["channels"]
        .as_object()
        .expect("channels")
        .values()
        .filter_map(|channel| channel["address"].as_str())
        .collect();
    assert!(addresses.contains(&"/ws"), "{addresses:?}");
    assert!(addresses.contains(&"/events/stream"), "{addresses:?}");
}

#[test]
fn every_websocket_message_is_described_with_its_type() {
    let spec = spec();
    let messages = &spec["components"]["messages"];

    for name in CLIENT_MESSAGES.iter().chain(SERVER_MESSAGES) {
        let message = resolve(&spec, &messages[name]);
        assert!(message.is_object(), "message {name} is described");
        let payload = resolve(&spec, &message["payload"]);
        let kind = resolve(&spec, &payload["properties"]["type"]);
        let declared = kind["const"].as_str().or_else(|| kind["enum"][0].as_str());
        assert_eq!(declared, Some(*name), "message {name} declares its `type`");
    }
}

#[test]
fn every_sse_frame_is_described() {
    let spec = spec();
    for name in SSE_FRAMES {
        assert!(
            spec["components"]["messages"][name].is_object(),
            "frame {name} is described"
        );
    }
}
