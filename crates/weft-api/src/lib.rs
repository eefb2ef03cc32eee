//! Weft's data model, shared by the control plane, the proxy and the CLI.
//!
//! This crate holds types only: no I/O, no sockets, no files. Today it carries the
//! proxy-side model ([`proxy`]): exactly what one proxy needs to run, whether it comes
//! from a local YAML file (`weft proxy --config`) or, later, from the control plane over
//! xDS. The user-facing resources (`Service`, `HTTPRoute`, …) arrive with the control
//! plane and compile down to this model.

pub mod duration;
pub mod proxy;
