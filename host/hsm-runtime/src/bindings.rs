//! Host bindings generated from the WIT, one module per released version. Only
//! `0.1.0` exists so far; when a version whose types differ is released, it gets a
//! module here and the host converts the older versions' types to the latest, so
//! plugins built against an older WIT keep loading (a test loads a committed
//! plugin built for 0.1.0).
//!
//! What the host sends is borrowed (`…Param<'a>` types: strings and slices of the
//! caller's own data, lowered straight into the plugin's memory); what it receives
//! is owned (`…Result` types). Copying every request into owned types before
//! lowering it cost a cold plan of 10,000 packages about 6 % of its CPU.

/// `hsm:plugin@0.1.0`.
pub(crate) mod v0_1 {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
        world: "hsm:plugin/plugin@0.1.0",
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

/// The latest version's types.
pub(crate) use v0_1 as latest;
