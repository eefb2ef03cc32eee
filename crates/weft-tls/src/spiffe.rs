//! SPIFFE identities of mesh workloads.
//!
//! A Weft identity is a SPIFFE ID of the fixed shape
//! `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`, the same shape Istio
//! uses. [`SpiffeId`] is the parsed, validated form: it is what a certificate's URI SAN
//! carries ([`crate::verify`]), what the CA issues for ([`crate::ca`]), and what
//! authorization policies name. This module only parses and prints; it does no I/O and
//! knows nothing about certificates.
//!
//! Validation follows the SPIFFE ID specification: the scheme is lowercase `spiffe`, the
//! trust domain uses only `a-z 0-9 . - _`, path segments use only `a-z A-Z 0-9 . - _`
//! and are neither empty nor `.`/`..`, and the whole URI is at most 2048 bytes. There is
//! no port, user info, query or fragment.

use std::fmt;
use std::str::FromStr;

/// The scheme prefix every SPIFFE ID starts with.
const SCHEME: &str = "spiffe://";

/// The shape operators should write, repeated in every parse error.
const SHAPE: &str = "spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>";

/// Longest trust domain the SPIFFE specification allows, in bytes.
const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// Longest SPIFFE ID the SPIFFE specification allows, in bytes.
const MAX_ID_LEN: usize = 2048;

/// Why a SPIFFE ID or one of its parts was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input does not start with `spiffe://`.
    #[error("invalid SPIFFE ID {input:?}: it must start with \"spiffe://\" (lowercase); expected {SHAPE}")]
    MissingScheme {
        /// The rejected input.
        input: String,
    },

    /// The path is not `/ns/<namespace>/sa/<service-account>`.
    #[error("invalid SPIFFE ID {input:?}: path {path:?} is not /ns/<namespace>/sa/<service-account>; expected {SHAPE}")]
    WrongPath {
        /// The rejected input.
        input: String,
        /// The path found after the trust domain (empty when there was none).
        path: String,
    },

    /// The trust domain is malformed.
    #[error("invalid SPIFFE ID {input:?}: trust domain {trust_domain:?} {problem}; trust domains use only lowercase letters, digits, '.', '-' and '_' (e.g. \"cluster.local\")")]
    InvalidTrustDomain {
        /// The rejected input.
        input: String,
        /// The trust domain as found.
        trust_domain: String,
        /// What is wrong with it.
        problem: Problem,
    },

    /// The namespace or service account is malformed.
    #[error("invalid SPIFFE ID {input:?}: {part} {value:?} {problem}; path segments use only letters, digits, '.', '-' and '_'")]
    InvalidSegment {
        /// The rejected input.
        input: String,
        /// Which part: `namespace` or `service account`.
        part: &'static str,
        /// The segment as found.
        value: String,
        /// What is wrong with it.
        problem: Problem,
    },

    /// The whole ID is longer than the SPIFFE limit.
    #[error("invalid SPIFFE ID starting {prefix:?}: it is {len} bytes long, the SPIFFE limit is {MAX_ID_LEN}")]
    TooLong {
        /// The first characters of the rejected input.
        prefix: String,
        /// Its length in bytes.
        len: usize,
    },
}

/// What is wrong with one part of a SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The part is empty.
    Empty,
    /// The part contains a character that is not allowed there.
    InvalidChar {
        /// The offending character.
        ch: char,
        /// Its byte offset within the part.
        at: usize,
    },
    /// A path segment is `.` or `..`.
    DotSegment,
    /// The trust domain is longer than 255 bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
}

/// A validated SPIFFE identity `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
///
/// Ordering and hashing follow (trust domain, namespace, service account). It serializes
/// as the URI string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    trust_domain: String,
    namespace: String,
    service_account: String,
}

/// Checks a trust domain alone, e.g. before generating a CA for it.
pub fn validate_trust_domain(trust_domain: &str) -> Result<(), Error> {
    check_trust_domain(trust_domain).map_err(|problem| Error::InvalidTrustDomain {
        input: format!("{SCHEME}{trust_domain}"),
        trust_domain: trust_domain.to_owned(),
        problem,
    })
}

fn check_trust_domain(td: &str) -> Result<(), Problem> {
    if td.is_empty() {
        return Err(Problem::Empty);
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(Problem::TooLong { len: td.len() });
    }
    match td
        .char_indices()
        .find(|&(_, c)| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_'))
    {
        Some((at, ch)) => Err(Problem::InvalidChar { ch, at }),
        None => Ok(()),
    }
}

fn check_segment(segment: &str) -> Result<(), Problem> {
    if segment.is_empty() {
        return Err(Problem::Empty);
    }
    if segment == "." || segment == ".." {
        return Err(Problem::DotSegment);
    }
    match segment
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        Some((at, ch)) => Err(Problem::InvalidChar { ch, at }),
        None => Ok(()),
    }
}

// === impl Problem ===

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Empty => f.write_str("is empty"),
            Problem::InvalidChar { ch, at } => {
                write!(
                    f,
                    "has the character {ch:?} at byte {at}, which is not allowed"
                )
            }
            Problem::DotSegment => f.write_str("is a '.' or '..' segment"),
            Problem::TooLong { len } => write!(
                f,
                "is {len} bytes long, the limit is {MAX_TRUST_DOMAIN_LEN}"
            ),
        }
    }
}

// === impl SpiffeId ===

impl SpiffeId {
    /// Builds an identity from its parts, validating each as the SPIFFE spec requires.
    pub fn new(trust_domain: &str, namespace: &str, service_account: &str) -> Result<Self, Error> {
        let input = || format!("{SCHEME}{trust_domain}/ns/{namespace}/sa/{service_account}");
        let len = input().len();
        if len > MAX_ID_LEN {
            return Err(Error::TooLong {
                prefix: input().chars().take(64).collect(),
                len,
            });
        }
        check_trust_domain(trust_domain).map_err(|problem| Error::InvalidTrustDomain {
            input: input(),
            trust_domain: trust_domain.to_owned(),
            problem,
        })?;
        for (part, value) in [
            ("namespace", namespace),
            ("service account", service_account),
        ] {
            check_segment(value).map_err(|problem| Error::InvalidSegment {
                input: input(),
                part,
                value: value.to_owned(),
                problem,
            })?;
        }
        Ok(SpiffeId {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        })
    }

    /// The trust domain, e.g. `cluster.local`.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The namespace segment.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The service account segment.
    pub fn service_account(&self) -> &str {
        &self.service_account
    }
}

impl FromStr for SpiffeId {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        if input.len() > MAX_ID_LEN {
            return Err(Error::TooLong {
                prefix: input.chars().take(64).collect(),
                len: input.len(),
            });
        }
        let Some(rest) = input.strip_prefix(SCHEME) else {
            return Err(Error::MissingScheme {
                input: input.to_owned(),
            });
        };
        let (trust_domain, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        // Ports, user info, queries and fragments surface as invalid characters in the
        // trust domain or a segment, so they need no separate checks.
        check_trust_domain(trust_domain).map_err(|problem| Error::InvalidTrustDomain {
            input: input.to_owned(),
            trust_domain: trust_domain.to_owned(),
            problem,
        })?;
        let wrong_path = || Error::WrongPath {
            input: input.to_owned(),
            path: path.to_owned(),
        };
        let mut segments = path.strip_prefix('/').ok_or_else(wrong_path)?.split('/');
        let (Some("ns"), Some(namespace), Some("sa"), Some(service_account), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(wrong_path());
        };
        for (part, value) in [
            ("namespace", namespace),
            ("service account", service_account),
        ] {
            check_segment(value).map_err(|problem| Error::InvalidSegment {
                input: input.to_owned(),
                part,
                value: value.to_owned(),
                problem,
            })?;
        }
        Ok(SpiffeId {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        })
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl serde::Serialize for SpiffeId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SpiffeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = SpiffeId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a SPIFFE ID string {SHAPE}")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SpiffeId, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

/// Namespace of the control plane's identity; reserved: no workload may have it.
pub const CONTROL_PLANE_NAMESPACE: &str = "weft-system";
/// Service account of the control plane's identity.
pub const CONTROL_PLANE_SERVICE_ACCOUNT: &str = "weft-control-plane";

/// Whether `id` is the control plane's identity (in any trust domain).
pub fn is_control_plane(id: &SpiffeId) -> bool {
    id.namespace() == CONTROL_PLANE_NAMESPACE
        && id.service_account() == CONTROL_PLANE_SERVICE_ACCOUNT
}

/// Whether `namespace` is reserved for Weft itself: no workload token, registration
/// or certificate may name it.
pub fn is_reserved(namespace: &str) -> bool {
    namespace == CONTROL_PLANE_NAMESPACE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_spiffe_id() {
        let cases = [
            (
                "spiffe://cluster.local/ns/default/sa/web",
                "cluster.local",
                "default",
                "web",
            ),
            (
                "spiffe://example.org/ns/prod-1/sa/Api_Server.v2",
                "example.org",
                "prod-1",
                "Api_Server.v2",
            ),
            ("spiffe://td_1-a/ns/a/sa/b", "td_1-a", "a", "b"),
        ];
        for (input, td, ns, sa) in cases {
            let id: SpiffeId = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(id.trust_domain(), td, "{input}");
            assert_eq!(id.namespace(), ns, "{input}");
            assert_eq!(id.service_account(), sa, "{input}");
            assert_eq!(id.to_string(), input, "Display must round-trip");
            assert_eq!(SpiffeId::new(td, ns, sa).unwrap(), id);
        }
    }

    #[test]
    fn rejects_missing_or_wrong_scheme() {
        for input in [
            "",
            "cluster.local/ns/a/sa/b",
            "SPIFFE://cluster.local/ns/a/sa/b",
            "https://cluster.local/ns/a/sa/b",
            "spiffe:/cluster.local/ns/a/sa/b",
        ] {
            let err = input.parse::<SpiffeId>().unwrap_err();
            assert!(
                matches!(err, Error::MissingScheme { .. }),
                "{input}: {err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains(SHAPE), "{msg}");
            assert!(msg.contains(&format!("{input:?}")), "{msg}");
        }
    }

    #[test]
    fn rejects_wrong_path_shape() {
        for (input, path) in [
            ("spiffe://cluster.local", ""),
            ("spiffe://cluster.local/", "/"),
            ("spiffe://cluster.local/ns/a", "/ns/a"),
            ("spiffe://cluster.local/ns/a/sa", "/ns/a/sa"),
            ("spiffe://cluster.local/ns/a/sa/b/", "/ns/a/sa/b/"),
            ("spiffe://cluster.local/ns/a/sa/b/c", "/ns/a/sa/b/c"),
            ("spiffe://cluster.local/sa/b/ns/a", "/sa/b/ns/a"),
            ("spiffe://cluster.local/workload/web", "/workload/web"),
            ("spiffe://cluster.local//ns/a/sa/b", "//ns/a/sa/b"),
        ] {
            let err = input.parse::<SpiffeId>().unwrap_err();
            assert_eq!(
                err,
                Error::WrongPath {
                    input: input.to_owned(),
                    path: path.to_owned()
                },
                "{input}"
            );
            assert!(err.to_string().contains(SHAPE));
        }
    }

    #[test]
    fn rejects_invalid_trust_domain() {
        for (input, problem) in [
            ("spiffe:///ns/a/sa/b", Problem::Empty),
            (
                "spiffe://Cluster.local/ns/a/sa/b",
                Problem::InvalidChar { ch: 'C', at: 0 },
            ),
            (
                "spiffe://cluster.local:8080/ns/a/sa/b",
                Problem::InvalidChar { ch: ':', at: 13 },
            ),
            (
                "spiffe://user@cluster.local/ns/a/sa/b",
                Problem::InvalidChar { ch: '@', at: 4 },
            ),
            (
                "spiffe://clüster/ns/a/sa/b",
                Problem::InvalidChar { ch: 'ü', at: 2 },
            ),
        ] {
            let err = input.parse::<SpiffeId>().unwrap_err();
            let Error::InvalidTrustDomain { problem: found, .. } = &err else {
                panic!("{input}: {err:?}");
            };
            assert_eq!(found, &problem, "{input}");
        }
        let long = "a".repeat(256);
        let err = format!("spiffe://{long}/ns/a/sa/b")
            .parse::<SpiffeId>()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidTrustDomain {
                    problem: Problem::TooLong { len: 256 },
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn rejects_invalid_path_segments() {
        for (input, part, problem) in [
            ("spiffe://td/ns//sa/b", "namespace", Problem::Empty),
            ("spiffe://td/ns/a/sa/", "service account", Problem::Empty),
            ("spiffe://td/ns/./sa/b", "namespace", Problem::DotSegment),
            (
                "spiffe://td/ns/a/sa/..",
                "service account",
                Problem::DotSegment,
            ),
            (
                "spiffe://td/ns/a b/sa/b",
                "namespace",
                Problem::InvalidChar { ch: ' ', at: 1 },
            ),
            (
                "spiffe://td/ns/a/sa/b?x=1",
                "service account",
                Problem::InvalidChar { ch: '?', at: 1 },
            ),
            (
                "spiffe://td/ns/a/sa/b#frag",
                "service account",
                Problem::InvalidChar { ch: '#', at: 1 },
            ),
            (
                "spiffe://td/ns/a%20/sa/b",
                "namespace",
                Problem::InvalidChar { ch: '%', at: 1 },
            ),
        ] {
            let err = input.parse::<SpiffeId>().unwrap_err();
            let Error::InvalidSegment {
                part: p,
                problem: found,
                ..
            } = &err
            else {
                panic!("{input}: {err:?}");
            };
            assert_eq!((*p, found), (part, &problem), "{input}");
            assert!(err.to_string().contains(part), "{err}");
        }
    }

    #[test]
    fn rejects_overlong_id() {
        let input = format!("spiffe://td/ns/a/sa/{}", "b".repeat(2048));
        let err = input.parse::<SpiffeId>().unwrap_err();
        assert!(matches!(err, Error::TooLong { .. }), "{err:?}");
        let err = SpiffeId::new("td", "a", &"b".repeat(2048)).unwrap_err();
        assert!(matches!(err, Error::TooLong { .. }), "{err:?}");
    }

    #[test]
    fn new_rejects_invalid_parts_and_names_them() {
        let err = SpiffeId::new("TD", "ns", "sa").unwrap_err();
        assert!(err.to_string().contains("trust domain \"TD\""), "{err}");
        let err = SpiffeId::new("td", "n/s", "sa").unwrap_err();
        assert!(err.to_string().contains("namespace \"n/s\""), "{err}");
        let err = SpiffeId::new("td", "ns", "").unwrap_err();
        assert!(
            err.to_string().contains("service account \"\" is empty"),
            "{err}"
        );
    }

    #[test]
    fn validate_trust_domain_checks_alone() {
        assert!(validate_trust_domain("cluster.local").is_ok());
        assert!(validate_trust_domain("").is_err());
        assert!(validate_trust_domain("a/b").is_err());
    }

    #[test]
    fn serde_uses_the_uri_string() {
        let id = SpiffeId::new("cluster.local", "default", "web").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"spiffe://cluster.local/ns/default/sa/web\"");
        assert_eq!(serde_json::from_str::<SpiffeId>(&json).unwrap(), id);
        let err = serde_json::from_str::<SpiffeId>("\"spiffe://td/ns/a\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("/ns/<namespace>/sa/<service-account>"),
            "{err}"
        );
        assert!(serde_json::from_str::<SpiffeId>("42").is_err());
    }

    #[test]
    fn orders_by_trust_domain_then_namespace_then_account() {
        let a = SpiffeId::new("a", "z", "z").unwrap();
        let b = SpiffeId::new("b", "a", "a").unwrap();
        let c = SpiffeId::new("b", "a", "b").unwrap();
        assert!(a < b && b < c);
    }
}
