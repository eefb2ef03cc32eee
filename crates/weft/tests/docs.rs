//! The docs name real tests: every test `docs/security.md` cites for a guarantee exists,
//! so the threat model cannot point at a test that was renamed or removed.

use std::path::{Path, PathBuf};

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The test names cited in `text`: backticked snake_case words of four parts or more,
/// optionally after a `crate::binary ` prefix.
fn cited_tests(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|quoted| {
            let name = quoted.rsplit([' ', ':']).next().unwrap_or(quoted);
            let snake = name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            (snake && name.split('_').count() >= 4).then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn every_test_the_security_page_cites_exists() {
    let page = std::fs::read_to_string(root().join("docs/security.md")).expect("docs/security.md");
    let cited = cited_tests(&page);
    assert!(
        cited.len() >= 10,
        "too few tests found in the page: {cited:?}"
    );
    let mut files = Vec::new();
    sources(&root().join("crates"), &mut files);
    let code: String = files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect();
    let missing: Vec<&String> = cited
        .iter()
        .filter(|name| !code.contains(&format!("fn {name}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/security.md cites tests that do not exist: {missing:?}"
    );
}

#[test]
fn a_cited_test_is_found_with_or_without_its_binary_prefix() {
    let cited = cited_tests(
        "`weft::e2e identity::a_proxy_cannot_register_an_identity` and `plain_words_here_too` \
         but not `weft proxy` or `--max-workloads-per-identity`",
    );
    assert_eq!(
        cited,
        [
            "a_proxy_cannot_register_an_identity",
            "plain_words_here_too"
        ]
    );
}
