// Target `path`: request paths through normalisation (weft_proxy::http::path, every
// mode: never a panic, a result that normalises to itself and parses, no dot-segment
// left), routing (weft_proxy::route: path, authority and query matching, the prefix a
// rule matched) and the URL filters (weft_proxy::route::filters: URLRewrite,
// RequestRedirect, ReplacePrefixMatch).
// Included by fuzz_targets/path.rs and crates/weft-proxy/tests/fuzz_corpus.rs.

use http::{HeaderMap, Method, Request, Uri};
use weft_api::proxy as api;
use weft_proxy::route::filters;
use weft_proxy::route::{RequestView, Rule, Table};

/// Input lines: the request target (`/a/b?q=1`); the rule's path match (`=` exact,
/// `^` prefix, `~` regex, then the value); the path modifier of its filters (`F` full,
/// `P` prefix, then the value; none: none); the request's authority. Rules with a
/// rewrite (with and without a new host) and with a redirect are compiled from them and
/// applied to the request.
pub(crate) fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let target = lines.next().unwrap_or_default();
    let path_match = lines.next().unwrap_or_default();
    let modifier = lines.next().unwrap_or_default();
    let authority = lines.next().unwrap_or_default();

    let path_match = match path_match.split_at_checked(1) {
        Some(("=", v)) => Some(api::PathMatch::Exact(v.to_owned())),
        Some(("^", v)) => Some(api::PathMatch::Prefix(v.to_owned())),
        Some(("~", v)) => Some(api::PathMatch::Regex(v.to_owned())),
        _ => None,
    };
    let modifier = match modifier.split_at_checked(1) {
        Some(("F", v)) => Some(api::PathRewrite::Full(v.to_owned())),
        Some(("P", v)) => Some(api::PathRewrite::Prefix(v.to_owned())),
        _ => None,
    };
    if let (Some(api::PathMatch::Prefix(prefix)), Some(api::PathRewrite::Prefix(replacement))) =
        (&path_match, &modifier)
    {
        let _ = filters::replace_prefix(target, prefix, replacement);
    }

    // The server only hands the router targets that parse.
    let Ok(uri) = target.parse::<Uri>() else {
        return;
    };
    normalise(&uri);
    let matches = vec![api::RouteMatch {
        path: path_match,
        authority: Some(api::StringMatch::Prefix(authority.to_owned())),
        ..api::RouteMatch::default()
    }];
    let rewrite = |hostname: Option<&str>| api::Rewrite {
        hostname: hostname.map(str::to_owned),
        path: modifier.clone(),
    };
    let redirect = api::Redirect {
        scheme: None,
        hostname: None,
        path: modifier.clone(),
        port: None,
        status: 301,
    };
    let headers = HeaderMap::new();
    let view = RequestView {
        method: &Method::GET,
        uri: &uri,
        headers: &headers,
        authority,
    };
    let filters = [
        (Some(rewrite(Some(authority))), None),
        (Some(rewrite(None)), None),
        (None, Some(redirect)),
    ];
    for (rewrite, redirect) in filters {
        let rule = api::RouteRule {
            matches: matches.clone(),
            backends: vec![api::Backend {
                service: "api".to_owned(),
                port: None,
                weight: 1,
            }],
            timeout: None,
            per_try_timeout: None,
            retry: None,
            request_headers: None,
            response_headers: None,
            redirect,
            rewrite,
            mirrors: Vec::new(),
            source: None,
            rule: None,
        };
        let Ok(rule) = Rule::compile(&rule, |_| Some(())) else {
            continue;
        };
        let table = Table { rules: vec![rule] };
        let Some(rule) = table.find(&view) else {
            continue;
        };
        let prefix = rule.matched_prefix(uri.path());
        if let Some(rewrite) = &rule.rewrite {
            let (mut parts, ()) = Request::builder()
                .uri(uri.clone())
                .body(())
                .expect("a request from a parsed URI")
                .into_parts();
            let _ = rewrite.apply(&mut parts, prefix);
        }
        if let Some(redirect) = &rule.redirect {
            let _ = redirect.response_location("http", authority, &uri, prefix);
        }
    }
}

/// Every normalisation mode over `uri`'s path: what it promises the rules and the app.
fn normalise(uri: &Uri) {
    use weft_proxy::http::path;
    for mode in [
        api::PathNormalization::None,
        api::PathNormalization::Base,
        api::PathNormalization::MergeSlashes,
        api::PathNormalization::DecodeAndMergeSlashes,
    ] {
        let _ = path::without_params(uri.path());
        let Ok(once) = path::normalize(uri.path(), mode) else {
            continue;
        };
        let twice = path::normalize(&once, mode).expect("a normalised path normalises");
        assert_eq!(once, twice, "normalising twice changed {:?} ({mode:?})", uri.path());
        if mode != api::PathNormalization::None && once != "*" {
            assert!(
                !once.split('/').any(|s| s == "." || s == ".."),
                "a dot-segment survived: {once:?} from {:?}",
                uri.path()
            );
            let mut rebuilt = uri.clone();
            path::normalize_uri(&mut rebuilt, mode).expect("normalises as its path did");
            assert_eq!(rebuilt.path(), once, "the URI carries the normalised path");
        }
    }
}
