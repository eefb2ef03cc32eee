// Target `resource_yaml`: user resources as `weft apply` sends them. The control plane
// reads the documents (weft_policy::parse_documents), checks each object's kind and
// spec (Object::key, weft_policy::validate) and compiles the store into proxy resources
// (weft_policy::compile), which proxies convert back (weft_api::pb_convert). Included by
// fuzz_targets/resource_yaml.rs and crates/weft-policy/tests/fuzz_corpus.rs.

use weft_api::pb_convert::route_tables_from_pb;
use weft_api::proxy;

/// Parses, validates and compiles `data`; checks that compiling does not depend on the
/// order of the objects (as `compile` promises) and that the proxy takes what it made.
pub(crate) fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(objects) = weft_policy::parse_documents(text) else {
        return;
    };
    let mut keys = std::collections::BTreeSet::new();
    for object in &objects {
        if let Ok(key) = object.key() {
            keys.insert(key);
        }
        let _ = weft_policy::validate(object);
    }
    let compiled = weft_policy::compile(&objects);
    // The store holds one object per key, so only then is the order free.
    if keys.len() == objects.len() {
        assert!(
            compiled == weft_policy::compile(objects.iter().rev()),
            "compile gave another result for the same objects in reverse order"
        );
    }
    for (name, service) in &compiled.services {
        if let Err(e) = proxy::Service::try_from(service) {
            panic!("compiled service {name} does not convert back: {e}");
        }
    }
    for (name, table) in &compiled.route_tables {
        if let Err(e) = route_tables_from_pb(table) {
            panic!("compiled route table {name} does not convert back: {e}");
        }
    }
    for (name, policy) in &compiled.inbound_policies {
        if let Err(e) = proxy::InboundPolicy::try_from(policy) {
            panic!("compiled inbound policy {name} does not convert back: {e}");
        }
    }
}
