//! Session loops: how a feed reaches a client over each transport.

pub mod sse;
pub mod ws;
