// Target `proxy_config`: the proxy's local YAML config as `weft proxy --config` reads
// it (weft_api::proxy::Config: YAML, shape, validation), then compiled into the snapshot
// the data path runs on (weft_proxy::state::Snapshot). Included by
// fuzz_targets/proxy_config.rs and crates/weft-proxy/tests/fuzz_corpus.rs.

use weft_api::proxy::{Config, References};
use weft_proxy::state::Snapshot;

/// Parses `data` as a complete config file and as a control-plane bootstrap; each that
/// validates is compiled (certificate files aside: the harness reads no files).
pub(crate) fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for references in [References::Required, References::Deferred] {
        let Ok(config) = Config::from_yaml_with(text, references) else {
            continue;
        };
        let _ = Snapshot::build(config, None, String::new(), None);
    }
}
