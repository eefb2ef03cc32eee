//! The verdict tables of `docs/security/http-conformance.md`, shared by the HTTP/1.1 and
//! HTTP/2 sides of the suite.
//!
//! Each side renders its vectors as [`Row`]s ([`render`]) and hands the text to
//! [`sync_section`] with its marker name (`h1-vectors`, `h2-vectors`): the section
//! between `<!-- NAME:begin -->` and `<!-- NAME:end -->` must equal it, or the test fails
//! with a diff; with `WEFT_BLESS=1` the section is rewritten instead. The page's prose is
//! hand-written and never touched.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

/// The page holding the tables, relative to the workspace root.
pub const DOC: &str = "docs/security/http-conformance.md";

/// Serialises read-modify-write of [`DOC`] between tests of this binary.
static DOC_LOCK: Mutex<()> = Mutex::new(());

/// One vector's line in a table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The vector's name (what `WEFT_VECTOR` selects).
    pub name: String,
    /// Its class (e.g. `CL/TE conflict`).
    pub class: String,
    /// A short, printable summary of the bytes sent.
    pub bytes: String,
    /// The expected verdict, e.g. `refused 400` or `forwarded 1`.
    pub expected: String,
    /// The one-hop result: `pass`, or what happened instead.
    pub one_hop: String,
    /// The two-hop result.
    pub two_hops: String,
}

/// Renders rows as a Markdown table (cells escaped so `|` and backticks cannot break it).
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| vector | class | bytes (summary) | expected | one hop | two hops |\n\
         |---|---|---|---|---|---|\n",
    );
    for row in rows {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            row.name,
            cell(&row.class),
            code(&row.bytes),
            cell(&row.expected),
            cell(&row.one_hop),
            cell(&row.two_hops),
        );
    }
    out
}

/// Checks (or, with `WEFT_BLESS=1`, rewrites) the section `marker` of [`DOC`] against
/// `rendered`. `Err` holds a diff and how to bless.
pub fn sync_section(marker: &str, rendered: &str) -> Result<(), String> {
    let _guard = DOC_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = doc_path();
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let updated = replace_section(&text, marker, rendered)?;
    if updated == text {
        return Ok(());
    }
    if std::env::var_os("WEFT_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, updated).map_err(|e| format!("writing {}: {e}", path.display()))?;
        return Ok(());
    }
    let (begin, end) = markers(marker);
    let current = section(&text, &begin, &end).unwrap_or_default();
    Err(format!(
        "{} section {marker} is out of date (- file, + vectors):\n{}\n\
         Rerun with WEFT_BLESS=1 to rewrite it, then review the diff.",
        path.display(),
        diff(current.trim_matches('\n'), rendered.trim_matches('\n'))
    ))
}

/// `text` with the lines between `<!-- marker:begin -->` and `<!-- marker:end -->`
/// replaced by `body`.
pub fn replace_section(text: &str, marker: &str, body: &str) -> Result<String, String> {
    let (begin, end) = markers(marker);
    let start = text
        .find(&begin)
        .ok_or_else(|| format!("marker {begin} not found in {DOC}"))?
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .ok_or_else(|| format!("marker {end} not found after {begin} in {DOC}"))?
        + start;
    Ok(format!(
        "{}\n{}\n{}",
        &text[..start],
        body.trim_matches('\n'),
        &text[stop..]
    ))
}

fn markers(marker: &str) -> (String, String) {
    (
        format!("<!-- {marker}:begin -->"),
        format!("<!-- {marker}:end -->"),
    )
}

fn section<'a>(text: &'a str, begin: &str, end: &str) -> Option<&'a str> {
    let start = text.find(begin)? + begin.len();
    let stop = text[start..].find(end)? + start;
    Some(&text[start..stop])
}

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(DOC)
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Inline code that survives any content: backticks become `'` and pipes are escaped.
fn code(s: &str) -> String {
    format!("`{}`", s.replace('`', "'").replace('|', "\\|"))
}

/// A line diff (longest common subsequence), `-` for `old`, `+` for `new`, unchanged
/// lines omitted except as `…` separators.
pub fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out, mut gap) = (0, 0, String::new(), false);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            if !gap {
                out.push_str("  …\n");
                gap = true;
            }
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            let _ = writeln!(out, "+ {}", b[j]);
            j += 1;
            gap = false;
        } else {
            let _ = writeln!(out, "- {}", a[i]);
            i += 1;
            gap = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_named_section() {
        let text =
            "a\n<!-- x:begin -->\nold\n<!-- x:end -->\n<!-- y:begin -->\nkeep\n<!-- y:end -->\n";
        let out = replace_section(text, "x", "new\n").unwrap();
        assert_eq!(
            out,
            "a\n<!-- x:begin -->\nnew\n<!-- x:end -->\n<!-- y:begin -->\nkeep\n<!-- y:end -->\n"
        );
        assert_eq!(replace_section(&out, "x", "new").unwrap(), out);
    }

    #[test]
    fn diff_shows_changed_lines() {
        assert_eq!(diff("a\nb\nc", "a\nB\nc"), "  …\n+ B\n- b\n  …\n");
    }
}
