//! Turning each compilation into the snapshot every xDS stream diffs against: resources
//! versioned by content, unchanged ones shared with the previous snapshot, each with the
//! audience that may see it (ADR 26).

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use tokio::sync::watch;
use weft_api::pb::v1 as pb;
use weft_policy::Compiled;

use super::{Snapshot, Visibility, XdsResource};

/// Turns each compilation into an xDS snapshot, reusing unchanged resources.
pub(crate) struct Publisher {
    tx: watch::Sender<Arc<Snapshot>>,
    previous: Snapshot,
}

impl Publisher {
    /// A publisher sending on `tx`, starting from an empty snapshot.
    pub(crate) fn new(tx: watch::Sender<Arc<Snapshot>>) -> Self {
        Publisher {
            tx,
            previous: Snapshot::new(0),
        }
    }

    /// Publishes the compilation, unless every resource is the same as in the snapshot
    /// in force: most store writes (a workload registering that no service selects, a
    /// status update) change nothing a proxy sees, and waking every stream to find that
    /// out costs O(proxies).
    pub(crate) fn publish(&mut self, compiled: &Compiled, revision: u64) {
        let mut next = Snapshot::new(revision);
        let audience = Audience::new(compiled);
        let mut changed = self.previous.len()
            != compiled.services.len()
                + compiled.route_tables.len()
                + compiled.inbound_policies.len()
                + usize::from(compiled.trust_bundle.is_some());
        let encoded = compiled
            .services
            .iter()
            .map(|(name, r)| (pb::SERVICE_TYPE_URL, name.as_str(), r.encode_to_vec()))
            .chain(
                compiled
                    .route_tables
                    .iter()
                    .map(|(name, r)| (pb::ROUTE_TABLE_TYPE_URL, name.as_str(), r.encode_to_vec())),
            )
            .chain(compiled.inbound_policies.iter().map(|(name, r)| {
                (
                    pb::INBOUND_POLICY_TYPE_URL,
                    name.as_str(),
                    r.encode_to_vec(),
                )
            }))
            .chain(compiled.trust_bundle.iter().map(|r| {
                (
                    pb::TRUST_BUNDLE_TYPE_URL,
                    pb::TRUST_BUNDLE_NAME,
                    r.encode_to_vec(),
                )
            }));
        for (type_url, name, value) in encoded {
            let visible = audience.of(type_url, name);
            let (resource, reused) = self.resource(type_url, name, value, visible);
            changed |= !reused;
            next.insert(resource);
        }
        if changed {
            self.previous = next.clone();
            self.tx.send_replace(Arc::new(next));
        }
    }

    /// The resource, or the previous snapshot's `Arc` of it when the bytes and the
    /// audience are equal (then `true`).
    fn resource(
        &self,
        type_url: &str,
        name: &str,
        value: Vec<u8>,
        visible: Visibility,
    ) -> (Arc<XdsResource>, bool) {
        let version = crate::xds::content_version(&value);
        if let Some(old) = self.previous.get(type_url, name) {
            if old.version == version && old.visible == visible {
                return (old.clone(), true);
            }
        }
        let fresh = Arc::new(
            XdsResource::new(
                name,
                version,
                prost_types::Any {
                    type_url: type_url.to_owned(),
                    value,
                },
            )
            .with_visibility(visible),
        );
        (fresh, false)
    }
}

/// Who may see each compiled resource (ADR 0026): a `Service` and its `RouteTable`
/// the namespaces of the service's effective `exportTo`, an `InboundPolicy` only its
/// own workload, the trust bundle everyone.
struct Audience {
    /// One shared list per distinct export, by service resource name.
    exports: HashMap<String, Visibility>,
}

impl Audience {
    fn new(compiled: &Compiled) -> Self {
        let mut shared: HashMap<&[String], Visibility> = HashMap::new();
        let exports = compiled
            .exports
            .iter()
            .map(|(name, export)| {
                let visible = match export {
                    weft_policy::Export::Mesh => Visibility::All,
                    weft_policy::Export::Namespaces(namespaces) => shared
                        .entry(namespaces.as_slice())
                        .or_insert_with(|| Visibility::Namespaces(Arc::from(namespaces.as_slice())))
                        .clone(),
                };
                (name.clone(), visible)
            })
            .collect();
        Self { exports }
    }

    fn of(&self, type_url: &str, name: &str) -> Visibility {
        // Names are `<name>.<namespace>`; neither part may contain a dot.
        let split = name.split_once('.');
        match type_url {
            pb::TRUST_BUNDLE_TYPE_URL => Visibility::All,
            pb::SERVICE_TYPE_URL | pb::ROUTE_TABLE_TYPE_URL => {
                self.exports.get(name).cloned().unwrap_or_else(|| {
                    // A route table without a compiled parent: its namespace only.
                    Visibility::Namespaces(Arc::from(
                        split.map(|(_, ns)| vec![ns.to_owned()]).unwrap_or_default(),
                    ))
                })
            }
            pb::INBOUND_POLICY_TYPE_URL => match split {
                Some((name, namespace)) => Visibility::Workload {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                },
                None => Visibility::Namespaces(Arc::from(Vec::new())),
            },
            // A type this list does not know yet is seen by no workload until it is
            // given an audience here.
            _ => Visibility::Namespaces(Arc::from(Vec::new())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn equal_bytes_give_equal_versions_and_different_bytes_differ() {
        use crate::xds::content_version;
        assert_eq!(content_version(b"abc"), content_version(b"abc"));
        assert_ne!(content_version(b"abc"), content_version(b"abd"));
        assert_eq!(content_version(b"").len(), 16);
    }

    #[test]
    fn an_unchanged_resource_keeps_its_arc_across_publishes() {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::new(0)));
        let mut publisher = Publisher {
            tx,
            previous: Snapshot::new(0),
        };
        let mut compiled = Compiled::default();
        compiled.services.insert(
            "a.default".into(),
            pb::Service {
                name: "a".into(),
                namespace: "default".into(),
                ..pb::Service::default()
            },
        );
        publisher.publish(&compiled, 1);
        let first = rx.borrow().get(pb::SERVICE_TYPE_URL, "a.default").cloned();
        compiled.services.insert(
            "b.default".into(),
            pb::Service {
                name: "b".into(),
                namespace: "default".into(),
                ..pb::Service::default()
            },
        );
        publisher.publish(&compiled, 2);
        let snap = rx.borrow().clone();
        let second = snap.get(pb::SERVICE_TYPE_URL, "a.default").cloned();
        assert!(Arc::ptr_eq(&first.expect("a"), &second.expect("a")));
        assert_eq!(snap.revision(), 2);
        assert!(snap.get(pb::SERVICE_TYPE_URL, "b.default").is_some());
    }

    #[test]
    fn an_identical_compilation_does_not_wake_the_streams() {
        let (tx, mut rx) = watch::channel(Arc::new(Snapshot::new(0)));
        let mut publisher = Publisher {
            tx,
            previous: Snapshot::new(0),
        };
        let mut compiled = Compiled::default();
        compiled
            .services
            .insert("a.default".into(), pb::Service::default());
        publisher.publish(&compiled, 1);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        publisher.publish(&compiled, 2);
        assert!(!rx.has_changed().unwrap(), "same resources: no push");
        compiled.services.clear();
        publisher.publish(&compiled, 3);
        assert!(rx.has_changed().unwrap(), "a removed service is a change");
        assert!(rx.borrow().is_empty());
    }

    #[test]
    fn each_resource_gets_its_audience_and_an_export_change_alone_is_published() {
        let (tx, mut rx) = watch::channel(Arc::new(Snapshot::new(0)));
        let mut publisher = Publisher {
            tx,
            previous: Snapshot::new(0),
        };
        let mut compiled = Compiled::default();
        for name in ["open.team-a", "closed.team-a"] {
            compiled
                .services
                .insert(name.into(), pb::Service::default());
            compiled
                .route_tables
                .insert(name.into(), pb::RouteTable::default());
        }
        compiled
            .exports
            .insert("open.team-a".into(), weft_policy::Export::Mesh);
        let own = weft_policy::Export::Namespaces(vec!["team-a".into()]);
        compiled.exports.insert("closed.team-a".into(), own.clone());
        compiled
            .inbound_policies
            .insert("web.team-a".into(), pb::InboundPolicy::default());
        compiled.trust_bundle = Some(pb::TrustBundle::default());
        publisher.publish(&compiled, 1);

        let snap = rx.borrow_and_update().clone();
        let visible = |type_url: &str, name: &str| {
            snap.get(type_url, name).map(|r| r.visible.clone()).unwrap()
        };
        let team_a = Visibility::Namespaces(Arc::from(["team-a".to_owned()]));
        assert_eq!(
            visible(pb::SERVICE_TYPE_URL, "open.team-a"),
            Visibility::All
        );
        assert_eq!(
            visible(pb::ROUTE_TABLE_TYPE_URL, "open.team-a"),
            Visibility::All
        );
        assert_eq!(visible(pb::SERVICE_TYPE_URL, "closed.team-a"), team_a);
        assert_eq!(visible(pb::ROUTE_TABLE_TYPE_URL, "closed.team-a"), team_a);
        assert_eq!(
            visible(pb::INBOUND_POLICY_TYPE_URL, "web.team-a"),
            Visibility::Workload {
                namespace: "team-a".into(),
                name: "web".into()
            }
        );
        assert_eq!(
            visible(pb::TRUST_BUNDLE_TYPE_URL, pb::TRUST_BUNDLE_NAME),
            Visibility::All
        );

        // Same bytes, new audience: a new snapshot, with the version unchanged.
        let before = snap
            .get(pb::SERVICE_TYPE_URL, "closed.team-a")
            .cloned()
            .unwrap();
        compiled.exports.insert(
            "closed.team-a".into(),
            weft_policy::Export::Namespaces(vec!["team-a".into(), "team-b".into()]),
        );
        publisher.publish(&compiled, 2);
        assert!(rx.has_changed().unwrap(), "an export change is a change");
        let after = rx
            .borrow_and_update()
            .get(pb::SERVICE_TYPE_URL, "closed.team-a")
            .cloned()
            .unwrap();
        assert_eq!(after.version, before.version);
        assert_ne!(after.visible, before.visible);
    }
}
