//! Conversions between hsm's own types and the WIT types. Going in, secrets become
//! per-call handles; coming out, everything a plugin returns is validated (handles
//! it was given, well-formed trees, names) and counted against the output limit.
//!
//! One module per WIT version holds what only that version has: how its requests
//! are written and how its trees come back ([`v0_1`]'s node lists, [`v0_2`]'s
//! encoded bytes, which later versions keep), [`v0_3`]'s declared variables, and
//! [`v0_4`]'s types. What every version returns (a description, plans, errors) is
//! converted once, here, from the newest types: 0.1.0 to 0.3.0 share 0.1.0's Rust
//! types (the `with` mapping in `bindings.rs`), which [`v0_4`] upgrades.

pub(crate) mod v0_1;
pub(crate) mod v0_2;
pub(crate) mod v0_3;
pub(crate) mod v0_4;

use std::collections::BTreeSet;

use hsm_model::text::Encoding;
use hsm_model::{Piece, SecretId, Text};
use hsm_plan as plan;

use crate::bindings::v0_1::hsm::plugin::types as w1;
use crate::bindings::v0_4::hsm::plugin::types as w;
use crate::plugin::{CallErrorKind, MergeFailure, PlannedService};
use hsm_check::{Capability, ParamSpec, PluginInfo};

/// The secrets handed to a plugin in one call, by handle.
#[derive(Default)]
pub(crate) struct Handles {
    secrets: Vec<(SecretId, String)>,
}

impl Handles {
    fn handle(&mut self, id: SecretId, label: &str) -> u32 {
        if let Some(i) = self.secrets.iter().position(|(s, _)| *s == id) {
            return i as u32;
        }
        self.secrets.push((id, label.to_string()));
        (self.secrets.len() - 1) as u32
    }

    fn get(&self, handle: u32) -> Option<&(SecretId, String)> {
        self.secrets.get(handle as usize)
    }
}

/// Counts what a plugin returns against the output limit.
pub(crate) struct Budget {
    used: usize,
    limit: usize,
}

/// What one node, piece or list entry costs besides its strings.
const OVERHEAD: usize = 16;

impl Budget {
    pub(crate) fn new(limit: usize) -> Self {
        Self { used: 0, limit }
    }

    fn take(&mut self, n: usize) -> Result<(), CallErrorKind> {
        self.used = self.used.saturating_add(n);
        if self.used > self.limit { Err(CallErrorKind::TooLarge(self.limit)) } else { Ok(()) }
    }

    pub(crate) fn take_str(&mut self, s: &str) -> Result<(), CallErrorKind> {
        self.take(s.len() + OVERHEAD)
    }
}

pub(crate) use hsm_check::words::plugin_words;

fn malformed(message: impl Into<String>) -> CallErrorKind {
    CallErrorKind::Malformed(message.into())
}

/// A tree that breaks the format's rules, in `hsm-wire`'s words.
impl From<hsm_wire::Error> for CallErrorKind {
    fn from(e: hsm_wire::Error) -> Self {
        malformed(e.to_string())
    }
}

/// Who asked, as both 0.1.0's and 0.2.0's requests say it.
fn requester_to_wit(c: &plan::Consumer) -> w1::Requester<'_> {
    match c {
        plan::Consumer::Project => w1::Requester::Project,
        plan::Consumer::Package(p) => w1::Requester::Package(p),
    }
}

/// A profile's mode, as both 0.1.0's and 0.2.0's requests say it.
fn mode_to_wit(mode: plan::Mode) -> w1::Mode {
    match mode {
        plan::Mode::Managed => w1::Mode::Managed,
        plan::Mode::External => w1::Mode::External,
    }
}

/// A host-port reference's container: a name as `ensure-container` takes one (the
/// plan's check says whether it is one of the service's own; in a merged
/// configuration, this is the only check).
fn container_name(name: String) -> Result<String, CallErrorKind> {
    if is_name(&name, 64) {
        Ok(name)
    } else {
        Err(malformed(format!(
            "host-port reference to container `{}`, which is not lowercase letters, digits and `-`",
            name.escape_debug()
        )))
    }
}

fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A plugin's self-description, checked: names and kinds are names, every text is
/// printable (no terminal escapes when `hsm plugin check` shows it) and it all fits
/// the output budget.
pub(crate) fn info_from_wit(info: impl Into<w::PluginInfo>, budget: &mut Budget) -> Result<PluginInfo, String> {
    let info: w::PluginInfo = info.into();
    let mut texts: Vec<&str> = vec![&info.name, &info.version];
    texts.extend(info.kinds.iter().map(String::as_str));
    for spec in info.params.iter().chain(&info.settings) {
        texts.push(&spec.name);
        texts.push(&spec.description);
    }
    for text in texts {
        budget.take_str(text).map_err(|e| e.to_string())?;
        if hsm_model::text::needs_escape(text) {
            return Err(format!("`{}` holds control or invisible characters", text.escape_debug()));
        }
    }
    if !is_name(&info.name, 64) {
        return Err(format!("its name `{}` is not lowercase letters, digits and `-`", info.name.escape_debug()));
    }
    if info.version.is_empty() || info.version.len() > 64 {
        return Err("it gives no version".into());
    }
    if info.kinds.is_empty() {
        return Err("it serves no service kind".into());
    }
    for kind in &info.kinds {
        if !is_name(kind, 64) {
            return Err(format!("its kind `{}` is not lowercase letters, digits and `-`", kind.escape_debug()));
        }
    }
    let specs = |specs: Vec<w::ParamSpec>| {
        specs
            .into_iter()
            .map(|s| ParamSpec { name: s.name, description: s.description, required: s.required })
            .collect()
    };
    let capabilities: BTreeSet<Capability> = info
        .capabilities
        .into_iter()
        .map(|c| match c {
            w::Capability::Containers => Capability::Containers,
            w::Capability::Exec => Capability::Exec,
            w::Capability::UvInstall => Capability::UvInstall,
            w::Capability::Files => Capability::Files,
            w::Capability::NetworkProbe => Capability::NetworkProbe,
        })
        .collect();
    Ok(PluginInfo {
        name: info.name,
        version: info.version,
        kinds: info.kinds,
        params: specs(info.params),
        settings: specs(info.settings),
        capabilities,
        variables: None,
    })
}

fn encoding_from_wit(e: w::Encoding) -> Encoding {
    match e {
        w::Encoding::Raw => Encoding::Raw,
        w::Encoding::Url => Encoding::Url,
    }
}

fn text_from_wit(t: w::Text, handles: &Handles, budget: &mut Budget) -> Result<Text, CallErrorKind> {
    let mut out = Text::default();
    for piece in t.pieces {
        out.push(match piece {
            w::Piece::Lit(s) => {
                budget.take_str(&s)?;
                Piece::Lit(s)
            }
            w::Piece::Secret(s) => {
                budget.take(OVERHEAD)?;
                let (id, label) = handles
                    .get(s.handle)
                    .ok_or_else(|| malformed(format!("secret handle {} was not given to it in this call", s.handle)))?;
                Piece::Secret { id: *id, label: label.clone(), encoding: encoding_from_wit(s.encoding) }
            }
            w::Piece::Generated(g) => {
                budget.take_str(&g.name)?;
                if !is_name(&g.name, 64) {
                    return Err(malformed(format!(
                        "generated secret name `{}` is not lowercase letters, digits and `-`",
                        g.name.escape_debug()
                    )));
                }
                Piece::Generated { name: g.name, encoding: encoding_from_wit(g.encoding) }
            }
            w::Piece::HostPort(p) => {
                budget.take_str(&p.container)?;
                Piece::HostPort { container: container_name(p.container)?, port: p.port }
            }
        });
    }
    Ok(out)
}

/// Why a merge failed, checked: the contributions it names exist, and its words fit
/// the output budget.
pub(crate) fn merge_error_from_wit(
    e: w::MergeError,
    contributions: usize,
    budget: &mut Budget,
) -> Result<MergeFailure, CallErrorKind> {
    let index = |i: u32| {
        let i = i as usize;
        if i < contributions { Ok(i) } else { Err(malformed(format!("contribution {i} does not exist"))) }
    };
    let mut words = |s: &str| budget.take_str(s).map(|()| plugin_words(s));
    Ok(match e {
        w::MergeError::Conflict(c) => MergeFailure::Conflict {
            message: words(&c.message)?,
            key: words(&c.key)?,
            contributions: c.contributions.into_iter().map(index).collect::<Result<_, _>>()?,
            hint: c.hint.as_deref().map(&mut words).transpose()?,
        },
        w::MergeError::Invalid(i) => MergeFailure::Invalid {
            message: words(&i.message)?,
            key: words(&i.key)?,
            contribution: i.contribution.map(index).transpose()?,
            hint: i.hint.as_deref().map(&mut words).transpose()?,
        },
    })
}

struct Out<'a> {
    handles: &'a Handles,
    budget: &'a mut Budget,
}

impl Out<'_> {
    fn text(&mut self, t: w::Text) -> Result<Text, CallErrorKind> {
        text_from_wit(t, self.handles, self.budget)
    }

    fn string(&mut self, s: String) -> Result<String, CallErrorKind> {
        self.budget.take_str(&s)?;
        Ok(s)
    }

    fn texts(&mut self, ts: Vec<w::Text>) -> Result<Vec<Text>, CallErrorKind> {
        ts.into_iter().map(|t| self.text(t)).collect()
    }

    fn vars(&mut self, vars: Vec<w::EnvVar>) -> Result<Vec<(String, Text)>, CallErrorKind> {
        vars.into_iter().map(|v| Ok((self.string(v.name)?, self.text(v.value)?))).collect()
    }

    fn exec(&mut self, e: w::Exec) -> Result<plan::Exec, CallErrorKind> {
        Ok(plan::Exec {
            container: self.string(e.container)?,
            command: self.texts(e.command)?,
            env: self.vars(e.env)?,
            user: e.user.map(|u| self.string(u)).transpose()?,
        })
    }

    fn endpoint(&mut self, e: w::Endpoint) -> Result<plan::Endpoint, CallErrorKind> {
        Ok(match e {
            w::Endpoint::ContainerPort(p) => {
                plan::Endpoint::ContainerPort { container: self.string(p.container)?, port: p.port }
            }
            w::Endpoint::Address(a) => plan::Endpoint::Address { host: self.text(a.host)?, port: self.text(a.port)? },
        })
    }

    fn container(&mut self, c: w::Container) -> Result<plan::Container, CallErrorKind> {
        Ok(plan::Container {
            name: self.string(c.name)?,
            image: self.string(c.image)?,
            command: c.command.map(|c| self.texts(c)).transpose()?,
            env: self.vars(c.env)?,
            ports: c
                .ports
                .into_iter()
                .map(|p| {
                    Ok(plan::Port {
                        container_port: p.container_port,
                        protocol: match p.protocol {
                            w::Protocol::Tcp => plan::Protocol::Tcp,
                            w::Protocol::Udp => plan::Protocol::Udp,
                        },
                        host_port: p.host_port,
                        host_ip: self.string(p.host_ip.unwrap_or_else(|| "127.0.0.1".into()))?,
                    })
                })
                .collect::<Result<_, CallErrorKind>>()?,
            mounts: c
                .mounts
                .into_iter()
                .map(|m| {
                    Ok(match m {
                        w::Mount::Volume(v) => plan::Mount::Volume {
                            volume: self.string(v.volume)?,
                            target: self.string(v.target)?,
                            read_only: v.read_only,
                        },
                        w::Mount::Bind(b) => plan::Mount::Bind {
                            source: self.string(b.source)?,
                            target: self.string(b.target)?,
                            read_only: b.read_only,
                        },
                    })
                })
                .collect::<Result<_, CallErrorKind>>()?,
            restart: match c.restart {
                w::RestartPolicy::No => plan::RestartPolicy::No,
                w::RestartPolicy::OnFailure => plan::RestartPolicy::OnFailure,
                w::RestartPolicy::UnlessStopped => plan::RestartPolicy::UnlessStopped,
                w::RestartPolicy::Always => plan::RestartPolicy::Always,
            },
            init: c.init,
            stop_signal: c.stop_signal.map(|s| self.string(s)).transpose()?,
        })
    }

    fn action(&mut self, a: w::Action, plugin: &str) -> Result<plan::Action, CallErrorKind> {
        self.budget.take(OVERHEAD)?;
        Ok(match a {
            w::Action::EnsureContainer(c) => plan::Action::EnsureContainer(self.container(c)?),
            w::Action::Exec(e) => plan::Action::Exec(self.exec(e)?),
            w::Action::Wait(wait) => plan::Action::Wait(plan::Wait {
                probe: match wait.probe {
                    w::Probe::Tcp(e) => plan::Probe::Tcp { endpoint: self.endpoint(e)? },
                    w::Probe::Http(h) => plan::Probe::Http {
                        endpoint: self.endpoint(h.endpoint)?,
                        path: self.string(h.path)?,
                        tls: h.tls,
                        status: h.status,
                        headers: self.vars(h.headers)?,
                    },
                    w::Probe::Exec(e) => plan::Probe::Exec(self.exec(e)?),
                },
                timeout_ms: wait.timeout_ms,
                interval_ms: wait.interval_ms,
            }),
            w::Action::UvInstall(packages) => plan::Action::UvInstall {
                packages: packages
                    .into_iter()
                    .map(|p| {
                        Ok(plan::PythonPackage {
                            name: self.string(p.name)?,
                            source: match p.source {
                                w::PackageSource::Pypi(s) => plan::PackageSource::Pypi(self.string(s)?),
                                w::PackageSource::Path(s) => plan::PackageSource::Path(self.string(s)?),
                                w::PackageSource::Editable(s) => plan::PackageSource::Editable(self.string(s)?),
                            },
                        })
                    })
                    .collect::<Result<_, CallErrorKind>>()?,
            },
            w::Action::WriteFile(f) => plan::Action::WriteFile(plan::WriteFile {
                plugin: plugin.to_string(),
                path: self.string(f.path)?,
                contents: self.string(f.contents)?,
            }),
        })
    }
}

/// A service's plan, converted and counted against the output budget (the plan's
/// own checks come later, in [`crate::check_plan`]).
pub(crate) fn plan_from_wit(
    p: w::ServicePlan,
    handles: &Handles,
    budget: &mut Budget,
    plugin: &str,
) -> Result<PlannedService, CallErrorKind> {
    let mut out = Out { handles, budget };
    let actions = p.actions.into_iter().map(|a| out.action(a, plugin)).collect::<Result<_, _>>()?;
    let env = p
        .env
        .into_iter()
        .map(|e| {
            Ok(plan::ConsumerEnv {
                consumer: match e.package {
                    None => plan::Consumer::Project,
                    Some(p) => plan::Consumer::Package(out.string(p)?),
                },
                vars: out.vars(e.vars)?,
            })
        })
        .collect::<Result<_, CallErrorKind>>()?;
    Ok(PlannedService { actions, env })
}
