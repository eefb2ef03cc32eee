//! The inbound request path, one stage per file, in the order
//! [`Inbound::request`](super::Inbound) runs them:
//!
//! 1. [`authorize`]: the path normalised, then whether this caller may make this
//!    request at all (the port's mTLS mode, then `TrafficPermission`s);
//! 2. [`rate_limit`]: the workload's local rate limits;
//! 3. [`fault`]: injected delays and aborts;
//! 4. [`identity`]: the caller's identity asserted to the app, forged headers removed;
//! 5. [`forward`]: to the app over a pooled connection;
//! 6. [`respond`]: refusals turned into answers, and the request metric.
//!
//! Stages are plain functions over concrete types (ADR 28); a refusal is an
//! [`Error`](crate::error::Error). A new policy is one new file here and one line in
//! `Inbound::request` (`docs/how-to-add-a-policy.md`).

pub mod authorize;
pub mod fault;
pub mod forward;
pub mod identity;
pub mod rate_limit;
pub mod respond;

#[cfg(test)]
pub(crate) mod test_config {
    //! A snapshot for the stage tests.

    use crate::state::Snapshot;

    /// A workload serving port 8080 (strict) and 9090 (permissive), with `inbound`
    /// (YAML, the keys of the `inbound:` block) added.
    pub(crate) fn snapshot(inbound: &str) -> Snapshot {
        let yaml = format!(
            r"
workload:
  name: server
  address: 10.0.0.2
  ports: [{{ port: 8080 }}, {{ port: 9090, mtls: permissive }}]
listeners: {{ hbone: null }}
inbound: {{ mtls: strict{inbound} }}
"
        );
        let config = weft_api::proxy::Config::from_yaml(&yaml).expect("valid config");
        Snapshot::build(config, None, "v".into(), None).expect("snapshot")
    }
}
