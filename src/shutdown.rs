//! The shutdown signal, cloned into every session. Once it fires the server
//! drains: new streams get `503`, open streams end cleanly, publishes already
//! queued still commit and get their answer.

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Starts the drain. Idempotent.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once the drain has started.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }
}
