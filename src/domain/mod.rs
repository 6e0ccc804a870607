//! The domain's values, shared by every layer and depending on none: events
//! and their validation ([`event`]), cursors ([`cursor`]), type patterns
//! ([`type_filter`]), what a token may read ([`read_scope`]), a reader's
//! whole filter ([`filter`]), whether a cursor can be resumed ([`resume`]:
//! the one outcome behind `410` and `reset`), and an event encoded once per
//! wire form ([`wire`]).

pub mod cursor;
pub mod event;
pub mod filter;
pub mod read_scope;
pub mod resume;
pub mod type_filter;
pub mod wire;
