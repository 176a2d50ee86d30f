//! The sandbox each call runs in: a store whose WASI context grants nothing (no
//! files, environment, network or clock, constant randomness), a memory limiter that
//! remembers refusing, a deadline in epoch ticks, and a linker whose clock cannot
//! be waited on.

use std::time::Duration;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::host::Limits;
use crate::output_tail::OutputTail;

/// How often the epoch advances; call deadlines are counted in these ticks.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// What a plugin instance's store holds: a WASI context that grants nothing, and
/// the memory limiter.
pub(crate) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps memory and table growth, remembering a refusal so an out-of-memory crash
/// is reported as such rather than as a bare trap.
pub(crate) struct Limiter {
    memory_bytes: usize,
    /// Whether it refused to grow a memory.
    pub(crate) refused: bool,
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

/// A store whose WASI context grants nothing: no preopened directories, no
/// environment or arguments, no network, a stopped clock and constant randomness.
/// stdout and stderr go to a bounded buffer that explains crashes.
pub(crate) fn fresh_store(engine: &Engine, limits: Limits, stderr: &OutputTail) -> Store<State> {
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

/// The WASI version the linker's interfaces carry (wasmtime-wasi's); components
/// built against any 0.2.x match it.
const WASI_CLOCKS: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Replaces the monotonic clock's `subscribe-*` functions with ones that trap. The
/// epoch deadline stops a plugin's own code, not the host blocking on its behalf: a
/// plugin that slept would otherwise hang hsm. Plugins have no clock to wait on.
pub(crate) fn forbid_waiting(linker: &mut Linker<State>) -> wasmtime::Result<()> {
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
