//! The pleo-oauth core: a sans-IO OAuth 2.0 token-lifecycle engine.
//!
//! This crate is the guest. Compiled for `wasm32-unknown-unknown` it is the
//! module that the host's build script encodes as the pleo-oauth component,
//! and the `wasm` module (present on wasm32 only) binds it to the WIT
//! contract in `wit/`. Compiled natively it is the same core as plain Rust:
//! the tests, the benchmarks and the reference host use it to compare the
//! component with the core and to name the verdict types.
//!
//! The core never reads a clock, draws random bytes or does I/O: time and
//! responses are arguments, verdicts are results. That keeps every behaviour
//! deterministic and testable faster than real time (the discipline of
//! str0m and quinn-proto).

pub mod authorize;
pub mod classify;
pub mod connection;
pub mod events;
pub mod io;
pub mod secret;
pub mod types;

#[cfg(target_arch = "wasm32")]
mod wasm;
