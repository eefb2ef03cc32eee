//! `weft check -f FILE…`: offline validation with `weft-policy`, no control plane.
//! Prints `ok: N objects` or every problem with file, document and field path.

use std::path::PathBuf;

use super::source;

/// Arguments of `weft check`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A file, a directory (its *.yaml, *.yml and *.json files, sorted), or `-` for
    /// stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Validates the files; fails (exit 1) if any object is invalid.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let (documents, mut problems) = source::read(&args.files)?;
    for document in &documents {
        if let Err(e) = document.object.kind() {
            problems.push(document.problem(Some("kind".to_owned()), e.to_string()));
            continue;
        }
        if let Err(errors) = weft_policy::validate(&document.object) {
            problems.extend(
                errors
                    .0
                    .into_iter()
                    .map(|e| document.problem(Some(e.path), e.message)),
            );
        }
    }
    if !problems.is_empty() {
        return Err(source::report(&problems, "fix them and run check again"));
    }
    println!("ok: {} objects", documents.len());
    Ok(())
}
