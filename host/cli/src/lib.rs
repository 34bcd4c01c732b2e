//! The `pleo-oauth` command line's library half: the application wiring of
//! the reference host's real backends ([`app`]), the loopback callback
//! listener and the demo. The binary (`src/main.rs`) parses
//! arguments and runs commands over it; the end-to-end tests use it too.

pub mod app;
pub mod callback_listener;
pub mod demo;
