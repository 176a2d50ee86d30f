//! Pre-flight: everything that can be found wrong with the plan before anything
//! is touched (names that run together, references that can't be resolved,
//! files that would climb out of their plugin's folder) is bad input, reported
//! while the engine is still as it was.

use std::collections::HashMap;

use hsm_plan::{Action, Endpoint, Plan, Probe, ServicePlan, Wait};

use super::{Syncer, containers_of, plugin_name};
use crate::error::ExecError;
use crate::names::ProjectId;
use crate::refs::ServiceRefs;

impl Syncer<'_> {
    /// Resolves, before anything is touched, every reference the plan's containers,
    /// execs and probes hold (host ports that will be chosen count as resolved) and
    /// checks that probe addresses have port numbers: a reference that can't be
    /// resolved is bad input, reported before any change.
    pub(super) fn check_references(&self) -> Result<(), ExecError> {
        let state = self.state.lock().expect("state lock");
        for svc in &self.plan.services {
            let refs = PlannedRefs {
                inner: ServiceRefs::new(self.cx.key, &self.cx.project.dir, &self.cx.project.name, &svc.name, &state),
                svc,
            };
            let reference = |message: String| ExecError::Reference { service: svc.name.clone(), message };
            let value = |t: &hsm_model::Text| t.expose(self.cx.secrets, &refs).map_err(reference);
            let exec_texts = |e: &hsm_plan::Exec| -> Result<(), ExecError> {
                e.command.iter().chain(e.env.iter().map(|(_, v)| v)).try_for_each(|t| value(t).map(drop))
            };
            let address = |endpoint: &Endpoint| -> Result<(), ExecError> {
                if let Endpoint::Address { host, port } = endpoint {
                    value(host)?;
                    if value(port)?.expose().parse::<u16>().is_err() {
                        return Err(reference(format!("`{port}` of a readiness probe is not a port number")));
                    }
                }
                Ok(())
            };
            for action in &svc.actions {
                match action {
                    Action::EnsureContainer(c) => {
                        c.env
                            .iter()
                            .map(|(_, v)| v)
                            .chain(c.command.iter().flatten())
                            .try_for_each(|t| value(t).map(drop))?;
                    }
                    Action::Exec(e) | Action::Wait(Wait { probe: Probe::Exec(e), .. }) => exec_texts(e)?,
                    Action::Wait(Wait { probe: Probe::Tcp { endpoint }, .. }) => address(endpoint)?,
                    Action::Wait(Wait { probe: Probe::Http { endpoint, headers, .. }, .. }) => {
                        address(endpoint)?;
                        headers.iter().try_for_each(|(_, v)| value(v).map(drop))?;
                    }
                    Action::WriteFile(_) | Action::UvInstall { .. } => {}
                }
            }
        }
        Ok(())
    }

    /// Before anything changes: every file the plan writes and every bind source
    /// stays inside its plugin's folder (a symlink planted there is refused now,
    /// not after the network was created). Nothing is created.
    pub(super) fn check_plugin_files(&self) -> Result<(), ExecError> {
        for svc in &self.plan.services {
            let plugin = plugin_name(svc);
            let written = svc.actions.iter().filter_map(|a| match a {
                Action::WriteFile(f) => Some((f.plugin.as_str(), f.path.as_str(), false)),
                _ => None,
            });
            let bound = containers_of(svc).flat_map(|c| &c.mounts).filter_map(|m| match m {
                hsm_plan::Mount::Bind { source, .. } => Some((plugin.as_str(), source.as_str(), true)),
                hsm_plan::Mount::Volume { .. } => None,
            });
            for (plugin, rel, followed) in written.chain(bound) {
                crate::plugin_files::PluginDir::check_inside(&self.cx.project, plugin, rel, followed)
                    .map_err(|e| ExecError::File { path: format!(".hsm/{plugin}/{rel}"), message: e.to_string() })?;
            }
        }
        Ok(())
    }
}

/// A service's references as pre-flight sees them: a host port of a port the
/// service publishes resolves (to its recorded number, or 0 until it is chosen),
/// any other fails.
struct PlannedRefs<'a> {
    inner: ServiceRefs<'a>,
    svc: &'a ServicePlan,
}

impl hsm_model::ResolveRefs for PlannedRefs<'_> {
    fn generated(&self, name: &str) -> Result<hsm_model::Sensitive, String> {
        self.inner.generated(name)
    }

    fn host_port(&self, container: &str, port: u16) -> Result<u16, String> {
        let published =
            containers_of(self.svc).any(|c| c.name == container && c.ports.iter().any(|p| p.container_port == port));
        if published {
            Ok(self.inner.host_port(container, port).unwrap_or(0))
        } else {
            Err(format!("port {port} of container `{container}` is not published by service `{}`", self.svc.name))
        }
    }
}

/// Refuses a plan in which two services would give a container (or a volume) the
/// same Docker name: `{project}-{service}-{name}` is ambiguous (`b-c` + `x` and
/// `b` + `c-x`). Checked before anything is touched; otherwise the second create
/// would fail half-way with a misleading "belongs to" error.
pub fn check_names(plan: &Plan, project: &ProjectId) -> Result<(), ExecError> {
    let mut containers: HashMap<String, &str> = HashMap::new();
    let mut volumes: HashMap<String, &str> = HashMap::new();
    for svc in &plan.services {
        for c in containers_of(svc) {
            let mut names = vec![("container", project.container(&svc.name, &c.name))];
            for m in &c.mounts {
                if let hsm_plan::Mount::Volume { volume, .. } = m {
                    names.push(("volume", project.volume(&svc.name, volume)));
                }
            }
            for (kind, name) in names {
                let seen = if kind == "container" { &mut containers } else { &mut volumes };
                match seen.get(&name) {
                    Some(other) if *other != svc.name => {
                        return Err(ExecError::NameClash {
                            kind,
                            name,
                            first: (*other).to_string(),
                            second: svc.name.clone(),
                        });
                    }
                    _ => {
                        seen.insert(name, &svc.name);
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use hsm_model::Explain;
    use hsm_plan::Plan;

    use super::*;
    use crate::sync::testing::{bare_container, service};

    #[test]
    fn two_services_whose_container_names_run_together_are_refused() {
        let container = bare_container;
        let plan = Plan {
            project: "a".into(),
            services: vec![
                service("b-c", hsm_plan::Mode::Managed, vec![container("x")]),
                service("b", hsm_plan::Mode::Managed, vec![container("c-x")]),
            ],
            tasks: Vec::new(),
        };
        let project = ProjectId::new("a", std::path::Path::new("/nonexistent/a"));
        let err = check_names(&plan, &project).unwrap_err();
        assert_eq!(err.to_string(), "services `b-c` and `b` would both name a container `a-b-c-x`");
        assert!(err.is_input(), "nothing was touched");
        let fine = Plan { project: "a".into(), services: plan.services[..1].to_vec(), tasks: Vec::new() };
        assert!(check_names(&fine, &project).is_ok());
    }
}
