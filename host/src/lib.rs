//! The reference wasmtime host for the pleo-oauth component.
//!
//! The component is built from `guest/` by this crate's build script and
//! embedded as [`COMPONENT`]. A [`Runtime`] compiles it once (caching the
//! compiled code on disk), and hands out [`Instance`]s, each with its own
//! store and its own [`Backends`] for the imports:
//!
//! ```no_run
//! use pleo_oauth::{Backends, Runtime, RuntimeConfig};
//! use pleo_oauth::classify::GrantKind;
//! use pleo_oauth::types::Response;
//!
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let mut instance = runtime.instance(Backends::default())?;
//! let response = Response { status: 400, headers: vec![], body: br#"{"error":"invalid_grant"}"#.to_vec() };
//! let verdict = instance.token_response(GrantKind::RefreshToken, Ok(&response), 1_700_000_000_000)?;
//! println!("{verdict:?}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The layout mirrors the contract: one module per WIT interface under
//! [`imports`], one per export ([`classify`], [`connections`],
//! [`authorize`], [`steps`]), and [`runtime`] for the engine, the
//! compiled-code cache and instance recycling.
//!
//! Two ways to drive an instance, with the same results: the methods of
//! `connections` and `authorize` (the component calls the imports, that is
//! the [`Backends`], in the middle of the call), or [`steps`] (each effect
//! comes out as data; [`Instance::run`] performs them with the same
//! backends, and a host with asynchronous I/O performs them itself).
//!
//! The runtime needs only wasmtime. The real backends and the mock server
//! are features, so an embedder gets nothing it did not ask for:
//!
//! | feature | adds |
//! |---|---|
//! | `https` | [`imports::http::HttpClient`], a blocking HTTPS client on rustls, with client secrets bound to origins |
//! | `sqlite` | [`imports::storage::SqliteStorage`], SQLite compiled in |
//! | `sealed` | [`imports::storage::SealedStorage`], tokens and flows encrypted at rest over any storage |
//! | `mock` | [`mock`], a mock Pleo (authorisation server and API) on loopback, for demos and tests |
//!
//! The `pleo-oauth` command line (the `pleo-oauth-cli` crate in `host/cli`)
//! turns them all on.

pub mod authorize;
mod bindings;
pub mod cache;
pub mod classify;
pub mod connections;
pub mod files;
pub mod imports;
#[cfg(feature = "mock")]
pub mod mock;
pub mod native;
pub mod runtime;
pub mod steps;
mod wit_types;

pub use imports::Backends;
pub use pleo_oauth_core::{secret, types};
pub use runtime::{GuestError, Instance, Runtime, RuntimeConfig, RuntimeError};

/// The pleo-oauth component, as built from `guest/` for this version.
pub const COMPONENT: &[u8] = include_bytes!(env!("PLEO_OAUTH_COMPONENT_PATH"));

/// The SHA-256 of [`COMPONENT`] in lower-case hex, computed when it was
/// built: it names the compiled-code cache file without hashing the
/// component on every start.
pub const COMPONENT_SHA256: &str = env!("PLEO_OAUTH_COMPONENT_SHA256");
