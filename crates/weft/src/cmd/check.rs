//! `weft check -f FILE…`: offline validation with `weft-policy`, no control plane.
//! Prints `ok: N objects` or every problem with file, document and field path, and
//! warns about `TrafficPermission` rules that can never match (judged from the files
//! given: a service they name may exist elsewhere).

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
        if let Err(errors) = weft_control::api::validate(&document.object) {
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
    for warning in permission_warnings(documents.iter().map(|d| &d.object)) {
        println!("warning: {warning}");
    }
    println!("ok: {} objects", documents.len());
    Ok(())
}

/// Every `TrafficPermission` part among `objects` that can never match or never
/// applies (a deny covers it), as
/// `trafficpermission/<ns>/<name>: <path>: <why>`.
fn permission_warnings<'a>(
    objects: impl IntoIterator<Item = &'a weft_api::resource::Object>,
) -> Vec<String> {
    let compiled = weft_policy::compile(objects);
    let mut out = Vec::new();
    for (key, status) in &compiled.statuses {
        if key.kind != weft_api::resource::Kind::TrafficPermission {
            continue;
        }
        for c in status["conditions"].as_array().into_iter().flatten() {
            let never = c["type"] == "RulesMatchable" && c["status"] == "False";
            let dead = c["reason"] == "ShadowedRules" || c["reason"] == "ShadowedByDeny";
            if never || dead {
                for part in c["message"].as_str().unwrap_or_default().split("; ") {
                    out.push(format!(
                        "trafficpermission/{}/{}: {part}",
                        key.namespace, key.name
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_that_can_never_match_are_reported_with_their_field_path() {
        let objects = weft_policy::parse_documents(
            r"
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: { name: catalog, namespace: shop }
spec: { selector: { app: catalog }, ports: [{ port: 80 }] }
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPermission
metadata: { name: readers, namespace: shop }
spec:
  targetRefs: [{ kind: Service, name: catalog }]
  rules: [{ from: [{ service: gone }], to: [{ ports: [8080] }] }]
",
        )
        .expect("objects");
        assert_eq!(
            permission_warnings(&objects),
            [
                "trafficpermission/shop/readers: spec.rules[0].from[0].service: Service shop/gone does not exist",
                "trafficpermission/shop/readers: spec.rules[0].to[0].ports[0]: 8080 is not a port of the targets (use the Service's port, not its targetPort)",
            ]
        );
    }

    #[test]
    fn an_allow_rule_a_deny_covers_is_reported_as_never_applying() {
        let objects = weft_policy::parse_documents(
            r"
apiVersion: weft.dev/v1alpha1
kind: TrafficPermission
metadata: { name: guard, namespace: shop }
spec:
  action: deny
  rules: [{ to: [{ paths: [{ value: /admin }] }] }]
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPermission
metadata: { name: open, namespace: shop }
spec:
  rules: [{ to: [{ paths: [{ value: /public }] }] }, { to: [{ paths: [{ value: /admin/users }] }] }]
",
        )
        .expect("objects");
        assert_eq!(
            permission_warnings(&objects),
            ["trafficpermission/shop/open: rules[1] never applies: TrafficPermission shop/guard rules[0] denies every request it matches, and deny wins"]
        );
    }
}
