//! Reading operator input: a stream of YAML documents (`---` separated), one JSON
//! document, a JSON/YAML array of objects, or a `kind: List` with `items`.

use serde_json::Value;
use weft_api::resource::Object;

use crate::field;
use crate::ParseError;

/// The most objects one input may hold (YAML documents, array elements and `List`
/// items together): 10,000.
pub const MAX_DOCUMENTS: usize = 10_000;

/// The most YAML nodes (mappings, sequences and scalars) one input may hold: 1,000,000,
/// about 100 per object at [`MAX_DOCUMENTS`].
pub const MAX_NODES: usize = 1_000_000;

/// See [`crate::parse_documents`].
pub(crate) fn parse(text: &str) -> Result<Vec<Object>, ParseError> {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = MAX_DOCUMENTS;
    budget.max_nodes = MAX_NODES;
    // Parser events: a node is one or two (start and end of a collection), plus
    // document and stream events; the node limit is the one to meet first.
    budget.max_events = 4 * MAX_NODES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    let documents: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
            if let Some(message) = over_limit(&e) {
                return ParseError {
                    index: 0,
                    path: None,
                    message,
                };
            }
            let line = e.location().map(|l| l.line());
            ParseError {
                index: line.map_or(0, |l| document_at_line(text, l)),
                path: None,
                message: yaml_error(text, &e),
            }
        })?;
    let values: Vec<(usize, String, Value)> = documents
        .into_iter()
        .enumerate()
        .flat_map(|(index, document)| {
            flatten(document)
                .into_iter()
                .filter(|(_, value)| !value.is_null())
                .map(move |(prefix, value)| (index, prefix, value))
        })
        .collect();
    if values.len() > MAX_DOCUMENTS {
        return Err(ParseError {
            index: MAX_DOCUMENTS,
            path: None,
            message: format!(
                "{} documents, the limit is {MAX_DOCUMENTS}; split the input",
                values.len()
            ),
        });
    }
    let mut objects = Vec::with_capacity(values.len());
    for (index, prefix, mut value) in values {
        // A Secret carries its material at the top level, as on Kubernetes.
        weft_api::resource::secret::lift(&mut value);
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
    Ok(objects)
}

/// `not valid YAML: …` for a syntax error in `text`. The parser's message quotes the
/// lines around the error; near a Secret (a `kind: Secret` document, or PEM text) that
/// would copy its key into the answer and the logs, so there it says only where: the
/// line and column.
pub fn yaml_error(text: &str, error: &serde_saphyr::Error) -> String {
    let location = error.location();
    if !near_secret(text, location.map(|l| l.line())) {
        return format!("not valid YAML: {error}");
    }
    match location {
        Some(at) => format!(
            "not valid YAML at line {}, column {}; the text is not quoted because the \
             document holds a Secret: check the indentation there (PEM lines under \
             stringData need the same indentation, deeper than their key, and a `|`)",
            at.line(),
            at.column()
        ),
        None => "not valid YAML; the text is not quoted because the document holds a \
                 Secret"
            .to_owned(),
    }
}

/// Whether the document holding `line` (1-based), or the lines next to it that a
/// parser's snippet would quote, looks like a Secret: `kind: Secret` (YAML or JSON) or
/// PEM armour. Without a line, the whole text.
fn near_secret(text: &str, line: Option<u64>) -> bool {
    const AROUND: usize = 8;
    let lines: Vec<&str> = text.lines().collect();
    let (first, last) = match line.and_then(|l| usize::try_from(l).ok()) {
        Some(l) => {
            let at = l.saturating_sub(1).min(lines.len());
            let start = lines[..at]
                .iter()
                .rposition(|l| l.starts_with("---"))
                .map_or(0, |i| i + 1)
                .min(at.saturating_sub(AROUND));
            let end = lines[at..]
                .iter()
                .position(|l| l.starts_with("---"))
                .map_or(lines.len(), |i| at + i)
                .max((at + AROUND).min(lines.len()));
            (start, end)
        }
        None => (0, lines.len()),
    };
    lines[first..last].iter().any(|l| {
        let compact: String = l
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
            .collect();
        compact.contains("kind:Secret") || l.contains("-----BEGIN") || l.contains("-----END")
    })
}

/// Our wording for the parser's budget breaches that are our documented limits.
fn over_limit(error: &serde_saphyr::Error) -> Option<String> {
    use serde_saphyr::budget::BudgetBreach;
    match error {
        serde_saphyr::Error::Budget { breach, .. } => match breach {
            BudgetBreach::Documents { .. } => Some(format!(
                "more than {MAX_DOCUMENTS} documents, the limit is {MAX_DOCUMENTS}; split the input"
            )),
            BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => Some(format!(
                "more than {MAX_NODES} YAML nodes (mappings, lists and values), the limit is \
                 {MAX_NODES}; split the input"
            )),
            _ => None,
        },
        serde_saphyr::Error::WithSnippet { error, .. } => over_limit(error),
        _ => None,
    }
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
