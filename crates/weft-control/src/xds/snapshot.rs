//! What the xDS server serves: every compiled proxy resource at one revision.
//!
//! The control plane compiles user resources into proxy resources (`weft.proxy.v1`),
//! puts them in a [`Snapshot`] and publishes it on a `watch` channel; every stream diffs
//! its own subscriptions against each new snapshot. Resources are `Arc`ed so that
//! streams remember what they sent by pointer, and a snapshot derived from the previous
//! one (`clone` + `insert`) shares every unchanged resource.
//!
//! Each resource carries its audience ([`Visibility`]); each stream knows who it serves
//! ([`Viewer`]) and filters as it diffs, so one snapshot serves every proxy and a
//! proxy never receives (or learns the existence of) a resource it may not see.

use std::collections::HashMap;
use std::sync::Arc;

/// One named, versioned proxy resource as sent on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct XdsResource {
    /// Resource name, unique within its type (e.g. `payments.default`).
    pub name: String,
    /// Opaque version; a client holding this version is not sent the resource again.
    pub version: String,
    /// The encoded resource; its `type_url` is the resource type.
    pub body: prost_types::Any,
    /// Which streams may receive it. Not part of the version: a change of audience
    /// alone sends or removes the resource without changing what a holder has.
    pub visible: Visibility,
}

/// The audience of a resource: which streams may receive it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Visibility {
    /// Every stream (the trust bundle; a service exported to `"*"`).
    #[default]
    All,
    /// Streams of workloads in these namespaces (a service's effective `exportTo`,
    /// which always includes its own namespace).
    Namespaces(Arc<[String]>),
    /// Only the stream of this workload (its own `InboundPolicy`).
    Workload {
        /// The workload's namespace.
        namespace: String,
        /// The workload's name.
        name: String,
    },
}

/// Who a stream serves, as the [`Hooks`](super::Hooks) established when they admitted
/// it: never something the proxy merely claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// Sees every resource. For streams the hooks do not tie to a workload
    /// ([`NoHooks`](super::NoHooks): tests, in-process tools); the control plane's
    /// own hooks never return it.
    Unrestricted,
    /// A registered workload: its namespace proven by the workload token, its name by
    /// the registration the control plane accepted for that token's identity.
    Workload {
        /// The namespace the token is for.
        namespace: String,
        /// The registered workload name.
        name: String,
    },
}

/// All resources the control plane serves, by type URL and name, at one revision.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    revision: u64,
    types: HashMap<String, HashMap<String, Arc<XdsResource>>>,
}

/// The resources of one type in a [`Snapshot`], by name.
pub type Resources = HashMap<String, Arc<XdsResource>>;

/// The version of a resource whose encoding is `bytes`: its FNV-1a, so equal bytes give
/// equal versions on every instance and a proxy moving between instances is not resent
/// what it has.
pub fn content_version(bytes: &[u8]) -> String {
    weft_api::digest::hex(bytes)
}

// === impl XdsResource ===

impl XdsResource {
    /// A resource named `name` at `version` carrying `body`.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        body: prost_types::Any,
    ) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            body,
            visible: Visibility::All,
        }
    }

    /// The same resource, visible only to `visible` (default: [`Visibility::All`]).
    #[must_use]
    pub fn with_visibility(mut self, visible: Visibility) -> Self {
        self.visible = visible;
        self
    }

    /// Whether a stream serving `viewer` may receive this resource.
    pub fn visible_to(&self, viewer: &Viewer) -> bool {
        let Viewer::Workload {
            namespace: viewer_ns,
            name: viewer_name,
        } = viewer
        else {
            return true;
        };
        match &self.visible {
            Visibility::All => true,
            Visibility::Namespaces(namespaces) => namespaces.iter().any(|n| n == viewer_ns),
            Visibility::Workload { namespace, name } => {
                namespace == viewer_ns && name == viewer_name
            }
        }
    }

    /// The resource's type URL (that of its body).
    pub fn type_url(&self) -> &str {
        &self.body.type_url
    }

    /// Whether a client holding `other` already has this resource.
    pub(crate) fn same_as(self: &Arc<Self>, other: &Arc<Self>) -> bool {
        Arc::ptr_eq(self, other) || self.version == other.version
    }
}

// === impl Snapshot ===

impl Snapshot {
    /// An empty snapshot at `revision`.
    pub fn new(revision: u64) -> Self {
        Self {
            revision,
            types: HashMap::new(),
        }
    }

    /// The revision, reported to proxies as `system_version_info`.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Sets the revision (e.g. after deriving this snapshot from the previous one).
    pub fn set_revision(&mut self, revision: u64) {
        self.revision = revision;
    }

    /// Adds or replaces a resource (keyed by its body's type URL and its name); returns
    /// the one it replaced.
    pub fn insert(&mut self, resource: impl Into<Arc<XdsResource>>) -> Option<Arc<XdsResource>> {
        let resource = resource.into();
        self.types
            .entry(resource.type_url().to_owned())
            .or_default()
            .insert(resource.name.clone(), resource)
    }

    /// Removes a resource; returns it if it was present.
    pub fn remove(&mut self, type_url: &str, name: &str) -> Option<Arc<XdsResource>> {
        let resources = self.types.get_mut(type_url)?;
        let removed = resources.remove(name);
        if resources.is_empty() {
            self.types.remove(type_url);
        }
        removed
    }

    /// The resource `name` of type `type_url`.
    pub fn get(&self, type_url: &str, name: &str) -> Option<&Arc<XdsResource>> {
        self.types.get(type_url)?.get(name)
    }

    /// All resources of type `type_url`, by name.
    pub fn resources(&self, type_url: &str) -> Option<&Resources> {
        self.types.get(type_url)
    }

    /// The type URLs that have at least one resource.
    pub fn type_urls(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// Number of resources of all types.
    pub fn len(&self) -> usize {
        self.types.values().map(HashMap::len).sum()
    }

    /// Whether there are no resources at all.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(type_url: &str, name: &str, version: &str) -> XdsResource {
        XdsResource::new(
            name,
            version,
            prost_types::Any {
                type_url: type_url.to_owned(),
                value: vec![1, 2, 3],
            },
        )
    }

    #[test]
    fn insert_keys_resources_by_body_type_and_name() {
        let mut snapshot = Snapshot::new(7);
        snapshot.insert(resource("t/a", "x", "1"));
        snapshot.insert(resource("t/b", "x", "2"));
        let replaced = snapshot.insert(resource("t/a", "x", "3"));

        assert_eq!(replaced.map(|r| r.version.clone()).as_deref(), Some("1"));
        assert_eq!(
            snapshot.get("t/a", "x").map(|r| r.version.as_str()),
            Some("3")
        );
        assert_eq!(
            snapshot.get("t/b", "x").map(|r| r.version.as_str()),
            Some("2")
        );
        assert_eq!(snapshot.len(), 2);
        assert_eq!(snapshot.revision(), 7);
    }

    #[test]
    fn removing_the_last_resource_of_a_type_forgets_the_type() {
        let mut snapshot = Snapshot::new(1);
        snapshot.insert(resource("t/a", "x", "1"));
        assert!(snapshot.remove("t/a", "x").is_some());
        assert!(snapshot.remove("t/a", "x").is_none());
        assert!(snapshot.is_empty());
        assert_eq!(snapshot.type_urls().count(), 0);
    }

    #[test]
    fn visibility_admits_the_namespaces_or_the_workload_it_names() {
        let team_a = Viewer::Workload {
            namespace: "team-a".into(),
            name: "web".into(),
        };
        let team_b = Viewer::Workload {
            namespace: "team-b".into(),
            name: "web".into(),
        };
        let exported = Visibility::Namespaces(Arc::from(["team-a".to_owned()]));
        let own = Visibility::Workload {
            namespace: "team-a".into(),
            name: "web".into(),
        };
        let cases = [
            (Visibility::All, &team_b, true),
            (exported.clone(), &team_a, true),
            (exported.clone(), &team_b, false),
            (exported, &Viewer::Unrestricted, true),
            (own.clone(), &team_a, true),
            (own.clone(), &team_b, false),
            (
                own.clone(),
                &Viewer::Workload {
                    namespace: "team-a".into(),
                    name: "api".into(),
                },
                false,
            ),
            (own, &Viewer::Unrestricted, true),
        ];
        for (visible, viewer, want) in cases {
            let r = resource("t/a", "x", "1").with_visibility(visible.clone());
            assert_eq!(r.visible_to(viewer), want, "{visible:?} to {viewer:?}");
        }
    }

    #[test]
    fn same_version_counts_as_same_resource_even_when_rebuilt() {
        let a = Arc::new(resource("t/a", "x", "1"));
        let rebuilt = Arc::new(resource("t/a", "x", "1"));
        let changed = Arc::new(resource("t/a", "x", "2"));
        assert!(a.same_as(&rebuilt));
        assert!(!a.same_as(&changed));
    }
}
