//! The event: the one thing pushlog stores and pushes, and the newtypes that
//! are parsed once at the edge (ids, topics, topic patterns).
//!
//! Everything a client sends is validated here, so the store and the hub only
//! ever see well-formed values.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Longest topic, in characters (the contract says 1–200).
const MAX_TOPIC_LEN: usize = 200;
/// Longest event type (1–100).
const MAX_TYPE_LEN: usize = 100;
/// Longest idempotency key (1–200).
const MAX_KEY_LEN: usize = 200;
/// Longest entity kind or id. The contract leaves this open; a bound keeps a
/// single event from carrying megabytes outside its size-checked payload.
const MAX_ENTITY_FIELD_LEN: usize = 200;
/// Most users or roles one audience may list, for the same reason.
const MAX_AUDIENCE_ENTRIES: usize = 1000;

/// A position in the log. Ids are positive and assigned by the log in commit
/// order, which is what makes one integer a safe resume cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(i64);

impl EventId {
    /// The cursor before the first event: "everything".
    pub const ZERO: EventId = EventId(0);

    pub fn new(raw: i64) -> Option<EventId> {
        (raw >= 0).then_some(EventId(raw))
    }

    pub fn get(self) -> i64 {
        self.0
    }

    pub(crate) fn next(self) -> EventId {
        EventId(self.0 + 1)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for EventId {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Digits only: "+5", " 5" and "5.0" are not ids.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        s.parse::<i64>().ok().and_then(EventId::new).ok_or(())
    }
}

fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '-')
}

/// A routing key: 1–200 characters of `[A-Za-z0-9_.:/-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Topic(String);

impl Topic {
    pub fn parse(raw: &str) -> Result<Topic, String> {
        if raw.is_empty() || raw.len() > MAX_TOPIC_LEN {
            return Err(format!("a topic has 1 to {MAX_TOPIC_LEN} characters"));
        }
        if let Some(bad) = raw.chars().find(|c| !is_topic_char(*c)) {
            return Err(format!(
                "a topic may contain only letters, digits and _ . : / - (found {bad:?})"
            ));
        }
        Ok(Topic(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For rows read back from the log, which were validated on the way in.
    pub(crate) fn from_trusted(raw: String) -> Topic {
        Topic(raw)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a subscription or a token's `topics` claim names: an exact topic, a
/// prefix ending in `*` (`device:*`), or `*` for every topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicPattern {
    Exact(Topic),
    /// The prefix without its `*`; never empty (that is `All`).
    Prefix(String),
    All,
}

impl TopicPattern {
    pub fn parse(raw: &str) -> Result<TopicPattern, String> {
        if raw == "*" {
            return Ok(TopicPattern::All);
        }
        match raw.strip_suffix('*') {
            Some(prefix) => {
                if prefix.len() >= MAX_TOPIC_LEN {
                    return Err(format!(
                        "a topic pattern has at most {MAX_TOPIC_LEN} characters"
                    ));
                }
                if let Some(bad) = prefix.chars().find(|c| !is_topic_char(*c)) {
                    return Err(format!(
                        "a topic pattern is a topic, a prefix ending in *, or * (found {bad:?})"
                    ));
                }
                Ok(TopicPattern::Prefix(prefix.to_owned()))
            }
            None => Topic::parse(raw).map(TopicPattern::Exact),
        }
    }

    /// Parses a comma-separated list (`alerts,device:*`). Empty means `*`.
    pub fn parse_list(raw: &str) -> Result<Vec<TopicPattern>, String> {
        let patterns = raw
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(TopicPattern::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if patterns.is_empty() {
            return Ok(vec![TopicPattern::All]);
        }
        Ok(patterns)
    }

    pub fn matches(&self, topic: &Topic) -> bool {
        match self {
            TopicPattern::Exact(exact) => exact == topic,
            TopicPattern::Prefix(prefix) => topic.as_str().starts_with(prefix.as_str()),
            TopicPattern::All => true,
        }
    }

    /// Whether some topic matches both patterns. A subscription that shares
    /// no topic with the token's claim is refused rather than left silent.
    pub fn overlaps(&self, other: &TopicPattern) -> bool {
        use TopicPattern::*;
        match (self, other) {
            (All, _) | (_, All) => true,
            (Exact(a), Exact(b)) => a == b,
            (Exact(t), Prefix(p)) | (Prefix(p), Exact(t)) => t.as_str().starts_with(p.as_str()),
            (Prefix(a), Prefix(b)) => a.starts_with(b.as_str()) || b.starts_with(a.as_str()),
        }
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicPattern::Exact(topic) => f.write_str(topic.as_str()),
            TopicPattern::Prefix(prefix) => write!(f, "{prefix}*"),
            TopicPattern::All => f.write_str("*"),
        }
    }
}

impl Serialize for TopicPattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What happened to the entity a front end caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityOp {
    Created,
    Updated,
    Deleted,
}

impl EntityOp {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityOp::Created => "created",
            EntityOp::Updated => "updated",
            EntityOp::Deleted => "deleted",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<EntityOp> {
        match raw {
            "created" => Some(EntityOp::Created),
            "updated" => Some(EntityOp::Updated),
            "deleted" => Some(EntityOp::Deleted),
            _ => None,
        }
    }
}

/// The thing whose cached queries a front end should invalidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    pub kind: String,
    pub id: String,
    pub op: EntityOp,
}

/// Who may receive an event. Absent means everyone allowed on the topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

impl Audience {
    pub fn admits(&self, user: &str, roles: &[String]) -> bool {
        self.users.iter().any(|u| u == user) || self.roles.iter().any(|r| roles.contains(r))
    }
}

/// An event as the log stores and serves it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: EventId,
    pub topic: Topic,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<Entity>,
    /// Compact JSON text, kept raw so it is never parsed again after publish.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<Audience>,
    #[serde(serialize_with = "serialize_timestamp")]
    pub timestamp: DateTime<Utc>,
    /// The idempotency key; never sent to readers.
    #[serde(skip)]
    pub key: Option<String>,
}

impl Event {
    /// Whether a reader with this identity is in the event's audience.
    pub fn addressed_to(&self, user: &str, roles: &[String]) -> bool {
        self.audience
            .as_ref()
            .is_none_or(|audience| audience.admits(user, roles))
    }

    /// Whether `candidate` says the same thing as this stored event, which is
    /// what makes re-publishing under the same idempotency key a retry rather
    /// than a conflicting reuse of the key.
    pub fn same_content_as(&self, candidate: &NewEvent) -> bool {
        self.topic == candidate.topic
            && self.kind == candidate.kind
            && self.entity == candidate.entity
            && self.audience == candidate.audience
            && self.payload.as_ref().map(|p| p.get()) == candidate.payload.as_ref().map(|p| p.get())
    }
}

pub fn format_timestamp(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn serialize_timestamp<S: serde::Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_timestamp(ts))
}

/// A validated event on its way into the log.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub topic: Topic,
    pub kind: String,
    pub entity: Option<Entity>,
    pub payload: Option<Box<RawValue>>,
    pub audience: Option<Audience>,
    pub key: Option<String>,
}

/// A publish body element exactly as sent. Unknown fields are refused so a
/// misspelt `paylod` is an error, not a silently empty event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDraft {
    topic: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    entity: Option<Entity>,
    #[serde(default)]
    payload: Option<Box<RawValue>>,
    #[serde(default)]
    audience: Option<Audience>,
    #[serde(default)]
    key: Option<String>,
}

/// Why a draft is not a valid event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidEvent {
    #[error("{field}: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("payload: {size} bytes serialized, more than the limit of {limit}")]
    PayloadTooLarge { size: usize, limit: usize },
}

fn field_error(field: &'static str, reason: impl Into<String>) -> InvalidEvent {
    InvalidEvent::Field {
        field,
        reason: reason.into(),
    }
}

fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), InvalidEvent> {
    let len = value.chars().count();
    if len == 0 || len > max {
        return Err(field_error(
            field,
            format!("must have 1 to {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(field_error(field, "must not contain control characters"));
    }
    Ok(())
}

/// What a payload may be.
#[derive(Debug, Clone, Copy)]
pub struct PayloadRules {
    /// Bytes of compact JSON.
    pub max_bytes: usize,
    /// Levels of nested arrays and objects: every reader must be able to
    /// parse it, and common JSON parsers stop at a few hundred or a thousand.
    pub max_depth: usize,
}

impl PayloadRules {
    /// No bound beyond what JSON itself imposes (lone surrogates are still
    /// refused): for events an application that shares the database staged.
    pub const TRUSTED: PayloadRules = PayloadRules {
        max_bytes: usize::MAX,
        max_depth: usize::MAX,
    };
}

impl EventDraft {
    pub fn validate(self, rules: PayloadRules) -> Result<NewEvent, InvalidEvent> {
        let topic = Topic::parse(&self.topic).map_err(|reason| field_error("topic", reason))?;
        check_text("type", &self.kind, MAX_TYPE_LEN)?;
        if let Some(entity) = &self.entity {
            check_text("entity.kind", &entity.kind, MAX_ENTITY_FIELD_LEN)?;
            check_text("entity.id", &entity.id, MAX_ENTITY_FIELD_LEN)?;
        }
        if let Some(key) = &self.key {
            check_text("key", key, MAX_KEY_LEN)?;
        }
        let audience = match self.audience {
            Some(audience) => Some(validate_audience(audience)?),
            None => None,
        };
        let payload = match self.payload {
            Some(raw) => {
                check_readable(raw.get(), rules.max_depth)
                    .map_err(|reason| field_error("payload", reason))?;
                let compact = compact_json(raw.get());
                if compact.len() > rules.max_bytes {
                    return Err(InvalidEvent::PayloadTooLarge {
                        size: compact.len(),
                        limit: rules.max_bytes,
                    });
                }
                // Compacting removes only whitespace between tokens, so the
                // text stays valid JSON; a failure here would be our bug.
                Some(
                    RawValue::from_string(compact)
                        .map_err(|e| field_error("payload", e.to_string()))?,
                )
            }
            None => None,
        };
        Ok(NewEvent {
            topic,
            kind: self.kind,
            entity: self.entity,
            payload,
            audience,
            key: self.key,
        })
    }
}

fn validate_audience(audience: Audience) -> Result<Audience, InvalidEvent> {
    if audience.users.is_empty() && audience.roles.is_empty() {
        // An empty audience would address nobody: almost surely a bug in the
        // publisher, and "absent" already means everyone.
        return Err(field_error(
            "audience",
            "must list at least one user or role (omit it to address everyone)",
        ));
    }
    if audience.users.len() + audience.roles.len() > MAX_AUDIENCE_ENTRIES {
        return Err(field_error(
            "audience",
            format!("may list at most {MAX_AUDIENCE_ENTRIES} users and roles"),
        ));
    }
    for user in &audience.users {
        check_text("audience.users", user, MAX_ENTITY_FIELD_LEN)?;
    }
    for role in &audience.roles {
        check_text("audience.roles", role, MAX_ENTITY_FIELD_LEN)?;
    }
    Ok(audience)
}

/// Removes the insignificant whitespace from valid JSON text.
///
/// Payloads are stored and pushed as sent, minus whitespace: an SSE `data:`
/// line must not contain a newline, and the size limit should count content,
/// not indentation. Whitespace inside strings is escaped in valid JSON, except
/// plain spaces and tabs, which the string tracking keeps.
/// Refuses valid JSON that some readers cannot parse: nesting deeper than
/// `max_depth`, and a string escape of half a UTF-16 surrogate pair
/// (`"\ud800"`), which RFC 8259 §8.2 allows but strict parsers (Python's,
/// Rust's, browsers' `TextDecoder`) refuse, so one such event would break
/// every reader of its topic.
fn check_readable(valid: &str, max_depth: usize) -> Result<(), String> {
    let bytes = valid.as_bytes();
    let mut depth = 0usize;
    let mut in_string = false;
    // A high surrogate escape waiting for its low half.
    let mut high_pending = false;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        i += 1;
        if !in_string {
            match byte {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max_depth {
                        return Err(format!("nested deeper than {max_depth} levels"));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            continue;
        }
        let unit = match byte {
            b'\\' if bytes.get(i) == Some(&b'u') => {
                let hex = valid.get(i + 1..i + 5).unwrap_or("");
                i += 5;
                u16::from_str_radix(hex, 16).ok()
            }
            b'\\' => {
                i += 1;
                None
            }
            b'"' => {
                in_string = false;
                None
            }
            _ => None,
        };
        match unit {
            Some(0xD800..=0xDBFF) if !high_pending => high_pending = true,
            Some(0xDC00..=0xDFFF) if high_pending => high_pending = false,
            Some(0xD800..=0xDFFF) => return Err(lone_surrogate()),
            _ if high_pending => return Err(lone_surrogate()),
            _ => {}
        }
    }
    Ok(())
}

fn lone_surrogate() -> String {
    "holds half a UTF-16 surrogate pair (a lone \\ud800-\\udfff escape)".into()
}

pub(crate) fn compact_json(valid: &str) -> String {
    let mut out = String::with_capacity(valid.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in valid.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(raw: &str) -> TopicPattern {
        TopicPattern::parse(raw).expect("valid pattern")
    }

    fn topic(raw: &str) -> Topic {
        Topic::parse(raw).expect("valid topic")
    }

    #[test]
    fn topics_accept_the_documented_alphabet_only() {
        assert!(Topic::parse("device:dev-0001/a_b.c").is_ok());
        assert!(Topic::parse("").is_err());
        assert!(Topic::parse("has space").is_err());
        assert!(Topic::parse("star*").is_err());
        assert!(Topic::parse(&"a".repeat(200)).is_ok());
        assert!(Topic::parse(&"a".repeat(201)).is_err());
    }

    #[test]
    fn patterns_match_exact_prefix_and_everything() {
        assert!(pattern("alerts").matches(&topic("alerts")));
        assert!(!pattern("alerts").matches(&topic("alerts2")));
        assert!(pattern("device:*").matches(&topic("device:dev-1")));
        assert!(!pattern("device:*").matches(&topic("devices")));
        assert!(pattern("*").matches(&topic("anything")));
        assert!(TopicPattern::parse("dev*ice").is_err());
    }

    #[test]
    fn overlapping_patterns_share_a_topic() {
        assert!(pattern("device:*").overlaps(&pattern("device:1")));
        assert!(pattern("dev*").overlaps(&pattern("device:*")));
        assert!(!pattern("alerts").overlaps(&pattern("device:*")));
        assert!(pattern("*").overlaps(&pattern("alerts")));
    }

    #[test]
    fn pattern_lists_default_to_everything() {
        assert_eq!(
            TopicPattern::parse_list("").unwrap(),
            vec![TopicPattern::All]
        );
        assert_eq!(TopicPattern::parse_list("a, b*").unwrap().len(), 2);
    }

    #[test]
    fn event_ids_are_plain_non_negative_integers() {
        assert_eq!("42".parse::<EventId>(), Ok(EventId(42)));
        assert!("-1".parse::<EventId>().is_err());
        assert!("+1".parse::<EventId>().is_err());
        assert!("1e3".parse::<EventId>().is_err());
        assert!("99999999999999999999".parse::<EventId>().is_err());
    }

    #[test]
    fn compacting_keeps_strings_and_drops_layout() {
        let raw = "{\n  \"a\" : [1, 2],\n  \"s\": \"x \\\" y\\n\"\n}";
        assert_eq!(compact_json(raw), r#"{"a":[1,2],"s":"x \" y\n"}"#);
    }

    #[test]
    fn drafts_are_validated_field_by_field() {
        let draft: EventDraft =
            serde_json::from_str(r#"{"topic":"bad topic","type":"x"}"#).unwrap();
        assert!(matches!(
            draft.validate(rules(1024)),
            Err(InvalidEvent::Field { field: "topic", .. })
        ));
        let draft: EventDraft =
            serde_json::from_str(r#"{"topic":"t","type":"x","payload":"0123456789"}"#).unwrap();
        assert!(matches!(
            draft.validate(rules(8)),
            Err(InvalidEvent::PayloadTooLarge { size: 12, limit: 8 })
        ));
        let draft: EventDraft =
            serde_json::from_str(r#"{"topic":"t","type":"x","audience":{}}"#).unwrap();
        assert!(draft.validate(rules(1024)).is_err());
    }
    fn rules(max_bytes: usize) -> PayloadRules {
        PayloadRules {
            max_bytes,
            max_depth: 4,
        }
    }

    #[test]
    fn payloads_every_reader_can_parse_pass() {
        for ok in [
            r#"{"a":[1,{"b":[2]}]}"#,
            r#""plain \" quote \\ and \u00e9""#,
            r#""pair \ud83d\ude00 and text""#,
            r#""brackets in strings [[[[[[ {{{{{ ""#,
        ] {
            assert_eq!(check_readable(ok, 4), Ok(()), "{ok}");
        }
    }

    #[test]
    fn deep_nesting_and_lone_surrogates_are_refused() {
        assert!(check_readable("[[[[[1]]]]]", 4).is_err());
        assert!(check_readable(r#"{"a":{"b":{"c":{"d":{}}}}}"#, 4).is_err());
        for lone in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800x""#,
            r#""\ud800\u0041""#,
            r#""\ud800\ud800\udc00""#,
            r#"{"k\udfff":1}"#,
        ] {
            assert!(check_readable(lone, 64).is_err(), "{lone}");
        }
    }
}
