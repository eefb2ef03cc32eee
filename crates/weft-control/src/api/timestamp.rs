//! RFC 3339 timestamps as the API reads them: the `date-time` format `/openapi.json`
//! states, exactly — `2030-01-01T00:00:00Z`, `2030-01-01T01:00:00.25+01:00` — with an
//! upper-case `T` and `Z`, a real calendar date (years 0001-9999), no leap second.
//!
//! A hand parser rather than `humantime`'s, which takes only `Z` and no dates before 1970.

use std::time::{Duration, SystemTime};

/// The last second `humantime` (and so every answer of this API) can write:
/// 9999-12-31T23:59:59Z.
const LAST_SECOND: i64 = 253_402_300_799;

/// A parsed timestamp: seconds and nanoseconds since the Unix epoch (negative before).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Timestamp {
    secs: i64,
    nanos: u32,
}

// === impl Timestamp ===

impl Timestamp {
    /// Parses `text`; `None` unless it is an RFC 3339 `date-time` as described above.
    pub(super) fn parse(text: &str) -> Option<Timestamp> {
        let b = text.as_bytes();
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let year = number(&b[0..4])?;
        let month = number(&b[5..7])?;
        let day = number(&b[8..10])?;
        let hour = number(&b[11..13])?;
        let minute = number(&b[14..16])?;
        let second = number(&b[17..19])?;
        if year == 0
            || !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let mut rest = &b[19..];
        let mut nanos = 0u32;
        if let Some(fraction) = rest.strip_prefix(b".") {
            let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            for (i, digit) in fraction[..digits].iter().take(9).enumerate() {
                nanos += u32::from(digit - b'0') * 10u32.pow(8 - i as u32);
            }
            rest = &fraction[digits..];
        }
        let offset = match rest {
            b"Z" => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let hours = number(&[*h1, *h2])?;
                let minutes = number(&[*m1, *m2])?;
                if hours > 23 || minutes > 59 {
                    return None;
                }
                let offset = hours * 3600 + minutes * 60;
                if *sign == b'-' {
                    -offset
                } else {
                    offset
                }
            }
            _ => return None,
        };
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
        Some(Timestamp { secs, nanos })
    }

    /// The time, no earlier than `now` and no later than 9999-12-31T23:59:59Z.
    pub(super) fn clamped(self, now: SystemTime) -> SystemTime {
        let last = SystemTime::UNIX_EPOCH + Duration::from_secs(LAST_SECOND.unsigned_abs());
        let time = if self.secs < 0 {
            None
        } else {
            SystemTime::UNIX_EPOCH.checked_add(Duration::new(self.secs.unsigned_abs(), self.nanos))
        };
        match time {
            Some(time) if time > last => last,
            Some(time) if time >= now => time,
            _ => now,
        }
    }
}

/// A run of ASCII digits as a number.
fn number(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0i64, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn secs(text: &str) -> Option<i64> {
        Timestamp::parse(text).map(|t| t.secs)
    }

    #[test]
    fn reads_utc_offsets_and_fractions() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(secs("2030-01-01T00:00:00Z"), Some(1_893_456_000));
        assert_eq!(secs("2030-01-01T01:00:00+01:00"), Some(1_893_456_000));
        assert_eq!(secs("2029-12-31T19:30:00-04:30"), Some(1_893_456_000));
        assert_eq!(secs("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(secs("0001-01-01T00:00:00Z"), Some(-62_135_596_800));
        assert_eq!(secs("9999-12-31T23:59:59Z"), Some(LAST_SECOND));
        let t = Timestamp::parse("2030-01-01T00:00:00.25Z").unwrap();
        assert_eq!((t.secs, t.nanos), (1_893_456_000, 250_000_000));
        let t = Timestamp::parse("2030-01-01T00:00:00.1234567891Z").unwrap();
        assert_eq!(t.nanos, 123_456_789);
    }

    #[test]
    fn refuses_what_is_not_an_rfc_3339_date_time() {
        for bad in [
            "",
            "2030-01-01",
            "2030-01-01 00:00:00Z",
            "2030-01-01t00:00:00z",
            "2030-01-01T00:00:00",
            "2030-01-01T00:00:00.Z",
            "2030-13-01T00:00:00Z",
            "2030-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2030-04-31T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "2030-01-01T24:00:00Z",
            "2030-01-01T23:60:00Z",
            "2016-12-31T23:59:60Z",
            "2030-01-01T00:00:00+24:00",
            "2030-01-01T00:00:00+0100",
            "2030-01-01T00:00:00Z ",
            "+030-01-01T00:00:00Z",
            "2030-01-01T00:00:00Zé",
        ] {
            assert_eq!(secs(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn clamps_to_now_and_to_the_last_writable_second() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let past = Timestamp::parse("0001-01-01T00:00:00Z").unwrap();
        assert_eq!(past.clamped(now), now);
        let later = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
        assert_eq!(
            later.clamped(now),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000)
        );
        let beyond = Timestamp::parse("9999-12-31T23:59:59-23:59").unwrap();
        let last = beyond.clamped(now);
        assert_eq!(
            humantime::format_rfc3339_seconds(last).to_string(),
            "9999-12-31T23:59:59Z"
        );
    }
}
