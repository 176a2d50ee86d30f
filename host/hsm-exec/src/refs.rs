//! The values behind a service's references that only the executing host knows:
//! its generated secrets (derived from the user's key, never stored) and the host
//! ports its containers are published on (chosen by hsm, kept in the state).

use std::path::Path;

use hsm_key::UserKey;
use hsm_model::{ResolveRefs, Sensitive};

use crate::state::State;

/// [`ResolveRefs`] for one service.
pub struct ServiceRefs<'a> {
    key: &'a UserKey,
    project_dir: &'a Path,
    project: &'a str,
    service: &'a str,
    state: &'a State,
}

impl<'a> ServiceRefs<'a> {
    /// The references of `service` of the project `project` in `project_dir`, with
    /// host ports from `state`.
    pub fn new(key: &'a UserKey, project_dir: &'a Path, project: &'a str, service: &'a str, state: &'a State) -> Self {
        Self { key, project_dir, project, service, state }
    }
}

impl ResolveRefs for ServiceRefs<'_> {
    fn generated(&self, name: &str) -> Result<Sensitive, String> {
        Ok(self.key.generated(self.project_dir, self.project, self.service, name))
    }

    fn host_port(&self, container: &str, port: u16) -> Result<u16, String> {
        let ports = self.state.container(self.service, container).map(|c| &c.ports);
        ports
            .and_then(|p| p.get(&format!("{port}/tcp")).or_else(|| p.get(&format!("{port}/udp"))))
            .copied()
            .ok_or_else(|| format!("port {port} of container `{container}` has no host port yet; run `hsm sync`"))
    }
}
