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

    #[cfg(feature = "ssr")]
    pub fn from_datetime(value: chrono::DateTime<chrono::Utc>) -> Self {
        Self(value.timestamp_micros())
    }

    #[cfg(feature = "ssr")]
    pub fn to_datetime(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_micros(self.0).unwrap_or_default()
    }

    pub fn plus_millis(self, millis: i64) -> Self {
        Self(self.0 + millis * 1_000)
    }

    /// RFC 3339 in UTC with second precision: identical on server and browser,
    /// so it is safe to render before hydration.
    pub fn to_rfc3339(self) -> String {
        let (year, month, day, seconds) = self.utc_parts();
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            seconds / 3_600,
            seconds / 60 % 60,
            seconds % 60
        )
    }

    /// Short UTC form for tables: `2026-11-27 09:13`.
    pub fn short_utc(self) -> String {
        let (year, month, day, seconds) = self.utc_parts();
        format!(
            "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
            seconds / 3_600,
            seconds / 60 % 60
        )
    }

    /// The start (midnight UTC) of a day written `YYYY-MM-DD`.
    pub fn start_of_day(date: &str) -> Option<Self> {
        let mut parts = date.splitn(3, '-');
        let mut number = |digits: std::ops::RangeInclusive<usize>| {
            parts
                .next()
                .filter(|part| digits.contains(&part.len()))
                .filter(|part| part.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|part| part.parse::<i64>().ok())
        };
        let (year, month, day) = (number(4..=4)?, number(1..=2)?, number(1..=2)?);
        let valid = (1..=12).contains(&month) && (1..=days_in_month(year, month)).contains(&day);
        valid.then(|| Self(days_from_civil(year, month, day) * MICROS_PER_DAY))
    }

    /// A period named by a day (`2026-11-27`) or an hour of one
    /// (`2026-11-27T09`), in UTC: its start and its length in microseconds.
    pub fn period(text: &str) -> Option<(Self, i64)> {
        let Some((day, hour)) = text.split_once('T') else {
            return Self::start_of_day(text).map(|start| (start, MICROS_PER_DAY));
        };
        let hour = Some(hour)
            .filter(|h| h.len() == 2 && h.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|h| h.parse::<i64>().ok())
            .filter(|h| (0..24).contains(h))?;
        let micros_per_hour = MICROS_PER_DAY / 24;
        Self::start_of_day(day)
            .map(|start| (Self(start.0 + hour * micros_per_hour), micros_per_hour))
    }

    /// Year, month, day and hour of this instant in UTC.
    pub fn utc_date_hour(self) -> (i64, i64, i64, i64) {
        let (year, month, day, seconds) = self.utc_parts();
        (year, month, day, seconds / 3_600)
    }

    /// The name of the UTC hour this instant is in, as [`Self::period`]
    /// reads it: `2026-11-27T09`.
    pub fn hour_name(self) -> String {
        let (year, month, day, seconds) = self.utc_parts();
        format!("{year:04}-{month:02}-{day:02}T{:02}", seconds / 3_600)
    }

    /// Parses RFC 3339 (`2026-11-27T09:00:00Z`) or a bare date (`2026-11-27`,
    /// read as midnight UTC).
    #[cfg(feature = "ssr")]
    pub fn parse(input: &str) -> Result<Self, super::ParseError> {
        let input = input.trim();
        if let Ok(value) = chrono::DateTime::parse_from_rfc3339(input) {
            return Ok(Self::from_datetime(value.to_utc()));
        }
        Self::start_of_day(input)
            .ok_or_else(|| super::ParseError("not a time (expected RFC 3339 or YYYY-MM-DD)".into()))
    }

    /// Year, month, day and second of that day, in UTC. The calendar is
    /// computed here rather than with chrono, which the browser would then
    /// have to download.
    fn utc_parts(self) -> (i64, i64, i64, i64) {
        let seconds = self.0.div_euclid(1_000_000);
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        (year, month, day, seconds.rem_euclid(86_400))
    }
}

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Days since 1970-01-01 and proleptic Gregorian dates, both ways: Howard
// Hinnant's algorithms (http://howardhinnant.github.io/date_algorithms.html),
// counting in 400-year eras of 146,097 days that start on March 1st.

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = (shifted_month + 2) % 12 + 1;
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year, month, day)
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
    fn reads_days() {
        assert_eq!(Timestamp::start_of_day("1970-01-01"), Some(Timestamp(0)));
        assert_eq!(
            Timestamp::start_of_day("2024-02-29").map(Timestamp::to_rfc3339),
            Some("2024-02-29T00:00:00Z".to_string())
        );
        for bad in [
            "2023-02-29",
            "2026-13-01",
            "2026-04-31",
            "26-01-01",
            "2026-01-01T00",
            "",
        ] {
            assert_eq!(Timestamp::start_of_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_days_and_hours_as_periods() {
        let day = Timestamp::start_of_day("2026-11-27").unwrap();
        assert_eq!(Timestamp::period("2026-11-27"), Some((day, MICROS_PER_DAY)));
        let nine = Timestamp::period("2026-11-27T09").unwrap();
        assert_eq!(nine, (day.plus_millis(9 * 3_600_000), 3_600_000_000));
        assert_eq!(nine.0.plus_millis(59 * 60_000).hour_name(), "2026-11-27T09");
        for bad in [
            "2026-11-27T24",
            "2026-11-27T9",
            "2026-11-27T",
            "2026-11-27T09:00",
            "T09",
        ] {
            assert_eq!(Timestamp::period(bad), None, "{bad}");
        }
    }

    /// The calendar arithmetic agrees with chrono, before the epoch too.
    #[cfg(feature = "ssr")]
    #[test]
    fn formats_like_chrono() {
        let step = 86_400 * 1_000_000 * 7 + 3_661_000_001;
        for micros in
            (-80 * 365 * 86_400 * 1_000_000i64..400 * 365 * 86_400 * 1_000_000).step_by(step)
        {
            let t = Timestamp(micros);
            let chrono = t.to_datetime();
            assert_eq!(
                t.to_rfc3339(),
                chrono.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            assert_eq!(
                t.short_utc(),
                chrono.format("%Y-%m-%d %H:%M UTC").to_string()
            );
            let day = chrono.format("%Y-%m-%d").to_string();
            let midnight = chrono.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
            assert_eq!(
                Timestamp::start_of_day(&day),
                Some(Timestamp::from_datetime(midnight))
            );
        }
    }

    #[cfg(feature = "ssr")]
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
