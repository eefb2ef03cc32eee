//! Claims of a verified token as request-header values (`claimsToHeaders`).
//!
//! Strings go as they are, numbers and booleans as their JSON text, arrays of strings
//! joined with `,`. Anything that would not make a clean header value is refused
//! rather than mangled: objects, arrays holding other than strings, control
//! characters (which could split or smuggle a header), and leading or trailing
//! whitespace (which a parser would silently drop). Non-ASCII text is passed as UTF-8.

use http::HeaderValue;
use serde_json::Value;

/// Why a claim's value cannot become a header value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The claim is a JSON object.
    #[error(
        "the claim is an object; only strings, numbers, booleans and arrays of strings are copied"
    )]
    Object,
    /// The claim is an array with an element that is not a string.
    #[error("the claim is an array holding something other than strings")]
    NotAllStrings,
    /// The claim is `null`.
    #[error("the claim is null")]
    Null,
    /// The text holds a control character (CR, LF, NUL, TAB, DEL, C1…).
    #[error("the claim holds a control character")]
    ControlCharacter,
    /// The text starts or ends with whitespace.
    #[error("the claim starts or ends with whitespace")]
    SurroundingWhitespace,
}

/// The header value for a claim's JSON value, or why there is none.
pub fn header_value(value: &Value) -> Result<HeaderValue, Refusal> {
    match value {
        Value::String(text) => text_value(text),
        Value::Number(number) => text_value(&number.to_string()),
        Value::Bool(true) => Ok(HeaderValue::from_static("true")),
        Value::Bool(false) => Ok(HeaderValue::from_static("false")),
        Value::Array(items) => {
            let mut joined = String::new();
            for (i, item) in items.iter().enumerate() {
                let Value::String(text) = item else {
                    return Err(Refusal::NotAllStrings);
                };
                check_text(text)?;
                if i > 0 {
                    joined.push(',');
                }
                joined.push_str(text);
            }
            bytes_value(joined.into_bytes())
        }
        Value::Object(_) => Err(Refusal::Object),
        Value::Null => Err(Refusal::Null),
    }
}

fn text_value(text: &str) -> Result<HeaderValue, Refusal> {
    check_text(text)?;
    bytes_value(text.as_bytes().to_vec())
}

fn check_text(text: &str) -> Result<(), Refusal> {
    if text.chars().any(char::is_control) {
        return Err(Refusal::ControlCharacter);
    }
    if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        return Err(Refusal::SurroundingWhitespace);
    }
    Ok(())
}

fn bytes_value(bytes: Vec<u8>) -> Result<HeaderValue, Refusal> {
    // Unreachable after `check_text`; kept as the last word on validity.
    HeaderValue::from_maybe_shared(bytes::Bytes::from(bytes)).map_err(|_| Refusal::ControlCharacter)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn converts_strings_numbers_booleans_and_string_arrays() {
        for (claim, expected) in [
            (json!("alice@example.com"), "alice@example.com".as_bytes()),
            (json!("José"), "José".as_bytes()),
            (json!(42), b"42"),
            (json!(-1.5), b"-1.5"),
            (json!(true), b"true"),
            (json!(false), b"false"),
            (json!(["admin", "ops"]), b"admin,ops"),
            (json!([]), b""),
        ] {
            let value = header_value(&claim).unwrap_or_else(|e| panic!("{claim}: {e}"));
            assert_eq!(value.as_bytes(), expected, "{claim}");
        }
    }

    #[test]
    fn refuses_values_that_would_not_be_clean_headers() {
        for (claim, expected) in [
            (
                json!("a\r\nx-weft-principal: admin"),
                Refusal::ControlCharacter,
            ),
            (json!("nul\u{0}"), Refusal::ControlCharacter),
            (json!("tab\there"), Refusal::ControlCharacter),
            (json!("del\u{7f}"), Refusal::ControlCharacter),
            (json!("c1\u{85}"), Refusal::ControlCharacter),
            (json!(["ok", "bad\n"]), Refusal::ControlCharacter),
            (json!(" padded"), Refusal::SurroundingWhitespace),
            (json!({"role": "admin"}), Refusal::Object),
            (json!(["a", 1]), Refusal::NotAllStrings),
            (json!(null), Refusal::Null),
        ] {
            assert_eq!(header_value(&claim), Err(expected), "{claim}");
        }
    }
}
