//! End-to-end tests: real `weft proxy` processes on simulated hosts (network
//! namespaces), real apps, real clients. They need root; without it they skip with a
//! message, unless `WEFT_E2E=required`, which makes them fail.

#![allow(unreachable_pub, clippy::unused_self)]

#[path = "../support/config.rs"]
mod config;
mod support;

mod capture;
mod control_plane;
mod identity;
mod lifecycle;
mod mtls_modes;
mod protocols;
mod run;
mod transparent;
