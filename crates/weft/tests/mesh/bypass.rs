//! Authorization bypass attempts against real web servers: nginx and Apache httpd
//! serve a private file behind the mesh, a permission denies `/private` (any case),
//! and every spelling of that path we know of is sent through the mesh in HTTP/1.1
//! (as raw bytes, so nothing on the client side cleans it up) and in HTTP/2. None may
//! return the file. Each server reads paths its own way (nginx merges slashes and
//! decodes escapes before matching; Apache resolves `..` after decoding), so a denial
//! holds only if the proxy's one normalised path leaves them nothing to read
//! differently.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_testkit::client::Http2Client;
use weft_testkit::webserver::{self, Kind};

use crate::harness::{Host, Mesh, Proxy};

const SECRET: &str = "SECRET-FILE-CONTENTS";

/// The server's proxy: the web server's port, a denial of `/private` in any case and
/// of any request with `x-debug: on`.
fn server_config(mesh: &Mesh, host: &Host) -> String {
    format!(
        "{}inbound:\n  authorization:\n    rules:\n      \
         - {{ action: deny, to: [{{ paths: [{{ type: PathPrefix, value: /private, ignoreCase: true }}] }}] }}\n      \
         - {{ action: deny, to: [{{ headers: [{{ name: x-debug, value: {{ exact: \"on\" }} }}] }}] }}\n",
        mesh.identity_yaml(host, "web", &[(mesh.ports.app, "http")])
    )
}

/// Every spelling of `/private/secret.txt` as a request target.
const TARGETS: &[&str] = &[
    "/private/secret.txt",
    "/PRIVATE/secret.txt",
    "/PrIvAtE/secret.txt",
    "//private/secret.txt",
    "///private//secret.txt",
    "/./private/secret.txt",
    "/private/./secret.txt",
    "/private//secret.txt",
    "/public/../private/secret.txt",
    "/public/./../private/secret.txt",
    "/public/../../private/secret.txt",
    "/public/%2e%2e/private/secret.txt",
    "/public/%2E%2E/private/secret.txt",
    "/public/.%2e/private/secret.txt",
    "/public/%2e./private/secret.txt",
    "/%2e%2e/private/secret.txt",
    "/%70rivate/secret.txt",
    "/%70%72%69%76%61%74%65/secret.txt",
    "/priv%61te/secret.txt",
    "/%50RIVATE/secret.txt",
    "/private%2fsecret.txt",
    "/private%2Fsecret.txt",
    "/public%2f..%2fprivate%2fsecret.txt",
    "/public/..%2fprivate/secret.txt",
    "/public/..%5cprivate/secret.txt",
    "/public%5c..%5cprivate%5csecret.txt",
    "/public\\..\\private\\secret.txt",
    "/public/..;/private/secret.txt",
    "/public/..;x=1/private/secret.txt",
    "/private;/secret.txt",
    "/private;x=1/secret.txt",
    "/private/secret.txt;x",
    "/%252e%252e/private/secret.txt",
    "/public/%252e%252e/private/secret.txt",
    "/public/%25%32%65%25%32%65/private/secret.txt",
    "/private%00/secret.txt",
    "/private/secret.txt%00.html",
    "/%c0%ae%c0%ae/private/secret.txt",
    "/public/%c0%ae%c0%ae/private/secret.txt",
    "/public/%e0%80%ae%e0%80%ae/private/secret.txt",
    "/private/secret.txt?x=1",
    "/private/secret.txt#x",
    "/public#/../private/secret.txt",
    "/public/%23/../../private/secret.txt",
    "http://echo/private/secret.txt",
    "http://echo/public/../private/secret.txt",
    "http://echo//private/secret.txt",
];

/// Whole requests: malformed request lines and versions, header tricks.
fn raw_requests() -> Vec<(&'static str, Vec<u8>)> {
    let tail = "Host: echo\r\nConnection: close\r\n\r\n";
    let mut out: Vec<(&'static str, Vec<u8>)> = vec![
        ("HTTP/1.0", format!("GET /private/secret.txt HTTP/1.0\r\n{tail}")),
        ("HTTP/1.2", format!("GET /private/secret.txt HTTP/1.2\r\n{tail}")),
        ("HTTP/2.0 line", format!("GET /private/secret.txt HTTP/2.0\r\n{tail}")),
        ("HTTP/0.9", "GET /private/secret.txt\r\n\r\n".to_owned()),
        ("two spaces", format!("GET  /private/secret.txt HTTP/1.1\r\n{tail}")),
        ("trailing spaces", format!("GET /private/secret.txt  HTTP/1.1\r\n{tail}")),
        ("tab", format!("GET\t/private/secret.txt HTTP/1.1\r\n{tail}")),
        ("lower-case method", format!("get /private/secret.txt HTTP/1.1\r\n{tail}")),
        ("bare LF", "GET /private/secret.txt HTTP/1.1\nHost: echo\nConnection: close\n\n".to_owned()),
        ("two hosts", format!("GET /private/secret.txt HTTP/1.1\r\nHost: other\r\n{tail}")),
        (
            "X-Original-URL",
            format!("GET /public/index.html HTTP/1.1\r\nX-Original-URL: /private/secret.txt\r\nX-Rewrite-URL: /private/secret.txt\r\n{tail}"),
        ),
    ]
    .into_iter()
    .map(|(name, text)| (name, text.into_bytes()))
    .collect();
    for (name, header) in [
        ("header in upper case", "X-DEBUG: on"),
        ("header in mixed case", "X-Debug: on"),
        ("header with an underscore", "x_debug: on"),
    ] {
        out.push((
            name,
            format!("GET /public/index.html HTTP/1.1\r\n{header}\r\n{tail}").into_bytes(),
        ));
    }
    out
}

/// Sends `bytes` on a fresh connection and reads until the server closes it; the
/// status (0 when there was no status line) and the whole answer.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> (u16, String) {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(bytes).await?;
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer).await;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n").into_bytes()
}

async fn bypass_attempts_never_reach_the_private_file(kind: Kind, test: &str) {
    if !webserver::guard(test, kind) {
        return;
    }
    let mesh = Mesh::new();
    let server = mesh.host("server");
    let client = mesh.host("client");
    let root = webserver::docroot(&[
        ("private/secret.txt", SECRET),
        ("public/index.html", "public page\n"),
    ])
    .expect("document root");
    let app = webserver::spawn(kind, mesh.app(&server), root.path()).expect("web server");
    let path = mesh.write("web", &server_config(&mesh, &server));
    let _server_proxy: Proxy = mesh.proxy(&server, &path).await;
    let svc = mesh.service("echo", 80, "http", &[mesh.endpoint(&server, "web")]);
    let config = mesh.client_config(&client, "client", &svc, "");
    let _client_proxy = mesh.proxy(&client, &mesh.write("client", &config)).await;
    let listen = mesh.listen(&client);

    // The controls: the app serves the file to anyone who reaches it directly, and the
    // mesh serves the public page.
    let (status, direct) = raw(app.addr(), &get("/private/secret.txt")).await;
    assert!(
        status == 200 && direct.contains(SECRET),
        "the app itself must serve the file, or the test proves nothing: {direct}\n{}",
        app.error_log()
    );
    let (status, public) = raw(listen, &get("/public/index.html")).await;
    assert!(status == 200 && public.contains("public page"), "{public}");

    let mut leaks = Vec::new();
    for target in TARGETS {
        let (status, answer) = raw(listen, &get(target)).await;
        if answer.contains(SECRET) || (200..300).contains(&status) {
            leaks.push(format!("HTTP/1.1 {target}: {status}"));
        }
    }
    for (name, bytes) in raw_requests() {
        let (status, answer) = raw(listen, &bytes).await;
        let header_trick = name.starts_with("header");
        if answer.contains(SECRET) || (header_trick && status != 403) {
            leaks.push(format!("{name}: {status}"));
        }
        if name == "X-Original-URL" && status == 200 && !answer.contains("public page") {
            leaks.push(format!(
                "{name}: served something other than the public page"
            ));
        }
    }
    let h2 = Http2Client::connect(listen)
        .await
        .expect("h2c to the client proxy");
    let mut h2_sent = 0;
    for target in TARGETS {
        let Ok(req) = http::Request::get(*target)
            .header("host", "echo")
            .body(Empty::<Bytes>::new())
        else {
            continue; // not a URI an HTTP/2 client can send
        };
        h2_sent += 1;
        if let Ok(resp) = h2.send(req).await {
            let body = String::from_utf8_lossy(resp.body());
            if body.contains(SECRET) || resp.status().is_success() {
                leaks.push(format!("HTTP/2 {target}: {}", resp.status()));
            }
        }
    }
    assert!(
        h2_sent > TARGETS.len() / 2,
        "HTTP/2 sent only {h2_sent} targets"
    );
    assert!(
        leaks.is_empty(),
        "{kind:?} served what a permission denies:\n{}",
        leaks.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_denied_path_reaches_a_private_file_on_nginx() {
    bypass_attempts_never_reach_the_private_file(
        Kind::Nginx,
        "no_spelling_of_a_denied_path_reaches_a_private_file_on_nginx",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_denied_path_reaches_a_private_file_on_apache() {
    bypass_attempts_never_reach_the_private_file(
        Kind::Apache,
        "no_spelling_of_a_denied_path_reaches_a_private_file_on_apache",
    )
    .await;
}
