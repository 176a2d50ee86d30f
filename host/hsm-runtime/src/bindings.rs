//! Host bindings generated from the WIT, one module per released version, so that
//! plugins built against an older WIT keep loading (a test loads a committed
//! plugin built for 0.1.0).
//!
//! What the host sends is borrowed (`…Param<'a>` types: strings and slices of the
//! caller's own data, or for 0.2.0 the bytes of its encoded trees, lowered straight
//! into the plugin's memory); what it receives is owned (`…Result` types). Copying every request into owned types before
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
/// they are 0.1.0's Rust types: what a plugin returns (its description, plans and
/// errors) is converted by one piece of code whatever its version. Sound because
/// wasmtime checks a component's records, variants and enums against these Rust
/// types by field and case names and types, in order (never by the type's own
/// name), when a typed function is looked up at instantiation: a 0.2.0 plugin
/// whose types differ fails to start (`describe` reports it). It compiles only
/// while the names bindgen would give 0.2.0's types (`Requester<'a>`,
/// `ServicePlan`, …) are those it gave 0.1.0's: a later version that uses a type
/// in another direction may need its own module.
pub(crate) mod v0_2 {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    wasmtime::component::bindgen!({
        path: "../../wit/0.2.0",
        world: "hsm:plugin/plugin@0.2.0",
        ownership: Borrowing { duplicate_if_necessary: true },
        with: { "hsm:plugin/types@0.2.0": super::v0_1::hsm::plugin::types },
    });
}

/// `hsm:plugin@0.3.0`. Its `types` are 0.2.0's (so 0.1.0's Rust types, as above)
/// and its `requests` are 0.2.0's: only `describe` changed, to return the
/// variables a plugin sets besides its `plugin-info`.
pub(crate) mod v0_3 {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    wasmtime::component::bindgen!({
        path: "../../wit/0.3.0",
        world: "hsm:plugin/plugin@0.3.0",
        ownership: Borrowing { duplicate_if_necessary: true },
        with: {
            "hsm:plugin/types@0.3.0": super::v0_1::hsm::plugin::types,
            "hsm:plugin/requests@0.3.0": super::v0_2::hsm::plugin::requests,
        },
    });
}

/// `hsm:plugin@0.4.0`. Its `types` are its own (merge errors carry a hint,
/// containers an init and a stop signal), so they are the Rust types every
/// version's answers are converted to (`convert/v0_4.rs` upgrades 0.1.0's); its
/// `requests` are 0.2.0's, so a request is written once for 0.2.0 and later.
pub(crate) mod v0_4 {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    wasmtime::component::bindgen!({
        path: "../../wit/0.4.0",
        world: "hsm:plugin/plugin@0.4.0",
        ownership: Borrowing { duplicate_if_necessary: true },
        with: { "hsm:plugin/requests@0.4.0": super::v0_2::hsm::plugin::requests },
    });
}
