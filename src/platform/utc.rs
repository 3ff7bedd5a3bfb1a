//! UTC calendar times without a time-zone database: run directory names and provenance.

use std::time::{SystemTime, UNIX_EPOCH};

/// (year, month, day, hour, minute, second) of `time`, UTC, proleptic Gregorian.
fn fields(time: SystemTime) -> (i64, u32, u32, u64, u64, u64) {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `YYYYMMDDTHHMMSSZ`, for names.
pub fn stamp(time: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = fields(time);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

/// `YYYY-MM-DDTHH:MM:SSZ` (ISO 8601), for records.
pub fn iso8601(time: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = fields(time);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_utc_calendar_times() {
        assert_eq!(stamp(UNIX_EPOCH), "19700101T000000Z");
        // 2026-11-25 09:30:15 UTC.
        let t = UNIX_EPOCH + Duration::from_secs(1_795_599_015);
        assert_eq!(stamp(t), "20261125T093015Z");
        assert_eq!(iso8601(t), "2026-11-25T09:30:15Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(stamp(t), "20000229T000000Z");
        assert_eq!(iso8601(t), "2000-02-29T00:00:00Z");
    }
}
