//! What the xDS client holds and wants: the accepted [`ResourceSet`] and the
//! [`Subscriptions`] the proxy asks for.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The name that subscribes to every resource of a type.
pub const WILDCARD: &str = "*";

/// One accepted resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// Resource name, unique within its type.
    pub name: String,
    /// Version assigned by the control plane.
    pub version: String,
    /// The encoded resource; decode it by `body.type_url`.
    pub body: prost_types::Any,
}

/// Every accepted resource, by type URL then name (sorted, so dumps are stable).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceSet {
    types: BTreeMap<String, BTreeMap<String, Resource>>,
}

/// The resource names the proxy wants, by type URL; [`WILDCARD`] means all of a type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscriptions {
    types: BTreeMap<String, BTreeSet<String>>,
}

// === impl ResourceSet ===

impl ResourceSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a resource of type `type_url`; returns the one it replaced.
    pub fn insert(&mut self, type_url: impl Into<String>, resource: Resource) -> Option<Resource> {
        self.types
            .entry(type_url.into())
            .or_default()
            .insert(resource.name.clone(), resource)
    }

    /// Removes a resource; returns it if it was present.
    pub fn remove(&mut self, type_url: &str, name: &str) -> Option<Resource> {
        let resources = self.types.get_mut(type_url)?;
        let removed = resources.remove(name);
        if resources.is_empty() {
            self.types.remove(type_url);
        }
        removed
    }

    /// The resource `name` of type `type_url`.
    pub fn get(&self, type_url: &str, name: &str) -> Option<&Resource> {
        self.types.get(type_url)?.get(name)
    }

    /// The resources of type `type_url`, sorted by name.
    pub fn of_type(&self, type_url: &str) -> impl Iterator<Item = &Resource> {
        self.types
            .get(type_url)
            .into_iter()
            .flat_map(BTreeMap::values)
    }

    /// Every resource with its type URL, sorted by type URL then name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Resource)> {
        self.types.iter().flat_map(|(type_url, resources)| {
            resources.values().map(move |r| (type_url.as_str(), r))
        })
    }

    /// The type URLs with at least one resource.
    pub fn type_urls(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// Version by name of the resources of type `type_url` (what a reconnecting client
    /// sends as `initial_resource_versions`).
    pub fn versions(&self, type_url: &str) -> HashMap<String, String> {
        self.of_type(type_url)
            .map(|r| (r.name.clone(), r.version.clone()))
            .collect()
    }

    /// Number of resources of all types.
    pub fn len(&self) -> usize {
        self.types.values().map(BTreeMap::len).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Drops every resource `subscriptions` does not cover; returns how many.
    pub(crate) fn retain_subscribed(&mut self, subscriptions: &Subscriptions) -> usize {
        let before = self.len();
        for (type_url, resources) in &mut self.types {
            resources.retain(|name, _| subscriptions.contains(type_url, name));
        }
        self.types.retain(|_, resources| !resources.is_empty());
        before - self.len()
    }
}

// === impl Subscriptions ===

impl Subscriptions {
    /// No subscriptions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name` (or [`WILDCARD`]) of type `type_url`.
    pub fn subscribe(&mut self, type_url: impl Into<String>, name: impl Into<String>) -> &mut Self {
        self.types
            .entry(type_url.into())
            .or_default()
            .insert(name.into());
        self
    }

    /// `self` plus the given names of type `type_url`.
    #[must_use]
    pub fn with<I, S>(mut self, type_url: &str, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for name in names {
            self.subscribe(type_url, name);
        }
        self
    }

    /// `self` plus every resource of type `type_url`.
    #[must_use]
    pub fn with_wildcard(self, type_url: &str) -> Self {
        self.with(type_url, [WILDCARD])
    }

    /// The names subscribed for `type_url` (may include [`WILDCARD`]).
    pub fn names(&self, type_url: &str) -> impl Iterator<Item = &str> {
        self.types
            .get(type_url)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Whether `name` of type `type_url` is wanted (by name or by wildcard).
    pub fn contains(&self, type_url: &str, name: &str) -> bool {
        self.types
            .get(type_url)
            .is_some_and(|names| names.contains(name) || names.contains(WILDCARD))
    }

    /// The subscribed type URLs.
    pub fn type_urls(&self) -> impl Iterator<Item = &str> {
        self.types
            .iter()
            .filter(|(_, names)| !names.is_empty())
            .map(|(t, _)| t.as_str())
    }

    /// Per type URL, the names to subscribe and to unsubscribe to go from `self` to
    /// `next`; types with no change are left out.
    pub(crate) fn changes(&self, next: &Self) -> Vec<(String, Vec<String>, Vec<String>)> {
        let empty = BTreeSet::new();
        let types: BTreeSet<&String> = self.types.keys().chain(next.types.keys()).collect();
        types
            .into_iter()
            .filter_map(|type_url| {
                let old = self.types.get(type_url).unwrap_or(&empty);
                let new = next.types.get(type_url).unwrap_or(&empty);
                let subscribe: Vec<String> = new.difference(old).cloned().collect();
                let unsubscribe: Vec<String> = old.difference(new).cloned().collect();
                (!subscribe.is_empty() || !unsubscribe.is_empty())
                    .then(|| (type_url.clone(), subscribe, unsubscribe))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(name: &str, version: &str) -> Resource {
        Resource {
            name: name.to_owned(),
            version: version.to_owned(),
            body: prost_types::Any {
                type_url: "t/a".to_owned(),
                value: Vec::new(),
            },
        }
    }

    #[test]
    fn wildcard_covers_every_name_of_its_type_only() {
        let subs = Subscriptions::new().with_wildcard("t/a").with("t/b", ["x"]);
        assert!(subs.contains("t/a", "anything"));
        assert!(subs.contains("t/b", "x"));
        assert!(!subs.contains("t/b", "y"));
        assert!(!subs.contains("t/c", "x"));
    }

    #[test]
    fn changes_lists_added_and_removed_names_per_type() {
        let old = Subscriptions::new()
            .with("t/a", ["x", "y"])
            .with("t/b", ["z"]);
        let new = Subscriptions::new()
            .with("t/a", ["y", "w"])
            .with("t/c", ["*"]);
        let changes = old.changes(&new);
        assert_eq!(
            changes,
            vec![
                ("t/a".to_owned(), vec!["w".to_owned()], vec!["x".to_owned()]),
                ("t/b".to_owned(), vec![], vec!["z".to_owned()]),
                ("t/c".to_owned(), vec!["*".to_owned()], vec![]),
            ]
        );
        assert!(new.changes(&new).is_empty());
    }

    #[test]
    fn retain_subscribed_drops_unwanted_resources() {
        let mut set = ResourceSet::new();
        set.insert("t/a", resource("x", "1"));
        set.insert("t/a", resource("y", "1"));
        set.insert("t/b", resource("z", "1"));
        let dropped = set.retain_subscribed(&Subscriptions::new().with("t/a", ["x"]));
        assert_eq!(dropped, 2);
        assert_eq!(
            set.iter()
                .map(|(t, r)| (t, r.name.as_str()))
                .collect::<Vec<_>>(),
            vec![("t/a", "x")]
        );
        assert_eq!(
            set.versions("t/a"),
            HashMap::from([("x".to_owned(), "1".to_owned())])
        );
    }
}
