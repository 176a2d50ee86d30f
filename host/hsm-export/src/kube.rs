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

use crate::compose::{bound_files, container_action};
use crate::probe::{self, Check};
use crate::refs::{Syntax, Vars, shell_word};
use crate::{Export, ExportError, Managed, Step, consumers, header, managed};

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
    let mut k = Kube { vars: Vars::default(), files: BTreeMap::new(), secrets: Vec::new(), options, plan };
    for m in &managed {
        k.service(m)?;
    }
    for (consumer, list) in consumers(plan) {
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
        if !secret.entries.is_empty() {
            k.secrets.push(secret);
        }
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
    options: &'a KubeOptions,
    plan: &'a Plan,
}

impl Kube<'_> {
    /// Writes one object's file; two objects of one kind and name are refused.
    fn object(&mut self, kind: &str, name: &str, body: Value, labels: Option<&Value>) -> Result<(), ExportError> {
        let path = format!("{name}.{}.yaml", kind.to_ascii_lowercase());
        if self.files.contains_key(&path) {
            return Err(ExportError {
                plugin: String::new(),
                service: name.to_string(),
                action: None,
                why: format!(
                    "two {kind} objects would be named `{name}` (names are lowercased, `_` and `.` become `-`)"
                ),
            });
        }
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
        let mut containers = Vec::new();
        for c in &m.containers {
            let n = container_action(m, c);
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
            containers.push(exec(m, k + 1, step, &mut pod)?);
        }
        let mut spec = json!({ "containers": containers });
        if !pod.bound.is_empty() {
            let items: Vec<Value> =
                pod.bound.keys().map(|path: &String| json!({ "key": config_key(path), "path": path })).collect();
            spec["volumes"] =
                json!([{ "name": "hsm-files", "configMap": { "name": format!("{name}-files"), "items": items } }]);
            let data: Map<String, Value> = pod.bound.iter().map(|(p, c)| (config_key(p), json!(c))).collect();
            self.object("ConfigMap", &format!("{name}-files"), json!({ "data": data }), Some(&labels))?;
        }
        let template = json!({ "metadata": { "labels": labels.clone() }, "spec": spec });
        let mut spec = json!({ "replicas": 1, "selector": { "matchLabels": selector.clone() }, "template": template });
        let kind = if pod.claims.is_empty() {
            "Deployment"
        } else {
            spec["serviceName"] = json!(name);
            spec["volumeClaimTemplates"] = json!(pod.claims.into_values().collect::<Vec<_>>());
            "StatefulSet"
        };
        self.object(kind, &name, json!({ "spec": spec }), Some(&labels))?;
        let ports: Vec<Value> = m.containers.iter().flat_map(|c| &c.ports).map(|p| {
            json!({ "name": format!("{}-{}", protocol(p.protocol).to_ascii_lowercase(), p.container_port), "port": p.container_port, "targetPort": p.container_port, "protocol": protocol(p.protocol) })
        }).collect();
        if !ports.is_empty() {
            self.object("Service", &name, json!({ "spec": { "selector": selector, "ports": ports } }), Some(&labels))?;
        }
        if !pod.secret.entries.is_empty() {
            self.secrets.push(pod.secret);
        }
        Ok(())
    }
}

/// What the containers of one pod add up to: the service's Secret, its volume
/// claims and the files bound into it.
struct Pod {
    secret: SecretSpec,
    claims: BTreeMap<String, Value>,
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
                    pod.claims.entry(claim.clone()).or_insert_with(|| json!({
                        "metadata": { "name": claim },
                        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } },
                    }));
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
                    json!({ "name": "hsm-files", "mountPath": target, "subPath": source.trim_matches('/'), "readOnly": read_only })
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
fn exec(m: &Managed<'_>, k: usize, (n, exec): (usize, &Exec), pod: &mut Pod) -> Result<Value, ExportError> {
    let c = m.container(&exec.container).expect("checked by managed()");
    let mut env: Vec<(String, Text)> =
        c.env.iter().filter(|(k, _)| !exec.env.iter().any(|(e, _)| e == k)).cloned().collect();
    env.extend(exec.env.iter().cloned());
    let mut spec = container(m, c, n, &env, pod)?;
    spec["name"] = json!(format!("exec-{k}"));
    let command = argv(&exec.command).map_err(|why| m.action_error(n, why))?;
    let wait = m.steps.iter().filter_map(|s| match s {
        Step::Wait(w, wait) if *w < n && probe::check(&wait.probe).is_ok_and(|(on, _)| on == c.name) => Some(*wait),
        _ => None,
    });
    let mut script = String::from("set -u\n");
    for w in wait {
        let (_, check) = probe::check(&w.probe).expect("checked by managed()");
        let pause = w.interval_ms.div_ceil(1000).max(1);
        script.push_str(&format!("until ({}) >/dev/null 2>&1; do sleep {pause}; done\n", check.shell()));
    }
    script.push_str(
        "\"$@\" || exit $?\necho 'hsm: done'\ntrap 'exit 0' TERM INT\nwhile :; do sleep 3600 & wait $!; done\n",
    );
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
                Check::Argv(argv) => json!({ "exec": { "command": argv } }),
                Check::Shell(line) => json!({ "exec": { "command": ["/bin/sh", "-c", line] } }),
            },
        },
        _ => {
            let line = waits
                .iter()
                .map(|(_, w)| format!("({})", probe::check(&w.probe).expect("checked").1.shell()))
                .collect::<Vec<_>>()
                .join(" && ");
            json!({ "exec": { "command": ["/bin/sh", "-c", line] } })
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
/// values): it reads `$(NAME)` as a variable and `$$` as `$`, so every `$` is
/// doubled.
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

/// A ConfigMap key for a file's path (keys can't hold `/`).
fn config_key(path: &str) -> String {
    path.replace('/', "__")
}

fn yaml(value: &Value, project: &str) -> String {
    format!("{}{}", header("kubernetes", project), serde_saphyr::to_string(value).expect("a JSON tree serializes"))
}
