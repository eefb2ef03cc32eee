//! JWT verification for the edge: the engine a gateway listener or route will use to
//! authenticate end users by bearer token (issue 18, "JWT at the edge").
//!
//! The pieces, in the order a request meets them:
//!
//! - [`Provider`] is the configuration of one issuer (serde, camelCase, validated with
//!   field paths): issuer, audiences, where its keys come from, where tokens are read,
//!   which claims become headers, whether a token is required, the clock skew.
//! - [`JwksCache`] holds the issuer's current key set ([`jwks::KeySet`], RFC 7517: RSA,
//!   EC P-256/P-384, OKP Ed25519), read from a file or fetched over HTTPS, refreshed on
//!   an interval and when a token names an unknown `kid`; a failed refresh keeps the
//!   last good set. Requests read it without locking.
//! - [`Verifier`] (built from a provider and its cache) finds the token in a request
//!   ([`Verifier::authenticate`]), verifies it, and prepares the headers the backend
//!   gets ([`Verifier::forward`]: token stripped, claims copied).
//!
//! What a token must be to pass: at most [`MAX_TOKEN_BYTES`]; signed with RS256/384/512,
//! PS256/384/512, ES256, ES384 or EdDSA (never `none`, never HMAC, even if the key set
//! holds an `oct` key) by a key of the configured set that fits its `kid` and `alg`
//! (keys named in the token itself, `jku`/`x5u`/`jwk`, are ignored); `iss` exactly the
//! issuer; `aud` (a string or an array) naming one of the audiences; `exp` present and
//! not passed, `nbf` and `iat` (if present) not in the future, each within the clock
//! skew; `sub` a non-empty string.
//!
//! The result is a [`Verified`] whose [`principal`](Verified::principal) is
//! `<iss>/<sub>`, the request principal that authorization rules will match; or an
//! [`Error`] that is answered with `401` and the `WWW-Authenticate` value of
//! [`www_authenticate`] (RFC 6750), whose description never repeats the token.
//!
//! What it is not (yet): a resource kind, or a stage of the request path. Nothing in
//! the proxy calls it today; the gateway will compile a policy into [`Provider`]s, keep
//! one [`JwksCache`] per key source with [`JwksCache::spawn_refresh`] running, and call
//! [`Verifier::authenticate`] and [`Verifier::forward`] per request.

pub mod cache;
pub mod claims;
mod fetch;
pub mod jwks;
mod load;
mod location;
pub mod provider;
mod verify;

pub use cache::JwksCache;
pub use provider::{ClaimToHeader, FromHeader, Jwks, Provider};
pub use verify::{www_authenticate, Claim, Error, Skipped, Verified, Verifier};

/// Longest token accepted, in bytes: `8192`. Longer ones are refused before any
/// decoding; real access tokens are one or two KiB.
pub const MAX_TOKEN_BYTES: usize = 8192;

#[cfg(test)]
mod tests;
