//! Validation and compilation of user resources (DESIGN §3): one module per kind with
//! its `Spec`, `validate` and `compile`. Pure: no I/O.
//!
//! - [`parse_documents`]: multi-document YAML (or JSON) into [`Object`]s, errors naming
//!   the document and field path.
//! - [`validate`]: one object, alone: its `apiVersion`, metadata and typed spec
//!   (unknown fields rejected), every problem collected with its field path
//!   (`spec.rules[1].backendRefs[0].weight`).
//! - [`compile`]: every stored object → the proxy resources (`weft.proxy.v1`) plus the
//!   status each object should carry (unresolved references become conditions).

use std::collections::BTreeMap;

pub use weft_api::proxy::{FieldError, ValidationErrors};
use weft_api::pb::v1 as pb;
use weft_api::resource::{Key, Object};

/// A document that could not be read as an object.
#[derive(Debug, thiserror::Error)]
#[error("document {index}: {message}")]
pub struct ParseError {
    /// 0-based index of the document in the stream.
    pub index: usize,
    /// Field path inside the document, when known.
    pub path: Option<String>,
    /// What was wrong.
    pub message: String,
}

/// Reads a stream of YAML documents (`---` separated) or one JSON document/array into
/// objects. Empty documents are skipped. Does not validate specs; see [`validate`].
pub fn parse_documents(text: &str) -> Result<Vec<Object>, ParseError> {
    let _ = text;
    Err(ParseError {
        index: 0,
        path: None,
        message: "not implemented yet".to_owned(),
    })
}

/// Validates one object on its own (no cross-object references; those become status
/// conditions at compile time). Fills nothing in; the caller stores the object as given.
pub fn validate(object: &Object) -> Result<(), ValidationErrors> {
    let _ = object;
    Ok(())
}

/// The result of compiling the whole store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Compiled {
    /// Proxy `Service` resources by resource name (`<name>.<namespace>`).
    pub services: BTreeMap<String, pb::Service>,
    /// Proxy `RouteTable` resources by resource name (`<name>.<namespace>` of the parent
    /// service). Services without routes have none.
    pub route_tables: BTreeMap<String, pb::RouteTable>,
    /// Status each route (and service) object should have. The control plane writes
    /// those that differ from what is stored.
    pub statuses: BTreeMap<Key, serde_json::Value>,
}

/// Compiles every stored object (all kinds, as stored, statuses included: a
/// `Workload` is an endpoint only while its `status.phase` is `Healthy` or
/// `Disconnected`).
pub fn compile(objects: &[Object]) -> Compiled {
    let _ = objects;
    Compiled::default()
}
