//! Loading plugin components: one engine for the process (its instance pool and
//! the ticker that drives call deadlines), one linker that provides WASI and
//! nothing else, and the checks a component passes before it becomes a [`Plugin`]
//! (a WIT version this host speaks, imports it provides, a valid description).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use crate::convert;
use crate::engine_config;
use crate::plugin::{Plugin, Pre, root_message};
use crate::sandbox::{State, TICK, forbid_waiting};
use hsm_check::PluginSource;

/// The WIT versions this host loads plugins for.
pub const WIT_VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.4.0"];

/// The most linear memory any plugin instance may have, whatever the [`Limits`]
/// (the size of the instance pool's memory slots).
pub(crate) const MAX_MEMORY_BYTES: usize = 256 << 20;

/// The process's one engine, with the ticker thread that drives call deadlines.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = engine_config::config();
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
        let engine = Engine::new(&config)
            .or_else(|_| Engine::new(&engine_config::config()))
            .expect("the engine configuration is valid");
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

/// The process's one linker: the WASI interfaces a Rust `wasm32-wasip2` component
/// imports (the context each call gets, see `fresh_store`, makes them grant
/// nothing), with a clock that cannot be waited on.
fn linker() -> &'static Linker<State> {
    static LINKER: OnceLock<Linker<State>> = OnceLock::new();
    LINKER.get_or_init(|| {
        let mut linker = Linker::new(engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("WASI links into a fresh linker");
        forbid_waiting(&mut linker).expect("the clock's subscriptions can be replaced");
        linker
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

/// A plugin that can't be loaded is bad input: a file the user (or a registry
/// they chose) pointed at.
impl hsm_model::Explain for LoadError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::Invalid { .. } => "build it with `cargo build --release --target wasm32-wasip2`".into(),
            Self::NotAPlugin { .. } => "a plugin implements `hsm_sdk::Backend` and calls `export_plugin!`".into(),
            Self::UnsupportedWit { .. } => "rebuild it against the SDK of this hsm".into(),
            Self::Link { .. } | Self::Describe { .. } => return None,
        })
    }

    fn is_input(&self) -> bool {
        true
    }
}

/// The engine and the linker every plugin instance is created with.
pub struct PluginHost {
    inner: Arc<HostInner>,
}

/// What a host's plugins share with it.
pub(crate) struct HostInner {
    pub(crate) engine: Engine,
    pub(crate) linker: &'static Linker<State>,
    pub(crate) limits: Limits,
}

impl Default for PluginHost {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl PluginHost {
    /// A host whose calls run under `limits`.
    pub fn new(limits: Limits) -> Self {
        Self { inner: Arc::new(HostInner { engine: engine().clone(), linker: linker(), limits }) }
    }

    /// Starts creating the process's engine and linker on a thread of their own,
    /// so that the first host made ([`PluginHost::new`]) finds them ready, or
    /// waits only for the rest. Creating them takes about a millisecond, which a
    /// command spends reading its arguments and the project's files meanwhile.
    pub fn prepare_in_background() {
        // Nothing to wait for: a host made later blocks until they are ready.
        let _ = std::thread::Builder::new().name("hsm-plugin-engine".into()).spawn(|| {
            linker();
        });
    }

    /// The engine (one per process).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The limits calls run under.
    pub fn limits(&self) -> Limits {
        self.inner.limits
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

    /// Checks a component and describes it: what every load ends with.
    pub(crate) fn finish_load(
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
        let pre = Pre::new(instance_pre, &wit_version).map_err(link)?;
        Plugin::describe(self.inner.clone(), pre, source, sha256, wit_version, source_name)
    }
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
pub(crate) fn compatible(supported: &str, found: &str) -> bool {
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
