//! No import circles between the modules of any crate (issue 14).
//!
//! A module depends on another when its code names it: `use crate::a::b`, `super::x`,
//! or a path like `crate::a::f()` in an expression. A dependency between two modules
//! counts between the two siblings that contain them (the children of their lowest
//! common ancestor), so `state::compose → outbound::balance` is `state → outbound`.
//! Parents and their own children may use each other (a `mod.rs` re-exporting what
//! its files define is the usual shape); siblings may not form a circle. Test modules
//! (`#[cfg(test)]`) are left out: tests may reach anywhere.
//!
//! Plain text parsing, no compiler: good enough for this code base's style (paths
//! written out, no glob imports across siblings hiding a dependency), and fast.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Circles that exist today and are being removed (none since issue 14). The test
/// fails if one disappears without being taken off this list, or a new one appears.
const KNOWN: &[&str] = &[];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `a::b` of a file under `src`, or `None` for the crate root.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs").to_owned();
        if !matches!(stem.as_str(), "mod" | "lib" | "main") {
            parts.push(stem);
        }
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments, string literals and `#[cfg(test)]` items.
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut skip_depth: Option<usize> = None;
    let mut depth = 0usize;
    let mut pending_test = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if skip_depth.is_none() && trimmed.starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        let line = line.split("//").next().unwrap_or_default();
        let line = strip_strings(line);
        let opens = line.matches('{').count();
        let closes = line.matches('}').count();
        if pending_test && skip_depth.is_none() {
            if trimmed.starts_with("#[") {
                continue;
            }
            pending_test = false;
            if opens > closes {
                skip_depth = Some(depth);
            }
            depth = depth + opens - closes.min(depth + opens);
            continue;
        }
        depth = (depth + opens).saturating_sub(closes);
        if let Some(level) = skip_depth {
            if depth <= level {
                skip_depth = None;
            }
            continue;
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn strip_strings(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in line.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c == '"' {
            in_string = true;
            continue;
        }
        out.push(c);
    }
    out
}

/// Module paths the code names, relative to the crate root, for a file in `module`.
/// `use a::{b, c::d}` trees are expanded; paths starting `crate::`, `super::` and
/// `self::` are resolved.
fn named_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    // Flatten `use` trees first so `use crate::a::{b, c}` yields both paths.
    let mut text = String::new();
    for statement in code.split(';') {
        let s = statement.trim();
        let body = s
            .strip_prefix("pub(crate) use ")
            .or_else(|| s.strip_prefix("pub(super) use "))
            .or_else(|| s.strip_prefix("pub use "))
            .or_else(|| s.strip_prefix("use "));
        if let Some(tree) = body {
            for path in expand_tree(tree) {
                text.push_str(&path);
                text.push(' ');
            }
        } else {
            text.push_str(statement);
            text.push(' ');
        }
    }
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    for word in text.split(|c: char| !is_ident(c)) {
        let parts: Vec<&str> = word.split("::").collect();
        if parts.len() < 2 {
            continue;
        }
        let mut base: Vec<String> = match parts[0] {
            "crate" => Vec::new(),
            "super" | "self" => module.to_vec(),
            _ => continue,
        };
        let mut rest = &parts[..];
        if parts[0] == "crate" {
            rest = &parts[1..];
        }
        while let Some(first) = rest.first() {
            match *first {
                "super" => {
                    base.pop();
                }
                "self" => {}
                _ => break,
            }
            rest = &rest[1..];
        }
        base.extend(rest.iter().map(|s| (*s).to_owned()));
        found.push(base);
    }
    found
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand_tree(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(&tree);
        return vec![path.split("as").next().unwrap_or(path).to_owned()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|i| !i.is_empty())
        .flat_map(|item| {
            expand_tree(item)
                .into_iter()
                .map(|p| {
                    if p == "self" {
                        prefix.trim_end_matches("::").to_owned()
                    } else {
                        format!("{prefix}{p}")
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The sibling circles of one crate, each as `crate: a -> b -> a` under its parent.
fn circles(crate_name: &str, src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    // The longest known module that is a prefix of `path`.
    let resolve = |path: &[String]| -> Vec<String> {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|candidate| modules.contains(candidate))
            .unwrap_or_default()
    };
    // Edges between siblings, by parent.
    let mut edges: BTreeMap<Vec<String>, BTreeSet<(String, String)>> = BTreeMap::new();
    for file in &files {
        let module = module_of(src, file);
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for path in named_paths(&code_of(&text), &module) {
            let target = resolve(&path);
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common >= module.len() || common >= target.len() {
                continue; // same module, an ancestor or a descendant
            }
            edges
                .entry(module[..common].to_vec())
                .or_default()
                .insert((module[common].clone(), target[common].clone()));
        }
    }
    let mut found = Vec::new();
    for (parent, pairs) in edges {
        let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (a, b) in &pairs {
            graph.entry(a).or_default().push(b);
        }
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for start in graph.keys() {
            if let Some(cycle) = cycle_from(&graph, start) {
                let mut key = cycle.clone();
                key.sort();
                if seen.insert(key.join(",")) {
                    let under = if parent.is_empty() {
                        String::new()
                    } else {
                        format!("{}::", parent.join("::"))
                    };
                    let names: Vec<String> = cycle.iter().map(|m| format!("{under}{m}")).collect();
                    found.push(format!(
                        "{crate_name}: {} -> {}",
                        names.join(" -> "),
                        names[0]
                    ));
                }
            }
        }
    }
    found
}

/// A shortest circle through `start`, if any.
fn cycle_from(graph: &BTreeMap<&str, Vec<&str>>, start: &str) -> Option<Vec<String>> {
    let mut queue = std::collections::VecDeque::from([vec![start.to_owned()]]);
    let mut visited = BTreeSet::new();
    while let Some(path) = queue.pop_front() {
        let last = path.last()?.clone();
        for next in graph.get(last.as_str()).into_iter().flatten() {
            if *next == start {
                return Some(path.clone());
            }
            if visited.insert((*next).to_owned()) {
                let mut longer = path.clone();
                longer.push((*next).to_owned());
                queue.push_back(longer);
            }
        }
    }
    None
}

fn all_circles() -> Vec<String> {
    let mut found = Vec::new();
    let Ok(crates) = std::fs::read_dir(workspace().join("crates")) else {
        return found;
    };
    let mut dirs: Vec<PathBuf> = crates.flatten().map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let src = dir.join("src");
        if src.is_dir() {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            found.extend(circles(&name, &src));
        }
    }
    found
}

#[test]
fn no_module_of_any_crate_is_in_an_import_circle_with_its_siblings() {
    let found = all_circles();
    let new: Vec<&String> = found
        .iter()
        .filter(|c| !KNOWN.contains(&c.as_str()))
        .collect();
    let gone: Vec<&&str> = KNOWN
        .iter()
        .filter(|k| !found.iter().any(|c| c == *k))
        .collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "import circles between sibling modules (break them: move the shared item into \
         one of them or into a new module both use):\n  new: {new:#?}\n  removed (take them \
         off KNOWN): {gone:#?}"
    );
}

#[test]
fn the_checker_sees_a_circle_through_use_trees_super_and_expression_paths() {
    let src = &std::env::temp_dir().join(format!("weft-module-cycles-{}", std::process::id()));
    std::fs::create_dir_all(src.join("net")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "mod a; mod net;\n").expect("write");
    std::fs::write(src.join("a.rs"), "use crate::net::{pool::Pool, other};\n").expect("write");
    std::fs::write(src.join("net/mod.rs"), "pub mod pool; pub mod body;\n").expect("write");
    std::fs::write(
        src.join("net/pool.rs"),
        "fn f() { super::body::g(); }\n#[cfg(test)]\nmod tests {\n    use crate::a::X;\n}\n",
    )
    .expect("write");
    std::fs::write(
        src.join("net/body.rs"),
        "use super::pool::Pool; // a comment\n",
    )
    .expect("write");
    let found = circles("demo", src);
    let _ = std::fs::remove_dir_all(src);
    assert_eq!(
        found,
        ["demo: net::body -> net::pool -> net::body"],
        "{found:#?}"
    );
}
