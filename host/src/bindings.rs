//! The generated glue for the WIT world, and nothing else.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "token-lifecycle",
    imports: {
        // Asking for more randomness than the contract allows is a guest bug:
        // it traps rather than returning a short or long buffer.
        "pleo:oauth/random.bytes": trappable,
    },
});
