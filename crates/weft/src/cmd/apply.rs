//! `weft apply -f FILE|DIR|-`: send documents to the control plane's `/v1/apply` in
//! one request (validated together, all or nothing), print what happened per object.

use std::path::PathBuf;

use bytes::Bytes;
use http::Method;

use super::client::{self, Client, ConnectArgs};
use super::source::{self, Document, Problem};

/// Arguments of `weft apply`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A file, a directory (its *.yaml, *.yml and *.json files, sorted), or `-` for
    /// stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Applies the files; prints `kind/name created|configured|unchanged` per object.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let (documents, problems) = source::read(&args.files)?;
    if !problems.is_empty() {
        return Err(source::report(&problems, "nothing was applied"));
    }
    if documents.is_empty() {
        anyhow::bail!("no objects in the given files; nothing to apply");
    }
    let client = Client::new(&args.connect)?;
    client::block_on(apply(&client, &documents))
}

async fn apply(client: &Client, documents: &[Document]) -> anyhow::Result<()> {
    let objects: Vec<&weft_api::resource::Object> = documents.iter().map(|d| &d.object).collect();
    let body = Bytes::from(serde_json::to_vec(&objects)?);
    let response = client
        .send(Method::POST, "/v1/apply", Some(("application/json", body)))
        .await?;
    if !response.is_success() {
        let error = response.error();
        if error.details.is_empty() {
            return Err(error.into());
        }
        let problems: Vec<Problem> = error
            .details
            .iter()
            .map(|detail| locate(documents, detail))
            .collect();
        return Err(source::report(&problems, "nothing was applied"));
    }
    let body = response.json()?;
    let results = body["results"].as_array().cloned().unwrap_or_default();
    for result in results {
        println!(
            "{}/{} {}",
            result["kind"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            result["name"].as_str().unwrap_or_default(),
            result["result"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// Maps an API error detail (document index in the request) back to its file.
fn locate(documents: &[Document], detail: &serde_json::Value) -> Problem {
    let path = detail["path"].as_str().map(str::to_owned);
    let message = detail["message"].as_str().unwrap_or_default().to_owned();
    let document = detail["document"]
        .as_u64()
        .and_then(|i| documents.get(usize::try_from(i).ok()?));
    match document {
        Some(document) => document.problem(path, message),
        None => Problem {
            file: "<request>".to_owned(),
            document: None,
            object: None,
            path,
            message,
        },
    }
}
