//! Field-level checks shared by every kind, and the collector that gathers their
//! errors with field paths, so an operator fixes a document in one pass.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use weft_api::proxy::{FieldError, ValidationErrors};
use weft_api::resource::PolicyTargetRef;

/// Every problem found so far.
#[derive(Debug, Default)]
pub(crate) struct Errors(Vec<FieldError>);

impl Errors {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Adds every problem of `other`.
    pub(crate) fn extend(&mut self, other: Errors) {
        self.0.extend(other.0);
    }

    pub(crate) fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.0))
        }
    }
}

/// Deserializes `value` as `T`, locating a shape error under `prefix`
/// (`spec.rules[1].backendRefs[0].weight`).
///
/// Serde also reads a struct from a list of its field values and a unit variant from a
/// one-key mapping (`{"strict": null}`); documents are stored as written, so those
/// shapes, which the published schema refuses, are refused here too: `T` written back
/// must have the JSON type of the input wherever both have a value.
pub(crate) fn parse<T: DeserializeOwned + Serialize>(
    prefix: &str,
    value: serde_json::Value,
) -> Result<T, FieldError> {
    let given = value.clone();
    let parsed: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let message = e.into_inner().to_string();
        let path = match inner.as_str() {
            "." | "" => prefix.to_owned(),
            p if prefix.is_empty() => p.to_owned(),
            p => format!("{prefix}.{p}"),
        };
        FieldError { path, message }
    })?;
    if let Ok(written) = serde_json::to_value(&parsed) {
        if let Some(error) = shape_mismatch(&given, &written, prefix) {
            return Err(error);
        }
    }
    Ok(parsed)
}

/// The first place where `given` has another JSON type than `written`.
fn shape_mismatch(given: &Value, written: &Value, path: &str) -> Option<FieldError> {
    let at = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (given, written) {
        (Value::Object(given), Value::Object(written)) => given.iter().find_map(|(key, g)| {
            written
                .get(key)
                .and_then(|w| shape_mismatch(g, w, &at(key)))
        }),
        (Value::Array(given), Value::Array(written)) => given
            .iter()
            .zip(written)
            .enumerate()
            .find_map(|(i, (g, w))| shape_mismatch(g, w, &format!("{path}[{i}]"))),
        (Value::Null, _) | (_, Value::Null) => None,
        (g, w) if json_type(g) == json_type(w) => None,
        (g, w) => Some(FieldError {
            path: path.to_owned(),
            message: format!("must be {}, not {}", json_type(w), json_type(g)),
        }),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A lower-case RFC 1123 label: names, namespaces, service accounts, port names.
pub(crate) fn label(errors: &mut Errors, path: &str, value: &str) {
    if !is_label(value) {
        errors.push(
            path,
            format!(
                "{value:?} is not a valid name: use at most 63 lowercase letters, digits and \
                 '-', starting and ending with a letter or digit"
            ),
        );
    }
}

pub(crate) fn is_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// A lower-case RFC 1123 subdomain (dot-separated labels, at most 253).
pub(crate) fn is_subdomain(value: &str) -> bool {
    value.len() <= 253 && value.split('.').all(is_label)
}

/// Kubernetes label keys (`[prefix/]name`) and values.
pub(crate) fn labels(errors: &mut Errors, path: &str, labels: &BTreeMap<String, String>) {
    for (key, value) in labels {
        if !is_label_key(key) {
            errors.push(
                format!("{path}.{key}"),
                format!(
                    "{key:?} is not a valid label key: an optional DNS prefix and '/', then at \
                     most 63 letters, digits, '-', '_' or '.', starting and ending with a \
                     letter or digit"
                ),
            );
        }
        if !value.is_empty() && !is_label_name(value) {
            errors.push(
                format!("{path}.{key}"),
                format!(
                    "{value:?} is not a valid label value: at most 63 letters, digits, '-', \
                     '_' or '.', starting and ending with a letter or digit"
                ),
            );
        }
    }
}

/// Annotation keys have the label-key shape; values are free-form.
pub(crate) fn annotation_keys(errors: &mut Errors, path: &str, map: &BTreeMap<String, String>) {
    for key in map.keys() {
        if !is_label_key(key) {
            errors.push(
                format!("{path}.{key}"),
                format!("{key:?} is not a valid annotation key (an optional DNS prefix and '/', then a name)"),
            );
        }
    }
}

fn is_label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_subdomain(prefix) && is_label_name(name),
        None => is_label_name(key),
    }
}

fn is_label_name(value: &str) -> bool {
    let bytes = value.as_bytes();
    !value.is_empty()
        && value.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A regular expression as the proxy compiles it: anchored, matching the whole value.
pub(crate) fn regex(errors: &mut Errors, path: &str, pattern: &str) {
    if let Err(e) = regex::Regex::new(&format!("^(?:{pattern})$")) {
        let detail = e.to_string();
        let last = detail.lines().last().unwrap_or_default().trim().to_owned();
        errors.push(
            path,
            format!("{pattern:?} is not a valid regular expression ({last}); the syntax is Rust's `regex` (RE2-like)"),
        );
    }
}

/// Ports in specs are `u16`, so only 0 is out of range here; larger values fail to
/// parse with their path.
pub(crate) fn port(errors: &mut Errors, path: &str, port: u16) {
    if port == 0 {
        errors.push(path, "0 is not a port: use 1-65535");
    }
}

/// A Gateway API duration (`10s`, `500ms`) that must be longer than zero and at most
/// `max` (`weft_api::duration::MAX` for timers, `MAX_LIFETIME` for lifetimes).
pub(crate) fn positive_duration(
    errors: &mut Errors,
    path: &str,
    text: &str,
    max: std::time::Duration,
) -> Option<std::time::Duration> {
    match weft_api::resource::route::parse_duration(text) {
        Ok(d) if d.is_zero() => {
            errors.push(path, "must be longer than 0s");
            None
        }
        Ok(d) => match weft_api::duration::at_most(d, max) {
            Ok(()) => Some(d),
            Err(why) => {
                errors.push(path, why);
                None
            }
        },
        Err(e) => {
            errors.push(path, e);
            None
        }
    }
}

/// Checks the `targetRefs` of a policy that targets services.
pub(crate) fn validate_targets(errors: &mut Errors, kind: &str, refs: &[PolicyTargetRef]) {
    if refs.is_empty() {
        errors.push(
            "spec.targetRefs",
            format!("a {kind} needs at least one target, e.g. [{{kind: Service, name: catalog}}]"),
        );
    }
    for (i, t) in refs.iter().enumerate() {
        service_ref(
            errors,
            &format!("spec.targetRefs[{i}]"),
            (t.group.as_deref(), &t.kind, &t.name),
            &format!("a {kind} targets a Service"),
        );
    }
}

/// Checks one reference to a `Service` (`group`, `kind`, `name`) at `path`; `hint`
/// ends the message about another kind.
pub(crate) fn service_ref(
    errors: &mut Errors,
    path: &str,
    (group, kind, name): (Option<&str>, &str, &str),
    hint: &str,
) {
    if !matches!(group, None | Some("" | "weft.dev")) {
        errors.push(
            format!("{path}.group"),
            format!(
                "{:?} is not supported; use \"\" or \"weft.dev\" (a Service)",
                group.unwrap_or_default()
            ),
        );
    }
    if kind != "Service" {
        errors.push(
            format!("{path}.kind"),
            format!("{kind:?} is not supported; {hint}"),
        );
    }
    label(errors, &format!("{path}.name"), name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rfc1123_labels_only() {
        for ok in ["a", "echo-v2", "0abc", &"a".repeat(63)] {
            assert!(is_label(ok), "{ok}");
        }
        for bad in ["", "Echo", "-a", "a-", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!is_label(bad), "{bad}");
        }
    }

    #[test]
    fn refuses_a_struct_written_as_a_list_and_a_variant_written_as_a_mapping() {
        use weft_api::resource::{backend, mesh};
        let list = serde_json::json!({
            "targetRefs": [{"kind": "Service", "name": "web"}],
            "retryBudget": [null, null]
        });
        let error = parse::<backend::Spec>("spec", list).err().map(|e| e.path);
        assert_eq!(error.as_deref(), Some("spec.retryBudget"));
        let mapping = serde_json::json!({"mtls": {"mode": {"strict": null}}});
        let error = parse::<mesh::Spec>("spec", mapping).err();
        assert_eq!(
            error.map(|e| (e.path, e.message)),
            Some((
                "spec.mtls.mode".to_owned(),
                "must be a string, not a mapping".to_owned()
            ))
        );
        let fine = serde_json::json!({"mtls": {"mode": "permissive"}, "ca": {"provided": null}});
        assert!(parse::<mesh::Spec>("spec", fine).is_ok());
    }

    #[test]
    fn checks_label_keys_and_values() {
        let mut errors = Errors::default();
        let map: BTreeMap<String, String> = [
            ("app", "echo"),
            ("weft.dev/zone", "eu_1.a"),
            ("bad key", "x"),
            ("tier", "-x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        labels(&mut errors, "metadata.labels", &map);
        let paths: Vec<_> = errors.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["metadata.labels.bad key", "metadata.labels.tier"]);
    }
}
