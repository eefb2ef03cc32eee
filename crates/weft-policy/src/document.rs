//! Reading operator input: a stream of YAML documents (`---` separated), one JSON
//! document, a JSON/YAML array of objects, or a `kind: List` with `items`.

use serde_json::Value;
use weft_api::resource::Object;

use crate::field;
use crate::ParseError;

/// See [`crate::parse_documents`].
pub(crate) fn parse(text: &str) -> Result<Vec<Object>, ParseError> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        ParseError {
            index: line.map_or(0, |l| document_at_line(text, l)),
            path: None,
            message: format!("not valid YAML: {e}"),
        }
    })?;
    let mut objects = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        for (prefix, value) in flatten(document) {
            if value.is_null() {
                continue;
            }
            let object: Object = field::parse(&prefix, value).map_err(|e| ParseError {
                index,
                path: Some(if e.path.is_empty() {
                    "(top level)".to_owned()
                } else {
                    e.path.clone()
                }),
                message: format!(
                    "{}: {}",
                    if e.path.is_empty() {
                        "(top level)"
                    } else {
                        &e.path
                    },
                    e.message
                ),
            })?;
            objects.push(object);
        }
    }
    Ok(objects)
}

/// The objects of one document with the path prefix that locates each: the document
/// itself, the elements of an array, or the `items` of a `kind: List`.
fn flatten(document: Value) -> Vec<(String, Value)> {
    match document {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("[{i}]"), v))
            .collect(),
        Value::Object(mut map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
            match map.remove("items") {
                Some(Value::Array(items)) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (format!("items[{i}]"), v))
                    .collect(),
                _ => Vec::new(),
            }
        }
        other => vec![(String::new(), other)],
    }
}

/// 0-based index of the document that holds `line` (1-based): the number of `---`
/// separators before it, not counting a leading one.
fn document_at_line(text: &str, line: u64) -> usize {
    let mut index = 0;
    let mut seen_content = false;
    for (n, l) in text.lines().enumerate() {
        if n as u64 + 1 >= line {
            break;
        }
        if l.starts_with("---") {
            if seen_content {
                index += 1;
            }
            seen_content = false;
        } else if !l.trim().is_empty() && !l.trim_start().starts_with('#') {
            seen_content = true;
        }
    }
    index
}
