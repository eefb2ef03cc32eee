//! Why an issuer's key set could not be loaded: the error of [`super::cache`] and of
//! the HTTPS fetch it uses, kept apart so neither imports the other.

use std::path::PathBuf;
use std::time::Duration;

use http::StatusCode;

use super::jwks;

/// Why a key set could not be loaded or refreshed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `jwks` config is not valid (checked again here for callers that skipped
    /// [`super::provider::Provider::validate`]).
    #[error("invalid jwks config: {0}")]
    Config(weft_api::proxy::ValidationErrors),
    /// The CA bundle could not be read or holds no usable certificate.
    #[error("jwks.caBundle {path}: {detail}")]
    CaBundle {
        /// The configured path.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The TLS client could not be configured.
    #[error("building the TLS client for jwks.uri: {0}")]
    Tls(#[source] rustls::Error),
    /// The key-set file could not be read.
    #[error("reading jwks.file {path}: {source}")]
    Read {
        /// The configured path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A step of fetching the URL failed.
    #[error("fetching {uri}: {what} failed: {detail}")]
    Fetch {
        /// The configured URL.
        uri: String,
        /// The step: connecting, the TLS handshake, sending the request…
        what: &'static str,
        /// The underlying error.
        detail: String,
    },
    /// The server answered something other than `200 OK`.
    #[error("fetching {uri}: the server answered {status}, expected 200 OK (redirects are not followed; configure the final URL)")]
    Status {
        /// The configured URL.
        uri: String,
        /// The status received.
        status: StatusCode,
    },
    /// The fetch took longer than `jwks.timeout`.
    #[error("fetching {uri}: no complete answer within {after:?} (jwks.timeout)")]
    Timeout {
        /// The configured URL.
        uri: String,
        /// The timeout.
        after: Duration,
    },
    /// The document is larger than [`MAX_DOCUMENT_BYTES`].
    #[error("the key set at {from} is larger than {max} bytes")]
    TooLarge {
        /// The file or URL.
        from: String,
        /// The limit.
        max: usize,
    },
    /// The document is not a usable key set.
    #[error("the key set at {from}: {source}")]
    Parse {
        /// The file or URL.
        from: String,
        /// Why it is not usable.
        source: jwks::Error,
    },
}
