//! A reader's filter: the topics and types it asked for and what its token
//! may read, decided on the domain's own values.

use super::event::{Event, TopicPattern};
use super::read_scope::ReadScope;
use super::type_filter::TypeFilter;

/// Which events a subscriber receives: the topics and types it asked for,
/// narrowed by what its token may read ([`ReadScope`]: topic claim and
/// audience).
///
/// Live fan-out, replay from memory and replay from the log all decide with
/// this one filter, so a resumed reader gets exactly what a live one would.
#[derive(Debug, Clone)]
pub struct Filter {
    pub patterns: Vec<TopicPattern>,
    pub types: TypeFilter,
    pub scope: ReadScope,
}

impl Filter {
    pub fn admits(&self, event: &Event) -> bool {
        self.patterns.iter().any(|p| p.matches(&event.topic)) && self.admits_on_its_topic(event)
    }

    /// The rest of [`Filter::admits`] for an event whose topic one of the
    /// patterns is known to match: what the hub's topic index leaves to ask.
    pub(crate) fn admits_on_its_topic(&self, event: &Event) -> bool {
        self.types.admits(&event.kind) && self.scope.may_read(event)
    }
}
