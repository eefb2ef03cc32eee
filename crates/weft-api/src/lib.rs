//! Weft's data model, shared by the control plane, the proxy and the CLI.
//!
//! This crate holds types only: no I/O, no sockets, no files.
//! - [`proxy`]: exactly what one proxy needs to run, whether it comes from a local YAML
//!   file (`weft proxy --config`) or from the control plane over xDS.
//! - [`pb`]: the generated `weft.proxy.v1` protobuf types, the control-plane ↔ proxy
//!   contract, and the conversions into [`proxy`] types.
//! - [`resource`]: the user-facing, Kubernetes-shaped resources (`Service`,
//!   `HTTPRoute`, …) that operators apply and the control plane compiles.

pub mod cidr;
pub mod digest;
pub mod duration;
pub mod pb;
pub mod pb_convert;
pub mod proxy;
pub mod resource;
