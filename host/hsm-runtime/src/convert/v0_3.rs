//! `hsm:plugin@0.3.0`'s conversions: what it adds to 0.2.0 is `describe`'s
//! declared variables (its requests and trees are 0.2.0's, see [`super::v0_2`]),
//! which later versions keep.

use super::{Budget, info_from_wit};
use crate::bindings::v0_3::exports::hsm::plugin::backend as b3;
use crate::bindings::v0_4::hsm::plugin::types as w;
use hsm_check::env_rules;
use hsm_check::{PluginInfo, VariableSpec};

/// The most variables a plugin may declare.
const MAX_VARIABLES: usize = 256;

/// A 0.3.0 plugin's self-description: its `plugin-info`, checked as every
/// version's is, with the variables it declares.
pub(crate) fn description_from_wit(d: b3::Description, budget: &mut Budget) -> Result<PluginInfo, String> {
    let variables = d.variables.into_iter().map(|v| (v.name, v.description)).collect();
    declared(d.info, variables, budget)
}

/// A self-description of 0.3.0 or later: `info` and the variables it declares,
/// by name and description.
pub(crate) fn declared(
    info: impl Into<w::PluginInfo>,
    variables: Vec<(String, String)>,
    budget: &mut Budget,
) -> Result<PluginInfo, String> {
    let mut info = info_from_wit(info, budget)?;
    info.variables = Some(variables_from_wit(variables, budget)?);
    Ok(info)
}

/// The variables a plugin declares, checked as its other declarations are: names
/// hsm accepts, in none of the families no plugin may set, each once, with
/// one-line printable descriptions.
fn variables_from_wit(variables: Vec<(String, String)>, budget: &mut Budget) -> Result<Vec<VariableSpec>, String> {
    if variables.len() > MAX_VARIABLES {
        return Err(format!("it declares {} variables; at most {MAX_VARIABLES} are allowed", variables.len()));
    }
    let mut out: Vec<VariableSpec> = Vec::with_capacity(variables.len());
    for (name, description) in variables {
        budget.take_str(&name).map_err(|e| e.to_string())?;
        budget.take_str(&description).map_err(|e| e.to_string())?;
        if !env_rules::is_env_name(&name) {
            return Err(format!("it declares `{}`, which is not a variable name", name.escape_debug()));
        }
        if let Some(why) = env_rules::refused_name(&name) {
            return Err(format!("it declares variable {why}"));
        }
        if description.chars().any(char::is_control) || hsm_model::text::needs_escape(&description) {
            return Err(format!("the description of `{name}` holds control characters"));
        }
        if out.iter().any(|v| v.name == name) {
            return Err(format!("it declares variable `{name}` twice"));
        }
        out.push(VariableSpec { name, description });
    }
    Ok(out)
}
