//! `weft token workload` and `weft token revoke`: workload tokens, the credential a
//! proxy presents to the control plane to get certificates for its identity.
//! `weft token admin` (or `admin show`): prints the bootstrap admin token from the
//! control plane's data directory (run it on the control-plane host).
//! `weft token admin create|list|revoke`: operator tokens, the API's credentials, each
//! named and with a role (`admin` or `read-only`; ADR 0025).
//!
//! `workload` and `admin create` print the token alone on stdout (so
//! `TOKEN=$(weft token workload …)` works) and what it is on stderr.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::json;
use weft_api::resource::DEFAULT_NAMESPACE;

use super::client::{self, Client, ConnectArgs};
use super::output;

/// Arguments of `weft token`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Issue a token for a workload identity (namespace + service account).
    Workload(WorkloadArgs),
    /// Revoke a token by the id `weft token workload` printed.
    Revoke(RevokeArgs),
    /// Operator tokens: with no subcommand, print the bootstrap admin token (run on the
    /// control-plane host).
    Admin(AdminArgs),
}

#[derive(Debug, clap::Args)]
struct AdminArgs {
    #[command(subcommand)]
    command: Option<AdminCommand>,
    #[command(flatten)]
    show: ShowArgs,
}

#[derive(Debug, clap::Subcommand)]
enum AdminCommand {
    /// Print the bootstrap admin token from the control plane's data directory (run on
    /// the control-plane host). The same as `weft token admin`.
    Show(ShowArgs),
    /// Create an operator token: the token alone on stdout (shown only now), what it
    /// is on stderr.
    Create(CreateArgs),
    /// List operator tokens: names, roles, status and times (never the tokens).
    List(ListArgs),
    /// Revoke an operator token by name: every control-plane instance refuses it within
    /// 2 s. To rotate a token, create its successor, switch to it, then revoke it.
    Revoke(RevokeAdminArgs),
}

#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// The control plane's data directory (the token is DIR/admin-token). Default: the
    /// same as `weft control-plane`'s.
    #[arg(long, env = "WEFT_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// What an operator token may do.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Role {
    /// Everything.
    Admin,
    /// GET only: list, describe, watch.
    ReadOnly,
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The token's name: lower-case letters, digits and '-' (an RFC 1123 label), unique
    /// among unrevoked tokens, e.g. the operator's or the tool's name.
    name: String,
    /// What the token may do. Default: read-only (ask for admin when it must write).
    #[arg(long, value_enum, default_value = "read-only")]
    role: Role,
    /// How long the token is valid, e.g. `12h`, `30d` (at most 365d). Default: until it
    /// is revoked.
    #[arg(long, value_parser = humantime::parse_duration)]
    ttl: Option<Duration>,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Debug, clap::Args)]
struct RevokeAdminArgs {
    /// The token's name, as `weft token admin list` shows it.
    name: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Debug, clap::Args)]
struct WorkloadArgs {
    /// Namespace of the workload.
    #[arg(short = 'n', long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Service account of the workload: the identity is
    /// spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
    #[arg(long)]
    service_account: String,
    /// A label every workload registered with this token carries, `KEY=VALUE`
    /// (repeat for more). Labels decide which services a workload serves, so they come
    /// from the token: a proxy may repeat them in its bootstrap but not add others.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// How long the token is valid, e.g. `24h`, `30d` (at most 365d). Default 365d:
    /// the proxy needs it on every reconnect and certificate renewal; revoke tokens
    /// you no longer trust with `weft token revoke`.
    #[arg(long, value_parser = humantime::parse_duration)]
    ttl: Option<Duration>,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Debug, clap::Args)]
struct RevokeArgs {
    /// The token's id.
    id: String,
    /// When the token expires (RFC 3339); the revocation is kept until then. Default:
    /// long enough to outlive any token.
    #[arg(long, value_name = "TIME")]
    expires_at: Option<String>,
    /// Revoke an id the control plane has no record of issuing (a token issued before
    /// it kept records); without it, such an id is an error.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Runs `weft token …`.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    match &args.command {
        Command::Workload(args) => workload(args),
        Command::Revoke(args) => revoke(args),
        Command::Admin(args) => match &args.command {
            None => show(&args.show),
            Some(AdminCommand::Show(args)) => show(args),
            Some(AdminCommand::Create(args)) => create(args),
            Some(AdminCommand::List(args)) => list(args),
            Some(AdminCommand::Revoke(args)) => revoke_operator(args),
        },
    }
}

fn show(args: &ShowArgs) -> anyhow::Result<()> {
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(super::control_plane::default_data_dir);
    let path = dir.join(weft_control::api::auth::ADMIN_TOKEN_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no admin token at {}: run this on the control-plane host, or pass --data-dir \
             (the directory of the control plane's --admin-token-file, if it was given)",
            path.display()
        ),
        Err(e) => anyhow::bail!(
            "cannot read the admin token at {}: {e}; run this as the control plane's user, \
             or pass --data-dir",
            path.display()
        ),
    };
    let token = text.trim();
    if token.is_empty() {
        anyhow::bail!("the admin token file {} is empty", path.display());
    }
    println!("{token}");
    Ok(())
}

fn workload(args: &WorkloadArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.connect)?;
    let mut body = json!({
        "namespace": args.namespace,
        "serviceAccount": args.service_account,
    });
    if !args.labels.is_empty() {
        let labels: serde_json::Map<String, serde_json::Value> = args
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        body["labels"] = serde_json::Value::Object(labels);
    }
    if let Some(ttl) = args.ttl {
        // The API takes one number and one unit (`/openapi.json`); seconds say any ttl.
        body["ttl"] = json!(format!("{}s", ttl.as_secs()));
    }
    let issued = client::block_on(post(&client, "/v1/tokens/workload", &body))?;
    let text = |field: &str| issued[field].as_str().unwrap_or_default().to_owned();
    let token = text("token");
    if token.is_empty() {
        anyhow::bail!("the control plane answered without a token");
    }
    println!("{token}");
    let labels = issued["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "none".to_owned());
    eprintln!(
        "token id {} for {}, labels {labels}, expires at {}",
        text("id"),
        text("identity"),
        text("expiresAt")
    );
    Ok(())
}

/// `KEY=VALUE` of `--label`; the control plane checks the key and value.
fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!(
            "{text:?} is not KEY=VALUE: write e.g. --label app=catalog --label version=v1"
        )),
    }
}

fn revoke(args: &RevokeArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.connect)?;
    let mut body = json!({ "id": args.id });
    if args.force {
        body["force"] = json!(true);
    }
    if let Some(expires_at) = &args.expires_at {
        body["expiresAt"] = json!(expires_at);
    }
    let revoked = client::block_on(post(&client, "/v1/tokens/revoke", &body))?;
    println!(
        "token {} revoked (kept until {})",
        args.id,
        revoked["revokedUntil"].as_str().unwrap_or("its expiry")
    );
    Ok(())
}

fn create(args: &CreateArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.connect)?;
    let role = match args.role {
        Role::Admin => "admin",
        Role::ReadOnly => "read-only",
    };
    let mut body = json!({"name": args.name, "role": role});
    if let Some(ttl) = args.ttl {
        // The API takes one number and one unit (`/openapi.json`); seconds say any ttl.
        body["ttl"] = json!(format!("{}s", ttl.as_secs()));
    }
    let created = client::block_on(post(&client, "/v1/tokens/operator", &body))?;
    let token = created["token"].as_str().unwrap_or_default();
    if token.is_empty() {
        anyhow::bail!("the control plane answered without a token");
    }
    println!("{token}");
    let expiry = match created["expiresAt"].as_str() {
        Some(at) => format!("expires at {at}"),
        None => "does not expire".to_owned(),
    };
    eprintln!(
        "operator token {:?} (role {role}, id {}) {expiry}; it is shown only now: store it \
         safely, and revoke it with `weft token admin revoke {}`",
        args.name,
        created["id"].as_str().unwrap_or_default(),
        args.name
    );
    Ok(())
}

fn list(args: &ListArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.connect)?;
    let listed = client::block_on(async { client.get_json("/v1/tokens/operator").await })?;
    let text =
        |token: &serde_json::Value, field: &str| token[field].as_str().unwrap_or("-").to_owned();
    let rows: Vec<Vec<String>> = listed["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|token| {
            let expires = match token["expiresAt"].as_str() {
                Some(at) => at.to_owned(),
                None => "never".to_owned(),
            };
            vec![
                text(token, "name"),
                text(token, "role"),
                text(token, "status"),
                text(token, "createdAt"),
                expires,
                text(token, "revokedAt"),
                text(token, "id"),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &["NAME", "ROLE", "STATUS", "CREATED", "EXPIRES", "REVOKED", "ID"],
            &rows
        )
    );
    Ok(())
}

fn revoke_operator(args: &RevokeAdminArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.connect)?;
    let path = format!("/v1/tokens/operator/{}", client::encode_query(&args.name));
    let revoked =
        client::block_on(async { client.send(Method::DELETE, &path, None).await?.json() })?;
    println!(
        "operator token {:?} revoked at {}",
        args.name,
        revoked["revokedAt"].as_str().unwrap_or("an earlier time")
    );
    Ok(())
}

async fn post(
    client: &Client,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let bytes = Bytes::from(serde_json::to_vec(body)?);
    client
        .send(Method::POST, path, Some(("application/json", bytes)))
        .await?
        .json()
}
