//! The Prometheus rules and Grafana dashboards of `examples/observability/`, read the
//! way their tests need them: every PromQL query with where it comes from, Grafana's
//! variables replaced by values PromQL accepts, and the metric and label names a query
//! uses, checked against what a live mesh exposes.
//!
//! Shared by `tests/observability_examples.rs` (promtool parses and evaluates them)
//! and `tests/mesh/prometheus.rs` (a live mesh and a real Prometheus). Not a PromQL
//! parser: promtool is the judge of syntax; this only finds names, which PromQL keeps
//! in plain sight (selectors, and the label lists of `by`, `on`, ...).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The dashboards, by file name.
pub(crate) const DASHBOARDS: [&str; 3] = ["mesh.json", "service.json", "workload.json"];

/// Labels Prometheus adds to every series it scrapes.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// Metrics a query may use besides Weft's and the recorded ones: Prometheus's own.
const PROMETHEUS_METRICS: [&str; 1] = ["up"];

/// PromQL words that are neither metrics nor functions called with parentheses.
const KEYWORDS: [&str; 27] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// The keywords followed by a list of label names.
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// A PromQL query of an example, with where it comes from.
#[derive(Clone, Debug)]
pub(crate) struct Query {
    /// Where: `mesh.json: "Requests/s" A`, `rules.yml: record destination_service:…`.
    pub origin: String,
    /// The PromQL, Grafana's variables replaced.
    pub expr: String,
}

/// The metric and label names a query uses.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Names {
    /// Each metric a selector names, with the labels its matchers test.
    pub metrics: BTreeMap<String, BTreeSet<String>>,
    /// The labels of `by`, `without`, `on`, `ignoring`, `group_left` and `group_right`.
    pub grouping: BTreeSet<String>,
}

/// The program `name`: the path in `$<env>` when that is set, else the first `name` on
/// `PATH`; or why there is none.
pub(crate) fn executable(env: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{env}={} is not a file", path.display()))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            format!(
                "no {name} on PATH (`apt-get install prometheus` has it, or point {env} at one)"
            )
        })
}

/// `examples/observability/`.
pub(crate) fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/observability")
}

/// The dashboard `name` (one of [`DASHBOARDS`]), parsed.
pub(crate) fn dashboard(name: &str) -> Value {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

/// Every panel of `dashboard`, those inside rows included.
pub(crate) fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// Every query of the dashboards: each panel target's `expr`, and the PromQL of each
/// query variable (`label_values(selector, label)` as `group by (label) (selector)`,
/// `query_result(q)` as `q`). A variable listed in `variables` becomes its value, any
/// other `x` (see [`substitute`]).
pub(crate) fn dashboard_queries(variables: &[(&str, &str)]) -> Vec<Query> {
    let mut out = Vec::new();
    for name in DASHBOARDS {
        let board = dashboard(name);
        for panel in panels(&board) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_else(|| {
                    panic!("{name}: {:?} has a target without expr", panel["title"])
                });
                out.push(Query {
                    origin: format!(
                        "{name}: {} {}",
                        panel["title"],
                        target["refId"].as_str().unwrap_or("?")
                    ),
                    expr: substitute(expr, variables),
                });
            }
        }
        for variable in board["templating"]["list"].as_array().into_iter().flatten() {
            if variable["type"] != "query" {
                continue;
            }
            // The legacy string form, or the editor's object form.
            let query = variable["query"]
                .as_str()
                .or_else(|| variable["query"]["query"].as_str())
                .unwrap_or_else(|| panic!("{name}: variable {} has no query", variable["name"]));
            out.push(Query {
                origin: format!("{name}: variable {}", variable["name"]),
                expr: substitute(&variable_promql(query), variables),
            });
        }
    }
    out
}

/// The PromQL a Grafana variable query runs.
fn variable_promql(query: &str) -> String {
    let query = query.trim();
    if let Some(args) = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
    {
        let (selector, label) = args
            .rsplit_once(',')
            .unwrap_or_else(|| panic!("label_values without a metric: {query}"));
        format!("group by ({}) ({selector})", label.trim())
    } else if let Some(inner) = query
        .strip_prefix("query_result(")
        .and_then(|q| q.strip_suffix(')'))
    {
        inner.to_owned()
    } else {
        panic!("a variable query this test does not know: {query}")
    }
}

/// The rules of `rules.yml`, every group's.
pub(crate) fn rules() -> Vec<Value> {
    let path = dir().join("rules.yml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let doc: Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("rules.yml is not YAML: {e}"));
    doc["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Every `expr` of `rules.yml`, named by its record or alert.
pub(crate) fn rule_queries() -> Vec<Query> {
    rules()
        .iter()
        .map(|rule| {
            let (kind, name) = match (rule["record"].as_str(), rule["alert"].as_str()) {
                (Some(record), _) => ("record", record),
                (None, Some(alert)) => ("alert", alert),
                (None, None) => panic!("rules.yml: a rule neither records nor alerts: {rule}"),
            };
            Query {
                origin: format!("rules.yml: {kind} {name}"),
                expr: rule["expr"].as_str().unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

/// The series `rules.yml` records, each with the labels its expression groups by.
pub(crate) fn recorded() -> BTreeMap<String, BTreeSet<String>> {
    rules()
        .iter()
        .filter_map(|rule| {
            let record = rule["record"].as_str()?;
            let labels = names(rule["expr"].as_str().unwrap_or_default()).grouping;
            Some((record.to_owned(), labels))
        })
        .collect()
}

/// `expr` with Grafana's variables replaced: the interval ones (`$__rate_interval`,
/// `$__interval`, `$__range`) by `5m`; `$name`, `${name}` and `${name:format}` by the
/// value `variables` gives `name`, else by `x`, which PromQL accepts only inside a
/// label value's quotes, the one place a dashboard may use them.
pub(crate) fn substitute(expr: &str, variables: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .unwrap_or_else(|| panic!("an unclosed ${{ in {expr}"));
            let inner = &braced[..end];
            (inner.split(':').next().unwrap_or(inner), end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match name {
            "" => out.push('$'),
            "__rate_interval" | "__interval" | "__range" => out.push_str("5m"),
            builtin if builtin.starts_with("__") => {
                panic!("a Grafana variable this test does not know: ${builtin} in {expr}")
            }
            name => out.push_str(
                variables
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or("x", |(_, value)| value),
            ),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// A token of PromQL, as far as names go.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    /// A name: a metric, label, function or keyword.
    Name(&'a str),
    /// `(`, `{` or `[`.
    Open(char),
    /// `)`, `}` or `]`.
    Close(char),
    /// Anything else: numbers, durations, strings, operators.
    Other,
}

/// The tokens of `expr`. Strings are skipped whole, so a label value is never a name;
/// inside `[…]` (ranges, subqueries) nothing is a name.
fn tokens(expr: &str) -> Vec<Token<'_>> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut brackets = 0;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        i += 1;
        match c {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' | b'\'' | b'`' => {
                while i < bytes.len() && bytes[i] != c {
                    i += if bytes[i] == b'\\' && c != b'`' { 2 } else { 1 };
                }
                i += 1;
                out.push(Token::Other);
            }
            b'(' | b'{' => out.push(Token::Open(char::from(c))),
            b'[' => {
                brackets += 1;
                out.push(Token::Open('['));
            }
            b')' | b'}' => out.push(Token::Close(char::from(c))),
            b']' => {
                brackets -= 1;
                out.push(Token::Close(']'));
            }
            c if c.is_ascii_whitespace() => {}
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
                {
                    i += 1;
                }
                out.push(if brackets > 0 {
                    Token::Other
                } else {
                    Token::Name(&expr[start..i])
                });
            }
            c if c.is_ascii_digit() || c == b'.' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
                out.push(Token::Other);
            }
            _ => out.push(Token::Other),
        }
    }
    out
}

/// The names between the bracket opened at `tokens[open]` and its closing one, and
/// where that is.
fn names_within(tokens: &[Token<'_>], open: usize) -> (BTreeSet<String>, usize) {
    let mut names = BTreeSet::new();
    let mut i = open + 1;
    while i < tokens.len() && !matches!(tokens[i], Token::Close(_)) {
        if let Token::Name(name) = tokens[i] {
            names.insert(name.to_owned());
        }
        i += 1;
    }
    (names, i)
}

/// The metric and label names `expr` uses.
pub(crate) fn names(expr: &str) -> Names {
    let tokens = tokens(expr);
    let mut names = Names::default();
    let mut i = 0;
    while i < tokens.len() {
        let next_opens = |bracket| tokens.get(i + 1) == Some(&Token::Open(bracket));
        match tokens[i] {
            Token::Name(word) if GROUPING.contains(&word) && next_opens('(') => {
                let (labels, end) = names_within(&tokens, i + 1);
                names.grouping.extend(labels);
                i = end;
            }
            // A function call, or a keyword: its arguments are read on.
            Token::Name(word)
                if next_opens('(') || KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) => {}
            Token::Name(metric) => {
                let labels = if next_opens('{') {
                    let (labels, end) = names_within(&tokens, i + 1);
                    i = end;
                    labels
                } else {
                    BTreeSet::new()
                };
                names
                    .metrics
                    .entry(metric.to_owned())
                    .or_default()
                    .extend(labels);
            }
            // A selector without a metric name (`{__name__=~"…"}`): under "".
            Token::Open('{') => {
                let (labels, end) = names_within(&tokens, i);
                names
                    .metrics
                    .entry(String::new())
                    .or_default()
                    .extend(labels);
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// The sample names of a metrics text in OpenMetrics (what Weft serves), each with
/// the label names its series carry. A family with no series yet is there by the names
/// its `# TYPE` line implies (`_total` of a counter; `_bucket`, `_sum`, `_count` of a
/// histogram), with no labels.
pub(crate) fn exposed(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut words = declared.split_whitespace();
            let (Some(family), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                _ => &[""],
            };
            for suffix in suffixes {
                out.entry(format!("{family}{suffix}")).or_default();
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..end].to_owned()).or_default();
        if let Some(set) = line[end..].strip_prefix('{') {
            labels.extend(label_names(set));
        }
    }
    out
}

/// The label names of a series' `a="1",b="2"}…`, values skipped with their escapes.
fn label_names(set: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = set;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        let Some((name, value)) = rest.split_once("=\"") else {
            break;
        };
        if name.contains('}') {
            break;
        }
        names.push(name.to_owned());
        let mut chars = value.char_indices();
        let mut close = value.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    close = at;
                    break;
                }
                _ => {}
            }
        }
        rest = &value[(close + 1).min(value.len())..];
    }
    names
}

/// What is wrong with the names `queries` use, given the series a live mesh exposes
/// (sample name → label names, see [`exposed`]) and those the rules record: a `weft_*`
/// metric must be exposed, a `level:metric:operation` one recorded, any other one of
/// Prometheus's own; each label a selector tests must be on its metric, and each label
/// a `by`, `on`, … lists on one of the query's metrics (or be `le` or a target label).
pub(crate) fn misnamed(
    queries: &[Query],
    exposed: &BTreeMap<String, BTreeSet<String>>,
    recorded: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for query in queries {
        let used = names(&query.expr);
        let mut available: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
        available.insert("le");
        for (metric, labels) in &used.metrics {
            let known = if metric.starts_with("weft_") {
                exposed.get(metric)
            } else if metric.contains(':') {
                recorded.get(metric)
            } else {
                None
            };
            let Some(known) = known else {
                if !PROMETHEUS_METRICS.contains(&metric.as_str()) {
                    problems.push(format!(
                        "{}: {metric:?} is not a metric the mesh exposes nor one the rules record",
                        query.origin
                    ));
                }
                continue;
            };
            available.extend(known.iter().map(String::as_str));
            for label in labels {
                let on_series = known.contains(label);
                let from_target = TARGET_LABELS.contains(&label.as_str());
                if !on_series && !from_target {
                    problems.push(format!(
                        "{}: {metric} has no label {label:?} (its labels: {known:?})",
                        query.origin
                    ));
                }
            }
        }
        for label in &used.grouping {
            if !available.contains(label.as_str()) {
                problems.push(format!(
                    "{}: groups by {label:?}, which none of its metrics has (they have: {available:?})",
                    query.origin
                ));
            }
        }
    }
    problems
}
