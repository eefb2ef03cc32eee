//! `exportTo`: which namespaces' proxies may see a `Service` (and the route table
//! attached to it) over xDS. `Service.spec.exportTo` when set, else
//! `Mesh.spec.defaultExportTo` (default `["*"]`). Istio semantics: `"."` is the
//! service's own namespace, `"*"` every namespace, anything else a namespace name.
//!
//! Compile resolves the list into an [`Export`]; the control plane's xDS server turns
//! it into the audience of the compiled resources and enforces it per stream.

use std::collections::{BTreeSet, HashSet};

use weft_api::resource::service::{EXPORT_ALL, EXPORT_OWN};

use crate::field::{self, Errors};

/// The effective `exportTo` of a service: who may see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Export {
    /// Every namespace (`"*"`).
    Mesh,
    /// These namespaces only, sorted; always includes the service's own.
    Namespaces(Vec<String>),
}

// === impl Export ===

impl Export {
    /// Resolves `entries` (already validated) for a service in `namespace`. An entry
    /// `"*"` anywhere exports to every namespace; the own namespace is always added.
    pub(crate) fn resolve(entries: &[String], namespace: &str) -> Self {
        if entries.iter().any(|e| e == EXPORT_ALL) {
            return Self::Mesh;
        }
        let names: BTreeSet<&str> = entries
            .iter()
            .map(|e| {
                if e == EXPORT_OWN {
                    namespace
                } else {
                    e.as_str()
                }
            })
            .chain([namespace])
            .collect();
        Self::Namespaces(names.into_iter().map(str::to_owned).collect())
    }

    /// Whether proxies of `namespace` may see the service.
    pub fn admits(&self, namespace: &str) -> bool {
        match self {
            Self::Mesh => true,
            Self::Namespaces(names) => names.iter().any(|n| n == namespace),
        }
    }

    /// As `status.exportTo` shows it: `["*"]`, or the namespace names.
    pub fn to_list(&self) -> Vec<String> {
        match self {
            Self::Mesh => vec![EXPORT_ALL.to_owned()],
            Self::Namespaces(names) => names.clone(),
        }
    }
}

/// Checks an `exportTo` list at `path`: not empty; each entry `"."`, `"*"` or an RFC
/// 1123 label; `"*"` alone; no entry twice (`"."` and the own namespace's name, when
/// `namespace` is known, count as the same entry).
pub(crate) fn validate(
    errors: &mut Errors,
    path: &str,
    entries: &[String],
    namespace: Option<&str>,
) {
    if entries.is_empty() {
        errors.push(
            path,
            "is empty: write [\".\"] for the service's own namespace only, [\"*\"] for every \
             namespace, or leave the field out for the default",
        );
        return;
    }
    let mut seen = HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if entry == EXPORT_ALL {
            if entries.len() > 1 {
                errors.push(
                    at,
                    "\"*\" already exports to every namespace and cannot be combined with \
                     other entries: write [\"*\"] alone, or list the namespaces",
                );
            }
            continue;
        }
        if entry != EXPORT_OWN && !field::is_label(entry) {
            errors.push(
                at,
                format!(
                    "{entry:?} is not a namespace: use \".\" (the service's own namespace), \
                     \"*\" (every namespace) or a namespace name (at most 63 lowercase \
                     letters, digits and '-', starting and ending with a letter or digit)"
                ),
            );
            continue;
        }
        let resolved = match namespace {
            Some(own) if entry == EXPORT_OWN => own,
            _ => entry.as_str(),
        };
        if !seen.insert(resolved) {
            let message = if resolved == entry {
                format!("{entry:?} is listed twice; list it once")
            } else {
                format!("{entry:?} is the service's own namespace {resolved:?}, listed twice; list it once")
            };
            errors.push(at, message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|e| (*e).to_owned()).collect()
    }

    fn problems(entries: &[&str], namespace: Option<&str>) -> Vec<String> {
        let mut errors = Errors::default();
        validate(&mut errors, "spec.exportTo", &list(entries), namespace);
        match errors.into_result() {
            Ok(()) => Vec::new(),
            Err(e) => {
                e.0.into_iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect()
            }
        }
    }

    #[test]
    fn valid_export_lists_are_accepted() {
        for entries in [
            &["*"][..],
            &["."],
            &["team-b"],
            &[".", "team-b", "monitoring"],
        ] {
            assert_eq!(
                problems(entries, Some("team-a")),
                Vec::<String>::new(),
                "{entries:?}"
            );
        }
    }

    #[test]
    fn invalid_export_lists_name_the_entry_and_say_what_to_write() {
        let cases: &[(&[&str], &str, &str)] = &[
            (&[], "spec.exportTo: is empty", "[\".\"]"),
            (
                &["Team_B"],
                "spec.exportTo[0]: \"Team_B\" is not a namespace",
                "\".\"",
            ),
            (
                &["~"],
                "spec.exportTo[0]: \"~\" is not a namespace",
                "\"*\"",
            ),
            (
                &["*", "."],
                "spec.exportTo[0]: \"*\" already exports",
                "[\"*\"] alone",
            ),
            (
                &["team-b", "team-b"],
                "spec.exportTo[1]: \"team-b\" is listed twice",
                "list it once",
            ),
            (
                &[".", "."],
                "spec.exportTo[1]: \".\" is the service's own",
                "list it once",
            ),
            (
                &[".", "team-a"],
                "spec.exportTo[1]: \"team-a\" is listed twice",
                "list it once",
            ),
        ];
        for (entries, starts, hint) in cases {
            let problems = problems(entries, Some("team-a"));
            assert_eq!(problems.len(), 1, "{entries:?}: {problems:?}");
            assert!(problems[0].starts_with(starts), "{entries:?}: {problems:?}");
            assert!(problems[0].contains(hint), "{entries:?}: {problems:?}");
        }
    }

    #[test]
    fn resolve_replaces_dot_and_always_adds_the_own_namespace() {
        let cases: &[(&[&str], Export)] = &[
            (&["*"], Export::Mesh),
            (&["."], Export::Namespaces(list(&["team-a"]))),
            (&["team-b"], Export::Namespaces(list(&["team-a", "team-b"]))),
            (
                &["zeta", ".", "beta"],
                Export::Namespaces(list(&["beta", "team-a", "zeta"])),
            ),
            (&[], Export::Namespaces(list(&["team-a"]))),
        ];
        for (entries, want) in cases {
            assert_eq!(
                &Export::resolve(&list(entries), "team-a"),
                want,
                "{entries:?}"
            );
        }
    }

    #[test]
    fn admits_follows_the_resolved_namespaces() {
        let export = Export::resolve(&list(&["team-b"]), "team-a");
        assert!(export.admits("team-a"));
        assert!(export.admits("team-b"));
        assert!(!export.admits("team-c"));
        assert!(Export::Mesh.admits("anything"));
        assert_eq!(export.to_list(), list(&["team-a", "team-b"]));
        assert_eq!(Export::Mesh.to_list(), list(&["*"]));
    }
}
