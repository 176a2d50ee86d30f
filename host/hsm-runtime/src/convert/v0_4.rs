//! `hsm:plugin@0.4.0`'s conversions. Its `types` differ from 0.1.0's (which 0.2.0
//! and 0.3.0 share): a merge error carries a `hint`, a container `init` and a
//! `stop-signal`. So its types are the ones [`super`] converts from, and what an
//! older plugin returns is upgraded to them here first, field by field: no hint,
//! no init, the image's stop signal. The checks all happen after, once.

use super::Budget;
use crate::bindings::v0_1::hsm::plugin::types as old;
use crate::bindings::v0_4::exports::hsm::plugin::backend as b4;
use crate::bindings::v0_4::hsm::plugin::types as w;
use hsm_check::PluginInfo;

/// A 0.4.0 plugin's self-description, as 0.3.0's: its `plugin-info` and the
/// variables it declares.
pub(crate) fn description_from_wit(d: b4::Description, budget: &mut Budget) -> Result<PluginInfo, String> {
    let variables = d.variables.into_iter().map(|v| (v.name, v.description)).collect();
    super::v0_3::declared(d.info, variables, budget)
}

/// An older plugin's answer (its value or its error) in 0.4.0's types.
pub(crate) fn upgrade<T, E, U: From<T>, F: From<E>>(answer: Result<T, E>) -> Result<U, F> {
    answer.map(U::from).map_err(F::from)
}

/// A value in an older version's types, as 0.4.0's. `From` can't be used for
/// lists and options of them (neither type is this crate's).
trait Up<T> {
    fn up(self) -> T;
}

impl<A: Up<B>, B> Up<Vec<B>> for Vec<A> {
    fn up(self) -> Vec<B> {
        self.into_iter().map(Up::up).collect()
    }
}

impl<A: Up<B>, B> Up<Option<B>> for Option<A> {
    fn up(self) -> Option<B> {
        self.map(Up::up)
    }
}

macro_rules! same {
    ($($t:ty),*) => {$(
        impl Up<$t> for $t {
            fn up(self) -> $t {
                self
            }
        }
    )*};
}
same!(String, bool, u16, u32);

/// Records whose fields are the same in both versions (`old => new`: 0.1.0's
/// types that go both ways have a `…Result` type for what comes back).
macro_rules! record {
    ($($old:ident => $new:ident { $($field:ident),* })*) => {$(
        impl Up<w::$new> for old::$old {
            fn up(self) -> w::$new {
                w::$new { $($field: self.$field.up()),* }
            }
        }
    )*};
}

/// Enums and variants whose cases are the same in both versions.
macro_rules! cases {
    ($($old:ident => $new:ident { $($case:ident $(($x:ident))?),* })*) => {$(
        impl Up<w::$new> for old::$old {
            fn up(self) -> w::$new {
                match self {
                    $(old::$old::$case $(($x))? => w::$new::$case $(($x.up()))?),*
                }
            }
        }
    )*};
}

record! {
    ParamSpec => ParamSpec { name, description, required }
    PluginInfo => PluginInfo { name, version, kinds, params, settings, capabilities }
    SecretUse => SecretUse { handle, encoding }
    GeneratedUseResult => GeneratedUse { name, encoding }
    PortRefResult => PortRef { container, port }
    TextResult => Text { pieces }
    EnvVar => EnvVar { name, value }
    ConsumerEnv => ConsumerEnv { package, vars }
    Port => Port { container_port, protocol, host_port, host_ip }
    VolumeMount => VolumeMount { volume, target, read_only }
    BindMount => BindMount { source, target, read_only }
    Exec => Exec { container, command, env, user }
    Address => Address { host, port }
    HttpProbe => HttpProbe { endpoint, path, tls, status, headers }
    Wait => Wait { probe, timeout_ms, interval_ms }
    PythonPackage => PythonPackage { name, source }
    WriteFile => WriteFile { path, contents }
    ServicePlan => ServicePlan { actions, env }
    PlanError => PlanError { message, key }
}

cases! {
    Encoding => Encoding { Raw, Url }
    Capability => Capability { Containers, Exec, UvInstall, Files, NetworkProbe }
    PieceResult => Piece { Lit(x), Secret(x), Generated(x), HostPort(x) }
    Protocol => Protocol { Tcp, Udp }
    Mount => Mount { Volume(x), Bind(x) }
    RestartPolicy => RestartPolicy { No, OnFailure, UnlessStopped, Always }
    Endpoint => Endpoint { ContainerPort(x), Address(x) }
    Probe => Probe { Tcp(x), Http(x), Exec(x) }
    PackageSource => PackageSource { Pypi(x), Path(x), Editable(x) }
    Action => Action { EnsureContainer(x), Exec(x), Wait(x), UvInstall(x), WriteFile(x) }
}

/// Before 0.4.0, a container had no init and the image's stop signal.
impl Up<w::Container> for old::Container {
    fn up(self) -> w::Container {
        w::Container {
            name: self.name,
            image: self.image,
            command: self.command.up(),
            env: self.env.up(),
            ports: self.ports.up(),
            mounts: self.mounts.up(),
            restart: self.restart.up(),
            init: false,
            stop_signal: None,
        }
    }
}

/// Before 0.4.0, a merge error had no hint.
impl Up<w::MergeError> for old::MergeError {
    fn up(self) -> w::MergeError {
        match self {
            old::MergeError::Conflict(c) => w::MergeError::Conflict(w::Conflict {
                message: c.message,
                key: c.key,
                contributions: c.contributions,
                hint: None,
            }),
            old::MergeError::Invalid(i) => w::MergeError::Invalid(w::InvalidParam {
                message: i.message,
                key: i.key,
                contribution: i.contribution,
                hint: None,
            }),
        }
    }
}

/// The conversions [`upgrade`] and the other modules use.
macro_rules! from_up {
    ($($old:ident => $new:ident),*) => {$(
        impl From<old::$old> for w::$new {
            fn from(v: old::$old) -> Self {
                v.up()
            }
        }
    )*};
}
from_up!(PluginInfo => PluginInfo, MergeError => MergeError, ServicePlan => ServicePlan, PlanError => PlanError, TextResult => Text);
