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

use crate::host::{Capability, PlannedService, PluginInfo};

/// What the user granted a plugin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// The capabilities granted.
    pub capabilities: BTreeSet<Capability>,
    /// Host addresses other than 127.0.0.1 its ports may bind to.
    pub host_ips: BTreeSet<String>,
}

impl Grants {
    /// Everything the plugin declares, on loopback only: what bundled plugins get.
    pub fn declared(info: &PluginInfo) -> Self {
        Self { capabilities: info.capabilities.clone(), host_ips: BTreeSet::new() }
    }
}

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
}

/// Checks a plugin's plan for one service.
pub fn check_plan(
    info: &PluginInfo,
    grants: &Grants,
    ctx: &CheckContext<'_>,
    planned: &PlannedService,
) -> Result<(), Refusal> {
    let mut checker = Checker { info, grants, ctx, containers: Vec::new() };
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
            // Plans give hundreds of thousands of variables: the checks (which have
            // no side effects) run without a description first, and again with
            // one only to explain a refusal.
            if checker.consumer_env_name(name, "").is_ok() && checker.text(value, "").is_ok() {
                continue;
            }
            checker.consumer_env_name(name, &format!("set `{}`", name.escape_debug()))?;
            checker.text(value, &format!("set `{name}`"))?;
        }
    }
    Ok(())
}

struct Checker<'a> {
    info: &'a PluginInfo,
    grants: &'a Grants,
    ctx: &'a CheckContext<'a>,
    /// The containers ensured so far, with their published ports.
    containers: Vec<(String, Vec<u16>)>,
}

impl Checker<'_> {
    fn refuse(&self, action: impl Into<String>, reason: impl Into<String>, missing: Option<Capability>) -> Refusal {
        // The action and reason quote what the plugin returned: print it safely.
        Refusal {
            plugin: self.info.name.clone(),
            service: self.ctx.service.to_string(),
            action: crate::convert::printable(&action.into()),
            reason: crate::convert::printable(&reason.into()),
            missing,
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
            return Err(self.refuse(
                action,
                format!("the `{capability}` capability is not granted to it (grant it in hsm.yaml under `plugins.{}.grant`)", self.info.name),
                Some(capability),
            ));
        }
        Ok(())
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
                if c.image.is_empty() || c.image.contains(char::is_whitespace) {
                    return Err(self.refuse(
                        what,
                        format!("`{}` is not an image reference", c.image.escape_debug()),
                        None,
                    ));
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
                    self.text(value, &what)?;
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
                            && !path.chars().any(|c| c.is_whitespace() || c.is_control());
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
                self.require(Capability::NetworkProbe, &what)
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
            self.text(value, what)?;
        }
        Ok(())
    }

    /// A variable a consumer gets: a valid name that doesn't steer the programs the
    /// package runs (a loader, a shell, an interpreter's startup, a proxy, trusted
    /// certificates). Those would let a plugin run code on the host through `hsm run`.
    fn consumer_env_name(&self, name: &str, what: &str) -> Result<(), Refusal> {
        self.env_name(name, what)?;
        // `env_name` let only ASCII through, so any byte offset is a boundary.
        let starts = |p: &str| name.len() >= p.len() && name[..p.len()].eq_ignore_ascii_case(p);
        let denied = RESERVED_ENV.iter().any(|r| r.eq_ignore_ascii_case(name))
            || RESERVED_ENV_PREFIXES.iter().any(|p| starts(p))
            || (name.len() >= 6 && name[name.len() - 6..].eq_ignore_ascii_case("_PROXY"));
        if denied {
            return Err(self.refuse(
                what,
                format!("`{name}` changes how programs start or connect, so no plugin may set it"),
                None,
            ));
        }
        Ok(())
    }

    fn env_name(&self, name: &str, what: &str) -> Result<(), Refusal> {
        let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(())
        } else {
            Err(self.refuse(what, format!("`{}` is not a valid variable name", name.escape_debug()), None))
        }
    }

    fn relative_path(&self, path: &str, what: &str) -> Result<(), Refusal> {
        let p = Path::new(path);
        let ok = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
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
        let ok = p.is_absolute() && p.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if ok && path != "/" {
            Ok(())
        } else {
            Err(self.refuse(what, format!("`{path}` is not an absolute path inside the container"), None))
        }
    }
}

/// The longest a plugin may make hsm wait for one probe.
const MAX_WAIT_MS: u32 = 10 * 60 * 1000;

/// Variables that steer how programs start, what they load or where they connect.
const RESERVED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "SHELL",
    "ENV",
    "BASH_ENV",
    "IFS",
    "PS4",
    "PROMPT_COMMAND",
    "CDPATH",
    "VIRTUAL_ENV",
    "PAGER",
    "MANPAGER",
    "EDITOR",
    "VISUAL",
    "BROWSER",
    "LESSOPEN",
    "LESSCLOSE",
    "TMPDIR",
    "TZDIR",
    "LOCPATH",
    "GCONV_PATH",
    "HOSTALIASES",
    "RESOLV_HOST_CONF",
    "LOCALDOMAIN",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "RUBYOPT",
    "RUBYLIB",
    "NODE_OPTIONS",
    "NODE_PATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "SUDO_ASKPASS",
];

/// Prefixes of such variables (loaders, interpreters, toolchains, hsm itself).
const RESERVED_ENV_PREFIXES: &[&str] = &[
    "LD_",
    "DYLD_",
    "PYTHON",
    "GIT_",
    "SSH_",
    "UV_",
    "PIP_",
    "CARGO_",
    "RUSTC",
    "RUSTUP_",
    "HSM_",
    "DOCKER_",
    "NPM_CONFIG_",
];

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
