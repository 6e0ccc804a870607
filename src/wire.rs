//! An event as it travels to readers: encoded once, shared by every
//! connection that receives it.
//!
//! Fan-out cost is dominated by encoding, so each form (JSON with or without
//! the audience, the SSE frame) is built at most once per event, on first use,
//! and then shared as reference-counted bytes.

use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::event::{Event, EventId, Topic};

/// Who sees the event's `audience`: the contract shows it to publishers only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Reader,
    Publisher,
}

#[derive(Debug)]
pub struct SharedEvent {
    event: Event,
    reader_json: OnceLock<Bytes>,
    publisher_json: OnceLock<Bytes>,
    reader_sse: OnceLock<Bytes>,
    publisher_sse: OnceLock<Bytes>,
}

/// The event as a reader sees it: the stored event minus its audience.
#[derive(Serialize)]
struct ReaderView<'a> {
    id: EventId,
    topic: &'a Topic,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity: &'a Option<crate::event::Entity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: &'a Option<Box<serde_json::value::RawValue>>,
    timestamp: String,
}

impl SharedEvent {
    pub fn new(event: Event) -> SharedEvent {
        SharedEvent {
            event,
            reader_json: OnceLock::new(),
            publisher_json: OnceLock::new(),
            reader_sse: OnceLock::new(),
            publisher_sse: OnceLock::new(),
        }
    }

    pub fn event(&self) -> &Event {
        &self.event
    }

    pub fn id(&self) -> EventId {
        self.event.id
    }

    /// The event as one line of JSON, as `view` may see it.
    pub fn json(&self, view: View) -> &Bytes {
        // Without an audience both views are the same bytes.
        let view = if self.event.audience.is_none() {
            View::Reader
        } else {
            view
        };
        match view {
            View::Reader => self.reader_json.get_or_init(|| {
                let e = &self.event;
                encode(&ReaderView {
                    id: e.id,
                    topic: &e.topic,
                    kind: &e.kind,
                    entity: &e.entity,
                    payload: &e.payload,
                    timestamp: crate::event::format_timestamp(&e.timestamp),
                })
            }),
            View::Publisher => self.publisher_json.get_or_init(|| encode(&self.event)),
        }
    }

    /// `id: N\ndata: {json}\n\n`, ready to write to an SSE response.
    pub fn sse_frame(&self, view: View) -> Bytes {
        let cell = match view {
            View::Publisher if self.event.audience.is_some() => &self.publisher_sse,
            _ => &self.reader_sse,
        };
        cell.get_or_init(|| {
            let json = self.json(view);
            let mut frame = BytesMut::with_capacity(json.len() + 32);
            frame.put_slice(b"id: ");
            frame.put_slice(self.event.id.to_string().as_bytes());
            frame.put_slice(b"\ndata: ");
            frame.put_slice(json);
            frame.put_slice(b"\n\n");
            frame.freeze()
        })
        .clone()
    }
}

fn encode<T: Serialize>(value: &T) -> Bytes {
    // Serializing plain structs of strings, numbers and already-valid raw JSON
    // into memory cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}
