//! Where a request carries its token (`fromHeaders`, `fromCookies`): finding it, and
//! removing it before the request is forwarded.
//!
//! A header location takes the values of its header that start with its prefix
//! (matched case-insensitively, as auth schemes are; other values, such as a `Basic`
//! credential in `Authorization`, are not tokens and are left alone). A request that
//! carries two different tokens is refused rather than have one verified and another
//! read by the backend.

use http::header::{HeaderMap, HeaderName, HeaderValue, COOKIE};

use super::provider::FromHeader;
use super::Error;

/// The places a provider reads tokens from, in order.
#[derive(Clone, Debug)]
pub(super) struct Locations {
    headers: Vec<(HeaderName, String)>,
    cookies: Vec<String>,
}

// === impl Locations ===

impl Locations {
    /// From validated config; `None` if a header name does not parse.
    pub(super) fn build(from_headers: &[FromHeader], from_cookies: &[String]) -> Option<Self> {
        let headers = from_headers
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.name.as_bytes())
                    .ok()
                    .map(|name| (name, h.prefix.clone()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            headers,
            cookies: from_cookies.to_vec(),
        })
    }

    /// The token the request carries, if any; [`Error::Ambiguous`] if it carries two
    /// different ones.
    pub(super) fn find<'a>(&self, request: &'a HeaderMap) -> Result<Option<&'a str>, Error> {
        let mut found: Option<&'a str> = None;
        let mut take = |token: &'a str| -> Result<(), Error> {
            match found {
                Some(previous) if previous != token => Err(Error::Ambiguous),
                _ => {
                    found = Some(token);
                    Ok(())
                }
            }
        };
        for (name, prefix) in &self.headers {
            for value in request.get_all(name) {
                if let Some(token) = value.to_str().ok().and_then(|v| strip_prefix(v, prefix)) {
                    take(token)?;
                }
            }
        }
        if !self.cookies.is_empty() {
            for (name, value) in cookies(request) {
                if self.cookies.iter().any(|c| c == name) {
                    take(value)?;
                }
            }
        }
        Ok(found)
    }

    /// Removes every token from where it can be found: the matching values of each
    /// header location and the named cookies; other values and cookies stay.
    pub(super) fn strip(&self, request: &mut HeaderMap) {
        for (name, prefix) in &self.headers {
            let carries = |v: &HeaderValue| {
                v.to_str()
                    .ok()
                    .and_then(|v| strip_prefix(v, prefix))
                    .is_some()
            };
            if !request.get_all(name).iter().any(carries) {
                continue;
            }
            let kept: Vec<HeaderValue> = request
                .get_all(name)
                .iter()
                .filter(|v| !carries(v))
                .cloned()
                .collect();
            request.remove(name);
            for value in kept {
                request.append(name.clone(), value);
            }
        }
        if self.cookies.is_empty()
            || !cookies(request).any(|(name, _)| self.cookies.iter().any(|c| c == name))
        {
            return;
        }
        let kept: Vec<HeaderValue> = request
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| {
                let text = value.to_str().ok()?;
                let rest: Vec<&str> = text
                    .split(';')
                    .map(str::trim)
                    .filter(|pair| {
                        let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
                        !pair.is_empty() && !self.cookies.iter().any(|c| c == name)
                    })
                    .collect();
                if rest.is_empty() {
                    None
                } else {
                    HeaderValue::from_str(&rest.join("; ")).ok()
                }
            })
            .collect();
        request.remove(COOKIE);
        for value in kept {
            request.append(COOKIE, value);
        }
    }
}

/// The rest of `value` after `prefix` (ASCII case-insensitive), trimmed.
fn strip_prefix<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| value[prefix.len()..].trim())
}

/// Every `name=value` pair of the request's `Cookie` headers (HTTP/2 may split them),
/// quotes around the value removed.
fn cookies(request: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    request
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some((name, value.trim_matches('"')))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locations(headers: &[(&str, &str)], cookies: &[&str]) -> Locations {
        let from_headers: Vec<FromHeader> = headers
            .iter()
            .map(|(name, prefix)| FromHeader {
                name: (*name).into(),
                prefix: (*prefix).into(),
            })
            .collect();
        let from_cookies: Vec<String> = cookies.iter().map(|c| (*c).to_owned()).collect();
        Locations::build(&from_headers, &from_cookies).expect("valid names")
    }

    fn request(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    #[test]
    fn finds_a_bearer_token_case_insensitively_and_ignores_other_schemes() {
        let bearer = locations(&[("authorization", "Bearer ")], &[]);
        let req = request(&[("Authorization", "bearer abc.def.ghi")]);
        assert_eq!(bearer.find(&req), Ok(Some("abc.def.ghi")));
        let req = request(&[("authorization", "Basic dXNlcjpwdw==")]);
        assert_eq!(bearer.find(&req), Ok(None));
        assert_eq!(bearer.find(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn finds_a_token_in_a_cookie_after_the_headers() {
        let both = locations(&[("authorization", "Bearer ")], &["session"]);
        let req = request(&[("cookie", "theme=dark; session=\"a.b.c\"")]);
        assert_eq!(both.find(&req), Ok(Some("a.b.c")));
        let req = request(&[
            ("cookie", "session=a.b.c"),
            ("authorization", "Bearer a.b.c"),
        ]);
        assert_eq!(
            both.find(&req),
            Ok(Some("a.b.c")),
            "the same token twice is one token"
        );
    }

    #[test]
    fn refuses_two_different_tokens() {
        let both = locations(&[("authorization", "Bearer ")], &["session"]);
        let req = request(&[
            ("cookie", "session=x.y.z"),
            ("authorization", "Bearer a.b.c"),
        ]);
        assert_eq!(both.find(&req), Err(Error::Ambiguous));
        let req = request(&[
            ("authorization", "Bearer a.b.c"),
            ("authorization", "Bearer x.y.z"),
        ]);
        assert_eq!(both.find(&req), Err(Error::Ambiguous));
    }

    #[test]
    fn strips_tokens_and_keeps_other_values_and_cookies() {
        let both = locations(
            &[("authorization", "Bearer "), ("x-token", "")],
            &["session"],
        );
        let mut req = request(&[
            ("authorization", "Bearer a.b.c"),
            ("authorization", "Basic dXNlcjpwdw=="),
            ("x-token", "a.b.c"),
            ("cookie", "theme=dark; session=a.b.c; lang=en"),
            ("cookie", "session=a.b.c"),
            ("x-other", "kept"),
        ]);
        both.strip(&mut req);
        let all = |name: &str| -> Vec<&str> {
            req.get_all(name)
                .iter()
                .map(|v| v.to_str().expect("ascii"))
                .collect()
        };
        assert_eq!(all("authorization"), vec!["Basic dXNlcjpwdw=="]);
        assert!(all("x-token").is_empty());
        assert_eq!(all("cookie"), vec!["theme=dark; lang=en"]);
        assert_eq!(all("x-other"), vec!["kept"]);
        assert_eq!(both.find(&req), Ok(None));
    }
}
