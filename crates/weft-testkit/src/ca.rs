//! A throw-away PKI for tests: a test CA ([`weft_tls::ca::Authority`]) plus a temporary
//! directory that issued certificates are written into, as the proxy reads them from disk.
//!
//! Covers the certificates security tests need: valid workload certificates, expired
//! ones, not-yet-valid ones, and certificates from a second, unrelated CA of the same
//! trust domain ([`TestPki::unrelated`]) for "rejects certificate from other CA" tests.
//! It is not the control plane's CA; it only wraps the same `weft-tls` code for tests.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::TempDir;
use weft_tls::ca::{Authority, Issued, IssuedPaths};
use weft_tls::SpiffeId;

/// Validity of a test CA: 24 h.
pub const CA_VALIDITY: Duration = Duration::from_secs(24 * 60 * 60);

/// Validity of an issued workload certificate: 24 h.
pub const CERT_VALIDITY: Duration = Duration::from_secs(24 * 60 * 60);

/// Errors from the test PKI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Generating the CA or issuing a certificate failed.
    #[error(transparent)]
    Authority(#[from] weft_tls::ca::Error),
    /// The namespace or service account does not make a valid SPIFFE ID.
    #[error(transparent)]
    Id(#[from] weft_tls::spiffe::Error),
    /// Writing files failed.
    #[error("writing test PKI files under {path}: {source}")]
    Io {
        /// The directory written to.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A result with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A test CA and the directory its certificates are written to (removed on drop).
pub struct TestPki {
    authority: Authority,
    dir: TempDir,
    ca_path: PathBuf,
}

// === impl TestPki ===

impl TestPki {
    /// A fresh CA for `trust_domain` (valid [`CA_VALIDITY`]), its certificate written to
    /// `<dir>/ca.crt`.
    pub fn new(trust_domain: &str) -> Result<Self> {
        let authority = Authority::generate(trust_domain, CA_VALIDITY)?;
        let dir = crate::tempdir().map_err(|source| Error::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let ca_path = dir.path().join("ca.crt");
        std::fs::write(&ca_path, authority.cert_pem()).map_err(|source| Error::Io {
            path: dir.path().to_path_buf(),
            source,
        })?;
        Ok(Self {
            authority,
            dir,
            ca_path,
        })
    }

    /// A second CA for the same trust domain that shares nothing with this one: its
    /// certificates carry valid-looking SPIFFE IDs but must be rejected by workloads
    /// that trust only this CA.
    pub fn unrelated(&self) -> Result<Self> {
        Self::new(self.trust_domain())
    }

    /// The underlying authority (for CSR signing tests, custom windows, ...).
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        self.authority.trust_domain()
    }

    /// The CA certificate, PEM (the trust bundle).
    pub fn ca_pem(&self) -> String {
        self.authority.cert_pem()
    }

    /// `<dir>/ca.crt`, the trust bundle as a file.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// The directory everything is written to.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The SPIFFE ID `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`.
    pub fn id(&self, ns: &str, sa: &str) -> Result<SpiffeId> {
        Ok(SpiffeId::new(self.trust_domain(), ns, sa)?)
    }

    /// Issues a certificate for `ns`/`sa` valid now (for [`CERT_VALIDITY`]) and writes
    /// `<dir>/<ns>.<sa>/workload.{crt,key}` and `ca.crt` beside them.
    pub fn issue(&self, ns: &str, sa: &str) -> Result<IssuedPaths> {
        let issued = self.authority.issue(&self.id(ns, sa)?, CERT_VALIDITY)?;
        self.write(&issued, &format!("{ns}.{sa}"), "workload")
    }

    /// Issues a certificate for `ns`/`sa` that expired an hour ago (valid from two hours
    /// ago until one hour ago); written as `<dir>/<ns>.<sa>/expired.{crt,key}`.
    pub fn issue_expired(&self, ns: &str, sa: &str) -> Result<IssuedPaths> {
        let now = SystemTime::now();
        let hour = Duration::from_secs(60 * 60);
        self.issue_with_validity(ns, sa, now - 2 * hour, now - hour, "expired")
    }

    /// Issues a certificate for `ns`/`sa` that becomes valid in an hour; written as
    /// `<dir>/<ns>.<sa>/not-yet-valid.{crt,key}`.
    pub fn issue_not_yet_valid(&self, ns: &str, sa: &str) -> Result<IssuedPaths> {
        let now = SystemTime::now();
        let hour = Duration::from_secs(60 * 60);
        self.issue_with_validity(ns, sa, now + hour, now + 2 * hour, "not-yet-valid")
    }

    /// Issues a certificate for `ns`/`sa` with an explicit window, written as
    /// `<dir>/<ns>.<sa>/<stem>.{crt,key}`.
    pub fn issue_with_validity(
        &self,
        ns: &str,
        sa: &str,
        not_before: SystemTime,
        not_after: SystemTime,
        stem: &str,
    ) -> Result<IssuedPaths> {
        let id = self.id(ns, sa)?;
        let issued = self
            .authority
            .issue_with_validity(&id, not_before, not_after)?;
        self.write(&issued, &format!("{ns}.{sa}"), stem)
    }

    fn write(&self, issued: &Issued, subdir: &str, stem: &str) -> Result<IssuedPaths> {
        let dir = self.dir.path().join(subdir);
        issued
            .write_files(&dir, stem, &self.authority.cert_pem())
            .map_err(|source| Error::Io { path: dir, source })
    }
}

impl fmt::Debug for TestPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPki")
            .field("trust_domain", &self.trust_domain())
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}
