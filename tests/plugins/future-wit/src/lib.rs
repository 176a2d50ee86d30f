//! Test fixture: a plugin built against `hsm:plugin@9.0.0`. The host must refuse it
//! with a message naming the version it targets and the versions it supports.
#![cfg(target_arch = "wasm32")]
// The raw bindings export functions with `export_name`, which the workspace denies
// for hand-written code; plugins written with the SDK never need this.
#![allow(unsafe_code, missing_docs)]

wit_bindgen::generate!({ path: "wit", world: "hsm:plugin/plugin@9.0.0" });

use exports::hsm::plugin::backend::Guest;
use hsm::plugin::types::*;

struct Future;

impl Guest for Future {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "future".into(),
            version: "9.0.0".into(),
            kinds: vec!["future".into()],
            params: vec![],
            settings: vec![],
            capabilities: vec![],
        }
    }

    fn merge(_request: MergeRequest) -> Result<Tree, MergeError> {
        Ok(Tree { nodes: vec![Node::Null] })
    }

    fn plan(_request: PlanRequest) -> Result<ServicePlan, PlanError> {
        Ok(ServicePlan { actions: vec![], env: vec![] })
    }
}

export!(Future);
