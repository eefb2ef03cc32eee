//! `weft redirect install|remove`: the iptables rules of transparent mode, for a host or
//! a network namespace (run it inside one with `ip netns exec`).
//!
//! Outbound TCP goes to the proxy's capture port (15001), and inbound TCP for
//! permissive ports to its plaintext capture port (15006). The proxy's own traffic (by
//! uid) and traffic to loopback are left alone. The rules live in chains of their own
//! (`WEFT_OUTPUT`, `WEFT_PREROUTING` in the `nat` table) with one jump each from the
//! built-in chains, so `install` is idempotent (it rewrites the chains) and `remove`
//! takes everything back out. They fail closed: redirected traffic with no proxy
//! listening is refused, never sent around the mesh. `--dry-run` prints the commands.
//!
//! Uses the `iptables` command, which on Debian 12 drives nftables (`iptables-nft`).
//! IPv4 only for now.

use std::process::Command;

use anyhow::Context;

/// The chains `install` owns.
const OUTPUT_CHAIN: &str = "WEFT_OUTPUT";
const PREROUTING_CHAIN: &str = "WEFT_PREROUTING";

/// Arguments of `weft redirect`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Write (or rewrite) the redirect rules.
    Install(InstallArgs),
    /// Remove every rule `install` wrote.
    Remove(RemoveArgs),
}

#[derive(Debug, clap::Args)]
struct InstallArgs {
    /// The uid the proxy runs as: its own connections are not redirected. Run the
    /// apps under other uids.
    #[arg(long, value_name = "UID")]
    proxy_uid: u32,
    /// The proxy's outbound capture port (`listeners.outboundCapture`).
    #[arg(long, default_value_t = 15001)]
    outbound_port: u16,
    /// The proxy's inbound plaintext capture port (`listeners.inboundCapture`).
    #[arg(long, default_value_t = 15006)]
    inbound_port: u16,
    /// App ports whose plaintext from outside the mesh goes to the inbound capture
    /// port (the ports that are permissive), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "PORT,…")]
    permissive_ports: Vec<u16>,
    /// Outbound destination ports never redirected (e.g. 22), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "PORT,…")]
    exclude_ports: Vec<u16>,
    /// Print the commands instead of running them.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, clap::Args)]
struct RemoveArgs {
    /// Print the commands instead of running them.
    #[arg(long)]
    dry_run: bool,
}

/// One `iptables` invocation; `tolerated` ones may fail (a chain that already exists,
/// a jump that is not there).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    args: Vec<String>,
    tolerated: bool,
}

/// Runs `weft redirect`.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let (steps, dry_run) = match &args.action {
        Action::Install(a) => {
            if a.outbound_port == 0 || a.inbound_port == 0 {
                anyhow::bail!("--outbound-port and --inbound-port must be 1-65535");
            }
            (install(a), a.dry_run)
        }
        Action::Remove(a) => (remove(), a.dry_run),
    };
    if dry_run {
        for step in &steps {
            println!("iptables {}", step.args.join(" "));
        }
        return Ok(());
    }
    for step in &steps {
        let out = Command::new("iptables")
            .args(&step.args)
            .output()
            .context("running iptables (install Debian's iptables package; run as root)")?;
        if !out.status.success() && !step.tolerated {
            anyhow::bail!(
                "iptables {} failed: {}",
                step.args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    match &args.action {
        Action::Install(_) => println!(
            "redirect rules installed (chains {OUTPUT_CHAIN}, {PREROUTING_CHAIN} in table nat)"
        ),
        Action::Remove(_) => println!("redirect rules removed"),
    }
    Ok(())
}

fn step(tolerated: bool, args: &[&str]) -> Step {
    Step {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        tolerated,
    }
}

/// The steps of `install`: own chains (created if missing, then flushed), their rules,
/// and one jump from each built-in chain (added only if missing).
fn install(a: &InstallArgs) -> Vec<Step> {
    let uid = a.proxy_uid.to_string();
    let outbound = a.outbound_port.to_string();
    let inbound = a.inbound_port.to_string();
    let mut steps = Vec::new();
    for chain in [OUTPUT_CHAIN, PREROUTING_CHAIN] {
        steps.push(step(true, &["-t", "nat", "-N", chain]));
        steps.push(step(false, &["-t", "nat", "-F", chain]));
    }
    // Outbound: the proxy's own traffic, loopback, and excluded ports pass; other TCP
    // goes to the capture port.
    steps.push(step(
        false,
        &[
            "-t",
            "nat",
            "-A",
            OUTPUT_CHAIN,
            "-m",
            "owner",
            "--uid-owner",
            &uid,
            "-j",
            "RETURN",
        ],
    ));
    steps.push(step(
        false,
        &[
            "-t",
            "nat",
            "-A",
            OUTPUT_CHAIN,
            "-d",
            "127.0.0.0/8",
            "-j",
            "RETURN",
        ],
    ));
    for port in &a.exclude_ports {
        let port = port.to_string();
        steps.push(step(
            false,
            &[
                "-t",
                "nat",
                "-A",
                OUTPUT_CHAIN,
                "-p",
                "tcp",
                "--dport",
                &port,
                "-j",
                "RETURN",
            ],
        ));
    }
    steps.push(step(
        false,
        &[
            "-t",
            "nat",
            "-A",
            OUTPUT_CHAIN,
            "-p",
            "tcp",
            "-j",
            "REDIRECT",
            "--to-ports",
            &outbound,
        ],
    ));
    // Inbound: plaintext for permissive ports goes to the plaintext capture port.
    for port in &a.permissive_ports {
        let port = port.to_string();
        steps.push(step(
            false,
            &[
                "-t",
                "nat",
                "-A",
                PREROUTING_CHAIN,
                "-p",
                "tcp",
                "--dport",
                &port,
                "-j",
                "REDIRECT",
                "--to-ports",
                &inbound,
            ],
        ));
    }
    for (builtin, chain) in [("OUTPUT", OUTPUT_CHAIN), ("PREROUTING", PREROUTING_CHAIN)] {
        // Delete (tolerated when absent), then add: the jump is there exactly once.
        steps.push(step(true, &["-t", "nat", "-D", builtin, "-j", chain]));
        steps.push(step(false, &["-t", "nat", "-A", builtin, "-j", chain]));
    }
    steps
}

/// The steps of `remove`: the jumps, then the chains.
fn remove() -> Vec<Step> {
    let mut steps = Vec::new();
    for (builtin, chain) in [("OUTPUT", OUTPUT_CHAIN), ("PREROUTING", PREROUTING_CHAIN)] {
        steps.push(step(true, &["-t", "nat", "-D", builtin, "-j", chain]));
        steps.push(step(true, &["-t", "nat", "-F", chain]));
        steps.push(step(true, &["-t", "nat", "-X", chain]));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(permissive: &[u16], exclude: &[u16]) -> InstallArgs {
        InstallArgs {
            proxy_uid: 1337,
            outbound_port: 15001,
            inbound_port: 15006,
            permissive_ports: permissive.to_vec(),
            exclude_ports: exclude.to_vec(),
            dry_run: true,
        }
    }

    fn lines(steps: &[Step]) -> Vec<String> {
        steps.iter().map(|s| s.args.join(" ")).collect()
    }

    #[test]
    fn install_excludes_the_proxy_and_loopback_before_redirecting_outbound_tcp() {
        let all = lines(&install(&args(&[], &[22])));
        let position = |needle: &str| {
            all.iter()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle} missing from {all:?}"))
        };
        let uid = position("--uid-owner 1337 -j RETURN");
        let lo = position("-d 127.0.0.0/8 -j RETURN");
        let ssh = position("--dport 22 -j RETURN");
        let redirect = position("-A WEFT_OUTPUT -p tcp -j REDIRECT --to-ports 15001");
        assert!(uid < redirect && lo < redirect && ssh < redirect, "{all:?}");
        assert!(
            !all.iter().any(|l| l.contains("PREROUTING -p tcp")),
            "no inbound rule without permissive ports: {all:?}"
        );
    }

    #[test]
    fn install_rewrites_its_own_chains_and_adds_each_jump_once() {
        let steps = install(&args(&[8080], &[]));
        let all = lines(&steps);
        assert_eq!(all[0], "-t nat -N WEFT_OUTPUT");
        assert!(steps[0].tolerated, "an existing chain is fine");
        assert_eq!(all[1], "-t nat -F WEFT_OUTPUT");
        assert!(!steps[1].tolerated);
        assert!(all.contains(
            &"-t nat -A WEFT_PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 15006"
                .to_owned()
        ));
        // A jump is first deleted (tolerated if absent), then added: never twice.
        let jump = all
            .iter()
            .position(|l| l == "-t nat -A OUTPUT -j WEFT_OUTPUT")
            .expect("jump");
        assert_eq!(all[jump - 1], "-t nat -D OUTPUT -j WEFT_OUTPUT");
        assert!(steps[jump - 1].tolerated);
    }

    #[test]
    fn remove_takes_out_the_jumps_and_the_chains_tolerating_absence() {
        let steps = remove();
        assert!(steps.iter().all(|s| s.tolerated));
        let all = lines(&steps);
        assert!(all.contains(&"-t nat -X WEFT_OUTPUT".to_owned()));
        assert!(all.contains(&"-t nat -D PREROUTING -j WEFT_PREROUTING".to_owned()));
    }
}
