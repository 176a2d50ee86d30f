//! A loaded plugin and its calls: each call gets a fresh instance (from the
//! bindings of the WIT version the plugin was built for) in a sandboxed store, under
//! the time, memory and output limits. A plugin that traps, loops, runs out of
//! memory or returns garbage yields a [`CallError`] naming the plugin and the call;
//! the host goes on. The per-version plumbing lives here: which bindings a
//! component gets, and which conversions each call goes through.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hsm_model::Value;
use hsm_plan::{Consumer, Mode};
use wasmtime::component::InstancePre;
use wasmtime::{Store, Trap};

use crate::bindings::{v0_1, v0_2, v0_3, v0_4};
use crate::convert::v0_4::upgrade;
use crate::convert::{self, Budget, Handles};
use crate::host::{HostInner, Limits, LoadError, compatible};
use crate::output_tail::OutputTail;
use crate::sandbox::{State, fresh_store};
use hsm_check::{PluginInfo, PluginSource};

/// How much of what a plugin prints (stdout and stderr together) is kept: the
/// end of it, which explains a crash.
const STDERR_CAPACITY: usize = 256 * 1024;

/// What went wrong in one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallErrorKind {
    /// It ran past the time limit.
    Timeout(Duration),
    /// It tried to grow its memory past the limit.
    OutOfMemory(usize),
    /// It trapped (a panic, an `unreachable`, a bad memory access).
    Trap {
        /// What wasmtime said.
        message: String,
        /// The end of what it wrote to stderr (a panic message, say).
        stderr: String,
    },
    /// It returned more than the output limit.
    TooLarge(usize),
    /// It returned something the WIT types allow but hsm doesn't (an unknown
    /// secret handle, a malformed tree, a bad name).
    Malformed(String),
    /// It could not be instantiated.
    Instantiate(String),
}

/// A call into a plugin failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin `{plugin}` failed in `{call}`: {kind}")]
pub struct CallError {
    /// The plugin.
    pub plugin: String,
    /// The call (`describe`, `merge`, `plan`).
    pub call: &'static str,
    /// What happened.
    pub kind: CallErrorKind,
}

/// A plugin that fails is the job failing (exit code 1): the user's input may be
/// fine, and the plugin's author is the one to tell.
impl hsm_model::Explain for CallError {}

impl fmt::Display for CallErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(limit) => write!(f, "it ran longer than the {} ms limit and was stopped", limit.as_millis()),
            Self::OutOfMemory(limit) => write!(f, "it tried to use more than the {} MiB memory limit", limit >> 20),
            Self::Trap { message, stderr } if stderr.is_empty() => write!(f, "it crashed: {message}"),
            // Its own words are quoted, line by line, under hsm's: none can pass for
            // a line of hsm's (an `error:` or a `hint:`).
            Self::Trap { message, stderr } => {
                write!(f, "it crashed: {message}; the end of what it printed:")?;
                stderr.lines().try_for_each(|line| write!(f, "\n  | {line}"))
            }
            Self::TooLarge(limit) => write!(f, "it returned more than the {} KiB output limit", limit >> 10),
            Self::Malformed(message) => write!(f, "it returned something invalid: {message}"),
            Self::Instantiate(message) => write!(f, "it could not be started: {message}"),
        }
    }
}

/// Who asked something of a service, with what.
#[derive(Clone, Debug)]
pub struct ContributionInput<'a> {
    /// Who asked.
    pub from: Consumer,
    /// Where it was written (`file:line:column`).
    pub origin: String,
    /// What they asked.
    pub params: &'a Value,
}

/// A merge call's input.
#[derive(Clone, Debug)]
pub struct MergeInput<'a> {
    /// The service instance.
    pub service: &'a str,
    /// Its kind.
    pub kind: &'a str,
    /// The registry's defaults.
    pub defaults: &'a Value,
    /// Every contribution.
    pub contributions: Vec<ContributionInput<'a>>,
}

/// Why a merge failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeFailure {
    /// Contributions clash; indices into the input's contributions.
    #[error("{message}")]
    Conflict {
        /// What clashes.
        message: String,
        /// The parameter.
        key: String,
        /// The clashing contributions.
        contributions: Vec<usize>,
        /// What the plugin says the user should do (WIT 0.4.0), printable.
        hint: Option<String>,
    },
    /// A parameter is wrong on its own.
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
        /// The parameter.
        key: String,
        /// The contribution, or none for the defaults.
        contribution: Option<usize>,
        /// What the plugin says the user should do (WIT 0.4.0), printable.
        hint: Option<String>,
    },
    /// The call itself failed.
    #[error(transparent)]
    Call(#[from] CallError),
}

/// The profile given to `plan`.
#[derive(Clone, Debug)]
pub struct ProfileInput<'a> {
    /// Its name.
    pub name: &'a str,
    /// Managed or external.
    pub mode: Mode,
    /// Its settings for the service.
    pub settings: &'a Value,
}

/// A consumer given to `plan`.
#[derive(Clone, Debug)]
pub struct ConsumerInput<'a> {
    /// Who.
    pub consumer: Consumer,
    /// What it asked of the service.
    pub params: &'a Value,
}

/// A plan call's input.
#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    /// The project's name.
    pub project: &'a str,
    /// The service instance.
    pub service: &'a str,
    /// Its kind.
    pub kind: &'a str,
    /// The merged configuration.
    pub config: &'a Value,
    /// The chosen profile.
    pub profile: ProfileInput<'a>,
    /// Who gets the environment.
    pub consumers: Vec<ConsumerInput<'a>>,
    /// The address consumers use for published ports.
    pub host_address: &'a str,
}

pub use hsm_check::PlannedService;

/// Why planning failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanFailure {
    /// The plugin refused the input (a missing setting, say).
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
        /// The parameter or setting.
        key: Option<String>,
    },
    /// The call itself failed.
    #[error(transparent)]
    Call(#[from] CallError),
}

/// A plugin's component, linked and ready to instantiate, with the bindings of the
/// WIT version it was built for.
pub(crate) enum Pre {
    V0_1(v0_1::PluginPre<State>),
    V0_2(v0_2::PluginPre<State>),
    V0_3(v0_3::PluginPre<State>),
    V0_4(v0_4::PluginPre<State>),
}

impl Pre {
    /// The bindings for a component built for `wit_version` (one this host loads).
    pub(crate) fn new(instance_pre: InstancePre<State>, wit_version: &str) -> wasmtime::Result<Self> {
        Ok(if compatible("0.1.0", wit_version) {
            Self::V0_1(v0_1::PluginPre::new(instance_pre)?)
        } else if compatible("0.2.0", wit_version) {
            Self::V0_2(v0_2::PluginPre::new(instance_pre)?)
        } else if compatible("0.3.0", wit_version) {
            Self::V0_3(v0_3::PluginPre::new(instance_pre)?)
        } else {
            Self::V0_4(v0_4::PluginPre::new(instance_pre)?)
        })
    }
}

/// A loaded plugin, ready to be called.
pub struct Plugin {
    host: Arc<HostInner>,
    pre: Pre,
    info: PluginInfo,
    source: PluginSource,
    sha256: String,
    wit_version: String,
    precompiled: bool,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin").field("info", &self.info).field("source", &self.source).finish_non_exhaustive()
    }
}

impl Plugin {
    /// What the plugin said about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Where it came from.
    pub fn source(&self) -> &PluginSource {
        &self.source
    }

    /// The sha256 of its component, in hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The limits its calls run under.
    pub fn limits(&self) -> Limits {
        self.host.limits
    }

    /// The `hsm:plugin` WIT version it was built for.
    pub fn wit_version(&self) -> &str {
        &self.wit_version
    }

    /// Marks it as loaded from code compiled ahead of time.
    pub(crate) fn set_precompiled(&mut self) {
        self.precompiled = true;
    }

    /// Whether it was loaded from code compiled ahead of time (by hsm's build or
    /// the compile cache) rather than compiled when loaded.
    pub fn precompiled(&self) -> bool {
        self.precompiled
    }

    /// A linked plugin, once it has described itself (the description checked).
    pub(crate) fn describe(
        host: Arc<HostInner>,
        pre: Pre,
        source: PluginSource,
        sha256: String,
        wit_version: String,
        source_name: &str,
    ) -> Result<Self, LoadError> {
        let mut plugin = Self {
            host,
            pre,
            // Named after its source until it says its name.
            info: PluginInfo {
                name: source_name.to_string(),
                version: String::new(),
                kinds: Vec::new(),
                params: Vec::new(),
                settings: Vec::new(),
                capabilities: BTreeSet::new(),
                variables: None,
            },
            source,
            sha256,
            wit_version,
            precompiled: false,
        };
        plugin.info = plugin
            .call_describe()
            .map_err(|message| LoadError::Describe { source_name: source_name.to_string(), message })?;
        Ok(plugin)
    }

    /// Calls `describe` and checks what it says.
    fn call_describe(&self) -> Result<PluginInfo, String> {
        let failed = |e: CallError| e.kind.to_string();
        let mut budget = Budget::new(self.host.limits.max_result_bytes);
        match &self.pre {
            Pre::V0_1(pre) => {
                let info = self
                    .call("describe", |s| pre.instantiate(s), |s, p| p.hsm_plugin_backend().call_describe(s))
                    .map_err(failed)?;
                convert::info_from_wit(info, &mut budget)
            }
            Pre::V0_2(pre) => {
                let info = self
                    .call("describe", |s| pre.instantiate(s), |s, p| p.hsm_plugin_backend().call_describe(s))
                    .map_err(failed)?;
                convert::info_from_wit(info, &mut budget)
            }
            Pre::V0_3(pre) => {
                let description = self
                    .call("describe", |s| pre.instantiate(s), |s, p| p.hsm_plugin_backend().call_describe(s))
                    .map_err(failed)?;
                convert::v0_3::description_from_wit(description, &mut budget)
            }
            Pre::V0_4(pre) => {
                let description = self
                    .call("describe", |s| pre.instantiate(s), |s, p| p.hsm_plugin_backend().call_describe(s))
                    .map_err(failed)?;
                convert::v0_4::description_from_wit(description, &mut budget)
            }
        }
    }

    /// Merges the contributions to one service.
    pub fn merge(&self, input: &MergeInput<'_>) -> Result<Value, MergeFailure> {
        let mut handles = Handles::default();
        let mut budget = Budget::new(self.host.limits.max_result_bytes);
        let result = match &self.pre {
            Pre::V0_1(pre) => convert::v0_1::with_merge_request(input, &mut handles, |request| {
                self.call("merge", |s| pre.instantiate(s), |s, p| p.hsm_plugin_backend().call_merge(s, request))
            })?
            .map(|tree| convert::v0_1::tree_from_wit(tree, &handles, &mut budget))
            .map_err(Into::into),
            Pre::V0_2(pre) => convert::v0_2::with_merge_request(input, &mut handles, |request| {
                self.call("merge", |s| pre.instantiate(s), |s, p| p.hsm_plugin_backend().call_merge(s, request))
            })?
            .map(|tree| convert::v0_2::decode_tree(&tree, &handles, &mut budget))
            .map_err(Into::into),
            // 0.3.0's and 0.4.0's requests and trees are 0.2.0's.
            Pre::V0_3(pre) => convert::v0_2::with_merge_request(input, &mut handles, |request| {
                self.call("merge", |s| pre.instantiate(s), |s, p| p.hsm_plugin_backend().call_merge(s, request))
            })?
            .map(|tree| convert::v0_2::decode_tree(&tree, &handles, &mut budget))
            .map_err(Into::into),
            Pre::V0_4(pre) => convert::v0_2::with_merge_request(input, &mut handles, |request| {
                self.call("merge", |s| pre.instantiate(s), |s, p| p.hsm_plugin_backend().call_merge(s, request))
            })?
            .map(|tree| convert::v0_2::decode_tree(&tree, &handles, &mut budget)),
        };
        match result {
            Ok(tree) => tree.map_err(|e| self.fail("merge", e).into()),
            Err(e) => Err(convert::merge_error_from_wit(e, input.contributions.len(), &mut budget)
                .map_err(|e| self.fail("merge", e))?),
        }
    }

    /// Plans one service.
    pub fn plan(&self, input: &PlanInput<'_>) -> Result<PlannedService, PlanFailure> {
        let mut handles = Handles::default();
        let result = match &self.pre {
            Pre::V0_1(pre) => upgrade(convert::v0_1::with_plan_request(input, &mut handles, |request| {
                self.call("plan", |s| pre.instantiate(s), |s, p| p.hsm_plugin_backend().call_plan(s, request))
            })?),
            Pre::V0_2(pre) => upgrade(convert::v0_2::with_plan_request(input, &mut handles, |request| {
                self.call("plan", |s| pre.instantiate(s), |s, p| p.hsm_plugin_backend().call_plan(s, request))
            })?),
            Pre::V0_3(pre) => upgrade(convert::v0_2::with_plan_request(input, &mut handles, |request| {
                self.call("plan", |s| pre.instantiate(s), |s, p| p.hsm_plugin_backend().call_plan(s, request))
            })?),
            Pre::V0_4(pre) => convert::v0_2::with_plan_request(input, &mut handles, |request| {
                self.call("plan", |s| pre.instantiate(s), |s, p| p.hsm_plugin_backend().call_plan(s, request))
            })?,
        };
        let mut budget = Budget::new(self.host.limits.max_result_bytes);
        match result {
            Ok(plan) => convert::plan_from_wit(plan, &handles, &mut budget, &self.info.name)
                .map_err(|e| self.fail("plan", e).into()),
            Err(e) => {
                budget.take_str(&e.message).map_err(|e| self.fail("plan", e))?;
                Err(PlanFailure::Invalid {
                    message: convert::plugin_words(&e.message),
                    key: e.key.as_deref().map(convert::plugin_words),
                })
            }
        }
    }

    fn fail(&self, call: &'static str, kind: CallErrorKind) -> CallError {
        CallError { plugin: self.info.name.clone(), call, kind }
    }

    /// Runs one call in a fresh instance (made by `instantiate`, from the bindings
    /// of the plugin's WIT version) under the limits.
    fn call<B, R>(
        &self,
        call: &'static str,
        instantiate: impl FnOnce(&mut Store<State>) -> wasmtime::Result<B>,
        f: impl FnOnce(&mut Store<State>, &B) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let limits = self.host.limits;
        let stderr = OutputTail::new(STDERR_CAPACITY);
        let mut store = fresh_store(&self.host.engine, limits, &stderr);
        let outcome = match instantiate(&mut store) {
            Ok(bindings) => f(&mut store, &bindings),
            Err(e) if is_trap(&e) => Err(e),
            Err(e) => return Err(self.fail(call, CallErrorKind::Instantiate(root_message(&e)))),
        };
        outcome.map_err(|e| {
            let kind = if store.data().limiter.refused {
                CallErrorKind::OutOfMemory(limits.memory_bytes)
            } else if format!("{e:#}").contains("fuel allocated for hostcalls has been exhausted") {
                // wasmtime's bound on data copied out of the guest in one go.
                CallErrorKind::TooLarge(limits.max_result_bytes)
            } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                CallErrorKind::Timeout(limits.call_timeout)
            } else {
                CallErrorKind::Trap { message: root_message(&e), stderr: tail(&stderr.contents(), 12) }
            };
            self.fail(call, kind)
        })
    }
}

fn is_trap(e: &wasmtime::Error) -> bool {
    e.downcast_ref::<Trap>().is_some()
}

/// The innermost cause, which is the useful part of wasmtime's error chains.
pub(crate) fn root_message(e: &wasmtime::Error) -> String {
    let mut message = e.root_cause().to_string();
    if let Some(trap) = e.downcast_ref::<Trap>()
        && !message.contains(&trap.to_string())
    {
        message = format!("{trap}: {message}");
    }
    // One line: wasmtime's messages sometimes spread a list over several.
    let mut line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 240 {
        line = line.chars().take(240).collect::<String>() + "…";
    }
    line
}

/// The last `n` lines of a plugin's output, safe to print, each cut at 1,000
/// characters.
fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<String> = text.lines().map(convert::plugin_words).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
