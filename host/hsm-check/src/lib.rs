//! What hsm checks in a plugin's answer before anything runs, apart from the
//! WebAssembly engine that produced it (`hsm-runtime`): what a plugin declares
//! about itself ([`PluginInfo`]), the capabilities the user granted it, and every
//! action and variable of its plan ([`check_plan`], [`review_plan`]). Without
//! wasmtime it builds in seconds, so the checks are fuzzed on their own
//! (`fuzz/fuzz_targets/plan_check.rs`).

pub mod check;
pub mod env_rules;
pub mod info;
#[doc(hidden)] // For hsm-runtime, which quotes plugins' words the same way.
pub mod words;

use hsm_plan::{Action, ConsumerEnv};

pub use check::{CheckContext, Grants, Refusal, Rename, check_plan, review_plan};
pub use info::{Capability, ParamSpec, PluginInfo, PluginSource, VariableSpec};

/// What a plugin planned for a service, converted but not yet checked (see
/// [`check_plan`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedService {
    /// The actions, in order.
    pub actions: Vec<Action>,
    /// The environment per consumer.
    pub env: Vec<ConsumerEnv>,
}
