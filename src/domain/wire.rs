//! An event as it travels to readers: encoded once, shared by every
//! connection that receives it.
//!
//! Fan-out cost is dominated by encoding, so each form (JSON with or without
//! the audience, the SSE frame, the WebSocket frame) is built at most once
//! per event, on first use, and then shared as reference-counted bytes.

use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::domain::event::{Event, EventId, Topic};

/// Who sees the event's `audience`: the contract shows it to publishers only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Reader = 0,
    Publisher = 1,
}

/// The encodings an event is sent in.
#[derive(Debug, Clone, Copy)]
enum Form {
    /// The event object, one line of JSON.
    Json = 0,
    /// `id: N\ndata: {json}\n\n`.
    Sse = 1,
    /// `{"type":"event","event":{json}}` as a whole WebSocket text frame.
    Ws = 2,
}

#[derive(Debug)]
pub struct SharedEvent {
    event: Event,
    /// One cell per (viewer, form), filled on first use.
    encoded: [[OnceLock<Bytes>; 3]; 2],
}

/// The event as a reader sees it: the stored event minus its audience.
#[derive(Serialize)]
struct WithoutAudience<'a> {
    id: EventId,
    topic: &'a Topic,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity: &'a Option<crate::domain::event::Entity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: &'a Option<Box<serde_json::value::RawValue>>,
    timestamp: String,
}

impl SharedEvent {
    pub fn new(event: Event) -> SharedEvent {
        SharedEvent {
            event,
            encoded: Default::default(),
        }
    }

    pub fn event(&self) -> &Event {
        &self.event
    }

    pub fn id(&self) -> EventId {
        self.event.id
    }

    /// The event as one line of JSON, as `viewer` may see it.
    pub fn json(&self, viewer: Viewer) -> &Bytes {
        self.encoded(viewer, Form::Json)
    }

    /// `id: N\ndata: {json}\n\n`, ready to write to an SSE response.
    pub fn sse_frame(&self, viewer: Viewer) -> Bytes {
        self.encoded(viewer, Form::Sse).clone()
    }

    /// `{"type":"event","event":{json}}` as a whole WebSocket text frame,
    /// header included, ready to write: a server's frames are not masked,
    /// so every recipient gets the same bytes.
    pub fn ws_frame(&self, viewer: Viewer) -> Bytes {
        self.encoded(viewer, Form::Ws).clone()
    }

    /// Without an audience both viewers get the same bytes.
    fn effective(&self, viewer: Viewer) -> Viewer {
        if self.event.audience.is_none() {
            Viewer::Reader
        } else {
            viewer
        }
    }

    fn encoded(&self, viewer: Viewer, form: Form) -> &Bytes {
        let viewer = self.effective(viewer);
        self.encoded[viewer as usize][form as usize].get_or_init(|| match form {
            Form::Json => self.encode_json(viewer),
            Form::Sse => {
                let json = self.json(viewer);
                let mut frame = BytesMut::with_capacity(json.len() + 32);
                frame.put_slice(b"id: ");
                frame.put_slice(self.event.id.to_string().as_bytes());
                frame.put_slice(b"\ndata: ");
                frame.put_slice(json);
                frame.put_slice(b"\n\n");
                frame.freeze()
            }
            Form::Ws => {
                const OPEN: &[u8] = br#"{"type":"event","event":"#;
                let json = self.json(viewer);
                let text_len = OPEN.len() + json.len() + 1;
                let mut frame = BytesMut::with_capacity(text_len + 10);
                put_text_frame_header(&mut frame, text_len);
                frame.put_slice(OPEN);
                frame.put_slice(json);
                frame.put_slice(b"}");
                frame.freeze()
            }
        })
    }

    fn encode_json(&self, viewer: Viewer) -> Bytes {
        match viewer {
            Viewer::Reader => {
                let e = &self.event;
                encode(&WithoutAudience {
                    id: e.id,
                    topic: &e.topic,
                    kind: &e.kind,
                    entity: &e.entity,
                    payload: &e.payload,
                    timestamp: crate::domain::event::format_timestamp(&e.timestamp),
                })
            }
            Viewer::Publisher => encode(&self.event),
        }
    }
}

/// A WebSocket text frame: `text` (UTF-8, as every JSON message is) behind
/// the header of a final, unmasked frame.
pub fn ws_text_frame(text: &str) -> Bytes {
    let mut frame = BytesMut::with_capacity(text.len() + 10);
    put_text_frame_header(&mut frame, text.len());
    frame.put_slice(text.as_bytes());
    frame.freeze()
}

/// RFC 6455 §5.2: FIN and the text opcode, then the payload length in the
/// shortest of its three forms; no mask, as from a server.
fn put_text_frame_header(frame: &mut BytesMut, len: usize) {
    const FIN_TEXT: u8 = 0x81;
    frame.put_u8(FIN_TEXT);
    if len < 126 {
        frame.put_u8(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        frame.put_u8(126);
        frame.put_u16(len);
    } else {
        frame.put_u8(127);
        frame.put_u64(len as u64);
    }
}

fn encode<T: Serialize>(value: &T) -> Bytes {
    // Serializing plain structs of strings, numbers and already-valid raw JSON
    // into memory cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{Audience, Topic};

    fn shared(audience: Option<Audience>) -> SharedEvent {
        SharedEvent::new(Event {
            id: EventId::new(7).unwrap(),
            topic: Topic::parse("t").unwrap(),
            kind: "k".into(),
            entity: None,
            payload: None,
            audience,
            timestamp: chrono::DateTime::from_timestamp_millis(0).unwrap(),
            key: Some("secret-key".into()),
        })
    }

    #[test]
    fn readers_never_see_the_audience_or_the_key() {
        let event = shared(Some(Audience {
            users: vec!["bob".into()],
            roles: vec![],
        }));
        let reader = String::from_utf8(event.json(Viewer::Reader).to_vec()).unwrap();
        let publisher = String::from_utf8(event.json(Viewer::Publisher).to_vec()).unwrap();
        assert_eq!(
            reader,
            r#"{"id":7,"topic":"t","type":"k","timestamp":"1970-01-01T00:00:00.000Z"}"#
        );
        assert!(publisher.contains(r#""audience":{"users":["bob"]}"#));
        assert!(!publisher.contains("secret-key"));
    }

    #[test]
    fn frames_wrap_the_same_json() {
        let event = shared(None);
        let json = String::from_utf8(event.json(Viewer::Reader).to_vec()).unwrap();
        assert_eq!(
            event.sse_frame(Viewer::Reader),
            format!("id: 7\ndata: {json}\n\n")
        );
        let text = format!(r#"{{"type":"event","event":{json}}}"#);
        assert_eq!(event.ws_frame(Viewer::Publisher), ws_text_frame(&text));
    }

    /// What a client's decoder makes of `frame`: one whole text frame.
    fn decoded_text(frame: &Bytes) -> String {
        use actix_codec::Decoder;
        let mut codec = actix_http::ws::Codec::new().client_mode().max_size(1 << 20);
        let mut buf = BytesMut::from(&frame[..]);
        match codec.decode(&mut buf) {
            Ok(Some(actix_http::ws::Frame::Text(text))) => {
                assert!(buf.is_empty(), "one frame, nothing after it");
                String::from_utf8(text.to_vec()).unwrap()
            }
            other => panic!("expected one text frame, got {other:?}"),
        }
    }

    #[test]
    fn text_frames_decode_at_every_length_form() {
        // 7-bit, 16-bit and 64-bit lengths, each at its edges.
        for len in [0, 125, 126, 65_535, 65_536, 100_000] {
            let text = "x".repeat(len);
            assert_eq!(decoded_text(&ws_text_frame(&text)), text, "length {len}");
        }
    }

    #[test]
    fn an_event_frame_decodes_to_its_message() {
        let event = shared(None);
        let json = String::from_utf8(event.json(Viewer::Reader).to_vec()).unwrap();
        assert_eq!(
            decoded_text(&event.ws_frame(Viewer::Reader)),
            format!(r#"{{"type":"event","event":{json}}}"#)
        );
    }
}
