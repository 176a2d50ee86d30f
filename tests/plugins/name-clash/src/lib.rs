//! Test fixture: a well-formed plugin that calls itself `postgres`, the name of a
//! bundled plugin, for a kind of its own. The host must refuse it.

use hsm_sdk::*;

/// The plugin.
pub struct NameClash;

impl Backend for NameClash {
    fn describe() -> PluginInfo {
        PluginInfo::new("postgres", "0.1.0", ["postgres-lookalike"])
    }

    fn plan(_req: PlanRequest) -> Result<Plan, PlanError> {
        Ok(Plan::new())
    }
}

export_plugin!(NameClash);
