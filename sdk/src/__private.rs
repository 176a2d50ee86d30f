//! The WIT bindings and the conversions between them and the SDK's types. Hidden:
//! plugin authors see only the SDK's own types, so the bindings can change with the
//! WIT version without breaking them.

use std::marker::PhantomData;

use crate::{plan as p, request as r, text as t};

mod tree;

pub(crate) use tree::encode;

#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        // The SDK's copy of `wit/0.4.0` (see Cargo.toml), so the published crate has it.
        path: "wit",
        world: "hsm:plugin/plugin@0.4.0",
        export_macro_name: "__export_hsm_plugin",
        pub_export_macro: true,
        default_bindings_module: "hsm_sdk::__private::bindings",
    });
}

use bindings::exports::hsm::plugin::backend::{self as b, Guest};
use bindings::hsm::plugin::requests as q;
use bindings::hsm::plugin::types as w;

/// A secret reference's handle and encoding, for `hsm-sdk-host` (plugins treat a
/// reference as opaque).
pub fn secret_parts(secret: &t::SecretRef) -> (u32, t::Encoding) {
    (secret.handle, secret.encoding)
}

/// A secret reference, for `hsm-sdk-host`.
pub fn secret_ref(handle: u32, encoding: t::Encoding) -> t::SecretRef {
    t::SecretRef { handle, encoding }
}

/// Implements the generated component interface for a [`crate::Backend`].
pub struct Adapter<B>(PhantomData<B>);

impl<B: crate::Backend> Guest for Adapter<B> {
    fn describe() -> b::Description {
        let mut info = B::describe();
        let variables = std::mem::take(&mut info.variables)
            .into_iter()
            .map(|v| b::Variable { name: v.name, description: v.description })
            .collect();
        b::Description { info: info_to_wit(info), variables }
    }

    fn merge(request: q::MergeRequest) -> Result<q::Tree, w::MergeError> {
        B::merge(merge_request_from_wit(request)).map(|v| tree::encode(&v)).map_err(merge_error_to_wit)
    }

    fn plan(request: q::PlanRequest) -> Result<w::ServicePlan, w::PlanError> {
        B::plan(plan_request_from_wit(request))
            .map(plan_to_wit)
            .map_err(|e| w::PlanError { message: e.message, key: e.key })
    }
}

fn encoding_to_wit(e: t::Encoding) -> w::Encoding {
    match e {
        t::Encoding::Raw => w::Encoding::Raw,
        t::Encoding::Url => w::Encoding::Url,
    }
}

fn text_to_wit(text: t::Text) -> w::Text {
    w::Text {
        pieces: text
            .into_pieces()
            .into_iter()
            .map(|piece| match piece {
                t::Piece::Lit(s) => w::Piece::Lit(s),
                t::Piece::Secret(s) => {
                    w::Piece::Secret(w::SecretUse { handle: s.handle, encoding: encoding_to_wit(s.encoding) })
                }
                t::Piece::Generated { name, encoding } => {
                    w::Piece::Generated(w::GeneratedUse { name, encoding: encoding_to_wit(encoding) })
                }
                t::Piece::HostPort { container, port } => w::Piece::HostPort(w::PortRef { container, port }),
            })
            .collect(),
    }
}

fn capability_to_wit(c: r::Capability) -> w::Capability {
    match c {
        r::Capability::Containers => w::Capability::Containers,
        r::Capability::Exec => w::Capability::Exec,
        r::Capability::UvInstall => w::Capability::UvInstall,
        r::Capability::Files => w::Capability::Files,
        r::Capability::NetworkProbe => w::Capability::NetworkProbe,
    }
}

fn specs_to_wit(specs: Vec<r::ParamSpec>) -> Vec<w::ParamSpec> {
    specs.into_iter().map(|s| w::ParamSpec { name: s.name, description: s.description, required: s.required }).collect()
}

fn info_to_wit(info: r::PluginInfo) -> w::PluginInfo {
    w::PluginInfo {
        name: info.name,
        version: info.version,
        kinds: info.kinds,
        params: specs_to_wit(info.params),
        settings: specs_to_wit(info.settings),
        capabilities: info.capabilities.into_iter().map(capability_to_wit).collect(),
    }
}

fn requester_from_wit(r: w::Requester) -> r::Requester {
    match r {
        w::Requester::Project => r::Requester::Project,
        w::Requester::Package(p) => r::Requester::Package(p),
    }
}

fn merge_request_from_wit(req: q::MergeRequest) -> r::MergeRequest {
    r::MergeRequest {
        service: req.service,
        kind: req.kind,
        defaults: tree::decode(&req.defaults),
        contributions: req
            .contributions
            .into_iter()
            .map(|c| r::Contribution {
                from: requester_from_wit(c.from),
                origin: c.origin,
                params: tree::decode(&c.params),
            })
            .collect(),
    }
}

fn merge_error_to_wit(e: r::MergeError) -> w::MergeError {
    match e {
        r::MergeError::Conflict { message, key, contributions, hint } => {
            w::MergeError::Conflict(w::Conflict { message, key, contributions, hint })
        }
        r::MergeError::Invalid { message, key, contribution, hint } => {
            w::MergeError::Invalid(w::InvalidParam { message, key, contribution, hint })
        }
    }
}

fn plan_request_from_wit(req: q::PlanRequest) -> r::PlanRequest {
    r::PlanRequest {
        project: req.project,
        service: req.service,
        kind: req.kind,
        config: tree::decode(&req.config),
        profile: r::Profile {
            name: req.profile.name,
            mode: match req.profile.mode {
                w::Mode::Managed => r::Mode::Managed,
                w::Mode::External => r::Mode::External,
            },
            settings: tree::decode(&req.profile.settings),
        },
        consumers: req
            .consumers
            .into_iter()
            .map(|c| r::Consumer { package: c.package, params: tree::decode(&c.params) })
            .collect(),
        host_address: req.host_address,
    }
}

fn vars_to_wit(vars: Vec<(String, t::Text)>) -> Vec<w::EnvVar> {
    vars.into_iter().map(|(name, value)| w::EnvVar { name, value: text_to_wit(value) }).collect()
}

fn texts_to_wit(texts: Vec<t::Text>) -> Vec<w::Text> {
    texts.into_iter().map(text_to_wit).collect()
}

fn exec_to_wit(e: p::Exec) -> w::Exec {
    w::Exec { container: e.container, command: texts_to_wit(e.command), env: vars_to_wit(e.env), user: e.user }
}

fn endpoint_to_wit(e: p::Endpoint) -> w::Endpoint {
    match e {
        p::Endpoint::ContainerPort { container, port } => w::Endpoint::ContainerPort(w::PortRef { container, port }),
        p::Endpoint::Address { host, port } => {
            w::Endpoint::Address(w::Address { host: text_to_wit(host), port: text_to_wit(port) })
        }
    }
}

fn container_to_wit(c: p::Container) -> w::Container {
    w::Container {
        name: c.name,
        image: c.image,
        command: c.command.map(texts_to_wit),
        env: vars_to_wit(c.env),
        ports: c
            .ports
            .into_iter()
            .map(|port| w::Port {
                container_port: port.container_port,
                protocol: match port.protocol {
                    p::Protocol::Tcp => w::Protocol::Tcp,
                    p::Protocol::Udp => w::Protocol::Udp,
                },
                host_port: port.host_port,
                host_ip: port.host_ip,
            })
            .collect(),
        mounts: c
            .mounts
            .into_iter()
            .map(|m| match m {
                p::Mount::Volume { volume, target, read_only } => {
                    w::Mount::Volume(w::VolumeMount { volume, target, read_only })
                }
                p::Mount::Bind { source, target, read_only } => {
                    w::Mount::Bind(w::BindMount { source, target, read_only })
                }
            })
            .collect(),
        restart: match c.restart {
            p::RestartPolicy::No => w::RestartPolicy::No,
            p::RestartPolicy::OnFailure => w::RestartPolicy::OnFailure,
            p::RestartPolicy::UnlessStopped => w::RestartPolicy::UnlessStopped,
            p::RestartPolicy::Always => w::RestartPolicy::Always,
        },
        init: c.init,
        stop_signal: c.stop_signal,
    }
}

fn action_to_wit(a: p::Action) -> w::Action {
    match a {
        p::Action::EnsureContainer(c) => w::Action::EnsureContainer(container_to_wit(c)),
        p::Action::Exec(e) => w::Action::Exec(exec_to_wit(e)),
        p::Action::Wait(wait) => w::Action::Wait(w::Wait {
            probe: match wait.probe {
                p::Probe::Tcp(e) => w::Probe::Tcp(endpoint_to_wit(e)),
                p::Probe::Http(h) => w::Probe::Http(w::HttpProbe {
                    endpoint: endpoint_to_wit(h.endpoint),
                    path: h.path,
                    tls: h.tls,
                    status: h.status,
                    headers: vars_to_wit(h.headers),
                }),
                p::Probe::Exec(e) => w::Probe::Exec(exec_to_wit(e)),
            },
            timeout_ms: wait.timeout_ms,
            interval_ms: wait.interval_ms,
        }),
        p::Action::UvInstall(packages) => w::Action::UvInstall(
            packages
                .into_iter()
                .map(|pkg| w::PythonPackage {
                    name: pkg.name,
                    source: match pkg.source {
                        p::PackageSource::Pypi(s) => w::PackageSource::Pypi(s),
                        p::PackageSource::Path(s) => w::PackageSource::Path(s),
                        p::PackageSource::Editable(s) => w::PackageSource::Editable(s),
                    },
                })
                .collect(),
        ),
        p::Action::WriteFile(f) => w::Action::WriteFile(w::WriteFile { path: f.path, contents: f.contents }),
    }
}

fn plan_to_wit(plan: p::Plan) -> w::ServicePlan {
    w::ServicePlan {
        actions: plan.actions.into_iter().map(action_to_wit).collect(),
        env: plan.env.into_iter().map(|e| w::ConsumerEnv { package: e.package, vars: vars_to_wit(e.vars) }).collect(),
    }
}
