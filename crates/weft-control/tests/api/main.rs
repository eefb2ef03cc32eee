//! The HTTP API end to end over an in-memory store: CRUD of every kind in JSON and
//! YAML, validation and concurrency errors, apply, label selectors, watch, OpenAPI,
//! limits, the proxy directory, operator and workload tokens, and the server's side of
//! the `/openapi.json` contract (parameters, content negotiation, `Allow`); and the
//! GUI's static files beside it.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "../support/memory_store.rs"]
mod memory_store;

mod harness;

mod auth;
mod gui;
mod requests;
mod resources;
mod secrets;
mod watch;
