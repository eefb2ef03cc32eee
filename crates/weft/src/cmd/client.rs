//! The CLI's HTTP client for the control plane API: HTTP/1.1 over TLS (hyper-util's
//! pooled client with our connector), with connect and request timeouts, and API
//! errors decoded into [`ApiError`]. The one place that knows how to reach the control
//! plane.
//!
//! The control plane's certificate is verified against the mesh CA file (`--ca-file`,
//! `$WEFT_CA_FILE`, `caFile:` in the config file, else `ca.crt` of the control plane's
//! default data directory), and it must carry the control plane's SPIFFE identity;
//! the host name dialled does not matter. `http://` is refused: the control plane
//! serves TLS only.
//!
//! Every request carries an operator token (`Authorization: Bearer`) from, in
//! order: `--token` / `$WEFT_TOKEN`, `token:` in ~/.config/weft/config.yaml, else none.
//! A `401` or `403` ends the command with a hint to `weft token admin`.

use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as Pool;
use hyper_util::rt::TokioExecutor;
use weft_proxy::control_plane::channel::Connector;

use super::config::{self, Origin, TokenFrom};

/// How to reach the control plane; flattened into every command that talks to it.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnectArgs {
    /// The control plane's HTTP API. Default: `controlPlane` in
    /// ~/.config/weft/config.yaml, else https://127.0.0.1:5681.
    #[arg(long, env = "WEFT_CONTROL_PLANE", value_name = "URL")]
    control_plane: Option<String>,
    /// An operator token: the admin token `weft token admin` prints on the
    /// control-plane host, or one `weft token admin create` made.
    /// Default: `token` in ~/.config/weft/config.yaml.
    #[arg(long, env = "WEFT_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The mesh CA certificate (PEM) to verify the control plane with. Default:
    /// `caFile` in ~/.config/weft/config.yaml, else `ca.crt` in the control plane's
    /// default data directory.
    #[arg(long, env = "WEFT_CA_FILE", value_name = "FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// How long to wait for a TCP connection.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// How long to wait for a whole response.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
}

/// A client of one control plane.
pub(crate) struct Client {
    base: String,
    origin: Origin,
    /// `Authorization` value and where the token came from.
    auth: Option<(http::HeaderValue, TokenFrom)>,
    pool: Pool<Connector, Full<Bytes>>,
    request_timeout: Duration,
    /// The CA file that vouches for the control plane, for the hint when it does not.
    ca_file: std::path::PathBuf,
}

/// A response, body read.
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

/// An error answered by the API (`{"error":{…}}`).
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) reason: String,
    pub(crate) message: String,
    /// `{"document"?, "kind"?, "namespace"?, "name"?, "path", "message"}` each.
    pub(crate) details: Vec<serde_json::Value>,
}

// === impl ConnectArgs ===

impl ConnectArgs {
    /// Settings given in full, not read from flags, environment or the config file: for
    /// a command that runs its own control plane (`weft quickstart`).
    pub(crate) fn explicit(
        control_plane: String,
        token: String,
        ca_file: std::path::PathBuf,
    ) -> ConnectArgs {
        ConnectArgs {
            control_plane: Some(control_plane),
            token: Some(token),
            ca_file: Some(ca_file),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

// === impl Client ===

impl Client {
    /// A client for the control plane named by `args` (or the config file, or the
    /// default).
    pub(crate) fn new(args: &ConnectArgs) -> anyhow::Result<Client> {
        let (url, origin) = config::control_plane(args.control_plane.clone())?;
        let uri: Uri = url
            .parse()
            .with_context(|| format!("control plane address {url:?} is not a URL"))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") => anyhow::bail!(
                "control plane address {url}: the control plane serves TLS only; use https://"
            ),
            _ => anyhow::bail!(
                "control plane address {url:?} needs a scheme, e.g. https://127.0.0.1:5681"
            ),
        }
        if uri.authority().is_none() {
            anyhow::bail!("control plane address {url:?} names no host");
        }
        let ca_file = config::ca_file(args.ca_file.clone())?;
        let pem = std::fs::read_to_string(&ca_file).with_context(|| {
            format!(
                "reading the mesh CA certificate {} to verify the control plane with \
                 (copy <data-dir>/ca.crt from the control-plane host; give it with --ca-file, \
                 $WEFT_CA_FILE or caFile: in ~/.config/weft/config.yaml)",
                ca_file.display()
            )
        })?;
        let roots = weft_tls::TrustBundle::from_pem(&pem)
            .with_context(|| format!("{} holds no usable CA certificate", ca_file.display()))?
            .root_store();
        let tls = weft_tls::control::client_config(roots, &[b"http/1.1"])?;
        let connector = Connector::new(tls, args.connect_timeout);
        let pool = Pool::builder(TokioExecutor::new()).build(connector);
        let auth = match config::token(args.token.clone())? {
            None => None,
            Some((token, from)) => {
                let mut value =
                    http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        anyhow::anyhow!(
                            "the token {} has characters not allowed in an HTTP header",
                            match &from {
                                TokenFrom::Flag => "from --token / WEFT_TOKEN".to_owned(),
                                TokenFrom::File(path) => format!("in {}", path.display()),
                            }
                        )
                    })?;
                value.set_sensitive(true);
                Some((value, from))
            }
        };
        Ok(Client {
            base: url.trim_end_matches('/').to_owned(),
            origin,
            auth,
            pool,
            request_timeout: args.request_timeout,
            ca_file,
        })
    }

    /// Sends a request; `body` is `(content type, bytes)`. Any status is returned; only
    /// failing to get a response is an error.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Bytes)>,
    ) -> anyhow::Result<Response> {
        let url = format!("{}{path}", self.base);
        let request = self.request(&method, &url, "application/json", body)?;
        let exchange = async {
            let response = self.pool.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Response { status, body })
        };
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Ok(Ok(response))
                if matches!(
                    response.status,
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ) =>
            {
                Err(self.refused(&response, !matches!(method, Method::GET | Method::HEAD)))
            }
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(self.unreachable(&*e)),
            Err(_) => Err(anyhow::anyhow!(
                "{method} {url}: no response within {}; the control plane may be overloaded (raise --request-timeout)",
                humantime::format_duration(self.request_timeout)
            )),
        }
    }

    /// `GET path`, expecting `200` and JSON.
    pub(crate) async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let response = self.send(Method::GET, path, None).await?;
        response.json()
    }

    /// `GET path` for an answer that streams (`application/x-ndjson`: a tap): its body,
    /// to read as it comes, once its head arrived within the request timeout (the body
    /// has none). A `401` or `403` ends with the hint for an admin token, which a tap
    /// needs; another error status, with the API's error.
    pub(crate) async fn stream(&self, path: &str) -> anyhow::Result<hyper::body::Incoming> {
        let url = format!("{}{path}", self.base);
        let request = self.request(
            &Method::GET,
            &url,
            "application/x-ndjson, application/json;q=0.9",
            None,
        )?;
        let head = match tokio::time::timeout(self.request_timeout, self.pool.request(request))
            .await
        {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(self.unreachable(&e)),
            Err(_) => anyhow::bail!(
                "GET {url}: no answer within {}; the control plane may be overloaded (raise --request-timeout)",
                humantime::format_duration(self.request_timeout)
            ),
        };
        let status = head.status();
        if status.is_success() {
            return Ok(head.into_body());
        }
        // An error: its body is short and whole.
        let body = tokio::time::timeout(self.request_timeout, head.into_body().collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        let response = Response { status, body };
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(self.refused(&response, true));
        }
        Err(response.error().into())
    }

    /// A request to `url` with the token, accepting `accept`; `body` is `(content type,
    /// bytes)`.
    fn request(
        &self,
        method: &Method,
        url: &str,
        accept: &'static str,
        body: Option<(&str, Bytes)>,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(url)
            .header(http::header::ACCEPT, accept);
        if let Some((value, _)) = &self.auth {
            request = request.header(http::header::AUTHORIZATION, value.clone());
        }
        let body = match body {
            Some((content_type, bytes)) => {
                request = request.header(http::header::CONTENT_TYPE, content_type);
                Full::new(bytes)
            }
            None => Full::new(Bytes::new()),
        };
        request
            .body(body)
            .with_context(|| format!("building {method} {url}"))
    }

    /// The error for a `401` or `403`: what the API said, and how to get the token;
    /// `admin` when only an admin token may do what was asked (a write, a tap).
    fn refused(&self, response: &Response, admin: bool) -> anyhow::Error {
        let error = response.error();
        let given = match &self.auth {
            None => "no operator token was given".to_owned(),
            Some((_, TokenFrom::Flag)) => {
                "the token from --token / WEFT_TOKEN was refused".to_owned()
            }
            Some((_, TokenFrom::File(path))) => {
                format!("the token from `token:` in {} was refused", path.display())
            }
        };
        let own = if admin {
            "this needs an admin token: run `weft token admin` on the control-plane host to \
             print the bootstrap admin token (or ask an admin for one of your own: \
             `weft token admin create NAME --role admin`)"
        } else {
            "run `weft token admin` on the control-plane host to print the admin token (or \
             ask an admin for a token of your own: `weft token admin create NAME`)"
        };
        anyhow::anyhow!(
            "the control plane at {} refused the request: {given}: {error}\n\
             hint: {own}, then pass it with --token TOKEN, $WEFT_TOKEN, or token: in \
             ~/.config/weft/config.yaml",
            self.base
        )
    }

    fn unreachable(&self, error: &(dyn std::error::Error + 'static)) -> anyhow::Error {
        if let Some(presented) = untrusted_issuer(error) {
            // Reachable, but vouched for by another CA: the address is fine, the CA
            // file is not.
            return anyhow::anyhow!(
                "the control plane at {} presented a certificate for {presented} that the CA \
                 file {} did not sign\n\
                 hint: that file is not this control plane's CA: copy <data-dir>/ca.crt from \
                 the control-plane host and give it with --ca-file, $WEFT_CA_FILE, or caFile \
                 in ~/.config/weft/config.yaml",
                self.base,
                self.ca_file.display()
            );
        }
        let mut cause = error.to_string();
        let mut source = error.source();
        while let Some(inner) = source {
            let text = inner.to_string();
            if !cause.contains(&text) {
                cause = format!("{cause}: {text}");
            }
            source = inner.source();
        }
        let from = match &self.origin {
            Origin::Flag => "from --control-plane / WEFT_CONTROL_PLANE".to_owned(),
            Origin::File(path) => format!("from {}", path.display()),
            Origin::Default => "the default".to_owned(),
        };
        anyhow::anyhow!(
            "cannot reach the control plane at {} ({from}): {cause}\n\
             hint: is `weft control-plane` running there? Point the CLI at another address with \
             --control-plane URL, $WEFT_CONTROL_PLANE, or controlPlane in ~/.config/weft/config.yaml",
            self.base
        )
    }
}

/// The identity a server presented with a certificate no trusted CA signed, if that is
/// what failed the TLS handshake somewhere in `error`'s chain.
fn untrusted_issuer(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        // io::Error's `source()` skips the error it wraps: look inside.
        let tls = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(weft_tls::verify::Error::UntrustedIssuer { presented }) =
            tls.and_then(weft_tls::verify::Error::from_rustls)
        {
            return Some(presented.clone());
        }
        next = e.source();
    }
    None
}

// === impl Response ===

impl Response {
    /// Whether the status is 2xx.
    pub(crate) fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body as JSON when the status is 2xx, else the API's error.
    pub(crate) fn json(&self) -> anyhow::Result<serde_json::Value> {
        if !self.is_success() {
            return Err(self.error().into());
        }
        serde_json::from_slice(&self.body).context("the control plane answered with invalid JSON")
    }

    /// The API error this response carries (or one made from its status and text).
    pub(crate) fn error(&self) -> ApiError {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&self.body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let text = |field: &str| {
            error
                .and_then(|e| e.get(field))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        ApiError {
            code: self.status.as_u16(),
            reason: text("reason")
                .unwrap_or_else(|| self.status.canonical_reason().unwrap_or("Error").to_owned()),
            message: text("message")
                .unwrap_or_else(|| String::from_utf8_lossy(&self.body).trim().to_owned()),
            details: error
                .and_then(|e| e.get("details"))
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default(),
        }
    }
}

// === impl ApiError ===

impl ApiError {
    /// Whether the API answered `404`.
    pub(crate) fn is_not_found(&self) -> bool {
        self.code == 404
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} {})", self.message, self.code, self.reason)?;
        for detail in &self.details {
            let path = detail["path"].as_str().unwrap_or_default();
            let message = detail["message"].as_str().unwrap_or_default();
            write!(f, "\n  {path}: {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// Runs `future` on a single-threaded runtime: CLI commands make a few requests and
/// exit.
pub(crate) fn block_on<T>(
    future: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(future)
}

/// Percent-encodes a query-string value.
pub(crate) fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query("app=web,!env"), "app%3Dweb%2C%21env");
        assert_eq!(encode_query("a-b_c.d~"), "a-b_c.d~");
    }

    #[test]
    fn api_errors_carry_message_reason_and_details() {
        let response = Response {
            status: StatusCode::BAD_REQUEST,
            body: Bytes::from_static(
                br#"{"error":{"code":400,"reason":"Invalid","message":"bad","details":[{"path":"spec.x","message":"unknown"}]}}"#,
            ),
        };
        let error = response.error();
        assert_eq!(error.reason, "Invalid");
        assert_eq!(error.to_string(), "bad (400 Invalid)\n  spec.x: unknown");
    }

    #[test]
    fn non_json_errors_keep_the_body_text() {
        let response = Response {
            status: StatusCode::BAD_GATEWAY,
            body: Bytes::from_static(b"upstream down\n"),
        };
        assert_eq!(
            response.error().to_string(),
            "upstream down (502 Bad Gateway)"
        );
    }
}
