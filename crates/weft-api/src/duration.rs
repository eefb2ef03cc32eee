//! Human-readable durations (`500ms`, `10s`, `24h`) for config files.
//!
//! Every duration in Weft's configuration is written the way an operator would say it;
//! numbers without a unit are rejected because they are ambiguous.
//!
//! Every duration is also bounded: a timer is an `Instant + Duration`, and an absurd value
//! (`100000000h`) would overflow it and panic the task that arms it. [`MAX`] bounds every
//! timeout, interval, delay and backoff; [`MAX_LIFETIME`] bounds the few values that are
//! lifetimes rather than timers (a session cookie's TTL). Both the proxy's local config
//! (`proxy::validate`) and the control plane's resources (`weft-policy`) check them, and
//! name the field, the value and the maximum.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// The longest timeout, interval, delay or backoff Weft accepts: `24h`. Nothing on a
/// request or connection path needs to wait longer, and anything longer is almost
/// certainly a typo.
pub const MAX: Duration = Duration::from_secs(24 * 3600);

/// The longest lifetime Weft accepts (a session cookie's TTL): `8760h`, 365 days.
pub const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// Checks that `value` is at most `max`; the error shows both, to follow a field path.
pub fn at_most(value: Duration, max: Duration) -> Result<(), String> {
    if value <= max {
        return Ok(());
    }
    Err(format!(
        "{} is longer than the maximum, {}",
        display(value),
        display(max)
    ))
}

/// Whole hours as `24h` (the form both config dialects accept), anything else as
/// `humantime` text.
pub fn display(value: Duration) -> String {
    let secs = value.as_secs();
    if value.subsec_nanos() == 0 && secs > 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else {
        humantime::format_duration(value).to_string()
    }
}

/// Serializes a duration as `humantime` text (`1s 500ms`).
pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_duration(*value))
}

/// Deserializes `humantime` text, with an error that shows the expected shape.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// Parses `500ms`, `10s`, `1m 30s`.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?}: {e} (write a number with a unit, e.g. \"500ms\" or \"10s\")")
    })
}

/// The same, for `Option<Duration>` fields (`null` or absent means none).
pub mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes `Some` as text and `None` as null.
    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => serializer.collect_str(&humantime::format_duration(*d)),
            None => serializer.serialize_none(),
        }
    }

    /// Deserializes optional `humantime` text.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| super::parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
    }

    #[test]
    fn bounds_name_the_value_and_the_maximum() {
        assert_eq!(at_most(MAX, MAX), Ok(()));
        let err = at_most(Duration::from_secs(100_000_000 * 3600), MAX)
            .expect_err("100000000h is longer than a day");
        assert_eq!(err, "100000000h is longer than the maximum, 24h");
        assert_eq!(display(MAX_LIFETIME), "8760h");
        assert_eq!(display(Duration::from_millis(1500)), "1s 500ms");
    }

    #[test]
    fn rejects_bare_numbers_with_a_hint() {
        let err = parse("5").expect_err("bare number must be rejected");
        assert!(err.contains("\"500ms\""), "{err}");
    }
}
