//! An Envoy external authorization server (`envoy.service.auth.v3.Authorization`) on
//! tonic, as OPA's Envoy plugin would answer: paths starting `/deny` are refused with
//! 401, a `www-authenticate` header and a body; paths starting `/slow` are answered
//! after two seconds (to run into the proxy's timeout); everything else is allowed
//! with `x-ext-authz: <caller>` added to the request. Every check is recorded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::rpc::Status;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the server was asked: the caller (source principal), method and path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// `attributes.source.principal`.
    pub caller: String,
    /// `attributes.request.http.method`.
    pub method: String,
    /// `attributes.request.http.path`.
    pub path: String,
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    checks: Arc<Mutex<Vec<Check>>>,
    stop: CancellationToken,
}

impl Server {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every check so far, in order.
    pub fn checks(&self) -> Vec<Check> {
        self.checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Service {
    checks: Arc<Mutex<Vec<Check>>>,
}

fn header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.to_owned(),
            ..HeaderValue::default()
        }),
        append_action: 2, // OVERWRITE_IF_EXISTS_OR_ADD
        ..HeaderValueOption::default()
    }
}

#[tonic::async_trait]
impl Authorization for Service {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let attributes = request.into_inner().attributes.unwrap_or_default();
        let caller = attributes.source.unwrap_or_default().principal;
        let http = attributes.request.and_then(|r| r.http).unwrap_or_default();
        self.checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Check {
                caller: caller.clone(),
                method: http.method.clone(),
                path: http.path.clone(),
            });
        if http.path.starts_with("/slow") {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let response = if http.path.starts_with("/deny") {
            CheckResponse {
                status: Some(Status {
                    code: 7,
                    ..Status::default()
                }),
                http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: Some(HttpStatus { code: 401 }),
                    headers: vec![header("www-authenticate", "Bearer realm=\"test\"")],
                    body: "denied by the test server\n".to_owned(),
                })),
                ..CheckResponse::default()
            }
        } else {
            CheckResponse {
                status: Some(Status::default()),
                http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                    headers: vec![header("x-ext-authz", &caller)],
                    ..OkHttpResponse::default()
                })),
                ..CheckResponse::default()
            }
        };
        Ok(tonic::Response::new(response))
    }
}

/// Starts the server on `addr` (port 0: any).
pub async fn spawn(addr: SocketAddr) -> std::io::Result<Server> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let checks = Arc::new(Mutex::new(Vec::new()));
    let stop = CancellationToken::new();
    let service = AuthorizationServer::new(Service {
        checks: checks.clone(),
    });
    let incoming = tokio_stream_listener(listener);
    let shutdown = stop.clone();
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "ext_authz test server stopped");
        }
    });
    Ok(Server { addr, checks, stop })
}

/// The listener's connections as the stream tonic serves.
fn tokio_stream_listener(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}
