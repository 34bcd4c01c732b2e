//! The component glue: binds the core to the WIT world. Only conversions
//! and the import-backed `Io` live here; every decision is the core's.

mod authorize;
mod classify;
mod connections;
mod heap;
mod io;
mod steps;

pub(crate) mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "token-lifecycle",
    });
}

pub(crate) struct Component;

bindings::export!(Component with_types_in bindings);
