//! Timestamps: RFC 3339 in UTC with millisecond precision, stored as text so they survive
//! JSON unchanged and sort correctly as strings.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::{Error, Result};

pub fn now() -> String {
    format(Utc::now())
}

pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 timestamp in any offset and normalizes it to UTC.
pub fn parse(field: &str, s: &str) -> Result<String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| format(t.with_timezone(&Utc)))
        .map_err(|_| Error::invalid(format!("{field} must be an RFC 3339 timestamp, e.g. 2026-07-04T18:30:00Z")))
}

/// Parses a calendar date (`YYYY-MM-DD`).
pub fn parse_date(field: &str, s: &str) -> Result<String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.format("%Y-%m-%d").to_string())
        .map_err(|_| Error::invalid(format!("{field} must be a date like 2026-07-04")))
}
