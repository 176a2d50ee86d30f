//! `hsm export compose`: the plan as a Compose file (the Compose specification,
//! which Compose v2 reads and docker-compose 1.29 too). Each container is a
//! service; the containers of one hsm service share its network namespace, as in
//! a pod; each exec is a one-shot service in that namespace that starts once its
//! server is healthy; packages' environments reach their services by name.

use std::collections::BTreeMap;

use hsm_plan::{Container, Mount, Plan, Protocol, RestartPolicy, Wait};
use serde_json::{Map, Value, json};

use crate::probe::{self, Check};
use crate::refs::{Syntax, Vars, escape};
use crate::{Export, ExportError, Managed, Step, bound_files, consumers, container_action, header, managed};

/// What to add to the exported stack.
#[derive(Clone, Debug, Default)]
pub struct ComposeOptions {
    /// Packages to run as services of the stack, with their images: each gets its
    /// environment and starts after the services it uses are ready.
    pub packages: Vec<(String, String)>,
}

/// The plan as a Compose file (`compose.yaml`), the files its services bind, and
/// each package's environment.
pub fn compose(plan: &Plan, options: &ComposeOptions) -> Result<Export, ExportError> {
    let managed = managed(plan)?;
    let mut vars = Vars::default();
    let mut services = Map::new();
    let mut volumes = Map::new();
    let mut files = BTreeMap::new();
    // What a package's service waits for: each service it uses, ready and set up.
    let mut ready_when: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for m in &managed {
        let s = &m.plan.name;
        // A healthcheck can't wait for a one-shot service: a wait after an exec
        // has no faithful form here.
        let first_exec = m.steps.iter().find_map(|st| if let Step::Exec(n, _) = st { Some(*n) } else { None });
        if let Some(late) = m.steps.iter().find_map(|st| match st {
            Step::Wait(n, _) if first_exec.is_some_and(|e| *n > e) => Some(*n),
            _ => None,
        }) {
            return Err(m.action_error(
                late,
                "a wait after an exec: a Compose healthcheck can't wait for a one-shot service to finish",
            ));
        }
        let name_of =
            |c: &Container| if c.name == m.containers[0].name { s.clone() } else { format!("{s}-{}", c.name) };
        for (i, c) in m.containers.iter().enumerate() {
            let mut entry = container(m, c, &mut vars, &mut volumes, &mut files)?;
            if i == 0 {
                let ports = ports(m)?;
                if !ports.is_empty() {
                    entry.insert("ports".into(), Value::Array(ports));
                }
            } else {
                entry.insert("network_mode".into(), json!(format!("service:{s}")));
                entry.insert("depends_on".into(), json!({ s: { "condition": "service_started" } }));
            }
            let waits: Vec<&Wait> = m
                .steps
                .iter()
                .filter_map(|st| match st {
                    Step::Wait(_, w) if probe::check(&w.probe).is_ok_and(|(on, _)| on == c.name) => Some(*w),
                    _ => None,
                })
                .collect();
            if !waits.is_empty() {
                entry.insert("healthcheck".into(), healthcheck(&waits));
                ready_when.entry(s).or_default().insert(name_of(c), json!({ "condition": "service_healthy" }));
            }
            insert(&mut services, name_of(c), entry, m)?;
        }
        let mut before: Vec<String> = Vec::new();
        for step in &m.steps {
            let Step::Exec(n, exec) = step else { continue };
            let c = m.container(&exec.container).expect("checked by managed()");
            let mut entry = container(m, c, &mut vars, &mut volumes, &mut files)?;
            entry.remove("command");
            let argv = exec.command.iter().map(|t| vars.render(t, s, Syntax::Compose)).collect::<Result<Vec<_>, _>>();
            entry.insert("entrypoint".into(), json!(argv.map_err(|why| m.action_error(*n, why))?));
            let env = entry.entry("environment").or_insert_with(|| json!({}));
            for (k, v) in &exec.env {
                let v = vars.render(v, s, Syntax::Compose).map_err(|why| m.action_error(*n, why))?;
                env[k] = json!(v);
            }
            if let Some(user) = &exec.user {
                entry.insert("user".into(), json!(user));
            }
            entry.insert("network_mode".into(), json!(format!("service:{s}")));
            entry.insert("restart".into(), json!("no"));
            // After every wait before it, on any of the service's containers.
            let mut depends = Map::new();
            depends.insert(name_of(c), json!({ "condition": "service_started" }));
            for other in &m.containers {
                if m.wait_before(&other.name, *n).is_some() {
                    depends.insert(name_of(other), json!({ "condition": "service_healthy" }));
                }
            }
            for one_shot in &before {
                depends.insert(one_shot.clone(), json!({ "condition": "service_completed_successfully" }));
            }
            entry.insert("depends_on".into(), Value::Object(depends));
            let one_shot = format!("{s}-exec-{}", before.len() + 1);
            ready_when
                .entry(s)
                .or_default()
                .insert(one_shot.clone(), json!({ "condition": "service_completed_successfully" }));
            insert(&mut services, one_shot.clone(), entry, m)?;
            before.push(one_shot);
        }
        ready_when.entry(s).or_default().entry(s.clone()).or_insert_with(|| json!({ "condition": "service_started" }));
    }

    let mut env = BTreeMap::new();
    for (consumer, list) in consumers(plan)? {
        let mut rendered = Vec::new();
        for (name, value, service) in &list {
            let v = vars.render(value, &service.name, Syntax::Compose).map_err(|why| ExportError {
                plugin: service.plugin.clone(),
                service: service.name.clone(),
                action: None,
                why: format!("`{name}` of `{consumer}`: {why}"),
            })?;
            rendered.push((name.to_string(), v));
        }
        env.insert(consumer, rendered);
    }
    for (package, image) in &options.packages {
        if services.contains_key(package) {
            return Err(ExportError {
                plugin: String::new(),
                service: package.clone(),
                action: None,
                why: format!("package `{package}` would have the name of a service of the stack"),
            });
        }
        let mut entry = Map::new();
        entry.insert("image".into(), json!(image));
        let vars_of = env.get(package).cloned().unwrap_or_default();
        if !vars_of.is_empty() {
            entry
                .insert("environment".into(), Value::Object(vars_of.into_iter().map(|(k, v)| (k, json!(v))).collect()));
        }
        let mut depends = Map::new();
        for service in plan.services.iter().filter(|s| s.env.iter().any(|e| e.consumer.package() == Some(package))) {
            if let Some(conditions) = ready_when.get(service.name.as_str()) {
                depends.extend(conditions.clone());
            }
        }
        if !depends.is_empty() {
            entry.insert("depends_on".into(), Value::Object(depends));
        }
        services.insert(package.clone(), Value::Object(entry));
    }

    let mut doc = Map::new();
    doc.insert("services".into(), Value::Object(services));
    if !volumes.is_empty() {
        let volumes: Map<String, Value> = volumes.keys().map(|v| (v.clone(), json!({}))).collect();
        doc.insert("volumes".into(), Value::Object(volumes));
    }
    let yaml = serde_saphyr::to_string(&Value::Object(doc)).expect("a JSON tree serializes");
    files.insert("compose.yaml".to_string(), format!("{}{yaml}", header("compose", &plan.project)));
    Ok(Export { files, scripts: Vec::new(), variables: vars.into_list(), env })
}

/// Adds a Compose service; a name taken already (two hsm services whose names
/// run together) is refused.
fn insert(
    services: &mut Map<String, Value>,
    name: String,
    entry: Map<String, Value>,
    m: &Managed<'_>,
) -> Result<(), ExportError> {
    if services.contains_key(&name) {
        return Err(m.error(format!("its Compose service `{name}` would have the name of another one")));
    }
    services.insert(name, Value::Object(entry));
    Ok(())
}

/// A container's image, command, environment, mounts and restart policy. Bound
/// files are written next to the Compose file, under `files/<plugin>/`. Every
/// string a plugin chose is escaped where Compose interpolates (`$` as `$$`): a
/// plugin can't make Compose read the user's variables. (Image references and user
/// names can't hold a `$`: the host refused them.)
fn container(
    m: &Managed<'_>,
    c: &Container,
    vars: &mut Vars,
    volumes: &mut Map<String, Value>,
    files: &mut BTreeMap<String, String>,
) -> Result<Map<String, Value>, ExportError> {
    let s = &m.plan.name;
    let n = container_action(m, c);
    let render = |vars: &mut Vars, t| vars.render(t, s, Syntax::Compose).map_err(|why| m.action_error(n, why));
    let mut entry = Map::new();
    entry.insert("image".into(), json!(c.image));
    if let Some(command) = &c.command {
        let argv = command.iter().map(|t| render(vars, t)).collect::<Result<Vec<_>, _>>()?;
        entry.insert("command".into(), json!(argv));
    }
    if !c.env.is_empty() {
        let mut env = Map::new();
        for (k, v) in &c.env {
            env.insert(k.clone(), json!(render(vars, v)?));
        }
        entry.insert("environment".into(), Value::Object(env));
    }
    let mut mounts = Vec::new();
    for mount in &c.mounts {
        mounts.push(match mount {
            Mount::Volume { volume, target, read_only } => {
                let name = format!("{s}-{volume}");
                // One volume per (service, volume): another service's may not share its name.
                match volumes.get(&name) {
                    Some(Value::String(owner)) if owner != s => {
                        return Err(m.error(format!("its volume `{name}` would have the name of service `{owner}`'s")));
                    }
                    _ => drop(volumes.insert(name.clone(), json!(s))),
                }
                json!({ "type": "volume", "source": name, "target": escape(target, Syntax::Compose), "read_only": read_only })
            }
            Mount::Bind { source, target, read_only } => {
                let path = bound_files(m, source, files).map_err(|why| m.action_error(n, why))?;
                let source = escape(&format!("./{path}"), Syntax::Compose);
                json!({ "type": "bind", "source": source, "target": escape(target, Syntax::Compose), "read_only": read_only })
            }
        });
    }
    if !mounts.is_empty() {
        entry.insert("volumes".into(), Value::Array(mounts));
    }
    let restart = match c.restart {
        RestartPolicy::No => "no",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::UnlessStopped => "unless-stopped",
        RestartPolicy::Always => "always",
    };
    entry.insert("restart".into(), json!(restart));
    if c.init {
        entry.insert("init".into(), json!(true));
    }
    if let Some(signal) = &c.stop_signal {
        entry.insert("stop_signal".into(), json!(signal));
    }
    Ok(entry)
}

/// Every container's ports, published by the service's first container (they
/// share its network namespace): a fixed host port as fixed, any other on a
/// variable that defaults to the container's port.
fn ports(m: &Managed<'_>) -> Result<Vec<Value>, ExportError> {
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for c in &m.containers {
        for p in &c.ports {
            let proto = match p.protocol {
                Protocol::Tcp => "",
                Protocol::Udp => "/udp",
            };
            if let Some(other) = seen.insert((p.container_port, proto), &c.name) {
                return Err(m.error(format!(
                    "containers `{other}` and `{}` both use port {}{proto}, which a shared network namespace can't hold",
                    c.name, p.container_port
                )));
            }
            let host = match p.host_port {
                Some(port) => port.to_string(),
                None => format!(
                    "${{{}:-{}}}",
                    crate::refs::generated_name(&m.plan.name, &format!("port-{}", p.container_port)),
                    p.container_port
                ),
            };
            let ip = if p.host_ip.contains(':') { format!("[{}]", p.host_ip) } else { p.host_ip.clone() };
            out.push(json!(format!("{ip}:{host}:{}{proto}", p.container_port)));
        }
    }
    Ok(out)
}

/// A healthcheck that passes when every wait on the container would: one
/// command (exec probes run as they are, others in a shell), timed as the waits
/// are.
fn healthcheck(waits: &[&Wait]) -> Value {
    let checks: Vec<Check> = waits.iter().map(|w| probe::check(&w.probe).expect("checked by managed()").1).collect();
    let test = match checks.as_slice() {
        [Check::Argv(argv)] => {
            let mut t = vec!["CMD".to_string()];
            t.extend(argv.iter().map(|a| a.replace('$', "$$")));
            t
        }
        _ => {
            let line = checks.iter().map(|c| format!("({})", c.shell())).collect::<Vec<_>>().join(" && ");
            vec!["CMD-SHELL".to_string(), line.replace('$', "$$")]
        }
    };
    // A healthcheck goes on for the container's life: once a second at most.
    let interval = waits.iter().map(|w| w.interval_ms).min().unwrap_or(1000).max(1000);
    let timeout = waits.iter().map(|w| w.timeout_ms).max().unwrap_or(60_000);
    json!({
        "test": test,
        "interval": duration(interval),
        "timeout": duration(interval.max(5_000)),
        "retries": timeout.div_ceil(interval).max(1),
    })
}

/// A duration as Compose writes it: `2s`, `1500ms`.
fn duration(ms: u32) -> String {
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}
