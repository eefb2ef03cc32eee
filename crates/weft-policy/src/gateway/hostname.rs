//! Host names of Gateway listeners and routes, by the Gateway API's rules.
//!
//! A listener or route hostname is exact (`shop.example.com`) or has one leading
//! wildcard label (`*.example.com`), which stands for one or more labels: it matches
//! `a.example.com` and `a.b.example.com`, never `example.com` itself. A listener without
//! a hostname serves any. A route attaches to a listener only where their hostnames
//! intersect, and serves there only the intersecting ones ([`on_listener`]).
//! Comparisons ignore ASCII case (validation asks for lowercase anyway).

use std::net::IpAddr;

use crate::field;

/// Whether `name` may be a listener or route hostname: a DNS name (lowercase RFC 1123
/// labels) with an optional leading `*.` label; no IP address, port or lone `*`.
pub(crate) fn is_valid(name: &str) -> bool {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    name.parse::<IpAddr>().is_err() && field::is_subdomain(rest)
}

/// Whether `host` (a request's `Host` or SNI, or an exact hostname) is one `pattern`
/// serves. No pattern: any host.
pub(crate) fn matches(pattern: Option<&str>, host: &str) -> bool {
    let Some(pattern) = pattern else {
        return true;
    };
    match pattern.strip_prefix('*') {
        // `suffix` is `.example.com`: at least one whole label must come before it.
        Some(suffix) => {
            let (host, suffix) = (host.as_bytes(), suffix.as_bytes());
            let Some(cut) = host.len().checked_sub(suffix.len()) else {
                return false;
            };
            let (labels, tail) = host.split_at(cut);
            tail.eq_ignore_ascii_case(suffix)
                && !labels.is_empty()
                && labels.split(|b| *b == b'.').all(|label| !label.is_empty())
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// What one route hostname and a listener's hostname share: the more specific of the
/// two when one contains the other (`*.example.com` and `shop.example.com` share
/// `shop.example.com`; `*.example.com` and `*.eu.example.com` share
/// `*.eu.example.com`), `None` when they share nothing.
pub(crate) fn intersect(listener: Option<&str>, route: &str) -> Option<String> {
    let Some(listener) = listener else {
        return Some(route.to_owned());
    };
    let wildcard = |h: &str| h.starts_with("*.");
    let shared = match (wildcard(listener), wildcard(route)) {
        (false, false) => listener.eq_ignore_ascii_case(route).then_some(route),
        (false, true) => matches(Some(route), listener).then_some(listener),
        (true, false) => matches(Some(listener), route).then_some(route),
        // Both wildcards: the narrower one, if the wider one covers it (`*.eu.example.com`
        // is covered by `*.example.com` because `eu.example.com`'s labels are).
        (true, true) => {
            let (l, r) = (&listener[2..], &route[2..]);
            if l.eq_ignore_ascii_case(r) || matches(Some(listener), r) {
                Some(route)
            } else if matches(Some(route), l) {
                Some(listener)
            } else {
                None
            }
        }
    };
    shared.map(str::to_ascii_lowercase)
}

/// The hostnames a route serves on a listener: the intersections of its hostnames
/// with the listener's (a route hostname the listener does not serve is ignored), the
/// listener's own when the route has none, and an empty list for "any host". `None`
/// when the route has hostnames and none intersects: it does not attach there.
pub(crate) fn on_listener(listener: Option<&str>, route: &[String]) -> Option<Vec<String>> {
    if route.is_empty() {
        return Some(listener.map(str::to_owned).into_iter().collect());
    }
    let mut shared: Vec<String> = route
        .iter()
        .filter_map(|r| intersect(listener, r))
        .collect();
    shared.sort();
    shared.dedup();
    (!shared.is_empty()).then_some(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_dns_names_with_at_most_one_leading_wildcard_label() {
        for ok in [
            "example.com",
            "shop.example.com",
            "*.example.com",
            "localhost",
            "*.a.b.c",
        ] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "*",
            "*.",
            "**.example.com",
            "a.*.example.com",
            "*.*.example.com",
            "Shop.example.com",
            "example.com:443",
            "10.0.0.1",
            "::1",
            "shop_1.example.com",
            "example.com.",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn a_wildcard_matches_one_or_more_labels_before_its_suffix_and_never_the_suffix_itself() {
        let cases = [
            (None, "anything.example.org", true),
            (Some("shop.example.com"), "shop.example.com", true),
            (Some("shop.example.com"), "SHOP.Example.com", true),
            (Some("shop.example.com"), "api.example.com", false),
            (Some("shop.example.com"), "shop.example.com.evil", false),
            (Some("*.example.com"), "shop.example.com", true),
            (Some("*.example.com"), "a.b.example.com", true),
            (Some("*.example.com"), "Shop.EXAMPLE.com", true),
            (Some("*.example.com"), "example.com", false),
            (Some("*.example.com"), ".example.com", false),
            (Some("*.example.com"), "a..example.com", false),
            (Some("*.example.com"), "shopexample.com", false),
            (Some("*.example.com"), "shop.example.org", false),
            (Some("*.example.com"), "com", false),
        ];
        for (pattern, host, want) in cases {
            assert_eq!(matches(pattern, host), want, "{pattern:?} vs {host}");
        }
    }

    #[test]
    fn listener_and_route_hostnames_intersect_in_the_more_specific_one() {
        let cases = [
            (None, "shop.example.com", Some("shop.example.com")),
            (None, "*.example.com", Some("*.example.com")),
            (
                Some("shop.example.com"),
                "shop.example.com",
                Some("shop.example.com"),
            ),
            (Some("shop.example.com"), "api.example.com", None),
            // A listener for one name takes a route for a wildcard covering it.
            (
                Some("test.example.com"),
                "*.example.com",
                Some("test.example.com"),
            ),
            (Some("example.com"), "*.example.com", None),
            // A wildcard listener takes the route names it covers.
            (
                Some("*.example.com"),
                "test.example.com",
                Some("test.example.com"),
            ),
            (
                Some("*.example.com"),
                "foo.test.example.com",
                Some("foo.test.example.com"),
            ),
            (Some("*.example.com"), "example.com", None),
            (Some("*.example.com"), "test.example.net", None),
            // Two wildcards: the narrower.
            (
                Some("*.example.com"),
                "*.example.com",
                Some("*.example.com"),
            ),
            (
                Some("*.example.com"),
                "*.eu.example.com",
                Some("*.eu.example.com"),
            ),
            (
                Some("*.eu.example.com"),
                "*.example.com",
                Some("*.eu.example.com"),
            ),
            (Some("*.example.com"), "*.example.net", None),
            (Some("*.eu.example.com"), "*.us.example.com", None),
        ];
        for (listener, route, want) in cases {
            assert_eq!(
                intersect(listener, route).as_deref(),
                want,
                "{listener:?} ∩ {route}"
            );
        }
    }

    /// A listener hostname, route hostnames, and what the route serves there.
    type Case<'a> = (Option<&'a str>, Vec<String>, Option<Vec<String>>);

    #[test]
    fn a_route_serves_on_a_listener_only_the_hostnames_they_share() {
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let cases: [Case<'_>; 6] = [
            // No route hostnames: the listener's, or any.
            (None, vec![], Some(vec![])),
            (
                Some("*.example.com"),
                vec![],
                Some(names(&["*.example.com"])),
            ),
            // Names the listener does not serve are ignored, not fatal.
            (
                Some("*.example.com"),
                names(&["test.example.com", "test.example.net"]),
                Some(names(&["test.example.com"])),
            ),
            (
                None,
                names(&["b.example.com", "a.example.com", "b.example.com"]),
                Some(names(&["a.example.com", "b.example.com"])),
            ),
            // Nothing shared: no attachment.
            (Some("shop.example.com"), names(&["api.example.com"]), None),
            (
                Some("shop.example.com"),
                names(&["*.example.com", "*.example.net"]),
                Some(names(&["shop.example.com"])),
            ),
        ];
        for (listener, route, want) in cases {
            assert_eq!(
                on_listener(listener, &route),
                want,
                "{listener:?} / {route:?}"
            );
        }
    }
}
