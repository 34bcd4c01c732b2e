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

/// Converts between two enums whose variants have the same names: the
/// generated WIT types and the core's, in the guest and in the host. A
/// variant with one payload is written `Name(x)`; its payload converts with
/// `Into`. `enum_into!(A, B { .. })` converts both ways.
#[macro_export]
macro_rules! enum_into {
    ($from:ty => $to:ty { $($variant:ident $(($payload:ident))?),* $(,)? }) => {
        impl From<$from> for $to {
            fn from(value: $from) -> Self {
                type Source = $from;
                type Target = $to;
                match value {
                    $(Source::$variant $(($payload))? => Target::$variant $(($payload.into()))?,)*
                }
            }
        }
    };
    ($a:ty, $b:ty { $($variant:ident $(($payload:ident))?),* $(,)? }) => {
        $crate::enum_into!($a => $b { $($variant $(($payload))?),* });
        $crate::enum_into!($b => $a { $($variant $(($payload))?),* });
    };
}

/// Converts between two records with the same field names (a generated WIT
/// record and the core's), each field with `Into`; `record_into!(A, B { .. })`
/// converts both ways.
#[macro_export]
macro_rules! record_into {
    ($from:ty => $to:ty { $($field:ident),* $(,)? }) => {
        impl From<$from> for $to {
            fn from(value: $from) -> Self {
                Self {
                    $($field: value.$field.into(),)*
                }
            }
        }
    };
    ($a:ty, $b:ty { $($field:ident),* $(,)? }) => {
        $crate::record_into!($a => $b { $($field),* });
        $crate::record_into!($b => $a { $($field),* });
    };
}

pub mod authorize;
pub mod classify;
pub mod connection;
pub mod effects;
pub mod events;
pub mod io;
pub mod secret;
pub mod steps;
pub mod types;

#[cfg(target_arch = "wasm32")]
mod wasm;
