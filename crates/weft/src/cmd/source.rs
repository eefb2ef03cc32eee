//! Reading `-f FILE|DIR|-` arguments into documents, remembering which file and which
//! document in it each object came from, so errors point at the file the operator
//! wrote.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use weft_api::resource::Object;

/// Extensions a directory argument picks up.
const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// One object read from a file.
pub(crate) struct Document {
    /// The file (`-` for stdin).
    pub(crate) file: String,
    /// 0-based index of the document in its file.
    pub(crate) index: usize,
    /// The object.
    pub(crate) object: Object,
}

/// A problem found in the input, located by file and document.
pub(crate) struct Problem {
    pub(crate) file: String,
    pub(crate) document: Option<usize>,
    /// `Kind ns/name`, when known.
    pub(crate) object: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) message: String,
}

/// The files named by `paths`: files as given, directories expanded to their
/// `*.yaml`, `*.yml` and `*.json` entries (sorted, not recursive), `-` for stdin.
pub(crate) fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" || !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading directory {}", path.display()))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| p.is_file())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e))
            })
            .collect();
        entries.sort();
        if entries.is_empty() {
            anyhow::bail!("{} holds no *.yaml, *.yml or *.json file", path.display());
        }
        files.extend(entries);
    }
    Ok(files)
}

/// Reads and parses every file; parse problems are returned, not raised, so all files
/// are reported at once. Reading failures (missing file) are errors.
pub(crate) fn read(paths: &[PathBuf]) -> anyhow::Result<(Vec<Document>, Vec<Problem>)> {
    let mut documents = Vec::new();
    let mut problems = Vec::new();
    for file in files(paths)? {
        let (label, text) = read_file(&file)?;
        match weft_policy::parse_documents(&text) {
            Ok(objects) => documents.extend(objects.into_iter().enumerate().map(
                |(index, object)| Document {
                    file: label.clone(),
                    index,
                    object,
                },
            )),
            Err(e) => problems.push(Problem {
                file: label,
                document: Some(e.index),
                object: None,
                path: e.path,
                message: e.message,
            }),
        }
    }
    Ok((documents, problems))
}

fn read_file(path: &Path) -> anyhow::Result<(String, String)> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        return Ok(("-".to_owned(), text));
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok((path.display().to_string(), text))
}

// === impl Document ===

impl Document {
    /// `Kind ns/name` (or `Kind name` for cluster-scoped kinds).
    pub(crate) fn describe(&self) -> String {
        describe_object(&self.object)
    }

    /// A problem with this document.
    pub(crate) fn problem(&self, path: Option<String>, message: String) -> Problem {
        Problem {
            file: self.file.clone(),
            document: Some(self.index),
            object: Some(self.describe()),
            path,
            message,
        }
    }
}

/// `Kind ns/name`, or `Kind name` when cluster-scoped.
pub(crate) fn describe_object(object: &Object) -> String {
    let namespace = object.namespace();
    if namespace.is_empty() {
        format!("{} {}", object.kind, object.metadata.name)
    } else {
        format!("{} {namespace}/{}", object.kind, object.metadata.name)
    }
}

// === impl Problem ===

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(document) = self.document {
            write!(f, ": document {document}")?;
        }
        if let Some(object) = &self.object {
            write!(f, " ({object})")?;
        }
        match self.path.as_deref() {
            Some(path) if !path.is_empty() => write!(f, ": {path}: {}", self.message),
            _ => write!(f, ": {}", self.message),
        }
    }
}

/// Prints every problem to stderr, one per line, and returns the error the command
/// exits with.
pub(crate) fn report(problems: &[Problem], what: &str) -> anyhow::Error {
    for problem in problems {
        eprintln!("error: {problem}");
    }
    anyhow::anyhow!("{} problem(s) found; {what}", problems.len())
}
