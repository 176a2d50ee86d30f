//! Test fixture: a plugin built with the SDK for WIT 0.4.0 that says what hsm must
//! escape, bound or refuse in what 0.4.0 added. What it does depends on the
//! service name:
//!
//! - merge: `hint-escape` (a conflict whose hint holds a terminal escape and a line
//!   break), `hint-long` (an invalid parameter with a 5,000-character hint),
//!   `hint-ok` (a conflict with a plain hint);
//! - plan: `stop-bad` (a container stopped by `SIGSTOP`, which would freeze it),
//!   `stop-inject` (a stop signal with a line break), `stop-ok` (`SIGINT` and an
//!   init).

use hsm_sdk::*;

/// The plugin.
pub struct HostileWords;

impl Backend for HostileWords {
    fn describe() -> PluginInfo {
        PluginInfo::new("hostile-words", "0.1.0", ["hostile-words"]).capability(Capability::Containers)
    }

    fn merge(req: MergeRequest) -> Result<Value, MergeError> {
        match req.service.as_str() {
            "hint-escape" => Err(MergeError::conflict("clash", "db", [0]).hint("\u{1b}[2Jgive\nerror: fake")),
            "hint-long" => Err(MergeError::invalid("bad", "db", Some(0)).hint("x".repeat(5000))),
            "hint-ok" => Err(MergeError::conflict("clash", "db", [0]).hint("give each package its own `db`")),
            _ => Ok(Value::Null),
        }
    }

    fn plan(req: PlanRequest) -> Result<Plan, PlanError> {
        let server = Container::new("server", "example/server:1");
        let server = match req.service.as_str() {
            "stop-bad" => server.stop_signal("SIGSTOP"),
            "stop-inject" => server.stop_signal("SIGTERM\nLD_PRELOAD=/x.so"),
            _ => server.stop_signal("SIGINT").init(),
        };
        let mut plan = Plan::new();
        plan.action(server);
        Ok(plan)
    }
}

export_plugin!(HostileWords);
