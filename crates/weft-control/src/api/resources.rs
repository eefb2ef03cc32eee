//! Create, read, replace, delete and list of stored objects, one kind per path
//! (`/v1/namespaces/{ns}/{plural}/{name}`, `/v1/meshes/{name}`).
//!
//! Request bodies are whole objects. Their `kind`, `metadata.namespace` and
//! `metadata.name` must agree with the path; `status` and the store's bookkeeping
//! (`uid`, `generation`, `creationTimestamp`) are ignored; `metadata.resourceVersion`,
//! when present, makes a `PUT` conditional on it. Names and namespaces in paths are
//! checked (see [`params`](super::params)) before anything is read or written, and so
//! is the `Accept` header.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use weft_api::resource::{Key, Kind, Object};

use super::error::{Detail, Error};
use super::extract::{Params, Segments};
use super::format::{self, Format, Reply};
use super::params::{self, ListQuery};
use super::{secret, watch, ApiState};
use crate::store::{Precondition, Written};

/// Where a request points: a kind, a namespace (`""` for cluster-scoped kinds) and
/// for single-object requests a name.
struct Target {
    kind: Kind,
    namespace: String,
}

// === handlers ===

pub(super) async fn list_all(
    State(state): State<ApiState>,
    Segments(plural): Segments<String>,
    Params(query): Params<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let kind = kind_of(&plural)?;
    list(&state, kind, None, query, &headers).await
}

pub(super) async fn list_namespaced(
    State(state): State<ApiState>,
    Segments((namespace, plural)): Segments<(String, String)>,
    Params(query): Params<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let target = namespaced(&namespace, &plural)?;
    list(&state, target.kind, Some(namespace), query, &headers).await
}

pub(super) async fn create_cluster(
    State(state): State<ApiState>,
    Segments(plural): Segments<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Reply, Error> {
    let kind = kind_of(&plural)?;
    if kind.namespaced() {
        // `/v1/{plural}` of a namespaced kind lists across namespaces; it creates nothing.
        return Err(
            Error::method_not_allowed(&Method::POST, &format!("/v1/{plural}"), &["GET"])
                .with_message(format!(
                    "POST is not supported on /v1/{plural}: {plural} are namespaced; POST to \
                 /v1/namespaces/{{namespace}}/{plural}"
                )),
        );
    }
    let target = cluster(&plural)?;
    create(&state, &target, &headers, body).await
}

pub(super) async fn create_namespaced(
    State(state): State<ApiState>,
    Segments((namespace, plural)): Segments<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Reply, Error> {
    let target = namespaced(&namespace, &plural)?;
    create(&state, &target, &headers, body).await
}

pub(super) async fn get_cluster(
    State(state): State<ApiState>,
    Segments((plural, name)): Segments<(String, String)>,
    headers: HeaderMap,
) -> Result<Reply, Error> {
    let target = cluster(&plural)?;
    read(&state, &target, name, &headers).await
}

pub(super) async fn get_namespaced(
    State(state): State<ApiState>,
    Segments((namespace, plural, name)): Segments<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Reply, Error> {
    let target = namespaced(&namespace, &plural)?;
    read(&state, &target, name, &headers).await
}

pub(super) async fn replace_cluster(
    State(state): State<ApiState>,
    Segments((plural, name)): Segments<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Reply, Error> {
    let target = cluster(&plural)?;
    replace(&state, &target, &name, &headers, body).await
}

pub(super) async fn replace_namespaced(
    State(state): State<ApiState>,
    Segments((namespace, plural, name)): Segments<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Reply, Error> {
    let target = namespaced(&namespace, &plural)?;
    replace(&state, &target, &name, &headers, body).await
}

pub(super) async fn delete_cluster(
    State(state): State<ApiState>,
    Segments((plural, name)): Segments<(String, String)>,
    headers: HeaderMap,
) -> Result<Reply, Error> {
    let target = cluster(&plural)?;
    delete(&state, &target, name, &headers).await
}

pub(super) async fn delete_namespaced(
    State(state): State<ApiState>,
    Segments((namespace, plural, name)): Segments<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Reply, Error> {
    let target = namespaced(&namespace, &plural)?;
    delete(&state, &target, name, &headers).await
}

// === operations ===

async fn list(
    state: &ApiState,
    kind: Kind,
    namespace: Option<String>,
    query: ListQuery,
    headers: &HeaderMap,
) -> Result<Response, Error> {
    let query = query.check()?;
    let filter = watch::Filter {
        kind,
        namespace,
        selector: query.selector,
    };
    if query.watch {
        format::accepts_ndjson(headers)?;
        return Ok(watch::respond(
            state.store.clone(),
            filter,
            query.resource_version,
            query.timeout,
        ));
    }
    let format = Format::of_response(headers)?;
    let (objects, revision) = state
        .store
        .list(Some(kind), filter.namespace.as_deref())
        .await?;
    let items: Vec<Object> = objects
        .into_iter()
        .filter(|o| filter.matches(o))
        .map(secret::redact)
        .collect();
    let list = json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": revision.to_string()},
        "items": items,
    });
    Ok(Reply::ok(format, &list).into_response())
}

async fn read(
    state: &ApiState,
    target: &Target,
    name: String,
    headers: &HeaderMap,
) -> Result<Reply, Error> {
    params::check_label("name", &name)?;
    let format = Format::of_response(headers)?;
    let key = target.key(name);
    match state.store.get(&key).await? {
        Some(object) => Ok(Reply::ok(format, &secret::redact(object))),
        None => Err(Error::not_found(format!("{key} not found"))),
    }
}

async fn create(
    state: &ApiState,
    target: &Target,
    headers: &HeaderMap,
    body: Body,
) -> Result<Reply, Error> {
    let format = Format::of_response(headers)?;
    let (object, _, intake) = object_from_body(target, None, headers, body).await?;
    let object = stored_form(state, object, intake).await?;
    let key = target.key(object.metadata.name.clone());
    let written = match state.store.put(object, Precondition::Absent).await {
        Err(crate::store::StoreError::Conflict { .. }) => {
            return Err(Error::already_exists(format!(
                "{key} already exists; use PUT to replace it"
            )))
        }
        other => other?,
    };
    Ok(Reply::with_status(
        StatusCode::CREATED,
        format,
        &secret::redact(written.object().clone()),
    ))
}

async fn replace(
    state: &ApiState,
    target: &Target,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Reply, Error> {
    params::check_label("name", name)?;
    let format = Format::of_response(headers)?;
    let (object, precondition, intake) =
        object_from_body(target, Some(name), headers, body).await?;
    let object = stored_form(state, object, intake).await?;
    let written = state.store.put(object, precondition).await?;
    let status = match written {
        Written::Created(_) => StatusCode::CREATED,
        Written::Configured(_) | Written::Unchanged(_) => StatusCode::OK,
    };
    Ok(Reply::with_status(
        status,
        format,
        &secret::redact(written.object().clone()),
    ))
}

async fn delete(
    state: &ApiState,
    target: &Target,
    name: String,
    headers: &HeaderMap,
) -> Result<Reply, Error> {
    params::check_label("name", &name)?;
    let format = Format::of_response(headers)?;
    let key = target.key(name);
    let object = state.store.delete(&key, Precondition::None).await?;
    Ok(Reply::ok(format, &secret::redact(object)))
}

// === decoding ===

/// Reads, checks and normalises an object from a request body: decoded in the
/// request's format, agreeing with the path, validated, with `status` and store
/// bookkeeping dropped. Returns the write's precondition from
/// `metadata.resourceVersion`, and for a `Secret` its material, checked.
async fn object_from_body(
    target: &Target,
    name: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Object, Precondition, Option<secret::Intake>), Error> {
    let request_format = Format::of_request(headers)?;
    let text = format::read_text(body).await?;
    let mut value = format::decode(request_format, &text)?;
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    } else {
        return Err(Error::invalid(
            "request body must be one object (a mapping), not a list or scalar; use /v1/apply for several",
            vec![],
        ));
    }
    if value.get("metadata").is_some_and(|m| !m.is_object()) {
        // Serde would read ObjectMeta from a list of its field values too.
        return Err(Error::invalid_field(
            "metadata",
            "must be a mapping (name, namespace, labels, …)",
        ));
    }
    weft_api::resource::secret::lift(&mut value);
    let mut object: Object = serde_json::from_value(value)
        .map_err(|e| Error::invalid(format!("request body is not an object: {e}"), vec![]))?;
    check_against_path(&object, target, name)?;
    if target.kind.namespaced() {
        object.metadata.namespace = Some(target.namespace.clone());
    }
    let precondition = precondition_of(&object)
        .map_err(|message| Error::invalid_field("metadata.resourceVersion", message))?;
    let mut intake = None;
    let checked = if secret::is_secret(&object) {
        match secret::check(&object) {
            Ok(material) => {
                intake = Some(material);
                Ok(())
            }
            Err(problems) => Err(weft_policy::ValidationErrors(
                problems
                    .into_iter()
                    .map(|(path, message)| weft_policy::FieldError { path, message })
                    .collect(),
            )),
        }
    } else {
        weft_policy::validate(&object)
    };
    if let Err(errors) = checked {
        let details = errors
            .0
            .into_iter()
            .map(|e| Detail {
                kind: Some(object.kind.clone()),
                namespace: (!target.namespace.is_empty()).then(|| target.namespace.clone()),
                name: Some(object.metadata.name.clone()),
                path: e.path,
                message: e.message,
                ..Detail::default()
            })
            .collect();
        return Err(Error::invalid(
            format!(
                "{} {} is invalid",
                object.kind,
                qualified(&target.namespace, &object.metadata.name)
            ),
            details,
        ));
    }
    Ok((normalise(object), precondition, intake))
}

/// The object as the store keeps it: a Secret's material sealed, anything else as is.
async fn stored_form(
    state: &ApiState,
    object: Object,
    intake: Option<secret::Intake>,
) -> Result<Object, Error> {
    match intake {
        Some(intake) => secret::seal(state, object, intake).await,
        None => Ok(object),
    }
}

fn check_against_path(object: &Object, target: &Target, name: Option<&str>) -> Result<(), Error> {
    if object.kind != target.kind.as_str() {
        return Err(Error::invalid_field(
            "kind",
            format!(
                "is {:?} but the path is for {}",
                object.kind,
                target.kind.as_str()
            ),
        ));
    }
    if !target
        .kind
        .accepted_api_versions()
        .contains(&object.api_version.as_str())
    {
        return Err(Error::invalid_field(
            "apiVersion",
            format!(
                "{:?} is not an apiVersion of {}; use {}",
                object.api_version,
                target.kind,
                target.kind.api_version()
            ),
        ));
    }
    if object.metadata.name.is_empty() {
        return Err(Error::invalid_field("metadata.name", "is required"));
    }
    if let Some(name) = name {
        if object.metadata.name != name {
            return Err(Error::invalid_field(
                "metadata.name",
                format!("is {:?} but the path names {name:?}", object.metadata.name),
            ));
        }
    }
    match (&object.metadata.namespace, target.kind.namespaced()) {
        (Some(ns), true) if *ns != target.namespace => Err(Error::invalid_field(
            "metadata.namespace",
            format!("is {ns:?} but the path names {:?}", target.namespace),
        )),
        (Some(ns), false) if !ns.is_empty() => Err(Error::invalid_field(
            "metadata.namespace",
            format!("{} is cluster-scoped and takes no namespace", target.kind),
        )),
        _ => Ok(()),
    }
}

/// The write precondition an object asks for through `metadata.resourceVersion`.
pub(super) fn precondition_of(object: &Object) -> Result<Precondition, String> {
    match object.metadata.resource_version.as_deref() {
        None | Some("") => Ok(Precondition::None),
        Some(text) => params::revision(text)
            .map(Precondition::ResourceVersion)
            .ok_or_else(|| {
                format!(
                    "{text:?} is not a revision: use digits only (at most 18), the \
                     metadata.resourceVersion the object was read with"
                )
            }),
    }
}

/// The object as it should be handed to the store: namespace explicit (or absent for
/// cluster-scoped kinds), no status, no store bookkeeping, and a spec (a `Mesh` may
/// leave it out or send `null`, meaning every default: it is stored as `{}`, so every
/// answer has the object the document promises).
pub(super) fn normalise(mut object: Object) -> Object {
    if object.spec.is_null() {
        object.spec = json!({});
    }
    let namespace = object.namespace().to_owned();
    object.metadata.namespace = (!namespace.is_empty()).then_some(namespace);
    object.metadata.resource_version = None;
    object.metadata.uid = None;
    object.metadata.generation = None;
    object.metadata.creation_timestamp = None;
    object.status = None;
    object
}

// === impl Target ===

impl Target {
    fn key(&self, name: String) -> Key {
        Key {
            kind: self.kind,
            namespace: self.namespace.clone(),
            name,
        }
    }
}

/// The kind a path's plural names, or `404` listing the known ones.
pub(super) fn kind_of(plural: &str) -> Result<Kind, Error> {
    Kind::ALL
        .into_iter()
        .find(|k| k.plural() == plural)
        .ok_or_else(|| Error::unknown_kind(plural))
}

fn cluster(plural: &str) -> Result<Target, Error> {
    let kind = kind_of(plural)?;
    if kind.namespaced() {
        return Err(Error::not_found(format!(
            "{plural} are namespaced: use /v1/namespaces/{{namespace}}/{plural}"
        )));
    }
    Ok(Target {
        kind,
        namespace: String::new(),
    })
}

fn namespaced(namespace: &str, plural: &str) -> Result<Target, Error> {
    let kind = kind_of(plural)?;
    if !kind.namespaced() {
        return Err(Error::not_found(format!(
            "{plural} are cluster-scoped: use /v1/{plural}"
        )));
    }
    params::check_label("namespace", namespace)?;
    Ok(Target {
        kind,
        namespace: namespace.to_owned(),
    })
}

/// `ns/name`, or `name` when `ns` is empty.
pub(super) fn qualified(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    }
}
