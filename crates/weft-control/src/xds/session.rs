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
mod tests {
    use std::collections::BTreeSet;

    use envoy_types::pb::envoy::config::core::v3::Node;

    use super::*;

    const T: &str = "type.googleapis.com/weft.proxy.v1.Service";

    fn snapshot(revision: u64, resources: &[(&str, &str)]) -> Snapshot {
        let mut snapshot = Snapshot::new(revision);
        for (name, version) in resources {
            snapshot.insert(XdsResource::new(
                *name,
                *version,
                prost_types::Any {
                    type_url: T.to_owned(),
                    value: name.as_bytes().to_vec(),
                },
            ));
        }
        snapshot
    }

    fn subscribe(names: &[&str]) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            node: Some(Node {
                id: "ns/a".to_owned(),
                ..Node::default()
            }),
            type_url: T.to_owned(),
            resource_names_subscribe: names.iter().map(|n| (*n).to_owned()).collect(),
            ..DeltaDiscoveryRequest::default()
        }
    }

    fn ack(nonce: &str) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            type_url: T.to_owned(),
            response_nonce: nonce.to_owned(),
            ..DeltaDiscoveryRequest::default()
        }
    }

    fn sent(response: &DeltaDiscoveryResponse) -> BTreeSet<(String, String)> {
        response
            .resources
            .iter()
            .map(|r| (r.name.clone(), r.version.clone()))
            .collect()
    }

    fn pairs(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        items
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn request(
        session: &mut Session,
        req: DeltaDiscoveryRequest,
        snap: &Snapshot,
    ) -> Option<DeltaDiscoveryResponse> {
        match session.on_request(req, snap) {
            Ok(response) => response,
            Err(status) => panic!("unexpected error: {status}"),
        }
    }

    #[test]
    fn subscribe_sends_only_the_named_resources_and_reports_missing_ones_removed() {
        let snap = snapshot(1, &[("a", "1"), ("b", "1"), ("c", "1")]);
        let mut session = Session::new(1, Viewer::Unrestricted);
        let response =
            request(&mut session, subscribe(&["a", "b", "zz"]), &snap).expect("response");
        assert_eq!(sent(&response), pairs(&[("a", "1"), ("b", "1")]));
        assert_eq!(response.removed_resources, vec!["zz".to_owned()]);
        assert_eq!(response.system_version_info, "1");
        assert_eq!(response.nonce, "1-1");
    }

    #[test]
    fn first_request_without_names_is_a_legacy_wildcard() {
        let snap = snapshot(1, &[("a", "1"), ("b", "1")]);
        let mut session = Session::new(1, Viewer::Unrestricted);
        let response = request(&mut session, subscribe(&[]), &snap).expect("response");
        assert_eq!(sent(&response), pairs(&[("a", "1"), ("b", "1")]));
        assert_eq!(session.status()[0].subscribed, vec!["*".to_owned()]);
    }

    #[test]
    fn explicit_wildcard_receives_new_resources_and_unsubscribing_it_stops_them() {
        let mut session = Session::new(1, Viewer::Unrestricted);
        let response = request(
            &mut session,
            subscribe(&["*", "a"]),
            &snapshot(1, &[("a", "1")]),
        )
        .expect("response");
        assert!(request(
            &mut session,
            ack(&response.nonce),
            &snapshot(1, &[("a", "1")])
        )
        .is_none());

        let responses = session.on_snapshot(&snapshot(2, &[("a", "1"), ("new", "1")]));
        assert_eq!(sent(&responses[0]), pairs(&[("new", "1")]));
        request(
            &mut session,
            ack(&responses[0].nonce),
            &snapshot(2, &[("a", "1"), ("new", "1")]),
        );

        let mut unsubscribe = ack("");
        unsubscribe.resource_names_unsubscribe = vec!["*".to_owned()];
        assert!(request(
            &mut session,
            unsubscribe,
            &snapshot(2, &[("a", "1"), ("new", "1")])
        )
        .is_none());
        assert!(session
            .on_snapshot(&snapshot(3, &[("a", "1"), ("new", "2"), ("other", "1")]))
            .is_empty());
        assert_eq!(
            session.status()[0].resources.keys().collect::<Vec<_>>(),
            vec!["a"]
        );
    }

    #[test]
    fn initial_versions_skip_unchanged_and_report_deleted_resources() {
        let snap = snapshot(5, &[("a", "1"), ("b", "2")]);
        let mut session = Session::new(1, Viewer::Unrestricted);
        let mut req = subscribe(&["a", "b", "gone"]);
        req.initial_resource_versions = [("a", "1"), ("b", "1"), ("gone", "1")]
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        let response = request(&mut session, req, &snap).expect("response");
        assert_eq!(sent(&response), pairs(&[("b", "2")]));
        assert_eq!(response.removed_resources, vec!["gone".to_owned()]);
    }

    #[test]
    fn client_already_up_to_date_gets_no_response() {
        let snap = snapshot(5, &[("a", "1")]);
        let mut session = Session::new(1, Viewer::Unrestricted);
        let mut req = subscribe(&["a"]);
        req.initial_resource_versions = [("a".to_owned(), "1".to_owned())].into();
        assert!(request(&mut session, req, &snap).is_none());
    }

    #[test]
    fn snapshot_change_pushes_only_changed_and_removed_subscribed_resources() {
        let mut session = Session::new(1, Viewer::Unrestricted);
        let first = request(
            &mut session,
            subscribe(&["a", "b"]),
            &snapshot(1, &[("a", "1"), ("b", "1"), ("c", "1")]),
        )
        .expect("response");
        let unchanged = snapshot(1, &[("a", "1"), ("b", "1"), ("c", "1")]);
        assert!(request(&mut session, ack(&first.nonce), &unchanged).is_none());

        let responses = session.on_snapshot(&snapshot(2, &[("a", "2"), ("c", "2")]));
        assert_eq!(responses.len(), 1);
        assert_eq!(sent(&responses[0]), pairs(&[("a", "2")]));
        assert_eq!(responses[0].removed_resources, vec!["b".to_owned()]);
    }

    #[test]
    fn changes_wait_for_the_ack_and_are_coalesced() {
        let mut session = Session::new(1, Viewer::Unrestricted);
        let first = request(&mut session, subscribe(&["a"]), &snapshot(1, &[("a", "1")]))
            .expect("response");
        assert!(session.on_snapshot(&snapshot(2, &[("a", "2")])).is_empty());
        assert!(session.on_snapshot(&snapshot(3, &[("a", "3")])).is_empty());

        let next = request(&mut session, ack(&first.nonce), &snapshot(3, &[("a", "3")]))
            .expect("response after ACK");
        assert_eq!(sent(&next), pairs(&[("a", "3")]));
        let status = &session.status()[0];
        assert_eq!(
            status.acked.as_ref().map(|a| a.nonce.as_str()),
            Some(first.nonce.as_str())
        );
        assert_eq!(status.pending_nonce.as_deref(), Some(next.nonce.as_str()));
    }

    #[test]
    fn missing_resource_is_sent_once_it_appears() {
        let mut session = Session::new(1, Viewer::Unrestricted);
        let first =
            request(&mut session, subscribe(&["later"]), &snapshot(1, &[])).expect("absent report");
        assert_eq!(first.removed_resources, vec!["later".to_owned()]);
        request(&mut session, ack(&first.nonce), &snapshot(1, &[]));
        assert!(session
            .on_snapshot(&snapshot(2, &[("other", "1")]))
            .is_empty());
        let responses = session.on_snapshot(&snapshot(3, &[("later", "1")]));
        assert_eq!(sent(&responses[0]), pairs(&[("later", "1")]));
    }

    #[test]
    fn nack_records_message_and_resource_errors_and_does_not_resend() {
        let snap = snapshot(1, &[("a", "1"), ("bad", "1")]);
        let mut session = Session::new(1, Viewer::Unrestricted);
        let first = request(&mut session, subscribe(&["a", "bad"]), &snap).expect("response");
        let errors = pb::ResourceErrors {
            errors: vec![pb::ResourceError {
                type_url: T.to_owned(),
                name: "bad".to_owned(),
                message: "port 0".to_owned(),
            }],
        };
        let mut nack = ack(&first.nonce);
        nack.error_detail = Some(rpc::Status {
            code: 3,
            message: "bad: port 0".to_owned(),
            details: vec![Any {
                type_url: pb::RESOURCE_ERRORS_TYPE_URL.to_owned(),
                value: errors.encode_to_vec(),
            }],
        });
        assert!(
            request(&mut session, nack, &snap).is_none(),
            "the same version is not resent"
        );

        let status = &session.status()[0];
        let last_nack = status.last_nack.as_ref().expect("nack recorded");
        assert_eq!(last_nack.message, "bad: port 0");
        assert_eq!(last_nack.errors[0].name, "bad");
        assert_eq!(last_nack.errors[0].message, "port 0");
        assert!(status.acked.is_none());
        assert!(status.pending_nonce.is_none());
    }

    #[test]
    fn stale_nonce_is_not_an_ack() {
        let mut session = Session::new(1, Viewer::Unrestricted);
        request(&mut session, subscribe(&["a"]), &snapshot(1, &[("a", "1")])).expect("response");
        assert!(request(&mut session, ack("1-999"), &snapshot(1, &[])).is_none());
        assert!(session.status()[0].acked.is_none());
        assert!(session.status()[0].pending_nonce.is_some());
    }

    #[test]
    fn unsubscribed_resource_is_neither_pushed_nor_reported() {
        let mut session = Session::new(1, Viewer::Unrestricted);
        let first = request(
            &mut session,
            subscribe(&["a", "b"]),
            &snapshot(1, &[("a", "1"), ("b", "1")]),
        )
        .expect("r");
        let mut req = ack(&first.nonce);
        req.resource_names_unsubscribe = vec!["b".to_owned()];
        assert!(request(&mut session, req, &snapshot(1, &[("a", "1"), ("b", "1")])).is_none());
        assert!(session
            .on_snapshot(&snapshot(2, &[("a", "1"), ("b", "2")]))
            .is_empty());
        assert!(session.on_snapshot(&snapshot(3, &[("a", "1")])).is_empty());
    }

    // === visibility ===

    use crate::xds::snapshot::Visibility;

    fn namespaces(names: &[&str]) -> Visibility {
        Visibility::Namespaces(names.iter().map(|n| (*n).to_owned()).collect())
    }

    fn workload(namespace: &str, name: &str) -> Viewer {
        Viewer::Workload {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    fn visible_snapshot(revision: u64, resources: &[(&str, &str, Visibility)]) -> Snapshot {
        let mut snapshot = Snapshot::new(revision);
        for (name, version, visible) in resources {
            snapshot.insert(
                XdsResource::new(
                    *name,
                    *version,
                    prost_types::Any {
                        type_url: T.to_owned(),
                        value: name.as_bytes().to_vec(),
                    },
                )
                .with_visibility(visible.clone()),
            );
        }
        snapshot
    }

    /// A snapshot of team-a resources with every kind of audience.
    fn team_a(revision: u64) -> Snapshot {
        visible_snapshot(
            revision,
            &[
                ("everyone.team-a", "1", Visibility::All),
                ("own.team-a", "1", namespaces(&["team-a"])),
                ("to-b.team-a", "1", namespaces(&["team-a", "team-b"])),
                (
                    "web.team-a",
                    "1",
                    Visibility::Workload {
                        namespace: "team-a".into(),
                        name: "web".into(),
                    },
                ),
            ],
        )
    }

    #[test]
    fn wildcard_receives_only_what_the_viewer_may_see() {
        let cases: &[(&str, Viewer, &[&str])] = &[
            (
                "another namespace",
                workload("team-b", "web"),
                &["everyone.team-a", "to-b.team-a"],
            ),
            (
                "a namespace nothing is exported to",
                workload("team-c", "web"),
                &["everyone.team-a"],
            ),
            (
                "another workload of the namespace",
                workload("team-a", "api"),
                &["everyone.team-a", "own.team-a", "to-b.team-a"],
            ),
            (
                "the workload itself",
                workload("team-a", "web"),
                &["everyone.team-a", "own.team-a", "to-b.team-a", "web.team-a"],
            ),
            (
                "unrestricted",
                Viewer::Unrestricted,
                &["everyone.team-a", "own.team-a", "to-b.team-a", "web.team-a"],
            ),
        ];
        for (case, viewer, want) in cases {
            let mut session = Session::new(1, viewer.clone());
            let response = request(&mut session, subscribe(&["*"]), &team_a(1)).expect(case);
            let names: Vec<&str> = response.resources.iter().map(|r| r.name.as_str()).collect();
            assert_eq!(names, *want, "{case}");
            assert!(response.removed_resources.is_empty(), "{case}");
        }
    }

    #[test]
    fn a_named_subscription_to_a_hidden_resource_is_answered_like_a_missing_one() {
        let cases: &[(&str, &str)] = &[
            ("a service not exported to the namespace", "own.team-a"),
            ("another workload's inbound policy", "web.team-a"),
        ];
        for (case, hidden) in cases {
            let snap = team_a(1);
            let mut hidden_session = Session::new(7, workload("team-b", "web"));
            let mut missing_session = Session::new(7, workload("team-b", "web"));
            let to_hidden = request(
                &mut hidden_session,
                subscribe(&[hidden, "to-b.team-a"]),
                &snap,
            )
            .expect(case);
            let to_missing = request(
                &mut missing_session,
                subscribe(&["nothing.team-a", "to-b.team-a"]),
                &snap,
            )
            .expect(case);
            assert_eq!(
                to_hidden.removed_resources,
                vec![(*hidden).to_owned()],
                "{case}"
            );
            assert_eq!(sent(&to_hidden), pairs(&[("to-b.team-a", "1")]), "{case}");
            // Nothing but the name tells the two answers apart.
            let mut normalised = to_missing.clone();
            normalised.removed_resources = vec![(*hidden).to_owned()];
            assert_eq!(to_hidden, normalised, "{case}");
            assert_eq!(
                hidden_session.status()[0].resources.len(),
                missing_session.status()[0].resources.len(),
                "{case}"
            );
        }
    }

    #[test]
    fn initial_versions_of_a_hidden_resource_are_reported_removed() {
        let mut session = Session::new(1, workload("team-b", "web"));
        let mut req = subscribe(&["own.team-a", "to-b.team-a"]);
        req.initial_resource_versions = [("own.team-a", "1"), ("to-b.team-a", "1")]
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        let response = request(&mut session, req, &team_a(1)).expect("removal");
        assert!(response.resources.is_empty());
        assert_eq!(response.removed_resources, vec!["own.team-a".to_owned()]);
    }

    #[test]
    fn a_resource_that_stops_being_visible_is_removed_and_sent_again_when_it_returns() {
        let shown = |rev| {
            visible_snapshot(
                rev,
                &[("svc.team-a", "1", namespaces(&["team-a", "team-b"]))],
            )
        };
        let hidden = |rev| visible_snapshot(rev, &[("svc.team-a", "1", namespaces(&["team-a"]))]);
        for subscription in [&["*"][..], &["svc.team-a"]] {
            let mut session = Session::new(1, workload("team-b", "web"));
            let first = request(&mut session, subscribe(subscription), &shown(1)).expect("first");
            assert_eq!(
                sent(&first),
                pairs(&[("svc.team-a", "1")]),
                "{subscription:?}"
            );
            request(&mut session, ack(&first.nonce), &shown(1));

            let narrowed = session.on_snapshot(&hidden(2));
            assert_eq!(narrowed.len(), 1, "{subscription:?}");
            assert!(narrowed[0].resources.is_empty(), "{subscription:?}");
            assert_eq!(
                narrowed[0].removed_resources,
                vec!["svc.team-a".to_owned()],
                "{subscription:?}"
            );
            request(&mut session, ack(&narrowed[0].nonce), &hidden(2));
            assert!(
                session.on_snapshot(&hidden(3)).is_empty(),
                "{subscription:?}"
            );

            let widened = session.on_snapshot(&shown(4));
            assert_eq!(widened.len(), 1, "{subscription:?}");
            assert_eq!(
                sent(&widened[0]),
                pairs(&[("svc.team-a", "1")]),
                "{subscription:?}: same version, sent again because the proxy dropped it"
            );
            assert!(widened[0].removed_resources.is_empty(), "{subscription:?}");
        }
    }

    #[test]
    fn request_without_type_url_is_invalid() {
        let mut session = Session::new(1, Viewer::Unrestricted);
        let mut req = subscribe(&["a"]);
        req.type_url.clear();
        let error = session
            .on_request(req, &snapshot(1, &[]))
            .expect_err("invalid");
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
    }
}
