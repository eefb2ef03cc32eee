//! Golden files: each `tests/golden/<case>.yaml` is a set of user resources; compiling
//! it must give exactly `tests/golden/<case>.golden.yaml` — the proxy resources (in the
//! proxy model, the form `/config_dump` shows) and the statuses, for every kind.
//!
//! A change that alters compile output shows up as a diff of these files in review.
//! After an intended change, regenerate them with
//! `UPDATE_GOLDEN=1 cargo test -p weft-policy --test golden` and read the diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use weft_api::pb_convert::route_tables_from_pb;
use weft_api::proxy;

/// What one case compiles to, in a stable order.
#[derive(Serialize)]
struct Output {
    services: BTreeMap<String, proxy::Service>,
    routes: BTreeMap<String, Vec<proxy::RouteTable>>,
    inbound: BTreeMap<String, proxy::InboundPolicy>,
    statuses: BTreeMap<String, serde_json::Value>,
}

fn render(input: &str) -> String {
    render_objects(&weft_policy::parse_documents(input).expect("golden input parses"))
}

fn render_objects(objects: &[weft_api::resource::Object]) -> String {
    let compiled = weft_policy::compile(objects);
    let output = Output {
        services: compiled
            .services
            .iter()
            .map(|(k, s)| {
                let s = proxy::Service::try_from(s).expect("compiled service converts");
                (k.clone(), s)
            })
            .collect(),
        routes: compiled
            .route_tables
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    route_tables_from_pb(t).expect("compiled routes convert"),
                )
            })
            .collect(),
        inbound: compiled
            .inbound_policies
            .iter()
            .map(|(k, p)| {
                let p = proxy::InboundPolicy::try_from(p).expect("compiled policy converts");
                (k.clone(), p)
            })
            .collect(),
        statuses: compiled
            .statuses
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    };
    serde_saphyr::to_string(&output).expect("output serializes")
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/golden exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && !p.to_string_lossy().ends_with(".golden.yaml")
        })
        .collect();
    cases.sort();
    cases
}

#[test]
fn compile_output_matches_the_golden_files() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let cases = cases();
    assert!(!cases.is_empty(), "no golden cases found");
    let mut failures = Vec::new();
    for input_path in cases {
        let input = std::fs::read_to_string(&input_path).expect("read input");
        let got = render(&input);
        let golden_path = input_path.with_extension("golden.yaml");
        if update {
            std::fs::write(&golden_path, &got).expect("write golden file");
            continue;
        }
        let want = std::fs::read_to_string(&golden_path).unwrap_or_else(|_| {
            panic!(
                "{} has no golden file; create it with UPDATE_GOLDEN=1",
                input_path.display()
            )
        });
        if got != want {
            let first = got
                .lines()
                .zip(want.lines())
                .position(|(g, w)| g != w)
                .unwrap_or_else(|| got.lines().count().min(want.lines().count()));
            failures.push(format!(
                "{}: differs from its golden file at line {}:\n  got:  {}\n  want: {}",
                input_path.display(),
                first + 1,
                got.lines().nth(first).unwrap_or("<end>"),
                want.lines().nth(first).unwrap_or("<end>"),
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_order_of_the_input_does_not_change_the_output() {
    for input_path in cases() {
        let input = std::fs::read_to_string(&input_path).expect("read input");
        let mut objects = weft_policy::parse_documents(&input).expect("golden input parses");
        let forward = render_objects(&objects);
        objects.reverse();
        assert_eq!(
            render_objects(&objects),
            forward,
            "{}",
            input_path.display()
        );
    }
}
