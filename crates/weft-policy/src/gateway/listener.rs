//! What one listener of a Gateway comes to, beside the others: the route kinds it
//! takes, whether it conflicts with another listener, and whether its certificate
//! references resolve. The conditions these give are in [`super::status`].

use weft_api::resource::gateway::{Listener, Protocol, TlsMode, GROUP};
use weft_api::resource::Kind;

/// The route kinds a listener's protocol carries, of those Weft has.
pub(crate) fn protocol_kinds(protocol: Protocol) -> &'static [Kind] {
    match protocol {
        Protocol::Http | Protocol::Https => &[Kind::HttpRoute, Kind::GrpcRoute],
        Protocol::Tcp => &[Kind::TcpRoute],
        // TLS passthrough carries `TLSRoute`, which Weft does not have yet.
        Protocol::Tls => &[],
    }
}

/// The route kinds a listener takes (`status.listeners[].supportedKinds`) and why it
/// refuses the others it lists.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Kinds {
    /// Kinds routes may attach with.
    pub(crate) supported: Vec<Kind>,
    /// One line per `allowedRoutes.kinds` entry that is not supported here, or one
    /// saying the protocol takes no kind Weft has.
    pub(crate) invalid: Vec<String>,
}

/// The kinds `listener` takes: those of `allowedRoutes.kinds` its protocol carries,
/// or, when it lists none, every kind the protocol carries.
pub(crate) fn kinds(listener: &Listener) -> Kinds {
    let carried = protocol_kinds(listener.protocol);
    let listed = listener
        .allowed_routes
        .as_ref()
        .map(|a| a.kinds.as_slice())
        .unwrap_or_default();
    let mut out = Kinds::default();
    if listed.is_empty() {
        out.supported = carried.to_vec();
    }
    for (i, k) in listed.iter().enumerate() {
        let named = format!("allowedRoutes.kinds[{i}] {}/{}", k.group(), k.kind);
        let kind = k
            .kind
            .parse::<Kind>()
            .ok()
            .filter(|kind| matches!(kind, Kind::HttpRoute | Kind::GrpcRoute | Kind::TcpRoute));
        match kind {
            _ if k.group() != GROUP => out
                .invalid
                .push(format!("{named}: routes are of group {GROUP}")),
            None => out.invalid.push(format!(
                "{named}: not a route kind Weft supports (HTTPRoute, GRPCRoute, TCPRoute)"
            )),
            Some(kind) if !carried.contains(&kind) => out.invalid.push(format!(
                "{named}: {} listener does not carry {kind}{}",
                a(listener.protocol),
                carries(carried)
            )),
            Some(kind) if out.supported.contains(&kind) => {}
            Some(kind) => out.supported.push(kind),
        }
    }
    if listed.is_empty() && carried.is_empty() {
        out.invalid.push(format!(
            "no route can attach to {} listener yet: it carries TLSRoute, which Weft does \
             not support yet",
            a(listener.protocol)
        ));
    }
    out
}

/// The protocol with its article: `an HTTP`, `a TCP`.
pub(crate) fn a(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Http => "an HTTP",
        Protocol::Https => "an HTTPS",
        Protocol::Tls => "a TLS",
        Protocol::Tcp => "a TCP",
    }
}

fn carries(kinds: &[Kind]) -> String {
    if kinds.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        format!(" (it carries {})", names.join(", "))
    }
}

/// Why a listener is not distinct from another of its Gateway (Gateway API
/// `Conflicted` reasons).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// Another listener on its port speaks a protocol that cannot share it.
    Protocol(String),
    /// Another listener on its port serves the same hostname (two TCP listeners on one
    /// port count: TCP has no hostname to tell them apart).
    Hostname(String),
}

impl Conflict {
    /// The Gateway API reason.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Conflict::Protocol(_) => "ProtocolConflict",
            Conflict::Hostname(_) => "HostnameConflict",
        }
    }

    /// What conflicts, and what to do.
    pub(crate) fn message(&self) -> &str {
        match self {
            Conflict::Protocol(m) | Conflict::Hostname(m) => m,
        }
    }
}

/// Listeners of one family can share a port, told apart by `Host` (HTTP) or SNI
/// (HTTPS and TLS); listeners of two families cannot, and TCP shares with nothing.
fn family(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Http => 0,
        Protocol::Https | Protocol::Tls => 1,
        Protocol::Tcp => 2,
    }
}

/// Each listener's conflict, by index. Every listener of a conflicting pair is
/// conflicted: the Gateway API lets no one of them win.
pub(crate) fn conflicts(listeners: &[Listener]) -> Vec<Option<Conflict>> {
    listeners
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let same_port: Vec<&Listener> = listeners
                .iter()
                .enumerate()
                .filter(|&(j, other)| j != i && other.port == l.port)
                .map(|(_, other)| other)
                .collect();
            let other_family: Vec<String> = same_port
                .iter()
                .filter(|o| family(o.protocol) != family(l.protocol))
                .map(|o| format!("{} ({})", o.name, o.protocol.as_str()))
                .collect();
            if !other_family.is_empty() {
                return Some(Conflict::Protocol(format!(
                    "port {} is also listener {}: {} cannot share a port with it (HTTP \
                     shares only with HTTP, HTTPS and TLS only with each other, TCP with \
                     nothing); move one to another port",
                    l.port,
                    other_family.join(", "),
                    l.protocol.as_str()
                )));
            }
            let same_host: Vec<&str> = same_port
                .iter()
                .filter(|o| same_hostname(o.hostname.as_deref(), l.hostname.as_deref()))
                .map(|o| o.name.as_str())
                .collect();
            if same_host.is_empty() {
                None
            } else if l.protocol == Protocol::Tcp {
                Some(Conflict::Hostname(format!(
                    "port {} is also TCP listener {}: a TCP listener is told apart by its \
                     port alone; move one to another port",
                    l.port,
                    same_host.join(", ")
                )))
            } else {
                Some(Conflict::Hostname(format!(
                    "port {} with {} is also listener {}: give each listener of a port its \
                     own hostname",
                    l.port,
                    l.hostname
                        .as_deref()
                        .map_or_else(|| "any hostname".to_owned(), |h| format!("hostname {h}")),
                    same_host.join(", ")
                )))
            }
        })
        .collect()
}

fn same_hostname(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

/// Why a certificate reference does not resolve (Gateway API `ResolvedRefs` reasons).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RefProblem {
    /// The Secret is in another namespace, and nothing grants the reference.
    NotPermitted(String),
    /// The Secret cannot be read.
    Invalid(String),
}

impl RefProblem {
    /// The Gateway API reason.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            RefProblem::NotPermitted(_) => "RefNotPermitted",
            RefProblem::Invalid(_) => "InvalidCertificateRef",
        }
    }

    pub(crate) fn message(&self) -> &str {
        match self {
            RefProblem::NotPermitted(m) | RefProblem::Invalid(m) => m,
        }
    }
}

/// Why each of `listener`'s certificate references does not resolve, for a Gateway
/// in `namespace`, given the Secrets that exist. A reference resolves to a valid
/// `kubernetes.io/tls` Secret of the Gateway's namespace whose certificate covers the
/// listener's hostname (when it has one). A listener that terminates TLS is never given
/// a default certificate.
pub(crate) fn certificate_problems(
    namespace: &str,
    listener: &Listener,
    certificates: &crate::secret::Certificates,
) -> Vec<RefProblem> {
    let Some(tls) = &listener.tls else {
        return Vec::new();
    };
    if tls.mode() != TlsMode::Terminate {
        return Vec::new();
    }
    tls.certificate_refs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let ns = r.namespace.as_deref().unwrap_or(namespace);
            let at = format!("tls.certificateRefs[{i}]");
            let name = &r.name;
            if ns != namespace {
                return Some(RefProblem::NotPermitted(format!(
                    "{at}: Secret {ns}/{name} is in another namespace than the Gateway's \
                     ({namespace}); Weft has no ReferenceGrant, so a Gateway may use only \
                     Secrets of its own namespace"
                )));
            }
            match certificates.get(&(ns.to_owned(), name.clone())) {
                None => Some(RefProblem::Invalid(format!(
                    "{at}: Secret {ns}/{name} not found; create it (type kubernetes.io/tls, \
                     with tls.crt and tls.key) with `weft apply`"
                ))),
                Some(Err(why)) => Some(RefProblem::Invalid(format!(
                    "{at}: Secret {ns}/{name} is not a usable kubernetes.io/tls Secret ({why}); \
                     apply it again as one"
                ))),
                Some(Ok(cert)) => match listener.hostname.as_deref() {
                    Some(host) if !crate::secret::covers(cert, host) => {
                        Some(RefProblem::Invalid(format!(
                            "{at}: the certificate of Secret {ns}/{name} ({}; DNS names: {}) \
                             does not cover the listener's hostname {host}; issue one whose \
                             subject alternative names include it",
                            cert.subject,
                            if cert.dns_names.is_empty() {
                                "none".to_owned()
                            } else {
                                cert.dns_names.join(", ")
                            }
                        )))
                    }
                    _ => None,
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use weft_api::resource::gateway::{AllowedRoutes, CertificateRef, RouteGroupKind, Tls};

    use super::*;

    fn listener(name: &str, port: u16, protocol: Protocol, hostname: Option<&str>) -> Listener {
        Listener {
            name: name.to_owned(),
            hostname: hostname.map(str::to_owned),
            port,
            protocol,
            tls: None,
            allowed_routes: None,
        }
    }

    fn with_kinds(mut l: Listener, kinds: &[(Option<&str>, &str)]) -> Listener {
        l.allowed_routes = Some(AllowedRoutes {
            namespaces: None,
            kinds: kinds
                .iter()
                .map(|(group, kind)| RouteGroupKind {
                    group: group.map(str::to_owned),
                    kind: (*kind).to_owned(),
                })
                .collect(),
        });
        l
    }

    #[test]
    fn a_listener_takes_the_route_kinds_its_protocol_carries_unless_it_lists_fewer() {
        use Kind::{GrpcRoute, HttpRoute, TcpRoute};
        let cases: Vec<(Listener, Vec<Kind>, Vec<&str>)> = vec![
            (listener("a", 80, Protocol::Http, None), vec![HttpRoute, GrpcRoute], vec![]),
            (listener("a", 443, Protocol::Https, None), vec![HttpRoute, GrpcRoute], vec![]),
            (listener("a", 5432, Protocol::Tcp, None), vec![TcpRoute], vec![]),
            (
                listener("a", 443, Protocol::Tls, None),
                vec![],
                vec!["carries TLSRoute, which Weft does not support yet"],
            ),
            (
                with_kinds(listener("a", 80, Protocol::Http, None), &[(None, "GRPCRoute")]),
                vec![GrpcRoute],
                vec![],
            ),
            (
                with_kinds(
                    listener("a", 80, Protocol::Http, None),
                    &[(Some(GROUP), "HTTPRoute"), (None, "HTTPRoute")],
                ),
                vec![HttpRoute],
                vec![],
            ),
            (
                with_kinds(
                    listener("a", 80, Protocol::Http, None),
                    &[(None, "HTTPRoute"), (None, "TCPRoute")],
                ),
                vec![HttpRoute],
                vec!["kinds[1] gateway.networking.k8s.io/TCPRoute: an HTTP listener does not carry TCPRoute (it carries HTTPRoute, GRPCRoute)"],
            ),
            (
                with_kinds(listener("a", 5432, Protocol::Tcp, None), &[(None, "UDPRoute")]),
                vec![],
                vec!["UDPRoute: not a route kind Weft supports"],
            ),
            (
                with_kinds(
                    listener("a", 80, Protocol::Http, None),
                    &[(Some("example.com"), "HTTPRoute")],
                ),
                vec![],
                vec!["example.com/HTTPRoute: routes are of group gateway.networking.k8s.io"],
            ),
            (
                with_kinds(listener("a", 443, Protocol::Tls, None), &[(None, "HTTPRoute")]),
                vec![],
                vec!["a TLS listener does not carry HTTPRoute"],
            ),
        ];
        for (l, supported, invalid) in cases {
            let got = kinds(&l);
            assert_eq!(got.supported, supported, "{l:?}");
            assert_eq!(got.invalid.len(), invalid.len(), "{got:?}");
            for (line, want) in got.invalid.iter().zip(invalid) {
                assert!(line.contains(want), "{line:?} lacks {want:?}");
            }
        }
    }

    #[test]
    fn listeners_sharing_a_port_conflict_on_protocol_family_or_on_hostname() {
        use Protocol::{Http, Https, Tcp, Tls};
        type Case = (Vec<Listener>, Vec<Option<&'static str>>);
        let cases: Vec<Case> = vec![
            // Distinct by port, or by hostname on one port.
            (
                vec![
                    listener("a", 80, Http, None),
                    listener("b", 443, Https, None),
                    listener("c", 5432, Tcp, None),
                ],
                vec![None, None, None],
            ),
            (
                vec![
                    listener("a", 80, Http, Some("a.example.com")),
                    listener("b", 80, Http, Some("*.example.com")),
                    listener("c", 80, Http, None),
                ],
                vec![None, None, None],
            ),
            // HTTPS and TLS share a port by SNI.
            (
                vec![
                    listener("a", 443, Https, Some("a.example.com")),
                    listener("b", 443, Tls, Some("b.example.com")),
                ],
                vec![None, None],
            ),
            // The same hostname on one port: both conflicted.
            (
                vec![
                    listener("a", 80, Http, Some("shop.example.com")),
                    listener("b", 80, Http, Some("shop.example.com")),
                    listener("c", 80, Http, Some("api.example.com")),
                ],
                vec![Some("HostnameConflict"), Some("HostnameConflict"), None],
            ),
            (
                vec![listener("a", 80, Http, None), listener("b", 80, Http, None)],
                vec![Some("HostnameConflict"), Some("HostnameConflict")],
            ),
            (
                vec![
                    listener("a", 443, Https, Some("x.example.com")),
                    listener("b", 443, Tls, Some("x.example.com")),
                ],
                vec![Some("HostnameConflict"), Some("HostnameConflict")],
            ),
            (
                vec![
                    listener("a", 5432, Tcp, None),
                    listener("b", 5432, Tcp, None),
                ],
                vec![Some("HostnameConflict"), Some("HostnameConflict")],
            ),
            // Two families on one port: every listener of the port.
            (
                vec![
                    listener("a", 8080, Http, Some("a.example.com")),
                    listener("b", 8080, Https, Some("b.example.com")),
                    listener("c", 9090, Http, None),
                ],
                vec![Some("ProtocolConflict"), Some("ProtocolConflict"), None],
            ),
            (
                vec![
                    listener("a", 443, Tcp, None),
                    listener("b", 443, Https, Some("a.example.com")),
                    listener("c", 443, Tls, Some("b.example.com")),
                ],
                vec![
                    Some("ProtocolConflict"),
                    Some("ProtocolConflict"),
                    Some("ProtocolConflict"),
                ],
            ),
        ];
        for (listeners, want) in cases {
            let got: Vec<Option<&str>> = conflicts(&listeners)
                .iter()
                .map(|c| c.as_ref().map(Conflict::reason))
                .collect();
            assert_eq!(got, want, "{listeners:?}");
        }
    }

    #[test]
    fn a_conflict_names_the_other_listener_and_what_to_change() {
        let got = conflicts(&[
            listener("web", 80, Protocol::Http, Some("shop.example.com")),
            listener("web-2", 80, Protocol::Http, Some("shop.example.com")),
            listener("db", 80, Protocol::Tcp, None),
        ]);
        let message = got[2].as_ref().map(Conflict::message).unwrap_or_default();
        assert!(
            message.contains("port 80 is also listener web (HTTP), web-2 (HTTP)")
                && message.contains("move one to another port"),
            "{message}"
        );
        let got = conflicts(&[
            listener("web", 80, Protocol::Http, Some("shop.example.com")),
            listener("web-2", 80, Protocol::Http, Some("shop.example.com")),
        ]);
        let message = got[0].as_ref().map(Conflict::message).unwrap_or_default();
        assert!(
            message.contains("port 80 with hostname shop.example.com is also listener web-2")
                && message.contains("own hostname"),
            "{message}"
        );
    }

    fn certificate(names: &[&str]) -> weft_api::resource::secret::Certificate {
        weft_api::resource::secret::Certificate {
            subject: "CN=shop".into(),
            issuer: "CN=ca".into(),
            dns_names: names.iter().map(|n| (*n).to_owned()).collect(),
            ip_addresses: vec![],
            not_before: 0,
            not_after: 1,
            sha256_fingerprint: String::new(),
            chain_length: 1,
        }
    }

    fn https_naming(hostname: Option<&str>, refs: &[(&str, Option<&str>)]) -> Listener {
        let mut https = listener("https", 443, Protocol::Https, hostname);
        https.tls = Some(Tls {
            mode: None,
            certificate_refs: refs
                .iter()
                .map(|(name, namespace)| CertificateRef {
                    group: None,
                    kind: None,
                    name: (*name).into(),
                    namespace: namespace.map(str::to_owned),
                })
                .collect(),
        });
        https
    }

    #[test]
    fn certificate_refs_resolve_to_valid_secrets_of_the_namespace_that_cover_the_hostname() {
        type Case<'a> = (
            Option<&'a str>,
            (&'a str, Option<&'a str>),
            Option<(&'a str, &'a str)>,
        );
        let mut secrets = crate::secret::Certificates::new();
        let at = |name: &str| ("shop".to_owned(), name.to_owned());
        secrets.insert(at("shop-cert"), Ok(certificate(&["shop.example.com"])));
        secrets.insert(at("wild-cert"), Ok(certificate(&["*.example.com"])));
        secrets.insert(
            at("broken"),
            Err("type: \"Opaque\" is not supported".into()),
        );
        secrets.insert(
            ("certs".to_owned(), "shared-cert".to_owned()),
            Ok(certificate(&["shop.example.com"])),
        );
        let cases: Vec<Case<'_>> = vec![
            (Some("shop.example.com"), ("shop-cert", None), None),
            (None, ("shop-cert", None), None),
            (Some("shop.example.com"), ("wild-cert", None), None),
            (Some("*.example.com"), ("wild-cert", None), None),
            (
                Some("api.example.com"),
                ("shop-cert", None),
                Some((
                    "InvalidCertificateRef",
                    "does not cover the listener's hostname api.example.com",
                )),
            ),
            (
                Some("a.b.example.com"),
                ("wild-cert", None),
                Some(("InvalidCertificateRef", "does not cover")),
            ),
            (
                None,
                ("missing", None),
                Some((
                    "InvalidCertificateRef",
                    "Secret shop/missing not found; create it",
                )),
            ),
            (
                None,
                ("broken", None),
                Some((
                    "InvalidCertificateRef",
                    "is not a usable kubernetes.io/tls Secret",
                )),
            ),
            (
                None,
                ("shared-cert", Some("certs")),
                Some(("RefNotPermitted", "Weft has no ReferenceGrant")),
            ),
        ];
        for (hostname, reference, want) in cases {
            let problems =
                certificate_problems("shop", &https_naming(hostname, &[reference]), &secrets);
            let got = problems.first().map(|p| (p.reason(), p.message()));
            match (got, want) {
                (None, None) => {}
                (Some((reason, message)), Some((want_reason, want_message))) => {
                    assert_eq!(reason, want_reason, "{hostname:?} {reference:?}: {message}");
                    assert!(message.contains(want_message), "{message}");
                    assert!(message.starts_with("tls.certificateRefs[0]: "), "{message}");
                }
                (got, want) => panic!("{hostname:?} {reference:?}: got {got:?}, want {want:?}"),
            }
        }
        let secrets = crate::secret::Certificates::new();
        assert!(certificate_problems(
            "shop",
            &listener("http", 80, Protocol::Http, None),
            &secrets
        )
        .is_empty());
        let passthrough = https_naming(None, &[]);
        assert_eq!(certificate_problems("shop", &passthrough, &secrets), vec![]);
    }
}
