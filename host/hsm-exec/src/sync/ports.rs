//! Host ports: hsm chooses a free one for each published port that does not fix
//! its own, keeps it across recreations (recorded in the state), and moves it
//! when another program took it. Docker's "port taken" errors are told apart.

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};

use hsm_plan::{Container, Protocol, ServicePlan};

use super::{Syncer, containers_of};
use crate::error::ExecError;
use crate::report::{Change, ChangeKind};
use crate::spec;
use crate::state::{State, key_protocol, port_key};

impl Syncer<'_> {
    /// Checks that the container's host ports are free. A port hsm chose that is now
    /// taken is chosen anew (reported; returns `false` so that the container is
    /// recreated with it); a fixed port that is taken is an error. With `create`,
    /// ports still unchosen are chosen. The container's own ports count as free:
    /// `published`, those it holds now (running), and `configured`, those it is
    /// set to publish (an interrupted run may be starting it), except a chosen
    /// port the state records for another container too, which that one may hold.
    pub(super) fn ports_free(
        &self,
        svc: &ServicePlan,
        c: &Container,
        create: bool,
        published: &[(u16, Protocol)],
        configured: &[(u16, Protocol)],
    ) -> Result<bool, ExecError> {
        let own = |port: u16, protocol: Protocol, shared: bool| {
            published.contains(&(port, protocol)) || (!shared && configured.contains(&(port, protocol)))
        };
        let free = |ip: &str, port: u16, protocol: Protocol| own(port, protocol, false) || is_free(ip, port, protocol);
        let mut all_free = true;
        for port in &c.ports {
            let key = port_key(port.container_port, port.protocol);
            if let Some(fixed) = port.host_port {
                if !free(&port.host_ip, fixed, port.protocol) {
                    return Err(ExecError::PortTaken {
                        service: svc.name.clone(),
                        container: c.name.clone(),
                        port: fixed,
                        fixed: true,
                    });
                }
                // Recorded too, so that `hsm env` finds every port in one place.
                self.state.lock().expect("state lock").container_mut(&svc.name, &c.name).ports.insert(key, fixed);
                continue;
            }
            let current = self
                .state
                .lock()
                .expect("state lock")
                .container(&svc.name, &c.name)
                .and_then(|s| s.ports.get(&key).copied());
            let claims = current.map(|p| {
                let state = self.state.lock().expect("state lock");
                claims(&state, &self.plan.services, (&svc.name, &c.name), p, port.protocol)
            });
            let first = claims.as_ref().and_then(|c| c.first.clone());
            // A port recorded for another container too may be held by that one:
            // only this container's live bindings, or the OS, can tell.
            let shared = claims.as_ref().is_some_and(|c| c.shared);
            let kept =
                |p: u16| first.is_none() && (own(p, port.protocol, shared) || is_free(&port.host_ip, p, port.protocol));
            match current {
                Some(p) if kept(p) => {}
                Some(p) => {
                    all_free = false;
                    if create {
                        let new = self.choose_port(&port.host_ip, port.protocol)?;
                        self.state
                            .lock()
                            .expect("state lock")
                            .container_mut(&svc.name, &c.name)
                            .ports
                            .insert(key.clone(), new);
                        self.report(Change {
                            service: Some(svc.name.clone()),
                            action: ChangeKind::MovedPort,
                            subject: format!("{}:{} {p} → {new}", c.name, port.container_port),
                            reason: Some(match &first {
                                Some(other) => format!("port {p} is {other}'s"),
                                None if shared => {
                                    format!("port {p} was recorded for another container too, which holds it")
                                }
                                None => format!("port {p} was taken by another program"),
                            }),
                        });
                    }
                }
                None => {
                    // Never chosen: an existing container can't be using it, so it is
                    // created anew with it.
                    all_free = false;
                    let new = self.choose_port(&port.host_ip, port.protocol)?;
                    self.state.lock().expect("state lock").container_mut(&svc.name, &c.name).ports.insert(key, new);
                }
            }
        }
        Ok(all_free)
    }

    /// A free host port that no other container of this run was given, that the
    /// state doesn't record for a container (a stopped one holds none, and the OS
    /// could hand its port out again) and that the plan doesn't fix for one (a
    /// service not started yet doesn't hold it either).
    pub(super) fn choose_port(&self, host_ip: &str, protocol: Protocol) -> Result<u16, ExecError> {
        let mut reserved: BTreeSet<u16> = {
            let state = self.state.lock().expect("state lock");
            state
                .services
                .values()
                .flat_map(|s| s.containers.values())
                .flat_map(|c| c.ports.values().copied())
                .collect()
        };
        let fixed = self.plan.services.iter().flat_map(containers_of).flat_map(|c| &c.ports);
        reserved.extend(fixed.filter_map(|p| p.host_port));
        let mut chosen = self.chosen.lock().expect("chosen lock");
        choose(&mut chosen, &reserved, || free_port(host_ip, protocol))
            .map_err(|e| ExecError::Unsupported(format!("cannot find a free port on {host_ip}: {e}")))
    }
}

/// Who else claims a host port a container of `service` was given (its `at`).
#[derive(Debug, PartialEq, Eq)]
struct Claims {
    /// The container that has the port before this one, if any: one the plan fixes
    /// it for, or, recorded for it in the state, one before this one (by service,
    /// then container name). An older hsm could choose one port for two
    /// containers: stopped, neither holds it, so both passed the port check and
    /// the second start failed. The first keeps the port; the others move.
    first: Option<String>,
    /// Whether the state records it for another container too (that one may be
    /// running on it).
    shared: bool,
}

fn claims(state: &State, plan: &[ServicePlan], at: (&str, &str), port: u16, protocol: Protocol) -> Claims {
    let name = |(s, c): (&str, &str)| format!("`{c}` of service `{s}`");
    let fixed = plan.iter().find_map(|s| {
        containers_of(s)
            .filter(|c| (s.name.as_str(), c.name.as_str()) != at)
            .find(|c| c.ports.iter().any(|p| p.host_port == Some(port) && p.protocol == protocol))
            .map(|c| name((&s.name, &c.name)))
    });
    let recorded: Vec<(&str, &str)> = state
        .services
        .iter()
        .flat_map(|(s, svc)| svc.containers.iter().map(move |(c, state)| ((s.as_str(), c.as_str()), state)))
        .filter(|(other, state)| {
            *other != at && state.ports.iter().any(|(key, &p)| p == port && key_protocol(key) == protocol)
        })
        .map(|(other, _)| other)
        .collect();
    let before = recorded.iter().find(|other| **other < at).map(|other| name(*other));
    Claims { first: fixed.or(before), shared: !recorded.is_empty() }
}

/// Draws ports until one is neither `chosen` nor `reserved` (20 draws at most), and
/// adds it to `chosen`.
fn choose(
    chosen: &mut BTreeSet<u16>,
    reserved: &BTreeSet<u16>,
    mut draw: impl FnMut() -> std::io::Result<u16>,
) -> std::io::Result<u16> {
    for _ in 0..20 {
        let port = draw()?;
        if !reserved.contains(&port) && chosen.insert(port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("every port drawn was already given to a container"))
}

/// A Docker error on start that means a host port is taken becomes
/// [`ExecError::PortTaken`], naming the port Docker could not bind (read from its
/// message), else the container's only host port.
pub(super) fn port_error(e: ExecError, svc: &ServicePlan, c: &Container, ports: &spec::HostPorts) -> ExecError {
    match &e {
        ExecError::Docker { message, .. }
            if message.contains("address already in use") || message.contains("port is already allocated") =>
        {
            let host_ports: BTreeSet<u16> = c
                .ports
                .iter()
                .filter_map(|p| p.host_port.or_else(|| ports.get(&port_key(p.container_port, p.protocol)).copied()))
                .collect();
            let only = (host_ports.len() == 1).then(|| host_ports.first().copied()).flatten();
            match taken_port(message).or(only) {
                Some(port) => ExecError::PortTaken {
                    service: svc.name.clone(),
                    container: c.name.clone(),
                    port,
                    fixed: c.ports.iter().any(|p| p.host_port == Some(port)),
                },
                None => e,
            }
        }
        _ => e,
    }
}

/// The host port in Docker's "port taken" messages: `Bind for 127.0.0.1:5432
/// failed: port is already allocated`, `listen tcp4 127.0.0.1:5432: bind: address
/// already in use`.
fn taken_port(message: &str) -> Option<u16> {
    let address = if let Some((_, rest)) = message.split_once("Bind for ") {
        rest.split_whitespace().next()?
    } else {
        let (_, rest) = message.split_once("listen ")?;
        rest.split_whitespace().nth(1)?.trim_end_matches(':')
    };
    address.rsplit_once(':')?.1.parse().ok()
}

fn is_free(host_ip: &str, port: u16, protocol: Protocol) -> bool {
    match protocol {
        Protocol::Tcp => TcpListener::bind((host_ip, port)).is_ok(),
        Protocol::Udp => UdpSocket::bind((host_ip, port)).is_ok(),
    }
}

fn free_port(host_ip: &str, protocol: Protocol) -> std::io::Result<u16> {
    match protocol {
        Protocol::Tcp => Ok(TcpListener::bind((host_ip, 0))?.local_addr()?.port()),
        Protocol::Udp => Ok(UdpSocket::bind((host_ip, 0))?.local_addr()?.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_given_or_reserved_is_never_chosen_again() {
        let mut chosen = BTreeSet::from([40001]);
        let reserved = BTreeSet::from([40002]);
        let mut draws = [40001, 40002, 40003, 40003].into_iter();
        let mut draw = || Ok(draws.next().expect("a draw"));
        assert_eq!(choose(&mut chosen, &reserved, &mut draw).unwrap(), 40003);
        // 40003 is given now: the next draw of it is refused, and so is every later one.
        let mut again = || Ok(40003);
        let err = choose(&mut chosen, &reserved, &mut again).unwrap_err();
        assert!(err.to_string().contains("already given"), "{err}");
        assert_eq!(chosen, BTreeSet::from([40001, 40003]));
    }

    #[test]
    fn a_port_claimed_twice_belongs_to_the_fixed_then_the_first_container() {
        let mut state = State::default();
        let mut record = |s: &str, c: &str, key: &str, port: u16| {
            state.container_mut(s, c).ports.insert(key.to_string(), port);
        };
        record("a", "server", "80/tcp", 40001);
        record("b", "server", "80/tcp", 40001);
        record("b", "server", "53/udp", 40002);
        record("c", "server", "80/tcp", 40003);
        let none: &[ServicePlan] = &[];
        let tcp = Protocol::Tcp;
        let of_a = Some("`server` of service `a`".to_string());
        assert_eq!(claims(&state, none, ("a", "server"), 40001, tcp), Claims { first: None, shared: true });
        assert_eq!(claims(&state, none, ("b", "server"), 40001, tcp), Claims { first: of_a, shared: true });
        assert_eq!(claims(&state, none, ("c", "server"), 40003, tcp), Claims { first: None, shared: false });
        // Another protocol's port of that number is no claim; the same protocol's is.
        assert_eq!(claims(&state, none, ("c", "server"), 40002, tcp), Claims { first: None, shared: false });
        let of_b = Some("`server` of service `b`".to_string());
        assert_eq!(claims(&state, none, ("c", "server"), 40002, Protocol::Udp), Claims { first: of_b, shared: true });
        // A port the plan fixes for another container is that one's, whatever the order.
        let hsm_plan::Action::EnsureContainer(mut fixed) = crate::sync::testing::bare_container("main") else {
            unreachable!()
        };
        fixed.ports = vec![hsm_plan::Port {
            container_port: 80,
            protocol: tcp,
            host_port: Some(40003),
            host_ip: "127.0.0.1".into(),
        }];
        let plan = [crate::sync::testing::service(
            "z",
            hsm_plan::Mode::Managed,
            vec![hsm_plan::Action::EnsureContainer(fixed)],
        )];
        let of_z = Some("`main` of service `z`".to_string());
        assert_eq!(claims(&state, &plan, ("c", "server"), 40003, tcp), Claims { first: of_z, shared: false });
    }

    /// A port taken as the container starts: a fixed one's hint is to free or change
    /// it, a chosen one's to sync again (hsm then chooses another).
    #[test]
    fn a_taken_port_says_whether_it_was_fixed_or_chosen() {
        use hsm_model::Explain as _;
        let hsm_plan::Action::EnsureContainer(mut c) = crate::sync::testing::bare_container("server") else {
            unreachable!()
        };
        let port = |host_port| hsm_plan::Port {
            container_port: 5432,
            protocol: Protocol::Tcp,
            host_port,
            host_ip: "127.0.0.1".into(),
        };
        let svc = crate::sync::testing::service("db", hsm_plan::Mode::Managed, Vec::new());
        let taken = || ExecError::Docker {
            operation: "start container `p-db-server`".into(),
            message: "Bind for 127.0.0.1:40123 failed: port is already allocated".into(),
        };
        let chosen = spec::HostPorts::from([("5432/tcp".to_string(), 40123)]);
        c.ports = vec![port(None)];
        let e = port_error(taken(), &svc, &c, &chosen);
        assert!(matches!(e, ExecError::PortTaken { port: 40123, fixed: false, .. }), "{e:?}");
        assert!(e.hint().unwrap().contains("run `hsm sync` again"), "{:?}", e.hint());
        c.ports = vec![port(Some(40123))];
        let e = port_error(taken(), &svc, &c, &spec::HostPorts::new());
        assert!(matches!(e, ExecError::PortTaken { port: 40123, fixed: true, .. }), "{e:?}");
        assert!(e.hint().unwrap().contains("choose another `port`"), "{:?}", e.hint());
    }

    #[test]
    fn the_taken_port_is_read_from_dockers_message() {
        let allocated = "driver failed programming external connectivity on endpoint p-db-server (0123): Bind for 127.0.0.1:40123 failed: port is already allocated";
        assert_eq!(taken_port(allocated), Some(40123));
        let in_use = "driver failed programming external connectivity on endpoint x (y): Error starting userland proxy: listen tcp4 127.0.0.1:5433: bind: address already in use";
        assert_eq!(taken_port(in_use), Some(5433));
        let v6 = "Error starting userland proxy: listen tcp6 [::1]:6380: bind: address already in use";
        assert_eq!(taken_port(v6), Some(6380));
        assert_eq!(taken_port("address already in use"), None);
    }
}
