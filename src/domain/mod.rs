//! The domain's values, shared by every layer and depending on none: events
//! and their validation ([`event`]), cursors ([`cursor`]), type patterns
//! ([`type_filter`]), what a token may read ([`read_scope`]), a reader's
//! whole filter ([`filter`]), whether a cursor can be resumed ([`resume`]:
//! the one outcome behind `410` and `reset`), an event encoded once per
//! wire form ([`wire`]), and the proxies whose forwarding headers are
//! believed ([`trusted_proxy`]).

pub mod cursor;
pub mod event;
pub mod filter;
pub mod read_scope;
pub mod resume;
pub mod trusted_proxy;
pub mod type_filter;
pub mod wire;
