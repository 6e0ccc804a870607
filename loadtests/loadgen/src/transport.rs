//! The two choices that pick a subscribe request: which transport, and where
//! in the topic to start. They sit below everything that builds or reads a
//! subscription (the server's paths, the SSE and WebSocket feeds, the
//! workers), so those can share them without importing one another.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    Sse,
    Ws,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::Ws => "ws",
        }
    }
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Only events published from now on.
    Now,
    /// Every event after this id.
    After(u64),
}
