//! `weft`: the control plane, the proxy, the app launcher and the operator CLI, in one
//! binary. This file only parses the command line and hands off to a command module;
//! the work happens in the libraries.

mod cmd;
mod logging;

use clap::{Parser, Subcommand};

/// Weft service mesh.
#[derive(Debug, Parser)]
#[command(
    name = "weft",
    version,
    about = "Weft service mesh: proxy, control plane and CLI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sidecar proxy.
    Proxy(cmd::proxy::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Proxy(args) => cmd::proxy::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `outer: cause: root`, skipping a cause whose text the
/// message already carries (library errors often embed their source).
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}
