//! pushlog: real-time push backed by a durable event log.
//!
//! Every event is appended to the log before anyone hears of it; readers
//! receive it live, and a reader that comes back presents its last id and
//! gets every event it missed, exactly once and in order.
//!
//! Dependencies point one way, from the edge inwards:
//!
//! - [`edge`]: each accepted connection, read first here; a stream
//!   request is answered by the application and carried on the bare
//!   socket, everything else goes through actix's dispatcher to the same
//!   application; every request's id and span.
//! - [`api`]: the HTTP handlers: parse input, authenticate, answer; who a
//!   request comes from behind trusted proxies.
//! - [`sessions`]: the SSE and WebSocket sessions that carry a feed to a
//!   client, and the live/replay handover they share.
//! - [`fanout`]: committed events handed to live subscribers, one shard
//!   per worker.
//! - [`store`]: the event log (SQLite, or PostgreSQL shared by several
//!   nodes): group commit, retention, the entity index and its reads.
//! - [`domain`]: the values every layer shares and that depend on none:
//!   events, cursors, filters, what a token may read, resume outcomes, the
//!   wire encodings, the proxies whose forwarding headers are believed.
//!
//! Beside them: [`auth`] (JWT verification and minting), [`error`] (the
//! HTTP error body), [`config`] and [`limits`] (settings and bounds),
//! [`metrics`], [`telemetry`] (logs), [`shutdown`] (the drain signal),
//! [`local_channel`] (the single-threaded bounded queue under fan-out,
//! sessions and the edge), and [`startup`], which wires it all together.

pub mod api;
pub mod auth;
pub mod config;
pub mod domain;
pub mod edge;
pub mod error;
pub mod fanout;
pub mod limits;
pub(crate) mod local_channel;
pub mod metrics;
pub mod sessions;
pub mod shutdown;
pub mod startup;
pub mod store;
pub mod telemetry;
