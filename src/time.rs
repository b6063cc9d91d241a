//! Time as the books see it: instants are Unix milliseconds (UTC); days are hospital-local days
//! (China Standard Time, UTC+08:00, no daylight saving).

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};

pub type Millis = i64;

pub const MINUTE_MS: Millis = 60_000;
pub const HOUR_MS: Millis = 3_600_000;
pub const DAY_MS: Millis = 86_400_000;

/// UTC+08:00.
pub fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

pub fn to_beijing(ms: Millis) -> Option<DateTime<FixedOffset>> {
    Utc.timestamp_millis_opt(ms).single().map(|t| t.with_timezone(&beijing()))
}

/// The hospital-local date of an instant.
pub fn local_date(ms: Millis) -> Option<NaiveDate> {
    to_beijing(ms).map(|t| t.date_naive())
}

/// First millisecond of a hospital-local day.
pub fn day_start(date: NaiveDate) -> Millis {
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    beijing().from_local_datetime(&midnight).single().expect("fixed offset has no gaps").timestamp_millis()
}

/// `2026-11-22 14:05` in hospital time; empty for an impossible instant.
pub fn fmt_minute(ms: Millis) -> String {
    to_beijing(ms).map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default()
}

/// `2026-11-22 14:05:09` in hospital time.
pub fn fmt_second(ms: Millis) -> String {
    to_beijing(ms).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

/// RFC 3339 with the +08:00 offset, as WeChat Pay writes times.
pub fn rfc3339_beijing(ms: Millis) -> String {
    to_beijing(ms).map(|t| t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()).unwrap_or_default()
}

/// Parses a `yyyy-mm-dd` date from a form or URL.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    if s.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_days() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let start = day_start(d);
        // 2026-11-22 00:00 +08:00 == 2026-11-21 16:00 UTC
        assert_eq!(start, Utc.with_ymd_and_hms(2026, 11, 21, 16, 0, 0).unwrap().timestamp_millis());
        assert_eq!(local_date(start), Some(d));
        assert_eq!(local_date(start - 1), d.pred_opt());
        assert_eq!(fmt_minute(start), "2026-11-22 00:00");
        assert_eq!(rfc3339_beijing(start), "2026-11-22T00:00:00+08:00");
    }

    #[test]
    fn dates() {
        assert!(parse_date("2026-02-29").is_none());
        assert!(parse_date("2026-2-1").is_none());
        assert!(parse_date("2026-11-22").is_some());
        assert!(parse_date("2026-11-22T00").is_none());
    }
}
