// Target `dns_query`: one mesh DNS query packet turned into the answer
// (weft_proxy::dns::decide over a small name table), and the SERVFAIL sent when a
// forwarded query finds no upstream (weft_proxy::dns::servfail). Included by
// fuzz_targets/dns_query.rs and crates/weft-proxy/tests/fuzz_corpus.rs.

use std::sync::Arc;

use weft_api::proxy::Config;
use weft_proxy::dns::{self, Decision};
use weft_proxy::state::{Snapshot, Store};

/// Services with an IPv4 VIP, an IPv6 VIP and none, in two namespaces.
const DNS_CONFIG: &str = r"
workload: { name: web, namespace: shop, address: 10.0.0.1 }
listeners: { hbone: null, metrics: null, dns: 127.0.0.1:15053 }
services:
  - name: catalog
    namespace: shop
    vip: 240.240.0.7
    hostnames: [catalog.shop.svc.cluster.local]
    ports: [{ port: 8080 }]
  - name: ledger
    namespace: bank
    vip: fd00:10::9
    hostnames: [ledger.bank.svc.cluster.local]
    ports: [{ port: 80 }]
  - name: novip
    namespace: shop
    hostnames: [novip.shop.svc.cluster.local]
    ports: [{ port: 80 }]
";

/// Answers `data` as the UDP and TCP servers do; a reply always echoes the query's id.
pub(crate) fn run(data: &[u8]) {
    let reply = match dns::decide(data, dns_store()) {
        Decision::Reply(reply, _) => reply,
        Decision::Forward => dns::servfail(data),
        Decision::Ignore => {
            assert!(data.len() < 12, "a {}-byte query was ignored", data.len());
            return;
        }
    };
    if data.len() >= 2 && !reply.is_empty() {
        assert_eq!(
            reply.get(..2),
            data.get(..2),
            "the reply's id is not the query's"
        );
    }
}

fn dns_store() -> &'static Store {
    static STORE: std::sync::OnceLock<Arc<Store>> = std::sync::OnceLock::new();
    STORE.get_or_init(|| {
        let config = Config::from_yaml(DNS_CONFIG).expect("the DNS config is valid");
        Store::new(Snapshot::build(config, None, String::new(), None).expect("snapshot"))
    })
}
