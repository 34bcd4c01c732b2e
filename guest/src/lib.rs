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

/// Converts between two enums whose unit variants have the same names: the
/// generated WIT types and the core's, in the guest and in the host.
#[macro_export]
macro_rules! unit_enum {
    ($from:ty => $to:ty { $($variant:ident),* $(,)? }) => {
        impl From<$from> for $to {
            fn from(value: $from) -> Self {
                type Source = $from;
                type Target = $to;
                match value {
                    $(Source::$variant => Target::$variant,)*
                }
            }
        }
    };
}

pub mod authorize;
pub mod classify;
pub mod connection;
pub mod events;
pub mod io;
pub mod secret;
pub mod types;

#[cfg(target_arch = "wasm32")]
mod wasm;
