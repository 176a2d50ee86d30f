//! Runs a plugin's compiled component in hsm's real runtime, from a native test:
//! the same sandbox, limits, WIT conversions and action checks `hsm` applies.
//!
//! A dev-dependency of plugins written with `hsm-sdk`. It embeds hsm's runtime
//! (wasmtime), so it lives in hsm's repository and is not published: take it, and
//! the SDK, from the same checkout or git revision (see the plugin author guide).
//!
//! ```no_run
//! use hsm_sdk::testing::*;
//! use hsm_sdk::Value;
//! use hsm_sdk_host::ComponentPlugin;
//!
//! let wasm = build_plugin(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME")).unwrap();
//! let plugin = ComponentPlugin::load(&wasm).unwrap();
//! let req = plan_request("cache", "redis", Value::Null).consumer("api", Value::Null).build();
//! let plan = plugin.plan(req).unwrap();
//! assert_eq!(plan.actions.len(), 2);
//! ```

use std::fmt;
use std::path::Path;

use hsm_model::text::Encoding as HostEncoding;
use hsm_model::{Piece as HostPiece, SecretId, Text as HostText, Value as HostValue};
use hsm_plan as hp;
use hsm_runtime as rt;

use hsm_sdk::{
    Action, Capability, ConsumerEnv, Container, Encoding, Endpoint, Exec, HttpProbe, Map, MergeError, MergeRequest,
    Mode, Mount, PackageSource, ParamSpec, Piece, Plan, PlanError, PlanRequest, PluginInfo, Port, Probe, Protocol,
    PythonPackage, Requester, RestartPolicy, Text, Value, VariableSpec, Wait, WriteFile,
};

/// A failure of the component, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentError {
    /// `merge` returned an error.
    Merge(MergeError),
    /// `plan` returned an error.
    Plan(PlanError),
    /// The call failed in the runtime: a trap, a timeout, memory, garbage.
    Crashed(String),
    /// The host refused an action the plan returned.
    Refused(String),
}

impl fmt::Display for ComponentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Merge(e) => write!(f, "merge failed: {e:?}"),
            Self::Plan(e) => write!(f, "plan failed: {e:?}"),
            Self::Crashed(m) | Self::Refused(m) => f.write_str(m),
        }
    }
}

/// A compiled plugin loaded in the real runtime.
pub struct ComponentPlugin {
    plugin: rt::Plugin,
}

impl ComponentPlugin {
    /// Loads a component file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, String> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let host = rt::PluginHost::default();
        let plugin =
            host.load_component(&bytes, rt::PluginSource::File(path.to_path_buf())).map_err(|e| e.to_string())?;
        Ok(Self { plugin })
    }

    /// What the component says about itself, as the host understood it.
    pub fn describe(&self) -> PluginInfo {
        let info = self.plugin.info();
        let specs = |specs: &[rt::ParamSpec]| {
            specs
                .iter()
                .map(|s| ParamSpec { name: s.name.clone(), description: s.description.clone(), required: s.required })
                .collect()
        };
        PluginInfo {
            name: info.name.clone(),
            version: info.version.clone(),
            kinds: info.kinds.clone(),
            params: specs(&info.params),
            settings: specs(&info.settings),
            capabilities: info
                .capabilities
                .iter()
                .map(|c| match c {
                    rt::Capability::Containers => Capability::Containers,
                    rt::Capability::Exec => Capability::Exec,
                    rt::Capability::UvInstall => Capability::UvInstall,
                    rt::Capability::Files => Capability::Files,
                    rt::Capability::NetworkProbe => Capability::NetworkProbe,
                })
                .collect(),
            variables: info
                .variables
                .iter()
                .flatten()
                .map(|v| VariableSpec { name: v.name.clone(), description: v.description.clone() })
                .collect(),
        }
    }

    /// Calls `merge` in the sandbox.
    pub fn merge(&self, req: MergeRequest) -> Result<Value, ComponentError> {
        let defaults = value_to_host(&req.defaults);
        let params: Vec<HostValue> = req.contributions.iter().map(|c| value_to_host(&c.params)).collect();
        let input = rt::MergeInput {
            service: &req.service,
            kind: &req.kind,
            defaults: &defaults,
            contributions: req
                .contributions
                .iter()
                .zip(&params)
                .map(|(c, params)| rt::ContributionInput { from: consumer(&c.from), origin: c.origin.clone(), params })
                .collect(),
        };
        match self.plugin.merge(&input) {
            Ok(v) => Ok(value_from_host(&v)),
            Err(rt::MergeFailure::Conflict { message, key, contributions, hint }) => {
                Err(ComponentError::Merge(MergeError::Conflict {
                    message,
                    key,
                    contributions: contributions.into_iter().map(|i| i as u32).collect(),
                    hint,
                }))
            }
            Err(rt::MergeFailure::Invalid { message, key, contribution, hint }) => {
                Err(ComponentError::Merge(MergeError::Invalid {
                    message,
                    key,
                    contribution: contribution.map(|i| i as u32),
                    hint,
                }))
            }
            Err(rt::MergeFailure::Call(e)) => Err(ComponentError::Crashed(e.to_string())),
        }
    }

    /// Calls `plan` in the sandbox, then checks the actions as `hsm` would for a
    /// plugin granted everything it declares, in a project that asks for no Python
    /// packages.
    pub fn plan(&self, req: PlanRequest) -> Result<Plan, ComponentError> {
        self.plan_for_packages(req, &[])
    }

    /// [`ComponentPlugin::plan`] in a project that asks for these Python packages
    /// (what a `uv-install` action may install).
    pub fn plan_for_packages(&self, req: PlanRequest, packages: &[PythonPackage]) -> Result<Plan, ComponentError> {
        let config = value_to_host(&req.config);
        let settings = value_to_host(&req.profile.settings);
        let params: Vec<HostValue> = req.consumers.iter().map(|c| value_to_host(&c.params)).collect();
        let consumers: Vec<hp::Consumer> = req
            .consumers
            .iter()
            .map(|c| c.package.clone().map_or(hp::Consumer::Project, hp::Consumer::Package))
            .collect();
        let input = rt::PlanInput {
            project: &req.project,
            service: &req.service,
            kind: &req.kind,
            config: &config,
            profile: rt::ProfileInput {
                name: &req.profile.name,
                mode: match req.profile.mode {
                    Mode::Managed => hp::Mode::Managed,
                    Mode::External => hp::Mode::External,
                },
                settings: &settings,
            },
            consumers: consumers
                .iter()
                .zip(&params)
                .map(|(c, params)| rt::ConsumerInput { consumer: c.clone(), params })
                .collect(),
            host_address: &req.host_address,
        };
        let planned = self.plugin.plan(&input).map_err(|e| match e {
            rt::PlanFailure::Invalid { message, key } => ComponentError::Plan(PlanError { message, key }),
            rt::PlanFailure::Call(e) => ComponentError::Crashed(e.to_string()),
        })?;
        let packages: Vec<hp::PythonPackage> = packages
            .iter()
            .map(|p| hp::PythonPackage {
                name: p.name.clone(),
                source: match &p.source {
                    PackageSource::Pypi(s) => hp::PackageSource::Pypi(s.clone()),
                    PackageSource::Path(s) => hp::PackageSource::Path(s.clone()),
                    PackageSource::Editable(s) => hp::PackageSource::Editable(s.clone()),
                },
            })
            .collect();
        // The consumers' renames, as hsm reads them from their `env_names`.
        let renames: Vec<rt::Rename> = consumers
            .iter()
            .zip(&params)
            .flat_map(|(consumer, params)| rt::Rename::from_params(consumer, params))
            .collect();
        let ctx =
            rt::CheckContext { service: &req.service, consumers: &consumers, packages: &packages, renames: &renames };
        rt::check_plan(self.plugin.info(), &rt::Grants::declared(self.plugin.info()), &ctx, &planned)
            .map_err(|e| ComponentError::Refused(e.to_string()))?;
        Ok(Plan {
            actions: planned.actions.iter().map(action_from_host).collect(),
            env: planned
                .env
                .iter()
                .map(|e| ConsumerEnv {
                    package: e.consumer.package().map(str::to_string),
                    vars: vars_from_host(&e.vars),
                })
                .collect(),
        })
    }
}

fn consumer(r: &Requester) -> hp::Consumer {
    match r {
        Requester::Project => hp::Consumer::Project,
        Requester::Package(p) => hp::Consumer::Package(p.clone()),
    }
}

fn encoding_to_host(e: Encoding) -> HostEncoding {
    match e {
        Encoding::Raw => HostEncoding::Raw,
        Encoding::Url => HostEncoding::Url,
    }
}

fn encoding_from_host(e: HostEncoding) -> Encoding {
    match e {
        HostEncoding::Raw => Encoding::Raw,
        HostEncoding::Url => Encoding::Url,
    }
}

/// A test's secret handle `n` becomes the host's secret `n`, so it comes back as
/// the same handle whatever handle the runtime gave the plugin.
fn text_to_host(t: &Text) -> HostText {
    HostText::from_pieces(t.pieces().iter().map(|p| match p {
        Piece::Lit(s) => HostPiece::Lit(s.clone()),
        Piece::Secret(s) => {
            let (handle, encoding) = hsm_sdk::__private::secret_parts(s);
            HostPiece::Secret {
                id: SecretId(handle),
                label: format!("${{hsm:secret:{handle}}}"),
                encoding: encoding_to_host(encoding),
            }
        }
        Piece::Generated { name, encoding } => {
            HostPiece::Generated { name: name.clone(), encoding: encoding_to_host(*encoding) }
        }
        Piece::HostPort { container, port } => HostPiece::HostPort { container: container.clone(), port: *port },
    }))
}

fn text_from_host(t: &HostText) -> Text {
    let mut out = Text::new();
    for p in t.pieces() {
        out.push(match p {
            HostPiece::Lit(s) => Piece::Lit(s.clone()),
            HostPiece::Secret { id, encoding, .. } => {
                Piece::Secret(hsm_sdk::__private::secret_ref(id.0, encoding_from_host(*encoding)))
            }
            HostPiece::Generated { name, encoding } => {
                Piece::Generated { name: name.clone(), encoding: encoding_from_host(*encoding) }
            }
            HostPiece::HostPort { container, port } => Piece::HostPort { container: container.clone(), port: *port },
        });
    }
    out
}

fn value_to_host(v: &Value) -> HostValue {
    match v {
        Value::Null => HostValue::Null,
        Value::Bool(b) => HostValue::Bool(*b),
        Value::Int(i) => HostValue::Int(*i),
        Value::Float(f) => HostValue::Float(*f),
        Value::Text(t) => HostValue::Text(text_to_host(t)),
        Value::List(items) => HostValue::List(items.iter().map(value_to_host).collect()),
        Value::Map(m) => HostValue::Map(m.iter().map(|(k, v)| (k.to_string(), value_to_host(v))).collect()),
    }
}

fn value_from_host(v: &HostValue) -> Value {
    match v {
        HostValue::Null => Value::Null,
        HostValue::Bool(b) => Value::Bool(*b),
        HostValue::Int(i) => Value::Int(*i),
        HostValue::Float(f) => Value::Float(*f),
        HostValue::Text(t) => Value::Text(text_from_host(t)),
        HostValue::List(items) => Value::List(items.iter().map(value_from_host).collect()),
        HostValue::Map(m) => Value::Map(m.iter().map(|(k, v)| (k.clone(), value_from_host(v))).collect::<Map>()),
    }
}

fn vars_from_host(vars: &[(String, HostText)]) -> Vec<(String, Text)> {
    vars.iter().map(|(k, v)| (k.clone(), text_from_host(v))).collect()
}

fn exec_from_host(e: &hp::Exec) -> Exec {
    Exec {
        container: e.container.clone(),
        command: e.command.iter().map(text_from_host).collect(),
        env: vars_from_host(&e.env),
        user: e.user.clone(),
    }
}

fn endpoint_from_host(e: &hp::Endpoint) -> Endpoint {
    match e {
        hp::Endpoint::ContainerPort { container, port } => {
            Endpoint::ContainerPort { container: container.clone(), port: *port }
        }
        hp::Endpoint::Address { host, port } => {
            Endpoint::Address { host: text_from_host(host), port: text_from_host(port) }
        }
    }
}

fn action_from_host(a: &hp::Action) -> Action {
    match a {
        hp::Action::EnsureContainer(c) => Action::EnsureContainer(Container {
            name: c.name.clone(),
            image: c.image.clone(),
            command: c.command.as_ref().map(|c| c.iter().map(text_from_host).collect()),
            env: vars_from_host(&c.env),
            ports: c
                .ports
                .iter()
                .map(|p| Port {
                    container_port: p.container_port,
                    protocol: match p.protocol {
                        hp::Protocol::Tcp => Protocol::Tcp,
                        hp::Protocol::Udp => Protocol::Udp,
                    },
                    host_port: p.host_port,
                    host_ip: (p.host_ip != "127.0.0.1").then(|| p.host_ip.clone()),
                })
                .collect(),
            mounts: c
                .mounts
                .iter()
                .map(|m| match m {
                    hp::Mount::Volume { volume, target, read_only } => {
                        Mount::Volume { volume: volume.clone(), target: target.clone(), read_only: *read_only }
                    }
                    hp::Mount::Bind { source, target, read_only } => {
                        Mount::Bind { source: source.clone(), target: target.clone(), read_only: *read_only }
                    }
                })
                .collect(),
            restart: match c.restart {
                hp::RestartPolicy::No => RestartPolicy::No,
                hp::RestartPolicy::OnFailure => RestartPolicy::OnFailure,
                hp::RestartPolicy::UnlessStopped => RestartPolicy::UnlessStopped,
                hp::RestartPolicy::Always => RestartPolicy::Always,
            },
            init: c.init,
            stop_signal: c.stop_signal.clone(),
        }),
        hp::Action::Exec(e) => Action::Exec(exec_from_host(e)),
        hp::Action::Wait(w) => Action::Wait(Wait {
            probe: match &w.probe {
                hp::Probe::Tcp { endpoint } => Probe::Tcp(endpoint_from_host(endpoint)),
                hp::Probe::Http { endpoint, path, tls, status, headers } => Probe::Http(HttpProbe {
                    endpoint: endpoint_from_host(endpoint),
                    path: path.clone(),
                    tls: *tls,
                    status: *status,
                    headers: vars_from_host(headers),
                }),
                hp::Probe::Exec(e) => Probe::Exec(exec_from_host(e)),
            },
            timeout_ms: w.timeout_ms,
            interval_ms: w.interval_ms,
        }),
        hp::Action::UvInstall { packages } => Action::UvInstall(
            packages
                .iter()
                .map(|p| PythonPackage {
                    name: p.name.clone(),
                    source: match &p.source {
                        hp::PackageSource::Pypi(s) => PackageSource::Pypi(s.clone()),
                        hp::PackageSource::Path(s) => PackageSource::Path(s.clone()),
                        hp::PackageSource::Editable(s) => PackageSource::Editable(s.clone()),
                    },
                })
                .collect(),
        ),
        hp::Action::WriteFile(f) => Action::WriteFile(WriteFile { path: f.path.clone(), contents: f.contents.clone() }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The SDK builds from its own copy of the WIT (so the published crate carries
    /// it): it must be the repository's `wit/<WIT_VERSION>/`, word for word.
    #[test]
    fn the_sdk_carries_the_repository_wit() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let theirs = root.join("wit").join(hsm_sdk::WIT_VERSION).join("plugin.wit");
        let ours = root.join("sdk/wit/plugin.wit");
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
        assert!(read(&ours) == read(&theirs), "sdk/wit/plugin.wit differs from {}: copy it over", theirs.display());
        // And it is the newest version the repository has.
        let newest = std::fs::read_dir(root.join("wit"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .max_by_key(|v| v.split('.').map(|n| n.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(hsm_sdk::WIT_VERSION, newest, "the SDK builds the newest WIT, `wit/{newest}`");
        let files: Vec<_> = std::fs::read_dir(root.join("sdk/wit")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files, ["plugin.wit"], "sdk/wit holds one WIT version");
    }
}
