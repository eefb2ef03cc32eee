//! The operator CLI's own config file, `$XDG_CONFIG_HOME/weft/config.yaml` (default
//! `~/.config/weft/config.yaml`):
//!
//! ```yaml
//! controlPlane: https://127.0.0.1:5681  # the control plane's HTTP API
//! token: weft-admin-…                   # the admin token (`weft token admin`)
//! caFile: /etc/weft/ca.crt              # the mesh CA (the control plane's <data-dir>/ca.crt)
//! ```
//!
//! A missing file is the same as an empty one. Which address wins: `--control-plane`,
//! then `$WEFT_CONTROL_PLANE`, then this file, then [`DEFAULT_CONTROL_PLANE`]. Which
//! token: `--token`, then `$WEFT_TOKEN`, then this file, else none.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The control plane address used when nothing else names one.
pub(crate) const DEFAULT_CONTROL_PLANE: &str = "https://127.0.0.1:5681";

/// Contents of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct File {
    /// Base URL of the control plane's HTTP API. Default: [`DEFAULT_CONTROL_PLANE`].
    pub(crate) control_plane: Option<String>,
    /// The operator admin token. Keep this file private (mode 0600).
    pub(crate) token: Option<String>,
    /// The mesh CA certificate (PEM) the control plane's TLS certificate chains to
    /// (`caFile`).
    #[serde(rename = "caFile")]
    pub(crate) ca: Option<PathBuf>,
}

/// Where the admin token came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TokenFrom {
    /// `--token` or `$WEFT_TOKEN`.
    Flag,
    /// The config file at this path.
    File(PathBuf),
}

/// Where the control plane address came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `--control-plane` or `$WEFT_CONTROL_PLANE`.
    Flag,
    /// The config file at this path.
    File(PathBuf),
    /// Nothing named one.
    Default,
}

/// The config file's path: `$XDG_CONFIG_HOME/weft/config.yaml`, else
/// `$HOME/.config/weft/config.yaml`; `None` without either variable.
pub(crate) fn path(xdg_config_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let base = match (
        xdg_config_home.filter(|v| !v.is_empty()),
        home.filter(|v| !v.is_empty()),
    ) {
        (Some(xdg), _) => PathBuf::from(xdg),
        (None, Some(home)) => PathBuf::from(home).join(".config"),
        (None, None) => return None,
    };
    Some(base.join("weft").join("config.yaml"))
}

/// Reads the config file; a missing file is an empty config.
pub(crate) fn load(path: &Path) -> anyhow::Result<File> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(File::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok(File::default());
    }
    serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The control plane address and where it came from: `flag` (the flag or its
/// environment variable), else the config file, else the default.
pub(crate) fn control_plane(flag: Option<String>) -> anyhow::Result<(String, Origin)> {
    if let Some(url) = flag.filter(|u| !u.is_empty()) {
        return Ok((url, Origin::Flag));
    }
    let Some(path) = path(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    ) else {
        return Ok((DEFAULT_CONTROL_PLANE.to_owned(), Origin::Default));
    };
    match load(&path)?.control_plane {
        Some(url) => Ok((url, Origin::File(path))),
        None => Ok((DEFAULT_CONTROL_PLANE.to_owned(), Origin::Default)),
    }
}

/// The admin token and where it came from: `flag` (the flag or its environment
/// variable), else the config file's `token`, else none.
pub(crate) fn token(flag: Option<String>) -> anyhow::Result<Option<(String, TokenFrom)>> {
    if let Some(token) = flag.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) {
        return Ok(Some((token, TokenFrom::Flag)));
    }
    let Some(path) = path(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    ) else {
        return Ok(None);
    };
    Ok(load(&path)?
        .token
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .map(|t| (t, TokenFrom::File(path))))
}

/// The CA file to verify the control plane with: `flag`, else the config file's
/// `caFile`, else `ca.crt` in the control plane's default data directory.
pub(crate) fn ca_file(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = flag.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(path);
    }
    if let Some(path) = path(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    ) {
        if let Some(ca) = load(&path)?.ca {
            return Ok(ca);
        }
    }
    Ok(super::control_plane::default_data_dir().join(weft_control::server::CA_FILE))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn xdg_config_home_wins_over_home() {
        assert_eq!(
            path(Some("/x".into()), Some("/home/u".into())),
            Some(PathBuf::from("/x/weft/config.yaml"))
        );
        assert_eq!(
            path(Some("".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.config/weft/config.yaml"))
        );
        assert_eq!(path(None, None), None);
    }

    #[test]
    fn missing_file_is_an_empty_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = load(&dir.path().join("absent.yaml")).unwrap();
        assert_eq!(file.control_plane, None);
    }

    #[test]
    fn reads_control_plane_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.yaml");
        std::fs::write(&good, "controlPlane: http://10.0.0.1:5681\n").unwrap();
        assert_eq!(
            load(&good).unwrap().control_plane.as_deref(),
            Some("http://10.0.0.1:5681")
        );
        let with_token = dir.path().join("token.yaml");
        std::fs::write(&with_token, "token: weft-admin-abc\n").unwrap();
        assert_eq!(
            load(&with_token).unwrap().token.as_deref(),
            Some("weft-admin-abc")
        );
        let typo = dir.path().join("typo.yaml");
        std::fs::write(&typo, "controlplane: http://10.0.0.1:5681\n").unwrap();
        assert!(load(&typo).is_err());
    }
}
