//! Pieces of proxy config and CLI use that both mesh suites build the same way: the
//! in-process one (`tests/mesh`) and the network-namespace one (`tests/e2e`).

use std::path::{Path, PathBuf};

/// `ports` (`(port, protocol)`) as the flow entries of `workload.ports`.
pub fn ports(ports: &[(u16, &str)]) -> String {
    let entries: Vec<String> = ports
        .iter()
        .map(|(p, proto)| format!("{{ port: {p}, protocol: {proto} }}"))
        .collect();
    entries.join(", ")
}

/// The `certificates:` block for `certs`.
pub fn certificates(certs: &weft_tls::ca::IssuedPaths) -> String {
    format!(
        "certificates:\n  cert: {}\n  key: {}\n  trustBundle: {}\n",
        certs.cert.display(),
        certs.key.display(),
        certs.trust_bundle.display(),
    )
}

/// The arguments of `weft token workload` for `default/<sa>` granting `labels`.
pub fn workload_token_args(sa: &str, labels: &[(&str, &str)]) -> Vec<String> {
    let mut args: Vec<String> = [
        "token",
        "workload",
        "--namespace",
        "default",
        "--service-account",
        sa,
    ]
    .map(str::to_owned)
    .to_vec();
    for (k, v) in labels {
        args.extend(["--label".to_owned(), format!("{k}={v}")]);
    }
    args
}

/// Writes the token `weft token workload` printed in `out` to `<dir>/<sa>.token`.
pub fn save_workload_token(out: &str, dir: &Path, sa: &str) -> PathBuf {
    let token = out
        .lines()
        .find(|l| l.split('.').count() == 3 && !l.contains(' '))
        .unwrap_or_else(|| panic!("no token in:\n{out}"))
        .to_owned();
    let path = dir.join(format!("{sa}.token"));
    std::fs::write(&path, token + "\n").expect("write token");
    path
}
