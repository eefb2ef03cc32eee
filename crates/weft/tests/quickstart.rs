//! `weft quickstart` as a user runs it, and as a user who is not root (through
//! `setpriv` when the tests run as root): it comes up on loopback, the demo answers
//! through the sidecars, the commands it prints work (the live views `weft stat` and
//! `weft tap` included), it says where the GUI is, and SIGINT (Ctrl-C) leaves
//! nothing behind: no process, no listening port, no temporary directory.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use weft_testkit::process::Child;

/// The line quickstart prints once the mesh is up and the guide is printed.
const READY_LINE: &str = "weft quickstart is ready";

/// The user a root test run uses (`nobody`).
const NOBODY: u32 = 65534;

/// The last offset from `--port-base` quickstart uses (the control plane's API).
const LAST_OFFSET: u16 = 681;

const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";
const FRONTEND: &str = "spiffe://cluster.local/ns/default/sa/frontend";
const CATALOG: &str = "spiffe://cluster.local/ns/default/sa/catalog";

#[test]
fn quickstart_serves_the_demo_through_sidecars_and_sigint_leaves_nothing_behind() {
    let began = Instant::now();
    // The non-root user's home and TMPDIR: quickstart must need nothing else.
    let home = weft_testkit::tempdir().expect("tempdir");
    let root = nix::unistd::Uid::effective().is_root();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_weft"));
    let mut command = if root {
        let uid = nix::unistd::Uid::from_raw(NOBODY);
        let gid = nix::unistd::Gid::from_raw(NOBODY);
        nix::unistd::chown(home.path(), Some(uid), Some(gid)).expect("chown the home to nobody");
        let bin = executable_by_others(&bin, home.path());
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(bin);
        command
    } else {
        Command::new(&bin)
    };
    let base = free_port_base();
    command
        .args(["quickstart", "--requests", "20", "--port-base"])
        .arg(base.to_string())
        .env("HOME", home.path())
        .env("TMPDIR", home.path())
        .env_remove("RUST_LOG")
        .env_remove("XDG_STATE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        // Its own process group, so anything it might start is findable after it exits.
        .process_group(0);
    let mut quickstart = Child::spawn(command, "weft quickstart").expect("quickstart starts");
    quickstart
        .wait_for_log(READY_LINE, Duration::from_secs(45))
        .expect("quickstart becomes ready");
    let up = began.elapsed();
    let output = quickstart.logs();
    let pid = quickstart.pid();

    // What it said it did.
    assert!(output.contains("20 of 20 requests answered"), "{output}");
    let data_dir = PathBuf::from(between(&output, "(files in ", ")").expect("the data dir"));
    assert!(data_dir.starts_with(home.path()), "{output}");
    assert!(data_dir.is_dir());

    // The demo answers through the mesh: the client sidecar's listener, then HBONE to
    // the frontend's sidecar, which tells the frontend who called; the frontend's
    // sidecar carries its call to a catalog version, whose sidecar does the same.
    let frontend_url = output
        .lines()
        .find(|l| l.contains("# the frontend"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("the frontend URL");
    let frontend: SocketAddr = frontend_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("host:port");
    let answer = get_json(frontend);
    assert_eq!(answer["frontend"]["caller"], CLIENT, "{answer}");
    assert_eq!(answer["catalog"]["caller"], FRONTEND, "{answer}");
    assert_eq!(
        answer["catalog"]["xfcc"],
        format!("By={CATALOG};URI={FRONTEND}"),
        "{answer}"
    );
    let version = answer["catalog"]["version"].as_str().unwrap_or_default();
    assert!(version == "v1" || version == "v2", "{answer}");
    // Stock comes from the TCP inventory, through the frontend's sidecar too.
    assert_eq!(answer["items"][0]["stock"], 12, "{answer}");

    // The commands it prints work as printed.
    let exports: BTreeMap<String, String> = output
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(
        exports.keys().collect::<Vec<_>>(),
        ["WEFT_CA_FILE", "WEFT_CONTROL_PLANE", "WEFT_TOKEN"],
        "{output}"
    );
    let workloads = cli(&bin, home.path(), &exports, &["get", "workloads"], None);
    for name in [
        "client",
        "frontend",
        "catalog-v1",
        "catalog-v2",
        "inventory",
    ] {
        assert!(
            workloads
                .lines()
                .any(|l| l.starts_with(name) && l.contains("Healthy")),
            "{name} is not a Healthy workload:\n{workloads}"
        );
    }
    // The live views and the GUI it points to: the stats of the requests it sent, and
    // a tap of the catalog while the frontend is called, each run as printed.
    assert!(
        output.contains(&format!(
            "Open the GUI at https://127.0.0.1:{}/gui and sign in with the WEFT_TOKEN above",
            base + LAST_OFFSET
        )),
        "{output}"
    );
    assert_eq!(printed(&output, " edges "), ["edges"], "{output}");
    assert_eq!(
        printed(&output, " top "),
        ["top", "catalog.default"],
        "{output}"
    );
    let stat = printed(&output, " stat services ");
    assert_eq!(stat, ["stat", "services"], "{output}");
    let stat: Vec<&str> = stat.iter().map(String::as_str).collect();
    let mut table = String::new();
    assert!(
        eventually(Duration::from_secs(12), || {
            table = cli(&bin, home.path(), &exports, &stat, None);
            table.lines().any(|l| l.starts_with("frontend "))
        }),
        "the requests to the frontend were never reported:\n{table}"
    );
    let tap = printed(&output, " tap service ");
    assert_eq!(tap, ["tap", "service", "catalog.default"], "{output}");
    let tapping = Command::new(&bin)
        .args(&tap)
        .args(["--duration", "3s"])
        .envs(&exports)
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft tap starts");
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        get_json(frontend);
        std::thread::sleep(Duration::from_millis(100));
    }
    let tapped = tapping.wait_with_output().expect("weft tap runs");
    let lines = String::from_utf8_lossy(&tapped.stdout).into_owned();
    assert!(
        tapped.status.success(),
        "{lines}{}",
        String::from_utf8_lossy(&tapped.stderr)
    );
    assert!(
        lines
            .lines()
            .any(|l| l.contains(" inbound  GET ") && l.contains(&format!("{FRONTEND} → catalog-v"))),
        "no request from the frontend to the catalog was tapped:\n{lines}"
    );

    let shift = between(&output, "<<'EOF'\n", "EOF\n").expect("the canary heredoc");
    assert!(shift.contains("weight: 100"), "{shift}");
    let applied = cli(
        &bin,
        home.path(),
        &exports,
        &["apply", "-f", "-"],
        Some(shift),
    );
    assert!(
        applied.contains("httproute/catalog-canary configured"),
        "{applied}"
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            (0..5).all(|_| get_json(frontend)["catalog"]["version"] == "v2")
        }),
        "the canary did not shift to v2"
    );

    // What it holds, before it is told to stop.
    let descendants = descendants(pid);
    let listening = listening_sockets_of(pid);
    assert!(
        listening.contains(&frontend),
        "quickstart does not listen on {frontend}: {listening:?}"
    );

    quickstart.signal(Signal::SIGINT).expect("SIGINT");
    let status = quickstart
        .wait_exit(Duration::from_secs(20))
        .expect("quickstart exits after SIGINT");
    let output = quickstart.logs();
    assert!(status.success(), "exit status {status}:\n{output}");
    assert!(output.contains("sidecars drained"), "{output}");

    // Nothing left: no process it started, no listening port, no directory.
    let alive: Vec<u32> = descendants.iter().copied().filter(|p| alive(*p)).collect();
    assert!(alive.is_empty(), "processes left running: {alive:?}");
    let group = processes_in_group(pid);
    assert!(group.is_empty(), "processes left in its group: {group:?}");
    let still: Vec<SocketAddr> = listening_sockets()
        .into_iter()
        .map(|(addr, _)| addr)
        .filter(|addr| {
            listening.contains(addr)
                || (addr.ip().is_loopback() && (base..=base + LAST_OFFSET).contains(&addr.port()))
        })
        .collect();
    assert!(still.is_empty(), "still listening: {still:?}");
    assert!(!data_dir.exists(), "{} was not removed", data_dir.display());
    let left: Vec<_> = std::fs::read_dir(home.path())
        .expect("read the home")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    eprintln!(
        "quickstart was ready after {up:.1?}; the test took {:.1?}",
        began.elapsed()
    );
}

/// `bin`, or a hard link (else a copy) of it in `dir` if a directory above it is closed
/// to other users (a checkout under /root).
fn executable_by_others(bin: &Path, dir: &Path) -> PathBuf {
    let open = |p: &Path, bits: u32| {
        std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & bits == bits)
    };
    let reachable = bin.ancestors().skip(1).all(|d| open(d, 0o001)) && open(bin, 0o005);
    if reachable {
        return bin.to_owned();
    }
    let target = dir.join("weft");
    if std::fs::hard_link(bin, &target).is_err() {
        std::fs::copy(bin, &target).expect("copy the weft binary");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    target
}

/// A `--port-base` whose ports nothing listens on (another quickstart may run at the
/// default).
fn free_port_base() -> u16 {
    let taken: Vec<u16> = listening_sockets()
        .into_iter()
        .map(|(a, _)| a.port())
        .collect();
    let start = u16::try_from(std::process::id() % 8).unwrap_or(0);
    (0..8)
        .map(|i| 20000 + ((start + i) % 8) * 1000)
        .find(|base| {
            !taken
                .iter()
                .any(|p| (*base..=base + LAST_OFFSET).contains(p))
        })
        .expect("a free block of ports")
}

/// `GET http://{addr}/` as JSON, expecting 200.
fn get_json(addr: SocketAddr) -> serde_json::Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let response = runtime
        .block_on(weft_testkit::client::http1_get(addr, "frontend", "/"))
        .expect("the frontend answers");
    assert_eq!(response.status(), 200, "{:?}", response.body());
    serde_json::from_slice(response.body()).expect("JSON")
}

/// Runs the `weft` CLI with the printed environment; returns stdout, asserting success.
fn cli(
    bin: &Path,
    home: &Path,
    env: &BTreeMap<String, String>,
    args: &[&str],
    stdin: Option<&str>,
) -> String {
    let mut child = Command::new(bin)
        .args(args)
        .envs(env)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft CLI starts");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("weft CLI runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "weft {args:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The arguments of the `weft` command printed on the line that holds `needle` (the
/// words after the binary, up to the comment).
fn printed(output: &str, needle: &str) -> Vec<String> {
    let line = output
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line holds {needle:?}:\n{output}"));
    let command = line.split('#').next().unwrap_or_default();
    command
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

use weft_testkit::eventually;

// === /proc ===

/// `(pid, ppid, pgrp)` of every process.
fn processes() -> Vec<(u32, u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
            let rest = &stat[stat.rfind(')')? + 1..];
            let mut fields = rest.split_whitespace().skip(1);
            let ppid = fields.next()?.parse().ok()?;
            let pgrp = fields.next()?.parse().ok()?;
            Some((pid, ppid, pgrp))
        })
        .collect()
}

fn descendants(pid: u32) -> BTreeSet<u32> {
    let all = processes();
    let mut found = BTreeSet::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (child, ..) in all.iter().filter(|(_, ppid, _)| *ppid == parent) {
            if found.insert(*child) {
                frontier.push(*child);
            }
        }
    }
    found
}

fn processes_in_group(pgrp: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|(_, _, g)| *g == pgrp)
        .map(|(pid, ..)| pid)
        .collect()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Every listening TCP socket (IPv4 and IPv6) with its inode.
fn listening_sockets() -> Vec<(SocketAddr, u64)> {
    let mut found = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if fields.len() < 10 || fields[3] != "0A" {
                continue;
            }
            let Some((ip, port)) = fields[1].split_once(':') else {
                continue;
            };
            let Ok(port) = u16::from_str_radix(port, 16) else {
                continue;
            };
            let ip = if v6 {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            } else {
                match u32::from_str_radix(ip, 16) {
                    // The kernel prints the address as a host-order integer.
                    Ok(n) => IpAddr::V4(Ipv4Addr::from(n.to_ne_bytes())),
                    Err(_) => continue,
                }
            };
            let inode = fields[9].parse().unwrap_or(0);
            found.push((SocketAddr::new(ip, port), inode));
        }
    }
    found
}

/// The addresses `pid` listens on (its socket inodes among the listening sockets).
fn listening_sockets_of(pid: u32) -> BTreeSet<SocketAddr> {
    let inodes: BTreeSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the process's fds")
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|link| {
            link.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    listening_sockets()
        .into_iter()
        .filter(|(_, inode)| inodes.contains(inode))
        .map(|(addr, _)| addr)
        .collect()
}
