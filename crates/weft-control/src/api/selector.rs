//! Label selectors as in `?labelSelector=` and `weft get -l`: a comma-separated list of
//! requirements that must all hold — `key=value` (or `key==value`), `key!=value`,
//! `key` (the label exists) and `!key` (it does not).
//!
//! Keys are letters, digits, `-`, `_`, `.` and `/`; values the same without `/` and may
//! be empty. Spaces around requirements and operators are allowed, nothing else is:
//! [`PATTERN`] is this grammar as a regular expression, the one `/openapi.json` states.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The selector grammar as an ECMA-262 regular expression, for the OpenAPI document.
/// It accepts exactly what [`Selector::from_str`] accepts (a test holds them together).
pub const PATTERN: &str = concat!(
    r"^ *(?:(?:!? *[A-Za-z0-9._/-]+|[A-Za-z0-9._/-]+ *(?:==?|!=) *[A-Za-z0-9._-]*) *)?",
    r"(?:, *(?:(?:!? *[A-Za-z0-9._/-]+|[A-Za-z0-9._/-]+ *(?:==?|!=) *[A-Za-z0-9._-]*) *)?)*$",
);

/// A parsed label selector. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

/// One requirement of a [`Selector`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// The label is present with this value.
    Equals(String, String),
    /// The label is absent or has another value.
    NotEquals(String, String),
    /// The label is present.
    Exists(String),
    /// The label is absent.
    DoesNotExist(String),
}

/// A selector that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {selector:?}: {message}")]
pub struct ParseError {
    /// The selector as given.
    pub selector: String,
    /// What is wrong with it.
    pub message: String,
}

// === impl Selector ===

impl Selector {
    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    /// The requirements, in the order written.
    pub fn requirements(&self) -> &[Requirement] {
        &self.0
    }

    /// Whether the selector has no requirement (matches everything).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for Selector {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |message: String| ParseError {
            selector: text.to_owned(),
            message,
        };
        let mut requirements = Vec::new();
        for part in text.split(',').map(trim).filter(|p| !p.is_empty()) {
            let requirement = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(key(k).map_err(fail)?, value(v).map_err(fail)?)
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(key(k).map_err(fail)?, value(v).map_err(fail)?)
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::DoesNotExist(key(k).map_err(fail)?)
            } else {
                Requirement::Exists(key(part).map_err(fail)?)
            };
            requirements.push(requirement);
        }
        Ok(Selector(requirements))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match r {
                Requirement::Equals(k, v) => write!(f, "{k}={v}")?,
                Requirement::NotEquals(k, v) => write!(f, "{k}!={v}")?,
                Requirement::Exists(k) => write!(f, "{k}")?,
                Requirement::DoesNotExist(k) => write!(f, "!{k}")?,
            }
        }
        Ok(())
    }
}

/// Spaces (only) around requirements and operators are not part of them.
fn trim(text: &str) -> &str {
    text.trim_matches(' ')
}

fn key(text: &str) -> Result<String, String> {
    let text = trim(text);
    if text.is_empty() {
        return Err("a requirement has an empty key".to_owned());
    }
    if let Some(c) = text.chars().find(|c| !is_label_char(*c) && *c != '/') {
        return Err(format!("key {text:?} contains {c:?}"));
    }
    Ok(text.to_owned())
}

fn value(text: &str) -> Result<String, String> {
    let text = trim(text);
    if let Some(c) = text.chars().find(|c| !is_label_char(*c)) {
        return Err(format!("value {text:?} contains {c:?}"));
    }
    Ok(text.to_owned())
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn matches_equality_inequality_and_existence_together() {
        let selector: Selector = "app=web,tier!=db,env".parse().unwrap();
        assert!(selector.matches(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(selector.matches(&labels(&[("app", "web"), ("tier", "fe"), ("env", "")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("tier", "db"), ("env", "x")])));
        assert!(!selector.matches(&labels(&[("app", "web")])));
        assert!(!selector.matches(&labels(&[("app", "api"), ("env", "x")])));
    }

    #[test]
    fn double_equals_and_negated_existence_are_accepted() {
        let selector: Selector = "app==web, !canary".parse().unwrap();
        assert!(selector.matches(&labels(&[("app", "web")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("canary", "true")])));
    }

    #[test]
    fn empty_selector_matches_everything() {
        let selector: Selector = "".parse().unwrap();
        assert!(selector.is_empty());
        assert!(selector.matches(&labels(&[])));
    }

    #[test]
    fn rejects_empty_keys_and_bad_characters() {
        assert!("=web".parse::<Selector>().is_err());
        assert!("app=we b".parse::<Selector>().is_err());
        assert!("app in (a,b)".parse::<Selector>().is_err());
    }

    #[test]
    fn the_documented_pattern_accepts_exactly_what_parses() {
        let pattern = regex::Regex::new(PATTERN).unwrap();
        for text in [
            "",
            ",",
            " , ,",
            "app",
            "app=web",
            "app==web",
            "app!=web",
            "!app",
            "! app",
            " app = web , tier != db ,env, !canary ",
            "app=",
            "app==",
            "app!=",
            "weft.dev/zone=eu_1.a",
            "/",
            "a/b/c",
            "=web",
            "!=web",
            "app=we b",
            "app=web=x",
            "app===web",
            "app!==web",
            "app=!web",
            "!app=web",
            "!!app",
            "!",
            "app in (a,b)",
            "app=a/b",
            "\tapp",
            "app\n",
            "app=é",
            "a pp",
            "app,,tier",
        ] {
            assert_eq!(
                text.parse::<Selector>().is_ok(),
                pattern.is_match(text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn displays_in_the_syntax_it_parses() {
        let text = "app=web,tier!=db,env,!canary";
        assert_eq!(text.parse::<Selector>().unwrap().to_string(), text);
    }
}
