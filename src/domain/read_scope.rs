//! What a token lets its holder read, as the hub and the replays need it:
//! the topics of its claim and the identity an event's audience names.
//!
//! Auth produces it from a verified token; the fan-out filter and the
//! replays consume it. Kept apart from the token itself so that fan-out
//! decides on plain values and never depends on JWT.

use crate::domain::event::{Event, Topic, TopicPattern};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadScope {
    /// The user an event's audience may name.
    pub user: String,
    /// The roles an event's audience may name.
    pub roles: Vec<String>,
    /// The token's `topics` claim; `None` means every topic.
    pub topics: Option<Vec<TopicPattern>>,
}

impl ReadScope {
    /// Whether the claim limits nothing: every topic is readable.
    pub fn reads_every_topic(&self) -> bool {
        self.topics.is_none()
    }

    pub fn may_read_topic(&self, topic: &Topic) -> bool {
        self.topics
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| p.matches(topic)))
    }

    /// Whether a subscription to `pattern` could ever deliver anything.
    pub fn may_subscribe(&self, pattern: &TopicPattern) -> bool {
        self.topics
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| p.overlaps(pattern)))
    }

    /// Topic claim and audience together: may this reader see this event?
    pub fn may_read(&self, event: &Event) -> bool {
        self.may_read_topic(&event.topic) && event.addressed_to(&self.user, &self.roles)
    }
}
