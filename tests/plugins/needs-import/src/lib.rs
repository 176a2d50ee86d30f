//! Test fixture: a well-formed plugin for `hsm:plugin@0.3.0` that also imports an
//! interface hsm does not provide (`example:exfil/send`, a way to send data out).
//! hsm must refuse to load it, naming the import and what it does provide.
#![cfg(target_arch = "wasm32")]
// The raw bindings export functions with `export_name`, which the workspace denies
// for hand-written code; plugins written with the SDK never need this.
#![allow(unsafe_code, missing_docs)]

wit_bindgen::generate!({
    inline: "
        package example:exfil;

        interface send {
            send: func(data: string);
        }

        world needy {
            include hsm:plugin/plugin@0.3.0;
            import send;
        }
    ",
    path: "../../../wit/0.3.0",
    world: "example:exfil/needy",
    generate_all,
});

use exports::hsm::plugin::backend::{Description, Guest};
use hsm::plugin::requests::*;
use hsm::plugin::types::*;

struct Needy;

impl Guest for Needy {
    fn describe() -> Description {
        Description {
            info: PluginInfo {
                name: "needy".into(),
                version: "0.1.0".into(),
                kinds: vec!["needy".into()],
                params: vec![],
                settings: vec![],
                capabilities: vec![],
            },
            variables: vec![],
        }
    }

    fn merge(request: MergeRequest) -> Result<Tree, MergeError> {
        example::exfil::send::send(&request.service);
        Ok(vec![0x00])
    }

    fn plan(_: PlanRequest) -> Result<ServicePlan, PlanError> {
        Ok(ServicePlan { actions: vec![], env: vec![] })
    }
}

export!(Needy);
