//! The docs match the code: every test `docs/security.md` cites for a guarantee exists,
//! so the threat model cannot point at a test that was renamed or removed; and every
//! YAML example in the README and `docs/` that is a whole document (resources, or a
//! proxy config), and every YAML file under `examples/` but Prometheus's
//! (`examples/observability/`, which promtool checks), parses and validates as Weft
//! would: with the API's own checks (`weft_control::api::validate`), so a Secret's
//! certificate and key are checked as a write would check them.

use std::path::{Path, PathBuf};

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every file under `dir` whose extension is one of `extensions`.
fn files(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, extensions, out);
        } else if path
            .extension()
            .is_some_and(|e| extensions.iter().any(|x| e == *x))
        {
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
    let mut sources = Vec::new();
    files(&root().join("crates"), &["rs"], &mut sources);
    let code: String = sources
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

/// Every Markdown file of the README and `docs/`.
fn pages() -> Vec<PathBuf> {
    let mut out = vec![root().join("README.md")];
    files(&root().join("docs"), &["md"], &mut out);
    out.sort();
    out
}

/// The fenced `yaml` blocks of `text`, each with the line its text starts on.
fn yaml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match current.as_mut() {
            None if line.trim_start().starts_with("```yaml") => {
                current = Some((i + 2, String::new()));
            }
            None => {}
            Some(_) if line.trim_start().starts_with("```") => {
                blocks.extend(current.take());
            }
            Some((_, block)) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    blocks
}

/// What a YAML example is, from its first key.
#[derive(Debug, PartialEq)]
enum Example {
    /// Kubernetes-shaped resources (`apiVersion:` first).
    Resources,
    /// A proxy config or bootstrap (`workload:` first).
    ProxyConfig,
    /// A fragment of a larger document (e.g. `spec:` alone); not checkable alone.
    Fragment,
}

fn kind_of(block: &str) -> Example {
    let first = block
        .lines()
        .map(str::trim_start)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or_default();
    if first.starts_with("apiVersion:") {
        Example::Resources
    } else if first.starts_with("workload:") {
        Example::ProxyConfig
    } else {
        Example::Fragment
    }
}

/// What checking an example found.
enum Verdict {
    /// A fragment, not checkable alone.
    Fragment,
    /// A whole document; what is wrong with it, if anything.
    Whole(Option<String>),
}

fn check(block: &str) -> Verdict {
    Verdict::Whole(match kind_of(block) {
        Example::Resources => match weft_policy::parse_documents(block) {
            Err(e) => Some(e.to_string()),
            Ok(objects) => objects
                .iter()
                .find_map(|o| weft_control::api::validate(o).err())
                .map(|e| e.to_string()),
        },
        Example::ProxyConfig => {
            weft_api::proxy::Config::from_yaml_with(block, weft_api::proxy::References::Deferred)
                .err()
                .map(|e| e.to_string())
        }
        Example::Fragment => return Verdict::Fragment,
    })
}

#[test]
fn every_yaml_file_under_examples_is_a_whole_document_that_validates() {
    let mut found = Vec::new();
    files(&root().join("examples"), &["yaml", "yml"], &mut found);
    // Prometheus's configuration, rules and targets are not Weft's: promtool checks
    // them (tests/observability_examples.rs).
    let prometheus = root().join("examples/observability");
    found.retain(|file| !file.starts_with(&prometheus));
    found.sort();
    assert!(
        found.len() >= 6,
        "only {} example files found: is the scan broken?",
        found.len()
    );
    let failures: Vec<String> = found
        .iter()
        .filter_map(|file| {
            let text = std::fs::read_to_string(file).expect("read example");
            let name = file.strip_prefix(root()).unwrap_or(file).display().to_string();
            match check(&text) {
                Verdict::Fragment => Some(format!(
                    "{name}: neither resources (apiVersion: first) nor a proxy config (workload: first)"
                )),
                Verdict::Whole(Some(problem)) => Some(format!("{name}: {problem}")),
                Verdict::Whole(None) => None,
            }
        })
        .collect();
    assert!(
        failures.is_empty(),
        "example files that do not validate:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_whole_yaml_example_in_the_docs_validates() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("read page");
        let name = page
            .strip_prefix(root())
            .unwrap_or(&page)
            .display()
            .to_string();
        for (line, block) in yaml_blocks(&text) {
            let Verdict::Whole(problem) = check(&block) else {
                continue;
            };
            checked += 1;
            if let Some(problem) = problem {
                failures.push(format!("{name}:{line}: {problem}"));
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} examples found: is the scan broken?"
    );
    assert!(
        failures.is_empty(),
        "examples that do not validate:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_secret_example_is_checked_like_a_write_so_a_key_of_another_certificate_fails() {
    let page = std::fs::read_to_string(root().join("docs/gateways.md")).expect("gateways.md");
    let secrets: Vec<String> = yaml_blocks(&page)
        .into_iter()
        .map(|(_, block)| block)
        .filter(|block| block.contains("kind: Secret") && block.contains("tls.key: |"))
        .collect();
    let Some(example) = secrets.first() else {
        panic!("docs/gateways.md has no Secret example with stringData");
    };
    assert!(
        matches!(check(example), Verdict::Whole(None)),
        "the Secret example validates"
    );
    // The same example with its key swapped for another (valid) key must fail.
    let start = example.find("  tls.key: |").expect("tls.key");
    let other_key = "  tls.key: |\n    -----BEGIN PRIVATE KEY-----\n    \
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgam6le6RZa3WIXYgH\n    \
        JQLvciD5hWWlAJ7ptX0AM2ZjBjChRANCAARd2qqEE0rg9tXXEtuiEnUtEKN5wfie\n    \
        6Y5MulXNYYws+wnwFyLS8R/C0bictG3NmO0+SnKHaCSs4bK4wBQ0O+Wj\n    \
        -----END PRIVATE KEY-----\n";
    let end = example[start + 1..]
        .find("\n  t")
        .or_else(|| example[start + 1..].find("\n  c"))
        .map_or(example.len(), |i| start + 1 + i + 1);
    let swapped = format!("{}{}{}", &example[..start], other_key, &example[end..]);
    match check(&swapped) {
        Verdict::Whole(Some(problem)) => {
            assert!(problem.contains("tls.key"), "{problem}");
        }
        _ => panic!("a Secret example whose key is not the certificate's passed:\n{swapped}"),
    }
}

#[test]
fn yaml_blocks_are_found_with_their_line_and_classified_by_their_first_key() {
    let text = "intro\n```yaml\napiVersion: v\n```\n```sh\nls\n```\n```yaml\n# c\nspec: {}\n```\n";
    let blocks = yaml_blocks(text);
    assert_eq!(
        blocks,
        [
            (3, "apiVersion: v\n".to_owned()),
            (9, "# c\nspec: {}\n".to_owned())
        ]
    );
    assert_eq!(kind_of(&blocks[0].1), Example::Resources);
    assert_eq!(kind_of(&blocks[1].1), Example::Fragment);
    assert_eq!(kind_of("workload: { name: a }\n"), Example::ProxyConfig);
}

#[test]
fn ci_runs_the_readme_test_command_verbatim_and_installs_nextest_itself() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let section = readme
        .split("\n## Test\n")
        .nth(1)
        .expect("the README has a Test section");
    let command = section
        .split("```sh\n")
        .nth(1)
        .and_then(|block| block.lines().next())
        .expect("the Test section opens with a sh block");
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|line| line.trim() == command),
        ".ci/run does not run the README's test command {command:?}"
    );
    assert!(
        ci.contains("cargo install cargo-nextest --locked")
            && readme.contains("cargo install cargo-nextest --locked"),
        "the README and .ci/run must say how cargo-nextest is installed"
    );
    assert!(
        readme.contains(&format!("Rust **{}**", env!("CARGO_PKG_RUST_VERSION"))),
        "the README must name the rust-version of Cargo.toml"
    );
}
