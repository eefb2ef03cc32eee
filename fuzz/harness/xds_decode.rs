// Target `xds_decode`: xDS resources as the proxy takes them. The bytes are a
// `weft.proxy.v1.LastKnownGood` state file, or one resource body that the harness
// wraps in one; the proxy reads it back (weft_proxy::control_plane::load_persisted: prost
// decode, the weft_api::pb_convert conversions, validation, route compilation, exactly
// the checks of a live xDS response) and composes the accepted resources with its
// bootstrap into a snapshot (weft_proxy::control_plane::compose). Included by
// fuzz_targets/xds_decode.rs and crates/weft-proxy/tests/fuzz_corpus.rs.

use prost::Message;
use weft_api::pb::v1 as pb;
use weft_api::proxy::{self, Config, References};
use weft_proxy::control_plane as control;
use weft_proxy::control_plane::compose::{self, Composer};
use weft_proxy::state::file::Loaded;
use weft_proxy::control_plane::xds::state_file;

/// The proxy the resources are for: `web` in `default`, calling `api:80`.
const XDS_BOOTSTRAP: &str = r#"
workload: { name: web, serviceAccount: web, address: 127.0.0.1 }
listeners: { hbone: null, metrics: null, outboundCapture: null, inboundCapture: null }
outbound:
  - { listen: "127.0.0.1:18080", service: api, port: 80 }
"#;

/// First byte: 0 = the rest is a whole state file; 1-4 = the rest is the body of one
/// Service, RouteTable, InboundPolicy or TrustBundle resource (others wrap around).
pub(crate) fn run(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let boot = xds_bootstrap();
    let file = match mode % 5 {
        0 => body.to_vec(),
        1 => {
            // Named as the control plane names it, so the name check passes.
            let name = pb::Service::decode(body)
                .ok()
                .and_then(|s| proxy::Service::try_from(&s).ok())
                .map_or_else(|| "api.default".to_owned(), |s| s.key());
            wrap(pb::SERVICE_TYPE_URL, &name, body)
        }
        2 => wrap(pb::ROUTE_TABLE_TYPE_URL, "api.default", body),
        3 => wrap(pb::INBOUND_POLICY_TYPE_URL, "web.default", body),
        _ => wrap(pb::TRUST_BUNDLE_TYPE_URL, pb::TRUST_BUNDLE_NAME, body),
    };
    // A state directory of this process's own, removed after each input; in memory
    // where there is a tmpfs, since a disk-backed /tmp makes this the slowest step.
    let shm = std::path::Path::new("/dev/shm");
    let scratch = if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    };
    let base = scratch.join(format!("weft-fuzz-xds-{}", std::process::id()));
    let dir = control::state_dir(&base, &boot.config);
    std::fs::create_dir_all(&dir).expect("state directory");
    std::fs::write(state_file::path(&dir), file).expect("state file");
    let dynamic = control::load_persisted(&base, &boot.config);
    let _ = std::fs::remove_dir_all(&base);
    if let Some(dynamic) = dynamic {
        let _ = compose::wanted(&boot.config, &dynamic);
        let _ = Composer::initial(boot, &dynamic, None);
    }
}

/// A state file holding one resource.
fn wrap(type_url: &str, name: &str, value: &[u8]) -> Vec<u8> {
    pb::LastKnownGood {
        control_plane: "https://127.0.0.1:15010".to_owned(),
        resources: vec![pb::StoredResource {
            type_url: type_url.to_owned(),
            name: name.to_owned(),
            version: "1".to_owned(),
            value: value.to_vec(),
        }],
    }
    .encode_to_vec()
}

fn xds_bootstrap() -> &'static Loaded {
    static BOOT: std::sync::OnceLock<Loaded> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| Loaded {
        config: Config::from_yaml_with(XDS_BOOTSTRAP, References::Deferred)
            .expect("the bootstrap is valid"),
        creds: None,
        version: String::new(),
    })
}
