//! `weft delete KIND NAME [-n NS]` and `weft delete -f FILE…`.

use std::path::PathBuf;

use http::Method;
use weft_api::resource::{Kind, DEFAULT_NAMESPACE};

use super::client::{self, Client, ConnectArgs};
use super::get::{item_path, parse_kind};
use super::source;

/// Arguments of `weft delete`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Kind (`svc`, `httproutes`, …); with NAME. Not with `-f`.
    #[arg(required_unless_present = "files", conflicts_with = "files")]
    kind: Option<String>,
    /// Name of the object to delete.
    #[arg(required_unless_present = "files")]
    name: Option<String>,
    /// Namespace.
    #[arg(short = 'n', long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Delete the objects defined in these files or directories (`-` for stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Succeed when an object does not exist.
    #[arg(long)]
    ignore_not_found: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Deletes the objects; prints `kind/name deleted` for each.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let targets: Vec<(Kind, String, String)> = if args.files.is_empty() {
        let kind = parse_kind(args.kind.as_deref().unwrap_or_default())?;
        let name = args.name.clone().unwrap_or_default();
        vec![(kind, args.namespace.clone(), name)]
    } else {
        let (documents, problems) = source::read(&args.files)?;
        if !problems.is_empty() {
            return Err(source::report(&problems, "nothing was deleted"));
        }
        let mut targets = Vec::new();
        for document in &documents {
            let kind = document.object.kind().map_err(|e| {
                anyhow::anyhow!("{}: document {}: {e}", document.file, document.index)
            })?;
            targets.push((
                kind,
                document.object.namespace().to_owned(),
                document.object.metadata.name.clone(),
            ));
        }
        targets
    };
    let client = Client::new(&args.connect)?;
    client::block_on(delete(&client, &targets, args.ignore_not_found))
}

async fn delete(
    client: &Client,
    targets: &[(Kind, String, String)],
    ignore_not_found: bool,
) -> anyhow::Result<()> {
    let mut failed = 0;
    for (kind, namespace, name) in targets {
        let label = format!("{}/{name}", kind.as_str().to_ascii_lowercase());
        let response = client
            .send(Method::DELETE, &item_path(*kind, namespace, name), None)
            .await?;
        if response.is_success() {
            println!("{label} deleted");
            continue;
        }
        let error = response.error();
        if error.is_not_found() && ignore_not_found {
            continue;
        }
        eprintln!("error: {label}: {error}");
        failed += 1;
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} object(s) not deleted", targets.len());
    }
    Ok(())
}
