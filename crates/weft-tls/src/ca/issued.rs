//! Certificates the CA issued with keys it generated, and writing them to files.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A freshly issued leaf certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Issued {
    /// The leaf certificate only (no CA certificate).
    pub cert_pem: String,
    /// The leaf's private key, PKCS#8 PEM.
    pub key_pem: String,
}

/// Where [`Issued::write_files`] put the files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedPaths {
    /// `STEM.crt`: the leaf certificate.
    pub cert: PathBuf,
    /// `STEM.key`: the private key, mode 0600.
    pub key: PathBuf,
    /// `ca.crt`: the trust bundle.
    pub trust_bundle: PathBuf,
}

// === impl Issued ===

impl Issued {
    /// Writes `STEM.crt` (leaf), `STEM.key` (mode 0600) and `ca.crt` (`ca_pem`, the trust
    /// bundle) into `dir`, creating `dir` if needed. Existing files are overwritten.
    pub fn write_files(&self, dir: &Path, stem: &str, ca_pem: &str) -> io::Result<IssuedPaths> {
        fs::create_dir_all(dir)?;
        let paths = IssuedPaths {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
            trust_bundle: dir.join("ca.crt"),
        };
        fs::write(&paths.cert, &self.cert_pem)?;
        write_private(&paths.key, self.key_pem.as_bytes())?;
        fs::write(&paths.trust_bundle, ca_pem)?;
        Ok(paths)
    }
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` applies only when the file is created; tighten a pre-existing one too.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    fs::write(path, contents)
}
