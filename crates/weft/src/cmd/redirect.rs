//! `weft redirect install|remove`: the iptables rules of transparent mode, for a host or
//! a network namespace (run it inside one with `ip netns exec`).
//!
//! Outbound TCP goes to the proxy's capture port (15001), DNS (UDP and TCP port 53,
//! to any resolver, loopback ones included) to its mesh DNS (15053), and inbound TCP
//! for permissive ports to its plaintext capture port (15006). The proxy's own traffic
//! (by uid) and other traffic to loopback are left alone. The rules live in chains of their own
//! (`WEFT_OUTPUT`, `WEFT_PREROUTING` in the `nat` table) with one jump each from the
//! built-in chains, so `install` is idempotent (it rewrites the chains) and `remove`
//! takes everything back out. They fail closed: redirected traffic with no proxy
//! listening is refused, never sent around the mesh. `--dry-run` prints the commands.
//!
//! Uses the `iptables` and `ip6tables` commands, which on Debian 12 drive nftables
//! (`iptables-nft`). IPv6 gets the same rules, so an app cannot step around the mesh
//! by dialling an IPv6 address: the proxy captures on `[::1]` too, and where it does
//! not listen the redirected connection is refused.

use std::process::Command;

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
    /// The proxy's mesh DNS port (`listeners.dns`), where DNS queries go.
    #[arg(long, default_value_t = 15053)]
    dns_port: u16,
    /// Leave DNS alone (for a proxy without `listeners.dns`: apps then dial VIPs by
    /// address).
    #[arg(long)]
    no_dns: bool,
    /// Write IPv4 rules only. Without IPv6 rules an app can reach IPv6 destinations
    /// around the mesh; use it only where the host has no IPv6.
    #[arg(long)]
    no_ipv6: bool,
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

/// An address family and the command that writes its rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn program(self) -> &'static str {
        match self {
            Self::V4 => "iptables",
            Self::V6 => "ip6tables",
        }
    }

    fn loopback(self) -> &'static str {
        match self {
            Self::V4 => "127.0.0.0/8",
            Self::V6 => "::1/128",
        }
    }
}

/// One `iptables`/`ip6tables` invocation; `tolerated` ones may fail (a chain that
/// already exists, a jump that is not there).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    family: Family,
    args: Vec<String>,
    tolerated: bool,
}

/// Runs `weft redirect`.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let (steps, dry_run) = match &args.action {
        Action::Install(a) => {
            if a.outbound_port == 0 || a.inbound_port == 0 || a.dns_port == 0 {
                anyhow::bail!("--outbound-port, --inbound-port and --dns-port must be 1-65535");
            }
            let mut steps = install(a, Family::V4);
            if !a.no_ipv6 {
                steps.extend(install(a, Family::V6));
            }
            (steps, a.dry_run)
        }
        Action::Remove(a) => {
            let mut steps = remove(Family::V4);
            steps.extend(remove(Family::V6));
            (steps, a.dry_run)
        }
    };
    if dry_run {
        for step in &steps {
            println!("{} {}", step.family.program(), step.args.join(" "));
        }
        return Ok(());
    }
    for step in &steps {
        let program = step.family.program();
        let out = match Command::new(program).args(&step.args).output() {
            Ok(out) => out,
            // `remove` on a host without ip6tables has nothing to remove there.
            Err(_) if step.tolerated => continue,
            Err(e) => {
                let hint = match step.family {
                    Family::V4 => "install Debian's iptables package; run as root",
                    Family::V6 => {
                        "install Debian's iptables package (it has ip6tables), or pass \
                         --no-ipv6 on a host without IPv6"
                    }
                };
                return Err(anyhow::Error::new(e).context(format!("running {program} ({hint})")));
            }
        };
        if !out.status.success() && !step.tolerated {
            let mut message = format!(
                "{program} {} failed: {}",
                step.args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            if step.family == Family::V6 {
                message.push_str(" (on a host without IPv6, pass --no-ipv6)");
            }
            anyhow::bail!(message);
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

fn step(family: Family, tolerated: bool, args: &[&str]) -> Step {
    Step {
        family,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        tolerated,
    }
}

/// The steps of `install` for one family: own chains (created if missing, then
/// flushed), their rules, and one jump from each built-in chain (added only if
/// missing).
fn install(a: &InstallArgs, family: Family) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut push = |tolerated: bool, line: &str| {
        let args: Vec<&str> = line.split_whitespace().collect();
        steps.push(step(family, tolerated, &args));
    };
    for chain in [OUTPUT_CHAIN, PREROUTING_CHAIN] {
        push(true, &format!("-t nat -N {chain}"));
        push(false, &format!("-t nat -F {chain}"));
    }
    let output = format!("-t nat -A {OUTPUT_CHAIN}");
    // The proxy's own traffic passes untouched (its DNS forwards and connections).
    push(
        false,
        &format!("{output} -m owner --uid-owner {} -j RETURN", a.proxy_uid),
    );
    // DNS goes to the mesh DNS before the loopback exception: a resolver on loopback
    // (systemd-resolved's 127.0.0.53) is captured too.
    if !a.no_dns {
        for proto in ["udp", "tcp"] {
            push(
                false,
                &format!(
                    "{output} -p {proto} --dport 53 -j REDIRECT --to-ports {}",
                    a.dns_port
                ),
            );
        }
    }
    // Loopback and excluded ports pass; other TCP goes to the capture port.
    push(
        false,
        &format!("{output} -d {} -j RETURN", family.loopback()),
    );
    for port in &a.exclude_ports {
        push(false, &format!("{output} -p tcp --dport {port} -j RETURN"));
    }
    push(
        false,
        &format!("{output} -p tcp -j REDIRECT --to-ports {}", a.outbound_port),
    );
    // Inbound: plaintext for permissive ports goes to the plaintext capture port.
    for port in &a.permissive_ports {
        push(
            false,
            &format!(
                "-t nat -A {PREROUTING_CHAIN} -p tcp --dport {port} -j REDIRECT --to-ports {}",
                a.inbound_port
            ),
        );
    }
    for (builtin, chain) in [("OUTPUT", OUTPUT_CHAIN), ("PREROUTING", PREROUTING_CHAIN)] {
        // Delete (tolerated when absent), then add: the jump is there exactly once.
        push(true, &format!("-t nat -D {builtin} -j {chain}"));
        push(false, &format!("-t nat -A {builtin} -j {chain}"));
    }
    steps
}

/// The steps of `remove` for one family: the jumps, then the chains.
fn remove(family: Family) -> Vec<Step> {
    let mut steps = Vec::new();
    for (builtin, chain) in [("OUTPUT", OUTPUT_CHAIN), ("PREROUTING", PREROUTING_CHAIN)] {
        steps.push(step(
            family,
            true,
            &["-t", "nat", "-D", builtin, "-j", chain],
        ));
        steps.push(step(family, true, &["-t", "nat", "-F", chain]));
        steps.push(step(family, true, &["-t", "nat", "-X", chain]));
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
            dns_port: 15053,
            no_dns: false,
            no_ipv6: false,
            dry_run: true,
        }
    }

    fn lines(steps: &[Step]) -> Vec<String> {
        steps.iter().map(|s| s.args.join(" ")).collect()
    }

    fn position(all: &[String], needle: &str) -> usize {
        all.iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} missing from {all:?}"))
    }

    #[test]
    fn install_excludes_the_proxy_and_loopback_before_redirecting_outbound_tcp() {
        for (family, lo) in [(Family::V4, "127.0.0.0/8"), (Family::V6, "::1/128")] {
            let all = lines(&install(&args(&[], &[22]), family));
            let uid = position(&all, "--uid-owner 1337 -j RETURN");
            let lo = position(&all, &format!("-d {lo} -j RETURN"));
            let ssh = position(&all, "--dport 22 -j RETURN");
            let redirect = position(&all, "-A WEFT_OUTPUT -p tcp -j REDIRECT --to-ports 15001");
            assert!(uid < redirect && lo < redirect && ssh < redirect, "{all:?}");
            assert!(
                !all.iter().any(|l| l.contains("PREROUTING -p tcp")),
                "no inbound rule without permissive ports: {all:?}"
            );
        }
    }

    #[test]
    fn dns_to_any_resolver_goes_to_the_mesh_dns_except_the_proxys_own() {
        let all = lines(&install(&args(&[], &[]), Family::V4));
        let uid = position(&all, "--uid-owner 1337 -j RETURN");
        let lo = position(&all, "-d 127.0.0.0/8 -j RETURN");
        for proto in ["udp", "tcp"] {
            let dns = position(
                &all,
                &format!("-A WEFT_OUTPUT -p {proto} --dport 53 -j REDIRECT --to-ports 15053"),
            );
            assert!(uid < dns, "the proxy's own queries pass: {all:?}");
            assert!(dns < lo, "a loopback resolver is captured too: {all:?}");
        }
        let mut without = args(&[], &[]);
        without.no_dns = true;
        let all = lines(&install(&without, Family::V4));
        assert!(!all.iter().any(|l| l.contains("--dport 53")), "{all:?}");
    }

    #[test]
    fn install_rewrites_its_own_chains_and_adds_each_jump_once() {
        let steps = install(&args(&[8080], &[]), Family::V4);
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
    fn each_family_is_written_by_its_own_command() {
        assert!(install(&args(&[], &[]), Family::V6)
            .iter()
            .all(|s| s.family.program() == "ip6tables"));
        assert!(remove(Family::V4)
            .iter()
            .all(|s| s.family.program() == "iptables"));
    }

    #[test]
    fn remove_takes_out_the_jumps_and_the_chains_tolerating_absence() {
        let steps = remove(Family::V6);
        assert!(steps.iter().all(|s| s.tolerated));
        let all = lines(&steps);
        assert!(all.contains(&"-t nat -X WEFT_OUTPUT".to_owned()));
        assert!(all.contains(&"-t nat -D PREROUTING -j WEFT_PREROUTING".to_owned()));
    }
}
