//! `hsm export kubernetes`: the plan as manifests `kubectl apply -k` takes. Each
//! managed service is one pod (a StatefulSet when it has volumes, else a
//! Deployment) holding its containers, so that what talked to `127.0.0.1` under
//! Docker still does; each exec is a container of that pod that waits for the
//! server as the plan does, runs once and then idles; a Service names the pod's
//! ports. Secrets are Secret objects the export only references: a script it
//! writes creates them from the user's variables.

use std::collections::BTreeMap;

use hsm_model::{Piece, Text};
use hsm_plan::{Container, Exec, Mount, Plan, Probe, Protocol, Wait};
use serde_json::{Map, Value, json};

use crate::probe::{self, Check};
use crate::refs::{Syntax, Vars, shell_word};
use crate::{Export, ExportError, Managed, Step, bound_files, consumers, container_action, header, managed};

/// Options of the Kubernetes export.
#[derive(Clone, Debug, Default)]
pub struct KubeOptions {
    /// The namespace of every object; the current one when `None`.
    pub namespace: Option<String>,
}

/// A Secret the manifests reference: its name and, per key, the text of its value
/// (secrets as references) and the service whose generated secrets it reads.
#[derive(Clone, Debug)]
pub struct SecretSpec {
    /// The Secret's name.
    pub name: String,
    /// Its keys.
    pub entries: Vec<(String, Text, String)>,
}

/// The manifests, `kustomization.yaml` and `create-secrets.sh`; the Secrets'
/// specs are returned too, for a values file the user asks for.
pub fn kubernetes(plan: &Plan, options: &KubeOptions) -> Result<(Export, Vec<SecretSpec>), ExportError> {
    let managed = managed(plan)?;
    let mut k = Kube {
        vars: Vars::default(),
        files: BTreeMap::new(),
        secrets: Vec::new(),
        names: BTreeMap::new(),
        options,
        plan,
    };
    for m in &managed {
        k.service(m)?;
    }
    for (consumer, list) in consumers(plan)? {
        let name = format!("{}-env", dns(&consumer));
        let mut data = Map::new();
        let mut secret = SecretSpec { name: format!("{}-secrets", dns(&consumer)), entries: Vec::new() };
        for (var, value, service) in list {
            match in_network(value) {
                Some(v) => drop(data.insert(var.to_string(), json!(v))),
                None => secret.entries.push((var.to_string(), value.clone(), service.name.clone())),
            }
        }
        k.object("ConfigMap", &name, json!({ "data": data }), None)?;
        k.add_secret(secret, &consumer)?;
    }
    let script = k.script()?;
    let resources: Vec<&String> = k.files.keys().collect();
    let mut kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
    });
    if let Some(ns) = &options.namespace {
        kustomization["namespace"] = json!(ns);
    }
    kustomization["resources"] = json!(resources);
    let kustomization = yaml(&kustomization, &plan.project);
    let Kube { vars, mut files, secrets, .. } = k;
    files.insert("kustomization.yaml".to_string(), kustomization);
    files.insert("create-secrets.sh".to_string(), script);
    let export = Export {
        files,
        scripts: vec!["create-secrets.sh".to_string()],
        variables: vars.into_list(),
        env: BTreeMap::new(),
    };
    Ok((export, secrets))
}

struct Kube<'a> {
    vars: Vars,
    files: BTreeMap<String, String>,
    secrets: Vec<SecretSpec>,
    /// Every object's name, by scope (workloads share one), with who it is for.
    names: BTreeMap<(&'static str, String), String>,
    options: &'a KubeOptions,
    plan: &'a Plan,
}

impl Kube<'_> {
    /// Claims a name in a scope for `owner`; a name claimed twice is refused.
    fn claim(&mut self, scope: &'static str, name: &str, owner: &str) -> Result<(), ExportError> {
        match self.names.insert((scope, name.to_string()), owner.to_string()) {
            Some(other) if other != owner => Err(ExportError {
                plugin: String::new(),
                service: owner.to_string(),
                action: None,
                why: format!(
                    "its {scope} `{name}` would have the name of `{other}`'s (names are lowercased, `_` and `.` become `-`)"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Adds a Secret the manifests reference (none when it has no key).
    fn add_secret(&mut self, secret: SecretSpec, owner: &str) -> Result<(), ExportError> {
        if secret.entries.is_empty() {
            return Ok(());
        }
        self.claim("Secret", &secret.name, owner)?;
        self.secrets.push(secret);
        Ok(())
    }

    /// Writes one object's file; two objects of one kind and name are refused.
    fn object(&mut self, kind: &str, name: &str, body: Value, labels: Option<&Value>) -> Result<(), ExportError> {
        let path = format!("{name}.{}.yaml", kind.to_ascii_lowercase());
        let scope = match kind {
            "StatefulSet" | "Deployment" => "workload",
            "Service" => "Service",
            _ => "ConfigMap",
        };
        let owner = labels.and_then(|l| l["app.kubernetes.io/name"].as_str()).unwrap_or(name).to_string();
        self.claim(scope, name, &format!("{kind} {owner}"))?;
        let api = match kind {
            "StatefulSet" | "Deployment" => "apps/v1",
            _ => "v1",
        };
        let mut metadata = json!({ "name": name });
        if let Some(ns) = &self.options.namespace {
            metadata["namespace"] = json!(ns);
        }
        metadata["labels"] = labels.cloned().unwrap_or_else(|| self.labels(None));
        let mut object = json!({ "apiVersion": api, "kind": kind, "metadata": metadata });
        if let Value::Object(body) = body {
            object.as_object_mut().expect("an object").extend(body);
        }
        let text = yaml(&object, &self.plan.project);
        self.files.insert(path, text);
        Ok(())
    }

    fn labels(&self, service: Option<&str>) -> Value {
        let mut labels =
            json!({ "app.kubernetes.io/part-of": dns(&self.plan.project), "app.kubernetes.io/managed-by": "hsm" });
        if let Some(s) = service {
            labels["app.kubernetes.io/name"] = json!(s);
        }
        labels
    }

    /// One managed service: its workload, its Service, its files and its Secret.
    fn service(&mut self, m: &Managed<'_>) -> Result<(), ExportError> {
        let name = dns(&m.plan.name);
        let labels = self.labels(Some(&name));
        let selector = json!({ "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": dns(&self.plan.project) });
        let mut pod = Pod {
            secret: SecretSpec { name: format!("{name}-secrets"), entries: Vec::new() },
            claims: BTreeMap::new(),
            bound: BTreeMap::new(),
        };
        if m.steps.iter().any(|s| matches!(s, Step::Exec(..)))
            && m.containers.iter().any(|c| {
                c.mounts.iter().any(|v| matches!(v, hsm_plan::Mount::Volume { volume, .. } if dns(volume) == STEPS))
            })
        {
            return Err(m.error(format!("a volume named `{STEPS}` is the one hsm's exec containers use")));
        }
        // Names within the pod: containers, and ports (one network namespace).
        let mut in_pod: BTreeMap<String, &str> = BTreeMap::new();
        let mut ports_seen: BTreeMap<(u16, &str), &str> = BTreeMap::new();
        for c in &m.containers {
            if let Some(other) = in_pod.insert(dns(&c.name), &c.name) {
                return Err(m.error(format!("containers `{other}` and `{}` would have one name in the pod", c.name)));
            }
            for p in &c.ports {
                if let Some(other) = ports_seen.insert((p.container_port, protocol(p.protocol)), &c.name) {
                    return Err(m.error(format!(
                        "containers `{other}` and `{}` both use port {}, which one pod can't hold",
                        c.name, p.container_port
                    )));
                }
            }
        }
        let exec_count = m.steps.iter().filter(|s| matches!(s, Step::Exec(..))).count();
        for k in 1..=exec_count {
            if let Some(other) = in_pod.get(&format!("exec-{k}")) {
                return Err(m.error(format!("container `{other}` has the name of hsm's exec container `exec-{k}`")));
            }
        }
        if m.plan.name.len() > 52
            && m.containers.iter().any(|c| c.mounts.iter().any(|v| matches!(v, hsm_plan::Mount::Volume { .. })))
        {
            return Err(m.error(
                "a StatefulSet's name can have 52 characters at most (Kubernetes labels its pods with it and a hash)",
            ));
        }
        let mut containers = Vec::new();
        for c in &m.containers {
            let n = container_action(m, c);
            if c.stop_signal.is_some() {
                let why = "a stop signal: Kubernetes sends SIGTERM (`lifecycle.stopSignal` is alpha, from 1.33)";
                return Err(m.action_error(n, why));
            }
            let mut spec = container(m, c, n, &c.env, &mut pod)?;
            if let Some(command) = &c.command {
                spec["args"] = json!(argv(command).map_err(|why| m.action_error(n, why))?);
            }
            let ports: Vec<Value> = c
                .ports
                .iter()
                .map(|p| json!({ "containerPort": p.container_port, "protocol": protocol(p.protocol) }))
                .collect();
            if !ports.is_empty() {
                spec["ports"] = json!(ports);
            }
            let waits: Vec<(usize, &Wait)> = m
                .steps
                .iter()
                .filter_map(|s| match s {
                    Step::Wait(n, w) if probe::check(&w.probe).is_ok_and(|(on, _)| on == c.name) => Some((*n, *w)),
                    _ => None,
                })
                .collect();
            if !waits.is_empty() {
                spec["readinessProbe"] = readiness(&waits).map_err(|(n, why)| m.action_error(n, why))?;
            }
            containers.push(spec);
        }
        let execs = m.steps.iter().filter_map(|s| if let Step::Exec(n, e) = s { Some((*n, *e)) } else { None });
        for (k, step) in execs.enumerate() {
            containers.push(exec(m, k + 1, exec_count, step, &mut pod)?);
        }
        let mut spec = json!({ "containers": containers });
        // The pod's pause container as PID 1 does what Docker's init does: the
        // command is not PID 1, so signals it doesn't handle stop it.
        if m.containers.iter().any(|c| c.init) {
            spec["shareProcessNamespace"] = json!(true);
        }
        let mut volumes = Vec::new();
        if !pod.bound.is_empty() {
            // Keys by position: paths can't be keys (`/`), and no other encoding is
            // both short and one-to-one.
            let keys: Vec<String> = (1..=pod.bound.len()).map(|i| format!("file-{i}")).collect();
            let items: Vec<Value> =
                pod.bound.keys().zip(&keys).map(|(path, key)| json!({ "key": key, "path": path })).collect();
            volumes.push(json!({ "name": FILES, "configMap": { "name": format!("{name}-files"), "items": items } }));
            let data: Map<String, Value> =
                keys.iter().zip(pod.bound.values()).map(|(k, c)| (k.clone(), json!(c))).collect();
            self.object("ConfigMap", &format!("{name}-files"), json!({ "data": data }), Some(&labels))?;
        }
        if exec_count > 1 {
            volumes.push(json!({ "name": STEPS, "emptyDir": {} }));
        }
        if !volumes.is_empty() {
            spec["volumes"] = json!(volumes);
        }
        let template = json!({ "metadata": { "labels": labels.clone() }, "spec": spec });
        let mut spec = json!({ "replicas": 1, "selector": { "matchLabels": selector.clone() }, "template": template });
        let kind = if pod.claims.is_empty() {
            "Deployment"
        } else {
            spec["serviceName"] = json!(name);
            spec["volumeClaimTemplates"] = json!(pod.claims.into_values().map(|(_, c)| c).collect::<Vec<_>>());
            "StatefulSet"
        };
        self.object(kind, &name, json!({ "spec": spec }), Some(&labels))?;
        let ports: Vec<Value> = m.containers.iter().flat_map(|c| &c.ports).map(|p| {
            json!({ "name": format!("{}-{}", protocol(p.protocol).to_ascii_lowercase(), p.container_port), "port": p.container_port, "targetPort": p.container_port, "protocol": protocol(p.protocol) })
        }).collect();
        if !ports.is_empty() {
            self.object("Service", &name, json!({ "spec": { "selector": selector, "ports": ports } }), Some(&labels))?;
        }
        self.add_secret(pod.secret, &m.plan.name)?;
        Ok(())
    }
}

/// What the containers of one pod add up to: the service's Secret, its volume
/// claims and the files bound into it.
struct Pod {
    secret: SecretSpec,
    /// Volume claims by name, with the volume they are for.
    claims: BTreeMap<String, (String, Value)>,
    /// Bound files by path under the plugin's folder.
    bound: BTreeMap<String, String>,
}

/// A container's image, environment and mounts; secrets come from the
/// service's Secret.
fn container(
    m: &Managed<'_>,
    c: &Container,
    n: usize,
    env: &[(String, Text)],
    pod: &mut Pod,
) -> Result<Value, ExportError> {
    let mut spec = json!({ "name": dns(&c.name), "image": c.image });
    let mut list = Vec::new();
    for (k, v) in env {
        list.push(match in_network(v) {
            Some(v) => json!({ "name": k, "value": expandable(&v) }),
            None => {
                let key = secret_key(&mut pod.secret, k, v, &m.plan.name);
                json!({ "name": k, "valueFrom": { "secretKeyRef": { "name": pod.secret.name, "key": key } } })
            }
        });
    }
    if !list.is_empty() {
        spec["env"] = json!(list);
    }
    let mut mounts = Vec::new();
    for mount in &c.mounts {
        mounts.push(match mount {
                Mount::Volume { volume, target, read_only } => {
                    let claim = dns(volume);
                    if claim == FILES || claim == STEPS {
                        return Err(m.action_error(n, format!("a volume named `{claim}` is one hsm's pods use")));
                    }
                    let (owner, _) = pod.claims.entry(claim.clone()).or_insert_with(|| (volume.clone(), json!({
                        "metadata": { "name": claim },
                        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } },
                    })));
                    if owner != volume {
                        return Err(m.action_error(n, format!("volumes `{owner}` and `{volume}` would have one name in the pod")));
                    }
                    json!({ "name": claim, "mountPath": target, "readOnly": read_only })
                }
                Mount::Bind { source, target, read_only } => {
                    let mut files = BTreeMap::new();
                    bound_files(m, source, &mut files).map_err(|why| m.action_error(n, why))?;
                    let plugin_dir = format!("files/{}/", m.plan.plugin.split('@').next().unwrap_or_default());
                    for (path, contents) in files {
                        let rel = path.strip_prefix(&plugin_dir).unwrap_or(&path).to_string();
                        pod.bound.insert(rel, contents);
                    }
                    json!({ "name": FILES, "mountPath": target, "subPath": source.trim_matches('/'), "readOnly": read_only })
                }
            });
    }
    if !mounts.is_empty() {
        spec["volumeMounts"] = json!(mounts);
    }
    Ok(spec)
}

/// Exec `k` of the service: a container of the pod, on the image of the
/// container it ran in under Docker, with its environment and mounts, that
/// waits for that container's readiness if the plan did, runs the command once
/// and then idles (a pod's containers are restarted when they exit).
fn exec(
    m: &Managed<'_>,
    k: usize,
    count: usize,
    (n, exec): (usize, &Exec),
    pod: &mut Pod,
) -> Result<Value, ExportError> {
    let c = m.container(&exec.container).expect("checked by managed()");
    let mut env: Vec<(String, Text)> =
        c.env.iter().filter(|(k, _)| !exec.env.iter().any(|(e, _)| e == k)).cloned().collect();
    env.extend(exec.env.iter().cloned());
    let mut spec = container(m, c, n, &env, pod)?;
    spec["name"] = json!(format!("exec-{k}"));
    let command = argv(&exec.command).map_err(|why| m.action_error(n, why))?;
    // Every wait before it, on any of the pod's containers, as the plan waited:
    // TCP and HTTP checks reach them all on the pod's loopback; a command probe
    // runs here, so only one meant for this image keeps its meaning.
    let mut script = String::from("set -u\n");
    for (w, wait) in m.steps.iter().filter_map(|s| if let Step::Wait(w, wait) = s { Some((*w, *wait)) } else { None }) {
        if w > n {
            continue;
        }
        let (on, check) = probe::check(&wait.probe).expect("checked by managed()");
        let target = m.container(on).expect("checked by managed()");
        if matches!(check, Check::Argv(_)) && target.image != c.image {
            return Err(m.action_error(
                n,
                format!(
                    "it waits for a command probe of container `{on}`, which can't run in a container of another image"
                ),
            ));
        }
        let pause = wait.interval_ms.div_ceil(1000).max(1);
        let tries = wait.timeout_ms.div_ceil(pause * 1000).max(1);
        script.push_str(&format!(
            "i=0\nuntil ({}) >/dev/null 2>&1; do\n  i=$((i + 1)); [ \"$i\" -lt {tries} ] || {{ echo 'hsm: `{on}` was not ready in time' >&2; exit 1; }}\n  sleep {pause}\ndone\n",
            check.shell()
        ));
    }
    // The execs of a pod run in the plan's order: each waits for the one before.
    if k > 1 {
        script.push_str(&format!("until [ -e /{STEPS}/{} ]; do sleep 1; done\n", k - 1));
    }
    script.push_str("\"$@\" || exit $?\n");
    if count > 1 {
        script.push_str(&format!("touch /{STEPS}/{k}\n"));
        let mounts = spec["volumeMounts"].as_array().cloned().unwrap_or_default();
        let mut mounts = mounts;
        mounts.push(json!({ "name": STEPS, "mountPath": format!("/{STEPS}") }));
        spec["volumeMounts"] = json!(mounts);
    }
    script.push_str("echo 'hsm: done'\ntrap 'exit 0' TERM INT\nwhile :; do sleep 3600 & wait $!; done\n");
    let mut full = vec!["/bin/sh".to_string(), "-c".to_string(), expandable(&script), "hsm-exec".to_string()];
    full.extend(command);
    spec["command"] = json!(full);
    if let Some(user) = &exec.user {
        let (uid, gid) = user.split_once(':').map_or((user.as_str(), None), |(u, g)| (u, Some(g)));
        let id = |s: &str| {
            s.parse::<u32>().map_err(|_| {
                m.action_error(n, format!("it runs as user `{user}`, and Kubernetes takes a user's number, not a name"))
            })
        };
        let mut ctx = json!({ "runAsUser": id(uid)? });
        if let Some(g) = gid {
            ctx["runAsGroup"] = json!(id(g)?);
        }
        spec["securityContext"] = ctx;
    }
    Ok(spec)
}

impl Kube<'_> {
    /// `create-secrets.sh`: one `kubectl create secret` per Secret, its values
    /// composed from the user's variables, after checking that every required one
    /// is set; it holds no value.
    fn script(&mut self) -> Result<String, ExportError> {
        let ns = self.options.namespace.as_ref().map(|n| format!(" --namespace {}", shell_word(n))).unwrap_or_default();
        let mut body = String::new();
        for secret in &self.secrets {
            body.push_str(&format!("\nkubectl create secret generic {}{ns} \\\n", secret.name));
            for (key, text, service) in &secret.entries {
                let value = self.vars.render(text, service, Syntax::Shell).map_err(|why| ExportError {
                    plugin: String::new(),
                    service: service.clone(),
                    action: None,
                    why: format!("`{key}`: {why}"),
                })?;
                body.push_str(&format!("    --from-literal={key}=\"{value}\" \\\n"));
            }
            body.push_str("    --dry-run=client -o yaml | kubectl apply -f -\n");
        }
        let mut out = String::from("#!/bin/sh\n");
        out.push_str(&header("kubernetes", &self.plan.project));
        out.push_str("# Creates (or updates) the Secrets the manifests reference, from your environment.\n# It holds no value: set the variables it names, then run it before `kubectl apply -k`.\nset -eu\n\n");
        for v in self.vars.list() {
            let required = match &v.source {
                crate::Source::User { expression, .. } => crate::refs::variable_of(expression)
                    .is_some_and(|n| *expression == format!("${{{n}}}") || *expression == format!("${n}")),
                crate::Source::Generated { .. } => true,
            };
            if required {
                out.push_str(&format!(": \"${{{0}:?{0} is not set}}\"\n", v.name));
            }
        }
        out.push_str("\n# Percent-encodes $1 for a URL (every byte as %XX).\nurlencode() {\n    printf %s \"$1\" | od -An -v -tx1 | tr -d ' \\n' | tr a-f A-F | sed 's/../%&/g'\n}\n");
        out.push_str(&body);
        Ok(out)
    }
}

/// The key of a Secret that holds `value` for variable `name`: the name, or the
/// name and a number when another value has it already.
fn secret_key(secret: &mut SecretSpec, name: &str, value: &Text, service: &str) -> String {
    let mut key = name.to_string();
    let mut i = 1;
    loop {
        match secret.entries.iter().find(|(k, _, _)| *k == key) {
            Some((_, v, _)) if v == value => return key,
            Some(_) => {
                i += 1;
                key = format!("{name}.{i}");
            }
            None => {
                secret.entries.push((key.clone(), value.clone(), service.to_string()));
                return key;
            }
        }
    }
}

/// The readiness probe of a container: Kubernetes' own for one TCP, HTTP (2xx or
/// 3xx count as ready) or exec probe, else the checks as one shell command.
fn readiness(waits: &[(usize, &Wait)]) -> Result<Value, (usize, String)> {
    let interval = waits.iter().map(|(_, w)| w.interval_ms).min().unwrap_or(1000);
    let period = interval.div_ceil(1000).max(1);
    let timeout = waits.iter().map(|(_, w)| w.timeout_ms).max().unwrap_or(60_000);
    let mut probe = match waits {
        [(n, w)] => match &w.probe {
            Probe::Tcp { .. } => json!({ "tcpSocket": { "port": port_of(&w.probe) } }),
            Probe::Http { path, tls, status: None, headers, .. } => {
                let headers: Vec<Value> = headers
                    .iter()
                    .map(|(k, v)| json!({ "name": k, "value": v.as_plain().unwrap_or_default() }))
                    .collect();
                let mut get =
                    json!({ "path": path, "port": port_of(&w.probe), "scheme": if *tls { "HTTPS" } else { "HTTP" } });
                if !headers.is_empty() {
                    get["httpHeaders"] = json!(headers);
                }
                json!({ "httpGet": get })
            }
            _ => match probe::check(&w.probe).map_err(|why| (*n, why))?.1 {
                Check::Argv(argv) => {
                    json!({ "exec": { "command": argv.iter().map(|a| expandable(a)).collect::<Vec<_>>() } })
                }
                Check::Shell(line) => json!({ "exec": { "command": ["/bin/sh", "-c", expandable(&line)] } }),
            },
        },
        _ => {
            let line = waits
                .iter()
                .map(|(_, w)| format!("({})", probe::check(&w.probe).expect("checked").1.shell()))
                .collect::<Vec<_>>()
                .join(" && ");
            json!({ "exec": { "command": ["/bin/sh", "-c", expandable(&line)] } })
        }
    };
    probe["periodSeconds"] = json!(period);
    probe["timeoutSeconds"] = json!(5);
    probe["failureThreshold"] = json!((timeout / 1000).div_ceil(period).max(1));
    Ok(probe)
}

fn port_of(probe: &Probe) -> u16 {
    match probe {
        Probe::Tcp { endpoint: hsm_plan::Endpoint::ContainerPort { port, .. } }
        | Probe::Http { endpoint: hsm_plan::Endpoint::ContainerPort { port, .. }, .. } => *port,
        _ => 0,
    }
}

/// A command's words as Kubernetes takes them (see [`expandable`]).
fn argv(command: &[Text]) -> Result<Vec<String>, String> {
    command
        .iter()
        .map(|t| {
            in_network(t)
                .map(|s| expandable(&s))
                .ok_or_else(|| "its command holds a secret, which a Kubernetes command can't reference".to_string())
        })
        .collect()
}

/// Text for a field Kubernetes expands (a container's `command`, `args` and `env`
/// values, an exec probe's command): it reads `$(NAME)` as a variable and `$$` as
/// `$`, so every `$` is doubled.
fn expandable(s: &str) -> String {
    s.replace('$', "$$")
}

/// A text with no secret, host ports as the container's own port; `None` if it
/// holds a secret.
fn in_network(text: &Text) -> Option<String> {
    let mut out = String::new();
    for piece in text.pieces() {
        match piece {
            Piece::Lit(s) => out.push_str(s),
            Piece::HostPort { port, .. } => out.push_str(&port.to_string()),
            Piece::Secret { .. } | Piece::Generated { .. } => return None,
        }
    }
    Some(out)
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

/// A name as Kubernetes takes it (RFC 1123 label): lowercase, `_` and `.` as `-`.
pub fn dns(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    s.trim_matches('-').to_string()
}

/// The pod volume of the files bound into its containers.
const FILES: &str = "hsm-files";
/// The pod volume where its exec containers mark each exec done, in order.
const STEPS: &str = "hsm-steps";

fn yaml(value: &Value, project: &str) -> String {
    format!("{}{}", header("kubernetes", project), serde_saphyr::to_string(value).expect("a JSON tree serializes"))
}
