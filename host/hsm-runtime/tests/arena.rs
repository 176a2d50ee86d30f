//! The SDK's `CallArena` allocator in a real component: a plugin allocating hard on
//! it (within the first region and far past it, blocks grown in place and moved,
//! over-aligned blocks) computes exactly what the same code computes natively, call
//! after call in fresh instances; it takes back only the newest block; and a call
//! that allocates past the memory limit fails as out of memory, and the plugin
//! goes on answering. The host places requests in the arena, and what WASI returns
//! to wasi-libc in C's malloc.

use std::time::Duration;

use hsm_model::Value;
use hsm_plan::Consumer;
use hsm_runtime::*;

fn arena(memory_bytes: usize) -> Plugin {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/plugins/arena");
    let wasm = hsm_sdk::testing::build_plugin(dir, "hsm-fixture-arena").unwrap_or_else(|e| panic!("{e}"));
    let limits = Limits { call_timeout: Duration::from_secs(20), memory_bytes, max_result_bytes: 1 << 20 };
    PluginHost::new(limits)
        .load_component(&std::fs::read(wasm).unwrap(), PluginSource::File("arena.wasm".into()))
        .unwrap()
}

fn workout(plugin: &Plugin, rounds: i64) -> Result<Value, MergeFailure> {
    call(plugin, [("rounds", Value::Int(rounds))])
}

fn call<const N: usize>(plugin: &Plugin, defaults: [(&str, Value); N]) -> Result<Value, MergeFailure> {
    let defaults = Value::Map(defaults.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
    let params = Value::Null;
    plugin.merge(&MergeInput {
        service: "arena",
        kind: "arena",
        defaults: &defaults,
        contributions: vec![ContributionInput {
            from: Consumer::Project,
            origin: "hsm.yaml:1:1".into(),
            params: &params,
        }],
    })
}

#[test]
fn what_a_plugin_allocates_in_the_arena_stays_intact() {
    let plugin = arena(64 << 20);
    // From nothing, through the first region (1 MiB), to about 30 MB in all.
    for rounds in [0, 40, 400, 3_000, 40] {
        let expected = hsm_fixture_arena::workout(rounds as usize).to_string();
        let got = workout(&plugin, rounds).unwrap_or_else(|e| panic!("{rounds} rounds: {e}"));
        assert_eq!(got.as_plain_str(), Some(expected.as_str()), "{rounds} rounds");
    }
}

#[test]
fn allocating_past_the_memory_limit_is_out_of_memory() {
    let plugin = arena(16 << 20);
    match workout(&plugin, 50_000) {
        Err(MergeFailure::Call(CallError { kind: CallErrorKind::OutOfMemory(limit), .. })) => {
            assert_eq!(limit, 16 << 20);
        }
        other => panic!("expected out of memory, got {other:?}"),
    }
    let expected = hsm_fixture_arena::workout(100).to_string();
    assert_eq!(workout(&plugin, 100).unwrap().as_plain_str(), Some(expected.as_str()));
}

/// The arena is what the component really allocates with: it takes back the newest
/// block (so 200 MiB allocated and dropped one at a time fit in 16 MiB), and
/// nothing else (so 40 MiB dropped under a newer block don't).
#[test]
fn the_arena_takes_back_the_newest_block_only() {
    let plugin = arena(16 << 20);
    let newest = call(&plugin, [("churn", Value::Int(200)), ("newest", Value::Bool(true))]).unwrap();
    assert_eq!(newest.as_plain_str(), Some(hsm_fixture_arena::churn(200, true).to_string().as_str()));
    match call(&plugin, [("churn", Value::Int(40)), ("newest", Value::Bool(false))]) {
        Err(MergeFailure::Call(CallError { kind: CallErrorKind::OutOfMemory(_), .. })) => {}
        other => panic!("dropped blocks under a newer one must stay allocated, got {other:?}"),
    }
}

/// What the host sends is placed by the plugin's allocator (the component's
/// `cabi_export_realloc`, which the SDK provides): in the arena, not in C's malloc.
/// A block of C's malloc, as the same check sees it, is elsewhere.
#[test]
fn requests_are_placed_in_the_arena() {
    let plugin = arena(16 << 20);
    let text = "x".repeat(1000);
    let placed = call(&plugin, [("placed", Value::from(text.as_str()))]).unwrap();
    assert_eq!(placed.as_plain_str(), Some("arena"));
    let control = call(&plugin, [("placed_by_malloc", Value::Bool(true))]).unwrap();
    assert_eq!(control.as_plain_str(), Some("elsewhere"));
}

/// What a WASI call returns to wasi-libc is placed by C's malloc (the component's
/// `cabi_import_realloc`), which wasi-libc frees it with: random bytes drawn
/// through `getentropy` again and again, arena blocks kept in between, don't
/// corrupt either allocator (with the arena placing them, C's `free` trapped).
#[test]
fn what_wasi_returns_is_placed_by_c_malloc() {
    let plugin = arena(16 << 20);
    let drawn = call(&plugin, [("entropy", Value::Int(200))]).unwrap_or_else(|e| panic!("{e}"));
    // The 200 blocks kept, plus the bytes' sum: hsm's WASI randomness is constant
    // zeros (calls are deterministic).
    assert_eq!(drawn.as_plain_str(), Some("200"));
}
