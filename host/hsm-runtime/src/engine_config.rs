//! The wasmtime configuration, shared by the runtime and by the build script that
//! precompiles the bundled plugins: a precompiled component loads only into an
//! engine configured exactly like the one that compiled it.

/// The engine configuration hsm runs plugins with.
pub(crate) fn config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    // The time limit per call: a ticker thread advances the epoch and each call
    // gets a deadline a number of ticks away.
    config.epoch_interruption(true);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    // Plugins are small; a deep recursion is a bug we want reported, not a crash.
    config.max_wasm_stack(1 << 20);
    // Only for third-party unwinders (wasm backtraces don't need it), and
    // registering it is most of what loading a precompiled component costs.
    config.native_unwind_info(false);
    // hsm reports a trap's reason and the plugin's own panic message, not wasm
    // frames; capturing them costs every call a little.
    config.wasm_backtrace_max_frames(None);
    config
}
