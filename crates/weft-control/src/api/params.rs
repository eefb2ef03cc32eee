//! The parameters of the API's operations: names and namespaces in paths, and the query
//! string of a list. Each is checked here against the rule `/openapi.json` states for it
//! (the patterns below are written into the document), so a value the document refuses
//! is refused with `400` naming the parameter, quoting the value and saying what is
//! allowed, and a value it allows is never refused for its form.

use std::time::Duration;

use serde::Deserialize;

use super::error::Error;
use super::selector::{self, Selector};

/// Names and namespaces: a lower-case RFC 1123 label, at most 63 characters.
pub(super) const LABEL_PATTERN: &str = "^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$";

/// `resourceVersion`: a store revision, decimal, at most 18 digits; or empty.
pub(super) const REVISION_PATTERN: &str = "^[0-9]{0,18}$";

/// Largest `timeoutSeconds`: one day.
pub(super) const MAX_TIMEOUT_SECONDS: u64 = 86_400;

/// What [`check_label`] says a label is.
pub(super) const LABEL_RULE: &str =
    "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit";

/// The query string of a list, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ListQuery {
    label_selector: Option<String>,
    watch: Option<String>,
    resource_version: Option<String>,
    timeout_seconds: Option<String>,
}

/// The query string of a list, checked.
#[derive(Debug)]
pub(super) struct List {
    /// `labelSelector`; empty when absent.
    pub(super) selector: Selector,
    /// `watch=true`.
    pub(super) watch: bool,
    /// `resourceVersion`, when a revision other than `0`: with `watch`, the stream
    /// replays the changes after it instead of starting from a full list.
    pub(super) resource_version: Option<u64>,
    /// `timeoutSeconds`: how long a watch's stream lasts. A list is answered at once.
    pub(super) timeout: Option<Duration>,
}

// === impl ListQuery ===

impl ListQuery {
    /// Checks each parameter.
    pub(super) fn check(self) -> Result<List, Error> {
        let selector = match self.label_selector.as_deref() {
            None => Selector::default(),
            Some(text) => text.parse().map_err(|e: selector::ParseError| {
                query(
                    "labelSelector",
                    format!(
                        "{:?}: {}; write requirements key=value, key==value, key!=value, key or \
                         !key, separated by commas (keys: letters, digits, '-', '_', '.', '/'; \
                         values: the same but '/', may be empty)",
                        e.selector, e.message
                    ),
                )
            })?,
        };
        let watch = match self.watch.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(query(
                    "watch",
                    format!("{other:?} is not a boolean; use watch=true or watch=false"),
                ))
            }
        };
        let resource_version = match self.resource_version.as_deref() {
            None | Some("") => None,
            Some(text) => match revision(text) {
                Some(0) => None,
                Some(revision) => Some(revision),
                None => {
                    return Err(query(
                        "resourceVersion",
                        format!(
                            "{text:?} is not a revision: use digits only (at most 18), e.g. the \
                             metadata.resourceVersion of a list"
                        ),
                    ))
                }
            },
        };
        let timeout = match self.timeout_seconds.as_deref() {
            None => None,
            Some(text) => Some(seconds(text).ok_or_else(|| {
                query(
                    "timeoutSeconds",
                    format!(
                        "{text:?} is not a number of seconds above 0 and at most \
                         {MAX_TIMEOUT_SECONDS}, e.g. 30 or 0.5"
                    ),
                )
            })?),
        };
        Ok(List {
            selector,
            watch,
            resource_version,
            timeout,
        })
    }
}

/// A `timeoutSeconds`: a decimal number (fractions and exponents allowed, as JSON
/// writes numbers) above 0 and at most [`MAX_TIMEOUT_SECONDS`].
fn seconds(text: &str) -> Option<Duration> {
    // Rust's float syntax also takes `inf` and `NaN`; only digits, a sign, `.` and an
    // exponent are numbers here.
    if !text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'+' | b'-' | b'e' | b'E'))
    {
        return None;
    }
    let seconds: f64 = text.parse().ok()?;
    (seconds > 0.0 && seconds <= MAX_TIMEOUT_SECONDS as f64)
        .then(|| Duration::from_secs_f64(seconds))
}

/// A revision as [`REVISION_PATTERN`] allows it (not empty).
pub(super) fn revision(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn query(name: &str, problem: String) -> Error {
    Error::invalid_parameter("query", name, problem)
}

/// Checks path parameter `name` (a namespace or an object name) against
/// [`LABEL_PATTERN`].
pub(super) fn check_label(name: &str, value: &str) -> Result<(), Error> {
    if is_label(value) {
        Ok(())
    } else {
        Err(Error::invalid_parameter(
            "path",
            name,
            format!("{value:?} is not a valid {name}: {LABEL_RULE}"),
        ))
    }
}

/// Whether `value` matches [`LABEL_PATTERN`].
pub(super) fn is_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn list(pairs: &[(&str, &str)]) -> Result<List, Error> {
        let mut raw = ListQuery::default();
        for (name, value) in pairs {
            let value = Some((*value).to_owned());
            match *name {
                "labelSelector" => raw.label_selector = value,
                "watch" => raw.watch = value,
                "resourceVersion" => raw.resource_version = value,
                "timeoutSeconds" => raw.timeout_seconds = value,
                other => panic!("no parameter {other}"),
            }
        }
        raw.check()
    }

    #[test]
    fn label_check_agrees_with_the_documented_pattern() {
        let pattern = regex::Regex::new(LABEL_PATTERN).unwrap();
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        for value in [
            "a", "web", "web-1", "0", "a-b-c", &long, "", "-a", "a-", "A", "a_b", "a.b", "é",
            &too_long, "a b",
        ] {
            assert_eq!(is_label(value), pattern.is_match(value), "{value:?}");
        }
    }

    #[test]
    fn watch_other_than_true_or_false_is_400_naming_the_parameter_and_value() {
        assert!(list(&[("watch", "true")]).unwrap().watch);
        assert!(!list(&[("watch", "false")]).unwrap().watch);
        let error = list(&[("watch", "AAA")]).unwrap_err();
        assert_eq!(error.code(), 400);
        assert!(error.message().contains("query parameter watch"), "{error}");
        assert!(error.message().contains("\"AAA\""), "{error}");
        assert!(
            error.message().contains("watch=true or watch=false"),
            "{error}"
        );
        assert_eq!(error.details()[0].path, "watch");
    }

    #[test]
    fn resource_version_must_be_digits_whether_or_not_watching() {
        let pattern = regex::Regex::new(REVISION_PATTERN).unwrap();
        for (text, want) in [
            ("", Some(None)),
            ("0", Some(None)),
            ("000", Some(None)),
            ("42", Some(Some(42))),
            ("999999999999999999", Some(Some(999_999_999_999_999_999))),
            ("1000000000000000000", None),
            ("+5", None),
            ("-1", None),
            ("abc", None),
            ("1 ", None),
        ] {
            let got = list(&[("resourceVersion", text)]).map(|l| l.resource_version);
            assert_eq!(got.as_ref().ok().copied(), want, "{text:?}");
            assert_eq!(pattern.is_match(text), want.is_some(), "{text:?}");
            if let Err(error) = got {
                assert!(error.message().contains("resourceVersion"), "{error}");
            }
        }
    }

    #[test]
    fn timeout_seconds_is_a_number_above_0_and_up_to_a_day() {
        let secs = |text: &str| list(&[("timeoutSeconds", text)]).map(|l| l.timeout);
        assert_eq!(secs("1").unwrap(), Some(Duration::from_secs(1)));
        assert_eq!(secs("0.25").unwrap(), Some(Duration::from_millis(250)));
        assert_eq!(secs("5e-2").unwrap(), Some(Duration::from_millis(50)));
        assert_eq!(secs("86400").unwrap(), Some(Duration::from_secs(86_400)));
        for bad in [
            "0", "0.0", "86400.5", "-1", "x", "", "inf", "NaN", " 1", "1_0",
        ] {
            let error = secs(bad).unwrap_err();
            assert!(error.message().contains("timeoutSeconds"), "{error}");
        }
    }

    #[test]
    fn label_selector_errors_name_the_parameter_and_show_the_syntax() {
        let error = list(&[("labelSelector", "app in (a)")]).unwrap_err();
        assert!(
            error.message().contains("query parameter labelSelector"),
            "{error}"
        );
        assert!(error.message().contains("key!=value"), "{error}");
    }
}
