//! Behaviour tests on an in-process mesh: proxies, a control plane (or a scripted fake)
//! and apps in this test process, each "host" a loopback address of its own. No root,
//! no network namespaces: every developer runs these. What needs hosts of their own
//! (traffic capture, transparent DNS, several addresses per host, apps under another
//! uid) stays in the namespace suite, `tests/e2e`.

#![allow(unreachable_pub, clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "../support/config.rs"]
mod config;
#[path = "../support/harness/mod.rs"]
mod harness;
#[path = "../support/observability.rs"]
mod observability;

mod access_log;
mod authorization;
mod backend;
mod bypass;
mod control_plane;
mod identity;
mod lifecycle;
mod observe;
mod prometheus;
mod protocols;
mod resilience;
mod routing;
mod security;
mod telemetry;
mod tracing;
mod traffic;
mod xds;
