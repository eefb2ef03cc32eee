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
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
