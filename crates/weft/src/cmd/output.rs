//! Printing objects: `-o yaml|json|name|wide`, aligned tables, and the lines of a stream.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

/// `-o` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// YAML documents.
    Yaml,
    /// JSON.
    Json,
    /// The table with extra columns (labels).
    Wide,
    /// `kind/name` per object.
    Name,
}

/// Prints `value` as YAML or JSON.
pub(crate) fn print_document(value: &serde_json::Value, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        _ => print!("{}", serde_saphyr::to_string(value)?),
    }
    Ok(())
}

/// Writes `text` to stdout now (not line-buffered); `false` once stdout is closed, as
/// when `weft tap … | head` has read enough: a stream should then end quietly.
pub(crate) fn write_now(text: &str) -> anyhow::Result<bool> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}

/// Renders rows under headers, columns padded to their widest cell plus three spaces.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let width = widths.get(i).copied().unwrap_or_default();
                let _ = write!(line, "{cell:<width$}   ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Age of an RFC 3339 timestamp, kubectl style (`45s`, `12m`, `5h`, `3d`); `<unknown>`
/// when absent or unreadable.
pub(crate) fn age(timestamp: Option<&str>, now: SystemTime) -> String {
    let Some(then) = timestamp.and_then(|t| humantime::parse_rfc3339_weak(t).ok()) else {
        return "<unknown>".to_owned();
    };
    let elapsed = now.duration_since(then).unwrap_or(Duration::ZERO).as_secs();
    match elapsed {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// A cell for an optional string: the value or `<none>`.
pub(crate) fn or_none(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => v.to_owned(),
        _ => "<none>".to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_to_the_widest_cell() {
        let rows = vec![
            vec!["web".to_owned(), "80/http".to_owned()],
            vec!["api-gateway".to_owned(), "443".to_owned()],
        ];
        assert_eq!(
            table(&["NAME", "PORTS"], &rows),
            "NAME          PORTS\nweb           80/http\napi-gateway   443\n"
        );
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now = humantime::parse_rfc3339("2025-01-03T00:00:00Z").unwrap();
        assert_eq!(age(Some("2025-01-02T23:59:30Z"), now), "30s");
        assert_eq!(age(Some("2025-01-02T23:30:00Z"), now), "30m");
        assert_eq!(age(Some("2025-01-02T19:00:00Z"), now), "5h");
        assert_eq!(age(Some("2025-01-01T00:00:00Z"), now), "2d");
        assert_eq!(age(None, now), "<unknown>");
    }
}
