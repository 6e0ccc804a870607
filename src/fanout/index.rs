//! Which subscribers might want an event on a given topic, without looking at
//! every subscriber: exact topics by hash, `*` in a list, prefixes scanned
//! (prefix subscriptions are few next to per-entity exact ones).

use std::collections::HashMap;

use super::SubscriberId;
use crate::domain::event::{Topic, TopicPattern};

#[derive(Default)]
pub(super) struct TopicIndex {
    exact: HashMap<String, Vec<SubscriberId>>,
    prefixes: Vec<(String, SubscriberId)>,
    everything: Vec<SubscriberId>,
}

impl TopicIndex {
    pub(super) fn insert(&mut self, id: SubscriberId, patterns: &[TopicPattern]) {
        for pattern in patterns {
            match pattern {
                TopicPattern::Exact(topic) => self
                    .exact
                    .entry(topic.as_str().to_owned())
                    .or_default()
                    .push(id),
                TopicPattern::Prefix(prefix) => self.prefixes.push((prefix.clone(), id)),
                TopicPattern::All => self.everything.push(id),
            }
        }
    }

    pub(super) fn remove(&mut self, id: SubscriberId, patterns: &[TopicPattern]) {
        for pattern in patterns {
            match pattern {
                TopicPattern::Exact(topic) => {
                    if let Some(ids) = self.exact.get_mut(topic.as_str()) {
                        ids.retain(|other| *other != id);
                        if ids.is_empty() {
                            self.exact.remove(topic.as_str());
                        }
                    }
                }
                TopicPattern::Prefix(_) => self.prefixes.retain(|(_, other)| *other != id),
                TopicPattern::All => self.everything.retain(|other| *other != id),
            }
        }
    }

    /// Calls `visit` for every subscriber with a pattern matching `topic`; a
    /// subscriber with several matching patterns is visited several times.
    pub(super) fn for_each_candidate(&self, topic: &Topic, mut visit: impl FnMut(SubscriberId)) {
        if let Some(ids) = self.exact.get(topic.as_str()) {
            ids.iter().copied().for_each(&mut visit);
        }
        for (prefix, id) in &self.prefixes {
            if topic.as_str().starts_with(prefix.as_str()) {
                visit(*id);
            }
        }
        self.everything.iter().copied().for_each(visit);
    }
}
