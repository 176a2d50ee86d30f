//! The host's check of every action a plugin returns, before anything runs. An
//! action is allowed only when its capability is both declared by the plugin and
//! granted to it, and when it stays inside what that capability means: its own
//! containers, loopback ports, named volumes of the project, files under
//! `.hsm/<plugin>/`, and exactly the Python packages the project asked for.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path};

use hsm_model::{Piece, Text};
use hsm_plan::{Action, Consumer, Endpoint, Mount, Probe, PythonPackage};

use crate::PlannedService;
use crate::info::{Capability, PluginInfo};

mod consumer;

/// What the user granted a plugin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// The capabilities granted.
    pub capabilities: BTreeSet<Capability>,
    /// Host addresses other than 127.0.0.1 its ports may bind to.
    pub host_ips: BTreeSet<String>,
    /// Variables it may set in consumers' environments, by name: what a plugin
    /// built for a WIT version that can't declare its variables (0.1.0, 0.2.0) may
    /// set. A plugin that declares them sets exactly what it declares.
    pub variables: BTreeSet<String>,
    /// Whether the project reviewed this plugin: it is bundled, or `hsm.yaml` has
    /// an entry for its digest. An unreviewed plugin gives no environment.
    pub reviewed: bool,
}

impl Grants {
    /// Everything the plugin declares, on loopback only: what bundled plugins get.
    pub fn declared(info: &PluginInfo) -> Self {
        Self {
            capabilities: info.capabilities.clone(),
            host_ips: BTreeSet::new(),
            variables: BTreeSet::new(),
            reviewed: true,
        }
    }

    /// Whether the plugin may set `name` in a consumer's environment: it declares
    /// it, or (when it can't declare variables) `hsm.yaml` grants it.
    pub fn allows_variable(&self, info: &PluginInfo, name: &str) -> bool {
        match &info.variables {
            Some(_) => info.declares_variable(name),
            None => self.variables.contains(name),
        }
    }
}

/// A consumer's new name for one of a service's variables (its `env_names`
/// parameter: `{DATABASE_URL: AUTH_DB_URL}`). Plugins apply renames themselves
/// (the SDK does), so the host accepts the new name for a variable the plugin may
/// set under its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rename {
    /// Whose environment.
    pub consumer: Consumer,
    /// The variable's name as the plugin declares it.
    pub from: String,
    /// The name the consumer gets it under.
    pub to: String,
}

impl Rename {
    /// The renames a consumer asks for in its params (`env_names`, the parameter
    /// the SDK applies for every plugin); a rename to `null` drops a variable and
    /// gives no new name.
    pub fn from_params(consumer: &Consumer, params: &hsm_model::Value) -> Vec<Rename> {
        let Some(hsm_model::Value::Map(names)) = params.get(ENV_NAMES) else { return Vec::new() };
        names
            .iter()
            .filter_map(|(from, to)| {
                let to = to.as_text()?.as_plain()?;
                Some(Rename { consumer: consumer.clone(), from: from.clone(), to: to.to_string() })
            })
            .collect()
    }
}

/// The parameter with which a consumer renames the variables it gets.
const ENV_NAMES: &str = "env_names";

/// What the host knows about the service being planned.
#[derive(Clone, Debug)]
pub struct CheckContext<'a> {
    /// The service instance.
    pub service: &'a str,
    /// The consumers the plugin was given.
    pub consumers: &'a [Consumer],
    /// The packages (with their sources) the project asked for; a uv install may
    /// install only these.
    pub packages: &'a [PythonPackage],
    /// The consumers' renames of the service's variables.
    pub renames: &'a [Rename],
}

/// Why an action was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("plugin `{plugin}` may not {action} for service `{service}`: {reason}")]
pub struct Refusal {
    /// The plugin.
    pub plugin: String,
    /// The service.
    pub service: String,
    /// The action, in a few words (`publish port 5432 on 0.0.0.0`).
    pub action: String,
    /// Why not.
    pub reason: String,
    /// The capability missing, when that is the reason.
    pub missing: Option<Capability>,
    /// The variable missing from what `hsm.yaml` grants a plugin that can't
    /// declare its variables, when that is the reason.
    pub missing_variable: Option<Box<str>>,
    /// Whether the reason is that no entry of `hsm.yaml` reviews the plugin.
    pub unreviewed: bool,
}

/// Checks a plugin's plan for one service: the first reason to refuse it.
pub fn check_plan(
    info: &PluginInfo,
    grants: &Grants,
    ctx: &CheckContext<'_>,
    planned: &PlannedService,
) -> Result<(), Refusal> {
    review_plan(info, grants, ctx, planned)?.into_iter().next().map_or(Ok(()), Err)
}

/// Checks a plugin's plan for one service, telling apart what no grant can allow
/// (`Err`: the first such problem) from what a review of the plugin would: every
/// capability it declared but is not granted, every variable an unreviewed or
/// legacy plugin may not set yet, each once (`Ok`; empty when the plan may run).
/// So `hsm plan` can show what a plugin would do before the user grants it.
pub fn review_plan(
    info: &PluginInfo,
    grants: &Grants,
    ctx: &CheckContext<'_>,
    planned: &PlannedService,
) -> Result<Vec<Refusal>, Refusal> {
    let mut checker = Checker {
        info,
        grants,
        ctx,
        containers: Vec::new(),
        approved: Default::default(),
        pending: Default::default(),
    };
    for action in &planned.actions {
        checker.action(action)?;
    }
    for env in &planned.env {
        if !ctx.consumers.contains(&env.consumer) {
            let who = match &env.consumer {
                Consumer::Project => "the project".to_string(),
                Consumer::Package(p) => format!("package `{p}`"),
            };
            return Err(checker.refuse(
                format!("give environment to {who}"),
                "it is not a consumer of this service",
                None,
            ));
        }
        for (name, value) in &env.vars {
            checker.consumer_var(&env.consumer, name, value)?;
        }
    }
    Ok(checker.pending.into_inner())
}

struct Checker<'a> {
    info: &'a PluginInfo,
    grants: &'a Grants,
    ctx: &'a CheckContext<'a>,
    /// The containers ensured so far, with their published ports.
    containers: Vec<(String, Vec<u16>)>,
    /// The consumer variable names already found acceptable (consumers get the
    /// same few names; plans hold hundreds of thousands of variables).
    approved: std::collections::HashSet<String>,
    /// What a review of the plugin would allow (see [`review_plan`]), each once.
    pending: std::cell::RefCell<Vec<Refusal>>,
}

impl Checker<'_> {
    fn refuse(&self, action: impl Into<String>, reason: impl Into<String>, missing: Option<Capability>) -> Refusal {
        // The action and reason quote what the plugin returned: print it safely.
        Refusal {
            plugin: self.info.name.clone(),
            service: self.ctx.service.to_string(),
            action: crate::words::printable(&action.into()),
            reason: crate::words::printable(&reason.into()),
            missing,
            missing_variable: None,
            unreviewed: false,
        }
    }

    fn require(&self, capability: Capability, action: &str) -> Result<(), Refusal> {
        if !self.info.capabilities.contains(&capability) {
            return Err(self.refuse(
                action,
                format!("it did not declare the `{capability}` capability"),
                Some(capability),
            ));
        }
        if !self.grants.capabilities.contains(&capability) {
            self.defer(self.refuse(
                action,
                format!("the `{capability}` capability is not granted to it (grant it in hsm.yaml under `plugins.{}.grant`)", self.info.name),
                Some(capability),
            ));
        }
        Ok(())
    }

    /// Keeps a problem a review would solve, once per capability, variable, or
    /// for an unreviewed plugin.
    fn defer(&self, refusal: Refusal) {
        let mut pending = self.pending.borrow_mut();
        let same = |r: &Refusal| {
            r.missing == refusal.missing
                && r.missing_variable == refusal.missing_variable
                && r.unreviewed == refusal.unreviewed
        };
        if !pending.iter().any(same) {
            pending.push(refusal);
        }
    }

    fn action(&mut self, action: &Action) -> Result<(), Refusal> {
        match action {
            Action::EnsureContainer(c) => {
                let what = format!("run container `{}`", c.name);
                self.require(Capability::Containers, &what)?;
                if !is_short_name(&c.name) {
                    return Err(self.refuse(
                        what,
                        "a container's name must be lowercase letters, digits and `-`, at most 32",
                        None,
                    ));
                }
                if self.containers.iter().any(|(n, _)| *n == c.name) {
                    return Err(self.refuse(what, "it ensures that container twice", None));
                }
                if !is_image_reference(&c.image) {
                    return Err(self.refuse(
                        what,
                        format!("`{}` is not an image reference", crate::words::plugin_words(&c.image)),
                        None,
                    ));
                }
                if let Some(signal) = c.stop_signal.as_deref().filter(|s| !hsm_plan::STOP_SIGNALS.contains(s)) {
                    let signals = hsm_plan::STOP_SIGNALS.join(", ");
                    let why = format!(
                        "`{}` is not a stop signal hsm passes on (one of {signals})",
                        crate::words::plugin_words(signal)
                    );
                    return Err(self.refuse(what, why, None));
                }
                for port in &c.ports {
                    let what = format!("publish port {} on {}", port.container_port, port.host_ip);
                    if port.container_port == 0 || port.host_port == Some(0) {
                        return Err(self.refuse(what, "port 0 is not a port", None));
                    }
                    if port.host_ip != "127.0.0.1" && !self.grants.host_ips.contains(&port.host_ip) {
                        return Err(self.refuse(
                            what,
                            format!(
                                "ports bind to 127.0.0.1 unless hsm.yaml allows `{}` for this service",
                                port.host_ip
                            ),
                            None,
                        ));
                    }
                }
                for mount in &c.mounts {
                    match mount {
                        Mount::Volume { volume, target, .. } => {
                            let what = format!("mount volume `{volume}` at `{target}`");
                            if !is_short_name(volume) {
                                return Err(self.refuse(
                                    what,
                                    "a volume's name must be lowercase letters, digits and `-`",
                                    None,
                                ));
                            }
                            self.container_path(target, &what)?;
                        }
                        Mount::Bind { source, target, read_only } => {
                            let what = format!("bind-mount `{source}` at `{target}`");
                            self.require(Capability::Files, &what)?;
                            self.relative_path(source, &what)?;
                            self.container_path(target, &what)?;
                            // A writable bind lets the container plant a symlink that
                            // Docker follows on its next start, out of the folder.
                            if !read_only {
                                return Err(self.refuse(
                                    what,
                                    "bind mounts are read-only; keep data the container writes in a named volume",
                                    None,
                                ));
                            }
                        }
                    }
                }
                for (name, value) in &c.env {
                    self.env_name(name, &what)?;
                    self.env_value(name, value, &what)?;
                }
                for arg in c.command.iter().flatten() {
                    self.text(arg, &what)?;
                }
                self.containers.push((c.name.clone(), c.ports.iter().map(|p| p.container_port).collect()));
            }
            Action::Exec(e) => {
                let what = format!("exec in container `{}`", e.container);
                self.require(Capability::Exec, &what)?;
                self.own_container(&e.container, &what)?;
                self.exec_texts(e, &what)?;
            }
            Action::Wait(wait) => {
                if wait.timeout_ms > MAX_WAIT_MS || wait.interval_ms > wait.timeout_ms.max(1) {
                    return Err(self.refuse(
                        format!("wait {} ms", wait.timeout_ms),
                        format!(
                            "a wait lasts at most {} minutes, and tries again within that time",
                            MAX_WAIT_MS / 60_000
                        ),
                        None,
                    ));
                }
                match &wait.probe {
                    Probe::Tcp { endpoint } => self.endpoint(endpoint)?,
                    Probe::Http { endpoint, path, headers, .. } => {
                        self.endpoint(endpoint)?;
                        let what = format!("probe `{}`", path.escape_debug());
                        let path_ok = path.starts_with('/')
                            && path.len() <= 2048
                            && !path.chars().any(|c| c.is_whitespace() || hsm_model::text::is_hidden(c));
                        if !path_ok {
                            return Err(self.refuse(
                                what,
                                "an HTTP probe's path starts with `/` and holds no spaces or control characters",
                                None,
                            ));
                        }
                        for (name, value) in headers {
                            let token = !name.is_empty()
                                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                            if !token {
                                return Err(self.refuse(
                                    what,
                                    format!("`{}` is not an HTTP header name", name.escape_debug()),
                                    None,
                                ));
                            }
                            self.text(value, &what)?;
                            let broken = value
                                .pieces()
                                .iter()
                                .any(|p| matches!(p, Piece::Lit(l) if l.contains(['\r', '\n', '\0'])));
                            if broken {
                                return Err(self.refuse(what, format!("header `{name}` holds a line break"), None));
                            }
                        }
                    }
                    Probe::Exec(e) => {
                        let what = format!("probe container `{}` with `exec`", e.container);
                        self.require(Capability::Exec, &what)?;
                        self.own_container(&e.container, &what)?;
                        self.exec_texts(e, &what)?;
                    }
                }
            }
            Action::UvInstall { packages } => {
                self.require(Capability::UvInstall, "install Python packages")?;
                // The install is the project's whole set: hsm uninstalls what it
                // installed and is not in it, so a partial list would remove packages.
                let asked: std::collections::HashSet<&PythonPackage> = self.ctx.packages.iter().collect();
                let given: std::collections::HashSet<&PythonPackage> = packages.iter().collect();
                if given.len() < asked.len() || given.len() != packages.len() {
                    return Err(self.refuse(
                        "install Python packages",
                        "a uv install must hold every package the project asks for, once",
                        None,
                    ));
                }
                for p in packages {
                    if !asked.contains(p) {
                        let source = match &p.source {
                            hsm_plan::PackageSource::Pypi(s)
                            | hsm_plan::PackageSource::Path(s)
                            | hsm_plan::PackageSource::Editable(s) => s,
                        };
                        return Err(self.refuse(
                            format!("install `{}` from `{source}`", p.name),
                            "the project does not ask for that package from that source",
                            None,
                        ));
                    }
                }
            }
            Action::WriteFile(f) => {
                let what = format!("write `{}`", f.path);
                self.require(Capability::Files, &what)?;
                self.relative_path(&f.path, &what)?;
            }
        }
        Ok(())
    }

    fn endpoint(&self, endpoint: &Endpoint) -> Result<(), Refusal> {
        match endpoint {
            Endpoint::ContainerPort { container, port } => {
                let what = format!("probe `{container}:{port}`");
                self.own_port(container, *port, &what)
            }
            Endpoint::Address { host, port } => {
                let what = format!("probe `{}:{}`", host.display(), port.display());
                self.require(Capability::NetworkProbe, &what)?;
                self.address_part(host, &what)?;
                self.address_part(port, &what)
            }
        }
    }

    fn own_container(&self, name: &str, what: &str) -> Result<(), Refusal> {
        if self.containers.iter().any(|(n, _)| n == name) {
            Ok(())
        } else {
            Err(self.refuse(what, format!("`{name}` is not one of this service's containers"), None))
        }
    }

    fn own_port(&self, container: &str, port: u16, what: &str) -> Result<(), Refusal> {
        self.own_container(container, what)?;
        if self.containers.iter().any(|(n, ports)| n == container && ports.contains(&port)) {
            Ok(())
        } else {
            Err(self.refuse(what, format!("container `{container}` publishes no port {port}"), None))
        }
    }

    /// Host-port references must name a port this service publishes.
    fn text(&self, text: &Text, what: &str) -> Result<(), Refusal> {
        for piece in text.pieces() {
            if let Piece::HostPort { container, port } = piece {
                self.own_port(container, *port, what)?;
            }
        }
        Ok(())
    }

    fn exec_texts(&self, e: &hsm_plan::Exec, what: &str) -> Result<(), Refusal> {
        for t in &e.command {
            self.text(t, what)?;
        }
        for (name, value) in &e.env {
            self.env_name(name, what)?;
            self.env_value(name, value, what)?;
        }
        if let Some(user) = &e.user {
            let ok = !user.is_empty()
                && user.len() <= 64
                && user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
            if !ok {
                return Err(self.refuse(what, format!("`{}` is not a user name", user.escape_debug()), None));
            }
        }
        Ok(())
    }

    /// A value in an environment: no control character in it (a line break would
    /// smuggle another variable into an env file; ESC would act on the terminal
    /// that shows the plan), and references only to this service's own ports.
    fn env_value(&self, name: &str, value: &Text, what: &str) -> Result<(), Refusal> {
        // A container's variables reach Docker's API, not a file or a shell: a
        // multi-line value (a certificate, say) is fine there, and shown escaped.
        // NUL can't be in any environment.
        let nul = value.pieces().iter().any(|p| matches!(p, Piece::Lit(l) if l.contains('\0')));
        if nul {
            return Err(self.refuse(what, format!("the value of `{name}` holds a NUL character"), None));
        }
        self.text(value, what)
    }

    /// A part of another host's address: one line of visible text.
    fn address_part(&self, part: &Text, what: &str) -> Result<(), Refusal> {
        if let Some(c) = crate::env_rules::hidden_in(part) {
            return Err(self.refuse(what, format!("the address holds the character {c:?}"), None));
        }
        self.text(part, what)
    }

    fn env_name(&self, name: &str, what: &str) -> Result<(), Refusal> {
        if crate::env_rules::is_env_name(name) {
            Ok(())
        } else {
            Err(self.refuse(what, format!("`{}` is not a valid variable name", name.escape_debug()), None))
        }
    }

    fn relative_path(&self, path: &str, what: &str) -> Result<(), Refusal> {
        let p = Path::new(path);
        let ok = !path.is_empty()
            && path.len() <= 1024
            && !path.chars().any(hsm_model::text::is_hidden)
            && p.components().all(|c| matches!(c, Component::Normal(_)));
        if ok {
            Ok(())
        } else {
            Err(self.refuse(
                what,
                format!("`{path}` must stay inside `.hsm/{}/` (a relative path without `..`)", self.info.name),
                None,
            ))
        }
    }

    fn container_path(&self, path: &str, what: &str) -> Result<(), Refusal> {
        let p = Path::new(path);
        let ok = p.is_absolute()
            && path.len() <= 1024
            && !path.chars().any(hsm_model::text::is_hidden)
            && p.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if ok && path != "/" {
            Ok(())
        } else {
            Err(self.refuse(what, format!("`{path}` is not an absolute path inside the container"), None))
        }
    }
}

/// The longest a plugin may make hsm wait for one probe.
const MAX_WAIT_MS: u32 = 10 * 60 * 1000;

/// An image reference as Docker takes one (`postgres:16`,
/// `registry:5000/team/app@sha256:…`): ASCII letters, digits and `._-/:@`, at
/// most 512 bytes. Anything else (spaces, control characters) is refused before
/// it reaches the engine or the terminal.
fn is_image_reference(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'))
}

fn is_short_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl fmt::Display for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let caps: Vec<&str> = self.capabilities.iter().map(|c| c.as_str()).collect();
        f.write_str(&caps.join(", "))
    }
}
