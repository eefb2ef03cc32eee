//! How a `Secret` enters and leaves the API: its material is read from the document
//! (`type`, `data`, `stringData`, lifted under `spec` by the parser), checked
//! (`weft_tls::material`), sealed with the control plane's key, and stored as the
//! description a reader gets (`weft_api::resource::secret::Spec`) plus the sealed part;
//! every answer goes through [`redact`]. A write of the same material as stored reuses
//! the stored ciphertext, so `apply` of an unchanged Secret says `unchanged`.
//!
//! Errors name the field (`data["tls.key"]`) and what to do, never the value.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;
use weft_api::resource::secret::{
    self as api, Certificate, Spec, KEYS, TLS_CRT, TLS_KEY, TLS_TYPE,
};
use weft_api::resource::{Kind, Object};

use super::error::Error;
use super::ApiState;
use crate::seal::{identity, Keyring, Material};

/// A Secret's material, read and checked, not yet sealed.
pub(super) struct Intake {
    /// Key → bytes, `data` and `stringData` merged.
    data: Material,
    /// The description (no sealed part yet).
    spec: Spec,
}

/// One problem with a Secret document: the field path and the message.
pub(super) type Problem = (String, String);

/// Whether `object` is a Secret (whose spec must go through [`check`] and [`seal`]).
pub(super) fn is_secret(object: &Object) -> bool {
    object.kind == Kind::Secret.as_str()
}

/// Removes the sealed material from an answer.
pub(super) fn redact(mut object: Object) -> Object {
    api::redact(&mut object);
    object
}

/// Reads and checks a Secret document's material.
pub(super) fn check(object: &Object) -> Result<Intake, Vec<Problem>> {
    let mut problems: Vec<Problem> = Vec::new();
    // A Secret's metadata is held to the rules of every other kind's.
    if let Err(errors) = weft_policy::validate_metadata(object) {
        problems.extend(errors.0.into_iter().map(|e| (e.path, e.message)));
    }
    let Some(fields) = object.spec.as_object() else {
        return Err(vec![(
            "data".into(),
            format!("required: a {TLS_TYPE} Secret carries tls.crt and tls.key under data (base64) or stringData (PEM)"),
        )]);
    };
    for name in fields.keys() {
        if !api::TOP_LEVEL_FIELDS.contains(&name.as_str()) || name == "immutable" {
            let message = if name == "immutable" {
                "is not supported: a Secret is replaced by applying it again".to_owned()
            } else {
                "a Secret has no spec here: write type, data and stringData at the top level, as on Kubernetes".to_owned()
            };
            let path = if name == "immutable" {
                name.clone()
            } else {
                format!("spec.{name}")
            };
            problems.push((path, message));
        }
    }
    match fields.get("type").map(Value::as_str) {
        Some(Some(TLS_TYPE)) => {}
        None => problems.push(("type".into(), format!("required: {TLS_TYPE}"))),
        Some(Some(other)) => problems.push((
            "type".into(),
            format!(
                "{:?} is not supported; Weft takes Secrets of type {TLS_TYPE} only (a \
                 certificate and its key for a Gateway)",
                other.chars().take(64).collect::<String>()
            ),
        )),
        Some(None) => problems.push(("type".into(), format!("must be a string: {TLS_TYPE}"))),
    }
    // Where each key came from, for the error paths: stringData wins, as on Kubernetes.
    let mut data: BTreeMap<String, (String, Vec<u8>)> = BTreeMap::new();
    for (field, base64) in [("data", true), ("stringData", false)] {
        let Some(value) = fields.get(field) else {
            continue;
        };
        let Some(map) = value.as_object() else {
            problems.push((field.into(), "must be a mapping of key to value".into()));
            continue;
        };
        for (key, value) in map {
            let path = format!("{field}[{key:?}]");
            if !KEYS.contains(&key.as_str()) {
                problems.push((
                    format!("{field}[{:?}]", key.chars().take(64).collect::<String>()),
                    format!(
                        "is not a key of a {TLS_TYPE} Secret; use {}",
                        KEYS.join(", ")
                    ),
                ));
                continue;
            }
            let Some(text) = value.as_str() else {
                problems.push((path, "must be a string".into()));
                continue;
            };
            let bytes = if base64 {
                let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                if compact.len() > 4 * (weft_tls::material::MAX_CA_BYTES / 3 + 1) {
                    problems.push((
                        path,
                        "is too large; a certificate or key is at most a few KiB".into(),
                    ));
                    continue;
                }
                let Ok(bytes) = BASE64.decode(compact) else {
                    problems.push((
                        path,
                        "is not base64; encode the PEM file (`base64 -w0 FILE`), or give \
                         the PEM text under stringData"
                            .into(),
                    ));
                    continue;
                };
                bytes
            } else {
                text.as_bytes().to_vec()
            };
            data.insert(key.clone(), (path, bytes));
        }
    }
    for key in [TLS_CRT, TLS_KEY] {
        if !data.contains_key(key) && !problems.iter().any(|(p, _)| p.contains(key)) {
            problems.push((
                format!("data[{key:?}]"),
                "required: give it under data (base64) or stringData (PEM)".to_owned(),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let bytes = |key: &str| data.get(key).map(|(_, b)| b.as_slice());
    let path_of = |key: &str| {
        data.get(key)
            .map_or_else(|| format!("data[{key:?}]"), |(p, _)| p.clone())
    };
    let description = weft_tls::material::check(
        bytes(TLS_CRT).unwrap_or_default(),
        bytes(TLS_KEY).unwrap_or_default(),
        bytes(api::CA_CRT),
    )
    .map_err(|found| {
        found
            .into_iter()
            .map(|p| (path_of(p.key), p.message))
            .collect::<Vec<_>>()
    })?;
    let keys = data.keys().cloned().collect();
    Ok(Intake {
        data: Material::new(data.into_iter().map(|(k, (_, b))| (k, b)).collect()),
        spec: Spec {
            r#type: TLS_TYPE.to_owned(),
            keys,
            certificate: Certificate {
                subject: description.subject,
                issuer: description.issuer,
                dns_names: description.dns_names,
                ip_addresses: description.ip_addresses,
                not_before: description.not_before,
                not_after: description.not_after,
                sha256_fingerprint: description.sha256_fingerprint,
                chain_length: description.chain_length,
            },
            sealed: None,
        },
    })
}

/// Replaces `object`'s spec by the stored form of `intake`: the description and the
/// material sealed, reusing the stored ciphertext when the material is the same (so
/// the store sees no change).
pub(super) async fn seal(
    state: &ApiState,
    mut object: Object,
    intake: Intake,
) -> Result<Object, Error> {
    let keyring = keyring(state)?;
    let plaintext = intake.data.plaintext().map_err(|e| Error::internal(&e))?;
    let identity = identity(object.namespace(), &object.metadata.name);
    let key = object.key().map_err(|e| Error::internal(&e))?;
    let reused = match state.store.get(&key).await? {
        Some(current) => same_material(keyring, &identity, &current, &intake.spec, &plaintext),
        None => None,
    };
    let sealed = match reused {
        Some(sealed) => sealed,
        None => keyring
            .seal(&identity, &plaintext)
            .map_err(|e| Error::internal(&e))?,
    };
    let spec = Spec {
        sealed: Some(sealed),
        ..intake.spec
    };
    object.spec = serde_json::to_value(spec).map_err(|e| Error::internal(&e))?;
    Ok(object)
}

/// The stored ciphertext, when the stored Secret describes and holds exactly this
/// material (a stored Secret that does not open is simply replaced).
fn same_material(
    keyring: &Keyring,
    identity: &str,
    current: &Object,
    spec: &Spec,
    plaintext: &[u8],
) -> Option<api::Sealed> {
    let stored: Spec = serde_json::from_value(current.spec.clone()).ok()?;
    let sealed = stored.sealed.clone()?;
    let described = Spec {
        sealed: None,
        ..stored
    };
    if described != *spec {
        return None;
    }
    let opened = keyring.open(identity, &sealed).ok()?;
    (opened == plaintext).then_some(sealed)
}

fn keyring(state: &ApiState) -> Result<&Keyring, Error> {
    state.secrets.as_deref().ok_or_else(|| {
        Error::bad_request(
            "this control plane has no secret key, so it stores no Secrets: start it with \
             `--secret-key-file PATH` (required with a PostgreSQL store; a SQLite store \
             keeps one beside the database)",
        )
    })
}
