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
//! [`imports`], one per export ([`classify`]), and [`runtime`] for the
//! engine, the compiled-code cache and instance recycling.

pub mod app;
pub mod authorize;
mod bindings;
pub mod cache;
pub mod callback_listener;
pub mod classify;
pub mod connections;
pub mod demo;
pub mod files;
pub mod imports;
pub mod mock;
pub mod native;
pub mod runtime;
mod wit_types;

pub use imports::Backends;
pub use pleo_oauth_core::{secret, types};
pub use runtime::{GuestError, Instance, Runtime, RuntimeConfig, RuntimeError};

/// The pleo-oauth component, as built from `guest/` for this version.
pub const COMPONENT: &[u8] = include_bytes!(env!("PLEO_OAUTH_COMPONENT_PATH"));
