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
    /// Run the control plane: resource store, HTTP API and xDS server.
    ControlPlane(cmd::control_plane::Args),
    /// Run the sidecar proxy.
    Proxy(cmd::proxy::Args),
    /// Run an app behind its proxy: the proxy first, the app once the proxy is ready;
    /// signals go to the app, and the proxy drains after it exits.
    Run(cmd::run::Args),
    /// Create or update resources from files (`-f FILE|DIR|-`).
    Apply(cmd::apply::Args),
    /// List or show resources.
    Get(cmd::get::Args),
    /// Delete resources by kind and name, or those defined in files.
    Delete(cmd::delete::Args),
    /// Show a resource with what relates to it (a service's endpoints and routes).
    Describe(cmd::describe::Args),
    /// Show which TrafficPermission and rule decide a request, and why the others do
    /// not match.
    Explain(cmd::explain::Args),
    /// Show what the control plane sent a connected proxy, and what it ACKed or NACKed.
    Inspect(cmd::inspect::Args),
    /// Live success rate, requests per second and latency of services, workloads or
    /// route rules, from the proxies' reports.
    Stat(cmd::stat::Args),
    /// The busiest paths of a service or workload right now, from a tap.
    Top(cmd::top::Args),
    /// Who calls whom, over mTLS or not, with the identities each side proved.
    Edges(cmd::edges::Args),
    /// Print a workload's or a service's requests as they happen (needs an admin token).
    Tap(cmd::tap::Args),
    /// Validate resource files offline, without a control plane.
    Check(cmd::check::Args),
    /// Issue or revoke workload tokens (what a proxy presents to get certificates).
    Token(cmd::token::Args),
    /// Install or remove the iptables rules of transparent mode (needs root).
    Redirect(cmd::redirect::Args),
    /// Run a demo mesh on loopback (control plane, apps, sidecars, a canary) until
    /// Ctrl-C; no root, nothing to install.
    Quickstart(cmd::quickstart::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::ControlPlane(args) => cmd::control_plane::run(&args),
        Command::Proxy(args) => cmd::proxy::run(args),
        Command::Run(args) => match cmd::run::run(args) {
            Ok(code) => return std::process::ExitCode::from(code),
            Err(e) => Err(e),
        },
        Command::Apply(args) => cmd::apply::run(&args),
        Command::Get(args) => cmd::get::run(&args),
        Command::Delete(args) => cmd::delete::run(&args),
        Command::Describe(args) => cmd::describe::run(&args),
        Command::Explain(args) => cmd::explain::run(&args),
        Command::Inspect(args) => cmd::inspect::run(&args),
        Command::Stat(args) => cmd::stat::run(&args),
        Command::Top(args) => cmd::top::run(&args),
        Command::Edges(args) => cmd::edges::run(&args),
        Command::Tap(args) => cmd::tap::run(&args),
        Command::Check(args) => cmd::check::run(&args),
        Command::Token(args) => cmd::token::run(&args),
        Command::Redirect(args) => cmd::redirect::run(&args),
        Command::Quickstart(args) => cmd::quickstart::run(&args),
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
