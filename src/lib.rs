//! pushlog: real-time push backed by a durable event log.
//!
//! Every event is appended to the log before anyone hears of it; readers
//! receive it live, and a reader that comes back presents its last id and
//! gets every event it missed, exactly once and in order.
//!
//! Dependencies point one way, from the edge inwards:
//!
//! - [`front`]: each accepted connection; stream requests on the bare
//!   socket, everything else through actix's HTTP/1 dispatcher.
//! - [`routes`]: HTTP handlers; parse input, authenticate, answer.
//! - [`transport`]: session loops that carry a feed to a client (SSE).
//! - [`replay`]: the live/replay handover every transport shares.
//! - [`changes`]: what changed per entity after a cursor, from the entity
//!   index, for clients away longer than the log keeps.
//! - [`hub`]: fan-out of committed events to live subscribers.
//! - [`store`]: the event log itself (SQLite, or PostgreSQL shared by
//!   several nodes), group commit, retention.
//! - [`local_channel`]: the single-threaded bounded queue under hub and front.
//!
//! Beside them: [`event`], [`cursor`] and [`type_filter`] (the parsed
//! values), [`read_scope`] (what a token may read, as fan-out needs it),
//! [`resume`] (whether a cursor can be resumed: the one outcome behind
//! `410` and `reset`), [`wire`] (an event encoded once per form), [`auth`]
//! (JWT),
//! [`client_address`] (who a request comes from, behind trusted proxies),
//! [`error`] (the HTTP error body), [`config`], [`limits`], [`metrics`],
//! [`shutdown`], [`retention`], [`request_id`] and [`telemetry`] (logs), and
//! [`startup`], which wires it all together.

pub mod auth;
pub mod changes;
pub mod client_address;
pub mod config;
pub mod cursor;
pub mod error;
pub mod event;
pub mod front;
pub mod hub;
pub mod limits;
pub(crate) mod local_channel;
pub mod metrics;
pub mod read_scope;
pub mod replay;
pub mod request_id;
pub mod resume;
pub mod retention;
pub mod routes;
pub mod shutdown;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod transport;
pub mod type_filter;
pub mod wire;
