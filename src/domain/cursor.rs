//! The resume cursor a client presents: an event id (precise, what clients
//! should keep) or an RFC 3339 timestamp ("everything accepted after t").

use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::domain::event::EventId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    Id(EventId),
    Time(DateTime<Utc>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`since` must be an event id (a non-negative integer) or an RFC 3339 timestamp, not {0:?}")]
pub struct InvalidCursor(pub String);

impl FromStr for Since {
    type Err = InvalidCursor;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if let Ok(id) = raw.parse::<EventId>() {
            return Ok(Since::Id(id));
        }
        DateTime::parse_from_rfc3339(raw)
            .map(|t| Since::Time(t.with_timezone(&Utc)))
            .map_err(|_| InvalidCursor(raw.chars().take(64).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_timestamps_are_cursors() {
        assert_eq!("0".parse(), Ok(Since::Id(EventId::ZERO)));
        assert!(matches!(
            "2026-11-22T10:15:03.123Z".parse::<Since>(),
            Ok(Since::Time(_))
        ));
        assert!(matches!(
            "2026-11-22T12:15:03+02:00".parse::<Since>(),
            Ok(Since::Time(_))
        ));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["", "-3", "abc", "12abc", "2026-11-22", "1.5"] {
            assert!(bad.parse::<Since>().is_err(), "{bad:?} should be refused");
        }
    }
}

/// Properties of cursor parsing, against the contract: an id is a plain
/// non-negative 64-bit integer, anything else must be an RFC 3339 timestamp.
#[cfg(test)]
mod properties {
    use chrono::{FixedOffset, SecondsFormat, SubsecRound};
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::*;

    /// An instant whose RFC 3339 form, at any offset, keeps a four-digit
    /// year: 0001-01-02 to 9999-12-30 UTC.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        (-62_135_510_400i64..=253_402_128_000, 0u32..1_000_000_000)
            .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).unwrap())
    }

    /// Digit strings of every length up to 25, dense around `i64::MAX`.
    fn digits() -> impl Strategy<Value = String> {
        let max = i64::MAX as u128;
        prop_oneof![
            "[0-9]{1,25}",
            "0{0,3}[1-9][0-9]{17,19}",
            (max - 1000..=max + 1000).prop_map(|n| n.to_string()),
            (0..=u64::MAX).prop_map(|n| n.to_string()),
        ]
    }

    proptest! {
        /// Clients keep the ids they were sent and present them verbatim, so
        /// every id the log can assign is read back as itself.
        #[test]
        fn every_id_the_log_can_assign_is_read_back_as_itself(raw in 0..=i64::MAX) {
            let id = EventId::new(raw).unwrap();
            prop_assert_eq!(id.to_string().parse::<Since>(), Ok(Since::Id(id)));
        }

        /// A digit string is an id exactly when its value fits in an `i64`
        /// (leading zeros or not); a larger one is refused, never wrapped
        /// or saturated into some other position in the log.
        #[test]
        fn a_digit_string_is_an_id_exactly_when_its_value_fits(raw in digits()) {
            let value: u128 = raw.parse().unwrap();
            match i64::try_from(value) {
                Ok(id) => {
                    let id = EventId::new(id).unwrap();
                    prop_assert_eq!(raw.parse::<Since>(), Ok(Since::Id(id)));
                }
                Err(_) => prop_assert!(raw.parse::<Since>().is_err(), "{} was accepted", raw),
            }
        }

        /// Ids are never negative: `-N` (and `-0`) is refused, not read as
        /// "from the start" or as a timestamp.
        #[test]
        fn negative_numbers_are_refused(raw in prop_oneof![
            (i64::MIN..0).prop_map(|n| n.to_string()),
            "-[0-9]{1,25}",
        ]) {
            prop_assert!(raw.parse::<Since>().is_err(), "{} was accepted", raw);
        }

        /// An id is digits only: signs, blanks, fractions, exponents and hex
        /// are refused rather than guessed at.
        #[test]
        fn a_decorated_number_is_refused(
            n in 0..=i64::MAX,
            decoration in select(&["+{}", " {}", "{} ", "{}.0", "{}e0", "0x{}", "{}_", "{},1"][..]),
        ) {
            let raw = decoration.replace("{}", &n.to_string());
            prop_assert!(raw.parse::<Since>().is_err(), "{} was accepted", raw);
        }

        /// A timestamp names the same instant at any offset and precision
        /// (truncated to the digits given), with `Z` or `+00:00` for UTC.
        #[test]
        fn an_rfc3339_timestamp_is_the_instant_it_names(
            instant in instant(),
            offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59),
            precision in select(&[
                (SecondsFormat::Secs, 0),
                (SecondsFormat::Millis, 3),
                (SecondsFormat::Micros, 6),
                (SecondsFormat::Nanos, 9),
                (SecondsFormat::AutoSi, 9),
            ][..]),
            use_z in any::<bool>(),
        ) {
            let (format, digits) = precision;
            let offset = FixedOffset::east_opt(offset_minutes * 60).unwrap();
            let raw = instant.with_timezone(&offset).to_rfc3339_opts(format, use_z);
            let expected = Since::Time(instant.trunc_subsecs(digits));
            prop_assert_eq!(raw.parse::<Since>(), Ok(expected), "{}", raw);
        }

        /// Any query string may arrive: parsing never panics, an id is only
        /// ever made from digits, a timestamp never from digits alone, and a
        /// refusal quotes at most 64 characters of what was sent.
        #[test]
        fn any_string_is_an_id_a_timestamp_or_refused(raw in prop_oneof![
            any::<String>(),
            digits(),
            "[0-9:+.TZ -]{0,30}",
            concat!(
                "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}",
                "(\\.[0-9]{0,12})?([Zz]|[+-][0-9]{2}:[0-9]{2})?",
            ),
            ".{60,70}",
        ]) {
            let all_digits = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit());
            match raw.parse::<Since>() {
                Ok(Since::Id(id)) => {
                    prop_assert!(all_digits, "{:?} was read as an id", raw);
                    prop_assert_eq!(raw.parse::<u128>().ok(), Some(id.get() as u128));
                }
                Ok(Since::Time(_)) => {
                    prop_assert!(!all_digits, "{:?} was read as a time", raw);
                    let year_dash = raw.get(..5).is_some_and(|y| {
                        y[..4].bytes().all(|b| b.is_ascii_digit()) && y.ends_with('-')
                    });
                    prop_assert!(year_dash, "{:?} does not start with a full year", raw);
                }
                Err(InvalidCursor(quoted)) => {
                    prop_assert!(quoted.chars().count() <= 64);
                    prop_assert!(raw.starts_with(&quoted));
                    prop_assert!(quoted.len() == raw.len() || quoted.chars().count() == 64);
                }
            }
        }
    }
}
