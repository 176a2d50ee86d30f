//! Asking a service's plugin: `merge` then `plan`, with the failures a plugin
//! reports (a conflict, a bad parameter, a missing setting) turned into
//! diagnostics located in the user's files, with a hint where one helps.

use std::borrow::Cow;

use hsm_model::{Diagnostic, Sources, Value};
use hsm_plan::{Consumer, Mode};
use hsm_resolve::{Resolution, ServiceInstance};
use hsm_runtime::{ConsumerInput, ContributionInput, MergeFailure, MergeInput, PlanFailure, PlanInput, ProfileInput};

use crate::{LoadedPlugin, PlanningError, Reach, consumer, consumers, mode, span_of, who};

/// What a service's plugin answered: the merged config and the plan, not yet checked.
pub(crate) struct Answer {
    pub(crate) merged: Value,
    pub(crate) actions: Vec<hsm_plan::Action>,
    pub(crate) env: Vec<hsm_plan::ConsumerEnv>,
}

/// Asks a service's plugin to merge its contributions and plan it; a conflict or a
/// bad parameter becomes a diagnostic pointing at the files.
pub(crate) fn ask_plugin(
    resolution: &Resolution,
    service: &ServiceInstance,
    loaded: &LoadedPlugin,
    sources: &Sources,
    reach: Reach,
) -> Result<Answer, PlanningError> {
    let plugin = &loaded.plugin;
    let contributions: Vec<ContributionInput<'_>> = service
        .contributions
        .iter()
        .map(|c| ContributionInput { from: consumer(&c.from), origin: c.origin.to_string(), params: &c.params })
        .collect();
    let merge = MergeInput { service: &service.name, kind: &service.kind, defaults: &service.defaults, contributions };
    let merged = match plugin.merge(&merge) {
        Ok(v) => v,
        Err(MergeFailure::Call(e)) => return Err(e.into()),
        Err(MergeFailure::Conflict { message, key, contributions, hint }) => {
            let mut d = Diagnostic::new(format!(
                "packages ask conflicting things of service `{}`: plugin `{}` says: {message}",
                service.name,
                plugin.name()
            ));
            for (n, i) in contributions.iter().enumerate() {
                let c = &service.contributions[*i];
                let label = format!("{} asks this", who(&c.from));
                if let Some(span) = span_of(&c.origin, sources) {
                    d = if n == 0 { d.at(span, label) } else { d.also(span, label) };
                }
            }
            let hint = match hint {
                Some(hint) => plugin_hint(plugin.name(), &hint),
                None => format!("make them agree on `{key}`, or give one of them a service of its own in the registry"),
            };
            return Err(PlanningError::Input(d.hint(hint).into()));
        }
        Err(MergeFailure::Invalid { message, key, contribution, hint }) => {
            let origin = contribution.map(|i| &service.contributions[i].origin);
            let span = origin.and_then(|o| span_of(o, sources));
            let mut d =
                Diagnostic::new(format!("service `{}`: plugin `{}` says: {message}", service.name, plugin.name()))
                    .at_opt(span, "");
            let known: Vec<&str> = plugin.info().params.iter().map(|p| p.name.as_str()).collect();
            // A suggestion only for a key the plugin does not know: a declared key
            // with a bad value (`path: ../etc`) is not a typo.
            if let Some(hint) = hint {
                d = d.hint(plugin_hint(plugin.name(), &hint));
            } else if !known.contains(&key.as_str())
                && let Some(best) = hsm_config::did_you_mean(&key, known.iter().copied())
            {
                d = d.hint(format!("did you mean `{best}`?"));
            }
            if contribution.is_none() {
                d = d.note("the registry's defaults for the service are wrong");
            }
            return Err(PlanningError::Input(d.into()));
        }
    };

    let (who, params): (Vec<Consumer>, Vec<Cow<'_, Value>>) = consumers(service).into_iter().unzip();
    let mode = mode(service);
    let input = PlanInput {
        project: &resolution.project.name,
        service: &service.name,
        kind: &service.kind,
        config: &merged,
        profile: ProfileInput { name: &service.profile.name, mode, settings: &service.profile.settings },
        consumers: who.into_iter().zip(&params).map(|(consumer, params)| ConsumerInput { consumer, params }).collect(),
        host_address: &reach.address(&service.name),
    };
    let planned = match plugin.plan(&input) {
        Ok(p) => p,
        Err(PlanFailure::Call(e)) => return Err(e.into()),
        Err(PlanFailure::Invalid { message, key }) => {
            let chosen = span_of(&service.profile.chosen_by, sources);
            // At the setting in question, where the profile wrote it.
            let at = key.as_ref().and_then(|k| service.profile.settings_at.iter().find(|(w, _)| w == k));
            let at = at.map(|(_, span)| *span);
            let d = Diagnostic::new(format!(
                "service `{}` with profile `{}` ({}): plugin `{}` says: {message}",
                service.name,
                service.profile.name,
                match mode {
                    Mode::Managed => "managed",
                    Mode::External => "external",
                },
                plugin.name()
            ));
            let d = match (at, chosen) {
                (Some(at), Some(chosen)) => d.at(at, "").also(chosen, "profile chosen here"),
                (Some(at), None) => d.at(at, ""),
                (None, chosen) => d.at_opt(chosen, "profile chosen here"),
            };
            let written = |k: &str| service.profile.settings.as_map().is_some_and(|m| m.get(k).is_some());
            let settings: Vec<&str> = plugin.info().settings.iter().map(|p| p.name.as_str()).collect();
            let d = match key {
                // A setting the plugin does not read: a typo, most likely.
                Some(key) if mode == Mode::External && written(&key) && !settings.contains(&key.as_str()) => {
                    match hsm_config::did_you_mean(&key, settings.iter().copied()) {
                        Some(best) => d.hint(format!(
                            "did you mean `{best}`? (under `profiles.{}.services.{}` in the registry)",
                            service.profile.name, service.name
                        )),
                        None => d.hint(format!(
                            "remove `{key}` from `profiles.{}.services.{}` in the registry",
                            service.profile.name, service.name
                        )),
                    }
                }
                Some(key) if mode == Mode::External && written(&key) => d.hint(format!(
                    "check `{key}` under `profiles.{}.services.{}` in the registry",
                    service.profile.name, service.name
                )),
                Some(key) if mode == Mode::External => d.hint(format!(
                    "add `{key}` under `profiles.{}.services.{}` in the registry",
                    service.profile.name, service.name
                )),
                Some(key) => d.hint(format!("check the parameter `{key}` of service `{}`", service.name)),
                None => d,
            };
            return Err(PlanningError::Input(d.into()));
        }
    };
    Ok(Answer { merged, actions: planned.actions, env: planned.env })
}

/// A plugin's hint, attributed as its messages are (the runtime made it
/// printable and bounded it).
fn plugin_hint(plugin: &str, hint: &str) -> String {
    format!("plugin `{plugin}` suggests: {hint}")
}
