//! The demo apps of `weft quickstart`: plain hyper and tokio servers that know nothing
//! about the mesh. They listen on their workload's loopback address, reach other
//! services through the outbound listeners of their own sidecar, and learn who called
//! them from the `x-forwarded-client-cert` header that sidecar sets.
//!
//! - `catalog` (HTTP, two versions): `GET /items` → the items, its version and caller.
//! - `inventory` (TCP, one line per request): `STOCK <item>` → `<item> <count>`.
//! - `frontend` (HTTP): `GET /` → asks `catalog` for the items and `inventory` for the
//!   stock of each, and answers with all of it plus what each hop saw of its caller.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The header the receiving sidecar sets: `By=<its ID>;URI=<the caller's ID>`.
pub(super) const XFCC: &str = "x-forwarded-client-cert";

/// How long an app waits for the service it calls.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest inventory request line, in bytes.
const MAX_LINE: u64 = 256;

/// The running demo apps; [`Apps::stop`] ends them and their connections.
pub(super) struct Apps {
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// What `frontend` calls, through its sidecar.
struct Frontend {
    catalog: SocketAddr,
    inventory: SocketAddr,
    client: Client<HttpConnector, Empty<Bytes>>,
}

// === impl Apps ===

impl Apps {
    /// No apps yet.
    pub(super) fn new() -> Apps {
        Apps {
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }

    /// Starts catalog `version` on `addr`.
    pub(super) async fn spawn_catalog(
        &self,
        addr: SocketAddr,
        version: &'static str,
    ) -> anyhow::Result<()> {
        let listener = bind(addr, "catalog").await?;
        self.serve_http(listener, move |request| async move {
            catalog(version, &request)
        });
        Ok(())
    }

    /// Starts the frontend on `addr`; it reaches `catalog` and `inventory` at these
    /// addresses (its sidecar's outbound listeners).
    pub(super) async fn spawn_frontend(
        &self,
        addr: SocketAddr,
        catalog: SocketAddr,
        inventory: SocketAddr,
    ) -> anyhow::Result<()> {
        let listener = bind(addr, "frontend").await?;
        let frontend = Arc::new(Frontend {
            catalog,
            inventory,
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        self.serve_http(listener, move |request| {
            let frontend = frontend.clone();
            async move { frontend.handle(&request).await }
        });
        Ok(())
    }

    /// Starts the inventory on `addr`.
    pub(super) async fn spawn_inventory(&self, addr: SocketAddr) -> anyhow::Result<()> {
        let listener = bind(addr, "inventory").await?;
        let stop = self.stop.clone();
        let tasks = self.tasks.clone();
        self.tasks.spawn(async move {
            while let Some(stream) = accept(&listener, &stop).await {
                let stop = stop.clone();
                tasks.spawn(async move {
                    tokio::select! {
                        () = inventory(stream) => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
        });
        Ok(())
    }

    /// Stops accepting, closes every connection and waits (briefly) for the tasks.
    pub(super) async fn stop(self) {
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.tasks.wait()).await;
    }

    fn serve_http<H, F>(&self, listener: TcpListener, handler: H)
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let stop = self.stop.clone();
        let tasks = self.tasks.clone();
        self.tasks.spawn(async move {
            while let Some(stream) = accept(&listener, &stop).await {
                let handler = handler.clone();
                let stop = stop.clone();
                tasks.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let response = handler(request);
                        async move { Ok::<_, Infallible>(response.await) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
        });
    }
}

async fn bind(addr: SocketAddr, app: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("the {app} app cannot listen on {addr}"))
}

/// The next connection, or `None` once `stop` is cancelled.
async fn accept(listener: &TcpListener, stop: &CancellationToken) -> Option<tokio::net::TcpStream> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => return Some(stream),
                // Out of file descriptors, or the like: wait rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            () = stop.cancelled() => return None,
        }
    }
}

// === catalog ===

fn catalog(version: &str, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let xfcc = header(request, XFCC);
    let items = match version {
        "v1" => json!([{ "name": "kettle" }, { "name": "lamp" }, { "name": "mug" }]),
        // v2 adds prices: what the canary is about.
        _ => json!([
            { "name": "kettle", "price": "24.00" },
            { "name": "lamp", "price": "39.50" },
            { "name": "mug", "price": "8.00" }
        ]),
    };
    reply(
        StatusCode::OK,
        &json!({
            "service": "catalog",
            "version": version,
            "caller": xfcc.as_deref().and_then(caller),
            "xfcc": xfcc,
            "items": items,
        }),
    )
}

// === inventory ===

/// Answers `STOCK <item>` lines until the client closes.
async fn inventory(stream: tokio::net::TcpStream) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut line = String::new();
        match (&mut read).take(MAX_LINE).read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let answer = stock_answer(line.trim());
        if write.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// The inventory's answer to one request line, newline included.
fn stock_answer(line: &str) -> String {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(command), Some(item), None) if command.eq_ignore_ascii_case("stock") => {
            let count = match item {
                "kettle" => 12,
                "lamp" => 3,
                "mug" => 40,
                _ => 0,
            };
            format!("{item} {count}\n")
        }
        _ => "ERR expected: STOCK <item>\n".to_owned(),
    }
}

// === impl Frontend ===

impl Frontend {
    async fn handle(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let xfcc = header(request, XFCC);
        match self.page().await {
            Ok((catalog, items)) => reply(
                StatusCode::OK,
                &json!({
                    "frontend": { "caller": xfcc.as_deref().and_then(caller) },
                    "catalog": {
                        "version": catalog["version"],
                        "caller": catalog["caller"],
                        "xfcc": catalog["xfcc"],
                    },
                    "items": items,
                }),
            ),
            Err(e) => reply(
                StatusCode::BAD_GATEWAY,
                &json!({ "error": format!("{e:#}") }),
            ),
        }
    }

    /// The catalog's answer, and its items with their stock.
    async fn page(&self) -> anyhow::Result<(Value, Vec<Value>)> {
        let catalog = self.catalog().await?;
        let mut items = catalog["items"].as_array().cloned().unwrap_or_default();
        let names: Vec<String> = items
            .iter()
            .filter_map(|i| i["name"].as_str().map(str::to_owned))
            .collect();
        let stock = self.stock(&names).await?;
        for (item, count) in items.iter_mut().zip(stock) {
            item["stock"] = json!(count);
        }
        Ok((catalog, items))
    }

    async fn catalog(&self) -> anyhow::Result<Value> {
        let uri = format!("http://{}/items", self.catalog);
        let request = Request::get(&uri)
            .body(Empty::new())
            .context("building the catalog request")?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
        };
        let (status, body) = tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
            .await
            .context("catalog: no answer in time")?
            .map_err(|e| anyhow::anyhow!("catalog: {e}"))?;
        if !status.is_success() {
            anyhow::bail!(
                "catalog answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            );
        }
        serde_json::from_slice(&body).context("catalog answered with invalid JSON")
    }

    /// One inventory connection, one `STOCK` line per item.
    async fn stock(&self, items: &[String]) -> anyhow::Result<Vec<u64>> {
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(self.inventory).await?;
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            let mut counts = Vec::with_capacity(items.len());
            for item in items {
                write
                    .write_all(format!("STOCK {item}\n").as_bytes())
                    .await?;
                let mut line = String::new();
                (&mut read).take(MAX_LINE).read_line(&mut line).await?;
                let count = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| {
                        std::io::Error::other(format!("unexpected answer {:?}", line.trim()))
                    })?;
                counts.push(count);
            }
            Ok::<_, std::io::Error>(counts)
        };
        tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
            .await
            .context("inventory: no answer in time")?
            .context("inventory")
    }
}

// === HTTP ===

fn header(request: &Request<Incoming>, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The caller's SPIFFE ID in an `x-forwarded-client-cert` value (`URI=…`).
pub(super) fn caller(xfcc: &str) -> Option<String> {
    xfcc.split(';')
        .find_map(|part| part.trim().strip_prefix("URI="))
        .map(str::to_owned)
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut text = serde_json::to_string_pretty(body).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_is_the_uri_of_the_xfcc_header() {
        assert_eq!(
            caller("By=spiffe://cluster.local/ns/default/sa/catalog;URI=spiffe://cluster.local/ns/default/sa/frontend")
                .as_deref(),
            Some("spiffe://cluster.local/ns/default/sa/frontend")
        );
        assert_eq!(caller("By=spiffe://x/ns/a/sa/b"), None);
    }

    #[test]
    fn inventory_answers_stock_lines_and_refuses_others() {
        assert_eq!(stock_answer("STOCK kettle"), "kettle 12\n");
        assert_eq!(stock_answer("stock teapot"), "teapot 0\n");
        assert_eq!(stock_answer("GET /"), "ERR expected: STOCK <item>\n");
        assert_eq!(stock_answer(""), "ERR expected: STOCK <item>\n");
    }
}
