//! The sandbox hsm's backend plugins run in.
//!
//! Every service kind is handled by a WebAssembly component (the WIT world
//! `hsm:plugin/plugin`, 0.1.0, 0.2.0 or 0.3.0). This crate loads components into one wasmtime
//! engine for the process, gives each call a fresh instance with no ambient authority (no
//! files, no environment, no sockets, a fixed clock and fixed "randomness"), limits
//! each call's time, memory and output, converts values to and from the WIT types
//! (secrets become opaque handles that a plugin can place but never read), and checks
//! every action a plugin returns against the capabilities it declared and was granted
//! (with `hsm-check`, whose items it re-exports).
//!
//! The bundled plugins are built for `wasm32-wasip2` by this crate's build script
//! and precompiled with this engine's configuration, so loading them compiles
//! nothing: wasmtime maps (or copies) the native code hsm's build made for them.

mod bindings;
mod bundled;
mod cache;
mod convert;
mod engine_config;
mod host;
mod output_tail;
mod plugin;
mod sandbox;

pub use bundled::{BundledPlugin, bundled_plugins};
pub use cache::{CacheOutcome, CompileCache};
// The checks of a plugin's answer live apart from the engine (`hsm-check`).
pub use host::{Limits, LoadError, PluginHost, WIT_VERSIONS};
pub use hsm_check::{
    Capability, CheckContext, Grants, ParamSpec, PluginInfo, PluginSource, Refusal, Rename, VariableSpec, check_plan,
    env_rules, review_plan,
};
pub use hsm_model::Authenticator;
pub use plugin::{
    CallError, CallErrorKind, ConsumerInput, ContributionInput, MergeFailure, MergeInput, PlanFailure, PlanInput,
    PlannedService, Plugin, ProfileInput,
};
