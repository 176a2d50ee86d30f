//! Test fixture: a plugin built against `hsm:plugin@0.2.0` with the raw WIT
//! bindings, not the SDK, so its merge can return any bytes as a tree. What it
//! returns depends on the service name:
//!
//! - `echo`: the first contribution's params, byte for byte as the host sent them;
//! - `spy`: a text showing every byte it received;
//! - `big`: a 1.5 MB string;
//! - `forged-handle`, `unknown-tag`, `trailing`, `truncated`, `not-utf8`,
//!   `twice`: trees that break the format's rules;
//! - anything else: an empty tree (null).
#![cfg(target_arch = "wasm32")]
// The raw bindings export functions with `export_name`, which the workspace denies
// for hand-written code; plugins written with the SDK never need this.
#![allow(unsafe_code, missing_docs)]

wit_bindgen::generate!({ path: "../../../wit/0.2.0", world: "hsm:plugin/plugin@0.2.0" });

use exports::hsm::plugin::backend::Guest;
use hsm::plugin::requests::*;
use hsm::plugin::types::*;

struct HostileBytes;

impl Guest for HostileBytes {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile-bytes".into(),
            version: "0.1.0".into(),
            kinds: vec!["hostile-bytes".into()],
            params: vec![],
            settings: vec![],
            capabilities: vec![],
        }
    }

    fn merge(request: MergeRequest) -> Result<Tree, MergeError> {
        Ok(match request.service.as_str() {
            "echo" => request.contributions.into_iter().next().map(|c| c.params).unwrap_or_default(),
            "spy" => {
                // Every byte, as text where it is text.
                let mut seen = String::from_utf8_lossy(&request.defaults).into_owned();
                for c in &request.contributions {
                    seen.push_str(&format!(" {:?} {} {}", c.from, c.origin, String::from_utf8_lossy(&c.params)));
                }
                let mut tree = vec![0x05];
                let mut len = seen.len();
                while len >= 0x80 {
                    tree.push((len as u8) | 0x80);
                    len >>= 7;
                }
                tree.push(len as u8);
                tree.extend_from_slice(seen.as_bytes());
                tree
            }
            // One string of 1.5 MB: within the hostcall fuel, beyond the budget.
            "big" => {
                let mut tree = vec![0x05, 0xe0, 0xc6, 0x5b];
                tree.resize(tree.len() + 1_500_000, b'x');
                tree
            }
            // A text holding a secret by a handle it was never given.
            "forged-handle" => vec![0x06, 1, 0x01, 99, 0],
            "unknown-tag" => vec![0x42],
            "trailing" => vec![0x00, 0x00],
            // A list of three values that holds one.
            "truncated" => vec![0x07, 3, 0x00],
            "not-utf8" => vec![0x05, 2, 0xc3, 0x28],
            "twice" => vec![0x08, 2, 1, b'k', 0x00, 1, b'k', 0x01],
            _ => Vec::new(),
        })
    }

    fn plan(_: PlanRequest) -> Result<ServicePlan, PlanError> {
        Ok(ServicePlan { actions: vec![], env: vec![] })
    }
}

export!(HostileBytes);
