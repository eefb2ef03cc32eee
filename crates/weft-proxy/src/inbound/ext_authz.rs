//! External authorization: a `custom` rule's provider, an Envoy ext_authz server
//! (`envoy.service.auth.v3.Authorization/Check`, e.g. OPA's Envoy plugin), asked
//! about one request before it is served.
//!
//! The check carries what Envoy's filter sends: the caller's SPIFFE ID as the source
//! principal, this workload's as the destination's, and the request's method, path
//! (normalised, with its query), host, scheme, protocol and headers (lower-case names,
//! repeated values joined with `,`, and the `:method`, `:path`, `:authority` and
//! `:scheme` pseudo-headers). An `OK` answer serves the request with the headers it
//! asks to add or remove; a denial is answered with the server's status (403 if it
//! gives none), headers and body. A server that cannot answer within the provider's
//! timeout refuses the request with 403, unless the provider is `failOpen`. Answers
//! are never cached: the protocol has no way for a server to say an answer may be.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tonic::transport::{Channel, Endpoint};
use weft_api::proxy::ExtAuthz;

use crate::error::{Error, ExtDenial};
use crate::telemetry::{Metrics, Name};

/// One gRPC client per provider address, kept across config changes.
#[derive(Debug, Default)]
pub struct Clients {
    by_address: Mutex<HashMap<SocketAddr, AuthorizationClient<Channel>>>,
}

/// What the check is about, besides the request.
pub struct Context<'a> {
    /// The rule's source, for metrics and logs.
    pub permission: &'a Name,
    /// The caller's SPIFFE ID (`None`: plaintext).
    pub caller: Option<&'a str>,
    /// This workload's SPIFFE ID.
    pub own: Option<&'a str>,
}

impl Clients {
    fn client(&self, provider: &ExtAuthz) -> Result<AuthorizationClient<Channel>, String> {
        let mut map = self
            .by_address
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = map.get(&provider.address) {
            return Ok(c.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{}", provider.address))
            .map_err(|e| e.to_string())?
            .connect_timeout(provider.timeout)
            .connect_lazy();
        let client = AuthorizationClient::new(channel);
        map.insert(provider.address, client.clone());
        Ok(client)
    }

    /// Asks `provider` about `req`: `Ok` to serve it (with the provider's header edits
    /// applied), or the refusal to answer with.
    pub async fn check<B>(
        &self,
        provider: &ExtAuthz,
        req: &mut http::Request<B>,
        cx: &Context<'_>,
        metrics: &Metrics,
    ) -> Result<(), Error> {
        let check = check_request(req, cx);
        let answer = match self.client(provider) {
            Ok(mut client) => {
                match tokio::time::timeout(provider.timeout, client.check(check)).await {
                    Ok(Ok(resp)) => Ok(resp.into_inner()),
                    Ok(Err(status)) => Err(format!("{}: {}", status.code(), status.message())),
                    Err(_) => Err(format!("no answer within {:?}", provider.timeout)),
                }
            }
            Err(e) => Err(e),
        };
        let answer = match answer {
            Ok(a) => a,
            Err(why) => {
                metrics.authz(cx.permission, "custom", "error");
                if provider.fail_open {
                    tracing::warn!(provider = %provider.name, %why, "external authorization failed; serving (failOpen)");
                    return Ok(());
                }
                tracing::warn!(provider = %provider.name, %why, "external authorization failed; refusing");
                return Err(Error::Denied);
            }
        };
        match verdict(answer) {
            Verdict::Allow { add, remove } => {
                metrics.authz(cx.permission, "custom", "allowed");
                let headers = req.headers_mut();
                for name in remove {
                    headers.remove(name);
                }
                for (name, value, append) in add {
                    if append {
                        headers.append(name, value);
                    } else {
                        headers.insert(name, value);
                    }
                }
                Ok(())
            }
            Verdict::Deny(denial) => {
                metrics.authz(cx.permission, "custom", "denied");
                tracing::info!(
                    caller = cx.caller.unwrap_or("unauthenticated"),
                    provider = %provider.name,
                    permission = %cx.permission.0,
                    status = denial.status.as_u16(),
                    "denied by the external authorization server"
                );
                Err(Error::ExtDenied(Box::new(denial)))
            }
        }
    }
}

/// The check Envoy's filter would send for `req`.
fn check_request<B>(req: &http::Request<B>, cx: &Context<'_>) -> CheckRequest {
    let mut headers: HashMap<String, String> = HashMap::with_capacity(req.headers().len() + 4);
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| headers.get("host").cloned())
        .unwrap_or_default();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned());
    let scheme = req.uri().scheme_str().unwrap_or("http").to_owned();
    headers.insert(":method".into(), req.method().as_str().to_owned());
    headers.insert(":path".into(), path.clone());
    headers.insert(":authority".into(), host.clone());
    headers.insert(":scheme".into(), scheme.clone());
    let protocol = match req.version() {
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                principal: cx.caller.unwrap_or_default().to_owned(),
                ..Peer::default()
            }),
            destination: Some(Peer {
                principal: cx.own.unwrap_or_default().to_owned(),
                ..Peer::default()
            }),
            request: Some(Request {
                http: Some(HttpRequest {
                    method: req.method().as_str().to_owned(),
                    headers,
                    path,
                    host,
                    scheme,
                    protocol: protocol.to_owned(),
                    size: -1,
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            context_extensions: HashMap::from([(
                "permission".to_owned(),
                cx.permission.0.to_string(),
            )]),
            ..AttributeContext::default()
        }),
    }
}

/// A header edit the server asked for: name, value, append (else replace).
type HeaderEdit = (HeaderName, HeaderValue, bool);

enum Verdict {
    Allow {
        add: Vec<HeaderEdit>,
        remove: Vec<HeaderName>,
    },
    Deny(ExtDenial),
}

/// What the server's answer means. A status other than `OK` (0) denies; header edits
/// a proxy cannot apply (invalid names or values) are skipped.
fn verdict(resp: CheckResponse) -> Verdict {
    let ok = resp.status.as_ref().is_none_or(|s| s.code == 0);
    if ok {
        let (add, remove) = match resp.http_response {
            Some(HttpResponse::OkResponse(ok)) => (
                edits(&ok.headers),
                ok.headers_to_remove
                    .iter()
                    .filter_map(|n| HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).ok())
                    .collect(),
            ),
            _ => (Vec::new(), Vec::new()),
        };
        return Verdict::Allow { add, remove };
    }
    let mut denial = ExtDenial {
        status: StatusCode::FORBIDDEN,
        headers: HeaderMap::new(),
        body: Bytes::new(),
    };
    if let Some(HttpResponse::DeniedResponse(d)) = resp.http_response {
        if let Some(code) = d
            .status
            .and_then(|s| u16::try_from(s.code).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .filter(|c| c.is_client_error() || c.is_server_error())
        {
            denial.status = code;
        }
        for (name, value, append) in edits(&d.headers) {
            if append {
                denial.headers.append(name, value);
            } else {
                denial.headers.insert(name, value);
            }
        }
        denial.body = Bytes::from(d.body);
    }
    Verdict::Deny(denial)
}

fn edits(options: &[HeaderValueOption]) -> Vec<HeaderEdit> {
    options
        .iter()
        .filter_map(|o| {
            let h = o.header.as_ref()?;
            let name = HeaderName::from_bytes(h.key.to_ascii_lowercase().as_bytes()).ok()?;
            let value = if h.raw_value.is_empty() {
                HeaderValue::from_str(&h.value).ok()?
            } else {
                HeaderValue::from_bytes(&h.raw_value).ok()?
            };
            // `append_action` 0 is "append if it exists, or add"; servers that predate
            // it (OPA's plugin among them) still say `append: false` to replace.
            #[allow(deprecated)]
            let append = o.append.as_ref().is_none_or(|a| a.value) && o.append_action == 0;
            Some((name, value, append))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::HeaderValue as EnvoyHeader;
    use envoy_types::pb::envoy::r#type::v3::HttpStatus;
    use envoy_types::pb::envoy::service::auth::v3::{DeniedHttpResponse, OkHttpResponse};
    use envoy_types::pb::google::rpc::Status;

    use super::*;

    fn header(key: &str, value: &str, append: Option<bool>) -> HeaderValueOption {
        HeaderValueOption {
            header: Some(EnvoyHeader {
                key: key.into(),
                value: value.into(),
                ..EnvoyHeader::default()
            }),
            #[allow(deprecated)]
            append: append.map(|value| envoy_types::pb::google::protobuf::BoolValue { value }),
            ..HeaderValueOption::default()
        }
    }

    #[test]
    fn the_check_carries_the_caller_the_request_and_its_headers_as_envoy_sends_them() {
        let req = http::Request::post("/items?x=1")
            .header("host", "catalog.shop")
            .header("x-a", "1")
            .header("x-a", "2")
            .body(())
            .expect("request");
        let name = Name("TrafficPermission/shop/opa".into());
        let cx = Context {
            permission: &name,
            caller: Some("spiffe://cluster.local/ns/web/sa/frontend"),
            own: Some("spiffe://cluster.local/ns/shop/sa/catalog"),
        };
        let check = check_request(&req, &cx);
        let a = check.attributes.expect("attributes");
        assert_eq!(
            a.source.expect("source").principal,
            "spiffe://cluster.local/ns/web/sa/frontend"
        );
        assert_eq!(
            a.destination.expect("destination").principal,
            "spiffe://cluster.local/ns/shop/sa/catalog"
        );
        let http = a.request.expect("request").http.expect("http");
        assert_eq!(
            (http.method.as_str(), http.path.as_str()),
            ("POST", "/items?x=1")
        );
        assert_eq!(http.host, "catalog.shop");
        assert_eq!(http.headers["x-a"], "1,2");
        assert_eq!(http.headers[":path"], "/items?x=1");
        assert_eq!(
            a.context_extensions["permission"],
            "TrafficPermission/shop/opa"
        );
    }

    #[test]
    fn ok_allows_with_edits_and_anything_else_denies_with_the_servers_answer() {
        let ok = CheckResponse {
            status: Some(Status::default()),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![
                    header("x-user", "alice", Some(false)),
                    header("x-tag", "a", None),
                    header("bad name", "x", None),
                ],
                headers_to_remove: vec!["authorization".into()],
                ..OkHttpResponse::default()
            })),
            ..CheckResponse::default()
        };
        let Verdict::Allow { add, remove } = verdict(ok) else {
            panic!("OK allows");
        };
        let add: Vec<(String, bool)> = add.iter().map(|(n, _, a)| (n.to_string(), *a)).collect();
        assert_eq!(add, [("x-user".into(), false), ("x-tag".into(), true)]);
        assert_eq!(remove, [HeaderName::from_static("authorization")]);

        let denied = CheckResponse {
            status: Some(Status {
                code: 7,
                ..Status::default()
            }),
            http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus { code: 401 }),
                headers: vec![header("www-authenticate", "Bearer", Some(false))],
                body: "log in".into(),
            })),
            ..CheckResponse::default()
        };
        let Verdict::Deny(d) = verdict(denied) else {
            panic!("status 7 denies");
        };
        assert_eq!(d.status, 401);
        assert_eq!(d.headers["www-authenticate"], "Bearer");
        assert_eq!(d.body, "log in");

        let bare = CheckResponse {
            status: Some(Status {
                code: 16,
                ..Status::default()
            }),
            ..CheckResponse::default()
        };
        let Verdict::Deny(d) = verdict(bare) else {
            panic!("status 16 denies");
        };
        assert_eq!(d.status, 403, "403 when the server gives no status");
    }
}
