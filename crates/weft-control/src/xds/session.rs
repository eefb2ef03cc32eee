//! The delta xDS protocol state of one stream, without I/O.
//!
//! A [`Session`] turns each request (subscribe, unsubscribe, ACK, NACK) and each new
//! [`Snapshot`] into the responses to send. Per type URL it keeps the subscribed names,
//! whether the subscription is wildcard, and what the client holds (`known`: the `Arc`s
//! last sent, or matched from `initial_resource_versions`), so a diff costs what the
//! stream subscribes to, never a copy of the snapshot.
//!
//! Flow control: at most one response per type is unacknowledged. Changes that arrive
//! meanwhile are folded into the next diff, computed when the ACK or NACK arrives, so a
//! slow proxy receives the latest state once instead of every intermediate one.
//!
//! Visibility: the session serves one [`Viewer`] (fixed when the stream was admitted)
//! and sees the snapshot through it. A resource the viewer may not see is, to this
//! stream, a resource that does not exist: a wildcard does not send it, a name
//! subscribed to it is reported in `removed_resources` as a missing one is, and a
//! resource that stops being visible is removed as a deleted one is. The filter is
//! one check per resource the diff already visits, so the cost stays as before.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc;
use prost::Message;
use tracing::{debug, warn};
use weft_api::pb::v1 as pb;

use super::snapshot::{Resources, Snapshot, Viewer, XdsResource};
use super::status::{Acked, Nack, ResourceError, Sent, TypeStatus};
use crate::metrics::ControlMetrics;

/// The name that subscribes to every resource of a type.
pub const WILDCARD: &str = "*";

/// Protocol state of one stream.
#[derive(Debug)]
pub(crate) struct Session {
    nonce_prefix: u64,
    nonce_seq: u64,
    /// Who the stream serves; what it may not see does not exist for it.
    viewer: Viewer,
    types: HashMap<String, TypeState>,
    /// Where pushes and replies are counted, if anywhere.
    metrics: Option<Arc<ControlMetrics>>,
}

/// Protocol state of one type URL on one stream.
#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: HashSet<String>,
    /// What the client holds, as far as the server knows.
    known: HashMap<String, Arc<XdsResource>>,
    /// Subscribed names that do not exist, to report in `removed_resources` once.
    absent: Vec<String>,
    /// Nonce of the unacknowledged response, if any.
    pending: Option<String>,
    last_sent: Option<Sent>,
    acked: Option<Acked>,
    last_nack: Option<Nack>,
}

// === impl Session ===

impl Session {
    /// A session serving `viewer`, whose nonces start with `conn_id` (unique across
    /// streams, which makes logs and `weft inspect` unambiguous).
    pub(crate) fn new(conn_id: u64, viewer: Viewer) -> Self {
        Self {
            nonce_prefix: conn_id,
            nonce_seq: 0,
            viewer,
            types: HashMap::new(),
            metrics: None,
        }
    }

    /// Counts this session's pushes and the proxy's replies in `metrics`.
    #[must_use]
    pub(crate) fn counted(mut self, metrics: Option<Arc<ControlMetrics>>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Handles one request; returns the response to send, if any.
    pub(crate) fn on_request(
        &mut self,
        request: DeltaDiscoveryRequest,
        snapshot: &Snapshot,
    ) -> Result<Option<DeltaDiscoveryResponse>, tonic::Status> {
        let DeltaDiscoveryRequest {
            type_url,
            resource_names_subscribe,
            resource_names_unsubscribe,
            initial_resource_versions,
            response_nonce,
            error_detail,
            ..
        } = request;
        if type_url.is_empty() {
            return Err(tonic::Status::invalid_argument(
                "DeltaDiscoveryRequest.type_url is empty: every request must name the resource type it is about",
            ));
        }
        let first = !self.types.contains_key(&type_url);
        let state = self.types.entry(type_url.clone()).or_default();

        if !response_nonce.is_empty() {
            if let Some(reply) = state.on_reply(&type_url, response_nonce, error_detail) {
                if let Some(metrics) = &self.metrics {
                    metrics.reply(&type_url, reply.nack, reply.after);
                }
            }
        }

        // Legacy wildcard: a first request naming nothing is a subscription to "*".
        if first && resource_names_subscribe.is_empty() {
            state.wildcard = true;
        }
        let mut added = Vec::new();
        for name in resource_names_subscribe {
            if name == WILDCARD {
                state.wildcard = true;
            } else if state.names.insert(name.clone()) {
                added.push(name);
            }
        }
        for name in resource_names_unsubscribe {
            state.unsubscribe(&name);
        }

        let resources = snapshot.resources(&type_url);
        let viewer = &self.viewer;
        let exists = |name: &str| visible(resources, viewer, name).is_some();
        // Initial versions only count on the first request for a type (spec); later
        // ones are ignored.
        if first {
            for (name, version) in initial_resource_versions {
                if !state.subscribed(&name) {
                    continue;
                }
                match visible(resources, viewer, &name) {
                    Some(current) if current.version == version => {
                        state.known.insert(name, Arc::clone(current));
                    }
                    Some(_) => {}
                    None => state.report_absent(name),
                }
            }
        }
        for name in added {
            if !exists(&name) && !state.known.contains_key(&name) {
                state.report_absent(name);
            }
        }

        Ok(self.respond(&type_url, snapshot))
    }

    /// Handles a new snapshot; returns the responses to send (one per type that changed
    /// and has no unacknowledged response).
    pub(crate) fn on_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DeltaDiscoveryResponse> {
        let idle: Vec<String> = self
            .types
            .iter()
            .filter(|(_, state)| state.pending.is_none())
            .map(|(type_url, _)| type_url.clone())
            .collect();
        idle.iter()
            .filter_map(|type_url| self.respond(type_url, snapshot))
            .collect()
    }

    /// Diffs one type against `snapshot` and builds the response, unless the client is
    /// up to date or has not acknowledged the previous response yet.
    fn respond(&mut self, type_url: &str, snapshot: &Snapshot) -> Option<DeltaDiscoveryResponse> {
        let state = self.types.get_mut(type_url)?;
        if state.pending.is_some() {
            return None;
        }
        let (updated, removed) = state.diff(snapshot.resources(type_url), &self.viewer);
        if updated.is_empty() && removed.is_empty() {
            return None;
        }
        self.nonce_seq += 1;
        let nonce = format!("{}-{}", self.nonce_prefix, self.nonce_seq);
        for resource in &updated {
            state
                .known
                .insert(resource.name.clone(), Arc::clone(resource));
        }
        for name in &removed {
            state.known.remove(name);
        }
        state.pending = Some(nonce.clone());
        let response = DeltaDiscoveryResponse {
            system_version_info: snapshot.revision().to_string(),
            type_url: type_url.to_owned(),
            resources: updated.iter().map(|r| to_proto(r)).collect(),
            removed_resources: removed.clone(),
            nonce: nonce.clone(),
            ..DeltaDiscoveryResponse::default()
        };
        debug!(
            type_url,
            nonce,
            revision = snapshot.revision(),
            updated = updated.len(),
            removed = removed.len(),
            "pushing resources"
        );
        state.last_sent = Some(Sent {
            nonce,
            at: SystemTime::now(),
            resources: updated,
            removed,
        });
        if let Some(metrics) = &self.metrics {
            metrics.push(type_url);
        }
        Some(response)
    }

    /// Every resource the client holds as far as the server knows, by type.
    pub(crate) fn acked_version(&self, type_url: &str, name: &str) -> Option<String> {
        self.types
            .get(type_url)?
            .acked
            .as_ref()?
            .versions
            .get(name)
            .cloned()
    }

    pub(crate) fn known(&self) -> Vec<Arc<XdsResource>> {
        self.types
            .values()
            .flat_map(|state| state.known.values().cloned())
            .collect()
    }

    /// The status of each type, sorted by type URL.
    pub(crate) fn status(&self) -> Vec<TypeStatus> {
        let mut types: Vec<TypeStatus> = self
            .types
            .iter()
            .map(|(type_url, state)| state.status(type_url))
            .collect();
        types.sort_by(|a, b| a.type_url.cmp(&b.type_url));
        types
    }
}

// === impl TypeState ===

impl TypeState {
    fn subscribed(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    fn report_absent(&mut self, name: String) {
        if !self.absent.contains(&name) {
            self.absent.push(name);
        }
    }

    /// Unsubscribes `name` (or the wildcard). The client drops what it unsubscribed
    /// from on its own: nothing is sent.
    fn unsubscribe(&mut self, name: &str) {
        if name == WILDCARD {
            self.wildcard = false;
            let names = &self.names;
            self.known.retain(|known, _| names.contains(known));
        } else {
            self.names.remove(name);
            if !self.wildcard {
                self.known.remove(name);
            }
        }
        let (wildcard, names) = (self.wildcard, &self.names);
        self.absent
            .retain(|absent| wildcard || names.contains(absent));
    }

    /// An ACK or NACK of `nonce`; what it was, unless the nonce is stale.
    fn on_reply(
        &mut self,
        type_url: &str,
        nonce: String,
        error: Option<rpc::Status>,
    ) -> Option<Reply> {
        if self.pending.as_deref() != Some(nonce.as_str()) {
            debug!(type_url, nonce, "ignoring reply to a stale nonce");
            return None;
        }
        self.pending = None;
        let at = SystemTime::now();
        let reply = Reply {
            nack: error.is_some(),
            after: self
                .last_sent
                .as_ref()
                .and_then(|sent| at.duration_since(sent.at).ok())
                .unwrap_or_default(),
        };
        match error {
            None => {
                let versions = self
                    .last_sent
                    .as_ref()
                    .map(|sent| {
                        sent.resources
                            .iter()
                            .map(|r| (r.name.clone(), r.version.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                self.acked = Some(Acked {
                    nonce,
                    at,
                    versions,
                });
            }
            Some(status) => {
                let errors = resource_errors(&status.details);
                warn!(
                    type_url,
                    nonce,
                    code = status.code,
                    message = status.message,
                    refused = errors.len(),
                    "proxy refused resources (NACK)"
                );
                self.last_nack = Some(Nack {
                    nonce,
                    at,
                    message: status.message,
                    errors,
                });
            }
        }
        Some(reply)
    }

    /// What to send so the client matches `resources` as `viewer` sees them: changed or
    /// newly visible resources, and names to report removed (deleted, or no longer
    /// visible). Costs the subscribed names plus what the client holds (plus the
    /// type's size for a wildcard subscription).
    fn diff(
        &mut self,
        resources: Option<&Resources>,
        viewer: &Viewer,
    ) -> (Vec<Arc<XdsResource>>, Vec<String>) {
        let get = |name: &str| visible(resources, viewer, name);
        let mut updated = Vec::new();
        let mut wanted = |resource: &Arc<XdsResource>| {
            let held = self.known.get(&resource.name);
            if !held.is_some_and(|held| held.same_as(resource)) {
                updated.push(Arc::clone(resource));
            }
        };
        if self.wildcard {
            resources
                .into_iter()
                .flat_map(HashMap::values)
                .filter(|r| r.visible_to(viewer))
                .for_each(&mut wanted);
        } else {
            self.names
                .iter()
                .filter_map(|name| get(name))
                .for_each(&mut wanted);
        }
        // Reported absent but created since: it is sent instead.
        let mut removed: Vec<String> = std::mem::take(&mut self.absent)
            .into_iter()
            .filter(|name| get(name).is_none())
            .collect();
        removed.extend(
            self.known
                .keys()
                .filter(|name| get(name).is_none())
                .cloned(),
        );
        updated.sort_by(|a, b| a.name.cmp(&b.name));
        removed.sort();
        (updated, removed)
    }

    fn status(&self, type_url: &str) -> TypeStatus {
        let mut subscribed: Vec<String> = self.names.iter().cloned().collect();
        if self.wildcard {
            subscribed.push(WILDCARD.to_owned());
        }
        subscribed.sort();
        TypeStatus {
            type_url: type_url.to_owned(),
            subscribed,
            resources: self
                .known
                .iter()
                .map(|(name, r)| (name.clone(), r.version.clone()))
                .collect::<BTreeMap<_, _>>(),
            pending_nonce: self.pending.clone(),
            last_sent: self.last_sent.as_ref().map(Sent::status),
            acked: self.acked.as_ref().map(Acked::status),
            last_nack: self.last_nack.as_ref().map(Nack::status),
        }
    }
}

/// The resource `name` of `resources` if `viewer` may see it; to the stream, one it
/// may not see does not exist.
fn visible<'a>(
    resources: Option<&'a Resources>,
    viewer: &Viewer,
    name: &str,
) -> Option<&'a Arc<XdsResource>> {
    resources?.get(name).filter(|r| r.visible_to(viewer))
}

fn to_proto(resource: &XdsResource) -> Resource {
    Resource {
        name: resource.name.clone(),
        version: resource.version.clone(),
        resource: Some(Any {
            type_url: resource.body.type_url.clone(),
            value: resource.body.value.clone(),
        }),
        ..Resource::default()
    }
}

/// What a reply to a push was: a NACK or an ACK, and how long after the push.
#[derive(Debug, Clone, Copy)]
struct Reply {
    nack: bool,
    after: std::time::Duration,
}

/// The per-resource errors a proxy put in a NACK's `error_detail.details`.
fn resource_errors(details: &[Any]) -> Vec<ResourceError> {
    details
        .iter()
        .filter(|any| any.type_url == pb::RESOURCE_ERRORS_TYPE_URL)
        .filter_map(
            |any| match pb::ResourceErrors::decode(any.value.as_slice()) {
                Ok(errors) => Some(errors.errors),
                Err(error) => {
                    warn!(%error, "NACK carries an undecodable weft.proxy.v1.ResourceErrors");
                    None
                }
            },
        )
        .flatten()
        .map(|e| ResourceError {
            type_url: e.type_url,
            name: e.name,
            message: e.message,
        })
        .collect()
}

#[cfg(test)]
mod tests;
