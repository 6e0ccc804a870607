//! The event: the one thing pushlog stores and pushes, and the newtypes that
//! are parsed once, as requests come in (ids, topics, topic patterns).
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
/// Longest event type (1–100); type patterns are held to it too.
pub(crate) const MAX_TYPE_LEN: usize = 100;
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

/// Removes the insignificant whitespace from valid JSON text.
///
/// Payloads are stored and pushed as sent, minus whitespace: an SSE `data:`
/// line must not contain a newline, and the size limit should count content,
/// not indentation. Whitespace inside strings is escaped in valid JSON, except
/// plain spaces and tabs, which the string tracking keeps.
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

/// Properties of the parsers clients reach, each checked against an oracle
/// written from the contract (docs/protocol.md) rather than from the code above.
#[cfg(test)]
mod properties {
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;
    use proptest::sample::{Index, select};
    use serde::Serialize;
    use serde_json::{Value, json};

    use super::*;

    // ----- Oracles, from the contract -----

    /// `[A-Za-z0-9_.:/-]`, spelled out again.
    fn in_alphabet(c: char) -> bool {
        matches!(c, 'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '.' | ':' | '/' | '-')
    }

    /// A topic: 1–200 characters of the alphabet.
    fn is_topic(raw: &str) -> bool {
        (1..=200).contains(&raw.chars().count()) && raw.chars().all(in_alphabet)
    }

    /// A pattern: `*`, a topic, or a non-empty prefix and `*`, at most 200
    /// characters in all (the code's documented bound).
    fn is_pattern(raw: &str) -> bool {
        raw == "*"
            || is_topic(raw)
            || raw
                .strip_suffix('*')
                .is_some_and(|prefix| is_topic(prefix) && prefix.len() < 200)
    }

    /// Unicode's control characters (general category Cc).
    fn is_control(c: char) -> bool {
        matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
    }

    /// Free text: 1 to `max` characters (not bytes), none of them controls.
    fn is_text(raw: &str, max: usize) -> bool {
        (1..=max).contains(&raw.chars().count()) && !raw.chars().any(is_control)
    }

    /// Levels of nested arrays and objects: `1` is 0, `[1]` is 1.
    fn nesting(value: &Value) -> usize {
        let deepest = |children: &mut dyn Iterator<Item = &Value>| {
            1 + children.map(nesting).max().unwrap_or(0)
        };
        match value {
            Value::Array(items) => deepest(&mut items.iter()),
            Value::Object(fields) => deepest(&mut fields.values()),
            _ => 0,
        }
    }

    fn topic(raw: &str) -> Topic {
        Topic::parse(raw).expect("valid topic")
    }

    fn pattern(raw: &str) -> TopicPattern {
        TopicPattern::parse(raw).expect("valid pattern")
    }

    // ----- Generators -----

    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/-";

    fn word_of(
        alphabet: &'static [u8],
        len: std::ops::RangeInclusive<usize>,
    ) -> impl Strategy<Value = String> + Clone {
        vec(select(alphabet), len).prop_map(|bytes| bytes.into_iter().map(char::from).collect())
    }

    /// Characters of the topic alphabet, `len` of them.
    fn word(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> + Clone {
        word_of(ALPHABET, len)
    }

    /// Any topic the grammar allows, the shortest and longest included.
    fn topic_text() -> impl Strategy<Value = String> + Clone {
        prop_oneof![6 => word(1..=200), 1 => word(1..=1), 1 => word(200..=200)]
    }

    /// Any pattern the grammar allows.
    fn pattern_text() -> impl Strategy<Value = String> + Clone {
        prop_oneof![
            1 => Just("*".to_owned()),
            3 => topic_text(),
            3 => prop_oneof![word(1..=199), word(199..=199)]
                .prop_map(|prefix| format!("{prefix}*")),
        ]
    }

    /// Strings that are topics or patterns, or nearly: a valid one with a
    /// few characters slipped in or appended, or any string at all.
    fn near_patterns() -> impl Strategy<Value = String> {
        let slip = (
            any::<Index>(),
            prop_oneof![any::<char>(), select(&b"*, :"[..]).prop_map(char::from)],
        );
        prop_oneof![
            any::<String>(),
            (pattern_text(), vec(slip, 1..3)).prop_map(|(mut raw, slips)| {
                for (at, c) in slips {
                    let at = raw
                        .char_indices()
                        .map(|(i, _)| i)
                        .chain([raw.len()])
                        .nth(at.index(raw.chars().count() + 1))
                        .unwrap();
                    raw.insert(at, c);
                }
                raw
            }),
            (pattern_text(), word(0..=3)).prop_map(|(raw, rest)| raw + &rest),
            pattern_text().prop_map(|raw| format!("*{raw}")),
        ]
    }

    fn truncated(mut raw: String, len: usize) -> String {
        raw.truncate(len);
        raw
    }

    /// `a` and a topic that is `a` or close to it: extended, cut short, one
    /// character changed, or unrelated.
    fn topic_and_neighbour() -> impl Strategy<Value = (String, String)> {
        topic_text().prop_flat_map(|a| {
            let len = a.len();
            let extended = word(1..=8).prop_map({
                let a = a.clone();
                move |rest| truncated(format!("{a}{rest}"), 200)
            });
            let cut = (1..=len).prop_map({
                let a = a.clone();
                move |keep| a[..keep].to_owned()
            });
            let changed = (any::<Index>(), select(ALPHABET)).prop_map({
                let a = a.clone();
                move |(at, c)| {
                    let mut bytes = a.clone().into_bytes();
                    bytes[at.index(len)] = c;
                    String::from_utf8(bytes).unwrap()
                }
            });
            let neighbour = prop_oneof![Just(a.clone()), extended, cut, changed, topic_text()];
            (Just(a), neighbour)
        })
    }

    /// Patterns over a three-letter alphabet, so that pairs often share topics.
    fn small_pattern() -> impl Strategy<Value = TopicPattern> {
        prop_oneof![
            1 => Just("*".to_owned()),
            3 => word_of(b"ab:", 1..=4),
            3 => word_of(b"ab:", 1..=4).prop_map(|prefix| format!("{prefix}*")),
        ]
        .prop_map(|raw| pattern(&raw))
    }

    /// Stands for `\uD83D`, the high half of U+1F600, once a value is text.
    const HIGH: char = '\u{E000}';
    /// Stands for `\ude00`, its low half: `HIGH` then `LOW` is a whole pair.
    const LOW: char = '\u{E001}';

    /// Replaces the stand-ins with the escapes, which a `Value` cannot hold.
    fn with_surrogate_escapes(json: &str) -> String {
        json.replace(HIGH, r"\uD83D").replace(LOW, r"\ude00")
    }

    fn json_string() -> impl Strategy<Value = String> + Clone {
        let piece = prop_oneof![
            4 => word_of(b"ab[]{}\"\\ \n\t:,/", 0..=6),
            2 => any::<String>(),
            1 => Just(HIGH.to_string()),
            1 => Just(LOW.to_string()),
        ];
        vec(piece, 0..4).prop_map(|pieces| pieces.concat())
    }

    /// Any JSON value, nested up to 6 levels, with strings full of brackets,
    /// quotes, backslashes and surrogate stand-ins.
    fn json_value() -> BoxedStrategy<Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
                .map(Value::Number)),
            json_string().prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 48, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                btree_map(json_string(), inner, 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
        .boxed()
    }

    /// `levels` arrays (`true`) and objects (`false`) around `leaf`.
    fn tower(levels: &[bool], leaf: Value) -> Value {
        levels.iter().fold(leaf, |inner, &array| {
            if array {
                json!([inner])
            } else {
                json!({ "k": inner })
            }
        })
    }

    fn text_char() -> impl Strategy<Value = char> + Clone {
        any::<char>().prop_filter("a control character", |c| !is_control(*c))
    }

    fn control_char() -> impl Strategy<Value = char> {
        prop_oneof![0u32..0x20, 0x7fu32..0xa0].prop_map(|c| char::from_u32(c).unwrap())
    }

    /// Free text of 1 to `max` characters, often exactly `max`.
    fn text(max: usize) -> impl Strategy<Value = String> + Clone {
        prop_oneof![3 => vec(text_char(), 1..=max), 1 => vec(text_char(), max..=max)]
            .prop_map(|chars| chars.into_iter().collect())
    }

    /// Text a field bounded by `max` must refuse: empty, too long, or with
    /// a control character.
    fn bad_text(max: usize) -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            vec(text_char(), max + 1..=max + 50).prop_map(|chars| chars.into_iter().collect()),
            (text(max - 1), any::<Index>(), control_char()).prop_map(|(raw, at, c)| {
                let mut chars: Vec<char> = raw.chars().collect();
                chars.insert(at.index(chars.len() + 1), c);
                chars.into_iter().collect()
            }),
        ]
    }

    fn bad_topic() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            word(201..=260),
            (
                topic_text(),
                any::<Index>(),
                any::<char>().prop_filter("in the alphabet", |c| !in_alphabet(*c))
            )
                .prop_map(|(raw, at, c)| {
                    let mut raw = raw;
                    raw.insert(at.index(raw.len() + 1), c);
                    raw
                }),
        ]
    }

    /// A publish body element, as a publisher would build it.
    #[derive(Debug, Clone, Serialize)]
    struct Draft {
        topic: String,
        #[serde(rename = "type")]
        kind: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        entity: Option<Entity>,
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        audience: Option<Audience>,
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    }

    fn entity() -> impl Strategy<Value = Entity> {
        let op = select(vec![
            EntityOp::Created,
            EntityOp::Updated,
            EntityOp::Deleted,
        ]);
        (text(200), text(200), op).prop_map(|(kind, id, op)| Entity { kind, id, op })
    }

    fn audience() -> impl Strategy<Value = Audience> {
        (vec(text(200), 0..4), vec(text(200), 0..4))
            .prop_filter("addresses nobody", |(users, roles)| {
                !users.is_empty() || !roles.is_empty()
            })
            .prop_map(|(users, roles)| Audience { users, roles })
    }

    /// Drafts within every rule (payloads nest at most 6 levels).
    fn draft() -> impl Strategy<Value = Draft> {
        (
            topic_text(),
            text(100),
            proptest::option::of(entity()),
            proptest::option::of(json_value()),
            proptest::option::of(audience()),
            proptest::option::of(text(200)),
        )
            .prop_map(|(topic, kind, entity, payload, audience, key)| Draft {
                topic,
                kind,
                entity,
                payload,
                audience,
                key,
            })
    }

    /// JSON text of `value`: compact, or pretty-printed with `indent`, which
    /// is any JSON whitespace (spaces, tabs, line breaks).
    fn laid_out(value: &impl Serialize, indent: Option<&str>) -> String {
        let Some(indent) = indent else {
            return serde_json::to_string(value).unwrap();
        };
        let mut text = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
        value
            .serialize(&mut serde_json::Serializer::with_formatter(
                &mut text, formatter,
            ))
            .unwrap();
        String::from_utf8(text).unwrap()
    }

    /// No layout (compact), or pretty-printing with one of several indents.
    fn layout() -> impl Strategy<Value = Option<&'static str>> {
        proptest::option::of(select(&["", "  ", "\t", " \t", "\r\n "][..]))
    }

    /// The server's defaults.
    const DEFAULTS: PayloadRules = PayloadRules {
        max_bytes: 64 * 1024,
        max_depth: 64,
    };

    fn validate(body: &str, rules: PayloadRules) -> Result<NewEvent, InvalidEvent> {
        let draft: EventDraft = serde_json::from_str(body).expect("the draft is well-formed JSON");
        draft.validate(rules)
    }

    /// The field an invalid draft was refused for.
    fn refused_field(result: Result<NewEvent, InvalidEvent>) -> Option<&'static str> {
        match result {
            Err(InvalidEvent::Field { field, .. }) => Some(field),
            _ => None,
        }
    }

    /// The draft as JSON, with `field` set to `value`.
    fn with_field(draft: &Draft, field: &str, value: Value) -> String {
        let mut object = serde_json::to_value(draft).unwrap();
        object[field] = value;
        object.to_string()
    }

    /// What every accepted event must satisfy, whatever it was made from.
    fn obeys_the_rules(event: &NewEvent, rules: PayloadRules) -> Result<(), TestCaseError> {
        prop_assert!(is_topic(event.topic.as_str()), "topic {:?}", event.topic);
        prop_assert!(is_text(&event.kind, 100), "type {:?}", event.kind);
        if let Some(entity) = &event.entity {
            prop_assert!(
                is_text(&entity.kind, 200) && is_text(&entity.id, 200),
                "{entity:?}"
            );
        }
        if let Some(key) = &event.key {
            prop_assert!(is_text(key, 200), "key {key:?}");
        }
        if let Some(audience) = &event.audience {
            let entries = audience.users.len() + audience.roles.len();
            prop_assert!((1..=1000).contains(&entries), "{entries} audience entries");
            prop_assert!(
                audience
                    .users
                    .iter()
                    .chain(&audience.roles)
                    .all(|s| is_text(s, 200))
            );
        }
        if let Some(payload) = &event.payload {
            let text = payload.get();
            prop_assert!(text.len() <= rules.max_bytes, "{} bytes", text.len());
            prop_assert!(!text.contains(['\n', '\r']), "a line break in {text:?}");
            let value: Value = serde_json::from_str(text).map_err(|e| {
                TestCaseError::fail(format!("a strict parser refuses {text:?}: {e}"))
            })?;
            prop_assert!(nesting(&value) <= rules.max_depth, "{text:?}");
        }
        Ok(())
    }

    proptest! {
        // ----- Topics and patterns -----

        /// Every topic the contract allows can be published and subscribed
        /// to, and reads back exactly as written.
        #[test]
        fn every_topic_from_the_grammar_parses_and_displays_as_written(raw in topic_text()) {
            let parsed = Topic::parse(&raw).expect("valid topic");
            prop_assert_eq!(parsed.as_str(), raw.as_str());
            prop_assert_eq!(parsed.to_string(), raw);
        }

        /// Empty, too long, or one character outside the alphabet: refused.
        #[test]
        fn topics_outside_the_grammar_are_refused(raw in bad_topic()) {
            prop_assert!(Topic::parse(&raw).is_err(), "{raw:?} was accepted");
        }

        /// A client can send anything; the parser answers, never panics, and
        /// accepts exactly the grammar, whatever the string.
        #[test]
        fn a_string_is_a_topic_exactly_when_the_grammar_says_so(raw in near_patterns()) {
            match Topic::parse(&raw) {
                Ok(parsed) => {
                    prop_assert!(is_topic(&raw), "{raw:?} was accepted");
                    prop_assert_eq!(parsed.as_str(), raw.as_str());
                }
                Err(_) => prop_assert!(!is_topic(&raw), "{raw:?} was refused"),
            }
        }

        /// Patterns are echoed back in `subscribed` and carried in tokens, so
        /// parsing and displaying must be inverse.
        #[test]
        fn every_pattern_from_the_grammar_parses_and_round_trips_through_display(
            raw in pattern_text(),
        ) {
            let parsed = pattern(&raw);
            prop_assert_eq!(parsed.to_string(), raw.as_str());
            prop_assert_eq!(pattern(&parsed.to_string()), parsed.clone());
            let expected_kind = match raw.as_str() {
                "*" => "all",
                _ if raw.ends_with('*') => "prefix",
                _ => "exact",
            };
            let kind = match parsed {
                TopicPattern::All => "all",
                TopicPattern::Prefix(_) => "prefix",
                TopicPattern::Exact(_) => "exact",
            };
            prop_assert_eq!(kind, expected_kind);
        }

        /// Whatever a client sends as a pattern, the parser answers without
        /// panicking and accepts exactly the grammar.
        #[test]
        fn a_string_is_a_pattern_exactly_when_the_grammar_says_so(raw in near_patterns()) {
            match TopicPattern::parse(&raw) {
                Ok(parsed) => {
                    prop_assert!(is_pattern(&raw), "{raw:?} was accepted");
                    prop_assert_eq!(parsed.to_string(), raw);
                }
                Err(_) => prop_assert!(!is_pattern(&raw), "{raw:?} was refused"),
            }
        }

        /// An exact subscription must not leak neighbouring topics
        /// (`alerts` is not `alerts2`, nor `alert`).
        #[test]
        fn a_pattern_without_wildcards_matches_only_its_own_topic((a, b) in topic_and_neighbour()) {
            let exact = pattern(&a);
            prop_assert_eq!(&exact, &TopicPattern::Exact(topic(&a)));
            prop_assert!(exact.matches(&topic(&a)));
            prop_assert_eq!(exact.matches(&topic(&b)), a == b, "{:?} against {:?}", a, b);
        }

        /// `device:*` is every topic that starts with `device:`, whatever
        /// follows (nothing included).
        #[test]
        fn a_prefix_pattern_matches_every_topic_that_extends_its_prefix(
            prefix in word(1..=199),
            rest in prop_oneof![Just(String::new()), word(1..=200)],
        ) {
            let prefix_pattern = pattern(&format!("{prefix}*"));
            prop_assert_eq!(&prefix_pattern, &TopicPattern::Prefix(prefix.clone()));
            let extended = truncated(prefix + &rest, 200);
            prop_assert!(prefix_pattern.matches(&topic(&extended)), "{extended:?}");
        }

        /// `device:*` is not `devices` nor `device`: a topic that differs
        /// within the prefix, or stops before its end, is not matched.
        #[test]
        fn a_prefix_pattern_matches_no_topic_that_departs_from_its_prefix(
            prefix in word(1..=199),
            at in any::<Index>(),
            other in select(ALPHABET).prop_map(char::from),
            rest in word(0..=200),
            short in any::<bool>(),
        ) {
            let prefix_pattern = pattern(&format!("{prefix}*"));
            let at = at.index(prefix.len());
            let departed = if short && at > 0 {
                prefix[..at].to_owned()
            } else {
                prop_assume!(prefix.as_bytes()[at] != other as u8);
                truncated(format!("{}{other}{rest}", &prefix[..at]), 200)
            };
            prop_assert!(
                !prefix_pattern.matches(&topic(&departed)),
                "{:?} matched {:?}", prefix_pattern, departed
            );
        }

        /// `*` is everything the token may read.
        #[test]
        fn the_star_pattern_matches_every_topic(raw in topic_text()) {
            let all = pattern("*");
            prop_assert_eq!(&all, &TopicPattern::All);
            prop_assert!(all.matches(&topic(&raw)));
        }

        /// A subscription is refused when it shares no topic with the
        /// token's claim, so `overlaps` must be exactly "some topic matches
        /// both": the patterns' own topics and prefixes are enough witnesses.
        #[test]
        fn patterns_overlap_exactly_when_some_topic_matches_both(
            a in small_pattern(),
            b in small_pattern(),
            probes in vec(word_of(b"ab:", 1..=6), 0..8),
        ) {
            let witnesses: Vec<Topic> = [&a, &b]
                .into_iter()
                .map(|p| match p {
                    TopicPattern::Exact(exact) => exact.clone(),
                    TopicPattern::Prefix(prefix) => topic(prefix),
                    TopicPattern::All => topic("a"),
                })
                .chain(probes.iter().map(|raw| topic(raw)))
                .collect();
            let shared = witnesses.iter().any(|t| a.matches(t) && b.matches(t));
            prop_assert_eq!(a.overlaps(&b), shared, "{} and {}", a, b);
            prop_assert_eq!(b.overlaps(&a), shared, "{} and {}", b, a);
        }

        /// `topics=a, b*,,` is its patterns in order; nothing but commas and
        /// blanks is everything.
        #[test]
        fn a_pattern_list_is_its_comma_separated_patterns_in_order(
            items in vec(
                (
                    proptest::option::of(pattern_text()),
                    select(&["", " ", "\t", "  "][..]),
                    select(&["", " ", "\t"][..]),
                ),
                0..6,
            ),
        ) {
            let raw = items
                .iter()
                .map(|(p, before, after)| format!("{before}{}{after}", p.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",");
            let mut expected: Vec<TopicPattern> =
                items.iter().filter_map(|(p, ..)| p.as_deref().map(pattern)).collect();
            if expected.is_empty() {
                expected.push(TopicPattern::All);
            }
            prop_assert_eq!(TopicPattern::parse_list(&raw), Ok(expected), "{:?}", raw);
        }

        // ----- Event validation -----

        /// Anything within the rules is published as sent; only layout is
        /// taken out of the payload (an explicit `null` is no payload).
        #[test]
        fn every_draft_within_the_rules_is_accepted_as_sent(draft in draft(), indent in layout()) {
            let body = laid_out(&draft, indent);
            let event = validate(&body, PayloadRules { max_bytes: 1 << 20, max_depth: 64 })
                .map_err(|e| TestCaseError::fail(format!("refused: {e}")))?;
            prop_assert_eq!(event.topic.as_str(), draft.topic.as_str());
            prop_assert_eq!(&event.kind, &draft.kind);
            prop_assert_eq!(&event.entity, &draft.entity);
            prop_assert_eq!(&event.audience, &draft.audience);
            prop_assert_eq!(&event.key, &draft.key);
            let compact = draft.payload.as_ref().filter(|v| !v.is_null()).map(|v| v.to_string());
            prop_assert_eq!(event.payload.as_ref().map(|p| p.get().to_owned()), compact);
        }

        /// The type is free text of 1–100 characters (not bytes), without
        /// control characters.
        #[test]
        fn a_type_outside_the_rules_is_refused(draft in draft(), bad in bad_text(100)) {
            let body = with_field(&draft, "type", json!(bad));
            prop_assert_eq!(refused_field(validate(&body, DEFAULTS)), Some("type"));
        }

        /// A bad topic is refused whatever else the draft holds.
        #[test]
        fn a_topic_outside_the_grammar_is_refused(draft in draft(), bad in bad_topic()) {
            let body = with_field(&draft, "topic", json!(bad));
            prop_assert_eq!(refused_field(validate(&body, DEFAULTS)), Some("topic"));
        }

        /// The entity, the key and the audience have their bounds too, and a
        /// refusal names the field at fault.
        #[test]
        fn an_entity_key_or_audience_outside_its_bounds_is_refused(
            draft in draft(),
            spoil in 0..6usize,
            bad in bad_text(200),
            members in 1001..1100usize,
            split in any::<Index>(),
        ) {
            let (field, value, expected) = match spoil {
                0 => ("entity", json!({"kind": bad, "id": "1", "op": "created"}), "entity.kind"),
                1 => ("entity", json!({"kind": "fault", "id": bad, "op": "deleted"}), "entity.id"),
                2 => ("key", json!(bad), "key"),
                3 => ("audience", json!({"users": ["alice"], "roles": [bad]}), "audience.roles"),
                4 => ("audience", json!({"users": [], "roles": []}), "audience"),
                _ => {
                    let names: Vec<String> = (0..members).map(|i| format!("name-{i}")).collect();
                    let (users, roles) = names.split_at(split.index(members + 1));
                    ("audience", json!({ "users": users, "roles": roles }), "audience")
                }
            };
            let body = with_field(&draft, field, value);
            prop_assert_eq!(refused_field(validate(&body, DEFAULTS)), Some(expected));
        }

        /// With the default limit of 64 levels, a payload at the limit is
        /// accepted and one deeper is refused, whatever the rest.
        #[test]
        fn a_payload_nested_deeper_than_the_limit_is_refused(
            draft in draft(),
            levels in prop_oneof![vec(any::<bool>(), 60..=70), vec(any::<bool>(), 0..=200)],
            leaf in select(vec![json!(1), json!("[[["), json!([]), json!({})]),
        ) {
            let payload = tower(&levels, leaf);
            let depth = nesting(&payload);
            let result = validate(&with_field(&draft, "payload", payload), DEFAULTS);
            if depth <= 64 {
                prop_assert!(result.is_ok(), "{depth} levels refused: {:?}", result.err());
            } else {
                prop_assert_eq!(refused_field(result), Some("payload"), "{} levels", depth);
            }
        }

        /// Readers must all be able to parse every event: a payload is
        /// accepted exactly when a strict parser reads it (no lone surrogate
        /// half, in keys or values) and it nests within the limit; and what is
        /// stored means what was sent.
        #[test]
        fn a_payload_is_accepted_exactly_when_strict_readers_can_parse_it(
            value in json_value(),
            levels in vec(any::<bool>(), 0..=3),
            max_depth in 0..=8usize,
            indent in layout(),
        ) {
            let value = tower(&levels, value);
            let text = with_surrogate_escapes(&laid_out(&value, indent));
            let strict: Option<Value> = serde_json::from_str(&text).ok();
            let readable = strict.is_some() && nesting(&value) <= max_depth;
            let body = format!(r#"{{"topic":"t","type":"x","payload":{text}}}"#);
            let result = validate(&body, PayloadRules { max_bytes: usize::MAX, max_depth });
            match result {
                Ok(event) => {
                    prop_assert!(readable, "accepted {text}");
                    // A `null` payload is stored as no payload.
                    let reread = event
                        .payload
                        .map_or(Value::Null, |p| serde_json::from_str(p.get()).unwrap());
                    prop_assert_eq!(Some(reread), strict);
                }
                Err(refusal) => {
                    prop_assert!(!readable, "refused {text}: {refusal}");
                    prop_assert_eq!(refused_field(Err(refusal)), Some("payload"));
                }
            }
        }

        /// Escaped characters beyond the BMP come as two halves, in either
        /// case of hex digits; a lone half anywhere in a string is refused,
        /// even from trusted publishers.
        #[test]
        fn paired_surrogate_escapes_pass_and_a_lone_half_is_refused(
            chars in vec(any::<char>(), 0..8),
            upper in any::<bool>(),
            lone in prop_oneof![0xD800u16..=0xDBFF, 0xDC00u16..=0xDFFF],
            at in any::<Index>(),
            as_key in any::<bool>(),
        ) {
            let escape = |unit: u16| {
                if upper { format!("\\u{unit:04X}") } else { format!("\\u{unit:04x}") }
            };
            let mut pieces: Vec<String> = chars
                .iter()
                .map(|c| match *c as u32 {
                    0x10000.. => c.encode_utf16(&mut [0; 2]).iter().map(|u| escape(*u)).collect(),
                    unit if unit % 3 == 0 => escape(unit as u16),
                    _ => {
                        let quoted = serde_json::to_string(&c.to_string()).unwrap();
                        quoted[1..quoted.len() - 1].to_owned()
                    }
                })
                .collect();
            let literal = |pieces: &[String]| {
                let string = format!("\"{}\"", pieces.concat());
                if as_key { format!("{{{string}:[{string}]}}") } else { format!("[1,{string}]") }
            };
            for rules in [DEFAULTS, PayloadRules::TRUSTED] {
                let whole = literal(&pieces);
                let body = format!(r#"{{"topic":"t","type":"x","payload":{whole}}}"#);
                prop_assert!(validate(&body, rules).is_ok(), "refused {}", whole);
            }
            let at = at.index(pieces.len() + 1);
            pieces.insert(at, escape(lone));
            let broken = literal(&pieces);
            for rules in [DEFAULTS, PayloadRules::TRUSTED] {
                let body = format!(r#"{{"topic":"t","type":"x","payload":{broken}}}"#);
                let refused = refused_field(validate(&body, rules));
                prop_assert_eq!(refused, Some("payload"), "{}", broken);
            }
        }

        /// The limit counts the compact payload's bytes, not its layout:
        /// indenting a payload does not push it over, and the stored text is
        /// the compact one.
        #[test]
        fn a_payload_is_accepted_exactly_when_its_compact_form_fits_the_limit(
            value in json_value(),
            indent in layout(),
            slack in -3..=3i64,
        ) {
            let size = value.to_string().len();
            let limit = (size as i64 + slack).max(0) as usize;
            let text = laid_out(&value, indent);
            let body = format!(r#"{{"topic":"t","type":"x","payload":{text}}}"#);
            let result = validate(&body, PayloadRules { max_bytes: limit, max_depth: 64 });
            if value.is_null() {
                prop_assert!(result.unwrap().payload.is_none());
            } else if size <= limit {
                let stored = result.unwrap().payload.unwrap();
                prop_assert_eq!(stored.get(), value.to_string());
            } else {
                prop_assert_eq!(result.unwrap_err(), InvalidEvent::PayloadTooLarge { size, limit });
            }
        }

        /// A publisher can send any bytes: the draft parser and the validator
        /// never panic, and whatever they accept obeys every rule.
        #[test]
        fn arbitrary_json_never_panics_and_what_is_accepted_obeys_the_rules(
            body in prop_oneof![
                1 => any::<String>(),
                // Valid drafts with a field or two replaced or removed, and
                // now and then an unknown one added.
                6 => (
                    draft(),
                    btree_map(
                        select(&["topic", "type", "entity", "payload", "audience", "key"][..]),
                        prop_oneof![
                            3 => json_value(),
                            3 => text(120).prop_map(Value::String),
                            1 => word(195..=205).prop_map(Value::String),
                            1 => Just(json!({"kind": "k", "id": "i", "op": "created"})),
                            1 => Just(json!({"users": [], "roles": ["r"]})),
                            1 => Just(json!({"users": []})),
                            1 => Just(json!({"kind": "k", "id": "i", "op": "renamed"})),
                        ],
                        0..=2,
                    ),
                    proptest::option::weighted(
                        0.25,
                        select(&["topic", "type", "entity", "payload", "audience", "key"][..]),
                    ),
                    proptest::option::weighted(0.1, select(&["id", "extra", "paylod"][..])),
                )
                    .prop_map(|(draft, replaced, removed, unknown)| {
                        let mut object = serde_json::to_value(draft).unwrap();
                        for (field, value) in replaced {
                            object[field] = value;
                        }
                        if let Some(field) = removed {
                            object.as_object_mut().unwrap().remove(field);
                        }
                        if let Some(field) = unknown {
                            object[field] = json!(1);
                        }
                        with_surrogate_escapes(&object.to_string())
                    }),
                // Token soup as the payload.
                2 => vec(
                    select(&[
                        "[", "]", "{", "}", ",", ":", "\"", "\"k\"", "1", "-0.5e3", "null", " ",
                        "\n", r#""\ud800""#, r#""\uDC00""#, r#""\ud83d\ude00""#, r"\u", "d800",
                        r"\", r#""[{\"""#,
                    ][..]),
                    0..40,
                )
                    .prop_map(|tokens| {
                        let payload = tokens.concat();
                        format!(r#"{{"topic":"t","type":"x","payload":{payload}}}"#)
                    }),
            ],
            max_depth in 0..=8usize,
            max_bytes in prop_oneof![0..=64usize, 64..=4096usize, Just(usize::MAX)],
        ) {
            let rules = PayloadRules { max_bytes, max_depth };
            if let Ok(draft) = serde_json::from_str::<EventDraft>(&body)
                && let Ok(event) = draft.validate(rules)
            {
                obeys_the_rules(&event, rules)?;
            }
        }
    }
}
