// Corpus replay for the `fuzz_corpus` integration tests: every file of
// `fuzz/corpus/<target>/` goes through the target's harness, on stable, in the normal
// test run. Included with `include!` (so no inner attributes or `//!` here); the
// including crate's `CARGO_MANIFEST_DIR` locates the corpus.

/// Runs each file of `fuzz/corpus/<target>/` through `run` and fails naming every file
/// that panicked. An empty or missing corpus fails too: a replay that reads nothing
/// proves nothing.
fn replay(target: &str, run: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "the corpus {} is empty; run the fuzz target to seed it (fuzz/README.md)",
        dir.display()
    );
    let mut panicked = Vec::new();
    for path in &files {
        let data = std::fs::read(path).expect("corpus file");
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panicked.push(path.display().to_string());
        }
    }
    assert!(
        panicked.is_empty(),
        "{} of {} corpus file(s) of `{target}` panicked (reproduce one with \
         `cargo +nightly fuzz run {target} <file>` in fuzz/):\n{}",
        panicked.len(),
        files.len(),
        panicked.join("\n")
    );
}
