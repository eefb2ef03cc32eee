//! The fuzz corpus of user resources, replayed on stable: each file of
//! `fuzz/corpus/resource_yaml/` goes through the same harness as
//! `cargo fuzz run resource_yaml` (`fuzz/harness/resource_yaml.rs`, included here), so
//! every input the fuzzer kept, crash reproducers included, stays a regression test.
//! See fuzz/README.md.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

include!("../../../fuzz/harness/replay.rs");

mod resource_yaml {
    include!("../../../fuzz/harness/resource_yaml.rs");
}

#[test]
fn resource_yaml_corpus_replays_without_panic() {
    replay("resource_yaml", resource_yaml::run);
}

/// Writes the starting points of `resource_yaml`, `proxy_config` and `xds_decode` into
/// `fuzz/corpus/`: the golden resources and the example mesh, and what the control
/// plane compiles them into (each proxy's config, each wire resource and a whole state
/// file). Run by hand: `cargo test -p weft-policy --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes seed files into fuzz/corpus; run by hand"]
fn write_seeds() {
    use prost::Message;
    use weft_api::pb::v1 as pb;
    use weft_api::pb_convert::route_tables_from_pb;
    use weft_api::proxy;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let seed = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };
    let inputs = [
        "crates/weft-policy/tests/golden/routing.yaml",
        "crates/weft-policy/tests/golden/backend-policy.yaml",
        "crates/weft-policy/tests/golden/traffic-policies.yaml",
        "crates/weft-policy/tests/golden/traffic-permissions.yaml",
        "crates/weft-policy/tests/golden/telemetry.yaml",
        "crates/weft-policy/tests/golden/gateway.yaml",
        "examples/local-mesh/mesh.yaml",
    ];
    for input in inputs {
        let name = std::path::Path::new(input)
            .file_stem()
            .unwrap()
            .to_string_lossy();
        let text = std::fs::read_to_string(root.join(input)).unwrap();
        seed("resource_yaml", &format!("{name}.yaml"), text.as_bytes());

        let compiled = weft_policy::compile(&weft_policy::parse_documents(&text).unwrap());
        // Each proxy's view: every compiled service and route, as a local config file.
        let mut config = proxy::Config::from_yaml(
            "workload: { name: web, serviceAccount: web, address: 10.0.0.1 }\nlisteners: { hbone: null }\n",
        )
        .unwrap();
        config.services = compiled
            .services
            .values()
            .map(|s| proxy::Service::try_from(s).unwrap())
            .collect();
        config.routes = compiled
            .route_tables
            .values()
            .flat_map(|t| route_tables_from_pb(t).unwrap())
            .collect();
        if let Some(policy) = compiled.inbound_policies.values().next() {
            proxy::InboundPolicy::try_from(policy)
                .unwrap()
                .apply_to(&mut config);
        }
        let json = serde_json::to_string_pretty(&config).unwrap();
        seed("proxy_config", &format!("{name}.json"), json.as_bytes());

        // The wire resources: one of each kind alone (mode byte 1-3) and all of them
        // as one state file (mode byte 0).
        let mut stored = Vec::new();
        let mut one = |mode: u8, type_url: &str, key: &str, value: Vec<u8>| {
            seed(
                "xds_decode",
                &format!("{name}-{mode}-{key}"),
                &[&[mode][..], &value].concat(),
            );
            stored.push(pb::StoredResource {
                type_url: type_url.to_owned(),
                name: key.to_owned(),
                version: "1".to_owned(),
                value,
            });
        };
        for (key, s) in &compiled.services {
            one(1, pb::SERVICE_TYPE_URL, key, s.encode_to_vec());
        }
        for (key, t) in &compiled.route_tables {
            one(2, pb::ROUTE_TABLE_TYPE_URL, key, t.encode_to_vec());
        }
        for (key, p) in &compiled.inbound_policies {
            one(3, pb::INBOUND_POLICY_TYPE_URL, key, p.encode_to_vec());
        }
        let file = pb::LastKnownGood {
            control_plane: "https://127.0.0.1:15010".to_owned(),
            resources: stored,
        };
        seed(
            "xds_decode",
            &format!("{name}-0-state"),
            &[&[0][..], &file.encode_to_vec()].concat(),
        );
    }
}
