//! Loading plugin components and calling them: one engine for the process, a fresh
//! instance per call from a pre-instantiated component, no ambient authority, and
//! limits on time, memory and output. A plugin that traps, loops, runs out of
//! memory or returns garbage yields a [`CallError`] naming the plugin and the call;
//! the host goes on.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hsm_model::Value;
use hsm_plan::{Action, Consumer, ConsumerEnv, Mode};
use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::{v0_1, v0_2, v0_3};
use crate::code_memory::{self, CodeProtection};
use crate::convert::{self, Budget, Handles};
use crate::engine_config;
use crate::output_tail::OutputTail;

/// The WIT versions this host loads plugins for.
pub const WIT_VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.3.0"];

/// The most linear memory any plugin instance may have, whatever the [`Limits`]
/// (the size of the instance pool's memory slots).
pub(crate) const MAX_MEMORY_BYTES: usize = 256 << 20;

/// How often the epoch advances; call deadlines are counted in these ticks.
const TICK: Duration = Duration::from_millis(5);

/// How much of what a plugin prints (stdout and stderr together) is kept: the
/// end of it, which explains a crash.
const STDERR_CAPACITY: usize = 256 * 1024;

/// The process's one engine, with the ticker thread that drives call deadlines.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let base = || {
            let mut config = engine_config::config();
            // Only where writing code needs no instruction-cache maintenance and
            // code pages need no branch-target marking: `CodeProtection` does
            // neither. Elsewhere wasmtime's own publisher copies and flushes.
            if code_memory::SUPPORTED {
                config.with_custom_code_memory(Some(Arc::new(CodeProtection)));
            }
            config
        };
        let mut config = base();
        // Instances come from a pool of slots that are reused (and kept warm)
        // rather than mapped afresh: a call's fresh instance costs microseconds.
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        pool.total_component_instances(64)
            .total_core_instances(256)
            .total_memories(64)
            .total_tables(256)
            .max_memory_size(MAX_MEMORY_BYTES)
            // Calls are synchronous: no fiber stacks (each would cost a guard
            // page's `mprotect` when the engine is created).
            .total_stacks(0)
            // Where Linux can say which pages an instance wrote (PAGEMAP_SCAN,
            // kernel 6.7+), only those are reset, in place: a plugin's working
            // set stays mapped, so the next instance has no page faults and
            // resetting needs no unmapping (no TLB shootdowns). Elsewhere the
            // first pages of a slot are zeroed and the rest unmapped, so there
            // the window is kept small.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
                2 << 20
            } else {
                64 << 10
            })
            .table_keep_resident(16 << 10);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        // The pool reserves address space up front; where that is limited (`ulimit
        // -v`), instances are mapped one by one instead.
        let engine = Engine::new(&config).or_else(|_| Engine::new(&base())).expect("the engine configuration is valid");
        let ticker = engine.clone();
        std::thread::Builder::new()
            .name("hsm-plugin-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(TICK);
                    ticker.increment_epoch();
                }
            })
            .expect("a thread can be spawned");
        engine
    })
}

/// Limits applied to every call into a plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time for one call (instantiation included).
    pub call_timeout: Duration,
    /// Linear memory one instance may grow to (at most 256 MiB, the size of the
    /// instance pool's memory slots).
    pub memory_bytes: usize,
    /// Size of what one call may return (strings, and a node's worth per value,
    /// piece and list entry, roughly in bytes).
    pub max_result_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { call_timeout: Duration::from_secs(2), memory_bytes: 64 << 20, max_result_bytes: 4 << 20 }
    }
}

/// Where a plugin came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "path")]
pub enum PluginSource {
    /// Compiled into hsm.
    Bundled,
    /// A component file.
    File(PathBuf),
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bundled => f.write_str("bundled"),
            Self::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A capability a plugin may declare and be granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Its own containers, volumes and published ports.
    Containers,
    /// Commands in its own containers.
    Exec,
    /// Python packages into the project's environment.
    UvInstall,
    /// Files under `.hsm/<plugin>/`.
    Files,
    /// Probes of hosts other than its own containers.
    NetworkProbe,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 5] = [Self::Containers, Self::Exec, Self::UvInstall, Self::Files, Self::NetworkProbe];

    /// The name used in hsm.yaml and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Containers => "containers",
            Self::Exec => "exec",
            Self::UvInstall => "uv-install",
            Self::Files => "files",
            Self::NetworkProbe => "network-probe",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parameter or setting a plugin reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParamSpec {
    /// The key.
    pub name: String,
    /// What it means.
    pub description: String,
    /// Whether it must be given.
    pub required: bool,
}

/// A variable a plugin declares it sets in its consumers' environments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VariableSpec {
    /// Its name.
    pub name: String,
    /// What it holds.
    pub description: String,
}

/// What a plugin says about itself (checked when it is loaded).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The kinds it serves.
    pub kinds: Vec<String>,
    /// The parameters it reads.
    pub params: Vec<ParamSpec>,
    /// The external settings it reads.
    pub settings: Vec<ParamSpec>,
    /// The capabilities it needs.
    pub capabilities: BTreeSet<Capability>,
    /// The variables it sets in consumers' environments, when its WIT version
    /// lets it declare them (0.3.0 and later); `None` for older plugins, which may
    /// set only the variables `hsm.yaml` grants them by name.
    pub variables: Option<Vec<VariableSpec>>,
}

impl PluginInfo {
    /// Whether it declares `name` among its variables.
    pub fn declares_variable(&self, name: &str) -> bool {
        self.variables.iter().flatten().any(|v| v.name == name)
    }
}

/// Why a component could not be loaded.
#[derive(Clone, Debug, thiserror::Error)]
pub enum LoadError {
    /// Not a valid WebAssembly component.
    #[error("`{source_name}` is not a valid WebAssembly component: {message}")]
    Invalid {
        /// Where it came from.
        source_name: String,
        /// What wasmtime said.
        message: String,
    },
    /// A component, but not an hsm plugin.
    #[error("`{source_name}` is not an hsm plugin: it exports no `hsm:plugin/backend` interface")]
    NotAPlugin {
        /// Where it came from.
        source_name: String,
    },
    /// Built against a WIT version this host doesn't know.
    #[error(
        "`{source_name}` was built for `hsm:plugin@{found}`, which this hsm does not support (it loads {supported})"
    )]
    UnsupportedWit {
        /// Where it came from.
        source_name: String,
        /// The version it targets.
        found: String,
        /// What this host loads.
        supported: String,
    },
    /// Its imports or exports don't match what the host provides.
    #[error("`{source_name}` cannot be linked: {message}")]
    Link {
        /// Where it came from.
        source_name: String,
        /// What is missing or mismatched.
        message: String,
    },
    /// `describe` failed or said something invalid.
    #[error("`{source_name}` did not describe itself properly: {message}")]
    Describe {
        /// Where it came from.
        source_name: String,
        /// What was wrong.
        message: String,
    },
}

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

/// What a plugin planned for a service, converted but not yet checked (see
/// [`crate::check_plan`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedService {
    /// The actions, in order.
    pub actions: Vec<Action>,
    /// The environment per consumer.
    pub env: Vec<ConsumerEnv>,
}

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

/// The engine and the linker every plugin instance is created with.
pub struct PluginHost {
    inner: Arc<HostInner>,
}

struct HostInner {
    engine: Engine,
    linker: Linker<State>,
    limits: Limits,
}

/// What a plugin instance's store holds: a WASI context that grants nothing, and
/// the memory limiter.
struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps memory and table growth, remembering a refusal so an out-of-memory crash
/// is reported as such rather than as a bare trap.
struct Limiter {
    memory_bytes: usize,
    refused: bool,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_bytes;
        self.refused |= !ok;
        Ok(ok)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }
}

/// A clock stopped at the epoch: plugins get no time unless granted it.
struct StoppedClock;

impl HostWallClock for StoppedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

impl Default for PluginHost {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl PluginHost {
    /// A host whose calls run under `limits`.
    pub fn new(limits: Limits) -> Self {
        let engine = engine().clone();
        let mut linker = Linker::new(&engine);
        // The WASI interfaces a Rust `wasm32-wasip2` component imports; the context
        // each call gets (see `fresh_store`) makes them grant nothing.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("WASI links into a fresh linker");
        forbid_waiting(&mut linker).expect("the clock's subscriptions can be replaced");
        Self { inner: Arc::new(HostInner { engine, linker, limits }) }
    }

    /// The engine (one per process).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The limits calls run under.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Loads the plugins compiled into hsm, from their precompiled code, in
    /// parallel (deserializing is most of the cost, and independent): the calling
    /// thread and one more per further core take the next plugin in turn, so no
    /// more threads are started than there are cores to run them.
    pub fn load_bundled(&self) -> Result<Vec<Plugin>, LoadError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let all = &bundled::BUNDLED;
        let next = AtomicUsize::new(0);
        let work = || {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(b) = all.get(i) else { return done };
                done.push((i, self.load_one_bundled(b)));
            }
        };
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut loaded: Vec<(usize, Result<Plugin, LoadError>)> = std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..cores.min(all.len())).map(|_| scope.spawn(work)).collect();
            let mut loaded = work();
            for helper in helpers {
                loaded.extend(helper.join().expect("loading a bundled plugin panicked"));
            }
            loaded
        });
        // In the order they are bundled in, whichever thread loaded them.
        loaded.sort_by_key(|(i, _)| *i);
        loaded.into_iter().map(|(_, plugin)| plugin).collect()
    }

    fn load_one_bundled(&self, b: &'static bundled::Bundled) -> Result<Plugin, LoadError> {
        // Once per process: every host shares the one engine, and wasmtime allows
        // one component per code address (code in the binary has only one).
        let (component, precompiled) = b.code.get_or_init(|| self.bundled_code(b)).clone()?;
        let mut plugin = self.finish_load(component, PluginSource::Bundled, b.sha256.to_string(), b.name)?;
        plugin.precompiled = precompiled;
        Ok(plugin)
    }

    /// A bundled plugin's component, and whether it came precompiled.
    fn bundled_code(&self, b: &'static bundled::Bundled) -> Result<(Component, bool), LoadError> {
        // SAFETY: `cwasm` is this build's own output: the build script compiled it
        // from `wasm` with this engine's configuration, and the engine has
        // `CodeProtection`. It runs where it lies in the binary if it can, else
        // from a copy. If the machine differs from the build machine (other CPU
        // features), wasmtime refuses it and we compile the embedded component.
        #[allow(unsafe_code)]
        let loaded = match unsafe { code_memory::load_in_place(&self.inner.engine, b.cwasm) } {
            Some(component) => Ok(component),
            None => unsafe { Component::deserialize(&self.inner.engine, &b.cwasm.0) },
        };
        match loaded {
            Ok(component) => Ok((component, true)),
            Err(_) => Ok((self.compile(b.wasm, b.name)?, false)),
        }
    }

    /// Compiles and loads a component from its bytes.
    pub fn load_component(&self, bytes: &[u8], source: PluginSource) -> Result<Plugin, LoadError> {
        let name = source.to_string();
        let component = self.compile(bytes, &name)?;
        self.finish_load(component, source, hex::encode(Sha256::digest(bytes)), &name)
    }

    /// Compiles a component's bytes into native code (the slow step the compile cache avoids).
    pub fn compile(&self, bytes: &[u8], source_name: &str) -> Result<Component, LoadError> {
        Component::new(&self.inner.engine, bytes)
            .map_err(|e| LoadError::Invalid { source_name: source_name.to_string(), message: root_message(&e) })
    }

    /// Loads an already compiled component.
    pub fn load_compiled(
        &self,
        component: Component,
        source: PluginSource,
        sha256: String,
    ) -> Result<Plugin, LoadError> {
        let name = source.to_string();
        self.finish_load(component, source, sha256, &name)
    }

    fn finish_load(
        &self,
        component: Component,
        source: PluginSource,
        sha256: String,
        source_name: &str,
    ) -> Result<Plugin, LoadError> {
        let wit_version = wit_version(&self.inner.engine, &component)
            .ok_or_else(|| LoadError::NotAPlugin { source_name: source_name.to_string() })?;
        if !WIT_VERSIONS.iter().any(|v| compatible(v, &wit_version)) {
            return Err(LoadError::UnsupportedWit {
                source_name: source_name.to_string(),
                found: wit_version,
                supported: WIT_VERSIONS.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", "),
            });
        }
        let link =
            |e: wasmtime::Error| LoadError::Link { source_name: source_name.to_string(), message: link_message(&e) };
        let instance_pre = self.inner.linker.instantiate_pre(&component).map_err(link)?;
        let pre = if compatible("0.1.0", &wit_version) {
            Pre::V0_1(v0_1::PluginPre::new(instance_pre).map_err(link)?)
        } else if compatible("0.2.0", &wit_version) {
            Pre::V0_2(v0_2::PluginPre::new(instance_pre).map_err(link)?)
        } else {
            Pre::V0_3(v0_3::PluginPre::new(instance_pre).map_err(link)?)
        };
        let mut plugin = Plugin {
            host: self.inner.clone(),
            pre,
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
        let describe = |message: String| LoadError::Describe { source_name: source_name.to_string(), message };
        let (info, variables) = match &plugin.pre {
            Pre::V0_1(pre) => plugin
                .call("describe", |s| pre.instantiate(s), |s, p| p.hsm_plugin_backend().call_describe(s))
                .map(|info| (info, None)),
            Pre::V0_2(pre) => plugin
                .call("describe", |s| pre.instantiate(s), |s, p| p.hsm_plugin_backend().call_describe(s))
                .map(|info| (info, None)),
            Pre::V0_3(pre) => plugin
                .call("describe", |s| pre.instantiate(s), |s, p| p.hsm_plugin_backend().call_describe(s))
                .map(|d| (d.info, Some(d.variables))),
        }
        .map_err(|e| describe(e.kind.to_string()))?;
        let mut budget = Budget::new(self.inner.limits.max_result_bytes);
        plugin.info = convert::info_from_wit(info, &mut budget).map_err(describe)?;
        if let Some(variables) = variables {
            let variables = variables.into_iter().map(|v| (v.name, v.description)).collect();
            plugin.info.variables = Some(convert::variables_from_wit(variables, &mut budget).map_err(describe)?);
        }
        Ok(plugin)
    }
}

/// The SHA-256 (hex) of each plugin compiled into hsm, in a fixed order: with the
/// bundled registry, what a cache must tell apart between builds of hsm.
pub fn bundled_sha256s() -> impl Iterator<Item = &'static str> {
    bundled::BUNDLED.iter().map(|b| b.sha256)
}

/// The WASI version the linker's interfaces carry (wasmtime-wasi's); components
/// built against any 0.2.x match it.
const WASI_CLOCKS: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Replaces the monotonic clock's `subscribe-*` functions with ones that trap. The
/// epoch deadline stops a plugin's own code, not the host blocking on its behalf: a
/// plugin that slept would otherwise hang hsm. Plugins have no clock to wait on.
fn forbid_waiting(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    use wasmtime::component::Resource;
    use wasmtime_wasi::p2::DynPollable;
    linker.allow_shadowing(true);
    {
        let mut clock = linker.instance(WASI_CLOCKS)?;
        for name in ["subscribe-duration", "subscribe-instant"] {
            clock.func_wrap(name, move |_, (_,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
                Err(wasmtime::Error::msg(format!("plugins may not wait (`{name}`): hsm gives them no clock")))
            })?;
        }
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// The `hsm:plugin` version a component's backend export was built for.
fn wit_version(engine: &Engine, component: &Component) -> Option<String> {
    component
        .component_type()
        .exports(engine)
        .find_map(|(name, _)| name.strip_prefix("hsm:plugin/backend@").map(str::to_string))
}

/// Whether a plugin built for `found` loads into a host that speaks `supported`:
/// same major and minor (for 0.x, the minor is the breaking part) and a patch the
/// host knows (a plugin built for a newer 0.1.x may use what this host lacks).
fn compatible(supported: &str, found: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
        let version = (parts.next()??, parts.next()??, parts.next()??);
        parts.next().is_none().then_some(version)
    };
    match (parse(supported), parse(found)) {
        (Some((sm, sn, sp)), Some((fm, fnn, fp))) => sm == fm && sn == fnn && fp <= sp,
        _ => false,
    }
}

/// A plugin's component, linked and ready to instantiate, with the bindings of the
/// WIT version it was built for.
enum Pre {
    V0_1(v0_1::PluginPre<State>),
    V0_2(v0_2::PluginPre<State>),
    V0_3(v0_3::PluginPre<State>),
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

    /// Merges the contributions to one service.
    pub fn merge(&self, input: &MergeInput<'_>) -> Result<Value, MergeFailure> {
        let mut handles = Handles::default();
        let mut budget = Budget::new(self.host.limits.max_result_bytes);
        let result = match &self.pre {
            Pre::V0_1(pre) => {
                let (trees, defaults, params) = convert::merge_trees(input, &mut handles);
                let nodes = trees.nodes();
                let contributions = convert::contributions_to_wit(input, &nodes, &params);
                let request = convert::merge_request_to_wit(input, &nodes, &defaults, &contributions);
                let call = |s: &mut Store<State>, p: &v0_1::Plugin| p.hsm_plugin_backend().call_merge(s, request);
                self.call("merge", |s| pre.instantiate(s), call)?
                    .map(|tree| convert::tree_from_wit(tree, &handles, &mut budget))
            }
            Pre::V0_2(pre) => convert::with_merge_request(input, &mut handles, |request| {
                let call = |s: &mut Store<State>, p: &v0_2::Plugin| p.hsm_plugin_backend().call_merge(s, request);
                self.call("merge", |s| pre.instantiate(s), call)
            })?
            .map(|tree| convert::decode_tree(&tree, &handles, &mut budget)),
            // 0.3.0's requests are 0.2.0's.
            Pre::V0_3(pre) => convert::with_merge_request(input, &mut handles, |request| {
                let call = |s: &mut Store<State>, p: &v0_3::Plugin| p.hsm_plugin_backend().call_merge(s, request);
                self.call("merge", |s| pre.instantiate(s), call)
            })?
            .map(|tree| convert::decode_tree(&tree, &handles, &mut budget)),
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
            Pre::V0_1(pre) => {
                let (trees, own, params) = convert::plan_trees(input, &mut handles);
                let nodes = trees.nodes();
                let consumers = convert::consumers_to_wit(input, &nodes, &params);
                let request = convert::plan_request_to_wit(input, &nodes, &own, &consumers);
                let call = |s: &mut Store<State>, p: &v0_1::Plugin| p.hsm_plugin_backend().call_plan(s, request);
                self.call("plan", |s| pre.instantiate(s), call)?
            }
            Pre::V0_2(pre) => convert::with_plan_request(input, &mut handles, |request| {
                let call = |s: &mut Store<State>, p: &v0_2::Plugin| p.hsm_plugin_backend().call_plan(s, request);
                self.call("plan", |s| pre.instantiate(s), call)
            })?,
            Pre::V0_3(pre) => convert::with_plan_request(input, &mut handles, |request| {
                let call = |s: &mut Store<State>, p: &v0_3::Plugin| p.hsm_plugin_backend().call_plan(s, request);
                self.call("plan", |s| pre.instantiate(s), call)
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

/// A store whose WASI context grants nothing: no preopened directories, no
/// environment or arguments, no network, a stopped clock and constant randomness.
/// stdout and stderr go to a bounded buffer that explains crashes.
fn fresh_store(engine: &Engine, limits: Limits, stderr: &OutputTail) -> Store<State> {
    let wasi = WasiCtxBuilder::new()
        .stdout(stderr.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(StoppedClock)
        .monotonic_clock(StoppedClock)
        .secure_random(wasmtime_wasi::Deterministic::new(vec![0]))
        .insecure_random(wasmtime_wasi::Deterministic::new(vec![0]))
        .insecure_random_seed(0)
        .build();
    let state = State {
        wasi,
        table: ResourceTable::new(),
        limiter: Limiter { memory_bytes: limits.memory_bytes, refused: false },
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    let ticks = (limits.call_timeout.as_millis() / TICK.as_millis()).max(1) as u64;
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_trap();
    // Bounds what the host allocates for data a plugin hands over in one go.
    store.set_hostcall_fuel(limits.max_result_bytes.saturating_mul(2));
    store
}

/// The innermost cause, which is the useful part of wasmtime's error chains.
fn root_message(e: &wasmtime::Error) -> String {
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

/// Why a component can't be linked, in the plugin author's terms: the import hsm
/// does not provide, when that is the reason (wasmtime's own words name only the
/// missing function's kind), and what hsm does provide.
fn link_message(e: &wasmtime::Error) -> String {
    let missing = e.chain().find_map(|cause| {
        let text = cause.to_string();
        let rest = text.strip_prefix("component imports ")?;
        let name = rest.split('`').nth(1)?;
        Some(convert::plugin_words(name))
    });
    match missing {
        Some(name) => format!(
            "it imports `{name}`, which hsm does not provide: a plugin may import only WASI 0.2's interfaces (cli, clocks, filesystem, io, random, sockets), and the sandbox grants nothing through them ({})",
            root_message(e)
        ),
        None => root_message(e),
    }
}

/// The last `n` lines of a plugin's output, safe to print, each cut at 1,000
/// characters.
fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<String> = text.lines().map(convert::plugin_words).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::compatible;

    #[test]
    fn plugins_load_for_known_versions_of_the_same_minor() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.3", "0.1.0"), "an older 0.1 plugin keeps loading");
        assert!(!compatible("0.1.0", "0.1.1"), "a plugin for a newer 0.1 may use what this host lacks");
        assert!(!compatible("0.1.0", "0.2.0"));
        assert!(compatible("0.2.0", "0.2.0"));
        assert!(!compatible("0.2.0", "0.1.0"), "0.1 plugins load through 0.1's bindings");
        assert!(!compatible("0.1.0", "1.1.0"));
        assert!(!compatible("0.1.0", "0.1"));
        assert!(!compatible("0.1.0", "0.1.0.0"));
        assert!(!compatible("0.1.0", "0.1.x"));
    }
}

/// The plugins built by the build script.
mod bundled {
    use std::sync::OnceLock;

    use wasmtime::component::Component;

    use super::LoadError;
    use crate::code_memory::PageAligned;

    /// A bundled plugin: its component and the native code precompiled from it.
    pub(crate) struct Bundled {
        pub(crate) name: &'static str,
        pub(crate) wasm: &'static [u8],
        pub(crate) cwasm: &'static PageAligned<[u8]>,
        pub(crate) sha256: &'static str,
        /// Its component once loaded (with whether it came precompiled), shared by
        /// every host of the process.
        pub(crate) code: OnceLock<Result<(Component, bool), LoadError>>,
    }

    include!(concat!(env!("OUT_DIR"), "/bundled.rs"));
}
