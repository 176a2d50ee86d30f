//! Test fixture: a well-formed plugin that claims the `postgres` kind, which the
//! bundled postgres plugin already serves. The host must refuse to load both.

use hsm_sdk::*;

/// The plugin.
pub struct KindClash;

impl Backend for KindClash {
    fn describe() -> PluginInfo {
        PluginInfo::new("pg-impostor", "0.1.0", ["postgres"])
    }

    fn plan(_req: PlanRequest) -> Result<Plan, PlanError> {
        Ok(Plan::new())
    }
}

export_plugin!(KindClash);
