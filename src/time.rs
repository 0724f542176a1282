//! Time as text, at the bottom of the crate so that every layer may use it:
//! durations in configuration through humantime (`500ms`, `30s`, `10m`,
//! `24h`, `7d`, `1h 30m`, and a bare `0`), instants in API bodies as
//! RFC 3339 in UTC through chrono, and the milliseconds since the epoch
//! that the metadata database keeps.

use std::time::Duration;

use crate::error::{Error, Result};

/// Parses a configured duration; the error names the text.
pub fn parse_duration(s: &str) -> Result<Duration> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        Error::Config(format!(
            "duration {s:?}: {e} (e.g. 500ms, 30s, 10m, 24h, 7d)"
        ))
    })
}

/// Milliseconds since the epoch as RFC 3339 (UTC, to the millisecond).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_except_zero() {
        let ok = [
            ("0", 0),
            ("500ms", 500),
            ("30s", 30_000),
            ("10m", 600_000),
            ("24h", 86_400_000),
            ("7d", 604_800_000),
            ("1h 30m", 5_400_000),
            ("1.5h", 5_400_000),
            (" 15m ", 900_000),
        ];
        for (s, ms) in ok {
            assert_eq!(
                parse_duration(s).ok().map(|d| d.as_millis()),
                Some(ms),
                "{s}"
            );
        }
        for s in ["", "h", "10", "-1s", "soon"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
    }

    #[test]
    fn instants_are_rfc3339_utc_to_the_millisecond() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
