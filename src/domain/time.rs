use serde::{Deserialize, Serialize};
use std::fmt;

/// A point in time as microseconds since the Unix epoch, UTC.
///
/// Microseconds are what PostgreSQL's `timestamptz` keeps, so a value survives
/// a round trip through either database unchanged — which keyset cursors
/// depend on. SQLite stores the integer itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    #[cfg(feature = "ssr")]
    pub fn now() -> Self {
        Self(chrono::Utc::now().timestamp_micros())
    }

    pub fn from_datetime(value: chrono::DateTime<chrono::Utc>) -> Self {
        Self(value.timestamp_micros())
    }

    pub fn to_datetime(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_micros(self.0).unwrap_or_default()
    }

    pub fn plus_millis(self, millis: i64) -> Self {
        Self(self.0 + millis * 1_000)
    }

    /// RFC 3339 in UTC with second precision: identical on server and browser,
    /// so it is safe to render before hydration.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// Short UTC form for tables: `2026-11-27 09:13`.
    pub fn short_utc(self) -> String {
        self.to_datetime().format("%Y-%m-%d %H:%M UTC").to_string()
    }

    /// Parses RFC 3339 (`2026-11-27T09:00:00Z`) or a bare date (`2026-11-27`,
    /// read as midnight UTC).
    pub fn parse(input: &str) -> Result<Self, super::ParseError> {
        let input = input.trim();
        if let Ok(value) = chrono::DateTime::parse_from_rfc3339(input) {
            return Ok(Self::from_datetime(value.to_utc()));
        }
        chrono::NaiveDate::parse_from_str(input, "%Y-%m-%d")
            .ok()
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .map(|dt| Self::from_datetime(dt.and_utc()))
            .ok_or_else(|| {
                super::ParseError(format!(
                    "{input:?} is not a time (expected RFC 3339 or YYYY-MM-DD)"
                ))
            })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Human duration such as `3m 07s`.
pub fn format_duration(from: Timestamp, to: Timestamp) -> String {
    let secs = ((to.0 - from.0).max(0)) / 1_000_000;
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3_600, (s % 3_600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_and_dates() {
        let t = Timestamp::parse("2026-11-27T09:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-27T09:00:00Z");
        assert_eq!(
            Timestamp::parse("2026-11-27").unwrap(),
            t.plus_millis(-9 * 3_600_000)
        );
        assert!(Timestamp::parse("yesterday").is_err());
    }

    #[test]
    fn formats_durations() {
        let t = Timestamp(0);
        assert_eq!(format_duration(t, Timestamp(59_000_000)), "59s");
        assert_eq!(format_duration(t, Timestamp(187_000_000)), "3m 07s");
        assert_eq!(format_duration(t, Timestamp(7_260_000_000)), "2h 01m");
    }
}
