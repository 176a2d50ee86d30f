//! Host bindings generated from the WIT, one module per released version. Later
//! versions get their own module here and a conversion to the latest types, so
//! plugins built against an older WIT keep loading.

/// `hsm:plugin@0.1.0`.
pub(crate) mod v0_1 {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
        world: "hsm:plugin/plugin@0.1.0",
    });
}

/// The latest version's types.
pub(crate) use v0_1 as latest;
