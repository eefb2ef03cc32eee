//! `POST /v1/apply`: many documents in one request, kubectl-style.
//!
//! All documents are parsed and validated before anything is written: one invalid
//! document fails the request with `400`, listing every problem with its document
//! index, kind/name and field path, and nothing is stored. Then every object is put in
//! order, in one store transaction (conditional on `metadata.resourceVersion` when a
//! document carries it): all are stored or none, even if the process dies mid-way
//! (ADR 0024). The response says per object whether it was created, configured or
//! unchanged.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use weft_api::resource::Key;

use super::error::{Detail, Error};
use super::format::{self, Format, Reply};
use super::resources::{normalise, precondition_of, qualified};
use super::{secret, ApiState};
use crate::store::{Precondition, StoreError, Written};

/// The response body.
#[derive(Serialize)]
struct Applied {
    results: Vec<Outcome>,
}

/// What happened to one document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Outcome {
    kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    namespace: String,
    name: String,
    result: &'static str,
    resource_version: String,
}

pub(super) async fn handler(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Reply, Error> {
    let format = Format::of_response(&headers)?;
    // Either format is read by the same parser; the type only has to be one of ours.
    Format::of_request(&headers)?;
    let text = format::read_text(body).await?;
    let objects = weft_policy::parse_documents(&text).map_err(|e| {
        Error::invalid(
            format!("document {}: {}", e.index, e.message),
            vec![Detail {
                document: Some(e.index),
                path: e.path.unwrap_or_default(),
                message: e.message,
                ..Detail::default()
            }],
        )
    })?;
    if objects.is_empty() {
        return Err(Error::invalid("the request holds no documents", vec![]));
    }

    let mut details = Vec::new();
    let mut writes = Vec::with_capacity(objects.len());
    let mut first_index: HashMap<Key, usize> = HashMap::new();
    for (index, object) in objects.into_iter().enumerate() {
        let namespace = object.namespace().to_owned();
        let detail = |path: &str, message: String| Detail {
            document: Some(index),
            kind: Some(object.kind.clone()),
            namespace: (!namespace.is_empty()).then(|| namespace.clone()),
            name: Some(object.metadata.name.clone()),
            path: path.to_owned(),
            message,
        };
        let key = match object.key() {
            Ok(key) => key,
            Err(e) => {
                details.push(detail("kind", e.to_string()));
                continue;
            }
        };
        let mut intake = None;
        if secret::is_secret(&object) {
            match secret::check(&object) {
                Ok(material) => intake = Some(material),
                Err(problems) => details.extend(
                    problems
                        .into_iter()
                        .map(|(path, message)| detail(&path, message)),
                ),
            }
        } else if let Err(errors) = weft_policy::validate(&object) {
            details.extend(errors.0.into_iter().map(|e| detail(&e.path, e.message)));
        }
        let precondition = match precondition_of(&object) {
            Ok(p) => p,
            Err(message) => {
                details.push(detail("metadata.resourceVersion", message));
                Precondition::None
            }
        };
        if let Some(first) = first_index.insert(key.clone(), index) {
            details.push(detail(
                "metadata.name",
                format!("document {first} already defines {key}"),
            ));
        }
        writes.push((index, normalise(object), precondition, intake));
    }
    if !details.is_empty() {
        let documents: std::collections::BTreeSet<usize> =
            details.iter().filter_map(|d| d.document).collect();
        return Err(Error::invalid(
            format!(
                "{} problem(s) in {} document(s); nothing was applied",
                details.len(),
                documents.len()
            ),
            details,
        ));
    }

    let mut sealed = Vec::with_capacity(writes.len());
    for (index, object, precondition, intake) in writes {
        let object = match intake {
            Some(intake) => secret::seal(&state, object, intake).await?,
            None => object,
        };
        sealed.push((index, object, precondition));
    }
    let writes = sealed;
    let labels: Vec<String> = writes
        .iter()
        .map(|(index, object, _)| {
            format!(
                "document {index} ({} {})",
                object.kind,
                qualified(object.namespace(), &object.metadata.name)
            )
        })
        .collect();
    let batch = writes
        .into_iter()
        .map(|(_, object, precondition)| (object, precondition))
        .collect();
    let written = state.store.put_all(batch).await.map_err(|e| {
        let label = match &e {
            StoreError::InBatch { index, .. } => labels.get(*index).map(String::as_str),
            _ => None,
        };
        let error = Error::from(e);
        let message = match label {
            Some(label) => format!("{label}: {}; nothing was applied", error.message()),
            None => format!("{}; nothing was applied", error.message()),
        };
        error.with_message(message)
    })?;
    let results = written
        .iter()
        .map(|written| {
            let stored = written.object();
            Outcome {
                kind: stored.kind.clone(),
                namespace: stored.namespace().to_owned(),
                name: stored.metadata.name.clone(),
                result: match written {
                    Written::Created(_) => "created",
                    Written::Configured(_) => "configured",
                    Written::Unchanged(_) => "unchanged",
                },
                resource_version: stored.metadata.resource_version.clone().unwrap_or_default(),
            }
        })
        .collect();
    Ok(Reply::ok(format, &Applied { results }))
}
