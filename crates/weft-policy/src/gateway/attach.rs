//! Which listeners of a Gateway a route attaches to through one of its `parentRefs`,
//! by the Gateway API's rules, in this order:
//!
//! 1. `sectionName` and `port` narrow the listeners to those named / on that port;
//!    none left is `NoMatchingParent`.
//! 2. A listener takes the route if it takes its kind (`allowedRoutes.kinds`, or the
//!    kinds its protocol carries: `HTTPRoute` and `GRPCRoute` on HTTP and HTTPS,
//!    `TCPRoute` on TCP) and its namespace (`allowedRoutes.namespaces`: `Same`, `All`,
//!    or `Selector`); none is `NotAllowedByListeners`.
//! 3. Of those, the route attaches where its hostnames and the listener's intersect
//!    ([`super::hostname::on_listener`]); none is `NoMatchingListenerHostname`.
//!
//! Attachment does not depend on the listener's own conditions: a route attaches to a
//! conflicted listener too (and counts in its `attachedRoutes`), as the Gateway API
//! asks; the Gateway's status says the listener is not served.

use weft_api::resource::gateway::{
    FromNamespaces, LabelSelector, Listener, RouteNamespaces, SelectorOperator, Spec,
    NAMESPACE_NAME_LABEL,
};
use weft_api::resource::route::ParentRef;
use weft_api::resource::Kind;

use super::hostname;
use super::listener;

/// A route as attachment sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RouteView<'a> {
    pub(crate) kind: Kind,
    pub(crate) namespace: &'a str,
    pub(crate) hostnames: &'a [String],
}

/// Why a route does not attach to a Gateway it names: a Gateway API reason of the
/// route's `Accepted: False`, and what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

/// The listeners (indices into `spec.listeners`) of Gateway `namespace/name` that
/// `route` attaches to through `parent`.
pub(crate) fn listeners(
    (namespace, name): (&str, &str),
    spec: &Spec,
    route: &RouteView<'_>,
    parent: &ParentRef,
) -> Result<Vec<usize>, Refusal> {
    let no_parent = |message: String| Refusal {
        reason: "NoMatchingParent",
        message,
    };
    let mut candidates: Vec<(usize, &Listener)> = spec.listeners.iter().enumerate().collect();
    if let Some(section) = &parent.section_name {
        candidates.retain(|(_, l)| &l.name == section);
        if candidates.is_empty() {
            let names: Vec<&str> = spec.listeners.iter().map(|l| l.name.as_str()).collect();
            return Err(no_parent(format!(
                "Gateway {namespace}/{name} has no listener named {section:?} (listeners: {})",
                names.join(", ")
            )));
        }
    }
    if let Some(port) = parent.port {
        candidates.retain(|(_, l)| l.port == port);
        if candidates.is_empty() {
            let which = parent.section_name.as_ref().map_or_else(
                || "no listener".to_owned(),
                |s| format!("listener {s:?} is not"),
            );
            return Err(no_parent(format!(
                "Gateway {namespace}/{name} has {which} on port {port}"
            )));
        }
    }
    let mut refused = Vec::new();
    let allowed: Vec<(usize, &Listener)> = candidates
        .into_iter()
        .filter(|(_, l)| match takes(l, namespace, route) {
            Ok(()) => true,
            Err(why) => {
                refused.push(why);
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(Refusal {
            reason: "NotAllowedByListeners",
            message: refused.join("; "),
        });
    }
    let attached: Vec<usize> = allowed
        .iter()
        .filter(|(_, l)| hostname::on_listener(l.hostname.as_deref(), route.hostnames).is_some())
        .map(|(i, _)| *i)
        .collect();
    if attached.is_empty() {
        let served: Vec<String> = allowed
            .iter()
            .map(|(_, l)| {
                format!(
                    "{} serves {}",
                    l.name,
                    l.hostname.as_deref().unwrap_or("any")
                )
            })
            .collect();
        return Err(Refusal {
            reason: "NoMatchingListenerHostname",
            message: format!(
                "no hostname of the route ({}) is one a listener serves: {}; add a hostname \
                 the listener serves, or choose another listener with sectionName",
                route.hostnames.join(", "),
                served.join(", ")
            ),
        });
    }
    Ok(attached)
}

/// Whether listener `l` of a Gateway in `namespace` takes `route` (its kind and its
/// namespace), or why not.
fn takes(l: &Listener, namespace: &str, route: &RouteView<'_>) -> Result<(), String> {
    let kinds = listener::kinds(l);
    if !kinds.supported.contains(&route.kind) {
        let names: Vec<&str> = kinds.supported.iter().map(|k| k.as_str()).collect();
        return Err(format!(
            "listener {} does not take {} (it takes {})",
            l.name,
            route.kind,
            if names.is_empty() {
                "no route kind Weft supports".to_owned()
            } else {
                names.join(", ")
            }
        ));
    }
    let namespaces = l
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    let from = namespaces.map(RouteNamespaces::from).unwrap_or_default();
    let ok = match from {
        FromNamespaces::All => true,
        FromNamespaces::Same => route.namespace == namespace,
        FromNamespaces::Selector => namespaces
            .and_then(|n| n.selector.as_ref())
            .is_some_and(|s| selects(s, route.namespace)),
    };
    if ok {
        return Ok(());
    }
    Err(match from {
        FromNamespaces::Selector => format!(
            "listener {} takes routes of the namespaces its \
             allowedRoutes.namespaces.selector matches, not of {}",
            l.name, route.namespace
        ),
        FromNamespaces::All | FromNamespaces::Same => format!(
            "listener {} takes routes of namespace {namespace} only \
             (allowedRoutes.namespaces.from: Same), not of {}",
            l.name, route.namespace
        ),
    })
}

/// Whether `selector` selects the namespace `namespace`, whose one label is
/// `kubernetes.io/metadata.name: <namespace>` (Weft has no `Namespace` objects to
/// label; validation refuses selectors on any other key).
pub(crate) fn selects(selector: &LabelSelector, namespace: &str) -> bool {
    let value = |key: &str| (key == NAMESPACE_NAME_LABEL).then_some(namespace);
    selector
        .match_labels
        .iter()
        .all(|(k, v)| value(k) == Some(v.as_str()))
        && selector.match_expressions.iter().all(|r| {
            let listed = |v: &str| r.values.iter().any(|x| x == v);
            match r.operator {
                SelectorOperator::In => value(&r.key).is_some_and(listed),
                SelectorOperator::NotIn => value(&r.key).is_none_or(|v| !listed(v)),
                SelectorOperator::Exists => value(&r.key).is_some(),
                SelectorOperator::DoesNotExist => value(&r.key).is_none(),
            }
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;
    use weft_api::resource::gateway::LabelSelectorRequirement;

    use super::*;

    /// The Gateway `shop/edge`: HTTP on 80 for any host from its namespace, HTTPS on
    /// 443 for `*.example.com` from every namespace, TCP on 5432 from the namespaces
    /// `db` and `shop`, and HTTP on 8080 for gRPC only.
    fn edge() -> Spec {
        serde_json::from_value(json!({
            "gatewayClassName": "weft",
            "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP"},
                {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "*.example.com",
                 "tls": {"certificateRefs": [{"name": "cert"}]},
                 "allowedRoutes": {"namespaces": {"from": "All"}}},
                {"name": "db", "port": 5432, "protocol": "TCP",
                 "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchExpressions": [
                     {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["db", "shop"]}
                 ]}}}},
                {"name": "grpc", "port": 8080, "protocol": "HTTP",
                 "allowedRoutes": {"kinds": [{"kind": "GRPCRoute"}]}}
            ]
        }))
        .expect("the test gateway parses")
    }

    fn parent(section: Option<&str>, port: Option<u16>) -> ParentRef {
        ParentRef {
            group: Some("gateway.networking.k8s.io".into()),
            kind: Some("Gateway".into()),
            name: "edge".into(),
            namespace: Some("shop".into()),
            port,
            section_name: section.map(str::to_owned),
        }
    }

    /// Route kind, namespace, hostnames; parentRef sectionName and port; the listeners
    /// attached to, or the refusal's reason.
    type Case<'a> = (
        Kind,
        &'a str,
        &'a [String],
        Option<&'a str>,
        Option<u16>,
        Result<Vec<usize>, &'a str>,
    );

    #[test]
    fn a_route_attaches_to_the_listeners_that_take_its_kind_namespace_and_hostnames() {
        let spec = edge();
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let shop_host = names(&["shop.example.com"]);
        let other_host = names(&["shop.example.org"]);
        let none: Vec<String> = Vec::new();
        let cases: Vec<Case<'_>> = vec![
            // Every listener that takes it, without sectionName or port.
            (Kind::HttpRoute, "shop", &none, None, None, Ok(vec![0, 1])),
            (
                Kind::GrpcRoute,
                "shop",
                &none,
                None,
                None,
                Ok(vec![0, 1, 3]),
            ),
            (Kind::TcpRoute, "shop", &none, None, None, Ok(vec![2])),
            (Kind::TcpRoute, "db", &none, None, None, Ok(vec![2])),
            // Namespaces: Same, All, Selector.
            (Kind::HttpRoute, "web", &none, None, None, Ok(vec![1])),
            (
                Kind::HttpRoute,
                "web",
                &none,
                Some("http"),
                None,
                Err("NotAllowedByListeners"),
            ),
            (
                Kind::TcpRoute,
                "web",
                &none,
                None,
                None,
                Err("NotAllowedByListeners"),
            ),
            // Kinds: by protocol and by allowedRoutes.kinds.
            (
                Kind::HttpRoute,
                "shop",
                &none,
                Some("grpc"),
                None,
                Err("NotAllowedByListeners"),
            ),
            (
                Kind::TcpRoute,
                "shop",
                &none,
                Some("http"),
                None,
                Err("NotAllowedByListeners"),
            ),
            (
                Kind::HttpRoute,
                "shop",
                &none,
                Some("db"),
                None,
                Err("NotAllowedByListeners"),
            ),
            // sectionName and port narrow.
            (
                Kind::HttpRoute,
                "shop",
                &none,
                Some("https"),
                None,
                Ok(vec![1]),
            ),
            (Kind::HttpRoute, "shop", &none, None, Some(443), Ok(vec![1])),
            (
                Kind::HttpRoute,
                "shop",
                &none,
                Some("http"),
                Some(80),
                Ok(vec![0]),
            ),
            (
                Kind::HttpRoute,
                "shop",
                &none,
                Some("nope"),
                None,
                Err("NoMatchingParent"),
            ),
            (
                Kind::HttpRoute,
                "shop",
                &none,
                None,
                Some(81),
                Err("NoMatchingParent"),
            ),
            (
                Kind::HttpRoute,
                "shop",
                &none,
                Some("http"),
                Some(443),
                Err("NoMatchingParent"),
            ),
            // Hostnames: the HTTP listener serves any, the HTTPS one *.example.com.
            (
                Kind::HttpRoute,
                "shop",
                &shop_host,
                None,
                None,
                Ok(vec![0, 1]),
            ),
            (
                Kind::HttpRoute,
                "shop",
                &other_host,
                None,
                None,
                Ok(vec![0]),
            ),
            (
                Kind::HttpRoute,
                "web",
                &other_host,
                None,
                None,
                Err("NoMatchingListenerHostname"),
            ),
            (
                Kind::HttpRoute,
                "shop",
                &other_host,
                Some("https"),
                None,
                Err("NoMatchingListenerHostname"),
            ),
        ];
        for (kind, namespace, hostnames, section, port, want) in cases {
            let route = RouteView {
                kind,
                namespace,
                hostnames,
            };
            let got = listeners(("shop", "edge"), &spec, &route, &parent(section, port))
                .map_err(|r| r.reason);
            assert_eq!(
                got, want,
                "{kind} from {namespace} {hostnames:?} via {section:?}/{port:?}"
            );
        }
    }

    #[test]
    fn a_refusal_says_which_listener_refused_and_why() {
        let spec = edge();
        let route = RouteView {
            kind: Kind::HttpRoute,
            namespace: "web",
            hostnames: &[],
        };
        let refusal = listeners(("shop", "edge"), &spec, &route, &parent(Some("http"), None))
            .expect_err("another namespace");
        assert_eq!(
            refusal.message,
            "listener http takes routes of namespace shop only \
             (allowedRoutes.namespaces.from: Same), not of web"
        );
        let tcp = RouteView {
            kind: Kind::TcpRoute,
            namespace: "shop",
            hostnames: &[],
        };
        let refusal = listeners(("shop", "edge"), &spec, &tcp, &parent(None, Some(80)))
            .expect_err("a TCPRoute on HTTP");
        assert_eq!(
            refusal.message,
            "listener http does not take TCPRoute (it takes HTTPRoute, GRPCRoute)"
        );
        let refusal = listeners(("shop", "edge"), &spec, &tcp, &parent(Some("nope"), None))
            .expect_err("no such listener");
        assert_eq!(
            refusal.message,
            "Gateway shop/edge has no listener named \"nope\" (listeners: http, https, db, grpc)"
        );
        let hosts = ["api.example.org".to_owned()];
        let hosted = RouteView {
            kind: Kind::HttpRoute,
            namespace: "web",
            hostnames: &hosts,
        };
        let refusal = listeners(("shop", "edge"), &spec, &hosted, &parent(None, None))
            .expect_err("no shared hostname");
        assert!(
            refusal
                .message
                .starts_with("no hostname of the route (api.example.org) is one a listener serves: https serves *.example.com"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn a_namespace_selector_selects_by_the_namespace_name_label() {
        let expr = |operator, values: &[&str]| LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![LabelSelectorRequirement {
                key: NAMESPACE_NAME_LABEL.into(),
                operator,
                values: values.iter().map(|v| (*v).to_owned()).collect(),
            }],
        };
        let labels = |value: &str| LabelSelector {
            match_labels: [(NAMESPACE_NAME_LABEL.to_owned(), value.to_owned())].into(),
            match_expressions: Vec::new(),
        };
        let cases = [
            (LabelSelector::default(), "shop", true),
            (labels("shop"), "shop", true),
            (labels("shop"), "web", false),
            (expr(SelectorOperator::In, &["shop", "web"]), "web", true),
            (expr(SelectorOperator::In, &["shop", "web"]), "db", false),
            (expr(SelectorOperator::NotIn, &["shop"]), "db", true),
            (expr(SelectorOperator::NotIn, &["shop"]), "shop", false),
            (expr(SelectorOperator::Exists, &[]), "any", true),
            (expr(SelectorOperator::DoesNotExist, &[]), "any", false),
        ];
        for (selector, namespace, want) in cases {
            assert_eq!(
                selects(&selector, namespace),
                want,
                "{selector:?} {namespace}"
            );
        }
    }
}
