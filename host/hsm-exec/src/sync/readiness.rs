//! Readiness: the plan's waits, a probe tried until it passes or times out (a
//! container that exits or restarts meanwhile fails it at once), and whether a
//! service was already seen ready so that a no-op sync probes nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::ContainerStateStatusEnum;
use hsm_plan::{Endpoint, Probe, Protocol, ServicePlan, Wait};

use super::exec::shown_command;
use super::{Decision, Observed, Syncer, containers_of};
use crate::error::ExecError;
use crate::probe::Resolved;
use crate::refs::ServiceRefs;
use crate::report::Event;
use crate::state::State;

/// The shortest and longest time one probe attempt may take.
const ATTEMPT_MIN: Duration = Duration::from_secs(1);
const ATTEMPT_MAX: Duration = Duration::from_secs(10);

impl Syncer<'_> {
    pub(super) async fn wait(
        &self,
        svc: &ServicePlan,
        w: &Wait,
        ids: &HashMap<String, String>,
    ) -> Result<(), ExecError> {
        let probe = self.resolve_probe(svc, &w.probe, ids).await?;
        let watched_short = match &w.probe {
            Probe::Tcp { endpoint: Endpoint::ContainerPort { container, .. } }
            | Probe::Http { endpoint: Endpoint::ContainerPort { container, .. }, .. } => Some(container.clone()),
            Probe::Exec(e) => Some(e.container.clone()),
            _ => containers_of(svc).next().map(|c| c.name.clone()),
        };
        // Looked at by id (what this run created or kept), named for people.
        let watched = watched_short.as_ref().map(|c| self.cx.project.container(&svc.name, c));
        let watched_id = watched_short.as_ref().and_then(|c| ids.get(c)).cloned();
        let restarts_at_start = match &watched_id {
            Some(id) => self.docker.inspect(id).await?.and_then(|i| i.restart_count).unwrap_or(0),
            None => 0,
        };
        let describe = probe.describe();
        self.op(Some(&svc.name), &format!("wait for {describe}"));
        let timeout_ms = self.options.wait_timeout_ms.unwrap_or(w.timeout_ms);
        self.cx.reporter.event(Event::WaitStarted { service: &svc.name, probe: &describe, timeout_ms });
        let start = Instant::now();
        let timeout = Duration::from_millis(u64::from(timeout_ms));
        let interval = Duration::from_millis(u64::from(w.interval_ms.max(50)));
        let finished = |ok: bool| {
            self.cx.reporter.event(Event::WaitFinished {
                service: &svc.name,
                ok,
                elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        };
        loop {
            // An attempt gets what is left of the wait, but at least a second: a
            // `docker exec` on a busy machine takes hundreds of milliseconds, and
            // a last attempt cut shorter would report its own timeout instead of
            // what the probe said.
            let left = timeout.saturating_sub(start.elapsed());
            let failure = match probe.attempt(&self.docker, left.clamp(ATTEMPT_MIN, ATTEMPT_MAX)).await {
                Ok(()) => {
                    finished(true);
                    return Ok(());
                }
                // What the probe printed can hold a secret: redacted before it is shown.
                Err(f) => self.redact(&f),
            };
            self.cx.reporter.event(Event::WaitRetry { service: &svc.name, failure: &failure });
            // A container that stopped, or that Docker restarted since the wait began
            // (it crashed), will not become ready: say so at once.
            if let (Some(name), Some(id)) = (&watched, &watched_id)
                && let Some(inspect) = self.docker.inspect(id).await?
                && let Some(s) = inspect.state
                && (matches!(
                    s.status,
                    Some(
                        ContainerStateStatusEnum::EXITED
                            | ContainerStateStatusEnum::DEAD
                            | ContainerStateStatusEnum::RESTARTING
                    )
                ) || inspect.restart_count.unwrap_or(0) > restarts_at_start)
            {
                finished(false);
                let logs = self.redact_lines(self.docker.logs_tail(id, 15).await);
                return Err(ExecError::Exited {
                    service: svc.name.clone(),
                    container: name.clone(),
                    code: s.exit_code.unwrap_or(-1),
                    logs,
                });
            }
            if start.elapsed() + interval > timeout {
                finished(false);
                let logs = match &watched_id {
                    Some(id) => self.redact_lines(self.docker.logs_tail(id, 15).await),
                    None => Vec::new(),
                };
                return Err(ExecError::NotReady {
                    service: svc.name.clone(),
                    failure,
                    timeout_ms,
                    container: watched,
                    logs,
                });
            }
            tokio::time::sleep(interval).await;
        }
    }

    pub(crate) async fn resolve_probe(
        &self,
        svc: &ServicePlan,
        probe: &Probe,
        ids: &HashMap<String, String>,
    ) -> Result<Resolved, ExecError> {
        // A container is reached by the id this run created or kept, never by name.
        let target = |short: &str| -> Result<(String, String), ExecError> {
            let name = self.cx.project.container(&svc.name, short);
            let id = ids.get(short).cloned().ok_or_else(|| ExecError::Reference {
                service: svc.name.clone(),
                message: format!("container `{name}` does not exist"),
            })?;
            Ok((id, name))
        };
        let reference = |message: String| ExecError::Reference { service: svc.name.clone(), message };
        let value = |t: &hsm_model::Text| -> Result<String, ExecError> {
            let state = self.state.lock().expect("state lock");
            let refs = ServiceRefs::new(self.cx.key, &self.cx.project.dir, &self.cx.project.name, &svc.name, &state);
            t.expose(self.cx.secrets, &refs).map(|s| s.into_exposed()).map_err(reference)
        };
        let address = |host: &hsm_model::Text, port: &hsm_model::Text| -> Result<(String, u16), ExecError> {
            let h = value(host)?;
            let p = value(port)?;
            let p = p.parse().map_err(|_| reference(format!("`{}` is not a port number", port.display())))?;
            Ok((h, p))
        };
        // What people see of an address: its references, never its values.
        let shown_address = |host: &hsm_model::Text, port: &hsm_model::Text| format!("{host}:{port}");
        match probe {
            Probe::Tcp { endpoint: Endpoint::Address { host, port } } => {
                let shown = shown_address(host, port);
                let (host, port) = address(host, port)?;
                Ok(Resolved::Tcp { host, port, shown })
            }
            Probe::Tcp { endpoint: Endpoint::ContainerPort { container, port } } => {
                let (id, name) = target(container)?;
                let network = self.cx.project.network();
                let ip = self
                    .docker
                    .inspect(&id)
                    .await?
                    .and_then(|i| i.network_settings)
                    .and_then(|n| n.networks)
                    .and_then(|mut n| n.remove(&network))
                    .and_then(|e| e.ip_address)
                    .filter(|ip| !ip.is_empty())
                    .ok_or_else(|| reference(format!("container `{name}` has no address on network `{network}`")))?;
                let shown = format!("{ip}:{port}");
                Ok(Resolved::Tcp { host: ip, port: *port, shown })
            }
            Probe::Http { endpoint, path, tls, status, headers } => {
                if *tls {
                    return Err(ExecError::Unsupported(format!(
                        "service `{}`: HTTPS readiness probes are not supported yet",
                        svc.name
                    )));
                }
                let (host, port, shown) = match endpoint {
                    Endpoint::Address { host, port } => {
                        let shown = shown_address(host, port);
                        let (h, p) = address(host, port)?;
                        (h, p, shown)
                    }
                    Endpoint::ContainerPort { container, port } => {
                        let spec = containers_of(svc).find(|c| &c.name == container).and_then(|c| {
                            c.ports.iter().find(|p| p.container_port == *port && p.protocol == Protocol::Tcp)
                        });
                        let host_ip = spec.map_or("127.0.0.1".to_string(), |p| p.host_ip.clone());
                        let host_port = spec.and_then(|p| p.host_port).or_else(|| {
                            let state = self.state.lock().expect("state lock");
                            state
                                .container(&svc.name, container)
                                .and_then(|c| c.ports.get(&format!("{port}/tcp")).copied())
                        });
                        let host_port = host_port
                            .ok_or_else(|| reference(format!("port {port} of `{container}` is not published")))?;
                        let shown = format!("{host_ip}:{host_port}");
                        (host_ip, host_port, shown)
                    }
                };
                let mut resolved = Vec::new();
                for (name, text) in headers {
                    let state = self.state.lock().expect("state lock");
                    let refs =
                        ServiceRefs::new(self.cx.key, &self.cx.project.dir, &self.cx.project.name, &svc.name, &state);
                    resolved.push((name.clone(), text.expose(self.cx.secrets, &refs).map_err(reference)?));
                }
                Ok(Resolved::Http { host, port, path: path.clone(), status: *status, headers: resolved, shown })
            }
            Probe::Exec(e) => {
                let built = self.build_exec(svc, e).map_err(reference)?;
                let (id, name) = target(&e.container)?;
                Ok(Resolved::Exec {
                    container: id,
                    name,
                    cmd: built.cmd.into_iter().map(hsm_model::Sensitive::new).collect(),
                    env: built.env,
                    user: e.user.clone(),
                    shown: shown_command(&e.command),
                })
            }
        }
    }
}

/// Whether a service's readiness waits are already satisfied: it has containers,
/// and every one was kept and seen ready since it last started. A service without
/// containers (an external one) has nothing that could have been seen ready, so its
/// waits always run.
pub(super) fn seen_ready(svc: &ServicePlan, decisions: &HashMap<(String, String), &Observed>, state: &State) -> bool {
    let mut containers = containers_of(svc).peekable();
    containers.peek().is_some()
        && containers.all(|c| {
            let Some(o) = decisions.get(&(svc.name.clone(), c.name.clone())) else { return false };
            let recorded = state.container(&svc.name, &c.name);
            o.decision == Decision::Keep
                && o.started_at.is_some()
                && recorded.is_some_and(|r| r.id == o.id && r.ready_at == o.started_at)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::testing::{bare_container, service, wait_for_address};

    #[test]
    fn a_service_without_containers_is_never_taken_as_seen_ready() {
        let external = service("db", hsm_plan::Mode::External, vec![wait_for_address()]);
        assert!(!seen_ready(&external, &HashMap::new(), &State::default()), "its waits must run");
    }

    #[test]
    fn a_service_is_seen_ready_only_when_every_container_was_kept_since_it_was_ready() {
        let svc = service("db", hsm_plan::Mode::Managed, vec![bare_container("server"), wait_for_address()]);
        let observed = |decision: Decision| Observed {
            service: "db".into(),
            container: "server".into(),
            name: "p-db-server".into(),
            image: "i".into(),
            decision,
            id: Some("id1".into()),
            status: "running".into(),
            started_at: Some("t1".into()),
            image_present: true,
            published: Vec::new(),
        };
        let mut state = State::default();
        let entry = state.container_mut("db", "server");
        entry.new_instance("id1");
        entry.ready_at = Some("t1".into());
        let kept = observed(Decision::Keep);
        let decisions = HashMap::from([(("db".to_string(), "server".to_string()), &kept)]);
        assert!(seen_ready(&svc, &decisions, &state));
        let started = observed(Decision::Start);
        let decisions = HashMap::from([(("db".to_string(), "server".to_string()), &started)]);
        assert!(!seen_ready(&svc, &decisions, &state));
        state.container_mut("db", "server").ready_at = Some("t0".into());
        let decisions = HashMap::from([(("db".to_string(), "server".to_string()), &kept)]);
        assert!(!seen_ready(&svc, &decisions, &state), "restarted since it was last seen ready");
    }
}
