//! The resume cursor a client presents: an event id (precise, what clients
//! should keep) or an RFC 3339 timestamp ("everything accepted after t").

use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::event::EventId;

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
