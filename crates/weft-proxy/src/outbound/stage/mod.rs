//! The outbound request path, one stage per file, in the order
//! [`Outbound::request`](super::Outbound) runs them:
//!
//! 1. [`route`]: the rule for the request (or a redirect's answer) and its backend;
//! 2. [`filters`]: identity headers stripped, the rule's header edits and URL rewrite;
//! 3. [`limits`]: the destination's request limit, and the affinity key;
//! 4. [`mirror`]: copies to the rule's mirrors (and the body held for them and for
//!    retries);
//! 5. [`attempt`]: attempts to endpoints — retries, budget, backoff, per-try timeout
//!    and outlier feedback;
//! 6. [`respond`]: the answer — response header edits, the affinity cookie, failures
//!    turned into answers, and the request metric.
//!
//! Each stage is a plain function (or a small type) over concrete types: no boxing,
//! no layers (ADR 28). A stage that refuses the request returns an
//! [`Error`](crate::error::Error); the classification decides everything else. A new
//! policy is one new file here and one line in `Outbound::request`
//! (`docs/how-to-add-a-policy.md`).

pub mod attempt;
pub mod filters;
pub mod limits;
pub mod mirror;
pub mod respond;
pub mod route;
