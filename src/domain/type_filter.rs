//! Type filters: which event types a reader wants (`types=` on the HTTP
//! reads, `"types"` in a WebSocket `subscribe`).
//!
//! A filter is a list of exact types and prefixes ending in `*`
//! (`notification:*`); absent, or a bare `*` among them, admits every type.
//! It narrows what a reader gets and nothing else: the hub's
//! [`Filter`](crate::domain::filter::Filter) asks it about every event, live or
//! replayed, so cursors and resumes behave as they do for topics.

use std::collections::HashSet;
use std::fmt;

use serde::Serialize;

use crate::domain::event::MAX_TYPE_LEN;

/// One entry of a type filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TypePattern {
    /// Exactly this type.
    Exact(String),
    /// Every type starting with this; the prefix without its `*`, never
    /// empty (a bare `*` admits every type and is no pattern of its own).
    Prefix(String),
}

impl TypePattern {
    pub fn matches(&self, kind: &str) -> bool {
        match self {
            TypePattern::Exact(exact) => exact == kind,
            TypePattern::Prefix(prefix) => kind.starts_with(prefix.as_str()),
        }
    }
}

impl fmt::Display for TypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypePattern::Exact(exact) => f.write_str(exact),
            TypePattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// The event types a reader admits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TypeFilter {
    /// Distinct, in the order given. Empty admits every type: the only
    /// constructors make an empty list mean "no filter", never "nothing".
    patterns: Vec<TypePattern>,
}

/// What one entry of a list parses to.
enum Entry {
    /// A bare `*`.
    Any,
    Pattern(TypePattern),
}

impl TypeFilter {
    /// Admits every type.
    pub fn any() -> TypeFilter {
        TypeFilter::default()
    }

    /// The query form, `types=entity:updated,notification:*`, with at most
    /// `max` entries. As in `topics=`, spaces around entries and empty
    /// entries are ignored, and an empty list admits every type. A type containing a comma cannot be named here
    /// (the WebSocket form can).
    pub fn parse_list(raw: &str, max: usize) -> Result<TypeFilter, String> {
        let entries = || raw.split(',').map(str::trim).filter(|e| !e.is_empty());
        // Counted before any entry is parsed: a hostile list costs a scan.
        if entries().count() > max {
            return Err(format!("at most {max} type patterns"));
        }
        TypeFilter::from_entries(entries().map(|entry| parse_entry(entry, str::to_owned)))
    }

    /// The WebSocket form, `"types": ["entity:updated", "notification:*"]`:
    /// at most `max` entries, taken exactly as given (no trimming), and at
    /// least one (leaving `types` out is how to ask for every type).
    pub fn from_list(types: Vec<String>, max: usize) -> Result<TypeFilter, String> {
        if types.len() > max {
            return Err(format!("at most {max} type patterns"));
        }
        if types.is_empty() {
            return Err(
                "`types` must name at least one type pattern; leave it out for every type".into(),
            );
        }
        TypeFilter::from_entries(types.into_iter().map(|entry| parse_entry(entry, |s| s)))
    }

    fn from_entries(
        entries: impl Iterator<Item = Result<Entry, String>>,
    ) -> Result<TypeFilter, String> {
        let mut patterns = Vec::new();
        let mut seen = HashSet::new();
        let mut any = false;
        // Every entry is checked, even after a `*`: a malformed one is an
        // error wherever it stands.
        for entry in entries {
            match entry? {
                Entry::Any => any = true,
                Entry::Pattern(pattern) => {
                    if seen.insert(pattern.clone()) {
                        patterns.push(pattern);
                    }
                }
            }
        }
        if any {
            return Ok(TypeFilter::any());
        }
        Ok(TypeFilter { patterns })
    }

    /// Whether an event of type `kind` passes: one comparison per pattern,
    /// nothing allocated, as it runs for every event offered to a reader.
    pub fn admits(&self, kind: &str) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| p.matches(kind))
    }

    pub fn is_any(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns, empty for a filter that admits every type.
    pub fn patterns(&self) -> &[TypePattern] {
        &self.patterns
    }
}

/// One entry, `*`, `prefix*` or an exact type, held to the rules of a
/// published event's type (1–100 characters, no control characters). A `*`
/// anywhere but at the end is refused: it would read as a wildcard it is
/// not. `owned` turns the entry into the pattern's `String`, so the
/// WebSocket form reuses the client's strings.
fn parse_entry<S: AsRef<str>>(entry: S, owned: impl FnOnce(S) -> String) -> Result<Entry, String> {
    let raw = entry.as_ref();
    if raw.is_empty() || raw.chars().nth(MAX_TYPE_LEN).is_some() {
        return Err(format!("a type pattern has 1 to {MAX_TYPE_LEN} characters"));
    }
    if raw.chars().any(char::is_control) {
        return Err(format!(
            "{raw:?}: a type pattern must not contain control characters"
        ));
    }
    if raw == "*" {
        return Ok(Entry::Any);
    }
    let (body, prefix) = match raw.strip_suffix('*') {
        Some(body) => (body, true),
        None => (raw, false),
    };
    if body.contains('*') {
        return Err(format!(
            "{raw:?}: `*` may only end a type pattern (a prefix), or stand alone"
        ));
    }
    let mut text = owned(entry);
    Ok(Entry::Pattern(if prefix {
        text.pop();
        TypePattern::Prefix(text)
    } else {
        TypePattern::Exact(text)
    }))
}

/// Comma-separated, as the query form reads; `*` for every type.
impl fmt::Display for TypeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            return f.write_str("*");
        }
        for (i, pattern) in self.patterns.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            pattern.fmt(f)?;
        }
        Ok(())
    }
}

impl Serialize for TypePattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A JSON array of patterns, as a `subscribe` names them; `["*"]` for
/// every type.
impl Serialize for TypeFilter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.is_any() {
            return serializer.collect_seq(["*"]);
        }
        serializer.collect_seq(&self.patterns)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A bound on a list, as the API puts one on `types=`.
    const BOUND: usize = 100;

    fn parse(raw: &str) -> Result<TypeFilter, String> {
        TypeFilter::parse_list(raw, BOUND)
    }

    fn filter(raw: &str) -> TypeFilter {
        parse(raw).expect("a valid type filter")
    }

    fn listed(types: &[&str]) -> Result<TypeFilter, String> {
        TypeFilter::from_list(types.iter().map(|t| t.to_string()).collect(), 50)
    }

    #[test]
    fn an_absent_or_empty_filter_and_a_bare_star_admit_every_type() {
        for raw in ["", " , ,", "*", " * ", "entity:*,*", "*,message:new"] {
            let parsed = filter(raw);
            assert!(parsed.is_any(), "{raw:?}");
            assert!(parsed.admits("anything at all"), "{raw:?}");
        }
        assert!(TypeFilter::any().admits("x"));
        assert!(listed(&["*"]).unwrap().is_any());
    }

    #[test]
    fn an_exact_type_admits_that_type_only() {
        let exact = filter("entity:updated");

        assert!(exact.admits("entity:updated"));
        assert!(!exact.admits("entity:updated:twice"));
        assert!(!exact.admits("entity:update"));
        assert!(!exact.admits("Entity:updated"));
        assert!(!exact.is_any());
    }

    #[test]
    fn a_prefix_admits_every_type_starting_with_it() {
        let prefix = filter("notification:*");

        assert!(prefix.admits("notification:battery_low"));
        assert!(prefix.admits("notification:"));
        assert!(!prefix.admits("notification"));
        assert!(!prefix.admits("entity:notification:x"));
    }

    #[test]
    fn a_list_admits_a_type_any_entry_admits() {
        let both = filter(" entity:created , notification:* ");

        assert!(both.admits("entity:created"));
        assert!(both.admits("notification:x"));
        assert!(!both.admits("entity:deleted"));
        assert_eq!(
            both.patterns(),
            [
                TypePattern::Exact("entity:created".into()),
                TypePattern::Prefix("notification:".into())
            ]
        );
    }

    #[test]
    fn a_star_anywhere_but_at_the_end_is_refused() {
        for raw in ["a*b", "*a", "**", "a**", "entity:*:updated"] {
            assert!(parse(raw).is_err(), "{raw:?} accepted");
            assert!(listed(&[raw]).is_err(), "{raw:?} accepted");
        }
    }

    #[test]
    fn patterns_are_held_to_the_rules_of_a_published_type() {
        let longest = "t".repeat(100);
        let longest_prefix = format!("{}*", "t".repeat(99));

        assert!(parse(&longest).is_ok());
        assert!(parse(&longest_prefix).is_ok());
        assert!(parse(&format!("{longest}t")).is_err());
        assert!(parse(&format!("t{longest_prefix}")).is_err());
        assert!(parse(&"é".repeat(100)).is_ok(), "characters, not bytes");
        assert!(listed(&["line\nbreak"]).is_err());
        assert!(listed(&["bell\u{7}*"]).is_err());
        assert!(listed(&[""]).is_err());
    }

    #[test]
    fn the_websocket_form_takes_entries_as_given_and_needs_one() {
        let spaced = listed(&[" spaced "]).unwrap();

        assert!(spaced.admits(" spaced "));
        assert!(!spaced.admits("spaced"));
        assert!(listed(&["with,comma"]).unwrap().admits("with,comma"));
        assert!(listed(&[]).is_err(), "an empty list would admit nothing");
    }

    #[test]
    fn too_many_patterns_are_refused_before_any_is_parsed() {
        // Malformed entries past the bound: the count alone decides.
        let query = vec!["a*b"; BOUND + 1].join(",");
        let list = vec!["\u{0}".to_owned(); 51];

        let from_query = parse(&query).unwrap_err();
        let from_list = TypeFilter::from_list(list, 50).unwrap_err();

        assert!(from_query.contains("at most 100"), "{from_query}");
        assert!(from_list.contains("at most 50"), "{from_list}");
        assert!(parse(&vec!["a"; BOUND].join(",")).is_ok());
        assert!(
            parse(&",".repeat(10_000)).is_ok(),
            "empty entries do not count"
        );
    }

    #[test]
    fn repeated_patterns_are_held_once_in_order() {
        let parsed = filter("b,a*,b,a*,c");

        assert_eq!(parsed.to_string(), "b,a*,c");
    }

    #[test]
    fn a_filter_echoes_as_a_json_array_and_reads_back_as_a_list() {
        let parsed = filter("entity:created,notification:*");

        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            serde_json::json!(["entity:created", "notification:*"])
        );
        assert_eq!(
            serde_json::to_value(TypeFilter::any()).unwrap(),
            serde_json::json!(["*"])
        );
        assert_eq!(parse(&parsed.to_string()), Ok(parsed));
    }

    /// Free text a type may be: no control characters, no `*` (which has a
    /// meaning in patterns), no `,` (the query form's separator).
    fn type_text(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(
            any::<char>().prop_filter("plain text", |c| !c.is_control() && !matches!(c, '*' | ',')),
            1..=max,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    /// The rules, spelled out again: 1–100 characters, none of them a
    /// control character, and a `*` only as the last one.
    fn is_type_pattern(raw: &str) -> bool {
        (1..=100).contains(&raw.chars().count())
            && !raw
                .chars()
                .any(|c| matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'))
            && raw.find('*').is_none_or(|at| at == raw.len() - 1)
    }

    proptest! {
        /// Whatever a client sends, a pattern is accepted exactly when the
        /// rules allow it.
        #[test]
        fn a_string_is_a_type_pattern_exactly_when_the_rules_say_so(
            raw in prop_oneof!["[ab*\\x00 ]{0,4}", "[a*]{98,102}", ".{0,120}"],
        ) {
            let parsed = TypeFilter::from_list(vec![raw.clone()], 1);
            prop_assert_eq!(parsed.is_ok(), is_type_pattern(&raw), "{:?}", raw);
        }

        /// A prefix pattern admits exactly the types that start with its
        /// prefix, whatever they are.
        #[test]
        fn a_prefix_admits_exactly_the_types_starting_with_it(
            prefix in type_text(99),
            rest in type_text(20),
            other in type_text(100),
        ) {
            let filter = TypeFilter::from_list(vec![format!("{prefix}*")], 1).expect("valid prefix");
            let extended = format!("{prefix}{rest}");

            prop_assert!(filter.admits(&prefix));
            prop_assert!(filter.admits(&extended));
            prop_assert_eq!(filter.admits(&other), other.starts_with(prefix.as_str()));
        }

        /// An exact pattern admits its type and no other.
        #[test]
        fn an_exact_pattern_admits_only_its_type(kind in type_text(100), other in type_text(100)) {
            let filter = TypeFilter::from_list(vec![kind.clone()], 1).expect("valid type");

            prop_assert!(filter.admits(&kind));
            prop_assert_eq!(filter.admits(&other), other == kind);
        }

        /// Whatever a client sends, parsing answers (never panics), and an
        /// accepted filter reads back from its own display.
        #[test]
        fn any_query_parses_or_is_refused_and_round_trips(
            raw in prop_oneof!["[ab*, \\t\\x00é]{0,40}", ".{0,300}"],
        ) {
            if let Ok(parsed) = parse(&raw) {
                prop_assert_eq!(parse(&parsed.to_string()), Ok(parsed));
            }
        }
    }
}
