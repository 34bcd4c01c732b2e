//! The component glue: binds the core to the WIT world. Only conversions
//! and the import-backed `Io` live here; every decision is the core's.

mod authorize;
mod classify;
mod connections;
mod io;

pub(crate) mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "component",
    });
}

pub(crate) struct Component;

bindings::export!(Component with_types_in bindings);

/// Converts between two enums whose unit variants have the same names.
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
pub(crate) use unit_enum;
