//! Host bindings generated from the WIT, one module per released version, so that
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

/// `hsm:plugin@0.2.0`. Its `types` are 0.1.0's less what moved to `requests`, so
/// they are 0.1.0's Rust types (the component model compares records by their
/// fields, not their names): what a plugin returns (its description, plans and
/// errors) is converted by one piece of code whatever its version.
pub(crate) mod v0_2 {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    wasmtime::component::bindgen!({
        path: "../../wit/0.2.0",
        world: "hsm:plugin/plugin@0.2.0",
        ownership: Borrowing { duplicate_if_necessary: true },
        with: { "hsm:plugin/types@0.2.0": super::v0_1::hsm::plugin::types },
    });
}
