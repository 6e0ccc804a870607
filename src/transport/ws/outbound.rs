//! What a WebSocket session sends, through a bounded queue drained by a
//! writer task.
//!
//! The session loop never waits on the client's socket: it hands text frames
//! to a bounded queue with `try_send`, and takes events from its feeds only
//! while that queue has room. A client that reads slowly so slows its own
//! feeds down (a replay goes at the client's pace), and one that falls too
//! far behind while live overflows its hub queue and is closed with 4008.
//! Control frames (ping, pong, close) take a separate lane the writer serves
//! first, so a close goes out right after the frame in progress.

use std::time::Duration;

use actix_ws::{CloseCode, CloseReason, Session};
use bytes::Bytes;
use bytestring::ByteString;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// How long a close may wait for a stalled client before the connection is
/// dropped without it.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// Control frames in flight; a client flooding pings while not reading hits
/// it and is dropped.
const CONTROL_QUEUE: usize = 16;

enum Control {
    Ping,
    Pong(Bytes),
    Close(CloseReason),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Unsent {
    /// The queue is full: the client is not reading fast enough.
    Full,
    /// The writer has stopped: the client is gone.
    Closed,
}

pub struct Outbound {
    data: mpsc::Sender<ByteString>,
    control: mpsc::Sender<Control>,
}

impl Outbound {
    /// Spawns the writer on the current worker. `capacity` bounds the text
    /// frames waiting for the client.
    pub fn spawn(session: Session, capacity: usize) -> Outbound {
        let (data, data_rx) = mpsc::channel(capacity.max(1));
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        actix_web::rt::spawn(write(session, data_rx, control_rx));
        Outbound { data, control }
    }

    pub fn text(&self, frame: ByteString) -> Result<(), Unsent> {
        self.data.try_send(frame).map_err(|error| match error {
            TrySendError::Full(_) => Unsent::Full,
            TrySendError::Closed(_) => Unsent::Closed,
        })
    }

    /// Whether a text frame can be queued now.
    pub fn has_room(&self) -> bool {
        self.data.capacity() > 0
    }

    /// Resolves once a text frame can be queued (or the writer is gone).
    pub async fn room(&self) {
        // The permit is released at once: this only waits for space.
        let _ = self.data.reserve().await;
    }

    pub fn ping(&self) -> Result<(), Unsent> {
        self.control(Control::Ping)
    }

    pub fn pong(&self, payload: Bytes) -> Result<(), Unsent> {
        self.control(Control::Pong(payload))
    }

    /// Queues the close frame; the writer sends it after the frame in
    /// progress, drops what is still queued, and ends the connection.
    pub fn close(self, code: CloseCode, reason: &str) {
        let _ = self.control(Control::Close(CloseReason {
            code,
            description: Some(reason.to_owned()),
        }));
    }

    fn control(&self, frame: Control) -> Result<(), Unsent> {
        self.control.try_send(frame).map_err(|error| match error {
            TrySendError::Full(_) => Unsent::Full,
            TrySendError::Closed(_) => Unsent::Closed,
        })
    }
}

async fn write(
    mut session: Session,
    mut data: mpsc::Receiver<ByteString>,
    mut control: mpsc::Receiver<Control>,
) {
    loop {
        let sent = tokio::select! {
            biased;
            frame = control.recv() => match frame {
                Some(Control::Ping) => session.ping(b"").await,
                Some(Control::Pong(payload)) => session.pong(&payload).await,
                Some(Control::Close(reason)) => {
                    let _ = tokio::time::timeout(CLOSE_GRACE, session.close(Some(reason))).await;
                    return;
                }
                // The session loop is gone without a close: the client left.
                None => return,
            },
            frame = data.recv() => match frame {
                Some(text) => session.text(text).await,
                None => return,
            },
        };
        if sent.is_err() {
            return;
        }
    }
}
