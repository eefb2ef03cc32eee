//! Operator authentication: the admin token (DESIGN §7, "every control-plane API call
//! is authenticated").
//!
//! One admin token per store: 256 random bits, base64url, prefixed `weft-admin-`. The
//! store keeps only its SHA-256 (secret [`ADMIN_TOKEN_SECRET`], hex); the plaintext is
//! known only to the instance that created it, which writes it to a local file (mode
//! 0600, see [`write_token_file`]) for `weft token admin` to print.
//!
//! Every API route except `/healthz` and `/readyz` requires
//! `Authorization: Bearer <token>`: without one the answer is `401 Unauthorized` (with
//! `WWW-Authenticate: Bearer`), with a wrong one `403 Forbidden`. Presented tokens are
//! hashed and compared with the stored hash in constant time.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::digest::{digest, SHA256};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::error::Error as ApiError;
use crate::store::{Store, StoreError};

/// Store secret holding the SHA-256 of the admin token, as 64 lowercase hex digits.
pub const ADMIN_TOKEN_SECRET: &str = "admin/token-sha256";

/// Prefix of every admin token, so a leaked one is recognisable.
pub const ADMIN_TOKEN_PREFIX: &str = "weft-admin-";

/// Name of the file, in the control plane's data directory, holding the plaintext token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Paths open without a token: liveness and readiness probes.
pub const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// Checks presented admin tokens against the stored hash.
#[derive(Clone)]
pub struct AdminAuth {
    hash: [u8; 32],
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth").finish_non_exhaustive()
    }
}

/// The admin token state of a store, as [`AdminAuth::load_or_create`] found it.
pub struct Loaded {
    /// The checker.
    pub auth: AdminAuth,
    /// The plaintext token when this call created it (the only time it is known).
    pub created: Option<String>,
}

/// Why the admin token could not be loaded, created or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored hash is not 64 hex digits.
    #[error("the stored admin token hash (secret {ADMIN_TOKEN_SECRET:?}) is corrupt")]
    Corrupt,
    /// The system random generator failed.
    #[error("cannot generate the admin token: the system random generator failed")]
    Random,
    /// The token file could not be written.
    #[error("cannot write the admin token to {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

// === impl AdminAuth ===

impl AdminAuth {
    /// A checker accepting exactly `token`.
    pub fn for_token(token: &str) -> Self {
        AdminAuth {
            hash: sha256(token),
        }
    }

    /// The store's admin token: the stored hash if there is one, else a new token whose
    /// hash is stored first (instances starting together agree on one: the loser gets
    /// the winner's hash and no plaintext).
    pub async fn load_or_create(store: &dyn Store) -> Result<Loaded, Error> {
        if let Some(stored) = store.secret(ADMIN_TOKEN_SECRET).await? {
            return Ok(Loaded {
                auth: AdminAuth::from_stored(&stored)?,
                created: None,
            });
        }
        let token = generate_token()?;
        let auth = AdminAuth::for_token(&token);
        let ours = hex(&auth.hash).into_bytes();
        let stored = store.create_secret(ADMIN_TOKEN_SECRET, &ours).await?;
        if stored == ours {
            Ok(Loaded {
                auth,
                created: Some(token),
            })
        } else {
            Ok(Loaded {
                auth: AdminAuth::from_stored(&stored)?,
                created: None,
            })
        }
    }

    fn from_stored(stored: &[u8]) -> Result<Self, Error> {
        let text = std::str::from_utf8(stored)
            .map_err(|_| Error::Corrupt)?
            .trim();
        if text.len() != 64 {
            return Err(Error::Corrupt);
        }
        let mut hash = [0u8; 32];
        for (i, byte) in hash.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2).ok_or(Error::Corrupt)?, 16)
                .map_err(|_| Error::Corrupt)?;
        }
        Ok(AdminAuth { hash })
    }

    /// Whether `token` is the admin token (constant time in the token's content).
    pub fn accepts(&self, token: &str) -> bool {
        let presented = sha256(token);
        presented
            .iter()
            .zip(self.hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// A fresh admin token: `weft-admin-` and 256 random bits in unpadded base64url.
pub fn generate_token() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Error::Random)?;
    Ok(format!(
        "{ADMIN_TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Writes `token` to `path` atomically (a temporary file in the same directory, mode
/// 0600, renamed over `path`), creating the directory if missing.
pub fn write_token_file(path: &Path, token: &str) -> Result<(), Error> {
    let fail = |source| Error::Write {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let name = path.file_name().map_or_else(
        || ADMIN_TOKEN_FILE.to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        use std::os::unix::fs::OpenOptionsExt as _;
        // A leftover from a crash may have another mode; start from nothing.
        match std::fs::remove_file(&temp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(token.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.map_err(fail)
}

/// The middleware on [`router`](super::router): requires the admin token on every path
/// but [`OPEN_PATHS`].
pub(super) async fn require_admin(
    State(auth): State<Arc<AdminAuth>>,
    request: Request,
    next: Next,
) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    match bearer(request.headers()) {
        None => (
            [(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            ApiError::unauthorized(
                "this API needs the admin token: send `Authorization: Bearer <token>`; \
                 get the token with `weft token admin` on the control-plane host and give it \
                 to the CLI with --token, $WEFT_TOKEN or `token:` in ~/.config/weft/config.yaml",
            ),
        )
            .into_response(),
        Some(token) if auth.accepts(token) => next.run(request).await,
        Some(_) => ApiError::forbidden(
            "the admin token is wrong; get the current one with `weft token admin` \
             on the control-plane host",
        )
        .into_response(),
    }
}

/// The token of an `Authorization: Bearer …` header, if there is one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn sha256(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_prefixed_base64url_of_256_bits_and_differ() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_ne!(a, b);
        let body = a.strip_prefix(ADMIN_TOKEN_PREFIX).unwrap();
        assert_eq!(body.len(), 43, "32 bytes in unpadded base64");
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .unwrap();
        assert_eq!(decoded.len(), 32);
    }

    #[test]
    fn only_the_same_token_is_accepted_and_the_stored_hash_round_trips() {
        let auth = AdminAuth::for_token("weft-admin-abc");
        assert!(auth.accepts("weft-admin-abc"));
        assert!(!auth.accepts("weft-admin-abd"));
        assert!(!auth.accepts(""));
        let stored = AdminAuth::from_stored(hex(&auth.hash).as_bytes()).unwrap();
        assert!(stored.accepts("weft-admin-abc"));
        assert!(matches!(
            AdminAuth::from_stored(b"not hex"),
            Err(Error::Corrupt)
        ));
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively_and_other_schemes_are_none() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer  t0k "));
        assert_eq!(bearer(&headers), Some("t0k"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic dXNlcg=="));
        assert_eq!(bearer(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn the_token_file_is_written_atomically_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(ADMIN_TOKEN_FILE);
        write_token_file(&path, "weft-admin-x").unwrap();
        write_token_file(&path, "weft-admin-y").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "weft-admin-y\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
